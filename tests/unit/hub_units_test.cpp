// The hub's control-lcore pieces that need no DPDK: options, frames (ARP, ICMP, fragments, GRE),
// the ARP table and the mapping of the YAML model onto the dataplane, NHRP server and SAs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <thread>
#include <vector>

#include "config/load.hpp"
#include "control/cpu_placement.hpp"
#include "control/hub/default_topology.hpp"
#include "control/hub/exception.hpp"
#include "control/hub/expire_slice.hpp"
#include "control/hub/frames.hpp"
#include "control/hub/json.hpp"
#include "control/hub/loop_time.hpp"
#include "control/hub/model.hpp"
#include "control/hub/multicast.hpp"
#include "control/hub/neighbors.hpp"
#include "control/hub/options.hpp"
#include "control/hub/pass_profile.hpp"
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
    verify-source: true
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
    ipsec-profile: cbc
  - name: blue
    port: wan
    overlay-address: 10.1.0.1
    overlay-prefix: 10.1.0.0/24
    nhrp:
      network-id: 2
ipsec-profiles:
  - name: cbc
    transform: aes256-cbc-sha256-128
    manual-sas:
      - peer: 198.51.100.9
        inbound:
          spi: 0x1000
          key: 0x000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f
          integrity-key: 0xa0a1a2a3a4a5a6a7a8a9aaabacadaeafa0a1a2a3a4a5a6a7a8a9aaabacadaeaf
        outbound:
          spi: 0x2000
          key: 0x101112131415161718191a1b1c1d1e1f101112131415161718191a1b1c1d1e1f
          integrity-key: 0xb0b1b2b3b4b5b6b7b8b9babbbcbdbebfb0b1b2b3b4b5b6b7b8b9babbbcbdbebf
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
    REQUIRE(r->find_tunnel("tun0") != nullptr);
    // keyed by IKEv2, as scripts/demo's spokes expect: no manual SA
    const auto* prof = r->find_ipsec_profile(r->find_tunnel("tun0")->ipsec_profile);
    REQUIRE(prof != nullptr);
    CHECK(prof->ike.has_value());
    CHECK(prof->manual_sas.empty());
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
        t.on_arp(0, {arp_reply, moved, ip4(192, 0, 2, 7), hub_mac, ip4(192, 0, 2, 1)}, now + 2s,
                 o2);
        CHECK(o2.changed.size() == 1);
        CHECK(t.lookup(0, ip4(192, 0, 2, 7)) == moved);
    }
}

TEST_CASE("ARP table: RFC 826 merge follows a known neighbour's new MAC, at most once a hold",
          "[hub][neighbors]") {
    neighbor_table t(neighbor_settings{.announcements = 0, .mac_change_hold = 1000ms});
    t.set_port(0, hub_mac, ip4(192, 0, 2, 1));
    const uint32_t spoke = ip4(192, 0, 2, 7);
    const mac_addr second{0x02, 0, 0, 0, 0, 0x22};
    const mac_addr third{0x02, 0, 0, 0, 0, 0x33};
    timestamp now{};
    auto reported = [&](const neighbor_output& o) {
        return std::count(o.changed.begin(), o.changed.end(), neighbor_key{0, spoke});
    };
    // The hub resolves the spoke (an adjacency needs it) and the spoke answers.
    neighbor_output out;
    t.resolve(0, spoke, now, out);
    t.on_arp(0, {arp_reply, peer_mac, spoke, hub_mac, ip4(192, 0, 2, 1)}, now + 5ms, out);
    REQUIRE(t.lookup(0, spoke) == peer_mac);
    REQUIRE(reported(out) == 1);

    // Each kind of ARP packet from the known address with another MAC moves the entry and is
    // reported in `changed` (what makes the hub republish the adjacencies built on it), a hold
    // apart: a gratuitous request (sender = target), a gratuitous reply, a request for another
    // host, a reply to the hub.
    const std::vector<arp_packet> claims{
        {arp_request, second, spoke, {}, spoke},
        {arp_reply, third, spoke, broadcast_mac, spoke},
        {arp_request, peer_mac, spoke, {}, ip4(192, 0, 2, 99)},
        {arp_reply, second, spoke, hub_mac, ip4(192, 0, 2, 1)},
    };
    timestamp at = now + 10s;
    for (const arp_packet& a : claims) {
        neighbor_output o;
        t.on_arp(0, a, at, o);
        CHECK(reported(o) == 1);
        CHECK(t.lookup(0, spoke) == a.sender_mac);
        CHECK(t.state(0, spoke) == neighbor_state::reachable);
        at += 2s;
    }
    CHECK(t.mac_changes() == 4);
    CHECK(t.mac_changes_deferred() == 0);
    // The same MAC again changes nothing and republishes nothing.
    neighbor_output same;
    t.on_arp(0, {arp_request, second, spoke, {}, spoke}, at, same);
    CHECK(reported(same) == 0);
    // A gratuitous ARP from an address the hub does not know adds nothing.
    t.on_arp(0, {arp_request, third, ip4(192, 0, 2, 50), {}, ip4(192, 0, 2, 50)}, at, same);
    CHECK_FALSE(t.state(0, ip4(192, 0, 2, 50)));

    // A flood of forged claims alternating two MACs within one hold: the entry keeps its MAC
    // (no republishing) until the hold after the last change ends, then takes the latest claim,
    // once.
    at += 2s;
    neighbor_output flood;
    t.on_arp(0, {arp_request, third, spoke, {}, spoke}, at, flood);  // a change: the hold starts
    REQUIRE(reported(flood) == 1);
    for (int i = 1; i <= 1000; ++i) {
        const mac_addr& m = i % 2 == 0 ? peer_mac : second;  // the last one: peer_mac
        t.on_arp(0, {arp_reply, m, spoke, hub_mac, ip4(192, 0, 2, 1)},
                 at + std::chrono::microseconds(i * 500), flood);
    }
    CHECK(reported(flood) == 1);
    CHECK(t.lookup(0, spoke) == third);
    CHECK(t.mac_changes_deferred() == 1000);
    neighbor_output later;
    for (timestamp x = at; x <= at + 1100ms; x += 10ms) {
        t.tick(x, later);
    }
    CHECK(reported(later) == 1);
    CHECK(t.lookup(0, spoke) == peer_mac);
    CHECK(t.mac_changes() == 6);
    // The owner's own MAC claimed last within a hold cancels a forged claim waiting there.
    neighbor_output back;
    t.on_arp(0, {arp_request, second, spoke, {}, spoke}, at + 1200ms, back);
    t.on_arp(0, {arp_request, peer_mac, spoke, {}, spoke}, at + 1300ms, back);
    for (timestamp x = at + 1200ms; x <= at + 3s; x += 10ms) {
        t.tick(x, back);
    }
    CHECK(reported(back) == 0);
    CHECK(t.lookup(0, spoke) == peer_mac);
    // Over a minute of claims alternating every 10 ms, the entry moves at most once a hold.
    neighbor_output minute;
    timestamp start = at + 4s;
    for (int i = 0; i < 6000; ++i) {
        timestamp x = start + std::chrono::milliseconds(i * 10);
        const mac_addr& m = i % 2 == 0 ? second : third;
        t.on_arp(0, {arp_request, m, spoke, {}, spoke}, x, minute);
        t.tick(x, minute);
    }
    CHECK(reported(minute) <= 61);
    CHECK(reported(minute) >= 59);
}

TEST_CASE("ARP table: capped; failed, then never-used, then unresolved entries go first",
          "[hub][neighbors]") {
    neighbor_settings s;
    s.max_entries = 4;
    s.announcements = 0;
    neighbor_table t(s);
    t.set_port(0, hub_mac, ip4(192, 0, 2, 1));
    timestamp now{};
    auto arp_for_us = [&](uint8_t host, timestamp at, neighbor_output& out) {
        t.on_arp(0, {arp_request, peer_mac, ip4(192, 0, 2, host), {}, ip4(192, 0, 2, 1)}, at, out);
    };
    neighbor_output out;
    // 10: resolved and used by the hub; 11: resolving; 12: failed; 13: learnt from its own
    // request, never used.
    arp_for_us(10, now, out);
    REQUIRE(t.lookup(0, ip4(192, 0, 2, 10)));  // used
    t.resolve(0, ip4(192, 0, 2, 11), now + 10ms, out);
    t.resolve(0, ip4(192, 0, 2, 12), now, out);
    // 12 fails at 3 s (third unanswered request); 11, 10 ms younger, is still asking.
    for (int ms = 1000; ms <= 3000; ms += 1000) {
        t.tick(now + std::chrono::milliseconds(ms), out);
    }
    REQUIRE(t.state(0, ip4(192, 0, 2, 12)) == neighbor_state::failed);
    REQUIRE(t.state(0, ip4(192, 0, 2, 11)) == neighbor_state::incomplete);
    arp_for_us(13, now + 3001ms, out);
    REQUIRE(t.size() == 4);
    CHECK(t.evicted() == 0);

    // Each new neighbour pushes out one, in the order failed, never used, unresolved, used.
    neighbor_output o;
    arp_for_us(20, now + 3002ms, o);
    CHECK_FALSE(t.state(0, ip4(192, 0, 2, 12)));
    CHECK(t.size() == 4);
    arp_for_us(21, now + 3003ms, o);
    CHECK_FALSE(t.state(0, ip4(192, 0, 2, 13)));  // the older never-used one
    CHECK(t.state(0, ip4(192, 0, 2, 20)));
    // A flood of requests from new addresses only cycles through the never-used entries: the
    // unresolved one and the used one stay.
    for (uint8_t h = 100; h < 200; ++h) {
        arp_for_us(h, now + 3004ms, o);
    }
    CHECK(t.size() == 4);
    CHECK(t.state(0, ip4(192, 0, 2, 11)) == neighbor_state::incomplete);
    CHECK(t.lookup(0, ip4(192, 0, 2, 10)) == peer_mac);
    CHECK(t.evicted() == 102);
    CHECK(o.changed.size() == 102);  // each was learnt (nothing used was lost: none republished)
    // Only used entries left to push out: the least recently updated goes, and it is reported
    // so that adjacencies built on it resolve again.
    neighbor_table u(s);
    u.set_port(0, hub_mac, ip4(192, 0, 2, 1));
    neighbor_output uo;
    for (uint8_t h = 10; h < 14; ++h) {
        u.on_arp(0, {arp_reply, peer_mac, ip4(192, 0, 2, h), hub_mac, ip4(192, 0, 2, 1)},
                 now + std::chrono::milliseconds(h), uo);
        REQUIRE(u.lookup(0, ip4(192, 0, 2, h)));
    }
    neighbor_output evict;
    u.resolve(0, ip4(192, 0, 2, 50), now + 1s, evict);
    CHECK_FALSE(u.state(0, ip4(192, 0, 2, 10)));
    CHECK(std::find(evict.changed.begin(), evict.changed.end(),
                    neighbor_key{0, ip4(192, 0, 2, 10)}) != evict.changed.end());
    CHECK(u.size() == 4);
}

TEST_CASE("ARP table: ageing from timers, not from a walk of the table", "[hub][neighbors]") {
    neighbor_settings s;
    s.retry = 1000ms;
    s.max_probes = 3;
    s.failed_hold = 5000ms;
    s.refresh = 300s;
    s.announcements = 0;
    neighbor_table t(s);
    t.set_port(0, hub_mac, ip4(192, 0, 2, 1));
    timestamp now{};
    auto run = [&](timestamp from, timestamp to, neighbor_output& out) {
        for (timestamp at = from; at <= to; at += 10ms) {
            t.tick(at, out);
        }
    };
    neighbor_output out;
    // A failed entry is forgotten once its hold is over.
    t.resolve(0, ip4(192, 0, 2, 9), now, out);
    run(now, now + 3500ms, out);
    CHECK(t.state(0, ip4(192, 0, 2, 9)) == neighbor_state::failed);
    run(now + 3510ms, now + 8500ms, out);
    CHECK_FALSE(t.state(0, ip4(192, 0, 2, 9)));
    CHECK(t.aged() == 1);

    // Learnt from a request and never used: forgotten at its refresh time, without a request.
    neighbor_output o;
    t.on_arp(0, {arp_request, peer_mac, ip4(192, 0, 2, 7), {}, ip4(192, 0, 2, 1)}, now + 9s, o);
    // Used: re-confirmed at its refresh time; it answers and stays.
    t.on_arp(0, {arp_request, peer_mac, ip4(192, 0, 2, 8), {}, ip4(192, 0, 2, 1)}, now + 9s, o);
    REQUIRE(t.lookup(0, ip4(192, 0, 2, 8)));
    // Many more learns of the same neighbour (it ARPs every second) leave no pile of timers.
    for (int i = 1; i <= 200; ++i) {
        t.on_arp(0, {arp_request, peer_mac, ip4(192, 0, 2, 8), {}, ip4(192, 0, 2, 1)},
                 now + 9s + std::chrono::milliseconds(i), o);
    }
    CHECK(t.timers_pending() <= 4);
    neighbor_output r;
    run(now + 9s, now + 309300ms, r);
    CHECK_FALSE(t.state(0, ip4(192, 0, 2, 7)));
    REQUIRE(r.frames.size() == 1);  // one refresh request, for .8 only
    CHECK(parse_arp_frame(r.frames[0].second)->target_ip == ip4(192, 0, 2, 8));
    t.on_arp(0, {arp_reply, peer_mac, ip4(192, 0, 2, 8), hub_mac, ip4(192, 0, 2, 1)},
             now + 309400ms, r);
    neighbor_output later;
    run(now + 309400ms, now + 320s, later);
    CHECK(later.frames.empty());
    CHECK(t.lookup(0, ip4(192, 0, 2, 8)) == peer_mac);
    CHECK(t.aged() == 2);

    // Gone silent: three unanswered refresh requests, then forgotten and reported, so that its
    // adjacencies resolve it afresh instead of sending to a MAC nobody confirms.
    neighbor_output silent;
    run(now + 320s, now + 615s, silent);
    CHECK(silent.frames.size() == 3);
    CHECK_FALSE(t.state(0, ip4(192, 0, 2, 8)));
    CHECK(std::find(silent.changed.begin(), silent.changed.end(),
                    neighbor_key{0, ip4(192, 0, 2, 8)}) != silent.changed.end());
    CHECK(t.aged() == 3);
    CHECK(t.size() == 0);
}

TEST_CASE("ARP table: hashed, listed in (port, address) order", "[hub][neighbors]") {
    neighbor_settings s;
    s.announcements = 0;
    neighbor_table t(s);
    t.set_port(0, hub_mac, ip4(100, 64, 0, 1));
    t.set_port(1, hub_mac, ip4(192, 0, 2, 1));
    timestamp now{};
    neighbor_output out;
    // 3,000 neighbours on two ports, learnt in a scrambled order (7919 is prime to 3,000).
    constexpr uint32_t n = 3000;
    for (uint32_t i = 0; i < n; ++i) {
        uint32_t h = (i * 7919) % n;
        auto port = static_cast<uint16_t>(h % 2);
        uint32_t addr = (port == 0 ? ip4(100, 64, 0, 1) : ip4(192, 0, 2, 1)) + 1 + h;
        t.on_arp(
            port,
            {arp_request, peer_mac, addr, {}, port == 0 ? ip4(100, 64, 0, 1) : ip4(192, 0, 2, 1)},
            now, out);
    }
    std::vector<neighbor_view> v = t.entries();
    REQUIRE(v.size() == n);
    CHECK(std::is_sorted(v.begin(), v.end(), [](const neighbor_view& a, const neighbor_view& b) {
        return a.key < b.key;
    }));
    CHECK(v.front().key == neighbor_key{0, ip4(100, 64, 0, 2)});
    CHECK(v.back().key == neighbor_key{1, ip4(192, 0, 2, 1) + n});
    CHECK(t.lookup(1, ip4(192, 0, 2, 3)) == peer_mac);
    CHECK_FALSE(t.lookup(0, ip4(192, 0, 2, 3)));
    t.forget(1, ip4(192, 0, 2, 3));
    CHECK_FALSE(t.state(1, ip4(192, 0, 2, 3)));
    CHECK(t.size() == n - 1);
}

TEST_CASE("multicast targets: kept per tunnel and NBMA as bindings come, move and go",
          "[hub][multicast]") {
    multicast_targets m;
    m.add(0, ip4(100, 64, 0, 2), ip4(10, 0, 0, 2));
    m.add(0, ip4(100, 64, 0, 3), ip4(10, 0, 0, 3));
    m.add(0, ip4(100, 64, 0, 3), ip4(10, 0, 0, 33));  // two overlays behind one NBMA
    m.add(1, ip4(100, 64, 0, 2), ip4(10, 1, 0, 2));   // another tunnel
    m.set_configured({{0, ip4(100, 64, 0, 9)}});      // multicast.static, no registration
    CHECK(m.size() == 4);
    const auto* t3 = m.find(0, ip4(100, 64, 0, 3));
    REQUIRE(t3 != nullptr);
    CHECK(t3->overlays == std::vector<uint32_t>{ip4(10, 0, 0, 3), ip4(10, 0, 0, 33)});
    // A move: the binding leaves the old NBMA for the new one.
    m.remove(0, ip4(100, 64, 0, 3), ip4(10, 0, 0, 33));
    m.add(0, ip4(100, 64, 0, 4), ip4(10, 0, 0, 33));
    CHECK(m.find(0, ip4(100, 64, 0, 3))->overlays == std::vector<uint32_t>{ip4(10, 0, 0, 3)});
    m.remove(0, ip4(100, 64, 0, 3), ip4(10, 0, 0, 3));
    CHECK(m.find(0, ip4(100, 64, 0, 3)) == nullptr);  // nobody left there
    // A configured target stays without registrations, and goes when the reload drops it.
    m.add(0, ip4(100, 64, 0, 9), ip4(10, 0, 0, 9));
    m.remove(0, ip4(100, 64, 0, 9), ip4(10, 0, 0, 9));
    REQUIRE(m.find(0, ip4(100, 64, 0, 9)) != nullptr);
    CHECK(m.find(0, ip4(100, 64, 0, 9))->configured);
    m.set_configured({});
    CHECK(m.find(0, ip4(100, 64, 0, 9)) == nullptr);
    CHECK(m.size() == 3);

    // Visiting in slices resumes after the last target reached, even if the list changed.
    std::vector<std::pair<uint16_t, uint32_t>> seen;
    std::optional<multicast_targets::key> after;
    auto note = [&](uint16_t slot, uint32_t nbma, const multicast_targets::target&) {
        seen.emplace_back(slot, nbma);
    };
    CHECK(m.visit(after, 1, note));
    m.add(0, ip4(100, 64, 0, 1), ip4(10, 0, 0, 1));  // before the cursor: not this time
    m.add(0, ip4(100, 64, 0, 5), ip4(10, 0, 0, 5));  // after it: reached
    CHECK(m.visit(after, 2, note));
    CHECK_FALSE(m.visit(after, 10, note));
    std::vector<std::pair<uint16_t, uint32_t>> expect = {{0, ip4(100, 64, 0, 2)},
                                                         {0, ip4(100, 64, 0, 4)},
                                                         {0, ip4(100, 64, 0, 5)},
                                                         {1, ip4(100, 64, 0, 2)}};
    CHECK(seen == expect);
}

TEST_CASE("loop time: maximum and percentiles from a bucketed histogram", "[hub][loop]") {
    loop_time l;
    CHECK(l.quantile_ns(0.99) == 0);
    for (int i = 0; i < 990; ++i) {
        l.record(1000);  // 1 us
    }
    for (int i = 0; i < 10; ++i) {
        l.record(5000000);  // 5 ms
    }
    CHECK(l.count() == 1000);
    CHECK(l.max_ns() == 5000000);
    // p99 falls in the 1 us bucket: its top is within a quarter power of two above 1000 ns.
    CHECK(l.quantile_ns(0.99) >= 1000);
    CHECK(l.quantile_ns(0.99) < 1250);
    CHECK(l.quantile_ns(0.999) == 5000000);  // capped at the maximum seen
    // How many took about so long or more (pass_profile's from_10us / from_50us).
    CHECK(l.count_from(10000) == 10);
    CHECK(l.count_from(1000) == 1000);
    CHECK(l.count_from(6000000) == 0);
    // Every value lands in a bucket whose bounds hold it.
    for (uint64_t v : {0ull, 3ull, 4ull, 7ull, 8ull, 9ull, 1000ull, 123456789ull, ~0ull >> 1}) {
        size_t b = loop_time::bucket_of(v);
        CHECK(loop_time::upper_of(b) >= v);
        if (b > 0) {
            CHECK(loop_time::upper_of(b - 1) < v);
        }
    }
}

TEST_CASE("loop time: intervals between two TSC readings", "[hub][loop]") {
    loop_time l;
    constexpr uint64_t khz = 2000000;          // a 2 GHz TSC
    l.record_tsc(1000, 1000 + 2 * 3000, khz);  // 6000 ticks: 3 us
    CHECK(l.max_ns() == 3000);
    l.record_tsc(5000, 4990, khz);  // the later reading a few ticks behind (two cores): 0
    CHECK(l.count() == 2);
    CHECK(l.max_ns() == 3000);
    CHECK(l.quantile_ns(0.5) == 0);
    l.record_tsc(0, 2000000, 0);  // an unknown rate does not divide by zero
    CHECK(l.count() == 3);
}

TEST_CASE("pass profile: a histogram and a total per item, every item named", "[hub][loop]") {
    pass_profile p;
    p.set_tsc_khz(2000000);                                  // a 2 GHz TSC
    p.record(pass_item::ike_install, 100, 100 + 2 * 5000);   // 5 us
    p.record(pass_item::ike_install, 100, 100 + 2 * 15000);  // 15 us
    p.record(pass_item::tick_nbma_paths, 50, 40);            // a reading behind: 0
    CHECK(p.of(pass_item::ike_install).count() == 2);
    CHECK(p.of(pass_item::ike_install).max_ns() == 15000);
    CHECK(p.total_ns(pass_item::ike_install) == 20000);
    CHECK(p.of(pass_item::tick_nbma_paths).count() == 1);
    CHECK(p.total_ns(pass_item::tick_nbma_paths) == 0);
    CHECK(p.of(pass_item::punts).count() == 0);
    std::set<std::string_view> names;
    for (size_t i = 0; i < static_cast<size_t>(pass_item::count); ++i) {
        std::string_view n = name(static_cast<pass_item>(i));
        CHECK(n != "?");
        names.insert(n);
    }
    CHECK(names.size() == static_cast<size_t>(pass_item::count));
    CHECK(name(pass_item::flush) == "flush");
    CHECK(name(pass_item::tick_telemetry_views) == "tick_telemetry_views");
}

TEST_CASE("idle expiry in slices: bounded visits, resumed, every idle entry goes", "[hub][loop]") {
    // 1,000 entries, values: last use; those below 500 are idle. 101 visits a slice (the hub's
    // size / 100 + 1): after 10 slices the walk reached the end and starts over.
    std::map<uint32_t, int> m;
    for (uint32_t k = 0; k < 1000; ++k) {
        m.emplace(k * 2, static_cast<int>(k));
    }
    auto idle = [](int used) { return used < 500; };
    std::vector<int> gone;
    std::optional<uint32_t> next;
    size_t slices = 0;
    do {
        size_t before = m.size();
        next = expire_slice(m, next, 101, idle, [&gone](int v) { gone.push_back(v); });
        ++slices;
        // A slice visits at most its budget: at most that many go.
        CHECK(before - m.size() <= 101);
        if (next && slices == 3) {
            // The key to resume at erased meanwhile (elsewhere): the next slice starts after it.
            CHECK(m.at(*next) < 500);
            m.erase(*next);
            gone.push_back(-1);
        }
    } while (next && slices < 100);
    CHECK(slices == 10);
    CHECK(gone.size() == 500);
    CHECK(m.size() == 500);
    CHECK(std::all_of(m.begin(), m.end(), [](const auto& kv) { return kv.second >= 500; }));
    // Nothing left to expire: a slice from the start erases nothing; an empty map is fine.
    CHECK(expire_slice(m, std::optional<uint32_t>{}, 101, idle, [](int) { FAIL(); }) == 1202u);
    m.clear();
    CHECK(!expire_slice(m, std::optional<uint32_t>{7}, 101, idle, [](int) {}));
    // A resume key past the end starts over next time.
    m.emplace(1, 0);
    CHECK(!expire_slice(m, std::optional<uint32_t>{5}, 101, idle, [](int) {}));
    CHECK(m.size() == 1);
    CHECK(!expire_slice(m, std::optional<uint32_t>{}, 101, idle, [](int) {}));
    CHECK(m.empty());
}

TEST_CASE("punt budgets: hub-wide rates shared among the workers, IKE apart", "[hub][model]") {
    config::punt_rates r;
    r.nhrp = 10000;
    r.ike = 3;
    r.multicast = 1001;
    auto one = worker_punt_rates(r, 1);
    CHECK(one[static_cast<size_t>(dp::punt_reason::nhrp)] == 10000);
    CHECK(one[dp::punt_class_ike] == 3);
    CHECK(one[static_cast<size_t>(dp::punt_reason::multicast)] == 1001);
    CHECK(one[static_cast<size_t>(dp::punt_reason::arp)] == r.arp);
    CHECK(one[static_cast<size_t>(dp::punt_reason::redirect)] == r.redirect);
    auto four = worker_punt_rates(r, 4);
    CHECK(four[static_cast<size_t>(dp::punt_reason::nhrp)] == 2500);
    CHECK(four[static_cast<size_t>(dp::punt_reason::multicast)] == 251);  // rounded up
    CHECK(four[dp::punt_class_ike] == 1);
    for (uint32_t v : one) {
        CHECK(v != 0);  // every class has a budget
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
    CHECK(red.verify_source);
    CHECK_FALSE(d.tunnels[1].verify_source);
    CHECK(d.ports[3].drop_transit);  // the underlay port, allow-transit not given
    CHECK_FALSE(d.ports[1].drop_transit);
    config::topology routed = t;
    routed.ports[0].allow_transit = true;
    CHECK_FALSE(dataplane_topology(routed, slots, ports).ports[3].drop_transit);
    // A kernel interface on a port: its link-local multicast goes to the host, underlay or not.
    CHECK_FALSE(d.ports[3].link_local_to_host);
    config::topology with_kernel = t;
    config::kernel_interface k;
    k.port = "wan";
    k.name = "dmvpn-wan";
    with_kernel.routing.interfaces.push_back(k);
    CHECK(dataplane_topology(with_kernel, slots, ports).ports[3].link_local_to_host);
    CHECK_FALSE(dataplane_topology(with_kernel, slots, ports).ports[1].link_local_to_host);
    with_kernel.routing.interfaces.back().create = false;
    CHECK_FALSE(dataplane_topology(with_kernel, slots, ports).ports[3].link_local_to_host);
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

TEST_CASE("manual SA parameters: CBC + HMAC keys, anti-replay as configured, GCM key then salt",
          "[hub][model]") {
    config::topology t = load(two_tunnels);
    const config::ipsec_profile& p = t.ipsec_profiles.at(0);
    std::vector<uint8_t> storage;
    crypto::sa_params sp =
        sa_params_of(p, p.manual_sas[0].outbound, crypto::sa_direction::outbound, storage);
    CHECK(sp.spi == 0x2000);
    CHECK(sp.cipher == crypto::cipher_alg::aes_cbc);
    CHECK(sp.integ == crypto::integ_alg::hmac_sha256_128);
    REQUIRE(sp.cipher_key.size() == 32);
    CHECK(sp.cipher_key[0] == 0x10);
    REQUIRE(sp.integ_key.size() == 32);
    CHECK(sp.integ_key[0] == 0xb0);
    CHECK(sp.integ_key[31] == 0xbf);
    CHECK(sp.replay_window == p.replay_window);
    CHECK_FALSE(sp.anti_replay);  // manual keys: off unless the profile says anti-replay: true
    config::ipsec_profile on = p;
    on.anti_replay = true;
    CHECK(sa_params_of(on, p.manual_sas[0].inbound, crypto::sa_direction::inbound, storage)
              .anti_replay);

    // GCM (for negotiated keys; the loader refuses it with manual ones): key || salt.
    config::ipsec_profile g;
    g.xform = config::transform::aes128_gcm16;
    config::sa_keys gk;
    gk.spi = 0x3000;
    gk.key = {0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
              0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f};
    gk.salt = {0xb0, 0xb1, 0xb2, 0xb3};
    crypto::sa_params gp = sa_params_of(g, gk, crypto::sa_direction::outbound, storage);
    CHECK(gp.cipher == crypto::cipher_alg::aes_gcm_16);
    CHECK(gp.integ == crypto::integ_alg::none);
    REQUIRE(gp.cipher_key.size() == 20);
    CHECK(gp.cipher_key[0] == 0x10);
    CHECK(gp.cipher_key[15] == 0x1f);
    CHECK(gp.cipher_key[16] == 0xb0);
    CHECK(gp.cipher_key[19] == 0xb3);
}

TEST_CASE("JSON helpers escape what RFC 8259 requires", "[hub][json]") {
    CHECK(json_quote("a\"b\\c\n") == "\"a\\\"b\\\\c\\u000a\"");
    CHECK(json_members().num("n", 3).str("s", "x").boolean("b", true).done() ==
          "{\"n\":3,\"s\":\"x\",\"b\":true}");
    CHECK(json_members().done() == "{}");
}

TEST_CASE(
    "model: registration prefixes, holding time bounds and the per-NBMA cap reach the "
    "NHRP server",
    "[hub][model]") {
    std::string yaml(two_tunnels);
    yaml.replace(yaml.find("      redirect-rate-limit: 25"), 29,
                 "      redirect-rate-limit: 25\n      registration-prefixes: [10.200.0.0/16]\n"
                 "      holdtime-min: 20\n      holdtime-max: 600\n      max-entries-per-nbma: 4");
    config::topology t = load(yaml);
    tunnel_slots slots;
    REQUIRE(slots.assign(t));
    nhrp::server_config sc = server_config_of(t, slots, {});
    REQUIRE(sc.tunnels.size() == 2);
    const nhrp::tunnel_config& red = sc.tunnels[0];
    REQUIRE(red.registration_prefixes.size() == 1);
    CHECK(red.registration_prefixes[0].network == ip4(10, 200, 0, 0));
    CHECK(red.registration_prefixes[0].length == 16);
    CHECK(red.holdtime_min_s == 20);
    CHECK(red.holdtime_max_s == 600);
    CHECK(red.max_entries_per_nbma == 4);
    CHECK(sc.tunnels[1].registration_prefixes.empty());
}

TEST_CASE("exception path: what the kernel sends must be a whole IPv4 packet", "[hub][exception]") {
    using dmvpn::hub::exception_path;
    std::vector<uint8_t> p(28, 0);
    p[0] = 0x45;
    p[3] = 28;  // total length
    CHECK(exception_path::plausible_ipv4(p));
    std::vector<uint8_t> longer = p;
    longer.resize(60, 0);  // trailing bytes beyond the total length: cut by the caller
    CHECK(exception_path::plausible_ipv4(longer));
    auto broken = [&](auto edit) {
        std::vector<uint8_t> q = p;
        edit(q);
        return !exception_path::plausible_ipv4(q);
    };
    CHECK(broken([](auto& q) { q[0] = 0x60; }));  // IPv6
    CHECK(broken([](auto& q) { q[0] = 0x44; }));  // IHL 4
    CHECK(broken([](auto& q) { q[0] = 0x48; }));  // a 32-byte header in a 28-byte packet
    CHECK(broken([](auto& q) { q[3] = 29; }));    // longer than what was read
    CHECK(broken([](auto& q) { q.resize(19); }));
}

TEST_CASE("exception path: a LAN's multicast leaves to the group's MAC (RFC 1112 6.4)",
          "[hub][exception]") {
    using dmvpn::hub::ipv4_multicast_mac;
    using mac = std::array<uint8_t, 6>;
    CHECK(ipv4_multicast_mac(0xe0000005u) == mac{0x01, 0x00, 0x5e, 0x00, 0x00, 0x05});  // OSPF
    CHECK(ipv4_multicast_mac(0xe0000006u) == mac{0x01, 0x00, 0x5e, 0x00, 0x00, 0x06});
    CHECK(ipv4_multicast_mac(0xe000000au) == mac{0x01, 0x00, 0x5e, 0x00, 0x00, 0x0a});  // EIGRP
    // Only the low 23 bits: 239.129.2.3 and 224.1.2.3 share 01:00:5e:01:02:03.
    CHECK(ipv4_multicast_mac(0xef810203u) == mac{0x01, 0x00, 0x5e, 0x01, 0x02, 0x03});
    CHECK(ipv4_multicast_mac(0xe0010203u) == ipv4_multicast_mac(0xef810203u));
    CHECK(ipv4_multicast_mac(0xefffffffu) == mac{0x01, 0x00, 0x5e, 0x7f, 0xff, 0xff});
}

TEST_CASE("exception path: the kernel's broadcasts are told from unicast by the interface's subnet",
          "[hub][exception]") {
    using dmvpn::hub::ipv4_broadcast;
    constexpr uint32_t lan = 0xc6120001u;               // 198.18.0.1/24
    CHECK(ipv4_broadcast(0xffffffffu, lan, 24));        // limited broadcast
    CHECK(ipv4_broadcast(0xc61200ffu, lan, 24));        // 198.18.0.255: directed
    CHECK_FALSE(ipv4_broadcast(0xc61200feu, lan, 24));  // a host
    CHECK_FALSE(ipv4_broadcast(0xc61201ffu, lan, 24));  // another subnet's broadcast
    CHECK_FALSE(ipv4_broadcast(0xc61200ffu, lan, 16));  // a host of 198.18.0.0/16
    CHECK(ipv4_broadcast(0xc612ffffu, lan, 16));
    CHECK(ipv4_broadcast(0x0a00ffffu, 0x0a000001u, 16));  // a tunnel's 10.0.0.0/16
    // /31 (RFC 3021) and /32 have no directed broadcast: both addresses are hosts.
    CHECK_FALSE(ipv4_broadcast(0xc6120001u, 0xc6120000u, 31));
    CHECK_FALSE(ipv4_broadcast(0xc6120001u, 0xc6120001u, 32));
    CHECK(ipv4_broadcast(0xffffffffu, 0xc6120001u, 32));
    CHECK(ipv4_broadcast(0xc6120003u, 0xc6120001u, 30));
}

TEST_CASE("service threads: a CPU the kernel refuses is counted, the thread keeps its own",
          "[cpu]") {
    using namespace dmvpn::control;
    std::vector<unsigned> before = thread_cpus();
    uint64_t failures = service_cpu_failures();
    set_service_cpus({CPU_SETSIZE - 1});  // no machine here has it
    bool moved = true;
    std::vector<unsigned> where;
    std::thread t([&] {
        moved = enter_service_cpus();
        where = thread_cpus();
    });
    t.join();
    set_service_cpus({});
    CHECK_FALSE(moved);
    CHECK(service_cpu_failures() == failures + 1);
    CHECK(where == before);  // inherited, unchanged
    // With no service CPUs set (tools, tests) a thread stays where it is, and that is no failure.
    std::thread u([&] { moved = enter_service_cpus(); });
    u.join();
    CHECK(moved);
    CHECK(service_cpu_failures() == failures + 1);
}

TEST_CASE("service threads: off the lcores' CPUs, never on the control lcore's when avoidable",
          "[hub][cpus]") {
    using dmvpn::control::cpu_list_text;
    using dmvpn::control::place_service_threads;
    using v = std::vector<unsigned>;
    // Automatic: the allowed CPUs that no lcore uses.
    auto free = place_service_threads(v{0, 1, 2, 3}, v{0, 1}, v{0}, {});
    CHECK(free.error.empty());
    CHECK(free.cpus == v{2, 3});
    CHECK_FALSE(free.shares_control);
    CHECK(cpu_list_text(free.cpus) == "2-3");
    // Every CPU an lcore's: beside the workers, not on the control lcore's.
    auto beside = place_service_threads(v{0, 1}, v{0, 1}, v{0}, {});
    CHECK(beside.cpus == v{1});
    CHECK_FALSE(beside.shares_control);
    // One CPU: nothing else to do, and said.
    auto one = place_service_threads(v{0}, v{0}, v{0}, {});
    CHECK(one.cpus == v{0});
    CHECK(one.shares_control);
    // Configured: taken as written, even on the control lcore's CPU (said too).
    auto mine = place_service_threads(v{0, 1, 2, 3}, v{0, 1}, v{0}, v{0, 3});
    CHECK(mine.error.empty());
    CHECK(mine.cpus == v{0, 3});
    CHECK(mine.shares_control);
    CHECK(mine.why == "hub.service-cpus");
    // A configured CPU the process may not use is refused with the allowed list.
    auto outside = place_service_threads(v{0, 1, 4, 5, 6}, v{0, 1}, v{0}, v{2});
    CHECK(outside.error ==
          "hub.service-cpus: CPU 2 is not one this process may run on (allowed: 0-1,4-6)");
    CHECK(cpu_list_text({}) == "none");
}
