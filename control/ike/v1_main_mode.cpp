// Main Mode with pre-shared keys, the responder (RFC 2409 section 5.4):
//   MM1 HDR, SA          ->   <- MM2 HDR, SA (one transform, ours echoed)
//   MM3 HDR, KE, Ni      ->   <- MM4 HDR, KE, Nr
//   MM5 HDR*, IDii, HASH_I ->  <- MM6 HDR*, IDir, HASH_R
// The responder's state is created when MM1 is answered (nothing before), is bounded by the
// profile's `max-half-open`, and is dropped 30 s later unless Main Mode completes. With a
// pre-shared key the key must be chosen before the peer's identity is seen (SKEYID needs it at
// MM3): the key for the peer's address, else the wildcard. With RSA signatures (the profile's
// `authentication: certificate`) MM4 adds CR, MM5/MM6 carry CERT and SIG instead of HASH
// (v1_signatures.cpp).
#include <fmt/format.h>

#include <algorithm>

#include "control/ike/v1_sa.hpp"

namespace dmvpn::ike::v1 {

// RFC 3706's vendor ID: the peer (and we) speak DPD.
const bytes dpd_vid = {0xaf, 0xca, 0xd7, 0x13, 0x68, 0xa1, 0xf1, 0xc9,
                       0x6b, 0x86, 0x96, 0xfc, 0x77, 0x57, 0x01, 0x00};

// RFC 3947's vendor ID (MD5 of "RFC 3947"): NAT traversal.
const bytes natt_vid = {0x4a, 0x13, 0x1c, 0x81, 0x07, 0x03, 0x58, 0x45,
                        0x5c, 0x57, 0x28, 0xf2, 0x0e, 0x95, 0x45, 0x2f};

// NAT-D (RFC 3947 section 3.2): HASH(CKY-I | CKY-R | IP | Port) with the negotiated hash.
bytes nat_d(const p1_sa& sa, uint32_t ip, uint16_t port) {
    const bytes ci = be64(sa.cky_i), cr = be64(sa.cky_r), a = be32(ip);
    const uint8_t p[2] = {uint8_t(port >> 8), uint8_t(port)};
    return crypto::digest(sa.hash, {ci, cr, a, std::span<const uint8_t>(p, 2)});
}

void check_nat_d(p1_sa& sa, const datagram& d, const std::vector<payload>& ps) {
    // The peer's NAT-D: first the hash of where it sent to (us), then of itself.
    std::vector<const nat_d_payload*> natd;
    for (const auto& p : ps) {
        if (const auto* n = std::get_if<nat_d_payload>(&p)) {
            natd.push_back(n);
        }
    }
    if (natd.size() >= 2) {
        sa.nat_local = natd[0]->hash != nat_d(sa, d.dst, d.dport);
        const bytes peer_hash = nat_d(sa, d.src, d.sport);
        sa.nat_peer = std::none_of(natd.begin() + 1, natd.end(),
                                   [&](auto* n) { return n->hash == peer_hash; });
    }
}

void add_nat_d(const p1_sa& sa, const datagram& d, std::vector<payload>& ps) {
    ps.push_back(nat_d_payload{nat_d(sa, d.src, d.sport)});
    ps.push_back(nat_d_payload{nat_d(sa, d.dst, d.dport)});
}

namespace {
constexpr size_t max_isakmp_per_peer = 3;  // authenticated ISAKMP SAs one peer may hold
}  // namespace

// The initiator's transforms against our policies, in our priority order (as IOS walks
// `crypto isakmp policy`): encryption, key length, hash, authentication and group must be
// equal; the lifetime is the shorter of the two.
std::optional<p1_choice> choose(const sa_payload& sa,
                                const std::vector<config::ike_settings::isakmp_policy>& pols) {
    for (const auto& pol : pols) {
        for (const proposal& p : sa.proposals) {
            if (p.protocol != protocol_id::isakmp) {
                continue;
            }
            for (const transform& t : p.transforms) {
                if (t.id != key_ike) {
                    continue;
                }
                auto a = [&](uint16_t type) { return attribute_value(t.attributes, type); };
                const uint64_t enc = a(p1_attr::encryption).value_or(0);
                const uint64_t bits = a(p1_attr::key_length).value_or(enc == 7 ? 128 : 0);
                if (enc != pol.encryption || a(p1_attr::hash).value_or(0) != pol.hash ||
                    a(p1_attr::auth_method).value_or(0) != pol.authentication ||
                    a(p1_attr::group).value_or(1) != pol.group ||
                    (pol.encryption == crypto::encr::aes && bits != pol.key_bits)) {
                    continue;
                }
                // Life type / duration pairs: seconds counted, kilobytes ignored.
                uint32_t life = pol.lifetime_s;
                for (size_t i = 0; i + 1 < t.attributes.size(); ++i) {
                    const attribute& ty = t.attributes[i];
                    const attribute& du = t.attributes[i + 1];
                    if (ty.type == p1_attr::life_type && du.type == p1_attr::life_duration &&
                        attribute_value(std::span(&ty, 1), p1_attr::life_type) == 1) {
                        auto v = attribute_value(std::span(&du, 1), p1_attr::life_duration);
                        if (v && *v > 0 && *v < life) {
                            life = static_cast<uint32_t>(*v);
                        }
                    }
                }
                p1_choice c;
                c.prop = p;
                c.prop.transforms = {t};
                c.prop.spi.clear();
                c.encr = pol.encryption;
                c.key_bits = pol.encryption == crypto::encr::aes ? pol.key_bits : 0;
                c.hash = pol.hash;
                c.group = pol.group;
                c.lifetime_s = life;
                return c;
            }
        }
    }
    return std::nullopt;
}

const config::ike_psk* find_psk(const config::ike_settings& ike, uint32_t peer,
                                std::string_view identity) {
    const std::string addr = ipv4_text(peer);
    const config::ike_psk* wildcard = nullptr;
    for (const auto& k : ike.psks) {
        if (k.peer == addr || (!identity.empty() && k.peer == identity)) {
            return &k;
        }
        if (k.peer.empty()) {
            wildcard = &k;
        }
    }
    return wildcard;
}

std::string id_text(const id_payload& id) {
    if (id.type == id_type::ipv4_addr && id.data.size() == 4) {
        return ipv4_text((uint32_t(id.data[0]) << 24) | (uint32_t(id.data[1]) << 16) |
                         (uint32_t(id.data[2]) << 8) | id.data[3]);
    }
    std::string s;
    for (uint8_t c : id.data) {
        s += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
    }
    return s;
}

std::unique_ptr<p1_sa> engine::impl::responder_sa(const datagram& d, const message& m,
                                                  const p1_choice& choice, const tunnel_policy& pol,
                                                  time_point now) {
    auto sa = std::make_unique<p1_sa>();
    sa->id = fresh_id();
    sa->tunnel = d.tunnel;
    sa->profile = pol.binding.profile;
    sa->local = d.dst;
    sa->peer = d.src;
    sa->local_port = d.dport;
    sa->peer_port = d.sport;
    sa->cky_i = m.hdr.spi_i;
    do {
        const bytes r = random_bytes(8);
        sa->cky_r = 0;
        for (uint8_t b : r) {
            sa->cky_r = (sa->cky_r << 8) | b;
        }
    } while (sa->cky_r == 0 || by_cky_r.count(sa->cky_r) != 0);
    sa->encr = choice.encr;
    sa->key_bits = choice.key_bits;
    sa->hash = choice.hash;
    sa->group = choice.group;
    sa->lifetime_s = choice.lifetime_s;
    const std::span<const uint8_t> chain(d.payload.data() + header_size,
                                         d.payload.size() - header_size);
    auto body = raw_body(m.hdr.next, chain, payload_type::sa);
    sa->sa_b.assign(body.begin(), body.end());
    note_vendor_ids(m.payloads, *sa);
    sa->created = now;
    return sa;
}

void note_vendor_ids(const std::vector<payload>& ps, p1_sa& sa) {
    // Vendor IDs are public constants (RFC 3706, RFC 3947), not secrets: a plain comparison.
    for (const auto& p : ps) {
        const auto* v = std::get_if<vendor_payload>(&p);
        if (v == nullptr) {
            continue;
        }
        if (v->id.size() >= dpd_vid.size() &&
            std::equal(dpd_vid.begin(), dpd_vid.end(), v->id.begin())) {
            sa.dpd = true;  // RFC 3706's ID, with or without the version octets after it
        }
        if (v->id == natt_vid) {
            sa.natt = true;
        }
    }
}

void engine::impl::keep(std::unique_ptr<p1_sa> sa) {
    ++half_open;
    by_cky_r[sa->cky_r] = sa->id;
    by_cky_i[{sa->cky_i, sa->peer}] = sa->id;
    touch(sa->id);
    index_sa(*sa);
    sas[sa->id] = std::move(sa);
}

std::optional<dh_half> engine::impl::dh_answer(uint16_t group, const bytes& ke, bool& refused) {
    auto kx = ike::crypto::key_exchange::generate(group);
    if (!kx) {
        ++cnt.dropped;
        return std::nullopt;
    }
    // The KE must be of the group chosen (a mismatch cannot be negotiated here).
    auto gxy = kx.value()->shared_secret(ke);
    if (!gxy) {
        ++cnt.invalid_syntax;
        refused = true;
        return std::nullopt;
    }
    return dh_half{std::move(kx.value()), std::move(gxy.value())};
}

void engine::impl::responder_keys(p1_sa& sa, std::unique_ptr<ike::crypto::key_exchange> kx,
                                  const secret& gxy, const bytes& gxi, const bytes& ni) {
    sa.kx = std::move(kx);
    sa.gxi = gxi;
    sa.gxr = sa.kx->public_value();
    sa.ni = ni;
    sa.nr = random_bytes(32);
    sa.keys = sa.signatures
                  ? crypto::derive_phase1_sig(sa.hash, sa.encr, sa.key_bits, sa.ni, sa.nr,
                                              gxy.view(), sa.cky_i, sa.cky_r, sa.gxi, sa.gxr)
                  : crypto::derive_phase1(sa.hash, sa.encr, sa.key_bits, sa.psk.view(), sa.ni,
                                          sa.nr, gxy.view(), sa.cky_i, sa.cky_r, sa.gxi, sa.gxr);
    sa.iv = sa.keys.iv;
}

std::pair<id_payload, secret> engine::impl::responder_id(const p1_sa& sa, const tunnel_policy& pol,
                                                         const id_payload& theirs) {
    id_payload ours;
    if (sa.signatures) {
        ours = signing_id(pol.ike, sa.local);
    } else {
        ours.type = id_type::ipv4_addr;
        ours.data = be32(sa.local);
    }
    ours.protocol = theirs.protocol;
    ours.port = theirs.port;
    const auto ours_chain = serialize_payloads({ours});
    const std::span<const uint8_t> idir_b(ours_chain.data.data() + 4, ours_chain.data.size() - 4);
    secret hr = crypto::hash_r(sa.hash, sa.keys.skeyid.view(), sa.gxi, sa.gxr, sa.cky_i, sa.cky_r,
                               sa.sa_b, idir_b);
    return {std::move(ours), std::move(hr)};
}

message engine::impl::first_answer(const p1_sa& sa, exchange e, const sa_payload& offer,
                                   const p1_choice& choice) {
    message r;
    r.hdr.spi_i = sa.cky_i;
    r.hdr.spi_r = sa.cky_r;
    r.hdr.exch = e;
    sa_payload rs;
    rs.doi = offer.doi;
    rs.situation = offer.situation;
    rs.proposals = {choice.prop};
    r.payloads.push_back(rs);
    return r;
}

void engine::impl::answer_first(std::unique_ptr<p1_sa> sa, const datagram& d, const message& r,
                                outputs& out) {
    sa->last_request = d.payload;
    sa->last_response = serialize(r);
    send(*sa, sa->last_response, out);
    keep(std::move(sa));
}

p1_sa* engine::impl::phase1_sa(const datagram& d, const message& m) {
    p1_sa* sa = find(m.hdr.spi_i, m.hdr.spi_r);
    if (sa == nullptr || sa->peer != d.src) {
        ++cnt.dropped;
        return nullptr;
    }
    return sa;
}

namespace {

// Our own Main Mode to the peer still waiting for MM2: given up once the peer keys us.
bool abandoned(const p1_sa& o) { return o.initiator && o.mm_sent == 1 && o.cky_r == 0; }

}  // namespace

void engine::impl::initial_contact(const p1_sa& sa, const std::vector<payload>& ps, outputs& out) {
    const bool initial = std::any_of(ps.begin(), ps.end(), [](const payload& p) {
        const auto* n = std::get_if<notification_payload>(&p);
        return n != nullptr && n->type == notify_type::initial_contact;
    });
    if (!initial) {
        return;
    }
    std::vector<uint64_t> old = sas_of(sa.peer, sa.tunnel);
    std::erase(old, sa.id);
    for (uint64_t oid : old) {
        if (abandoned(*sas.at(oid))) {
            ++cnt.initiations_abandoned;
            forget(oid, "the peer keyed us first", false, out);  // not a failure
        } else {
            forget(oid, "INITIAL-CONTACT", true, out);
        }
    }
}

void engine::impl::established(p1_sa& sa, time_point now, outputs& out) {
    // An authenticated peer keeps at most a few ISAKMP SAs (re-authentication overlaps): the
    // oldest beyond that goes, handing its IPsec SAs on.
    std::vector<uint64_t> same = sas_of(sa.peer, sa.tunnel);
    std::erase_if(same, [&](uint64_t oid) {
        return oid == sa.id || sas.at(oid)->state != p1_state::qm_idle;
    });
    sa.state = p1_state::qm_idle;
    for (size_t k = 0; k + max_isakmp_per_peer <= same.size(); ++k) {
        forget(same[k], "superseded by a newer ISAKMP SA", true, out);
    }
    if (half_open > 0) {
        --half_open;
    }
    sa.up_at = now;
    sa.expire_at = now + std::chrono::seconds(sa.lifetime_s);
    touch(sa.id);
    sa.kx.reset();
    ++cnt.phase1_up;
    out.requests.emplace_back(peer_up{sa.id, sa.tunnel, sa.peer, sa.peer_id});
    // Our own Main Mode to the peer still waiting for MM2 (a hub behind a NAT keyed us, and
    // what we send to its public address finds no mapping; or our MM1 was lost): abandoned
    // rather than retransmitted for a minute. The peer holds nothing of it (no MM2 came; at
    // most a half-open SA there, which expires). One past MM1 goes on (drop_duplicate).
    for (uint64_t oid : sas_of(sa.peer, sa.tunnel)) {
        if (abandoned(*sas.at(oid))) {
            ++cnt.initiations_abandoned;
            forget(oid, "the peer keyed us first", false, out);  // no initiation_failed
        }
    }
}

namespace {

// The lower of an ISAKMP SA's two nonces; of two SAs, the one whose lower nonce is the lowest
// goes (RFC 7296 section 2.8.1's rule for IKEv2's simultaneous rekeys, which the IKEv2 engine
// also applies to two hubs' crossed initiations; IKEv1 has no rule of its own). Octet strings.
const bytes& low_nonce(const p1_sa& sa) {
    return std::lexicographical_compare(sa.nr.begin(), sa.nr.end(), sa.ni.begin(), sa.ni.end())
               ? sa.nr
               : sa.ni;
}

}  // namespace

// Both ends know both SAs' nonces, so both pick the same one; only its initiator acts, and only
// once it knows both SAs are up at both ends: its own one has finished its Quick Mode (the
// peer answered it), and the peer's one carries a pair the peer asked for (the peer completed
// Main Mode on it). Its pairs go first (an ESP DELETE each), then the ISAKMP SA (a DELETE):
// the peer removes the pairs, and the ISAKMP SA that stays is the heir at both ends (forget()),
// so neither tells its hub the peer went down.
void engine::impl::drop_duplicate(uint32_t peer, uint32_t tunnel, outputs& out) {
    const std::vector<uint64_t> ids = sas_of(peer, tunnel);
    if (ids.size() < 2) {
        return;  // any spoke: nothing to compare
    }
    auto has_pair = [&](uint64_t p1) {
        for (uint64_t cid : children_of(peer_key(peer, tunnel))) {
            const child_rec& c = children.at(cid);
            if (c.p1 == p1 && c.installed) {
                return true;
            }
        }
        return false;
    };
    const p1_sa* ours = nullptr;
    const p1_sa* theirs = nullptr;
    for (uint64_t id : ids) {
        const p1_sa& s = *sas.at(id);
        if (s.state != p1_state::qm_idle || !has_pair(id)) {
            continue;
        }
        if (s.initiator && !s.own_qm) {
            ours = ours == nullptr || s.up_at > ours->up_at ? &s : ours;
        } else if (!s.initiator) {
            theirs = theirs == nullptr || s.up_at > theirs->up_at ? &s : theirs;
        }
    }
    if (ours == nullptr || theirs == nullptr ||
        !std::lexicographical_compare(low_nonce(*ours).begin(), low_nonce(*ours).end(),
                                      low_nonce(*theirs).begin(), low_nonce(*theirs).end())) {
        return;  // not both up yet, or the peer's is the one to go (the peer deletes it)
    }
    const uint64_t doomed = ours->id;
    p1_sa& sa = *sas.at(doomed);
    std::vector<uint64_t> pairs;
    for (uint64_t cid : children_of(peer_key(peer, tunnel))) {
        if (children.at(cid).p1 == doomed) {
            pairs.push_back(cid);
        }
    }
    for (uint64_t cid : pairs) {
        send_informational(sa, esp_delete(children.at(cid).sa.inbound.spi), out);
        remove_child(cid, "duplicate ISAKMP SA deleted", out);
    }
    send_informational(sa, isakmp_delete(sa), out);
    ++cnt.duplicates_deleted;
    forget(doomed, "duplicate ISAKMP SA deleted", true, out);
}

bool engine::impl::first_seen(const datagram& d, const message& m, p1_state waiting, outputs& out) {
    auto it = by_cky_i.find({m.hdr.spi_i, d.src});
    if (it == by_cky_i.end()) {
        return false;
    }
    auto found = sas.find(it->second);
    if (found == sas.end()) {
        by_cky_i.erase(it);  // (not expected: forget() takes the entry with the SA)
        return false;
    }
    p1_sa& sa = *found->second;
    if (sa.state == waiting && sa.last_request == d.payload) {
        ++cnt.duplicates_answered;
        send(sa, sa.last_response, out);
    } else {
        ++cnt.dropped;
    }
    return true;
}

std::optional<p1_choice> engine::impl::first_choice(const datagram& d, const message& m,
                                                    const sa_payload& sa_p,
                                                    const tunnel_policy& pol, time_point now,
                                                    outputs& out) {
    if (half_open >= pol.ike.max_half_open) {
        ++cnt.half_open;
        ++cnt.dropped;
        return std::nullopt;
    }
    auto choice = choose(sa_p, pol.ike.isakmp_policies);
    if (!choice) {
        ++cnt.no_proposal;
        notify_plain(d, m.hdr.spi_i, 0, notify_type::no_proposal_chosen, now, out);
    }
    return choice;
}

void engine::impl::main_mode(const datagram& d, const message& m, time_point now, outputs& out) {
    const tunnel_policy& pol = *policy(d.tunnel);
    if (m.hdr.spi_r == 0) {
        // MM1: a retransmission is answered from the cache; otherwise a new SA, if allowed.
        if (first_seen(d, m, p1_state::mm_sa_setup, out)) {
            return;
        }
        if (m.hdr.encrypted()) {
            ++cnt.dropped;
            return;
        }
        const auto* sa_p = find_payload<sa_payload>(m.payloads);
        if (sa_p == nullptr) {
            ++cnt.invalid_syntax;
            notify_plain(d, m.hdr.spi_i, 0, notify_type::payload_malformed, now, out);
            return;
        }
        auto choice = first_choice(d, m, *sa_p, pol, now, out);
        if (!choice) {
            return;
        }
        auto sa = responder_sa(d, m, *choice, pol, now);
        message r = first_answer(*sa, exchange::identity_protection, *sa_p, *choice);
        r.payloads.push_back(vendor_payload{dpd_vid});
        if (sa->natt) {
            r.payloads.push_back(vendor_payload{natt_vid});
        }
        answer_first(std::move(sa), d, r, out);
        return;
    }

    p1_sa* sa = phase1_sa(d, m);
    if (sa == nullptr) {
        return;
    }
    if (d.payload == sa->last_request) {
        ++cnt.duplicates_answered;
        send(*sa, sa->last_response, out);
        return;
    }
    sa->peer_port = d.sport;
    sa->local_port = d.dport;
    switch (sa->state) {
        case p1_state::mm_sa_setup: {
            // MM3: KE, Ni -> MM4: KE, Nr; SKEYID and its children.
            const auto* ke = find_payload<ke_payload>(m.payloads);
            const auto* ni = find_payload<nonce_payload>(m.payloads);
            if (m.hdr.encrypted() || ke == nullptr || ni == nullptr) {
                ++cnt.invalid_syntax;
                return;
            }
            bool refused = false;
            auto dh = dh_answer(sa->group, ke->data, refused);
            if (!dh) {
                if (!refused) {
                    return;
                }
                notify_plain(d, sa->cky_i, sa->cky_r, notify_type::invalid_key_information, now,
                             out);
                ++cnt.phase1_failed;
                forget(sa->id, "bad KE", false, out);
                return;
            }
            sa->signatures = pol.signing != nullptr;
            if (!sa->signatures) {
                const config::ike_psk* psk = find_psk(pol.ike, sa->peer);
                if (psk == nullptr) {
                    ++cnt.auth_failed;
                    notify_plain(d, sa->cky_i, sa->cky_r, notify_type::authentication_failed, now,
                                 out);
                    ++cnt.phase1_failed;
                    forget(sa->id, "no pre-shared key for the peer", false, out);
                    return;
                }
                sa->psk = secret(psk->key);
            }
            responder_keys(*sa, std::move(dh->kx), dh->gxy, ke->data, ni->data);
            message r;
            r.hdr.spi_i = sa->cky_i;
            r.hdr.spi_r = sa->cky_r;
            r.hdr.exch = exchange::identity_protection;
            r.payloads.push_back(ke_payload{sa->gxr});
            r.payloads.push_back(nonce_payload{sa->nr});
            if (sa->signatures) {
                add_cert_requests(*pol.signing, r.payloads);
            }
            if (sa->natt) {
                check_nat_d(*sa, d, m.payloads);
                add_nat_d(*sa, d, r.payloads);
            }
            sa->last_request = d.payload;
            sa->last_response = serialize(r);
            sa->state = p1_state::mm_key_exch;
            send(*sa, sa->last_response, out);
            return;
        }
        case p1_state::mm_key_exch: {
            // MM5: IDii, HASH_I or CERT + SIG_I (encrypted) -> MM6: IDir, HASH_R or CERT + SIG_R.
            if (!m.hdr.encrypted()) {
                ++cnt.invalid_syntax;
                return;
            }
            bytes iv = sa->iv;
            auto plain = open(*sa, m, iv);
            if (!plain) {
                return;
            }
            auto chain = parse_payloads(m.hdr.next, *plain);
            const id_payload* id = chain ? find_payload<id_payload>(chain->payloads) : nullptr;
            const hash_payload* h = chain ? find_payload<hash_payload>(chain->payloads) : nullptr;
            const bool proof = sa->signatures
                                   ? chain && find_payload<sig_payload>(chain->payloads) != nullptr
                                   : h != nullptr;
            if (id == nullptr || !proof) {
                // A wrong key decrypts to garbage: counted as a failed authentication.
                ++cnt.auth_failed;
                ++cnt.phase1_failed;
                forget(sa->id, "MM5 unreadable (wrong pre-shared key?)", false, out);
                return;
            }
            auto idii_b = raw_body(m.hdr.next, *plain, payload_type::id);
            secret want = crypto::hash_i(sa->hash, sa->keys.skeyid.view(), sa->gxi, sa->gxr,
                                         sa->cky_i, sa->cky_r, sa->sa_b, idii_b);
            if (sa->signatures) {
                auto why = pol.signing != nullptr
                               ? signature_fails(*pol.signing, chain->payloads, *id, want.view())
                               : std::optional<std::string>("the profile has no certificate now");
                if (why) {
                    ++cnt.auth_failed;
                    ++cnt.phase1_failed;
                    notify_plain(d, sa->cky_i, sa->cky_r, notify_type::authentication_failed, now,
                                 out);
                    forget(sa->id, fmt::format("MM5: {}", *why), false, out);
                    return;
                }
            } else if (!ike::crypto::equal(want.view(), h->data)) {
                ++cnt.auth_failed;
                ++cnt.phase1_failed;
                notify_plain(d, sa->cky_i, sa->cky_r, notify_type::invalid_hash_information, now,
                             out);
                forget(sa->id, "HASH_I mismatch", false, out);
                return;
            }
            sa->iv = iv;
            sa->peer_id = id_text(*id);
            // INITIAL-CONTACT: the peer rebooted; its older SAs are gone.
            initial_contact(*sa, chain->payloads, out);
            auto [ours, hr] = responder_id(*sa, pol, *id);
            header hdr;
            hdr.spi_i = sa->cky_i;
            hdr.spi_r = sa->cky_r;
            hdr.exch = exchange::identity_protection;
            std::vector<payload> ps{ours};
            if (!sa->signatures) {
                ps.push_back(hash_payload{bytes(hr.data(), hr.data() + hr.size())});
            } else if (auto err = add_signature(*pol.signing, hr.view(), ps)) {
                ++cnt.dropped;
                ++cnt.phase1_failed;
                forget(sa->id, fmt::format("MM6 not signed: {}", *err), false, out);
                return;
            }
            sa->last_request = d.payload;
            sa->last_response = seal(*sa, hdr, ps, sa->iv);
            send(*sa, sa->last_response, out);
            established(*sa, now, out);
            return;
        }
        case p1_state::ag_init_exch:
        case p1_state::qm_idle:
            // A Main Mode message on an established SA that is not the retransmitted MM5, or on
            // an Aggressive Mode SA.
            ++cnt.dropped;
            return;
    }
}

}  // namespace dmvpn::ike::v1
