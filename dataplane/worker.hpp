// A worker lcore: run-to-completion poll loop over its RX queues, bursts of 32 through the
// stages in dataplane/stage/, counters published once per burst.
#pragma once

#include <rte_mbuf.h>
#include <rte_ring.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "dataplane/publisher.hpp"
#include "dataplane/stats.hpp"
#include "dataplane/wire/result.hpp"
#include "dataplane/worker_ctx.hpp"

namespace dmvpn::crypto {
class engine;
}

namespace dmvpn::dp {

struct rx_queue {
    uint16_t port = 0;
    uint16_t queue = 0;
};

struct worker_config {
    uint16_t id = 0;           // also this worker's RCU thread id
    std::vector<rx_queue> rx;  // the RX queues this worker polls
    uint16_t tx_queue = 0;     // this worker's TX queue, the same index on every port
    const shared_tables* tables = nullptr;
    rte_ring* punt_ring = nullptr;
    rte_mempool* event_pool = nullptr;        // mbufs for redirect events
    worker_stats* stats = nullptr;            // where counters are published (may be null)
    uint32_t glean_interval_us = 100000;      // one glean event per next hop per interval
    uint32_t redirect_interval_us = 1000000;  // one redirect per (source, destination)
    uint32_t rate_limit_slots = 65536;        // keys each limiter remembers (1 MiB)
    // This worker's budget per punt class (dp::punt_class_*), packets per second; 0: unlimited.
    // The hub gives each worker its share of the hub-wide rates (hub.punt-rates).
    std::array<uint32_t, punt_class_count> punt_rates{};
    // 0: busy-poll for ever (the DPDK way, lowest latency). Otherwise, after idle_polls_before_
    // sleep passes in a row found nothing, sleep this long between passes until traffic comes
    // back (as VPP's poll-sleep-usec), leaving the core to others on a small machine. The
    // sleep is a system call made only while idle, never per packet.
    uint32_t idle_sleep_us = 0;
    uint32_t idle_polls_before_sleep = 1024;
    // The control lcore's forwarder (id = tables->workers, tx_queue = the ports' control TX
    // queue, rx empty): packets the control lcore originates go through inject() on its own
    // thread, encrypted there like on any worker. Not an RCU reader: the control lcore is the
    // publisher, which frees nothing while it forwards.
    bool control = false;
};

enum class worker_error : uint8_t {
    bad_config,     // no tables, or id beyond the tables' worker count
    rcu_failed,     // rte_rcu_qsbr_thread_register refused the id
    crypto_failed,  // no Intel IPsec-MB manager for this thread
};
std::string_view name(worker_error e) noexcept;

class worker {
public:
    // Allocates (rate limiters, crypto engine): before the loop starts.
    static wire::result<std::unique_ptr<worker>, worker_error> create(const worker_config& cfg);
    ~worker();
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    // The loop: polls until `stop` is set, reporting a quiescent state after every pass.
    void run(const std::atomic<bool>& stop) noexcept;
    // One pass over every RX queue, online for the pass only: lets a
    // test (or a single-threaded tool) drive the worker step by step. Returns packets received.
    uint32_t poll_once() noexcept;
    // Runs a burst (as if received) through every stage, then flushes; for stage-level tests.
    void process(rte_mbuf** pkts, uint16_t n) noexcept;
    // Control lcore (worker_config::control): packets past the FIB (packet_class::routed,
    // nexthop = adjacency id, gre_payload where set) through resolve .. esp_out .. tx, then
    // flushes; punts (gleans) go to the punt ring as on a worker.
    void inject(rte_mbuf** pkts, uint16_t n) noexcept;

    // Entry point for rte_eal_remote_launch; arg is a launch_args*.
    struct launch_args {
        worker* self;
        const std::atomic<bool>* stop;
    };
    static int lcore_main(void* arg);

    worker_ctx& ctx() noexcept { return _ctx; }
    const worker_counters& counters() const noexcept { return _ctx.counters; }

private:
    explicit worker(const worker_config& cfg);
    uint32_t pass() noexcept;
    void begin_burst() noexcept;
    void pipeline(rte_mbuf** pkts, uint16_t n) noexcept;
    void forward(rte_mbuf** esp, uint16_t n_esp, rte_mbuf** gre, uint16_t n_gre, rte_mbuf** ip,
                 uint16_t n_ip, rte_mbuf** routed, uint16_t n_routed) noexcept;
    void end_burst() noexcept;

    worker_config _cfg;
    worker_ctx _ctx;
    std::unique_ptr<crypto::engine> _engine;
    bool _registered = false;
};

}  // namespace dmvpn::dp
