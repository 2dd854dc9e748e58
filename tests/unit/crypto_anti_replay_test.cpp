// Anti-replay window: RFC 4303 section 3.4.3 and Appendix A (A2 for ESN).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "crypto/anti_replay.hpp"

using dmvpn::crypto::replay_error;
using dmvpn::crypto::replay_window;

namespace {

replay_error accept_error(replay_window& w, uint64_t seq) {
    auto r = w.accept(seq);
    REQUIRE_FALSE(r.has_value());
    return r.error();
}

}  // namespace

TEST_CASE("replay window accepts in order, rejects duplicates and zero", "[crypto][replay]") {
    replay_window w(1024, false);
    CHECK(w.size() == 1024);
    CHECK(accept_error(w, 0) == replay_error::zero);
    for (uint64_t s = 1; s <= 3000; ++s) {
        REQUIRE(w.accept(s).has_value());
        REQUIRE(w.top() == s);
    }
    CHECK(accept_error(w, 3000) == replay_error::replayed);
    CHECK(accept_error(w, 2000) == replay_error::replayed);
    CHECK(name(replay_error::replayed) == "replayed");
    CHECK(name(replay_error::outside_window) == "outside_window");
}

TEST_CASE("replay window not enforced: old and repeated numbers pass, zero does not, top tracks",
          "[crypto][replay]") {
    replay_window w(64, false);
    CHECK(w.enforced());
    w.set_enforced(false);
    CHECK_FALSE(w.enforced());
    REQUIRE(w.accept(500).has_value());
    CHECK(w.accept(500).has_value());
    CHECK(w.accept(1).has_value());  // 499 behind: outside a 64-number window
    CHECK(w.top() == 500);
    CHECK(accept_error(w, 0) == replay_error::zero);
    REQUIRE(w.accept(501).has_value());
    CHECK(w.top() == 501);
}

TEST_CASE("replay window edges: in window, exactly at the bottom, just below", "[crypto][replay]") {
    replay_window w(1024, false);
    REQUIRE(w.accept(5000).has_value());
    // 5000 - 1023 is the oldest number a 1024-wide window still holds.
    CHECK(w.check(5000 - 1023).has_value());
    CHECK(w.check(5000 - 1024).error() == replay_error::outside_window);
    REQUIRE(w.accept(5000 - 1023).has_value());
    CHECK(accept_error(w, 5000 - 1023) == replay_error::replayed);
    REQUIRE(w.accept(4500).has_value());
    CHECK(w.top() == 5000);  // an old number does not move the window
    // check() changes nothing.
    CHECK(w.check(4600).has_value());
    CHECK(w.check(4600).has_value());
    REQUIRE(w.accept(4600).has_value());
    CHECK(w.check(4600).error() == replay_error::replayed);
}

TEST_CASE("replay window far ahead slides and forgets the old bits", "[crypto][replay]") {
    replay_window w(1024, false);
    for (uint64_t s = 1; s <= 100; ++s) {
        REQUIRE(w.accept(s).has_value());
    }
    REQUIRE(w.accept(1'000'000).has_value());
    CHECK(w.top() == 1'000'000);
    CHECK(w.check(100).error() == replay_error::outside_window);
    // Numbers inside the new window were never received, even where the ring reuses a word
    // that held bits of 1..100.
    for (uint64_t s = 1'000'000 - 1023; s < 1'000'000; ++s) {
        REQUIRE(w.check(s).has_value());
    }
    // A jump smaller than the ring clears just the words it slides over.
    REQUIRE(w.accept(1'000'000 + 700).has_value());
    CHECK(w.check(1'000'000).error() == replay_error::replayed);
    CHECK(w.check(1'000'000 + 699).has_value());
}

TEST_CASE("replay window matches a reference model on random traffic", "[crypto][replay]") {
    for (uint32_t size : {1u, 63u, 64u, 65u, 1000u, 1024u, 4096u}) {
        replay_window w(size, false);
        std::set<uint64_t> seen;
        uint64_t top = 0;
        std::mt19937_64 rng(size);
        for (int n = 0; n < 20000; ++n) {
            // Mostly near the top, sometimes behind the window, sometimes far ahead.
            const int kind = static_cast<int>(rng() % 10);
            uint64_t s;
            if (kind < 7) {
                s = top + 1 + rng() % 8;
                s = s > 16 ? s - rng() % 16 : s;
            } else if (kind < 9) {
                s = top > size + 10 ? top - rng() % (size + 10) : 1 + rng() % (top + 1);
            } else {
                s = top + rng() % 100000;
            }
            // The model: RFC 4303 Appendix A, straight from its definition.
            bool expect_ok;
            if (s == 0) {
                expect_ok = false;
            } else if (s > top) {
                expect_ok = true;
            } else if (top - s >= size) {
                expect_ok = false;
            } else {
                expect_ok = seen.count(s) == 0;
            }
            auto r = w.accept(s);
            REQUIRE(r.has_value() == expect_ok);
            if (expect_ok) {
                seen.insert(s);
                top = std::max(top, s);
            }
        }
    }
}

TEST_CASE("ESN inference (RFC 4303 A2.2) across the 32-bit boundary", "[crypto][replay][esn]") {
    replay_window w(1024, true);
    // Start: everything maps to the first subspace; nothing before 1 exists.
    CHECK(*w.infer(1) == 1);
    CHECK(w.infer(0xffffffffu).error() == replay_error::outside_window);

    // Case A: window inside one subspace; a low number below the window is from the next.
    w.reset_to(0x1'0000'5000ull);
    CHECK(*w.infer(0x5001) == 0x1'0000'5001ull);
    CHECK(*w.infer(0x5000 - 1023) == 0x1'0000'5000ull - 1023);
    CHECK(*w.infer(0x5000 - 1024) == 0x2'0000'5000ull - 1024);
    CHECK(*w.infer(3) == 0x2'0000'0003ull);

    // Case B: the window straddles the boundary; high numbers belong to the previous subspace.
    w.reset_to(0x1'0000'0010ull);
    CHECK(*w.infer(0xfffffff0u) == 0x0'ffff'fff0ull);
    CHECK(*w.infer(0x20) == 0x1'0000'0020ull);
    CHECK(*w.infer(0) == 0x1'0000'0000ull);

    // Walking over the boundary one by one.
    w.reset_to(0xffff'fff0ull);
    for (uint64_t s = 0xffff'fff1ull; s <= 0x1'0000'0020ull; ++s) {
        auto r = w.check_low(static_cast<uint32_t>(s));
        REQUIRE(r.has_value());
        REQUIRE(*r == s);
        REQUIRE(w.accept(*r).has_value());
    }
    CHECK(w.top() == 0x1'0000'0020ull);
    CHECK(w.check_low(0xfffffff5u).error() == replay_error::replayed);
    CHECK(w.check_low(0x10).error() == replay_error::replayed);

    // Without ESN the low half is the number.
    replay_window plain(1024, false);
    CHECK(*plain.infer(0xfffffff0u) == 0xfffffff0ull);
}

TEST_CASE("a window in caller storage behaves like one that allocates; moves keep the bits",
          "[crypto][replay]") {
    for (uint32_t size : {1u, 64u, 1024u, 5000u}) {
        std::vector<uint64_t> storage(replay_window::words_for(size), ~uint64_t{0});
        replay_window inside(size, false, storage.data());  // zeroes the dirty storage
        replay_window own(size, false);
        std::mt19937_64 rng(size + 7);
        uint64_t top = 0;
        for (int n = 0; n < 5000; ++n) {
            uint64_t s = rng() % 4 == 0 ? top + rng() % (3 * size + 3) : top + 1;
            s = s > size / 2 ? s - rng() % (size / 2 + 1) : s;
            REQUIRE(inside.accept(s).has_value() == own.accept(s).has_value());
            top = std::max(top, s);
        }
        CHECK(inside.top() == own.top());
        replay_window moved(std::move(inside));
        CHECK(moved.top() == own.top());
        CHECK(moved.check(own.top()).error() == replay_error::replayed);
        replay_window assigned;
        assigned = std::move(own);
        CHECK(assigned.check(moved.top()).error() == replay_error::replayed);
        CHECK(assigned.accept(moved.top() + 1).has_value());
    }
}
