// CHILD_SAs (RFC 7296 sections 1.3, 2.9, 2.17, 2.18): ESP transport mode for GRE between the
// two NBMA addresses, their keys, lifetimes and rekeying (make-before-break), and the IKE SA
// rekey that moves them to new keys.
#include "control/ike/ike_sa.hpp"
#include "control/ike/key_log.hpp"

namespace dmvpn::ike {

using namespace detail;

namespace detail {

ts_payload host_ts(uint32_t addr) {
    traffic_selector t;
    t.type = ts_type::ipv4_addr_range;
    t.ip_protocol = 47;
    t.start_port = 0;
    t.end_port = 65535;
    t.start_address = be32(addr);
    t.end_address = be32(addr);
    return ts_payload{{t}};
}

namespace {

bool covers(const traffic_selector& t, uint32_t addr, bool any_address) {
    if (t.type != ts_type::ipv4_addr_range || (t.ip_protocol != 0 && t.ip_protocol != 47) ||
        t.start_address.size() != 4 || t.end_address.size() != 4) {
        return false;
    }
    return any_address || (read32(t.start_address) <= addr && addr <= read32(t.end_address));
}

// The selector narrowed to one host and GRE; behind a NAT the peer names its private address,
// which stays what it said (RFC 7296 section 2.23.1 leaves transport mode selectors to the
// implementation; the workers match the outer addresses).
std::optional<ts_payload> narrow(const ts_payload& ts, uint32_t addr, bool natted) {
    for (const auto& t : ts.selectors) {
        if (covers(t, addr, natted)) {
            uint32_t a =
                natted && !(read32(t.start_address) <= addr && addr <= read32(t.end_address))
                    ? read32(t.start_address)
                    : addr;
            return host_ts(a);
        }
    }
    return std::nullopt;
}

}  // namespace

std::optional<ts_choice> narrow_ts(const ts_payload& tsi, const ts_payload& tsr,
                                   uint32_t initiator_addr, uint32_t responder_addr,
                                   bool initiator_natted, bool responder_natted) {
    auto i = narrow(tsi, initiator_addr, initiator_natted);
    auto r = narrow(tsr, responder_addr, responder_natted);
    if (!i || !r) {
        return std::nullopt;
    }
    return ts_choice{std::move(*i), std::move(*r)};
}

void fill_child_keys(child_sa& c, bool we_initiated, const crypto::secret& keymat) {
    size_t ek = esp_key_bytes(c.encr, c.encr_bits);
    size_t ik = esp_integ_bytes(c.integ);
    esp_keys i_to_r, r_to_i;
    i_to_r.cipher_key = keymat.slice(0, ek);
    i_to_r.integ_key = keymat.slice(ek, ik);
    r_to_i.cipher_key = keymat.slice(ek + ik, ek);
    r_to_i.integ_key = keymat.slice(ek + ik + ek, ik);
    uint32_t in_spi = c.inbound.spi, out_spi = c.outbound.spi;
    c.outbound = we_initiated ? std::move(i_to_r) : std::move(r_to_i);
    c.inbound = we_initiated ? std::move(r_to_i) : std::move(i_to_r);
    c.inbound.spi = in_spi;
    c.outbound.spi = out_spi;
}

}  // namespace detail

namespace {

child_sa child_from(const ike_sa& sa, const profile_state& p, const esp_selection& sel,
                    uint32_t our_spi) {
    child_sa c;
    c.ike_sa_id = sa.id;
    c.tunnel = sa.tunnel;
    c.profile = sa.profile;
    c.local = sa.local;
    c.peer = sa.peer;
    c.udp_encap = sa.nat_local || sa.nat_peer;
    c.local_port = 4500;
    c.peer_port = c.udp_encap ? sa.peer_port : uint16_t(4500);
    c.encr = sel.encr;
    c.encr_bits = sel.encr_bits;
    c.integ = sel.integ;
    c.esn = sel.esn;
    c.inbound.spi = our_spi;
    c.outbound.spi = sel.peer_spi;
    c.hard_bytes = p.settings.child_lifetime_bytes;
    c.hard_packets = p.settings.child_lifetime_packets;
    c.replay_window = p.replay_window;
    return c;
}

size_t keymat_size(const child_sa& c) {
    return 2 * (esp_key_bytes(c.encr, c.encr_bits) + esp_integ_bytes(c.integ));
}

// The CHILD_SA both ends agreed on, with its keys: KEYMAT = prf+(SK_d, [g^ir |] Ni | Nr)
// (RFC 7296 sections 2.17 and 1.3.1), the initiator's direction first.
child_sa keyed_child(const ike_sa& sa, const profile_state& p, const esp_selection& sel,
                     uint32_t our_spi, const std::optional<crypto::secret>& gir,
                     std::span<const uint8_t> ni, std::span<const uint8_t> nr, bool we_initiated) {
    child_sa cs = child_from(sa, p, sel, our_spi);
    std::optional<crypto::cspan> g;
    if (gir) {
        g = gir->view();
    }
    fill_child_keys(
        cs, we_initiated,
        crypto::child_keymat(sa.suite.prf, sa.keys.sk_d.view(), g, ni, nr, keymat_size(cs)));
    return cs;
}

}  // namespace

std::optional<child_sa> engine::impl::negotiate_child(ike_sa& sa, const std::vector<payload>& in,
                                                      std::span<const uint8_t> ni,
                                                      std::span<const uint8_t> nr,
                                                      bool create_child,
                                                      std::vector<payload>& reply) {
    const profile_state* prof = profile_of(sa);
    const auto* sa_p = find_payload<sa_payload>(in);
    const auto* tsi = find_payload<ts_payload_i>(in);
    const auto* tsr = find_payload<ts_payload_r>(in);
    const auto* ke = create_child ? find_payload<ke_payload>(in) : nullptr;
    if (prof == nullptr || sa_p == nullptr || tsi == nullptr || tsr == nullptr) {
        ++c.invalid_syntax;
        reply.emplace_back(notify(notify_type::invalid_syntax));
        return std::nullopt;
    }
    if (find_notify(in, notify_type::use_transport_mode) == nullptr) {
        // Tunnel mode is not what DMVPN runs: refused (section 1.3.1).
        ++c.no_proposal;
        reply.emplace_back(notify(notify_type::no_proposal_chosen));
        return std::nullopt;
    }
    uint32_t spi = new_child_spi();
    auto sel = select_esp(prof->settings, *sa_p, spi,
                          ke != nullptr ? std::optional<uint16_t>(ke->group) : std::nullopt);
    if (!sel && ke != nullptr) {
        // The KE group is not one the chosen proposal allows: ask for the one we want.
        auto any =
            select_esp(prof->settings, *sa_p, spi, prof->settings.pfs_group.value_or(ke->group));
        if (any) {
            ++c.invalid_ke;
            reply.emplace_back(notify(notify_type::invalid_ke_payload,
                                      bytes{uint8_t(any->dh >> 8), uint8_t(any->dh)}));
            return std::nullopt;
        }
    }
    if (!sel) {
        ++c.no_proposal;
        reply.emplace_back(notify(notify_type::no_proposal_chosen));
        return std::nullopt;
    }
    auto ts = narrow_ts(*tsi, *tsr, sa.peer, sa.local, sa.nat_peer, sa.nat_local);
    if (!ts) {
        ++c.ts_unacceptable;
        reply.emplace_back(notify(notify_type::ts_unacceptable));
        return std::nullopt;
    }
    std::optional<crypto::secret> gir;
    bytes ker;
    if (ke != nullptr) {
        auto dh = crypto::key_exchange::generate(ke->group);
        if (!dh) {
            ++c.no_proposal;
            reply.emplace_back(notify(notify_type::no_proposal_chosen));
            return std::nullopt;
        }
        auto g = (*dh)->shared_secret(ke->data);
        if (!g) {
            ++c.invalid_syntax;
            reply.emplace_back(notify(notify_type::invalid_syntax));
            return std::nullopt;
        }
        gir = std::move(*g);
        ker = (*dh)->public_value();
    }
    child_sa cs = keyed_child(sa, *prof, *sel, spi, gir, ni, nr, false);
    reply.emplace_back(sa_payload{{sel->chosen}});
    if (create_child) {
        reply.emplace_back(nonce_payload{bytes(nr.begin(), nr.end())});
        if (ke != nullptr) {
            reply.emplace_back(ke_payload{ke->group, std::move(ker)});
        }
    }
    reply.emplace_back(ts_payload_i{std::move(ts->tsi)});
    reply.emplace_back(ts_payload_r{std::move(ts->tsr)});
    reply.emplace_back(notify(notify_type::use_transport_mode));
    return cs;
}

std::optional<child_sa> engine::impl::accept_child(ike_sa& sa, const std::vector<payload>& in,
                                                   uint32_t our_spi, std::span<const uint8_t> ni,
                                                   std::span<const uint8_t> nr,
                                                   const crypto::key_exchange* dh) {
    const profile_state* prof = profile_of(sa);
    const auto* sa_p = find_payload<sa_payload>(in);
    const auto* tsi = find_payload<ts_payload_i>(in);
    const auto* tsr = find_payload<ts_payload_r>(in);
    const auto* ke = find_payload<ke_payload>(in);
    if (prof == nullptr || sa_p == nullptr || tsi == nullptr || tsr == nullptr ||
        sa_p->proposals.size() != 1 || error_notify(in) != 0) {
        return std::nullopt;
    }
    if (find_notify(in, notify_type::use_transport_mode) == nullptr) {
        ++c.no_proposal;
        return std::nullopt;
    }
    if ((dh != nullptr) != (ke != nullptr) || (ke != nullptr && ke->group != dh->group())) {
        ++c.no_proposal;
        return std::nullopt;
    }
    auto sel = select_esp(prof->settings, *sa_p, our_spi,
                          ke != nullptr ? std::optional<uint16_t>(ke->group) : std::nullopt);
    // What the responder chose must name one transform of each kind.
    size_t encrs = 0, esns = 0;
    for (const auto& t : sa_p->proposals.front().transforms) {
        encrs += t.type == transform_type::encr;
        esns += t.type == transform_type::esn;
    }
    auto ts = narrow_ts(*tsi, *tsr, sa.local, sa.peer, sa.nat_local, sa.nat_peer);
    if (!sel || encrs != 1 || esns > 1 || !ts) {
        ++c.no_proposal;
        return std::nullopt;
    }
    std::optional<crypto::secret> gir;
    if (ke != nullptr) {
        auto g = dh->shared_secret(ke->data);
        if (!g) {
            return std::nullopt;
        }
        gir = std::move(*g);
    }
    return keyed_child(sa, *prof, *sel, our_spi, gir, ni, nr, true);
}

uint64_t engine::impl::add_child(ike_sa& sa, child_sa cs, time_point now) {
    const profile_state* p = profile_of(sa);
    child ch;
    cs.id = next_child_id++;
    ch.sa = std::move(cs);
    ch.created = now;
    uint32_t life = p != nullptr ? p->settings.child_lifetime_s : 3600;
    uint32_t jitter = life / 20 == 0 ? 0 : read32(random_bytes(4)) % (life / 20);
    ch.expire_at = now + seconds(life);
    ch.rekey_at = now + seconds(life - life / 10 - jitter);
    uint64_t id = ch.sa.id;
    if (key_log) {
        key_log->child(ch.sa);
    }
    by_child_spi[ch.sa.inbound.spi] = id;
    sa.children.push_back(id);
    children.emplace(id, std::move(ch));
    ++c.child_sas_up;
    return id;
}

void engine::impl::remove_child_state(uint64_t id, std::string_view why, outputs& out) {
    auto it = children.find(id);
    if (it == children.end()) {
        return;
    }
    out.requests.emplace_back(remove_child{id, std::string(why)});
    by_child_spi.erase(it->second.sa.inbound.spi);
    if (ike_sa* sa = find_sa(it->second.sa.ike_sa_id)) {
        std::erase(sa->children, id);
    }
    children.erase(it);
    c.child_sas_up -= c.child_sas_up > 0 ? 1 : 0;
}

void engine::impl::responder_create_child(ike_sa& sa, uint32_t mid, const std::vector<payload>& in,
                                          time_point now, outputs& out) {
    const auto* sa_p = find_payload<sa_payload>(in);
    const auto* nonce = find_payload<nonce_payload>(in);
    if (sa_p == nullptr || nonce == nullptr || sa_p->proposals.empty() || nonce->data.size() < 16 ||
        nonce->data.size() > 256) {
        ++c.invalid_syntax;
        respond(sa, exchange::create_child_sa, mid, {notify(notify_type::invalid_syntax)}, out);
        return;
    }
    if (sa_p->proposals.front().protocol == protocol_id::ike) {
        // IKE SA rekey (section 1.3.2).
        const profile_state* prof = profile_of(sa);
        const auto* ke = find_payload<ke_payload>(in);
        if (prof == nullptr || ke == nullptr) {
            ++c.invalid_syntax;
            respond(sa, exchange::create_child_sa, mid, {notify(notify_type::invalid_syntax)}, out);
            return;
        }
        uint64_t new_spi = new_ike_spi();
        auto sel = select_ike(prof->settings, *sa_p, ke->group, be64(new_spi));
        if (sel.status != select_status::ok) {
            std::vector<payload> r;
            if (sel.status == select_status::invalid_ke) {
                ++c.invalid_ke;
                r.emplace_back(
                    notify(notify_type::invalid_ke_payload,
                           bytes{uint8_t(sel.want_group >> 8), uint8_t(sel.want_group)}));
            } else {
                ++c.no_proposal;
                r.emplace_back(notify(notify_type::no_proposal_chosen));
            }
            respond(sa, exchange::create_child_sa, mid, r, out);
            return;
        }
        uint64_t peer_spi = 0;
        for (const auto& p : sa_p->proposals) {
            if (p.number == sel.chosen.number && p.spi.size() == 8) {
                peer_spi = read64(p.spi);
            }
        }
        auto dh = crypto::key_exchange::generate(ke->group);
        std::optional<crypto::secret> gir;
        if (dh) {
            if (auto g = (*dh)->shared_secret(ke->data)) {
                gir = std::move(*g);
            }
        }
        if (peer_spi == 0 || !gir) {
            ++c.invalid_syntax;
            respond(sa, exchange::create_child_sa, mid, {notify(notify_type::invalid_syntax)}, out);
            return;
        }
        bytes nr = random_bytes(nonce_size);
        respond(sa, exchange::create_child_sa, mid,
                {sa_payload{{sel.chosen}}, nonce_payload{nr},
                 ke_payload{ke->group, (*dh)->public_value()}},
                out);
        crypto::ike_keys keys =
            crypto::derive_rekeyed_ike_keys(sa.suite.prf, sa.keys.sk_d.view(), sel.suite,
                                            gir->view(), nonce->data, nr, peer_spi, new_spi);
        retire(sa, now);
        sa.initiator = false;
        sa.spi_i = peer_spi;
        sa.spi_r = new_spi;
        by_spi[new_spi] = sa.id;
        sa.suite = sel.suite;
        sa.keys = std::move(keys);
        log_ike_keys(sa);
        const auto life = prof->settings.ike_lifetime_s;
        sa.expire_at = now + seconds(life);
        sa.rekey_at = now + seconds(life - life / 10 - read32(random_bytes(4)) % (life / 20 + 1));
        sa.rekey_started = false;
        ++c.rekeys;
        return;
    }
    // CHILD_SA: a rekey names the pair it replaces by the SPI its sender receives on.
    uint64_t old_id = 0;
    if (const auto* rk = find_notify(in, notify_type::rekey_sa)) {
        uint32_t spi = read32(rk->spi);
        for (uint64_t cid : sa.children) {
            const child& ch = children.at(cid);
            if (ch.sa.outbound.spi == spi && rk->spi.size() == 4) {
                old_id = cid;
            }
        }
        if (old_id == 0) {
            notify_payload n = notify(notify_type::child_sa_not_found);
            n.protocol = protocol_id::esp;
            n.spi = rk->spi;
            respond(sa, exchange::create_child_sa, mid, {n}, out);
            return;
        }
    }
    bytes nr = random_bytes(nonce_size);
    std::vector<payload> reply;
    auto cs = negotiate_child(sa, in, nonce->data, nr, true, reply);
    if (!cs) {
        respond(sa, exchange::create_child_sa, mid, reply, out);
        return;
    }
    if (old_id != 0) {
        cs->replaces = old_id;
        cs->outbound_waits = true;  // the initiator has no inbound SA for it before our response
        child& old = children.at(old_id);
        old.state = child_state::rekeyed;
        ++c.rekeys;
    }
    uint64_t cid = add_child(sa, std::move(*cs), now);
    out.requests.emplace_back(install_child{children.at(cid).sa});
    if (old_id != 0) {
        children.at(cid).low_nonce = std::min(nonce->data, nr);
        rekeyed_by(old_id, cid, now, out);
    }
    auto packets =
        protect_message(sa, make_header(sa, exchange::create_child_sa, true, mid), reply);
    sa.cached_response = packets ? std::move(*packets) : std::vector<bytes>{};
    sa.held = true;
    sa.held_child = cid;
    sa.held_base.clear();
    sa.held_exchange = exchange::create_child_sa;
}

void engine::impl::start_child_rekey(ike_sa& sa, uint64_t cid, time_point now, outputs& out) {
    const profile_state* prof = profile_of(sa);
    auto it = children.find(cid);
    if (prof == nullptr || it == children.end() || it->second.state != child_state::installed) {
        return;
    }
    outstanding o;
    o.kind = req_kind::rekey_child;
    o.child = cid;
    o.new_spi = new_child_spi();
    by_child_spi[o.new_spi] = 0;
    o.nonce = crypto::secret(random_bytes(nonce_size));
    std::vector<payload> inner;
    notify_payload rk = notify(notify_type::rekey_sa);
    rk.protocol = protocol_id::esp;
    rk.spi = be32(it->second.sa.inbound.spi);
    inner.emplace_back(rk);
    inner.emplace_back(esp_offer(prof->settings, o.new_spi, prof->settings.pfs_group));
    inner.emplace_back(nonce_payload{bytes(o.nonce.data(), o.nonce.data() + o.nonce.size())});
    if (prof->settings.pfs_group) {
        auto dh = crypto::key_exchange::generate(*prof->settings.pfs_group);
        if (!dh) {
            by_child_spi.erase(o.new_spi);
            return;
        }
        o.dh = std::move(*dh);
        inner.emplace_back(ke_payload{o.dh->group(), o.dh->public_value()});
    }
    inner.emplace_back(ts_payload_i{host_ts(sa.local)});
    inner.emplace_back(ts_payload_r{host_ts(sa.peer)});
    inner.emplace_back(notify(notify_type::use_transport_mode));
    it->second.rekey_started = true;
    send_request(sa, std::move(o), exchange::create_child_sa, inner, now, out);
}

void engine::impl::child_rekey_response(ike_sa& sa, outstanding& o, const std::vector<payload>& in,
                                        time_point now, outputs& out) {
    by_child_spi.erase(o.new_spi);
    auto it = children.find(o.child);
    const auto* nonce = find_payload<nonce_payload>(in);
    if (it == children.end()) {
        return;
    }
    std::optional<child_sa> cs;
    if (nonce != nullptr) {
        cs = accept_child(sa, in, o.new_spi, o.nonce.view(), nonce->data, o.dh.get());
    }
    if (!cs) {
        // Refused (or a collision): try again a little later.
        it->second.rekey_started = false;
        it->second.rekey_at = now + seconds(30);
        return;
    }
    cs->replaces = o.child;
    it->second.state = child_state::rekeyed;
    uint64_t cid = add_child(sa, std::move(*cs), now);
    ++c.rekeys;
    out.requests.emplace_back(install_child{children.at(cid).sa});
    child& fresh = children.at(cid);
    fresh.we_initiated = true;
    fresh.low_nonce = std::min(bytes(o.nonce.data(), o.nonce.data() + o.nonce.size()), nonce->data);
    rekeyed_by(o.child, cid, now, out);
}

void engine::impl::rekeyed_by(uint64_t old_id, uint64_t fresh, time_point now, outputs& out) {
    child& old = children.at(old_id);
    auto other = children.find(old.replaced_by);
    if (old.replaced_by == 0 || other == children.end()) {
        old.replaced_by = fresh;
        return;
    }
    // Two new pairs for one old pair: the one whose exchange had the lowest nonce is
    // redundant, and the end that asked for it deletes it; both ends reach the same answer.
    child& f = children.at(fresh);
    uint64_t redundant = f.low_nonce < other->second.low_nonce ? fresh : other->first;
    old.replaced_by = redundant == fresh ? other->first : fresh;
    child& r = children.at(redundant);
    r.rekey_started = true;  // no rekey of its own
    if (r.we_initiated) {
        if (ike_sa* sa = find_sa(r.sa.ike_sa_id)) {
            enqueue(*sa, {req_kind::delete_child, redundant}, now, out);
        }
    }
    // The survivor's installed() deletes the old pair where it was asked for; if it is already
    // installed, do it now.
    const child& s = children.at(old.replaced_by);
    if (s.we_initiated && s.state == child_state::installed) {
        if (ike_sa* sa = find_sa(s.sa.ike_sa_id)) {
            enqueue(*sa, {req_kind::delete_child, old_id}, now, out);
        }
    }
}

void engine::impl::start_ike_rekey(ike_sa& sa, time_point now, outputs& out) {
    const profile_state* prof = profile_of(sa);
    if (prof == nullptr) {
        return;
    }
    outstanding o;
    o.kind = req_kind::rekey_ike;
    o.new_ike_spi = new_ike_spi();
    by_spi[o.new_ike_spi] = 0;  // reserved
    o.nonce = crypto::secret(random_bytes(nonce_size));
    auto dh = crypto::key_exchange::generate(sa.suite.dh);
    if (!dh) {
        by_spi.erase(o.new_ike_spi);
        return;
    }
    o.dh = std::move(*dh);
    std::vector<payload> inner;
    inner.emplace_back(ike_offer(prof->settings, be64(o.new_ike_spi)));
    inner.emplace_back(nonce_payload{bytes(o.nonce.data(), o.nonce.data() + o.nonce.size())});
    inner.emplace_back(ke_payload{o.dh->group(), o.dh->public_value()});
    send_request(sa, std::move(o), exchange::create_child_sa, inner, now, out);
}

void engine::impl::ike_rekey_response(ike_sa& sa, outstanding& o, const std::vector<payload>& in,
                                      time_point now, outputs& out) {
    by_spi.erase(o.new_ike_spi);
    const profile_state* prof = profile_of(sa);
    const auto* sa_p = find_payload<sa_payload>(in);
    const auto* nonce = find_payload<nonce_payload>(in);
    const auto* ke = find_payload<ke_payload>(in);
    std::optional<crypto::secret> gir;
    ike_selection sel;
    if (prof != nullptr && sa_p != nullptr && nonce != nullptr && ke != nullptr &&
        sa_p->proposals.size() == 1 && sa_p->proposals.front().spi.size() == 8 &&
        ke->group == o.dh->group()) {
        sel = select_ike(prof->settings, *sa_p, ke->group, {});
        if (auto g = o.dh->shared_secret(ke->data); g && sel.status == select_status::ok) {
            gir = std::move(*g);
        }
    }
    if (!gir) {
        sa.rekey_started = false;
        sa.rekey_at = now + seconds(30);
        return;
    }
    uint64_t peer_spi = read64(sa_p->proposals.front().spi);
    crypto::ike_keys keys =
        crypto::derive_rekeyed_ike_keys(sa.suite.prf, sa.keys.sk_d.view(), sel.suite, gir->view(),
                                        o.nonce.view(), nonce->data, o.new_ike_spi, peer_spi);
    uint64_t old = retire(sa, now);
    sa.initiator = true;
    sa.spi_i = o.new_ike_spi;
    sa.spi_r = peer_spi;
    by_spi[o.new_ike_spi] = sa.id;
    sa.suite = sel.suite;
    sa.keys = std::move(keys);
    log_ike_keys(sa);
    const auto life = prof->settings.ike_lifetime_s;
    sa.expire_at = now + seconds(life);
    sa.rekey_at = now + seconds(life - life / 10 - read32(random_bytes(4)) % (life / 20 + 1));
    sa.rekey_started = false;
    ++c.rekeys;
    // The initiator of the rekey deletes the old IKE SA (section 2.18).
    if (ike_sa* z = find_sa(old)) {
        z->queue.push_back({req_kind::delete_ike, 0});
        pump(*z, now, out);
    }
}

uint64_t engine::impl::retire(ike_sa& sa, time_point now) {
    auto z = std::make_unique<ike_sa>();
    z->id = next_sa_id++;
    z->tunnel = sa.tunnel;
    z->profile = sa.profile;
    z->initiator = sa.initiator;
    z->local = sa.local;
    z->peer = sa.peer;
    z->local_port = sa.local_port;
    z->peer_port = sa.peer_port;
    z->spi_i = sa.spi_i;
    z->spi_r = sa.spi_r;
    z->state = sa_state::established;
    z->suite = sa.suite;
    z->keys = std::move(sa.keys);
    z->nat_local = sa.nat_local;
    z->nat_peer = sa.nat_peer;
    z->peer_fragmentation = sa.peer_fragmentation;
    z->peer_identity = sa.peer_identity;
    z->auth_sign = sa.auth_sign;
    z->auth_verify = sa.auth_verify;
    z->next_mid = sa.next_mid;
    z->recv_mid = sa.recv_mid;
    z->cached_mid = sa.cached_mid;
    z->cached_request = std::move(sa.cached_request);
    z->cached_response = std::move(sa.cached_response);
    z->out = std::move(sa.out);
    z->created = now;
    z->last_inbound = now;
    z->expire_at = now + half_open_timeout;
    z->rekey_at = z->expire_at;
    z->retired = true;
    by_spi[sa.initiator ? sa.spi_i : sa.spi_r] = z->id;
    // The IKE_SA_INIT retransmission entry goes with the retired twin (it keeps the original
    // exchange's SPIs).
    if (sa.init_key) {
        if (auto it = by_init.find(*sa.init_key); it != by_init.end() && it->second == sa.id) {
            it->second = z->id;
            z->init_key = sa.init_key;
        }
        sa.init_key.reset();
    }
    drop_fragments(sa);  // held under the old keys: never completed under the new ones
    sa.out.reset();
    sa.cached_mid.reset();
    sa.cached_request.clear();
    sa.cached_response.clear();
    sa.held = false;
    sa.next_mid = 0;
    sa.recv_mid = 0;
    uint64_t id = z->id;
    by_peer[peer_key(z->tunnel, z->peer)].push_back(z->id);
    touch(*z);
    sas.emplace(id, std::move(z));
    return id;
}

bool engine::impl::soft_limit_reached(const config::ike_settings& s, const child& ch) {
    // Soft limits: 90% of bytes or packets (of the time: rekey_at). Written as limit - limit /
    // 10 so a small limit (under 10) keeps a soft mark of at least 1 instead of rounding to 0,
    // which would rekey on every pass.
    auto soft_mark = [](uint64_t limit) { return limit - limit / 10; };
    bool soft_bytes = s.child_lifetime_bytes != 0 &&
                      std::max(ch.in_bytes, ch.out_bytes) >= soft_mark(s.child_lifetime_bytes);
    bool soft_packets = s.child_lifetime_packets != 0 && std::max(ch.in_packets, ch.out_packets) >=
                                                             soft_mark(s.child_lifetime_packets);
    return soft_bytes || soft_packets;
}

void engine::impl::child_timers(ike_sa& sa, time_point now, outputs& out) {
    const profile_state* p = profile_of(sa);
    if (p == nullptr) {
        return;
    }
    for (uint64_t cid : std::vector<uint64_t>(sa.children)) {
        auto it = children.find(cid);
        if (it == children.end()) {
            continue;
        }
        child& ch = it->second;
        if (ch.state == child_state::installing && now - ch.created >= install_timeout) {
            ch.state = child_state::deleting;
            not_installed(cid, "never installed", now, out);
            continue;
        }
        if (ch.state != child_state::installed) {
            continue;
        }
        if (now >= ch.expire_at) {
            ch.state = child_state::deleting;
            enqueue(sa, {req_kind::delete_child, cid}, now, out);
            continue;
        }
        if (!ch.rekey_started && (now >= ch.rekey_at || soft_limit_reached(p->settings, ch))) {
            ch.rekey_started = true;
            enqueue(sa, {req_kind::rekey_child, cid}, now, out);
        }
    }
}

}  // namespace dmvpn::ike
