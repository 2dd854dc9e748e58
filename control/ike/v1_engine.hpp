// The IKEv1 engine (RFC 2409 with the IPsec DOI, RFC 2407): the responder for spokes keyed the
// classic Cisco DMVPN way (`crypto isakmp policy`, a wildcard pre-shared key, a transform set).
// Main Mode with pre-shared keys or RSA signatures, Quick Mode (PFS, transport mode, GRE between
// the two NBMA addresses), Informational DELETE and DPD (RFC 3706). Like the IKEv2 engine it
// is single-threaded and clock-driven, runs on the IKE thread, does no I/O, and hands the hub
// the same events (install_child, remove_child, peer_up, peer_down). Its SA and CHILD_SA ids
// start at id_base, so the hub's acks find their engine (v1_dispatch.hpp).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "control/ike/engine.hpp"

namespace dmvpn::ike::v1 {

struct engine_counters {
    uint64_t rx = 0, tx = 0, duplicates_answered = 0, dropped = 0;
    uint64_t phase1_up = 0, phase1_failed = 0, quick_modes = 0;
    uint64_t auth_failed = 0, no_proposal = 0, invalid_syntax = 0, invalid_id = 0;
    uint64_t aggressive_refused = 0, exchange_refused = 0, half_open = 0;
    uint64_t deletes_rx = 0, dpd_answered = 0, notifies_tx = 0, nat_keepalives_tx = 0;
    // The initiator and DPD (v1_initiator.cpp).
    uint64_t initiated = 0, retransmits = 0, dpd_sent = 0, dpd_acked = 0, dead_peers = 0;
    // Timers: ISAKMP SAs and IPsec SA pairs whose timers ran because one came due (tick() runs
    // no other).
    uint64_t timer_runs = 0;
    // ISAKMP SAs we deleted as the redundant one of two with a peer that initiated as we did
    // (drop_duplicate, v1_main_mode.cpp).
    uint64_t duplicates_deleted = 0;
    // Our Main Modes still waiting for MM2, abandoned when the peer's own ISAKMP SA with us came
    // up (established, v1_main_mode.cpp).
    uint64_t initiations_abandoned = 0;
};

class engine {
public:
    // Ids of this engine's IKE SAs and CHILD_SAs are at least this (IKEv2's count from 1).
    static constexpr uint64_t id_base = uint64_t{1} << 48;
    static bool owns(uint64_t id) noexcept { return id >= id_base; }

    // Uses the profiles whose `ike.version` is 1 or any; their PSKs are copied here.
    static wire::result<std::unique_ptr<engine>, std::string> create(
        const std::vector<config::ipsec_profile>& profiles, std::vector<tunnel_binding> tunnels);
    ~engine();

    // An ISAKMP datagram (major version 1).
    void on_datagram(const datagram& d, time_point now, outputs& out);
    // Half-open expiry, Phase 1 and Phase 2 lifetimes, retransmissions, DPD, our rekeys, NAT
    // keepalives (RFC 3948 section 2.3: one 0xff octet every `nat-keepalive` seconds to each peer
    // of an SA with a NAT between).
    void tick(time_point now, outputs& out);
    // The workers' counters of this engine's pairs (others ignored): a pair whose kilobyte
    // lifetime is spent is deleted (DELETE sent, remove_child), as at its time lifetime.
    void usage(const std::vector<child_usage>& u, time_point now, outputs& out);
    // Main Mode then Quick Mode to `peer` from the tunnel's NBMA address (hub-to-hub, the spoke
    // emulator); nothing if an ISAKMP SA with the peer exists or is under way.
    void initiate(uint32_t tunnel, uint32_t peer, time_point now, outputs& out);
    // The hub installed the pair: the Quick Mode response waiting for it leaves.
    void installed(uint64_t child_id, time_point now, outputs& out);
    void install_failed(uint64_t child_id, std::string why, time_point now, outputs& out);
    // `clear crypto sa [peer]`: DELETE sent for the ISAKMP SA and its IPsec SAs, state dropped.
    void clear(uint32_t peer, time_point now, outputs& out);
    std::optional<std::string> reconfigure(const std::vector<config::ipsec_profile>& profiles,
                                           std::vector<tunnel_binding> tunnels);

    // "isakmp sa" (IOS: dst src state conn-id status), "isakmp sa detail" (IOS: C-id Local
    // Remote I-VRF Status Encr Hash Auth DH Lifetime Cap.), "ipsec sa", "session"; text or
    // JSON (both isakmp views: the same rows).
    std::string show(std::string_view what, bool json) const;
    const engine_counters& counters() const noexcept;
    // Debugging (--key-log): every IPsec SA pair's ESP keys go to `w` (Wireshark's esp_sa rows,
    // control/ike/key_log.hpp) when it is handed to the hub. nullptr: nothing is written.
    void set_key_log(std::shared_ptr<keylog::writer> w);
    // Tests: the per-peer indexes (ISAKMP SAs and pairs by peer and tunnel, inbound SPIs of the
    // pairs and of our pending Quick Modes) against a walk of every SA and pair: "" when they
    // agree, else the first difference.
    std::string index_errors() const;

    struct impl;

private:
    explicit engine(std::unique_ptr<impl> i);
    std::unique_ptr<impl> _impl;
};

// "isakmp sa" / "isakmp sa detail" where no IKEv1 engine runs: the headers, no rows.
std::string show_no_isakmp(std::string_view what, bool json);

}  // namespace dmvpn::ike::v1
