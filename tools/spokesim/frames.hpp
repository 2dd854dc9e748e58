// Frames the emulated spokes put on and take off the port: Ethernet, ARP, the outer IPv4 header,
// GRE (through the wire codecs), and the inner UDP data packet. Byte buffers only; no DPDK.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "dataplane/wire/arp.hpp"
#include "tools/spokesim/addr.hpp"

namespace dmvpn::spokesim {

using buffer = std::vector<uint8_t>;

using wire::ethertype_arp;
using wire::ethertype_ipv4;
inline constexpr uint16_t gre_proto_nhrp = 0x2001;
inline constexpr uint16_t gre_proto_ipv4 = 0x0800;
inline constexpr uint8_t ip_proto_gre = 47;
inline constexpr uint8_t ip_proto_esp = 50;
inline constexpr uint8_t ip_proto_udp = 17;
inline constexpr uint8_t ip_proto_icmp = 1;
using wire::eth_header_size;
inline constexpr size_t ipv4_header_size = 20;
inline constexpr uint16_t data_dst_port = 9;  // discard: nobody mistakes it for real traffic

using wire::broadcast_mac;

struct eth_view {
    mac dst{};
    mac src{};
    uint16_t type = 0;
    std::span<const uint8_t> payload;
};
std::optional<eth_view> parse_eth(std::span<const uint8_t> frame);
void put_eth(buffer& out, const mac& dst, const mac& src, uint16_t type);

struct arp_view {
    uint16_t op = 0;  // 1 request, 2 reply
    mac sender_mac{};
    ipv4 sender_ip = 0;
    ipv4 target_ip = 0;
};
std::optional<arp_view> parse_arp(std::span<const uint8_t> payload);
// A whole Ethernet frame: request (to broadcast) or reply.
buffer arp_frame(uint16_t op, const mac& src_mac, ipv4 src_ip, const mac& dst_mac, ipv4 dst_ip);

struct ipv4_view {
    ipv4 src = 0;
    ipv4 dst = 0;
    uint8_t proto = 0;
    uint8_t ttl = 0;
    bool checksum_ok = false;
    std::span<const uint8_t> header;
    std::span<const uint8_t> payload;  // up to the total length, link padding removed
};
std::optional<ipv4_view> parse_ipv4(std::span<const uint8_t> packet);
// Appends a 20-byte header for `payload_len` bytes to follow, checksum computed.
void put_ipv4(buffer& out, ipv4 src, ipv4 dst, uint8_t proto, size_t payload_len, uint16_t id,
              uint8_t ttl = 64);

struct gre_view {
    std::optional<uint32_t> key;
    uint16_t proto = 0;
    std::span<const uint8_t> payload;
};
std::optional<gre_view> parse_gre(std::span<const uint8_t> packet);
void put_gre(buffer& out, std::optional<uint32_t> key, uint16_t proto);

// An inner IPv4/UDP data packet: src -> dst, ports, `payload` bytes after the UDP header.
struct udp_view {
    uint16_t src_port = 0;
    uint16_t dst_port = 0;
    std::span<const uint8_t> payload;
};
std::optional<udp_view> parse_udp(std::span<const uint8_t> l4);
void put_udp(buffer& out, uint16_t src_port, uint16_t dst_port, size_t payload_len);

}  // namespace dmvpn::spokesim
