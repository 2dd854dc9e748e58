// What the IKEv2 and ISAKMP codec tests share: a capture's UDP payloads, message assembly.
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <vector>

#include "dataplane/wire/ipv4.hpp"
#include "tests/unit/crypto_test_support.hpp"

namespace crypto_test {

// A capture's UDP payloads (IPv4, either port), in frame order, through the team's pcap reader.
inline std::vector<bytes> udp_payloads(const std::string& name) {
    std::string path;
    const std::pair<const char*, const char*> dirs[] = {{"DMVPN_TESTDATA", "/captures/"},
                                                        {"DMVPN_SHARED_CAPTURES", "/"}};
    for (const auto& [var, sub] : dirs) {
        const char* dir = std::getenv(var);
        if (dir != nullptr && std::filesystem::exists(std::string(dir) + sub + name)) {
            path = std::string(dir) + sub + name;
            break;
        }
    }
    if (path.empty()) {
        FAIL("capture not found: " << name);
    }
    std::vector<bytes> out;
    for (const auto& packet : read_pcap_ipv4(path)) {
        auto ip = dmvpn::wire::parse_ipv4(packet, dmvpn::wire::checksum_check::skip);
        REQUIRE(ip);
        REQUIRE(ip->hdr.protocol == dmvpn::wire::ip_proto::udp);
        REQUIRE(ip->payload.size() >= 8);
        out.emplace_back(ip->payload.begin() + 8, ip->payload.end());
    }
    return out;
}

inline bytes cat(std::initializer_list<bytes> parts) {
    bytes out;
    for (const auto& p : parts) {
        out.insert(out.end(), p.begin(), p.end());
    }
    return out;
}

// An IKE header (RFC 7296 section 3.1; ISAKMP, RFC 2408 section 3.1: version 0x10) with the given
// first payload and length.
inline bytes hdr(uint8_t next, uint8_t exch, uint8_t flags, uint32_t mid, uint32_t len,
                 uint8_t version = 0x20) {
    bytes h = hex("0102030405060708 1112131415161718");
    h.push_back(next);
    h.push_back(version);
    h.push_back(exch);
    h.push_back(flags);
    for (int s = 24; s >= 0; s -= 8) {
        h.push_back(static_cast<uint8_t>(mid >> s));
    }
    for (int s = 24; s >= 0; s -= 8) {
        h.push_back(static_cast<uint8_t>(len >> s));
    }
    return h;
}

// A generic payload header (RFC 7296 section 3.2; RFC 2408 section 3.2: flags reserved): next,
// flags, length, body.
inline bytes pl(uint8_t next, const bytes& body, uint8_t flags = 0) {
    const auto len = static_cast<uint16_t>(4 + body.size());
    return cat(
        {bytes{next, flags, static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len)}, body});
}

}  // namespace crypto_test
