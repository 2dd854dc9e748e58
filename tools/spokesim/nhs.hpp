// Several NHSes per emulated spoke (`--nhs NBMA,OVERLAY`, repeatable, as IOS's `ip nhrp nhs`
// list): each spoke registers with every NHS, and sends its traffic through the first one, in
// the order given, that answers; one whose registration goes unanswered for --nhs-timeout
// seconds is passed over until it answers again (fail over, fall back).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "tools/spokesim/addr.hpp"
#include "tools/spokesim/spoke.hpp"

namespace dmvpn::spokesim {

// Whether the NHRP client `s` (one spoke, one NHS) counts as answered: registered, and no
// registration of its outstanding for `timeout_us` or more.
bool nhs_answers(const spoke& s, uint64_t now_us, uint64_t timeout_us) noexcept;

// One emulated spoke's NHRP clients of the NHSes after the first (the first is the engine's
// own spoke object), and which NHS carries its traffic.
class nhs_group {
public:
    nhs_group(const spoke_identity& id, const nhrp_settings& s, std::span<const nhs_address> extra);

    size_t size() const noexcept { return _clients.size(); }
    spoke& client(size_t j) { return _clients.at(j); }
    const spoke& client(size_t j) const { return _clients.at(j); }
    // The NHS (0: the first, the engine's spoke) whose client `ip_src` names, if one of them.
    // Decides which index carries traffic now: the first that answers (0 when none does).
    size_t choose(const spoke& first, uint64_t now_us, uint64_t timeout_us);
    size_t active() const noexcept { return _active; }
    uint64_t failovers() const noexcept { return _failovers; }
    bool any_registered(const spoke& first, uint64_t now_us) const noexcept;

private:
    std::vector<spoke> _clients;
    size_t _active = 0;
    uint64_t _failovers = 0;  // changes of the NHS carrying traffic (over and back)
};

}  // namespace dmvpn::spokesim
