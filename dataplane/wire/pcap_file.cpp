#include "dataplane/wire/pcap_file.hpp"

#include <cerrno>
#include <limits>
#include <utility>

namespace dmvpn::wire::pcap {

namespace {

// Classic pcap magics as read little-endian (libpcap's sf-pcap.c, draft-ietf-opsawg-pcap).
constexpr uint32_t magic_micro = 0xa1b2c3d4;
constexpr uint32_t magic_nano = 0xa1b23c4d;
constexpr uint32_t magic_micro_swapped = 0xd4c3b2a1;
constexpr uint32_t magic_nano_swapped = 0x4d3cb2a1;
constexpr size_t pcap_file_header_size = 24;
constexpr size_t pcap_record_header_size = 16;
constexpr uint16_t pcap_major = 2;
constexpr uint16_t pcap_minor = 4;
// The largest record libpcap and Wireshark accept for any link type we decode.
constexpr uint32_t max_caplen = 262144;

// pcapng (draft-ietf-opsawg-pcapng).
constexpr uint32_t block_shb = 0x0a0d0d0a;
constexpr uint32_t block_idb = 1;
constexpr uint32_t block_opb = 2;  // obsolete Packet Block, still written by old tools
constexpr uint32_t block_spb = 3;
constexpr uint32_t block_epb = 6;
constexpr uint32_t byte_order_magic = 0x1a2b3c4d;
constexpr uint32_t byte_order_magic_swapped = 0x4d3c2b1a;
constexpr uint16_t pcapng_major = 1;
constexpr size_t block_header_size = 8;   // type, total length
constexpr size_t block_trailer_size = 4;  // total length again
constexpr size_t shb_fixed_body = 16;     // magic, versions, section length
constexpr size_t idb_fixed_body = 8;      // link type, reserved, snaplen
constexpr size_t epb_fixed_body = 20;     // interface, timestamp, lengths
constexpr size_t opb_fixed_body = 20;     // interface, drops, timestamp, lengths
constexpr size_t spb_fixed_body = 4;      // original length
constexpr uint16_t opt_endofopt = 0;
constexpr uint16_t opt_if_tsresol = 9;
constexpr uint16_t opt_if_tsoffset = 14;
constexpr uint8_t tsresol_binary_bit = 0x80;
constexpr uint8_t max_decimal_exponent = 19;  // 10^19 units a second still fit 64 bits
constexpr uint8_t max_binary_exponent = 63;

// Linux cooked capture headers (tcpdump.org LINKTYPE_LINUX_SLL / SLL2).
constexpr size_t sll_header_size = 16;
constexpr size_t sll2_header_size = 20;
constexpr size_t sll_address_size = 8;

constexpr uint16_t ethertype_ipv4 = 0x0800;
constexpr uint16_t ethertype_ipv6 = 0x86dd;
constexpr uint16_t ethertype_vlan = 0x8100;
constexpr uint16_t ethertype_qinq = 0x88a8;
constexpr uint16_t ethertype_qinq_old = 0x9100;
constexpr uint16_t max_8023_length = 1500;  // EtherType values start at 0x0600
constexpr size_t mac_pair_size = 12;

constexpr uint64_t nanos_per_sec = 1'000'000'000;

size_t pad4(size_t n) noexcept { return (n + 3) & ~size_t{3}; }

uint64_t pow10(uint8_t n) noexcept {
    uint64_t v = 1;
    for (uint8_t i = 0; i < n; ++i) {
        v *= 10;
    }
    return v;
}

bool is_vlan_tpid(uint16_t t) noexcept {
    return t == ethertype_vlan || t == ethertype_qinq || t == ethertype_qinq_old;
}

// Timestamp units since the epoch -> seconds and nanoseconds.
timestamp convert(const interface_description& ifc, uint64_t units) noexcept {
    timestamp ts;
    if (ifc.resolution_binary) {
        __extension__ using u128 = unsigned __int128;
        const uint8_t n = ifc.resolution_exponent;
        const uint64_t frac = n == 0 ? 0 : units & ((uint64_t{1} << n) - 1);
        ts.sec = static_cast<int64_t>(units >> n);
        ts.nsec = static_cast<uint32_t>((u128{frac} * nanos_per_sec) >> n);
    } else {
        const uint8_t n = ifc.resolution_exponent;
        const uint64_t per_sec = pow10(n);
        const uint64_t frac = units % per_sec;
        ts.sec = static_cast<int64_t>(units / per_sec);
        ts.nsec = static_cast<uint32_t>(n <= 9 ? frac * pow10(static_cast<uint8_t>(9 - n))
                                               : frac / pow10(static_cast<uint8_t>(n - 9)));
    }
    ts.sec += ifc.offset_sec;
    return ts;
}

void put16le(std::vector<uint8_t>& out, uint16_t v) {
    out.push_back(static_cast<uint8_t>(v));
    out.push_back(static_cast<uint8_t>(v >> 8));
}

void put32le(std::vector<uint8_t>& out, uint32_t v) {
    put16le(out, static_cast<uint16_t>(v));
    put16le(out, static_cast<uint16_t>(v >> 16));
}

}  // namespace

std::string_view name(error e) noexcept {
    switch (e) {
        case error::file_too_short:
            return "file_too_short";
        case error::bad_magic:
            return "bad_magic";
        case error::unsupported_version:
            return "unsupported_version";
        case error::truncated_record_header:
            return "truncated_record_header";
        case error::truncated_record_data:
            return "truncated_record_data";
        case error::caplen_exceeds_snaplen:
            return "caplen_exceeds_snaplen";
        case error::caplen_too_large:
            return "caplen_too_large";
        case error::block_too_short:
            return "block_too_short";
        case error::block_length_unaligned:
            return "block_length_unaligned";
        case error::block_lengths_differ:
            return "block_lengths_differ";
        case error::bad_byte_order_magic:
            return "bad_byte_order_magic";
        case error::caplen_exceeds_block:
            return "caplen_exceeds_block";
        case error::unknown_interface:
            return "unknown_interface";
        case error::malformed_option:
            return "malformed_option";
        case error::unsupported_timestamp_resolution:
            return "unsupported_timestamp_resolution";
    }
    return "unknown";
}

std::string_view name(link_error e) noexcept {
    switch (e) {
        case link_error::unsupported_link_type:
            return "unsupported_link_type";
        case link_error::truncated_ethernet_header:
            return "truncated_ethernet_header";
        case link_error::truncated_vlan_tag:
            return "truncated_vlan_tag";
        case link_error::too_many_vlan_tags:
            return "too_many_vlan_tags";
        case link_error::truncated_sll_header:
            return "truncated_sll_header";
        case link_error::empty_raw_packet:
            return "empty_raw_packet";
        case link_error::unknown_ip_version:
            return "unknown_ip_version";
    }
    return "unknown";
}

std::string_view name(write_error e) noexcept {
    switch (e) {
        case write_error::cannot_open:
            return "cannot_open";
        case write_error::write_failed:
            return "write_failed";
        case write_error::close_failed:
            return "close_failed";
    }
    return "unknown";
}

std::string_view name(load_error e) noexcept {
    switch (e) {
        case load_error::cannot_open:
            return "cannot_open";
        case load_error::read_failed:
            return "read_failed";
    }
    return "unknown";
}

// ---- reading ----

std::optional<uint16_t> file_reader::u16(wire::reader& r) const noexcept {
    auto b = r.bytes(2);
    if (!b) {
        return std::nullopt;
    }
    const auto& v = *b;
    return _big_endian ? static_cast<uint16_t>((v[0] << 8) | v[1])
                       : static_cast<uint16_t>((v[1] << 8) | v[0]);
}

std::optional<uint32_t> file_reader::u32(wire::reader& r) const noexcept {
    auto b = r.bytes(4);
    if (!b) {
        return std::nullopt;
    }
    const auto& v = *b;
    if (_big_endian) {
        return (uint32_t{v[0]} << 24) | (uint32_t{v[1]} << 16) | (uint32_t{v[2]} << 8) |
               uint32_t{v[3]};
    }
    return (uint32_t{v[3]} << 24) | (uint32_t{v[2]} << 16) | (uint32_t{v[1]} << 8) | uint32_t{v[0]};
}

std::optional<uint64_t> file_reader::u64(wire::reader& r) const noexcept {
    auto first = u32(r);
    auto second = u32(r);
    if (!first || !second) {
        return std::nullopt;
    }
    return _big_endian ? (uint64_t{*first} << 32) | *second : (uint64_t{*second} << 32) | *first;
}

result<file_reader, error> file_reader::open(std::span<const uint8_t> file) {
    file_reader fr;
    fr._in = wire::reader(file);
    wire::reader peek(file);
    auto magic_be = peek.be32();
    if (!magic_be) {
        return fail(error::file_too_short);
    }
    if (*magic_be == block_shb) {
        fr._format = file_format::pcapng;
        if (auto e = fr.read_section_header()) {
            return fail(*e);
        }
        return fr;
    }
    // Read as big-endian, a little-endian file's magic appears byte-swapped.
    switch (*magic_be) {
        case magic_micro_swapped:
        case magic_nano_swapped:
            fr._big_endian = false;
            break;
        case magic_micro:
        case magic_nano:
            fr._big_endian = true;
            break;
        default:
            return fail(error::bad_magic);
    }
    const bool nano = *magic_be == magic_nano || *magic_be == magic_nano_swapped;
    auto hdr = fr._in.sub(pcap_file_header_size);
    if (!hdr) {
        return fail(error::file_too_short);
    }
    hdr->skip(4);
    auto major = fr.u16(*hdr);
    auto minor = fr.u16(*hdr);
    hdr->skip(8);  // thiszone, sigfigs: always 0 in practice and ignored by libpcap
    auto snaplen = fr.u32(*hdr);
    auto linktype = fr.u32(*hdr);
    if (*major != pcap_major) {
        return fail(error::unsupported_version);
    }
    (void)minor;  // libpcap reads 2.x whatever the minor; so do we
    interface_description ifc;
    // The upper bits carry FCS information (libpcap LT_FCS_LENGTH); the link type is below.
    ifc.link_type = static_cast<uint16_t>(*linktype & 0xffff);
    ifc.snaplen = *snaplen;
    ifc.resolution_exponent = nano ? 9 : 6;
    fr._ifaces.push_back(ifc);
    return fr;
}

result<std::optional<record>, error> file_reader::next() {
    if (_failed) {
        return fail(*_failed);
    }
    auto r = _format == file_format::pcap ? next_pcap() : next_pcapng();
    if (!r) {
        _failed = r.error();
    }
    return r;
}

result<std::optional<record>, error> file_reader::next_pcap() {
    if (_in.empty()) {
        return std::optional<record>{};
    }
    wire::reader peek = _in;
    auto hdr = peek.sub(pcap_record_header_size);
    if (!hdr) {
        return fail(error::truncated_record_header);
    }
    auto sec = u32(*hdr);
    auto frac = u32(*hdr);
    auto caplen = u32(*hdr);
    auto orig = u32(*hdr);
    const interface_description& ifc = _ifaces.front();
    if (ifc.snaplen != 0 && *caplen > ifc.snaplen) {
        return fail(error::caplen_exceeds_snaplen);
    }
    if (*caplen > max_caplen) {
        return fail(error::caplen_too_large);
    }
    auto data = peek.bytes(*caplen);
    if (!data) {
        return fail(error::truncated_record_data);
    }
    _in = peek;
    record rec;
    rec.number = ++_number;
    rec.link_type = ifc.link_type;
    // A writer that let the fraction reach a second or more still means the sum.
    const uint64_t per_sec = ifc.resolution_exponent == 9 ? nanos_per_sec : 1'000'000;
    rec.ts.sec = int64_t{*sec} + static_cast<int64_t>(*frac / per_sec);
    const uint64_t rem = *frac % per_sec;
    rec.ts.nsec = static_cast<uint32_t>(ifc.resolution_exponent == 9 ? rem : rem * 1000);
    rec.original_length = *orig;
    rec.data = *data;
    return std::optional<record>{rec};
}

std::optional<error> file_reader::read_section_header() {
    wire::reader peek = _in;
    if (!peek.has(block_header_size + shb_fixed_body + block_trailer_size)) {
        return peek.has(block_header_size + 4) ? error::truncated_record_data
                                               : error::file_too_short;
    }
    peek.skip(block_header_size);
    auto bom = peek.be32();
    if (*bom == byte_order_magic) {
        _big_endian = true;
    } else if (*bom == byte_order_magic_swapped) {
        _big_endian = false;
    } else {
        return error::bad_byte_order_magic;
    }
    peek = _in;
    peek.skip(4);
    auto total = u32(peek);
    if (*total < block_header_size + shb_fixed_body + block_trailer_size) {
        return error::block_too_short;
    }
    if (*total % 4 != 0) {
        return error::block_length_unaligned;
    }
    peek = _in;
    auto block = peek.sub(*total);
    if (!block) {
        return error::truncated_record_data;
    }
    block->skip(block_header_size + 4);
    auto major = u16(*block);
    if (*major != pcapng_major) {
        return error::unsupported_version;
    }
    auto trailer = wire::reader(block->whole().last(block_trailer_size));
    if (u32(trailer) != total) {
        return error::block_lengths_differ;
    }
    _in = peek;
    _ifaces.clear();  // interface IDs are per section
    return std::nullopt;
}

std::optional<error> file_reader::read_interface_description(wire::reader body) {
    if (!body.has(idb_fixed_body)) {
        return error::block_too_short;
    }
    interface_description ifc;
    ifc.link_type = *u16(body);
    body.skip(2);
    ifc.snaplen = *u32(body);
    while (body.has(4)) {
        auto code = u16(body);
        auto len = u16(body);
        if (*code == opt_endofopt) {
            break;
        }
        auto value = body.sub(*len);
        if (!value || !body.skip(pad4(*len) - *len)) {
            return error::malformed_option;
        }
        if (*code == opt_if_tsresol) {
            auto v = value->u8();
            if (!v) {
                return error::malformed_option;
            }
            ifc.resolution_binary = (*v & tsresol_binary_bit) != 0;
            ifc.resolution_exponent = static_cast<uint8_t>(*v & ~tsresol_binary_bit);
            const uint8_t limit =
                ifc.resolution_binary ? max_binary_exponent : max_decimal_exponent;
            if (ifc.resolution_exponent > limit) {
                return error::unsupported_timestamp_resolution;
            }
        } else if (*code == opt_if_tsoffset) {
            auto v = u64(*value);
            if (!v) {
                return error::malformed_option;
            }
            ifc.offset_sec = static_cast<int64_t>(*v);
        }
    }
    _ifaces.push_back(ifc);
    return std::nullopt;
}

result<record, error> file_reader::finish(uint32_t ifc_id, uint64_t units, uint32_t caplen,
                                          uint32_t orig, wire::reader body) {
    if (ifc_id >= _ifaces.size()) {
        return fail(error::unknown_interface);
    }
    const interface_description& ifc = _ifaces[ifc_id];
    if (ifc.snaplen != 0 && caplen > ifc.snaplen) {
        return fail(error::caplen_exceeds_snaplen);
    }
    if (caplen > max_caplen) {
        return fail(error::caplen_too_large);
    }
    auto data = body.bytes(caplen);
    if (!data || !body.skip(pad4(caplen) - caplen)) {
        return fail(error::caplen_exceeds_block);
    }
    record rec;
    rec.number = ++_number;
    rec.interface_id = ifc_id;
    rec.link_type = ifc.link_type;
    rec.ts = convert(ifc, units);
    rec.original_length = orig;
    rec.data = *data;
    return rec;
}

result<record, error> file_reader::read_enhanced_packet(wire::reader body) {
    if (!body.has(epb_fixed_body)) {
        return fail(error::block_too_short);
    }
    auto ifc = u32(body);
    auto hi = u32(body);
    auto lo = u32(body);
    auto caplen = u32(body);
    auto orig = u32(body);
    return finish(*ifc, (uint64_t{*hi} << 32) | *lo, *caplen, *orig, body);
}

result<record, error> file_reader::read_obsolete_packet(wire::reader body) {
    if (!body.has(opb_fixed_body)) {
        return fail(error::block_too_short);
    }
    auto ifc = u16(body);
    body.skip(2);  // drops count
    auto hi = u32(body);
    auto lo = u32(body);
    auto caplen = u32(body);
    auto orig = u32(body);
    return finish(*ifc, (uint64_t{*hi} << 32) | *lo, *caplen, *orig, body);
}

result<record, error> file_reader::read_simple_packet(wire::reader body) {
    if (!body.has(spb_fixed_body)) {
        return fail(error::block_too_short);
    }
    if (_ifaces.empty()) {
        return fail(error::unknown_interface);
    }
    auto orig = u32(body);
    // The captured length is implied: the original length cut to the snaplen (the block's
    // padding makes its own size an upper bound only).
    uint64_t caplen = *orig;
    if (_ifaces.front().snaplen != 0 && caplen > _ifaces.front().snaplen) {
        caplen = _ifaces.front().snaplen;
    }
    if (caplen > body.remaining()) {
        return fail(error::caplen_exceeds_block);
    }
    // SPBs carry no timestamp.
    return finish(0, 0, static_cast<uint32_t>(caplen), *orig, body);
}

result<std::optional<record>, error> file_reader::next_pcapng() {
    for (;;) {
        if (_in.empty()) {
            return std::optional<record>{};
        }
        wire::reader peek = _in;
        auto type = u32(peek);
        auto total = u32(peek);
        if (!type || !total) {
            return fail(error::truncated_record_header);
        }
        if (*type == block_shb) {
            if (auto e = read_section_header()) {
                return fail(*e);
            }
            continue;
        }
        if (*total < block_header_size + block_trailer_size) {
            return fail(error::block_too_short);
        }
        if (*total % 4 != 0) {
            return fail(error::block_length_unaligned);
        }
        peek = _in;
        auto block = peek.sub(*total);
        if (!block) {
            return fail(error::truncated_record_data);
        }
        wire::reader trailer(block->whole().last(block_trailer_size));
        if (u32(trailer) != total) {
            return fail(error::block_lengths_differ);
        }
        wire::reader body(block->whole().subspan(block_header_size,
                                                 *total - block_header_size - block_trailer_size));
        _in = peek;
        switch (*type) {
            case block_idb:
                if (auto e = read_interface_description(body)) {
                    return fail(*e);
                }
                break;
            case block_epb:
            case block_spb:
            case block_opb: {
                auto rec = *type == block_epb   ? read_enhanced_packet(body)
                           : *type == block_spb ? read_simple_packet(body)
                                                : read_obsolete_packet(body);
                if (!rec) {
                    return fail(rec.error());
                }
                return std::optional<record>{*rec};
            }
            default:
                break;  // statistics, name resolution, custom blocks: nothing a decoder needs
        }
    }
}

// ---- link layers ----

result<link_frame, link_error> strip_link_layer(uint16_t link_type, std::span<const uint8_t> data) {
    link_frame f;
    f.link_type = link_type;
    wire::reader r(data);
    uint16_t type = 0;
    switch (link_type) {
        case linktype::ethernet: {
            if (!r.skip(mac_pair_size)) {
                return fail(link_error::truncated_ethernet_header);
            }
            auto t = r.be16();
            if (!t) {
                return fail(link_error::truncated_ethernet_header);
            }
            type = *t;
            break;
        }
        case linktype::linux_sll: {
            auto h = r.sub(sll_header_size);
            if (!h) {
                return fail(link_error::truncated_sll_header);
            }
            f.sll_pkttype = h->be16();
            f.sll_hatype = h->be16();
            h->skip(2 + sll_address_size);  // address length, address
            type = *h->be16();
            break;
        }
        case linktype::linux_sll2: {
            auto h = r.sub(sll2_header_size);
            if (!h) {
                return fail(link_error::truncated_sll_header);
            }
            type = *h->be16();
            h->skip(2 + 4);  // reserved, interface index
            f.sll_hatype = h->be16();
            f.sll_pkttype = h->u8();
            break;
        }
        case linktype::raw: {
            auto first = r.whole().empty() ? std::optional<uint8_t>{} : r.whole()[0];
            if (!first) {
                return fail(link_error::empty_raw_packet);
            }
            const uint8_t version = static_cast<uint8_t>(*first >> 4);
            if (version != 4 && version != 6) {
                return fail(link_error::unknown_ip_version);
            }
            f.ethertype = version == 4 ? ethertype_ipv4 : ethertype_ipv6;
            f.payload = r.rest();
            return f;
        }
        case linktype::ipv4:
        case linktype::ipv6:
            f.ethertype = link_type == linktype::ipv4 ? ethertype_ipv4 : ethertype_ipv6;
            f.payload = r.rest();
            return f;
        default:
            return fail(link_error::unsupported_link_type);
    }
    f.outer_type = type;
    while (is_vlan_tpid(type)) {
        if (f.vlan_count == f.vlan_tci.size()) {
            return fail(link_error::too_many_vlan_tags);
        }
        auto tci = r.be16();
        auto inner = r.be16();
        if (!tci || !inner) {
            return fail(link_error::truncated_vlan_tag);
        }
        f.vlan_tci[f.vlan_count] = *tci;
        f.vlan_type[f.vlan_count] = *inner;
        ++f.vlan_count;
        type = *inner;
    }
    f.payload = r.rest();
    // Values up to 1500 are an 802.3 length (an LLC frame follows); a cooked header's small
    // protocol values are ARPHRD-specific codes instead, passed on as they are.
    if (link_type == linktype::ethernet && type <= max_8023_length) {
        f.ieee8023_length = type;
        return f;
    }
    f.ethertype = type;
    return f;
}

// ---- writing ----

std::vector<uint8_t> encode_file_header(uint16_t link_type, uint32_t snaplen, precision p) {
    std::vector<uint8_t> out;
    out.reserve(pcap_file_header_size);
    put32le(out, p == precision::nano ? magic_nano : magic_micro);
    put16le(out, pcap_major);
    put16le(out, pcap_minor);
    put32le(out, 0);  // thiszone
    put32le(out, 0);  // sigfigs
    put32le(out, snaplen);
    put32le(out, link_type);
    return out;
}

std::vector<uint8_t> encode_record(timestamp ts, std::span<const uint8_t> data,
                                   uint32_t original_length, precision p) {
    std::vector<uint8_t> out;
    out.reserve(pcap_record_header_size + data.size());
    const auto caplen = static_cast<uint32_t>(data.size());
    put32le(out, static_cast<uint32_t>(ts.sec));
    put32le(out, p == precision::nano ? ts.nsec : ts.nsec / 1000);
    put32le(out, caplen);
    put32le(out, original_length < caplen ? caplen : original_length);
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

result<file_writer, io_failure> file_writer::create(const std::string& path, uint16_t link_type,
                                                    uint32_t snaplen, precision p) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) {
        return fail(io_failure{write_error::cannot_open, errno});
    }
    file_writer w(f, snaplen, p);
    auto hdr = encode_file_header(link_type, snaplen, p);
    if (std::fwrite(hdr.data(), 1, hdr.size(), f) != hdr.size()) {
        return fail(io_failure{write_error::write_failed, errno});
    }
    return w;
}

file_writer::file_writer(file_writer&& o) noexcept
    : _f(std::exchange(o._f, nullptr)), _snaplen(o._snaplen), _p(o._p), _records(o._records) {}

file_writer& file_writer::operator=(file_writer&& o) noexcept {
    if (this != &o) {
        if (_f != nullptr) {
            std::fclose(_f);
        }
        _f = std::exchange(o._f, nullptr);
        _snaplen = o._snaplen;
        _p = o._p;
        _records = o._records;
    }
    return *this;
}

file_writer::~file_writer() {
    if (_f != nullptr) {
        std::fclose(_f);
    }
}

std::optional<io_failure> file_writer::write(timestamp ts, std::span<const uint8_t> frame) {
    if (_f == nullptr) {
        return io_failure{write_error::write_failed, EBADF};
    }
    const auto orig = static_cast<uint32_t>(frame.size());
    auto captured = _snaplen != 0 && frame.size() > _snaplen ? frame.first(_snaplen) : frame;
    auto rec = encode_record(ts, captured, orig, _p);
    if (std::fwrite(rec.data(), 1, rec.size(), _f) != rec.size()) {
        return io_failure{write_error::write_failed, errno};
    }
    ++_records;
    return std::nullopt;
}

std::optional<io_failure> file_writer::close() {
    if (_f == nullptr) {
        return std::nullopt;
    }
    std::FILE* f = std::exchange(_f, nullptr);
    if (std::fflush(f) != 0) {
        const int e = errno;
        std::fclose(f);
        return io_failure{write_error::write_failed, e};
    }
    if (std::fclose(f) != 0) {
        return io_failure{write_error::close_failed, errno};
    }
    return std::nullopt;
}

// ---- loading ----

result<std::vector<uint8_t>, load_failure> load_file(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) {
        return fail(load_failure{load_error::cannot_open, errno});
    }
    std::vector<uint8_t> out;
    std::array<uint8_t, 65536> buf{};
    for (;;) {
        const size_t n = std::fread(buf.data(), 1, buf.size(), f);
        out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
        if (n < buf.size()) {
            break;
        }
    }
    const bool failed = std::ferror(f) != 0;
    const int e = errno;
    std::fclose(f);
    if (failed) {
        return fail(load_failure{load_error::read_failed, e});
    }
    return out;
}

}  // namespace dmvpn::wire::pcap
