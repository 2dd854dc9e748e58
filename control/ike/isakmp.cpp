// ISAKMP / IKEv1 message codec (RFC 2408 section 3, RFC 2407 section 4, RFC 3947): see
// isakmp.hpp.
#include "control/ike/isakmp.hpp"

#include <stdexcept>
#include <type_traits>

#include "dataplane/wire/reader.hpp"

namespace dmvpn::ike::v1 {

namespace {

using wire::fail;
template <typename T>
using result = wire::result<T, refusal>;

constexpr size_t sa_fixed_size = 8;
constexpr size_t proposal_fixed_size = 8;  // generic header + number, protocol, spi size, count
constexpr size_t transform_fixed_size = 8;
constexpr size_t id_fixed_size = 4;
constexpr size_t cert_fixed_size = 1;
constexpr size_t notification_fixed_size = 8;
constexpr size_t delete_fixed_size = 8;
constexpr size_t nat_oa_fixed_size = 4;
using codec::attr_tv_bit;
constexpr size_t min_nonce = 8;  // RFC 2409 section 5
constexpr size_t max_nonce = 256;
constexpr size_t isakmp_spi_size = 16;  // the two cookies
constexpr size_t child_spi_size = 4;
constexpr size_t cpi_size = 2;
constexpr size_t cipher_alignment = 4;
constexpr size_t ipv4_size = 4;
constexpr size_t ipv6_size = 16;

using codec::to_bytes;

// Where a refusal points: `base` is the offset of the reader's data in what parse() was given.
struct at {
    size_t base;
    payload_type payload;
    refusal operator()(parse_error e, size_t off) const { return refusal{e, base + off, payload}; }
};

// RFC 2409 appendix A and RFC 2407 section 4.5: the attributes of class B(asic) must be TV.
bool basic_only(bool phase1, uint16_t type) {
    if (phase1) {
        switch (type) {
            case p1_attr::encryption:
            case p1_attr::hash:
            case p1_attr::auth_method:
            case p1_attr::group:
            case p1_attr::group_type:
            case p1_attr::life_type:
            case p1_attr::prf:
            case p1_attr::key_length:
            case p1_attr::field_size:
                return true;
            default:
                return false;
        }
    }
    switch (type) {
        case p2_attr::sa_life_type:
        case p2_attr::group:
        case p2_attr::encapsulation_mode:
        case p2_attr::auth_algorithm:
        case p2_attr::key_length:
        case p2_attr::key_rounds:
        case p2_attr::compress_dictionary_size:
            return true;
        default:
            return false;
    }
}

result<std::vector<attribute>> parse_attributes(wire::reader& r, bool phase1, const at& where) {
    std::vector<attribute> out;
    while (!r.empty()) {
        const size_t off = r.offset();
        auto a = out.size() == max_attributes ? std::nullopt : codec::read_attribute(r);
        if (!a || (!a->tv && basic_only(phase1, a->type))) {
            return fail(where(parse_error::bad_attribute, off));
        }
        out.push_back(attribute{a->type, a->tv, to_bytes(a->value)});
    }
    return out;
}

bool proposal_spi_fits(uint8_t protocol, size_t size) {
    switch (protocol) {
        case protocol_id::isakmp:
            return size == 0 || size == isakmp_spi_size;
        case protocol_id::ah:
        case protocol_id::esp:
            return size == child_spi_size;
        case protocol_id::ipcomp:
            return size == cpi_size || size == child_spi_size;
        default:
            return true;  // unknown protocols: the proposal logic skips them
    }
}

// The Proposal (or Transform) payloads of `r`, each with Next Payload `more` but the last (0).
result<std::vector<codec::substructure>> substructures(wire::reader& r, uint8_t more, size_t fixed,
                                                       size_t limit, parse_error bad,
                                                       const at& where) {
    auto subs = codec::read_substructures(r, more, fixed, limit);
    if (!subs) {
        return fail(where(bad, subs.error()));
    }
    return std::move(*subs);
}

result<std::vector<transform>> parse_transforms(wire::reader& r, uint8_t count, bool phase1,
                                                const at& where) {
    // `where` points at the proposal body; a count that does not fit refuses the proposal.
    const size_t proposal_at = 0 - generic_payload_header_size;  // wraps back to the proposal
    if (count == 0) {
        return fail(where(parse_error::bad_proposal, proposal_at));
    }
    auto subs = substructures(r, static_cast<uint8_t>(payload_type::transform),
                              transform_fixed_size, count, parse_error::bad_transform, where);
    if (!subs) {
        return fail(subs.error());
    }
    if (subs->size() != count || !r.empty()) {
        return fail(where(parse_error::bad_proposal, proposal_at));
    }
    std::vector<transform> out;
    for (const auto& sub : *subs) {
        wire::reader t(sub.body);
        transform tr;
        tr.number = *t.u8();
        tr.id = *t.u8();
        t.skip(2);
        const at inner{where.base + sub.offset + generic_payload_header_size, where.payload};
        auto attrs = parse_attributes(t, phase1, inner);
        if (!attrs) {
            return fail(attrs.error());
        }
        tr.attributes = std::move(*attrs);
        out.push_back(std::move(tr));
    }
    return out;
}

result<sa_payload> parse_sa(wire::reader& r, const at& where) {
    sa_payload sa;
    if (!r.has(sa_fixed_size)) {
        return fail(where(parse_error::bad_payload_length, 0));
    }
    sa.doi = *r.be32();
    sa.situation = *r.be32();
    if (sa.doi != doi_ipsec || sa.situation != situation::identity_only) {
        return fail(where(parse_error::bad_doi, 0));
    }
    auto subs = substructures(r, static_cast<uint8_t>(payload_type::proposal), proposal_fixed_size,
                              max_proposals, parse_error::bad_proposal, where);
    if (!subs) {
        return fail(subs.error());
    }
    if (!r.empty()) {
        return fail(where(parse_error::bad_proposal, r.offset()));
    }
    for (const auto& sub : *subs) {
        wire::reader p(sub.body);
        proposal prop;
        prop.number = *p.u8();
        prop.protocol = *p.u8();
        const uint8_t spi_size = *p.u8();
        const uint8_t count = *p.u8();
        auto spi = p.bytes(spi_size);
        if (!spi || !proposal_spi_fits(prop.protocol, spi_size)) {
            return fail(where(parse_error::bad_proposal, sub.offset));
        }
        prop.spi = to_bytes(*spi);
        // Offsets inside the proposal body relative to the SA body.
        const at inner{where.base + sub.offset + generic_payload_header_size, where.payload};
        auto ts = parse_transforms(p, count, prop.protocol == protocol_id::isakmp, inner);
        if (!ts) {
            return fail(ts.error());
        }
        prop.transforms = std::move(*ts);
        sa.proposals.push_back(std::move(prop));
    }
    return sa;
}

std::optional<size_t> id_address_size(uint8_t type) {
    switch (type) {
        case id_type::ipv4_addr:
            return ipv4_size;
        case id_type::ipv4_addr_subnet:
        case id_type::ipv4_addr_range:
            return 2 * ipv4_size;
        case id_type::ipv6_addr:
            return ipv6_size;
        case id_type::ipv6_addr_subnet:
        case id_type::ipv6_addr_range:
            return 2 * ipv6_size;
        default:
            return std::nullopt;
    }
}

// One payload's body (the generic header already read); `where` points at the body.
result<payload> parse_body(payload_type type, std::span<const uint8_t> body, const at& where) {
    wire::reader r(body);
    auto short_body = [&where] { return fail(where(parse_error::bad_payload_length, 0)); };
    switch (type) {
        case payload_type::sa: {
            auto sa = parse_sa(r, where);
            if (!sa) {
                return fail(sa.error());
            }
            return payload{std::move(*sa)};
        }
        case payload_type::proposal:
        case payload_type::transform:
            return fail(where(parse_error::misplaced_payload, 0));
        case payload_type::ke:
            if (body.empty()) {
                return short_body();
            }
            return payload{ke_payload{to_bytes(body)}};
        case payload_type::id: {
            if (!r.has(id_fixed_size)) {
                return short_body();
            }
            id_payload id;
            id.type = *r.u8();
            id.protocol = *r.u8();
            id.port = *r.be16();
            id.data = to_bytes(r.rest());
            if (auto size = id_address_size(id.type); size && *size != id.data.size()) {
                return fail(where(parse_error::bad_id, id_fixed_size));
            }
            return payload{std::move(id)};
        }
        case payload_type::cert:
        case payload_type::cr: {
            if (!r.has(cert_fixed_size)) {
                return short_body();
            }
            const uint8_t encoding = *r.u8();
            if (type == payload_type::cert) {
                return payload{cert_payload{encoding, to_bytes(r.rest())}};
            }
            return payload{cr_payload{encoding, to_bytes(r.rest())}};
        }
        case payload_type::hash:
        case payload_type::sig:
            if (body.empty()) {
                return short_body();
            }
            if (type == payload_type::hash) {
                return payload{hash_payload{to_bytes(body)}};
            }
            return payload{sig_payload{to_bytes(body)}};
        case payload_type::nonce:
            if (body.size() < min_nonce || body.size() > max_nonce) {
                return short_body();
            }
            return payload{nonce_payload{to_bytes(body)}};
        case payload_type::notification: {
            if (!r.has(notification_fixed_size)) {
                return short_body();
            }
            notification_payload n;
            n.doi = *r.be32();
            n.protocol = *r.u8();
            const uint8_t spi_size = *r.u8();
            n.type = *r.be16();
            auto spi = r.bytes(spi_size);
            const bool fits = spi_size == 0 || spi_size == child_spi_size ||
                              (spi_size == isakmp_spi_size && n.protocol == protocol_id::isakmp);
            if (!spi || !fits) {
                return fail(where(parse_error::bad_notification, 5));
            }
            n.spi = to_bytes(*spi);
            n.data = to_bytes(r.rest());
            return payload{std::move(n)};
        }
        case payload_type::del: {
            if (!r.has(delete_fixed_size)) {
                return short_body();
            }
            delete_payload d;
            d.doi = *r.be32();
            d.protocol = *r.u8();
            d.spi_size = *r.u8();
            const uint16_t count = *r.be16();
            const size_t want =
                d.protocol == protocol_id::isakmp ? isakmp_spi_size : child_spi_size;
            if (d.spi_size != want || count == 0 || r.remaining() != size_t{count} * want) {
                return fail(where(parse_error::bad_delete, 5));
            }
            for (uint16_t i = 0; i < count; ++i) {
                d.spis.push_back(to_bytes(*r.bytes(want)));
            }
            return payload{std::move(d)};
        }
        case payload_type::vendor:
            return payload{vendor_payload{to_bytes(body)}};
        case payload_type::nat_d:
        case payload_type::nat_d_draft:
            if (body.empty()) {
                return short_body();
            }
            return payload{nat_d_payload{to_bytes(body), type == payload_type::nat_d_draft}};
        case payload_type::nat_oa:
        case payload_type::nat_oa_draft: {
            if (!r.has(nat_oa_fixed_size)) {
                return short_body();
            }
            nat_oa_payload oa;
            oa.type = *r.u8();
            r.skip(3);
            oa.address = to_bytes(r.rest());
            oa.draft = type == payload_type::nat_oa_draft;
            const bool fits = (oa.type == id_type::ipv4_addr && oa.address.size() == ipv4_size) ||
                              (oa.type == id_type::ipv6_addr && oa.address.size() == ipv6_size);
            if (!fits) {
                return fail(where(parse_error::bad_nat_oa, 0));
            }
            return payload{std::move(oa)};
        }
        case payload_type::none:
            break;
    }
    return payload{opaque_payload{static_cast<uint8_t>(type), to_bytes(body)}};
}

result<chain_prefix> parse_chain(payload_type first, std::span<const uint8_t> chain, size_t base) {
    chain_prefix out;
    wire::reader r(chain);
    payload_type next = first;
    while (next != payload_type::none) {
        const size_t off = r.offset();
        if (out.payloads.size() == max_payloads) {
            return fail(refusal{parse_error::too_many_payloads, base + off, next});
        }
        auto g = codec::read_generic<parse_error>(r);
        if (!g) {
            return fail(refusal{g.error(), base + off, next});
        }
        auto p = parse_body(next, g->body, at{base + off + generic_payload_header_size, next});
        if (!p) {
            return fail(p.error());
        }
        out.payloads.push_back(std::move(*p));
        next = static_cast<payload_type>(g->next);
    }
    out.consumed = r.offset();
    return out;
}

// ---- builder ----

void put_attributes(wire::writer& w, const std::vector<attribute>& attrs) {
    for (const auto& a : attrs) {
        if (a.tv) {
            if (a.value.size() != 2) {
                throw std::length_error("ISAKMP TV attribute " + std::to_string(a.type) +
                                        " needs a 2-octet value");
            }
            w.be16(static_cast<uint16_t>(a.type | attr_tv_bit));
        } else {
            if (a.value.size() > 0xffff) {
                throw std::length_error("ISAKMP attribute over 65535 octets");
            }
            w.be16(static_cast<uint16_t>(a.type & ~attr_tv_bit));
            w.be16(static_cast<uint16_t>(a.value.size()));
        }
        w.bytes(a.value);
    }
}

void put_body(wire::writer& w, const sa_payload& sa) {
    w.be32(sa.doi);
    w.be32(sa.situation);
    codec::put_proposals(w, sa.proposals, static_cast<uint8_t>(payload_type::proposal),
                         static_cast<uint8_t>(payload_type::transform), "ISAKMP payload",
                         [&w](const transform& t) {
                             w.u8(t.number);
                             w.u8(t.id);
                             w.be16(0);
                             put_attributes(w, t.attributes);
                         });
}
void put_body(wire::writer& w, const ke_payload& ke) { w.bytes(ke.data); }
void put_body(wire::writer& w, const id_payload& id) {
    w.u8(id.type);
    w.u8(id.protocol);
    w.be16(id.port);
    w.bytes(id.data);
}
void put_body(wire::writer& w, const cert_payload& c) {
    w.u8(c.encoding);
    w.bytes(c.data);
}
void put_body(wire::writer& w, const cr_payload& c) {
    w.u8(c.encoding);
    w.bytes(c.data);
}
void put_body(wire::writer& w, const hash_payload& h) { w.bytes(h.data); }
void put_body(wire::writer& w, const sig_payload& s) { w.bytes(s.data); }
void put_body(wire::writer& w, const nonce_payload& n) { w.bytes(n.data); }
void put_body(wire::writer& w, const notification_payload& n) {
    w.be32(n.doi);
    w.u8(n.protocol);
    w.u8(static_cast<uint8_t>(n.spi.size()));
    w.be16(n.type);
    w.bytes(n.spi);
    w.bytes(n.data);
}
void put_body(wire::writer& w, const delete_payload& d) {
    w.be32(d.doi);
    w.u8(d.protocol);
    w.u8(d.spi_size);
    w.be16(static_cast<uint16_t>(d.spis.size()));
    for (const auto& s : d.spis) {
        w.bytes(s);
    }
}
void put_body(wire::writer& w, const vendor_payload& v) { w.bytes(v.id); }
void put_body(wire::writer& w, const nat_d_payload& n) { w.bytes(n.hash); }
void put_body(wire::writer& w, const nat_oa_payload& n) {
    w.u8(n.type);
    w.zeros(3);
    w.bytes(n.address);
}
void put_body(wire::writer& w, const opaque_payload& o) { w.bytes(o.body); }

}  // namespace

std::optional<uint64_t> attribute_value(std::span<const attribute> attrs, uint16_t type) noexcept {
    for (const auto& a : attrs) {
        if (a.type != type) {
            continue;
        }
        if (a.value.empty() || a.value.size() > sizeof(uint64_t)) {
            return std::nullopt;
        }
        uint64_t v = 0;
        for (uint8_t b : a.value) {
            v = (v << 8) | b;
        }
        return v;
    }
    return std::nullopt;
}

wire::result<header, refusal> parse_header(std::span<const uint8_t> datagram) {
    wire::reader r(datagram);
    if (!r.has(header_size)) {
        return fail(refusal{parse_error::truncated_header, 0, payload_type::none});
    }
    const auto h = codec::read_header<header>(r);
    constexpr size_t version_offset = 17;
    constexpr size_t length_offset = 24;
    if (h.major != major_version) {
        return fail(refusal{parse_error::bad_major_version, version_offset, payload_type::none});
    }
    if (h.length > max_message_size) {
        return fail(refusal{parse_error::too_long, length_offset, payload_type::none});
    }
    if (h.length != datagram.size()) {
        return fail(refusal{parse_error::length_mismatch, length_offset, payload_type::none});
    }
    return h;
}

wire::result<message, refusal> parse(std::span<const uint8_t> datagram) {
    auto h = parse_header(datagram);
    if (!h) {
        return fail(h.error());
    }
    message m;
    m.hdr = *h;
    const auto body = datagram.subspan(header_size);
    if (m.hdr.encrypted()) {
        if (body.empty() || body.size() % cipher_alignment != 0) {
            return fail(refusal{parse_error::empty_encrypted, header_size, m.hdr.next});
        }
        m.encrypted = to_bytes(body);
        return m;
    }
    auto c = parse_chain(m.hdr.next, body, header_size);
    if (!c) {
        return fail(c.error());
    }
    if (c->consumed != body.size()) {
        return fail(
            refusal{parse_error::length_mismatch, header_size + c->consumed, payload_type::none});
    }
    m.payloads = std::move(c->payloads);
    return m;
}

wire::result<chain_prefix, refusal> parse_payloads(payload_type first,
                                                   std::span<const uint8_t> chain) {
    return parse_chain(first, chain, 0);
}

payload_type type_of(const payload& p) noexcept {
    return std::visit(
        [](const auto& v) -> payload_type {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, sa_payload>) {
                return payload_type::sa;
            } else if constexpr (std::is_same_v<T, ke_payload>) {
                return payload_type::ke;
            } else if constexpr (std::is_same_v<T, id_payload>) {
                return payload_type::id;
            } else if constexpr (std::is_same_v<T, cert_payload>) {
                return payload_type::cert;
            } else if constexpr (std::is_same_v<T, cr_payload>) {
                return payload_type::cr;
            } else if constexpr (std::is_same_v<T, hash_payload>) {
                return payload_type::hash;
            } else if constexpr (std::is_same_v<T, sig_payload>) {
                return payload_type::sig;
            } else if constexpr (std::is_same_v<T, nonce_payload>) {
                return payload_type::nonce;
            } else if constexpr (std::is_same_v<T, notification_payload>) {
                return payload_type::notification;
            } else if constexpr (std::is_same_v<T, delete_payload>) {
                return payload_type::del;
            } else if constexpr (std::is_same_v<T, vendor_payload>) {
                return payload_type::vendor;
            } else if constexpr (std::is_same_v<T, nat_d_payload>) {
                return v.draft ? payload_type::nat_d_draft : payload_type::nat_d;
            } else if constexpr (std::is_same_v<T, nat_oa_payload>) {
                return v.draft ? payload_type::nat_oa_draft : payload_type::nat_oa;
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
        const uint8_t next =
            i + 1 < payloads.size() ? static_cast<uint8_t>(type_of(payloads[i + 1])) : 0;
        codec::put_generic(w, next, 0, "ISAKMP payload", [&] {
            std::visit([&w](const auto& v) { put_body(w, v); }, payloads[i]);
        });
    }
    return c;
}

bytes serialize(const message& m) {
    header h = m.hdr;
    bytes body;
    if (h.encrypted()) {
        body = m.encrypted;
    } else {
        auto c = serialize_payloads(m.payloads);
        h.next = c.first;
        body = std::move(c.data);
    }
    const size_t len = header_size + body.size();
    if (len > max_message_size) {
        throw std::length_error("ISAKMP message of " + std::to_string(len) +
                                " octets exceeds max_message_size");
    }
    h.length = static_cast<uint32_t>(len);
    bytes out = codec::write_header(h);
    out.insert(out.end(), body.begin(), body.end());
    return out;
}

// ---- names ----

std::string_view name(exchange e) noexcept {
    switch (e) {
        case exchange::base:
            return "Base";
        case exchange::identity_protection:
            return "Identity Protection (Main Mode)";
        case exchange::authentication_only:
            return "Authentication Only";
        case exchange::aggressive:
            return "Aggressive";
        case exchange::informational:
            return "Informational";
        case exchange::quick:
            return "Quick Mode";
        case exchange::new_group:
            return "New Group Mode";
    }
    return "unknown";
}

std::string_view name(payload_type p) noexcept {
    switch (p) {
        case payload_type::none:
            return "NONE";
        case payload_type::sa:
            return "SA";
        case payload_type::proposal:
            return "Proposal";
        case payload_type::transform:
            return "Transform";
        case payload_type::ke:
            return "KE";
        case payload_type::id:
            return "ID";
        case payload_type::cert:
            return "CERT";
        case payload_type::cr:
            return "CR";
        case payload_type::hash:
            return "HASH";
        case payload_type::sig:
            return "SIG";
        case payload_type::nonce:
            return "NONCE";
        case payload_type::notification:
            return "N";
        case payload_type::del:
            return "D";
        case payload_type::vendor:
            return "VID";
        case payload_type::nat_d:
        case payload_type::nat_d_draft:
            return "NAT-D";
        case payload_type::nat_oa:
        case payload_type::nat_oa_draft:
            return "NAT-OA";
    }
    return "unknown";
}

std::string_view notify_name(uint16_t type) noexcept {
    switch (type) {
        case notify_type::invalid_payload_type:
            return "INVALID-PAYLOAD-TYPE";
        case notify_type::doi_not_supported:
            return "DOI-NOT-SUPPORTED";
        case notify_type::situation_not_supported:
            return "SITUATION-NOT-SUPPORTED";
        case notify_type::invalid_cookie:
            return "INVALID-COOKIE";
        case notify_type::invalid_major_version:
            return "INVALID-MAJOR-VERSION";
        case notify_type::invalid_exchange_type:
            return "INVALID-EXCHANGE-TYPE";
        case notify_type::invalid_flags:
            return "INVALID-FLAGS";
        case notify_type::invalid_message_id:
            return "INVALID-MESSAGE-ID";
        case notify_type::invalid_protocol_id:
            return "INVALID-PROTOCOL-ID";
        case notify_type::invalid_spi:
            return "INVALID-SPI";
        case notify_type::invalid_transform_id:
            return "INVALID-TRANSFORM-ID";
        case notify_type::attributes_not_supported:
            return "ATTRIBUTES-NOT-SUPPORTED";
        case notify_type::no_proposal_chosen:
            return "NO-PROPOSAL-CHOSEN";
        case notify_type::bad_proposal_syntax:
            return "BAD-PROPOSAL-SYNTAX";
        case notify_type::payload_malformed:
            return "PAYLOAD-MALFORMED";
        case notify_type::invalid_key_information:
            return "INVALID-KEY-INFORMATION";
        case notify_type::invalid_id_information:
            return "INVALID-ID-INFORMATION";
        case notify_type::invalid_hash_information:
            return "INVALID-HASH-INFORMATION";
        case notify_type::authentication_failed:
            return "AUTHENTICATION-FAILED";
        case notify_type::invalid_signature:
            return "INVALID-SIGNATURE";
        case notify_type::responder_lifetime:
            return "RESPONDER-LIFETIME";
        case notify_type::replay_status:
            return "REPLAY-STATUS";
        case notify_type::initial_contact:
            return "INITIAL-CONTACT";
        case notify_type::r_u_there:
            return "R-U-THERE";
        case notify_type::r_u_there_ack:
            return "R-U-THERE-ACK";
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
        case parse_error::misplaced_payload:
            return "misplaced_payload";
        case parse_error::bad_doi:
            return "bad_doi";
        case parse_error::bad_proposal:
            return "bad_proposal";
        case parse_error::bad_transform:
            return "bad_transform";
        case parse_error::bad_attribute:
            return "bad_attribute";
        case parse_error::bad_id:
            return "bad_id";
        case parse_error::bad_notification:
            return "bad_notification";
        case parse_error::bad_delete:
            return "bad_delete";
        case parse_error::bad_nat_oa:
            return "bad_nat_oa";
        case parse_error::empty_encrypted:
            return "empty_encrypted";
        case parse_error::too_many_payloads:
            return "too_many_payloads";
    }
    return "unknown";
}

std::string describe(const refusal& r) {
    std::string s(name(r.reason));
    if (r.payload != payload_type::none) {
        s += " in ";
        s += name(r.payload);
        if (name(r.payload) == "unknown") {
            s += " payload " + std::to_string(static_cast<unsigned>(r.payload));
        }
    }
    s += " at offset " + std::to_string(r.offset);
    return s;
}

}  // namespace dmvpn::ike::v1
