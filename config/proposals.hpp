// strongSwan's proposal syntax (`aes256gcm16-prfsha256-x25519`, ESP `aes256-sha256-esn`), the
// one parser for the YAML loader and the spoke emulator. Weak algorithms are not in its IKE
// tables; ESP takes 3DES and HMAC-MD5-96 for legacy peers, which the loader warns about.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "config/topology.hpp"
#include "dataplane/wire/result.hpp"

namespace dmvpn::config {

// ENCR[-INTEG][-PRF]-GROUP[-GROUP...]: the integrity algorithm implies the PRF of the same hash
// unless a prfsha* token names another. The error says what is wrong, quoting the token.
wire::result<ike_proposal, std::string> parse_ike_proposal(std::string_view text);
// aes128gcm16, aes256gcm16, aes128-sha1, aes256-sha256, aes128-sha256, aes256-sha1 and the
// legacy 3des-md5, 3des-sha1, aes128-md5 (weakness() says why they are flagged), each with an
// optional -esn or -noesn.
std::optional<ike_settings::esp_proposal> parse_esp_proposal(std::string_view text);
// modp2048, ecp256, ecp384, x25519 (curve25519): the IANA group number.
std::optional<uint16_t> parse_dh_group(std::string_view name);
// The accepted names, comma-separated, for errors.
std::string esp_proposal_names();
std::string dh_group_names();

}  // namespace dmvpn::config
