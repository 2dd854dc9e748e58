// FRR zebra's Forwarding Plane Manager stream, as its dplane_fpm_nl module sends it (FRR 8.4):
// the FPM framing (version 1, type netlink, 16-bit length) around one rtnetlink message per
// frame: RTM_NEWROUTE / RTM_DELROUTE, and RTM_NEWNEXTHOP / RTM_DELNEXTHOP when zebra uses
// next-hop groups (its default; `no fpm use-next-hop-groups` puts gateways in the route).
// Control-side code (the FPM thread, tools, tests): allocates, never runs on a worker. Every
// refusal names what was wrong; nothing here trusts a length it has not checked.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "dataplane/wire/result.hpp"

namespace dmvpn::fpm {

inline constexpr size_t header_size = 4;
inline constexpr uint8_t version = 1;
inline constexpr uint8_t type_netlink = 1;
// The header's length is 16 bits and counts the header: no frame is larger.
inline constexpr size_t max_frame = 65535;
// Gateways of one route (RTA_MULTIPATH) or members of one group (NHA_GROUP) we accept.
inline constexpr size_t max_nexthops = 256;

enum class error : uint8_t {
    truncated,             // fewer bytes than a header or the length field says
    bad_version,           // FPM header version is not 1
    bad_type,              // FPM message type is not netlink (1)
    bad_length,            // FPM length below the header size
    netlink_truncated,     // nlmsghdr or its fixed body cut short
    netlink_bad_length,    // nlmsg_len outside the frame
    unsupported_message,   // a netlink type that is not a route or next-hop message
    bad_family,            // neither AF_INET nor AF_INET6 (AF_UNSPEC only for groups)
    bad_prefix_length,     // dst_len above 32 / 128
    attribute_truncated,   // an rtattr header or payload runs past its container
    bad_attribute_length,  // an address or integer attribute of the wrong size
    too_many_nexthops,     // more than max_nexthops gateways or group members
    missing_id,            // a next-hop message without NHA_ID
    unknown_nexthop,       // a route or group naming a next-hop id the table does not hold
    table_full,            // the next-hop table is at its limit
    group_of_groups,       // a group member that is itself a group (Linux forbids it too)
};
std::string_view name(error e) noexcept;

template <typename T>
using result = wire::result<T, error>;

struct address {
    uint8_t family = 0;  // 2 (AF_INET) or 10 (AF_INET6)
    std::array<uint8_t, 16> bytes{};

    bool operator==(const address&) const = default;
    // IPv4 in host byte order (family 2 only).
    uint32_t v4() const noexcept;
};

// rtm_protocol values zebra writes (FRR's RTPROT_* in zebra/rt_netlink.h, and the kernel's).
namespace protocol {
inline constexpr uint8_t kernel = 2;  // zebra's connected routes
inline constexpr uint8_t bgp = 186;
inline constexpr uint8_t isis = 187;
inline constexpr uint8_t ospf = 188;
inline constexpr uint8_t rip = 189;
inline constexpr uint8_t nhrp = 191;
inline constexpr uint8_t eigrp = 192;
inline constexpr uint8_t zebra_static = 196;
}  // namespace protocol
// "bgp", "ospf", "static", "connected", ... ("proto-N" for one we do not name).
std::string_view protocol_name(uint8_t proto) noexcept;

enum class route_type : uint8_t {
    unicast = 1,
    blackhole = 6,
    unreachable = 7,
    prohibit = 8,
};

struct nexthop {
    std::optional<address> gateway;  // none: directly connected through ifindex
    uint32_t ifindex = 0;
    uint16_t weight = 1;  // 1..256: RTA_MULTIPATH rtnh_hops + 1, or a group member weight + 1

    bool operator==(const nexthop&) const = default;
};

struct route {
    bool add = true;  // RTM_NEWROUTE (false: RTM_DELROUTE)
    uint8_t family = 0;
    address dst;
    uint8_t prefix_len = 0;
    uint32_t table = 0;  // RTA_TABLE when present, else rtm_table
    uint8_t protocol = 0;
    route_type type = route_type::unicast;
    uint32_t metric = 0;            // RTA_PRIORITY
    uint32_t nexthop_id = 0;        // RTA_NH_ID (0: the gateways are inline)
    std::vector<nexthop> nexthops;  // RTA_GATEWAY/RTA_OIF, or RTA_MULTIPATH

    bool operator==(const route&) const = default;
};

struct group_member {
    uint32_t id = 0;
    uint8_t weight = 0;  // as sent (the kernel's weight - 1)

    bool operator==(const group_member&) const = default;
};

struct nexthop_object {
    bool add = true;  // RTM_NEWNEXTHOP (false: RTM_DELNEXTHOP)
    uint32_t id = 0;
    uint8_t family = 0;  // 0 for a group
    bool blackhole = false;
    std::optional<address> gateway;
    uint32_t ifindex = 0;
    std::vector<group_member> group;

    bool operator==(const nexthop_object&) const = default;
};

using message = std::variant<route, nexthop_object>;

// The FPM header at the start of `data`: the whole frame's length (header included).
result<size_t> frame_length(std::span<const uint8_t> data);
// Every netlink message of one frame, in order. A frame may hold several: zebra 8.4 sends a
// route that changes (DPLANE_OP_ROUTE_UPDATE) as RTM_DELROUTE then RTM_NEWROUTE in one frame
// (dplane_fpm_nl.c, fpm_nl_enqueue), so taking only the first message loses the route. The FPM
// header, an empty frame or a netlink length running past the frame fail the whole frame; a
// message that does not decode is its own error in place, the others stand.
using frame_messages = std::vector<result<message>>;
result<frame_messages> decode_frame(std::span<const uint8_t> frame);
// The same into `out` (cleared first, its capacity kept): the FPM thread decodes every frame
// into one vector rather than allocating one per frame. The count of messages, or the frame's
// error (`out` then empty).
result<size_t> decode_frame(std::span<const uint8_t> frame, frame_messages& out);
// One netlink message alone (what follows the FPM header; extra bytes after it are not read).
result<message> decode_netlink(std::span<const uint8_t> nl);
// The frame zebra would send for `m` (tests, the bench's route generator).
std::vector<uint8_t> encode_frame(const message& m);
// Several messages in one frame, as zebra sends a route update (tests).
std::vector<uint8_t> encode_frame(std::span<const message> ms);

// Splits a TCP byte stream into frames. Holds at most one partial frame plus what one feed()
// brings (bounded by max_frame + the caller's read size). A bad header poisons the stream: FPM
// has no resynchronisation, the connection must be closed (zebra reconnects and resends all).
class stream_reader {
public:
    void feed(std::span<const uint8_t> bytes);
    // The next complete frame, std::nullopt when more bytes are needed, or the header's error.
    // The frame is a view of the reader's buffer: valid until the next feed() or reset().
    result<std::optional<std::span<const uint8_t>>> next();
    size_t buffered() const noexcept { return _buf.size() - _start; }
    void reset() noexcept;

private:
    std::vector<uint8_t> _buf;
    size_t _start = 0;
};

// zebra's next-hop objects by id, so that a route naming RTA_NH_ID resolves to gateways.
// Bounded: past `limit` objects a new id is refused (table_full), never grown.
class nexthop_table {
public:
    explicit nexthop_table(size_t limit = 1u << 20) : _limit(limit) {}

    result<bool> apply(const nexthop_object& n);
    // The gateways of `id` (a group expands to its members' gateways with their weights); an
    // empty vector for a blackhole next hop.
    result<std::vector<nexthop>> resolve(uint32_t id) const;
    bool is_blackhole(uint32_t id) const;
    size_t size() const noexcept { return _objects.size(); }
    void clear() noexcept { _objects.clear(); }

private:
    size_t _limit;
    std::unordered_map<uint32_t, nexthop_object> _objects;
};

}  // namespace dmvpn::fpm
