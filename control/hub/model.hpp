// From the validated YAML model to what the hub's parts take: the workers' topology snapshot,
// the NHRP server's configuration and the SA parameters. Pure functions: the unit tests call them.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/topology.hpp"
#include "control/hub/frames.hpp"
#include "control/nhrp/server.hpp"
#include "crypto/sa.hpp"
#include "dataplane/drop_reason.hpp"
#include "dataplane/topology.hpp"

namespace dmvpn::hub {

// Tunnel slots: a tunnel keeps its index (in the workers' topology, in adjacencies and as the
// NHRP server's tunnel id) for as long as it exists, across reloads; a removed tunnel's slot
// stays empty so that nothing built on another slot has to move.
class tunnel_slots {
public:
    // Gives every tunnel of `t` a slot (keeping existing ones) and frees the others. False
    // when more than dp::max_tunnels would be needed.
    bool assign(const config::topology& t);
    std::optional<uint16_t> slot(const std::string& tunnel) const;
    // The tunnel name in a slot, if any.
    const std::string* name(uint16_t slot) const;
    uint16_t span() const noexcept { return static_cast<uint16_t>(_names.size()); }

private:
    std::vector<std::string> _names;  // index = slot; "" = free
};

// What the hub learned of a port when it opened it.
struct opened_port {
    uint16_t id = 0;  // DPDK port id
    mac_addr mac{};
    uint16_t mtu = 1500;
};

// The workers' view. `ports` maps config port names to what was opened.
dp::topology dataplane_topology(const config::topology& t, const tunnel_slots& slots,
                                const std::map<std::string, opened_port>& ports);

// The NHRP server's configuration; `route` is given to every tunnel (Phase 2 forwarding).
nhrp::server_config server_config_of(const config::topology& t, const tunnel_slots& slots,
                                     const nhrp::route_lookup& route);

// True when a tunnel's change leaves the NHRP server's view of it as it was (only its IPsec
// profile, its TCP MSS clamp or the like changed): the server and its cache are kept.
bool same_nhrp_view(const config::tunnel& a, const config::tunnel& b);

// SA parameters for one direction of a manual SA. `key_storage` receives the cipher key bytes
// the parameters point at (GCM: key || salt, RFC 4106 section 8.1) and must outlive their use.
crypto::sa_params sa_params_of(const config::ipsec_profile& p, const config::sa_keys& k,
                               crypto::sa_direction d, std::vector<uint8_t>& key_storage);

// One worker's budget per punt class (dp::punt_class_*), packets per second: its share of the
// hub-wide hub.punt-rates among `workers` (rounded up).
std::array<uint32_t, dp::punt_class_count> worker_punt_rates(const config::punt_rates& r,
                                                             uint16_t workers);

}  // namespace dmvpn::hub
