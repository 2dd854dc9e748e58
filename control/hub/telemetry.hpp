// DPDK telemetry commands (/dmvpn/stats, /dmvpn/nhrp, /dmvpn/dmvpn, /dmvpn/interfaces) served
// from a snapshot the control lcore refreshes: the telemetry thread never touches control state.
// The counters and interfaces are refreshed every second; the per-entry views (nhrp, dmvpn: a
// line per cache entry or peer, O(spokes) to render, 10-16 ms at 10,000 spokes) only when a
// reader asks for one: the reader waits for the control lcore's next tick to render them.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "control/mgmt/metrics.hpp"

namespace dmvpn::hub {

struct telemetry_snapshot {
    std::vector<std::pair<std::string, uint64_t>> stats;
    // Rendered when asked (views_wanted); a snapshot without them keeps the last ones.
    std::optional<std::vector<std::string>> nhrp;   // one line per cache entry (show nhrp brief)
    std::optional<std::vector<std::string>> dmvpn;  // one line per peer (show dmvpn)
    std::vector<std::string> interfaces;            // one line per port and tunnel
    std::vector<control::metric_family> metrics;    // Prometheus (hub.metrics)
};

class telemetry {
public:
    // Registers the commands with rte_telemetry (once per process).
    static std::unique_ptr<telemetry> create();
    ~telemetry();
    telemetry(const telemetry&) = delete;
    telemetry& operator=(const telemetry&) = delete;

    // Control lcore: replaces the snapshot unless a telemetry reader holds it right now, in
    // which case it returns false and the caller tries again later (it never waits).
    // The per-entry views are replaced only when `s` has them.
    bool try_publish(telemetry_snapshot s);
    // Control lcore, every tick: a reader asked for the per-entry views since they were last
    // published (render them and publish; a reader waits for them, at most views_wait).
    bool views_wanted() const noexcept;

    static constexpr std::chrono::milliseconds views_wait{1000};

private:
    telemetry() = default;
};

// What the callbacks would answer now (tests, and the callbacks themselves): the per-entry views
// as last rendered.
telemetry_snapshot telemetry_current();
// The snapshot's metrics as Prometheus text (the metrics thread: copies under the lock, renders
// outside it).
std::string telemetry_prometheus();

}  // namespace dmvpn::hub
