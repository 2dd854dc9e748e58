// One emulated spoke's NHRP client: registration and refresh, reply checks, Traffic Indication ->
// Resolution Request -> shortcut, answering forwarded Resolution Requests, purges. No DPDK, no
// framing: NHRP packets in, NHRP packets (with the NBMA address to send them to) out.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control/nhrp/packet.hpp"
#include "tools/spokesim/addr.hpp"
#include "tools/spokesim/options.hpp"
#include "tools/spokesim/topology.hpp"

namespace dmvpn::spokesim {

struct nhrp_settings {
    nhrp_style style = nhrp_style::cisco;
    bool unique = true;
    bool nat_extension = true;
    bool shortcuts = true;
    uint16_t holdtime = 7200;
    uint16_t refresh = 2400;  // seconds between registrations once registered
    uint16_t mtu = 1514;
    uint8_t cie_prefix = 255;  // of the registration CIE
    std::string auth;
    ipv4 hub_nbma = 0;
    ipv4 hub_overlay = 0;

    static nhrp_settings from(const options& o, const topology& t);
};

struct outgoing {
    ipv4 nbma_dst = 0;  // the hub, or a peer spoke for a direct reply
    nhrp::packet pkt;
};

// Why a reply was not taken; `accepted` when it was.
enum class verdict : uint8_t {
    accepted,
    wrong_type,
    no_request_outstanding,
    request_id_mismatch,
    source_mismatch,  // the mandatory part does not name this spoke
    hub_mismatch,     // destination / responder is not the configured hub
    auth_mismatch,    // missing or different authentication extension
    no_cie,
    rejected,            // CIE code not 0 (the hub refused the binding)
    bad_cie,             // client address missing or prefix not covering the target
    not_for_this_spoke,  // a request for an address this spoke does not own
    shortcuts_disabled,
    already_resolved,
    bad_traffic_indication,  // no IPv4 header of ours in the triggering packet bytes
};
std::string_view name(verdict v) noexcept;

struct shortcut {
    prefix dst;
    ipv4 nbma = 0;
    ipv4 overlay = 0;
    uint64_t expires_us = 0;
};

struct nhrp_counters {
    uint64_t registrations_sent = 0;
    uint64_t registration_retransmits = 0;
    uint64_t registration_replies = 0;  // accepted
    uint64_t registration_rejects = 0;  // replies that failed a check
    uint64_t traffic_indications = 0;
    uint64_t resolution_requests_sent = 0;
    uint64_t resolution_replies = 0;  // accepted
    uint64_t resolution_rejects = 0;
    uint64_t shortcuts_installed = 0;
    uint64_t resolution_requests_answered = 0;
    uint64_t purges_received = 0;
    uint64_t purge_replies_sent = 0;
    uint64_t error_indications = 0;
    uint64_t auth_failures = 0;
    uint64_t ignored = 0;  // other types, or requests not for us
};

// Packet builders, exposed for the tests and for captures.
nhrp::packet build_registration_request(const spoke_identity& id, const nhrp_settings& s,
                                        uint32_t request_id, bool hub_confirmed);
nhrp::packet build_resolution_request(const spoke_identity& id, const nhrp_settings& s, ipv4 target,
                                      uint32_t request_id);
nhrp::bytes to_bytes(ipv4 a);
std::optional<ipv4> from_bytes(const nhrp::bytes& b);

class spoke {
public:
    spoke(spoke_identity id, nhrp_settings s);

    const spoke_identity& id() const noexcept { return _id; }
    const nhrp_counters& counters() const noexcept { return _c; }
    bool registered(uint64_t now_us) const noexcept;
    bool ever_registered() const noexcept { return _ever_registered; }
    verdict last_reject() const noexcept { return _last_reject; }
    // Microseconds from the first transmission of the latest accepted registration to its
    // reply (retransmissions included: what the spoke waited); 0 before the first.
    uint64_t last_registration_rtt_us() const noexcept { return _last_registration_rtt_us; }
    const std::vector<shortcut>& shortcuts() const noexcept { return _shortcuts; }
    // When the registration now unanswered was first sent; 0 when none is outstanding.
    uint64_t outstanding_since_us() const noexcept {
        return _registration_id != 0 ? _registration_first_sent_us : 0;
    }

    // The first registration goes out at `at_us` (the ramp spreads spokes over time).
    void start(uint64_t at_us) noexcept { _next_registration_us = at_us; }
    // When poll() next has something to send.
    uint64_t next_due_us() const noexcept { return _next_registration_us; }
    // A registration when one is due: the first, a retransmission (same request ID, backing off
    // 1, 2, 4 .. 32 s) or a refresh (new request ID every `refresh` seconds).
    std::optional<outgoing> poll(uint64_t now_us);

    // Once registered, never renew: a spoke that went away, whose binding runs out at the hub.
    void stop_refreshing() noexcept { _refresh = false; }
    // The underlay address changed: register from `nbma` now, with a new request ID.
    void move_to(ipv4 nbma, uint64_t now_us) noexcept;

    // Any NHRP packet addressed to this spoke. Returns what to send back, if anything.
    std::optional<outgoing> handle(const nhrp::packet& p, uint64_t now_us);

    verdict on_registration_reply(const nhrp::packet& p, uint64_t now_us);
    // A Resolution Request for the Traffic Indication's destination, unless one is pending or a
    // shortcut already covers it.
    std::optional<outgoing> on_traffic_indication(const nhrp::packet& p, uint64_t now_us);
    // A Resolution Request for `dst` to the hub (none while a shortcut or a recent request
    // covers it): what a Traffic Indication asks for, or a Phase 2 spoke's own resolution.
    std::optional<outgoing> resolve(ipv4 dst, uint64_t now_us);
    verdict on_resolution_reply(const nhrp::packet& p, uint64_t now_us);
    // Answers a request for one of this spoke's addresses directly to the requester's NBMA
    // address, with this spoke's own CIE and Responder Address.
    std::optional<outgoing> on_resolution_request(const nhrp::packet& p, uint64_t now_us);
    std::optional<outgoing> on_purge_request(const nhrp::packet& p, uint64_t now_us);

    // The live shortcut whose prefix holds `dst`, if any.
    const shortcut* find_shortcut(ipv4 dst, uint64_t now_us) const noexcept;
    bool owns(ipv4 a) const noexcept { return a == _id.overlay || _id.lan.contains(a); }

private:
    struct pending_resolution {
        ipv4 target = 0;
        uint32_t request_id = 0;
        uint64_t sent_us = 0;
    };

    bool auth_ok(const nhrp::packet& p) const;
    void reject(verdict v) noexcept { _last_reject = v; }
    std::vector<nhrp::extension> reply_extensions(const nhrp::packet& request) const;

    spoke_identity _id;
    nhrp_settings _s;
    nhrp_counters _c;
    uint32_t _next_request_id = 1;

    uint32_t _registration_id = 0;  // of the outstanding registration; 0 when none
    uint64_t _next_registration_us = UINT64_MAX;
    uint64_t _retransmit_s = 1;
    uint64_t _registration_first_sent_us = 0;  // of the outstanding registration
    uint64_t _last_registration_rtt_us = 0;
    uint64_t _registered_until_us = 0;
    bool _ever_registered = false;
    bool _hub_confirmed = false;
    bool _refresh = true;  // an accepted reply named the hub (FRR then names it in NAT)

    std::vector<pending_resolution> _pending;
    std::vector<shortcut> _shortcuts;
    verdict _last_reject = verdict::accepted;
};

}  // namespace dmvpn::spokesim
