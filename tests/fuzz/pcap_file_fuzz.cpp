// libFuzzer target for the capture reader (dataplane/wire/pcap_file.hpp) and dmvpn-decode's
// engine behind it: every record points inside the input, numbers count up from 1, an error is
// named and sticks, every record decodes to one JSON object, and what the classic writer
// writes reads back to the same records. Seeds: the shipped capture files themselves.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "dataplane/wire/pcap_file.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "tools/decode_json.hpp"

namespace pcap = dmvpn::wire::pcap;
using dmvpn::fuzz::require;

namespace {

// Inputs are small; a cap keeps one input's work bounded whatever it claims.
constexpr size_t max_records = 4096;

void check_rewrite(const std::vector<pcap::record>& recs) {
    if (recs.empty()) {
        return;
    }
    const uint16_t link = recs.front().link_type;
    for (const auto& r : recs) {
        if (r.link_type != link) {
            return;  // a classic file has one link type; mixed pcapng sections do not fit it
        }
    }
    auto file = pcap::encode_file_header(link, 0, pcap::precision::nano);
    for (const auto& r : recs) {
        auto rec = pcap::encode_record(r.ts, r.data, r.original_length, pcap::precision::nano);
        file.insert(file.end(), rec.begin(), rec.end());
    }
    auto again = pcap::file_reader::open(file);
    require(again.has_value());
    for (const auto& r : recs) {
        auto n = again->next();
        require(n.has_value() && n->has_value());
        const auto& back = **n;
        require(back.number == r.number);
        require(back.link_type == link);
        require(dmvpn::fuzz::same_bytes(back.data, r.data));
        require(back.original_length >= back.data.size());
        require(back.original_length == r.original_length ||
                (r.original_length < r.data.size() && back.original_length == r.data.size()));
        // The classic header keeps 32 unsigned bits of seconds.
        if (r.ts.sec >= 0 && r.ts.sec <= int64_t{UINT32_MAX}) {
            require(back.ts == r.ts);
        }
    }
    auto end = again->next();
    require(end.has_value() && !end->has_value());
}

}  // namespace

// A key table with one row, so SK and SKF payloads of that IKE SA (SPIs 0102030405060708 /
// 1112131415161718, the ones tests/unit/ike_capture_support.hpp builds) go through decryption
// and reassembly.
const dmvpn::decode::keys& fuzz_keys() {
    static const dmvpn::decode::keys k = [] {
        auto rows = dmvpn::ike::keylog::parse_ikev2_table(
            "0102030405060708,1112131415161718,"
            "000102030405060708090a0b0c0d0e0f,101112131415161718191a1b1c1d1e1f,"
            "\"AES-CBC-128 [RFC3602]\",202122232425262728292a2b2c2d2e2f3031323334353637"
            "38393a3b3c3d3e3f,404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f,"
            "\"HMAC_SHA2_256_128 [RFC4868]\"\n");
        require(rows.has_value());
        return dmvpn::decode::keys{std::move(*rows)};
    }();
    return k;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::span<const uint8_t> input(data, size);
    auto reader = pcap::file_reader::open(input);
    if (!reader) {
        require(pcap::name(reader.error()) != "unknown");
        return 0;
    }
    std::vector<pcap::record> recs;
    // SKF fragments of one input's IKE SAs, as dmvpn-decode keeps them per file.
    dmvpn::decode::ike_fragments fragments;
    bool clean_end = false;
    while (recs.size() < max_records) {
        auto n = reader->next();
        if (!n) {
            require(pcap::name(n.error()) != "unknown");
            // Once failed, the reader keeps saying so.
            auto again = reader->next();
            require(!again.has_value() && again.error() == n.error());
            break;
        }
        if (!n->has_value()) {
            clean_end = true;
            break;
        }
        const pcap::record& r = **n;
        require(r.number == recs.size() + 1);
        require(dmvpn::fuzz::within(r.data, input));
        require(reader->offset() <= size);
        auto link = pcap::strip_link_layer(r.link_type, r.data);
        if (link) {
            require(dmvpn::fuzz::within(link->payload, r.data));
            require(link->vlan_count <= link->vlan_tci.size());
        } else {
            require(pcap::name(link.error()) != "unknown");
        }
        auto d = dmvpn::decode::decode_record(r, &fuzz_keys(), &fragments);
        require(d.json.size() >= 2 && d.json.front() == '{' && d.json.back() == '}');
        require(d.json.find('\n') == std::string::npos);
        require(!d.failed || d.json.find("\"error\":") != std::string::npos);
        recs.push_back(r);
    }
    if (clean_end) {
        require(reader->offset() == size);
        check_rewrite(recs);
    }
    return 0;
}
