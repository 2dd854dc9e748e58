// The hub's own figures: a real dmvpn::dp::worker polling a ring port fed with pre-built
// frames (GRE transit, ESP transit, ESP in, ESP out) over thousands of spokes; cycles per packet
// for the whole poll and, in a second pass, for each stage.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dmvpn::bench {

struct worker_bench_options {
    std::vector<std::string> cases;  // gre, esp-transit, esp-in, esp-out
    std::vector<std::string> sizes;  // 64, imix, 1400
    uint32_t spokes = 10000;
    uint32_t rate_limit_slots = 0;  // worker_config's redirect/glean limiter slots; 0: its default
    uint16_t workers = 1;           // scale: worker lcores (EAL -l needs one more for main)
    double seconds = 2.0;           // measured time per case and size (stage pass: a third)
    std::vector<std::string> eal;   // EAL arguments
};

// Prints one JSON object per (case, size) on stdout. Returns a process exit status.
int run_worker_bench(const worker_bench_options& o);
// The scaling run: o.workers workers on their own lcores over shared tables, each fed its RSS
// share; prints one JSON object per (case, size) with cycles per packet over all workers.
int run_scale_bench(const worker_bench_options& o);

}  // namespace dmvpn::bench
