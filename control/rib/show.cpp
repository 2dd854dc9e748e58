// show ip route rendering.
#include "control/rib/show.hpp"

#include <fmt/core.h>

#include "control/json.hpp"
#include "dataplane/wire/ipv4.hpp"

namespace dmvpn::rib {

namespace {

// IOS's legend layout ("Codes: ..." and its continuation lines), with the codes this hub uses.
constexpr std::string_view legend =
    "Codes: L - local, C - connected, S - static, R - RIP, B - BGP\n"
    "       D - EIGRP, O - OSPF, i - IS-IS, H - NHRP\n"
    "       K - kernel route from FRR, F - other FRR route\n";

std::string ip(uint32_t a) { return wire::format_ipv4(a); }

std::string prefix_str(const prefix_key& k) { return fmt::format("{}/{}", ip(k.first), k.second); }

// What follows the interface in the text line: where the next hop leads.
std::string resolution_text(const route_row& r) {
    std::string where;
    if (r.nbma) {
        where = "NBMA " + ip(*r.nbma);
    } else if (!r.mac.empty()) {
        where = "MAC " + r.mac;
    }
    if (r.state == "complete") {
        return where;
    }
    if (r.state == "unbound") {
        return "not registered (glean)";
    }
    if (r.state == "incomplete" || r.state == "no_adjacency") {
        return where.empty() ? r.state : where + " " + r.state;
    }
    return "";
}

// Why a refused route is not installed, in words.
std::string_view reason_text(std::string_view reason) {
    if (reason == "underlay_transit") {
        return "underlay port without allow-transit";
    }
    if (reason == "rib_full") {
        return "the RIB is full";
    }
    return "next hop on no hub interface";
}

}  // namespace

std::string_view code_of(const route_row& r) noexcept {
    if (r.local) {
        return "L";
    }
    switch (r.src) {
        case source::glean:
        case source::connected:
            return "C";
        case source::static_route:
            return "S";
        case source::nhrp:
            return "H";
        case source::fpm:
            break;
    }
    switch (r.proto) {
        case protocol::ebgp:
        case protocol::ibgp:
            return "B";
        case protocol::ospf:
            return "O";
        case protocol::eigrp:
            return "D";
        case protocol::isis:
            return "i";
        case protocol::rip:
            return "R";
        case protocol::static_route:
            return "S";
        case protocol::kernel:
            return "K";
        case protocol::none:
        case protocol::other:
            break;
    }
    return "F";
}

std::string show_ip_route(const std::vector<route_row>& rows, bool json,
                          const std::vector<refused_row>& refused) {
    auto refused_code = [](const refused_row& r) {
        route_row as;
        as.src = source::fpm;
        as.proto = r.proto;
        return code_of(as);
    };
    if (json) {
        std::string arr;
        for (const route_row& r : rows) {
            std::string o = fmt::format(
                "{{\"prefix\":{},\"code\":{},\"source\":{},\"protocol\":{},\"distance\":{},"
                "\"metric\":{},\"next_hop\":{},\"interface\":{},\"state\":{},\"nbma\":{},"
                "\"mac\":{},\"candidates\":{}}}",
                json_quote(prefix_str(r.prefix)), json_quote(code_of(r)), json_quote(name(r.src)),
                json_quote(name(r.proto)), r.distance, r.metric,
                r.via ? json_quote(ip(*r.via)) : "null", json_quote(r.interface),
                json_quote(r.state), r.nbma ? json_quote(ip(*r.nbma)) : "null",
                r.mac.empty() ? "null" : json_quote(r.mac), r.candidates);
            arr += (arr.empty() ? "" : ",") + o;
        }
        std::string no;
        for (const refused_row& r : refused) {
            no += fmt::format(
                "{}{{\"prefix\":{},\"code\":{},\"source\":\"fpm\",\"protocol\":{},"
                "\"next_hop\":{},\"interface\":{},\"reason\":{}}}",
                no.empty() ? "" : ",", json_quote(prefix_str(r.prefix)),
                json_quote(refused_code(r)), json_quote(name(r.proto)),
                r.via ? json_quote(ip(*r.via)) : "null",
                r.interface.empty() ? "null" : json_quote(r.interface), json_quote(r.reason));
        }
        return "{\"routes\":[" + arr + "],\"refused\":[" + no + "]}\n";
    }
    std::string text(legend);
    std::string gateway = "Gateway of last resort is not set\n";
    for (const route_row& r : rows) {
        if (r.prefix == prefix_key{0, 0} && r.via) {
            gateway = fmt::format("Gateway of last resort is {} to network 0.0.0.0\n", ip(*r.via));
        }
    }
    text += "\n" + gateway + "\n";
    for (const route_row& r : rows) {
        std::string line = fmt::format("{:<9}{}", code_of(r), prefix_str(r.prefix));
        if (r.via) {
            line += fmt::format(" [{}/{}] via {}", r.distance, r.metric, ip(*r.via));
            if (!r.interface.empty()) {
                line += ", " + r.interface;
            }
        } else if (r.state == "blackhole") {
            // A summary (bgpd's aggregate-address) or a static to Null0: IOS says so.
            line += " is directly connected, Null0";
        } else {
            line += " is directly connected";
            if (!r.interface.empty()) {
                line += ", " + r.interface;
            }
        }
        std::string res = resolution_text(r);
        if (!res.empty()) {
            line += ", " + res;
        }
        text += line + "\n";
    }
    if (!refused.empty()) {
        text += "\nFRR routes not installed\n\n";
        for (const refused_row& r : refused) {
            std::string line = fmt::format("{:<9}{}", refused_code(r), prefix_str(r.prefix));
            if (r.via) {
                line += " via " + ip(*r.via);
            }
            if (!r.interface.empty()) {
                line += ", " + r.interface;
            }
            text += fmt::format("{}, refused: {}\n", line, reason_text(r.reason));
        }
    }
    return text;
}

}  // namespace dmvpn::rib
