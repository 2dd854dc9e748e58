// Route stage (worker): the FIB lookup for LAN and decapsulated packets.
#include "dataplane/stage/route.hpp"

#include <rte_lpm.h>

#include "dataplane/adjacency.hpp"
#include "dataplane/fib.hpp"
#include "dataplane/stage/ipv4.hpp"

namespace dmvpn::dp::stage {

uint16_t route(rte_mbuf** pkts, uint16_t n, worker_ctx& ctx) noexcept {
    // Gather every destination, make one bulk lookup, then scatter.
    uint32_t dsts[max_burst];
    uint32_t nhs[max_burst];
    for (uint16_t i = 0; i < n; ++i) {
        dsts[i] = ipv4_dst(rte_pktmbuf_mtod(pkts[i], const uint8_t*));
    }
    ctx.tables->routes->lookup_bulk(dsts, nhs, n);
    // Resolve reads each packet's adjacency slot next: prefetched as routes are decided.
    const adjacency_table& adjacencies = *ctx.tables->adjacencies;

    uint16_t kept = 0;
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        uint32_t dst = dsts[i];
        uint8_t top = static_cast<uint8_t>(dst >> 24);
        // One test for the usual unicast destination (first octet 1-126 or 128-223).
        if (top == 0 || top == 127 || top >= 224) [[unlikely]] {
            if ((top & 0xf0) == 0xe0) {
                // 224.0.0.0/4: the control lcore replicates to the multicast list (and consumes
                // link-local groups such as routing protocol hellos itself).
                ctx.punt(m, punt_reason::multicast);
                continue;
            }
            if (dst == 0xffffffffu) {
                ctx.punt(m, punt_reason::for_us);
                continue;
            }
            if (top == 0 || top == 127) {
                ctx.drop(m, drop_reason::martian_destination);
                continue;
            }
        }
        if ((nhs[i] & RTE_LPM_LOOKUP_SUCCESS) == 0) {
            ctx.drop(m, drop_reason::no_route);
            continue;
        }
        route_target t = decode(nhs[i]);
        switch (t.kind) {
            case route_kind::local:
                ctx.punt(m, punt_reason::for_us);
                continue;
            case route_kind::adjacency:
            case route_kind::glean_tunnel:
            case route_kind::glean_lan:
                break;
            default:
                ctx.drop(m, drop_reason::blackhole);
                continue;
        }
        // Gleaned packets are forwarded too: the control lcore sends a held one as it was
        // punted once the neighbour answers, so its TTL is checked and decremented here, as
        // for a resolved adjacency and for a glean decided by resolve after this stage.
        uint8_t* ip = rte_pktmbuf_mtod(m, uint8_t*);
        if (ip[8] <= 1) {
            ctx.punt(m, punt_reason::ttl_exceeded);
            continue;
        }
        ipv4_decrement_ttl(ip);
        if (t.kind == route_kind::glean_tunnel) {
            ctx.glean(m, dst, static_cast<uint16_t>(t.index));
            continue;
        }
        if (t.kind == route_kind::glean_lan) {
            ctx.glean(m, dst, static_cast<uint16_t>(glean_lan_port_bit | t.index));
            continue;
        }
        packet_meta& pm = meta(m);
        pm.nexthop = t.index;  // the adjacency id, for resolve
        adjacencies.prefetch(t.index);
        if ((pm.flags & meta_flag::from_tunnel) != 0) {
            // Resolve checks the redirect limiter for tunnel-to-same-tunnel packets; which
            // those are it learns from the adjacency, so every tunnel packet's set is fetched.
            ctx.redirect_limit.prefetch(redirect_key(ip));
        }
        pkts[kept++] = m;
    }
    return kept;
}

}  // namespace dmvpn::dp::stage
