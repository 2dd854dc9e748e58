// The control lcore's heap kept faulted in ahead of its use (hub.heap-headroom-mb).
//
// The control lcore is the process's main thread, so its allocations come from glibc's main
// arena: the [heap] that brk grows. Linux maps fresh heap pages lazily, so each page the
// control lcore touches first costs it a page fault: microseconds each in a virtual machine,
// and a storm of 10,000 spokes measured about 7,500 of them on the control lcore (bench/README.md,
// "The control lcore's page faults"), each a stall of the NHRP packets queued behind it.
//
// With a headroom of H bytes: glibc grows the heap H beyond each need (M_TOP_PAD) and keeps up
// to 4H free at its top (M_TRIM_THRESHOLD), allocations up to 32 MiB come from the heap rather
// than a fresh mmap each (M_MMAP_THRESHOLD: a large hash table's rehash), and a service thread
// ("dmvpn-heap", on the service CPUs) looks at the break every 10 ms and has the kernel fault in
// what the heap grew by (madvise MADV_POPULATE_WRITE: it changes no byte, so it may run beside
// the allocator): the free top the control lcore allocates from next. The whole heap is faulted
// in at start, before the loop. The cost: up to H (at most 4H after large frees) more resident
// memory, held.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#if defined(__SANITIZE_ADDRESS__)
#define DMVPN_HEAP_IS_GLIBC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DMVPN_HEAP_IS_GLIBC 0
#endif
#endif
#ifndef DMVPN_HEAP_IS_GLIBC
#define DMVPN_HEAP_IS_GLIBC 1  // not under ASan, whose allocator maps its own memory
#endif

namespace dmvpn::control {

// Whether allocations come from glibc's heap at all (under ASan they do not: no headroom).
inline constexpr bool heap_is_glibc = DMVPN_HEAP_IS_GLIBC != 0;

class heap_headroom {
public:
    struct counters {
        uint64_t populations = 0;  // madvise calls that succeeded
        uint64_t failures = 0;     // and those that did not (the heap shrank meanwhile)
        uint64_t heap_bytes = 0;   // the heap's size at the last one
    };

    // Sets glibc's heap policy and faults the first `bytes` in, from the calling thread (the
    // main one: its arena is the heap); then starts the thread. `bytes` 0: nothing at all.
    explicit heap_headroom(size_t bytes);
    ~heap_headroom();
    heap_headroom(const heap_headroom&) = delete;
    heap_headroom& operator=(const heap_headroom&) = delete;

    // Faults in what the heap grew by since the last call (all of it the first time); false
    // (and why in `error`) when the kernel has no MADV_POPULATE_WRITE (before Linux 5.14), the
    // heap is not found or it shrank meanwhile.
    bool populate(std::string* error = nullptr);

    counters snapshot() const;
    size_t bytes() const noexcept { return _bytes; }
    bool running() const noexcept { return _thread.joinable(); }

private:
    void run();

    size_t _bytes;
    std::mutex _populate_mu;      // populate() from the thread and from a caller
    uintptr_t _base = 0;          // the heap's start (it does not move)
    uintptr_t _populated_to = 0;  // the break at the last population: below it, all resident
    std::atomic<uint64_t> _populations{0};
    std::atomic<uint64_t> _failures{0};
    std::atomic<uint64_t> _heap_bytes{0};
    std::mutex _mu;
    std::condition_variable _cv;
    bool _stop = false;
    std::thread _thread;
};

}  // namespace dmvpn::control
