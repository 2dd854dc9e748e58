// IOS's `debug nhrp packet` layout: a header line, the fixed part (F), the mandatory part (M), one
// block per CIE (C-n), then each extension by name.
#include "control/nhrp/debug.hpp"

#include <fmt/core.h>

#include "control/nhrp/packet.hpp"
#include "dataplane/wire/ipv4.hpp"
#include "dataplane/wire/reader.hpp"

namespace dmvpn::nhrp {

namespace {

std::string_view ios_name(op t) {
    switch (t) {
        case op::resolution_request:
            return "Resolution Request";
        case op::resolution_reply:
            return "Resolution Reply";
        case op::registration_request:
            return "Registration Request";
        case op::registration_reply:
            return "Registration Reply";
        case op::purge_request:
            return "Purge Request";
        case op::purge_reply:
            return "Purge Reply";
        case op::error_indication:
            return "Error Indication";
        case op::traffic_indication:
            return "Traffic Indication";
    }
    return "Unknown";
}

std::string_view cie_code_name(uint8_t c) {
    switch (c) {
        case cie_code::success:
            return "no error";
        case cie_code::administratively_prohibited:
            return "administratively prohibited";
        case cie_code::insufficient_resources:
            return "insufficient resources";
        case cie_code::no_binding:
            return "no binding";
        case cie_code::binding_not_unique:
            return "binding not unique";
        case cie_code::unique_address_already_registered:
            return "unique address already registered";
        default:
            return "unknown";
    }
}

std::string_view error_name(uint16_t c) {
    switch (c) {
        case error_code::unrecognized_extension:
            return "unrecognized extension";
        case error_code::loop_detected:
            return "loop detected";
        case error_code::protocol_address_unreachable:
            return "protocol address unreachable";
        case error_code::protocol_error:
            return "protocol error";
        case error_code::sdu_size_exceeded:
            return "SDU size exceeded";
        case error_code::invalid_extension:
            return "invalid extension";
        case error_code::invalid_resolution_reply:
            return "invalid resolution reply";
        case error_code::authentication_failure:
            return "authentication failure";
        case error_code::hop_count_exceeded:
            return "hop count exceeded";
        default:
            return "unknown";
    }
}

std::string_view extension_name(uint16_t type) {
    switch (type) {
        case ext::end:
            return "End";
        case ext::responder_address:
            return "Responder Address";
        case ext::forward_transit:
            return "Forward Transit NHS";
        case ext::reverse_transit:
            return "Reverse Transit NHS";
        case ext::authentication:
            return "Authentication";
        case ext::vendor_private:
            return "Vendor Private";
        case ext::cisco_nat_address:
            return "NAT address";
        default:
            return "Unknown";
    }
}

// The flag words as IOS spells them; each type has its own.
std::string flags_of(const packet& p) {
    struct bit {
        uint16_t mask;
        const char* name;
    };
    static constexpr bit resolution[] = {{flag::res_q, "router"},     {flag::res_a, "auth"},
                                         {flag::res_d, "dst-stable"}, {flag::res_u, "unique"},
                                         {flag::res_s, "src-stable"}, {flag::cisco_nat, "nat"}};
    static constexpr bit registration[] = {{flag::reg_u, "unique"}, {flag::cisco_nat, "nat"}};
    static constexpr bit purge[] = {{flag::purge_n, "no-reply"}, {flag::cisco_nat, "nat"}};
    std::span<const bit> bits;
    switch (p.hdr.type) {
        case op::resolution_request:
        case op::resolution_reply:
            bits = resolution;
            break;
        case op::registration_request:
        case op::registration_reply:
            bits = registration;
            break;
        case op::purge_request:
        case op::purge_reply:
            bits = purge;
            break;
        default:
            break;
    }
    std::string out;
    for (const bit& b : bits) {
        if ((p.flags & b.mask) != 0) {
            out += b.name;
            out += ' ';
        }
    }
    return out;
}

std::string addr(const bytes& b) {
    if (b.size() == 4) {
        return wire::format_ipv4(wire::load_be32(b.data()));
    }
    std::string hex;
    for (uint8_t x : b) {
        hex += fmt::format("{:02x}", x);
    }
    return hex.empty() ? "-" : hex;
}

void put_cie(std::string& out, const cie& c, size_t n, std::string_view indent) {
    std::string head = fmt::format("(C-{}) ", n);
    std::string pad(indent.size() + head.size(), ' ');
    out += fmt::format("\n{}{}code: {}({})", indent, head, cie_code_name(c.code), c.code);
    out += fmt::format("\n{}prefix: {}, mtu: {}, hd_time: {}", pad, c.prefix_length, c.mtu,
                       c.holding_time);
    out += fmt::format("\n{}addr_len: {}(NSAP), subaddr_len: {}(NSAP), proto_len: {}, pref: {}",
                       pad, c.client_nbma.size(), c.client_nbma_sub.size(), c.client_proto.size(),
                       c.preference);
    if (!c.client_nbma.empty()) {
        out += fmt::format("\n{}client NBMA: {}", pad, addr(c.client_nbma));
    }
    if (!c.client_proto.empty()) {
        out += fmt::format("\n{}client protocol: {}", pad, addr(c.client_proto));
    }
}

}  // namespace

std::string debug_packet(debug_direction dir, std::string_view tunnel, uint32_t src, uint32_t dst,
                         std::span<const uint8_t> nhrp) {
    const char* verb = dir == debug_direction::receive ? "Receive" : "Send";
    auto parsed = parse(nhrp);
    if (!parsed) {
        return fmt::format(
            "NHRP: {} malformed packet via {} vrf 0, packet size: {} ({})\n src: "
            "{}, dst: {}",
            verb, tunnel, nhrp.size(), name(parsed.error()), wire::format_ipv4(src),
            wire::format_ipv4(dst));
    }
    const packet& p = *parsed;
    std::string out = fmt::format("NHRP: {} {} via {} vrf 0, packet size: {}", verb,
                                  ios_name(p.hdr.type), tunnel, p.hdr.packet_size);
    out += fmt::format("\n src: {}, dst: {}", wire::format_ipv4(src), wire::format_ipv4(dst));
    out += fmt::format("\n (F) afn: AF_IP({}), type: IP({:x}), hop: {}, ver: {}", p.hdr.afn,
                       p.hdr.pro_type, p.hdr.hop_count, p.hdr.version);
    out += fmt::format("\n     shtl: {}(NSAP), sstl: {}(NSAP)", p.src_nbma.size(),
                       p.src_nbma_sub.size());
    out += fmt::format("\n     pktsz: {} extoff: {}", p.hdr.packet_size, p.hdr.ext_offset);
    switch (p.hdr.type) {
        case op::error_indication:
            out += fmt::format("\n (M) error code: {}({}), offset: {}", error_name(p.error_code),
                               p.error_code, p.error_offset);
            break;
        case op::traffic_indication:
            out += fmt::format("\n (M) traffic code: {}({})",
                               p.traffic_code == 0 ? "redirect" : "unknown", p.traffic_code);
            break;
        default:
            out += fmt::format("\n (M) flags: \"{}\", reqid: {}", flags_of(p), p.request_id);
            break;
    }
    out += fmt::format("\n     src NBMA: {}", addr(p.src_nbma));
    out += fmt::format("\n     src protocol: {}, dst protocol: {}", addr(p.src_proto),
                       addr(p.dst_proto));
    if (p.hdr.type == op::traffic_indication && p.contents.size() >= 20) {
        out += fmt::format("\n     packet: src {}, dst {}",
                           wire::format_ipv4(wire::load_be32(p.contents.data() + 12)),
                           wire::format_ipv4(wire::load_be32(p.contents.data() + 16)));
    }
    for (size_t i = 0; i < p.cies.size(); ++i) {
        put_cie(out, p.cies[i], i + 1, " ");
    }
    for (const extension& e : p.extensions) {
        if (e.type == ext::end) {
            continue;
        }
        out += fmt::format("\n  {} Extension({}):", extension_name(e.type), e.type);
        if (e.type == ext::authentication) {
            // The key stays out of the log: its length is enough to compare with the config.
            out +=
                fmt::format("\n    type:Cleartext({}), data: {} bytes", e.auth_spi, e.data.size());
        }
        for (size_t i = 0; i < e.cies.size(); ++i) {
            put_cie(out, e.cies[i], i + 1, "    ");
        }
    }
    return out;
}

}  // namespace dmvpn::nhrp
