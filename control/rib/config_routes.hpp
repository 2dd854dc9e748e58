// Where configured routes come from: the topology's connected subnets, the hub's own addresses
// and the YAML `routes`, as RIB candidates (source connected and static).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "config/topology.hpp"
#include "control/rib/rib.hpp"

namespace dmvpn::rib {

// Tunnel slot and DPDK port id of a configured name, if it is one.
struct config_names {
    std::function<std::optional<uint16_t>(const std::string&)> tunnel_slot;
    std::function<std::optional<uint16_t>(const std::string&)> port_id;
};

// Replaces the connected and static candidates with those of `t` (a resync of both sources:
// what the topology no longer has is withdrawn). Staged: commit() installs. A YAML route for a
// prefix the topology already names (a subnet, an own address) replaces that one, as the
// configuration layer did before the RIB. Returns the candidates refused (max_routes).
size_t load_config_routes(rib& r, const config::topology& t, const config_names& names);

}  // namespace dmvpn::rib
