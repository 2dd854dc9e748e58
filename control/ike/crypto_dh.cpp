// Diffie-Hellman for IKE through OpenSSL's EVP_PKEY: MODP-1024 (group 2, RFC 2409; IKEv1's
// legacy peers), MODP-1536 (group 5) and MODP-2048 (group 14, RFC 3526),
// ECP-256/384 (groups 19, 20, RFC 5903) and Curve25519 (group 31, RFC 8031).
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/dh.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>

#include <fmt/format.h>

#include "control/ike/crypto.hpp"
#include "control/ike/message.hpp"

namespace dmvpn::ike::crypto {

namespace {

template <typename T, void (*F)(T*)>
struct ossl_free {
    void operator()(T* p) const noexcept { F(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, ossl_free<EVP_PKEY, EVP_PKEY_free>>;
using pkey_ctx_ptr = std::unique_ptr<EVP_PKEY_CTX, ossl_free<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using bn_ptr = std::unique_ptr<BIGNUM, ossl_free<BIGNUM, BN_clear_free>>;
using bn_ctx_ptr = std::unique_ptr<BN_CTX, ossl_free<BN_CTX, BN_CTX_free>>;
using param_bld_ptr =
    std::unique_ptr<OSSL_PARAM_BLD, ossl_free<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>>;
using params_ptr = std::unique_ptr<OSSL_PARAM, ossl_free<OSSL_PARAM, OSSL_PARAM_free>>;
using ec_group_ptr = std::unique_ptr<EC_GROUP, ossl_free<EC_GROUP, EC_GROUP_free>>;
using ec_point_ptr = std::unique_ptr<EC_POINT, ossl_free<EC_POINT, EC_POINT_free>>;

using kx_result = wire::result<std::unique_ptr<key_exchange>, std::string>;

enum class family { modp, ecp, x25519 };

struct group_info {
    family fam;
    const char* name;  // OpenSSL group name; nullptr: MODP given by its prime (group 2)
    int nid;           // curve NID for ECP
    size_t size;       // KE data length
    BIGNUM* (*prime)(BIGNUM*) = nullptr;  // MODP: OpenSSL's copy of the RFC's prime
    // MODP: the private exponent's length in bits that generate() draws (control/ike/README.md,
    // "Private exponent length"). Group 2 sets it here; OpenSSL's named groups carry theirs
    // (modp_1536: 200, modp_2048: 225).
    int priv_bits = 0;
};

// Group 2 (RFC 2409 MODP-1024): 80-bit security strength (NIST SP 800-57 part 1, table 2:
// L = 1024 with N = 160), so a 160-bit exponent, twice the strength as NIST SP 800-56A
// (section 5.6.1.1.1) and RFC 3526 section 8 ask. Without it OpenSSL, which has no q for a
// group given by p and g alone, draws a 1,022-bit one: 6x the exponentiation work.
constexpr int modp1024_priv_bits = 160;

// MODP domain parameters: OpenSSL's named group, or (group 2, which OpenSSL does not name)
// its RFC 2409 prime with generator 2.
bool push_modp_group(OSSL_PARAM_BLD* b, const group_info& gi) {
    if (gi.name != nullptr) {
        return OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, gi.name, 0) == 1;
    }
    // The builder keeps pointers to the numbers until OSSL_PARAM_BLD_to_param(): public
    // constants, made once and kept for the process's life.
    static const BIGNUM* const p = BN_get_rfc2409_prime_1024(nullptr);  // group 2 only
    static const BIGNUM* const g = [] {
        BIGNUM* two = BN_new();
        return two != nullptr && BN_set_word(two, 2) == 1 ? two : nullptr;
    }();
    return p != nullptr && g != nullptr &&
           OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_FFC_P, p) == 1 &&
           OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_FFC_G, g) == 1;
}

std::optional<group_info> info(uint16_t group) {
    switch (group) {
        case dh_id::modp1024:
            return group_info{family::modp,      nullptr, NID_undef, 128, BN_get_rfc2409_prime_1024,
                              modp1024_priv_bits};
        case dh_id::modp1536:
            return group_info{family::modp, "modp_1536", NID_undef, 192, BN_get_rfc3526_prime_1536,
                              200};
        case dh_id::modp2048:
            return group_info{family::modp, "modp_2048", NID_undef, 256, BN_get_rfc3526_prime_2048,
                              225};
        case dh_id::ecp256:
            return group_info{family::ecp, "P-256", NID_X9_62_prime256v1, 64};
        case dh_id::ecp384:
            return group_info{family::ecp, "P-384", NID_secp384r1, 96};
        case dh_id::curve25519:
            return group_info{family::x25519, "X25519", NID_undef, 32};
        default:
            return std::nullopt;
    }
}

// A key from OSSL_PARAMs built by `fill` (group name, keys).
template <typename Fill>
pkey_ptr from_params(const char* type, int selection, Fill fill) {
    param_bld_ptr bld{OSSL_PARAM_BLD_new()};
    if (!bld || !fill(bld.get())) {
        return nullptr;
    }
    params_ptr params{OSSL_PARAM_BLD_to_param(bld.get())};
    pkey_ctx_ptr ctx{EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr)};
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1) {
        return nullptr;
    }
    EVP_PKEY* out = nullptr;
    if (EVP_PKEY_fromdata(ctx.get(), &out, selection, params.get()) != 1) {
        return nullptr;
    }
    return pkey_ptr{out};
}

class evp_key_exchange final : public key_exchange {
public:
    evp_key_exchange(uint16_t g, group_info gi, pkey_ptr key)
        : key_exchange(g), _info(gi), _key(std::move(key)) {}

    bytes public_value() const override {
        bytes out;
        switch (_info.fam) {
            case family::modp: {
                BIGNUM* pub = nullptr;
                if (EVP_PKEY_get_bn_param(_key.get(), OSSL_PKEY_PARAM_PUB_KEY, &pub) != 1) {
                    return {};
                }
                bn_ptr owned{pub};
                out.resize(_info.size);
                if (BN_bn2binpad(pub, out.data(), static_cast<int>(out.size())) < 0) {
                    return {};
                }
                return out;
            }
            case family::ecp: {
                // Uncompressed point 0x04 || x || y; the KE payload carries x || y.
                bytes point(_info.size + 1);
                size_t len = 0;
                if (EVP_PKEY_get_octet_string_param(_key.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
                                                    point.data(), point.size(), &len) != 1 ||
                    len != point.size() || point[0] != 0x04) {
                    return {};
                }
                return bytes(point.begin() + 1, point.end());
            }
            case family::x25519: {
                out.resize(_info.size);
                size_t len = out.size();
                if (EVP_PKEY_get_raw_public_key(_key.get(), out.data(), &len) != 1 ||
                    len != out.size()) {
                    return {};
                }
                return out;
            }
        }
        return {};
    }

    wire::result<secret, std::string> shared_secret(cspan peer) const override {
        if (peer.size() != _info.size) {
            return wire::fail(fmt::format("group {} public value is {} bytes, expected {}", group(),
                                          peer.size(), _info.size));
        }
        pkey_ptr peer_key;
        switch (_info.fam) {
            case family::modp:
                peer_key = modp_peer(peer);
                if (!peer_key) {
                    return wire::fail(fmt::format(
                        "group {} public value out of range (must be 1 < y < p-1)", group()));
                }
                break;
            case family::ecp: {
                bytes point(peer.size() + 1);
                point[0] = 0x04;
                std::copy(peer.begin(), peer.end(), point.begin() + 1);
                peer_key = from_params("EC", EVP_PKEY_PUBLIC_KEY, [&](OSSL_PARAM_BLD* b) {
                    return OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME,
                                                           _info.name, 0) == 1 &&
                           OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY,
                                                            point.data(), point.size()) == 1;
                });
                if (!peer_key) {
                    return wire::fail(
                        fmt::format("group {} public value is not a point on the curve", group()));
                }
                break;
            }
            case family::x25519:
                peer_key.reset(EVP_PKEY_new_raw_public_key_ex(nullptr, "X25519", nullptr,
                                                              peer.data(), peer.size()));
                if (!peer_key) {
                    return wire::fail(std::string("group 31 public value refused"));
                }
                break;
        }
        pkey_ctx_ptr ctx{EVP_PKEY_CTX_new_from_pkey(nullptr, _key.get(), nullptr)};
        if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1) {
            return wire::fail(std::string("key derivation setup failed"));
        }
        if (_info.fam == family::modp && EVP_PKEY_CTX_set_dh_pad(ctx.get(), 1) != 1) {
            return wire::fail(std::string("key derivation setup failed"));
        }
        // validate_peer: OpenSSL's public-key check (on the curve, in the subgroup) for ECP and
        // X25519. Not for MODP: groups 2, 5 and 14 are safe primes (p = 2q + 1), whose only
        // small subgroup is {1, p-1}, which modp_peer's range check 1 < y < p-1 already
        // refuses (RFC 6989 section 2.2: y^q = 1 is needed only for groups 22-24, which the
        // hub does not offer). OpenSSL's full check is that y^q: a modular exponentiation by a
        // 2,047-bit q, four times the cost of the rest of the derivation (bench/README.md, ike).
        if (EVP_PKEY_derive_set_peer_ex(ctx.get(), peer_key.get(),
                                        _info.fam == family::modp ? 0 : 1) != 1) {
            return wire::fail(fmt::format("group {} public value failed validation", group()));
        }
        size_t len = 0;
        if (EVP_PKEY_derive(ctx.get(), nullptr, &len) != 1) {
            return wire::fail(std::string("key derivation failed"));
        }
        secret out(len);
        if (EVP_PKEY_derive(ctx.get(), out.data(), &len) != 1 || len != out.size()) {
            return wire::fail(std::string("key derivation failed"));
        }
        // MODP: padded to the prime's length (set_dh_pad); ECP: x only, padded to the field
        // size (RFC 5903 section 7). X25519: an all-zero result is refused (RFC 8031 section 2).
        if (_info.fam == family::x25519) {
            static const uint8_t zeros[32] = {};
            if (out.size() != 32 || CRYPTO_memcmp(out.data(), zeros, 32) == 0) {
                return wire::fail(std::string("group 31 shared secret is all zero"));
            }
        }
        return out;
    }

    size_t private_bits() const override {
        BIGNUM* x = nullptr;
        if (_info.fam != family::modp ||
            EVP_PKEY_get_bn_param(_key.get(), OSSL_PKEY_PARAM_PRIV_KEY, &x) != 1) {
            return 0;
        }
        bn_ptr owned{x};
        return size_t(BN_num_bits(x));
    }

private:
    pkey_ptr modp_peer(cspan peer) const {
        bn_ptr y{BN_bin2bn(peer.data(), static_cast<int>(peer.size()), nullptr)};
        bn_ptr p{_info.prime(nullptr)};
        if (!y || !p || !BN_sub_word(p.get(), 1)) {
            return nullptr;
        }
        // 1 < y < p-1 (RFC 7296 section 5.12 / RFC 6989 section 2.1)
        if (BN_cmp(y.get(), BN_value_one()) <= 0 || BN_cmp(y.get(), p.get()) >= 0) {
            return nullptr;
        }
        return from_params("DH", EVP_PKEY_PUBLIC_KEY, [&](OSSL_PARAM_BLD* b) {
            return push_modp_group(b, _info) &&
                   OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PUB_KEY, y.get()) == 1;
        });
    }

    group_info _info;
    pkey_ptr _key;
};

// ECP key pair from a private scalar: the public point is computed with EC_POINT_mul.
pkey_ptr ecp_from_private(const group_info& gi, cspan priv) {
    ec_group_ptr grp{EC_GROUP_new_by_curve_name(gi.nid)};
    bn_ptr d{BN_bin2bn(priv.data(), static_cast<int>(priv.size()), nullptr)};
    bn_ctx_ptr bctx{BN_CTX_new()};
    if (!grp || !d || !bctx) {
        return nullptr;
    }
    ec_point_ptr q{EC_POINT_new(grp.get())};
    if (!q || EC_POINT_mul(grp.get(), q.get(), d.get(), nullptr, nullptr, bctx.get()) != 1) {
        return nullptr;
    }
    bytes pub(gi.size + 1);
    if (EC_POINT_point2oct(grp.get(), q.get(), POINT_CONVERSION_UNCOMPRESSED, pub.data(),
                           pub.size(), bctx.get()) != pub.size()) {
        return nullptr;
    }
    return from_params("EC", EVP_PKEY_KEYPAIR, [&](OSSL_PARAM_BLD* b) {
        return OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, gi.name, 0) == 1 &&
               OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PRIV_KEY, d.get()) == 1 &&
               OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub.data(),
                                                pub.size()) == 1;
    });
}

// MODP key pair from a private exponent: y = 2^x mod p.
pkey_ptr modp_from_private(const group_info& gi, cspan priv) {
    bn_ptr x{BN_bin2bn(priv.data(), static_cast<int>(priv.size()), nullptr)};
    bn_ptr p{gi.prime(nullptr)};
    bn_ptr g{BN_new()};
    bn_ptr y{BN_new()};
    bn_ctx_ptr bctx{BN_CTX_new()};
    if (!x || !p || !g || !y || !bctx || BN_set_word(g.get(), 2) != 1 ||
        BN_mod_exp(y.get(), g.get(), x.get(), p.get(), bctx.get()) != 1) {
        return nullptr;
    }
    return from_params("DH", EVP_PKEY_KEYPAIR, [&](OSSL_PARAM_BLD* b) {
        return push_modp_group(b, gi) &&
               OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PRIV_KEY, x.get()) == 1 &&
               OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PUB_KEY, y.get()) == 1;
    });
}

}  // namespace

bool supported_group(uint16_t group) noexcept { return info(group).has_value(); }

size_t public_value_size(uint16_t group) noexcept {
    const auto gi = info(group);
    return gi ? gi->size : 0;
}

kx_result key_exchange::generate(uint16_t group) {
    const auto gi = info(group);
    if (!gi) {
        return wire::fail(fmt::format("unsupported Diffie-Hellman group {}", group));
    }
    pkey_ptr key;
    if (gi->fam == family::x25519) {
        key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519"));
    } else if (gi->fam == family::modp && gi->name == nullptr) {
        // Domain parameters from the prime, then a key pair on them with a short exponent
        // (priv_len on the key generation: OpenSSL 3.0 ignores one given with the domain).
        pkey_ptr dom = from_params("DH", EVP_PKEY_KEY_PARAMETERS,
                                   [&](OSSL_PARAM_BLD* b) { return push_modp_group(b, *gi); });
        pkey_ctx_ptr ctx{dom ? EVP_PKEY_CTX_new_from_pkey(nullptr, dom.get(), nullptr) : nullptr};
        int priv_bits = gi->priv_bits;
        OSSL_PARAM params[] = {OSSL_PARAM_construct_int(OSSL_PKEY_PARAM_DH_PRIV_LEN, &priv_bits),
                               OSSL_PARAM_construct_end()};
        EVP_PKEY* out = nullptr;
        if (ctx && EVP_PKEY_keygen_init(ctx.get()) == 1 &&
            EVP_PKEY_CTX_set_params(ctx.get(), params) == 1 &&
            EVP_PKEY_generate(ctx.get(), &out) == 1) {
            key.reset(out);
        }
    } else {
        pkey_ctx_ptr ctx{
            EVP_PKEY_CTX_new_from_name(nullptr, gi->fam == family::modp ? "DH" : "EC", nullptr)};
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                                                const_cast<char*>(gi->name), 0),
                               OSSL_PARAM_construct_end()};
        EVP_PKEY* out = nullptr;
        if (ctx && EVP_PKEY_keygen_init(ctx.get()) == 1 &&
            EVP_PKEY_CTX_set_params(ctx.get(), params) == 1 &&
            EVP_PKEY_generate(ctx.get(), &out) == 1) {
            key.reset(out);
        }
    }
    if (!key) {
        return wire::fail(fmt::format("group {} key generation failed", group));
    }
    return kx_result{std::make_unique<evp_key_exchange>(group, *gi, std::move(key))};
}

kx_result key_exchange::from_private(uint16_t group, cspan private_value) {
    const auto gi = info(group);
    if (!gi) {
        return wire::fail(fmt::format("unsupported Diffie-Hellman group {}", group));
    }
    pkey_ptr key;
    switch (gi->fam) {
        case family::modp:
            key = modp_from_private(*gi, private_value);
            break;
        case family::ecp:
            key = ecp_from_private(*gi, private_value);
            break;
        case family::x25519:
            key.reset(EVP_PKEY_new_raw_private_key_ex(nullptr, "X25519", nullptr,
                                                      private_value.data(), private_value.size()));
            break;
    }
    if (!key) {
        return wire::fail(fmt::format("group {} private value refused", group));
    }
    return kx_result{std::make_unique<evp_key_exchange>(group, *gi, std::move(key))};
}

}  // namespace dmvpn::ike::crypto
