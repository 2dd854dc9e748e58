// IKE_SA_INIT (RFC 7296 section 1.2): proposals, Diffie-Hellman, nonces, COOKIE (2.6),
// INVALID_KE_PAYLOAD (1.2), NAT detection (2.23), fragmentation and signature-hash support
// (RFC 7383, RFC 7427). Both roles.
#include "control/ike/cookies.hpp"
#include "control/ike/ike_sa.hpp"

namespace dmvpn::ike {

using namespace detail;

namespace {

// An unprotected answer to an IKE_SA_INIT request that creates no state (COOKIE,
// INVALID_KE_PAYLOAD, NO_PROPOSAL_CHOSEN, INVALID_SYNTAX).
void stateless_answer(const datagram& d, const header& req, std::vector<payload> payloads,
                      outputs& out, engine_counters& c) {
    message r;
    r.hdr = req;
    r.hdr.spi_r = 0;
    r.hdr.flags = header_flag::response;
    r.payloads = std::move(payloads);
    datagram o;
    o.src = d.dst;
    o.dst = d.src;
    o.sport = d.dport;
    o.dport = d.sport;
    o.tunnel = d.tunnel;
    o.payload = serialize(r);
    out.send.push_back(std::move(o));
    ++c.tx;
}

struct natd_result {
    bool seen = false;
    bool peer_natted = false;   // no SOURCE_IP hash matched the address it came from
    bool local_natted = false;  // the DESTINATION_IP hash does not name our address
};

natd_result check_natd(const std::vector<payload>& ps, uint64_t spi_i, uint64_t spi_r,
                       const datagram& d) {
    natd_result r;
    bool src_match = false, src_seen = false;
    bytes want_src = nat_hash(spi_i, spi_r, d.src, d.sport);
    bytes want_dst = nat_hash(spi_i, spi_r, d.dst, d.dport);
    for (const auto& p : ps) {
        const auto* n = std::get_if<notify_payload>(&p);
        if (n == nullptr) {
            continue;
        }
        if (n->type == notify_type::nat_detection_source_ip) {
            src_seen = true;
            src_match = src_match || crypto::equal(n->data, want_src);
        } else if (n->type == notify_type::nat_detection_destination_ip) {
            r.seen = true;
            r.local_natted = !crypto::equal(n->data, want_dst);
        }
    }
    r.seen = r.seen || src_seen;
    r.peer_natted = src_seen && !src_match;
    return r;
}

void add_natd(std::vector<payload>& ps, uint64_t spi_i, uint64_t spi_r, uint32_t local,
              uint16_t lport, uint32_t peer, uint16_t pport) {
    ps.emplace_back(
        notify(notify_type::nat_detection_source_ip, nat_hash(spi_i, spi_r, local, lport)));
    ps.emplace_back(
        notify(notify_type::nat_detection_destination_ip, nat_hash(spi_i, spi_r, peer, pport)));
}

notify_payload signature_hashes() {
    bytes data;
    for (uint16_t h : crypto::signature_hash_algorithms()) {
        data.push_back(uint8_t(h >> 8));
        data.push_back(uint8_t(h));
    }
    return notify(notify_type::signature_hash_algorithms, std::move(data));
}

}  // namespace

void engine::impl::responder_sa_init(const datagram& d, const message& m, time_point now,
                                     outputs& out) {
    const header& h = m.hdr;
    // A retransmission of a request we answered: the same answer (section 2.1).
    if (auto it = by_init.find({d.src, d.sport, h.spi_i}); it != by_init.end()) {
        ike_sa* sa = find_sa(it->second);
        if (sa != nullptr && !sa->retired && d.payload == sa->init_request) {
            ++c.duplicates_answered;
            send_packets(*sa, {sa->init_response}, out);
        } else {
            ++c.dropped;
        }
        return;
    }
    auto tb = tunnels.find(d.tunnel);
    const profile_state* prof = profile_for_tunnel(d.tunnel);
    if (prof == nullptr || tb == tunnels.end()) {
        ++c.dropped;  // no IKE on this tunnel
        return;
    }
    const auto& s = prof->settings;
    if (half_open >= s.max_half_open) {
        ++c.dropped;
        return;
    }
    const auto* sa_p = find_payload<sa_payload>(m.payloads);
    const auto* ke = find_payload<ke_payload>(m.payloads);
    const auto* nonce = find_payload<nonce_payload>(m.payloads);
    if (sa_p == nullptr || ke == nullptr || nonce == nullptr || nonce->data.size() < 16 ||
        nonce->data.size() > 256) {
        ++c.invalid_syntax;
        stateless_answer(d, h, {notify(notify_type::invalid_syntax)}, out, c);
        return;
    }
    // COOKIE (section 2.6): above the threshold, state only for initiators that prove they
    // receive at their address. The COOKIE notify comes first.
    if (half_open >= s.cookie_threshold) {
        const notify_payload* ck =
            m.payloads.empty() ? nullptr : std::get_if<notify_payload>(&m.payloads[0]);
        if (!cookie_started) {
            cookie_secret = crypto::secret(random_bytes(32));
            cookie_version = 1;
            cookie_rotated = now;
            cookie_started = true;
        }
        if (ck == nullptr || ck->type != notify_type::cookie ||
            !check_cookie(cookie_secret, cookie_previous, cookie_version, ck->data, nonce->data,
                          d.src, h.spi_i)) {
            ++c.cookies_sent;
            stateless_answer(
                d, h,
                {notify(notify_type::cookie,
                        make_cookie(cookie_secret, cookie_version, nonce->data, d.src, h.spi_i))},
                out, c);
            return;
        }
    }
    auto sel = select_ike(s, *sa_p, ke->group, {});
    if (sel.status == select_status::no_proposal) {
        ++c.no_proposal;
        stateless_answer(d, h, {notify(notify_type::no_proposal_chosen)}, out, c);
        return;
    }
    if (sel.status == select_status::invalid_ke) {
        ++c.invalid_ke;
        stateless_answer(d, h,
                         {notify(notify_type::invalid_ke_payload,
                                 bytes{uint8_t(sel.want_group >> 8), uint8_t(sel.want_group)})},
                         out, c);
        return;
    }
    auto dh = crypto::key_exchange::generate(sel.suite.dh);
    if (!dh) {
        ++c.dropped;
        return;
    }
    auto gir = (*dh)->shared_secret(ke->data);
    if (!gir) {
        ++c.invalid_syntax;  // a public value off the curve or out of range (RFC 6989)
        stateless_answer(d, h, {notify(notify_type::invalid_syntax)}, out, c);
        return;
    }

    ike_sa& sa = new_sa(false, d.tunnel, d.src, tb->second.profile, now);
    sa.state = sa_state::half_open;
    ++half_open;
    c.half_open = half_open;
    sa.local = d.dst;
    sa.local_port = d.dport;
    sa.peer_port = d.sport;
    sa.spi_i = h.spi_i;
    sa.suite = sel.suite;
    sa.ni = nonce->data;
    sa.nr = random_bytes(nonce_size);
    sa.init_request = d.payload;
    sa.init_key = std::tuple{d.src, d.sport, h.spi_i};
    by_init[*sa.init_key] = sa.id;
    natd_result natd = check_natd(m.payloads, h.spi_i, 0, d);
    sa.nat_peer = natd.peer_natted;
    sa.nat_local = natd.local_natted;
    sa.peer_fragmentation =
        s.fragmentation && find_notify(m.payloads, notify_type::ikev2_fragmentation_supported);
    sa.peer_signature_hashes = find_notify(m.payloads, notify_type::signature_hash_algorithms);
    sa.keys = crypto::derive_ike_keys(sa.suite, sa.ni, sa.nr, gir->view(), sa.spi_i, sa.spi_r);
    log_ike_keys(sa);

    message r;
    r.hdr = make_header(sa, exchange::ike_sa_init, true, 0);
    r.payloads.emplace_back(sa_payload{{sel.chosen}});
    r.payloads.emplace_back(ke_payload{sel.suite.dh, (*dh)->public_value()});
    r.payloads.emplace_back(nonce_payload{sa.nr});
    if (prof->certificates()) {
        r.payloads.emplace_back(certreq_of(*prof));  // section 1.2: the CAs we trust
    }
    if (natd.seen) {
        add_natd(r.payloads, sa.spi_i, sa.spi_r, sa.local, sa.local_port, sa.peer, sa.peer_port);
    }
    if (sa.peer_fragmentation) {
        r.payloads.emplace_back(notify(notify_type::ikev2_fragmentation_supported));
    }
    if (sa.peer_signature_hashes) {
        r.payloads.emplace_back(signature_hashes());
    }
    sa.init_response = serialize(r);
    sa.recv_mid = 1;
    sa.cached_mid = 0;
    sa.cached_request = d.payload;
    sa.cached_response = {sa.init_response};
    send_packets(sa, sa.cached_response, out);
}

void engine::impl::initiator_start(uint32_t tunnel, uint32_t peer, time_point now, outputs& out) {
    auto tb = tunnels.find(tunnel);
    const profile_state* prof = profile_for_tunnel(tunnel);
    if (prof == nullptr || tb == tunnels.end() || prof->settings.proposals.empty()) {
        ++c.dropped;
        return;
    }
    if (!peer_sas(tunnel, peer).empty()) {
        return;  // one IKE SA per peer: already there or under way
    }
    ike_sa& sa = new_sa(true, tunnel, peer, tb->second.profile, now);
    sa.local = tb->second.local;
    sa.ni = random_bytes(nonce_size);
    sa.suite.dh = prof->settings.proposals.front().groups.front();
    send_sa_init(sa, now, out);
}

void engine::impl::send_sa_init(ike_sa& sa, time_point now, outputs& out) {
    const profile_state* prof = profile_of(sa);
    auto dh = crypto::key_exchange::generate(sa.suite.dh);
    if (prof == nullptr || !dh) {
        destroy(sa, "no key exchange", out);
        return;
    }
    sa.dh = std::move(*dh);
    message m;
    m.hdr = make_header(sa, exchange::ike_sa_init, false, 0);
    if (!sa.cookie.empty()) {
        m.payloads.emplace_back(notify(notify_type::cookie, sa.cookie));
    }
    m.payloads.emplace_back(ike_offer(prof->settings, {}));
    m.payloads.emplace_back(ke_payload{sa.suite.dh, sa.dh->public_value()});
    m.payloads.emplace_back(nonce_payload{sa.ni});
    add_natd(m.payloads, sa.spi_i, 0, sa.local, sa.local_port, sa.peer, sa.peer_port);
    if (prof->settings.fragmentation) {
        m.payloads.emplace_back(notify(notify_type::ikev2_fragmentation_supported));
    }
    m.payloads.emplace_back(signature_hashes());
    sa.init_request = serialize(m);
    outstanding o;
    o.kind = req_kind::sa_init;
    o.mid = 0;
    o.packets = {sa.init_request};
    o.next = now + retransmit_base;
    o.max_tries = retransmit_tries;
    sa.next_mid = 1;
    send_packets(sa, o.packets, out);
    sa.out = std::move(o);
}

void engine::impl::initiator_sa_init_response(ike_sa& sa, const datagram& d, const message& m,
                                              time_point now, outputs& out) {
    const profile_state* prof = profile_of(sa);
    if (prof == nullptr || sa.state != sa_state::init_sent) {
        ++c.dropped;
        return;
    }
    const auto& ps = m.payloads;
    // COOKIE and INVALID_KE_PAYLOAD: start again as asked (section 2.6, 1.2), a bounded number
    // of times. These answers are unauthenticated: anything else ends the attempt.
    if (const auto* ck = find_notify(ps, notify_type::cookie)) {
        if (++sa.init_restarts > max_init_restarts || ck->data.empty() || ck->data.size() > 64) {
            ++c.ike_sas_failed;
            destroy(sa, "COOKIE loop", out);
            return;
        }
        sa.cookie = ck->data;
        send_sa_init(sa, now, out);
        return;
    }
    if (const auto* ike = find_notify(ps, notify_type::invalid_ke_payload)) {
        uint16_t g = ike->data.size() == 2 ? uint16_t((ike->data[0] << 8) | ike->data[1]) : 0;
        bool offered = false;
        for (const auto& p : prof->settings.proposals) {
            for (uint16_t x : p.groups) {
                offered = offered || x == g;
            }
        }
        ++c.invalid_ke;
        if (!offered || g == sa.suite.dh || ++sa.init_restarts > max_init_restarts) {
            ++c.ike_sas_failed;
            destroy(sa, "INVALID_KE_PAYLOAD names a group we did not offer", out);
            return;
        }
        sa.suite.dh = g;
        send_sa_init(sa, now, out);
        return;
    }
    if (uint16_t err = error_notify(ps)) {
        if (err == notify_type::no_proposal_chosen) {
            ++c.no_proposal;
        }
        ++c.ike_sas_failed;
        destroy(sa, notify_name(err), out);
        return;
    }
    const auto* sa_p = find_payload<sa_payload>(ps);
    const auto* ke = find_payload<ke_payload>(ps);
    const auto* nonce = find_payload<nonce_payload>(ps);
    if (sa_p == nullptr || ke == nullptr || nonce == nullptr || m.hdr.spi_r == 0 ||
        sa_p->proposals.size() != 1 || nonce->data.size() < 16 || nonce->data.size() > 256) {
        ++c.invalid_syntax;
        ++c.ike_sas_failed;
        destroy(sa, "malformed IKE_SA_INIT response", out);
        return;
    }
    // The answer must be one of our proposals, with one transform of each type.
    const proposal& chosen = sa_p->proposals.front();
    size_t dh_count = 0, encr_count = 0, prf_count = 0, integ_count = 0;
    for (const auto& t : chosen.transforms) {
        dh_count += t.type == transform_type::dh;
        encr_count += t.type == transform_type::encr;
        prf_count += t.type == transform_type::prf;
        integ_count += t.type == transform_type::integ;
    }
    auto sel = select_ike(prof->settings, *sa_p, ke->group, {});
    if (sel.status != select_status::ok || dh_count != 1 || encr_count != 1 || prf_count != 1 ||
        integ_count > 1 || ke->group != sa.suite.dh) {
        ++c.no_proposal;
        ++c.ike_sas_failed;
        destroy(sa, "IKE_SA_INIT response chose nothing we offered", out);
        return;
    }
    auto gir = sa.dh->shared_secret(ke->data);
    if (!gir) {
        ++c.ike_sas_failed;
        destroy(sa, "bad KE in the IKE_SA_INIT response", out);
        return;
    }
    sa.out.reset();
    sa.spi_r = m.hdr.spi_r;
    sa.suite = sel.suite;
    sa.nr = nonce->data;
    sa.init_response = d.payload;
    sa.last_inbound = now;
    natd_result natd = check_natd(ps, sa.spi_i, sa.spi_r, d);
    sa.nat_peer = natd.peer_natted;
    sa.nat_local = natd.local_natted;
    // RFC 7383 section 2.3: negotiated only when we offered it and the responder answered.
    sa.peer_fragmentation =
        prof->settings.fragmentation && find_notify(ps, notify_type::ikev2_fragmentation_supported);
    sa.peer_signature_hashes = find_notify(ps, notify_type::signature_hash_algorithms);
    sa.keys = crypto::derive_ike_keys(sa.suite, sa.ni, sa.nr, gir->view(), sa.spi_i, sa.spi_r);
    log_ike_keys(sa);
    sa.dh.reset();
    if (sa.nat_local || sa.nat_peer) {
        // Section 2.23: behind a NAT, IKE moves to port 4500 from IKE_AUTH on.
        sa.local_port = 4500;
        sa.peer_port = 4500;
    }
    send_auth(sa, now, out);
}

}  // namespace dmvpn::ike
