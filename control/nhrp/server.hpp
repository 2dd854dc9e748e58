// The NHRP server (Next Hop Server) of the hub: control-lcore logic driven by punted packets and a
// caller-supplied clock, returning the packets to send and the adjacency changes to publish.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "control/nhrp/cache.hpp"
#include "control/nhrp/packet.hpp"
#include "control/timer_wheel.hpp"
#include "dataplane/wire/result.hpp"

namespace dmvpn::nhrp {

using control::timestamp;

// IPv4 addresses are host-order integers throughout (10.0.0.1 is 0x0a000001).

// Where the FIB sends a destination (RFC 2332 section 2.2: the station serving it).
enum class route_via : uint8_t {
    tunnel,     // a tunnel next hop (`next_hop`): the spoke behind which the target lives
    egress,     // out of the NBMA network through the hub (its LAN, a LAN next hop, its own
                // address): the hub is the egress router and answers for the prefix itself
    blackhole,  // discarded here (a summary's Null0, unreachable): nobody serves the target
};

// What the FIB says about a destination, for Phase 2 forwarding of Resolution Requests.
struct route {
    uint32_t next_hop = 0;  // overlay address of the next hop (route_via::tunnel)
    uint8_t prefix_len = 0;
    route_via via = route_via::tunnel;
};
using route_lookup = std::function<std::optional<route>(uint32_t dst)>;

// `ip nhrp map` (+ `ip nhrp map multicast` when `multicast`).
struct static_map {
    uint32_t overlay = 0;
    uint8_t prefix_len = 32;
    uint32_t nbma = 0;
    bool multicast = false;
};

// A prefix a registration may cover (`registration-prefixes`).
struct prefix {
    uint32_t network = 0;
    uint8_t length = 32;
};

// Another NHS (hub-to-hub): unresolvable Resolution Requests are forwarded there, and the hub
// registers its own overlay address there (as an IOS hub with `ip nhrp nhs` does).
struct nhs_peer {
    uint32_t overlay = 0;
    uint32_t nbma = 0;
};

struct tunnel_config {
    uint32_t id = 0;
    std::string name;              // for show commands; "Tunnel<id>" when empty
    uint32_t overlay_address = 0;  // the hub's protocol address on this tunnel
    uint8_t overlay_prefix_len = 24;
    uint32_t nbma_address = 0;        // the hub's NBMA address
    std::optional<uint32_t> gre_key;  // carried for the caller; NHRP itself never sees it
    // Local to the hub, never on the wire (as in IOS): tunnels sharing a network-id form one
    // NHRP domain, so a Resolution Request on one is answered from the others' registrations.
    uint32_t network_id = 1;
    std::string authentication;  // cleartext key, at most 8 bytes; empty = none
    uint16_t holdtime_s = 7200;  // ours: Responder/transit CIEs, and when a CIE says 0
    // A registration's holding time is clamped to these bounds (the reply says what was kept).
    uint16_t holdtime_min_s = 1;
    uint16_t holdtime_max_s = 10800;
    // What a registration may bind besides the requester's own address (a /32, the source
    // protocol address): prefixes inside one of these, none overlapping an overlay subnet of
    // this hub or another station's registered prefix. Empty: own address only.
    std::vector<prefix> registration_prefixes;
    // Registration Requests the tunnel accepts per second, all sources together (a bucket of
    // one second's worth); 0: no tunnel-wide cap.
    uint32_t registration_rate_per_s = 1000;
    // The other NHRP packets (Resolution, Purge, replies) the tunnel accepts per second.
    uint32_t packet_rate_per_s = 2000;
    // Dynamic entries one NBMA address may hold (spokes behind one NAT share theirs).
    size_t max_entries_per_nbma = 256;
    uint16_t mtu = 1514;    // in the CIEs the hub originates
    bool redirect = false;  // `ip nhrp redirect`
    // IOS in Phase 3 forwards a Resolution Request for a registered spoke to that spoke, which
    // answers for its own networks; off, the hub answers authoritatively itself (Phase 2).
    bool forward_resolution_to_owner = false;
    std::chrono::milliseconds redirect_interval{2000};  // per (source, destination)
    // Traffic Indications the tunnel sends per second at most, all pairs together (YAML
    // `redirect-rate-limit`); a token bucket holding one second's worth. 0: no tunnel-wide cap.
    uint32_t redirect_rate_per_s = 100;
    bool multicast_dynamic = true;         // `ip nhrp map multicast dynamic`
    std::vector<uint32_t> multicast_nbma;  // `ip nhrp map multicast <nbma>`
    std::vector<static_map> static_maps;
    std::vector<nhs_peer> nhs_peers;
    // How often the hub re-registers with its NHS peers (`ip nhrp registration timeout`);
    // 0: a third of `holdtime_s`, IOS's default.
    uint16_t registration_timeout_s = 0;
    size_t max_cache_entries = 1'000'000;
    route_lookup route;  // empty = no Phase 2 forwarding
};

struct server_config {
    std::vector<tunnel_config> tunnels;
    // Per outer source address, across tunnels: a token bucket over Registration Requests and the
    // Error Indications the hub would send back. Spokes register every holdtime/3 and retry
    // at 1, 2, 4... seconds, so a few a second is plenty.
    uint32_t registration_rate_per_s = 5;
    uint32_t registration_burst = 10;
    // A source the table has not seen (or one taking a colliding slot over) starts with a full
    // bucket only while fewer than `fresh_buckets_per_s` newcomers a second got one (both
    // tables together; 0: always); the others start with one request's worth. The tunnel and
    // global rates bound the sum.
    size_t rate_limit_slots = 65536;
    uint32_t fresh_buckets_per_s = 1000;
    // All tunnels together: Registration Requests per second (bucket of one second's worth).
    uint32_t global_registration_rate_per_s = 5000;
    // Per outer source address, the other NHRP packets (Resolution, Purge, replies).
    uint32_t packet_rate_per_s = 50;
    uint32_t packet_burst = 100;
    size_t max_cies_per_request = 16;  // the rest are refused (code 5)
    // Resolution Requests forwarded, remembered so that only their replies are forwarded back.
    size_t forwarded_slots = 65536;
    std::chrono::milliseconds forwarded_timeout{10000};
    std::chrono::milliseconds purge_retry_interval{2000};
    uint8_t purge_max_retries = 3;  // retransmissions after the first Purge Request
    size_t max_pending_purges = 65536;
    size_t max_requesters_per_entry = 16;
    size_t redirect_slots = 65536;  // (tunnel, source, destination) rate-limit memory
    size_t initial_cache_capacity = 1024;
    std::chrono::milliseconds timer_resolution{100};
};

enum class config_error : uint8_t {
    no_tunnels,
    duplicate_tunnel_id,
    authentication_too_long,
    overlay_prefix_too_long,
    static_map_prefix_too_long,
    too_many_tunnels,
    registration_prefix_too_long,
    holdtime_bounds,
};
std::string_view name(config_error e) noexcept;

// A packet for the control lcore to put in GRE (the tunnel's key) towards `dst_nbma`.
struct outgoing {
    uint32_t tunnel = 0;  // configured tunnel id
    uint32_t dst_nbma = 0;
    bytes packet;  // the NHRP packet
};

enum class adjacency_change : uint8_t { add, update, remove };
std::string_view name(adjacency_change c) noexcept;

enum class change_cause : uint8_t {
    static_map,    // configuration
    registration,  // a new registration, or a new NBMA for an existing one
    expired,       // holding time ran out
    carried,       // a registration taken over from the server a reload replaced
    purged,        // a Purge Request from its owner
    cleared,       // `clear nhrp`
    peer_down,     // the peer's IKE SA died (DELETE, DPD, hard expiry, `clear crypto sa`)
};
std::string_view name(change_cause c) noexcept;

// A committed change of an overlay-to-NBMA binding, for the workers' adjacency tables.
struct adjacency_event {
    adjacency_change change = adjacency_change::add;
    change_cause cause = change_cause::registration;
    uint32_t tunnel = 0;  // configured tunnel id
    uint32_t overlay = 0;
    uint8_t prefix_len = 32;
    uint32_t nbma = 0;          // send here: the address actually seen
    uint32_t claimed_nbma = 0;  // what the station claimed (differs behind NAT)
    bool nat = false;
    bool multicast = false;  // a replication target of this tunnel's multicast

    bool operator==(const adjacency_event&) const = default;
};

enum class drop_reason : uint8_t;

// A registration the server refused, or an NHRP packet it turned away (authentication, rate
// limit): what an operator looks for in the log. Counted under `reason` as well.
struct refusal {
    uint32_t tunnel = 0;   // configured tunnel id
    uint32_t nbma = 0;     // the outer source
    uint32_t address = 0;  // the protocol address it asked for (0 when unknown)
    drop_reason reason{};
    op type = op::registration_request;  // what was refused
};

struct outputs {
    std::vector<outgoing> packets;
    std::vector<adjacency_event> events;
    std::vector<refusal> refusals;
};

// Why a packet or a request was not served; refusals answered with a CIE code count here too.
enum class drop_reason : uint8_t {
    unknown_tunnel,
    malformed,
    not_ipv4,
    protocol_error,
    unrecognized_extension,
    authentication_failure,
    hop_count_exceeded,
    loop_detected,
    rate_limited,
    unexpected_type,
    unsolicited_reply,
    no_route_for_reply,
    refused_cache_full,
    refused_unique,
    refused_static,
    refused_address,
    refused_prefix,
    refused_overlap,
    refused_nbma_full,
    too_many_cies,
    registration_tunnel_rate_limited,
    registration_global_rate_limited,
    packet_rate_limited,
    packet_tunnel_rate_limited,
    unmatched_reply,
    unreachable,
    purge_not_owner,
    unknown_purge_reply,
    purge_unanswered,
    purge_table_full,
    requesters_full,
    redirect_disabled,
    redirect_rate_limited,
    redirect_tunnel_rate_limited,
    redirect_unknown_source,
    error_indication_suppressed,
    build_failed,
    count_,
};
inline constexpr size_t drop_reason_count = static_cast<size_t>(drop_reason::count_);
std::string_view name(drop_reason r) noexcept;

struct counters {
    std::array<uint64_t, 9> sent{};      // by NHRP type (index 1-8)
    std::array<uint64_t, 9> received{};  // by NHRP type, counted once the packet parsed
    std::array<uint64_t, drop_reason_count> dropped{};
    uint64_t purge_retransmits = 0;
    uint64_t holdtime_clamped = 0;  // registrations whose holding time was brought into bounds

    uint64_t sent_of(op t) const noexcept { return sent[static_cast<size_t>(t)]; }
    uint64_t received_of(op t) const noexcept { return received[static_cast<size_t>(t)]; }
    uint64_t dropped_of(drop_reason r) const noexcept { return dropped[static_cast<size_t>(r)]; }
    counters& operator+=(const counters& o) noexcept;
};

// The hub's registration with one of its NHS peers, as `show ip nhrp nhs` prints it. IOS's
// letters: E (expecting replies: a request is out, or none was answered within the holding
// time), R (responding: the NHS accepted the last registration).
enum class nhs_state : uint8_t { expecting, responding, refused };
std::string_view name(nhs_state s) noexcept;

struct nhs_view {
    uint32_t tunnel = 0;  // configured id
    std::string_view tunnel_name;
    uint32_t overlay = 0;
    uint32_t nbma = 0;
    nhs_state state = nhs_state::expecting;
    uint64_t requests_sent = 0;    // first transmissions and retries
    uint64_t requests_failed = 0;  // refused by the NHS (a CIE code other than success)
    uint64_t replies = 0;
    uint8_t last_code = 0;  // the CIE code of the last reply
    std::optional<timestamp> last_reply;
    timestamp next_request{};
    // The peer hub started again (its own registration with us came back after running out,
    // or with a request ID that went backwards): we registered with it again at once.
    uint64_t peer_restarts = 0;
    uint64_t resolutions_forwarded = 0;  // Resolution Requests handed to this peer hub
    bool answering = false;  // accepted our registration and has not left a request unanswered
};

// One cache entry as show commands and tests see it.
struct entry_view {
    uint32_t tunnel = 0;  // configured id
    std::string_view tunnel_name;
    uint32_t address = 0;
    uint8_t prefix_len = 32;
    uint32_t via = 0;
    uint32_t nbma = 0;
    uint32_t claimed_nbma = 0;
    entry_type type = entry_type::dynamic;
    uint8_t flags = 0;
    uint32_t request_id = 0;
    uint16_t holding_time = 0;  // as registered
    uint16_t mtu = 0;
    timestamp created{};
    std::optional<timestamp> expires;  // none: never
    std::vector<requester> requesters;
};

struct tunnel_view {
    uint32_t id = 0;
    std::string_view name;
    uint32_t overlay_address = 0;
    uint8_t overlay_prefix_len = 0;
    uint32_t nbma_address = 0;
    size_t entries = 0;
    const counters* stats = nullptr;
};

class server {
public:
    static wire::result<server, config_error> create(server_config config);

    // Installs static maps (and the hub's own local entries) and reports them as adjacencies.
    outputs start(timestamp now);

    // One NHRP packet (the GRE payload) that arrived on `tunnel_id` from `outer_src_nbma`.
    outputs handle(uint32_t tunnel_id, uint32_t outer_src_nbma, std::span<const uint8_t> nhrp,
                   timestamp now);

    // A data packet from `src_overlay` to `dst` went in and out of the tunnel through the hub
    // (`packet_head`: its first bytes, IP header onwards): tell the source about a shortcut.
    outputs on_redirect_candidate(uint32_t tunnel_id, uint32_t src_overlay, uint32_t dst,
                                  std::span<const uint8_t> packet_head, timestamp now);

    // Reload: takes over the dynamic registrations another server holds (the one a reload
    // replaces), with their NBMA, flags, remaining holding time and requesters (the stations
    // a later move must purge), where the tunnel still
    // exists (same id), the address is still on its overlay subnet and not the hub's own, and
    // no static map now claims it. Reported as adjacency additions (cause `carried`). Returns
    // how many were taken in `adopted` when given.
    outputs adopt(std::span<const entry_view> entries, timestamp now, size_t* adopted = nullptr);

    // Expiry, purge retransmission, and registrations with the NHS peers (the first at the first
    // tick: the hub registers as soon as it runs).
    outputs tick(timestamp now);

    // `clear nhrp [address]`: removes dynamic entries (every one on the tunnel when no address).
    outputs clear(uint32_t tunnel_id, std::optional<uint32_t> address, timestamp now);
    // The NBMA peer `nbma` is gone (its IKE SA died, as on IOS): every dynamic entry of
    // `tunnel_id` registered from there is removed (cause peer_down) and whoever resolved it is
    // purged. Static maps stay. Costs one walk of the cache when the peer has entries, nothing
    // otherwise (the per-NBMA count says so first).
    outputs forget_peer(uint32_t tunnel_id, uint32_t nbma, timestamp now);
    // A new path to the NHS peer at `nbma` (a new IKE SA's CHILD_SA was installed, hub to hub):
    // the registration goes out now, its retries starting again from 1 s, rather than at the
    // end of a back-off that ran while nothing could carry it (or a refresh due much later,
    // when the peer restarted and lost it).
    outputs nhs_reachable(uint32_t tunnel_id, uint32_t nbma, timestamp now);
    // Whether `nbma` is one of `tunnel_id`'s NHS peers (a walk of the tunnels' nhs entries).
    bool is_nhs(uint32_t tunnel_id, uint32_t nbma) const noexcept;

    // Queries for show commands and the publisher.
    std::optional<entry_view> lookup(uint32_t tunnel_id, uint32_t address) const;
    std::vector<entry_view> entries(std::optional<uint32_t> tunnel_id = std::nullopt) const;
    std::vector<tunnel_view> tunnels() const;
    std::vector<uint32_t> multicast_targets(uint32_t tunnel_id) const;
    std::vector<nhs_view> nhs() const;
    const counters* tunnel_counters(uint32_t tunnel_id) const;
    counters total_counters() const;
    const counters& unattributed_counters() const noexcept { return _global; }
    size_t cache_size() const noexcept { return _cache.size(); }
    size_t cache_memory_bytes() const noexcept { return _cache.memory_bytes(); }
    size_t pending_purges() const noexcept { return _purges_live; }
    size_t timers() const noexcept { return _wheel.size(); }
    size_t entries_of_nbma(uint32_t nbma) const noexcept;

private:
    // A token bucket in thousandths of a token, full at `burst`.
    struct rate {
        uint64_t tokens_milli = 0;
        int64_t refill_ms = 0;
        bool started = false;
        bool take(uint32_t per_s, uint32_t burst, int64_t now_ms) noexcept;
    };
    struct tunnel_state {
        tunnel_config cfg;
        counters stats;
        size_t entries = 0;
        bytes auth_key;
        rate redirects;  // Traffic Indications the tunnel sends
        rate registrations;
        rate packets;
    };
    struct timer_ref {
        uint32_t kind_and_index = 0;  // top bit: purge retry; otherwise an entry expiry
        uint32_t generation = 0;
        bool operator==(const timer_ref&) const = default;
    };
    // A resolution request forwarded: its reply may come back through the hub.
    struct forwarded_request {
        uint32_t requester = 0;
        uint32_t target = 0;
        uint32_t request_id = 0;
        int64_t expires_ms = 0;
        bool used = false;
    };
    struct pending_purge {
        uint16_t tunnel = 0;
        uint8_t retries_left = 0;
        bool live = false;
        uint32_t generation = 0;
        uint32_t requester_nbma = 0;
        uint32_t request_id = 0;
        bytes packet;
    };
    struct purge_id {
        uint16_t tunnel = 0;
        uint32_t nbma = 0;
        uint32_t request_id = 0;
        bool operator==(const purge_id&) const = default;
    };
    struct purge_id_hash {
        size_t operator()(const purge_id& k) const noexcept;
    };
    struct bucket {
        uint32_t source = 0;
        uint32_t tokens_milli = 0;
        int64_t last_ms = 0;
        bool used = false;
    };
    // The hub as an NHRP client of one NHS peer (server_nhs.cpp).
    struct nhs_client {
        uint16_t tunnel = 0;
        uint32_t overlay = 0;
        uint32_t nbma = 0;
        nhs_state state = nhs_state::expecting;
        uint32_t request_id = 0;  // of the latest request sent
        int64_t next_ms = 0;      // when the next request (retry or refresh) goes out
        int64_t last_reply_ms = -1;
        uint32_t backoff_s = 1;  // retries at 1, 2, 4 ... 32 s while unanswered
        uint64_t sent = 0;
        uint64_t failed = 0;
        uint64_t replies = 0;
        uint8_t last_code = 0;
        int64_t unanswered_since_ms = -1;  // first request sent since the last reply
        // The peer hub's own registrations with us (it is our NHS and we are its).
        uint32_t peer_request_id = 0;
        int64_t peer_seen_ms = -1;
        int64_t peer_hold_ms = 0;
        uint64_t peer_restarts = 0;
        uint64_t resolutions_forwarded = 0;
    };
    struct redirect_slot {
        uint64_t key = 0;
        int64_t last_ms = 0;
        bool used = false;
    };
    // What the handlers share about the packet being served.
    struct context {
        uint16_t tunnel = 0;
        uint32_t outer_src = 0;
        int64_t now_ms = 0;
        timestamp now{};
        std::span<const uint8_t> raw;
        outputs out;
    };

    explicit server(server_config config);

    std::optional<uint16_t> find_tunnel(uint32_t id) const noexcept;

    void serve(context& c, packet& p);
    void serve_registration(context& c, packet& p);
    void serve_resolution(context& c, packet& p);
    void serve_resolution_reply(context& c, packet& p);
    void serve_purge_request(context& c, packet& p);
    void serve_purge_reply(context& c, const packet& p);
    void serve_registration_reply(context& c, const packet& p);
    void register_with_nhs(outputs& out, int64_t now_ms);
    void send_nhs_registration(outputs& out, nhs_client& n, int64_t now_ms);
    // A registration this hub accepted: from one of its NHS peers, which may have restarted.
    void on_peer_registration(context& c, const packet& p);
    // Hub to hub: hands a Resolution Request it cannot answer to an NHS peer that answers and
    // has not seen it; false when there is none.
    bool forward_to_nhs_peer(context& c, packet& p);
    bool nhs_answering(const nhs_client& n, int64_t now_ms) const noexcept;

    // Registers one CIE's binding; returns the CIE code.
    uint8_t register_binding(context& c, const packet& p, cie& request_cie);
    // Why `address`/`prefix_len`, not the requester's own address, may not be registered by
    // `via` on `tunnel` (nothing when it may).
    std::optional<drop_reason> refuse_prefix(uint16_t tunnel, uint32_t via, uint32_t address,
                                             uint8_t prefix_len) const;
    bool admit(context& c, uint8_t type);
    void count_nbma(uint32_t nbma, int delta);
    forwarded_request& forwarded_slot(const packet& p, uint32_t& requester, uint32_t& target);
    void remember_forwarded(const packet& p, int64_t now_ms);
    bool take_forwarded(const packet& p, int64_t now_ms);
    void answer_resolution(context& c, packet& p, uint32_t entry_index);
    void answer_negative(context& c, packet& p, uint8_t prefix_len);
    // The hub answers for itself: its own address (`prefix_len` 32, unique) or, as the egress
    // router, a prefix the FIB sends out of the NBMA network through it.
    void answer_self(context& c, packet& p, uint8_t prefix_len, bool unique);
    // Turns the request into its reply carrying `answer` (the only CIE) and `flags`, the hub
    // as the responder, back to where the request came from.
    void reply_resolution(context& c, packet& p, cie answer, uint16_t flags);
    void forward(context& c, packet& p, uint16_t out_tunnel, uint32_t dst_nbma,
                 uint16_t transit_type);
    void remember_requester(context& c, uint32_t entry_index, const packet& p);

    void remove_entry(outputs& out, uint32_t index, change_cause cause, timestamp now);
    void purge_requesters(outputs& out, uint32_t index, timestamp now);
    void send_purge(outputs& out, uint16_t tunnel, const requester& r, const cache_entry& old,
                    timestamp now);
    void schedule_expiry(uint32_t index);
    void cancel_expiry(uint32_t index);
    void on_timer(outputs& out, timer_ref ref, timestamp now);

    void send_error(context& c, uint16_t code, uint16_t offset, const packet* offending);
    void send(outputs& out, uint16_t tunnel, uint32_t dst, const packet& p);
    void drop(uint16_t tunnel, drop_reason r) noexcept;
    bool take_from(std::vector<bucket>& table, uint32_t source, uint32_t per_s, uint32_t burst,
                   int64_t now_ms);
    // drop(), and a refusal in the outputs for the log.
    void refuse(context& c, drop_reason r, uint32_t address, op type = op::registration_request);
    bool check_authentication(const tunnel_state& t, const packet& p) const;
    void put_authentication(const tunnel_state& t, packet& p) const;
    cie own_cie(const tunnel_state& t, uint8_t prefix_len) const;
    // The usable entry for `address` on `tunnel` or a tunnel of the same network-id (npos if none).
    uint32_t lookup_domain(uint16_t tunnel, uint32_t address, int64_t now_ms) const;
    adjacency_event event_of(adjacency_change change, change_cause cause,
                             const cache_entry& e) const;
    entry_view view_of(const cache_entry& e, uint32_t index) const;
    bool usable(const cache_entry& e, int64_t now_ms) const noexcept;

    server_config _config;
    std::vector<tunnel_state> _tunnels;
    cache _cache;
    control::timer_wheel<timer_ref> _wheel;
    std::vector<nhs_client> _nhs;
    uint32_t _nhs_request_id = 0;
    std::vector<pending_purge> _purges;
    std::vector<uint32_t> _free_purges;
    std::unordered_map<purge_id, uint32_t, purge_id_hash> _purge_index;
    size_t _purges_live = 0;
    std::vector<bucket> _buckets;
    std::vector<bucket> _packet_buckets;
    rate _global_registrations;
    rate _fresh_buckets;
    std::unordered_map<uint32_t, uint32_t> _per_nbma;  // dynamic entries by NBMA address
    std::vector<uint64_t> _expiry_tick;  // by entry index: its pending expiry timer, 0 = none
    std::vector<forwarded_request> _forwarded;
    std::vector<redirect_slot> _redirects;
    counters _global;  // what cannot be put on a tunnel (unknown tunnel id)
};

}  // namespace dmvpn::nhrp
