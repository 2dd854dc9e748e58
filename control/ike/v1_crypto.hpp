// IKEv1's cryptography (RFC 2409), all of it from OpenSSL through crypto.hpp's helpers: the
// negotiated hash as PRF (HMAC) and as plain digest, the Phase 1 key schedule (SKEYID,
// SKEYID_d/a/e, the encryption key of appendix B), the CBC encryption of ISAKMP bodies with the
// IV rules of appendix B, the HASH payloads of Main Mode, Quick Mode and Informational
// exchanges, and Quick Mode's KEYMAT. No OpenSSL header leaves the .cpp.
#pragma once

#include <cstdint>
#include <optional>

#include "control/ike/crypto.hpp"

namespace dmvpn::ike::v1::crypto {

using ike::crypto::bytes;
using ike::crypto::cspan;
using ike::crypto::secret;

// ISAKMP attribute values (RFC 2409 appendix A).
namespace encr {
inline constexpr uint16_t des = 1;  // refused: not supported at all
inline constexpr uint16_t triple_des = 5;
inline constexpr uint16_t aes = 7;  // RFC 3602, key length attribute 128/192/256
}  // namespace encr
namespace hash {
inline constexpr uint16_t md5 = 1;
inline constexpr uint16_t sha1 = 2;
inline constexpr uint16_t sha256 = 4;
}  // namespace hash
inline constexpr uint16_t auth_psk = 1;
inline constexpr uint16_t auth_rsa_sig = 3;

bool supported_hash(uint16_t h) noexcept;
size_t hash_size(uint16_t h) noexcept;  // 16, 20, 32; 0 if unsupported
// Phase 1 cipher: 3DES (key_bits 0 or 192) or AES-128/192/256.
bool supported_cipher(uint16_t e, uint16_t key_bits) noexcept;
size_t block_size(uint16_t e) noexcept;  // 8 (3DES), 16 (AES)
size_t key_size(uint16_t e, uint16_t key_bits) noexcept;

// prf(key, data...) = HMAC with the negotiated hash.
secret prf(uint16_t h, cspan key, std::initializer_list<cspan> data);
// The hash itself (Phase 1 IV: hash(g^xi | g^xr)).
bytes digest(uint16_t h, std::initializer_list<cspan> data);

struct phase1_keys {
    secret skeyid, skeyid_d, skeyid_a, skeyid_e;
    secret enc_key;  // from SKEYID_e, expanded as appendix B when it is too short
    bytes iv;        // the first Phase 1 IV: hash(g^xi | g^xr), one block
};
// Pre-shared keys: SKEYID = prf(psk, Ni_b | Nr_b); SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R |
// 0), SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1), SKEYID_e likewise with
// SKEYID_a and 2 (RFC 2409 section 5). `gxi`/`gxr`: the KE data of initiator and responder.
phase1_keys derive_phase1(uint16_t h, uint16_t e, uint16_t key_bits, cspan psk, cspan ni, cspan nr,
                          cspan g_xy, uint64_t cky_i, uint64_t cky_r, cspan gxi, cspan gxr);
// Signatures: SKEYID = prf(Ni_b | Nr_b, g^xy), its children as above.
phase1_keys derive_phase1_sig(uint16_t h, uint16_t e, uint16_t key_bits, cspan ni, cspan nr,
                              cspan g_xy, uint64_t cky_i, uint64_t cky_r, cspan gxi, cspan gxr);

// HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b); HASH_R = prf(SKEYID,
// g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b). `sa_b` is the initiator's SA payload body,
// `id_b` the ID payload body (both without the generic header).
secret hash_i(uint16_t h, cspan skeyid, cspan gxi, cspan gxr, uint64_t cky_i, uint64_t cky_r,
              cspan sa_b, cspan idii_b);
secret hash_r(uint16_t h, cspan skeyid, cspan gxi, cspan gxr, uint64_t cky_i, uint64_t cky_r,
              cspan sa_b, cspan idir_b);

// The IV of a Phase 2 (Quick Mode, Informational) exchange: hash(last Phase 1 CBC block |
// M-ID), one block (RFC 2409 appendix B).
bytes phase2_iv(uint16_t h, uint16_t e, cspan last_phase1_block, uint32_t message_id);

// CBC over an ISAKMP body: the plaintext is zero-padded to the block (its payload lengths say
// where it ends). `iv` is replaced by the last ciphertext block, the next message's IV.
wire::result<bytes, std::string> encrypt(uint16_t e, cspan key, bytes& iv, cspan plaintext);
// Decrypts; `iv` likewise becomes the body's last block. The body must be whole blocks.
wire::result<bytes, std::string> decrypt(uint16_t e, cspan key, bytes& iv, cspan body);

// HASH(1) = prf(SKEYID_a, M-ID | rest); HASH(2) = prf(SKEYID_a, M-ID | Ni_b | rest); HASH(3) =
// prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b); Informational: HASH(1) as QM's. `rest` is every
// payload after the HASH payload, with their generic headers.
secret qm_hash1(uint16_t h, cspan skeyid_a, uint32_t mid, cspan rest);
secret qm_hash2(uint16_t h, cspan skeyid_a, uint32_t mid, cspan ni_b, cspan rest);
secret qm_hash3(uint16_t h, cspan skeyid_a, uint32_t mid, cspan ni_b, cspan nr_b);

// KEYMAT = K1 | K2 | ..., K1 = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b), Kn =
// prf(SKEYID_d, Kn-1 | [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b); the first `n` octets. `spi`
// is the SPI the receiving end of that direction chose (RFC 2409 section 5.5).
secret keymat(uint16_t h, cspan skeyid_d, std::optional<cspan> g_qm, uint8_t protocol, uint32_t spi,
              cspan ni_b, cspan nr_b, size_t n);

}  // namespace dmvpn::ike::v1::crypto
