// The management socket: commands reach the control lcore's handler through the SPSC queues and
// answers come back; a control lcore that never polls yields a timeout, not a hang.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <atomic>
#include <optional>
#include <string>
#include <thread>

#include "control/mgmt/server.hpp"
#include "control/mgmt/spsc_queue.hpp"

using namespace dmvpn::control;

namespace {
std::string socket_path(const char* tag) {
    return "/tmp/dmvpn-mgmt-test-" + std::to_string(::getpid()) + "-" + tag + ".sock";
}
}  // namespace

TEST_CASE("spsc queue keeps order and refuses when full") {
    spsc_queue<int, 4> q;
    CHECK(q.push(1));
    CHECK(q.push(2));
    CHECK(q.push(3));
    CHECK(q.push(4));
    CHECK_FALSE(q.push(5));
    CHECK(q.pop() == 1);
    CHECK(q.push(5));
    CHECK(q.pop() == 2);
    CHECK(q.pop() == 3);
    CHECK(q.pop() == 4);
    CHECK(q.pop() == 5);
    CHECK_FALSE(q.pop().has_value());
}

TEST_CASE("spsc queue between two threads delivers every item once, in order") {
    spsc_queue<uint32_t, 256> q;
    constexpr uint32_t count = 200000;
    std::thread producer([&] {
        for (uint32_t i = 0; i < count;) {
            if (q.push(i)) {
                ++i;
            }
        }
    });
    uint32_t expect = 0;
    while (expect < count) {
        if (auto v = q.pop()) {
            REQUIRE(*v == expect);
            ++expect;
        }
    }
    producer.join();
    CHECK_FALSE(q.pop().has_value());
}

TEST_CASE("commands are answered by the control loop's handler") {
    auto path = socket_path("answer");
    auto server = mgmt_server::start(path);
    REQUIRE(server);
    std::atomic<bool> stop{false};
    std::thread control([&] {
        while (!stop.load()) {
            (*server)->poll([](std::string_view cmd) {
                if (cmd == "fail") {
                    return mgmt_reply{false, "no such command: fail\n"};
                }
                return mgmt_reply{true, "you said: " + std::string(cmd) + "\n"};
            });
            std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
    });
    auto ok = mgmt_call(path, "show nhrp brief");
    REQUIRE(ok);
    CHECK(ok->ok);
    CHECK(ok->body == "you said: show nhrp brief\n");
    auto bad = mgmt_call(path, "fail");
    REQUIRE(bad);
    CHECK_FALSE(bad->ok);
    CHECK(bad->body == "no such command: fail\n");
    // Many in a row: ids stay matched.
    for (int i = 0; i < 50; ++i) {
        auto r = mgmt_call(path, "n " + std::to_string(i));
        REQUIRE(r);
        CHECK(r->body == "you said: n " + std::to_string(i) + "\n");
    }
    stop.store(true);
    control.join();
}

TEST_CASE("a deferred command is answered later, from the control loop, to its own client") {
    auto path = socket_path("defer");
    auto server = mgmt_server::start(path);
    REQUIRE(server);
    std::atomic<bool> stop{false};
    std::thread control([&] {
        // "later" is deferred and answered three passes on (as the IKE thread's rendering
        // comes back); anything else at once.
        std::optional<uint64_t> ticket;
        int passes = 0;
        while (!stop.load()) {
            (*server)->poll([&](std::string_view cmd) {
                if (cmd == "later") {
                    ticket = (*server)->defer();
                    passes = 0;
                    return mgmt_reply{false, "dropped: the handler deferred"};
                }
                return mgmt_reply{true, "now: " + std::string(cmd)};
            });
            if (ticket && ++passes == 3) {
                (*server)->answer(*ticket, {true, "rendered later\n"});
                ticket.reset();
            }
            std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
    });
    auto first = mgmt_call(path, "later");
    REQUIRE(first);
    CHECK(first->ok);
    CHECK(first->body == "rendered later\n");
    auto next = mgmt_call(path, "x");
    REQUIRE(next);
    CHECK(next->body == "now: x");
    auto again = mgmt_call(path, "later");
    REQUIRE(again);
    CHECK(again->body == "rendered later\n");
    stop.store(true);
    control.join();
}

TEST_CASE("a control lcore that does not poll gives the client a timeout answer") {
    auto path = socket_path("timeout");
    auto server = mgmt_server::start(path);
    REQUIRE(server);
    auto r = mgmt_call(path, "show dmvpn", 10000);
    REQUIRE(r);
    CHECK_FALSE(r->ok);
    CHECK(r->body.find("did not answer") != std::string::npos);
    // The late answer to that command must not be handed to the next client.
    std::atomic<bool> stop{false};
    std::thread control([&] {
        while (!stop.load()) {
            (*server)->poll([](std::string_view cmd) {
                return mgmt_reply{true, std::string(cmd)};
            });
            std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
    });
    auto next = mgmt_call(path, "second");
    REQUIRE(next);
    CHECK(next->body == "second");
    stop.store(true);
    control.join();
}

TEST_CASE("a client to a socket nobody serves gets a clear error") {
    auto r = mgmt_call("/tmp/dmvpn-no-such-socket.sock", "show dmvpn", 500);
    REQUIRE_FALSE(r);
    CHECK(r.error().find("cannot connect") != std::string::npos);
    auto bad = mgmt_server::start(std::string(200, 'x'));
    REQUIRE_FALSE(bad);
    CHECK(bad.error().find("longer than") != std::string::npos);
}
