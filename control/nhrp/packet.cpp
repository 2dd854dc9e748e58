#include "control/nhrp/packet.hpp"

#include <algorithm>
#include <optional>

#include "dataplane/wire/checksum.hpp"
#include "dataplane/wire/reader.hpp"

namespace dmvpn::nhrp {

namespace {

using wire::fail;
using wire::reader;
using wire::writer;

constexpr uint8_t tl_length_mask = 0x3f;
constexpr uint8_t tl_flag_bits = 0xc0;
constexpr uint16_t ext_compulsory_bit = 0x8000;
constexpr uint16_t ext_u_bit = 0x4000;
constexpr uint16_t ext_type_mask = 0x3fff;
// RFC 2735 Device Capabilities shares type 9 with Cisco's NAT extension; its body is always
// two 32-bit words, which no CIE list can be (a CIE alone is 12 bytes).
constexpr size_t device_capabilities_size = 8;
constexpr size_t oui_size = 3;
constexpr size_t max_packet_size = 0xffff;
constexpr size_t mandatory_fixed_size = 8;  // proto lengths, flags, request ID
constexpr size_t checksum_offset = 12;

// The checksum the packet must carry: computed with the checksum field taken as zero. Comparing
// against it (rather than summing to zero) also refuses 0xffff where 0x0000 is due, the one
// other value that sums right, so every accepted packet rebuilds to the same bytes.
uint16_t expected_checksum(std::span<const uint8_t> pkt) noexcept {
    uint32_t sum = wire::checksum_add(0, pkt.first(checksum_offset));
    sum = wire::checksum_add(sum, pkt.subspan(checksum_offset + 2));
    return wire::checksum_fold(sum);
}

bool has_request_id(op t) noexcept {
    return t != op::error_indication && t != op::traffic_indication;
}

bool known_type(uint8_t t) noexcept {
    return t >= static_cast<uint8_t>(op::resolution_request) &&
           t <= static_cast<uint8_t>(op::traffic_indication);
}

bool cie_list_extension(uint16_t type) noexcept {
    return type == ext::responder_address || type == ext::forward_transit ||
           type == ext::reverse_transit || type == ext::cisco_nat_address;
}

bytes copy(std::span<const uint8_t> s) { return bytes(s.begin(), s.end()); }

// Reads one CIE; nullopt when its fixed part or its addresses do not fit in `r`, which the
// caller bounds to the region the CIE list may occupy.
std::optional<cie> read_cie(reader& r) {
    reader probe = r;
    auto code = probe.u8();
    auto prefix = probe.u8();
    auto unused = probe.be16();
    auto mtu = probe.be16();
    auto hold = probe.be16();
    auto nbma_tl = probe.u8();
    auto sub_tl = probe.u8();
    auto proto_len = probe.u8();
    auto pref = probe.u8();
    if (!pref) {
        return std::nullopt;
    }
    auto nbma = probe.bytes(*nbma_tl & tl_length_mask);
    auto sub = probe.bytes(*sub_tl & tl_length_mask);
    auto proto = probe.bytes(*proto_len);
    if (!nbma || !sub || !proto) {
        return std::nullopt;
    }
    cie c;
    c.code = *code;
    c.prefix_length = *prefix;
    c.unused = *unused;
    c.mtu = *mtu;
    c.holding_time = *hold;
    c.client_nbma_type = *nbma_tl & tl_flag_bits;
    c.client_nbma_sub_type = *sub_tl & tl_flag_bits;
    c.preference = *pref;
    c.client_nbma = copy(*nbma);
    c.client_nbma_sub = copy(*sub);
    c.client_proto = copy(*proto);
    r = probe;
    return c;
}

// Every CIE costs at least cie_fixed_size input bytes, so the list grows no faster than the input.
std::optional<std::vector<cie>> read_cies(reader r) {
    std::vector<cie> out;
    while (!r.empty()) {
        auto c = read_cie(r);
        if (!c) {
            return std::nullopt;
        }
        out.push_back(std::move(*c));
    }
    return out;
}

wire::result<extension, parse_error> read_extension_body(extension e,
                                                         std::span<const uint8_t> body) {
    if (e.type == ext::end) {
        if (!body.empty()) {
            return fail(parse_error::end_extension_not_empty);
        }
        return e;
    }
    if (e.type == ext::cisco_nat_address && body.size() == device_capabilities_size) {
        e.raw = copy(body);
        return e;
    }
    if (cie_list_extension(e.type)) {
        auto cies = read_cies(reader(body));
        if (!cies) {
            return fail(parse_error::extension_body_malformed);
        }
        e.cies = std::move(*cies);
        return e;
    }
    reader r(body);
    if (e.type == ext::authentication) {
        auto reserved = r.be16();
        auto spi = r.be16();
        if (!spi) {
            return fail(parse_error::authentication_extension_too_short);
        }
        e.auth_reserved = *reserved;
        e.auth_spi = *spi;
        e.data = copy(r.rest());
        return e;
    }
    if (e.type == ext::vendor_private) {
        auto oui = r.bytes(oui_size);
        if (!oui) {
            return fail(parse_error::vendor_private_extension_too_short);
        }
        std::copy(oui->begin(), oui->end(), e.oui.begin());
        e.data = copy(r.rest());
        return e;
    }
    e.raw = copy(body);
    return e;
}

// Reads the extension area (ext_offset to packet_size) into p.extensions and p.trailing.
std::optional<parse_error> read_extensions(reader r, packet& p) {
    while (!r.empty()) {
        auto word = r.be16();
        auto length = r.be16();
        if (!length) {
            return parse_error::truncated_extension_header;
        }
        auto body = r.bytes(*length);
        if (!body) {
            return parse_error::extension_overruns_packet;
        }
        extension e;
        e.compulsory = (*word & ext_compulsory_bit) != 0;
        e.u_bit = (*word & ext_u_bit) != 0;
        e.type = *word & ext_type_mask;
        auto parsed = read_extension_body(std::move(e), *body);
        if (!parsed) {
            return parsed.error();
        }
        const bool is_end = parsed->type == ext::end;
        p.extensions.push_back(std::move(*parsed));
        if (is_end) {
            p.trailing = copy(r.rest());
            break;
        }
    }
    return std::nullopt;
}

// The mandatory part: `r` spans from the end of the fixed header to ext_offset (or
// packet_size); `whole_len` is the length to packet_size, used only to tell a lying ext_offset
// from a lying address length.
std::optional<parse_error> read_mandatory(reader r, size_t whole_len, packet& p) {
    const bool ext_cut = r.size() < whole_len;
    auto src_proto_len = r.u8();
    auto dst_proto_len = r.u8();
    auto word1 = r.be16();
    auto word2 = r.be16();
    auto word3 = r.be16();
    if (!word3) {
        return ext_cut && whole_len >= mandatory_fixed_size
                   ? parse_error::ext_offset_inside_mandatory_part
                   : parse_error::truncated_mandatory_part;
    }
    p.flags = *word1;
    switch (p.hdr.type) {
        case op::error_indication:
            p.error_code = *word2;
            p.error_offset = *word3;
            break;
        case op::traffic_indication:
            p.traffic_code = *word2;
            p.traffic_unused = *word3;
            break;
        default:
            p.request_id = (uint32_t{*word2} << 16) | *word3;
            break;
    }
    const size_t nbma_len = p.hdr.shtl & tl_length_mask;
    const size_t sub_len = p.hdr.sstl & tl_length_mask;
    const size_t addr_len = nbma_len + sub_len + *src_proto_len + *dst_proto_len;
    if (!r.has(addr_len)) {
        // Whether the addresses would have fitted up to packet_size tells which length lied.
        const bool fits_whole = r.offset() + addr_len <= whole_len;
        return ext_cut && fits_whole ? parse_error::ext_offset_inside_mandatory_part
                                     : parse_error::address_overruns_mandatory_part;
    }
    p.src_nbma = copy(*r.bytes(nbma_len));
    p.src_nbma_sub = copy(*r.bytes(sub_len));
    p.src_proto = copy(*r.bytes(*src_proto_len));
    p.dst_proto = copy(*r.bytes(*dst_proto_len));
    if (has_request_id(p.hdr.type)) {
        auto cies = read_cies(r);
        if (!cies) {
            return parse_error::cie_overruns_mandatory_part;
        }
        p.cies = std::move(*cies);
    } else {
        p.contents = copy(r.rest());
    }
    return std::nullopt;
}

bool write_cie(writer& w, const cie& c) {
    if (c.client_nbma.size() > tl_length_mask || c.client_nbma_sub.size() > tl_length_mask ||
        c.client_proto.size() > 0xff) {
        return false;
    }
    w.u8(c.code);
    w.u8(c.prefix_length);
    w.be16(c.unused);
    w.be16(c.mtu);
    w.be16(c.holding_time);
    w.u8(static_cast<uint8_t>((c.client_nbma_type & tl_flag_bits) | c.client_nbma.size()));
    w.u8(static_cast<uint8_t>((c.client_nbma_sub_type & tl_flag_bits) | c.client_nbma_sub.size()));
    w.u8(static_cast<uint8_t>(c.client_proto.size()));
    w.u8(c.preference);
    w.bytes(c.client_nbma);
    w.bytes(c.client_nbma_sub);
    w.bytes(c.client_proto);
    return true;
}

std::optional<build_error> write_extension_body(writer& w, const extension& e) {
    if (e.type == ext::cisco_nat_address && !e.raw.empty()) {
        w.bytes(e.raw);
    } else if (cie_list_extension(e.type)) {
        for (const cie& c : e.cies) {
            if (!write_cie(w, c)) {
                return build_error::address_too_long;
            }
        }
    } else if (e.type == ext::authentication) {
        w.be16(e.auth_reserved);
        w.be16(e.auth_spi);
        w.bytes(e.data);
    } else if (e.type == ext::vendor_private) {
        w.bytes(e.oui);
        w.bytes(e.data);
    } else {
        w.bytes(e.raw);
    }
    return std::nullopt;
}

std::optional<build_error> write_extension(writer& w, const extension& e) {
    if (e.type > ext_type_mask) {
        return build_error::extension_type_out_of_range;
    }
    const uint16_t word = static_cast<uint16_t>((e.compulsory ? ext_compulsory_bit : 0) |
                                                (e.u_bit ? ext_u_bit : 0) | e.type);
    w.be16(word);
    const size_t length_at = w.offset();
    w.be16(0);
    if (auto err = write_extension_body(w, e)) {
        return err;
    }
    const size_t length = w.offset() - length_at - 2;
    if (length > max_packet_size) {
        return build_error::packet_too_large;
    }
    w.patch16(length_at, static_cast<uint16_t>(length));
    return std::nullopt;
}

}  // namespace

std::string_view name(op t) noexcept {
    switch (t) {
        case op::resolution_request:
            return "resolution_request";
        case op::resolution_reply:
            return "resolution_reply";
        case op::registration_request:
            return "registration_request";
        case op::registration_reply:
            return "registration_reply";
        case op::purge_request:
            return "purge_request";
        case op::purge_reply:
            return "purge_reply";
        case op::error_indication:
            return "error_indication";
        case op::traffic_indication:
            return "traffic_indication";
    }
    return "unknown";
}

std::string_view name(parse_error e) noexcept {
    switch (e) {
        case parse_error::truncated_fixed_header:
            return "truncated_fixed_header";
        case parse_error::packet_size_below_header:
            return "packet_size_below_header";
        case parse_error::packet_size_exceeds_buffer:
            return "packet_size_exceeds_buffer";
        case parse_error::bad_checksum:
            return "bad_checksum";
        case parse_error::unsupported_version:
            return "unsupported_version";
        case parse_error::unknown_type:
            return "unknown_type";
        case parse_error::ext_offset_inside_header:
            return "ext_offset_inside_header";
        case parse_error::ext_offset_past_end:
            return "ext_offset_past_end";
        case parse_error::truncated_mandatory_part:
            return "truncated_mandatory_part";
        case parse_error::address_overruns_mandatory_part:
            return "address_overruns_mandatory_part";
        case parse_error::cie_overruns_mandatory_part:
            return "cie_overruns_mandatory_part";
        case parse_error::truncated_extension_header:
            return "truncated_extension_header";
        case parse_error::extension_overruns_packet:
            return "extension_overruns_packet";
        case parse_error::extension_body_malformed:
            return "extension_body_malformed";
        case parse_error::end_extension_not_empty:
            return "end_extension_not_empty";
        case parse_error::ext_offset_inside_mandatory_part:
            return "ext_offset_inside_mandatory_part";
        case parse_error::authentication_extension_too_short:
            return "authentication_extension_too_short";
        case parse_error::vendor_private_extension_too_short:
            return "vendor_private_extension_too_short";
    }
    return "unknown";
}

std::string_view name(build_error e) noexcept {
    switch (e) {
        case build_error::address_too_long:
            return "address_too_long";
        case build_error::packet_too_large:
            return "packet_too_large";
        case build_error::unknown_type:
            return "unknown_type";
        case build_error::extension_type_out_of_range:
            return "extension_type_out_of_range";
    }
    return "unknown";
}

bool known_extension(uint16_t type) noexcept {
    return type == ext::end || type == ext::responder_address || type == ext::forward_transit ||
           type == ext::reverse_transit || type == ext::authentication ||
           type == ext::vendor_private || type == ext::cisco_nat_address;
}

wire::result<packet, parse_error> parse(std::span<const uint8_t> data) {
    reader in(data);
    auto afn = in.be16();
    auto pro_type = in.be16();
    auto snap = in.bytes(5);
    auto hop = in.u8();
    auto size = in.be16();
    auto checksum = in.be16();
    auto ext_offset = in.be16();
    auto version = in.u8();
    auto type = in.u8();
    auto shtl = in.u8();
    auto sstl = in.u8();
    if (!sstl) {
        return fail(parse_error::truncated_fixed_header);
    }
    if (*size < fixed_header_size) {
        return fail(parse_error::packet_size_below_header);
    }
    if (*size > data.size()) {
        return fail(parse_error::packet_size_exceeds_buffer);
    }
    const auto pkt = data.first(*size);
    if (expected_checksum(pkt) != *checksum) {
        return fail(parse_error::bad_checksum);
    }
    if (*version != version_1) {
        return fail(parse_error::unsupported_version);
    }
    if (!known_type(*type)) {
        return fail(parse_error::unknown_type);
    }
    if (*ext_offset != 0 && *ext_offset < fixed_header_size) {
        return fail(parse_error::ext_offset_inside_header);
    }
    if (*ext_offset > *size) {
        return fail(parse_error::ext_offset_past_end);
    }

    packet p;
    p.hdr.afn = *afn;
    p.hdr.pro_type = *pro_type;
    std::copy(snap->begin(), snap->end(), p.hdr.pro_snap.begin());
    p.hdr.hop_count = *hop;
    p.hdr.packet_size = *size;
    p.hdr.checksum = *checksum;
    p.hdr.ext_offset = *ext_offset;
    p.hdr.version = *version;
    p.hdr.type = static_cast<op>(*type);
    p.hdr.shtl = *shtl;
    p.hdr.sstl = *sstl;

    const size_t mandatory_end = *ext_offset != 0 ? *ext_offset : *size;
    const auto mandatory = pkt.subspan(fixed_header_size, mandatory_end - fixed_header_size);
    if (auto err = read_mandatory(reader(mandatory), pkt.size() - fixed_header_size, p)) {
        return fail(*err);
    }
    if (*ext_offset != 0) {
        p.has_extension_area = true;
        if (auto err = read_extensions(reader(pkt.subspan(*ext_offset)), p)) {
            return fail(*err);
        }
    }
    return p;
}

wire::result<bytes, build_error> build(const packet& p) {
    if (!known_type(static_cast<uint8_t>(p.hdr.type))) {
        return fail(build_error::unknown_type);
    }
    if (p.src_nbma.size() > tl_length_mask || p.src_nbma_sub.size() > tl_length_mask ||
        p.src_proto.size() > 0xff || p.dst_proto.size() > 0xff) {
        return fail(build_error::address_too_long);
    }
    bytes out;
    writer w(out);
    w.be16(p.hdr.afn);
    w.be16(p.hdr.pro_type);
    w.bytes(p.hdr.pro_snap);
    w.u8(p.hdr.hop_count);
    const size_t size_at = w.offset();
    w.be16(0);
    const size_t checksum_at = w.offset();
    w.be16(0);
    const size_t ext_offset_at = w.offset();
    w.be16(0);
    w.u8(p.hdr.version);
    w.u8(static_cast<uint8_t>(p.hdr.type));
    w.u8(static_cast<uint8_t>((p.hdr.shtl & tl_flag_bits) | p.src_nbma.size()));
    w.u8(static_cast<uint8_t>((p.hdr.sstl & tl_flag_bits) | p.src_nbma_sub.size()));

    w.u8(static_cast<uint8_t>(p.src_proto.size()));
    w.u8(static_cast<uint8_t>(p.dst_proto.size()));
    w.be16(p.flags);
    switch (p.hdr.type) {
        case op::error_indication:
            w.be16(p.error_code);
            w.be16(p.error_offset);
            break;
        case op::traffic_indication:
            w.be16(p.traffic_code);
            w.be16(p.traffic_unused);
            break;
        default:
            w.be32(p.request_id);
            break;
    }
    w.bytes(p.src_nbma);
    w.bytes(p.src_nbma_sub);
    w.bytes(p.src_proto);
    w.bytes(p.dst_proto);
    if (has_request_id(p.hdr.type)) {
        for (const cie& c : p.cies) {
            if (!write_cie(w, c)) {
                return fail(build_error::address_too_long);
            }
        }
    } else {
        w.bytes(p.contents);
    }

    if (p.has_extension_area || !p.extensions.empty()) {
        if (w.offset() > max_packet_size) {
            return fail(build_error::packet_too_large);
        }
        w.patch16(ext_offset_at, static_cast<uint16_t>(w.offset()));
        for (const extension& e : p.extensions) {
            if (auto err = write_extension(w, e)) {
                return fail(*err);
            }
        }
        w.bytes(p.trailing);
    }
    if (w.offset() > max_packet_size) {
        return fail(build_error::packet_too_large);
    }
    w.patch16(size_at, static_cast<uint16_t>(w.offset()));
    w.patch16(checksum_at, wire::inet_checksum(out));
    return out;
}

std::optional<size_t> first_unknown_compulsory(const packet& p) {
    for (size_t i = 0; i < p.extensions.size(); ++i) {
        if (p.extensions[i].compulsory && !known_extension(p.extensions[i].type)) {
            return i;
        }
    }
    return std::nullopt;
}

size_t extension_wire_offset(const packet& p, size_t index) {
    size_t at = p.hdr.ext_offset;
    bytes scratch;
    for (size_t i = 0; i < index && i < p.extensions.size(); ++i) {
        scratch.clear();
        writer w(scratch);
        if (write_extension(w, p.extensions[i])) {
            break;  // unencodable: a parsed packet never gets here
        }
        at += scratch.size();
    }
    return at;
}

}  // namespace dmvpn::nhrp
