// IKEv2 message codec (RFC 7296 section 3, RFC 7383 section 2.5): see message.hpp.
#include "control/ike/message.hpp"

#include <stdexcept>
#include <string>
#include <type_traits>

#include "dataplane/wire/reader.hpp"

namespace dmvpn::ike {

namespace {

using wire::fail;
template <typename T>
using result = wire::result<T, parse_error>;

constexpr uint8_t critical_bit = 0x80;
constexpr uint8_t more_proposals = 2;
constexpr uint8_t more_transforms = 3;
constexpr size_t proposal_fixed_size = 8;
constexpr size_t transform_fixed_size = 8;
constexpr size_t ts_fixed_size = 8;
constexpr size_t ipv4_ts_size = ts_fixed_size + 2 * 4;
constexpr size_t ipv6_ts_size = ts_fixed_size + 2 * 16;
constexpr uint16_t opaque_start_port = 65535;  // section 3.13.1: OPAQUE ports are 65535..0
constexpr size_t min_nonce = 16;               // section 3.9
constexpr size_t max_nonce = 256;
constexpr size_t ike_spi_size = 8;
constexpr size_t child_spi_size = 4;

// Public-value sizes of the groups the hub implements (RFC 7296 / RFC 5903 / RFC 8031).
std::optional<size_t> ke_size(uint16_t group) {
    switch (group) {
        case dh_id::modp2048:
            return 256;
        case dh_id::ecp256:
            return 64;
        case dh_id::ecp384:
            return 96;
        case dh_id::curve25519:
            return 32;
        default:
            return std::nullopt;
    }
}

bool spi_size_fits(uint8_t protocol, size_t size, bool ike_may_be_empty) {
    switch (protocol) {
        case protocol_id::ike:
            return size == ike_spi_size || (ike_may_be_empty && size == 0);
        case protocol_id::ah:
        case protocol_id::esp:
            return size == child_spi_size;
        default:
            return true;  // unknown protocols: the proposal logic skips them
    }
}

using codec::to_bytes;

// ---- payload bodies ----

result<std::vector<transform>> parse_transforms(wire::reader& r, uint8_t count) {
    std::vector<transform> out;
    for (uint8_t i = 0; i < count; ++i) {
        auto sub = codec::read_substructure(r, more_transforms, transform_fixed_size);
        if (!sub || sub->last != (i + 1 == count)) {
            return fail(parse_error::bad_proposal);
        }
        wire::reader attrs(sub->body);
        transform t;
        t.type = static_cast<transform_type>(*attrs.u8());
        attrs.skip(1);
        t.id = *attrs.be16();
        while (!attrs.empty()) {
            auto a = codec::read_attribute(attrs);
            if (!a) {
                return fail(parse_error::bad_attribute);
            }
            if (a->type == attr_key_length) {
                if (!a->tv || t.key_bits) {
                    return fail(parse_error::bad_attribute);
                }
                t.key_bits = static_cast<uint16_t>((a->value[0] << 8) | a->value[1]);
                continue;
            }
            t.unknown_attributes.insert(t.unknown_attributes.end(), a->raw.begin(), a->raw.end());
        }
        out.push_back(std::move(t));
    }
    return out;
}

result<payload> parse_sa(wire::reader r) {
    sa_payload sa;
    bool last = false;
    while (!last) {
        auto sub = codec::read_substructure(r, more_proposals, proposal_fixed_size);
        if (!sub || sub->last != r.empty()) {
            return fail(parse_error::bad_proposal);
        }
        last = sub->last;
        wire::reader body(sub->body);
        proposal p;
        p.number = *body.u8();
        p.protocol = *body.u8();
        const uint8_t spi_size = *body.u8();
        const uint8_t count = *body.u8();
        auto spi = body.bytes(spi_size);
        if (!spi || !spi_size_fits(p.protocol, spi_size, true)) {
            return fail(parse_error::bad_proposal);
        }
        p.spi = to_bytes(*spi);
        auto ts = parse_transforms(body, count);
        if (!ts) {
            return fail(ts.error());
        }
        if (!body.empty()) {
            return fail(parse_error::bad_proposal);
        }
        p.transforms = std::move(*ts);
        sa.proposals.push_back(std::move(p));
    }
    return payload{std::move(sa)};
}

result<payload> parse_ke(wire::reader r) {
    if (!r.has(4)) {
        return fail(parse_error::bad_payload_length);
    }
    ke_payload ke;
    ke.group = *r.be16();
    r.skip(2);
    const auto expected = ke_size(ke.group);
    if (r.empty() || (expected && r.remaining() != *expected)) {
        return fail(parse_error::bad_ke);
    }
    ke.data = to_bytes(r.rest());
    return payload{std::move(ke)};
}

template <typename Id>
result<payload> parse_id(wire::reader r) {
    if (!r.has(4)) {
        return fail(parse_error::bad_payload_length);
    }
    Id id;
    id.type = *r.u8();
    r.skip(3);
    id.data = to_bytes(r.rest());
    return payload{std::move(id)};
}

template <typename Cert>
result<payload> parse_cert(wire::reader r) {
    if (!r.has(1)) {
        return fail(parse_error::bad_payload_length);
    }
    Cert c;
    c.encoding = *r.u8();
    c.data = to_bytes(r.rest());
    return payload{std::move(c)};
}

result<payload> parse_auth(wire::reader r) {
    if (!r.has(4)) {
        return fail(parse_error::bad_payload_length);
    }
    auth_payload a;
    a.method = *r.u8();
    r.skip(3);
    a.data = to_bytes(r.rest());
    return payload{std::move(a)};
}

result<payload> parse_nonce(wire::reader r) {
    if (r.remaining() < min_nonce || r.remaining() > max_nonce) {
        return fail(parse_error::bad_payload_length);
    }
    return payload{nonce_payload{to_bytes(r.rest())}};
}

result<payload> parse_notify(wire::reader r) {
    if (!r.has(4)) {
        return fail(parse_error::bad_payload_length);
    }
    notify_payload n;
    n.protocol = *r.u8();
    const uint8_t spi_size = *r.u8();
    n.type = *r.be16();
    auto spi = r.bytes(spi_size);
    if (!spi ||
        (spi_size != 0 && (n.protocol == 0 || !spi_size_fits(n.protocol, spi_size, false)))) {
        return fail(parse_error::bad_notify);
    }
    n.spi = to_bytes(*spi);
    n.data = to_bytes(r.rest());
    return payload{std::move(n)};
}

result<payload> parse_delete(wire::reader r) {
    if (!r.has(4)) {
        return fail(parse_error::bad_payload_length);
    }
    delete_payload d;
    d.protocol = *r.u8();
    d.spi_size = *r.u8();
    const uint16_t count = *r.be16();
    const bool sizes_ok = d.protocol == protocol_id::ike
                              ? d.spi_size == 0 && count == 0
                              : (d.protocol == protocol_id::esp || d.protocol == protocol_id::ah) &&
                                    d.spi_size == child_spi_size;
    if (!sizes_ok || r.remaining() != size_t{count} * d.spi_size) {
        return fail(parse_error::bad_delete);
    }
    for (uint16_t i = 0; i < count; ++i) {
        d.spis.push_back(to_bytes(*r.bytes(d.spi_size)));
    }
    return payload{std::move(d)};
}

// Traffic selector addresses (public, not secrets): a <= b in network byte order.
bool address_le(std::span<const uint8_t> a, std::span<const uint8_t> b) {
    return !std::lexicographical_compare(b.begin(), b.end(), a.begin(), a.end());
}

template <typename Ts>
result<payload> parse_ts(wire::reader r) {
    if (!r.has(4)) {
        return fail(parse_error::bad_payload_length);
    }
    Ts ts;
    const uint8_t count = *r.u8();
    r.skip(3);
    for (uint8_t i = 0; i < count; ++i) {
        if (!r.has(ts_fixed_size)) {
            return fail(parse_error::bad_traffic_selector);
        }
        traffic_selector s;
        s.type = *r.u8();
        s.ip_protocol = *r.u8();
        const uint16_t len = *r.be16();
        const size_t want = s.type == ts_type::ipv4_addr_range   ? ipv4_ts_size
                            : s.type == ts_type::ipv6_addr_range ? ipv6_ts_size
                                                                 : 0;
        if (want == 0 || len != want || !r.has(len - 4)) {
            return fail(parse_error::bad_traffic_selector);
        }
        s.start_port = *r.be16();
        s.end_port = *r.be16();
        const size_t alen = (want - ts_fixed_size) / 2;
        s.start_address = to_bytes(*r.bytes(alen));
        s.end_address = to_bytes(*r.bytes(alen));
        const bool opaque = s.start_port == opaque_start_port && s.end_port == 0;
        if ((s.start_port > s.end_port && !opaque) || !address_le(s.start_address, s.end_address)) {
            return fail(parse_error::bad_traffic_selector);
        }
        ts.selectors.push_back(std::move(s));
    }
    if (!r.empty()) {
        return fail(parse_error::bad_traffic_selector);
    }
    return payload{std::move(ts)};
}

result<payload> parse_skf(wire::reader r, payload_type first_inner) {
    if (!r.has(4)) {
        return fail(parse_error::bad_payload_length);
    }
    skf_payload f;
    f.first_inner = first_inner;
    f.number = *r.be16();
    f.total = *r.be16();
    // RFC 7383 section 2.5: numbering starts at 1; only fragment 1 names the first inner
    // payload, the others carry 0.
    if (f.number == 0 || f.number > f.total ||
        (f.number != 1 && first_inner != payload_type::none)) {
        return fail(parse_error::bad_fragment);
    }
    f.body = to_bytes(r.rest());
    return payload{std::move(f)};
}

result<payload> parse_body(uint8_t type, bool critical, uint8_t next, wire::reader body) {
    switch (static_cast<payload_type>(type)) {
        case payload_type::sa:
            return parse_sa(body);
        case payload_type::ke:
            return parse_ke(body);
        case payload_type::idi:
            return parse_id<id_payload_i>(body);
        case payload_type::idr:
            return parse_id<id_payload_r>(body);
        case payload_type::cert:
            return parse_cert<cert_payload>(body);
        case payload_type::certreq:
            return parse_cert<certreq_payload>(body);
        case payload_type::auth:
            return parse_auth(body);
        case payload_type::nonce:
            return parse_nonce(body);
        case payload_type::notify:
            return parse_notify(body);
        case payload_type::del:
            return parse_delete(body);
        case payload_type::vendor:
            return payload{vendor_payload{to_bytes(body.rest())}};
        case payload_type::tsi:
            return parse_ts<ts_payload_i>(body);
        case payload_type::tsr:
            return parse_ts<ts_payload_r>(body);
        case payload_type::sk:
            return payload{sk_payload{static_cast<payload_type>(next), to_bytes(body.rest())}};
        case payload_type::skf:
            return parse_skf(body, static_cast<payload_type>(next));
        case payload_type::cp:
        case payload_type::eap:
            return payload{opaque_payload{type, critical, to_bytes(body.rest())}};
        case payload_type::none:
            break;
    }
    // Section 2.5: an unknown payload is skipped unless its critical bit asks for a refusal.
    if (critical) {
        return fail(parse_error::unsupported_critical);
    }
    return payload{opaque_payload{type, false, to_bytes(body.rest())}};
}

// ---- payload builders ----

// A proposal or transform of 65535 octets or more would make the SA payload too long as well.
void put_body(wire::writer& w, const sa_payload& sa) {
    codec::put_proposals(w, sa.proposals, more_proposals, more_transforms, "IKE proposal",
                         [&w](const transform& t) {
                             w.u8(static_cast<uint8_t>(t.type));
                             w.u8(0);
                             w.be16(t.id);
                             if (t.key_bits) {
                                 w.be16(codec::attr_tv_bit | attr_key_length);
                                 w.be16(*t.key_bits);
                             }
                             w.bytes(t.unknown_attributes);
                         });
}
void put_body(wire::writer& w, const ke_payload& ke) {
    w.be16(ke.group);
    w.be16(0);
    w.bytes(ke.data);
}
void put_body(wire::writer& w, const id_payload& id) {
    w.u8(id.type);
    w.zeros(3);
    w.bytes(id.data);
}
void put_body(wire::writer& w, const cert_payload& c) {
    w.u8(c.encoding);
    w.bytes(c.data);
}
void put_body(wire::writer& w, const certreq_payload& c) {
    w.u8(c.encoding);
    w.bytes(c.data);
}
void put_body(wire::writer& w, const auth_payload& a) {
    w.u8(a.method);
    w.zeros(3);
    w.bytes(a.data);
}
void put_body(wire::writer& w, const nonce_payload& n) { w.bytes(n.data); }
void put_body(wire::writer& w, const notify_payload& n) {
    w.u8(n.protocol);
    w.u8(static_cast<uint8_t>(n.spi.size()));
    w.be16(n.type);
    w.bytes(n.spi);
    w.bytes(n.data);
}
void put_body(wire::writer& w, const delete_payload& d) {
    w.u8(d.protocol);
    w.u8(d.spi_size);
    w.be16(static_cast<uint16_t>(d.spis.size()));
    for (const auto& s : d.spis) {
        w.bytes(s);
    }
}
void put_body(wire::writer& w, const vendor_payload& v) { w.bytes(v.id); }
void put_body(wire::writer& w, const ts_payload& ts) {
    w.u8(static_cast<uint8_t>(ts.selectors.size()));
    w.zeros(3);
    for (const auto& s : ts.selectors) {
        w.u8(s.type);
        w.u8(s.ip_protocol);
        w.be16(
            static_cast<uint16_t>(ts_fixed_size + s.start_address.size() + s.end_address.size()));
        w.be16(s.start_port);
        w.be16(s.end_port);
        w.bytes(s.start_address);
        w.bytes(s.end_address);
    }
}
void put_body(wire::writer& w, const sk_payload& sk) { w.bytes(sk.body); }
void put_body(wire::writer& w, const skf_payload& f) {
    w.be16(f.number);
    w.be16(f.total);
    w.bytes(f.body);
}
void put_body(wire::writer& w, const opaque_payload& o) { w.bytes(o.body); }

}  // namespace

// ---- parsing ----

wire::result<header, parse_error> parse_header(std::span<const uint8_t> datagram) {
    wire::reader r(datagram);
    if (!r.has(header_size)) {
        return fail(parse_error::truncated_header);
    }
    const auto h = codec::read_header<header>(r);
    if (h.major != 2) {
        return fail(parse_error::bad_major_version);
    }
    if (h.length > max_message_size || datagram.size() > max_message_size) {
        return fail(parse_error::too_long);
    }
    if (h.length != datagram.size()) {
        return fail(parse_error::length_mismatch);
    }
    return h;
}

wire::result<message, parse_error> parse(std::span<const uint8_t> datagram) {
    auto h = parse_header(datagram);
    if (!h) {
        return fail(h.error());
    }
    auto p = parse_payloads(h->next, datagram.subspan(header_size));
    if (!p) {
        return fail(p.error());
    }
    return message{*h, std::move(*p)};
}

wire::result<chain_prefix, parse_error> parse_payload_prefix(payload_type first,
                                                             std::span<const uint8_t> chain) {
    chain_prefix out;
    wire::reader r(chain);
    auto type = static_cast<uint8_t>(first);
    while (type != static_cast<uint8_t>(payload_type::none)) {
        if (out.payloads.size() == max_payloads) {
            return fail(parse_error::too_many_payloads);
        }
        auto g = codec::read_generic<parse_error>(r);
        if (!g) {
            return fail(g.error());
        }
        const uint8_t next = g->next;
        const bool critical = (g->flags & critical_bit) != 0;
        auto p = parse_body(type, critical, next, wire::reader(g->body));
        if (!p) {
            return fail(p.error());
        }
        out.payloads.push_back(std::move(*p));
        const auto t = static_cast<payload_type>(type);
        if (t == payload_type::sk || t == payload_type::skf) {
            // Section 3.14: SK is the last payload; its Next Payload names the first inner one.
            if (!r.empty()) {
                return fail(parse_error::sk_not_last);
            }
            break;
        }
        type = next;
    }
    out.consumed = r.offset();
    return out;
}

wire::result<std::vector<payload>, parse_error> parse_payloads(payload_type first,
                                                               std::span<const uint8_t> chain) {
    auto p = parse_payload_prefix(first, chain);
    if (!p) {
        return fail(p.error());
    }
    if (p->consumed != chain.size()) {
        return fail(parse_error::length_mismatch);  // bytes after the last payload
    }
    return std::move(p->payloads);
}

// ---- building ----

payload_type type_of(const payload& p) noexcept {
    return std::visit(
        [](const auto& v) -> payload_type {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, sa_payload>) {
                return payload_type::sa;
            } else if constexpr (std::is_same_v<T, ke_payload>) {
                return payload_type::ke;
            } else if constexpr (std::is_same_v<T, id_payload_i>) {
                return payload_type::idi;
            } else if constexpr (std::is_same_v<T, id_payload_r>) {
                return payload_type::idr;
            } else if constexpr (std::is_same_v<T, cert_payload>) {
                return payload_type::cert;
            } else if constexpr (std::is_same_v<T, certreq_payload>) {
                return payload_type::certreq;
            } else if constexpr (std::is_same_v<T, auth_payload>) {
                return payload_type::auth;
            } else if constexpr (std::is_same_v<T, nonce_payload>) {
                return payload_type::nonce;
            } else if constexpr (std::is_same_v<T, notify_payload>) {
                return payload_type::notify;
            } else if constexpr (std::is_same_v<T, delete_payload>) {
                return payload_type::del;
            } else if constexpr (std::is_same_v<T, vendor_payload>) {
                return payload_type::vendor;
            } else if constexpr (std::is_same_v<T, ts_payload_i>) {
                return payload_type::tsi;
            } else if constexpr (std::is_same_v<T, ts_payload_r>) {
                return payload_type::tsr;
            } else if constexpr (std::is_same_v<T, sk_payload>) {
                return payload_type::sk;
            } else if constexpr (std::is_same_v<T, skf_payload>) {
                return payload_type::skf;
            } else {
                static_assert(std::is_same_v<T, opaque_payload>);
                return static_cast<payload_type>(v.type);
            }
        },
        p);
}

chain serialize_payloads(const std::vector<payload>& payloads) {
    chain c;
    c.first = payloads.empty() ? payload_type::none : type_of(payloads.front());
    wire::writer w(c.data);
    for (size_t i = 0; i < payloads.size(); ++i) {
        const auto& p = payloads[i];
        uint8_t next = i + 1 < payloads.size() ? static_cast<uint8_t>(type_of(payloads[i + 1])) : 0;
        uint8_t flags = 0;
        if (const auto* sk = std::get_if<sk_payload>(&p)) {
            next = static_cast<uint8_t>(sk->first_inner);
        } else if (const auto* skf = std::get_if<skf_payload>(&p)) {
            next = static_cast<uint8_t>(skf->first_inner);
        } else if (const auto* o = std::get_if<opaque_payload>(&p); o && o->critical) {
            flags = critical_bit;
        }
        const std::string what = "IKE payload " + std::string(name(type_of(p)));
        codec::put_generic(w, next, flags, what,
                           [&] { std::visit([&w](const auto& v) { put_body(w, v); }, p); });
    }
    return c;
}

bytes serialize_header(const header& h) { return codec::write_header(h); }

bytes serialize(const message& m) {
    auto c = serialize_payloads(m.payloads);
    const size_t len = header_size + c.data.size();
    if (len > max_message_size) {
        throw std::length_error("IKE message of " + std::to_string(len) +
                                " bytes exceeds max_message_size");
    }
    header h = m.hdr;
    h.next = c.first;
    h.length = static_cast<uint32_t>(len);
    bytes out = serialize_header(h);
    out.insert(out.end(), c.data.begin(), c.data.end());
    return out;
}

// ---- names ----

std::string_view name(exchange e) noexcept {
    switch (e) {
        case exchange::ike_sa_init:
            return "IKE_SA_INIT";
        case exchange::ike_auth:
            return "IKE_AUTH";
        case exchange::create_child_sa:
            return "CREATE_CHILD_SA";
        case exchange::informational:
            return "INFORMATIONAL";
    }
    return "unknown";
}

std::string_view name(payload_type p) noexcept {
    switch (p) {
        case payload_type::none:
            return "NONE";
        case payload_type::sa:
            return "SA";
        case payload_type::ke:
            return "KE";
        case payload_type::idi:
            return "IDi";
        case payload_type::idr:
            return "IDr";
        case payload_type::cert:
            return "CERT";
        case payload_type::certreq:
            return "CERTREQ";
        case payload_type::auth:
            return "AUTH";
        case payload_type::nonce:
            return "Ni/Nr";
        case payload_type::notify:
            return "N";
        case payload_type::del:
            return "D";
        case payload_type::vendor:
            return "V";
        case payload_type::tsi:
            return "TSi";
        case payload_type::tsr:
            return "TSr";
        case payload_type::sk:
            return "SK";
        case payload_type::cp:
            return "CP";
        case payload_type::eap:
            return "EAP";
        case payload_type::skf:
            return "SKF";
    }
    return "unknown";
}

std::string_view notify_name(uint16_t type) noexcept {
    namespace n = notify_type;
    switch (type) {
        case n::unsupported_critical_payload:
            return "UNSUPPORTED_CRITICAL_PAYLOAD";
        case n::invalid_ike_spi:
            return "INVALID_IKE_SPI";
        case n::invalid_major_version:
            return "INVALID_MAJOR_VERSION";
        case n::invalid_syntax:
            return "INVALID_SYNTAX";
        case n::invalid_message_id:
            return "INVALID_MESSAGE_ID";
        case n::invalid_spi:
            return "INVALID_SPI";
        case n::no_proposal_chosen:
            return "NO_PROPOSAL_CHOSEN";
        case n::invalid_ke_payload:
            return "INVALID_KE_PAYLOAD";
        case n::authentication_failed:
            return "AUTHENTICATION_FAILED";
        case n::single_pair_required:
            return "SINGLE_PAIR_REQUIRED";
        case n::no_additional_sas:
            return "NO_ADDITIONAL_SAS";
        case n::internal_address_failure:
            return "INTERNAL_ADDRESS_FAILURE";
        case n::failed_cp_required:
            return "FAILED_CP_REQUIRED";
        case n::ts_unacceptable:
            return "TS_UNACCEPTABLE";
        case n::invalid_selectors:
            return "INVALID_SELECTORS";
        case n::temporary_failure:
            return "TEMPORARY_FAILURE";
        case n::child_sa_not_found:
            return "CHILD_SA_NOT_FOUND";
        case n::initial_contact:
            return "INITIAL_CONTACT";
        case n::set_window_size:
            return "SET_WINDOW_SIZE";
        case n::additional_ts_possible:
            return "ADDITIONAL_TS_POSSIBLE";
        case n::ipcomp_supported:
            return "IPCOMP_SUPPORTED";
        case n::nat_detection_source_ip:
            return "NAT_DETECTION_SOURCE_IP";
        case n::nat_detection_destination_ip:
            return "NAT_DETECTION_DESTINATION_IP";
        case n::cookie:
            return "COOKIE";
        case n::use_transport_mode:
            return "USE_TRANSPORT_MODE";
        case n::http_cert_lookup_supported:
            return "HTTP_CERT_LOOKUP_SUPPORTED";
        case n::rekey_sa:
            return "REKEY_SA";
        case n::esp_tfc_padding_not_supported:
            return "ESP_TFC_PADDING_NOT_SUPPORTED";
        case n::non_first_fragments_also:
            return "NON_FIRST_FRAGMENTS_ALSO";
        case n::mobike_supported:
            return "MOBIKE_SUPPORTED";
        case n::multiple_auth_supported:
            return "MULTIPLE_AUTH_SUPPORTED";
        case n::eap_only_authentication:
            return "EAP_ONLY_AUTHENTICATION";
        case n::childless_ikev2_supported:
            return "CHILDLESS_IKEV2_SUPPORTED";
        case n::ikev2_fragmentation_supported:
            return "IKEV2_FRAGMENTATION_SUPPORTED";
        case n::signature_hash_algorithms:
            return "SIGNATURE_HASH_ALGORITHMS";
        default:
            return "unknown";
    }
}

std::string_view name(parse_error e) noexcept {
    switch (e) {
        case parse_error::truncated_header:
            return "truncated_header";
        case parse_error::bad_major_version:
            return "bad_major_version";
        case parse_error::length_mismatch:
            return "length_mismatch";
        case parse_error::too_long:
            return "too_long";
        case parse_error::truncated_payload:
            return "truncated_payload";
        case parse_error::bad_payload_length:
            return "bad_payload_length";
        case parse_error::unsupported_critical:
            return "unsupported_critical";
        case parse_error::sk_not_last:
            return "sk_not_last";
        case parse_error::bad_proposal:
            return "bad_proposal";
        case parse_error::bad_attribute:
            return "bad_attribute";
        case parse_error::bad_ke:
            return "bad_ke";
        case parse_error::bad_notify:
            return "bad_notify";
        case parse_error::bad_delete:
            return "bad_delete";
        case parse_error::bad_traffic_selector:
            return "bad_traffic_selector";
        case parse_error::bad_fragment:
            return "bad_fragment";
        case parse_error::too_many_payloads:
            return "too_many_payloads";
    }
    return "unknown";
}

}  // namespace dmvpn::ike
