#include "tools/spokesim/spoke.hpp"

#include <algorithm>

namespace dmvpn::spokesim {

namespace {

constexpr uint64_t usec = 1'000'000;
// A Resolution Request left unanswered this long no longer blocks a new one.
constexpr uint64_t resolution_retry_us = 2 * usec;
constexpr uint64_t max_retransmit_s = 32;

nhrp::cie address_cie(ipv4 nbma, ipv4 proto, uint8_t prefix_length, uint16_t mtu,
                      uint16_t holding_time) {
    nhrp::cie c;
    c.prefix_length = prefix_length;
    c.mtu = mtu;
    c.holding_time = holding_time;
    c.client_nbma = to_bytes(nbma);
    c.client_proto = to_bytes(proto);
    return c;
}

nhrp::extension make_ext(uint16_t type, bool compulsory) {
    nhrp::extension e;
    e.type = type;
    e.compulsory = compulsory;
    return e;
}

nhrp::extension auth_ext(const std::string& auth) {
    nhrp::extension e = make_ext(nhrp::ext::authentication, true);
    e.auth_reserved = 0;
    e.auth_spi = 1;  // Cisco and FRR: SPI 1, clear-text password
    e.data.assign(auth.begin(), auth.end());
    return e;
}

const nhrp::extension* find_ext(const nhrp::packet& p, uint16_t type) {
    for (const auto& e : p.extensions) {
        if (e.type == type) {
            return &e;
        }
    }
    return nullptr;
}

}  // namespace

std::string_view name(verdict v) noexcept {
    switch (v) {
        case verdict::accepted:
            return "accepted";
        case verdict::wrong_type:
            return "wrong_type";
        case verdict::no_request_outstanding:
            return "no_request_outstanding";
        case verdict::request_id_mismatch:
            return "request_id_mismatch";
        case verdict::source_mismatch:
            return "source_mismatch";
        case verdict::hub_mismatch:
            return "hub_mismatch";
        case verdict::auth_mismatch:
            return "auth_mismatch";
        case verdict::no_cie:
            return "no_cie";
        case verdict::rejected:
            return "rejected";
        case verdict::bad_cie:
            return "bad_cie";
        case verdict::not_for_this_spoke:
            return "not_for_this_spoke";
        case verdict::shortcuts_disabled:
            return "shortcuts_disabled";
        case verdict::already_resolved:
            return "already_resolved";
        case verdict::bad_traffic_indication:
            return "bad_traffic_indication";
    }
    return "?";
}

nhrp_settings nhrp_settings::from(const options& o, const topology& t) {
    nhrp_settings s;
    s.style = o.style;
    s.unique = o.unique;
    s.nat_extension = o.nat_extension;
    s.shortcuts = o.shortcuts;
    s.holdtime = static_cast<uint16_t>(o.holdtime);
    s.refresh = static_cast<uint16_t>(o.registration_timeout != 0 ? o.registration_timeout
                                                                  : o.holdtime / 3);
    s.mtu = o.cie_mtu;
    s.cie_prefix = o.cie_prefix != 0 ? o.cie_prefix : (o.unique ? 255 : 32);
    s.auth = o.auth;
    s.hub_nbma = t.hub_nbma();
    s.hub_overlay = t.hub_overlay();
    return s;
}

nhrp::bytes to_bytes(ipv4 a) {
    return {static_cast<uint8_t>(a >> 24), static_cast<uint8_t>(a >> 16),
            static_cast<uint8_t>(a >> 8), static_cast<uint8_t>(a)};
}

std::optional<ipv4> from_bytes(const nhrp::bytes& b) {
    if (b.size() != 4) {
        return std::nullopt;
    }
    return (ipv4{b[0]} << 24) | (ipv4{b[1]} << 16) | (ipv4{b[2]} << 8) | ipv4{b[3]};
}

nhrp::packet build_registration_request(const spoke_identity& id, const nhrp_settings& s,
                                        uint32_t request_id, bool hub_confirmed) {
    bool frr = s.style == nhrp_style::frr;
    nhrp::packet p;
    p.hdr.type = nhrp::op::registration_request;
    // Cisco sends hop 255; FRR 1 (the NHS is one hop away) - see SOURCES.md.
    p.hdr.hop_count = frr ? 1 : 255;
    p.flags = static_cast<uint16_t>((s.unique ? nhrp::flag::reg_u : 0) |
                                    (s.nat_extension ? nhrp::flag::cisco_nat : 0));
    p.request_id = request_id;
    p.src_nbma = to_bytes(id.nbma);
    p.src_proto = to_bytes(id.overlay);
    // FRR with a `dynamic` NHS does not know the hub's protocol address and names itself.
    p.dst_proto = to_bytes(frr ? id.overlay : s.hub_overlay);

    nhrp::cie c;
    c.prefix_length = s.cie_prefix;
    c.mtu = frr ? 0 : s.mtu;
    c.holding_time = s.holdtime;
    p.cies.push_back(c);

    nhrp::extension nat = make_ext(nhrp::ext::cisco_nat_address, false);
    // The NHS as the spoke knows it: FRR puts 0.0.0.0 until a reply named the hub.
    ipv4 nat_proto = frr && !hub_confirmed ? 0 : s.hub_overlay;
    nat.cies.push_back(address_cie(s.hub_nbma, nat_proto, 32, frr ? 0 : s.mtu, 0));

    if (frr) {
        p.extensions.push_back(make_ext(nhrp::ext::forward_transit, true));
        p.extensions.push_back(make_ext(nhrp::ext::reverse_transit, true));
        p.extensions.push_back(make_ext(nhrp::ext::responder_address, true));
        if (!s.auth.empty()) {
            p.extensions.push_back(auth_ext(s.auth));
        }
    } else {
        p.extensions.push_back(make_ext(nhrp::ext::responder_address, true));
        p.extensions.push_back(make_ext(nhrp::ext::forward_transit, true));
        p.extensions.push_back(make_ext(nhrp::ext::reverse_transit, true));
        if (!s.auth.empty()) {
            p.extensions.push_back(auth_ext(s.auth));
        }
    }
    if (s.nat_extension) {
        p.extensions.push_back(nat);
    }
    p.extensions.push_back(make_ext(nhrp::ext::end, true));
    p.has_extension_area = true;
    return p;
}

nhrp::packet build_resolution_request(const spoke_identity& id, const nhrp_settings& s, ipv4 target,
                                      uint32_t request_id) {
    nhrp::packet p;
    p.hdr.type = nhrp::op::resolution_request;
    p.hdr.hop_count = 255;
    // IOS's Phase 3 request: router, authoritative, source-stable (+ NAT capable), 0xc802.
    p.flags = static_cast<uint16_t>(nhrp::flag::res_q | nhrp::flag::res_a | nhrp::flag::res_s |
                                    (s.nat_extension ? nhrp::flag::cisco_nat : 0));
    p.request_id = request_id;
    p.src_nbma = to_bytes(id.nbma);
    p.src_proto = to_bytes(id.overlay);
    p.dst_proto = to_bytes(target);
    nhrp::cie c;
    c.prefix_length = 0;
    c.mtu = s.mtu;
    c.holding_time = s.holdtime;
    p.cies.push_back(c);
    p.extensions.push_back(make_ext(nhrp::ext::responder_address, true));
    p.extensions.push_back(make_ext(nhrp::ext::forward_transit, true));
    p.extensions.push_back(make_ext(nhrp::ext::reverse_transit, true));
    if (!s.auth.empty()) {
        p.extensions.push_back(auth_ext(s.auth));
    }
    if (s.nat_extension) {
        p.extensions.push_back(make_ext(nhrp::ext::cisco_nat_address, false));
    }
    p.extensions.push_back(make_ext(nhrp::ext::end, true));
    p.has_extension_area = true;
    return p;
}

spoke::spoke(spoke_identity id, nhrp_settings s) : _id(std::move(id)), _s(std::move(s)) {}

bool spoke::registered(uint64_t now_us) const noexcept {
    return _ever_registered && now_us < _registered_until_us;
}

std::optional<outgoing> spoke::poll(uint64_t now_us) {
    if (now_us < _next_registration_us) {
        return std::nullopt;
    }
    if (_registration_id == 0) {
        _registration_id = _next_request_id++;
        _retransmit_s = 1;
        _registration_first_sent_us = now_us;
    } else {
        // Unanswered: same request ID again, as IOS does, backing off.
        ++_c.registration_retransmits;
        _retransmit_s = std::min(_retransmit_s * 2, max_retransmit_s);
    }
    ++_c.registrations_sent;
    _next_registration_us = now_us + _retransmit_s * usec;
    return outgoing{_s.hub_nbma,
                    build_registration_request(_id, _s, _registration_id, _hub_confirmed)};
}

bool spoke::auth_ok(const nhrp::packet& p) const {
    if (_s.auth.empty()) {
        return true;
    }
    const nhrp::extension* e = find_ext(p, nhrp::ext::authentication);
    return e != nullptr && e->auth_spi == 1 &&
           std::string_view(reinterpret_cast<const char*>(e->data.data()), e->data.size()) ==
               _s.auth;
}

verdict spoke::on_registration_reply(const nhrp::packet& p, uint64_t now_us) {
    verdict v = verdict::accepted;
    bool frr = _s.style == nhrp_style::frr;
    if (p.hdr.type != nhrp::op::registration_reply) {
        v = verdict::wrong_type;
    } else if (_registration_id == 0) {
        v = verdict::no_request_outstanding;
    } else if (p.request_id != _registration_id) {
        v = verdict::request_id_mismatch;
    } else if (from_bytes(p.src_proto) != _id.overlay || from_bytes(p.src_nbma) != _id.nbma) {
        v = verdict::source_mismatch;
    } else if (!auth_ok(p)) {
        v = verdict::auth_mismatch;
    } else if (p.cies.empty()) {
        v = verdict::no_cie;
    } else if (p.cies.front().code != nhrp::cie_code::success) {
        v = verdict::rejected;
    } else if (!frr && from_bytes(p.dst_proto) != _s.hub_overlay) {
        v = verdict::hub_mismatch;
    } else if (const nhrp::extension* r = find_ext(p, nhrp::ext::responder_address);
               r != nullptr && !r->cies.empty() &&
               (from_bytes(r->cies.front().client_proto) != _s.hub_overlay ||
                from_bytes(r->cies.front().client_nbma) != _s.hub_nbma)) {
        // The responder is who actually answered: it must be the hub we registered with.
        v = verdict::hub_mismatch;
    }
    if (v != verdict::accepted) {
        ++_c.registration_rejects;
        reject(v);
        return v;
    }
    ++_c.registration_replies;
    _last_registration_rtt_us =
        now_us > _registration_first_sent_us ? now_us - _registration_first_sent_us : 0;
    _ever_registered = true;
    _hub_confirmed = true;
    _registered_until_us = now_us + uint64_t{_s.holdtime} * usec;
    _registration_id = 0;
    _next_registration_us = _refresh ? now_us + uint64_t{_s.refresh} * usec : UINT64_MAX;
    return v;
}

void spoke::move_to(ipv4 nbma, uint64_t now_us) noexcept {
    _id.nbma = nbma;
    _registration_id = 0;
    _next_registration_us = now_us;
}

std::optional<outgoing> spoke::on_traffic_indication(const nhrp::packet& p, uint64_t now_us) {
    ++_c.traffic_indications;
    if (!_s.shortcuts) {
        reject(verdict::shortcuts_disabled);
        return std::nullopt;
    }
    // The triggering packet's IPv4 header: its source is one of ours, its destination is what
    // to resolve.
    const nhrp::bytes& t = p.contents;
    if (t.size() < 20 || (t[0] >> 4) != 4) {
        reject(verdict::bad_traffic_indication);
        return std::nullopt;
    }
    ipv4 src = (ipv4{t[12]} << 24) | (ipv4{t[13]} << 16) | (ipv4{t[14]} << 8) | t[15];
    ipv4 dst = (ipv4{t[16]} << 24) | (ipv4{t[17]} << 16) | (ipv4{t[18]} << 8) | t[19];
    if (!owns(src)) {
        reject(verdict::bad_traffic_indication);
        return std::nullopt;
    }
    return resolve(dst, now_us);
}

std::optional<outgoing> spoke::resolve(ipv4 dst, uint64_t now_us) {
    if (find_shortcut(dst, now_us) != nullptr) {
        reject(verdict::already_resolved);
        return std::nullopt;
    }
    for (auto& pr : _pending) {
        if (pr.target == dst && now_us - pr.sent_us < resolution_retry_us) {
            reject(verdict::already_resolved);
            return std::nullopt;
        }
    }
    std::erase_if(_pending, [&](const pending_resolution& pr) { return pr.target == dst; });
    uint32_t id = _next_request_id++;
    _pending.push_back({dst, id, now_us});
    ++_c.resolution_requests_sent;
    return outgoing{_s.hub_nbma, build_resolution_request(_id, _s, dst, id)};
}

verdict spoke::on_resolution_reply(const nhrp::packet& p, uint64_t now_us) {
    auto it = std::find_if(_pending.begin(), _pending.end(), [&](const pending_resolution& pr) {
        return pr.request_id == p.request_id;
    });
    verdict v = verdict::accepted;
    std::optional<ipv4> client_nbma;
    std::optional<ipv4> client_proto;
    uint8_t len = 0;
    if (p.hdr.type != nhrp::op::resolution_reply) {
        v = verdict::wrong_type;
    } else if (_pending.empty()) {
        v = verdict::no_request_outstanding;
    } else if (it == _pending.end()) {
        v = verdict::request_id_mismatch;
    } else if (from_bytes(p.src_proto) != _id.overlay || from_bytes(p.src_nbma) != _id.nbma ||
               from_bytes(p.dst_proto) != it->target) {
        v = verdict::source_mismatch;
    } else if (!auth_ok(p)) {
        v = verdict::auth_mismatch;
    } else if (p.cies.empty()) {
        v = verdict::no_cie;
    } else if (p.cies.front().code != nhrp::cie_code::success) {
        v = verdict::rejected;
    } else {
        const nhrp::cie& c = p.cies.front();
        client_nbma = from_bytes(c.client_nbma);
        client_proto = from_bytes(c.client_proto);
        len = c.prefix_length == 0xff ? 32 : c.prefix_length;
        if (!client_nbma || !client_proto || len > 32 || len == 0 ||
            !prefix{it->target & prefix{0, len}.mask(), len}.contains(it->target)) {
            v = verdict::bad_cie;
        }
    }
    if (v != verdict::accepted) {
        ++_c.resolution_rejects;
        reject(v);
        return v;
    }
    prefix dst{it->target & prefix{0, len}.mask(), len};
    uint64_t hold = p.cies.front().holding_time;
    std::erase_if(_shortcuts, [&](const shortcut& s) { return s.dst == dst; });
    _shortcuts.push_back({dst, *client_nbma, *client_proto, now_us + hold * usec});
    _pending.erase(it);
    ++_c.resolution_replies;
    ++_c.shortcuts_installed;
    return v;
}

std::vector<nhrp::extension> spoke::reply_extensions(const nhrp::packet& request) const {
    std::vector<nhrp::extension> out;
    bool has_end = false;
    for (const auto& e : request.extensions) {
        nhrp::extension copy = e;
        if (e.type == nhrp::ext::responder_address) {
            copy.cies.clear();
            copy.cies.push_back(address_cie(_id.nbma, _id.overlay, 0, _s.mtu, _s.holdtime));
        } else if (e.type == nhrp::ext::authentication) {
            // Rebuilt at every hop with this node's own key.
            if (_s.auth.empty()) {
                continue;
            }
            copy = auth_ext(_s.auth);
        }
        has_end |= e.type == nhrp::ext::end;
        out.push_back(copy);
    }
    if (!has_end) {
        out.push_back(make_ext(nhrp::ext::end, true));
    }
    return out;
}

std::optional<outgoing> spoke::on_resolution_request(const nhrp::packet& p, uint64_t now_us) {
    (void)now_us;
    auto target = from_bytes(p.dst_proto);
    auto requester_nbma = from_bytes(p.src_nbma);
    if (!auth_ok(p)) {
        ++_c.auth_failures;
        reject(verdict::auth_mismatch);
        return std::nullopt;
    }
    if (!target || !requester_nbma || !owns(*target)) {
        ++_c.ignored;
        reject(verdict::not_for_this_spoke);
        return std::nullopt;
    }
    nhrp::packet r;
    r.hdr = p.hdr;
    r.hdr.type = nhrp::op::resolution_reply;
    r.hdr.hop_count = 255;
    // IOS answers 0xc802 with 0xf802: it adds destination-stable and unique.
    r.flags = static_cast<uint16_t>(p.flags | nhrp::flag::res_q | nhrp::flag::res_a |
                                    nhrp::flag::res_d | nhrp::flag::res_u);
    r.request_id = p.request_id;
    r.src_nbma = p.src_nbma;
    r.src_nbma_sub = p.src_nbma_sub;
    r.src_proto = p.src_proto;
    r.dst_proto = p.dst_proto;
    // A tunnel address resolves to the host; a LAN address to the whole LAN prefix.
    uint8_t len = *target == _id.overlay ? 32 : _id.lan.length;
    r.cies.push_back(address_cie(_id.nbma, _id.overlay, len, _s.mtu, _s.holdtime));
    r.extensions = reply_extensions(p);
    r.has_extension_area = true;
    ++_c.resolution_requests_answered;
    // Phase 2/3: the reply goes straight to the requester, not back through the hub.
    return outgoing{*requester_nbma, std::move(r)};
}

std::optional<outgoing> spoke::on_purge_request(const nhrp::packet& p, uint64_t now_us) {
    (void)now_us;
    ++_c.purges_received;
    if (!auth_ok(p)) {
        ++_c.auth_failures;
        reject(verdict::auth_mismatch);
        return std::nullopt;
    }
    // Each CIE names a binding that is no longer valid: drop the shortcuts it covers.
    for (const auto& c : p.cies) {
        auto a = from_bytes(c.client_proto);
        if (!a) {
            continue;
        }
        uint8_t len = c.prefix_length == 0xff || c.prefix_length > 32 ? 32 : c.prefix_length;
        prefix gone{*a & prefix{0, len}.mask(), len};
        std::erase_if(_shortcuts, [&](const shortcut& s) {
            return gone.contains(s.dst.network) || s.dst.contains(*a) || s.overlay == *a;
        });
    }
    if (p.cies.empty()) {
        if (auto a = from_bytes(p.dst_proto)) {
            std::erase_if(_shortcuts, [&](const shortcut& s) { return s.dst.contains(*a); });
        }
    }
    if ((p.flags & nhrp::flag::purge_n) != 0) {
        return std::nullopt;
    }
    auto to = from_bytes(p.src_nbma);
    if (!to) {
        return std::nullopt;
    }
    nhrp::packet r = p;
    r.hdr.type = nhrp::op::purge_reply;
    r.hdr.hop_count = 255;
    r.extensions = reply_extensions(p);
    r.has_extension_area = !r.extensions.empty();
    ++_c.purge_replies_sent;
    return outgoing{*to, std::move(r)};
}

std::optional<outgoing> spoke::handle(const nhrp::packet& p, uint64_t now_us) {
    switch (p.hdr.type) {
        case nhrp::op::registration_reply:
            (void)on_registration_reply(p, now_us);
            return std::nullopt;
        case nhrp::op::traffic_indication:
            if (!auth_ok(p)) {
                ++_c.auth_failures;
                reject(verdict::auth_mismatch);
                return std::nullopt;
            }
            return on_traffic_indication(p, now_us);
        case nhrp::op::resolution_reply:
            (void)on_resolution_reply(p, now_us);
            return std::nullopt;
        case nhrp::op::resolution_request:
            return on_resolution_request(p, now_us);
        case nhrp::op::purge_request:
            return on_purge_request(p, now_us);
        case nhrp::op::error_indication:
            ++_c.error_indications;
            if (p.error_code == nhrp::error_code::authentication_failure) {
                ++_c.auth_failures;
            }
            return std::nullopt;
        default:
            ++_c.ignored;
            return std::nullopt;
    }
}

const shortcut* spoke::find_shortcut(ipv4 dst, uint64_t now_us) const noexcept {
    const shortcut* best = nullptr;
    for (const auto& s : _shortcuts) {
        if (s.expires_us > now_us && s.dst.contains(dst) &&
            (best == nullptr || s.dst.length > best->dst.length)) {
            best = &s;
        }
    }
    return best;
}

}  // namespace dmvpn::spokesim
