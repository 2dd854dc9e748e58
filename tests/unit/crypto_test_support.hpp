// Helpers for the crypto tests: hex, reading IPv4 packets out of pcap files, GRE-in-IPv4
// packets in buffers with head- and tailroom.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/esp_transport.hpp"
#include "dataplane/wire/checksum.hpp"
#include "dataplane/wire/pcap_file.hpp"

namespace crypto_test {

using bytes = std::vector<uint8_t>;

inline bytes hex(std::string_view s) {
    bytes out;
    int hi = -1;
    for (char c : s) {
        int v = -1;
        if (c >= '0' && c <= '9') {
            v = c - '0';
        } else if (c >= 'a' && c <= 'f') {
            v = c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            v = c - 'A' + 10;
        }
        if (v < 0) {
            continue;  // spaces and separators
        }
        if (hi < 0) {
            hi = v;
        } else {
            out.push_back(static_cast<uint8_t>(hi * 16 + v));
            hi = -1;
        }
    }
    return out;
}

inline std::string capture_path(const std::string& name) {
    const char* dir = std::getenv("DMVPN_TESTDATA");
    return std::string(dir != nullptr ? dir : "tests/data") + "/captures/" + name;
}

// The IPv4 packets of a capture file, link layer stripped, through the team's pcap reader.
inline std::vector<bytes> read_pcap_ipv4(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        throw std::runtime_error("cannot open " + path);
    }
    const bytes file((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto reader = dmvpn::wire::pcap::file_reader::open(file);
    if (!reader) {
        throw std::runtime_error("not a capture: " + path);
    }
    std::vector<bytes> out;
    for (;;) {
        auto rec = reader->next();
        if (!rec) {
            throw std::runtime_error("bad record in " + path);
        }
        if (!rec->has_value()) {
            break;
        }
        const auto& r = **rec;
        auto frame = dmvpn::wire::pcap::strip_link_layer(r.link_type, r.data);
        if (frame && frame->ethertype == 0x0800) {
            out.emplace_back(frame->payload.begin(), frame->payload.end());
        }
    }
    return out;
}

// A packet in a buffer with room on both sides, as an mbuf would hold it.
class packet_buffer {
public:
    packet_buffer(std::span<const uint8_t> packet, uint32_t headroom = 128, uint32_t tailroom = 128)
        : _mem(headroom + packet.size() + tailroom, 0xee),
          _head(headroom),
          _len(static_cast<uint32_t>(packet.size())),
          _tail(tailroom) {
        std::copy(packet.begin(), packet.end(), _mem.begin() + headroom);
    }

    dmvpn::crypto::esp_packet desc() { return {_mem.data() + _head, _len, _head, _tail}; }
    // Takes the descriptor a burst call returned as the buffer's new extent.
    void update(const dmvpn::crypto::esp_packet& p) {
        _head = static_cast<uint32_t>(p.data - _mem.data());
        _len = p.len;
        _tail = p.tailroom;
    }
    std::span<uint8_t> bytes_view() { return {_mem.data() + _head, _len}; }
    bytes copy() const { return bytes(_mem.begin() + _head, _mem.begin() + _head + _len); }
    uint32_t headroom() const { return _head; }
    uint32_t tailroom() const { return _tail; }
    size_t capacity() const { return _mem.size(); }

private:
    std::vector<uint8_t> _mem;
    uint32_t _head;
    uint32_t _len;
    uint32_t _tail;
};

inline bool ipv4_checksum_ok(std::span<const uint8_t> ip) {
    const size_t ihl = size_t{ip[0] & 0x0fu} * 4;
    return ip.size() >= ihl && dmvpn::wire::inet_checksum(ip.first(ihl)) == 0;
}

inline uint16_t be16(std::span<const uint8_t> b, size_t off) {
    return static_cast<uint16_t>((b[off] << 8) | b[off + 1]);
}
inline uint32_t be32(std::span<const uint8_t> b, size_t off) {
    return (uint32_t{b[off]} << 24) | (uint32_t{b[off + 1]} << 16) | (uint32_t{b[off + 2]} << 8) |
           uint32_t{b[off + 3]};
}

// An IPv4 datagram from 198.51.100.1 to 203.0.113.2 carrying `payload` as `protocol`, with a
// correct header checksum.
inline bytes ipv4_packet(uint8_t protocol, std::span<const uint8_t> payload, uint16_t id = 1) {
    bytes p(20 + payload.size());
    const auto total = static_cast<uint16_t>(p.size());
    const uint8_t header[20] = {0x45,
                                0x00,
                                static_cast<uint8_t>(total >> 8),
                                static_cast<uint8_t>(total),
                                static_cast<uint8_t>(id >> 8),
                                static_cast<uint8_t>(id),
                                0x40,
                                0x00,
                                64,
                                protocol,
                                0,
                                0,
                                198,
                                51,
                                100,
                                1,
                                203,
                                0,
                                113,
                                2};
    std::copy(std::begin(header), std::end(header), p.begin());
    std::copy(payload.begin(), payload.end(), p.begin() + 20);
    const uint16_t sum = dmvpn::wire::inet_checksum({p.data(), 20});
    p[10] = static_cast<uint8_t>(sum >> 8);
    p[11] = static_cast<uint8_t>(sum);
    return p;
}

// GRE (RFC 2890, key 42) carrying `inner_len` bytes of IPv4 payload, inside IPv4 protocol 47:
// what the hub hands to ESP.
inline bytes gre_packet(size_t inner_len, uint16_t id = 1) {
    bytes gre(8 + inner_len);
    const uint8_t header[8] = {0x20, 0x00, 0x08, 0x00, 0, 0, 0, 42};
    std::copy(std::begin(header), std::end(header), gre.begin());
    for (size_t i = 0; i < inner_len; ++i) {
        gre[8 + i] = static_cast<uint8_t>(i * 7 + id);
    }
    return ipv4_packet(47, gre, id);
}

}  // namespace crypto_test
