// The workers' event limiter: one event per key per interval for a working set as large as the
// table, without letting a crowd of keys turn every packet into an event.
#include <catch2/catch.hpp>

#include "dataplane/rate_limit.hpp"

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
