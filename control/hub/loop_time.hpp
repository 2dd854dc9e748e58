// How long the control lcore's loop passes take (and, with the same type, how long NHRP packets
// wait in the hub): the maximum and a histogram (four buckets per power of two of nanoseconds)
// from which percentiles are read, without allocation.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace dmvpn::hub {

class loop_time {
public:
    void record(uint64_t ns) noexcept {
        ++_count;
        _max = ns > _max ? ns : _max;
        ++_buckets[bucket_of(ns)];
    }

    // Records the time from TSC `from` to TSC `to` (tsc_khz: TSC ticks per millisecond). A
    // `to` before `from` (TSCs of two cores a few ticks apart) counts as 0.
    void record_tsc(uint64_t from, uint64_t to, uint64_t tsc_khz) noexcept {
        record(to > from ? (to - from) * 1000000 / (tsc_khz == 0 ? 1 : tsc_khz) : 0);
    }

    uint64_t count() const noexcept { return _count; }
    uint64_t max_ns() const noexcept { return _max; }

    // An upper bound of the q-quantile (0 < q <= 1): the top of the bucket it falls in, never
    // above the maximum seen. 0 when nothing was recorded.
    uint64_t quantile_ns(double q) const noexcept {
        if (_count == 0) {
            return 0;
        }
        auto rank = static_cast<uint64_t>(q * static_cast<double>(_count));
        rank = rank == 0 ? 1 : rank;
        uint64_t seen = 0;
        for (size_t b = 0; b < _buckets.size(); ++b) {
            seen += _buckets[b];
            if (seen >= rank) {
                uint64_t top = upper_of(b);
                return top < _max ? top : _max;
            }
        }
        return _max;
    }

    // How many took at least about `ns`: those in the buckets from the one `ns` falls in (so
    // up to a bucket's width, 25%, below it).
    uint64_t count_from(uint64_t ns) const noexcept {
        uint64_t n = 0;
        for (size_t b = bucket_of(ns); b < _buckets.size(); ++b) {
            n += _buckets[b];
        }
        return n;
    }

    // Bucket b holds [lower_of(b), upper_of(b)]: 0..3 ns are one bucket each, then four per
    // power of two.
    static size_t bucket_of(uint64_t ns) noexcept {
        if (ns < 4) {
            return static_cast<size_t>(ns);
        }
        auto msb = static_cast<unsigned>(63 - std::countl_zero(ns));
        auto sub = static_cast<size_t>((ns >> (msb - 2)) & 3u);
        return 4 * (msb - 1) + sub;
    }
    static uint64_t upper_of(size_t b) noexcept {
        if (b < 4) {
            return b;
        }
        unsigned msb = static_cast<unsigned>(b / 4) + 1;
        uint64_t sub = b % 4;
        uint64_t lower = (uint64_t{1} << msb) | (sub << (msb - 2));
        return lower + (uint64_t{1} << (msb - 2)) - 1;
    }

private:
    uint64_t _count = 0;
    uint64_t _max = 0;
    std::array<uint64_t, 4 * 64> _buckets{};
};

}  // namespace dmvpn::hub
