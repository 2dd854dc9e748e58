// rte_telemetry callbacks over a snapshot guarded by a mutex the control lcore only try-locks.
#include "control/hub/telemetry.hpp"

#include <mutex>

#include <rte_telemetry.h>

namespace dmvpn::hub {

namespace {

std::mutex g_mutex;
telemetry_snapshot g_snapshot;
bool g_live = false;

telemetry_snapshot copy_current() {
    std::lock_guard<std::mutex> lock(g_mutex);
    return g_live ? g_snapshot : telemetry_snapshot{};
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
    telemetry_snapshot s = copy_current();
    rte_tel_data_start_dict(d);
    size_t n = 0;
    for (const auto& [k, v] : s.stats) {
        if (n++ == RTE_TEL_MAX_DICT_ENTRIES) {
            break;
        }
        rte_tel_data_add_dict_u64(d, k.c_str(), v);
    }
    return 0;
}

int on_nhrp(const char*, const char*, rte_tel_data* d) {
    return lines_reply(copy_current().nhrp, d);
}

int on_dmvpn(const char*, const char*, rte_tel_data* d) {
    return lines_reply(copy_current().dmvpn, d);
}

int on_interfaces(const char*, const char*, rte_tel_data* d) {
    return lines_reply(copy_current().interfaces, d);
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
    std::lock_guard<std::mutex> lock(g_mutex);
    g_live = false;
    g_snapshot = {};
}

bool telemetry::try_publish(telemetry_snapshot s) {
    std::unique_lock<std::mutex> lock(g_mutex, std::try_to_lock);
    if (!lock.owns_lock()) {
        return false;
    }
    g_snapshot = std::move(s);
    return true;
}

telemetry_snapshot telemetry_current() { return copy_current(); }

std::string telemetry_prometheus() {
    std::vector<control::metric_family> m;
    {
        std::lock_guard<std::mutex> lock(g_mutex);
        if (g_live) {
            m = g_snapshot.metrics;
        }
    }
    return control::render_prometheus(m);
}

}  // namespace dmvpn::hub
