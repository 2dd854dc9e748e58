// TX stage (worker): the last stage; hands packets to the ports.
#include "dataplane/stage/tx.hpp"

#include <rte_ethdev.h>

#include <cstring>

#include "dataplane/adjacency.hpp"

namespace dmvpn::dp::stage {

namespace {

// One port's packets, in order, to this worker's TX queue; what the queue refuses is dropped.
// `bytes` is their total, summed before the PMD owns (and may free) the mbufs.
uint16_t send(uint16_t port, rte_mbuf** pkts, uint16_t c, uint64_t bytes,
              worker_ctx& ctx) noexcept {
    if (ctx.tables->paused(port)) {
        for (uint16_t i = 0; i < c; ++i) {
            ctx.drop(pkts[i], drop_reason::port_paused);
        }
        return 0;
    }
    uint16_t sent = rte_eth_tx_burst(port, ctx.tx_queue, pkts, c);
    for (uint16_t i = sent; i < c; ++i) {
        bytes -= pkts[i]->pkt_len;  // still ours
        ctx.drop(pkts[i], drop_reason::tx_full);
    }
    ctx.counters.port_tx_packets[port] += sent;
    ctx.counters.port_tx_bytes[port] += bytes;
    return sent;
}

}  // namespace

uint16_t tx(rte_mbuf** pkts, uint16_t n, worker_ctx& ctx) noexcept {
    // Ethernet headers first, noting whether the burst leaves through one port (the usual case:
    // sent as it stands) or several (grouped by port, each port's packets in arrival order).
    uint8_t port_of[max_burst];
    uint16_t kept = 0;
    uint16_t ports_seen = 0;  // bit per port
    uint64_t bytes = 0;
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        const adjacency* a = meta(m).adj;
        auto* eth = reinterpret_cast<uint8_t*>(rte_pktmbuf_prepend(m, RTE_ETHER_HDR_LEN));
        if (eth == nullptr || a->out_port >= max_ports) {
            ctx.drop(m, drop_reason::no_headroom);
            continue;
        }
        std::memcpy(eth, a->eth, RTE_ETHER_HDR_LEN);
        port_of[kept] = static_cast<uint8_t>(a->out_port);
        ports_seen = static_cast<uint16_t>(ports_seen | (1u << a->out_port));
        bytes += m->pkt_len;
        pkts[kept++] = m;
    }
    static_assert(max_ports <= 16);
    if (kept == 0) {
        return 0;
    }
    uint16_t sent_total = 0;
    if ((ports_seen & (ports_seen - 1)) == 0) {
        sent_total = send(port_of[0], pkts, kept, bytes, ctx);
    } else {
        rte_mbuf* by_port[max_ports][max_burst];
        uint16_t count[max_ports] = {};
        uint64_t port_bytes[max_ports] = {};
        for (uint16_t i = 0; i < kept; ++i) {
            by_port[port_of[i]][count[port_of[i]]++] = pkts[i];
            port_bytes[port_of[i]] += pkts[i]->pkt_len;
        }
        for (uint16_t port = 0; port < max_ports; ++port) {
            if (count[port] != 0) {
                sent_total = static_cast<uint16_t>(
                    sent_total + send(port, by_port[port], count[port], port_bytes[port], ctx));
            }
        }
    }
    ctx.counters.tx_packets += sent_total;
    return sent_total;
}

}  // namespace dmvpn::dp::stage
