// Resolve stage (worker): adjacency lookup, glean, SA-owner handoff and Phase 3 redirects.
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

void redirect_candidate(rte_mbuf* m, worker_ctx& ctx) noexcept {
    const uint8_t* ip = rte_pktmbuf_mtod(m, const uint8_t*);
    uint32_t src = ipv4_src(ip);
    uint32_t dst = ipv4_dst(ip);
    if (!ctx.redirect_limit.allow((uint64_t{src} << 32) | dst, ctx.now)) {
        ++ctx.counters.redirect_suppressed;
        return;
    }
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
    uint32_t last_id = UINT32_MAX;
    const adjacency* last = nullptr;
    uint16_t kept = 0;
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        packet_meta& pm = meta(m);
        if (pm.nexthop != last_id) {
            last_id = pm.nexthop;
            last = table.get(last_id);
        }
        const adjacency* a = last;
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
        bool handed = (pm.flags & meta_flag::handed_off) != 0;
        // Phase 3: in from a tunnel and out through the same tunnel means the two spokes could
        // talk directly; the packet is still forwarded.
        if (!handed && (pm.flags & meta_flag::from_tunnel) != 0 && a->kind == adj_kind::tunnel &&
            a->tunnel == pm.tunnel) {
            redirect_candidate(m, ctx);
        }
        if (a->out_sa != nullptr && a->sa_owner != ctx.id) {
            pm.flags = static_cast<uint8_t>((pm.flags & ~meta_flag::class_mask) |
                                            static_cast<uint8_t>(packet_class::routed));
            ctx.handoff(m, a->sa_owner);
            continue;
        }
        pm.adj = a;
        pkts[kept++] = m;
    }
    return kept;
}

}  // namespace dmvpn::dp::stage
