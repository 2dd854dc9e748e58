// The NHRP server against real equipment: requests recorded from Cisco IOS and FRR spokes, and
// the Cisco hubs' recorded answers, byte for byte where a recording of the answer exists.
#include <catch2/catch.hpp>

#include "control/nhrp/server.hpp"
#include "control/nhrp/show.hpp"
#include "tests/unit/nhrp_server_util.hpp"

using namespace dmvpn::nhrp;
using namespace dmvpn::nhrp::test;

namespace {

server make_server(tunnel_config t) {
    server_config c;
    c.tunnels.push_back(std::move(t));
    auto s = server::create(std::move(c));
    REQUIRE(s.has_value());
    return std::move(*s);
}

// NHRP bytes (GRE payload) as extracted from tests/data/captures with scapy.
namespace cap {
// cisco-ios-nhrp-regreq-regreply-natext-auth-NHRPAUTH-grekey2.pcap
constexpr std::string_view natext_f1_request =
    "000108000000000000ff006c197b0034010304000404800200000001a9fe64019b0100019b0100050020000045f81c"
    "20000000008003000080040000800500008007000c000000014e48525041555448000900140020000045f800000400"
    "0400a9fe64059b01000580000000";
constexpr std::string_view natext_f2_reply =
    "000108000000000000ff0080060f0034010404000404800200000001a9fe64019b0100019b0100050020000045f81c"
    "2000000000800300140020000045f81c2004000400a9fe64059b01000580040000800500008007000c000000014e48"
    "525041555448000900140020000045f8000004000400a9fe64059b01000580000000";
constexpr std::string_view natext_f3_request =
    "000108000000000000ff006c197a0034010304000404800200000002a9fe64019b0100019b0100050020000045f81c"
    "20000000008003000080040000800500008007000c000000014e48525041555448000900140020000045f800000400"
    "0400a9fe64059b01000580000000";
constexpr std::string_view natext_f4_reply =
    "000108000000000000ff0080060e0034010404000404800200000002a9fe64019b0100019b0100050020000045f81c"
    "2000000000800300140020000045f81c2004000400a9fe64059b01000580040000800500008007000c000000014e48"
    "525041555448000900140020000045f8000004000400a9fe64059b01000580000000";
// cisco-ios-nhrp-regreq-regreply-responder-addr-ext-grekey2.pcap
constexpr std::string_view responder_f1_request =
    "000108000000000000ff006cbe3a003401030400040400020000012c9b014f029b0100099b0100060020000045f81c"
    "20000000008003000080040000800500008007000c000000014e48525041555448000900140020000045f800000400"
    "0400060606069b01000680000000";
constexpr std::string_view responder_f2_reply =
    "000108000000000000ff00801ac5003401040400040400020000012c9b014f029b0100099b0100060020000045f81c"
    "2000000000800300140020000045f81c2004000400060606069b01920680040000800500008007000c000000014e48"
    "525041555448000900140020000045f8000004000400060606069b01000680000000";
// cisco-ios-nhrp-regreq-auth-CISCO-nogrekey.pcap, frame 1
constexpr std::string_view cisco_auth_f1_request =
    "000108000000000000ff0051e8e400340103040004048000000000050a000c02c0a80002c0a8000100ff000005ea00"
    "1e000000008003000080040000800500008007000900000001434953434f80000000";
// frr-8.4-two-spokes-registration-resolution.pcap, frames 1, 2 (first registrations), 3 (a
// refresh after the first reply, NAT CIE naming the hub), 9 and 10 (Resolution Requests)
constexpr std::string_view frr_f1_reg_spoke2 =
    "00010800000000000001005c7b4f0034010304000404000200000001c63364020aff00020aff0002002000000000"
    "003c0000000080040000800500008003000000090014002000000000000004000400c63364010000000080000000";
constexpr std::string_view frr_f2_reg_spoke3 =
    "00010800000000000001005c7b4c0034010304000404000200000001c63364030aff00030aff0003002000000000"
    "003c0000000080040000800500008003000000090014002000000000000004000400c63364010000000080000000";
constexpr std::string_view frr_f3_reg_spoke2 =
    "00010800000000000001005c704e0034010304000404000200000002c63364020aff00020aff0002002000000000"
    "003c0000000080040000800500008003000000090014002000000000000004000400c63364010aff000180000000";
constexpr std::string_view frr_f9_res_from3 =
    "000108000000000000400048e5880034010104000404c80200000005c63364030aff00030aff000200200000000000"
    "3c000000008004000080050000800300000009000080000000";
constexpr std::string_view frr_f10_res_from2 =
    "000108000000000000400048e5890034010104000404c80200000005c63364020aff00020aff000300200000000000"
    "3c000000008004000080050000800300000009000080000000";
// cisco-ios-nhrp-phase3-traffic-indication-resreq-forwarded-resreply-grekey1000.pcap
constexpr std::string_view phase3_f1_traffic_indication =
    "000108000000000000ff0062d9d00044010804000404000000000000c0a8c8010affff010affff0345000064000500"
    "00"
    "ff01a78f0affff030affff020800325b0001000080040000800500008007000a000000017365637265740009000080"
    "000000";
constexpr std::string_view phase3_f2_resolution_request =
    "000108000000000000ff0056aa370034010104000404c80200000005c0a8c8030affff030affff020000000005ea1c"
    "20000000008003000080040000800500008007000a000000017365637265740009000080000000";
constexpr std::string_view phase3_f3_forwarded =
    "000108000000000000fe006aed5a0034010104000404c80200000005c0a8c8030affff030affff020000000005ea1c"
    "200000000080030000800400140000000005ea1c2004000400c0a8c8010affff01800500008007000a0000000173"
    "65637265740009000080000000";
}  // namespace cap

tunnel_config nhrpauth_hub() {
    tunnel_config t;
    t.id = 2;
    t.overlay_address = ip("155.1.0.5");
    t.overlay_prefix_len = 24;
    t.nbma_address = ip("169.254.100.5");
    t.gre_key = 2;
    t.authentication = "NHRPAUTH";
    t.holdtime_s = 7200;
    t.mtu = 17912;
    return t;
}

}  // namespace

TEST_CASE("server: Cisco NAT-extension capture, replies equal the Cisco hub's byte for byte",
          "[nhrp_server][capture]") {
    server s = make_server(nhrpauth_hub());
    s.start(at_s(0));
    auto out = s.handle(2, ip("169.254.100.1"), from_hex(cap::natext_f1_request), at_s(0));
    REQUIRE(out.packets.size() == 1);
    CHECK(out.packets[0].dst_nbma == ip("169.254.100.1"));
    CHECK(out.packets[0].tunnel == 2);
    CHECK(to_hex(out.packets[0].packet) == cap::natext_f2_reply);
    CHECK(out.packets[0].packet.size() == 128);
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].change == adjacency_change::add);
    CHECK(out.events[0].overlay == ip("155.1.0.1"));
    CHECK(out.events[0].nbma == ip("169.254.100.1"));
    CHECK_FALSE(out.events[0].nat);

    // The second registration (request ID 2) refreshes: same reply shape, no new adjacency.
    out = s.handle(2, ip("169.254.100.1"), from_hex(cap::natext_f3_request), at_s(10));
    REQUIRE(out.packets.size() == 1);
    CHECK(to_hex(out.packets[0].packet) == cap::natext_f4_reply);
    CHECK(out.events.empty());
    auto e = s.lookup(2, ip("155.1.0.1"));
    REQUIRE(e.has_value());
    CHECK(e->flags == (entry_flag::authoritative | entry_flag::unique | entry_flag::registered));
    CHECK(e->request_id == 2);
    CHECK(*e->expires == at_s(10 + 7200));
}

TEST_CASE("server: Cisco responder-address capture (dst proto not the hub's) replies byte for byte",
          "[nhrp_server][capture]") {
    tunnel_config t = nhrpauth_hub();
    t.overlay_address = ip("155.1.146.6");
    t.overlay_prefix_len = 16;
    t.nbma_address = ip("6.6.6.6");
    server s = make_server(t);
    auto out = s.handle(2, ip("155.1.79.2"), from_hex(cap::responder_f1_request), at_s(0));
    REQUIRE(out.packets.size() == 1);
    CHECK(to_hex(out.packets[0].packet) == cap::responder_f2_reply);
    CHECK(s.lookup(2, ip("155.1.0.9")).has_value());
}

TEST_CASE("server: Cisco 'CISCO' capture registration accepted, reply mirrors it",
          "[nhrp_server][capture]") {
    tunnel_config t;
    t.id = 0;
    t.overlay_address = ip("192.168.0.1");
    t.nbma_address = ip("10.0.12.1");
    t.authentication = "CISCO";
    t.mtu = 1514;
    server s = make_server(t);
    bytes req = from_hex(cap::cisco_auth_f1_request);
    auto out = s.handle(0, ip("10.0.12.2"), req, at_s(0));
    REQUIRE(out.packets.size() == 1);
    CHECK(out.packets[0].packet.size() == req.size() + 20);  // the Responder CIE
    packet reply = parsed(out.packets[0].packet);
    packet request = parsed(req);
    CHECK(reply.hdr.type == op::registration_reply);
    CHECK(reply.flags == request.flags);
    CHECK(reply.request_id == 5);
    CHECK(reply.src_nbma == request.src_nbma);
    CHECK(reply.src_proto == request.src_proto);
    CHECK(reply.dst_proto == request.dst_proto);
    REQUIRE(reply.cies.size() == 1);
    CHECK(reply.cies[0].code == cie_code::success);
    CHECK(reply.cies[0].prefix_length == 255);
    CHECK(reply.cies[0].holding_time == 30);
    const extension* responder = find_ext(reply, ext::responder_address);
    REQUIRE(responder != nullptr);
    REQUIRE(responder->cies.size() == 1);
    CHECK(responder->cies[0].client_nbma == ipb("10.0.12.1"));
    CHECK(responder->cies[0].client_proto == ipb("192.168.0.1"));
    const extension* auth = find_ext(reply, ext::authentication);
    REQUIRE(auth != nullptr);
    CHECK(std::string(auth->data.begin(), auth->data.end()) == "CISCO");
    auto e = s.lookup(0, ip("192.168.0.2"));
    REQUIRE(e.has_value());
    CHECK(*e->expires == at_s(30));
}

TEST_CASE("server: FRR 8.4 registrations and resolutions from the capture",
          "[nhrp_server][capture]") {
    tunnel_config t;
    t.id = 1;
    t.overlay_address = ip("10.255.0.1");
    t.overlay_prefix_len = 24;
    t.nbma_address = ip("198.51.100.1");
    t.gre_key = 42;
    server s = make_server(t);

    bytes reg2 = from_hex(cap::frr_f1_reg_spoke2);
    auto out = s.handle(1, ip("198.51.100.2"), reg2, at_s(0));
    REQUIRE(out.packets.size() == 1);
    packet reply = parsed(out.packets[0].packet);
    packet request = parsed(reg2);
    // What FRR checks (INTEROP-NOTES.md): checksum (parse verifies it), request ID, src proto,
    // CIE code 0, and the hub's address in dst proto, where its `dynamic` NHS learns it.
    CHECK(reply.hdr.type == op::registration_reply);
    CHECK(reply.request_id == 1);
    CHECK(reply.flags == 0x0002);
    CHECK(reply.src_proto == ipb("10.255.0.2"));
    CHECK(reply.src_nbma == ipb("198.51.100.2"));
    CHECK(request.dst_proto == ipb("10.255.0.2"));
    CHECK(reply.dst_proto == ipb("10.255.0.1"));
    REQUIRE(reply.cies.size() == 1);
    CHECK(reply.cies[0].code == cie_code::success);
    CHECK(reply.cies[0].prefix_length == 32);
    CHECK(reply.cies[0].holding_time == 60);
    // No NAT between them: the spoke's NAT CIE comes back alone.
    const extension* nat = find_ext(reply, ext::cisco_nat_address);
    REQUIRE(nat != nullptr);
    CHECK(nat->cies == find_ext(request, ext::cisco_nat_address)->cies);
    const extension* responder = find_ext(reply, ext::responder_address);
    REQUIRE(responder != nullptr);
    REQUIRE(responder->cies.size() == 1);
    CHECK(responder->cies[0].client_proto == ipb("10.255.0.1"));
    CHECK(out.packets[0].packet.size() == reg2.size() + 20);

    out = s.handle(1, ip("198.51.100.3"), from_hex(cap::frr_f2_reg_spoke3), at_s(0));
    REQUIRE(out.packets.size() == 1);
    CHECK(parsed(out.packets[0].packet).cies[0].code == cie_code::success);
    // The refresh after the first reply names the hub's protocol address in its NAT CIE.
    out = s.handle(1, ip("198.51.100.2"), from_hex(cap::frr_f3_reg_spoke2), at_s(20));
    REQUIRE(out.packets.size() == 1);
    CHECK(parsed(out.packets[0].packet).request_id == 2);
    CHECK(out.events.empty());
    CHECK(s.cache_size() == 2);

    // Frame 9: spoke .3 asks for 10.255.0.2 (FRR: flags Q A S + NAT, hop 64).
    out = s.handle(1, ip("198.51.100.3"), from_hex(cap::frr_f9_res_from3), at_s(30));
    REQUIRE(out.packets.size() == 1);
    CHECK(out.packets[0].dst_nbma == ip("198.51.100.3"));
    packet res = parsed(out.packets[0].packet);
    CHECK(res.hdr.type == op::resolution_reply);
    CHECK(res.request_id == 5);
    CHECK(res.flags == (0xc802 | flag::res_d));  // no unique: FRR registers without it
    CHECK(res.src_proto == ipb("10.255.0.3"));
    CHECK(res.dst_proto == ipb("10.255.0.2"));
    REQUIRE(res.cies.size() == 1);
    CHECK(res.cies[0].code == cie_code::success);
    CHECK(res.cies[0].prefix_length == 32);
    CHECK(res.cies[0].client_nbma == ipb("198.51.100.2"));
    CHECK(res.cies[0].client_proto == ipb("10.255.0.2"));
    CHECK(res.cies[0].holding_time == 50);  // registered for 60 at t=20, asked at t=30

    out = s.handle(1, ip("198.51.100.2"), from_hex(cap::frr_f10_res_from2), at_s(30));
    REQUIRE(out.packets.size() == 1);
    res = parsed(out.packets[0].packet);
    CHECK(res.cies[0].client_nbma == ipb("198.51.100.3"));
    CHECK(res.cies[0].holding_time == 30);
    auto e = s.lookup(1, ip("10.255.0.2"));
    REQUIRE(e.has_value());
    REQUIRE(e->requesters.size() == 1);
    CHECK(e->requesters[0] == requester{ip("10.255.0.3"), ip("198.51.100.3"), 5});
}

TEST_CASE(
    "server: Phase 3 capture, Traffic Indication and forwarded Resolution Request byte for byte",
    "[nhrp_server][capture]") {
    tunnel_config t;
    t.id = 1000;
    t.overlay_address = ip("10.255.255.1");
    t.overlay_prefix_len = 24;
    t.nbma_address = ip("192.168.200.1");
    t.authentication = "secret";
    t.holdtime_s = 7200;
    t.mtu = 1514;
    t.redirect = true;
    t.forward_resolution_to_owner = true;  // the IOS hub of this capture does
    server s = make_server(t);
    for (int spoke : {2, 3}) {
        packet reg = cisco_request(op::registration_request, flag::reg_u | flag::cisco_nat, 1,
                                   "192.168.200." + std::to_string(spoke),
                                   "10.255.255." + std::to_string(spoke), "10.255.255.1", 32, 7200,
                                   "secret");
        auto out =
            s.handle(1000, ip("192.168.200." + std::to_string(spoke)), wire_of(reg), at_s(0));
        REQUIRE(out.events.size() == 1);
    }
    // The data packet 10.255.255.3 -> .2 (ICMP echo, 100 bytes) came in and went out the tunnel.
    bytes data = from_hex("4500006400050000ff01a78f0affff030affff020800325b00010000");
    data.resize(100, 0xab);
    auto out = s.on_redirect_candidate(1000, ip("10.255.255.3"), ip("10.255.255.2"), data, at_s(5));
    REQUIRE(out.packets.size() == 1);
    CHECK(out.packets[0].dst_nbma == ip("192.168.200.3"));
    CHECK(to_hex(out.packets[0].packet) == cap::phase3_f1_traffic_indication);

    out = s.handle(1000, ip("192.168.200.3"), from_hex(cap::phase3_f2_resolution_request), at_s(5));
    REQUIRE(out.packets.size() == 1);
    CHECK(out.packets[0].dst_nbma == ip("192.168.200.2"));
    CHECK(to_hex(out.packets[0].packet) == cap::phase3_f3_forwarded);
    CHECK(s.tunnel_counters(1000)->sent_of(op::traffic_indication) == 1);
    CHECK(s.tunnel_counters(1000)->sent_of(op::resolution_request) == 1);
}
