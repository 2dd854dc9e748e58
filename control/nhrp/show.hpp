// Rendering of the NHRP show commands (`show nhrp [detail|brief|summary|traffic]`, `show dmvpn`)
// as Cisco-like text or JSON: pure functions of the server's state and the time, no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "control/nhrp/server.hpp"

namespace dmvpn::nhrp {

enum class show_format : uint8_t { text, json };

// `show nhrp` (and `show nhrp detail`, which adds each entry's requesters).
std::string show_nhrp(const server& s, timestamp now, show_format f, bool detail = false);
// `show nhrp brief`: one line per entry.
std::string show_nhrp_brief(const server& s, show_format f);
// `show nhrp summary`: entry counts by type and the cache's memory.
std::string show_nhrp_summary(const server& s, show_format f);
// `show nhrp traffic`: packets sent and received per NHRP type, drops per reason, per tunnel.
std::string show_nhrp_traffic(const server& s, show_format f);
// `show ip nhrp nhs [detail]`: the hub's registrations with its NHS peers (hub to hub).
std::string show_nhrp_nhs(const server& s, timestamp now, show_format f, bool detail = false);
// `show dmvpn`: one line per peer NBMA address.
std::string show_dmvpn(const server& s, timestamp now, show_format f);

// "00:01:10" under a day, then "1d02h", then "2w3d", as IOS prints ages.
std::string format_age(std::chrono::seconds age);

}  // namespace dmvpn::nhrp
