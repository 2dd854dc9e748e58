// The hub's control lcore: starts DPDK from the topology, fills the workers' tables, runs the
// never-blocking loop (punts, NHRP, ARP, ICMP, timers, management, reload) and stops cleanly.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <span>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include "config/topology.hpp"
#include "control/heap_headroom.hpp"
#include "control/hub/exception.hpp"
#include "control/hub/ike_peers.hpp"
#include "control/hub/loop_time.hpp"
#include "control/hub/model.hpp"
#include "control/hub/multicast.hpp"
#include "control/hub/neighbors.hpp"
#include "control/hub/pass_profile.hpp"
#include "control/fpm/server.hpp"
#include "control/ike/child_pairs.hpp"
#include "control/ike/thread.hpp"
#include "control/mgmt/metrics.hpp"
#include "control/mgmt/server.hpp"
#include "control/nhrp/server.hpp"
#include "control/rib/fpm_routes.hpp"
#include "control/rib/rib.hpp"
#include "control/rib/redistribute.hpp"
#include "crypto/engine.hpp"
#include "crypto/sa.hpp"
#include "dataplane/publisher.hpp"
#include "dataplane/punt.hpp"
#include "dataplane/stats.hpp"
#include "dataplane/token_bucket.hpp"
#include "dataplane/wire/result.hpp"
#include "dataplane/worker.hpp"

namespace dmvpn::hub {

class telemetry;

// Multicast packets waiting to be replicated (punted or from a kernel interface); beyond it a
// packet is dropped, counted (multicast_backlog_dropped).
inline constexpr size_t multicast_backlog = 64;

struct start_params {
    config::topology topology;
    std::optional<std::string> config_path;  // none: the embedded default (no reload)
    std::optional<std::string> socket;       // overrides topology.mgmt.socket
    std::vector<std::string> eal_args;       // from the command line, after the topology's
    bool log_level_from_cli = false;         // --log-level given: a reload leaves the level alone
    std::optional<std::string> key_log;      // --key-log DIR: IKE and ESP keys for Wireshark
};

// What the control lcore counts about its own work (show stats).
struct control_counters {
    std::array<uint64_t, dp::punt_reason_count> punts{};
    uint64_t arp_bad = 0;
    uint64_t icmp_echo_replies = 0;
    uint64_t icmp_errors_sent = 0;
    uint64_t icmp_errors_limited = 0;  // not sent: over hub.icmp-error-rate
    uint64_t for_us_unhandled = 0;
    uint64_t nhrp_sent = 0;
    uint64_t nhrp_tx_no_esp_path = 0;  // NHRP to an IPsec peer without an SA or adjacency slot
    uint64_t nhrp_tx_esp = 0;          // NHRP sent as ESP through the control forwarder
    uint64_t nhrp_held_dropped = 0;    // NHRP waiting for the peer's ARP, beyond the hold limit
    uint64_t tx_frames = 0;
    uint64_t tx_failed = 0;
    uint64_t forwarded = 0;       // packets through the control lcore's forwarder (encap, ESP)
    uint64_t forward_failed = 0;  // not forwarded: no mbuf room
    uint64_t no_route = 0;
    uint64_t no_binding = 0;  // to a tunnel next hop nobody registered
    // To a LAN subnet's broadcast (or all-zeros) address: dropped, never ARPed for, as IOS's
    // default `no ip directed-broadcast` does
    uint64_t directed_broadcast = 0;
    uint64_t held_dropped = 0;
    uint64_t multicast_copies = 0;
    uint64_t multicast_link_local = 0;
    uint64_t tx_paused = 0;                  // control lcore frames not sent: their port is paused
    uint64_t multicast_backlog_dropped = 0;  // replication backlog full: the packet dropped
    uint64_t publish_failed = 0;
    uint64_t mbuf_alloc_failed = 0;
    uint64_t reloads = 0;
    uint64_t reloads_rejected = 0;
    uint64_t ike_rx = 0;          // IKE datagrams posted to the IKE thread
    uint64_t ike_rx_bad = 0;      // UDP 500/4500 to an IKE address that was not IKE
    uint64_t ike_rx_dropped = 0;  // the IKE thread's input queue was full
    uint64_t ike_tx = 0;          // IKE datagrams sent
    uint64_t ike_installs = 0;    // CHILD_SA pairs installed
    uint64_t ike_install_failed = 0;
    uint64_t ike_removes = 0;  // CHILD_SA pairs removed
    // CHILD_SA pairs from a peer's rekey whose outbound waited for the peer's traffic or DELETE
    uint64_t ike_outbound_waits = 0;
    // CHILD_SA pairs removed after a rekey whose inbound SA kept decrypting (ike::rekey_drain)
    uint64_t ike_drains = 0;
    // A first pair we answered for, with an NHS peer: our registration waited until the peer's
    // traffic decrypted with it (the peer had installed it), or, with none, for nhs_wait_max.
    uint64_t ike_nhs_waited = 0;
    uint64_t ike_nhs_wait_expired = 0;
};

class hub {
public:
    // EAL, pool, ports, publisher, SAs, NHRP server, workers launched, management socket.
    // The error says what went wrong and what to do about it.
    static wire::result<std::unique_ptr<hub>, std::string> start(start_params p);
    // Stops workers, ports and EAL (in that order).
    ~hub();
    hub(const hub&) = delete;
    hub& operator=(const hub&) = delete;

    // The control loop, until `stop` is set; `reload` (SIGHUP) is cleared when served.
    void run(const std::atomic<bool>& stop, std::atomic<bool>& reload);

    // One management command line ("show nhrp --json"); also what telemetry snapshots use.
    control::mgmt_reply command(std::string_view line);
    // Re-reads the topology file and applies it, or says why not (the old one stays).
    control::mgmt_reply reload();
    // `port pause|resume NAME`: workers stop touching the port before its peer goes away.
    control::mgmt_reply port_pause(const std::string& name, bool pause, bool json);

    const std::string& socket_path() const noexcept { return _socket; }

private:
    struct port_rt {
        std::string name;
        config::port cfg;
        opened_port opened;
        uint16_t control_queue = 0;
        uint16_t rx_queues = 0;
        bool rss = false;  // dp::port_state::rss: RX queues spread by the NIC's hash
        uint64_t control_tx = 0;
        bool link_up = false;  // as last seen: a link coming up re-announces the address
        // `dmvpnctl port pause`: the grace period after which no worker touches the port.
        std::optional<uint64_t> pause_token;
    };
    using nh_key = rib::nh_key;
    // NHRP to a peer on an IPsec tunnel leaves through a tunnel adjacency of its own, keyed by
    // (tunnel slot, NBMA) rather than by overlay address (a peer being refused has no binding),
    // which the control lcore's forwarder encapsulates and encrypts with. No route points at it.
    struct nbma_path {
        uint32_t adj = 0;
        bool complete = false;
        timestamp last_used{};
        std::vector<bytes> held;  // NHRP payloads waiting for the peer's ARP
    };
    // An overlay address bound to an NBMA address by the NHRP server (registration or map).
    struct binding {
        uint32_t nbma = 0;
        uint8_t prefix_len = 32;
        bool multicast = false;
        bool nat = false;
        nhrp::change_cause cause = nhrp::change_cause::registration;
        // Kept from a replaced NHRP server (reload) until this time unless re-registered.
        std::optional<timestamp> carried_until;
    };
    // An ESP SA pair with one peer: written in the topology (manual-sas) or negotiated by IKEv2
    // (a CHILD_SA, installed at run time).
    struct peer_sa {
        uint64_t id = 0;  // the CHILD_SA's engine id; 0: a manual SA
        std::string profile;
        uint32_t peer = 0;                     // the peer's NBMA address
        std::optional<uint16_t> tunnel;        // IKE: the tunnel slot it was negotiated on
        std::optional<config::manual_sa> cfg;  // manual SAs only
        config::ipsec_profile profile_cfg;
        // NAT-T (RFC 3948): ESP leaves in UDP from local_port to peer_port.
        bool udp_encap = false;
        uint16_t local_port = 4500;
        uint16_t peer_port = 4500;
        std::unique_ptr<crypto::sa> in;
        std::unique_ptr<crypto::sa> out;
        // IKE: a worker marked one direction past its soft byte/packet limit and the engine
        // has been told (ike_soft_limits), so it rekeys before the hard limit.
        bool soft_reported = false;
    };
    using sa_key = std::pair<std::string, uint32_t>;  // profile, peer NBMA

    hub() = default;

    // start() steps
    std::optional<std::string> start_eal(const start_params& p);
    // hub.service-cpus or the automatic choice (control/cpu_placement.hpp), from the process's
    // CPUs before EAL pinned the main thread.
    std::optional<std::string> place_service_threads(const std::vector<unsigned>& allowed);
    std::optional<std::string> open_ports();
    std::optional<std::string> create_tables();
    std::optional<std::string> build_sas(const config::topology& t,
                                         std::map<sa_key, std::unique_ptr<peer_sa>>& out);
    // The control lcore's own forwarder (hub::forward), before anything sends.
    std::optional<std::string> start_forwarder();
    std::optional<std::string> start_workers();
    std::optional<std::string> start_nhrp();
    // routing.interfaces: the exception path's kernel interfaces (control/hub/exception.hpp).
    std::optional<std::string> open_exception();
    // What the kernel sent out of them, into the hub: unicast routed, multicast replicated (a
    // tunnel's) or sent on the port to its mapped MAC (a port's).
    size_t exception_pass(timestamp now);
    // A punted packet for the host's daemons: to the kernel interface of its tunnel (or of the
    // tunnel owning its destination, else of the port it came in by: a LAN's 224.0.0.0/24).
    // False when no kernel interface takes it.
    bool to_kernel(const dp::punt_record& r, uint32_t dst, timestamp now);
    // Multicast or broadcast the kernel sent out of port interface `e`, as a frame to `mac`
    // (the group's, or ff:ff:ff:ff:ff:ff) on the port. False when the port did not take it.
    bool frame_to_port(const exception_iface& e, std::span<const uint8_t> pkt,
                       const std::array<uint8_t, 6>& mac);
    // Creates both directions of `ps`; the error names the peer and
    // what the dataplane refused. Used for manual SAs and negotiated CHILD_SAs alike.
    std::optional<std::string> install_pair(peer_sa& ps, const crypto::sa_params& in,
                                            const crypto::sa_params& out);
    // Publishes a whole new SPI table now: every current pair's inbound SA, and those of the
    // IKE pairs in _standby; then retires what waited for it (_after_inbound). `reindex`:
    // rebuild _inbound_spis too (after the manual SAs changed: start, reload); the IKE paths
    // keep it current one SA at a time instead.
    void install_inbound_sas(bool reindex = true);
    // The SPI table's entry for `ps` (none: its tunnel is gone).
    std::optional<dp::inbound_sa> inbound_entry(const peer_sa& ps) const;
    // The IKE paths' way: each install and removal changes the published table in place
    // (dp::publisher::add_inbound_sa / remove_inbound_sa) before calling this; `after` (an ack,
    // the free of an SA the table stopped naming) is retired once per loop pass
    // (flush_inbound_sas), after all of the pass's changes.
    void inbound_sas_changed(std::function<void()> after = {});
    void flush_inbound_sas();
    void retire_after_inbound();
    // IKE (control/ike/thread): the engine's outputs, drained each pass; acks owed to it.
    std::optional<std::string> start_ike();
    size_t ike_pass(timestamp now);
    // FRR's routes (hub_fpm.cpp): the FPM server from routing.fpm, its batches into the RIB.
    std::optional<std::string> start_fpm();
    void refresh_fpm_interfaces();  // where FPM gateways lead: tunnels' and ports' subnets
    size_t fpm_pass(timestamp now);
    // routing.redistribute-nhrp (hub_redistribute.cpp): registered spokes' routes into the
    // kernel through the thread dmvpn-redist, out of their tunnel's kernel interface.
    std::optional<std::string> start_redistribute();
    // Binding `b`'s route offered (`up`) or withdrawn, when its tunnel has a kernel interface.
    void redistribute_binding(uint16_t slot, uint32_t overlay, const binding& b, bool up);
    struct routing_counter {
        std::string_view name;
        std::string_view help;
        uint64_t value = 0;
        bool gauge = false;
    };
    // The RIB's and the FPM server's counters (show stats, telemetry, metrics).
    std::vector<routing_counter> routing_counters() const;
    std::string routing_stats(bool json) const;
    void ike_request(ike::request&& r, timestamp now);
    void install_child(const ike::child_sa& c, timestamp now);
    // `drain`: a pair another one replaced keeps decrypting for ike::rekey_drain; false (the
    // IKE SA is gone) removes it at once, drained or not.
    void remove_child(uint64_t id, std::string_view why, timestamp now, bool drain = true);
    // Makes _sas / _standby say what `key`'s ike::child_pairs decided: the pair that encrypts
    // in _sas, the others that decrypt in _standby, the rest freed once no worker holds them;
    // then the SPI table and the peer's adjacencies.
    void arrange_pairs(const sa_key& key, timestamp now);
    // Every tick: a waiting pair whose inbound SA carried traffic takes over outbound; drained
    // pairs leave.
    void ike_rekey_pairs(timestamp now);
    // Every tick: the registrations in _nhs_wait whose pair decrypted the peer's traffic (or
    // whose wait ran out) go to the NHS now; those whose pair went are forgotten.
    void ike_nhs_after_peer(timestamp now);
    void remove_peer_sas(uint32_t tunnel, uint32_t peer, timestamp now);
    void ike_post_owed();
    // Every tick: the next slice of the negotiated pairs' counters to the engine (lifetimes,
    // DPD), sized so that each pair is reported once a second (a hundredth of them a tick):
    // no pass holds an O(SAs) report (at 10,000 pairs it took milliseconds).
    void ike_usage(timestamp now);
    // Every tick: pairs a worker just marked past their soft limit, to the engine at once (a
    // 1 s report would leave too little of a small limit for the rekey). Only while a profile
    // with `ike` sets byte or packet lifetimes: without, no SA can pass a soft limit.
    void ike_soft_limits();
    // Every tick: hub to hub, initiations due to `nhs` peers and static maps (ike_peers.hpp).
    void ike_initiate_due(timestamp now);
    // Deferred (mgmt_server::defer): the IKE thread renders the view, show_crypto_answered
    // replies.
    control::mgmt_reply show_crypto(std::string_view what, bool json);
    // `show crypto ike initiator`: the hub-to-hub initiation targets (ike_peers), answered here.
    std::string show_ike_initiator(bool json, timestamp now) const;
    void show_crypto_answered(ike::show_answer& a);
    // The counters of show stats and show nhrp summary/traffic for Prometheus (metrics.cpp).
    std::vector<control::metric_family> metric_families(timestamp now) const;
    // An SA pair installed ("up") or removed ("down"), in the log: SPIs, never keys.
    static void log_sa(const peer_sa& ps, std::string_view state);
    void apply_config_routes();

    // loop pieces
    size_t poll_punts(timestamp now);
    // The punts first: a long stage of the pass (IKE outputs, FPM batches) calls this between
    // its items, so an NHRP packet waits for one item, not for the rest of the pass.
    size_t punts_between(timestamp now);
    void dispatch(const dp::punt_record& r, timestamp now);
    // An NHRP punt, timed (_nhrp_time and its segments); `dequeued`: the TSC of its dequeue.
    void serve_nhrp_punt(const dp::punt_record& r, uint64_t dequeued, timestamp now);
    void on_nhrp(const dp::punt_record& r, timestamp now);
    void on_arp(const dp::punt_record& r, timestamp now);
    void on_for_us(const dp::punt_record& r, timestamp now);
    void on_multicast(const dp::punt_record& r, timestamp now);
    void on_icmp_error(const dp::punt_record& r, uint8_t type, uint8_t code, timestamp now);
    void on_glean(const dp::punt_record& r, timestamp now);
    // Sends up to multicast_copies_per_pass copies of the queued multicast packets; returns
    // how many targets it visited.
    size_t replicate(timestamp now);
    bool send_multicast_copy(uint16_t slot, uint32_t nbma, const multicast_targets::target& tg,
                             std::span<const uint8_t> pkt, timestamp now);
    void set_multicast_binding(uint16_t slot, uint32_t overlay, const binding* before,
                               const binding* after);
    void load_static_multicast();
    void on_redirect(const dp::punt_record& r, timestamp now);
    void timers(timestamp now);

    // NHRP server outputs
    void apply(nhrp::outputs&& o, timestamp now);
    void apply_event(const nhrp::adjacency_event& e, timestamp now);
    void remove_binding(uint16_t slot, uint32_t overlay, timestamp now);
    void send_nhrp(uint32_t tunnel, uint32_t dst_nbma, std::span<const uint8_t> packet,
                   timestamp now);

    // routes and adjacencies (the RIB, control/rib, holds the routes; rib_glue.cpp)
    // The RIB's way to the dataplane: the publisher's FIB and adjacency slots, and the hub's
    // ARP table and SAs for a next hop's adjacency.
    struct rib_glue final : rib::fib_port {
        explicit rib_glue(hub& owner) : h(owner) {}
        std::optional<uint32_t> alloc_adjacency() override;
        void free_adjacency(uint32_t id) override;
        bool add_route(const rib::prefix_key& k, dp::route_target t) override;
        bool del_route(const rib::prefix_key& k) override;
        bool write_nexthop(const nh_key& k, uint32_t adj, std::optional<uint32_t> nbma,
                           bool was_complete) override;
        hub& h;
    };
    // Writes next hop `k`'s adjacency `adj` (rib::fib_port::write_nexthop): complete or not.
    bool write_nexthop(const nh_key& k, uint32_t adj, std::optional<uint32_t> nbma,
                       bool was_complete, timestamp now);
    // `show ip route [ADDRESS|PREFIX/LEN]`: the FIB's routes, how each next hop resolves.
    control::mgmt_reply show_ip_route(std::string_view which, bool json) const;
    void republish_all(timestamp now);
    // The adjacencies towards one NBMA address (its SA pair changed): routes' and NHRP's.
    void republish_peer(uint32_t nbma, timestamp now);
    void send_nhrp_esp(uint16_t slot, uint32_t dst_nbma, std::span<const uint8_t> packet,
                       timestamp now);
    void publish_nbma_path(const nh_key& k, timestamp now);
    // ... one found already (send_nhrp_esp: no second walk of the map).
    void publish_nbma_path(std::map<nh_key, nbma_path>::iterator it, timestamp now);
    // A slice of the NBMA paths each tick (_expire_next: where the next one starts).
    void expire_nbma_paths(timestamp now);
    // A slice of the gleaned LAN routes each tick: those whose neighbour failed are withdrawn
    // (_glean_next: where the next one starts).
    void withdraw_dead_gleans();
    void on_neighbors(neighbor_output& out);
    std::optional<uint32_t> alloc_adjacency();
    std::optional<nhrp::route> route_for_nhrp(uint32_t dst) const;

    // sending
    void send_ip(bytes packet, timestamp now);
    void glean_lan(uint16_t port, uint32_t nexthop, std::optional<bytes> packet, timestamp now);
    // Through the control lcore's forwarder (dp::worker::inject: resolve .. encap, ESP-out, tx
    // on the control TX queue), towards adjacency `adj_id`. gre_proto 0: an IPv4 packet;
    // otherwise the GRE payload of that protocol (NHRP).
    bool forward(std::span<const uint8_t> packet, uint32_t adj_id, uint16_t gre_proto = 0);
    // `frame`, then `more` right after it (a header and a payload), on the port's control TX
    // queue.
    bool tx_frame(uint16_t port, std::span<const uint8_t> frame,
                  std::span<const uint8_t> more = {});
    uint32_t l2_hop(uint16_t port, uint32_t ip) const;
    const port_rt* port_by_id(uint16_t id) const;
    const config::tunnel* tunnel_of(uint16_t slot) const;
    uint32_t address_facing(const dp::punt_record& r) const;
    // The pair outbound traffic to `nbma` on `t` uses (its SA, NAT-T ports), if any.
    const peer_sa* find_out_sa(const config::tunnel& t, uint32_t nbma) const;

    // management
    std::string show_interfaces(bool json) const;
    // `summary`: without the per-SA list (O(SAs): megabytes of JSON at 10,000 pairs), cheap
    // enough to poll during a storm.
    std::string show_stats(bool json, bool summary = false) const;
    std::string show_arp(bool json) const;
    // The telemetry snapshot: counters and interfaces (every second), with `views` the
    // per-entry views too (when a reader asked for them).
    void refresh_telemetry(timestamp now, bool views = false);

    config::topology _topo;
    std::optional<std::string> _config_path;
    std::string _socket;
    tunnel_slots _slots;
    uint16_t _workers_n = 1;
    std::vector<unsigned> _worker_lcores;

    bool _eal_up = false;
    rte_mempool* _pool = nullptr;
    rte_ring* _punts = nullptr;
    std::vector<port_rt> _ports;  // in topology order
    std::unique_ptr<dp::publisher> _pub;
    std::unique_ptr<dp::stats_registry> _stats;
    std::unique_ptr<crypto::engine> _engine;
    std::map<sa_key, std::unique_ptr<peer_sa>> _sas;
    // IKE pairs that decrypt but do not encrypt (by id): replaced by a rekey (until the
    // engine's remove_child, then draining for ike::rekey_drain), or new from a peer's rekey
    // and waiting to take over outbound (control/ike/child_pairs.hpp).
    std::map<uint64_t, std::unique_ptr<peer_sa>> _standby;
    // The inbound SPIs of _sas and _standby (the SPI table's keys, a count each): install_child's
    // clash check in O(1). Rebuilt when the manual SAs change; install_child adds, arrange_pairs
    // takes away.
    std::unordered_map<uint32_t, uint32_t> _inbound_spis;
    bool _inbound_dirty = false;  // _after_inbound holds callbacks to retire
    std::vector<std::function<void()>> _after_inbound;
    // Per peer: which of its IKE pairs encrypts and which decrypt.
    std::map<sa_key, ike::child_pairs> _child_pairs;
    // When a draining pair of that peer is due to leave.
    std::multimap<timestamp, sa_key> _drain_due;
    // First pairs with an NHS peer that we answered for (child_sa::outbound_waits): the peer
    // installs its side only when our response arrives, so our registration waits until the
    // pair decrypts the peer's traffic, or until `due` (by pair id; ike_nhs_after_peer()).
    struct nhs_wait {
        sa_key key;
        uint32_t tunnel = 0;
        timestamp due{};
    };
    std::map<uint64_t, nhs_wait> _nhs_wait;
    std::unique_ptr<ike::thread> _ike;  // none unless a tunnel's ipsec profile has `ike`
    // --key-log DIR (control/ike/key_log.hpp): every engine writes its keys here (on the IKE
    // thread); none by default.
    std::shared_ptr<ike::keylog::writer> _ike_key_log;
    std::vector<ike::tunnel_binding> _ike_bindings;
    ike_peers _ike_peers;  // hub to hub: the peers the hub initiates to (`ike.initiate`)
    // Acks and failures the IKE thread must get (an installed_ack is queued by the publisher's
    // retire callback, once every worker passed a quiescent state after the SPI table went
    // out); kept here while its input queue is full.
    std::deque<ike::input> _ike_owed;
    // show crypto requests the IKE thread has not answered yet: ticket -> --json.
    std::map<uint64_t, bool> _ike_shows_asked;
    std::vector<std::unique_ptr<dp::worker>> _workers;
    // The control lcore's own forwarder (dp::worker_config::control): see hub::forward.
    std::unique_ptr<dp::worker> _forwarder;
    std::vector<dp::worker::launch_args> _launch;
    std::atomic<bool> _workers_stop{false};
    bool _launched = false;

    std::optional<nhrp::server> _server;
    neighbor_table _neighbors;
    std::map<nh_key, nbma_path> _nbma_paths;  // key: tunnel slot, peer NBMA
    // _bindings' keys (tunnel slot, overlay) by NBMA address, in key order:
    // republish_peer() resolves a peer's next hops without a walk over every next hop (one per
    // spoke: each CHILD_SA install was O(spokes), a cold start O(spokes^2)).
    std::unordered_map<uint32_t, std::vector<std::pair<uint16_t, uint32_t>>> _bindings_by_nbma;
    void index_binding(uint16_t slot, uint32_t overlay, uint32_t nbma, bool add);
    // on_neighbors for neighbours that are no port's gateway: the next hops and NBMA paths
    // whose underlay hop they are, found by address (LAN next hops, _bindings_by_nbma).
    void neighbors_changed(const std::vector<neighbor_key>& changed, timestamp now);
    // Routes and their next hops; it alone writes the FIB (through _rib_port).
    rib_glue _rib_port{*this};
    std::unique_ptr<rib::rib> _rib;
    std::unique_ptr<fpm::server> _fpm;  // none unless routing.fpm
    rib::fpm_interfaces _fpm_ifs;
    rib::fpm_counters _fpm_feed;
    rib::fpm_refusals _fpm_refused;                // FPM routes not installed, for show ip route
    std::unique_ptr<rib::redistributor> _redist;   // none unless routing.redistribute-nhrp
    std::map<uint16_t, uint32_t> _redist_ifindex;  // tunnel slot -> its kernel interface
    // (slot, overlay); hashed: each registration looks its spoke up (a tree of 10,000 walked
    // with cold caches cost a miss per level). The walk of carried bindings sorts what it finds.
    std::unordered_map<std::pair<uint16_t, uint32_t>, binding, rib::key_hash> _bindings;
    multicast_targets _mcast;
    // Multicast packets being replicated, oldest first; each resumes after the last target
    // it reached, so one packet to thousands of spokes spreads over several loop passes.
    struct mcast_job {
        bytes packet;
        uint16_t from_tunnel = 0;
        uint32_t from_nbma = 0;
        std::optional<multicast_targets::key> after;
        // From a kernel interface: copies go to that tunnel's targets only.
        std::optional<uint16_t> only_tunnel;
    };
    std::deque<mcast_job> _mcast_jobs;
    exception_path _exception;            // declared after nothing it needs; closed before the EAL
    dp::token_bucket _icmp_error_budget;  // in nanoseconds of the steady clock
    loop_time _loop_time;                 // passes that did work
    loop_time _nhrp_time;  // each NHRP packet: worker's RX burst to its reply handed to TX
    // ... and its segments, which add up to it: the worker (RX burst to the punt ring's
    // enqueue), the ring (enqueue to the control lcore's dequeue), the dequeued burst (the
    // NHRP punts dequeued with it and served before it: a burst serves its NHRP punts before the
    // others) and its handling (its own work, to TX).
    loop_time _nhrp_worker;
    loop_time _nhrp_ring;
    loop_time _nhrp_burst;
    loop_time _nhrp_handling;
    // The segments by name, in order (show stats, telemetry, Prometheus).
    std::array<std::pair<std::string_view, const loop_time*>, 4> nhrp_segments() const {
        return {{{"worker", &_nhrp_worker},
                 {"ring", &_nhrp_ring},
                 {"burst", &_nhrp_burst},
                 {"handling", &_nhrp_handling}}};
    }
    // The same packets by how many NHRP punts came out of the ring with them (their dequeue's
    // NHRP count: 1, 2-3, 4-7, 8-15, 16-31, 32+): what the burst segment waits for.
    static constexpr std::array<std::string_view, 6> nhrp_dequeue_buckets{"1",    "2_3",   "4_7",
                                                                          "8_15", "16_31", "32_up"};
    std::array<uint64_t, 6> _nhrp_dequeued_with{};
    uint64_t _nhrp_after_nap = 0;  // the same packets taken by the first pass after a nap
    bool _napped = false;          // the loop's last pass ended in a nap
    uint64_t _tsc_khz = 1;         // TSC ticks per millisecond, set by run()
    pass_profile _profile;         // where the passes that did work went (show stats)

    std::optional<nh_key> _expire_next;          // expire_nbma_paths' next slice starts here
    std::optional<rib::prefix_key> _glean_next;  // withdraw_dead_gleans' next slice starts here
    std::optional<timestamp> _carried_due;       // the earliest carried_until of any binding

    std::unique_ptr<control::mgmt_server> _mgmt;
    std::unique_ptr<control::heap_headroom> _heap;  // hub.heap-headroom-mb
    uint64_t _service_cpu_failures_seen = 0;        // warned about (control::enter_service_cpus)
    std::unique_ptr<telemetry> _telemetry;
    std::unique_ptr<control::metrics_server> _metrics;  // hub.metrics; none when off
    control_counters _cc;
    uint16_t _ip_id = 1;
    timestamp _started{};
    timestamp _next_tick{};
    timestamp _next_second{};
    // ike_usage's walk: where the next slice starts (in _sas, then _standby, then round
    // again), when the last one went, and the pairs owed a report (fractions carried over).
    std::optional<sa_key> _usage_sas_next;
    std::optional<uint64_t> _usage_standby_next;
    timestamp _usage_last{};
    double _usage_credit = 0;
    bool _log_level_from_cli = false;
    bool _debug_nhrp = false;  // `dmvpnctl debug nhrp`: every NHRP packet in and out, logged
};

}  // namespace dmvpn::hub
