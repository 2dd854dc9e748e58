// IKE_AUTH (RFC 7296 sections 1.2, 2.15, 2.16): identities, pre-shared key AUTH, and the first
// CHILD_SA (child.cpp negotiates it). Both roles.
#include "control/ike/ike_sa.hpp"

namespace dmvpn::ike {

using namespace detail;

namespace {

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

}  // namespace

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
    const crypto::secret* psk = psk_for(*prof, sa.peer_identity, sa.peer);
    bool ok = false;
    if (psk != nullptr && auth->method == auth_method::shared_key_mic) {
        bytes octets = crypto::signed_octets(sa.init_request, sa.nr, sa.suite.prf,
                                             sa.keys.sk_pi.view(), id_body(*idi));
        crypto::secret want = crypto::psk_auth(sa.suite.prf, psk->view(), octets);
        ok = crypto::equal(want.view(), auth->data);
    }
    if (!ok) {
        // Section 2.21.2: the answer names the failure, and nothing of the SA is kept.
        ++c.auth_failed;
        ++c.ike_sas_failed;
        respond(sa, exchange::ike_auth, mid, {notify(notify_type::authentication_failed)}, out);
        destroy(sa, "authentication failed", out);
        return;
    }
    half_open -= half_open > 0 ? 1 : 0;
    c.half_open = half_open;

    // INITIAL_CONTACT: the peer restarted; what we held for it is stale.
    if (find_notify(in, notify_type::initial_contact) != nullptr) {
        std::vector<uint64_t> stale;
        for (const auto& [id, other] : sas) {
            if (id != sa.id && other->up && other->peer == sa.peer && other->tunnel == sa.tunnel &&
                other->peer_identity == sa.peer_identity) {
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
    crypto::secret mine = crypto::psk_auth(sa.suite.prf, psk->view(), octets);
    std::vector<payload> base;
    base.emplace_back(idr);
    base.emplace_back(
        auth_payload{auth_method::shared_key_mic, bytes(mine.data(), mine.data() + mine.size())});
    established(sa, now, out);

    std::vector<payload> reply = base;
    auto child = negotiate_child(sa, in, sa.ni, sa.nr, false, reply);
    if (!child) {
        // The IKE SA stands without a CHILD_SA (section 1.2); the reply says why.
        respond(sa, exchange::ike_auth, mid, reply, out);
        return;
    }
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
    const crypto::secret* psk = psk_for(*prof, ipv4_text(sa.peer), sa.peer);
    if (psk == nullptr) {
        ++c.ike_sas_failed;
        destroy(sa, "no pre-shared key for the peer", out);
        return;
    }
    id_payload_i idi{local_identity(prof->settings, sa.local)};
    bytes octets = crypto::signed_octets(sa.init_request, sa.nr, sa.suite.prf, sa.keys.sk_pi.view(),
                                         id_body(idi));
    crypto::secret mine = crypto::psk_auth(sa.suite.prf, psk->view(), octets);
    sa.first_child_spi = new_child_spi();
    by_child_spi[sa.first_child_spi] = 0;  // reserved until the CHILD_SA exists
    std::vector<payload> inner;
    inner.emplace_back(idi);
    inner.emplace_back(
        auth_payload{auth_method::shared_key_mic, bytes(mine.data(), mine.data() + mine.size())});
    inner.emplace_back(notify(notify_type::initial_contact));
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
    const crypto::secret* psk = psk_for(*prof, sa.peer_identity, sa.peer);
    bool ok = false;
    if (psk != nullptr && auth->method == auth_method::shared_key_mic) {
        bytes octets = crypto::signed_octets(sa.init_response, sa.ni, sa.suite.prf,
                                             sa.keys.sk_pr.view(), id_body(*idr));
        crypto::secret want = crypto::psk_auth(sa.suite.prf, psk->view(), octets);
        ok = crypto::equal(want.view(), auth->data);
    }
    if (!ok) {
        ++c.auth_failed;
        ++c.ike_sas_failed;
        destroy(sa, "peer's AUTH did not verify", out);
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
