// The hub's dataplane figures, measured through dmvpn::dp::worker::poll_once on a ring port.
//
// Each burst: the harness allocates 32 mbufs (timed: a NIC's RX refill costs the same), copies
// pre-built frames into them (untimed: this stands in for the wire and the NIC's DMA; ESP from
// the spokes was encrypted before timing started), enqueues them on the RX ring of
// a net_ring port, then times worker::poll_once(): RX burst, every stage, TX burst to net_null
// (which frees the mbufs, as a NIC's TX completion would). Bursts a preemption landed in are
// discarded (the machine is shared). A second pass calls the stages one by one, in the order
// worker::forward does, with rte_rdtsc between them.
#include "bench/dataplane/worker_bench.hpp"

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>

#include <rte_cycles.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_pause.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>

#include "bench/dataplane/traffic.hpp"
#include "crypto/engine.hpp"
#include "crypto/esp_transport.hpp"
#include "crypto/sa.hpp"
#include "dataplane/eal.hpp"
#include "dataplane/port.hpp"
#include "dataplane/publisher.hpp"
#include "dataplane/punt.hpp"
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
#include "dataplane/worker.hpp"

namespace dmvpn::bench {

namespace dp = dmvpn::dp;
namespace crypto = dmvpn::crypto;

namespace {

constexpr uint16_t burst = dp::rx_burst;

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

struct ring_port {
    uint16_t id = 0;
    rte_ring* rx = nullptr;      // queue 0
    std::vector<rte_ring*> rxq;  // queue w: worker w's RSS share (the scaling run)
    rte_ether_addr mac{};
};

enum class kind { gre, esp_transit, esp_in, esp_out };

kind parse_case(const std::string& s) {
    if (s == "gre") {
        return kind::gre;
    }
    if (s == "esp-transit") {
        return kind::esp_transit;
    }
    if (s == "esp-in") {
        return kind::esp_in;
    }
    if (s == "esp-out") {
        return kind::esp_out;
    }
    fail("unknown case " + s + " (gre, esp-transit, esp-in, esp-out)");
}

std::unique_ptr<crypto::sa> make_sa(crypto::engine& eng, uint32_t spi, crypto::sa_direction d) {
    auto key = key_of(spi);
    crypto::sa_params p;
    p.spi = spi;
    p.direction = d;
    p.cipher = crypto::cipher_alg::aes_gcm_16;
    p.cipher_key = key;
    auto r = crypto::sa::create(p, eng);
    if (!r) {
        fail("sa::create: " + std::string(crypto::name(r.error())));
    }
    return std::move(r.value());
}

// The hub: ports, tables for `spokes` spokes on each of two tunnels, and their SAs.
class hub {
public:
    // `workers` > 1 (the scaling run): one input ring port per worker, a TX queue per worker on
    // every port, and spoke i's SAs owned by worker i % workers (the queue RSS would give it).
    explicit hub(uint32_t spokes, uint16_t workers = 1) : _spokes(spokes), _workers(workers) {
        unsigned mbufs = workers == 1 ? 16383 : 16384u * (workers + 1) - 1;
        _pool = rte_pktmbuf_pool_create("bench_pool", mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                        static_cast<int>(rte_socket_id()));
        if (_pool == nullptr) {
            fail("mbuf pool (hugepages?)");
        }
        _punts = dp::create_punt_ring("bench_punts", 4096, SOCKET_ID_ANY);
        dp::publisher_config pc;
        pc.name = "bench";
        pc.workers = workers;
        pc.adjacencies = 2 * spokes + 8;
        pc.max_routes = 4 * spokes + 64;
        pc.tbl8s = 1024;
        auto p = dp::publisher::create(pc);
        if (!p || _punts == nullptr) {
            fail("publisher");
        }
        _pub = std::move(p.value());
        auto eng = crypto::engine::create();
        if (!eng) {
            fail("crypto engine");
        }
        _eng = std::move(eng.value());

        _u_in = make_ring_port("bench_u_in");
        _l_in = make_ring_port("bench_l_in");
        _u_out = make_null_port("net_null_bench_u");
        _l_out = make_null_port("net_null_bench_l");

        dp::topology t;
        for (uint16_t id : {_u_in.id, _l_in.id, _u_out, _l_out}) {
            if (id >= dp::max_ports) {
                fail("too many ports");
            }
            t.n_ports = std::max<uint16_t>(t.n_ports, static_cast<uint16_t>(id + 1));
            rte_eth_macaddr_get(id, &t.ports[id].mac);
            t.ports[id].mtu = 1500;
        }
        dp::tunnel_info t0;
        t0.nbma = plan::hub_nbma;
        t0.overlay = plan::hub_overlay0;
        t0.has_key = true;
        t0.key = plan::key0;
        t0.ip_mtu = plan::tunnel_mtu;
        t0.ttl = 64;
        t0.underlay_port = _u_out;
        dp::tunnel_info t1 = t0;
        t1.overlay = plan::hub_overlay1;
        t1.key = plan::key1;
        t1.ipsec = true;
        t.tunnels[0] = t0;
        t.tunnels[1] = t1;
        t.n_tunnels = 2;
        _pub->set_topology(t);

        using dp::route_kind;
        auto must = [](dp::publish_status s, const char* what) {
            if (s != dp::publish_status::ok) {
                fail(std::string(what) + ": " + std::string(dp::name(s)));
            }
        };
        std::vector<dp::inbound_sa> inbound;
        for (uint32_t i = 0; i < spokes; ++i) {
            _hub_out.push_back(make_sa(*_eng, plan::spi_out(i), crypto::sa_direction::outbound));
            _hub_in.push_back(make_sa(*_eng, plan::spi_in(i), crypto::sa_direction::inbound));
            _spoke_out.push_back(make_sa(*_eng, plan::spi_in(i), crypto::sa_direction::outbound));
            inbound.push_back(dp::inbound_sa{plan::spi_in(i), 1, _hub_in.back().get()});
            for (uint16_t tun : {uint16_t{0}, uint16_t{1}}) {
                uint32_t adj = 1 + tun * spokes + i;
                must(_pub->set_tunnel_adjacency(
                         adj, {tun, plan::overlay(tun, i), plan::nbma(tun, i), gw_mac,
                               tun == 1 ? _hub_out.back().get() : nullptr}),
                     "tunnel adjacency");
                must(_pub->add_route(plan::overlay(tun, i), 32, {route_kind::adjacency, adj}),
                     "host route");
                must(_pub->add_route(plan::lan_of(tun, i), 24, {route_kind::adjacency, adj}),
                     "spoke LAN route");
            }
        }
        _pub->set_inbound_sas(inbound);
        uint32_t lan_adj = 1 + 2 * spokes;
        must(_pub->set_lan_adjacency(lan_adj, {_l_out, plan::lan_router, lan_mac}),
             "LAN adjacency");
        must(_pub->add_route(0xac100000, 12, {route_kind::adjacency, lan_adj}), "LAN route");
        for (uint32_t a : {plan::hub_nbma, plan::hub_overlay0, plan::hub_overlay1, plan::hub_lan}) {
            must(_pub->add_route(a, 32, {route_kind::local, 0}), "local route");
        }
        must(_pub->add_route(0x0a000000, 16, {route_kind::glean_tunnel, 0}), "tunnel 0 subnet");
        must(_pub->add_route(0x0a010000, 16, {route_kind::glean_tunnel, 1}), "tunnel 1 subnet");
    }

    ~hub() {
        _pub.reset();
        drain_punts();
        rte_ring_free(_punts);
    }

    rte_mempool* pool() const { return _pool; }
    rte_ring* punts() const { return _punts; }
    const dp::shared_tables& tables() const { return _pub->tables(); }
    const ring_port& u_in() const { return _u_in; }
    const ring_port& l_in() const { return _l_in; }
    uint16_t workers() const { return _workers; }
    uint32_t spokes() const { return _spokes; }
    crypto::engine& engine() { return *_eng; }
    crypto::sa& spoke_out(uint32_t i) { return *_spoke_out[i]; }

    // Lets the pre-encrypted ESP input be replayed: every inbound SA forgets what it saw.
    // With several workers each resets only the SAs it receives (spoke i: worker i % workers,
    // the RSS share the scaling run gives it).
    void reset_replay_windows(uint16_t first = 0, uint16_t step = 1) {
        for (size_t i = first; i < _hub_in.size(); i += step) {
            _hub_in[i]->window().reset_to(0);
        }
    }

    unsigned drain_punts() {
        rte_mbuf* ms[64];
        unsigned total = 0;
        unsigned n = 0;
        while ((n = dp::dequeue_punts(_punts, ms, 64)) != 0) {
            rte_pktmbuf_free_bulk(ms, n);
            total += n;
        }
        return total;
    }

private:
    ring_port make_ring_port(const char* name) {
        ring_port p;
        std::string rx = std::string(name) + "_rx";
        p.rx = rte_ring_create(rx.c_str(), 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
        std::vector<rte_ring*> tx(_workers + 1u);
        for (size_t q = 0; q < tx.size(); ++q) {
            std::string n = std::string(name) + "_tx" + std::to_string(q);
            tx[q] = rte_ring_create(n.c_str(), 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
            if (tx[q] == nullptr) {
                fail("ring " + n);
            }
        }
        if (p.rx == nullptr) {
            fail("ring " + rx);
        }
        // An RX queue per worker, as RSS gives a NIC's: worker w polls queue w.
        std::vector<rte_ring*> rxs(_workers, p.rx);
        for (size_t q = 1; q < rxs.size(); ++q) {
            std::string n = std::string(name) + "_rx" + std::to_string(q);
            rxs[q] = rte_ring_create(n.c_str(), 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
            if (rxs[q] == nullptr) {
                fail("ring " + n);
            }
        }
        p.rxq = rxs;
        int id = rte_eth_from_rings(name, rxs.data(), static_cast<unsigned>(rxs.size()), tx.data(),
                                    static_cast<unsigned>(tx.size()), SOCKET_ID_ANY);
        if (id < 0) {
            fail("rte_eth_from_rings");
        }
        p.id = static_cast<uint16_t>(id);
        dp::port_config cfg;
        cfg.pool = _pool;
        cfg.workers = _workers;
        auto st = dp::setup_port(p.id, cfg);
        if (!st) {
            fail("setup_port: " + std::string(dp::name(st.error())));
        }
        p.mac = st->mac;
        return p;
    }

    uint16_t make_null_port(const char* name) {
        dp::port_config cfg;
        cfg.devargs = std::string(name) + ",no-rx=1";
        cfg.pool = _pool;
        cfg.workers = _workers;
        auto st = dp::open_port(cfg);
        if (!st) {
            fail("open_port " + cfg.devargs + ": " + std::string(dp::name(st.error())));
        }
        return st->id;
    }

    uint32_t _spokes;
    uint16_t _workers = 1;
    rte_mempool* _pool = nullptr;
    rte_ring* _punts = nullptr;
    std::unique_ptr<dp::publisher> _pub;
    std::unique_ptr<crypto::engine> _eng;
    std::vector<std::unique_ptr<crypto::sa>> _hub_out;
    std::vector<std::unique_ptr<crypto::sa>> _hub_in;
    std::vector<std::unique_ptr<crypto::sa>> _spoke_out;
    ring_port _u_in;
    ring_port _l_in;
    uint16_t _u_out = 0;
    uint16_t _l_out = 0;
};

// Pre-built traffic for one case and size: template k is flow k % flows with size
// cycle[k % cycle.size()], so every flow takes every size of the mix in turn.
struct traffic {
    bytes arena;
    std::vector<uint32_t> offset;
    std::vector<uint16_t> length;
    std::vector<uint32_t> esp_sa;  // spoke whose SA encrypts template k (ESP in), else unused
    bool encrypt = false;          // ESP from spokes: frames encrypted at build time
    size_t pass = 0;               // frames used per pass: a whole number of bursts
    size_t next = 0;
    uint32_t flows = 0;
    uint16_t worker = 0;  // the scaling run: this worker's share (what RSS would steer to it)
    uint16_t workers = 1;
};

// ESP input is encrypted once, before anything is timed, so that the spokes' own key schedules
// never share the cache with the hub's: `rounds` frames per template with rising sequence
// numbers. Between two passes over them the hub's inbound replay windows are reset (untimed).
constexpr uint32_t esp_rounds = 8;

traffic build_traffic(kind k, const size_mix& mix, hub& h, uint32_t flows, uint32_t seed,
                      uint16_t worker = 0, uint16_t workers = 1) {
    traffic t;
    t.flows = flows;
    t.worker = worker;
    t.workers = workers;
    t.encrypt = k == kind::esp_transit || k == kind::esp_in;
    uint32_t n = flows;
    size_t c = mix.cycle.size();
    while (n % c != 0 || n < burst) {
        n += flows;
    }
    // Sources and destinations: two independent permutations of the spokes, so consecutive
    // packets come from and go to different spokes (no caching of the last key helps).
    std::mt19937 rng(seed);
    std::vector<uint32_t> src(h.spokes());
    std::iota(src.begin(), src.end(), 0u);
    std::vector<uint32_t> dst = src;
    std::shuffle(src.begin(), src.end(), rng);
    std::shuffle(dst.begin(), dst.end(), rng);
    for (uint32_t i = 0; i < n; ++i) {
        uint32_t f = i % flows;
        uint32_t s = src[f % h.spokes()];
        uint32_t d = dst[f % h.spokes()];
        if (d == s) {
            d = (d + 1) % h.spokes();
        }
        // Several workers: a spoke's packets reach one worker's queue, as RSS on the outer
        // addresses gives (spoke s is worker s % workers); from the LAN, flows spread over the
        // queues, so every worker encrypts for every spoke's SA.
        if (workers > 1 && (k == kind::esp_out ? f : s) % workers != worker) {
            continue;
        }
        uint16_t size = mix.cycle[i % c];
        auto host = static_cast<uint16_t>(f);
        bytes pkt;
        switch (k) {
            case kind::gre: {
                auto inner = ipv4_udp(plan::lan_of(0, s) + 1 + f % 250,
                                      plan::lan_of(0, d) + 1 + f % 250, size, host);
                auto outer =
                    ipv4(plan::nbma(0, s), plan::hub_nbma, 47, gre_keyed(plan::key0, inner));
                pkt = ether(h.u_in().mac, gw_mac, outer);
                break;
            }
            case kind::esp_transit: {
                auto inner = ipv4_udp(plan::lan_of(1, s) + 1 + f % 250,
                                      plan::lan_of(1, d) + 1 + f % 250, size, host);
                pkt = ipv4(plan::nbma(1, s), plan::hub_nbma, 47, gre_keyed(plan::key1, inner));
                t.esp_sa.push_back(s);
                break;
            }
            case kind::esp_in: {
                auto inner =
                    ipv4_udp(plan::lan_of(1, s) + 1 + f % 250, plan::lan_host(f), size, host);
                pkt = ipv4(plan::nbma(1, s), plan::hub_nbma, 47, gre_keyed(plan::key1, inner));
                t.esp_sa.push_back(s);
                break;
            }
            case kind::esp_out: {
                auto inner =
                    ipv4_udp(plan::lan_host(f), plan::lan_of(1, d) + 1 + f % 250, size, host);
                pkt = ether(h.l_in().mac, lan_mac, inner);
                break;
            }
        }
        t.offset.push_back(static_cast<uint32_t>(t.arena.size()));
        t.length.push_back(static_cast<uint16_t>(pkt.size()));
        t.arena.insert(t.arena.end(), pkt.begin(), pkt.end());
    }
    if (t.encrypt) {
        traffic e;
        e.flows = t.flows;
        e.encrypt = true;
        e.worker = t.worker;
        e.workers = t.workers;
        bytes buf;
        for (uint32_t r = 0; r < esp_rounds; ++r) {
            for (size_t i = 0; i < t.offset.size(); ++i) {
                uint32_t len = t.length[i];
                buf.assign(64 + len + 64, 0);
                std::memcpy(buf.data() + 64, t.arena.data() + t.offset[i], len);
                crypto::esp_packet v{buf.data() + 64, len, 64, 64};
                crypto::esp_status st = crypto::esp_status::engine_error;
                (void)crypto::encrypt_burst(h.engine(), h.spoke_out(t.esp_sa[i]), std::span(&v, 1),
                                            std::span(&st, 1));
                if (st != crypto::esp_status::ok) {
                    fail("harness encrypt: " + std::string(crypto::name(st)));
                }
                bytes frame = ether(h.u_in().mac, gw_mac, std::span(v.data, v.len));
                e.offset.push_back(static_cast<uint32_t>(e.arena.size()));
                e.length.push_back(static_cast<uint16_t>(frame.size()));
                e.arena.insert(e.arena.end(), frame.begin(), frame.end());
            }
        }
        t = std::move(e);
    }
    t.pass = t.offset.size() / burst * burst;
    if (t.pass == 0) {
        fail("too few flows per worker for one burst");
    }
    return t;
}

// Fills allocated mbufs with the next frames (untimed: the wire and the NIC's DMA).
void fill(traffic& t, hub& h, rte_mbuf** ms, uint16_t n, uint16_t port) {
    if (t.next == t.pass) {
        t.next = 0;
        if (t.encrypt) {
            h.reset_replay_windows(t.worker, t.workers);
        }
    }
    for (uint16_t i = 0; i < n; ++i) {
        size_t k = t.next++;
        rte_mbuf* m = ms[i];
        uint16_t len = t.length[k];
        char* d = rte_pktmbuf_append(m, len);
        std::memcpy(d, t.arena.data() + t.offset[k], len);
        m->port = port;
    }
}

// The stages as the second pass reports them, in worker::forward's order.
enum stage_id : uint8_t {
    st_rx,
    st_classify,
    st_esp_in,
    st_gre_decap,
    st_route,
    st_resolve,
    st_mtu_mss,
    st_encap,
    st_esp_out,
    st_tx,
    st_flush,
    st_count
};
constexpr const char* stage_names[st_count] = {"rx",      "classify", "esp_in",  "gre_decap",
                                               "route",   "resolve",  "mtu+mss", "encap",
                                               "esp_out", "tx",       "flush"};

// Plain counters indexed by stage: the clock itself must cost next to nothing between two
// rdtsc readings (a std::map keyed by std::string built per lap added ~5 cycles/packet to
// every stage).
struct stage_clock {
    uint64_t cycles[st_count] = {};
    bool seen[st_count] = {};
    uint64_t packets = 0;
};

// One poll done stage by stage, as worker::pipeline and worker::forward do.
uint16_t staged_poll(dp::worker& w, const dp::shared_tables& tables, uint16_t port,
                     stage_clock& clk) {
    namespace st = dp::stage;
    dp::worker_ctx& ctx = w.ctx();
    rte_rcu_qsbr_thread_online(tables.rcu, 0);
    rte_mbuf* pkts[burst];
    uint64_t t0 = rte_rdtsc();
    uint16_t n = rte_eth_rx_burst(port, 0, pkts, burst);
    for (uint16_t i = 0; i < n; ++i) {
        pkts[i]->port = port;
    }
    ctx.now = rte_rdtsc();
    ctx.topo = tables.topo.load(std::memory_order_acquire);
    ctx.spis = tables.spis.load(std::memory_order_acquire);
    ctx.counters.rx_packets += n;
    uint64_t t1 = rte_rdtsc();
    clk.cycles[st_rx] += t1 - t0;
    clk.seen[st_rx] = true;
    clk.packets += n;
    auto lap = [&clk, &t1](stage_id id) {
        uint64_t t = rte_rdtsc();
        clk.cycles[id] += t - t1;
        clk.seen[id] = true;
        t1 = t;
    };
    uint16_t got = n;
    n = st::classify(pkts, n, ctx);
    rte_mbuf* esp[dp::max_burst];
    rte_mbuf* gre[dp::max_burst];
    rte_mbuf* ip[dp::max_burst];
    uint16_t n_esp = 0;
    uint16_t n_gre = 0;
    uint16_t n_ip = 0;
    for (uint16_t i = 0; i < n; ++i) {
        switch (dp::class_of(dp::meta(pkts[i]))) {
            case dp::packet_class::esp:
                esp[n_esp++] = pkts[i];
                break;
            case dp::packet_class::gre:
                gre[n_gre++] = pkts[i];
                break;
            default:
                ip[n_ip++] = pkts[i];
                break;
        }
    }
    lap(st_classify);
    if (n_esp != 0) {
        n_esp = st::esp_in(esp, n_esp, ctx);
        for (uint16_t i = 0; i < n_esp; ++i) {
            gre[n_gre++] = esp[i];
        }
        lap(st_esp_in);
    }
    if (n_gre != 0) {
        n_gre = st::gre_decap(gre, n_gre, ctx);
        for (uint16_t i = 0; i < n_gre; ++i) {
            ip[n_ip++] = gre[i];
        }
        lap(st_gre_decap);
    }
    n_ip = st::route(ip, n_ip, ctx);
    lap(st_route);
    n_ip = st::resolve(ip, n_ip, ctx);
    lap(st_resolve);
    // As worker::forward: after mtu, rounds of at most one burst (fragments can outgrow it).
    uint16_t done = 0;
    while (done < n_ip) {
        rte_mbuf* out[dp::max_burst];
        st::mtu_result r = st::mtu(ip + done, n_ip - done, out, dp::max_burst, ctx);
        done = static_cast<uint16_t>(done + r.consumed);
        uint16_t k = st::mss_clamp(out, r.out, ctx);
        lap(st_mtu_mss);
        k = st::encap(out, k, ctx);
        lap(st_encap);
        if (ctx.out_sa_packets != 0) {  // skipped when no packet has an SA
            k = st::esp_out(out, k, ctx);
        }
        lap(st_esp_out);
        if (k != 0) {
            st::tx(out, k, ctx);
        }
        lap(st_tx);
    }
    ctx.flush_punts();
    ctx.flush_drops();
    lap(st_flush);
    rte_rcu_qsbr_thread_offline(tables.rcu, 0);
    return got;
}

struct result {
    double cycles_per_pkt = 0;
    double alloc_cycles_per_pkt = 0;
    uint64_t packets = 0;
    uint64_t bursts = 0;
    uint64_t discarded = 0;
};

// Times alloc + poll_once per burst; drops bursts that took over 8x the median (preempted).
result measure(dp::worker& w, traffic& t, hub& h, const ring_port& in, double seconds) {
    uint64_t hz = rte_get_tsc_hz();
    uint64_t end = rte_rdtsc() + static_cast<uint64_t>(seconds * static_cast<double>(hz));
    std::vector<uint32_t> total;
    std::vector<uint32_t> alloc;
    total.reserve(static_cast<size_t>(seconds * 50e6 / burst) + 1024);
    alloc.reserve(total.capacity());
    rte_mbuf* ms[burst];
    while (rte_rdtsc() < end) {
        uint64_t a0 = rte_rdtsc();
        if (rte_pktmbuf_alloc_bulk(h.pool(), ms, burst) != 0) {
            fail("pool empty: mbufs are leaking");
        }
        uint64_t a1 = rte_rdtsc();
        fill(t, h, ms, burst, in.id);
        if (rte_ring_sp_enqueue_bulk(in.rx, reinterpret_cast<void**>(ms), burst, nullptr) !=
            burst) {
            fail("rx ring full");
        }
        uint64_t p0 = rte_rdtsc();
        uint32_t got = w.poll_once();
        uint64_t p1 = rte_rdtsc();
        if (got != burst) {
            fail("poll_once took " + std::to_string(got) + " packets");
        }
        h.drain_punts();
        if (total.size() == total.capacity()) {
            break;
        }
        total.push_back(
            static_cast<uint32_t>(std::min<uint64_t>((a1 - a0) + (p1 - p0), UINT32_MAX)));
        alloc.push_back(static_cast<uint32_t>(a1 - a0));
    }
    std::vector<uint32_t> sorted = total;
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<long>(sorted.size() / 2),
                     sorted.end());
    uint64_t limit = uint64_t{sorted[sorted.size() / 2]} * 8;
    result r;
    uint64_t sum = 0;
    uint64_t sum_alloc = 0;
    for (size_t i = 0; i < total.size(); ++i) {
        if (total[i] > limit) {
            ++r.discarded;
            continue;
        }
        sum += total[i];
        sum_alloc += alloc[i];
        ++r.bursts;
    }
    r.packets = r.bursts * burst;
    r.cycles_per_pkt = static_cast<double>(sum) / static_cast<double>(r.packets);
    r.alloc_cycles_per_pkt = static_cast<double>(sum_alloc) / static_cast<double>(r.packets);
    return r;
}

// Sums the stages over bursts, leaving out bursts over 8x the median (preempted), like measure.
stage_clock measure_stages(dp::worker& w, traffic& t, hub& h, const ring_port& in, double seconds) {
    uint64_t hz = rte_get_tsc_hz();
    uint64_t end = rte_rdtsc() + static_cast<uint64_t>(seconds * static_cast<double>(hz));
    std::vector<stage_clock> bursts;
    std::vector<uint64_t> totals;
    rte_mbuf* ms[burst];
    while (rte_rdtsc() < end) {
        stage_clock one;
        uint64_t a0 = rte_rdtsc();
        if (rte_pktmbuf_alloc_bulk(h.pool(), ms, burst) != 0) {
            fail("pool empty: mbufs are leaking");
        }
        one.cycles[st_rx] += rte_rdtsc() - a0;
        fill(t, h, ms, burst, in.id);
        if (rte_ring_sp_enqueue_bulk(in.rx, reinterpret_cast<void**>(ms), burst, nullptr) !=
            burst) {
            fail("rx ring full");
        }
        staged_poll(w, h.tables(), in.id, one);
        h.drain_punts();
        uint64_t total = 0;
        for (uint64_t c : one.cycles) {
            total += c;
        }
        totals.push_back(total);
        bursts.push_back(std::move(one));
    }
    std::vector<uint64_t> sorted = totals;
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<long>(sorted.size() / 2),
                     sorted.end());
    uint64_t limit = sorted[sorted.size() / 2] * 8;
    stage_clock clk;
    for (size_t i = 0; i < bursts.size(); ++i) {
        if (totals[i] > limit) {
            continue;
        }
        for (int s = 0; s < st_count; ++s) {
            clk.cycles[s] += bursts[i].cycles[s];
            clk.seen[s] = clk.seen[s] || bursts[i].seen[s];
        }
        clk.packets += bursts[i].packets;
    }
    return clk;
}

// Starts the EAL, runs `body`, and turns an exception into a message and status 1.
template <typename Body>
int with_eal(const worker_bench_options& o, Body body) {
    auto eal = dp::eal_init(o.eal, "dataplane-bench");
    if (!eal) {
        std::fprintf(stderr, "EAL: %s\n", std::string(dp::name(eal.error())).c_str());
        return 1;
    }
    int rc = 1;
    try {
        rc = body();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "dataplane-bench: %s\n", e.what());
    }
    dp::eal_cleanup();
    return rc;
}

}  // namespace

int run_worker_bench(const worker_bench_options& o) {
    return with_eal(o, [&o]() {
        int rc = 0;
        hub h(o.spokes);
        uint64_t hz = rte_get_tsc_hz();
        uint32_t seed = 1;
        for (const std::string& cs : o.cases) {
            kind k = parse_case(cs);
            const ring_port& in = k == kind::esp_out ? h.l_in() : h.u_in();
            for (const std::string& ss : o.sizes) {
                size_mix mix = parse_size(ss);
                traffic t = build_traffic(k, mix, h, o.spokes, seed++);
                dp::worker_config wc;
                wc.id = 0;
                wc.rx = {{in.id, 0}};
                wc.tables = &h.tables();
                wc.punt_ring = h.punts();
                wc.event_pool = h.pool();
                if (o.rate_limit_slots != 0) {
                    wc.rate_limit_slots = o.rate_limit_slots;
                }
                auto wr = dp::worker::create(wc);
                if (!wr) {
                    fail("worker: " + std::string(dp::name(wr.error())));
                }
                dp::worker& w = **wr;
                (void)measure(w, t, h, in, std::min(0.3, o.seconds / 4));  // warm caches
                result r = measure(w, t, h, in, o.seconds);
                stage_clock clk = measure_stages(w, t, h, in, o.seconds / 3);
                const dp::worker_counters& c = w.counters();
                uint64_t drops = c.total_drops();
                std::printf(
                    "{\"case\": \"%s\", \"pkt_size\": \"%s\", \"workers\": 1, "
                    "\"cycles_per_pkt\": %.2f, \"mpps\": %.3f, \"tsc_hz\": %" PRIu64
                    ", "
                    "\"rx_alloc_cycles_per_pkt\": %.2f, \"packets\": %" PRIu64
                    ", \"bursts_discarded\": %" PRIu64
                    ", \"spokes\": %u, \"flows\": %u, "
                    "\"rate_limit_slots\": %u, "
                    "\"mean_inner_bytes\": %.1f, \"rx\": %" PRIu64 ", \"tx\": %" PRIu64
                    ", \"drops\": %" PRIu64 ", \"redirect_events\": %" PRIu64 ", \"stages\": {",
                    cs.c_str(), mix.name.c_str(), r.cycles_per_pkt,
                    static_cast<double>(hz) / r.cycles_per_pkt / 1e6, hz, r.alloc_cycles_per_pkt,
                    r.packets, r.discarded, o.spokes, t.flows, wc.rate_limit_slots, mix.mean(),
                    c.rx_packets, c.tx_packets, drops,
                    c.punts[static_cast<size_t>(dp::punt_reason::redirect)]);
                bool first = true;
                for (int s = 0; s < st_count; ++s) {
                    if (!clk.seen[s]) {
                        continue;
                    }
                    std::printf(
                        "%s\"%s\": %.2f", first ? "" : ", ", stage_names[s],
                        static_cast<double>(clk.cycles[s]) / static_cast<double>(clk.packets));
                    first = false;
                }
                std::printf("}}\n");
                std::fflush(stdout);
                if (drops != 0 || c.tx_packets != c.rx_packets) {
                    std::fprintf(stderr,
                                 "%s %s: %" PRIu64 " drops, rx %" PRIu64 " tx %" PRIu64 "\n",
                                 cs.c_str(), mix.name.c_str(), drops, c.rx_packets, c.tx_packets);
                    for (size_t i = 0; i < c.drops.size(); ++i) {
                        if (c.drops[i] != 0) {
                            std::fprintf(
                                stderr, "  %s: %" PRIu64 "\n",
                                std::string(dp::name(static_cast<dp::drop_reason>(i))).c_str(),
                                c.drops[i]);
                        }
                    }
                    rc = 1;
                }
            }
        }
        return rc;
    });
}

namespace {

// The scaling run: one lcore per worker, each feeding its own input ring (its RSS share of the
// spokes) and polling it; any worker encrypts for any outbound SA, as in the hub. The main lcore
// drains the punt ring.
struct scale_slot {
    dp::worker* w = nullptr;
    traffic* t = nullptr;
    hub* h = nullptr;
    const ring_port* in = nullptr;
    uint16_t queue = 0;                       // the RX queue this worker polls and is fed through
    const std::atomic<int>* phase = nullptr;  // 0 wait, 1 warm up, 2 measure, 3 drain, 4 stop
    uint64_t cycles = 0;                      // alloc + poll_once while measuring
    uint64_t packets = 0;                     // fed while measuring
    uint64_t pool_empty = 0;
};

int scale_lcore(void* arg) {
    auto* s = static_cast<scale_slot*>(arg);
    rte_mbuf* ms[burst];
    int ph = 0;
    while ((ph = s->phase->load(std::memory_order_acquire)) == 0) {
        rte_pause();
    }
    while (ph == 1 || ph == 2) {
        uint64_t a0 = rte_rdtsc();
        if (rte_pktmbuf_alloc_bulk(s->h->pool(), ms, burst) != 0) {
            ++s->pool_empty;  // other workers' queues hold the mbufs: let this one drain
            (void)s->w->poll_once();
        } else {
            uint64_t a1 = rte_rdtsc();
            fill(*s->t, *s->h, ms, burst, s->in->id);
            if (rte_ring_sp_enqueue_bulk(s->in->rxq[s->queue], reinterpret_cast<void**>(ms), burst,
                                         nullptr) != burst) {
                rte_pktmbuf_free_bulk(ms, burst);
            }
            uint64_t p0 = rte_rdtsc();
            (void)s->w->poll_once();
            uint64_t p1 = rte_rdtsc();
            if (ph == 2) {
                s->cycles += (a1 - a0) + (p1 - p0);
                s->packets += burst;
            }
        }
        ph = s->phase->load(std::memory_order_acquire);
    }
    while (s->phase->load(std::memory_order_acquire) == 3) {
        (void)s->w->poll_once();
    }
    return 0;
}

}  // namespace

int run_scale_bench(const worker_bench_options& o) {
    return with_eal(o, [&o]() {
        int rc = 0;
        uint16_t n = o.workers;
        if (n == 0 || n > dp::max_workers || rte_lcore_count() < n + 1u) {
            fail("--workers " + std::to_string(n) + " needs that many lcores besides the main one");
        }
        hub h(o.spokes, n);
        uint64_t hz = rte_get_tsc_hz();
        uint32_t seed = 1;
        for (const std::string& cs : o.cases) {
            kind k = parse_case(cs);
            for (const std::string& ss : o.sizes) {
                size_mix mix = parse_size(ss);
                ++seed;
                std::vector<traffic> ts;
                std::vector<std::unique_ptr<dp::worker>> ws;
                std::vector<scale_slot> slots(n);
                std::atomic<int> phase{0};
                for (uint16_t i = 0; i < n; ++i) {
                    ts.push_back(build_traffic(k, mix, h, o.spokes, seed, i, n));
                }
                unsigned lcore = rte_get_next_lcore(-1, 1, 0);
                std::vector<unsigned> lcores;
                for (uint16_t i = 0; i < n; ++i) {
                    const ring_port& in = k == kind::esp_out ? h.l_in() : h.u_in();
                    dp::worker_config wc;
                    wc.id = i;
                    wc.tx_queue = i;
                    wc.rx = {{in.id, i}};
                    wc.tables = &h.tables();
                    wc.punt_ring = h.punts();
                    wc.event_pool = h.pool();
                    if (o.rate_limit_slots != 0) {
                        wc.rate_limit_slots = o.rate_limit_slots;
                    }
                    auto wr = dp::worker::create(wc);
                    if (!wr) {
                        fail("worker: " + std::string(dp::name(wr.error())));
                    }
                    ws.push_back(std::move(wr.value()));
                    slots[i] = scale_slot{ws.back().get(), &ts[i], &h, &in, i, &phase, 0, 0, 0};
                    rte_eal_remote_launch(scale_lcore, &slots[i], lcore);
                    lcores.push_back(lcore);
                    lcore = rte_get_next_lcore(lcore, 1, 0);
                }
                auto run_for = [&h, hz](double seconds) {
                    uint64_t end =
                        rte_rdtsc() + static_cast<uint64_t>(seconds * static_cast<double>(hz));
                    while (rte_rdtsc() < end) {
                        if (h.drain_punts() == 0) {
                            rte_delay_us_block(50);
                        }
                    }
                };
                phase.store(1, std::memory_order_release);
                run_for(std::min(0.3, o.seconds / 4));
                phase.store(2, std::memory_order_release);
                run_for(o.seconds);
                phase.store(3, std::memory_order_release);
                run_for(0.05);
                phase.store(4, std::memory_order_release);
                for (unsigned lc : lcores) {
                    rte_eal_wait_lcore(lc);
                }
                h.drain_punts();
                uint64_t cycles = 0;
                uint64_t packets = 0;
                uint64_t rx = 0;
                uint64_t tx = 0;
                uint64_t drops = 0;
                uint64_t pool_empty = 0;
                for (uint16_t i = 0; i < n; ++i) {
                    cycles += slots[i].cycles;
                    packets += slots[i].packets;
                    pool_empty += slots[i].pool_empty;
                    const dp::worker_counters& c = ws[i]->counters();
                    rx += c.rx_packets;
                    tx += c.tx_packets;
                    drops += c.total_drops();
                }
                double cpp = static_cast<double>(cycles) / static_cast<double>(packets);
                double per_worker = static_cast<double>(hz) / cpp / 1e6;
                std::printf(
                    "{\"case\": \"%s\", \"pkt_size\": \"%s\", \"workers\": %u, "
                    "\"cycles_per_pkt\": %.2f, \"mpps\": %.3f, \"aggregate_mpps\": %.3f, "
                    "\"tsc_hz\": %" PRIu64 ", \"packets\": %" PRIu64
                    ", \"spokes\": %u, "
                    "\"rx\": %" PRIu64 ", \"tx\": %" PRIu64 ", \"drops\": %" PRIu64
                    ", \"pool_empty\": %" PRIu64 "}\n",
                    cs.c_str(), mix.name.c_str(), n, cpp, per_worker, per_worker * n, hz, packets,
                    o.spokes, rx, tx, drops, pool_empty);
                std::fflush(stdout);
                // No packet of these cases may be dropped: every drop is reported and fails the
                // run.
                std::vector<uint64_t> by_reason(dp::drop_reason_count, 0);
                for (uint16_t i = 0; i < n; ++i) {
                    const dp::worker_counters& c = ws[i]->counters();
                    for (size_t r = 0; r < c.drops.size() && r < by_reason.size(); ++r) {
                        by_reason[r] += c.drops[r];
                    }
                }
                for (size_t r = 0; r < by_reason.size(); ++r) {
                    if (by_reason[r] == 0) {
                        continue;
                    }
                    auto reason = static_cast<dp::drop_reason>(r);
                    std::fprintf(stderr, "%s %s x%u: %" PRIu64 " dropped as %s\n", cs.c_str(),
                                 mix.name.c_str(), n, by_reason[r],
                                 std::string(dp::name(reason)).c_str());
                    rc = 1;
                }
            }
        }
        return rc;
    });
}

}  // namespace dmvpn::bench
