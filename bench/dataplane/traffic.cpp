// Packet builders and size mixes for the dataplane benchmark.
#include "bench/dataplane/traffic.hpp"

#include <algorithm>
#include <stdexcept>

#include "dataplane/wire/checksum.hpp"
#include "dataplane/wire/reader.hpp"

namespace dmvpn::bench {

double size_mix::mean() const {
    double sum = 0;
    for (uint16_t s : cycle) {
        sum += s;
    }
    return sum / static_cast<double>(cycle.size());
}

size_mix parse_size(std::string_view s) {
    if (s == "imix") {
        return size_mix{"imix", std::vector<uint16_t>(imix_cycle.begin(), imix_cycle.end())};
    }
    unsigned v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') {
            throw std::invalid_argument("size: a number of bytes or imix");
        }
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v < 64 || v > plan::tunnel_mtu) {
        throw std::invalid_argument("size: 64 to 1400 bytes");
    }
    return size_mix{std::string(s), {static_cast<uint16_t>(v)}};
}

std::array<uint8_t, 20> key_of(uint32_t spi) {
    std::array<uint8_t, 20> k{};
    uint32_t x = spi * 0x9e3779b1u + 0x7f4a7c15u;
    for (auto& b : k) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b = static_cast<uint8_t>(x);
    }
    return k;
}

bytes ipv4(uint32_t src, uint32_t dst, uint8_t proto, std::span<const uint8_t> payload) {
    // Sized once, then filled: gcc 12 mis-warns (-Warray-bounds) on inserting into a short vector.
    bytes p(20 + payload.size());
    p[0] = 0x45;
    wire::store_be16(&p[2], static_cast<uint16_t>(20 + payload.size()));
    wire::store_be16(&p[4], 1);
    p[8] = 64;
    p[9] = proto;
    wire::store_be32(&p[12], src);
    wire::store_be32(&p[16], dst);
    wire::store_be16(&p[10], wire::inet_checksum(std::span(p).first(20)));
    std::copy(payload.begin(), payload.end(), p.begin() + 20);
    return p;
}

bytes ipv4_udp(uint32_t src, uint32_t dst, uint16_t total_len, uint16_t id) {
    bytes u(total_len - 20u, 0);
    wire::store_be16(&u[0], static_cast<uint16_t>(1024 + id % 4096));
    wire::store_be16(&u[2], 4789);
    wire::store_be16(&u[4], static_cast<uint16_t>(u.size()));
    for (size_t i = 8; i < u.size(); ++i) {
        u[i] = static_cast<uint8_t>(i + id);
    }
    return ipv4(src, dst, 17, u);  // UDP checksum 0: none (RFC 768)
}

bytes gre_keyed(uint32_t key, std::span<const uint8_t> inner) {
    bytes g(8 + inner.size());
    wire::store_be16(&g[0], 0x2000);  // K bit (RFC 2890)
    wire::store_be16(&g[2], 0x0800);
    wire::store_be32(&g[4], key);
    std::copy(inner.begin(), inner.end(), g.begin() + 8);
    return g;
}

bytes ether(const rte_ether_addr& dst, const rte_ether_addr& src, std::span<const uint8_t> l3) {
    bytes f(14 + l3.size());
    std::copy(dst.addr_bytes, dst.addr_bytes + 6, f.begin());
    std::copy(src.addr_bytes, src.addr_bytes + 6, f.begin() + 6);
    f[12] = 0x08;
    f[13] = 0x00;
    std::copy(l3.begin(), l3.end(), f.begin() + 14);
    return f;
}

}  // namespace dmvpn::bench
