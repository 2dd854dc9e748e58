// Ethernet header and ARP codec: a hand-laid request, every truncation, foreign hardware or
// protocol types, round trips and short output buffers.
#include <catch2/catch.hpp>
#include <set>
#include <string_view>
#include <vector>

#include "dataplane/wire/arp.hpp"

using namespace dmvpn::wire;

namespace {

using bytes = std::vector<uint8_t>;

// "Who has 192.0.2.1? Tell 192.0.2.2" from 02:00:00:00:00:02, laid out by hand from RFC 826:
// broadcast Ethernet header, then the 28-byte body with an all-zero target hardware address.
const bytes request_frame = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x06,
    0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
    0xc0, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x02, 0x01,
};

const mac_address host_mac{0x02, 0x00, 0x00, 0x00, 0x00, 0x02};

std::span<const uint8_t> body_of(const bytes& frame) {
    return std::span(frame).subspan(eth_header_size);
}

}  // namespace

TEST_CASE("parse_eth reads the header and leaves the rest as payload") {
    auto e = parse_eth(request_frame);
    REQUIRE(e);
    CHECK(e->hdr.dst == broadcast_mac);
    CHECK(e->hdr.src == host_mac);
    CHECK(e->hdr.type == ethertype_arp);
    CHECK(e->payload.size() == arp_body_size);
    CHECK(e->payload.data() == request_frame.data() + eth_header_size);
}

TEST_CASE("parse_eth refuses anything shorter than 14 bytes") {
    for (size_t n = 0; n < eth_header_size; ++n) {
        auto e = parse_eth(std::span(request_frame).first(n));
        REQUIRE_FALSE(e);
        CHECK(e.error() == eth_error::truncated);
    }
    auto bare = parse_eth(std::span(request_frame).first(eth_header_size));
    REQUIRE(bare);
    CHECK(bare->payload.empty());
}

TEST_CASE("encode_eth writes what parse_eth reads") {
    const eth_header h{host_mac, broadcast_mac, ethertype_ipv4};
    bytes out(eth_header_size, 0xaa);
    REQUIRE(encode_eth(h, out) == eth_header_size);
    auto back = parse_eth(out);
    REQUIRE(back);
    CHECK(back->hdr == h);
    bytes small(eth_header_size - 1, 0xaa);
    CHECK(encode_eth(h, small) == 0);
    CHECK(small == bytes(eth_header_size - 1, 0xaa));
}

TEST_CASE("parse_arp reads a request") {
    auto a = parse_arp(body_of(request_frame));
    REQUIRE(a);
    CHECK(a->op == arp_request);
    CHECK(a->sender_mac == host_mac);
    CHECK(a->sender_ip == 0xc0000202);
    CHECK(a->target_mac == mac_address{});
    CHECK(a->target_ip == 0xc0000201);
}

TEST_CASE("parse_arp calls every short body truncated") {
    auto body = body_of(request_frame);
    for (size_t n = 0; n < arp_body_size; ++n) {
        auto a = parse_arp(body.first(n));
        REQUIRE_FALSE(a);
        CHECK(a.error() == arp_error::truncated);
    }
}

TEST_CASE("parse_arp refuses hardware or protocol other than Ethernet and IPv4") {
    // Offsets in the body: hardware type, protocol type, hardware length, protocol length.
    for (size_t at : {1u, 2u, 4u, 5u}) {
        bytes body(body_of(request_frame).begin(), body_of(request_frame).end());
        body[at] ^= 0x10;
        auto a = parse_arp(body);
        REQUIRE_FALSE(a);
        CHECK(a.error() == arp_error::not_ethernet_ip);
    }
}

TEST_CASE("parse_arp leaves the operation to the caller") {
    bytes body(body_of(request_frame).begin(), body_of(request_frame).end());
    body[7] = 9;
    auto a = parse_arp(body);
    REQUIRE(a);
    CHECK(a->op == 9);
}

TEST_CASE("encode_arp reproduces the hand-laid request and round-trips a reply") {
    const arp_message request{arp_request, host_mac, 0xc0000202, {}, 0xc0000201};
    bytes out(arp_body_size);
    REQUIRE(encode_arp(request, out) == arp_body_size);
    CHECK(out == bytes(body_of(request_frame).begin(), body_of(request_frame).end()));

    const arp_message reply{arp_reply, {0x02, 0, 0, 0, 0, 0x01}, 0xc0000201, host_mac, 0xc0000202};
    REQUIRE(encode_arp(reply, out) == arp_body_size);
    auto back = parse_arp(out);
    REQUIRE(back);
    CHECK(*back == reply);

    bytes small(arp_body_size - 1);
    CHECK(encode_arp(reply, small) == 0);
}

TEST_CASE("every ARP and Ethernet refusal has its own name") {
    std::set<std::string_view> names{name(arp_error::truncated), name(arp_error::not_ethernet_ip)};
    CHECK(names.size() == 2);
    CHECK(names.count("unknown") == 0);
    CHECK(name(eth_error::truncated) == "truncated");
}
