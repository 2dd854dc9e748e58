// The SK / SKF payload body (RFC 7296 section 3.14): AES-CBC with a truncated HMAC-SHA2 ICV
// (RFC 4868), or AES-GCM with a 16-octet ICV (RFC 5282), through OpenSSL's EVP_CIPHER.
#include <openssl/evp.h>

#include <fmt/format.h>

#include <array>
#include <cstring>

#include "control/ike/crypto.hpp"
#include "control/ike/crypto_internal.hpp"
#include "control/ike/message.hpp"

namespace dmvpn::ike::crypto {

namespace {

constexpr size_t cbc_block = 16;
constexpr size_t cbc_iv = 16;
constexpr size_t gcm_iv = 8;
constexpr size_t gcm_salt = 4;
constexpr size_t gcm_icv = 16;

struct cipher_ctx_free {
    void operator()(EVP_CIPHER_CTX* c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
using cipher_ctx_ptr = std::unique_ptr<EVP_CIPHER_CTX, cipher_ctx_free>;

const EVP_CIPHER* cipher_for(uint16_t encr, uint16_t bits) {
    if (encr == encr_id::aes_cbc) {
        return bits == 128 ? EVP_aes_128_cbc() : bits == 256 ? EVP_aes_256_cbc() : nullptr;
    }
    if (encr == encr_id::aes_gcm_16) {
        return bits == 128 ? EVP_aes_128_gcm() : bits == 256 ? EVP_aes_256_gcm() : nullptr;
    }
    return nullptr;
}

bool is_gcm(const sk_keys& k) { return k.encr == encr_id::aes_gcm_16; }

// The keys are usable for this suite (sizes as the key schedule produced them).
std::optional<std::string> check_keys(const sk_keys& k) {
    const EVP_CIPHER* c = cipher_for(k.encr, k.encr_bits);
    if (c == nullptr) {
        return fmt::format("unsupported encryption {} ({} bits)", k.encr, k.encr_bits);
    }
    if (k.encr_key.size() != detail::encr_key_size(k.encr, k.encr_bits)) {
        return std::string("encryption key has the wrong size");
    }
    if (!is_gcm(k)) {
        const auto ii = detail::integ_info(k.integ);
        if (ii.digest == nullptr) {
            return fmt::format("unsupported integrity {}", k.integ);
        }
        if (k.integ_key.size() != ii.key_size) {
            return std::string("integrity key has the wrong size");
        }
    }
    return std::nullopt;
}

// One pass of EVP_CipherUpdate over `in` into `out` (same length; no padding, stream or
// block-aligned input).
bool run_cipher(EVP_CIPHER_CTX* ctx, cspan in, uint8_t* out) {
    int len = 0;
    if (!in.empty() &&
        (EVP_CipherUpdate(ctx, out, &len, in.data(), static_cast<int>(in.size())) != 1 ||
         static_cast<size_t>(len) != in.size())) {
        return false;
    }
    int fin = 0;
    return EVP_CipherFinal_ex(ctx, out + in.size(), &fin) == 1 && fin == 0;
}

// GCM's 12-byte nonce: the salt (the last 4 bytes of the key material) || the 8-byte IV.
std::array<uint8_t, gcm_salt + gcm_iv> gcm_nonce(const sk_keys& k, cspan iv) {
    std::array<uint8_t, gcm_salt + gcm_iv> nonce{};
    std::memcpy(nonce.data(), k.encr_key.data() + k.encr_key.size() - gcm_salt, gcm_salt);
    std::memcpy(nonce.data() + gcm_salt, iv.data(), gcm_iv);
    return nonce;
}

// Key and nonce set, AAD fed: what both directions of GCM start with.
bool gcm_start(EVP_CIPHER_CTX* ctx, const sk_keys& k, cspan iv, cspan aad, bool encrypt) {
    const auto nonce = gcm_nonce(k, iv);
    int len = 0;
    return EVP_CipherInit_ex(ctx, cipher_for(k.encr, k.encr_bits), nullptr, k.encr_key.data(),
                             nonce.data(), encrypt ? 1 : 0) == 1 &&
           (aad.empty() ||
            EVP_CipherUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1);
}

}  // namespace

bool supported_encr(uint16_t encr, uint16_t bits) noexcept {
    return detail::encr_key_size(encr, bits) != 0;
}

bool supported_integ(uint16_t integ) noexcept {
    return detail::integ_info(integ).digest != nullptr;
}

size_t protected_size(const sk_keys& k, size_t plaintext_len) noexcept {
    if (is_gcm(k)) {
        // Padding may be empty for GCM (RFC 5282 section 3): only the pad length octet.
        return gcm_iv + 1 + gcm_icv;
    }
    const size_t padded = (plaintext_len + 1 + cbc_block - 1) / cbc_block * cbc_block;
    return cbc_iv + (padded - plaintext_len) + detail::integ_info(k.integ).icv_size;
}

wire::result<bytes, std::string> protect(const sk_keys& k, cspan aad, cspan plaintext) {
    std::array<uint8_t, cbc_iv> iv{};
    const size_t n = is_gcm(k) ? gcm_iv : cbc_iv;
    if (!random_bytes(std::span<uint8_t>{iv.data(), n})) {
        return wire::fail(std::string("random generator failed"));
    }
    return protect_with_iv(k, aad, plaintext, cspan{iv.data(), n});
}

wire::result<bytes, std::string> protect_with_iv(const sk_keys& k, cspan aad, cspan plaintext,
                                                 cspan iv) {
    if (auto bad = check_keys(k)) {
        return wire::fail(*bad);
    }
    const bool gcm = is_gcm(k);
    if (iv.size() != (gcm ? gcm_iv : cbc_iv)) {
        return wire::fail(std::string("IV has the wrong size"));
    }
    // plaintext || padding (zeros) || pad length
    const size_t total = protected_size(k, plaintext.size()) + plaintext.size();
    const size_t icv = gcm ? gcm_icv : detail::integ_info(k.integ).icv_size;
    const size_t enc_len = total - iv.size() - icv;
    const size_t pad = enc_len - plaintext.size() - 1;
    secret clear(enc_len);
    if (!plaintext.empty()) {
        std::memcpy(clear.data(), plaintext.data(), plaintext.size());
    }
    clear.data()[enc_len - 1] = static_cast<uint8_t>(pad);

    bytes out(total);
    std::memcpy(out.data(), iv.data(), iv.size());
    uint8_t* ct = out.data() + iv.size();
    cipher_ctx_ptr ctx{EVP_CIPHER_CTX_new()};
    if (!ctx) {
        return wire::fail(std::string("cipher context allocation failed"));
    }
    const EVP_CIPHER* c = cipher_for(k.encr, k.encr_bits);
    if (gcm) {
        if (!gcm_start(ctx.get(), k, iv, aad, true) || !run_cipher(ctx.get(), clear.view(), ct) ||
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(gcm_icv),
                                ct + enc_len) != 1) {
            return wire::fail(std::string("AES-GCM encryption failed"));
        }
        return out;
    }
    if (EVP_EncryptInit_ex(ctx.get(), c, nullptr, k.encr_key.data(), iv.data()) != 1 ||
        EVP_CIPHER_CTX_set_padding(ctx.get(), 0) != 1 || !run_cipher(ctx.get(), clear.view(), ct)) {
        return wire::fail(std::string("AES-CBC encryption failed"));
    }
    const auto ii = detail::integ_info(k.integ);
    const secret mac =
        detail::hmac(ii.digest, k.integ_key.view(), {aad, cspan{out.data(), iv.size() + enc_len}});
    if (mac.size() < icv) {
        return wire::fail(std::string("HMAC failed"));
    }
    std::memcpy(ct + enc_len, mac.data(), icv);
    return out;
}

wire::result<bytes, std::string> unprotect(const sk_keys& k, cspan aad, cspan body) {
    if (auto bad = check_keys(k)) {
        return wire::fail(*bad);
    }
    const bool gcm = is_gcm(k);
    const size_t iv_len = gcm ? gcm_iv : cbc_iv;
    const size_t icv = gcm ? gcm_icv : detail::integ_info(k.integ).icv_size;
    if (body.size() < iv_len + icv + (gcm ? 1 : cbc_block)) {
        return wire::fail(fmt::format("encrypted body too short ({} bytes)", body.size()));
    }
    const size_t enc_len = body.size() - iv_len - icv;
    if (!gcm && enc_len % cbc_block != 0) {
        return wire::fail(
            fmt::format("ciphertext ({} bytes) is not a multiple of the block size", enc_len));
    }
    const cspan iv = body.subspan(0, iv_len);
    const cspan ct = body.subspan(iv_len, enc_len);
    const cspan tag = body.subspan(iv_len + enc_len, icv);
    secret clear(enc_len);
    cipher_ctx_ptr ctx{EVP_CIPHER_CTX_new()};
    if (!ctx) {
        return wire::fail(std::string("cipher context allocation failed"));
    }
    const EVP_CIPHER* c = cipher_for(k.encr, k.encr_bits);
    if (gcm) {
        std::array<uint8_t, gcm_icv> tag_copy{};
        std::memcpy(tag_copy.data(), tag.data(), gcm_icv);
        if (!gcm_start(ctx.get(), k, iv, aad, false) ||
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(gcm_icv),
                                tag_copy.data()) != 1) {
            return wire::fail(std::string("AES-GCM decryption setup failed"));
        }
        // The tag is checked by EVP_DecryptFinal_ex (inside run_cipher); nothing decrypted is
        // returned when it fails.
        if (!run_cipher(ctx.get(), ct, clear.data())) {
            return wire::fail(std::string("integrity check failed (ICV mismatch)"));
        }
    } else {
        const auto ii = detail::integ_info(k.integ);
        const secret mac =
            detail::hmac(ii.digest, k.integ_key.view(), {aad, body.subspan(0, iv_len + enc_len)});
        if (mac.size() < icv || !equal(mac.view().subspan(0, icv), tag)) {
            return wire::fail(std::string("integrity check failed (ICV mismatch)"));
        }
        if (EVP_DecryptInit_ex(ctx.get(), c, nullptr, k.encr_key.data(), iv.data()) != 1 ||
            EVP_CIPHER_CTX_set_padding(ctx.get(), 0) != 1 ||
            !run_cipher(ctx.get(), ct, clear.data())) {
            return wire::fail(std::string("AES-CBC decryption failed"));
        }
    }
    const size_t pad = clear.data()[enc_len - 1];
    if (pad + 1 > enc_len) {
        return wire::fail(
            fmt::format("pad length {} exceeds the {} decrypted bytes", pad, enc_len));
    }
    const size_t n = enc_len - pad - 1;
    return bytes(clear.data(), clear.data() + n);
}

}  // namespace dmvpn::ike::crypto
