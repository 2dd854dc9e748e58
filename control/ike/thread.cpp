// The IKE thread (see thread.hpp): runs the handler, never touched by the control lcore except
// through its queues.
#include "control/ike/thread.hpp"

#include <pthread.h>

#include <algorithm>
#include <iterator>

#include "control/cpu_placement.hpp"

namespace dmvpn::ike {

bool is_show_view(std::string_view what) {
    return std::find(std::begin(show_views), std::end(show_views), what) != std::end(show_views);
}

thread::thread(std::unique_ptr<handler> h) : _h(std::move(h)) {
    _thread = std::thread([this] { run(); });
    pthread_setname_np(_thread.native_handle(), "dmvpn-ike");
}

thread::~thread() {
    _stop.store(true);
    _wake.release();
    if (_thread.joinable()) {
        _thread.join();
    }
}

bool thread::post(input in) {
    if (!_in.push(std::move(in))) {
        _counters.input_overflow.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    _counters.inputs.fetch_add(1, std::memory_order_relaxed);
    wake();
    return true;
}

bool thread::ask(show_request r) {
    if (!_asks.push(std::move(r))) {
        return false;
    }
    wake();
    return true;
}

// Wakes the thread only when it announced a sleep: no system call per datagram under load.
void thread::wake() {
    if (_sleeping.exchange(false)) {
        _counters.wakes.fetch_add(1, std::memory_order_relaxed);
        _wake.release();
    }
}

void thread::flush_backlog() {
    while (!_backlog.empty()) {
        if (!_out.push(std::move(_backlog.front()))) {
            return;
        }
        _backlog.pop_front();
        _counters.outputs.fetch_add(1, std::memory_order_relaxed);
    }
}

// Moves the handler's outputs to the control lcore: datagrams are dropped (counted) when the
// queue is full, as a congested network would (IKE retransmits); requests wait in the backlog
// in order, so installs and removals are never lost or reordered.
void thread::drain(outputs& o) {
    flush_backlog();
    for (auto& d : o.send) {
        if (!_out.push(output{std::move(d)})) {
            _counters.output_overflow.fetch_add(1, std::memory_order_relaxed);
            continue;
        }
        _counters.outputs.fetch_add(1, std::memory_order_relaxed);
    }
    for (auto& r : o.requests) {
        if (_backlog.empty() && _out.push(output{std::move(r)})) {
            _counters.outputs.fetch_add(1, std::memory_order_relaxed);
            continue;
        }
        _backlog.emplace_back(std::move(r));
        _counters.requests_backlogged.fetch_add(1, std::memory_order_relaxed);
    }
    o.send.clear();
    o.requests.clear();
}

// Renders the views asked for since the last pass. Answers are never dropped: like requests
// they wait in the backlog, in order, when the output queue is full.
void thread::answer_shows() {
    while (auto r = _asks.pop()) {
        output a{show_answer{r->ticket, _h->show(r->what, r->json)}};
        _counters.shows.fetch_add(1, std::memory_order_relaxed);
        if (_backlog.empty() && _out.push(std::move(a))) {
            _counters.outputs.fetch_add(1, std::memory_order_relaxed);
        } else {
            _backlog.emplace_back(std::move(a));
        }
    }
}

void thread::run() {
    control::enter_service_cpus();  // off the control lcore's CPU
    outputs o;
    time_point next_tick = clock::now();
    while (!_stop.load(std::memory_order_relaxed)) {
        time_point now = clock::now();
        answer_shows();
        // A bounded batch per pass, so ticks and the backlog keep their turn under a flood.
        size_t budget = _backlog.size() < request_backlog_limit ? 256 : 0;
        for (; budget > 0; --budget) {
            auto in = _in.pop();
            if (!in) {
                break;
            }
            std::visit(
                [&](auto& v) {
                    using T = std::decay_t<decltype(v)>;
                    if constexpr (std::is_same_v<T, datagram>) {
                        _h->on_datagram(v, now, o);
                    } else if constexpr (std::is_same_v<T, usage_report>) {
                        _h->usage(v.children, now, o);
                    } else if constexpr (std::is_same_v<T, installed_ack>) {
                        _h->installed(v.child_id, now, o);
                    } else if constexpr (std::is_same_v<T, install_failed_ack>) {
                        _h->install_failed(v.child_id, std::move(v.why), now, o);
                    } else if constexpr (std::is_same_v<T, initiate_cmd>) {
                        _h->initiate(v.tunnel, v.peer, now, o);
                    } else if constexpr (std::is_same_v<T, clear_cmd>) {
                        _h->clear(v.peer, now, o);
                    } else {
                        auto err = _h->reconfigure(v.profiles, std::move(v.tunnels));
                        _backlog.emplace_back(reconfigured{std::move(err)});
                    }
                },
                *in);
            drain(o);
        }
        if (now >= next_tick) {
            _h->tick(now, o);
            drain(o);
            _counters.ticks.fetch_add(1, std::memory_order_relaxed);
            next_tick = now + tick_interval;
        }
        flush_backlog();
        if (_backlog.size() >= request_backlog_limit) {
            // The control lcore is behind: give it a moment before reading more.
            (void)_wake.try_acquire_for(std::chrono::milliseconds(1));
        } else if (budget > 0) {
            // The queue ran dry: sleep until the next tick or the control lcore's next post.
            _sleeping.store(true);
            if (_in.empty() && _asks.empty() && !_stop.load()) {
                (void)_wake.try_acquire_until(next_tick);
            }
            _sleeping.store(false);
            while (_wake.try_acquire()) {
            }
        }
    }
}

}  // namespace dmvpn::ike
