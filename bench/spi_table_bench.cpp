// The control lcore's cost of changing the workers' SPI table by N SAs: publishing a whole new
// table (dp::publisher::set_inbound_sas, what every control-loop pass with a CHILD_SA install
// or removal did before the table was updated in place: the hub gathered every SA from its
// maps, then built a table) against one in-place add plus one removal (a CHILD_SA rekey's
// table work now: publisher::add_inbound_sa / remove_inbound_sa). Prints p50 / p99 / max per
// operation in microseconds and writes JSON rows (argv[1], default bench/results/spi_table.json).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dataplane/eal.hpp"
#include "dataplane/publisher.hpp"

namespace dp = dmvpn::dp;
using clock_type = std::chrono::steady_clock;

namespace {

struct figures {
    double p50 = 0;
    double p99 = 0;
    double max = 0;
};

figures summarize(std::vector<double>& us) {
    std::sort(us.begin(), us.end());
    auto at = [&](double q) {
        return us[static_cast<size_t>(q * static_cast<double>(us.size() - 1))];
    };
    return {at(0.5), at(0.99), us.back()};
}

// Stand-in for the hub's peer_sa objects: the table stores the SA pointer only.
struct fake_pair {
    uint32_t spi = 0;
    uint16_t tunnel = 0;
    char sa[64]{};
};

std::string row(const char* what, size_t sas, size_t ops, const figures& f) {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "{\"case\": \"%s\", \"sas\": %zu, \"ops\": %zu, \"p50_us\": %.2f, "
                  "\"p99_us\": %.2f, \"max_us\": %.2f}",
                  what, sas, ops, f.p50, f.p99, f.max);
    std::printf("%-22s %7zu SAs  p50 %8.2f us  p99 %8.2f us  max %8.2f us  (%zu ops)\n", what, sas,
                f.p50, f.p99, f.max, ops);
    return buf;
}

}  // namespace

int main(int argc, char** argv) {
    std::string out = argc > 1 ? argv[1] : "bench/results/spi_table.json";
    auto eal = dp::eal_init({"-l", "0", "--no-huge", "-m", "512", "--no-pci", "--no-shconf",
                             "--file-prefix", "spi-bench-" + std::to_string(getpid())},
                            "spi-table-bench");
    if (!eal) {
        std::fprintf(stderr, "EAL: %s\n", std::string(dp::name(eal.error())).c_str());
        return 1;
    }
    std::vector<std::string> rows;
    std::mt19937 rng(1);
    for (size_t n : {1000u, 10000u, 20000u}) {
        dp::publisher_config cfg;
        cfg.name = "spib" + std::to_string(n);
        cfg.workers = 1;  // registered by no thread: every grace period is over at once
        cfg.adjacencies = 64;
        cfg.max_routes = 64;
        cfg.tbl8s = 4;
        auto p = dp::publisher::create(cfg);
        if (!p) {
            std::fprintf(stderr, "publisher: %s\n", std::string(dp::name(p.error())).c_str());
            return 1;
        }
        dp::publisher& pub = *p.value();
        // The SAs in an ordered map, as the hub keeps them (by profile and peer).
        std::map<uint32_t, std::unique_ptr<fake_pair>> pairs;
        while (pairs.size() < n) {
            auto fp = std::make_unique<fake_pair>();
            fp->spi = rng() | 0x100u;
            fp->tunnel = 1;
            pairs[static_cast<uint32_t>(pairs.size())] = std::move(fp);
        }
        auto entry = [](const fake_pair& fp) {
            return dp::inbound_sa{fp.spi, fp.tunnel,
                                  reinterpret_cast<dmvpn::crypto::sa*>(const_cast<char*>(fp.sa))};
        };

        // Whole table per change: gather every SA, build, publish.
        std::vector<double> full;
        for (int rep = 0; rep < (n > 10000 ? 100 : 200); ++rep) {
            auto t0 = clock_type::now();
            std::vector<dp::inbound_sa> table;
            table.reserve(pairs.size());
            for (const auto& [k, fp] : pairs) {
                table.push_back(entry(*fp));
            }
            pub.set_inbound_sas(table);
            full.push_back(
                std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
            pub.reclaim();
        }
        figures ff = summarize(full);
        rows.push_back(row("whole-table", n, full.size(), ff));

        // In place: a rekey's new inbound SA in, the old one out.
        std::vector<double> inplace;
        std::vector<std::unique_ptr<fake_pair>> live;
        for (auto& [k, fp] : pairs) {
            live.push_back(std::move(fp));
        }
        size_t ops = 50000;
        size_t grows = 0;
        for (size_t i = 0; i < ops; ++i) {
            auto fresh = std::make_unique<fake_pair>();
            do {
                fresh->spi = rng() | 0x100u;
            } while (pub.inbound_table().find(fresh->spi).sa != nullptr);
            fresh->tunnel = 1;
            size_t victim = rng() % live.size();
            uint32_t cap = pub.inbound_table().capacity();
            auto t0 = clock_type::now();
            dp::publish_status s = pub.add_inbound_sa(entry(*fresh));
            bool removed = pub.remove_inbound_sa(
                live[victim]->spi, reinterpret_cast<dmvpn::crypto::sa*>(live[victim]->sa));
            pub.reclaim();
            inplace.push_back(
                std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
            if (s != dp::publish_status::ok || !removed) {
                std::fprintf(stderr, "in-place update refused at op %zu\n", i);
                return 1;
            }
            grows += pub.inbound_table().capacity() != cap ? 1 : 0;
            live[victim] = std::move(fresh);
        }
        figures fi = summarize(inplace);
        rows.push_back(row("in-place-add-remove", n, inplace.size(), fi));
        std::printf("%-22s %7zu SAs  table %u slots, %zu tombstones, %zu rebuilds in %zu ops\n", "",
                    n, pub.inbound_table().capacity(), pub.inbound_table().tombstones(), grows,
                    ops);
        pub.synchronize();
    }
    std::ofstream f(out);
    f << "[\n";
    for (size_t i = 0; i < rows.size(); ++i) {
        f << " " << rows[i] << (i + 1 < rows.size() ? ",\n" : "\n");
    }
    f << "]\n";
    dp::eal_cleanup();
    return 0;
}
