// `routing` of the YAML topology: the kernel interfaces of the exception path (config/README.md).
#include "config/loader.hpp"

namespace dmvpn::config::detail {

namespace {

// IFNAMSIZ (16) with its terminating NUL.
constexpr size_t max_ifname = 15;
// Packets a second through one kernel interface: beyond this the control lcore would spend its
// passes on the host's traffic rather than on NHRP and IKE.
constexpr uint64_t max_exception_rate = 1000000;

}  // namespace

routing_settings loader::read_routing(const value_ref& v) {
    routing_settings r;
    auto f = mapping(v, {"interfaces"});
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
    return r;
}

kernel_interface loader::read_kernel_interface(const value_ref& v) {
    kernel_interface k;
    auto f = mapping(v, {"tunnel", "port", "create", "name", "rate"});
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
    return k;
}

void loader::validate_routing(const topology& t) {
    std::map<std::string, size_t> by_tunnel;
    std::map<std::string, size_t> by_port;
    std::map<std::string, size_t> by_name;
    for (size_t i = 0; i < t.routing.interfaces.size(); ++i) {
        const kernel_interface& k = t.routing.interfaces[i];
        std::string base = item("routing.interfaces", i);
        std::string tp = child(base, "tunnel");
        if (!broken(tp) && !k.tunnel.empty()) {
            if (t.find_tunnel(k.tunnel) == nullptr) {
                if (names_complete("tunnels", t.tunnels.size())) {
                    fail(where(tp), tp, fmt::format("no tunnel is named \"{}\"", k.tunnel));
                }
            } else if (auto [it, fresh] = by_tunnel.emplace(k.tunnel, i); !fresh) {
                fail(where(tp), tp,
                     fmt::format("tunnel \"{}\" already has a kernel interface (routing."
                                 "interfaces[{}])",
                                 k.tunnel, it->second));
            }
        }
        std::string pp = child(base, "port");
        if (!broken(pp) && !k.port.empty()) {
            if (t.find_port(k.port) == nullptr) {
                if (names_complete("ports", t.ports.size())) {
                    fail(where(pp), pp, fmt::format("no port is named \"{}\"", k.port));
                }
            } else if (auto [it, fresh] = by_port.emplace(k.port, i); !fresh) {
                fail(where(pp), pp,
                     fmt::format("port \"{}\" already has a kernel interface (routing."
                                 "interfaces[{}])",
                                 k.port, it->second));
            }
        }
        std::string np = child(base, "name");
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
