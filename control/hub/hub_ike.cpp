// The hub's side of IKEv2: the IKE thread started with the engine, punted IKE in, datagrams
// out, negotiated CHILD_SAs installed in (and removed from) the workers at run time, usage
// reported back, and `show crypto` / `clear crypto sa` answered.
#include <algorithm>

#include <fmt/core.h>
#include <rte_cycles.h>

#include "control/hub/hub.hpp"
#include "control/hub/ike_glue.hpp"
#include "control/hub/json.hpp"
#include "control/ike/key_log.hpp"
#include "control/ike/v1_dispatch.hpp"
#include "control/log.hpp"
#include "dataplane/wire/ipv4.hpp"

namespace dmvpn::hub {

namespace {

std::string ip_text(uint32_t a) { return wire::format_ipv4(a); }

// Which engine an IKE SA id belongs to, for the log (v1_dispatch.hpp).
std::string_view ike_version(uint64_t ike_sa_id) {
    return ike::v1::engine::owns(ike_sa_id) ? "IKEv1 ISAKMP" : "IKEv2";
}

// Outputs handled per loop pass: the rest wait for the next one (the loop never stalls).
constexpr size_t ike_outputs_per_pass = 64;

// How long a registration waits for the peer's first packet on a pair we answered for (the
// NHS client's own first retry: never later than it went before).
constexpr auto nhs_wait_max = std::chrono::seconds(1);

template <typename... F>
struct overloaded : F... {
    using F::operator()...;
};
template <typename... F>
overloaded(F...) -> overloaded<F...>;

}  // namespace

std::optional<std::string> hub::start_ike() {
    _ike_bindings = ike_bindings(_topo, _slots);
    if (_ike_bindings.empty()) {
        return std::nullopt;  // no tunnel's profile has `ike`: no thread
    }
    // IKEv2 and (for profiles with `ike.version: 1` or `any`) IKEv1, dispatched by version.
    auto e = ike::dual_handler::create(_topo.ipsec_profiles, _ike_bindings);
    if (!e) {
        return e.error();
    }
    if (e.value()->v2() != nullptr) {
        e.value()->v2()->set_key_log(_ike_key_log);
    }
    if (e.value()->v1() != nullptr) {
        e.value()->v1()->set_key_log(_ike_key_log);
    }
    _ike = std::make_unique<ike::thread>(std::move(e.value()));
    for (const ike::tunnel_binding& b : _ike_bindings) {
        log::info("IKEv2: tunnel slot {} answers on {} (UDP 500, 4500) with profile {}", b.tunnel,
                  ip_text(b.local), b.profile);
    }
    _ike_peers.configure(ike_peers::targets_of(_topo, _slots), std::chrono::steady_clock::now());
    for (const ike_peers::view& v : _ike_peers.peers()) {
        log::info("IKE: tunnel slot {} initiates to {} (hub to hub)", v.t.tunnel,
                  ip_text(v.t.peer));
    }
    return std::nullopt;
}

void hub::ike_initiate_due(timestamp now) {
    if (!_ike || _ike_peers.size() == 0) {
        return;
    }
    for (const ike_peers::target& t : _ike_peers.due(now)) {
        // A full queue loses this try; the back-off asks again.
        (void)_ike->post(ike::initiate_cmd{t.tunnel, t.peer});
    }
}

void hub::ike_post_owed() {
    while (!_ike_owed.empty()) {
        if (!_ike->post(_ike_owed.front())) {
            return;  // the queue is full: the rest go on a later pass, in order
        }
        _ike_owed.pop_front();
    }
}

size_t hub::ike_pass(timestamp now) {
    if (!_ike) {
        return 0;
    }
    size_t work = _ike_owed.size();
    ike_post_owed();
    work -= _ike_owed.size();  // what is still owed waits for room, not counted as work
    for (size_t n = 0; n < ike_outputs_per_pass; ++n) {
        std::optional<ike::output> o = _ike->poll();
        if (!o) {
            break;
        }
        ++work;
        std::visit(overloaded{
                       [&](ike::datagram& d) {
                           pass_profile::scope timed(_profile, pass_item::ike_datagram);
                           bytes pkt = ike_packet_of(d, _ip_id++);
                           if (!pkt.empty()) {
                               ++_cc.ike_tx;
                               send_ip(std::move(pkt), now);
                           }
                       },
                       [&](ike::request& r) { ike_request(std::move(r), now); },
                       [&](ike::show_answer& a) {
                           pass_profile::scope timed(_profile, pass_item::ike_other);
                           show_crypto_answered(a);
                       },
                       [&](ike::reconfigured& r) {
                           pass_profile::scope timed(_profile, pass_item::ike_other);
                           if (r.error) {
                               log::error("IKEv2: reload not applied: {}", *r.error);
                           } else {
                               log::info("IKEv2: reload applied");
                           }
                       },
                   },
                   *o);
        work += punts_between(now);
    }
    return work;
}

void hub::ike_request(ike::request&& r, timestamp now) {
    std::visit(overloaded{
                   [&](ike::install_child& c) {
                       pass_profile::scope timed(_profile, pass_item::ike_install);
                       install_child(c.sa, now);
                   },
                   [&](ike::remove_child& c) {
                       pass_profile::scope timed(_profile, pass_item::ike_remove);
                       remove_child(c.id, c.why, now);
                   },
                   [&](ike::peer_up& u) {
                       pass_profile::scope timed(_profile, pass_item::ike_peer_up);
                       const std::string* t = _slots.name(static_cast<uint16_t>(u.tunnel));
                       log::notice("{} SA up: peer {} ({}) on {}", ike_version(u.ike_sa_id),
                                   ip_text(u.peer), u.identity, t != nullptr ? *t : "?");
                       _ike_peers.up(u.tunnel, u.peer);
                   },
                   [&](ike::peer_down& d) {
                       pass_profile::scope timed(_profile, pass_item::ike_peer_down);
                       const std::string* t = _slots.name(static_cast<uint16_t>(d.tunnel));
                       log::notice("{} SA down: peer {} on {}: {}", ike_version(d.ike_sa_id),
                                   ip_text(d.peer), t != nullptr ? *t : "?", d.why);
                       remove_peer_sas(d.tunnel, d.peer, now);
                       apply(_server->forget_peer(d.tunnel, d.peer, now), now);
                       _ike_peers.down(d.tunnel, d.peer, now, d.why);
                   },
                   [&](ike::initiation_failed& f) {
                       pass_profile::scope timed(_profile, pass_item::ike_other);
                       log::info("IKE: initiation to {} on slot {} failed: {}", ip_text(f.peer),
                                 f.tunnel, f.why);
                       _ike_peers.failed(f.tunnel, f.peer, std::move(f.why));
                   },
               },
               r);
}

void hub::install_child(const ike::child_sa& c, timestamp now) {
    auto refuse = [&](std::string why) {
        ++_cc.ike_install_failed;
        log::warning("IKEv2: CHILD_SA {} with {} not installed: {}", c.id, ip_text(c.peer), why);
        _ike_owed.emplace_back(ike::install_failed_ack{c.id, std::move(why)});
    };
    const std::string* tunnel = _slots.name(static_cast<uint16_t>(c.tunnel));
    const config::ipsec_profile* prof = _topo.find_ipsec_profile(c.profile);
    if (tunnel == nullptr || prof == nullptr) {
        return refuse("its tunnel or profile is no longer configured");
    }
    sa_key key{c.profile, c.peer};
    auto cur = _sas.find(key);
    if (cur != _sas.end() && cur->second->id == 0) {
        return refuse("a manual SA holds this peer");
    }
    uint64_t t0 = rte_rdtsc();
    auto in = esp_params_of(c, crypto::sa_direction::inbound);
    auto out = esp_params_of(c, crypto::sa_direction::outbound);
    uint64_t t1 = rte_rdtsc();
    _profile.record(pass_item::install_params, t0, t1);
    if (!in || !out) {
        return refuse(!in ? in.error() : out.error());
    }
    auto ps = std::make_unique<peer_sa>();
    ps->id = c.id;
    ps->profile = c.profile;
    ps->peer = c.peer;
    ps->tunnel = static_cast<uint16_t>(c.tunnel);
    ps->profile_cfg = *prof;
    ps->udp_encap = c.udp_encap;
    ps->local_port = c.local_port;
    ps->peer_port = c.peer_port;
    t0 = rte_rdtsc();
    if (auto err = install_pair(*ps, in.value(), out.value())) {
        return refuse(*err);
    }
    t1 = rte_rdtsc();
    _profile.record(pass_item::install_pair, t0, t1);
    // The SPI table is keyed by SPI: one another pair still decrypts with cannot be taken.
    uint32_t spi = ps->in->spi();
    if (_inbound_spis.contains(spi)) {
        return refuse(fmt::format("inbound SPI 0x{:08x} is still in use", spi));
    }
    // In the workers' SPI table at once (in place, O(1)); the ack below waits for a grace
    // period after this.
    t0 = rte_rdtsc();
    std::optional<dp::inbound_sa> entry = inbound_entry(*ps);
    if (!entry || _pub->add_inbound_sa(*entry) != dp::publish_status::ok) {
        return refuse(fmt::format("inbound SPI 0x{:08x} not accepted by the SPI table", spi));
    }
    t1 = rte_rdtsc();
    _profile.record(pass_item::install_spi, t0, t1);
    ++_inbound_spis[spi];
    // Make before break (control/ike/child_pairs.hpp): the pair it replaces keeps decrypting;
    // outbound moves to the new pair now, or, where we answered the peer's rekey, once the
    // peer's traffic on it or its DELETE of the old pair shows the peer has it.
    ike::child_pairs& set = _child_pairs[key];
    set.add(c.id, c.outbound_waits);
    if (set.waiting(c.id)) {
        ++_cc.ike_outbound_waits;
    }
    ++_cc.ike_installs;
    t0 = rte_rdtsc();
    log_sa(*ps, "up");
    t1 = rte_rdtsc();
    _profile.record(pass_item::install_log, t0, t1);
    _standby[c.id] = std::move(ps);
    arrange_pairs(key, now);
    t0 = rte_rdtsc();
    _profile.record(pass_item::install_arrange, t1, t0);
    if (!c.replaces && c.outbound_waits && _server->is_nhs(c.tunnel, c.peer)) {
        // We answered the peer's negotiation: it installs this pair only once our response
        // reaches it, after the registration would (the workers' path is shorter than its
        // IKE thread's). The registration waits for the peer's first packet on the pair.
        ++_cc.ike_nhs_waited;
        _nhs_wait[c.id] = nhs_wait{key, c.tunnel, now + nhs_wait_max};
    } else if (!c.replaces) {
        // A new IKE SA's first pair: a peer hub we register with hears from us now (a peer
        // that restarted lost our registration; one just keyed dropped what went unprotected).
        apply(_server->nhs_reachable(c.tunnel, c.peer, now), now);
    }
    _profile.record(pass_item::install_nhs, t0, rte_rdtsc());
    // The ack leaves once every worker passed a quiescent state after the SA went into the SPI
    // table (retired at the end of this pass): the engine's response (and the peer's first ESP)
    // can then only meet the installed SA.
    uint64_t id = c.id;
    inbound_sas_changed([this, id] { _ike_owed.emplace_back(ike::installed_ack{id}); });
}

void hub::arrange_pairs(const sa_key& key, timestamp now) {
    auto set = _child_pairs.find(key);
    std::optional<uint64_t> want;
    if (set != _child_pairs.end()) {
        want = set->second.outbound();
    }
    bool moved = false;
    auto cur = _sas.find(key);
    bool replaced = cur != _sas.end();
    if (cur != _sas.end() && cur->second->id != 0 && cur->second->id != want) {
        uint64_t id = cur->second->id;
        _standby[id] = std::move(cur->second);
        _sas.erase(cur);
        moved = true;
    }
    if (want && _sas.find(key) == _sas.end()) {
        if (auto s = _standby.find(*want); s != _standby.end()) {
            _sas[key] = std::move(s->second);
            _standby.erase(s);
            moved = true;
        }
    }
    std::vector<peer_sa*> gone;
    for (auto it = _standby.begin(); it != _standby.end();) {
        const peer_sa& ps = *it->second;
        bool mine = ps.profile == key.first && ps.peer == key.second;
        if (mine && (set == _child_pairs.end() || !set->second.decrypts(it->first))) {
            if (auto n = _inbound_spis.find(ps.in->spi());
                n != _inbound_spis.end() && --n->second == 0) {
                _inbound_spis.erase(n);
                (void)_pub->remove_inbound_sa(ps.in->spi(), ps.in.get());
            }
            gone.push_back(it->second.release());
            it = _standby.erase(it);
        } else {
            ++it;
        }
    }
    if (set != _child_pairs.end() && set->second.empty()) {
        _child_pairs.erase(set);
    }
    inbound_sas_changed();
    if (moved) {
        if (replaced) {
            // A rekey: the peer already holds the new pair and may answer our first ESP on it
            // at once; its inbound SA went into the SPI table (install_child) before outbound
            // moves. (A first pair needs no such care: the peer has it only after the ack.)
            flush_inbound_sas();
        }
        pass_profile::scope timed(_profile, pass_item::arrange_republish);
        republish_peer(key.second, now);  // its adjacencies take the outbound SA and ports
    }
    for (peer_sa* raw : gone) {
        // Freed once no worker can still hold the SPI table entry removed above.
        inbound_sas_changed([raw] { delete raw; });
    }
}

void hub::remove_child(uint64_t id, std::string_view why, timestamp now, bool drain) {
    const peer_sa* ps = nullptr;
    if (auto d = _standby.find(id); d != _standby.end()) {
        ps = d->second.get();
    } else {
        for (const auto& [key, p] : _sas) {
            if (p->id == id && id != 0) {
                ps = p.get();
                break;
            }
        }
    }
    if (ps == nullptr) {
        return;  // already gone with its peer
    }
    sa_key key{ps->profile, ps->peer};
    ike::child_pairs& set = _child_pairs[key];
    bool removed_before = set.draining(id);
    if (removed_before && drain) {
        return;  // still draining
    }
    if (!removed_before) {
        ++_cc.ike_removes;
        log_sa(*ps, "down");
    }
    if (!removed_before && drain && set.remove(id, now)) {
        ++_cc.ike_drains;
        _drain_due.emplace(now + ike::rekey_drain, key);
        log::info("IKEv2: CHILD_SA {} with {} removed: {}; its inbound SA decrypts for {} s more",
                  id, ip_text(key.second), why, ike::rekey_drain.count());
    } else {
        set.forget(id);
        if (!removed_before) {
            log::info("IKEv2: CHILD_SA {} with {} removed: {}", id, ip_text(key.second), why);
        }
    }
    arrange_pairs(key, now);
}

void hub::remove_peer_sas(uint32_t tunnel, uint32_t peer, timestamp now) {
    std::vector<uint64_t> ids;
    for (const auto& [key, ps] : _sas) {
        if (ps->id != 0 && ps->peer == peer && ps->tunnel == tunnel) {
            ids.push_back(ps->id);
        }
    }
    for (const auto& [id, ps] : _standby) {
        if (ps->peer == peer && ps->tunnel == tunnel) {
            ids.push_back(id);
        }
    }
    for (uint64_t id : ids) {
        remove_child(id, "its IKE SA is down", now, false);
    }
}

void hub::ike_rekey_pairs(timestamp now) {
    std::vector<sa_key> touched;
    for (const auto& [id, ps] : _standby) {
        sa_key key{ps->profile, ps->peer};
        auto set = _child_pairs.find(key);
        // Authentic traffic on a waiting pair: the peer has it, our outbound may move to it.
        if (set != _child_pairs.end() && set->second.waiting(id) && ps->in->packets() > 0 &&
            set->second.inbound_seen(id)) {
            touched.push_back(std::move(key));
        }
    }
    while (!_drain_due.empty() && _drain_due.begin()->first <= now) {
        sa_key key = std::move(_drain_due.begin()->second);
        _drain_due.erase(_drain_due.begin());
        auto set = _child_pairs.find(key);
        if (set != _child_pairs.end() && !set->second.drained(now).empty()) {
            touched.push_back(std::move(key));
        }
    }
    for (const sa_key& key : touched) {
        arrange_pairs(key, now);
    }
}

void hub::ike_nhs_after_peer(timestamp now) {
    for (auto it = _nhs_wait.begin(); it != _nhs_wait.end();) {
        const uint64_t id = it->first;
        const nhs_wait& w = it->second;
        const peer_sa* ps = nullptr;
        if (auto cur = _sas.find(w.key); cur != _sas.end() && cur->second->id == id) {
            ps = cur->second.get();
        } else if (auto s = _standby.find(id); s != _standby.end()) {
            ps = s->second.get();
        }
        if (ps == nullptr) {
            it = _nhs_wait.erase(it);  // the pair went (its IKE SA died, a duplicate deleted)
            continue;
        }
        const bool heard = ps->in->packets() > 0;
        if (!heard && now < w.due) {
            ++it;
            continue;
        }
        if (!heard) {
            ++_cc.ike_nhs_wait_expired;
        }
        const uint32_t tunnel = w.tunnel, peer = w.key.second;
        it = _nhs_wait.erase(it);
        apply(_server->nhs_reachable(tunnel, peer, now), now);
    }
}

void hub::ike_soft_limits() {
    // Without byte or packet lifetimes no worker marks an IKE pair soft-expired: no walk (it
    // visits every pair, 100 times a second). A pair keeps the limits it was installed with,
    // so a reload that drops them leaves such pairs to the once-a-second report.
    bool limits =
        std::any_of(_topo.ipsec_profiles.begin(), _topo.ipsec_profiles.end(), [](const auto& p) {
            return p.ike &&
                   (p.ike->child_lifetime_bytes != 0 || p.ike->child_lifetime_packets != 0);
        });
    if (!_ike || !limits) {
        return;
    }
    ike::usage_report r;
    std::vector<peer_sa*> told;
    for (const auto& [key, ps] : _sas) {
        if (ps->id == 0 || ps->soft_reported ||
            !(ps->in->soft_expired() || ps->out->soft_expired())) {
            continue;
        }
        r.children.push_back(ike::child_usage{ps->id, ps->in->bytes(), ps->in->packets(),
                                              ps->out->bytes(), ps->out->packets()});
        told.push_back(ps.get());
    }
    if (!r.children.empty() && _ike->post(std::move(r))) {  // full queue: the next tick retries
        for (peer_sa* ps : told) {
            ps->soft_reported = true;
        }
    }
}

void hub::ike_usage(timestamp now) {
    if (!_ike) {
        return;
    }
    // Pairs owed a report since the last slice: all of them once a second, however the ticks
    // fall (a late tick reports more), never more than all of them at once.
    const double total = double(_sas.size() + _standby.size());
    const double elapsed = _usage_last == timestamp{}
                               ? 0.01
                               : std::chrono::duration<double>(now - _usage_last).count();
    _usage_last = now;
    _usage_credit = std::min(_usage_credit + total * std::max(elapsed, 0.0), total);
    auto budget = static_cast<size_t>(_usage_credit);
    _usage_credit -= double(budget);
    ike::usage_report r;
    auto add = [&r](const peer_sa& ps) {
        r.children.push_back(ike::child_usage{ps.id, ps.in->bytes(), ps.in->packets(),
                                              ps.out->bytes(), ps.out->packets()});
    };
    // The walk resumes where the last slice stopped: _sas from _usage_sas_next, then _standby
    // from _usage_standby_next (set once _sas is done), then _sas from its start again.
    size_t visited = 0;
    while (visited < budget) {
        if (!_usage_standby_next) {
            auto it = _usage_sas_next ? _sas.lower_bound(*_usage_sas_next) : _sas.begin();
            for (; it != _sas.end() && visited < budget; ++it, ++visited) {
                if (it->second->id != 0) {
                    add(*it->second);
                }
            }
            if (it == _sas.end()) {
                _usage_sas_next.reset();
                _usage_standby_next = 0;
            } else {
                _usage_sas_next = it->first;
            }
            continue;
        }
        auto it = _standby.lower_bound(*_usage_standby_next);
        for (; it != _standby.end() && visited < budget; ++it, ++visited) {
            add(*it->second);
        }
        if (it == _standby.end()) {
            _usage_standby_next.reset();  // round again from the start of _sas
            if (_sas.empty() && _standby.empty()) {
                break;
            }
        } else {
            _usage_standby_next = it->first;
        }
    }
    if (!r.children.empty()) {
        (void)_ike->post(
            std::move(r));  // a full queue drops it (counted); the next round's follows
    }
}

std::string hub::show_ike_initiator(bool json, timestamp now) const {
    std::string rows;
    std::string text = fmt::format(
        "IKE initiator (hub to hub): {} peer(s)\n{:<10} {:<16} {:<8} {:<12} {:>9} {:>8} {:>6} "
        "{:>5}  {}\n",
        _ike_peers.size(), "Tunnel", "Peer", "Version", "State", "Next try", "Attempts", "Fails",
        "Downs", "Last error");
    for (const ike_peers::view& v : _ike_peers.peers()) {
        const std::string* tunnel = _slots.name(static_cast<uint16_t>(v.t.tunnel));
        const config::tunnel* t = tunnel_of(static_cast<uint16_t>(v.t.tunnel));
        const config::ipsec_profile* p =
            t == nullptr ? nullptr : _topo.find_ipsec_profile(t->ipsec_profile);
        // The version it initiates with: IKEv2 unless the profile speaks IKEv1 only.
        std::string_view version =
            p != nullptr && p->ike && !p->ike->speaks_v2() ? "IKEv1" : "IKEv2";
        std::optional<int64_t> next;
        if (!v.up) {
            next = std::max<int64_t>(
                0, std::chrono::duration_cast<std::chrono::seconds>(v.next - now).count());
        }
        std::string_view state = ike_peers::name(v.state);
        if (json) {
            rows += (rows.empty() ? "" : ",") +
                    json_members()
                        .str("tunnel", tunnel != nullptr ? *tunnel : "?")
                        .str("peer", ip_text(v.t.peer))
                        .str("version", version)
                        .str("state", state)
                        .raw("next_attempt_s", next ? fmt::format("{}", *next) : "null")
                        .num("attempts", v.initiations)
                        .num("failures", v.failures)
                        .num("downs", v.downs)
                        .str("last_error", v.last_error)
                        .done();
            continue;
        }
        text += fmt::format("{:<10} {:<16} {:<8} {:<12} {:>9} {:>8} {:>6} {:>5}  {}\n",
                            tunnel != nullptr ? *tunnel : "?", ip_text(v.t.peer), version, state,
                            next ? fmt::format("{} s", *next) : "-", v.initiations, v.failures,
                            v.downs, v.last_error.empty() ? "-" : v.last_error);
    }
    return json ? "{\"initiator\":[" + rows + "]}\n" : text;
}

// The IKE thread renders the view when asked (never per tick: it is O(SAs)); the management
// command is answered when its show_answer comes back through ike_pass.
control::mgmt_reply hub::show_crypto(std::string_view what, bool json) {
    if (!_ike) {
        return {false, "no IKEv2 here: no tunnel's ipsec profile has an ike section\n"};
    }
    if (!ike::is_show_view(what)) {
        return {false, fmt::format("show crypto {}: not a view the IKE thread renders\n", what)};
    }
    uint64_t ticket = _mgmt->defer();
    if (!_ike->ask(ike::show_request{ticket, std::string(what), json})) {
        _mgmt->answer(ticket, {false, "IKEv2: show requests are waiting already, try again\n"});
    } else {
        _ike_shows_asked[ticket] = json;
    }
    return {};
}

void hub::show_crypto_answered(ike::show_answer& a) {
    auto asked = _ike_shows_asked.find(a.ticket);
    if (asked == _ike_shows_asked.end()) {
        return;
    }
    bool json = asked->second;
    _ike_shows_asked.erase(asked);
    if (_ike_key_log && !json) {
        _mgmt->answer(a.ticket,
                      {true, fmt::format("! {} ({} IKE SA rows, {} ESP SA rows so far)\n{}",
                                         ike::keylog::warning(_ike_key_log->dir()),
                                         _ike_key_log->ike_rows_written(),
                                         _ike_key_log->esp_rows_written(), a.text)});
        return;
    }
    _mgmt->answer(a.ticket, {true, std::move(a.text)});
}

}  // namespace dmvpn::hub
