// FPM framing and the rtnetlink route / next-hop messages zebra's dplane_fpm_nl sends.
// Netlink is in the sending host's byte order (zebra runs on the hub's host: little-endian
// x86); the FPM header is big-endian.
#include "control/fpm/codec.hpp"

#include <algorithm>
#include <cstring>

namespace dmvpn::fpm {

namespace {

// rtnetlink numbers (linux/rtnetlink.h, linux/nexthop.h).
constexpr uint16_t rtm_newroute = 24;
constexpr uint16_t rtm_delroute = 25;
constexpr uint16_t rtm_newnexthop = 104;
constexpr uint16_t rtm_delnexthop = 105;

constexpr uint16_t rta_dst = 1;
constexpr uint16_t rta_oif = 4;
constexpr uint16_t rta_gateway = 5;
constexpr uint16_t rta_priority = 6;
constexpr uint16_t rta_multipath = 9;
constexpr uint16_t rta_table = 15;
constexpr uint16_t rta_nh_id = 30;

constexpr uint16_t nha_id = 1;
constexpr uint16_t nha_group = 2;
constexpr uint16_t nha_blackhole = 4;
constexpr uint16_t nha_oif = 5;
constexpr uint16_t nha_gateway = 6;

constexpr uint8_t af_unspec = 0;
constexpr uint8_t af_inet = 2;
constexpr uint8_t af_inet6 = 10;

constexpr size_t nlmsghdr_size = 16;
constexpr size_t rtmsg_size = 12;
constexpr size_t nhmsg_size = 8;
constexpr size_t rtattr_size = 4;
constexpr size_t rtnexthop_size = 8;
constexpr size_t nexthop_grp_size = 8;

constexpr size_t align4(size_t n) { return (n + 3) & ~size_t{3}; }

template <typename T>
T load(const uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

template <typename T>
void store(std::vector<uint8_t>& out, T v) {
    uint8_t b[sizeof v];
    std::memcpy(b, &v, sizeof v);
    out.insert(out.end(), b, b + sizeof v);
}

size_t address_size(uint8_t family) { return family == af_inet ? 4 : 16; }

struct attribute {
    uint16_t type;
    std::span<const uint8_t> value;
};

// Walks rtattrs; calls f(attr) for each; refuses a header or payload past `data`.
template <typename F>
result<bool> for_each_attribute(std::span<const uint8_t> data, F&& f) {
    size_t off = 0;
    while (off < data.size()) {
        if (data.size() - off < rtattr_size) {
            return wire::fail(error::attribute_truncated);
        }
        const auto len = load<uint16_t>(data.data() + off);
        const auto type = static_cast<uint16_t>(load<uint16_t>(data.data() + off + 2) & 0x3fff);
        if (len < rtattr_size || len > data.size() - off) {
            return wire::fail(error::attribute_truncated);
        }
        auto r = f(attribute{type, data.subspan(off + rtattr_size, len - rtattr_size)});
        if (!r) {
            return r;
        }
        off += align4(len);
    }
    return true;
}

result<uint32_t> u32(const attribute& a) {
    if (a.value.size() != 4) {
        return wire::fail(error::bad_attribute_length);
    }
    return load<uint32_t>(a.value.data());
}

result<address> addr(uint8_t family, const attribute& a) {
    if (a.value.size() != address_size(family)) {
        return wire::fail(error::bad_attribute_length);
    }
    address out;
    out.family = family;
    std::memcpy(out.bytes.data(), a.value.data(), a.value.size());
    return out;
}

result<std::vector<nexthop>> multipath(uint8_t family, std::span<const uint8_t> data) {
    std::vector<nexthop> out;
    size_t off = 0;
    while (off < data.size()) {
        if (data.size() - off < rtnexthop_size) {
            return wire::fail(error::attribute_truncated);
        }
        const auto len = load<uint16_t>(data.data() + off);
        if (len < rtnexthop_size || len > data.size() - off) {
            return wire::fail(error::attribute_truncated);
        }
        if (out.size() == max_nexthops) {
            return wire::fail(error::too_many_nexthops);
        }
        nexthop nh;
        nh.weight = static_cast<uint16_t>(data[off + 3] + 1);
        nh.ifindex = static_cast<uint32_t>(load<int32_t>(data.data() + off + 4));
        auto attrs = data.subspan(off + rtnexthop_size, len - rtnexthop_size);
        auto ok = for_each_attribute(attrs, [&](const attribute& a) -> result<bool> {
            if (a.type == rta_gateway) {
                auto g = addr(family, a);
                if (!g) {
                    return wire::fail(g.error());
                }
                nh.gateway = *g;
            }
            return true;
        });
        if (!ok) {
            return wire::fail(ok.error());
        }
        out.push_back(nh);
        off += align4(len);
    }
    return out;
}

result<message> decode_route(uint16_t type, std::span<const uint8_t> body) {
    if (body.size() < rtmsg_size) {
        return wire::fail(error::netlink_truncated);
    }
    route r;
    r.add = type == rtm_newroute;
    r.family = body[0];
    if (r.family != af_inet && r.family != af_inet6) {
        return wire::fail(error::bad_family);
    }
    r.prefix_len = body[1];
    if (r.prefix_len > (r.family == af_inet ? 32 : 128)) {
        return wire::fail(error::bad_prefix_length);
    }
    r.table = body[4];
    r.protocol = body[5];
    r.type = static_cast<route_type>(body[7]);
    r.dst.family = r.family;
    std::optional<nexthop> single;
    auto ok = for_each_attribute(body.subspan(rtmsg_size), [&](const attribute& a) -> result<bool> {
        switch (a.type) {
            case rta_dst: {
                auto d = addr(r.family, a);
                if (!d) {
                    return wire::fail(d.error());
                }
                r.dst = *d;
                break;
            }
            case rta_gateway: {
                auto g = addr(r.family, a);
                if (!g) {
                    return wire::fail(g.error());
                }
                if (!single) {
                    single.emplace();
                }
                single->gateway = *g;
                break;
            }
            case rta_oif: {
                auto v = u32(a);
                if (!v) {
                    return wire::fail(v.error());
                }
                if (!single) {
                    single.emplace();
                }
                single->ifindex = *v;
                break;
            }
            case rta_priority: {
                auto v = u32(a);
                if (!v) {
                    return wire::fail(v.error());
                }
                r.metric = *v;
                break;
            }
            case rta_table: {
                auto v = u32(a);
                if (!v) {
                    return wire::fail(v.error());
                }
                r.table = *v;
                break;
            }
            case rta_nh_id: {
                auto v = u32(a);
                if (!v) {
                    return wire::fail(v.error());
                }
                r.nexthop_id = *v;
                break;
            }
            case rta_multipath: {
                auto m = multipath(r.family, a.value);
                if (!m) {
                    return wire::fail(m.error());
                }
                r.nexthops = std::move(*m);
                break;
            }
            default:
                break;  // RTA_PREFSRC, RTA_ENCAP, metrics...: not ours to use
        }
        return true;
    });
    if (!ok) {
        return wire::fail(ok.error());
    }
    // Host bits beyond the prefix are cleared (the kernel refuses them; zebra never sends them).
    for (size_t bit = r.prefix_len; bit < address_size(r.family) * 8; ++bit) {
        r.dst.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
    }
    if (single && r.nexthops.empty()) {
        r.nexthops.push_back(*single);
    }
    return message{std::move(r)};
}

result<message> decode_nexthop(uint16_t type, std::span<const uint8_t> body) {
    if (body.size() < nhmsg_size) {
        return wire::fail(error::netlink_truncated);
    }
    nexthop_object n;
    n.add = type == rtm_newnexthop;
    n.family = body[0];
    if (n.family != af_inet && n.family != af_inet6 && n.family != af_unspec) {
        return wire::fail(error::bad_family);
    }
    bool have_id = false;
    auto ok = for_each_attribute(body.subspan(nhmsg_size), [&](const attribute& a) -> result<bool> {
        switch (a.type) {
            case nha_id: {
                auto v = u32(a);
                if (!v) {
                    return wire::fail(v.error());
                }
                n.id = *v;
                have_id = true;
                break;
            }
            case nha_blackhole:
                n.blackhole = true;
                break;
            case nha_oif: {
                auto v = u32(a);
                if (!v) {
                    return wire::fail(v.error());
                }
                n.ifindex = *v;
                break;
            }
            case nha_gateway: {
                if (n.family == af_unspec) {
                    return wire::fail(error::bad_family);
                }
                auto g = addr(n.family, a);
                if (!g) {
                    return wire::fail(g.error());
                }
                n.gateway = *g;
                break;
            }
            case nha_group: {
                if (a.value.size() % nexthop_grp_size != 0) {
                    return wire::fail(error::bad_attribute_length);
                }
                if (a.value.size() / nexthop_grp_size > max_nexthops) {
                    return wire::fail(error::too_many_nexthops);
                }
                for (size_t off = 0; off < a.value.size(); off += nexthop_grp_size) {
                    n.group.push_back(
                        group_member{load<uint32_t>(a.value.data() + off), a.value[off + 4]});
                }
                break;
            }
            default:
                break;  // NHA_GROUP_TYPE, NHA_ENCAP...: not ours to use
        }
        return true;
    });
    if (!ok) {
        return wire::fail(ok.error());
    }
    if (!have_id || n.id == 0) {
        return wire::fail(error::missing_id);
    }
    return message{std::move(n)};
}

void put_attribute(std::vector<uint8_t>& out, uint16_t type, std::span<const uint8_t> value) {
    store<uint16_t>(out, static_cast<uint16_t>(rtattr_size + value.size()));
    store<uint16_t>(out, type);
    out.insert(out.end(), value.begin(), value.end());
    out.resize(align4(out.size()), 0);
}

void put_u32(std::vector<uint8_t>& out, uint16_t type, uint32_t v) {
    uint8_t b[4];
    std::memcpy(b, &v, 4);
    put_attribute(out, type, b);
}

std::span<const uint8_t> address_bytes(const address& a) {
    return {a.bytes.data(), address_size(a.family)};
}

}  // namespace

std::string_view name(error e) noexcept {
    switch (e) {
        case error::truncated:
            return "truncated FPM frame";
        case error::bad_version:
            return "FPM version is not 1";
        case error::bad_type:
            return "FPM message type is not netlink";
        case error::bad_length:
            return "FPM length below its header";
        case error::netlink_truncated:
            return "netlink message truncated";
        case error::netlink_bad_length:
            return "netlink length outside the frame";
        case error::unsupported_message:
            return "netlink message is not a route or next hop";
        case error::bad_family:
            return "address family neither IPv4 nor IPv6";
        case error::bad_prefix_length:
            return "prefix length beyond the address";
        case error::attribute_truncated:
            return "netlink attribute truncated";
        case error::bad_attribute_length:
            return "netlink attribute of the wrong size";
        case error::too_many_nexthops:
            return "too many next hops";
        case error::missing_id:
            return "next-hop message without an id";
        case error::unknown_nexthop:
            return "unknown next-hop id";
        case error::table_full:
            return "next-hop table full";
        case error::group_of_groups:
            return "next-hop group member is a group";
    }
    return "unknown";
}

uint32_t address::v4() const noexcept {
    return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) |
           bytes[3];
}

std::string_view protocol_name(uint8_t proto) noexcept {
    switch (proto) {
        case protocol::kernel:
            return "connected";
        case protocol::bgp:
            return "bgp";
        case protocol::isis:
            return "isis";
        case protocol::ospf:
            return "ospf";
        case protocol::rip:
            return "rip";
        case protocol::nhrp:
            return "nhrp";
        case protocol::eigrp:
            return "eigrp";
        case protocol::zebra_static:
            return "static";
        default:
            return "other";
    }
}

result<size_t> frame_length(std::span<const uint8_t> data) {
    if (data.size() < header_size) {
        return wire::fail(error::truncated);
    }
    if (data[0] != version) {
        return wire::fail(error::bad_version);
    }
    if (data[1] != type_netlink) {
        return wire::fail(error::bad_type);
    }
    const size_t len = (size_t{data[2]} << 8) | data[3];
    if (len < header_size) {
        return wire::fail(error::bad_length);
    }
    return len;
}

result<frame_messages> decode_frame(std::span<const uint8_t> frame) {
    frame_messages out;
    auto n = decode_frame(frame, out);
    if (!n) {
        return wire::fail(n.error());
    }
    return out;
}

result<size_t> decode_frame(std::span<const uint8_t> frame, frame_messages& out) {
    out.clear();
    auto len = frame_length(frame);
    if (!len) {
        return wire::fail(len.error());
    }
    if (*len > frame.size()) {
        return wire::fail(error::truncated);
    }
    auto nl = frame.subspan(header_size, *len - header_size);
    if (nl.size() < nlmsghdr_size) {
        return wire::fail(error::netlink_truncated);
    }
    // At most max_frame / nlmsghdr_size messages: bounded by the 16-bit frame length.
    while (!nl.empty()) {
        if (nl.size() < nlmsghdr_size) {
            out.push_back(wire::fail(error::netlink_truncated));  // trailing bytes
            break;
        }
        const auto mlen = load<uint32_t>(nl.data());
        if (mlen < nlmsghdr_size || mlen > nl.size()) {
            out.clear();
            return wire::fail(error::netlink_bad_length);  // the walk cannot go on
        }
        out.push_back(decode_netlink(nl.first(mlen)));
        nl = nl.subspan(std::min<size_t>(align4(mlen), nl.size()));
    }
    return out.size();
}

result<message> decode_netlink(std::span<const uint8_t> nl) {
    if (nl.size() < nlmsghdr_size) {
        return wire::fail(error::netlink_truncated);
    }
    const auto len = load<uint32_t>(nl.data());
    const auto type = load<uint16_t>(nl.data() + 4);
    if (len < nlmsghdr_size || len > nl.size()) {
        return wire::fail(error::netlink_bad_length);
    }
    const auto body = nl.subspan(nlmsghdr_size, len - nlmsghdr_size);
    switch (type) {
        case rtm_newroute:
        case rtm_delroute:
            return decode_route(type, body);
        case rtm_newnexthop:
        case rtm_delnexthop:
            return decode_nexthop(type, body);
        default:
            return wire::fail(error::unsupported_message);
    }
}

std::vector<uint8_t> encode_frame(std::span<const message> ms) {
    std::vector<uint8_t> out(header_size, 0);
    for (const auto& m : ms) {
        const auto one = encode_frame(m);
        out.insert(out.end(), one.begin() + header_size, one.end());
    }
    out[0] = version;
    out[1] = type_netlink;
    out[2] = static_cast<uint8_t>(out.size() >> 8);
    out[3] = static_cast<uint8_t>(out.size());
    return out;
}

std::vector<uint8_t> encode_frame(const message& m) {
    std::vector<uint8_t> out(header_size + nlmsghdr_size, 0);
    uint16_t nl_type = 0;
    if (const auto* r = std::get_if<route>(&m)) {
        nl_type = r->add ? rtm_newroute : rtm_delroute;
        out.push_back(r->family);
        out.push_back(r->prefix_len);
        out.push_back(0);                                                      // src_len
        out.push_back(0);                                                      // tos
        out.push_back(static_cast<uint8_t>(r->table < 256 ? r->table : 252));  // RT_TABLE_COMPAT
        out.push_back(r->protocol);
        out.push_back(0);  // scope universe
        out.push_back(static_cast<uint8_t>(r->type));
        store<uint32_t>(out, 0);
        put_attribute(out, rta_dst, address_bytes(r->dst));
        if (r->table >= 256) {
            put_u32(out, rta_table, r->table);
        }
        put_u32(out, rta_priority, r->metric);
        if (r->nexthop_id != 0) {
            put_u32(out, rta_nh_id, r->nexthop_id);
        } else if (r->nexthops.size() == 1 && r->nexthops[0].weight == 1) {
            if (r->nexthops[0].gateway) {
                put_attribute(out, rta_gateway, address_bytes(*r->nexthops[0].gateway));
            }
            put_u32(out, rta_oif, r->nexthops[0].ifindex);
        } else if (!r->nexthops.empty()) {
            std::vector<uint8_t> mp;
            for (const auto& nh : r->nexthops) {
                const size_t start = mp.size();
                store<uint16_t>(mp, 0);
                mp.push_back(0);
                mp.push_back(static_cast<uint8_t>(nh.weight - 1));
                store<int32_t>(mp, static_cast<int32_t>(nh.ifindex));
                if (nh.gateway) {
                    put_attribute(mp, rta_gateway, address_bytes(*nh.gateway));
                }
                const auto len = static_cast<uint16_t>(mp.size() - start);
                std::memcpy(mp.data() + start, &len, 2);
            }
            put_attribute(out, rta_multipath, mp);
        }
    } else {
        const auto& n = std::get<nexthop_object>(m);
        nl_type = n.add ? rtm_newnexthop : rtm_delnexthop;
        out.push_back(n.family);
        out.push_back(0);   // scope
        out.push_back(11);  // RTPROT_ZEBRA
        out.push_back(0);
        store<uint32_t>(out, 0);
        put_u32(out, nha_id, n.id);
        if (!n.group.empty()) {
            std::vector<uint8_t> g;
            for (const auto& member : n.group) {
                store<uint32_t>(g, member.id);
                g.push_back(member.weight);
                g.push_back(0);
                store<uint16_t>(g, 0);
            }
            put_attribute(out, nha_group, g);
        }
        if (n.blackhole) {
            put_attribute(out, nha_blackhole, {});
        }
        if (n.gateway) {
            put_attribute(out, nha_gateway, address_bytes(*n.gateway));
        }
        if (n.ifindex != 0) {
            put_u32(out, nha_oif, n.ifindex);
        }
    }
    const auto nl_len = static_cast<uint32_t>(out.size() - header_size);
    std::memcpy(out.data() + header_size, &nl_len, 4);
    std::memcpy(out.data() + header_size + 4, &nl_type, 2);
    const uint16_t flags = 0x501;  // NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE, as zebra
    std::memcpy(out.data() + header_size + 6, &flags, 2);
    out[0] = version;
    out[1] = type_netlink;
    out[2] = static_cast<uint8_t>(out.size() >> 8);
    out[3] = static_cast<uint8_t>(out.size());
    return out;
}

void stream_reader::feed(std::span<const uint8_t> bytes) {
    if (_start > 0 && _start == _buf.size()) {
        _buf.clear();
        _start = 0;
    } else if (_start > max_frame) {
        _buf.erase(_buf.begin(), _buf.begin() + static_cast<std::ptrdiff_t>(_start));
        _start = 0;
    }
    _buf.insert(_buf.end(), bytes.begin(), bytes.end());
}

result<std::optional<std::span<const uint8_t>>> stream_reader::next() {
    const std::span<const uint8_t> avail(_buf.data() + _start, _buf.size() - _start);
    if (avail.size() < header_size) {
        return std::optional<std::span<const uint8_t>>{};
    }
    auto len = frame_length(avail);
    if (!len) {
        return wire::fail(len.error());
    }
    if (avail.size() < *len) {
        return std::optional<std::span<const uint8_t>>{};
    }
    _start += *len;
    return std::optional<std::span<const uint8_t>>{avail.first(*len)};
}

void stream_reader::reset() noexcept {
    _buf.clear();
    _start = 0;
}

result<bool> nexthop_table::apply(const nexthop_object& n) {
    if (!n.add) {
        return _objects.erase(n.id) > 0;
    }
    for (const auto& member : n.group) {
        auto it = _objects.find(member.id);
        if (it == _objects.end()) {
            return wire::fail(error::unknown_nexthop);
        }
        if (!it->second.group.empty()) {
            return wire::fail(error::group_of_groups);
        }
    }
    auto it = _objects.find(n.id);
    if (it != _objects.end()) {
        it->second = n;
        return true;
    }
    if (_objects.size() >= _limit) {
        return wire::fail(error::table_full);
    }
    _objects.emplace(n.id, n);
    return true;
}

result<std::vector<nexthop>> nexthop_table::resolve(uint32_t id) const {
    auto it = _objects.find(id);
    if (it == _objects.end()) {
        return wire::fail(error::unknown_nexthop);
    }
    std::vector<nexthop> out;
    auto one = [](const nexthop_object& o, uint16_t weight) {
        return nexthop{o.gateway, o.ifindex, weight};
    };
    if (it->second.group.empty()) {
        if (!it->second.blackhole) {
            out.push_back(one(it->second, 1));
        }
        return out;
    }
    for (const auto& member : it->second.group) {
        auto m = _objects.find(member.id);
        if (m == _objects.end()) {
            return wire::fail(error::unknown_nexthop);  // deleted since the group was made
        }
        if (!m->second.blackhole) {
            out.push_back(one(m->second, static_cast<uint16_t>(member.weight + 1)));
        }
    }
    return out;
}

bool nexthop_table::is_blackhole(uint32_t id) const {
    auto it = _objects.find(id);
    return it != _objects.end() && it->second.blackhole && it->second.group.empty();
}

}  // namespace dmvpn::fpm
