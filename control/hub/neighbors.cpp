// ARP resolution on the control lcore.
#include "control/hub/neighbors.hpp"

namespace dmvpn::hub {

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

std::optional<mac_addr> neighbor_table::lookup(uint16_t port, uint32_t ip) const {
    auto it = _entries.find({port, ip});
    if (it == _entries.end() || it->second.state != neighbor_state::reachable) {
        return std::nullopt;
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
    auto [it, fresh] = _entries.try_emplace({port, ip});
    entry& e = it->second;
    if (!fresh && (e.state == neighbor_state::reachable || e.state == neighbor_state::incomplete ||
                   now < e.next)) {
        return;
    }
    e.state = neighbor_state::incomplete;
    e.probes = 1;
    e.next = now + _s.retry;
    e.updated = now;
    request(port, ip, out);
}

void neighbor_table::send_or_hold(uint16_t port, uint32_t ip, bytes l3, timestamp now,
                                  neighbor_output& out) {
    auto it = _entries.find({port, ip});
    if (it != _entries.end() && it->second.state == neighbor_state::reachable) {
        auto p = _ports.find(port);
        if (p != _ports.end()) {
            out.frames.emplace_back(port,
                                    eth_frame(it->second.mac, p->second.mac, ethertype_ipv4, l3));
        }
        return;
    }
    resolve(port, ip, now, out);
    entry& e = _entries[{port, ip}];
    if (e.state != neighbor_state::incomplete || e.pending.size() >= _s.max_pending) {
        ++out.dropped;
        return;
    }
    e.pending.push_back(std::move(l3));
}

void neighbor_table::learn(const neighbor_key& k, const mac_addr& mac, timestamp now,
                           neighbor_output& out) {
    entry& e = _entries[k];
    bool changed = e.state != neighbor_state::reachable || e.mac != mac;
    e.state = neighbor_state::reachable;
    e.mac = mac;
    e.probes = 0;
    e.updated = now;
    e.next = now + _s.refresh;
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

void neighbor_table::tick(timestamp now, neighbor_output& out) {
    for (auto& [port, p] : _ports) {
        if (p.announce_left > 0 && now >= p.next_announce) {
            send_announcement(port, p, now, out);
        }
    }
    for (auto& [k, e] : _entries) {
        if (now < e.next) {
            continue;
        }
        switch (e.state) {
            case neighbor_state::incomplete:
                if (e.probes >= _s.max_probes) {
                    e.state = neighbor_state::failed;
                    e.next = now + _s.failed_hold;
                    out.dropped += e.pending.size();
                    e.pending.clear();
                } else {
                    ++e.probes;
                    e.next = now + _s.retry;
                    request(k.port, k.ip, out);
                }
                break;
            case neighbor_state::reachable:
                // Re-confirm without forgetting: traffic keeps flowing on the old MAC meanwhile,
                // and the answer (or a changed MAC) arrives through on_arp.
                e.next = now + _s.refresh;
                request(k.port, k.ip, out);
                break;
            case neighbor_state::failed:
                break;
        }
    }
}

std::vector<neighbor_view> neighbor_table::entries() const {
    std::vector<neighbor_view> v;
    v.reserve(_entries.size());
    for (const auto& [k, e] : _entries) {
        v.push_back(neighbor_view{k, e.state, e.mac, e.probes, e.pending.size(), e.updated});
    }
    return v;
}

}  // namespace dmvpn::hub
