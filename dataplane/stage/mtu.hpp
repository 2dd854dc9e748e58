// MTU: packets larger than the egress MTU are punted (DF: ICMP fragmentation needed).
#pragma once

#include <rte_mbuf.h>

#include <cstdint>

#include "dataplane/worker_ctx.hpp"

namespace dmvpn::dp::stage {

// Returns how many packets survive, compacted at the front of pkts; every other packet was
// dropped or punted through ctx under a named reason.
uint16_t mtu(rte_mbuf** pkts, uint16_t n, worker_ctx& ctx) noexcept;

}  // namespace dmvpn::dp::stage
