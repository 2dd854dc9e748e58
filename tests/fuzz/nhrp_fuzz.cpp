// libFuzzer target for the NHRP codec (control/nhrp/packet.hpp): an accepted packet builds back
// to the bytes it was parsed from, and parses back to the same model. Seeds: the NHRP payloads
// of the shipped captures.
#include <cstddef>
#include <cstdint>
#include <span>

#include "control/nhrp/packet.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using dmvpn::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::span<const uint8_t> input(data, size);
    auto p = dmvpn::nhrp::parse(input);
    if (!p) {
        require(!dmvpn::nhrp::name(p.error()).empty());
        return 0;
    }
    // parse reads packet_size bytes and ignores what follows (link padding).
    require(p->hdr.packet_size <= size);
    const auto consumed = input.first(p->hdr.packet_size);

    auto b = dmvpn::nhrp::build(*p);
    require(b.has_value());
    require(dmvpn::fuzz::same_bytes(*b, consumed));

    auto again = dmvpn::nhrp::parse(*b);
    require(again.has_value());
    require(*again == *p);

    // The helpers the server uses on accepted packets stay inside the packet.
    for (size_t i = 0; i < p->extensions.size(); ++i) {
        require(dmvpn::nhrp::extension_wire_offset(*p, i) < p->hdr.packet_size);
    }
    if (auto u = dmvpn::nhrp::first_unknown_compulsory(*p)) {
        require(*u < p->extensions.size());
        require(!dmvpn::nhrp::known_extension(p->extensions[*u].type));
    }
    return 0;
}
