#include "tools/spokesim/nhs.hpp"

namespace dmvpn::spokesim {

std::optional<nhs_address> parse_nhs(std::string_view s) {
    size_t comma = s.find(',');
    if (comma == std::string_view::npos) {
        return std::nullopt;
    }
    auto nbma = parse_ipv4(s.substr(0, comma));
    auto overlay = parse_ipv4(s.substr(comma + 1));
    if (!nbma || !overlay || *nbma == 0 || *overlay == 0) {
        return std::nullopt;
    }
    return nhs_address{*nbma, *overlay};
}

bool nhs_answers(const spoke& s, uint64_t now_us, uint64_t timeout_us) noexcept {
    uint64_t since = s.outstanding_since_us();
    return s.registered(now_us) && (since == 0 || now_us < since + timeout_us);
}

nhs_group::nhs_group(const spoke_identity& id, const nhrp_settings& s,
                     std::span<const nhs_address> extra) {
    _clients.reserve(extra.size());
    for (const nhs_address& a : extra) {
        nhrp_settings mine = s;
        mine.hub_nbma = a.nbma;
        mine.hub_overlay = a.overlay;
        _clients.emplace_back(id, mine);
    }
}

size_t nhs_group::choose(const spoke& first, uint64_t now_us, uint64_t timeout_us) {
    size_t pick = 0;
    if (!nhs_answers(first, now_us, timeout_us)) {
        for (size_t j = 0; j < _clients.size(); ++j) {
            if (nhs_answers(_clients[j], now_us, timeout_us)) {
                pick = j + 1;
                break;
            }
        }
    }
    if (pick != _active) {
        ++_failovers;
        _active = pick;
    }
    return pick;
}

bool nhs_group::any_registered(const spoke& first, uint64_t now_us) const noexcept {
    if (first.registered(now_us)) {
        return true;
    }
    for (const spoke& c : _clients) {
        if (c.registered(now_us)) {
            return true;
        }
    }
    return false;
}

}  // namespace dmvpn::spokesim
