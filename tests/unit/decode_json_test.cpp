// dmvpn-decode's engine: the fields of a packet built here, and the named error at each layer.
// (tests/decode_vs_tshark.py compares the same engine with tshark on every capture.)
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "control/nhrp/packet.hpp"
#include "dataplane/wire/gre.hpp"
#include "dataplane/wire/ipv4.hpp"
#include "dataplane/wire/pcap_file.hpp"
#include "tools/decode_json.hpp"

namespace pcap = dmvpn::wire::pcap;
namespace nhrp = dmvpn::nhrp;
namespace wire = dmvpn::wire;
using bytes = std::vector<uint8_t>;

namespace {

bytes registration() {
    nhrp::packet p;
    p.hdr.type = nhrp::op::registration_request;
    p.flags = nhrp::flag::reg_u | nhrp::flag::cisco_nat;
    p.request_id = 77;
    p.src_nbma = wire::ipv4_bytes(0xc6336402);   // 198.51.100.2
    p.src_proto = wire::ipv4_bytes(0x0aff0002);  // 10.255.0.2
    p.dst_proto = wire::ipv4_bytes(0x0aff0001);  // 10.255.0.1
    nhrp::cie c;
    c.prefix_length = 32;
    c.holding_time = 7200;
    p.cies.push_back(c);
    nhrp::extension auth;
    auth.compulsory = true;
    auth.type = nhrp::ext::authentication;
    auth.auth_spi = 1;
    auth.data = {'k', 'e', 'y'};
    nhrp::extension end;
    end.compulsory = true;
    end.type = nhrp::ext::end;
    p.extensions = {auth, end};
    auto b = nhrp::build(p);
    REQUIRE(b);
    return *b;
}

// A raw-IP frame: IPv4, GRE with key 42, then `payload` as NHRP.
bytes frame(const bytes& payload) {
    wire::gre_header g;
    g.key_present = true;
    g.key = 42;
    g.protocol = wire::gre_proto::nhrp;
    bytes gre(g.header_length());
    REQUIRE(wire::encode_gre(g, gre) == gre.size());
    gre.insert(gre.end(), payload.begin(), payload.end());
    wire::ipv4_header h;
    h.total_length = static_cast<uint16_t>(20 + gre.size());
    h.ttl = 64;
    h.protocol = wire::ip_proto::gre;
    h.src = 0xc6336402;
    h.dst = 0xc6336401;
    bytes out(20);
    REQUIRE(wire::encode_ipv4(h, {}, out) == 20);
    out.insert(out.end(), gre.begin(), gre.end());
    return out;
}

dmvpn::decode::decoded decode(const bytes& data, uint16_t link = pcap::linktype::raw) {
    pcap::record r;
    r.number = 3;
    r.link_type = link;
    r.ts = {1700000000, 5};
    r.original_length = static_cast<uint32_t>(data.size());
    r.data = data;
    return dmvpn::decode::decode_record(r);
}

bool has(const std::string& json, const std::string& part) {
    return json.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("an NHRP registration in GRE decodes to Wireshark's field names") {
    const auto f = frame(registration());
    auto d = decode(f);
    CAPTURE(d.json);
    CHECK(d.nhrp);
    CHECK_FALSE(d.failed);
    CHECK(d.json.front() == '{');
    CHECK(d.json.back() == '}');
    CHECK(has(d.json, R"("frame.number":3,"frame.time_epoch":"1700000000.000000005")"));
    CHECK(has(d.json, R"("ip.src":"198.51.100.2","ip.dst":"198.51.100.1")"));
    CHECK(has(d.json, R"("ip.proto":47)"));
    CHECK(has(d.json, R"("gre.proto":8193,"gre.key":42)"));
    CHECK(has(d.json, R"("nhrp.hdr.op.type":3)"));
    CHECK(has(d.json, R"("nhrp.flag.u":true,"nhrp.flag.nat":true,"nhrp.reqid":77)"));
    CHECK(has(d.json, R"("nhrp.src.nbma.addr":"198.51.100.2")"));
    CHECK(has(d.json, R"("nhrp.src.prot.addr":"10.255.0.2","nhrp.dst.prot.addr":"10.255.0.1")"));
    CHECK(has(d.json, R"("nhrp.prefix":[32])"));
    CHECK(has(d.json, R"("nhrp.htime":[7200])"));
    CHECK(has(d.json, R"("nhrp.ext.c":[true,true],"nhrp.ext.type":[7,0],"nhrp.ext.len":[7,0])"));
    CHECK(has(d.json, R"("nhrp.auth_ext.spi":[1],"nhrp.auth_ext.data":["6b:65:79"])"));
    CHECK_FALSE(has(d.json, "\"error\""));
}

TEST_CASE("each layer's failure is named and stops the decoding there") {
    SECTION("NHRP with a bad checksum") {
        auto nh = registration();
        nh[13] ^= 0x01;
        auto d = decode(frame(nh));
        CAPTURE(d.json);
        CHECK(d.nhrp);
        CHECK(d.failed);
        CHECK(has(d.json, R"("gre.key":42,"error":"bad_checksum"})"));
    }
    SECTION("a truncated IPv4 header") {
        auto f = frame(registration());
        f.resize(10);
        auto d = decode(f);
        CHECK_FALSE(d.nhrp);
        CHECK(d.failed);
        CHECK(has(d.json, R"("error":"truncated")"));
    }
    SECTION("an unsupported link type") {
        auto d = decode(frame(registration()), 147);
        CHECK(d.failed);
        CHECK(has(d.json, R"("error":"unsupported_link_type")"));
    }
    SECTION("a UDP header cut short") {
        wire::ipv4_header h;
        h.total_length = 24;
        h.protocol = wire::ip_proto::udp;
        bytes f(20);
        REQUIRE(wire::encode_ipv4(h, {}, f) == 20);
        f.insert(f.end(), {0x11, 0x94, 0x11, 0x94});
        auto d = decode(f);
        CHECK_FALSE(d.nhrp);
        CHECK(has(d.json, R"("error":"truncated_udp_header")"));
    }
}

namespace {

// A raw-IP frame: IPv4, UDP from and to `port`, then `payload`.
bytes udp_frame(uint16_t port, const bytes& payload) {
    wire::ipv4_header h;
    h.total_length = static_cast<uint16_t>(20 + 8 + payload.size());
    h.ttl = 64;
    h.protocol = wire::ip_proto::udp;
    bytes out(20);
    REQUIRE(wire::encode_ipv4(h, {}, out) == 20);
    const auto ulen = static_cast<uint16_t>(8 + payload.size());
    const auto hi = static_cast<uint8_t>(port >> 8);
    const auto lo = static_cast<uint8_t>(port);
    out.insert(out.end(),
               {hi, lo, hi, lo, static_cast<uint8_t>(ulen >> 8), static_cast<uint8_t>(ulen), 0, 0});
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
}

// An IKEv2 header (RFC 7296 section 3.1): SPIs 1 and 0, first payload `next`, IKE_SA_INIT
// request, message ID 0, Length `length`.
bytes ike_header(uint8_t next, uint32_t length) {
    bytes h = {0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, next, 0x20, 34, 0x08, 0, 0, 0, 0};
    h.insert(h.end(), {static_cast<uint8_t>(length >> 24), static_cast<uint8_t>(length >> 16),
                       static_cast<uint8_t>(length >> 8), static_cast<uint8_t>(length)});
    return h;
}

}  // namespace

TEST_CASE("IKEv2 on UDP 500 and 4500: fields, and hostile messages refused with a reason") {
    // A Nonce payload of 16 bytes, alone.
    bytes ike = ike_header(40, 28 + 20);
    ike.insert(ike.end(), {0, 0, 0, 20});
    ike.insert(ike.end(), 16, 0x5a);
    SECTION("UDP 500") {
        auto d = decode(udp_frame(500, ike));
        CAPTURE(d.json);
        CHECK_FALSE(d.failed);
        CHECK(has(d.json, R"("isakmp.ispi":"00:00:00:00:00:00:00:01")"));
        CHECK(has(d.json, R"("isakmp.nextpayload":[40,0])"));
        CHECK(has(d.json, R"("isakmp.exchangetype":34,"isakmp.flags":8,"isakmp.flag_i":true)"));
        CHECK(has(d.json, R"("isakmp.length":48,"isakmp.typepayload":[40])"));
        CHECK(has(d.json, R"("isakmp.payloadlength":[20],"isakmp.nonce":["5a:5a:)"));
    }
    SECTION("UDP 4500 after the non-ESP marker") {
        bytes natt = {0, 0, 0, 0};
        natt.insert(natt.end(), ike.begin(), ike.end());
        auto d = decode(udp_frame(4500, natt));
        CAPTURE(d.json);
        CHECK_FALSE(d.failed);
        CHECK(has(d.json, R"("isakmp.length":48)"));
        CHECK_FALSE(has(d.json, "esp.spi"));
    }
    SECTION("a Length that lies") {
        ike[27] = 200;
        auto d = decode(udp_frame(500, ike));
        CHECK(d.failed);
        CHECK(has(d.json, R"("udp.checksum":0,"error":"length_mismatch"})"));
    }
    SECTION("a payload running past the message") {
        ike[31] = 40;
        auto d = decode(udp_frame(500, ike));
        CHECK(d.failed);
        CHECK(has(d.json, R"("isakmp.length":48,"error":"truncated_payload"})"));
    }
    SECTION("a header cut short: the non-ESP marker and nothing after it") {
        auto d = decode(udp_frame(4500, bytes{0, 0, 0, 0}));
        CHECK(d.failed);
        CHECK(has(d.json, R"("error":"truncated_header")"));
    }
    SECTION("ISAKMP (version 0x10) goes through the IKEv1 codec, on 500 and after the marker") {
        ike[16] = 10;  // ISAKMP's Nonce
        ike[17] = 0x10;
        bytes natt = {0, 0, 0, 0};
        natt.insert(natt.end(), ike.begin(), ike.end());
        for (const auto& frame : {udp_frame(500, ike), udp_frame(4500, natt)}) {
            auto d = decode(frame);
            CAPTURE(d.json);
            CHECK_FALSE(d.failed);
            CHECK(has(d.json, R"("isakmp.version":16,"isakmp.mjver":1,"isakmp.mnver":0)"));
            CHECK(has(d.json, R"("isakmp.flag_e":false,"isakmp.flag_c":false)"));
            CHECK(has(d.json, R"("isakmp.typepayload":[10],"isakmp.payloadlength":[20])"));
            CHECK(has(d.json, R"("isakmp.nonce":["5a:5a:)"));
            CHECK_FALSE(has(d.json, "isakmp.flag_i"));
        }
    }
    SECTION("a hostile ISAKMP message is refused with reason, payload and offset") {
        ike[16] = 10;
        ike[17] = 0x10;
        ike[31] = 7;  // a Nonce of 3 octets (RFC 2409: 8..256)
        auto d = decode(udp_frame(500, ike));
        CHECK(d.failed);
        CHECK(has(d.json,
                  R"("isakmp.length":48,"error":"bad_payload_length in NONCE at offset 32"})"));
    }
}

TEST_CASE("json_object: scalars, arrays in insertion order, escaping") {
    dmvpn::decode::json_object o;
    o.set("a", uint64_t{1});
    o.append("b", true);
    o.append("b", std::string("x\"y\\z\n"));
    o.set("c", std::string("plain"));
    CHECK(o.str() == R"({"a":1,"b":[true,"x\"y\\z\u000a"],"c":"plain"})");
    CHECK(o.has("b"));
    CHECK_FALSE(o.has("d"));
}

namespace {

const std::string fragmented =
    "/captures/strongswan/strongswan-5.9.8-ikev2-cert-rsa2048-aes256-"
    "sha256-modp2048-fragmented";

std::string testdata(const std::string& name) {
    const char* dir = std::getenv("DMVPN_TESTDATA");
    REQUIRE(dir != nullptr);
    std::ifstream f(std::string(dir) + name, std::ios::binary);
    REQUIRE(f);
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

// The capture's records, decoded in the order `order` gives (frame numbers, 1-based) with one
// fragment store; the JSON of each, by frame number.
std::vector<std::string> decode_capture(const dmvpn::decode::keys* k,
                                        std::vector<size_t> order = {}) {
    const std::string file = testdata(fragmented + ".pcap");
    const bytes data(file.begin(), file.end());
    auto reader = pcap::file_reader::open(data);
    REQUIRE(reader);
    std::vector<pcap::record> records;
    for (;;) {
        auto r = reader->next();
        REQUIRE(r);
        if (!*r) {
            break;
        }
        records.push_back(**r);
    }
    if (order.empty()) {
        for (size_t i = 1; i <= records.size(); ++i) {
            order.push_back(i);
        }
    }
    dmvpn::decode::ike_fragments frags;
    std::vector<std::string> out(records.size());
    for (size_t n : order) {
        out.at(n - 1) = dmvpn::decode::decode_record(records.at(n - 1), k, &frags).json;
    }
    return out;
}

dmvpn::decode::keys table(bool change_a_key = false) {
    std::string text = testdata(fragmented + ".ikev2_decryption_table");
    if (change_a_key) {
        // The first row's SK_ai (6th field): one hex digit changed.
        size_t at = 0;
        while (text[at] == '#') {
            at = text.find('\n', at) + 1;
        }
        for (int commas = 0; commas < 5; ++commas) {
            at = text.find(',', at) + 1;
        }
        text[at] = text[at] == '0' ? '1' : '0';
    }
    auto rows = dmvpn::ike::keylog::parse_ikev2_table(text);
    REQUIRE(rows);
    return dmvpn::decode::keys{std::move(*rows)};
}

}  // namespace

TEST_CASE("IKEv2 fragments (SKF): each verified, the message decoded where it completes") {
    // strongSwan's IKE_AUTH request in frames 3 and 4, its response in 5 and 6 (2 fragments each).
    const auto keys = table();
    const auto json = decode_capture(&keys);
    REQUIRE(json.size() == 6);
    for (size_t f : {3, 4, 5, 6}) {
        CAPTURE(f, json[f - 1]);
        CHECK(has(json[f - 1], R"("isakmp.frag.number":)" + std::to_string(2 - f % 2)));
        CHECK(has(json[f - 1], R"("isakmp.frag.total":2)"));
        CHECK_FALSE(has(json[f - 1], "decrypt_error"));
    }
    // The first fragments show no inner payload; the last ones the whole message's.
    CHECK(has(json[2], R"("isakmp.typepayload":[53],)"));
    CHECK(has(json[4], R"("isakmp.typepayload":[53],)"));
    // IDi, CERT, CERTREQ, AUTH, N, SA, TSi, TSr, N, N, N (tshark's frame 4).
    CHECK(has(json[3], R"("isakmp.typepayload":[53,35,37,38,39,41,33,44,45,41,41,41,2,3,3,3])"));
    CHECK(has(json[5], R"("isakmp.typepayload":[53,36,37,39)"));
    CHECK(has(json[3], R"("isakmp.id.type":[9])"));

    // Out of order: the request completes with its first fragment.
    const auto swapped = decode_capture(&keys, {1, 2, 4, 3, 6, 5});
    CHECK(has(swapped[3], R"("isakmp.typepayload":[53],)"));
    CHECK(has(swapped[2], R"("isakmp.typepayload":[53,35,37,38,39,41,33,44,45,41,41,41,2,3,3,3])"));
    CHECK(has(swapped[4], R"("isakmp.typepayload":[53,36,37,39)"));

    // With one byte of SK_ai changed none of the initiator's fragments verifies and nothing of
    // its message is put together; the responder's (SK_ar) still are.
    const auto bad = table(true);
    const auto forged = decode_capture(&bad);
    for (size_t f : {3, 4}) {
        CAPTURE(f, forged[f - 1]);
        CHECK(
            has(forged[f - 1], R"("dmvpn.ike.decrypt_error":"fragment's integrity check failed")"));
        CHECK(has(forged[f - 1], R"("isakmp.typepayload":[53],)"));
    }
    CHECK_FALSE(has(forged[5], "decrypt_error"));
    CHECK(has(forged[5], R"("isakmp.typepayload":[53,36,37,39)"));
    // Without keys the fragments stay encrypted, their numbers shown.
    const auto plain = decode_capture(nullptr);
    CHECK(has(plain[3], R"("isakmp.typepayload":[53],)"));
    CHECK(has(plain[3], R"("isakmp.frag.number":2,"isakmp.frag.total":2)"));
}

TEST_CASE("ike_fragments: bounded, the oldest IKE SA's message forgotten first") {
    dmvpn::decode::ike_fragments f;
    auto* first = &f.of(1, 2, true);
    CHECK(&f.of(1, 2, true) == first);
    CHECK(&f.of(1, 2, false) != first);
    for (uint64_t i = 0; i < 2 * dmvpn::decode::ike_fragments::max_messages; ++i) {
        f.of(100 + i, 7, true);
    }
    CHECK(f.size() == dmvpn::decode::ike_fragments::max_messages);
}
