// RFC 1071 Internet checksum, used by IPv4, GRE (RFC 2784) and NHRP (RFC 2332 section 5.2.0).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace dmvpn::wire {

// Adds bytes to a running 32-bit ones'-complement sum. An odd-length chunk is padded with a zero
// byte, so only the last chunk of a message may have odd length.
constexpr uint32_t checksum_add(uint32_t sum, std::span<const uint8_t> data) noexcept {
    size_t i = 0;
    for (; i + 1 < data.size(); i += 2) {
        sum += static_cast<uint32_t>((data[i] << 8) | data[i + 1]);
    }
    if (i < data.size()) {
        sum += static_cast<uint32_t>(data[i] << 8);
    }
    return sum;
}

constexpr uint16_t checksum_fold(uint32_t sum) noexcept {
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return static_cast<uint16_t>(~sum & 0xffff);
}

// The checksum to store in a zeroed checksum field; over data that already holds a correct
// checksum it yields 0.
constexpr uint16_t inet_checksum(std::span<const uint8_t> data) noexcept {
    return checksum_fold(checksum_add(0, data));
}

}  // namespace dmvpn::wire
