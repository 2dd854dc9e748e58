// The FPM server: a thread of its own ("dmvpn-fpm") that accepts zebra's dplane_fpm_nl
// connection, decodes its stream (codec.hpp) and hands the control lcore resolved IPv4 route
// changes in batches through a bounded SPSC queue. The control lcore only drains, never waits;
// when it falls behind, the thread stops reading the socket and TCP holds zebra back, so no
// route change is ever dropped.
//
// Resynchronisation: zebra resends its whole table on every connection and FPM has no "end of
// table" message. The thread keeps the table it has announced (bounded by max_routes); on a new
// connection it marks every route stale, and once the stream has been quiet for `settle` it
// withdraws what was not resent (mark and sweep). When zebra goes away the routes stay for
// `hold` (zebra restarting, FRR upgraded) and are withdrawn after it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "control/fpm/codec.hpp"
#include "control/mgmt/spsc_queue.hpp"

namespace dmvpn::fpm {

struct route_update {
    bool add = true;      // false: the prefix is withdrawn
    uint32_t prefix = 0;  // IPv4, host byte order, host bits clear
    uint8_t len = 0;
    uint8_t protocol = 0;    // rtm_protocol (protocol_name())
    bool blackhole = false;  // blackhole / unreachable / prohibit: drop
    // Gateways in host byte order (ECMP when several; 0: connected, out of ifindexes[i]).
    std::vector<uint32_t> gateways;
    std::vector<uint32_t> ifindexes;

    bool operator==(const route_update&) const = default;
};

struct server_options {
    std::string address = "127.0.0.1";
    uint16_t port = 2620;
    std::chrono::milliseconds settle{3000};  // quiet time after a connect before the sweep
    std::chrono::milliseconds hold{90000};   // routes outlive a lost zebra this long
    size_t max_routes = 2'000'000;           // IPv4 routes held; past it: refused, counted
    size_t max_nexthops = 1'000'000;         // zebra next-hop objects held
    uint32_t table = 254;                    // the routing table taken (main)
};

struct server_counters {
    std::atomic<uint64_t> connections{0};
    std::atomic<uint64_t> disconnects{0};
    std::atomic<uint64_t> frames{0};
    std::atomic<uint64_t> bad_frames{0};      // frames or messages the decoder refused
    std::atomic<uint64_t> poisoned{0};        // bad FPM header: connection closed
    std::atomic<uint64_t> routes_added{0};    // updates handed over (add)
    std::atomic<uint64_t> routes_removed{0};  // updates handed over (withdraw, sweep, hold)
    std::atomic<uint64_t> swept{0};           // stale routes withdrawn after a resync
    std::atomic<uint64_t> skipped{0};         // IPv6, other tables, unresolvable next hops
    std::atomic<uint64_t> refused_full{0};    // new prefixes past max_routes
    std::atomic<uint64_t> backpressure{0};    // times the control lcore's queue was full
    std::atomic<uint64_t> routes{0};          // routes currently announced
    std::atomic<bool> connected{false};
};

class server {
public:
    using batch = std::vector<route_update>;
    static constexpr size_t queue_capacity = 64;
    static constexpr size_t batch_size = 1024;

    // Binds and listens (throws std::runtime_error naming the address on failure), then runs
    // the thread.
    explicit server(server_options options);
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // Control lcore: the next batch of changes, in order, or an empty optional. Never blocks.
    std::optional<batch> poll() { return _out.pop(); }
    const server_counters& counters() const noexcept { return _counters; }
    uint16_t port() const noexcept { return _bound_port; }  // the port bound (0 in options: any)

private:
    // What the thread keeps of an announced route: the update with its first next hop inline
    // and any further (ECMP) ones in `more`, so that a route with one gateway (nearly all of a
    // full table) costs no allocation beyond its node.
    struct held {
        uint32_t prefix = 0;
        uint8_t len = 0;
        uint8_t protocol = 0;
        bool blackhole = false;
        bool stale = false;
        bool has_hop = false;
        uint32_t gateway = 0;
        uint32_t ifindex = 0;
        uint32_t nexthop_id = 0;  // zebra's object the route follows (0: inline gateways)
        std::vector<std::pair<uint32_t, uint32_t>> more;  // gateway, ifindex

        route_update update() const;
        bool same(const route_update& u) const;
        void set(const route_update& u);
    };

    void run();
    void on_frame(std::span<const uint8_t> frame);
    void on_nexthop(const nexthop_object& nh);
    void on_route(const route& r);
    // `del` is a RTM_DELROUTE that `next` (the frame's next message) re-adds: a route update.
    static bool replaced_by(const message& del, const message& next);
    void announce(route_update u);
    void sweep();
    void withdraw_all();
    void flush();
    void close_connection();

    server_options _options;
    int _listen_fd = -1;
    int _conn_fd = -1;
    uint16_t _bound_port = 0;
    std::atomic<bool> _stop{false};
    server_counters _counters;
    control::spsc_queue<batch, queue_capacity> _out;
    batch _pending;
    std::deque<batch> _backlog;  // thread side: batches the full queue has not taken yet
    stream_reader _reader;
    frame_messages _messages;  // the current frame's, decoded into the same vector each time
    nexthop_table _nexthops;
    std::unordered_map<uint64_t, held> _table;  // key: prefix << 8 | len
    bool _resyncing = false;
    std::chrono::steady_clock::time_point _last_frame;
    std::chrono::steady_clock::time_point _lost_at;
    bool _lost = false;
    std::thread _thread;
};

}  // namespace dmvpn::fpm
