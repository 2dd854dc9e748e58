// Stress: a worker lcore forwards traffic while the control lcore (this thread) makes
// 1,000,000 adjacency add/change/delete operations. Every packet that leaves must carry an
// adjacency state that was current at some instant while the packet was in flight, never a
// mix of two states or a freed one; afterwards every mbuf is back in the pool and every
// retired adjacency was freed. Then: 8 workers and the control lcore encrypt for the same SAs
// while they are rekeyed, and no sequence number is ever used twice.
#include <rte_launch.h>
#include <rte_lcore.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "crypto/engine.hpp"
#include "crypto/esp_transport.hpp"
#include "crypto/sa.hpp"
#include "dataplane/wire/reader.hpp"
#include "tests/unit/dataplane_support.hpp"

using namespace dptest;
namespace dp = dmvpn::dp;
namespace wire = dmvpn::wire;
namespace crypto = dmvpn::crypto;

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

// Enqueues up to n UDP packets from the LAN host into `rx`, to dst() each, with `tag` in the
// first payload word; returns how many went in (the rest are freed).
template <class Dst>
unsigned inject_tagged(env& e, rte_ring* rx, unsigned n, uint32_t tag, Dst dst) {
    rte_mbuf* burst[32];
    n = std::min(n, 32u);
    unsigned made = 0;
    for (; made < n; ++made) {
        bytes udp_payload = udp(1, 2, 8);
        wire::store_be32(&udp_payload[8], tag);
        auto frame = e.lan_frame(ipv4(net::lan_host, dst(), 17, udp_payload));
        burst[made] = rte_pktmbuf_alloc(e.pool());
        if (burst[made] == nullptr) {
            break;
        }
        std::memcpy(rte_pktmbuf_append(burst[made], static_cast<uint16_t>(frame.size())),
                    frame.data(), frame.size());
    }
    unsigned in = rte_ring_enqueue_burst(rx, reinterpret_cast<void**>(burst), made, nullptr);
    for (unsigned i = in; i < made; ++i) {
        rte_pktmbuf_free(burst[i]);
    }
    return in;
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
            injected += inject_tagged(e, rx, 32, static_cast<uint32_t>(k), [&] {
                return overlay_of(static_cast<uint32_t>(rng() % slots));
            });
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

namespace {

crypto::engine& stress_engine() {
    static auto eng = crypto::engine::create();
    REQUIRE(eng.has_value());
    return **eng;
}

constexpr uint32_t churn_spokes = 16;
constexpr uint32_t churn_spi_base = 0x10000;

uint32_t overlay1_of(uint32_t s) { return dptest::ip4(10, 1, 0, static_cast<uint8_t>(100 + s)); }

// Spoke s's SA pair: the hub encrypts with `out` (owned by worker s % workers), the test opens
// what left with `check`, the same keys inbound. AES-GCM is fine here: nothing restarts.
struct spoke_sas {
    std::unique_ptr<crypto::sa> out;
    std::unique_ptr<crypto::sa> check;
};

spoke_sas make_spoke_sas(uint32_t s) {
    std::array<uint8_t, 20> key{};
    for (size_t i = 0; i < key.size(); ++i) {
        key[i] = static_cast<uint8_t>(s * 31 + i * 7 + 1);
    }
    spoke_sas r;
    for (bool outbound : {true, false}) {
        crypto::sa_params p;
        p.spi = churn_spi_base + s;
        p.direction = outbound ? crypto::sa_direction::outbound : crypto::sa_direction::inbound;
        p.cipher = crypto::cipher_alg::aes_gcm_16;
        p.cipher_key = key;
        p.anti_replay = false;
        auto sa = crypto::sa::create(p, stress_engine());
        REQUIRE(sa.has_value());
        (outbound ? r.out : r.check) = std::move(*sa);
    }
    return r;
}

}  // namespace

TEST_CASE(
    "adjacency ids freed and reused under traffic, 3 workers: no packet leaves with another "
    "spoke's adjacency (ids swap between spokes; every worker encrypts for every SA)",
    "[dataplane][stress][rcu]") {
    constexpr uint16_t workers = 3;
    const uint64_t ops = std::getenv("DMVPN_STRESS_CHURN_OPS") != nullptr
                             ? std::strtoull(std::getenv("DMVPN_STRESS_CHURN_OPS"), nullptr, 10)
                             : 30000;
    REQUIRE(2 * ops + churn_spokes < (1u << 24));
    env e(workers);
    auto& pub = e.pub();
    std::vector<spoke_sas> sas;
    for (uint32_t s = 0; s < churn_spokes; ++s) {
        sas.push_back(make_spoke_sas(s));
    }
    // Versions: every adjacency published gets the next number, which its NBMA and MAC carry.
    uint64_t version = 0;
    std::vector<uint32_t> slot_of(2 * ops + churn_spokes + 1, 0);
    std::vector<uint64_t> replaced_at(2 * ops + churn_spokes + 1, never);
    std::vector<uint64_t> current(churn_spokes, 0);
    std::vector<uint32_t> id_of(churn_spokes, 0);
    uint64_t alloc_waits = 0;

    auto alloc = [&]() -> uint32_t {
        for (int i = 0; i < 200000; ++i) {
            if (auto id = pub.alloc_adjacency_id()) {
                return *id;
            }
            // Every id is on its way back: let the workers pass their quiescent states.
            ++alloc_waits;
            pub.reclaim();
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
        FAIL("no adjacency id came back within 10 s");
        return 0;
    };
    auto publish = [&](uint32_t s) {
        uint32_t id = alloc();
        uint64_t v = ++version;
        dp::tunnel_adjacency_spec spec{1, overlay1_of(s), nbma_of(v), mac_of(v), sas[s].out.get()};
        REQUIRE(pub.set_tunnel_adjacency(id, spec) == dp::publish_status::ok);
        REQUIRE(pub.add_route(overlay1_of(s), 32, {dp::route_kind::adjacency, id}) ==
                dp::publish_status::ok);
        slot_of[v] = s;
        if (current[s] != 0) {
            replaced_at[current[s]] = v;
        }
        current[s] = v;
        id_of[s] = id;
    };
    auto withdraw = [&](uint32_t s) {
        REQUIRE(pub.del_route(overlay1_of(s), 32) == dp::publish_status::ok);
        pub.free_adjacency_id(id_of[s]);
        id_of[s] = 0;
    };
    for (uint32_t s = 0; s < churn_spokes; ++s) {
        publish(s);
    }

    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (uint16_t w = 0; w < workers; ++w) {
        threads.emplace_back([&e, &stop, w] { e.worker(w).run(stop); });
    }

    std::mt19937_64 rng(20261205);
    uint64_t injected = 0, validated = 0, bad = 0, wrong_spoke = 0, stale_but_valid = 0;
    std::vector<uint8_t> buf(4096);
    auto drain = [&]() {
        void* objs[64];
        for (uint16_t w = 0; w <= workers; ++w) {
            unsigned n;
            while ((n = rte_ring_dequeue_burst(e.underlay().tx[w], objs, 64, nullptr)) != 0) {
                for (unsigned i = 0; i < n; ++i) {
                    auto* m = static_cast<rte_mbuf*>(objs[i]);
                    const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
                    const uint32_t len = rte_pktmbuf_data_len(m);
                    bool ok = false;
                    if (len > 14 + 20 + 8 && len - 14 <= buf.size() - 512) {
                        // Open it with the SA its SPI names, as that spoke would.
                        std::copy(f + 14, f + len, buf.begin() + 256);
                        crypto::esp_packet p{buf.data() + 256, len - 14, 256, 256};
                        const uint8_t* ip = p.data;
                        uint32_t nbma = wire::load_be32(ip + 16);
                        uint64_t v = nbma & 0xffffff;
                        uint64_t v_mac = wire::load_be32(f + 2);
                        uint32_t j = wire::load_be32(ip + 20) - churn_spi_base;
                        crypto::esp_status st = crypto::esp_status::engine_error;
                        if (ip[9] == 50 && j < churn_spokes) {
                            (void)crypto::decrypt_burst(stress_engine(), *sas[j].check,
                                                        std::span(&p, 1), std::span(&st, 1));
                        }
                        if (st == crypto::esp_status::ok && p.len >= 20 + 8 + 20 + 8 + 8) {
                            const uint8_t* g = p.data + 20;
                            const uint8_t* inner = g + 8;
                            uint32_t dst = wire::load_be32(inner + 16);
                            uint64_t sent_at = wire::load_be32(inner + 28);
                            uint32_t s = (dst & 0xff) - 100;
                            if (s != j) {
                                ++wrong_spoke;  // encrypted for and sent to another spoke
                            }
                            ok = s == j && (nbma >> 24) == 100 && v == v_mac && v >= 1 &&
                                 v <= version && slot_of[v] == s && replaced_at[v] > sent_at &&
                                 wire::load_be32(g + 4) == net::key1 &&
                                 wire::load_be32(ip + 12) == net::hub_nbma;
                            if (ok && current[s] != v) {
                                ++stale_but_valid;
                            }
                        }
                    }
                    ++(ok ? validated : bad);
                    rte_pktmbuf_free(m);
                }
            }
        }
        rte_mbuf* p[64];
        unsigned n;
        while ((n = dp::dequeue_punts(e.punt_ring(), p, 64)) != 0) {
            for (unsigned i = 0; i < n; ++i) {
                rte_pktmbuf_free(p[i]);
            }
        }
    };
    auto inject = [&]() {
        // A burst to random spokes into each worker's LAN queue, tagged with the version.
        for (uint16_t w = 0; w < workers; ++w) {
            injected += inject_tagged(e, e.lan().rx[w], 16, static_cast<uint32_t>(version), [&] {
                return overlay1_of(static_cast<uint32_t>(rng() % churn_spokes));
            });
        }
    };

    for (uint64_t k = 1; k <= ops; ++k) {
        // Two spokes give their ids back and take new ones: with immediate reuse they would
        // swap ids, and a packet still carrying one would leave with the other's adjacency.
        uint32_t a = static_cast<uint32_t>(rng() % churn_spokes);
        uint32_t b = static_cast<uint32_t>((a + 1 + rng() % (churn_spokes - 1)) % churn_spokes);
        withdraw(a);
        withdraw(b);
        publish(a);
        publish(b);
        if (k % 4 == 0) {
            inject();
            drain();
        }
        if (k % 64 == 0) {
            pub.reclaim();
        }
    }
    for (int i = 0; i < 200; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        drain();
    }
    stop.store(true);
    for (auto& t : threads) {
        t.join();
    }
    drain();

    INFO("injected " << injected << ", validated " << validated << " (replaced in flight "
                     << stale_but_valid << "), bad " << bad << " (to the wrong spoke "
                     << wrong_spoke << "), waits for an id " << alloc_waits);
    CHECK(wrong_spoke == 0);
    CHECK(bad == 0);
    CHECK(validated > 1000);
    auto c = e.stats().total();
    CHECK(c.rx_packets == injected);

    pub.synchronize();
    CHECK(pub.ids_pending() == 0);
    void* m = nullptr;
    for (uint16_t w = 0; w < workers; ++w) {
        while (rte_ring_dequeue(e.lan().rx[w], &m) == 0) {
            rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
        }
    }
    for (uint32_t s = 0; s < churn_spokes; ++s) {
        (void)pub.del_route(overlay1_of(s), 32);
        (void)pub.remove_adjacency(id_of[s]);
    }
    pub.synchronize();
    CHECK(e.pool_in_use() == 0);
    WARN("churn: " << ops << " id swaps, " << injected << " packets injected, " << validated
                   << " validated (" << stale_but_valid << " replaced in flight), " << c.tx_packets
                   << " sent, " << c.total_drops() << " dropped, " << c.total_punts() << " punted, "
                   << alloc_waits << " waits for an id");
}

namespace {

constexpr uint32_t seq_spokes = 2;  // few SAs: the workers meet on them often
constexpr uint32_t seq_spi_base = 0x20000;

// One generation of one spoke's outbound SA (and the spoke's inbound twin to open its packets):
// SPI seq_spi_base + 16 * generation + spoke.
spoke_sas make_generation(uint32_t spoke, uint32_t generation) {
    std::array<uint8_t, 20> key{};
    for (size_t i = 0; i < key.size(); ++i) {
        key[i] = static_cast<uint8_t>(spoke * 29 + generation * 13 + i * 5 + 3);
    }
    spoke_sas r;
    for (bool outbound : {true, false}) {
        crypto::sa_params p;
        p.spi = seq_spi_base + 16 * generation + spoke;
        p.direction = outbound ? crypto::sa_direction::outbound : crypto::sa_direction::inbound;
        p.cipher = crypto::cipher_alg::aes_gcm_16;
        p.cipher_key = key;
        p.anti_replay = false;  // the workers' packets reach the check in any order
        auto sa = crypto::sa::create(p, stress_engine());
        REQUIRE(sa.has_value());
        (outbound ? r.out : r.check) = std::move(*sa);
    }
    return r;
}

}  // namespace

TEST_CASE(
    "sequence numbers: 8 workers and the control lcore encrypt with SAs being rekeyed, none "
    "repeats, every gap is a counted drop",
    "[dataplane][stress][esp]") {
    constexpr uint16_t workers = 8;  // threads on this machine's cores, as many as it has or not
    const uint32_t rekeys =
        std::getenv("DMVPN_STRESS_REKEYS") != nullptr
            ? static_cast<uint32_t>(std::strtoul(std::getenv("DMVPN_STRESS_REKEYS"), nullptr, 10))
            : 60;
    env e(workers);
    auto& pub = e.pub();

    // Per SPI: the spoke's SA that opens its packets, every sequence number seen (how often),
    // and, once the hub's SA was freed, the last number it handed out.
    struct sa_record {
        std::unique_ptr<crypto::sa> check;
        std::vector<uint8_t> seen;
        uint64_t final_seq = 0;
        bool freed = false;
    };
    std::map<uint32_t, sa_record> records;
    std::vector<uint32_t> id_of(seq_spokes, 0);
    std::vector<uint32_t> generation(seq_spokes, 0);
    std::vector<crypto::sa*> live(seq_spokes, nullptr);

    // Publishes spoke s's next SA on its adjacency id (a rekey: the old SA is replaced while the
    // workers use it) and retires the old one, which is freed after a grace period: any worker
    // may still be encrypting with it until then.
    auto rekey = [&](uint32_t s) {
        spoke_sas g = make_generation(s, generation[s]++);
        const uint32_t spi = g.out->spi();
        records[spi].check = std::move(g.check);
        crypto::sa* fresh = g.out.release();
        dp::tunnel_adjacency_spec spec{1, overlay1_of(s), net::spoke5_nbma, underlay_gw_mac, fresh};
        REQUIRE(pub.set_tunnel_adjacency(id_of[s], spec) == dp::publish_status::ok);
        if (crypto::sa* old = live[s]) {
            sa_record* r = &records[old->spi()];
            pub.retire([old, r] {
                r->final_seq = old->last_seq();
                r->freed = true;
                delete old;
            });
        }
        live[s] = fresh;
    };
    for (uint32_t s = 0; s < seq_spokes; ++s) {
        auto id = pub.alloc_adjacency_id();
        REQUIRE(id.has_value());
        id_of[s] = *id;
        rekey(s);
        REQUIRE(pub.add_route(overlay1_of(s), 32, {dp::route_kind::adjacency, *id}) ==
                dp::publish_status::ok);
    }

    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (uint16_t w = 0; w < workers; ++w) {
        threads.emplace_back([&e, &stop, w] { e.worker(w).run(stop); });
    }

    std::mt19937_64 rng(20261206);
    uint64_t injected = 0, from_control = 0, opened = 0, bad = 0, repeats = 0;
    std::vector<uint8_t> buf(4096);
    auto drain = [&]() {
        void* objs[64];
        for (uint16_t q = 0; q <= workers; ++q) {
            unsigned n;
            while ((n = rte_ring_dequeue_burst(e.underlay().tx[q], objs, 64, nullptr)) != 0) {
                for (unsigned i = 0; i < n; ++i) {
                    auto* m = static_cast<rte_mbuf*>(objs[i]);
                    const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
                    const uint32_t len = rte_pktmbuf_data_len(m);
                    auto it = records.end();
                    if (len > 14 + 20 + 8 && len - 14 <= buf.size() - 512 && f[14 + 9] == 50) {
                        it = records.find(wire::load_be32(f + 14 + 20));
                    }
                    crypto::esp_status st = crypto::esp_status::engine_error;
                    uint32_t seq = 0;
                    if (it != records.end()) {
                        // The number in the header is the one the ICV covers: open it.
                        seq = wire::load_be32(f + 14 + 24);
                        std::copy(f + 14, f + len, buf.begin() + 256);
                        crypto::esp_packet p{buf.data() + 256, len - 14, 256, 256};
                        (void)crypto::decrypt_burst(stress_engine(), *it->second.check,
                                                    std::span(&p, 1), std::span(&st, 1));
                    }
                    if (st == crypto::esp_status::ok) {
                        ++opened;
                        std::vector<uint8_t>& seen = it->second.seen;
                        if (seen.size() <= seq) {
                            seen.resize(std::max<size_t>(seq + 1, 2 * seen.size()), 0);
                        }
                        if (seen[seq]++ != 0) {
                            ++repeats;
                        }
                    } else {
                        ++bad;
                    }
                    rte_pktmbuf_free(m);
                }
            }
        }
        rte_mbuf* p[64];
        unsigned n;
        while ((n = dp::dequeue_punts(e.punt_ring(), p, 64)) != 0) {
            rte_pktmbuf_free_bulk(p, n);
        }
    };
    auto to_random_spoke = [&] { return overlay1_of(static_cast<uint32_t>(rng() % seq_spokes)); };
    // What the control lcore originates (hub::forward): a packet past the FIB, through its own
    // forwarder on this thread, encrypted with the same SAs at the same time as the workers.
    auto control_send = [&](uint32_t s) {
        bytes pkt = ipv4(net::lan_host, overlay1_of(s), 17, udp(1, 2, 8));
        rte_mbuf* m = rte_pktmbuf_alloc(e.pool());
        if (m == nullptr) {
            return;
        }
        std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(pkt.size())), pkt.data(),
                    pkt.size());
        dp::packet_meta& pm = dp::meta(m);
        pm = dp::packet_meta{};
        pm.tunnel = dp::no_tunnel;
        pm.nexthop = id_of[s];
        pm.flags = static_cast<uint8_t>(dp::packet_class::routed);
        e.forwarder().inject(&m, 1);
        ++from_control;
    };

    for (uint32_t k = 1; k <= rekeys; ++k) {
        for (int round = 0; round < 8; ++round) {
            for (uint16_t w = 0; w < workers; ++w) {
                for (int b = 0; b < 4; ++b) {  // 128 a worker: long runs on both cores at once
                    injected += inject_tagged(e, e.lan().rx[w], 32, k, to_random_spoke);
                }
            }
            for (uint32_t s = 0; s < seq_spokes; ++s) {
                control_send(s);
            }
            // Until the workers took this round's packets (the pool holds 4095 mbufs).
            for (int wait = 0; wait < 20000; ++wait) {
                drain();
                unsigned queued = 0;
                for (uint16_t w = 0; w < workers; ++w) {
                    queued += rte_ring_count(e.lan().rx[w]);
                }
                if (queued == 0) {
                    break;
                }
                std::this_thread::sleep_for(std::chrono::microseconds(100));
            }
        }
        rekey(k % seq_spokes);
        pub.reclaim();
    }
    for (int i = 0; i < 100; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        drain();
    }
    stop.store(true);
    for (auto& t : threads) {
        t.join();
    }
    drain();
    // Retire the SAs still published, then let every SA be freed (recording its last number).
    for (uint32_t s = 0; s < seq_spokes; ++s) {
        REQUIRE(pub.del_route(overlay1_of(s), 32) == dp::publish_status::ok);
        REQUIRE(pub.remove_adjacency(id_of[s]) == dp::publish_status::ok);
        crypto::sa* old = live[s];
        sa_record* r = &records[old->spi()];
        pub.retire([old, r] {
            r->final_seq = old->last_seq();
            r->freed = true;
            delete old;
        });
    }
    pub.synchronize();

    // Every number an SA handed out was seen once, or its packet was dropped after encryption
    // (counted: tx_full on a full TX ring); none seen twice.
    uint64_t gaps = 0, numbered = 0, sas_used = 0;
    for (auto& [spi, r] : records) {
        REQUIRE(r.freed);
        numbered += r.final_seq;
        sas_used += r.final_seq != 0 ? 1 : 0;
        for (uint64_t n = 1; n <= r.final_seq; ++n) {
            gaps += n < r.seen.size() && r.seen[n] != 0 ? 0 : 1;
        }
        // Nothing beyond the last number handed out, and 0 never.
        for (size_t n = 0; n < r.seen.size(); ++n) {
            if (r.seen[n] != 0 && (n == 0 || n > r.final_seq)) {
                ++bad;
            }
        }
    }
    auto c = e.stats().total();
    c += e.forwarder().counters();
    const uint64_t dropped_after_esp = c.drop(dp::drop_reason::tx_full);
    INFO("injected " << injected << " + " << from_control << " from the control lcore, opened "
                     << opened << ", numbers handed out " << numbered << " over " << sas_used
                     << " SAs, gaps " << gaps << ", dropped after ESP " << dropped_after_esp
                     << ", repeats " << repeats << ", bad " << bad << ", drops "
                     << c.total_drops());
    CHECK(repeats == 0);
    CHECK(bad == 0);
    CHECK(gaps == dropped_after_esp);
    CHECK(opened + dropped_after_esp == numbered);
    CHECK(c.drop(dp::drop_reason::esp_encrypt_error) == 0);
    CHECK(sas_used >= rekeys / 2);  // rekeys happened under traffic
    CHECK(opened > 10000);
    // Every worker took part (the LAN queue of each was fed).
    for (uint16_t w = 0; w < workers; ++w) {
        CHECK(e.stats().read(w).tx_packets > 0);
    }
    CHECK(e.forwarder().counters().tx_packets > 0);
    void* m = nullptr;
    for (uint16_t w = 0; w < workers; ++w) {
        while (rte_ring_dequeue(e.lan().rx[w], &m) == 0) {
            rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
        }
    }
    CHECK(e.pool_in_use() == 0);
    WARN("sequence numbers: " << workers << " workers + control, " << records.size() << " SAs ("
                              << rekeys << " rekeys), " << opened << " packets opened, "
                              << dropped_after_esp << " dropped after ESP, " << repeats
                              << " repeats");
}
