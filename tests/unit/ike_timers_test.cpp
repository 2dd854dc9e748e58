// The IKEv2 engine's timers (control/ike/engine.cpp, a control::timer_wheel): each SA's next
// deadline is one wheel entry, so tick() runs only the SAs that come due (counted in
// engine_counters::sa_timer_runs) and each timer fires at its time, not a scan's grain later.
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>

#include "control/ike/engine.hpp"
#include "control/ike/message.hpp"
#include "tests/unit/ike_engine_pair.hpp"

using namespace dmvpn;
using namespace dmvpn::ike;
using namespace dmvpn::ike::testing;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

size_t ticked_sends(engine& e, time_point at) {
    outputs o;
    e.tick(at, o);
    return o.send.size();
}

// A hub engine (p.b) keyed with `n` spokes, each its own engine, gone once up; the hub's DPD
// every `dpd_s` seconds (0: none).
wire_pair hub_with_spokes(uint32_t n, uint32_t dpd_s) {
    auto hub = settings();
    hub.dpd_interval_s = dpd_s;
    auto p = make_pair(settings(), hub);
    for (uint32_t i = 0; i < n; ++i) {
        p.a.e = make(settings(), spoke_addr + 0x100 + i);
        p.initiate();
    }
    REQUIRE(p.b.e->counters().ike_sas_up == n);
    return p;
}

}  // namespace

TEST_CASE("Timers: a retransmission leaves at its deadline, not before") {
    auto p = make_pair(settings(), settings());
    p.drop = [](const datagram&, bool) { return true; };
    p.initiate();
    REQUIRE(p.a.sent.size() == 1);
    const time_point t0 = p.now;
    CHECK(ticked_sends(*p.a.e, t0 + milliseconds(1990)) == 0);
    CHECK(ticked_sends(*p.a.e, t0 + milliseconds(1999)) == 0);
    CHECK(ticked_sends(*p.a.e, t0 + milliseconds(2000)) == 1);  // 2 s: the first
    CHECK(ticked_sends(*p.a.e, t0 + milliseconds(5990)) == 0);  // then 4 s later
    CHECK(ticked_sends(*p.a.e, t0 + milliseconds(6000)) == 1);
    CHECK(p.a.e->counters().retransmits == 2);
    // Each tick that sent ran that one SA's timers once; the others ran nothing.
    CHECK(p.a.e->counters().sa_timer_runs == 2);
}

TEST_CASE("Timers: a half-open SA expires at 30 s, not before") {
    auto p = make_pair(settings(), settings());
    p.drop = [](const datagram& d, bool from_a) {
        return from_a && parse(d.payload)->hdr.exch == exchange::ike_auth;
    };
    p.initiate();
    REQUIRE(p.b.e->counters().half_open == 1);
    const time_point t0 = p.now;
    outputs o;
    for (auto at = t0; at < t0 + seconds(30); at += milliseconds(10)) {
        p.b.e->tick(at, o);
    }
    CHECK(p.b.e->counters().half_open == 1);
    CHECK(p.b.e->counters().sa_timer_runs == 0);  // 3,000 ticks, no SA looked at
    p.b.e->tick(t0 + seconds(30), o);
    CHECK(p.b.e->counters().half_open == 0);
    CHECK(ike_sa_count(*p.b.e) == 0);
    CHECK(p.b.e->counters().sa_timer_runs == 1);
}

TEST_CASE("Timers: established SAs with nothing due are not looked at by tick") {
    auto p = hub_with_spokes(40, 0);
    engine& b = *p.b.e;
    const time_point t0 = p.now;
    outputs o;
    // 20 s of 10 ms ticks: nothing is due (IKE lifetime a day, CHILD_SA an hour).
    for (auto at = t0; at <= t0 + seconds(20); at += milliseconds(10)) {
        b.tick(at, o);
    }
    CHECK(b.counters().sa_timer_runs == 0);
    CHECK(o.send.empty());
    // The entries armed while the SAs were half-open (30 s) come due once each and re-arm
    // for the SAs' lifetimes; after that, minutes of ticks look at no SA.
    for (auto at = t0 + seconds(20); at <= t0 + seconds(300); at += milliseconds(100)) {
        b.tick(at, o);
    }
    CHECK(b.counters().sa_timer_runs == 40);
    CHECK(o.send.empty());
    CHECK(b.counters().ike_sas_up == 40);
    // `show crypto ikev2 stats`: counts per state, one timer pending per SA.
    const std::string j = b.show("ikev2 stats", true);
    CHECK(j.find("\"established\": 40,") != std::string::npos);
    CHECK(j.find("\"installed\": 40,") != std::string::npos);
    CHECK(j.find("\"timers_pending\": 40,") != std::string::npos);
    CHECK(b.show("ikev2 stats", false).starts_with("IKEv2 SAs: 40 established, 0 half-open"));
}

TEST_CASE("Timers: DPD leaves for every idle SA at its interval, not before") {
    auto p = hub_with_spokes(25, 10);
    engine& b = *p.b.e;
    const time_point t0 = p.now;
    CHECK(ticked_sends(b, t0 + milliseconds(9990)) == 0);
    CHECK(b.counters().sa_timer_runs == 0);
    CHECK(ticked_sends(b, t0 + seconds(10)) == 25);  // one INFORMATIONAL each
    CHECK(b.counters().sa_timer_runs == 25);
    // Their retransmissions (the spokes' engines are gone) 2 s later, again only those.
    CHECK(ticked_sends(b, t0 + milliseconds(11990)) == 0);
    CHECK(ticked_sends(b, t0 + seconds(12)) == 25);
    CHECK(b.counters().retransmits == 25);
    CHECK(b.counters().sa_timer_runs == 50);
}

TEST_CASE("Timers: a byte count past the soft limit rekeys at the next tick") {
    auto s = settings();
    s.child_lifetime_bytes = 1000000;
    auto p = make_pair(s, s);
    p.initiate();
    REQUIRE(p.a.installs.size() == 1);
    outputs o;
    p.a.e->usage({{p.a.installs[0].id, 0, 0, 100, 1}}, p.now, o);
    CHECK(ticked_sends(*p.a.e, p.now + milliseconds(10)) == 0);
    p.a.e->usage({{p.a.installs[0].id, 0, 0, 950000, 900}}, p.now, o);
    CHECK(ticked_sends(*p.a.e, p.now + milliseconds(20)) == 1);  // CREATE_CHILD_SA
    CHECK(p.a.e->counters().sa_timer_runs == 1);
}
