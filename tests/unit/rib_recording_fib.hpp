// A recording FIB for the RIB's tests (control/rib): routes, adjacency ids, each adjacency's
// last write; LAN next hops complete when `arp` holds them, tunnel ones when NHRP bound them.
#pragma once

#include <map>
#include <optional>
#include <set>

#include "control/rib/rib.hpp"
#include "dataplane/worker_ctx.hpp"

namespace dmvpn::rib::test {

// The dataplane as the RIB sees it: a FIB map, adjacency ids, and each adjacency's last write.
struct recording_fib final : fib_port {
    struct adj_state {
        nh_key k;
        std::optional<uint32_t> nbma;
        bool complete = false;
    };
    std::map<prefix_key, dp::route_target> fib;
    std::map<uint32_t, adj_state> adjs;
    std::set<uint32_t> freed;
    std::set<std::pair<uint16_t, uint32_t>> arp;  // LAN neighbours whose MAC is known
    uint32_t next_id = 1;
    uint32_t max_ids = 1000;
    size_t fib_room = 1000;
    size_t adds = 0;
    size_t dels = 0;

    std::optional<uint32_t> alloc_adjacency() override {
        if (next_id > max_ids) {
            return std::nullopt;
        }
        return next_id++;
    }
    void free_adjacency(uint32_t id) override {
        adjs.erase(id);
        freed.insert(id);
    }
    bool add_route(const prefix_key& k, dp::route_target t) override {
        if (!fib.contains(k) && fib.size() >= fib_room) {
            return false;
        }
        ++adds;
        fib[k] = t;
        return true;
    }
    bool del_route(const prefix_key& k) override {
        ++dels;
        return fib.erase(k) > 0;
    }
    bool write_nexthop(const nh_key& k, uint32_t adj, std::optional<uint32_t> nbma, bool) override {
        bool complete = on_lan(k) ? arp.contains({static_cast<uint16_t>(k.egress & 0x7fff), k.addr})
                                  : nbma.has_value();
        adjs[adj] = adj_state{k, nbma, complete};
        return complete;
    }
    // The adjacency a prefix's FIB entry names (0: none or not an adjacency route).
    uint32_t adj_of(const prefix_key& k) const {
        auto it = fib.find(k);
        return it != fib.end() && it->second.kind == dp::route_kind::adjacency ? it->second.index
                                                                               : 0;
    }
};

}  // namespace dmvpn::rib::test
