// The emulated spokes' IKEv2 policy (--ike, --ike-proposal, --esp-proposal, --ike-id), built in
// code as the config::ipsec_profile the IKE engine takes: no YAML involved. Proposals are
// written as strongSwan writes them (`aes128gcm16-prfsha256-x25519`, `aes256-sha256-modp2048`;
// ESP `aes128gcm16`, `aes256-sha256`, with `-esn` and an optional PFS group).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/topology.hpp"
#include "dataplane/wire/result.hpp"
#include "tools/spokesim/options.hpp"
#include "tools/spokesim/topology.hpp"

namespace dmvpn::spokesim {

inline constexpr std::string_view default_ike_proposal = "aes128gcm16-prfsha256-x25519";
inline constexpr std::string_view default_esp_proposal = "aes128gcm16";

// A comma-separated list of IKE SA proposals; the error names the token at fault.
wire::result<std::vector<config::ike_proposal>, std::string> parse_ike_proposals(
    std::string_view list);
// A comma-separated list of ESP proposals. A DH group in one sets the PFS group (the same for
// every proposal that names one; they must agree).
struct esp_proposals {
    std::vector<config::ike_settings::esp_proposal> proposals;
    std::optional<uint16_t> pfs_group;
};
wire::result<esp_proposals, std::string> parse_esp_proposals(std::string_view list);

// A comma-separated list of IKEv1 ISAKMP policies (pre-shared key), ENCR-HASH-GROUP as strongSwan
// writes IKEv1 proposals: `aes256-sha256-modp2048`, `aes128-sha1-modp1024`, `3des-md5-modp1024`.
wire::result<std::vector<config::ike_settings::isakmp_policy>, std::string> parse_isakmp_policies(
    std::string_view list);

// The profiles the spokes' IKE engine is created with, and which one each spoke's tunnel binding
// names. PSK: one profile with the wildcard key. Certificates (--ike cert:DIR): DIR/ca.pem is the
// trust anchor; spoke i uses DIR/spoke-<i>.pem and DIR/spoke-<i>.key (i the global index) when
// they exist, its identity then its NBMA address, else the shared DIR/spoke.pem / spoke.key with
// the identity --ike-id names. The error names the missing file.
struct ike_plan {
    std::vector<config::ipsec_profile> profiles;
    std::vector<uint32_t> profile_of;  // per local spoke: an index into profiles
};
wire::result<ike_plan, std::string> plan_ike(const options& o, const topology& t);

}  // namespace dmvpn::spokesim
