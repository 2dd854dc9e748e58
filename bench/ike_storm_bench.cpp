// The IKEv2 engine's cost per handshake as the number of IKE SAs grows, in one process, no
// DPDK, repeatable: one initiator engine with N tunnels (a distinct NBMA address each, as the
// spoke emulator) keys N IKE SAs + first CHILD_SAs with one responder engine (the hub) on a
// fake clock, PSK with bench/ike's proposals (aes128gcm16-prfsha256-x25519, ESP aes128gcm16,
// no DPD, no NAT keepalives, cookie-threshold 100000). Handshakes start `rate` a second of fake
// time; both engines tick every 10 ms of it, as the IKE thread does; installs are acknowledged
// at once. With `usage` the responder also takes, every second of fake time, a usage report
// of every CHILD_SA it installed (what hub::ike_usage posted to the IKE thread once a second).
//
// Prints, per batch of handshakes, the responder's and the initiator's thread CPU time per
// handshake (CLOCK_THREAD_CPUTIME_ID around each engine's calls), and what one usage report
// cost. Under `valgrind --tool=callgrind --collect-atstart=no` only the responder's calls are
// collected and each batch is dumped on its own (callgrind.out.PID.K): instructions per
// handshake by batch, the figure a shared machine does not distort.
//
// Usage: ike-storm-bench [N] [rate] [batch] [usage 0|1]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "control/ike/engine.hpp"
#include "control/ike/message.hpp"

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define STORM_COLLECT() CALLGRIND_TOGGLE_COLLECT
#define STORM_DUMP(what) CALLGRIND_DUMP_STATS_AT(what)
#else
#define STORM_COLLECT()
#define STORM_DUMP(what) (void)(what)
#endif

using namespace dmvpn;
using namespace dmvpn::ike;

namespace {

constexpr uint32_t hub = 0xc6336401;          // 198.51.100.1
constexpr uint32_t first_spoke = 0x64400010;  // 100.64.0.16 on

double thread_cpu_s() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

config::ike_settings storm_settings() {
    config::ike_settings s;
    const std::string key = "storm-bench-key";
    s.psks.push_back({"", bytes(key.begin(), key.end())});
    s.proposals.push_back({encr_id::aes_gcm_16, 128, integ_id::none, prf_id::hmac_sha2_256, {31}});
    s.esp_proposals = {{encr_id::aes_gcm_16, 128, integ_id::none, false}};
    s.dpd_interval_s = 0;
    s.nat_keepalive_s = 0;
    s.cookie_threshold = 100000;
    return s;
}

std::unique_ptr<engine> make(const config::ike_settings& s, std::vector<tunnel_binding> t) {
    config::ipsec_profile p;
    p.name = "dmvpn";
    p.ike = s;
    auto e = engine::create({p}, std::move(t));
    if (!e) {
        throw std::runtime_error(e.error());
    }
    return std::move(e.value());
}

struct storm {
    std::unique_ptr<engine> i, r;
    uint32_t n;
    time_point now = time_point{} + std::chrono::seconds(1000);
    double r_cpu = 0, i_cpu = 0;  // thread CPU seconds in each engine's calls
    size_t r_installs = 0, i_installs = 0;
    std::vector<uint64_t> r_children;  // the responder's installed CHILD_SAs (usage reports)

    explicit storm(uint32_t count) : n(count) {
        std::vector<tunnel_binding> t;
        for (uint32_t k = 0; k < n; ++k) {
            t.push_back({k, first_spoke + k, "dmvpn"});
        }
        i = make(storm_settings(), std::move(t));
        r = make(storm_settings(), {{0, hub, "dmvpn"}});
    }

    // Runs `f` on engine `e`, its thread CPU time charged to that engine (and, for the
    // responder, collected by callgrind).
    template <typename F>
    void on(engine& e, F&& f) {
        const bool resp = &e == r.get();
        if (resp) {
            STORM_COLLECT();
        }
        const double t0 = thread_cpu_s();
        f();
        (resp ? r_cpu : i_cpu) += thread_cpu_s() - t0;
        if (resp) {
            STORM_COLLECT();
        }
    }

    // What `e` asked for: installs acknowledged at once (the acks' outputs too); datagrams
    // returned for delivery.
    std::vector<datagram> take(engine& e, outputs& o) {
        const bool resp = &e == r.get();
        std::vector<datagram> out;
        while (!o.send.empty() || !o.requests.empty()) {
            for (auto& d : o.send) {
                out.push_back(std::move(d));
            }
            o.send.clear();
            std::vector<request> reqs = std::move(o.requests);
            o.requests.clear();
            for (auto& q : reqs) {
                if (auto* in = std::get_if<install_child>(&q)) {
                    (resp ? r_installs : i_installs) += 1;
                    if (resp) {
                        r_children.push_back(in->sa.id);
                    }
                    const uint64_t id = in->sa.id;
                    on(e, [&] { e.installed(id, now, o); });
                }
            }
        }
        return out;
    }

    void deliver(std::vector<datagram> q) {
        while (!q.empty()) {
            std::vector<datagram> next;
            for (auto& d : q) {
                const bool to_r = d.dst == hub;
                d.tunnel = to_r ? 0 : d.dst - first_spoke;
                engine& dst = to_r ? *r : *i;
                outputs o;
                on(dst, [&] { dst.on_datagram(d, now, o); });
                for (auto& x : take(dst, o)) {
                    next.push_back(std::move(x));
                }
            }
            q = std::move(next);
        }
    }

    void tick(engine& e) {
        outputs o;
        on(e, [&] { e.tick(now, o); });
        deliver(take(e, o));
    }
};

}  // namespace

int main(int argc, char** argv) {
    const uint32_t n = argc > 1 ? uint32_t(std::atoi(argv[1])) : 10000;
    const double rate = argc > 2 ? std::max(std::atof(argv[2]), 1.0) : 1000;
    const uint32_t batch = argc > 3 ? std::max<uint32_t>(uint32_t(std::atoi(argv[3])), 1) : 1000;
    const bool usage = argc > 4 && std::atoi(argv[4]) != 0;
    storm s(n);
    const auto step = std::chrono::milliseconds(10);
    const auto start = s.now;
    time_point next_usage = start + std::chrono::seconds(1);
    double usage_cpu = 0, usage_max = 0;
    size_t usage_reports = 0, usage_rows = 0;
    double r0 = 0, i0 = 0, u0 = 0;
    std::printf("%u handshakes at %.0f/s of fake time, batches of %u, usage reports %s\n", n, rate,
                batch, usage ? "every second" : "off");
    std::printf("%-14s %14s %14s %12s %14s\n", "handshakes", "responder ms", "initiator ms",
                "SAs (resp)", "usage ms/s");
    for (uint32_t k = 0; k < n; ++k) {
        const auto due = start + std::chrono::duration_cast<clock::duration>(
                                     std::chrono::duration<double>(double(k) / rate));
        while (s.now + step <= due) {
            s.now += step;
            s.tick(*s.i);
            s.tick(*s.r);
            if (usage && s.now >= next_usage) {
                next_usage += std::chrono::seconds(1);
                std::vector<child_usage> rows;
                rows.reserve(s.r_children.size());
                for (uint64_t id : s.r_children) {
                    rows.push_back(child_usage{id, 0, 0, 0, 0});
                }
                outputs o;
                const double t0 = thread_cpu_s();
                s.on(*s.r, [&] { s.r->usage(rows, s.now, o); });
                const double dt = thread_cpu_s() - t0;
                usage_cpu += dt;
                usage_max = std::max(usage_max, dt);
                ++usage_reports;
                usage_rows += rows.size();
                s.deliver(s.take(*s.r, o));
            }
        }
        outputs o;
        s.on(*s.i, [&] { s.i->initiate(k, hub, s.now, o); });
        s.deliver(s.take(*s.i, o));
        if ((k + 1) % batch == 0 || k + 1 == n) {
            const uint32_t b = (k % batch) + 1;
            char label[32];
            std::snprintf(label, sizeof label, "%u-%u", k + 1 - b, k + 1);
            STORM_DUMP(label);
            std::printf("%-14s %14.4f %14.4f %12zu %14.3f\n", label, (s.r_cpu - r0) * 1e3 / b,
                        (s.i_cpu - i0) * 1e3 / b, s.r_installs,
                        usage_reports == 0 ? 0.0 : (usage_cpu - u0) * 1e3 * rate / b);
            r0 = s.r_cpu;
            i0 = s.i_cpu;
            u0 = usage_cpu;
        }
    }
    std::printf(
        "total: responder %.3f s CPU (%.4f ms a handshake, %.0f a CPU second), initiator %.3f "
        "s; %zu / %zu CHILD_SAs installed (responder / initiator)\n",
        s.r_cpu, s.r_cpu * 1e3 / n, n / s.r_cpu, s.i_cpu, s.r_installs, s.i_installs);
    if (usage_reports != 0) {
        std::printf("usage reports: %zu, %zu rows, %.3f ms each on average, %.3f ms at most\n",
                    usage_reports, usage_rows, usage_cpu * 1e3 / double(usage_reports),
                    usage_max * 1e3);
    }
    return s.r_installs == n && s.i_installs == n ? 0 : 1;
}
