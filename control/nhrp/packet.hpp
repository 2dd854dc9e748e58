// NHRP packets (RFC 2332 plus Cisco's Traffic Indication and NAT extension): the model, the
// parser and the builder. Control-plane code: allocates freely, never runs on a worker.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "dataplane/wire/result.hpp"

namespace dmvpn::nhrp {

using bytes = std::vector<uint8_t>;

enum class op : uint8_t {
    resolution_request = 1,
    resolution_reply = 2,
    registration_request = 3,
    registration_reply = 4,
    purge_request = 5,
    purge_reply = 6,
    error_indication = 7,
    traffic_indication = 8,  // Cisco redirect, draft-detienne-dmvpn-01
};
std::string_view name(op t) noexcept;

// Fixed-header constants.
inline constexpr uint16_t afn_ipv4 = 1;
inline constexpr uint16_t pro_ipv4 = 0x0800;
inline constexpr uint8_t version_1 = 1;
inline constexpr size_t fixed_header_size = 20;
inline constexpr size_t cie_fixed_size = 12;

// Mandatory-part flags (section 5.2.x; Cisco adds NAT-capable to every type).
namespace flag {
inline constexpr uint16_t res_q = 0x8000;    // Resolution: router (Q)
inline constexpr uint16_t res_a = 0x4000;    // authoritative
inline constexpr uint16_t res_d = 0x2000;    // destination is stable
inline constexpr uint16_t res_u = 0x1000;    // unique
inline constexpr uint16_t res_s = 0x0800;    // source is stable
inline constexpr uint16_t reg_u = 0x8000;    // Registration: unique
inline constexpr uint16_t purge_n = 0x8000;  // Purge: no reply
inline constexpr uint16_t cisco_nat = 0x0002;
}  // namespace flag

// Extension types (section 5.3); the 0x8000 bit of the wire word is compulsory, 0x4000 unused.
namespace ext {
inline constexpr uint16_t end = 0;
inline constexpr uint16_t responder_address = 3;
inline constexpr uint16_t forward_transit = 4;
inline constexpr uint16_t reverse_transit = 5;
inline constexpr uint16_t authentication = 7;
inline constexpr uint16_t vendor_private = 8;
inline constexpr uint16_t cisco_nat_address = 9;
}  // namespace ext

// Error Indication codes (section 5.2.7) and CIE codes (section 5.2.0.1 and 5.2.x).
namespace error_code {
inline constexpr uint16_t unrecognized_extension = 1;
inline constexpr uint16_t loop_detected = 3;
inline constexpr uint16_t protocol_address_unreachable = 6;
inline constexpr uint16_t protocol_error = 7;
inline constexpr uint16_t sdu_size_exceeded = 8;
inline constexpr uint16_t invalid_extension = 9;
inline constexpr uint16_t invalid_resolution_reply = 10;
inline constexpr uint16_t authentication_failure = 11;
inline constexpr uint16_t hop_count_exceeded = 15;
}  // namespace error_code
namespace cie_code {
inline constexpr uint8_t success = 0;
inline constexpr uint8_t administratively_prohibited = 4;
inline constexpr uint8_t insufficient_resources = 5;
inline constexpr uint8_t no_binding = 12;
inline constexpr uint8_t binding_not_unique = 13;
inline constexpr uint8_t unique_address_already_registered = 14;
}  // namespace cie_code

struct fixed_header {
    uint16_t afn = afn_ipv4;
    uint16_t pro_type = pro_ipv4;
    std::array<uint8_t, 5> pro_snap{};
    uint8_t hop_count = 255;
    uint16_t packet_size = 0;  // parse: as on the wire; build: computed
    uint16_t checksum = 0;     // parse: as on the wire; build: computed
    uint16_t ext_offset = 0;   // parse: as on the wire; build: computed
    uint8_t version = version_1;
    op type = op::registration_request;
    // Only the two non-length bits (0x40 type, 0x80 reserved) of shtl/sstl are taken from here
    // on build, so odd senders round-trip; the length bits come from src_nbma / src_nbma_sub.
    uint8_t shtl = 0;
    uint8_t sstl = 0;

    bool operator==(const fixed_header&) const = default;
};

// Client Information Entry (section 5.2.0.1).
struct cie {
    uint8_t code = 0;
    uint8_t prefix_length = 0;
    uint16_t unused = 0;
    uint16_t mtu = 0;
    uint16_t holding_time = 0;
    uint8_t client_nbma_type = 0;      // the non-length bits (0xc0) of the client address T/L byte
    uint8_t client_nbma_sub_type = 0;  // likewise for the subaddress
    uint8_t preference = 0;
    bytes client_nbma;
    bytes client_nbma_sub;
    bytes client_proto;

    bool operator==(const cie&) const = default;
};

// One extension. Which body fields are meaningful depends on `type`:
//  - responder_address, forward_transit, reverse_transit, cisco_nat_address: `cies`
//    (a cisco_nat_address of length exactly 8 is RFC 2735 Device Capabilities: `raw`)
//  - authentication: `auth_reserved`, `auth_spi`, `data` (Cisco/FRR: reserved 0, SPI 1, password)
//  - vendor_private: `oui`, `data`
//  - end and unknown types: `raw` (kept byte for byte and re-emitted)
// The builder writes only the fields that belong to `type`; a cisco_nat_address with a non-empty
// `raw` is written raw. The parser refuses an End whose length is not 0.
struct extension {
    bool compulsory = false;
    bool u_bit = false;  // the unused 0x4000 bit, kept for exact round trips
    uint16_t type = 0;   // 14 bits
    std::vector<cie> cies;
    uint16_t auth_reserved = 0;
    uint16_t auth_spi = 0;
    std::array<uint8_t, 3> oui{};
    bytes data;
    bytes raw;

    bool operator==(const extension&) const = default;
};

struct packet {
    fixed_header hdr;
    // Types 1-6: flags and request ID. Type 7 and 8 put an unused word where flags are.
    uint16_t flags = 0;
    uint32_t request_id = 0;
    uint16_t error_code = 0;      // type 7 only
    uint16_t error_offset = 0;    // type 7 only
    uint16_t traffic_code = 0;    // type 8 only (0 = redirect)
    uint16_t traffic_unused = 0;  // type 8 only: the word after the traffic code
    bytes src_nbma;
    bytes src_nbma_sub;
    bytes src_proto;
    bytes dst_proto;
    std::vector<cie> cies;  // types 1-6
    bytes contents;         // type 7: the offending packet; type 8: the triggering packet
    // True when the packet has an extension area (ext_offset != 0) even if it holds nothing;
    // the builder sets ext_offset whenever this is true or `extensions` is not empty.
    bool has_extension_area = false;
    std::vector<extension> extensions;  // in wire order, End included when present
    bytes trailing;  // bytes after the End extension up to packet_size, kept for round trips

    bool operator==(const packet&) const = default;
};

enum class parse_error : uint8_t {
    truncated_fixed_header,
    packet_size_below_header,
    packet_size_exceeds_buffer,
    bad_checksum,
    unsupported_version,
    unknown_type,
    ext_offset_inside_header,
    ext_offset_past_end,
    truncated_mandatory_part,
    address_overruns_mandatory_part,
    cie_overruns_mandatory_part,
    truncated_extension_header,
    extension_overruns_packet,
    extension_body_malformed,
    end_extension_not_empty,
    ext_offset_inside_mandatory_part,    // ext_offset cuts the mandatory fields or addresses
    authentication_extension_too_short,  // less than reserved + SPI
    vendor_private_extension_too_short,  // less than an OUI
};
std::string_view name(parse_error e) noexcept;

// Parses one NHRP packet from `data` (the GRE payload). Only the first packet_size bytes are
// read; more bytes after them (link padding) are ignored. The checksum is verified. CIEs (types
// 1-6) or contents (types 7, 8) run from the end of the addresses to ext_offset, or to
// packet_size when ext_offset is 0. Unknown extensions are kept in `raw`, compulsory or not:
// refusing them (Error Indication, unrecognized extension) is the receiver's decision.
wire::result<packet, parse_error> parse(std::span<const uint8_t> data);

enum class build_error : uint8_t {
    address_too_long,  // an address longer than its 6-bit (or 8-bit) length field can say
    packet_too_large,  // more than 65535 bytes
    unknown_type,      // hdr.type is not 1-8
    extension_type_out_of_range,  // more than 14 bits
};
std::string_view name(build_error e) noexcept;

// Serialises `p`, computing packet size, lengths, extension offset and checksum. parse(build(p))
// equals p with those computed fields filled in; build(parse(b)) == b for every accepted b.
// Only the fields of hdr.type are written: request_id for 1-6, error_code/error_offset for 7,
// traffic_code/traffic_unused for 8; cies for 1-6, contents for 7 and 8. `trailing` follows
// the extensions (it only parses back as such after an End).
wire::result<bytes, build_error> build(const packet& p);

// True for the extension types this codec decodes (0, 3, 4, 5, 7, 8, 9).
bool known_extension(uint16_t type) noexcept;

// The index in p.extensions of the first compulsory extension of an unknown type: RFC 2332
// section 5.3 says such a packet is dropped with an Error Indication (unrecognized extension).
std::optional<size_t> first_unknown_compulsory(const packet& p);

// Where p.extensions[index] starts in the packet's bytes (hdr.ext_offset plus the encoded
// extensions before it): the Error Offset of an Error Indication that points at it. Meaningful
// for a packet that came from parse() or whose hdr.ext_offset the builder filled in.
size_t extension_wire_offset(const packet& p, size_t index);

}  // namespace dmvpn::nhrp
