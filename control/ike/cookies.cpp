// COOKIE (RFC 7296 section 2.6) and the NAT detection hashes (section 2.23): the stateless
// parts of answering an IKE_SA_INIT.
#include <openssl/evp.h>

#include "control/ike/cookies.hpp"
#include "control/ike/ike_sa.hpp"

namespace dmvpn::ike::detail {

bytes nat_hash(uint64_t spi_i, uint64_t spi_r, uint32_t addr, uint16_t port) {
    // SHA-1(SPIi | SPIr | IP | port): the hash the RFC names, from OpenSSL.
    bytes in = be64(spi_i);
    bytes r = be64(spi_r);
    in.insert(in.end(), r.begin(), r.end());
    bytes a = be32(addr);
    in.insert(in.end(), a.begin(), a.end());
    in.push_back(uint8_t(port >> 8));
    in.push_back(uint8_t(port));
    bytes out(EVP_MAX_MD_SIZE);
    unsigned int n = 0;
    if (EVP_Digest(in.data(), in.size(), out.data(), &n, EVP_sha1(), nullptr) != 1) {
        return {};
    }
    out.resize(n);
    return out;
}

bytes make_cookie(const crypto::secret& secret, uint32_t version, std::span<const uint8_t> ni,
                  uint32_t peer, uint64_t spi_i) {
    // <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>), the hash a keyed PRF here.
    bytes data(ni.begin(), ni.end());
    bytes a = be32(peer);
    data.insert(data.end(), a.begin(), a.end());
    bytes s = be64(spi_i);
    data.insert(data.end(), s.begin(), s.end());
    crypto::secret mac = crypto::prf(prf_id::hmac_sha2_256, secret.view(), data);
    bytes cookie = be32(version);
    cookie.insert(cookie.end(), mac.data(), mac.data() + mac.size());
    return cookie;
}

bool check_cookie(const crypto::secret& current, const crypto::secret& previous, uint32_t version,
                  std::span<const uint8_t> cookie, std::span<const uint8_t> ni, uint32_t peer,
                  uint64_t spi_i) {
    if (cookie.size() < 4) {
        return false;
    }
    uint32_t v = read32(cookie);
    const crypto::secret* s = v == version                            ? &current
                              : v + 1 == version && !previous.empty() ? &previous
                                                                      : nullptr;
    if (s == nullptr || s->empty()) {
        return false;
    }
    bytes want = make_cookie(*s, v, ni, peer, spi_i);
    return crypto::equal(want, cookie);
}

}  // namespace dmvpn::ike::detail
