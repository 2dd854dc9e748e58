// dp::port on a shared Ethernet segment: a kernel-facing vdev (net_tap on a Linux bridge) gets
// unicast frames addressed to other hosts, which the hub must not route a second time.
#include <rte_ethdev.h>
#include <rte_mempool.h>

#include <catch2/catch.hpp>
#include <vector>

#include "dataplane/port.hpp"
#include "tests/unit/dataplane_support.hpp"

using namespace dptest;
namespace dp = dmvpn::dp;

namespace {

const rte_ether_addr broadcast{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
const rte_ether_addr ipv4_multicast{{0x01, 0x00, 0x5e, 0x00, 0x00, 0x05}};  // 224.0.0.5
const rte_ether_addr other_host{{0x52, 0x54, 0x00, 0x5e, 0x00, 0x02}};
const rte_ether_addr other_host2{{0x02, 0x00, 0x00, 0x00, 0x64, 0xfe}};

bytes frame_to(const rte_ether_addr& dst, uint8_t tag) {
    bytes payload = udp(1000, 2000, 8);
    payload.back() = tag;  // tells the frames apart after the round trip
    return eth(dst, lan_host_mac, RTE_ETHER_TYPE_IPV4,
               ipv4(net::lan_host, net::spoke2, 17, payload));
}

// Sends the frames on `queue` of a net_ring vdev (each queue's ring loops back to the same RX
// queue) and returns what rte_eth_rx_burst hands a worker.
std::vector<bytes> round_trip(rte_mempool* pool, uint16_t port, uint16_t queue,
                              const std::vector<bytes>& frames) {
    std::vector<rte_mbuf*> ms;
    for (const bytes& f : frames) {
        ms.push_back(to_mbuf(pool, f, port));
    }
    REQUIRE(rte_eth_tx_burst(port, queue, ms.data(), static_cast<uint16_t>(ms.size())) ==
            ms.size());
    rte_mbuf* back[32];
    uint16_t n = rte_eth_rx_burst(port, queue, back, 32);
    std::vector<bytes> out;
    for (uint16_t i = 0; i < n; ++i) {
        out.push_back(data_of(back[i]));
        rte_pktmbuf_free(back[i]);
    }
    return out;
}

}  // namespace

TEST_CASE("Kernel-facing vdevs are the ones that see other hosts' unicast", "[dataplane][port]") {
    CHECK(dp::sees_foreign_unicast("net_tap0,iface=dtap0"));
    CHECK(dp::sees_foreign_unicast("net_tap1,iface=dtap1,mac=02:00:00:00:64:01"));
    CHECK(dp::sees_foreign_unicast("vdev:net_tap0"));
    CHECK(dp::sees_foreign_unicast("net_af_packet0,iface=veth0"));
    CHECK_FALSE(dp::sees_foreign_unicast("net_memif0,role=server,socket=/run/x.sock"));
    CHECK_FALSE(dp::sees_foreign_unicast("net_ring0"));
    CHECK_FALSE(dp::sees_foreign_unicast("net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap"));
    CHECK_FALSE(dp::sees_foreign_unicast("0000:3b:00.0"));
    CHECK_FALSE(dp::sees_foreign_unicast(""));
}

TEST_CASE("drop_foreign_unicast keeps frames for the port's MAC, broadcast and multicast only",
          "[dataplane][port]") {
    ensure_eal();
    rte_mempool* pool = rte_pktmbuf_pool_create(unique_name("fpool").c_str(), 1023, 0, 0,
                                                RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    REQUIRE(pool != nullptr);
    dp::port_config cfg;
    cfg.devargs = "net_ring7";
    cfg.workers = 1;
    cfg.pool = pool;
    cfg.drop_foreign_unicast = true;
    auto st = dp::open_port(cfg);
    REQUIRE(st.has_value());
    REQUIRE(st->rx_queues == 2);
    const rte_ether_addr own = st->mac;
    CHECK(dp::foreign_unicast_dropped(st->id) == 0);

    std::vector<bytes> sent = {frame_to(own, 1),         frame_to(other_host, 2),
                               frame_to(broadcast, 3),   frame_to(ipv4_multicast, 4),
                               frame_to(other_host2, 5), frame_to(own, 6)};
    // Every RX queue is filtered (a kernel tap spreads flows over all of them), in order.
    for (uint16_t q = 0; q < st->rx_queues; ++q) {
        std::vector<bytes> got = round_trip(pool, st->id, q, sent);
        REQUIRE(got.size() == 4);
        CHECK(got[0] == sent[0]);
        CHECK(got[1] == sent[2]);
        CHECK(got[2] == sent[3]);
        CHECK(got[3] == sent[5]);
    }
    CHECK(dp::foreign_unicast_dropped(st->id) == 4);
    // A burst of foreign frames only: nothing reaches the worker, every mbuf goes back.
    std::vector<bytes> foreign(20, frame_to(other_host, 9));
    CHECK(round_trip(pool, st->id, 1, foreign).empty());
    CHECK(dp::foreign_unicast_dropped(st->id) == 24);
    CHECK(rte_mempool_in_use_count(pool) == 0);
    // Closing removes the filter and its count; the same vdev opened without it passes all.
    dp::close_port(st->id);
    CHECK(dp::foreign_unicast_dropped(st->id) == 0);

    cfg.devargs = "net_ring8";
    cfg.drop_foreign_unicast = false;
    auto plain = dp::open_port(cfg);
    REQUIRE(plain.has_value());
    CHECK(round_trip(pool, plain->id, 0, sent) == sent);
    CHECK(dp::foreign_unicast_dropped(plain->id) == 0);
    dp::close_port(plain->id);
    CHECK(rte_mempool_in_use_count(pool) == 0);
    rte_mempool_free(pool);
}
