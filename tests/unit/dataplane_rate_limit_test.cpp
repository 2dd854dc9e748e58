// The workers' event limiter: one event per key per interval for a working set as large as the
// table, without letting a crowd of keys turn every packet into an event.
#include <catch2/catch.hpp>

#include "dataplane/rate_limit.hpp"
#include "dataplane/token_bucket.hpp"

using dmvpn::dp::rate_limiter;

TEST_CASE("each of 10,000 keys gets one event per interval") {
    constexpr uint64_t interval = 1000;
    rate_limiter limit(65536, interval);
    uint64_t now = 1;
    uint32_t allowed = 0;
    for (uint64_t k = 0; k < 10000; ++k) {
        allowed += limit.allow(k * 0x10001, now) ? 1 : 0;
    }
    CHECK(allowed == 10000);
    // The same keys again inside the interval, twice: a table of 65,536 keys in 4-way sets with
    // two choices of set keeps every one of them (a direct-mapped table of 4,096 lost most; one
    // choice of set lost the keys of overflowing sets, and lost them on every pass).
    for (int pass = 0; pass < 2; ++pass) {
        uint32_t again = 0;
        for (uint64_t k = 0; k < 10000; ++k) {
            again += limit.allow(k * 0x10001, now + interval / 2) ? 1 : 0;
        }
        CHECK(again == 0);
    }
    // After the interval (counted from the latest event) every key may speak once more.
    uint32_t later = 0;
    for (uint64_t k = 0; k < 10000; ++k) {
        later += limit.allow(k * 0x10001, now + 2 * interval) ? 1 : 0;
    }
    CHECK(later == 10000);
}

TEST_CASE("a key evicted by a crowd is allowed again, never silenced") {
    rate_limiter limit(4, 1000000);  // one set of four ways
    CHECK(limit.allow(1, 10));
    CHECK_FALSE(limit.allow(1, 20));
    for (uint64_t k = 2; k <= 5; ++k) {
        CHECK(limit.allow(k, 30 + k));  // the fifth key evicts the oldest, key 1
    }
    CHECK(limit.allow(1, 50));
    CHECK_FALSE(limit.allow(5, 60));
}

// The token bucket behind the punt budgets (per class, per worker, in TSC ticks) and the
// control lcore's ICMP error budget (in nanoseconds).
TEST_CASE("token bucket: a burst, then the rate, never more") {
    using dmvpn::dp::token_bucket;
    constexpr uint64_t hz = 1000000;  // ticks per second
    token_bucket b(100, 10, hz);      // 100 per second, 10 at once
    uint64_t now = 5 * hz;
    uint32_t taken = 0;
    for (int i = 0; i < 50; ++i) {
        taken += b.take(now) ? 1 : 0;
    }
    CHECK(taken == 10);  // the burst
    // One token every 10,000 ticks: none at 9,999, one at 10,000.
    CHECK_FALSE(b.take(now + 9999));
    CHECK(b.take(now + 10000));
    CHECK_FALSE(b.take(now + 10000));
    // Over ten seconds at 1,000 tries a second: the rate, plus the burst refilled at most once.
    taken = 0;
    for (uint64_t t = 0; t < 10 * hz; t += hz / 1000) {
        taken += b.take(now + 20000 + t) ? 1 : 0;
    }
    CHECK(taken >= 999);
    CHECK(taken <= 1000 + 1);
    // After a long silence it holds the burst again, not more.
    taken = 0;
    for (int i = 0; i < 50; ++i) {
        taken += b.take(now + 100 * hz) ? 1 : 0;
    }
    CHECK(taken == 10);
}

TEST_CASE("token bucket: unlimited by default and with rate 0; per-worker shares round up") {
    using namespace dmvpn::dp;
    token_bucket open;
    token_bucket zero(0, 5, 1000);
    for (int i = 0; i < 1000; ++i) {
        REQUIRE(open.take(1));
        REQUIRE(zero.take(1));
    }
    CHECK(share_of(1000, 3) == 334);  // 3 workers x 334 >= 1000
    CHECK(share_of(1, 4) == 1);
    CHECK(share_of(1000, 1) == 1000);
    CHECK(burst_of(2000) == 200);
    CHECK(burst_of(100) == 32);
    CHECK(burst_of(5) == 5);
}
