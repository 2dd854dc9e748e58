// The RIB (control/rib): candidates per source, best by administrative distance, staged commits
// written to a recording FIB, FPM-style resync, next hops resolved through NHRP bindings, and
// the route limit.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "control/rib/rib.hpp"
#include "tests/unit/rib_recording_fib.hpp"
#include "dataplane/worker_ctx.hpp"

using namespace dmvpn;
using namespace dmvpn::rib;
using table = dmvpn::rib::rib;
using dmvpn::rib::test::recording_fib;

namespace {

constexpr uint32_t ip(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
    return a << 24 | b << 16 | c << 8 | d;
}

constexpr origin connected{source::connected};
constexpr origin static_{source::static_route};
constexpr origin nhrp{source::nhrp};
constexpr origin ospf{source::fpm, protocol::ospf};
constexpr origin ibgp{source::fpm, protocol::ibgp};
constexpr origin ebgp{source::fpm, protocol::ebgp};

constexpr uint16_t tun = 1;
const nh_key spoke2{tun, ip(10, 0, 0, 2)};
const nh_key spoke3{tun, ip(10, 0, 0, 3)};
const nh_key lan_router{static_cast<uint16_t>(dp::glean_lan_port_bit | 0), ip(192, 168, 1, 254)};

route via(const nh_key& k, uint8_t d, uint32_t metric = 0) {
    return route{dp::route_kind::adjacency, 0, k, d, metric};
}

const prefix_key net{ip(172, 16, 0, 0), 16};

}  // namespace

TEST_CASE("rib: the lowest distance wins, IOS's defaults", "[rib]") {
    CHECK(default_distance(source::connected) == 0);
    CHECK(default_distance(source::static_route) == 1);
    CHECK(default_distance(source::fpm, protocol::ebgp) == 20);
    CHECK(default_distance(source::fpm, protocol::ospf) == 110);
    CHECK(default_distance(source::fpm, protocol::ibgp) == 200);
    CHECK(default_distance(source::nhrp) == 250);

    recording_fib f;
    table r(f, limits{});
    REQUIRE(r.set(nhrp, net, via(spoke2, 250, 1)));
    REQUIRE(r.set(ibgp, net, via(spoke3, 200)));
    REQUIRE(r.set(ospf, net, via(spoke2, 110)));
    r.commit();
    REQUIRE(f.fib.size() == 1);
    uint32_t a = f.adj_of(net);
    REQUIRE(a != 0);
    CHECK(f.adjs.at(a).k == spoke2);
    CHECK(r.best_origin(net) == ospf);
    CHECK(r.installed_count() == 1);
    CHECK(r.candidate_count() == 3);
}

TEST_CASE("rib: equal distances go to the earlier source", "[rib]") {
    recording_fib f;
    table r(f, limits{});
    // An NHRP route and a static one given the same distance: the static one is installed.
    REQUIRE(r.set(nhrp, net, via(spoke2, 20)));
    REQUIRE(r.set(ebgp, net, via(spoke3, 20)));
    REQUIRE(r.set(static_, net, route{dp::route_kind::blackhole, 0, {}, 20}));
    r.commit();
    CHECK(f.fib.at(net).kind == dp::route_kind::blackhole);
    r.withdraw(static_, net);
    r.commit();
    CHECK(f.adjs.at(f.adj_of(net)).k == spoke3);  // FPM before NHRP
}

TEST_CASE("rib: a gleaned LAN host keeps its /32 against a static route and a registration",
          "[rib]") {
    recording_fib f;
    table r(f, limits{});
    const prefix_key host{lan_router.addr, 32};
    REQUIRE(r.set(nhrp, host, via(spoke2, distance::nhrp, nhrp_metric)));
    REQUIRE(r.set(static_, host, via(spoke3, distance::static_route)));
    REQUIRE(r.set({source::glean}, host, via(lan_router, distance::connected)));
    r.commit();
    CHECK(f.adjs.at(f.adj_of(host)).k == lan_router);
    r.withdraw({source::glean}, host);
    r.commit();
    CHECK(f.adjs.at(f.adj_of(host)).k == spoke3);
    r.withdraw(static_, host);
    r.commit();
    CHECK(f.adjs.at(f.adj_of(host)).k == spoke2);
}

TEST_CASE("rib: a withdrawal falls back to the next best, and the last one empties the FIB",
          "[rib]") {
    recording_fib f;
    table r(f, limits{});
    r.bind(tun, spoke2.addr, ip(198, 51, 100, 2));
    r.bind(tun, spoke3.addr, ip(198, 51, 100, 3));
    REQUIRE(r.set(ospf, net, via(spoke2, 110)));
    REQUIRE(r.set(ibgp, net, via(spoke3, 200)));
    r.commit();
    uint32_t first = f.adj_of(net);
    CHECK(f.adjs.at(first).k == spoke2);
    CHECK(f.adjs.at(first).complete);

    r.withdraw(ospf, net);
    r.commit();
    uint32_t second = f.adj_of(net);
    REQUIRE(second != 0);
    CHECK(second != first);
    CHECK(f.adjs.at(second).k == spoke3);
    CHECK(f.adjs.at(second).nbma == ip(198, 51, 100, 3));
    CHECK(f.freed.contains(first));  // spoke2's next hop is no longer used
    CHECK(r.find_nexthop(spoke2) == nullptr);

    r.withdraw(ibgp, net);
    r.commit();
    CHECK(f.fib.empty());
    CHECK(f.freed.contains(second));
    CHECK(r.installed_count() == 0);
    CHECK(r.nexthop_count() == 0);
    CHECK(r.candidate_count() == 0);
}

TEST_CASE("rib: a burst of changes is written once at commit", "[rib]") {
    recording_fib f;
    table r(f, limits{});
    for (int i = 0; i < 50; ++i) {
        REQUIRE(r.set(ospf, net, via(spoke2, 110, static_cast<uint32_t>(i))));
        r.withdraw(ospf, net);
    }
    REQUIRE(r.set(ospf, net, via(spoke2, 110, 7)));
    CHECK(f.fib.empty());  // staged, nothing written yet
    CHECK(r.commit() == 1);
    CHECK(f.adds == 1);
    CHECK(f.dels == 0);
    // Setting what is installed again writes nothing.
    REQUIRE(r.set(ospf, net, via(spoke2, 110, 7)));
    CHECK(r.commit() == 0);
    CHECK(f.adds == 1);
}

TEST_CASE("rib: a resync removes stale routes and leaves nothing missing", "[rib]") {
    recording_fib f;
    table r(f, limits{});
    const prefix_key a{ip(10, 1, 0, 0), 16};
    const prefix_key b{ip(10, 2, 0, 0), 16};
    const prefix_key c{ip(10, 3, 0, 0), 16};
    const prefix_key d{ip(10, 4, 0, 0), 16};
    REQUIRE(r.set(ospf, a, via(spoke2, 110)));
    REQUIRE(r.set(ospf, b, via(spoke2, 110)));
    REQUIRE(r.set(ebgp, c, via(spoke3, 20)));
    REQUIRE(r.set(static_, c, via(spoke2, 1)));    // c: static wins over the FPM route
    REQUIRE(r.set(static_, b, via(spoke3, 150)));  // b: a floating static behind OSPF
    r.commit();
    size_t adds = f.adds;

    // FRR reconnects and sends a (OSPF, unchanged) and d (new); b and c are not resent.
    r.begin_resync(source::fpm);
    REQUIRE(r.set(ospf, a, via(spoke2, 110)));
    REQUIRE(r.set(ospf, d, via(spoke3, 110)));
    CHECK(r.end_resync(source::fpm) == 2);  // b's OSPF route and c's BGP route
    r.commit();
    CHECK(f.adds == adds + 2);  // d, and b falling back to the static route; a untouched
    REQUIRE(f.fib.size() == 4);
    CHECK(f.adjs.at(f.adj_of(a)).k == spoke2);
    CHECK(f.adjs.at(f.adj_of(b)).k == spoke3);  // the floating static route
    CHECK(r.best_origin(b) == static_);
    CHECK(f.adjs.at(f.adj_of(c)).k == spoke2);
    CHECK(f.adjs.at(f.adj_of(d)).k == spoke3);
    CHECK(r.routes_of(source::fpm).size() == 2);
    CHECK(r.stats().swept == 2);

    // An empty resync leaves only what other sources offer.
    r.begin_resync(source::fpm);
    CHECK(r.end_resync(source::fpm) == 2);
    r.commit();
    CHECK(f.fib.size() == 2);
    CHECK(f.fib.contains(b));
    CHECK(f.fib.contains(c));
    CHECK(r.routes_of(source::fpm).empty());
    CHECK(r.routes_of(source::static_route).size() == 2);

    // Two FPM protocols on one prefix: the prefix stays FPM's until neither is left.
    REQUIRE(r.set(ospf, a, via(spoke2, 110)));
    REQUIRE(r.set(ebgp, a, via(spoke3, 20)));
    r.withdraw(ospf, a);
    CHECK(r.routes_of(source::fpm).size() == 1);
    r.withdraw_source(source::fpm, a);
    CHECK(r.routes_of(source::fpm).empty());
    CHECK(r.candidate_count() == 2);
}

TEST_CASE("rib: a source's routes in slices, resumed where the last stopped", "[rib]") {
    recording_fib f;
    table r(f, limits{});
    constexpr origin glean{source::glean};
    for (uint32_t i = 0; i < 25; ++i) {
        nh_key host{lan_router.egress, ip(192, 168, 1, 10 + i)};
        REQUIRE(r.set(glean, prefix_key{host.addr, 32}, via(host, 0)));
    }
    REQUIRE(r.set(static_, net, via(spoke2, 1)));  // another source's: never in the slices
    r.commit();
    CHECK(r.prefix_count(source::glean) == 25);
    std::set<prefix_key> seen;
    std::optional<prefix_key> next;
    size_t slices = 0;
    do {
        auto [slice, after] = r.routes_of(source::glean, next, 10);
        CHECK(slice.size() <= 10);
        for (const auto& [k, w] : slice) {
            CHECK(seen.insert(k).second);  // each once
            CHECK(k.second == 32);
        }
        if (slices == 0) {
            // The prefix to resume at withdrawn meanwhile: the next slice starts after it.
            REQUIRE(after);
            r.withdraw(glean, *after);
        }
        next = after;
        ++slices;
    } while (next && slices < 10);
    CHECK(slices == 3);
    CHECK(seen.size() == 24);
    CHECK(r.routes_of(source::glean).size() == 24);
    auto [all, none] = r.routes_of(source::glean, std::nullopt, 100);
    CHECK(all.size() == 24);
    CHECK(!none);
}

TEST_CASE("rib: tunnel next hops resolve again when NHRP registers and unregisters", "[rib]") {
    recording_fib f;
    table r(f, limits{});
    // A static route through a spoke that has not registered: installed, its adjacency
    // incomplete (packets glean).
    REQUIRE(r.set(static_, net, via(spoke2, 1)));
    r.commit();
    uint32_t a = f.adj_of(net);
    REQUIRE(a != 0);
    CHECK_FALSE(f.adjs.at(a).complete);
    CHECK_FALSE(f.adjs.at(a).nbma);
    CHECK_FALSE(r.find_nexthop(spoke2)->complete);

    // The spoke registers: its host route comes, and the static route's next hop (the same
    // adjacency) now leads to its NBMA address.
    r.bind(tun, spoke2.addr, ip(198, 51, 100, 2));
    REQUIRE(r.set(nhrp, {spoke2.addr, 32}, via(spoke2, 250, 1)));
    r.commit();
    CHECK(f.adj_of(net) == a);
    CHECK(f.adj_of({spoke2.addr, 32}) == a);
    CHECK(f.adjs.at(a).complete);
    CHECK(f.adjs.at(a).nbma == ip(198, 51, 100, 2));
    CHECK(r.find_nexthop(spoke2)->refs == 2);

    // It moves to another NBMA address.
    r.bind(tun, spoke2.addr, ip(203, 0, 113, 2));
    r.commit();
    CHECK(f.adjs.at(a).nbma == ip(203, 0, 113, 2));

    // It leaves: the host route goes, the static route stays with an incomplete next hop.
    r.unbind(tun, spoke2.addr);
    r.withdraw(nhrp, {spoke2.addr, 32});
    r.commit();
    CHECK_FALSE(f.fib.contains({spoke2.addr, 32}));
    CHECK(f.adj_of(net) == a);
    CHECK_FALSE(f.adjs.at(a).complete);
    CHECK_FALSE(f.adjs.at(a).nbma);
    CHECK(r.find_nexthop(spoke2)->refs == 1);
}

TEST_CASE("rib: LAN next hops resolve through ARP", "[rib]") {
    recording_fib f;
    table r(f, limits{});
    REQUIRE(r.set(static_, net, via(lan_router, 1)));
    r.commit();
    uint32_t a = f.adj_of(net);
    CHECK_FALSE(f.adjs.at(a).complete);
    f.arp.insert({0, lan_router.addr});
    // The hub re-resolves the next hops whose neighbour changed.
    r.resolve_where([](const nh_key& k, std::optional<uint32_t> nbma) {
        return on_lan(k) && !nbma && k.addr == ip(192, 168, 1, 254);
    });
    CHECK(f.adjs.at(a).complete);
    CHECK(r.find_nexthop(lan_router)->complete);
}

TEST_CASE("rib: routes past the limit are refused and counted", "[rib]") {
    recording_fib f;
    table r(f, limits{3});
    CHECK(r.set(ospf, {ip(10, 1, 0, 0), 16}, via(spoke2, 110)));
    CHECK(r.set(ospf, {ip(10, 2, 0, 0), 16}, via(spoke2, 110)));
    CHECK(r.set(ibgp, {ip(10, 2, 0, 0), 16}, via(spoke3, 200)));
    CHECK_FALSE(r.set(ospf, {ip(10, 3, 0, 0), 16}, via(spoke2, 110)));
    CHECK_FALSE(r.set(nhrp, {ip(10, 1, 0, 0), 16}, via(spoke2, 250)));
    CHECK(r.stats().refused == 2);
    CHECK(r.candidate_count() == 3);
    // Replacing a held candidate is no new one.
    CHECK(r.set(ospf, {ip(10, 1, 0, 0), 16}, via(spoke3, 110)));
    r.commit();
    CHECK(f.fib.size() == 2);
    CHECK_FALSE(f.fib.contains({ip(10, 3, 0, 0), 16}));
    // Room again after a withdrawal.
    r.withdraw(ibgp, {ip(10, 2, 0, 0), 16});
    CHECK(r.set(ospf, {ip(10, 3, 0, 0), 16}, via(spoke2, 110)));
    r.commit();
    CHECK(f.fib.size() == 3);
    CHECK(r.stats().refused == 2);
}

TEST_CASE("rib: a route the FIB refuses is not installed and keeps no next hop", "[rib]") {
    recording_fib f;
    f.fib_room = 1;
    table r(f, limits{});
    REQUIRE(r.set(ospf, {ip(10, 1, 0, 0), 16}, via(spoke2, 110)));
    REQUIRE(r.set(ospf, {ip(10, 2, 0, 0), 16}, via(spoke3, 110)));
    r.commit();
    CHECK(f.fib.size() == 1);
    CHECK(r.installed_count() == 1);
    CHECK(r.stats().fib_failed == 1);
    CHECK(r.nexthop_count() == 1);
    CHECK(r.find_nexthop(spoke3) == nullptr);
}

TEST_CASE("rib: longest match over the installed routes", "[rib]") {
    recording_fib f;
    table r(f, limits{});
    REQUIRE(r.set(connected, {ip(10, 0, 0, 0), 24}, route{dp::route_kind::glean_tunnel, tun, {}}));
    REQUIRE(r.set(nhrp, {ip(10, 0, 0, 2), 32}, via(spoke2, 250, 1)));
    REQUIRE(r.set(static_, {0, 0}, via(spoke3, 1)));
    r.commit();
    auto m = r.longest_match(ip(10, 0, 0, 2));
    REQUIRE(m);
    CHECK(m->first == prefix_key{ip(10, 0, 0, 2), 32});
    m = r.longest_match(ip(10, 0, 0, 7));
    REQUIRE(m);
    CHECK(m->first == prefix_key{ip(10, 0, 0, 0), 24});
    CHECK(m->second.kind == dp::route_kind::glean_tunnel);
    m = r.longest_match(ip(8, 8, 8, 8));
    REQUIRE(m);
    CHECK(m->first == prefix_key{0, 0});
}

TEST_CASE("rib: hashed tables, ordered answers: installed() by prefix, resolve_where by key",
          "[rib]") {
    // Writes in the order they come, to check resolve_where's.
    struct ordered_fib final : fib_port {
        std::vector<nh_key> writes;
        uint32_t next_id = 1;
        std::optional<uint32_t> alloc_adjacency() override { return next_id++; }
        void free_adjacency(uint32_t) override {}
        bool add_route(const prefix_key&, dp::route_target) override { return true; }
        bool del_route(const prefix_key&) override { return true; }
        bool write_nexthop(const nh_key& k, uint32_t, std::optional<uint32_t> nbma, bool) override {
            writes.push_back(k);
            return nbma.has_value();
        }
    };
    ordered_fib f;
    table r(f, limits{});
    // 2,000 spokes (two tunnels) and 50 LAN prefixes, offered in a scrambled order.
    constexpr uint32_t n = 2000;
    for (uint32_t i = 0; i < n; ++i) {
        uint32_t h = (i * 7919) % n;  // 7919 is prime to 2,000: each host once
        auto t = static_cast<uint16_t>(1 + h % 2);
        uint32_t overlay = ip(10, 0, 0, 0) + h + 1;
        r.bind(t, overlay, ip(100, 64, 0, 0) + h + 1);
        REQUIRE(r.set(nhrp, prefix_key{overlay, 32}, via(nh_key{t, overlay}, 250, 1)));
        if (h < 50) {
            REQUIRE(r.set(static_, prefix_key{ip(172, 16, static_cast<uint8_t>(49 - h), 0), 24},
                          route{dp::route_kind::blackhole, 0, {}, 1}));
        }
    }
    r.commit();
    std::vector<installed_view> v = r.installed();
    REQUIRE(v.size() == n + 50);
    CHECK(std::is_sorted(v.begin(), v.end(), [](const installed_view& a, const installed_view& b) {
        return a.prefix < b.prefix;
    }));
    CHECK(std::adjacent_find(v.begin(), v.end(), [](const auto& a, const auto& b) {
              return a.prefix == b.prefix;
          }) == v.end());
    CHECK(v.front().prefix == prefix_key{ip(10, 0, 0, 1), 32});
    CHECK(v.back().prefix == prefix_key{ip(172, 16, 49, 0), 24});
    REQUIRE(v.front().nbma);
    CHECK(*v.front().nbma == ip(100, 64, 0, 1));
    CHECK(r.nexthop_count() == n);
    CHECK(r.nbma_of(2, ip(10, 0, 0, 2)) == ip(100, 64, 0, 2));
    CHECK_FALSE(r.nbma_of(1, ip(10, 0, 0, 2)));
    auto m = r.longest_match(ip(10, 0, 3, 7));
    REQUIRE(m);
    CHECK(m->first == prefix_key{ip(10, 0, 3, 7), 32});
    f.writes.clear();
    r.resolve_where([](const nh_key&, std::optional<uint32_t>) { return true; });
    REQUIRE(f.writes.size() == n);
    CHECK(std::is_sorted(f.writes.begin(), f.writes.end()));
    CHECK(f.writes.front() == nh_key{1, ip(10, 0, 0, 1)});
    CHECK(f.writes.back() == nh_key{2, ip(10, 0, 7, 208)});  // host 2,000 on tunnel 2
}
