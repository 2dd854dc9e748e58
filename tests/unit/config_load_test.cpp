// The YAML topology loader: the shipped examples, defaults, and where each kind of error lands.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "config/load.hpp"
#include "tests/unit/config_test_doc.hpp"

using dmvpn::config::error;
using dmvpn::config::load_file;
using dmvpn::config::load_string;
using dmvpn::config::parse_ipv4;
using dmvpn::config::test::base;
using dmvpn::config::test::doc;
using dmvpn::config::test::only_error;

namespace {

std::filesystem::path source_root() {
    const char* s = std::getenv("DMVPN_SOURCE");
    return s != nullptr ? std::filesystem::path(s) : std::filesystem::current_path();
}

dmvpn::config::ipv4 ip(const char* text) {
    auto a = parse_ipv4(text);
    REQUIRE(a);
    return *a;
}

}  // namespace

TEST_CASE("every example in config/examples loads", "[config]") {
    std::filesystem::path dir = source_root() / "config" / "examples";
    REQUIRE(std::filesystem::is_directory(dir));
    int loaded = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (entry.path().extension() != ".yaml") {
            continue;
        }
        auto r = load_file(entry.path().string());
        INFO(entry.path().string() << "\n" << r.error_text());
        CHECK(r.has_value());
        ++loaded;
    }
    // demo, bare-metal-two-port, phase1..3, two-tunnels
    CHECK(loaded >= 6);
}

TEST_CASE("the demo example describes the demo", "[config]") {
    auto r = load_file((source_root() / "config" / "examples" / "demo.yaml").string());
    INFO(r.error_text());
    REQUIRE(r.has_value());
    const auto& t = *r;
    REQUIRE(t.ports.size() == 2);
    CHECK(t.ports[0].role == dmvpn::config::port_role::underlay);
    CHECK(t.ports[0].dev.kind == dmvpn::config::device_kind::vdev);
    CHECK(t.ports[0].dev.driver == "net_memif");
    CHECK(t.ports[1].role == dmvpn::config::port_role::lan);
    CHECK(t.ports[1].dev.name == "net_tap0");
    REQUIRE(t.tunnels.size() == 1);
    const auto& tn = t.tunnels[0];
    CHECK(tn.overlay_address == ip("10.0.0.1"));
    CHECK(dmvpn::config::to_string(tn.overlay_prefix) == "10.0.0.0/16");
    CHECK(tn.gre_key.has_value());
    CHECK(tn.nhrp.network_id != 0);
    CHECK_FALSE(tn.nhrp.authentication.empty());
    CHECK(tn.nhrp.multicast_dynamic);
    CHECK(tn.nhrp.redirect);
    CHECK(tn.nhrp.phase == 3);
    CHECK(tn.nhrp.max_cache_entries >= 200);
    CHECK(tn.nbma_source == t.ports[0].address.address);  // defaulted from the port
    const auto* prof = t.find_ipsec_profile(tn.ipsec_profile);
    REQUIRE(prof != nullptr);
    // No manual SA: the spokes negotiate theirs with IKEv2 and the cloud's pre-shared key,
    // which scripts/demo hands the emulator (--ike psk:KEY).
    CHECK(prof->manual_sas.empty());
    REQUIRE(prof->ike.has_value());
    CHECK(prof->ike->auth == dmvpn::config::ike_auth::psk);
    REQUIRE(prof->ike->psks.size() == 1);
    CHECK(prof->ike->psks[0].peer.empty());  // the wildcard: any spoke that knows it
    CHECK(prof->ike->psks[0].key.size() >= 16);
    CHECK(prof->ike->proposals == dmvpn::config::default_ike_proposals());
    CHECK(prof->ike->esp_proposals == dmvpn::config::default_esp_proposals());
    CHECK(prof->anti_replay);  // negotiated keys: on by default
    REQUIRE(t.routes.size() == 1);
    CHECK(t.routes[0].egress == "tun0");
}

TEST_CASE("the two-tunnel example keeps each cloud apart", "[config]") {
    auto r = load_file((source_root() / "config" / "examples" / "two-tunnels.yaml").string());
    INFO(r.error_text());
    REQUIRE(r.has_value());
    REQUIRE(r->tunnels.size() == 2);
    const auto& a = r->tunnels[0];
    const auto& b = r->tunnels[1];
    CHECK(a.port == b.port);
    CHECK(a.gre_key != b.gre_key);
    CHECK(a.nhrp.network_id != b.nhrp.network_id);
    CHECK_FALSE(a.overlay_prefix.overlaps(b.overlay_prefix));
    REQUIRE(a.nhrp.nhs.size() == 1);
    CHECK(a.nhrp.registration_timeout == 300);
    // blue's registration timeout is Cisco's default, a third of its holdtime
    CHECK(b.nhrp.registration_timeout == b.nhrp.holdtime / 3);
    const auto* blue = r->find_ipsec_profile(b.ipsec_profile);
    REQUIRE(blue != nullptr);
    CHECK(blue->manual_sas.at(0).inbound.integrity_key.size() == 32);
    // a route with only a port is on-link on that port
    CHECK(r->routes.at(2).egress == "lan");
    CHECK_FALSE(r->routes.at(2).via.has_value());
}

TEST_CASE("the bare-metal example normalizes PCI addresses and expands lcore ranges", "[config]") {
    auto r =
        load_file((source_root() / "config" / "examples" / "bare-metal-two-port.yaml").string());
    INFO(r.error_text());
    REQUIRE(r.has_value());
    CHECK(r->ports[0].dev.kind == dmvpn::config::device_kind::pci);
    CHECK(r->ports[0].dev.spec == "0000:3b:00.0");
    CHECK(r->hub.worker_lcores == std::vector<uint32_t>{2, 3, 4, 5, 6, 7});
    CHECK(r->ports[0].gateway == ip("203.0.113.1"));
    const auto& p = r->ipsec_profiles.at(0);
    CHECK(p.xform == dmvpn::config::transform::aes256_cbc_sha256_128);
    CHECK_FALSE(p.anti_replay);
    const auto& sa = p.manual_sas.at(0);
    CHECK(sa.outbound.key.size() == 32);
    CHECK(sa.outbound.integrity_key.size() == 32);
}

TEST_CASE("the interop example lets its worker sleep when idle (qemu guests share the cores)",
          "[config]") {
    auto r = load_file((source_root() / "config" / "examples" / "interop.yaml").string());
    INFO(r.error_text());
    REQUIRE(r.has_value());
    CHECK(r->hub.worker_idle_sleep_us == 100);
}

TEST_CASE("hub.log-level and hub.metrics", "[config]") {
    auto r = load_string(R"(hub:
  log-level: debug
  metrics: {port: 9100}
ports:
  - {name: wan, device: "00:04.0", role: underlay, address: 192.0.2.1/24}
tunnels:
  - {name: t, port: wan, overlay-address: 10.0.0.1, overlay-prefix: 10.0.0.0/24,
     nhrp: {network-id: 9}}
)",
                         "m.yaml");
    INFO(r.error_text());
    REQUIRE(r.has_value());
    CHECK(r->hub.log_level == "debug");
    REQUIRE(r->hub.metrics);
    CHECK(r->hub.metrics->port == 9100);
    CHECK(r->hub.metrics->address == ip("127.0.0.1"));  // loopback unless an address is given
    // A log-level change alone is applied by a reload; a metrics change needs a restart.
    dmvpn::config::topology quieter = *r;
    quieter.hub.log_level = "warning";
    auto d = dmvpn::config::diff(*r, quieter);
    CHECK(d.log_level_changed);
    CHECK_FALSE(d.hub_changed);
    CHECK_FALSE(d.empty());
    CHECK_FALSE(d.needs_restart());
    dmvpn::config::topology moved = *r;
    moved.hub.metrics->address = ip("0.0.0.0");
    CHECK(dmvpn::config::diff(*r, moved).needs_restart());
}

TEST_CASE("defaults fill what a minimal topology leaves out", "[config]") {
    auto r = load_string(R"(ports:
  - {name: wan, device: "00:04.0", role: underlay, address: 192.0.2.1/24}
tunnels:
  - name: t
    port: wan
    overlay-address: 10.0.0.1
    overlay-prefix: 10.0.0.0/24
    nhrp: {network-id: 9}
)",
                         "min.yaml");
    INFO(r.error_text());
    REQUIRE(r.has_value());
    const auto& t = *r;
    CHECK(t.hub.control_lcore == 0);
    CHECK(t.hub.worker_lcores == std::vector<uint32_t>{1});
    CHECK(t.hub.worker_idle_sleep_us == 0);   // busy-poll unless asked
    CHECK(t.hub.control_idle_nap_us == 100);  // the control lcore naps when idle unless asked
    CHECK(t.hub.log_level == "info");
    CHECK_FALSE(t.hub.metrics);           // no endpoint unless asked
    CHECK(t.hub.service_cpus.empty());    // automatic: off the lcores' CPUs
    CHECK(t.hub.heap_headroom_mb == 64);  // the control lcore's heap faulted in ahead of use
    CHECK(t.ports[0].dev.spec == "0000:00:04.0");
    CHECK(t.ports[0].mtu == 1500);
    CHECK(t.ports[0].rx_queue_size == 1024);
    const auto& tn = t.tunnels[0];
    CHECK(tn.nbma_source == ip("192.0.2.1"));
    CHECK_FALSE(tn.gre_key.has_value());
    CHECK(tn.nhrp.holdtime == 7200);
    CHECK(tn.nhrp.registration_timeout == 2400);
    CHECK(tn.nhrp.phase == 2);
    CHECK_FALSE(tn.nhrp.redirect);
    CHECK(tn.nhrp.multicast_dynamic);
    CHECK(tn.nhrp.authentication.empty());
    CHECK(tn.nhrp.registration_prefixes.empty());  // a spoke registers its own address only
    CHECK(tn.nhrp.holdtime_min == 1);
    CHECK(tn.nhrp.holdtime_max == 10800);
    CHECK(tn.nhrp.max_entries_per_nbma == 256);
    CHECK(tn.ip_mtu == 1400);
    CHECK(tn.tcp_adjust_mss == 1360);
    CHECK(tn.ipsec_profile.empty());
    CHECK_FALSE(tn.verify_source);
    CHECK_FALSE(t.ports[0].allow_transit);
    CHECK(t.mgmt.socket == "/run/dmvpn-hub.sock");
}

TEST_CASE("verify-source and allow-transit: booleans; allow-transit only on underlay ports",
          "[config]") {
    doc d = base()
                .replace("gre-key: 7", "    gre-key: 7\n    verify-source: true")
                .replace("role: underlay", "    role: underlay\n    allow-transit: yes");
    auto r = load_string(d.text(), "t.yaml");
    INFO(r.error_text());
    REQUIRE(r.has_value());
    CHECK(r->tunnels[0].verify_source);
    CHECK(r->ports[0].allow_transit);
    error lan = only_error(base().replace("role: lan", "    role: lan\n    allow-transit: true"));
    CHECK(lan.key == "ports[1].allow-transit");
    CHECK(lan.message == "allow-transit is for underlay ports (a lan port always forwards)");
    CHECK(lan.line == base()
                          .replace("role: lan", "    role: lan\n    allow-transit: true")
                          .line_of("allow-transit"));
    error bad = only_error(base().replace("gre-key: 7", "    gre-key: 7\n    verify-source: 1"));
    CHECK(bad.key == "tunnels[0].verify-source");
}

TEST_CASE("the base test document is valid", "[config]") {
    auto r = load_string(base().text(), "t.yaml");
    INFO(r.error_text());
    REQUIRE(r.has_value());
    CHECK(r->ipsec_profiles[0].manual_sas[0].inbound.spi == 0x1000);
}

TEST_CASE("errors are formatted file:line:column: key: message", "[config]") {
    doc d = base().replace("gre-key: 7", "    gre-key: abc");
    error e = only_error(d);
    int line = d.line_of("gre-key: abc");
    int column = d.column_of("gre-key: abc", "abc");
    CHECK(e.file == "t.yaml");
    CHECK(e.line == line);
    CHECK(e.column == column);
    CHECK(e.key == "tunnels[0].gre-key");
    CHECK(to_string(e) ==
          "t.yaml:" + std::to_string(line) + ":" + std::to_string(column) +
              ": tunnels[0].gre-key: expected an integer 0..4294967295, got \"abc\"");
    CHECK(to_string(error{"x.yaml", 0, 0, "", "cannot read"}) == "x.yaml: cannot read");
}

TEST_CASE("YAML syntax errors give the parser's position", "[config]") {
    doc d = base().replace("worker-lcores: [1]", "  worker-lcores: [1, 2");
    auto r = load_string(d.text(), "t.yaml");
    REQUIRE_FALSE(r.has_value());
    REQUIRE(r.errors().size() == 1);
    const error& e = r.errors()[0];
    CHECK(e.message.find("YAML syntax") == 0);
    CHECK(e.key.empty());
    CHECK(e.line >= d.line_of("worker-lcores"));

    auto tab = load_string("ports:\n\t- x\n", "tab.yaml");
    REQUIRE_FALSE(tab.has_value());
    CHECK(tab.errors()[0].line == 2);
}

TEST_CASE("wrong types name what was expected and what was found", "[config]") {
    struct row {
        const char* needle;
        std::string replacement;
        const char* key;
        const char* message;
    };
    const row rows[] = {
        {"control-lcore: 0", "  control-lcore: [0]", "hub.control-lcore",
         "expected an integer 0..127, got a sequence"},
        {"dynamic: true", "        dynamic: maybe", "tunnels[0].nhrp.multicast.dynamic",
         "expected true or false, got \"maybe\""},
        {"role: underlay", "    role: {x: 1}", "ports[0].role",
         "expected underlay or lan, got a mapping"},
        {"worker-lcores: [1]", "  worker-lcores: 1", "hub.worker-lcores",
         "expected a sequence, got \"1\""},
        {"hard-packets: 1000", "      - 1000", "ipsec-profiles[0].lifetime",
         "expected a mapping, got a sequence"},
        {"socket: /run/test.sock", "  socket: [a]", "management.socket",
         "expected a string, got a sequence"},
        {"network-id: 1", "      network-id:", "tunnels[0].nhrp.network-id",
         "expected an integer 1..4294967295, got nothing"},
        {"transform: aes128-cbc", "    transform: aes128-gcm", "ipsec-profiles[0].transform",
         "expected aes128-gcm16, aes256-gcm16, aes128-cbc-sha1-96, aes256-cbc-sha256-128 or, for "
         "legacy peers, 3des-cbc-md5-96, 3des-cbc-sha1-96, aes128-cbc-md5-96, got \"aes128-gcm\""},
    };
    for (const row& x : rows) {
        doc d = base().replace(x.needle, x.replacement);
        error e = only_error(d);
        CHECK(e.key == x.key);
        CHECK(e.message == x.message);
        CHECK(e.line == d.line_of(x.replacement));
    }
}

TEST_CASE("numbers out of range are refused", "[config]") {
    struct row {
        const char* needle;
        std::string replacement;
        const char* key;
        const char* expected;
    };
    const row rows[] = {
        {"gre-key: 7", "    gre-key: 4294967296", "tunnels[0].gre-key", "0..4294967295"},
        {"gre-key: 7", "    gre-key: -1", "tunnels[0].gre-key", "0..4294967295"},
        {"network-id: 1", "      network-id: 0", "tunnels[0].nhrp.network-id", "1..4294967295"},
        {"network-id: 1", "      network-id: 1\n      holdtime: 0", "tunnels[0].nhrp.holdtime",
         "1..65535"},
        {"control-lcore: 0", "  control-lcore: 128", "hub.control-lcore", "0..127"},
        {"spi: 0x1000", "          spi: 255", "ipsec-profiles[0].manual-sas[0].inbound.spi",
         "256..4294967295"},
        {"role: underlay", "    role: underlay\n    mtu: 100000", "ports[0].mtu", "576..9216"},
        {"hard-packets: 1000", "      hard-packets: 18446744073709551616",
         "ipsec-profiles[0].lifetime.hard-packets", "0..18446744073709551615"},
    };
    for (const row& x : rows) {
        doc d = base().replace(x.needle, x.replacement);
        error e = only_error(d);
        CHECK(e.key == x.key);
        CHECK(e.message.find(std::string("expected an integer ") + x.expected) == 0);
    }
    error q =
        only_error(base().replace("role: underlay", "    role: underlay\n    rx-queue-size: 1000"));
    CHECK(q.key == "ports[0].rx-queue-size");
    CHECK(q.message == "expected a power of two 64..32768, got 1000");
}

TEST_CASE("the control lcore's budgets: punt rates per kind, ICMP errors, ARP", "[config]") {
    // Defaults, as config/README.md states them.
    auto r = load_string(base().text(), "t.yaml");
    REQUIRE(r.has_value());
    CHECK(r->hub.punt_rates.nhrp == 10000);
    CHECK(r->hub.punt_rates.ike == 5000);
    CHECK(r->hub.punt_rates.arp == 2000);
    CHECK(r->hub.punt_rates.multicast == 1000);
    CHECK(r->hub.icmp_error_rate == 100);
    CHECK(r->hub.arp_max_entries == 16384);

    doc d = base().replace("control-lcore: 0",
                           "  control-lcore: 0\n"
                           "  punt-rates: {nhrp: 50000, multicast: 10, for-us: 7, ike: 3}\n"
                           "  icmp-error-rate: 2\n"
                           "  arp-max-entries: 1000");
    auto set = load_string(d.text(), "t.yaml");
    INFO(set.error_text());
    REQUIRE(set.has_value());
    CHECK(set->hub.punt_rates.nhrp == 50000);
    CHECK(set->hub.punt_rates.multicast == 10);
    CHECK(set->hub.punt_rates.for_us == 7);
    CHECK(set->hub.punt_rates.ike == 3);
    CHECK(set->hub.punt_rates.arp == 2000);  // not given: the default
    CHECK(set->hub.icmp_error_rate == 2);
    CHECK(set->hub.arp_max_entries == 1000);

    error zero = only_error(
        base().replace("control-lcore: 0", "  control-lcore: 0\n  punt-rates: {glean: 0}"));
    CHECK(zero.key == "hub.punt-rates.glean");
    CHECK(zero.message.find("expected an integer 1..10000000") == 0);
    error typo = only_error(
        base().replace("control-lcore: 0", "  control-lcore: 0\n  punt-rates: {icmp: 5}"));
    CHECK(typo.key == "hub.punt-rates.icmp");
    error small =
        only_error(base().replace("control-lcore: 0", "  control-lcore: 0\n  arp-max-entries: 15"));
    CHECK(small.key == "hub.arp-max-entries");
    CHECK(small.message.find("expected an integer 16..1048576") == 0);
}

TEST_CASE("unknown keys are refused at every level, where they stand", "[config]") {
    struct row {
        const char* after;
        int indent;
        const char* path;
    };
    const row rows[] = {
        {"socket: /run/test.sock", 0, "bogus"},
        {"control-lcore: 0", 2, "hub.bogus"},
        {"role: underlay", 4, "ports[0].bogus"},
        {"gre-key: 7", 4, "tunnels[0].bogus"},
        {"network-id: 1", 6, "tunnels[0].nhrp.bogus"},
        {"nbma: 192.0.2.2", 10, "tunnels[0].nhrp.nhs[0].bogus"},
        {"dynamic: true", 8, "tunnels[0].nhrp.multicast.bogus"},
        {"transform: aes128-cbc", 4, "ipsec-profiles[0].bogus"},
        {"hard-packets: 1000", 6, "ipsec-profiles[0].lifetime.bogus"},
        {"- peer: 192.0.2.2", 8, "ipsec-profiles[0].manual-sas[0].bogus"},
        {"spi: 0x1000", 10, "ipsec-profiles[0].manual-sas[0].inbound.bogus"},
        {"spi: 0x2000", 10, "ipsec-profiles[0].manual-sas[0].outbound.bogus"},
        {"via: 10.0.0.2", 4, "routes[0].bogus"},
        {"socket: /run/test.sock", 2, "management.bogus"},
    };
    for (const row& x : rows) {
        doc d = base().insert_after(x.after,
                                    std::string(static_cast<size_t>(x.indent), ' ') + "bogus: 1");
        error e = only_error(d);
        CHECK(e.key == x.path);
        CHECK(e.line == d.line_of(x.after) + 1);
        CHECK(e.column == x.indent + 1);
        CHECK(e.message.find("unknown key") == 0);
    }
    // A near miss names the key that was meant.
    error near = only_error(base().replace("gre-key: 7", "    gre_key: 7"));
    CHECK(near.key == "tunnels[0].gre_key");
    CHECK(near.message == "unknown key; did you mean \"gre-key\"?");
}

TEST_CASE("a key given twice in one mapping is refused", "[config]") {
    doc d = base().insert_after("gre-key: 7", "    gre-key: 8");
    error e = only_error(d);
    CHECK(e.key == "tunnels[0].gre-key");
    CHECK(e.line == d.line_of("gre-key: 8"));
    CHECK(e.message == "duplicate key");
}

TEST_CASE("missing required keys are reported on the mapping that lacks them", "[config]") {
    struct row {
        const char* erase;
        const char* map_starts;  // the first line of the mapping that lacks the key
        const char* path;
    };
    const row rows[] = {
        {"device: net_tap0", "- name: wan", "ports[0].device"},
        {"role: lan", "- name: lan", "ports[1].role"},
        {"port: wan", "- name: tun0", "tunnels[0].port"},
        {"overlay-prefix: 10.0.0.0/16", "- name: tun0", "tunnels[0].overlay-prefix"},
        {"network-id: 1", "authentication: secret", "tunnels[0].nhrp.network-id"},
        {"nbma: 192.0.2.2", "overlay: 10.0.0.2", "tunnels[0].nhrp.nhs[0].nbma"},
        {"transform: aes128-cbc", "- name: p1", "ipsec-profiles[0].transform"},
        {"spi: 0x2000", "key: 1011121314", "ipsec-profiles[0].manual-sas[0].outbound.spi"},
    };
    for (const row& x : rows) {
        doc d = base().erase(x.erase);
        error e = only_error(d);
        CHECK(e.key == x.path);
        CHECK(e.message.find("missing required key") == 0);
        CHECK(e.line == d.line_of(x.map_starts));
    }
    doc no_prefix = base().erase("via: 10.0.0.2").replace("prefix: 172.16", "  - via: 10.0.0.2");
    error route = only_error(no_prefix);
    CHECK(route.key == "routes[0].prefix");
    CHECK(route.line == no_prefix.line_of("- via: 10.0.0.2"));

    error integ = only_error(base().erase("integrity-key: 3031"));
    CHECK(integ.key == "ipsec-profiles[0].manual-sas[0].outbound.integrity-key");
    CHECK(integ.message == "missing required key (aes128-cbc-sha1-96 needs a 20-byte HMAC key)");

    auto top = load_string("ports: []\n", "t.yaml");
    REQUIRE_FALSE(top.has_value());
    INFO(top.error_text());
    REQUIRE(top.errors().size() == 2);
    CHECK(to_string(top.errors()[0]) == "t.yaml:1:1: tunnels: missing required key");
    CHECK(to_string(top.errors()[1]) == "t.yaml:1:8: ports: at least one entry is needed");
}

TEST_CASE("bad addresses and prefixes are refused", "[config]") {
    struct row {
        const char* needle;
        std::string replacement;
        const char* key;
        const char* message;
    };
    const row rows[] = {
        {"overlay-address: 10.0.0.1", "    overlay-address: 10.0.0.256",
         "tunnels[0].overlay-address",
         "expected an IPv4 address like 192.0.2.1, got \"10.0.0.256\""},
        {"overlay-address: 10.0.0.1", "    overlay-address: 10.00.0.1",
         "tunnels[0].overlay-address",
         "expected an IPv4 address like 192.0.2.1, got \"10.00.0.1\""},
        {"overlay-prefix: 10.0.0.0/16", "    overlay-prefix: 10.0.0.1/16",
         "tunnels[0].overlay-prefix", "10.0.0.1/16 has host bits set; did you mean 10.0.0.0/16?"},
        {"overlay-prefix: 10.0.0.0/16", "    overlay-prefix: 10.0.0.0/33",
         "tunnels[0].overlay-prefix",
         "expected an IPv4 prefix like 10.0.0.0/16, got \"10.0.0.0/33\""},
        {"overlay-address: 10.0.0.1", "    overlay-address: 10.1.0.1", "tunnels[0].overlay-address",
         "10.1.0.1 is outside the overlay prefix 10.0.0.0/16"},
        {"address: 192.0.2.1/24", "    address: 192.0.2.0/24", "ports[0].address",
         "192.0.2.0 is the network or broadcast address of 192.0.2.0/24"},
        {"role: underlay", "    role: underlay\n    gateway: 192.0.3.1", "ports[0].gateway",
         "gateway 192.0.3.1 must be another host on 192.0.2.0/24"},
        {"overlay: 10.0.0.2", "        - overlay: 10.0.0.1", "tunnels[0].nhrp.nhs[0].overlay",
         "10.0.0.1 must be another address inside the tunnel's overlay prefix 10.0.0.0/16"},
        {"device: net_tap0", "    device: 3b:00.9", "ports[0].device",
         "expected a PCI address like 0000:3b:00.0 or a virtual device like "
         "net_tap0,iface=dtap0, got \"3b:00.9\""},
        {"device: net_tap0", "    device: net_bogus0", "ports[0].device",
         "unknown virtual device driver \"net_bogus\" (known: net_tap, net_tun, net_ring, "
         "net_pcap, net_memif, net_null, net_af_packet, net_af_xdp, net_virtio_user, net_vhost)"},
        {"device: net_tap0", "    device: net_pcap0,rx_pcap", "ports[0].device",
         "device argument \"rx_pcap\" is not key=value"},
    };
    for (const row& x : rows) {
        doc d = base().replace(x.needle, x.replacement);
        error e = only_error(d);
        CHECK(e.key == x.key);
        CHECK(e.message == x.message);
    }
}

TEST_CASE("duplicates are refused where the second one stands", "[config]") {
    SECTION("port names") {
        doc d = base().replace("- name: lan", "  - name: wan");
        auto r = load_string(d.text(), "t.yaml");
        REQUIRE_FALSE(r.has_value());
        const error& e = r.errors().at(0);
        CHECK(e.key == "ports[1].name");
        CHECK(e.line == d.line_of("device: net_ring0") - 1);
        CHECK(e.message.find("port name \"wan\" is already used") == 0);
    }
    SECTION("devices") {
        error e = only_error(base().replace("device: net_ring0", "    device: net_tap0,iface=x"));
        CHECK(e.key == "ports[1].device");
        CHECK(e.message == "device net_tap0 is already port \"wan\"'s");
    }
    SECTION("GRE key and network-id of two tunnels on one port") {
        doc d = base().insert_after("ipsec-profile: p1", R"(  - name: tun1
    port: wan
    overlay-address: 10.1.0.1
    overlay-prefix: 10.1.0.0/16
    gre-key: 7
    nhrp: {network-id: 1})");
        auto r = load_string(d.text(), "t.yaml");
        REQUIRE_FALSE(r.has_value());
        INFO(r.error_text());
        REQUIRE(r.errors().size() == 2);
        CHECK(r.errors()[0].key == "tunnels[1].gre-key");
        CHECK(r.errors()[0].line == d.line_of("nhrp: {network-id: 1}") - 1);
        CHECK(r.errors()[1].key == "tunnels[1].nhrp.network-id");
    }
    SECTION("overlapping overlays and a tunnel named like a port") {
        doc d = base().insert_after("ipsec-profile: p1", R"(  - name: lan
    port: wan
    overlay-address: 10.0.128.1
    overlay-prefix: 10.0.128.0/17
    gre-key: 8
    nhrp: {network-id: 2})");
        auto r = load_string(d.text(), "t.yaml");
        REQUIRE_FALSE(r.has_value());
        INFO(r.error_text());
        REQUIRE(r.errors().size() == 2);
        CHECK(r.errors()[0].key == "tunnels[1].name");
        CHECK(r.errors()[1].key == "tunnels[1].overlay-prefix");
        CHECK(r.errors()[1].message == "10.0.128.0/17 overlaps tunnel \"tun0\"'s 10.0.0.0/16");
    }
    SECTION("inbound SPIs and peers") {
        doc d = base().insert_after("integrity-key: 3031", R"(      - peer: 192.0.2.2
        inbound: {spi: 0x1000, key: 000102030405060708090a0b0c0d0e0f,
                  integrity-key: 2021222324252627282920212223242526272829}
        outbound: {spi: 0x2001, key: 000102030405060708090a0b0c0d0e0f,
                   integrity-key: 2021222324252627282920212223242526272829})");
        auto r = load_string(d.text(), "t.yaml");
        REQUIRE_FALSE(r.has_value());
        INFO(r.error_text());
        REQUIRE(r.errors().size() == 2);
        CHECK(r.errors()[0].key == "ipsec-profiles[0].manual-sas[1].peer");
        CHECK(r.errors()[1].key == "ipsec-profiles[0].manual-sas[1].inbound.spi");
        CHECK(r.errors()[1].message.find("inbound SPI 0x1000 is already used") == 0);
    }
    SECTION("static maps and route prefixes") {
        doc d = base()
                    .insert_after("nbma: 192.0.2.2", R"(      map:
        - {overlay: 10.0.0.9, nbma: 192.0.2.9}
        - {overlay: 10.0.0.9, nbma: 192.0.2.10})")
                    .insert_after("via: 10.0.0.2", "  - {prefix: 172.16.0.0/24, via: 10.0.0.3}");
        auto r = load_string(d.text(), "t.yaml");
        REQUIRE_FALSE(r.has_value());
        INFO(r.error_text());
        REQUIRE(r.errors().size() == 2);
        CHECK(r.errors()[0].key == "tunnels[0].nhrp.map[1].overlay");
        CHECK(r.errors()[1].key == "routes[1].prefix");
    }
}

TEST_CASE("references to unknown or unfit entries are refused", "[config]") {
    struct row {
        const char* needle;
        std::string replacement;
        const char* key;
        const char* message;
    };
    const row rows[] = {
        {"port: wan", "    port: wam", "tunnels[0].port", "no port is named \"wam\""},
        {"port: wan", "    port: lan", "tunnels[0].port",
         "port \"lan\" is a lan port; tunnels need an underlay port"},
        {"ipsec-profile: p1", "    ipsec-profile: p2", "tunnels[0].ipsec-profile",
         "no ipsec profile is named \"p2\""},
        {"via: 10.0.0.2", "    via: 10.9.0.2", "routes[0].via",
         "10.9.0.2 is neither a spoke's overlay address in a tunnel's prefix nor a host on a "
         "lan port"},
        {"via: 10.0.0.2", "    port: nowhere", "routes[0].port", "no port is named \"nowhere\""},
        {"via: 10.0.0.2", "    port: tun0", "routes[0].port",
         "\"tun0\" is a tunnel: routes into a tunnel name the spoke's overlay address in via"},
        {"overlay-address: 10.0.0.1", "    nbma-source: 192.0.2.7\n    overlay-address: 10.0.0.1",
         "tunnels[0].nbma-source", "192.0.2.7 is not port \"wan\"'s address (192.0.2.1)"},
        {"peer: 192.0.2.2", "      - peer: 192.0.2.1", "ipsec-profiles[0].manual-sas[0].peer",
         "192.0.2.1 is this hub's own NBMA address"},
    };
    for (const row& x : rows) {
        doc d = base().replace(x.needle, x.replacement);
        error e = only_error(d);
        CHECK(e.key == x.key);
        CHECK(e.message == x.message);
    }
}

TEST_CASE("a name that failed to parse does not cascade into dangling references", "[config]") {
    doc d = base().replace("- name: wan", "  - name: w@n");
    error e = only_error(d);
    CHECK(e.key == "ports[0].name");
}

TEST_CASE("keys must match the transform", "[config]") {
    struct row {
        const char* needle;
        std::string replacement;
        const char* key;
        const char* message;
    };
    const row rows[] = {
        {"key: 0001", "          key: 0001020", "ipsec-profiles[0].manual-sas[0].inbound.key",
         "expected hex bytes (an even number of hex digits, 0x optional), got \"0001020\""},
        {"key: 0001", "          key: 0x00zz", "ipsec-profiles[0].manual-sas[0].inbound.key",
         "expected hex bytes (an even number of hex digits, 0x optional), got \"0x00zz\""},
        {"key: 0001", "          key: 000102030405060708090a0b0c0d0e",
         "ipsec-profiles[0].manual-sas[0].inbound.key",
         "aes128-cbc-sha1-96 needs a 16-byte key (32 hex digits), got 15 bytes"},
        {"integrity-key: 2021", "          integrity-key: 20212223242526272829202122232425262728",
         "ipsec-profiles[0].manual-sas[0].inbound.integrity-key",
         "aes128-cbc-sha1-96 needs a 20-byte integrity-key (40 hex digits), got 19 bytes"},
        {"integrity-key: 2021",
         "          integrity-key: 2021222324252627282920212223242526272829\n          salt: 0102",
         "ipsec-profiles[0].manual-sas[0].inbound.salt",
         "aes128-cbc-sha1-96 takes no salt (GCM only)"},
    };
    for (const row& x : rows) {
        doc d = base().replace(x.needle, x.replacement);
        error e = only_error(d);
        CHECK(e.key == x.key);
        CHECK(e.message == x.message);
    }
    // AES-256 with SHA-256 wants a 32-byte key and a 32-byte HMAC key.
    doc cbc = base().replace("transform: aes128-cbc", "    transform: aes256-cbc-sha256-128");
    auto r = load_string(cbc.text(), "t.yaml");
    REQUIRE_FALSE(r.has_value());
    INFO(r.error_text());
    bool key_length = false;
    bool integrity = false;
    for (const error& e : r.errors()) {
        key_length |=
            e.message == "aes256-cbc-sha256-128 needs a 32-byte key (64 hex digits), got 16 bytes";
        integrity |= e.key == "ipsec-profiles[0].manual-sas[0].inbound.integrity-key" &&
                     e.message ==
                         "aes256-cbc-sha256-128 needs a 32-byte integrity-key (64 hex digits), got "
                         "20 bytes";
    }
    CHECK(key_length);
    CHECK(integrity);
}

namespace {

// The base document with an AES-GCM profile: salts instead of HMAC keys.
doc with_gcm(std::string_view transform) {
    return base()
        .replace("transform: aes128-cbc", std::string("    transform: ") + std::string(transform))
        .replace("integrity-key: 2021", "          salt: 01020304")
        .replace("integrity-key: 3031", "          salt: 05060708");
}

}  // namespace

TEST_CASE("GCM is refused with manual keys: the IV repeats after a restart (RFC 4106 8.1)",
          "[config]") {
    for (const char* t : {"aes128-gcm16", "aes256-gcm16"}) {
        INFO(t);
        doc d = with_gcm(t);
        if (std::string_view(t) == "aes256-gcm16") {
            d = d.replace("key: 0001", "          key: " + std::string(64, 'a'))
                    .replace("key: 1011", "          key: " + std::string(64, 'b'));
        }
        error e = only_error(d);
        CHECK(e.key == "ipsec-profiles[0].transform");
        CHECK(e.line == d.line_of("transform: aes"));
        CHECK(e.column == 16);
        // Says why and what to use instead.
        CHECK(e.message.find(std::string(t) + " cannot be used with manual-sas") == 0);
        CHECK(e.message.find("RFC 4106 section 8.1") != std::string::npos);
        CHECK(e.message.find("restarts") != std::string::npos);
        CHECK(e.message.find("aes128-cbc-sha1-96 or aes256-cbc-sha256-128") != std::string::npos);
        CHECK(e.message.find("IKE") != std::string::npos);
        CHECK(to_string(e).find("t.yaml:" + std::to_string(e.line) + ":16: ") == 0);
    }
    // GCM keys are still checked, so a config fixed by changing only the transform is not the
    // first time its keys are read.
    auto r = load_string(
        with_gcm("aes128-gcm16").replace("salt: 0102", "          salt: 010203").text(), "t.yaml");
    REQUIRE_FALSE(r.has_value());
    INFO(r.error_text());
    REQUIRE(r.errors().size() == 2);
    CHECK(r.errors()[1].key == "ipsec-profiles[0].manual-sas[0].inbound.salt");
    CHECK(r.errors()[1].message == "the GCM salt is 4 bytes (8 hex digits), got 3 bytes");
    // A GCM profile with no manual SAs is not refused (IKE will fill such profiles).
    doc no_sas = with_gcm("aes128-gcm16");
    for (const char* l : {"spi: 0x1000", "key: 0001", "salt: 0102", "outbound:", "spi: 0x2000",
                          "key: 1011", "salt: 0506", "inbound:", "- peer: 192.0.2.2"}) {
        no_sas = no_sas.erase(l);
    }
    no_sas = no_sas.replace("manual-sas:", "    manual-sas: []");
    auto ok = load_string(no_sas.text(), "t.yaml");
    INFO(no_sas.text() << ok.error_text());
    CHECK(ok.has_value());
}

TEST_CASE("legacy transforms load with a warning naming them and where", "[config][legacy]") {
    struct row {
        const char* transform;
        const char* key;
        const char* integrity_key;
        const char* names;  // what the warning must name
    };
    const row rows[] = {
        {"3des-cbc-md5-96", "0123456789abcdef23456789abcdef01456789abcdef0123",
         "000102030405060708090a0b0c0d0e0f", "3DES-CBC and HMAC-MD5-96"},
        {"3des-cbc-sha1-96", "0123456789abcdef23456789abcdef01456789abcdef0123",
         "2021222324252627282920212223242526272829", "3DES-CBC"},
        {"aes128-cbc-md5-96", "000102030405060708090a0b0c0d0e0f",
         "000102030405060708090a0b0c0d0e0f", "HMAC-MD5-96"},
    };
    for (const row& x : rows) {
        INFO(x.transform);
        doc d = base()
                    .replace("transform: aes128-cbc-sha1-96",
                             std::string("    transform: ") + x.transform)
                    .replace("key: 0001", std::string("          key: ") + x.key)
                    .replace("key: 1011", std::string("          key: ") + x.key)
                    .replace("integrity-key: 2021",
                             std::string("          integrity-key: ") + x.integrity_key)
                    .replace("integrity-key: 3031",
                             std::string("          integrity-key: ") + x.integrity_key);
        auto r = load_string(d.text(), "t.yaml");
        INFO(d.text() << r.error_text());
        REQUIRE(r.has_value());
        REQUIRE(r.warnings().size() == 1);
        const dmvpn::config::warning& w = r.warnings()[0];
        CHECK(w.key == "ipsec-profiles[0].transform");
        CHECK(w.line == d.line_of("transform: "));
        CHECK(w.column == 16);
        CHECK_THAT(w.message, Catch::StartsWith(std::string(x.transform) + " is for legacy peers"));
        CHECK_THAT(w.message, Catch::Contains(x.names));
        CHECK_THAT(w.message, Catch::Contains("RFC 8221"));
        CHECK(r.warning_text() == "t.yaml:" + std::to_string(w.line) +
                                      ":16: ipsec-profiles[0].transform: " + w.message + "\n");
        CHECK(r->ipsec_profiles[0].manual_sas[0].inbound.key.size() ==
              cipher_key_bytes(r->ipsec_profiles[0].xform));
    }
    // The key lengths follow the transform: 3DES takes 24 bytes, HMAC-MD5-96 16.
    doc short_key = base()
                        .replace("transform: aes128-cbc-sha1-96", "    transform: 3des-cbc-md5-96")
                        .replace("integrity-key: 2021",
                                 "          integrity-key: 000102030405060708090a0b0c0d0e0f")
                        .replace("integrity-key: 3031",
                                 "          integrity-key: 000102030405060708090a0b0c0d0e0f")
                        .replace("key: 1011", "          key: " + std::string(48, 'a'));
    error e = only_error(short_key);
    CHECK(e.key == "ipsec-profiles[0].manual-sas[0].inbound.key");
    CHECK(e.message == "3des-cbc-md5-96 needs a 24-byte key (48 hex digits), got 16 bytes");
    // The strong transforms warn about nothing.
    auto strong = load_string(base().text(), "t.yaml");
    REQUIRE(strong.has_value());
    CHECK(strong.warnings().empty());
}

TEST_CASE("anti-replay: off for manual SAs unless the profile turns it on", "[config]") {
    auto off = load_string(base().text(), "t.yaml");
    INFO(off.error_text());
    REQUIRE(off.has_value());
    CHECK_FALSE(off->ipsec_profiles.at(0).anti_replay);
    doc on = base().replace("transform: aes128-cbc",
                            "    transform: aes128-cbc-sha1-96\n    anti-replay: true");
    auto r = load_string(on.text(), "t.yaml");
    INFO(r.error_text());
    REQUIRE(r.has_value());
    CHECK(r->ipsec_profiles.at(0).anti_replay);
    CHECK(dmvpn::config::diff(*off, *r).ipsec_profiles_changed == std::vector<std::string>{"p1"});
    error e = only_error(base().replace("transform: aes128-cbc",
                                        "    transform: aes128-cbc-sha1-96\n    anti-replay: 2"));
    CHECK(e.key == "ipsec-profiles[0].anti-replay");
}

TEST_CASE("checks that span fields", "[config]") {
    struct row {
        const char* needle;
        std::string replacement;
        const char* key;
        const char* message;
    };
    const row rows[] = {
        {"authentication: secret", "      authentication: toolongpw",
         "tunnels[0].nhrp.authentication", "at most 8 bytes (Cisco's limit), got 9"},
        {"network-id: 1",
         "      network-id: 1\n      holdtime: 300\n      registration-timeout: 300",
         "tunnels[0].nhrp.registration-timeout",
         "300 s must be below the holdtime (300 s) or the registration expires before it is "
         "renewed"},
        {"network-id: 1", "      network-id: 1\n      phase: 2\n      redirect: true",
         "tunnels[0].nhrp.redirect", "redirect (Traffic Indication) is Phase 3; phase is 2"},
        {"network-id: 1", "      network-id: 1\n      phase: 1\n      shortcut: true",
         "tunnels[0].nhrp.shortcut", "shortcut is Phase 3; phase is 1"},
        {"network-id: 1", "      network-id: 1\n      max-cache-entries: 0",
         "tunnels[0].nhrp.max-cache-entries", "expected an integer 1..16777216, got \"0\""},
        {"gre-key: 7", "    gre-key: 7\n    tcp-adjust-mss: 1380", "tunnels[0].tcp-adjust-mss",
         "expected 0 (off) or 500..1360 (ip-mtu 1400 less 40), got 1380"},
        {"gre-key: 7", "    gre-key: 7\n    ip-mtu: 1450", "tunnels[0].ip-mtu",
         "1450 plus 28 bytes of GRE and outer IPv4 and up to 53 of ESP (aes128-cbc-sha1-96) "
         "exceeds "
         "port \"wan\"'s MTU 1500"},
        {"worker-lcores: [1]", "  worker-lcores: [0, 1]", "hub.worker-lcores[0]",
         "lcore 0 is the control lcore; workers need their own"},
        {"worker-lcores: [1]", "  worker-lcores: [1-3, 3]", "hub.worker-lcores[1]",
         "lcore 3 is listed twice (first at 3:19)"},
        {"worker-lcores: [1]", "  worker-lcores: [1]\n  worker-idle-sleep-us: 200000",
         "hub.worker-idle-sleep-us", "expected an integer 0..100000, got \"200000\""},
        {"worker-lcores: [1]", "  worker-lcores: [1]\n  control-idle-nap-us: -1",
         "hub.control-idle-nap-us", "expected an integer 0..100000, got \"-1\""},
        {"worker-lcores: [1]", "  worker-lcores: [1]\n  log-level: verbose", "hub.log-level",
         "expected error, warning, notice, info or debug, got \"verbose\""},
        {"worker-lcores: [1]", "  worker-lcores: [1]\n  metrics: {port: 0}", "hub.metrics.port",
         "expected an integer 1..65535, got \"0\""},
        {"worker-lcores: [1]", "  worker-lcores: [1]\n  metrics: {address: localhost}",
         "hub.metrics.address", "expected an IPv4 address like 192.0.2.1, got \"localhost\""},
        {"worker-lcores: [1]", "  worker-lcores: [1]\n  eal-args: [-l0-1]", "hub.eal-args[0]",
         "-l is set by the hub from control-lcore and worker-lcores"},
        {"worker-lcores: [1]", "  worker-lcores: [1]\n  heap-headroom-mb: 1024",
         "hub.heap-headroom-mb", "expected an integer 0..512, got \"1024\""},
        {"worker-lcores: [1]", "  worker-lcores: [1]\n  service-cpus: []", "hub.service-cpus",
         "list at least one CPU, or leave service-cpus out (automatic)"},
        {"worker-lcores: [1]", "  worker-lcores: [1]\n  service-cpus: [2, 1-2]",
         "hub.service-cpus[1]", "CPU 2 is listed twice (first at 4:18)"},
        {"worker-lcores: [1]", "  worker-lcores: [1]\n  service-cpus: [3-1]", "hub.service-cpus[0]",
         "expected a CPU 0..127 or a range like 2-5, got \"3-1\""},
        {"hard-packets: 1000", "      hard-packets: 1000\n      soft-packets: 1000",
         "ipsec-profiles[0].lifetime.soft-packets",
         "the soft limit 1000 must be below the hard limit 1000"},
        {"socket: /run/test.sock", "  socket: run/test.sock", "management.socket",
         "expected an absolute path of at most 107 bytes, got \"run/test.sock\""},
        {"address: 198.18.0.1/24", "    address: 192.0.2.200/25", "ports[1].address",
         "192.0.2.128/25 overlaps port \"wan\"'s 192.0.2.0/24"},
        {"network-id: 1", "      network-id: 1\n      holdtime-min: 60\n      holdtime-max: 30",
         "tunnels[0].nhrp.holdtime-max", "30 s is below holdtime-min (60 s)"},
        {"network-id: 1", "      network-id: 1\n      max-entries-per-nbma: 0",
         "tunnels[0].nhrp.max-entries-per-nbma", "expected an integer 1..16777216, got \"0\""},
        {"network-id: 1",
         "      network-id: 1\n      registration-prefixes: [172.20.0.0/16, 10.0.128.0/24]",
         "tunnels[0].nhrp.registration-prefixes[1]",
         "10.0.128.0/24 overlaps tunnel \"tun0\"'s overlay prefix 10.0.0.0/16"},
        {"network-id: 1", "      network-id: 1\n      registration-prefixes: [198.18.0.0/23]",
         "tunnels[0].nhrp.registration-prefixes[0]",
         "198.18.0.0/23 overlaps port \"lan\"'s 198.18.0.0/24"},
        {"network-id: 1", "      network-id: 1\n      registration-prefixes: [0.0.0.0/0]",
         "tunnels[0].nhrp.registration-prefixes[0]",
         "0.0.0.0/0: a prefix of 1..31 bits (a spoke registers its own /32 without one)"},
    };
    for (const row& x : rows) {
        doc d = base().replace(x.needle, x.replacement);
        error e = only_error(d);
        CHECK(e.key == x.key);
        CHECK(e.message == x.message);
    }
}

TEST_CASE("registration-prefixes, holding time bounds and the per-NBMA cap load", "[config]") {
    doc d = base().replace("network-id: 1",
                           "      network-id: 1\n      registration-prefixes: "
                           "[172.20.0.0/16, 192.168.0.0/24]\n      holdtime-min: "
                           "30\n      holdtime-max: 900\n      "
                           "max-entries-per-nbma: 8");
    auto r = load_string(d.text(), "t.yaml");
    INFO(r.error_text());
    REQUIRE(r.has_value());
    const auto& n = r->tunnels[0].nhrp;
    REQUIRE(n.registration_prefixes.size() == 2);
    CHECK(n.registration_prefixes[0] == dmvpn::config::prefix4{ip("172.20.0.0"), 16});
    CHECK(n.registration_prefixes[1] == dmvpn::config::prefix4{ip("192.168.0.0"), 24});
    CHECK(n.holdtime_min == 30);
    CHECK(n.holdtime_max == 900);
    CHECK(n.max_entries_per_nbma == 8);
}

TEST_CASE("a control lcore on the default worker lcore is refused", "[config]") {
    doc d = base().erase("worker-lcores: [1]").replace("control-lcore: 0", "  control-lcore: 1");
    error e = only_error(d);
    CHECK(e.key == "hub.control-lcore");
    CHECK(e.message == "lcore 1 is also the default worker lcore: list worker-lcores");
    CHECK(e.line == d.line_of("control-lcore: 1"));
}

TEST_CASE("every error in a document is reported, in file order", "[config]") {
    doc d = base()
                .replace("control-lcore: 0", "  control-lcore: x")
                .replace("gre-key: 7", "    gre-key: abc")
                .replace("port: wan", "    port: wam")
                .insert_after("via: 10.0.0.2", "    colour: red");
    auto r = load_string(d.text(), "t.yaml");
    REQUIRE_FALSE(r.has_value());
    INFO(r.error_text());
    REQUIRE(r.errors().size() == 4);
    CHECK(r.errors()[0].key == "hub.control-lcore");
    CHECK(r.errors()[1].key == "tunnels[0].port");
    CHECK(r.errors()[2].key == "tunnels[0].gre-key");
    CHECK(r.errors()[3].key == "routes[0].colour");
    for (size_t i = 1; i < r.errors().size(); ++i) {
        CHECK(r.errors()[i - 1].line < r.errors()[i].line);
    }
    // error_text has one formatted line per error
    std::string text = r.error_text();
    CHECK(std::count(text.begin(), text.end(), '\n') == 4);
}

TEST_CASE("empty, blank and multi-document files", "[config]") {
    for (const char* text : {"", "\n\n", "# only a comment\n", "---\n", "~\n"}) {
        auto r = load_string(text, "e.yaml");
        REQUIRE_FALSE(r.has_value());
        REQUIRE(r.errors().size() == 1);
        CHECK(r.errors()[0].line == 1);
        CHECK(r.errors()[0].message.find("the document is empty") == 0);
    }
    // yaml-cpp's LoadAll loops forever on a stray top-level comma; the loader must not.
    auto comma = load_string(",", "c.yaml");
    REQUIRE_FALSE(comma.has_value());
    CHECK(to_string(comma.errors().at(0)) ==
          "c.yaml:1:1: YAML syntax: ',' outside a flow collection ([...] or {...})");

    auto scalar = load_string("hello\n", "s.yaml");
    REQUIRE_FALSE(scalar.has_value());
    CHECK(scalar.errors()[0].message == "expected a mapping, got \"hello\"");

    doc two = doc(base().text() + "---\nports: []\n");
    auto r = load_string(two.text(), "t.yaml");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.errors()[0].message.find("a second YAML document") == 0);
    CHECK(r.errors()[0].line == two.line_of("ports: []"));
}

TEST_CASE("files that cannot be read give an error without a position", "[config]") {
    auto r = load_file("/nonexistent/dir/topology.yaml");
    REQUIRE_FALSE(r.has_value());
    REQUIRE(r.errors().size() == 1);
    CHECK(r.errors()[0].line == 0);
    CHECK(r.errors()[0].file == "/nonexistent/dir/topology.yaml");
    CHECK(r.errors()[0].message.find("cannot read") == 0);

    auto dir = load_file((source_root() / "config").string());
    REQUIRE_FALSE(dir.has_value());
    REQUIRE(dir.errors().size() == 1);
    CHECK(dir.errors()[0].line == 0);
    CHECK(dir.errors()[0].message.find("cannot read") == 0);
}

TEST_CASE("a large topology loads", "[config]") {
    std::string text = base().text();
    std::string maps = "      map:\n";
    for (uint32_t i = 0; i < 20000; ++i) {
        uint32_t host = 10 + i;  // 10.0.0.10 upwards inside 10.0.0.0/16
        maps += "        - {overlay: 10.0." + std::to_string(host / 256) + "." +
                std::to_string(host % 256) + ", nbma: 100.64." + std::to_string(host / 256) + "." +
                std::to_string(host % 256) + "}\n";
    }
    doc d = base().insert_after("nbma: 192.0.2.2", maps + "      max-cache-entries: 100000");
    auto r = load_string(d.text(), "big.yaml");
    INFO(r.error_text().substr(0, 2000));
    REQUIRE(r.has_value());
    CHECK(r->tunnels[0].nhrp.maps.size() == 20000);
}

TEST_CASE("hostile documents end in errors, not crashes", "[config]") {
    SECTION("deep nesting") {
        std::string deep = "hub: " + std::string(100000, '[') + std::string(100000, ']') + "\n";
        auto r = load_string(deep, "deep.yaml");
        REQUIRE_FALSE(r.has_value());
        CHECK_FALSE(r.errors().empty());
    }
    SECTION("deep block mappings") {
        std::string deep;
        for (int i = 0; i < 5000; ++i) {
            deep += std::string(static_cast<size_t>(i), ' ') + "k:\n";
        }
        auto r = load_string(deep, "deep.yaml");
        REQUIRE_FALSE(r.has_value());
        CHECK_FALSE(r.errors().empty());
    }
    SECTION("aliases that multiply the walk") {
        // A thousand tunnels, each naming one list of a thousand mappings: a million entries
        // from a few kilobytes.
        std::string bomb = "x: &x {overlay: 10.0.0.5, nbma: 192.0.2.9}\ny: &y [*x";
        for (int i = 1; i < 1000; ++i) {
            bomb += ", *x";
        }
        bomb +=
            "]\nt: &t {name: a, port: wan, overlay-address: 10.0.0.1, "
            "overlay-prefix: 10.0.0.0/16, nhrp: {network-id: 1, map: *y}}\n"
            "ports: [{name: wan, device: net_null0, role: underlay, address: 192.0.2.1/24}]\n"
            "tunnels: [*t";
        for (int i = 1; i < 1000; ++i) {
            bomb += ", *t";
        }
        bomb += "]\n";
        auto r = load_string(bomb, "bomb.yaml");
        REQUIRE_FALSE(r.has_value());
        CHECK(r.errors().size() <= 101);
        CHECK(r.errors().back().message.find("too many errors") == 0);
    }
    SECTION("control bytes and long values are quoted safely") {
        std::string text =
            base()
                .replace("gre-key: 7", "    gre-key: \"\\x01" + std::string(100, 'z') + "\"")
                .text();
        auto r = load_string(text, "t.yaml");
        REQUIRE_FALSE(r.has_value());
        const std::string& m = r.errors().at(0).message;
        CHECK(m.find("\\x01") != std::string::npos);
        CHECK(m.size() < 120);
    }
}

TEST_CASE("routing.fpm: defaults, values, restart on change, errors where they are", "[config]") {
    auto none = load_string(base().text(), "t.yaml");
    INFO(none.error_text());
    REQUIRE(none.has_value());
    CHECK_FALSE(none->routing.fpm);  // no FPM server unless asked

    doc d =
        base().replace("socket: /run/test.sock", "  socket: /run/test.sock\nrouting:\n  fpm: {}");
    auto r = load_string(d.text(), "t.yaml");
    INFO(r.error_text());
    REQUIRE(r.has_value());
    REQUIRE(r->routing.fpm);
    CHECK(r->routing.fpm->address == ip("127.0.0.1"));
    CHECK(r->routing.fpm->port == 2620);
    CHECK(r->routing.fpm->settle_seconds == 3);
    CHECK(r->routing.fpm->hold_seconds == 90);
    CHECK(r->routing.fpm->max_routes == 2'000'000);
    CHECK(r.warnings().empty());

    doc set = base().replace("socket: /run/test.sock",
                             "  socket: /run/test.sock\nrouting:\n  fpm:\n    port: 2700\n"
                             "    settle-seconds: 5\n    hold-seconds: 0\n    max-routes: 1000");
    auto s = load_string(set.text(), "t.yaml");
    INFO(s.error_text());
    REQUIRE(s.has_value());
    REQUIRE(s->routing.fpm);
    CHECK(s->routing.fpm->port == 2700);
    CHECK(s->routing.fpm->settle_seconds == 5);
    CHECK(s->routing.fpm->hold_seconds == 0);
    CHECK(s->routing.fpm->max_routes == 1000);

    // The server starts with the hub: adding, moving or removing it needs a restart.
    auto added = dmvpn::config::diff(*none, *r);
    CHECK(added.fpm_changed);
    CHECK(added.needs_restart());
    CHECK_FALSE(added.empty());
    dmvpn::config::topology moved = *r;
    moved.routing.fpm->port = 2621;
    CHECK(dmvpn::config::diff(*r, moved).needs_restart());
    CHECK_FALSE(dmvpn::config::diff(*r, *r).needs_restart());

    // Anything but loopback is reachable by whoever can connect: loads, with a warning.
    doc open = base().replace("socket: /run/test.sock",
                              "  socket: /run/test.sock\nrouting:\n  fpm: {address: 0.0.0.0}");
    auto o = load_string(open.text(), "t.yaml");
    INFO(o.error_text());
    REQUIRE(o.has_value());
    REQUIRE(o.warnings().size() == 1);
    CHECK(o.warnings()[0].key == "routing.fpm.address");

    struct row {
        const char* yaml;
        const char* key;
        const char* message;
    };
    const row rows[] = {
        {"  fpm: {port: 0}", "routing.fpm.port", "expected an integer 1..65535, got \"0\""},
        {"  fpm: {address: localhost}", "routing.fpm.address",
         "expected an IPv4 address like 192.0.2.1, got \"localhost\""},
        {"  fpm: {settle-seconds: 0}", "routing.fpm.settle-seconds",
         "expected an integer 1..600, got \"0\""},
        {"  fpm: {hold-seconds: 100000}", "routing.fpm.hold-seconds",
         "expected an integer 0..86400, got \"100000\""},
        {"  fpm: {max-routes: 0}", "routing.fpm.max-routes",
         "expected an integer 1..16000000, got \"0\""},
    };
    for (const row& x : rows) {
        doc bad = base().replace("socket: /run/test.sock",
                                 std::string("  socket: /run/test.sock\nrouting:\n") + x.yaml);
        error e = only_error(bad);
        CHECK(e.key == x.key);
        CHECK(e.message == x.message);
        CHECK(e.line == 49);  // base() has 47 lines; `routing:` is the 48th
    }
    doc unknown =
        base().replace("socket: /run/test.sock", "  socket: /run/test.sock\nrouting:\n  fmp: {}");
    error e = only_error(unknown);
    CHECK(e.key == "routing.fmp");
    CHECK(e.line == 49);
    CHECK(e.column == 3);
}

TEST_CASE("service-cpus: CPUs and ranges for the threads that are not lcores", "[config]") {
    doc d = base().replace("worker-lcores: [1]", "  worker-lcores: [1]\n  service-cpus: [2, 4-5]");
    auto r = load_string(d.text(), "t.yaml");
    INFO(r.error_text());
    REQUIRE(r.has_value());
    CHECK(r->hub.service_cpus == std::vector<uint32_t>{2, 4, 5});
    CHECK(r->hub.worker_lcores == std::vector<uint32_t>{1});
}
