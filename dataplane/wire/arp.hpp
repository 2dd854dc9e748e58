// Ethernet II header and ARP for Ethernet/IPv4 (RFC 826): the hub control lcore and spokesim.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "dataplane/wire/result.hpp"

namespace dmvpn::wire {

using mac_address = std::array<uint8_t, 6>;

inline constexpr mac_address broadcast_mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
inline constexpr uint16_t ethertype_ipv4 = 0x0800;
inline constexpr uint16_t ethertype_arp = 0x0806;
inline constexpr uint16_t ethertype_vlan = 0x8100;
inline constexpr size_t eth_header_size = 14;

struct eth_header {
    mac_address dst{};
    mac_address src{};
    uint16_t type = 0;

    bool operator==(const eth_header&) const = default;
};

// A parsed frame; the payload points into the parsed buffer. VLAN tags are not looked through:
// the type is whatever follows the source address.
struct eth_view {
    eth_header hdr;
    std::span<const uint8_t> payload;
};

enum class eth_error : uint8_t {
    truncated,  // shorter than the 14-byte header
};
std::string_view name(eth_error e) noexcept;

result<eth_view, eth_error> parse_eth(std::span<const uint8_t> frame) noexcept;
// Writes the 14-byte header; returns the bytes written, or 0 when out is too small.
size_t encode_eth(const eth_header& hdr, std::span<uint8_t> out) noexcept;

inline constexpr uint16_t arp_request = 1;
inline constexpr uint16_t arp_reply = 2;
inline constexpr size_t arp_body_size = 28;

// Addresses in host order.
struct arp_message {
    uint16_t op = arp_request;
    mac_address sender_mac{};
    uint32_t sender_ip = 0;
    mac_address target_mac{};
    uint32_t target_ip = 0;

    bool operator==(const arp_message&) const = default;
};

enum class arp_error : uint8_t {
    truncated,        // shorter than the 28-byte Ethernet/IPv4 body
    not_ethernet_ip,  // hardware type 1 / protocol 0x0800 / lengths 6 and 4 expected
};
std::string_view name(arp_error e) noexcept;

// `body` starts after the Ethernet header. The operation is not checked: the hub refuses anything
// but request and reply, while the spoke emulator learns the sender's MAC from any ARP.
result<arp_message, arp_error> parse_arp(std::span<const uint8_t> body) noexcept;
// Writes the 28-byte body as given (target_mac included); returns the bytes written, or 0 when
// out is too small.
size_t encode_arp(const arp_message& a, std::span<uint8_t> out) noexcept;

}  // namespace dmvpn::wire
