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

// Cache of the last (NBMA, key) -> tunnel answer (a burst is usually one tunnel), and what
// both paths read.
struct tunnel_cache {
    const topology* topo;
    const fib* routes;
    uint32_t dst = 0;
    uint32_t key = 0;
    bool has_key = false;
    bool ipsec = false;
    bool valid = false;
    int tunnel = -1;

    // The tunnel for GRE to `d` with this key (or none), remembered for the next packet.
    void lookup(uint32_t d, bool k_present, uint32_t k) noexcept {
        if (!valid || d != dst || k != key || k_present != has_key) {
            dst = d;
            key = k;
            has_key = k_present;
            tunnel = topo != nullptr ? topo->find_tunnel(d, k_present, k) : -1;
            ipsec = tunnel >= 0 && topo->tunnels[tunnel].ipsec;
            valid = true;
        }
    }
};

// Every check in order, each failure dropped or punted under its reason; true: decapsulated
// (the fast path below takes the common packets that this would accept).
[[gnu::noinline]] bool decap_full(rte_mbuf* m, worker_ctx& ctx, tunnel_cache& c) noexcept {
    packet_meta& pm = meta(m);
    const uint8_t* ip = rte_pktmbuf_mtod(m, const uint8_t*);
    uint32_t len = m->data_len;
    uint32_t ihl = ipv4_ihl(ip);
    if (len < ihl + 4) {
        ctx.drop(m, drop_reason::gre_truncated);
        return false;
    }
    const uint8_t* gre = ip + ihl;
    uint32_t word = wire::load_be32(gre);
    auto flags = static_cast<uint16_t>(word >> 16);
    auto proto = static_cast<uint16_t>(word);
    // Version 0 with only C, K and S: routing (RFC 1701), strict source route, recursion
    // and reserved bits must be zero (RFC 2784 section 2.3).
    if ((flags & static_cast<uint16_t>(~(gre_c | gre_k | gre_s))) != 0) {
        ctx.drop(m, drop_reason::gre_bad_header);
        return false;
    }
    bool has_c = (flags & gre_c) != 0;
    bool has_k = (flags & gre_k) != 0;
    // Each of C, K and S adds four bytes (checksum + reserved, key, sequence number).
    uint32_t hlen = 4 + 4 * static_cast<uint32_t>(__builtin_popcount(flags));
    if (len < ihl + hlen) {
        ctx.drop(m, drop_reason::gre_truncated);
        return false;
    }
    if (has_c && rte_raw_cksum(gre, len - ihl) != 0xffff) {
        ctx.drop(m, drop_reason::gre_bad_checksum);
        return false;
    }
    uint32_t key = has_k ? wire::load_be32(gre + 4 + (has_c ? 4 : 0)) : 0;
    uint32_t dst = ipv4_dst(ip);
    c.lookup(dst, has_k, key);
    if (c.tunnel < 0) {
        ctx.drop(m, drop_reason::gre_unknown_key);
        return false;
    }
    bool was_esp = (pm.flags & meta_flag::was_esp) != 0;
    if (c.ipsec && !was_esp) {
        ctx.drop(m, drop_reason::gre_unprotected);
        return false;
    }
    // esp_in left the SA's tunnel in pm.tunnel: the GRE key must name the same one.
    if (was_esp && pm.tunnel != static_cast<uint16_t>(c.tunnel)) {
        ctx.drop(m, drop_reason::esp_tunnel_mismatch);
        return false;
    }
    pm.tunnel = static_cast<uint16_t>(c.tunnel);
    pm.outer_src = ipv4_src(ip);
    if (proto == gre_proto_nhrp) {
        rte_pktmbuf_adj(m, static_cast<uint16_t>(ihl + hlen));
        ctx.punt(m, punt_reason::nhrp);
        return false;
    }
    if (proto != gre_proto_ipv4) {
        ctx.drop(m, drop_reason::gre_unknown_protocol);
        return false;
    }
    const uint8_t* inner = gre + hlen;
    if (auto bad = ipv4_check(inner, len - ihl - hlen)) {
        ctx.drop(m, *bad);
        return false;
    }
    // The route stage looks this destination up next: start loading its FIB entry.
    c.routes->prefetch(ipv4_dst(inner));
    uint16_t inner_total = ipv4_total_length(inner);
    rte_pktmbuf_adj(m, static_cast<uint16_t>(ihl + hlen));
    if (m->pkt_len > inner_total) {
        rte_pktmbuf_trim(m, static_cast<uint16_t>(m->pkt_len - inner_total));
    }
    pm.flags = static_cast<uint8_t>(static_cast<uint8_t>(packet_class::ip) |
                                    meta_flag::from_tunnel | (pm.flags & meta_flag::was_esp));
    return true;
}

}  // namespace

uint16_t gre_decap(rte_mbuf** pkts, uint16_t n, worker_ctx& ctx) noexcept {
    tunnel_cache c{ctx.topo, ctx.tables->routes};
    uint16_t kept = 0;
    for (uint16_t i = 0; i < n; ++i) {
        if (i + prefetch_ahead < n) {
            rte_prefetch0(rte_pktmbuf_mtod(pkts[i + prefetch_ahead], void*));
        }
        rte_mbuf* m = pkts[i];
        packet_meta& pm = meta(m);
        const uint8_t* ip = rte_pktmbuf_mtod(m, const uint8_t*);
        uint32_t len = m->data_len;
        // Fast path: outer header without options (classify checked it), GRE with only K or
        // nothing set and protocol IPv4, a known tunnel (the lookup is cached as in
        // decap_full), no IPsec involved, an inner header without options that passes
        // ipv4_check. Anything else takes decap_full, which reaches the same result for these
        // packets and names the reason for the others.
        constexpr uint32_t fast_len = 20 + 8 + 20;
        if (len >= fast_len && m->pkt_len == len && ip[0] == 0x45 &&
            (pm.flags & meta_flag::was_esp) == 0) {
            uint32_t word = wire::load_be32(ip + 20);
            bool has_k = word == ((uint32_t{gre_k} << 16) | gre_proto_ipv4);
            if (has_k || word == gre_proto_ipv4) {
                c.lookup(ipv4_dst(ip), has_k, has_k ? wire::load_be32(ip + 24) : 0);
            }
            if ((has_k || word == gre_proto_ipv4) && c.tunnel >= 0 && !c.ipsec) {
                uint32_t hlen = has_k ? 8 : 4;
                const uint8_t* inner = ip + 20 + hlen;
                uint32_t avail = len - 20 - hlen;
                uint32_t inner_total = ipv4_total_length(inner);
                if (inner[0] == 0x45 && inner_total >= 20 && inner_total <= avail &&
                    ipv4_header_sum_ok(inner, 20)) {
                    pm.tunnel = static_cast<uint16_t>(c.tunnel);
                    pm.outer_src = ipv4_src(ip);
                    c.routes->prefetch(ipv4_dst(inner));
                    // Single segment (classify): strip the outer headers and the padding.
                    m->data_off = static_cast<uint16_t>(m->data_off + 20 + hlen);
                    m->data_len = static_cast<uint16_t>(inner_total);
                    m->pkt_len = inner_total;
                    pm.flags = static_cast<uint8_t>(static_cast<uint8_t>(packet_class::ip) |
                                                    meta_flag::from_tunnel);
                    pkts[kept++] = m;
                    continue;
                }
            }
        }
        if (decap_full(m, ctx, c)) {
            pkts[kept++] = m;
        }
    }
    return kept;
}

}  // namespace dmvpn::dp::stage
