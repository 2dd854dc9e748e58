// The NHRP server driven by packets and a fake clock through every path: registration, unique,
// NAT, resolution (answered, forwarded, negative), purge, redirect, errors, limits, timers.
#include <catch2/catch.hpp>

#include <algorithm>

#include "control/nhrp/server.hpp"
#include "control/nhrp/show.hpp"
#include "dataplane/wire/reader.hpp"
#include "tests/unit/nhrp_server_util.hpp"

using namespace dmvpn::nhrp;
using namespace dmvpn::nhrp::test;

namespace {

// The IOS 12.4 walk-through of cisco-ios-exchanges.md: hub R1 10.0.0.1 / 150.1.1.1, spokes
// R2 10.0.0.2 / 150.1.2.2 and R3 10.0.0.3 / 150.1.3.3, `ip nhrp authentication cisco`.
tunnel_config r1_tunnel() {
    tunnel_config t;
    t.id = 0;
    t.overlay_address = ip("10.0.0.1");
    t.overlay_prefix_len = 24;
    t.nbma_address = ip("150.1.1.1");
    t.gre_key = 123;
    t.network_id = 123;
    t.authentication = "cisco";
    t.holdtime_s = 360;
    t.mtu = 1514;
    return t;
}

server make_server(std::vector<tunnel_config> tunnels, server_config base = {}) {
    base.tunnels = std::move(tunnels);
    auto s = server::create(std::move(base));
    REQUIRE(s.has_value());
    return std::move(*s);
}

// The NHS peer 10.0.0.254 / 150.1.254.254 of r1_tunnel() answers h's own registration, so h
// forwards resolutions there (only to peers that answer).
void peer_answers(server& h) {
    tunnel_config peer_cfg = r1_tunnel();
    peer_cfg.overlay_address = ip("10.0.0.254");
    peer_cfg.nbma_address = ip("150.1.254.254");
    server peer = make_server({peer_cfg});
    outputs reg = h.tick(at_s(0));
    REQUIRE(reg.packets.size() == 1);
    outputs reg_reply = peer.handle(0, ip("150.1.1.1"), reg.packets[0].packet, at_s(0));
    REQUIRE(reg_reply.packets.size() == 1);
    (void)h.handle(0, ip("150.1.254.254"), reg_reply.packets[0].packet, at_s(0));
    REQUIRE(h.nhs().at(0).answering);
}

packet registration(uint32_t reqid, std::string_view nbma, std::string_view proto, uint16_t hold,
                    bool unique = true, std::string_view key = "cisco") {
    return cisco_request(op::registration_request, unique ? flag::reg_u : 0, reqid, nbma, proto,
                         "10.0.0.1", 255, hold, key);
}

packet resolution(uint32_t reqid, std::string_view nbma, std::string_view proto,
                  std::string_view target, std::string_view key = "cisco") {
    // "router auth src-stable", CIE prefix 0 / mtu 1514 / holding time 360, as IOS asks.
    return cisco_request(op::resolution_request, flag::res_q | flag::res_a | flag::res_s, reqid,
                         nbma, proto, target, 0, 360, key);
}

outputs send_to(server& s, const packet& p, std::string_view from, timestamp now,
                uint32_t tunnel = 0) {
    return s.handle(tunnel, ip(from), wire_of(p), now);
}

packet only_packet(const outputs& out) {
    REQUIRE(out.packets.size() == 1);
    return parsed(out.packets[0].packet);
}

}  // namespace

TEST_CASE("server: IOS registration gets the 101-byte reply IOS sends, and the cache IOS shows",
          "[nhrp_server][cisco]") {
    server s = make_server({r1_tunnel()});
    packet req = registration(26, "150.1.3.3", "10.0.0.3", 60);
    bytes req_bytes = wire_of(req);
    REQUIRE(req_bytes.size() == 81);

    auto out = s.handle(0, ip("150.1.3.3"), req_bytes, at_s(0));
    REQUIRE(out.packets.size() == 1);
    CHECK(out.packets[0].dst_nbma == ip("150.1.3.3"));
    CHECK(out.packets[0].packet.size() == 101);

    // The whole reply is the request with the type changed and the Responder Address filled.
    packet expected = req;
    expected.hdr.type = op::registration_reply;
    cie responder;
    responder.prefix_length = 32;
    responder.mtu = 1514;
    responder.holding_time = 360;
    responder.client_nbma = ipb("150.1.1.1");
    responder.client_proto = ipb("10.0.0.1");
    expected.extensions[0].cies.push_back(responder);
    CHECK(to_hex(out.packets[0].packet) == to_hex(wire_of(expected)));

    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0] == adjacency_event{adjacency_change::add, change_cause::registration, 0,
                                           ip("10.0.0.3"), 32, ip("150.1.3.3"), ip("150.1.3.3"),
                                           false, true});

    auto e = s.lookup(0, ip("10.0.0.3"));
    REQUIRE(e.has_value());
    CHECK(e->via == ip("10.0.0.3"));
    CHECK(e->nbma == ip("150.1.3.3"));
    CHECK(e->type == entry_type::dynamic);
    CHECK(e->flags == (entry_flag::authoritative | entry_flag::unique | entry_flag::registered));
    CHECK(*e->expires == at_s(60));
    CHECK(show_nhrp(s, at_s(0), show_format::text) ==
          "10.0.0.3/32 via 10.0.0.3\n"
          "   Tunnel0 created 00:00:00, expire 00:01:00\n"
          "   Type: dynamic, Flags: authoritative unique registered\n"
          "   NBMA address: 150.1.3.3\n");
    CHECK(s.tunnel_counters(0)->received_of(op::registration_request) == 1);
    CHECK(s.tunnel_counters(0)->sent_of(op::registration_reply) == 1);
}

TEST_CASE(
    "server: IOS resolution answered with the 109-byte reply and what is left of the holding time",
    "[nhrp_server][cisco]") {
    server s = make_server({r1_tunnel()});
    send_to(s, registration(1, "150.1.2.2", "10.0.0.2", 360), "150.1.2.2", at_s(0));
    send_to(s, registration(2, "150.1.3.3", "10.0.0.3", 360), "150.1.3.3", at_s(100));

    packet req = resolution(994, "150.1.3.3", "10.0.0.3", "10.0.0.2");
    REQUIRE(wire_of(req).size() == 81);
    auto out = send_to(s, req, "150.1.3.3", at_s(18));
    REQUIRE(out.packets.size() == 1);
    CHECK(out.packets[0].packet.size() == 109);
    packet reply = parsed(out.packets[0].packet);
    CHECK(reply.hdr.type == op::resolution_reply);
    CHECK(reply.hdr.hop_count == 255);
    // "router auth dst-stable unique src-stable"
    CHECK(reply.flags == (flag::res_q | flag::res_a | flag::res_d | flag::res_u | flag::res_s));
    CHECK(reply.request_id == 994);
    CHECK(reply.src_nbma == ipb("150.1.3.3"));
    CHECK(reply.src_proto == ipb("10.0.0.3"));
    CHECK(reply.dst_proto == ipb("10.0.0.2"));
    REQUIRE(reply.cies.size() == 1);
    CHECK(reply.cies[0].code == cie_code::success);
    CHECK(reply.cies[0].prefix_length == 32);
    CHECK(reply.cies[0].mtu == 1514);
    CHECK(reply.cies[0].holding_time == 342);
    CHECK(reply.cies[0].client_nbma == ipb("150.1.2.2"));
    CHECK(reply.cies[0].client_proto == ipb("10.0.0.2"));
    const extension* auth = find_ext(reply, ext::authentication);
    REQUIRE(auth != nullptr);
    CHECK(auth->data == bytes{'c', 'i', 's', 'c', 'o'});

    // The mirrored exchange: R2 asks for R3 (registered at 100 for 360) at 218: 242 left.
    out = send_to(s, resolution(1012, "150.1.2.2", "10.0.0.2", "10.0.0.3"), "150.1.2.2", at_s(218));
    CHECK(only_packet(out).cies[0].holding_time == 242);

    auto e = s.lookup(0, ip("10.0.0.2"));
    REQUIRE(e.has_value());
    CHECK((e->flags & entry_flag::used) != 0);
    CHECK(show_nhrp(s, at_s(218), show_format::text, true)
              .find("   Requester: 10.0.0.3 Request ID: 994\n") != std::string::npos);
}

TEST_CASE("server: authentication is checked, failures answered with Error Indication 11",
          "[nhrp_server][errors]") {
    server s = make_server({r1_tunnel()});
    for (std::string_view key : {"wrong", ""}) {
        packet req = registration(7, "150.1.3.3", "10.0.0.3", 60, true, key);
        bytes raw = wire_of(req);
        auto out = s.handle(0, ip("150.1.3.3"), raw, at_s(0));
        packet ei = only_packet(out);
        CHECK(out.packets[0].dst_nbma == ip("150.1.3.3"));
        CHECK(ei.hdr.type == op::error_indication);
        CHECK(ei.error_code == error_code::authentication_failure);
        // The offset of the offending extension (Responder, Fwd, Rev then Auth), or of the
        // extension area when there is none.
        uint16_t expected_offset = parsed(raw).hdr.ext_offset + (key.empty() ? 0 : 12);
        CHECK(ei.error_offset == expected_offset);
        CHECK(ei.contents == raw);
        CHECK(ei.src_proto == ipb("10.0.0.1"));
        CHECK(ei.dst_proto == ipb("10.0.0.3"));
        CHECK(out.events.empty());
    }
    CHECK(s.cache_size() == 0);
    CHECK(s.tunnel_counters(0)->dropped_of(drop_reason::authentication_failure) == 2);
    CHECK(s.tunnel_counters(0)->sent_of(op::error_indication) == 2);
}

TEST_CASE("server: holding time, refresh from the same NBMA, expiry emitted once",
          "[nhrp_server][timers]") {
    server s = make_server({r1_tunnel()});
    auto out = send_to(s, registration(1, "150.1.3.3", "10.0.0.3", 60), "150.1.3.3", at_s(0));
    CHECK(out.events.size() == 1);
    out = send_to(s, registration(1, "150.1.3.3", "10.0.0.3", 60), "150.1.3.3", at_s(40));
    CHECK(only_packet(out).cies[0].code == cie_code::success);
    CHECK(out.events.empty());  // nothing about the binding changed
    CHECK(s.tick(at_s(70)).events.empty());
    CHECK(s.lookup(0, ip("10.0.0.3")).has_value());
    CHECK(s.tick(at(std::chrono::milliseconds(99'900))).events.empty());
    out = s.tick(at_s(101));
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].change == adjacency_change::remove);
    CHECK(out.events[0].cause == change_cause::expired);
    CHECK_FALSE(s.lookup(0, ip("10.0.0.3")).has_value());
    CHECK(s.tick(at_s(500)).events.empty());
    CHECK(s.timers() == 0);

    // A refresh with a shorter holding time brings the expiry forward.
    send_to(s, registration(2, "150.1.3.3", "10.0.0.3", 600), "150.1.3.3", at_s(1000));
    send_to(s, registration(3, "150.1.3.3", "10.0.0.3", 30), "150.1.3.3", at_s(1010));
    CHECK(s.tick(at_s(1039)).events.empty());
    CHECK(s.tick(at_s(1041)).events.size() == 1);
}

TEST_CASE("server: unique binding refused to another NBMA (code 14) until it expires",
          "[nhrp_server][unique]") {
    server s = make_server({r1_tunnel()});
    send_to(s, registration(1, "150.1.3.3", "10.0.0.3", 60), "150.1.3.3", at_s(0));
    auto out = send_to(s, registration(9, "150.1.9.9", "10.0.0.3", 60), "150.1.9.9", at_s(10));
    packet reply = only_packet(out);
    CHECK(reply.hdr.type == op::registration_reply);
    CHECK(reply.cies[0].code == cie_code::unique_address_already_registered);
    CHECK(out.events.empty());
    CHECK(s.lookup(0, ip("10.0.0.3"))->nbma == ip("150.1.3.3"));
    CHECK(s.tunnel_counters(0)->dropped_of(drop_reason::refused_unique) == 1);
    // The refusal comes out for the log: who asked for what, and why not.
    REQUIRE(out.refusals.size() == 1);
    CHECK(out.refusals[0].reason == drop_reason::refused_unique);
    CHECK(out.refusals[0].nbma == ip("150.1.9.9"));
    CHECK(out.refusals[0].address == ip("10.0.0.3"));
    CHECK(out.refusals[0].tunnel == r1_tunnel().id);

    CHECK(s.tick(at_s(61)).events.size() == 1);
    out = send_to(s, registration(10, "150.1.9.9", "10.0.0.3", 60), "150.1.9.9", at_s(62));
    CHECK(only_packet(out).cies[0].code == cie_code::success);
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].change == adjacency_change::add);
    CHECK(out.events[0].nbma == ip("150.1.9.9"));
    CHECK(out.refusals.empty());
}

TEST_CASE("server: without unique a new NBMA replaces the binding and requesters get purged",
          "[nhrp_server][purge]") {
    server_config base;
    base.purge_retry_interval = std::chrono::seconds(2);
    base.purge_max_retries = 2;
    server s = make_server({r1_tunnel()}, base);
    send_to(s, registration(1, "150.1.2.2", "10.0.0.2", 360, false), "150.1.2.2", at_s(0));
    send_to(s, registration(1, "150.1.3.3", "10.0.0.3", 360), "150.1.3.3", at_s(0));
    send_to(s, resolution(798, "150.1.3.3", "10.0.0.3", "10.0.0.2"), "150.1.3.3", at_s(1));

    auto out =
        send_to(s, registration(2, "150.1.22.22", "10.0.0.2", 360, false), "150.1.22.22", at_s(5));
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].change == adjacency_change::update);
    CHECK(out.events[0].nbma == ip("150.1.22.22"));
    REQUIRE(out.packets.size() == 2);  // the purge to R3, then the reply
    CHECK(out.packets[0].dst_nbma == ip("150.1.3.3"));
    packet purge = parsed(out.packets[0].packet);
    CHECK(purge.hdr.type == op::purge_request);
    CHECK(purge.request_id == 798);  // the request ID R3 used, as IOS does
    CHECK((purge.flags & flag::purge_n) == 0);
    CHECK(purge.src_proto == ipb("10.0.0.1"));
    CHECK(purge.dst_proto == ipb("10.0.0.3"));
    REQUIRE(purge.cies.size() == 1);
    CHECK(purge.cies[0].client_proto == ipb("10.0.0.2"));
    CHECK(purge.cies[0].client_nbma == ipb("150.1.2.2"));
    CHECK(purge.cies[0].prefix_length == 32);
    CHECK(find_ext(purge, ext::authentication)->data == bytes{'c', 'i', 's', 'c', 'o'});
    CHECK(out.packets[1].dst_nbma == ip("150.1.22.22"));
    CHECK(s.lookup(0, ip("10.0.0.2"))->requesters.empty());

    // Retransmitted until answered...
    out = s.tick(at_s(7));
    REQUIRE(out.packets.size() == 1);
    CHECK(out.packets[0].packet == wire_of(purge));
    CHECK(s.tunnel_counters(0)->purge_retransmits == 1);
    // ... and the Purge Reply (the request with type 6) stops it.
    packet preply = purge;
    preply.hdr.type = op::purge_reply;
    out = s.handle(0, ip("150.1.3.3"), wire_of(preply), at_s(8));
    CHECK(out.packets.empty());
    CHECK(s.pending_purges() == 0);
    CHECK(s.tick(at_s(30)).packets.empty());
    // An unexpected Purge Reply is only counted.
    s.handle(0, ip("150.1.3.3"), wire_of(preply), at_s(31));
    CHECK(s.tunnel_counters(0)->dropped_of(drop_reason::unknown_purge_reply) == 1);
}

TEST_CASE("server: purge retransmission is bounded", "[nhrp_server][purge]") {
    server_config base;
    base.purge_retry_interval = std::chrono::seconds(1);
    base.purge_max_retries = 3;
    server s = make_server({r1_tunnel()}, base);
    send_to(s, registration(1, "150.1.2.2", "10.0.0.2", 360), "150.1.2.2", at_s(0));
    send_to(s, resolution(44, "150.1.3.3", "10.0.0.3", "10.0.0.2"), "150.1.3.3", at_s(0));
    auto out = s.clear(0, ip("10.0.0.2"), at_s(1));
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].cause == change_cause::cleared);
    REQUIRE(out.packets.size() == 1);
    size_t resent = 0;
    for (int t = 2; t <= 20; ++t) {
        resent += s.tick(at_s(t)).packets.size();
    }
    CHECK(resent == 3);
    CHECK(s.pending_purges() == 0);
    CHECK(s.tunnel_counters(0)->dropped_of(drop_reason::purge_unanswered) == 1);
    CHECK(s.tunnel_counters(0)->sent_of(op::purge_request) == 4);
}

TEST_CASE("server: Purge Request from the owner removes its binding and is answered",
          "[nhrp_server][purge]") {
    server s = make_server({r1_tunnel()});
    send_to(s, registration(5, "150.1.3.3", "10.0.0.3", 360), "150.1.3.3", at_s(0));
    send_to(s, registration(6, "150.1.2.2", "10.0.0.2", 360), "150.1.2.2", at_s(0));

    // R2 may not purge R3's binding.
    packet foreign =
        cisco_request(op::purge_request, 0, 5, "150.1.2.2", "10.0.0.2", "10.0.0.1", 32, 0, "cisco");
    foreign.cies[0].client_proto = ipb("10.0.0.3");
    auto out = send_to(s, foreign, "150.1.2.2", at_s(1));
    CHECK(out.events.empty());
    CHECK(s.lookup(0, ip("10.0.0.3")).has_value());
    CHECK(s.tunnel_counters(0)->dropped_of(drop_reason::purge_not_owner) == 1);

    packet req =
        cisco_request(op::purge_request, 0, 5, "150.1.3.3", "10.0.0.3", "10.0.0.1", 32, 0, "cisco");
    out = send_to(s, req, "150.1.3.3", at_s(2));
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].change == adjacency_change::remove);
    CHECK(out.events[0].cause == change_cause::purged);
    CHECK_FALSE(s.lookup(0, ip("10.0.0.3")).has_value());
    packet reply = only_packet(out);
    CHECK(reply.hdr.type == op::purge_reply);
    CHECK(reply.request_id == 5);
    CHECK(reply.src_proto == req.src_proto);
    CHECK(reply.dst_proto == req.dst_proto);
    CHECK(reply.cies == req.cies);

    // With N set nobody answers.
    packet quiet = cisco_request(op::purge_request, flag::purge_n, 6, "150.1.2.2", "10.0.0.2",
                                 "10.0.0.1", 32, 0, "cisco");
    out = send_to(s, quiet, "150.1.2.2", at_s(3));
    CHECK(out.packets.empty());
    CHECK(out.events.size() == 1);
    CHECK(s.cache_size() == 0);
}

TEST_CASE("server: NAT, both addresses recorded, replies go where the spoke is seen",
          "[nhrp_server][nat]") {
    server s = make_server({r1_tunnel()});
    packet req = registration(3, "192.168.1.3", "10.0.0.3", 60);
    req.flags |= flag::cisco_nat;
    // The NAT extension as IOS sends it: one CIE naming the NHS.
    extension nat = ext_of(ext::cisco_nat_address, false);
    cie nhs;
    nhs.prefix_length = 32;
    nhs.mtu = 1514;
    nhs.client_nbma = ipb("150.1.1.1");
    nhs.client_proto = ipb("10.0.0.1");
    nat.cies.push_back(nhs);
    req.extensions.insert(req.extensions.end() - 1, nat);

    auto out = send_to(s, req, "203.0.113.7", at_s(0));
    REQUIRE(out.packets.size() == 1);
    CHECK(out.packets[0].dst_nbma == ip("203.0.113.7"));
    packet reply = parsed(out.packets[0].packet);
    const extension* rnat = find_ext(reply, ext::cisco_nat_address);
    REQUIRE(rnat != nullptr);
    REQUIRE(rnat->cies.size() == 2);
    CHECK(rnat->cies[0] == nhs);  // the spoke's own, echoed
    CHECK(rnat->cies[1].client_nbma == ipb("203.0.113.7"));
    CHECK(rnat->cies[1].client_proto == ipb("10.0.0.3"));
    CHECK(reply.src_nbma == ipb("192.168.1.3"));  // mandatory part untouched
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].nat);
    CHECK(out.events[0].nbma == ip("203.0.113.7"));
    CHECK(out.events[0].claimed_nbma == ip("192.168.1.3"));
    auto e = s.lookup(0, ip("10.0.0.3"));
    CHECK((e->flags & entry_flag::nat) != 0);
    CHECK(show_nhrp(s, at_s(0), show_format::text)
              .find("    (Claimed NBMA address: 192.168.1.3)\n") != std::string::npos);

    // Others resolving it learn the address that works.
    out = send_to(s, resolution(5, "150.1.2.2", "10.0.0.2", "10.0.0.3"), "150.1.2.2", at_s(1));
    CHECK(only_packet(out).cies[0].client_nbma == ipb("203.0.113.7"));
    // The NAT mapping moves: not unique-safe, so refused until it expires.
    out = send_to(s, req, "203.0.113.8", at_s(2));
    CHECK(only_packet(out).cies[0].code == cie_code::unique_address_already_registered);
}

TEST_CASE("server: Resolution for a prefix behind a spoke is forwarded to that spoke",
          "[nhrp_server][resolution]") {
    tunnel_config t = r1_tunnel();
    t.route = [](uint32_t dst) -> std::optional<route> {
        if ((dst & 0xffffff00) == ip("10.0.2.0")) {
            return route{ip("10.0.0.2"), 24};
        }
        if ((dst & 0xffffff00) == ip("10.0.50.0")) {
            return route{ip("10.0.0.1"), 24};  // the hub's own LAN
        }
        return std::nullopt;
    };
    server s = make_server({t});
    send_to(s, registration(1, "150.1.2.2", "10.0.0.2", 360), "150.1.2.2", at_s(0));

    packet req = resolution(77, "150.1.3.3", "10.0.0.3", "10.0.2.5");
    auto out = send_to(s, req, "150.1.3.3", at_s(1));
    REQUIRE(out.packets.size() == 1);
    CHECK(out.packets[0].dst_nbma == ip("150.1.2.2"));
    packet fwd = parsed(out.packets[0].packet);
    CHECK(fwd.hdr.type == op::resolution_request);
    CHECK(fwd.hdr.hop_count == 254);
    CHECK(fwd.flags == req.flags);
    CHECK(fwd.request_id == 77);
    CHECK(fwd.src_nbma == req.src_nbma);
    CHECK(fwd.src_proto == req.src_proto);
    CHECK(fwd.dst_proto == req.dst_proto);
    CHECK(fwd.cies == req.cies);
    const extension* transit = find_ext(fwd, ext::forward_transit);
    REQUIRE(transit->cies.size() == 1);
    CHECK(transit->cies[0].client_nbma == ipb("150.1.1.1"));
    CHECK(transit->cies[0].client_proto == ipb("10.0.0.1"));
    CHECK(out.packets[0].packet.size() == wire_of(req).size() + 20);
    REQUIRE(s.lookup(0, ip("10.0.0.2"))->requesters.size() == 1);

    // The spoke's answer comes back through the hub: forwarded to the requester, with the hub in
    // the Reverse Transit record.
    packet answer = fwd;
    answer.hdr.type = op::resolution_reply;
    answer.hdr.hop_count = 255;
    answer.cies[0].prefix_length = 24;
    answer.cies[0].client_nbma = ipb("150.1.2.2");
    answer.cies[0].client_proto = ipb("10.0.2.0");
    send_to(s, registration(2, "150.1.3.3", "10.0.0.3", 360), "150.1.3.3", at_s(1));
    out = send_to(s, answer, "150.1.2.2", at_s(2));
    REQUIRE(out.packets.size() == 1);
    CHECK(out.packets[0].dst_nbma == ip("150.1.3.3"));
    packet back = parsed(out.packets[0].packet);
    CHECK(back.hdr.hop_count == 254);
    CHECK(find_ext(back, ext::reverse_transit)->cies.size() == 1);

    // A route through the hub itself: nobody to shortcut to, a negative answer for the /24.
    out = send_to(s, resolution(78, "150.1.3.3", "10.0.0.3", "10.0.50.9"), "150.1.3.3", at_s(3));
    packet nak = only_packet(out);
    CHECK(nak.hdr.type == op::resolution_reply);
    CHECK(nak.cies[0].code == cie_code::no_binding);
    CHECK(nak.cies[0].prefix_length == 24);
    CHECK(nak.cies[0].client_proto == ipb("10.0.50.0"));
}

TEST_CASE("server: unknown targets, negative reply, unreachable, hub-to-hub",
          "[nhrp_server][resolution]") {
    server s = make_server({r1_tunnel()});
    // Inside the overlay subnet, nobody registered: "no binding exists".
    auto out =
        send_to(s, resolution(1, "150.1.3.3", "10.0.0.3", "10.0.0.99"), "150.1.3.3", at_s(0));
    packet nak = only_packet(out);
    CHECK(nak.hdr.type == op::resolution_reply);
    CHECK(nak.cies[0].code == cie_code::no_binding);
    CHECK(nak.cies[0].prefix_length == 32);
    CHECK(nak.cies[0].client_nbma.empty());
    CHECK((nak.flags & flag::res_d) == 0);
    // Outside and unrouted: Error Indication "protocol address unreachable", offset of dst proto.
    bytes raw = wire_of(resolution(2, "150.1.3.3", "10.0.0.3", "172.16.0.1"));
    out = s.handle(0, ip("150.1.3.3"), raw, at_s(0));
    packet ei = only_packet(out);
    CHECK(ei.error_code == error_code::protocol_address_unreachable);
    CHECK(ei.error_offset == 36);
    CHECK(raw[36] == 172);

    // The hub's own address: answered with its own binding.
    out = send_to(s, resolution(3, "150.1.3.3", "10.0.0.3", "10.0.0.1"), "150.1.3.3", at_s(0));
    packet own = only_packet(out);
    CHECK(own.cies[0].client_nbma == ipb("150.1.1.1"));

    // With another NHS configured, what the hub cannot answer goes there once that NHS
    // answers the hub's own registration (hub to hub).
    tunnel_config t = r1_tunnel();
    t.nhs_peers.push_back(nhs_peer{ip("10.0.0.254"), ip("150.1.254.254")});
    server h = make_server({t});
    peer_answers(h);
    out = send_to(h, resolution(4, "150.1.3.3", "10.0.0.3", "172.16.0.1"), "150.1.3.3", at_s(0));
    REQUIRE(out.packets.size() == 1);
    CHECK(out.packets[0].dst_nbma == ip("150.1.254.254"));
    CHECK(parsed(out.packets[0].packet).hdr.type == op::resolution_request);
}

TEST_CASE("server: Phase 3 under a summary: owner, Null0, the hub's own LAN (RFC 2332 2.2)",
          "[nhrp_server][resolution]") {
    // The hub's FIB as FRR makes it for Phase 3 with a summary: 172.16.0.0/12 to Null0 (the
    // aggregate), the spokes' /24s through their overlay addresses, the hub's LAN
    // 172.16.100.0/24 out of its LAN port, a default route out of the LAN.
    tunnel_config t = r1_tunnel();
    t.redirect = true;
    t.route = [](uint32_t dst) -> std::optional<route> {
        if ((dst & 0xffffff00) == ip("172.16.2.0")) {
            return route{ip("10.0.0.2"), 24};
        }
        if ((dst & 0xffffff00) == ip("172.16.100.0")) {
            return route{0, 24, route_via::egress};
        }
        if ((dst & 0xfff00000) == ip("172.16.0.0")) {
            return route{0, 12, route_via::blackhole};
        }
        return route{0, 0, route_via::egress};
    };
    server s = make_server({t});
    send_to(s, registration(1, "150.1.2.2", "10.0.0.2", 360), "150.1.2.2", at_s(0));
    send_to(s, registration(2, "150.1.3.3", "10.0.0.3", 360), "150.1.3.3", at_s(0));

    // An owned /24 under the summary: forwarded to its owner (the summary does not hide it).
    auto out =
        send_to(s, resolution(10, "150.1.3.3", "10.0.0.3", "172.16.2.9"), "150.1.3.3", at_s(1));
    REQUIRE(out.packets.size() == 1);
    CHECK(out.packets[0].dst_nbma == ip("150.1.2.2"));
    CHECK(parsed(out.packets[0].packet).hdr.type == op::resolution_request);

    // Under the summary, owned by nobody (Null0): a negative reply, code 12, for the target
    // alone (the /12 also covers 172.16.2.0/24), not an Error Indication.
    const uint64_t unreachable = s.total_counters().dropped_of(drop_reason::unreachable);
    out = send_to(s, resolution(11, "150.1.3.3", "10.0.0.3", "172.16.9.9"), "150.1.3.3", at_s(1));
    packet nak = only_packet(out);
    CHECK(out.packets[0].dst_nbma == ip("150.1.3.3"));
    CHECK(nak.hdr.type == op::resolution_reply);
    CHECK(nak.request_id == 11);
    CHECK(nak.dst_proto == ipb("172.16.9.9"));
    REQUIRE(nak.cies.size() == 1);
    CHECK(nak.cies[0].code == cie_code::no_binding);
    CHECK(nak.cies[0].prefix_length == 32);
    CHECK(nak.cies[0].client_proto == ipb("172.16.9.9"));
    CHECK(nak.cies[0].client_nbma.empty());
    CHECK(s.total_counters().dropped_of(drop_reason::unreachable) == unreachable);
    CHECK(s.total_counters().sent_of(op::error_indication) == 0);

    // The hub's own LAN: the hub is the egress router, the station serving it; it answers with
    // itself for the /24 (authoritative, destination-stable, not unique).
    out = send_to(s, resolution(12, "150.1.3.3", "10.0.0.3", "172.16.100.7"), "150.1.3.3", at_s(1));
    packet own = only_packet(out);
    CHECK(own.hdr.type == op::resolution_reply);
    CHECK(own.request_id == 12);
    CHECK((own.flags & (flag::res_a | flag::res_d)) == (flag::res_a | flag::res_d));
    CHECK((own.flags & flag::res_u) == 0);
    REQUIRE(own.cies.size() == 1);
    CHECK(own.cies[0].code == cie_code::success);
    CHECK(own.cies[0].prefix_length == 24);
    CHECK(own.cies[0].client_nbma == ipb("150.1.1.1"));
    CHECK(own.cies[0].client_proto == ipb("10.0.0.1"));
    CHECK(own.cies[0].holding_time == 360);
    const extension* responder = find_ext(own, ext::responder_address);
    REQUIRE(responder != nullptr);
    REQUIRE(responder->cies.size() == 1);
    CHECK(responder->cies[0].client_proto == ipb("10.0.0.1"));

    // Only a default route out of the LAN: it says nothing about who serves the target, which
    // is unrouted as before (an NHS peer would get it; here: Error Indication 6).
    out = send_to(s, resolution(13, "150.1.3.3", "10.0.0.3", "198.51.100.1"), "150.1.3.3", at_s(1));
    packet wide = only_packet(out);
    CHECK(wide.hdr.type == op::error_indication);
    CHECK(wide.error_code == error_code::protocol_address_unreachable);

    // A redirect whose source lies under Null0 or behind the hub finds no spoke to tell.
    const std::array<uint8_t, 20> head{0x45, 0, 0,   20, 0, 0, 0,   0,  64, 17,
                                       0,    0, 172, 16, 9, 9, 172, 16, 2,  9};
    out = s.on_redirect_candidate(0, ip("172.16.9.9"), ip("172.16.2.9"), head, at_s(2));
    CHECK(out.packets.empty());
    CHECK(s.total_counters().dropped_of(drop_reason::redirect_unknown_source) == 1);
}

TEST_CASE("server: loops and hop counts end in Error Indications 3 and 15",
          "[nhrp_server][errors]") {
    tunnel_config t = r1_tunnel();
    t.nhs_peers.push_back(nhs_peer{ip("10.0.0.254"), ip("150.1.254.254")});
    server s = make_server({t});
    peer_answers(s);

    packet looped = resolution(1, "150.1.3.3", "10.0.0.3", "172.16.0.1");
    cie hub;
    hub.client_nbma = ipb("150.1.1.1");
    hub.client_proto = ipb("10.0.0.1");
    looped.extensions[1].cies.push_back(hub);
    bytes raw = wire_of(looped);
    auto out = s.handle(0, ip("150.1.254.254"), raw, at_s(0));
    packet ei = only_packet(out);
    CHECK(ei.error_code == error_code::loop_detected);
    CHECK(ei.error_offset == parsed(raw).hdr.ext_offset + 4);  // the Forward Transit extension
    CHECK(s.tunnel_counters(0)->dropped_of(drop_reason::loop_detected) == 1);

    packet last_hop = resolution(2, "150.1.3.3", "10.0.0.3", "172.16.0.1");
    last_hop.hdr.hop_count = 1;
    out = send_to(s, last_hop, "150.1.3.3", at_s(1));
    ei = only_packet(out);
    CHECK(ei.error_code == error_code::hop_count_exceeded);
    CHECK(ei.error_offset == 9);

    packet dead = registration(3, "150.1.3.3", "10.0.0.3", 60);
    dead.hdr.hop_count = 0;
    out = send_to(s, dead, "150.1.3.3", at_s(2));
    CHECK(only_packet(out).error_code == error_code::hop_count_exceeded);
    CHECK(s.tunnel_counters(0)->dropped_of(drop_reason::hop_count_exceeded) == 2);
    CHECK(s.cache_size() == 0);
    // A registration with hop count 1 (FRR) is for the hub itself: fine.
    packet frr = registration(4, "150.1.3.3", "10.0.0.3", 60);
    frr.hdr.hop_count = 1;
    CHECK(only_packet(send_to(s, frr, "150.1.3.3", at_s(3))).cies[0].code == cie_code::success);
}

TEST_CASE("server: unrecognised compulsory extension (code 1) and protocol errors (code 7)",
          "[nhrp_server][errors]") {
    server s = make_server({r1_tunnel()});
    packet req = registration(1, "150.1.3.3", "10.0.0.3", 60);
    extension strange = ext_of(0x1234);
    strange.raw = {1, 2, 3, 4};
    req.extensions.insert(req.extensions.begin() + 3, strange);
    bytes raw = wire_of(req);
    auto out = s.handle(0, ip("150.1.3.3"), raw, at_s(0));
    packet ei = only_packet(out);
    CHECK(ei.error_code == error_code::unrecognized_extension);
    CHECK(ei.error_offset == parsed(raw).hdr.ext_offset + 12);
    CHECK(dmvpn::wire::load_be16(raw.data() + ei.error_offset) == (0x8000 | 0x1234));
    CHECK(ei.contents == raw);

    // The same type without the compulsory bit is ignored and echoed.
    req.extensions[3].compulsory = false;
    out = send_to(s, req, "150.1.3.3", at_s(1));
    packet reply = only_packet(out);
    CHECK(reply.hdr.type == op::registration_reply);
    CHECK(reply.extensions[3].raw == bytes{1, 2, 3, 4});

    packet v6 = registration(2, "150.1.3.3", "10.0.0.3", 60);
    v6.hdr.afn = 2;
    out = send_to(s, v6, "150.1.3.3", at_s(2));
    ei = only_packet(out);
    CHECK(ei.error_code == error_code::protocol_error);
    CHECK(ei.error_offset == 0);

    packet odd = registration(3, "150.1.3.3", "10.0.0.3", 60);
    odd.src_nbma = {1, 2, 3, 4, 5, 6};
    out = send_to(s, odd, "150.1.3.3", at_s(3));
    ei = only_packet(out);
    CHECK(ei.error_code == error_code::protocol_error);
    CHECK(ei.error_offset == 18);

    // Error Indications are never answered, malformed bytes only counted.
    packet incoming = ei;
    CHECK(s.handle(0, ip("150.1.3.3"), wire_of(incoming), at_s(4)).packets.empty());
    bytes broken = wire_of(registration(4, "150.1.3.3", "10.0.0.3", 60));
    broken[12] ^= 0xff;  // checksum
    CHECK(s.handle(0, ip("150.1.3.3"), broken, at_s(5)).packets.empty());
    CHECK(s.tunnel_counters(0)->dropped_of(drop_reason::malformed) == 1);
    CHECK(s.tunnel_counters(0)->received_of(op::error_indication) == 1);
    CHECK(s.handle(77, ip("150.1.3.3"), broken, at_s(5)).packets.empty());
    CHECK(s.unattributed_counters().dropped_of(drop_reason::unknown_tunnel) == 1);
}

TEST_CASE(
    "server: Traffic Indication per redirect candidate, rate limited per (source, destination)",
    "[nhrp_server][redirect]") {
    tunnel_config t = r1_tunnel();
    t.redirect = true;
    t.redirect_interval = std::chrono::seconds(2);
    server s = make_server({t});
    send_to(s, registration(1, "150.1.3.3", "10.0.0.3", 360), "150.1.3.3", at_s(0));
    bytes data = from_hex(
        "45000054000040004001a5a50a0003050a000205"
        "0800f7ff00010001"
        "deadbeefdeadbeef");

    auto out = s.on_redirect_candidate(0, ip("10.0.0.3"), ip("10.0.2.5"), data, at_s(1));
    packet ti = only_packet(out);
    CHECK(out.packets[0].dst_nbma == ip("150.1.3.3"));
    CHECK(ti.hdr.type == op::traffic_indication);
    CHECK(ti.traffic_code == 0);
    CHECK(ti.src_nbma == ipb("150.1.1.1"));
    CHECK(ti.src_proto == ipb("10.0.0.1"));
    CHECK(ti.dst_proto == ipb("10.0.0.3"));
    CHECK(ti.contents == bytes(data.begin(), data.begin() + 28));
    std::vector<uint16_t> order;
    for (const auto& e : ti.extensions) {
        order.push_back(e.type);
    }
    CHECK(order == std::vector<uint16_t>{ext::forward_transit, ext::reverse_transit,
                                         ext::authentication, ext::cisco_nat_address, ext::end});

    CHECK(
        s.on_redirect_candidate(0, ip("10.0.0.3"), ip("10.0.2.5"), data, at_s(2)).packets.empty());
    CHECK(
        s.on_redirect_candidate(0, ip("10.0.0.3"), ip("10.0.2.6"), data, at_s(2)).packets.size() ==
        1);
    CHECK(
        s.on_redirect_candidate(0, ip("10.0.0.3"), ip("10.0.2.5"), data, at_s(3)).packets.size() ==
        1);
    CHECK(
        s.on_redirect_candidate(0, ip("10.0.0.9"), ip("10.0.2.5"), data, at_s(3)).packets.empty());
    const counters& c = *s.tunnel_counters(0);
    CHECK(c.sent_of(op::traffic_indication) == 3);
    CHECK(c.dropped_of(drop_reason::redirect_rate_limited) == 1);
    CHECK(c.dropped_of(drop_reason::redirect_unknown_source) == 1);

    server off = make_server({r1_tunnel()});
    CHECK(off.on_redirect_candidate(0, ip("10.0.0.3"), ip("10.0.2.5"), data, at_s(1))
              .packets.empty());
    CHECK(off.tunnel_counters(0)->dropped_of(drop_reason::redirect_disabled) == 1);
}

TEST_CASE("server: redirect-rate-limit caps the tunnel's Traffic Indications per second",
          "[nhrp_server][redirect]") {
    tunnel_config t = r1_tunnel();
    t.redirect = true;
    t.redirect_rate_per_s = 3;
    server s = make_server({t});
    send_to(s, registration(1, "150.1.3.3", "10.0.0.3", 360), "150.1.3.3", at_s(0));
    bytes data = from_hex("45000054000040004001a5a50a0003050a000205");
    auto sent_at = [&](uint32_t dst_host, timestamp when) {
        return s.on_redirect_candidate(0, ip("10.0.0.3"), ip("10.0.2.0") + dst_host, data, when)
            .packets.size();
    };
    // Ten distinct destinations in one instant: each pair is new, the tunnel's bucket (one
    // second's worth, 3) lets three through.
    size_t sent = 0;
    for (uint32_t d = 1; d <= 10; ++d) {
        sent += sent_at(d, at_s(1));
    }
    CHECK(sent == 3);
    const counters& c = *s.tunnel_counters(0);
    CHECK(c.dropped_of(drop_reason::redirect_tunnel_rate_limited) == 7);
    CHECK(c.dropped_of(drop_reason::redirect_rate_limited) == 0);
    // A third of a second later one more token has come back, and only one.
    CHECK(sent_at(20, at_s(1) + std::chrono::milliseconds(334)) == 1);
    CHECK(sent_at(21, at_s(1) + std::chrono::milliseconds(334)) == 0);
    // A pair refused by the tunnel cap was not remembered: it goes once the bucket refills.
    CHECK(sent_at(4, at_s(3)) == 1);

    // 0 lifts the tunnel-wide cap; the per-pair interval still applies.
    t.redirect_rate_per_s = 0;
    server open = make_server({t});
    send_to(open, registration(1, "150.1.3.3", "10.0.0.3", 360), "150.1.3.3", at_s(0));
    size_t all = 0;
    for (uint32_t d = 1; d <= 200; ++d) {
        all += open.on_redirect_candidate(0, ip("10.0.0.3"), ip("10.0.3.0") + d, data, at_s(1))
                   .packets.size();
    }
    CHECK(all == 200);
}

TEST_CASE("server: a replacement server adopts the registrations the old one held (reload)",
          "[nhrp_server][reload]") {
    server old = make_server({r1_tunnel()});
    send_to(old, registration(1, "150.1.2.2", "10.0.0.2", 360), "150.1.2.2", at_s(0));
    send_to(old, registration(2, "150.1.3.3", "10.0.0.3", 30), "150.1.3.3", at_s(0));
    send_to(old, registration(3, "150.1.4.4", "10.0.0.4", 360), "150.1.4.4", at_s(0));
    REQUIRE(old.entries().size() == 3);

    // The new tunnel: a changed holdtime, and a static map now claiming 10.0.0.4.
    tunnel_config t = r1_tunnel();
    t.holdtime_s = 600;
    t.static_maps.push_back(static_map{ip("10.0.0.4"), 32, ip("150.1.44.44"), false});
    server fresh = make_server({t});
    (void)fresh.start(at_s(40));
    size_t adopted = 0;
    auto out = fresh.adopt(old.entries(), at_s(40), &adopted);
    // 10.0.0.3's 30 s holding time is over; 10.0.0.4 is static now: only 10.0.0.2 is carried.
    CHECK(adopted == 1);
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].cause == change_cause::carried);
    CHECK(out.events[0].overlay == ip("10.0.0.2"));
    CHECK(out.events[0].nbma == ip("150.1.2.2"));
    auto e = fresh.lookup(0, ip("10.0.0.2"));
    REQUIRE(e.has_value());
    CHECK(e->type == entry_type::dynamic);
    CHECK(e->nbma == ip("150.1.2.2"));
    CHECK(*e->expires == at_s(360));  // the holding time it registered with, not restarted
    CHECK(fresh.lookup(0, ip("10.0.0.4"))->type == entry_type::static_map);
    // It expires on the new server's timers.
    auto gone = fresh.tick(at_s(361));
    CHECK(std::any_of(gone.events.begin(), gone.events.end(), [](const adjacency_event& ev) {
        return ev.change == adjacency_change::remove && ev.overlay == ip("10.0.0.2");
    }));
    CHECK(!fresh.lookup(0, ip("10.0.0.2")).has_value());

    // A tunnel that moved to another subnet takes none of them.
    tunnel_config moved = r1_tunnel();
    moved.overlay_address = ip("10.9.0.1");
    server other = make_server({moved});
    CHECK(other.adopt(old.entries(), at_s(1), &adopted).events.empty());
    CHECK(adopted == 0);
}

TEST_CASE(
    "server: requesters survive a reload: a spoke moving afterwards is purged from the "
    "resolvers' caches",
    "[nhrp_server][reload][purge]") {
    server old = make_server({r1_tunnel()});
    send_to(old, registration(1, "150.1.2.2", "10.0.0.2", 360, false), "150.1.2.2", at_s(0));
    send_to(old, registration(1, "150.1.3.3", "10.0.0.3", 360), "150.1.3.3", at_s(0));
    send_to(old, resolution(798, "150.1.3.3", "10.0.0.3", "10.0.0.2"), "150.1.3.3", at_s(1));
    REQUIRE(old.lookup(0, ip("10.0.0.2"))->requesters.size() == 1);

    server fresh = make_server({r1_tunnel()});
    (void)fresh.start(at_s(2));
    size_t adopted = 0;
    (void)fresh.adopt(old.entries(), at_s(2), &adopted);
    CHECK(adopted == 2);
    auto carried = fresh.lookup(0, ip("10.0.0.2"));
    REQUIRE(carried.has_value());
    REQUIRE(carried->requesters.size() == 1);
    CHECK(carried->requesters[0].proto == ip("10.0.0.3"));
    CHECK(carried->requesters[0].nbma == ip("150.1.3.3"));
    CHECK(carried->requesters[0].request_id == 798);

    // 10.0.0.2 re-registers from a new NBMA (no unique flag): R3, which resolved it before the
    // reload, gets the Purge Request with its own request ID, then R2 its reply.
    auto out = send_to(fresh, registration(2, "150.1.22.22", "10.0.0.2", 360, false), "150.1.22.22",
                       at_s(5));
    REQUIRE(out.packets.size() == 2);
    CHECK(out.packets[0].dst_nbma == ip("150.1.3.3"));
    packet purge = parsed(out.packets[0].packet);
    CHECK(purge.hdr.type == op::purge_request);
    CHECK(purge.request_id == 798);
    CHECK(purge.dst_proto == ipb("10.0.0.3"));
    REQUIRE(purge.cies.size() == 1);
    CHECK(purge.cies[0].client_proto == ipb("10.0.0.2"));
    CHECK(purge.cies[0].client_nbma == ipb("150.1.2.2"));
    CHECK(out.packets[1].dst_nbma == ip("150.1.22.22"));
    CHECK(fresh.pending_purges() == 1);

    // A smaller per-entry cap on the new server keeps what fits and counts the rest.
    server_config capped;
    capped.max_requesters_per_entry = 0;
    server small = make_server({r1_tunnel()}, capped);
    (void)small.start(at_s(2));
    (void)small.adopt(old.entries(), at_s(2), &adopted);
    CHECK(adopted == 2);
    CHECK(small.lookup(0, ip("10.0.0.2"))->requesters.empty());
    CHECK(small.tunnel_counters(0)->dropped_of(drop_reason::requesters_full) == 1);
}

TEST_CASE("server: static maps, multicast maps, several tunnels with their own key",
          "[nhrp_server][config]") {
    tunnel_config a = r1_tunnel();
    a.static_maps.push_back(static_map{ip("10.0.0.254"), 32, ip("150.1.254.254"), true});
    a.multicast_nbma.push_back(ip("150.1.100.100"));
    tunnel_config b;
    b.id = 7;
    b.name = "Tunnel7";
    b.overlay_address = ip("10.7.0.1");
    b.nbma_address = ip("150.1.1.1");
    b.authentication = "other";
    b.network_id = 123;  // one NHRP domain with tunnel 0
    b.multicast_dynamic = false;
    server s = make_server({a, b});

    auto out = s.start(at_s(0));
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0] == adjacency_event{adjacency_change::add, change_cause::static_map, 0,
                                           ip("10.0.0.254"), 32, ip("150.1.254.254"),
                                           ip("150.1.254.254"), false, true});
    // A static binding is not taken over by a registration.
    out = send_to(s, registration(1, "150.1.9.9", "10.0.0.254", 60), "150.1.9.9", at_s(1));
    CHECK(only_packet(out).cies[0].code == cie_code::administratively_prohibited);
    // Each tunnel its own key.
    send_to(s, registration(1, "150.1.2.2", "10.0.0.2", 60), "150.1.2.2", at_s(1));
    out = send_to(s, registration(1, "150.1.7.2", "10.7.0.2", 60, true, "cisco"), "150.1.7.2",
                  at_s(1), 7);
    CHECK(only_packet(out).hdr.type == op::error_indication);
    packet on7 = cisco_request(op::registration_request, flag::reg_u, 2, "150.1.7.2", "10.7.0.2",
                               "10.7.0.1", 255, 60, "other");
    out = send_to(s, on7, "150.1.7.2", at_s(1), 7);
    packet reply = only_packet(out);
    CHECK(reply.cies[0].code == cie_code::success);
    CHECK(find_ext(reply, ext::authentication)->data == bytes{'o', 't', 'h', 'e', 'r'});
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].tunnel == 7);
    CHECK_FALSE(out.events[0].multicast);
    // Same network-id: a spoke on tunnel 7 resolves one registered on tunnel 0.
    packet res = cisco_request(op::resolution_request, flag::res_q, 3, "150.1.7.2", "10.7.0.2",
                               "10.0.0.2", 0, 360, "other");
    out = send_to(s, res, "150.1.7.2", at_s(2), 7);
    CHECK(only_packet(out).cies[0].client_nbma == ipb("150.1.2.2"));

    CHECK(s.multicast_targets(0) ==
          std::vector<uint32_t>{ip("150.1.2.2"), ip("150.1.100.100"), ip("150.1.254.254")});
    CHECK(s.multicast_targets(7).empty());
    // Static entries never expire and are not cleared.
    CHECK(s.tick(at_s(100000)).events.size() == 2);
    CHECK(s.clear(0, std::nullopt, at_s(100001)).events.empty());
    CHECK(s.cache_size() == 1);

    server_config bad;
    tunnel_config t = r1_tunnel();
    t.authentication = "123456789";
    bad.tunnels.push_back(t);
    auto created = server::create(bad);
    REQUIRE_FALSE(created.has_value());
    CHECK(created.error() == config_error::authentication_too_long);
}

TEST_CASE("server: per-source registration rate limit spares the others", "[nhrp_server][limits]") {
    server_config base;
    base.registration_rate_per_s = 2;
    base.registration_burst = 4;
    server s = make_server({r1_tunnel()}, base);
    size_t answered = 0;
    for (int i = 0; i < 50; ++i) {
        answered +=
            send_to(s, registration(1, "150.1.66.66", "10.0.0.66", 60), "150.1.66.66", at_s(0))
                .packets.size();
    }
    CHECK(answered == 4);
    CHECK(s.tunnel_counters(0)->dropped_of(drop_reason::rate_limited) == 46);
    // A legitimate spoke in the middle of the flood is served.
    CHECK(
        only_packet(send_to(s, registration(1, "150.1.3.3", "10.0.0.3", 60), "150.1.3.3", at_s(0)))
            .cies[0]
            .code == cie_code::success);
    // Tokens come back with time: 2 per second.
    answered = 0;
    for (int i = 0; i < 10; ++i) {
        answered +=
            send_to(s, registration(1, "150.1.66.66", "10.0.0.66", 60), "150.1.66.66", at_s(1))
                .packets.size();
    }
    CHECK(answered == 2);
}

TEST_CASE("server: cache cap refuses with code 5 and counts", "[nhrp_server][limits]") {
    tunnel_config t = r1_tunnel();
    t.max_cache_entries = 2;
    server s = make_server({t});
    CHECK(
        only_packet(send_to(s, registration(1, "150.1.2.2", "10.0.0.2", 60), "150.1.2.2", at_s(0)))
            .cies[0]
            .code == 0);
    CHECK(
        only_packet(send_to(s, registration(1, "150.1.3.3", "10.0.0.3", 60), "150.1.3.3", at_s(0)))
            .cies[0]
            .code == 0);
    auto out = send_to(s, registration(1, "150.1.4.4", "10.0.0.4", 60), "150.1.4.4", at_s(0));
    CHECK(only_packet(out).cies[0].code == cie_code::insufficient_resources);
    CHECK(out.events.empty());
    CHECK(s.tunnel_counters(0)->dropped_of(drop_reason::refused_cache_full) == 1);
    // A refresh of a present entry still works at the cap.
    CHECK(
        only_packet(send_to(s, registration(2, "150.1.2.2", "10.0.0.2", 60), "150.1.2.2", at_s(1)))
            .cies[0]
            .code == 0);
    // Addresses outside the tunnel's subnet are refused (administratively prohibited).
    out = send_to(s, registration(1, "150.1.5.5", "10.9.9.9", 60), "150.1.5.5", at_s(0));
    CHECK(only_packet(out).cies[0].code == cie_code::administratively_prohibited);
}

TEST_CASE("server: adjacency events, one per committed change, in order", "[nhrp_server][events]") {
    server s = make_server({r1_tunnel()});
    std::vector<adjacency_event> all;
    auto collect = [&](outputs o) { all.insert(all.end(), o.events.begin(), o.events.end()); };
    collect(send_to(s, registration(1, "150.1.2.2", "10.0.0.2", 60, false), "150.1.2.2", at_s(0)));
    collect(send_to(s, registration(2, "150.1.2.2", "10.0.0.2", 60, false), "150.1.2.2", at_s(10)));
    collect(send_to(s, registration(3, "150.1.2.9", "10.0.0.2", 60, false), "150.1.2.9", at_s(20)));
    collect(send_to(s, registration(4, "150.1.3.3", "10.0.0.3", 60), "150.1.3.3", at_s(20)));
    collect(s.clear(0, ip("10.0.0.3"), at_s(30)));
    collect(s.tick(at_s(79)));
    collect(s.tick(at_s(81)));
    collect(s.tick(at_s(200)));
    std::vector<std::pair<adjacency_change, change_cause>> seen;
    for (const auto& e : all) {
        seen.emplace_back(e.change, e.cause);
    }
    CHECK(seen == std::vector<std::pair<adjacency_change, change_cause>>{
                      {adjacency_change::add, change_cause::registration},
                      {adjacency_change::update, change_cause::registration},
                      {adjacency_change::add, change_cause::registration},
                      {adjacency_change::remove, change_cause::cleared},
                      {adjacency_change::remove, change_cause::expired},
                  });
    CHECK(all[1].nbma == ip("150.1.2.9"));
    CHECK(all[4].nbma == ip("150.1.2.9"));
}

TEST_CASE(
    "server: a request forwarded into another tunnel of the domain leaves with that tunnel's key",
    "[nhrp_server][config]") {
    tunnel_config a = r1_tunnel();
    a.forward_resolution_to_owner = true;
    tunnel_config b = r1_tunnel();
    b.id = 7;
    b.overlay_address = ip("10.7.0.1");
    b.nbma_address = ip("150.7.1.1");
    b.authentication = "other";
    server s = make_server({a, b});
    packet on7 = cisco_request(op::registration_request, flag::reg_u, 2, "150.1.7.2", "10.7.0.2",
                               "10.7.0.1", 255, 60, "other");
    REQUIRE(send_to(s, on7, "150.1.7.2", at_s(0), 7).events.size() == 1);
    auto out = send_to(s, resolution(5, "150.1.3.3", "10.0.0.3", "10.7.0.2"), "150.1.3.3", at_s(1));
    REQUIRE(out.packets.size() == 1);
    CHECK(out.packets[0].tunnel == 7);
    CHECK(out.packets[0].dst_nbma == ip("150.1.7.2"));
    packet fwd = parsed(out.packets[0].packet);
    CHECK(find_ext(fwd, ext::authentication)->data == bytes{'o', 't', 'h', 'e', 'r'});
    REQUIRE(find_ext(fwd, ext::forward_transit)->cies.size() == 1);
    CHECK(find_ext(fwd, ext::forward_transit)->cies[0].client_proto == ipb("10.7.0.1"));
    CHECK(s.tunnel_counters(7)->sent_of(op::resolution_request) == 1);
}

namespace {

// A registration whose CIE names `client`/`prefix` rather than the requester's own address.
packet claiming(uint32_t reqid, std::string_view nbma, std::string_view proto,
                std::string_view client, uint8_t prefix) {
    packet p = registration(reqid, nbma, proto, 360, false);
    p.cies[0].client_proto = ipb(client);
    p.cies[0].prefix_length = prefix;
    return p;
}

uint8_t code_of(const outputs& out) { return only_packet(out).cies.at(0).code; }

}  // namespace

TEST_CASE("server: a registration binds the requester's own address, nothing it does not own",
          "[nhrp_server][hardening]") {
    server s = make_server({r1_tunnel()});
    send_to(s, registration(1, "150.1.2.2", "10.0.0.2", 360), "150.1.2.2", at_s(0));
    const counters& c = *s.tunnel_counters(0);

    // A client address outside the tunnel's subnet, and another spoke's host: not its own.
    auto out =
        send_to(s, claiming(2, "150.1.3.3", "10.0.0.3", "10.9.9.9", 32), "150.1.3.3", at_s(1));
    CHECK(code_of(out) == cie_code::administratively_prohibited);
    CHECK(out.events.empty());
    out = send_to(s, claiming(3, "150.1.3.3", "10.0.0.3", "10.0.0.2", 255), "150.1.3.3", at_s(1));
    CHECK(code_of(out) == cie_code::administratively_prohibited);
    CHECK(s.lookup(0, ip("10.0.0.2"))->nbma == ip("150.1.2.2"));
    CHECK(c.dropped_of(drop_reason::refused_address) == 2);

    // Prefixes with no `registration-prefixes`: 0.0.0.0/1, the hub's LAN, a /8.
    for (auto [client, len] : {std::pair<std::string_view, uint8_t>{"0.0.0.0", 1},
                               {"172.16.0.0", 24},
                               {"10.0.0.0", 8}}) {
        out = send_to(s, claiming(4, "150.1.3.3", "10.0.0.3", client, len), "150.1.3.3", at_s(2));
        CHECK(code_of(out) == cie_code::administratively_prohibited);
        CHECK(out.events.empty());
    }
    CHECK(c.dropped_of(drop_reason::refused_prefix) == 3);
    CHECK(s.cache_size() == 1);

    // Its own address, as IOS (255) and FRR (32) send it: accepted.
    CHECK(code_of(send_to(s, claiming(5, "150.1.3.3", "10.0.0.3", "10.0.0.3", 32), "150.1.3.3",
                          at_s(3))) == cie_code::success);
    CHECK(s.lookup(0, ip("10.0.0.3")).has_value());
}

TEST_CASE("server: registration-prefixes allow a spoke's networks, never over others'",
          "[nhrp_server][hardening]") {
    tunnel_config t = r1_tunnel();
    // Wider than a loader would accept (it overlaps the overlay subnet): the server refuses
    // what lies over the spokes' host bindings by itself.
    t.registration_prefixes = {prefix{ip("192.168.0.0"), 16}, prefix{ip("10.0.0.0"), 8}};
    server s = make_server({t});
    const counters& c = *s.tunnel_counters(0);

    auto out =
        send_to(s, claiming(1, "150.1.2.2", "10.0.0.2", "192.168.3.0", 24), "150.1.2.2", at_s(0));
    CHECK(code_of(out) == cie_code::success);
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].overlay == ip("192.168.3.0"));
    CHECK(out.events[0].prefix_len == 24);
    // Resolution for a host in it finds the prefix (longest match).
    out = send_to(s, resolution(2, "150.1.3.3", "10.0.0.3", "192.168.3.77"), "150.1.3.3", at_s(1));
    CHECK(only_packet(out).cies[0].client_nbma == ipb("150.1.2.2"));
    CHECK(only_packet(out).cies[0].prefix_length == 24);

    // Another spoke: over the first one's prefix (wider, narrower, the same) is refused.
    for (auto [client, len] : {std::pair<std::string_view, uint8_t>{"192.168.0.0", 16},
                               {"192.168.3.128", 25},
                               {"192.168.3.0", 24}}) {
        out = send_to(s, claiming(3, "150.1.3.3", "10.0.0.3", client, len), "150.1.3.3", at_s(2));
        CHECK(code_of(out) == cie_code::administratively_prohibited);
        CHECK(out.events.empty());
    }
    CHECK(c.dropped_of(drop_reason::refused_overlap) == 3);
    // Over the overlay subnet, where other spokes' hosts are, even though 10/8 is allowed.
    out = send_to(s, claiming(4, "150.1.3.3", "10.0.0.3", "10.0.0.0", 24), "150.1.3.3", at_s(2));
    CHECK(code_of(out) == cie_code::administratively_prohibited);
    out = send_to(s, claiming(5, "150.1.3.3", "10.0.0.3", "10.0.0.0", 16), "150.1.3.3", at_s(2));
    CHECK(code_of(out) == cie_code::administratively_prohibited);
    CHECK(c.dropped_of(drop_reason::refused_prefix) == 2);
    // Outside the allow-list.
    out = send_to(s, claiming(6, "150.1.3.3", "10.0.0.3", "172.16.0.0", 24), "150.1.3.3", at_s(2));
    CHECK(code_of(out) == cie_code::administratively_prohibited);
    CHECK(c.dropped_of(drop_reason::refused_prefix) == 3);
    // Its own prefix elsewhere in the allowed range, and the owner re-registering its own
    // prefix shorter: accepted.
    CHECK(code_of(send_to(s, claiming(7, "150.1.3.3", "10.0.0.3", "192.168.4.0", 24), "150.1.3.3",
                          at_s(3))) == cie_code::success);
    out = send_to(s, claiming(8, "150.1.2.2", "10.0.0.2", "192.168.3.0", 25), "150.1.2.2", at_s(3));
    // The /24 goes (10.0.0.3, which resolved it, is purged), the /25 comes.
    REQUIRE(out.packets.size() == 2);
    CHECK(parsed(out.packets[0].packet).hdr.type == op::purge_request);
    CHECK(out.packets[0].dst_nbma == ip("150.1.3.3"));
    CHECK(parsed(out.packets[1].packet).cies[0].code == cie_code::success);
    REQUIRE(out.events.size() == 2);
    CHECK(out.events[0].change == adjacency_change::remove);
    CHECK(out.events[0].prefix_len == 24);
    CHECK(out.events[1].prefix_len == 25);
    CHECK(s.lookup(0, ip("192.168.3.0"))->prefix_len == 25);
}

TEST_CASE("server: registration rates per tunnel and in all, fresh buckets, other packets",
          "[nhrp_server][hardening]") {
    auto from = [](int i) {
        return "150.2." + std::to_string(i / 200) + "." + std::to_string(i % 200 + 1);
    };
    auto proto = [](int i) { return "10.0.0." + std::to_string(i % 250 + 2); };
    SECTION("per tunnel") {
        tunnel_config t = r1_tunnel();
        t.registration_rate_per_s = 3;
        server s = make_server({t});
        size_t answered = 0;
        for (int i = 0; i < 10; ++i) {
            answered +=
                send_to(s, registration(1, from(i), proto(i), 60), from(i), at_s(0)).packets.size();
        }
        CHECK(answered == 3);
        CHECK(s.tunnel_counters(0)->dropped_of(drop_reason::registration_tunnel_rate_limited) == 7);
        // Three a second come back.
        answered =
            send_to(s, registration(1, from(20), proto(20), 60), from(20), at_s(1)).packets.size();
        CHECK(answered == 1);
    }
    SECTION("all tunnels together") {
        tunnel_config a = r1_tunnel();
        tunnel_config b = r1_tunnel();
        b.id = 7;
        b.overlay_address = ip("10.7.0.1");
        b.nbma_address = ip("150.1.1.7");
        server_config base;
        base.global_registration_rate_per_s = 4;
        server s = make_server({a, b}, base);
        size_t answered = 0;
        for (int i = 0; i < 6; ++i) {
            answered +=
                send_to(s, registration(1, from(i), proto(i), 60), from(i), at_s(0)).packets.size();
            packet on7 =
                cisco_request(op::registration_request, flag::reg_u, 1, from(i + 50),
                              "10.7.0." + std::to_string(i + 2), "10.7.0.1", 255, 60, "cisco");
            answered += send_to(s, on7, from(i + 50), at_s(0), 7).packets.size();
        }
        CHECK(answered == 4);
        CHECK(s.total_counters().dropped_of(drop_reason::registration_global_rate_limited) == 8);
    }
    SECTION("a flood of new sources gets one request each once fresh buckets run out") {
        server_config base;
        base.registration_rate_per_s = 2;
        base.registration_burst = 4;
        base.fresh_buckets_per_s = 10;
        tunnel_config t = r1_tunnel();
        t.registration_rate_per_s = 0;  // only the per-source buckets here
        server s = make_server({t}, base);
        size_t answered = 0;
        for (int i = 0; i < 100; ++i) {
            for (int k = 0; k < 5; ++k) {
                answered += send_to(s, registration(1, from(i), proto(i), 60), from(i), at_s(0))
                                .packets.size();
            }
        }
        // The first 10 sources a full bucket (4), the other 90 one request each.
        CHECK(answered == 10 * 4 + 90 * 1);
        CHECK(s.tunnel_counters(0)->dropped_of(drop_reason::rate_limited) == 500 - 130);
    }
    SECTION("Resolution, Purge and replies: per source and per tunnel") {
        server_config base;
        base.packet_rate_per_s = 2;
        base.packet_burst = 3;
        tunnel_config t = r1_tunnel();
        t.packet_rate_per_s = 5;
        server s = make_server({t}, base);
        size_t answered = 0;
        for (int i = 0; i < 10; ++i) {
            answered +=
                send_to(s,
                        resolution(static_cast<uint32_t>(i), "150.1.3.3", "10.0.0.3", "10.0.0.99"),
                        "150.1.3.3", at_s(0))
                    .packets.size();
        }
        CHECK(answered == 3);
        CHECK(s.tunnel_counters(0)->dropped_of(drop_reason::packet_rate_limited) == 7);
        // Other sources share the tunnel's 5 a second: 2 left.
        answered = 0;
        for (int i = 0; i < 4; ++i) {
            packet purge = cisco_request(op::purge_request, 0, 9, from(i), proto(i), "10.0.0.1", 32,
                                         0, "cisco");
            answered += send_to(s, purge, from(i), at_s(0)).packets.size();
        }
        CHECK(answered == 2);
        CHECK(s.tunnel_counters(0)->dropped_of(drop_reason::packet_tunnel_rate_limited) == 2);
        packet stray = resolution(1, "150.1.4.4", "10.0.0.4", "10.0.0.3");
        stray.hdr.type = op::resolution_reply;
        CHECK(send_to(s, stray, "150.1.4.4", at_s(0)).packets.empty());
        CHECK(s.tunnel_counters(0)->dropped_of(drop_reason::packet_tunnel_rate_limited) == 3);
    }
}

TEST_CASE("server: cache entries per NBMA address and CIEs per request are capped",
          "[nhrp_server][hardening]") {
    tunnel_config t = r1_tunnel();
    t.max_entries_per_nbma = 2;
    server_config base;
    base.max_cies_per_request = 2;
    server s = make_server({t}, base);
    const counters& c = *s.tunnel_counters(0);
    // Three spokes behind one NAT address: the third is refused (code 5).
    for (int i = 2; i <= 3; ++i) {
        std::string proto = "10.0.0." + std::to_string(i);
        CHECK(code_of(send_to(s, registration(1, "192.168.1.1", proto, 60, false), "203.0.113.7",
                              at_s(0))) == cie_code::success);
    }
    auto out =
        send_to(s, registration(1, "192.168.1.1", "10.0.0.4", 60, false), "203.0.113.7", at_s(0));
    CHECK(code_of(out) == cie_code::insufficient_resources);
    CHECK(out.events.empty());
    CHECK(s.entries_of_nbma(ip("203.0.113.7")) == 2);
    // Nor may an entry move onto the full address.
    send_to(s, registration(1, "150.1.5.5", "10.0.0.5", 60, false), "150.1.5.5", at_s(0));
    out = send_to(s, registration(2, "192.168.1.1", "10.0.0.5", 60, false), "203.0.113.7", at_s(1));
    CHECK(code_of(out) == cie_code::insufficient_resources);
    CHECK(s.lookup(0, ip("10.0.0.5"))->nbma == ip("150.1.5.5"));
    CHECK(c.dropped_of(drop_reason::refused_nbma_full) == 2);
    // One expires (the other refreshes): room again.
    send_to(s, registration(3, "192.168.1.1", "10.0.0.2", 60, false), "203.0.113.7", at_s(40));
    s.tick(at_s(61));
    CHECK(s.entries_of_nbma(ip("203.0.113.7")) == 1);
    CHECK(code_of(send_to(s, registration(4, "192.168.1.1", "10.0.0.4", 60, false), "203.0.113.7",
                          at_s(62))) == cie_code::success);

    // Three CIEs where two are allowed: the third is answered with code 5.
    packet many = registration(5, "150.1.6.6", "10.0.0.6", 60);
    many.cies.push_back(many.cies[0]);
    many.cies.push_back(many.cies[0]);
    packet reply = only_packet(send_to(s, many, "150.1.6.6", at_s(63)));
    REQUIRE(reply.cies.size() == 3);
    CHECK(reply.cies[0].code == cie_code::success);
    CHECK(reply.cies[1].code == cie_code::success);
    CHECK(reply.cies[2].code == cie_code::insufficient_resources);
    CHECK(c.dropped_of(drop_reason::too_many_cies) == 1);
    // A Purge Request's CIEs past the cap are left alone (and counted); the rest act.
    packet purge =
        cisco_request(op::purge_request, 0, 9, "150.1.6.6", "10.0.0.6", "10.0.0.1", 32, 0, "cisco");
    purge.cies.push_back(purge.cies[0]);
    purge.cies.push_back(purge.cies[0]);
    out = send_to(s, purge, "150.1.6.6", at_s(64));
    CHECK(only_packet(out).hdr.type == op::purge_reply);
    CHECK_FALSE(s.lookup(0, ip("10.0.0.6")).has_value());
    CHECK(c.dropped_of(drop_reason::too_many_cies) == 2);
}

TEST_CASE("server: holding times are clamped, refreshes leave one timer per entry",
          "[nhrp_server][hardening]") {
    tunnel_config t = r1_tunnel();
    t.holdtime_min_s = 30;
    t.holdtime_max_s = 600;
    server s = make_server({t});
    packet reply =
        only_packet(send_to(s, registration(1, "150.1.2.2", "10.0.0.2", 5), "150.1.2.2", at_s(0)));
    CHECK(reply.cies[0].holding_time == 30);  // the reply says what was kept
    CHECK(s.lookup(0, ip("10.0.0.2"))->holding_time == 30);
    reply = only_packet(
        send_to(s, registration(1, "150.1.3.3", "10.0.0.3", 9000, false), "150.1.3.3", at_s(0)));
    CHECK(reply.cies[0].holding_time == 600);
    CHECK(*s.lookup(0, ip("10.0.0.3"))->expires == at_s(600));
    CHECK(s.tunnel_counters(0)->holdtime_clamped == 2);
    CHECK(s.timers() == 2);

    // Refreshes that bring the expiry closer, push it later, and change the NBMA (no unique
    // flag): each entry keeps one timer.
    send_to(s, registration(2, "150.1.3.3", "10.0.0.3", 100, false), "150.1.3.3", at_s(1));
    CHECK(s.timers() == 2);
    send_to(s, registration(3, "150.1.3.3", "10.0.0.3", 50, false), "150.1.3.3", at_s(2));
    CHECK(s.timers() == 2);
    send_to(s, registration(4, "150.1.3.3", "10.0.0.3", 500, false), "150.1.3.3", at_s(3));
    CHECK(s.timers() == 2);
    for (int i = 0; i < 5; ++i) {
        std::string nbma = "150.1.9." + std::to_string(i + 1);
        send_to(s, registration(5, nbma, "10.0.0.3", static_cast<uint16_t>(60 - i), false), nbma,
                at_s(4));
    }
    CHECK(s.timers() == 2);
    // The entry still expires when its last registration says (4 + 56 s), not before
    // (10.0.0.2, clamped to 30 s, went at 30).
    auto removed = [](const outputs& out, std::string_view who) {
        return std::any_of(out.events.begin(), out.events.end(), [&](const adjacency_event& e) {
            return e.overlay == ip(who) && e.change == adjacency_change::remove;
        });
    };
    CHECK(removed(s.tick(at_s(31)), "10.0.0.2"));
    CHECK_FALSE(removed(s.tick(at_s(59)), "10.0.0.3"));
    CHECK(removed(s.tick(at_s(61)), "10.0.0.3"));
    CHECK(s.timers() == 0);
    // A purged entry leaves no timer behind.
    send_to(s, registration(6, "150.1.4.4", "10.0.0.4", 300), "150.1.4.4", at_s(62));
    CHECK(s.timers() == 1);
    packet purge =
        cisco_request(op::purge_request, 0, 9, "150.1.4.4", "10.0.0.4", "10.0.0.1", 32, 0, "cisco");
    send_to(s, purge, "150.1.4.4", at_s(63));
    CHECK(s.cache_size() == 0);
    CHECK(s.timers() == 0);
}

TEST_CASE("server: a Resolution Reply is forwarded only for a request the hub forwarded",
          "[nhrp_server][hardening]") {
    tunnel_config t = r1_tunnel();
    t.forward_resolution_to_owner = true;  // Phase 3: the owner answers
    server_config base;
    base.forwarded_timeout = std::chrono::seconds(5);
    server s = make_server({t}, base);
    send_to(s, registration(1, "150.1.2.2", "10.0.0.2", 360), "150.1.2.2", at_s(0));
    send_to(s, registration(1, "150.1.3.3", "10.0.0.3", 360), "150.1.3.3", at_s(0));
    const counters& c = *s.tunnel_counters(0);

    auto answer_to = [](const packet& fwd) {
        packet a = fwd;
        a.hdr.type = op::resolution_reply;
        a.hdr.hop_count = 255;
        a.cies[0].prefix_length = 32;
        a.cies[0].client_nbma = ipb("150.1.2.2");
        a.cies[0].client_proto = ipb("10.0.0.2");
        return a;
    };
    // Nobody asked: a reply "from" 10.0.0.2 telling 10.0.0.3 where 10.0.0.9 is, dropped.
    packet forged = answer_to(resolution(40, "150.1.3.3", "10.0.0.3", "10.0.0.9"));
    CHECK(send_to(s, forged, "150.1.2.2", at_s(1)).packets.empty());
    CHECK(c.dropped_of(drop_reason::unmatched_reply) == 1);

    // 10.0.0.3 asks for 10.0.0.2: forwarded to its owner, whose answer goes back once.
    auto out =
        send_to(s, resolution(41, "150.1.3.3", "10.0.0.3", "10.0.0.2"), "150.1.3.3", at_s(1));
    REQUIRE(out.packets.size() == 1);
    CHECK(out.packets[0].dst_nbma == ip("150.1.2.2"));
    packet answer = answer_to(parsed(out.packets[0].packet));
    packet other_id = answer;
    other_id.request_id = 42;
    CHECK(send_to(s, other_id, "150.1.2.2", at_s(2)).packets.empty());
    out = send_to(s, answer, "150.1.2.2", at_s(2));
    REQUIRE(out.packets.size() == 1);
    CHECK(out.packets[0].dst_nbma == ip("150.1.3.3"));
    CHECK(send_to(s, answer, "150.1.2.2", at_s(2)).packets.empty());  // one reply per request
    CHECK(c.dropped_of(drop_reason::unmatched_reply) == 3);

    // Remembered for a bounded time only.
    out = send_to(s, resolution(43, "150.1.3.3", "10.0.0.3", "10.0.0.2"), "150.1.3.3", at_s(3));
    REQUIRE(out.packets.size() == 1);
    answer = answer_to(parsed(out.packets[0].packet));
    CHECK(send_to(s, answer, "150.1.2.2", at_s(9)).packets.empty());
    CHECK(c.dropped_of(drop_reason::unmatched_reply) == 4);
}

TEST_CASE("server: a peer whose IKE SA died loses its registrations, requesters purged",
          "[nhrp_server][peer_down]") {
    tunnel_config t = r1_tunnel();
    t.static_maps.push_back(static_map{ip("10.0.0.254"), 32, ip("150.1.2.2"), false});
    server s = make_server({t});
    s.start(at_s(0));
    send_to(s, registration(1, "150.1.2.2", "10.0.0.2", 360), "150.1.2.2", at_s(0));
    send_to(s, registration(2, "150.1.2.2", "10.0.0.5", 360), "150.1.2.2", at_s(0));
    send_to(s, registration(1, "150.1.3.3", "10.0.0.3", 360), "150.1.3.3", at_s(0));
    send_to(s, resolution(77, "150.1.3.3", "10.0.0.3", "10.0.0.2"), "150.1.3.3", at_s(1));
    REQUIRE(s.entries_of_nbma(ip("150.1.2.2")) == 2);

    // Another NBMA, another tunnel: nothing happens.
    CHECK(s.forget_peer(0, ip("150.1.9.9"), at_s(2)).events.empty());
    CHECK(s.forget_peer(5, ip("150.1.2.2"), at_s(2)).events.empty());

    auto out = s.forget_peer(0, ip("150.1.2.2"), at_s(2));
    REQUIRE(out.events.size() == 2);
    std::vector<uint32_t> gone;
    for (const auto& e : out.events) {
        CHECK(e.change == adjacency_change::remove);
        CHECK(e.cause == change_cause::peer_down);
        CHECK(e.nbma == ip("150.1.2.2"));
        gone.push_back(e.overlay);
    }
    std::sort(gone.begin(), gone.end());
    CHECK(gone == std::vector<uint32_t>{ip("10.0.0.2"), ip("10.0.0.5")});
    // R3 had resolved 10.0.0.2: it is told to forget it.
    REQUIRE(out.packets.size() == 1);
    CHECK(out.packets[0].dst_nbma == ip("150.1.3.3"));
    packet purge = parsed(out.packets[0].packet);
    CHECK(purge.hdr.type == op::purge_request);
    REQUIRE(purge.cies.size() == 1);
    CHECK(purge.cies[0].client_proto == ipb("10.0.0.2"));

    CHECK_FALSE(s.lookup(0, ip("10.0.0.2")).has_value());
    CHECK_FALSE(s.lookup(0, ip("10.0.0.5")).has_value());
    CHECK(s.lookup(0, ip("10.0.0.3")).has_value());
    CHECK(s.lookup(0, ip("10.0.0.254")).has_value());  // static maps stay
    CHECK(s.entries_of_nbma(ip("150.1.2.2")) == 0);
    CHECK(s.forget_peer(0, ip("150.1.2.2"), at_s(3)).events.empty());
    // The spoke comes back with a fresh IKE SA and registers again.
    out = send_to(s, registration(3, "150.1.2.2", "10.0.0.2", 360), "150.1.2.2", at_s(4));
    CHECK(only_packet(out).cies[0].code == cie_code::success);
}
