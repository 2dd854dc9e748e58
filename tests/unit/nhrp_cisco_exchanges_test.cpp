// The packets of a Cisco IOS 12.4 registration and resolution (tests/data/cisco-ios-exchanges.md)
// built with our builder from the recorded fields: the sizes IOS reports must come out exactly,
// and each packet must decode back to what was built.
#include <catch2/catch.hpp>

#include <string_view>

#include "control/nhrp/packet.hpp"
#include "dataplane/wire/checksum.hpp"

namespace nhrp = dmvpn::nhrp;
using nhrp::bytes;
using nhrp::op;

namespace {

// Hub R1 and spokes R2, R3 of the walk-through.
const bytes hub_nbma{150, 1, 1, 1};
const bytes hub_proto{10, 0, 0, 1};
const bytes r2_nbma{150, 1, 2, 2};
const bytes r2_proto{10, 0, 0, 2};
const bytes r3_nbma{150, 1, 3, 3};
const bytes r3_proto{10, 0, 0, 3};
constexpr std::string_view password = "cisco";
constexpr uint16_t cisco_mtu = 1514;

// Sizes, worked out from RFC 2332:
//  fixed header                                              20
//  mandatory fields: proto lens 2, flags 2, request ID 4       8
//  src NBMA (IPv4) 4, subaddress 0, src proto 4, dst proto 4  12   -> addresses end at 40
//  one CIE without client addresses                          12   -> ext_offset 52
//  extensions: Responder 4 (empty), Forward 4, Reverse 4,
//              Authentication 4 + reserved 2 + SPI 2 + "cisco" 5 = 13, End 4   29
//  request total                                             81
// A CIE naming an IPv4 client adds 4 (NBMA) + 4 (protocol) = 8 to its 12: 20.
constexpr size_t fixed = 20;
constexpr size_t mandatory_fields = 8;
constexpr size_t addresses = 4 + 0 + 4 + 4;
constexpr size_t bare_cie = 12;
constexpr size_t addressed_cie = bare_cie + 4 + 4;
constexpr size_t ext_header = 4;
constexpr size_t auth_ext = ext_header + 2 + 2 + password.size();
constexpr size_t request_extensions = 4 * ext_header + auth_ext;  // Resp, Fwd, Rev, End + Auth
constexpr size_t request_size =
    fixed + mandatory_fields + addresses + bare_cie + request_extensions;
static_assert(request_size == 81);
// Registration Reply: the request, plus one CIE in the Responder Address extension (the hub).
constexpr size_t registration_reply_size = request_size + addressed_cie;
static_assert(registration_reply_size == 101);
// Resolution Reply: the answering CIE carries the client's NBMA and protocol addresses (+8),
// and the Responder Address extension carries the hub (+20).
constexpr size_t resolution_reply_size = request_size + (addressed_cie - bare_cie) + addressed_cie;
static_assert(resolution_reply_size == 109);

nhrp::cie make_cie(uint8_t prefix, uint16_t hold, bytes nbma = {}, bytes proto = {}) {
    nhrp::cie c;
    c.code = nhrp::cie_code::success;
    c.prefix_length = prefix;
    c.mtu = cisco_mtu;
    c.holding_time = hold;
    c.client_nbma = std::move(nbma);
    c.client_proto = std::move(proto);
    return c;
}

nhrp::extension ext(uint16_t type, std::vector<nhrp::cie> cies = {}) {
    nhrp::extension e;
    e.type = type;
    e.compulsory = true;  // IOS sets C on all of them (0x8003, 0x8004, 0x8005, 0x8007, 0x8000)
    e.cies = std::move(cies);
    return e;
}

// The extension list of the captured 81-byte IOS request, with the Responder Address filled
// in by the answering hub where `responder` is given.
std::vector<nhrp::extension> ios_extensions(std::string_view pass,
                                            std::vector<nhrp::cie> responder = {}) {
    nhrp::extension auth = ext(nhrp::ext::authentication);
    auth.auth_reserved = 0;
    auth.auth_spi = 1;
    auth.data = bytes(pass.begin(), pass.end());
    return {ext(nhrp::ext::responder_address, std::move(responder)),
            ext(nhrp::ext::forward_transit), ext(nhrp::ext::reverse_transit), auth,
            ext(nhrp::ext::end)};
}

nhrp::packet base(op type, uint16_t flags, uint32_t reqid, const bytes& src_nbma,
                  const bytes& src_proto, const bytes& dst_proto) {
    nhrp::packet p;
    p.hdr.type = type;
    p.hdr.hop_count = 255;
    p.flags = flags;
    p.request_id = reqid;
    p.src_nbma = src_nbma;
    p.src_proto = src_proto;
    p.dst_proto = dst_proto;
    return p;
}

nhrp::cie hub_responder(uint16_t hold) { return make_cie(32, hold, hub_nbma, hub_proto); }

uint16_t get16(const bytes& b, size_t at) {
    return static_cast<uint16_t>((b.at(at) << 8) | b.at(at + 1));
}

bytes slice(const bytes& b, size_t at, size_t n) {
    return bytes(b.begin() + static_cast<long>(at), b.begin() + static_cast<long>(at + n));
}

struct built_packet {
    bytes wire;
    nhrp::packet back;
};

// Builds, checks the common fixed-header facts of the record (afn 1, 0x0800, version 1,
// shtl 4, sstl 0, checksum), and decodes back.
built_packet build_and_decode(const nhrp::packet& p) {
    auto w = nhrp::build(p);
    REQUIRE(w);
    const bytes wire = *w;
    CHECK(get16(wire, 0) == nhrp::afn_ipv4);
    CHECK(get16(wire, 2) == nhrp::pro_ipv4);
    CHECK(wire[9] == 255);
    CHECK(get16(wire, 10) == wire.size());
    CHECK(wire[16] == nhrp::version_1);
    CHECK(wire[17] == static_cast<uint8_t>(p.hdr.type));
    CHECK(wire[18] == 4);
    CHECK(wire[19] == 0);
    CHECK(dmvpn::wire::inet_checksum(wire) == 0);
    auto back = nhrp::parse(wire);
    REQUIRE(back);
    // Decoded back: the model, with the computed header fields.
    nhrp::packet expect = p;
    expect.hdr.packet_size = static_cast<uint16_t>(wire.size());
    expect.hdr.checksum = get16(wire, 12);
    expect.hdr.ext_offset = get16(wire, 14);
    expect.hdr.shtl = 4;
    expect.has_extension_area = true;
    CHECK(*back == expect);
    auto again = nhrp::build(*back);
    REQUIRE(again);
    CHECK(*again == wire);
    return {wire, *back};
}

// The extension area as IOS lays it out: Responder (len = responder), Forward 0, Reverse 0,
// Authentication 9 = 00000001 "cisco", End 0.
void check_ios_extension_area(const bytes& wire, size_t at, size_t responder_len) {
    CHECK(get16(wire, 14) == at);
    CHECK(get16(wire, at) == 0x8003);
    CHECK(get16(wire, at + 2) == responder_len);
    at += ext_header + responder_len;
    CHECK(slice(wire, at, 8) == bytes{0x80, 0x04, 0, 0, 0x80, 0x05, 0, 0});
    at += 8;
    CHECK(get16(wire, at) == 0x8007);
    CHECK(get16(wire, at + 2) == 9);
    CHECK(slice(wire, at + 4, 9) == bytes{0, 0, 0, 1, 'c', 'i', 's', 'c', 'o'});
    at += auth_ext;
    CHECK(slice(wire, at, 4) == bytes{0x80, 0x00, 0, 0});
    CHECK(at + 4 == wire.size());
}

}  // namespace

TEST_CASE("our builder reproduces the captured IOS 81-byte registration request exactly",
          "[nhrp][cisco]") {
    // tests/data/captures/cisco-ios-nhrp-regreq-auth-CISCO-nogrekey.pcap, frame 1 (NHRP bytes):
    // the layout the record's 81-byte requests share, rebuilt from its fields alone.
    const bytes captured{0x00, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x51,
                         0xe8, 0xe4, 0x00, 0x34, 0x01, 0x03, 0x04, 0x00, 0x04, 0x04, 0x80, 0x00,
                         0x00, 0x00, 0x00, 0x05, 0x0a, 0x00, 0x0c, 0x02, 0xc0, 0xa8, 0x00, 0x02,
                         0xc0, 0xa8, 0x00, 0x01, 0x00, 0xff, 0x00, 0x00, 0x05, 0xea, 0x00, 0x1e,
                         0x00, 0x00, 0x00, 0x00, 0x80, 0x03, 0x00, 0x00, 0x80, 0x04, 0x00, 0x00,
                         0x80, 0x05, 0x00, 0x00, 0x80, 0x07, 0x00, 0x09, 0x00, 0x00, 0x00, 0x01,
                         0x43, 0x49, 0x53, 0x43, 0x4f, 0x80, 0x00, 0x00, 0x00};
    nhrp::packet p = base(op::registration_request, nhrp::flag::reg_u, 5, {10, 0, 12, 2},
                          {192, 168, 0, 2}, {192, 168, 0, 1});
    p.cies = {make_cie(255, 30)};
    p.extensions = ios_extensions("CISCO");
    auto w = nhrp::build(p);
    REQUIRE(w);
    CHECK(*w == captured);
}

TEST_CASE("IOS registration: 81-byte request, 101-byte reply", "[nhrp][cisco]") {
    // Spoke R3 -> hub: hop 255, flags "unique", reqid 26, one CIE prefix 255 / mtu 1514 /
    // holding time 60, no client addresses.
    nhrp::packet req =
        base(op::registration_request, nhrp::flag::reg_u, 26, r3_nbma, r3_proto, hub_proto);
    req.cies = {make_cie(255, 60)};
    req.extensions = ios_extensions(password);
    const auto [req_wire, req_back] = build_and_decode(req);
    REQUIRE(req_wire.size() == request_size);
    CHECK(get16(req_wire, 22) == 0x8000);  // U
    CHECK(req_back.request_id == 26);
    CHECK(slice(req_wire, 28, 4) == r3_nbma);
    CHECK(slice(req_wire, 32, 4) == r3_proto);
    CHECK(slice(req_wire, 36, 4) == hub_proto);
    // CIE at 40: code 0, prefix 255, unused, mtu 1514, hold 60, no addresses.
    CHECK(slice(req_wire, 40, 12) == bytes{0, 255, 0, 0, 0x05, 0xea, 0x00, 60, 0, 0, 0, 0});
    check_ios_extension_area(req_wire, 52, 0);

    // Hub -> R3: the request's mandatory part unchanged (reqid mirrored), CIE code success, and
    // the Responder Address extension filled with one CIE naming the hub: 81 + 20 = 101.
    nhrp::packet reply = req;
    reply.hdr.type = op::registration_reply;
    reply.hdr.checksum = 0;
    reply.extensions = ios_extensions(password, {hub_responder(60)});
    const auto [rep_wire, rep_back] = build_and_decode(reply);
    REQUIRE(rep_wire.size() == registration_reply_size);
    CHECK(rep_wire.size() - req_wire.size() == 20);
    CHECK(rep_back.hdr.type == op::registration_reply);
    CHECK(rep_back.flags == nhrp::flag::reg_u);
    CHECK(rep_back.request_id == 26);
    CHECK(rep_back.src_nbma == r3_nbma);
    CHECK(rep_back.src_proto == r3_proto);
    CHECK(rep_back.dst_proto == hub_proto);
    REQUIRE(rep_back.cies.size() == 1);
    CHECK(rep_back.cies[0].code == nhrp::cie_code::success);
    CHECK(rep_back.cies[0].prefix_length == 255);
    CHECK(rep_back.cies[0].mtu == 1514);
    CHECK(rep_back.cies[0].holding_time == 60);
    // The mandatory part is byte for byte the request's (only type and checksum differ before).
    CHECK(slice(rep_wire, 20, 32) == slice(req_wire, 20, 32));
    check_ios_extension_area(rep_wire, 52, addressed_cie);
    const auto& responder = rep_back.extensions.at(0);
    REQUIRE(responder.cies.size() == 1);
    CHECK(responder.cies[0].client_nbma == hub_nbma);
    CHECK(responder.cies[0].client_proto == hub_proto);
    // Responder CIE on the wire: T/L 4, subaddress 0, proto len 4, then 150.1.1.1, 10.0.0.1.
    CHECK(slice(rep_wire, 56 + 8, 12) == bytes{4, 0, 4, 0, 150, 1, 1, 1, 10, 0, 0, 1});
}

TEST_CASE("IOS resolution answered by the hub: 81-byte request, 109-byte reply", "[nhrp][cisco]") {
    constexpr uint16_t q_a_s = nhrp::flag::res_q | nhrp::flag::res_a | nhrp::flag::res_s;
    constexpr uint16_t q_a_d_u_s = q_a_s | nhrp::flag::res_d | nhrp::flag::res_u;
    static_assert(q_a_s == 0xc800 && q_a_d_u_s == 0xf800);

    struct exchange {
        const char* who;
        const bytes& nbma;
        const bytes& proto;
        const bytes& target_nbma;
        const bytes& target_proto;
        uint32_t reqid;
        uint16_t hold_left;
    };
    // R3 asks for R2 (reqid 994, 342 s left of R2's registration); the mirror: R2 asks for R3.
    const exchange exchanges[] = {
        {"R3 resolves R2", r3_nbma, r3_proto, r2_nbma, r2_proto, 994, 342},
        {"R2 resolves R3", r2_nbma, r2_proto, r3_nbma, r3_proto, 1012, 242},
    };
    for (const auto& x : exchanges) {
        INFO(x.who);
        // Spoke -> hub: flags "router auth src-stable", CIE prefix 0 / mtu 1514 / hold 360.
        nhrp::packet req =
            base(op::resolution_request, q_a_s, x.reqid, x.nbma, x.proto, x.target_proto);
        req.cies = {make_cie(0, 360)};
        req.extensions = ios_extensions(password);
        const auto [req_wire, req_back] = build_and_decode(req);
        REQUIRE(req_wire.size() == request_size);
        CHECK(get16(req_wire, 22) == 0xc800);
        CHECK(req_back.request_id == x.reqid);
        CHECK(req_back.cies.at(0).holding_time == 360);
        CHECK(req_back.cies.at(0).prefix_length == 0);
        check_ios_extension_area(req_wire, 52, 0);

        // Hub -> spoke: flags "router auth dst-stable unique src-stable", the same mandatory
        // addresses, a CIE prefix 32 naming the target's NBMA and protocol address (+8), and the
        // Responder Address naming the hub (+20): 81 + 28 = 109.
        nhrp::packet reply =
            base(op::resolution_reply, q_a_d_u_s, x.reqid, x.nbma, x.proto, x.target_proto);
        reply.cies = {make_cie(32, x.hold_left, x.target_nbma, x.target_proto)};
        reply.extensions = ios_extensions(password, {hub_responder(360)});
        const auto [rep_wire, rep_back] = build_and_decode(reply);
        REQUIRE(rep_wire.size() == resolution_reply_size);
        CHECK(get16(rep_wire, 22) == 0xf800);
        CHECK(rep_back.request_id == x.reqid);
        CHECK(rep_back.src_nbma == x.nbma);
        CHECK(rep_back.src_proto == x.proto);
        CHECK(rep_back.dst_proto == x.target_proto);
        REQUIRE(rep_back.cies.size() == 1);
        const auto& answer = rep_back.cies[0];
        CHECK(answer.code == nhrp::cie_code::success);
        CHECK(answer.prefix_length == 32);
        CHECK(answer.mtu == 1514);
        CHECK(answer.holding_time == x.hold_left);
        CHECK(answer.client_nbma == x.target_nbma);
        CHECK(answer.client_proto == x.target_proto);
        // The answering CIE is 20 bytes at 40, so the extensions start at 60.
        CHECK(slice(rep_wire, 40 + 8, 4) == bytes{4, 0, 4, 0});
        CHECK(slice(rep_wire, 52, 4) == x.target_nbma);
        CHECK(slice(rep_wire, 56, 4) == x.target_proto);
        check_ios_extension_area(rep_wire, 60, addressed_cie);
        CHECK(rep_back.extensions.at(0).cies.at(0).client_nbma == hub_nbma);
        CHECK(rep_back.extensions.at(0).cies.at(0).client_proto == hub_proto);
    }
}
