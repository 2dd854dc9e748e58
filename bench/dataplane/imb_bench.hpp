// The raw Intel IPsec-MB AES-128-GCM rate (direct API): the dataplane benchmark's crypto ceiling.
#pragma once

#include <cstdint>
#include <vector>

namespace dmvpn::bench {

struct imb_bench_options {
    std::vector<uint32_t> lengths;  // bytes ciphered per operation
    std::vector<uint32_t> keys{1};  // how many expanded keys the operations rotate through
    double seconds = 0.5;           // per length, direction and key count
};

// Prints one JSON object per (keys, length, direction) on stdout. Returns an exit status.
int run_imb_bench(const imb_bench_options& o);

}  // namespace dmvpn::bench
