// IKEv1's key schedule, CBC and HASH payloads (see v1_crypto.hpp), through OpenSSL.
#include "control/ike/v1_crypto.hpp"

#include <openssl/evp.h>

#include <fmt/format.h>

#include "control/ike/crypto_internal.hpp"

namespace dmvpn::ike::v1::crypto {

namespace {

const char* digest_name(uint16_t h) noexcept {
    switch (h) {
        case hash::md5:
            return "MD5";
        case hash::sha1:
            return "SHA1";
        case hash::sha256:
            return "SHA256";
        default:
            return nullptr;
    }
}

const char* cipher_name(uint16_t e, uint16_t key_bits) noexcept {
    if (e == encr::triple_des && (key_bits == 0 || key_bits == 192)) {
        return "DES-EDE3-CBC";
    }
    if (e == encr::aes) {
        switch (key_bits) {
            case 128:
                return "AES-128-CBC";
            case 192:
                return "AES-192-CBC";
            case 256:
                return "AES-256-CBC";
            default:
                return nullptr;
        }
    }
    return nullptr;
}

void put32(bytes& b, uint32_t v) {
    for (int i = 3; i >= 0; --i) {
        b.push_back(static_cast<uint8_t>(v >> (8 * i)));
    }
}
void put64(bytes& b, uint64_t v) {
    for (int i = 7; i >= 0; --i) {
        b.push_back(static_cast<uint8_t>(v >> (8 * i)));
    }
}
bytes be32(uint32_t v) {
    bytes b;
    put32(b, v);
    return b;
}
bytes be64(uint64_t v) {
    bytes b;
    put64(b, v);
    return b;
}

struct cipher_ctx_free {
    void operator()(EVP_CIPHER_CTX* c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
struct cipher_free {
    void operator()(EVP_CIPHER* c) const noexcept { EVP_CIPHER_free(c); }
};

wire::result<bytes, std::string> cbc(uint16_t e, cspan key, cspan iv, cspan in, bool enc) {
    const size_t bs = block_size(e);
    const char* name = nullptr;
    if (e == encr::triple_des && key.size() == 24) {
        name = "DES-EDE3-CBC";
    } else if (e == encr::aes) {
        name = cipher_name(e, static_cast<uint16_t>(key.size() * 8));
    }
    if (name == nullptr || bs == 0 || iv.size() != bs || in.size() % bs != 0) {
        return wire::fail(
            fmt::format("cipher {} with a {}-octet key, {}-octet IV, {} octets: "
                        "not usable",
                        e, key.size(), iv.size(), in.size()));
    }
    std::unique_ptr<EVP_CIPHER, cipher_free> c{EVP_CIPHER_fetch(nullptr, name, nullptr)};
    std::unique_ptr<EVP_CIPHER_CTX, cipher_ctx_free> ctx{EVP_CIPHER_CTX_new()};
    bytes out(in.size() + bs);
    int len = 0, fin = 0;
    if (!c || !ctx ||
        EVP_CipherInit_ex2(ctx.get(), c.get(), key.data(), iv.data(), enc ? 1 : 0, nullptr) != 1 ||
        EVP_CIPHER_CTX_set_padding(ctx.get(), 0) != 1 ||
        EVP_CipherUpdate(ctx.get(), out.data(), &len, in.data(), static_cast<int>(in.size())) !=
            1 ||
        EVP_CipherFinal_ex(ctx.get(), out.data() + len, &fin) != 1) {
        return wire::fail(std::string("CBC operation failed"));
    }
    out.resize(static_cast<size_t>(len + fin));
    return out;
}

}  // namespace

bool supported_hash(uint16_t h) noexcept { return digest_name(h) != nullptr; }

size_t hash_size(uint16_t h) noexcept {
    switch (h) {
        case hash::md5:
            return 16;
        case hash::sha1:
            return 20;
        case hash::sha256:
            return 32;
        default:
            return 0;
    }
}

bool supported_cipher(uint16_t e, uint16_t key_bits) noexcept {
    return cipher_name(e, key_bits) != nullptr;
}

size_t block_size(uint16_t e) noexcept {
    return e == encr::triple_des ? 8 : e == encr::aes ? 16 : 0;
}

size_t key_size(uint16_t e, uint16_t key_bits) noexcept {
    if (!supported_cipher(e, key_bits)) {
        return 0;
    }
    return e == encr::triple_des ? 24 : key_bits / 8;
}

secret prf(uint16_t h, cspan key, std::initializer_list<cspan> data) {
    return ike::crypto::detail::hmac(digest_name(h), key, data);
}

bytes digest(uint16_t h, std::initializer_list<cspan> data) {
    const char* name = digest_name(h);
    std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx{EVP_MD_CTX_new(), EVP_MD_CTX_free};
    bytes out(EVP_MAX_MD_SIZE);
    unsigned len = 0;
    if (name == nullptr || !ctx ||
        EVP_DigestInit_ex2(ctx.get(), EVP_get_digestbyname(name), nullptr) != 1) {
        return {};
    }
    for (cspan d : data) {
        if (!d.empty() && EVP_DigestUpdate(ctx.get(), d.data(), d.size()) != 1) {
            return {};
        }
    }
    if (EVP_DigestFinal_ex(ctx.get(), out.data(), &len) != 1) {
        return {};
    }
    out.resize(len);
    return out;
}

namespace {

// SKEYID_d, SKEYID_a, SKEYID_e, the encryption key and the first IV from `k.skeyid`.
phase1_keys expand_phase1(phase1_keys k, uint16_t h, uint16_t e, uint16_t key_bits, cspan g_xy,
                          uint64_t cky_i, uint64_t cky_r, cspan gxi, cspan gxr) {
    const bytes ci = be64(cky_i), cr = be64(cky_r);
    const uint8_t zero = 0, one = 1, two = 2;
    k.skeyid_d = prf(h, k.skeyid.view(), {g_xy, ci, cr, cspan{&zero, 1}});
    k.skeyid_a = prf(h, k.skeyid.view(), {k.skeyid_d.view(), g_xy, ci, cr, cspan{&one, 1}});
    k.skeyid_e = prf(h, k.skeyid.view(), {k.skeyid_a.view(), g_xy, ci, cr, cspan{&two, 1}});
    const size_t need = key_size(e, key_bits);
    if (k.skeyid_e.size() >= need) {
        k.enc_key = k.skeyid_e.slice(0, need);
    } else {
        // Appendix B: Ka = K1 | K2 | ..., K1 = prf(SKEYID_e, 0), Kn = prf(SKEYID_e, Kn-1).
        bytes ka;
        secret kn = prf(h, k.skeyid_e.view(), {cspan{&zero, 1}});
        while (ka.size() < need && !kn.empty()) {
            ka.insert(ka.end(), kn.data(), kn.data() + kn.size());
            kn = prf(h, k.skeyid_e.view(), {kn.view()});
        }
        ka.resize(need);
        k.enc_key = secret(ka);
        std::fill(ka.begin(), ka.end(), 0);
    }
    k.iv = digest(h, {gxi, gxr});
    k.iv.resize(block_size(e));
    return k;
}

}  // namespace

phase1_keys derive_phase1(uint16_t h, uint16_t e, uint16_t key_bits, cspan psk, cspan ni, cspan nr,
                          cspan g_xy, uint64_t cky_i, uint64_t cky_r, cspan gxi, cspan gxr) {
    phase1_keys k;
    k.skeyid = prf(h, psk, {ni, nr});
    return expand_phase1(std::move(k), h, e, key_bits, g_xy, cky_i, cky_r, gxi, gxr);
}

phase1_keys derive_phase1_sig(uint16_t h, uint16_t e, uint16_t key_bits, cspan ni, cspan nr,
                              cspan g_xy, uint64_t cky_i, uint64_t cky_r, cspan gxi, cspan gxr) {
    secret nonces(ni.size() + nr.size());
    std::copy(ni.begin(), ni.end(), nonces.data());
    std::copy(nr.begin(), nr.end(), nonces.data() + ni.size());
    phase1_keys k;
    k.skeyid = prf(h, nonces.view(), {g_xy});
    return expand_phase1(std::move(k), h, e, key_bits, g_xy, cky_i, cky_r, gxi, gxr);
}

secret hash_i(uint16_t h, cspan skeyid, cspan gxi, cspan gxr, uint64_t cky_i, uint64_t cky_r,
              cspan sa_b, cspan idii_b) {
    const bytes ci = be64(cky_i), cr = be64(cky_r);
    return prf(h, skeyid, {gxi, gxr, ci, cr, sa_b, idii_b});
}

secret hash_r(uint16_t h, cspan skeyid, cspan gxi, cspan gxr, uint64_t cky_i, uint64_t cky_r,
              cspan sa_b, cspan idir_b) {
    const bytes ci = be64(cky_i), cr = be64(cky_r);
    return prf(h, skeyid, {gxr, gxi, cr, ci, sa_b, idir_b});
}

bytes phase2_iv(uint16_t h, uint16_t e, cspan last_phase1_block, uint32_t message_id) {
    const bytes mid = be32(message_id);
    bytes iv = digest(h, {last_phase1_block, mid});
    iv.resize(block_size(e));
    return iv;
}

wire::result<bytes, std::string> encrypt(uint16_t e, cspan key, bytes& iv, cspan plaintext) {
    const size_t bs = block_size(e);
    if (bs == 0) {
        return wire::fail(fmt::format("unsupported cipher {}", e));
    }
    bytes padded(plaintext.begin(), plaintext.end());
    padded.resize((plaintext.size() + bs - 1) / bs * bs, 0);
    if (padded.empty()) {
        padded.resize(bs, 0);
    }
    auto out = cbc(e, key, iv, padded, true);
    std::fill(padded.begin(), padded.end(), 0);
    if (out) {
        iv.assign(out.value().end() - static_cast<ptrdiff_t>(bs), out.value().end());
    }
    return out;
}

wire::result<bytes, std::string> decrypt(uint16_t e, cspan key, bytes& iv, cspan body) {
    const size_t bs = block_size(e);
    if (bs == 0 || body.empty() || body.size() % bs != 0) {
        return wire::fail(fmt::format("encrypted body of {} octets is not whole {}-octet blocks",
                                      body.size(), bs));
    }
    auto out = cbc(e, key, iv, body, false);
    if (out) {
        iv.assign(body.end() - static_cast<ptrdiff_t>(bs), body.end());
    }
    return out;
}

secret qm_hash1(uint16_t h, cspan skeyid_a, uint32_t mid, cspan rest) {
    const bytes m = be32(mid);
    return prf(h, skeyid_a, {m, rest});
}

secret qm_hash2(uint16_t h, cspan skeyid_a, uint32_t mid, cspan ni_b, cspan rest) {
    const bytes m = be32(mid);
    return prf(h, skeyid_a, {m, ni_b, rest});
}

secret qm_hash3(uint16_t h, cspan skeyid_a, uint32_t mid, cspan ni_b, cspan nr_b) {
    const bytes m = be32(mid);
    const uint8_t zero = 0;
    return prf(h, skeyid_a, {cspan{&zero, 1}, m, ni_b, nr_b});
}

secret keymat(uint16_t h, cspan skeyid_d, std::optional<cspan> g_qm, uint8_t protocol, uint32_t spi,
              cspan ni_b, cspan nr_b, size_t n) {
    const bytes s = be32(spi);
    const cspan g = g_qm.value_or(cspan{});
    const cspan p{&protocol, 1};
    bytes out;
    secret k = prf(h, skeyid_d, {g, p, s, ni_b, nr_b});
    while (out.size() < n && !k.empty()) {
        out.insert(out.end(), k.data(), k.data() + k.size());
        if (out.size() < n) {
            k = prf(h, skeyid_d, {k.view(), g, p, s, ni_b, nr_b});
        }
    }
    out.resize(std::min(out.size(), n));
    secret r(out);
    std::fill(out.begin(), out.end(), 0);
    return r;
}

}  // namespace dmvpn::ike::v1::crypto
