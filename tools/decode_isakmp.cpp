#include "tools/decode_isakmp.hpp"

#include <variant>

#include "control/ike/isakmp.hpp"

namespace dmvpn::decode {

namespace {

namespace v1 = ike::v1;

constexpr size_t version_offset = 17;
constexpr size_t max_numeric_duration = 4;  // tshark's life_duration is a 32-bit field

uint64_t be(std::span<const uint8_t> b) {
    uint64_t v = 0;
    for (uint8_t x : b) {
        v = (v << 8) | x;
    }
    return v;
}

// The attribute-specific field tshark adds beside type/value, where it is a number.
const char* phase1_field(uint16_t type) {
    switch (type) {
        case v1::p1_attr::encryption:
            return "isakmp.ike.attr.encryption_algorithm";
        case v1::p1_attr::hash:
            return "isakmp.ike.attr.hash_algorithm";
        case v1::p1_attr::auth_method:
            return "isakmp.ike.attr.authentication_method";
        case v1::p1_attr::group:
            return "isakmp.ike.attr.group_description";
        case v1::p1_attr::group_type:
            return "isakmp.ike.attr.group_type";
        case v1::p1_attr::life_type:
            return "isakmp.ike.attr.life_type";
        case v1::p1_attr::life_duration:
            return "isakmp.ike.attr.life_duration";
        case v1::p1_attr::key_length:
            return "isakmp.ike.attr.key_length";
        default:
            return nullptr;
    }
}
const char* phase2_field(uint16_t type) {
    switch (type) {
        case v1::p2_attr::sa_life_type:
            return "isakmp.ipsec.attr.life_type";
        case v1::p2_attr::sa_life_duration:
            return "isakmp.ipsec.attr.life_duration";
        case v1::p2_attr::group:
            return "isakmp.ipsec.attr.group_description";
        case v1::p2_attr::encapsulation_mode:
            return "isakmp.ipsec.attr.encap_mode";
        case v1::p2_attr::auth_algorithm:
            return "isakmp.ipsec.attr.auth_algorithm";
        case v1::p2_attr::key_length:
            return "isakmp.ipsec.attr.key_length";
        case v1::p2_attr::key_rounds:
            return "isakmp.ipsec.attr.key_rounds";
        case v1::p2_attr::compress_dictionary_size:
            return "isakmp.ipsec.attr.cmpr_dict_size";
        default:
            return nullptr;
    }
}

class isakmp_writer {
public:
    explicit isakmp_writer(json_object& o) : _o(o) {}

    void header(std::span<const uint8_t> msg, const v1::header& h) {
        _o.set("isakmp.ispi", hex_bytes(msg.first(8)));
        _o.set("isakmp.rspi", hex_bytes(msg.subspan(8, 8)));
        _o.append("isakmp.nextpayload", uint64_t{static_cast<uint8_t>(h.next)});
        _o.set("isakmp.version", uint64_t{msg[version_offset]});
        _o.set("isakmp.mjver", uint64_t{h.major});
        _o.set("isakmp.mnver", uint64_t{h.minor});
        _o.set("isakmp.exchangetype", uint64_t{static_cast<uint8_t>(h.exch)});
        _o.set("isakmp.flags", uint64_t{h.flags});
        _o.set("isakmp.flag_e", (h.flags & v1::header_flag::encryption) != 0);
        _o.set("isakmp.flag_c", (h.flags & v1::header_flag::commit) != 0);
        _o.set("isakmp.flag_a", (h.flags & v1::header_flag::authentication_only) != 0);
        _o.set("isakmp.messageid", uint64_t{h.message_id});
        _o.set("isakmp.length", uint64_t{h.length});
    }

    // The payloads of a parsed chain; `chain` holds their bytes (for the generic headers, which
    // the model does not keep).
    void payloads(const std::vector<v1::payload>& ps, std::span<const uint8_t> chain) {
        for (const auto& p : ps) {
            _o.append("isakmp.typepayload", uint64_t{static_cast<uint8_t>(v1::type_of(p))});
        }
        size_t off = 0;
        for (const auto& p : ps) {
            const uint16_t len = static_cast<uint16_t>((chain[off + 2] << 8) | chain[off + 3]);
            generic(chain[off], len);
            std::visit([this](const auto& v) { body(v); }, p);
            off += len;
        }
    }

private:
    void generic(uint8_t next, uint16_t length) {
        _o.append("isakmp.nextpayload", uint64_t{next});
        _o.append("isakmp.payloadlength", uint64_t{length});
    }

    void attributes(const std::vector<v1::attribute>& attrs, bool phase1) {
        const std::string prefix = phase1 ? "isakmp.ike.attr." : "isakmp.ipsec.attr.";
        for (const auto& a : attrs) {
            _o.append(prefix + "format", a.tv);
            _o.append(prefix + "type", uint64_t{a.type});
            if (!a.tv) {
                _o.append(prefix + "length", uint64_t{a.value.size()});
            }
            _o.append(prefix + "value", hex_bytes(a.value));
            const char* field = phase1 ? phase1_field(a.type) : phase2_field(a.type);
            if (field != nullptr && !a.value.empty() && a.value.size() <= max_numeric_duration) {
                _o.append(field, be(a.value));
            }
        }
    }

    static size_t attributes_size(const std::vector<v1::attribute>& attrs) {
        size_t n = 0;
        for (const auto& a : attrs) {
            n += 4 + (a.tv ? 0 : a.value.size());
        }
        return n;
    }

    void body(const v1::sa_payload& sa) {
        _o.append("isakmp.sa.doi", uint64_t{sa.doi});
        const uint8_t sit[4] = {
            static_cast<uint8_t>(sa.situation >> 24), static_cast<uint8_t>(sa.situation >> 16),
            static_cast<uint8_t>(sa.situation >> 8), static_cast<uint8_t>(sa.situation)};
        _o.append("isakmp.sa.situation", hex_bytes(sit));
        _o.append("isakmp.sa.situation.identity_only",
                  (sa.situation & v1::situation::identity_only) != 0);
        _o.append("isakmp.sa.situation.secrecy", (sa.situation & v1::situation::secrecy) != 0);
        _o.append("isakmp.sa.situation.integrity", (sa.situation & v1::situation::integrity) != 0);
        for (size_t i = 0; i < sa.proposals.size(); ++i) {
            _o.append("isakmp.typepayload", uint64_t{2});
        }
        for (size_t i = 0; i < sa.proposals.size(); ++i) {
            const auto& p = sa.proposals[i];
            size_t plen = 8 + p.spi.size();
            for (const auto& t : p.transforms) {
                plen += 8 + attributes_size(t.attributes);
            }
            generic(i + 1 == sa.proposals.size() ? 0 : 2, static_cast<uint16_t>(plen));
            _o.append("isakmp.prop.number", uint64_t{p.number});
            _o.append("isakmp.prop.protoid", uint64_t{p.protocol});
            _o.append("isakmp.spisize", uint64_t{p.spi.size()});
            _o.append("isakmp.prop.transforms", uint64_t{p.transforms.size()});
            if (!p.spi.empty()) {
                _o.append("isakmp.spi", hex_bytes(p.spi));
            }
            for (size_t j = 0; j < p.transforms.size(); ++j) {
                _o.append("isakmp.typepayload", uint64_t{3});
            }
            for (size_t j = 0; j < p.transforms.size(); ++j) {
                const auto& t = p.transforms[j];
                generic(j + 1 == p.transforms.size() ? 0 : 3,
                        static_cast<uint16_t>(8 + attributes_size(t.attributes)));
                _o.append("isakmp.trans.number", uint64_t{t.number});
                _o.append("isakmp.trans.id", uint64_t{t.id});
                attributes(t.attributes, p.protocol == v1::protocol_id::isakmp);
            }
        }
    }
    void body(const v1::ke_payload& ke) {
        _o.append("isakmp.key_exchange.data", hex_bytes(ke.data));
    }
    void body(const v1::id_payload& id) {
        _o.append("isakmp.id.type", uint64_t{id.type});
        _o.append("isakmp.id.protoid", uint64_t{id.protocol});
        _o.append("isakmp.id.port", uint64_t{id.port});
        if (id.type == v1::id_type::ipv4_addr) {
            _o.append("isakmp.id.data.ipv4_addr", dotted(id.data));
        }
    }
    void body(const v1::cert_payload& c) {
        _o.append("isakmp.cert.encoding", uint64_t{c.encoding});
    }
    void body(const v1::cr_payload& c) { _o.append("isakmp.certreq.type", uint64_t{c.encoding}); }
    void body(const v1::hash_payload& h) { _o.append("isakmp.hash", hex_bytes(h.data)); }
    void body(const v1::sig_payload& s) { _o.append("isakmp.sig", hex_bytes(s.data)); }
    void body(const v1::nonce_payload& n) { _o.append("isakmp.nonce", hex_bytes(n.data)); }
    void body(const v1::notification_payload& n) {
        _o.append("isakmp.notify.doi", uint64_t{n.doi});
        _o.append("isakmp.notify.protoid", uint64_t{n.protocol});
        _o.append("isakmp.spisize", uint64_t{n.spi.size()});
        _o.append("isakmp.notify.msgtype", uint64_t{n.type});
        if (!n.spi.empty()) {
            _o.append("isakmp.spi", hex_bytes(n.spi));
        }
    }
    void body(const v1::delete_payload& d) {
        _o.append("isakmp.delete.doi", uint64_t{d.doi});
        _o.append("isakmp.delete.protoid", uint64_t{d.protocol});
        _o.append("isakmp.spisize", uint64_t{d.spi_size});
        _o.append("isakmp.spinum", uint64_t{d.spis.size()});
        for (const auto& s : d.spis) {
            _o.append("isakmp.delete.spi", hex_bytes(s));
        }
    }
    void body(const v1::vendor_payload& v) { _o.append("isakmp.vid_bytes", hex_bytes(v.id)); }
    void body(const v1::nat_d_payload& n) { _o.append("isakmp.ike.nat_hash", hex_bytes(n.hash)); }
    void body(const v1::nat_oa_payload& n) {
        _o.append("isakmp.id.type", uint64_t{n.type});
        if (n.type == v1::id_type::ipv4_addr) {
            _o.append("isakmp.ike.nat_original_address_ipv4", dotted(n.address));
        }
    }
    void body(const v1::opaque_payload&) {}

    json_object& _o;
};

}  // namespace

std::optional<std::string> isakmp_fields(std::span<const uint8_t> msg, json_object& o) {
    auto h = v1::parse_header(msg);
    if (!h) {
        return v1::describe(h.error());
    }
    isakmp_writer w(o);
    w.header(msg, *h);
    auto m = v1::parse(msg);
    if (!m) {
        return v1::describe(m.error());
    }
    if (!m->hdr.encrypted()) {
        w.payloads(m->payloads, msg.subspan(v1::header_size));
    }
    return std::nullopt;
}

}  // namespace dmvpn::decode
