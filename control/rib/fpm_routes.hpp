// zebra's routes (the FPM server's batches) into the RIB (control/rib): the protocol and its
// IOS distance from rtm_protocol, the gateway as a next hop on one of the hub's tunnels, LAN
// ports or underlay ports that allow transit. Control lcore only; the hub drains the server and
// commits after each batch, so the FIB never holds half a batch.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string_view>
#include <vector>

#include "control/fpm/server.hpp"
#include "control/rib/rib.hpp"

namespace dmvpn::rib {

// The RIB's protocol for zebra's rtm_protocol, or none: not taken. zebra's connected routes
// (RTPROT_KERNEL) describe the host's kernel interfaces, not the hub's ports, whose subnets
// the hub installs itself from the topology. RTPROT_BGP does not tell eBGP from iBGP: taken as
// eBGP (20). Both distances lie between the hub's static routes (1) and NHRP's (250), so the
// choice changes which source wins against nothing the hub holds, only what show ip route says.
std::optional<protocol> fpm_protocol(uint8_t rtm_protocol) noexcept;

// Why an FPM route was not installed.
enum class fpm_refusal_reason : uint8_t {
    unresolved,        // no gateway on a hub tunnel, LAN port or underlay port
    underlay_transit,  // the gateway is on an underlay port that drops transit
    rib_full,          // the RIB held limits::max_routes candidates
};
std::string_view name(fpm_refusal_reason r) noexcept;

// Where the hub's interfaces are: a gateway inside a tunnel's overlay prefix is a tunnel next
// hop (NHRP resolves it), one on a LAN port's subnet a LAN next hop (ARP resolves it), one on
// an underlay port's subnet a next hop on that port like a LAN's when the port allows transit,
// else refused (its return traffic would be dropped as underlay_transit).
struct fpm_interfaces {
    struct tunnel {
        uint16_t slot = 0;
        uint32_t network = 0;  // host byte order
        uint8_t length = 0;
    };
    struct lan {
        uint16_t port = 0;  // DPDK port id
        uint32_t network = 0;
        uint8_t length = 0;
    };
    struct underlay {
        uint16_t port = 0;  // DPDK port id
        uint32_t network = 0;
        uint8_t length = 0;
        bool allow_transit = false;
    };
    std::vector<tunnel> tunnels;
    std::vector<lan> lans;
    std::vector<underlay> underlays;

    // What `gateway` names: a next hop, or why not (and the underlay port that refused it).
    struct resolution {
        std::optional<nh_key> nh;
        fpm_refusal_reason why = fpm_refusal_reason::unresolved;
        uint16_t port = 0;  // why == underlay_transit: the port
    };
    resolution resolve(uint32_t gateway) const noexcept;
};

struct fpm_counters {
    uint64_t batches = 0;
    uint64_t installed = 0;          // candidates offered to the RIB
    uint64_t withdrawn = 0;          // withdrawals applied
    uint64_t ignored_connected = 0;  // zebra's connected (kernel) routes, not taken
    uint64_t unresolved = 0;         // no gateway on a hub tunnel, LAN or underlay port
    uint64_t underlay_refused = 0;   // gateway on an underlay port without allow-transit
    uint64_t refused = 0;            // the RIB was full
};

// FPM routes not installed, by prefix, for show ip route: each refusal recorded until zebra
// withdraws the prefix or sends one that is installed. Bounded: past `max` prefixes a refusal
// is counted (`unlisted`) but not recorded.
struct fpm_refusal {
    protocol proto = protocol::none;
    fpm_refusal_reason why = fpm_refusal_reason::unresolved;
    uint32_t gateway = 0;  // the first gateway zebra named (0: none)
    uint16_t port = 0;     // underlay_transit: the underlay port
};
class fpm_refusals {
public:
    static constexpr size_t default_max = 4096;
    explicit fpm_refusals(size_t max = default_max) : _max(max) {}

    void note(const prefix_key& k, const fpm_refusal& r);
    void forget(const prefix_key& k) { _by_prefix.erase(k); }
    const std::map<prefix_key, fpm_refusal>& entries() const noexcept { return _by_prefix; }
    uint64_t unlisted() const noexcept { return _unlisted; }

private:
    size_t _max;
    std::map<prefix_key, fpm_refusal> _by_prefix;
    uint64_t _unlisted = 0;
};

// Applies one batch to the RIB (staged; the caller commits). An update that can no longer be
// installed (unresolved, an underlay port without transit, the RIB full) withdraws what zebra
// had installed for that prefix before; with `refused`, the refusal is recorded there.
void apply_fpm_batch(rib& r, const fpm::server::batch& b, const fpm_interfaces& ifs,
                     fpm_counters& c, fpm_refusals* refused = nullptr);

}  // namespace dmvpn::rib
