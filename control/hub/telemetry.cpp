// rte_telemetry callbacks over a snapshot guarded by a mutex the control lcore only try-locks.
#include "control/hub/telemetry.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>

#include <rte_telemetry.h>

namespace dmvpn::hub {

namespace {

std::mutex g_mutex;
telemetry_snapshot g_snapshot;
bool g_live = false;
// The per-entry views: asked for by a reader, published by the control lcore (g_views_gen
// counts those publications, under g_mutex), which readers wait for.
std::atomic<bool> g_views_wanted{false};
uint64_t g_views_gen = 0;
std::condition_variable g_views_done;

telemetry_snapshot copy_current() {
    std::lock_guard<std::mutex> lock(g_mutex);
    return g_live ? g_snapshot : telemetry_snapshot{};
}

// One member of the snapshot (not the per-entry views a copy of the whole one would take).
template <class T>
T copy_of(T telemetry_snapshot::*member) {
    std::lock_guard<std::mutex> lock(g_mutex);
    return g_live ? g_snapshot.*member : T{};
}

int lines_reply(const std::vector<std::string>& lines, rte_tel_data* d) {
    rte_tel_data_start_array(d, RTE_TEL_STRING_VAL);
    size_t n = 0;
    for (const std::string& l : lines) {
        if (n++ == RTE_TEL_MAX_ARRAY_ENTRIES) {
            break;
        }
        rte_tel_data_add_array_string(d, l.c_str());
    }
    return 0;
}

int on_stats(const char*, const char*, rte_tel_data* d) {
    auto stats = copy_of(&telemetry_snapshot::stats);
    rte_tel_data_start_dict(d);
    size_t n = 0;
    for (const auto& [k, v] : stats) {
        if (n++ == RTE_TEL_MAX_DICT_ENTRIES) {
            break;
        }
        rte_tel_data_add_dict_u64(d, k.c_str(), v);
    }
    return 0;
}

// Asks the control lcore for the per-entry views and waits for them (at most views_wait: then
// the last ones rendered, if any).
std::vector<std::string> fresh_view(
    std::optional<std::vector<std::string>> telemetry_snapshot::*v) {
    std::unique_lock<std::mutex> lock(g_mutex);
    if (!g_live) {
        return {};
    }
    const uint64_t gen = g_views_gen;
    g_views_wanted.store(true, std::memory_order_release);
    g_views_done.wait_for(lock, telemetry::views_wait,
                          [gen] { return g_views_gen != gen || !g_live; });
    const auto& lines = g_snapshot.*v;
    return g_live && lines ? *lines : std::vector<std::string>{};
}

int on_nhrp(const char*, const char*, rte_tel_data* d) {
    return lines_reply(fresh_view(&telemetry_snapshot::nhrp), d);
}

int on_dmvpn(const char*, const char*, rte_tel_data* d) {
    return lines_reply(fresh_view(&telemetry_snapshot::dmvpn), d);
}

int on_interfaces(const char*, const char*, rte_tel_data* d) {
    return lines_reply(copy_of(&telemetry_snapshot::interfaces), d);
}

}  // namespace

std::unique_ptr<telemetry> telemetry::create() {
    static bool registered = false;
    if (!registered) {
        registered = true;
        rte_telemetry_register_cmd(
            "/dmvpn/stats", on_stats,
            "dmvpn-hub counters: workers, ports, drops, NHRP. No parameters");
        rte_telemetry_register_cmd("/dmvpn/nhrp", on_nhrp,
                                   "dmvpn-hub NHRP cache, one entry a line. No parameters");
        rte_telemetry_register_cmd("/dmvpn/dmvpn", on_dmvpn,
                                   "dmvpn-hub peers (show dmvpn). No parameters");
        rte_telemetry_register_cmd("/dmvpn/interfaces", on_interfaces,
                                   "dmvpn-hub ports and tunnels. No parameters");
    }
    std::lock_guard<std::mutex> lock(g_mutex);
    g_live = true;
    return std::unique_ptr<telemetry>(new telemetry());
}

telemetry::~telemetry() {
    {
        std::lock_guard<std::mutex> lock(g_mutex);
        g_live = false;
        g_snapshot = {};
        g_views_wanted.store(false);
    }
    g_views_done.notify_all();
}

bool telemetry::try_publish(telemetry_snapshot s) {
    std::unique_lock<std::mutex> lock(g_mutex, std::try_to_lock);
    if (!lock.owns_lock()) {
        return false;
    }
    const bool views = s.nhrp || s.dmvpn;
    if (!s.nhrp) {
        s.nhrp = std::move(g_snapshot.nhrp);
    }
    if (!s.dmvpn) {
        s.dmvpn = std::move(g_snapshot.dmvpn);
    }
    g_snapshot = std::move(s);
    if (views) {
        ++g_views_gen;
        g_views_wanted.store(false, std::memory_order_relaxed);
        lock.unlock();
        g_views_done.notify_all();  // the readers waiting for them (one asked)
    }
    return true;
}

bool telemetry::views_wanted() const noexcept {
    return g_views_wanted.load(std::memory_order_acquire);
}

telemetry_snapshot telemetry_current() { return copy_current(); }

std::string telemetry_prometheus() {
    return control::render_prometheus(copy_of(&telemetry_snapshot::metrics));
}

}  // namespace dmvpn::hub
