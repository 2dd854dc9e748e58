// The cost of one log call on the calling thread: `build/bench/log-bench [calls] [rate]` logs
// `calls` lines (default 10,000) at `rate` a second (default 2,000: about an IKE storm's lines
// before the rate limiter) through log::write (format, then write(2) or the logger thread's
// queue), with stderr on /dev/null, a file in /tmp, and a pipe whose reader is slow (4 KiB every
// 40 ms, 100 KiB/s, half the lines' rate: journald or a pager that falls behind), each synchronous
// (as before the logger thread, and as tools still log) and with the logger thread (as the hub
// logs). Prints the calling thread's time per call: p50 / p99 / p99.9 / max, and lines dropped. Not
// a test.
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "bench/quantile.hpp"
#include "control/cpu_placement.hpp"
#include "control/log.hpp"

using namespace dmvpn;
using clock_type = std::chrono::steady_clock;

namespace {

struct result {
    std::vector<int64_t> ns;
    uint64_t dropped = 0;
};

// Logs `calls` lines paced at `rate` a second (a spin until each one's time) with stderr on `fd`.
result run(int fd, bool async, int calls, int rate, const std::vector<unsigned>& logger_cpus) {
    result r;
    r.ns.reserve(static_cast<size_t>(calls));
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    if (async) {
        log::async_config c;
        c.cpus = logger_cpus;
        log::start_async(std::move(c));
    }
    uint64_t dropped_before = log::dropped_lines();
    auto period = std::chrono::nanoseconds(1000000000 / std::max(rate, 1));
    auto next = clock_type::now();
    for (int i = 0; i < calls; ++i) {
        while (clock_type::now() < next) {
        }
        next += period;
        // The hub's busiest line in a storm, at its length.
        auto t0 = clock_type::now();
        log::write(log::level::notice, "",
                   fmt::format("spoke 10.0.{}.{}/32 up on tun0 at NBMA 100.64.{}.{}: registered",
                               i >> 8 & 255, i & 255, i >> 8 & 255, i & 255));
        r.ns.push_back(
            std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count());
    }
    r.dropped = log::dropped_lines() - dropped_before;
    if (async) {
        log::stop_async();
    }
    dup2(saved, STDERR_FILENO);
    close(saved);
    return r;
}

void print(const char* target, bool async, result r) {
    std::printf("%-28s %-6s %8.2f %8.2f %8.2f %10.1f %8llu\n", target, async ? "async" : "sync",
                static_cast<double>(dmvpn::bench::quantile(r.ns, 0.5)) / 1000,
                static_cast<double>(dmvpn::bench::quantile(r.ns, 0.99)) / 1000,
                static_cast<double>(dmvpn::bench::quantile(r.ns, 0.999)) / 1000,
                static_cast<double>(*std::max_element(r.ns.begin(), r.ns.end())) / 1000,
                static_cast<unsigned long long>(r.dropped));
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
    int calls = argc > 1 ? std::atoi(argv[1]) : 10000;
    int rate = argc > 2 ? std::atoi(argv[2]) : 2000;
    if (calls <= 0 || rate <= 0) {
        std::fprintf(stderr, "usage: log-bench [calls] [rate]\n");
        return 2;
    }
    log::init("log-bench", log::sink_format::plain);
    // As in the hub: the logger thread keeps off the caller's CPU (when there is another).
    std::vector<unsigned> logger = control::thread_cpus();
    if (int cpu = sched_getcpu(); cpu >= 0) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(static_cast<unsigned>(cpu), &one);
        std::erase(logger, static_cast<unsigned>(cpu));
        if (!logger.empty() && sched_setaffinity(0, sizeof one, &one) == 0) {
            std::printf("caller on CPU %d, the logger thread on the others\n", cpu);
        } else {
            logger.clear();  // one CPU: both on it
        }
    }
    std::printf("%d calls at %d/s; per call on the calling thread, us\n", calls, rate);
    std::printf("%-28s %-6s %8s %8s %8s %10s %8s\n", "stderr", "mode", "p50", "p99", "p99.9", "max",
                "dropped");
    for (bool async : {false, true}) {
        int null = open("/dev/null", O_WRONLY);
        print("/dev/null", async, run(null, async, calls, rate, logger));
        close(null);
    }
    for (bool async : {false, true}) {
        char path[] = "/tmp/log-bench-XXXXXX";
        int fd = mkstemp(path);
        print("file in /tmp", async, run(fd, async, calls, rate, logger));
        close(fd);
        unlink(path);
    }
    for (bool async : {false, true}) {
        int p[2];
        if (pipe(p) != 0) {
            return 1;
        }
        std::atomic<bool> done{false};
        std::thread reader([&] {
            char buf[4096];
            while (!done) {
                if (::read(p[0], buf, sizeof buf) <= 0) {
                    return;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(40));
            }
        });
        result r = run(p[1], async, calls, rate, logger);
        done = true;
        close(p[1]);  // the reader's next read ends
        reader.join();
        close(p[0]);
        print("pipe, reader at 100 KiB/s", async, std::move(r));
    }
    return 0;
}
