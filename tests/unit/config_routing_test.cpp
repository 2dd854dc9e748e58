// `routing.interfaces` of the YAML topology: the exception path's kernel interfaces, their
// defaults, and where each mistake is reported (file:line:column).
#include <catch2/catch.hpp>
#include <string>

#include "config/load.hpp"
#include "tests/unit/config_test_doc.hpp"

using dmvpn::config::error;
using dmvpn::config::load_string;
using dmvpn::config::test::base;
using dmvpn::config::test::doc;
using dmvpn::config::test::only_error;

namespace {

doc with_routing(std::string_view lines) {
    return base().insert_after("socket: /run/test.sock",
                               std::string("routing:\n") + std::string(lines));
}

}  // namespace

TEST_CASE("routing.interfaces: a kernel interface per tunnel, with defaults", "[config]") {
    doc d = with_routing(
        "  interfaces:\n"
        "    - tunnel: tun0\n"
        "      name: dmvpn-tun0\n");
    auto r = load_string(d.text(), "t.yaml");
    INFO(r.error_text());
    REQUIRE(r.has_value());
    REQUIRE(r->routing.interfaces.size() == 1);
    const auto& k = r->routing.interfaces[0];
    CHECK(k.tunnel == "tun0");
    CHECK(k.name == "dmvpn-tun0");
    CHECK(k.create);
    CHECK(k.rate == 10000);
    CHECK_FALSE(k.unnumbered);

    auto off = load_string(with_routing("  interfaces:\n"
                                        "    - tunnel: tun0\n"
                                        "      name: k0\n"
                                        "      create: false\n"
                                        "      rate: 0\n"
                                        "      unnumbered: true\n")
                               .text(),
                           "t.yaml");
    INFO(off.error_text());
    REQUIRE(off.has_value());
    CHECK_FALSE(off->routing.interfaces[0].create);
    CHECK(off->routing.interfaces[0].rate == 0);
    CHECK(off->routing.interfaces[0].unnumbered);

    auto port = load_string(with_routing("  interfaces:\n"
                                         "    - port: lan\n"
                                         "      name: dmvpn-lan\n")
                                .text(),
                            "t.yaml");
    INFO(port.error_text());
    REQUIRE(port.has_value());
    CHECK(port->routing.interfaces[0].port == "lan");
    CHECK(port->routing.interfaces[0].tunnel.empty());

    auto none = load_string(base().text(), "t.yaml");
    REQUIRE(none.has_value());
    CHECK(none->routing.interfaces.empty());
}

TEST_CASE("routing.redistribute-nhrp: off by default, protocol 247", "[config]") {
    auto off = load_string(
        with_routing("  interfaces:\n    - tunnel: tun0\n      name: k0\n").text(), "t.yaml");
    REQUIRE(off.has_value());
    CHECK(!off->routing.redistribute_nhrp);
    CHECK(off->routing.redistribute_protocol == 247);
    auto on = load_string(with_routing("  interfaces:\n    - tunnel: tun0\n      name: k0\n"
                                       "  redistribute-nhrp: true\n"
                                       "  redistribute-protocol: 250\n")
                              .text(),
                          "t.yaml");
    INFO(on.error_text());
    REQUIRE(on.has_value());
    CHECK(on->routing.redistribute_nhrp);
    CHECK(on->routing.redistribute_protocol == 250);
}

TEST_CASE("routing.interfaces: mistakes are named where they are", "[config]") {
    struct row {
        std::string lines;
        const char* at;  // the line the error is on
        const char* key;
        const char* message;
    };
    const row rows[] = {
        {"  interfaces:\n    - tunnel: tun9\n      name: k0\n", "tunnel: tun9",
         "routing.interfaces[0].tunnel", "no tunnel is named \"tun9\""},
        {"  interfaces:\n    - tunnel: tun0\n      name: a-very-long-name0\n", "a-very-long-name0",
         "routing.interfaces[0].name",
         "a kernel interface name has at most 15 characters, got \"a-very-long-name0\""},
        {"  interfaces:\n    - tunnel: tun0\n", "- tunnel: tun0", "routing.interfaces[0].name",
         "missing required key"},
        {"  interfaces:\n    - tunnel: tun0\n      name: k0\n      rate: 2000000\n",
         "rate: 2000000", "routing.interfaces[0].rate",
         "expected an integer 0..1000000, got \"2000000\""},
        {"  interfaces:\n    - tunnel: tun0\n      name: k0\n    - name: k1\n      tunnel:  tun0\n",
         "tunnel:  tun0", "routing.interfaces[1].tunnel",
         "tunnel \"tun0\" already has a kernel interface (routing.interfaces[0])"},
        {"  interfaces:\n    - tunnel: tun0\n      name: k0\n  redistribute-protocol: 191\n",
         "redistribute-protocol: 191", "routing.redistribute-protocol",
         "191 is one of FRR's own route protocols (186..198: zebra would take the routes for its "
         "own and not redistribute them); the default is 247"},
        {"  redistribute-nhrp: true\n", "redistribute-nhrp: true", "routing.redistribute-nhrp",
         "needs a tunnel's kernel interface in routing.interfaces: the registered spokes' routes "
         "go out of it"},
        {"  interfaces:\n    - port: lan9\n      name: k0\n", "port: lan9",
         "routing.interfaces[0].port", "no port is named \"lan9\""},
        {"  interfaces:\n    - tunnel: tun0\n      port: lan\n      name: k0\n", "port: lan",
         "routing.interfaces[0].port", "an interface is for a tunnel or for a port, not both"},
        {"  interfaces:\n    - port: lan\n      name: k0\n    - name: k1\n      port:  lan\n",
         "port:  lan", "routing.interfaces[1].port",
         "port \"lan\" already has a kernel interface (routing.interfaces[0])"},
        {"  interfaces:\n    - tunnel: tun0\n      name: k0\n      unnumbered: 32\n",
         "unnumbered: 32", "routing.interfaces[0].unnumbered",
         "expected true or false, got \"32\""},
        {"  interfaces:\n    - name: k0\n", "- name: k0", "routing.interfaces[0].tunnel",
         "missing required key (or \"port\")"},
        {"  interface: []\n", "interface:", "routing.interface", ""},
    };
    for (const row& x : rows) {
        doc d = with_routing(x.lines);
        INFO(d.text());
        error e = only_error(d);
        CHECK(e.key == x.key);
        if (std::string(x.message).empty()) {
            CHECK(e.message.find("interfaces") != std::string::npos);  // the suggestion
        } else {
            CHECK(e.message == x.message);
        }
        CHECK(e.file == "t.yaml");
        CHECK(e.line == d.line_of(x.at));
        CHECK(e.column > 0);
    }
}
