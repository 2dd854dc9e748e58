// Where the hub's threads that are not lcores run (the IKE thread, the FPM and redistribution
// threads, the management and metrics servers, the logger): on the service CPUs, never on the
// control lcore's CPU when another one exists. A thread inherits its creator's affinity, and
// every one of them is created by the main thread, which EAL pins to the control lcore: left
// alone, the IKE thread's Diffie-Hellman would share the control lcore's core and hold NHRP
// behind it.
//
// The hub computes the set once after EAL starts (service_cpus(), hub.service-cpus or
// automatic) and publishes it (set_service_cpus) before it creates those threads; each calls
// enter_service_cpus() first thing. Header-only: the threads' libraries need no other link.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace dmvpn::control {

namespace detail {
// Written by the main thread before the service threads exist (their creation orders it).
inline std::vector<unsigned> g_service_cpus;
// Service threads that could not move to the service CPUs (the hub warns and shows it).
inline std::atomic<uint64_t> g_service_cpu_failures{0};
}  // namespace detail

// The CPUs the calling thread may run on.
inline std::vector<unsigned> thread_cpus() {
    std::vector<unsigned> out;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        for (unsigned cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
            if (CPU_ISSET(cpu, &set)) {
                out.push_back(cpu);
            }
        }
    }
    return out;
}

// "0-3,6": CPU lists as the kernel writes them (Cpus_allowed_list).
inline std::string cpu_list_text(const std::vector<unsigned>& cpus) {
    std::vector<unsigned> v = cpus;
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    std::string out;
    for (size_t i = 0; i < v.size();) {
        size_t j = i;
        while (j + 1 < v.size() && v[j + 1] == v[j] + 1) {
            ++j;
        }
        out += out.empty() ? "" : ",";
        out += j == i ? fmt::format("{}", v[i]) : fmt::format("{}-{}", v[i], v[j]);
        i = j + 1;
    }
    return out.empty() ? "none" : out;
}

struct service_placement {
    std::vector<unsigned> cpus;
    std::string why;    // for the log line
    std::string error;  // non-empty: refused (a configured CPU the process may not use)
    bool shares_control = false;
};

// `allowed`: the process's CPUs before EAL pinned the main thread; `lcores`: every lcore's CPU;
// `control`: the control lcore's; `configured`: hub.service-cpus (empty: automatic, i.e. the
// allowed CPUs no lcore uses, else those but the control lcore's, else all allowed).
inline service_placement place_service_threads(const std::vector<unsigned>& allowed,
                                               const std::vector<unsigned>& lcores,
                                               const std::vector<unsigned>& control,
                                               const std::vector<unsigned>& configured) {
    auto in = [](const std::vector<unsigned>& v, unsigned c) {
        return std::find(v.begin(), v.end(), c) != v.end();
    };
    auto minus = [&](const std::vector<unsigned>& from, const std::vector<unsigned>& out) {
        std::vector<unsigned> r;
        for (unsigned c : from) {
            if (!in(out, c)) {
                r.push_back(c);
            }
        }
        return r;
    };
    service_placement p;
    if (!configured.empty()) {
        for (unsigned c : configured) {
            if (!in(allowed, c)) {
                p.error = fmt::format(
                    "hub.service-cpus: CPU {} is not one this process may run on (allowed: {})", c,
                    cpu_list_text(allowed));
                return p;
            }
        }
        p.cpus = configured;
        p.why = "hub.service-cpus";
    } else if (auto free = minus(allowed, lcores); !free.empty()) {
        p.cpus = free;
        p.why = "the CPUs no lcore uses";
    } else if (auto others = minus(allowed, control); !others.empty()) {
        p.cpus = others;
        p.why = "every CPU is an lcore's: beside the workers, off the control lcore's";
    } else {
        p.cpus = allowed;
        p.why = "one CPU for all";
    }
    p.shares_control =
        std::any_of(p.cpus.begin(), p.cpus.end(), [&](unsigned c) { return in(control, c); });
    return p;
}

// Before the service threads start; empty: they keep what they inherit (tools, tests).
inline void set_service_cpus(std::vector<unsigned> cpus) {
    detail::g_service_cpus = std::move(cpus);
}

inline const std::vector<unsigned>& service_cpus() { return detail::g_service_cpus; }

// Service threads that stayed where they were created: a CPU went offline, or the process's
// cpuset shrank, between the hub's check of the CPUs and the thread's start.
inline uint64_t service_cpu_failures() noexcept {
    return detail::g_service_cpu_failures.load(std::memory_order_relaxed);
}

// The calling thread onto the service CPUs, if the hub set them; false (and counted in
// service_cpu_failures) when the kernel refused: the thread then keeps the CPU it inherited,
// the control lcore's.
inline bool enter_service_cpus() noexcept {
    const std::vector<unsigned>& cpus = detail::g_service_cpus;
    if (cpus.empty()) {
        return true;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    for (unsigned c : cpus) {
        if (c < CPU_SETSIZE) {
            CPU_SET(c, &set);
        }
    }
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) {
        detail::g_service_cpu_failures.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    return true;
}

}  // namespace dmvpn::control
