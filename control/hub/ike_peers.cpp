// Hub to hub IKE: whom the hub initiates to, and when (see ike_peers.hpp).
#include "control/hub/ike_peers.hpp"

#include <algorithm>

namespace dmvpn::hub {

std::vector<ike_peers::target> ike_peers::targets_of(const config::topology& t,
                                                     const tunnel_slots& s) {
    std::vector<target> out;
    for (const config::tunnel& tun : t.tunnels) {
        const config::ipsec_profile* p =
            tun.ipsec_profile.empty() ? nullptr : t.find_ipsec_profile(tun.ipsec_profile);
        auto slot = s.slot(tun.name);
        if (p == nullptr || !p->ike || !p->ike->initiate || !slot) {
            continue;
        }
        auto add = [&](const config::nhrp_mapping& m) {
            target x{*slot, m.nbma.value};
            if (x.peer == 0 || x.peer == tun.nbma_source.value ||
                std::find(out.begin(), out.end(), x) != out.end()) {
                return;
            }
            out.push_back(x);
        };
        std::for_each(tun.nhrp.nhs.begin(), tun.nhrp.nhs.end(), add);
        std::for_each(tun.nhrp.maps.begin(), tun.nhrp.maps.end(), add);
    }
    return out;
}

void ike_peers::configure(const std::vector<target>& targets, time_point now) {
    std::map<target, state> next;
    for (const target& t : targets) {
        auto old = _peers.find(t);
        if (old != _peers.end()) {
            next.emplace(t, old->second);
        } else {
            state s;
            s.next = now;
            next.emplace(t, s);
        }
    }
    _peers = std::move(next);
}

void ike_peers::up(uint32_t tunnel, uint32_t peer) {
    auto it = _peers.find(target{tunnel, peer});
    if (it != _peers.end()) {
        it->second.up = true;
        it->second.failed = false;
        it->second.backoff = first_retry;
    }
}

void ike_peers::down(uint32_t tunnel, uint32_t peer, time_point now, std::string why) {
    auto it = _peers.find(target{tunnel, peer});
    if (it != _peers.end()) {
        it->second.up = false;
        it->second.failed = false;
        it->second.next = now;
        it->second.backoff = first_retry;
        ++it->second.downs;
        it->second.last_error = std::move(why);
    }
}

void ike_peers::failed(uint32_t tunnel, uint32_t peer, std::string why) {
    auto it = _peers.find(target{tunnel, peer});
    if (it != _peers.end() && !it->second.up) {
        it->second.failed = true;
        ++it->second.failures;
        it->second.last_error = std::move(why);
    }
}

std::string_view ike_peers::name(phase p) noexcept {
    switch (p) {
        case phase::up:
            return "up";
        case phase::backing_off:
            return "backing-off";
        case phase::connecting:
            break;
    }
    return "connecting";
}

std::vector<ike_peers::target> ike_peers::due(time_point now) {
    std::vector<target> out;
    for (auto& [t, s] : _peers) {
        if (s.up || now < s.next) {
            continue;
        }
        out.push_back(t);
        ++s.initiations;
        s.failed = false;
        s.next = now + s.backoff;
        s.backoff = std::min(s.backoff * 2, std::chrono::seconds(max_retry));
    }
    return out;
}

std::vector<ike_peers::view> ike_peers::peers() const {
    std::vector<view> out;
    out.reserve(_peers.size());
    for (const auto& [t, s] : _peers) {
        phase p = s.up ? phase::up : s.failed ? phase::backing_off : phase::connecting;
        out.push_back(view{t, s.up, s.initiations, s.downs, s.failures, p, s.next, s.last_error});
    }
    return out;
}

}  // namespace dmvpn::hub
