// X.509 for IKEv2 through OpenSSL: loading (PEM, DER), identities against subjectAltName or the
// subject DN (RFC 7296 section 3.5), CERTREQ key hashes (section 3.7), path validation against
// trust anchors at a given time (X509_STORE).
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>

#include "control/ike/crypto.hpp"
#include "control/ike/crypto_internal.hpp"
#include "control/ike/message.hpp"

namespace dmvpn::ike::crypto {

struct certificate::impl {
    X509* x = nullptr;
    ~impl() { X509_free(x); }
};

struct trust_store::impl {
    std::vector<std::unique_ptr<certificate>> anchors;
};

namespace {

std::string name_text(const X509_NAME* n) {
    BIO* bio = BIO_new(BIO_s_mem());
    if (bio == nullptr) {
        return {};
    }
    std::string out;
    if (X509_NAME_print_ex(bio, n, 0, XN_FLAG_RFC2253) >= 0) {
        char* p = nullptr;
        const long len = BIO_get_mem_data(bio, &p);
        if (len > 0) {
            out.assign(p, static_cast<size_t>(len));
        }
    }
    BIO_free(bio);
    return out;
}

}  // namespace

certificate::certificate(std::unique_ptr<impl> i) : _impl(std::move(i)) {}
certificate::~certificate() = default;

wire::result<std::unique_ptr<certificate>, std::string> certificate::from_der(cspan der) {
    const uint8_t* p = der.data();
    X509* x = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
    if (x == nullptr || p != der.data() + der.size()) {
        X509_free(x);
        return wire::fail(std::string("certificate is not valid DER X.509"));
    }
    auto i = std::make_unique<impl>();
    i->x = x;
    return std::unique_ptr<certificate>(new certificate(std::move(i)));
}

wire::result<std::vector<std::unique_ptr<certificate>>, std::string> certificate::load_pem(
    cspan pem, std::string_view what) {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    if (bio == nullptr) {
        return wire::fail(fmt::format("{}: cannot read", what));
    }
    std::vector<std::unique_ptr<certificate>> out;
    while (X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
        auto i = std::make_unique<impl>();
        i->x = x;
        out.push_back(std::unique_ptr<certificate>(new certificate(std::move(i))));
    }
    BIO_free(bio);
    ERR_clear_error();  // the loop ends on "no start line"
    if (out.empty()) {
        return wire::fail(fmt::format("{}: no PEM certificate found", what));
    }
    return out;
}

bytes certificate::der() const {
    unsigned char* der = nullptr;
    const int len = i2d_X509(_impl->x, &der);
    if (len <= 0) {
        return {};
    }
    bytes out(der, der + len);
    OPENSSL_free(der);
    return out;
}

std::string certificate::subject() const { return name_text(X509_get_subject_name(_impl->x)); }
std::string certificate::issuer() const { return name_text(X509_get_issuer_name(_impl->x)); }

bool certificate::is_rsa() const noexcept {
    return EVP_PKEY_is_a(X509_get0_pubkey(_impl->x), "RSA") == 1;
}
bool certificate::is_ecdsa() const noexcept {
    return EVP_PKEY_is_a(X509_get0_pubkey(_impl->x), "EC") == 1;
}

bool certificate::matches_identity(uint8_t type, cspan data) const {
    if (data.empty()) {
        return false;  // X509_check_host/email take a zero length as "use strlen"
    }
    const auto* chars = reinterpret_cast<const char*>(data.data());
    switch (type) {
        case id_type::ipv4_addr:
        case id_type::ipv6_addr:
            if (data.size() != (type == id_type::ipv4_addr ? 4u : 16u)) {
                return false;
            }
            return X509_check_ip(_impl->x, data.data(), data.size(), 0) == 1;
        case id_type::fqdn:
            return X509_check_host(
                       _impl->x, chars, data.size(),
                       X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
                       nullptr) == 1;
        case id_type::rfc822_addr:
            return X509_check_email(_impl->x, chars, data.size(),
                                    X509_CHECK_FLAG_NEVER_CHECK_SUBJECT) == 1;
        case id_type::der_asn1_dn: {
            const uint8_t* p = data.data();
            X509_NAME* n = d2i_X509_NAME(nullptr, &p, static_cast<long>(data.size()));
            const bool same = n != nullptr && p == data.data() + data.size() &&
                              X509_NAME_cmp(n, X509_get_subject_name(_impl->x)) == 0;
            X509_NAME_free(n);
            return same;
        }
        default:
            return false;
    }
}

wire::result<bool, std::string> certificate::verify(uint8_t method, cspan auth_data,
                                                    cspan octets) const {
    EVP_PKEY* key = X509_get0_pubkey(_impl->x);
    if (key == nullptr) {
        return wire::fail(std::string("certificate public key unreadable"));
    }
    return detail::verify_auth(key, method, auth_data, octets);
}

bool certificate::verify_pkcs1_raw(cspan sig, cspan octets) const {
    EVP_PKEY* key = X509_get0_pubkey(_impl->x);
    return key != nullptr && detail::verify_pkcs1_raw(key, sig, octets);
}

bytes certificate::subject_der() const {
    unsigned char* der = nullptr;
    const int len = i2d_X509_NAME(X509_get_subject_name(_impl->x), &der);
    if (len <= 0) {
        return {};
    }
    bytes out(der, der + len);
    OPENSSL_free(der);
    return out;
}

bytes certificate::key_hash() const {
    unsigned char* spki = nullptr;
    const int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(_impl->x), &spki);
    if (len <= 0) {
        return {};
    }
    bytes out(20);
    size_t out_len = 0;
    const bool ok = EVP_Q_digest(nullptr, "SHA1", nullptr, spki, static_cast<size_t>(len),
                                 out.data(), &out_len) == 1 &&
                    out_len == out.size();
    OPENSSL_free(spki);
    return ok ? out : bytes{};
}

trust_store::trust_store() : _impl(std::make_unique<impl>()) {}
trust_store::~trust_store() = default;

void trust_store::add_anchor(std::unique_ptr<certificate> ca) {
    if (ca) {
        _impl->anchors.push_back(std::move(ca));
    }
}

size_t trust_store::size() const noexcept { return _impl->anchors.size(); }

bytes trust_store::certreq_data() const {
    bytes out;
    for (const auto& ca : _impl->anchors) {
        const bytes h = ca->key_hash();
        out.insert(out.end(), h.begin(), h.end());
    }
    return out;
}

std::vector<bytes> trust_store::subjects_der() const {
    std::vector<bytes> out;
    for (const auto& ca : _impl->anchors) {
        out.push_back(ca->subject_der());
    }
    return out;
}

wire::result<bool, std::string> trust_store::verify(
    const certificate& leaf, const std::vector<const certificate*>& intermediates,
    int64_t now_unix) const {
    if (_impl->anchors.empty()) {
        return wire::fail(std::string("no trust anchor configured"));
    }
    X509_STORE* store = X509_STORE_new();
    STACK_OF(X509)* chain = sk_X509_new_null();
    X509_STORE_CTX* ctx = X509_STORE_CTX_new();
    auto cleanup = [&] {
        X509_STORE_CTX_free(ctx);
        sk_X509_free(chain);  // the certificates stay owned by their `certificate`
        X509_STORE_free(store);
    };
    bool ok = store != nullptr && chain != nullptr && ctx != nullptr;
    for (const auto& ca : _impl->anchors) {
        ok = ok && X509_STORE_add_cert(store, ca->_impl->x) == 1;
    }
    for (const certificate* c : intermediates) {
        ok = ok && c != nullptr && sk_X509_push(chain, c->_impl->x) > 0;
    }
    ok = ok && X509_STORE_CTX_init(ctx, store, leaf._impl->x, chain) == 1;
    if (!ok) {
        cleanup();
        return wire::fail(std::string("certificate store setup failed"));
    }
    X509_STORE_CTX_set_time(ctx, 0, static_cast<time_t>(now_unix));
    const int rc = X509_verify_cert(ctx);
    std::string why;
    if (rc != 1) {
        const int err = X509_STORE_CTX_get_error(ctx);
        why = fmt::format("certificate {} not trusted: {}", leaf.subject(),
                          X509_verify_cert_error_string(err));
    }
    cleanup();
    if (rc != 1) {
        return wire::fail(why);
    }
    return true;
}

}  // namespace dmvpn::ike::crypto
