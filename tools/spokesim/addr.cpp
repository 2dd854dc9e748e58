#include "tools/spokesim/addr.hpp"

#include <charconv>

#include <fmt/format.h>

#include "dataplane/wire/ipv4.hpp"

namespace dmvpn::spokesim {

std::optional<ipv4> parse_ipv4(std::string_view s) {
    // The hub's strict parser: an octet with a leading zero is refused, as in the hub's config.
    return wire::parse_ipv4_address(s);
}

std::optional<prefix> parse_prefix(std::string_view s) {
    size_t slash = s.find('/');
    if (slash == std::string_view::npos) {
        return std::nullopt;
    }
    auto a = parse_ipv4(s.substr(0, slash));
    std::string_view len_s = s.substr(slash + 1);
    unsigned len = 0;
    auto [end, ec] = std::from_chars(len_s.data(), len_s.data() + len_s.size(), len);
    if (!a || len_s.empty() || ec != std::errc{} || end != len_s.data() + len_s.size() ||
        len > 32) {
        return std::nullopt;
    }
    prefix p{*a, static_cast<uint8_t>(len)};
    if ((*a & ~p.mask()) != 0) {
        return std::nullopt;
    }
    return p;
}

std::optional<mac> parse_mac(std::string_view s) {
    mac m{};
    if (s.size() != 17) {
        return std::nullopt;
    }
    for (size_t i = 0; i < 6; ++i) {
        std::string_view part = s.substr(i * 3, 2);
        if (i < 5 && s[i * 3 + 2] != ':' && s[i * 3 + 2] != '-') {
            return std::nullopt;
        }
        unsigned v = 0;
        auto [end, ec] = std::from_chars(part.data(), part.data() + 2, v, 16);
        if (ec != std::errc{} || end != part.data() + 2) {
            return std::nullopt;
        }
        m[i] = static_cast<uint8_t>(v);
    }
    return m;
}

std::string to_string(ipv4 a) { return wire::format_ipv4(a); }

std::string to_string(const prefix& p) {
    return fmt::format("{}/{}", to_string(p.network), p.length);
}

std::string to_string(const mac& m) {
    return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4],
                       m[5]);
}

}  // namespace dmvpn::spokesim
