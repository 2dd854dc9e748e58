// Helpers the NHRP server's files share (server.cpp, server_nhs.cpp); not part of its API.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <utility>

#include "control/nhrp/packet.hpp"
#include "control/nhrp/server.hpp"
#include "dataplane/wire/reader.hpp"

namespace dmvpn::nhrp::detail {

inline std::optional<uint32_t> ipv4_of(const bytes& b) noexcept {
    if (b.size() != 4) {
        return std::nullopt;
    }
    return wire::load_be32(b.data());
}

inline int64_t to_ms(timestamp t) noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

inline timestamp from_ms(int64_t ms) noexcept {
    return timestamp{
        std::chrono::duration_cast<timestamp::duration>(std::chrono::milliseconds(ms))};
}

inline extension blank_extension(uint16_t type, bool compulsory) {
    extension e;
    e.type = type;
    e.compulsory = compulsory;
    return e;
}

// Originated packets share Cisco's layout: fixed header with hop count 255, IPv4 everywhere.
inline packet originate(op type, const bytes& src_nbma, const bytes& src_proto, bytes dst_proto) {
    packet p;
    p.hdr.type = type;
    p.hdr.hop_count = 255;
    p.src_nbma = src_nbma;
    p.src_proto = src_proto;
    p.dst_proto = std::move(dst_proto);
    return p;
}

}  // namespace dmvpn::nhrp::detail
