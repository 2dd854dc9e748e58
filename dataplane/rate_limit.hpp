// A fixed-size, set-associative "at most one per interval per key" limiter for worker events
// (glean per next hop, redirect per source/destination): no allocation after construction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>

namespace dmvpn::dp {

// Four-way sets of one cache line, two possible sets per key: a working set up to the table's
// size keeps its limits (a direct-mapped table thrashed with 10,000 spoke pairs and turned every
// transit packet into a redirect event; one set per key still let the few keys of an
// overflowing set report on every packet).
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
            p = ::operator new (bytes, std::align_val_t{alignof(set)});
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

    // Starts loading the set `key` is looked up in first (where it lives unless that set was
    // full when it arrived): lets a burst prefetch every key it will check before checking.
    void prefetch(uint64_t key) const noexcept { __builtin_prefetch(&_sets[sets_of(key).a], 1, 3); }

    // True when an event for `key` may go now (and records it). `now` is a TSC reading, never 0
    // (0 marks an empty way).
    bool allow(uint64_t key, uint64_t now) noexcept {
        auto [a, b] = sets_of(key);
        // A key already seen is found without working out a victim (the usual case: one
        // check per packet, almost always of a pair already reported).
        entry* found = find(_sets[a], key);
        if (found == nullptr && b != a) {
            found = find(_sets[b], key);
        }
        if (found != nullptr) {
            if (now - found->last < _interval) {
                return false;
            }
            found->last = now;
            return true;
        }
        // New key: the least recently used of the eight ways (an empty one first).
        entry* oldest = &_sets[a].e[0];
        for (uint32_t si : {a, b}) {
            for (entry& e : _sets[si].e) {
                if (e.last < oldest->last) {
                    oldest = &e;
                }
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

    // Two choices of set per key (the least recently used of their eight ways is evicted): a
    // crowd of keys in one set, which with one choice thrashed (five keys cycling through four
    // ways made every packet of theirs an event), now needs nine keys on the same two sets.
    // With a single set both are the same.
    struct set_pair {
        uint32_t a;
        uint32_t b;
    };
    set_pair sets_of(uint64_t key) const noexcept {
        key ^= key >> 33;
        key *= 0xff51afd7ed558ccdull;
        key ^= key >> 33;
        auto a = static_cast<uint32_t>(key) & _mask;
        auto b = static_cast<uint32_t>(key >> 32) & _mask;
        if (b == a) {
            b = a ^ 1u;
        }
        return {a, b & _mask};
    }

    static entry* find(set& s, uint64_t key) noexcept {
        for (entry& e : s.e) {
            if (e.key == key && e.last != 0) {
                return &e;
            }
        }
        return nullptr;
    }

    void free() noexcept {
        if (_sets == nullptr) {
            return;
        }
        if (_release != nullptr) {
            _release(_sets);
        } else {
            ::operator delete (_sets, std::align_val_t{alignof(set)});
        }
        _sets = nullptr;
    }

    set* _sets = nullptr;
    void (*_release)(void*) = nullptr;
    uint64_t _interval = 0;
    uint32_t _mask = 0;
};

}  // namespace dmvpn::dp
