// The FPM codec (control/fpm/codec.hpp) on streams recorded from FRR 8.4's zebra with
// dplane_fpm_nl (scripts/fpm/record-zebra), with and without next-hop groups, and on hostile
// frames. The expectations are staticd's configuration, written here by hand:
//   ip route 10.1.0.0/16 192.0.2.2
//   ip route 10.2.0.0/24 192.0.2.3
//   ip route 10.3.0.0/24 192.0.2.2
//   ip route 10.3.0.0/24 192.0.2.3
//   ip route 10.9.9.9/32 blackhole
// then, once zebra had sent those: `no ip route 10.2.0.0/24 192.0.2.3`,
// `ip route 10.4.0.0/22 192.0.2.9 150` and `ip route 10.1.0.0/16 192.0.2.4` (a second gateway:
// zebra's update, RTM_DELROUTE and RTM_NEWROUTE in one frame); zebra also sends its connected
// 192.0.2.0/24 (the veth holding 192.0.2.1/24) and the IPv6 link-local fe80::/64. DMVPN_FPM_STREAM
// names another recording of the same script (the live test records afresh).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>

#include "control/fpm/codec.hpp"

namespace fpm = dmvpn::fpm;

namespace {

std::vector<uint8_t> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in.good());
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string testdata() {
    const char* s = std::getenv("DMVPN_TESTDATA");
    return s ? s : "tests/data";
}

// The one message of a frame that holds one (the header's error, or the message's).
fpm::result<fpm::message> one(std::span<const uint8_t> frame) {
    auto ms = fpm::decode_frame(frame);
    if (!ms) {
        return dmvpn::wire::fail(ms.error());
    }
    REQUIRE(ms->size() == 1);
    return (*ms)[0];
}

std::string dotted(uint32_t a) {
    return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." +
           std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255);
}

struct entry {
    std::string protocol;
    bool blackhole = false;
    std::set<std::string> gateways;  // "" for a connected next hop (ifindex only)
    bool operator==(const entry&) const = default;
};

// One message into the table (next-hop objects into `nexthops`).
void apply_one(const fpm::message& m, fpm::nexthop_table& nexthops,
               std::map<std::string, entry>& table, size_t& ipv6_routes) {
    if (auto* nh = std::get_if<fpm::nexthop_object>(&m)) {
        REQUIRE(nexthops.apply(*nh).has_value());
        return;
    }
    const auto& r = std::get<fpm::route>(m);
    CHECK(r.table == 254);
    if (r.family == 10) {
        ++ipv6_routes;
        return;
    }
    const auto key = dotted(r.dst.v4()) + "/" + std::to_string(r.prefix_len);
    if (!r.add) {
        CHECK(table.erase(key) == 1);
        return;
    }
    entry e;
    e.protocol = std::string(fpm::protocol_name(r.protocol));
    e.blackhole = r.type == fpm::route_type::blackhole ||
                  (r.nexthop_id != 0 && nexthops.is_blackhole(r.nexthop_id));
    std::vector<fpm::nexthop> hops = r.nexthops;
    if (r.nexthop_id != 0) {
        auto resolved = nexthops.resolve(r.nexthop_id);
        REQUIRE(resolved.has_value());
        hops = *resolved;
    }
    for (const auto& h : hops) {
        e.gateways.insert(h.gateway ? dotted(h.gateway->v4()) : "");
    }
    table[key] = e;
}

// Applies a stream to an IPv4 table the way the hub's RIB source will: next-hop objects into
// the table, routes resolved through it. Returns the table, how many frames were seen and how
// many of them held more than one message.
std::map<std::string, entry> apply(const std::vector<uint8_t>& stream, size_t& frames,
                                   size_t& ipv6_routes, size_t& several) {
    fpm::stream_reader reader;
    fpm::nexthop_table nexthops;
    std::map<std::string, entry> table;
    frames = 0;
    ipv6_routes = 0;
    several = 0;
    // Feed in odd-sized pieces: framing must not depend on how TCP cut the stream.
    for (size_t off = 0; off < stream.size(); off += 7) {
        const size_t n = std::min<size_t>(7, stream.size() - off);
        reader.feed(std::span<const uint8_t>(stream.data() + off, n));
        for (;;) {
            auto f = reader.next();
            REQUIRE(f.has_value());
            if (!*f) {
                break;
            }
            ++frames;
            auto ms = fpm::decode_frame(**f);
            INFO("frame " << frames);
            REQUIRE(ms.has_value());
            several += ms->size() > 1 ? 1 : 0;
            for (const auto& m : *ms) {
                REQUIRE(m.has_value());
                apply_one(*m, nexthops, table, ipv6_routes);
            }
        }
    }
    CHECK(reader.buffered() == 0);
    return table;
}

std::map<std::string, entry> expected_table() {
    return {
        {"10.1.0.0/16", {"static", false, {"192.0.2.2", "192.0.2.4"}}},
        {"10.3.0.0/24", {"static", false, {"192.0.2.2", "192.0.2.3"}}},
        {"10.9.9.9/32", {"static", true, {}}},
        {"10.4.0.0/22", {"static", false, {"192.0.2.9"}}},
        {"192.0.2.0/24", {"connected", false, {""}}},
    };
}

}  // namespace

TEST_CASE("zebra's stream with next-hop groups gives staticd's table") {
    const char* live = std::getenv("DMVPN_FPM_STREAM");
    const auto stream =
        read_file(live ? std::string(live) : testdata() + "/fpm/zebra-8.4-static-nhg.bin");
    size_t frames = 0, v6 = 0, several = 0;
    const auto table = apply(stream, frames, v6, several);
    CHECK(table == expected_table());
    CHECK(frames >= 12);
    CHECK(v6 >= 1);
    CHECK(several >= 1);  // 10.1.0.0/16's update
}

TEST_CASE("zebra's stream without next-hop groups gives the same table") {
    const char* live = std::getenv("DMVPN_FPM_STREAM_NONHG");
    const auto stream =
        read_file(live ? std::string(live) : testdata() + "/fpm/zebra-8.4-static-nonhg.bin");
    size_t frames = 0, v6 = 0, several = 0;
    const auto table = apply(stream, frames, v6, several);
    CHECK(table == expected_table());
    CHECK(frames >= 7);
    CHECK(several >= 1);
}

TEST_CASE("encode and decode agree") {
    fpm::route r;
    r.family = 2;
    r.dst.family = 2;
    r.dst.bytes = {10, 20, 30, 0};
    r.prefix_len = 24;
    r.table = 254;
    r.protocol = fpm::protocol::bgp;
    r.metric = 20;
    fpm::address g1{2, {192, 0, 2, 7}}, g2{2, {192, 0, 2, 8}};
    r.nexthops = {{g1, 3, 1}, {g2, 3, 5}};
    auto back = one(fpm::encode_frame(r));
    REQUIRE(back.has_value());
    CHECK(std::get<fpm::route>(*back) == r);

    r.nexthops = {{g1, 4, 1}};
    r.table = 1000;
    r.add = false;
    back = one(fpm::encode_frame(r));
    REQUIRE(back.has_value());
    CHECK(std::get<fpm::route>(*back) == r);

    fpm::nexthop_object n;
    n.id = 77;
    n.group = {{12, 0}, {13, 3}};
    back = one(fpm::encode_frame(n));
    REQUIRE(back.has_value());
    CHECK(std::get<fpm::nexthop_object>(*back) == n);
}

TEST_CASE("host bits beyond the prefix are cleared") {
    fpm::route r;
    r.family = 2;
    r.dst = {2, {10, 1, 2, 3}};
    r.prefix_len = 16;
    auto back = one(fpm::encode_frame(r));
    REQUIRE(back.has_value());
    CHECK(std::get<fpm::route>(*back).dst.v4() == 0x0a010000u);
}

TEST_CASE("hostile frames are refused with a reason") {
    fpm::route r;
    r.family = 2;
    r.dst = {2, {10, 1, 0, 0}};
    r.prefix_len = 16;
    r.nexthops = {{fpm::address{2, {192, 0, 2, 2}}, 3, 1}};
    const auto good = fpm::encode_frame(r);
    REQUIRE(one(good).has_value());

    auto bad = good;
    bad[0] = 2;
    CHECK(one(bad).error() == fpm::error::bad_version);
    bad = good;
    bad[1] = 2;
    CHECK(one(bad).error() == fpm::error::bad_type);
    bad = good;
    bad[2] = 0;
    bad[3] = 2;
    CHECK(one(bad).error() == fpm::error::bad_length);
    // Every truncation is refused, never read past.
    for (size_t n = 0; n < good.size(); ++n) {
        std::vector<uint8_t> cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
        CHECK_FALSE(fpm::decode_frame(cut).has_value());
    }
    // nlmsg_len beyond the frame.
    bad = good;
    bad[4] = 0xff;
    CHECK(one(bad).error() == fpm::error::netlink_bad_length);
    // Prefix length 33.
    bad = good;
    bad[fpm::header_size + 16 + 1] = 33;
    CHECK(one(bad).error() == fpm::error::bad_prefix_length);
    // Family 7.
    bad = good;
    bad[fpm::header_size + 16] = 7;
    CHECK(one(bad).error() == fpm::error::bad_family);
    // An attribute longer than what is left.
    bad = good;
    bad[fpm::header_size + 16 + 12] = 0xf0;
    CHECK(one(bad).error() == fpm::error::attribute_truncated);
    // An RTA_DST of 3 bytes (rta_len 7).
    bad = good;
    bad[fpm::header_size + 16 + 12] = 7;
    CHECK(one(bad).error() == fpm::error::bad_attribute_length);
    // A netlink message that is neither a route nor a next hop (RTM_NEWLINK).
    bad = good;
    bad[fpm::header_size + 4] = 16;
    CHECK(one(bad).error() == fpm::error::unsupported_message);
}

TEST_CASE("a frame holding several netlink messages yields each, in order") {
    // zebra's DPLANE_OP_ROUTE_UPDATE: RTM_DELROUTE then RTM_NEWROUTE in one FPM frame.
    fpm::route del;
    del.add = false;
    del.family = 2;
    del.dst = {2, {172, 16, 0, 0}};
    del.prefix_len = 24;
    del.table = 254;
    del.protocol = fpm::protocol::zebra_static;
    fpm::route add = del;
    add.add = true;
    add.nexthop_id = 11;
    const std::vector<fpm::message> both = {del, add};
    const auto frame = fpm::encode_frame(both);
    auto ms = fpm::decode_frame(frame);
    REQUIRE(ms.has_value());
    REQUIRE(ms->size() == 2);
    REQUIRE((*ms)[0].has_value());
    REQUIRE((*ms)[1].has_value());
    CHECK(std::get<fpm::route>(*(*ms)[0]) == del);
    CHECK(std::get<fpm::route>(*(*ms)[1]) == add);

    // The second message refused: the first stands, the second is its error.
    auto bad = frame;
    const size_t second = fpm::header_size + frame[fpm::header_size];  // the first's nlmsg_len
    bad[second + 4] = 16;                                              // RTM_NEWLINK
    ms = fpm::decode_frame(bad);
    REQUIRE(ms.has_value());
    REQUIRE(ms->size() == 2);
    CHECK((*ms)[0].has_value());
    CHECK((*ms)[1].error() == fpm::error::unsupported_message);
    // Its length running past the frame: the walk cannot go on, the whole frame is refused.
    bad = frame;
    bad[second] = 0xff;
    CHECK(fpm::decode_frame(bad).error() == fpm::error::netlink_bad_length);
    // Trailing bytes shorter than a netlink header: an error after the messages.
    bad = frame;
    bad.insert(bad.end(), {0, 0, 0, 0});
    bad[2] = static_cast<uint8_t>(bad.size() >> 8);
    bad[3] = static_cast<uint8_t>(bad.size());
    ms = fpm::decode_frame(bad);
    REQUIRE(ms.has_value());
    REQUIRE(ms->size() == 3);
    CHECK((*ms)[2].error() == fpm::error::netlink_truncated);
    // An empty frame (a header alone).
    const std::vector<uint8_t> empty = {1, 1, 0, 4};
    CHECK(fpm::decode_frame(empty).error() == fpm::error::netlink_truncated);

    // Into one reused vector (the FPM thread's way): the same messages each time, nothing left
    // over from the frame before, and empty after a refused frame.
    fpm::frame_messages out;
    for (int round = 0; round < 2; ++round) {
        auto n = fpm::decode_frame(frame, out);
        REQUIRE(n.has_value());
        CHECK(*n == 2);
        REQUIRE(out.size() == 2);
        CHECK(std::get<fpm::route>(*out[0]) == del);
        CHECK(std::get<fpm::route>(*out[1]) == add);
    }
    bad = frame;
    bad[second] = 0xff;
    CHECK(fpm::decode_frame(bad, out).error() == fpm::error::netlink_bad_length);
    CHECK(out.empty());
    CHECK(fpm::decode_frame(empty, out).error() == fpm::error::netlink_truncated);
    CHECK(out.empty());
}

TEST_CASE("a poisoned stream stays refused; a partial frame waits") {
    fpm::stream_reader reader;
    const std::vector<uint8_t> garbage = {9, 9, 9, 9, 9};
    reader.feed(garbage);
    auto f = reader.next();
    CHECK_FALSE(f.has_value());
    CHECK(f.error() == fpm::error::bad_version);
    reader.reset();
    CHECK(reader.buffered() == 0);

    fpm::route r;
    r.family = 2;
    r.dst = {2, {10, 0, 0, 0}};
    r.prefix_len = 8;
    const auto frame = fpm::encode_frame(r);
    reader.feed(std::span<const uint8_t>(frame.data(), 3));
    f = reader.next();
    REQUIRE(f.has_value());
    CHECK_FALSE(f->has_value());
    reader.feed(std::span<const uint8_t>(frame.data() + 3, frame.size() - 3));
    f = reader.next();
    REQUIRE(f.has_value());
    REQUIRE(f->has_value());
    CHECK(std::ranges::equal(**f, frame));
}

TEST_CASE("the next-hop table is bounded and checks its groups") {
    fpm::nexthop_table table(3);
    fpm::nexthop_object a, b, g, gg, extra;
    a.id = 1;
    a.family = 2;
    a.gateway = fpm::address{2, {192, 0, 2, 1}};
    b.id = 2;
    b.family = 2;
    b.blackhole = true;
    g.id = 3;
    g.group = {{1, 0}, {2, 0}};
    REQUIRE(table.apply(a).has_value());
    REQUIRE(table.apply(b).has_value());
    REQUIRE(table.apply(g).has_value());
    // A group's blackhole member contributes no gateway.
    auto hops = table.resolve(3);
    REQUIRE(hops.has_value());
    REQUIRE(hops->size() == 1);
    CHECK(hops->front().gateway->v4() == 0xc0000201u);
    CHECK(table.is_blackhole(2));

    extra.id = 4;
    extra.family = 2;
    CHECK(table.apply(extra).error() == fpm::error::table_full);
    // Replacing an existing id is not growth.
    a.ifindex = 9;
    CHECK(table.apply(a).has_value());

    gg.id = 3;
    gg.group = {{3, 0}};
    CHECK(table.apply(gg).error() == fpm::error::group_of_groups);
    fpm::nexthop_object dangling;
    dangling.id = 3;
    dangling.group = {{99, 0}};
    CHECK(table.apply(dangling).error() == fpm::error::unknown_nexthop);
    CHECK(table.resolve(42).error() == fpm::error::unknown_nexthop);

    // Deleting a member leaves the group unresolvable until zebra replaces it.
    fpm::nexthop_object del;
    del.add = false;
    del.id = 1;
    CHECK(*table.apply(del));
    CHECK(table.resolve(3).error() == fpm::error::unknown_nexthop);
    CHECK(table.size() == 2);
}
