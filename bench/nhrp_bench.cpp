// NHRP server benchmark: registrations/s and resolutions/s on one core with 100,000 and
// 1,000,000 registered spokes, memory per cache entry, request-to-reply latency inside the
// process. Prints a table and writes the rows as JSON (argv[1], default bench/results/nhrp.json).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "bench/quantile.hpp"
#include "control/nhrp/packet.hpp"
#include "control/nhrp/server.hpp"
#include "dataplane/wire/checksum.hpp"
#include "dataplane/wire/reader.hpp"

using namespace dmvpn::nhrp;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr uint32_t hub_overlay = 0x0a000001;      // 10.0.0.1/8: room for a million spokes
constexpr uint32_t hub_nbma = 0xc6336401;         // 198.51.100.1
constexpr uint32_t spoke_nbma_base = 0x64400000;  // 100.64.0.0/10

uint32_t spoke_overlay(uint32_t i) { return 0x0a000002 + i; }
uint32_t spoke_nbma(uint32_t i) { return spoke_nbma_base + i; }

bytes ip_bytes(uint32_t a) {
    bytes b(4);
    dmvpn::wire::store_be32(b.data(), a);
    return b;
}

// A Cisco-shaped request (Responder, Fwd, Rev, Auth, End), built once by the codec; the loop
// patches addresses and the checksum into a copy, as a spoke population would send them.
bytes request_template(op type, uint16_t flags, uint8_t prefix) {
    packet p;
    p.hdr.type = type;
    p.hdr.hop_count = 255;
    p.flags = flags;
    p.request_id = 1;
    p.src_nbma = ip_bytes(spoke_nbma(0));
    p.src_proto = ip_bytes(spoke_overlay(0));
    p.dst_proto = ip_bytes(hub_overlay);
    cie c;
    c.prefix_length = prefix;
    c.mtu = 1514;
    c.holding_time = 7200;
    p.cies.push_back(c);
    p.has_extension_area = true;
    for (uint16_t t : {ext::responder_address, ext::forward_transit, ext::reverse_transit}) {
        extension e;
        e.type = t;
        e.compulsory = true;
        p.extensions.push_back(e);
    }
    extension a;
    a.type = ext::authentication;
    a.compulsory = true;
    a.auth_spi = 1;
    a.data = {'b', 'e', 'n', 'c', 'h'};
    p.extensions.push_back(a);
    extension end;
    end.type = ext::end;
    end.compulsory = true;
    p.extensions.push_back(end);
    auto b = build(p);
    if (!b) {
        std::fprintf(stderr, "template build failed\n");
        std::exit(1);
    }
    return *b;
}

// Offsets in the template: request ID 24, src NBMA 28, src proto 32, dst proto 36, checksum 12.
void patch(bytes& pkt, uint32_t request_id, uint32_t nbma, uint32_t src, uint32_t dst) {
    dmvpn::wire::store_be32(pkt.data() + 24, request_id);
    dmvpn::wire::store_be32(pkt.data() + 28, nbma);
    dmvpn::wire::store_be32(pkt.data() + 32, src);
    dmvpn::wire::store_be32(pkt.data() + 36, dst);
    dmvpn::wire::store_be16(pkt.data() + 12, 0);
    dmvpn::wire::store_be16(pkt.data() + 12, dmvpn::wire::inet_checksum(pkt));
}

// This machine is shared: wall-clock rates count the time other processes held the core. The
// thread's own CPU time is what "on one core" means; both are reported.
double thread_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct rate {
    double cpu = 0;
    double wall = 0;
};

struct row {
    std::string name;
    size_t spokes = 0;
    double ops_per_s = 0;
    double wall_ops_per_s = 0;
    double p50_us = 0;
    double p99_us = 0;
    double bytes_per_entry = 0;
};

size_t rss_bytes() {
    std::ifstream statm("/proc/self/statm");
    size_t pages = 0;
    size_t resident = 0;
    statm >> pages >> resident;
    return resident * 4096;
}

server make_server(size_t spokes) {
    server_config c;
    tunnel_config t;
    t.id = 1;
    t.overlay_address = hub_overlay;
    t.overlay_prefix_len = 8;
    t.nbma_address = hub_nbma;
    t.authentication = "bench";
    t.max_cache_entries = spokes + 16;
    // The fake clock runs a microsecond a request: the admission rates (per tunnel, in all, and
    // for the other packets per source) would turn most of it away. Measured here is the
    // server's own work; tests/unit/nhrp_server_test.cpp proves the limits.
    t.registration_rate_per_s = 0;
    t.packet_rate_per_s = 0;
    c.tunnels.push_back(std::move(t));
    c.initial_cache_capacity = spokes;  // sized up front: no rehash while spokes register
    c.global_registration_rate_per_s = 0;
    c.packet_rate_per_s = 0;
    c.fresh_buckets_per_s = 0;  // every spoke's bucket starts full, as a calm restart sees them
    auto s = server::create(std::move(c));
    if (!s) {
        std::fprintf(stderr, "config: %s\n", std::string(name(s.error())).c_str());
        std::exit(1);
    }
    return std::move(*s);
}

// Sends `ops` requests chosen by `pick(i)` -> (spoke, target); returns ops/s, and the
// per-request latency of every `sample_every`-th request in microseconds.
template <typename Pick>
std::pair<rate, std::vector<double>> run(server& s, bytes pkt, size_t ops,
                                         clock_type::time_point& fake, Pick pick,
                                         size_t sample_every, size_t& replies) {
    std::vector<double> lat;
    lat.reserve(ops / sample_every + 1);
    auto start = clock_type::now();
    double cpu_start = thread_cpu_seconds();
    for (size_t i = 0; i < ops; ++i) {
        auto [spoke, target] = pick(i);
        patch(pkt, static_cast<uint32_t>(i), spoke_nbma(spoke), spoke_overlay(spoke), target);
        fake += std::chrono::microseconds(1);
        if (i % sample_every == 0) {
            auto t0 = clock_type::now();
            auto out = s.handle(1, spoke_nbma(spoke), pkt, fake);
            auto t1 = clock_type::now();
            replies += out.packets.size();
            lat.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        } else {
            replies += s.handle(1, spoke_nbma(spoke), pkt, fake).packets.size();
        }
    }
    double secs = std::chrono::duration<double>(clock_type::now() - start).count();
    double cpu = thread_cpu_seconds() - cpu_start;
    return {rate{static_cast<double>(ops) / cpu, static_cast<double>(ops) / secs}, std::move(lat)};
}

void bench_population(size_t spokes, std::vector<row>& rows) {
    const size_t rss_before = rss_bytes();
    server s = make_server(spokes);
    clock_type::time_point fake = clock_type::time_point{} + std::chrono::hours(1);
    bytes reg = request_template(op::registration_request, flag::reg_u, 255);
    bytes res =
        request_template(op::resolution_request, flag::res_q | flag::res_a | flag::res_s, 0);
    size_t replies = 0;
    // Spokes arrive in a random order, as a hub restart sees them.
    std::vector<uint32_t> order(spokes);
    for (uint32_t i = 0; i < spokes; ++i) {
        order[i] = i;
    }
    std::mt19937_64 rng(42);
    std::shuffle(order.begin(), order.end(), rng);
    const size_t sample_every = 7;

    auto [reg_rate, reg_lat] = run(
        s, reg, spokes, fake,
        [&](size_t i) {
            return std::pair{order[i], hub_overlay};
        },
        sample_every, replies);
    if (s.cache_size() != spokes) {
        std::fprintf(stderr, "expected %zu entries, have %zu\n", spokes, s.cache_size());
        std::exit(1);
    }
    const size_t rss_after = rss_bytes();
    const double per_entry =
        static_cast<double>(s.cache_memory_bytes() + s.timers() * 16) / static_cast<double>(spokes);
    rows.push_back({"registration_new", spokes, reg_rate.cpu, reg_rate.wall,
                    dmvpn::bench::quantile(reg_lat, 0.5), dmvpn::bench::quantile(reg_lat, 0.99),
                    per_entry});

    std::shuffle(order.begin(), order.end(), rng);
    auto [ref_rate, ref_lat] = run(
        s, reg, spokes, fake,
        [&](size_t i) {
            return std::pair{order[i], hub_overlay};
        },
        sample_every, replies);
    rows.push_back({"registration_refresh", spokes, ref_rate.cpu, ref_rate.wall,
                    dmvpn::bench::quantile(ref_lat, 0.5), dmvpn::bench::quantile(ref_lat, 0.99),
                    per_entry});

    const size_t res_ops = std::max<size_t>(spokes, 500'000);
    std::uniform_int_distribution<uint32_t> any(0, static_cast<uint32_t>(spokes - 1));
    std::vector<std::pair<uint32_t, uint32_t>> pairs(res_ops);
    for (auto& p : pairs) {
        p = {any(rng), spoke_overlay(any(rng))};
    }
    auto [res_rate, res_lat] = run(
        s, res, res_ops, fake, [&](size_t i) { return pairs[i]; }, sample_every, replies);
    rows.push_back({"resolution", spokes, res_rate.cpu, res_rate.wall,
                    dmvpn::bench::quantile(res_lat, 0.5), dmvpn::bench::quantile(res_lat, 0.99),
                    per_entry});

    const size_t expected = spokes * 2 + res_ops;
    std::printf(
        "  %zu spokes: %zu replies for %zu requests, RSS grew %.1f MiB (%.0f B/spoke incl. "
        "allocator)\n",
        spokes, replies, expected, static_cast<double>(rss_after - rss_before) / (1 << 20),
        static_cast<double>(rss_after - rss_before) / static_cast<double>(spokes));
    if (replies != expected) {
        std::fprintf(stderr, "some requests were not answered\n");
        std::exit(1);
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::string path = argc > 1 ? argv[1] : "bench/results/nhrp.json";
    std::vector<size_t> populations = {100'000, 1'000'000};
    if (argc > 2) {
        populations = {static_cast<size_t>(std::stoul(argv[2]))};
    }
    std::vector<row> rows;
    std::printf("NHRP server, one core, Cisco-shaped requests with authentication, fake clock\n");
    for (size_t n : populations) {
        bench_population(n, rows);
    }
    std::printf("\n%-22s %10s %12s %12s %9s %9s %12s\n", "case", "spokes", "ops/s (cpu)",
                "ops/s (wall)", "p50 us", "p99 us", "bytes/entry");
    for (const auto& r : rows) {
        std::printf("%-22s %10zu %12.0f %12.0f %9.2f %9.2f %12.1f\n", r.name.c_str(), r.spokes,
                    r.ops_per_s, r.wall_ops_per_s, r.p50_us, r.p99_us, r.bytes_per_entry);
    }
    std::filesystem::path out(path);
    if (out.has_parent_path()) {
        std::filesystem::create_directories(out.parent_path());
    }
    std::ofstream f(out);
    f << "[\n";
    for (size_t i = 0; i < rows.size(); ++i) {
        const auto& r = rows[i];
        char line[512];
        std::snprintf(
            line, sizeof line,
            "  {\"case\": \"%s\", \"spokes\": %zu, \"ops_per_s\": %.0f, \"wall_ops_per_s\": %.0f, "
            "\"p50_us\": %.3f, \"p99_us\": %.3f, \"bytes_per_entry\": %.1f}%s\n",
            r.name.c_str(), r.spokes, r.ops_per_s, r.wall_ops_per_s, r.p50_us, r.p99_us,
            r.bytes_per_entry, i + 1 < rows.size() ? "," : "");
        f << line;
    }
    f << "]\n";
    std::printf("\nwrote %s\n", path.c_str());
    return 0;
}
