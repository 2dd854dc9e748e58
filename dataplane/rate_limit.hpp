// A fixed-size, direct-mapped "at most one per interval per key" limiter for worker events
// (glean per next hop, redirect per source/destination): no allocation after construction.
#pragma once

#include <cstdint>
#include <vector>

namespace dmvpn::dp {

// Two keys that share a slot evict each other, which only lets an extra event through: the
// limiter errs towards telling the control lcore, never towards silence.
class rate_limiter {
public:
    rate_limiter() = default;
    // slots is rounded up to a power of two. Allocates: at worker creation.
    rate_limiter(uint32_t slots, uint64_t interval_tsc) : _interval(interval_tsc) {
        uint32_t cap = 1;
        while (cap < slots) {
            cap <<= 1;
        }
        _mask = cap - 1;
        _entries.assign(cap, entry{});
    }

    // True when an event for `key` may go now (and records it).
    bool allow(uint64_t key, uint64_t now) noexcept {
        entry& e = _entries[slot(key)];
        if (e.used && e.key == key && now - e.last < _interval) {
            return false;
        }
        e.key = key;
        e.last = now;
        e.used = true;
        return true;
    }

private:
    struct entry {
        uint64_t key = 0;
        uint64_t last = 0;
        bool used = false;
    };
    uint32_t slot(uint64_t key) const noexcept {
        key ^= key >> 33;
        key *= 0xff51afd7ed558ccdull;
        key ^= key >> 33;
        return static_cast<uint32_t>(key) & _mask;
    }

    std::vector<entry> _entries;
    uint64_t _interval = 0;
    uint32_t _mask = 0;
};

}  // namespace dmvpn::dp
