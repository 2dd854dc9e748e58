// NHRP's registrations into the host kernel's routing table, so that FRR on the hub's host can
// `redistribute kernel` them (as FRR's own nhrpd does with `redistribute nhrp`): each registered
// spoke's overlay /32 (a registered prefix through its overlay address) out of its tunnel's
// kernel interface (the exception path), tagged with `routing.redistribute-protocol`.
//
// The control lcore only offers and withdraws (a map insert and a bounded queue push, no
// syscall); the thread "dmvpn-redist" writes the kernel through rtnetlink (kernel_netlink.hpp).
// It starts with a full resynchronisation (routes of our protocol the kernel holds but nobody
// offered, from an earlier run, are removed) and repeats it every `resync_interval` and after
// its queue overflowed. control/rib/README.md.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "control/mgmt/spsc_queue.hpp"
#include "control/rib/kernel_netlink.hpp"

namespace dmvpn::rib {

struct redistribute_options {
    uint8_t protocol = 247;  // rtm_protocol of our routes: not one FRR's zebra calls its own
    uint32_t table = knl::main_table;
    std::chrono::milliseconds resync_interval{std::chrono::seconds(60)};
    std::chrono::milliseconds idle_wait{std::chrono::milliseconds(5)};  // queue empty: nap
};

struct redistribute_counters {
    std::atomic<uint64_t> offered{0};     // routes offered by the control lcore (adds, changes)
    std::atomic<uint64_t> withdrawn{0};   // routes withdrawn by the control lcore
    std::atomic<uint64_t> queue_full{0};  // control lcore: queue full, a resync will follow
    std::atomic<uint64_t> added{0};       // kernel: routes created or replaced
    std::atomic<uint64_t> removed{0};     // kernel: routes deleted
    std::atomic<uint64_t> failed{0};      // kernel: requests refused (or unanswered)
    std::atomic<uint64_t> resyncs{0};     // full resynchronisations done
    std::atomic<uint64_t> swept{0};       // routes of ours the kernel held that nobody offered
    std::atomic<uint64_t> repaired{0};    // offered routes a resync found missing or different
    std::atomic<uint64_t> routes{0};      // gauge: routes the thread keeps in the kernel
};

using kprefix = std::pair<uint32_t, uint8_t>;  // dst (host order), length

class redistributor {
public:
    // Starts the thread; `kernel` is what it writes through (the netlink table, or a test's).
    redistributor(redistribute_options o, std::unique_ptr<knl::kernel_table> kernel);
    ~redistributor();  // stops and joins the thread (the kernel routes stay: the next start's
                       // resync, or the interface going away, removes them)
    redistributor(const redistributor&) = delete;
    redistributor& operator=(const redistributor&) = delete;

    // Control lcore. Offers (or changes) the route for `r.dst/r.len`; protocol and table are
    // filled in here.
    void offer(knl::kroute r);
    void withdraw(const kprefix& p);
    // Control lcore, each pass: after an overflow, hands the thread the whole wanted set.
    void pass();

    const redistribute_counters& counters() const noexcept { return _c; }
    const redistribute_options& options() const noexcept { return _o; }
    size_t wanted() const noexcept { return _want.size(); }
    // Tests: true once the thread has nothing queued and no resync pending.
    bool idle() const noexcept;

private:
    struct op {
        bool add = false;
        knl::kroute r;
    };
    void push(const op& o);
    void run();
    void apply(const op& o);
    void resync();

    redistribute_options _o;
    std::unique_ptr<knl::kernel_table> _kernel;
    redistribute_counters _c;
    // Control lcore side.
    std::map<kprefix, knl::kroute> _want;
    // The queue overflowed: nothing is queued until the thread took a snapshot of _want
    // holding every change since (pass()).
    bool _overflowed = false;
    bool _changed_since_snapshot = false;
    // Thread side: what the kernel should hold (the ops applied in order; a write the kernel
    // refused is tried again by the next resync).
    std::map<kprefix, knl::kroute> _kept;
    control::spsc_queue<op, 4096> _ops;
    // A full set after an overflow (control lcore -> thread), under the mutex; rare.
    std::mutex _snap_mu;
    std::unique_ptr<std::map<kprefix, knl::kroute>> _snapshot;
    std::atomic<bool> _snapshot_ready{false};
    std::atomic<bool> _busy{true};
    std::atomic<bool> _stop{false};
    std::thread _thread;
};

}  // namespace dmvpn::rib
