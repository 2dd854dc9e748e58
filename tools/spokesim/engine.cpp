#include "tools/spokesim/engine.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "dataplane/wire/checksum.hpp"
#include "tools/spokesim/payload.hpp"

namespace dmvpn::spokesim {

namespace {

constexpr uint64_t usec = 1'000'000;
constexpr uint32_t max_data_per_poll = 256;  // keeps one poll from starving receive
constexpr mac placeholder_hub_mac{0x02, 0, 0, 0, 0, 0x01};
constexpr ipv4 forged_group = 0xef010101;  // 239.1.1.1, where --forge sends its multicast
constexpr uint64_t ike_tick_us = 10'000;   // the IKE engine's timers run every 10 ms
constexpr size_t max_held_per_peer = 8;    // NHRP packets waiting for a spoke-to-spoke SA
constexpr uint64_t negotiation_timeout_us = 30 * usec;  // then a held pair may initiate again
constexpr uint16_t ike_port = 500;
constexpr uint16_t ike_nat_port = 4500;

uint64_t seconds_us(double s) { return static_cast<uint64_t>(std::llround(s * 1e6)); }

// Two NBMA addresses, either order.
uint64_t pair_key(ipv4 a, ipv4 b) { return (uint64_t{std::min(a, b)} << 32) | std::max(a, b); }
uint64_t spoke_peer_key(uint32_t local, ipv4 peer) { return (uint64_t{local} << 32) | peer; }

}  // namespace

std::string_view name(esp_status s) noexcept {
    switch (s) {
        case esp_status::ok:
            return "ok";
        case esp_status::no_sa:
            return "no_sa";
        case esp_status::auth_failed:
            return "auth_failed";
        case esp_status::replayed:
            return "replayed";
        case esp_status::malformed:
            return "malformed";
        case esp_status::failed:
            return "failed";
    }
    return "?";
}

std::string_view name(phase p) noexcept {
    switch (p) {
        case phase::resolving_hub:
            return "arp";
        case phase::keying:
            return "keying";
        case phase::registering:
            return "registering";
        case phase::traffic:
            return "traffic";
        case phase::draining:
            return "draining";
        case phase::done:
            return "done";
    }
    return "?";
}

engine::engine(const options& o, const mac& port_mac, frame_sink& sink,
               std::unique_ptr<esp_layer> esp, std::unique_ptr<ike_layer> ike)
    : _o(o),
      _topo(o),
      _port_mac(port_mac),
      _sink(sink),
      _esp(std::move(esp)),
      _ike(std::move(ike)),
      _settings(nhrp_settings::from(o, _topo)) {
    if (_ike && !_esp) {
        throw std::invalid_argument("spokesim::engine: IKE without an ESP layer to install in");
    }
    _ike_state.resize(_ike ? _topo.size() : 0);
    _spokes.reserve(_topo.size());
    for (uint32_t i = 0; i < _topo.size(); ++i) {
        _spokes.emplace_back(_topo.spoke(i), _settings);
    }
    _data.resize(_topo.size());
    if (o.nhs.size() > 1) {
        _nhs = o.nhs;
        _nhs_mac.resize(_nhs.size());
        _groups.reserve(_topo.size());
        for (uint32_t i = 0; i < _topo.size(); ++i) {
            _groups.emplace_back(_topo.spoke(i), _settings,
                                 std::span<const nhs_address>(_nhs).subspan(1));
        }
    }
    for (uint32_t k = 0; k < o.stop_refresh && k < _topo.size(); ++k) {
        _spokes[k].stop_refreshing();
    }
    if (o.hub_mac) {
        _hub_mac = *o.hub_mac;
        _hub_mac_known = true;
    }
}

engine::~engine() = default;

uint32_t engine::peer_of(uint32_t local) const noexcept {
    return static_cast<uint32_t>((uint64_t{local} + _o.peer_offset) % _topo.size());
}

ipv4 engine::nbma_of(uint32_t local) const noexcept {
    return _moved && *_moved == local ? _moved_nbma : _topo.nbma_of(local);
}

std::optional<uint32_t> engine::local_by_nbma(ipv4 a) const noexcept {
    if (_moved && a == _moved_nbma) {
        return _moved;
    }
    auto local = _topo.local_by_nbma(a);
    if (local && _moved && *local == *_moved) {
        return std::nullopt;  // the moved spoke no longer answers at its old address
    }
    return local;
}

std::optional<size_t> engine::nhs_index(ipv4 a) const noexcept {
    if (_nhs.empty()) {
        return a == _topo.hub_nbma() ? std::optional<size_t>(0) : std::nullopt;
    }
    for (size_t j = 0; j < _nhs.size(); ++j) {
        if (_nhs[j].nbma == a) {
            return j;
        }
    }
    return std::nullopt;
}

ipv4 engine::nhs_of(uint32_t local) const noexcept {
    return _groups.empty() ? _topo.hub_nbma() : _nhs[_groups[local].active()].nbma;
}

const mac& engine::mac_towards(ipv4 dst) const noexcept {
    if (auto j = nhs_index(dst); j && *j > 0 && _nhs_mac[*j]) {
        return *_nhs_mac[*j];
    }
    return _hub_mac_known ? _hub_mac : placeholder_hub_mac;
}

bool engine::spoke_registered(uint32_t local, uint64_t now_us) const noexcept {
    return _groups.empty() ? _spokes[local].registered(now_us)
                           : _groups[local].any_registered(_spokes[local], now_us);
}

void engine::send_flood(uint64_t i) {
    auto n = static_cast<uint32_t>(_spokes.size());
    auto local = static_cast<uint32_t>(i % n);
    auto kind = static_cast<size_t>(i % 3);
    // A registration for an address no spoke owns (the block after the spokes' own), with a
    // request ID of its own so that nothing legitimate can match a reply to it.
    spoke_identity id = _topo.spoke(local);
    id.overlay = _topo.overlay_of(n + local);
    nhrp_settings s = _settings;
    s.auth = _settings.auth == "flood" ? "flood!" : "flood";
    auto request_id = static_cast<uint32_t>(0x80000000u | (i & 0x7fffffffu));
    if (kind == 0) {
        // Malformed: the right password, the checksum broken. Inside the spoke's own ESP, so
        // it reaches the NHRP server rather than a transport drop.
        s.auth = _settings.auth;
        auto bytes = nhrp::build(build_registration_request(id, s, request_id, false));
        if (!bytes || bytes->size() < 14) {
            return;
        }
        (*bytes)[13] ^= 0xff;
        send_outer(local, _topo.hub_nbma(), gre_proto_nhrp, *bytes, true);
    } else if (kind == 1) {
        // A wrong password, from a known spoke's address and SA.
        auto bytes = nhrp::build(build_registration_request(id, s, request_id, false));
        if (!bytes) {
            return;
        }
        send_outer(local, _topo.hub_nbma(), gre_proto_nhrp, *bytes, true);
    } else {
        // An unknown source: an NBMA address no spoke has (two blocks after the spokes'), no
        // SA with the hub, so plain GRE.
        id.nbma = _topo.nbma_of(2 * n + local);
        auto bytes = nhrp::build(build_registration_request(id, s, request_id, false));
        if (!bytes) {
            return;
        }
        send_plain_gre(id.nbma, gre_proto_nhrp, *bytes);
    }
    ++_flood_sent[kind];
}

void engine::send_plain_gre(ipv4 src_nbma, uint16_t gre_proto, std::span<const uint8_t> payload) {
    size_t gre_len = (_o.gre_key ? 8 : 4) + payload.size();
    _ip.clear();
    put_ipv4(_ip, src_nbma, _topo.hub_nbma(), ip_proto_gre, gre_len, ++_ip_id);
    put_gre(_ip, _o.gre_key, gre_proto);
    _ip.insert(_ip.end(), payload.begin(), payload.end());
    _frame.clear();
    put_eth(_frame, _hub_mac_known ? _hub_mac : placeholder_hub_mac, _port_mac, ethertype_ipv4);
    _frame.insert(_frame.end(), _ip.begin(), _ip.end());
    _sink.send(_frame);
}

void engine::send_forged(uint64_t i) {
    auto n = static_cast<uint32_t>(_spokes.size());
    auto j = static_cast<uint32_t>(i % _o.forge);
    auto kind = static_cast<size_t>(i / _o.forge);
    // Addresses of its own after the spokes' three blocks (spokes, flood / moved, unknown).
    spoke_identity id = _topo.spoke(0);
    id.nbma = _topo.nbma_of(3 * n + j);
    id.overlay = _topo.overlay_of(3 * n + j);
    auto request_id = static_cast<uint32_t>(0x40000000u | (j & 0x3fffffffu));
    if (kind == 0) {
        auto bytes = nhrp::build(build_registration_request(id, _settings, request_id, false));
        if (!bytes) {
            return;
        }
        send_plain_gre(id.nbma, gre_proto_nhrp, *bytes);
    } else if (kind == 1) {
        ipv4 target = _topo.overlay_of(j % n);
        auto bytes =
            nhrp::build(build_resolution_request(id, _settings, target, request_id ^ 0x20000000u));
        if (!bytes) {
            return;
        }
        send_plain_gre(id.nbma, gre_proto_nhrp, *bytes);
    } else {
        _inner.clear();
        constexpr size_t payload = 32;
        put_ipv4(_inner, id.overlay, forged_group, ip_proto_udp, 8 + payload, ++_ip_id);
        put_udp(_inner, 20000, 20000, payload);
        _inner.resize(_inner.size() + payload, 0x6d);
        send_plain_gre(id.nbma, gre_proto_ipv4, _inner);
    }
    ++_forged_sent[kind];
}

void engine::start(uint64_t now_us) {
    _start_us = now_us;
    _next_arp_us = now_us;
    double wait = _o.register_wait > 0 ? _o.register_wait
                                       : 10 + _topo.size() / _o.registration_rate +
                                             (_ike ? _topo.size() / _o.ike_rate : 0.0);
    _register_deadline_us = now_us + seconds_us(wait);
    _phase = phase::resolving_hub;
}

void engine::send_outer(uint32_t local, ipv4 dst_nbma, uint16_t gre_proto,
                        std::span<const uint8_t> gre_payload, bool protect) {
    size_t gre_len = (_o.gre_key ? 8 : 4) + gre_payload.size();
    _ip.clear();
    put_ipv4(_ip, nbma_of(local), dst_nbma, ip_proto_gre, gre_len, ++_ip_id);
    put_gre(_ip, _o.gre_key, gre_proto);
    _ip.insert(_ip.end(), gre_payload.begin(), gre_payload.end());
    if (_esp && protect) {
        if (esp_status st = _esp->protect(local, _ip); st != esp_status::ok) {
            ++_data[local].esp_errors;
            return;
        }
    }
    transmit_ip(_now_us);
}

void engine::transmit_ip(uint64_t now_us) {
    ipv4 dst = (ipv4{_ip[16]} << 24) | (ipv4{_ip[17]} << 16) | (ipv4{_ip[18]} << 8) | _ip[19];
    if (local_by_nbma(dst)) {
        buffer copy = _ip;  // what it triggers builds into _ip again
        on_ipv4(copy, now_us);
        return;
    }
    _frame.clear();
    put_eth(_frame, mac_towards(dst), _port_mac, ethertype_ipv4);
    _frame.insert(_frame.end(), _ip.begin(), _ip.end());
    if (_frame.size() < 60) {
        _frame.resize(60, 0);
    }
    _sink.send(_frame);
}

void engine::send_datagram(const ike_datagram& d, uint64_t now_us) {
    // Port 4500 carries IKE after the non-ESP marker (RFC 3948 section 2.2).
    size_t marker = d.sport == ike_nat_port || d.dport == ike_nat_port ? 4 : 0;
    _ip.clear();
    put_ipv4(_ip, d.src, d.dst, ip_proto_udp, 8 + marker + d.payload.size(), ++_ip_id);
    put_udp(_ip, d.sport, d.dport, marker + d.payload.size());
    _ip.resize(_ip.size() + marker, 0);
    _ip.insert(_ip.end(), d.payload.begin(), d.payload.end());
    transmit_ip(now_us);
}

void engine::send_direct(uint32_t local, ipv4 peer_nbma, std::span<const uint8_t> nhrp_bytes,
                         uint64_t now_us) {
    if (_esp->has(local, peer_nbma)) {
        send_outer(local, peer_nbma, gre_proto_nhrp, nhrp_bytes, true);
        return;
    }
    auto& held = _held[spoke_peer_key(local, peer_nbma)];
    if (held.size() >= max_held_per_peer) {
        ++_held_dropped;
        return;
    }
    held.emplace_back(nhrp_bytes.begin(), nhrp_bytes.end());
    ++_held_total;
    negotiate(local, peer_nbma, now_us);
}

void engine::negotiate(uint32_t local, ipv4 peer_nbma, uint64_t now_us) {
    // One negotiation per pair of spokes, whichever side started it.
    auto [it, fresh] = _negotiating.try_emplace(pair_key(nbma_of(local), peer_nbma), now_us);
    if (fresh || now_us >= it->second + negotiation_timeout_us) {
        it->second = now_us;
        _ike->initiate(local, peer_nbma, now_us);
    }
}

void engine::send_nhrp(uint32_t local, const outgoing& out, uint64_t now_us) {
    auto bytes = nhrp::build(out.pkt);
    if (!bytes) {
        ++_data[local].nhrp_parse_errors;
        return;
    }
    if (nhs_index(out.nbma_dst)) {
        send_outer(local, out.nbma_dst, gre_proto_nhrp, *bytes, true);
        return;
    }
    if (_ike && local_by_nbma(out.nbma_dst)) {
        // To another emulated spoke: over their own SA, negotiated first if need be. The
        // packets stay inside the emulator, as real IPv4 through the same ESP and parsing.
        send_direct(local, out.nbma_dst, *bytes, now_us);
        return;
    }
    if (auto peer = local_by_nbma(out.nbma_dst)) {
        // The direct spoke-to-spoke path stays inside the emulator: both ends are ours, and a
        // frame sent to our own MAC would never reach the hub anyway. It still goes through
        // the codec (build, then parse on the other side).
        _gre.clear();
        put_gre(_gre, _o.gre_key, gre_proto_nhrp);
        _gre.insert(_gre.end(), bytes->begin(), bytes->end());
        buffer copy = _gre;  // on_gre may build frames into _gre again
        on_gre(*peer, copy, false, now_us);
        return;
    }
    // A requester that is not one of ours (another emulator process, a real spoke): out of the
    // port towards it, through the hub's MAC as the gateway, without ESP (no SA with it).
    send_outer(local, out.nbma_dst, gre_proto_nhrp, *bytes, false);
}

void engine::build_inner(uint32_t src_local, uint32_t dst_local, uint64_t seq, buffer& out) const {
    out.clear();
    size_t udp_len = 8 + _o.payload_size;
    bool to_hub = _o.data_to_hub_port != 0;
    const ipv4 dst = _o.data_to != 0 ? _o.data_to
                     : to_hub        ? _topo.hub_overlay()
                                     : _topo.traffic_address_of(dst_local);
    put_ipv4(out, _topo.traffic_address_of(src_local), dst, ip_proto_udp, udp_len,
             static_cast<uint16_t>(seq));
    put_udp(out, static_cast<uint16_t>(10000 + (_o.first_spoke + src_local) % 50000),
            to_hub ? _o.data_to_hub_port : data_dst_port, _o.payload_size);
    size_t at = out.size();
    out.resize(at + _o.payload_size);
    write_payload(std::span<uint8_t>(out).subspan(at),
                  {_o.first_spoke + src_local, _o.first_spoke + dst_local, seq});
}

void engine::send_data(uint32_t local, uint64_t now_us) {
    uint32_t dst = peer_of(local);
    data_counters& d = _data[local];
    build_inner(local, dst, d.next_seq++, _inner);
    if (_ike && _spokes[local].find_shortcut(_topo.traffic_address_of(dst), now_us) != nullptr) {
        if (_esp->has(local, nbma_of(dst))) {
            // Phase 3 shortcut over the two spokes' own SA: IPv4/ESP/GRE, in the process.
            ++d.sent_shortcut;
            send_outer(local, nbma_of(dst), gre_proto_ipv4, _inner, true);
            return;
        }
        // A shortcut no spoke-to-spoke exchange keyed (a hub answered for the peer, from a
        // static map or another hub's cache): key it now; the hub carries the data meanwhile.
        negotiate(local, nbma_of(dst), now_us);
    }
    if (!_ike && _spokes[local].find_shortcut(_topo.traffic_address_of(dst), now_us) != nullptr) {
        // Phase 3 shortcut: modelled as an internal direct link between the two emulated
        // spokes (GRE with the tunnel key, no hub, no ESP), counted apart from the hub path.
        _gre.clear();
        put_gre(_gre, _o.gre_key, gre_proto_ipv4);
        _gre.insert(_gre.end(), _inner.begin(), _inner.end());
        ++d.sent_shortcut;
        on_gre(dst, _gre, false, now_us);
        return;
    }
    ++d.sent_via_hub;
    if (!_groups.empty()) {
        _groups[local].choose(_spokes[local], now_us, seconds_us(_o.nhs_timeout));
    }
    send_outer(local, nhs_of(local), gre_proto_ipv4, _inner, true);
}

void engine::emit_data(uint32_t src_local) {
    data_counters& d = _data[src_local];
    build_inner(src_local, peer_of(src_local), d.next_seq++, _inner);
    ++d.sent_via_hub;
    send_outer(src_local, _topo.hub_nbma(), gre_proto_ipv4, _inner, true);
}

void engine::on_frame(std::span<const uint8_t> frame, uint64_t now_us) {
    _now_us = now_us;
    auto eth = parse_eth(frame);
    if (!eth || (eth->dst != _port_mac && eth->dst != broadcast_mac)) {
        ++_not_ours;
        return;
    }
    if (eth->type == ethertype_arp) {
        auto arp = parse_arp(eth->payload);
        if (!arp) {
            ++_not_ours;
            return;
        }
        if (arp->sender_ip == _topo.hub_nbma() && !_o.hub_mac) {
            _hub_mac = arp->sender_mac;
            _hub_mac_known = true;
        }
        if (auto j = nhs_index(arp->sender_ip); j && *j > 0 && !_nhs.empty()) {
            _nhs_mac[*j] = arp->sender_mac;
        }
        if (arp->op == 1 && local_by_nbma(arp->target_ip)) {
            _sink.send(arp_frame(2, _port_mac, arp->target_ip, arp->sender_mac, arp->sender_ip));
            ++_arp_replies;
        }
        return;
    }
    if (eth->type != ethertype_ipv4 || eth->dst != _port_mac) {
        ++_not_ours;
        return;
    }
    on_ipv4(eth->payload, now_us);
}

void engine::on_ipv4(std::span<const uint8_t> packet, uint64_t now_us) {
    auto ip = parse_ipv4(packet);
    std::optional<uint32_t> local = ip ? local_by_nbma(ip->dst) : std::nullopt;
    if (!local) {
        ++_not_ours;
        return;
    }
    data_counters& d = _data[*local];
    if (!ip->checksum_ok) {
        ++d.corrupt;
        return;
    }
    // From the hub, or straight from another spoke (a shortcut).
    bool via_hub = nhs_index(ip->src).has_value();
    _rx_src = ip->src;
    if (ip->proto == ip_proto_udp) {
        on_udp(*local, *ip, now_us);
        return;
    }
    if (ip->proto == ip_proto_esp) {
        if (!_esp) {
            ++d.esp_errors;
            return;
        }
        buffer clear(packet.begin(),
                     packet.begin() + static_cast<long>(ip->header.size() + ip->payload.size()));
        if (_esp->unprotect(*local, clear) != esp_status::ok) {
            ++d.esp_errors;
            return;
        }
        auto inner = parse_ipv4(clear);
        if (!inner || inner->proto != ip_proto_gre) {
            ++d.esp_errors;
            return;
        }
        on_gre(*local, inner->payload, via_hub, now_us);
        return;
    }
    if (ip->proto != ip_proto_gre) {
        ++_not_ours;
        return;
    }
    if (_esp) {
        ++d.unprotected;
        return;
    }
    on_gre(*local, ip->payload, via_hub, now_us);
}

void engine::on_udp(uint32_t local, const ipv4_view& ip, uint64_t now_us) {
    auto u = parse_udp(ip.payload);
    if (!u || !_ike || (u->dst_port != ike_port && u->dst_port != ike_nat_port)) {
        ++_udp_not_ike;
        return;
    }
    std::span<const uint8_t> p = u->payload;
    if (p.size() == 1 && p[0] == 0xff) {
        ++_nat_keepalives;  // RFC 3948 section 2.3: nothing to answer
        return;
    }
    if (u->dst_port == ike_nat_port) {
        // IKE follows the non-ESP marker; anything else is ESP in UDP, which only a NAT
        // between a spoke and the hub would bring: none sits inside the emulator.
        if (p.size() < 4 || p[0] != 0 || p[1] != 0 || p[2] != 0 || p[3] != 0) {
            ++_udp_not_ike;
            return;
        }
        p = p.subspan(4);
    }
    ike_datagram d;
    d.local = local;
    d.src = ip.src;
    d.dst = ip.dst;
    d.sport = u->src_port;
    d.dport = u->dst_port;
    d.payload.assign(p.begin(), p.end());
    _ike->on_datagram(d, now_us);
}

void engine::announce(uint32_t local) {
    // A gratuitous ARP request (RFC 5227): a hub that knows this NBMA address under another MAC
    // (an earlier run's) moves it here by RFC 826's merge before it answers, as it must for a
    // replaced router.
    ipv4 self = nbma_of(local);
    _sink.send(arp_frame(1, _port_mac, self, broadcast_mac, self));
    ++_arp_announcements;
}

void engine::run_ike(uint64_t now_us) {
    // The ramp: spoke k initiates k / ike_rate seconds into the keying phase; then the spokes
    // whose IKE SA died, --ike-retry seconds after.
    uint32_t budget = max_data_per_poll;
    auto n = static_cast<uint32_t>(_spokes.size());
    while (_ike_ramp < n && budget > 0 &&
           now_us >= _keying_since_us + seconds_us(_ike_ramp / _o.ike_rate)) {
        _ike_state[_ike_ramp].initiated = true;
        _ike_state[_ike_ramp].initiated_us = now_us;
        _first_initiated_us = _ike_ramp == 0 ? now_us : _first_initiated_us;
        announce(_ike_ramp);
        _ike->initiate(_ike_ramp, _topo.hub_nbma(), now_us);
        ++_ike_ramp;
        --budget;
    }
    while (!_ike_retries.empty() && _ike_retries.front().first <= now_us && budget > 0) {
        uint32_t k = _ike_retries.front().second;
        _ike_retries.pop_front();
        if (!_ike_state[k].keyed) {
            _ike_state[k].initiated_us = now_us;
            _ike_state[k].timed = false;
            _ike_state[k].keyed_timed = false;
            announce(k);
            _ike->initiate(k, _topo.hub_nbma(), now_us);
            --budget;
        }
    }
    if (now_us >= _next_ike_tick_us) {
        _ike->tick(now_us);
        _next_ike_tick_us = now_us + ike_tick_us;
    }
    // Datagrams between two of our spokes come back in at once and answer in turn: drain until
    // the engine has nothing more to say.
    std::vector<ike_datagram> send;
    std::vector<ike_event> events;
    for (int round = 0; round < 64; ++round) {
        send.clear();
        events.clear();
        _ike->take(send, events);
        if (send.empty() && events.empty()) {
            break;
        }
        for (const ike_datagram& d : send) {
            send_datagram(d, now_us);
        }
        for (const ike_event& e : events) {
            on_ike_event(e, now_us);
        }
    }
}

void engine::on_ike_event(const ike_event& e, uint64_t now_us) {
    if (e.local >= _spokes.size()) {
        return;
    }
    bool hub = e.peer == _topo.hub_nbma();
    ike_state& st = _ike_state[e.local];
    if (e.what == ike_event::kind::ike_up) {
        if (hub && !st.timed && st.initiated_us != 0) {
            st.timed = true;
            _handshake_us.push_back(now_us - st.initiated_us);
            _last_ike_up_us = now_us;
        }
        return;
    }
    if (e.what == ike_event::kind::child_up) {
        if (hub) {
            if (!st.keyed_timed && st.initiated_us != 0) {
                st.keyed_timed = true;
                _keyed_us.push_back(now_us - st.initiated_us);
                _last_keyed_us = now_us;
            }
            if (!st.keyed) {
                st.keyed = true;
                ++_keyed;
                // NHRP goes inside the new SA: register now, or --reg-jitter later.
                uint64_t due = now_us;
                if (_o.reg_jitter_ms > 0) {
                    std::uniform_real_distribution<double> ms(0, _o.reg_jitter_ms);
                    due += static_cast<uint64_t>(ms(_jitter_rng) * 1000);
                }
                _spokes[e.local].start(due);
                _next_scan_us = std::min(_next_scan_us, due);
            }
            return;
        }
        _spoke_sas += e.rekey ? 0 : 1;
        _negotiating.erase(pair_key(nbma_of(e.local), e.peer));
        auto held = _held.find(spoke_peer_key(e.local, e.peer));
        if (held != _held.end()) {
            std::vector<buffer> packets = std::move(held->second);
            _held.erase(held);
            for (const buffer& b : packets) {
                send_outer(e.local, e.peer, gre_proto_nhrp, b, true);
            }
        }
        return;
    }
    // peer_down
    if (hub) {
        ++_peer_downs;
        if (st.keyed) {
            st.keyed = false;
            --_keyed;
        }
        // Nothing reaches the hub without an SA: no registration until keyed again.
        _spokes[e.local].start(UINT64_MAX);
        _ike_retries.emplace_back(now_us + seconds_us(_o.ike_retry), e.local);
        return;
    }
    _negotiating.erase(pair_key(nbma_of(e.local), e.peer));
    auto held = _held.find(spoke_peer_key(e.local, e.peer));
    if (held != _held.end()) {
        _held_dropped += held->second.size();
        _held.erase(held);
    }
}

void engine::on_gre(uint32_t local, std::span<const uint8_t> gre, bool via_hub, uint64_t now_us) {
    data_counters& d = _data[local];
    auto g = parse_gre(gre);
    if (!g) {
        ++d.corrupt;
        return;
    }
    if (g->key != _o.gre_key) {
        ++d.gre_key_mismatch;
        return;
    }
    if (g->proto == gre_proto_nhrp) {
        on_nhrp(local, g->payload, now_us);
    } else if (g->proto == gre_proto_ipv4) {
        on_data(local, g->payload, via_hub);
    } else {
        ++_not_ours;
    }
}

void engine::on_nhrp(uint32_t local, std::span<const uint8_t> bytes, uint64_t now_us) {
    auto p = nhrp::parse(bytes);
    if (!p) {
        ++_data[local].nhrp_parse_errors;
        return;
    }
    spoke& s = _spokes[local];
    ipv4 from = _rx_src;
    _rx_src = 0;
    if (auto j = nhs_index(from);
        j && *j > 0 && !_groups.empty() && p->hdr.type == nhrp::op::registration_reply) {
        // The reply of another NHS: its own client of this spoke's takes it.
        spoke& c = _groups[local].client(*j - 1);
        (void)c.handle(*p, now_us);
        return;
    }
    if (p->hdr.type == nhrp::op::error_indication) {
        // An Error Indication names the offender's protocol address as its destination: one
        // for an address this spoke does not own answers someone else's packet (the flood's
        // foreign registrations), not anything this spoke sent.
        auto to = from_bytes(p->dst_proto);
        if (to && !s.owns(*to)) {
            ++_foreign_answers;
            return;
        }
    }
    bool was = s.ever_registered();
    uint64_t replies = s.counters().registration_replies;
    auto out = s.handle(*p, now_us);
    if (!was && s.ever_registered()) {
        ++_registered;
    }
    if (s.counters().registration_replies != replies) {
        if (_registration_rtt_us.size() < max_rtt_samples) {
            _registration_rtt_us.push_back(s.last_registration_rtt_us());
        } else {
            ++_registration_rtt_unkept;
        }
    }
    if (out) {
        send_nhrp(local, *out, now_us);
    }
}

void engine::on_data(uint32_t local, std::span<const uint8_t> inner, bool via_hub) {
    data_counters& d = _data[local];
    auto ip = parse_ipv4(inner);
    const bool broadcast =
        ip && (ip->dst == 0xffffffffu ||
               (_o.tunnel_prefix.length < 31 &&
                ip->dst == (_o.tunnel_prefix.network | ~_o.tunnel_prefix.mask())));
    if (ip && ip->checksum_ok && ((ip->dst >> 28) == 0xe || broadcast) && via_hub) {
        // The hub's replication of a group's traffic, or of a broadcast its host sent out of
        // the tunnel's kernel interface (a copy to every spoke of the multicast map).
        ++d.multicast_received;
        return;
    }
    if (ip && ip->checksum_ok && ip->proto == ip_proto_icmp &&
        (ip->dst == _topo.overlay_of(local) || ip->dst == _topo.traffic_address_of(local)) &&
        answer_echo(local, *ip)) {
        ++d.echo_replies;
        return;
    }
    if (!ip || !ip->checksum_ok || ip->dst != _topo.traffic_address_of(local) ||
        ip->proto != ip_proto_udp) {
        ++d.corrupt;
        return;
    }
    auto udp = parse_udp(ip->payload);
    if (!udp || udp->dst_port != data_dst_port) {
        ++d.corrupt;
        return;
    }
    auto info = check_payload(udp->payload);
    if (!info || info->dst != _o.first_spoke + local || info->src < _o.first_spoke ||
        info->src - _o.first_spoke >= _topo.size()) {
        ++d.corrupt;
        return;
    }
    uint32_t src_local = info->src - _o.first_spoke;
    if (peer_of(src_local) != local || ip->src != _topo.traffic_address_of(src_local)) {
        ++d.corrupt;
        return;
    }
    if (info->seq <= d.highest_seen) {
        ++d.reordered;
    } else {
        d.highest_seen = info->seq;
    }
    if (via_hub) {
        ++d.received_via_hub;
    } else {
        ++d.received_shortcut;
    }
}

bool engine::answer_echo(uint32_t local, const ipv4_view& ip) {
    // RFC 792: type 8 code 0 answered by type 0 with the same identifier, sequence and data;
    // through the hub, as everything this spoke sends.
    auto icmp = ip.payload;
    if (icmp.size() < 8 || icmp[0] != 8 || icmp[1] != 0 || wire::inet_checksum(icmp) != 0) {
        return false;
    }
    _inner.clear();
    put_ipv4(_inner, ip.dst, ip.src, ip_proto_icmp, icmp.size(), 0);
    size_t at = _inner.size();
    _inner.insert(_inner.end(), icmp.begin(), icmp.end());
    std::span<uint8_t> reply = std::span<uint8_t>(_inner).subspan(at);
    reply[0] = 0;
    reply[2] = 0;
    reply[3] = 0;
    uint16_t sum = wire::inet_checksum(reply);
    reply[2] = static_cast<uint8_t>(sum >> 8);
    reply[3] = static_cast<uint8_t>(sum);
    send_outer(local, nhs_of(local), gre_proto_ipv4, _inner, true);
    return true;
}

void engine::poll(uint64_t now_us) {
    _now_us = now_us;
    if (_phase == phase::done) {
        return;
    }
    if (_phase == phase::resolving_hub) {
        if (_hub_mac_known && _ike) {
            // Each spoke registers once its IKE SA with the hub carries a CHILD_SA.
            _phase = phase::keying;
            _keying_since_us = now_us;
            _next_ike_tick_us = now_us;
            _next_scan_us = UINT64_MAX;
        } else if (_hub_mac_known) {
            _phase = phase::registering;
            // The ramp: spoke k registers k/R seconds after the hub became reachable.
            for (uint32_t k = 0; k < _spokes.size(); ++k) {
                _spokes[k].start(now_us + seconds_us(k / _o.registration_rate));
                for (size_t j = 0; !_groups.empty() && j < _groups[k].size(); ++j) {
                    _groups[k].client(j).start(now_us + seconds_us(k / _o.registration_rate));
                }
            }
            _next_scan_us = now_us;
            _registering_since_us = now_us;
        } else if (now_us >= _register_deadline_us) {
            _phase = phase::done;
            return;
        } else if (now_us >= _next_arp_us) {
            _sink.send(arp_frame(1, _port_mac, _topo.nbma_of(0), broadcast_mac, _topo.hub_nbma()));
            _next_arp_us = now_us + usec;
            return;
        } else {
            return;
        }
    }
    if (!_nhs.empty() && now_us >= _next_arp_us) {
        for (size_t j = 1; j < _nhs.size(); ++j) {
            if (!_nhs_mac[j]) {
                _sink.send(arp_frame(1, _port_mac, _topo.nbma_of(0), broadcast_mac, _nhs[j].nbma));
            }
        }
        _next_arp_us = now_us + usec;
    }
    if (_ike) {
        run_ike(now_us);
    }
    if (_phase == phase::keying && (_keyed == _spokes.size() || now_us >= _register_deadline_us)) {
        _phase = phase::registering;
        _registering_since_us = now_us;
    }
    // Registrations (first, retransmit, refresh): a full scan only when one is due.
    if (now_us >= _next_scan_us) {
        uint64_t next = UINT64_MAX;
        for (uint32_t k = 0; k < _spokes.size(); ++k) {
            if (auto out = _spokes[k].poll(now_us)) {
                if (!_spokes[k].registered(now_us)) {
                    announce(k);
                }
                send_nhrp(k, *out, now_us);
            }
            next = std::min(next, _spokes[k].next_due_us());
            for (size_t j = 0; !_groups.empty() && j < _groups[k].size(); ++j) {
                spoke& c = _groups[k].client(j);
                if (auto out = c.poll(now_us)) {
                    send_nhrp(k, *out, now_us);
                }
                next = std::min(next, c.next_due_us());
            }
        }
        _next_scan_us = next;
    }
    if (_phase == phase::registering && _o.flood_ratio > 0) {
        // The flood runs at flood_ratio times the registration ramp's rate.
        auto due = static_cast<uint64_t>(static_cast<double>(now_us - _registering_since_us) *
                                         _o.flood_ratio * _o.registration_rate / 1e6);
        uint32_t budget = max_data_per_poll;
        while (_flood_total < due && budget-- > 0) {
            send_flood(_flood_total++);
        }
    }
    if (_phase == phase::traffic && _o.forge > 0) {
        // From the start of traffic, once the spokes registered: they must stay registered
        // (their refreshes fall inside the flood) and keep being answered.
        auto due = std::min<uint64_t>(
            3ull * _o.forge, static_cast<uint64_t>(static_cast<double>(now_us - _traffic_start_us) *
                                                   _o.forge_rate / 1e6));
        uint32_t budget = max_data_per_poll;
        while (_forged_total < due && budget-- > 0) {
            send_forged(_forged_total++);
        }
    }
    if (_phase == phase::traffic && _o.move_spoke && !_moved &&
        now_us >= _traffic_start_us + seconds_us(_o.move_after)) {
        // The spoke's new underlay address: the block after the spokes' own.
        _moved = *_o.move_spoke;
        _moved_nbma = _topo.nbma_of(static_cast<uint32_t>(_spokes.size()) + *_moved);
        _spokes[*_moved].move_to(_moved_nbma, now_us);
        _next_scan_us = now_us;
    }
    if (_phase == phase::registering) {
        if (_registered == _spokes.size() || now_us >= _register_deadline_us) {
            _phase = phase::traffic;
            _traffic_start_us = now_us;
            _traffic_end_us = _o.duration > 0
                                  ? now_us + seconds_us(_o.data_after) + seconds_us(_o.duration)
                                  : UINT64_MAX;
            if (_registered == 0) {
                // Nobody to send from: skip straight to the end.
                _traffic_end_us = now_us;
            }
        }
    }
    if (_phase == phase::traffic && _o.resolve && !_resolved && _spokes.size() >= 2 &&
        now_us >= _traffic_start_us + seconds_us(_o.resolve_after)) {
        // Phase 2: each spoke resolves where its traffic goes before sending any.
        _resolved = true;
        for (uint32_t k = 0; k < _spokes.size(); ++k) {
            if (!_spokes[k].registered(now_us)) {
                continue;
            }
            // --data-to: what the data goes to (an address behind the hub's routes).
            const ipv4 target = _o.data_to != 0 ? _o.data_to : _topo.traffic_address_of(peer_of(k));
            if (auto out = _spokes[k].resolve(target, now_us)) {
                send_nhrp(k, *out, now_us);
            }
        }
    }
    if (_phase == phase::traffic) {
        uint64_t data_start = _traffic_start_us + seconds_us(_o.data_after);
        if (_o.data_rate > 0 && _spokes.size() >= 2 && now_us >= data_start) {
            auto due = static_cast<uint64_t>(static_cast<double>(now_us - data_start) *
                                             _o.data_rate / 1e6);
            uint32_t budget = max_data_per_poll;
            while (_data_sent_total < due && budget-- > 0) {
                // Round robin over registered spokes; unregistered ones stay silent.
                for (uint32_t tries = 0; tries < _spokes.size(); ++tries) {
                    uint32_t k = _next_sender;
                    _next_sender = (_next_sender + 1) % static_cast<uint32_t>(_spokes.size());
                    if (spoke_registered(k, now_us) && (!_ike || _ike_state[k].keyed)) {
                        send_data(k, now_us);
                        break;
                    }
                }
                ++_data_sent_total;
            }
        }
        if (now_us >= _traffic_end_us) {
            _phase = phase::draining;
            _drain_end_us = now_us + seconds_us(_o.drain);
        }
    }
    if (_phase == phase::draining && now_us >= _drain_end_us) {
        _phase = phase::done;
    }
}

void engine::stop(uint64_t now_us) {
    if (_phase == phase::draining || _phase == phase::done) {
        return;
    }
    _phase = phase::draining;
    _drain_end_us = now_us + seconds_us(_o.drain);
}

totals engine::sum(uint64_t now_us) const {
    totals t;
    t.spokes = static_cast<uint32_t>(_spokes.size());
    auto add = [](nhrp_counters& a, const nhrp_counters& b) {
        a.registrations_sent += b.registrations_sent;
        a.registration_retransmits += b.registration_retransmits;
        a.registration_replies += b.registration_replies;
        a.registration_rejects += b.registration_rejects;
        a.traffic_indications += b.traffic_indications;
        a.resolution_requests_sent += b.resolution_requests_sent;
        a.resolution_replies += b.resolution_replies;
        a.resolution_rejects += b.resolution_rejects;
        a.shortcuts_installed += b.shortcuts_installed;
        a.resolution_requests_answered += b.resolution_requests_answered;
        a.purges_received += b.purges_received;
        a.purge_replies_sent += b.purge_replies_sent;
        a.error_indications += b.error_indications;
        a.auth_failures += b.auth_failures;
        a.ignored += b.ignored;
    };
    for (uint32_t k = 0; k < _spokes.size(); ++k) {
        const spoke& s = _spokes[k];
        const data_counters& d = _data[k];
        t.registered += s.registered(now_us) ? 1 : 0;
        add(t.nhrp, s.counters());
        for (const auto& sc : s.shortcuts()) {
            t.shortcuts_active += sc.expires_us > now_us ? 1 : 0;
        }
        t.data.sent_via_hub += d.sent_via_hub;
        t.data.sent_shortcut += d.sent_shortcut;
        t.data.received_via_hub += d.received_via_hub;
        t.data.received_shortcut += d.received_shortcut;
        t.data.corrupt += d.corrupt;
        t.data.reordered += d.reordered;
        t.data.esp_errors += d.esp_errors;
        t.data.gre_key_mismatch += d.gre_key_mismatch;
        t.data.unprotected += d.unprotected;
        t.data.nhrp_parse_errors += d.nhrp_parse_errors;
        t.data.multicast_received += d.multicast_received;
        t.data.echo_replies += d.echo_replies;
        // Spoke k's one sender is the spoke whose peer it is.
        if (_spokes.size() >= 2 && _o.data_to == 0) {  // --data-to: nothing comes back
            uint32_t n = static_cast<uint32_t>(_spokes.size());
            uint32_t src = static_cast<uint32_t>((k + n - _o.peer_offset % n) % n);
            uint64_t expected = _data[src].sent_via_hub + _data[src].sent_shortcut;
            uint64_t got = d.received_via_hub + d.received_shortcut;
            t.lost += expected > got ? expected - got : 0;
            t.duplicates += got > expected ? got - expected : 0;
        }
    }
    t.sent = t.data.sent_via_hub + t.data.sent_shortcut;
    t.received = t.data.received_via_hub + t.data.received_shortcut;
    return t;
}

engine::ike_totals engine::ike_sum() const {
    ike_totals t;
    if (_ike) {
        t.ike = _ike->counts();
    }
    t.keyed = _keyed;
    t.peer_downs = _peer_downs;
    t.spoke_sas = _spoke_sas;
    t.held = _held_total;
    t.held_dropped = _held_dropped;
    t.nat_keepalives = _nat_keepalives;
    t.udp_not_ike = _udp_not_ike;
    return t;
}

namespace {

// The q-quantile of sorted `t` (nearest rank), 0 when empty.
uint64_t nearest_rank(const std::vector<uint64_t>& t, double q) {
    if (t.empty()) {
        return 0;
    }
    auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(t.size())));
    return t[rank == 0 ? 0 : rank - 1];
}

}  // namespace

// Handshakes with the hub: how many came up, their times' percentiles (nearest rank), and the
// seconds from the first initiation to the last IKE SA up; then the same to the first CHILD_SA
// (ike_child_*: IKEv1's Main Mode + Quick Mode, where ike_handshake_* is Main Mode alone).
std::string engine::handshake_json() const {
    std::vector<uint64_t> t = _handshake_us;
    std::sort(t.begin(), t.end());
    auto ms = [&](double q) { return static_cast<double>(nearest_rank(t, q)) / 1e3; };
    double keying = _last_ike_up_us > _first_initiated_us
                        ? static_cast<double>(_last_ike_up_us - _first_initiated_us) / 1e6
                        : 0.0;
    std::vector<uint64_t> k = _keyed_us;
    std::sort(k.begin(), k.end());
    auto kms = [&](double q) { return static_cast<double>(nearest_rank(k, q)) / 1e3; };
    double keyed = _last_keyed_us > _first_initiated_us
                       ? static_cast<double>(_last_keyed_us - _first_initiated_us) / 1e6
                       : 0.0;
    return fmt::format(
        ",\"ike_handshakes\":{},\"ike_handshake_p50_ms\":{:.3f},"
        "\"ike_handshake_p99_ms\":{:.3f},\"ike_handshake_max_ms\":{:.3f},"
        "\"ike_keying_s\":{:.3f},\"ike_childs_timed\":{},\"ike_child_p50_ms\":{:.3f},"
        "\"ike_child_p99_ms\":{:.3f},\"ike_child_keying_s\":{:.3f}",
        t.size(), ms(0.5), ms(0.99), ms(1.0), keying, k.size(), kms(0.5), kms(0.99), keyed);
}

// Registration -> Reply times: how many were timed, their percentiles in microseconds.
std::string engine::registration_rtt_json() const {
    std::vector<uint64_t> t = _registration_rtt_us;
    std::sort(t.begin(), t.end());
    return fmt::format(
        ",\"registration_rtts\":{},\"registration_rtt_p50_us\":{},"
        "\"registration_rtt_p99_us\":{},\"registration_rtt_max_us\":{},"
        "\"registration_rtts_unkept\":{}",
        t.size(), nearest_rank(t, 0.5), nearest_rank(t, 0.99), nearest_rank(t, 1.0),
        _registration_rtt_unkept);
}

bool engine::success(uint64_t now_us) const {
    totals t = sum(now_us);
    if (_ike) {
        ike_totals k = ike_sum();
        if (k.keyed != t.spokes || k.ike.failures != 0 || k.held_dropped != 0) {
            return false;
        }
    }
    return t.registered == t.spokes && t.lost == 0 && t.duplicates == 0 && t.data.corrupt == 0 &&
           t.data.esp_errors == 0 && t.data.gre_key_mismatch == 0 && t.data.unprotected == 0 &&
           t.data.nhrp_parse_errors == 0 && t.nhrp.registration_rejects == 0 &&
           t.nhrp.resolution_rejects == 0 && t.nhrp.auth_failures == 0 &&
           (_o.data_rate == 0 || _spokes.size() < 2 || t.received > 0);
}

std::string engine::progress_line(uint64_t now_us) const {
    totals t = sum(now_us);
    ike_totals k = ike_sum();
    return fmt::format(
               "t={:.1f}s phase={} registered={}/{} sent={} (shortcut {}) received={} lost={} "
               "corrupt={} TI={} shortcuts={} purges={}",
               static_cast<double>(now_us - _start_us) / 1e6, name(_phase), t.registered, t.spokes,
               t.sent, t.data.sent_shortcut, t.received, t.lost, t.data.corrupt,
               t.nhrp.traffic_indications, t.shortcuts_active, t.nhrp.purges_received) +
           (_ike ? fmt::format(" keyed={}/{} ike_sas_up={} child_sas={} rekeys={} "
                               "ike_failures={} spoke_sas={}",
                               _keyed, t.spokes, k.ike.ike_sas_up, k.ike.child_sas, k.ike.rekeys,
                               k.ike.failures, k.spoke_sas)
                 : std::string());
}

std::string engine::report_json(uint64_t now_us) const {
    totals t = sum(now_us);
    std::string out = fmt::format(
        "{{\"ok\":{},\"phase\":\"{}\",\"elapsed_s\":{:.3f},\"spokes\":{},\"registered\":{},"
        "\"hub_mac\":\"{}\",\"registrations_sent\":{},\"registration_retransmits\":{},"
        "\"registration_replies\":{},\"registration_rejects\":{},\"traffic_indications\":{},"
        "\"resolution_requests\":{},\"resolution_replies\":{},\"resolution_rejects\":{},"
        "\"shortcuts\":{},\"shortcuts_active\":{},\"resolutions_answered\":{},"
        "\"purges_received\":{},\"error_indications\":{},\"auth_failures\":{},"
        "\"sent\":{},\"sent_via_hub\":{},\"sent_shortcut\":{},\"received\":{},"
        "\"received_via_hub\":{},\"received_shortcut\":{},\"lost\":{},\"duplicates\":{},"
        "\"reordered\":{},\"corrupt\":{},\"esp_errors\":{},\"gre_key_mismatch\":{},"
        "\"unprotected\":{},\"nhrp_parse_errors\":{},\"arp_replies\":{},"
        "\"arp_announcements\":{},\"not_ours\":{},"
        "\"flood_malformed\":{},\"flood_wrong_auth\":{},\"flood_unknown_source\":{},"
        "\"foreign_answers\":{},\"moved_nbma\":\"{}\",\"forged_registrations\":{},"
        "\"forged_resolutions\":{},\"forged_multicast\":{},\"multicast_received\":{},"
        "\"echo_replies\":{}",
        success(now_us) ? "true" : "false", name(_phase),
        static_cast<double>(now_us - _start_us) / 1e6, t.spokes, t.registered,
        _hub_mac_known ? to_string(_hub_mac) : "", t.nhrp.registrations_sent,
        t.nhrp.registration_retransmits, t.nhrp.registration_replies, t.nhrp.registration_rejects,
        t.nhrp.traffic_indications, t.nhrp.resolution_requests_sent, t.nhrp.resolution_replies,
        t.nhrp.resolution_rejects, t.nhrp.shortcuts_installed, t.shortcuts_active,
        t.nhrp.resolution_requests_answered, t.nhrp.purges_received, t.nhrp.error_indications,
        t.nhrp.auth_failures, t.sent, t.data.sent_via_hub, t.data.sent_shortcut, t.received,
        t.data.received_via_hub, t.data.received_shortcut, t.lost, t.duplicates, t.data.reordered,
        t.data.corrupt, t.data.esp_errors, t.data.gre_key_mismatch, t.data.unprotected,
        t.data.nhrp_parse_errors, _arp_replies, _arp_announcements, _not_ours, _flood_sent[0],
        _flood_sent[1], _flood_sent[2], _foreign_answers, _moved ? to_string(_moved_nbma) : "",
        _forged_sent[0], _forged_sent[1], _forged_sent[2], t.data.multicast_received,
        t.data.echo_replies);
    ike_totals k = ike_sum();
    out += fmt::format(
        ",\"ike\":{},\"keyed\":{},\"ike_sas_up\":{},\"child_sas\":{},\"rekeys\":{},"
        "\"ike_failures\":{},\"ike_peer_downs\":{},\"spoke_sas\":{},\"ike_held\":{},"
        "\"ike_held_dropped\":{},\"nat_keepalives\":{},\"udp_not_ike\":{},"
        "\"ike_datagrams_in\":{},\"ike_datagrams_out\":{}",
        _ike ? "true" : "false", k.keyed, k.ike.ike_sas_up, k.ike.child_sas, k.ike.rekeys,
        k.ike.failures, k.peer_downs, k.spoke_sas, k.held, k.held_dropped, k.nat_keepalives,
        k.udp_not_ike, k.ike.datagrams_in, k.ike.datagrams_out);
    out += handshake_json();
    out += registration_rtt_json();
    if (!_groups.empty()) {
        // Per NHS: spokes whose client of it is registered and answers now, replies taken.
        uint64_t failovers = 0;
        std::vector<uint64_t> answering(_nhs.size(), 0);
        std::vector<uint64_t> replies(_nhs.size(), 0);
        std::vector<uint64_t> active(_nhs.size(), 0);
        const uint64_t timeout_us = seconds_us(_o.nhs_timeout);
        for (uint32_t k = 0; k < _groups.size(); ++k) {
            const nhs_group& g = _groups[k];
            failovers += g.failovers();
            ++active[g.active()];
            for (size_t j = 0; j < _nhs.size(); ++j) {
                const spoke& c = j == 0 ? _spokes[k] : g.client(j - 1);
                answering[j] += nhs_answers(c, now_us, timeout_us) ? 1 : 0;
                replies[j] += c.counters().registration_replies;
            }
        }
        out += fmt::format(",\"nhs_failovers\":{},\"nhs\":[", failovers);
        for (size_t j = 0; j < _nhs.size(); ++j) {
            out += fmt::format(
                "{}{{\"nbma\":\"{}\",\"overlay\":\"{}\",\"answering\":{},"
                "\"registration_replies\":{},\"active_for\":{}}}",
                j == 0 ? "" : ",", to_string(_nhs[j].nbma), to_string(_nhs[j].overlay),
                answering[j], replies[j], active[j]);
        }
        out += "]";
    }
    if (_o.per_spoke || _spokes.size() <= 16) {
        out += ",\"per_spoke\":[";
        uint32_t n = static_cast<uint32_t>(_spokes.size());
        for (uint32_t k = 0; k < n; ++k) {
            const spoke& s = _spokes[k];
            const data_counters& d = _data[k];
            uint32_t src = n >= 2 ? static_cast<uint32_t>((k + n - _o.peer_offset % n) % n) : k;
            uint64_t expected = n >= 2 ? _data[src].sent_via_hub + _data[src].sent_shortcut : 0;
            uint64_t got = d.received_via_hub + d.received_shortcut;
            out += fmt::format(
                "{}{{\"index\":{},\"nbma\":\"{}\",\"overlay\":\"{}\",\"registered\":{},"
                "\"replies\":{},\"rejects\":{},\"last_reject\":\"{}\",\"shortcuts\":{},"
                "\"resolutions_answered\":{},\"purges_received\":{},\"sent\":{},"
                "\"sent_shortcut\":{},\"received\":{},\"received_shortcut\":{},\"lost\":{},"
                "\"corrupt\":{},\"esp_errors\":{},\"keyed\":{}}}",
                k == 0 ? "" : ",", s.id().index, to_string(nbma_of(k)), to_string(s.id().overlay),
                s.registered(now_us) ? "true" : "false", s.counters().registration_replies,
                s.counters().registration_rejects, name(s.last_reject()),
                s.counters().shortcuts_installed, s.counters().resolution_requests_answered,
                s.counters().purges_received, d.sent_via_hub + d.sent_shortcut, d.sent_shortcut,
                got, d.received_shortcut, expected > got ? expected - got : 0, d.corrupt,
                d.esp_errors, _ike && _ike_state[k].keyed ? "true" : "false");
        }
        out += "]";
    }
    out += "}";
    return out;
}

}  // namespace dmvpn::spokesim
