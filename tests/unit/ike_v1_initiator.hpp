// A Main Mode + Quick Mode initiator for tests of the IKEv1 responder (control/ike/v1_engine):
// built from the ISAKMP codec and control/ike/v1_crypto, message by message, so a test can
// send each one, tamper with it, repeat it, or stop half way. Pre-shared keys only.
#pragma once

#include <catch2/catch.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/ike/events.hpp"
#include "control/ike/isakmp.hpp"
#include "control/ike/v1_crypto.hpp"

namespace dmvpn::ike::v1::testing {

namespace c = v1::crypto;

inline bytes be(uint64_t v, size_t n) {
    bytes b(n);
    for (size_t i = n; i-- > 0;) {
        b[i] = uint8_t(v);
        v >>= 8;
    }
    return b;
}
inline attribute tv(uint16_t type, uint16_t v) { return {type, true, be(v, 2)}; }
inline attribute tlv(uint16_t type, uint32_t v) { return {type, false, be(v, 4)}; }
inline uint64_t rd(std::span<const uint8_t> b) {
    uint64_t v = 0;
    for (uint8_t x : b) {
        v = (v << 8) | x;
    }
    return v;
}

struct phase1 {
    uint16_t encr = c::encr::aes, key_bits = 128, hash = c::hash::sha1, group = 14;
    uint32_t lifetime_s = 86400;
};
struct phase2 {
    uint8_t transform = esp_transform::aes;
    uint16_t key_bits = 128;  // AES only
    uint16_t auth = 2;        // 1 HMAC-MD5, 2 HMAC-SHA, 5 HMAC-SHA2-256
    uint16_t pfs = 0;         // 0: no PFS
    uint16_t mode = encapsulation::transport;
    uint32_t lifetime_s = 3600;
    uint8_t id_protocol = 47;
    uint32_t id_addr = 0;            // the address IDci names (0: the initiator's own)
    std::vector<uint32_t> nat_oa{};  // NAT-OAi, NAT-OAr to send (RFC 3947 section 5.2)
};

struct initiator {
    uint32_t local = 0, peer = 0;
    std::string psk;
    phase1 p1;
    uint64_t cky_i = 0x1122334455667788, cky_r = 0;
    // RFC 3947: send its vendor ID and NAT-D; `nat_fake` makes our own NAT-D name another
    // address (what strongSwan's encap = yes does), so the responder sees a NAT.
    bool natt = false, nat_fake = false;
    bool responder_natt = false;
    bytes sa_b, ni, nr, gxi, gxr;
    std::unique_ptr<ike::crypto::key_exchange> kx;
    c::phase1_keys keys;
    bytes iv;  // Phase 1 chaining; after MM6 its last block
    // Quick Mode
    phase2 p2;
    uint32_t mid = 0x01020304;
    bytes qm_iv, qni, qnr;
    uint32_t my_spi = 0xabcd0001, their_spi = 0;
    std::unique_ptr<ike::crypto::key_exchange> qkx;
    std::optional<uint32_t> responder_lifetime;
    bytes responder_lifetime_data;      // the notify's attributes as sent
    ike::crypto::secret km_out, km_in;  // KEYMAT we send with (their SPI) / receive with (ours)

    datagram wrap(bytes payload) const {
        datagram d;
        d.src = local;
        d.dst = peer;
        d.payload = std::move(payload);
        return d;
    }

    sa_payload isakmp_sa() const {
        transform t;
        t.attributes.push_back(tv(p1_attr::encryption, p1.encr));
        if (p1.encr == c::encr::aes) {
            t.attributes.push_back(tv(p1_attr::key_length, p1.key_bits));
        }
        t.attributes.push_back(tv(p1_attr::hash, p1.hash));
        t.attributes.push_back(tv(p1_attr::auth_method, 1));
        t.attributes.push_back(tv(p1_attr::group, p1.group));
        t.attributes.push_back(tv(p1_attr::life_type, 1));
        t.attributes.push_back(tlv(p1_attr::life_duration, p1.lifetime_s));
        proposal p;
        p.transforms.push_back(t);
        sa_payload sa;
        sa.proposals.push_back(p);
        return sa;
    }

    datagram mm1(exchange ex = exchange::identity_protection) {
        message m;
        m.hdr.spi_i = cky_i;
        m.hdr.exch = ex;
        m.payloads.push_back(isakmp_sa());
        m.payloads.push_back(vendor_payload{{0xaf, 0xca, 0xd7, 0x13, 0x68, 0xa1, 0xf1, 0xc9, 0x6b,
                                             0x86, 0x96, 0xfc, 0x77, 0x57, 0x01, 0x00}});
        if (natt) {
            m.payloads.push_back(vendor_payload{natt_vid()});
        }
        const chain ch = serialize_payloads({m.payloads[0]});
        sa_b.assign(ch.data.begin() + 4, ch.data.end());
        return wrap(serialize(m));
    }

    static bytes natt_vid() {
        return {0x4a, 0x13, 0x1c, 0x81, 0x07, 0x03, 0x58, 0x45,
                0x5c, 0x57, 0x28, 0xf2, 0x0e, 0x95, 0x45, 0x2f};
    }
    bytes nat_d(uint32_t ip, uint16_t port) const {
        const bytes ci = be(cky_i, 8), cr = be(cky_r, 8), a = be(ip, 4), p = be(port, 2);
        return c::digest(p1.hash, {ci, cr, a, p});
    }

    // MM2 -> MM3
    datagram mm3(const datagram& mm2) {
        auto m = parse(mm2.payload);
        REQUIRE(m);
        cky_r = m->hdr.spi_r;
        for (const auto& p : m->payloads) {
            if (auto* v = std::get_if<vendor_payload>(&p); v != nullptr && v->id == natt_vid()) {
                responder_natt = true;
            }
        }
        REQUIRE(cky_r != 0);
        auto k = ike::crypto::key_exchange::generate(p1.group);
        REQUIRE(k);
        kx = std::move(k.value());
        gxi = kx->public_value();
        ni = bytes(24, 0x5a);
        message r;
        r.hdr.spi_i = cky_i;
        r.hdr.spi_r = cky_r;
        r.payloads.push_back(ke_payload{gxi});
        r.payloads.push_back(nonce_payload{ni});
        if (natt && responder_natt) {
            r.payloads.push_back(nat_d_payload{nat_d(peer, 500)});
            r.payloads.push_back(nat_d_payload{nat_d(nat_fake ? local + 1 : local, 500)});
        }
        return wrap(serialize(r));
    }

    bytes seal(header h, const std::vector<payload>& ps, bytes& chain_iv) const {
        const chain ch = serialize_payloads(ps);
        auto body = c::encrypt(p1.encr, keys.enc_key.view(), chain_iv, ch.data);
        REQUIRE(body);
        message m;
        m.hdr = h;
        m.hdr.flags |= header_flag::encryption;
        m.hdr.next = ch.first;
        m.encrypted = body.value();
        return serialize(m);
    }
    std::optional<std::pair<message, bytes>> open(const datagram& d, bytes& chain_iv) const {
        auto m = parse(d.payload);
        if (!m || !m->hdr.encrypted()) {
            return std::nullopt;
        }
        auto plain = c::decrypt(p1.encr, keys.enc_key.view(), chain_iv, m->encrypted);
        if (!plain) {
            return std::nullopt;
        }
        return std::make_pair(*m, plain.value());
    }

    // MM4 -> MM5 (`initial_contact` adds the notify)
    datagram mm5(const datagram& mm4, bool initial_contact = false) {
        auto m = parse(mm4.payload);
        REQUIRE(m);
        for (const auto& p : m->payloads) {
            if (auto* k = std::get_if<ke_payload>(&p)) {
                gxr = k->data;
            } else if (auto* n = std::get_if<nonce_payload>(&p)) {
                nr = n->data;
            }
        }
        auto gxy = kx->shared_secret(gxr);
        REQUIRE(gxy);
        keys = c::derive_phase1(p1.hash, p1.encr, p1.key_bits,
                                {(const uint8_t*)psk.data(), psk.size()}, ni, nr,
                                gxy.value().view(), cky_i, cky_r, gxi, gxr);
        iv = keys.iv;
        id_payload id;
        id.type = id_type::ipv4_addr;
        id.protocol = 17;
        id.port = 500;
        id.data = be(local, 4);
        const chain ch = serialize_payloads({id});
        const std::span<const uint8_t> idb(ch.data.data() + 4, ch.data.size() - 4);
        auto h = c::hash_i(p1.hash, keys.skeyid.view(), gxi, gxr, cky_i, cky_r, sa_b, idb);
        std::vector<payload> ps{id, hash_payload{bytes(h.data(), h.data() + h.size())}};
        if (initial_contact) {
            notification_payload n;
            n.type = notify_type::initial_contact;
            n.spi = be(cky_i, 8);
            const bytes r = be(cky_r, 8);
            n.spi.insert(n.spi.end(), r.begin(), r.end());
            ps.push_back(n);
        }
        header hd;
        hd.spi_i = cky_i;
        hd.spi_r = cky_r;
        return wrap(seal(hd, ps, iv));
    }

    // MM6: HASH_R checks out
    bool mm6(const datagram& d) {
        bytes next = iv;
        auto o = open(d, next);
        if (!o) {
            return false;
        }
        auto ch = parse_payloads(o->first.hdr.next, o->second);
        if (!ch) {
            return false;
        }
        const hash_payload* h = nullptr;
        for (const auto& p : ch->payloads) {
            if (auto* x = std::get_if<hash_payload>(&p)) {
                h = x;
            }
        }
        // the ID body: the first payload (IDir)
        const std::span<const uint8_t> plain(o->second);
        const size_t idlen = (size_t(plain[2]) << 8) | plain[3];
        const std::span<const uint8_t> idb = plain.subspan(4, idlen - 4);
        auto want = c::hash_r(p1.hash, keys.skeyid.view(), gxi, gxr, cky_i, cky_r, sa_b, idb);
        if (h == nullptr || !ike::crypto::equal(want.view(), h->data)) {
            return false;
        }
        iv = next;
        return true;
    }

    std::vector<payload> qm_payloads() {
        transform t;
        t.id = p2.transform;
        t.attributes.push_back(tv(p2_attr::sa_life_type, 1));
        t.attributes.push_back(tlv(p2_attr::sa_life_duration, p2.lifetime_s));
        t.attributes.push_back(tv(p2_attr::encapsulation_mode, p2.mode));
        t.attributes.push_back(tv(p2_attr::auth_algorithm, p2.auth));
        if (p2.transform == esp_transform::aes) {
            t.attributes.push_back(tv(p2_attr::key_length, p2.key_bits));
        }
        if (p2.pfs != 0) {
            t.attributes.push_back(tv(p2_attr::group, p2.pfs));
        }
        proposal p;
        p.protocol = protocol_id::esp;
        p.spi = be(my_spi, 4);
        p.transforms.push_back(t);
        sa_payload sa;
        sa.proposals.push_back(p);
        qni = bytes(16, 0x77);
        std::vector<payload> ps{sa, nonce_payload{qni}};
        if (p2.pfs != 0) {
            auto k = ike::crypto::key_exchange::generate(p2.pfs);
            REQUIRE(k);
            qkx = std::move(k.value());
            ps.push_back(ke_payload{qkx->public_value()});
        }
        id_payload ci{id_type::ipv4_addr, p2.id_protocol, 0,
                      be(p2.id_addr ? p2.id_addr : local, 4)};
        id_payload cr{id_type::ipv4_addr, p2.id_protocol, 0, be(peer, 4)};
        ps.push_back(ci);
        ps.push_back(cr);
        for (uint32_t a : p2.nat_oa) {
            ps.push_back(nat_oa_payload{id_type::ipv4_addr, be(a, 4), false});
        }
        return ps;
    }

    // The last QM1, byte for byte (a retransmission).
    datagram last_qm1;
    datagram qm1_again() const { return last_qm1; }

    datagram qm1() {
        auto ps = qm_payloads();
        const chain rest = serialize_payloads(ps);
        auto h = c::qm_hash1(p1.hash, keys.skeyid_a.view(), mid, rest.data);
        ps.insert(ps.begin(), hash_payload{bytes(h.data(), h.data() + h.size())});
        qm_iv = c::phase2_iv(p1.hash, p1.encr, iv, mid);
        header hd;
        hd.spi_i = cky_i;
        hd.spi_r = cky_r;
        hd.exch = exchange::quick;
        hd.message_id = mid;
        last_qm1 = wrap(seal(hd, ps, qm_iv));
        return last_qm1;
    }

    // QM2: HASH(2) checks out; KEYMAT computed both ways.
    bool qm2(const datagram& d) {
        bytes next = qm_iv;
        auto o = open(d, next);
        if (!o || o->first.hdr.message_id != mid) {
            return false;
        }
        auto ch = parse_payloads(o->first.hdr.next, o->second);
        if (!ch || ch->payloads.empty()) {
            return false;
        }
        const std::span<const uint8_t> plain(o->second);
        const size_t hlen = (size_t(plain[2]) << 8) | plain[3];
        auto want = c::qm_hash2(p1.hash, keys.skeyid_a.view(), mid, qni,
                                plain.subspan(hlen, ch->consumed - hlen));
        const auto* h = std::get_if<hash_payload>(&ch->payloads[0]);
        if (h == nullptr || !ike::crypto::equal(want.view(), h->data)) {
            return false;
        }
        bytes ke_r;
        for (const auto& p : ch->payloads) {
            if (auto* s = std::get_if<sa_payload>(&p)) {
                their_spi = uint32_t(rd(s->proposals.at(0).spi));
            } else if (auto* n = std::get_if<nonce_payload>(&p)) {
                qnr = n->data;
            } else if (auto* k = std::get_if<ke_payload>(&p)) {
                ke_r = k->data;
            } else if (auto* n2 = std::get_if<notification_payload>(&p)) {
                if (n2->type == notify_type::responder_lifetime) {
                    // life type (TV), then duration (TV or TLV)
                    const bytes& a = n2->data;
                    responder_lifetime_data = a;
                    responder_lifetime = (a[4] & 0x80) != 0 ? uint32_t(rd({a.data() + 6, 2}))
                                                            : uint32_t(rd({a.data() + 8, 4}));
                }
            }
        }
        std::optional<ike::crypto::secret> g;
        if (p2.pfs != 0) {
            auto s = qkx->shared_secret(ke_r);
            if (!s) {
                return false;
            }
            g = s.value();
        }
        const size_t ek = p2.transform == esp_transform::triple_des ? 24 : p2.key_bits / 8u;
        const size_t ak = p2.auth == 1 ? 16 : p2.auth == 2 ? 20 : 32;
        std::optional<ike::crypto::cspan> gv;
        if (g) {
            gv = g->view();
        }
        km_out = c::keymat(p1.hash, keys.skeyid_d.view(), gv, protocol_id::esp, their_spi, qni, qnr,
                           ek + ak);
        km_in = c::keymat(p1.hash, keys.skeyid_d.view(), gv, protocol_id::esp, my_spi, qni, qnr,
                          ek + ak);
        qm_iv = next;
        return true;
    }

    datagram qm3() {
        auto h = c::qm_hash3(p1.hash, keys.skeyid_a.view(), mid, qni, qnr);
        header hd;
        hd.spi_i = cky_i;
        hd.spi_r = cky_r;
        hd.exch = exchange::quick;
        hd.message_id = mid;
        return wrap(seal(hd, {hash_payload{bytes(h.data(), h.data() + h.size())}}, qm_iv));
    }

    datagram informational(const payload& p, uint32_t info_mid) {
        const chain rest = serialize_payloads({p});
        auto h = c::qm_hash1(p1.hash, keys.skeyid_a.view(), info_mid, rest.data);
        header hd;
        hd.spi_i = cky_i;
        hd.spi_r = cky_r;
        hd.exch = exchange::informational;
        hd.message_id = info_mid;
        bytes civ = c::phase2_iv(p1.hash, p1.encr, iv, info_mid);
        return wrap(seal(hd, {hash_payload{bytes(h.data(), h.data() + h.size())}, p}, civ));
    }
    // The payloads of an encrypted Informational, its HASH(1) checked.
    std::optional<std::vector<payload>> read_informational(const datagram& d) const {
        auto m = parse(d.payload);
        if (!m || m->hdr.exch != exchange::informational) {
            return std::nullopt;
        }
        bytes civ = c::phase2_iv(p1.hash, p1.encr, iv, m->hdr.message_id);
        auto o = open(d, civ);
        if (!o) {
            return std::nullopt;
        }
        auto ch = parse_payloads(o->first.hdr.next, o->second);
        if (!ch || ch->payloads.empty()) {
            return std::nullopt;
        }
        const std::span<const uint8_t> plain(o->second);
        const size_t hlen = (size_t(plain[2]) << 8) | plain[3];
        auto want = c::qm_hash1(p1.hash, keys.skeyid_a.view(), m->hdr.message_id,
                                plain.subspan(hlen, ch->consumed - hlen));
        const auto* h = std::get_if<hash_payload>(&ch->payloads[0]);
        if (h == nullptr || !ike::crypto::equal(want.view(), h->data)) {
            return std::nullopt;
        }
        return ch->payloads;
    }
};

}  // namespace dmvpn::ike::v1::testing
