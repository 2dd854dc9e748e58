// One worker's private state, which every stage receives: tables loaded for this burst, the
// drop and punt stacks, rate limiters and plain counters. Only its own worker touches it.
#pragma once

#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <array>
#include <cstdint>

#include "dataplane/drop_reason.hpp"
#include "dataplane/packet_meta.hpp"
#include "dataplane/publisher.hpp"
#include "dataplane/rate_limit.hpp"
#include "dataplane/stats.hpp"
#include "dataplane/token_bucket.hpp"

namespace dmvpn::crypto {
class engine;
}

namespace dmvpn::dp {

// Largest burst a stage is handed: one RX burst plus what decapsulation appends from the
// same burst never exceeds this.
inline constexpr uint16_t max_burst = 64;
inline constexpr uint16_t rx_burst = 32;
// How far ahead stages prefetch packet data.
inline constexpr uint16_t prefetch_ahead = 3;

// Glean "egress" (packet_meta::aux) for a LAN port, as opposed to a tunnel index.
inline constexpr uint16_t glean_lan_port_bit = 0x8000;

struct worker_ctx {
    uint16_t id = 0;
    uint16_t tx_queue = 0;
    const shared_tables* tables = nullptr;
    // Loaded once per burst; valid until the worker's next quiescent point.
    const topology* topo = nullptr;
    const spi_table* spis = nullptr;
    rte_ring* punt_ring = nullptr;
    rte_mempool* event_pool = nullptr;
    crypto::engine* engine = nullptr;
    uint64_t now = 0;  // TSC at the start of the burst
    // Set by resolve: how many of the packets it kept leave through an adjacency with an
    // outbound SA (the worker skips esp_out when none does).
    uint16_t out_sa_packets = 0;
    uint16_t ip_id = 0;
    rate_limiter glean_limit;
    rate_limiter redirect_limit;
    // This worker's share of each punt class's budget, in TSC ticks (unlimited by default).
    std::array<token_bucket, punt_class_count> punt_budget{};
    worker_counters counters;

    std::array<rte_mbuf*, 2 * max_burst> drop_stack{};
    uint16_t n_drops = 0;
    std::array<rte_mbuf*, 2 * max_burst> punt_stack{};
    uint16_t n_punts = 0;

    void drop(rte_mbuf* m, drop_reason r) noexcept {
        ++counters.drops[static_cast<size_t>(r)];
        if (n_drops == drop_stack.size()) {
            flush_drops();
        }
        drop_stack[n_drops++] = m;
    }

    // Within the class's budget the packet goes to the control lcore, else it is dropped and
    // counted (punt_policed, and per class).
    void punt(rte_mbuf* m, punt_reason r) noexcept {
        size_t cls = punt_class_of(m, r);
        if (!punt_budget[cls].take(now)) [[unlikely]] {
            ++counters.punts_policed[cls];
            drop(m, drop_reason::punt_policed);
            return;
        }
        packet_meta& pm = meta(m);
        pm.punt = static_cast<uint8_t>(r);
        pm.rx_tsc = now;  // no new TSC read: the burst's, taken once by begin_burst
        if (n_punts == punt_stack.size()) {
            flush_punts();
        }
        punt_stack[n_punts++] = m;
    }

    // IKE (UDP to port 500 or 4500: IKE and NAT-T) is policed apart from the rest of `for_us`,
    // whose data starts at the IPv4 header.
    static size_t punt_class_of(const rte_mbuf* m, punt_reason r) noexcept {
        if (r != punt_reason::for_us) {
            return static_cast<size_t>(r);
        }
        const auto* ip = rte_pktmbuf_mtod(m, const uint8_t*);
        size_t len = rte_pktmbuf_data_len(m);
        size_t ihl = len < 20 ? 0 : size_t{ip[0] & 0x0fu} * 4;
        if (ihl < 20 || len < ihl + 4 || ip[9] != 17) {
            return static_cast<size_t>(r);
        }
        unsigned dport = (unsigned{ip[ihl + 2]} << 8) | ip[ihl + 3];
        return dport == 500 || dport == 4500 ? punt_class_ike : static_cast<size_t>(r);
    }

    // Glean for an unresolved next hop: the first packet per next hop and interval becomes the
    // event the control lcore resolves from; the others are dropped.
    void glean(rte_mbuf* m, uint32_t nexthop, uint16_t egress) noexcept {
        uint64_t key = (uint64_t{egress} << 32) | nexthop;
        if (glean_limit.allow(key, now)) {
            packet_meta& pm = meta(m);
            pm.nexthop = nexthop;
            pm.aux = egress;
            punt(m, punt_reason::glean);
        } else {
            drop(m, drop_reason::no_adjacency);
        }
    }

    void flush_drops() noexcept {
        if (n_drops != 0) {
            rte_pktmbuf_free_bulk(drop_stack.data(), n_drops);
            n_drops = 0;
        }
    }

    // The ring is MP/SC and enqueues never wait: what does not fit is counted and freed. Each
    // punted packet carries the TSC of its enqueue (one TSC read per flush, not per packet), so
    // the control lcore can tell the worker's part of NHRP's time from the ring's.
    void flush_punts() noexcept {
        if (n_punts == 0) {
            return;
        }
        if (const int off = punt_tsc_offset; off >= 0) {
            const uint64_t t = rte_rdtsc();
            for (uint16_t i = 0; i < n_punts; ++i) {
                set_punt_tsc(punt_stack[i], off, t);
            }
        }
        unsigned done = punt_ring == nullptr
                            ? 0
                            : rte_ring_mp_enqueue_burst(
                                  punt_ring, reinterpret_cast<void* const*>(punt_stack.data()),
                                  n_punts, nullptr);
        for (unsigned i = 0; i < done; ++i) {
            ++counters.punts[meta(punt_stack[i]).punt];
        }
        for (unsigned i = done; i < n_punts; ++i) {
            ++counters.drops[static_cast<size_t>(drop_reason::punt_ring_full)];
            rte_pktmbuf_free(punt_stack[i]);
        }
        n_punts = 0;
    }
};

}  // namespace dmvpn::dp
