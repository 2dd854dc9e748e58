// The IKE thread (control/ike/thread): a handler of the test's own behind the two queues.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "control/ike/thread.hpp"

using namespace dmvpn;
using namespace std::chrono_literals;

namespace {

// Records every call (under a mutex: the test reads from its own thread) and answers with what
// the test tells it to.
struct recorder final : ike::handler {
    mutable std::mutex mu;
    std::vector<std::string> calls;
    std::thread::id ran_on;
    size_t ticks = 0;
    std::vector<uint32_t> cleared;
    mutable size_t shown = 0;  // show() calls
    // Per datagram received: how many datagrams and install requests to answer with.
    size_t answer_datagrams = 1;
    size_t answer_requests = 0;
    std::atomic<bool> hold{false};  // on_datagram spins while set (a slow DH)
    uint64_t next_child = 1;

    void note(std::string s) {
        std::lock_guard g(mu);
        ran_on = std::this_thread::get_id();
        calls.push_back(std::move(s));
    }
    void on_datagram(const ike::datagram& d, ike::time_point, ike::outputs& out) override {
        while (hold.load()) {
            std::this_thread::sleep_for(1ms);
        }
        note("datagram " + std::to_string(d.src) + " " + std::to_string(d.payload.size()));
        for (size_t i = 0; i < answer_datagrams; ++i) {
            ike::datagram r;
            r.src = d.dst;
            r.dst = d.src;
            r.sport = d.dport;
            r.dport = d.sport;
            r.tunnel = d.tunnel;
            r.payload = {uint8_t(i), uint8_t(i >> 8)};
            out.send.push_back(std::move(r));
        }
        for (size_t i = 0; i < answer_requests; ++i) {
            ike::install_child ic;
            ic.sa.id = next_child++;
            ic.sa.peer = d.src;
            out.requests.emplace_back(std::move(ic));
        }
    }
    void tick(ike::time_point, ike::outputs&) override {
        std::lock_guard g(mu);
        ++ticks;
    }
    void installed(uint64_t id, ike::time_point, ike::outputs& out) override {
        note("installed " + std::to_string(id));
        out.requests.emplace_back(ike::peer_up{7, 0, 0x0a000002, "spoke"});
    }
    void install_failed(uint64_t id, std::string why, ike::time_point, ike::outputs&) override {
        note("install_failed " + std::to_string(id) + " " + why);
    }
    void usage(const std::vector<ike::child_usage>& u, ike::time_point, ike::outputs&) override {
        note("usage " + std::to_string(u.size()) + " " + std::to_string(u.at(0).in_bytes));
    }
    void initiate(uint32_t tunnel, uint32_t peer, ike::time_point, ike::outputs&) override {
        note("initiate " + std::to_string(tunnel) + " " + std::to_string(peer));
    }
    void clear(uint32_t peer, ike::time_point, ike::outputs& out) override {
        {
            std::lock_guard g(mu);
            cleared.push_back(peer);
        }
        note("clear " + std::to_string(peer));
        out.requests.emplace_back(ike::peer_down{7, 0, peer, "clear crypto sa"});
    }
    std::optional<std::string> reconfigure(const std::vector<config::ipsec_profile>& p,
                                           std::vector<ike::tunnel_binding>) override {
        note("reconfigure " + std::to_string(p.size()));
        return p.empty() ? std::optional<std::string>("no profile") : std::nullopt;
    }
    std::string show(std::string_view what, bool json) const override {
        std::lock_guard g(mu);
        ++shown;
        return std::string(json ? "{\"view\":\"" : "view ") + std::string(what) +
               (json ? "\"}" : "") + " cleared " + std::to_string(cleared.size());
    }
    size_t shows() const {
        std::lock_guard g(mu);
        return shown;
    }
    std::vector<std::string> snapshot() const {
        std::lock_guard g(mu);
        return calls;
    }
};

ike::datagram dgram(uint32_t src, size_t len = 3) {
    ike::datagram d;
    d.src = src;
    d.dst = 0xc0000201;
    d.tunnel = 2;
    d.payload.assign(len, 0xab);
    return d;
}

// Polls the thread's outputs until `pred` says enough or 2 s pass.
template <typename Pred>
std::vector<ike::output> collect(ike::thread& t, Pred pred) {
    std::vector<ike::output> got;
    auto until = std::chrono::steady_clock::now() + 2s;
    while (!pred(got) && std::chrono::steady_clock::now() < until) {
        if (auto o = t.poll()) {
            got.push_back(std::move(*o));
        } else {
            std::this_thread::sleep_for(100us);
        }
    }
    return got;
}

size_t count_datagrams(const std::vector<ike::output>& v) {
    size_t n = 0;
    for (auto& o : v) {
        n += std::holds_alternative<ike::datagram>(o);
    }
    return n;
}
size_t count_requests(const std::vector<ike::output>& v) {
    size_t n = 0;
    for (auto& o : v) {
        n += std::holds_alternative<ike::request>(o);
    }
    return n;
}

}  // namespace

TEST_CASE("the IKE thread runs the handler on its own thread and returns its outputs") {
    auto h = std::make_unique<recorder>();
    recorder& r = *h;
    r.answer_requests = 1;
    ike::thread t(std::move(h));
    REQUIRE(t.post(dgram(0x0a000002, 5)));
    auto got = collect(t, [](auto& v) { return count_requests(v) >= 1; });
    REQUIRE(count_datagrams(got) == 1);
    REQUIRE(count_requests(got) == 1);
    // The answer to the datagram, then the request, in the handler's order (datagrams first);
    // nothing else (no show view is rendered unless asked).
    std::vector<ike::output> ordered = std::move(got);
    REQUIRE(ordered.size() == 2);
    const auto& d = std::get<ike::datagram>(ordered[0]);
    CHECK(d.dst == 0x0a000002);
    CHECK(d.src == 0xc0000201);
    CHECK(d.tunnel == 2);
    const auto& req = std::get<ike::request>(ordered[1]);
    REQUIRE(std::holds_alternative<ike::install_child>(req));
    CHECK(std::get<ike::install_child>(req).sa.peer == 0x0a000002);
    CHECK(r.snapshot().at(0) == "datagram 167772162 5");
    std::lock_guard g(r.mu);
    CHECK(r.ran_on != std::this_thread::get_id());
}

TEST_CASE("a post wakes the thread only when it sleeps, and is counted") {
    auto h = std::make_unique<recorder>();
    recorder& r = *h;
    r.answer_datagrams = 0;
    ike::thread t(std::move(h));
    auto handled = [&r](size_t n) {
        auto until = std::chrono::steady_clock::now() + 5s;
        while (r.snapshot().size() < n && std::chrono::steady_clock::now() < until) {
            std::this_thread::sleep_for(100us);
        }
        return r.snapshot().size();
    };
    // Quiet: the thread sleeps (until its next tick at most), and a post wakes it.
    uint64_t before = t.counters().wakes.load();
    size_t posted = 0;
    for (int round = 0; round < 5; ++round) {
        std::this_thread::sleep_for(3ms);  // within a tick: the thread is asleep again
        REQUIRE(t.post(dgram(uint32_t(++posted))));
        REQUIRE(handled(posted) == posted);
    }
    // At most one wake a post, and some (a loaded machine may not have let it sleep each time).
    CHECK(t.counters().wakes.load() - before <= posted);
    CHECK(t.counters().wakes.load() > before);
    CHECK(t.counters().inputs.load() == posted);
}

TEST_CASE("acks, usage, initiate and clear reach the handler's matching calls") {
    auto h = std::make_unique<recorder>();
    recorder& r = *h;
    ike::thread t(std::move(h));
    REQUIRE(t.post(ike::installed_ack{11}));
    REQUIRE(t.post(ike::install_failed_ack{12, "spi clash"}));
    REQUIRE(t.post(ike::usage_report{{ike::child_usage{11, 1500, 1, 0, 0}}}));
    REQUIRE(t.post(ike::initiate_cmd{3, 0x0a000009}));
    REQUIRE(t.post(ike::clear_cmd{0x0a000002}));
    REQUIRE(t.post(ike::reconfigure_cmd{}));
    auto got = collect(t, [](auto& v) {
        return std::any_of(v.begin(), v.end(),
                           [](auto& o) { return std::holds_alternative<ike::reconfigured>(o); });
    });
    CHECK(r.snapshot() == std::vector<std::string>{"installed 11", "install_failed 12 spi clash",
                                                   "usage 1 1500", "initiate 3 167772169",
                                                   "clear 167772162", "reconfigure 0"});
    // installed -> peer_up, clear -> peer_down, reconfigure -> its result, in that order.
    std::vector<std::string> kinds;
    for (auto& o : got) {
        if (auto* q = std::get_if<ike::request>(&o)) {
            kinds.push_back(std::holds_alternative<ike::peer_up>(*q)     ? "peer_up"
                            : std::holds_alternative<ike::peer_down>(*q) ? "peer_down"
                                                                         : "other");
        } else if (auto* rc = std::get_if<ike::reconfigured>(&o)) {
            kinds.push_back("reconfigured " + rc->error.value_or("ok"));
        }
    }
    CHECK(kinds == std::vector<std::string>{"peer_up", "peer_down", "reconfigured no profile"});
}

TEST_CASE("the thread ticks about every 10 ms and renders show views only when asked") {
    auto h = std::make_unique<recorder>();
    recorder& r = *h;
    ike::thread t(std::move(h));
    // Ticks alone render nothing (a view is O(SAs)).
    std::this_thread::sleep_for(50ms);
    CHECK(r.shows() == 0);
    CHECK(t.poll() == std::nullopt);
    REQUIRE(t.ask(ike::show_request{7, "ikev2 sa", false}));
    REQUIRE(t.ask(ike::show_request{8, "session", true}));
    auto first = collect(t, [](auto& v) { return v.size() >= 2; });
    REQUIRE(first.size() == 2);
    CHECK(std::get<ike::show_answer>(first[0]).ticket == 7);
    CHECK(std::get<ike::show_answer>(first[0]).text == "view ikev2 sa cleared 0");
    CHECK(std::get<ike::show_answer>(first[1]).ticket == 8);
    CHECK(std::get<ike::show_answer>(first[1]).text == "{\"view\":\"session\"} cleared 0");
    CHECK(r.shows() == 2);
    CHECK(t.counters().shows.load() == 2);
    // A view asked once a clear was handled shows its effect.
    REQUIRE(t.post(ike::clear_cmd{0}));
    REQUIRE(count_requests(collect(t, [](auto& v) { return count_requests(v) >= 1; })) == 1);
    REQUIRE(t.ask(ike::show_request{9, "ipsec sa", false}));
    auto after = collect(t, [](auto& v) {
        return std::any_of(v.begin(), v.end(),
                           [](auto& o) { return std::holds_alternative<ike::show_answer>(o); });
    });
    bool seen = false;
    for (auto& o : after) {
        if (auto* a = std::get_if<ike::show_answer>(&o)) {
            CHECK(a->ticket == 9);
            CHECK(a->text == "view ipsec sa cleared 1");
            seen = true;
        }
    }
    CHECK(seen);
    CHECK(ike::is_show_view("ikev2 sa detail"));
    CHECK(ike::is_show_view("isakmp sa"));  // IKEv1's, through the dual handler
    CHECK(ike::is_show_view("isakmp sa detail"));
    CHECK_FALSE(ike::is_show_view("isakmp policy"));

    size_t before;
    {
        std::lock_guard g(r.mu);
        before = r.ticks;
    }
    std::this_thread::sleep_for(300ms);
    size_t ticks;
    {
        std::lock_guard g(r.mu);
        ticks = r.ticks - before;
    }
    // 30 expected; a loaded test machine may lose some, never gain many.
    CHECK(ticks >= 10);
    CHECK(ticks <= 32);
    CHECK(t.counters().ticks.load() >= ticks);
}

TEST_CASE("show requests beyond the ask queue are refused, the rest answered in order") {
    auto h = std::make_unique<recorder>();
    recorder& r = *h;
    r.answer_datagrams = 0;
    r.hold = true;  // the thread is stuck in a datagram: nothing is read meanwhile
    ike::thread t(std::move(h));
    REQUIRE(t.post(dgram(1)));
    std::this_thread::sleep_for(20ms);
    for (uint64_t i = 0; i < ike::thread::ask_capacity; ++i) {
        REQUIRE(t.ask(ike::show_request{i, "session", false}));
    }
    CHECK_FALSE(t.ask(ike::show_request{99, "session", false}));
    r.hold = false;
    auto got = collect(t, [](auto& v) { return v.size() >= ike::thread::ask_capacity; });
    REQUIRE(got.size() == ike::thread::ask_capacity);
    for (uint64_t i = 0; i < got.size(); ++i) {
        CHECK(std::get<ike::show_answer>(got[i]).ticket == i);
    }
}

TEST_CASE("a full input queue refuses and counts without blocking the producer") {
    auto h = std::make_unique<recorder>();
    recorder& r = *h;
    r.answer_datagrams = 0;
    r.hold = true;  // the handler is stuck in one datagram (a slow DH)
    ike::thread t(std::move(h));
    REQUIRE(t.post(dgram(1)));
    std::this_thread::sleep_for(20ms);  // the thread is now inside on_datagram
    size_t refused = 0;
    auto start = std::chrono::steady_clock::now();
    for (uint32_t i = 0; i < ike::thread::input_capacity + 500; ++i) {
        refused += !t.post(dgram(i + 2));
    }
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(took < 500ms);  // never waited on the stuck thread
    CHECK(refused == 500);
    CHECK(t.counters().input_overflow.load() == 500);
    r.hold = false;
    auto until = std::chrono::steady_clock::now() + 5s;
    while (r.snapshot().size() < ike::thread::input_capacity + 1 &&
           std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(1ms);
    }
    CHECK(r.snapshot().size() == ike::thread::input_capacity + 1);
}

TEST_CASE(
    "on a full output queue datagrams are dropped and counted, requests all arrive in order") {
    auto h = std::make_unique<recorder>();
    recorder& r = *h;
    r.answer_datagrams = ike::thread::output_capacity;  // fills the queue by itself
    r.answer_requests = 3000;
    ike::thread t(std::move(h));
    REQUIRE(t.post(dgram(1)));
    REQUIRE(t.post(dgram(2)));
    // Nothing polled yet: wait until the thread has handled both.
    auto until = std::chrono::steady_clock::now() + 5s;
    while (r.snapshot().size() < 2 && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(1ms);
    }
    std::this_thread::sleep_for(50ms);
    CHECK(t.counters().output_overflow.load() >= ike::thread::output_capacity);
    CHECK(t.counters().requests_backlogged.load() >= 6000 - ike::thread::output_capacity);
    auto got = collect(t, [](auto& v) { return count_requests(v) >= 6000; });
    REQUIRE(count_requests(got) == 6000);
    uint64_t expect = 1;
    for (auto& o : got) {
        if (auto* q = std::get_if<ike::request>(&o)) {
            CHECK(std::get<ike::install_child>(*q).sa.id == expect);
            ++expect;
        }
    }
    CHECK(count_datagrams(got) + t.counters().output_overflow.load() ==
          2 * ike::thread::output_capacity);
}
