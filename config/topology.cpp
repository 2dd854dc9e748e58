// Address helpers, transform facts, look-ups and the reload diff of config/topology.hpp.
#include "config/topology.hpp"

#include <algorithm>
#include <array>

#include "dataplane/wire/ipv4.hpp"

namespace dmvpn::config {

std::optional<ipv4> parse_ipv4(std::string_view text) noexcept {
    // The wire parser is the single strict one (no leading zeros), shared with the hub's CLI.
    auto a = wire::parse_ipv4_address(text);
    if (!a) {
        return std::nullopt;
    }
    return ipv4{*a};
}

std::string to_string(ipv4 a) { return wire::format_ipv4(a.value); }

std::string to_string(const prefix4& p) {
    return to_string(p.network) + "/" + std::to_string(p.length);
}

std::string to_string(const interface_address& a) {
    return to_string(a.address) + "/" + std::to_string(a.length);
}

std::string_view name(port_role r) noexcept {
    switch (r) {
        case port_role::underlay:
            return "underlay";
        case port_role::lan:
            return "lan";
    }
    return "?";
}

namespace {

struct transform_facts {
    transform t;
    std::string_view name;
    size_t cipher_key;
    size_t salt;
    size_t integrity_key;
    size_t overhead;
};

// Overhead: SPI + sequence 8, IV (8 for GCM per RFC 4106 and 3DES per RFC 2451, 16 for AES-CBC
// per RFC 3602), pad length + next header 2, padding to the cipher's alignment (4 for GCM, 8-
// and 16-byte blocks for 3DES and AES-CBC, so at most 3, 7 or 15), ICV (16; 12 for HMAC-SHA1-96
// and HMAC-MD5-96, 16 for HMAC-SHA-256-128).
constexpr std::array<transform_facts, 7> transforms{{
    {transform::aes128_gcm16, "aes128-gcm16", 16, 4, 0, 8 + 8 + 2 + 3 + 16},
    {transform::aes256_gcm16, "aes256-gcm16", 32, 4, 0, 8 + 8 + 2 + 3 + 16},
    {transform::aes128_cbc_sha1_96, "aes128-cbc-sha1-96", 16, 0, 20, 8 + 16 + 2 + 15 + 12},
    {transform::aes256_cbc_sha256_128, "aes256-cbc-sha256-128", 32, 0, 32, 8 + 16 + 2 + 15 + 16},
    {transform::des3_cbc_md5_96, "3des-cbc-md5-96", 24, 0, 16, 8 + 8 + 2 + 7 + 12},
    {transform::des3_cbc_sha1_96, "3des-cbc-sha1-96", 24, 0, 20, 8 + 8 + 2 + 7 + 12},
    {transform::aes128_cbc_md5_96, "aes128-cbc-md5-96", 16, 0, 16, 8 + 16 + 2 + 15 + 12},
}};

// What a security review says of the legacy algorithms (RFC 8221 sections 5 and 6 list 3DES as
// SHOULD NOT and HMAC-MD5-96 as MUST NOT for ESP).
constexpr std::string_view weak_3des =
    "3DES-CBC is a legacy cipher (RFC 8221: SHOULD NOT); its 64-bit block wears out after a few "
    "GiB under one key (Sweet32)";
constexpr std::string_view weak_md5 =
    "HMAC-MD5-96 is a legacy integrity algorithm (RFC 8221: MUST NOT)";
constexpr std::string_view weak_both =
    "3DES-CBC and HMAC-MD5-96 are legacy algorithms (RFC 8221: SHOULD NOT and MUST NOT); 3DES's "
    "64-bit block wears out after a few GiB under one key (Sweet32)";

const transform_facts& facts(transform t) noexcept { return transforms[static_cast<size_t>(t)]; }

template <typename T>
const T* find_named(const std::vector<T>& items, std::string_view name) noexcept {
    auto it = std::find_if(items.begin(), items.end(), [&](const T& x) { return x.name == name; });
    return it == items.end() ? nullptr : &*it;
}

// Names of items in `after` that are new, gone or different, matched by name.
template <typename T, typename Changed>
void diff_named(const std::vector<T>& before, const std::vector<T>& after,
                std::vector<std::string>& added, std::vector<std::string>& removed,
                std::vector<std::string>& changed, Changed is_changed) {
    for (const T& b : before) {
        if (find_named(after, b.name) == nullptr) {
            removed.push_back(b.name);
        }
    }
    for (const T& a : after) {
        const T* b = find_named(before, a.name);
        if (b == nullptr) {
            added.push_back(a.name);
        } else if (is_changed(*b, a)) {
            changed.push_back(a.name);
        }
    }
}

}  // namespace

std::string_view name(transform t) noexcept { return facts(t).name; }

std::optional<transform> parse_transform(std::string_view text) noexcept {
    for (const transform_facts& f : transforms) {
        if (f.name == text) {
            return f.t;
        }
    }
    return std::nullopt;
}

bool is_gcm(transform t) noexcept { return facts(t).salt != 0; }
bool counter_iv(transform t) noexcept { return is_gcm(t); }
size_t cipher_key_bytes(transform t) noexcept { return facts(t).cipher_key; }
size_t salt_bytes(transform t) noexcept { return facts(t).salt; }
size_t integrity_key_bytes(transform t) noexcept { return facts(t).integrity_key; }
size_t esp_overhead_max(transform t) noexcept { return facts(t).overhead; }

std::string_view weakness(transform t) noexcept {
    switch (t) {
        case transform::des3_cbc_md5_96:
            return weak_both;
        case transform::des3_cbc_sha1_96:
            return weak_3des;
        case transform::aes128_cbc_md5_96:
            return weak_md5;
        default:
            return {};
    }
}

namespace {

// IANA IDs (RFC 7296 section 3.3.2, RFC 8031) and the names strongSwan gives them.
constexpr uint16_t encr_3des = 3, encr_aes_cbc = 12, encr_aes_gcm16 = 20;
constexpr uint16_t integ_md5_96 = 1, integ_sha1_96 = 2, integ_sha256 = 12, integ_sha384 = 13,
                   integ_sha512 = 14;
constexpr uint16_t prf_sha256 = 5, prf_sha384 = 6, prf_sha512 = 7;
constexpr uint16_t modp2048 = 14, ecp256 = 19, ecp384 = 20, x25519 = 31;

std::string_view integ_name(uint16_t integ) {
    switch (integ) {
        case integ_md5_96:
            return "md5";
        case integ_sha1_96:
            return "sha1";
        case integ_sha256:
            return "sha256";
        case integ_sha384:
            return "sha384";
        case integ_sha512:
            return "sha512";
    }
    return "?";
}

std::string_view group_name(uint16_t g) {
    switch (g) {
        case modp2048:
            return "modp2048";
        case ecp256:
            return "ecp256";
        case ecp384:
            return "ecp384";
        case x25519:
            return "x25519";
    }
    return "?";
}

std::string encr_name(uint16_t encr, uint16_t bits) {
    if (encr == encr_3des) {
        return "3des";
    }
    return encr == encr_aes_gcm16 ? "aes" + std::to_string(bits) + "gcm16"
                                  : "aes" + std::to_string(bits);
}

}  // namespace

std::string to_string(const ike_proposal& p) {
    std::string out = encr_name(p.encr, p.encr_bits);
    if (p.integ != 0) {
        out += "-";
        out += integ_name(p.integ);
    }
    // The integrity algorithm implies its PRF (strongSwan's reading); name the PRF otherwise.
    bool implied = (p.integ == integ_sha256 && p.prf == prf_sha256) ||
                   (p.integ == integ_sha384 && p.prf == prf_sha384) ||
                   (p.integ == integ_sha512 && p.prf == prf_sha512);
    if (!implied) {
        out += p.prf == prf_sha256   ? "-prfsha256"
               : p.prf == prf_sha384 ? "-prfsha384"
                                     : "-prfsha512";
    }
    for (uint16_t g : p.groups) {
        out += "-";
        out += group_name(g);
    }
    return out;
}

std::string to_string(const ike_settings::esp_proposal& p) {
    std::string out = encr_name(p.encr, p.encr_bits);
    if (p.integ != 0) {
        out += "-";
        out += integ_name(p.integ);
    }
    return p.esn ? out + "-esn" : out;
}

std::vector<ike_proposal> default_ike_proposals() {
    // AEAD first, Curve25519 first; CBC + HMAC-SHA2 with MODP-2048 first for peers (older IOS
    // images, strongSwan's defaults) that prefer them. Every proposal takes every group, so a
    // peer's KE is accepted without an INVALID_KE_PAYLOAD round trip whenever it can be.
    return {
        {encr_aes_gcm16, 256, 0, prf_sha256, {x25519, ecp256, ecp384, modp2048}},
        {encr_aes_gcm16, 128, 0, prf_sha256, {x25519, ecp256, ecp384, modp2048}},
        {encr_aes_cbc, 256, integ_sha256, prf_sha256, {modp2048, ecp256, ecp384, x25519}},
        {encr_aes_cbc, 256, integ_sha512, prf_sha512, {modp2048, ecp256, ecp384, x25519}},
        {encr_aes_cbc, 128, integ_sha256, prf_sha256, {modp2048, ecp256, ecp384, x25519}},
    };
}

std::vector<ike_settings::esp_proposal> default_esp_proposals() {
    return {
        {encr_aes_gcm16, 256, 0, false},
        {encr_aes_gcm16, 128, 0, false},
        {encr_aes_cbc, 256, integ_sha256, false},
    };
}

size_t esp_overhead_max(const ike_settings::esp_proposal& p) noexcept {
    // As the transform table: SPI + sequence, IV, pad length + next header, padding, ICV.
    if (p.encr == encr_aes_gcm16) {
        return 8 + 8 + 2 + 3 + 16;
    }
    const size_t icv = p.integ == integ_sha1_96 || p.integ == integ_md5_96 ? 12 : 16;
    return p.encr == encr_3des ? 8 + 8 + 2 + 7 + icv : 8 + 16 + 2 + 15 + icv;
}

std::string_view weakness(const ike_settings::esp_proposal& p) noexcept {
    const bool des3 = p.encr == encr_3des;
    const bool md5 = p.integ == integ_md5_96;
    return des3 && md5 ? weak_both : des3 ? weak_3des : md5 ? weak_md5 : std::string_view{};
}

const port* topology::find_port(std::string_view name) const noexcept {
    return find_named(ports, name);
}
const tunnel* topology::find_tunnel(std::string_view name) const noexcept {
    return find_named(tunnels, name);
}
const ipsec_profile* topology::find_ipsec_profile(std::string_view name) const noexcept {
    return find_named(ipsec_profiles, name);
}

bool topology_diff::empty() const noexcept {
    return ports_added.empty() && ports_removed.empty() && ports_changed.empty() &&
           tunnels_added.empty() && tunnels_removed.empty() && tunnels_changed.empty() &&
           ipsec_profiles_added.empty() && ipsec_profiles_removed.empty() &&
           ipsec_profiles_changed.empty() && !hub_changed && !routes_changed &&
           !management_changed && !log_level_changed && !routing_changed;
}

bool topology_diff::needs_restart() const noexcept {
    return hub_changed || routing_changed || !ports_added.empty() || !ports_removed.empty() ||
           !ports_changed.empty();
}

topology_diff diff(const topology& before, const topology& after) {
    topology_diff d;
    auto differ = [](const auto& x, const auto& y) { return !(x == y); };
    diff_named(before.ports, after.ports, d.ports_added, d.ports_removed, d.ports_changed, differ);
    diff_named(before.ipsec_profiles, after.ipsec_profiles, d.ipsec_profiles_added,
               d.ipsec_profiles_removed, d.ipsec_profiles_changed, differ);
    diff_named(before.tunnels, after.tunnels, d.tunnels_added, d.tunnels_removed, d.tunnels_changed,
               [&](const tunnel& b, const tunnel& a) {
                   if (!(b == a)) {
                       return true;
                   }
                   // Same profile name, but the SAs or algorithms behind it may differ.
                   const ipsec_profile* pb = before.find_ipsec_profile(b.ipsec_profile);
                   const ipsec_profile* pa = after.find_ipsec_profile(a.ipsec_profile);
                   if (pb == nullptr || pa == nullptr) {
                       return pb != pa;
                   }
                   return !(*pb == *pa);
               });
    hub_settings level_aside = after.hub;
    level_aside.log_level = before.hub.log_level;
    d.hub_changed = !(before.hub == level_aside);
    d.log_level_changed = before.hub.log_level != after.hub.log_level;
    d.routes_changed = !(before.routes == after.routes);
    d.management_changed = !(before.mgmt == after.mgmt);
    d.routing_changed = !(before.routing == after.routing);
    d.fpm_changed = !(before.routing.fpm == after.routing.fpm);
    return d;
}

}  // namespace dmvpn::config
