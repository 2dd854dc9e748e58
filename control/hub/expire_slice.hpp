// Idle expiry of a large ordered map in slices: each call visits at most `budget` entries,
// resuming at the key where the last one stopped, so no single call walks the whole map.
#pragma once

#include <cstddef>
#include <optional>

namespace dmvpn::hub {

// Visits up to `budget` entries of `m` from `resume` (the first key not below it; the start
// when none), erasing each whose value `expired` says is, after `gone(value)`. Returns where
// the next slice starts: none once the end was reached (the next slice starts over).
template <class Map, class Expired, class Gone>
std::optional<typename Map::key_type> expire_slice(
    Map& m, const std::optional<typename Map::key_type>& resume, size_t budget, Expired expired,
    Gone gone) {
    auto it = resume ? m.lower_bound(*resume) : m.begin();
    for (; it != m.end() && budget > 0; --budget) {
        if (!expired(it->second)) {
            ++it;
            continue;
        }
        gone(it->second);
        it = m.erase(it);
    }
    if (it == m.end()) {
        return std::nullopt;
    }
    return it->first;
}

}  // namespace dmvpn::hub
