#include "dataplane/wire/ipv4.hpp"

#include <array>
#include <charconv>

#include "dataplane/wire/checksum.hpp"
#include "dataplane/wire/reader.hpp"

namespace dmvpn::wire {

std::string_view name(ipv4_error e) noexcept {
    switch (e) {
        case ipv4_error::truncated:
            return "truncated";
        case ipv4_error::bad_version:
            return "bad_version";
        case ipv4_error::bad_ihl:
            return "bad_ihl";
        case ipv4_error::header_truncated:
            return "header_truncated";
        case ipv4_error::total_length_below_header:
            return "total_length_below_header";
        case ipv4_error::total_length_exceeds_buffer:
            return "total_length_exceeds_buffer";
        case ipv4_error::bad_checksum:
            return "bad_checksum";
    }
    return "unknown";
}

result<ipv4_view, ipv4_error> parse_ipv4(std::span<const uint8_t> packet,
                                         checksum_check check) noexcept {
    reader r(packet);
    // The fixed part is read field by field; each pull is known to succeed once 20 bytes exist.
    if (!r.has(ipv4_min_header_size)) {
        return fail(ipv4_error::truncated);
    }
    const uint8_t ver_ihl = *r.u8();
    if ((ver_ihl >> 4) != 4) {
        return fail(ipv4_error::bad_version);
    }
    ipv4_header h;
    h.ihl = ver_ihl & 0x0f;
    if (h.ihl < 5) {
        return fail(ipv4_error::bad_ihl);
    }
    h.tos = *r.u8();
    h.total_length = *r.be16();
    h.id = *r.be16();
    const uint16_t frag = *r.be16();
    h.reserved_flag = (frag & 0x8000) != 0;
    h.df = (frag & 0x4000) != 0;
    h.mf = (frag & 0x2000) != 0;
    h.fragment_offset = frag & 0x1fff;
    h.ttl = *r.u8();
    h.protocol = *r.u8();
    h.checksum = *r.be16();
    h.src = *r.be32();
    h.dst = *r.be32();

    const size_t hlen = h.header_length();
    if (hlen > packet.size()) {
        return fail(ipv4_error::header_truncated);
    }
    if (h.total_length < hlen) {
        return fail(ipv4_error::total_length_below_header);
    }
    if (h.total_length > packet.size()) {
        return fail(ipv4_error::total_length_exceeds_buffer);
    }
    reader whole(packet);
    auto header_bytes = *whole.bytes(hlen);
    auto payload = *whole.bytes(h.total_length - hlen);
    if (check == checksum_check::verify && inet_checksum(header_bytes) != 0) {
        return fail(ipv4_error::bad_checksum);
    }
    return ipv4_view{h, header_bytes, header_bytes.subspan(ipv4_min_header_size), payload,
                     packet.first(h.total_length)};
}

size_t encode_ipv4(const ipv4_header& hdr, std::span<const uint8_t> options,
                   std::span<uint8_t> out) noexcept {
    if (options.size() % 4 != 0 || options.size() > ipv4_max_options_size) {
        return 0;
    }
    const size_t hlen = ipv4_min_header_size + options.size();
    if (out.size() < hlen) {
        return 0;
    }
    uint8_t* p = out.data();
    p[0] = static_cast<uint8_t>(0x40 | (hlen / 4));
    p[1] = hdr.tos;
    store_be16(p + 2, hdr.total_length);
    store_be16(p + 4, hdr.id);
    const uint16_t frag =
        static_cast<uint16_t>((hdr.reserved_flag ? 0x8000 : 0) | (hdr.df ? 0x4000 : 0) |
                              (hdr.mf ? 0x2000 : 0) | (hdr.fragment_offset & 0x1fff));
    store_be16(p + 6, frag);
    p[8] = hdr.ttl;
    p[9] = hdr.protocol;
    store_be16(p + 10, 0);
    store_be32(p + 12, hdr.src);
    store_be32(p + 16, hdr.dst);
    for (size_t i = 0; i < options.size(); ++i) {
        p[ipv4_min_header_size + i] = options[i];
    }
    store_be16(p + 10, inet_checksum(out.first(hlen)));
    return hlen;
}

bool refresh_ipv4_checksum(std::span<uint8_t> header) noexcept {
    if (header.size() < ipv4_min_header_size) {
        return false;
    }
    const size_t hlen = size_t{header[0] & 0x0fu} * 4;
    if (hlen < ipv4_min_header_size || hlen > header.size()) {
        return false;
    }
    store_be16(header.data() + 10, 0);
    store_be16(header.data() + 10, inet_checksum(header.first(hlen)));
    return true;
}

std::string format_ipv4(uint32_t addr) {
    std::string s;
    s.reserve(15);
    for (int shift = 24; shift >= 0; shift -= 8) {
        s += std::to_string((addr >> shift) & 0xff);
        if (shift != 0) {
            s += '.';
        }
    }
    return s;
}

std::optional<uint32_t> parse_ipv4_address(std::string_view text) noexcept {
    uint32_t addr = 0;
    size_t pos = 0;
    for (int octet = 0; octet < 4; ++octet) {
        if (octet != 0) {
            if (pos >= text.size() || text[pos] != '.') {
                return std::nullopt;
            }
            ++pos;
        }
        const size_t start = pos;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9' && pos - start < 4) {
            ++pos;
        }
        const size_t digits = pos - start;
        if (digits == 0 || digits > 3 || (digits > 1 && text[start] == '0')) {
            return std::nullopt;
        }
        unsigned value = 0;
        std::from_chars(text.data() + start, text.data() + pos, value);
        if (value > 255) {
            return std::nullopt;
        }
        addr = (addr << 8) | value;
    }
    if (pos != text.size()) {
        return std::nullopt;
    }
    return addr;
}

std::vector<uint8_t> ipv4_bytes(uint32_t addr) {
    std::vector<uint8_t> b(4);
    store_be32(b.data(), addr);
    return b;
}

}  // namespace dmvpn::wire
