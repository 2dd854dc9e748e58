// MTU: packets larger than the egress MTU are fragmented before encapsulation (no DF) or punted
// for ICMP fragmentation needed (DF).
#pragma once

#include <rte_mbuf.h>

#include <cstdint>

#include "dataplane/worker_ctx.hpp"

namespace dmvpn::dp::stage {

// The most fragments one packet becomes; a packet that would need more is dropped
// (`frag_too_many`). Ports and tunnels have an MTU of at least 576 and mbufs hold 2 KB, so
// configured paths need at most 4.
inline constexpr uint16_t max_fragments = 8;
static_assert(max_fragments <= max_burst);

struct mtu_result {
    uint16_t consumed;  // packets of the input handled (kept, fragmented, punted or dropped)
    uint16_t out;       // packets written to `out`: kept ones and fragments, in input order
};

// Unlike the other stages this one can grow a burst, so it writes to a separate array of
// `cap` slots (cap >= max_fragments) and stops before a packet whose fragments might not fit;
// the caller runs the rest of the path on what came out and calls again with the remainder.
// Fragments come from the packet's own mbuf pool; when the pool runs dry the packet is
// dropped (`frag_no_mbuf`).
mtu_result mtu(rte_mbuf* const* pkts, uint16_t n, rte_mbuf** out, uint16_t cap,
               worker_ctx& ctx) noexcept;

}  // namespace dmvpn::dp::stage
