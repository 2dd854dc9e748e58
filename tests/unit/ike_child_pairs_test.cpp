// control/ike/child_pairs: which of one peer's CHILD_SA pairs encrypts and which still decrypt
// across a rekey (make-before-break, RFC 7296 section 2.8).
#include <catch2/catch.hpp>

#include "control/ike/child_pairs.hpp"

using dmvpn::ike::child_pairs;
using dmvpn::ike::rekey_drain;
using namespace std::chrono_literals;

namespace {

const child_pairs::time_point t0{std::chrono::seconds(1000)};

}  // namespace

TEST_CASE("Our rekey: the new pair encrypts at once, the old one drains after its removal") {
    child_pairs p;
    p.add(1, false);
    CHECK(p.outbound() == 1u);
    p.add(2, false);  // the response arrived: the peer has the new pair already
    CHECK(p.outbound() == 2u);
    CHECK(p.decrypts(1));    // the peer may still be sending with the old one
    CHECK(p.remove(1, t0));  // our DELETE completed: 2 stays, so 1 drains
    CHECK(p.draining(1));
    CHECK(p.decrypts(1));
    CHECK(p.outbound() == 2u);
    CHECK(p.drained(t0 + rekey_drain - 1ms).empty());
    CHECK(p.decrypts(1));
    CHECK(p.drained(t0 + rekey_drain) == std::vector<uint64_t>{1});
    CHECK_FALSE(p.decrypts(1));
    CHECK(p.decrypts(2));
    CHECK(p.outbound() == 2u);
    CHECK(rekey_drain >= 1s);  // seconds, not a packet's flight time
}

TEST_CASE("The peer's rekey: our outbound waits for its traffic on the new pair") {
    child_pairs p;
    p.add(1, false);
    p.add(2, true);  // we answered: the peer installs 2 only when our response reaches it
    CHECK(p.waiting(2));
    CHECK(p.outbound() == 1u);
    CHECK(p.decrypts(2));      // its inbound SA is in already
    CHECK(p.inbound_seen(2));  // a packet decrypted with 2: the peer has it
    CHECK_FALSE(p.waiting(2));
    CHECK(p.outbound() == 2u);
    CHECK_FALSE(p.inbound_seen(2));  // once only
    CHECK(p.remove(1, t0));
    CHECK(p.outbound() == 2u);
}

TEST_CASE("The peer's rekey: its DELETE of the old pair moves our outbound before any traffic") {
    child_pairs p;
    p.add(1, false);
    p.add(2, true);
    CHECK(p.remove(1, t0));  // the peer deletes 1 once 2 is in on its side
    CHECK(p.outbound() == 2u);
    CHECK_FALSE(p.waiting(2));
    CHECK(p.draining(1));
    CHECK(p.drained(t0 + rekey_drain) == std::vector<uint64_t>{1});
    CHECK(p.outbound() == 2u);
}

TEST_CASE("A pair that would wait with nothing else encrypting encrypts at once") {
    child_pairs p;
    p.add(7, true);
    CHECK_FALSE(p.waiting(7));
    CHECK(p.outbound() == 7u);
    // A rekey answered after the old pair is already draining: nothing live encrypts either.
    CHECK_FALSE(p.remove(7, t0));
    p.add(8, false);
    p.add(10, false);
    CHECK(p.remove(8, t0));         // 10 stays: 8 drains
    CHECK_FALSE(p.remove(10, t0));  // no live successor: 10 goes at once
    CHECK(p.draining(8));
    CHECK_FALSE(p.outbound());
    p.add(9, true);
    CHECK(p.outbound() == 9u);
}

TEST_CASE("A pair removed with no successor goes at once; forget ends a drain") {
    child_pairs p;
    p.add(1, false);
    CHECK_FALSE(p.remove(1, t0));  // a DELETE with no rekey: nothing to drain for
    CHECK_FALSE(p.decrypts(1));
    CHECK(p.empty());
    CHECK_FALSE(p.outbound());

    p.add(2, false);
    p.add(3, false);
    CHECK(p.remove(2, t0));
    p.forget(2);  // the IKE SA died: no drain
    CHECK_FALSE(p.decrypts(2));
    CHECK(p.outbound() == 3u);
    CHECK_FALSE(p.remove(3, t0));  // the last one: no successor
    CHECK(p.empty());
    CHECK(p.drained(t0 + rekey_drain).empty());
    // A drain of 0 forgets at once even with a successor.
    p.add(4, false);
    p.add(5, false);
    CHECK_FALSE(p.remove(4, t0, 0s));
    CHECK_FALSE(p.decrypts(4));
    // Removing twice, or an unknown id, changes nothing.
    CHECK_FALSE(p.remove(4, t0));
    CHECK_FALSE(p.remove(99, t0));
    CHECK_FALSE(p.inbound_seen(99));
    CHECK(p.outbound() == 5u);
}

TEST_CASE("Simultaneous rekeys: the survivor encrypts whichever pair is deleted first") {
    for (bool ours_survives : {false, true}) {
        INFO("our rekey's pair survives: " << ours_survives);
        child_pairs p;
        p.add(1, false);
        p.add(2, true);   // the peer's rekey, answered by us
        p.add(3, false);  // ours: encrypts at once
        CHECK(p.outbound() == 3u);
        CHECK(p.waiting(2));
        uint64_t redundant = ours_survives ? 2 : 3;
        uint64_t survivor = ours_survives ? 3 : 2;
        CHECK(p.remove(redundant, t0));
        CHECK(p.remove(1, t0));
        CHECK(p.outbound() == survivor);
        CHECK(p.decrypts(1));
        CHECK(p.decrypts(redundant));
        auto gone = p.drained(t0 + rekey_drain);
        CHECK(gone.size() == 2);
        CHECK(p.outbound() == survivor);
        CHECK_FALSE(p.decrypts(redundant));
    }
}
