// `routing` of the YAML topology: the FPM server zebra hands its routes to (config/README.md).
#include "config/loader.hpp"

namespace dmvpn::config::detail {

namespace {

// An hour of quiet before the sweep, or of routes kept without zebra, is already longer than
// any restart; beyond it a typo (seconds meant as milliseconds) would freeze stale routes.
constexpr uint64_t max_settle_seconds = 600;
constexpr uint64_t max_hold_seconds = 86400;
// The FPM server's own bound on routes (control/fpm/server.hpp); the RIB's follows it.
constexpr uint64_t max_fpm_routes = 16'000'000;

}  // namespace

routing_settings loader::read_routing(const value_ref& v) {
    routing_settings r;
    auto f = mapping(v, {"fpm"});
    if (!f) {
        return r;
    }
    if (auto m = member(*f, "fpm")) {
        r.fpm = read_fpm(*m);
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

}  // namespace dmvpn::config::detail
