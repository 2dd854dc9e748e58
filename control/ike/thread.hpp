// The IKE thread: a thread of its own beside the control lcore (never a worker, never the
// control lcore) that runs the IKE engine, so Diffie-Hellman and signatures never stall NHRP.
//
//   control lcore --inputs (SPSC, bounded)--> IKE thread --outputs (SPSC, bounded)--> control lcore
//     datagrams, usage, installed / install_failed,     datagrams to send, engine requests
//     initiate, clear, reconfigure                       (install/remove_child, peer_up/down),
//                                                        show answers, reconfigure results
//   control lcore --show requests (SPSC, 16)----------> the view asked for, rendered on demand
//
// The control lcore only ever push()es and drains without waiting: a full input queue drops the
// item and counts it (IKE retransmits; acks and usage are never dropped silently: see post()).
// The thread ticks the engine every 10 ms and sleeps on a semaphore the producer releases only
// when the thread said it was going to sleep, so an idle hub makes no system call per datagram
// (`wakes` counts the posts that did wake it: a futex wake each, on the poster's time).
// `show crypto` views are rendered only when asked (ask()): rendering is O(SAs), so the thread
// never does it per tick, and a request waits behind at most one pass of datagrams (its own
// small queue is read first), not behind the whole input queue.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <semaphore>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "control/ike/engine.hpp"
#include "control/ike/events.hpp"
#include "control/mgmt/spsc_queue.hpp"

namespace dmvpn::ike {

// What the IKE thread drives: engine's member functions, as an interface, so the thread can be
// tested without the engine and the engine plugs in through engine_handler<engine> below.
class handler {
public:
    virtual ~handler() = default;
    virtual void on_datagram(const datagram& d, time_point now, outputs& out) = 0;
    virtual void tick(time_point now, outputs& out) = 0;
    virtual void installed(uint64_t child_id, time_point now, outputs& out) = 0;
    virtual void install_failed(uint64_t child_id, std::string why, time_point now,
                                outputs& out) = 0;
    virtual void usage(const std::vector<child_usage>& u, time_point now, outputs& out) = 0;
    virtual void initiate(uint32_t tunnel, uint32_t peer, time_point now, outputs& out) = 0;
    virtual void clear(uint32_t peer, time_point now, outputs& out) = 0;
    virtual std::optional<std::string> reconfigure(
        const std::vector<config::ipsec_profile>& profiles,
        std::vector<tunnel_binding> tunnels) = 0;
    virtual std::string show(std::string_view what, bool json) const = 0;
};

// The adapter for ike::engine (or anything with its member functions).
template <typename Engine>
class engine_handler final : public handler {
public:
    explicit engine_handler(std::unique_ptr<Engine> e) : _e(std::move(e)) {}
    void on_datagram(const datagram& d, time_point now, outputs& out) override {
        _e->on_datagram(d, now, out);
    }
    void tick(time_point now, outputs& out) override { _e->tick(now, out); }
    void installed(uint64_t id, time_point now, outputs& out) override {
        _e->installed(id, now, out);
    }
    void install_failed(uint64_t id, std::string why, time_point now, outputs& out) override {
        _e->install_failed(id, std::move(why), now, out);
    }
    void usage(const std::vector<child_usage>& u, time_point now, outputs& out) override {
        _e->usage(u, now, out);
    }
    void initiate(uint32_t tunnel, uint32_t peer, time_point now, outputs& out) override {
        _e->initiate(tunnel, peer, now, out);
    }
    void clear(uint32_t peer, time_point now, outputs& out) override { _e->clear(peer, now, out); }
    std::optional<std::string> reconfigure(const std::vector<config::ipsec_profile>& profiles,
                                           std::vector<tunnel_binding> tunnels) override {
        return _e->reconfigure(profiles, std::move(tunnels));
    }
    std::string show(std::string_view what, bool json) const override {
        return _e->show(what, json);
    }

private:
    std::unique_ptr<Engine> _e;
};

// ---- control lcore -> IKE thread ----
struct usage_report {
    std::vector<child_usage> children;
};
struct installed_ack {  // the SA is visible to every worker (see hub's install path)
    uint64_t child_id = 0;
};
struct install_failed_ack {
    uint64_t child_id = 0;
    std::string why;
};
struct initiate_cmd {
    uint32_t tunnel = 0;
    uint32_t peer = 0;
};
struct clear_cmd {  // peer 0: every peer
    uint32_t peer = 0;
};
struct reconfigure_cmd {
    std::vector<config::ipsec_profile> profiles;
    std::vector<tunnel_binding> tunnels;
};
using input = std::variant<datagram, usage_report, installed_ack, install_failed_ack, initiate_cmd,
                           clear_cmd, reconfigure_cmd>;

// A `show crypto` view asked for by the control lcore (thread::ask); `ticket` comes back with
// the answer (the management command it answers).
struct show_request {
    uint64_t ticket = 0;
    std::string what;  // one of show_views
    bool json = false;
};

// ---- IKE thread -> control lcore ----
struct show_answer {
    uint64_t ticket = 0;
    std::string text;  // handler::show(what, json), rendered when asked
};
struct reconfigured {
    std::optional<std::string> error;  // none: applied
};
using output = std::variant<datagram, request, show_answer, reconfigured>;

// The `show crypto ...` views the thread renders (what handler::show() is asked for).
inline constexpr std::string_view show_views[] = {
    "ikev2 sa",  "ikev2 sa detail",  "ipsec sa",   "session",
    "isakmp sa", "isakmp sa detail", "ikev2 stats"};
bool is_show_view(std::string_view what);

struct thread_counters {
    // read from any thread (relaxed)
    std::atomic<uint64_t> inputs{0};
    std::atomic<uint64_t> input_overflow{0};  // pushed into a full input queue: dropped
    std::atomic<uint64_t> outputs{0};
    std::atomic<uint64_t> output_overflow{0};      // datagrams dropped on a full output queue
    std::atomic<uint64_t> requests_backlogged{0};  // requests held in the thread, queue full
    std::atomic<uint64_t> ticks{0};
    std::atomic<uint64_t> shows{0};  // show requests answered
    std::atomic<uint64_t> wakes{0};  // posts that woke the sleeping thread (a system call each)
};

class thread {
public:
    // One IKE_SA_INIT from each of 10,000 spokes keying at once, with room for their
    // retransmits: a cold start queues rather than drops (bounded: 16,384 datagrams of at most
    // a UDP payload each); only a flood beyond it is dropped and counted.
    static constexpr size_t input_capacity = 16384;
    static constexpr size_t output_capacity = 4096;
    // Show requests: the management socket has one command in flight; the rest is slack for
    // requests whose client gave up waiting.
    static constexpr size_t ask_capacity = 16;
    static constexpr auto tick_interval = std::chrono::milliseconds(10);
    // Requests (installs, removals, peer events) are never dropped; past this many waiting in
    // the thread, the thread stops reading datagrams until the control lcore catches up.
    static constexpr size_t request_backlog_limit = 65536;

    // Starts the thread; `h` lives on it from now on.
    explicit thread(std::unique_ptr<handler> h);
    ~thread();  // stops and joins
    thread(const thread&) = delete;
    thread& operator=(const thread&) = delete;

    // Control lcore (the only producer): never blocks. False when the input queue is full; the
    // item is then dropped and counted (input_overflow). Callers keep acks they could not post
    // and post them again on the next pass (see pending acks in the hub).
    bool post(input in);
    // Control lcore: asks for a `show crypto` view; the show_answer comes back through poll().
    // False (nothing asked) when ask_capacity requests are waiting already.
    bool ask(show_request r);
    // Control lcore (the only consumer): the next output, if any.
    std::optional<output> poll() { return _out.pop(); }

    const thread_counters& counters() const noexcept { return _counters; }

private:
    void run();
    void drain(outputs& o);
    void flush_backlog();
    void wake();
    void answer_shows();

    std::unique_ptr<handler> _h;
    control::spsc_queue<input, input_capacity> _in;
    control::spsc_queue<show_request, ask_capacity> _asks;
    control::spsc_queue<output, output_capacity> _out;
    std::deque<output> _backlog;  // thread side only: requests the full output queue refused
    thread_counters _counters;
    std::atomic<bool> _stop{false};
    std::atomic<bool> _sleeping{false};
    std::counting_semaphore<> _wake{0};
    std::thread _thread;
};

}  // namespace dmvpn::ike
