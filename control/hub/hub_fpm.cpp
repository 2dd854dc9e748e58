// FRR's routes in the hub: the FPM server (control/fpm) started from `routing.fpm`, its batches
// drained on the control lcore into the RIB (control/rib/fpm_routes), and the routing counters
// of show stats, telemetry and the metrics.
#include <stdexcept>

#include <fmt/core.h>

#include "control/hub/hub.hpp"
#include "control/hub/json.hpp"
#include "control/log.hpp"

namespace dmvpn::hub {

namespace {

// Batches (of up to fpm::server::batch_size routes) applied per loop pass: a full table from
// zebra spreads over many passes, and punts, NHRP and timers run between them.
constexpr size_t fpm_batches_per_pass = 2;

}  // namespace

std::optional<std::string> hub::start_fpm() {
    const auto& cfg = _topo.routing.fpm;
    if (!cfg) {
        return std::nullopt;
    }
    fpm::server_options o;
    o.address = config::to_string(cfg->address);
    o.port = cfg->port;
    o.settle = std::chrono::seconds(cfg->settle_seconds);
    o.hold = std::chrono::seconds(cfg->hold_seconds);
    o.max_routes = cfg->max_routes;
    try {
        _fpm = std::make_unique<fpm::server>(o);
    } catch (const std::exception& e) {
        return fmt::format(
            "routing.fpm: {} (another FPM server, or zebra's own listener, on the "
            "port? set routing.fpm.port)",
            e.what());
    }
    log::info("FPM: waiting for zebra on {}:{}", o.address, _fpm->port());
    refresh_fpm_interfaces();
    return std::nullopt;
}

void hub::refresh_fpm_interfaces() {
    rib::fpm_interfaces ifs;
    for (const config::tunnel& t : _topo.tunnels) {
        if (auto slot = _slots.slot(t.name)) {
            ifs.tunnels.push_back({*slot, t.overlay_prefix.network.value, t.overlay_prefix.length});
        }
    }
    for (const port_rt& p : _ports) {
        config::prefix4 sub = p.cfg.address.subnet();
        if (p.cfg.role == config::port_role::lan) {
            ifs.lans.push_back({p.opened.id, sub.network.value, sub.length});
        } else {
            ifs.underlays.push_back(
                {p.opened.id, sub.network.value, sub.length, p.cfg.allow_transit});
        }
    }
    _fpm_ifs = std::move(ifs);
}

size_t hub::fpm_pass(timestamp now) {
    if (!_fpm) {
        return 0;
    }
    size_t work = 0;
    for (size_t n = 0; n < fpm_batches_per_pass; ++n) {
        std::optional<fpm::server::batch> b = _fpm->poll();
        if (!b) {
            break;
        }
        // A whole batch, then one commit: the workers never see half of it.
        rib::apply_fpm_batch(*_rib, *b, _fpm_ifs, _fpm_feed, &_fpm_refused);
        _rib->commit();
        work += 1 + punts_between(now);
    }
    return work;
}

std::vector<hub::routing_counter> hub::routing_counters() const {
    const rib::counters& rc = _rib->stats();
    std::vector<routing_counter> v = {
        {"rib_candidates", "Candidate routes the RIB holds, every source", _rib->candidate_count(),
         true},
        {"rib_refused", "Candidate routes refused: the RIB was full", rc.refused, false},
        {"rib_fib_failed", "FIB writes the publisher refused", rc.fib_failed, false},
        {"rib_commits", "RIB commits that wrote the FIB", rc.commits, false},
        {"rib_fib_writes", "Routes added to or deleted from the FIB", rc.fib_writes, false},
        {"rib_swept", "Candidates removed by a resynchronisation", rc.swept, false},
        {"rib_no_adjacency", "Next hops that found no adjacency slot", rc.no_adjacency, false},
    };
    auto load = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    if (_redist) {
        const rib::redistribute_counters& r = _redist->counters();
        v.insert(
            v.end(),
            {
                {"redist_routes", "NHRP routes kept in the kernel's table", load(r.routes), true},
                {"redist_offered", "NHRP routes offered for the kernel", load(r.offered), false},
                {"redist_withdrawn", "NHRP routes withdrawn from the kernel", load(r.withdrawn),
                 false},
                {"redist_added", "Kernel routes created or replaced", load(r.added), false},
                {"redist_removed", "Kernel routes deleted", load(r.removed), false},
                {"redist_failed", "Kernel route requests refused or unanswered", load(r.failed),
                 false},
                {"redist_queue_full", "Redistribution queue overflows (a resync followed)",
                 load(r.queue_full), false},
                {"redist_resyncs", "Full resynchronisations with the kernel's table",
                 load(r.resyncs), false},
                {"redist_swept", "Kernel routes of ours nobody offered, removed", load(r.swept),
                 false},
                {"redist_repaired", "Offered routes a resync found missing, written again",
                 load(r.repaired), false},
            });
    }
    if (!_fpm) {
        return v;
    }
    const fpm::server_counters& fc = _fpm->counters();
    v.insert(
        v.end(),
        {
            {"fpm_connected", "1 while zebra is connected to the FPM server",
             fc.connected.load(std::memory_order_relaxed) ? 1u : 0u, true},
            {"fpm_connections", "zebra connections accepted", load(fc.connections), false},
            {"fpm_disconnects", "zebra connections lost", load(fc.disconnects), false},
            {"fpm_frames", "FPM frames received", load(fc.frames), false},
            {"fpm_bad_frames", "FPM frames refused by the decoder", load(fc.bad_frames), false},
            {"fpm_poisoned", "FPM streams closed on a bad header", load(fc.poisoned), false},
            {"fpm_routes", "IPv4 routes zebra has announced", load(fc.routes), true},
            {"fpm_routes_added", "Route additions handed to the control lcore",
             load(fc.routes_added), false},
            {"fpm_routes_removed", "Route withdrawals handed to the control lcore",
             load(fc.routes_removed), false},
            {"fpm_swept", "Routes withdrawn after a resync: zebra did not resend them",
             load(fc.swept), false},
            {"fpm_skipped", "FPM routes not taken: IPv6, other tables, unresolvable next hops",
             load(fc.skipped), false},
            {"fpm_refused_full", "New FPM prefixes refused past routing.fpm.max-routes",
             load(fc.refused_full), false},
            {"fpm_backpressure", "Times the control lcore's FPM queue was full",
             load(fc.backpressure), false},
            {"fpm_batches", "FPM batches applied to the RIB", _fpm_feed.batches, false},
            {"fpm_installed", "FPM routes offered to the RIB", _fpm_feed.installed, false},
            {"fpm_withdrawn", "FPM withdrawals applied to the RIB", _fpm_feed.withdrawn, false},
            {"fpm_ignored_connected", "zebra's connected routes, not taken",
             _fpm_feed.ignored_connected, false},
            {"fpm_unresolved", "FPM routes whose gateway is on no hub tunnel or port",
             _fpm_feed.unresolved, false},
            {"fpm_underlay_refused",
             "FPM routes refused: gateway on an underlay port without allow-transit",
             _fpm_feed.underlay_refused, false},
            {"fpm_rib_refused", "FPM routes the full RIB refused", _fpm_feed.refused, false},
            {"fpm_not_installed", "FPM prefixes refused and not since withdrawn or installed",
             _fpm_refused.entries().size(), true},
            {"fpm_not_installed_unlisted",
             "FPM refusals not listed in show ip route (the list was full)",
             _fpm_refused.unlisted(), false},
        });
    return v;
}

std::string hub::routing_stats(bool json) const {
    std::vector<routing_counter> v = routing_counters();
    if (json) {
        json_members m;
        for (const routing_counter& c : v) {
            m.num(c.name, c.value);
        }
        return m.done();
    }
    std::string text = "Routing\n ";
    for (const routing_counter& c : v) {
        text += fmt::format(" {} {}", c.name, c.value);
    }
    return text + "\n";
}

}  // namespace dmvpn::hub
