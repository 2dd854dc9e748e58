// ESP wire format (RFC 4303): the 8-byte header, the body split and the trailer after decryption.
#pragma once

#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <string_view>

#include "dataplane/wire/result.hpp"

namespace dmvpn::crypto::esp {

inline constexpr size_t header_size = 8;   // SPI + sequence number
inline constexpr size_t trailer_size = 2;  // pad length + next header
inline constexpr size_t max_padding = 255;
inline constexpr uint8_t next_header_ipv4 = 4;
inline constexpr uint8_t next_header_gre = 47;
inline constexpr uint8_t next_header_none = 59;  // a dummy packet (RFC 4303 section 2.6)

struct header {
    uint32_t spi = 0;
    uint32_t sequence = 0;  // the low 32 bits when ESN is in use

    bool operator==(const header&) const = default;
};

// What the caller knows about the SA; zeros mean "do not check" (the decoder tool has no SA).
struct layout {
    size_t iv_size = 0;
    size_t icv_size = 0;
    // Cipher block: the ciphertext must fill whole blocks and whole 4-byte words. 0: no check;
    // 1 (stream and AEAD modes): 4-byte words only.
    size_t block_size = 0;
};

// A parsed ESP packet (the IPv4 or UDP payload); every span points into the parsed buffer.
struct view {
    header hdr;
    std::span<const uint8_t> body;        // everything after the header: IV + ciphertext + ICV
    std::span<const uint8_t> iv;          // layout.iv_size bytes
    std::span<const uint8_t> ciphertext;  // encrypted payload + padding + trailer
    std::span<const uint8_t> icv;         // layout.icv_size bytes
};

enum class parse_error : uint8_t {
    truncated,        // fewer than 8 bytes
    zero_spi,         // SPI 0 is never sent (RFC 4303 section 2.1); in UDP 4500 it marks IKE
    body_too_short,   // shorter than IV + ICV + the 2-byte trailer
    misaligned_body,  // ciphertext not a multiple of 4 bytes or of the cipher block
};
inline constexpr size_t parse_error_count = static_cast<size_t>(parse_error::misaligned_body) + 1;
std::string_view name(parse_error e) noexcept;

// With the default layout only the header is checked and `ciphertext` is the whole body.
wire::result<view, parse_error> parse(std::span<const uint8_t> packet,
                                      const layout& l = {}) noexcept;

// Writes SPI and sequence number. Returns 8, or 0 when out is too small.
size_t encode_header(const header& hdr, std::span<uint8_t> out) noexcept;

// What follows the payload in the decrypted plaintext.
struct trailer {
    std::span<const uint8_t> payload;  // the protected packet (inner IPv4, GRE, ...)
    std::span<const uint8_t> padding;
    uint8_t pad_length = 0;
    uint8_t next_header = 0;
};

enum class trailer_error : uint8_t {
    truncated,            // fewer than 2 bytes: no room for pad length and next header
    pad_length_too_long,  // pad length points before the start of the plaintext
    bad_padding,          // padding is not 1, 2, 3, ... (RFC 4303 section 2.4)
};
inline constexpr size_t trailer_error_count = static_cast<size_t>(trailer_error::bad_padding) + 1;
std::string_view name(trailer_error e) noexcept;

// Whether the padding bytes must be the default 1, 2, 3, ... sequence. RFC 4303 section 2.4 lets
// a cipher specify other contents; every cipher the hub runs uses the default.
enum class padding_check : uint8_t { verify, skip };

// `plaintext` is the decrypted ciphertext (IV and ICV already removed).
wire::result<trailer, trailer_error> parse_trailer(
    std::span<const uint8_t> plaintext, padding_check check = padding_check::verify) noexcept;

// Padding bytes for a payload so that payload + padding + trailer fills whole cipher blocks and
// ends on a 4-byte boundary (RFC 4303 section 2.4). block_size 0 or 1: 4-byte alignment only.
// With a block of at most 256 bytes the result fits the pad-length byte.
constexpr size_t padding_for(size_t payload_size, size_t block_size) noexcept {
    const size_t align = block_size > 1 ? std::lcm(block_size, size_t{4}) : 4;
    const size_t used = (payload_size + trailer_size) % align;
    return used == 0 ? 0 : align - used;
}

// Writes `pad_length` default padding bytes (1, 2, 3, ...), the pad length and the next header.
// Returns pad_length + 2, or 0 when pad_length is over 255 or out is too small.
size_t encode_trailer(size_t pad_length, uint8_t next_header, std::span<uint8_t> out) noexcept;

}  // namespace dmvpn::crypto::esp
