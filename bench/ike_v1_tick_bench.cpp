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
#include <vector>

#include "tests/unit/ike_v1_many.hpp"

using namespace dmvpn;
using namespace dmvpn::ike;
using namespace dmvpn::ike::v1::testing;
using clock_type = std::chrono::steady_clock;

namespace {

// One tick of `e`, timed (microseconds to `into`), what it sends delivered.
void timed_tick(many_sas& g, v1::engine& e, std::vector<double>& into) {
    outputs o;
    auto t0 = clock_type::now();
    e.tick(g.now, o);
    into.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
    g.deliver(g.take(e, o));
}

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
    const int secs = argc > 2 ? std::max(std::atoi(argv[2]), 1) : 5;
    for (uint32_t dpd : {0u, 10u}) {
        auto s = many_settings(86400, 3600, dpd);
        s.nat_keepalive_s = 0;
        many_sas g(n, s);
        auto t0 = clock_type::now();
        g.key(0, n);
        const double setup = std::chrono::duration<double>(clock_type::now() - t0).count();
        if (g.i_installs != n) {
            std::fprintf(stderr, "only %zu of %u pairs installed\n", g.i_installs, n);
            return 1;
        }
        std::printf("%u SAs keyed in %.1f s (DPD %u s)\n", n, setup, dpd);
        std::vector<double> ti, tr;
        const int ticks = secs * 100;
        for (int k = 0; k < ticks; ++k) {
            g.now += std::chrono::milliseconds(10);
            timed_tick(g, *g.i, ti);
            timed_tick(g, *g.r, tr);
        }
        char label[96];
        std::snprintf(label, sizeof label, "initiator, %u SAs, DPD %us, %ds", n, dpd, secs);
        report(label, ti);
        std::snprintf(label, sizeof label, "responder, %u SAs, DPD %us, %ds", n, dpd, secs);
        report(label, tr);
    }
    return 0;
}
