// Stage tests on crafted mbufs (--no-huge): each case runs frames through a worker's stages
// and checks what was sent, punted (with its metadata) and dropped (by reason), and that the
// mbuf pool is back to its starting occupancy.
#include <algorithm>
#include <chrono>
#include <thread>
#include <catch2/catch.hpp>

#include <rte_cycles.h>

#include "dataplane/packet_meta.hpp"
#include "dataplane/adjacency.hpp"
#include "dataplane/stage/classify.hpp"
#include "dataplane/stage/mtu.hpp"
#include "dataplane/wire/checksum.hpp"
#include "dataplane/wire/reader.hpp"
#include "tests/unit/dataplane_support.hpp"

using namespace dptest;
namespace dp = dmvpn::dp;
namespace wire = dmvpn::wire;
using dp::drop_reason;
using dp::punt_reason;

namespace {

bytes payload_udp(size_t n = 32) { return udp(1000, 2000, n); }

uint64_t drops(env& e, drop_reason r) { return e.worker().counters().drop(r); }

// The IPv4 packet inside an Ethernet frame.
std::span<const uint8_t> ip_of(const bytes& frame) {
    return std::span<const uint8_t>(frame).subspan(14);
}

bool header_checksum_ok(std::span<const uint8_t> ip) {
    return wire::inet_checksum(ip.subspan(0, (ip[0] & 0x0f) * 4u)) == 0;
}

// An IPv4 packet equal to `orig` except for a TTL one lower (and its checksum).
bool forwarded_copy_of(std::span<const uint8_t> got, std::span<const uint8_t> orig) {
    if (got.size() != orig.size() || got[8] != orig[8] - 1 || !header_checksum_ok(got)) {
        return false;
    }
    for (size_t i = 0; i < got.size(); ++i) {
        if (i != 8 && i != 10 && i != 11 && got[i] != orig[i]) {
            return false;
        }
    }
    return true;
}

}  // namespace

TEST_CASE("GRE from a spoke is decapsulated and routed to a LAN neighbour", "[dataplane][stage]") {
    env e;
    auto inner = ipv4(net::spoke2, net::lan_host, 17, payload_udp());
    e.from_underlay({e.gre_frame(net::spoke2_nbma, net::key0, 0x0800, inner)});

    auto out = e.sent_on(e.lan());
    REQUIRE(out.size() == 1);
    const bytes& f = out[0];
    CHECK(std::equal(f.begin(), f.begin() + 6, lan_host_mac.addr_bytes));
    CHECK(std::equal(f.begin() + 6, f.begin() + 12, e.lan().mac.addr_bytes));
    CHECK(wire::load_be16(&f[12]) == RTE_ETHER_TYPE_IPV4);
    CHECK(forwarded_copy_of(ip_of(f), inner));
    CHECK(e.worker().counters().total_drops() == 0);
    CHECK(e.worker().counters().tx_packets == 1);
    CHECK(e.worker().counters().port_tx_packets[e.lan().id] == 1);
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("LAN traffic to a spoke leaves GRE-encapsulated with the tunnel's key",
          "[dataplane][stage]") {
    env e;
    ipv4_opts df;
    df.flags_frag = 0x4000;
    auto with_df = ipv4(net::lan_host, net::spoke2, 17, payload_udp(), df);
    auto without_df = ipv4(net::lan_host, dptest::ip4(10, 20, 3, 4), 17, payload_udp());
    e.from_lan({e.lan_frame(with_df), e.lan_frame(without_df)});

    auto out = e.sent_on(e.underlay());
    REQUIRE(out.size() == 2);
    for (size_t i = 0; i < 2; ++i) {
        const bytes& f = out[i];
        const bytes& inner = i == 0 ? with_df : without_df;
        CHECK(std::equal(f.begin(), f.begin() + 6, underlay_gw_mac.addr_bytes));
        CHECK(std::equal(f.begin() + 6, f.begin() + 12, e.underlay().mac.addr_bytes));
        auto ip = ip_of(f);
        CHECK(header_checksum_ok(ip));
        CHECK(ip[9] == 47);
        CHECK(ip[8] == 64);  // the tunnel's outer TTL
        CHECK(wire::load_be32(&ip[12]) == net::hub_nbma);
        // 10.20.0.0/16 is a static route via spoke 10.0.0.2: same NBMA.
        CHECK(wire::load_be32(&ip[16]) == net::spoke2_nbma);
        CHECK(wire::load_be16(&ip[2]) == 20 + 8 + inner.size());
        // DF copied from the inner header (the default policy).
        CHECK(((wire::load_be16(&ip[6]) & 0x4000) != 0) == (i == 0));
        auto g = ip.subspan(20);
        CHECK(wire::load_be16(&g[0]) == 0x2000);  // K only
        CHECK(wire::load_be16(&g[2]) == 0x0800);
        CHECK(wire::load_be32(&g[4]) == net::key0);
        CHECK(forwarded_copy_of(g.subspan(8), inner));
    }
    // Two packets, two different outer IDs.
    CHECK(wire::load_be16(&out[0][14 + 4]) != wire::load_be16(&out[1][14 + 4]));
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("One burst leaving through two ports: each port keeps its order and its counts",
          "[dataplane][stage]") {
    env e;
    // From spoke 2: alternately to the LAN host and (Phase 3 transit) to spoke 3.
    std::vector<bytes> frames;
    std::vector<bytes> to_lan;
    std::vector<bytes> to_spoke;
    for (uint16_t i = 0; i < 6; ++i) {
        bool lan = i % 2 == 0;
        auto inner =
            ipv4(net::spoke2, lan ? net::lan_host : net::spoke3, 17, udp(i, 9, 20 + 10 * i));
        (lan ? to_lan : to_spoke).push_back(inner);
        frames.push_back(e.gre_frame(net::spoke2_nbma, net::key0, 0x0800, inner));
    }
    e.from_underlay(frames);
    auto lan = e.sent_on(e.lan());
    auto under = e.sent_on(e.underlay());
    REQUIRE(lan.size() == 3);
    REQUIRE(under.size() == 3);
    uint64_t lan_bytes = 0;
    uint64_t under_bytes = 0;
    for (size_t i = 0; i < 3; ++i) {
        CHECK(forwarded_copy_of(ip_of(lan[i]), to_lan[i]));
        CHECK(forwarded_copy_of(ip_of(under[i]).subspan(28), to_spoke[i]));
        lan_bytes += lan[i].size();
        under_bytes += under[i].size();
    }
    const auto& c = e.worker().counters();
    CHECK(c.tx_packets == 6);
    CHECK(c.port_tx_packets[e.lan().id] == 3);
    CHECK(c.port_tx_packets[e.underlay().id] == 3);
    CHECK(c.port_tx_bytes[e.lan().id] == lan_bytes);
    CHECK(c.port_tx_bytes[e.underlay().id] == under_bytes);
    auto p = e.punts();
    CHECK(p.size() == 1);  // one redirect for (spoke 2, spoke 3)
    env::free_all(p);
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("GRE with a key no tunnel has, or without a key, is dropped", "[dataplane][stage]") {
    env e;
    auto inner = ipv4(net::spoke2, net::lan_host, 17, payload_udp());
    e.from_underlay({e.gre_frame(net::spoke2_nbma, 999, 0x0800, inner),
                     e.gre_frame(net::spoke2_nbma, std::nullopt, 0x0800, inner)});
    CHECK(drops(e, drop_reason::gre_unknown_key) == 2);
    CHECK(e.sent_on(e.lan()).empty());
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("NHRP (GRE 0x2001) is punted with tunnel and NBMA source", "[dataplane][stage]") {
    env e;
    bytes nhrp = {0x00, 0x01, 0x08, 0x00, 0, 0, 0, 0, 0, 0, 0x34, 0x01, 0x03, 0x00, 0, 0x28};
    const uint64_t before = rte_rdtsc();
    e.from_underlay({e.gre_frame(net::spoke3_nbma, net::key0, 0x2001, nhrp)});
    const uint64_t after = rte_rdtsc();
    auto p = e.punts();
    REQUIRE(p.size() == 1);
    // Timed for the control lcore: the burst's TSC, then its enqueue on the punt ring's.
    CHECK(before <= p[0].rx_tsc);
    CHECK(p[0].rx_tsc <= p[0].enq_tsc);
    CHECK(p[0].enq_tsc <= after);
    CHECK(dmvpn::dp::punt_tsc_offset == static_cast<int>(dmvpn::dp::punt_delay_offset_fixed));

    CHECK(p[0].reason == punt_reason::nhrp);
    CHECK(p[0].tunnel == 0);
    CHECK(p[0].outer_src == net::spoke3_nbma);
    CHECK(p[0].in_port == e.underlay().id);
    CHECK(data_of(p[0].m) == nhrp);
    CHECK(e.worker().counters().punt(punt_reason::nhrp) == 1);
    env::free_all(p);
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("The hub's dynamic fields leave the PMDs' Rx timestamp its room", "[dataplane][stage]") {
    env e;  // packet_meta and the punt delay registered
    // What net_pcap does at probe, and a NIC with timestamp offload: an 8-byte aligned field.
    int offset = -1;
    uint64_t flag = 0;
    REQUIRE(rte_mbuf_dyn_rx_timestamp_register(&offset, &flag) == 0);
    CHECK(offset >= 0);
    const auto end = [](size_t at, size_t size) { return at + size; };
    const auto o = static_cast<size_t>(offset);
    CHECK((end(o, 8) <= dmvpn::dp::packet_meta_offset_fixed ||
           o >= end(dmvpn::dp::packet_meta_offset_fixed, sizeof(dmvpn::dp::packet_meta))));
    CHECK((end(o, 8) <= dmvpn::dp::punt_delay_offset_fixed ||
           o >= end(dmvpn::dp::punt_delay_offset_fixed, 4)));
}

TEST_CASE("TTL 1: punted for time exceeded, unless the hub itself is the destination",
          "[dataplane][stage]") {
    env e;
    ipv4_opts ttl1;
    ttl1.ttl = 1;
    auto transit = ipv4(net::lan_host, net::spoke2, 17, payload_udp(), ttl1);
    auto to_hub = ipv4(net::spoke2, net::hub_overlay, 17, payload_udp(), ttl1);
    e.from_lan({e.lan_frame(transit)});
    e.from_underlay({e.gre_frame(net::spoke2_nbma, net::key0, 0x0800, to_hub)});
    auto p = e.punts();
    REQUIRE(p.size() == 2);
    CHECK(p[0].reason == punt_reason::ttl_exceeded);
    CHECK(data_of(p[0].m) == transit);  // untouched: the control lcore quotes it in ICMP
    CHECK(p[1].reason == punt_reason::for_us);
    CHECK(p[1].tunnel == 0);
    CHECK(p[1].outer_src == net::spoke2_nbma);
    CHECK(data_of(p[1].m) == to_hub);
    CHECK(e.sent_on(e.underlay()).empty());
    env::free_all(p);
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("Unresolved next hops glean: one event per next hop, the rest dropped",
          "[dataplane][stage]") {
    env e;
    auto a = ipv4(net::lan_host, dptest::ip4(10, 0, 0, 77), 17, payload_udp());  // tunnel subnet
    auto b = ipv4(net::lan_host, dptest::ip4(10, 30, 1, 1), 17, payload_udp());  // via 10.0.0.4
    auto c = ipv4(net::spoke2, dptest::ip4(172, 16, 0, 99), 17, payload_udp());  // LAN subnet
    e.from_lan({e.lan_frame(a), e.lan_frame(a), e.lan_frame(a), e.lan_frame(b), e.lan_frame(b)});
    e.from_underlay({e.gre_frame(net::spoke2_nbma, net::key0, 0x0800, c)});
    auto p = e.punts();
    REQUIRE(p.size() == 3);
    for (auto& r : p) {
        CHECK(r.reason == punt_reason::glean);
    }
    CHECK(p[0].nexthop == dptest::ip4(10, 0, 0, 77));
    CHECK(p[0].mtu == 0);  // aux: egress tunnel 0
    CHECK(p[1].nexthop == net::spoke4);
    CHECK(p[1].mtu == 0);
    CHECK(p[2].nexthop == dptest::ip4(172, 16, 0, 99));
    CHECK(p[2].mtu == (dp::glean_lan_port_bit | e.lan().id));
    CHECK(drops(e, drop_reason::no_adjacency) == 3);
    env::free_all(p);

    // The limiter is per next hop and per interval: the same next hop stays quiet now.
    e.from_lan({e.lan_frame(a)});
    CHECK(e.punts().empty());
    CHECK(drops(e, drop_reason::no_adjacency) == 4);
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("No route, blackhole and martian destinations are dropped by reason",
          "[dataplane][stage]") {
    env e;
    e.from_lan({e.lan_frame(ipv4(net::lan_host, dptest::ip4(8, 8, 8, 8), 17, payload_udp())),
                e.lan_frame(ipv4(net::lan_host, dptest::ip4(10, 40, 0, 1), 17, payload_udp())),
                e.lan_frame(ipv4(net::lan_host, dptest::ip4(127, 0, 0, 1), 17, payload_udp()))});
    CHECK(drops(e, drop_reason::no_route) == 1);
    CHECK(drops(e, drop_reason::blackhole) == 1);
    CHECK(drops(e, drop_reason::martian_destination) == 1);
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("Adjacency slot emptied under a route: dropped as adjacency_missing",
          "[dataplane][stage]") {
    env e;
    REQUIRE(e.pub().remove_adjacency(2) == dp::publish_status::ok);
    e.from_lan({e.lan_frame(ipv4(net::lan_host, net::spoke3, 17, payload_udp()))});
    CHECK(drops(e, drop_reason::adjacency_missing) == 1);
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("Multicast is punted for replication", "[dataplane][stage]") {
    env e;
    auto hello = ipv4(net::spoke2, dptest::ip4(224, 0, 0, 10), 88, payload_udp());
    auto group = ipv4(net::lan_host, dptest::ip4(239, 1, 1, 1), 17, payload_udp());
    e.from_underlay({e.gre_frame(net::spoke2_nbma, net::key0, 0x0800, hello)});
    e.from_lan({e.lan_frame(group)});
    auto p = e.punts();
    REQUIRE(p.size() == 2);
    CHECK(p[0].reason == punt_reason::multicast);
    CHECK(p[0].tunnel == 0);
    CHECK(data_of(p[0].m) == hello);
    CHECK(p[1].reason == punt_reason::multicast);
    CHECK(p[1].tunnel == dp::no_tunnel);
    CHECK(data_of(p[1].m) == group);
    env::free_all(p);
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("Packets for the hub's addresses, broadcasts and ARP are punted", "[dataplane][stage]") {
    env e;
    auto to_lan_addr = ipv4(net::lan_host, net::hub_lan, 17, payload_udp());
    auto ike = ipv4(net::spoke2_nbma, net::hub_nbma, 17, udp(500, 500, 40));
    auto bcast = ipv4(net::lan_host, 0xffffffffu, 17, payload_udp());
    bytes arp_body(28, 0);
    auto arp = eth(e.lan().mac, lan_host_mac, RTE_ETHER_TYPE_ARP, arp_body);
    e.from_lan({e.lan_frame(to_lan_addr), e.lan_frame(bcast), arp});
    e.from_underlay({eth(e.underlay().mac, underlay_gw_mac, RTE_ETHER_TYPE_IPV4, ike)});
    auto p = e.punts();
    REQUIRE(p.size() == 4);
    // ARP leaves at classify, the IPv4 ones after the FIB: that is the punt order.
    CHECK(p[0].reason == punt_reason::arp);
    CHECK(data_of(p[0].m) == arp);
    CHECK(p[0].in_port == e.lan().id);
    CHECK(p[1].reason == punt_reason::for_us);
    CHECK(data_of(p[1].m) == to_lan_addr);
    CHECK(p[2].reason == punt_reason::for_us);
    CHECK(data_of(p[2].m) == bcast);
    CHECK(p[3].reason == punt_reason::for_us);
    CHECK(p[3].in_port == e.underlay().id);
    CHECK(data_of(p[3].m) == ike);
    env::free_all(p);
    CHECK(e.pool_in_use() == 0);
}

namespace {

// One fragment as the test reads it (RFC 791 fields, read here, not by the code under test).
struct frag_view {
    std::span<const uint8_t> ip;
    uint32_t ihl;
    uint16_t id;
    bool df;
    bool mf;
    uint32_t offset;  // in bytes
    std::span<const uint8_t> data;
};

frag_view read_frag(std::span<const uint8_t> ip) {
    frag_view f{};
    f.ip = ip;
    f.ihl = (ip[0] & 0x0fu) * 4;
    uint16_t total = wire::load_be16(&ip[2]);
    REQUIRE(total == ip.size());
    f.id = wire::load_be16(&ip[4]);
    uint16_t w = wire::load_be16(&ip[6]);
    f.df = (w & 0x4000) != 0;
    f.mf = (w & 0x2000) != 0;
    f.offset = uint32_t{w & 0x1fffu} * 8;
    f.data = ip.subspan(f.ihl);
    return f;
}

// The IPv4 packet inside a plain GRE frame the hub sent (Ethernet + outer IPv4 + GRE with key).
std::span<const uint8_t> inner_of_gre_frame(const bytes& frame) {
    return std::span<const uint8_t>(frame).subspan(14 + 20 + 8);
}

// Puts fragments' data back at their offsets; every byte must be covered exactly once and the
// last fragment must be the only one without MF.
bytes reassembled(const std::vector<frag_view>& frags) {
    bytes out;
    std::vector<bool> seen;
    bool last_seen = false;
    for (const frag_view& f : frags) {
        size_t end = f.offset + f.data.size();
        if (out.size() < end) {
            out.resize(end);
            seen.resize(end);
        }
        for (size_t i = 0; i < f.data.size(); ++i) {
            CHECK_FALSE(seen[f.offset + i]);
            seen[f.offset + i] = true;
            out[f.offset + i] = f.data[i];
        }
        if (!f.mf) {
            CHECK_FALSE(last_seen);
            last_seen = true;
            CHECK(end == out.size());
        }
    }
    CHECK(last_seen);
    CHECK(std::all_of(seen.begin(), seen.end(), [](bool b) { return b; }));
    return out;
}

}  // namespace

TEST_CASE("Larger than the tunnel MTU: DF punts for fragmentation-needed, else fragmented",
          "[dataplane][stage][mtu]") {
    env e;
    ipv4_opts df;
    df.flags_frag = 0x4000;
    ipv4_opts plain;
    plain.id = 0x5151;
    auto fits = ipv4(net::lan_host, net::spoke2, 17, udp(1, 2, net::mtu0 - 28), df);
    auto big_df = ipv4(net::lan_host, net::spoke2, 17, udp(1, 2, net::mtu0 - 27), df);
    auto big = ipv4(net::lan_host, net::spoke2, 17, udp(1, 2, 1450 - 28), plain);
    REQUIRE(fits.size() == net::mtu0);
    e.from_lan({e.lan_frame(fits), e.lan_frame(big_df), e.lan_frame(big)});
    auto out = e.sent_on(e.underlay());
    REQUIRE(out.size() == 3);
    CHECK(wire::load_be16(&out[0][14 + 2]) == net::mtu0 + 28);
    // The two fragments of `big`, each in GRE with tunnel 0's key: (1400 - 20) rounded down to
    // 8 bytes, then the rest.
    std::vector<frag_view> frags;
    for (size_t i = 1; i < 3; ++i) {
        CHECK(out[i][14 + 9] == 47);
        CHECK(wire::load_be32(&out[i][14 + 16]) == net::spoke2_nbma);
        CHECK(wire::load_be32(&out[i][14 + 20 + 4]) == net::key0);
        CHECK(header_checksum_ok(ip_of(out[i])));
        CHECK((wire::load_be16(&out[i][14 + 6]) & 0x4000) == 0);  // outer DF copies the inner
        auto inner = inner_of_gre_frame(out[i]);
        CHECK(inner.size() <= net::mtu0);
        CHECK(header_checksum_ok(inner));
        CHECK(inner[8] == 63);  // forwarded: TTL - 1
        frags.push_back(read_frag(inner));
        CHECK(frags.back().id == 0x5151);
        CHECK_FALSE(frags.back().df);
    }
    CHECK(frags[0].offset == 0);
    CHECK(frags[0].mf);
    CHECK(frags[0].data.size() == 1376);
    CHECK(frags[1].offset == 1376);
    CHECK_FALSE(frags[1].mf);
    CHECK(frags[1].data.size() == 1450 - 20 - 1376);
    CHECK(reassembled(frags) == bytes(big.begin() + 20, big.end()));
    auto p = e.punts();
    REQUIRE(p.size() == 1);
    CHECK(p[0].reason == punt_reason::frag_needed);
    CHECK(p[0].mtu == net::mtu0);
    CHECK(e.worker().counters().punt(punt_reason::frag_needed) == 1);
    CHECK(e.worker().counters().fragmented == 1);
    CHECK(e.worker().counters().fragments == 2);
    CHECK(e.worker().counters().total_drops() == 0);
    env::free_all(p);
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("Fragmenting a fragment keeps its offset and its MF; options follow the copy flag",
          "[dataplane][stage][mtu]") {
    env e;
    // A middle fragment (MF, offset 800 bytes) of 1500 bytes, from a spoke to another spoke.
    ipv4_opts mid;
    mid.flags_frag = 0x2000 | (800 / 8);
    mid.id = 0x7777;
    bytes data(1480);
    for (size_t i = 0; i < data.size(); ++i) {
        data[i] = static_cast<uint8_t>(i * 7);
    }
    auto frag = ipv4(net::spoke3, net::spoke2, 17, data, mid);
    // A packet with options: router alert (copied, RFC 2113) and a timestamp (not copied).
    bytes opt_pkt(28);
    opt_pkt[0] = 0x47;
    wire::store_be16(&opt_pkt[2], static_cast<uint16_t>(28 + data.size()));
    wire::store_be16(&opt_pkt[4], 0x8888);
    opt_pkt[8] = 64;
    opt_pkt[9] = 17;
    wire::store_be32(&opt_pkt[12], net::lan_host);
    wire::store_be32(&opt_pkt[16], net::spoke2);
    const uint8_t opts[8] = {0x94, 4, 0, 0, 0x44, 4, 5, 0};
    std::copy(std::begin(opts), std::end(opts), opt_pkt.begin() + 20);
    wire::store_be16(&opt_pkt[10], wire::inet_checksum(opt_pkt));
    opt_pkt.insert(opt_pkt.end(), data.begin(), data.end());

    e.from_underlay({e.gre_frame(net::spoke3_nbma, net::key0, 0x0800, frag)});
    e.from_lan({e.lan_frame(opt_pkt)});
    auto out = e.sent_on(e.underlay());
    REQUIRE(out.size() == 4);
    std::vector<frag_view> a;
    std::vector<frag_view> b;
    for (const bytes& f : out) {
        auto inner = inner_of_gre_frame(f);
        CHECK(inner.size() <= net::mtu0);
        CHECK(header_checksum_ok(inner));
        frag_view v = read_frag(inner);
        (v.id == 0x7777 ? a : b).push_back(v);
    }
    REQUIRE(a.size() == 2);
    REQUIRE(b.size() == 2);
    // Both pieces of the middle fragment carry MF (more of the datagram follows), offsets from
    // 800 on.
    CHECK(a[0].offset == 800);
    CHECK(a[0].mf);
    CHECK(a[1].offset == 800 + 1376);
    CHECK(a[1].mf);
    CHECK(a[0].data.size() + a[1].data.size() == data.size());
    // Options: the first fragment has both (header 28 bytes), the second only the router
    // alert (24 bytes).
    CHECK(b[0].ihl == 28);
    CHECK(std::equal(b[0].ip.begin() + 20, b[0].ip.begin() + 28, std::begin(opts)));
    CHECK(b[0].data.size() == ((net::mtu0 - 28) & ~7u));
    REQUIRE(b[1].ihl == 24);
    CHECK(std::equal(b[1].ip.begin() + 20, b[1].ip.begin() + 24, std::begin(opts)));
    CHECK(reassembled(b) == data);
    CHECK(e.worker().counters().fragmented == 2);
    CHECK(e.worker().counters().fragments == 4);
    // Spoke to spoke on one tunnel: the Phase 3 redirect event, once for the packet.
    auto p = e.punts();
    REQUIRE(p.size() == 1);
    CHECK(p[0].reason == punt_reason::redirect);
    env::free_all(p);
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("A burst whose fragments outgrow it is sent in several rounds, all of it",
          "[dataplane][stage][mtu]") {
    env e;
    std::vector<bytes> frames;
    for (uint16_t i = 0; i < dp::rx_burst; ++i) {
        ipv4_opts o;
        o.id = static_cast<uint16_t>(0x1000 + i);
        frames.push_back(e.lan_frame(ipv4(net::lan_host, net::spoke3, 17, udp(1, 2, 1472), o)));
    }
    e.from_lan(frames);
    auto out = e.sent_on(e.underlay());
    REQUIRE(out.size() == 2u * dp::rx_burst);
    std::vector<std::vector<frag_view>> by_id(dp::rx_burst);
    for (const bytes& f : out) {
        frag_view v = read_frag(inner_of_gre_frame(f));
        REQUIRE(v.id >= 0x1000);
        REQUIRE(v.id < 0x1000 + dp::rx_burst);
        by_id[v.id - 0x1000].push_back(v);
    }
    bytes want(ip_of(frames[0]).begin() + 20, ip_of(frames[0]).end());
    for (const auto& fs : by_id) {
        REQUIRE(fs.size() == 2);
        CHECK(reassembled(fs) == want);
    }
    CHECK(e.worker().counters().fragments == 2u * dp::rx_burst);
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("The mtu stage bounds its output: too many fragments, an empty pool, a full array",
          "[dataplane][stage][mtu]") {
    env e;  // EAL, the packet metadata field, a pool
    dp::worker_ctx ctx;
    auto small_mtu = std::make_unique<dp::adjacency>();
    small_mtu->kind = dp::adj_kind::tunnel;
    small_mtu->mtu = 100;  // (100 - 20) / 8 * 8 = 80 bytes a fragment
    auto tunnel_mtu = std::make_unique<dp::adjacency>();
    tunnel_mtu->kind = dp::adj_kind::tunnel;
    tunnel_mtu->mtu = net::mtu0;
    auto packet = [&](rte_mempool* pool, size_t udp_len, const dp::adjacency* a) {
        rte_mbuf* m = to_mbuf(pool, ipv4(net::lan_host, net::spoke2, 17, udp(1, 2, udp_len)), 0);
        dp::meta(m) = dp::packet_meta{};
        dp::meta(m).adj = a;
        return m;
    };
    rte_mbuf* out[dp::max_burst];

    // 8 fragments of 80 bytes hold 640 bytes of data: 641 need a ninth.
    rte_mbuf* in[2] = {packet(e.pool(), 640 - 8, small_mtu.get()),
                       packet(e.pool(), 641 - 8, small_mtu.get())};
    auto r = dp::stage::mtu(in, 2, out, dp::max_burst, ctx);
    CHECK(r.consumed == 2);
    REQUIRE(r.out == dp::stage::max_fragments);
    for (uint16_t i = 0; i < r.out; ++i) {
        CHECK(out[i]->pkt_len <= 100);
    }
    CHECK(ctx.counters.drop(drop_reason::frag_too_many) == 1);
    rte_pktmbuf_free_bulk(out, r.out);

    // Room for fewer than max_fragments more: the stage stops before the packet to split and
    // leaves it to the next call; packets that fit still go out.
    rte_mbuf* three[3] = {packet(e.pool(), 100, tunnel_mtu.get()),
                          packet(e.pool(), 1472, tunnel_mtu.get()),
                          packet(e.pool(), 100, tunnel_mtu.get())};
    r = dp::stage::mtu(three, 3, out, dp::stage::max_fragments, ctx);
    CHECK(r.consumed == 1);
    CHECK(r.out == 1);
    rte_pktmbuf_free(out[0]);
    r = dp::stage::mtu(three + 1, 2, out, dp::stage::max_fragments, ctx);
    CHECK(r.consumed == 2);
    CHECK(r.out == 3);
    rte_pktmbuf_free_bulk(out, r.out);

    // A pool with no mbuf left for the second fragment: the packet is dropped, counted.
    rte_mempool* tiny = rte_pktmbuf_pool_create(unique_name("tiny").c_str(), 2, 0, 0,
                                                RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    REQUIRE(tiny != nullptr);
    rte_mbuf* big = packet(tiny, 1472, tunnel_mtu.get());
    rte_mbuf* hog = rte_pktmbuf_alloc(tiny);
    REQUIRE(hog != nullptr);
    r = dp::stage::mtu(&big, 1, out, dp::max_burst, ctx);
    CHECK(r.consumed == 1);
    CHECK(r.out == 0);
    CHECK(ctx.counters.drop(drop_reason::frag_no_mbuf) == 1);
    ctx.flush_drops();
    rte_pktmbuf_free(hog);
    CHECK(rte_mempool_avail_count(tiny) == 2);
    rte_mempool_free(tiny);
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("TCP SYN MSS is clamped into and out of the tunnel, checksum fixed",
          "[dataplane][stage]") {
    env e;
    for (unsigned nops : {0u, 1u}) {  // MSS value on an even, then an odd offset
        auto out_syn =
            ipv4(net::lan_host, net::spoke2, 6, tcp_syn(net::lan_host, net::spoke2, 1460, nops));
        auto small =
            ipv4(net::lan_host, net::spoke2, 6, tcp_syn(net::lan_host, net::spoke2, 1200, nops));
        auto in_syn =
            ipv4(net::spoke2, net::lan_host, 6, tcp_syn(net::spoke2, net::lan_host, 1460, nops));
        e.from_lan({e.lan_frame(out_syn), e.lan_frame(small)});
        e.from_underlay({e.gre_frame(net::spoke2_nbma, net::key0, 0x0800, in_syn)});

        auto to_tunnel = e.sent_on(e.underlay());
        auto to_lan = e.sent_on(e.lan());
        REQUIRE(to_tunnel.size() == 2);
        REQUIRE(to_lan.size() == 1);
        auto mss_of = [nops](std::span<const uint8_t> ip) {
            return wire::load_be16(&ip[20 + 20 + nops + 2]);
        };
        auto inner0 = ip_of(to_tunnel[0]).subspan(28);
        auto inner1 = ip_of(to_tunnel[1]).subspan(28);
        auto inner2 = ip_of(to_lan[0]);
        CHECK(mss_of(inner0) == net::mss0);
        CHECK(tcp_checksum_ok(inner0));
        CHECK(mss_of(inner1) == 1200);
        CHECK(tcp_checksum_ok(inner1));
        CHECK(mss_of(inner2) == net::mss0);
        CHECK(tcp_checksum_ok(inner2));
    }
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("Phase 3: spoke-to-spoke through the hub is forwarded and reported once",
          "[dataplane][stage]") {
    env e;
    auto s2_to_s3 = ipv4(net::spoke2, net::spoke3, 17, payload_udp());
    auto s2_to_s3b = ipv4(net::spoke2, net::spoke3, 17, udp(7, 8, 50));
    e.from_underlay({e.gre_frame(net::spoke2_nbma, net::key0, 0x0800, s2_to_s3),
                     e.gre_frame(net::spoke2_nbma, net::key0, 0x0800, s2_to_s3b)});
    auto out = e.sent_on(e.underlay());
    REQUIRE(out.size() == 2);
    CHECK(wire::load_be32(&out[0][14 + 16]) == net::spoke3_nbma);
    auto p = e.punts();
    REQUIRE(p.size() == 1);
    CHECK(p[0].reason == punt_reason::redirect);
    CHECK(p[0].tunnel == 0);
    CHECK(p[0].outer_src == net::spoke2_nbma);
    CHECK(p[0].nexthop == net::spoke3);
    // The original IP header plus 8 bytes, TTL as the spoke sent it.
    bytes quote(s2_to_s3.begin(), s2_to_s3.begin() + 28);
    CHECK(data_of(p[0].m) == quote);
    CHECK(e.worker().counters().redirect_suppressed == 1);
    env::free_all(p);

    // LAN to spoke is not a redirect candidate.
    e.from_lan({e.lan_frame(ipv4(net::lan_host, net::spoke3, 17, payload_udp()))});
    CHECK(e.punts().empty());
    CHECK(e.sent_on(e.underlay()).size() == 1);
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("Malformed and truncated frames are dropped and counted by reason",
          "[dataplane][stage]") {
    env e;
    const auto& hubmac = e.underlay().mac;
    auto inner = ipv4(net::spoke2, net::lan_host, 17, payload_udp());
    auto to_hub = [&](uint8_t proto, const bytes& payload, ipv4_opts o = {}) {
        return eth(hubmac, underlay_gw_mac, RTE_ETHER_TYPE_IPV4,
                   ipv4(net::spoke2_nbma, net::hub_nbma, proto, payload, o));
    };
    struct input {
        bytes frame;
        drop_reason expect;
    };
    std::vector<input> cases;
    cases.push_back({bytes(10, 0), drop_reason::eth_truncated});
    cases.push_back(
        {eth(hubmac, underlay_gw_mac, 0x8100, bytes(40, 0)), drop_reason::unsupported_ethertype});
    cases.push_back({eth(hubmac, underlay_gw_mac, RTE_ETHER_TYPE_IPV4, bytes(10, 0x45)),
                     drop_reason::ipv4_truncated});
    {
        auto ip = ipv4(net::spoke2_nbma, net::hub_nbma, 17, payload_udp());
        ip[0] = 0x65;
        cases.push_back(
            {eth(hubmac, underlay_gw_mac, RTE_ETHER_TYPE_IPV4, ip), drop_reason::ipv4_bad_version});
        ip[0] = 0x44;
        cases.push_back(
            {eth(hubmac, underlay_gw_mac, RTE_ETHER_TYPE_IPV4, ip), drop_reason::ipv4_bad_ihl});
    }
    {
        ipv4_opts bad;
        bad.bad_checksum = true;
        cases.push_back({to_hub(17, payload_udp(), bad), drop_reason::ipv4_bad_checksum});
    }
    {
        auto ip = ipv4(net::spoke2_nbma, net::hub_nbma, 17, payload_udp());
        auto longer = ip;
        wire::store_be16(&longer[2], static_cast<uint16_t>(ip.size() + 1));
        cases.push_back({eth(hubmac, underlay_gw_mac, RTE_ETHER_TYPE_IPV4, longer),
                         drop_reason::ipv4_truncated});
        auto shorter = ip;
        wire::store_be16(&shorter[2], 12);
        cases.push_back({eth(hubmac, underlay_gw_mac, RTE_ETHER_TYPE_IPV4, shorter),
                         drop_reason::ipv4_bad_length});
    }
    cases.push_back({to_hub(47, bytes{0x20, 0x00}), drop_reason::gre_truncated});
    cases.push_back({to_hub(47, bytes{0x20, 0x00, 0x08, 0x00, 0x00}), drop_reason::gre_truncated});
    {
        auto g = gre(0x0800, net::key0, inner);
        g[0] |= 0x40;  // routing present (RFC 1701)
        cases.push_back({to_hub(47, g), drop_reason::gre_bad_header});
        auto v1 = gre(0x0800, net::key0, inner);
        v1[1] |= 0x01;  // version 1 (PPTP)
        cases.push_back({to_hub(47, v1), drop_reason::gre_bad_header});
        auto ck = gre(0x0800, net::key0, inner, true);
        ck.back() ^= 0xff;
        cases.push_back({to_hub(47, ck), drop_reason::gre_bad_checksum});
    }
    cases.push_back({to_hub(47, gre(0x86dd, net::key0, inner)), drop_reason::gre_unknown_protocol});
    {
        bytes cut(inner.begin(), inner.begin() + 30);
        cases.push_back({to_hub(47, gre(0x0800, net::key0, cut)), drop_reason::ipv4_truncated});
    }
    {
        ipv4_opts frag;
        frag.flags_frag = 0x2000;
        cases.push_back(
            {to_hub(47, gre(0x0800, net::key0, inner), frag), drop_reason::tunnel_fragment});
    }
    cases.push_back({to_hub(47, gre(0x0800, net::key1, inner)), drop_reason::gre_unprotected});
    cases.push_back({to_hub(50, bytes{0, 0, 0x10}), drop_reason::esp_truncated});
    cases.push_back({to_hub(50, bytes{0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1, 1, 2, 3, 4}),
                     drop_reason::esp_unknown_spi});

    std::vector<bytes> frames;
    for (auto& c : cases) {
        frames.push_back(c.frame);
    }
    auto before = e.worker().counters();
    e.from_underlay(frames);
    auto after = e.worker().counters();
    dp::worker_counters expected = before;
    for (auto& c : cases) {
        ++expected.drops[static_cast<size_t>(c.expect)];
    }
    for (size_t r = 0; r < dp::drop_reason_count; ++r) {
        INFO(dp::name(static_cast<drop_reason>(r)));
        CHECK(after.drops[r] == expected.drops[r]);
    }
    CHECK(after.total_drops() == before.total_drops() + cases.size());
    CHECK(e.sent_on(e.lan()).empty());
    CHECK(e.punts().empty());

    // A GRE checksum that is right passes; so does padding behind a short frame.
    auto ok = to_hub(47, gre(0x0800, net::key0, inner, true));
    ok.resize(ok.size() + 6, 0);
    e.from_underlay({ok});
    auto out = e.sent_on(e.lan());
    REQUIRE(out.size() == 1);
    CHECK(forwarded_copy_of(ip_of(out[0]), inner));
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("Chained (multi-segment) mbufs are dropped, not misread", "[dataplane][stage]") {
    env e;
    auto frame = e.lan_frame(ipv4(net::lan_host, net::spoke2, 17, payload_udp()));
    rte_mbuf* head = to_mbuf(e.pool(), std::span(frame).subspan(0, 20), e.lan().id);
    rte_mbuf* tail = to_mbuf(e.pool(), std::span(frame).subspan(20), e.lan().id);
    REQUIRE(rte_pktmbuf_chain(head, tail) == 0);
    e.worker().process(&head, 1);
    CHECK(drops(e, drop_reason::multi_segment) == 1);
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("Classify splits a burst into ESP, GRE and routed IPv4", "[dataplane][stage]") {
    env e;
    auto inner = ipv4(net::spoke2, net::lan_host, 17, payload_udp());
    std::vector<bytes> frames = {
        e.gre_frame(net::spoke2_nbma, net::key0, 0x0800, inner),
        eth(e.underlay().mac, underlay_gw_mac, RTE_ETHER_TYPE_IPV4,
            ipv4(net::spoke2_nbma, net::hub_nbma, 50, bytes(40, 1))),
        e.lan_frame(inner),
        // GRE not addressed to an NBMA address is plain transit IPv4.
        e.lan_frame(ipv4(net::lan_host, net::spoke2, 47, gre(0x0800, 5, inner))),
    };
    std::vector<rte_mbuf*> ms;
    for (auto& f : frames) {
        ms.push_back(to_mbuf(e.pool(), f, e.underlay().id));
    }
    auto& ctx = e.worker().ctx();
    ctx.topo = e.pub().tables().topo.load();
    uint16_t n = dp::stage::classify(ms.data(), static_cast<uint16_t>(ms.size()), ctx);
    REQUIRE(n == 4);
    CHECK(dp::class_of(dp::meta(ms[0])) == dp::packet_class::gre);
    CHECK(dp::class_of(dp::meta(ms[1])) == dp::packet_class::esp);
    CHECK(dp::class_of(dp::meta(ms[2])) == dp::packet_class::ip);
    CHECK(dp::class_of(dp::meta(ms[3])) == dp::packet_class::ip);
    // Ethernet is stripped: data starts at the IPv4 header.
    CHECK(data_of(ms[2]) == inner);
    for (auto* m : ms) {
        rte_pktmbuf_free(m);
    }
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("Punt ring overflow is counted and never blocks", "[dataplane][stage]") {
    env e(1, 4);
    bytes arp_body(28, 0);
    std::vector<bytes> frames(10, eth(e.lan().mac, lan_host_mac, RTE_ETHER_TYPE_ARP, arp_body));
    e.from_lan(frames);
    auto p = e.punts();
    CHECK(p.size() == 4);
    CHECK(e.worker().counters().punt(punt_reason::arp) == 4);
    CHECK(drops(e, drop_reason::punt_ring_full) == 6);
    env::free_all(p);
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("Punts are policed per class: a multicast flood leaves NHRP and IKE their share",
          "[dataplane][stage]") {
    env e;
    auto& ctx = e.worker().ctx();
    uint64_t hz = rte_get_tsc_hz();
    // Multicast: 1 a second, 3 at once. IKE: 1 a second, 2 at once. NHRP and the rest of
    // for_us keep the default (unlimited) budget.
    ctx.punt_budget[static_cast<size_t>(punt_reason::multicast)] = dp::token_bucket(1, 3, hz);
    ctx.punt_budget[dp::punt_class_ike] = dp::token_bucket(1, 2, hz);
    auto group = ipv4(net::spoke2, dptest::ip4(239, 1, 1, 1), 17, payload_udp());
    bytes nhrp = {0x00, 0x01, 0x08, 0x00, 0, 0, 0, 0, 0, 0, 0x34, 0x01, 0x03, 0x00, 0, 0x28};
    std::vector<bytes> frames;
    for (int i = 0; i < 10; ++i) {
        frames.push_back(e.gre_frame(net::spoke2_nbma, net::key0, 0x0800, group));
        frames.push_back(e.gre_frame(net::spoke3_nbma, net::key0, 0x2001, nhrp));
    }
    e.from_underlay(frames);
    auto ike = ipv4(net::spoke2_nbma, net::hub_nbma, 17, udp(500, 500, 40));
    // IKE on 4500: the non-ESP marker (four zero bytes) first, else it would be ESP in UDP.
    bytes ike4500 = udp(4500, 4500, 40);
    std::fill(ike4500.begin() + 8, ike4500.begin() + 12, uint8_t{0});
    auto natt = ipv4(net::spoke2_nbma, net::hub_nbma, 17, ike4500);
    auto other = ipv4(net::spoke2_nbma, net::hub_nbma, 17, udp(1000, 501, 40));
    std::vector<bytes> to_hub;
    for (const bytes& b : {ike, natt, ike, other, other, other}) {
        to_hub.push_back(eth(e.underlay().mac, underlay_gw_mac, RTE_ETHER_TYPE_IPV4, b));
    }
    e.from_underlay(to_hub);
    auto p = e.punts();
    size_t mcast = 0;
    size_t nhrp_punted = 0;
    size_t for_us = 0;
    for (const auto& r : p) {
        mcast += r.reason == punt_reason::multicast ? 1 : 0;
        nhrp_punted += r.reason == punt_reason::nhrp ? 1 : 0;
        for_us += r.reason == punt_reason::for_us ? 1 : 0;
    }
    CHECK(mcast == 3);
    CHECK(nhrp_punted == 10);
    CHECK(for_us == 2 + 3);  // two of the three IKE / NAT-T packets, all three others
    const auto& c = e.worker().counters();
    CHECK(c.punts_policed[static_cast<size_t>(punt_reason::multicast)] == 7);
    CHECK(c.punts_policed[dp::punt_class_ike] == 1);
    CHECK(c.punts_policed[static_cast<size_t>(punt_reason::nhrp)] == 0);
    CHECK(c.punts_policed[static_cast<size_t>(punt_reason::for_us)] == 0);
    CHECK(drops(e, drop_reason::punt_policed) == 8);
    CHECK(dp::punt_class_name(dp::punt_class_ike) == "ike");
    env::free_all(p);
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("Counters are published per worker and readable by the control lcore",
          "[dataplane][stage]") {
    env e(2);
    auto inner = ipv4(net::spoke2, net::lan_host, 17, payload_udp());
    e.from_underlay({e.gre_frame(net::spoke2_nbma, net::key0, 0x0800, inner)}, 0);
    e.from_underlay({e.gre_frame(net::spoke2_nbma, 999, 0x0800, inner),
                     e.gre_frame(net::spoke2_nbma, net::key0, 0x0800, inner)},
                    1);
    auto w0 = e.stats().read(0);
    auto w1 = e.stats().read(1);
    CHECK(w0.rx_packets == e.worker(0).counters().rx_packets);
    CHECK(w0.tx_packets == 1);
    CHECK(w1.rx_packets == 2);
    CHECK(w1.tx_packets == 1);
    CHECK(w1.drop(drop_reason::gre_unknown_key) == 1);
    auto total = e.stats().total();
    CHECK(total.rx_packets == 3);
    CHECK(total.tx_packets == 2);
    CHECK(total.port_tx_packets[e.lan().id] == 2);
    CHECK(e.sent_on(e.lan(), 0).size() == 1);
    CHECK(e.sent_on(e.lan(), 1).size() == 1);
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("Drop and punt reasons all have distinct names", "[dataplane][stage]") {
    std::vector<std::string_view> names;
    for (size_t r = 0; r < dp::drop_reason_count; ++r) {
        names.push_back(dp::name(static_cast<drop_reason>(r)));
    }
    for (size_t r = 0; r < dp::punt_reason_count; ++r) {
        names.push_back(dp::name(static_cast<punt_reason>(r)));
    }
    for (auto n : names) {
        CHECK(!n.empty());
        CHECK(n != "unknown");
    }
    auto sorted = names;
    std::sort(sorted.begin(), sorted.end());
    CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
    CHECK(dp::name(drop_reason::gre_unknown_key) == "gre_unknown_key");
}

TEST_CASE("Glean loop: the control lcore resolves the next hop, the next packet flows",
          "[dataplane][stage]") {
    env e;
    auto pkt = ipv4(net::lan_host, dptest::ip4(10, 30, 7, 7), 17, payload_udp());
    e.from_lan({e.lan_frame(pkt)});
    auto p = e.punts();
    REQUIRE(p.size() == 1);
    REQUIRE(p[0].reason == punt_reason::glean);
    REQUIRE(p[0].nexthop == net::spoke4);
    env::free_all(p);

    // What the control lcore does once NHRP tells it where 10.0.0.4 is: the incomplete
    // adjacency becomes a resolved one, and a host route for the spoke appears.
    constexpr uint32_t spoke4_nbma = dptest::ip4(198, 51, 100, 4);
    REQUIRE(e.pub().set_tunnel_adjacency(4, {0, net::spoke4, spoke4_nbma, underlay_gw_mac,
                                             nullptr}) == dp::publish_status::ok);
    REQUIRE(e.pub().add_route(net::spoke4, 32, {dp::route_kind::adjacency, 4}) ==
            dp::publish_status::ok);
    e.from_lan(
        {e.lan_frame(pkt), e.lan_frame(ipv4(net::lan_host, net::spoke4, 17, payload_udp()))});
    auto out = e.sent_on(e.underlay());
    REQUIRE(out.size() == 2);
    CHECK(wire::load_be32(&out[0][14 + 16]) == spoke4_nbma);
    CHECK(wire::load_be32(&out[1][14 + 16]) == spoke4_nbma);

    // The spoke goes away: the route is withdrawn and the slot emptied.
    REQUIRE(e.pub().del_route(net::spoke4, 32) == dp::publish_status::ok);
    REQUIRE(e.pub().set_incomplete(4, 0, e.underlay().id, net::spoke4) == dp::publish_status::ok);
    auto before = drops(e, drop_reason::no_adjacency);
    e.from_lan({e.lan_frame(ipv4(net::lan_host, net::spoke4, 17, payload_udp()))});
    CHECK(e.sent_on(e.underlay()).empty());
    // 10.0.0.4 falls back to the connected tunnel subnet and gleans, but an event for this
    // next hop went out less than an interval ago: dropped, counted, no second event.
    CHECK(e.punts().empty());
    CHECK(drops(e, drop_reason::no_adjacency) == before + 1);
    e.pub().synchronize();
    CHECK(e.pub().pending() == 0);
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("Rate limiters: glean again after the interval, redirects per (source, destination)",
          "[dataplane][stage]") {
    env e;
    auto a = ipv4(net::lan_host, dptest::ip4(10, 0, 0, 77), 17, payload_udp());
    e.from_lan({e.lan_frame(a), e.lan_frame(a)});
    auto p = e.punts();
    CHECK(p.size() == 1);
    env::free_all(p);
    // The worker's interval is 100 ms (worker_config::glean_interval_us).
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    e.from_lan({e.lan_frame(a)});
    p = e.punts();
    CHECK(p.size() == 1);
    env::free_all(p);

    auto s2_s3 = ipv4(net::spoke2, net::spoke3, 17, payload_udp());
    auto s3_s2 = ipv4(net::spoke3, net::spoke2, 17, payload_udp());
    e.from_underlay({e.gre_frame(net::spoke2_nbma, net::key0, 0x0800, s2_s3),
                     e.gre_frame(net::spoke3_nbma, net::key0, 0x0800, s3_s2),
                     e.gre_frame(net::spoke2_nbma, net::key0, 0x0800, s2_s3)});
    CHECK(e.sent_on(e.underlay()).size() == 3);
    p = e.punts();
    REQUIRE(p.size() == 2);
    CHECK(p[0].nexthop == net::spoke3);
    CHECK(p[0].outer_src == net::spoke2_nbma);
    CHECK(p[1].nexthop == net::spoke2);
    CHECK(p[1].outer_src == net::spoke3_nbma);
    CHECK(e.worker().counters().redirect_suppressed == 1);
    env::free_all(p);
    CHECK(e.pool_in_use() == 0);
}

namespace {

// The fixture's topology with one change applied.
template <class F>
void change_topology(env& e, F f) {
    dp::topology t = *e.pub().current_topology();
    f(t);
    e.pub().set_topology(t);
}

}  // namespace

TEST_CASE("verify-source: a spoke's inner source must route back to that spoke",
          "[dataplane][stage]") {
    env e;
    // Adjacency 1 is spoke 10.0.0.2 at 198.51.100.2 (10.20.0.0/16 behind it), adjacency 2 spoke
    // 10.0.0.3 at 198.51.100.3; 10.0.0.99 is in the tunnel's subnet but nobody registered it.
    auto from_spoke2 = [&](uint32_t src) {
        return e.gre_frame(net::spoke2_nbma, net::key0, 0x0800,
                           ipv4(src, net::lan_host, 17, payload_udp()));
    };
    const std::vector<bytes> frames = {
        from_spoke2(net::spoke2),          // its own address
        from_spoke2(ip4(10, 20, 1, 1)),    // its LAN, routed through it
        from_spoke2(net::spoke3),          // another spoke's address
        from_spoke2(ip4(10, 0, 0, 99)),    // unregistered overlay address (glean route)
        from_spoke2(net::lan_host),        // the hub's LAN
        from_spoke2(ip4(203, 0, 113, 7)),  // no route at all
        from_spoke2(ip4(10, 30, 0, 1)),    // routed to an incomplete adjacency
        e.gre_frame(net::spoke3_nbma, net::key0, 0x0800,  // spoke 3 with spoke 2's LAN
                    ipv4(ip4(10, 20, 1, 1), net::lan_host, 17, payload_udp())),
    };
    SECTION("off (the default): everything is forwarded") {
        e.from_underlay(frames);
        CHECK(e.sent_on(e.lan()).size() == frames.size());
        CHECK(drops(e, drop_reason::spoofed_source) == 0);
    }
    SECTION("on: only the first two leave, the rest are dropped and counted") {
        change_topology(e, [](dp::topology& t) { t.tunnels[0].verify_source = true; });
        e.from_underlay(frames);
        auto out = e.sent_on(e.lan());
        REQUIRE(out.size() == 2);
        CHECK(wire::load_be32(&out[0][14 + 12]) == net::spoke2);
        CHECK(wire::load_be32(&out[1][14 + 12]) == ip4(10, 20, 1, 1));
        CHECK(drops(e, drop_reason::spoofed_source) == frames.size() - 2);
        CHECK(e.worker().counters().total_drops() == frames.size() - 2);
        CHECK(e.punts().empty());
        // Spoke 3 re-registers from a new NBMA address: its old one no longer passes.
        REQUIRE(e.pub().set_tunnel_adjacency(
                    2, {0, net::spoke3, ip4(198, 51, 100, 33), underlay_gw_mac, nullptr}) ==
                dp::publish_status::ok);
        e.from_underlay({e.gre_frame(net::spoke3_nbma, net::key0, 0x0800,
                                     ipv4(net::spoke3, net::lan_host, 17, payload_udp())),
                         e.gre_frame(ip4(198, 51, 100, 33), net::key0, 0x0800,
                                     ipv4(net::spoke3, net::lan_host, 17, payload_udp()))});
        CHECK(e.sent_on(e.lan()).size() == 1);
        CHECK(drops(e, drop_reason::spoofed_source) == frames.size() - 2 + 1);
        // LAN traffic is not checked.
        e.from_lan({e.lan_frame(ipv4(ip4(10, 20, 9, 9), net::spoke2, 17, payload_udp()))});
        CHECK(e.sent_on(e.underlay()).size() == 1);
    }
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("An underlay port is no way into the LAN: transit IPv4 is dropped unless allowed",
          "[dataplane][stage]") {
    env e;
    auto on_underlay = [&](const bytes& ip) {
        return eth(e.underlay().mac, underlay_gw_mac, RTE_ETHER_TYPE_IPV4, ip);
    };
    auto ike = ipv4(net::spoke2_nbma, net::hub_nbma, 17, udp(500, 500, 40));
    auto to_lan = ipv4(ip4(198, 51, 100, 77), net::lan_host, 17, payload_udp());
    auto to_spoke = ipv4(ip4(198, 51, 100, 77), net::spoke2, 17, payload_udp());
    auto mcast = ipv4(ip4(198, 51, 100, 77), ip4(224, 0, 0, 10), 88, payload_udp());
    auto tunnel = e.gre_frame(net::spoke2_nbma, net::key0, 0x0800,
                              ipv4(net::spoke2, net::lan_host, 17, payload_udp()));
    SECTION("not allowed") {
        change_topology(e, [&](dp::topology& t) { t.ports[e.underlay().id].drop_transit = true; });
        e.from_underlay({on_underlay(ike), on_underlay(to_lan), on_underlay(to_spoke),
                         on_underlay(mcast), tunnel});
        auto p = e.punts();
        REQUIRE(p.size() == 1);  // IKE to the hub's NBMA address
        CHECK(p[0].reason == punt_reason::for_us);
        CHECK(data_of(p[0].m) == ike);
        env::free_all(p);
        auto lan = e.sent_on(e.lan());
        REQUIRE(lan.size() == 1);  // the tunnel's packet, decapsulated
        CHECK(wire::load_be32(&lan[0][14 + 12]) == net::spoke2);
        CHECK(e.sent_on(e.underlay()).empty());
        CHECK(drops(e, drop_reason::underlay_transit) == 3);
        // The LAN port still routes.
        e.from_lan({e.lan_frame(ipv4(net::lan_host, net::spoke2, 17, payload_udp()))});
        CHECK(e.sent_on(e.underlay()).size() == 1);
    }
    SECTION("not allowed, with a kernel interface: its link-local multicast is punted") {
        change_topology(e, [&](dp::topology& t) {
            t.ports[e.underlay().id].drop_transit = true;
            t.ports[e.underlay().id].link_local_to_host = true;
        });
        auto group = ipv4(ip4(198, 51, 100, 77), ip4(239, 1, 2, 3), 17, payload_udp());
        e.from_underlay({on_underlay(mcast), on_underlay(group), on_underlay(to_lan)});
        auto p = e.punts();
        REQUIRE(p.size() == 1);  // 224.0.0.10 only: 239.1.2.3 is still transit
        CHECK(p[0].reason == punt_reason::multicast);
        CHECK(data_of(p[0].m) == mcast);
        env::free_all(p);
        CHECK(e.sent_on(e.lan()).empty());
        CHECK(drops(e, drop_reason::underlay_transit) == 2);
    }
    SECTION("allowed (allow-transit)") {
        e.from_underlay({on_underlay(to_lan), on_underlay(to_spoke)});
        CHECK(e.sent_on(e.lan()).size() == 1);
        CHECK(e.sent_on(e.underlay()).size() == 1);
        CHECK(drops(e, drop_reason::underlay_transit) == 0);
    }
    CHECK(e.pool_in_use() == 0);
}
