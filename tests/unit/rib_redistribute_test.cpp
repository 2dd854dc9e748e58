// NHRP's routes into the kernel (control/rib/redistribute.hpp, kernel_netlink.hpp): the
// thread's start-up resync sweeping a previous run's routes, offers and withdrawals written,
// refreshes not rewritten, an overflowing queue recovered by a full snapshot, a refused write
// repaired by the periodic resync; the rtnetlink encoder and reply parser on their own bytes.
#include <catch2/catch.hpp>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "control/rib/redistribute.hpp"

using namespace dmvpn::rib;
using knl::kroute;

namespace {

constexpr uint32_t ip(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
    return a << 24 | b << 16 | c << 8 | d;
}

// The kernel's table, as the thread sees it through kernel_table.
struct fake_state {
    std::mutex mu;
    std::map<kprefix, kroute> routes;
    size_t replaces = 0;
    size_t removes = 0;
    size_t dumps = 0;
    bool refuse = false;
};

class fake_table final : public knl::kernel_table {
public:
    explicit fake_table(fake_state& s) : _s(s) {}
    bool replace(const kroute& r) override {
        std::lock_guard l(_s.mu);
        ++_s.replaces;
        if (_s.refuse) {
            return false;
        }
        _s.routes[{r.dst, r.len}] = r;
        return true;
    }
    bool remove(const kroute& r) override {
        std::lock_guard l(_s.mu);
        ++_s.removes;
        _s.routes.erase({r.dst, r.len});
        return true;
    }
    std::optional<std::vector<kroute>> dump(uint8_t protocol, uint32_t table) override {
        std::lock_guard l(_s.mu);
        ++_s.dumps;
        std::vector<kroute> out;
        for (const auto& [k, r] : _s.routes) {
            if (r.protocol == protocol && r.table == table) {
                out.push_back(r);
            }
        }
        return out;
    }
    int last_error() const noexcept override { return 0; }

private:
    fake_state& _s;
};

void settle(const redistributor& r) {
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    while (!r.idle() && std::chrono::steady_clock::now() < end) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}

kroute spoke(uint32_t overlay, uint32_t ifindex = 7) {
    kroute r;
    r.dst = overlay;
    r.len = 32;
    r.ifindex = ifindex;
    return r;
}

redistribute_options opts() {
    redistribute_options o;
    o.idle_wait = std::chrono::milliseconds(1);
    return o;
}

}  // namespace

TEST_CASE("the start-up resync removes our stale routes, leaves others' alone") {
    fake_state s;
    kroute stale = spoke(ip(10, 0, 0, 9));
    stale.protocol = 247;
    kroute frr = spoke(ip(10, 0, 0, 8));
    frr.protocol = 186;  // zebra's BGP
    s.routes[{stale.dst, 32}] = stale;
    s.routes[{frr.dst, 32}] = frr;
    redistributor r(opts(), std::make_unique<fake_table>(s));
    settle(r);
    CHECK(s.routes.size() == 1);
    CHECK(s.routes.begin()->second.protocol == 186);
    CHECK(r.counters().swept.load() == 1);
    CHECK(r.counters().resyncs.load() == 1);
}

TEST_CASE("offers and withdrawals reach the kernel; a refresh writes nothing") {
    fake_state s;
    redistributor r(opts(), std::make_unique<fake_table>(s));
    r.offer(spoke(ip(10, 0, 0, 2)));
    kroute pfx;
    pfx.dst = ip(172, 16, 3, 0);
    pfx.len = 24;
    pfx.gateway = ip(10, 0, 0, 3);
    pfx.ifindex = 7;
    r.offer(pfx);
    settle(r);
    REQUIRE(s.routes.size() == 2);
    CHECK(s.routes.at({ip(10, 0, 0, 2), 32}).protocol == 247);
    CHECK(s.routes.at({ip(10, 0, 0, 2), 32}).table == knl::main_table);
    CHECK(s.routes.at({ip(172, 16, 3, 0), 24}).gateway == ip(10, 0, 0, 3));
    size_t writes = s.replaces;
    r.offer(spoke(ip(10, 0, 0, 2)));  // a registration refreshed
    settle(r);
    CHECK(s.replaces == writes);
    r.withdraw({ip(10, 0, 0, 2), 32});
    r.withdraw({ip(10, 0, 0, 99), 32});  // never offered: nothing to do
    settle(r);
    CHECK(s.routes.size() == 1);
    CHECK(r.counters().added.load() == 2);
    CHECK(r.counters().removed.load() == 1);
    CHECK(r.counters().routes.load() == 1);
}

TEST_CASE("an overflowing queue: the whole set follows, nothing lost or stale") {
    fake_state s;
    redistributor r(opts(), std::make_unique<fake_table>(s));
    {
        std::lock_guard l(s.mu);  // the thread stalls on its first write: the queue fills
        for (uint32_t i = 0; i < 6000; ++i) {
            r.offer(spoke(ip(10, 1, 0, 0) + i));
        }
        for (uint32_t i = 0; i < 1000; ++i) {
            r.withdraw({ip(10, 1, 0, 0) + i, 32});
        }
    }
    CHECK(r.counters().queue_full.load() == 1);
    for (int i = 0; i < 200 && !r.idle(); ++i) {
        r.pass();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    r.pass();
    settle(r);
    std::lock_guard l(s.mu);
    CHECK(s.routes.size() == 5000);
    CHECK(!s.routes.contains({ip(10, 1, 0, 0), 32}));
    CHECK(s.routes.contains({ip(10, 1, 0, 0) + 5999, 32}));
}

TEST_CASE("a write the kernel refused is repaired by the periodic resync") {
    fake_state s;
    s.refuse = true;
    redistribute_options o = opts();
    o.resync_interval = std::chrono::milliseconds(50);
    redistributor r(o, std::make_unique<fake_table>(s));
    r.offer(spoke(ip(10, 0, 0, 5)));
    settle(r);
    CHECK(r.counters().failed.load() >= 1);
    {
        std::lock_guard l(s.mu);
        s.refuse = false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    settle(r);
    std::lock_guard l(s.mu);
    CHECK(s.routes.contains({ip(10, 0, 0, 5), 32}));
    CHECK(r.counters().repaired.load() >= 1);
}

TEST_CASE("rtnetlink: a request parses back; acks, errors, done and bad lengths") {
    kroute k;
    k.dst = ip(172, 16, 3, 0);
    k.len = 24;
    k.gateway = ip(10, 0, 0, 3);
    k.ifindex = 9;
    k.protocol = 247;
    std::vector<uint8_t> msg = knl::encode_route(k, true, 42);
    // The same bytes as an RTM_NEWROUTE of a dump.
    std::vector<knl::reply> got;
    auto collect = [&](const knl::reply& r) { got.push_back(r); };
    REQUIRE(!knl::parse_replies(msg, collect));
    REQUIRE(got.size() == 1);
    CHECK(got[0].what == knl::reply::kind::route);
    CHECK(got[0].seq == 42);
    REQUIRE(got[0].route);
    CHECK(*got[0].route == k);

    // NLMSG_ERROR with 0 (ack) and -ESRCH, then NLMSG_DONE, in one buffer.
    auto error_msg = [](uint32_t seq, int32_t err) {
        std::vector<uint8_t> b(16 + 4 + 16, 0);
        nlmsghdr h{};
        h.nlmsg_len = static_cast<uint32_t>(b.size());
        h.nlmsg_type = NLMSG_ERROR;
        h.nlmsg_seq = seq;
        std::memcpy(b.data(), &h, sizeof h);
        std::memcpy(b.data() + 16, &err, 4);
        return b;
    };
    std::vector<uint8_t> buf = error_msg(1, 0);
    auto e2 = error_msg(2, -3);
    buf.insert(buf.end(), e2.begin(), e2.end());
    nlmsghdr done{};
    done.nlmsg_len = 20;
    done.nlmsg_type = NLMSG_DONE;
    done.nlmsg_seq = 3;
    size_t at = buf.size();
    buf.resize(at + 20, 0);
    std::memcpy(buf.data() + at, &done, sizeof done);
    got.clear();
    REQUIRE(!knl::parse_replies(buf, collect));
    REQUIRE(got.size() == 3);
    CHECK(got[0].what == knl::reply::kind::ack);
    CHECK(got[1].what == knl::reply::kind::error);
    CHECK(got[1].error == -3);
    CHECK(got[2].what == knl::reply::kind::done);

    // Cut short, and a length past the buffer.
    got.clear();
    CHECK(knl::parse_replies(std::span(buf).first(10), collect) == knl::parse_error::truncated);
    std::vector<uint8_t> bad = error_msg(1, 0);
    uint32_t huge = 4096;
    std::memcpy(bad.data(), &huge, 4);
    CHECK(knl::parse_replies(bad, collect) == knl::parse_error::bad_length);
    uint32_t tiny = 8;
    std::memcpy(bad.data(), &tiny, 4);
    CHECK(knl::parse_replies(bad, collect) == knl::parse_error::bad_length);
}
