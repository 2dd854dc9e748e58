// Shared helpers of the NHRP server tests: addresses, hex, request builders and a fake clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "control/nhrp/packet.hpp"
#include "control/nhrp/server.hpp"

namespace dmvpn::nhrp::test {

// "10.0.0.1" -> 0x0a000001; test inputs are well formed.
inline uint32_t ip(std::string_view s) {
    uint32_t out = 0;
    uint32_t part = 0;
    for (char ch : s) {
        if (ch == '.') {
            out = (out << 8) | part;
            part = 0;
        } else {
            part = part * 10 + static_cast<uint32_t>(ch - '0');
        }
    }
    return (out << 8) | part;
}

inline bytes ipb(std::string_view s) {
    uint32_t a = ip(s);
    return bytes{static_cast<uint8_t>(a >> 24), static_cast<uint8_t>(a >> 16),
                 static_cast<uint8_t>(a >> 8), static_cast<uint8_t>(a)};
}

inline bytes from_hex(std::string_view h) {
    bytes out;
    auto nibble = [](char c) -> uint8_t {
        if (c >= '0' && c <= '9') {
            return static_cast<uint8_t>(c - '0');
        }
        return static_cast<uint8_t>((c | 0x20) - 'a' + 10);
    };
    for (size_t i = 0; i + 1 < h.size(); i += 2) {
        out.push_back(static_cast<uint8_t>(nibble(h[i]) << 4 | nibble(h[i + 1])));
    }
    return out;
}

inline std::string to_hex(const bytes& b) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    for (uint8_t v : b) {
        s += digits[v >> 4];
        s += digits[v & 15];
    }
    return s;
}

// A fake monotonic clock: whatever point the test says, an hour into the steady epoch.
inline timestamp at(std::chrono::milliseconds t) { return timestamp{} + std::chrono::hours(1) + t; }
inline timestamp at_s(int64_t s) { return at(std::chrono::seconds(s)); }

inline extension ext_of(uint16_t type, bool compulsory = true) {
    extension e;
    e.type = type;
    e.compulsory = compulsory;
    return e;
}

inline extension auth_ext(std::string_view key) {
    extension e = ext_of(ext::authentication);
    e.auth_spi = 1;
    e.data.assign(key.begin(), key.end());
    return e;
}

// A request as IOS 12.4 sends it (cisco-ios-exchanges.md): Responder, Fwd, Rev, Auth, End.
inline packet cisco_request(op type, uint16_t flags, uint32_t request_id, std::string_view src_nbma,
                            std::string_view src_proto, std::string_view dst_proto, uint8_t prefix,
                            uint16_t holding_time, std::string_view key) {
    packet p;
    p.hdr.type = type;
    p.hdr.hop_count = 255;
    p.flags = flags;
    p.request_id = request_id;
    p.src_nbma = ipb(src_nbma);
    p.src_proto = ipb(src_proto);
    p.dst_proto = ipb(dst_proto);
    cie c;
    c.prefix_length = prefix;
    c.mtu = 1514;
    c.holding_time = holding_time;
    p.cies.push_back(c);
    p.has_extension_area = true;
    p.extensions.push_back(ext_of(ext::responder_address));
    p.extensions.push_back(ext_of(ext::forward_transit));
    p.extensions.push_back(ext_of(ext::reverse_transit));
    if (!key.empty()) {
        p.extensions.push_back(auth_ext(key));
    }
    p.extensions.push_back(ext_of(ext::end));
    return p;
}

inline bytes wire_of(const packet& p) {
    auto b = build(p);
    return b ? *b : bytes{};
}

inline packet parsed(const bytes& b) {
    auto p = parse(b);
    return p ? *p : packet{};
}

inline const extension* find_ext(const packet& p, uint16_t type) {
    for (const auto& e : p.extensions) {
        if (e.type == type) {
            return &e;
        }
    }
    return nullptr;
}

}  // namespace dmvpn::nhrp::test
