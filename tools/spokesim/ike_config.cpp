#include "tools/spokesim/ike_config.hpp"

#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "config/proposals.hpp"
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

}  // namespace

wire::result<std::vector<config::ike_proposal>, std::string> parse_ike_proposals(
    std::string_view list) {
    std::vector<config::ike_proposal> out;
    for (std::string_view one : split(list, ',')) {
        auto p = config::parse_ike_proposal(one);
        if (!p) {
            return wire::fail(fmt::format("'{}': {}", one, p.error()));
        }
        out.push_back(std::move(*p));
    }
    return out;
}

wire::result<esp_proposals, std::string> parse_esp_proposals(std::string_view list) {
    esp_proposals out;
    for (std::string_view text : split(list, ',')) {
        // The emulator's one addition to the YAML's syntax: a trailing DH group is the PFS
        // group (the YAML has `pfs:` for it).
        std::string_view esp = text;
        if (size_t dash = esp.rfind('-'); dash != std::string_view::npos) {
            if (auto g = config::parse_dh_group(esp.substr(dash + 1))) {
                if (out.pfs_group && *out.pfs_group != *g) {
                    return wire::fail(
                        fmt::format("'{}': PFS group '{}' differs from another proposal's", text,
                                    esp.substr(dash + 1)));
                }
                out.pfs_group = *g;
                esp = esp.substr(0, dash);
            }
        }
        auto p = config::parse_esp_proposal(esp);
        if (!p) {
            return wire::fail(
                fmt::format("'{}': expected one of {}, optionally with -esn and a PFS group ({})",
                            text, config::esp_proposal_names(), config::dh_group_names()));
        }
        out.proposals.push_back(*p);
    }
    return out;
}

wire::result<std::vector<config::ike_settings::isakmp_policy>, std::string> parse_isakmp_policies(
    std::string_view list) {
    // (name, encryption attribute, key bits); (name, hash attribute); (name, group)
    struct named {
        std::string_view name;
        uint16_t id;
        uint16_t bits;
    };
    static constexpr named encrs[] = {
        {"aes128", 7, 128}, {"aes192", 7, 192}, {"aes256", 7, 256}, {"3des", 5, 0}};
    static constexpr named hashes[] = {{"md5", 1, 0}, {"sha1", 2, 0}, {"sha256", 4, 0}};
    static constexpr named groups[] = {{"modp1024", 2, 0},
                                       {"modp1536", 5, 0},
                                       {"modp2048", 14, 0},
                                       {"ecp256", 19, 0},
                                       {"ecp384", 20, 0}};
    auto find = [](const auto& table, std::string_view name) -> const named* {
        for (const named& e : table) {
            if (e.name == name) {
                return &e;
            }
        }
        return nullptr;
    };
    std::vector<config::ike_settings::isakmp_policy> out;
    for (std::string_view one : split(list, ',')) {
        auto tokens = split(one, '-');
        const named* e = tokens.size() == 3 ? find(encrs, tokens[0]) : nullptr;
        const named* h = tokens.size() == 3 ? find(hashes, tokens[1]) : nullptr;
        const named* g = tokens.size() == 3 ? find(groups, tokens[2]) : nullptr;
        if (e == nullptr || h == nullptr || g == nullptr) {
            return wire::fail(fmt::format(
                "'{}': expected ENCR-HASH-GROUP (aes128|aes192|aes256|3des, sha1|sha256|md5, "
                "modp1024|modp1536|modp2048|ecp256|ecp384)",
                one));
        }
        config::ike_settings::isakmp_policy p;
        p.encryption = e->id;
        p.key_bits = e->bits;
        p.hash = h->id;
        p.group = g->id;
        out.push_back(p);
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
    if (o.ike_version == 1) {
        // ISAKMP: IOS's default policy (AES-128, SHA-1, group 14, pre-share); ESP needs CBC.
        base.version = 1;
        base.isakmp_policies = {config::ike_settings::isakmp_policy{}};
        if (!o.isakmp_policy.empty()) {
            auto pols = parse_isakmp_policies(o.isakmp_policy);
            if (!pols) {
                return wire::fail("--isakmp-policy " + pols.error());
            }
            base.isakmp_policies = std::move(*pols);
        }
        std::erase_if(base.esp_proposals, [](const auto& e) { return e.integ == 0; });
        if (base.esp_proposals.empty()) {
            base.esp_proposals = {{12, 128, 2, false}};  // aes128-sha1 (esp-aes esp-sha-hmac)
        }
    }
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
