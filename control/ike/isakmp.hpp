// ISAKMP (RFC 2408) messages as IKEv1 (RFC 2409) and the IPsec DOI (RFC 2407) use them, with
// NAT traversal (RFC 3947): the model, the parser and the builder. Control-side code (IKE
// thread, tools, tests): allocates freely, never on a worker. No cryptography here: a message
// with the E flag keeps its body (ciphertext and padding) opaque; the engine decrypts it and
// reads the plaintext with parse_payloads(). The IKEv2 codec is message.hpp.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "control/ike/message.hpp"
#include "dataplane/wire/result.hpp"

namespace dmvpn::ike::v1 {

using ike::bytes;

// The header (28 octets), the generic payload header (4) and the size bound are IKEv2's.
using ike::generic_payload_header_size;
using ike::header_size;
using ike::max_message_size;
inline constexpr uint8_t major_version = 1;  // the header's version octet is 0x10

enum class exchange : uint8_t {
    base = 1,
    identity_protection = 2,  // Main Mode
    authentication_only = 3,
    aggressive = 4,
    informational = 5,
    quick = 32,      // RFC 2409 section 5.5
    new_group = 33,  // RFC 2409 section 5.6
};
std::string_view name(exchange e) noexcept;

enum class payload_type : uint8_t {
    none = 0,
    sa = 1,
    proposal = 2,   // only inside SA
    transform = 3,  // only inside Proposal
    ke = 4,
    id = 5,
    cert = 6,
    cr = 7,
    hash = 8,
    sig = 9,
    nonce = 10,
    notification = 11,
    del = 12,
    vendor = 13,
    nat_d = 20,         // RFC 3947
    nat_oa = 21,        // RFC 3947
    nat_d_draft = 130,  // draft-ietf-ipsec-nat-t-ike-03..08, same layout as 20
    nat_oa_draft = 131,
};
std::string_view name(payload_type p) noexcept;

namespace header_flag {
inline constexpr uint8_t encryption = 0x01;
inline constexpr uint8_t commit = 0x02;
inline constexpr uint8_t authentication_only = 0x04;
}  // namespace header_flag

struct header {
    uint64_t spi_i = 0;                      // initiator cookie
    uint64_t spi_r = 0;                      // responder cookie
    payload_type next = payload_type::none;  // computed by serialize() unless encrypted
    uint8_t major = major_version;
    uint8_t minor = 0;
    exchange exch = exchange::identity_protection;
    uint8_t flags = 0;
    uint32_t message_id = 0;
    uint32_t length = 0;  // computed by serialize()

    bool encrypted() const noexcept { return (flags & header_flag::encryption) != 0; }
    bool operator==(const header&) const = default;
};

inline constexpr uint32_t doi_ipsec = 1;  // RFC 2407 section 4.2
namespace situation {
inline constexpr uint32_t identity_only = 0x1;  // the only one the hub speaks
inline constexpr uint32_t secrecy = 0x2;
inline constexpr uint32_t integrity = 0x4;
}  // namespace situation

// Protocol IDs (RFC 2407 section 4.4.1).
namespace protocol_id {
inline constexpr uint8_t isakmp = 1;
inline constexpr uint8_t ah = 2;
inline constexpr uint8_t esp = 3;
inline constexpr uint8_t ipcomp = 4;
}  // namespace protocol_id

inline constexpr uint8_t key_ike = 1;  // the ISAKMP transform ID (RFC 2407 section 4.4.2)
namespace esp_transform {              // RFC 2407 section 4.4.4, RFC 3602
inline constexpr uint8_t des = 2;
inline constexpr uint8_t triple_des = 3;
inline constexpr uint8_t null = 11;
inline constexpr uint8_t aes = 12;
}  // namespace esp_transform

// Phase 1 attributes (RFC 2409 appendix A) in a KEY_IKE transform.
namespace p1_attr {
inline constexpr uint16_t encryption = 1;   // 1 DES, 5 3DES, 7 AES (RFC 3602)
inline constexpr uint16_t hash = 2;         // 1 MD5, 2 SHA, 4 SHA2-256 ...
inline constexpr uint16_t auth_method = 3;  // 1 pre-shared key, 3 RSA signatures ...
inline constexpr uint16_t group = 4;        // group description: 1, 2, 5, 14, 19, 20 ...
inline constexpr uint16_t group_type = 5;
inline constexpr uint16_t group_prime = 6;
inline constexpr uint16_t group_generator_1 = 7;
inline constexpr uint16_t group_generator_2 = 8;
inline constexpr uint16_t group_curve_a = 9;
inline constexpr uint16_t group_curve_b = 10;
inline constexpr uint16_t life_type = 11;      // 1 seconds, 2 kilobytes
inline constexpr uint16_t life_duration = 12;  // variable length
inline constexpr uint16_t prf = 13;
inline constexpr uint16_t key_length = 14;
inline constexpr uint16_t field_size = 15;
inline constexpr uint16_t group_order = 16;
}  // namespace p1_attr

// Phase 2 attributes (RFC 2407 section 4.5) in an AH/ESP/IPCOMP transform.
namespace p2_attr {
inline constexpr uint16_t sa_life_type = 1;      // 1 seconds, 2 kilobytes
inline constexpr uint16_t sa_life_duration = 2;  // variable length
inline constexpr uint16_t group = 3;             // PFS group
inline constexpr uint16_t encapsulation_mode = 4;
inline constexpr uint16_t auth_algorithm = 5;  // 1 HMAC-MD5, 2 HMAC-SHA ...
inline constexpr uint16_t key_length = 6;
inline constexpr uint16_t key_rounds = 7;
inline constexpr uint16_t compress_dictionary_size = 8;
inline constexpr uint16_t compress_private_algorithm = 9;  // variable length
}  // namespace p2_attr

namespace encapsulation {
inline constexpr uint16_t tunnel = 1;
inline constexpr uint16_t transport = 2;
inline constexpr uint16_t udp_tunnel = 3;            // RFC 3947 section 5.1
inline constexpr uint16_t udp_transport = 4;         // RFC 3947 section 5.1
inline constexpr uint16_t udp_tunnel_draft = 61443;  // draft-ietf-ipsec-nat-t-ike (pre-RFC)
inline constexpr uint16_t udp_transport_draft = 61444;
}  // namespace encapsulation

// A data attribute (RFC 2408 section 3.3): TV ("basic", a 2-octet value) or TLV ("variable").
// Kept in wire order with its format, so serialize(parse(x)) == x.
struct attribute {
    uint16_t type = 0;  // without the format bit
    bool tv = true;
    bytes value;  // 2 octets when tv
    bool operator==(const attribute&) const = default;
};
// An attribute's value as a number: TV, or TLV of 1..8 octets (life durations); nullopt when
// absent or longer. The first attribute of that type.
std::optional<uint64_t> attribute_value(std::span<const attribute> attrs, uint16_t type) noexcept;

struct transform {
    uint8_t number = 1;
    uint8_t id = key_ike;
    std::vector<attribute> attributes;
    bool operator==(const transform&) const = default;
};

// One Proposal payload. Proposals with the same number are one proposal (e.g. AH and ESP).
struct proposal {
    uint8_t number = 1;
    uint8_t protocol = protocol_id::isakmp;
    bytes spi;  // 0 (ISAKMP, Phase 1), 4 (AH/ESP), 2 (IPCOMP CPI)
    std::vector<transform> transforms;
    bool operator==(const proposal&) const = default;
};

struct sa_payload {
    uint32_t doi = doi_ipsec;
    uint32_t situation = situation::identity_only;
    std::vector<proposal> proposals;
    bool operator==(const sa_payload&) const = default;
};

struct ke_payload {
    bytes data;
    bool operator==(const ke_payload&) const = default;
};

// Identification types of the IPsec DOI (RFC 2407 section 4.6.2.1).
namespace id_type {
inline constexpr uint8_t ipv4_addr = 1;
inline constexpr uint8_t fqdn = 2;
inline constexpr uint8_t user_fqdn = 3;
inline constexpr uint8_t ipv4_addr_subnet = 4;
inline constexpr uint8_t ipv6_addr = 5;
inline constexpr uint8_t ipv6_addr_subnet = 6;
inline constexpr uint8_t ipv4_addr_range = 7;
inline constexpr uint8_t ipv6_addr_range = 8;
inline constexpr uint8_t der_asn1_dn = 9;
inline constexpr uint8_t der_asn1_gn = 10;
inline constexpr uint8_t key_id = 11;
}  // namespace id_type

struct id_payload {
    uint8_t type = id_type::ipv4_addr;
    uint8_t protocol = 0;  // IPsec DOI: IP protocol (47 for GRE), 0 any
    uint16_t port = 0;     // 0 any (500 in Phase 1 IDs per RFC 2407 section 4.6.2)
    bytes data;
    bool operator==(const id_payload&) const = default;
};

// CERT, CR (RFC 2408 sections 3.9, 3.10: encoding, then the certificate or the authority),
// Nonce and Vendor ID have IKEv2's layout (message.hpp): the same types. A Nonce is 8..256
// octets here (RFC 2409 section 5).
namespace cert_encoding = ike::cert_encoding;
using ike::cert_payload;
using cr_payload = ike::certreq_payload;  // `data`: the authority, may be empty (any CA)
using ike::nonce_payload;
using ike::vendor_payload;

struct hash_payload {
    bytes data;
    bool operator==(const hash_payload&) const = default;
};
struct sig_payload {
    bytes data;
    bool operator==(const sig_payload&) const = default;
};

namespace notify_type {
// RFC 2408 section 3.14.1 (errors 1..8191)
inline constexpr uint16_t invalid_payload_type = 1;
inline constexpr uint16_t doi_not_supported = 2;
inline constexpr uint16_t situation_not_supported = 3;
inline constexpr uint16_t invalid_cookie = 4;
inline constexpr uint16_t invalid_major_version = 5;
inline constexpr uint16_t invalid_exchange_type = 7;
inline constexpr uint16_t invalid_flags = 8;
inline constexpr uint16_t invalid_message_id = 9;
inline constexpr uint16_t invalid_protocol_id = 10;
inline constexpr uint16_t invalid_spi = 11;
inline constexpr uint16_t invalid_transform_id = 12;
inline constexpr uint16_t attributes_not_supported = 13;
inline constexpr uint16_t no_proposal_chosen = 14;
inline constexpr uint16_t bad_proposal_syntax = 15;
inline constexpr uint16_t payload_malformed = 16;
inline constexpr uint16_t invalid_key_information = 17;
inline constexpr uint16_t invalid_id_information = 18;
inline constexpr uint16_t invalid_hash_information = 23;
inline constexpr uint16_t authentication_failed = 24;
inline constexpr uint16_t invalid_signature = 25;
// IPsec DOI status (RFC 2407 section 4.6.3)
inline constexpr uint16_t responder_lifetime = 24576;
inline constexpr uint16_t replay_status = 24577;
inline constexpr uint16_t initial_contact = 24578;
// RFC 3706 (dead peer detection)
inline constexpr uint16_t r_u_there = 36136;
inline constexpr uint16_t r_u_there_ack = 36137;
}  // namespace notify_type
std::string_view notify_name(uint16_t type) noexcept;

struct notification_payload {
    uint32_t doi = doi_ipsec;
    uint8_t protocol = protocol_id::isakmp;
    bytes spi;  // 0, 4 (AH/ESP) or 16 (ISAKMP: the two cookies) octets
    uint16_t type = 0;
    bytes data;  // RESPONDER-LIFETIME: attributes; R-U-THERE(-ACK): a 4-octet sequence number
    bool operator==(const notification_payload&) const = default;
};

struct delete_payload {
    uint32_t doi = doi_ipsec;
    uint8_t protocol = protocol_id::isakmp;
    uint8_t spi_size = 16;    // 16 (ISAKMP cookies) or 4 (AH/ESP)
    std::vector<bytes> spis;  // each spi_size octets
    bool operator==(const delete_payload&) const = default;
};

// NAT-D (RFC 3947 section 3.2): HASH(CKY-I | CKY-R | IP | Port). `draft` keeps the payload
// number (20, or 130 of the drafts) for the round trip.
struct nat_d_payload {
    bytes hash;
    bool draft = false;
    bool operator==(const nat_d_payload&) const = default;
};
// NAT-OA (RFC 3947 section 5.2): the original address, ID type IPV4_ADDR or IPV6_ADDR.
struct nat_oa_payload {
    uint8_t type = id_type::ipv4_addr;
    bytes address;  // 4 or 16 octets
    bool draft = false;
    bool operator==(const nat_oa_payload&) const = default;
};

// A payload type the codec does not model (RFC 2408 says to answer INVALID-PAYLOAD-TYPE; the
// engine decides): kept verbatim.
struct opaque_payload {
    uint8_t type = 0;
    bytes body;
    bool operator==(const opaque_payload&) const = default;
};

using payload =
    std::variant<sa_payload, ke_payload, id_payload, cert_payload, cr_payload, hash_payload,
                 sig_payload, nonce_payload, notification_payload, delete_payload, vendor_payload,
                 nat_d_payload, nat_oa_payload, opaque_payload>;
payload_type type_of(const payload& p) noexcept;

struct message {
    header hdr;
    std::vector<payload> payloads;  // empty when hdr.encrypted()
    bytes encrypted;                // the body after the header when hdr.encrypted()
    bool operator==(const message&) const = default;
};

enum class parse_error : uint8_t {
    truncated_header,
    bad_major_version,   // not 1 (an IKEv2 message goes to message.hpp)
    length_mismatch,     // header length vs datagram, or bytes after the last payload
    too_long,            // over max_message_size
    truncated_payload,   // a payload header or body runs past what holds it
    bad_payload_length,  // shorter than its fixed part, or a size the RFC bounds (nonce)
    misplaced_payload,   // Proposal or Transform outside SA
    bad_doi,             // SA DOI not IPsec, or a situation other than SIT_IDENTITY_ONLY
    bad_proposal,        // proposal substructure: next payload, SPI size, count, length
    bad_transform,       // transform substructure: next payload, length
    bad_attribute,       // an attribute runs past its transform, or a basic one is TLV
    bad_id,              // address length vs ID type
    bad_notification,    // SPI size vs protocol
    bad_delete,          // SPI size vs protocol, count times size vs length
    bad_nat_oa,          // ID type vs address length
    empty_encrypted,     // E flag with no body, or a body not a multiple of 4 octets (no
                         // cipher RFC 2409 names has a smaller block)
    too_many_payloads,   // more than max_payloads
};
std::string_view name(parse_error e) noexcept;
inline constexpr size_t max_payloads = 64;
inline constexpr size_t max_proposals = 64;   // Proposal payloads in one SA
inline constexpr size_t max_attributes = 64;  // per transform

// Why and where: offset of the structure at fault from the start of what was parsed (the
// datagram for parse(), the chain for parse_payloads()), and the payload it belongs to (none
// for the header).
struct refusal {
    parse_error reason = parse_error::truncated_header;
    size_t offset = 0;
    payload_type payload = payload_type::none;
    bool operator==(const refusal&) const = default;
};
std::string describe(const refusal& r);  // "bad_attribute in SA at offset 72"

// What the parser checks, beyond "every length inside what holds it":
// - header: major version 1 (minor ignored), Length equal to the datagram (the caller strips
//   the non-ESP marker on UDP 4500) and at most max_message_size; E flag: the body is kept
//   opaque, non-empty and a multiple of 4 octets;
// - chain: at most max_payloads payloads, nothing after the last one; Proposal/Transform
//   only inside SA; unknown types kept as opaque_payload;
// - SA: DOI IPsec with situation SIT_IDENTITY_ONLY, at least one and at most max_proposals
//   Proposal payloads with Next Payload 2 and 0 on the last (Transforms: 3 and 0), the
//   transform count filling the proposal exactly, at least one transform, SPI size 0 or 16
//   for ISAKMP and 4 for AH/ESP (IPCOMP: 2 or 4); attributes within their transform, at most
//   max_attributes, and the RFCs' basic (B) types in TV form (phase 1 types for ISAKMP
//   proposals, phase 2 types for the others);
// - KE, Hash, Sig: non-empty; Nonce: 8..256 octets;
// - ID: the address types' exact sizes (IPv4 4, IPv4 subnet/range 8, IPv6 16, 32);
// - Notification: SPI size 0, 4 (AH/ESP) or 16 (ISAKMP);
// - Delete: SPI size 16 (ISAKMP) or 4 (AH/ESP), at least one SPI, SPIs filling the payload;
// - NAT-D: non-empty; NAT-OA: IPV4_ADDR with 4 octets or IPV6_ADDR with 16.
// Reserved fields are ignored on receipt and written as zero, so serialize(parse(x)) == x for
// a message whose reserved fields are zero.
wire::result<header, refusal> parse_header(std::span<const uint8_t> datagram);
wire::result<message, refusal> parse(std::span<const uint8_t> datagram);

// The payloads read before the chain ended (Next Payload 0) and how many octets they took.
// A decrypted body ends in padding (RFC 2409 appendix B), so parse_payloads() leaves bytes
// after the last payload to the caller; dmvpn-decode shows them.
using chain_prefix = codec::chain_prefix<payload>;
wire::result<chain_prefix, refusal> parse_payloads(payload_type first,
                                                   std::span<const uint8_t> chain);

using chain = codec::chain<payload_type>;
// The payload chain, each Next Payload set from its successor (the last one none). Throws
// std::length_error for a payload over 65535 octets.
chain serialize_payloads(const std::vector<payload>& payloads);
// The whole message; hdr.length is computed, and hdr.next unless the message is encrypted
// (then hdr.next names the first payload inside and `encrypted` is the body). Throws
// std::length_error over max_message_size.
bytes serialize(const message& m);

}  // namespace dmvpn::ike::v1
