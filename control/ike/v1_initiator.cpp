// The IKEv1 initiator (RFC 2409): Main Mode with a pre-shared key, then Quick Mode for one ESP
// pair in transport mode between the two NBMA addresses (proxy identities: the hosts, protocol
// 47), with PFS when the profile sets `pfs`. Used for hub-to-hub tunnels and by the spoke
// emulator (`--ike v1`); the responder is v1_main_mode.cpp / v1_quick_mode.cpp.
//
//   MM1 HDR, SA (every isakmp-policy a transform), VID(DPD), VID(RFC 3947)  ->
//                                                     <- MM2 HDR, SA (the one chosen), VID
//   MM3 HDR, KE, Ni [, NAT-D, NAT-D]                  ->
//                                                     <- MM4 HDR, KE, Nr [, NAT-D, NAT-D]
//   MM5 HDR*, IDii, HASH_I [, INITIAL-CONTACT]        ->   (UDP 4500 from here on if a NAT)
//                                                     <- MM6 HDR*, IDir, HASH_R
//   QM1 HDR*, HASH(1), SA, Ni [, KE], IDci, IDcr [, NAT-OAi, NAT-OAr]  ->
//                                                     <- QM2 HDR*, HASH(2), SA, Nr [, KE], ...
//   QM3 HDR*, HASH(3)                                 ->
//
// NAT traversal (RFC 3947): when MM2 carries the RFC 3947 vendor ID too, MM3 and MM4 exchange
// NAT-D; a NAT found in front of either end moves the ISAKMP SA to UDP 4500 (the non-ESP marker
// is the transport's) from MM5 on, Quick Mode proposes UDP-Transport encapsulation and the pair
// is ESP in UDP (RFC 3948) between the ports IKE uses; NAT keepalives as for the responder.
//
// Every request is re-sent after 2, 4, 8, 16, 32 s (the responder answers repeats from its
// cache), then the negotiation is abandoned (peer_down if the SA was up). The pair is handed to
// the hub when QM2 checks out (the responder installed its side before QM2 left); QM3 leaves at
// once. A new Quick Mode replaces the pair at 90% of its lifetime (make before break).
//
// DPD (RFC 3706), both roles, on ISAKMP SAs whose peer sent the DPD vendor ID: after
// `dpd-interval` seconds without an authenticated message from the peer, R-U-THERE (a fresh
// Informational each try, the same sequence number), re-sent as above up to `dpd-retries`
// times; no R-U-THERE-ACK: the ISAKMP SA and its IPsec SAs go (remove_child, peer_down).
#include <fmt/format.h>

#include <algorithm>

#include "control/ike/key_log.hpp"
#include "control/ike/v1_sa.hpp"

namespace dmvpn::ike::v1 {

namespace {

constexpr auto retransmit_base = std::chrono::seconds(2);
constexpr uint32_t retransmit_tries = 5;

bytes be16(uint16_t v) { return {uint8_t(v >> 8), uint8_t(v)}; }
attribute tv(uint16_t type, uint16_t v) { return {type, true, be16(v)}; }
attribute tlv32(uint16_t type, uint32_t v) { return {type, false, be32(v)}; }

uint32_t random32() {
    const bytes r = random_bytes(4);
    return (uint32_t(r[0]) << 24) | (uint32_t(r[1]) << 16) | (uint32_t(r[2]) << 8) | r[3];
}

uint32_t spi_of(const bytes& b) {
    return b.size() == 4
               ? (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3]
               : 0;
}

// The ISAKMP auth algorithm (RFC 2407 section 4.5) for an IANA integrity ID; 0: none.
uint16_t auth_of(uint16_t integ) {
    switch (integ) {
        case integ_id::hmac_md5_96:
            return 1;
        case integ_id::hmac_sha1_96:
            return 2;
        case integ_id::hmac_sha2_256_128:
            return 5;
        default:
            return 0;
    }
}

// MM1's SA: one ISAKMP proposal, each isakmp-policy a transform in order.
sa_payload isakmp_offer(const config::ike_settings& ike) {
    proposal p;
    p.protocol = protocol_id::isakmp;
    uint8_t n = 1;
    for (const auto& pol : ike.isakmp_policies) {
        transform t;
        t.number = n++;
        t.id = key_ike;
        t.attributes.push_back(tv(p1_attr::encryption, pol.encryption));
        if (pol.encryption == crypto::encr::aes) {
            t.attributes.push_back(tv(p1_attr::key_length, pol.key_bits));
        }
        t.attributes.push_back(tv(p1_attr::hash, pol.hash));
        t.attributes.push_back(tv(p1_attr::auth_method, pol.authentication));
        t.attributes.push_back(tv(p1_attr::group, pol.group));
        t.attributes.push_back(tv(p1_attr::life_type, 1));
        t.attributes.push_back(tlv32(p1_attr::life_duration, pol.lifetime_s));
        p.transforms.push_back(std::move(t));
    }
    sa_payload sa;
    sa.proposals.push_back(std::move(p));
    return sa;
}

// Seconds from a list of Life Type / Life Duration pairs (`type_attr`, `dur_attr`); 0 if none.
uint32_t life_seconds(std::span<const attribute> attrs, uint16_t type_attr, uint16_t dur_attr) {
    for (size_t i = 0; i + 1 < attrs.size(); ++i) {
        if (attrs[i].type == type_attr && attrs[i + 1].type == dur_attr &&
            attribute_value(attrs.subspan(i, 1), type_attr) == 1) {
            auto v = attribute_value(attrs.subspan(i + 1, 1), dur_attr);
            if (v && *v > 0) {
                return static_cast<uint32_t>(std::min<uint64_t>(*v, 0xffffffffu));
            }
        }
    }
    return 0;
}

// A notify's data as attributes (RESPONDER-LIFETIME): TV (AF set) or TLV; a truncated one ends
// the list.
std::vector<attribute> read_attributes(std::span<const uint8_t> b) {
    std::vector<attribute> out;
    size_t off = 0;
    while (off + 4 <= b.size() && out.size() < 16) {
        const uint16_t type = uint16_t(((b[off] & 0x7f) << 8) | b[off + 1]);
        const bool tv_form = (b[off] & 0x80) != 0;
        const size_t len = tv_form ? 2 : (size_t(b[off + 2]) << 8) | b[off + 3];
        const size_t at = tv_form ? off + 2 : off + 4;
        if (at + len > b.size()) {
            break;
        }
        out.push_back({type, tv_form, bytes(b.begin() + at, b.begin() + at + len)});
        off = at + len;
    }
    return out;
}

id_payload host_id(uint32_t addr, uint8_t protocol, uint16_t port) {
    id_payload id;
    id.type = id_type::ipv4_addr;
    id.protocol = protocol;
    id.port = port;
    id.data = be32(addr);
    return id;
}

bytes body_of(const payload& p) {
    const chain c = serialize_payloads({p});
    return bytes(c.data.begin() + 4, c.data.end());
}

void arm(retransmit& r, bytes msg, uint32_t max_tries, time_point now) {
    r.msg = std::move(msg);
    r.tries = 0;
    r.max_tries = max_tries;
    r.next = now + retransmit_base;
}

}  // namespace

uint64_t engine::impl::fresh_cookie() const {
    for (;;) {
        uint64_t c = 0;
        for (uint8_t b : random_bytes(8)) {
            c = (c << 8) | b;
        }
        if (c != 0 && by_own_cky_i.count(c) == 0 && by_cky_r.count(c) == 0) {
            return c;
        }
    }
}

void engine::impl::initiate(uint32_t tunnel, uint32_t peer, time_point now, outputs& out) {
    last_now = now;
    const tunnel_policy* pol = policy(tunnel);
    if (pol == nullptr || pol->ike.isakmp_policies.empty() || peer == 0) {
        ++cnt.dropped;
        return;
    }
    if (!sas_of(peer, tunnel).empty()) {
        return;  // one ISAKMP SA per peer: already there or under way
    }
    if (half_open >= pol->ike.max_half_open) {
        ++cnt.half_open;
        ++cnt.dropped;
        return;
    }
    auto sa = std::make_unique<p1_sa>();
    sa->id = fresh_id();
    sa->initiator = true;
    sa->tunnel = tunnel;
    sa->profile = pol->binding.profile;
    sa->local = pol->binding.local;
    sa->peer = peer;
    sa->cky_i = fresh_cookie();
    sa->created = now;
    message m;
    m.hdr.spi_i = sa->cky_i;
    m.hdr.exch = exchange::identity_protection;
    const sa_payload offer = isakmp_offer(pol->ike);
    sa->sa_b = body_of(offer);
    m.payloads.push_back(offer);
    m.payloads.push_back(vendor_payload{dpd_vid});
    m.payloads.push_back(vendor_payload{natt_vid});
    bytes msg = serialize(m);
    sa->mm_sent = 1;
    arm(sa->retx, msg, retransmit_tries, now);
    send(*sa, std::move(msg), out);
    ++cnt.initiated;
    ++half_open;
    by_own_cky_i[sa->cky_i] = sa->id;
    touch(sa->id);
    index_sa(*sa);
    sas[sa->id] = std::move(sa);
}

p1_sa* engine::impl::find_own(const datagram& d, const message& m) {
    auto own = by_own_cky_i.find(m.hdr.spi_i);
    if (own == by_own_cky_i.end()) {
        return nullptr;
    }
    auto it = sas.find(own->second);
    if (it == sas.end() || it->second->tunnel != d.tunnel || it->second->peer != d.src) {
        return nullptr;
    }
    p1_sa& sa = *it->second;
    const bool cky_ok = sa.cky_r == 0 || m.hdr.spi_r == sa.cky_r ||
                        (m.hdr.spi_r == 0 && sa.state != p1_state::qm_idle);
    if (!cky_ok) {
        return nullptr;
    }
    touch(sa.id);
    return &sa;
}

bool engine::impl::initiator_rx(const datagram& d, const message& m, time_point now, outputs& out) {
    p1_sa* found = find_own(d, m);
    if (found == nullptr || found->state == p1_state::qm_idle) {
        return false;  // not ours; Quick Mode and Informational go the common way
    }
    p1_sa& sa = *found;
    if (m.hdr.exch == exchange::informational && !m.hdr.encrypted()) {
        // The responder refused us (NO-PROPOSAL-CHOSEN, a wrong key...): unprotected, but only
        // the peer and the path know our cookie. An error notify ends the negotiation.
        const auto* n = find_payload<notification_payload>(m.payloads);
        if (n != nullptr && n->type < 8192) {
            if (n->type == notify_type::no_proposal_chosen) {
                ++cnt.no_proposal;
            } else {
                ++cnt.auth_failed;
            }
            ++cnt.phase1_failed;
            forget(sa.id, fmt::format("refused by the peer: {}", notify_name(n->type)), false, out);
        } else {
            ++cnt.dropped;
        }
        return true;
    }
    if (m.hdr.exch != exchange::identity_protection || m.hdr.spi_r == 0) {
        ++cnt.dropped;
        return true;
    }
    if (d.payload == sa.last_request) {
        ++cnt.duplicates_answered;  // an answer we already took: our retransmission crossed it
        return true;
    }
    const tunnel_policy* pol = policy(sa.tunnel);
    if (pol == nullptr) {
        ++cnt.dropped;
        return true;
    }
    auto fail = [&](std::string why, uint64_t& counter) {
        ++counter;
        ++cnt.phase1_failed;
        forget(sa.id, std::move(why), false, out);
    };
    sa.peer_port = d.sport;
    sa.local_port = d.dport;
    if (sa.mm_sent == 1) {
        // MM2: the transform the responder chose must be one we offered.
        const auto* sp = find_payload<sa_payload>(m.payloads);
        if (m.hdr.encrypted() || sp == nullptr || sp->proposals.size() != 1 ||
            sp->proposals[0].transforms.size() != 1) {
            fail("MM2 without one chosen transform", cnt.invalid_syntax);
            return true;
        }
        const transform& t = sp->proposals[0].transforms[0];
        auto a = [&](uint16_t type) { return attribute_value(t.attributes, type); };
        const uint64_t enc = a(p1_attr::encryption).value_or(0);
        const uint64_t bits = a(p1_attr::key_length).value_or(enc == crypto::encr::aes ? 128 : 0);
        const config::ike_settings::isakmp_policy* chosen = nullptr;
        for (const auto& p : pol->ike.isakmp_policies) {
            if (t.id == key_ike && enc == p.encryption && a(p1_attr::hash) == p.hash &&
                a(p1_attr::auth_method) == p.authentication &&
                a(p1_attr::group).value_or(1) == p.group &&
                (p.encryption != crypto::encr::aes || bits == p.key_bits)) {
                chosen = &p;
                break;
            }
        }
        if (chosen == nullptr) {
            fail("MM2 chose a transform we did not offer", cnt.no_proposal);
            return true;
        }
        sa.cky_r = m.hdr.spi_r;
        sa.encr = chosen->encryption;
        sa.key_bits = chosen->encryption == crypto::encr::aes ? chosen->key_bits : 0;
        sa.hash = chosen->hash;
        sa.group = chosen->group;
        const uint32_t life =
            life_seconds(t.attributes, p1_attr::life_type, p1_attr::life_duration);
        sa.lifetime_s = life != 0 ? std::min(life, chosen->lifetime_s) : chosen->lifetime_s;
        note_vendor_ids(m.payloads, sa);
        auto kx = ike::crypto::key_exchange::generate(sa.group);
        if (!kx) {
            fail("no key exchange for the group", cnt.dropped);
            return true;
        }
        sa.kx = std::move(kx.value());
        sa.gxi = sa.kx->public_value();
        sa.ni = random_bytes(32);
        message r;
        r.hdr.spi_i = sa.cky_i;
        r.hdr.spi_r = sa.cky_r;
        r.hdr.exch = exchange::identity_protection;
        r.payloads.push_back(ke_payload{sa.gxi});
        r.payloads.push_back(nonce_payload{sa.ni});
        sa.signatures = pol->signing != nullptr;
        if (sa.signatures) {
            add_cert_requests(*pol->signing, r.payloads);
        }
        if (sa.natt) {
            add_nat_d(sa, d, r.payloads);  // the peer as we send to it, then us
        }
        bytes msg = serialize(r);
        sa.last_request = d.payload;
        sa.mm_sent = 3;
        sa.state = p1_state::mm_key_exch;
        arm(sa.retx, msg, retransmit_tries, now);
        answered(sa);  // the previous request's retransmission is not due any more
        send(sa, std::move(msg), out);
        return true;
    }
    if (sa.mm_sent == 3) {
        // MM4: KE, Nr; the key schedule; MM5 with our identity and HASH_I.
        const auto* ke = find_payload<ke_payload>(m.payloads);
        const auto* nr = find_payload<nonce_payload>(m.payloads);
        if (m.hdr.encrypted() || ke == nullptr || nr == nullptr) {
            fail("MM4 without KE and nonce", cnt.invalid_syntax);
            return true;
        }
        auto gxy = sa.kx->shared_secret(ke->data);
        if (!gxy) {
            fail("bad KE in MM4", cnt.invalid_syntax);
            return true;
        }
        if (sa.signatures != (pol->signing != nullptr)) {
            fail("the profile's authentication changed", cnt.dropped);
            return true;
        }
        if (!sa.signatures) {
            const config::ike_psk* psk = find_psk(pol->ike, sa.peer);
            if (psk == nullptr) {
                fail("no pre-shared key for the peer", cnt.auth_failed);
                return true;
            }
            sa.psk = secret(psk->key);
        }
        sa.gxr = ke->data;
        sa.nr = nr->data;
        if (sa.natt) {
            check_nat_d(sa, d, m.payloads);
            if (sa.behind_nat()) {
                sa.local_port = 4500;  // RFC 3947 section 4: MM5 on leaves from and to 4500
                sa.peer_port = 4500;
            }
        }
        sa.keys =
            sa.signatures
                ? crypto::derive_phase1_sig(sa.hash, sa.encr, sa.key_bits, sa.ni, sa.nr,
                                            gxy.value().view(), sa.cky_i, sa.cky_r, sa.gxi, sa.gxr)
                : crypto::derive_phase1(sa.hash, sa.encr, sa.key_bits, sa.psk.view(), sa.ni, sa.nr,
                                        gxy.value().view(), sa.cky_i, sa.cky_r, sa.gxi, sa.gxr);
        sa.iv = sa.keys.iv;
        id_payload idii = host_id(sa.local, 17, 500);
        if (sa.signatures) {
            idii = signing_id(pol->ike, sa.local);
            idii.protocol = 17;
            idii.port = 500;
        }
        const bytes idii_b = body_of(idii);
        secret hi = crypto::hash_i(sa.hash, sa.keys.skeyid.view(), sa.gxi, sa.gxr, sa.cky_i,
                                   sa.cky_r, sa.sa_b, idii_b);
        std::vector<payload> ps{idii};
        if (!sa.signatures) {
            ps.push_back(hash_payload{bytes(hi.data(), hi.data() + hi.size())});
        } else if (auto err = add_signature(*pol->signing, hi.view(), ps)) {
            fail(fmt::format("MM5 not signed: {}", *err), cnt.dropped);
            return true;
        }
        // Not while the peer keys us too, even half way (two hubs initiating to each other):
        // its answer to our INITIAL-CONTACT would drop the ISAKMP SA it initiated, which we
        // hold, and each end would keep a different SA.
        // (The peer's SAs on this tunnel, as INITIAL-CONTACT drops there: not every SA.)
        if (sas_of(sa.peer, sa.tunnel).size() == 1) {
            notification_payload n;
            n.protocol = protocol_id::isakmp;
            n.spi = cookies(sa);
            n.type = notify_type::initial_contact;
            ps.push_back(n);
        }
        header h;
        h.spi_i = sa.cky_i;
        h.spi_r = sa.cky_r;
        h.exch = exchange::identity_protection;
        bytes msg = seal(sa, h, ps, sa.iv);
        sa.last_request = d.payload;
        sa.mm_sent = 5;
        arm(sa.retx, msg, retransmit_tries, now);
        answered(sa);  // the previous request's retransmission is not due any more
        send(sa, std::move(msg), out);
        return true;
    }
    // MM6: IDir, HASH_R.
    if (!m.hdr.encrypted()) {
        ++cnt.dropped;
        return true;
    }
    bytes iv = sa.iv;
    auto plain = open(sa, m, iv);
    if (!plain) {
        return true;
    }
    auto ch = parse_payloads(m.hdr.next, *plain);
    const id_payload* id = ch ? find_payload<id_payload>(ch->payloads) : nullptr;
    const hash_payload* h = ch ? find_payload<hash_payload>(ch->payloads) : nullptr;
    const bool proof =
        sa.signatures ? ch && find_payload<sig_payload>(ch->payloads) != nullptr : h != nullptr;
    if (id == nullptr || !proof) {
        fail("MM6 unreadable (wrong pre-shared key?)", cnt.auth_failed);
        return true;
    }
    auto idir_b = raw_body(m.hdr.next, *plain, payload_type::id);
    secret want = crypto::hash_r(sa.hash, sa.keys.skeyid.view(), sa.gxi, sa.gxr, sa.cky_i, sa.cky_r,
                                 sa.sa_b, idir_b);
    if (sa.signatures) {
        auto why = pol->signing != nullptr
                       ? signature_fails(*pol->signing, ch->payloads, *id, want.view())
                       : std::optional<std::string>("the profile has no certificate now");
        if (why) {
            fail(fmt::format("MM6: {}", *why), cnt.auth_failed);
            return true;
        }
    } else if (!ike::crypto::equal(want.view(), h->data)) {
        fail("HASH_R mismatch", cnt.auth_failed);
        return true;
    }
    sa.iv = iv;
    sa.peer_id = id_text(*id);
    sa.state = p1_state::qm_idle;
    sa.retx = {};
    answered(sa);
    sa.last_request.clear();
    sa.kx.reset();
    if (half_open > 0) {
        --half_open;
    }
    sa.up_at = now;
    sa.last_rx = now;
    sa.expire_at = now + std::chrono::seconds(sa.lifetime_s);
    ++cnt.phase1_up;
    out.requests.emplace_back(peer_up{sa.id, sa.tunnel, sa.peer, sa.peer_id});
    start_quick(sa, std::nullopt, now, out);
    return true;
}

void engine::impl::start_quick(p1_sa& sa, std::optional<uint64_t> replaces, time_point now,
                               outputs& out) {
    const tunnel_policy* pol = policy(sa.tunnel);
    if (pol == nullptr || sa.own_qm) {
        return;
    }
    touch(sa.id);
    own_quick_mode q;
    do {
        q.mid = random32();
    } while (q.mid == 0 || sa.quick.count(q.mid) != 0);
    q.spi = fresh_spi();  // not a pair's, nor a pending Quick Mode's (inbound_spis)
    q.pfs = pol->ike.pfs_group.value_or(0);
    q.ni_b = random_bytes(32);
    q.replaces = replaces;
    // One ESP proposal, a transform per esp-proposal ISAKMP can name (no AES-GCM in IKEv1 here);
    // UDP-encapsulated transport when NAT-D found a NAT (RFC 3947 section 5.1).
    const uint16_t mode = sa.behind_nat() ? encapsulation::udp_transport : encapsulation::transport;
    q.mode = mode;
    proposal p;
    p.protocol = protocol_id::esp;
    p.spi = be32(q.spi);
    uint8_t n = 1;
    for (const auto& e : pol->ike.esp_proposals) {
        const uint16_t auth = auth_of(e.integ);
        if ((e.encr != esp_transform::aes && e.encr != esp_transform::triple_des) || auth == 0) {
            continue;
        }
        transform t;
        t.number = n++;
        t.id = static_cast<uint8_t>(e.encr);
        t.attributes.push_back(tv(p2_attr::sa_life_type, 1));
        t.attributes.push_back(tlv32(p2_attr::sa_life_duration, pol->ike.child_lifetime_s));
        t.attributes.push_back(tv(p2_attr::encapsulation_mode, mode));
        t.attributes.push_back(tv(p2_attr::auth_algorithm, auth));
        if (e.encr == esp_transform::aes) {
            t.attributes.push_back(tv(p2_attr::key_length, e.encr_bits));
        }
        if (q.pfs != 0) {
            t.attributes.push_back(tv(p2_attr::group, q.pfs));
        }
        p.transforms.push_back(std::move(t));
    }
    if (p.transforms.empty()) {
        ++cnt.no_proposal;
        return;
    }
    sa_payload offer;
    offer.proposals.push_back(std::move(p));
    std::vector<payload> ps{offer, nonce_payload{q.ni_b}};
    if (q.pfs != 0) {
        auto kx = ike::crypto::key_exchange::generate(q.pfs);
        if (!kx) {
            ++cnt.dropped;
            return;
        }
        q.kx = std::move(kx.value());
        ps.push_back(ke_payload{q.kx->public_value()});
    }
    ps.push_back(host_id(sa.local, 47, 0));
    ps.push_back(host_id(sa.peer, 47, 0));
    if (sa.behind_nat()) {
        // NAT-OAi / NAT-OAr (RFC 3947 section 5.2): the addresses transport mode's checksums see.
        ps.push_back(nat_oa_payload{id_type::ipv4_addr, be32(sa.local)});
        ps.push_back(nat_oa_payload{id_type::ipv4_addr, be32(sa.peer)});
    }
    const chain rest = serialize_payloads(ps);
    secret h1 = crypto::qm_hash1(sa.hash, sa.keys.skeyid_a.view(), q.mid, rest.data);
    ps.insert(ps.begin(), hash_payload{bytes(h1.data(), h1.data() + h1.size())});
    header h;
    h.spi_i = sa.cky_i;
    h.spi_r = sa.cky_r;
    h.exch = exchange::quick;
    h.message_id = q.mid;
    q.iv = crypto::phase2_iv(sa.hash, sa.encr, sa.iv, q.mid);
    bytes msg = seal(sa, h, ps, q.iv);
    arm(sa.qm_retx, msg, retransmit_tries, now);
    inbound_spis.insert(q.spi);  // reserved until the pair takes it or the exchange ends
    sa.own_qm = std::move(q);
    send(sa, std::move(msg), out);
}

bool engine::impl::own_quick_rx(p1_sa& sa, const message& m, time_point now, outputs& out) {
    if (!sa.own_qm || sa.own_qm->mid != m.hdr.message_id) {
        return false;
    }
    own_quick_mode& q = *sa.own_qm;
    const tunnel_policy* pol = policy(sa.tunnel);
    bytes iv = q.iv;
    auto plain = open(sa, m, iv);
    if (!plain || pol == nullptr) {
        return true;
    }
    auto ch = parse_payloads(m.hdr.next, *plain);
    if (!ch || m.hdr.next != payload_type::hash || ch->payloads.empty()) {
        ++cnt.invalid_syntax;
        return true;
    }
    const auto& hp = std::get<hash_payload>(ch->payloads.front());
    const size_t hlen = first_payload_length(*plain);
    const std::span<const uint8_t> rest(plain->data() + hlen, ch->consumed - hlen);
    secret want = crypto::qm_hash2(sa.hash, sa.keys.skeyid_a.view(), q.mid, q.ni_b, rest);
    if (!ike::crypto::equal(want.view(), hp.data)) {
        ++cnt.auth_failed;
        return true;
    }
    sa.last_rx = now;
    const auto* sp = find_payload<sa_payload>(ch->payloads);
    const auto* nr = find_payload<nonce_payload>(ch->payloads);
    const auto* ke = find_payload<ke_payload>(ch->payloads);
    auto give_up = [&](uint64_t& counter) {
        ++counter;
        drop_own_qm(sa);
        sa.qm_retx = {};
        answered(sa);
    };
    if (sp == nullptr || nr == nullptr || sp->proposals.size() != 1 ||
        sp->proposals[0].transforms.size() != 1 || sp->proposals[0].spi.size() != 4 ||
        (q.pfs != 0) != (ke != nullptr)) {
        give_up(cnt.invalid_syntax);
        return true;
    }
    const proposal& rp = sp->proposals[0];
    const transform& t = rp.transforms[0];
    auto a = [&](uint16_t type) { return attribute_value(t.attributes, type); };
    const uint64_t bits = t.id == esp_transform::aes ? a(p2_attr::key_length).value_or(128) : 0;
    const config::ike_settings::esp_proposal* chosen = nullptr;
    for (const auto& e : pol->ike.esp_proposals) {
        if (e.encr == t.id && e.encr_bits == bits && auth_of(e.integ) != 0 &&
            a(p2_attr::auth_algorithm) == auth_of(e.integ) &&
            a(p2_attr::encapsulation_mode) == q.mode && a(p2_attr::group).value_or(0) == q.pfs) {
            chosen = &e;
            break;
        }
    }
    const uint32_t peer_spi = spi_of(rp.spi);
    if (chosen == nullptr || peer_spi < 256) {
        give_up(cnt.no_proposal);
        return true;
    }
    std::optional<secret> g_qm;
    if (q.pfs != 0) {
        auto g = q.kx->shared_secret(ke->data);
        if (!g) {
            give_up(cnt.invalid_syntax);
            return true;
        }
        g_qm = std::move(g.value());
    }
    uint32_t life = pol->ike.child_lifetime_s;
    if (const uint32_t l =
            life_seconds(t.attributes, p2_attr::sa_life_type, p2_attr::sa_life_duration);
        l != 0) {
        life = std::min(life, l);
    }
    for (const auto& p : ch->payloads) {
        if (const auto* n = std::get_if<notification_payload>(&p);
            n != nullptr && n->type == notify_type::responder_lifetime) {
            const std::vector<attribute> attrs = read_attributes(n->data);
            if (const uint32_t l =
                    life_seconds(attrs, p2_attr::sa_life_type, p2_attr::sa_life_duration);
                l != 0) {
                life = std::min(life, l);
            }
        }
    }
    child_rec rec = new_pair(sa, chosen->encr, chosen->encr_bits, chosen->integ);
    child_sa& c = rec.sa;
    c.inbound.spi = q.spi;
    c.outbound.spi = peer_spi;
    std::optional<ike::crypto::cspan> gv;
    if (g_qm) {
        gv = g_qm->view();
    }
    pair_keys(sa, c, gv, q.ni_b, nr->data);
    // The responder installed its side before QM2 left: our outbound may be used at once.
    if (q.replaces && children.count(*q.replaces) != 0) {
        c.replaces = q.replaces;
    }
    rec.p1 = sa.id;
    rec.encr_v1 = chosen->encr;
    rec.auth_v1 = auth_of(chosen->integ);
    rec.expire_at = now + std::chrono::seconds(life);
    // QM3: HASH(3), chained on QM2.
    secret h3 = crypto::qm_hash3(sa.hash, sa.keys.skeyid_a.view(), q.mid, q.ni_b, nr->data);
    header h;
    h.spi_i = sa.cky_i;
    h.spi_r = sa.cky_r;
    h.exch = exchange::quick;
    h.message_id = q.mid;
    send(sa, seal(sa, h, {hash_payload{bytes(h3.data(), h3.data() + h3.size())}}, iv), out);
    if (key_log) {
        key_log->child(c);
    }
    ++cnt.quick_modes;
    out.requests.emplace_back(install_child{c});
    touch(c.id);
    drop_own_qm(sa);
    index_child(rec);
    children[c.id] = std::move(rec);
    sa.qm_retx = {};
    answered(sa);
    return true;
}

child_rec engine::impl::new_pair(const p1_sa& sa, uint16_t encr, uint16_t encr_bits,
                                 uint16_t integ) {
    child_rec rec;
    child_sa& c = rec.sa;
    c.id = fresh_id();
    c.ike_sa_id = sa.id;
    c.tunnel = sa.tunnel;
    c.profile = sa.profile;
    c.local = sa.local;
    c.peer = sa.peer;
    c.encr = encr;  // ESP transform IDs 3 and 12 are IKEv2's encr IDs too
    c.encr_bits = encr_bits;
    c.integ = integ;
    c.replay_window = 1024;
    if (sa.behind_nat()) {
        c.udp_encap = true;  // ESP in UDP (RFC 3948) between the ports IKE moved to
        c.local_port = sa.local_port;
        c.peer_port = sa.peer_port;
    }
    return rec;
}

void pair_keys(const p1_sa& sa, child_sa& c, std::optional<ike::crypto::cspan> g_qm,
               std::span<const uint8_t> ni_b, std::span<const uint8_t> nr_b) {
    const size_t ek = c.encr == esp_transform::triple_des ? 24 : c.encr_bits / 8u;
    const size_t ak = integ_key_size(c.integ);
    for (esp_keys* k : {&c.inbound, &c.outbound}) {
        const secret km = crypto::keymat(sa.hash, sa.keys.skeyid_d.view(), g_qm, protocol_id::esp,
                                         k->spi, ni_b, nr_b, ek + ak);
        k->cipher_key = km.slice(0, ek);
        k->integ_key = km.slice(ek, ak);
    }
}

void engine::impl::dpd_ack(p1_sa& sa, const notification_payload& n) {
    if (!sa.dpd_retx.armed() || n.data.size() != 4 || spi_of(n.data) != sa.dpd_seq) {
        ++cnt.dropped;
        return;
    }
    ++cnt.dpd_acked;
    sa.dpd_retx = {};
    answered(sa);
}

std::optional<std::string> engine::impl::retransmit_and_dpd(p1_sa& sa, time_point now,
                                                            outputs& out) {
    // Our Main Mode or Quick Mode request, re-sent with back-off.
    for (retransmit* r : {&sa.retx, &sa.qm_retx}) {
        if (!r->armed() || now < r->next) {
            continue;
        }
        if (r->tries >= r->max_tries) {
            return r == &sa.retx ? "Main Mode not answered" : "Quick Mode not answered";
        }
        ++r->tries;
        ++cnt.retransmits;
        r->next = now + retransmit_base * (1u << std::min<uint32_t>(r->tries, 8));
        send(sa, r->msg, out);
    }
    const tunnel_policy* pol = policy(sa.tunnel);
    if (sa.state != p1_state::qm_idle || pol == nullptr || !sa.dpd ||
        pol->ike.dpd_interval_s == 0) {
        return std::nullopt;
    }
    // DPD: R-U-THERE once the peer has been quiet for the interval, then re-sent.
    retransmit& r = sa.dpd_retx;
    const time_point heard = std::max(sa.last_rx, sa.up_at);  // the responder's: MM5
    const bool start = !r.armed() && now - heard >= std::chrono::seconds(pol->ike.dpd_interval_s);
    if (!start && !(r.armed() && now >= r.next)) {
        return std::nullopt;
    }
    if (start) {
        ++sa.dpd_seq;
        arm(r, bytes{1}, std::max<uint32_t>(pol->ike.dpd_retries, 1), now);
    } else if (r.tries >= r.max_tries) {
        ++cnt.dead_peers;
        return "dead peer detected";
    } else {
        ++r.tries;
        ++cnt.retransmits;
        r.next = now + retransmit_base * (1u << std::min<uint32_t>(r.tries, 8));
    }
    notification_payload n;
    n.protocol = protocol_id::isakmp;
    n.spi = cookies(sa);
    n.type = notify_type::r_u_there;
    n.data = be32(sa.dpd_seq);
    ++cnt.dpd_sent;
    send_informational(sa, n, out);
    return std::nullopt;
}

std::optional<time_point> engine::impl::rekey_time(const child_rec& c) const {
    auto sa = sas.find(c.p1);
    if (!c.installed || c.rekeyed || sa == sas.end() || !sa->second->initiator ||
        sa->second->state != p1_state::qm_idle) {
        return std::nullopt;
    }
    // Our pairs near the end of their lifetime: a new Quick Mode replaces them (90%).
    return c.up_at + (c.expire_at - c.up_at) * 9 / 10;
}

void engine::initiate(uint32_t tunnel, uint32_t peer, time_point now, outputs& out) {
    _impl->initiate(tunnel, peer, now, out);
    _impl->arm_touched();
}

}  // namespace dmvpn::ike::v1
