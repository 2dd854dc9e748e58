// IKE_AUTH (RFC 7296 sections 1.2, 2.15, 2.16): identities, pre-shared key AUTH, and the first
// CHILD_SA (child.cpp negotiates it). Both roles.
#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <fstream>

#include "control/ike/ike_sa.hpp"

namespace dmvpn::ike {

using namespace detail;

namespace {

// The most CERT payloads (leaf and intermediates) we look at in one IKE_AUTH message.
constexpr size_t max_peer_certs = 8;

// A whole PEM file, held as a secret (it may be a private key) and wiped after use.
wire::result<crypto::secret, std::string> read_pem(const std::string& path) {
    std::ifstream f(path, std::ios::binary | std::ios::ate);
    if (!f) {
        return wire::fail(std::string("cannot be read"));
    }
    auto n = static_cast<std::streamoff>(f.tellg());
    if (n <= 0 || n > (1 << 20)) {
        return wire::fail(n <= 0 ? std::string("is empty") : std::string("is larger than 1 MiB"));
    }
    crypto::secret buf(static_cast<size_t>(n));
    f.seekg(0);
    if (!f.read(reinterpret_cast<char*>(buf.data()), n)) {
        return wire::fail(std::string("cannot be read"));
    }
    return buf;
}

// The kind of key an AUTH method stands for: RSA or ECDSA for the signature methods (RFC 7427's
// digital signature by the key that made it), else the pre-shared key.
show::auth_kind auth_kind_of(uint8_t method, bool rsa_key) {
    switch (method) {
        case auth_method::rsa_signature:
            return show::auth_kind::rsa;
        case auth_method::ecdsa_sha256_p256:
        case auth_method::ecdsa_sha384_p384:
        case auth_method::ecdsa_sha512_p521:
            return show::auth_kind::ecdsa;
        case auth_method::digital_signature:
            return rsa_key ? show::auth_kind::rsa : show::auth_kind::ecdsa;
        default:
            return show::auth_kind::psk;
    }
}

// Our AUTH (section 2.15; RFC 7427 when the peer announced SIGNATURE_HASH_ALGORITHMS); the SA
// records the kind of key it was signed with.
wire::result<auth_payload, std::string> sign_auth(ike_sa& sa, const profile_state& p,
                                                  const bytes& octets) {
    uint8_t method = sa.peer_signature_hashes ? auth_method::digital_signature : p.classic_method;
    auto sig = p.key->sign(method, octets);
    if (!sig) {
        return wire::fail(sig.error());
    }
    sa.auth_sign = auth_kind_of(method, p.key->is_rsa());
    return auth_payload{method, std::move(*sig)};
}

// The peer's certificates (leaf first), its chain to one of our anchors at the current wall
// time, its identity against the leaf, and its AUTH over its signed octets. The error says
// which failed. Verified, the SA records the kind of key the peer signed with.
std::optional<std::string> cert_fails(ike_sa& sa, const profile_state& p,
                                      const std::vector<payload>& in, const auth_payload& auth,
                                      const bytes& real_message, const bytes& our_nonce,
                                      const crypto::secret& sk_p, const id_payload& id) {
    std::vector<const cert_payload*> certs;
    for (const auto& pl : in) {
        if (const auto* c = std::get_if<cert_payload>(&pl)) {
            certs.push_back(c);
        }
    }
    auto leaf = peer_certificate(p, certs, id.type, id.data, identity_text(id));
    if (!leaf) {
        return leaf.error();
    }
    bytes octets =
        crypto::signed_octets(real_message, our_nonce, sa.suite.prf, sk_p.view(), id_body(id));
    auto ok = (*leaf)->verify(auth.method, auth.data, octets);
    if (!ok || !*ok) {
        return fmt::format("peer's AUTH did not verify{}", ok ? "" : ": " + ok.error());
    }
    sa.auth_verify = auth_kind_of(auth.method, (*leaf)->is_rsa());
    return std::nullopt;
}

// Our CERT payloads: the leaf, then the intermediates.
void add_certs(const profile_state& p, std::vector<payload>& ps) {
    for (const auto& c : p.chain) {
        ps.emplace_back(cert_payload{cert_encoding::x509_signature, c->der()});
    }
}

// The key for a peer: one written for its identity (or its address), else the wildcard.
const crypto::secret* psk_for(const profile_state& p, std::string_view identity, uint32_t addr) {
    std::string a = ipv4_text(addr);
    const crypto::secret* wildcard = nullptr;
    for (const auto& k : p.psks) {
        if (!k.peer.empty() && (k.peer == identity || k.peer == a)) {
            return &k.key;
        }
        if (k.peer.empty() && wildcard == nullptr) {
            wildcard = &k.key;
        }
    }
    return wildcard;
}

// The peer's AUTH (section 2.15): its signed octets are its IKE_SA_INIT message, our nonce and
// prf(SK_p, its ID), MACed with the key; compared in constant time.
bool psk_verifies(const ike_sa& sa, const crypto::secret* psk, const auth_payload& auth,
                  const bytes& real_message, const bytes& our_nonce, const crypto::secret& sk_p,
                  const id_payload& id) {
    if (psk == nullptr || auth.method != auth_method::shared_key_mic) {
        return false;
    }
    bytes octets =
        crypto::signed_octets(real_message, our_nonce, sa.suite.prf, sk_p.view(), id_body(id));
    crypto::secret want = crypto::psk_auth(sa.suite.prf, psk->view(), octets);
    return crypto::equal(want.view(), auth.data);
}

}  // namespace

namespace detail {

wire::result<std::unique_ptr<crypto::certificate>, std::string> peer_certificate(
    const profile_state& p, const std::vector<const cert_payload*>& in, uint8_t id_type,
    crypto::cspan id_data, std::string_view id_text) {
    std::vector<std::unique_ptr<crypto::certificate>> certs;
    for (const cert_payload* c : in) {
        if (c->encoding != cert_encoding::x509_signature || certs.size() == max_peer_certs) {
            continue;
        }
        auto cert = crypto::certificate::from_der(c->data);
        if (!cert) {
            return wire::fail(fmt::format("peer's certificate unreadable: {}", cert.error()));
        }
        certs.push_back(std::move(*cert));
    }
    if (certs.empty()) {
        return wire::fail(std::string("no certificate from the peer"));
    }
    std::vector<const crypto::certificate*> intermediates;
    for (size_t i = 1; i < certs.size(); ++i) {
        intermediates.push_back(certs[i].get());
    }
    auto chained = p.anchors->verify(*certs[0], intermediates, std::time(nullptr));
    if (!chained || !*chained) {
        return wire::fail(fmt::format("peer's certificate {} not trusted: {}", certs[0]->subject(),
                                      chained ? std::string("refused") : chained.error()));
    }
    if (!certs[0]->matches_identity(id_type, id_data)) {
        return wire::fail(fmt::format("peer's identity {} is not in its certificate {}", id_text,
                                      certs[0]->subject()));
    }
    return std::move(certs[0]);
}

certreq_payload certreq_of(const profile_state& p) {
    return certreq_payload{cert_encoding::x509_signature, p.anchors->certreq_data()};
}

std::optional<std::string> load_certificates(profile_state& p) {
    const auto& s = p.settings;
    // The crypto loaders' errors start with the file's name already.
    auto where = [&](std::string_view what, const std::string& file, std::string_view why) {
        if (why.starts_with(file + ": ")) {
            why.remove_prefix(file.size() + 2);
        }
        return fmt::format("ipsec profile {}: ike: {} {}: {}", p.name, what, file, why);
    };
    if (s.certificate.empty() || s.private_key.empty() || s.ca.empty()) {
        return fmt::format(
            "ipsec profile {}: ike: authentication certificate needs certificate, private-key "
            "and ca",
            p.name);
    }
    auto pem = read_pem(s.certificate);
    if (!pem) {
        return where("certificate", s.certificate, pem.error());
    }
    auto chain = crypto::certificate::load_pem(pem->view(), s.certificate);
    if (!chain || chain->empty()) {
        return where("certificate", s.certificate, chain ? "no certificate in it" : chain.error());
    }
    for (auto& c : *chain) {
        p.chain.emplace_back(std::move(c));
    }
    pem = read_pem(s.private_key);
    if (!pem) {
        return where("private-key", s.private_key, pem.error());
    }
    auto key = crypto::private_key::load_pem(pem->view(), s.private_key);
    if (!key) {
        return where("private-key", s.private_key, key.error());
    }
    p.key = std::move(*key);
    // The key must be the leaf's: a signature by it verifies with the certificate.
    const bytes probe{'d', 'm', 'v', 'p', 'n'};
    auto sig = p.key->sign(auth_method::digital_signature, probe);
    auto ok = sig ? p.chain.front()->verify(auth_method::digital_signature, *sig, probe)
                  : wire::result<bool, std::string>(wire::fail(sig.error()));
    if (!ok || !*ok) {
        return where("private-key", s.private_key,
                     fmt::format("is not the key of {}", p.chain.front()->subject()));
    }
    if (p.key->is_rsa()) {
        p.classic_method = auth_method::rsa_signature;
    } else {
        for (uint8_t m : {auth_method::ecdsa_sha256_p256, auth_method::ecdsa_sha384_p384,
                          auth_method::ecdsa_sha512_p521}) {
            if (p.key->sign(m, probe)) {
                p.classic_method = m;
                break;
            }
        }
    }
    auto anchors = std::make_shared<crypto::trust_store>();
    for (const auto& file : s.ca) {
        pem = read_pem(file);
        if (!pem) {
            return where("ca", file, pem.error());
        }
        auto cas = crypto::certificate::load_pem(pem->view(), file);
        if (!cas || cas->empty()) {
            return where("ca", file, cas ? "no certificate in it" : cas.error());
        }
        for (auto& c : *cas) {
            anchors->add_anchor(std::move(c));
        }
    }
    p.anchors = std::move(anchors);
    return std::nullopt;
}

}  // namespace detail

void engine::impl::established(ike_sa& sa, time_point now, outputs& out) {
    const profile_state* p = profile_of(sa);
    sa.state = sa_state::established;
    sa.established_at = now;
    sa.up = true;
    sa.last_inbound = now;
    uint32_t life = p != nullptr ? p->settings.ike_lifetime_s : 86400;
    sa.expire_at = now + seconds(life);
    // Rekey at 90%, less up to 5% so that two ends rarely start together.
    uint32_t jitter = life / 20 == 0 ? 0 : read32(random_bytes(4)) % (life / 20);
    sa.rekey_at = now + seconds(life - life / 10 - jitter);
    ++c.ike_sas_up;
    out.requests.emplace_back(peer_up{sa.id, sa.tunnel, sa.peer, sa.peer_identity});
    if (!sa.initiator) {
        abandon_initiations(sa, out);
    }
}

void engine::impl::responder_auth(ike_sa& sa, const std::vector<payload>& in, time_point now,
                                  outputs& out) {
    const profile_state* prof = profile_of(sa);
    const auto* idi = find_payload<id_payload_i>(in);
    const auto* auth = find_payload<auth_payload>(in);
    uint32_t mid = *sa.cached_mid;
    if (prof == nullptr || idi == nullptr || auth == nullptr) {
        ++c.invalid_syntax;
        respond(sa, exchange::ike_auth, mid, {notify(notify_type::invalid_syntax)}, out);
        destroy(sa, "IKE_AUTH without IDi or AUTH", out);
        return;
    }
    sa.peer_identity = identity_text(*idi);
    const crypto::secret* psk = nullptr;
    std::optional<std::string> failed;
    if (prof->certificates()) {
        failed = cert_fails(sa, *prof, in, *auth, sa.init_request, sa.nr, sa.keys.sk_pi, *idi);
    } else {
        psk = psk_for(*prof, sa.peer_identity, sa.peer);
        if (!psk_verifies(sa, psk, *auth, sa.init_request, sa.nr, sa.keys.sk_pi, *idi)) {
            failed = "authentication failed";
        }
    }
    if (failed) {
        // Section 2.21.2: the answer names the failure, and nothing of the SA is kept.
        ++c.auth_failed;
        ++c.ike_sas_failed;
        respond(sa, exchange::ike_auth, mid, {notify(notify_type::authentication_failed)}, out);
        destroy(sa, *failed, out);
        return;
    }
    half_open -= half_open > 0 ? 1 : 0;
    c.half_open = half_open;

    // INITIAL_CONTACT: the peer restarted; what we held for it is stale.
    if (find_notify(in, notify_type::initial_contact) != nullptr) {
        std::vector<uint64_t> stale;
        for (uint64_t id : peer_sas(sa.tunnel, sa.peer)) {
            auto other = sas.find(id);
            if (id != sa.id && other != sas.end() && other->second->up &&
                other->second->peer_identity == sa.peer_identity) {
                stale.push_back(id);
            }
        }
        for (uint64_t id : stale) {
            destroy(*find_sa(id), "initial contact from the peer", out);
        }
    }

    id_payload_r idr{local_identity(prof->settings, sa.local)};
    bytes octets = crypto::signed_octets(sa.init_response, sa.ni, sa.suite.prf,
                                         sa.keys.sk_pr.view(), id_body(idr));
    std::vector<payload> base;
    base.emplace_back(idr);
    if (prof->certificates()) {
        auto signed_auth = sign_auth(sa, *prof, octets);
        if (!signed_auth) {
            ++c.ike_sas_failed;
            respond(sa, exchange::ike_auth, mid, {notify(notify_type::authentication_failed)}, out);
            destroy(sa, "signing our AUTH failed: " + signed_auth.error(), out);
            return;
        }
        add_certs(*prof, base);
        base.emplace_back(std::move(*signed_auth));
    } else {
        crypto::secret mine = crypto::psk_auth(sa.suite.prf, psk->view(), octets);
        base.emplace_back(auth_payload{auth_method::shared_key_mic,
                                       bytes(mine.data(), mine.data() + mine.size())});
    }
    established(sa, now, out);

    std::vector<payload> reply = base;
    auto child = negotiate_child(sa, in, sa.ni, sa.nr, false, reply);
    if (!child) {
        // The IKE SA stands without a CHILD_SA (section 1.2); the reply says why.
        respond(sa, exchange::ike_auth, mid, reply, out);
        return;
    }
    // The initiator installs the pair when our response arrives: until its traffic shows up on
    // the pair, what we send on it may find no SA there (events.hpp, outbound_waits).
    child->outbound_waits = true;
    uint64_t cid = add_child(sa, std::move(*child), now);
    out.requests.emplace_back(install_child{children.at(cid).sa});
    // Held until the hub has the inbound SA in the workers (installed()).
    auto packets = protect_message(sa, make_header(sa, exchange::ike_auth, true, mid), reply);
    sa.cached_response = packets ? std::move(*packets) : std::vector<bytes>{};
    sa.held = true;
    sa.held_child = cid;
    sa.held_base = std::move(base);
    sa.held_exchange = exchange::ike_auth;
}

void engine::impl::send_auth(ike_sa& sa, time_point now, outputs& out) {
    const profile_state* prof = profile_of(sa);
    if (prof == nullptr) {
        destroy(sa, "profile gone", out);
        return;
    }
    id_payload_i idi{local_identity(prof->settings, sa.local)};
    bytes octets = crypto::signed_octets(sa.init_request, sa.nr, sa.suite.prf, sa.keys.sk_pi.view(),
                                         id_body(idi));
    std::vector<payload> inner;
    inner.emplace_back(idi);
    if (prof->certificates()) {
        auto signed_auth = sign_auth(sa, *prof, octets);
        if (!signed_auth) {
            ++c.ike_sas_failed;
            destroy(sa, "signing our AUTH failed: " + signed_auth.error(), out);
            return;
        }
        add_certs(*prof, inner);
        inner.emplace_back(certreq_of(*prof));
        inner.emplace_back(std::move(*signed_auth));
    } else {
        const crypto::secret* psk = psk_for(*prof, ipv4_text(sa.peer), sa.peer);
        if (psk == nullptr) {
            ++c.ike_sas_failed;
            destroy(sa, "no pre-shared key for the peer", out);
            return;
        }
        crypto::secret mine = crypto::psk_auth(sa.suite.prf, psk->view(), octets);
        inner.emplace_back(auth_payload{auth_method::shared_key_mic,
                                        bytes(mine.data(), mine.data() + mine.size())});
    }
    sa.first_child_spi = new_child_spi();
    by_child_spi[sa.first_child_spi] = 0;  // reserved until the CHILD_SA exists
    // INITIAL_CONTACT asserts this is the only IKE SA with the peer (section 3.16): not when the
    // peer is keying us at the same time (two hubs initiating to each other), whose SA the
    // peer's answer to it would otherwise tear down.
    std::span<const uint64_t> peers = peer_sas(sa.tunnel, sa.peer);
    bool alone = std::none_of(peers.begin(), peers.end(), [&](uint64_t id) { return id != sa.id; });
    if (alone) {
        inner.emplace_back(notify(notify_type::initial_contact));
    }
    inner.emplace_back(notify(notify_type::use_transport_mode));
    inner.emplace_back(esp_offer(prof->settings, sa.first_child_spi, std::nullopt));
    inner.emplace_back(ts_payload_i{host_ts(sa.local)});
    inner.emplace_back(ts_payload_r{host_ts(sa.peer)});
    sa.state = sa_state::auth_sent;
    outstanding o;
    o.kind = req_kind::auth;
    send_request(sa, std::move(o), exchange::ike_auth, inner, now, out);
}

void engine::impl::initiator_auth_response(ike_sa& sa, const std::vector<payload>& in,
                                           time_point now, outputs& out) {
    const profile_state* prof = profile_of(sa);
    by_child_spi.erase(sa.first_child_spi);
    const auto* idr = find_payload<id_payload_r>(in);
    const auto* auth = find_payload<auth_payload>(in);
    if (prof == nullptr || idr == nullptr || auth == nullptr) {
        uint16_t err = error_notify(in);
        if (err == notify_type::authentication_failed) {
            ++c.auth_failed;
        }
        ++c.ike_sas_failed;
        destroy(sa, err != 0 ? notify_name(err) : "IKE_AUTH response without IDr or AUTH", out);
        return;
    }
    sa.peer_identity = identity_text(*idr);
    std::optional<std::string> failed;
    if (prof->certificates()) {
        failed = cert_fails(sa, *prof, in, *auth, sa.init_response, sa.ni, sa.keys.sk_pr, *idr);
    } else if (!psk_verifies(sa, psk_for(*prof, sa.peer_identity, sa.peer), *auth, sa.init_response,
                             sa.ni, sa.keys.sk_pr, *idr)) {
        failed = "peer's AUTH did not verify";
    }
    if (failed) {
        ++c.auth_failed;
        ++c.ike_sas_failed;
        destroy(sa, *failed, out);
        return;
    }
    established(sa, now, out);
    auto child = accept_child(sa, in, sa.first_child_spi, sa.ni, sa.nr, nullptr);
    if (!child) {
        return;  // the IKE SA stands alone; the response said why (or chose nothing valid)
    }
    uint64_t cid = add_child(sa, std::move(*child), now);
    out.requests.emplace_back(install_child{children.at(cid).sa});
}

}  // namespace dmvpn::ike
