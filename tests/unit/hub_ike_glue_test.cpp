// The control lcore's IKE glue (control/hub/ike_glue): punted UDP 500/4500 to ike::datagram,
// ike::datagram to IPv4/UDP, CHILD_SA transforms to the dataplane's SA parameters.
#include <catch2/catch.hpp>

#include "control/hub/frames.hpp"
#include "control/hub/ike_glue.hpp"
#include "crypto/engine.hpp"
#include "dataplane/wire/checksum.hpp"
#include "dataplane/wire/reader.hpp"

using namespace dmvpn;
using namespace dmvpn::hub;

namespace {

constexpr uint32_t spoke = 0xcb007107;  // 203.0.113.7 (its NAT's public address)
constexpr uint32_t hub_nbma = 0xc0000201;

// A UDP datagram in IPv4, written out by hand (checksum 0: optional over IPv4).
std::vector<uint8_t> udp_ip(uint16_t sport, uint16_t dport, std::vector<uint8_t> payload,
                            uint16_t frag_word = 0) {
    std::vector<uint8_t> u = {
        uint8_t(sport >> 8), uint8_t(sport), uint8_t(dport >> 8), uint8_t(dport), 0, 0, 0, 0};
    wire::store_be16(&u[4], static_cast<uint16_t>(8 + payload.size()));
    for (uint8_t b : payload) {  // (insert() trips GCC 12's -Warray-bounds here)
        u.push_back(b);
    }
    auto ip = ipv4_packet(spoke, hub_nbma, 17, u, 7);
    if (frag_word != 0) {
        wire::store_be16(&ip[6], frag_word);
    }
    return ip;
}

const std::vector<uint8_t> ike_msg = {
    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0,    0,
    0,    0,    0,    0,    0,    0,    0x21, 0x20, 0x22, 0x08};  // SPIi, SPIr 0, SA, v2.0, INIT

}  // namespace

TEST_CASE("IKE serves the tunnels whose profile has an ike section; a punt finds its tunnel",
          "[hub][ike]") {
    config::topology t;
    config::ipsec_profile manual;
    manual.name = "lab";
    config::ipsec_profile negotiated;
    negotiated.name = "dmvpn";
    negotiated.ike = config::ike_settings{};
    t.ipsec_profiles = {manual, negotiated};
    auto tunnel = [](std::string name, uint32_t nbma, std::string profile) {
        config::tunnel x;
        x.name = std::move(name);
        x.nbma_source = config::ipv4{nbma};
        x.ipsec_profile = std::move(profile);
        return x;
    };
    t.tunnels = {tunnel("Tunnel0", hub_nbma, ""), tunnel("Tunnel1", hub_nbma, "lab"),
                 tunnel("Tunnel2", hub_nbma, "dmvpn"), tunnel("Tunnel3", 0xc0000202, "dmvpn")};
    tunnel_slots slots;
    REQUIRE(slots.assign(t));
    auto b = ike_bindings(t, slots);
    REQUIRE(b.size() == 2);
    CHECK(b[0].tunnel == *slots.slot("Tunnel2"));
    CHECK(b[0].local == hub_nbma);
    CHECK(b[0].profile == "dmvpn");
    CHECK(b[1].tunnel == *slots.slot("Tunnel3"));
    CHECK(b[1].local == 0xc0000202);
    CHECK(ike_tunnel_for(b, hub_nbma) == *slots.slot("Tunnel2"));
    CHECK(ike_tunnel_for(b, 0xc0000202) == *slots.slot("Tunnel3"));
    CHECK_FALSE(ike_tunnel_for(b, 0xc0000203).has_value());
}

TEST_CASE("punted IKE becomes a datagram: 500 as is, 4500 without its marker, keepalives kept",
          "[hub][ike]") {
    auto d = ike_datagram_of(udp_ip(500, 500, ike_msg), 3);
    REQUIRE(d.has_value());
    CHECK(d->src == spoke);
    CHECK(d->dst == hub_nbma);
    CHECK(d->sport == 500);
    CHECK(d->dport == 500);
    CHECK(d->tunnel == 3);
    CHECK(d->payload == ike_msg);

    std::vector<uint8_t> marked = {0, 0, 0, 0};
    for (uint8_t b : ike_msg) {
        marked.push_back(b);
    }
    d = ike_datagram_of(udp_ip(61044, 4500, marked), 1);
    REQUIRE(d.has_value());
    CHECK(d->sport == 61044);
    CHECK(d->dport == 4500);
    CHECK(d->payload == ike_msg);

    d = ike_datagram_of(udp_ip(61044, 4500, {0xff}), 1);
    REQUIRE(d.has_value());
    CHECK(d->payload == std::vector<uint8_t>{0xff});
    CHECK(is_natt_keepalive(d->payload));

    // ESP in UDP the workers did not take (no SA for its SPI), other ports, fragments, lies.
    CHECK(ike_datagram_of(udp_ip(4500, 4500, {0, 0, 0x10, 0x01, 0, 0, 0, 1}), 1).error() ==
          ike_rx_error::esp_in_udp);
    CHECK(ike_datagram_of(udp_ip(4500, 4500, {0, 0}), 1).error() == ike_rx_error::esp_in_udp);
    CHECK(ike_datagram_of(udp_ip(500, 53, ike_msg), 1).error() == ike_rx_error::not_ike_port);
    CHECK(ike_datagram_of(udp_ip(500, 500, ike_msg, 0x2000), 1).error() == ike_rx_error::bad_ip);
    auto bad_len = udp_ip(500, 500, ike_msg);
    wire::store_be16(&bad_len[24], 9);
    CHECK(ike_datagram_of(bad_len, 1).error() == ike_rx_error::bad_udp);
    auto tcp = ipv4_packet(spoke, hub_nbma, 6, ike_msg, 1);
    CHECK(ike_datagram_of(tcp, 1).error() == ike_rx_error::not_udp);
    CHECK(ike_datagram_of(std::vector<uint8_t>(10, 0x45), 1).error() == ike_rx_error::bad_ip);
}

TEST_CASE("an IKE datagram leaves as IPv4/UDP, marked on 4500, with a UDP checksum", "[hub][ike]") {
    ike::datagram d;
    d.src = hub_nbma;
    d.dst = spoke;
    d.sport = 4500;
    d.dport = 61044;
    d.payload = ike_msg;
    auto ip = ike_packet_of(d, 99);
    REQUIRE(ip.size() == 20 + 8 + 4 + ike_msg.size());
    CHECK(ip[9] == 17);
    CHECK(wire::load_be32(&ip[12]) == hub_nbma);
    CHECK(wire::load_be32(&ip[16]) == spoke);
    CHECK(wire::inet_checksum(std::span(ip).subspan(0, 20)) == 0);
    CHECK(wire::load_be16(&ip[20]) == 4500);
    CHECK(wire::load_be16(&ip[22]) == 61044);
    CHECK(wire::load_be16(&ip[24]) == ip.size() - 20);
    CHECK(wire::load_be32(&ip[28]) == 0);  // the non-ESP marker
    CHECK(std::vector<uint8_t>(ip.begin() + 32, ip.end()) == ike_msg);
    // RFC 768 by hand: pseudo header + UDP sums to all ones.
    uint32_t sum = (hub_nbma >> 16) + (hub_nbma & 0xffff) + (spoke >> 16) + (spoke & 0xffff) + 17 +
                   static_cast<uint32_t>(ip.size() - 20);
    for (size_t i = 20; i + 1 < ip.size(); i += 2) {
        sum += wire::load_be16(&ip[i]);
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    CHECK(sum == 0xffff);

    // Back through the receive side (the spoke's view, swapped): the same message.
    auto again = ike_datagram_of(
        ike_packet_of(ike::datagram{spoke, hub_nbma, 61044, 4500, 2, ike_msg}, 1), 2);
    REQUIRE(again.has_value());
    CHECK(again->payload == ike_msg);

    // A keepalive is never marked; port 500 never is.
    d.payload = {0xff};
    CHECK(ike_packet_of(d, 1).size() == 20 + 8 + 1);
    d.sport = d.dport = 500;
    d.payload = ike_msg;
    CHECK(ike_packet_of(d, 1).size() == 20 + 8 + ike_msg.size());
    d.payload.assign(65535, 1);
    CHECK(ike_packet_of(d, 1).empty());
}

TEST_CASE("a CHILD_SA's IANA transforms map to the dataplane's SA parameters", "[hub][ike]") {
    auto eng = crypto::engine::create();
    REQUIRE(eng.has_value());
    ike::child_sa c;
    c.id = 5;
    c.encr = 20;  // ENCR_AES_GCM_16
    c.encr_bits = 256;
    c.integ = 0;
    c.esn = true;
    c.replay_window = 2048;
    c.hard_bytes = 1'000'000;
    c.hard_packets = 5000;
    c.inbound.spi = 0xc0ffee01;
    c.inbound.cipher_key = ike::crypto::secret(36);
    c.outbound.spi = 0xc0ffee02;
    c.outbound.cipher_key = ike::crypto::secret(36);
    auto in = esp_params_of(c, crypto::sa_direction::inbound);
    REQUIRE(in.has_value());
    CHECK(in->spi == 0xc0ffee01);
    CHECK(in->cipher == crypto::cipher_alg::aes_gcm_16);
    CHECK(in->integ == crypto::integ_alg::none);
    CHECK(in->cipher_key.size() == 36);
    CHECK(in->esn);
    CHECK(in->anti_replay);
    CHECK(in->replay_window == 2048);
    CHECK(in->lifetime.hard_bytes == 1'000'000);
    CHECK(in->lifetime.hard_packets == 5000);
    auto sa_in = crypto::sa::create(*in, **eng);
    REQUIRE(sa_in.has_value());
    CHECK((*sa_in)->key_bytes() == 32);
    CHECK((*sa_in)->direction() == crypto::sa_direction::inbound);
    auto out = esp_params_of(c, crypto::sa_direction::outbound);
    REQUIRE(out.has_value());
    CHECK(out->spi == 0xc0ffee02);
    CHECK(crypto::sa::create(*out, **eng).has_value());

    // AES-CBC-128 with HMAC-SHA2-256-128 and with HMAC-SHA1-96.
    c.encr = 12;
    c.encr_bits = 128;
    c.integ = 12;
    c.inbound.cipher_key = ike::crypto::secret(16);
    c.inbound.integ_key = ike::crypto::secret(32);
    in = esp_params_of(c, crypto::sa_direction::inbound);
    REQUIRE(in.has_value());
    CHECK(in->cipher == crypto::cipher_alg::aes_cbc);
    CHECK(in->integ == crypto::integ_alg::hmac_sha256_128);
    CHECK(crypto::sa::create(*in, **eng).has_value());
    c.integ = 2;
    c.inbound.integ_key = ike::crypto::secret(20);
    in = esp_params_of(c, crypto::sa_direction::inbound);
    REQUIRE(in.has_value());
    CHECK(in->integ == crypto::integ_alg::hmac_sha1_96);
    CHECK(crypto::sa::create(*in, **eng).has_value());

    // What the dataplane cannot do is refused with a reason.
    c.integ = 0;
    CHECK(esp_params_of(c, crypto::sa_direction::inbound).error() ==
          "AES-CBC with integrity transform 0");
    c.integ = 14;
    CHECK(esp_params_of(c, crypto::sa_direction::inbound).error() ==
          "AES-CBC with integrity transform 14");
    c.integ = 2;
    c.encr_bits = 192;
    CHECK(esp_params_of(c, crypto::sa_direction::inbound).error() == "AES key of 192 bits");
    c.encr_bits = 256;
    CHECK(esp_params_of(c, crypto::sa_direction::inbound).error() == "AES-CBC-256 key of 16 bytes");
    c.encr = 20;
    CHECK(esp_params_of(c, crypto::sa_direction::inbound).error() ==
          "AES-GCM with integrity transform 2");
    c.encr = 3;  // 3DES: a 24-byte key or nothing
    CHECK(esp_params_of(c, crypto::sa_direction::inbound).error() == "3DES key of 16 bytes");
    c.encr = 13;  // AES-CTR: not in the dataplane
    CHECK(esp_params_of(c, crypto::sa_direction::inbound).error() == "encryption transform 13");
}
