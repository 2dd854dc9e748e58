// The hub's validated topology as plain C++ values (config/README.md documents every field).
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dmvpn::config {

// An IPv4 address in host byte order, so that ordering and prefix arithmetic are plain integer
// operations; the dataplane converts once when it builds its tables.
struct ipv4 {
    uint32_t value = 0;

    friend auto operator<=>(const ipv4&, const ipv4&) = default;
};

// Strict dotted quad: four decimal octets, no leading zeros (inet_aton would read them as
// octal, which is never what an operator meant).
std::optional<ipv4> parse_ipv4(std::string_view text) noexcept;
std::string to_string(ipv4 a);

// A network: its address has no bits set beyond `length`.
struct prefix4 {
    ipv4 network;
    uint8_t length = 0;

    uint32_t mask() const noexcept { return length == 0 ? 0 : ~uint32_t{0} << (32 - length); }
    bool contains(ipv4 a) const noexcept { return (a.value & mask()) == network.value; }
    bool overlaps(const prefix4& o) const noexcept {
        return contains(o.network) || o.contains(network);
    }

    friend auto operator<=>(const prefix4&, const prefix4&) = default;
};
std::string to_string(const prefix4& p);

// An address on a subnet, written 192.0.2.1/24.
struct interface_address {
    ipv4 address;
    uint8_t length = 0;

    prefix4 subnet() const noexcept {
        prefix4 p{{}, length};
        p.network.value = address.value & p.mask();
        return p;
    }

    friend bool operator==(const interface_address&, const interface_address&) = default;
};
std::string to_string(const interface_address& a);

enum class device_kind : uint8_t { pci, vdev };

// What DPDK is asked to open: a PCI address (passed with -a) or a virtual device (--vdev).
struct device {
    device_kind kind = device_kind::vdev;
    std::string spec;    // as DPDK takes it; a PCI address is normalized to 0000:3b:00.0 form
    std::string name;    // the PCI address, or the vdev instance name before the first comma
    std::string driver;  // vdev only: the driver the instance name selects (net_tap, net_pcap...)

    friend bool operator==(const device&, const device&) = default;
};

enum class port_role : uint8_t {
    underlay,  // faces the NBMA network: GRE/ESP to the spokes leaves here
    lan,       // faces the hub's own networks: plain IPv4
};
std::string_view name(port_role r) noexcept;

struct port {
    std::string name;
    device dev;
    port_role role = port_role::underlay;
    interface_address address;
    std::optional<ipv4> gateway;
    uint16_t mtu = 1500;
    uint16_t rx_queue_size = 1024;
    uint16_t tx_queue_size = 1024;
    // Underlay only: forward IPv4 that arrives here for someone else (else it is dropped:
    // the port carries only GRE, ESP, IKE, ARP and ICMP addressed to the hub).
    bool allow_transit = false;

    friend bool operator==(const port&, const port&) = default;
};

// An overlay (tunnel) address bound to the NBMA address that reaches it.
struct nhrp_mapping {
    ipv4 overlay;
    ipv4 nbma;

    friend bool operator==(const nhrp_mapping&, const nhrp_mapping&) = default;
};

struct nhrp_settings {
    uint32_t network_id = 0;
    std::string authentication;  // empty: none; otherwise 1..8 bytes, sent in clear (as Cisco)
    uint16_t holdtime = 7200;    // seconds, what the hub puts in its replies' CIEs
    // Seconds between the hub's own registrations to its NHS peers (hub-to-hub); Cisco's
    // default is holdtime / 3.
    uint16_t registration_timeout = 2400;
    std::vector<nhrp_mapping> nhs;   // other hubs this hub registers with
    std::vector<nhrp_mapping> maps;  // static overlay -> NBMA entries
    bool multicast_dynamic = true;   // replicate to every registered spoke
    std::vector<ipv4> multicast_static;
    // 1: hub-and-spoke only (spoke-to-spoke resolution refused); 2: the hub answers and
    // forwards resolution between spokes; 3: 2 plus Traffic Indications (redirect).
    uint8_t phase = 2;
    bool redirect = false;
    uint32_t redirect_rate_limit = 100;  // Traffic Indications per second, whole tunnel
    bool shortcut = false;
    uint32_t max_cache_entries = 65536;
    uint32_t registration_rate_limit = 10;  // Registration Requests per second per NBMA source
    // Prefixes a registration may cover besides the requester's own address (empty: none).
    std::vector<prefix4> registration_prefixes;
    uint16_t holdtime_min = 1;  // a registration's holding time is clamped to these bounds
    uint16_t holdtime_max = 10800;
    uint32_t max_entries_per_nbma = 256;  // dynamic entries one NBMA address may hold

    friend bool operator==(const nhrp_settings&, const nhrp_settings&) = default;
};

struct tunnel {
    std::string name;
    std::string port;  // an underlay port's name
    ipv4 nbma_source;  // that port's address
    ipv4 overlay_address;
    prefix4 overlay_prefix;
    std::optional<uint32_t> gre_key;
    nhrp_settings nhrp;
    uint16_t ip_mtu = 1400;
    uint16_t tcp_adjust_mss = 1360;  // 0: off
    // Strict reverse-path check of what spokes send through the tunnel: the inner source must
    // route back through the same tunnel to the NBMA address the packet came from.
    bool verify_source = false;
    std::string ipsec_profile;  // empty: GRE in clear

    friend bool operator==(const tunnel&, const tunnel&) = default;
};

enum class transform : uint8_t {
    aes128_gcm16,           // RFC 4106, 16-byte ICV
    aes256_gcm16,           // RFC 4106, 16-byte ICV
    aes128_cbc_sha1_96,     // RFC 3602 + RFC 2404
    aes256_cbc_sha256_128,  // RFC 3602 + RFC 4868
    // Legacy (Cisco `esp-3des esp-md5-hmac` and friends): they load with a warning.
    des3_cbc_md5_96,    // RFC 2451 + RFC 2403
    des3_cbc_sha1_96,   // RFC 2451 + RFC 2404
    aes128_cbc_md5_96,  // RFC 3602 + RFC 2403
};
std::string_view name(transform t) noexcept;
std::optional<transform> parse_transform(std::string_view text) noexcept;
bool is_gcm(transform t) noexcept;
// The IV is a counter (GCM; CTR or GMAC if ever added): the transform must never run with a
// static key, whose IV sequence restarts with the hub (RFC 4106 section 8.1, RFC 3686 section
// 2.1, RFC 4543 section 8).
bool counter_iv(transform t) noexcept;
size_t cipher_key_bytes(transform t) noexcept;  // 16 or 32 (AES), 24 (3DES)
size_t salt_bytes(transform t) noexcept;        // 4 for GCM (RFC 4106 section 4), else 0
// 16 (RFC 2403), 20 (RFC 2404), 32 (RFC 4868), 0 for GCM
size_t integrity_key_bytes(transform t) noexcept;
// Why a security review would flag the transform (3DES, MD5), or empty: the loader's warning.
std::string_view weakness(transform t) noexcept;
// The most ESP adds to a packet (header, IV, padding, pad length, next header, ICV), without
// NAT-T's 8-byte UDP header.
size_t esp_overhead_max(transform t) noexcept;

// 0 means no limit.
struct sa_lifetime {
    uint64_t soft_packets = 0;
    uint64_t hard_packets = 0;
    uint64_t soft_bytes = 0;
    uint64_t hard_bytes = 0;

    friend bool operator==(const sa_lifetime&, const sa_lifetime&) = default;
};

// One direction of a manually keyed SA.
struct sa_keys {
    uint32_t spi = 0;
    std::vector<uint8_t> key;            // AES key
    std::vector<uint8_t> salt;           // GCM only: 4 bytes
    std::vector<uint8_t> integrity_key;  // CBC only

    friend bool operator==(const sa_keys&, const sa_keys&) = default;
};

// The SA pair between the hub and one peer, until IKEv2 negotiates them.
struct manual_sa {
    ipv4 peer;         // the peer's NBMA address
    sa_keys inbound;   // the peer encrypts, the hub decrypts
    sa_keys outbound;  // the hub encrypts, the peer decrypts

    friend bool operator==(const manual_sa&, const manual_sa&) = default;
};

// One IKE_SA proposal (RFC 7296 section 3.3), IANA transform IDs as in control/ike/message.hpp:
// YAML writes them as strongSwan does, `aes256-sha256-modp2048`, `aes128gcm16-prfsha256-x25519`.
struct ike_proposal {
    uint16_t encr = 0;             // 12 AES-CBC, 20 AES-GCM-16
    uint16_t encr_bits = 0;        // 128 / 256
    uint16_t integ = 0;            // 0 with GCM; 12 / 13 / 14 HMAC-SHA2-256/384/512
    uint16_t prf = 0;              // 5 / 6 / 7 PRF-HMAC-SHA2-256/384/512
    std::vector<uint16_t> groups;  // 14, 19, 20, 31; the first is what the hub sends or asks for

    friend bool operator==(const ike_proposal&, const ike_proposal&) = default;
};

// A pre-shared key and whom it is for: `peer` empty is the wildcard (IOS's `address 0.0.0.0`);
// otherwise an identity as the peer sends it in IDi (an IPv4 address, an FQDN, user@fqdn).
struct ike_psk {
    std::string peer;
    std::vector<uint8_t> key;  // wiped by the IKE engine's copy; compared in constant time

    friend bool operator==(const ike_psk&, const ike_psk&) = default;
};

enum class ike_auth : uint8_t { psk, certificate };

// `ike:` of an IPsec profile: the profile's SAs are negotiated by IKEv2 instead of written down.
struct ike_settings {
    // 2 (IKEv2), 1 (IKEv1: ISAKMP Main Mode + Quick Mode), or ike_version_any (both, per
    // datagram by the ISAKMP header's major version).
    uint8_t version = 2;
    static constexpr uint8_t ike_version_any = 0;
    bool speaks_v1() const noexcept { return version == 1 || version == ike_version_any; }
    bool speaks_v2() const noexcept { return version == 2 || version == ike_version_any; }
    // IKEv1 `isakmp-policies`, in priority order (IOS `crypto isakmp policy N`); RFC 2409
    // appendix A's attribute values. Never empty once loaded for a profile that speaks IKEv1.
    struct isakmp_policy {
        uint16_t encryption = 7;      // 5 3DES (legacy), 7 AES-CBC (DES: refused)
        uint16_t key_bits = 128;      // AES 128/192/256; 0 for 3DES
        uint16_t hash = 2;            // 1 MD5 (legacy), 2 SHA-1, 4 SHA2-256
        uint16_t group = 14;          // 2, 5 (legacy), 14, 19, 20
        uint16_t authentication = 1;  // 1 pre-shared key, 3 RSA signatures (certificate)
        uint32_t lifetime_s = 86400;
        friend bool operator==(const isakmp_policy&, const isakmp_policy&) = default;
    };
    std::vector<isakmp_policy> isakmp_policies;
    // IKEv1 Aggressive Mode (PSK, responder): off unless asked (`aggressive-mode: true`), since
    // its second message hands a hash of the key to any initiator; loading it warns.
    bool aggressive_mode = false;
    ike_auth auth = ike_auth::psk;
    // `psk:` (the wildcard, peer ""), `keys:`, and the lines of `key-file:`, which the loader
    // reads (root-only file): never printed, not even in errors.
    std::vector<ike_psk> psks;
    std::string key_file;                 // as written (for errors and reload)
    std::string local_id;                 // empty: the tunnel's NBMA address (ID_IPV4_ADDR)
    std::string certificate;              // PEM file: our certificate (chain); certificate auth
    std::string private_key;              // PEM file
    std::vector<std::string> ca;          // PEM files: trust anchors for the peers' certificates
    std::vector<ike_proposal> proposals;  // IKE SA, in preference order (never empty once loaded)
    // ESP proposals for CHILD_SAs, in preference order (the dataplane's transforms, plus
    // aes128-sha256 / aes256-sha1 combinations the SA code supports).
    struct esp_proposal {
        uint16_t encr = 20;        // 3 3DES (legacy), 12 AES-CBC, 20 AES-GCM-16
        uint16_t encr_bits = 256;  // 0 for 3DES (fixed key length)
        // 0 with GCM; 1 HMAC-MD5-96 (legacy), 2 HMAC-SHA1-96, 12 HMAC-SHA2-256-128
        uint16_t integ = 0;
        bool esn = false;  // offer ESN (and no-ESN); used when the peer offers it too
        friend bool operator==(const esp_proposal&, const esp_proposal&) = default;
    };
    std::vector<esp_proposal> esp_proposals;
    std::optional<uint16_t> pfs_group;  // DH for CREATE_CHILD_SA rekeys; none: no PFS
    uint32_t ike_lifetime_s = 86400;    // IKE SA rekeyed at ~90% (jittered), deleted at 100%
    uint32_t child_lifetime_s = 3600;   // CHILD_SA, likewise
    uint64_t child_lifetime_bytes = 0;  // 0: no byte limit
    uint64_t child_lifetime_packets = 0;
    uint32_t dpd_interval_s = 30;      // 0: no liveness checks
    uint32_t dpd_retries = 5;          // retransmissions before the peer is declared dead
    uint32_t cookie_threshold = 1000;  // half-open IKE SAs above which COOKIE is demanded
    uint32_t max_half_open = 100000;   // beyond this, IKE_SA_INIT is dropped and counted
    uint32_t nat_keepalive_s = 20;     // 0: none
    bool initiate = false;             // initiate to `nhs` peers and static maps (hub-to-hub)
    // RFC 7383: offer/accept IKE fragmentation; encrypted messages whose IP datagram would
    // exceed `fragment_size` octets leave as Encrypted Fragment payloads.
    bool fragmentation = true;
    uint32_t fragment_size = 1280;  // the whole IP datagram, as strongSwan's fragment_size

    friend bool operator==(const ike_settings&, const ike_settings&) = default;
};

// strongSwan-style names, as the YAML writes them: "aes256gcm16-prfsha256-x25519-ecp256",
// "aes256-sha256-modp2048"; "aes256gcm16", "aes128-sha1-esn".
std::string to_string(const ike_proposal& p);
std::string to_string(const ike_settings::esp_proposal& p);
// What a profile's `ike:` negotiates when it names no proposals (config/README.md says why).
std::vector<ike_proposal> default_ike_proposals();
std::vector<ike_settings::esp_proposal> default_esp_proposals();
// The most this ESP proposal adds to a packet, as esp_overhead_max(transform) (no NAT-T UDP).
size_t esp_overhead_max(const ike_settings::esp_proposal& p) noexcept;
// As weakness(transform): why 3DES or MD5 in this proposal would be flagged, or empty.
std::string_view weakness(const ike_settings::esp_proposal& p) noexcept;

struct ipsec_profile {
    std::string name;
    transform xform = transform::aes128_gcm16;
    uint32_t replay_window = 1024;
    // Manual SAs: off unless asked (RFC 4303 section 3.4.3), see config/README.md.
    bool anti_replay = false;
    bool esn = false;
    sa_lifetime lifetime;
    std::vector<manual_sa> manual_sas;
    std::optional<ike_settings> ike;  // none: manual SAs only

    friend bool operator==(const ipsec_profile&, const ipsec_profile&) = default;
};

struct route {
    prefix4 prefix;
    std::optional<ipv4> via;
    std::string port;    // as written; empty when only `via` was given
    std::string egress;  // resolved: the tunnel or LAN port the route leaves through

    friend bool operator==(const route&, const route&) = default;
};

// Hub-wide budgets, packets per second, of what the workers hand the control lcore, per kind;
// beyond its budget a packet is dropped and counted, so a flood of one kind leaves the others
// their share.
struct punt_rates {
    uint32_t nhrp = 10000;
    uint32_t ike = 5000;  // UDP to ports 500 and 4500 of the hub
    uint32_t arp = 2000;
    uint32_t for_us = 1000;  // anything else to the hub (ICMP echo, ...)
    uint32_t multicast = 1000;
    uint32_t ttl_exceeded = 1000;
    uint32_t frag_needed = 1000;
    uint32_t glean = 20000;
    uint32_t redirect = 20000;

    friend bool operator==(const punt_rates&, const punt_rates&) = default;
};

// The Prometheus endpoint (`hub.metrics`): GET /metrics over HTTP on this address and port.
struct metrics_endpoint {
    ipv4 address{0x7f000001};  // 127.0.0.1
    uint16_t port = 9273;

    friend bool operator==(const metrics_endpoint&, const metrics_endpoint&) = default;
};

inline constexpr std::string_view log_levels[] = {"error", "warning", "notice", "info", "debug"};

struct hub_settings {
    uint32_t control_lcore = 0;
    std::vector<uint32_t> worker_lcores{1};
    std::vector<std::string> eal_args;
    uint32_t worker_idle_sleep_us = 0;   // 0: workers busy-poll
    uint32_t control_idle_nap_us = 100;  // 0: the control lcore busy-polls
    config::punt_rates punt_rates;
    uint32_t icmp_error_rate = 100;    // ICMP errors the hub originates, per second
    uint32_t arp_max_entries = 16384;  // ARP table size; the oldest failed or idle entry goes
    std::string log_level = "info";    // one of log_levels; a reload applies a change
    std::optional<metrics_endpoint> metrics;  // none: no endpoint
    // CPUs of the hub's threads that are not lcores (IKE, FPM, redistribution, management,
    // metrics, logger); empty: automatic (control/cpu_placement.hpp)
    std::vector<uint32_t> service_cpus;
    // The control lcore's heap grows this far ahead of its use, faulted in by a service thread
    // (control/heap_headroom.hpp); 0: glibc's defaults, pages fault on first use
    uint32_t heap_headroom_mb = 64;

    friend bool operator==(const hub_settings&, const hub_settings&) = default;
};

struct management {
    std::string socket = "/run/dmvpn-hub.sock";

    friend bool operator==(const management&, const management&) = default;
};

// `routing.fpm`: the FPM server zebra's dplane_fpm_nl connects to (control/fpm/README.md).
struct fpm_settings {
    ipv4 address{0x7f000001};  // 127.0.0.1
    uint16_t port = 2620;
    uint32_t settle_seconds = 3;  // quiet after zebra connects before stale routes are swept
    uint32_t hold_seconds = 90;   // FRR's routes outlive a lost zebra this long
    uint32_t max_routes = 2'000'000;

    friend bool operator==(const fpm_settings&, const fpm_settings&) = default;
};

// `routing.interfaces[]`: a kernel interface (DPDK's net_tun) for a tunnel or a port, carrying
// the tunnel's overlay address (the port's address), through which daemons on the host (FRR)
// reach the spokes (the LAN)
// (control/hub/README.md, the exception path).
struct kernel_interface {
    std::string tunnel;  // a tunnel's name, or
    std::string port;    // a port's name (its address and subnet)
    bool create = true;  // false: listed but not made (kept for a later reload or restart)
    std::string name;    // the kernel's interface name (IFNAMSIZ: at most 15 bytes)
    // Packets a second in each direction (to the kernel, from it); 0: unlimited.
    uint32_t rate = 10000;
    // The address as a /32 and the prefix as a route out of the interface (FRR treats it as
    // unnumbered: ospfd point-to-multipoint then skips the hellos' network-mask check, which
    // spokes with a /32 tunnel address, as FRR nhrpd's, need).
    bool unnumbered = false;

    friend bool operator==(const kernel_interface&, const kernel_interface&) = default;
};

// `routing`: how the hub meets routing daemons on its host: kernel interfaces for them to talk
// through, and the FPM server zebra hands its routes to.
struct routing_settings {
    std::vector<kernel_interface> interfaces;
    std::optional<fpm_settings> fpm;  // none: no FPM server
    // Registered spokes' routes into the kernel's table, out of their tunnel's kernel
    // interface, for FRR's `redistribute kernel` (control/rib/redistribute.hpp).
    bool redistribute_nhrp = false;
    uint8_t redistribute_protocol = 247;  // their rtm_protocol: not one zebra takes for its own

    friend bool operator==(const routing_settings&, const routing_settings&) = default;
};

struct topology {
    hub_settings hub;
    std::vector<port> ports;
    std::vector<tunnel> tunnels;
    std::vector<ipsec_profile> ipsec_profiles;
    std::vector<route> routes;
    management mgmt;
    routing_settings routing;

    const port* find_port(std::string_view name) const noexcept;
    const tunnel* find_tunnel(std::string_view name) const noexcept;
    const ipsec_profile* find_ipsec_profile(std::string_view name) const noexcept;

    friend bool operator==(const topology&, const topology&) = default;
};

// What a reload has to act on, by name. Ports and hub settings cannot change under a running
// EAL, so a change there means a restart; tunnels, profiles and routes can be swapped live.
struct topology_diff {
    std::vector<std::string> ports_added, ports_removed, ports_changed;
    std::vector<std::string> tunnels_added, tunnels_removed, tunnels_changed;
    std::vector<std::string> ipsec_profiles_added, ipsec_profiles_removed, ipsec_profiles_changed;
    bool hub_changed = false;  // anything but log-level
    bool log_level_changed = false;
    bool routes_changed = false;
    bool management_changed = false;
    // routing (kernel interfaces, FPM): made and started with the hub, so a change restarts
    bool routing_changed = false;
    bool fpm_changed = false;  // routing.fpm alone

    bool empty() const noexcept;
    bool needs_restart() const noexcept;
};

// A tunnel is listed as changed when its own fields differ or when the content of the IPsec
// profile it names changed, so that a reload can act per tunnel.
topology_diff diff(const topology& before, const topology& after);

}  // namespace dmvpn::config
