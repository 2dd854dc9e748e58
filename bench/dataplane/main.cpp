// dataplane-bench: the measuring half of `bench/run dataplane` (bench/dataplane/run.py drives
// it and the DPDK tools, and writes the table and bench/results/dataplane.json).
//   dataplane-bench worker [--spokes N] [--seconds S] [--cases a,b] [--sizes x,y]
//                          [--rate-limit-slots N] -- EAL args
//   dataplane-bench scale --workers N [--spokes N] [--seconds S] [--cases a,b] [--sizes x,y]
//                         -- EAL args (N + 1 lcores)
//   dataplane-bench imb --lengths 76,588,1412 [--keys 1,10000] [--seconds S]
//   dataplane-bench peer-files DIR [--spokes N] [--sizes x,y]
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/dataplane/imb_bench.hpp"
#include "bench/dataplane/peer_files.hpp"
#include "bench/dataplane/worker_bench.hpp"

namespace {

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= s.size()) {
        size_t comma = s.find(',', start);
        if (comma == std::string::npos) {
            comma = s.size();
        }
        if (comma > start) {
            out.push_back(s.substr(start, comma - start));
        }
        start = comma + 1;
    }
    return out;
}

std::vector<uint32_t> numbers(const std::string& s) {
    std::vector<uint32_t> out;
    for (const std::string& x : split(s)) {
        out.push_back(static_cast<uint32_t>(std::stoul(x)));
    }
    return out;
}

int usage() {
    std::fprintf(
        stderr,
        "usage: dataplane-bench worker [--spokes N] [--seconds S] [--cases gre,esp-transit,"
        "esp-in,esp-out] [--sizes 64,imix,1400] -- EAL args\n"
        "       dataplane-bench scale --workers N [same as worker] -- EAL args (N+1 lcores)\n"
        "       dataplane-bench imb --lengths L1,L2 [--keys 1,10000] [--seconds S]\n"
        "       dataplane-bench peer-files DIR [--spokes N] [--sizes 64,imix,1400]\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        return usage();
    }
    std::string mode = argv[1];
    try {
        dmvpn::bench::worker_bench_options w;
        w.cases = {"gre", "esp-transit", "esp-in", "esp-out"};
        w.sizes = {"64", "imix", "1400"};
        dmvpn::bench::imb_bench_options im;
        dmvpn::bench::peer_files_options pf;
        pf.sizes = w.sizes;
        int i = 2;
        if (mode == "peer-files") {
            if (argc < 3) {
                return usage();
            }
            pf.dir = argv[2];
            i = 3;
        }
        for (; i < argc; ++i) {
            std::string a = argv[i];
            if (a == "--") {
                for (++i; i < argc; ++i) {
                    w.eal.emplace_back(argv[i]);
                }
                break;
            }
            if (i + 1 >= argc) {
                return usage();
            }
            std::string v = argv[++i];
            if (a == "--spokes") {
                w.spokes = pf.spokes = static_cast<uint32_t>(std::stoul(v));
            } else if (a == "--seconds") {
                w.seconds = im.seconds = std::stod(v);
            } else if (a == "--workers") {
                w.workers = static_cast<uint16_t>(std::stoul(v));
            } else if (a == "--rate-limit-slots") {
                w.rate_limit_slots = static_cast<uint32_t>(std::stoul(v));
            } else if (a == "--cases") {
                w.cases = split(v);
            } else if (a == "--sizes") {
                w.sizes = pf.sizes = split(v);
            } else if (a == "--lengths") {
                im.lengths = numbers(v);
            } else if (a == "--keys") {
                im.keys = numbers(v);
            } else {
                return usage();
            }
        }
        if (mode == "worker") {
            return dmvpn::bench::run_worker_bench(w);
        }
        if (mode == "scale") {
            return dmvpn::bench::run_scale_bench(w);
        }
        if (mode == "imb") {
            return dmvpn::bench::run_imb_bench(im);
        }
        if (mode == "peer-files") {
            return dmvpn::bench::write_peer_files(pf);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "dataplane-bench: %s\n", e.what());
        return 2;
    }
    return usage();
}
