#include "dataplane/wire/arp.hpp"

#include <algorithm>

#include "dataplane/wire/reader.hpp"

namespace dmvpn::wire {

namespace {

mac_address to_mac(std::span<const uint8_t> b) noexcept {
    mac_address m{};
    std::copy_n(b.begin(), m.size(), m.begin());
    return m;
}

uint8_t* put_mac(uint8_t* p, const mac_address& m) noexcept {
    return std::copy(m.begin(), m.end(), p);
}

}  // namespace

std::string_view name(eth_error e) noexcept {
    switch (e) {
        case eth_error::truncated:
            return "truncated";
    }
    return "unknown";
}

std::string_view name(arp_error e) noexcept {
    switch (e) {
        case arp_error::truncated:
            return "truncated";
        case arp_error::not_ethernet_ip:
            return "not_ethernet_ip";
    }
    return "unknown";
}

result<eth_view, eth_error> parse_eth(std::span<const uint8_t> frame) noexcept {
    reader r(frame);
    auto dst = r.bytes(6);
    auto src = r.bytes(6);
    auto type = r.be16();
    if (!dst || !src || !type) {
        return fail(eth_error::truncated);
    }
    return eth_view{eth_header{to_mac(*dst), to_mac(*src), *type}, r.rest()};
}

size_t encode_eth(const eth_header& hdr, std::span<uint8_t> out) noexcept {
    if (out.size() < eth_header_size) {
        return 0;
    }
    uint8_t* p = put_mac(out.data(), hdr.dst);
    p = put_mac(p, hdr.src);
    store_be16(p, hdr.type);
    return eth_header_size;
}

result<arp_message, arp_error> parse_arp(std::span<const uint8_t> body) noexcept {
    reader r(body);
    // Every field is pulled before any is judged, so a short body is always "truncated".
    auto htype = r.be16();
    auto ptype = r.be16();
    auto hlen = r.u8();
    auto plen = r.u8();
    auto op = r.be16();
    auto sha = r.bytes(6);
    auto spa = r.be32();
    auto tha = r.bytes(6);
    auto tpa = r.be32();
    if (!htype || !ptype || !hlen || !plen || !op || !sha || !spa || !tha || !tpa) {
        return fail(arp_error::truncated);
    }
    if (*htype != 1 || *ptype != ethertype_ipv4 || *hlen != 6 || *plen != 4) {
        return fail(arp_error::not_ethernet_ip);
    }
    return arp_message{*op, to_mac(*sha), *spa, to_mac(*tha), *tpa};
}

size_t encode_arp(const arp_message& a, std::span<uint8_t> out) noexcept {
    if (out.size() < arp_body_size) {
        return 0;
    }
    uint8_t* p = out.data();
    store_be16(p, 1);
    store_be16(p + 2, ethertype_ipv4);
    p[4] = 6;
    p[5] = 4;
    store_be16(p + 6, a.op);
    p = put_mac(p + 8, a.sender_mac);
    store_be32(p, a.sender_ip);
    p = put_mac(p + 4, a.target_mac);
    store_be32(p, a.target_ip);
    return arp_body_size;
}

}  // namespace dmvpn::wire
