// Resolve: FIB next hop -> adjacency, glean for unresolved ones and Phase 3
// redirect candidates.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>

#include "dataplane/worker_ctx.hpp"

namespace dmvpn::dp::stage {

// Returns how many packets survive, compacted at the front of pkts; every other packet was
// dropped or punted through ctx under a named reason.
uint16_t resolve(rte_mbuf** pkts, uint16_t n, worker_ctx& ctx) noexcept;

}  // namespace dmvpn::dp::stage
