#include "dataplane/wire/gre.hpp"

#include "dataplane/wire/checksum.hpp"
#include "dataplane/wire/reader.hpp"

namespace dmvpn::wire {

namespace {

constexpr uint16_t flag_c = 0x8000;
constexpr uint16_t flag_k = 0x2000;
constexpr uint16_t flag_s = 0x1000;
// Bits 1, 4 and 5: R, s and the top recursion bit of RFC 1701. RFC 2784 section 2.3 says to
// discard; RFC 2890 took bits 2 and 3 for K and S.
constexpr uint16_t must_be_zero = 0x4000 | 0x0800 | 0x0400;
constexpr unsigned reserved0_shift = 3;  // bits 6-12 sit above the 3 version bits
constexpr uint16_t reserved0_mask = 0x7f;
constexpr uint16_t version_mask = 0x7;

}  // namespace

std::string_view name(gre_error e) noexcept {
    switch (e) {
        case gre_error::truncated:
            return "truncated";
        case gre_error::reserved_bits_set:
            return "reserved_bits_set";
        case gre_error::bad_version:
            return "bad_version";
        case gre_error::fields_truncated:
            return "fields_truncated";
        case gre_error::bad_checksum:
            return "bad_checksum";
    }
    return "unknown";
}

result<gre_view, gre_error> parse_gre(std::span<const uint8_t> packet,
                                      checksum_check check) noexcept {
    reader r(packet);
    auto flags = r.be16();
    auto protocol = r.be16();
    if (!flags || !protocol) {
        return fail(gre_error::truncated);
    }
    if ((*flags & must_be_zero) != 0) {
        return fail(gre_error::reserved_bits_set);
    }
    gre_header h;
    h.checksum_present = (*flags & flag_c) != 0;
    h.key_present = (*flags & flag_k) != 0;
    h.sequence_present = (*flags & flag_s) != 0;
    h.reserved0 = static_cast<uint8_t>((*flags >> reserved0_shift) & reserved0_mask);
    h.version = static_cast<uint8_t>(*flags & version_mask);
    h.protocol = *protocol;
    if (h.version != 0) {
        return fail(gre_error::bad_version);
    }
    if (h.checksum_present) {
        auto sum = r.be16();
        auto reserved1 = r.be16();
        if (!sum || !reserved1) {
            return fail(gre_error::fields_truncated);
        }
        h.checksum = *sum;
        h.reserved1 = *reserved1;
    }
    if (h.key_present) {
        auto key = r.be32();
        if (!key) {
            return fail(gre_error::fields_truncated);
        }
        h.key = *key;
    }
    if (h.sequence_present) {
        auto seq = r.be32();
        if (!seq) {
            return fail(gre_error::fields_truncated);
        }
        h.sequence = *seq;
    }
    if (h.checksum_present && check == checksum_check::verify && inet_checksum(packet) != 0) {
        return fail(gre_error::bad_checksum);
    }
    return gre_view{h, r.offset(), r.rest()};
}

size_t encode_gre(const gre_header& hdr, std::span<uint8_t> out) noexcept {
    const size_t len = hdr.header_length();
    if (out.size() < len) {
        return 0;
    }
    const uint16_t flags = static_cast<uint16_t>(
        (hdr.checksum_present ? flag_c : 0) | (hdr.key_present ? flag_k : 0) |
        (hdr.sequence_present ? flag_s : 0) |
        ((hdr.reserved0 & reserved0_mask) << reserved0_shift) | (hdr.version & version_mask));
    uint8_t* p = out.data();
    store_be16(p, flags);
    store_be16(p + 2, hdr.protocol);
    size_t off = gre_min_header_size;
    if (hdr.checksum_present) {
        store_be16(p + off, hdr.checksum);
        store_be16(p + off + 2, hdr.reserved1);
        off += 4;
    }
    if (hdr.key_present) {
        store_be32(p + off, hdr.key);
        off += 4;
    }
    if (hdr.sequence_present) {
        store_be32(p + off, hdr.sequence);
        off += 4;
    }
    return off;
}

bool fill_gre_checksum(std::span<uint8_t> packet) noexcept {
    if (packet.size() < gre_min_header_size + 4 || (load_be16(packet.data()) & flag_c) == 0) {
        return false;
    }
    store_be16(packet.data() + gre_min_header_size, 0);
    store_be16(packet.data() + gre_min_header_size, inet_checksum(packet));
    return true;
}

}  // namespace dmvpn::wire
