// The IKEv1 engine's per-peer indexes (control/ike/v1_sa.hpp: sas_by_peer, children_by_peer,
// inbound_spis with our pending Quick Modes' SPIs) against a walk of every SA and pair
// (engine::index_errors), after every step of a random sequence: initiations (Main Mode and
// Quick Mode, datagrams lost at random so half-open SAs, unanswered Quick Modes and
// retransmissions happen), time passing (retransmissions, DPD deaths, Phase 2 rekeys at 90%,
// lifetimes of pairs and ISAKMP SAs), DELETEs from either end (`clear`), the initiator
// restarting (its next Main Mode carries INITIAL-CONTACT, the hub forgets the old SAs).
// One initiator engine with 12 tunnels (an address each) against one responder engine, the
// many_sas rig of the timer test; the seed is fixed, so a failure replays.
#include <catch2/catch.hpp>

#include <random>

#include "tests/unit/ike_v1_many.hpp"

using namespace dmvpn::ike;
using namespace dmvpn::ike::v1::testing;
using std::chrono::milliseconds;

namespace {

constexpr uint32_t tunnels = 12;

struct lossy : many_sas {
    std::mt19937 rng;
    double loss = 0.0;

    explicit lossy(uint32_t seed) : many_sas(tunnels, many_settings(90, 30, 5)), rng(seed) {}

    // many_sas::deliver, with each datagram lost at `loss`.
    void send(std::vector<datagram> q) {
        std::bernoulli_distribution lost(loss);
        while (!q.empty()) {
            std::vector<datagram> next;
            for (auto& d : q) {
                if (lost(rng)) {
                    continue;
                }
                const bool to_r = d.dst == many_hub;
                d.tunnel = to_r ? 0 : tunnel_of.at(d.dst);
                v1::engine& dst = to_r ? *r : *i;
                outputs o;
                dst.on_datagram(d, now, o);
                for (auto& x : take(dst, o)) {
                    next.push_back(std::move(x));
                }
            }
            q = std::move(next);
        }
    }
    void advance(milliseconds span) {
        const time_point until = now + span;
        while (now + milliseconds(100) <= until) {
            now += milliseconds(100);
            for (v1::engine* e : {i.get(), r.get()}) {
                outputs o;
                e->tick(now, o);
                send(take(*e, o));
            }
        }
    }
};

}  // namespace

TEST_CASE("v1 indexes: every step of a random sequence agrees with a full walk", "[ike_v1_pair]") {
    const uint32_t seed = 20261207;
    lossy g(seed);
    INFO("seed " << seed);
    std::uniform_int_distribution<uint32_t> op(0, 9), tunnel(0, tunnels - 1), ms(100, 12000);
    uint64_t restarts = 0, clears = 0;
    for (int step = 0; step < 400; ++step) {
        g.loss = step % 50 < 25 ? 0.0 : 0.2;  // runs without and with loss
        const uint32_t k = tunnel(g.rng);
        const uint32_t what = op(g.rng);
        INFO("step " << step << " op " << what << " tunnel " << k);
        outputs o;
        if (what <= 3) {
            g.i->initiate(k, many_hub, g.now, o);  // nothing when one is there or under way
            g.send(g.take(*g.i, o));
        } else if (what <= 6) {
            g.advance(milliseconds(ms(g.rng)));
        } else if (what == 7) {
            ++clears;
            g.r->clear(0xc6336410 + k, g.now, o);  // the hub deletes one spoke's SAs
            g.send(g.take(*g.r, o));
        } else if (what == 8) {
            ++clears;
            g.i->clear(many_hub, g.now, o);  // every tunnel's SAs deleted by the initiator
            g.send(g.take(*g.i, o));
        } else {
            // The initiator restarts: its state is gone, the hub's is not; its next Main Mode
            // carries INITIAL-CONTACT and the hub forgets that spoke's older SAs.
            ++restarts;
            g.i = many_sas::make(many_settings(90, 30, 5), [] {
                std::vector<tunnel_binding> t;
                for (uint32_t n = 0; n < tunnels; ++n) {
                    t.push_back({n, 0xc6336410 + n, "dmvpn"});
                }
                return t;
            }());
        }
        REQUIRE(g.i->index_errors().empty());
        REQUIRE(g.r->index_errors().empty());
    }
    // The sequence went where it should: SAs came up, pairs were rekeyed and deleted, Quick
    // Modes and Main Modes were retransmitted, the hub saw INITIAL-CONTACT.
    CHECK(restarts > 0);
    CHECK(clears > 0);
    CHECK(g.r->counters().phase1_up > 20);
    CHECK(g.r->counters().quick_modes > 20);
    CHECK(g.r->counters().deletes_rx > 0);
    CHECK(g.i->counters().retransmits + g.r->counters().retransmits > 0);
    CHECK(g.i_installs > tunnels);
}
