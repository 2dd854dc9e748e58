// TX: Ethernet header from the adjacency, grouped by port, sent on this worker's TX queue.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>

#include "dataplane/worker_ctx.hpp"

namespace dmvpn::dp::stage {

// Returns how many packets the ports accepted; the rest were dropped (tx_full, no_headroom).
// Every packet is consumed: none is left in pkts for the caller.
uint16_t tx(rte_mbuf** pkts, uint16_t n, worker_ctx& ctx) noexcept;

}  // namespace dmvpn::dp::stage
