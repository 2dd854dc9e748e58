// COOKIE values (RFC 7296 section 2.6): made and checked without state, from a rotating secret.
#pragma once

#include <cstdint>
#include <span>

#include "control/ike/crypto.hpp"

namespace dmvpn::ike::detail {

std::vector<uint8_t> make_cookie(const crypto::secret& secret, uint32_t version,
                                 std::span<const uint8_t> ni, uint32_t peer, uint64_t spi_i);
// Made with the current secret (`version`) or the one before it.
bool check_cookie(const crypto::secret& current, const crypto::secret& previous, uint32_t version,
                  std::span<const uint8_t> cookie, std::span<const uint8_t> ni, uint32_t peer,
                  uint64_t spi_i);

}  // namespace dmvpn::ike::detail
