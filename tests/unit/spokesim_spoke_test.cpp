// The emulated spoke's NHRP logic against the NHRP codec and captures of real Cisco/FRR spokes:
// registration building, reply checks, TI -> resolution -> shortcut, forwarded resolutions.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "control/nhrp/packet.hpp"
#include "tools/spokesim/spoke.hpp"

using namespace dmvpn;
using namespace dmvpn::spokesim;

namespace {

constexpr uint64_t sec = 1'000'000;

ipv4 ip(const char* s) { return *parse_ipv4(s); }

std::string captures_dir() {
    const char* d = std::getenv("DMVPN_TESTDATA");
    return std::string(d != nullptr ? d : "tests/data") + "/captures/";
}

// The frames of a little-endian pcap or pcapng file (Enhanced Packet Blocks). Test-side reading
// of trusted files: enough to find the bytes to compare against.
std::vector<std::vector<uint8_t>> frames_of(const std::string& file) {
    std::ifstream in(captures_dir() + file, std::ios::binary);
    std::vector<uint8_t> b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    REQUIRE(b.size() > 24);
    auto le32 = [&](size_t at) {
        return uint32_t{b[at]} | uint32_t{b[at + 1]} << 8 | uint32_t{b[at + 2]} << 16 |
               uint32_t{b[at + 3]} << 24;
    };
    std::vector<std::vector<uint8_t>> out;
    if (le32(0) == 0x0a0d0d0a) {
        for (size_t at = 0; at + 12 <= b.size();) {
            uint32_t type = le32(at);
            uint32_t len = le32(at + 4);
            REQUIRE(len >= 12);
            if (type == 6) {
                uint32_t cap = le32(at + 20);
                out.emplace_back(b.begin() + static_cast<long>(at + 28),
                                 b.begin() + static_cast<long>(at + 28 + cap));
            }
            at += len;
        }
        return out;
    }
    REQUIRE(le32(0) == 0xa1b2c3d4);
    for (size_t at = 24; at + 16 <= b.size();) {
        size_t len = le32(at + 8);
        out.emplace_back(b.begin() + static_cast<long>(at + 16),
                         b.begin() + static_cast<long>(at + 16 + len));
        at += 16 + len;
    }
    return out;
}

// The NHRP payloads (GRE protocol 0x2001) of the Ethernet frames in a capture.
std::vector<std::vector<uint8_t>> nhrp_payloads(const std::string& file) {
    std::vector<std::vector<uint8_t>> out;
    for (const auto& b : frames_of(file)) {
        size_t l3 = 12;
        uint16_t et = static_cast<uint16_t>(b[l3] << 8 | b[l3 + 1]);
        if (et == 0x8100) {
            l3 += 4;
            et = static_cast<uint16_t>(b[l3] << 8 | b[l3 + 1]);
        }
        l3 += 2;
        if (et != 0x0800 || b[l3 + 9] != 47) {
            continue;
        }
        size_t total = static_cast<size_t>(b[l3 + 2] << 8 | b[l3 + 3]);
        size_t gre = l3 + (b[l3] & 0x0f) * 4;
        uint16_t gflags = static_cast<uint16_t>(b[gre] << 8 | b[gre + 1]);
        uint16_t proto = static_cast<uint16_t>(b[gre + 2] << 8 | b[gre + 3]);
        size_t payload = gre + 4 + ((gflags & 0x8000) ? 4 : 0) + ((gflags & 0x2000) ? 4 : 0) +
                         ((gflags & 0x1000) ? 4 : 0);
        if (proto == 0x2001) {
            out.emplace_back(b.begin() + static_cast<long>(payload),
                             b.begin() + static_cast<long>(l3 + total));
        }
    }
    return out;
}

nhrp::packet parsed(const std::vector<uint8_t>& bytes) {
    auto p = nhrp::parse(bytes);
    REQUIRE(p);
    return *p;
}

std::vector<uint8_t> built(const nhrp::packet& p) {
    auto b = nhrp::build(p);
    REQUIRE(b);
    return *b;
}

spoke_identity ident(const char* nbma, const char* overlay, const char* lan = "172.16.0.0/24") {
    spoke_identity id;
    id.index = 0;
    id.nbma = ip(nbma);
    id.overlay = ip(overlay);
    id.lan = *parse_prefix(lan);
    return id;
}

// What a hub sends back: the request's mandatory part with the CIE code set, its own address in
// the Responder extension (the shape of the replies in the Cisco captures).
nhrp::packet hub_reply(const nhrp::packet& req, ipv4 hub_nbma, ipv4 hub_overlay, uint8_t code = 0) {
    nhrp::packet r = req;
    r.hdr.type = nhrp::op::registration_reply;
    r.cies.front().code = code;
    for (auto& e : r.extensions) {
        if (e.type == nhrp::ext::responder_address) {
            nhrp::cie c;
            c.prefix_length = 32;
            c.mtu = 1514;
            c.holding_time = 7200;
            c.client_nbma = to_bytes(hub_nbma);
            c.client_proto = to_bytes(hub_overlay);
            e.cies.push_back(c);
        }
    }
    return parsed(built(r));  // through the codec, checksum included
}

nhrp_settings cisco(const char* hub_nbma, const char* hub_overlay) {
    nhrp_settings s;
    s.hub_nbma = ip(hub_nbma);
    s.hub_overlay = ip(hub_overlay);
    return s;
}

}  // namespace

TEST_CASE("registration is byte for byte an IOS spoke's (NAT extension, auth, GRE key 2)",
          "[spokesim]") {
    auto cap = nhrp_payloads("cisco-ios-nhrp-regreq-regreply-natext-auth-NHRPAUTH-grekey2.pcap");
    REQUIRE(cap.size() == 4);
    nhrp_settings s = cisco("169.254.100.5", "155.1.0.5");
    s.cie_prefix = 32;
    s.mtu = 17912;
    s.holdtime = 7200;
    s.auth = "NHRPAUTH";
    auto id = ident("169.254.100.1", "155.1.0.1");
    CHECK(built(build_registration_request(id, s, 1, false)) == cap[0]);
}

TEST_CASE("registration is byte for byte an IOS 12.4 spoke's (unique, prefix 255, no NAT)",
          "[spokesim]") {
    auto cap = nhrp_payloads("cisco-ios-nhrp-regreq-auth-CISCO-nogrekey.pcap");
    REQUIRE(cap.size() == 1);
    nhrp_settings s = cisco("10.0.12.1", "192.168.0.1");
    s.nat_extension = false;
    s.holdtime = 30;
    s.auth = "CISCO";
    auto id = ident("10.0.12.2", "192.168.0.2");
    CHECK(built(build_registration_request(id, s, 5, false)) == cap[0]);
}

TEST_CASE("FRR-style registration matches FRR 8.4's, before and after the hub is known",
          "[spokesim]") {
    auto cap = nhrp_payloads("frr-8.4-spoke-registration-requests.pcap");
    REQUIRE(cap.size() == 2);
    nhrp_settings s = cisco("198.51.100.1", "10.255.0.1");
    s.style = nhrp_style::frr;
    s.unique = false;
    s.cie_prefix = 32;
    s.holdtime = 60;
    auto id = ident("198.51.100.2", "10.255.0.2");
    auto first = parsed(cap[0]);
    CHECK(built(build_registration_request(id, s, first.request_id, false)) == cap[0]);
    auto second = parsed(cap[1]);
    CHECK(built(build_registration_request(id, s, second.request_id, true)) == cap[1]);
}

TEST_CASE("registration: sent when due, checked, refreshed at holdtime/3, retransmitted",
          "[spokesim]") {
    nhrp_settings s = cisco("100.64.0.1", "10.255.0.1");
    s.holdtime = 60;
    s.refresh = 20;
    s.auth = "secret";
    spoke sp(ident("100.64.0.2", "10.255.0.2"), s);
    sp.start(5 * sec);
    CHECK_FALSE(sp.poll(4 * sec));
    auto first = sp.poll(5 * sec);
    REQUIRE(first);
    CHECK(first->nbma_dst == s.hub_nbma);
    const nhrp::packet& req = first->pkt;
    CHECK(req.hdr.type == nhrp::op::registration_request);
    CHECK(req.hdr.hop_count == 255);
    CHECK(req.flags == (nhrp::flag::reg_u | nhrp::flag::cisco_nat));
    CHECK(req.cies.at(0).prefix_length == 255);
    CHECK(req.cies.at(0).holding_time == 60);
    CHECK(from_bytes(req.dst_proto) == s.hub_overlay);

    // Unanswered: the same request ID comes again after 1 s, then after 2 s more.
    CHECK_FALSE(sp.poll(5 * sec + 900'000));
    auto again = sp.poll(6 * sec);
    REQUIRE(again);
    CHECK(again->pkt.request_id == req.request_id);
    CHECK_FALSE(sp.poll(7 * sec));
    REQUIRE(sp.poll(8 * sec));
    CHECK(sp.counters().registration_retransmits == 2);
    CHECK_FALSE(sp.registered(8 * sec));

    SECTION("a good reply registers; the refresh comes holdtime/3 later with a new ID") {
        CHECK(sp.last_registration_rtt_us() == 0);
        CHECK(sp.on_registration_reply(hub_reply(req, s.hub_nbma, s.hub_overlay), 8 * sec) ==
              verdict::accepted);
        // Timed from the first transmission (5 s), retransmissions included.
        CHECK(sp.last_registration_rtt_us() == 3 * sec);
        CHECK(sp.registered(8 * sec));
        CHECK(sp.registered(67 * sec));
        CHECK_FALSE(sp.registered(68 * sec));
        CHECK_FALSE(sp.poll(27 * sec));
        auto refresh = sp.poll(28 * sec);
        REQUIRE(refresh);
        CHECK(refresh->pkt.request_id != req.request_id);
        CHECK(sp.counters().registration_replies == 1);
    }
    SECTION("each registration is timed from its own first transmission") {
        REQUIRE(sp.on_registration_reply(hub_reply(req, s.hub_nbma, s.hub_overlay), 8 * sec) ==
                verdict::accepted);
        auto refresh = sp.poll(28 * sec);
        REQUIRE(refresh);
        CHECK(sp.on_registration_reply(hub_reply(refresh->pkt, s.hub_nbma, s.hub_overlay),
                                       28 * sec + 250) == verdict::accepted);
        CHECK(sp.last_registration_rtt_us() == 250);
        CHECK(sp.counters().registration_replies == 2);
        return;  // two replies here: the check below counts one
    }
    SECTION("a reply with another request ID is refused") {
        auto r = hub_reply(req, s.hub_nbma, s.hub_overlay);
        r.request_id += 1;
        CHECK(sp.on_registration_reply(r, 8 * sec) == verdict::request_id_mismatch);
        CHECK_FALSE(sp.registered(8 * sec));
    }
    SECTION("a refusal by the hub (CIE code 14, unique address already registered)") {
        CHECK(sp.on_registration_reply(hub_reply(req, s.hub_nbma, s.hub_overlay, 14), 8 * sec) ==
              verdict::rejected);
        CHECK(sp.last_reject() == verdict::rejected);
    }
    SECTION("a responder that is not our hub") {
        CHECK(sp.on_registration_reply(hub_reply(req, ip("100.64.0.9"), s.hub_overlay), 8 * sec) ==
              verdict::hub_mismatch);
    }
    SECTION("a reply without our password") {
        auto r = req;
        for (auto& e : r.extensions) {
            if (e.type == nhrp::ext::authentication) {
                e.data = {'w', 'r', 'o', 'n', 'g'};
            }
        }
        CHECK(sp.on_registration_reply(hub_reply(r, s.hub_nbma, s.hub_overlay), 8 * sec) ==
              verdict::auth_mismatch);
    }
    SECTION("a reply for another spoke") {
        auto r = req;
        r.src_proto = to_bytes(ip("10.255.0.3"));
        CHECK(sp.on_registration_reply(hub_reply(r, s.hub_nbma, s.hub_overlay), 8 * sec) ==
              verdict::source_mismatch);
    }
    CHECK(sp.counters().registration_replies + sp.counters().registration_rejects == 1);
}

TEST_CASE("a corrupted reply never reaches the spoke: the codec refuses its checksum",
          "[spokesim]") {
    nhrp_settings s = cisco("100.64.0.1", "10.255.0.1");
    auto req = build_registration_request(ident("100.64.0.2", "10.255.0.2"), s, 1, false);
    auto bytes = built(hub_reply(req, s.hub_nbma, s.hub_overlay));
    bytes[30] ^= 0x40;
    auto p = nhrp::parse(bytes);
    REQUIRE_FALSE(p);
    CHECK(p.error() == nhrp::parse_error::bad_checksum);
}

TEST_CASE("Phase 3 as in the IOS capture: TI -> Resolution Request, forwarded request -> reply",
          "[spokesim]") {
    auto cap = nhrp_payloads(
        "cisco-ios-nhrp-phase3-traffic-indication-resreq-forwarded-resreply-grekey1000.pcap");
    REQUIRE(cap.size() == 4);
    nhrp_settings s = cisco("192.168.200.1", "10.255.255.1");
    s.auth = "secret";
    s.holdtime = 7200;
    s.mtu = 1514;

    // Spoke .3 receives the Traffic Indication and asks the hub for 10.255.255.2.
    spoke s3(ident("192.168.200.3", "10.255.255.3"), s);
    auto ti = parsed(cap[0]);
    auto rq = s3.handle(ti, 10 * sec);
    REQUIRE(rq);
    CHECK(rq->nbma_dst == s.hub_nbma);
    CHECK(from_bytes(rq->pkt.dst_proto) == ip("10.255.255.2"));
    // The capture's request ID was 5; with it the bytes are IOS's.
    auto ios = rq->pkt;
    ios.request_id = parsed(cap[1]).request_id;
    CHECK(built(ios) == cap[1]);
    // A second TI for the same destination while the first is pending asks nothing more.
    CHECK_FALSE(s3.handle(ti, 10 * sec + 500'000));

    // Spoke .2 receives the request the hub forwarded and answers .3 directly, as IOS did.
    spoke s2(ident("192.168.200.2", "10.255.255.2"), s);
    auto fwd = parsed(cap[2]);
    auto answer = s2.handle(fwd, 10 * sec);
    REQUIRE(answer);
    CHECK(answer->nbma_dst == ip("192.168.200.3"));
    CHECK(built(answer->pkt) == cap[3]);
    CHECK(s2.counters().resolution_requests_answered == 1);

    // .3 takes .2's answer (with its own request ID) and installs the shortcut.
    auto reply = answer->pkt;
    reply.request_id = rq->pkt.request_id;
    CHECK(s3.on_resolution_reply(parsed(built(reply)), 10 * sec) == verdict::accepted);
    const shortcut* sc = s3.find_shortcut(ip("10.255.255.2"), 11 * sec);
    REQUIRE(sc != nullptr);
    CHECK(sc->nbma == ip("192.168.200.2"));
    CHECK(sc->overlay == ip("10.255.255.2"));
    CHECK(sc->dst == *parse_prefix("10.255.255.2/32"));
    CHECK_FALSE(s3.find_shortcut(ip("10.255.255.4"), 11 * sec));
    CHECK_FALSE(s3.find_shortcut(ip("10.255.255.2"), 10 * sec + 7200 * sec));
    CHECK(s3.counters().shortcuts_installed == 1);
    // With the shortcut in place another TI changes nothing.
    CHECK_FALSE(s3.handle(ti, 12 * sec));
    CHECK(s3.last_reject() == verdict::already_resolved);

    SECTION("a purge naming .2 removes the shortcut and is answered") {
        nhrp::packet purge;
        purge.hdr.type = nhrp::op::purge_request;
        purge.request_id = 77;
        purge.src_nbma = to_bytes(s.hub_nbma);
        purge.src_proto = to_bytes(s.hub_overlay);
        purge.dst_proto = to_bytes(ip("10.255.255.3"));
        nhrp::cie c;
        c.prefix_length = 32;
        c.client_proto = to_bytes(ip("10.255.255.2"));
        purge.cies.push_back(c);
        nhrp::extension auth;
        auth.type = nhrp::ext::authentication;
        auth.compulsory = true;
        auth.auth_spi = 1;
        auth.data = {'s', 'e', 'c', 'r', 'e', 't'};
        purge.extensions = {auth};
        purge.has_extension_area = true;
        auto pr = s3.handle(parsed(built(purge)), 13 * sec);
        REQUIRE(pr);
        CHECK(pr->nbma_dst == s.hub_nbma);
        CHECK(pr->pkt.hdr.type == nhrp::op::purge_reply);
        CHECK(pr->pkt.request_id == 77);
        CHECK_FALSE(s3.find_shortcut(ip("10.255.255.2"), 13 * sec));
        CHECK(s3.counters().purges_received == 1);
    }
}

TEST_CASE("resolution replies that do not fit are refused", "[spokesim]") {
    nhrp_settings s = cisco("100.64.0.1", "10.255.0.1");
    spoke a(ident("100.64.0.2", "10.255.0.2", "172.16.0.0/24"), s);
    spoke b(ident("100.64.0.3", "10.255.0.3", "172.16.1.0/24"), s);

    nhrp::packet ti;
    ti.hdr.type = nhrp::op::traffic_indication;
    ti.src_nbma = to_bytes(s.hub_nbma);
    ti.src_proto = to_bytes(s.hub_overlay);
    ti.dst_proto = to_bytes(ip("172.16.0.1"));
    // IPv4 header of the triggering packet 172.16.0.1 -> 172.16.1.1 (+ 8 bytes).
    ti.contents = {0x45, 0, 0,   48, 0, 1, 0, 0, 64, 17, 0, 0,  172, 16,
                   0,    1, 172, 16, 1, 1, 0, 9, 0,  9,  0, 28, 0,   0};
    SECTION("no request outstanding") {
        auto r =
            b.on_resolution_request(build_resolution_request(a.id(), s, ip("172.16.1.1"), 9), 0);
        REQUIRE(r);
        CHECK(a.on_resolution_reply(r->pkt, 0) == verdict::no_request_outstanding);
    }
    SECTION("a LAN destination resolves to the whole LAN prefix") {
        auto rq = a.handle(parsed(built(ti)), 0);
        REQUIRE(rq);
        CHECK(from_bytes(rq->pkt.dst_proto) == ip("172.16.1.1"));
        auto r = b.handle(parsed(built(rq->pkt)), 0);
        REQUIRE(r);
        CHECK(r->pkt.cies.at(0).prefix_length == 24);
        CHECK(a.handle(parsed(built(r->pkt)), 0) == std::nullopt);
        const shortcut* sc = a.find_shortcut(ip("172.16.1.200"), 1);
        REQUIRE(sc != nullptr);
        CHECK(sc->nbma == b.id().nbma);
    }
    SECTION("a refused binding installs nothing") {
        auto rq = a.handle(ti, 0);
        REQUIRE(rq);
        auto r = b.on_resolution_request(rq->pkt, 0);
        REQUIRE(r);
        r->pkt.cies.at(0).code = nhrp::cie_code::administratively_prohibited;
        CHECK(a.on_resolution_reply(r->pkt, 0) == verdict::rejected);
        CHECK(a.shortcuts().empty());
    }
    SECTION("a request for an address the spoke does not own is not answered") {
        auto r =
            a.on_resolution_request(build_resolution_request(b.id(), s, ip("172.16.9.1"), 3), 0);
        CHECK_FALSE(r);
        CHECK(a.last_reject() == verdict::not_for_this_spoke);
    }
    SECTION("a TI about a packet that is not ours, or with shortcuts off, asks nothing") {
        auto other = ti;
        other.contents[15] = 99;  // source 172.16.0.99 is ours (LAN); make it foreign
        other.contents[14] = 9;
        CHECK_FALSE(a.handle(other, 0));
        CHECK(a.last_reject() == verdict::bad_traffic_indication);
        nhrp_settings off = s;
        off.shortcuts = false;
        spoke c(ident("100.64.0.2", "10.255.0.2", "172.16.0.0/24"), off);
        CHECK_FALSE(c.handle(ti, 0));
        CHECK(c.last_reject() == verdict::shortcuts_disabled);
    }
}
