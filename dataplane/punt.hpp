// The punt ring: packets and events from the workers to the control lcore (MP/SC, never blocks).
#pragma once

#include <rte_mbuf.h>
#include <rte_ring.h>

#include <cstdint>

#include "dataplane/drop_reason.hpp"
#include "dataplane/packet_meta.hpp"

namespace dmvpn::dp {

// Where a punted mbuf's data starts, by reason:
//   nhrp          the NHRP message (GRE payload); tunnel and outer_src say where it came from
//   arp           the Ethernet header
//   for_us, multicast, ttl_exceeded, frag_needed, glean
//                 the (inner) IPv4 header; tunnel/outer_src are set when it came from a tunnel
//   redirect      an event mbuf holding the original IPv4 header plus the first 8 payload bytes
//                 (RFC 792's quote); tunnel, outer_src (the source spoke's NBMA) and nexthop
//                 (the destination) are set
// frag_needed carries the exceeded MTU in aux; glean carries the unresolved next
// hop in nexthop. The control lcore owns every mbuf it dequeues and frees it.
struct punt_record {
    rte_mbuf* m;
    punt_reason reason;
    uint16_t tunnel;
    uint16_t in_port;
    uint32_t outer_src;
    uint32_t nexthop;
    uint16_t mtu;
    uint64_t rx_tsc;   // TSC of the worker's burst that received it (packet_meta::rx_tsc)
    uint64_t enq_tsc;  // TSC of its enqueue on the punt ring (punt_tsc); 0 if not stamped
};

// Creates the ring: many workers enqueue, the control lcore alone dequeues. size is rounded
// up to a power of two. Returns nullptr with rte_errno set on failure.
rte_ring* create_punt_ring(const char* name, unsigned size, int socket_id) noexcept;

inline punt_record read_punt(rte_mbuf* m) noexcept {
    const packet_meta& pm = meta(m);
    return punt_record{m,
                       static_cast<punt_reason>(pm.punt),
                       pm.tunnel,
                       pm.in_port,
                       pm.outer_src,
                       pm.nexthop,
                       pm.aux,
                       pm.rx_tsc,
                       punt_tsc(m)};
}

// Control side: dequeues up to n punted mbufs without blocking; returns how many.
inline unsigned dequeue_punts(rte_ring* ring, rte_mbuf** out, unsigned n) noexcept {
    return rte_ring_sc_dequeue_burst(ring, reinterpret_cast<void**>(out), n, nullptr);
}

}  // namespace dmvpn::dp
