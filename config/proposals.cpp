// strongSwan's proposal syntax, shared by the YAML loader (`ike: proposals`, `esp-proposals`,
// `pfs`) and the spoke emulator's --ike-proposal / --esp-proposal.
#include "config/proposals.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "config/loader.hpp"

namespace dmvpn::config {

using detail::quote;

namespace {

// IANA IDs (RFC 7296 section 3.3.2, RFC 8031), as control/ike/message.hpp names them.
constexpr uint16_t encr_3des = 3, encr_aes_cbc = 12, encr_aes_gcm16 = 20;
constexpr uint16_t integ_md5_96 = 1, integ_sha1_96 = 2, integ_sha256 = 12, integ_sha384 = 13,
                   integ_sha512 = 14;
constexpr uint16_t prf_sha256 = 5, prf_sha384 = 6, prf_sha512 = 7;

struct named {
    std::string_view name;
    uint16_t id;
    uint16_t bits;
};
constexpr named ike_encrs[] = {{"aes128", encr_aes_cbc, 128},
                               {"aes256", encr_aes_cbc, 256},
                               {"aes128gcm16", encr_aes_gcm16, 128},
                               {"aes256gcm16", encr_aes_gcm16, 256}};
constexpr named integs[] = {
    {"sha256", integ_sha256, 0}, {"sha384", integ_sha384, 0}, {"sha512", integ_sha512, 0}};
constexpr named prfs[] = {
    {"prfsha256", prf_sha256, 0}, {"prfsha384", prf_sha384, 0}, {"prfsha512", prf_sha512, 0}};
constexpr named groups[] = {{"modp2048", 14, 0},
                            {"ecp256", 19, 0},
                            {"ecp384", 20, 0},
                            {"x25519", 31, 0},
                            {"curve25519", 31, 0}};
// ESP: encryption, key bits, integrity.
struct esp_named {
    std::string_view name;
    uint16_t encr;
    uint16_t bits;
    uint16_t integ;
};
constexpr esp_named esps[] = {{"aes128gcm16", encr_aes_gcm16, 128, 0},
                              {"aes256gcm16", encr_aes_gcm16, 256, 0},
                              {"aes128-sha1", encr_aes_cbc, 128, integ_sha1_96},
                              {"aes256-sha256", encr_aes_cbc, 256, integ_sha256},
                              {"aes128-sha256", encr_aes_cbc, 128, integ_sha256},
                              {"aes256-sha1", encr_aes_cbc, 256, integ_sha1_96},
                              // Legacy (IOS `esp-3des esp-md5-hmac`...): never in a default
                              // proposal, and the loader warns when one is configured.
                              {"3des-md5", encr_3des, 0, integ_md5_96},
                              {"3des-sha1", encr_3des, 0, integ_sha1_96},
                              {"aes128-md5", encr_aes_cbc, 128, integ_md5_96}};

template <typename T, size_t N>
const T* lookup(const T (&table)[N], std::string_view name) {
    for (const T& e : table) {
        if (e.name == name) {
            return &e;
        }
    }
    return nullptr;
}

template <typename T>
std::string names(const T& table) {
    std::string out;
    for (const auto& e : table) {
        out += out.empty() ? "" : ", ";
        out += e.name;
    }
    return out;
}

// strongSwan's proposal syntax: ENCR[-INTEG][-PRF]-GROUP[-GROUP...]; the integrity algorithm
// implies the PRF of the same hash unless a prfsha* token names another.
}  // namespace

wire::result<ike_proposal, std::string> parse_ike_proposal(std::string_view text) {
    ike_proposal p;
    std::vector<std::string_view> tokens;
    for (size_t start = 0;;) {
        size_t dash = text.find('-', start);
        tokens.push_back(text.substr(start, dash == std::string_view::npos ? dash : dash - start));
        if (dash == std::string_view::npos) {
            break;
        }
        start = dash + 1;
    }
    const named* encr = lookup(ike_encrs, tokens[0]);
    if (encr == nullptr) {
        return wire::fail(fmt::format("the encryption algorithm comes first: {} (got {})",
                                      names(ike_encrs), quote(tokens[0])));
    }
    p.encr = encr->id;
    p.encr_bits = encr->bits;
    for (size_t i = 1; i < tokens.size(); ++i) {
        std::string_view t = tokens[i];
        if (const named* x = lookup(integs, t)) {
            if (p.encr == encr_aes_gcm16) {
                return wire::fail(
                    fmt::format("{} authenticates itself: no integrity algorithm (got {}; "
                                "name the PRF, e.g. prfsha256)",
                                tokens[0], quote(t)));
            }
            if (p.integ != 0) {
                return wire::fail(
                    fmt::format("one integrity algorithm per proposal (got {} as well); "
                                "write another proposal for it",
                                quote(t)));
            }
            p.integ = x->id;
        } else if (const named* y = lookup(prfs, t)) {
            if (p.prf != 0) {
                return wire::fail(fmt::format("one PRF per proposal (got {} as well)", quote(t)));
            }
            p.prf = y->id;
        } else if (const named* g = lookup(groups, t)) {
            if (std::find(p.groups.begin(), p.groups.end(), g->id) != p.groups.end()) {
                return wire::fail(fmt::format("group {} is named twice", quote(t)));
            }
            p.groups.push_back(g->id);
        } else {
            return wire::fail(
                fmt::format("unknown or refused algorithm {} (accepted: encryption {}; "
                            "integrity {}; PRF {}; groups {})",
                            quote(t), names(ike_encrs), names(integs), names(prfs), names(groups)));
        }
    }
    if (p.encr == encr_aes_cbc && p.integ == 0) {
        return wire::fail(
            fmt::format("{} needs an integrity algorithm: {}", tokens[0], names(integs)));
    }
    if (p.prf == 0) {
        if (p.encr == encr_aes_gcm16) {
            return wire::fail(fmt::format("{} names its PRF: add {}", tokens[0], names(prfs)));
        }
        p.prf = p.integ == integ_sha256   ? prf_sha256
                : p.integ == integ_sha384 ? prf_sha384
                                          : prf_sha512;
    }
    if (p.groups.empty()) {
        return wire::fail(
            fmt::format("a proposal needs a Diffie-Hellman group: {}", names(groups)));
    }
    return p;
}

std::optional<ike_settings::esp_proposal> parse_esp_proposal(std::string_view text) {
    ike_settings::esp_proposal e;
    for (std::string_view suffix : {"-noesn", "-esn"}) {
        if (text.size() > suffix.size() && text.substr(text.size() - suffix.size()) == suffix) {
            e.esn = suffix == "-esn";
            text.remove_suffix(suffix.size());
            break;
        }
    }
    const esp_named* x = lookup(esps, text);
    if (x == nullptr) {
        return std::nullopt;
    }
    e.encr = x->encr;
    e.encr_bits = x->bits;
    e.integ = x->integ;
    return e;
}

std::optional<uint16_t> parse_dh_group(std::string_view name) {
    const named* g = lookup(groups, name);
    return g ? std::optional<uint16_t>(g->id) : std::nullopt;
}

std::string esp_proposal_names() { return names(esps); }

std::string dh_group_names() { return names(groups); }

}  // namespace dmvpn::config
