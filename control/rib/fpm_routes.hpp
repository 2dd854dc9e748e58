// zebra's routes (the FPM server's batches) into the RIB (control/rib): the protocol and its
// IOS distance from rtm_protocol, the gateway as a next hop on one of the hub's tunnels or LAN
// ports. Control lcore only; the hub drains the server and commits after each batch, so the FIB
// never holds half a batch.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "control/fpm/server.hpp"
#include "control/rib/rib.hpp"

namespace dmvpn::rib {

// The RIB's protocol for zebra's rtm_protocol, or none: not taken. zebra's connected routes
// (RTPROT_KERNEL) describe the host's kernel interfaces, not the hub's ports, whose subnets
// the hub installs itself from the topology. RTPROT_BGP does not tell eBGP from iBGP: taken as
// eBGP (20). Both distances lie between the hub's static routes (1) and NHRP's (250), so the
// choice changes which source wins against nothing the hub holds, only what show ip route says.
std::optional<protocol> fpm_protocol(uint8_t rtm_protocol) noexcept;

// Where the hub's interfaces are: a gateway inside a tunnel's overlay prefix is a tunnel next
// hop (NHRP resolves it), one on a LAN port's subnet a LAN next hop (ARP resolves it).
struct fpm_interfaces {
    struct tunnel {
        uint16_t slot = 0;
        uint32_t network = 0;  // host byte order
        uint8_t length = 0;
    };
    struct lan {
        uint16_t port = 0;  // DPDK port id
        uint32_t network = 0;
        uint8_t length = 0;
    };
    std::vector<tunnel> tunnels;
    std::vector<lan> lans;

    // The next hop `gateway` names, if it is on one of them.
    std::optional<nh_key> next_hop(uint32_t gateway) const noexcept;
};

struct fpm_counters {
    uint64_t batches = 0;
    uint64_t installed = 0;          // candidates offered to the RIB
    uint64_t withdrawn = 0;          // withdrawals applied
    uint64_t ignored_connected = 0;  // zebra's connected (kernel) routes, not taken
    uint64_t unresolved = 0;         // no gateway on a hub tunnel or LAN port: not installed
    uint64_t refused = 0;            // the RIB was full
};

// Applies one batch to the RIB (staged; the caller commits). An update that can no longer be
// installed (unresolved, refused) withdraws what zebra had installed for that prefix before.
void apply_fpm_batch(rib& r, const fpm::server::batch& b, const fpm_interfaces& ifs,
                     fpm_counters& c);

}  // namespace dmvpn::rib
