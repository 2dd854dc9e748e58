#include "tools/spokesim/frames.hpp"

#include "dataplane/wire/arp.hpp"
#include "dataplane/wire/checksum.hpp"
#include "dataplane/wire/gre.hpp"
#include "dataplane/wire/ipv4.hpp"
#include "dataplane/wire/reader.hpp"

namespace dmvpn::spokesim {

std::optional<eth_view> parse_eth(std::span<const uint8_t> frame) {
    auto eth = wire::parse_eth(frame);
    if (!eth) {
        return std::nullopt;
    }
    wire::reader r(eth->payload);
    uint16_t type = eth->hdr.type;
    // One 802.1Q tag is looked through; the emulator itself never sends tagged frames.
    if (type == wire::ethertype_vlan) {
        auto inner = r.skip(2) ? r.be16() : std::nullopt;
        if (!inner) {
            return std::nullopt;
        }
        type = *inner;
    }
    return eth_view{eth->hdr.dst, eth->hdr.src, type, r.rest()};
}

void put_eth(buffer& out, const mac& dst, const mac& src, uint16_t type) {
    const size_t at = out.size();
    out.resize(at + eth_header_size);
    (void)wire::encode_eth(wire::eth_header{dst, src, type}, std::span(out).subspan(at));
}

std::optional<arp_view> parse_arp(std::span<const uint8_t> payload) {
    auto arp = wire::parse_arp(payload);
    if (!arp) {
        return std::nullopt;
    }
    return arp_view{arp->op, arp->sender_mac, arp->sender_ip, arp->target_ip};
}

buffer arp_frame(uint16_t op, const mac& src_mac, ipv4 src_ip, const mac& dst_mac, ipv4 dst_ip) {
    buffer out;
    out.reserve(60);
    put_eth(out, dst_mac, src_mac, ethertype_arp);
    const size_t at = out.size();
    out.resize(at + wire::arp_body_size);
    // A request's target hardware address is unknown: zeros (RFC 826).
    const wire::arp_message body{op, src_mac, src_ip, op == wire::arp_request ? mac{} : dst_mac,
                                 dst_ip};
    (void)wire::encode_arp(body, std::span(out).subspan(at));
    out.resize(60);  // Ethernet minimum frame without FCS, zero padded
    return out;
}

std::optional<ipv4_view> parse_ipv4(std::span<const uint8_t> packet) {
    // The checksum is reported, not enforced: the engine counts a bad one as corrupt.
    auto p = wire::parse_ipv4(packet, wire::checksum_check::skip);
    // Fragments never reach the emulator's checks whole; refuse them rather than misread them.
    if (!p || p->hdr.is_fragment()) {
        return std::nullopt;
    }
    ipv4_view v;
    v.src = p->hdr.src;
    v.dst = p->hdr.dst;
    v.proto = p->hdr.protocol;
    v.ttl = p->hdr.ttl;
    v.header = p->header;
    v.checksum_ok = wire::inet_checksum(p->header) == 0;
    v.payload = p->payload;
    return v;
}

void put_ipv4(buffer& out, ipv4 src, ipv4 dst, uint8_t proto, size_t payload_len, uint16_t id,
              uint8_t ttl) {
    wire::ipv4_header h;
    h.total_length = static_cast<uint16_t>(ipv4_header_size + payload_len);
    h.id = id;
    h.ttl = ttl;
    h.protocol = proto;
    h.src = src;
    h.dst = dst;
    size_t at = out.size();
    out.resize(at + ipv4_header_size);
    (void)wire::encode_ipv4(h, {}, std::span<uint8_t>(out).subspan(at));
}

std::optional<gre_view> parse_gre(std::span<const uint8_t> packet) {
    auto g = wire::parse_gre(packet);
    if (!g) {
        return std::nullopt;
    }
    gre_view v;
    v.proto = g->hdr.protocol;
    if (g->hdr.key_present) {
        v.key = g->hdr.key;
    }
    v.payload = g->payload;
    return v;
}

void put_gre(buffer& out, std::optional<uint32_t> key, uint16_t proto) {
    wire::gre_header h;
    h.key_present = key.has_value();
    h.key = key.value_or(0);
    h.protocol = proto;
    size_t at = out.size();
    out.resize(at + h.header_length());
    (void)wire::encode_gre(h, std::span<uint8_t>(out).subspan(at));
}

std::optional<udp_view> parse_udp(std::span<const uint8_t> l4) {
    wire::reader r(l4);
    auto sport = r.be16();
    auto dport = r.be16();
    auto len = r.be16();
    if (!r.skip(2) || *len < 8 || *len > l4.size()) {
        return std::nullopt;
    }
    return udp_view{*sport, *dport, l4.subspan(8, *len - 8u)};
}

void put_udp(buffer& out, uint16_t src_port, uint16_t dst_port, size_t payload_len) {
    wire::writer w(out);
    w.be16(src_port);
    w.be16(dst_port);
    w.be16(static_cast<uint16_t>(8 + payload_len));
    w.be16(0);  // no checksum (allowed over IPv4); the payload carries its own check
}

}  // namespace dmvpn::spokesim
