// IPv4 addresses, prefixes and MAC addresses as the spoke emulator's options and reports spell
// them.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "dataplane/wire/number.hpp"

namespace dmvpn::spokesim {

// Host byte order throughout the emulator; the framing code converts at the wire.
using ipv4 = uint32_t;

struct prefix {
    ipv4 network = 0;
    uint8_t length = 0;

    ipv4 mask() const noexcept { return length == 0 ? 0 : ~ipv4{0} << (32 - length); }
    bool contains(ipv4 a) const noexcept { return (a & mask()) == network; }
    // Number of addresses in the prefix, as 64 bits so a /0 fits.
    uint64_t size() const noexcept { return uint64_t{1} << (32 - length); }
    bool operator==(const prefix&) const = default;
};

using mac = std::array<uint8_t, 6>;

std::optional<ipv4> parse_ipv4(std::string_view s);
// "a.b.c.d/len"; host bits must be zero so a typo cannot silently move a whole topology.
std::optional<prefix> parse_prefix(std::string_view s);
std::optional<mac> parse_mac(std::string_view s);
using wire::parse_uint;  // decimal, or hex with 0x

std::string to_string(ipv4 a);
std::string to_string(const prefix& p);
std::string to_string(const mac& m);

// One NHS of --nhs (tools/spokesim/nhs.hpp).
struct nhs_address {
    ipv4 nbma = 0;
    ipv4 overlay = 0;
    bool operator==(const nhs_address&) const = default;
};
inline constexpr size_t max_nhs = 8;

// "NBMA,OVERLAY" (two IPv4 addresses, neither 0.0.0.0).
std::optional<nhs_address> parse_nhs(std::string_view s);

}  // namespace dmvpn::spokesim
