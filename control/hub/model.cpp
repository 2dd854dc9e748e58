// Building the dataplane topology, the NHRP server configuration and SA parameters.
#include "control/hub/model.hpp"

#include <algorithm>
#include <cstring>

#include "dataplane/token_bucket.hpp"

namespace dmvpn::hub {

bool tunnel_slots::assign(const config::topology& t) {
    std::vector<std::string> next = _names;
    for (std::string& n : next) {
        if (t.find_tunnel(n) == nullptr) {
            n.clear();
        }
    }
    for (const config::tunnel& tun : t.tunnels) {
        if (std::find(next.begin(), next.end(), tun.name) != next.end()) {
            continue;
        }
        auto free = std::find(next.begin(), next.end(), std::string{});
        if (free != next.end()) {
            *free = tun.name;
        } else {
            next.push_back(tun.name);
        }
    }
    while (!next.empty() && next.back().empty()) {
        next.pop_back();
    }
    if (next.size() > dp::max_tunnels) {
        return false;
    }
    _names = std::move(next);
    return true;
}

std::optional<uint16_t> tunnel_slots::slot(const std::string& tunnel) const {
    auto it = std::find(_names.begin(), _names.end(), tunnel);
    if (tunnel.empty() || it == _names.end()) {
        return std::nullopt;
    }
    return static_cast<uint16_t>(it - _names.begin());
}

const std::string* tunnel_slots::name(uint16_t slot) const {
    return slot < _names.size() && !_names[slot].empty() ? &_names[slot] : nullptr;
}

dp::topology dataplane_topology(const config::topology& t, const tunnel_slots& slots,
                                const std::map<std::string, opened_port>& ports) {
    dp::topology d;
    for (const auto& [name, p] : ports) {
        if (p.id < dp::max_ports) {
            std::memcpy(d.ports[p.id].mac.addr_bytes, p.mac.data(), 6);
            d.ports[p.id].mtu = p.mtu;
            const config::port* cp = t.find_port(name);
            d.ports[p.id].drop_transit =
                cp != nullptr && cp->role == config::port_role::underlay && !cp->allow_transit;
            for (const config::kernel_interface& k : t.routing.interfaces) {
                d.ports[p.id].link_local_to_host |= k.create && k.port == name;
            }
            d.n_ports = std::max<uint16_t>(d.n_ports, static_cast<uint16_t>(p.id + 1));
        }
    }
    for (const config::tunnel& tun : t.tunnels) {
        auto s = slots.slot(tun.name);
        auto p = ports.find(tun.port);
        if (!s || p == ports.end()) {
            continue;
        }
        dp::tunnel_info& ti = d.tunnels[*s];
        ti.nbma = tun.nbma_source.value;
        ti.overlay = tun.overlay_address.value;
        ti.has_key = tun.gre_key.has_value();
        ti.key = tun.gre_key.value_or(0);
        ti.ipsec = !tun.ipsec_profile.empty();
        ti.ttl = 255;
        ti.df = dp::df_policy::copy;
        ti.ip_mtu = tun.ip_mtu;
        ti.tcp_mss = tun.tcp_adjust_mss;
        ti.underlay_port = p->second.id;
        ti.verify_source = tun.verify_source;
        d.n_tunnels = std::max<uint16_t>(d.n_tunnels, static_cast<uint16_t>(*s + 1));
    }
    return d;
}

namespace {

nhrp::tunnel_config tunnel_config_of(const config::tunnel& tun, uint16_t slot,
                                     const nhrp::route_lookup& route) {
    nhrp::tunnel_config c;
    c.id = slot;
    c.name = tun.name;
    c.overlay_address = tun.overlay_address.value;
    c.overlay_prefix_len = tun.overlay_prefix.length;
    c.nbma_address = tun.nbma_source.value;
    c.gre_key = tun.gre_key;
    c.network_id = tun.nhrp.network_id;
    c.authentication = tun.nhrp.authentication;
    c.holdtime_s = tun.nhrp.holdtime;
    c.mtu = tun.ip_mtu;
    c.redirect = tun.nhrp.redirect && tun.nhrp.phase >= 3;
    c.redirect_rate_per_s = tun.nhrp.redirect_rate_limit;
    c.forward_resolution_to_owner = tun.nhrp.phase >= 3;
    c.multicast_dynamic = tun.nhrp.multicast_dynamic;
    for (config::ipv4 a : tun.nhrp.multicast_static) {
        c.multicast_nbma.push_back(a.value);
    }
    for (const config::nhrp_mapping& m : tun.nhrp.maps) {
        bool mcast = std::find(tun.nhrp.multicast_static.begin(), tun.nhrp.multicast_static.end(),
                               m.nbma) != tun.nhrp.multicast_static.end();
        c.static_maps.push_back(nhrp::static_map{m.overlay.value, 32, m.nbma.value, mcast});
    }
    for (const config::nhrp_mapping& m : tun.nhrp.nhs) {
        c.nhs_peers.push_back(nhrp::nhs_peer{m.overlay.value, m.nbma.value});
    }
    c.registration_timeout_s = tun.nhrp.registration_timeout;
    c.max_cache_entries = tun.nhrp.max_cache_entries;
    c.max_entries_per_nbma = tun.nhrp.max_entries_per_nbma;
    c.holdtime_min_s = tun.nhrp.holdtime_min;
    c.holdtime_max_s = tun.nhrp.holdtime_max;
    for (const config::prefix4& p : tun.nhrp.registration_prefixes) {
        c.registration_prefixes.push_back(nhrp::prefix{p.network.value, p.length});
    }
    if (tun.nhrp.phase >= 2) {
        c.route = route;
    }
    return c;
}

}  // namespace

nhrp::server_config server_config_of(const config::topology& t, const tunnel_slots& slots,
                                     const nhrp::route_lookup& route) {
    nhrp::server_config sc;
    uint32_t rate = 0;
    size_t cache = 0;
    for (const config::tunnel& tun : t.tunnels) {
        auto s = slots.slot(tun.name);
        if (!s) {
            continue;
        }
        sc.tunnels.push_back(tunnel_config_of(tun, *s, route));
        rate = std::max(rate, tun.nhrp.registration_rate_limit);
        cache += tun.nhrp.max_cache_entries;
    }
    if (rate != 0) {
        sc.registration_rate_per_s = rate;
        sc.registration_burst = 2 * rate;
    }
    sc.initial_cache_capacity = std::min<size_t>(std::max<size_t>(cache, 16), 65536);
    return sc;
}

bool same_nhrp_view(const config::tunnel& a, const config::tunnel& b) {
    return a.name == b.name && a.port == b.port && a.nbma_source == b.nbma_source &&
           a.overlay_address == b.overlay_address && a.overlay_prefix == b.overlay_prefix &&
           a.gre_key == b.gre_key && a.nhrp == b.nhrp && a.ip_mtu == b.ip_mtu;
}

crypto::sa_params sa_params_of(const config::ipsec_profile& p, const config::sa_keys& k,
                               crypto::sa_direction d, std::vector<uint8_t>& key_storage) {
    crypto::sa_params sp;
    sp.spi = k.spi;
    sp.direction = d;
    sp.esn = p.esn;
    sp.replay_window = p.replay_window;
    sp.anti_replay = p.anti_replay;
    sp.lifetime = crypto::sa_lifetime{p.lifetime.soft_packets, p.lifetime.hard_packets,
                                      p.lifetime.soft_bytes, p.lifetime.hard_bytes};
    key_storage = k.key;
    if (config::is_gcm(p.xform)) {
        sp.cipher = crypto::cipher_alg::aes_gcm_16;
        sp.integ = crypto::integ_alg::none;
        key_storage.insert(key_storage.end(), k.salt.begin(), k.salt.end());
    } else {
        using config::transform;
        const bool des3 =
            p.xform == transform::des3_cbc_md5_96 || p.xform == transform::des3_cbc_sha1_96;
        sp.cipher = des3 ? crypto::cipher_alg::des3_cbc : crypto::cipher_alg::aes_cbc;
        switch (p.xform) {
            case transform::aes128_cbc_sha1_96:
            case transform::des3_cbc_sha1_96:
                sp.integ = crypto::integ_alg::hmac_sha1_96;
                break;
            case transform::des3_cbc_md5_96:
            case transform::aes128_cbc_md5_96:
                sp.integ = crypto::integ_alg::hmac_md5_96;
                break;
            default:
                sp.integ = crypto::integ_alg::hmac_sha256_128;
                break;
        }
        sp.integ_key = k.integrity_key;
    }
    sp.cipher_key = key_storage;
    return sp;
}

std::array<uint32_t, dp::punt_class_count> worker_punt_rates(const config::punt_rates& r,
                                                             uint16_t workers) {
    std::array<uint32_t, dp::punt_class_count> out{};
    auto set = [&](size_t cls, uint32_t hub_wide) {
        out[cls] = static_cast<uint32_t>(dp::share_of(hub_wide, workers));
    };
    auto reason = [](dp::punt_reason p) { return static_cast<size_t>(p); };
    set(reason(dp::punt_reason::nhrp), r.nhrp);
    set(reason(dp::punt_reason::arp), r.arp);
    set(reason(dp::punt_reason::for_us), r.for_us);
    set(reason(dp::punt_reason::multicast), r.multicast);
    set(reason(dp::punt_reason::ttl_exceeded), r.ttl_exceeded);
    set(reason(dp::punt_reason::frag_needed), r.frag_needed);
    set(reason(dp::punt_reason::glean), r.glean);
    set(reason(dp::punt_reason::redirect), r.redirect);
    set(dp::punt_class_ike, r.ike);
    static_assert(dp::punt_class_count == 9, "a new punt class needs its hub.punt-rates key");
    return out;
}

}  // namespace dmvpn::hub
