// dmvpn-spokesim's command line: every knob of the emulated topology, checked before anything runs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/wire/result.hpp"
#include "tools/spokesim/addr.hpp"

namespace dmvpn::spokesim {

// Which real spoke's Registration Request to copy (see tests/data/captures/SOURCES.md).
enum class nhrp_style : uint8_t {
    cisco,  // hop 255, destination = the NHS's protocol address, Responder first
    frr,    // hop 1, destination = the spoke's own address, Responder after the transit records
};

// Inner addresses of the generated data: the spokes' tunnel addresses, or a host (.1) in each
// spoke's LAN prefix (the hub then needs routes to the LANs).
enum class traffic_addressing : uint8_t { overlay, lan };

// ESP transform for the manual SAs; none sends GRE in the clear. The hub refuses GCM with
// manual keys (config/README.md): the GCM transforms are for tests that play the hub.
enum class esp_transform : uint8_t {
    none,
    aes128_gcm,
    aes256_gcm,
    aes128_cbc_sha1_96,
    aes256_cbc_sha256_128,
    des3_cbc_md5_96,  // legacy: what Cisco's `esp-3des esp-md5-hmac` spokes run
    des3_cbc_sha1_96,
    aes128_cbc_md5_96,
};
bool is_gcm(esp_transform t) noexcept;
std::string_view name(esp_transform t) noexcept;

// IKEv2 for the spokes' SAs instead of manual keys: off, a pre-shared key, or certificates.
enum class ike_mode : uint8_t { off, psk, certificate };

struct options {
    // Topology: spoke i (counting from first_spoke) takes the i-th address of each range.
    uint32_t spokes = 2;
    uint32_t first_spoke = 0;
    prefix nbma_prefix{0x64400000, 10};    // 100.64.0.0/10
    ipv4 hub_nbma = 0;                     // 0: the prefix's first host
    uint32_t nbma_offset = 2;              // spoke 0 is the prefix's address .2
    prefix tunnel_prefix{0x0aff0000, 16};  // 10.255.0.0/16
    ipv4 hub_overlay = 0;                  // 0: the prefix's first host
    uint32_t overlay_offset = 2;
    // --nhs NBMA,OVERLAY, repeatable (at most 8; tools/spokesim/nhs.hpp): every spoke registers
    // with each, traffic through the first that answers. The first replaces --hub-nbma and
    // --hub-overlay. Plain GRE only (no --esp, no --ike).
    std::vector<nhs_address> nhs;
    double nhs_timeout = 3;  // seconds a registration may go unanswered before failing over
    prefix lan_prefix{0xac100000, 12};  // 172.16.0.0/12
    uint8_t lan_length = 24;

    // Tunnel and NHRP.
    std::optional<uint32_t> gre_key;
    std::string auth;  // empty: no Authentication extension
    uint32_t holdtime = 7200;
    uint32_t registration_timeout = 0;  // 0: holdtime / 3
    bool unique = true;
    bool nat_extension = true;
    nhrp_style style = nhrp_style::cisco;
    uint16_t cie_mtu = 1514;
    uint8_t cie_prefix = 0;  // registration CIE prefix length; 0: 255 with unique, else 32
    bool shortcuts = true;   // act on Traffic Indications (Phase 3)
    bool resolve = false;    // Phase 2: resolve each peer's traffic address before sending

    // IPsec: one manual SA pair per spoke with the hub, derived from the index and the seed.
    esp_transform esp = esp_transform::none;
    uint64_t sa_seed = 1;
    uint32_t spi_base = 0x1000;
    // IPsec negotiated by IKEv2 (tools/spokesim/ike_config.hpp): each spoke keys itself with
    // the hub before it registers, and with another emulated spoke before a shortcut to it.
    ike_mode ike = ike_mode::off;
    uint8_t ike_version = 2;   // --ike v1: ISAKMP Main Mode + Quick Mode (PSK only)
    std::string ike_secret;    // psk:KEY
    std::string ike_cert_dir;  // cert:DIR
    std::string ike_id;        // IDi; empty: the spoke's NBMA address
    std::string ike_proposal = "aes128gcm16-prfsha256-x25519";
    std::string isakmp_policy;  // --isakmp-policy (IKEv1); empty: IOS's default policy
    std::string esp_proposal = "aes128gcm16";
    double ike_rate = 100;  // IKE SAs initiated per second while the spokes come up
    double ike_retry = 5;   // seconds before a spoke whose IKE SA died initiates again
    // Up to this many ms (uniform) between a spoke's first CHILD_SA with the hub and its first
    // registration: independent spokes' WAN paths and stacks, not one process's batch.
    double reg_jitter_ms = 0;
    std::string key_log;  // --key-log DIR: the spokes' IKE/ESP keys for Wireshark (debugging)

    // DPDK.
    std::string vdev;
    std::optional<mac> hub_mac;         // absent: ARP for the hub's NBMA address
    std::vector<std::string> eal_args;  // replaces the default EAL arguments when given
    // RX and TX queues of the port. A memif client decides how many rings exist: the hub sends
    // from one TX queue per worker plus its control lcore's, so the demo's one worker needs 2.
    uint16_t queues = 2;

    // Load.
    double registration_rate = 100;  // registrations per second during the ramp
    double data_rate = 10;           // data packets per second, all spokes together
    uint32_t payload_size = 64;      // bytes of UDP payload in each data packet
    uint32_t peer_offset = 1;        // spoke i sends to spoke i + offset (mod N)
    traffic_addressing traffic = traffic_addressing::overlay;
    // --data-to-hub PORT: every data packet goes to the hub's overlay address, UDP port PORT
    // (the hub's exception path hands it to a socket on its host); 0: spoke to spoke.
    uint16_t data_to_hub_port = 0;
    // --data-to ADDR: every data packet goes to ADDR, UDP port 9 (a host behind the hub's
    // routes); nothing returns, so no loss is counted. 0: spoke to spoke.
    ipv4 data_to = 0;
    double duration = 5;       // seconds of data after every spoke registered; 0: until a signal
    double data_after = 0;     // seconds of quiet between the registrations and the data
    double resolve_after = 0;  // --resolve: seconds after the registrations
    double register_wait = 0;  // seconds to wait for registrations; 0: 10 + N / rate
    double drain = 1;          // seconds to keep receiving after the last data packet
    // After the report, keep the port (a memif connection) open until SIGTERM/SIGINT, so the
    // hub can be stopped first: DPDK 22.11's memif server crashes if its client disconnects
    // while a worker polls.
    bool linger = false;
    bool progress = true;    // a line on stderr every second on runs longer than a few seconds
    bool per_spoke = false;  // per-spoke objects in the JSON even for large N

    // Abuse and churn, for the hub's end-to-end tests.
    // Hostile frames per legitimate registration while the spokes register: malformed NHRP,
    // foreign registrations with a wrong password, foreign registrations from unknown NBMA
    // addresses (in turn). 0: none.
    double flood_ratio = 0;
    // Plain-GRE forgery: `forge` sources with NBMA and tunnel addresses of their own (after the
    // blocks above) each send a Registration Request (the right key and password), then each a
    // Resolution Request for a spoke's address, then each a multicast packet (UDP to
    // 239.1.1.1), at forge_rate frames a second from the start of traffic (the spokes
    // registered): one pass of 3 x forge frames. 0: none.
    uint32_t forge = 0;
    double forge_rate = 10000;
    // Spoke K (local position) moves to a new NBMA address `move_after` seconds into the
    // traffic phase and registers again from there.
    std::optional<uint32_t> move_spoke;
    double move_after = 2;
    // The first K spokes register once and never refresh: their bindings run out at the hub
    // while the other spokes keep sending to them.
    uint32_t stop_refresh = 0;

    // Offline modes.
    bool print_sa_yaml = false;
    std::string write_pcap;
    std::string capture;  // --capture FILE: every frame the live port sends and receives
    uint64_t pcap_count = 0;

    bool help = false;
};

// Parses argv[1..]; the error is a message naming the option and what is wrong with it.
wire::result<options, std::string> parse_options(const std::vector<std::string>& args);

// Checks the combination (address ranges large enough, offsets inside N, ...). parse_options
// calls it; exposed for the tests.
std::optional<std::string> validate(const options& o);

std::string usage();

}  // namespace dmvpn::spokesim
