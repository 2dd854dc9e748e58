// The NHRP server's parts on their own (timer wheel, cache), its show commands as text and JSON,
// and one of its replies read back by tshark inside IPv4/GRE.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>

#include <unistd.h>

#include "control/nhrp/cache.hpp"
#include "control/nhrp/server.hpp"
#include "control/nhrp/show.hpp"
#include "control/timer_wheel.hpp"
#include "dataplane/wire/checksum.hpp"
#include "dataplane/wire/reader.hpp"
#include "tests/unit/nhrp_server_util.hpp"

using namespace dmvpn::nhrp;
using namespace dmvpn::nhrp::test;
using dmvpn::control::timer_wheel;

TEST_CASE("timer wheel: fires at (never before) the deadline, across revolutions and jumps",
          "[nhrp_server][timer_wheel]") {
    timer_wheel<int> w(std::chrono::milliseconds(100), 8);  // 0.8 s per revolution
    std::vector<int> fired;
    auto record = [&](int v) { fired.push_back(v); };
    w.advance(at_s(0), record);
    w.schedule(at(std::chrono::milliseconds(250)), 1);
    w.schedule(at(std::chrono::milliseconds(2050)), 2);  // two and a half revolutions away
    w.schedule(at(std::chrono::milliseconds(100)), 3);
    CHECK(w.size() == 3);
    w.advance(at(std::chrono::milliseconds(99)), record);
    CHECK(fired.empty());
    w.advance(at(std::chrono::milliseconds(100)), record);
    CHECK(fired == std::vector<int>{3});
    w.advance(at(std::chrono::milliseconds(299)), record);
    CHECK(fired == std::vector<int>{3});  // 250 ms rounds up to the 300 ms tick, never down
    w.advance(at(std::chrono::milliseconds(300)), record);
    CHECK(fired == std::vector<int>{3, 1});
    w.advance(at(std::chrono::milliseconds(2000)), record);
    CHECK(fired.size() == 2);
    w.advance(at(std::chrono::milliseconds(2100)), record);
    CHECK(fired == std::vector<int>{3, 1, 2});
    CHECK(w.size() == 0);

    // A jump of many revolutions fires everything due, once.
    for (int i = 0; i < 100; ++i) {
        w.schedule(at(std::chrono::milliseconds(3000 + i * 37)), 100 + i);
    }
    fired.clear();
    CHECK(w.advance(at_s(3600), record) == 100);
    std::sort(fired.begin(), fired.end());
    CHECK(fired.front() == 100);
    CHECK(fired.back() == 199);

    // What a firing timer schedules for now-or-earlier fires in the same advance; later ones wait.
    fired.clear();
    w.schedule(at_s(3601), 1);
    size_t n = w.advance(at_s(3602), [&](int v) {
        fired.push_back(v);
        if (v == 1) {
            w.schedule(at_s(3601), 2);
            w.schedule(at_s(3700), 3);
        }
    });
    CHECK(n == 2);
    CHECK(fired == std::vector<int>{1, 2});
    CHECK(w.size() == 1);
}

TEST_CASE("cache: open addressing agrees with std::map through random inserts and erases",
          "[nhrp_server][cache]") {
    cache c(4);
    std::map<std::pair<uint16_t, uint32_t>, uint32_t> model;  // key -> index
    std::mt19937 rng(7);
    for (int step = 0; step < 20000; ++step) {
        uint16_t tunnel = static_cast<uint16_t>(rng() % 3);
        uint32_t address = 0x0a000000 + rng() % 2000;
        auto key = std::make_pair(tunnel, address);
        auto it = model.find(key);
        uint32_t found = c.find(tunnel, address);
        if (it == model.end()) {
            REQUIRE(found == cache::npos);
            if (rng() % 3 != 0) {
                uint32_t idx = c.insert(tunnel, address, 32);
                c.at(idx).nbma = address ^ 0xffff;
                model[key] = idx;
            }
        } else {
            REQUIRE(found == it->second);
            REQUIRE(c.at(found).nbma == (address ^ 0xffff));
            if (rng() % 2 == 0) {
                c.erase(found);
                model.erase(it);
            }
        }
    }
    CHECK(c.size() == model.size());
    size_t live = 0;
    c.for_each([&](uint32_t, const cache_entry&) { ++live; });
    CHECK(live == model.size());
}

TEST_CASE("cache: 100,000 prefixes, longest match and range queries agree with a linear model",
          "[nhrp_server][cache]") {
    // Lookups probe the index once per prefix length in use, so they stay put however many
    // prefixes there are; inserts and erases no longer walk a list of every prefix.
    cache c(16);
    std::mt19937 rng(11);
    struct p {
        uint16_t tunnel;
        uint32_t network;
        uint8_t len;
    };
    std::map<std::pair<uint16_t, uint32_t>, p> model;  // what the cache should hold
    auto mask = [](uint8_t len) { return len == 0 ? 0u : ~uint32_t{0} << (32 - len); };
    for (int i = 0; i < 100'000; ++i) {
        auto tunnel = static_cast<uint16_t>(rng() % 2);
        auto len = static_cast<uint8_t>(8 + rng() % 24);  // /8 .. /31
        uint32_t network = (0x0a000000u | (rng() & 0x00ffffffu)) & mask(len);
        if (model.contains({tunnel, network})) {
            continue;
        }
        c.insert(tunnel, network, len);
        model[{tunnel, network}] = p{tunnel, network, len};
    }
    // Erase a third, through the cache's own find.
    for (auto it = model.begin(); it != model.end();) {
        if (rng() % 3 == 0) {
            c.erase(c.find(it->first.first, it->first.second));
            it = model.erase(it);
        } else {
            ++it;
        }
    }
    REQUIRE(c.size() == model.size());
    auto longest = [&](uint16_t tunnel, uint32_t address) -> const p* {
        const p* best = nullptr;
        for (const auto& [k, v] : model) {
            if (v.tunnel == tunnel && (address & mask(v.len)) == v.network &&
                (best == nullptr || v.len > best->len)) {
                best = &v;
            }
        }
        return best;
    };
    for (int q = 0; q < 300; ++q) {
        auto tunnel = static_cast<uint16_t>(rng() % 2);
        uint32_t address = 0x0a000000u | (rng() & 0x00ffffffu);
        const p* want = longest(tunnel, address);
        uint32_t got = c.find_covering(tunnel, address);
        if (want == nullptr) {
            CHECK(got == cache::npos);
        } else {
            REQUIRE(got != cache::npos);
            CHECK(c.at(got).address == want->network);
            CHECK(c.at(got).prefix_len == want->len);
        }
        // The first prefix inside address/20, as the ordered index finds it.
        uint32_t range = address & mask(20);
        const p* first = nullptr;
        for (const auto& [k, v] : model) {
            if (v.tunnel == tunnel && (v.network & mask(20)) == range) {
                first = &v;
                break;
            }
        }
        uint32_t in =
            c.find_prefix_within(tunnel, range, 20, [](const cache_entry&) { return false; });
        if (first == nullptr) {
            CHECK(in == cache::npos);
        } else {
            REQUIRE(in != cache::npos);
            CHECK(c.at(in).address == first->network);
        }
    }
    // Everything erased leaves nothing to match.
    for (const auto& [k, v] : model) {
        c.erase(c.find(k.first, k.second));
    }
    CHECK(c.size() == 0);
    CHECK(c.find_covering(0, 0x0a010203u) == cache::npos);
    CHECK(c.find_prefix_within(0, 0, 0, [](const cache_entry&) { return false; }) == cache::npos);
}

TEST_CASE("timer wheel: a cancelled timer never fires and leaves nothing behind",
          "[nhrp_server][timer_wheel]") {
    timer_wheel<int> w(std::chrono::milliseconds(100), 8);
    uint64_t a = w.schedule(at(std::chrono::milliseconds(500)), 1);
    w.schedule(at(std::chrono::milliseconds(500)), 2);
    uint64_t far = w.schedule(at(std::chrono::seconds(30)), 3);  // rounds away
    CHECK(w.tick_of(at(std::chrono::milliseconds(500))) == a);
    CHECK(w.cancel(a, 1));
    CHECK_FALSE(w.cancel(a, 1));  // already gone
    CHECK(w.cancel(far, 3));
    CHECK(w.size() == 1);
    std::vector<int> fired;
    w.advance(at(std::chrono::seconds(40)), [&](int x) { fired.push_back(x); });
    CHECK(fired == std::vector<int>{2});
    CHECK(w.size() == 0);
}

TEST_CASE("cache: prefixes, requesters and generations", "[nhrp_server][cache]") {
    cache c;
    uint32_t lan = c.insert(0, ip("10.0.2.0"), 24);
    uint32_t wide = c.insert(0, ip("10.0.0.0"), 16);
    CHECK(c.find_covering(0, ip("10.0.2.77")) == lan);
    CHECK(c.find_covering(0, ip("10.0.9.77")) == wide);
    CHECK(c.find_covering(1, ip("10.0.2.77")) == cache::npos);
    c.set_prefix_len(lan, 32);
    CHECK(c.find_covering(0, ip("10.0.2.77")) == wide);

    uint32_t host = c.insert(0, ip("10.0.0.2"), 32);
    for (uint32_t i = 1; i <= 12; ++i) {
        CHECK(c.add_requester(host, requester{ip("10.0.0.100") + i, i, i}, 12));
    }
    CHECK_FALSE(c.add_requester(host, requester{ip("10.0.0.200"), 1, 1}, 12));
    CHECK(c.add_requester(host, requester{ip("10.0.0.101"), 1, 77}, 12));  // refresh, not a new one
    CHECK_FALSE(c.add_requester(host, requester{0, 1, 1}, 12));
    auto rs = c.requesters(host);
    REQUIRE(rs.size() == 12);
    CHECK(rs.front() == requester{ip("10.0.0.101"), 1, 77});
    CHECK(rs.back().proto == ip("10.0.0.112"));
    CHECK(c.take_requesters(host).size() == 12);
    CHECK(c.requesters(host).empty());

    uint32_t g = c.at(host).generation;
    CHECK(c.valid(host, g));
    c.erase(host);
    CHECK_FALSE(c.valid(host, g));
    uint32_t again = c.insert(0, ip("10.0.0.3"), 32);
    CHECK(again == host);            // the slot is reused...
    CHECK_FALSE(c.valid(again, g));  // ...under a new generation
    CHECK(sizeof(cache_entry) <= 56);
}

namespace {

server show_fixture() {
    tunnel_config t;
    t.id = 0;
    t.overlay_address = ip("10.0.0.1");
    t.nbma_address = ip("150.1.1.1");
    t.static_maps.push_back(static_map{ip("10.0.0.254"), 32, ip("150.1.254.254"), true});
    server_config c;
    c.tunnels.push_back(t);
    auto s = server::create(c);
    REQUIRE(s.has_value());
    server srv = std::move(*s);
    srv.start(at_s(0));
    auto reg = [&](uint32_t id, std::string_view claimed, std::string_view seen,
                   std::string_view proto, bool unique, int when) {
        packet p = cisco_request(op::registration_request, unique ? flag::reg_u : 0, id, claimed,
                                 proto, "10.0.0.1", 255, 600, "");
        auto out = srv.handle(0, ip(seen), wire_of(p), at_s(when));
        REQUIRE(out.packets.size() == 1);
    };
    reg(1, "150.1.2.2", "150.1.2.2", "10.0.0.2", true, 10);
    reg(2, "192.168.1.3", "203.0.113.7", "10.0.0.3", false, 20);
    packet res = cisco_request(op::resolution_request, flag::res_q, 798, "203.0.113.7", "10.0.0.3",
                               "10.0.0.2", 0, 360, "");
    res.src_nbma = ipb("192.168.1.3");
    REQUIRE(srv.handle(0, ip("203.0.113.7"), wire_of(res), at_s(30)).packets.size() == 1);
    return srv;
}

}  // namespace

TEST_CASE("show: nhrp, detail, brief as text", "[nhrp_server][show]") {
    server s = show_fixture();
    const timestamp now = at_s(3700);  // an hour in: dynamic entries have 600 s holding times
    const timestamp early = at_s(100);
    CHECK(show_nhrp(s, early, show_format::text, true) ==
          "10.0.0.2/32 via 10.0.0.2\n"
          "   Tunnel0 created 00:01:30, expire 00:08:30\n"
          "   Type: dynamic, Flags: authoritative unique registered used\n"
          "   NBMA address: 150.1.2.2\n"
          "   Requester: 10.0.0.3 Request ID: 798\n"
          "10.0.0.3/32 via 10.0.0.3\n"
          "   Tunnel0 created 00:01:20, expire 00:08:40\n"
          "   Type: dynamic, Flags: authoritative registered nat\n"
          "   NBMA address: 203.0.113.7\n"
          "    (Claimed NBMA address: 192.168.1.3)\n"
          "10.0.0.254/32 via 10.0.0.254\n"
          "   Tunnel0 created 00:01:40, never expire\n"
          "   Type: static, Flags: \n"
          "   NBMA address: 150.1.254.254\n");
    CHECK(show_nhrp(s, early, show_format::text, false).find("Requester") == std::string::npos);
    CHECK(show_nhrp_brief(s, show_format::text) ==
          "   Target             Via             NBMA            Mode     Intfc     Claimed\n"
          "   10.0.0.2/32        10.0.0.2        150.1.2.2       dynamic  Tunnel0   <   >\n"
          "   10.0.0.3/32        10.0.0.3        203.0.113.7     dynamic  Tunnel0   192.168.1.3\n"
          "   10.0.0.254/32      10.0.0.254      150.1.254.254   static   Tunnel0   <   >\n");
    s.tick(now);
    CHECK(s.cache_size() == 1);
    CHECK(format_age(std::chrono::seconds(90061)) == "1d01h");
    CHECK(format_age(std::chrono::seconds(8 * 86400 + 5)) == "1w1d");
}

TEST_CASE("show: nhrp as JSON", "[nhrp_server][show]") {
    server s = show_fixture();
    CHECK(
        show_nhrp(s, at_s(100), show_format::json) ==
        "[{\"tunnel\":\"Tunnel0\",\"tunnel_id\":0,\"protocol\":\"10.0.0.2/"
        "32\",\"via\":\"10.0.0.2\","
        "\"nbma\":\"150.1.2.2\",\"claimed_nbma\":\"150.1.2.2\",\"type\":\"dynamic\","
        "\"flags\":[\"authoritative\",\"unique\",\"registered\",\"used\"],\"created_s\":90,"
        "\"expires_s\":510,"
        "\"holding_time\":600,\"request_id\":1,\"requesters\":[{\"protocol\":\"10.0.0.3\","
        "\"nbma\":\"203.0.113.7\",\"request_id\":798}]},"
        "{\"tunnel\":\"Tunnel0\",\"tunnel_id\":0,\"protocol\":\"10.0.0.3/32\",\"via\":\"10.0.0.3\","
        "\"nbma\":\"203.0.113.7\",\"claimed_nbma\":\"192.168.1.3\",\"type\":\"dynamic\","
        "\"flags\":[\"authoritative\",\"registered\",\"nat\"],\"created_s\":80,\"expires_s\":520,"
        "\"holding_time\":600,\"request_id\":2,\"requesters\":[]},"
        "{\"tunnel\":\"Tunnel0\",\"tunnel_id\":0,\"protocol\":\"10.0.0.254/"
        "32\",\"via\":\"10.0.0.254\","
        "\"nbma\":\"150.1.254.254\",\"claimed_nbma\":\"150.1.254.254\",\"type\":\"static\","
        "\"flags\":[],"
        "\"created_s\":100,\"expires_s\":null,\"holding_time\":0,\"request_id\":0,\"requesters\":[]"
        "}]\n");
    CHECK(show_nhrp_brief(s, show_format::json) ==
          "[{\"target\":\"10.0.0.2/"
          "32\",\"via\":\"10.0.0.2\",\"nbma\":\"150.1.2.2\",\"mode\":\"dynamic\","
          "\"tunnel\":\"Tunnel0\",\"claimed\":\"150.1.2.2\"},"
          "{\"target\":\"10.0.0.3/"
          "32\",\"via\":\"10.0.0.3\",\"nbma\":\"203.0.113.7\",\"mode\":\"dynamic\","
          "\"tunnel\":\"Tunnel0\",\"claimed\":\"192.168.1.3\"},"
          "{\"target\":\"10.0.0.254/"
          "32\",\"via\":\"10.0.0.254\",\"nbma\":\"150.1.254.254\",\"mode\":\"static\","
          "\"tunnel\":\"Tunnel0\",\"claimed\":\"150.1.254.254\"}]\n");
}

TEST_CASE("show: summary, traffic and dmvpn", "[nhrp_server][show]") {
    server s = show_fixture();
    // The cache's memory, counted by hand from its layout (not asked of the implementation):
    // the default initial capacity reserves 1,024 entries of 56 bytes; the index keeps at most
    // half its slots full, so 2,048 slots of 8 bytes (tag + index); one requester (10.0.0.3
    // asked for 10.0.0.2) takes one 64-byte requester chunk; no prefixes, nothing freed.
    constexpr size_t expected_bytes = 1024 * 56 + 2048 * 8 + 1 * 64;
    static_assert(expected_bytes == 73'792);
    std::string bytes_text = std::to_string(expected_bytes);
    CHECK(show_nhrp_summary(s, show_format::text) == "IP NHRP cache 3 entries, " + bytes_text +
                                                         " bytes\n"
                                                         "    1 static  2 dynamic  0 incomplete\n"
                                                         "    1 nat  1 unique  0 purges pending\n");
    CHECK(show_nhrp_summary(s, show_format::json) ==
          "{\"entries\":3,\"static\":1,\"dynamic\":2,\"nat\":1,\"unique\":1,\"bytes\":" +
              bytes_text + ",\"pending_purges\":0}\n");

    std::string traffic = show_nhrp_traffic(s, show_format::text);
    CHECK(traffic ==
          "Tunnel0:\n"
          "   Sent: Total 3\n"
          "                0 Resolution Request           1 Resolution Reply\n"
          "                0 Registration Request         2 Registration Reply\n"
          "                0 Purge Request                0 Purge Reply\n"
          "                0 Error Indication             0 Traffic Indication\n"
          "   Rcvd: Total 3\n"
          "                1 Resolution Request           0 Resolution Reply\n"
          "                2 Registration Request         0 Registration Reply\n"
          "                0 Purge Request                0 Purge Reply\n"
          "                0 Error Indication             0 Traffic Indication\n");
    std::string tj = show_nhrp_traffic(s, show_format::json);
    CHECK(tj.rfind(
              "[{\"tunnel\":\"Tunnel0\",\"sent\":{\"resolution_request\":0,\"resolution_reply\":1,"
              "\"registration_request\":0,\"registration_reply\":2,",
              0) == 0);
    CHECK(tj.find("\"received\":{\"resolution_request\":1,\"resolution_reply\":0,\"registration_"
                  "request\":2,") != std::string::npos);
    CHECK(tj.find("\"dropped\":{\"unknown_tunnel\":0,\"malformed\":0,") != std::string::npos);
    CHECK(tj.find("\"build_failed\":0},\"purge_retransmits\":0,\"holdtime_clamped\":0}]\n") !=
          std::string::npos);

    CHECK(show_dmvpn(s, at_s(100), show_format::text) ==
          "Legend: Attrb --> S - Static, D - Dynamic, N - NATed\n"
          "        # Ent --> Number of NHRP entries with same NBMA peer\n"
          "\n"
          "Interface: Tunnel0, IPv4 NHRP Details\n"
          "Type:Hub, NHRP Peers:3,\n"
          "\n"
          " # Ent  Peer NBMA Addr Peer Tunnel Add State  UpDn Tm Attrb\n"
          " ----- --------------- --------------- ----- -------- -----\n"
          "     1 150.1.2.2              10.0.0.2    UP 00:01:30     D\n"
          "     1 150.1.254.254        10.0.0.254    UP 00:01:40     S\n"
          "     1 203.0.113.7            10.0.0.3    UP 00:01:20    DN\n");
    CHECK(show_dmvpn(s, at_s(100), show_format::json) ==
          "[{\"tunnel\":\"Tunnel0\",\"type\":\"hub\",\"peers\":["
          "{\"entries\":1,\"nbma\":\"150.1.2.2\",\"tunnel_address\":\"10.0.0.2\",\"state\":\"UP\","
          "\"uptime_s\":90,"
          "\"attributes\":\"D\"},"
          "{\"entries\":1,\"nbma\":\"150.1.254.254\",\"tunnel_address\":\"10.0.0.254\",\"state\":"
          "\"UP\","
          "\"uptime_s\":100,\"attributes\":\"S\"},"
          "{\"entries\":1,\"nbma\":\"203.0.113.7\",\"tunnel_address\":\"10.0.0.3\",\"state\":"
          "\"UP\",\"uptime_s\":80,"
          "\"attributes\":\"DN\"}]}]\n");
}

namespace {

// One raw-IPv4 pcap record holding IPv4 / GRE (key) / NHRP, for tshark.
void write_gre_pcap(const std::filesystem::path& path, uint32_t src, uint32_t dst, uint32_t key,
                    const bytes& nhrp) {
    std::array<uint8_t, 28> ipgre{};
    ipgre[0] = 0x45;
    dmvpn::wire::store_be16(&ipgre[2], static_cast<uint16_t>(28 + nhrp.size()));
    ipgre[8] = 64;
    ipgre[9] = 47;
    dmvpn::wire::store_be32(&ipgre[12], src);
    dmvpn::wire::store_be32(&ipgre[16], dst);
    dmvpn::wire::store_be16(&ipgre[10], dmvpn::wire::inet_checksum(std::span(ipgre).first(20)));
    dmvpn::wire::store_be16(&ipgre[20], 0x2000);  // K
    dmvpn::wire::store_be16(&ipgre[22], 0x2001);  // NHRP
    dmvpn::wire::store_be32(&ipgre[24], key);
    const auto record_size = static_cast<uint32_t>(ipgre.size() + nhrp.size());

    std::array<uint8_t, 24 + 16> file{};
    auto le32 = [&](size_t at, uint32_t v) {
        for (int i = 0; i < 4; ++i) {
            file[at + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
        }
    };
    le32(0, 0xa1b2c3d4);
    file[4] = 2;  // version 2.4
    file[6] = 4;
    le32(16, 65535);
    le32(20, 101);  // LINKTYPE_RAW
    le32(24 + 8, record_size);
    le32(24 + 12, record_size);
    std::ofstream f(path, std::ios::binary);
    for (std::span<const uint8_t> part :
         {std::span<const uint8_t>(file), std::span<const uint8_t>(ipgre),
          std::span<const uint8_t>(nhrp)}) {
        f.write(reinterpret_cast<const char*>(part.data()),
                static_cast<std::streamsize>(part.size()));
    }
}

std::string run(const std::string& command) {
    std::string out;
    FILE* p = popen(command.c_str(), "r");
    if (p == nullptr) {
        return out;
    }
    char buf[4096];
    size_t n = 0;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) {
        out.append(buf, n);
    }
    pclose(p);
    return out;
}

}  // namespace

TEST_CASE("tshark reads the hub's Registration Reply as Wireshark understands NHRP",
          "[nhrp_server][tshark]") {
    REQUIRE(run("command -v tshark") != "");
    tunnel_config t;
    t.id = 0;
    t.overlay_address = ip("10.0.0.1");
    t.nbma_address = ip("150.1.1.1");
    t.authentication = "cisco";
    server_config c;
    c.tunnels.push_back(t);
    auto created = server::create(c);
    REQUIRE(created.has_value());
    server& s = *created;
    packet req = cisco_request(op::registration_request, flag::reg_u, 26, "150.1.3.3", "10.0.0.3",
                               "10.0.0.1", 255, 60, "cisco");
    auto out = s.handle(0, ip("150.1.3.3"), wire_of(req), at_s(0));
    REQUIRE(out.packets.size() == 1);

    auto path = std::filesystem::temp_directory_path() /
                ("nhrp_server_reply_" + std::to_string(::getpid()) + ".pcap");
    write_gre_pcap(path, t.nbma_address, out.packets[0].dst_nbma, 123, out.packets[0].packet);
    std::string fields =
        run("tshark -r " + path.string() +
            " -o nhrp.auth_ext_has_addr:FALSE -T fields -E separator=';'"
            " -e nhrp.hdr.op.type -e nhrp.hdr.chksum.status -e nhrp.hdr.pktsz -e nhrp.reqid"
            " -e nhrp.src.nbma.addr -e nhrp.src.prot.addr -e nhrp.dst.prot.addr -e nhrp.code"
            " -e nhrp.htime -e nhrp.auth_ext.data -e nhrp.flag.u 2>/dev/null");
    std::string json = run("tshark -r " + path.string() + " -T json 2>/dev/null");
    std::filesystem::remove(path);
    // op 4, checksum good, 101 bytes, request ID 26, mirrored addresses, both CIEs (the request's
    // and the Responder's) code 0, holding times 60 and ours, key "cisco", unique flag.
    CHECK(fields == "4;1;101;0x0000001a;150.1.3.3;10.0.0.3;10.0.0.1;0,0;60,7200;636973636f;1\n");
    CHECK(json.find("\"nhrp.hdr.op.type\": \"4\"") != std::string::npos);
    CHECK(json.find("\"nhrp.hdr.chksum.status\": \"1\"") != std::string::npos);
}

TEST_CASE("server: mutated requests never crash it, and everything it sends parses",
          "[nhrp_server][robustness]") {
    tunnel_config t;
    t.id = 0;
    t.overlay_address = ip("10.0.0.1");
    t.overlay_prefix_len = 24;
    t.nbma_address = ip("150.1.1.1");
    t.redirect = true;
    t.nhs_peers.push_back(nhs_peer{ip("10.0.0.254"), ip("150.1.254.254")});
    t.route = [](uint32_t dst) -> std::optional<route> {
        return (dst >> 24) == 172 ? std::optional<route>(route{ip("10.0.0.2"), 16}) : std::nullopt;
    };
    server_config c;
    c.tunnels.push_back(t);
    c.registration_rate_per_s = 0;  // every input reaches the parser
    auto created = server::create(c);
    REQUIRE(created.has_value());
    server& s = *created;

    std::vector<bytes> seeds;
    for (op type : {op::registration_request, op::resolution_request, op::purge_request,
                    op::purge_reply, op::resolution_reply, op::error_indication}) {
        packet p = cisco_request(type, 0, 9, "150.1.2.2", "10.0.0.2", "10.0.0.3", 32, 60, "");
        seeds.push_back(wire_of(p));
        p.src_proto = ipb("10.0.0.3");
        p.dst_proto = ipb("172.16.1.1");
        seeds.push_back(wire_of(p));
    }
    std::mt19937 rng(1234);
    size_t inputs = 0;
    size_t sent = 0;
    for (int round = 0; round < 20000; ++round) {
        bytes b = seeds[rng() % seeds.size()];
        int flips = 1 + static_cast<int>(rng() % 4);
        for (int i = 0; i < flips; ++i) {
            b[rng() % b.size()] = static_cast<uint8_t>(rng());
        }
        if (rng() % 4 != 0) {
            // Mostly with a good checksum, so the mutation reaches the server's own checks.
            dmvpn::wire::store_be16(&b[12], 0);
            size_t size = std::min<size_t>(dmvpn::wire::load_be16(&b[10]), b.size());
            dmvpn::wire::store_be16(&b[12], dmvpn::wire::inet_checksum(std::span(b).first(size)));
        }
        if (rng() % 8 == 0) {
            b.resize(rng() % b.size());
        }
        uint32_t from = ip("150.1.2.0") + rng() % 4;
        auto out = s.handle(0, from, b, at(std::chrono::milliseconds(round * 10)));
        ++inputs;
        auto more = s.on_redirect_candidate(0, ip("10.0.0.2") + rng() % 3, ip("10.0.1.1"), b,
                                            at(std::chrono::milliseconds(round * 10)));
        auto timers = s.tick(at(std::chrono::milliseconds(round * 10)));
        for (const auto* o : {&out, &more, &timers}) {
            for (const auto& pkt : o->packets) {
                ++sent;
                REQUIRE(parse(pkt.packet).has_value());
            }
        }
    }
    const counters total = s.total_counters();
    uint64_t received = 0;
    for (uint64_t n : total.received) {
        received += n;
    }
    CHECK(received + total.dropped_of(drop_reason::malformed) == inputs);
    CHECK(sent > 1000);
}

// Hub to hub (issue 12): a hub with `nhs` peers registers its own overlay address with each, as
// an IOS hub with `ip nhrp nhs` does, and keeps the registration fresh.
namespace {

tunnel_config hub_tunnel(std::string_view overlay, std::string_view nbma) {
    tunnel_config t;
    t.id = 1;
    t.overlay_address = ip(overlay);
    t.overlay_prefix_len = 24;
    t.nbma_address = ip(nbma);
    t.authentication = "hubkey";
    t.holdtime_s = 600;
    return t;
}

server make_hub(tunnel_config t) {
    server_config c;
    c.tunnels.push_back(std::move(t));
    auto s = server::create(c);
    REQUIRE(s);
    return std::move(*s);
}

// Hub A (10.0.0.1) with hub B (10.0.0.2 at 192.0.2.2) as its NHS, refreshing every 200 s.
server hub_a_with_nhs() {
    tunnel_config a_cfg = hub_tunnel("10.0.0.1", "192.0.2.1");
    a_cfg.nhs_peers.push_back(nhs_peer{ip("10.0.0.2"), ip("192.0.2.2")});
    a_cfg.registration_timeout_s = 200;
    return make_hub(a_cfg);
}

}  // namespace

TEST_CASE("nhs: the hub registers with its NHS peer, which holds it; refreshes and retries",
          "[nhrp][nhs]") {
    server a = hub_a_with_nhs();
    server b = make_hub(hub_tunnel("10.0.0.2", "192.0.2.2"));
    (void)a.start(at_s(0));
    (void)b.start(at_s(0));

    // The first tick sends one Registration Request to the NHS's NBMA address.
    outputs out = a.tick(at_s(0));
    REQUIRE(out.packets.size() == 1);
    CHECK(out.packets[0].dst_nbma == ip("192.0.2.2"));
    auto req = parse(out.packets[0].packet);
    REQUIRE(req);
    CHECK(req->hdr.type == op::registration_request);
    CHECK(req->src_proto == ipb("10.0.0.1"));
    CHECK(req->dst_proto == ipb("10.0.0.2"));
    REQUIRE(req->cies.size() == 1);
    CHECK(req->cies[0].holding_time == 600);
    REQUIRE(a.nhs().size() == 1);
    CHECK(a.nhs()[0].state == nhs_state::expecting);
    CHECK(a.nhs()[0].requests_sent == 1);

    // The NHS (a hub of ours, unchanged) registers it as a dynamic entry and replies.
    outputs reply = b.handle(1, ip("192.0.2.1"), out.packets[0].packet, at_s(0));
    REQUIRE(reply.packets.size() == 1);
    auto held = b.lookup(1, ip("10.0.0.1"));
    REQUIRE(held);
    CHECK(held->type == entry_type::dynamic);
    CHECK(held->nbma == ip("192.0.2.1"));
    outputs none = a.handle(1, ip("192.0.2.2"), reply.packets[0].packet, at_s(0));
    CHECK(none.packets.empty());
    REQUIRE(a.nhs()[0].state == nhs_state::responding);
    CHECK(a.nhs()[0].replies == 1);
    CHECK(a.nhs()[0].last_reply.has_value());
    // As IOS prints `show ip nhrp nhs`: the NHS responding, nothing outstanding.
    CHECK(show_nhrp_nhs(a, at_s(0), show_format::text) ==
          "Legend: E=Expecting replies, R=Responding, W=Waiting\nTunnel1:\n"
          "10.0.0.2        R  NBMA Address: 192.0.2.2 priority = 0 cluster = 0\n");
    CHECK(show_nhrp_nhs(a, at_s(10), show_format::text, true)
              .find("Req Sent 1  Req Failed 0  Reply Recv 1  Next request in 190s") !=
          std::string::npos);
    CHECK(show_nhrp_nhs(a, at_s(0), show_format::json).find("\"state\":\"responding\"") !=
          std::string::npos);

    // The same reply again matches nothing (answered already) and is counted, not taken.
    (void)a.handle(1, ip("192.0.2.2"), reply.packets[0].packet, at_s(1));
    CHECK(a.nhs()[0].replies == 1);
    CHECK(a.tunnel_counters(1)->dropped_of(drop_reason::unmatched_reply) == 1);

    // Nothing more until the registration timeout; then a refresh with a new request ID.
    CHECK(a.tick(at_s(199)).packets.empty());
    outputs refresh = a.tick(at_s(200));
    REQUIRE(refresh.packets.size() == 1);
    auto again = parse(refresh.packets[0].packet);
    REQUIRE(again);
    CHECK(again->request_id != req->request_id);

    // Unanswered: retries at 1, 2, 4 ... s, capped at 32 s; after the holding time without a
    // reply the NHS is no longer "responding".
    std::vector<int64_t> sent_at;
    for (int64_t s = 201; s <= 900; ++s) {
        if (!a.tick(at_s(s)).packets.empty()) {
            sent_at.push_back(s);
        }
    }
    REQUIRE(sent_at.size() >= 6);
    CHECK(sent_at[0] == 201);
    CHECK(sent_at[1] == 203);
    CHECK(sent_at[2] == 207);
    CHECK(sent_at[3] == 215);
    CHECK(sent_at[4] == 231);
    CHECK(sent_at[5] == 263);
    CHECK(sent_at.back() - sent_at[sent_at.size() - 2] == 32);
    CHECK(a.nhs()[0].state == nhs_state::expecting);
}

TEST_CASE("nhs: a refused registration is counted and retried; a wrong key never registers",
          "[nhrp][nhs]") {
    tunnel_config a_cfg = hub_tunnel("10.0.0.1", "192.0.2.1");
    a_cfg.nhs_peers.push_back(nhs_peer{ip("10.0.0.2"), ip("192.0.2.2")});
    server a = make_hub(a_cfg);
    // The NHS holds 10.0.0.1 as a static mapping: it refuses the registration (IOS does too).
    tunnel_config b_cfg = hub_tunnel("10.0.0.2", "192.0.2.2");
    b_cfg.static_maps.push_back(static_map{ip("10.0.0.1"), 32, ip("192.0.2.9"), false});
    server b = make_hub(b_cfg);
    (void)a.start(at_s(0));
    (void)b.start(at_s(0));
    outputs out = a.tick(at_s(0));
    REQUIRE(out.packets.size() == 1);
    outputs reply = b.handle(1, ip("192.0.2.1"), out.packets[0].packet, at_s(0));
    REQUIRE(reply.packets.size() == 1);
    (void)a.handle(1, ip("192.0.2.2"), reply.packets[0].packet, at_s(0));
    CHECK(a.nhs()[0].state == nhs_state::refused);
    CHECK(a.nhs()[0].requests_failed == 1);
    CHECK(a.nhs()[0].last_code != cie_code::success);
    CHECK(a.tick(at_s(1)).packets.size() == 1);  // asked again on the retry schedule

    // Another cloud's key: the NHS answers with an Error Indication, never a registration.
    tunnel_config c_cfg = hub_tunnel("10.0.0.2", "192.0.2.2");
    c_cfg.authentication = "other";
    server c = make_hub(c_cfg);
    (void)c.start(at_s(0));
    outputs wrong = c.handle(1, ip("192.0.2.1"), a.tick(at_s(3)).packets.at(0).packet, at_s(3));
    REQUIRE(wrong.packets.size() == 1);
    CHECK(parse(wrong.packets[0].packet)->hdr.type == op::error_indication);
    CHECK_FALSE(c.lookup(1, ip("10.0.0.1")));
    CHECK(c.tunnel_counters(1)->dropped_of(drop_reason::authentication_failure) == 1);
}

// Two hubs, each the other's NHS (issue 12 part 4): a hub that starts again is registered with
// at once (not at the next refresh), and Resolution Requests go only to a peer that answers.
TEST_CASE(
    "nhs: a peer hub's restart brings our registration back at once; resolutions go "
    "only to answering peers",
    "[nhrp][nhs]") {
    auto hub_cfg = [](std::string_view overlay, std::string_view nbma, std::string_view peer_o,
                      std::string_view peer_n) {
        tunnel_config t = hub_tunnel(overlay, nbma);
        t.holdtime_s = 30;
        t.registration_timeout_s = 10;
        t.nhs_peers.push_back(nhs_peer{ip(peer_o), ip(peer_n)});
        return t;
    };
    const tunnel_config a_cfg = hub_cfg("10.0.0.1", "192.0.2.1", "10.0.0.2", "192.0.2.2");
    const tunnel_config b_cfg = hub_cfg("10.0.0.2", "192.0.2.2", "10.0.0.1", "192.0.2.1");
    server a = make_hub(a_cfg);
    auto b = std::make_unique<server>(make_hub(b_cfg));
    // Delivers what one hub sends to the other until nothing more is said.
    auto exchange = [&](outputs first, server& from, int64_t s) {
        std::vector<std::pair<server*, outgoing>> queue;
        for (auto& p : first.packets) {
            queue.emplace_back(&from, p);
        }
        while (!queue.empty()) {
            auto [src, pkt] = queue.front();
            queue.erase(queue.begin());
            server& dst = src == &a ? *b : a;
            uint32_t src_nbma = src == &a ? ip("192.0.2.1") : ip("192.0.2.2");
            outputs o = dst.handle(1, src_nbma, pkt.packet, at_s(s));
            for (auto& p : o.packets) {
                queue.emplace_back(&dst, p);
            }
        }
    };
    (void)a.start(at_s(0));
    (void)b->start(at_s(0));
    exchange(a.tick(at_s(0)), a, 0);
    exchange(b->tick(at_s(0)), *b, 0);
    REQUIRE(a.nhs()[0].answering);
    REQUIRE(b->nhs()[0].answering);
    CHECK(b->lookup(1, ip("10.0.0.1")));
    for (int64_t s = 1; s <= 20; ++s) {
        exchange(a.tick(at_s(s)), a, s);
        exchange(b->tick(at_s(s)), *b, s);
    }
    CHECK(a.nhs()[0].peer_restarts == 0);

    // A spoke of b's; a Resolution Request for it reaches a, which hands it to b, whose
    // answer a relays to the requester.
    packet reg = cisco_request(op::registration_request, flag::reg_u, 7, "198.51.100.5", "10.0.0.5",
                               "10.0.0.2", 255, 30, "hubkey");
    REQUIRE(b->handle(1, ip("198.51.100.5"), wire_of(reg), at_s(20)).packets.size() == 1);
    // The requester is a's spoke (a relays answers only to stations registered with it).
    packet reg6 = cisco_request(op::registration_request, flag::reg_u, 3, "198.51.100.6",
                                "10.0.0.6", "10.0.0.1", 255, 30, "hubkey");
    REQUIRE(a.handle(1, ip("198.51.100.6"), wire_of(reg6), at_s(20)).packets.size() == 1);
    packet res = cisco_request(op::resolution_request, 0, 8, "198.51.100.6", "10.0.0.6", "10.0.0.5",
                               255, 30, "hubkey");
    outputs fwd = a.handle(1, ip("198.51.100.6"), wire_of(res), at_s(20));
    REQUIRE(fwd.packets.size() == 1);
    CHECK(fwd.packets[0].dst_nbma == ip("192.0.2.2"));
    outputs answer = b->handle(1, ip("192.0.2.1"), fwd.packets[0].packet, at_s(20));
    REQUIRE(answer.packets.size() == 1);
    CHECK(answer.packets[0].dst_nbma == ip("192.0.2.1"));
    outputs relayed = a.handle(1, ip("192.0.2.2"), answer.packets[0].packet, at_s(20));
    REQUIRE(relayed.packets.size() == 1);
    CHECK(relayed.packets[0].dst_nbma == ip("198.51.100.6"));
    auto rr = parse(relayed.packets[0].packet);
    REQUIRE(rr);
    CHECK(rr->hdr.type == op::resolution_reply);
    REQUIRE(rr->cies.size() == 1);
    CHECK(rr->cies[0].client_nbma == ipb("198.51.100.5"));
    CHECK(a.nhs()[0].resolutions_forwarded == 1);

    // b dies: a's refresh goes unanswered, and after the grace a no longer forwards to it.
    for (int64_t s = 21; s <= 40; ++s) {
        (void)a.tick(at_s(s));
    }
    CHECK_FALSE(a.nhs()[0].answering);
    packet res2 = cisco_request(op::resolution_request, 0, 9, "198.51.100.6", "10.0.0.6",
                                "10.0.0.5", 255, 30, "hubkey");
    outputs none = a.handle(1, ip("198.51.100.6"), wire_of(res2), at_s(40));
    for (const auto& p : none.packets) {
        CHECK(p.dst_nbma != ip("192.0.2.2"));
    }
    CHECK(a.nhs()[0].resolutions_forwarded == 1);

    // b starts again (empty cache, request IDs from 1): its first registration with a makes a
    // register with it in the same breath, and counts the restart.
    b = std::make_unique<server>(make_hub(b_cfg));
    (void)b->start(at_s(41));
    outputs b_first = b->tick(at_s(41));
    REQUIRE(b_first.packets.size() == 1);
    outputs a_answer = a.handle(1, ip("192.0.2.2"), b_first.packets[0].packet, at_s(41));
    // The reply to b, and a's own Registration Request to b.
    REQUIRE(a_answer.packets.size() == 2);
    CHECK(a.nhs()[0].peer_restarts == 1);
    exchange(std::move(a_answer), a, 41);
    CHECK(b->lookup(1, ip("10.0.0.1")));
    CHECK(a.nhs()[0].answering);
    CHECK(show_nhrp_nhs(a, at_s(41), show_format::json).find("\"peer_restarts\":1") !=
          std::string::npos);
}

TEST_CASE("nhs: a new path to the peer hub (its CHILD_SA installed) registers at once",
          "[nhrp][nhs]") {
    server a = hub_a_with_nhs();
    (void)a.start(at_s(0));
    // Unanswered (nothing could carry it before the SA): backed off to a retry 16 s away.
    for (int64_t s = 0; s <= 15; ++s) {
        (void)a.tick(at_s(s));
    }
    CHECK(a.tick(at_s(20)).packets.empty());
    // The SA is in: one request now, and the retries start again from 1 s.
    outputs now = a.nhs_reachable(1, ip("192.0.2.2"), at_s(20));
    REQUIRE(now.packets.size() == 1);
    CHECK(now.packets[0].dst_nbma == ip("192.0.2.2"));
    CHECK(a.tick(at_s(20)).packets.empty());
    CHECK(a.tick(at_s(21)).packets.size() == 1);
    // Another tunnel or another address: nothing.
    CHECK(a.nhs_reachable(2, ip("192.0.2.2"), at_s(22)).packets.empty());
    CHECK(a.nhs_reachable(1, ip("192.0.2.9"), at_s(22)).packets.empty());
}
