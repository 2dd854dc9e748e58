// zebra's routes into the RIB (control/rib/fpm_routes): protocols and their IOS distances,
// next hops on the hub's tunnels and LAN ports, withdrawals, a protocol replacing another,
// connected and unreachable routes, the RIB's limit, and a zebra restart's sweep.
#include <catch2/catch.hpp>

#include "control/fpm/codec.hpp"
#include "control/rib/fpm_routes.hpp"
#include "tests/unit/rib_recording_fib.hpp"

using namespace dmvpn;
using namespace dmvpn::rib;
using table = dmvpn::rib::rib;
using dmvpn::rib::test::recording_fib;

namespace {

constexpr uint32_t ip(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
    return a << 24 | b << 16 | c << 8 | d;
}

constexpr uint16_t tun = 3;
constexpr uint16_t lan_port = 1;

fpm_interfaces hub_interfaces() {
    fpm_interfaces ifs;
    ifs.tunnels.push_back({tun, ip(10, 0, 0, 0), 24});
    ifs.lans.push_back({lan_port, ip(192, 168, 1, 0), 24});
    return ifs;
}

fpm::route_update add(uint32_t prefix, uint8_t len, uint8_t proto, std::vector<uint32_t> gateways) {
    fpm::route_update u;
    u.prefix = prefix;
    u.len = len;
    u.protocol = proto;
    u.gateways = std::move(gateways);
    u.ifindexes.assign(u.gateways.size(), 5);
    return u;
}

fpm::route_update del(uint32_t prefix, uint8_t len, uint8_t proto) {
    fpm::route_update u;
    u.add = false;
    u.prefix = prefix;
    u.len = len;
    u.protocol = proto;
    return u;
}

const nh_key spoke{tun, ip(10, 0, 0, 2)};
const nh_key lan_router{static_cast<uint16_t>(dp::glean_lan_port_bit | lan_port),
                        ip(192, 168, 1, 254)};

}  // namespace

TEST_CASE("fpm routes: rtm_protocol to the RIB's protocols, connected routes left out",
          "[rib][fpm]") {
    CHECK(fpm_protocol(fpm::protocol::bgp) == protocol::ebgp);
    CHECK(fpm_protocol(fpm::protocol::ospf) == protocol::ospf);
    CHECK(fpm_protocol(fpm::protocol::zebra_static) == protocol::static_route);
    CHECK(fpm_protocol(fpm::protocol::isis) == protocol::isis);
    CHECK(fpm_protocol(fpm::protocol::rip) == protocol::rip);
    CHECK(fpm_protocol(fpm::protocol::eigrp) == protocol::eigrp);
    CHECK_FALSE(fpm_protocol(fpm::protocol::kernel));
    CHECK(fpm_protocol(194) == protocol::other);  // sharpd
    CHECK(default_distance(source::fpm, *fpm_protocol(fpm::protocol::bgp)) == 20);
    CHECK(default_distance(source::fpm, *fpm_protocol(fpm::protocol::ospf)) == 110);
    CHECK(default_distance(source::fpm, *fpm_protocol(fpm::protocol::zebra_static)) == 1);
}

TEST_CASE("fpm routes: next hops on a tunnel resolve through NHRP, on a LAN through ARP",
          "[rib][fpm]") {
    recording_fib f;
    table r(f, limits{});
    fpm_counters c;
    const prefix_key bgp_net{ip(172, 16, 0, 0), 16};
    const prefix_key ospf_net{ip(172, 17, 0, 0), 24};
    apply_fpm_batch(r,
                    {add(bgp_net.first, 16, fpm::protocol::bgp, {spoke.addr}),
                     add(ospf_net.first, 24, fpm::protocol::ospf, {lan_router.addr})},
                    hub_interfaces(), c);
    CHECK(f.fib.empty());  // staged until the commit: never half a batch
    r.commit();
    CHECK(c.installed == 2);
    CHECK(c.batches == 1);
    REQUIRE(f.adj_of(bgp_net) != 0);
    CHECK(f.adjs.at(f.adj_of(bgp_net)).k == spoke);
    CHECK_FALSE(f.adjs.at(f.adj_of(bgp_net)).complete);  // no spoke registered yet: glean
    CHECK(r.best(bgp_net)->distance == 20);
    CHECK(r.best_origin(bgp_net) == origin{source::fpm, protocol::ebgp});
    CHECK(f.adjs.at(f.adj_of(ospf_net)).k == lan_router);
    CHECK(r.best(ospf_net)->distance == 110);

    r.bind(tun, spoke.addr, ip(198, 51, 100, 2));  // the spoke registers
    r.commit();
    CHECK(f.adjs.at(f.adj_of(bgp_net)).complete);
    CHECK(f.adjs.at(f.adj_of(bgp_net)).nbma == ip(198, 51, 100, 2));

    apply_fpm_batch(r, {del(bgp_net.first, 16, fpm::protocol::bgp)}, hub_interfaces(), c);
    r.commit();
    CHECK_FALSE(f.fib.contains(bgp_net));
    CHECK(c.withdrawn == 1);
    CHECK(r.find_nexthop(spoke) == nullptr);
}

TEST_CASE("fpm routes: distances against the hub's own routes and NHRP", "[rib][fpm]") {
    recording_fib f;
    table r(f, limits{});
    fpm_counters c;
    const prefix_key host{ip(10, 0, 0, 9), 32};
    // A registration's host route (250) gives way to FRR's; a configured static (1) does not.
    REQUIRE(r.set({source::nhrp}, host,
                  route{dp::route_kind::adjacency, 0, nh_key{tun, host.first}, distance::nhrp, 1}));
    apply_fpm_batch(r, {add(host.first, 32, fpm::protocol::ospf, {spoke.addr})}, hub_interfaces(),
                    c);
    r.commit();
    CHECK(r.best_origin(host)->src == source::fpm);
    CHECK(f.adjs.at(f.adj_of(host)).k == spoke);
    REQUIRE(r.set({source::static_route}, host,
                  route{dp::route_kind::adjacency, 0, lan_router, distance::static_route, 0}));
    r.commit();
    CHECK(f.adjs.at(f.adj_of(host)).k == lan_router);
    // FRR's static route ties with the hub's own (1): the configuration, the earlier source, wins.
    apply_fpm_batch(r, {add(host.first, 32, fpm::protocol::zebra_static, {spoke.addr})},
                    hub_interfaces(), c);
    r.commit();
    CHECK(r.best_origin(host)->src == source::static_route);
    // zebra moved the prefix from OSPF to its static route: one FPM candidate, not two.
    CHECK(r.routes_of(source::fpm).size() == 1);
    CHECK(r.candidate_count() == 3);
}

TEST_CASE("fpm routes: connected, unreachable, blackhole, ECMP and a full RIB", "[rib][fpm]") {
    recording_fib f;
    table r(f, limits{4});
    fpm_counters c;
    const prefix_key a{ip(172, 20, 0, 0), 16};
    const prefix_key b{ip(172, 21, 0, 0), 16};
    const prefix_key bh{ip(172, 22, 0, 0), 16};
    fpm::route_update hole = add(bh.first, 16, fpm::protocol::zebra_static, {});
    hole.blackhole = true;
    apply_fpm_batch(
        r,
        {
            add(ip(192, 0, 2, 0), 24, fpm::protocol::kernel, {0}),  // zebra's connected route
            // ECMP: the first gateway is not on a hub interface, the second is.
            add(a.first, 16, fpm::protocol::bgp, {ip(203, 0, 113, 1), spoke.addr}),
            add(b.first, 16, fpm::protocol::bgp, {ip(203, 0, 113, 1)}),  // nowhere on the hub
            hole,
        },
        hub_interfaces(), c);
    r.commit();
    CHECK(c.ignored_connected == 1);
    CHECK(c.unresolved == 1);
    CHECK(c.installed == 2);
    CHECK(f.adjs.at(f.adj_of(a)).k == spoke);
    CHECK_FALSE(f.fib.contains(b));
    REQUIRE(f.fib.contains(bh));
    CHECK(f.fib.at(bh).kind == dp::route_kind::blackhole);
    // The next hop of `a` moves off the hub: its old route must not stay behind.
    apply_fpm_batch(r, {add(a.first, 16, fpm::protocol::bgp, {ip(203, 0, 113, 1)})},
                    hub_interfaces(), c);
    r.commit();
    CHECK_FALSE(f.fib.contains(a));
    CHECK(c.unresolved == 2);
    // The RIB's limit: refused and counted, nothing installed for them.
    fpm::server::batch many;
    for (uint32_t i = 0; i < 6; ++i) {
        many.push_back(add(ip(172, 30, i, 0), 24, fpm::protocol::ospf, {spoke.addr}));
    }
    apply_fpm_batch(r, many, hub_interfaces(), c);
    r.commit();
    CHECK(c.refused == 3);  // 4 held: the blackhole and three of these
    CHECK(r.stats().refused == 3);
    CHECK(f.fib.size() == 4);
}

TEST_CASE("fpm routes: after a zebra restart the server's sweep leaves nothing stale",
          "[rib][fpm]") {
    // The server resends what zebra resent as adds and what it did not as withdrawals
    // (control/fpm/server.cpp's mark and sweep); the RIB ends with exactly zebra's new table.
    recording_fib f;
    table r(f, limits{});
    fpm_counters c;
    fpm::server::batch first;
    for (uint32_t i = 0; i < 10; ++i) {
        first.push_back(add(ip(172, 16, i, 0), 24, fpm::protocol::bgp, {spoke.addr}));
    }
    apply_fpm_batch(r, first, hub_interfaces(), c);
    r.commit();
    size_t writes = r.stats().fib_writes;
    CHECK(f.fib.size() == 10);
    fpm::server::batch again;
    for (uint32_t i = 0; i < 10; ++i) {
        again.push_back(i < 8 ? add(ip(172, 16, i, 0), 24, fpm::protocol::bgp, {spoke.addr})
                              : del(ip(172, 16, i, 0), 24, fpm::protocol::bgp));
    }
    again.push_back(add(ip(172, 16, 10, 0), 24, fpm::protocol::bgp, {spoke.addr}));
    apply_fpm_batch(r, again, hub_interfaces(), c);
    r.commit();
    CHECK(f.fib.size() == 9);
    CHECK_FALSE(f.fib.contains({ip(172, 16, 9, 0), 24}));
    CHECK(f.fib.contains({ip(172, 16, 10, 0), 24}));
    // The eight unchanged routes were not written again.
    CHECK(r.stats().fib_writes == writes + 3);
}

TEST_CASE(
    "fpm routes: a next hop on an underlay port: like a LAN's with allow-transit, else "
    "refused, counted and listed",
    "[rib][fpm]") {
    constexpr uint16_t wan = 0;      // underlay, drops transit
    constexpr uint16_t transit = 2;  // underlay, allow-transit
    fpm_interfaces ifs = hub_interfaces();
    ifs.underlays.push_back({wan, ip(100, 64, 0, 0), 24, false});
    ifs.underlays.push_back({transit, ip(100, 65, 0, 0), 24, true});
    const uint32_t wan_router = ip(100, 64, 0, 2);
    const uint32_t transit_router = ip(100, 65, 0, 2);
    recording_fib f;
    table r(f, limits{});
    fpm_counters c;
    fpm_refusals no;
    const prefix_key a{ip(172, 31, 1, 0), 24};
    const prefix_key b{ip(172, 31, 2, 0), 24};
    const prefix_key ecmp{ip(172, 31, 3, 0), 24};
    const prefix_key nowhere{ip(172, 31, 4, 0), 24};
    apply_fpm_batch(r,
                    {add(a.first, 24, fpm::protocol::ospf, {wan_router}),
                     add(b.first, 24, fpm::protocol::ospf, {transit_router}),
                     // ECMP: a usable gateway wins over the refused one.
                     add(ecmp.first, 24, fpm::protocol::bgp, {wan_router, spoke.addr}),
                     // Nothing usable: the underlay's refusal is the reason given, not the
                     // first gateway's (unresolved).
                     add(nowhere.first, 24, fpm::protocol::bgp, {ip(203, 0, 113, 1), wan_router})},
                    ifs, c, &no);
    r.commit();
    CHECK(c.installed == 2);
    CHECK(c.underlay_refused == 2);
    CHECK(c.unresolved == 0);
    CHECK_FALSE(f.fib.contains(a));
    CHECK_FALSE(f.fib.contains(nowhere));
    // allow-transit: a next hop on the port, resolved by ARP there as a LAN's.
    REQUIRE(f.adj_of(b) != 0);
    const nh_key on_transit{static_cast<uint16_t>(dp::glean_lan_port_bit | transit),
                            transit_router};
    CHECK(f.adjs.at(f.adj_of(b)).k == on_transit);
    CHECK(on_lan(on_transit));
    CHECK_FALSE(f.adjs.at(f.adj_of(b)).complete);
    f.arp.insert({transit, transit_router});
    r.resolve(on_transit);
    CHECK(f.adjs.at(f.adj_of(b)).complete);
    CHECK(f.adjs.at(f.adj_of(ecmp)).k == spoke);
    // The refusals, listed by prefix with the port and the gateway.
    REQUIRE(no.entries().size() == 2);
    const fpm_refusal& ra = no.entries().at(a);
    CHECK(ra.why == fpm_refusal_reason::underlay_transit);
    CHECK(ra.port == wan);
    CHECK(ra.gateway == wan_router);
    CHECK(ra.proto == protocol::ospf);
    CHECK(no.entries().at(nowhere).why == fpm_refusal_reason::underlay_transit);
    CHECK(name(fpm_refusal_reason::underlay_transit) == "underlay_transit");

    // An installed route whose next hop moves onto the underlay: withdrawn, then refused.
    apply_fpm_batch(r, {add(b.first, 24, fpm::protocol::ospf, {wan_router})}, ifs, c, &no);
    r.commit();
    CHECK_FALSE(f.fib.contains(b));
    CHECK(no.entries().contains(b));
    // ... and back onto a tunnel: installed, no longer listed.
    apply_fpm_batch(r, {add(b.first, 24, fpm::protocol::ospf, {spoke.addr})}, ifs, c, &no);
    r.commit();
    CHECK(f.fib.contains(b));
    CHECK_FALSE(no.entries().contains(b));
    // zebra withdraws a refused prefix: the listing goes too.
    apply_fpm_batch(r, {del(a.first, 24, fpm::protocol::ospf)}, ifs, c, &no);
    r.commit();
    CHECK_FALSE(no.entries().contains(a));
    CHECK(no.entries().size() == 1);
    CHECK(c.underlay_refused == 3);
}

TEST_CASE("fpm routes: the list of refusals is bounded; unresolved and a full RIB are listed",
          "[rib][fpm]") {
    recording_fib f;
    table r(f, limits{1});
    fpm_counters c;
    fpm_refusals no(2);
    apply_fpm_batch(r,
                    {add(ip(172, 16, 0, 0), 24, fpm::protocol::bgp, {spoke.addr}),  // fills it
                     add(ip(172, 16, 1, 0), 24, fpm::protocol::bgp, {spoke.addr}),  // RIB full
                     add(ip(172, 16, 2, 0), 24, fpm::protocol::rip, {ip(203, 0, 113, 1)}),
                     add(ip(172, 16, 3, 0), 24, fpm::protocol::rip, {ip(203, 0, 113, 1)})},
                    hub_interfaces(), c, &no);
    r.commit();
    CHECK(c.installed == 1);
    CHECK(c.refused == 1);
    CHECK(c.unresolved == 2);
    REQUIRE(no.entries().size() == 2);
    CHECK(no.unlisted() == 1);  // the fourth: counted, not listed
    const fpm_refusal& full = no.entries().at({ip(172, 16, 1, 0), 24});
    CHECK(full.why == fpm_refusal_reason::rib_full);
    CHECK(full.gateway == spoke.addr);
    const fpm_refusal& off = no.entries().at({ip(172, 16, 2, 0), 24});
    CHECK(off.why == fpm_refusal_reason::unresolved);
    CHECK(off.gateway == ip(203, 0, 113, 1));
    CHECK(off.proto == protocol::rip);
    // A listed prefix refused again is updated in place, not counted as unlisted.
    apply_fpm_batch(r, {add(ip(172, 16, 2, 0), 24, fpm::protocol::ospf, {ip(203, 0, 113, 2)})},
                    hub_interfaces(), c, &no);
    CHECK(no.unlisted() == 1);
    CHECK(no.entries().at({ip(172, 16, 2, 0), 24}).proto == protocol::ospf);
}
