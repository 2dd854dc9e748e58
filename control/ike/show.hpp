// Rendering of the crypto show commands (`show crypto ikev2 sa [detail]`, `show crypto ipsec sa
// [peer ADDR]`, `show crypto session`) as IOS-layout text or JSON: pure functions of a view
// model the IKE engine fills from its state at the moment of the query. No engine, no I/O.
//
// The text follows the IOS layout recorded in ../shared/testdata/cisco-ios-crypto.md (ipsec sa)
// and Cisco's documented IKEv2 layout (ikev2 sa, crypto session); trailing blanks IOS pads its
// lines with are not printed.
//
// JSON (`--json`): one object per command, field names stable (scripts depend on them):
//   show crypto ikev2 sa [detail]:
//     {"ikev2_sas": [{"id", "tunnel", "local", "local_port", "remote", "remote_port", "fvrf",
//       "ivrf", "status" ("READY"|"IN-NEG"|"DELETE"), "encr" ("AES-CBC"|"AES-GCM"),
//       "keysize", "prf" ("SHA256"|...), "hash" ("SHA256"|...|"None"), "dh_group",
//       "auth_sign" ("PSK"|"RSA"|"ECDSA"), "auth_verify", "lifetime_s", "active_s",
//       "local_id", "remote_id", "local_spi" (16 hex digits), "remote_spi", "initiator",
//       "nat_local", "nat_remote", "dpd_interval_s", "dpd_retries", "fragmentation",
//       "child_sas"}]}   (the same fields with or without detail)
//   show crypto ipsec sa [peer ADDR]:
//     {"ipsec_sas": [{"interface", "local", "peer", "peer_port", "protected_vrf",
//       "local_ident": {"addr", "mask", "prot", "port"}, "remote_ident": {...},
//       "encaps", "encrypt", "digest", "decaps", "decrypt", "verify", "send_errors",
//       "recv_errors", "path_mtu", "ip_mtu", "ip_mtu_idb", "current_outbound_spi",
//       "inbound": [sa], "outbound": [sa]}]}
//     sa: {"spi", "transform", "mode" ("Transport"|"Tunnel"), "udp_encap", "conn_id",
//          "flow_id", "remaining_kb" (null: no byte limit), "remaining_s", "iv_bytes",
//          "replay_detection", "status" ("ACTIVE"|"STANDBY")}
//   show crypto session:
//     {"sessions": [{"interface", "profile", "status" ("UP-ACTIVE"|"UP-NO-IKE"|"UP-IDLE"|
//       "DOWN-NEGOTIATING"|"DOWN"), "peer", "peer_port", "session_id", "ike_sas":
//       [{"version" (1|2), "local", "local_port", "remote", "remote_port", "active"}], "flows":
//       [{"protocol", "local", "remote", "active_sas"}]}]}
//   Addresses are dotted quads; SPIs are numbers (ESP) or 16-digit hex strings (IKE).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dmvpn::ike::show {

enum class format : uint8_t { text, json };

// ---- show crypto ikev2 sa ----

enum class ike_sa_status : uint8_t {
    ready,           // READY: authenticated, "Negotiation done"
    in_negotiation,  // IN-NEG: IKE_SA_INIT / IKE_AUTH under way
    deleting,        // DELETE: DELETE sent or received, state going
};
enum class auth_kind : uint8_t { psk, rsa, ecdsa };

struct ike_sa_row {
    uint64_t id = 0;     // the engine's IKE SA id: the Tunnel-id column and "conn-id"
    std::string tunnel;  // the tunnel (interface) it protects, e.g. "Tunnel0"
    uint32_t local = 0;  // IPv4, host order
    uint16_t local_port = 500;
    uint32_t remote = 0;  // the peer's address as seen (public address behind NAT)
    uint16_t remote_port = 500;
    std::string fvrf = "none";  // front-door / inside VRF: the hub has none
    std::string ivrf = "none";
    ike_sa_status status = ike_sa_status::in_negotiation;
    // IANA transform IDs (control/ike/message.hpp); 0 where not negotiated yet.
    uint16_t encr = 0;  // encr_id: aes_cbc / aes_gcm_16
    uint16_t encr_bits = 0;
    uint16_t prf = 0;    // prf_id
    uint16_t integ = 0;  // integ_id; none with GCM ("Hash: None")
    uint16_t dh_group = 0;
    auth_kind auth_sign = auth_kind::psk;    // how we authenticate ourselves
    auth_kind auth_verify = auth_kind::psk;  // how the peer authenticated
    uint32_t lifetime_s = 0;                 // configured IKE SA lifetime
    uint32_t active_s = 0;  // seconds since the SA came up (or since negotiation began)
    std::string local_id;   // identities as text ("10.0.0.1", "hub.example.net")
    std::string remote_id;
    uint64_t local_spi = 0;  // our IKE SPI
    uint64_t remote_spi = 0;
    bool initiator = false;   // we sent IKE_SA_INIT
    bool nat_local = false;   // NAT detected in front of us ("detected inside")
    bool nat_remote = false;  // NAT detected in front of the peer ("detected outside")
    uint32_t dpd_interval_s = 0;
    uint32_t dpd_retries = 0;
    bool fragmentation = false;  // RFC 7383 negotiated
    uint32_t child_sas = 0;      // CHILD_SA pairs under this IKE SA
};

// ---- show crypto ipsec sa ----

// `(addr/mask/prot/port)`: for DMVPN the two NBMA host addresses, protocol 47, port 0.
struct ident {
    uint32_t addr = 0;
    uint32_t mask = 0xffffffff;
    uint8_t prot = 47;
    uint16_t port = 0;
};

// One direction of an ESP SA.
struct esp_sa_row {
    uint32_t spi = 0;
    std::string transform;     // IOS wording, e.g. "esp-gcm 256" (see ios_transform())
    bool tunnel_mode = false;  // "Transport" (DMVPN) unless a peer keyed tunnel mode
    bool udp_encap = false;    // NAT-T: "Transport UDP-Encaps"
    uint64_t conn_id = 0;
    uint64_t flow_id = 0;  // "flow_id: SW:<n>"
    // Kilobytes left before the hard byte limit; none: no byte limit (text prints "-"
    // rather than a made-up number).
    std::optional<uint64_t> remaining_kb;
    uint32_t remaining_s = 0;
    uint32_t iv_bytes = 0;  // 8 for GCM (RFC 4106), 16 for CBC (see iv_bytes())
    bool replay_detection = true;
    bool active = true;  // ACTIVE; false: STANDBY (rekeyed away, still decrypting)
};

// One protected flow: the SAs between the hub's NBMA address and one peer on one tunnel.
struct ipsec_flow_row {
    std::string interface;   // "Tunnel0"
    std::string crypto_map;  // "Tunnel0-head-0"
    uint32_t local = 0;      // our NBMA address
    uint32_t peer = 0;
    uint16_t peer_port = 500;   // 4500 once NAT-T moved it
    std::string protected_vrf;  // empty: "(none)"
    ident local_ident;
    ident remote_ident;
    uint64_t encaps = 0, encrypt = 0, digest = 0;
    uint64_t decaps = 0, decrypt = 0, verify = 0;
    uint64_t send_errors = 0, recv_errors = 0;
    uint32_t path_mtu = 1500;
    uint32_t ip_mtu = 1500;
    std::string ip_mtu_idb;  // the underlay port the tunnel leaves through
    uint32_t current_outbound_spi = 0;
    std::vector<esp_sa_row> inbound;
    std::vector<esp_sa_row> outbound;
};

// ---- show crypto session ----

enum class session_status : uint8_t {
    up_active,         // UP-ACTIVE: IKE SA and IPsec SAs up
    up_no_ike,         // UP-NO-IKE: IPsec SAs without an IKE SA (manual SAs)
    up_idle,           // UP-IDLE: IKE SA without IPsec SAs
    down_negotiating,  // DOWN-NEGOTIATING
    down,              // DOWN
};

struct session_ike_sa {
    uint32_t local = 0;
    uint16_t local_port = 500;
    uint32_t remote = 0;
    uint16_t remote_port = 500;
    bool active = true;   // "Active" / "Inactive"
    uint8_t version = 2;  // IKE version: "IKEv1 SA" (ISAKMP) or "IKEv2 SA"
};

struct session_flow {
    uint8_t protocol = 47;
    uint32_t local = 0;
    uint32_t remote = 0;
    uint32_t active_sas = 0;  // inbound + outbound ESP SAs
};

struct session_row {
    std::string interface;  // "Tunnel0"
    std::string profile;    // the IPsec profile
    session_status status = session_status::down;
    uint32_t peer = 0;
    uint16_t peer_port = 500;
    uint64_t session_id = 0;
    std::vector<session_ike_sa> ike_sas;
    std::vector<session_flow> flows;
};

// What the engine hands the renderers.
struct view {
    std::vector<ike_sa_row> ike_sas;
    std::vector<ipsec_flow_row> flows;
    std::vector<session_row> sessions;
};

// `show crypto ikev2 sa` (detail adds SPIs, identities, DPD, NAT-T, role per SA).
std::string show_ikev2_sa(const view& v, format f, bool detail = false);
// `show crypto ipsec sa [peer ADDR]`: `peer` given, only that peer's flows.
std::string show_ipsec_sa(const view& v, format f, std::optional<uint32_t> peer = std::nullopt);
// `show crypto session`.
std::string show_session(const view& v, format f);

// IOS wording of an ESP transform from IANA IDs: "esp-gcm 256", "esp-aes 256 esp-sha256-hmac",
// "esp-aes esp-sha-hmac" (IOS omits the key size for AES-128-CBC).
std::string ios_transform(uint16_t encr, uint16_t encr_bits, uint16_t integ);
// ESP IV length for a transform: 8 for AES-GCM (RFC 4106 section 3.1), 16 for AES-CBC.
uint32_t iv_bytes(uint16_t encr) noexcept;

}  // namespace dmvpn::ike::show
