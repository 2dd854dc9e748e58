#include "control/nhrp/server.hpp"
#include "control/nhrp/server_internal.hpp"

#include <algorithm>
#include <utility>

#include "dataplane/wire/ipv4.hpp"
#include "dataplane/wire/reader.hpp"

namespace dmvpn::nhrp {

using detail::blank_extension;
using detail::from_ms;
using detail::ipv4_of;
using detail::originate;
using detail::to_ms;

std::string_view name(config_error e) noexcept {
    switch (e) {
        case config_error::no_tunnels:
            return "no_tunnels";
        case config_error::duplicate_tunnel_id:
            return "duplicate_tunnel_id";
        case config_error::authentication_too_long:
            return "authentication_too_long";
        case config_error::overlay_prefix_too_long:
            return "overlay_prefix_too_long";
        case config_error::static_map_prefix_too_long:
            return "static_map_prefix_too_long";
        case config_error::too_many_tunnels:
            return "too_many_tunnels";
        case config_error::registration_prefix_too_long:
            return "registration_prefix_too_long";
        case config_error::holdtime_bounds:
            return "holdtime_bounds";
    }
    return "unknown";
}

std::string_view name(adjacency_change c) noexcept {
    switch (c) {
        case adjacency_change::add:
            return "add";
        case adjacency_change::update:
            return "update";
        case adjacency_change::remove:
            return "remove";
    }
    return "unknown";
}

std::string_view name(change_cause c) noexcept {
    switch (c) {
        case change_cause::static_map:
            return "static_map";
        case change_cause::registration:
            return "registration";
        case change_cause::expired:
            return "expired";
        case change_cause::carried:
            return "carried";
        case change_cause::purged:
            return "purged";
        case change_cause::cleared:
            return "cleared";
        case change_cause::peer_down:
            return "peer_down";
    }
    return "unknown";
}

namespace {

constexpr std::string_view drop_reason_names[] = {
    "unknown_tunnel",
    "malformed",
    "not_ipv4",
    "protocol_error",
    "unrecognized_extension",
    "authentication_failure",
    "hop_count_exceeded",
    "loop_detected",
    "rate_limited",
    "unexpected_type",
    "unsolicited_reply",
    "no_route_for_reply",
    "refused_cache_full",
    "refused_unique",
    "refused_static",
    "refused_address",
    "refused_prefix",
    "refused_overlap",
    "refused_nbma_full",
    "too_many_cies",
    "registration_tunnel_rate_limited",
    "registration_global_rate_limited",
    "packet_rate_limited",
    "packet_tunnel_rate_limited",
    "unmatched_reply",
    "unreachable",
    "purge_not_owner",
    "unknown_purge_reply",
    "purge_unanswered",
    "purge_table_full",
    "requesters_full",
    "redirect_disabled",
    "redirect_rate_limited",
    "redirect_tunnel_rate_limited",
    "redirect_unknown_source",
    "error_indication_suppressed",
    "build_failed",
};
static_assert(std::size(drop_reason_names) == drop_reason_count);

// Offsets of fixed-header and mandatory-part fields, for Error Indications (RFC 2332 5.2.7).
constexpr uint16_t offset_afn = 0;
constexpr uint16_t offset_pro_type = 2;
constexpr uint16_t offset_hop_count = 9;
constexpr uint16_t offset_shtl = 18;
constexpr uint16_t offset_src_proto_len = 20;
constexpr uint16_t offset_dst_proto_len = 21;
constexpr uint16_t offset_address_area = 28;  // after proto lengths, flags, request ID

// The most of an offending packet an Error Indication carries back.
constexpr size_t max_error_contents = 1024;

// Cisco sends the IP header of the packet that triggered a redirect and 8 bytes after it.
constexpr size_t redirect_payload_after_header = 8;

uint32_t prefix_mask(uint8_t len) noexcept {
    return len == 0 ? 0 : ~uint32_t{0} << (32 - std::min<uint8_t>(len, 32));
}

// The binding fields a cache entry and its entry_view share, named once: view_of copies them
// out, adopt copies them back in. `f(entry field, view field)`; the timestamps convert apart.
template <typename Entry, typename View, typename F>
void binding_fields(Entry& e, View& v, F&& f) {
    f(e.via, v.via);
    f(e.nbma, v.nbma);
    f(e.claimed_nbma, v.claimed_nbma);
    f(e.type, v.type);
    f(e.flags, v.flags);
    f(e.request_id, v.request_id);
    f(e.holding_time, v.holding_time);
    f(e.mtu, v.mtu);
}

// Where the i-th extension starts, walking the already-validated raw packet.
uint16_t extension_offset(std::span<const uint8_t> raw, const packet& p, size_t i) {
    size_t off = p.hdr.ext_offset;
    size_t end = std::min<size_t>(p.hdr.packet_size, raw.size());
    for (size_t k = 0; off + 4 <= end; ++k) {
        if (k == i) {
            return static_cast<uint16_t>(off);
        }
        off += 4 + wire::load_be16(raw.data() + off + 2);
    }
    return p.hdr.ext_offset;
}

// Makes `list` hold just `c`, reusing what the request's list already allocated.
void only(std::vector<cie>& list, cie c) {
    list.resize(1);
    list[0] = std::move(c);
}

extension* find_extension(packet& p, uint16_t type) {
    for (auto& e : p.extensions) {
        if (e.type == type) {
            return &e;
        }
    }
    return nullptr;
}

uint64_t mix(uint64_t x) noexcept {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

}  // namespace

size_t server::purge_id_hash::operator()(const purge_id& k) const noexcept {
    return static_cast<size_t>(mix((uint64_t{k.tunnel} << 32 | k.nbma) ^ mix(k.request_id)));
}

std::string_view name(drop_reason r) noexcept {
    auto i = static_cast<size_t>(r);
    return i < drop_reason_count ? drop_reason_names[i] : std::string_view("unknown");
}

counters& counters::operator+=(const counters& o) noexcept {
    for (size_t i = 0; i < sent.size(); ++i) {
        sent[i] += o.sent[i];
        received[i] += o.received[i];
    }
    for (size_t i = 0; i < dropped.size(); ++i) {
        dropped[i] += o.dropped[i];
    }
    purge_retransmits += o.purge_retransmits;
    holdtime_clamped += o.holdtime_clamped;
    return *this;
}

// ---------------------------------------------------------------------------------------------
// Setup

wire::result<server, config_error> server::create(server_config config) {
    if (config.tunnels.empty()) {
        return wire::fail(config_error::no_tunnels);
    }
    if (config.tunnels.size() > 0xffff) {
        return wire::fail(config_error::too_many_tunnels);
    }
    for (size_t i = 0; i < config.tunnels.size(); ++i) {
        const auto& t = config.tunnels[i];
        if (t.authentication.size() > 8) {
            return wire::fail(config_error::authentication_too_long);
        }
        if (t.overlay_prefix_len > 32) {
            return wire::fail(config_error::overlay_prefix_too_long);
        }
        for (const auto& m : t.static_maps) {
            if (m.prefix_len > 32) {
                return wire::fail(config_error::static_map_prefix_too_long);
            }
        }
        for (const auto& a : t.registration_prefixes) {
            if (a.length > 32) {
                return wire::fail(config_error::registration_prefix_too_long);
            }
        }
        if (t.holdtime_min_s == 0 || t.holdtime_min_s > t.holdtime_max_s) {
            return wire::fail(config_error::holdtime_bounds);
        }
        for (size_t j = 0; j < i; ++j) {
            if (config.tunnels[j].id == t.id) {
                return wire::fail(config_error::duplicate_tunnel_id);
            }
        }
    }
    return server(std::move(config));
}

server::server(server_config config)
    : _config(std::move(config)),
      _cache(_config.initial_cache_capacity),
      _wheel(_config.timer_resolution, 4096),
      _buckets(std::max<size_t>(_config.rate_limit_slots, 1)),
      _packet_buckets(std::max<size_t>(_config.rate_limit_slots, 1)),
      _forwarded(std::max<size_t>(_config.forwarded_slots, 1)),
      _redirects(std::max<size_t>(_config.redirect_slots, 1)) {
    for (auto& t : _config.tunnels) {
        tunnel_state s;
        s.cfg = std::move(t);
        if (s.cfg.name.empty()) {
            s.cfg.name = "Tunnel" + std::to_string(s.cfg.id);
        }
        s.auth_key.assign(s.cfg.authentication.begin(), s.cfg.authentication.end());
        for (const nhs_peer& peer : s.cfg.nhs_peers) {
            nhs_client n;
            n.tunnel = static_cast<uint16_t>(_tunnels.size());
            n.overlay = peer.overlay;
            n.nbma = peer.nbma;
            _nhs.push_back(n);  // next_ms 0: registers at the first tick
        }
        _tunnels.push_back(std::move(s));
    }
    _config.tunnels.clear();
}

outputs server::start(timestamp now) {
    outputs out;
    int64_t now_ms = to_ms(now);
    for (uint16_t ti = 0; ti < _tunnels.size(); ++ti) {
        auto& t = _tunnels[ti];
        for (const auto& m : t.cfg.static_maps) {
            uint32_t address = m.overlay & prefix_mask(m.prefix_len);
            if (_cache.find(ti, address) != cache::npos) {
                continue;  // a later duplicate map of the same address changes nothing
            }
            uint32_t idx = _cache.insert(ti, address, m.prefix_len);
            cache_entry& e = _cache.at(idx);
            e.via = m.overlay;
            e.nbma = m.nbma;
            e.claimed_nbma = m.nbma;
            e.created_ms = now_ms;
            e.expires_ms = never;
            e.type = entry_type::static_map;
            e.mtu = t.cfg.mtu;
            ++t.entries;
            out.events.push_back(event_of(adjacency_change::add, change_cause::static_map, e));
        }
    }
    _wheel.advance(now, [](timer_ref) {});
    return out;
}

outputs server::adopt(std::span<const entry_view> entries, timestamp now, size_t* adopted) {
    outputs out;
    const int64_t now_ms = to_ms(now);
    size_t taken = 0;
    for (const entry_view& v : entries) {
        if (v.type != entry_type::dynamic || !v.expires || to_ms(*v.expires) <= now_ms) {
            continue;
        }
        auto ti = find_tunnel(v.tunnel);
        if (!ti) {
            continue;
        }
        auto& t = _tunnels[*ti];
        const uint32_t subnet = prefix_mask(t.cfg.overlay_prefix_len);
        if ((v.via & subnet) != (t.cfg.overlay_address & subnet) ||
            v.via == t.cfg.overlay_address || v.address == t.cfg.overlay_address ||
            _cache.find(*ti, v.address) != cache::npos || t.entries >= t.cfg.max_cache_entries ||
            entries_of_nbma(v.nbma) >= t.cfg.max_entries_per_nbma) {
            continue;
        }
        uint32_t idx = _cache.insert(*ti, v.address, v.prefix_len);
        cache_entry& e = _cache.at(idx);
        binding_fields(e, v,
                       [](auto& entry_field, const auto& view_field) { entry_field = view_field; });
        e.created_ms = to_ms(v.created);
        e.expires_ms = to_ms(*v.expires);
        // The stations that resolved it: a move after the reload still purges their caches.
        for (const requester& r : v.requesters) {
            if (!_cache.add_requester(idx, r, _config.max_requesters_per_entry)) {
                drop(*ti, drop_reason::requesters_full);
            }
        }
        ++t.entries;
        count_nbma(e.nbma, 1);
        schedule_expiry(idx);
        out.events.push_back(event_of(adjacency_change::add, change_cause::carried, e));
        ++taken;
    }
    if (adopted != nullptr) {
        *adopted = taken;
    }
    return out;
}

std::optional<uint16_t> server::find_tunnel(uint32_t id) const noexcept {
    for (uint16_t i = 0; i < _tunnels.size(); ++i) {
        if (_tunnels[i].cfg.id == id) {
            return i;
        }
    }
    return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Small shared pieces

void server::drop(uint16_t tunnel, drop_reason r) noexcept {
    ++_tunnels[tunnel].stats.dropped[static_cast<size_t>(r)];
}

void server::refuse(context& c, drop_reason r, uint32_t address, op type) {
    drop(c.tunnel, r);
    c.out.refusals.push_back(refusal{_tunnels[c.tunnel].cfg.id, c.outer_src, address, r, type});
}

bool server::usable(const cache_entry& e, int64_t now_ms) const noexcept {
    return e.type != entry_type::dynamic || e.expires_ms > now_ms;
}

bool server::rate::take(uint32_t per_s, uint32_t burst, int64_t now_ms) noexcept {
    if (per_s == 0) {
        return true;
    }
    const uint64_t cap = uint64_t{std::max<uint32_t>(burst, 1)} * 1000;
    if (!started) {
        tokens_milli = cap;
        refill_ms = now_ms;
        started = true;
    } else if (now_ms > refill_ms) {
        tokens_milli =
            std::min(cap, tokens_milli + static_cast<uint64_t>(now_ms - refill_ms) * per_s);
        refill_ms = now_ms;
    }
    if (tokens_milli < 1000) {
        return false;
    }
    tokens_milli -= 1000;
    return true;
}

bool server::take_from(std::vector<bucket>& table, uint32_t source, uint32_t per_s, uint32_t burst,
                       int64_t now_ms) {
    if (per_s == 0) {
        return true;
    }
    const uint32_t cap = std::max<uint32_t>(burst, 1) * 1000;
    bucket& b = table[mix(source) % table.size()];
    if (!b.used || b.source != source) {
        // A newcomer (or a colliding source taking the slot over) starts full only while full
        // buckets are being handed out slower than `fresh_buckets_per_s`; past that, with one
        // request's worth (a spoke's registration still goes through): a flood of forged
        // addresses cannot collect a burst each.
        const bool full =
            _fresh_buckets.take(_config.fresh_buckets_per_s, _config.fresh_buckets_per_s, now_ms);
        b = bucket{source, full ? cap : 1000, now_ms, true};
    } else if (now_ms > b.last_ms) {
        uint64_t refill = static_cast<uint64_t>(now_ms - b.last_ms) * per_s;
        b.tokens_milli = static_cast<uint32_t>(std::min<uint64_t>(cap, b.tokens_milli + refill));
        b.last_ms = now_ms;
    }
    if (b.tokens_milli < 1000) {
        return false;
    }
    b.tokens_milli -= 1000;
    return true;
}

// Turns a flood away before it costs a parse: per source, then per tunnel, then (for
// registrations) across tunnels.
bool server::admit(context& c, uint8_t type) {
    auto& t = _tunnels[c.tunnel];
    if (type == static_cast<uint8_t>(op::registration_request)) {
        if (!take_from(_buckets, c.outer_src, _config.registration_rate_per_s,
                       _config.registration_burst, c.now_ms)) {
            refuse(c, drop_reason::rate_limited, 0);
            return false;
        }
        if (!t.registrations.take(t.cfg.registration_rate_per_s, t.cfg.registration_rate_per_s,
                                  c.now_ms)) {
            refuse(c, drop_reason::registration_tunnel_rate_limited, 0);
            return false;
        }
        if (!_global_registrations.take(_config.global_registration_rate_per_s,
                                        _config.global_registration_rate_per_s, c.now_ms)) {
            refuse(c, drop_reason::registration_global_rate_limited, 0);
            return false;
        }
        return true;
    }
    if (!take_from(_packet_buckets, c.outer_src, _config.packet_rate_per_s, _config.packet_burst,
                   c.now_ms)) {
        drop(c.tunnel, drop_reason::packet_rate_limited);
        return false;
    }
    if (!t.packets.take(t.cfg.packet_rate_per_s, t.cfg.packet_rate_per_s, c.now_ms)) {
        drop(c.tunnel, drop_reason::packet_tunnel_rate_limited);
        return false;
    }
    return true;
}

void server::count_nbma(uint32_t nbma, int delta) {
    if (delta > 0) {
        ++_per_nbma[nbma];
        return;
    }
    auto it = _per_nbma.find(nbma);
    if (it != _per_nbma.end() && --it->second == 0) {
        _per_nbma.erase(it);
    }
}

size_t server::entries_of_nbma(uint32_t nbma) const noexcept {
    auto it = _per_nbma.find(nbma);
    return it == _per_nbma.end() ? 0 : it->second;
}

bool server::check_authentication(const tunnel_state& t, const packet& p) const {
    if (t.auth_key.empty()) {
        return true;
    }
    for (const auto& e : p.extensions) {
        if (e.type == ext::authentication) {
            return e.auth_spi == 1 && e.data == t.auth_key;
        }
    }
    return false;
}

void server::put_authentication(const tunnel_state& t, packet& p) const {
    // Rebuilt at every hop with our own key (the extension is hop by hop).
    extension* a = find_extension(p, ext::authentication);
    if (t.auth_key.empty()) {
        if (a != nullptr) {
            std::erase_if(p.extensions,
                          [](const extension& e) { return e.type == ext::authentication; });
        }
        return;
    }
    if (a == nullptr) {
        // Where IOS puts it: after the transit records, before the NAT extension and End.
        auto at = std::find_if(p.extensions.begin(), p.extensions.end(), [](const extension& e) {
            return e.type == ext::end || e.type == ext::cisco_nat_address;
        });
        a = &*p.extensions.insert(at, blank_extension(ext::authentication, true));
        p.has_extension_area = true;
    }
    a->compulsory = true;
    a->auth_reserved = 0;
    a->auth_spi = 1;
    a->data = t.auth_key;
    a->raw.clear();
}

cie server::own_cie(const tunnel_state& t, uint8_t prefix_len) const {
    cie c;
    c.code = cie_code::success;
    c.prefix_length = prefix_len;
    c.mtu = t.cfg.mtu;
    c.holding_time = t.cfg.holdtime_s;
    c.client_nbma = wire::ipv4_bytes(t.cfg.nbma_address);
    c.client_proto = wire::ipv4_bytes(t.cfg.overlay_address);
    return c;
}

void server::send(outputs& out, uint16_t tunnel, uint32_t dst, const packet& p) {
    auto built = build(p);
    if (!built) {
        drop(tunnel, drop_reason::build_failed);
        return;
    }
    ++_tunnels[tunnel].stats.sent[static_cast<size_t>(p.hdr.type)];
    out.packets.push_back(outgoing{_tunnels[tunnel].cfg.id, dst, std::move(*built)});
}

void server::send_error(context& c, uint16_t code, uint16_t offset, const packet* offending) {
    // Never in answer to an Error Indication (RFC 2332 5.2.7), at most one per packet admitted
    // and never faster than the tunnel's packet rate: forged sources must not turn the hub into
    // a reflector.
    if (offending != nullptr && offending->hdr.type == op::error_indication) {
        return;
    }
    auto& tun = _tunnels[c.tunnel];
    if (!tun.packets.take(tun.cfg.packet_rate_per_s, tun.cfg.packet_rate_per_s, c.now_ms)) {
        drop(c.tunnel, drop_reason::error_indication_suppressed);
        return;
    }
    const auto& t = _tunnels[c.tunnel];
    bytes dst = offending != nullptr ? offending->src_proto : bytes{};
    packet e = originate(op::error_indication, wire::ipv4_bytes(t.cfg.nbma_address),
                         wire::ipv4_bytes(t.cfg.overlay_address), std::move(dst));
    e.error_code = code;
    e.error_offset = offset;
    size_t n = c.raw.size();
    if (offending != nullptr) {
        n = std::min<size_t>(n, offending->hdr.packet_size);
    }
    n = std::min(n, max_error_contents);
    e.contents.assign(c.raw.begin(), c.raw.begin() + static_cast<std::ptrdiff_t>(n));
    if (!t.auth_key.empty()) {
        e.has_extension_area = true;
        e.extensions.push_back(blank_extension(ext::end, true));
        put_authentication(t, e);
    }
    send(c.out, c.tunnel, c.outer_src, e);
}

adjacency_event server::event_of(adjacency_change change, change_cause cause,
                                 const cache_entry& e) const {
    const auto& t = _tunnels[e.tunnel];
    adjacency_event ev;
    ev.change = change;
    ev.cause = cause;
    ev.tunnel = t.cfg.id;
    ev.overlay = e.address;
    ev.prefix_len = e.prefix_len;
    ev.nbma = e.nbma;
    ev.claimed_nbma = e.claimed_nbma;
    ev.nat = (e.flags & entry_flag::nat) != 0;
    if (e.type == entry_type::dynamic) {
        ev.multicast = t.cfg.multicast_dynamic;
    } else {
        ev.multicast = std::find(t.cfg.multicast_nbma.begin(), t.cfg.multicast_nbma.end(),
                                 e.nbma) != t.cfg.multicast_nbma.end();
        for (const auto& m : t.cfg.static_maps) {
            if (m.multicast && m.nbma == e.nbma) {
                ev.multicast = true;
            }
        }
    }
    return ev;
}

uint32_t server::lookup_domain(uint16_t tunnel, uint32_t address, int64_t now_ms) const {
    auto try_tunnel = [&](uint16_t ti) {
        uint32_t idx = _cache.find(ti, address);
        if (idx != cache::npos && usable(_cache.at(idx), now_ms)) {
            return idx;
        }
        idx = _cache.find_covering(ti, address);
        if (idx != cache::npos && usable(_cache.at(idx), now_ms)) {
            return idx;
        }
        return cache::npos;
    };
    uint32_t idx = try_tunnel(tunnel);
    if (idx != cache::npos) {
        return idx;
    }
    uint32_t network = _tunnels[tunnel].cfg.network_id;
    for (uint16_t ti = 0; ti < _tunnels.size(); ++ti) {
        if (ti != tunnel && _tunnels[ti].cfg.network_id == network) {
            idx = try_tunnel(ti);
            if (idx != cache::npos) {
                return idx;
            }
        }
    }
    return cache::npos;
}

// ---------------------------------------------------------------------------------------------
// Packets in

outputs server::handle(uint32_t tunnel_id, uint32_t outer_src_nbma, std::span<const uint8_t> nhrp,
                       timestamp now) {
    auto ti = find_tunnel(tunnel_id);
    if (!ti) {
        ++_global.dropped[static_cast<size_t>(drop_reason::unknown_tunnel)];
        return {};
    }
    context c;
    c.tunnel = *ti;
    c.outer_src = outer_src_nbma;
    c.now = now;
    c.now_ms = to_ms(now);
    c.raw = nhrp;
    constexpr size_t type_offset = 17;
    if (!admit(c, nhrp.size() > type_offset ? nhrp[type_offset] : 0)) {
        return std::move(c.out);
    }
    // The cache lookup this packet will make is two dependent memory loads on a large cache:
    // start them now (the key sits at a fixed offset when every address is IPv4) and let the
    // parse run while they arrive.
    std::optional<uint32_t> key;
    constexpr size_t src_proto_at = 32;
    constexpr size_t dst_proto_at = 36;
    if (nhrp.size() >= dst_proto_at + 4 && nhrp[18] == 4 && nhrp[19] == 0 && nhrp[20] == 4 &&
        nhrp[21] == 4) {
        if (nhrp[type_offset] == static_cast<uint8_t>(op::resolution_request)) {
            key = wire::load_be32(nhrp.data() + dst_proto_at);
        } else if (nhrp[type_offset] == static_cast<uint8_t>(op::registration_request)) {
            key = wire::load_be32(nhrp.data() + src_proto_at);
        }
    }
    if (key) {
        _cache.prefetch_slot(c.tunnel, *key);
    }
    auto parsed = parse(nhrp);
    if (!parsed) {
        drop(c.tunnel, drop_reason::malformed);
        return {};
    }
    if (key) {
        _cache.prefetch_entry(c.tunnel, *key);
    }
    packet& p = *parsed;
    ++_tunnels[c.tunnel].stats.received[static_cast<size_t>(p.hdr.type)];
    serve(c, p);
    return std::move(c.out);
}

void server::serve(context& c, packet& p) {
    const auto& t = _tunnels[c.tunnel];
    if (p.hdr.type == op::error_indication) {
        return;  // counted; nothing in it asks for an answer
    }
    if (p.hdr.afn != afn_ipv4 || p.hdr.pro_type != pro_ipv4) {
        drop(c.tunnel, drop_reason::not_ipv4);
        send_error(c, error_code::protocol_error,
                   p.hdr.afn != afn_ipv4 ? offset_afn : offset_pro_type, &p);
        return;
    }
    if (p.src_nbma.size() != 4 || p.src_proto.size() != 4 || p.dst_proto.size() != 4) {
        drop(c.tunnel, drop_reason::protocol_error);
        uint16_t at = p.src_nbma.size() != 4    ? offset_shtl
                      : p.src_proto.size() != 4 ? offset_src_proto_len
                                                : offset_dst_proto_len;
        send_error(c, error_code::protocol_error, at, &p);
        return;
    }
    if (p.hdr.hop_count == 0) {
        drop(c.tunnel, drop_reason::hop_count_exceeded);
        send_error(c, error_code::hop_count_exceeded, offset_hop_count, &p);
        return;
    }
    if (auto unknown = first_unknown_compulsory(p)) {
        drop(c.tunnel, drop_reason::unrecognized_extension);
        send_error(c, error_code::unrecognized_extension, extension_offset(c.raw, p, *unknown), &p);
        return;
    }
    if (!check_authentication(t, p)) {
        refuse(c, drop_reason::authentication_failure, *ipv4_of(p.src_proto), p.hdr.type);
        uint16_t at = p.hdr.ext_offset;
        for (size_t i = 0; i < p.extensions.size(); ++i) {
            if (p.extensions[i].type == ext::authentication) {
                at = extension_offset(c.raw, p, i);
            }
        }
        send_error(c, error_code::authentication_failure, at, &p);
        return;
    }
    switch (p.hdr.type) {
        case op::registration_request:
            serve_registration(c, p);
            return;
        case op::resolution_request:
            serve_resolution(c, p);
            return;
        case op::resolution_reply:
            serve_resolution_reply(c, p);
            return;
        case op::purge_request:
            serve_purge_request(c, p);
            return;
        case op::purge_reply:
            serve_purge_reply(c, p);
            return;
        case op::registration_reply:
            serve_registration_reply(c, p);
            return;
        case op::traffic_indication:
        case op::error_indication:
            drop(c.tunnel, drop_reason::unexpected_type);
            return;
    }
}

// ---------------------------------------------------------------------------------------------
// Registration (RFC 2332 5.2.3, 5.2.4)

void server::serve_registration(context& c, packet& p) {
    const auto& t = _tunnels[c.tunnel];
    if (p.cies.empty()) {
        drop(c.tunnel, drop_reason::protocol_error);
        send_error(c, error_code::protocol_error, static_cast<uint16_t>(offset_address_area), &p);
        return;
    }
    for (size_t i = 0; i < p.cies.size(); ++i) {
        if (i < _config.max_cies_per_request) {
            p.cies[i].code = register_binding(c, p, p.cies[i]);
        } else {
            p.cies[i].code = cie_code::insufficient_resources;
        }
    }
    if (p.cies.size() > _config.max_cies_per_request) {
        drop(c.tunnel, drop_reason::too_many_cies);
    }
    const bool nat = c.outer_src != *ipv4_of(p.src_nbma);
    p.hdr.type = op::registration_reply;
    p.hdr.hop_count = 255;
    p.trailing.clear();
    // FRR, while its NHS is `dynamic`, asks with its own address as destination and learns the
    // hub's protocol address from the reply's: give it ours. Cisco already names the hub.
    if (p.dst_proto == p.src_proto) {
        p.dst_proto = wire::ipv4_bytes(t.cfg.overlay_address);
    }
    for (auto& e : p.extensions) {
        if (e.type == ext::responder_address) {
            only(e.cies, own_cie(t, 32));
            e.raw.clear();
        } else if (e.type == ext::cisco_nat_address && e.raw.empty() && nat) {
            // The spoke's own CIE stays; ours tells it the address it is really seen at.
            cie seen;
            seen.prefix_length = 32;
            seen.client_nbma = wire::ipv4_bytes(c.outer_src);
            seen.client_proto = p.src_proto;
            e.cies.push_back(std::move(seen));
        }
    }
    put_authentication(t, p);
    send(c.out, c.tunnel, c.outer_src, p);
    on_peer_registration(c, p);
}

std::optional<drop_reason> server::refuse_prefix(uint16_t tunnel, uint32_t via, uint32_t address,
                                                 uint8_t prefix_len) const {
    const auto& t = _tunnels[tunnel];
    const uint32_t mask = prefix_mask(prefix_len);
    bool allowed = false;
    for (const prefix& a : t.cfg.registration_prefixes) {
        allowed =
            allowed || (prefix_len >= a.length && (address & prefix_mask(a.length)) == a.network);
    }
    if (!allowed) {
        return drop_reason::refused_prefix;
    }
    // Never over the hub's own overlay subnets, where the spokes' host bindings live.
    for (const auto& other : _tunnels) {
        const uint8_t shorter = std::min(prefix_len, other.cfg.overlay_prefix_len);
        if ((address & prefix_mask(shorter)) ==
            (other.cfg.overlay_address & prefix_mask(shorter))) {
            return drop_reason::refused_prefix;
        }
    }
    // Nor over what another station registered: a prefix covering this one, or inside it.
    auto own = [via](const cache_entry& e) {
        return e.type == entry_type::dynamic && e.via == via;
    };
    for (uint8_t below = prefix_len;;) {
        uint32_t i = _cache.find_covering(tunnel, address, below);
        if (i == cache::npos) {
            break;
        }
        if (!own(_cache.at(i))) {
            return drop_reason::refused_overlap;
        }
        below = _cache.at(i).prefix_len;
    }
    if (_cache.find_prefix_within(tunnel, address & mask, prefix_len, own) != cache::npos) {
        return drop_reason::refused_overlap;
    }
    return std::nullopt;
}

uint8_t server::register_binding(context& c, const packet& p, cie& request_cie) {
    auto& t = _tunnels[c.tunnel];
    const uint32_t src_proto = *ipv4_of(p.src_proto);
    const uint32_t claimed = *ipv4_of(p.src_nbma);
    uint32_t address = src_proto;
    if (!request_cie.client_proto.empty()) {
        auto a = ipv4_of(request_cie.client_proto);
        if (!a) {
            refuse(c, drop_reason::protocol_error, src_proto);
            return cie_code::administratively_prohibited;
        }
        address = *a;
    }
    // Cisco sends 255 with the unique flag, FRR 32; both mean this one host.
    uint8_t prefix_len = request_cie.prefix_length == 0 || request_cie.prefix_length >= 32
                             ? 32
                             : request_cie.prefix_length;
    const uint32_t subnet = prefix_mask(t.cfg.overlay_prefix_len);
    // Only stations on this tunnel's overlay subnet register, and none as the hub itself.
    if ((src_proto & subnet) != (t.cfg.overlay_address & subnet) ||
        src_proto == t.cfg.overlay_address || address == t.cfg.overlay_address) {
        refuse(c, drop_reason::refused_address, address);
        return cie_code::administratively_prohibited;
    }
    // A station binds its own address (as IOS and FRR spokes register); anything else must be
    // a prefix the tunnel allows and nobody else holds.
    if (prefix_len == 32 && address != src_proto) {
        refuse(c, drop_reason::refused_address, address);
        return cie_code::administratively_prohibited;
    }
    address &= prefix_mask(prefix_len);
    if (prefix_len < 32) {
        if (auto why = refuse_prefix(c.tunnel, src_proto, address, prefix_len)) {
            refuse(c, *why, address);
            return cie_code::administratively_prohibited;
        }
    }
    const bool unique = (p.flags & flag::reg_u) != 0;
    const bool nat = c.outer_src != claimed;
    uint16_t hold = request_cie.holding_time != 0 ? request_cie.holding_time : t.cfg.holdtime_s;
    if (hold < t.cfg.holdtime_min_s || hold > t.cfg.holdtime_max_s) {
        // The reply carries the holding time kept, so the station renews in time.
        hold = std::clamp(hold, t.cfg.holdtime_min_s, t.cfg.holdtime_max_s);
        request_cie.holding_time = hold;
        ++t.stats.holdtime_clamped;
    }
    const int64_t expires = c.now_ms + int64_t{hold} * 1000;
    auto fill = [&](cache_entry& e) {
        e.via = src_proto;
        e.nbma = c.outer_src;
        e.claimed_nbma = claimed;
        e.request_id = p.request_id;
        e.mtu = request_cie.mtu;
        e.holding_time = hold;
        uint8_t keep = e.flags & entry_flag::used;
        e.flags =
            static_cast<uint8_t>(keep | entry_flag::authoritative | entry_flag::registered |
                                 (unique ? entry_flag::unique : 0) | (nat ? entry_flag::nat : 0));
    };

    uint32_t idx = _cache.find(c.tunnel, address);
    if (idx == cache::npos) {
        if (t.entries >= t.cfg.max_cache_entries) {
            refuse(c, drop_reason::refused_cache_full, address);
            return cie_code::insufficient_resources;
        }
        if (entries_of_nbma(c.outer_src) >= t.cfg.max_entries_per_nbma) {
            refuse(c, drop_reason::refused_nbma_full, address);
            return cie_code::insufficient_resources;
        }
        idx = _cache.insert(c.tunnel, address, prefix_len);
        cache_entry& e = _cache.at(idx);
        fill(e);
        e.created_ms = c.now_ms;
        e.expires_ms = expires;
        ++t.entries;
        count_nbma(e.nbma, 1);
        schedule_expiry(idx);
        c.out.events.push_back(event_of(adjacency_change::add, change_cause::registration, e));
        return cie_code::success;
    }

    cache_entry& e = _cache.at(idx);
    if (e.type != entry_type::dynamic) {
        refuse(c, drop_reason::refused_static, address);
        return cie_code::administratively_prohibited;
    }
    const bool same = e.nbma == c.outer_src && e.claimed_nbma == claimed;
    const bool alive = usable(e, c.now_ms);
    if (!same && alive && (e.flags & entry_flag::unique) != 0) {
        refuse(c, drop_reason::refused_unique, address);
        return cie_code::unique_address_already_registered;
    }
    if (e.nbma != c.outer_src && entries_of_nbma(c.outer_src) >= t.cfg.max_entries_per_nbma) {
        refuse(c, drop_reason::refused_nbma_full, address);
        return cie_code::insufficient_resources;
    }
    const bool relength = e.prefix_len != prefix_len;
    if (!same || !alive || relength) {
        if (relength) {
            // The binding under its old length goes (its route with it) before the new one.
            c.out.events.push_back(
                event_of(adjacency_change::remove, change_cause::registration, e));
        }
        // Whoever learnt the old binding hears it is gone before the new one is published.
        purge_requesters(c.out, idx, c.now);
        cache_entry& fresh = _cache.at(idx);
        count_nbma(fresh.nbma, -1);
        fill(fresh);
        count_nbma(fresh.nbma, 1);
        _cache.set_prefix_len(idx, prefix_len);
        fresh.created_ms = c.now_ms;
        fresh.expires_ms = expires;
        fresh.flags &= static_cast<uint8_t>(~entry_flag::used);
        schedule_expiry(idx);
        c.out.events.push_back(
            event_of(adjacency_change::update, change_cause::registration, fresh));
        return cie_code::success;
    }
    fill(e);
    e.expires_ms = expires;
    schedule_expiry(idx);
    return cie_code::success;
}

// ---------------------------------------------------------------------------------------------
// Resolution (RFC 2332 5.2.1, 5.2.2)

namespace {
// The widest route out of the NBMA network (or to Null0) a Resolution Request is answered by:
// FRR's nhrpd refuses shortcuts wider than /8 for routes off the NBMA.
constexpr uint8_t min_local_prefix = 8;

// A positive answer: authoritative, destination-stable, unique when the binding is.
constexpr uint16_t resolved_flags(bool unique) {
    return static_cast<uint16_t>(flag::res_a | flag::res_d | (unique ? flag::res_u : 0));
}
}  // namespace

void server::serve_resolution(context& c, packet& p) {
    const auto& t = _tunnels[c.tunnel];
    for (size_t i = 0; i < p.extensions.size(); ++i) {
        const auto& e = p.extensions[i];
        if (e.type != ext::forward_transit) {
            continue;
        }
        for (const auto& hop : e.cies) {
            if (ipv4_of(hop.client_proto) == t.cfg.overlay_address ||
                ipv4_of(hop.client_nbma) == t.cfg.nbma_address) {
                drop(c.tunnel, drop_reason::loop_detected);
                send_error(c, error_code::loop_detected, extension_offset(c.raw, p, i), &p);
                return;
            }
        }
    }
    const uint32_t target = *ipv4_of(p.dst_proto);
    const uint32_t requester_proto = *ipv4_of(p.src_proto);

    if (target == t.cfg.overlay_address) {
        answer_self(c, p, 32, true);
        return;
    }

    uint32_t idx = lookup_domain(c.tunnel, target, c.now_ms);
    if (idx != cache::npos) {
        const cache_entry& e = _cache.at(idx);
        if (t.cfg.forward_resolution_to_owner && e.type == entry_type::dynamic &&
            e.nbma != c.outer_src) {
            remember_requester(c, idx, p);
            forward(c, p, e.tunnel, e.nbma, ext::forward_transit);
            return;
        }
        remember_requester(c, idx, p);
        answer_resolution(c, p, idx);
        return;
    }
    std::optional<route> r;
    if (t.cfg.route) {
        r = t.cfg.route(target);
    }
    if (r && r->via != route_via::tunnel && r->prefix_len < min_local_prefix) {
        // A default route (or as wide) out of the LAN or to Null0 says nothing about who serves
        // the target: as if unrouted (another hub may know it). nhrpd drops such a request.
        r.reset();
    }
    if (r && r->via == route_via::egress) {
        // The FIB sends the target out of the NBMA network through the hub (its LAN): the hub
        // is the egress router, the station serving the target, and answers with itself for
        // the route's prefix (RFC 2332 sections 2.2 and 3; nhrpd answers so off the NBMA).
        answer_self(c, p, r->prefix_len, false);
        return;
    }
    if (r && r->via == route_via::blackhole) {
        // Discarded here (a summary's Null0 over prefixes the spokes own): no station serves
        // the target, a negative reply (RFC 2332 section 2.2, code 12), for the target alone,
        // since the summary also covers prefixes the spokes do own.
        answer_negative(c, p, 32);
        return;
    }
    if (r && r->next_hop != target && r->next_hop != requester_proto) {
        uint32_t nh = lookup_domain(c.tunnel, r->next_hop, c.now_ms);
        if (nh != cache::npos && _cache.at(nh).type == entry_type::dynamic &&
            _cache.at(nh).nbma != c.outer_src) {
            // The spoke behind which the target lives answers for its own networks, directly.
            remember_requester(c, nh, p);
            forward(c, p, _cache.at(nh).tunnel, _cache.at(nh).nbma, ext::forward_transit);
            return;
        }
    }
    if (forward_to_nhs_peer(c, p)) {
        return;  // hub to hub (server_nhs.cpp)
    }
    const uint32_t subnet = prefix_mask(t.cfg.overlay_prefix_len);
    if (r || (target & subnet) == (t.cfg.overlay_address & subnet)) {
        // We serve this subnet (or route it ourselves) and nobody is registered for the target:
        // "no binding exists", for the extent the prefix length says (RFC 2332 5.2.2).
        answer_negative(c, p, r ? r->prefix_len : 32);
        return;
    }
    drop(c.tunnel, drop_reason::unreachable);
    send_error(c, error_code::protocol_address_unreachable,
               static_cast<uint16_t>(offset_address_area + p.src_nbma.size() +
                                     p.src_nbma_sub.size() + p.src_proto.size()),
               &p);
}

void server::remember_requester(context& c, uint32_t entry_index, const packet& p) {
    requester r{*ipv4_of(p.src_proto), c.outer_src, p.request_id};
    if (!_cache.add_requester(entry_index, r, _config.max_requesters_per_entry)) {
        drop(c.tunnel, drop_reason::requesters_full);
    }
    _cache.at(entry_index).flags |= entry_flag::used;
}

void server::answer_resolution(context& c, packet& p, uint32_t entry_index) {
    const cache_entry& e = _cache.at(entry_index);
    cie a;
    a.code = cie_code::success;
    a.prefix_length = e.prefix_len;
    a.mtu = e.mtu != 0 ? e.mtu : _tunnels[e.tunnel].cfg.mtu;
    if (e.expires_ms == never) {
        a.holding_time = _tunnels[e.tunnel].cfg.holdtime_s;
    } else {
        // What is left of the registration, as IOS answers.
        a.holding_time =
            static_cast<uint16_t>(std::min<int64_t>((e.expires_ms - c.now_ms) / 1000, 0xffff));
    }
    a.client_nbma = wire::ipv4_bytes(e.nbma);
    a.client_proto = wire::ipv4_bytes(e.address);
    const bool unique = (e.flags & entry_flag::unique) != 0;
    reply_resolution(c, p, std::move(a), resolved_flags(unique));
}

void server::answer_self(context& c, packet& p, uint8_t prefix_len, bool unique) {
    reply_resolution(c, p, own_cie(_tunnels[c.tunnel], prefix_len), resolved_flags(unique));
}

void server::answer_negative(context& c, packet& p, uint8_t prefix_len) {
    const auto& t = _tunnels[c.tunnel];
    cie n;
    n.code = cie_code::no_binding;
    n.prefix_length = prefix_len;
    n.mtu = t.cfg.mtu;
    n.holding_time = t.cfg.holdtime_s;
    n.client_proto = wire::ipv4_bytes(*ipv4_of(p.dst_proto) & prefix_mask(prefix_len));
    reply_resolution(c, p, std::move(n), 0);
}

void server::reply_resolution(context& c, packet& p, cie answer, uint16_t flags) {
    const auto& t = _tunnels[c.tunnel];
    only(p.cies, std::move(answer));
    p.flags |= flags;
    p.hdr.type = op::resolution_reply;
    p.hdr.hop_count = 255;
    p.trailing.clear();
    for (auto& x : p.extensions) {
        if (x.type == ext::responder_address) {
            only(x.cies, own_cie(t, 32));
            x.raw.clear();
        }
    }
    put_authentication(t, p);
    send(c.out, c.tunnel, c.outer_src, p);
}

void server::forward(context& c, packet& p, uint16_t out_tunnel, uint32_t dst_nbma,
                     uint16_t transit_type) {
    // Transit record and authentication are those of the tunnel it leaves on (hop by hop).
    const auto& t = _tunnels[out_tunnel];
    if (p.hdr.hop_count <= 1) {
        drop(c.tunnel, drop_reason::hop_count_exceeded);
        send_error(c, error_code::hop_count_exceeded, offset_hop_count, &p);
        return;
    }
    --p.hdr.hop_count;
    p.trailing.clear();
    if (extension* x = find_extension(p, transit_type)) {
        x->cies.push_back(own_cie(t, 0));
        x->raw.clear();
    }
    put_authentication(t, p);
    const size_t sent = c.out.packets.size();
    send(c.out, out_tunnel, dst_nbma, p);
    if (p.hdr.type == op::resolution_request && c.out.packets.size() > sent) {
        remember_forwarded(p, c.now_ms);
    }
}

// A forwarded Resolution Request's reply carries its request ID, source (the requester) and
// destination (the target) unchanged (RFC 2332 5.2.2): one direct-mapped slot per triple, kept
// for `forwarded_timeout`; a newer request that hashes to the same slot takes it over.
server::forwarded_request& server::forwarded_slot(const packet& p, uint32_t& requester,
                                                  uint32_t& target) {
    requester = *ipv4_of(p.src_proto);
    target = *ipv4_of(p.dst_proto);
    return _forwarded[mix((uint64_t{requester} << 32 | target) ^ mix(p.request_id)) %
                      _forwarded.size()];
}

void server::remember_forwarded(const packet& p, int64_t now_ms) {
    uint32_t requester = 0;
    uint32_t target = 0;
    forwarded_request& f = forwarded_slot(p, requester, target);
    f = forwarded_request{requester, target, p.request_id,
                          now_ms + _config.forwarded_timeout.count(), true};
}

bool server::take_forwarded(const packet& p, int64_t now_ms) {
    uint32_t requester = 0;
    uint32_t target = 0;
    forwarded_request& f = forwarded_slot(p, requester, target);
    if (!f.used || f.requester != requester || f.target != target || f.request_id != p.request_id ||
        f.expires_ms < now_ms) {
        return false;
    }
    f.used = false;  // one reply per request forwarded
    return true;
}

void server::serve_resolution_reply(context& c, packet& p) {
    const auto& t = _tunnels[c.tunnel];
    const uint32_t requester_proto = *ipv4_of(p.src_proto);
    if (requester_proto == t.cfg.overlay_address) {
        drop(c.tunnel, drop_reason::unsolicited_reply);  // the hub never asks
        return;
    }
    for (size_t i = 0; i < p.extensions.size(); ++i) {
        if (p.extensions[i].type != ext::reverse_transit) {
            continue;
        }
        for (const auto& hop : p.extensions[i].cies) {
            if (ipv4_of(hop.client_proto) == t.cfg.overlay_address) {
                drop(c.tunnel, drop_reason::loop_detected);
                send_error(c, error_code::loop_detected, extension_offset(c.raw, p, i), &p);
                return;
            }
        }
    }
    uint32_t idx = _cache.find(c.tunnel, requester_proto);
    if (idx == cache::npos || !usable(_cache.at(idx), c.now_ms)) {
        drop(c.tunnel, drop_reason::no_route_for_reply);
        return;
    }
    // Only the answer to a request this hub forwarded goes on: nobody else can push a binding
    // into a spoke's cache through the hub.
    if (!take_forwarded(p, c.now_ms)) {
        drop(c.tunnel, drop_reason::unmatched_reply);
        return;
    }
    forward(c, p, c.tunnel, _cache.at(idx).nbma, ext::reverse_transit);
}

// ---------------------------------------------------------------------------------------------
// Purge (RFC 2332 5.2.5, 5.2.6)

void server::serve_purge_request(context& c, packet& p) {
    const auto& t = _tunnels[c.tunnel];
    const uint32_t src_proto = *ipv4_of(p.src_proto);
    if (p.cies.size() > _config.max_cies_per_request) {
        drop(c.tunnel, drop_reason::too_many_cies);  // the rest are left alone
    }
    const size_t n = std::min(p.cies.size(), _config.max_cies_per_request);
    for (size_t k = 0; k < n; ++k) {
        const cie& x = p.cies[k];
        uint32_t address = src_proto;
        if (!x.client_proto.empty()) {
            auto a = ipv4_of(x.client_proto);
            if (!a) {
                continue;
            }
            address = *a;
        }
        uint8_t prefix_len = x.prefix_length == 0 || x.prefix_length >= 32 ? 32 : x.prefix_length;
        uint32_t idx = _cache.find(c.tunnel, address & prefix_mask(prefix_len));
        if (idx == cache::npos) {
            continue;
        }
        const cache_entry& e = _cache.at(idx);
        // Only the station that registered a binding may withdraw it.
        if (e.type != entry_type::dynamic || e.nbma != c.outer_src) {
            drop(c.tunnel, drop_reason::purge_not_owner);
            continue;
        }
        remove_entry(c.out, idx, change_cause::purged, c.now);
    }
    if ((p.flags & flag::purge_n) != 0) {
        return;
    }
    p.hdr.type = op::purge_reply;
    p.hdr.hop_count = 255;
    p.trailing.clear();
    for (auto& x : p.extensions) {
        if (x.type == ext::responder_address) {
            only(x.cies, own_cie(t, 32));
            x.raw.clear();
        }
    }
    put_authentication(t, p);
    send(c.out, c.tunnel, c.outer_src, p);
}

void server::serve_purge_reply(context& c, const packet& p) {
    auto it = _purge_index.find(purge_id{c.tunnel, c.outer_src, p.request_id});
    if (it == _purge_index.end()) {
        drop(c.tunnel, drop_reason::unknown_purge_reply);
        return;
    }
    pending_purge& pp = _purges[it->second];
    pp.live = false;
    pp.packet.clear();
    ++pp.generation;
    _free_purges.push_back(it->second);
    _purge_index.erase(it);
    --_purges_live;
}

void server::purge_requesters(outputs& out, uint32_t index, timestamp now) {
    cache_entry old = _cache.at(index);
    for (const requester& r : _cache.take_requesters(index)) {
        send_purge(out, old.tunnel, r, old, now);
    }
}

void server::send_purge(outputs& out, uint16_t tunnel, const requester& r, const cache_entry& old,
                        timestamp now) {
    const auto& t = _tunnels[tunnel];
    const purge_id key{tunnel, r.nbma, r.request_id};
    auto existing = _purge_index.find(key);
    if (existing == _purge_index.end() && _purges_live >= _config.max_pending_purges) {
        drop(tunnel, drop_reason::purge_table_full);
        return;
    }
    // Cisco reuses the request ID of the request that taught the requester the binding.
    packet p = originate(op::purge_request, wire::ipv4_bytes(t.cfg.nbma_address),
                         wire::ipv4_bytes(t.cfg.overlay_address), wire::ipv4_bytes(r.proto));
    p.request_id = r.request_id;
    cie x;
    x.prefix_length = old.prefix_len;
    x.client_nbma = wire::ipv4_bytes(old.nbma);
    x.client_proto = wire::ipv4_bytes(old.address);
    p.cies.push_back(std::move(x));
    p.has_extension_area = true;
    p.extensions.push_back(blank_extension(ext::forward_transit, true));
    p.extensions.push_back(blank_extension(ext::reverse_transit, true));
    p.extensions.push_back(blank_extension(ext::end, true));
    put_authentication(t, p);
    auto built = build(p);
    if (!built) {
        drop(tunnel, drop_reason::build_failed);
        return;
    }
    uint32_t slot = 0;
    if (existing != _purge_index.end()) {
        slot = existing->second;  // a newer purge to the same requester and ID supersedes
    } else {
        if (!_free_purges.empty()) {
            slot = _free_purges.back();
            _free_purges.pop_back();
        } else {
            slot = static_cast<uint32_t>(_purges.size());
            _purges.emplace_back();
        }
        _purge_index.emplace(key, slot);
        ++_purges_live;
    }
    pending_purge& pp = _purges[slot];
    ++pp.generation;
    pp.tunnel = tunnel;
    pp.live = true;
    pp.retries_left = _config.purge_max_retries;
    pp.requester_nbma = r.nbma;
    pp.request_id = r.request_id;
    pp.packet = *built;
    ++_tunnels[tunnel].stats.sent[static_cast<size_t>(op::purge_request)];
    out.packets.push_back(outgoing{t.cfg.id, r.nbma, std::move(*built)});
    _wheel.schedule(now + _config.purge_retry_interval,
                    timer_ref{slot | 0x80000000u, pp.generation});
}

// ---------------------------------------------------------------------------------------------
// Removal, timers

void server::remove_entry(outputs& out, uint32_t index, change_cause cause, timestamp now) {
    const cache_entry& e = _cache.at(index);
    out.events.push_back(event_of(adjacency_change::remove, cause, e));
    purge_requesters(out, index, now);
    auto& t = _tunnels[_cache.at(index).tunnel];
    --t.entries;
    if (_cache.at(index).type == entry_type::dynamic) {
        count_nbma(_cache.at(index).nbma, -1);
    }
    cancel_expiry(index);
    _cache.erase(index);
}

void server::schedule_expiry(uint32_t index) {
    cache_entry& e = _cache.at(index);
    if (index >= _expiry_tick.size()) {
        _expiry_tick.resize(std::max<size_t>(index + 1, _expiry_tick.size() * 2), 0);
    }
    // One timer per entry, at its expiry or before it (it then moves itself on): a refresh that
    // pushes the expiry later leaves the pending timer be, one that brings it closer replaces it.
    uint64_t& pending = _expiry_tick[index];
    if (pending != 0) {
        if (pending <= _wheel.tick_of(from_ms(e.expires_ms))) {
            return;
        }
        cancel_expiry(index);
    }
    ++e.generation;
    pending = _wheel.schedule(from_ms(e.expires_ms), timer_ref{index, e.generation});
}

void server::cancel_expiry(uint32_t index) {
    if (index < _expiry_tick.size() && _expiry_tick[index] != 0) {
        _wheel.cancel(_expiry_tick[index], timer_ref{index, _cache.at(index).generation});
        _expiry_tick[index] = 0;
    }
}

void server::on_timer(outputs& out, timer_ref ref, timestamp now) {
    const int64_t now_ms = to_ms(now);
    if ((ref.kind_and_index & 0x80000000u) != 0) {
        uint32_t slot = ref.kind_and_index & 0x7fffffffu;
        if (slot >= _purges.size() || !_purges[slot].live ||
            _purges[slot].generation != ref.generation) {
            return;
        }
        pending_purge& pp = _purges[slot];
        if (pp.retries_left == 0) {
            drop(pp.tunnel, drop_reason::purge_unanswered);
            _purge_index.erase(purge_id{pp.tunnel, pp.requester_nbma, pp.request_id});
            pp.live = false;
            pp.packet.clear();
            ++pp.generation;
            _free_purges.push_back(slot);
            --_purges_live;
            return;
        }
        --pp.retries_left;
        auto& stats = _tunnels[pp.tunnel].stats;
        ++stats.sent[static_cast<size_t>(op::purge_request)];
        ++stats.purge_retransmits;
        out.packets.push_back(outgoing{_tunnels[pp.tunnel].cfg.id, pp.requester_nbma, pp.packet});
        _wheel.schedule(now + _config.purge_retry_interval,
                        timer_ref{slot | 0x80000000u, pp.generation});
        return;
    }
    if (!_cache.valid(ref.kind_and_index, ref.generation)) {
        return;  // removed since (its slot reused)
    }
    _expiry_tick[ref.kind_and_index] = 0;  // this one, firing
    const cache_entry& e = _cache.at(ref.kind_and_index);
    if (e.type != entry_type::dynamic) {
        return;
    }
    if (e.expires_ms <= now_ms) {
        remove_entry(out, ref.kind_and_index, change_cause::expired, now);
    } else {
        schedule_expiry(ref.kind_and_index);
    }
}

outputs server::tick(timestamp now) {
    outputs out;
    _wheel.advance(now, [&](timer_ref ref) { on_timer(out, ref, now); });
    if (!_nhs.empty()) {
        register_with_nhs(out, to_ms(now));
    }
    return out;
}

outputs server::clear(uint32_t tunnel_id, std::optional<uint32_t> address, timestamp now) {
    outputs out;
    auto ti = find_tunnel(tunnel_id);
    if (!ti) {
        return out;
    }
    std::vector<uint32_t> victims;
    if (address) {
        uint32_t idx = _cache.find(*ti, *address);
        if (idx != cache::npos) {
            victims.push_back(idx);
        }
    } else {
        _cache.for_each([&](uint32_t idx, const cache_entry& e) {
            if (e.tunnel == *ti) {
                victims.push_back(idx);
            }
        });
    }
    for (uint32_t idx : victims) {
        if (_cache.at(idx).type == entry_type::dynamic) {
            remove_entry(out, idx, change_cause::cleared, now);
        }
    }
    return out;
}

outputs server::forget_peer(uint32_t tunnel_id, uint32_t nbma, timestamp now) {
    outputs out;
    auto ti = find_tunnel(tunnel_id);
    if (!ti || entries_of_nbma(nbma) == 0) {  // dynamic entries from there, any tunnel
        return out;
    }
    std::vector<uint32_t> victims;
    _cache.for_each([&](uint32_t idx, const cache_entry& e) {
        if (e.nbma == nbma && e.tunnel == *ti && e.type == entry_type::dynamic) {
            victims.push_back(idx);
        }
    });
    for (uint32_t idx : victims) {
        remove_entry(out, idx, change_cause::peer_down, now);
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Redirect (draft-detienne-dmvpn-01 Traffic Indication)

outputs server::on_redirect_candidate(uint32_t tunnel_id, uint32_t src_overlay, uint32_t dst,
                                      std::span<const uint8_t> packet_head, timestamp now) {
    outputs out;
    auto ti = find_tunnel(tunnel_id);
    if (!ti) {
        ++_global.dropped[static_cast<size_t>(drop_reason::unknown_tunnel)];
        return out;
    }
    const auto& t = _tunnels[*ti];
    if (!t.cfg.redirect) {
        drop(*ti, drop_reason::redirect_disabled);
        return out;
    }
    const int64_t now_ms = to_ms(now);
    uint32_t idx = _cache.find(*ti, src_overlay);
    if (idx == cache::npos) {
        idx = _cache.find_covering(*ti, src_overlay);
    }
    if (idx == cache::npos && t.cfg.route) {
        // A source on a network the FIB routes through a spoke (FRR or a configured route,
        // not registered with NHRP): that spoke sent it.
        if (auto r = t.cfg.route(src_overlay);
            r && r->via == route_via::tunnel && r->next_hop != src_overlay) {
            idx = _cache.find(*ti, r->next_hop);
        }
    }
    if (idx == cache::npos || !usable(_cache.at(idx), now_ms)) {
        drop(*ti, drop_reason::redirect_unknown_source);
        return out;
    }
    // `ip nhrp redirect timeout`: one indication per (source, destination) per interval.
    const uint64_t key = (uint64_t{src_overlay} << 32 | dst) ^ (uint64_t{*ti} << 17);
    redirect_slot& rs = _redirects[mix(key) % _redirects.size()];
    if (rs.used && rs.key == key && now_ms - rs.last_ms < t.cfg.redirect_interval.count()) {
        drop(*ti, drop_reason::redirect_rate_limited);
        return out;
    }
    // `redirect-rate-limit`: the tunnel as a whole sends at most so many per second.
    auto& tun = _tunnels[*ti];
    if (!tun.redirects.take(t.cfg.redirect_rate_per_s, t.cfg.redirect_rate_per_s, now_ms)) {
        drop(*ti, drop_reason::redirect_tunnel_rate_limited);
        return out;
    }
    rs = redirect_slot{key, now_ms, true};

    packet p = originate(op::traffic_indication, wire::ipv4_bytes(t.cfg.nbma_address),
                         wire::ipv4_bytes(t.cfg.overlay_address), wire::ipv4_bytes(src_overlay));
    p.traffic_code = 0;
    size_t n = packet_head.size();
    if (!packet_head.empty() && (packet_head[0] >> 4) == 4) {
        n = std::min(n, size_t{static_cast<size_t>(packet_head[0] & 0x0f) * 4} +
                            redirect_payload_after_header);
    }
    p.contents.assign(packet_head.begin(), packet_head.begin() + static_cast<std::ptrdiff_t>(n));
    p.has_extension_area = true;
    p.extensions.push_back(blank_extension(ext::forward_transit, true));
    p.extensions.push_back(blank_extension(ext::reverse_transit, true));
    p.extensions.push_back(blank_extension(ext::cisco_nat_address, false));
    p.extensions.push_back(blank_extension(ext::end, true));
    put_authentication(t, p);
    send(out, *ti, _cache.at(idx).nbma, p);
    return out;
}

// ---------------------------------------------------------------------------------------------
// Queries

entry_view server::view_of(const cache_entry& e, uint32_t index) const {
    entry_view v;
    v.tunnel = _tunnels[e.tunnel].cfg.id;
    v.tunnel_name = _tunnels[e.tunnel].cfg.name;
    v.address = e.address;
    v.prefix_len = e.prefix_len;
    binding_fields(e, v,
                   [](const auto& entry_field, auto& view_field) { view_field = entry_field; });
    v.created = from_ms(e.created_ms);
    if (e.expires_ms != never) {
        v.expires = from_ms(e.expires_ms);
    }
    v.requesters = _cache.requesters(index);
    return v;
}

std::optional<entry_view> server::lookup(uint32_t tunnel_id, uint32_t address) const {
    auto ti = find_tunnel(tunnel_id);
    if (!ti) {
        return std::nullopt;
    }
    uint32_t idx = _cache.find(*ti, address);
    if (idx == cache::npos) {
        return std::nullopt;
    }
    return view_of(_cache.at(idx), idx);
}

std::vector<entry_view> server::entries(std::optional<uint32_t> tunnel_id) const {
    std::vector<entry_view> out;
    std::optional<uint16_t> only;
    if (tunnel_id) {
        only = find_tunnel(*tunnel_id);
        if (!only) {
            return out;
        }
    }
    std::vector<std::pair<uint64_t, uint32_t>> order;
    _cache.for_each([&](uint32_t idx, const cache_entry& e) {
        if (!only || e.tunnel == *only) {
            order.emplace_back(
                (uint64_t{e.tunnel} << 40) | (uint64_t{e.address} << 8) | e.prefix_len, idx);
        }
    });
    std::sort(order.begin(), order.end());
    out.reserve(order.size());
    for (const auto& [key, idx] : order) {
        out.push_back(view_of(_cache.at(idx), idx));
    }
    return out;
}

std::vector<tunnel_view> server::tunnels() const {
    std::vector<tunnel_view> out;
    for (const auto& t : _tunnels) {
        out.push_back(tunnel_view{t.cfg.id, t.cfg.name, t.cfg.overlay_address,
                                  t.cfg.overlay_prefix_len, t.cfg.nbma_address, t.entries,
                                  &t.stats});
    }
    return out;
}

std::vector<uint32_t> server::multicast_targets(uint32_t tunnel_id) const {
    std::vector<uint32_t> out;
    auto ti = find_tunnel(tunnel_id);
    if (!ti) {
        return out;
    }
    const auto& t = _tunnels[*ti];
    out = t.cfg.multicast_nbma;
    for (const auto& m : t.cfg.static_maps) {
        if (m.multicast) {
            out.push_back(m.nbma);
        }
    }
    if (t.cfg.multicast_dynamic) {
        _cache.for_each([&](uint32_t, const cache_entry& e) {
            if (e.tunnel == *ti && e.type == entry_type::dynamic) {
                out.push_back(e.nbma);
            }
        });
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

const counters* server::tunnel_counters(uint32_t tunnel_id) const {
    auto ti = find_tunnel(tunnel_id);
    return ti ? &_tunnels[*ti].stats : nullptr;
}

counters server::total_counters() const {
    counters sum = _global;
    for (const auto& t : _tunnels) {
        sum += t.stats;
    }
    return sum;
}

}  // namespace dmvpn::nhrp
