// The IPv4 FIB: a DIR-24-8 table (as rte_lpm's) with 24-bit next hops that name an adjacency
// slot or a special action; its rules in one hash map per prefix length, so adds and deletes cost
// the same at a million routes as at ten. Written by the control lcore while workers look up;
// tbl8 groups are reused only after the workers passed an RCU quiescent point.
#pragma once

#include <rte_rcu_qsbr.h>

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace dmvpn::dp {

enum class route_kind : uint8_t {
    adjacency = 0,     // index: adjacency slot (tunnel spoke, LAN neighbour or static via)
    local = 1,         // one of the hub's own addresses: punt for_us
    blackhole = 2,     // discard
    glean_tunnel = 3,  // connected tunnel subnet, no host route yet: index = tunnel
    glean_lan = 4,     // connected LAN subnet, no neighbour yet: index = port
};

struct route_target {
    route_kind kind = route_kind::blackhole;
    uint32_t index = 0;
};

// A table entry keeps 24 bits of next hop: 3 bits of kind, 21 of index.
inline constexpr uint32_t route_index_bits = 21;
inline constexpr uint32_t route_index_max = (1u << route_index_bits) - 1;

constexpr uint32_t encode(route_target t) noexcept {
    return (static_cast<uint32_t>(t.kind) << route_index_bits) | (t.index & route_index_max);
}
constexpr route_target decode(uint32_t nh) noexcept {
    return route_target{static_cast<route_kind>((nh >> route_index_bits) & 7u),
                        nh & route_index_max};
}

// Set in a lookup's result on a hit (the low 24 bits are then the encoded next hop).
inline constexpr uint32_t fib_hit = 1u << 24;

class fib {
public:
    // Allocates the table (64 MiB of tbl24, 1 KiB per tbl8 group) on hugepages: control lcore,
    // at start. `max_routes` rules at most; `tbl8s` groups (one per /24 holding a longer prefix).
    static std::unique_ptr<fib> create(const std::string& name, uint32_t max_routes, uint32_t tbl8s,
                                       int socket_id);
    ~fib();
    fib(const fib&) = delete;
    fib& operator=(const fib&) = delete;

    // Lets a freed tbl8 group be reused only after the workers of `v` passed a quiescent point
    // (without it, a group is reusable at once: only for tables no worker reads).
    int attach_rcu(rte_rcu_qsbr* v) noexcept;

    // Control lcore only. Addresses in host byte order, lengths 0-32 (host bits are ignored).
    // add replaces the next hop of an existing rule. 0 or -errno (-ENOSPC: max_routes rules
    // or every tbl8 group in use; -ENOENT: no such rule on delete; -EINVAL).
    int add(uint32_t prefix, uint8_t len, route_target t) noexcept;
    int del(uint32_t prefix, uint8_t len) noexcept;

    // Workers: next_hops[i] has fib_hit set on a hit. One or two dependent loads per address.
    void lookup_bulk(const uint32_t* ips, uint32_t* next_hops, unsigned n) const noexcept {
        for (unsigned i = 0; i < n; ++i) {
            next_hops[i] = lookup_raw(ips[i]);
        }
    }
    // Workers: starts loading the tbl24 entry `ip` will be looked up in (a stage ahead of the
    // lookup; a /25 or longer also reads a tbl8 group, which is not prefetched).
    void prefetch(uint32_t ip) const noexcept { __builtin_prefetch(&_tbl24[ip >> 8], 0, 3); }
    // One lookup; nullopt on a miss.
    std::optional<route_target> lookup(uint32_t ip) const noexcept;

    // Control side, for tests and show: rules held, tbl8 groups in use / waiting for a grace
    // period / free.
    size_t rules() const noexcept { return _n_rules; }
    uint32_t tbl8s_total() const noexcept { return _tbl8s; }
    uint32_t tbl8s_used() const noexcept { return _tbl8_used; }
    size_t tbl8s_pending() const noexcept { return _pending.size(); }
    size_t tbl8s_free() const noexcept { return _free.size(); }

    // An entry of either table: next hop (24 bits), valid (bit 24, = fib_hit), group (bit 25:
    // the low 24 bits name a tbl8 group; tbl24 only), the depth of the rule (bits 26-31).
    static constexpr uint32_t nh_mask = 0x00ffffffu;
    static constexpr uint32_t valid_bit = fib_hit;
    static constexpr uint32_t group_bit = 1u << 25;
    static constexpr unsigned depth_shift = 26;
    enum class write_mode : uint8_t { fill, replace };  // see write24

private:
    fib(uint32_t* tbl24, uint32_t* tbl8, uint32_t tbl8s, uint32_t max_routes);

    uint32_t lookup_raw(uint32_t ip) const noexcept {
        uint32_t e = __atomic_load_n(&_tbl24[ip >> 8], __ATOMIC_ACQUIRE);
        if ((e & group_bit) != 0) [[unlikely]] {
            e = __atomic_load_n(&_tbl8[((e & nh_mask) << 8) | (ip & 0xffu)], __ATOMIC_RELAXED);
        }
        return e & (valid_bit | nh_mask);
    }

    // Writes entry `e` over the entries of [from, from + n) of `t` (tbl24: and of the groups it
    // names) that a rule of `depth` takes: fill (an add) those held by no longer rule, replace (a
    // delete) those of exactly that depth.
    void write24(uint32_t from, uint32_t n, uint8_t depth, uint32_t e, write_mode mode) noexcept;
    static void write8(uint32_t* t, uint32_t from, uint32_t n, uint8_t depth, uint32_t e,
                       write_mode mode) noexcept;
    // Folds tbl24 entry `i`'s group back into it once no rule longer than /24 is left there.
    void try_collapse(uint32_t i) noexcept;
    std::optional<uint32_t> alloc_group() noexcept;
    void free_group(uint32_t g) noexcept;
    // The longest rule shorter than `len` covering `prefix`, as a table entry (0: none).
    uint32_t covering(uint32_t prefix, uint8_t len) const noexcept;

    uint32_t* _tbl24;
    uint32_t* _tbl8;
    uint32_t _tbl8s;
    uint32_t _max_routes;
    rte_rcu_qsbr* _rcu = nullptr;
    // Rules by length: network -> encoded next hop.
    std::array<std::unordered_map<uint32_t, uint32_t>, 33> _rules;
    size_t _n_rules = 0;
    uint32_t _tbl8_used = 0;
    std::vector<uint32_t> _free;  // groups reusable now
    struct pending_group {
        uint32_t group;
        uint64_t token;  // rte_rcu_qsbr_start when it was freed
    };
    std::deque<pending_group> _pending;  // freed, in the order freed (tokens ascending)
};

}  // namespace dmvpn::dp
