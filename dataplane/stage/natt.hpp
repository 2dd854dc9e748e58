// UDP encapsulation of ESP (RFC 3948, NAT traversal) on IPv4 packets in place: the classify
// stage takes ESP-in-UDP apart on the way in, esp_out puts UDP around ESP on the way out.
// Hot path: no allocation, no DPDK calls beyond mbuf arithmetic.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>
#include <cstring>

#include "dataplane/stage/ipv4.hpp"

namespace dmvpn::dp::stage {

inline constexpr uint8_t ip_proto_udp = 17;
inline constexpr uint16_t natt_port = 4500;
inline constexpr uint32_t udp_header_len = 8;

// RFC 3948 section 2.2: UDP to port 4500 whose first four payload bytes (where ESP has its
// SPI) are not zero is ESP; zero is the non-ESP marker (IKE), and a one-byte 0xff payload is
// a NAT keepalive (both for the IKE thread). `ip` is a checked, unfragmented IPv4 packet of
// protocol UDP with `len` bytes present.
inline bool is_esp_in_udp(const uint8_t* ip, uint32_t len) noexcept {
    uint32_t ihl = ipv4_ihl(ip);
    // UDP header + at least the ESP header (SPI, sequence number)
    if (len < ihl + udp_header_len + 8 || wire::load_be16(ip + ihl + 2) != natt_port) {
        return false;
    }
    const uint8_t* esp = ip + ihl + udp_header_len;
    return (esp[0] | esp[1] | esp[2] | esp[3]) != 0;
}

// Rewrites the IPv4 header's checksum field from scratch (20-byte or optioned headers).
inline void ipv4_set_checksum(uint8_t* ip) noexcept {
    uint32_t ihl = ipv4_ihl(ip);
    ip[10] = 0;
    ip[11] = 0;
    // rte_raw_cksum sums native-order words: its complement goes back in native order.
    uint16_t sum = static_cast<uint16_t>(~rte_raw_cksum(ip, ihl));
    std::memcpy(ip + 10, &sum, sizeof(sum));
}

// Decapsulation (RFC 3948 section 3.2, transport mode): the UDP header goes, the IPv4 header
// moves up over it and says protocol ESP. The packet (one segment, starting at its IPv4
// header) keeps its SA lookup by SPI as plain ESP.
inline void natt_strip_udp(rte_mbuf* m) noexcept {
    uint8_t* ip = rte_pktmbuf_mtod(m, uint8_t*);
    uint32_t ihl = ipv4_ihl(ip);
    std::memmove(ip + udp_header_len, ip, ihl);
    rte_pktmbuf_adj(m, udp_header_len);
    ip = rte_pktmbuf_mtod(m, uint8_t*);
    ip[9] = ip_proto_esp;
    wire::store_be16(ip + 2, static_cast<uint16_t>(ipv4_total_length(ip) - udp_header_len));
    ipv4_set_checksum(ip);
}

// Encapsulation (RFC 3948 sections 2.1 and 3.1.1): a UDP header between the IPv4 header and
// ESP, source port `sport`, destination `dport`, checksum 0 (allowed for ESP-in-UDP over
// IPv4). False when the mbuf has no 8 bytes of headroom or the result would pass 65535.
inline bool natt_add_udp(rte_mbuf* m, uint16_t sport, uint16_t dport) noexcept {
    uint8_t* ip = rte_pktmbuf_mtod(m, uint8_t*);
    uint32_t ihl = ipv4_ihl(ip);
    uint32_t total = ipv4_total_length(ip);
    if (total + udp_header_len > 0xffff || rte_pktmbuf_headroom(m) < udp_header_len) {
        return false;
    }
    uint8_t* moved = reinterpret_cast<uint8_t*>(rte_pktmbuf_prepend(m, udp_header_len));
    std::memmove(moved, ip, ihl);
    moved[9] = ip_proto_udp;
    wire::store_be16(moved + 2, static_cast<uint16_t>(total + udp_header_len));
    ipv4_set_checksum(moved);
    uint8_t* udp = moved + ihl;
    wire::store_be16(udp, sport);
    wire::store_be16(udp + 2, dport);
    wire::store_be16(udp + 4, static_cast<uint16_t>(total - ihl + udp_header_len));
    wire::store_be16(udp + 6, 0);
    return true;
}

}  // namespace dmvpn::dp::stage
