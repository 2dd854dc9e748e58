// Golden-pcap test of the whole worker pipeline through DPDK's net_pcap PMD: tests/golden/
// scenario.py writes the hub's tables, the input captures and the expected outputs; this runner
// publishes those tables the way the hub's control lcore does, lets a worker poll two net_pcap
// ports (rx_pcap= / tx_pcap=), asserts the counters per named reason and the mbuf pool, and
// hands the captures it produced to tests/golden/check.py (packet comparison, tshark).
#include <arpa/inet.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_mempool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "crypto/engine.hpp"
#include "crypto/sa.hpp"
#include "dataplane/port.hpp"
#include "dataplane/publisher.hpp"
#include "dataplane/punt.hpp"
#include "dataplane/stats.hpp"
#include "dataplane/worker.hpp"
#include "tests/unit/dataplane_support.hpp"

namespace dp = dmvpn::dp;
namespace crypto = dmvpn::crypto;
namespace fs = std::filesystem;

namespace {

std::string env_or(const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return v != nullptr ? std::string(v) : std::string(fallback);
}

std::string source_dir() { return env_or("DMVPN_SOURCE", "."); }

// Runs a command line, returning its exit status (the scripts print their own diagnostics).
int run(const std::string& cmd) {
    INFO("running " << cmd);
    int rc = std::system(cmd.c_str());
    return rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

uint32_t parse_ip(const std::string& s) {
    in_addr a{};
    if (inet_pton(AF_INET, s.c_str(), &a) != 1) {
        FAIL("bad IPv4 address in setup.txt: " << s);
    }
    return ntohl(a.s_addr);
}

std::string format_ip(uint32_t a) {
    in_addr n{htonl(a)};
    char buf[INET_ADDRSTRLEN];
    return inet_ntop(AF_INET, &n, buf, sizeof buf) != nullptr ? buf : "?";
}

rte_ether_addr parse_mac(const std::string& s) {
    rte_ether_addr m{};
    if (rte_ether_unformat_addr(s.c_str(), &m) != 0) {
        FAIL("bad MAC in setup.txt: " << s);
    }
    return m;
}

std::vector<uint8_t> parse_hex(const std::string& s) {
    std::vector<uint8_t> out;
    if (s == "-") {
        return out;
    }
    for (size_t i = 0; i + 1 < s.size(); i += 2) {
        out.push_back(static_cast<uint8_t>(std::stoul(s.substr(i, 2), nullptr, 16)));
    }
    return out;
}

std::string hex(const uint8_t* p, size_t n) {
    static const char digits[] = "0123456789abcdef";
    std::string s;
    for (size_t i = 0; i < n; ++i) {
        s += digits[p[i] >> 4];
        s += digits[p[i] & 15];
    }
    return s;
}

std::vector<std::vector<std::string>> read_lines(const fs::path& p) {
    std::ifstream in(p);
    REQUIRE(in.good());
    std::vector<std::vector<std::string>> rows;
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::vector<std::string> words;
        std::string w;
        while (ls >> w) {
            words.push_back(w);
        }
        if (!words.empty()) {
            rows.push_back(std::move(words));
        }
    }
    return rows;
}

crypto::cipher_alg cipher_of(const std::string& s) {
    if (s == "aes_gcm_16") {
        return crypto::cipher_alg::aes_gcm_16;
    }
    if (s == "des3_cbc") {
        return crypto::cipher_alg::des3_cbc;
    }
    REQUIRE(s == "aes_cbc");
    return crypto::cipher_alg::aes_cbc;
}

crypto::integ_alg integ_of(const std::string& s) {
    if (s == "hmac_sha1_96") {
        return crypto::integ_alg::hmac_sha1_96;
    }
    if (s == "hmac_sha256_128") {
        return crypto::integ_alg::hmac_sha256_128;
    }
    if (s == "hmac_md5_96") {
        return crypto::integ_alg::hmac_md5_96;
    }
    REQUIRE(s == "none");
    return crypto::integ_alg::none;
}

void must(dp::publish_status s) {
    INFO("publish: " << dp::name(s));
    REQUIRE(s == dp::publish_status::ok);
}

// The hub's dataplane built from setup.txt: a pool, two net_pcap ports (lan, underlay), a
// publisher with topology, SAs, adjacencies and routes, and one worker polling both ports.
class golden_hub {
public:
    explicit golden_hub(const fs::path& dir) : _dir(dir) {
        dptest::ensure_eal();
        // Nothing is cached per lcore (cache size 0): the pool's count is exact at any time.
        _pool = rte_pktmbuf_pool_create(dptest::unique_name("golden_pool").c_str(), 2047, 0, 0,
                                        RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
        REQUIRE(_pool != nullptr);
        _pool_start = rte_mempool_avail_count(_pool);
        _punts =
            dp::create_punt_ring(dptest::unique_name("golden_punt").c_str(), 1024, SOCKET_ID_ANY);
        REQUIRE(_punts != nullptr);
        dp::publisher_config pc;
        pc.name = dptest::unique_name("golden_pub");
        pc.workers = 1;
        pc.adjacencies = 64;
        pc.max_routes = 1024;
        pc.tbl8s = 64;
        auto p = dp::publisher::create(pc);
        REQUIRE(p.has_value());
        _pub = std::move(p.value());
        auto eng = crypto::engine::create();
        REQUIRE(eng.has_value());
        _engine = std::move(eng.value());
        configure(read_lines(dir / "setup.txt"));
    }

    ~golden_hub() {
        _worker.reset();
        _pub.reset();
        close_ports();
        drain_punts();
        if (_punts != nullptr) {
            rte_ring_free(_punts);
        }
        _sas.clear();
        if (_pool != nullptr) {
            rte_mempool_free(_pool);
        }
    }

    golden_hub(const golden_hub&) = delete;
    golden_hub& operator=(const golden_hub&) = delete;

    // Polls until both input captures are exhausted (net_pcap returns 0 at their end).
    void run_until_idle() {
        unsigned idle = 0;
        for (unsigned pass = 0; idle < 3 && pass < 10000; ++pass) {
            idle = _worker->poll_once() == 0 ? idle + 1 : 0;
        }
        REQUIRE(idle == 3);
    }

    // Dequeues every punt into punts.txt (format in tests/golden/scenario.py), freeing them.
    void write_punts() {
        std::ofstream out(_dir / "punts.txt");
        rte_mbuf* ms[64];
        unsigned n = 0;
        while ((n = dp::dequeue_punts(_punts, ms, 64)) != 0) {
            for (unsigned i = 0; i < n; ++i) {
                dp::punt_record r = dp::read_punt(ms[i]);
                out << dp::name(r.reason) << ' '
                    << (r.tunnel == dp::no_tunnel ? std::string("-") : std::to_string(r.tunnel))
                    << ' ' << role_of(r.in_port) << ' ' << format_ip(r.outer_src) << ' '
                    << (r.reason == dp::punt_reason::glean || r.reason == dp::punt_reason::redirect
                            ? format_ip(r.nexthop)
                            : std::string("-"))
                    << ' ' << aux_of(r) << ' '
                    << hex(rte_pktmbuf_mtod(r.m, const uint8_t*), rte_pktmbuf_data_len(r.m))
                    << '\n';
                rte_pktmbuf_free(r.m);
            }
        }
    }

    // The published counters against expect_counters.txt: every drop and punt reason by name
    // (absent = 0), and packets per port.
    void check_counters() {
        std::map<std::string, uint64_t> want;
        for (const auto& row : read_lines(_dir / "expect_counters.txt")) {
            REQUIRE(row.size() == 3);
            want[row[0] + " " + row[1]] = std::stoull(row[2]);
        }
        dp::worker_counters c = _stats->read(0);
        auto expected = [&](const std::string& k) {
            auto it = want.find(k);
            return it == want.end() ? uint64_t{0} : it->second;
        };
        for (size_t i = 0; i < dp::drop_reason_count; ++i) {
            std::string k = "drop " + std::string(dp::name(static_cast<dp::drop_reason>(i)));
            INFO(k);
            CHECK(c.drops[i] == expected(k));
            want.erase(k);
        }
        for (size_t i = 0; i < dp::punt_reason_count; ++i) {
            std::string k = "punt " + std::string(dp::name(static_cast<dp::punt_reason>(i)));
            INFO(k);
            CHECK(c.punts[i] == expected(k));
            want.erase(k);
        }
        for (const auto& [role, id] : _ports) {
            INFO(role);
            CHECK(c.port_rx_packets[id] == expected("rx " + role));
            CHECK(c.port_tx_packets[id] == expected("tx " + role));
            want.erase("rx " + role);
            want.erase("tx " + role);
        }
        // A reason the generator expects that the dataplane does not even name.
        for (const auto& [k, v] : want) {
            FAIL_CHECK("unknown counter in expect_counters.txt: " << k);
        }
    }

    // Closes the ports (net_pcap flushes and closes its tx_pcap files on stop).
    void close_ports() {
        for (const auto& [role, id] : _ports) {
            dp::close_port(id);
        }
        _ports.clear();
    }

    void drain_punts() {
        if (_punts == nullptr) {
            return;
        }
        void* m = nullptr;
        while (rte_ring_dequeue(_punts, &m) == 0) {
            rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
        }
    }

    unsigned pool_start() const { return _pool_start; }
    unsigned pool_now() const { return rte_mempool_avail_count(_pool); }

private:
    std::string role_of(uint16_t port) const {
        for (const auto& [role, id] : _ports) {
            if (id == port) {
                return role;
            }
        }
        return "port" + std::to_string(port);
    }

    std::string aux_of(const dp::punt_record& r) const {
        switch (r.reason) {
            case dp::punt_reason::frag_needed:
                return std::to_string(r.mtu);
            case dp::punt_reason::glean:
                if ((r.mtu & dp::glean_lan_port_bit) != 0) {
                    return "port:" +
                           role_of(static_cast<uint16_t>(r.mtu & ~dp::glean_lan_port_bit));
                }
                return "tunnel:" + std::to_string(r.mtu);
            default:
                return "-";
        }
    }

    uint16_t open_pcap_port(const std::string& role) {
        // Queue 0 is the worker's TX queue, queue 1 the control lcore's (dp::setup_port).
        std::string dev = dptest::unique_name("net_pcap_golden");
        dp::port_config pc;
        pc.devargs = dev + ",rx_pcap=" + (_dir / (role + "_in.pcap")).string() +
                     ",tx_pcap=" + (_dir / ("out_" + role + ".pcap")).string() +
                     ",tx_pcap=" + (_dir / ("control_" + role + ".pcap")).string();
        pc.workers = 1;
        pc.pool = _pool;
        pc.rx_desc = 512;
        pc.tx_desc = 512;
        auto st = dp::open_port(pc);
        INFO(pc.devargs << ": " << (st ? "" : dp::name(st.error())));
        REQUIRE(st.has_value());
        _ports[role] = st->id;
        _rx_queues[st->id] = st->rx_queues;
        return st->id;
    }

    crypto::sa* sa_named(const std::string& name) {
        if (name == "-") {
            return nullptr;
        }
        auto it = _sas.find(name);
        INFO("SA " << name);
        REQUIRE(it != _sas.end());
        return it->second.get();
    }

    void configure(const std::vector<std::vector<std::string>>& rows) {
        dp::topology topo;
        // Ports and tunnels first: adjacencies are built against the topology.
        for (const auto& r : rows) {
            if (r[0] == "port") {
                REQUIRE(r.size() == 3);
                uint16_t id = open_pcap_port(r[1]);
                REQUIRE(id < dp::max_ports);
                // net_pcap cannot change its MAC (ENOTSUP) and picks it at probe time, after the
                // generator ran, and it does not filter by destination. So the topology carries
                // the MAC the generator chose where the hub publishes the port's own: workers
                // take the source MAC of what they send from the topology, never from the PMD.
                topo.ports[id].mac = parse_mac(r[2]);
                topo.n_ports = std::max<uint16_t>(topo.n_ports, static_cast<uint16_t>(id + 1));
            }
        }
        REQUIRE(_ports.count("underlay") == 1);
        for (const auto& r : rows) {
            if (r[0] == "tunnel") {
                REQUIRE(r.size() == 9);
                auto i = static_cast<uint16_t>(std::stoul(r[1]));
                dp::tunnel_info& t = topo.tunnels[i];
                t.nbma = parse_ip(r[2]);
                t.overlay = parse_ip(r[3]);
                t.has_key = true;
                t.key = static_cast<uint32_t>(std::stoul(r[4]));
                t.ipsec = r[5] == "1";
                t.ip_mtu = static_cast<uint16_t>(std::stoul(r[6]));
                t.tcp_mss = static_cast<uint16_t>(std::stoul(r[7]));
                t.ttl = static_cast<uint8_t>(std::stoul(r[8]));
                t.underlay_port = _ports["underlay"];
                topo.n_tunnels = std::max<uint16_t>(topo.n_tunnels, static_cast<uint16_t>(i + 1));
            } else if (r[0] == "sa") {
                REQUIRE(r.size() == 8);
                auto ckey = parse_hex(r[5]);
                auto ikey = parse_hex(r[7]);
                crypto::sa_params sp;
                sp.spi = static_cast<uint32_t>(std::stoul(r[3], nullptr, 16));
                sp.direction =
                    r[2] == "in" ? crypto::sa_direction::inbound : crypto::sa_direction::outbound;
                sp.cipher = cipher_of(r[4]);
                sp.cipher_key = ckey;
                sp.integ = integ_of(r[6]);
                sp.integ_key = ikey;
                auto s = crypto::sa::create(sp, *_engine);
                INFO("SA " << r[1] << ": " << (s ? "" : crypto::name(s.error())));
                REQUIRE(s.has_value());
                _sas[r[1]] = std::move(s.value());
            }
        }
        _pub->set_topology(topo);

        std::vector<dp::inbound_sa> inbound;
        for (const auto& r : rows) {
            if (r[0] == "inbound") {
                REQUIRE(r.size() == 3);
                crypto::sa* s = sa_named(r[1]);
                inbound.push_back(
                    dp::inbound_sa{s->spi(), static_cast<uint16_t>(std::stoul(r[2])), s});
            } else if (r[0] == "adj_tunnel") {
                REQUIRE(r.size() == 7);
                dp::tunnel_adjacency_spec spec{static_cast<uint16_t>(std::stoul(r[2])),
                                               parse_ip(r[3]),
                                               parse_ip(r[4]),
                                               parse_mac(r[5]),
                                               sa_named(r[6]),
                                               0};
                must(_pub->set_tunnel_adjacency(static_cast<uint32_t>(std::stoul(r[1])), spec));
            } else if (r[0] == "adj_lan") {
                REQUIRE(r.size() == 5);
                must(_pub->set_lan_adjacency(static_cast<uint32_t>(std::stoul(r[1])),
                                             {_ports.at(r[2]), parse_ip(r[3]), parse_mac(r[4])}));
            } else if (r[0] == "adj_incomplete") {
                REQUIRE(r.size() == 4);
                must(_pub->set_incomplete(static_cast<uint32_t>(std::stoul(r[1])),
                                          static_cast<uint16_t>(std::stoul(r[2])),
                                          _ports["underlay"], parse_ip(r[3])));
            } else if (r[0] == "route") {
                REQUIRE(r.size() == 5);
                static const std::map<std::string, dp::route_kind> kinds = {
                    {"adjacency", dp::route_kind::adjacency},
                    {"local", dp::route_kind::local},
                    {"blackhole", dp::route_kind::blackhole},
                    {"glean_tunnel", dp::route_kind::glean_tunnel},
                    {"glean_lan", dp::route_kind::glean_lan}};
                dp::route_target t{kinds.at(r[3]), 0};
                if (t.kind == dp::route_kind::glean_lan) {
                    t.index = _ports.at(r[4]);
                } else if (r[4] != "-") {
                    t.index = static_cast<uint32_t>(std::stoul(r[4]));
                }
                must(_pub->add_route(parse_ip(r[1]), static_cast<uint8_t>(std::stoul(r[2])), t));
            }
        }
        _pub->set_inbound_sas(inbound);

        _stats = std::make_unique<dp::stats_registry>(1);
        dp::worker_config wc;
        wc.id = 0;
        // The only worker polls every RX queue (net_pcap has one per rx_pcap).
        for (const auto& [id, queues] : _rx_queues) {
            for (uint16_t q = 0; q < queues; ++q) {
                wc.rx.push_back({id, q});
            }
        }
        wc.tx_queue = 0;
        wc.tables = &_pub->tables();
        wc.punt_ring = _punts;
        wc.event_pool = _pool;
        wc.stats = &_stats->of(0);
        auto w = dp::worker::create(wc);
        REQUIRE(w.has_value());
        _worker = std::move(w.value());
    }

    fs::path _dir;
    rte_mempool* _pool = nullptr;
    unsigned _pool_start = 0;
    rte_ring* _punts = nullptr;
    std::unique_ptr<crypto::engine> _engine;
    std::map<std::string, std::unique_ptr<crypto::sa>> _sas;  // outlive the publisher
    std::unique_ptr<dp::publisher> _pub;
    std::unique_ptr<dp::stats_registry> _stats;
    std::unique_ptr<dp::worker> _worker;
    std::map<std::string, uint16_t> _ports;   // role -> DPDK port id
    std::map<uint16_t, uint16_t> _rx_queues;  // DPDK port id -> RX queues
};

}  // namespace

TEST_CASE("golden pcaps: the worker pipeline on net_pcap ports matches scapy's expectations",
          "[dataplane][golden]") {
    std::string tmpl = (fs::temp_directory_path() / "dmvpn-golden-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    fs::path dir = tmpl;
    const std::string py = "/usr/bin/python3";
    const std::string golden = source_dir() + "/tests/golden/";
    REQUIRE(run(py + " " + golden + "scenario.py " + dir.string()) == 0);

    {
        golden_hub hub(dir);
        hub.run_until_idle();
        hub.write_punts();
        hub.check_counters();
        hub.close_ports();
        // Every mbuf came back: the ones transmitted (freed by net_pcap after writing), dropped
        // and punted (freed above), and the redirect events.
        CHECK(hub.pool_now() == hub.pool_start());
    }

    // Packet by packet against the expected captures, punts against expect_punts.txt, and the
    // produced ESP through tshark with the hub's keys.
    CHECK(run(py + " " + golden + "check.py " + dir.string()) == 0);
    if (std::getenv("DMVPN_GOLDEN_KEEP") == nullptr) {
        fs::remove_all(dir);
    } else {
        WARN("kept " << dir);
    }
}
