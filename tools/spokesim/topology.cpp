#include "tools/spokesim/topology.hpp"

#include <fmt/format.h>

namespace dmvpn::spokesim {

namespace {

// splitmix64 (Steele, Lea, Flood 2014): a well-mixed, reproducible stream from one seed. Test
// keys only; nothing here is meant to be secret.
uint64_t splitmix64(uint64_t& state) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

std::string hex(const std::vector<uint8_t>& b) {
    std::string s;
    for (uint8_t c : b) {
        s += fmt::format("{:02x}", c);
    }
    return s;
}

}  // namespace

sa_material derive_sa(uint64_t seed, uint32_t index, bool to_hub, uint32_t spi_base,
                      esp_transform t) {
    sa_material m;
    m.spi = spi_base + 2 * index + (to_hub ? 0 : 1);
    uint64_t state = seed ^ (uint64_t{index} << 1 | (to_hub ? 0 : 1)) * 0xd6e8feb86659fd93ull;
    auto fill = [&state](std::vector<uint8_t>& out, size_t len) {
        while (out.size() < len) {
            uint64_t r = splitmix64(state);
            for (int i = 0; i < 8 && out.size() < len; ++i) {
                out.push_back(static_cast<uint8_t>(r >> (8 * i)));
            }
        }
    };
    const bool aes256 = t == esp_transform::aes256_gcm || t == esp_transform::aes256_cbc_sha256_128;
    const bool des3 = t == esp_transform::des3_cbc_md5_96 || t == esp_transform::des3_cbc_sha1_96;
    fill(m.key, des3 ? 24 : aes256 ? 32 : 16);
    // The salt comes next in the stream for every transform, so GCM keys stay what they were.
    std::vector<uint8_t> salt;
    fill(salt, 4);
    if (is_gcm(t)) {
        m.salt = std::move(salt);
    } else {
        const bool sha1 =
            t == esp_transform::aes128_cbc_sha1_96 || t == esp_transform::des3_cbc_sha1_96;
        const bool md5 =
            t == esp_transform::des3_cbc_md5_96 || t == esp_transform::aes128_cbc_md5_96;
        fill(m.integrity_key, md5 ? 16 : sha1 ? 20 : 32);
    }
    return m;
}

topology::topology(const options& o) : _opts(o), _count(o.spokes) {
    _hub_nbma = o.hub_nbma != 0 ? o.hub_nbma : o.nbma_prefix.network + 1;
    _hub_overlay = o.hub_overlay != 0 ? o.hub_overlay : o.tunnel_prefix.network + 1;
    _first_nbma = o.nbma_prefix.network + o.nbma_offset + o.first_spoke;
    _first_overlay = o.tunnel_prefix.network + o.overlay_offset + o.first_spoke;
}

prefix topology::lan_of(uint32_t local) const noexcept {
    uint32_t n = _opts.first_spoke + local;
    ipv4 net =
        _opts.lan_prefix.network + (_opts.lan_length == 32 ? n : n << (32 - _opts.lan_length));
    return prefix{net, _opts.lan_length};
}

ipv4 topology::traffic_address_of(uint32_t local) const noexcept {
    if (_opts.traffic == traffic_addressing::lan) {
        return lan_of(local).network + 1;
    }
    return overlay_of(local);
}

spoke_identity topology::spoke(uint32_t local) const {
    spoke_identity s;
    s.index = _opts.first_spoke + local;
    s.nbma = nbma_of(local);
    s.overlay = overlay_of(local);
    s.lan = lan_of(local);
    if (_opts.esp != esp_transform::none) {
        s.to_hub = derive_sa(_opts.sa_seed, s.index, true, _opts.spi_base, _opts.esp);
        s.from_hub = derive_sa(_opts.sa_seed, s.index, false, _opts.spi_base, _opts.esp);
    }
    return s;
}

std::optional<uint32_t> topology::local_by_nbma(ipv4 a) const noexcept {
    if (a >= _first_nbma && a - _first_nbma < _count) {
        return a - _first_nbma;
    }
    return std::nullopt;
}

std::optional<uint32_t> topology::local_by_overlay(ipv4 a) const noexcept {
    if (a >= _first_overlay && a - _first_overlay < _count) {
        return a - _first_overlay;
    }
    return std::nullopt;
}

std::optional<uint32_t> topology::local_by_destination(ipv4 a) const noexcept {
    if (auto l = local_by_overlay(a)) {
        return l;
    }
    if (!_opts.lan_prefix.contains(a)) {
        return std::nullopt;
    }
    uint64_t n = _opts.lan_length == 32 ? a - _opts.lan_prefix.network
                                        : (a - _opts.lan_prefix.network) >> (32 - _opts.lan_length);
    if (n >= _opts.first_spoke && n - _opts.first_spoke < _count) {
        return static_cast<uint32_t>(n - _opts.first_spoke);
    }
    return std::nullopt;
}

std::string topology::sa_yaml() const {
    // config/load.cpp's schema: ipsec-profiles / manual-sas / peer, inbound, outbound. The hub's
    // inbound is what the spoke sends with.
    std::string out = fmt::format(
        "# {} spokes from dmvpn-spokesim --sa-seed {} --spi-base {:#x}; the tunnel names this\n"
        "# profile with `ipsec-profile: spokesim`\n"
        "ipsec-profiles:\n  - name: spokesim\n    transform: {}\n    manual-sas:\n",
        _count, _opts.sa_seed, _opts.spi_base, name(_opts.esp));
    for (uint32_t i = 0; i < _count; ++i) {
        spoke_identity s = spoke(i);
        out += fmt::format("      - peer: {}\n", to_string(s.nbma));
        for (const sa_material* m : {&s.to_hub, &s.from_hub}) {
            const bool gcm = is_gcm(_opts.esp);
            out +=
                fmt::format("        {}: {{spi: {}, key: \"{}\", {}: \"{}\"}}\n",
                            m == &s.to_hub ? "inbound" : "outbound", m->spi, hex(m->key),
                            gcm ? "salt" : "integrity-key", hex(gcm ? m->salt : m->integrity_key));
        }
    }
    return out;
}

}  // namespace dmvpn::spokesim
