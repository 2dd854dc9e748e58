// dmvpn-decode's ISAKMP / IKEv1 layer (RFC 2408/2409/2407, RFC 3947) under Wireshark's isakmp.*
// field names, through control/ike/isakmp.hpp. decode_json.cpp hands it the messages whose
// version octet is 0x10 (UDP 500, or UDP 4500 after the non-ESP marker).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "tools/decode_json.hpp"

namespace dmvpn::decode {

// Appends the message's fields to `o` in the order of tshark's tree: the header, then (unless
// the E flag keeps the body encrypted) isakmp.typepayload of one level before the subtrees it
// heads, and per payload its generic header (isakmp.nextpayload, payloadlength) and body: SA
// DOI and situation, proposals, transforms and their attributes (isakmp.ike.attr.* in an
// ISAKMP proposal, isakmp.ipsec.attr.* in the others), KE, ID (type, protocol, port, IPv4
// address), CERT/CR encoding, HASH, SIG, nonce, notification, delete, vendor ID, NAT-D and
// NAT-OA. Returns the refusal (ike::v1::describe) when the message does not parse; the header
// fields are kept when the header itself parsed.
std::optional<std::string> isakmp_fields(std::span<const uint8_t> msg, json_object& o);

}  // namespace dmvpn::decode
