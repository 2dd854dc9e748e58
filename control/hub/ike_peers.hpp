// Hub to hub IKE (issue 10 part 3): the peers the hub keys itself, as initiator, on tunnels
// whose IPsec profile has `ike.initiate: true`: every `nhs` peer and every static `map` NBMA
// address of such a tunnel. It decides when to ask the IKE thread to initiate (initiate_cmd):
// at start, and again after the peer's IKE SA died (DPD failure, DELETE, hard expiry, a
// `clear crypto sa`), with back-off while the peer does not come up. An IKE SA the peer
// initiated counts as up as well: either hub keying the other is enough. The engines refuse an
// initiation towards a peer with an IKE SA already there or under way, so asking again is
// harmless. Plain data and times (no DPDK, no engine): the hub (control/hub/hub_ike.cpp)
// feeds it peer_up / peer_down and posts what due() returns; tests/unit drive it directly.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "config/topology.hpp"
#include "control/hub/model.hpp"

namespace dmvpn::hub {

class ike_peers {
public:
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;

    // An unanswered peer is asked again after 1, 2, 4 ... seconds, never less often than this.
    static constexpr std::chrono::seconds first_retry{1};
    static constexpr std::chrono::seconds max_retry{32};

    struct target {
        uint32_t tunnel = 0;  // slot
        uint32_t peer = 0;    // NBMA address, host order
        friend auto operator<=>(const target&, const target&) = default;
    };

    // The peers to initiate to, in topology order, without duplicates: for each tunnel whose
    // profile has an `ike` section with `initiate` on, its `nhs` NBMA addresses, then its
    // static `map` NBMA addresses (the tunnel's own address and 0.0.0.0 left out).
    static std::vector<target> targets_of(const config::topology& t, const tunnel_slots& s);

    // The targets from now on (start, reload): new ones are due at once, kept ones keep their
    // state, dropped ones are forgotten (their IKE SAs stay until they die on their own).
    void configure(const std::vector<target>& targets, time_point now);
    // An IKE SA with `peer` on `tunnel` authenticated (either side initiated it).
    void up(uint32_t tunnel, uint32_t peer);
    // Its last IKE SA died: initiate again at once, then back off while it stays down.
    void down(uint32_t tunnel, uint32_t peer, time_point now);
    // The targets to initiate to now; each is next due after its back-off.
    std::vector<target> due(time_point now);

    struct view {
        target t;
        bool up = false;
        uint64_t initiations = 0;  // initiate_cmds asked for
        uint64_t downs = 0;        // its IKE SA died
    };
    std::vector<view> peers() const;
    size_t size() const noexcept { return _peers.size(); }

private:
    struct state {
        bool up = false;
        time_point next{};
        std::chrono::seconds backoff = first_retry;
        uint64_t initiations = 0;
        uint64_t downs = 0;
    };
    std::map<target, state> _peers;
};

}  // namespace dmvpn::hub
