// libFuzzer target for IKEv2's decrypt-then-parse path: SK payloads (RFC 7296 section 3.14)
// and RFC 7383 fragments under fixed keys, as the engine opens them (crypto::unprotect, then
// ike::reassembly for SKF, then parse_payloads on the inner chain).
//
// A fuzzer cannot forge an ICV, so the input is the plaintext side: byte 0 picks the suite
// (bit 0: AES-CBC-256 + HMAC-SHA2-256-128 or AES-GCM-16-256), whole SK or fragments (bit 1) and
// whether one datagram is tampered with (bit 2); byte 1 is the first inner payload type; byte 2
// the fragment size; byte 3 the delivery order; the rest is the inner payload chain. The harness
// protects it with the fixed keys and runs the receive path. Properties: the protected message
// parses and opens to exactly the chain; fragments fit their size, reassemble to the chain in
// any order with duplicates, and complete exactly once; a tampered datagram is refused and
// leaves what is held unchanged; an inner chain that parses rebuilds to the same payloads. The
// raw input is also handed to the receive path as a datagram (it must not crash).
// Seeds: the inner chains of the strongSwan captures' encrypted messages, decrypted with their
// logged keys by make-seeds (target ike_decrypt).
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "control/ike/crypto.hpp"
#include "control/ike/fragments.hpp"
#include "control/ike/message.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using dmvpn::fuzz::require;
namespace ike = dmvpn::ike;
namespace crypto = dmvpn::ike::crypto;
using bytes = std::vector<uint8_t>;

namespace {

crypto::sk_keys fixed_keys(bool gcm) {
    crypto::sk_keys k;
    k.encr_bits = 256;
    if (gcm) {
        k.encr = ike::encr_id::aes_gcm_16;
        k.encr_key = crypto::secret(bytes(36, 0x5c));  // key + 4-byte salt
    } else {
        k.encr = ike::encr_id::aes_cbc;
        k.integ = ike::integ_id::hmac_sha2_256_128;
        k.encr_key = crypto::secret(bytes(32, 0x3a));
        k.integ_key = crypto::secret(bytes(32, 0xa3));
    }
    return k;
}

ike::header fixed_header() {
    ike::header h;
    h.spi_i = 0x0123456789abcdefULL;
    h.spi_r = 0xfedcba9876543210ULL;
    h.exch = ike::exchange::ike_auth;
    h.flags = ike::header_flag::initiator;
    h.message_id = 1;
    return h;
}

// What the engine does with a received datagram: parse, then open SK or collect SKF.
void receive(const crypto::sk_keys& k, std::span<const uint8_t> d, ike::reassembly& r) {
    auto m = ike::parse(d);
    if (!m || m->payloads.empty()) {
        return;
    }
    if (ike::is_fragment(*m)) {
        if (r.add(k, *m, d, ike::max_reassembled, {}) == ike::reassembly::verdict::complete) {
            auto w = r.take();
            (void)ike::parse_payloads(w.first, w.chain);
        }
        return;
    }
    if (const auto* sk = std::get_if<ike::sk_payload>(&m->payloads.back())) {
        require(sk->body.size() <= d.size());
        auto plain = crypto::unprotect(k, d.first(d.size() - sk->body.size()), sk->body);
        if (plain) {
            (void)ike::parse_payloads(sk->first_inner, *plain);
        }
    }
}

// A chain that parses rebuilds to the same payloads (what the engine then reads is what came).
void check_inner(ike::payload_type first, std::span<const uint8_t> chain) {
    auto ps = ike::parse_payloads(first, chain);
    if (!ps) {
        return;
    }
    auto again = ike::serialize_payloads(*ps);
    auto reparsed = ike::parse_payloads(again.first, again.data);
    require(reparsed.has_value());
    require(*reparsed == *ps);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::span<const uint8_t> input(data, size);
    {
        ike::reassembly raw;
        receive(fixed_keys(false), input, raw);
        receive(fixed_keys(true), input, raw);
    }
    if (size < 4) {
        return 0;
    }
    const bool gcm = (data[0] & 1) != 0;
    const bool fragmented = (data[0] & 2) != 0;
    const bool tamper = (data[0] & 4) != 0;
    const auto first = static_cast<ike::payload_type>(data[1]);
    const size_t max_size = 96 + size_t(data[2]) * 8;  // 96..2136 octets
    const uint8_t order = data[3];
    ike::chain inner;
    inner.first = first;
    inner.data.assign(data + 4, data + size);
    if (ike::header_size + 8 + inner.data.size() + 64 > ike::max_message_size) {
        return 0;
    }
    const crypto::sk_keys k = fixed_keys(gcm);
    const ike::header h = fixed_header();

    std::vector<bytes> datagrams;
    if (fragmented) {
        auto f = ike::protect_fragments(k, h, inner, max_size);
        if (!f) {
            return 0;  // too small a size, or more than max_fragments
        }
        datagrams = std::move(*f);
        require(!datagrams.empty() && datagrams.size() <= ike::max_fragments);
        for (const auto& d : datagrams) {
            require(d.size() <= max_size);
        }
    } else {
        const size_t body = inner.data.size() + crypto::protected_size(k, inner.data.size());
        ike::header sh = h;
        sh.next = ike::payload_type::sk;
        sh.length = uint32_t(ike::header_size + 4 + body);
        bytes msg = ike::serialize_header(sh);
        const size_t sk_len = 4 + body;
        for (uint8_t b : {uint8_t(first), uint8_t(0), uint8_t(sk_len >> 8), uint8_t(sk_len)}) {
            msg.push_back(b);
        }
        auto enc = crypto::protect(k, msg, inner.data);
        require(enc.has_value());
        msg.insert(msg.end(), enc->begin(), enc->end());
        datagrams.push_back(std::move(msg));
    }

    // Every genuine datagram parses and passes its integrity check.
    for (const auto& d : datagrams) {
        auto m = ike::parse(d);
        require(m.has_value());
        require(m->hdr.length == d.size());
        if (!fragmented) {
            const auto& sk = std::get<ike::sk_payload>(m->payloads.back());
            auto plain =
                crypto::unprotect(k, std::span(d).first(d.size() - sk.body.size()), sk.body);
            require(plain.has_value());
            require(dmvpn::fuzz::same_bytes(*plain, inner.data));
            require(sk.first_inner == first);
        }
    }

    if (tamper) {
        // One bit of one datagram flipped: refused (or unparseable), what is held unchanged.
        ike::reassembly r;
        size_t pick = order % datagrams.size();
        for (size_t i = 0; i < datagrams.size(); ++i) {
            if (i != pick && fragmented) {
                auto m = ike::parse(datagrams[i]);
                require(r.add(k, *m, datagrams[i], ike::max_reassembled, {}) ==
                            ike::reassembly::verdict::stored ||
                        datagrams.size() == 1);
            }
        }
        const size_t held = r.held();
        const uint16_t count = r.count();
        bytes bad = datagrams[pick];
        const size_t bit = (size_t(order) * 131 + size) % (bad.size() * 8);
        bad[bit / 8] ^= uint8_t(1u << (bit % 8));
        auto m = ike::parse(bad);
        if (m && !m->payloads.empty()) {
            if (fragmented && ike::is_fragment(*m)) {
                const auto v = r.add(k, *m, bad, ike::max_reassembled, {});
                require(v == ike::reassembly::verdict::forged);
                require(r.held() == held && r.count() == count);
            } else if (const auto* sk = std::get_if<ike::sk_payload>(&m->payloads.back())) {
                require(!crypto::unprotect(k, std::span(bad).first(bad.size() - sk->body.size()),
                                           sk->body)
                             .has_value());
            }
        }
        return 0;
    }

    if (!fragmented) {
        check_inner(first, inner.data);
        return 0;
    }
    // Fragments in the order byte 3 picks (a rotation, or reversed), each but the last one
    // delivered twice: the second time a duplicate; the last one completes the message.
    ike::reassembly r;
    const size_t n = datagrams.size();
    const size_t shift = order % n;
    const bool reverse = (order & 0x80) != 0;
    size_t completes = 0;
    for (size_t j = 0; j < n; ++j) {
        const size_t i = (reverse ? n - 1 - j : j + shift) % n;
        auto m = ike::parse(datagrams[i]);
        require(m.has_value() && ike::is_fragment(*m));
        const auto v = r.add(k, *m, datagrams[i], ike::max_reassembled, {});
        if (j + 1 < n) {
            require(v == ike::reassembly::verdict::stored);
            require(r.add(k, *m, datagrams[i], ike::max_reassembled, {}) ==
                    ike::reassembly::verdict::duplicate);
            continue;
        }
        require(v == ike::reassembly::verdict::complete);
        ++completes;
        auto w = r.take();
        require(w.first == first);
        require(w.chain == inner.data);
        require(!r.active() && r.held() == 0);
        check_inner(w.first, w.chain);
    }
    require(completes == 1);
    return 0;
}
