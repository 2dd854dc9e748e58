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
#include <string_view>
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
    void down(uint32_t tunnel, uint32_t peer, time_point now, std::string why = {});
    // An IKE SA we initiated to it ended before it came up (no answer, refused): the back-off
    // goes on; `show crypto ike initiator` says why.
    void failed(uint32_t tunnel, uint32_t peer, std::string why);
    // The targets to initiate to now; each is next due after its back-off.
    std::vector<target> due(time_point now);

    // `show crypto ike initiator`: up; connecting (an initiation asked for and not failed
    // yet, or due now); backing off (the last one failed, the next is due at `next`).
    enum class phase : uint8_t { connecting, up, backing_off };
    static std::string_view name(phase p) noexcept;
    struct view {
        target t;
        bool up = false;
        uint64_t initiations = 0;  // initiate_cmds asked for
        uint64_t downs = 0;        // its IKE SA died
        uint64_t failures = 0;     // initiations that ended before their SA came up
        phase state = phase::connecting;
        time_point next{};       // the next initiation, when not up
        std::string last_error;  // why the last one failed or its SA died ("" none yet)
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
        uint64_t failures = 0;
        bool failed = false;  // since the last initiation
        std::string last_error;
    };
    std::map<target, state> _peers;
};

}  // namespace dmvpn::hub
