// What every libFuzzer target here shares: a property check that stops the run where it fails.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>

namespace dmvpn::fuzz {

// A violated round-trip or bounds property is a bug even where nothing crashed: trap so that
// libFuzzer saves the input.
inline void require(bool ok) {
    if (!ok) {
        __builtin_trap();
    }
}

inline bool same_bytes(std::span<const uint8_t> a, std::span<const uint8_t> b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

// True when `inner` lies entirely inside `outer`: views must never point past their input.
inline bool within(std::span<const uint8_t> inner, std::span<const uint8_t> outer) {
    if (inner.empty()) {
        return true;
    }
    return inner.data() >= outer.data() &&
           inner.data() + inner.size() <= outer.data() + outer.size();
}

}  // namespace dmvpn::fuzz
