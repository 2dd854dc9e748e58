// IKEv2 message codec (control/ike/message.hpp): real messages from captures checked against
// what tshark 4.0 prints for them, byte-exact round trips, every refusal reached by a crafted
// message, and the builder against layouts assembled by hand from RFC 7296 section 3.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "control/ike/message.hpp"
#include "dataplane/wire/ipv4.hpp"
#include "tests/unit/crypto_test_support.hpp"
#include "tests/unit/ike_capture_support.hpp"

using namespace dmvpn;
using ike::bytes;
using ike::parse_error;
using ike::payload_type;

namespace {

using crypto_test::cat;
using crypto_test::hdr;
using crypto_test::hex;
using crypto_test::pl;
using crypto_test::udp_payloads;

template <typename T>
const T& nth(const ike::message& m, size_t i) {
    REQUIRE(i < m.payloads.size());
    const T* p = std::get_if<T>(&m.payloads[i]);
    REQUIRE(p != nullptr);
    return *p;
}

std::vector<payload_type> types(const ike::message& m) {
    std::vector<payload_type> out;
    for (const auto& p : m.payloads) {
        out.push_back(ike::type_of(p));
    }
    return out;
}

ike::transform tf(ike::transform_type t, uint16_t id, std::optional<uint16_t> bits = {}) {
    ike::transform x;
    x.type = t;
    x.id = id;
    x.key_bits = bits;
    return x;
}

constexpr auto encr = ike::transform_type::encr;
constexpr auto prf = ike::transform_type::prf;
constexpr auto integ = ike::transform_type::integ;
constexpr auto dh = ike::transform_type::dh;
constexpr auto esn = ike::transform_type::esn;

// A message: header for `chain`, whose first payload is `first`.
bytes msg(uint8_t first, const bytes& chain) {
    return cat(
        {hdr(first, 34, 0x08, 0, static_cast<uint32_t>(ike::header_size + chain.size())), chain});
}

parse_error refusal(const bytes& m) {
    auto r = ike::parse(m);
    REQUIRE_FALSE(r);
    return r.error();
}

const bytes nonce16 = hex("000102030405060708090a0b0c0d0e0f");

}  // namespace

// ---- real messages, expectations from `tshark -r FILE -T json` ----

TEST_CASE("tcpdump's ikev2four capture: every message parses as tshark reads it, round trips") {
    const auto pkts = udp_payloads("ikev2-sa-init-cookie-invalid-ke-auth-tcpdump.pcap");
    REQUIRE(pkts.size() == 21);
    std::vector<ike::message> m;
    for (const auto& p : pkts) {
        auto r = ike::parse(p);
        REQUIRE(r);
        CHECK(ike::serialize(*r) == p);
        m.push_back(std::move(*r));
    }

    // Frame 1: IKE_SA_INIT request, isakmp.length 376, SA KE Ni N N.
    const auto& h1 = m[0].hdr;
    CHECK(h1.spi_i == 0xa88875a8198992a6);
    CHECK(h1.spi_r == 0);
    CHECK(h1.next == payload_type::sa);
    CHECK(h1.major == 2);
    CHECK(h1.minor == 0);
    CHECK(h1.exch == ike::exchange::ike_sa_init);
    CHECK(h1.flags == 0x08);
    CHECK(h1.from_initiator());
    CHECK_FALSE(h1.is_response());
    CHECK(h1.message_id == 0);
    CHECK(h1.length == 376);
    CHECK(types(m[0]) == std::vector{payload_type::sa, payload_type::ke, payload_type::nonce,
                                     payload_type::notify, payload_type::notify});
    const auto& sa1 = nth<ike::sa_payload>(m[0], 0);
    REQUIRE(sa1.proposals.size() == 1);
    CHECK(sa1.proposals[0].number == 1);
    CHECK(sa1.proposals[0].protocol == ike::protocol_id::ike);
    CHECK(sa1.proposals[0].spi.empty());
    CHECK(sa1.proposals[0].transforms ==
          std::vector{tf(encr, 12, 128), tf(encr, 12, 256), tf(encr, 12, 192), tf(encr, 3),
                      tf(prf, 2), tf(prf, 1), tf(prf, 4), tf(integ, 2), tf(integ, 1), tf(integ, 5),
                      tf(dh, 2), tf(dh, 14)});
    const auto& ke1 = nth<ike::ke_payload>(m[0], 1);
    CHECK(ke1.group == 2);
    CHECK(ke1.data.size() == 136 - 8);
    CHECK(bytes(ke1.data.begin(), ke1.data.begin() + 4) == hex("b5445bd6"));
    CHECK(nth<ike::nonce_payload>(m[0], 2).data ==
          hex("6128ebd023a864e94a7ffb74bf7cce2fd4367322b8b073f942282bd52ebfe3e6"));
    const auto& nd = nth<ike::notify_payload>(m[0], 3);
    CHECK(nd.type == ike::notify_type::nat_detection_source_ip);
    CHECK(nd.protocol == 0);
    CHECK(nd.spi.empty());
    CHECK(nd.data == hex("442ffe5aea0cee4dbacc758e801233bdc09a0abf"));
    CHECK(nth<ike::notify_payload>(m[0], 4).data ==
          hex("ba041b5de59955900d818ac54e18b236739d9e8b"));

    // Frame 2: the responder's COOKIE.
    CHECK(m[1].hdr.flags == 0x20);
    CHECK(m[1].hdr.is_response());
    CHECK(m[1].hdr.length == 60);
    CHECK(types(m[1]) == std::vector{payload_type::notify});
    CHECK(nth<ike::notify_payload>(m[1], 0).type == ike::notify_type::cookie);
    CHECK(nth<ike::notify_payload>(m[1], 0).data ==
          hex("00000001c2221e50c16e123f2b0c71aefcf0cb3b798782c6"));

    // Frame 3: the request again, the cookie first.
    CHECK(m[2].hdr.length == 408);
    CHECK(types(m[2]).front() == payload_type::notify);
    CHECK(nth<ike::notify_payload>(m[2], 0) == nth<ike::notify_payload>(m[1], 0));

    // Frame 4: the response choosing AES-CBC-128, HMAC-SHA1 PRF, HMAC-SHA1-96, group 2.
    CHECK(m[3].hdr.spi_r == 0x71be8358efae7663);
    CHECK(m[3].hdr.length == 304);
    CHECK(nth<ike::sa_payload>(m[3], 0).proposals[0].transforms ==
          std::vector{tf(encr, 12, 128), tf(prf, 2), tf(integ, 2), tf(dh, 2)});
    CHECK(nth<ike::nonce_payload>(m[3], 2).data ==
          hex("b31c379f272ce2984bd17ca38c8729e1edbc081a14fb0f67cff81721dfeec1f9"));

    // Frames 5 and 6: IKE_AUTH, encrypted (SK payload of length 208 / 128, first inner IDi/IDr).
    CHECK(m[4].hdr.exch == ike::exchange::ike_auth);
    CHECK(m[4].hdr.message_id == 1);
    CHECK(nth<ike::sk_payload>(m[4], 0).first_inner == payload_type::idi);
    CHECK(nth<ike::sk_payload>(m[4], 0).body.size() == 208 - 4);
    CHECK(nth<ike::sk_payload>(m[5], 0).first_inner == payload_type::idr);
    CHECK(nth<ike::sk_payload>(m[5], 0).body.size() == 128 - 4);

    // Frames 7 to 20: CREATE_CHILD_SA, message IDs 2..8; frame 9 answers with a notify first.
    CHECK(m[6].hdr.exch == ike::exchange::create_child_sa);
    CHECK(nth<ike::sk_payload>(m[6], 0).first_inner == payload_type::sa);
    CHECK(nth<ike::sk_payload>(m[8], 0).first_inner == payload_type::notify);
    CHECK(m[19].hdr.message_id == 8);
    CHECK(m[19].hdr.length == 316);

    // Frame 21: INFORMATIONAL of another IKE SA, a Delete inside.
    CHECK(m[20].hdr.spi_i == 0x1d9be9451d4f97a8);
    CHECK(m[20].hdr.spi_r == 0x64a2a4b5d0e17b6a);
    CHECK(m[20].hdr.exch == ike::exchange::informational);
    CHECK(nth<ike::sk_payload>(m[20], 0).first_inner == payload_type::del);
    CHECK(nth<ike::sk_payload>(m[20], 0).body.size() == 64 - 4);
}

TEST_CASE("strongSwan 5.9.8's IKE_SA_INIT for a GRE trap parses as tshark reads it") {
    const auto pkts = udp_payloads("strongswan-5.9.8-spoke-ikev2-sa-init-for-gre.pcap");
    REQUIRE(pkts.size() == 4);
    for (const auto& p : pkts) {
        auto r = ike::parse(p);
        REQUIRE(r);
        CHECK(ike::serialize(*r) == p);
    }
    auto m = *ike::parse(pkts[0]);
    CHECK(m.hdr.spi_i == 0x24f89f33e3ee7ebb);
    CHECK(m.hdr.length == 462);
    CHECK(types(m) == std::vector{payload_type::sa, payload_type::ke, payload_type::nonce,
                                  payload_type::notify, payload_type::notify, payload_type::notify,
                                  payload_type::notify, payload_type::notify});
    CHECK(nth<ike::sa_payload>(m, 0).proposals[0].transforms ==
          std::vector{tf(encr, 12, 256), tf(integ, 12), tf(prf, 5), tf(dh, 14)});
    CHECK(nth<ike::ke_payload>(m, 1).group == ike::dh_id::modp2048);
    CHECK(nth<ike::ke_payload>(m, 1).data.size() == 264 - 8);
    CHECK(nth<ike::nonce_payload>(m, 2).data ==
          hex("0fa553365e50df7a3fa9dbf4d6c733a0bd5b6d8e028ff9663386fae1b5497513"));
    CHECK(nth<ike::notify_payload>(m, 3).data == hex("facfef995294447ac52b848eedfc200f948b774f"));
    CHECK(nth<ike::notify_payload>(m, 5).type == ike::notify_type::ikev2_fragmentation_supported);
    CHECK(nth<ike::notify_payload>(m, 5).data.empty());
    CHECK(nth<ike::notify_payload>(m, 6).type == ike::notify_type::signature_hash_algorithms);
    CHECK(nth<ike::notify_payload>(m, 6).data == hex("000200030004"));
    CHECK(nth<ike::notify_payload>(m, 7).type == 16406);  // REDIRECT_SUPPORTED (RFC 5685)
    CHECK(ike::notify_name(16406) == "unknown");
}

TEST_CASE("tcpdump's ikev2-id-normal: bytes after the last payload are refused, not read") {
    // tshark: IDi of payload length 9 (ID type 1), then 39 bytes of isakmp.extradata.
    const auto pkts = udp_payloads("ikev2-ike-auth-id-payload.pcap");
    REQUIRE(pkts.size() == 1);
    CHECK(refusal(pkts[0]) == parse_error::length_mismatch);
    auto h = ike::parse_header(pkts[0]);
    REQUIRE(h);
    CHECK(h->length == 76);
    CHECK(h->message_id == 1);
    auto prefix = ike::parse_payload_prefix(h->next, std::span(pkts[0]).subspan(28));
    REQUIRE(prefix);
    CHECK(prefix->consumed == 9);
    CHECK(pkts[0].size() - 28 - prefix->consumed == 39);
    REQUIRE(prefix->payloads.size() == 1);
    const auto& id = std::get<ike::id_payload_i>(prefix->payloads[0]);
    CHECK(id.type == ike::id_type::ipv4_addr);
    CHECK(id.data == hex("de"));
}

// ---- the builder, against layouts assembled by hand ----

TEST_CASE("builder: an IKE_SA_INIT request byte for byte") {
    ike::message m;
    m.hdr.spi_i = 0x0102030405060708;
    m.hdr.exch = ike::exchange::ike_sa_init;
    m.hdr.flags = ike::header_flag::initiator;
    ike::proposal p;
    p.transforms = {tf(encr, ike::encr_id::aes_gcm_16, 256), tf(prf, ike::prf_id::hmac_sha2_256),
                    tf(dh, ike::dh_id::curve25519)};
    m.payloads.push_back(ike::sa_payload{{p}});
    m.payloads.push_back(ike::ke_payload{ike::dh_id::curve25519, bytes(32, 0xaa)});
    m.payloads.push_back(ike::nonce_payload{nonce16});
    m.payloads.push_back(ike::notify_payload{0,
                                             {},
                                             ike::notify_type::nat_detection_source_ip,
                                             hex("0102030405060708090a0b0c0d0e0f1011121314")});
    const bytes sa_body = hex(
        // proposal: last, reserved, length 36, number 1, IKE, SPI size 0, 3 transforms
        "00 00 0024 01 01 00 03"
        // ENCR AES-GCM-16 with Key Length 256 (TV attribute 0x800e)
        "03 00 000c 01 00 0014 800e 0100"
        // PRF HMAC-SHA2-256
        "03 00 0008 02 00 0005"
        // D-H 31, the last transform
        "00 00 0008 04 00 001f");
    const bytes expected = cat({
        hex("0102030405060708 0000000000000000 21 20 22 08 00000000"),
        hex("00000000"),  // length, patched below
        pl(34, sa_body),
        pl(40, cat({hex("001f 0000"), bytes(32, 0xaa)})),
        pl(41, nonce16),
        pl(0, hex("00 00 4004 0102030405060708090a0b0c0d0e0f1011121314")),
    });
    bytes want = expected;
    want[27] = static_cast<uint8_t>(want.size());
    want[26] = static_cast<uint8_t>(want.size() >> 8);
    CHECK(ike::serialize(m) == want);
    auto back = ike::parse(want);
    REQUIRE(back);
    CHECK(ike::serialize(*back) == want);
}

TEST_CASE("builder: every payload kind byte for byte, and parsed back to the model") {
    std::vector<ike::payload> ps;
    ike::proposal esp_p;
    esp_p.number = 2;
    esp_p.protocol = ike::protocol_id::esp;
    esp_p.spi = hex("c0ffee01");
    esp_p.transforms = {tf(encr, ike::encr_id::aes_cbc, 128),
                        tf(integ, ike::integ_id::hmac_sha2_256_128), tf(esn, ike::esn_id::no)};
    ps.push_back(ike::sa_payload{{esp_p}});
    ps.push_back(ike::id_payload_i{{ike::id_type::fqdn, hex("737031")}});  // "sp1"
    ps.push_back(ike::id_payload_r{{ike::id_type::ipv4_addr, hex("c6336401")}});
    ps.push_back(ike::cert_payload{4, hex("3082")});
    ps.push_back(ike::certreq_payload{4, hex("aabb")});
    ps.push_back(ike::auth_payload{ike::auth_method::shared_key_mic, hex("a1a2a3")});
    ps.push_back(ike::notify_payload{
        ike::protocol_id::esp, hex("c0ffee01"), ike::notify_type::rekey_sa, {}});
    ps.push_back(ike::delete_payload{ike::protocol_id::esp, 4, {hex("11111111"), hex("22222222")}});
    ps.push_back(ike::vendor_payload{hex("5354")});
    ike::traffic_selector s;
    s.ip_protocol = 47;
    s.start_address = hex("c6336402");
    s.end_address = hex("c6336402");
    ps.push_back(ike::ts_payload_i{{{s}}});
    ps.push_back(ike::ts_payload_r{{{s}}});
    ps.push_back(ike::opaque_payload{47, true, hex("01000000")});  // CP, critical kept
    ps.push_back(ike::opaque_payload{200, false, hex("beef")});    // unknown, non-critical
    ps.push_back(ike::skf_payload{payload_type::none, 2, 3, hex("00112233")});

    const bytes ts = hex("01 000000 07 2f 0010 0000 ffff c6336402 c6336402");
    const bytes want = cat({
        pl(35, hex("00 00 0028 02 03 04 03 c0ffee01"
                   "03 00 000c 01 00 000c 800e 0080"
                   "03 00 0008 03 00 000c"
                   "00 00 0008 05 00 0000")),
        pl(36, hex("02 000000 737031")),
        pl(37, hex("01 000000 c6336401")),
        pl(38, hex("04 3082")),
        pl(39, hex("04 aabb")),
        pl(41, hex("02 000000 a1a2a3")),
        pl(42, hex("03 04 4009 c0ffee01")),
        pl(43, hex("03 04 0002 11111111 22222222")),
        pl(44, hex("5354")),
        pl(45, ts),
        pl(47, ts),
        pl(200, hex("01000000"), 0x80),
        pl(53, hex("beef")),
        pl(0, hex("0002 0003 00112233")),
    });
    auto c = ike::serialize_payloads(ps);
    CHECK(c.first == payload_type::sa);
    CHECK(c.data == want);
    auto back = ike::parse_payloads(payload_type::sa, want);
    REQUIRE(back);
    CHECK(*back == ps);
}

TEST_CASE("builder: SK header with the caller's next and length; empty chain") {
    ike::header h;
    h.spi_i = 1;
    h.spi_r = 2;
    h.next = payload_type::sk;
    h.exch = ike::exchange::informational;
    h.flags = ike::header_flag::response;
    h.message_id = 7;
    h.length = 80;
    CHECK(ike::serialize_header(h) ==
          hex("0000000000000001 0000000000000002 2e 20 25 20 00000007 00000050"));
    ike::message m;
    m.hdr = h;
    CHECK(ike::serialize(m) ==
          hex("0000000000000001 0000000000000002 00 20 25 20 00000007 0000001c"));
    std::vector<ike::payload> sk{ike::sk_payload{payload_type::del, hex("0102")}};
    CHECK(ike::serialize_payloads(sk).data == hex("2a 00 0006 0102"));
    CHECK(ike::serialize_payloads({}).first == payload_type::none);
}

TEST_CASE("builder: an oversized payload or message is refused, not truncated") {
    std::vector<ike::payload> big{ike::vendor_payload{bytes(65532, 1)}};
    CHECK_THROWS_AS(ike::serialize_payloads(big), std::length_error);
    ike::message m;
    m.payloads = {ike::vendor_payload{bytes(40000, 1)}, ike::vendor_payload{bytes(40000, 1)}};
    CHECK_THROWS_AS(ike::serialize(m), std::length_error);
}

// ---- attributes (RFC 7296 section 3.3.5 / 3.3.6) ----

TEST_CASE("an unknown transform attribute is kept for the proposal logic to skip") {
    const bytes sa =
        hex("00 00 0020 01 01 00 02"
            "03 00 0010 01 00 000c 8011 0001 800e 0080"  // unknown TV 17 first, then Key Length
            "00 00 0008 04 00 000e");
    auto r = ike::parse(msg(33, pl(0, sa)));
    REQUIRE(r);
    const auto& t = std::get<ike::sa_payload>(r->payloads[0]).proposals[0].transforms[0];
    CHECK(t.key_bits == 128);
    CHECK(t.unknown_attributes == hex("8011 0001"));
    // A TLV attribute of an unknown type, kept whole.
    const bytes tlv =
        hex("00 00 0014 01 01 00 01"
            "00 00 000c 01 00 000c 0033 0000");
    r = ike::parse(msg(33, pl(0, tlv)));
    REQUIRE(r);
    CHECK(std::get<ike::sa_payload>(r->payloads[0]).proposals[0].transforms[0].unknown_attributes ==
          hex("0033 0000"));
    CHECK(ike::serialize(*r) == msg(33, pl(0, tlv)));
}

// ---- every refusal ----

TEST_CASE("refusals: header") {
    CHECK(refusal(bytes(27, 0)) == parse_error::truncated_header);
    CHECK(refusal(hdr(0, 34, 8, 0, 28, 0x10)) == parse_error::bad_major_version);
    CHECK(refusal(hdr(0, 34, 8, 0, 28, 0x30)) == parse_error::bad_major_version);
    CHECK(refusal(hdr(0, 34, 8, 0, 29)) == parse_error::length_mismatch);
    CHECK(refusal(cat({hdr(0, 34, 8, 0, 28), bytes(1, 0)})) == parse_error::length_mismatch);
    CHECK(refusal(hdr(0, 34, 8, 0, 65536)) == parse_error::too_long);
    CHECK(refusal(cat({hdr(0, 34, 8, 0, 28), bytes(65536, 0)})) == parse_error::too_long);
    // Minor version and unknown exchange types are the engine's business.
    auto r = ike::parse(hdr(0, 99, 8, 0, 28, 0x2f));
    REQUIRE(r);
    CHECK(r->hdr.minor == 15);
    CHECK(static_cast<uint8_t>(r->hdr.exch) == 99);
    CHECK(ike::serialize(*r) == hdr(0, 99, 8, 0, 28, 0x2f));
}

TEST_CASE("refusals: the payload chain") {
    CHECK(refusal(msg(40, hex("00 00 00"))) == parse_error::truncated_payload);
    CHECK(refusal(msg(40, hex("00 00 0003"))) == parse_error::bad_payload_length);
    CHECK(refusal(msg(40, hex("00 00 0015 00"))) == parse_error::truncated_payload);
    CHECK(refusal(msg(40, cat({pl(0, nonce16), hex("00")}))) == parse_error::length_mismatch);
    CHECK(refusal(msg(200, pl(0, hex("01"), 0x80))) == parse_error::unsupported_critical);
    CHECK(refusal(msg(46, cat({pl(40, hex("0102")), pl(0, nonce16)}))) == parse_error::sk_not_last);
    CHECK(refusal(msg(53, cat({pl(40, hex("0001 0001 02")), pl(0, nonce16)}))) ==
          parse_error::sk_not_last);
    bytes many;
    for (size_t i = 0; i <= ike::max_payloads; ++i) {
        many = cat({many, pl(i == ike::max_payloads ? 0 : 43, hex("01"))});
    }
    CHECK(refusal(msg(43, many)) == parse_error::too_many_payloads);
    // Unknown non-critical payloads are kept; the critical bit of a known type is ignored.
    auto r = ike::parse(msg(200, pl(40, hex("0102"), 0x00)));
    CHECK_FALSE(r);  // Next Payload 40 with nothing after it
    r = ike::parse(msg(200, cat({pl(40, hex("0102")), pl(0, nonce16, 0x80)})));
    REQUIRE(r);
    CHECK(std::get<ike::opaque_payload>(r->payloads[0]) ==
          ike::opaque_payload{200, false, hex("0102")});
    CHECK(std::get<ike::nonce_payload>(r->payloads[1]).data == nonce16);
}

TEST_CASE("refusals: fixed parts shorter than the payload type needs") {
    CHECK(refusal(msg(34, pl(0, hex("000e00")))) == parse_error::bad_payload_length);
    CHECK(refusal(msg(35, pl(0, hex("010000")))) == parse_error::bad_payload_length);
    CHECK(refusal(msg(37, pl(0, {}))) == parse_error::bad_payload_length);
    CHECK(refusal(msg(38, pl(0, {}))) == parse_error::bad_payload_length);
    CHECK(refusal(msg(39, pl(0, hex("020000")))) == parse_error::bad_payload_length);
    CHECK(refusal(msg(41, pl(0, hex("000040")))) == parse_error::bad_payload_length);
    CHECK(refusal(msg(42, pl(0, hex("010000")))) == parse_error::bad_payload_length);
    CHECK(refusal(msg(44, pl(0, hex("010000")))) == parse_error::bad_payload_length);
    CHECK(refusal(msg(53, pl(0, hex("0001")))) == parse_error::bad_payload_length);
    CHECK(refusal(msg(40, pl(0, bytes(15, 1)))) == parse_error::bad_payload_length);
    CHECK(refusal(msg(40, pl(0, bytes(257, 1)))) == parse_error::bad_payload_length);
}

TEST_CASE("refusals: SA proposals and transforms") {
    const bytes ok_tf = hex("00 00 0008 04 00 000e");
    auto sa = [](const bytes& body) { return msg(33, pl(0, body)); };
    CHECK(refusal(sa({})) == parse_error::bad_proposal);                          // no proposal
    CHECK(refusal(sa(hex("00 00 0008 01 01 00"))) == parse_error::bad_proposal);  // 7 bytes
    CHECK(refusal(sa(hex("00 00 0007 01 01 00 00"))) == parse_error::bad_proposal);
    CHECK(refusal(sa(hex("00 00 0009 01 01 00 00"))) == parse_error::bad_proposal);
    CHECK(refusal(sa(cat({hex("02 00 0010 01 01 00 01"), ok_tf}))) == parse_error::bad_proposal);
    CHECK(refusal(sa(cat({hex("00 00 0010 01 01 00 01"), ok_tf, hex("00 00 0010 02 01 00 01"),
                          ok_tf}))) == parse_error::bad_proposal);  // first says "last"
    CHECK(refusal(sa(cat({hex("00 00 0010 01 03 00 01"), ok_tf}))) ==
          parse_error::bad_proposal);  // ESP without its 4-byte SPI
    CHECK(refusal(sa(cat({hex("00 00 0014 01 01 04 01 01020304"), ok_tf}))) ==
          parse_error::bad_proposal);  // IKE with a 4-byte SPI
    CHECK(refusal(sa(hex("00 00 0008 01 01 08 00"))) == parse_error::bad_proposal);  // SPI cut
    CHECK(refusal(sa(cat({hex("00 00 0010 01 01 00 02"), ok_tf}))) ==
          parse_error::bad_proposal);  // 2 transforms announced, 1 present
    CHECK(refusal(sa(cat({hex("00 00 0018 01 01 00 01"), ok_tf, ok_tf}))) ==
          parse_error::bad_proposal);  // 1 announced, 2 present
    CHECK(refusal(sa(hex("00 00 0010 01 01 00 01 03 00 0008 04 00 000e"))) ==
          parse_error::bad_proposal);  // the only transform says "more"
    CHECK(refusal(sa(hex("00 00 0010 01 01 00 01 00 00 0007 04 00 000e"))) ==
          parse_error::bad_proposal);  // transform shorter than 8
    CHECK(refusal(sa(hex("00 00 0010 01 01 00 01 00 00 0009 04 00 000e"))) ==
          parse_error::bad_proposal);  // transform past its proposal
    // Unknown protocols: any SPI size (the proposal logic skips them).
    CHECK(ike::parse(sa(cat({hex("00 00 0012 01 09 02 01 abcd"), ok_tf}))));
}

TEST_CASE("refusals: transform attributes") {
    auto with_attrs = [](const bytes& attrs) {
        const auto tlen = static_cast<uint8_t>(8 + attrs.size());
        return msg(
            33, pl(0, cat({hex("00 00 00"), bytes{static_cast<uint8_t>(8 + tlen)},
                           hex("01 01 00 01 00 00 00"), bytes{tlen}, hex("01 00 000c"), attrs})));
    };
    CHECK(ike::parse(with_attrs(hex("800e 0080"))));
    CHECK(refusal(with_attrs(hex("800e"))) == parse_error::bad_attribute);            // cut
    CHECK(refusal(with_attrs(hex("000e 0002 0080"))) == parse_error::bad_attribute);  // TLV
    CHECK(refusal(with_attrs(hex("800e 0080 800e 0100"))) == parse_error::bad_attribute);
    CHECK(refusal(with_attrs(hex("0033 0004 0102"))) == parse_error::bad_attribute);  // TLV cut
}

TEST_CASE("refusals: KE, Notify, Delete") {
    CHECK(refusal(msg(34, pl(0, hex("000e 0000")))) == parse_error::bad_ke);  // no data
    CHECK(refusal(msg(34, pl(0, cat({hex("001f 0000"), bytes(31, 1)})))) == parse_error::bad_ke);
    CHECK(refusal(msg(34, pl(0, cat({hex("0013 0000"), bytes(65, 1)})))) == parse_error::bad_ke);
    CHECK(ike::parse(msg(34, pl(0, cat({hex("0002 0000"), bytes(128, 1)})))));  // MODP-1024
    CHECK(ike::parse(msg(34, pl(0, cat({hex("0014 0000"), bytes(96, 1)})))));   // ECP-384
    CHECK(ike::parse(msg(34, pl(0, cat({hex("000e 0000"), bytes(256, 1)})))));  // MODP-2048

    CHECK(refusal(msg(41, pl(0, hex("03 04 4009 c0ff")))) == parse_error::bad_notify);  // cut
    CHECK(refusal(msg(41, pl(0, hex("00 04 4009 c0ffee01")))) == parse_error::bad_notify);
    CHECK(refusal(msg(41, pl(0, hex("03 08 4009 c0ffee01c0ffee01")))) == parse_error::bad_notify);
    CHECK(refusal(msg(41, pl(0, hex("01 04 4009 c0ffee01")))) == parse_error::bad_notify);
    CHECK(ike::parse(msg(41, pl(0, hex("01 08 0004 0102030405060708")))));  // INVALID_IKE_SPI

    CHECK(refusal(msg(42, pl(0, hex("01 04 0001 01020304")))) == parse_error::bad_delete);
    CHECK(refusal(msg(42, pl(0, hex("01 00 0001")))) == parse_error::bad_delete);
    CHECK(refusal(msg(42, pl(0, hex("03 04 0002 01020304")))) == parse_error::bad_delete);
    CHECK(refusal(msg(42, pl(0, hex("03 04 0001 0102030405")))) == parse_error::bad_delete);
    CHECK(refusal(msg(42, pl(0, hex("03 08 0001 0102030405060708")))) == parse_error::bad_delete);
    CHECK(refusal(msg(42, pl(0, hex("07 00 0000")))) == parse_error::bad_delete);
    CHECK(ike::parse(msg(42, pl(0, hex("01 00 0000")))));
}

TEST_CASE("refusals: traffic selectors") {
    auto ts = [](const bytes& sel, uint8_t count = 1) {
        return msg(44, pl(0, cat({bytes{count, 0, 0, 0}, sel})));
    };
    const bytes v4 = hex("07 00 0010 0000 ffff 0a000001 0a0000ff");
    CHECK(ike::parse(ts(v4)));
    CHECK(ike::parse(ts(hex("07 2f 0010 ffff 0000 0a000001 0a000001"))));  // OPAQUE ports
    CHECK(ike::parse(ts(cat({hex("08 00 0028 0000 ffff"), bytes(16, 0), bytes(16, 0xff)}))));
    CHECK(refusal(ts(v4, 2)) == parse_error::bad_traffic_selector);  // one missing
    CHECK(refusal(ts(v4, 0)) == parse_error::bad_traffic_selector);  // one too many
    CHECK(refusal(ts(hex("07 00 0010 0000"))) == parse_error::bad_traffic_selector);
    CHECK(refusal(ts(hex("07 00 0014 0000 ffff 0a000001 0a0000ff 0000"))) ==
          parse_error::bad_traffic_selector);  // length not that of the type
    CHECK(refusal(ts(hex("09 00 0010 0000 ffff 0a000001 0a0000ff"))) ==
          parse_error::bad_traffic_selector);  // type 9 (Fibre Channel) not supported
    CHECK(refusal(ts(hex("07 00 0010 0050 0040 0a000001 0a0000ff"))) ==
          parse_error::bad_traffic_selector);  // ports reversed
    CHECK(refusal(ts(hex("07 00 0010 0000 ffff 0a0000ff 0a000001"))) ==
          parse_error::bad_traffic_selector);  // addresses reversed
    CHECK(refusal(ts(hex("07 00 0018 0000 ffff 0a000001 0a0000ff"))) ==
          parse_error::bad_traffic_selector);  // runs past the payload
}

TEST_CASE("refusals: SKF fragment numbers") {
    CHECK(ike::parse(msg(53, pl(40, hex("0001 0002 aa")))));
    CHECK(ike::parse(msg(53, pl(0, hex("0002 0002 aa")))));
    CHECK(refusal(msg(53, pl(0, hex("0000 0002 aa")))) == parse_error::bad_fragment);
    CHECK(refusal(msg(53, pl(0, hex("0003 0002 aa")))) == parse_error::bad_fragment);
    CHECK(refusal(msg(53, pl(40, hex("0002 0002 aa")))) == parse_error::bad_fragment);
}

TEST_CASE("names") {
    CHECK(ike::name(ike::exchange::create_child_sa) == "CREATE_CHILD_SA");
    CHECK(ike::name(static_cast<ike::exchange>(99)) == "unknown");
    CHECK(ike::name(payload_type::skf) == "SKF");
    CHECK(ike::name(payload_type::tsr) == "TSr");
    CHECK(ike::notify_name(ike::notify_type::ts_unacceptable) == "TS_UNACCEPTABLE");
    CHECK(ike::notify_name(ike::notify_type::ikev2_fragmentation_supported) ==
          "IKEV2_FRAGMENTATION_SUPPORTED");
    CHECK(ike::name(parse_error::too_many_payloads) == "too_many_payloads");
    for (int e = 0; e <= static_cast<int>(parse_error::too_many_payloads); ++e) {
        CHECK(ike::name(static_cast<parse_error>(e)) != "unknown");
    }
}
