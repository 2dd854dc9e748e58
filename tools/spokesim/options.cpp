#include "tools/spokesim/options.hpp"

#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>

#include <fmt/format.h>

#include "tools/spokesim/ike_config.hpp"
#include "tools/spokesim/nhs.hpp"

namespace dmvpn::spokesim {

std::string_view name(esp_transform t) noexcept {
    switch (t) {
        case esp_transform::none:
            return "none";
        case esp_transform::aes128_gcm:
            return "aes128-gcm16";
        case esp_transform::aes256_gcm:
            return "aes256-gcm16";
        case esp_transform::aes128_cbc_sha1_96:
            return "aes128-cbc-sha1-96";
        case esp_transform::aes256_cbc_sha256_128:
            return "aes256-cbc-sha256-128";
        case esp_transform::des3_cbc_md5_96:
            return "3des-cbc-md5-96";
        case esp_transform::des3_cbc_sha1_96:
            return "3des-cbc-sha1-96";
        case esp_transform::aes128_cbc_md5_96:
            return "aes128-cbc-md5-96";
    }
    return "?";
}

bool is_gcm(esp_transform t) noexcept {
    return t == esp_transform::aes128_gcm || t == esp_transform::aes256_gcm;
}

std::string usage() {
    return R"(usage: dmvpn-spokesim [OPTIONS]
Emulates N DMVPN spokes (NHRP client, mGRE, ESP transport) against a dmvpn-hub.

Topology (spoke i = first-spoke + 0..N-1 takes the i-th address of each range):
  --spokes N                 number of spokes (default 2)
  --first-spoke K            index of the first spoke, to split spokes between processes (0)
  --nbma-prefix P/L          NBMA addresses (100.64.0.0/10)
  --nbma-offset K            spoke 0's NBMA is the prefix's K-th address (2)
  --hub-nbma A               the hub's NBMA address (the prefix's first host)
  --tunnel-prefix P/L        tunnel (overlay) prefix (10.255.0.0/16)
  --overlay-offset K         spoke 0's overlay is the prefix's K-th address (2)
  --hub-overlay A            the hub's tunnel address (the prefix's first host)
  --nhs NBMA,OVERLAY         an NHS; repeat for several (at most 8, plain GRE): every spoke
                             registers with each, traffic through the first that answers
  --nhs-timeout S            a registration unanswered this long fails over (3)
  --lan-prefix P/L           LAN prefixes are carved from here (172.16.0.0/12)
  --lan-length L             length of each spoke's LAN prefix (24)
Tunnel and NHRP:
  --gre-key K                GRE key of the tunnel (none)
  --auth STRING              NHRP authentication string, at most 8 bytes (none)
  --holdtime S               NHRP holding time (7200); registrations refresh at S/3
  --registration-timeout S   refresh interval instead of holdtime/3
  --unique | --no-unique     set the unique flag in registrations (set)
  --nat-extension | --no-nat-extension   send the Cisco NAT extension (sent)
  --style cisco|frr          whose Registration Request to copy (cisco)
  --mtu M                    MTU in the CIEs (1514)
  --cie-prefix 255|32        prefix length of the registration CIE (255 with unique, else 32)
  --no-shortcuts             ignore Traffic Indications (Phase 1/2 spokes)
  --resolve                  as traffic starts, each spoke resolves its peer's traffic address
                             (with --data-to: ADDR) through the hub (a Phase 2 spoke resolving
                             its route's next hop)
  --resolve-after S          ... S seconds after traffic starts instead (0); only the spokes
                             registered then ask
IPsec (manual SAs, one pair per spoke with the hub):
  --esp none|aes128-cbc-sha1-96|aes256-cbc-sha256-128|aes128-gcm16|aes256-gcm16   (none)
                             the hub refuses GCM with manual keys; GCM is for tests playing it;
                             legacy 3des-cbc-md5-96|3des-cbc-sha1-96|aes128-cbc-md5-96 too
  --sa-seed N                seed of the derived keys (1)
  --spi-base N               spoke i sends with SPI base+2i, receives with base+2i+1 (0x1000)
  --print-sa-yaml            print the hub's YAML for these SAs and exit
IPsec negotiated by IKEv2 (instead of --esp; each spoke keys itself with the hub before it
registers, and with another emulated spoke before taking a Phase 3 shortcut to it):
  --ike psk:KEY              pre-shared key (the hub's wildcard key)
  --ike cert:DIR             certificates: DIR/ca.pem is the CA; spoke i (global index) uses
                             DIR/spoke-<i>.pem + .key when present (identity: its NBMA
                             address, which the certificate must name), else the shared
                             DIR/spoke.pem + spoke.key with the identity --ike-id names
  --ike v1                   speak IKEv1 (Main Mode with the --ike psk:KEY key, Quick Mode;
                             AES-128/SHA-1/group 14, ESP aes128-sha1 unless --esp-proposal
                             names CBC ones; a group in it adds PFS); --ike v2 is the default
  --isakmp-policy LIST       IKEv1's ISAKMP policies, ENCR-HASH-GROUP as strongSwan writes IKEv1
                             proposals (aes256-sha256-modp2048, aes128-sha1-modp1024,
                             3des-md5-modp1024; ENCR aes128|aes192|aes256|3des, HASH
                             sha1|sha256|md5, GROUP modp1024|modp1536|modp2048|ecp256|ecp384)
  --ike-id ID                identity the spokes send (default: each spoke's NBMA address)
  --ike-proposal LIST        IKE SA proposals, strongSwan's syntax, comma-separated
                             (aes128gcm16-prfsha256-x25519; also aes256-sha256-modp2048, ...)
  --esp-proposal LIST        CHILD_SA proposals (aes128gcm16; aes256gcm16, aes128-sha1,
                             aes256-sha256, ...; -esn offers ESN, a group adds PFS)
  --ike-rate R               IKE SAs initiated per second while the spokes come up (100)
  --ike-retry S              seconds before a spoke whose IKE SA died initiates again (5)
  --reg-jitter MS            each spoke registers a random 0..MS ms after its first CHILD_SA
                             with the hub is up (0: at once, so the spokes whose IKE_AUTH
                             replies one poll took register together, a worst case no real
                             population of independent spokes sends)
  --key-log DIR              debugging: append every IKE SA's and ESP SA's keys to
                             DIR/ikev2_decryption_table and DIR/esp_sa (Wireshark's tables)
Port:
  --vdev STRING              DPDK virtual device, e.g. net_memif0,role=client,socket=/tmp/m.sock
  --hub-mac MAC              the hub's MAC (default: ARP for the hub's NBMA address); every
                             registration a spoke sends unregistered, and IKE SA it initiates,
                             follows a gratuitous ARP for its NBMA address (a hub's entry for it
                             moves to this port's MAC)
  --eal "ARGS"               EAL arguments replacing the defaults
  --queues Q                 RX and TX queues (2); a memif hub needs its workers + 1, all polled
Load:
  --reg-rate R               registrations per second during the ramp (100)
  --rate PPS                 data packets per second, all spokes together (10; 0: none)
  --payload B                UDP payload bytes per data packet (64; at least 24)
  --peer-offset K            spoke i sends to spoke i+K mod N (1)
  --data-to-hub PORT         data goes to the hub's overlay address, UDP port PORT (the hub's
                             exception path to its host) instead of to another spoke
  --data-to ADDR             data goes to ADDR (UDP port 9), a host behind a route of the hub's
                             (another hub's LAN, say); nothing comes back to the emulator, so
                             nothing counts as lost here: count what arrives at ADDR
  --traffic overlay|lan      inner addresses: tunnel addresses or a host in each LAN (overlay)
  --duration S               seconds of data once all spokes registered (5; 0: until SIGINT)
  --data-after S             seconds of quiet (registrations kept) before the data (0)
  --register-wait S          give up waiting for registrations after S (10 + N/reg-rate)
  --drain S                  keep receiving S after the last data packet (1)
  --no-progress              no progress line on stderr
  --linger                   after the report, keep the port open until SIGTERM/SIGINT, so
                             the hub can stop polling its memif port first (`dmvpnctl port
                             pause`, or stopping the hub): DPDK 22.11's memif server unmaps
                             the rings under a polling worker when its client leaves
  --per-spoke                per-spoke objects in the final JSON even for more than 16 spokes
Abuse and churn (the hub's end-to-end tests):
  --flood-ratio R            R hostile frames per registration while registering: malformed
                             NHRP, wrong-password and unknown-source foreign registrations (0)
  --forge N                  N forged plain-GRE sources (own NBMA and tunnel addresses): each
                             registers, then each resolves a spoke, then each sends multicast
                             to 239.1.1.1, one pass of 3N frames once the spokes registered (0)
  --forge-rate R             forged frames per second (10000)
  --move-spoke K             spoke K moves to a new NBMA address and registers again from it
  --move-after S             seconds into the traffic phase for --move-spoke (2)
  --stop-refresh K           the first K spokes register once and never refresh (0)
Offline:
  --capture FILE             write every frame the port sends and receives to FILE (pcap,
                             Ethernet), as a capture on the link would show them
  --write-pcap FILE --count N   write N frames of the spokes' data (encrypted per --esp) and exit
  --help
The last line on stdout is one JSON object with the results.
)";
}

namespace {

using handler = std::function<std::optional<std::string>(options&, const std::string&)>;

std::optional<std::string> need_uint(const std::string& opt, const std::string& v, uint64_t lo,
                                     uint64_t hi, uint64_t& out) {
    auto n = parse_uint(v);
    if (!n || *n < lo || *n > hi) {
        return fmt::format("{}: '{}' is not an integer in [{}, {}]", opt, v, lo, hi);
    }
    out = *n;
    return std::nullopt;
}

std::optional<std::string> need_double(const std::string& opt, const std::string& v, double lo,
                                       double hi, double& out) {
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (v.empty() || end != v.c_str() + v.size() || !std::isfinite(d) || d < lo || d > hi) {
        return fmt::format("{}: '{}' is not a number in [{}, {}]", opt, v, lo, hi);
    }
    out = d;
    return std::nullopt;
}

template <typename T>
handler uint_into(T options::*field, uint64_t lo, uint64_t hi) {
    return [field, lo, hi](options& o, const std::string& v) -> std::optional<std::string> {
        uint64_t n = 0;
        if (auto e = need_uint("", v, lo, hi, n)) {
            return e;
        }
        o.*field = static_cast<T>(n);
        return std::nullopt;
    };
}

handler double_into(double options::*field, double lo, double hi) {
    return [field, lo, hi](options& o, const std::string& v) -> std::optional<std::string> {
        double d = 0;
        if (auto e = need_double("", v, lo, hi, d)) {
            return e;
        }
        o.*field = d;
        return std::nullopt;
    };
}

handler prefix_into(prefix options::*field) {
    return [field](options& o, const std::string& v) -> std::optional<std::string> {
        auto p = parse_prefix(v);
        if (!p) {
            return fmt::format(": '{}' is not an IPv4 prefix A.B.C.D/L with zero host bits", v);
        }
        o.*field = *p;
        return std::nullopt;
    };
}

handler ipv4_into(ipv4 options::*field) {
    return [field](options& o, const std::string& v) -> std::optional<std::string> {
        auto a = parse_ipv4(v);
        if (!a || *a == 0) {
            return fmt::format(": '{}' is not an IPv4 address", v);
        }
        o.*field = *a;
        return std::nullopt;
    };
}

std::vector<std::string> split_words(const std::string& s) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : s) {
        if (c == ' ' || c == '\t') {
            if (!cur.empty()) {
                out.push_back(cur);
                cur.clear();
            }
        } else {
            cur += c;
        }
    }
    if (!cur.empty()) {
        out.push_back(cur);
    }
    return out;
}

const std::map<std::string, handler>& valued() {
    static const std::
        map<std::string, handler>
            table =
                {
                    {"--spokes", uint_into(&options::spokes, 1, 1u << 22)},
                    {"--first-spoke", uint_into(&options::first_spoke, 0, 1u << 24)},
                    {"--nbma-prefix", prefix_into(&options::nbma_prefix)},
                    {"--nbma-offset", uint_into(&options::nbma_offset, 1, 1u << 30)},
                    {"--hub-nbma", ipv4_into(&options::hub_nbma)},
                    {"--tunnel-prefix", prefix_into(&options::tunnel_prefix)},
                    {"--overlay-offset", uint_into(&options::overlay_offset, 1, 1u << 30)},
                    {"--hub-overlay", ipv4_into(&options::hub_overlay)},
                    {"--nhs",
                     [](options& o, const std::string& v) -> std::optional<std::string> {
                         auto a = parse_nhs(v);
                         if (!a) {
                             return fmt::format(": '{}' is not NBMA,OVERLAY (two IPv4 addresses)",
                                                v);
                         }
                         if (o.nhs.size() >= max_nhs) {
                             return fmt::format(": at most {} NHSes", max_nhs);
                         }
                         o.nhs.push_back(*a);
                         if (o.nhs.size() == 1) {
                             o.hub_nbma = a->nbma;
                             o.hub_overlay = a->overlay;
                         }
                         return std::nullopt;
                     }},
                    {"--nhs-timeout", double_into(&options::nhs_timeout, 0.1, 3600)},
                    {"--lan-prefix", prefix_into(&options::lan_prefix)},
                    {"--lan-length", uint_into(&options::lan_length, 8, 32)},
                    {"--gre-key",
                     [](options& o, const std::string& v) -> std::optional<std::string> {
                         auto n = parse_uint(v);
                         if (!n || *n > 0xffffffffu) {
                             return fmt::format(": '{}' is not a 32-bit GRE key", v);
                         }
                         o.gre_key = static_cast<uint32_t>(*n);
                         return std::nullopt;
                     }},
                    {"--auth",
                     [](options& o, const std::string& v) -> std::optional<std::string> {
                         // Cisco and FRR carry at most 8 bytes of clear-text password.
                         if (v.empty() || v.size() > 8) {
                             return fmt::format(": '{}' must be 1 to 8 bytes (Cisco's limit)", v);
                         }
                         o.auth = v;
                         return std::nullopt;
                     }},
                    {"--holdtime", uint_into(&options::holdtime, 1, 65535)},
                    {"--registration-timeout", uint_into(&options::registration_timeout, 1, 65535)},
                    {"--style",
                     [](options& o, const std::string& v) -> std::optional<std::string> {
                         if (v == "cisco") {
                             o.style = nhrp_style::cisco;
                         } else if (v == "frr") {
                             o.style = nhrp_style::frr;
                         } else {
                             return fmt::format(": '{}' is neither cisco nor frr", v);
                         }
                         return std::nullopt;
                     }},
                    {"--mtu", uint_into(&options::cie_mtu, 68, 65535)},
                    {"--cie-prefix",
                     [](options& o, const std::string& v) -> std::optional<std::string> {
                         // IOS sends 255 (unique) or 32; nothing else means anything for a
                         // registration.
                         if (v == "255" || v == "32") {
                             o.cie_prefix = static_cast<uint8_t>(std::stoi(v));
                             return std::nullopt;
                         }
                         return fmt::format(": '{}' is neither 255 nor 32", v);
                     }},
                    {"--esp",
                     [](options& o, const std::string& v) -> std::optional<std::string> {
                         for (auto t :
                              {esp_transform::none, esp_transform::aes128_cbc_sha1_96,
                               esp_transform::aes256_cbc_sha256_128, esp_transform::aes128_gcm,
                               esp_transform::aes256_gcm, esp_transform::des3_cbc_md5_96,
                               esp_transform::des3_cbc_sha1_96, esp_transform::aes128_cbc_md5_96}) {
                             if (v == name(t)) {
                                 o.esp = t;
                                 return std::nullopt;
                             }
                         }
                         return fmt::format(
                             ": '{}' is not one of none, aes128-cbc-sha1-96, "
                             "aes256-cbc-sha256-128, aes128-gcm16, aes256-gcm16, "
                             "3des-cbc-md5-96, 3des-cbc-sha1-96, aes128-cbc-md5-96",
                             v);
                     }},
                    {"--sa-seed", uint_into(&options::sa_seed, 0, UINT64_MAX)},
                    {"--ike",
                     [](options& o, const std::string& v) -> std::optional<std::string> {
                         if (v.rfind("psk:", 0) == 0 && v.size() > 4) {
                             o.ike = ike_mode::psk;
                             o.ike_secret = v.substr(4);
                         } else if (v == "v1" || v == "v2") {
                             o.ike_version = v == "v1" ? 1 : 2;
                         } else if (v.rfind("cert:", 0) == 0 && v.size() > 5) {
                             o.ike = ike_mode::certificate;
                             o.ike_cert_dir = v.substr(5);
                         } else {
                             return std::string(
                                 ": expected psk:KEY or cert:DIR (or v1, v2: the IKE version)");
                         }
                         return std::nullopt;
                     }},
                    {"--ike-id",
                     [](options& o, const std::string& v) -> std::optional<std::string> {
                         if (v.empty()) {
                             return std::string(": empty identity");
                         }
                         o.ike_id = v;
                         return std::nullopt;
                     }},
                    {"--ike-proposal",
                     [](options& o, const std::string& v) -> std::optional<std::string> {
                         if (auto p = parse_ike_proposals(v); !p) {
                             return " " + p.error();
                         }
                         o.ike_proposal = v;
                         return std::nullopt;
                     }},
                    {"--isakmp-policy",
                     [](options& o, const std::string& v) -> std::optional<std::string> {
                         if (auto p = parse_isakmp_policies(v); !p) {
                             return " " + p.error();
                         }
                         o.isakmp_policy = v;
                         return std::nullopt;
                     }},
                    {"--esp-proposal",
                     [](options& o, const std::string& v) -> std::optional<std::string> {
                         if (auto p = parse_esp_proposals(v); !p) {
                             return " " + p.error();
                         }
                         o.esp_proposal = v;
                         return std::nullopt;
                     }},
                    {"--ike-rate", double_into(&options::ike_rate, 0.001, 1e7)},
                    {"--ike-retry", double_into(&options::ike_retry, 0, 3600)},
                    {"--reg-jitter", double_into(&options::reg_jitter_ms, 0, 60000)},
                    {"--key-log",
                     [](options& o, const std::string& v) -> std::optional<std::string> {
                         if (v.empty()) {
                             return std::string(": empty directory");
                         }
                         o.key_log = v;
                         return std::nullopt;
                     }},
                    {"--spi-base", uint_into(&options::spi_base, 256, 0xf0000000u)},
                    {"--vdev",
                     [](options& o,
                        const std::string& v) -> std::
                                                  optional<std::string> {
                                                      if (v.empty() ||
                                                          v.find(' ') != std::string::npos) {
                                                          return fmt::format(
                                                              ": '{}' is not a vdev string "
                                                              "(name[,key=value...])",
                                                              v);
                                                      }
                                                      o.vdev = v;
                                                      return std::nullopt;
                                                  }},
                    {"--hub-mac",
                     [](options& o, const std::string& v) -> std::optional<std::string> {
                         auto m = parse_mac(v);
                         if (!m || ((*m)[0] & 1) != 0) {
                             return fmt::format(": '{}' is not a unicast MAC aa:bb:cc:dd:ee:ff", v);
                         }
                         o.hub_mac = *m;
                         return std::nullopt;
                     }},
                    {"--eal",
                     [](options& o, const std::string& v) -> std::
                                                              optional<std::string> {
                                                                  o.eal_args = split_words(v);
                                                                  if (o.eal_args.empty()) {
                                                                      return std::string(
                                                                          ": empty EAL arguments");
                                                                  }
                                                                  return std::nullopt;
                                                              }},
                    {"--queues", uint_into(&options::queues, 1, 64)},
                    {"--reg-rate", double_into(&options::registration_rate, 0.001, 1e7)},
                    {"--rate", double_into(&options::data_rate, 0, 1e9)},
                    {"--payload", uint_into(&options::payload_size, 24, 1400)},
                    {"--peer-offset", uint_into(&options::peer_offset, 1, 1u << 22)},
                    {"--data-to-hub", uint_into(&options::data_to_hub_port, 1, 65535)},
                    {"--data-to", ipv4_into(&options::data_to)},
                    {"--traffic",
                     [](options& o, const std::string& v) -> std::optional<std::string> {
                         if (v == "overlay") {
                             o.traffic = traffic_addressing::overlay;
                         } else if (v == "lan") {
                             o.traffic = traffic_addressing::lan;
                         } else {
                             return fmt::format(": '{}' is neither overlay nor lan", v);
                         }
                         return std::nullopt;
                     }},
                    {"--duration", double_into(&options::duration, 0, 1e7)},
                    {"--data-after", double_into(&options::data_after, 0, 1e6)},
                    {"--resolve-after", double_into(&options::resolve_after, 0, 1e6)},
                    {"--register-wait", double_into(&options::register_wait, 0.001, 1e7)},
                    {"--drain", double_into(&options::drain, 0, 3600)},
                    {"--flood-ratio", double_into(&options::flood_ratio, 0, 1000)},
                    {"--forge", uint_into(&options::forge, 0, 1000000)},
                    {"--forge-rate", double_into(&options::forge_rate, 1, 10000000)},
                    {"--move-spoke",
                     [](options& o, const std::string& v) -> std::optional<std::string> {
                         uint64_t k = 0;
                         if (auto e = need_uint("", v, 0, 1u << 22, k)) {
                             return e;
                         }
                         o.move_spoke = static_cast<uint32_t>(k);
                         return std::nullopt;
                     }},
                    {"--move-after", double_into(&options::move_after, 0, 1e6)},
                    {"--stop-refresh", uint_into(&options::stop_refresh, 0, 1u << 22)},
                    {"--write-pcap",
                     [](options& o, const std::string& v) -> std::optional<std::string> {
                         if (v.empty()) {
                             return std::string(": empty file name");
                         }
                         o.write_pcap = v;
                         return std::nullopt;
                     }},
                    {"--count", uint_into(&options::pcap_count, 1, 100'000'000)},
                    {"--capture",
                     [](options& o, const std::string& v) -> std::optional<std::string> {
                         if (v.empty()) {
                             return std::string(": empty file name");
                         }
                         o.capture = v;
                         return std::nullopt;
                     }},
                };
    return table;
}

const std::map<std::string, std::function<void(options&)>>& switches() {
    static const std::map<std::string, std::function<void(options&)>> table = {
        {"--unique", [](options& o) { o.unique = true; }},
        {"--no-unique", [](options& o) { o.unique = false; }},
        {"--nat-extension", [](options& o) { o.nat_extension = true; }},
        {"--no-nat-extension", [](options& o) { o.nat_extension = false; }},
        {"--no-shortcuts", [](options& o) { o.shortcuts = false; }},
        {"--resolve", [](options& o) { o.resolve = true; }},
        {"--print-sa-yaml", [](options& o) { o.print_sa_yaml = true; }},
        {"--no-progress", [](options& o) { o.progress = false; }},
        {"--linger", [](options& o) { o.linger = true; }},
        {"--per-spoke", [](options& o) { o.per_spoke = true; }},
        {"--help", [](options& o) { o.help = true; }},
        {"-h", [](options& o) { o.help = true; }},
    };
    return table;
}

// The k-th address of a prefix must be a host address: inside, and neither the first nor
// (for prefixes shorter than /31) the last.
bool host_in(const prefix& p, uint64_t k) {
    return k >= 1 && k + (p.length < 31 ? 1 : 0) < p.size();
}

}  // namespace

std::optional<std::string> validate(const options& o) {
    uint64_t last = uint64_t{o.first_spoke} + o.spokes - 1;
    if (!host_in(o.nbma_prefix, o.nbma_offset + last)) {
        return fmt::format("--nbma-prefix {} has no room for spokes {}..{} from offset {}",
                           to_string(o.nbma_prefix), o.first_spoke, last, o.nbma_offset);
    }
    if (!host_in(o.tunnel_prefix, o.overlay_offset + last)) {
        return fmt::format("--tunnel-prefix {} has no room for spokes {}..{} from offset {}",
                           to_string(o.tunnel_prefix), o.first_spoke, last, o.overlay_offset);
    }
    if (o.lan_length < o.lan_prefix.length) {
        return fmt::format("--lan-length {} is shorter than --lan-prefix {}", o.lan_length,
                           to_string(o.lan_prefix));
    }
    if (o.traffic == traffic_addressing::lan &&
        last >= (uint64_t{1} << (o.lan_length - o.lan_prefix.length))) {
        return fmt::format("--lan-prefix {} holds only {} /{} prefixes; spoke {} needs more",
                           to_string(o.lan_prefix),
                           uint64_t{1} << (o.lan_length - o.lan_prefix.length), o.lan_length, last);
    }
    if (o.traffic == traffic_addressing::lan && o.lan_length > 30) {
        return std::string("--traffic lan needs a --lan-length of at most 30 (a host at .1)");
    }
    if (o.data_to != 0 && o.data_to_hub_port != 0) {
        return std::string("--data-to and --data-to-hub name two destinations: give one");
    }
    if (o.nhs.size() > 1 && (o.esp != esp_transform::none || o.ike != ike_mode::off)) {
        return std::string("--nhs more than once runs plain GRE: no --esp, no --ike");
    }
    for (size_t i = 0; i < o.nhs.size(); ++i) {
        for (size_t j = 0; j < i; ++j) {
            if (o.nhs[i].nbma == o.nhs[j].nbma || o.nhs[i].overlay == o.nhs[j].overlay) {
                return fmt::format("--nhs {}: the same NHS twice", to_string(o.nhs[i].nbma));
            }
        }
        if (i > 0 && !o.tunnel_prefix.contains(o.nhs[i].overlay)) {
            return fmt::format("--nhs overlay {} is outside --tunnel-prefix {}",
                               to_string(o.nhs[i].overlay), to_string(o.tunnel_prefix));
        }
    }
    ipv4 hub_nbma = o.hub_nbma != 0 ? o.hub_nbma : o.nbma_prefix.network + 1;
    ipv4 hub_overlay = o.hub_overlay != 0 ? o.hub_overlay : o.tunnel_prefix.network + 1;
    uint64_t first_nbma = uint64_t{o.nbma_prefix.network} + o.nbma_offset + o.first_spoke;
    if (hub_nbma >= first_nbma && hub_nbma <= first_nbma + o.spokes - 1) {
        return fmt::format("--hub-nbma {} is one of the spokes' NBMA addresses",
                           to_string(hub_nbma));
    }
    uint64_t first_overlay = uint64_t{o.tunnel_prefix.network} + o.overlay_offset + o.first_spoke;
    if (hub_overlay >= first_overlay && hub_overlay <= first_overlay + o.spokes - 1) {
        return fmt::format("--hub-overlay {} is one of the spokes' tunnel addresses",
                           to_string(hub_overlay));
    }
    if (!o.tunnel_prefix.contains(hub_overlay)) {
        return fmt::format("--hub-overlay {} is outside --tunnel-prefix {}", to_string(hub_overlay),
                           to_string(o.tunnel_prefix));
    }
    if (o.data_rate > 0 && o.spokes >= 2 && o.peer_offset % o.spokes == 0) {
        return fmt::format("--peer-offset {} makes every spoke send to itself with {} spokes",
                           o.peer_offset, o.spokes);
    }
    if (o.registration_timeout != 0 && o.registration_timeout >= o.holdtime) {
        return fmt::format("--registration-timeout {} must be below --holdtime {}",
                           o.registration_timeout, o.holdtime);
    }
    if (o.holdtime < 3 && o.registration_timeout == 0) {
        return fmt::format("--holdtime {} leaves no refresh interval (holdtime/3 < 1 s)",
                           o.holdtime);
    }
    // Flood sources and moved spokes take the addresses after the spokes' own (3 blocks of N).
    bool extra = o.flood_ratio > 0 || o.move_spoke.has_value();
    if (extra && !host_in(o.nbma_prefix, o.nbma_offset + last + 2ull * o.spokes)) {
        return fmt::format("--nbma-prefix {} has no room for the flood / moved addresses",
                           to_string(o.nbma_prefix));
    }
    if (extra && !host_in(o.tunnel_prefix, o.overlay_offset + last + o.spokes)) {
        return fmt::format("--tunnel-prefix {} has no room for the flood's foreign addresses",
                           to_string(o.tunnel_prefix));
    }
    // Forged sources come after those three blocks.
    if (o.forge > 0 && !host_in(o.nbma_prefix, o.nbma_offset + last + 2ull * o.spokes + o.forge)) {
        return fmt::format("--nbma-prefix {} has no room for {} forged sources",
                           to_string(o.nbma_prefix), o.forge);
    }
    if (o.forge > 0 &&
        !host_in(o.tunnel_prefix, o.overlay_offset + last + 2ull * o.spokes + o.forge)) {
        return fmt::format("--tunnel-prefix {} has no room for {} forged sources",
                           to_string(o.tunnel_prefix), o.forge);
    }
    if (o.forge > 0 && o.esp != esp_transform::none) {
        return std::string("--forge is a plain-GRE flood: it does not go with --esp");
    }
    if (o.ike != ike_mode::off) {
        if (o.esp != esp_transform::none) {
            return std::string(
                "--ike negotiates the SAs: leave --esp out (choose with --esp-proposal)");
        }
        if (o.forge > 0) {
            return std::string("--forge is a plain-GRE flood: it does not go with --ike");
        }
        if (o.move_spoke) {
            return std::string(
                "--move-spoke does not go with --ike (a spoke's IKE SA is bound to its address)");
        }
        if (o.print_sa_yaml || !o.write_pcap.empty()) {
            return std::string(
                "--ike negotiates at run time: no --print-sa-yaml or --write-pcap with it");
        }
    }
    if (!o.isakmp_policy.empty() && o.ike_version != 1) {
        return std::string("--isakmp-policy is IKEv1's: it needs --ike v1");
    }
    if (o.ike_version == 1 && o.ike != ike_mode::psk) {
        return std::string("--ike v1 needs --ike psk:KEY (IKEv1 here is pre-shared keys only)");
    }
    if (!o.key_log.empty() && o.ike == ike_mode::off) {
        return std::string("--key-log writes IKE-negotiated keys: it needs --ike");
    }
    if (o.move_spoke && *o.move_spoke >= o.spokes) {
        return fmt::format("--move-spoke {} is not one of the {} spokes", *o.move_spoke, o.spokes);
    }
    if (o.stop_refresh > o.spokes) {
        return fmt::format("--stop-refresh {} is more than the {} spokes", o.stop_refresh,
                           o.spokes);
    }
    if (!o.write_pcap.empty() && o.pcap_count == 0) {
        return std::string("--write-pcap needs --count N");
    }
    if (o.write_pcap.empty() && o.pcap_count != 0) {
        return std::string("--count only goes with --write-pcap");
    }
    if (!o.write_pcap.empty() && o.spokes < 2) {
        return std::string("--write-pcap needs at least 2 spokes (data goes spoke to spoke)");
    }
    if (o.print_sa_yaml && o.esp == esp_transform::none) {
        return std::string("--print-sa-yaml needs --esp (there are no SAs without it)");
    }
    if (o.vdev.empty() && !o.print_sa_yaml && o.write_pcap.empty()) {
        return std::string("--vdev is required (or --print-sa-yaml / --write-pcap)");
    }
    return std::nullopt;
}

wire::result<options, std::string> parse_options(const std::vector<std::string>& args) {
    options o;
    bool saw_unique = false;
    bool saw_no_unique = false;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        std::string opt = a;
        std::optional<std::string> value;
        if (size_t eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
            opt = a.substr(0, eq);
            value = a.substr(eq + 1);
        }
        if (auto s = switches().find(opt); s != switches().end()) {
            if (value) {
                return wire::fail(fmt::format("{} takes no value", opt));
            }
            saw_unique |= opt == "--unique";
            saw_no_unique |= opt == "--no-unique";
            s->second(o);
            continue;
        }
        auto h = valued().find(opt);
        if (h == valued().end()) {
            return wire::fail(fmt::format("unknown option '{}' (see --help)", a));
        }
        if (!value) {
            if (i + 1 >= args.size()) {
                return wire::fail(fmt::format("{} needs a value", opt));
            }
            value = args[++i];
        }
        if (auto e = h->second(o, *value)) {
            return wire::fail(opt + *e);
        }
    }
    if (saw_unique && saw_no_unique) {
        return wire::fail(std::string("--unique and --no-unique contradict each other"));
    }
    if (o.help) {
        return o;
    }
    if (auto e = validate(o)) {
        return wire::fail(*e);
    }
    return o;
}

}  // namespace dmvpn::spokesim
