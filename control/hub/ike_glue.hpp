// Between the control lcore and the IKE thread (control/ike/thread): punted UDP 500/4500 into
// ike::datagram, ike::datagram into the IPv4/UDP packet the control lcore sends, and a
// negotiated CHILD_SA's IANA transforms into the dataplane's SA parameters. Plain bytes, no
// DPDK, no OpenSSL: the unit tests run them directly.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/topology.hpp"
#include "control/hub/model.hpp"
#include "control/ike/engine.hpp"
#include "control/ike/events.hpp"
#include "crypto/sa.hpp"
#include "dataplane/wire/result.hpp"

namespace dmvpn::hub {

inline constexpr uint16_t ike_port = 500;
inline constexpr uint16_t ike_natt_port = 4500;

// Why a punted packet did not become an IKE datagram (counted by the control lcore).
enum class ike_rx_error : uint8_t {
    bad_ip,        // the IPv4 header does not parse, or the packet is a fragment
    not_udp,       // protocol is not 17
    bad_udp,       // UDP header truncated, or its length disagrees with IPv4's
    not_ike_port,  // destination port neither 500 nor 4500
    esp_in_udp,    // 4500 without the non-ESP marker (ESP the workers did not take: no SA)
};
std::string_view name(ike_rx_error e) noexcept;

// The tunnels IKE serves (their IPsec profile has an `ike` section), in topology order: what
// ike::engine::create and reconfigure take.
std::vector<ike::tunnel_binding> ike_bindings(const config::topology& t, const tunnel_slots& s);

// The tunnel a punted IKE packet to `dst` (one of the hub's NBMA addresses) is for: the first
// binding whose local address it is (tunnels sharing an NBMA address share IKE, as on IOS where
// the IKE SA belongs to the address). None: no IKE there (the packet is dropped, counted).
std::optional<uint32_t> ike_tunnel_for(std::span<const ike::tunnel_binding> bindings,
                                       uint32_t dst) noexcept;

// A punted IPv4 packet (from its header) to UDP 500 or 4500 on `tunnel`'s NBMA address (the
// slot the caller resolved from the destination): the IKE message, with the 4500 non-ESP
// marker (RFC 3948 section 2.2) taken off, or a NAT keepalive (the single 0xff byte, section
// 2.3) as it came.
wire::result<ike::datagram, ike_rx_error> ike_datagram_of(std::span<const uint8_t> ip_packet,
                                                          uint32_t tunnel);

// True for a NAT keepalive payload (one 0xff byte).
bool is_natt_keepalive(std::span<const uint8_t> payload) noexcept;

// The IPv4 packet (no options, TTL 64, DF clear) carrying `d` in UDP with its checksum; on
// port 4500 the non-ESP marker precedes an IKE message (not a keepalive). Empty when the result
// would exceed 65535 bytes.
std::vector<uint8_t> ike_packet_of(const ike::datagram& d, uint16_t ip_id);

// The SA parameters of one direction of a negotiated CHILD_SA (RFC 7296 IANA transform IDs:
// ENCR_AES_GCM_16 / ENCR_AES_CBC with 128 or 256 bits, INTEG none / HMAC_SHA1_96 /
// HMAC_SHA2_256_128), its keys, ESN, replay window, anti-replay on, and its hard byte/packet
// limits. The spans point into `c`'s keys: keep `c` alive until crypto::sa::create returned.
// The error names what the dataplane cannot do.
wire::result<crypto::sa_params, std::string> esp_params_of(const ike::child_sa& c,
                                                           crypto::sa_direction dir);

}  // namespace dmvpn::hub
