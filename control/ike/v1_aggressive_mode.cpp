// Aggressive Mode with a pre-shared key, the responder (RFC 2409 section 5.4):
//   AM1 HDR, SA, KE, Ni, IDii       ->   <- AM2 HDR, SA, KE, Nr, IDir, HASH_R [, NAT-D, NAT-D]
//   AM3 HDR[*], HASH_I [, NAT-D, NAT-D] ->
// Only for profiles with `aggressive-mode: true` (the engine refuses it otherwise): AM2 carries
// HASH_R, a keyed hash any initiator can take away and search the pre-shared key with offline.
// The key is chosen at AM1 from the peer's identity or address, else the wildcard. AM3 is taken
// encrypted (as Cisco and strongSwan send it) or in clear (as the RFC draws it). State is made
// only once AM1 is answered and is bounded and timed out as Main Mode's half-open SAs.
#include <fmt/format.h>

#include "control/ike/v1_sa.hpp"

namespace dmvpn::ike::v1 {

void engine::impl::aggressive_mode(const datagram& d, const message& m, time_point now,
                                   outputs& out) {
    const tunnel_policy& pol = *policy(d.tunnel);
    if (m.hdr.spi_r == 0) {
        // AM1: a retransmission is answered from the cache.
        if (first_seen(d, m, p1_state::ag_init_exch, out)) {
            return;
        }
        const auto* sa_p = find_payload<sa_payload>(m.payloads);
        const auto* ke = find_payload<ke_payload>(m.payloads);
        const auto* ni = find_payload<nonce_payload>(m.payloads);
        const auto* idi = find_payload<id_payload>(m.payloads);
        if (m.hdr.encrypted() || sa_p == nullptr || ke == nullptr || ni == nullptr ||
            idi == nullptr) {
            ++cnt.invalid_syntax;
            notify_plain(d, m.hdr.spi_i, 0, notify_type::payload_malformed, now, out);
            return;
        }
        auto choice = first_choice(d, m, *sa_p, pol, now, out);
        if (!choice) {
            return;
        }
        bool refused = false;
        auto dh = dh_answer(choice->group, ke->data, refused);
        if (!dh) {
            if (!refused) {
                return;
            }
            ++cnt.phase1_failed;
            notify_plain(d, m.hdr.spi_i, 0, notify_type::invalid_key_information, now, out);
            return;
        }
        const std::string peer_id = id_text(*idi);
        const config::ike_psk* psk = find_psk(pol.ike, d.src, peer_id);
        if (psk == nullptr) {
            ++cnt.auth_failed;
            ++cnt.phase1_failed;
            notify_plain(d, m.hdr.spi_i, 0, notify_type::authentication_failed, now, out);
            return;
        }
        auto sa = responder_sa(d, m, *choice, pol, now);
        const std::span<const uint8_t> chain(d.payload.data() + header_size,
                                             d.payload.size() - header_size);
        const auto idi_b = raw_body(m.hdr.next, chain, payload_type::id);
        sa->idi_b.assign(idi_b.begin(), idi_b.end());
        sa->peer_id = peer_id;
        sa->psk = secret(psk->key);
        responder_keys(*sa, std::move(dh->kx), dh->gxy, ke->data, ni->data);

        auto [ours, hr] = responder_id(*sa, pol, *idi);  // a PSK: our address
        message r = first_answer(*sa, exchange::aggressive, *sa_p, *choice);
        r.payloads.push_back(ke_payload{sa->gxr});
        r.payloads.push_back(nonce_payload{sa->nr});
        r.payloads.push_back(ours);
        r.payloads.push_back(hash_payload{bytes(hr.data(), hr.data() + hr.size())});
        r.payloads.push_back(vendor_payload{dpd_vid});
        if (sa->natt) {
            r.payloads.push_back(vendor_payload{natt_vid});
            add_nat_d(*sa, d, r.payloads);
        }
        sa->state = p1_state::ag_init_exch;
        answer_first(std::move(sa), d, r, out);
        return;
    }

    // AM3: HASH_I (and NAT-D), encrypted or not.
    p1_sa* sa = phase1_sa(d, m);
    if (sa == nullptr) {
        return;
    }
    if (d.payload == sa->last_request) {
        ++cnt.duplicates_answered;  // AM3 again: nothing to answer
        return;
    }
    if (sa->state != p1_state::ag_init_exch) {
        ++cnt.dropped;
        return;
    }
    bytes iv = sa->iv;
    std::vector<payload> ps;
    if (m.hdr.encrypted()) {
        auto plain = open(*sa, m, iv);
        if (!plain) {
            return;
        }
        auto c = parse_payloads(m.hdr.next, *plain);
        if (c) {
            ps = std::move(c->payloads);
        }
    } else {
        ps = m.payloads;
    }
    const hash_payload* h = find_payload<hash_payload>(ps);
    secret want = crypto::hash_i(sa->hash, sa->keys.skeyid.view(), sa->gxi, sa->gxr, sa->cky_i,
                                 sa->cky_r, sa->sa_b, sa->idi_b);
    if (h == nullptr || !ike::crypto::equal(want.view(), h->data)) {
        ++cnt.auth_failed;
        ++cnt.phase1_failed;
        notify_plain(d, sa->cky_i, sa->cky_r, notify_type::invalid_hash_information, now, out);
        forget(sa->id, "HASH_I mismatch", false, out);
        return;
    }
    sa->iv = iv;  // the last Phase 1 block (hash(g^xi | g^xr) when AM3 came in clear)
    sa->peer_port = d.sport;
    sa->local_port = d.dport;
    if (sa->natt) {
        check_nat_d(*sa, d, ps);
    }
    sa->last_request = d.payload;
    sa->last_response.clear();
    initial_contact(*sa, ps, out);
    established(*sa, now, out);
}

}  // namespace dmvpn::ike::v1
