// The redistribution thread "dmvpn-redist" (redistribute.hpp).
#include "control/rib/redistribute.hpp"

#include <pthread.h>

#include "control/cpu_placement.hpp"

namespace dmvpn::rib {

namespace {

uint64_t bump(std::atomic<uint64_t>& a) { return a.fetch_add(1, std::memory_order_relaxed); }

}  // namespace

redistributor::redistributor(redistribute_options o, std::unique_ptr<knl::kernel_table> kernel)
    : _o(o), _kernel(std::move(kernel)) {
    _thread = std::thread([this] { run(); });
    pthread_setname_np(_thread.native_handle(), "dmvpn-redist");
}

redistributor::~redistributor() {
    _stop.store(true);
    if (_thread.joinable()) {
        _thread.join();
    }
}

void redistributor::offer(knl::kroute r) {
    r.protocol = _o.protocol;
    r.table = _o.table;
    auto [it, fresh] = _want.try_emplace({r.dst, r.len}, r);
    if (!fresh) {
        if (it->second == r) {
            return;  // a refresh of the same registration: nothing to write
        }
        it->second = r;
    }
    bump(_c.offered);
    push(op{true, r});
}

void redistributor::withdraw(const kprefix& p) {
    auto it = _want.find(p);
    if (it == _want.end()) {
        return;
    }
    op o{false, it->second};
    _want.erase(it);
    bump(_c.withdrawn);
    push(o);
}

void redistributor::push(const op& o) {
    if (_overflowed) {
        _changed_since_snapshot = true;  // the next snapshot carries it
        return;
    }
    if (!_ops.push(o)) {
        // The thread gets the whole set instead (pass()); nothing more is queued till then.
        bump(_c.queue_full);
        _overflowed = true;
        _changed_since_snapshot = true;
    }
}

void redistributor::pass() {
    if (!_overflowed || _snapshot_ready.load(std::memory_order_acquire)) {
        return;  // nothing lost, or the thread has not taken the last snapshot yet
    }
    if (!_changed_since_snapshot) {
        _overflowed = false;  // the thread holds the latest set: queue again
        return;
    }
    std::unique_lock lock(_snap_mu, std::try_to_lock);
    if (!lock.owns_lock()) {
        return;  // next pass
    }
    _snapshot = std::make_unique<std::map<kprefix, knl::kroute>>(_want);
    _changed_since_snapshot = false;
    _snapshot_ready.store(true, std::memory_order_release);
}

bool redistributor::idle() const noexcept {
    return _ops.empty() && !_snapshot_ready.load(std::memory_order_acquire) &&
           !_busy.load(std::memory_order_acquire);
}

void redistributor::apply(const op& o) {
    kprefix k{o.r.dst, o.r.len};
    if (o.add) {
        _kept[k] = o.r;
        if (_kernel->replace(o.r)) {
            bump(_c.added);
        } else {
            bump(_c.failed);
        }
    } else {
        _kept.erase(k);
        if (_kernel->remove(o.r)) {
            bump(_c.removed);
        } else {
            bump(_c.failed);
        }
    }
    _c.routes.store(_kept.size(), std::memory_order_relaxed);
}

void redistributor::resync() {
    auto have = _kernel->dump(_o.protocol, _o.table);
    if (!have) {
        bump(_c.failed);
        return;
    }
    std::map<kprefix, knl::kroute> in_kernel;
    for (const knl::kroute& r : *have) {
        in_kernel[{r.dst, r.len}] = r;
    }
    for (const auto& [k, r] : in_kernel) {
        if (!_kept.contains(k)) {
            if (_kernel->remove(r)) {
                bump(_c.swept);
            } else {
                bump(_c.failed);
            }
        }
    }
    for (const auto& [k, r] : _kept) {
        auto it = in_kernel.find(k);
        if (it != in_kernel.end() && it->second.gateway == r.gateway &&
            it->second.ifindex == r.ifindex) {
            continue;
        }
        if (_kernel->replace(r)) {
            bump(_c.repaired);
        } else {
            bump(_c.failed);
        }
    }
    bump(_c.resyncs);
    _c.routes.store(_kept.size(), std::memory_order_relaxed);
}

void redistributor::run() {
    control::enter_service_cpus();  // off the control lcore's CPU
    using clock = std::chrono::steady_clock;
    resync();  // a previous run's routes that nobody offers again go
    auto next_resync = clock::now() + _o.resync_interval;
    while (!_stop.load(std::memory_order_relaxed)) {
        bool worked = false;
        if (_snapshot_ready.load(std::memory_order_acquire)) {
            std::unique_ptr<std::map<kprefix, knl::kroute>> snap;
            {
                std::lock_guard lock(_snap_mu);
                snap = std::move(_snapshot);
                // What was queued before the overflow is older than the snapshot.
                while (_ops.pop()) {
                }
                _snapshot_ready.store(false, std::memory_order_release);
            }
            _kept = std::move(*snap);
            resync();
            next_resync = clock::now() + _o.resync_interval;
            worked = true;
        }
        for (int n = 0; n < 256; ++n) {
            auto o = _ops.pop();
            if (!o) {
                break;
            }
            apply(*o);
            worked = true;
        }
        if (clock::now() >= next_resync) {
            resync();
            next_resync = clock::now() + _o.resync_interval;
        }
        if (!worked) {
            _busy.store(false, std::memory_order_release);
            std::this_thread::sleep_for(_o.idle_wait);
            _busy.store(true, std::memory_order_release);
        }
    }
}

}  // namespace dmvpn::rib
