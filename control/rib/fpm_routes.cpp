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

std::optional<nh_key> fpm_interfaces::next_hop(uint32_t gateway) const noexcept {
    for (const tunnel& t : tunnels) {
        if (within(gateway, t.network, t.length)) {
            return nh_key{t.slot, gateway};
        }
    }
    for (const lan& l : lans) {
        if (within(gateway, l.network, l.length)) {
            return nh_key{static_cast<uint16_t>(dp::glean_lan_port_bit | l.port), gateway};
        }
    }
    return std::nullopt;
}

void apply_fpm_batch(rib& r, const fpm::server::batch& b, const fpm_interfaces& ifs,
                     fpm_counters& c) {
    ++c.batches;
    for (const fpm::route_update& u : b) {
        prefix_key k{u.prefix, u.len};
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
        route want;
        want.distance = default_distance(source::fpm, *proto);
        if (u.blackhole) {
            want.kind = dp::route_kind::blackhole;
        } else {
            // The FIB holds one next hop per prefix: of an ECMP set, the first one that leaves
            // through a hub interface.
            for (uint32_t gw : u.gateways) {
                if (gw != 0) {
                    if ((want.nh = ifs.next_hop(gw))) {
                        break;
                    }
                }
            }
            if (!want.nh) {
                r.withdraw_source(source::fpm, k);
                ++c.unresolved;
                continue;
            }
            want.kind = dp::route_kind::adjacency;
        }
        if (!r.set(origin{source::fpm, *proto}, k, want)) {
            r.withdraw_source(source::fpm, k);
            ++c.refused;
            continue;
        }
        r.withdraw_source(source::fpm, k, *proto);  // another protocol's, replaced
        ++c.installed;
    }
}

}  // namespace dmvpn::rib
