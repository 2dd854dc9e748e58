// show ip route: the FIB's routes as IOS lists them (codes, [distance/metric], via, interface),
// with how each next hop is reached; text and JSON. Pure functions of a view the hub fills.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control/rib/rib.hpp"

namespace dmvpn::rib {

// One installed route as shown.
struct route_row {
    prefix_key prefix;
    source src = source::connected;
    protocol proto = protocol::none;
    uint8_t distance = 0;
    uint32_t metric = 0;
    bool local = false;           // one of the hub's own addresses (IOS "L")
    std::optional<uint32_t> via;  // the next hop; none: directly connected (or local)
    std::string interface;        // tunnel or port name
    // How the next hop is reached: "complete" (nbma / mac say where), "incomplete" (ARP or
    // the peer's SA pending), "unbound" (a tunnel next hop no spoke registered: glean),
    // "no_adjacency" (no slot was free), "connected", "local".
    std::string state;
    std::optional<uint32_t> nbma;  // a tunnel next hop's NBMA address
    std::string mac;               // a LAN next hop's MAC, when known
    size_t candidates = 1;         // routes offered for this prefix by all sources
};

// An FRR route the hub did not install (control/rib/fpm_routes.hpp's fpm_refusals), as shown
// after the installed routes.
struct refused_row {
    prefix_key prefix;
    protocol proto = protocol::none;
    std::optional<uint32_t> via;  // the gateway zebra named
    std::string interface;        // the port that refused it (underlay_transit), else empty
    std::string reason;           // fpm_refusal_reason's name
};

// The IOS code of a row: L, C, S, B, O, D, i, R, H (K kernel and F for other FRR routes,
// which IOS does not have).
std::string_view code_of(const route_row& r) noexcept;

// `dmvpnctl show ip route [--json]`: rows in prefix order, then FRR's routes not installed
// (JSON: "refused", always present).
std::string show_ip_route(const std::vector<route_row>& rows, bool json,
                          const std::vector<refused_row>& refused = {});

}  // namespace dmvpn::rib
