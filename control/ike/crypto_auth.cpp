// Signature AUTH (RFC 7296 section 3.8, RFC 4754, RFC 7427) with OpenSSL's EVP_PKEY: RSA
// PKCS#1 v1.5, ECDSA with raw r || s (methods 9-11), and Digital Signature (method 14) with its
// length-prefixed AlgorithmIdentifier.
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <fmt/format.h>

#include "control/ike/crypto.hpp"
#include "control/ike/crypto_internal.hpp"
#include "control/ike/message.hpp"

namespace dmvpn::ike::crypto {

struct private_key::impl {
    EVP_PKEY* key = nullptr;
    ~impl() { EVP_PKEY_free(key); }
};

namespace {

using sig_result = wire::result<bytes, std::string>;

struct md_ctx_free {
    void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
};
using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, md_ctx_free>;

// The hash an ECDSA key of this size uses (RFC 4754: P-256/SHA-256, P-384/SHA-384,
// P-521/SHA-512), and the fixed size of r and s.
struct ec_params {
    const char* digest;
    size_t coord;
    uint8_t method;
    int sig_nid;
};
std::optional<ec_params> ec_for_bits(int bits) {
    switch (bits) {
        case 256:
            return ec_params{"SHA256", 32, auth_method::ecdsa_sha256_p256, NID_ecdsa_with_SHA256};
        case 384:
            return ec_params{"SHA384", 48, auth_method::ecdsa_sha384_p384, NID_ecdsa_with_SHA384};
        case 521:
            return ec_params{"SHA512", 66, auth_method::ecdsa_sha512_p521, NID_ecdsa_with_SHA512};
        default:
            return std::nullopt;
    }
}

sig_result digest_sign(EVP_PKEY* key, const char* digest, cspan data) {
    md_ctx_ptr ctx{EVP_MD_CTX_new()};
    size_t len = 0;
    if (!ctx ||
        EVP_DigestSignInit_ex(ctx.get(), nullptr, digest, nullptr, nullptr, key, nullptr) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &len, data.data(), data.size()) != 1) {
        return wire::fail(std::string("signature setup failed"));
    }
    bytes sig(len);
    if (EVP_DigestSign(ctx.get(), sig.data(), &len, data.data(), data.size()) != 1) {
        return wire::fail(std::string("signing failed"));
    }
    sig.resize(len);
    return sig;
}

bool digest_verify(EVP_PKEY* key, const char* digest, cspan sig, cspan data) {
    md_ctx_ptr ctx{EVP_MD_CTX_new()};
    return ctx &&
           EVP_DigestVerifyInit_ex(ctx.get(), nullptr, digest, nullptr, nullptr, key, nullptr) ==
               1 &&
           EVP_DigestVerify(ctx.get(), sig.data(), sig.size(), data.data(), data.size()) == 1;
}

// DER Ecdsa-Sig-Value <-> r || s, each left-padded to `coord` bytes (RFC 4754 section 7).
std::optional<bytes> der_to_raw(cspan der, size_t coord) {
    const uint8_t* p = der.data();
    ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
    if (sig == nullptr) {
        return std::nullopt;
    }
    bytes out(2 * coord);
    const bool ok =
        BN_bn2binpad(ECDSA_SIG_get0_r(sig), out.data(), static_cast<int>(coord)) >= 0 &&
        BN_bn2binpad(ECDSA_SIG_get0_s(sig), out.data() + coord, static_cast<int>(coord)) >= 0;
    ECDSA_SIG_free(sig);
    return ok ? std::optional<bytes>{out} : std::nullopt;
}

std::optional<bytes> raw_to_der(cspan raw) {
    const size_t coord = raw.size() / 2;
    ECDSA_SIG* sig = ECDSA_SIG_new();
    BIGNUM* r = BN_bin2bn(raw.data(), static_cast<int>(coord), nullptr);
    BIGNUM* s = BN_bin2bn(raw.data() + coord, static_cast<int>(coord), nullptr);
    if (sig == nullptr || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        return std::nullopt;
    }
    unsigned char* der = nullptr;
    const int len = i2d_ECDSA_SIG(sig, &der);
    ECDSA_SIG_free(sig);
    if (len <= 0) {
        return std::nullopt;
    }
    bytes out(der, der + len);
    OPENSSL_free(der);
    return out;
}

// The DER AlgorithmIdentifier for a signature algorithm (RSA ones carry NULL parameters,
// ECDSA ones none: RFC 7427 appendix A).
std::optional<bytes> algorithm_identifier(int nid, bool rsa) {
    X509_ALGOR* alg = X509_ALGOR_new();
    if (alg == nullptr ||
        X509_ALGOR_set0(alg, OBJ_nid2obj(nid), rsa ? V_ASN1_NULL : V_ASN1_UNDEF, nullptr) != 1) {
        X509_ALGOR_free(alg);
        return std::nullopt;
    }
    unsigned char* der = nullptr;
    const int len = i2d_X509_ALGOR(alg, &der);
    X509_ALGOR_free(alg);
    if (len <= 0 || len > 255) {
        OPENSSL_free(der);
        return std::nullopt;
    }
    bytes out(der, der + len);
    OPENSSL_free(der);
    return out;
}

struct sig_alg {
    const char* digest;
    bool rsa;
};
// RFC 7427 signature algorithms we accept (SHA-2 only; RSASSA-PSS is not supported).
std::optional<sig_alg> sig_alg_for(int nid) {
    switch (nid) {
        case NID_sha256WithRSAEncryption:
            return sig_alg{"SHA256", true};
        case NID_sha384WithRSAEncryption:
            return sig_alg{"SHA384", true};
        case NID_sha512WithRSAEncryption:
            return sig_alg{"SHA512", true};
        case NID_ecdsa_with_SHA256:
            return sig_alg{"SHA256", false};
        case NID_ecdsa_with_SHA384:
            return sig_alg{"SHA384", false};
        case NID_ecdsa_with_SHA512:
            return sig_alg{"SHA512", false};
        default:
            return std::nullopt;
    }
}

}  // namespace

private_key::private_key(std::unique_ptr<impl> i) : _impl(std::move(i)) {}
private_key::~private_key() = default;

wire::result<std::unique_ptr<private_key>, std::string> private_key::load_pem(
    cspan pem, std::string_view what) {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    if (bio == nullptr) {
        return wire::fail(fmt::format("{}: cannot read", what));
    }
    EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (key == nullptr) {
        return wire::fail(fmt::format("{}: no PEM private key (PKCS#8, RSA or EC) found", what));
    }
    auto i = std::make_unique<impl>();
    i->key = key;
    if (!EVP_PKEY_is_a(key, "RSA") && !EVP_PKEY_is_a(key, "EC")) {
        return wire::fail(fmt::format("{}: the private key is neither RSA nor ECDSA", what));
    }
    return std::unique_ptr<private_key>(new private_key(std::move(i)));
}

bool private_key::is_rsa() const noexcept { return EVP_PKEY_is_a(_impl->key, "RSA") == 1; }
bool private_key::is_ecdsa() const noexcept { return EVP_PKEY_is_a(_impl->key, "EC") == 1; }

wire::result<bytes, std::string> private_key::sign(uint8_t method, cspan octets) const {
    EVP_PKEY* key = _impl->key;
    const auto ec = is_ecdsa() ? ec_for_bits(EVP_PKEY_get_bits(key)) : std::nullopt;
    if (is_ecdsa() && !ec) {
        return wire::fail(std::string("unsupported ECDSA curve"));
    }
    switch (method) {
        case auth_method::rsa_signature:
            if (!is_rsa()) {
                return wire::fail(std::string("method 1 needs an RSA key"));
            }
            return digest_sign(key, "SHA1", octets);
        case auth_method::ecdsa_sha256_p256:
        case auth_method::ecdsa_sha384_p384:
        case auth_method::ecdsa_sha512_p521: {
            if (!ec || ec->method != method) {
                return wire::fail(fmt::format("method {} does not match the key", method));
            }
            auto der = digest_sign(key, ec->digest, octets);
            if (!der) {
                return der;
            }
            auto raw = der_to_raw(*der, ec->coord);
            if (!raw) {
                return wire::fail(std::string("ECDSA signature conversion failed"));
            }
            return *raw;
        }
        case auth_method::digital_signature: {
            const char* digest = ec ? ec->digest : "SHA256";
            const auto alg = algorithm_identifier(ec ? ec->sig_nid : NID_sha256WithRSAEncryption,
                                                  !ec.has_value());
            if (!alg) {
                return wire::fail(std::string("AlgorithmIdentifier encoding failed"));
            }
            auto sig = digest_sign(key, digest, octets);
            if (!sig) {
                return sig;
            }
            bytes out;
            out.push_back(static_cast<uint8_t>(alg->size()));
            out.insert(out.end(), alg->begin(), alg->end());
            out.insert(out.end(), sig->begin(), sig->end());
            return out;
        }
        default:
            return wire::fail(fmt::format("unsupported authentication method {}", method));
    }
}

// EVP_PKEY_sign / EVP_PKEY_verify with no digest set: RSA with PKCS#1 v1.5 padding applies to
// the input as it is (OpenSSL's RSA_private_encrypt with type 1 padding, and its inverse).
namespace {
struct pkey_ctx_free {
    void operator()(EVP_PKEY_CTX* c) const noexcept { EVP_PKEY_CTX_free(c); }
};
using pkey_ctx_ptr = std::unique_ptr<EVP_PKEY_CTX, pkey_ctx_free>;
}  // namespace

wire::result<bytes, std::string> private_key::sign_pkcs1_raw(cspan octets) const {
    if (!is_rsa()) {
        return wire::fail(std::string("IKEv1 signatures need an RSA key"));
    }
    pkey_ctx_ptr ctx{EVP_PKEY_CTX_new_from_pkey(nullptr, _impl->key, nullptr)};
    size_t len = 0;
    if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1 ||
        EVP_PKEY_sign(ctx.get(), nullptr, &len, octets.data(), octets.size()) != 1) {
        return wire::fail(std::string("signature setup failed"));
    }
    bytes sig(len);
    if (EVP_PKEY_sign(ctx.get(), sig.data(), &len, octets.data(), octets.size()) != 1) {
        return wire::fail(std::string("signing failed"));
    }
    sig.resize(len);
    return sig;
}

namespace detail {

bool verify_pkcs1_raw(EVP_PKEY* key, cspan sig, cspan octets) {
    if (EVP_PKEY_is_a(key, "RSA") != 1) {
        return false;
    }
    pkey_ctx_ptr ctx{EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr)};
    return ctx && EVP_PKEY_verify_init(ctx.get()) == 1 &&
           EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) == 1 &&
           EVP_PKEY_verify(ctx.get(), sig.data(), sig.size(), octets.data(), octets.size()) == 1;
}

wire::result<bool, std::string> verify_auth(EVP_PKEY* key, uint8_t method, cspan auth_data,
                                            cspan octets) {
    const bool rsa = EVP_PKEY_is_a(key, "RSA") == 1;
    const bool ecdsa = EVP_PKEY_is_a(key, "EC") == 1;
    const auto ec = ecdsa ? ec_for_bits(EVP_PKEY_get_bits(key)) : std::nullopt;
    switch (method) {
        case auth_method::rsa_signature:
            if (!rsa) {
                return wire::fail(std::string("method 1 with a non-RSA certificate"));
            }
            return digest_verify(key, "SHA1", auth_data, octets);
        case auth_method::ecdsa_sha256_p256:
        case auth_method::ecdsa_sha384_p384:
        case auth_method::ecdsa_sha512_p521: {
            if (!ec || ec->method != method) {
                return wire::fail(
                    fmt::format("method {} does not match the certificate's key", method));
            }
            if (auth_data.size() != 2 * ec->coord) {
                return wire::fail(fmt::format("ECDSA signature is {} bytes, expected {}",
                                              auth_data.size(), 2 * ec->coord));
            }
            const auto der = raw_to_der(auth_data);
            return der && digest_verify(key, ec->digest, *der, octets);
        }
        case auth_method::digital_signature: {
            if (auth_data.empty() || auth_data[0] == 0 || auth_data.size() < 1u + auth_data[0]) {
                return wire::fail(std::string("AlgorithmIdentifier truncated"));
            }
            const size_t alg_len = auth_data[0];
            const uint8_t* p = auth_data.data() + 1;
            X509_ALGOR* alg = d2i_X509_ALGOR(nullptr, &p, static_cast<long>(alg_len));
            if (alg == nullptr || p != auth_data.data() + 1 + alg_len) {
                X509_ALGOR_free(alg);
                return wire::fail(std::string("AlgorithmIdentifier malformed"));
            }
            const ASN1_OBJECT* obj = nullptr;
            X509_ALGOR_get0(&obj, nullptr, nullptr, alg);
            const int nid = OBJ_obj2nid(obj);
            X509_ALGOR_free(alg);
            const auto sa = sig_alg_for(nid);
            if (!sa) {
                return wire::fail(
                    fmt::format("signature algorithm {} not accepted",
                                nid == NID_undef ? "(unknown OID)" : OBJ_nid2sn(nid)));
            }
            if (sa->rsa != rsa || (!sa->rsa && !ecdsa)) {
                return wire::fail(
                    std::string("signature algorithm does not match the certificate's key"));
            }
            return digest_verify(key, sa->digest, auth_data.subspan(1 + alg_len), octets);
        }
        default:
            return wire::fail(fmt::format("unsupported authentication method {}", method));
    }
}

}  // namespace detail

}  // namespace dmvpn::ike::crypto
