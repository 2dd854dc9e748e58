// dp::fib (DIR-24-8 with hashed rules) against a reference longest-prefix match: random mixed-
// length adds, replacements and deletes; tbl8 groups allocated, folded back, and reused only after
// the readers' RCU grace period.
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <map>
#include <random>
#include <vector>

#include "dataplane/fib.hpp"
#include "tests/unit/dataplane_support.hpp"

namespace dp = dmvpn::dp;

namespace {

uint32_t mask_of(int len) { return len == 0 ? 0 : ~uint32_t{0} << (32 - len); }

// The reference: every rule in an ordered map, the longest match by probing lengths 32..0.
struct reference {
    std::map<std::pair<uint32_t, int>, uint32_t> rules;  // (network, length) -> index
    std::optional<uint32_t> lookup(uint32_t ip) const {
        for (int l = 32; l >= 0; --l) {
            auto it = rules.find({ip & mask_of(l), l});
            if (it != rules.end()) {
                return it->second;
            }
        }
        return std::nullopt;
    }
};

dp::route_target target(uint32_t index) { return {dp::route_kind::adjacency, index}; }

void check_same(const dp::fib& f, const reference& ref, std::mt19937& rng,
                const std::vector<uint32_t>& probes) {
    std::vector<uint32_t> ips = probes;
    std::uniform_int_distribution<uint32_t> any;
    for (int i = 0; i < 256; ++i) {
        // Near the rules (10.0.0.0/12) and anywhere.
        ips.push_back(0x0a000000u | (any(rng) & 0x000fffffu));
        ips.push_back(any(rng));
    }
    std::vector<uint32_t> nhs(ips.size());
    f.lookup_bulk(ips.data(), nhs.data(), static_cast<unsigned>(ips.size()));
    for (size_t i = 0; i < ips.size(); ++i) {
        std::optional<uint32_t> want = ref.lookup(ips[i]);
        std::optional<dp::route_target> got = f.lookup(ips[i]);
        INFO("address " << std::hex << ips[i]);
        REQUIRE(got.has_value() == want.has_value());
        REQUIRE(((nhs[i] & dp::fib_hit) != 0) == want.has_value());
        if (want) {
            REQUIRE(got->index == *want);
            REQUIRE(dp::decode(nhs[i]).index == *want);
        }
    }
}

// Random rules inside 10.0.0.0/12 so that they overlap: lengths 8 to 32, most of them 20-32.
std::pair<uint32_t, int> random_prefix(std::mt19937& rng) {
    static const int lens[] = {8,  12, 16, 18, 20, 21, 22, 23, 24, 24, 24,
                               25, 26, 27, 28, 29, 30, 31, 32, 32, 0};
    std::uniform_int_distribution<size_t> pick(0, std::size(lens) - 1);
    int len = lens[pick(rng)];
    if (len == 0 && rng() % 8 != 0) {
        len = 24;  // the default route now and then
    }
    uint32_t ip = 0x0a000000u | (rng() & 0x000fffffu);
    return {ip & mask_of(len), len};
}

}  // namespace

TEST_CASE("fib matches a reference longest-prefix match through random adds and deletes") {
    dptest::ensure_eal();
    auto f = dp::fib::create("fibt_rand", 100000, 4096, SOCKET_ID_ANY);
    REQUIRE(f);
    reference ref;
    std::mt19937 rng(12345);
    std::vector<uint32_t> probes;
    for (int step = 0; step < 20000; ++step) {
        auto [net, len] = random_prefix(rng);
        bool remove = !ref.rules.empty() && rng() % 5 < 2;
        if (remove) {
            // An existing rule, found near a random point of the map.
            auto it = ref.rules.lower_bound({net, 0});
            if (it == ref.rules.end()) {
                it = ref.rules.begin();
            }
            REQUIRE(f->del(it->first.first, static_cast<uint8_t>(it->first.second)) == 0);
            probes.push_back(it->first.first);
            probes.push_back(it->first.first | ~mask_of(it->first.second));
            ref.rules.erase(it);
        } else {
            uint32_t index = rng() % 100000;
            REQUIRE(f->add(net, static_cast<uint8_t>(len), target(index)) == 0);
            ref.rules[{net, len}] = index;  // a replacement when it was there
            probes.push_back(net);
        }
        REQUIRE(f->rules() == ref.rules.size());
        if (step % 200 == 0) {
            check_same(*f, ref, rng, probes);
            probes.clear();
        }
    }
    check_same(*f, ref, rng, probes);
    REQUIRE(f->tbl8s_used() > 0);
    // Every rule out: every group folded back, nothing left to find.
    while (!ref.rules.empty()) {
        auto it = ref.rules.begin();
        REQUIRE(f->del(it->first.first, static_cast<uint8_t>(it->first.second)) == 0);
        ref.rules.erase(it);
    }
    CHECK(f->tbl8s_used() == 0);
    CHECK(f->tbl8s_free() == 4096);
    CHECK(f->tbl8s_free() + f->tbl8s_pending() == f->tbl8s_total());  // nothing leaked
    check_same(*f, ref, rng, {});
    CHECK(f->del(0x0a000000u, 8) == -ENOENT);
}

TEST_CASE("fib refuses bad input and a full rule store") {
    dptest::ensure_eal();
    auto f = dp::fib::create("fibt_lim", 2, 1, SOCKET_ID_ANY);
    REQUIRE(f);
    CHECK(f->add(0x0a000000u, 33, target(1)) == -EINVAL);
    CHECK(f->add(0x0a000000u, 8, target(dp::route_index_max + 1)) == -EINVAL);
    CHECK(f->add(0x0a010100u, 25, target(1)) == 0);
    CHECK(f->add(0x0a020200u, 25, target(2)) == -ENOSPC);  // the one group is in use
    CHECK(f->add(0x0a000000u, 8, target(3)) == 0);
    CHECK(f->add(0x0b000000u, 8, target(4)) == -ENOSPC);  // two rules held
    CHECK(f->add(0x0a000000u, 8, target(5)) == 0);        // a replacement is not a new rule
    CHECK(f->lookup(0x0a010101u)->index == 1);
    CHECK(f->lookup(0x0a010181u)->index == 5);
    CHECK(f->lookup(0x0a7f0000u)->index == 5);
    CHECK(!f->lookup(0x0b000001u));
}

TEST_CASE("fib reuses a tbl8 group only after the readers' grace period") {
    dptest::ensure_eal();
    size_t sz = rte_rcu_qsbr_get_memsize(1);
    auto* v = static_cast<rte_rcu_qsbr*>(rte_zmalloc("fibt_rcu", sz, RTE_CACHE_LINE_SIZE));
    REQUIRE(v != nullptr);
    REQUIRE(rte_rcu_qsbr_init(v, 1) == 0);
    REQUIRE(rte_rcu_qsbr_thread_register(v, 0) == 0);
    rte_rcu_qsbr_thread_online(v, 0);
    {
        auto f = dp::fib::create("fibt_rcu", 1000, 1, SOCKET_ID_ANY);
        REQUIRE(f);
        REQUIRE(f->attach_rcu(v) == 0);
        REQUIRE(f->add(0x0a000000u, 12, target(7)) == 0);
        REQUIRE(f->add(0x0a010180u, 25, target(8)) == 0);
        CHECK(f->tbl8s_used() == 1);
        CHECK(f->lookup(0x0a010181u)->index == 8);
        CHECK(f->lookup(0x0a010101u)->index == 7);
        // The /25 goes: its /24 folds back into tbl24 at once, the group waits for the reader.
        REQUIRE(f->del(0x0a010180u, 25) == 0);
        CHECK(f->lookup(0x0a010181u)->index == 7);
        CHECK(f->tbl8s_used() == 0);
        CHECK(f->tbl8s_pending() == 1);
        CHECK(f->add(0x0a020280u, 26, target(9)) == -ENOSPC);
        CHECK(f->lookup(0x0a020281u)->index == 7);  // the refused add left nothing behind
        CHECK(f->rules() == 1);
        // The reader passes a quiescent point: the group is reusable.
        rte_rcu_qsbr_quiescent(v, 0);
        REQUIRE(f->add(0x0a020280u, 26, target(9)) == 0);
        CHECK(f->tbl8s_pending() == 0);
        CHECK(f->tbl8s_used() == 1);
        CHECK(f->lookup(0x0a020281u)->index == 9);
        CHECK(f->lookup(0x0a0202c1u)->index == 7);
        // Deleting the covering /12 leaves the /26 and nothing around it.
        REQUIRE(f->del(0x0a000000u, 12) == 0);
        CHECK(f->lookup(0x0a020281u)->index == 9);
        CHECK(!f->lookup(0x0a0202c1u));
        CHECK(!f->lookup(0x0a010181u));
    }
    rte_rcu_qsbr_thread_offline(v, 0);
    rte_free(v);
}
