// The hub's side of the RIB (control/rib): the FIB and adjacency slots of the publisher, the
// configured routes fed in, a next hop's adjacency written from ARP and the peer's SA, and
// show ip route.
#include <algorithm>
#include <cstring>

#include <fmt/core.h>

#include "control/hub/hub.hpp"
#include "control/log.hpp"
#include "control/rib/config_routes.hpp"
#include "control/rib/fpm_routes.hpp"
#include "control/rib/show.hpp"
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
    if (_fpm) {
        refresh_fpm_interfaces();  // FPM routes from now on resolve on the new interfaces
    }
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

namespace dmvpn::hub {

control::mgmt_reply hub::show_ip_route(std::string_view which, bool json) const {
    // Which routes: all, the longest match of an address, or one prefix.
    std::optional<rib::prefix_key> only;
    std::optional<uint32_t> holding;  // an address was asked for
    if (!which.empty()) {
        std::string_view addr = which.substr(0, which.find('/'));
        auto a = wire::parse_ipv4_address(addr);
        int len = 32;
        bool exact = addr.size() != which.size();
        if (exact) {
            std::string_view l = which.substr(addr.size() + 1);
            len = l.empty() || l.size() > 2 || !std::all_of(l.begin(), l.end(), ::isdigit)
                      ? -1
                      : std::stoi(std::string(l));
        }
        if (!a || len < 0 || len > 32) {
            return {false, fmt::format("show ip route: expected an address or PREFIX/LEN, got {}\n",
                                       which)};
        }
        uint32_t mask = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
        if (exact) {
            only = rib::prefix_key{*a & mask, static_cast<uint8_t>(len)};
        } else {
            holding = *a;
            if (auto m = _rib->longest_match(*a)) {
                only = m->first;
            } else {
                only = rib::prefix_key{0, 33};  // no installed route holds it
            }
        }
    }
    // FRR's routes not installed: the prefix asked for, or those holding the address.
    std::vector<rib::refused_row> refused;
    for (const auto& [k, no] : _fpm_refused.entries()) {
        uint32_t kmask = k.second == 0 ? 0 : ~uint32_t{0} << (32 - k.second);
        if (holding ? (*holding & kmask) != k.first : only && k != *only) {
            continue;
        }
        rib::refused_row row;
        row.prefix = k;
        row.proto = no.proto;
        if (no.gateway != 0) {
            row.via = no.gateway;
        }
        if (no.why == rib::fpm_refusal_reason::underlay_transit) {
            const port_rt* p = port_by_id(no.port);
            row.interface = p != nullptr ? p->name : std::to_string(no.port);
        }
        row.reason = rib::name(no.why);
        refused.push_back(std::move(row));
    }
    auto port_name = [this](uint16_t id) {
        const port_rt* p = port_by_id(id);
        return p != nullptr ? p->name : std::to_string(id);
    };
    auto tunnel_name = [this](uint16_t slot) {
        const config::tunnel* t = tunnel_of(slot);
        return t != nullptr ? t->name : std::to_string(slot);
    };
    std::map<neighbor_key, mac_addr> macs;  // resolved LAN neighbours
    for (const neighbor_view& n : _neighbors.entries()) {
        if (n.state == neighbor_state::reachable) {
            macs[n.key] = n.mac;
        }
    }
    std::vector<rib::route_row> rows;
    for (const rib::installed_view& v : _rib->installed()) {
        if (only && v.prefix != *only) {
            continue;
        }
        rib::route_row row;
        row.prefix = v.prefix;
        row.src = v.from.src;
        row.proto = v.from.proto;
        row.distance = v.r.distance;
        row.metric = v.r.metric;
        row.candidates = v.candidates;
        row.nbma = v.nbma;
        if (v.r.nh) {
            const nh_key& k = *v.r.nh;
            row.via = k.addr;
            if (rib::on_lan(k)) {
                auto port = static_cast<uint16_t>(k.egress & ~dp::glean_lan_port_bit);
                row.interface = port_name(port);
                if (auto m = macs.find(neighbor_key{port, k.addr}); m != macs.end()) {
                    row.mac = format_mac(m->second);
                }
            } else {
                row.interface = tunnel_name(k.egress);
            }
            row.state = !v.nh || v.nh->adj == 0      ? "no_adjacency"
                        : v.nh->complete             ? "complete"
                        : !rib::on_lan(k) && !v.nbma ? "unbound"
                                                     : "incomplete";
        } else if (v.r.kind == dp::route_kind::local) {
            row.local = true;
            row.state = "local";
            for (const port_rt& p : _ports) {
                if (p.cfg.address.address.value == v.prefix.first) {
                    row.interface = p.name;
                }
            }
            for (const config::tunnel& t : _topo.tunnels) {
                if (t.overlay_address.value == v.prefix.first) {
                    row.interface = t.name;
                }
            }
        } else {
            row.state = v.r.kind == dp::route_kind::blackhole ? "blackhole" : "connected";
            if (v.r.kind == dp::route_kind::glean_tunnel) {
                row.interface = tunnel_name(static_cast<uint16_t>(v.r.index));
            } else if (v.r.kind == dp::route_kind::glean_lan) {
                row.interface = port_name(static_cast<uint16_t>(v.r.index));
            }
        }
        rows.push_back(std::move(row));
    }
    return {true, rib::show_ip_route(rows, json, refused)};
}

}  // namespace dmvpn::hub
