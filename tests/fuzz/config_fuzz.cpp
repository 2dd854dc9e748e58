// libFuzzer target for the YAML topology loader: any bytes give a topology or errors, never a
// crash, a hang or an error without a place in the text. Seeds: config/examples/*.yaml.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/load.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using dmvpn::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    dmvpn::config::result r = dmvpn::config::load_string(text, "fuzz.yaml");
    if (r.has_value()) {
        // A loaded topology is its own fixed point for the reload diff.
        require(dmvpn::config::diff(*r, *r).empty());
        return 0;
    }
    require(!r.errors().empty());
    for (const dmvpn::config::error& e : r.errors()) {
        // Text always has a place; only unreadable files have none.
        require(e.line >= 1 && e.column >= 1 && !e.message.empty());
        require(!to_string(e).empty());
    }
    return 0;
}
