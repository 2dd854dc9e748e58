#include "tools/spokesim/ike_config.hpp"

#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "control/ike/message.hpp"

namespace dmvpn::spokesim {

namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    size_t at = 0;
    while (true) {
        size_t next = s.find(sep, at);
        out.push_back(s.substr(at, next == std::string_view::npos ? next : next - at));
        if (next == std::string_view::npos) {
            return out;
        }
        at = next + 1;
    }
}

struct cipher {
    uint16_t encr = 0;
    uint16_t bits = 0;
};

const std::map<std::string_view, cipher>& ciphers() {
    static const std::map<std::string_view, cipher> m = {
        {"aes128", {ike::encr_id::aes_cbc, 128}},
        {"aes256", {ike::encr_id::aes_cbc, 256}},
        {"aes128gcm16", {ike::encr_id::aes_gcm_16, 128}},
        {"aes256gcm16", {ike::encr_id::aes_gcm_16, 256}},
        {"aes128gcm", {ike::encr_id::aes_gcm_16, 128}},
        {"aes256gcm", {ike::encr_id::aes_gcm_16, 256}},
    };
    return m;
}

const std::map<std::string_view, uint16_t>& groups() {
    static const std::map<std::string_view, uint16_t> m = {
        {"modp2048", ike::dh_id::modp2048},     {"ecp256", ike::dh_id::ecp256},
        {"ecp384", ike::dh_id::ecp384},         {"x25519", ike::dh_id::curve25519},
        {"curve25519", ike::dh_id::curve25519},
    };
    return m;
}

// IKE SA integrity, and the PRF the same hash gives when no prf token is written.
struct hash {
    uint16_t integ = 0;
    uint16_t prf = 0;
};
const std::map<std::string_view, hash>& hashes() {
    static const std::map<std::string_view, hash> m = {
        {"sha256", {ike::integ_id::hmac_sha2_256_128, ike::prf_id::hmac_sha2_256}},
        {"sha384", {ike::integ_id::hmac_sha2_384_192, ike::prf_id::hmac_sha2_384}},
        {"sha512", {ike::integ_id::hmac_sha2_512_256, ike::prf_id::hmac_sha2_512}},
    };
    return m;
}

const std::map<std::string_view, uint16_t>& prfs() {
    static const std::map<std::string_view, uint16_t> m = {
        {"prfsha256", ike::prf_id::hmac_sha2_256},
        {"prfsha384", ike::prf_id::hmac_sha2_384},
        {"prfsha512", ike::prf_id::hmac_sha2_512},
    };
    return m;
}

// ESP integrity: what the dataplane's SAs implement.
const std::map<std::string_view, uint16_t>& esp_integs() {
    static const std::map<std::string_view, uint16_t> m = {
        {"sha1", ike::integ_id::hmac_sha1_96},
        {"sha256", ike::integ_id::hmac_sha2_256_128},
    };
    return m;
}

// One cipher, and an integrity algorithm exactly when it is not AES-GCM.
std::optional<std::string> cipher_and_integrity(std::string_view text, uint16_t encr, bool integ,
                                                std::string_view cbc_needs) {
    if (encr == 0) {
        return fmt::format("'{}': no cipher", text);
    }
    bool gcm = encr == ike::encr_id::aes_gcm_16;
    if (gcm && integ) {
        return fmt::format("'{}': AES-GCM takes no integrity algorithm", text);
    }
    if (!gcm && !integ) {
        return fmt::format("'{}': AES-CBC needs {}", text, cbc_needs);
    }
    return std::nullopt;
}

wire::result<config::ike_proposal, std::string> parse_ike_proposal(std::string_view text) {
    config::ike_proposal p;
    std::optional<uint16_t> prf;
    std::optional<uint16_t> hash_prf;
    for (std::string_view tok : split(text, '-')) {
        if (auto c = ciphers().find(tok); c != ciphers().end()) {
            if (p.encr != 0) {
                return wire::fail(fmt::format("'{}': a second cipher '{}'", text, tok));
            }
            p.encr = c->second.encr;
            p.encr_bits = c->second.bits;
        } else if (auto h = hashes().find(tok); h != hashes().end()) {
            if (p.integ != 0) {
                return wire::fail(fmt::format("'{}': a second integrity '{}'", text, tok));
            }
            p.integ = h->second.integ;
            hash_prf = h->second.prf;
        } else if (auto f = prfs().find(tok); f != prfs().end()) {
            if (prf) {
                return wire::fail(fmt::format("'{}': a second PRF '{}'", text, tok));
            }
            prf = f->second;
        } else if (auto g = groups().find(tok); g != groups().end()) {
            p.groups.push_back(g->second);
        } else {
            return wire::fail(fmt::format(
                "'{}': unknown '{}' (ciphers aes128 aes256 aes128gcm16 aes256gcm16; integrity "
                "sha256 sha384 sha512; PRF prfsha256 prfsha384 prfsha512; groups modp2048 "
                "ecp256 ecp384 x25519)",
                text, tok));
        }
    }
    if (auto e = cipher_and_integrity(text, p.encr, p.integ != 0, "an integrity algorithm")) {
        return wire::fail(*e);
    }
    if (!prf && !hash_prf) {
        return wire::fail(fmt::format("'{}': no PRF (AES-GCM needs prfsha256/384/512)", text));
    }
    p.prf = prf ? *prf : *hash_prf;
    if (p.groups.empty()) {
        return wire::fail(fmt::format("'{}': no Diffie-Hellman group", text));
    }
    return p;
}

}  // namespace

wire::result<std::vector<config::ike_proposal>, std::string> parse_ike_proposals(
    std::string_view list) {
    std::vector<config::ike_proposal> out;
    for (std::string_view one : split(list, ',')) {
        auto p = parse_ike_proposal(one);
        if (!p) {
            return wire::fail(p.error());
        }
        out.push_back(std::move(*p));
    }
    return out;
}

wire::result<esp_proposals, std::string> parse_esp_proposals(std::string_view list) {
    esp_proposals out;
    for (std::string_view text : split(list, ',')) {
        config::ike_settings::esp_proposal p;
        p.encr = 0;
        p.encr_bits = 0;
        bool integ = false;
        for (std::string_view tok : split(text, '-')) {
            if (auto c = ciphers().find(tok); c != ciphers().end() && p.encr == 0) {
                p.encr = c->second.encr;
                p.encr_bits = c->second.bits;
            } else if (auto h = esp_integs().find(tok); h != esp_integs().end() && !integ) {
                p.integ = h->second;
                integ = true;
            } else if (tok == "esn" && !p.esn) {
                p.esn = true;
            } else if (auto g = groups().find(tok); g != groups().end()) {
                if (out.pfs_group && *out.pfs_group != g->second) {
                    return wire::fail(
                        fmt::format("'{}': PFS group '{}' differs from another "
                                    "proposal's",
                                    text, tok));
                }
                out.pfs_group = g->second;
            } else {
                return wire::fail(fmt::format(
                    "'{}': unknown or repeated '{}' (ciphers aes128 aes256 aes128gcm16 "
                    "aes256gcm16; integrity sha1 sha256; esn; a PFS group modp2048 ecp256 ecp384 "
                    "x25519)",
                    text, tok));
            }
        }
        if (auto e = cipher_and_integrity(text, p.encr, integ, "sha1 or sha256")) {
            return wire::fail(*e);
        }
        out.proposals.push_back(p);
    }
    return out;
}

wire::result<ike_plan, std::string> plan_ike(const options& o, const topology& t) {
    auto ike_props = parse_ike_proposals(o.ike_proposal);
    if (!ike_props) {
        return wire::fail("--ike-proposal " + ike_props.error());
    }
    auto esp_props = parse_esp_proposals(o.esp_proposal);
    if (!esp_props) {
        return wire::fail("--esp-proposal " + esp_props.error());
    }
    config::ike_settings base;
    base.proposals = std::move(*ike_props);
    base.esp_proposals = std::move(esp_props->proposals);
    base.pfs_group = esp_props->pfs_group;
    base.local_id = o.ike_id;
    base.initiate = true;
    config::ipsec_profile profile;
    profile.name = "spokesim";
    profile.anti_replay = true;  // negotiated SAs: the counters start with the SA

    ike_plan plan;
    if (o.ike == ike_mode::psk) {
        base.auth = config::ike_auth::psk;
        base.psks.push_back({"", std::vector<uint8_t>(o.ike_secret.begin(), o.ike_secret.end())});
        profile.ike = base;
        plan.profiles.push_back(std::move(profile));
        plan.profile_of.assign(t.size(), 0);
        return plan;
    }
    if (o.ike != ike_mode::certificate) {
        return wire::fail(std::string("--ike is off"));
    }
    namespace fs = std::filesystem;
    fs::path dir(o.ike_cert_dir);
    std::error_code ec;
    auto need = [&](const fs::path& p) -> std::optional<std::string> {
        if (!fs::is_regular_file(p, ec)) {
            return fmt::format("--ike cert:{}: {} is missing", o.ike_cert_dir, p.string());
        }
        return std::nullopt;
    };
    if (auto e = need(dir / "ca.pem")) {
        return wire::fail(*e);
    }
    base.auth = config::ike_auth::certificate;
    base.ca = {(dir / "ca.pem").string()};
    std::optional<uint32_t> shared;  // the shared certificate's profile, once made
    plan.profile_of.resize(t.size());
    for (uint32_t i = 0; i < t.size(); ++i) {
        uint32_t index = t.spoke(i).index;
        fs::path cert = dir / fmt::format("spoke-{}.pem", index);
        fs::path key = dir / fmt::format("spoke-{}.key", index);
        if (fs::is_regular_file(cert, ec)) {
            if (auto e = need(key)) {
                return wire::fail(*e);
            }
            config::ipsec_profile own = profile;
            own.name = fmt::format("spokesim-{}", index);
            own.ike = base;
            own.ike->certificate = cert.string();
            own.ike->private_key = key.string();
            own.ike->local_id.clear();  // its NBMA address, which the certificate names
            plan.profile_of[i] = static_cast<uint32_t>(plan.profiles.size());
            plan.profiles.push_back(std::move(own));
            continue;
        }
        if (!shared) {
            if (auto e = need(dir / "spoke.pem")) {
                return wire::fail(fmt::format("{} (and so is {})", *e, cert.string()));
            }
            if (auto e = need(dir / "spoke.key")) {
                return wire::fail(*e);
            }
            if (o.ike_id.empty()) {
                return wire::fail(fmt::format(
                    "--ike cert:{}: the shared spoke.pem needs --ike-id (an identity it "
                    "certifies, e.g. its DNS name)",
                    o.ike_cert_dir));
            }
            config::ipsec_profile common = profile;
            common.ike = base;
            common.ike->certificate = (dir / "spoke.pem").string();
            common.ike->private_key = (dir / "spoke.key").string();
            shared = static_cast<uint32_t>(plan.profiles.size());
            plan.profiles.push_back(std::move(common));
        }
        plan.profile_of[i] = *shared;
    }
    return plan;
}

}  // namespace dmvpn::spokesim
