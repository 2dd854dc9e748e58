// ESP-in and ESP-out stages wired to the crypto library: the hub's output decrypts with the
// spoke's SA, the spoke's ESP is decrypted, replay- and ICV-checked, on whichever worker (or the
// control lcore's forwarder) has the packet.
#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "crypto/engine.hpp"
#include "crypto/esp_transport.hpp"
#include "crypto/sa.hpp"
#include "dataplane/wire/checksum.hpp"
#include "dataplane/wire/pcap_file.hpp"
#include "dataplane/wire/reader.hpp"
#include "tests/unit/dataplane_support.hpp"

using namespace dptest;
namespace dp = dmvpn::dp;
namespace wire = dmvpn::wire;
namespace crypto = dmvpn::crypto;
using dp::drop_reason;

namespace {

crypto::engine& test_engine() {
    static auto eng = crypto::engine::create();
    REQUIRE(eng.has_value());
    return **eng;
}

// AES-128-GCM key + salt (RFC 4106); two different ones for the two directions.
std::array<uint8_t, 20> key_material(uint8_t seed) {
    std::array<uint8_t, 20> k{};
    for (size_t i = 0; i < k.size(); ++i) {
        k[i] = static_cast<uint8_t>(seed + i * 7);
    }
    return k;
}

std::unique_ptr<crypto::sa> make_sa(uint32_t spi, crypto::sa_direction dir,
                                    const std::array<uint8_t, 20>& key) {
    crypto::sa_params p;
    p.spi = spi;
    p.direction = dir;
    p.cipher = crypto::cipher_alg::aes_gcm_16;
    p.cipher_key = key;
    auto r = crypto::sa::create(p, test_engine());
    REQUIRE(r.has_value());
    return std::move(r.value());
}

// The spoke's side of the two SAs, and the hub's.
struct sa_pairs {
    static constexpr uint32_t hub_to_spoke_spi = 0x1001;
    static constexpr uint32_t spoke_to_hub_spi = 0x2002;
    std::array<uint8_t, 20> k_out = key_material(0x11);
    std::array<uint8_t, 20> k_in = key_material(0x53);
    std::unique_ptr<crypto::sa> hub_out =
        make_sa(hub_to_spoke_spi, crypto::sa_direction::outbound, k_out);
    std::unique_ptr<crypto::sa> spoke_in =
        make_sa(hub_to_spoke_spi, crypto::sa_direction::inbound, k_out);
    std::unique_ptr<crypto::sa> spoke_out =
        make_sa(spoke_to_hub_spi, crypto::sa_direction::outbound, k_in);
    std::unique_ptr<crypto::sa> hub_in =
        make_sa(spoke_to_hub_spi, crypto::sa_direction::inbound, k_in);

    void publish_inbound(env& e, uint16_t tunnel = 1) {
        dp::inbound_sa in{spoke_to_hub_spi, tunnel, hub_in.get()};
        e.pub().set_inbound_sas(std::span(&in, 1));
    }
};

// Runs one packet through the crypto library with room around it, as the spoke would.
bytes esp_transform(crypto::sa& s, const bytes& ip, bool encrypt) {
    bytes buf(256 + ip.size() + 256);
    std::copy(ip.begin(), ip.end(), buf.begin() + 256);
    crypto::esp_packet p{buf.data() + 256, static_cast<uint32_t>(ip.size()), 256, 256};
    crypto::esp_status st = crypto::esp_status::engine_error;
    if (encrypt) {
        (void)crypto::encrypt_burst(test_engine(), s, std::span(&p, 1), std::span(&st, 1));
    } else {
        (void)crypto::decrypt_burst(test_engine(), s, std::span(&p, 1), std::span(&st, 1));
    }
    REQUIRE(st == crypto::esp_status::ok);
    return bytes(p.data, p.data + p.len);
}

bytes from_spoke5(env& e, sa_pairs& sas, uint32_t key, const bytes& inner) {
    auto plain = ipv4(net::spoke5_nbma, net::hub_nbma, 47, gre(0x0800, key, inner));
    auto esp = esp_transform(*sas.spoke_out, plain, true);
    return eth(e.underlay().mac, underlay_gw_mac, RTE_ETHER_TYPE_IPV4, esp);
}

// Checks an ESP frame the hub sent to spoke 5 and returns the inner IPv4 packet.
bytes open_hub_output(sa_pairs& sas, const bytes& frame) {
    bytes ip(frame.begin() + 14, frame.end());
    REQUIRE(ip[9] == 50);
    CHECK(wire::load_be32(&ip[12]) == net::hub_nbma);
    CHECK(wire::load_be32(&ip[16]) == net::spoke5_nbma);
    CHECK(wire::load_be32(&ip[20]) == sa_pairs::hub_to_spoke_spi);
    CHECK(wire::inet_checksum(std::span(ip).subspan(0, 20)) == 0);
    auto plain = esp_transform(*sas.spoke_in, ip, false);
    REQUIRE(plain[9] == 47);
    auto g = std::span(plain).subspan(20);
    CHECK(wire::load_be16(&g[0]) == 0x2000);
    CHECK(wire::load_be16(&g[2]) == 0x0800);
    CHECK(wire::load_be32(&g[4]) == net::key1);
    return bytes(g.begin() + 8, g.end());
}

}  // namespace

TEST_CASE("ESP-out: LAN traffic to an IPsec spoke leaves as ESP transport over GRE",
          "[dataplane][esp]") {
    sa_pairs sas;
    env e(1, 1024, sas.hub_out.get());
    auto inner = ipv4(net::lan_host, net::spoke5, 17, udp(5, 6, 100));
    e.from_lan({e.lan_frame(inner), e.lan_frame(inner)});
    auto out = e.sent_on(e.underlay());
    REQUIRE(out.size() == 2);
    for (auto& f : out) {
        auto got = open_hub_output(sas, f);
        REQUIRE(got.size() == inner.size());
        CHECK(got[8] == inner[8] - 1);
        CHECK(std::equal(got.begin() + 20, got.end(), inner.begin() + 20));
    }
    CHECK(sas.hub_out->last_seq() == 2);
    CHECK(e.worker().counters().total_drops() == 0);
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE(
    "ESP-in: a spoke's ESP is decrypted, decapsulated and forwarded; replays and forgeries "
    "are dropped",
    "[dataplane][esp]") {
    sa_pairs sas;
    env e(1, 1024, sas.hub_out.get());
    sas.publish_inbound(e);
    auto inner = ipv4(net::spoke5, net::lan_host, 17, udp(5, 6, 64));
    auto frame = from_spoke5(e, sas, net::key1, inner);
    e.from_underlay({frame});
    auto out = e.sent_on(e.lan());
    REQUIRE(out.size() == 1);
    bytes got(out[0].begin() + 14, out[0].end());
    REQUIRE(got.size() == inner.size());
    CHECK(got[8] == inner[8] - 1);
    CHECK(std::equal(got.begin() + 20, got.end(), inner.begin() + 20));

    e.from_underlay({frame});
    CHECK(e.worker().counters().drop(drop_reason::esp_replayed) == 1);

    auto forged = from_spoke5(e, sas, net::key1, inner);
    forged[forged.size() - 20] ^= 0x01;
    e.from_underlay({forged});
    CHECK(e.worker().counters().drop(drop_reason::esp_bad_icv) == 1);

    // The GRE inside names tunnel 0, but the SA protects tunnel 1.
    e.from_underlay({from_spoke5(e, sas, net::key0, inner)});
    CHECK(e.worker().counters().drop(drop_reason::esp_tunnel_mismatch) == 1);
    CHECK(e.sent_on(e.lan()).empty());
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("ESP: any worker encrypts and decrypts for any SA, without handing packets over",
          "[dataplane][esp]") {
    sa_pairs sas;
    env e(2, 1024, sas.hub_out.get());
    sas.publish_inbound(e);

    // Both workers encrypt for the one outbound SA: each packet claims its own number.
    auto to_spoke = ipv4(net::lan_host, net::spoke5, 17, udp(5, 6, 80));
    e.from_lan({e.lan_frame(to_spoke), e.lan_frame(to_spoke)}, 0);
    e.from_lan({e.lan_frame(to_spoke)}, 1);
    e.from_lan({e.lan_frame(to_spoke)}, 0);
    std::vector<uint32_t> seqs;
    for (uint16_t w = 0; w < 2; ++w) {
        for (const bytes& f : e.sent_on(e.underlay(), w)) {
            seqs.push_back(wire::load_be32(&f[14 + 24]));
            CHECK(open_hub_output(sas, f).size() == to_spoke.size());
        }
    }
    std::sort(seqs.begin(), seqs.end());
    CHECK(seqs == std::vector<uint32_t>{1, 2, 3, 4});
    CHECK(sas.hub_out->last_seq() == 4);
    CHECK(sas.hub_out->packets() == 4);

    // The spoke's ESP is decrypted on the worker that received it.
    auto from_spoke = ipv4(net::spoke5, net::lan_host, 17, udp(5, 6, 80));
    e.from_underlay({from_spoke5(e, sas, net::key1, from_spoke)}, 1);
    auto plain_out = e.sent_on(e.lan(), 1);
    REQUIRE(plain_out.size() == 1);
    CHECK(plain_out[0].size() == 14 + from_spoke.size());
    CHECK(e.worker(0).counters().total_drops() == 0);
    CHECK(e.worker(1).counters().total_drops() == 0);
    CHECK(e.pool_in_use() == 0);
}

namespace {

// What the control lcore does for NHRP to a spoke on an IPsec tunnel (control/hub/hub.cpp
// forward): the GRE payload alone, through its own forwarder from resolve on.
void control_forward(env& e, const bytes& payload, uint32_t adj_id) {
    rte_mbuf* m = rte_pktmbuf_alloc(e.pool());
    REQUIRE(m != nullptr);
    char* d = rte_pktmbuf_append(m, static_cast<uint16_t>(payload.size()));
    REQUIRE(d != nullptr);
    std::copy(payload.begin(), payload.end(), d);
    dp::packet_meta& pm = dp::meta(m);
    pm = dp::packet_meta{};
    pm.tunnel = dp::no_tunnel;
    pm.nexthop = adj_id;
    pm.aux = 0x2001;
    pm.flags = static_cast<uint8_t>(static_cast<uint8_t>(dp::packet_class::routed) |
                                    dp::meta_flag::gre_payload);
    e.forwarder().inject(&m, 1);
}

}  // namespace

TEST_CASE("a given-back adjacency id is not reused before a grace period",
          "[dataplane][esp][rcu]") {
    sa_pairs sas;
    env e(2, 1024, sas.hub_out.get());
    auto& pub = e.pub();
    auto id = pub.alloc_adjacency_id();
    REQUIRE(id.has_value());
    CHECK(*id == 8);
    REQUIRE(pub.set_tunnel_adjacency(*id, {1, net::spoke5, net::spoke5_nbma, underlay_gw_mac,
                                           sas.hub_out.get()}) == dp::publish_status::ok);
    // A worker online that has not reported a quiescent state since the id was given back may
    // still hold it from a FIB lookup.
    rte_rcu_qsbr* v = pub.rcu();
    rte_rcu_qsbr_thread_online(v, 0);
    pub.free_adjacency_id(*id);
    CHECK(pub.tables().adjacencies->get(*id) == nullptr);
    for (int i = 0; i < 3; ++i) {
        pub.reclaim();
    }
    CHECK(pub.ids_pending() == 1);
    auto other = pub.alloc_adjacency_id();
    REQUIRE(other.has_value());
    CHECK(*other != *id);
    rte_rcu_qsbr_quiescent(v, 0);
    pub.reclaim();
    CHECK(pub.ids_pending() == 0);
    rte_rcu_qsbr_thread_offline(v, 0);
    CHECK(pub.alloc_adjacency_id() == id);
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE(
    "ESP-out: NHRP from the control lcore leaves through its own forwarder as ESP over GRE "
    "0x2001, unclamped and unfragmented",
    "[dataplane][esp]") {
    sa_pairs sas;
    env e(2, 1024, sas.hub_out.get());
    // Not IPv4 at all (first byte 0x00: an NHRP fixed header starts with the AFN), and larger
    // than the tunnel's IP MTU, which the mtu stage must not apply to it.
    bytes nhrp(net::mtu0 + 40);
    for (size_t i = 0; i < nhrp.size(); ++i) {
        nhrp[i] = static_cast<uint8_t>(i * 13 + 1);
    }
    nhrp[0] = 0x00;
    nhrp[1] = 0x01;
    control_forward(e, nhrp, 5);
    // Adjacency 4 is incomplete: a non-IPv4 payload must not glean (it would come back as a
    // packet to route), it is dropped.
    control_forward(e, bytes(64, 0x00), 4);
    // Sent on the control TX queue (the one after the workers'), no worker involved.
    CHECK(e.sent_on(e.underlay(), 0).empty());
    CHECK(e.sent_on(e.underlay(), 1).empty());
    auto out = e.sent_on(e.underlay(), 2);
    REQUIRE(out.size() == 1);
    bytes ip(out[0].begin() + 14, out[0].end());
    REQUIRE(ip[9] == 50);
    CHECK(wire::load_be32(&ip[16]) == net::spoke5_nbma);
    CHECK(wire::load_be32(&ip[20]) == sa_pairs::hub_to_spoke_spi);
    CHECK(wire::inet_checksum(std::span(ip).subspan(0, 20)) == 0);
    auto plain = esp_transform(*sas.spoke_in, ip, false);
    REQUIRE(plain[9] == 47);
    CHECK(wire::load_be16(&plain[2]) == plain.size());
    CHECK((wire::load_be16(&plain[6]) & 0x4000) == 0);  // no DF copied from a non-IP payload
    auto g = std::span(plain).subspan(20);
    CHECK(wire::load_be16(&g[0]) == 0x2000);
    CHECK(wire::load_be16(&g[2]) == 0x2001);
    CHECK(wire::load_be32(&g[4]) == net::key1);
    CHECK(bytes(g.begin() + 8, g.end()) == nhrp);
    CHECK(sas.hub_out->last_seq() == 1);
    CHECK(e.forwarder().counters().drop(drop_reason::no_adjacency) == 1);
    CHECK(e.forwarder().counters().total_drops() == 1);
    auto punted = e.punts();
    CHECK(punted.empty());
    env::free_all(punted);
    CHECK(e.pool_in_use() == 0);
}

namespace {

// RFC 3948 by hand, independently of dataplane/stage/natt.hpp: UDP (checksum 0) between the
// IPv4 header and ESP, protocol 17, total length and header checksum fixed.
bytes in_udp(const bytes& esp_ip, uint16_t sport, uint16_t dport) {
    bytes out(esp_ip.begin(), esp_ip.begin() + 20);
    uint16_t udp_len = static_cast<uint16_t>(esp_ip.size() - 20 + 8);
    for (uint16_t v : {sport, dport, udp_len, uint16_t{0}}) {
        out.push_back(static_cast<uint8_t>(v >> 8));
        out.push_back(static_cast<uint8_t>(v));
    }
    out.insert(out.end(), esp_ip.begin() + 20, esp_ip.end());
    out[9] = 17;
    wire::store_be16(&out[2], static_cast<uint16_t>(out.size()));
    wire::store_be16(&out[10], 0);
    wire::store_be16(&out[10], wire::inet_checksum(std::span(out).subspan(0, 20)));
    return out;
}

constexpr uint16_t nat_port = 61044;  // where the spoke's NAT maps its 4500

std::string fmt_hex(uint8_t b) {
    static constexpr char digits[] = "0123456789abcdef";
    return {digits[b >> 4], digits[b & 15]};
}

}  // namespace

TEST_CASE(
    "NAT-T in: ESP in UDP 4500 from a spoke behind NAT is decrypted like ESP; the marker "
    "and keepalives go to IKE",
    "[dataplane][esp][natt]") {
    sa_pairs sas;
    env e(1, 1024, sas.hub_out.get());
    sas.publish_inbound(e);
    auto inner = ipv4(net::spoke5, net::lan_host, 17, udp(5, 6, 64));
    auto plain = ipv4(net::spoke5_nbma, net::hub_nbma, 47, gre(0x0800, net::key1, inner));
    auto esp = esp_transform(*sas.spoke_out, plain, true);
    auto frame =
        eth(e.underlay().mac, underlay_gw_mac, RTE_ETHER_TYPE_IPV4, in_udp(esp, nat_port, 4500));
    e.from_underlay({frame});
    auto out = e.sent_on(e.lan());
    REQUIRE(out.size() == 1);
    bytes got(out[0].begin() + 14, out[0].end());
    REQUIRE(got.size() == inner.size());
    CHECK(std::equal(got.begin() + 20, got.end(), inner.begin() + 20));
    CHECK(e.worker().counters().natt_in == 1);
    // The same packet again: the same SA's replay window caught it.
    e.from_underlay({frame});
    CHECK(e.worker().counters().drop(drop_reason::esp_replayed) == 1);

    // Non-ESP marker (IKE on 4500) and a NAT keepalive (one 0xff byte): punted, class ike,
    // untouched; so is UDP 4500 with an unknown SPI's worth of zero bytes.
    bytes ike_msg = {0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
    bytes ike_udp = {0xee, 0x74, 0x11, 0x94, 0, 20, 0, 0};  // 61044 -> 4500, length 20
    ike_udp.insert(ike_udp.end(), ike_msg.begin(), ike_msg.end());
    bytes keepalive_udp = {0xee, 0x74, 0x11, 0x94, 0, 9, 0, 0, 0xff};
    auto ike_ip = ipv4(net::spoke5_nbma, net::hub_nbma, 17, ike_udp);
    auto ka_ip = ipv4(net::spoke5_nbma, net::hub_nbma, 17, keepalive_udp);
    e.from_underlay({eth(e.underlay().mac, underlay_gw_mac, RTE_ETHER_TYPE_IPV4, ike_ip),
                     eth(e.underlay().mac, underlay_gw_mac, RTE_ETHER_TYPE_IPV4, ka_ip)});
    auto p = e.punts();
    REQUIRE(p.size() == 2);
    CHECK(p[0].reason == dp::punt_reason::for_us);
    CHECK(dptest::data_of(p[0].m) == ike_ip);
    CHECK(dptest::data_of(p[1].m) == ka_ip);
    env::free_all(p);
    CHECK(e.worker().counters().natt_in == 2);  // the two ESP-in-UDP packets, not these
    CHECK(e.worker().counters().punts_policed[dp::punt_class_ike] == 0);
    CHECK(e.pool_in_use() == 0);
}

TEST_CASE("NAT-T out: an adjacency whose SA has udp_encap sends ESP in UDP to the NAT's port",
          "[dataplane][esp][natt]") {
    sa_pairs sas;
    env e(1, 1024, sas.hub_out.get());
    dp::tunnel_adjacency_spec spec{1, net::spoke5, net::spoke5_nbma, underlay_gw_mac,
                                   sas.hub_out.get()};
    spec.udp_encap = true;
    spec.local_port = 4500;
    spec.peer_port = nat_port;
    REQUIRE(e.pub().set_tunnel_adjacency(5, spec) == dp::publish_status::ok);
    auto inner = ipv4(net::lan_host, net::spoke5, 17, udp(5, 6, 100));
    e.from_lan({e.lan_frame(inner), e.lan_frame(inner)});
    auto out = e.sent_on(e.underlay());
    REQUIRE(out.size() == 2);
    for (auto& f : out) {
        bytes ip(f.begin() + 14, f.end());
        REQUIRE(ip.size() > 28);
        CHECK(ip[9] == 17);
        CHECK(wire::load_be16(&ip[2]) == ip.size());
        CHECK(wire::inet_checksum(std::span(ip).subspan(0, 20)) == 0);
        CHECK(wire::load_be32(&ip[16]) == net::spoke5_nbma);
        CHECK(wire::load_be16(&ip[20]) == 4500);
        CHECK(wire::load_be16(&ip[22]) == nat_port);
        CHECK(wire::load_be16(&ip[24]) == ip.size() - 20);
        CHECK(wire::load_be16(&ip[26]) == 0);
        CHECK(wire::load_be32(&ip[28]) == sa_pairs::hub_to_spoke_spi);
        // Without its UDP header it is the ESP packet the spoke decrypts.
        bytes esp(ip.begin(), ip.begin() + 20);
        esp.insert(esp.end(), ip.begin() + 28, ip.end());
        esp[9] = 50;
        wire::store_be16(&esp[2], static_cast<uint16_t>(esp.size()));
        auto plain = esp_transform(*sas.spoke_in, esp, false);
        REQUIRE(plain[9] == 47);
        bytes got(plain.begin() + 28, plain.end());
        REQUIRE(got.size() == inner.size());
        CHECK(std::equal(got.begin() + 20, got.end(), inner.begin() + 20));
    }
    CHECK(e.worker().counters().natt_out == 2);
    CHECK(e.worker().counters().total_drops() == 0);
    CHECK(e.pool_in_use() == 0);

    // Wireshark reads it as NAT-T (its udpencap dissector on port 4500), decrypts the ESP with
    // the SA's key (esp_sa UAT, GCM keys with their salt) and finds GRE key 200 and the inner
    // packet to the spoke inside, ICV good.
    auto dir =
        std::filesystem::temp_directory_path() / ("dmvpn-natt-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::string cap = (dir / "natt_out.pcap").string();
    {
        auto w = wire::pcap::file_writer::create(cap, wire::pcap::linktype::ethernet);
        REQUIRE(w.has_value());
        for (auto& f : out) {
            REQUIRE_FALSE(w->write(wire::pcap::timestamp{}, f).has_value());
        }
        REQUIRE_FALSE(w->close().has_value());
    }
    std::string key;
    for (uint8_t b : sas.k_out) {
        key += fmt_hex(b);
    }
    std::string cmd =
        "tshark -r " + cap +
        " -o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE"
        " -o 'uat:esp_sa:\"IPv4\",\"192.0.2.1\",\"198.51.100.5\",\"0x00001001\",\"AES-GCM "
        "with 16 octet ICV [RFC4106]\",\"0x" +
        key +
        "\",\"NULL\",\"\"' -T fields -E 'separator=;' -e udp.srcport -e udp.dstport -e esp.spi"
        " -e esp.sequence -e esp.icv_good -e gre.key -e ip.dst 2>/dev/null";
    std::FILE* pipe = ::popen(cmd.c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::string text;
    char buf[512];
    while (std::fgets(buf, sizeof(buf), pipe) != nullptr) {
        text += buf;
    }
    CHECK(::pclose(pipe) == 0);
    std::filesystem::remove_all(dir);
    INFO(text);
    // UDP and ip.dst list the outer (NAT-T) then the inner (decrypted) layer.
    CHECK(text ==
          "4500,5;61044,6;0x00001001;1;1;0x000000c8;198.51.100.5,10.1.0.2\n"
          "4500,5;61044,6;0x00001001;2;1;0x000000c8;198.51.100.5,10.1.0.2\n");
}

TEST_CASE("NAT-T: the inner MTU leaves room for UDP, ESP and GRE", "[dataplane][esp][natt]") {
    // Worked by hand. AES-GCM: 8-byte IV, 16-byte ICV, 4-byte alignment. On a 1500-byte port:
    // 20 IPv4 + 8 UDP + 8 ESP header + 8 IV + 16 ICV = 60; 1440 bytes of ciphertext hold
    // 8 GRE (with key) + 2 trailer + 1430 inner; without UDP 1448 -> 1438.
    sa_pairs sas;
    CHECK(dp::esp_inner_mtu(1500, 8, *sas.hub_out, true) == 1430);
    CHECK(dp::esp_inner_mtu(1500, 8, *sas.hub_out, false) == 1438);
    CHECK(dp::esp_inner_mtu(1500, 4, *sas.hub_out, true) == 1434);
    CHECK(dp::esp_inner_mtu(50, 8, *sas.hub_out, true) == 0);
    // AES-CBC + HMAC-SHA1-96: 16-byte IV, 12-byte ICV, 16-byte blocks: 1500 - 64 = 1436,
    // 89 blocks = 1424 -> 1424 - 10 = 1414.
    std::array<uint8_t, 16> aes{};
    std::array<uint8_t, 20> hmac{};
    crypto::sa_params p;
    p.spi = 0x77;
    p.direction = crypto::sa_direction::outbound;
    p.cipher = crypto::cipher_alg::aes_cbc;
    p.integ = crypto::integ_alg::hmac_sha1_96;
    p.cipher_key = aes;
    p.integ_key = hmac;
    auto cbc = crypto::sa::create(p, test_engine());
    REQUIRE(cbc.has_value());
    CHECK(dp::esp_inner_mtu(1500, 8, **cbc, true) == 1414);

    // A 1440-byte port: the NAT-T adjacency's MTU drops below the tunnel's 1400 to 1370, and
    // a DF packet between the two is refused with that MTU (frag_needed).
    env e(1, 1024, sas.hub_out.get());
    dp::topology t = *e.pub().current_topology();
    t.ports[e.underlay().id].mtu = 1440;
    e.pub().set_topology(t);
    dp::tunnel_adjacency_spec spec{1, net::spoke5, net::spoke5_nbma, underlay_gw_mac,
                                   sas.hub_out.get()};
    spec.udp_encap = true;
    REQUIRE(e.pub().set_tunnel_adjacency(5, spec) == dp::publish_status::ok);
    CHECK(e.pub().tables().adjacencies->get(5)->mtu == 1370);
    dptest::ipv4_opts df;
    df.flags_frag = 0x4000;
    auto big = ipv4(net::lan_host, net::spoke5, 17, udp(5, 6, 1380 - 28), df);
    e.from_lan({e.lan_frame(big)});
    CHECK(e.sent_on(e.underlay()).empty());
    auto p2 = e.punts();
    REQUIRE(p2.size() == 1);
    CHECK(p2[0].reason == dp::punt_reason::frag_needed);
    CHECK(p2[0].mtu == 1370);
    env::free_all(p2);
    CHECK(e.pool_in_use() == 0);
}
