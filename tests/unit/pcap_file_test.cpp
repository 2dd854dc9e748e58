// pcap / pcapng reader, link-layer stripping and the classic pcap writer.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/wire/pcap_file.hpp"

namespace pcap = dmvpn::wire::pcap;
using bytes = std::vector<uint8_t>;

namespace {

// Byte builders for either byte order, so every test file is written here field by field.
struct out {
    bool big_endian = false;
    bytes b;

    out& u8(uint8_t v) {
        b.push_back(v);
        return *this;
    }
    out& u16(uint16_t v) {
        if (big_endian) {
            b.push_back(static_cast<uint8_t>(v >> 8));
            b.push_back(static_cast<uint8_t>(v));
        } else {
            b.push_back(static_cast<uint8_t>(v));
            b.push_back(static_cast<uint8_t>(v >> 8));
        }
        return *this;
    }
    out& u32(uint32_t v) {
        if (big_endian) {
            u16(static_cast<uint16_t>(v >> 16));
            u16(static_cast<uint16_t>(v));
        } else {
            u16(static_cast<uint16_t>(v));
            u16(static_cast<uint16_t>(v >> 16));
        }
        return *this;
    }
    out& raw(const bytes& v) {
        b.insert(b.end(), v.begin(), v.end());
        return *this;
    }
    out& pad4() {
        while (b.size() % 4 != 0) {
            b.push_back(0);
        }
        return *this;
    }
};

bytes pcap_header(bool big_endian, bool nano, uint32_t snaplen, uint32_t link) {
    out o{big_endian, {}};
    o.u32(nano ? 0xa1b23c4d : 0xa1b2c3d4).u16(2).u16(4).u32(0).u32(0).u32(snaplen).u32(link);
    return o.b;
}

bytes pcap_record(bool big_endian, uint32_t sec, uint32_t frac, const bytes& data, uint32_t orig,
                  std::optional<uint32_t> caplen = std::nullopt) {
    out o{big_endian, {}};
    o.u32(sec).u32(frac).u32(caplen.value_or(static_cast<uint32_t>(data.size()))).u32(orig);
    o.raw(data);
    return o.b;
}

bytes cat(std::initializer_list<bytes> parts) {
    bytes r;
    for (const auto& p : parts) {
        r.insert(r.end(), p.begin(), p.end());
    }
    return r;
}

// A pcapng block: type, total length, body (padded), total length.
bytes block(bool big_endian, uint32_t type, const bytes& body,
            std::optional<uint32_t> total_override = std::nullopt,
            std::optional<uint32_t> trailer_override = std::nullopt) {
    out padded{big_endian, body};
    padded.pad4();
    const auto total = static_cast<uint32_t>(12 + padded.b.size());
    out o{big_endian, {}};
    o.u32(type).u32(total_override.value_or(total)).raw(padded.b);
    o.u32(trailer_override.value_or(total));
    return o.b;
}

bytes shb(bool big_endian) {
    out body{big_endian, {}};
    body.u32(0x1a2b3c4d).u16(1).u16(0).u32(0xffffffff).u32(0xffffffff);
    return block(big_endian, 0x0a0d0d0a, body.b);
}

bytes idb(bool big_endian, uint16_t link, uint32_t snaplen, std::optional<uint8_t> tsresol = {}) {
    out body{big_endian, {}};
    body.u16(link).u16(0).u32(snaplen);
    if (tsresol) {
        body.u16(9).u16(1).u8(*tsresol).pad4();
        body.u16(0).u16(0);
    }
    return block(big_endian, 1, body.b);
}

bytes epb(bool big_endian, uint32_t ifc, uint64_t units, const bytes& data, uint32_t orig,
          std::optional<uint32_t> caplen = std::nullopt) {
    out body{big_endian, {}};
    body.u32(ifc).u32(static_cast<uint32_t>(units >> 32)).u32(static_cast<uint32_t>(units));
    body.u32(caplen.value_or(static_cast<uint32_t>(data.size()))).u32(orig).raw(data);
    return block(big_endian, 6, body.b);
}

bytes spb(bool big_endian, const bytes& data, uint32_t orig) {
    out body{big_endian, {}};
    body.u32(orig).raw(data);
    return block(big_endian, 3, body.b);
}

std::vector<pcap::record> read_all(const bytes& file) {
    auto r = pcap::file_reader::open(file);
    REQUIRE(r);
    std::vector<pcap::record> recs;
    for (;;) {
        auto n = r->next();
        REQUIRE(n);
        if (!*n) {
            break;
        }
        recs.push_back(**n);
    }
    return recs;
}

// The first error the file produces, from open or from any record.
std::optional<pcap::error> first_error(const bytes& file) {
    auto r = pcap::file_reader::open(file);
    if (!r) {
        return r.error();
    }
    for (;;) {
        auto n = r->next();
        if (!n) {
            return n.error();
        }
        if (!*n) {
            return std::nullopt;
        }
    }
}

const bytes frame_a = {1, 2, 3, 4, 5};
const bytes frame_b = {9, 8, 7, 6, 5, 4, 3, 2};

}  // namespace

TEST_CASE("classic pcap in both byte orders and both precisions") {
    for (bool big : {false, true}) {
        for (bool nano : {false, true}) {
            CAPTURE(big, nano);
            const uint32_t frac = nano ? 123456789 : 123456;
            auto file = cat({pcap_header(big, nano, 65535, 1),
                             pcap_record(big, 1700000000, frac, frame_a, 60),
                             pcap_record(big, 1700000001, 0, frame_b, 8)});
            auto recs = read_all(file);
            REQUIRE(recs.size() == 2);
            CHECK(recs[0].number == 1);
            CHECK(recs[1].number == 2);
            CHECK(recs[0].link_type == pcap::linktype::ethernet);
            CHECK(recs[0].ts.sec == 1700000000);
            CHECK(recs[0].ts.nsec == (nano ? 123456789u : 123456000u));
            CHECK(recs[0].original_length == 60);
            CHECK(bytes(recs[0].data.begin(), recs[0].data.end()) == frame_a);
            CHECK(bytes(recs[1].data.begin(), recs[1].data.end()) == frame_b);
            CHECK(recs[1].ts == pcap::timestamp{1700000001, 0});
        }
    }
}

TEST_CASE("classic pcap: the link type keeps only its low 16 bits (FCS bits above)") {
    auto file =
        cat({pcap_header(false, false, 65535, 0x40000001), pcap_record(false, 0, 0, frame_a, 5)});
    auto recs = read_all(file);
    REQUIRE(recs.size() == 1);
    CHECK(recs[0].link_type == 1);
}

TEST_CASE("classic pcap: lying and truncated records get named reasons") {
    const auto hdr = pcap_header(false, false, 64, 1);
    SECTION("empty and short files") {
        CHECK(first_error({}) == pcap::error::file_too_short);
        CHECK(first_error({0xd4, 0xc3}) == pcap::error::file_too_short);
        CHECK(first_error(bytes(hdr.begin(), hdr.begin() + 20)) == pcap::error::file_too_short);
    }
    SECTION("bad magic") { CHECK(first_error(bytes(24, 0)) == pcap::error::bad_magic); }
    SECTION("unsupported version") {
        auto f = hdr;
        f[4] = 1;  // major 1
        CHECK(first_error(f) == pcap::error::unsupported_version);
    }
    SECTION("header only is an empty capture") { CHECK(read_all(hdr).empty()); }
    SECTION("truncated record header") {
        auto f = cat({hdr, bytes(10, 0)});
        CHECK(first_error(f) == pcap::error::truncated_record_header);
    }
    SECTION("caplen runs past the end of the file") {
        auto f = cat({hdr, pcap_record(false, 0, 0, frame_a, 5, 40)});
        CHECK(first_error(f) == pcap::error::truncated_record_data);
    }
    SECTION("caplen above the snaplen") {
        auto f = cat({hdr, pcap_record(false, 0, 0, bytes(65, 0xaa), 65)});
        CHECK(first_error(f) == pcap::error::caplen_exceeds_snaplen);
    }
    SECTION("caplen beyond any tool's maximum, with snaplen 0") {
        auto f = cat(
            {pcap_header(false, false, 0, 1), pcap_record(false, 0, 0, frame_a, 5, 0x7fffffff)});
        CHECK(first_error(f) == pcap::error::caplen_too_large);
    }
    SECTION("the error repeats and good records before it are delivered") {
        auto f = cat({hdr, pcap_record(false, 0, 0, frame_a, 5), bytes(3, 0)});
        auto r = pcap::file_reader::open(f);
        REQUIRE(r);
        auto first = r->next();
        REQUIRE(first);
        REQUIRE(*first);
        auto second = r->next();
        REQUIRE_FALSE(second);
        CHECK(second.error() == pcap::error::truncated_record_header);
        auto third = r->next();
        REQUIRE_FALSE(third);
        CHECK(third.error() == pcap::error::truncated_record_header);
    }
}

TEST_CASE("pcapng: SHB, IDBs with their own link types, EPB and SPB, both byte orders") {
    for (bool big : {false, true}) {
        CAPTURE(big);
        auto file = cat({shb(big), idb(big, pcap::linktype::ethernet, 0),
                         idb(big, pcap::linktype::raw, 0, uint8_t{9}),
                         epb(big, 0, 1700000000123456ull, frame_a, 70),
                         epb(big, 1, 1700000000987654321ull, frame_b, 8),
                         block(big, 5, bytes(12, 0)),  // interface statistics: skipped
                         spb(big, frame_a, 5)});
        auto recs = read_all(file);
        REQUIRE(recs.size() == 3);
        CHECK(recs[0].link_type == pcap::linktype::ethernet);
        CHECK(recs[0].interface_id == 0);
        CHECK(recs[0].ts == pcap::timestamp{1700000000, 123456000});
        CHECK(recs[0].original_length == 70);
        CHECK(bytes(recs[0].data.begin(), recs[0].data.end()) == frame_a);
        CHECK(recs[1].link_type == pcap::linktype::raw);
        CHECK(recs[1].interface_id == 1);
        CHECK(recs[1].ts == pcap::timestamp{1700000000, 987654321});
        CHECK(bytes(recs[1].data.begin(), recs[1].data.end()) == frame_b);
        CHECK(recs[2].number == 3);
        CHECK(recs[2].link_type == pcap::linktype::ethernet);
        CHECK(bytes(recs[2].data.begin(), recs[2].data.end()) == frame_a);
    }
}

TEST_CASE("pcapng: binary timestamp resolution and a second section in the other byte order") {
    // 2^-10 s units: 1.5 s is 1536 units.
    auto file =
        cat({shb(false), idb(false, 1, 0, uint8_t{0x80 | 10}), epb(false, 0, 1536, frame_a, 5),
             shb(true), idb(true, 101, 0), epb(true, 0, 2000000, frame_b, 8)});
    auto recs = read_all(file);
    REQUIRE(recs.size() == 2);
    CHECK(recs[0].ts == pcap::timestamp{1, 500000000});
    CHECK(recs[1].link_type == pcap::linktype::raw);  // the new section's interface 0
    CHECK(recs[1].ts == pcap::timestamp{2, 0});
}

TEST_CASE("pcapng: SPB data is the original length cut to the snaplen") {
    auto file = cat({shb(false), idb(false, 1, 4), spb(false, {1, 2, 3, 4, 5, 6, 7, 8}, 60)});
    auto recs = read_all(file);
    REQUIRE(recs.size() == 1);
    CHECK(recs[0].data.size() == 4);
    CHECK(recs[0].original_length == 60);
}

TEST_CASE("pcapng: lying block lengths and packets get named reasons") {
    const auto head = cat({shb(false), idb(false, 1, 64)});
    SECTION("byte-order magic") {
        auto f = shb(false);
        f[8] = 0x11;
        CHECK(first_error(f) == pcap::error::bad_byte_order_magic);
    }
    SECTION("section header shorter than the file claims") {
        auto f = shb(false);
        f.resize(20);
        CHECK(first_error(f) == pcap::error::truncated_record_data);
    }
    SECTION("unsupported major version") {
        auto f = shb(false);
        f[12] = 2;
        CHECK(first_error(f) == pcap::error::unsupported_version);
    }
    SECTION("trailing length differs from the leading one") {
        auto f = cat({head, block(false, 6, bytes(24, 0), std::nullopt, 99)});
        CHECK(first_error(f) == pcap::error::block_lengths_differ);
    }
    SECTION("total length not a multiple of 4") {
        auto f = cat({head, block(false, 6, bytes(24, 0), 37)});
        CHECK(first_error(f) == pcap::error::block_length_unaligned);
    }
    SECTION("total length below a block header") {
        auto f = cat({head, block(false, 6, bytes(24, 0), 8)});
        CHECK(first_error(f) == pcap::error::block_too_short);
    }
    SECTION("total length past the end of the file") {
        auto f = cat({head, block(false, 6, bytes(24, 0), 400)});
        CHECK(first_error(f) == pcap::error::truncated_record_data);
    }
    SECTION("a block header cut short") {
        auto f = cat({head, bytes{6, 0, 0, 0}});
        CHECK(first_error(f) == pcap::error::truncated_record_header);
    }
    SECTION("EPB too short for its fixed part") {
        auto f = cat({head, block(false, 6, bytes(8, 0))});
        CHECK(first_error(f) == pcap::error::block_too_short);
    }
    SECTION("EPB captured length past its block") {
        auto f = cat({head, epb(false, 0, 0, frame_a, 5, 40)});
        CHECK(first_error(f) == pcap::error::caplen_exceeds_block);
    }
    SECTION("EPB captured length above the interface snaplen") {
        auto f = cat({head, epb(false, 0, 0, bytes(65, 0), 65)});
        CHECK(first_error(f) == pcap::error::caplen_exceeds_snaplen);
    }
    SECTION("EPB on an interface never described") {
        auto f = cat({head, epb(false, 3, 0, frame_a, 5)});
        CHECK(first_error(f) == pcap::error::unknown_interface);
    }
    SECTION("SPB before any IDB") {
        auto f = cat({shb(false), spb(false, frame_a, 5)});
        CHECK(first_error(f) == pcap::error::unknown_interface);
    }
    SECTION("IDB option running past its block") {
        out body{false, {}};
        body.u16(1).u16(0).u32(0).u16(9).u16(40).u32(0);
        auto f = cat({shb(false), block(false, 1, body.b)});
        CHECK(first_error(f) == pcap::error::malformed_option);
    }
    SECTION("IDB timestamp resolution beyond 64 bits") {
        auto f = cat({shb(false), idb(false, 1, 0, uint8_t{20})});
        CHECK(first_error(f) == pcap::error::unsupported_timestamp_resolution);
    }
    SECTION("an interface list does not survive a new section") {
        auto f = cat({head, shb(false), epb(false, 0, 0, frame_a, 5)});
        CHECK(first_error(f) == pcap::error::unknown_interface);
    }
}

TEST_CASE("link layers: Ethernet, 802.1Q, 802.3, Linux cooked, raw IP") {
    const bytes macs(12, 0xee);
    const bytes ip = {0x45, 0, 0, 20};
    SECTION("plain Ethernet") {
        const auto in = cat({macs, {0x08, 0x00}, ip});
        auto f = pcap::strip_link_layer(1, in);
        REQUIRE(f);
        CHECK(f->outer_type == 0x0800);
        CHECK(f->ethertype == 0x0800);
        CHECK(f->vlan_count == 0);
        CHECK(bytes(f->payload.begin(), f->payload.end()) == ip);
    }
    SECTION("802.1Q and QinQ") {
        const auto in =
            cat({macs, {0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x20, 0x64, 0x08, 0x00}, ip});
        auto f = pcap::strip_link_layer(1, in);
        REQUIRE(f);
        CHECK(f->outer_type == 0x88a8);
        CHECK(f->vlan_count == 2);
        CHECK(f->vlan_tci[0] == 10);
        CHECK((f->vlan_tci[1] & 0x0fff) == 100);
        CHECK(f->ethertype == 0x0800);
        CHECK(bytes(f->payload.begin(), f->payload.end()) == ip);
    }
    SECTION("802.3 length instead of an EtherType") {
        auto f = pcap::strip_link_layer(1, cat({macs, {0x00, 0x26}, {0x42, 0x42, 0x03}}));
        REQUIRE(f);
        CHECK(f->ieee8023_length == 0x26);
        CHECK(f->ethertype == 0);
    }
    SECTION("Linux cooked v1 and v2") {
        bytes sll = {0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00};
        const auto in = cat({sll, ip});
        auto f = pcap::strip_link_layer(113, in);
        REQUIRE(f);
        CHECK(f->ethertype == 0x0800);
        CHECK(f->sll_pkttype == 0);
        CHECK(f->sll_hatype == 1);
        CHECK(bytes(f->payload.begin(), f->payload.end()) == ip);
        bytes sll2 = {0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 4, 6, 1, 2, 3, 4, 5, 6, 0, 0};
        const auto in2 = cat({sll2, ip});
        auto g = pcap::strip_link_layer(276, in2);
        REQUIRE(g);
        CHECK(g->ethertype == 0x0800);
        CHECK(g->sll_pkttype == 4);
        CHECK(bytes(g->payload.begin(), g->payload.end()) == ip);
    }
    SECTION("raw IP") {
        auto f = pcap::strip_link_layer(101, ip);
        REQUIRE(f);
        CHECK(f->ethertype == 0x0800);
        CHECK(f->payload.size() == ip.size());
        auto v6 = pcap::strip_link_layer(101, bytes{0x60, 0, 0, 0});
        REQUIRE(v6);
        CHECK(v6->ethertype == 0x86dd);
    }
    SECTION("named reasons") {
        using le = pcap::link_error;
        CHECK(pcap::strip_link_layer(147, ip).error() == le::unsupported_link_type);
        CHECK(pcap::strip_link_layer(1, bytes(13, 0)).error() == le::truncated_ethernet_header);
        CHECK(pcap::strip_link_layer(1, cat({macs, {0x81, 0x00, 0x00}})).error() ==
              le::truncated_vlan_tag);
        CHECK(pcap::strip_link_layer(
                  1, cat({macs, {0x81, 0, 0, 1, 0x81, 0, 0, 2, 0x81, 0, 0, 3, 8, 0}}))
                  .error() == le::too_many_vlan_tags);
        CHECK(pcap::strip_link_layer(113, bytes(15, 0)).error() == le::truncated_sll_header);
        CHECK(pcap::strip_link_layer(276, bytes(19, 0)).error() == le::truncated_sll_header);
        CHECK(pcap::strip_link_layer(101, bytes{}).error() == le::empty_raw_packet);
        CHECK(pcap::strip_link_layer(101, bytes{0x15}).error() == le::unknown_ip_version);
        CHECK(pcap::name(le::unsupported_link_type) == "unsupported_link_type");
    }
}

TEST_CASE("every reason has a distinct name") {
    std::vector<std::string_view> seen;
    for (int i = 0; i <= static_cast<int>(pcap::error::unsupported_timestamp_resolution); ++i) {
        auto n = pcap::name(static_cast<pcap::error>(i));
        CHECK(n != "unknown");
        CHECK(std::find(seen.begin(), seen.end(), n) == seen.end());
        seen.push_back(n);
    }
}

TEST_CASE("writer: what it writes reads back, micro and nano, truncated at the snaplen") {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path();
    for (auto p : {pcap::precision::micro, pcap::precision::nano}) {
        const auto path =
            (dir / ("pcap_file_test_" + std::to_string(static_cast<int>(p)) + ".pcap")).string();
        {
            auto w = pcap::file_writer::create(path, pcap::linktype::raw, 6, p);
            REQUIRE(w);
            CHECK_FALSE(w->write({1700000000, 123456789}, frame_a).has_value());
            CHECK_FALSE(w->write({1700000002, 5000}, frame_b).has_value());
            CHECK(w->records() == 2);
            CHECK_FALSE(w->close().has_value());
        }
        auto file = pcap::load_file(path);
        REQUIRE(file);
        auto recs = read_all(*file);
        REQUIRE(recs.size() == 2);
        CHECK(recs[0].link_type == pcap::linktype::raw);
        CHECK(recs[0].ts.sec == 1700000000);
        CHECK(recs[0].ts.nsec == (p == pcap::precision::nano ? 123456789u : 123456000u));
        CHECK(bytes(recs[0].data.begin(), recs[0].data.end()) == frame_a);
        CHECK(recs[1].data.size() == 6);  // cut to the snaplen
        CHECK(recs[1].original_length == 8);
        CHECK(bytes(recs[1].data.begin(), recs[1].data.end()) ==
              bytes(frame_b.begin(), frame_b.begin() + 6));
        fs::remove(path);
    }
}

TEST_CASE("writer and loader report why a file could not be used") {
    auto w = pcap::file_writer::create("/nonexistent-dir/x.pcap", 1);
    REQUIRE_FALSE(w);
    CHECK(w.error().reason == pcap::write_error::cannot_open);
    CHECK(w.error().sys_errno == ENOENT);
    auto l = pcap::load_file("/nonexistent-dir/x.pcap");
    REQUIRE_FALSE(l);
    CHECK(l.error().reason == pcap::load_error::cannot_open);
    CHECK(l.error().sys_errno == ENOENT);
    auto d = pcap::load_file("/");
    REQUIRE_FALSE(d);
    CHECK(d.error().reason == pcap::load_error::read_failed);
}

TEST_CASE("every shipped capture reads to its end") {
    const char* dir = std::getenv("DMVPN_TESTDATA");
    REQUIRE(dir != nullptr);
    size_t files = 0;
    for (const auto& e : std::filesystem::directory_iterator(std::string(dir) + "/captures")) {
        const auto ext = e.path().extension();
        if (ext != ".pcap" && ext != ".pcapng") {
            continue;
        }
        CAPTURE(e.path().string());
        auto file = pcap::load_file(e.path().string());
        REQUIRE(file);
        auto recs = read_all(*file);
        CHECK_FALSE(recs.empty());
        ++files;
    }
    CHECK(files >= 10);
}

TEST_CASE("pcapng: the obsolete Packet Block and if_tsoffset") {
    out idb_body{false, {}};
    idb_body.u16(pcap::linktype::ethernet).u16(0).u32(0);
    idb_body.u16(14).u16(8).u32(100).u32(0);  // if_tsoffset: 100 s
    idb_body.u16(0).u16(0);
    out opb_body{false, {}};
    opb_body.u16(0).u16(0).u32(0).u32(2500000).u32(5).u32(64).raw(frame_a);
    auto file = cat({shb(false), block(false, 1, idb_body.b), block(false, 2, opb_body.b)});
    auto recs = read_all(file);
    REQUIRE(recs.size() == 1);
    CHECK(recs[0].ts == pcap::timestamp{102, 500000000});
    CHECK(recs[0].original_length == 64);
    CHECK(bytes(recs[0].data.begin(), recs[0].data.end()) == frame_a);
}
