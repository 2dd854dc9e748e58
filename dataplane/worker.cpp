// The worker poll loop (worker lcore).
#include "dataplane/worker.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

#include "crypto/engine.hpp"
#include "dataplane/stage/classify.hpp"
#include "dataplane/stage/encap.hpp"
#include "dataplane/stage/esp_in.hpp"
#include "dataplane/stage/esp_out.hpp"
#include "dataplane/stage/gre_decap.hpp"
#include "dataplane/stage/mss_clamp.hpp"
#include "dataplane/stage/mtu.hpp"
#include "dataplane/stage/resolve.hpp"
#include "dataplane/stage/route.hpp"
#include "dataplane/stage/tx.hpp"

namespace dmvpn::dp {

std::string_view name(worker_error e) noexcept {
    switch (e) {
        case worker_error::bad_config:
            return "bad_config";
        case worker_error::rcu_failed:
            return "rcu_failed";
        case worker_error::crypto_failed:
            return "crypto_failed";
    }
    return "unknown";
}

namespace {

// The limiters' tables (a megabyte each at the default size) on hugepages: looked up at random
// per packet, they would otherwise cost a TLB miss as well as a cache miss.
void* limiter_alloc(size_t bytes) {
    return rte_zmalloc_socket("dp_limiter", bytes, RTE_CACHE_LINE_SIZE, SOCKET_ID_ANY);
}
void limiter_free(void* p) { rte_free(p); }
constexpr limiter_memory limiter_on_hugepages{limiter_alloc, limiter_free};

}  // namespace

worker::worker(const worker_config& cfg) : _cfg(cfg) {}

wire::result<std::unique_ptr<worker>, worker_error> worker::create(const worker_config& cfg) {
    // The control lcore's forwarder takes the id after the workers' and is no RCU reader: it
    // runs on the publisher's own thread, which frees nothing while it forwards.
    if (cfg.tables == nullptr ||
        (cfg.control ? cfg.id != cfg.tables->workers : cfg.id >= cfg.tables->workers)) {
        return wire::fail(worker_error::bad_config);
    }
    std::unique_ptr<worker> w(new worker(cfg));
    auto eng = crypto::engine::create();
    if (!eng) {
        return wire::fail(worker_error::crypto_failed);
    }
    w->_engine = std::move(eng.value());
    if (!cfg.control) {
        if (rte_rcu_qsbr_thread_register(cfg.tables->rcu, cfg.id) != 0) {
            return wire::fail(worker_error::rcu_failed);
        }
        w->_registered = true;
    }
    worker_ctx& c = w->_ctx;
    c.id = cfg.id;
    c.tx_queue = cfg.tx_queue;
    c.tables = cfg.tables;
    c.punt_ring = cfg.punt_ring;
    c.event_pool = cfg.event_pool;
    c.engine = w->_engine.get();
    c.ip_id = static_cast<uint16_t>(cfg.id << 12);
    uint64_t hz = rte_get_tsc_hz();
    c.glean_limit = rate_limiter(cfg.rate_limit_slots, hz / 1000000 * cfg.glean_interval_us,
                                 limiter_on_hugepages);
    c.redirect_limit = rate_limiter(cfg.rate_limit_slots, hz / 1000000 * cfg.redirect_interval_us,
                                    limiter_on_hugepages);
    for (size_t i = 0; i < punt_class_count; ++i) {
        c.punt_budget[i] = token_bucket(cfg.punt_rates[i], burst_of(cfg.punt_rates[i]), hz);
    }
    return w;
}

worker::~worker() {
    if (_registered) {
        rte_rcu_qsbr_thread_offline(_cfg.tables->rcu, _cfg.id);
        rte_rcu_qsbr_thread_unregister(_cfg.tables->rcu, _cfg.id);
    }
}

void worker::begin_burst() noexcept {
    _ctx.now = rte_rdtsc();
    _ctx.topo = _cfg.tables->topo.load(std::memory_order_acquire);
    _ctx.spis = _cfg.tables->spis.load(std::memory_order_acquire);
}

void worker::end_burst() noexcept {
    _ctx.flush_punts();
    _ctx.flush_drops();
    ++_ctx.counters.bursts;
    if (_cfg.stats != nullptr) {
        _cfg.stats->publish(_ctx.counters);
    }
}

void worker::forward(rte_mbuf** esp, uint16_t n_esp, rte_mbuf** gre, uint16_t n_gre, rte_mbuf** ip,
                     uint16_t n_ip, rte_mbuf** routed, uint16_t n_routed) noexcept {
    if (n_esp != 0) {
        n_esp = stage::esp_in(esp, n_esp, _ctx);
        for (uint16_t i = 0; i < n_esp; ++i) {
            gre[n_gre++] = esp[i];
        }
    }
    if (n_gre != 0) {
        n_gre = stage::gre_decap(gre, n_gre, _ctx);
        for (uint16_t i = 0; i < n_gre; ++i) {
            ip[n_ip++] = gre[i];
        }
    }
    if (n_ip != 0) {
        n_ip = stage::route(ip, n_ip, _ctx);
    }
    for (uint16_t i = 0; i < n_routed; ++i) {
        ip[n_ip++] = routed[i];
    }
    if (n_ip == 0) {
        return;
    }
    n_ip = stage::resolve(ip, n_ip, _ctx);
    // mtu can turn a packet into several fragments: the rest of the path runs on what it put
    // out, as many times as the burst takes (once, unless fragments filled its output).
    uint16_t done = 0;
    while (done < n_ip) {
        rte_mbuf* out[max_burst];
        stage::mtu_result r = stage::mtu(ip + done, n_ip - done, out, max_burst, _ctx);
        done = static_cast<uint16_t>(done + r.consumed);
        uint16_t k = stage::mss_clamp(out, r.out, _ctx);
        k = stage::encap(out, k, _ctx);
        if (_ctx.out_sa_packets != 0) {
            k = stage::esp_out(out, k, _ctx);
        }
        if (k != 0) {
            stage::tx(out, k, _ctx);
        }
    }
}

void worker::pipeline(rte_mbuf** pkts, uint16_t n) noexcept {
    n = stage::classify(pkts, n, _ctx);
    rte_mbuf* esp[max_burst];
    rte_mbuf* gre[max_burst];
    rte_mbuf* ip[max_burst];
    uint16_t n_esp = 0;
    uint16_t n_gre = 0;
    uint16_t n_ip = 0;
    for (uint16_t i = 0; i < n; ++i) {
        switch (class_of(meta(pkts[i]))) {
            case packet_class::esp:
                esp[n_esp++] = pkts[i];
                break;
            case packet_class::gre:
                gre[n_gre++] = pkts[i];
                break;
            default:
                ip[n_ip++] = pkts[i];
                break;
        }
    }
    forward(esp, n_esp, gre, n_gre, ip, n_ip, nullptr, 0);
}

void worker::process(rte_mbuf** pkts, uint16_t n) noexcept {
    rte_rcu_qsbr_thread_online(_cfg.tables->rcu, _cfg.id);
    while (n != 0) {
        uint16_t chunk = n < rx_burst ? n : rx_burst;
        begin_burst();
        _ctx.counters.rx_packets += chunk;
        pipeline(pkts, chunk);
        end_burst();
        pkts += chunk;
        n = static_cast<uint16_t>(n - chunk);
    }
    rte_rcu_qsbr_thread_offline(_cfg.tables->rcu, _cfg.id);
}

void worker::inject(rte_mbuf** pkts, uint16_t n) noexcept {
    while (n != 0) {
        uint16_t chunk = n < rx_burst ? n : rx_burst;
        begin_burst();
        rte_mbuf* ip[max_burst];
        forward(nullptr, 0, nullptr, 0, ip, 0, pkts, chunk);
        end_burst();
        pkts += chunk;
        n = static_cast<uint16_t>(n - chunk);
    }
}

uint32_t worker::pass() noexcept {
    uint32_t received = 0;
    rte_mbuf* pkts[rx_burst];
    for (const rx_queue& q : _cfg.rx) {
        if (_cfg.tables->paused(q.port)) {
            continue;
        }
        uint16_t n = rte_eth_rx_burst(q.port, q.queue, pkts, rx_burst);
        if (n == 0) {
            continue;
        }
        begin_burst();
        uint64_t bytes = 0;
        for (uint16_t i = 0; i < n; ++i) {
            pkts[i]->port = q.port;
            bytes += pkts[i]->pkt_len;
        }
        _ctx.counters.rx_packets += n;
        if (q.port < max_ports) {
            _ctx.counters.port_rx_packets[q.port] += n;
            _ctx.counters.port_rx_bytes[q.port] += bytes;
        }
        pipeline(pkts, n);
        end_burst();
        received += n;
    }
    return received;
}

uint32_t worker::poll_once() noexcept {
    rte_rcu_qsbr_thread_online(_cfg.tables->rcu, _cfg.id);
    uint32_t n = pass();
    rte_rcu_qsbr_thread_offline(_cfg.tables->rcu, _cfg.id);
    return n;
}

void worker::run(const std::atomic<bool>& stop) noexcept {
    rte_rcu_qsbr* v = _cfg.tables->rcu;
    rte_rcu_qsbr_thread_online(v, _cfg.id);
    uint32_t empty = 0;
    while (!stop.load(std::memory_order_relaxed)) {
        uint32_t n = pass();
        // Nothing from this pass (adjacency, topology, SPI table) is held past this point.
        rte_rcu_qsbr_quiescent(v, _cfg.id);
        if (_cfg.idle_sleep_us == 0) {
            continue;
        }
        if (n != 0) {
            empty = 0;
        } else if (++empty >= _cfg.idle_polls_before_sleep) {
            empty = _cfg.idle_polls_before_sleep;  // stays idle: sleep again after each pass
            ++_ctx.counters.idle_sleeps;
            if (_cfg.stats != nullptr) {
                _cfg.stats->publish(_ctx.counters);
            }
            // Offline while asleep: the control lcore's grace periods need not wait for us.
            rte_rcu_qsbr_thread_offline(v, _cfg.id);
            rte_delay_us_sleep(_cfg.idle_sleep_us);
            rte_rcu_qsbr_thread_online(v, _cfg.id);
        }
    }
    rte_rcu_qsbr_thread_offline(v, _cfg.id);
}

int worker::lcore_main(void* arg) {
    auto* a = static_cast<launch_args*>(arg);
    a->self->run(*a->stop);
    return 0;
}

}  // namespace dmvpn::dp
