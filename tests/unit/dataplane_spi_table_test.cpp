// dp::spi_table updated in place: random inserts and removals against a reference map, slots
// of removed SAs reused only after the readers' RCU grace period (dp::publisher), growth, and
// a reader thread looking SAs up while the control side adds and removes them.
#include <rte_rcu_qsbr.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "dataplane/publisher.hpp"
#include "dataplane/spi_table.hpp"
#include "tests/unit/dataplane_support.hpp"

namespace dp = dmvpn::dp;
namespace crypto = dmvpn::crypto;

namespace {

// Stand-ins for SA objects: the table only stores and returns the pointer.
crypto::sa* fake_sa(uintptr_t n) { return reinterpret_cast<crypto::sa*>(n * 64); }

void check_same(const dp::spi_table& t, const std::map<uint32_t, dp::inbound_sa>& ref,
                std::mt19937& rng) {
    REQUIRE(t.size() == ref.size());
    for (const auto& [spi, e] : ref) {
        dp::inbound_sa got = t.find(spi);
        INFO("spi " << std::hex << spi);
        REQUIRE(got.sa == e.sa);
        REQUIRE(got.tunnel == e.tunnel);
        REQUIRE(got.spi == spi);
    }
    std::uniform_int_distribution<uint32_t> any;
    for (int i = 0; i < 200; ++i) {
        uint32_t spi = any(rng);
        INFO("spi " << std::hex << spi);
        REQUIRE((t.find(spi).sa != nullptr) == ref.contains(spi));
    }
    size_t seen = 0;
    t.for_each([&](const dp::inbound_sa& e) {
        REQUIRE(ref.contains(e.spi));
        REQUIRE(ref.at(e.spi).sa == e.sa);
        ++seen;
    });
    REQUIRE(seen == ref.size());
}

// A publisher for one worker (the test's thread, registered by the test), tiny FIB.
std::unique_ptr<dp::publisher> small_publisher(const char* name) {
    dptest::ensure_eal();
    dp::publisher_config cfg;
    cfg.name = name;
    cfg.adjacencies = 64;
    cfg.max_routes = 64;
    cfg.tbl8s = 4;
    auto p = dp::publisher::create(cfg);
    REQUIRE(p.has_value());
    return std::move(p.value());
}

}  // namespace

TEST_CASE("spi_table: in-place inserts and removals match a reference") {
    std::mt19937 rng(42);
    std::uniform_int_distribution<uint32_t> small(1, 3000);  // collisions and re-adds
    dp::spi_table t(1024);
    std::map<uint32_t, dp::inbound_sa> ref;
    std::vector<uint32_t> waiting;  // removed slots, released a few steps later
    uintptr_t next = 1;
    size_t max_used = 0;  // entries and tombstones at once
    size_t max_tombs = 0;
    for (int step = 0; step < 20000; ++step) {
        uint32_t spi = small(rng);
        if (rng() % 2 == 0) {
            dp::inbound_sa e{spi, static_cast<uint16_t>(spi % 7), fake_sa(next++)};
            auto r = t.insert(e);
            if (ref.contains(spi)) {
                REQUIRE(r == dp::spi_table::insert_result::duplicate);
            } else if (r == dp::spi_table::insert_result::ok) {
                ref[spi] = e;
            } else {
                // Full only when the load bound (half the slots) would be passed.
                REQUIRE(r == dp::spi_table::insert_result::full);
                REQUIRE(2 * (t.size() + t.tombstones() + 1) > t.capacity());
            }
        } else {
            auto slot = t.erase(spi);
            REQUIRE(slot.has_value() == ref.contains(spi));
            if (slot) {
                ref.erase(spi);
                waiting.push_back(*slot);
            }
        }
        // A grace period passes for the oldest removals now and then.
        if (step % 8 == 0) {
            for (uint32_t s : waiting) {
                t.release(s);
            }
            waiting.clear();
        }
        max_used = std::max(max_used, t.size() + t.tombstones());
        max_tombs = std::max(max_tombs, t.tombstones());
        if (step % 1000 == 0) {
            check_same(t, ref, rng);
        }
    }
    check_same(t, ref, rng);
    // Within the load bound all along; released tombstones were reused or emptied.
    CHECK(2 * max_used <= t.capacity());
    CHECK(max_tombs > 0);
    CHECK(t.tombstones() <= max_tombs);
    CHECK(t.insert({0, 0, fake_sa(1)}) == dp::spi_table::insert_result::bad_spi);
    CHECK(t.find(0).sa == nullptr);
    CHECK(!t.erase(0));
}

TEST_CASE("spi_table: build keeps the last of a repeated SPI and leaves room") {
    std::vector<dp::inbound_sa> sas = {{0x100, 1, fake_sa(1)},
                                       {0, 1, fake_sa(2)},  // skipped
                                       {0x200, 2, fake_sa(3)},
                                       {0x100, 3, fake_sa(4)}};
    auto t = dp::spi_table::build(sas);
    CHECK(t->size() == 2);
    CHECK(t->find(0x100).sa == fake_sa(4));
    CHECK(t->find(0x100).tunnel == 3);
    CHECK(t->find(0x200).sa == fake_sa(3));
    CHECK(t->capacity() >= 4 * 2);
    CHECK(t->tombstones() == 0);
}

TEST_CASE("spi_table: erase with an expected SA removes only that SA") {
    dp::spi_table t(16);
    REQUIRE(t.insert({0x1234, 1, fake_sa(1)}) == dp::spi_table::insert_result::ok);
    CHECK(!t.erase(0x1234, fake_sa(2)));
    CHECK(t.find(0x1234).sa == fake_sa(1));
    CHECK(t.erase(0x1234, fake_sa(1)));
    CHECK(t.find(0x1234).sa == nullptr);
}

TEST_CASE("publisher: a removed SA's slot is reused only after the grace period") {
    std::unique_ptr<dp::publisher> owner = small_publisher("spit_grace");
    dp::publisher& pub = *owner;
    rte_rcu_qsbr* v = pub.rcu();
    REQUIRE(rte_rcu_qsbr_thread_register(v, 0) == 0);
    rte_rcu_qsbr_thread_online(v, 0);  // a worker, not quiescent until told
    {
        // Enough SAs that the table does not grow below (growth is a fresh table).
        std::vector<dp::inbound_sa> base;
        for (uint32_t i = 1; i <= 8; ++i) {
            base.push_back({0x1000 + i, 1, fake_sa(i)});
        }
        pub.set_inbound_sas(base);
        const dp::spi_table* t = &pub.inbound_table();
        REQUIRE(pub.tables().spis.load() == t);
        // Two more SPIs that start their probe at the same slot as a victim's.
        const uint32_t victim = 0x5000;
        std::vector<uint32_t> same_home;
        for (uint32_t s = 0x6000; same_home.size() < 2; ++s) {
            if (t->home(s) == t->home(victim)) {
                same_home.push_back(s);
            }
        }
        REQUIRE(pub.add_inbound_sa({victim, 2, fake_sa(100)}) == dp::publish_status::ok);
        REQUIRE(pub.add_inbound_sa({victim, 2, fake_sa(101)}) == dp::publish_status::bad_spec);
        REQUIRE(pub.add_inbound_sa({0, 2, fake_sa(101)}) == dp::publish_status::bad_spec);
        std::optional<uint32_t> victim_slot = t->slot_of(victim);
        REQUIRE(victim_slot);
        CHECK(t->find(victim).sa == fake_sa(100));
        CHECK(t->find(victim).tunnel == 2);

        CHECK(!pub.remove_inbound_sa(victim, fake_sa(7)));  // another SA: kept
        REQUIRE(pub.remove_inbound_sa(victim, fake_sa(100)));
        CHECK(t->find(victim).sa == nullptr);
        CHECK(pub.spi_slots_pending() == 1);
        // The worker has not passed a quiescent point: the slot is not reused.
        pub.reclaim();
        CHECK(pub.spi_slots_pending() == 1);
        REQUIRE(pub.add_inbound_sa({same_home[0], 3, fake_sa(200)}) == dp::publish_status::ok);
        CHECK(t->slot_of(same_home[0]) != victim_slot);
        CHECK(t->find(same_home[0]).sa == fake_sa(200));
        // Now it has: the next SPI starting there takes the slot.
        rte_rcu_qsbr_quiescent(v, 0);
        REQUIRE(pub.add_inbound_sa({same_home[1], 3, fake_sa(201)}) == dp::publish_status::ok);
        CHECK(pub.spi_slots_pending() == 0);
        CHECK(t->slot_of(same_home[1]) == victim_slot);
        CHECK(t->find(same_home[1]).sa == fake_sa(201));
        CHECK(t->find(same_home[0]).sa == fake_sa(200));
        CHECK(pub.tables().spis.load() == t);  // all in place: no new table

        // Growth: a fresh, bigger table with every entry; the old one retired.
        uint32_t cap = t->capacity();
        for (uint32_t i = 0; pub.inbound_table().capacity() == cap; ++i) {
            REQUIRE(i < cap);
            REQUIRE(pub.add_inbound_sa({0x9000 + i, 4, fake_sa(300 + i)}) ==
                    dp::publish_status::ok);
        }
        const dp::spi_table& grown = pub.inbound_table();
        CHECK(pub.tables().spis.load() == &grown);
        CHECK(grown.tombstones() == 0);
        CHECK(grown.find(0x1001).sa == fake_sa(1));
        CHECK(grown.find(same_home[1]).sa == fake_sa(201));
        CHECK(grown.find(0x9000).sa == fake_sa(300));
        CHECK(pub.pending() >= 1);  // the old table waits for the worker
        rte_rcu_qsbr_quiescent(v, 0);
        CHECK(pub.reclaim() >= 1);
    }
    rte_rcu_qsbr_thread_offline(v, 0);
    rte_rcu_qsbr_thread_unregister(v, 0);
}

TEST_CASE("publisher: a reader thread never sees a freed or foreign SA while SAs churn") {
    std::unique_ptr<dp::publisher> owner = small_publisher("spit_churn");
    dp::publisher& pub = *owner;
    rte_rcu_qsbr* v = pub.rcu();

    // SA objects: each knows its SPI; freed ones are marked (and never really freed here, so
    // the reader's check itself reads valid memory).
    struct fake {
        std::atomic<uint32_t> spi{0};
        std::atomic<bool> freed{false};
    };
    constexpr uint32_t stable = 64;  // never removed: must always be found
    constexpr uint32_t churn = 2000;
    std::vector<fake> objs(stable + 20000);
    auto sa_of = [&](size_t i) { return reinterpret_cast<crypto::sa*>(&objs[i]); };

    std::vector<dp::inbound_sa> base;
    for (uint32_t i = 0; i < stable; ++i) {
        objs[i].spi = 0x10000 + i;
        base.push_back({0x10000 + i, 1, sa_of(i)});
    }
    pub.set_inbound_sas(base);

    std::atomic<bool> stop{false};
    std::atomic<uint64_t> lookups{0};
    std::atomic<uint64_t> errors{0};
    std::thread reader([&] {
        if (rte_rcu_qsbr_thread_register(v, 0) != 0) {  // no Catch2 assertions off its thread
            ++errors;
            return;
        }
        rte_rcu_qsbr_thread_online(v, 0);
        std::mt19937 rng(7);
        uint64_t n = 0;
        while (!stop.load(std::memory_order_relaxed)) {
            const dp::spi_table* t = pub.tables().spis.load(std::memory_order_acquire);
            for (int i = 0; i < 64; ++i) {
                uint32_t spi = i % 2 == 0 ? 0x10000 + rng() % stable : 0x20000 + rng() % churn;
                dp::inbound_sa e = t->find(spi);
                ++n;
                if (spi < 0x20000 && e.sa == nullptr) {
                    ++errors;  // a stable SA missed
                }
                if (e.sa != nullptr) {
                    auto* f = reinterpret_cast<fake*>(e.sa);
                    if (f->freed.load(std::memory_order_acquire) ||
                        f->spi.load(std::memory_order_relaxed) != spi) {
                        ++errors;  // freed before the grace period, or another SPI's SA
                    }
                }
            }
            rte_rcu_qsbr_quiescent(v, 0);
            lookups.store(n, std::memory_order_release);
        }
        rte_rcu_qsbr_thread_offline(v, 0);
        rte_rcu_qsbr_thread_unregister(v, 0);
    });
    // The churn runs only while the reader reads: wait for its first lookups (or its failure),
    // and after the churn for more of them, so a slow thread start cannot leave it idle.
    auto reader_passes = [&](uint64_t beyond) {
        while (lookups.load(std::memory_order_acquire) <= beyond && errors.load() == 0) {
            std::this_thread::yield();
        }
    };
    reader_passes(0);

    std::mt19937 rng(9);
    std::map<uint32_t, size_t> live;  // churned SPI -> object
    size_t next = stable;
    for (int step = 0; step < 20000 - static_cast<int>(stable) - 1; ++step) {
        uint32_t spi = 0x20000 + rng() % churn;
        if (auto it = live.find(spi); it != live.end()) {
            REQUIRE(pub.remove_inbound_sa(spi, sa_of(it->second)));
            fake* f = &objs[it->second];
            pub.retire([f] { f->freed.store(true, std::memory_order_release); });
            live.erase(it);
        } else {
            objs[next].spi = spi;
            REQUIRE(pub.add_inbound_sa({spi, 2, sa_of(next)}) == dp::publish_status::ok);
            live[spi] = next++;
        }
        pub.reclaim();
    }
    reader_passes(lookups.load());
    stop = true;
    reader.join();
    pub.synchronize();
    CHECK(errors.load() == 0);
    CHECK(lookups.load() > 0);
    for (const auto& [spi, i] : live) {
        CHECK(pub.inbound_table().find(spi).sa == sa_of(i));
    }
    CHECK(pub.inbound_table().size() == stable + live.size());
}
