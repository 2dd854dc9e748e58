// Where the control lcore's loop passes go: a histogram (loop_time) and a total per stage of
// hub::run, per IKE output kind and per part of a CHILD_SA install and of a tick, timed with the
// TSC (a read is a few nanoseconds; the stages of a pass that did nothing are not recorded).
// `show stats` (JSON: pass_profile) lists the items that ran.
#pragma once

#include <rte_cycles.h>

#include <array>
#include <cstdint>
#include <string_view>

#include "control/hub/loop_time.hpp"

namespace dmvpn::hub {

enum class pass_item : uint8_t {
    // The stages of a pass that did work (hub::run), in their order there (flush last).
    punts,
    exception,
    replicate,
    timers,
    ike,
    fpm,
    redist,
    mgmt,
    flush,
    // The punts served between a long stage's items (hub::punts_between, inside ike and fpm).
    punts_between,
    // What ike_pass spent on each kind of the IKE thread's outputs.
    ike_datagram,
    ike_install,
    ike_remove,
    ike_peer_up,
    ike_peer_down,
    ike_other,
    // The parts of install_child.
    install_params,     // esp_params_of, both directions
    install_pair,       // crypto::sa::create twice (key schedules)
    install_spi,        // the SPI table insert (a rebuild when it grows)
    install_arrange,    // arrange_pairs, its republication included
    install_nhs,        // the registration's wait set up or nhs_reachable applied
    install_log,        // the "IPsec SA up" line
    arrange_republish,  // arrange_pairs' republish_peer
    // The parts of a tick (hub::timers).
    tick_nhrp,
    tick_neighbors,
    tick_reclaim,
    tick_soft_limits,
    tick_usage,
    tick_rekey_pairs,
    tick_nhs_wait,
    tick_initiate,
    tick_nbma_paths,       // the NBMA paths' idle expiry, a slice
    tick_glean,            // gleaned LAN routes whose neighbour failed, a slice
    tick_second,           // the once-a-second work, in parts:
    tick_links,            // the ports' link states (and announcements)
    tick_carried,          // bindings carried over a reload, once due
    tick_commit,           // the RIB's commit
    tick_telemetry,        // its telemetry snapshot (counters, interfaces)
    tick_telemetry_views,  // the telemetry's per-entry views, rendered when a reader asks
    // The parts of an NHRP packet's handling (hub::on_nhrp and hub::apply).
    nhrp_server,  // the server's parse, cache change and reply build
    nhrp_log,     // the binding's log line
    nhrp_events,  // the bindings' indexes, multicast and redistribution, the RIB's set
    nhrp_commit,  // the RIB's commit (the FIB's change)
    nhrp_send,    // the reply handed to TX (through ESP on a protected tunnel)
    // A pass that found nothing to do: well under a microsecond of polling, unless the CPU
    // was taken from the control lcore meanwhile (an interrupt, the hypervisor), so that its
    // tail is the stalls any other work of the control lcore suffers too.
    idle,
    count,
};

inline std::string_view name(pass_item i) noexcept {
    static constexpr std::array<std::string_view, static_cast<size_t>(pass_item::count)> names{
        "punts",
        "exception",
        "replicate",
        "timers",
        "ike",
        "fpm",
        "redist",
        "mgmt",
        "flush",
        "punts_between",
        "ike_datagram",
        "ike_install",
        "ike_remove",
        "ike_peer_up",
        "ike_peer_down",
        "ike_other",
        "install_params",
        "install_pair",
        "install_spi",
        "install_arrange",
        "install_nhs",
        "install_log",
        "arrange_republish",
        "tick_nhrp",
        "tick_neighbors",
        "tick_reclaim",
        "tick_soft_limits",
        "tick_usage",
        "tick_rekey_pairs",
        "tick_nhs_wait",
        "tick_initiate",
        "tick_nbma_paths",
        "tick_glean",
        "tick_second",
        "tick_links",
        "tick_carried",
        "tick_commit",
        "tick_telemetry",
        "tick_telemetry_views",
        "nhrp_server",
        "nhrp_log",
        "nhrp_events",
        "nhrp_commit",
        "nhrp_send",
        "idle",
    };
    auto k = static_cast<size_t>(i);
    return k < names.size() ? names[k] : "?";
}

class pass_profile {
public:
    void set_tsc_khz(uint64_t khz) noexcept { _tsc_khz = khz == 0 ? 1 : khz; }
    void record(pass_item i, uint64_t from, uint64_t to) noexcept {
        uint64_t ns = to > from ? (to - from) * 1000000 / _tsc_khz : 0;
        auto k = static_cast<size_t>(i);
        _items[k].record(ns);
        _total_ns[k] += ns;
    }
    const loop_time& of(pass_item i) const noexcept { return _items[static_cast<size_t>(i)]; }
    uint64_t total_ns(pass_item i) const noexcept { return _total_ns[static_cast<size_t>(i)]; }

    // Times the scope it lives in as item `i`.
    class scope {
    public:
        scope(pass_profile& p, pass_item i) noexcept : _p(p), _i(i), _from(rte_rdtsc()) {}
        ~scope() { _p.record(_i, _from, rte_rdtsc()); }
        scope(const scope&) = delete;
        scope& operator=(const scope&) = delete;

    private:
        pass_profile& _p;
        pass_item _i;
        uint64_t _from;
    };

private:
    static constexpr auto n = static_cast<size_t>(pass_item::count);
    uint64_t _tsc_khz = 1;
    std::array<loop_time, n> _items{};
    std::array<uint64_t, n> _total_ns{};
};

}  // namespace dmvpn::hub
