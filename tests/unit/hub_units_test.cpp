// The hub's control-lcore pieces that need no DPDK: options, frames (ARP, ICMP, fragments, GRE),
// the ARP table and the mapping of the YAML model onto the dataplane, NHRP server and SAs.
#include <catch2/catch.hpp>

#include <algorithm>

#include "config/load.hpp"
#include "control/hub/default_topology.hpp"
#include "control/hub/frames.hpp"
#include "control/hub/json.hpp"
#include "control/hub/model.hpp"
#include "control/hub/neighbors.hpp"
#include "control/hub/options.hpp"
#include "dataplane/wire/checksum.hpp"
#include "dataplane/wire/gre.hpp"
#include "dataplane/wire/ipv4.hpp"
#include "dataplane/wire/reader.hpp"

using namespace dmvpn;
using namespace dmvpn::hub;
using namespace std::chrono_literals;

namespace {

constexpr uint32_t ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    return (uint32_t{a} << 24) | (uint32_t{b} << 16) | (uint32_t{c} << 8) | d;
}

const mac_addr hub_mac{0x02, 0, 0, 0, 0, 1};
const mac_addr peer_mac{0x02, 0, 0, 0, 0, 2};

bytes echo_request(uint32_t src, uint32_t dst, std::string_view data) {
    bytes icmp{icmp_echo_request, 0, 0, 0, 0x12, 0x34, 0x00, 0x05};
    icmp.insert(icmp.end(), data.begin(), data.end());
    wire::store_be16(&icmp[2], wire::inet_checksum(icmp));
    return ipv4_packet(src, dst, wire::ip_proto::icmp, icmp, 99);
}

config::topology load(std::string_view yaml) {
    auto r = config::load_string(yaml, "test.yaml");
    INFO(r.error_text());
    REQUIRE(r);
    return std::move(r).value();
}

constexpr std::string_view two_tunnels = R"(
hub:
  control-lcore: 0
  worker-lcores: [1, 2]
ports:
  - name: wan
    device: net_null0
    role: underlay
    address: 192.0.2.1/24
    gateway: 192.0.2.254
  - name: lan
    device: net_null1
    role: lan
    address: 172.16.0.1/24
tunnels:
  - name: red
    port: wan
    overlay-address: 10.0.0.1
    overlay-prefix: 10.0.0.0/24
    gre-key: 100
    nhrp:
      network-id: 7
      authentication: secret
      holdtime: 300
      phase: 3
      redirect: true
      redirect-rate-limit: 25
      map:
        - {overlay: 10.0.0.9, nbma: 198.51.100.9}
      multicast:
        dynamic: false
        static: [198.51.100.9]
    ip-mtu: 1400
    tcp-adjust-mss: 1360
    ipsec-profile: gcm
  - name: blue
    port: wan
    overlay-address: 10.1.0.1
    overlay-prefix: 10.1.0.0/24
    nhrp:
      network-id: 2
ipsec-profiles:
  - name: gcm
    transform: aes128-gcm16
    manual-sas:
      - peer: 198.51.100.9
        inbound:  {spi: 0x1000, key: 0x000102030405060708090a0b0c0d0e0f, salt: 0xa0a1a2a3}
        outbound: {spi: 0x2000, key: 0x101112131415161718191a1b1c1d1e1f, salt: 0xb0b1b2b3}
)";

}  // namespace

TEST_CASE("options: config, check, socket and EAL arguments after --", "[hub][options]") {
    auto p = parse_options({"--config", "a.yaml", "--socket=/tmp/s", "--", "-l", "0-1"});
    REQUIRE(p.opts);
    CHECK(p.opts->config_file == "a.yaml");
    CHECK(p.opts->socket == "/tmp/s");
    CHECK(p.opts->eal_args == std::vector<std::string>{"-l", "0-1"});
    CHECK_FALSE(p.opts->check_file);

    auto c = parse_options({"--check-config=b.yaml"});
    REQUIRE(c.opts);
    CHECK(c.opts->check_file == "b.yaml");

    auto none = parse_options({});
    REQUIRE(none.opts);
    CHECK_FALSE(none.opts->config_file);  // the embedded default

    auto missing = parse_options({"--config"});
    CHECK_FALSE(missing.opts);
    CHECK(missing.error == "--config needs a value");
    auto eal_before_dashes = parse_options({"--no-huge"});
    CHECK_FALSE(eal_before_dashes.opts);
    CHECK(eal_before_dashes.error.find("after --") != std::string::npos);

    auto level = parse_options({"--log-level", "debug"});
    REQUIRE(level.opts);
    CHECK(level.opts->log_level == "debug");
    CHECK_FALSE(none.opts->log_level);  // the topology's hub.log-level then
    auto bad_level = parse_options({"--log-level=loud"});
    CHECK_FALSE(bad_level.opts);
    CHECK(bad_level.error == "--log-level: expected error, warning, notice, info, debug, got loud");
}

TEST_CASE("the embedded default is demo.yaml and validates", "[hub][options]") {
    auto r = config::load_string(default_topology, "embedded");
    INFO(r.error_text());
    REQUIRE(r);
    CHECK(r->find_port("underlay") != nullptr);
    CHECK(r->find_port("underlay")->dev.driver == "net_memif");
    CHECK(r->find_tunnel("tun0") != nullptr);
}

TEST_CASE("ARP: a request round-trips and malformed frames are named", "[hub][frames]") {
    arp_packet a{arp_request, peer_mac, ip4(192, 0, 2, 7), {}, ip4(192, 0, 2, 1)};
    bytes f = arp_frame(a);
    CHECK(f.size() == 42);
    CHECK(std::equal(broadcast_mac.begin(), broadcast_mac.end(), f.begin()));
    auto back = parse_arp_frame(f);
    REQUIRE(back);
    CHECK(back->op == arp_request);
    CHECK(back->sender_mac == peer_mac);
    CHECK(back->sender_ip == ip4(192, 0, 2, 7));
    CHECK(back->target_ip == ip4(192, 0, 2, 1));

    CHECK(parse_arp_frame(std::span(f).first(30)).error() == arp_error::truncated);
    bytes ip = f;
    ip[13] = 0x00;  // EtherType 0x0800
    CHECK(parse_arp_frame(ip).error() == arp_error::not_arp);
    bytes bad_op = f;
    bad_op[21] = 9;
    CHECK(parse_arp_frame(bad_op).error() == arp_error::bad_op);
    bytes bad_len = f;
    bad_len[18] = 8;
    CHECK(parse_arp_frame(bad_len).error() == arp_error::not_ethernet_ip);
}

TEST_CASE("ICMP echo: the reply swaps addresses and echoes id, sequence and data",
          "[hub][frames]") {
    bytes req = echo_request(ip4(198, 51, 100, 2), ip4(198, 51, 100, 1), "ping data");
    auto rep = icmp_echo_answer(req, ip4(198, 51, 100, 1), 5);
    REQUIRE(rep);
    auto v = wire::parse_ipv4(*rep);
    REQUIRE(v);
    CHECK(v->hdr.src == ip4(198, 51, 100, 1));
    CHECK(v->hdr.dst == ip4(198, 51, 100, 2));
    CHECK(v->hdr.protocol == wire::ip_proto::icmp);
    REQUIRE(v->payload.size() == 8 + 9);
    CHECK(v->payload[0] == icmp_echo_reply);
    CHECK(wire::inet_checksum(v->payload) == 0);
    CHECK(wire::load_be16(&v->payload[4]) == 0x1234);
    CHECK(std::string(v->payload.begin() + 8, v->payload.end()) == "ping data");

    bytes broken = req;
    broken[20 + 8] ^= 0xff;  // payload byte: the ICMP checksum no longer verifies
    CHECK(icmp_echo_answer(broken, 1, 1).error() == icmp_error::bad_checksum);
    bytes reply_in = req;
    reply_in[20] = icmp_echo_reply;
    wire::store_be16(&reply_in[22], 0);
    wire::store_be16(&reply_in[22], wire::inet_checksum(std::span(reply_in).subspan(20)));
    CHECK(icmp_echo_answer(reply_in, 1, 1).error() == icmp_error::not_echo);
    bytes udp = ipv4_packet(1, 2, wire::ip_proto::udp, bytes(8, 0), 1);
    CHECK(icmp_echo_answer(udp, 1, 1).error() == icmp_error::not_icmp);
}

TEST_CASE("ICMP errors quote the header and 8 bytes and carry the MTU", "[hub][frames]") {
    bytes payload(100, 0xab);
    bytes big = ipv4_packet(ip4(172, 16, 0, 5), ip4(10, 0, 0, 2), wire::ip_proto::udp, payload, 7);
    auto err =
        icmp_error_about(big, icmp_unreachable, icmp_code_frag_needed, 1400, ip4(172, 16, 0, 1), 3);
    REQUIRE(err);
    auto v = wire::parse_ipv4(*err);
    REQUIRE(v);
    CHECK(v->hdr.dst == ip4(172, 16, 0, 5));
    CHECK(v->hdr.src == ip4(172, 16, 0, 1));
    REQUIRE(v->payload.size() == 8 + 20 + 8);
    CHECK(v->payload[0] == 3);
    CHECK(v->payload[1] == 4);
    CHECK(wire::load_be16(&v->payload[6]) == 1400);
    CHECK(wire::inet_checksum(v->payload) == 0);
    CHECK(std::equal(big.begin(), big.begin() + 28, v->payload.begin() + 8));

    // Never about an ICMP error, nor about multicast.
    bytes err_in = ipv4_packet(1, 2, wire::ip_proto::icmp, bytes{3, 1, 0, 0, 0, 0, 0, 0}, 1);
    CHECK_FALSE(icmp_error_about(err_in, icmp_time_exceeded, 0, 0, 9, 1));
    bytes mcast = ipv4_packet(1, ip4(239, 1, 1, 1), wire::ip_proto::udp, payload, 1);
    CHECK_FALSE(icmp_error_about(mcast, icmp_time_exceeded, 0, 0, 9, 1));
}

TEST_CASE("fragments cover the payload in 8-byte units", "[hub][frames]") {
    bytes payload(1000);
    for (size_t i = 0; i < payload.size(); ++i) {
        payload[i] = static_cast<uint8_t>(i);
    }
    bytes p = ipv4_packet(1, 2, wire::ip_proto::udp, payload, 77);
    auto frags = fragment_ipv4(p, 400);
    REQUIRE(frags.size() == 3);
    bytes joined;
    for (size_t i = 0; i < frags.size(); ++i) {
        auto v = wire::parse_ipv4(frags[i]);
        REQUIRE(v);
        CHECK(frags[i].size() <= 400);
        CHECK(v->hdr.id == 77);
        CHECK(v->hdr.mf == (i + 1 < frags.size()));
        CHECK(size_t{v->hdr.fragment_offset} * 8 == joined.size());
        joined.insert(joined.end(), v->payload.begin(), v->payload.end());
    }
    CHECK(joined == payload);

    bytes df = p;
    df[6] = 0x40;
    CHECK(fragment_ipv4(df, 400).empty());
}

TEST_CASE("GRE packets carry the key and the NHRP protocol type", "[hub][frames]") {
    bytes nhrp{1, 2, 3, 4};
    bytes g =
        gre_packet(ip4(192, 0, 2, 1), ip4(198, 51, 100, 2), 42u, wire::gre_proto::nhrp, nhrp, 1);
    auto ip = wire::parse_ipv4(g);
    REQUIRE(ip);
    CHECK(ip->hdr.protocol == wire::ip_proto::gre);
    CHECK(ip->hdr.ttl == 255);
    auto gre = wire::parse_gre(ip->payload);
    REQUIRE(gre);
    CHECK(gre->hdr.key_present);
    CHECK(gre->hdr.key == 42);
    CHECK(gre->hdr.protocol == wire::gre_proto::nhrp);
    CHECK(bytes(gre->payload.begin(), gre->payload.end()) == nhrp);
}

TEST_CASE("ARP table: answers for the hub, learns, resolves with retries, then fails",
          "[hub][neighbors]") {
    neighbor_settings s;
    s.retry = 1000ms;
    s.max_probes = 3;
    s.failed_hold = 5000ms;
    neighbor_table t(s);
    t.set_port(0, hub_mac, ip4(192, 0, 2, 1));
    timestamp now{};

    SECTION("a request for the hub is answered and its sender learned") {
        neighbor_output out;
        t.on_arp(0, {arp_request, peer_mac, ip4(192, 0, 2, 7), {}, ip4(192, 0, 2, 1)}, now, out);
        REQUIRE(out.frames.size() == 1);
        auto rep = parse_arp_frame(out.frames[0].second);
        REQUIRE(rep);
        CHECK(rep->op == arp_reply);
        CHECK(rep->sender_mac == hub_mac);
        CHECK(rep->target_ip == ip4(192, 0, 2, 7));
        CHECK(out.changed.size() == 1);
        CHECK(t.lookup(0, ip4(192, 0, 2, 7)) == peer_mac);
    }
    SECTION("a request for someone else is neither answered nor learned") {
        neighbor_output out;
        t.on_arp(0, {arp_request, peer_mac, ip4(192, 0, 2, 7), {}, ip4(192, 0, 2, 99)}, now, out);
        CHECK(out.frames.empty());
        CHECK_FALSE(t.lookup(0, ip4(192, 0, 2, 7)));
    }
    SECTION("held packets leave once the reply arrives") {
        neighbor_output out;
        t.send_or_hold(0, ip4(192, 0, 2, 8), bytes{0x45, 1, 2}, now, out);
        REQUIRE(out.frames.size() == 1);  // the request
        CHECK(parse_arp_frame(out.frames[0].second)->target_ip == ip4(192, 0, 2, 8));
        neighbor_output got;
        t.on_arp(0, {arp_reply, peer_mac, ip4(192, 0, 2, 8), hub_mac, ip4(192, 0, 2, 1)}, now, got);
        REQUIRE(got.frames.size() == 1);
        bytes expect = eth_frame(peer_mac, hub_mac, ethertype_ipv4, bytes{0x45, 1, 2});
        CHECK(got.frames[0].second == expect);
        CHECK(got.changed.size() == 1);
    }
    SECTION("unanswered: three requests a second apart, then failed and held packets dropped") {
        neighbor_output out;
        t.send_or_hold(0, ip4(192, 0, 2, 9), bytes{1}, now, out);
        size_t requests = out.frames.size();
        for (int ms = 100; ms <= 4000; ms += 100) {
            neighbor_output o;
            t.tick(now + std::chrono::milliseconds(ms), o);
            requests += o.frames.size();
            out.dropped += o.dropped;
        }
        CHECK(requests == 3);
        CHECK(out.dropped == 1);
        CHECK(t.state(0, ip4(192, 0, 2, 9)) == neighbor_state::failed);
        // Not probed again before the hold time is over.
        neighbor_output again;
        t.resolve(0, ip4(192, 0, 2, 9), now + 4500ms, again);
        CHECK(again.frames.empty());
        t.resolve(0, ip4(192, 0, 2, 9), now + 9000ms, again);
        CHECK(again.frames.size() == 1);
    }
    SECTION("a changed MAC is reported") {
        neighbor_output out;
        t.on_arp(0, {arp_request, peer_mac, ip4(192, 0, 2, 7), {}, ip4(192, 0, 2, 1)}, now, out);
        mac_addr moved{0x02, 0, 0, 0, 0, 3};
        neighbor_output o2;
        t.on_arp(0, {arp_reply, moved, ip4(192, 0, 2, 7), hub_mac, ip4(192, 0, 2, 1)}, now, o2);
        CHECK(o2.changed.size() == 1);
        CHECK(t.lookup(0, ip4(192, 0, 2, 7)) == moved);
    }
}

TEST_CASE("ARP announcements: gratuitous requests at start and when a link comes up",
          "[hub][neighbors]") {
    neighbor_settings s;
    s.announcements = 3;
    s.announce_interval = 1000ms;
    neighbor_table t(s);
    t.set_port(0, hub_mac, ip4(198, 51, 100, 1));
    timestamp now{};

    neighbor_output out;
    t.announce(0, now, out);
    REQUIRE(out.frames.size() == 1);
    CHECK(out.frames[0].first == 0);
    const bytes& f = out.frames[0].second;
    // Broadcast, from the port's MAC, an ARP request whose sender and target are the hub's
    // address and whose target MAC is zero (RFC 5227 2.3): Linux hosts that cached another MAC
    // for that address update their entry from it.
    CHECK(bytes(f.begin(), f.begin() + 6) == bytes(6, 0xff));
    CHECK(bytes(f.begin() + 6, f.begin() + 12) == bytes(hub_mac.begin(), hub_mac.end()));
    auto a = parse_arp_frame(f);
    REQUIRE(a);
    CHECK(a->op == arp_request);
    CHECK(a->sender_mac == hub_mac);
    CHECK(a->sender_ip == ip4(198, 51, 100, 1));
    CHECK(a->target_ip == ip4(198, 51, 100, 1));
    CHECK(a->target_mac == mac_addr{});
    CHECK(t.size() == 0);  // announcing learns nothing

    // Two more from tick(), a second apart, then silence.
    size_t sent = 0;
    for (int ms = 10; ms <= 10000; ms += 10) {
        neighbor_output o;
        t.tick(now + std::chrono::milliseconds(ms), o);
        sent += o.frames.size();
        if (ms == 990) {
            CHECK(sent == 0);
        }
        if (ms == 1000) {
            CHECK(sent == 1);
        }
    }
    CHECK(sent == 2);
    CHECK(t.announcements_sent() == 3);

    // Another announce (the link came back up) starts a new round.
    neighbor_output again;
    t.announce(0, now + 20s, again);
    CHECK(again.frames.size() == 1);
    // Our own announcement coming back (a bridge floods it to us too) is neither answered nor
    // learned.
    neighbor_output echo;
    t.on_arp(0, *a, now + 20s, echo);
    CHECK(echo.frames.empty());
    CHECK(t.size() == 0);
    // A port the table does not know, or announcements turned off: nothing.
    neighbor_output none;
    t.announce(7, now, none);
    neighbor_table off(neighbor_settings{.announcements = 0});
    off.set_port(0, hub_mac, ip4(198, 51, 100, 1));
    off.announce(0, now, none);
    CHECK(none.frames.empty());
}

TEST_CASE("tunnel slots survive reloads", "[hub][model]") {
    config::topology t = load(two_tunnels);
    tunnel_slots slots;
    REQUIRE(slots.assign(t));
    CHECK(slots.slot("red") == 0);
    CHECK(slots.slot("blue") == 1);
    // "red" goes away: "blue" keeps slot 1 and a new tunnel takes the free slot 0.
    config::topology t2 = t;
    t2.tunnels.erase(t2.tunnels.begin());
    REQUIRE(slots.assign(t2));
    CHECK_FALSE(slots.slot("red"));
    CHECK(slots.slot("blue") == 1);
    CHECK(slots.name(0) == nullptr);
    config::topology t3 = t2;
    t3.tunnels.push_back(t.tunnels[0]);
    t3.tunnels.back().name = "green";
    REQUIRE(slots.assign(t3));
    CHECK(slots.slot("green") == 0);
    CHECK(slots.slot("blue") == 1);
}

TEST_CASE("the YAML model maps onto the workers' topology and the NHRP server", "[hub][model]") {
    config::topology t = load(two_tunnels);
    tunnel_slots slots;
    REQUIRE(slots.assign(t));
    std::map<std::string, opened_port> ports{{"wan", {3, hub_mac, 1500}},
                                             {"lan", {1, peer_mac, 1500}}};
    dp::topology d = dataplane_topology(t, slots, ports);
    CHECK(d.n_ports == 4);
    CHECK(d.ports[3].mac.addr_bytes[5] == 1);
    CHECK(d.n_tunnels == 2);
    const dp::tunnel_info& red = d.tunnels[0];
    CHECK(red.nbma == ip4(192, 0, 2, 1));
    CHECK(red.overlay == ip4(10, 0, 0, 1));
    CHECK(red.has_key);
    CHECK(red.key == 100);
    CHECK(red.ipsec);
    CHECK(red.ip_mtu == 1400);
    CHECK(red.tcp_mss == 1360);
    CHECK(red.underlay_port == 3);
    CHECK_FALSE(d.tunnels[1].has_key);
    CHECK_FALSE(d.tunnels[1].ipsec);
    // GRE to the hub's NBMA address finds its tunnel by key.
    CHECK(d.find_tunnel(ip4(192, 0, 2, 1), true, 100) == 0);
    CHECK(d.find_tunnel(ip4(192, 0, 2, 1), false, 0) == 1);

    int route_calls = 0;
    nhrp::route_lookup route = [&](uint32_t) -> std::optional<nhrp::route> {
        ++route_calls;
        return std::nullopt;
    };
    nhrp::server_config sc = server_config_of(t, slots, route);
    REQUIRE(sc.tunnels.size() == 2);
    const nhrp::tunnel_config& c = sc.tunnels[0];
    CHECK(c.id == 0);
    CHECK(c.name == "red");
    CHECK(c.network_id == 7);
    CHECK(c.authentication == "secret");
    CHECK(c.holdtime_s == 300);
    CHECK(c.redirect);
    CHECK(c.redirect_rate_per_s == 25);  // YAML redirect-rate-limit, the tunnel-wide cap
    CHECK(c.forward_resolution_to_owner);
    CHECK_FALSE(c.multicast_dynamic);
    CHECK(c.multicast_nbma == std::vector<uint32_t>{ip4(198, 51, 100, 9)});
    REQUIRE(c.static_maps.size() == 1);
    CHECK(c.static_maps[0].overlay == ip4(10, 0, 0, 9));
    CHECK(c.static_maps[0].multicast);
    REQUIRE(c.route);
    (void)c.route(1);
    CHECK(route_calls == 1);
    CHECK(sc.tunnels[1].id == 1);
    CHECK_FALSE(sc.tunnels[1].redirect);
    // The server accepts what was built.
    CHECK(nhrp::server::create(sc));
}

TEST_CASE("what a reload may change without restarting the NHRP server", "[hub][model]") {
    config::topology t = load(two_tunnels);
    config::tunnel a = t.tunnels[0];
    config::tunnel b = a;
    b.tcp_adjust_mss = 1300;
    b.ipsec_profile = "";
    CHECK(same_nhrp_view(a, b));
    b.nhrp.holdtime = 60;
    CHECK_FALSE(same_nhrp_view(a, b));
    config::tunnel k = a;
    k.gre_key = 5;
    CHECK_FALSE(same_nhrp_view(a, k));
}

TEST_CASE("manual SA parameters: GCM key then salt; owners spread over workers", "[hub][model]") {
    config::topology t = load(two_tunnels);
    const config::ipsec_profile& p = t.ipsec_profiles.at(0);
    std::vector<uint8_t> storage;
    crypto::sa_params sp =
        sa_params_of(p, p.manual_sas[0].outbound, crypto::sa_direction::outbound, storage);
    CHECK(sp.spi == 0x2000);
    CHECK(sp.cipher == crypto::cipher_alg::aes_gcm_16);
    CHECK(sp.integ == crypto::integ_alg::none);
    REQUIRE(sp.cipher_key.size() == 20);
    CHECK(sp.cipher_key[0] == 0x10);
    CHECK(sp.cipher_key[15] == 0x1f);
    CHECK(sp.cipher_key[16] == 0xb0);
    CHECK(sp.cipher_key[19] == 0xb3);
    CHECK(sp.replay_window == p.replay_window);

    CHECK(sa_owner_of(ip4(198, 51, 100, 9), 1) == 0);
    std::vector<int> seen(4, 0);
    for (uint32_t i = 0; i < 400; ++i) {
        uint16_t o = sa_owner_of(ip4(100, 64, 0, 0) + i, 4);
        REQUIRE(o < 4);
        ++seen[o];
    }
    for (int n : seen) {
        CHECK(n > 50);  // every worker owns a fair share
    }
}

TEST_CASE("JSON helpers escape what RFC 8259 requires", "[hub][json]") {
    CHECK(json_quote("a\"b\\c\n") == "\"a\\\"b\\\\c\\u000a\"");
    CHECK(json_members().num("n", 3).str("s", "x").boolean("b", true).done() ==
          "{\"n\":3,\"s\":\"x\",\"b\":true}");
    CHECK(json_members().done() == "{}");
}
