// libFuzzer target for the ESP wire format (crypto/esp_wire.hpp), header and trailer. The first
// input byte picks the SA layout (none, AES-GCM, AES-CBC + SHA-256, 3DES + SHA-1, AES-CBC +
// SHA-1); the rest is an ESP packet, and is also read as a decrypted plaintext for the trailer.
// Seeds: the ESP packets of the shipped captures, once per layout.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "crypto/esp_wire.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace esp = dmvpn::crypto::esp;
using dmvpn::fuzz::require;

namespace {

constexpr std::array<esp::layout, 5> layouts = {
    esp::layout{0, 0, 0},  esp::layout{8, 16, 1},   esp::layout{16, 16, 16},
    esp::layout{8, 12, 8}, esp::layout{16, 12, 16},
};

void check_packet(std::span<const uint8_t> input, const esp::layout& l) {
    auto v = esp::parse(input, l);
    if (!v) {
        require(esp::name(v.error()) != "unknown");
        return;
    }
    require(v->hdr.spi != 0);
    require(v->body.size() + esp::header_size == input.size());
    require(v->body.data() == input.data() + esp::header_size || v->body.empty());
    require(v->iv.size() == l.iv_size && v->icv.size() == l.icv_size);
    require(v->iv.size() + v->ciphertext.size() + v->icv.size() == v->body.size());
    require(v->ciphertext.size() >= esp::trailer_size);
    require(dmvpn::fuzz::within(v->iv, v->body) && dmvpn::fuzz::within(v->ciphertext, v->body) &&
            dmvpn::fuzz::within(v->icv, v->body));
    if (l.block_size != 0) {
        require(v->ciphertext.size() % 4 == 0);
        require(l.block_size <= 1 || v->ciphertext.size() % l.block_size == 0);
    }

    // parse then encode: the consumed header bytes; encode then parse: the same header.
    std::vector<uint8_t> rebuilt(esp::header_size);
    require(esp::encode_header(v->hdr, rebuilt) == esp::header_size);
    require(dmvpn::fuzz::same_bytes(rebuilt, input.first(esp::header_size)));
    rebuilt.insert(rebuilt.end(), v->body.begin(), v->body.end());
    auto again = esp::parse(rebuilt, l);
    require(again.has_value());
    require(again->hdr == v->hdr);
    require(dmvpn::fuzz::same_bytes(again->ciphertext, v->ciphertext));
}

void check_trailer(std::span<const uint8_t> plaintext) {
    auto loose = esp::parse_trailer(plaintext, esp::padding_check::skip);
    auto strict = esp::parse_trailer(plaintext, esp::padding_check::verify);
    if (!strict) {
        require(esp::name(strict.error()) != "unknown");
        require(strict.error() == esp::trailer_error::bad_padding || !loose.has_value());
    }
    if (!loose) {
        return;
    }
    const esp::trailer& t = *loose;
    require(t.padding.size() == t.pad_length);
    require(t.payload.size() + t.padding.size() + esp::trailer_size == plaintext.size());
    require(t.payload.data() == plaintext.data() || t.payload.empty());

    // encode then parse: the same trailer; parse then encode: the same bytes when the padding
    // was the default one (the only padding encode writes).
    std::vector<uint8_t> rebuilt(t.payload.begin(), t.payload.end());
    rebuilt.resize(t.payload.size() + t.pad_length + esp::trailer_size);
    require(esp::encode_trailer(t.pad_length, t.next_header,
                                std::span(rebuilt).subspan(t.payload.size())) ==
            size_t{t.pad_length} + esp::trailer_size);
    if (strict) {
        require(dmvpn::fuzz::same_bytes(rebuilt, plaintext));
    }
    auto again = esp::parse_trailer(rebuilt, esp::padding_check::verify);
    require(again.has_value());
    require(again->pad_length == t.pad_length && again->next_header == t.next_header);
    require(dmvpn::fuzz::same_bytes(again->payload, t.payload));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) {
        return 0;
    }
    const std::span<const uint8_t> rest(data + 1, size - 1);
    const esp::layout& l = layouts[data[0] % layouts.size()];
    check_packet(rest, l);
    check_trailer(rest);

    // padding_for: the least padding that fills whole blocks and 4-byte words.
    const size_t block = l.block_size;
    const size_t align = block > 1 ? std::lcm(block, size_t{4}) : 4;
    const size_t pad = esp::padding_for(rest.size(), block);
    require((rest.size() + pad + esp::trailer_size) % align == 0 && pad < align);
    return 0;
}
