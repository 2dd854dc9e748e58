// Punted IKE in, IKE out, CHILD_SA to SA parameters (see ike_glue.hpp).
#include "control/hub/ike_glue.hpp"

#include <fmt/format.h>

#include "control/hub/frames.hpp"
#include "dataplane/wire/checksum.hpp"
#include "dataplane/wire/ipv4.hpp"
#include "dataplane/wire/reader.hpp"

namespace dmvpn::hub {

namespace {

constexpr size_t udp_header_size = 8;
constexpr size_t non_esp_marker_size = 4;

// IANA (RFC 7296 section 3.3.2; control/ike/message.hpp names the same numbers).
constexpr uint16_t encr_3des = 3;
constexpr uint16_t encr_aes_cbc = 12;
constexpr uint16_t encr_aes_gcm_16 = 20;
constexpr uint16_t integ_none = 0;
constexpr uint16_t integ_hmac_md5_96 = 1;
constexpr uint16_t integ_hmac_sha1_96 = 2;
constexpr uint16_t integ_hmac_sha2_256_128 = 12;

}  // namespace

std::string_view name(ike_rx_error e) noexcept {
    switch (e) {
        case ike_rx_error::bad_ip:
            return "bad_ip";
        case ike_rx_error::not_udp:
            return "not_udp";
        case ike_rx_error::bad_udp:
            return "bad_udp";
        case ike_rx_error::not_ike_port:
            return "not_ike_port";
        case ike_rx_error::esp_in_udp:
            return "esp_in_udp";
    }
    return "unknown";
}

std::vector<ike::tunnel_binding> ike_bindings(const config::topology& t, const tunnel_slots& s) {
    std::vector<ike::tunnel_binding> out;
    for (const config::tunnel& tun : t.tunnels) {
        const config::ipsec_profile* p =
            tun.ipsec_profile.empty() ? nullptr : t.find_ipsec_profile(tun.ipsec_profile);
        auto slot = s.slot(tun.name);
        if (p != nullptr && p->ike && slot) {
            out.push_back(ike::tunnel_binding{*slot, tun.nbma_source.value, p->name});
        }
    }
    return out;
}

std::optional<uint32_t> ike_tunnel_for(std::span<const ike::tunnel_binding> bindings,
                                       uint32_t dst) noexcept {
    for (const ike::tunnel_binding& b : bindings) {
        if (b.local == dst) {
            return b.tunnel;
        }
    }
    return std::nullopt;
}

bool is_natt_keepalive(std::span<const uint8_t> payload) noexcept {
    return payload.size() == 1 && payload[0] == 0xff;
}

wire::result<ike::datagram, ike_rx_error> ike_datagram_of(std::span<const uint8_t> ip_packet,
                                                          uint32_t tunnel) {
    auto ip = wire::parse_ipv4(ip_packet, wire::checksum_check::skip);
    if (!ip || ip->hdr.is_fragment()) {
        return wire::fail(ike_rx_error::bad_ip);
    }
    if (ip->hdr.protocol != wire::ip_proto::udp) {
        return wire::fail(ike_rx_error::not_udp);
    }
    auto udp = ip->payload;
    if (udp.size() < udp_header_size || wire::load_be16(udp.data() + 4) != udp.size()) {
        return wire::fail(ike_rx_error::bad_udp);
    }
    ike::datagram d;
    d.src = ip->hdr.src;
    d.dst = ip->hdr.dst;
    d.sport = wire::load_be16(udp.data());
    d.dport = wire::load_be16(udp.data() + 2);
    d.tunnel = tunnel;
    auto payload = udp.subspan(udp_header_size);
    if (d.dport == ike_natt_port) {
        if (!is_natt_keepalive(payload)) {
            if (payload.size() < non_esp_marker_size || wire::load_be32(payload.data()) != 0) {
                return wire::fail(ike_rx_error::esp_in_udp);
            }
            payload = payload.subspan(non_esp_marker_size);
        }
    } else if (d.dport != ike_port) {
        return wire::fail(ike_rx_error::not_ike_port);
    }
    d.payload.assign(payload.begin(), payload.end());
    return d;
}

std::vector<uint8_t> ike_packet_of(const ike::datagram& d, uint16_t ip_id) {
    bool marker =
        (d.sport == ike_natt_port || d.dport == ike_natt_port) && !is_natt_keepalive(d.payload);
    size_t udp_len = udp_header_size + (marker ? non_esp_marker_size : 0) + d.payload.size();
    if (udp_len + wire::ipv4_min_header_size > wire::ipv4_max_total_length) {
        return {};
    }
    std::vector<uint8_t> udp(udp_len, 0);
    wire::store_be16(udp.data(), d.sport);
    wire::store_be16(udp.data() + 2, d.dport);
    wire::store_be16(udp.data() + 4, static_cast<uint16_t>(udp_len));
    std::copy(d.payload.begin(), d.payload.end(),
              udp.begin() + static_cast<std::ptrdiff_t>(udp_len - d.payload.size()));
    // RFC 768: the checksum covers a pseudo header (addresses, protocol, UDP length).
    uint8_t pseudo[12];
    wire::store_be32(pseudo, d.src);
    wire::store_be32(pseudo + 4, d.dst);
    pseudo[8] = 0;
    pseudo[9] = wire::ip_proto::udp;
    wire::store_be16(pseudo + 10, static_cast<uint16_t>(udp_len));
    uint16_t sum = wire::checksum_fold(wire::checksum_add(wire::checksum_add(0, pseudo), udp));
    wire::store_be16(udp.data() + 6, sum == 0 ? 0xffff : sum);
    return ipv4_packet(d.src, d.dst, wire::ip_proto::udp, udp, ip_id);
}

wire::result<crypto::sa_params, std::string> esp_params_of(const ike::child_sa& c,
                                                           crypto::sa_direction dir) {
    const ike::esp_keys& k = dir == crypto::sa_direction::inbound ? c.inbound : c.outbound;
    crypto::sa_params p;
    p.spi = k.spi;
    p.direction = dir;
    if (c.encr != encr_3des && c.encr_bits != 128 && c.encr_bits != 256) {
        return wire::fail(fmt::format("AES key of {} bits", c.encr_bits));
    }
    size_t aes = c.encr_bits / 8;
    auto cbc_integ = [&](std::string_view cipher) -> wire::result<crypto::integ_alg, std::string> {
        switch (c.integ) {
            case integ_hmac_sha1_96:
                return crypto::integ_alg::hmac_sha1_96;
            case integ_hmac_sha2_256_128:
                return crypto::integ_alg::hmac_sha256_128;
            case integ_hmac_md5_96:
                return crypto::integ_alg::hmac_md5_96;
        }
        return wire::fail(fmt::format("{} with integrity transform {}", cipher, c.integ));
    };
    switch (c.encr) {
        case encr_aes_gcm_16:
            if (c.integ != integ_none) {
                return wire::fail(fmt::format("AES-GCM with integrity transform {}", c.integ));
            }
            p.cipher = crypto::cipher_alg::aes_gcm_16;
            p.integ = crypto::integ_alg::none;
            if (k.cipher_key.size() != aes + 4) {
                return wire::fail(fmt::format("AES-GCM-{} key of {} bytes, {} expected",
                                              c.encr_bits, k.cipher_key.size(), aes + 4));
            }
            break;
        case encr_aes_cbc: {
            p.cipher = crypto::cipher_alg::aes_cbc;
            auto integ = cbc_integ("AES-CBC");
            if (!integ) {
                return wire::fail(integ.error());
            }
            p.integ = *integ;
            if (k.cipher_key.size() != aes) {
                return wire::fail(
                    fmt::format("AES-CBC-{} key of {} bytes", c.encr_bits, k.cipher_key.size()));
            }
            break;
        }
        case encr_3des: {
            p.cipher = crypto::cipher_alg::des3_cbc;
            auto integ = cbc_integ("3DES-CBC");
            if (!integ) {
                return wire::fail(integ.error());
            }
            p.integ = *integ;
            if (k.cipher_key.size() != 24) {
                return wire::fail(fmt::format("3DES key of {} bytes", k.cipher_key.size()));
            }
            break;
        }
        default:
            return wire::fail(fmt::format("encryption transform {}", c.encr));
    }
    p.cipher_key = k.cipher_key.view();
    p.integ_key = k.integ_key.view();
    p.esn = c.esn;
    p.anti_replay = true;
    if (dir == crypto::sa_direction::inbound) {
        p.replay_window = c.replay_window;
    }
    // The workers mark 90% of a hard limit (the engine's own soft mark, limit - limit / 10),
    // so the hub tells the engine on the next tick rather than in the next 1 s report; a
    // limit too small to have a mark below it (under 10) gets none.
    auto soft = [](uint64_t hard) { return hard - hard / 10 < hard ? hard - hard / 10 : 0; };
    p.lifetime.hard_bytes = c.hard_bytes;
    p.lifetime.hard_packets = c.hard_packets;
    p.lifetime.soft_bytes = soft(c.hard_bytes);
    p.lifetime.soft_packets = soft(c.hard_packets);
    return p;
}

}  // namespace dmvpn::hub
