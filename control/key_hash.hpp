// A hash for the control lcore's tables keyed by addresses (tunnel or port, IPv4 address,
// prefix length), packed into 64 bits. std::hash of an integer is the identity, so a key's
// high half (a tunnel slot, a port) would never reach the buckets: this mixes every bit.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dmvpn::control {

// MurmurHash3's 64-bit finaliser.
inline size_t mix64(uint64_t x) noexcept {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return static_cast<size_t>(x);
}

}  // namespace dmvpn::control
