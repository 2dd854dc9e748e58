// ESP wire format (RFC 4303): captured and published packets, body layouts, the trailer of
// their decrypted plaintext (decrypted once with tshark and the SAs of esp_sa.uat), round trips.
#include <catch2/catch.hpp>
#include <set>
#include <vector>

#include "crypto/esp_wire.hpp"
#include "dataplane/wire/ipv4.hpp"

namespace esp = dmvpn::crypto::esp;
using dmvpn::wire::parse_ipv4;

namespace {

using bytes = std::vector<uint8_t>;

// vector-dpdk-esp-tunnel-aes128gcm-spia5f8.pcap, frame 1: the IPv4 payload (ESP, 96 bytes).
// AES-128-GCM: 8-byte IV, 16-byte ICV.
const bytes gcm_esp = {
    0x00, 0x00, 0xa5, 0xf8, 0x00, 0x00, 0x00, 0x01, 0xfa, 0xce, 0xdb, 0xad, 0xde, 0xca, 0xf8, 0x88,
    0xde, 0xb2, 0x2c, 0xd9, 0xb0, 0x7c, 0x72, 0xc1, 0x6e, 0x3a, 0x65, 0xbe, 0xeb, 0x8d, 0xf3, 0x04,
    0xa5, 0xa5, 0x89, 0x7d, 0x33, 0xae, 0x53, 0x0f, 0x1b, 0xa7, 0x6d, 0x5d, 0x11, 0x4d, 0x2a, 0x5c,
    0x3d, 0xe8, 0x18, 0x27, 0xc1, 0x0e, 0x9a, 0x4f, 0x51, 0x33, 0x0d, 0x0e, 0xec, 0x41, 0x66, 0x42,
    0xcf, 0xbb, 0x85, 0xa5, 0xb4, 0x7e, 0x48, 0xa4, 0xec, 0x3b, 0x9b, 0xa9, 0x5d, 0x91, 0x8b, 0xd4,
    0x29, 0xc7, 0x37, 0x57, 0x9f, 0xf1, 0x9e, 0x58, 0xcf, 0xfc, 0x60, 0x7a, 0x3b, 0xce, 0x89, 0x94,
};
// Its plaintext as tshark decrypts it: a 62-byte inner IPv4 DNS query, no padding, next header 4.
const bytes gcm_plain = {
    0x45, 0x00, 0x00, 0x3e, 0x69, 0x8f, 0x00, 0x00, 0x80, 0x11, 0x4d, 0xcc, 0xc0, 0xa8, 0x01, 0x02,
    0xc0, 0xa8, 0x01, 0x01, 0x0a, 0x98, 0x00, 0x35, 0x00, 0x2a, 0x23, 0x43, 0xb2, 0xd0, 0x01, 0x00,
    0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x73, 0x69, 0x70, 0x09, 0x63, 0x79, 0x62,
    0x65, 0x72, 0x63, 0x69, 0x74, 0x79, 0x02, 0x64, 0x6b, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x04,
};

// vector-dpdk-esp-tunnel-aes128cbc-hmacsha256-spi34.pcap, frame 1: the IPv4 payload (ESP, 104
// bytes). AES-128-CBC: 16-byte IV; HMAC-SHA-256-128: 16-byte ICV.
const bytes cbc_esp = {
    0x00, 0x00, 0x00, 0x34, 0x00, 0x00, 0x00, 0x01, 0x34, 0x12, 0x67, 0x45, 0xff, 0xff, 0x00,
    0x00, 0x20, 0xbf, 0xe8, 0x39, 0x00, 0x00, 0x00, 0x00, 0x67, 0xb5, 0x46, 0x6e, 0x78, 0x17,
    0xd3, 0x5a, 0xac, 0x62, 0x62, 0x62, 0xb0, 0x57, 0x9b, 0x09, 0x19, 0x4f, 0x06, 0x59, 0xc8,
    0xb0, 0x30, 0x65, 0x1f, 0x45, 0x57, 0x41, 0x72, 0x17, 0x28, 0xe9, 0xad, 0x50, 0xbe, 0x44,
    0x1d, 0x2d, 0x9a, 0xd0, 0x48, 0x75, 0x0d, 0x1c, 0x8d, 0x24, 0xa8, 0x6f, 0x6b, 0x24, 0xb6,
    0x5d, 0x43, 0x1e, 0x55, 0xf0, 0xf7, 0x14, 0x1f, 0xf2, 0x61, 0xd4, 0xe0, 0x30, 0x16, 0xbe,
    0x1b, 0x5c, 0xcc, 0xb7, 0x66, 0x1c, 0x47, 0xad, 0x07, 0x6c, 0xd5, 0xcb, 0xce, 0x6c,
};
// Its plaintext: a 50-byte inner IPv4 UDP packet, 12 padding bytes, next header 4.
const bytes cbc_plain = {
    0x45, 0x00, 0x00, 0x32, 0x00, 0x01, 0x00, 0x00, 0x1f, 0x11, 0x17, 0x8b, 0xc0, 0xa8, 0x01, 0x6f,
    0xc0, 0xa8, 0x01, 0x70, 0x00, 0x09, 0x00, 0x09, 0x00, 0x1e, 0x00, 0x00, 0xbe, 0x9b, 0xe9, 0x55,
    0x00, 0x00, 0x00, 0x21, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0c, 0x04,
};

// esp-tunnel-3des-cbc-spi12345678-known-key.pcap, frame 1: the IPv4 payload (ESP, 116 bytes).
// 3DES-CBC: 8-byte IV; 12-byte ICV.
const bytes des_esp = {
    0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x01, 0x4c, 0x20, 0x45, 0x2f, 0x3c, 0xb0, 0x92,
    0x11, 0xd3, 0xa7, 0x48, 0xcd, 0xe5, 0xc8, 0x11, 0xe3, 0x9c, 0x4e, 0xe8, 0x3c, 0xfe, 0x96,
    0xa1, 0xe4, 0x2a, 0xcf, 0xd2, 0xb8, 0x7a, 0xab, 0x05, 0xd1, 0x64, 0x2b, 0xa3, 0xaf, 0x9c,
    0x1b, 0xc3, 0x42, 0x10, 0x2c, 0x40, 0xad, 0x15, 0xdf, 0x4d, 0xe0, 0x20, 0x0a, 0x63, 0x63,
    0x87, 0x34, 0x71, 0x11, 0x87, 0xd4, 0x12, 0x09, 0x3b, 0x83, 0xbf, 0xaa, 0x43, 0x19, 0x1c,
    0xbd, 0x84, 0xa4, 0x5b, 0x02, 0x76, 0x33, 0x83, 0x99, 0xb1, 0xf5, 0xca, 0x17, 0xcc, 0x92,
    0x54, 0x45, 0x7e, 0x59, 0x06, 0x55, 0x1a, 0x70, 0x41, 0xe3, 0xdc, 0x91, 0x76, 0xe8, 0x6f,
    0xd3, 0xff, 0xdd, 0x00, 0xb0, 0xbc, 0x11, 0xf8, 0x10, 0x30, 0x97,
};
// Its plaintext: an 84-byte inner ICMP echo, 2 padding bytes, next header 4.
const bytes des_plain = {
    0x45, 0x00, 0x00, 0x54, 0x00, 0x00, 0x40, 0x00, 0x3f, 0x01, 0xb8, 0xa6, 0xc0, 0x00, 0x02,
    0x01, 0xc0, 0x00, 0x01, 0x01, 0x08, 0x00, 0xba, 0xf0, 0x6f, 0x00, 0x05, 0x00, 0x23, 0x9b,
    0xc7, 0x3b, 0xf2, 0x34, 0x01, 0x00, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
    0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
    0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e,
    0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x01, 0x02, 0x02, 0x04,
};

// esp-natt-udp4500-3des-cbc-spi12345678-known-key.pcap, frame 1: the UDP 4500 payload.
const bytes natt_esp = {
    0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x01, 0xa7, 0x1a, 0x51, 0xde, 0x1c, 0xb9, 0x29,
    0x23, 0x8c, 0x4c, 0xab, 0x9e, 0xf2, 0x55, 0x0d, 0xb7, 0x64, 0x02, 0xc5, 0x01, 0xa2, 0x67,
    0x29, 0xfc, 0x8e, 0x8f, 0x7a, 0x7e, 0x63, 0xaa, 0x4b, 0x54, 0xaa, 0x59, 0xf6, 0x42, 0x17,
    0x7a, 0x29, 0x24, 0xcc, 0x23, 0x8d, 0x43, 0xb4, 0xc2, 0x8d, 0x51, 0x91, 0x23, 0x2b, 0xd1,
    0x60, 0x8e, 0x4f, 0x49, 0xc0, 0x47, 0x26, 0xb6, 0x12, 0x55, 0xc7, 0x9a, 0x5e, 0xfd, 0xc2,
    0x71, 0x51, 0x0f, 0xc0, 0x47, 0xbd, 0xd4, 0x5b, 0x64, 0x2c, 0x3b, 0x0f, 0x12, 0xb5, 0x6e,
    0x4d, 0x51, 0x49, 0xc6, 0x62, 0xbc, 0x46, 0x8f, 0x22, 0x1a, 0x52, 0xcc, 0xa3, 0x22, 0xad,
    0x5a, 0x3f, 0xe7, 0x6a, 0xe3, 0x33, 0xda, 0xc7, 0x83, 0xbe, 0x7e,
};

// malformed-esp-truncated-header.pcap, frame 1: IPv4 + UDP 4500 + 4 bytes of ESP, cut by the
// capture (record length 65613, 46 bytes kept), from the IPv4 header.
const bytes truncated_frame1 = {
    0x45, 0x00, 0x00, 0x46, 0x19, 0x01, 0x60, 0x00, 0x3c, 0x11, 0x00, 0x00, 0x00, 0xfe, 0x5c, 0xb6,
    0xff, 0x7f, 0xff, 0x79, 0x11, 0x94, 0x21, 0x18, 0x01, 0x6a, 0x66, 0x73, 0xc0, 0xf7, 0xd4, 0xc3,
};

constexpr esp::layout gcm_layout{8, 16, 1};
constexpr esp::layout cbc_layout{16, 16, 16};
constexpr esp::layout des_layout{8, 12, 8};

}  // namespace

TEST_CASE("esp: published vectors and captures split into IV, ciphertext and ICV", "[wire][esp]") {
    struct case_ {
        const bytes* packet;
        esp::layout l;
        uint32_t spi;
        size_t ciphertext;
        uint8_t iv0;
        uint8_t icv_last;
    };
    for (auto c : {case_{&gcm_esp, gcm_layout, 0xa5f8, 64, 0xfa, 0x94},
                   case_{&cbc_esp, cbc_layout, 0x34, 64, 0x34, 0x6c},
                   case_{&des_esp, des_layout, 0x12345678, 88, 0x4c, 0x97},
                   case_{&natt_esp, des_layout, 0x12345678, 88, 0xa7, 0x7e}}) {
        auto v = esp::parse(*c.packet, c.l);
        REQUIRE(v.has_value());
        CHECK(v->hdr.spi == c.spi);
        CHECK(v->hdr.sequence == 1);
        CHECK(v->body.size() == c.packet->size() - 8);
        CHECK(v->iv.size() == c.l.iv_size);
        CHECK(v->iv.data() == c.packet->data() + 8);
        CHECK(v->iv[0] == c.iv0);
        CHECK(v->ciphertext.size() == c.ciphertext);
        CHECK(v->ciphertext.data() == v->iv.data() + v->iv.size());
        CHECK(v->icv.size() == c.l.icv_size);
        CHECK(v->icv.back() == c.icv_last);
        CHECK(v->icv.data() + v->icv.size() == c.packet->data() + c.packet->size());

        // Without a layout only the header is read and the whole body is "ciphertext".
        auto bare = esp::parse(*c.packet);
        REQUIRE(bare.has_value());
        CHECK(bare->hdr == v->hdr);
        CHECK(bare->iv.empty());
        CHECK(bare->icv.empty());
        CHECK(bare->ciphertext.size() == c.packet->size() - 8);
    }
}

TEST_CASE("esp: the truncated capture is refused", "[wire][esp]") {
    auto ip = parse_ipv4(truncated_frame1, dmvpn::wire::checksum_check::skip);
    REQUIRE_FALSE(ip.has_value());
    CHECK(ip.error() == dmvpn::wire::ipv4_error::total_length_exceeds_buffer);
    auto r = esp::parse(std::span(truncated_frame1).subspan(28));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == esp::parse_error::truncated);
}

TEST_CASE("esp: every truncation is refused with its reason", "[wire][esp]") {
    for (size_t n = 0; n < cbc_esp.size(); ++n) {
        INFO(n);
        auto r = esp::parse(std::span(cbc_esp).first(n), cbc_layout);
        const size_t ciphertext = n >= 40 ? n - 40 : 0;
        if (n >= 8 + 16 + 16 + 2 && ciphertext % 16 == 0) {
            // A cut at a block boundary still looks like ESP: only the ICV check can tell.
            REQUIRE(r.has_value());
            CHECK(r->ciphertext.size() == ciphertext);
            continue;
        }
        REQUIRE_FALSE(r.has_value());
        if (n < 8) {
            CHECK(r.error() == esp::parse_error::truncated);
        } else if (n < 8 + 16 + 16 + 2) {
            CHECK(r.error() == esp::parse_error::body_too_short);
        } else {
            CHECK(r.error() == esp::parse_error::misaligned_body);
        }
    }
}

TEST_CASE("esp: SPI 0 is refused", "[wire][esp]") {
    bytes p = des_esp;
    p[0] = p[1] = p[2] = p[3] = 0;
    auto r = esp::parse(p);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == esp::parse_error::zero_spi);
    // The NAT-T non-ESP marker: four zero bytes before an IKE header.
    const bytes marker = {0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66};
    CHECK(esp::parse(marker).error() == esp::parse_error::zero_spi);
}

TEST_CASE("esp: alignment and layouts that cannot fit", "[wire][esp]") {
    // 4-byte alignment applies to stream and AEAD ciphers too.
    bytes p = gcm_esp;
    p.push_back(0);
    auto r = esp::parse(p, gcm_layout);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == esp::parse_error::misaligned_body);
    CHECK(esp::parse(p, esp::layout{8, 16, 0}).has_value());
    // 3DES's ciphertext (88 bytes) is 8-aligned but not 16-aligned.
    CHECK(esp::parse(des_esp, esp::layout{8, 12, 16}).error() == esp::parse_error::misaligned_body);
    // Sizes near SIZE_MAX must not wrap around.
    const size_t huge = SIZE_MAX - 4;
    CHECK(esp::parse(des_esp, esp::layout{huge, 12, 0}).error() ==
          esp::parse_error::body_too_short);
    CHECK(esp::parse(des_esp, esp::layout{8, huge, 0}).error() == esp::parse_error::body_too_short);
    CHECK(esp::parse(des_esp, esp::layout{huge, huge, 0}).error() ==
          esp::parse_error::body_too_short);
}

TEST_CASE("esp: the trailer of decrypted captures", "[wire][esp]") {
    struct case_ {
        const bytes* plain;
        size_t payload;
        uint8_t pad;
    };
    for (auto c : {case_{&gcm_plain, 62, 0}, case_{&cbc_plain, 50, 12}, case_{&des_plain, 84, 2}}) {
        auto t = esp::parse_trailer(*c.plain);
        REQUIRE(t.has_value());
        CHECK(t->next_header == esp::next_header_ipv4);
        CHECK(t->pad_length == c.pad);
        CHECK(t->padding.size() == c.pad);
        CHECK(t->payload.size() == c.payload);
        CHECK(t->payload.data() == c.plain->data());
        // What is left is exactly the inner IPv4 packet.
        auto inner = parse_ipv4(t->payload);
        REQUIRE(inner.has_value());
        CHECK(inner->packet.size() == t->payload.size());
    }
}

TEST_CASE("esp: padding_for and encode_trailer reproduce the senders' trailers", "[wire][esp]") {
    struct case_ {
        const bytes* plain;
        size_t payload;
        size_t block;
    };
    for (auto c : {case_{&gcm_plain, 62, 1}, case_{&cbc_plain, 50, 16}, case_{&des_plain, 84, 8}}) {
        const size_t pad = esp::padding_for(c.payload, c.block);
        CHECK(c.payload + pad + 2 == c.plain->size());
        bytes out(pad + 2);
        REQUIRE(esp::encode_trailer(pad, esp::next_header_ipv4, out) == pad + 2);
        CHECK(out == bytes(c.plain->begin() + static_cast<long>(c.payload), c.plain->end()));
    }
}

TEST_CASE("esp: padding_for fills whole blocks and 4-byte words with the least padding",
          "[wire][esp]") {
    for (size_t block : {0, 1, 2, 4, 6, 8, 16, 64, 256}) {
        const size_t align = block > 4 ? (block % 4 == 0 ? block : block * 2) : 4;
        for (size_t payload = 0; payload < 600; ++payload) {
            const size_t pad = esp::padding_for(payload, block);
            CHECK((payload + pad + 2) % align == 0);
            CHECK(pad < align);
            CHECK(pad <= esp::max_padding);
        }
    }
}

TEST_CASE("esp: trailer errors", "[wire][esp]") {
    SECTION("fewer than two bytes") {
        for (size_t n = 0; n < 2; ++n) {
            auto t = esp::parse_trailer(std::span(cbc_plain).first(n));
            REQUIRE_FALSE(t.has_value());
            CHECK(t.error() == esp::trailer_error::truncated);
        }
    }
    SECTION("pad length past the start of the plaintext") {
        // Every suffix of the CBC plaintext shorter than its 12 padding bytes + 2.
        for (size_t n = 2; n < 14; ++n) {
            auto t = esp::parse_trailer(std::span(cbc_plain).last(n));
            REQUIRE_FALSE(t.has_value());
            CHECK(t.error() == esp::trailer_error::pad_length_too_long);
        }
        // Exactly the padding and the trailer: an empty payload (a dummy packet would look so).
        auto t = esp::parse_trailer(std::span(cbc_plain).last(14));
        REQUIRE(t.has_value());
        CHECK(t->payload.empty());
        const bytes only = {0xff, 0x3b};
        CHECK(esp::parse_trailer(only).error() == esp::trailer_error::pad_length_too_long);
    }
    SECTION("padding other than 1, 2, 3, ...") {
        for (size_t i = 50; i < 62; ++i) {
            bytes p = cbc_plain;
            p[i] ^= 0x80;
            auto t = esp::parse_trailer(p);
            REQUIRE_FALSE(t.has_value());
            CHECK(t.error() == esp::trailer_error::bad_padding);
            auto loose = esp::parse_trailer(p, esp::padding_check::skip);
            REQUIRE(loose.has_value());
            CHECK(loose->pad_length == 12);
        }
        // Zero padding (what some broken peers send) is named too.
        bytes z = des_plain;
        z[84] = 0;
        z[85] = 0;
        CHECK(esp::parse_trailer(z).error() == esp::trailer_error::bad_padding);
    }
}

TEST_CASE("esp: header and trailer round trips", "[wire][esp]") {
    for (const bytes* p : {&gcm_esp, &cbc_esp, &des_esp, &natt_esp}) {
        auto v = esp::parse(*p);
        REQUIRE(v.has_value());
        bytes out(8);
        REQUIRE(esp::encode_header(v->hdr, out) == 8);
        CHECK(out == bytes(p->begin(), p->begin() + 8));
    }
    const esp::header h{0xc0f7d4c3, 0xffffffff};
    bytes b(8 + 4, 0xaa);
    REQUIRE(esp::encode_header(h, b) == 8);
    auto v = esp::parse(b);
    REQUIRE(v.has_value());
    CHECK(v->hdr == h);
    for (size_t n = 0; n < 8; ++n) {
        CHECK(esp::encode_header(h, std::span(b).first(n)) == 0);
    }

    for (size_t pad : {0, 1, 7, 255}) {
        bytes plain = {0x45, 0x00, 0x00};
        plain.resize(plain.size() + pad + 2);
        REQUIRE(esp::encode_trailer(pad, 47, std::span(plain).subspan(3)) == pad + 2);
        auto t = esp::parse_trailer(plain);
        REQUIRE(t.has_value());
        CHECK(t->pad_length == pad);
        CHECK(t->next_header == 47);
        CHECK(t->payload.size() == 3);
    }
    bytes small(10);
    bytes big(300);
    CHECK(esp::encode_trailer(256, 4, big) == 0);
    CHECK(esp::encode_trailer(9, 4, small) == 0);
    CHECK(esp::encode_trailer(8, 4, small) == 10);
}

TEST_CASE("esp: every error has its own name", "[wire][esp]") {
    std::set<std::string_view> names;
    for (size_t i = 0; i < esp::parse_error_count; ++i) {
        auto n = esp::name(static_cast<esp::parse_error>(i));
        CHECK(n != "unknown");
        names.insert(n);
    }
    CHECK(names.size() == esp::parse_error_count);
    std::set<std::string_view> tnames;
    for (size_t i = 0; i < esp::trailer_error_count; ++i) {
        auto n = esp::name(static_cast<esp::trailer_error>(i));
        CHECK(n != "unknown");
        tnames.insert(n);
    }
    CHECK(tnames.size() == esp::trailer_error_count);
}
