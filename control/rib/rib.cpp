// The RIB: candidates per prefix and source, best by distance, next hops, FIB writes.
#include "control/rib/rib.hpp"

#include <algorithm>

#include "control/log.hpp"
#include "dataplane/wire/ipv4.hpp"
#include "dataplane/worker_ctx.hpp"

namespace dmvpn::rib {

std::string_view name(source s) noexcept {
    switch (s) {
        case source::glean:
            return "glean";
        case source::connected:
            return "connected";
        case source::static_route:
            return "static";
        case source::fpm:
            return "fpm";
        case source::nhrp:
            return "nhrp";
    }
    return "?";
}

std::string_view name(protocol p) noexcept {
    switch (p) {
        case protocol::none:
            return "none";
        case protocol::kernel:
            return "kernel";
        case protocol::static_route:
            return "static";
        case protocol::ebgp:
            return "ebgp";
        case protocol::ibgp:
            return "ibgp";
        case protocol::ospf:
            return "ospf";
        case protocol::eigrp:
            return "eigrp";
        case protocol::isis:
            return "isis";
        case protocol::rip:
            return "rip";
        case protocol::other:
            return "other";
    }
    return "?";
}

uint8_t default_distance(source s, protocol p) noexcept {
    switch (s) {
        case source::glean:
        case source::connected:
            return distance::connected;
        case source::static_route:
            return distance::static_route;
        case source::nhrp:
            return distance::nhrp;
        case source::fpm:
            break;
    }
    switch (p) {
        case protocol::kernel:
            return distance::connected;
        case protocol::static_route:
            return distance::static_route;
        case protocol::ebgp:
            return distance::ebgp;
        case protocol::ibgp:
            return distance::ibgp;
        case protocol::ospf:
            return distance::ospf;
        case protocol::eigrp:
            return distance::eigrp;
        case protocol::isis:
            return distance::isis;
        case protocol::rip:
            return distance::rip;
        case protocol::none:
        case protocol::other:
            break;
    }
    return distance::unknown;
}

bool on_lan(const nh_key& k) noexcept { return (k.egress & dp::glean_lan_port_bit) != 0; }

namespace {

// Next hops and bindings made room for up front, at most (one per spoke, or per FRR gateway):
// past that a table rehashes, once per doubling.
constexpr size_t nexthops_reserved = size_t{1} << 17;

}  // namespace

rib::rib(fib_port& fib, limits cfg) : _fib(fib), _cfg(cfg) {
    // Room for every candidate the limit allows: a rehash moves every node at once (tens of
    // thousands with cold caches: milliseconds in one registration's pass), which a tree never
    // did.
    _table.reserve(cfg.max_routes);
    _installed.reserve(cfg.max_routes);
    _nexthops.reserve(std::min(cfg.max_routes, nexthops_reserved));
    _bindings.reserve(std::min(cfg.max_routes, nexthops_reserved));
}

// ---------------------------------------------------------------- candidates

bool rib::set(origin from, const prefix_key& k, const route& r) {
    entry& e = _table[k];
    auto it = std::lower_bound(e.candidates.begin(), e.candidates.end(), from,
                               [](const candidate& c, const origin& o) { return c.from < o; });
    if (it != e.candidates.end() && it->from == from) {
        it->stale = false;
        if (it->r != r) {
            it->r = r;
            _dirty.insert(k);
        }
        return true;
    }
    if (_candidates >= _cfg.max_routes) {
        ++_c.refused;
        if (e.candidates.empty()) {
            _table.erase(k);
        }
        return false;
    }
    e.candidates.insert(it, candidate{from, r, false});
    prefixes_of(from.src).insert(k);
    ++_candidates;
    _dirty.insert(k);
    return true;
}

void rib::withdraw(origin from, const prefix_key& k) {
    auto t = _table.find(k);
    if (t == _table.end()) {
        return;
    }
    auto& cs = t->second.candidates;
    auto it =
        std::find_if(cs.begin(), cs.end(), [&](const candidate& c) { return c.from == from; });
    if (it == cs.end()) {
        return;
    }
    cs.erase(it);
    --_candidates;
    unindex(from.src, k, cs);
    if (cs.empty()) {
        _table.erase(t);
    }
    _dirty.insert(k);
}

void rib::withdraw_source(source s, const prefix_key& k, protocol keep) {
    auto t = _table.find(k);
    if (t == _table.end()) {
        return;
    }
    auto& cs = t->second.candidates;
    size_t removed = std::erase_if(
        cs, [&](const candidate& c) { return c.from.src == s && c.from.proto != keep; });
    if (removed == 0) {
        return;
    }
    _candidates -= removed;
    unindex(s, k, cs);
    if (cs.empty()) {
        _table.erase(t);
    }
    _dirty.insert(k);
}

void rib::unindex(source s, const prefix_key& k, const std::vector<candidate>& cs) {
    if (std::none_of(cs.begin(), cs.end(), [s](const candidate& c) { return c.from.src == s; })) {
        prefixes_of(s).erase(k);
    }
}

void rib::begin_resync(source s) {
    for (const prefix_key& k : prefixes_of(s)) {
        for (candidate& c : _table.at(k).candidates) {
            if (c.from.src == s) {
                c.stale = true;
            }
        }
    }
}

size_t rib::end_resync(source s) {
    size_t removed = 0;
    std::set<prefix_key>& index = prefixes_of(s);
    for (auto k = index.begin(); k != index.end();) {
        auto it = _table.find(*k);
        auto& cs = it->second.candidates;
        size_t before = cs.size();
        std::erase_if(cs, [s](const candidate& c) { return c.from.src == s && c.stale; });
        bool gone = false;  // no candidate of `s` left for the prefix
        if (cs.size() != before) {
            removed += before - cs.size();
            _dirty.insert(it->first);
            gone = std::none_of(cs.begin(), cs.end(),
                                [s](const candidate& c) { return c.from.src == s; });
        }
        if (cs.empty()) {
            _table.erase(it);
        }
        k = gone ? index.erase(k) : std::next(k);
    }
    _candidates -= removed;
    _c.swept += removed;
    return removed;
}

const rib::candidate* rib::best_of(const prefix_key& k) const {
    auto t = _table.find(k);
    if (t == _table.end()) {
        return nullptr;
    }
    const candidate* best = nullptr;
    for (const candidate& c : t->second.candidates) {  // in source order: the earlier wins ties
        if (best == nullptr || c.r.distance < best->r.distance) {
            best = &c;
        }
    }
    return best;
}

const route* rib::best(const prefix_key& k) const {
    const candidate* c = best_of(k);
    return c != nullptr ? &c->r : nullptr;
}

std::optional<origin> rib::best_origin(const prefix_key& k) const {
    const candidate* c = best_of(k);
    return c != nullptr ? std::optional<origin>(c->from) : std::nullopt;
}

std::vector<std::pair<prefix_key, route>> rib::routes_of(source s) const {
    return routes_of(s, std::nullopt, _by_source[static_cast<size_t>(s)].size()).first;
}

std::pair<std::vector<std::pair<prefix_key, route>>, std::optional<prefix_key>> rib::routes_of(
    source s, const std::optional<prefix_key>& from, size_t budget) const {
    const std::set<prefix_key>& index = _by_source[static_cast<size_t>(s)];
    std::vector<std::pair<prefix_key, route>> out;
    auto it = from ? index.lower_bound(*from) : index.begin();
    for (; it != index.end() && budget > 0; ++it, --budget) {
        for (const candidate& c : _table.at(*it).candidates) {
            if (c.from.src == s) {
                out.emplace_back(*it, c.r);
            }
        }
    }
    return {std::move(out), it != index.end() ? std::optional<prefix_key>(*it) : std::nullopt};
}

// ---------------------------------------------------------------- FIB

size_t rib::commit() {
    uint64_t before = _c.fib_writes;
    std::set<prefix_key> dirty = std::move(_dirty);
    _dirty.clear();
    for (const prefix_key& k : dirty) {
        refresh(k);
    }
    std::set<nh_key> rebind = std::move(_rebind);
    _rebind.clear();
    for (const nh_key& k : rebind) {
        resolve(k);  // still in use after the routes changed
    }
    size_t writes = _c.fib_writes - before;
    if (writes > 0) {
        ++_c.commits;
    }
    return writes;
}

void rib::refresh(const prefix_key& k) {
    const candidate* c = best_of(k);
    auto cur = _installed.find(k);
    if (c == nullptr) {
        if (cur != _installed.end()) {
            ++_c.fib_writes;
            if (!_fib.del_route(k)) {
                ++_c.fib_failed;
            }
            std::optional<nh_key> old = cur->second.r.nh;
            _installed.erase(cur);
            if (old) {
                unref_nexthop(*old);
            }
        }
        return;
    }
    if (cur != _installed.end() && cur->second.r == c->r) {
        cur->second.from = c->from;  // same route, another source offers it now
        return;
    }
    installed_route want{c->from, c->r};
    dp::route_target target{want.r.kind, want.r.index};
    if (want.r.nh) {
        nexthop& nh = ensure_nexthop(*want.r.nh);  // its adjacency is written before the route
        target = dp::route_target{dp::route_kind::adjacency, nh.adj};
        ++nh.refs;
    }
    ++_c.fib_writes;
    if (!_fib.add_route(k, target)) {
        ++_c.fib_failed;
        log::error("route {}/{} could not be installed (FIB full?)", wire::format_ipv4(k.first),
                   k.second);
        if (want.r.nh) {
            unref_nexthop(*want.r.nh);
        }
        return;
    }
    std::optional<nh_key> old;
    if (cur != _installed.end()) {
        old = cur->second.r.nh;
    }
    _installed[k] = want;
    if (old) {
        unref_nexthop(*old);
    }
}

std::optional<std::pair<prefix_key, route>> rib::longest_match(uint32_t dst) const {
    for (int len = 32; len >= 0; --len) {
        uint32_t mask = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
        auto it = _installed.find(prefix_key{dst & mask, static_cast<uint8_t>(len)});
        if (it != _installed.end()) {
            return std::pair{it->first, it->second.r};
        }
    }
    return std::nullopt;
}

std::vector<installed_view> rib::installed() const {
    std::vector<const std::pair<const prefix_key, installed_route>*> order;
    order.reserve(_installed.size());
    for (const auto& kv : _installed) {
        order.push_back(&kv);
    }
    std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
        return a->first < b->first;
    });  // in prefix order, as show ip route lists them
    std::vector<installed_view> out;
    out.reserve(order.size());
    for (const auto* kv : order) {
        const auto& [k, ir] = *kv;
        installed_view v;
        v.prefix = k;
        v.from = ir.from;
        v.r = ir.r;
        auto t = _table.find(k);
        v.candidates = t != _table.end() ? t->second.candidates.size() : 0;
        if (ir.r.nh) {
            if (const nexthop* nh = find_nexthop(*ir.r.nh)) {
                v.nh = *nh;
            }
            if (!on_lan(*ir.r.nh)) {
                v.nbma = nbma_of(ir.r.nh->egress, ir.r.nh->addr);
            }
        }
        out.push_back(v);
    }
    return out;
}

// ---------------------------------------------------------------- next hops

void rib::bind(uint16_t tunnel, uint32_t overlay, uint32_t nbma) {
    _bindings[{tunnel, overlay}] = nbma;
    _rebind.insert(nh_key{tunnel, overlay});
}

void rib::unbind(uint16_t tunnel, uint32_t overlay) {
    if (_bindings.erase({tunnel, overlay}) > 0) {
        _rebind.insert(nh_key{tunnel, overlay});
    }
}

std::optional<uint32_t> rib::nbma_of(uint16_t tunnel, uint32_t overlay) const {
    auto it = _bindings.find({tunnel, overlay});
    return it != _bindings.end() ? std::optional<uint32_t>(it->second) : std::nullopt;
}

const nexthop* rib::find_nexthop(const nh_key& k) const {
    auto it = _nexthops.find(k);
    return it != _nexthops.end() ? &it->second : nullptr;
}

nexthop& rib::ensure_nexthop(const nh_key& k) {
    auto [it, fresh] = _nexthops.try_emplace(k);
    if (!fresh) {
        return it->second;
    }
    auto id = _fib.alloc_adjacency();
    nexthop& nh = it->second;
    nh.adj = id.value_or(0);
    if (!id) {
        ++_c.no_adjacency;
        log::error("no adjacency slot left for next hop {}", wire::format_ipv4(k.addr));
        return nh;
    }
    write(k, nh);
    _rebind.erase(k);  // written with the binding as it is now
    return nh;
}

void rib::unref_nexthop(const nh_key& k) {
    auto it = _nexthops.find(k);
    if (it == _nexthops.end()) {
        return;
    }
    if (it->second.refs > 0 && --it->second.refs > 0) {
        return;
    }
    if (it->second.adj != 0) {
        _fib.free_adjacency(it->second.adj);
    }
    _nexthops.erase(it);
}

void rib::write(const nh_key& k, nexthop& nh) {
    if (nh.adj == 0) {
        return;
    }
    std::optional<uint32_t> nbma = on_lan(k) ? std::nullopt : nbma_of(k.egress, k.addr);
    uint64_t seq = ++_write_seq;
    nh.seq = seq;
    bool complete = _fib.write_nexthop(k, nh.adj, nbma, nh.complete);
    if (nh.seq == seq) {  // not written again meanwhile
        nh.complete = complete;
    }
}

void rib::resolve(const nh_key& k) {
    auto it = _nexthops.find(k);
    if (it != _nexthops.end()) {
        write(k, it->second);
    }
}

void rib::resolve_where(const std::function<bool(const nh_key&, std::optional<uint32_t>)>& pred) {
    std::vector<nh_key> keys;
    for (const auto& [k, nh] : _nexthops) {
        if (pred(k, on_lan(k) ? std::nullopt : nbma_of(k.egress, k.addr))) {
            keys.push_back(k);
        }
    }
    std::sort(keys.begin(), keys.end());  // written in key order, whatever the hash's order
    for (const nh_key& k : keys) {
        resolve(k);
    }
}

}  // namespace dmvpn::rib
