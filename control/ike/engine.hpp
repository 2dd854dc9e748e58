// The IKEv2 engine: every IKE SA and its CHILD_SAs, both roles (responder for spokes,
// initiator towards `nhs` peers and static maps on protected tunnels, and in the spoke
// emulator). Single-threaded and clock-driven: it runs on the IKE thread (control/ike/thread),
// never on the control lcore or a worker, and does no I/O of its own: datagrams come in through
// on_datagram(), everything it wants done comes out in `outputs`.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "config/topology.hpp"
#include "control/ike/events.hpp"

namespace dmvpn::ike {

namespace keylog {
class writer;
}

using clock = std::chrono::steady_clock;
using time_point = clock::time_point;

using request = std::variant<install_child, remove_child, peer_up, peer_down, initiation_failed>;

struct outputs {
    std::vector<datagram> send;
    std::vector<request> requests;
};

// What the engine needs per tunnel: the local address and the profile it protects with.
struct tunnel_binding {
    uint32_t tunnel = 0;  // slot
    uint32_t local = 0;   // the tunnel's NBMA source
    std::string profile;  // the ipsec profile's name (its `ike` section is the policy)
};

// Counters for show and metrics.
struct engine_counters {
    uint64_t rx = 0, tx = 0, retransmits = 0, duplicates_answered = 0;
    uint64_t ike_sas_up = 0, ike_sas_failed = 0, child_sas_up = 0, rekeys = 0;
    uint64_t auth_failed = 0, no_proposal = 0, invalid_syntax = 0, invalid_ke = 0;
    uint64_t ts_unacceptable = 0, cookies_sent = 0, half_open = 0, dropped = 0;
    // RFC 7383: fragments sent and received, messages reassembled, fragments whose integrity
    // check failed, and fragments dropped otherwise (not negotiated, over a bound, expired).
    uint64_t fragments_tx = 0, fragments_rx = 0, fragments_reassembled = 0;
    uint64_t fragments_invalid = 0, fragments_dropped = 0;
    // Timers: SAs whose timers ran because one came due (tick() runs no other SA).
    uint64_t sa_timer_runs = 0;
    // NAT keepalives sent (we are behind a NAT: RFC 3948 section 2.3).
    uint64_t nat_keepalives_tx = 0;
    // IKE SAs we deleted as the redundant one of two with a peer that initiated as we did.
    uint64_t duplicates_deleted = 0;
    // Our initiations still waiting for their IKE_SA_INIT answer, abandoned when the peer's own
    // IKE SA with us came up (abandon_initiations, engine.cpp).
    uint64_t initiations_abandoned = 0;
};

class engine {
public:
    // `profiles` are the topology's ipsec profiles (those with an `ike` section are used); the
    // credentials (PSKs, certificates, keys) are loaded from them here. The error names the
    // profile and the file or field at fault.
    static wire::result<std::unique_ptr<engine>, std::string> create(
        const std::vector<config::ipsec_profile>& profiles, std::vector<tunnel_binding> tunnels);
    ~engine();

    // A received IKE datagram (or NAT keepalive).
    void on_datagram(const datagram& d, time_point now, outputs& out);
    // Timers: retransmission, DPD, lifetimes, half-open expiry, cookie secret rotation.
    void tick(time_point now, outputs& out);
    // The hub installed install_child{id} in every worker: the response that completes it may
    // now leave (RFC 7296 lets the responder answer only when it can receive; part 5 of the
    // issue: the inbound SA is in the workers before the response leaves).
    void installed(uint64_t child_id, time_point now, outputs& out);
    // The hub could not install it (no memory, SPI clash): the engine deletes the CHILD_SA.
    void install_failed(uint64_t child_id, std::string why, time_point now, outputs& out);
    // Workers' counters for byte/packet lifetimes and DPD.
    void usage(const std::vector<child_usage>& u, time_point now, outputs& out);
    // Initiate an IKE SA (+ first CHILD_SA) to `peer` on `tunnel` (hub-to-hub, emulator).
    void initiate(uint32_t tunnel, uint32_t peer, time_point now, outputs& out);
    // `clear crypto sa [peer ADDR]`: DELETE sent, state dropped. 0 means every peer.
    void clear(uint32_t peer, time_point now, outputs& out);
    // Reload: new negotiations use the new profiles; established SAs are kept.
    std::optional<std::string> reconfigure(const std::vector<config::ipsec_profile>& profiles,
                                           std::vector<tunnel_binding> tunnels);

    // show crypto ikev2 sa [detail] / ipsec sa / session, text (IOS layout) or JSON.
    std::string show(std::string_view what, bool json) const;
    const engine_counters& counters() const noexcept;
    // Debugging (dmvpn-hub / dmvpn-spokesim --key-log): every IKE SA's SK_e*/SK_a* and every
    // CHILD_SA's ESP keys go to `w` as they are derived (control/ike/key_log.hpp); the engine's
    // thread writes. nullptr (the default): nothing is written.
    void set_key_log(std::shared_ptr<keylog::writer> w);

    struct impl;

private:
    explicit engine(std::unique_ptr<impl> i);
    std::unique_ptr<impl> _impl;
};

}  // namespace dmvpn::ike
