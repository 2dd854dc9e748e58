// A fixed-size, direct-mapped "at most one per interval per key" limiter for worker events
// (glean per next hop, redirect per source/destination): no allocation after construction.
#pragma once

#include <cstdint>
#include <vector>

namespace dmvpn::dp {

// Four-way set-associative: a key shares a 64-byte set with three others before the oldest is
// evicted, so a working set up to the table's size keeps its limits (a direct-mapped table
// thrashed with 10,000 spoke pairs and turned every transit packet into a redirect event).
// Eviction only lets an extra event through: the limiter errs towards telling the control
// lcore, never towards silence.
class rate_limiter {
public:
    rate_limiter() = default;
    // slots (keys remembered) is rounded up to a power of two of at least one set. Allocates:
    // at worker creation.
    rate_limiter(uint32_t slots, uint64_t interval_tsc) : _interval(interval_tsc) {
        uint32_t sets = 1;
        while (sets * ways < slots) {
            sets <<= 1;
        }
        _mask = sets - 1;
        _sets.assign(sets, set{});
    }

    // True when an event for `key` may go now (and records it). `now` is a TSC reading, never 0
    // (0 marks an empty way).
    bool allow(uint64_t key, uint64_t now) noexcept {
        set& s = _sets[index(key)];
        entry* oldest = &s.e[0];
        for (entry& e : s.e) {
            if (e.last != 0 && e.key == key) {
                if (now - e.last < _interval) {
                    return false;
                }
                e.last = now;
                return true;
            }
            if (e.last < oldest->last) {
                oldest = &e;
            }
        }
        oldest->key = key;
        oldest->last = now;
        return true;
    }

private:
    static constexpr uint32_t ways = 4;
    struct entry {
        uint64_t key = 0;
        uint64_t last = 0;  // 0: empty
    };
    struct alignas(64) set {
        entry e[ways];
    };
    static_assert(sizeof(set) == 64, "one set per cache line");

    uint32_t index(uint64_t key) const noexcept {
        key ^= key >> 33;
        key *= 0xff51afd7ed558ccdull;
        key ^= key >> 33;
        return static_cast<uint32_t>(key) & _mask;
    }

    std::vector<set> _sets;
    uint64_t _interval = 0;
    uint32_t _mask = 0;
};

}  // namespace dmvpn::dp
