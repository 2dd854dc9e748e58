// Per-worker counters: the worker counts in plain memory and publishes once per burst; the
// control lcore reads the published copy at any time without stopping anyone.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "dataplane/drop_reason.hpp"

namespace dmvpn::dp {

inline constexpr size_t max_ports = 8;

// All fields are uint64_t so the block publishes as an array of words.
struct worker_counters {
    uint64_t rx_packets = 0;
    uint64_t tx_packets = 0;
    uint64_t bursts = 0;               // non-empty poll iterations
    uint64_t redirect_suppressed = 0;  // redirect candidates the rate limiter held back
    uint64_t event_alloc_failed = 0;   // redirect events lost: the event pool was empty
    uint64_t idle_sleeps = 0;          // sleeps taken while idle (worker_config::idle_sleep_us)
    uint64_t fragmented = 0;           // packets split to fit the egress MTU (stage/mtu.cpp)
    uint64_t fragments = 0;            // fragments those packets became
    uint64_t natt_in = 0;              // ESP-in-UDP (RFC 3948) taken out of its UDP header
    uint64_t natt_out = 0;             // ESP put in UDP for a peer behind NAT
    std::array<uint64_t, drop_reason_count> drops{};
    std::array<uint64_t, punt_reason_count> punts{};
    std::array<uint64_t, punt_class_count> punts_policed{};  // over the class's budget
    std::array<uint64_t, max_ports> port_rx_packets{};
    std::array<uint64_t, max_ports> port_rx_bytes{};
    std::array<uint64_t, max_ports> port_tx_packets{};
    std::array<uint64_t, max_ports> port_tx_bytes{};

    uint64_t drop(drop_reason r) const noexcept { return drops[static_cast<size_t>(r)]; }
    uint64_t punt(punt_reason r) const noexcept { return punts[static_cast<size_t>(r)]; }
    uint64_t total_drops() const noexcept;
    uint64_t total_punts() const noexcept;
    worker_counters& operator+=(const worker_counters& o) noexcept;
};

inline constexpr size_t counter_words = sizeof(worker_counters) / sizeof(uint64_t);
static_assert(sizeof(worker_counters) == counter_words * sizeof(uint64_t));

// The published copy of one worker's counters, on cache lines of its own so one worker's
// flush never invalidates another's. One writer (its worker), any number of readers.
class alignas(64) worker_stats {
public:
    void publish(const worker_counters& c) noexcept {
        auto words = std::bit_cast<std::array<uint64_t, counter_words>>(c);
        for (size_t i = 0; i < counter_words; ++i) {
            _words[i].store(words[i], std::memory_order_relaxed);
        }
    }
    worker_counters read() const noexcept {
        std::array<uint64_t, counter_words> words;
        for (size_t i = 0; i < counter_words; ++i) {
            words[i] = _words[i].load(std::memory_order_relaxed);
        }
        return std::bit_cast<worker_counters>(words);
    }

private:
    std::array<std::atomic<uint64_t>, counter_words> _words{};
};

// One block per worker, created by the control lcore before the workers start.
class stats_registry {
public:
    explicit stats_registry(uint16_t n_workers);
    uint16_t workers() const noexcept { return _n; }
    worker_stats& of(uint16_t worker) noexcept { return _blocks[worker]; }
    worker_counters read(uint16_t worker) const noexcept { return _blocks[worker].read(); }
    worker_counters total() const noexcept;

private:
    uint16_t _n;
    std::unique_ptr<worker_stats[]> _blocks;
};

}  // namespace dmvpn::dp
