// IKEv2's cryptography, all of it from OpenSSL (libcrypto): Diffie-Hellman, PRF and prf+,
// the key schedule (RFC 7296 sections 2.13, 2.14, 2.17), the SK payload's protection
// (AES-CBC + HMAC-SHA2, RFC 7296 section 3.14 / RFC 4868; AES-GCM, RFC 5282), AUTH (shared key
// and signatures: RSA, ECDSA, RFC 7427), X.509 path and identity checks. No OpenSSL header
// leaves this folder's .cpp files. Nothing here is hand-written cryptography.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/wire/result.hpp"

namespace dmvpn::ike::crypto {

using bytes = std::vector<uint8_t>;
using cspan = std::span<const uint8_t>;

// Key material: wiped (OPENSSL_cleanse) when destroyed or reassigned; never printed.
class secret {
public:
    secret() = default;
    explicit secret(cspan data);
    explicit secret(size_t n);  // n zero bytes
    secret(const secret& o);
    secret(secret&& o) noexcept;
    secret& operator=(const secret& o);
    secret& operator=(secret&& o) noexcept;
    ~secret();

    const uint8_t* data() const noexcept { return _v.data(); }
    uint8_t* data() noexcept { return _v.data(); }
    size_t size() const noexcept { return _v.size(); }
    bool empty() const noexcept { return _v.empty(); }
    cspan view() const noexcept { return {_v.data(), _v.size()}; }
    // The sub-range [off, off+n) as a new secret.
    secret slice(size_t off, size_t n) const;

private:
    void wipe() noexcept;
    std::vector<uint8_t> _v;
};

// Constant time (CRYPTO_memcmp); false when the lengths differ.
bool equal(cspan a, cspan b) noexcept;
// Cryptographically random bytes (RAND_bytes); false if the generator failed.
bool random_bytes(std::span<uint8_t> out) noexcept;

// ---- Diffie-Hellman (groups 14, 19, 20, 31) ----
bool supported_group(uint16_t group) noexcept;
// The KE payload's data length for a group (256, 64, 96, 32), 0 if unsupported.
size_t public_value_size(uint16_t group) noexcept;

class key_exchange {
public:
    // A fresh private value for `group` (dh_id); the error says why (unsupported group, ...).
    static wire::result<std::unique_ptr<key_exchange>, std::string> generate(uint16_t group);
    // A given private value (big-endian for MODP and ECP, RFC 7748's 32 bytes for Curve25519):
    // for known-answer tests against published vectors; the public value is computed here.
    static wire::result<std::unique_ptr<key_exchange>, std::string> from_private(
        uint16_t group, cspan private_value);
    virtual ~key_exchange() = default;
    uint16_t group() const noexcept { return _group; }
    // What goes into the KE payload: MODP as a big-endian value padded to the prime's size,
    // ECP as x || y (RFC 5903 section 7), Curve25519 as the 32-byte u (RFC 8031).
    virtual bytes public_value() const = 0;
    // g^ir. Refuses a peer value of the wrong size or not on the curve / out of range
    // (RFC 7296 section 5.12, RFC 6989): the error names it.
    virtual wire::result<secret, std::string> shared_secret(cspan peer_public) const = 0;
    // MODP: the private exponent's length in bits (generate() draws twice the group's
    // security strength: control/ike/README.md); 0 for the other families.
    virtual size_t private_bits() const { return 0; }

protected:
    explicit key_exchange(uint16_t g) : _group(g) {}
    uint16_t _group;
};

// ---- PRF ----
bool supported_prf(uint16_t prf) noexcept;  // prf_id::hmac_sha2_256/384/512 (and sha1)
size_t prf_size(uint16_t prf) noexcept;     // output (and preferred key) size
secret prf(uint16_t prf, cspan key, cspan data);
// prf+ (RFC 7296 section 2.13): the first n bytes of T1 | T2 | ...
secret prf_plus(uint16_t prf, cspan key, cspan seed, size_t n);

// ---- SK payload protection ----
// One IKE SA's negotiated suite (transform IDs from control/ike/message.hpp).
struct ike_suite {
    uint16_t encr = 0;       // encr_id::aes_cbc or aes_gcm_16
    uint16_t encr_bits = 0;  // 128 or 256
    uint16_t integ = 0;      // integ_id (none for GCM)
    uint16_t prf = 0;        // prf_id
    uint16_t dh = 0;         // dh_id
};
bool supported_encr(uint16_t encr, uint16_t bits) noexcept;
bool supported_integ(uint16_t integ) noexcept;

// One direction's keys (SK_ei + SK_ai, or SK_er + SK_ar). For GCM `encr` holds the key and the
// 4-byte salt (RFC 5282 section 7.1).
struct sk_keys {
    uint16_t encr = 0;
    uint16_t encr_bits = 0;
    uint16_t integ = 0;
    secret encr_key;
    secret integ_key;
};
struct ike_keys {
    secret sk_d;
    sk_keys initiator;  // SK_ei, SK_ai: what the original initiator sends with
    sk_keys responder;  // SK_er, SK_ar
    secret sk_pi;
    secret sk_pr;
};
// SKEYSEED = prf(Ni | Nr, g^ir); {SK_d, SK_ai, SK_ar, SK_ei, SK_er, SK_pi, SK_pr} = prf+(SKEYSEED,
// Ni | Nr | SPIi | SPIr) (section 2.14). Ni/Nr are truncated for the key as the RFC says when
// the PRF has a fixed key size (section 2.14: for HMAC the whole nonces are the key).
ike_keys derive_ike_keys(const ike_suite& s, cspan ni, cspan nr, cspan g_ir, uint64_t spi_i,
                         uint64_t spi_r);
// IKE SA rekey (section 2.18): SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), with the old
// SA's PRF; keys from the new SA's suite.
ike_keys derive_rekeyed_ike_keys(uint16_t old_prf, cspan old_sk_d, const ike_suite& s, cspan g_ir,
                                 cspan ni, cspan nr, uint64_t spi_i, uint64_t spi_r);
// KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr) (section 2.17), `n` bytes: the caller takes the
// initiator-to-responder keys first, encryption key before integrity key.
secret child_keymat(uint16_t prf, cspan sk_d, std::optional<cspan> g_ir, cspan ni, cspan nr,
                    size_t n);

// Bytes SK adds around `plaintext_len` bytes of inner payloads: IV + padding + pad length +
// ICV. The message length field must count them before protect() runs (it is authenticated).
size_t protected_size(const sk_keys& k, size_t plaintext_len) noexcept;
// The SK (or SKF) body: IV || E(plaintext || padding || pad length) || ICV. `aad` is everything
// of the message before the body: the IKE header (final length) and the SK payload's generic
// header (plus SKF's fragment number and total). CBC: the ICV is HMAC over aad || IV ||
// ciphertext, truncated (RFC 4868). GCM: AAD as RFC 5282 section 5.1, 8-byte IV, 16-byte ICV.
wire::result<bytes, std::string> protect(const sk_keys& k, cspan aad, cspan plaintext);
// protect() with the IV given (16 bytes CBC, 8 bytes GCM) instead of drawn at random: for
// known-answer tests only. An IV must never repeat under one key.
wire::result<bytes, std::string> protect_with_iv(const sk_keys& k, cspan aad, cspan plaintext,
                                                 cspan iv);
// The inner payload chain, or why not (ICV mismatch, bad padding, short body). The ICV is
// checked in constant time before anything is decrypted (CBC).
wire::result<bytes, std::string> unprotect(const sk_keys& k, cspan aad, cspan body);

// ---- AUTH ----
// InitiatorSignedOctets / ResponderSignedOctets (section 2.15): RealMessage | NonceData |
// prf(SK_p, RestOfIDPayload), where RestOfIDPayload is the ID payload body (type, 3 reserved
// octets, data).
bytes signed_octets(cspan real_message, cspan peer_nonce, uint16_t prf, cspan sk_p,
                    cspan id_payload_body);
// Shared Key MIC: prf(prf(Shared Secret, "Key Pad for IKEv2"), SignedOctets).
secret psk_auth(uint16_t prf, cspan psk, cspan octets);

class certificate;
class private_key {
public:
    // PEM (PKCS#8 or traditional RSA/EC); the error names the file and what was wrong.
    static wire::result<std::unique_ptr<private_key>, std::string> load_pem(cspan pem,
                                                                            std::string_view what);
    ~private_key();
    bool is_rsa() const noexcept;
    bool is_ecdsa() const noexcept;
    // The AUTH payload's data for `method` (auth_method::rsa_signature, ecdsa_*, or
    // digital_signature, whose data starts with the RFC 7427 AlgorithmIdentifier).
    wire::result<bytes, std::string> sign(uint8_t method, cspan octets) const;
    // IKEv1's RSA signature (RFC 2409 section 5.1): PKCS#1 v1.5 type 1 padding over the octets
    // themselves (HASH_I or HASH_R), no DigestInfo; RSA keys only.
    wire::result<bytes, std::string> sign_pkcs1_raw(cspan octets) const;
    struct impl;

private:
    explicit private_key(std::unique_ptr<impl> i);
    std::unique_ptr<impl> _impl;
};

class certificate {
public:
    static wire::result<std::unique_ptr<certificate>, std::string> from_der(cspan der);
    // Every certificate in a PEM file (a chain, or a CA bundle).
    static wire::result<std::vector<std::unique_ptr<certificate>>, std::string> load_pem(
        cspan pem, std::string_view what);
    ~certificate();
    bytes der() const;
    std::string subject() const;  // RFC 2253 text, for show commands and logs
    std::string issuer() const;
    bool is_rsa() const noexcept;
    bool is_ecdsa() const noexcept;
    // Does the certificate carry the identity of an ID payload (section 3.5: ID_IPV4_ADDR and
    // ID_FQDN and ID_RFC822_ADDR against subjectAltName, ID_DER_ASN1_DN against the subject)?
    bool matches_identity(uint8_t id_type, cspan id_data) const;
    // Checks the AUTH payload's data (method as for private_key::sign) over `octets` with this
    // certificate's public key; RFC 7427's AlgorithmIdentifier must name a hash we accept.
    wire::result<bool, std::string> verify(uint8_t method, cspan auth_data, cspan octets) const;
    // Checks an IKEv1 RSA signature (as private_key::sign_pkcs1_raw) with the certificate's key;
    // false for a non-RSA key.
    bool verify_pkcs1_raw(cspan sig, cspan octets) const;
    // SHA-1 of the SubjectPublicKeyInfo (what CERTREQ carries for a CA).
    bytes key_hash() const;
    // The subject name, DER (what an IKEv1 CR names a CA by: RFC 2408 section 3.10).
    bytes subject_der() const;
    struct impl;

private:
    friend class trust_store;  // hands the certificates to OpenSSL's path validation
    explicit certificate(std::unique_ptr<impl> i);
    std::unique_ptr<impl> _impl;
};

// Trust anchors (the CA certificates of `ike.ca`) and path validation.
class trust_store {
public:
    trust_store();
    ~trust_store();
    void add_anchor(std::unique_ptr<certificate> ca);
    // The leaf, chained through `intermediates` to an anchor, valid at `now_unix`; the error
    // says why not (unknown issuer, expired, signature, ...). No network: no CRL/OCSP fetch.
    wire::result<bool, std::string> verify(const certificate& leaf,
                                           const std::vector<const certificate*>& intermediates,
                                           int64_t now_unix) const;
    // The CERTREQ data for our anchors: their key hashes, concatenated.
    bytes certreq_data() const;
    // The anchors' subject names, DER (IKEv1's CR payloads, one per CA).
    std::vector<bytes> subjects_der() const;
    size_t size() const noexcept;
    struct impl;

private:
    std::unique_ptr<impl> _impl;
};

// RFC 7427 SIGNATURE_HASH_ALGORITHMS values we offer/accept (SHA2-256, 384, 512).
std::vector<uint16_t> signature_hash_algorithms();

}  // namespace dmvpn::ike::crypto
