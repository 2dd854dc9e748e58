// The worker loop end to end on a worker lcore between two ring-backed ports in one process,
// and port set-up from vdev strings.
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "dataplane/port.hpp"
#include "dataplane/wire/reader.hpp"
#include "tests/unit/dataplane_support.hpp"

using namespace dptest;
namespace dp = dmvpn::dp;
namespace wire = dmvpn::wire;

namespace {

void inject(env& e, rte_ring* r, const std::vector<bytes>& frames) {
    for (auto& f : frames) {
        rte_mbuf* m = to_mbuf(e.pool(), f, 0);
        while (rte_ring_enqueue(r, m) != 0) {
            std::this_thread::yield();
        }
    }
}

// Collects what the worker sends until `want` frames arrived on each port or time runs out.
struct collected {
    std::vector<bytes> lan, underlay;
};
collected collect(env& e, size_t want_lan, size_t want_underlay) {
    collected c;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while ((c.lan.size() < want_lan || c.underlay.size() < want_underlay) &&
           std::chrono::steady_clock::now() < deadline) {
        for (auto& f : e.sent_on(e.lan())) {
            c.lan.push_back(f);
        }
        for (auto& f : e.sent_on(e.underlay())) {
            c.underlay.push_back(f);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return c;
}

}  // namespace

TEST_CASE("Worker lcore forwards between two ring ports, punts and counts", "[dataplane][worker]") {
    env e;
    unsigned lcore = rte_get_next_lcore(rte_lcore_id(), 1, 0);
    REQUIRE(lcore < RTE_MAX_LCORE);
    std::atomic<bool> stop{false};
    dp::worker::launch_args args{&e.worker(), &stop};
    REQUIRE(rte_eal_remote_launch(dp::worker::lcore_main, &args, lcore) == 0);

    constexpr size_t n_out = 200;
    constexpr size_t n_in = 100;
    std::vector<bytes> lan_frames;
    for (size_t i = 0; i < n_out; ++i) {
        uint32_t dst = (i % 2 == 0) ? net::spoke2 : net::spoke3;
        lan_frames.push_back(
            e.lan_frame(ipv4(net::lan_host, dst, 17, udp(static_cast<uint16_t>(i), 9, 40))));
    }
    lan_frames.push_back(
        e.lan_frame(ipv4(net::lan_host, dptest::ip4(10, 0, 0, 99), 17, udp(1, 2, 8))));
    std::vector<bytes> underlay_frames;
    for (size_t i = 0; i < n_in; ++i) {
        auto inner = ipv4(net::spoke2, net::lan_host, 17, udp(static_cast<uint16_t>(i), 9, 40));
        underlay_frames.push_back(e.gre_frame(net::spoke2_nbma, net::key0, 0x0800, inner));
    }
    bytes nhrp(40, 0x5a);
    underlay_frames.push_back(e.gre_frame(net::spoke3_nbma, net::key0, 0x2001, nhrp));
    underlay_frames.push_back(e.gre_frame(net::spoke3_nbma, 4242, 0x0800, nhrp));

    inject(e, e.lan().rx[0], lan_frames);
    inject(e, e.underlay().rx[0], underlay_frames);
    // The control lcore reads counters while the worker runs.
    auto mid = e.stats().total();
    auto got = collect(e, n_in, n_out);
    // Wait for the counters of the last bursts to be published.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (e.stats().total().rx_packets < lan_frames.size() + underlay_frames.size() &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    stop.store(true);
    CHECK(rte_eal_wait_lcore(lcore) == 0);

    REQUIRE(got.underlay.size() == n_out);
    REQUIRE(got.lan.size() == n_in);
    for (size_t i = 0; i < n_out; ++i) {
        const bytes& f = got.underlay[i];
        // Order is kept: even packets to spoke 2's NBMA, odd ones to spoke 3's.
        uint32_t want = (i % 2 == 0) ? net::spoke2_nbma : net::spoke3_nbma;
        CHECK(wire::load_be32(&f[14 + 16]) == want);
        CHECK(wire::load_be32(&f[14 + 24]) == net::key0);
        CHECK(wire::load_be16(&f[14 + 28 + 20]) == i);  // UDP source port = sequence
    }
    for (size_t i = 0; i < n_in; ++i) {
        CHECK(wire::load_be32(&got.lan[i][14 + 16]) == net::lan_host);
        CHECK(wire::load_be16(&got.lan[i][14 + 20]) == i);
    }
    auto p = e.punts();
    REQUIRE(p.size() == 2);
    std::sort(p.begin(), p.end(), [](auto& a, auto& b) { return a.reason < b.reason; });
    CHECK(p[0].reason == dp::punt_reason::nhrp);
    CHECK(p[0].outer_src == net::spoke3_nbma);
    CHECK(p[1].reason == dp::punt_reason::glean);
    env::free_all(p);

    auto total = e.stats().total();
    CHECK(mid.rx_packets <= total.rx_packets);
    CHECK(total.rx_packets == lan_frames.size() + underlay_frames.size());
    CHECK(total.tx_packets == n_out + n_in);
    CHECK(total.port_rx_packets[e.lan().id] == lan_frames.size());
    CHECK(total.port_rx_packets[e.underlay().id] == underlay_frames.size());
    CHECK(total.port_tx_packets[e.underlay().id] == n_out);
    CHECK(total.drop(dp::drop_reason::gre_unknown_key) == 1);
    CHECK(total.punt(dp::punt_reason::nhrp) == 1);
    CHECK(total.punt(dp::punt_reason::glean) == 1);
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("Ports open from vdev strings; queues, MTU, MAC and link are reported",
          "[dataplane][port]") {
    ensure_eal();
    rte_mempool* pool = rte_pktmbuf_pool_create(unique_name("ppool").c_str(), 4095, 0, 0,
                                                RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    REQUIRE(pool != nullptr);
    {
        dp::port_config cfg;
        cfg.devargs = "net_null0";
        cfg.workers = 2;
        cfg.pool = pool;
        auto st = dp::open_port(cfg);
        REQUIRE(st.has_value());
        // As many RX queues as TX queues where the PMD has them (net_tap, memif want it); the
        // extra one belongs to worker 0.
        CHECK(st->rx_queues == 3);
        CHECK(st->tx_queues == 3);
        CHECK(st->control_tx_queue == 2);
        CHECK(dp::rx_queue_owner(2, cfg.workers) == 0);
        CHECK(dp::rx_queue_owner(1, cfg.workers) == 1);
        // A port without RSS: all its queues go to one worker, so one spoke's ESP meets one
        // replay window writer. With RSS, queue q is worker q's.
        for (uint16_t q = 0; q < st->rx_queues; ++q) {
            CHECK(dp::rx_queue_owner(st->id, false, q, cfg.workers) == st->id % cfg.workers);
        }
        CHECK(dp::rx_queue_owner(st->id, true, 1, cfg.workers) == 1);
        if (st->rss) {
            CHECK((st->rss_hf & (RTE_ETH_RSS_L4_SRC_ONLY | RTE_ETH_RSS_L4_DST_ONLY |
                                 RTE_ETH_RSS_NONFRAG_IPV4_UDP | RTE_ETH_RSS_NONFRAG_IPV4_TCP)) ==
                  0);
        }
        rte_eth_dev_info info{};
        REQUIRE(rte_eth_dev_info_get(st->id, &info) == 0);
        CHECK(info.nb_rx_queues == 3);
        CHECK(info.nb_tx_queues == 3);
        rte_ether_addr mac{};
        REQUIRE(rte_eth_macaddr_get(st->id, &mac) == 0);
        CHECK(rte_is_same_ether_addr(&mac, &st->mac));
        CHECK(dp::port_link(st->id).up);
        dp::close_port(st->id);
    }
    {
        // A device string the EAL does not know.
        dp::port_config cfg;
        cfg.devargs = "net_nosuchpmd0";
        cfg.pool = pool;
        auto st = dp::open_port(cfg);
        REQUIRE(!st.has_value());
        CHECK(st.error() == dp::port_error::probe_failed);
    }
    {
        // net_ring as a vdev: each queue is one ring that the port both sends into and
        // receives from, so a frame sent on a worker's queue comes back on its RX queue.
        dp::port_config cfg;
        cfg.devargs = "net_ring0";
        cfg.workers = 2;
        cfg.pool = pool;
        auto st = dp::open_port(cfg);
        REQUIRE(st.has_value());
        CHECK(!st->rss);  // the ring PMD has no RSS: everything lands where it was put
        bytes frame = eth(some_mac, lan_host_mac, RTE_ETHER_TYPE_IPV4,
                          ipv4(net::lan_host, net::spoke2, 17, udp(1, 2, 10)));
        rte_mbuf* m = to_mbuf(pool, frame, st->id);
        REQUIRE(rte_eth_tx_burst(st->id, 1, &m, 1) == 1);
        rte_mbuf* back[4];
        REQUIRE(rte_eth_rx_burst(st->id, 1, back, 4) == 1);
        CHECK(data_of(back[0]) == frame);
        rte_pktmbuf_free(back[0]);
        dp::close_port(st->id);

        // More workers than the PMD has queues.
        cfg.devargs = "net_ring1";
        cfg.workers = 40;
        auto too_many = dp::open_port(cfg);
        REQUIRE(!too_many.has_value());
        CHECK(too_many.error() == dp::port_error::too_few_queues);
        uint16_t id = 0;
        if (rte_eth_dev_get_port_by_name("net_ring1", &id) == 0) {
            dp::close_port(id);
        }
    }
    rte_mempool_free(pool);
}

TEST_CASE("A paused port is neither polled nor sent on once the workers confirmed the pause",
          "[dataplane][worker][pause]") {
    env e;
    dp::publisher& pub = e.pub();
    rte_rcu_qsbr* rcu = pub.rcu();
    // Worker 0 in the middle of a pass (online, no quiescent state reported yet): the pause is
    // not confirmed until it reports one.
    rte_rcu_qsbr_thread_online(rcu, 0);
    auto token = pub.pause_port(e.lan().id);
    REQUIRE(token.has_value());
    CHECK_FALSE(pub.port_quiet(*token));
    rte_rcu_qsbr_quiescent(rcu, 0);
    CHECK(pub.port_quiet(*token));
    rte_rcu_qsbr_thread_offline(rcu, 0);
    CHECK_FALSE(pub.pause_port(dp::max_ports).has_value());

    // Not polled: the frame stays in the port's RX ring.
    auto to_spoke = ipv4(net::lan_host, net::spoke2, 17, udp(1, 2, 32));
    inject(e, e.lan().rx[0], {e.lan_frame(to_spoke)});
    CHECK(e.worker().poll_once() == 0);
    CHECK(rte_ring_count(e.lan().rx[0]) == 1);
    // Not sent on: spoke -> LAN host is dropped at TX, counted.
    auto to_lan = ipv4(net::spoke2, net::lan_host, 17, udp(1, 2, 32));
    e.from_underlay({e.gre_frame(net::spoke2_nbma, net::key0, 0x0800, to_lan)});
    CHECK(e.sent_on(e.lan()).empty());
    CHECK(e.worker().counters().drop(dp::drop_reason::port_paused) == 1);

    // Resumed: the waiting frame goes through to the spoke.
    pub.resume_port(e.lan().id);
    CHECK(e.worker().poll_once() == 1);
    CHECK(e.sent_on(e.underlay()).size() == 1);
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("RSS types: outer IPv4 and ESP SPI where offered, never L4 ports", "[dataplane][port]") {
    const uint64_t ipv4 = RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_FRAG_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_OTHER;
    const uint64_t l4 =
        RTE_ETH_RSS_NONFRAG_IPV4_TCP | RTE_ETH_RSS_NONFRAG_IPV4_UDP | RTE_ETH_RSS_NONFRAG_IPV4_SCTP;
    CHECK(dp::rss_types(ipv4 | l4 | RTE_ETH_RSS_ESP) == (ipv4 | RTE_ETH_RSS_ESP));
    CHECK(dp::rss_types(ipv4 | l4) == ipv4);
    // i40e-like: no RTE_ETH_RSS_IPV4 itself, the fragment and "other" packet types only.
    CHECK(dp::rss_types(RTE_ETH_RSS_FRAG_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_OTHER | l4) ==
          (RTE_ETH_RSS_FRAG_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_OTHER));
    CHECK(dp::rss_types(l4) == 0);  // such a port is polled by one worker (rx_queue_owner)
    CHECK(dp::rss_types(0) == 0);
}
