// libFuzzer target for the IPv4 codec (dataplane/wire/ipv4.hpp): an accepted header re-encodes
// to the bytes it was parsed from and the encoded header parses back to the same fields. Seeds:
// the IPv4 packets of the shipped captures.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "dataplane/wire/ipv4.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using namespace dmvpn::wire;
using dmvpn::fuzz::require;

namespace {

// Ones'-complement arithmetic has two zeros: a received 0xffff and a computed 0x0000 (or the
// reverse) are the same checksum.
bool same_checksum(uint16_t a, uint16_t b) {
    return a == b || (a == 0xffff && b == 0) || (a == 0 && b == 0xffff);
}

void check_accepted(std::span<const uint8_t> input, const ipv4_view& v, checksum_check check) {
    const size_t hlen = v.hdr.header_length();
    require(hlen >= ipv4_min_header_size && hlen <= ipv4_max_header_size);
    require(v.header.size() == hlen);
    require(v.options.size() == hlen - ipv4_min_header_size);
    require(v.packet.size() == v.hdr.total_length);
    require(v.payload.size() == v.hdr.total_length - hlen);
    require(v.packet.data() == input.data());
    require(dmvpn::fuzz::within(v.payload, v.packet) && dmvpn::fuzz::within(v.options, v.header));

    // parse then encode: the header bytes, checksum aside when it was not verified.
    std::array<uint8_t, ipv4_max_header_size> out{};
    require(encode_ipv4(v.hdr, v.options, out) == hlen);
    const auto encoded = std::span<const uint8_t>(out).first(hlen);
    require(dmvpn::fuzz::same_bytes(encoded.first(10), v.header.first(10)));
    require(dmvpn::fuzz::same_bytes(encoded.subspan(12), v.header.subspan(12)));
    const uint16_t computed = static_cast<uint16_t>((out[10] << 8) | out[11]);
    if (check == checksum_check::verify) {
        require(same_checksum(v.hdr.checksum, computed));
    }

    // encode then parse: the same header (with the computed checksum), the same payload.
    std::vector<uint8_t> rebuilt(encoded.begin(), encoded.end());
    rebuilt.insert(rebuilt.end(), v.payload.begin(), v.payload.end());
    auto again = parse_ipv4(rebuilt, checksum_check::verify);
    require(again.has_value());
    ipv4_header expect = v.hdr;
    expect.checksum = computed;
    require(again->hdr == expect);
    require(dmvpn::fuzz::same_bytes(again->payload, v.payload));

    // Refreshing a correct checksum changes nothing.
    require(refresh_ipv4_checksum(rebuilt));
    require(dmvpn::fuzz::same_bytes(std::span<const uint8_t>(rebuilt).first(hlen), encoded));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::span<const uint8_t> input(data, size);
    auto strict = parse_ipv4(input, checksum_check::verify);
    auto loose = parse_ipv4(input, checksum_check::skip);
    if (strict) {
        require(loose.has_value() && loose->hdr == strict->hdr);
        check_accepted(input, *strict, checksum_check::verify);
    } else {
        require(name(strict.error()) != "unknown");
        require(strict.error() == ipv4_error::bad_checksum || !loose.has_value());
    }
    if (loose) {
        check_accepted(input, *loose, checksum_check::skip);
    }
    // The address helpers on whatever text the bytes make.
    const std::string_view text(reinterpret_cast<const char*>(data), size < 32 ? size : 32);
    if (auto a = parse_ipv4_address(text)) {
        require(format_ipv4(*a) == text);
    }
    return 0;
}
