// What the IKEv2 codec (message.cpp) and the ISAKMP / IKEv1 codec (isakmp.cpp) read and write
// alike. RFC 7296 kept RFC 2408's framing: the 28-octet header (section 3.1), the generic
// payload header (3.2) and the Proposal / Transform substructures with a generic header of
// their own (3.3.1, 3.3.2; RFC 2408 3.5, 3.6), whose data attributes are TV or TLV (3.3.5; RFC
// 2408 3.3). The numbers (payload types, errors) and what each payload holds stay in each
// codec; this is the framing only. Control-side code, header only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/wire/reader.hpp"
#include "dataplane/wire/result.hpp"

namespace dmvpn::ike::codec {

using bytes = std::vector<uint8_t>;

inline constexpr size_t header_size = 28;
inline constexpr size_t generic_payload_header_size = 4;
inline constexpr size_t max_payload_body = 0xffff - generic_payload_header_size;
inline constexpr uint16_t attr_tv_bit = 0x8000;  // Attribute Format: 1 TV, 0 TLV

// The payloads read before a chain ended and how many octets they took.
template <typename Payload>
struct chain_prefix {
    std::vector<Payload> payloads;
    size_t consumed = 0;
};
// A serialized payload chain and the type of its first payload (for the Next Payload field of
// what comes before it).
template <typename PayloadType>
struct chain {
    PayloadType first = PayloadType::none;
    bytes data;
};

inline bytes to_bytes(std::span<const uint8_t> s) { return bytes(s.begin(), s.end()); }

// The header's fields (`Header`: ike::header or ike::v1::header, the same fields); the caller
// has checked that r holds header_size octets, and checks the values.
template <typename Header>
Header read_header(wire::reader& r) {
    auto be64 = [&r] {
        const uint64_t hi = *r.be32();
        return (hi << 32) | *r.be32();
    };
    Header h;
    h.spi_i = be64();
    h.spi_r = be64();
    h.next = static_cast<decltype(h.next)>(*r.u8());
    const uint8_t version = *r.u8();
    h.major = version >> 4;
    h.minor = version & 0x0f;
    h.exch = static_cast<decltype(h.exch)>(*r.u8());
    h.flags = *r.u8();
    h.message_id = *r.be32();
    h.length = *r.be32();
    return h;
}

// The header as given (next and length included): header_size octets.
template <typename Header>
bytes write_header(const Header& h) {
    bytes out;
    out.reserve(header_size);
    wire::writer w(out);
    w.be32(static_cast<uint32_t>(h.spi_i >> 32));
    w.be32(static_cast<uint32_t>(h.spi_i));
    w.be32(static_cast<uint32_t>(h.spi_r >> 32));
    w.be32(static_cast<uint32_t>(h.spi_r));
    w.u8(static_cast<uint8_t>(h.next));
    w.u8(static_cast<uint8_t>((h.major << 4) | (h.minor & 0x0f)));
    w.u8(static_cast<uint8_t>(h.exch));
    w.u8(h.flags);
    w.be32(h.message_id);
    w.be32(h.length);
    return out;
}

// One payload of a chain: its generic header and the body its Length announces.
struct generic_payload {
    uint8_t next = 0;
    uint8_t flags = 0;  // IKEv2: the critical bit; ISAKMP: reserved
    std::span<const uint8_t> body;
};
// Reads the generic header at r and the body after it (r advances past both). `E` is the
// codec's parse_error: truncated_payload when the header or the body runs past r,
// bad_payload_length when Length is shorter than the generic header.
template <typename E>
wire::result<generic_payload, E> read_generic(wire::reader& r) {
    if (!r.has(generic_payload_header_size)) {
        return wire::fail(E::truncated_payload);
    }
    generic_payload g;
    g.next = *r.u8();
    g.flags = *r.u8();
    const uint16_t len = *r.be16();
    if (len < generic_payload_header_size) {
        return wire::fail(E::bad_payload_length);
    }
    auto body = r.bytes(len - generic_payload_header_size);
    if (!body) {
        return wire::fail(E::truncated_payload);
    }
    g.body = *body;
    return g;
}

// Writes a generic header (Next Payload `next`, then `flags`), the body put() writes, and
// patches Length. A body over max_payload_body throws std::length_error naming `what`.
template <typename F>
void put_generic(wire::writer& w, uint8_t next, uint8_t flags, std::string_view what, F&& put) {
    const size_t start = w.offset();
    w.u8(next);
    w.u8(flags);
    w.be16(0);
    put();
    const size_t len = w.offset() - start;
    if (len - generic_payload_header_size > max_payload_body) {
        throw std::length_error(std::string(what) + " of " + std::to_string(len) +
                                " octets exceeds 65535");
    }
    w.patch16(start + 2, static_cast<uint16_t>(len));
}

// The Proposal substructures of an SA payload (`Proposal`: ike::proposal or ike::v1::proposal,
// the same fields), each with its Transform substructures; Next Payload `more_proposals` /
// `more_transforms` but on the last (0). put_transform(t) writes a transform's body after its
// generic header. `what` names the codec in a std::length_error.
template <typename Proposal, typename PutTransform>
void put_proposals(wire::writer& w, const std::vector<Proposal>& proposals, uint8_t more_proposals,
                   uint8_t more_transforms, std::string_view what, PutTransform&& put_transform) {
    for (size_t i = 0; i < proposals.size(); ++i) {
        const auto& p = proposals[i];
        const bool last = i + 1 == proposals.size();
        put_generic(w, last ? 0 : more_proposals, 0, what, [&] {
            w.u8(p.number);
            w.u8(p.protocol);
            w.u8(static_cast<uint8_t>(p.spi.size()));
            w.u8(static_cast<uint8_t>(p.transforms.size()));
            w.bytes(p.spi);
            for (size_t j = 0; j < p.transforms.size(); ++j) {
                const bool tlast = j + 1 == p.transforms.size();
                put_generic(w, tlast ? 0 : more_transforms, 0, what,
                            [&] { put_transform(p.transforms[j]); });
            }
        });
    }
}

// A Proposal or Transform substructure: where its generic header starts in what was read, its
// body (after the generic header), and whether it is the last (Next Payload 0).
struct substructure {
    size_t offset = 0;
    std::span<const uint8_t> body;
    bool last = false;
};
inline constexpr uint8_t last_substructure = 0;
// The substructure at r, with Next Payload `more` or 0 and Length at least `fixed` and inside
// r; r advances past it. On a refusal, the offset in r of the substructure.
inline wire::result<substructure, size_t> read_substructure(wire::reader& r, uint8_t more,
                                                            size_t fixed) {
    const size_t off = r.offset();
    if (!r.has(generic_payload_header_size)) {
        return wire::fail(off);
    }
    const uint8_t next = *r.u8();
    r.skip(1);
    const uint16_t len = *r.be16();
    if (len < fixed || (next != more && next != last_substructure) ||
        !r.has(len - generic_payload_header_size)) {
        return wire::fail(off);
    }
    return substructure{off, *r.bytes(len - generic_payload_header_size),
                        next == last_substructure};
}
// The substructures at r up to the last one, at most `limit` of them.
inline wire::result<std::vector<substructure>, size_t> read_substructures(wire::reader& r,
                                                                          uint8_t more,
                                                                          size_t fixed,
                                                                          size_t limit) {
    std::vector<substructure> out;
    while (true) {
        if (out.size() == limit) {
            return wire::fail(r.offset());
        }
        auto s = read_substructure(r, more, fixed);
        if (!s) {
            return wire::fail(s.error());
        }
        out.push_back(*s);
        if (s->last) {
            return out;
        }
    }
}

// One data attribute: TV (`value` the 2 octets of the Attribute Value field) or TLV (`value`
// what its Length announces); `raw` is the whole encoded attribute.
struct attribute_view {
    uint16_t type = 0;  // without the format bit
    bool tv = true;
    std::span<const uint8_t> value;
    std::span<const uint8_t> raw;
};
// Reads the attribute at r; nullopt when it runs past r.
inline std::optional<attribute_view> read_attribute(wire::reader& r) {
    const size_t start = r.offset();
    auto type_field = r.be16();
    if (!type_field) {
        return std::nullopt;
    }
    attribute_view a;
    a.type = *type_field & static_cast<uint16_t>(~attr_tv_bit);
    a.tv = (*type_field & attr_tv_bit) != 0;
    std::optional<std::span<const uint8_t>> value;
    if (a.tv) {
        value = r.bytes(2);
    } else if (auto len = r.be16()) {
        value = r.bytes(*len);
    }
    if (!value) {
        return std::nullopt;
    }
    a.value = *value;
    a.raw = r.whole().subspan(start, r.offset() - start);
    return a;
}

}  // namespace dmvpn::ike::codec
