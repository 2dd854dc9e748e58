// IKEv1 Phase 1 with RSA signatures (RFC 2409 section 5.1), both roles. The certificates, key
// and trust anchors are IKEv2's (auth.cpp loads them from the profile's `certificate`,
// `private-key` and `ca`; the peer's chain and identity are checked by the same code):
//   MM3 HDR, KE, Ni [, CR...]          ->   <- MM4 HDR, KE, Nr, CR...
//   MM5 HDR*, IDii, CERT..., SIG_I     ->   <- MM6 HDR*, IDir, CERT..., SIG_R
// SKEYID = prf(Ni_b | Nr_b, g^xy); HASH_I and HASH_R are Main Mode's, and SIG is the RSA
// signature of that hash with PKCS#1 v1.5 padding and no DigestInfo (as strongSwan and IOS
// compute it). Our CR payloads name our anchors by their subject DN (RFC 2408 section 3.10).
#include <fmt/format.h>

#include "control/ike/v1_sa.hpp"

namespace dmvpn::ike::v1 {

wire::result<std::shared_ptr<const ike::detail::profile_state>, std::string> load_signing(
    const config::ipsec_profile& p) {
    auto st = std::make_shared<ike::detail::profile_state>();
    st->name = p.name;
    st->settings = *p.ike;
    if (auto err = ike::detail::load_certificates(*st); err) {
        return wire::fail(*err);
    }
    if (!st->key->is_rsa()) {
        return wire::fail(fmt::format(
            "ipsec profile {}: ike: private-key {}: IKEv1 signs with RSA keys only (RFC 2409 "
            "section 5.1)",
            p.name, st->settings.private_key));
    }
    return std::shared_ptr<const ike::detail::profile_state>(std::move(st));
}

id_payload signing_id(const config::ike_settings& s, uint32_t local) {
    const ike::id_payload v2 = ike::detail::local_identity(s, local);
    id_payload id;
    id.type = v2.type;  // ID_IPV4_ADDR, ID_FQDN, ID_USER_FQDN: the same numbers in both
    id.data = v2.data;
    return id;
}

void add_cert_requests(const ike::detail::profile_state& p, std::vector<payload>& ps) {
    for (bytes& dn : p.anchors->subjects_der()) {
        ps.push_back(cr_payload{cert_encoding::x509_signature, std::move(dn)});
    }
}

std::optional<std::string> add_signature(const ike::detail::profile_state& p,
                                         ike::crypto::cspan hash, std::vector<payload>& ps) {
    auto sig = p.key->sign_pkcs1_raw(hash);
    if (!sig) {
        return sig.error();
    }
    for (const auto& c : p.chain) {
        ps.push_back(cert_payload{cert_encoding::x509_signature, c->der()});
    }
    ps.push_back(sig_payload{std::move(*sig)});
    return std::nullopt;
}

std::optional<std::string> signature_fails(const ike::detail::profile_state& p,
                                           const std::vector<payload>& ps, const id_payload& id,
                                           ike::crypto::cspan hash) {
    const auto* sig = find_payload<sig_payload>(ps);
    if (sig == nullptr) {
        return std::string("no SIG payload");
    }
    std::vector<const cert_payload*> certs;
    for (const auto& pl : ps) {
        if (const auto* c = std::get_if<cert_payload>(&pl)) {
            certs.push_back(c);
        }
    }
    auto leaf = ike::detail::peer_certificate(p, certs, id.type, id.data, id_text(id));
    if (!leaf) {
        return leaf.error();
    }
    if (!(*leaf)->verify_pkcs1_raw(sig->data, hash)) {
        return fmt::format("the signature of {} did not verify", (*leaf)->subject());
    }
    return std::nullopt;
}

}  // namespace dmvpn::ike::v1
