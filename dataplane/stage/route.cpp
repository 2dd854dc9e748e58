// Route stage (worker): the FIB lookup for LAN and decapsulated packets.
#include "dataplane/stage/route.hpp"

#include "dataplane/adjacency.hpp"
#include "dataplane/fib.hpp"
#include "dataplane/stage/ipv4.hpp"

namespace dmvpn::dp::stage {

namespace {

// Strict reverse path (verify-source): the inner source's route leads to an adjacency on the
// tunnel the packet came through, towards the NBMA address it came from.
bool source_reaches_sender(uint32_t src_nh, const packet_meta& pm,
                           const adjacency_table& adjacencies) noexcept {
    if ((src_nh & fib_hit) == 0) {
        return false;
    }
    route_target t = decode(src_nh);
    if (t.kind != route_kind::adjacency) {
        return false;
    }
    const adjacency* a = adjacencies.get(t.index);
    return a != nullptr && a->kind == adj_kind::tunnel && a->tunnel == pm.tunnel &&
           a->nbma == pm.outer_src;
}

}  // namespace

uint16_t route(rte_mbuf** pkts, uint16_t n, worker_ctx& ctx) noexcept {
    // Gather every destination (and the sources verify-source checks), make one bulk lookup
    // of each, then scatter.
    const topology* topo = ctx.topo;
    uint32_t dsts[max_burst];
    uint32_t nhs[max_burst];
    uint32_t srcs[max_burst];
    uint32_t src_nhs[max_burst];
    uint8_t src_of[max_burst];  // index into srcs, or none
    constexpr uint8_t none = 0xff;
    uint16_t n_src = 0;
    for (uint16_t i = 0; i < n; ++i) {
        const uint8_t* ip = rte_pktmbuf_mtod(pkts[i], const uint8_t*);
        dsts[i] = ipv4_dst(ip);
        src_of[i] = none;
        const packet_meta& pm = meta(pkts[i]);
        if ((pm.flags & meta_flag::from_tunnel) != 0 && topo != nullptr &&
            pm.tunnel < max_tunnels && topo->tunnels[pm.tunnel].verify_source) {
            src_of[i] = static_cast<uint8_t>(n_src);
            srcs[n_src++] = ipv4_src(ip);
        }
    }
    ctx.tables->routes->lookup_bulk(dsts, nhs, n);
    if (n_src != 0) {
        ctx.tables->routes->lookup_bulk(srcs, src_nhs, n_src);
    }
    // Resolve reads each packet's adjacency slot next: prefetched as routes are decided.
    const adjacency_table& adjacencies = *ctx.tables->adjacencies;

    uint16_t kept = 0;
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        uint32_t dst = dsts[i];
        if (src_of[i] != none && !source_reaches_sender(src_nhs[src_of[i]], meta(m), adjacencies))
            [[unlikely]] {
            ctx.drop(m, drop_reason::spoofed_source);
            continue;
        }
        {
            // An underlay port carries tunnel traffic (not routed here) and what is addressed
            // to the hub (its link-local multicast too when it has a kernel interface); it is
            // not a way into the LAN unless allow-transit says so.
            const packet_meta& pm = meta(m);
            if (topo != nullptr && pm.in_port < topo->n_ports &&
                topo->ports[pm.in_port].drop_transit && (pm.flags & meta_flag::from_tunnel) == 0 &&
                ((nhs[i] & fib_hit) == 0 || decode(nhs[i]).kind != route_kind::local) &&
                !(topo->ports[pm.in_port].link_local_to_host && (dst & 0xffffff00u) == 0xe0000000u))
                [[unlikely]] {
                ctx.drop(m, drop_reason::underlay_transit);
                continue;
            }
        }
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
        if ((nhs[i] & fib_hit) == 0) {
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
