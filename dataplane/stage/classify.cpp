// Classify stage (worker): the first stage every received packet meets.
#include "dataplane/stage/classify.hpp"

#include <rte_ether.h>
#include <rte_prefetch.h>

#include "dataplane/fib.hpp"
#include "dataplane/stage/ipv4.hpp"

namespace dmvpn::dp::stage {

uint16_t classify(rte_mbuf** pkts, uint16_t n, worker_ctx& ctx) noexcept {
    const topology* topo = ctx.topo;
    // Consecutive packets usually go to the same NBMA address: remember the last answer.
    uint32_t last_dst = 0;
    bool last_is_nbma = false;
    bool have_last = false;
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
        if (m->nb_segs != 1) {
            ctx.drop(m, drop_reason::multi_segment);
            continue;
        }
        uint32_t len = m->data_len;
        if (len < RTE_ETHER_HDR_LEN) {
            ctx.drop(m, drop_reason::eth_truncated);
            continue;
        }
        const uint8_t* eth = rte_pktmbuf_mtod(m, const uint8_t*);
        uint16_t type = wire::load_be16(eth + 2 * RTE_ETHER_ADDR_LEN);
        if (type == RTE_ETHER_TYPE_ARP) {
            ctx.punt(m, punt_reason::arp);
            continue;
        }
        if (type != RTE_ETHER_TYPE_IPV4) {
            ctx.drop(m, drop_reason::unsupported_ethertype);
            continue;
        }
        const uint8_t* ip = eth + RTE_ETHER_HDR_LEN;
        if (auto bad = ipv4_check(ip, len - RTE_ETHER_HDR_LEN)) {
            ctx.drop(m, *bad);
            continue;
        }
        // From here on the packet starts at its IPv4 header and ends where IPv4 says it ends
        // (Ethernet pads short frames).
        uint16_t total = ipv4_total_length(ip);
        rte_pktmbuf_adj(m, RTE_ETHER_HDR_LEN);
        if (m->pkt_len > total) {
            rte_pktmbuf_trim(m, static_cast<uint16_t>(m->pkt_len - total));
        }
        packet_class cls = packet_class::ip;
        uint8_t proto = ip[9];
        if (topo != nullptr && (proto == ip_proto_gre || proto == ip_proto_esp)) {
            uint32_t dst = ipv4_dst(ip);
            if (!have_last || dst != last_dst) {
                last_dst = dst;
                last_is_nbma = topo->is_nbma(dst);
                have_last = true;
            }
            if (last_is_nbma) {
                if (ipv4_is_fragment(ip)) {
                    ctx.drop(m, drop_reason::tunnel_fragment);
                    continue;
                }
                cls = proto == ip_proto_esp ? packet_class::esp : packet_class::gre;
            }
        }
        if (cls == packet_class::ip) {
            // Routed next: start loading its FIB entry.
            ctx.tables->routes->prefetch(ipv4_dst(ip));
        }
        pm.flags = static_cast<uint8_t>(cls);
        pkts[kept++] = m;
    }
    return kept;
}

}  // namespace dmvpn::dp::stage
