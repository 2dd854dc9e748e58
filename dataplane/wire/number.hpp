// Unsigned numbers as operators write them in YAML and on command lines: decimal, or hex with
// a 0x prefix. No sign, no spaces, no overflow: anything else is nullopt.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string_view>

namespace dmvpn::wire {

inline std::optional<uint64_t> parse_uint(std::string_view s) noexcept {
    int base = 10;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s.remove_prefix(2);
    }
    if (s.empty() || s[0] == '+' || s[0] == '-') {
        return std::nullopt;
    }
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
    if (ec != std::errc{} || end != s.data() + s.size()) {
        return std::nullopt;
    }
    return v;
}

}  // namespace dmvpn::wire
