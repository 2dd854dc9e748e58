#include "crypto/esp_wire.hpp"

#include "dataplane/wire/reader.hpp"

namespace dmvpn::crypto::esp {

std::string_view name(parse_error e) noexcept {
    switch (e) {
        case parse_error::truncated:
            return "truncated";
        case parse_error::zero_spi:
            return "zero_spi";
        case parse_error::body_too_short:
            return "body_too_short";
        case parse_error::misaligned_body:
            return "misaligned_body";
    }
    return "unknown";
}

std::string_view name(trailer_error e) noexcept {
    switch (e) {
        case trailer_error::truncated:
            return "truncated";
        case trailer_error::pad_length_too_long:
            return "pad_length_too_long";
        case trailer_error::bad_padding:
            return "bad_padding";
    }
    return "unknown";
}

wire::result<view, parse_error> parse(std::span<const uint8_t> packet, const layout& l) noexcept {
    wire::reader r(packet);
    auto spi = r.be32();
    auto seq = r.be32();
    if (!spi || !seq) {
        return wire::fail(parse_error::truncated);
    }
    if (*spi == 0) {
        return wire::fail(parse_error::zero_spi);
    }
    const auto body = r.rest();
    // Compared one term at a time so that huge layout sizes cannot wrap the sum.
    if (body.size() < trailer_size || body.size() - trailer_size < l.iv_size ||
        body.size() - trailer_size - l.iv_size < l.icv_size) {
        return wire::fail(parse_error::body_too_short);
    }
    auto iv = *r.bytes(l.iv_size);
    auto ciphertext = *r.bytes(r.remaining() - l.icv_size);
    auto icv = r.rest();
    if (l.block_size != 0) {
        const size_t align = l.block_size > 1 ? std::lcm(l.block_size, size_t{4}) : 4;
        if (ciphertext.size() % align != 0) {
            return wire::fail(parse_error::misaligned_body);
        }
    }
    return view{header{*spi, *seq}, body, iv, ciphertext, icv};
}

size_t encode_header(const header& hdr, std::span<uint8_t> out) noexcept {
    if (out.size() < header_size) {
        return 0;
    }
    wire::store_be32(out.data(), hdr.spi);
    wire::store_be32(out.data() + 4, hdr.sequence);
    return header_size;
}

wire::result<trailer, trailer_error> parse_trailer(std::span<const uint8_t> plaintext,
                                                   padding_check check) noexcept {
    // Read from the end: pad length and next header are the last two bytes.
    wire::reader r(plaintext);
    if (!r.has(trailer_size)) {
        return wire::fail(trailer_error::truncated);
    }
    const size_t end = plaintext.size() - trailer_size;
    auto before = *r.bytes(end);
    const uint8_t pad_length = *r.u8();
    const uint8_t next_header = *r.u8();
    if (pad_length > end) {
        return wire::fail(trailer_error::pad_length_too_long);
    }
    const auto padding = before.subspan(end - pad_length);
    if (check == padding_check::verify) {
        for (size_t i = 0; i < padding.size(); ++i) {
            if (padding[i] != static_cast<uint8_t>(i + 1)) {
                return wire::fail(trailer_error::bad_padding);
            }
        }
    }
    return trailer{before.first(end - pad_length), padding, pad_length, next_header};
}

size_t encode_trailer(size_t pad_length, uint8_t next_header, std::span<uint8_t> out) noexcept {
    if (pad_length > max_padding || out.size() < pad_length + trailer_size) {
        return 0;
    }
    for (size_t i = 0; i < pad_length; ++i) {
        out[i] = static_cast<uint8_t>(i + 1);
    }
    out[pad_length] = static_cast<uint8_t>(pad_length);
    out[pad_length + 1] = next_header;
    return pad_length + trailer_size;
}

}  // namespace dmvpn::crypto::esp
