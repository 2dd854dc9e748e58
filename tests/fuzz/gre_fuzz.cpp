// libFuzzer target for the GRE codec (dataplane/wire/gre.hpp): an accepted header re-encodes to
// the bytes it was parsed from, and the encoded header parses back to the same fields. Seeds:
// the GRE packets (IPv4 payloads) of the shipped captures.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "dataplane/wire/gre.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using namespace dmvpn::wire;
using dmvpn::fuzz::require;

namespace {

void check_accepted(std::span<const uint8_t> input, const gre_view& v, checksum_check check) {
    require(v.header_length == v.hdr.header_length());
    require(v.header_length >= gre_min_header_size && v.header_length <= gre_max_header_size);
    require(v.header_length + v.payload.size() == input.size());
    require(dmvpn::fuzz::within(v.payload, input));
    require(v.hdr.version == 0);
    require(v.hdr.reserved0 <= 0x7f);

    // parse then encode: the consumed header bytes.
    std::array<uint8_t, gre_max_header_size> hdr{};
    require(encode_gre(v.hdr, hdr) == v.header_length);
    const auto encoded = std::span<const uint8_t>(hdr).first(v.header_length);
    require(dmvpn::fuzz::same_bytes(encoded, input.first(v.header_length)));

    // encode then parse: the same header, whatever the payload.
    std::vector<uint8_t> rebuilt(encoded.begin(), encoded.end());
    rebuilt.insert(rebuilt.end(), v.payload.begin(), v.payload.end());
    auto again = parse_gre(rebuilt, check);
    require(again.has_value());
    require(again->hdr == v.hdr);
    require(dmvpn::fuzz::same_bytes(again->payload, v.payload));

    // A recomputed checksum always verifies (it may differ from the received one only by the
    // two encodings of ones'-complement zero).
    if (v.hdr.checksum_present) {
        require(fill_gre_checksum(rebuilt));
        auto filled = parse_gre(rebuilt, checksum_check::verify);
        require(filled.has_value());
        if (check == checksum_check::verify) {
            const uint16_t a = v.hdr.checksum;
            const uint16_t b = filled->hdr.checksum;
            require(a == b || (a == 0xffff && b == 0) || (a == 0 && b == 0xffff));
        }
    } else {
        require(!fill_gre_checksum(rebuilt));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::span<const uint8_t> input(data, size);
    auto strict = parse_gre(input, checksum_check::verify);
    auto loose = parse_gre(input, checksum_check::skip);
    if (strict) {
        require(loose.has_value() && loose->hdr == strict->hdr);
        check_accepted(input, *strict, checksum_check::verify);
    } else {
        require(name(strict.error()) != "unknown");
        // Only the checksum separates the two modes.
        require(strict.error() == gre_error::bad_checksum || !loose.has_value());
    }
    if (loose) {
        check_accepted(input, *loose, checksum_check::skip);
    }
    return 0;
}
