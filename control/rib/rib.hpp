// The hub's routing table: candidate routes per prefix from every source (connected, static,
// FRR through FPM, NHRP), the best one by administrative distance, its next hop resolved, and
// the FIB written from it (only here). Control lcore only.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "control/key_hash.hpp"
#include "dataplane/fib.hpp"

namespace dmvpn::rib {

// A prefix: network (host byte order, host bits zero) and length.
using prefix_key = std::pair<uint32_t, uint8_t>;

// Where a route comes from. Between equal distances the earlier source wins (a gleaned host
// before a configured route before FRR's before NHRP's).
enum class source : uint8_t {
    glean,         // a LAN host the hub ARPed for (a /32 of a connected subnet)
    connected,     // ports' and tunnels' subnets, the hub's own addresses
    static_route,  // YAML `routes`
    fpm,           // FRR's zebra through FPM, by protocol
    nhrp,          // registered spokes' (and shortcuts') host or prefix routes
};
std::string_view name(source s) noexcept;

// The routing protocol of an FPM route (what zebra says it came from).
enum class protocol : uint8_t {
    none,  // not an FPM route
    kernel,
    static_route,  // FRR staticd
    ebgp,
    ibgp,
    ospf,
    eigrp,
    isis,
    rip,
    other,
};
std::string_view name(protocol p) noexcept;

// Administrative distances as IOS gives them (lowest wins): a registration never displaces a
// connected or configured route, and FRR's routes sit between static and NHRP.
namespace distance {
inline constexpr uint8_t connected = 0;  // subnets, the hub's own addresses, gleaned LAN hosts
inline constexpr uint8_t static_route = 1;
inline constexpr uint8_t ebgp = 20;
inline constexpr uint8_t eigrp = 90;
inline constexpr uint8_t ospf = 110;
inline constexpr uint8_t isis = 115;
inline constexpr uint8_t rip = 120;
inline constexpr uint8_t ibgp = 200;
inline constexpr uint8_t nhrp = 250;  // IOS: "H" routes, [250/1]
inline constexpr uint8_t unknown = 254;
}  // namespace distance
inline constexpr uint32_t nhrp_metric = 1;  // IOS shows NHRP routes as [250/1]
// The IOS default distance of a source (of an FPM protocol for source::fpm).
uint8_t default_distance(source s, protocol p = protocol::none) noexcept;

// Who offers a candidate: one candidate per origin and prefix.
struct origin {
    source src = source::connected;
    protocol proto = protocol::none;
    auto operator<=>(const origin&) const = default;
};

// A next hop: on a tunnel (egress = its slot, addr = the overlay address), or on a LAN
// (egress = dp::glean_lan_port_bit | DPDK port id, addr = the neighbour).
struct nh_key {
    uint16_t egress = 0;
    uint32_t addr = 0;
    auto operator<=>(const nh_key&) const = default;
};
bool on_lan(const nh_key& k) noexcept;

// The hash of the RIB's keys (its hashed tables, below).
struct key_hash {
    size_t operator()(const prefix_key& k) const noexcept {
        return control::mix64(uint64_t{k.first} << 8 | k.second);
    }
    size_t operator()(const nh_key& k) const noexcept {
        return control::mix64(uint64_t{k.egress} << 32 | k.addr);
    }
    size_t operator()(const std::pair<uint16_t, uint32_t>& k) const noexcept {
        return control::mix64(uint64_t{k.first} << 32 | k.second);
    }
};

// What a source wants for a prefix. With `nh` the FIB points at that next hop's adjacency;
// without, at `kind`/`index` (local, glean_tunnel, glean_lan, blackhole).
struct route {
    dp::route_kind kind = dp::route_kind::blackhole;
    uint32_t index = 0;
    std::optional<nh_key> nh;
    uint8_t distance = distance::connected;
    uint32_t metric = 0;
    bool operator==(const route&) const = default;
};

// A next hop the FIB points at: its adjacency slot and how many installed routes use it.
struct nexthop {
    uint32_t adj = 0;  // 0: no slot was free
    uint32_t refs = 0;
    bool complete = false;
    // Which write was last: writing may resolve the same next hop again (ARP answered from a
    // cache), and then the later write's outcome is the one in the dataplane.
    uint64_t seq = 0;
};

// The dataplane side the RIB writes through (the hub's publisher; a recorder in the tests).
class fib_port {
public:
    virtual ~fib_port() = default;
    virtual std::optional<uint32_t> alloc_adjacency() = 0;
    // The slot becomes reusable once no packet can carry it any more.
    virtual void free_adjacency(uint32_t id) = 0;
    // False: the FIB refused (full).
    virtual bool add_route(const prefix_key& k, dp::route_target t) = 0;
    virtual bool del_route(const prefix_key& k) = 0;
    // Writes next hop `k`'s adjacency `adj`: a LAN neighbour (ARP), a tunnel next hop bound to
    // `nbma` by NHRP (underlay ARP, the peer's SA), or unbound (`nbma` empty: incomplete, its
    // packets glean). `was_complete`: what it was before. Returns whether it is complete now.
    virtual bool write_nexthop(const nh_key& k, uint32_t adj, std::optional<uint32_t> nbma,
                               bool was_complete) = 0;
};

struct limits {
    // Candidates held at most (every source together); one more is refused and counted.
    size_t max_routes = 65536;
};

struct counters {
    uint64_t refused = 0;       // candidates refused: max_routes reached
    uint64_t fib_failed = 0;    // FIB writes refused (route not installed / not removed)
    uint64_t commits = 0;       // commit() calls that wrote something
    uint64_t fib_writes = 0;    // route adds and deletes
    uint64_t swept = 0;         // candidates removed by end_resync
    uint64_t no_adjacency = 0;  // next hops that found no adjacency slot
};

// One installed route, for show ip route.
struct installed_view {
    prefix_key prefix;
    origin from;
    route r;
    size_t candidates = 0;  // of all sources for this prefix
    std::optional<nexthop> nh;
    std::optional<uint32_t> nbma;  // a tunnel next hop's NBMA address, when bound
};

class rib {
public:
    rib(fib_port& fib, limits cfg);
    rib(const rib&) = delete;
    rib& operator=(const rib&) = delete;

    // Offers (or replaces) `from`'s route for `k`; staged until commit(). False: refused,
    // max_routes candidates are held already (counted).
    bool set(origin from, const prefix_key& k, const route& r);
    // Takes `from`'s route for `k` back (the next best is installed at commit()).
    void withdraw(origin from, const prefix_key& k);
    // Takes back every candidate of source `s` for `k` whose protocol is not `keep` (FPM: zebra
    // holds one route per prefix, and a new one from another protocol replaces the old).
    void withdraw_source(source s, const prefix_key& k, protocol keep = protocol::none);
    // Full resynchronisation of a source (FPM after a reconnect, a reload's configuration):
    // begin marks its candidates stale, set() refreshes them, end removes those still stale.
    void begin_resync(source s);
    size_t end_resync(source s);

    // Installs what changed since the last commit: each touched prefix's best candidate is
    // written to the FIB once, however often it changed; next hops bound or unbound meanwhile
    // are resolved again. Returns the FIB writes made.
    size_t commit();

    // NHRP's overlay -> NBMA bindings, through which tunnel next hops resolve. A next hop in
    // use is resolved again at the next commit().
    void bind(uint16_t tunnel, uint32_t overlay, uint32_t nbma);
    void unbind(uint16_t tunnel, uint32_t overlay);
    std::optional<uint32_t> nbma_of(uint16_t tunnel, uint32_t overlay) const;

    // Writes one next hop's adjacency again now (ARP answered, an SA came or went).
    void resolve(const nh_key& k);
    // ... every next hop's for which `pred(key, nbma)` holds.
    void resolve_where(const std::function<bool(const nh_key&, std::optional<uint32_t>)>& pred);

    // The best candidate for `k` (staged: what commit() will install), if any.
    const route* best(const prefix_key& k) const;
    std::optional<origin> best_origin(const prefix_key& k) const;
    // The longest installed prefix holding `dst`, and its route.
    std::optional<std::pair<prefix_key, route>> longest_match(uint32_t dst) const;
    const nexthop* find_nexthop(const nh_key& k) const;
    // Candidates of `s` (all prefixes).
    std::vector<std::pair<prefix_key, route>> routes_of(source s) const;
    // A slice of them: the candidates of `s` for at most `budget` of its prefixes from `from`
    // (the first not below it; the start when none), and where the next slice starts (none
    // once the end was reached).
    std::pair<std::vector<std::pair<prefix_key, route>>, std::optional<prefix_key>> routes_of(
        source s, const std::optional<prefix_key>& from, size_t budget) const;
    size_t prefix_count(source s) const noexcept {
        return _by_source[static_cast<size_t>(s)].size();
    }

    std::vector<installed_view> installed() const;
    size_t installed_count() const noexcept { return _installed.size(); }
    size_t nexthop_count() const noexcept { return _nexthops.size(); }
    size_t candidate_count() const noexcept { return _candidates; }
    const counters& stats() const noexcept { return _c; }
    const limits& cfg() const noexcept { return _cfg; }

private:
    struct candidate {
        origin from;
        route r;
        bool stale = false;
    };
    struct entry {
        std::vector<candidate> candidates;  // sorted by origin
    };
    struct installed_route {
        origin from;
        route r;
    };

    std::set<prefix_key>& prefixes_of(source s) { return _by_source[static_cast<size_t>(s)]; }
    // Drops `k` from `s`'s index unless a candidate of `s` is left in `cs`.
    void unindex(source s, const prefix_key& k, const std::vector<candidate>& cs);
    const candidate* best_of(const prefix_key& k) const;
    void refresh(const prefix_key& k);
    nexthop& ensure_nexthop(const nh_key& k);
    void unref_nexthop(const nh_key& k);
    void write(const nh_key& k, nexthop& nh);

    fib_port& _fib;
    limits _cfg;
    counters _c;
    // The tables a registration touches are hashed (a red-black tree of 10,000 spokes' routes
    // walked with cold caches cost a cache and TLB miss per level, several walks per
    // registration); what needs an order keeps one of its own (_by_source's slices) or sorts
    // when asked (installed(), resolve_where()).
    std::unordered_map<prefix_key, entry, key_hash> _table;
    // Per source, the prefixes it has a candidate for: a source's routes, its resync and its
    // withdrawal walk its own prefixes, not the whole table (a million FPM routes).
    std::array<std::set<prefix_key>, 5> _by_source;
    size_t _candidates = 0;
    std::unordered_map<prefix_key, installed_route, key_hash> _installed;
    std::unordered_map<nh_key, nexthop, key_hash> _nexthops;
    // (tunnel, overlay) -> NBMA
    std::unordered_map<std::pair<uint16_t, uint32_t>, uint32_t, key_hash> _bindings;
    std::set<prefix_key> _dirty;
    std::set<nh_key> _rebind;
    uint64_t _write_seq = 0;
};

}  // namespace dmvpn::rib
