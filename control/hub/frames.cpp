// Ethernet, ARP, ICMP and GRE frame building for the control lcore.
#include "control/hub/frames.hpp"

#include <algorithm>
#include <cstdio>

#include "dataplane/wire/arp.hpp"
#include "dataplane/wire/checksum.hpp"
#include "dataplane/wire/gre.hpp"
#include "dataplane/wire/ipv4.hpp"
#include "dataplane/wire/reader.hpp"

namespace dmvpn::hub {

std::string format_mac(const mac_addr& m) {
    char buf[18];
    std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
                  m[5]);
    return buf;
}

bytes eth_frame(const mac_addr& dst, const mac_addr& src, uint16_t type,
                std::span<const uint8_t> payload) {
    bytes f(eth_header_size);
    (void)wire::encode_eth(wire::eth_header{dst, src, type}, f);
    f.insert(f.end(), payload.begin(), payload.end());
    return f;
}

std::string_view name(arp_error e) noexcept {
    switch (e) {
        case arp_error::truncated:
            return "truncated";
        case arp_error::not_arp:
            return "not_arp";
        case arp_error::not_ethernet_ip:
            return "not_ethernet_ip";
        case arp_error::bad_op:
            return "bad_op";
    }
    return "unknown";
}

wire::result<arp_packet, arp_error> parse_arp_frame(std::span<const uint8_t> frame) noexcept {
    auto eth = wire::parse_eth(frame);
    if (!eth) {
        return wire::fail(arp_error::truncated);
    }
    if (eth->hdr.type != ethertype_arp) {
        return wire::fail(arp_error::not_arp);
    }
    auto arp = wire::parse_arp(eth->payload);
    if (!arp) {
        switch (arp.error()) {
            case wire::arp_error::truncated:
                return wire::fail(arp_error::truncated);
            case wire::arp_error::not_ethernet_ip:
                return wire::fail(arp_error::not_ethernet_ip);
        }
        return wire::fail(arp_error::truncated);
    }
    // The hub answers requests and learns from replies; any other operation is refused by name.
    if (arp->op != arp_request && arp->op != arp_reply) {
        return wire::fail(arp_error::bad_op);
    }
    return *arp;
}

bytes arp_frame(const arp_packet& a) {
    bytes body(wire::arp_body_size);
    (void)wire::encode_arp(a, body);
    const mac_addr& dst = a.op == arp_request ? broadcast_mac : a.target_mac;
    return eth_frame(dst, a.sender_mac, ethertype_arp, body);
}

bytes ipv4_packet(uint32_t src, uint32_t dst, uint8_t protocol, std::span<const uint8_t> payload,
                  uint16_t id, uint8_t ttl) {
    wire::ipv4_header h;
    h.total_length = static_cast<uint16_t>(wire::ipv4_min_header_size + payload.size());
    h.id = id;
    h.ttl = ttl;
    h.protocol = protocol;
    h.src = src;
    h.dst = dst;
    bytes p(wire::ipv4_min_header_size);
    (void)wire::encode_ipv4(h, {}, p);
    p.insert(p.end(), payload.begin(), payload.end());
    return p;
}

std::string_view name(icmp_error e) noexcept {
    switch (e) {
        case icmp_error::bad_ip:
            return "bad_ip";
        case icmp_error::not_icmp:
            return "not_icmp";
        case icmp_error::truncated:
            return "truncated";
        case icmp_error::bad_checksum:
            return "bad_checksum";
        case icmp_error::not_echo:
            return "not_echo";
    }
    return "unknown";
}

wire::result<bytes, icmp_error> icmp_echo_answer(std::span<const uint8_t> request,
                                                 uint32_t reply_src, uint16_t id) {
    auto ip = wire::parse_ipv4(request);
    if (!ip || ip->hdr.is_fragment()) {
        return wire::fail(icmp_error::bad_ip);
    }
    if (ip->hdr.protocol != wire::ip_proto::icmp) {
        return wire::fail(icmp_error::not_icmp);
    }
    if (ip->payload.size() < 8) {
        return wire::fail(icmp_error::truncated);
    }
    if (wire::inet_checksum(ip->payload) != 0) {
        return wire::fail(icmp_error::bad_checksum);
    }
    if (ip->payload[0] != icmp_echo_request) {
        return wire::fail(icmp_error::not_echo);
    }
    bytes icmp(ip->payload.begin(), ip->payload.end());
    icmp[0] = icmp_echo_reply;
    icmp[1] = 0;
    icmp[2] = 0;
    icmp[3] = 0;
    wire::store_be16(&icmp[2], wire::inet_checksum(icmp));
    return ipv4_packet(reply_src, ip->hdr.src, wire::ip_proto::icmp, icmp, id);
}

namespace {

bool is_multicast_or_broadcast(uint32_t a) { return (a >> 28) == 0xe || a == 0xffffffffu; }

}  // namespace

std::optional<bytes> icmp_error_about(std::span<const uint8_t> offending, uint8_t type,
                                      uint8_t code, uint16_t mtu, uint32_t src, uint16_t id) {
    auto ip = wire::parse_ipv4(offending, wire::checksum_check::skip);
    if (!ip || ip->hdr.fragment_offset != 0 || is_multicast_or_broadcast(ip->hdr.dst) ||
        is_multicast_or_broadcast(ip->hdr.src) || ip->hdr.src == 0) {
        return std::nullopt;
    }
    if (ip->hdr.protocol == wire::ip_proto::icmp) {
        // Never an error about an error: only queries (echo and the like) may trigger one.
        if (ip->payload.empty() || !(ip->payload[0] == icmp_echo_request ||
                                     ip->payload[0] == icmp_echo_reply || ip->payload[0] >= 13)) {
            return std::nullopt;
        }
    }
    bytes icmp;
    wire::writer w(icmp);
    w.u8(type);
    w.u8(code);
    w.be16(0);
    w.be16(0);
    w.be16(type == icmp_unreachable && code == icmp_code_frag_needed ? mtu : 0);
    size_t quote = std::min(ip->packet.size(), ip->header.size() + 8);
    w.bytes(ip->packet.first(quote));
    w.patch16(2, wire::inet_checksum(icmp));
    return ipv4_packet(src, ip->hdr.src, wire::ip_proto::icmp, icmp, id);
}

bytes gre_packet(uint32_t src, uint32_t dst, std::optional<uint32_t> key, uint16_t proto,
                 std::span<const uint8_t> payload, uint16_t id, uint8_t ttl) {
    wire::gre_header g;
    g.key_present = key.has_value();
    g.key = key.value_or(0);
    g.protocol = proto;
    bytes gre(g.header_length());
    (void)wire::encode_gre(g, gre);
    gre.insert(gre.end(), payload.begin(), payload.end());
    return ipv4_packet(src, dst, wire::ip_proto::gre, gre, id, ttl);
}

}  // namespace dmvpn::hub
