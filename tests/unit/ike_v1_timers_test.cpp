// The IKEv1 engine's timers (control/ike/v1_engine.cpp, the IKEv2 engine's timer wheel): each
// ISAKMP SA's and each IPsec SA pair's next deadline is one wheel entry, so tick() runs only
// what came due (engine_counters::timer_runs), at its time: DPD, the initiator's Phase 2 rekey
// at 90% of the lifetime, the pair's and the ISAKMP SA's lifetimes in seconds. One initiator
// engine keys 20 ISAKMP SAs (20 tunnels, an address each) with one responder engine, in two
// groups 5 s apart, on a fake clock ticked every 10 ms as the IKE thread does.
#include <catch2/catch.hpp>

#include "tests/unit/ike_v1_many.hpp"

using namespace dmvpn;
using namespace dmvpn::ike;
using namespace dmvpn::ike::v1::testing;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

constexpr uint32_t spokes = 20;

struct rig : many_sas {
    explicit rig(uint32_t p1_lifetime_s)
        : many_sas(spokes, many_settings(p1_lifetime_s, 120, 10)) {}
};

}  // namespace

TEST_CASE("v1 timers: tick runs only the SAs and pairs that came due (DPD, rekey, lifetime)",
          "[ike_v1_pair]") {
    rig g(86400);
    const time_point t0 = g.now;
    g.key(0, spokes / 2);
    g.run_until(t0 + seconds(5));
    g.key(spokes / 2, spokes);
    REQUIRE(g.i_installs == spokes);
    REQUIRE(g.i->counters().phase1_up == spokes);
    CHECK(g.i->counters().retransmits == 0);

    // The Main Mode and Quick Mode retransmission entries (due 2 s after their requests) were
    // superseded as the answers came (engine::impl::answered): none of them runs an SA.
    g.run_until(t0 + seconds(8));
    CHECK(g.runs() == 0);
    // To 9.99 s: 199 ticks of each engine with 20 ISAKMP SAs and 20 pairs each, nothing due.
    const uint64_t sent = g.sent;
    uint64_t runs = g.runs();
    g.run_until(t0 + milliseconds(9990));
    CHECK(g.runs() == runs);
    CHECK(g.sent == sent);
    CHECK(g.i->counters().dpd_sent == 0);
    // 10 s: the first group's R-U-THEREs, each acknowledged; the responder's DPD timers of
    // those SAs run too, and find the peer just heard from. The second group's 5 s later.
    g.run_until(t0 + seconds(10));
    CHECK(g.i->counters().dpd_sent == spokes / 2);
    CHECK(g.i->counters().dpd_acked == spokes / 2);
    CHECK(g.r->counters().dpd_answered == spokes / 2);
    CHECK(g.r->counters().dpd_sent == 0);
    CHECK(g.runs() == runs + spokes);
    runs = g.runs();
    // The acknowledged R-U-THEREs' retransmission entries (12 s) were superseded by the acks.
    g.run_until(t0 + milliseconds(14990));
    CHECK(g.i->counters().dpd_sent == spokes / 2);
    CHECK(g.runs() == runs);
    g.run_until(t0 + seconds(15));
    CHECK(g.i->counters().dpd_sent == spokes);
    CHECK(g.i->counters().dpd_acked == spokes);
    CHECK(g.runs() == runs + spokes);

    // Phase 2 (120 s) rekeyed by the initiator at 90%: 108 s after each group came up.
    g.run_until(t0 + milliseconds(107990));
    CHECK(g.i_installs == spokes);
    g.run_until(t0 + seconds(108));
    CHECK(g.i_installs == spokes + spokes / 2);
    g.run_until(t0 + seconds(113));
    CHECK(g.i_installs == 2 * spokes);
    // The old pairs go at 120 s (their hard lifetime); the new ones stay.
    g.run_until(t0 + milliseconds(119990));
    CHECK(g.i_removes == 0);
    g.run_until(t0 + seconds(120));
    CHECK(g.i_removes == spokes / 2);
    g.run_until(t0 + seconds(126));
    CHECK(g.i_removes == spokes);
    CHECK(g.i_downs == 0);
    CHECK(g.r_downs == 0);
    // 12,600 ticks of each engine over 40 SAs and pairs a side: only what came due ran (a DPD
    // round every 10 s per SA, a rekey and an expiry per pair, and the new pairs' arming).
    CHECK(g.runs() < 40 * 20);
}

TEST_CASE("v1 timers: the ISAKMP SA's lifetime in seconds ends it on time", "[ike_v1_pair]") {
    rig g(60);
    const time_point t0 = g.now;
    g.key(0, spokes);
    REQUIRE(g.i->counters().phase1_up == spokes);
    g.run_until(t0 + milliseconds(59990));
    CHECK(g.i_downs == 0);
    CHECK(g.r_downs == 0);
    g.run_until(t0 + seconds(60));
    // Both ends: DELETE sent, the SA and its pairs gone, the hub told.
    CHECK(g.i_downs == spokes);
    CHECK(g.r_downs == spokes);
    CHECK(g.i_removes == spokes);
    CHECK(g.i->show("isakmp sa", false).find("QM_IDLE") == std::string::npos);
}
