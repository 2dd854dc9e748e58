// Loading a YAML topology: either a complete, validated topology or every error found in it.
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/topology.hpp"

namespace dmvpn::config {

// One problem in a topology file. line and column count from 1; 0 means the problem has no
// place in the text (the file could not be read). key is the path to the offending value,
// e.g. "tunnels[0].nhrp.holdtime"; empty when the problem is the document itself.
struct error {
    std::string file;
    int line = 0;
    int column = 0;
    std::string key;
    std::string message;

    friend bool operator==(const error&, const error&) = default;
};

// "demo.yaml:14:7: tunnels[0].gre-key: expected an integer 0..4294967295, got "abc""
std::string to_string(const error& e);

// Something a valid topology does that a security review would flag (a legacy algorithm such
// as 3DES or HMAC-MD5-96): the file loads, and the hub and --check-config print it. Same
// fields and format as an error.
using warning = error;

class [[nodiscard]] result {
public:
    result(topology t, std::vector<warning> warnings = {})
        : _v(std::move(t)), _warnings(std::move(warnings)) {}
    result(std::vector<error> errors) : _v(std::move(errors)) {}

    bool has_value() const noexcept { return _v.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    const topology& value() const& { return std::get<0>(_v); }
    topology&& value() && { return std::get<0>(std::move(_v)); }
    const topology& operator*() const& { return value(); }
    const topology* operator->() const { return &value(); }

    // In the order they appear in the file; empty when has_value().
    const std::vector<error>& errors() const noexcept {
        static const std::vector<error> none;
        return has_value() ? none : std::get<1>(_v);
    }
    // One error a line, each formatted by to_string(error).
    std::string error_text() const;

    // In the order they appear in the file; only a loaded topology has any (a file with errors
    // reports those alone).
    const std::vector<warning>& warnings() const noexcept { return _warnings; }
    // One warning a line, each formatted by to_string(error).
    std::string warning_text() const;

private:
    std::variant<topology, std::vector<error>> _v;
    std::vector<warning> _warnings;
};

// Files above this size are refused before parsing.
inline constexpr size_t max_file_bytes = 16u << 20;

// `name` is what errors call the text (usually the file's path).
result load_string(std::string_view text, std::string_view name);
result load_file(const std::string& path);

}  // namespace dmvpn::config
