// show ip route rendering: rows of a hub with a LAN, a tunnel, registered spokes, static and
// FRR routes must come out in IOS's layout (codes legend, "is directly connected", a summary's
// Null0, [distance/metric] via) with the hub's resolution appended, and as JSON.
#include <catch2/catch.hpp>

#include "control/rib/show.hpp"

using namespace dmvpn::rib;

namespace {

constexpr uint32_t ip(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
    return a << 24 | b << 16 | c << 8 | d;
}

route_row row(prefix_key k, source s, std::string iface, std::string state) {
    route_row r;
    r.prefix = k;
    r.src = s;
    r.distance = default_distance(s);
    r.interface = std::move(iface);
    r.state = std::move(state);
    return r;
}

std::vector<route_row> hub_rows() {
    std::vector<route_row> rows;
    auto def = row({0, 0}, source::static_route, "wan0", "complete");
    def.via = ip(198, 51, 100, 254);
    def.mac = "52:54:00:12:34:56";
    rows.push_back(def);
    rows.push_back(row({ip(10, 0, 0, 0), 24}, source::connected, "tun0", "connected"));
    auto local = row({ip(10, 0, 0, 1), 32}, source::connected, "tun0", "local");
    local.local = true;
    rows.push_back(local);
    auto spoke = row({ip(10, 0, 0, 2), 32}, source::nhrp, "tun0", "complete");
    spoke.via = ip(10, 0, 0, 2);
    spoke.metric = nhrp_metric;
    spoke.nbma = ip(198, 51, 100, 2);
    rows.push_back(spoke);
    auto behind_nat = row({ip(10, 0, 0, 3), 32}, source::nhrp, "tun0", "incomplete");
    behind_nat.via = ip(10, 0, 0, 3);
    behind_nat.metric = nhrp_metric;
    behind_nat.nbma = ip(203, 0, 113, 9);
    rows.push_back(behind_nat);
    auto summary = row({ip(172, 16, 0, 0), 12}, source::fpm, "", "blackhole");
    summary.proto = protocol::ebgp;
    summary.distance = default_distance(source::fpm, protocol::ebgp);
    rows.push_back(summary);
    auto bgp = row({ip(172, 16, 2, 0), 24}, source::fpm, "tun0", "complete");
    bgp.proto = protocol::ebgp;
    bgp.distance = default_distance(source::fpm, protocol::ebgp);
    bgp.via = ip(10, 0, 0, 2);
    bgp.nbma = ip(198, 51, 100, 2);
    bgp.candidates = 2;
    rows.push_back(bgp);
    auto ospf = row({ip(172, 16, 9, 0), 24}, source::fpm, "tun0", "unbound");
    ospf.proto = protocol::ospf;
    ospf.distance = default_distance(source::fpm, protocol::ospf);
    ospf.metric = 20;
    ospf.via = ip(10, 0, 0, 9);
    rows.push_back(ospf);
    auto host = row({ip(192, 168, 1, 10), 32}, source::glean, "lan0", "incomplete");
    host.via = ip(192, 168, 1, 10);
    rows.push_back(host);
    rows.push_back(row({ip(192, 168, 1, 0), 24}, source::connected, "lan0", "connected"));
    return rows;
}

}  // namespace

TEST_CASE("show ip route: IOS layout with the next hops' resolution", "[rib][show]") {
    const std::string expected =
        "Codes: L - local, C - connected, S - static, R - RIP, B - BGP\n"
        "       D - EIGRP, O - OSPF, i - IS-IS, H - NHRP\n"
        "       K - kernel route from FRR, F - other FRR route\n"
        "\n"
        "Gateway of last resort is 198.51.100.254 to network 0.0.0.0\n"
        "\n"
        "S        0.0.0.0/0 [1/0] via 198.51.100.254, wan0, MAC 52:54:00:12:34:56\n"
        "C        10.0.0.0/24 is directly connected, tun0\n"
        "L        10.0.0.1/32 is directly connected, tun0\n"
        "H        10.0.0.2/32 [250/1] via 10.0.0.2, tun0, NBMA 198.51.100.2\n"
        "H        10.0.0.3/32 [250/1] via 10.0.0.3, tun0, NBMA 203.0.113.9 incomplete\n"
        "B        172.16.0.0/12 is directly connected, Null0\n"
        "B        172.16.2.0/24 [20/0] via 10.0.0.2, tun0, NBMA 198.51.100.2\n"
        "O        172.16.9.0/24 [110/20] via 10.0.0.9, tun0, not registered (glean)\n"
        "C        192.168.1.10/32 [0/0] via 192.168.1.10, lan0, incomplete\n"
        "C        192.168.1.0/24 is directly connected, lan0\n";
    CHECK(show_ip_route(hub_rows(), false) == expected);
}

TEST_CASE("show ip route: no routes, no default", "[rib][show]") {
    CHECK(show_ip_route({}, false) ==
          "Codes: L - local, C - connected, S - static, R - RIP, B - BGP\n"
          "       D - EIGRP, O - OSPF, i - IS-IS, H - NHRP\n"
          "       K - kernel route from FRR, F - other FRR route\n"
          "\n"
          "Gateway of last resort is not set\n"
          "\n");
    CHECK(show_ip_route({}, true) == "{\"routes\":[],\"refused\":[]}\n");
}

TEST_CASE("show ip route --json", "[rib][show]") {
    auto rows = hub_rows();
    std::vector<route_row> some{rows[2], rows[3], rows[6]};
    CHECK(show_ip_route(some, true) ==
          "{\"routes\":["
          "{\"prefix\":\"10.0.0.1/32\",\"code\":\"L\",\"source\":\"connected\",\"protocol\":"
          "\"none\",\"distance\":0,\"metric\":0,\"next_hop\":null,\"interface\":\"tun0\","
          "\"state\":\"local\",\"nbma\":null,\"mac\":null,\"candidates\":1},"
          "{\"prefix\":\"10.0.0.2/32\",\"code\":\"H\",\"source\":\"nhrp\",\"protocol\":\"none\","
          "\"distance\":250,\"metric\":1,\"next_hop\":\"10.0.0.2\",\"interface\":\"tun0\","
          "\"state\":\"complete\",\"nbma\":\"198.51.100.2\",\"mac\":null,\"candidates\":1},"
          "{\"prefix\":\"172.16.2.0/24\",\"code\":\"B\",\"source\":\"fpm\",\"protocol\":\"ebgp\","
          "\"distance\":20,\"metric\":0,\"next_hop\":\"10.0.0.2\",\"interface\":\"tun0\","
          "\"state\":\"complete\",\"nbma\":\"198.51.100.2\",\"mac\":null,\"candidates\":2}"
          "],\"refused\":[]}\n");
}

TEST_CASE("show ip route: codes of FRR's protocols", "[rib][show]") {
    route_row r;
    r.src = source::fpm;
    auto code = [&](protocol p) {
        r.proto = p;
        return std::string(code_of(r));
    };
    CHECK(code(protocol::ebgp) == "B");
    CHECK(code(protocol::ibgp) == "B");
    CHECK(code(protocol::ospf) == "O");
    CHECK(code(protocol::eigrp) == "D");
    CHECK(code(protocol::isis) == "i");
    CHECK(code(protocol::rip) == "R");
    CHECK(code(protocol::static_route) == "S");
    CHECK(code(protocol::kernel) == "K");
    CHECK(code(protocol::other) == "F");
}

TEST_CASE("show ip route: FRR's routes the hub refused, after the installed ones", "[rib][show]") {
    auto rows = hub_rows();
    std::vector<route_row> one{rows[1]};
    refused_row underlay;
    underlay.prefix = {ip(172, 31, 1, 0), 24};
    underlay.proto = protocol::ospf;
    underlay.via = ip(198, 18, 0, 2);
    underlay.interface = "wan1";
    underlay.reason = "underlay_transit";
    refused_row off;
    off.prefix = {ip(203, 0, 113, 0), 24};
    off.proto = protocol::ebgp;
    off.via = ip(192, 0, 2, 1);
    off.reason = "unresolved";
    refused_row full;
    full.prefix = {ip(172, 30, 0, 0), 16};
    full.proto = protocol::other;
    full.reason = "rib_full";
    CHECK(show_ip_route(one, false, {underlay, off, full}) ==
          "Codes: L - local, C - connected, S - static, R - RIP, B - BGP\n"
          "       D - EIGRP, O - OSPF, i - IS-IS, H - NHRP\n"
          "       K - kernel route from FRR, F - other FRR route\n"
          "\n"
          "Gateway of last resort is not set\n"
          "\n"
          "C        10.0.0.0/24 is directly connected, tun0\n"
          "\n"
          "FRR routes not installed\n"
          "\n"
          "O        172.31.1.0/24 via 198.18.0.2, wan1, refused: underlay port without "
          "allow-transit\n"
          "B        203.0.113.0/24 via 192.0.2.1, refused: next hop on no hub interface\n"
          "F        172.30.0.0/16, refused: the RIB is full\n");
    CHECK(show_ip_route({}, true, {underlay, off}) ==
          "{\"routes\":[],\"refused\":["
          "{\"prefix\":\"172.31.1.0/24\",\"code\":\"O\",\"source\":\"fpm\",\"protocol\":"
          "\"ospf\",\"next_hop\":\"198.18.0.2\",\"interface\":\"wan1\",\"reason\":"
          "\"underlay_transit\"},"
          "{\"prefix\":\"203.0.113.0/24\",\"code\":\"B\",\"source\":\"fpm\",\"protocol\":"
          "\"ebgp\",\"next_hop\":\"192.0.2.1\",\"interface\":null,\"reason\":"
          "\"unresolved\"}]}\n");
}
