// libFuzzer target for IKEv1's decrypt-then-parse path, as the IKEv1 engine runs it on Main
// Mode's MM5, Aggressive Mode's AM3, Quick Mode and Informational messages
// (control/ike/v1_engine.cpp: open, open_hashed): parse the ISAKMP message, CBC-decrypt its
// E-flag body with the Phase 1 key and the chained IV (v1::crypto::decrypt), read the payload
// chain (parse_payloads), check HASH(1) = prf(SKEYID_a, M-ID | the payloads after HASH).
//
// ISAKMP bodies carry no ICV: anything decrypts. So the input is the plaintext side: byte 0
// picks the suite (bits 0-1: 3DES, AES-128, AES-256; bits 2-3: MD5, SHA-1, SHA2-256) and whether
// one ciphertext bit is flipped (bit 4); byte 1 is the first payload type; the rest is the chain
// after a HASH(1) the harness computes. The harness protects `HASH(1) | chain` under fixed keys as
// the engine's seal does. Properties: the message parses, its body decrypts to the plaintext
// zero-padded to the block, and both ends chain the same IV (the last ciphertext block); a
// chain that parses on one side parses to the same payloads on the other and its HASH(1)
// verifies; a flipped bit whose block reaches what HASH(1) covers never verifies. The raw
// input is also decrypted as a body (cut to whole blocks) and parsed: it must not crash, and
// what parses consumes at most what it has.
// Seeds: tests/data/isakmp_decrypt (Quick Mode, Informational DELETE, R-U-THERE, INITIAL-CONTACT).
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <span>
#include <vector>

#include "control/ike/isakmp.hpp"
#include "control/ike/v1_crypto.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using dmvpn::fuzz::require;
namespace v1 = dmvpn::ike::v1;
namespace c = dmvpn::ike::v1::crypto;
using bytes = std::vector<uint8_t>;

namespace {

struct suite {
    uint16_t encr, bits, hash;
};

suite suite_of(uint8_t b) {
    static constexpr uint16_t encrs[4][2] = {
        {c::encr::triple_des, 0}, {c::encr::aes, 128}, {c::encr::aes, 256}, {c::encr::aes, 128}};
    static constexpr uint16_t hashes[4] = {c::hash::md5, c::hash::sha1, c::hash::sha256,
                                           c::hash::sha1};
    return {encrs[b & 3][0], encrs[b & 3][1], hashes[(b >> 2) & 3]};
}

c::phase1_keys keys_for(const suite& s) {
    const bytes psk(16, 0x42), ni(16, 1), nr(16, 2), gxy(128, 3), gxi(128, 4), gxr(128, 5);
    return c::derive_phase1(s.hash, s.encr, s.bits, psk, ni, nr, gxy, 0x1122334455667788,
                            0x99aabbccddeeff00, gxi, gxr);
}

// HASH(1) | chain as the engine reads it: nullopt unless it parses and HASH(1) verifies.
std::optional<std::vector<v1::payload>> open_hashed(const suite& s, const c::phase1_keys& k,
                                                    uint32_t mid, std::span<const uint8_t> plain,
                                                    v1::payload_type first) {
    auto ch = v1::parse_payloads(first, plain);
    if (!ch) {
        require(ch.error().offset <= plain.size());
        return std::nullopt;
    }
    require(ch->consumed <= plain.size());
    if (first != v1::payload_type::hash || ch->payloads.empty() || plain.size() < 4) {
        return std::nullopt;
    }
    const size_t hlen = (size_t(plain[2]) << 8) | plain[3];
    require(hlen <= ch->consumed);
    const auto want =
        c::qm_hash1(s.hash, k.skeyid_a.view(), mid, plain.subspan(hlen, ch->consumed - hlen));
    const auto* h = std::get_if<v1::hash_payload>(&ch->payloads.front());
    if (h == nullptr || !dmvpn::ike::crypto::equal(want.view(), h->data)) {
        return std::nullopt;
    }
    return std::move(ch->payloads);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2 || size > 65000) {
        return 0;
    }
    const std::span<const uint8_t> input(data, size);
    const suite s = suite_of(input[0]);
    const bool tamper = (input[0] & 0x10) != 0;
    const auto first = static_cast<v1::payload_type>(input[1]);
    const std::span<const uint8_t> rest = input.subspan(2);
    static const c::phase1_keys keys[4][4] = {{keys_for(suite_of(0)), keys_for(suite_of(4)),
                                               keys_for(suite_of(8)), keys_for(suite_of(12))},
                                              {keys_for(suite_of(1)), keys_for(suite_of(5)),
                                               keys_for(suite_of(9)), keys_for(suite_of(13))},
                                              {keys_for(suite_of(2)), keys_for(suite_of(6)),
                                               keys_for(suite_of(10)), keys_for(suite_of(14))},
                                              {keys_for(suite_of(3)), keys_for(suite_of(7)),
                                               keys_for(suite_of(11)), keys_for(suite_of(15))}};
    const c::phase1_keys& k = keys[input[0] & 3][(input[0] >> 2) & 3];
    const uint32_t mid = 0x0a0b0c0d;

    // The sender: HASH(1) over the chain (what of it parses; the receiver covers no more), then
    // HASH(1) | chain (the HASH names `first` next).
    auto rest_chain = v1::parse_payloads(first, rest);
    const size_t covered_rest = rest_chain ? rest_chain->consumed : rest.size();
    const auto h1 = c::qm_hash1(s.hash, k.skeyid_a.view(), mid, rest.first(covered_rest));
    bytes plain = {static_cast<uint8_t>(first), 0, 0, uint8_t(4 + h1.size())};
    plain.insert(plain.end(), h1.data(), h1.data() + h1.size());
    plain.insert(plain.end(), rest.begin(), rest.end());
    const bytes iv0 = c::phase2_iv(s.hash, s.encr, k.iv, mid);
    bytes iv_tx = iv0;
    auto body = c::encrypt(s.encr, k.enc_key.view(), iv_tx, plain);
    require(body.has_value());
    const size_t block = c::block_size(s.encr);
    require(body->size() % block == 0 && body->size() >= plain.size() &&
            body->size() < plain.size() + block + 1);
    require(std::equal(iv_tx.begin(), iv_tx.end(), body->end() - long(block)));
    const size_t flipped = size_t(input[1]) % body->size();
    if (tamper) {
        (*body)[flipped] ^= 0x01;
    }
    v1::message m;
    m.hdr.spi_i = 0x1122334455667788;
    m.hdr.spi_r = 0x99aabbccddeeff00;
    m.hdr.exch = v1::exchange::quick;
    m.hdr.message_id = mid;
    m.hdr.flags = v1::header_flag::encryption;
    m.hdr.next = v1::payload_type::hash;
    m.encrypted = *body;
    const bytes wire = v1::serialize(m);

    // The receiver.
    auto got = v1::parse(wire);
    require(got.has_value());
    require(got->encrypted == *body);
    bytes iv_rx = iv0;
    auto opened = c::decrypt(s.encr, k.enc_key.view(), iv_rx, got->encrypted);
    require(opened.has_value());
    require(iv_rx == bytes(body->end() - long(block), body->end()));
    if (!tamper) {
        require(opened->size() == body->size());
        require(std::equal(plain.begin(), plain.end(), opened->begin()));
        require(std::all_of(opened->begin() + long(plain.size()), opened->end(),
                            [](uint8_t b) { return b == 0; }));
    }
    auto sent = v1::parse_payloads(v1::payload_type::hash, plain);
    auto read = open_hashed(s, k, mid, *opened, got->hdr.next);
    if (tamper) {
        // CBC garbles the flipped byte's block: refused when that reaches what HASH(1) covers.
        if ((flipped / block) * block < 4 + h1.size() + covered_rest) {
            require(!read.has_value());
        }
    } else if (sent) {
        // The chain read from the padded body: the same payloads, and HASH(1) verifies.
        require(read.has_value());
        require(*read == sent->payloads);
        const auto again = v1::serialize_payloads(*read);
        auto back = v1::parse_payloads(again.first, again.data);
        require(back.has_value() && back->payloads == *read);
    }

    // The raw input as a received body, cut to whole blocks: decrypts, parses or is refused.
    const size_t whole = rest.size() - rest.size() % block;
    if (whole > 0) {
        bytes iv = iv0;
        auto raw = c::decrypt(s.encr, k.enc_key.view(), iv, rest.first(whole));
        require(raw.has_value() && raw->size() == whole);
        (void)open_hashed(s, k, mid, *raw, first);
    }
    return 0;
}
