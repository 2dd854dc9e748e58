// A fixed-size, set-associative "at most one per interval per key" limiter for worker events
// (glean per next hop, redirect per source/destination): no allocation after construction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>

namespace dmvpn::dp {

// Four-way set-associative: a key shares a 64-byte set with three others before the oldest is
// evicted, so a working set up to the table's size keeps its limits (a direct-mapped table
// thrashed with 10,000 spoke pairs and turned every transit packet into a redirect event).
// Eviction only lets an extra event through: the limiter errs towards telling the control
// lcore, never towards silence.
// Where a limiter's table lives: workers put it on hugepages (rte_zmalloc_socket, no TLB misses
// over a megabyte of sets); the default is the C++ heap. `allocate` returns 64-byte aligned
// memory or nullptr (then the heap is used).
struct limiter_memory {
    void* (*allocate)(size_t bytes) = nullptr;
    void (*release)(void* p) = nullptr;
};

class rate_limiter {
public:
    rate_limiter() = default;
    // slots (keys remembered) is rounded up to a power of two of at least one set. Allocates:
    // at worker creation.
    rate_limiter(uint32_t slots, uint64_t interval_tsc, limiter_memory mem = {})
        : _interval(interval_tsc) {
        uint32_t sets = 1;
        while (sets * ways < slots) {
            sets <<= 1;
        }
        _mask = sets - 1;
        size_t bytes = size_t{sets} * sizeof(set);
        void* p = mem.allocate != nullptr ? mem.allocate(bytes) : nullptr;
        if (p != nullptr) {
            _release = mem.release;
        } else {
            p = ::operator new(bytes, std::align_val_t{alignof(set)});
            _release = nullptr;
        }
        _sets = static_cast<set*>(p);
        for (uint32_t i = 0; i < sets; ++i) {
            new (&_sets[i]) set{};
        }
    }
    ~rate_limiter() { free(); }
    rate_limiter(const rate_limiter&) = delete;
    rate_limiter& operator=(const rate_limiter&) = delete;
    rate_limiter(rate_limiter&& o) noexcept { *this = std::move(o); }
    rate_limiter& operator=(rate_limiter&& o) noexcept {
        if (this != &o) {
            free();
            _sets = std::exchange(o._sets, nullptr);
            _release = std::exchange(o._release, nullptr);
            _interval = o._interval;
            _mask = o._mask;
        }
        return *this;
    }

    // The set `key` lives in: lets a burst prefetch every set it will check before checking.
    uint32_t set_of(uint64_t key) const noexcept { return index(key); }
    void prefetch(uint32_t set_index) const noexcept {
        __builtin_prefetch(&_sets[set_index], 1, 3);
    }

    // True when an event for `key` may go now (and records it). `now` is a TSC reading, never 0
    // (0 marks an empty way).
    bool allow(uint64_t key, uint64_t now) noexcept { return allow_in(index(key), key, now); }
    // The same with the key's set_of() already known.
    bool allow_in(uint32_t set_index, uint64_t key, uint64_t now) noexcept {
        set& s = _sets[set_index];
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

    void free() noexcept {
        if (_sets == nullptr) {
            return;
        }
        if (_release != nullptr) {
            _release(_sets);
        } else {
            ::operator delete(_sets, std::align_val_t{alignof(set)});
        }
        _sets = nullptr;
    }

    set* _sets = nullptr;
    void (*_release)(void*) = nullptr;
    uint64_t _interval = 0;
    uint32_t _mask = 0;
};

}  // namespace dmvpn::dp
