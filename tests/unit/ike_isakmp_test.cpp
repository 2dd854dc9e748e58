// ISAKMP / IKEv1 codec (control/ike/isakmp.hpp): a real Main Mode + Quick Mode exchange from
// tcpdump's suite checked against what tshark 4.0 prints for it, byte-exact round trips, the
// builder against layouts assembled by hand from RFC 2408 section 3 / RFC 2407 section 4 /
// RFC 3947, and every refusal reached by a crafted message, with its offset and payload.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "control/ike/isakmp.hpp"
#include "tests/unit/crypto_test_support.hpp"
#include "tests/unit/ike_capture_support.hpp"

using namespace dmvpn;
namespace v1 = ike::v1;
using v1::bytes;
using v1::parse_error;
using v1::payload_type;

namespace {

using crypto_test::cat;
using crypto_test::hex;
using crypto_test::pl;
using crypto_test::udp_payloads;

constexpr uint8_t isakmp_version = 0x10;

bytes hdr(uint8_t next, uint8_t exch, uint8_t flags, uint32_t mid, uint32_t len) {
    return crypto_test::hdr(next, exch, flags, mid, len, isakmp_version);
}

constexpr const char* main_mode_capture = "ikev1-main-mode-psk-tcpdump.pcap";

template <typename T>
const T& nth(const std::vector<v1::payload>& ps, size_t i) {
    REQUIRE(i < ps.size());
    const T* p = std::get_if<T>(&ps[i]);
    REQUIRE(p != nullptr);
    return *p;
}

std::vector<uint8_t> types(const std::vector<v1::payload>& ps) {
    std::vector<uint8_t> out;
    for (const auto& p : ps) {
        out.push_back(static_cast<uint8_t>(v1::type_of(p)));
    }
    return out;
}

bytes msg(uint8_t first, const bytes& chain, uint8_t exch = 2) {
    return cat(
        {hdr(first, exch, 0, 0, static_cast<uint32_t>(v1::header_size + chain.size())), chain});
}

v1::refusal refused(const bytes& m) {
    auto r = v1::parse(m);
    REQUIRE_FALSE(r);
    return r.error();
}

v1::attribute tv(uint16_t type, uint16_t value) {
    return {type, true, {static_cast<uint8_t>(value >> 8), static_cast<uint8_t>(value)}};
}

// The Quick Mode chain of issue 11's seeds, assembled by hand: HASH(1), SA (ESP, AES-128,
// HMAC-SHA, 120 s, UDP-encapsulated transport, PFS group 2), Nonce, KE, IDci, IDcr (the two
// NBMA addresses, protocol 47), NAT-OA.
const bytes quick_chain = hex(
    // HASH(1): next SA, 20 octets
    "01000018 1111111111111111111111111111111111111111"
    // SA: next Nonce, length 60, DOI 1, SIT_IDENTITY_ONLY
    "0a00003c 00000001 00000001"
    //   Proposal: last, length 48, #1, ESP, SPI size 4, 1 transform, SPI
    "00000030 01030401 c0ffee01"
    //     Transform: last, length 36, #1, ESP_AES
    "00000024 010c0000"
    "80010001 00020004 00000078 80040004 80050002 80060080 80030002"
    // Nonce: next KE, 16 octets
    "04000014 22222222222222222222222222222222"
    // KE: next ID, 8 octets
    "0500000c 3333333333333333"
    // IDci: next ID, IPV4_ADDR, GRE, port 0, 198.51.100.2
    "0500000c 012f0000 c6336402"
    // IDcr: next NAT-OA, 198.51.100.1
    "1500000c 012f0000 c6336401"
    // NAT-OA: last, IPV4_ADDR, 10.0.0.1
    "0000000c 01000000 0a000001");

std::vector<v1::payload> quick_model() {
    v1::transform t;
    t.number = 1;
    t.id = v1::esp_transform::aes;
    t.attributes = {tv(v1::p2_attr::sa_life_type, 1),
                    {v1::p2_attr::sa_life_duration, false, hex("00000078")},
                    tv(v1::p2_attr::encapsulation_mode, v1::encapsulation::udp_transport),
                    tv(v1::p2_attr::auth_algorithm, 2),
                    tv(v1::p2_attr::key_length, 128),
                    tv(v1::p2_attr::group, 2)};
    v1::proposal p{1, v1::protocol_id::esp, hex("c0ffee01"), {t}};
    return {v1::hash_payload{bytes(20, 0x11)},
            v1::sa_payload{v1::doi_ipsec, v1::situation::identity_only, {p}},
            v1::nonce_payload{bytes(16, 0x22)},
            v1::ke_payload{bytes(8, 0x33)},
            v1::id_payload{v1::id_type::ipv4_addr, 47, 0, hex("c6336402")},
            v1::id_payload{v1::id_type::ipv4_addr, 47, 0, hex("c6336401")},
            v1::nat_oa_payload{v1::id_type::ipv4_addr, hex("0a000001"), false}};
}

// Informational: R-U-THERE (RFC 3706: ISAKMP SPI = both cookies, data = sequence number),
// INITIAL-CONTACT, RESPONDER-LIFETIME for an ESP SPI with attributes, Delete of two ESP SPIs,
// NAT-D (RFC 3947).
const bytes info_chain =
    hex("0b000020 00000001 0110 8d28 01020304050607081112131415161718 00000005"
        "0b00001c 00000001 0110 6002 01020304050607081112131415161718"
        "0c00001c 00000001 0304 6000 c0ffee01 80010001 00020004 00000e10"
        "14000014 00000001 0304 0002 c0ffee01 c0ffee02"
        "00000018 4444444444444444444444444444444444444444");

}  // namespace

TEST_CASE("isakmp: tcpdump's Main Mode + Quick Mode exchange as tshark reads it") {
    const auto msgs = udp_payloads(main_mode_capture);
    REQUIRE(msgs.size() == 9);

    // Frame 1 (tshark: isakmp.* of the SA and three VIDs).
    auto m1 = v1::parse(msgs[0]);
    REQUIRE(m1);
    CHECK(m1->hdr.spi_i == 0xcf02326f14a95b93);
    CHECK(m1->hdr.spi_r == 0);
    CHECK(m1->hdr.exch == v1::exchange::identity_protection);
    CHECK(m1->hdr.flags == 0);
    CHECK(m1->hdr.length == 148);
    CHECK(types(m1->payloads) == std::vector<uint8_t>{1, 13, 13, 13});
    const auto& sa = nth<v1::sa_payload>(m1->payloads, 0);
    CHECK(sa.doi == 1);
    CHECK(sa.situation == 1);
    REQUIRE(sa.proposals.size() == 1);
    CHECK(sa.proposals[0].number == 1);
    CHECK(sa.proposals[0].protocol == v1::protocol_id::isakmp);
    CHECK(sa.proposals[0].spi.empty());
    REQUIRE(sa.proposals[0].transforms.size() == 1);
    const auto& t = sa.proposals[0].transforms[0];
    CHECK(t.number == 1);
    CHECK(t.id == v1::key_ike);
    // tshark: encryption 7 (AES-CBC), key length 128, hash 2 (SHA), group 1, auth 1 (PSK),
    // life type 1 (seconds), life duration 86400 as a 4-octet TLV.
    const std::vector<v1::attribute> attrs = {tv(1, 7),
                                              tv(14, 128),
                                              tv(2, 2),
                                              tv(4, 1),
                                              tv(3, 1),
                                              tv(11, 1),
                                              {12, false, hex("00015180")}};
    CHECK(t.attributes == attrs);
    CHECK(v1::attribute_value(t.attributes, v1::p1_attr::life_duration) == 86400);
    CHECK(v1::attribute_value(t.attributes, v1::p1_attr::encryption) == 7);
    CHECK_FALSE(v1::attribute_value(t.attributes, v1::p1_attr::prf));
    CHECK(nth<v1::vendor_payload>(m1->payloads, 1).id == hex("439b59f8ba676c4c7737ae22eab8f582"));
    CHECK(nth<v1::vendor_payload>(m1->payloads, 3).id == hex("90cb80913ebb696e086381b5ec427b1f"));

    // Frame 3: KE (96 octets), Nonce (20), four VIDs (the last, XAUTH, 8 octets), then two
    // NAT-D under the drafts' payload number 15, which stays opaque here.
    auto m3 = v1::parse(msgs[2]);
    REQUIRE(m3);
    CHECK(types(m3->payloads) == std::vector<uint8_t>{4, 10, 13, 13, 13, 13, 15, 15});
    CHECK(nth<v1::ke_payload>(m3->payloads, 0).data.size() == 96);
    CHECK(nth<v1::nonce_payload>(m3->payloads, 1).data ==
          hex("6ea7c7ed3ca3383538801b4b32a5aba161807765"));
    CHECK(nth<v1::vendor_payload>(m3->payloads, 5).id == hex("09002689dfd6b712"));
    CHECK(nth<v1::opaque_payload>(m3->payloads, 6).body ==
          hex("d5664a6fcbc7d769f693d4d83ce125b1415827ae"));

    // Frames 5..9: E flag; tshark's first payload and length.
    const std::pair<uint8_t, uint32_t> encrypted[] = {
        {5, 108}, {5, 76}, {8, 220}, {8, 220}, {8, 60}};
    for (size_t i = 4; i < 9; ++i) {
        auto m = v1::parse(msgs[i]);
        REQUIRE(m);
        CHECK(m->hdr.encrypted());
        CHECK(static_cast<uint8_t>(m->hdr.next) == encrypted[i - 4].first);
        CHECK(m->hdr.length == encrypted[i - 4].second);
        CHECK(m->payloads.empty());
        CHECK(m->encrypted.size() == m->hdr.length - v1::header_size);
        CHECK(m->hdr.exch == (i < 6 ? v1::exchange::identity_protection : v1::exchange::quick));
    }
    CHECK(v1::parse(msgs[6])->hdr.message_id == 0x0f2b7862);

    // Every message round-trips byte for byte.
    for (const auto& raw : msgs) {
        auto m = v1::parse(raw);
        REQUIRE(m);
        CHECK(v1::serialize(*m) == raw);
    }
}

TEST_CASE("isakmp: the builder writes RFC 2408/2407/3947 layouts; the parser reads them back") {
    auto c = v1::serialize_payloads(quick_model());
    CHECK(c.first == payload_type::hash);
    CHECK(c.data == quick_chain);
    auto back = v1::parse_payloads(payload_type::hash, quick_chain);
    REQUIRE(back);
    CHECK(back->consumed == quick_chain.size());
    CHECK(back->payloads == quick_model());
    const auto& sa = nth<v1::sa_payload>(back->payloads, 1);
    const auto& attrs = sa.proposals[0].transforms[0].attributes;
    CHECK(v1::attribute_value(attrs, v1::p2_attr::sa_life_duration) == 120);
    CHECK(v1::attribute_value(attrs, v1::p2_attr::encapsulation_mode) == 4);

    // A decrypted body ends in padding: parse_payloads() stops at Next Payload 0.
    auto padded = cat({quick_chain, bytes(7, 0), bytes{7}});
    auto p = v1::parse_payloads(payload_type::hash, padded);
    REQUIRE(p);
    CHECK(p->consumed == quick_chain.size());

    // Informational payloads.
    std::vector<v1::payload> info = {
        v1::notification_payload{1, v1::protocol_id::isakmp,
                                 hex("01020304050607081112131415161718"),
                                 v1::notify_type::r_u_there, hex("00000005")},
        v1::notification_payload{1,
                                 v1::protocol_id::isakmp,
                                 hex("01020304050607081112131415161718"),
                                 v1::notify_type::initial_contact,
                                 {}},
        v1::notification_payload{1, v1::protocol_id::esp, hex("c0ffee01"),
                                 v1::notify_type::responder_lifetime,
                                 hex("80010001 00020004 00000e10")},
        v1::delete_payload{1, v1::protocol_id::esp, 4, {hex("c0ffee01"), hex("c0ffee02")}},
        v1::nat_d_payload{bytes(20, 0x44), false}};
    CHECK(v1::serialize_payloads(info).data == info_chain);
    auto i = v1::parse_payloads(payload_type::notification, info_chain);
    REQUIRE(i);
    CHECK(i->payloads == info);

    // A whole message: the header's next and length are computed; with the E flag the body
    // is written as given and hdr.next kept.
    v1::message m;
    m.hdr.spi_i = 0x0102030405060708;
    m.hdr.spi_r = 0x1112131415161718;
    m.hdr.exch = v1::exchange::informational;
    m.payloads = info;
    const auto wire = v1::serialize(m);
    CHECK(wire ==
          cat({hdr(11, 5, 0, 0, static_cast<uint32_t>(28 + info_chain.size())), info_chain}));
    v1::message e;
    e.hdr.exch = v1::exchange::quick;
    e.hdr.flags = v1::header_flag::encryption;
    e.hdr.next = payload_type::hash;
    e.hdr.message_id = 7;
    e.encrypted = bytes(32, 0x55);
    const auto ew = v1::serialize(e);
    CHECK(ew.size() == 60);
    CHECK(ew[16] == 8);
    CHECK(ew[17] == 0x10);
    auto eb = v1::parse(ew);
    REQUIRE(eb);
    CHECK(eb->encrypted == e.encrypted);
    CHECK(eb->hdr.next == payload_type::hash);
}

TEST_CASE("isakmp: hostile messages are refused with the reason, the offset and the payload") {
    using r = v1::refusal;
    const auto qm = msg(8, quick_chain, 32);
    REQUIRE(v1::parse(qm));
    auto with = [&qm](size_t at, std::initializer_list<uint8_t> b) {
        bytes m = qm;
        size_t i = at;
        for (uint8_t x : b) {
            m.at(i++) = x;
        }
        return m;
    };
    // Offsets in the message: HASH at 28, SA at 52 (body 56, proposal 64, transform 76,
    // attributes 84), Nonce 112, KE 132, IDci 144, IDcr 156, NAT-OA 168.
    CHECK(refused(bytes(27, 0)) == r{parse_error::truncated_header, 0, payload_type::none});
    CHECK(refused(with(17, {0x20})) == r{parse_error::bad_major_version, 17, payload_type::none});
    CHECK(refused(cat({qm, bytes{0}})) == r{parse_error::length_mismatch, 24, payload_type::none});
    CHECK(refused(with(24, {0, 1, 0, 0})) == r{parse_error::too_long, 24, payload_type::none});
    // The chain ends (Next Payload 0) before the datagram does.
    CHECK(refused(msg(13, cat({pl(0, bytes{1}), bytes{0}}))) ==
          r{parse_error::length_mismatch, 33, payload_type::none});
    // NAT-OA of 4 octets: no address.
    CHECK(refused(with(168, {0, 0, 0, 8})) ==
          r{parse_error::bad_nat_oa, 172, payload_type::nat_oa});
    CHECK(refused(with(170, {0, 20})) ==
          r{parse_error::truncated_payload, 168, payload_type::nat_oa});
    CHECK(refused(with(170, {0, 3})) ==
          r{parse_error::bad_payload_length, 168, payload_type::nat_oa});
    // SA: DOI 2, a situation with the secrecy bit.
    CHECK(refused(with(59, {2})) == r{parse_error::bad_doi, 56, payload_type::sa});
    CHECK(refused(with(63, {3})) == r{parse_error::bad_doi, 56, payload_type::sa});
    // Proposal: Next Payload 3 (must be 2 or 0), SPI size 8 for ESP, 2 transforms announced.
    CHECK(refused(with(64, {3})) == r{parse_error::bad_proposal, 64, payload_type::sa});
    CHECK(refused(with(70, {8})) == r{parse_error::bad_proposal, 64, payload_type::sa});
    CHECK(refused(with(71, {2})) == r{parse_error::bad_proposal, 64, payload_type::sa});
    CHECK(refused(with(71, {0})) == r{parse_error::bad_proposal, 64, payload_type::sa});
    // Transform: Next Payload 2, length past the proposal.
    CHECK(refused(with(76, {2})) == r{parse_error::bad_transform, 76, payload_type::sa});
    CHECK(refused(with(78, {0, 40})) == r{parse_error::bad_transform, 76, payload_type::sa});
    // Attributes: encapsulation mode (basic) as TLV; a TLV running past the transform.
    CHECK(refused(with(96, {0x00, 0x04, 0x00, 0x02})) ==
          r{parse_error::bad_attribute, 96, payload_type::sa});
    CHECK(refused(with(88, {0x00, 0x02, 0x00, 0x40})) ==
          r{parse_error::bad_attribute, 88, payload_type::sa});
    // Nonce of 7 octets (RFC 2409: 8..256).
    {
        auto m = msg(10, pl(0, bytes(7, 0x22)), 32);
        CHECK(refused(m) == r{parse_error::bad_payload_length, 32, payload_type::nonce});
    }
    // ID: IPV4_ADDR with 5 octets.
    CHECK(refused(msg(5, pl(0, hex("012f0000 c633640201")))) ==
          r{parse_error::bad_id, 36, payload_type::id});
    // Notification: SPI size 16 for ESP.
    CHECK(refused(msg(11, pl(0, cat({hex("00000001 0310 6002"), bytes(16, 1)})), 5)) ==
          r{parse_error::bad_notification, 37, payload_type::notification});
    // Delete: SPI size 4 for ISAKMP; count 3 with two SPIs; count 0.
    CHECK(refused(msg(12, pl(0, hex("00000001 0104 0001 c0ffee01")), 5)).reason ==
          parse_error::bad_delete);
    CHECK(refused(msg(12, pl(0, hex("00000001 0304 0003 c0ffee01 c0ffee02")), 5)) ==
          r{parse_error::bad_delete, 37, payload_type::del});
    CHECK(refused(msg(12, pl(0, hex("00000001 0304 0000")), 5)).reason == parse_error::bad_delete);
    // Proposal or Transform at the top level.
    CHECK(refused(msg(2, pl(0, hex("01010000")))) ==
          r{parse_error::misplaced_payload, 32, payload_type::proposal});
    // KE, Hash empty.
    CHECK(refused(msg(4, pl(0, {}))).reason == parse_error::bad_payload_length);
    CHECK(refused(msg(8, pl(0, {}))).reason == parse_error::bad_payload_length);
    // E flag: no body, a body of 6 octets.
    CHECK(refused(hdr(8, 32, 1, 1, 28)) == r{parse_error::empty_encrypted, 28, payload_type::hash});
    CHECK(refused(cat({hdr(8, 32, 1, 1, 34), bytes(6, 0)})).reason == parse_error::empty_encrypted);
    // 65 payloads.
    {
        bytes chain;
        for (int k = 0; k < 65; ++k) {
            chain = cat({chain, pl(k == 64 ? 0 : 13, bytes{1})});
        }
        CHECK(refused(msg(13, chain)) ==
              r{parse_error::too_many_payloads, 28 + 64 * 5, payload_type::vendor});
    }
    // 65 Proposal payloads in one SA (the bound is max_proposals).
    {
        bytes props;
        for (int k = 0; k < 65; ++k) {
            props = cat({props, pl(k == 64 ? 0 : 2, hex("01010001 00000008 01010000"))});
        }
        auto m = msg(1, pl(0, cat({hex("00000001 00000001"), props})));
        CHECK(refused(m) == r{parse_error::bad_proposal, 40 + 64 * 16, payload_type::sa});
    }
    CHECK(v1::describe(r{parse_error::bad_attribute, 96, payload_type::sa}) ==
          "bad_attribute in SA at offset 96");
    CHECK(v1::describe(r{parse_error::truncated_header, 0, payload_type::none}) ==
          "truncated_header at offset 0");
}

TEST_CASE("isakmp: every cut and every one-octet change of the real messages is handled") {
    for (const auto& raw : udp_payloads(main_mode_capture)) {
        for (size_t n = 0; n < raw.size(); ++n) {
            auto cut = v1::parse(std::span(raw).first(n));
            REQUIRE_FALSE(cut);
            CHECK(cut.error().offset <= raw.size());
        }
        for (size_t i = 0; i < raw.size(); ++i) {
            bytes m = raw;
            m[i] ^= 0xa5;
            auto p = v1::parse(m);
            if (p && !p->hdr.encrypted()) {
                // What parses builds back to the same bytes, reserved octets aside.
                auto again = v1::parse(v1::serialize(*p));
                REQUIRE(again);
                CHECK(again->payloads == p->payloads);
            } else if (!p) {
                // A payload announced after the last one is missing at the very end.
                CHECK(p.error().offset <= m.size());
            }
        }
    }
}
