// IKEv2 messages (RFC 7296 section 3, RFC 7383 fragments): the model, the parser and the
// builder. Control-side code (IKE thread, tools, tests): allocates freely, never on a worker.
// No cryptography here: an SK/SKF payload is carried as its body (IV, ciphertext, ICV);
// control/ike/crypto.hpp protects and unprotects it, parse_payloads() reads what it held.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

#include "control/ike/codec.hpp"
#include "dataplane/wire/result.hpp"

namespace dmvpn::ike {

using bytes = std::vector<uint8_t>;

using codec::generic_payload_header_size;  // 4
using codec::header_size;                  // 28
// Largest message we accept or build (RFC 7296 section 2: at least 1280 must be accepted; a
// certificate chain in IKE_AUTH is a few KB; fragments reassemble to at most this).
inline constexpr size_t max_message_size = 65535;
// UDP 4500 carries IKE after four zero octets (RFC 3948 section 2.2).
inline constexpr size_t non_esp_marker_size = 4;

enum class exchange : uint8_t {
    ike_sa_init = 34,
    ike_auth = 35,
    create_child_sa = 36,
    informational = 37,
};
std::string_view name(exchange e) noexcept;

enum class payload_type : uint8_t {
    none = 0,
    sa = 33,
    ke = 34,
    idi = 35,
    idr = 36,
    cert = 37,
    certreq = 38,
    auth = 39,
    nonce = 40,
    notify = 41,
    del = 42,
    vendor = 43,
    tsi = 44,
    tsr = 45,
    sk = 46,
    cp = 47,
    eap = 48,
    skf = 53,  // RFC 7383
};
std::string_view name(payload_type p) noexcept;

namespace header_flag {
inline constexpr uint8_t initiator = 0x08;
inline constexpr uint8_t version = 0x10;
inline constexpr uint8_t response = 0x20;
}  // namespace header_flag

struct header {
    uint64_t spi_i = 0;
    uint64_t spi_r = 0;
    payload_type next = payload_type::none;  // filled in by serialize()
    uint8_t major = 2;
    uint8_t minor = 0;
    exchange exch = exchange::ike_sa_init;
    uint8_t flags = 0;
    uint32_t message_id = 0;
    uint32_t length = 0;  // filled in by serialize()

    bool is_response() const noexcept { return (flags & header_flag::response) != 0; }
    bool from_initiator() const noexcept { return (flags & header_flag::initiator) != 0; }
};

// IANA "IKEv2 Parameters" numbers used by the hub.
namespace protocol_id {
inline constexpr uint8_t ike = 1;
inline constexpr uint8_t ah = 2;
inline constexpr uint8_t esp = 3;
}  // namespace protocol_id

enum class transform_type : uint8_t { encr = 1, prf = 2, integ = 3, dh = 4, esn = 5 };

namespace encr_id {
inline constexpr uint16_t des3 = 3;  // ENCR_3DES: ESP only here (legacy peers), no key length
inline constexpr uint16_t aes_cbc = 12;
inline constexpr uint16_t aes_gcm_8 = 18;
inline constexpr uint16_t aes_gcm_12 = 19;
inline constexpr uint16_t aes_gcm_16 = 20;
}  // namespace encr_id
namespace prf_id {
inline constexpr uint16_t hmac_sha1 = 2;
inline constexpr uint16_t hmac_sha2_256 = 5;
inline constexpr uint16_t hmac_sha2_384 = 6;
inline constexpr uint16_t hmac_sha2_512 = 7;
}  // namespace prf_id
namespace integ_id {
inline constexpr uint16_t none = 0;
inline constexpr uint16_t hmac_md5_96 = 1;  // ESP only here (legacy peers)
inline constexpr uint16_t hmac_sha1_96 = 2;
inline constexpr uint16_t hmac_sha2_256_128 = 12;
inline constexpr uint16_t hmac_sha2_384_192 = 13;
inline constexpr uint16_t hmac_sha2_512_256 = 14;
}  // namespace integ_id
namespace dh_id {
inline constexpr uint16_t none = 0;
inline constexpr uint16_t modp1024 = 2;  // IKEv1 legacy (RFC 2409), never a default
inline constexpr uint16_t modp1536 = 5;  // likewise (RFC 3526)
inline constexpr uint16_t modp2048 = 14;
inline constexpr uint16_t ecp256 = 19;
inline constexpr uint16_t ecp384 = 20;
inline constexpr uint16_t curve25519 = 31;
}  // namespace dh_id
namespace esn_id {
inline constexpr uint16_t no = 0;
inline constexpr uint16_t yes = 1;
}  // namespace esn_id
inline constexpr uint16_t attr_key_length = 14;  // the only transform attribute (TV format)

// Transform attributes (RFC 7296 section 3.3.5). Key Length (TV) is the only one defined and
// the only one understood. A well-formed attribute of any other type does not refuse the
// message: section 3.3.6 says a transform "that contains a Transform Attribute it does not
// understand" is unacceptable while "other transforms with the same Transform Type are
// processed as usual", so parse() keeps such attributes verbatim in `unknown_attributes` and
// the proposal logic must skip a transform whose `unknown_attributes` is not empty.
// parse_error::bad_attribute is for attributes that are malformed: one that runs past its
// transform, Key Length in TLV form, Key Length twice. serialize() writes Key Length first,
// then `unknown_attributes` as they were.
struct transform {
    transform_type type = transform_type::encr;
    uint16_t id = 0;
    std::optional<uint16_t> key_bits;  // Key Length attribute (ENCR only)
    bytes unknown_attributes;          // encoded attributes other than Key Length (see above)
    bool operator==(const transform&) const = default;
};

struct proposal {
    uint8_t number = 1;
    uint8_t protocol = protocol_id::ike;
    bytes spi;  // 0 (IKE_SA_INIT), 8 (IKE rekey) or 4 (ESP) bytes
    std::vector<transform> transforms;
    bool operator==(const proposal&) const = default;
};

struct sa_payload {
    std::vector<proposal> proposals;
    bool operator==(const sa_payload&) const = default;
};
struct ke_payload {
    uint16_t group = 0;
    bytes data;
    bool operator==(const ke_payload&) const = default;
};

namespace id_type {
inline constexpr uint8_t ipv4_addr = 1;
inline constexpr uint8_t fqdn = 2;
inline constexpr uint8_t rfc822_addr = 3;
inline constexpr uint8_t ipv6_addr = 5;
inline constexpr uint8_t der_asn1_dn = 9;
inline constexpr uint8_t der_asn1_gn = 10;
inline constexpr uint8_t key_id = 11;
}  // namespace id_type

struct id_payload {  // IDi or IDr
    uint8_t type = id_type::ipv4_addr;
    bytes data;
    bool operator==(const id_payload&) const = default;
};

namespace cert_encoding {
inline constexpr uint8_t x509_signature = 4;
}  // namespace cert_encoding
struct cert_payload {
    uint8_t encoding = cert_encoding::x509_signature;
    bytes data;  // DER
    bool operator==(const cert_payload&) const = default;
};
struct certreq_payload {
    uint8_t encoding = cert_encoding::x509_signature;
    bytes data;  // concatenated SHA-1 hashes of trusted CAs' SubjectPublicKeyInfo
    bool operator==(const certreq_payload&) const = default;
};

namespace auth_method {
inline constexpr uint8_t rsa_signature = 1;
inline constexpr uint8_t shared_key_mic = 2;
inline constexpr uint8_t ecdsa_sha256_p256 = 9;
inline constexpr uint8_t ecdsa_sha384_p384 = 10;
inline constexpr uint8_t ecdsa_sha512_p521 = 11;
inline constexpr uint8_t digital_signature = 14;  // RFC 7427
}  // namespace auth_method
struct auth_payload {
    uint8_t method = auth_method::shared_key_mic;
    bytes data;
    bool operator==(const auth_payload&) const = default;
};

struct nonce_payload {
    bytes data;  // 16..256 octets (RFC 7296 section 3.9)
    bool operator==(const nonce_payload&) const = default;
};

namespace notify_type {
// errors
inline constexpr uint16_t unsupported_critical_payload = 1;
inline constexpr uint16_t invalid_ike_spi = 4;
inline constexpr uint16_t invalid_major_version = 5;
inline constexpr uint16_t invalid_syntax = 7;
inline constexpr uint16_t invalid_message_id = 9;
inline constexpr uint16_t invalid_spi = 11;
inline constexpr uint16_t no_proposal_chosen = 14;
inline constexpr uint16_t invalid_ke_payload = 17;
inline constexpr uint16_t authentication_failed = 24;
inline constexpr uint16_t single_pair_required = 34;
inline constexpr uint16_t no_additional_sas = 35;
inline constexpr uint16_t internal_address_failure = 36;
inline constexpr uint16_t failed_cp_required = 37;
inline constexpr uint16_t ts_unacceptable = 38;
inline constexpr uint16_t invalid_selectors = 39;
inline constexpr uint16_t temporary_failure = 43;
inline constexpr uint16_t child_sa_not_found = 44;
// status
inline constexpr uint16_t initial_contact = 16384;
inline constexpr uint16_t set_window_size = 16385;
inline constexpr uint16_t additional_ts_possible = 16386;
inline constexpr uint16_t ipcomp_supported = 16387;
inline constexpr uint16_t nat_detection_source_ip = 16388;
inline constexpr uint16_t nat_detection_destination_ip = 16389;
inline constexpr uint16_t cookie = 16390;
inline constexpr uint16_t use_transport_mode = 16391;
inline constexpr uint16_t http_cert_lookup_supported = 16392;
inline constexpr uint16_t rekey_sa = 16393;
inline constexpr uint16_t esp_tfc_padding_not_supported = 16394;
inline constexpr uint16_t non_first_fragments_also = 16395;
inline constexpr uint16_t mobike_supported = 16396;
inline constexpr uint16_t multiple_auth_supported = 16404;
inline constexpr uint16_t eap_only_authentication = 16417;
inline constexpr uint16_t childless_ikev2_supported = 16418;      // RFC 6023
inline constexpr uint16_t ikev2_fragmentation_supported = 16430;  // RFC 7383
inline constexpr uint16_t signature_hash_algorithms = 16431;      // RFC 7427
}  // namespace notify_type
std::string_view notify_name(uint16_t type) noexcept;

struct notify_payload {
    uint8_t protocol = 0;  // 0, or protocol_id::ike / esp when spi is set
    bytes spi;
    uint16_t type = 0;
    bytes data;
    bool operator==(const notify_payload&) const = default;
};

struct delete_payload {
    uint8_t protocol = protocol_id::ike;
    uint8_t spi_size = 0;     // 0 (IKE) or 4 (ESP)
    std::vector<bytes> spis;  // each spi_size bytes
    bool operator==(const delete_payload&) const = default;
};

struct vendor_payload {
    bytes id;
    bool operator==(const vendor_payload&) const = default;
};

namespace ts_type {
inline constexpr uint8_t ipv4_addr_range = 7;
inline constexpr uint8_t ipv6_addr_range = 8;
}  // namespace ts_type
struct traffic_selector {
    uint8_t type = ts_type::ipv4_addr_range;
    uint8_t ip_protocol = 0;  // 0: any; 47: GRE
    uint16_t start_port = 0;
    uint16_t end_port = 65535;
    bytes start_address;  // 4 (IPv4) or 16 (IPv6) bytes
    bytes end_address;
    bool operator==(const traffic_selector&) const = default;
};
struct ts_payload {  // TSi or TSr
    std::vector<traffic_selector> selectors;
    bool operator==(const ts_payload&) const = default;
};

// Encrypted and Authenticated (section 3.14): always the last payload of the outer chain.
struct sk_payload {
    payload_type first_inner = payload_type::none;
    bytes body;  // IV || ciphertext || ICV
    bool operator==(const sk_payload&) const = default;
};
// Encrypted and Authenticated Fragment (RFC 7383 section 2.5). first_inner is none except in
// fragment 1.
struct skf_payload {
    payload_type first_inner = payload_type::none;
    uint16_t number = 1;
    uint16_t total = 1;
    bytes body;  // IV || ciphertext || ICV
    bool operator==(const skf_payload&) const = default;
};

// A payload the hub does not interpret (CP, EAP, unknown types): kept so a message can be
// answered (UNSUPPORTED_CRITICAL_PAYLOAD when `critical` and the type is unknown).
struct opaque_payload {
    uint8_t type = 0;
    bool critical = false;
    bytes body;
    bool operator==(const opaque_payload&) const = default;
};

// IDi/IDr and TSi/TSr share a layout; the variant keeps which one through `kind`.
struct id_payload_i : id_payload {};
struct id_payload_r : id_payload {};
struct ts_payload_i : ts_payload {};
struct ts_payload_r : ts_payload {};

using payload =
    std::variant<sa_payload, ke_payload, id_payload_i, id_payload_r, cert_payload, certreq_payload,
                 auth_payload, nonce_payload, notify_payload, delete_payload, vendor_payload,
                 ts_payload_i, ts_payload_r, sk_payload, skf_payload, opaque_payload>;
payload_type type_of(const payload& p) noexcept;

struct message {
    header hdr;
    std::vector<payload> payloads;
};

// Why a message or payload chain was refused; each maps to INVALID_SYNTAX (or to
// INVALID_MAJOR_VERSION / UNSUPPORTED_CRITICAL_PAYLOAD where the RFC says so).
enum class parse_error : uint8_t {
    truncated_header,
    bad_major_version,
    length_mismatch,       // header length vs datagram length
    too_long,              // over max_message_size
    truncated_payload,     // a payload header or body runs past the message
    bad_payload_length,    // shorter than its fixed part
    unsupported_critical,  // unknown payload type with the critical bit
    sk_not_last,           // SK/SKF followed by another payload
    bad_proposal,          // proposal/transform substructure inconsistent
    bad_attribute,         // a transform attribute malformed
    bad_ke,                //
    bad_notify,            // SPI size / protocol inconsistent
    bad_delete,            // SPI size times count vs length
    bad_traffic_selector,  // TS length vs type, start > end
    bad_fragment,          // SKF number 0 or above total
    too_many_payloads,     // more than max_payloads
};
std::string_view name(parse_error e) noexcept;
inline constexpr size_t max_payloads = 64;

// What the parser checks, beyond "every length inside what holds it":
// - header: major version 2 (minor ignored), Length equal to the datagram's size (the caller
//   strips the non-ESP marker on UDP 4500) and at most max_message_size;
// - chain: at most max_payloads payloads, nothing after the last one, SK/SKF last; an unknown
//   payload type is kept as opaque_payload unless its critical bit is set; the critical bit of
//   a known type is ignored (section 2.5), and serialize() writes it as 0 (CP and EAP, kept
//   opaque, keep theirs);
// - SA: at least one proposal, Last Substruc 2 before the last proposal and 0 on it (transforms:
//   3 and 0), the announced transform count filling the proposal exactly, SPI size 0 or 8 for
//   IKE and 4 for ESP/AH (other protocols: any); attributes, see `transform`;
// - KE: non-empty data, of the group's exact size for groups 14, 19, 20 and 31;
// - Nonce: 16..256 octets (bad_payload_length otherwise);
// - Notify: an SPI only with protocol IKE (8 octets) or ESP/AH (4 octets);
// - Delete: IKE with SPI size 0 and no SPIs, ESP/AH with SPI size 4, SPIs filling the payload;
// - TS: IPv4/IPv6 ranges only (others: bad_traffic_selector), selector length of the type,
//   start address <= end address, start port <= end port unless OPAQUE (65535..0);
// - SKF: 1 <= number <= total, Next Payload 0 except in fragment 1.
// Reserved fields are ignored on receipt and written as zero, so serialize(parse(x)) == x for a
// message whose reserved fields are zero and whose attributes put Key Length first.
wire::result<header, parse_error> parse_header(std::span<const uint8_t> datagram);
// A whole message (the IKE header and its payload chain). An SK/SKF payload ends the chain.
wire::result<message, parse_error> parse(std::span<const uint8_t> datagram);
// A payload chain starting with `first` (what an SK payload decrypts to).
wire::result<std::vector<payload>, parse_error> parse_payloads(payload_type first,
                                                               std::span<const uint8_t> chain);

// The payloads read before the chain ended (Next Payload 0, or an SK/SKF payload) and how many
// bytes they took: parse_payloads() refuses bytes after the last payload (length_mismatch);
// dmvpn-decode shows them instead, as Wireshark's isakmp.extradata.
using chain_prefix = codec::chain_prefix<payload>;
wire::result<chain_prefix, parse_error> parse_payload_prefix(payload_type first,
                                                             std::span<const uint8_t> chain);

// The payload chain's bytes, each payload's Next Payload field set from its successor (the
// last one none). Returns the chain and the type of its first payload.
using chain = codec::chain<payload_type>;
chain serialize_payloads(const std::vector<payload>& payloads);
// The whole message; hdr.next and hdr.length are computed. Throws std::length_error for a
// payload over 65535 or a message over max_message_size octets (the caller built it too big).
bytes serialize(const message& m);

// The IKE header with next/length as given (for building SK messages, whose length is known
// only after encryption): header_size bytes.
bytes serialize_header(const header& h);

}  // namespace dmvpn::ike
