// control/heap_headroom: the main arena's growth faulted in ahead of use. A process of its own:
// the glibc settings it makes are process-wide.
#include <catch2/catch.hpp>

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "control/heap_headroom.hpp"

using dmvpn::control::heap_headroom;

namespace {

uintptr_t program_break() { return static_cast<uintptr_t>(::syscall(SYS_brk, 0)); }

long minor_faults() {
    rusage u{};
    ::getrusage(RUSAGE_THREAD, &u);
    return u.ru_minflt;
}

// Small blocks, written through, as the control lcore's allocations are.
void allocate_and_touch(std::vector<void*>& keep, size_t bytes) {
    for (size_t done = 0; done < bytes; done += 1024) {
        void* p = std::malloc(1024);
        std::memset(p, 0xa5, 1024);
        keep.push_back(p);
    }
}

}  // namespace

TEST_CASE("heap headroom: what the heap grows by is faulted in before the allocator hands it out") {
    if (!dmvpn::control::heap_is_glibc) {
        WARN("built with ASan: its allocator has no brk heap, nothing to keep faulted in");
        heap_headroom h(32u << 20);
        CHECK_FALSE(h.running());
        return;
    }
    constexpr size_t headroom = 32u << 20;
    heap_headroom h(headroom);
    std::string why;
    REQUIRE(h.populate(&why));  // Linux 5.14 or later
    CHECK(why.empty());
    CHECK(h.running());
    std::vector<void*> keep;
    keep.reserve(1 << 20);
    // Allocate until the break moves: glibc grows the heap by the request and the headroom.
    uintptr_t before = program_break();
    while (program_break() == before) {
        allocate_and_touch(keep, 64 << 10);
    }
    CHECK(program_break() - before >= headroom);
    REQUIRE(h.populate(&why));  // what the thread does within 10 ms, done now
    // The next 16 MiB of small allocations come from pages already present: without the
    // headroom they would fault about 4,096 times (one per 4 KiB page).
    long faults = minor_faults();
    allocate_and_touch(keep, 16u << 20);
    long taken = minor_faults() - faults;
    INFO("minor faults taking 16 MiB of the heap: " << taken);
    CHECK(taken < 256);
    heap_headroom::counters c = h.snapshot();
    CHECK(c.populations >= 2);
    CHECK(c.heap_bytes >= 16u << 20);
    for (void* p : keep) {
        std::free(p);
    }
}

TEST_CASE("heap headroom: 0 leaves glibc's defaults and starts no thread") {
    heap_headroom h(0);
    CHECK_FALSE(h.running());
    CHECK(h.snapshot().populations == 0);
}
