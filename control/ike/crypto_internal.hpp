// What the crypto_*.cpp files share: digest and MAC helpers (no OpenSSL header here; the
// OpenSSL types are only forward-declared so the header stays usable outside control/ike).
#pragma once

#include <cstdint>
#include <initializer_list>

#include "control/ike/crypto.hpp"

struct evp_md_st;  // OpenSSL's EVP_MD

namespace dmvpn::ike::crypto::detail {

// The OpenSSL digest name behind a PRF ("SHA256", ...), nullptr if unsupported.
const char* prf_digest(uint16_t prf) noexcept;

// HMAC(digest, key, concatenation of `parts`); empty on an OpenSSL failure.
secret hmac(const char* digest, cspan key, std::initializer_list<cspan> parts);

// The integrity transform: digest name, key size and truncated ICV size (RFC 4868, RFC 2404).
struct integ_params {
    const char* digest = nullptr;
    size_t key_size = 0;
    size_t icv_size = 0;
};
integ_params integ_info(uint16_t integ) noexcept;

// Encryption key size in bytes for the SK payload, including GCM's 4-byte salt; 0 if unsupported.
size_t encr_key_size(uint16_t encr, uint16_t bits) noexcept;

}  // namespace dmvpn::ike::crypto::detail

struct evp_pkey_st;  // OpenSSL's EVP_PKEY

namespace dmvpn::ike::crypto::detail {

// Checks AUTH data of `method` over `octets` with a public key (crypto_auth.cpp).
wire::result<bool, std::string> verify_auth(evp_pkey_st* key, uint8_t method, cspan auth_data,
                                            cspan octets);
// An IKEv1 RSA signature (PKCS#1 v1.5 type 1 over `octets`, no DigestInfo) with an RSA key.
bool verify_pkcs1_raw(evp_pkey_st* key, cspan sig, cspan octets);

}  // namespace dmvpn::ike::crypto::detail
