// ARP resolution on the control lcore.
#include "control/hub/neighbors.hpp"

#include <algorithm>

namespace dmvpn::hub {

neighbor_table::neighbor_table(neighbor_settings s) : _s(s) {
    // Room for the limit: a rehash moves every entry at once (milliseconds at 10,000s, cold).
    _entries.reserve(_s.max_entries == 0 ? 16384 : _s.max_entries);
}

std::string_view name(neighbor_state s) noexcept {
    switch (s) {
        case neighbor_state::incomplete:
            return "incomplete";
        case neighbor_state::reachable:
            return "reachable";
        case neighbor_state::failed:
            return "failed";
    }
    return "unknown";
}

void neighbor_table::set_port(uint16_t port, const mac_addr& mac, uint32_t address) {
    port_info& p = _ports[port];
    p.mac = mac;
    p.address = address;
}

void neighbor_table::send_announcement(uint16_t port, port_info& p, timestamp now,
                                       neighbor_output& out) {
    arp_packet a;
    a.op = arp_request;
    a.sender_mac = p.mac;
    a.sender_ip = p.address;
    a.target_ip = p.address;  // target MAC stays zero (RFC 5227 2.3)
    out.frames.emplace_back(port, arp_frame(a));
    ++_announcements;
    p.announce_left = p.announce_left > 0 ? p.announce_left - 1 : 0;
    p.next_announce = now + _s.announce_interval;
}

void neighbor_table::announce(uint16_t port, timestamp now, neighbor_output& out) {
    auto it = _ports.find(port);
    if (it == _ports.end() || it->second.address == 0 || _s.announcements == 0) {
        return;
    }
    it->second.announce_left = _s.announcements;
    send_announcement(port, it->second, now, out);
}

std::optional<mac_addr> neighbor_table::lookup(uint16_t port, uint32_t ip) {
    neighbor_key k{port, ip};
    auto it = _entries.find(k);
    if (it == _entries.end() || it->second.state != neighbor_state::reachable) {
        return std::nullopt;
    }
    if (!it->second.used) {
        it->second.used = true;
        reindex(k, it->second);
    }
    return it->second.mac;
}

std::optional<neighbor_state> neighbor_table::state(uint16_t port, uint32_t ip) const {
    auto it = _entries.find({port, ip});
    if (it == _entries.end()) {
        return std::nullopt;
    }
    return it->second.state;
}

neighbor_table::rank neighbor_table::rank_of(const entry& e) noexcept {
    switch (e.state) {
        case neighbor_state::failed:
            return rank::failed;
        case neighbor_state::incomplete:
            return rank::incomplete;
        case neighbor_state::reachable:
            break;
    }
    return e.used ? rank::used : rank::unused;
}

void neighbor_table::reindex(const neighbor_key& k, entry& e) {
    age_key nk{rank_of(e), e.updated, k};
    if (e.in_index) {
        if (nk == e.indexed) {
            return;
        }
        _by_age.erase(e.indexed);
    }
    _by_age.insert(nk);
    e.indexed = nk;
    e.in_index = true;
}

void neighbor_table::set_next(const neighbor_key& k, entry& e, timestamp at) {
    e.next = at;
    if (e.timer_gen == 0 || at < e.timer_at) {
        e.timer_gen = _next_gen++;
        e.timer_at = at;
        _timers.schedule(at, timer_ref{k, e.timer_gen});
    }
}

neighbor_table::entry& neighbor_table::obtain(const neighbor_key& k, timestamp now,
                                              neighbor_output& out, bool& fresh) {
    auto it = _entries.find(k);
    fresh = it == _entries.end();
    if (!fresh) {
        return it->second;
    }
    if (_s.max_entries != 0 && _entries.size() >= _s.max_entries && !_by_age.empty()) {
        ++_evicted;
        erase(_entries.find(std::get<2>(*_by_age.begin())), out);
    }
    entry& e = _entries[k];
    e.updated = now;
    reindex(k, e);
    return e;
}

void neighbor_table::erase(entry_map::iterator it, neighbor_output& out) {
    if (it == _entries.end()) {
        return;
    }
    entry& e = it->second;
    out.dropped += e.pending.size();
    if (e.state == neighbor_state::reachable && e.used) {
        out.changed.push_back(it->first);  // its adjacencies lose the MAC and resolve again
    }
    if (e.in_index) {
        _by_age.erase(e.indexed);
    }
    _entries.erase(it);
}

void neighbor_table::forget(uint16_t port, uint32_t ip) {
    auto it = _entries.find({port, ip});
    if (it != _entries.end()) {
        _by_age.erase(it->second.indexed);
        _entries.erase(it);
    }
}

void neighbor_table::clear() {
    // Their timers become stale: generations are never reused.
    _entries.clear();
    _by_age.clear();
}

void neighbor_table::request(uint16_t port, uint32_t ip, neighbor_output& out) {
    auto p = _ports.find(port);
    if (p == _ports.end()) {
        return;
    }
    arp_packet a;
    a.op = arp_request;
    a.sender_mac = p->second.mac;
    a.sender_ip = p->second.address;
    a.target_ip = ip;
    out.frames.emplace_back(port, arp_frame(a));
    ++_requests;
}

void neighbor_table::resolve(uint16_t port, uint32_t ip, timestamp now, neighbor_output& out) {
    neighbor_key k{port, ip};
    bool fresh = false;
    entry& e = obtain(k, now, out, fresh);
    bool was_used = e.used;
    e.used = true;
    if (!fresh && (e.state == neighbor_state::reachable || e.state == neighbor_state::incomplete ||
                   now < e.next)) {
        if (!was_used) {
            reindex(k, e);
        }
        return;
    }
    e.state = neighbor_state::incomplete;
    e.probes = 1;
    e.updated = now;
    set_next(k, e, now + _s.retry);
    reindex(k, e);
    request(port, ip, out);
}

void neighbor_table::send_or_hold(uint16_t port, uint32_t ip, bytes l3, timestamp now,
                                  neighbor_output& out) {
    if (auto mac = lookup(port, ip)) {
        auto p = _ports.find(port);
        if (p != _ports.end()) {
            out.frames.emplace_back(port, eth_frame(*mac, p->second.mac, ethertype_ipv4, l3));
        }
        return;
    }
    resolve(port, ip, now, out);
    entry& e = _entries[{port, ip}];  // resolve made it if it was missing
    if (e.state != neighbor_state::incomplete || e.pending.size() >= _s.max_pending) {
        ++out.dropped;
        return;
    }
    e.pending.push_back(std::move(l3));
}

void neighbor_table::learn(const neighbor_key& k, const mac_addr& mac, timestamp now,
                           neighbor_output& out) {
    bool fresh = false;
    entry& e = obtain(k, now, out, fresh);
    bool moved = e.state == neighbor_state::reachable && e.mac != mac;
    if (moved && now < e.mac_set + _s.mac_change_hold) {
        // Too soon after the last change: the latest claim waits for the hold to end.
        e.deferred = true;
        e.deferred_mac = mac;
        ++_mac_changes_deferred;
        if (timestamp at = e.mac_set + _s.mac_change_hold; at < e.next) {
            set_next(k, e, at);
        }
        return;
    }
    bool changed = e.state != neighbor_state::reachable || moved;
    if (changed) {
        e.mac_set = now;
    }
    _mac_changes += moved ? 1 : 0;
    e.deferred = false;  // this claim is the latest
    e.state = neighbor_state::reachable;
    e.mac = mac;
    e.probes = 0;
    e.updated = now;
    set_next(k, e, now + _s.refresh);
    reindex(k, e);
    if (changed) {
        out.changed.push_back(k);
    }
    const mac_addr& own = _ports[k.port].mac;
    for (bytes& l3 : e.pending) {
        out.frames.emplace_back(k.port, eth_frame(mac, own, ethertype_ipv4, l3));
    }
    e.pending.clear();
}

void neighbor_table::on_arp(uint16_t port, const arp_packet& a, timestamp now,
                            neighbor_output& out) {
    auto p = _ports.find(port);
    if (p == _ports.end() || a.sender_ip == 0 || a.sender_ip == p->second.address) {
        return;  // a probe (RFC 5227) or our own address echoed: nothing to learn
    }
    bool for_us = a.target_ip == p->second.address;
    neighbor_key k{port, a.sender_ip};
    // RFC 826's merge: update a neighbour we know; add it when the packet was for us (it is
    // about to talk to us, so we will need it).
    if (_entries.contains(k) || for_us) {
        learn(k, a.sender_mac, now, out);
    }
    if (for_us && a.op == arp_request) {
        arp_packet r;
        r.op = arp_reply;
        r.sender_mac = p->second.mac;
        r.sender_ip = p->second.address;
        r.target_mac = a.sender_mac;
        r.target_ip = a.sender_ip;
        out.frames.emplace_back(port, arp_frame(r));
        ++_replies;
    }
}

void neighbor_table::expire(entry_map::iterator it, timestamp now, neighbor_output& out) {
    const neighbor_key k = it->first;
    entry& e = it->second;
    switch (e.state) {
        case neighbor_state::incomplete:
            if (e.probes >= _s.max_probes) {
                e.state = neighbor_state::failed;
                e.updated = now;
                set_next(k, e, now + _s.failed_hold);
                reindex(k, e);
                out.dropped += e.pending.size();
                e.pending.clear();
            } else {
                ++e.probes;
                set_next(k, e, now + _s.retry);
                request(k.port, k.ip, out);
            }
            break;
        case neighbor_state::reachable:
            if (e.deferred && now >= e.mac_set + _s.mac_change_hold) {
                learn(k, e.deferred_mac, now, out);  // the hold is over: the latest claim
                break;
            }
            if (!e.used || e.probes >= _s.max_probes) {
                // Learnt from a request and never needed, or gone silent: forgotten.
                ++_aged;
                erase(it, out);
                break;
            }
            // Re-confirm without forgetting: traffic keeps flowing on the old MAC meanwhile,
            // and the answer (or a changed MAC) arrives through on_arp.
            ++e.probes;
            set_next(k, e, now + _s.retry);
            request(k.port, k.ip, out);
            break;
        case neighbor_state::failed:
            ++_aged;
            erase(it, out);
            break;
    }
}

void neighbor_table::tick(timestamp now, neighbor_output& out) {
    for (auto& [port, p] : _ports) {
        if (p.announce_left > 0 && now >= p.next_announce) {
            send_announcement(port, p, now, out);
        }
    }
    _timers.advance(now, [&](const timer_ref& t) {
        auto it = _entries.find(t.key);
        if (it == _entries.end() || it->second.timer_gen != t.gen) {
            return;  // stale: the entry went, or a sooner timer replaced this one
        }
        it->second.timer_gen = 0;
        if (now < it->second.next) {
            set_next(t.key, it->second, it->second.next);  // moved later meanwhile
            return;
        }
        expire(it, now, out);
    });
}

std::vector<neighbor_view> neighbor_table::entries() const {
    std::vector<neighbor_view> v;
    v.reserve(_entries.size());
    for (const auto& [k, e] : _entries) {
        v.push_back(neighbor_view{k, e.state, e.mac, e.probes, e.pending.size(), e.updated});
    }
    std::sort(v.begin(), v.end(),
              [](const neighbor_view& a, const neighbor_view& b) { return a.key < b.key; });
    return v;
}

}  // namespace dmvpn::hub
