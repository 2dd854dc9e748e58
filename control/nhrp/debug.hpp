// `debug nhrp`: an NHRP packet as Cisco IOS's `debug nhrp packet` prints it, for the log.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace dmvpn::nhrp {

enum class debug_direction : uint8_t { receive, send };

// The lines (joined by '\n', no trailing one) for one NHRP packet (the GRE payload) received or
// sent on `tunnel`, between the NBMA addresses `src` and `dst` (host order). Authentication data
// is printed as its length, never its bytes. A packet that does not parse gets one line naming
// why.
std::string debug_packet(debug_direction dir, std::string_view tunnel, uint32_t src, uint32_t dst,
                         std::span<const uint8_t> nhrp);

}  // namespace dmvpn::nhrp
