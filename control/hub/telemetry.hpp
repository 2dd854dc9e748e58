// DPDK telemetry commands (/dmvpn/stats, /dmvpn/nhrp, /dmvpn/dmvpn, /dmvpn/interfaces) served
// from a snapshot the control lcore refreshes: the telemetry thread never touches control state.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "control/mgmt/metrics.hpp"

namespace dmvpn::hub {

struct telemetry_snapshot {
    std::vector<std::pair<std::string, uint64_t>> stats;
    std::vector<std::string> nhrp;                // one line per cache entry (show nhrp brief)
    std::vector<std::string> dmvpn;               // one line per peer (show dmvpn)
    std::vector<std::string> interfaces;          // one line per port and tunnel
    std::vector<control::metric_family> metrics;  // Prometheus (hub.metrics)
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
    bool try_publish(telemetry_snapshot s);

private:
    telemetry() = default;
};

// What the callbacks would answer now (tests, and the callbacks themselves).
telemetry_snapshot telemetry_current();
// The snapshot's metrics as Prometheus text (the metrics thread: copies under the lock, renders
// outside it).
std::string telemetry_prometheus();

}  // namespace dmvpn::hub
