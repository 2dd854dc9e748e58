// The hub's multicast replication list: per tunnel, NBMA -> the overlay addresses bound there
// with the multicast flag (whose adjacencies carry the copies) and whether multicast.static
// names it. Kept up to date as bindings come, go and move and as the configuration reloads, so
// replicating a packet costs O(targets), never a walk of the NHRP cache.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

namespace dmvpn::hub {

class multicast_targets {
public:
    using key = std::pair<uint16_t, uint32_t>;  // tunnel slot, NBMA
    struct target {
        std::vector<uint32_t> overlays;  // bound at this NBMA with the multicast flag
        bool configured = false;         // multicast.static
    };

    void add(uint16_t slot, uint32_t nbma, uint32_t overlay) {
        auto& o = _targets[{slot, nbma}].overlays;
        if (std::find(o.begin(), o.end(), overlay) == o.end()) {
            o.push_back(overlay);
        }
    }

    void remove(uint16_t slot, uint32_t nbma, uint32_t overlay) {
        auto it = _targets.find({slot, nbma});
        if (it == _targets.end()) {
            return;
        }
        std::erase(it->second.overlays, overlay);
        if (it->second.overlays.empty() && !it->second.configured) {
            _targets.erase(it);
        }
    }

    // The NBMA addresses multicast.static names, all tunnels, replacing the previous ones.
    void set_configured(const std::vector<key>& configured) {
        for (auto it = _targets.begin(); it != _targets.end();) {
            it->second.configured = false;
            it = it->second.overlays.empty() ? _targets.erase(it) : std::next(it);
        }
        for (const key& k : configured) {
            _targets[k].configured = true;
        }
    }

    // Calls f(slot, nbma, target) for up to `limit` targets after `after` (from the first when
    // empty), in (slot, NBMA) order, moving `after` on. Returns whether targets remain: a
    // replication resumes where it stopped even if the list changed in between.
    template <typename F>
    bool visit(std::optional<key>& after, size_t limit, F&& f) const {
        auto it = after ? _targets.upper_bound(*after) : _targets.begin();
        for (size_t n = 0; it != _targets.end() && n < limit; ++it, ++n) {
            f(it->first.first, it->first.second, it->second);
            after = it->first;
        }
        return it != _targets.end();
    }

    const target* find(uint16_t slot, uint32_t nbma) const {
        auto it = _targets.find({slot, nbma});
        return it == _targets.end() ? nullptr : &it->second;
    }
    size_t size() const noexcept { return _targets.size(); }

private:
    std::map<key, target> _targets;
};

}  // namespace dmvpn::hub
