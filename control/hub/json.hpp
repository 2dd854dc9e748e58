// A few helpers for the hub's JSON answers (show interfaces, show stats): quoting and joining.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace dmvpn::hub {

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

// Builds {"a":1,"b":"x"} member by member.
class json_members {
public:
    json_members& raw(std::string_view key, std::string_view value) {
        _out += _out.empty() ? "{" : ",";
        _out += json_quote(key);
        _out += ':';
        _out += value;
        return *this;
    }
    json_members& str(std::string_view key, std::string_view value) {
        return raw(key, json_quote(value));
    }
    json_members& num(std::string_view key, uint64_t value) {
        return raw(key, std::to_string(value));
    }
    json_members& boolean(std::string_view key, bool value) {
        return raw(key, value ? "true" : "false");
    }
    std::string done() const { return _out.empty() ? "{}" : _out + "}"; }

private:
    std::string _out;
};

}  // namespace dmvpn::hub
