// TX stage (worker): the last stage; hands packets to the ports.
#include "dataplane/stage/tx.hpp"

#include <rte_ethdev.h>

#include <cstring>

#include "dataplane/adjacency.hpp"

namespace dmvpn::dp::stage {

uint16_t tx(rte_mbuf** pkts, uint16_t n, worker_ctx& ctx) noexcept {
    // Group by port, keeping each port's packets in arrival order.
    rte_mbuf* by_port[max_ports][max_burst];
    uint16_t count[max_ports] = {};
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        const adjacency* a = meta(m).adj;
        auto* eth = reinterpret_cast<uint8_t*>(rte_pktmbuf_prepend(m, RTE_ETHER_HDR_LEN));
        if (eth == nullptr || a->out_port >= max_ports) {
            ctx.drop(m, drop_reason::no_headroom);
            continue;
        }
        std::memcpy(eth, a->eth, RTE_ETHER_HDR_LEN);
        by_port[a->out_port][count[a->out_port]++] = m;
    }
    uint16_t sent_total = 0;
    for (uint16_t port = 0; port < max_ports; ++port) {
        uint16_t c = count[port];
        if (c == 0) {
            continue;
        }
        // Bytes are summed before the PMD owns (and may free) the mbufs.
        uint64_t bytes[max_burst + 1];
        bytes[0] = 0;
        for (uint16_t i = 0; i < c; ++i) {
            bytes[i + 1] = bytes[i] + by_port[port][i]->pkt_len;
        }
        uint16_t sent = rte_eth_tx_burst(port, ctx.tx_queue, by_port[port], c);
        ctx.counters.port_tx_packets[port] += sent;
        ctx.counters.port_tx_bytes[port] += bytes[sent];
        for (uint16_t i = sent; i < c; ++i) {
            ctx.drop(by_port[port][i], drop_reason::tx_full);
        }
        sent_total = static_cast<uint16_t>(sent_total + sent);
    }
    ctx.counters.tx_packets += sent_total;
    return sent_total;
}

}  // namespace dmvpn::dp::stage
