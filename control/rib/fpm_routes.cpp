// zebra's routes into the RIB: protocol, distance, next hop.
#include "control/rib/fpm_routes.hpp"

#include "dataplane/worker_ctx.hpp"

namespace dmvpn::rib {

namespace {

bool within(uint32_t addr, uint32_t network, uint8_t length) noexcept {
    uint32_t mask = length == 0 ? 0 : ~uint32_t{0} << (32 - length);
    return (addr & mask) == network;
}

}  // namespace

std::optional<protocol> fpm_protocol(uint8_t rtm_protocol) noexcept {
    switch (rtm_protocol) {
        case fpm::protocol::kernel:
            return std::nullopt;
        case fpm::protocol::bgp:
            return protocol::ebgp;
        case fpm::protocol::ospf:
            return protocol::ospf;
        case fpm::protocol::isis:
            return protocol::isis;
        case fpm::protocol::rip:
            return protocol::rip;
        case fpm::protocol::eigrp:
            return protocol::eigrp;
        case fpm::protocol::zebra_static:
            return protocol::static_route;
        default:
            return protocol::other;  // sharpd, babel, nhrpd, ...: distance 254
    }
}

std::string_view name(fpm_refusal_reason r) noexcept {
    switch (r) {
        case fpm_refusal_reason::unresolved:
            return "unresolved";
        case fpm_refusal_reason::underlay_transit:
            return "underlay_transit";
        case fpm_refusal_reason::rib_full:
            return "rib_full";
    }
    return "?";
}

fpm_interfaces::resolution fpm_interfaces::resolve(uint32_t gateway) const noexcept {
    resolution res;
    for (const tunnel& t : tunnels) {
        if (within(gateway, t.network, t.length)) {
            res.nh = nh_key{t.slot, gateway};
            return res;
        }
    }
    for (const lan& l : lans) {
        if (within(gateway, l.network, l.length)) {
            res.nh = nh_key{static_cast<uint16_t>(dp::glean_lan_port_bit | l.port), gateway};
            return res;
        }
    }
    for (const underlay& u : underlays) {
        if (within(gateway, u.network, u.length)) {
            // With allow-transit the port routes like a LAN port (ARP there); without, what
            // came back from behind this next hop would be dropped as underlay_transit.
            if (u.allow_transit) {
                res.nh = nh_key{static_cast<uint16_t>(dp::glean_lan_port_bit | u.port), gateway};
            } else {
                res.why = fpm_refusal_reason::underlay_transit;
                res.port = u.port;
            }
            return res;
        }
    }
    return res;
}

void fpm_refusals::note(const prefix_key& k, const fpm_refusal& r) {
    if (auto it = _by_prefix.find(k); it != _by_prefix.end()) {
        it->second = r;
    } else if (_by_prefix.size() < _max) {
        _by_prefix.emplace(k, r);
    } else {
        ++_unlisted;
    }
}

void apply_fpm_batch(rib& r, const fpm::server::batch& b, const fpm_interfaces& ifs,
                     fpm_counters& c, fpm_refusals* refused) {
    ++c.batches;
    for (const fpm::route_update& u : b) {
        prefix_key k{u.prefix, u.len};
        if (refused != nullptr) {
            refused->forget(k);  // whatever comes now replaces the earlier refusal
        }
        if (!u.add) {
            r.withdraw_source(source::fpm, k);
            ++c.withdrawn;
            continue;
        }
        std::optional<protocol> proto = fpm_protocol(u.protocol);
        if (!proto) {
            ++c.ignored_connected;
            continue;
        }
        fpm_refusal no{*proto, fpm_refusal_reason::unresolved, 0, 0};
        auto refuse = [&](uint64_t& counter) {
            r.withdraw_source(source::fpm, k);
            ++counter;
            if (refused != nullptr) {
                refused->note(k, no);
            }
        };
        route want;
        want.distance = default_distance(source::fpm, *proto);
        if (u.blackhole) {
            want.kind = dp::route_kind::blackhole;
        } else {
            // The FIB holds one next hop per prefix: of an ECMP set, the first one that leaves
            // through a hub interface. None: an underlay port that refused one is the reason
            // given, else unresolved.
            for (uint32_t gw : u.gateways) {
                if (gw == 0) {
                    continue;
                }
                fpm_interfaces::resolution res = ifs.resolve(gw);
                if ((want.nh = res.nh)) {
                    break;
                }
                if (no.gateway == 0 || (res.why == fpm_refusal_reason::underlay_transit &&
                                        no.why != fpm_refusal_reason::underlay_transit)) {
                    no.gateway = gw;
                    no.why = res.why;
                    no.port = res.port;
                }
            }
            if (!want.nh) {
                refuse(no.why == fpm_refusal_reason::underlay_transit ? c.underlay_refused
                                                                      : c.unresolved);
                continue;
            }
            want.kind = dp::route_kind::adjacency;
        }
        if (!r.set(origin{source::fpm, *proto}, k, want)) {
            no.why = fpm_refusal_reason::rib_full;
            no.gateway = want.nh ? want.nh->addr : 0;
            refuse(c.refused);
            continue;
        }
        r.withdraw_source(source::fpm, k, *proto);  // another protocol's, replaced
        ++c.installed;
    }
}

}  // namespace dmvpn::rib
