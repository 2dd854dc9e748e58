// The crypto ceiling: Intel IPsec-MB's direct AES-128-GCM API (one call per packet, in place,
// keys expanded beforehand), cycles per operation at the byte counts the hub's ESP ciphers.
// Optionally with the keys of many SAs in a random order, to show what a spoke population's key
// schedules cost in cache misses.
#include "bench/dataplane/imb_bench.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include <x86intrin.h>

#include "crypto/engine.hpp"
#include "crypto/imb.hpp"

namespace dmvpn::bench {

namespace {

constexpr unsigned batch = 32;

struct run_result {
    double cycles_per_op;
    uint64_t ops;
    uint64_t discarded;
};

// op: true = encrypt. Times batches of 32 calls with rdtsc; drops batches over 8x the median.
run_result time_gcm(IMB_MGR* mgr, bool enc, uint32_t len, const std::vector<gcm_key_data>& keys,
                    double seconds, uint64_t tsc_hz) {
    std::vector<uint8_t> bufs(size_t{batch} * ((len + 63) / 64 * 64));
    size_t stride = bufs.size() / batch;
    for (size_t i = 0; i < bufs.size(); ++i) {
        bufs[i] = static_cast<uint8_t>(i * 31);
    }
    alignas(16) uint8_t iv[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    alignas(16) uint8_t aad[8] = {0, 1, 0, 0, 0, 0, 0, 1};
    alignas(16) uint8_t tag[16];
    gcm_context_data ctx;
    // Keys in a shuffled order, as packets from many spokes arrive: no prefetcher can guess it.
    std::vector<uint32_t> order(keys.size());
    std::iota(order.begin(), order.end(), 0u);
    std::shuffle(order.begin(), order.end(), std::mt19937(12345));
    std::vector<uint32_t> samples;
    samples.reserve(static_cast<size_t>(seconds * 100e6 / batch) + 16);
    size_t k = 0;
    uint64_t end = __rdtsc() + static_cast<uint64_t>(seconds * static_cast<double>(tsc_hz));
    while (__rdtsc() < end && samples.size() < samples.capacity()) {
        uint64_t t0 = __rdtsc();
        for (unsigned b = 0; b < batch; ++b) {
            uint8_t* p = bufs.data() + b * stride;
            const gcm_key_data* key = &keys[order[k]];
            k = k + 1 == order.size() ? 0 : k + 1;
            iv[11] = static_cast<uint8_t>(b);
            if (enc) {
                IMB_AES128_GCM_ENC(mgr, key, &ctx, p, p, len, iv, aad, sizeof(aad), tag,
                                   sizeof(tag));
            } else {
                IMB_AES128_GCM_DEC(mgr, key, &ctx, p, p, len, iv, aad, sizeof(aad), tag,
                                   sizeof(tag));
            }
        }
        samples.push_back(static_cast<uint32_t>(std::min<uint64_t>(__rdtsc() - t0, UINT32_MAX)));
    }
    std::vector<uint32_t> sorted = samples;
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<long>(sorted.size() / 2),
                     sorted.end());
    uint64_t limit = uint64_t{sorted[sorted.size() / 2]} * 8;
    uint64_t sum = 0;
    uint64_t kept = 0;
    for (uint32_t s : samples) {
        if (s <= limit) {
            sum += s;
            ++kept;
        }
    }
    return {static_cast<double>(sum) / static_cast<double>(kept * batch), kept * batch,
            samples.size() - kept};
}

uint64_t measure_tsc_hz() {
    timespec a{};
    timespec b{};
    clock_gettime(CLOCK_MONOTONIC_RAW, &a);
    uint64_t t0 = __rdtsc();
    timespec req{0, 200000000};
    nanosleep(&req, nullptr);
    clock_gettime(CLOCK_MONOTONIC_RAW, &b);
    uint64_t t1 = __rdtsc();
    double ns =
        static_cast<double>(b.tv_sec - a.tv_sec) * 1e9 + static_cast<double>(b.tv_nsec - a.tv_nsec);
    return static_cast<uint64_t>(static_cast<double>(t1 - t0) * 1e9 / ns);
}

}  // namespace

int run_imb_bench(const imb_bench_options& o) {
    auto eng = crypto::engine::create();
    if (!eng) {
        std::fprintf(stderr, "IPsec-MB: %s\n", std::string(crypto::name(eng.error())).c_str());
        return 1;
    }
    IMB_MGR* mgr = (*eng)->mgr();
    uint64_t hz = measure_tsc_hz();
    for (uint32_t nkeys : o.keys) {
        std::vector<gcm_key_data> keys(nkeys);
        for (uint32_t i = 0; i < nkeys; ++i) {
            uint8_t key[16];
            for (unsigned j = 0; j < 16; ++j) {
                key[j] = static_cast<uint8_t>(i * 7 + j);
            }
            IMB_AES128_GCM_PRE(mgr, key, &keys[i]);
        }
        for (uint32_t len : o.lengths) {
            for (bool enc : {true, false}) {
                (void)time_gcm(mgr, enc, len, keys, 0.1, hz);
                run_result r = time_gcm(mgr, enc, len, keys, o.seconds, hz);
                std::printf(
                    "{\"tool\": \"imb-direct\", \"arch\": \"%s\", \"op\": \"%s\", "
                    "\"cipher_len\": %u, \"keys\": %u, \"cycles_per_op\": %.2f, "
                    "\"mops\": %.3f, \"gbps\": %.2f, \"ops\": %" PRIu64
                    ", \"batches_discarded\": %" PRIu64 ", \"tsc_hz\": %" PRIu64 "}\n",
                    std::string((*eng)->arch()).c_str(), enc ? "encrypt" : "decrypt", len, nkeys,
                    r.cycles_per_op, static_cast<double>(hz) / r.cycles_per_op / 1e6,
                    static_cast<double>(hz) / r.cycles_per_op * len * 8 / 1e9, r.ops, r.discarded,
                    hz);
                std::fflush(stdout);
            }
        }
    }
    return 0;
}

}  // namespace dmvpn::bench
