// GRE header codec: RFC 2784 with the key and sequence number extensions of RFC 2890.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "dataplane/wire/ipv4.hpp"
#include "dataplane/wire/result.hpp"

namespace dmvpn::wire {

inline constexpr size_t gre_min_header_size = 4;
inline constexpr size_t gre_max_header_size = 16;

// GRE protocol type field values (EtherTypes; NHRP's is RFC 2332 section 3).
namespace gre_proto {
inline constexpr uint16_t ipv4 = 0x0800;
inline constexpr uint16_t cdp = 0x2000;
inline constexpr uint16_t nhrp = 0x2001;
}  // namespace gre_proto

struct gre_header {
    bool checksum_present = false;  // C, bit 0
    bool key_present = false;       // K, bit 2 (RFC 2890)
    bool sequence_present = false;  // S, bit 3 (RFC 2890)
    // Bits 6-12: senders write zero, receivers ignore (RFC 2784 section 2.3); kept so that a
    // parsed header re-encodes byte for byte.
    uint8_t reserved0 = 0;
    uint8_t version = 0;  // bits 13-15; parse accepts only 0
    uint16_t protocol = 0;
    uint16_t checksum = 0;   // present when checksum_present
    uint16_t reserved1 = 0;  // present when checksum_present
    uint32_t key = 0;        // present when key_present
    uint32_t sequence = 0;   // present when sequence_present

    bool operator==(const gre_header&) const = default;
    constexpr size_t header_length() const noexcept {
        return gre_min_header_size + (checksum_present ? 4 : 0) + (key_present ? 4 : 0) +
               (sequence_present ? 4 : 0);
    }
};

struct gre_view {
    gre_header hdr;
    size_t header_length = 0;
    std::span<const uint8_t> payload;  // everything after the header
};

enum class gre_error : uint8_t {
    truncated,          // fewer than 4 bytes
    reserved_bits_set,  // bit 1, 4 or 5 set: routing/strict route/recursion (RFC 1701 only)
    bad_version,        // version is not 0
    fields_truncated,   // C, K or S announce fields the buffer does not hold
    bad_checksum,       // C set and the checksum over header + payload does not verify
};
inline constexpr size_t gre_error_count = static_cast<size_t>(gre_error::bad_checksum) + 1;
std::string_view name(gre_error e) noexcept;

// The GRE packet is the whole of `packet` (the IPv4 payload): the checksum covers it all.
result<gre_view, gre_error> parse_gre(std::span<const uint8_t> packet,
                                      checksum_check check = checksum_check::verify) noexcept;

// Writes the header as given (checksum field included: fill it afterwards with
// fill_gre_checksum once the payload is in place). Only the low 7 bits of reserved0 and the low
// 3 bits of version are written. Returns hdr.header_length(), or 0 when out is too small.
size_t encode_gre(const gre_header& hdr, std::span<uint8_t> out) noexcept;

// Computes and stores the checksum of a whole GRE packet (header + payload) whose C bit is set.
// Returns false, writing nothing, when C is clear or the packet is too short for its header.
bool fill_gre_checksum(std::span<uint8_t> packet) noexcept;

}  // namespace dmvpn::wire
