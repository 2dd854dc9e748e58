// The host kernel's IPv4 routing table through rtnetlink: what the redistribution thread
// (redistribute.hpp) writes there and reads back. Requests are encoded here, replies split and
// decoded here (the route messages with the FPM codec's rtnetlink decoder, control/fpm/codec).
// No DPDK; the reply parser is fuzzed (tests/fuzz/kernel_netlink_fuzz.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace dmvpn::rib::knl {

inline constexpr uint32_t main_table = 254;  // RT_TABLE_MAIN

// One IPv4 route of ours in the kernel: `dst/len` out of `ifindex`, through `gateway` (0: on
// link, scope link), tagged with rtm_protocol `protocol`.
struct kroute {
    uint32_t dst = 0;  // host byte order, host bits zero
    uint8_t len = 32;
    uint32_t gateway = 0;
    uint32_t ifindex = 0;
    uint8_t protocol = 0;
    uint32_t table = main_table;
    bool operator==(const kroute&) const = default;
};

// RTM_NEWROUTE (create or replace) or RTM_DELROUTE for `r`, asking for an acknowledgement.
std::vector<uint8_t> encode_route(const kroute& r, bool add, uint32_t seq);
// RTM_GETROUTE dump of the IPv4 routes.
std::vector<uint8_t> encode_dump(uint32_t seq);

// One message of a reply.
struct reply {
    enum class kind : uint8_t { ack, error, done, route, other };
    kind what = kind::other;
    uint32_t seq = 0;
    int error = 0;                // error: the (negative) errno the kernel returned
    std::optional<kroute> route;  // route: an IPv4 unicast route of any table and protocol
};

enum class parse_error : uint8_t {
    truncated,   // a header or a message cut short
    bad_length,  // nlmsg_len shorter than its header or past the buffer
};
std::string_view name(parse_error e) noexcept;

// Splits one recv()'s worth of netlink messages and hands each to `each`; stops at the first
// malformed one (what came before it was handed over). Route messages that are not IPv4
// unicast, or that the decoder refuses, come as kind::other.
std::optional<parse_error> parse_replies(std::span<const uint8_t> buf,
                                         const std::function<void(const reply&)>& each);

// Where the redistribution thread writes: the kernel through a NETLINK_ROUTE socket, or a
// recording table in the tests.
class kernel_table {
public:
    virtual ~kernel_table() = default;
    // Creates or replaces `r`. False: the kernel refused (errno in last_error()).
    virtual bool replace(const kroute& r) = 0;
    // Removes `r`; a route already gone counts as removed.
    virtual bool remove(const kroute& r) = 0;
    // The kernel's IPv4 routes of rtm_protocol `protocol` in `table`; none when the dump failed.
    virtual std::optional<std::vector<kroute>> dump(uint8_t protocol, uint32_t table) = 0;
    virtual int last_error() const noexcept = 0;
};

// The NETLINK_ROUTE one. Blocking calls, with a receive timeout: for a thread of its own.
// Null (errno set) when the socket cannot be opened.
std::unique_ptr<kernel_table> open_netlink();

}  // namespace dmvpn::rib::knl
