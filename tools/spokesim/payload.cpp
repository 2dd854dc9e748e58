#include "tools/spokesim/payload.hpp"

#include "dataplane/wire/reader.hpp"

namespace dmvpn::spokesim {

namespace {

// Every byte depends on the sequence number and both ends, so a payload delivered to the wrong
// spoke or spliced from another packet fails the check.
uint64_t pattern_seed(const payload_info& i) noexcept {
    uint64_t z = i.seq ^ (uint64_t{i.src} << 32 | i.dst) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint8_t pattern(uint64_t seed, size_t k) noexcept {
    return static_cast<uint8_t>((seed >> ((k % 8) * 8)) + k / 8);
}

}  // namespace

std::string_view name(payload_error e) noexcept {
    switch (e) {
        case payload_error::too_short:
            return "too_short";
        case payload_error::bad_magic:
            return "bad_magic";
        case payload_error::bad_length:
            return "bad_length";
        case payload_error::bad_pattern:
            return "bad_pattern";
    }
    return "?";
}

void write_payload(std::span<uint8_t> out, const payload_info& info) noexcept {
    uint8_t* p = out.data();
    wire::store_be32(p, payload_magic);
    wire::store_be32(p + 4, info.src);
    wire::store_be32(p + 8, info.dst);
    wire::store_be32(p + 12, static_cast<uint32_t>(info.seq >> 32));
    wire::store_be32(p + 16, static_cast<uint32_t>(info.seq));
    wire::store_be32(p + 20, static_cast<uint32_t>(out.size()));
    uint64_t seed = pattern_seed(info);
    for (size_t k = payload_header_size; k < out.size(); ++k) {
        p[k] = pattern(seed, k);
    }
}

wire::result<payload_info, payload_error> check_payload(std::span<const uint8_t> in) noexcept {
    wire::reader r(in);
    auto magic = r.be32();
    auto src = r.be32();
    auto dst = r.be32();
    auto seq_hi = r.be32();
    auto seq_lo = r.be32();
    auto len = r.be32();
    if (!len) {
        return wire::fail(payload_error::too_short);
    }
    if (*magic != payload_magic) {
        return wire::fail(payload_error::bad_magic);
    }
    if (*len != in.size()) {
        return wire::fail(payload_error::bad_length);
    }
    payload_info info{*src, *dst, (uint64_t{*seq_hi} << 32) | *seq_lo};
    uint64_t seed = pattern_seed(info);
    for (size_t k = payload_header_size; k < in.size(); ++k) {
        if (in[k] != pattern(seed, k)) {
            return wire::fail(payload_error::bad_pattern);
        }
    }
    return info;
}

}  // namespace dmvpn::spokesim
