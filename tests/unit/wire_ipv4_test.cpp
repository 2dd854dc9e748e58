// IPv4 codec: captured packets, every truncation, lying lengths, checksums, round trips.
#include <array>
#include <catch2/catch.hpp>
#include <set>
#include <vector>

#include "dataplane/wire/gre.hpp"
#include "dataplane/wire/ipv4.hpp"

using namespace dmvpn::wire;

namespace {

using bytes = std::vector<uint8_t>;

// cisco-ios-gre-key40-keepalives-cdp-ciscometadata-icmp-pim.pcap, frame 25, from the IPv4 header
// (after Ethernet + 802.1Q): GRE key 40 carrying Cisco MetaData carrying an ICMP echo request.
const bytes key40_frame25 = {
    0x45, 0x00, 0x00, 0x88, 0x00, 0x91, 0x00, 0x00, 0xff, 0x2f, 0x25, 0x51, 0x0a, 0xac, 0x40, 0x06,
    0x0a, 0xac, 0x40, 0x07, 0x20, 0x00, 0x89, 0x09, 0x00, 0x00, 0x00, 0x28, 0x08, 0x00, 0x01, 0x01,
    0x00, 0x01, 0x00, 0x00, 0x45, 0x00, 0x00, 0x64, 0x00, 0x05, 0x00, 0x00, 0xff, 0x01, 0x61, 0x04,
    0xac, 0x11, 0x01, 0x36, 0xac, 0x11, 0x01, 0x37, 0x08, 0x00, 0x64, 0xfe, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x19, 0x3f, 0xab, 0xcd, 0xab, 0xcd, 0xab, 0xcd, 0xab, 0xcd,
    0xab, 0xcd, 0xab, 0xcd, 0xab, 0xcd, 0xab, 0xcd, 0xab, 0xcd, 0xab, 0xcd, 0xab, 0xcd, 0xab, 0xcd,
    0xab, 0xcd, 0xab, 0xcd, 0xab, 0xcd, 0xab, 0xcd, 0xab, 0xcd, 0xab, 0xcd, 0xab, 0xcd, 0xab, 0xcd,
    0xab, 0xcd, 0xab, 0xcd, 0xab, 0xcd, 0xab, 0xcd, 0xab, 0xcd, 0xab, 0xcd, 0xab, 0xcd, 0xab, 0xcd,
    0xab, 0xcd, 0xab, 0xcd, 0xab, 0xcd, 0xab, 0xcd,
};

// Same capture, frame 11: R2's GRE keepalive (outer GRE key 40 + MetaData, inner IPv4 holding a
// GRE header with protocol 0 addressed back to R2).
const bytes key40_frame11 = {
    0x45, 0xc0, 0x00, 0x40, 0x00, 0xa4, 0x00, 0x00, 0xff, 0x2f, 0x24, 0xc6, 0x0a, 0xac, 0x40, 0x07,
    0x0a, 0xac, 0x40, 0x06, 0x20, 0x00, 0x89, 0x09, 0x00, 0x00, 0x00, 0x28, 0x08, 0x00, 0x01, 0x01,
    0x00, 0x01, 0x00, 0x00, 0x45, 0xc0, 0x00, 0x1c, 0x00, 0xa3, 0x00, 0x00, 0xff, 0x2f, 0x24, 0xeb,
    0x0a, 0xac, 0x40, 0x06, 0x0a, 0xac, 0x40, 0x07, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x28,
};

// Same capture, frame 12: R1 sends frame 11's inner packet back, its TTL one lower.
const bytes key40_frame12 = {
    0x45, 0xc0, 0x00, 0x1c, 0x00, 0xa3, 0x00, 0x00, 0xfe, 0x2f, 0x25, 0xeb, 0x0a, 0xac,
    0x40, 0x06, 0x0a, 0xac, 0x40, 0x07, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x28,
};

// Cisco MetaData (GRE protocol 0x8909) that IOS puts before the inner packet in this capture.
constexpr size_t cisco_metadata_size = 8;

uint32_t addr(const char* text) {
    auto a = parse_ipv4_address(text);
    REQUIRE(a.has_value());
    return *a;
}

bytes encode(const ipv4_header& h, std::span<const uint8_t> options = {}) {
    bytes out(ipv4_max_header_size);
    const size_t n = encode_ipv4(h, options, out);
    REQUIRE(n != 0);
    out.resize(n);
    return out;
}

}  // namespace

TEST_CASE("ipv4: a captured GRE packet parses field by field", "[wire][ipv4]") {
    auto ip = parse_ipv4(key40_frame25);
    REQUIRE(ip.has_value());
    const ipv4_header& h = ip->hdr;
    CHECK(h.ihl == 5);
    CHECK(h.tos == 0);
    CHECK(h.total_length == 136);
    CHECK(h.id == 0x0091);
    CHECK_FALSE(h.reserved_flag);
    CHECK_FALSE(h.df);
    CHECK_FALSE(h.mf);
    CHECK(h.fragment_offset == 0);
    CHECK_FALSE(h.is_fragment());
    CHECK(h.ttl == 255);
    CHECK(h.protocol == ip_proto::gre);
    CHECK(h.checksum == 0x2551);
    CHECK(format_ipv4(h.src) == "10.172.64.6");
    CHECK(format_ipv4(h.dst) == "10.172.64.7");
    CHECK(ip->options.empty());
    CHECK(ip->header.size() == 20);
    CHECK(ip->payload.size() == 116);
    CHECK(ip->payload.data() == key40_frame25.data() + 20);
    CHECK(ip->packet.size() == key40_frame25.size());

    // The ICMP echo two encapsulations down is a valid IPv4 packet too.
    auto gre = parse_gre(ip->payload);
    REQUIRE(gre.has_value());
    auto inner = parse_ipv4(gre->payload.subspan(cisco_metadata_size));
    REQUIRE(inner.has_value());
    CHECK(inner->hdr.protocol == ip_proto::icmp);
    CHECK(inner->hdr.total_length == 100);
    CHECK(format_ipv4(inner->hdr.src) == "172.17.1.54");
    CHECK(format_ipv4(inner->hdr.dst) == "172.17.1.55");
    CHECK(inner->payload.size() == 80);
}

TEST_CASE(
    "ipv4: a keepalive's inner packet, TTL decremented and checksum refreshed, is what "
    "the peer sent back",
    "[wire][ipv4]") {
    auto outer = parse_ipv4(key40_frame11);
    REQUIRE(outer.has_value());
    CHECK(outer->hdr.tos == 0xc0);
    auto gre = parse_gre(outer->payload);
    REQUIRE(gre.has_value());
    auto inner = parse_ipv4(gre->payload.subspan(cisco_metadata_size));
    REQUIRE(inner.has_value());
    // Addressed back to the sender of the outer packet: that is what makes it a keepalive.
    CHECK(inner->hdr.dst == outer->hdr.src);
    CHECK(inner->hdr.src == outer->hdr.dst);
    CHECK(inner->hdr.protocol == ip_proto::gre);

    bytes forwarded(inner->packet.begin(), inner->packet.end());
    forwarded[8] = static_cast<uint8_t>(forwarded[8] - 1);
    REQUIRE(refresh_ipv4_checksum(forwarded));
    CHECK(forwarded == key40_frame12);

    // Encoding the parsed header with the new TTL gives the same bytes.
    ipv4_header h = inner->hdr;
    h.ttl = 254;
    bytes hdr = encode(h);
    CHECK(bytes(key40_frame12.begin(), key40_frame12.begin() + 20) == hdr);
}

TEST_CASE("ipv4: every truncation of a captured packet is refused with its reason",
          "[wire][ipv4]") {
    for (size_t n = 0; n < key40_frame25.size(); ++n) {
        auto r = parse_ipv4(std::span(key40_frame25).first(n));
        REQUIRE_FALSE(r.has_value());
        if (n < 20) {
            CHECK(r.error() == ipv4_error::truncated);
        } else {
            CHECK(r.error() == ipv4_error::total_length_exceeds_buffer);
        }
    }
    CHECK(parse_ipv4(key40_frame25).has_value());
}

TEST_CASE("ipv4: bytes past total length (link padding) are not payload", "[wire][ipv4]") {
    bytes padded = key40_frame12;
    padded.resize(padded.size() + 18, 0);
    auto r = parse_ipv4(padded);
    REQUIRE(r.has_value());
    CHECK(r->packet.size() == 28);
    CHECK(r->payload.size() == 8);
}

TEST_CASE("ipv4: lengths that lie", "[wire][ipv4]") {
    SECTION("IHL below 5") {
        for (uint8_t ihl = 0; ihl < 5; ++ihl) {
            bytes p = key40_frame12;
            p[0] = static_cast<uint8_t>(0x40 | ihl);
            auto r = parse_ipv4(p, checksum_check::skip);
            REQUIRE_FALSE(r.has_value());
            CHECK(r.error() == ipv4_error::bad_ihl);
        }
    }
    SECTION("IHL past the buffer") {
        bytes p = key40_frame12;
        p[0] = 0x48;  // 32-byte header in a 28-byte buffer
        auto r = parse_ipv4(p, checksum_check::skip);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error() == ipv4_error::header_truncated);
    }
    SECTION("IHL within the buffer but past total length") {
        bytes p = key40_frame12;
        p[0] = 0x46;  // 24-byte header, total length 28: fine
        CHECK(parse_ipv4(p, checksum_check::skip).has_value());
        p[0] = 0x47;  // 28-byte header, total length 28: fine, empty payload
        auto ok = parse_ipv4(p, checksum_check::skip);
        REQUIRE(ok.has_value());
        CHECK(ok->payload.empty());
        CHECK(ok->options.size() == 8);
        p.resize(40, 0);
        p[0] = 0x48;  // 32-byte header, total length 28
        auto r = parse_ipv4(p, checksum_check::skip);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error() == ipv4_error::total_length_below_header);
    }
    SECTION("total length below 20 or past the buffer") {
        for (uint16_t len : {0, 1, 19}) {
            bytes p = key40_frame12;
            p[2] = 0;
            p[3] = static_cast<uint8_t>(len);
            auto r = parse_ipv4(p, checksum_check::skip);
            REQUIRE_FALSE(r.has_value());
            CHECK(r.error() == ipv4_error::total_length_below_header);
        }
        for (uint16_t len : {29, 0x100, 0xffff}) {
            bytes p = key40_frame12;
            p[2] = static_cast<uint8_t>(len >> 8);
            p[3] = static_cast<uint8_t>(len);
            auto r = parse_ipv4(p, checksum_check::skip);
            REQUIRE_FALSE(r.has_value());
            CHECK(r.error() == ipv4_error::total_length_exceeds_buffer);
        }
    }
    SECTION("version other than 4") {
        for (uint8_t v : {0, 1, 6, 15}) {
            bytes p = key40_frame12;
            p[0] = static_cast<uint8_t>((v << 4) | 5);
            auto r = parse_ipv4(p, checksum_check::skip);
            REQUIRE_FALSE(r.has_value());
            CHECK(r.error() == ipv4_error::bad_version);
        }
    }
}

TEST_CASE("ipv4: every single-bit error in the header fails the checksum or an earlier check",
          "[wire][ipv4]") {
    for (size_t byte = 0; byte < 20; ++byte) {
        for (int bit = 0; bit < 8; ++bit) {
            bytes p = key40_frame12;
            p[byte] ^= static_cast<uint8_t>(1u << bit);
            auto r = parse_ipv4(p);
            REQUIRE_FALSE(r.has_value());
            if (byte >= 4) {
                // Past version, IHL and total length only the checksum can notice.
                CHECK(r.error() == ipv4_error::bad_checksum);
                CHECK(parse_ipv4(p, checksum_check::skip).has_value());
            }
        }
    }
    // A payload change is not the header checksum's business.
    bytes p = key40_frame12;
    p[27] ^= 0xff;
    CHECK(parse_ipv4(p).has_value());
}

TEST_CASE("ipv4: flags and fragment offset decode bit by bit", "[wire][ipv4]") {
    ipv4_header h;
    h.total_length = 20;
    h.ttl = 64;
    h.protocol = ip_proto::udp;
    h.src = addr("192.0.2.1");
    h.dst = addr("198.51.100.7");
    struct case_ {
        bool rf, df, mf;
        uint16_t off;
        uint16_t wire;
    };
    for (auto c : {case_{true, false, false, 0, 0x8000}, case_{false, true, false, 0, 0x4000},
                   case_{false, false, true, 0, 0x2000}, case_{false, false, false, 0x1fff, 0x1fff},
                   case_{true, true, true, 0x0123, 0xe123}}) {
        h.reserved_flag = c.rf;
        h.df = c.df;
        h.mf = c.mf;
        h.fragment_offset = c.off;
        bytes b = encode(h);
        CHECK(((b[6] << 8) | b[7]) == c.wire);
        auto r = parse_ipv4(b);
        REQUIRE(r.has_value());
        CHECK(r->hdr.reserved_flag == c.rf);
        CHECK(r->hdr.df == c.df);
        CHECK(r->hdr.mf == c.mf);
        CHECK(r->hdr.fragment_offset == c.off);
        CHECK(r->hdr.is_fragment() == (c.mf || c.off != 0));
    }
}

TEST_CASE("ipv4: round trips", "[wire][ipv4]") {
    SECTION("parse then encode gives the captured header bytes") {
        for (const bytes* cap : {&key40_frame25, &key40_frame11, &key40_frame12}) {
            auto r = parse_ipv4(*cap);
            REQUIRE(r.has_value());
            CHECK(encode(r->hdr, r->options) == bytes(r->header.begin(), r->header.end()));
        }
    }
    SECTION("encode then parse gives the same header, options included") {
        const std::array<uint8_t, 8> options = {0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00};
        for (size_t words = 0; words <= 2; ++words) {
            ipv4_header h;
            h.ihl = static_cast<uint8_t>(5 + words);
            h.tos = 0xb8;
            h.id = 0xbeef;
            h.df = true;
            h.ttl = 1;
            h.protocol = ip_proto::esp;
            h.src = addr("203.0.113.254");
            h.dst = addr("10.0.0.1");
            h.total_length = static_cast<uint16_t>(20 + words * 4 + 3);
            bytes b = encode(h, std::span(options).first(words * 4));
            CHECK(b.size() == h.header_length());
            b.insert(b.end(), {1, 2, 3});
            auto r = parse_ipv4(b);
            REQUIRE(r.has_value());
            h.checksum = r->hdr.checksum;  // computed by encode
            CHECK(r->hdr == h);
            CHECK(bytes(r->options.begin(), r->options.end()) ==
                  bytes(options.begin(), options.begin() + static_cast<long>(words * 4)));
            CHECK(r->payload.size() == 3);
        }
    }
}

TEST_CASE("ipv4: encode refuses bad options and short buffers", "[wire][ipv4]") {
    ipv4_header h;
    std::array<uint8_t, 64> out{};
    const std::array<uint8_t, 44> options{};
    CHECK(encode_ipv4(h, std::span(options).first(3), out) == 0);
    CHECK(encode_ipv4(h, std::span(options).first(44), out) == 0);
    CHECK(encode_ipv4(h, std::span(options).first(40), out) == 60);
    CHECK(out[0] == 0x4f);
    for (size_t n = 0; n < 24; ++n) {
        CHECK(encode_ipv4(h, std::span(options).first(4), std::span(out).first(n)) == 0);
    }
    CHECK(encode_ipv4(h, std::span(options).first(4), std::span(out).first(24)) == 24);
}

TEST_CASE("ipv4: refresh_ipv4_checksum refuses what is not a header", "[wire][ipv4]") {
    bytes p = key40_frame12;
    CHECK_FALSE(refresh_ipv4_checksum(std::span(p).first(19)));
    p[0] = 0x44;
    CHECK_FALSE(refresh_ipv4_checksum(p));
    p[0] = 0x48;
    CHECK_FALSE(refresh_ipv4_checksum(p));  // 32-byte header in 28 bytes
    CHECK(bytes(p.begin() + 1, p.end()) == bytes(key40_frame12.begin() + 1, key40_frame12.end()));
}

TEST_CASE("ipv4: dotted-quad helpers", "[wire][ipv4]") {
    CHECK(parse_ipv4_address("0.0.0.0") == 0u);
    CHECK(parse_ipv4_address("255.255.255.255") == 0xffffffffu);
    CHECK(parse_ipv4_address("169.254.100.5") == 0xa9fe6405u);
    CHECK(format_ipv4(0xa9fe6405u) == "169.254.100.5");
    CHECK(format_ipv4(0) == "0.0.0.0");
    CHECK(ipv4_bytes(0xa9fe6405u) == bytes{0xa9, 0xfe, 0x64, 0x05});
    for (const char* bad :
         {"", "1", "1.2.3", "1.2.3.4.", "1.2.3.4.5", "256.1.1.1", "1.2.3.-4", "01.2.3.4", "1..3.4",
          " 1.2.3.4", "1.2.3.4 ", "1.2.3.0004", "1.2.3.a", "1.2.3.1000", "9999999999.1.1.1"}) {
        INFO(bad);
        CHECK_FALSE(parse_ipv4_address(bad).has_value());
    }
    for (uint32_t a : {0x01020304u, 0x0a000001u, 0xc0a80101u, 0xfffffffeu}) {
        CHECK(parse_ipv4_address(format_ipv4(a)) == a);
    }
}

TEST_CASE("ipv4: every error has its own name", "[wire][ipv4]") {
    std::set<std::string_view> names;
    for (size_t i = 0; i < ipv4_error_count; ++i) {
        auto n = name(static_cast<ipv4_error>(i));
        CHECK(n != "unknown");
        names.insert(n);
    }
    CHECK(names.size() == ipv4_error_count);
}
