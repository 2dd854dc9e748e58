// libFuzzer target for the IKEv2 message codec (control/ike/message.hpp): an accepted message
// builds back to a message of the same length that parses to the same model, and building that
// again gives the same bytes (the builder is canonical: reserved fields zero, Key Length first).
// Seeds: the IKE messages of the shipped captures (UDP 500, UDP 4500 after the marker).
#include <cstddef>
#include <cstdint>
#include <span>

#include "control/ike/message.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using dmvpn::fuzz::require;
namespace ike = dmvpn::ike;

namespace {

bool same_header(const ike::header& a, const ike::header& b) {
    return a.spi_i == b.spi_i && a.spi_r == b.spi_r && a.next == b.next && a.major == b.major &&
           a.minor == b.minor && a.exch == b.exch && a.flags == b.flags &&
           a.message_id == b.message_id && a.length == b.length;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::span<const uint8_t> input(data, size);
    auto m = ike::parse(input);
    if (!m) {
        require(ike::name(m.error()) != "unknown");
        return 0;
    }
    require(m->payloads.size() <= ike::max_payloads);
    require(m->hdr.length == size);

    const auto built = ike::serialize(*m);
    require(built.size() == size);
    auto again = ike::parse(built);
    require(again.has_value());
    require(same_header(again->hdr, m->hdr));
    require(again->payloads == m->payloads);
    require(ike::serialize(*again) == built);

    // The chain alone, as an SK payload's plaintext would be handed over.
    auto chain = ike::serialize_payloads(m->payloads);
    require(chain.first == m->hdr.next);
    auto payloads = ike::parse_payloads(chain.first, chain.data);
    require(payloads.has_value());
    require(*payloads == m->payloads);
    for (const auto& p : m->payloads) {
        require(!ike::name(ike::type_of(p)).empty());
    }
    return 0;
}
