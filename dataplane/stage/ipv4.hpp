// IPv4 header checks and in-place edits shared by the stages (hot path, no DPDK calls
// beyond the raw checksum).
#pragma once

#include <rte_ip.h>

#include <cstdint>
#include <cstring>
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

// True when the header (ihl bytes) sums to all ones, i.e. holds its own correct checksum
// (RFC 1071). The common 20-byte header is summed as five 32-bit words: the ones'-complement
// sum of the 16-bit words is that sum folded modulo 0xffff (all ones standing for zero), so
// "sums to all ones" is "a non-zero multiple of 0xffff". Options go through rte_raw_cksum.
inline bool ipv4_header_sum_ok(const uint8_t* ip, uint32_t ihl) noexcept {
    if (ihl == sizeof(rte_ipv4_hdr)) {
        uint32_t w[5];
        std::memcpy(w, ip, sizeof(w));
        uint64_t s = uint64_t{w[0]} + w[1] + w[2] + w[3] + w[4];
        return s != 0 && s % 0xffffu == 0;
    }
    return rte_raw_cksum(ip, ihl) == 0xffff;
}

// Checks an IPv4 header with `avail` bytes readable from `ip` (RFC 791: version, IHL, total
// length against the header and the bytes present, header checksum). nullopt: valid.
inline std::optional<drop_reason> ipv4_check(const uint8_t* ip, uint32_t avail) noexcept {
    // The usual header (version 4, no options) first, in as few tests as possible; anything
    // else, valid or not, takes the full sequence below, which names the reason.
    if (avail >= sizeof(rte_ipv4_hdr) && ip[0] == 0x45) {
        uint32_t total = ipv4_total_length(ip);
        if (total >= sizeof(rte_ipv4_hdr) && total <= avail) {
            if (!ipv4_header_sum_ok(ip, sizeof(rte_ipv4_hdr))) {
                return drop_reason::ipv4_bad_checksum;
            }
            return std::nullopt;
        }
    }
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
    if (!ipv4_header_sum_ok(ip, ihl)) {
        return drop_reason::ipv4_bad_checksum;
    }
    return std::nullopt;
}

// The Phase 3 redirect limiter's key for a packet: (source, destination).
inline uint64_t redirect_key(const uint8_t* ip) noexcept {
    return (uint64_t{ipv4_src(ip)} << 32) | ipv4_dst(ip);
}

// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for one 16-bit word changing from old to new.
inline uint16_t checksum_update16(uint16_t hc, uint16_t old_word, uint16_t new_word) noexcept {
    uint32_t sum = uint32_t{static_cast<uint16_t>(~hc)} +
                   uint32_t{static_cast<uint16_t>(~old_word)} + new_word;
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
}

// Forwarding: TTL minus one with the header checksum fixed incrementally. The TTL/protocol
// word drops by 0x0100 (TTL >= 1, so nothing borrows), and in RFC 1624 eqn. 3 ~m + m' is then
// the constant 0xfeff: the same result as checksum_update16 with the words spelled out.
inline void ipv4_decrement_ttl(uint8_t* ip) noexcept {
    ip[8] = static_cast<uint8_t>(ip[8] - 1);
    uint32_t sum = uint32_t{static_cast<uint16_t>(~wire::load_be16(ip + 10))} + 0xfeffu;
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    wire::store_be16(ip + 10, static_cast<uint16_t>(~sum));
}

}  // namespace dmvpn::dp::stage
