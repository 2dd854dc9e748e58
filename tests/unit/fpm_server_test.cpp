// The FPM server thread (control/fpm/server.hpp) over a real TCP connection on loopback: frames
// in (as zebra would send them, encoded by the codec, whose decoding of zebra's own recordings
// fpm_codec checks), batches of route changes out; next-hop objects and groups; a reconnect
// that resends less withdraws the rest after the settle time; a lost zebra's routes go after
// the hold time; a garbage stream closes the connection; a control lcore that does not drain
// holds zebra back without losing a change; max_routes refuses and counts.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <thread>

#include "control/fpm/server.hpp"

namespace fpm = dmvpn::fpm;
using namespace std::chrono_literals;

namespace {

struct client {
    int fd = -1;
    explicit client(uint16_t port) {
        fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    }
    ~client() { close(); }
    void close() {
        if (fd >= 0) {
            ::close(fd);
            fd = -1;
        }
    }
    void send(const std::vector<uint8_t>& bytes) {
        size_t off = 0;
        while (off < bytes.size()) {
            const ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
            REQUIRE(n > 0);
            off += static_cast<size_t>(n);
        }
    }
    void send(const fpm::message& m) { send(fpm::encode_frame(m)); }
};

fpm::address v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) { return {2, {a, b, c, d}}; }

fpm::route route_to(fpm::address dst, uint8_t len, std::vector<fpm::nexthop> hops,
                    uint32_t nh_id = 0, bool add = true) {
    fpm::route r;
    r.add = add;
    r.family = 2;
    r.dst = dst;
    r.prefix_len = len;
    r.table = 254;
    r.protocol = fpm::protocol::bgp;
    r.metric = 20;
    r.nexthops = std::move(hops);
    r.nexthop_id = nh_id;
    return r;
}

// The control lcore's view: applies batches to a table until `done` holds or 5 s pass.
struct view {
    std::map<std::pair<uint32_t, uint8_t>, fpm::route_update> table;
    size_t updates = 0;

    template <typename F>
    bool drain_until(fpm::server& s, F done) {
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (std::chrono::steady_clock::now() < deadline) {
            while (auto b = s.poll()) {
                for (auto& u : *b) {
                    ++updates;
                    if (u.add) {
                        table[{u.prefix, u.len}] = u;
                    } else {
                        table.erase({u.prefix, u.len});
                    }
                }
            }
            if (done()) {
                return true;
            }
            std::this_thread::sleep_for(5ms);
        }
        return false;
    }
};

fpm::server_options quick() {
    fpm::server_options o;
    o.port = 0;
    o.settle = 300ms;
    o.hold = 600ms;
    return o;
}

}  // namespace

TEST_CASE("routes and next-hop groups from a connection reach the control lcore") {
    fpm::server s(quick());
    view v;
    client c(s.port());
    fpm::nexthop_object a, b, g;
    a.id = 12;
    a.family = 2;
    a.gateway = v4(192, 0, 2, 2);
    a.ifindex = 3;
    b.id = 13;
    b.family = 2;
    b.gateway = v4(192, 0, 2, 3);
    b.ifindex = 3;
    g.id = 14;
    g.group = {{12, 0}, {13, 0}};
    c.send(a);
    c.send(b);
    c.send(g);
    c.send(route_to(v4(10, 1, 0, 0), 16, {}, 12));
    c.send(route_to(v4(10, 3, 0, 0), 24, {}, 14));
    c.send(route_to(v4(10, 5, 0, 0), 24, {{v4(192, 0, 2, 5), 3, 1}}));
    REQUIRE(v.drain_until(s, [&] { return v.table.size() == 3; }));
    CHECK(v.table[{0x0a010000u, 16}].gateways == std::vector<uint32_t>{0xc0000202u});
    CHECK(v.table[{0x0a030000u, 24}].gateways == std::vector<uint32_t>{0xc0000202u, 0xc0000203u});
    CHECK(v.table[{0x0a050000u, 24}].gateways == std::vector<uint32_t>{0xc0000205u});
    CHECK(v.table[{0x0a010000u, 16}].protocol == fpm::protocol::bgp);

    // zebra replaces next hop 12 in place: the routes using it follow.
    a.gateway = v4(192, 0, 2, 22);
    c.send(a);
    REQUIRE(v.drain_until(s, [&] {
        return v.table[{0x0a010000u, 16}].gateways == std::vector<uint32_t>{0xc0000216u};
    }));
    CHECK(v.table[{0x0a030000u, 24}].gateways == std::vector<uint32_t>{0xc0000216u, 0xc0000203u});

    // A withdrawal; a route naming an unknown object is skipped and counted.
    c.send(route_to(v4(10, 5, 0, 0), 24, {}, 0, false));
    c.send(route_to(v4(10, 6, 0, 0), 24, {}, 999));
    REQUIRE(v.drain_until(s, [&] { return v.table.size() == 2; }));
    REQUIRE(v.drain_until(s, [&] { return s.counters().skipped.load() == 1; }));
    CHECK(s.counters().connections.load() == 1);
    CHECK(s.counters().routes.load() == 2);
}

TEST_CASE("a route update (RTM_DELROUTE + RTM_NEWROUTE in one frame) replaces, no gap") {
    // zebra 8.4 sends a route whose next hop changed as one frame holding both messages
    // (dplane_fpm_nl's DPLANE_OP_ROUTE_UPDATE): a recursive route re-resolved when a spoke's
    // /32 comes or goes. Taking only the first message lost the route.
    fpm::server s(quick());
    view v;
    client c(s.port());
    fpm::nexthop_object a, b;
    a.id = 5;
    a.family = 2;
    a.gateway = v4(10, 0, 0, 2);
    a.ifindex = 2;
    b = a;
    b.id = 11;  // the same gateway, onlink through the spoke's /32: a new object
    c.send(a);
    c.send(route_to(v4(172, 16, 0, 0), 24, {}, 5));
    REQUIRE(v.drain_until(s, [&] { return v.table.size() == 1; }));
    const size_t before = v.updates;
    c.send(b);
    const std::vector<fpm::message> update = {route_to(v4(172, 16, 0, 0), 24, {}, 5, false),
                                              route_to(v4(172, 16, 0, 0), 24, {}, 11)};
    c.send(fpm::encode_frame(update));
    fpm::nexthop_object del;
    del.add = false;
    del.id = 5;
    c.send(del);
    // Inline gateways (`no fpm use-next-hop-groups`), a new gateway: the same.
    const std::vector<fpm::message> inline_update = {
        route_to(v4(172, 16, 1, 0), 24, {{v4(10, 0, 0, 3), 2, 1}}),
        route_to(v4(172, 16, 1, 0), 24, {}, 0, false),
        route_to(v4(172, 16, 1, 0), 24, {{v4(10, 0, 0, 4), 2, 1}})};
    c.send(fpm::encode_frame(inline_update));
    REQUIRE(v.drain_until(s, [&] { return v.table.size() == 2; }));
    CHECK(v.table[{0xac100000u, 24}].gateways == std::vector<uint32_t>{0x0a000002u});
    CHECK(v.table[{0xac100100u, 24}].gateways == std::vector<uint32_t>{0x0a000004u});
    // No withdrawal was handed over between the old route and the new one: 1 update for
    // 172.16.0.0/24 (the object's gateway did not change: none), 2 for 172.16.1.0/24.
    CHECK(v.updates - before == 2);
    CHECK(s.counters().routes_removed.load() == 0);
    CHECK(s.counters().bad_frames.load() == 0);

    // A NEWROUTE that replaces with an object the hub was never sent leaves nothing stale.
    const std::vector<fpm::message> unknown = {route_to(v4(172, 16, 0, 0), 24, {}, 11, false),
                                               route_to(v4(172, 16, 0, 0), 24, {}, 999)};
    c.send(fpm::encode_frame(unknown));
    REQUIRE(v.drain_until(s, [&] { return v.table.size() == 1; }));
    CHECK(s.counters().skipped.load() == 1);
}

TEST_CASE("a reconnect that resends less withdraws the rest after the settle time") {
    fpm::server s(quick());
    view v;
    {
        client c(s.port());
        for (uint8_t i = 1; i <= 5; ++i) {
            c.send(route_to(v4(10, i, 0, 0), 16, {{v4(192, 0, 2, 2), 3, 1}}));
        }
        REQUIRE(v.drain_until(s, [&] { return v.table.size() == 5; }));
    }
    // Lost: the routes stay (hold 600 ms) while zebra restarts...
    std::this_thread::sleep_for(100ms);
    CHECK(v.drain_until(s, [&] { return s.counters().disconnects.load() == 1; }));
    CHECK(v.table.size() == 5);
    client c(s.port());
    const size_t before = v.updates;
    // ...and it comes back with routes 1-3 (2 changed) and a new 7.
    c.send(route_to(v4(10, 1, 0, 0), 16, {{v4(192, 0, 2, 2), 3, 1}}));
    c.send(route_to(v4(10, 2, 0, 0), 16, {{v4(192, 0, 2, 9), 3, 1}}));
    c.send(route_to(v4(10, 3, 0, 0), 16, {{v4(192, 0, 2, 2), 3, 1}}));
    c.send(route_to(v4(10, 7, 0, 0), 16, {{v4(192, 0, 2, 2), 3, 1}}));
    REQUIRE(v.drain_until(s, [&] { return s.counters().swept.load() == 2; }));
    REQUIRE(v.drain_until(s, [&] { return v.table.size() == 4; }));
    CHECK(v.table.count({0x0a040000u, 16}) == 0);
    CHECK(v.table.count({0x0a050000u, 16}) == 0);
    CHECK(v.table[{0x0a020000u, 16}].gateways == std::vector<uint32_t>{0xc0000209u});
    // Unchanged routes were not re-announced: 2 (changed, new) + 2 (swept).
    CHECK(v.updates - before == 4);
}

TEST_CASE("a zebra gone for longer than the hold time leaves no route") {
    fpm::server s(quick());
    view v;
    {
        client c(s.port());
        c.send(route_to(v4(10, 1, 0, 0), 16, {{v4(192, 0, 2, 2), 3, 1}}));
        REQUIRE(v.drain_until(s, [&] { return v.table.size() == 1; }));
    }
    REQUIRE(v.drain_until(s, [&] { return v.table.empty(); }));
    CHECK(s.counters().routes.load() == 0);
}

TEST_CASE("a garbage stream closes the connection; frames the decoder refuses are counted") {
    fpm::server s(quick());
    view v;
    client c(s.port());
    auto bad = fpm::encode_frame(route_to(v4(10, 1, 0, 0), 16, {{v4(192, 0, 2, 2), 3, 1}}));
    bad[4 + 16 + 1] = 40;  // prefix length 40: refused, the stream goes on
    c.send(bad);
    c.send(route_to(v4(10, 2, 0, 0), 16, {{v4(192, 0, 2, 2), 3, 1}}));
    REQUIRE(v.drain_until(s, [&] { return v.table.size() == 1; }));
    CHECK(s.counters().bad_frames.load() == 1);
    c.send(std::vector<uint8_t>{7, 7, 7, 7, 7, 7});
    REQUIRE(v.drain_until(s, [&] { return s.counters().poisoned.load() == 1; }));
    uint8_t byte;
    CHECK(::recv(c.fd, &byte, 1, 0) == 0);  // closed by the server
}

TEST_CASE("a control lcore that does not drain holds zebra back; nothing is lost") {
    fpm::server s(quick());
    constexpr uint32_t routes = 200'000;
    std::vector<uint8_t> bytes;
    for (uint32_t i = 0; i < routes; ++i) {
        const auto f =
            fpm::encode_frame(route_to({2,
                                        {10, static_cast<uint8_t>(i >> 16),
                                         static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)}},
                                       32, {{v4(192, 0, 2, 2), 3, 1}}));
        bytes.insert(bytes.end(), f.begin(), f.end());
    }
    std::atomic<bool> sending{false};
    std::thread sender([&] {
        client c(s.port());
        sending = true;
        c.send(bytes);  // blocks while the server holds back
        std::this_thread::sleep_for(200ms);
    });
    while (!sending) {
        std::this_thread::sleep_for(1ms);
    }
    std::this_thread::sleep_for(1s);  // nothing drained meanwhile
    CHECK(s.counters().backpressure.load() > 0);
    view v;
    REQUIRE(v.drain_until(s, [&] { return v.table.size() == routes; }));
    sender.join();
    CHECK(v.updates == routes);
}

TEST_CASE("past max_routes new prefixes are refused and counted") {
    auto o = quick();
    o.max_routes = 3;
    fpm::server s(o);
    view v;
    client c(s.port());
    for (uint8_t i = 1; i <= 5; ++i) {
        c.send(route_to(v4(10, i, 0, 0), 16, {{v4(192, 0, 2, 2), 3, 1}}));
    }
    REQUIRE(v.drain_until(s, [&] { return s.counters().refused_full.load() == 2; }));
    CHECK(v.table.size() == 3);
}

TEST_CASE("a listen address that is not IPv4 is a clear error") {
    auto o = quick();
    o.address = "not-an-address";
    CHECK_THROWS_WITH(fpm::server(o), Catch::Contains("not-an-address"));
}
