// dmvpn-decode's engine: one captured frame in, one line of JSON keyed by Wireshark fields out.
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "control/ike/fragments.hpp"
#include "control/ike/key_log.hpp"
#include "dataplane/wire/pcap_file.hpp"

namespace dmvpn::decode {

using json_scalar = std::variant<uint64_t, bool, std::string>;

// A flat JSON object whose keys keep their first-insertion order. A key is either a scalar
// (set) or an array (append) for fields that can occur more than once in a packet.
class json_object {
public:
    void set(std::string_view key, json_scalar value);
    void append(std::string_view key, json_scalar value);
    bool has(std::string_view key) const noexcept;
    std::string str() const;

private:
    struct field {
        std::string key;
        bool is_array = false;
        std::vector<json_scalar> values;
    };
    field* find(std::string_view key) noexcept;
    std::vector<field> _fields;
};

// Byte strings as tshark prints them (colon-separated lowercase hex), IPv4 addresses (4 octets)
// as dotted quads: shared by the layers (decode_isakmp.cpp).
std::string hex_bytes(std::span<const uint8_t> b);
std::string dotted(std::span<const uint8_t> b);

// The tool's own reasons, for layers no shared codec covers.
enum class decode_error : uint8_t {
    truncated_udp_header,
    udp_length_mismatch,  // the UDP length field disagrees with the IPv4 payload
};
std::string_view name(decode_error e) noexcept;

struct decoded {
    std::string json;     // one line, no newline
    bool nhrp = false;    // carried NHRP (GRE protocol 0x2001 or IP protocol 54)
    bool failed = false;  // has an "error" key
};

// Decodes one record as far as its layers go: link, IPv4, then GRE (NHRP inside 0x2001), NHRP
// (IP protocol 54), ESP, or UDP (ESP in UDP 4500, RFC 3948; IKEv2 on UDP 500 and on UDP 4500
// after the non-ESP marker, through control/ike/message.hpp; ISAKMP / IKEv1, version octet 0x10,
// through decode_isakmp.hpp). Each field a layer has is emitted the way tshark names it; the
// first layer that does not parse adds "error": the reason's name (for IKEv2,
// ike::name(parse_error); for ISAKMP, ike::v1::describe(refusal): reason, payload, offset), and
// decoding stops.
//
// IKEv2 fields (isakmp.*): the header, then per payload its generic header (isakmp.nextpayload,
// criticalpayload, payloadlength; isakmp.typepayload lists one level's types before the next
// level's, as tshark's tree does), SA proposals and transforms with their attributes, KE group
// and data, nonce, notify protocol / SPI size / type / data, ID type, and bytes after the last
// payload as isakmp.extradata. SK bodies stay encrypted unless `k` holds the IKE SA's keys
// (Wireshark's ikev2_decryption_table, dmvpn-decode --ikev2-keys): then the inner payloads
// follow under the same names, as tshark shows them with the same table (a body that does not
// open: "dmvpn.ike.decrypt_error", no tshark field). SKF (RFC 7383 fragments): each gives
// isakmp.frag.number and .total; with the keys and `frags`, each fragment's integrity is checked
// (one that fails: dmvpn.ike.decrypt_error) and the record whose fragment completes the message
// carries the reassembled inner payloads, as tshark shows them in the last fragment's frame.
//
// Fields that occur once per packet are scalars. NHRP CIE fields, extension fields and VLAN
// tags are arrays holding every occurrence in wire order (the mandatory part's CIEs first,
// then each extension's), as `tshark -T ek` lists them. Integers are JSON numbers, booleans
// (FT_BOOLEAN) true/false, addresses dotted quads, byte strings colon-separated hex.
//
// Three keys have no Wireshark field in 4.0: nhrp.traffic.code and nhrp.traffic.unused (the
// Traffic Indication words of draft-detienne-dmvpn-01) and nhrp.indication.packet
// (the bytes of the packet an Error or Traffic Indication quotes).
struct keys {
    std::vector<ike::keylog::ikev2_entry> ikev2;  // parse_ikev2_table() of a key file
};

// IKEv2 messages sent as RFC 7383 fragments, put back together across the records of one
// capture: one control/ike/fragments.hpp reassembly per IKE SA (SPIs) and direction, as the
// engine holds them, each fragment kept only once its integrity check passed. Bounded: at most
// max_messages messages at once (a new one beyond that forgets the oldest IKE SA's), each
// within the engine's limits (ike::max_fragments, ike::max_reassembled).
class ike_fragments {
public:
    static constexpr size_t max_messages = 1024;
    // The reassembly of the IKE SA `spi_i`/`spi_r`'s messages from the initiator (or the
    // responder).
    ike::reassembly& of(uint64_t spi_i, uint64_t spi_r, bool from_initiator);
    size_t size() const noexcept { return _held.size(); }

private:
    struct held {
        uint64_t spi_i = 0, spi_r = 0;
        bool from_initiator = false;
        ike::reassembly r;
    };
    std::deque<held> _held;  // oldest first
};

// `frags`: where fragments of one capture are kept between its records (nullptr: SKF payloads
// are not reassembled).
decoded decode_record(const wire::pcap::record& rec, const keys* k = nullptr,
                      ike_fragments* frags = nullptr);

}  // namespace dmvpn::decode
