// What the IKE engine and the hub tell each other: datagrams in and out, CHILD_SAs to install
// and remove, peers coming and going. Plain data (no OpenSSL, no DPDK): the IKE thread and
// the control lcore pass these through their queues.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "control/ike/crypto.hpp"

namespace dmvpn::ike {

using bytes = std::vector<uint8_t>;

// An IKE datagram as UDP carried it. Port 4500 traffic arrives and leaves with the non-ESP
// marker already removed / still to add: `payload` is the IKE message (or, for a NAT
// keepalive, the single 0xff octet, RFC 3948 section 2.3).
struct datagram {
    uint32_t src = 0;  // IPv4, host order
    uint32_t dst = 0;
    uint16_t sport = 500;
    uint16_t dport = 500;
    uint32_t tunnel = 0;  // which tunnel's NBMA address it reached / leaves from (slot index)
    bytes payload;
};

// One direction of a negotiated ESP SA, as crypto/sa.hpp will build it.
struct esp_keys {
    uint32_t spi = 0;
    crypto::secret cipher_key;  // GCM: key || 4-byte salt; CBC: the AES key
    crypto::secret integ_key;   // CBC only
};

// A CHILD_SA pair for one peer: ESP transport mode, GRE between the two NBMA addresses.
struct child_sa {
    uint64_t id = 0;         // engine-wide, never reused
    uint64_t ike_sa_id = 0;  // the IKE SA it belongs to
    uint32_t tunnel = 0;
    std::string profile;  // the IPsec profile (YAML) it was negotiated under
    uint32_t local = 0;   // our NBMA address
    uint32_t peer = 0;    // the peer's NBMA address (its public address behind NAT)
    // UDP encapsulation (RFC 3948) when a NAT was detected: the ports ESP-in-UDP uses.
    bool udp_encap = false;
    uint16_t local_port = 4500;
    uint16_t peer_port = 4500;
    uint16_t encr = 0;       // encr_id: aes_gcm_16 or aes_cbc
    uint16_t encr_bits = 0;  // 128 / 256
    uint16_t integ = 0;      // integ_id: none (GCM), hmac_sha1_96, hmac_sha2_256_128
    bool esn = false;
    esp_keys inbound;   // the peer encrypts, the hub decrypts
    esp_keys outbound;  // the hub encrypts
    // Hard limits the workers enforce (0: none); the engine rekeys on its own soft limits.
    uint64_t hard_bytes = 0;
    uint64_t hard_packets = 0;
    uint32_t replay_window = 1024;
    // Set when this pair replaces another (rekey): the old pair keeps decrypting until the
    // engine removes it (and a drain period after, control/ike/child_pairs.hpp).
    std::optional<uint64_t> replaces;
    // Where outbound traffic moves to this pair: at once when false (we initiated it: the peer
    // installed its side before answering); when true (we answered the peer's request, and it
    // installs the pair only once our response arrives) only when its inbound SA carries
    // traffic or the pair it replaces is removed. A first pair with nothing else to encrypt
    // with is used at once (child_pairs.hpp), but the hub's NHRP registration to that peer,
    // when it is an NHS, waits for the peer's traffic on it (control/hub/hub_ike.cpp).
    bool outbound_waits = false;
};

// The engine asks the hub to do something, or tells it something happened.
struct install_child {  // install both directions; answer with engine::installed(id)
    child_sa sa;
};
struct remove_child {  // remove both directions (DELETE, expiry, rekey completed)
    uint64_t id = 0;
    std::string why;
};
struct peer_up {  // an IKE SA authenticated (a spoke keyed itself)
    uint64_t ike_sa_id = 0;
    uint32_t tunnel = 0;
    uint32_t peer = 0;
    std::string identity;  // the peer's ID, as text
};
struct initiation_failed {  // an IKE SA we initiated ended before it came up (no answer,
                            // refused): the hub's `show crypto ike initiator` shows why
    uint32_t tunnel = 0;
    uint32_t peer = 0;
    std::string why;
};
struct peer_down {  // an IKE SA died (DELETE, DPD, hard expiry, clear crypto sa): NHRP forgets it
    uint64_t ike_sa_id = 0;
    uint32_t tunnel = 0;
    uint32_t peer = 0;
    std::string why;
};

// Counters the hub reads from the workers and hands back, so byte/packet lifetimes and
// idle detection (DPD only when no traffic came in) work.
struct child_usage {
    uint64_t id = 0;
    uint64_t in_bytes = 0, in_packets = 0;
    uint64_t out_bytes = 0, out_packets = 0;
};

}  // namespace dmvpn::ike
