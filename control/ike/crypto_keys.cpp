// Key material handling, the PRF (HMAC through EVP_MAC), prf+ and the IKEv2 key schedule
// (RFC 7296 sections 2.13, 2.14, 2.17, 2.18), and the AUTH octets (section 2.15).
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <array>
#include <cstring>

#include "control/ike/crypto.hpp"
#include "control/ike/crypto_internal.hpp"
#include "control/ike/message.hpp"

namespace dmvpn::ike::crypto {

// ---- secret ----

secret::secret(cspan data) : _v(data.begin(), data.end()) {}
secret::secret(size_t n) : _v(n, 0) {}
secret::secret(const secret& o) : _v(o._v) {}
secret::secret(secret&& o) noexcept : _v(std::move(o._v)) { o._v.clear(); }
secret& secret::operator=(const secret& o) {
    if (this != &o) {
        wipe();
        _v = o._v;
    }
    return *this;
}
secret& secret::operator=(secret&& o) noexcept {
    if (this != &o) {
        wipe();
        _v = std::move(o._v);
        o._v.clear();
    }
    return *this;
}
secret::~secret() { wipe(); }

void secret::wipe() noexcept {
    if (!_v.empty()) {
        OPENSSL_cleanse(_v.data(), _v.size());
    }
    _v.clear();
}

secret secret::slice(size_t off, size_t n) const {
    if (off > _v.size() || n > _v.size() - off) {
        return secret{};
    }
    return secret{cspan{_v.data() + off, n}};
}

bool equal(cspan a, cspan b) noexcept {
    if (a.size() != b.size()) {
        return false;
    }
    if (a.empty()) {
        return true;
    }
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool random_bytes(std::span<uint8_t> out) noexcept {
    if (out.empty()) {
        return true;
    }
    return RAND_bytes(out.data(), static_cast<int>(out.size())) == 1;
}

// ---- digests and HMAC ----

namespace detail {

const char* prf_digest(uint16_t prf) noexcept {
    switch (prf) {
        case prf_id::hmac_sha1:
            return "SHA1";
        case prf_id::hmac_sha2_256:
            return "SHA256";
        case prf_id::hmac_sha2_384:
            return "SHA384";
        case prf_id::hmac_sha2_512:
            return "SHA512";
        default:
            return nullptr;
    }
}

integ_params integ_info(uint16_t integ) noexcept {
    switch (integ) {
        case integ_id::hmac_sha1_96:
            return {"SHA1", 20, 12};
        case integ_id::hmac_sha2_256_128:
            return {"SHA256", 32, 16};
        case integ_id::hmac_sha2_384_192:
            return {"SHA384", 48, 24};
        case integ_id::hmac_sha2_512_256:
            return {"SHA512", 64, 32};
        default:
            return {};
    }
}

size_t encr_key_size(uint16_t encr, uint16_t bits) noexcept {
    if (bits != 128 && bits != 256) {
        return 0;
    }
    switch (encr) {
        case encr_id::aes_cbc:
            return bits / 8;
        case encr_id::aes_gcm_16:
            return bits / 8 + 4;  // key || salt (RFC 5282 section 7.1)
        default:
            return 0;
    }
}

namespace {

// EVP_MAC is reference-counted and thread-safe once fetched: fetch HMAC once.
EVP_MAC* hmac_mac() {
    static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    return mac;
}

struct mac_ctx_free {
    void operator()(EVP_MAC_CTX* c) const noexcept { EVP_MAC_CTX_free(c); }
};

}  // namespace

secret hmac(const char* digest, cspan key, std::initializer_list<cspan> parts) {
    EVP_MAC* mac = hmac_mac();
    if (mac == nullptr || digest == nullptr) {
        return secret{};
    }
    std::unique_ptr<EVP_MAC_CTX, mac_ctx_free> ctx{EVP_MAC_CTX_new(mac)};
    if (!ctx) {
        return secret{};
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest), 0),
        OSSL_PARAM_construct_end()};
    // A zero-length key still needs a non-null pointer, or the provider reuses the previous key.
    static const uint8_t no_key = 0;
    const uint8_t* k = key.empty() ? &no_key : key.data();
    if (EVP_MAC_init(ctx.get(), k, key.size(), params) != 1) {
        return secret{};
    }
    for (cspan p : parts) {
        if (!p.empty() && EVP_MAC_update(ctx.get(), p.data(), p.size()) != 1) {
            return secret{};
        }
    }
    secret out(EVP_MAC_CTX_get_mac_size(ctx.get()));
    size_t len = 0;
    if (EVP_MAC_final(ctx.get(), out.data(), &len, out.size()) != 1 || len != out.size()) {
        return secret{};
    }
    return out;
}

}  // namespace detail

// ---- PRF ----

bool supported_prf(uint16_t prf) noexcept { return detail::prf_digest(prf) != nullptr; }

size_t prf_size(uint16_t prf) noexcept {
    switch (prf) {
        case prf_id::hmac_sha1:
            return 20;
        case prf_id::hmac_sha2_256:
            return 32;
        case prf_id::hmac_sha2_384:
            return 48;
        case prf_id::hmac_sha2_512:
            return 64;
        default:
            return 0;
    }
}

secret prf(uint16_t prf, cspan key, cspan data) {
    return detail::hmac(detail::prf_digest(prf), key, {data});
}

// An unsupported PRF, or more than 255 blocks (section 2.13), yields an empty secret.
secret prf_plus(uint16_t prf, cspan key, cspan seed, size_t n) {
    const size_t h = prf_size(prf);
    if (h == 0 || n > 255 * h) {
        return secret{};
    }
    secret out(n);
    secret t;
    size_t done = 0;
    for (uint8_t counter = 1; done < n; ++counter) {
        const uint8_t c[1] = {counter};
        t = detail::hmac(detail::prf_digest(prf), key, {t.view(), seed, cspan{c, 1}});
        if (t.size() != h) {
            return secret{};
        }
        const size_t take = std::min(h, n - done);
        std::memcpy(out.data() + done, t.data(), take);
        done += take;
    }
    return out;
}

// ---- key schedule ----

namespace {

std::array<uint8_t, 8> be64(uint64_t v) {
    std::array<uint8_t, 8> b{};
    for (int i = 7; i >= 0; --i) {
        b[static_cast<size_t>(i)] = static_cast<uint8_t>(v);
        v >>= 8;
    }
    return b;
}

bytes concat(std::initializer_list<cspan> parts) {
    bytes out;
    for (cspan p : parts) {
        out.insert(out.end(), p.begin(), p.end());
    }
    return out;
}

// The same, for parts holding key material: the result is wiped when dropped.
secret concat_secret(std::initializer_list<cspan> parts) {
    size_t n = 0;
    for (cspan p : parts) {
        n += p.size();
    }
    secret out(n);
    size_t off = 0;
    for (cspan p : parts) {
        if (!p.empty()) {
            std::memcpy(out.data() + off, p.data(), p.size());
        }
        off += p.size();
    }
    return out;
}

// {SK_d, SK_ai, SK_ar, SK_ei, SK_er, SK_pi, SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
ike_keys split_keys(const ike_suite& s, const secret& skeyseed, cspan ni, cspan nr, uint64_t spi_i,
                    uint64_t spi_r) {
    ike_keys k;
    const size_t d = prf_size(s.prf);
    const size_t a = detail::integ_info(s.integ).key_size;
    const size_t e = detail::encr_key_size(s.encr, s.encr_bits);
    if (d == 0 || e == 0 || skeyseed.empty()) {
        return k;
    }
    const auto si = be64(spi_i);
    const auto sr = be64(spi_r);
    const bytes seed = concat({ni, nr, si, sr});
    const secret all = prf_plus(s.prf, skeyseed.view(), seed, d + 2 * a + 2 * e + 2 * d);
    if (all.empty()) {
        return k;
    }
    size_t off = 0;
    auto take = [&](size_t n) {
        secret part = all.slice(off, n);
        off += n;
        return part;
    };
    k.sk_d = take(d);
    k.initiator.integ_key = take(a);
    k.responder.integ_key = take(a);
    k.initiator.encr_key = take(e);
    k.responder.encr_key = take(e);
    k.sk_pi = take(d);
    k.sk_pr = take(d);
    for (sk_keys* dir : {&k.initiator, &k.responder}) {
        dir->encr = s.encr;
        dir->encr_bits = s.encr_bits;
        dir->integ = s.integ;
    }
    return k;
}

}  // namespace

ike_keys derive_ike_keys(const ike_suite& s, cspan ni, cspan nr, cspan g_ir, uint64_t spi_i,
                         uint64_t spi_r) {
    // Every PRF supported here is an HMAC, which takes a key of any length: the whole nonces.
    const bytes key = concat({ni, nr});
    const secret skeyseed = prf(s.prf, key, g_ir);
    return split_keys(s, skeyseed, ni, nr, spi_i, spi_r);
}

ike_keys derive_rekeyed_ike_keys(uint16_t old_prf, cspan old_sk_d, const ike_suite& s, cspan g_ir,
                                 cspan ni, cspan nr, uint64_t spi_i, uint64_t spi_r) {
    const secret data = concat_secret({g_ir, ni, nr});
    const secret skeyseed = prf(old_prf, old_sk_d, data.view());
    return split_keys(s, skeyseed, ni, nr, spi_i, spi_r);
}

secret child_keymat(uint16_t prf, cspan sk_d, std::optional<cspan> g_ir, cspan ni, cspan nr,
                    size_t n) {
    const secret seed = g_ir ? concat_secret({*g_ir, ni, nr}) : concat_secret({ni, nr});
    return prf_plus(prf, sk_d, seed.view(), n);
}

// ---- AUTH octets ----

bytes signed_octets(cspan real_message, cspan peer_nonce, uint16_t prf_alg, cspan sk_p,
                    cspan id_payload_body) {
    const secret mac = prf(prf_alg, sk_p, id_payload_body);
    return concat({real_message, peer_nonce, mac.view()});
}

secret psk_auth(uint16_t prf_alg, cspan psk, cspan octets) {
    static constexpr char pad[] = "Key Pad for IKEv2";  // 17 octets, no terminating NUL
    const secret inner =
        prf(prf_alg, psk, cspan{reinterpret_cast<const uint8_t*>(pad), sizeof(pad) - 1});
    return prf(prf_alg, inner.view(), octets);
}

std::vector<uint16_t> signature_hash_algorithms() {
    // RFC 7427 section 7 / IANA: 2 = SHA2-256, 3 = SHA2-384, 4 = SHA2-512.
    return {2, 3, 4};
}

}  // namespace dmvpn::ike::crypto
