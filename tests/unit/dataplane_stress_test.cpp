// Stress: a worker lcore forwards traffic while the control lcore (this thread) makes
// 1,000,000 adjacency add/change/delete operations. Every packet that leaves must carry an
// adjacency state that was current at some instant while the packet was in flight, never a
// mix of two states or a freed one; afterwards every mbuf is back in the pool and every
// retired adjacency was freed.
#include <rte_launch.h>
#include <rte_lcore.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <thread>

#include "dataplane/wire/reader.hpp"
#include "tests/unit/dataplane_support.hpp"

using namespace dptest;
namespace dp = dmvpn::dp;
namespace wire = dmvpn::wire;

namespace {

constexpr uint32_t first_slot = 10;
constexpr uint32_t slots = 32;
constexpr uint64_t never = std::numeric_limits<uint64_t>::max();

uint32_t overlay_of(uint32_t s) { return dptest::ip4(10, 0, 0, static_cast<uint8_t>(100 + s)); }

// Everything about a published state derives from its version: NBMA 100.x.y.z with the low 24
// bits of the version, underlay MAC 02:00 + the version. A torn or freed adjacency cannot
// produce a matching pair.
uint32_t nbma_of(uint64_t v) { return (100u << 24) | static_cast<uint32_t>(v & 0xffffff); }
rte_ether_addr mac_of(uint64_t v) {
    return rte_ether_addr{{0x02, 0x00, static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
                           static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)}};
}

struct history {
    // Per version (= the index of the operation that published it).
    std::vector<uint32_t> slot;
    std::vector<uint8_t> resolved;
    std::vector<uint64_t> replaced_at;
    std::vector<uint64_t> current;  // per slot: the version now published (0: none)
};

}  // namespace

TEST_CASE("1,000,000 adjacency updates while traffic flows: no torn or freed adjacency, no leak",
          "[dataplane][stress]") {
    const uint64_t ops = std::getenv("DMVPN_STRESS_OPS") != nullptr
                             ? std::strtoull(std::getenv("DMVPN_STRESS_OPS"), nullptr, 10)
                             : 1000000;
    REQUIRE(ops < (1u << 24));
    env e;
    auto& pub = e.pub();
    const size_t base_live = pub.live_adjacencies();
    for (uint32_t s = 0; s < slots; ++s) {
        REQUIRE(pub.add_route(overlay_of(s), 32, {dp::route_kind::adjacency, first_slot + s}) ==
                dp::publish_status::ok);
    }
    history h;
    h.slot.assign(ops + 1, 0);
    h.resolved.assign(ops + 1, 0);
    h.replaced_at.assign(ops + 1, never);
    h.current.assign(slots, 0);

    unsigned lcore = rte_get_next_lcore(rte_lcore_id(), 1, 0);
    REQUIRE(lcore < RTE_MAX_LCORE);
    std::atomic<bool> stop{false};
    dp::worker::launch_args args{&e.worker(), &stop};
    REQUIRE(rte_eal_remote_launch(dp::worker::lcore_main, &args, lcore) == 0);

    std::mt19937_64 rng(20240601);
    uint64_t injected = 0, validated = 0, bad = 0, stale_but_valid = 0, freed_during = 0;
    size_t max_live = 0;
    rte_ring* rx = e.lan().rx[0];
    rte_ring* tx = e.underlay().tx[0];

    auto drain = [&](uint64_t now) {
        void* objs[64];
        unsigned n;
        while ((n = rte_ring_dequeue_burst(tx, objs, 64, nullptr)) != 0) {
            for (unsigned i = 0; i < n; ++i) {
                auto* m = static_cast<rte_mbuf*>(objs[i]);
                const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
                const uint8_t* ip = f + 14;
                const uint8_t* inner = ip + 20 + 8;
                uint32_t nbma = wire::load_be32(ip + 16);
                uint64_t v = nbma & 0xffffff;
                uint64_t v_mac = wire::load_be32(f + 2);
                uint32_t dst = wire::load_be32(inner + 16);
                uint64_t sent_at = wire::load_be32(inner + 28);  // UDP payload: inject index
                uint32_t s = (dst & 0xff) - 100;
                bool ok = (nbma >> 24) == 100 && v == v_mac && v >= 1 && v <= now && s < slots &&
                          h.slot[v] == s && h.resolved[v] == 1 && h.replaced_at[v] > sent_at &&
                          wire::load_be32(ip + 24) == net::key0 &&
                          wire::load_be32(ip + 12) == net::hub_nbma;
                if (ok) {
                    ++validated;
                    if (h.current[s] != v) {
                        ++stale_but_valid;  // replaced while in flight: allowed
                    }
                } else {
                    ++bad;
                }
                rte_pktmbuf_free(m);
            }
        }
        rte_mbuf* p[64];
        while ((n = dp::dequeue_punts(e.punt_ring(), p, 64)) != 0) {
            for (unsigned i = 0; i < n; ++i) {
                rte_pktmbuf_free(p[i]);
            }
        }
    };

    for (uint64_t k = 1; k <= ops; ++k) {
        uint32_t s = static_cast<uint32_t>(rng() % slots);
        unsigned kind = static_cast<unsigned>(rng() % 10);
        uint32_t id = first_slot + s;
        dp::publish_status st;
        if (kind < 7) {
            dp::tunnel_adjacency_spec spec{0, overlay_of(s), nbma_of(k), mac_of(k), nullptr, 0};
            st = pub.set_tunnel_adjacency(id, spec);
            h.resolved[k] = 1;
        } else if (kind < 9) {
            st = pub.set_incomplete(id, 0, e.underlay().id, overlay_of(s));
        } else {
            st = pub.remove_adjacency(id);
        }
        if (st != dp::publish_status::ok) {
            FAIL("publish failed: " << dp::name(st));
        }
        h.slot[k] = s;
        if (h.current[s] != 0) {
            h.replaced_at[h.current[s]] = k;
        }
        h.current[s] = k;
        max_live = std::max(max_live, pub.live_adjacencies());

        if (k % 64 == 0) {
            // A burst of traffic to random spokes, tagged with the operation index.
            rte_mbuf* burst[32];
            unsigned n = 0;
            for (; n < 32; ++n) {
                uint32_t ts = static_cast<uint32_t>(rng() % slots);
                bytes udp_payload = udp(1, 2, 8);
                wire::store_be32(&udp_payload[8], static_cast<uint32_t>(k));
                auto frame = e.lan_frame(ipv4(net::lan_host, overlay_of(ts), 17, udp_payload));
                burst[n] = rte_pktmbuf_alloc(e.pool());
                if (burst[n] == nullptr) {
                    break;
                }
                std::memcpy(rte_pktmbuf_append(burst[n], static_cast<uint16_t>(frame.size())),
                            frame.data(), frame.size());
            }
            unsigned in = rte_ring_enqueue_burst(rx, reinterpret_cast<void**>(burst), n, nullptr);
            for (unsigned i = in; i < n; ++i) {
                rte_pktmbuf_free(burst[i]);
            }
            injected += in;
            drain(k);
        }
        if (k % 1024 == 0) {
            freed_during += pub.reclaim();
            if (pub.pending() > 200000) {
                // The worker lcore is starved of CPU (shared machine): wait for it rather than
                // let retired objects pile up.
                pub.synchronize();
            }
        }
    }
    // Let the worker finish what is queued, then stop it.
    for (int i = 0; i < 2000 && rte_ring_count(rx) != 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        drain(ops);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    stop.store(true);
    REQUIRE(rte_eal_wait_lcore(lcore) == 0);
    drain(ops);

    INFO("injected " << injected << ", validated " << validated << " (replaced in flight "
                     << stale_but_valid << "), bad " << bad << ", max live " << max_live);
    CHECK(bad == 0);
    CHECK(validated > 1000);
    CHECK(freed_during > 0);

    // Reclamation: after a grace period only what is published is alive.
    pub.synchronize();
    CHECK(pub.pending() == 0);
    size_t published = 0;
    for (uint32_t s = 0; s < slots; ++s) {
        if (pub.tables().adjacencies->get(first_slot + s) != nullptr) {
            ++published;
        }
    }
    CHECK(pub.live_adjacencies() == base_live + published);

    // Every mbuf is back: nothing stuck in the rings, nothing leaked by the worker.
    void* m = nullptr;
    while (rte_ring_dequeue(rx, &m) == 0) {
        rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    }
    CHECK(e.pool_in_use() == 0);
    auto c = e.stats().total();
    CHECK(c.rx_packets == injected);
    WARN("stress: " << injected << " packets injected, " << validated << " validated ("
                    << stale_but_valid << " replaced in flight), " << c.tx_packets << " sent, "
                    << c.total_drops() << " dropped, " << c.total_punts() << " punted");
}
