// The IKEv1 engine's dispatch (see v1_engine.hpp): datagrams to their ISAKMP SA and exchange,
// the encrypted send and receive path, timers, the hub's acks. The exchanges live in
// v1_main_mode.cpp, v1_quick_mode.cpp and v1_informational.cpp; show in v1_show.cpp.
#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "control/ike/key_log.hpp"
#include "control/ike/v1_sa.hpp"

namespace dmvpn::ike::v1 {

std::string_view ios_name(p1_state s) noexcept {
    switch (s) {
        case p1_state::mm_sa_setup:
            return "MM_SA_SETUP";
        case p1_state::mm_key_exch:
            return "MM_KEY_EXCH";
        case p1_state::ag_init_exch:
            return "AG_INIT_EXCH";
        case p1_state::qm_idle:
            return "QM_IDLE";
    }
    return "MM_NO_STATE";
}

bytes cookies(const p1_sa& sa) {
    bytes spi = be64(sa.cky_i);
    const bytes r = be64(sa.cky_r);
    spi.insert(spi.end(), r.begin(), r.end());
    return spi;
}

delete_payload isakmp_delete(const p1_sa& sa) {
    delete_payload del;
    del.protocol = protocol_id::isakmp;
    del.spi_size = 16;
    del.spis.push_back(cookies(sa));
    return del;
}

delete_payload esp_delete(uint32_t spi) {
    delete_payload del;
    del.protocol = protocol_id::esp;
    del.spi_size = 4;
    del.spis.push_back(be32(spi));
    return del;
}

size_t first_payload_length(std::span<const uint8_t> chain) {
    return chain.size() < 4 ? 0 : (size_t(chain[2]) << 8) | chain[3];
}

std::span<const uint8_t> raw_body(payload_type first, std::span<const uint8_t> chain,
                                  payload_type type) {
    payload_type cur = first;
    size_t off = 0;
    while (cur != payload_type::none && off + 4 <= chain.size()) {
        const size_t len = first_payload_length(chain.subspan(off));
        if (len < 4 || off + len > chain.size()) {
            return {};
        }
        if (cur == type) {
            return chain.subspan(off + 4, len - 4);
        }
        cur = static_cast<payload_type>(chain[off]);
        off += len;
    }
    return {};
}

// ---- engine::impl ----

const tunnel_policy* engine::impl::policy(uint32_t tunnel) const {
    auto it = tunnels.find(tunnel);
    return it == tunnels.end() ? nullptr : &it->second;
}

p1_sa* engine::impl::find(uint64_t cky_i, uint64_t cky_r) {
    auto it = by_cky_r.find(cky_r);
    if (it == by_cky_r.end()) {
        return nullptr;
    }
    auto sa = sas.find(it->second);
    if (sa == sas.end() || sa->second->cky_i != cky_i) {
        return nullptr;
    }
    touch(sa->first);
    return sa->second.get();
}

void engine::impl::send(const p1_sa& sa, bytes payload, outputs& out) {
    datagram d;
    d.src = sa.local;
    d.dst = sa.peer;
    d.sport = sa.local_port;
    d.dport = sa.peer_port;
    d.tunnel = sa.tunnel;
    d.payload = std::move(payload);
    ++cnt.tx;
    out.send.push_back(std::move(d));
}

void engine::impl::notify_plain(const datagram& d, uint64_t cky_i, uint64_t cky_r, uint16_t type,
                                time_point now, outputs& out) {
    if (now - notify_window >= std::chrono::seconds(1)) {
        notify_window = now;
        notifies_in_window = 0;
    }
    if (++notifies_in_window > 10) {
        return;
    }
    message m;
    m.hdr.spi_i = cky_i;
    m.hdr.spi_r = cky_r;
    m.hdr.exch = exchange::informational;
    const bytes mid = random_bytes(4);
    m.hdr.message_id =
        (uint32_t(mid[0]) << 24) | (uint32_t(mid[1]) << 16) | (uint32_t(mid[2]) << 8) | mid[3];
    notification_payload n;
    n.protocol = protocol_id::isakmp;
    n.type = type;
    m.payloads.push_back(n);
    datagram r;
    r.src = d.dst;
    r.dst = d.src;
    r.sport = d.dport;
    r.dport = d.sport;
    r.tunnel = d.tunnel;
    r.payload = serialize(m);
    ++cnt.tx;
    ++cnt.notifies_tx;
    out.send.push_back(std::move(r));
}

bytes engine::impl::seal(const p1_sa& sa, header hdr, const std::vector<payload>& payloads,
                         bytes& iv) {
    chain c = serialize_payloads(payloads);
    auto body = crypto::encrypt(sa.encr, sa.keys.enc_key.view(), iv, c.data);
    std::fill(c.data.begin(), c.data.end(), 0);
    message m;
    m.hdr = hdr;
    m.hdr.flags |= header_flag::encryption;
    m.hdr.next = c.first;
    m.encrypted = body ? std::move(body.value()) : bytes{};
    return serialize(m);
}

std::optional<bytes> engine::impl::open(const p1_sa& sa, const message& m, bytes& iv) {
    bytes next_iv = iv;
    auto plain = crypto::decrypt(sa.encr, sa.keys.enc_key.view(), next_iv, m.encrypted);
    if (!plain) {
        ++cnt.dropped;
        return std::nullopt;
    }
    iv = std::move(next_iv);
    return std::move(plain.value());
}

std::optional<chain_prefix> engine::impl::open_hashed(const p1_sa& sa, const message& m,
                                                      bytes& iv) {
    auto plain = open(sa, m, iv);
    if (!plain) {
        return std::nullopt;
    }
    auto chain = parse_payloads(m.hdr.next, *plain);
    if (!chain || m.hdr.next != payload_type::hash || chain->payloads.empty()) {
        ++cnt.invalid_syntax;
        return std::nullopt;
    }
    const auto& h = std::get<hash_payload>(chain->payloads.front());
    const size_t hlen = first_payload_length(*plain);
    const std::span<const uint8_t> rest(plain->data() + hlen, chain->consumed - hlen);
    secret want = crypto::qm_hash1(sa.hash, sa.keys.skeyid_a.view(), m.hdr.message_id, rest);
    if (!ike::crypto::equal(want.view(), h.data)) {
        ++cnt.auth_failed;
        return std::nullopt;
    }
    return std::move(chain.value());
}

void engine::impl::send_informational(p1_sa& sa, const payload& p, outputs& out) {
    header h;
    h.spi_i = sa.cky_i;
    h.spi_r = sa.cky_r;
    h.exch = exchange::informational;
    const bytes r = random_bytes(4);
    h.message_id = (uint32_t(r[0]) << 24) | (uint32_t(r[1]) << 16) | (uint32_t(r[2]) << 8) | r[3];
    const chain rest = serialize_payloads({p});
    secret hv = crypto::qm_hash1(sa.hash, sa.keys.skeyid_a.view(), h.message_id, rest.data);
    bytes iv = crypto::phase2_iv(sa.hash, sa.encr, sa.iv, h.message_id);
    send(sa, seal(sa, h, {hash_payload{bytes(hv.data(), hv.data() + hv.size())}, p}, iv), out);
}

uint32_t engine::impl::fresh_spi() const {
    for (;;) {
        const bytes r = random_bytes(4);
        uint32_t spi =
            (uint32_t(r[0]) << 24) | (uint32_t(r[1]) << 16) | (uint32_t(r[2]) << 8) | r[3];
        if (spi < 256) {
            continue;  // 1..255 are reserved (RFC 4303 section 2.1)
        }
        if (inbound_spis.count(spi) == 0) {
            return spi;
        }
    }
}

namespace {

void unindex(std::unordered_multimap<uint64_t, uint64_t>& index, uint64_t key, uint64_t id) {
    auto [b, e] = index.equal_range(key);
    for (auto i = b; i != e; ++i) {
        if (i->second == id) {
            index.erase(i);
            return;
        }
    }
}

std::vector<uint64_t> ids_under(const std::unordered_multimap<uint64_t, uint64_t>& index,
                                uint64_t key) {
    std::vector<uint64_t> ids;
    auto [b, e] = index.equal_range(key);
    for (auto i = b; i != e; ++i) {
        ids.push_back(i->second);
    }
    std::sort(ids.begin(), ids.end());
    return ids;
}

}  // namespace

void engine::impl::index_sa(p1_sa& sa) {
    sa.indexed_as = peer_key(sa.peer, sa.tunnel);
    sas_by_peer.emplace(sa.indexed_as, sa.id);
}

void engine::impl::unindex_sa(p1_sa& sa) {
    unindex(sas_by_peer, sa.indexed_as, sa.id);
    drop_own_qm(sa);
}

void engine::impl::drop_own_qm(p1_sa& sa) {
    if (!sa.own_qm) {
        return;
    }
    if (auto s = inbound_spis.find(sa.own_qm->spi); s != inbound_spis.end()) {
        inbound_spis.erase(s);
    }
    sa.own_qm.reset();
}

void engine::impl::index_child(child_rec& c) {
    c.indexed_as = peer_key(c.sa.peer, c.sa.tunnel);
    children_by_peer.emplace(c.indexed_as, c.sa.id);
    inbound_spis.insert(c.sa.inbound.spi);
}

void engine::impl::unindex_child(const child_rec& c) {
    unindex(children_by_peer, c.indexed_as, c.sa.id);
    if (auto s = inbound_spis.find(c.sa.inbound.spi); s != inbound_spis.end()) {
        inbound_spis.erase(s);
    }
}

std::vector<uint64_t> engine::impl::sas_of(uint32_t peer, uint32_t tunnel) const {
    std::vector<uint64_t> ids = ids_under(sas_by_peer, peer_key(peer, tunnel));
    // clear() zeroes a cleared SA's peer (no heir among them) before forgetting it.
    std::erase_if(ids, [&](uint64_t id) {
        const p1_sa& sa = *sas.at(id);
        return sa.peer != peer || sa.tunnel != tunnel;
    });
    return ids;
}

std::vector<uint64_t> engine::impl::children_of(uint64_t key) const {
    return ids_under(children_by_peer, key);
}

void engine::impl::remove_child(uint64_t child_id, std::string why, outputs& out) {
    auto it = children.find(child_id);
    if (it == children.end()) {
        return;
    }
    out.requests.emplace_back(ike::remove_child{child_id, std::move(why)});
    unindex_child(it->second);
    children.erase(it);
}

// Drops an ISAKMP SA. Its IPsec SAs go with it unless another authenticated ISAKMP SA with the
// same peer (a re-authentication) takes them over; peer_down only when none is left.
void engine::impl::forget(uint64_t id, std::string why, bool tell_hub, outputs& out) {
    auto it = sas.find(id);
    if (it == sas.end()) {
        return;
    }
    p1_sa& sa = *it->second;
    if (sa.state != p1_state::qm_idle && half_open > 0) {
        --half_open;
    }
    uint64_t heir = 0;
    for (uint64_t oid : sas_of(sa.peer, sa.tunnel)) {
        if (oid != id && sas.at(oid)->state == p1_state::qm_idle) {
            heir = oid;
        }
    }
    const bool was_up = sa.state == p1_state::qm_idle;
    std::vector<uint64_t> gone;
    // Its pairs were kept under the key it was (clear() may have zeroed its peer since).
    for (uint64_t cid : children_of(sa.indexed_as)) {
        child_rec& c = children.at(cid);
        if (c.p1 == id) {
            if (heir != 0) {
                c.p1 = heir;
                c.sa.ike_sa_id = heir;
                touch(cid);  // the heir may be ours to rekey it
            } else {
                gone.push_back(cid);
            }
        }
    }
    for (uint64_t cid : gone) {
        remove_child(cid, why, out);
    }
    if (tell_hub && was_up && heir == 0) {
        out.requests.emplace_back(peer_down{id, sa.tunnel, sa.peer, why});
    } else if (tell_hub && !was_up && sa.initiator) {
        out.requests.emplace_back(initiation_failed{sa.tunnel, sa.peer, why});
    }
    if (sa.initiator) {
        by_own_cky_i.erase(sa.cky_i);
    } else {
        by_cky_r.erase(sa.cky_r);
    }
    // Filed under the peer's address when kept (clear() may have zeroed sa.peer since: its
    // entry would stay and a retransmitted MM1 with that cookie would find a forgotten SA).
    const uint32_t filed_peer = uint32_t(sa.indexed_as >> 32);
    if (auto i = by_cky_i.find({sa.cky_i, filed_peer}); i != by_cky_i.end() && i->second == id) {
        by_cky_i.erase(i);
    }
    unindex_sa(sa);
    sas.erase(it);
}

// ---- engine ----

engine::engine(std::unique_ptr<impl> i) : _impl(std::move(i)) {}
engine::~engine() = default;

wire::result<std::unique_ptr<engine>, std::string> engine::create(
    const std::vector<config::ipsec_profile>& profiles, std::vector<tunnel_binding> tunnels) {
    auto e = std::unique_ptr<engine>(new engine(std::make_unique<impl>()));
    if (auto err = e->reconfigure(profiles, std::move(tunnels)); err) {
        return wire::fail(*err);
    }
    return e;
}

std::optional<std::string> engine::reconfigure(const std::vector<config::ipsec_profile>& profiles,
                                               std::vector<tunnel_binding> tunnels) {
    std::map<uint32_t, tunnel_policy> next;
    std::map<std::string, std::shared_ptr<const ike::detail::profile_state>> signing;
    for (const tunnel_binding& b : tunnels) {
        auto p = std::find_if(profiles.begin(), profiles.end(),
                              [&](const auto& x) { return x.name == b.profile; });
        if (p == profiles.end() || !p->ike || !p->ike->speaks_v1()) {
            continue;
        }
        for (const auto& pol : p->ike->isakmp_policies) {
            if (!crypto::supported_cipher(pol.encryption, pol.key_bits) ||
                !crypto::supported_hash(pol.hash) || !ike::crypto::supported_group(pol.group)) {
                return fmt::format("profile {}: an ISAKMP policy the engine cannot speak", p->name);
            }
        }
        tunnel_policy tp{b, *p->ike, nullptr};
        if (p->ike->auth == config::ike_auth::certificate) {
            auto& s = signing[p->name];
            if (s == nullptr) {
                auto loaded = load_signing(*p);
                if (!loaded) {
                    return loaded.error();
                }
                s = std::move(*loaded);
            }
            tp.signing = s;
        }
        next[b.tunnel] = std::move(tp);
    }
    _impl->tunnels = std::move(next);
    // DPD and NAT keepalive intervals may have shortened: every deadline looked at again.
    for (const auto& [id, sa] : _impl->sas) {
        _impl->touch(id);
    }
    for (const auto& [id, c] : _impl->children) {
        _impl->touch(id);
    }
    _impl->arm_touched();
    return std::nullopt;
}

const engine_counters& engine::counters() const noexcept { return _impl->cnt; }

void engine::set_key_log(std::shared_ptr<keylog::writer> w) { _impl->key_log = std::move(w); }

std::string engine::index_errors() const {
    const impl& im = *_impl;
    using filed = std::multiset<std::pair<uint64_t, uint64_t>>;  // (peer_key, id)
    filed sas, children;
    std::multiset<uint32_t> spis;
    for (const auto& [id, sa] : im.sas) {
        if (sa->indexed_as != peer_key(sa->peer, sa->tunnel)) {
            return fmt::format("ISAKMP SA {} filed under {:x}, its peer and tunnel are {:x}", id,
                               sa->indexed_as, peer_key(sa->peer, sa->tunnel));
        }
        sas.emplace(sa->indexed_as, id);
        if (sa->own_qm) {
            spis.insert(sa->own_qm->spi);
        }
    }
    for (const auto& [id, c] : im.children) {
        if (c.indexed_as != peer_key(c.sa.peer, c.sa.tunnel)) {
            return fmt::format("pair {} filed under {:x}, its peer and tunnel are {:x}", id,
                               c.indexed_as, peer_key(c.sa.peer, c.sa.tunnel));
        }
        children.emplace(c.indexed_as, id);
        spis.insert(c.sa.inbound.spi);
    }
    if (filed(im.sas_by_peer.begin(), im.sas_by_peer.end()) != sas) {
        return fmt::format("sas_by_peer holds {} entries, {} ISAKMP SAs", im.sas_by_peer.size(),
                           sas.size());
    }
    if (filed(im.children_by_peer.begin(), im.children_by_peer.end()) != children) {
        return fmt::format("children_by_peer holds {} entries, {} pairs",
                           im.children_by_peer.size(), children.size());
    }
    // The cookie maps name SAs that are there, with that cookie.
    auto named = [&](uint64_t id, uint64_t cky, bool initiator_cookie) {
        auto sa = im.sas.find(id);
        return sa != im.sas.end() &&
               (initiator_cookie ? sa->second->cky_i : sa->second->cky_r) == cky;
    };
    for (const auto& [k, id] : im.by_cky_i) {
        if (!named(id, k.first, true)) {
            return fmt::format("by_cky_i names {}, not an SA with that cookie", id);
        }
    }
    for (const auto& [cky, id] : im.by_cky_r) {
        if (!named(id, cky, false)) {
            return fmt::format("by_cky_r names {}, not an SA with that cookie", id);
        }
    }
    for (const auto& [cky, id] : im.by_own_cky_i) {
        if (!named(id, cky, true)) {
            return fmt::format("by_own_cky_i names {}, not an SA with that cookie", id);
        }
    }
    if (std::multiset<uint32_t>(im.inbound_spis.begin(), im.inbound_spis.end()) != spis) {
        return fmt::format("inbound_spis holds {} SPIs, the pairs and pending Quick Modes {}",
                           im.inbound_spis.size(), spis.size());
    }
    return {};
}

namespace {

void receive(engine::impl& im, const datagram& d, time_point now, outputs& out) {
    im.last_now = now;
    ++im.cnt.rx;
    if (d.payload.size() == 1 && d.payload[0] == 0xff) {
        return;  // NAT keepalive (RFC 3948 section 2.3)
    }
    const tunnel_policy* pol = im.policy(d.tunnel);
    auto parsed = parse(d.payload);
    if (pol == nullptr || !parsed) {
        ++im.cnt.dropped;
        if (parsed) {
            return;
        }
        ++im.cnt.invalid_syntax;
        return;
    }
    const message& m = parsed.value();
    if (im.initiator_rx(d, m, now, out)) {
        return;  // an answer to our own Main Mode
    }
    switch (m.hdr.exch) {
        case exchange::identity_protection:
            im.main_mode(d, m, now, out);
            return;
        case exchange::aggressive:
            if (pol->ike.aggressive_mode) {
                im.aggressive_mode(d, m, now, out);
                return;
            }
            // Aggressive Mode sends the PSK's hash to anyone who asks: refused unless the
            // profile says `aggressive-mode: true` (counted).
            ++im.cnt.aggressive_refused;
            im.notify_plain(d, m.hdr.spi_i, m.hdr.spi_r, notify_type::invalid_exchange_type, now,
                            out);
            return;
        case exchange::quick:
        case exchange::informational: {
            p1_sa* sa = im.find_own(d, m);
            sa = sa != nullptr ? sa : im.find(m.hdr.spi_i, m.hdr.spi_r);
            if (sa == nullptr || sa->state != p1_state::qm_idle || !m.hdr.encrypted()) {
                ++im.cnt.dropped;
                return;
            }
            if (sa->peer != d.src) {
                ++im.cnt.dropped;
                return;
            }
            sa->peer_port = d.sport;
            sa->local_port = d.dport;
            if (m.hdr.exch == exchange::quick) {
                if (im.own_quick_rx(*sa, m, now, out)) {
                    return;
                }
                im.quick_mode_rx(*sa, d, m, now, out);
            } else {
                im.informational(*sa, m, now, out);
            }
            return;
        }
        default:
            ++im.cnt.exchange_refused;
            im.notify_plain(d, m.hdr.spi_i, m.hdr.spi_r, notify_type::invalid_exchange_type, now,
                            out);
            return;
    }
}

}  // namespace

void engine::on_datagram(const datagram& d, time_point now, outputs& out) {
    receive(*_impl, d, now, out);
    _impl->arm_touched();
}

void engine::tick(time_point now, outputs& out) {
    _impl->last_now = now;
    _impl->run_timers(now, out);
}

// ---- timers ----

std::optional<time_point> engine::impl::next_deadline(const p1_sa& sa) const {
    // Mirrors sa_timers(): each condition it acts on, as the time it becomes true.
    std::optional<time_point> best;
    auto at = [&best](time_point t) {
        if (!best || t < *best) {
            best = t;
        }
    };
    for (const auto& [mid, q] : sa.quick) {
        if (q.answered) {
            at(q.started + quick_mode_linger);
        }
    }
    if (sa.state != p1_state::qm_idle && !sa.initiator) {
        at(sa.created + half_open_lifetime);
    }
    for (const retransmit* r : {&sa.retx, &sa.qm_retx}) {
        if (r->armed()) {
            at(r->next);
        }
    }
    if (sa.state != p1_state::qm_idle) {
        return best;
    }
    at(sa.expire_at);
    const tunnel_policy* pol = policy(sa.tunnel);
    if (pol == nullptr) {
        return best;
    }
    if (sa.dpd && pol->ike.dpd_interval_s > 0) {
        at(sa.dpd_retx.armed()
               ? sa.dpd_retx.next
               : std::max(sa.last_rx, sa.up_at) + std::chrono::seconds(pol->ike.dpd_interval_s));
    }
    if (sa.nat_local && pol->ike.nat_keepalive_s > 0) {
        at(sa.keepalive_at);
    }
    return best;
}

std::optional<time_point> engine::impl::next_deadline(const child_rec& c) const {
    if (!c.installed) {
        return std::nullopt;  // installed() arms it
    }
    time_point best = c.expire_at;
    if (auto r = rekey_time(c)) {
        // Our Quick Mode of the SA still under way: the rekey waits for it (looked at again
        // each second).
        auto sa = sas.find(c.p1);
        const bool busy = sa != sas.end() && sa->second->own_qm.has_value();
        best = std::min(best, busy ? std::max(*r, last_now + std::chrono::seconds(1)) : *r);
    }
    return best;
}

void engine::impl::sa_timers(p1_sa& sa, time_point now, outputs& out) {
    const uint64_t id = sa.id;
    // Quick Modes whose QM3 never came: the pair stays (the peer may use it), the exchange goes.
    std::erase_if(sa.quick, [&](const auto& q) {
        return q.second.answered && now - q.second.started > quick_mode_linger;
    });
    if (sa.state != p1_state::qm_idle && !sa.initiator && now - sa.created > half_open_lifetime) {
        ++cnt.phase1_failed;
        forget(id, "Main Mode did not complete", false, out);
        return;
    }
    if (sa.state == p1_state::qm_idle && now >= sa.expire_at) {
        send_informational(sa, isakmp_delete(sa), out);
        forget(id, "ISAKMP SA lifetime expired", true, out);
        return;
    }
    if (auto dead = retransmit_and_dpd(sa, now, out)) {
        if (sa.state != p1_state::qm_idle) {
            ++cnt.phase1_failed;
        }
        forget(id, *dead, true, out);
        return;
    }
    // NAT keepalives keep the mapping of our UDP 4500 open between packets: sent only when
    // the NAT is in front of us (RFC 3948 section 2.3; the IKEv2 engine does the same).
    const tunnel_policy* pol = policy(sa.tunnel);
    if (sa.state != p1_state::qm_idle || !sa.nat_local || pol == nullptr ||
        pol->ike.nat_keepalive_s == 0 || now < sa.keepalive_at) {
        return;
    }
    const bool first = sa.keepalive_at == time_point{};  // the first one an interval on
    sa.keepalive_at = now + std::chrono::seconds(pol->ike.nat_keepalive_s);
    if (first) {
        return;
    }
    ++cnt.nat_keepalives_tx;
    send(sa, bytes{0xff}, out);
}

void engine::impl::pair_timers(uint64_t child_id, time_point now, outputs& out) {
    child_rec& c = children[child_id];
    auto sa = sas.find(c.p1);
    if (auto r = rekey_time(c); r && now >= *r && !sa->second->own_qm) {
        c.rekeyed = true;
        start_quick(*sa->second, child_id, now, out);
    }
    auto it = children.find(child_id);
    if (it != children.end() && it->second.installed && now >= it->second.expire_at) {
        expire_child(child_id, "IPsec SA lifetime expired", out);
    }
}

void engine::impl::arm_touched() {
    for (uint64_t id : touched) {
        if (auto sa = sas.find(id); sa != sas.end()) {
            if (auto when = next_deadline(*sa->second)) {
                ike::detail::arm_timer(wheel, id, sa->second->timer_tick, *when);
            }
        } else if (auto c = children.find(id); c != children.end()) {
            if (auto when = next_deadline(c->second)) {
                ike::detail::arm_timer(wheel, id, c->second.timer_tick, *when);
            }
        }  // else gone: its entries are dropped when due
    }
    touched.clear();
}

void engine::impl::run_timers(time_point now, outputs& out) {
    ike::detail::collect_due(
        wheel, now,
        [this](uint64_t id) -> uint64_t* {
            if (auto sa = sas.find(id); sa != sas.end()) {
                return &sa->second->timer_tick;
            }
            auto c = children.find(id);
            return c == children.end() ? nullptr : &c->second.timer_tick;
        },
        due);
    // Run after the walk, so that what they arm lands in the next tick, never this one.
    for (uint64_t id : due) {
        if (auto sa = sas.find(id); sa != sas.end()) {
            ++cnt.timer_runs;
            sa_timers(*sa->second, now, out);
        } else if (children.count(id) != 0) {
            ++cnt.timer_runs;
            pair_timers(id, now, out);
        } else {
            continue;
        }
        touch(id);  // its next deadline (nothing when it is gone)
    }
    due.clear();
    arm_touched();
}

void engine::impl::expire_child(uint64_t child_id, std::string why, outputs& out) {
    child_rec& c = children[child_id];
    auto sa = sas.find(c.p1);
    if (sa != sas.end() && sa->second->state == p1_state::qm_idle) {
        send_informational(*sa->second, esp_delete(c.sa.inbound.spi), out);
    }
    remove_child(child_id, std::move(why), out);
}

void engine::usage(const std::vector<child_usage>& u, time_point now, outputs& out) {
    impl& im = *_impl;
    im.last_now = now;
    std::vector<uint64_t> spent;
    for (const child_usage& x : u) {
        auto it = im.children.find(x.id);
        if (it == im.children.end() || !it->second.installed) {
            continue;
        }
        child_rec& c = it->second;
        c.in_bytes = x.in_bytes;
        c.out_bytes = x.out_bytes;
        c.in_packets = x.in_packets;
        c.out_packets = x.out_packets;
        if (c.life_bytes != 0 && std::max(c.in_bytes, c.out_bytes) >= c.life_bytes) {
            spent.push_back(x.id);
        }
    }
    for (uint64_t cid : spent) {
        im.expire_child(cid, "IPsec SA kilobyte lifetime spent", out);
    }
}

void engine::installed(uint64_t child_id, time_point now, outputs& out) {
    impl& im = *_impl;
    auto c = im.children.find(child_id);
    if (c == im.children.end()) {
        return;
    }
    c->second.installed = true;
    c->second.up_at = now;
    im.touch(child_id);
    if (auto sa = im.sas.find(c->second.p1); sa != im.sas.end()) {
        im.touch(sa->first);  // its Quick Mode answered: dropped a while on
        for (auto& [mid, qm] : sa->second->quick) {
            if (qm.child_id == child_id && !qm.answered) {
                qm.answered = true;
                im.send(*sa->second, qm.response, out);
            }
        }
        if (!c->second.sa.replaces) {  // a first pair: two ISAKMP SAs with the peer, one goes
            im.drop_duplicate(c->second.sa.peer, c->second.sa.tunnel, out);
        }
    }
    im.arm_touched();
}

void engine::install_failed(uint64_t child_id, std::string why, time_point, outputs& out) {
    impl& im = *_impl;
    auto c = im.children.find(child_id);
    if (c == im.children.end()) {
        return;
    }
    auto sa = im.sas.find(c->second.p1);
    if (sa != im.sas.end()) {
        std::erase_if(sa->second->quick,
                      [&](const auto& q) { return q.second.child_id == child_id; });
    }
    im.unindex_child(c->second);
    im.children.erase(c);  // never installed: nothing for the hub to remove
    (void)why;
    (void)out;
}

void engine::clear(uint32_t peer, time_point, outputs& out) {
    impl& im = *_impl;
    std::vector<uint64_t> ids;
    for (const auto& [id, sa] : im.sas) {
        if (peer == 0 || sa->peer == peer) {
            ids.push_back(id);
        }
    }
    for (uint64_t id : ids) {
        p1_sa& sa = *im.sas[id];
        if (sa.state == p1_state::qm_idle) {
            for (const auto& [cid, c] : im.children) {
                if (c.p1 == id) {
                    im.send_informational(sa, esp_delete(c.sa.inbound.spi), out);
                }
            }
            im.send_informational(sa, isakmp_delete(sa), out);
        }
    }
    // Every ISAKMP SA of the peer goes: none inherits the IPsec SAs.
    struct gone {
        uint64_t id;
        uint32_t tunnel, peer;
        bool up;
    };
    std::vector<gone> all;
    for (uint64_t id : ids) {
        p1_sa& sa = *im.sas[id];
        all.push_back({id, sa.tunnel, sa.peer, sa.state == p1_state::qm_idle});
        sa.peer = 0;  // no heir among the cleared ones
    }
    for (const gone& g : all) {
        im.forget(g.id, "clear crypto sa", false, out);
        if (g.up) {
            out.requests.emplace_back(peer_down{g.id, g.tunnel, g.peer, "clear crypto sa"});
        }
    }
}

}  // namespace dmvpn::ike::v1
