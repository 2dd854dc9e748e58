// IPv4 header checks and in-place edits shared by the stages (hot path, no DPDK calls
// beyond the raw checksum).
#pragma once

#include <rte_ip.h>

#include <cstdint>
#include <optional>

#include "dataplane/drop_reason.hpp"
#include "dataplane/wire/reader.hpp"

namespace dmvpn::dp::stage {

inline constexpr uint8_t ip_proto_tcp = 6;
inline constexpr uint8_t ip_proto_gre = 47;
inline constexpr uint8_t ip_proto_esp = 50;
inline constexpr uint16_t ip_flag_df = 0x4000;
inline constexpr uint16_t ip_flag_mf = 0x2000;
inline constexpr uint16_t ip_offset_mask = 0x1fff;

inline uint32_t ipv4_ihl(const uint8_t* ip) noexcept { return uint32_t{ip[0] & 0x0fu} * 4; }
inline uint16_t ipv4_total_length(const uint8_t* ip) noexcept { return wire::load_be16(ip + 2); }
inline uint32_t ipv4_src(const uint8_t* ip) noexcept { return wire::load_be32(ip + 12); }
inline uint32_t ipv4_dst(const uint8_t* ip) noexcept { return wire::load_be32(ip + 16); }
inline bool ipv4_is_fragment(const uint8_t* ip) noexcept {
    return (wire::load_be16(ip + 6) & (ip_flag_mf | ip_offset_mask)) != 0;
}

// Checks an IPv4 header with `avail` bytes readable from `ip` (RFC 791: version, IHL, total
// length against the header and the bytes present, header checksum). nullopt: valid.
inline std::optional<drop_reason> ipv4_check(const uint8_t* ip, uint32_t avail) noexcept {
    if (avail < sizeof(rte_ipv4_hdr)) {
        return drop_reason::ipv4_truncated;
    }
    if ((ip[0] >> 4) != 4) {
        return drop_reason::ipv4_bad_version;
    }
    uint32_t ihl = ipv4_ihl(ip);
    if (ihl < sizeof(rte_ipv4_hdr)) {
        return drop_reason::ipv4_bad_ihl;
    }
    if (avail < ihl) {
        return drop_reason::ipv4_truncated;
    }
    uint32_t total = ipv4_total_length(ip);
    if (total < ihl) {
        return drop_reason::ipv4_bad_length;
    }
    if (total > avail) {
        return drop_reason::ipv4_truncated;
    }
    // Summing a header that holds its own correct checksum gives all ones (RFC 1071).
    if (rte_raw_cksum(ip, ihl) != 0xffff) {
        return drop_reason::ipv4_bad_checksum;
    }
    return std::nullopt;
}

// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for one 16-bit word changing from old to new.
inline uint16_t checksum_update16(uint16_t hc, uint16_t old_word, uint16_t new_word) noexcept {
    uint32_t sum = uint32_t{static_cast<uint16_t>(~hc)} +
                   uint32_t{static_cast<uint16_t>(~old_word)} + new_word;
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
}

// Forwarding: TTL minus one with the header checksum fixed incrementally.
inline void ipv4_decrement_ttl(uint8_t* ip) noexcept {
    uint16_t old_word = wire::load_be16(ip + 8);
    ip[8] = static_cast<uint8_t>(ip[8] - 1);
    uint16_t new_word = wire::load_be16(ip + 8);
    wire::store_be16(ip + 10, checksum_update16(wire::load_be16(ip + 10), old_word, new_word));
}

}  // namespace dmvpn::dp::stage
