// IPv4 header codec (RFC 791) for the worker hot path, the control lcore and the tools.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/wire/result.hpp"

namespace dmvpn::wire {

inline constexpr size_t ipv4_min_header_size = 20;
inline constexpr size_t ipv4_max_header_size = 60;
inline constexpr size_t ipv4_max_options_size = ipv4_max_header_size - ipv4_min_header_size;
inline constexpr size_t ipv4_max_total_length = 65535;

// IANA protocol numbers the hub deals with.
namespace ip_proto {
inline constexpr uint8_t icmp = 1;
inline constexpr uint8_t udp = 17;
inline constexpr uint8_t gre = 47;
inline constexpr uint8_t esp = 50;
}  // namespace ip_proto

// Whether a parser verifies a checksum; the decoder tool shows packets with a bad one too.
enum class checksum_check : uint8_t { verify, skip };

// Every field as it sits on the wire; addresses in host order. `ihl` is in 32-bit words.
struct ipv4_header {
    uint8_t ihl = 5;
    uint8_t tos = 0;
    uint16_t total_length = 0;
    uint16_t id = 0;
    bool reserved_flag = false;  // the "evil bit": kept so that a parsed header re-encodes as-is
    bool df = false;
    bool mf = false;
    uint16_t fragment_offset = 0;  // in 8-byte units, 13 bits
    uint8_t ttl = 0;
    uint8_t protocol = 0;
    uint16_t checksum = 0;
    uint32_t src = 0;
    uint32_t dst = 0;

    bool operator==(const ipv4_header&) const = default;
    size_t header_length() const noexcept { return size_t{ihl} * 4; }
    bool is_fragment() const noexcept { return mf || fragment_offset != 0; }
};

// A parsed packet; every span points into the parsed buffer.
struct ipv4_view {
    ipv4_header hdr;
    std::span<const uint8_t> header;   // the whole header, options included (ihl * 4 bytes)
    std::span<const uint8_t> options;  // ihl * 4 - 20 bytes
    std::span<const uint8_t> payload;  // up to total_length: link-layer padding is cut off
    std::span<const uint8_t> packet;   // header + payload: the total_length bytes consumed
};

enum class ipv4_error : uint8_t {
    truncated,                    // fewer than 20 bytes
    bad_version,                  // version is not 4
    bad_ihl,                      // IHL below 5
    header_truncated,             // IHL * 4 is more than the buffer holds
    total_length_below_header,    // total length shorter than IHL * 4
    total_length_exceeds_buffer,  // total length is more than the buffer holds
    bad_checksum,
};
inline constexpr size_t ipv4_error_count = static_cast<size_t>(ipv4_error::bad_checksum) + 1;
std::string_view name(ipv4_error e) noexcept;

// Checks version, IHL, total length against the buffer and (unless skipped) the header checksum.
// Fragments are accepted: reassembly or refusal is the caller's decision.
result<ipv4_view, ipv4_error> parse_ipv4(std::span<const uint8_t> packet,
                                         checksum_check check = checksum_check::verify) noexcept;

// Writes the header: IHL from options (hdr.ihl is ignored), hdr.checksum is ignored and computed,
// total_length is written as given (the caller knows the payload it will append). Returns the
// bytes written, or 0 when options is not a whole number of words, is over 40 bytes, or out is
// too small.
size_t encode_ipv4(const ipv4_header& hdr, std::span<const uint8_t> options,
                   std::span<uint8_t> out) noexcept;

// Recomputes the checksum of a header already in place (after a TTL or length change). Returns
// false, writing nothing, when the buffer is shorter than 20 bytes or than its IHL says.
bool refresh_ipv4_checksum(std::span<uint8_t> header) noexcept;

// Dotted quad <-> host-order address. The parser is strict: four decimal octets, no leading
// zeros (which some libraries read as octal), no spaces.
std::string format_ipv4(uint32_t addr);
std::optional<uint32_t> parse_ipv4_address(std::string_view text) noexcept;
// Network-order bytes of a host-order address (NHRP address fields, tests).
std::vector<uint8_t> ipv4_bytes(uint32_t addr);

}  // namespace dmvpn::wire
