// `routing` of the YAML topology: the kernel interfaces of the exception path and the FPM server
// zebra hands its routes to (config/README.md).
#include "config/loader.hpp"

namespace dmvpn::config::detail {

namespace {

// IFNAMSIZ (16) with its terminating NUL.
constexpr size_t max_ifname = 15;
// Packets a second through one kernel interface: beyond this the control lcore would spend its
// passes on the host's traffic rather than on NHRP and IKE.
constexpr uint64_t max_exception_rate = 1000000;
// An hour of quiet before the sweep, or of routes kept without zebra, is already longer than
// any restart; beyond it a typo (seconds meant as milliseconds) would freeze stale routes.
constexpr uint64_t max_settle_seconds = 600;
constexpr uint64_t max_hold_seconds = 86400;
// The FPM server's own bound on routes (control/fpm/server.hpp); the RIB's follows it.
constexpr uint64_t max_fpm_routes = 16'000'000;
// rtm_protocol values FRR's zebra writes for its daemons (zebra/rt_netlink.h: RTPROT_BGP 186 ..
// RTPROT_SRTE 198): routes tagged so are zebra's own to it, never redistributed as kernel routes.
constexpr uint64_t frr_first_protocol = 186;
constexpr uint64_t frr_last_protocol = 198;

}  // namespace

routing_settings loader::read_routing(const value_ref& v) {
    routing_settings r;
    auto f = mapping(v, {"interfaces", "fpm", "redistribute-nhrp", "redistribute-protocol"});
    if (!f) {
        return r;
    }
    if (auto l = member(*f, "interfaces")) {
        if (auto items = sequence(*l)) {
            for (const value_ref& e : *items) {
                r.interfaces.push_back(read_kernel_interface(e));
            }
        }
    }
    if (auto m = member(*f, "fpm")) {
        r.fpm = read_fpm(*m);
    }
    read(*f, "redistribute-nhrp", r.redistribute_nhrp, as_bool());
    if (auto p = member(*f, "redistribute-protocol")) {
        uint64_t proto = r.redistribute_protocol;
        read(*f, "redistribute-protocol", proto, uint_in(1, 255));
        if (proto >= frr_first_protocol && proto <= frr_last_protocol) {
            fail(p->at, p->path,
                 fmt::format("{} is one of FRR's own route protocols ({}..{}: zebra would take "
                             "the routes for its own and not redistribute them); the default "
                             "is 247",
                             proto, frr_first_protocol, frr_last_protocol));
        } else {
            r.redistribute_protocol = static_cast<uint8_t>(proto);
        }
    }
    return r;
}

fpm_settings loader::read_fpm(const value_ref& v) {
    fpm_settings s;
    // `fpm: {}` (or `fpm:` alone) asks for the defaults.
    if (v.node.IsNull()) {
        return s;
    }
    auto f = mapping(v, {"address", "port", "settle-seconds", "hold-seconds", "max-routes"});
    if (!f) {
        return s;
    }
    if (auto a = member(*f, "address")) {
        if (auto x = address(*a)) {
            s.address = *x;
            if ((x->value >> 24) != 127) {
                warn(a->at, a->path,
                     "FPM has no authentication: whoever reaches this address can install routes; "
                     "keep it on loopback or behind a firewall");
            }
        }
    }
    read(*f, "port", s.port, uint_in(1, 65535));
    read(*f, "settle-seconds", s.settle_seconds, uint_in(1, max_settle_seconds));
    read(*f, "hold-seconds", s.hold_seconds, uint_in(0, max_hold_seconds));
    read(*f, "max-routes", s.max_routes, uint_in(1, max_fpm_routes));
    return s;
}

kernel_interface loader::read_kernel_interface(const value_ref& v) {
    kernel_interface k;
    auto f = mapping(v, {"tunnel", "port", "create", "name", "rate", "unnumbered"});
    if (!f) {
        return k;
    }
    auto t = member(*f, "tunnel");
    auto p = member(*f, "port");
    if (t && p) {
        fail(p->at, p->path, "an interface is for a tunnel or for a port, not both");
    } else if (!t && !p) {
        fail(f->at, child(f->path, "tunnel"), "missing required key (or \"port\")");
    } else if (t) {
        if (auto x = ident(*t)) {
            k.tunnel = *x;
        }
    } else if (auto x = ident(*p)) {
        k.port = *x;
    }
    read(*f, "create", k.create, as_bool());
    if (auto n = member(*f, "name", true)) {
        if (auto x = ident(*n)) {
            if (x->size() > max_ifname) {
                fail(n->at, n->path,
                     fmt::format("a kernel interface name has at most {} characters, got {}",
                                 max_ifname, quote(*x)));
            } else {
                k.name = *x;
            }
        }
    }
    read(*f, "rate", k.rate, uint_in(0, max_exception_rate));
    read(*f, "unnumbered", k.unnumbered, as_bool());
    return k;
}

void loader::validate_routing(const topology& t) {
    std::map<std::string, size_t> by_tunnel;
    std::map<std::string, size_t> by_port;
    std::map<std::string, size_t> by_name;
    // `key` of entry i names a tunnel or port (`kind`, in `list`) that exists and has no other
    // kernel interface.
    auto owner = [&](size_t i, std::string_view key, std::string_view kind, std::string_view list,
                     size_t count, const std::string& name, bool exists,
                     std::map<std::string, size_t>& seen) {
        std::string path = child(item("routing.interfaces", i), key);
        if (broken(path) || name.empty()) {
            return;
        }
        if (!exists) {
            if (names_complete(list, count)) {
                fail(where(path), path, fmt::format("no {} is named \"{}\"", kind, name));
            }
        } else if (auto [it, fresh] = seen.emplace(name, i); !fresh) {
            fail(where(path), path,
                 fmt::format("{} \"{}\" already has a kernel interface (routing.interfaces[{}])",
                             kind, name, it->second));
        }
    };
    if (t.routing.redistribute_nhrp &&
        std::none_of(t.routing.interfaces.begin(), t.routing.interfaces.end(),
                     [](const kernel_interface& k) { return k.create && !k.tunnel.empty(); })) {
        std::string path = "routing.redistribute-nhrp";
        fail(where(path), path,
             "needs a tunnel's kernel interface in routing.interfaces: the registered spokes' "
             "routes go out of it");
    }
    for (size_t i = 0; i < t.routing.interfaces.size(); ++i) {
        const kernel_interface& k = t.routing.interfaces[i];
        owner(i, "tunnel", "tunnel", "tunnels", t.tunnels.size(), k.tunnel,
              t.find_tunnel(k.tunnel) != nullptr, by_tunnel);
        owner(i, "port", "port", "ports", t.ports.size(), k.port, t.find_port(k.port) != nullptr,
              by_port);
        std::string np = child(item("routing.interfaces", i), "name");
        if (!broken(np) && !k.name.empty()) {
            if (auto [it, fresh] = by_name.emplace(k.name, i); !fresh) {
                fail(where(np), np,
                     fmt::format("\"{}\" is already routing.interfaces[{}]'s name", k.name,
                                 it->second));
            }
        }
    }
}

}  // namespace dmvpn::config::detail
