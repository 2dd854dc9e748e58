// The verifiable payload of every data packet the spokes send: who sent it to whom, its sequence
// number, and a pattern derived from them, so the receiver can tell lost, reordered and corrupt.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "dataplane/wire/result.hpp"

namespace dmvpn::spokesim {

inline constexpr uint32_t payload_magic = 0x444d5653;  // "DMVS"
inline constexpr size_t payload_header_size = 24;      // magic, src, dst, seq (8), length

struct payload_info {
    uint32_t src = 0;  // global spoke indexes
    uint32_t dst = 0;
    uint64_t seq = 0;
};

enum class payload_error : uint8_t { too_short, bad_magic, bad_length, bad_pattern };
std::string_view name(payload_error e) noexcept;

// Fills all of `out` (at least payload_header_size bytes).
void write_payload(std::span<uint8_t> out, const payload_info& info) noexcept;
wire::result<payload_info, payload_error> check_payload(std::span<const uint8_t> in) noexcept;

}  // namespace dmvpn::spokesim
