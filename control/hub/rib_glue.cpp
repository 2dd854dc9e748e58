// The hub's side of the RIB (control/rib): the FIB and adjacency slots of the publisher, the
// configured routes fed in, a next hop's adjacency written from ARP and the peer's SA.
#include <algorithm>
#include <cstring>

#include <fmt/core.h>

#include "control/hub/hub.hpp"
#include "control/log.hpp"
#include "control/rib/config_routes.hpp"
#include "dataplane/wire/ipv4.hpp"
#include "dataplane/worker_ctx.hpp"

namespace dmvpn::hub {

std::optional<uint32_t> hub::rib_glue::alloc_adjacency() { return h.alloc_adjacency(); }

void hub::rib_glue::free_adjacency(uint32_t id) {
    h._pub->free_adjacency_id(id);  // reusable once no packet can carry it
}

bool hub::rib_glue::add_route(const rib::prefix_key& k, dp::route_target t) {
    if (h._pub->add_route(k.first, k.second, t) != dp::publish_status::ok) {
        ++h._cc.publish_failed;
        return false;
    }
    return true;
}

bool hub::rib_glue::del_route(const rib::prefix_key& k) {
    if (h._pub->del_route(k.first, k.second) != dp::publish_status::ok) {
        ++h._cc.publish_failed;
        return false;
    }
    return true;
}

bool hub::rib_glue::write_nexthop(const nh_key& k, uint32_t adj, std::optional<uint32_t> nbma,
                                  bool was_complete) {
    return h.write_nexthop(k, adj, nbma, was_complete, std::chrono::steady_clock::now());
}

void hub::apply_config_routes() {
    rib::config_names names;
    names.tunnel_slot = [this](const std::string& n) { return _slots.slot(n); };
    names.port_id = [this](const std::string& n) -> std::optional<uint16_t> {
        for (const port_rt& p : _ports) {
            if (p.name == n) {
                return p.opened.id;
            }
        }
        return std::nullopt;
    };
    if (size_t refused = rib::load_config_routes(*_rib, _topo, names); refused > 0) {
        log::error("{} configured routes refused: the RIB holds {} routes at most", refused,
                   _rib->cfg().max_routes);
    }
    _rib->commit();
}

bool hub::write_nexthop(const nh_key& k, uint32_t adj, std::optional<uint32_t> nbma,
                        bool was_complete, timestamp now) {
    neighbor_output out;
    dp::publish_status st = dp::publish_status::ok;
    bool complete = false;
    if (rib::on_lan(k)) {
        auto port = static_cast<uint16_t>(k.egress & ~dp::glean_lan_port_bit);
        if (auto mac = _neighbors.lookup(port, k.addr)) {
            dp::lan_adjacency_spec spec;
            spec.port = port;
            spec.address = k.addr;
            std::memcpy(spec.mac.addr_bytes, mac->data(), 6);
            st = _pub->set_lan_adjacency(adj, spec);
            complete = true;
        } else {
            st = _pub->set_incomplete(adj, dp::no_tunnel, port, k.addr);
            _neighbors.resolve(port, k.addr, now, out);
        }
    } else {
        const config::tunnel* t = tunnel_of(k.egress);
        const port_rt* port = nullptr;
        for (const port_rt& p : _ports) {
            if (t != nullptr && p.name == t->port) {
                port = &p;
            }
        }
        if (t == nullptr || port == nullptr) {
            st = _pub->remove_adjacency(adj);
        } else if (!nbma) {
            st = _pub->set_incomplete(adj, k.egress, port->opened.id, k.addr);
        } else {
            const peer_sa* sa = nullptr;
            if (!t->ipsec_profile.empty()) {
                sa = find_out_sa(*t, *nbma);
            }
            uint32_t hop = l2_hop(port->opened.id, *nbma);
            auto mac = _neighbors.lookup(port->opened.id, hop);
            if (!mac) {
                _neighbors.resolve(port->opened.id, hop, now, out);
            }
            if (mac && (t->ipsec_profile.empty() || sa != nullptr)) {
                dp::tunnel_adjacency_spec spec;
                spec.tunnel = k.egress;
                spec.overlay = k.addr;
                spec.nbma = *nbma;
                std::memcpy(spec.underlay_mac.addr_bytes, mac->data(), 6);
                if (sa != nullptr) {
                    spec.out_sa = sa->out.get();
                    spec.sa_owner = sa->owner;
                    spec.udp_encap = sa->udp_encap;
                    spec.local_port = sa->local_port;
                    spec.peer_port = sa->peer_port;
                }
                st = _pub->set_tunnel_adjacency(adj, spec);
                complete = true;
            } else {
                const config::ipsec_profile* prof = _topo.find_ipsec_profile(t->ipsec_profile);
                if (mac && sa == nullptr && !was_complete && (prof == nullptr || !prof->ike)) {
                    log::warning(
                        "tunnel {}: no manual SA for peer {} in profile {}: {} stays unreachable",
                        t->name, wire::format_ipv4(*nbma), t->ipsec_profile,
                        wire::format_ipv4(k.addr));
                }
                st = _pub->set_incomplete(adj, k.egress, port->opened.id, k.addr);
            }
        }
    }
    if (st != dp::publish_status::ok) {
        ++_cc.publish_failed;
        complete = false;
    }
    on_neighbors(out);
    return complete;
}

}  // namespace dmvpn::hub
