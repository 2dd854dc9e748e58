// Dataplane test fixture and packet builders.
#include "tests/unit/dataplane_support.hpp"

#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "dataplane/eal.hpp"
#include "dataplane/port.hpp"
#include "dataplane/wire/checksum.hpp"
#include "dataplane/wire/reader.hpp"

namespace dptest {

namespace dp = dmvpn::dp;
namespace wire = dmvpn::wire;

void ensure_eal() {
    static bool started = false;
    if (started) {
        return;
    }
    // Tests run in parallel: each process needs its own runtime directory.
    std::string prefix = "dmvpn-dp-" + std::to_string(getpid());
    auto r = dp::eal_init({"-l", "0-1", "--no-huge", "-m", "1024", "--no-pci", "--no-shconf",
                           "--no-telemetry", "--log-level=warning", "--file-prefix", prefix});
    if (!r) {
        throw std::runtime_error("EAL: " + std::string(dp::name(r.error())));
    }
    started = true;
    std::atexit([] { dp::eal_cleanup(); });
}

std::string unique_name(const char* what) {
    static std::atomic<unsigned> n{0};
    return std::string(what) + std::to_string(n.fetch_add(1));
}

bytes ipv4(uint32_t src, uint32_t dst, uint8_t proto, std::span<const uint8_t> payload,
           ipv4_opts o) {
    bytes p(20);
    p[0] = 0x45;
    wire::store_be16(&p[2], static_cast<uint16_t>(20 + payload.size()));
    wire::store_be16(&p[4], o.id);
    wire::store_be16(&p[6], o.flags_frag);
    p[8] = o.ttl;
    p[9] = proto;
    wire::store_be32(&p[12], src);
    wire::store_be32(&p[16], dst);
    uint16_t c = wire::inet_checksum(p);
    wire::store_be16(&p[10], o.bad_checksum ? static_cast<uint16_t>(c ^ 0x1234) : c);
    p.insert(p.end(), payload.begin(), payload.end());
    return p;
}

bytes gre(uint16_t proto, std::optional<uint32_t> key, std::span<const uint8_t> payload,
          bool with_checksum) {
    bytes g;
    wire::writer w(g);
    uint16_t flags = static_cast<uint16_t>((with_checksum ? 0x8000 : 0) | (key ? 0x2000 : 0));
    w.be16(flags);
    w.be16(proto);
    if (with_checksum) {
        w.be32(0);
    }
    if (key) {
        w.be32(*key);
    }
    w.bytes(payload);
    if (with_checksum) {
        w.patch16(4, wire::inet_checksum(g));
    }
    return g;
}

bytes eth(const rte_ether_addr& dst, const rte_ether_addr& src, uint16_t type,
          std::span<const uint8_t> payload) {
    bytes f(dst.addr_bytes, dst.addr_bytes + 6);
    f.insert(f.end(), src.addr_bytes, src.addr_bytes + 6);
    f.push_back(static_cast<uint8_t>(type >> 8));
    f.push_back(static_cast<uint8_t>(type));
    f.insert(f.end(), payload.begin(), payload.end());
    return f;
}

bytes udp(uint16_t sport, uint16_t dport, size_t payload_len) {
    bytes u(8 + payload_len, 0);
    wire::store_be16(&u[0], sport);
    wire::store_be16(&u[2], dport);
    wire::store_be16(&u[4], static_cast<uint16_t>(u.size()));
    for (size_t i = 8; i < u.size(); ++i) {
        u[i] = static_cast<uint8_t>(i);
    }
    return u;  // checksum 0: none (RFC 768)
}

namespace {

uint16_t tcp_checksum(uint32_t src, uint32_t dst, std::span<const uint8_t> seg) {
    uint8_t pseudo[12];
    wire::store_be32(pseudo, src);
    wire::store_be32(pseudo + 4, dst);
    pseudo[8] = 0;
    pseudo[9] = 6;
    wire::store_be16(pseudo + 10, static_cast<uint16_t>(seg.size()));
    uint32_t sum = wire::checksum_add(0, pseudo);
    sum = wire::checksum_add(sum, seg);
    return wire::checksum_fold(sum);
}

}  // namespace

bytes tcp_syn(uint32_t src, uint32_t dst, uint16_t mss, unsigned pad_nops) {
    size_t opts = pad_nops + 4;
    size_t padded = (opts + 3) / 4 * 4;
    bytes t(20 + padded, 0);
    wire::store_be16(&t[0], 40000);
    wire::store_be16(&t[2], 443);
    wire::store_be32(&t[4], 0x01020304);
    t[12] = static_cast<uint8_t>(((20 + padded) / 4) << 4);
    t[13] = 0x02;  // SYN
    wire::store_be16(&t[14], 65535);
    size_t o = 20;
    for (unsigned i = 0; i < pad_nops; ++i) {
        t[o++] = 1;
    }
    t[o++] = 2;
    t[o++] = 4;
    wire::store_be16(&t[o], mss);
    o += 2;
    while (o < t.size()) {
        t[o++] = 0;  // end of options
    }
    wire::store_be16(&t[16], tcp_checksum(src, dst, t));
    return t;
}

bool tcp_checksum_ok(std::span<const uint8_t> ip) {
    uint32_t ihl = uint32_t{ip[0] & 0x0fu} * 4;
    uint16_t total = wire::load_be16(&ip[2]);
    auto seg = ip.subspan(ihl, total - ihl);
    bytes copy(seg.begin(), seg.end());
    uint16_t stored = wire::load_be16(&copy[16]);
    copy[16] = 0;
    copy[17] = 0;
    return tcp_checksum(wire::load_be32(&ip[12]), wire::load_be32(&ip[16]), copy) == stored;
}

rte_mbuf* to_mbuf(rte_mempool* pool, std::span<const uint8_t> frame, uint16_t port) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    if (m == nullptr) {
        throw std::runtime_error("pool empty");
    }
    char* d = rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size()));
    if (d == nullptr) {
        rte_pktmbuf_free(m);
        throw std::runtime_error("frame too large");
    }
    std::memcpy(d, frame.data(), frame.size());
    m->port = port;
    return m;
}

bytes data_of(const rte_mbuf* m) {
    const uint8_t* p = rte_pktmbuf_mtod(m, const uint8_t*);
    return bytes(p, p + rte_pktmbuf_data_len(m));
}

ring_port env::make_port(const char* role, uint16_t workers) {
    ring_port p;
    auto mk = [](const char* what) {
        std::string n = unique_name(what);
        rte_ring* r = rte_ring_create(n.c_str(), 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (r == nullptr) {
            throw std::runtime_error("ring create " + n);
        }
        return r;
    };
    for (uint16_t w = 0; w < workers; ++w) {
        p.rx.push_back(mk("rx"));
    }
    for (uint16_t w = 0; w <= workers; ++w) {
        p.tx.push_back(mk("tx"));
    }
    std::string n = unique_name(role);
    int id = rte_eth_from_rings(n.c_str(), p.rx.data(), workers, p.tx.data(), workers + 1u, 0);
    if (id < 0) {
        throw std::runtime_error("rte_eth_from_rings");
    }
    p.id = static_cast<uint16_t>(id);
    dp::port_config cfg;
    cfg.workers = workers;
    cfg.pool = _pool;
    auto st = dp::setup_port(p.id, cfg);
    if (!st) {
        throw std::runtime_error("setup_port: " + std::string(dp::name(st.error())));
    }
    p.mac = st->mac;
    return p;
}

void env::destroy_port(ring_port& p) {
    dp::close_port(p.id);
    for (auto* rings : {&p.rx, &p.tx}) {
        for (rte_ring* r : *rings) {
            void* m = nullptr;
            while (rte_ring_dequeue(r, &m) == 0) {
                rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
            }
            rte_ring_free(r);
        }
        rings->clear();
    }
}

env::env(uint16_t workers, unsigned punt_ring_size, dmvpn::crypto::sa* tunnel1_out_sa) {
    ensure_eal();
    _pool_size = 4095;
    _pool = rte_pktmbuf_pool_create(unique_name("pool").c_str(), _pool_size, 0, 0,
                                    RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    if (_pool == nullptr) {
        throw std::runtime_error("pool");
    }
    _punts = dp::create_punt_ring(unique_name("punt").c_str(), punt_ring_size, SOCKET_ID_ANY);
    dp::publisher_config pc;
    pc.name = unique_name("pub");
    pc.workers = workers;
    pc.adjacencies = 64;
    pc.max_routes = 1024;
    pc.tbl8s = 64;
    pc.first_allocated_id = 8;  // 1..7 are the fixed adjacencies below and the tests' own
    auto p = dp::publisher::create(pc);
    if (!p || _punts == nullptr) {
        throw std::runtime_error("publisher");
    }
    _pub = std::move(p.value());
    _lan = make_port("lan", workers);
    _underlay = make_port("und", workers);

    dp::topology t;
    t.n_ports = static_cast<uint16_t>(std::max(_lan.id, _underlay.id) + 1);
    t.ports[_lan.id].mac = _lan.mac;
    t.ports[_underlay.id].mac = _underlay.mac;
    dp::tunnel_info t0;
    t0.nbma = net::hub_nbma;
    t0.overlay = net::hub_overlay;
    t0.has_key = true;
    t0.key = net::key0;
    t0.ip_mtu = net::mtu0;
    t0.tcp_mss = net::mss0;
    t0.ttl = 64;
    t0.underlay_port = _underlay.id;
    dp::tunnel_info t1 = t0;
    t1.overlay = net::hub_overlay1;
    t1.key = net::key1;
    t1.ipsec = true;
    t1.tcp_mss = 0;
    t.tunnels[0] = t0;
    t.tunnels[1] = t1;
    t.n_tunnels = 2;
    _pub->set_topology(t);

    using dp::publish_status;
    using dp::route_kind;
    auto must = [](publish_status s) {
        if (s != publish_status::ok) {
            throw std::runtime_error("publish: " + std::string(dp::name(s)));
        }
    };
    must(_pub->set_tunnel_adjacency(1,
                                    {0, net::spoke2, net::spoke2_nbma, underlay_gw_mac, nullptr}));
    must(_pub->set_tunnel_adjacency(2,
                                    {0, net::spoke3, net::spoke3_nbma, underlay_gw_mac, nullptr}));
    must(_pub->set_lan_adjacency(3, {_lan.id, net::lan_host, lan_host_mac}));
    must(_pub->set_incomplete(4, 0, _underlay.id, net::spoke4));
    if (tunnel1_out_sa != nullptr) {
        must(_pub->set_tunnel_adjacency(
            5, {1, net::spoke5, net::spoke5_nbma, underlay_gw_mac, tunnel1_out_sa}));
        must(_pub->add_route(net::spoke5, 32, {route_kind::adjacency, 5}));
    }
    for (uint32_t a : {net::hub_nbma, net::hub_overlay, net::hub_overlay1, net::hub_lan}) {
        must(_pub->add_route(a, 32, {route_kind::local, 0}));
    }
    must(_pub->add_route(ip4(10, 0, 0, 0), 24, {route_kind::glean_tunnel, 0}));
    must(_pub->add_route(ip4(10, 1, 0, 0), 24, {route_kind::glean_tunnel, 1}));
    must(_pub->add_route(ip4(172, 16, 0, 0), 24, {route_kind::glean_lan, _lan.id}));
    must(_pub->add_route(net::spoke2, 32, {route_kind::adjacency, 1}));
    must(_pub->add_route(net::spoke3, 32, {route_kind::adjacency, 2}));
    must(_pub->add_route(net::lan_host, 32, {route_kind::adjacency, 3}));
    must(_pub->add_route(ip4(10, 20, 0, 0), 16, {route_kind::adjacency, 1}));
    must(_pub->add_route(ip4(10, 30, 0, 0), 16, {route_kind::adjacency, 4}));
    must(_pub->add_route(ip4(10, 40, 0, 0), 16, {route_kind::blackhole, 0}));

    _stats = std::make_unique<dp::stats_registry>(workers);
    for (uint16_t w = 0; w < workers; ++w) {
        dp::worker_config wc;
        wc.id = w;
        wc.rx = {{_lan.id, w}, {_underlay.id, w}};
        wc.tx_queue = w;
        wc.tables = &_pub->tables();
        wc.punt_ring = _punts;
        wc.event_pool = _pool;
        wc.stats = &_stats->of(w);
        auto wk = dp::worker::create(wc);
        if (!wk) {
            throw std::runtime_error("worker: " + std::string(dp::name(wk.error())));
        }
        _workers.push_back(std::move(wk.value()));
    }
}

dp::worker& env::forwarder() {
    if (!_forwarder) {
        dp::worker_config fc;
        fc.id = _pub->tables().workers;
        fc.control = true;
        fc.tx_queue = fc.id;
        fc.tables = &_pub->tables();
        fc.punt_ring = _punts;
        fc.event_pool = _pool;
        fc.rate_limit_slots = 1024;
        auto f = dp::worker::create(fc);
        if (!f) {
            throw std::runtime_error("forwarder: " + std::string(dp::name(f.error())));
        }
        _forwarder = std::move(f.value());
    }
    return *_forwarder;
}

env::~env() {
    _workers.clear();
    _forwarder.reset();
    _pub.reset();
    if (_punts != nullptr) {
        void* m = nullptr;
        while (rte_ring_dequeue(_punts, &m) == 0) {
            rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
        }
        rte_ring_free(_punts);
    }
    destroy_port(_lan);
    destroy_port(_underlay);
    rte_mempool_free(_pool);
}

unsigned env::pool_in_use() const { return _pool_size - rte_mempool_avail_count(_pool); }

void env::from_underlay(std::vector<bytes> frames, uint16_t w) {
    std::vector<rte_mbuf*> ms;
    for (auto& f : frames) {
        ms.push_back(to_mbuf(_pool, f, _underlay.id));
    }
    worker(w).process(ms.data(), static_cast<uint16_t>(ms.size()));
}

void env::from_lan(std::vector<bytes> frames, uint16_t w) {
    std::vector<rte_mbuf*> ms;
    for (auto& f : frames) {
        ms.push_back(to_mbuf(_pool, f, _lan.id));
    }
    worker(w).process(ms.data(), static_cast<uint16_t>(ms.size()));
}

std::vector<bytes> env::sent_on(const ring_port& p, uint16_t w) {
    std::vector<bytes> out;
    void* m = nullptr;
    while (rte_ring_dequeue(p.tx.at(w), &m) == 0) {
        auto* mb = static_cast<rte_mbuf*>(m);
        out.push_back(data_of(mb));
        rte_pktmbuf_free(mb);
    }
    return out;
}

std::vector<dp::punt_record> env::punts() {
    std::vector<dp::punt_record> out;
    rte_mbuf* ms[64];
    unsigned n = 0;
    while ((n = dp::dequeue_punts(_punts, ms, 64)) != 0) {
        for (unsigned i = 0; i < n; ++i) {
            out.push_back(dp::read_punt(ms[i]));
        }
    }
    return out;
}

void env::free_all(std::vector<dp::punt_record>& v) {
    for (auto& r : v) {
        rte_pktmbuf_free(r.m);
    }
    v.clear();
}

bytes env::gre_frame(uint32_t spoke_nbma, std::optional<uint32_t> key, uint16_t proto,
                     std::span<const uint8_t> inner) const {
    auto g = gre(proto, key, inner);
    auto ip = ipv4(spoke_nbma, net::hub_nbma, 47, g);
    return eth(_underlay.mac, underlay_gw_mac, RTE_ETHER_TYPE_IPV4, ip);
}

bytes env::lan_frame(std::span<const uint8_t> ip_packet) const {
    return eth(_lan.mac, lan_host_mac, RTE_ETHER_TYPE_IPV4, ip_packet);
}

}  // namespace dptest
