#include "tools/decode_json.hpp"

#include <array>
#include <chrono>
#include <cstdio>
#include <optional>

#include "control/ike/crypto.hpp"
#include "control/ike/message.hpp"
#include "control/nhrp/packet.hpp"
#include "crypto/esp_wire.hpp"
#include "dataplane/wire/gre.hpp"
#include "dataplane/wire/ipv4.hpp"
#include "dataplane/wire/reader.hpp"
#include "tools/decode_isakmp.hpp"

namespace dmvpn::decode {

namespace {

namespace pcap = wire::pcap;

constexpr uint16_t ethertype_ipv4 = 0x0800;
constexpr uint8_t ip_proto_nhrp = 54;      // NHRP straight over IPv4 (IANA protocol 54, "NARP")
constexpr uint16_t udp_port_natt = 4500;   // RFC 3948
constexpr uint16_t udp_port_ike = 500;     // RFC 7296 section 2
constexpr size_t ike_version_offset = 17;  // the version octet of the IKE header
constexpr uint8_t ike_tv_format = 0x80;    // transform attribute: TV (1) or TLV (0)
constexpr size_t udp_header_size = 8;
constexpr size_t non_esp_marker_size = 4;
constexpr uint8_t natt_keepalive = 0xff;
constexpr uint8_t tl_type_bit = 0x40;  // NHRP address type/length: NSAP (0) or E.164 (1)
constexpr uint8_t tl_length_mask = 0x3f;
constexpr uint16_t nhrp_pro_snap = 0x0080;  // NLPID SNAP: the protocol is OUI + PID
constexpr size_t device_capabilities_size = 8;
constexpr uint32_t devcap_vpn_aware = 0x1;  // RFC 2735 section 3: the V bit
constexpr uint8_t vlan_pcp_shift = 13;
constexpr uint16_t vlan_dei_bit = 0x1000;
constexpr uint16_t vlan_id_mask = 0x0fff;
constexpr uint16_t ip_flag_rb = 0x4;  // tshark's ip.flags: the 3 flag bits as a number
constexpr uint16_t ip_flag_df = 0x2;
constexpr uint16_t ip_flag_mf = 0x1;

}  // namespace

std::string hex_bytes(std::span<const uint8_t> b) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(b.size() * 3);
    for (size_t i = 0; i < b.size(); ++i) {
        if (i != 0) {
            s.push_back(':');
        }
        s.push_back(digits[b[i] >> 4]);
        s.push_back(digits[b[i] & 0xf]);
    }
    return s;
}

std::string dotted(std::span<const uint8_t> b) {
    return std::to_string(b[0]) + "." + std::to_string(b[1]) + "." + std::to_string(b[2]) + "." +
           std::to_string(b[3]);
}

namespace {

std::string time_epoch(pcap::timestamp ts) {
    std::array<char, 16> frac{};
    std::snprintf(frac.data(), frac.size(), "%09u", ts.nsec);
    return std::to_string(ts.sec) + "." + frac.data();
}

void escape_into(std::string& out, const std::string& s) {
    out.push_back('"');
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(c);
        } else if (u < 0x20) {
            std::array<char, 8> esc{};
            std::snprintf(esc.data(), esc.size(), "\\u%04x", u);
            out += esc.data();
        } else {
            out.push_back(c);
        }
    }
    out.push_back('"');
}

void scalar_into(std::string& out, const json_scalar& v) {
    if (const auto* n = std::get_if<uint64_t>(&v)) {
        out += std::to_string(*n);
    } else if (const auto* b = std::get_if<bool>(&v)) {
        out += *b ? "true" : "false";
    } else {
        escape_into(out, std::get<std::string>(v));
    }
}

// Builds one packet's object layer by layer; each layer returns what the next one reads, or
// nothing once it has recorded an error or there is nothing more to decode.
class packet_decoder {
public:
    packet_decoder(const pcap::record& rec, const keys* k, ike_fragments* frags)
        : _rec(rec), _keys(k), _frags(frags) {}

    decoded run() {
        frame();
        if (auto l3 = link()) {
            if (auto ip = ipv4(*l3)) {
                transport(*ip);
            }
        }
        return decoded{_o.str(), _nhrp, _failed};
    }

private:
    void error(std::string_view reason) {
        _o.set("error", std::string(reason));
        _failed = true;
    }

    void frame() {
        _o.set("frame.number", uint64_t{_rec.number});
        _o.set("frame.time_epoch", time_epoch(_rec.ts));
        _o.set("frame.len", uint64_t{_rec.original_length});
        _o.set("frame.cap_len", uint64_t{_rec.data.size()});
    }

    // The IPv4 packet, if the frame carries one.
    std::optional<std::span<const uint8_t>> link() {
        auto f = pcap::strip_link_layer(_rec.link_type, _rec.data);
        if (!f) {
            error(pcap::name(f.error()));
            return std::nullopt;
        }
        if (_rec.link_type == pcap::linktype::ethernet) {
            _o.set("eth.dst", hex_bytes(_rec.data.first(6)));
            _o.set("eth.src", hex_bytes(_rec.data.subspan(6, 6)));
            _o.set(f->ieee8023_length && f->vlan_count == 0 ? "eth.len" : "eth.type",
                   uint64_t{f->outer_type});
        } else if (f->sll_pkttype) {
            _o.set("sll.pkttype", uint64_t{*f->sll_pkttype});
            _o.set("sll.hatype", uint64_t{*f->sll_hatype});
            _o.set("sll.etype", uint64_t{f->outer_type});
        }
        for (size_t i = 0; i < f->vlan_count; ++i) {
            const uint16_t tci = f->vlan_tci[i];
            _o.append("vlan.priority", uint64_t{static_cast<uint16_t>(tci >> vlan_pcp_shift)});
            _o.append("vlan.dei", (tci & vlan_dei_bit) != 0);
            _o.append("vlan.id", uint64_t{static_cast<uint16_t>(tci & vlan_id_mask)});
            const bool last_is_length = i + 1 == f->vlan_count && f->ieee8023_length;
            _o.append(last_is_length ? "vlan.len" : "vlan.etype", uint64_t{f->vlan_type[i]});
        }
        if (f->ethertype != ethertype_ipv4) {
            return std::nullopt;  // ARP, IPv6, STP, ...: nothing this tool decodes further
        }
        return f->payload;
    }

    std::optional<wire::ipv4_view> ipv4(std::span<const uint8_t> l3) {
        // Show packets with a bad header checksum too: the decoder reports, it does not filter.
        auto ip = wire::parse_ipv4(l3, wire::checksum_check::skip);
        if (!ip) {
            error(wire::name(ip.error()));
            return std::nullopt;
        }
        const auto& h = ip->hdr;
        _o.set("ip.version", uint64_t{4});
        _o.set("ip.hdr_len", uint64_t{h.header_length()});
        _o.set("ip.dsfield", uint64_t{h.tos});
        _o.set("ip.len", uint64_t{h.total_length});
        _o.set("ip.id", uint64_t{h.id});
        _o.set("ip.flags",
               uint64_t{static_cast<uint16_t>((h.reserved_flag ? ip_flag_rb : 0) |
                                              (h.df ? ip_flag_df : 0) | (h.mf ? ip_flag_mf : 0))});
        _o.set("ip.flags.rb", h.reserved_flag);
        _o.set("ip.flags.df", h.df);
        _o.set("ip.flags.mf", h.mf);
        // tshark 4.0 shows the offset in bytes, not in 8-byte units.
        _o.set("ip.frag_offset", uint64_t{h.fragment_offset} * 8);
        _o.set("ip.ttl", uint64_t{h.ttl});
        _o.set("ip.proto", uint64_t{h.protocol});
        _o.set("ip.checksum", uint64_t{h.checksum});
        _o.set("ip.src", wire::format_ipv4(h.src));
        _o.set("ip.dst", wire::format_ipv4(h.dst));
        if (h.fragment_offset != 0) {
            return std::nullopt;  // a later fragment starts mid-payload: no header to read
        }
        return *ip;
    }

    void transport(const wire::ipv4_view& ip) {
        switch (ip.hdr.protocol) {
            case wire::ip_proto::gre:
                gre(ip.payload);
                break;
            case ip_proto_nhrp:
                nhrp_packet(ip.payload);
                break;
            case wire::ip_proto::esp:
                esp(ip.payload);
                break;
            case wire::ip_proto::udp:
                udp(ip.payload);
                break;
            default:
                break;
        }
    }

    void udp(std::span<const uint8_t> seg) {
        wire::reader r(seg);
        auto src = r.be16();
        auto dst = r.be16();
        auto len = r.be16();
        auto sum = r.be16();
        if (!sum) {
            error(name(decode_error::truncated_udp_header));
            return;
        }
        _o.set("udp.srcport", uint64_t{*src});
        _o.set("udp.dstport", uint64_t{*dst});
        _o.set("udp.length", uint64_t{*len});
        _o.set("udp.checksum", uint64_t{*sum});
        if (*len < udp_header_size || *len > seg.size()) {
            error(name(decode_error::udp_length_mismatch));
            return;
        }
        auto payload = seg.subspan(udp_header_size, *len - udp_header_size);
        if (*src == udp_port_ike || *dst == udp_port_ike) {
            ike_message(payload);
            return;
        }
        if (*src != udp_port_natt && *dst != udp_port_natt) {
            return;
        }
        // RFC 3948 section 2: a lone 0xff is a NAT keepalive, four zero bytes introduce IKE.
        if (payload.size() == 1 && payload[0] == natt_keepalive) {
            return;
        }
        if (payload.size() >= non_esp_marker_size && payload[0] == 0 && payload[1] == 0 &&
            payload[2] == 0 && payload[3] == 0) {
            ike_message(payload.subspan(non_esp_marker_size));
            return;
        }
        esp(payload);
    }

    // ---- IKEv2 (RFC 7296 section 3), under Wireshark's isakmp.* names ----

    // Fields that occur in the header and in every payload, proposal and transform: arrays in
    // the order of tshark's tree, which is wire order except for isakmp.typepayload: tshark
    // lists the types of one level (payloads, a payload's proposals, a proposal's transforms)
    // before the subtrees they head, so the callers append the types of a level first.
    void generic(uint8_t next, bool critical, uint16_t length, bool substructure) {
        _o.append("isakmp.nextpayload", uint64_t{next});
        if (!substructure) {
            _o.append("isakmp.criticalpayload", critical);
        }
        _o.append("isakmp.payloadlength", uint64_t{length});
    }

    void ike_attributes(const ike::transform& t) {
        auto attribute = [this](uint16_t type_field, std::span<const uint8_t> value) {
            const auto type = static_cast<uint16_t>(type_field & 0x7fff);
            _o.append("isakmp.ike2.attr.format", (type_field >> 8 & ike_tv_format) != 0);
            _o.append("isakmp.ike2.attr.type", uint64_t{type});
            _o.append("isakmp.ike2.attr.value", hex_bytes(value));
            if (type == ike::attr_key_length) {
                _o.append("isakmp.ike2.attr.key_length", uint64_t{wire::load_be16(value.data())});
            }
        };
        if (t.key_bits) {
            const std::array<uint8_t, 2> v{static_cast<uint8_t>(*t.key_bits >> 8),
                                           static_cast<uint8_t>(*t.key_bits)};
            attribute(0x8000 | ike::attr_key_length, v);
        }
        // The parser checked these: TV (4 bytes) or TLV (type, length, value).
        wire::reader r(t.unknown_attributes);
        while (!r.empty()) {
            const uint16_t type_field = *r.be16();
            if ((type_field & 0x8000) != 0) {
                attribute(type_field, *r.bytes(2));
            } else {
                attribute(type_field, *r.bytes(*r.be16()));
            }
        }
    }

    void ike_sa(const ike::sa_payload& sa) {
        for (size_t i = 0; i < sa.proposals.size(); ++i) {
            _o.append("isakmp.typepayload", uint64_t{2});
        }
        for (size_t i = 0; i < sa.proposals.size(); ++i) {
            const auto& p = sa.proposals[i];
            size_t plen = 8 + p.spi.size();
            for (const auto& t : p.transforms) {
                plen += 8 + (t.key_bits ? 4 : 0) + t.unknown_attributes.size();
            }
            generic(i + 1 == sa.proposals.size() ? 0 : 2, false, static_cast<uint16_t>(plen), true);
            _o.append("isakmp.prop.number", uint64_t{p.number});
            _o.append("isakmp.prop.protoid", uint64_t{p.protocol});
            _o.append("isakmp.spisize", uint64_t{p.spi.size()});
            _o.append("isakmp.prop.transforms", uint64_t{p.transforms.size()});
            for (size_t j = 0; j < p.transforms.size(); ++j) {
                _o.append("isakmp.typepayload", uint64_t{3});
            }
            for (size_t j = 0; j < p.transforms.size(); ++j) {
                const auto& t = p.transforms[j];
                const size_t tlen = 8 + (t.key_bits ? 4 : 0) + t.unknown_attributes.size();
                generic(j + 1 == p.transforms.size() ? 0 : 3, false, static_cast<uint16_t>(tlen),
                        true);
                _o.append("isakmp.tf.type", uint64_t{static_cast<uint8_t>(t.type)});
                switch (t.type) {
                    case ike::transform_type::encr:
                        _o.append("isakmp.tf.id.encr", uint64_t{t.id});
                        break;
                    case ike::transform_type::prf:
                        _o.append("isakmp.tf.id.prf", uint64_t{t.id});
                        break;
                    case ike::transform_type::integ:
                        _o.append("isakmp.tf.id.integ", uint64_t{t.id});
                        break;
                    case ike::transform_type::dh:
                        _o.append("isakmp.tf.id.dh", uint64_t{t.id});
                        break;
                    default:
                        break;  // ESN and unknown types: no field compared against tshark yet
                }
                ike_attributes(t);
            }
        }
    }

    void ike_body(const ike::payload& p) {
        if (const auto* sa = std::get_if<ike::sa_payload>(&p)) {
            ike_sa(*sa);
        } else if (const auto* ke = std::get_if<ike::ke_payload>(&p)) {
            _o.append("isakmp.key_exchange.dh_group", uint64_t{ke->group});
            _o.append("isakmp.key_exchange.data", hex_bytes(ke->data));
        } else if (const auto* n = std::get_if<ike::nonce_payload>(&p)) {
            _o.append("isakmp.nonce", hex_bytes(n->data));
        } else if (const auto* nt = std::get_if<ike::notify_payload>(&p)) {
            _o.append("isakmp.notify.protoid", uint64_t{nt->protocol});
            _o.append("isakmp.spisize", uint64_t{nt->spi.size()});
            _o.append("isakmp.notify.msgtype", uint64_t{nt->type});
            _o.append("isakmp.notify.data", hex_bytes(nt->data));
        } else if (const auto* idi = std::get_if<ike::id_payload_i>(&p)) {
            _o.append("isakmp.id.type", uint64_t{idi->type});
        } else if (const auto* idr = std::get_if<ike::id_payload_r>(&p)) {
            _o.append("isakmp.id.type", uint64_t{idr->type});
        } else if (const auto* skf = std::get_if<ike::skf_payload>(&p)) {
            _o.set("isakmp.frag.number", uint64_t{skf->number});
            _o.set("isakmp.frag.total", uint64_t{skf->total});
        }
        // SK: opened by ike_chain() when a key file has the SA; SKF: put back together there
        // (ike_fragment()) when the decoder is given somewhere to keep the fragments.
    }

    // An SK payload's inner payloads, with the ikev2_decryption_table row of the message's
    // SPIs (the I flag picks SK_ei/SK_ai or SK_er/SK_ar). No row: left encrypted, as tshark
    // does. A body that does not open (ICV mismatch, bad padding) says why in
    // dmvpn.ike.decrypt_error (no tshark field) and shows nothing inside.
    void ike_decrypt(const ike::sk_payload& sk, std::span<const uint8_t> aad) {
        if (_keys == nullptr) {
            return;
        }
        for (const auto& e : _keys->ikev2) {
            if (e.spi_i != _ike_spi_i || e.spi_r != _ike_spi_r) {
                continue;
            }
            auto plain = ike::crypto::unprotect(_ike_from_initiator ? e.initiator : e.responder,
                                                aad, sk.body);
            if (!plain) {
                _o.set("dmvpn.ike.decrypt_error", plain.error());
                return;
            }
            ike_chain(sk.first_inner, *plain, {});
            return;
        }
    }

    // An SKF fragment (RFC 7383) of the message `msg`, checked and kept with the other
    // fragments of its IKE SA and direction under the table's row, as the engine does
    // (control/ike/fragments.hpp); the fragment that completes the message shows the
    // reassembled inner payloads, as tshark does in that frame. One that does not verify, or
    // that the engine's bounds refuse, says so in dmvpn.ike.decrypt_error and keeps nothing.
    void ike_fragment(std::span<const uint8_t> msg) {
        if (_keys == nullptr || _frags == nullptr) {
            return;
        }
        for (const auto& e : _keys->ikev2) {
            if (e.spi_i != _ike_spi_i || e.spi_r != _ike_spi_r) {
                continue;
            }
            auto m = ike::parse(msg);
            if (!m || !ike::is_fragment(*m)) {
                _o.set("dmvpn.ike.decrypt_error",
                       std::string(m ? "not a fragment" : ike::name(m.error())));
                return;
            }
            const auto now = std::chrono::steady_clock::time_point(
                std::chrono::seconds(_rec.ts.sec) + std::chrono::nanoseconds(_rec.ts.nsec));
            ike::reassembly& r = _frags->of(_ike_spi_i, _ike_spi_r, _ike_from_initiator);
            switch (r.add(_ike_from_initiator ? e.initiator : e.responder, *m, msg,
                          ike::max_reassembled, now)) {
                case ike::reassembly::verdict::forged:
                    _o.set("dmvpn.ike.decrypt_error",
                           std::string("fragment's integrity check failed"));
                    return;
                case ike::reassembly::verdict::refused:
                    _o.set("dmvpn.ike.decrypt_error",
                           std::string("fragment refused: over the reassembly bounds"));
                    return;
                case ike::reassembly::verdict::complete: {
                    const auto whole = r.take();
                    ike_chain(whole.first, whole.chain, {});
                    return;
                }
                case ike::reassembly::verdict::stored:
                case ike::reassembly::verdict::duplicate:
                    return;
            }
            return;
        }
    }

    // One level of payloads (the message's, or an SK payload's inner ones): their types first,
    // as tshark's tree lists them, then each payload's generic header and body. `msg` is the
    // whole message when `chain` is its outer chain (an SK payload's AAD is everything of it
    // before the SK body), empty for an inner chain.
    void ike_chain(ike::payload_type first, std::span<const uint8_t> chain,
                   std::span<const uint8_t> msg) {
        auto p = ike::parse_payload_prefix(first, chain);
        if (!p) {
            error(ike::name(p.error()));
            return;
        }
        for (const auto& payload : p->payloads) {
            _o.append("isakmp.typepayload", uint64_t{static_cast<uint8_t>(ike::type_of(payload))});
        }
        // parse_payload_prefix() checked every generic header it passed: read them again for
        // the fields the model does not keep (critical bit, length).
        wire::reader r(chain);
        size_t at = 0;
        for (const auto& payload : p->payloads) {
            const uint8_t next = *r.u8();
            const uint8_t flags = *r.u8();
            const uint16_t length = *r.be16();
            r.skip(length - ike::generic_payload_header_size);
            generic(next, (flags & 0x80) != 0, length, false);
            ike_body(payload);
            const auto* sk = std::get_if<ike::sk_payload>(&payload);
            if (sk != nullptr && !msg.empty()) {
                const size_t body_at = static_cast<size_t>(chain.data() - msg.data()) + at +
                                       ike::generic_payload_header_size;
                ike_decrypt(*sk, msg.first(body_at));
            }
            if (std::holds_alternative<ike::skf_payload>(payload) && !msg.empty()) {
                ike_fragment(msg);
            }
            at += length;
        }
        if (p->consumed != chain.size() && !msg.empty()) {
            _o.set("isakmp.extradata", hex_bytes(chain.subspan(p->consumed)));
        }
    }

    void ike_message(std::span<const uint8_t> msg) {
        // ISAKMP / IKEv1 (major version 1): tools/decode_isakmp.cpp.
        if (msg.size() > ike_version_offset && (msg[ike_version_offset] >> 4) == 1) {
            if (auto refused = isakmp_fields(msg, _o)) {
                error(*refused);
            }
            return;
        }
        auto h = ike::parse_header(msg);
        if (!h) {
            error(ike::name(h.error()));
            return;
        }
        _o.set("isakmp.ispi", hex_bytes(msg.first(8)));
        _o.set("isakmp.rspi", hex_bytes(msg.subspan(8, 8)));
        _o.append("isakmp.nextpayload", uint64_t{static_cast<uint8_t>(h->next)});
        _o.set("isakmp.version", uint64_t{msg[ike_version_offset]});
        _o.set("isakmp.mjver", uint64_t{h->major});
        _o.set("isakmp.mnver", uint64_t{h->minor});
        _o.set("isakmp.exchangetype", uint64_t{static_cast<uint8_t>(h->exch)});
        _o.set("isakmp.flags", uint64_t{h->flags});
        _o.set("isakmp.flag_i", h->from_initiator());
        _o.set("isakmp.flag_v", (h->flags & ike::header_flag::version) != 0);
        _o.set("isakmp.flag_r", h->is_response());
        _o.set("isakmp.messageid", uint64_t{h->message_id});
        _o.set("isakmp.length", uint64_t{h->length});
        _ike_spi_i = h->spi_i;
        _ike_spi_r = h->spi_r;
        _ike_from_initiator = h->from_initiator();
        ike_chain(h->next, msg.subspan(ike::header_size), msg);
    }

    void esp(std::span<const uint8_t> payload) {
        auto e = crypto::esp::parse(payload);
        if (!e) {
            error(crypto::esp::name(e.error()));
            return;
        }
        _o.set("esp.spi", uint64_t{e->hdr.spi});
        _o.set("esp.sequence", uint64_t{e->hdr.sequence});
    }

    void gre(std::span<const uint8_t> payload) {
        auto g = wire::parse_gre(payload, wire::checksum_check::skip);
        if (!g) {
            error(wire::name(g.error()));
            return;
        }
        const auto& h = g->hdr;
        const auto flags = static_cast<uint16_t>(
            (h.checksum_present ? 0x8000 : 0) | (h.key_present ? 0x2000 : 0) |
            (h.sequence_present ? 0x1000 : 0) | ((h.reserved0 & 0x7f) << 3) | (h.version & 0x7));
        _o.set("gre.flags_and_version", uint64_t{flags});
        _o.set("gre.flags.checksum", h.checksum_present);
        _o.set("gre.flags.routing", false);
        _o.set("gre.flags.key", h.key_present);
        _o.set("gre.flags.sequence_number", h.sequence_present);
        _o.set("gre.flags.strict_source_route", false);
        _o.set("gre.flags.version", uint64_t{h.version});
        _o.set("gre.proto", uint64_t{h.protocol});
        if (h.checksum_present) {
            _o.set("gre.checksum", uint64_t{h.checksum});
            _o.set("gre.offset", uint64_t{h.reserved1});
        }
        if (h.key_present) {
            _o.set("gre.key", uint64_t{h.key});
        }
        if (h.sequence_present) {
            _o.set("gre.sequence_number", uint64_t{h.sequence});
        }
        if (h.protocol == wire::gre_proto::nhrp) {
            nhrp_packet(g->payload);
        }
    }

    // ---- NHRP ----

    void address(std::string_view ipv4_key, std::string_view bytes_key, std::span<const uint8_t> a,
                 bool as_ipv4, bool repeated) {
        if (a.empty()) {
            return;
        }
        json_scalar v =
            as_ipv4 && a.size() == 4 ? json_scalar{dotted(a)} : json_scalar{hex_bytes(a)};
        const auto key = as_ipv4 && a.size() == 4 ? ipv4_key : bytes_key;
        if (repeated) {
            _o.append(key, std::move(v));
        } else {
            _o.set(key, std::move(v));
        }
    }

    void type_length(std::string_view key, uint8_t non_length_bits, size_t len, bool repeated) {
        const auto tl =
            static_cast<uint8_t>((non_length_bits & ~tl_length_mask) | (len & tl_length_mask));
        const std::string k(key);
        auto put = [&](const std::string& field, uint64_t v) {
            if (repeated) {
                _o.append(field, v);
            } else {
                _o.set(field, v);
            }
        };
        put(k, tl);
        put(k + ".type", (tl & tl_type_bit) >> 6);
        put(k + ".len", tl & tl_length_mask);
    }

    void cie(const nhrp::cie& c, bool nbma_is_ipv4) {
        _o.append("nhrp.code", uint64_t{c.code});
        _o.append("nhrp.prefix", uint64_t{c.prefix_length});
        _o.append("nhrp.unused", uint64_t{c.unused});
        _o.append("nhrp.mtu", uint64_t{c.mtu});
        _o.append("nhrp.htime", uint64_t{c.holding_time});
        type_length("nhrp.cli.addr_tl", c.client_nbma_type, c.client_nbma.size(), true);
        type_length("nhrp.cli.saddr_tl", c.client_nbma_sub_type, c.client_nbma_sub.size(), true);
        _o.append("nhrp.prot.len", uint64_t{c.client_proto.size()});
        _o.append("nhrp.pref", uint64_t{c.preference});
        address("nhrp.client.nbma.addr", "nhrp.client.nbma.addr_bytes", c.client_nbma, nbma_is_ipv4,
                true);
        if (!c.client_nbma_sub.empty()) {
            _o.append("nhrp.client.nbma.saddr", hex_bytes(c.client_nbma_sub));
        }
        address("nhrp.client.prot.addr", "nhrp.client.prot.addr_bytes", c.client_proto, true, true);
    }

    void flags(const nhrp::packet& p) {
        using nhrp::op;
        namespace f = nhrp::flag;
        _o.set("nhrp.flags", uint64_t{p.flags});
        switch (p.hdr.type) {
            case op::resolution_request:
            case op::resolution_reply:
                _o.set("nhrp.flag.q", (p.flags & f::res_q) != 0);
                _o.set("nhrp.flag.a", (p.flags & f::res_a) != 0);
                _o.set("nhrp.flag.d", (p.flags & f::res_d) != 0);
                _o.set("nhrp.flag.u", (p.flags & f::res_u) != 0);
                _o.set("nhrp.flag.s", (p.flags & f::res_s) != 0);
                break;
            case op::registration_request:
            case op::registration_reply:
                _o.set("nhrp.flag.u", (p.flags & f::reg_u) != 0);
                break;
            case op::purge_request:
            case op::purge_reply:
                _o.set("nhrp.flag.n", (p.flags & f::purge_n) != 0);
                break;
            default:
                break;
        }
        _o.set("nhrp.flag.nat", (p.flags & f::cisco_nat) != 0);
    }

    void extension(const nhrp::extension& e, bool nbma_is_ipv4) {
        _o.append("nhrp.ext.c", e.compulsory);
        _o.append("nhrp.ext.type", uint64_t{e.type});
        switch (e.type) {
            case nhrp::ext::responder_address:
            case nhrp::ext::forward_transit:
            case nhrp::ext::reverse_transit:
            case nhrp::ext::cisco_nat_address: {
                if (e.type == nhrp::ext::cisco_nat_address &&
                    e.raw.size() == device_capabilities_size) {
                    // RFC 2735 Device Capabilities, which shares type 9 with Cisco's NAT extension.
                    _o.append("nhrp.ext.len", uint64_t{e.raw.size()});
                    wire::reader r(e.raw);
                    const uint32_t src = *r.be32();
                    const uint32_t dst = *r.be32();
                    _o.append("nhrp.devcap_ext.srccap", uint64_t{src});
                    _o.append("nhrp.devcap_ext.srccap.V", (src & devcap_vpn_aware) != 0);
                    _o.append("nhrp.devcap_ext.dstcap", uint64_t{dst});
                    _o.append("nhrp.devcap_ext.dstcap.V", (dst & devcap_vpn_aware) != 0);
                    return;
                }
                size_t len = 0;
                for (const auto& c : e.cies) {
                    len += nhrp::cie_fixed_size + c.client_nbma.size() + c.client_nbma_sub.size() +
                           c.client_proto.size();
                }
                len += e.raw.size();
                _o.append("nhrp.ext.len", uint64_t{len});
                for (const auto& c : e.cies) {
                    cie(c, nbma_is_ipv4);
                }
                return;
            }
            case nhrp::ext::authentication:
                _o.append("nhrp.ext.len", uint64_t{4 + e.data.size()});
                _o.append("nhrp.auth_ext.reserved", uint64_t{e.auth_reserved});
                _o.append("nhrp.auth_ext.spi", uint64_t{e.auth_spi});
                if (!e.data.empty()) {
                    _o.append("nhrp.auth_ext.data", hex_bytes(e.data));
                }
                return;
            case nhrp::ext::vendor_private: {
                _o.append("nhrp.ext.len", uint64_t{e.oui.size() + e.data.size()});
                _o.append("nhrp.vendor_ext.id", uint64_t{(uint32_t{e.oui[0]} << 16) |
                                                         (uint32_t{e.oui[1]} << 8) | e.oui[2]});
                if (!e.data.empty()) {
                    _o.append("nhrp.vendor_ext.data", hex_bytes(e.data));
                }
                return;
            }
            default:
                _o.append("nhrp.ext.len", uint64_t{e.raw.size()});
                if (!e.raw.empty() && e.type != nhrp::ext::end) {
                    _o.append("nhrp.unknown_ext.value", hex_bytes(e.raw));
                }
                return;
        }
    }

    void nhrp_packet(std::span<const uint8_t> payload) {
        _nhrp = true;
        auto parsed = nhrp::parse(payload);
        if (!parsed) {
            error(nhrp::name(parsed.error()));
            return;
        }
        const nhrp::packet& p = *parsed;
        const auto& h = p.hdr;
        const bool nbma_is_ipv4 = h.afn == nhrp::afn_ipv4;
        _o.set("nhrp.hdr.afn", uint64_t{h.afn});
        _o.set("nhrp.hdr.pro.type", uint64_t{h.pro_type});
        if (h.pro_type == nhrp_pro_snap) {
            _o.set("nhrp.hdr.pro.snap.oui",
                   uint64_t{(uint32_t{h.pro_snap[0]} << 16) | (uint32_t{h.pro_snap[1]} << 8) |
                            h.pro_snap[2]});
            _o.set("nhrp.hdr.pro.snap.pid",
                   uint64_t{static_cast<uint16_t>((h.pro_snap[3] << 8) | h.pro_snap[4])});
        } else {
            _o.set("nhrp.protocol_type", hex_bytes(h.pro_snap));
        }
        _o.set("nhrp.hdr.hopcnt", uint64_t{h.hop_count});
        _o.set("nhrp.hdr.pktsz", uint64_t{h.packet_size});
        _o.set("nhrp.hdr.chksum", uint64_t{h.checksum});
        _o.set("nhrp.hdr.chksum.status", uint64_t{1});  // parse() verified it: Wireshark's "good"
        _o.set("nhrp.hdr.extoff", uint64_t{h.ext_offset});
        _o.set("nhrp.hdr.version", uint64_t{h.version});
        _o.set("nhrp.hdr.op.type", uint64_t{static_cast<uint8_t>(h.type)});
        type_length("nhrp.hdr.shtl", h.shtl, p.src_nbma.size(), false);
        type_length("nhrp.hdr.sstl", h.sstl, p.src_nbma_sub.size(), false);
        _o.set("nhrp.src.prot.len", uint64_t{p.src_proto.size()});
        _o.set("nhrp.dst.prot.len", uint64_t{p.dst_proto.size()});
        const bool indication =
            h.type == nhrp::op::error_indication || h.type == nhrp::op::traffic_indication;
        if (h.type == nhrp::op::error_indication) {
            _o.set("nhrp.err.code", uint64_t{p.error_code});
            _o.set("nhrp.err.offset", uint64_t{p.error_offset});
        } else if (h.type == nhrp::op::traffic_indication) {
            _o.set("nhrp.traffic.code", uint64_t{p.traffic_code});
            _o.set("nhrp.traffic.unused", uint64_t{p.traffic_unused});
        } else {
            flags(p);
            _o.set("nhrp.reqid", uint64_t{p.request_id});
        }
        address("nhrp.src.nbma.addr", "nhrp.src.nbma.addr_bytes", p.src_nbma, nbma_is_ipv4, false);
        if (!p.src_nbma_sub.empty()) {
            _o.set("nhrp.src.nbma.saddr", hex_bytes(p.src_nbma_sub));
        }
        address("nhrp.src.prot.addr", "nhrp.src.prot.addr_bytes", p.src_proto, true, false);
        // Wireshark 4.0 spells this field name so.
        address("nhrp.dst.prot.addr", "nhrp.dst.prot.addr_byets", p.dst_proto, true, false);
        if (indication) {
            if (!p.contents.empty()) {
                _o.set("nhrp.indication.packet", hex_bytes(p.contents));
            }
        } else {
            for (const auto& c : p.cies) {
                cie(c, nbma_is_ipv4);
            }
        }
        for (const auto& e : p.extensions) {
            extension(e, nbma_is_ipv4);
        }
    }

    const pcap::record& _rec;
    const keys* _keys = nullptr;
    ike_fragments* _frags = nullptr;
    // The IKE header's SPIs and I flag: which ikev2_decryption_table row and direction opens SK.
    uint64_t _ike_spi_i = 0, _ike_spi_r = 0;
    bool _ike_from_initiator = false;
    json_object _o;
    bool _nhrp = false;
    bool _failed = false;
};

}  // namespace

// ---- json_object ----

json_object::field* json_object::find(std::string_view key) noexcept {
    for (auto& f : _fields) {
        if (f.key == key) {
            return &f;
        }
    }
    return nullptr;
}

bool json_object::has(std::string_view key) const noexcept {
    for (const auto& f : _fields) {
        if (f.key == key) {
            return true;
        }
    }
    return false;
}

void json_object::set(std::string_view key, json_scalar value) {
    if (auto* f = find(key)) {
        f->is_array = false;
        f->values.assign(1, std::move(value));
        return;
    }
    _fields.push_back(field{std::string(key), false, {std::move(value)}});
}

void json_object::append(std::string_view key, json_scalar value) {
    if (auto* f = find(key)) {
        f->is_array = true;
        f->values.push_back(std::move(value));
        return;
    }
    _fields.push_back(field{std::string(key), true, {std::move(value)}});
}

std::string json_object::str() const {
    std::string out = "{";
    bool first = true;
    for (const auto& f : _fields) {
        if (!first) {
            out.push_back(',');
        }
        first = false;
        escape_into(out, f.key);
        out.push_back(':');
        if (!f.is_array) {
            scalar_into(out, f.values.front());
            continue;
        }
        out.push_back('[');
        for (size_t i = 0; i < f.values.size(); ++i) {
            if (i != 0) {
                out.push_back(',');
            }
            scalar_into(out, f.values[i]);
        }
        out.push_back(']');
    }
    out.push_back('}');
    return out;
}

std::string_view name(decode_error e) noexcept {
    switch (e) {
        case decode_error::truncated_udp_header:
            return "truncated_udp_header";
        case decode_error::udp_length_mismatch:
            return "udp_length_mismatch";
    }
    return "unknown";
}

// ---- ike_fragments ----

ike::reassembly& ike_fragments::of(uint64_t spi_i, uint64_t spi_r, bool from_initiator) {
    for (auto& h : _held) {
        if (h.spi_i == spi_i && h.spi_r == spi_r && h.from_initiator == from_initiator) {
            return h.r;
        }
    }
    if (_held.size() == max_messages) {
        _held.pop_front();
    }
    _held.push_back(held{spi_i, spi_r, from_initiator, {}});
    return _held.back().r;
}

decoded decode_record(const wire::pcap::record& rec, const keys* k, ike_fragments* frags) {
    return packet_decoder(rec, k, frags).run();
}

}  // namespace dmvpn::decode
