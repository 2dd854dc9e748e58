// MTU stage (worker): the egress MTU is the tunnel's IP MTU or the LAN port's MTU.
#include "dataplane/stage/mtu.hpp"

#include "dataplane/adjacency.hpp"
#include "dataplane/stage/ipv4.hpp"

namespace dmvpn::dp::stage {

uint16_t mtu(rte_mbuf** pkts, uint16_t n, worker_ctx& ctx) noexcept {
    uint16_t kept = 0;
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        packet_meta& pm = meta(m);
        uint16_t limit = pm.adj->mtu;
        // The control lcore sizes what it originates; it is no IPv4 datagram to fragment.
        if (m->pkt_len <= limit || (pm.flags & meta_flag::gre_payload) != 0) {
            pkts[kept++] = m;
            continue;
        }
        const uint8_t* ip = rte_pktmbuf_mtod(m, const uint8_t*);
        pm.aux = limit;
        // DF: the sender must learn the MTU (RFC 1191). Without DF the control lcore fragments:
        // fragmenting needs fresh mbufs per fragment, which workers do not take per packet.
        bool df = (wire::load_be16(ip + 6) & ip_flag_df) != 0;
        ctx.punt(m, df ? punt_reason::frag_needed : punt_reason::fragment);
    }
    return kept;
}

}  // namespace dmvpn::dp::stage
