// The topology model's helpers: IPv4 parsing and prefixes, transform facts, and the diff a
// reload acts on.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>

#include "config/load.hpp"
#include "config/topology.hpp"

using namespace dmvpn::config;

namespace {

topology demo() {
    const char* s = std::getenv("DMVPN_SOURCE");
    std::filesystem::path root = s != nullptr ? s : std::filesystem::current_path().string();
    auto r = load_file((root / "config" / "examples" / "two-tunnels.yaml").string());
    INFO(r.error_text());
    REQUIRE(r.has_value());
    return r.value();
}

}  // namespace

TEST_CASE("IPv4 addresses parse strictly and print back", "[config]") {
    auto a = parse_ipv4("192.0.2.1");
    REQUIRE(a);
    CHECK(a->value == 0xc0000201u);
    CHECK(to_string(*a) == "192.0.2.1");
    CHECK(to_string(*parse_ipv4("0.0.0.0")) == "0.0.0.0");
    CHECK(to_string(*parse_ipv4("255.255.255.255")) == "255.255.255.255");
    for (const char* bad :
         {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.4 ", " 1.2.3.4", "1..2.3",
          "a.b.c.d", "1.2.3.-4", "1.2.3.4/24", "1234.1.1.1"}) {
        INFO(bad);
        CHECK_FALSE(parse_ipv4(bad).has_value());
    }
}

TEST_CASE("prefixes contain and overlap by their mask", "[config]") {
    prefix4 p{*parse_ipv4("10.0.0.0"), 16};
    CHECK(p.mask() == 0xffff0000u);
    CHECK(p.contains(*parse_ipv4("10.0.255.255")));
    CHECK_FALSE(p.contains(*parse_ipv4("10.1.0.0")));
    CHECK(p.overlaps(prefix4{*parse_ipv4("10.0.128.0"), 17}));
    CHECK(prefix4{*parse_ipv4("10.0.128.0"), 17}.overlaps(p));
    CHECK_FALSE(p.overlaps(prefix4{*parse_ipv4("10.1.0.0"), 16}));
    prefix4 all{{}, 0};
    CHECK(all.mask() == 0);
    CHECK(all.contains(*parse_ipv4("203.0.113.9")));
    interface_address ia{*parse_ipv4("192.0.2.77"), 26};
    CHECK(to_string(ia.subnet()) == "192.0.2.64/26");
    CHECK(to_string(ia) == "192.0.2.77/26");
}

TEST_CASE("transform facts follow the RFCs", "[config]") {
    for (transform t : {transform::aes128_gcm16, transform::aes256_gcm16,
                        transform::aes128_cbc_sha1_96, transform::aes256_cbc_sha256_128}) {
        auto back = parse_transform(name(t));
        REQUIRE(back);
        CHECK(*back == t);
    }
    CHECK_FALSE(parse_transform("aes128gcm16").has_value());
    CHECK(cipher_key_bytes(transform::aes128_gcm16) == 16);
    CHECK(cipher_key_bytes(transform::aes256_cbc_sha256_128) == 32);
    CHECK(salt_bytes(transform::aes256_gcm16) == 4);
    CHECK(salt_bytes(transform::aes128_cbc_sha1_96) == 0);
    CHECK(integrity_key_bytes(transform::aes128_cbc_sha1_96) == 20);
    CHECK(integrity_key_bytes(transform::aes256_cbc_sha256_128) == 32);
    CHECK(integrity_key_bytes(transform::aes128_gcm16) == 0);
    CHECK(is_gcm(transform::aes128_gcm16));
    CHECK_FALSE(is_gcm(transform::aes128_cbc_sha1_96));
    // GCM's 8-byte IV and 4-byte alignment cost less than CBC's 16-byte IV and blocks.
    CHECK(esp_overhead_max(transform::aes128_gcm16) <
          esp_overhead_max(transform::aes128_cbc_sha1_96));
}

TEST_CASE("a topology compared with itself has no differences", "[config]") {
    topology t = demo();
    topology_diff d = diff(t, t);
    CHECK(d.empty());
    CHECK_FALSE(d.needs_restart());
}

TEST_CASE("diff names the tunnels added, removed and changed", "[config]") {
    topology before = demo();
    topology after = before;
    REQUIRE(after.tunnels.size() == 2);
    after.tunnels[0].nhrp.holdtime = 60;             // red changes
    after.tunnels.erase(after.tunnels.begin() + 1);  // blue goes
    tunnel green = before.tunnels[1];
    green.name = "green";
    after.tunnels.push_back(green);  // green comes

    topology_diff d = diff(before, after);
    CHECK(d.tunnels_changed == std::vector<std::string>{"red"});
    CHECK(d.tunnels_removed == std::vector<std::string>{"blue"});
    CHECK(d.tunnels_added == std::vector<std::string>{"green"});
    CHECK_FALSE(d.needs_restart());
    CHECK_FALSE(d.empty());
}

TEST_CASE("a changed IPsec profile marks the tunnels that use it", "[config]") {
    topology before = demo();
    topology after = before;
    REQUIRE(!after.ipsec_profiles.empty());
    const std::string changed = after.ipsec_profiles[0].name;
    after.ipsec_profiles[0].manual_sas.at(0).outbound.key.at(0) ^= 0xff;
    topology_diff d = diff(before, after);
    CHECK(d.ipsec_profiles_changed == std::vector<std::string>{changed});
    for (const tunnel& t : after.tunnels) {
        bool listed = std::find(d.tunnels_changed.begin(), d.tunnels_changed.end(), t.name) !=
                      d.tunnels_changed.end();
        CHECK(listed == (t.ipsec_profile == changed));
    }
}

TEST_CASE("port and lcore changes need a restart; routes do not", "[config]") {
    topology before = demo();
    topology ports = before;
    ports.ports[0].mtu = 9000;
    topology_diff dp = diff(before, ports);
    CHECK(dp.ports_changed == std::vector<std::string>{ports.ports[0].name});
    CHECK(dp.needs_restart());

    topology lcores = before;
    lcores.hub.worker_lcores.push_back(5);
    CHECK(diff(before, lcores).hub_changed);
    CHECK(diff(before, lcores).needs_restart());

    topology routes = before;
    routes.routes.pop_back();
    topology_diff dr = diff(before, routes);
    CHECK(dr.routes_changed);
    CHECK_FALSE(dr.needs_restart());

    topology mgmt = before;
    mgmt.mgmt.socket = "/tmp/other.sock";
    CHECK(diff(before, mgmt).management_changed);
}

TEST_CASE("look-ups by name find what the topology holds", "[config]") {
    topology t = demo();
    REQUIRE(t.find_tunnel("red") != nullptr);
    CHECK(t.find_tunnel("red")->name == "red");
    CHECK(t.find_tunnel("nope") == nullptr);
    REQUIRE(t.find_port("wan") != nullptr);
    CHECK(t.find_port("wan")->role == port_role::underlay);
    CHECK(t.find_ipsec_profile("nope") == nullptr);
    CHECK(name(port_role::lan) == "lan");
}
