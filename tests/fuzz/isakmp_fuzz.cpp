// libFuzzer target for the ISAKMP / IKEv1 codec (control/ike/isakmp.hpp). An accepted message
// builds back to a message of the same length that parses to the same model, and building that
// again gives the same bytes (the builder is canonical: reserved fields zero); an E-flag body is
// kept as it was. A refusal is named and points inside the input. The same input read as a
// decrypted payload chain (first octet: the first payload's type) consumes at most what it has
// and its payloads build back to the chain they were read from.
// Seeds: the ISAKMP messages (version 0x10) of the shipped and shared captures.
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <span>

#include "control/ike/isakmp.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using dmvpn::fuzz::require;
namespace v1 = dmvpn::ike::v1;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::span<const uint8_t> input(data, size);
    if (size > 0) {
        const auto first = static_cast<v1::payload_type>(input[0]);
        const auto chain = input.subspan(1);
        auto c = v1::parse_payloads(first, chain);
        if (c) {
            require(c->consumed <= chain.size());
            require(c->payloads.size() <= v1::max_payloads);
            const auto built = v1::serialize_payloads(c->payloads);
            require(built.data.size() == c->consumed);
            auto again = v1::parse_payloads(built.first, built.data);
            require(again.has_value());
            require(again->payloads == c->payloads);
        } else {
            require(c.error().offset <= chain.size());
            require(v1::name(c.error().reason) != "unknown");
        }
    }

    auto m = v1::parse(input);
    if (!m) {
        require(v1::name(m.error().reason) != "unknown");
        require(m.error().offset <= size);
        require(!v1::describe(m.error()).empty());
        return 0;
    }
    require(m->payloads.size() <= v1::max_payloads);
    require(m->hdr.length == size);
    require(m->hdr.encrypted() == !m->encrypted.empty());

    const auto built = v1::serialize(*m);
    require(built.size() == size);
    if (m->hdr.encrypted()) {
        require(std::equal(built.begin(), built.end(), input.begin()));
    }
    auto again = v1::parse(built);
    require(again.has_value());
    require(*again == *m);
    require(v1::serialize(*again) == built);
    for (const auto& p : m->payloads) {
        require(v1::name(v1::type_of(p)) != "");
    }
    return 0;
}
