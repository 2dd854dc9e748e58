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

namespace {
// tests/data/captures/frr/frr-8.4-hub-two-spokes-session.pcapng: two FRR 8.4 spokes and an FRR
// 8.4 hub (`ip nhrp redirect`), recorded on the rig's bridge (scripts/interop/capture-frr).
// NHRP bytes (GRE payload) by frame number; "hub" frames are what the FRR hub sent.
namespace frr_hub_cap {
constexpr std::string_view f7_reg_spoke2 =
    "00010800000000000001005c7b4f0034010304000404000200000001c63364020aff00020aff0002002000000000"
    "003c0000000080040000800500008003000000090014002000000000000004000400c63364010000000080000000";
constexpr std::string_view f9_hub_reg_reply_spoke2 =
    "0001080000000000004000703d770034010404000404000200000001c63364020aff00020aff0001002000000000"
    "003c00000000800400008005000080030014000000000000003c04000400c63364010aff00010009001400200000"
    "0000000004000400c63364010000000080000000";
constexpr std::string_view f10_reg_spoke3 =
    "00010800000000000001005c7b4c0034010304000404000200000001c63364030aff00030aff0003002000000000"
    "003c0000000080040000800500008003000000090014002000000000000004000400c63364010000000080000000";
constexpr std::string_view f11_hub_reg_reply_spoke3 =
    "0001080000000000004000703d750034010404000404000200000001c63364030aff00030aff0001002000000000"
    "003c00000000800400008005000080030014000000000000003c04000400c63364010aff00010009001400200000"
    "0000000004000400c63364010000000080000000";
// The FRR hub's Traffic Indication to spoke2: hop count 1, no extensions, the whole forwarded
// echo request (84 bytes, TTL already 63) quoted.
constexpr std::string_view f24_hub_traffic_indication =
    "00010800000000000001007cae3f0000010804000404000000000000c63364010aff00010aff000245000054288740"
    "003f01fd1f0aff00020aff00030800188500ee0001a0a7066b0000000070a60800000000001011121314151617"
    "18191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637";
constexpr std::string_view f25_res_spoke2_for_spoke3 =
    "000108000000000000400048e58c0034010104000404c80200000002c63364020aff00020aff00030020000000"
    "00003c000000008004000080050000800300000009000080000000";
constexpr std::string_view f26_hub_forwarded_res =
    "0001080000000000003f005ca7f40034010104000404c80200000002c63364020aff00020aff00030020000000"
    "00003c0000000080040014000000000000003c04000400c63364010aff00018005000080030000000900008000"
    "0000";
// Spoke3's answer as the FRR hub passed it on to spoke2, which accepted it (shortcut installed).
constexpr std::string_view f28_res_reply_to_spoke2 =
    "0001080000000000003f008ccf75003c010204000404e80000000002c63364020aff00020aff00030020000000"
    "00003c04000400c63364030aff000380040014000000000000003c04000400c63364010aff0001800500140000"
    "00000000003c04000400c63364010aff000180030014000000000000003c04000400c63364030aff0003000900"
    "0080000000";
constexpr std::string_view f49_refresh_spoke2 =
    "00010800000000000001005c704d0034010304000404000200000003c63364020aff00020aff0002002000000000"
    "003c0000000080040000800500008003000000090014002000000000000004000400c63364010aff000180000000";
constexpr std::string_view f50_hub_refresh_reply =
    "00010800000000000040007032750034010404000404000200000003c63364020aff00020aff0001002000000000"
    "003c00000000800400008005000080030014000000000000003c04000400c63364010aff00010009001400200000"
    "0000000004000400c63364010aff000180000000";
}  // namespace frr_hub_cap

tunnel_config frr_hub_tunnel() {
    tunnel_config t;
    t.id = 1;
    t.overlay_address = ip("10.255.0.1");
    t.overlay_prefix_len = 24;
    t.nbma_address = ip("198.51.100.1");
    t.gre_key = 42;
    t.holdtime_s = 60;
    t.redirect = true;
    return t;
}

// What FRR's spoke checks in a Registration Reply (INTEROP-NOTES.md), ours against the FRR hub's.
void check_like_frr_reg_reply(const bytes& ours_b, std::string_view frr_hex) {
    packet ours = parsed(ours_b);
    packet frr = parsed(from_hex(frr_hex));
    REQUIRE(frr.hdr.type == op::registration_reply);
    CHECK(ours.hdr.type == frr.hdr.type);
    CHECK(ours.request_id == frr.request_id);
    CHECK(ours.flags == frr.flags);
    CHECK(ours.src_nbma == frr.src_nbma);
    CHECK(ours.src_proto == frr.src_proto);
    CHECK(ours.dst_proto == frr.dst_proto);  // the hub's address: where a dynamic NHS learns it
    REQUIRE(ours.cies.size() == 1);
    REQUIRE(frr.cies.size() == 1);
    CHECK(ours.cies[0].code == frr.cies[0].code);
    CHECK(ours.cies[0].prefix_length == frr.cies[0].prefix_length);
    CHECK(ours.cies[0].holding_time == frr.cies[0].holding_time);
    const extension* our_resp = find_ext(ours, ext::responder_address);
    const extension* frr_resp = find_ext(frr, ext::responder_address);
    REQUIRE(our_resp != nullptr);
    REQUIRE(frr_resp != nullptr);
    REQUIRE(our_resp->cies.size() == 1);
    CHECK(our_resp->cies[0].client_nbma == frr_resp->cies[0].client_nbma);
    CHECK(our_resp->cies[0].client_proto == frr_resp->cies[0].client_proto);
    const extension* our_nat = find_ext(ours, ext::cisco_nat_address);
    const extension* frr_nat = find_ext(frr, ext::cisco_nat_address);
    REQUIRE(our_nat != nullptr);
    REQUIRE(frr_nat != nullptr);
    CHECK(our_nat->cies == frr_nat->cies);  // no NAT: the spoke's CIE comes back alone
}
}  // namespace

TEST_CASE("server: FRR 8.4 spokes' requests from the FRR-hub capture, answered like the FRR hub",
          "[nhrp_server][capture]") {
    using namespace frr_hub_cap;
    server s = make_server(frr_hub_tunnel());
    auto out = s.handle(1, ip("198.51.100.2"), from_hex(f7_reg_spoke2), at_s(0));
    REQUIRE(out.packets.size() == 1);
    CHECK(out.packets[0].dst_nbma == ip("198.51.100.2"));
    check_like_frr_reg_reply(out.packets[0].packet, f9_hub_reg_reply_spoke2);
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].change == adjacency_change::add);
    out = s.handle(1, ip("198.51.100.3"), from_hex(f10_reg_spoke3), at_s(1));
    REQUIRE(out.packets.size() == 1);
    check_like_frr_reg_reply(out.packets[0].packet, f11_hub_reg_reply_spoke3);

    // Spoke2 -> spoke3 through the hub: our Traffic Indication names what the FRR hub's did and
    // quotes the start of the same packet (FRR quotes all of it, we the IP header + 8 bytes).
    packet frr_ti = parsed(from_hex(f24_hub_traffic_indication));
    REQUIRE(frr_ti.hdr.type == op::traffic_indication);
    out = s.on_redirect_candidate(1, ip("10.255.0.2"), ip("10.255.0.3"), frr_ti.contents, at_s(12));
    REQUIRE(out.packets.size() == 1);
    CHECK(out.packets[0].dst_nbma == ip("198.51.100.2"));
    packet ti = parsed(out.packets[0].packet);
    CHECK(ti.hdr.type == op::traffic_indication);
    CHECK(ti.traffic_code == frr_ti.traffic_code);
    CHECK(ti.src_nbma == frr_ti.src_nbma);
    CHECK(ti.src_proto == frr_ti.src_proto);
    CHECK(ti.dst_proto == frr_ti.dst_proto);
    REQUIRE(!ti.contents.empty());
    REQUIRE(ti.contents.size() <= frr_ti.contents.size());
    CHECK(std::equal(ti.contents.begin(), ti.contents.end(), frr_ti.contents.begin()));

    // Spoke2's Resolution Request for spoke3 (sent after that indication). Answered by the hub
    // itself: the reply carries what spoke2 accepted from spoke3 via the FRR hub.
    out = s.handle(1, ip("198.51.100.2"), from_hex(f25_res_spoke2_for_spoke3), at_s(13));
    REQUIRE(out.packets.size() == 1);
    CHECK(out.packets[0].dst_nbma == ip("198.51.100.2"));
    packet res = parsed(out.packets[0].packet);
    packet accepted = parsed(from_hex(f28_res_reply_to_spoke2));
    CHECK(res.hdr.type == op::resolution_reply);
    CHECK(res.request_id == accepted.request_id);
    CHECK((res.flags & accepted.flags) == accepted.flags);  // Q A D S (+ our NAT bit)
    CHECK(res.src_nbma == accepted.src_nbma);
    CHECK(res.src_proto == accepted.src_proto);
    CHECK(res.dst_proto == accepted.dst_proto);
    REQUIRE(res.cies.size() == 1);
    CHECK(res.cies[0].code == accepted.cies[0].code);
    CHECK(res.cies[0].prefix_length == accepted.cies[0].prefix_length);
    CHECK(res.cies[0].client_nbma == accepted.cies[0].client_nbma);
    CHECK(res.cies[0].client_proto == accepted.cies[0].client_proto);

    // The refresh 20 s later names the hub in its NAT CIE; same reply shape, no new adjacency.
    out = s.handle(1, ip("198.51.100.2"), from_hex(f49_refresh_spoke2), at_s(22));
    REQUIRE(out.packets.size() == 1);
    check_like_frr_reg_reply(out.packets[0].packet, f50_hub_refresh_reply);
    CHECK(out.events.empty());
    CHECK(s.cache_size() == 2);
}

TEST_CASE("server: FRR spoke's Resolution Request forwarded to the owner as the FRR hub did",
          "[nhrp_server][capture]") {
    using namespace frr_hub_cap;
    tunnel_config t = frr_hub_tunnel();
    t.forward_resolution_to_owner = true;
    server s = make_server(t);
    REQUIRE(s.handle(1, ip("198.51.100.2"), from_hex(f7_reg_spoke2), at_s(0)).packets.size() == 1);
    REQUIRE(s.handle(1, ip("198.51.100.3"), from_hex(f10_reg_spoke3), at_s(0)).packets.size() == 1);
    auto out = s.handle(1, ip("198.51.100.2"), from_hex(f25_res_spoke2_for_spoke3), at_s(13));
    REQUIRE(out.packets.size() == 1);
    CHECK(out.packets[0].dst_nbma == ip("198.51.100.3"));
    packet fwd = parsed(out.packets[0].packet);
    packet frr = parsed(from_hex(f26_hub_forwarded_res));
    CHECK(fwd.hdr.type == op::resolution_request);
    CHECK(fwd.hdr.hop_count == frr.hdr.hop_count);  // 64 -> 63
    CHECK(fwd.flags == frr.flags);
    CHECK(fwd.request_id == frr.request_id);
    CHECK(fwd.src_nbma == frr.src_nbma);
    CHECK(fwd.src_proto == frr.src_proto);
    CHECK(fwd.dst_proto == frr.dst_proto);
    CHECK(fwd.cies == frr.cies);
    const extension* our_fwd = find_ext(fwd, ext::forward_transit);
    const extension* frr_fwd = find_ext(frr, ext::forward_transit);
    REQUIRE(our_fwd != nullptr);
    REQUIRE(frr_fwd != nullptr);
    REQUIRE(our_fwd->cies.size() == 1);
    REQUIRE(frr_fwd->cies.size() == 1);
    CHECK(our_fwd->cies[0].client_nbma == frr_fwd->cies[0].client_nbma);
    CHECK(our_fwd->cies[0].client_proto == frr_fwd->cies[0].client_proto);
}
