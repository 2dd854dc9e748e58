// Resolve stage (worker): adjacency lookup, glean and Phase 3 redirects.
#include "dataplane/stage/resolve.hpp"

#include <algorithm>
#include <cstring>

#include "dataplane/adjacency.hpp"
#include "dataplane/stage/ipv4.hpp"

namespace dmvpn::dp::stage {

namespace {

// RFC 792 quotes the IP header and the first 64 bits of the datagram; an NHRP Traffic
// Indication quotes the same, so that is what the event carries.
constexpr uint32_t redirect_quote_extra = 8;

// A Phase 3 event for a pair the limiter let through: the quote goes to the control lcore.
void redirect_event(rte_mbuf* m, worker_ctx& ctx) noexcept {
    const uint8_t* ip = rte_pktmbuf_mtod(m, const uint8_t*);
    uint32_t dst = ipv4_dst(ip);
    rte_mbuf* ev = rte_pktmbuf_alloc(ctx.event_pool);
    if (ev == nullptr) {
        ++ctx.counters.event_alloc_failed;
        return;
    }
    uint32_t quote = std::min<uint32_t>(ipv4_ihl(ip) + redirect_quote_extra, m->data_len);
    char* out = rte_pktmbuf_append(ev, static_cast<uint16_t>(quote));
    if (out == nullptr) {
        rte_pktmbuf_free(ev);
        ++ctx.counters.event_alloc_failed;
        return;
    }
    std::memcpy(out, ip, quote);
    // Route already decremented the TTL: quote the header as the spoke sent it.
    auto* q = reinterpret_cast<uint8_t*>(out);
    uint16_t old_word = wire::load_be16(q + 8);
    q[8] = static_cast<uint8_t>(q[8] + 1);
    wire::store_be16(q + 10,
                     checksum_update16(wire::load_be16(q + 10), old_word, wire::load_be16(q + 8)));
    const packet_meta& pm = meta(m);
    packet_meta& em = meta(ev);
    em = packet_meta{};
    em.tunnel = pm.tunnel;
    em.in_port = pm.in_port;
    em.outer_src = pm.outer_src;
    em.nexthop = dst;
    ctx.punt(ev, punt_reason::redirect);
}

}  // namespace

uint16_t resolve(rte_mbuf** pkts, uint16_t n, worker_ctx& ctx) noexcept {
    const adjacency_table& table = *ctx.tables->adjacencies;
    // Two passes so that the burst's cache misses are in flight together rather than one after
    // the other: (1) each packet's adjacency (its slot was prefetched by route), its forwarding
    // line prefetched for this stage and for mtu, encap and tx; (2) the decisions. Route also
    // prefetched the redirect limiter's set of every packet from a tunnel.
    const adjacency* adjs[max_burst];
    for (uint16_t i = 0; i < n; ++i) {
        const adjacency* a = table.get(meta(pkts[i]).nexthop);
        adjs[i] = a;
        if (a != nullptr) {
            prefetch_adjacency(a);
        }
    }
    uint16_t kept = 0;
    uint16_t with_sa = 0;
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        packet_meta& pm = meta(m);
        const adjacency* a = adjs[i];
        if (a == nullptr) {
            ctx.drop(m, drop_reason::adjacency_missing);
            continue;
        }
        if (a->kind == adj_kind::incomplete) {
            if ((pm.flags & meta_flag::gre_payload) != 0) {
                // Not IPv4: a glean would hand it back as a packet to route.
                ctx.drop(m, drop_reason::no_adjacency);
                continue;
            }
            uint16_t egress = a->tunnel != no_tunnel
                                  ? a->tunnel
                                  : static_cast<uint16_t>(glean_lan_port_bit | a->out_port);
            ctx.glean(m, a->nexthop, egress);
            continue;
        }
        // Phase 3: in from a tunnel and out through the same tunnel means the two spokes could
        // talk directly; the packet is still forwarded. Reported pairs cost only the limiter.
        if (a->kind == adj_kind::tunnel && (pm.flags & meta_flag::from_tunnel) != 0 &&
            a->tunnel == pm.tunnel) {
            if (ctx.redirect_limit.allow(redirect_key(rte_pktmbuf_mtod(m, const uint8_t*)),
                                         ctx.now)) {
                redirect_event(m, ctx);
            } else {
                ++ctx.counters.redirect_suppressed;
            }
        }
        with_sa = static_cast<uint16_t>(with_sa + (a->out_sa != nullptr ? 1 : 0));
        pm.adj = a;
        pkts[kept++] = m;
    }
    ctx.out_sa_packets = with_sa;
    return kept;
}

}  // namespace dmvpn::dp::stage
