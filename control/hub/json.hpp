// A few helpers for the hub's JSON answers (show interfaces, show stats): quoting and joining.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "control/json.hpp"

namespace dmvpn::hub {

// Kept as hub::json_quote: the hub's code and tests spell it that way.
using dmvpn::json_quote;

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
