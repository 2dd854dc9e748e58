// Frames the control lcore answers or originates: Ethernet, ARP (RFC 826), ICMP (RFC 792) and the
// outer IPv4 + GRE around NHRP; plain bytes, no DPDK, so the unit tests build them too.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "dataplane/wire/arp.hpp"
#include "dataplane/wire/result.hpp"

namespace dmvpn::hub {

using bytes = std::vector<uint8_t>;
using mac_addr = wire::mac_address;

using wire::broadcast_mac;
using wire::eth_header_size;
using wire::ethertype_arp;
using wire::ethertype_ipv4;

std::string format_mac(const mac_addr& m);

// Destination, source, type, then the payload.
bytes eth_frame(const mac_addr& dst, const mac_addr& src, uint16_t type,
                std::span<const uint8_t> payload);

// --- ARP (Ethernet / IPv4 only) ---
using wire::arp_reply;
using wire::arp_request;
using arp_packet = wire::arp_message;

enum class arp_error : uint8_t {
    truncated,        // shorter than an Ethernet header plus the 28-byte ARP body
    not_arp,          // EtherType is not 0x0806
    not_ethernet_ip,  // hardware type 1 / protocol 0x0800 / lengths 6 and 4 expected
    bad_op,           // neither request nor reply
};
std::string_view name(arp_error e) noexcept;

// `frame` starts at the Ethernet header.
wire::result<arp_packet, arp_error> parse_arp_frame(std::span<const uint8_t> frame) noexcept;
// A whole Ethernet frame: broadcast for a request, to target_mac for a reply.
bytes arp_frame(const arp_packet& a);

// --- IPv4 / ICMP originated by the hub ---
inline constexpr uint8_t icmp_echo_reply = 0;
inline constexpr uint8_t icmp_unreachable = 3;
inline constexpr uint8_t icmp_echo_request = 8;
inline constexpr uint8_t icmp_time_exceeded = 11;
inline constexpr uint8_t icmp_code_frag_needed = 4;

// An IPv4 packet (no options, DF clear, TTL 64 unless given) around a payload.
bytes ipv4_packet(uint32_t src, uint32_t dst, uint8_t protocol, std::span<const uint8_t> payload,
                  uint16_t id, uint8_t ttl = 64);

enum class icmp_error : uint8_t {
    bad_ip,        // the IPv4 header does not parse (or is a fragment)
    not_icmp,      // protocol is not 1
    truncated,     // no room for the 8-byte ICMP header
    bad_checksum,  // ICMP checksum does not verify
    not_echo,      // an ICMP type the hub does not answer
};
std::string_view name(icmp_error e) noexcept;

// The Echo Reply to an Echo Request addressed to the hub (RFC 792, RFC 1122 3.2.2.6: identifier,
// sequence and data echoed). `reply_src` is the address the reply comes from: the request's
// destination, or the receiving interface's when that was a broadcast.
wire::result<bytes, icmp_error> icmp_echo_answer(std::span<const uint8_t> request,
                                                 uint32_t reply_src, uint16_t id);

// An ICMP error about `offending` (its IPv4 header and first 8 payload bytes are quoted, RFC
// 792): type 3 code 4 carries `mtu` as the next-hop MTU (RFC 1191 section 4). Returns nothing
// when no error may be sent about that packet (RFC 1122 3.2.2: ICMP errors, fragments other
// than the first, broadcast or multicast sources or destinations).
std::optional<bytes> icmp_error_about(std::span<const uint8_t> offending, uint8_t type,
                                      uint8_t code, uint16_t mtu, uint32_t src, uint16_t id);

// Outer IPv4 + GRE (key when given) around a payload of GRE protocol type `proto`.
bytes gre_packet(uint32_t src, uint32_t dst, std::optional<uint32_t> key, uint16_t proto,
                 std::span<const uint8_t> payload, uint16_t id, uint8_t ttl = 255);

}  // namespace dmvpn::hub
