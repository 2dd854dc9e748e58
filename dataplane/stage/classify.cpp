// Classify stage (worker): the first stage every received packet meets.
#include "dataplane/stage/classify.hpp"

#include <rte_ether.h>
#include <rte_prefetch.h>

#include "dataplane/fib.hpp"
#include "dataplane/stage/ipv4.hpp"
#include "dataplane/stage/natt.hpp"

namespace dmvpn::dp::stage {

namespace {

// The last destination asked about (consecutive packets usually go to the same NBMA address).
struct nbma_cache {
    const topology* topo;
    uint32_t dst = 0;
    bool is_nbma = false;
    bool valid = false;

    bool check(uint32_t d) noexcept {
        if (!valid || d != dst) {
            dst = d;
            is_nbma = topo->is_nbma(d);
            valid = true;
        }
        return is_nbma;
    }
};

// Where a valid IPv4 packet (now starting at its header) goes: false when it was dropped.
inline bool sort(rte_mbuf* m, packet_meta& pm, const uint8_t* ip, worker_ctx& ctx,
                 nbma_cache& c) noexcept {
    packet_class cls = packet_class::ip;
    uint8_t proto = ip[9];
    if (c.topo != nullptr && (proto == ip_proto_gre || proto == ip_proto_esp) &&
        c.check(ipv4_dst(ip))) {
        if (ipv4_is_fragment(ip)) {
            ctx.drop(m, drop_reason::tunnel_fragment);
            return false;
        }
        cls = proto == ip_proto_esp ? packet_class::esp : packet_class::gre;
    }
    if (proto == ip_proto_udp && c.topo != nullptr && !ipv4_is_fragment(ip) &&
        is_esp_in_udp(ip, m->data_len) && c.check(ipv4_dst(ip))) {
        // ESP-in-UDP to an NBMA address: plain ESP from here on (the SA is found by SPI).
        natt_strip_udp(m);
        ++ctx.counters.natt_in;
        pm.flags =
            static_cast<uint8_t>(static_cast<uint8_t>(packet_class::esp) | meta_flag::udp_encap);
        return true;
    }
    if (cls == packet_class::ip) {
        // Routed next: start loading its FIB entry.
        ctx.tables->routes->prefetch(ipv4_dst(ip));
    }
    pm.flags = static_cast<uint8_t>(cls);
    return true;
}

// Every check in order, each failure dropped or punted under its reason; true: kept (the fast
// path in classify takes the common packets that this would accept).
[[gnu::noinline]] bool classify_full(rte_mbuf* m, packet_meta& pm, worker_ctx& ctx,
                                     nbma_cache& c) noexcept {
    if (m->nb_segs != 1) {
        ctx.drop(m, drop_reason::multi_segment);
        return false;
    }
    uint32_t len = m->data_len;
    if (len < RTE_ETHER_HDR_LEN) {
        ctx.drop(m, drop_reason::eth_truncated);
        return false;
    }
    const uint8_t* eth = rte_pktmbuf_mtod(m, const uint8_t*);
    uint16_t type = wire::load_be16(eth + 2 * RTE_ETHER_ADDR_LEN);
    if (type == RTE_ETHER_TYPE_ARP) {
        ctx.punt(m, punt_reason::arp);
        return false;
    }
    if (type != RTE_ETHER_TYPE_IPV4) {
        ctx.drop(m, drop_reason::unsupported_ethertype);
        return false;
    }
    const uint8_t* ip = eth + RTE_ETHER_HDR_LEN;
    if (auto bad = ipv4_check(ip, len - RTE_ETHER_HDR_LEN)) {
        ctx.drop(m, *bad);
        return false;
    }
    // From here on the packet starts at its IPv4 header and ends where IPv4 says it ends
    // (Ethernet pads short frames).
    uint16_t total = ipv4_total_length(ip);
    rte_pktmbuf_adj(m, RTE_ETHER_HDR_LEN);
    if (m->pkt_len > total) {
        rte_pktmbuf_trim(m, static_cast<uint16_t>(m->pkt_len - total));
    }
    return sort(m, pm, ip, ctx, c);
}

}  // namespace

uint16_t classify(rte_mbuf** pkts, uint16_t n, worker_ctx& ctx) noexcept {
    nbma_cache c{ctx.topo};
    uint16_t kept = 0;
    for (uint16_t i = 0; i < n; ++i) {
        if (i + prefetch_ahead < n) {
            rte_prefetch0(rte_pktmbuf_mtod(pkts[i + prefetch_ahead], void*));
        }
        rte_mbuf* m = pkts[i];
        packet_meta& pm = meta(m);
        pm = packet_meta{};
        pm.tunnel = no_tunnel;
        pm.in_port = m->port;
        // Fast path: one segment, Ethernet + IPv4 without options, lengths consistent, header
        // checksum right (what ipv4_check accepts first); anything else takes classify_full.
        uint32_t len = m->data_len;
        const uint8_t* eth = rte_pktmbuf_mtod(m, const uint8_t*);
        const uint8_t* ip = eth + RTE_ETHER_HDR_LEN;
        if (m->nb_segs == 1 && len >= RTE_ETHER_HDR_LEN + 20 && m->pkt_len == len &&
            wire::load_be16(eth + 2 * RTE_ETHER_ADDR_LEN) == RTE_ETHER_TYPE_IPV4 && ip[0] == 0x45) {
            uint32_t total = ipv4_total_length(ip);
            if (total >= 20 && total <= len - RTE_ETHER_HDR_LEN && ipv4_header_sum_ok(ip, 20)) {
                // adj + trim for one segment: the packet is the IPv4 datagram, padding cut.
                m->data_off = static_cast<uint16_t>(m->data_off + RTE_ETHER_HDR_LEN);
                m->data_len = static_cast<uint16_t>(total);
                m->pkt_len = total;
                if (sort(m, pm, ip, ctx, c)) {
                    pkts[kept++] = m;
                }
                continue;
            }
        }
        if (classify_full(m, pm, ctx, c)) {
            pkts[kept++] = m;
        }
    }
    return kept;
}

}  // namespace dmvpn::dp::stage
