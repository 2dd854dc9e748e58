// The IKEv1 engine's tick() cost with N ISAKMP SAs and their IPsec SA pairs up (default 10,000):
// one initiator engine with N tunnels (a distinct NBMA address each) keys Main Mode + Quick
// Mode (PSK, group 19, no PFS) with one responder engine, on a fake clock; then both engines
// tick every 10 ms for `seconds` of fake time with nothing due (no DPD, no NAT), and once more
// over a span where every SA's DPD comes due. Prints the mean and p99 of one tick() in
// microseconds per engine. Usage: ike-v1-tick-bench [N] [seconds]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <vector>

#include "control/ike/v1_engine.hpp"

using namespace dmvpn;
using namespace dmvpn::ike;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr uint32_t hub = 0xc6336401;  // 198.51.100.1

config::ike_settings settings(uint32_t dpd_s) {
    config::ike_settings s;
    s.version = 1;
    const std::string key = "bench-key";
    s.psks.push_back({"", bytes(key.begin(), key.end())});
    using pol = config::ike_settings::isakmp_policy;
    s.isakmp_policies = {pol{7, 128, 2, 19, 1, 86400}};
    s.esp_proposals = {{12, 128, 2, false}};
    s.child_lifetime_s = 3600;
    s.dpd_interval_s = dpd_s;
    s.dpd_retries = 3;
    s.nat_keepalive_s = 0;
    return s;
}

std::unique_ptr<v1::engine> make(const config::ike_settings& s,
                                 std::vector<tunnel_binding> tunnels) {
    config::ipsec_profile p;
    p.name = "dmvpn";
    p.ike = s;
    auto r = v1::engine::create({p}, std::move(tunnels));
    if (!r) {
        std::fprintf(stderr, "engine: %s\n", r.error().c_str());
        std::exit(1);
    }
    return std::move(r.value());
}

struct rig {
    std::unique_ptr<v1::engine> i, r;
    std::map<uint32_t, uint32_t> tunnel_of;  // initiator address -> its tunnel
    time_point now = time_point{} + std::chrono::seconds(1000);
    size_t installs = 0;

    // Acks the installs, returns what is to be sent.
    std::vector<datagram> take(v1::engine& e, outputs& o) {
        for (auto& req : o.requests) {
            if (auto* in = std::get_if<install_child>(&req)) {
                ++installs;
                e.installed(in->sa.id, now, o);
            }
        }
        o.requests.clear();
        std::vector<datagram> sent = std::move(o.send);
        o.send.clear();
        return sent;
    }
    void deliver(std::vector<datagram> q) {
        while (!q.empty()) {
            std::vector<datagram> next;
            for (auto& d : q) {
                const bool to_r = d.dst == hub;
                v1::engine& dst = to_r ? *r : *i;
                d.tunnel = to_r ? 0 : tunnel_of[d.dst];
                outputs o;
                dst.on_datagram(d, now, o);
                for (auto& x : take(dst, o)) {
                    next.push_back(std::move(x));
                }
            }
            q = std::move(next);
        }
    }
    void tick_both(std::vector<double>& ti, std::vector<double>& tr) {
        for (auto* e : {i.get(), r.get()}) {
            outputs o;
            auto t0 = clock_type::now();
            e->tick(now, o);
            auto us = std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
            (e == i.get() ? ti : tr).push_back(us);
            deliver(take(*e, o));
        }
    }
};

void report(const char* what, std::vector<double> v) {
    std::sort(v.begin(), v.end());
    double sum = 0;
    for (double x : v) {
        sum += x;
    }
    std::printf("%-44s ticks %6zu  mean %9.1f us  p99 %9.1f us  max %9.1f us\n", what, v.size(),
                sum / double(v.size()), v[v.size() * 99 / 100], v.back());
}

}  // namespace

int main(int argc, char** argv) {
    const uint32_t n = argc > 1 ? uint32_t(std::atoi(argv[1])) : 10000;
    const int secs = argc > 2 ? std::atoi(argv[2]) : 5;
    for (uint32_t dpd : {0u, 10u}) {
        rig g;
        std::vector<tunnel_binding> tunnels;
        for (uint32_t k = 0; k < n; ++k) {
            const uint32_t addr = 0x0a000000 + 0x100 + k;  // 10.0.1.0 on
            tunnels.push_back({k, addr, "dmvpn"});
            g.tunnel_of[addr] = k;
        }
        g.i = make(settings(dpd), tunnels);
        g.r = make(settings(dpd), {{0, hub, "dmvpn"}});
        auto t0 = clock_type::now();
        for (uint32_t k = 0; k < n; ++k) {
            outputs o;
            g.i->initiate(k, hub, g.now, o);
            g.deliver(g.take(*g.i, o));
        }
        const double setup = std::chrono::duration<double>(clock_type::now() - t0).count();
        if (g.installs != 2 * size_t{n}) {
            std::fprintf(stderr, "only %zu of %u pairs installed\n", g.installs / 2, n);
            return 1;
        }
        std::printf("%u SAs keyed in %.1f s (DPD %u s)\n", n, setup, dpd);
        std::vector<double> ti, tr;
        const int ticks = secs * 100;
        for (int k = 0; k < ticks; ++k) {
            g.now += std::chrono::milliseconds(10);
            g.tick_both(ti, tr);
        }
        char label[96];
        std::snprintf(label, sizeof label, "initiator, %u SAs, DPD %us, %ds", n, dpd, secs);
        report(label, ti);
        std::snprintf(label, sizeof label, "responder, %u SAs, DPD %us, %ds", n, dpd, secs);
        report(label, tr);
    }
    return 0;
}
