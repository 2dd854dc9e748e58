#include "control/heap_headroom.hpp"

#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "control/cpu_placement.hpp"
#include "control/log.hpp"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14 (uapi asm-generic/mman-common.h)
#endif

namespace dmvpn::control {

namespace {

constexpr auto period = std::chrono::milliseconds(10);
constexpr int largest_from_heap = 32 << 20;  // M_MMAP_THRESHOLD's ceiling on 64-bit

uintptr_t program_break() { return static_cast<uintptr_t>(::syscall(SYS_brk, 0)); }

// The start of the [heap] mapping in /proc/self/maps, 0 when there is none yet.
uintptr_t heap_start() {
    FILE* f = std::fopen("/proc/self/maps", "re");
    if (f == nullptr) {
        return 0;
    }
    char line[512];
    uintptr_t start = 0;
    while (std::fgets(line, sizeof line, f) != nullptr) {
        if (std::strstr(line, "[heap]") != nullptr) {
            unsigned long a = 0;
            if (std::sscanf(line, "%lx-", &a) == 1) {
                start = a;
            }
            break;
        }
    }
    std::fclose(f);
    return start;
}

}  // namespace

heap_headroom::heap_headroom(size_t bytes) : _bytes(heap_is_glibc ? bytes : 0) {
    if (_bytes == 0) {
        return;
    }
    (void)mallopt(M_TOP_PAD, static_cast<int>(_bytes));
    (void)mallopt(M_TRIM_THRESHOLD, static_cast<int>(4 * _bytes));
    (void)mallopt(M_MMAP_THRESHOLD, largest_from_heap);
    std::string why;
    if (!populate(&why)) {
        log::warning("hub.heap-headroom-mb: {}; the control lcore's heap pages fault on first use",
                     why);
        return;
    }
    log::info(
        "heap headroom: the heap grows {} MiB ahead of the control lcore's allocations, "
        "faulted in by dmvpn-heap within {} ms",
        _bytes >> 20, period.count());
    _thread = std::thread([this] { run(); });
    pthread_setname_np(_thread.native_handle(), "dmvpn-heap");
}

heap_headroom::~heap_headroom() {
    if (!_thread.joinable()) {
        return;
    }
    {
        std::lock_guard<std::mutex> g(_mu);
        _stop = true;
    }
    _cv.notify_all();
    _thread.join();
}

bool heap_headroom::populate(std::string* error) {
    std::lock_guard<std::mutex> g(_populate_mu);
    if (_base == 0) {
        _base = heap_start();
        _populated_to = _base;
    }
    uintptr_t brk = program_break();
    if (_base == 0 || brk <= _base) {
        ++_failures;
        if (error != nullptr) {
            *error = "no [heap] mapping found";
        }
        return false;
    }
    _heap_bytes.store(brk - _base, std::memory_order_relaxed);
    if (brk <= _populated_to) {
        _populated_to = brk;  // trimmed (or unchanged): what remains is resident
        return true;
    }
    // Only what the heap grew by since the last call: pages once faulted in stay so (glibc
    // gives the main arena's memory back only by lowering the break).
    auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    uintptr_t from = _populated_to & ~(page - 1);
    uintptr_t to = (brk + page - 1) & ~(page - 1);
    // Huge pages where the kernel has them to give (transparent_hugepage "madvise" or
    // "always"): the control lcore's working set is spread over the heap, and each 4 KiB
    // page of it costs a TLB entry (a two-level page walk in a VM). Ignored where unsupported.
    (void)::madvise(reinterpret_cast<void*>(from), to - from, MADV_HUGEPAGE);
    // Changes no byte: pages already present are skipped, absent ones are faulted in writable.
    if (::madvise(reinterpret_cast<void*>(from), to - from, MADV_POPULATE_WRITE) != 0) {
        int e = errno;
        ++_failures;
        if (error != nullptr) {
            *error = e == EINVAL ? std::string("the kernel has no MADV_POPULATE_WRITE (Linux 5.14)")
                                 : fmt::format("madvise: {}", std::strerror(e));
        }
        return false;  // a heap trimmed meanwhile: the next call starts from the new break
    }
    _populated_to = brk;
    ++_populations;
    return true;
}

heap_headroom::counters heap_headroom::snapshot() const {
    counters c;
    c.populations = _populations.load(std::memory_order_relaxed);
    c.failures = _failures.load(std::memory_order_relaxed);
    c.heap_bytes = _heap_bytes.load(std::memory_order_relaxed);
    return c;
}

void heap_headroom::run() {
    enter_service_cpus();  // off the control lcore's CPU
    std::unique_lock<std::mutex> lk(_mu);
    while (!_cv.wait_for(lk, period, [this] { return _stop; })) {
        lk.unlock();
        (void)populate();  // a heap trimmed meanwhile fails once, counted
        lk.lock();
    }
}

}  // namespace dmvpn::control
