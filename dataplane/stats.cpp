// Sums of per-worker counters for the control lcore.
#include "dataplane/stats.hpp"

namespace dmvpn::dp {

uint64_t worker_counters::total_drops() const noexcept {
    uint64_t sum = 0;
    for (auto v : drops) {
        sum += v;
    }
    return sum;
}

uint64_t worker_counters::total_punts() const noexcept {
    uint64_t sum = 0;
    for (auto v : punts) {
        sum += v;
    }
    return sum;
}

worker_counters& worker_counters::operator+=(const worker_counters& o) noexcept {
    auto a = std::bit_cast<std::array<uint64_t, counter_words>>(*this);
    auto b = std::bit_cast<std::array<uint64_t, counter_words>>(o);
    for (size_t i = 0; i < counter_words; ++i) {
        a[i] += b[i];
    }
    *this = std::bit_cast<worker_counters>(a);
    return *this;
}

stats_registry::stats_registry(uint16_t n_workers)
    : _n(n_workers), _blocks(std::make_unique<worker_stats[]>(n_workers)) {}

worker_counters stats_registry::total() const noexcept {
    worker_counters sum;
    for (uint16_t w = 0; w < _n; ++w) {
        sum += _blocks[w].read();
    }
    return sum;
}

}  // namespace dmvpn::dp
