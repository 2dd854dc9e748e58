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

union sa_keys {
    gcm_key_data gcm;
    cbc_keys cbc;
};

}  // namespace dmvpn::crypto::detail
