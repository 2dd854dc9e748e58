// GRE codec (RFC 2784 + RFC 2890): captured headers, flags that lie, reserved bits, checksums,
// round trips.
#include <catch2/catch.hpp>
#include <set>
#include <vector>

#include "dataplane/wire/gre.hpp"
#include "dataplane/wire/ipv4.hpp"

using namespace dmvpn::wire;

namespace {

using bytes = std::vector<uint8_t>;

// cisco-ios-nhrp-regreq-regreply-natext-auth-NHRPAUTH-grekey2.pcap, frame 1, from the IPv4
// header (after Ethernet + 802.1Q 100): a Registration Request in GRE key 2.
const bytes key2_frame1 = {
    0x45, 0xc0, 0x00, 0x88, 0x00, 0x10, 0x00, 0x00, 0xff, 0x2f, 0x9e, 0x73, 0xa9, 0xfe, 0x64, 0x01,
    0xa9, 0xfe, 0x64, 0x05, 0x20, 0x00, 0x20, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x08, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x6c, 0x19, 0x7b, 0x00, 0x34, 0x01, 0x03, 0x04, 0x00,
    0x04, 0x04, 0x80, 0x02, 0x00, 0x00, 0x00, 0x01, 0xa9, 0xfe, 0x64, 0x01, 0x9b, 0x01, 0x00, 0x01,
    0x9b, 0x01, 0x00, 0x05, 0x00, 0x20, 0x00, 0x00, 0x45, 0xf8, 0x1c, 0x20, 0x00, 0x00, 0x00, 0x00,
    0x80, 0x03, 0x00, 0x00, 0x80, 0x04, 0x00, 0x00, 0x80, 0x05, 0x00, 0x00, 0x80, 0x07, 0x00, 0x0c,
    0x00, 0x00, 0x00, 0x01, 0x4e, 0x48, 0x52, 0x50, 0x41, 0x55, 0x54, 0x48, 0x00, 0x09, 0x00, 0x14,
    0x00, 0x20, 0x00, 0x00, 0x45, 0xf8, 0x00, 0x00, 0x04, 0x00, 0x04, 0x00, 0xa9, 0xfe, 0x64, 0x05,
    0x9b, 0x01, 0x00, 0x05, 0x80, 0x00, 0x00, 0x00,
};

// cisco-ios-nhrp-phase3-traffic-indication-resreq-forwarded-resreply-grekey1000.pcap, frame 2,
// from the IPv4 header: spoke .3's Resolution Request to the hub in GRE key 1000.
const bytes key1000_frame2 = {
    0x45, 0xc0, 0x00, 0x72, 0x00, 0x0e, 0x00, 0x00, 0xff, 0x2f, 0xa9, 0x38, 0xc0, 0xa8, 0xc8,
    0x03, 0xc0, 0xa8, 0xc8, 0x01, 0x20, 0x00, 0x20, 0x01, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x01,
    0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x56, 0xaa, 0x37, 0x00, 0x34, 0x01,
    0x01, 0x04, 0x00, 0x04, 0x04, 0xc8, 0x02, 0x00, 0x00, 0x00, 0x05, 0xc0, 0xa8, 0xc8, 0x03,
    0x0a, 0xff, 0xff, 0x03, 0x0a, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x05, 0xea, 0x1c,
    0x20, 0x00, 0x00, 0x00, 0x00, 0x80, 0x03, 0x00, 0x00, 0x80, 0x04, 0x00, 0x00, 0x80, 0x05,
    0x00, 0x00, 0x80, 0x07, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x01, 0x73, 0x65, 0x63, 0x72, 0x65,
    0x74, 0x00, 0x09, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00,
};

// cisco-ios-gre-key40-keepalives-cdp-ciscometadata-icmp-pim.pcap, frame 12, from the IPv4
// header: a GRE keepalive reflected back, GRE key 40, protocol 0, nothing after the header.
const bytes key40_frame12 = {
    0x45, 0xc0, 0x00, 0x1c, 0x00, 0xa3, 0x00, 0x00, 0xfe, 0x2f, 0x25, 0xeb, 0x0a, 0xac,
    0x40, 0x06, 0x0a, 0xac, 0x40, 0x07, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x28,
};

// Made with scapy 2.5 (GRE(chksum_present=1, key_present=1, seqnum_present=1, key=40,
// sequence 7, proto=0x2001) / 15 payload bytes): an odd-length packet whose checksum another
// implementation computed.
const bytes scapy_cks_key_seq = {
    0xb0, 0x00, 0x20, 0x01, 0x53, 0x55, 0x00, 0x00, 0x00, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00, 0x07,
    0x00, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x15, 0x6f, 0x64, 0x64,
};
// Made with scapy 2.5: GRE(chksum_present=1, proto=0x0800) / b"\x45\x00".
const bytes scapy_cks_only = {0x80, 0x00, 0x08, 0x00, 0x32, 0xff, 0x00, 0x00, 0x45, 0x00};

std::span<const uint8_t> gre_of(const bytes& ip_packet) {
    auto ip = parse_ipv4(ip_packet);
    REQUIRE(ip.has_value());
    REQUIRE(ip->hdr.protocol == ip_proto::gre);
    return ip->payload;
}

bytes encode(const gre_header& h) {
    bytes out(gre_max_header_size);
    const size_t n = encode_gre(h, out);
    REQUIRE(n == h.header_length());
    out.resize(n);
    return out;
}

}  // namespace

TEST_CASE("gre: captured NHRP in GRE key 2 and key 1000", "[wire][gre]") {
    auto g2 = parse_gre(gre_of(key2_frame1));
    REQUIRE(g2.has_value());
    CHECK(g2->hdr.key_present);
    CHECK_FALSE(g2->hdr.checksum_present);
    CHECK_FALSE(g2->hdr.sequence_present);
    CHECK(g2->hdr.key == 2);
    CHECK(g2->hdr.protocol == gre_proto::nhrp);
    CHECK(g2->hdr.version == 0);
    CHECK(g2->hdr.reserved0 == 0);
    CHECK(g2->header_length == 8);
    // The NHRP packet fills the rest: its own packet size field (offset 10) says 108.
    REQUIRE(g2->payload.size() == 108);
    CHECK(((g2->payload[10] << 8) | g2->payload[11]) == 108);

    auto g1000 = parse_gre(gre_of(key1000_frame2));
    REQUIRE(g1000.has_value());
    CHECK(g1000->hdr.key == 1000);
    CHECK(g1000->hdr.protocol == gre_proto::nhrp);
    REQUIRE(g1000->payload.size() == 86);
    CHECK(((g1000->payload[10] << 8) | g1000->payload[11]) == 86);
}

TEST_CASE("gre: a captured keepalive reflection is key 40, protocol 0, no payload", "[wire][gre]") {
    auto g = parse_gre(gre_of(key40_frame12));
    REQUIRE(g.has_value());
    CHECK(g->hdr.key_present);
    CHECK(g->hdr.key == 40);
    CHECK(g->hdr.protocol == 0);
    CHECK(g->payload.empty());
}

TEST_CASE("gre: checksums computed by scapy verify, and every payload bit is covered",
          "[wire][gre]") {
    auto g = parse_gre(scapy_cks_key_seq);
    REQUIRE(g.has_value());
    CHECK(g->hdr.checksum_present);
    CHECK(g->hdr.key_present);
    CHECK(g->hdr.sequence_present);
    CHECK(g->hdr.checksum == 0x5355);
    CHECK(g->hdr.key == 40);
    CHECK(g->hdr.sequence == 7);
    CHECK(g->header_length == 16);
    CHECK(g->payload.size() == 15);
    CHECK(parse_gre(scapy_cks_only).has_value());

    // fill_gre_checksum reproduces scapy's value from a zeroed field.
    bytes p = scapy_cks_key_seq;
    p[4] = 0;
    p[5] = 0;
    REQUIRE(fill_gre_checksum(p));
    CHECK(p == scapy_cks_key_seq);

    for (size_t i = 0; i < p.size(); ++i) {
        bytes q = scapy_cks_key_seq;
        q[i] ^= 0x01;
        auto r = parse_gre(q);
        REQUIRE_FALSE(r.has_value());
        // Byte 0's low bit is reserved0 (ignored, so the checksum notices); byte 1's is version.
        CHECK(r.error() == (i == 1 ? gre_error::bad_version : gre_error::bad_checksum));
        if (i != 1) {
            CHECK(parse_gre(q, checksum_check::skip).has_value());
        }
    }
}

TEST_CASE("gre: every truncation is refused with its reason", "[wire][gre]") {
    for (const bytes* p : {&scapy_cks_key_seq, &scapy_cks_only}) {
        const size_t header = (*p)[0] == 0xb0 ? 16 : 8;
        for (size_t n = 0; n < header; ++n) {
            auto r = parse_gre(std::span(*p).first(n));
            REQUIRE_FALSE(r.has_value());
            CHECK(r.error() == (n < 4 ? gre_error::truncated : gre_error::fields_truncated));
        }
    }
    // Without C a truncated payload is just a shorter payload: GRE has no length field.
    auto k = gre_of(key2_frame1);
    for (size_t n = 8; n <= k.size(); ++n) {
        auto r = parse_gre(k.first(n));
        REQUIRE(r.has_value());
        CHECK(r->payload.size() == n - 8);
    }
}

TEST_CASE("gre: flags announcing fields that are not there", "[wire][gre]") {
    // 4 bytes whose flags claim more: each of C, K, S alone needs 4 more bytes.
    for (uint8_t flags : {0x80, 0x20, 0x10, 0xb0}) {
        const bytes p = {flags, 0x00, 0x08, 0x00};
        auto r = parse_gre(p);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error() == gre_error::fields_truncated);
    }
    // K and S set but only the key is there.
    const bytes ks = {0x30, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x28};
    auto r = parse_gre(ks);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == gre_error::fields_truncated);
}

TEST_CASE("gre: reserved bits and version", "[wire][gre]") {
    SECTION("bits 1, 4 and 5 make the packet discarded") {
        for (uint16_t bit : {1, 4, 5}) {
            const uint16_t flags = static_cast<uint16_t>(0x2000 | (0x8000 >> bit));
            const bytes p = {static_cast<uint8_t>(flags >> 8),
                             static_cast<uint8_t>(flags),
                             0x08,
                             0x00,
                             0x00,
                             0x00,
                             0x00,
                             0x28};
            auto r = parse_gre(p);
            REQUIRE_FALSE(r.has_value());
            CHECK(r.error() == gre_error::reserved_bits_set);
        }
    }
    SECTION("bits 6-12 are ignored but kept for the round trip") {
        for (uint16_t bit = 6; bit <= 12; ++bit) {
            const uint16_t flags = static_cast<uint16_t>(0x8000 >> bit);
            const bytes p = {static_cast<uint8_t>(flags >> 8), static_cast<uint8_t>(flags), 0x08,
                             0x00};
            auto r = parse_gre(p);
            REQUIRE(r.has_value());
            CHECK(r->hdr.reserved0 == (1u << (12 - bit)));
            CHECK(encode(r->hdr) == p);
        }
    }
    SECTION("versions 1 to 7 are refused (1 is PPTP's enhanced GRE)") {
        for (uint8_t v = 1; v <= 7; ++v) {
            const bytes p = {0x00, v, 0x88, 0x0b};
            auto r = parse_gre(p);
            REQUIRE_FALSE(r.has_value());
            CHECK(r.error() == gre_error::bad_version);
        }
    }
}

TEST_CASE("gre: round trips over every combination of C, K and S", "[wire][gre]") {
    for (int combo = 0; combo < 8; ++combo) {
        gre_header h;
        h.checksum_present = (combo & 1) != 0;
        h.key_present = (combo & 2) != 0;
        h.sequence_present = (combo & 4) != 0;
        h.protocol = gre_proto::ipv4;
        h.reserved0 = 0x55;
        if (h.checksum_present) {
            h.reserved1 = 0x1234;
        }
        if (h.key_present) {
            h.key = 0xdeadbeef;
        }
        if (h.sequence_present) {
            h.sequence = 0xfffffffe;
        }
        bytes p = encode(h);
        CHECK(p.size() ==
              4 + 4 * static_cast<size_t>(__builtin_popcount(static_cast<unsigned>(combo))));
        p.insert(p.end(), {0x45, 0x00, 0x00});
        if (h.checksum_present) {
            REQUIRE(fill_gre_checksum(p));
        } else {
            CHECK_FALSE(fill_gre_checksum(p));
        }
        auto r = parse_gre(p);
        REQUIRE(r.has_value());
        h.checksum = r->hdr.checksum;
        CHECK(r->hdr == h);
        CHECK(r->header_length == h.header_length());
        CHECK(r->payload.size() == 3);
        // parse then encode: the same header bytes.
        CHECK(encode(r->hdr) == bytes(p.begin(), p.begin() + static_cast<long>(r->header_length)));
    }
    for (const bytes* cap : {&key2_frame1, &key1000_frame2, &key40_frame12}) {
        auto g = gre_of(*cap);
        auto r = parse_gre(g);
        REQUIRE(r.has_value());
        CHECK(encode(r->hdr) == bytes(g.begin(), g.begin() + static_cast<long>(r->header_length)));
    }
}

TEST_CASE("gre: encode and fill_gre_checksum refuse short buffers", "[wire][gre]") {
    gre_header h;
    h.checksum_present = true;
    h.key_present = true;
    h.sequence_present = true;
    bytes out(16);
    for (size_t n = 0; n < 16; ++n) {
        CHECK(encode_gre(h, std::span(out).first(n)) == 0);
    }
    CHECK(encode_gre(h, out) == 16);
    CHECK_FALSE(fill_gre_checksum(std::span(out).first(7)));
    CHECK(fill_gre_checksum(std::span(out).first(8)));
}

TEST_CASE("gre: every error has its own name", "[wire][gre]") {
    std::set<std::string_view> names;
    for (size_t i = 0; i < gre_error_count; ++i) {
        auto n = name(static_cast<gre_error>(i));
        CHECK(n != "unknown");
        names.insert(n);
    }
    CHECK(names.size() == gre_error_count);
}
