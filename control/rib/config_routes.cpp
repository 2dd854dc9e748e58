// Configured routes into the RIB.
#include "control/rib/config_routes.hpp"

#include <map>

#include "dataplane/worker_ctx.hpp"

namespace dmvpn::rib {

size_t load_config_routes(rib& r, const config::topology& t, const config_names& names) {
    std::map<prefix_key, std::pair<origin, route>> next;
    const origin connected{source::connected, protocol::none};
    const origin configured{source::static_route, protocol::none};
    for (const config::port& p : t.ports) {
        auto id = names.port_id(p.name);
        if (!id) {
            continue;
        }
        config::prefix4 sub = p.address.subnet();
        next[{sub.network.value, sub.length}] = {connected,
                                                 route{dp::route_kind::glean_lan, *id, {}}};
        next[{p.address.address.value, 32}] = {connected, route{dp::route_kind::local, 0, {}}};
    }
    for (const config::tunnel& tn : t.tunnels) {
        auto slot = names.tunnel_slot(tn.name);
        if (!slot) {
            continue;
        }
        next[{tn.overlay_prefix.network.value, tn.overlay_prefix.length}] = {
            connected, route{dp::route_kind::glean_tunnel, *slot, {}}};
        next[{tn.overlay_address.value, 32}] = {connected, route{dp::route_kind::local, 0, {}}};
    }
    for (const config::route& cr : t.routes) {
        prefix_key k{cr.prefix.network.value, cr.prefix.length};
        route want;
        want.distance = distance::static_route;
        if (auto slot = names.tunnel_slot(cr.egress)) {
            if (cr.via) {
                want.kind = dp::route_kind::adjacency;
                want.nh = nh_key{*slot, cr.via->value};
            } else {
                want.kind = dp::route_kind::glean_tunnel;
                want.index = *slot;
            }
        } else if (auto id = names.port_id(cr.egress)) {
            if (cr.via) {
                want.kind = dp::route_kind::adjacency;
                want.nh =
                    nh_key{static_cast<uint16_t>(dp::glean_lan_port_bit | *id), cr.via->value};
            } else {
                want.kind = dp::route_kind::glean_lan;
                want.index = *id;
            }
        } else {
            continue;
        }
        next[k] = {configured, want};
    }
    r.begin_resync(source::connected);
    r.begin_resync(source::static_route);
    size_t refused = 0;
    for (const auto& [k, w] : next) {
        if (!r.set(w.first, k, w.second)) {
            ++refused;
        }
    }
    r.end_resync(source::connected);
    r.end_resync(source::static_route);
    return refused;
}

}  // namespace dmvpn::rib
