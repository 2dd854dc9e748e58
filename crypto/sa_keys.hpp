// Layout of an SA's key schedules inside sa's opaque key storage; for crypto/*.cpp only.
#pragma once

#include <cstdint>

#include "crypto/imb.hpp"

namespace dmvpn::crypto::detail {

inline constexpr size_t aes_schedule_bytes = 15 * 16;  // AES-256's 14 rounds + 1; AES-128 uses 11

struct cbc_keys {
    alignas(16) uint8_t enc[aes_schedule_bytes];
    alignas(16) uint8_t dec[aes_schedule_bytes];
    // Hash states after one block of key^ipad and key^opad (RFC 2104): what IPsec-MB's HMAC
    // jobs take, so no packet re-hashes the key.
    alignas(16) uint8_t ipad[32];
    alignas(16) uint8_t opad[32];
    alignas(16) uint8_t iv_enc[aes_schedule_bytes];  // AES-128 schedule of the IV generator key
};

inline constexpr size_t des_schedule_words = 16;  // one 48-bit subkey a round, in 64 bits

struct des3_keys {
    alignas(16) uint64_t schedule[3][des_schedule_words];  // K1, K2, K3
    // IPsec-MB's 3DES jobs take the three schedules through an array of pointers (for both
    // directions); it points into this same SA, which never moves.
    const void* schedule_ptr[3];
    alignas(16) uint8_t ipad[32];
    alignas(16) uint8_t opad[32];
    alignas(16) uint8_t iv_enc[aes_schedule_bytes];  // as cbc_keys::iv_enc
};

union sa_keys {
    gcm_key_data gcm;
    cbc_keys cbc;
    des3_keys des3;
};

}  // namespace dmvpn::crypto::detail
