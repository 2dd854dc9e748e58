// The control lcore's side of control -> worker updates: topology, routes, adjacencies and
// inbound SAs are published lock-free (immutable objects behind atomic pointers, the FIB with
// RCU) and freed only after every worker passed an rte_rcu_qsbr quiescent point.
#pragma once

#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/adjacency.hpp"
#include "dataplane/fib.hpp"
#include "dataplane/spi_table.hpp"
#include "dataplane/stats.hpp"
#include "dataplane/topology.hpp"
#include "dataplane/wire/result.hpp"

namespace dmvpn::dp {

inline constexpr uint16_t max_workers = 32;

// What the workers read. Owned by the publisher; workers hold a const reference.
struct shared_tables {
    rte_rcu_qsbr* rcu = nullptr;  // worker i reports quiescent states as thread i
    fib* routes = nullptr;
    adjacency_table* adjacencies = nullptr;
    std::atomic<const topology*> topo{nullptr};
    std::atomic<const spi_table*> spis{nullptr};
    uint16_t workers = 0;
    // Per DPDK port: workers neither poll nor send on a paused port (publisher::pause_port).
    std::array<std::atomic<bool>, max_ports> port_paused{};

    bool paused(uint16_t port) const noexcept {
        return port < max_ports && port_paused[port].load(std::memory_order_acquire);
    }
};

struct publisher_config {
    std::string name = "dp";  // prefix of the DPDK object names (unique per process)
    uint16_t workers = 1;
    uint32_t adjacencies = 65536;
    uint32_t max_routes = 65536;
    uint32_t tbl8s = 1024;
    int socket_id = SOCKET_ID_ANY;
    // alloc_adjacency_id() hands out ids from here up (slot 0 stays empty, so an unset id never
    // names a live adjacency); the ids below are the caller's to set directly (tests).
    uint32_t first_allocated_id = 1;
};

enum class publish_status : uint8_t {
    ok,
    bad_id,        // adjacency id beyond the table, or beyond what a route can name
    bad_spec,      // tunnel or port unknown to the topology, or an IPsec tunnel without SA
    no_topology,   // set_topology() first
    route_failed,  // the FIB refused (full, bad prefix, or no such route on delete)
};
std::string_view name(publish_status s) noexcept;

enum class publisher_error : uint8_t {
    bad_config,  // no workers, or more than max_workers
    rcu_failed,  // QSBR variable could not be allocated or initialised
    fib_failed,  // the FIB tables could not be allocated or attached to RCU (memory: -m too small?)
};
std::string_view name(publisher_error e) noexcept;

class publisher {
public:
    // Control lcore, after rte_eal_init.
    static wire::result<std::unique_ptr<publisher>, publisher_error> create(
        const publisher_config& cfg);
    // Workers must have stopped (or gone offline) first: waits for a grace period, then frees.
    ~publisher();
    publisher(const publisher&) = delete;
    publisher& operator=(const publisher&) = delete;

    const shared_tables& tables() const noexcept { return _tables; }
    rte_rcu_qsbr* rcu() const noexcept { return _tables.rcu; }

    // Replaces the topology. Adjacencies keep the templates they were built with: re-set them
    // when a tunnel's addresses, key, MTU or a port's MAC change.
    void set_topology(const topology& t);
    const topology* current_topology() const noexcept {
        return _tables.topo.load(std::memory_order_relaxed);
    }

    [[nodiscard]] publish_status set_tunnel_adjacency(uint32_t id, const tunnel_adjacency_spec& s);
    [[nodiscard]] publish_status set_lan_adjacency(uint32_t id, const lan_adjacency_spec& s);
    // A next hop known but not resolved: packets to it glean.
    [[nodiscard]] publish_status set_incomplete(uint32_t id, uint16_t tunnel, uint16_t port,
                                                uint32_t nexthop);
    // Empties the slot; routes still naming it drop as adjacency_missing until removed.
    [[nodiscard]] publish_status remove_adjacency(uint32_t id);

    // Adjacency ids for next hops that come and go. An id travels with packets only from the
    // FIB lookup to resolve within one worker's pass (or one call of the control lcore's
    // forwarder, which runs on this thread): no packet carries an id across a quiescent state,
    // since no worker hands packets to another. Reusing an id before the lookups that found it
    // are over would send such a packet with another next hop's adjacency (another spoke's SA
    // and address).
    std::optional<uint32_t> alloc_adjacency_id();
    // Empties the slot (the caller removed the routes naming it first) and gives the id back
    // to alloc_adjacency_id() once a grace period passed. Advanced by reclaim(), without
    // waiting.
    void free_adjacency_id(uint32_t id);
    // Ids given back but not yet reusable.
    size_t ids_pending() const noexcept { return _ids_waiting.size(); }

    [[nodiscard]] publish_status add_route(uint32_t prefix, uint8_t len, route_target t);
    [[nodiscard]] publish_status del_route(uint32_t prefix, uint8_t len);

    // Replaces the whole inbound SA table (start, reload: O(SAs)).
    void set_inbound_sas(std::span<const inbound_sa> sas);
    // One SA at a time, in place (the IKE paths: O(1), no new table for the workers): the
    // entry is visible to every worker's next lookup on return. bad_spec: SPI 0 or already in
    // the table. The table is rebuilt bigger (and republished whole) only when it runs out of
    // empty slots, i.e. after about as many inserts as it held.
    [[nodiscard]] publish_status add_inbound_sa(const inbound_sa& e);
    // Removes spi's entry if it names `sa` (false: no such entry). `sa` itself stays the
    // caller's to free through retire() (a worker may have just found it); the slot is reused
    // only after a grace period (advanced by reclaim() and add_inbound_sa()).
    bool remove_inbound_sa(uint32_t spi, const crypto::sa* sa);
    const spi_table& inbound_table() const noexcept { return *_spis; }
    // Removed SAs' slots still waiting for their grace period.
    size_t spi_slots_pending() const noexcept { return _spi_waiting.size(); }

    // Runs `release` once every worker passed a quiescent point after this call: how an SA
    // that an adjacency or the SPI table stopped naming gets destroyed.
    void retire(std::function<void()> release);

    // Frees what no worker can still see, and moves given-back adjacency ids on, without
    // waiting. Returns how many objects were freed.
    size_t reclaim();
    // Waits for a grace period and frees everything retired (shutdown, tests).
    void synchronize();

    // Stops the workers polling and sending on `port` (false: no such port slot). Once
    // port_quiet(token) is true, every worker passed a quiescent point after the pause and none
    // touches the port's queues any more: what a PMD that unmaps its rings under a polling
    // worker needs (DPDK 22.11 net_memif when its peer leaves).
    [[nodiscard]] std::optional<uint64_t> pause_port(uint16_t port);
    bool port_quiet(uint64_t token) const;
    void resume_port(uint16_t port);

    size_t pending() const noexcept { return _retired.size(); }
    // Adjacency objects alive: published ones plus retired ones not yet freed.
    size_t live_adjacencies() const noexcept { return _live_adjacencies; }

private:
    explicit publisher(const publisher_config& cfg);
    publish_status install(uint32_t id, std::unique_ptr<adjacency> a);
    void retire_adjacency(const adjacency* a);
    void advance_ids();
    void advance_spi_slots();
    void replace_spi_table(std::unique_ptr<spi_table> fresh);

    struct retired {
        uint64_t token;
        std::function<void()> release;
    };

    publisher_config _cfg;
    shared_tables _tables;
    std::unique_ptr<fib> _fib;
    std::unique_ptr<adjacency_table> _adj;
    std::deque<retired> _retired;
    size_t _live_adjacencies = 0;

    // Adjacency ids: free, and given back but waiting for their grace period.
    std::vector<uint32_t> _free_ids;
    uint32_t _next_id = 1;
    struct waiting_id {
        uint32_t id;
        uint64_t token;
    };
    std::deque<waiting_id> _ids_waiting;
    // The published SPI table (the writer's view of _tables.spis) and its tombstoned slots
    // waiting for their grace period (`id`: the slot).
    spi_table* _spis = nullptr;
    std::deque<waiting_id> _spi_waiting;
};

}  // namespace dmvpn::dp
