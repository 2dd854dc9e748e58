// crypto::secret for tests linked before control/ike/crypto.cpp defines it (the ike-crypto
// slice): weak definitions, so the real ones in libdmvpn_ike_crypto win as soon as they exist.
// Delete this file once control/ike/crypto.cpp implements secret.
#include <cstring>

#include "control/ike/crypto.hpp"

namespace dmvpn::ike::crypto {

[[gnu::weak]] secret::secret(cspan data) : _v(data.begin(), data.end()) {}
[[gnu::weak]] secret::secret(size_t n) : _v(n) {}
[[gnu::weak]] secret::secret(const secret& o) : _v(o._v) {}
[[gnu::weak]] secret::secret(secret&& o) noexcept : _v(std::move(o._v)) { o._v.clear(); }
[[gnu::weak]] secret& secret::operator=(const secret& o) {
    if (this != &o) {
        wipe();
        _v = o._v;
    }
    return *this;
}
[[gnu::weak]] secret& secret::operator=(secret&& o) noexcept {
    if (this != &o) {
        wipe();
        _v = std::move(o._v);
        o._v.clear();
    }
    return *this;
}
[[gnu::weak]] secret::~secret() { wipe(); }
[[gnu::weak]] void secret::wipe() noexcept {
    if (!_v.empty()) {
        explicit_bzero(_v.data(), _v.size());
    }
}
[[gnu::weak]] secret secret::slice(size_t off, size_t n) const {
    return secret(view().subspan(off, n));
}

}  // namespace dmvpn::ike::crypto
