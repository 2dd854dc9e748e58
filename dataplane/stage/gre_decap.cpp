// GRE decap stage (worker): RFC 2784 / RFC 2890 GRE to the hub's NBMA addresses.
#include "dataplane/stage/gre_decap.hpp"

#include <rte_prefetch.h>

#include "dataplane/fib.hpp"
#include "dataplane/stage/ipv4.hpp"

namespace dmvpn::dp::stage {

namespace {

constexpr uint16_t gre_c = 0x8000;  // checksum present
constexpr uint16_t gre_k = 0x2000;  // key present (RFC 2890)
constexpr uint16_t gre_s = 0x1000;  // sequence number present (RFC 2890)
constexpr uint16_t gre_proto_ipv4 = 0x0800;
constexpr uint16_t gre_proto_nhrp = 0x2001;

}  // namespace

uint16_t gre_decap(rte_mbuf** pkts, uint16_t n, worker_ctx& ctx) noexcept {
    const topology* topo = ctx.topo;
    const fib& routes = *ctx.tables->routes;
    // Cache of the last (NBMA, key) -> tunnel answer: a burst is usually one tunnel.
    uint32_t last_dst = 0;
    uint32_t last_key = 0;
    bool last_has_key = false;
    int last_tunnel = -1;
    bool last_ipsec = false;
    bool have_last = false;
    uint16_t kept = 0;
    for (uint16_t i = 0; i < n; ++i) {
        if (i + prefetch_ahead < n) {
            rte_prefetch0(rte_pktmbuf_mtod(pkts[i + prefetch_ahead], void*));
        }
        rte_mbuf* m = pkts[i];
        packet_meta& pm = meta(m);
        const uint8_t* ip = rte_pktmbuf_mtod(m, const uint8_t*);
        uint32_t len = m->data_len;
        uint32_t ihl = ipv4_ihl(ip);
        if (len < ihl + 4) {
            ctx.drop(m, drop_reason::gre_truncated);
            continue;
        }
        const uint8_t* gre = ip + ihl;
        uint32_t word = wire::load_be32(gre);
        auto flags = static_cast<uint16_t>(word >> 16);
        auto proto = static_cast<uint16_t>(word);
        // Version 0 with only C, K and S: routing (RFC 1701), strict source route, recursion
        // and reserved bits must be zero (RFC 2784 section 2.3).
        if ((flags & static_cast<uint16_t>(~(gre_c | gre_k | gre_s))) != 0) {
            ctx.drop(m, drop_reason::gre_bad_header);
            continue;
        }
        bool has_c = (flags & gre_c) != 0;
        bool has_k = (flags & gre_k) != 0;
        // Each of C, K and S adds four bytes (checksum + reserved, key, sequence number).
        uint32_t hlen = 4 + 4 * static_cast<uint32_t>(__builtin_popcount(flags));
        if (len < ihl + hlen) {
            ctx.drop(m, drop_reason::gre_truncated);
            continue;
        }
        if (has_c && rte_raw_cksum(gre, len - ihl) != 0xffff) {
            ctx.drop(m, drop_reason::gre_bad_checksum);
            continue;
        }
        uint32_t key = has_k ? wire::load_be32(gre + 4 + (has_c ? 4 : 0)) : 0;
        uint32_t dst = ipv4_dst(ip);
        if (!have_last || dst != last_dst || key != last_key || has_k != last_has_key) {
            last_dst = dst;
            last_key = key;
            last_has_key = has_k;
            last_tunnel = topo != nullptr ? topo->find_tunnel(dst, has_k, key) : -1;
            last_ipsec = last_tunnel >= 0 && topo->tunnels[last_tunnel].ipsec;
            have_last = true;
        }
        if (last_tunnel < 0) {
            ctx.drop(m, drop_reason::gre_unknown_key);
            continue;
        }
        bool was_esp = (pm.flags & meta_flag::was_esp) != 0;
        if (last_ipsec && !was_esp) {
            ctx.drop(m, drop_reason::gre_unprotected);
            continue;
        }
        // esp_in left the SA's tunnel in pm.tunnel: the GRE key must name the same one.
        if (was_esp && pm.tunnel != static_cast<uint16_t>(last_tunnel)) {
            ctx.drop(m, drop_reason::esp_tunnel_mismatch);
            continue;
        }
        pm.tunnel = static_cast<uint16_t>(last_tunnel);
        pm.outer_src = ipv4_src(ip);
        if (proto == gre_proto_nhrp) {
            rte_pktmbuf_adj(m, static_cast<uint16_t>(ihl + hlen));
            ctx.punt(m, punt_reason::nhrp);
            continue;
        }
        if (proto != gre_proto_ipv4) {
            ctx.drop(m, drop_reason::gre_unknown_protocol);
            continue;
        }
        const uint8_t* inner = gre + hlen;
        if (auto bad = ipv4_check(inner, len - ihl - hlen)) {
            ctx.drop(m, *bad);
            continue;
        }
        // The route stage looks this destination up next: start loading its FIB entry.
        routes.prefetch(ipv4_dst(inner));
        uint16_t inner_total = ipv4_total_length(inner);
        rte_pktmbuf_adj(m, static_cast<uint16_t>(ihl + hlen));
        if (m->pkt_len > inner_total) {
            rte_pktmbuf_trim(m, static_cast<uint16_t>(m->pkt_len - inner_total));
        }
        pm.flags = static_cast<uint8_t>(static_cast<uint8_t>(packet_class::ip) |
                                        meta_flag::from_tunnel | (pm.flags & meta_flag::was_esp));
        pkts[kept++] = m;
    }
    return kept;
}

}  // namespace dmvpn::dp::stage
