// JSON string quoting for the control plane's machine-readable answers (hub and NHRP "show").
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace dmvpn {

// A JSON string literal, with the escapes RFC 8259 section 7 requires.
inline std::string json_quote(std::string_view s) {
    std::string out = "\"";
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += ch;
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += ch;
        }
    }
    return out + "\"";
}

}  // namespace dmvpn
