// The IPv4 FIB: rte_lpm with 24-bit next hops that name an adjacency slot or a special action;
// written by the control lcore while workers look up (tbl8 groups reclaimed through RCU).
#pragma once

#include <rte_lpm.h>
#include <rte_rcu_qsbr.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

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

// rte_lpm keeps 24 bits of next hop: 3 bits of kind, 21 of index.
inline constexpr uint32_t route_index_bits = 21;
inline constexpr uint32_t route_index_max = (1u << route_index_bits) - 1;

constexpr uint32_t encode(route_target t) noexcept {
    return (static_cast<uint32_t>(t.kind) << route_index_bits) | (t.index & route_index_max);
}
constexpr route_target decode(uint32_t nh) noexcept {
    return route_target{static_cast<route_kind>((nh >> route_index_bits) & 7u),
                        nh & route_index_max};
}

class fib {
public:
    // Allocates the LPM (64 MiB of tbl24): control lcore, at start.
    static std::unique_ptr<fib> create(const std::string& name, uint32_t max_routes, uint32_t tbl8s,
                                       int socket_id);
    ~fib();
    fib(const fib&) = delete;
    fib& operator=(const fib&) = delete;

    // Lets deletes free tbl8 groups only after the workers of `v` passed a quiescent point.
    int attach_rcu(rte_rcu_qsbr* v) noexcept;

    // Control lcore only. Addresses in host byte order. 0 or -errno.
    int add(uint32_t prefix, uint8_t len, route_target t) noexcept;
    int del(uint32_t prefix, uint8_t len) noexcept;

    // Workers: next_hops[i] has RTE_LPM_LOOKUP_SUCCESS set on a hit.
    void lookup_bulk(const uint32_t* ips, uint32_t* next_hops, unsigned n) const noexcept {
        rte_lpm_lookup_bulk(_lpm, ips, next_hops, n);
    }
    // Workers: starts loading the tbl24 entry `ip` will be looked up in (a stage ahead of the
    // lookup; a /25 or longer also reads a tbl8 group, which is not prefetched).
    void prefetch(uint32_t ip) const noexcept { __builtin_prefetch(&_lpm->tbl24[ip >> 8], 0, 3); }
    // One lookup; nullopt on a miss.
    std::optional<route_target> lookup(uint32_t ip) const noexcept;

    rte_lpm* raw() const noexcept { return _lpm; }

private:
    explicit fib(rte_lpm* lpm) : _lpm(lpm) {}
    rte_lpm* _lpm;
};

}  // namespace dmvpn::dp
