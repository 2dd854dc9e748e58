// The IKEv1 engine's state (internal to control/ike/v1_*.cpp): ISAKMP SAs, their Quick Mode
// exchanges, the IPsec SA pairs, and the helpers the exchange files share.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "control/ike/ike_sa.hpp"
#include "control/ike/isakmp.hpp"
#include "control/ike/v1_crypto.hpp"
#include "control/ike/v1_engine.hpp"

namespace dmvpn::ike::v1 {

using ike::crypto::secret;

// Main Mode states as IOS names them in `show crypto isakmp sa`.
enum class p1_state : uint8_t {
    mm_sa_setup,   // MM2 sent (the SA chosen), waiting for KE/Ni: MM_SA_SETUP
    mm_key_exch,   // MM4 sent, waiting for IDii/HASH_I: MM_KEY_EXCH
    ag_init_exch,  // Aggressive Mode: AM2 sent, waiting for HASH_I: AG_INIT_EXCH
    qm_idle,       // authenticated: QM_IDLE
};
std::string_view ios_name(p1_state s) noexcept;

// A Quick Mode exchange we answer.
struct quick_mode {
    uint32_t mid = 0;
    bytes iv;            // CBC chaining within the exchange
    bytes last_request;  // QM1 as received (a retransmission gets `response` again)
    bytes response;      // QM2, once it may leave
    uint64_t child_id = 0;
    bytes ni_b, nr_b;  // HASH(3)
    bool answered = false;
    time_point started{};
};

// Our own Quick Mode as initiator (v1_initiator.cpp): QM1 sent, QM2 awaited.
struct own_quick_mode {
    uint32_t mid = 0;
    uint32_t spi = 0;   // our inbound SPI
    uint16_t pfs = 0;   // the PFS group offered (0: none)
    uint16_t mode = 0;  // the encapsulation mode offered (UDP-Transport behind a NAT)
    bytes iv, ni_b;
    std::unique_ptr<ike::crypto::key_exchange> kx;
    std::optional<uint64_t> replaces;  // the pair this one rekeys
};

// A request of ours awaiting its answer: re-sent after 2, 4, 8, ... s, `max_tries` times.
struct retransmit {
    bytes msg;
    uint32_t tries = 0, max_tries = 0;
    time_point next{};
    bool armed() const noexcept { return !msg.empty(); }
};

struct p1_sa {
    uint64_t id = 0;
    uint32_t tunnel = 0;
    std::string profile;
    uint32_t local = 0, peer = 0;
    uint16_t local_port = 500, peer_port = 500;
    uint64_t cky_i = 0, cky_r = 0;
    uint64_t indexed_as = 0;  // its key in engine::impl::sas_by_peer (peer_key when kept)
    p1_state state = p1_state::mm_sa_setup;
    // What Main Mode chose.
    uint16_t encr = 0, key_bits = 0, hash = 0, group = 0;
    uint32_t lifetime_s = 0;
    bytes sa_b;        // the initiator's SA payload body (HASH_I / HASH_R)
    bytes idi_b;       // Aggressive Mode: the initiator's ID body from AM1 (HASH_I at AM3)
    bool dpd = false;  // the peer announced RFC 3706
    // RFC 3947: both sent its vendor ID; NAT-D found a NAT in front of us / of the peer.
    bool natt = false, nat_local = false, nat_peer = false;
    bool behind_nat() const noexcept { return nat_local || nat_peer; }
    std::unique_ptr<ike::crypto::key_exchange> kx;
    bytes ni, nr, gxi, gxr;
    secret psk;
    bool signatures = false;  // RSA signatures (certificates), chosen at MM3; else the PSK
    crypto::phase1_keys keys;
    bytes iv;            // Phase 1 CBC chaining; after MM6: the last block of MM6
    bytes last_request;  // the last Main Mode request as received
    bytes last_response;
    std::string peer_id;
    time_point created{}, up_at{}, expire_at{};
    time_point keepalive_at{};                 // the next NAT keepalive (behind_nat() only)
    std::map<uint32_t, quick_mode> quick;      // by message ID
    std::vector<uint32_t> seen_informational;  // message IDs answered (replays dropped)
    // The initiator's side (v1_initiator.cpp): which Main Mode message we sent last (1, 3, 5),
    // the request awaiting its answer, our Quick Mode under way.
    bool initiator = false;
    uint8_t mm_sent = 0;
    retransmit retx;
    std::optional<own_quick_mode> own_qm;
    retransmit qm_retx;
    // DPD (RFC 3706), both roles: when the peer was last heard from, R-U-THERE outstanding.
    time_point last_rx{};
    uint32_t dpd_seq = 0;
    retransmit dpd_retx;      // msg: a marker; each try is a fresh Informational
    uint64_t timer_tick = 0;  // the wheel entry armed for it (v1_engine.cpp; 0: none)
};

struct child_rec {
    child_sa sa;
    uint64_t p1 = 0;                    // the ISAKMP SA that negotiated it
    uint16_t encr_v1 = 0, auth_v1 = 0;  // the transform as ISAKMP named it (show)
    bool installed = false;
    bool rekeyed = false;  // our Quick Mode replacing it has started (initiator)
    time_point up_at{}, expire_at{};
    uint64_t life_bytes = 0;  // 0: none; else deleted once either direction carried this many
    uint64_t in_bytes = 0, out_bytes = 0;  // the workers' counters (engine::usage)
    uint64_t in_packets = 0, out_packets = 0;
    uint64_t timer_tick = 0;  // the wheel entry armed for it (v1_engine.cpp; 0: none)
    uint64_t indexed_as = 0;  // its key in engine::impl::children_by_peer
};

// (peer, tunnel slot): what the per-peer indexes of engine::impl are keyed by.
inline uint64_t peer_key(uint32_t peer, uint32_t tunnel) noexcept {
    return (uint64_t(peer) << 32) | tunnel;
}

struct tunnel_policy {
    tunnel_binding binding;
    config::ike_settings ike;
    // `authentication: certificate`: our chain, RSA key and the peers' anchors (shared by the
    // profile's tunnels); nullptr with pre-shared keys.
    std::shared_ptr<const ike::detail::profile_state> signing;
};

// Our half of a Diffie-Hellman exchange the peer started, and the shared secret.
struct dh_half {
    std::unique_ptr<ike::crypto::key_exchange> kx;
    secret gxy;
};

// What Phase 1 chose from the initiator's SA payload.
struct p1_choice {
    proposal prop;  // the one proposal, with the one transform we echo
    uint16_t encr = 0, key_bits = 0, hash = 0, group = 0;
    uint32_t lifetime_s = 0;
};

struct engine::impl {
    std::map<uint32_t, tunnel_policy> tunnels;                   // by tunnel slot
    std::map<uint64_t, std::unique_ptr<p1_sa>> sas;              // by id
    std::map<uint64_t, uint64_t> by_cky_r;                       // our cookie -> id
    std::map<uint64_t, uint64_t> by_own_cky_i;                   // ours as initiator -> id
    std::map<std::pair<uint64_t, uint32_t>, uint64_t> by_cky_i;  // (their cookie, peer) -> id
    std::map<uint64_t, child_rec> children;                      // by id
    // Per-peer indexes, so that keying one more peer (INITIAL-CONTACT, the peer's older
    // ISAKMP SAs, make-before-break, a fresh SPI) is not a walk of every SA and pair: ids
    // by peer_key as the SA or pair was kept, and the pairs' inbound SPIs. index_* when an
    // entry goes into `sas` / `children`, unindex_* before it leaves.
    std::unordered_multimap<uint64_t, uint64_t> sas_by_peer, children_by_peer;
    std::unordered_multiset<uint32_t> inbound_spis;
    void index_sa(p1_sa& sa);
    void unindex_sa(p1_sa& sa);
    // Our pending Quick Mode ends: its SPI's reservation in inbound_spis goes with it.
    void drop_own_qm(p1_sa& sa);
    void index_child(child_rec& c);
    void unindex_child(const child_rec& c);
    // The ids of the SAs now with `peer` on `tunnel`, and of the pairs kept under `key`,
    // ascending (the order of `sas` and `children`).
    std::vector<uint64_t> sas_of(uint32_t peer, uint32_t tunnel) const;
    std::vector<uint64_t> children_of(uint64_t key) const;
    uint64_t next_id = engine::id_base;
    engine_counters cnt;
    size_t half_open = 0;
    time_point last_now{};  // show's clock: the latest datagram or tick
    std::shared_ptr<keylog::writer> key_log;
    // Unauthenticated answers (notifies to strangers): at most 10 a second.
    time_point notify_window{};
    uint32_t notifies_in_window = 0;
    // Timers, the IKEv2 engine's mechanism (ike_sa.hpp): each ISAKMP SA's and each pair's
    // earliest deadline is one entry in `wheel` (SAs and pairs draw ids from one counter), so
    // tick() runs only what came due. Whatever may move a deadline earlier touch()es its owner
    // (find(), find_own(), keep() do); the public entry points re-arm the touched ones before
    // they return. A deadline that moved later fires early, finds nothing due and re-arms.
    ike::detail::sa_wheel wheel{ike::detail::timer_resolution, ike::detail::timer_slots};
    std::vector<uint64_t> touched, due;

    static constexpr auto half_open_lifetime = std::chrono::seconds(30);
    // An answered Quick Mode whose QM3 never came is dropped this long after it started.
    static constexpr auto quick_mode_linger = std::chrono::seconds(60);

    // Timers (v1_engine.cpp).
    void touch(uint64_t id) { touched.push_back(id); }
    // A request of `sa`'s was answered (its retransmission cleared, or re-armed for the next
    // request): the wheel entry armed for that retransmission is superseded at once, so it is
    // dropped when it comes due rather than running the SA's timers for nothing (DPD moved
    // later by the peer's traffic is left to fire once: that happens per message).
    void answered(p1_sa& sa) {
        sa.timer_tick = 0;
        touch(sa.id);
    }
    void arm_touched();
    void run_timers(time_point now, outputs& out);
    // The earliest time sa_timers() / pair_timers() has something to do (nullopt: nothing).
    std::optional<time_point> next_deadline(const p1_sa& sa) const;
    std::optional<time_point> next_deadline(const child_rec& c) const;
    // Quick Modes left over, half-open expiry, the lifetime, retransmissions and DPD, NAT
    // keepalives of one ISAKMP SA.
    void sa_timers(p1_sa& sa, time_point now, outputs& out);
    // Our rekey (initiator) and the lifetime of one pair.
    void pair_timers(uint64_t child_id, time_point now, outputs& out);

    const tunnel_policy* policy(uint32_t tunnel) const;
    p1_sa* find(uint64_t cky_i, uint64_t cky_r);
    void send(const p1_sa& sa, bytes payload, outputs& out);
    // An unencrypted Informational with one notify (no SA to protect it), rate limited.
    void notify_plain(const datagram& d, uint64_t cky_i, uint64_t cky_r, uint16_t type,
                      time_point now, outputs& out);
    // An encrypted Informational (HASH(1) | payload) on an established SA.
    void send_informational(p1_sa& sa, const payload& p, outputs& out);
    // Protects `payloads` (HASH first is the caller's) as message `hdr` with `iv` chaining.
    bytes seal(const p1_sa& sa, header hdr, const std::vector<payload>& payloads, bytes& iv);
    // Decrypts a received message's body; nullopt (counted) if it does not decrypt.
    std::optional<bytes> open(const p1_sa& sa, const message& m, bytes& iv);
    // A Phase 2 message (Quick Mode's QM1, Informational): decrypted with `iv`, its payloads,
    // HASH(1) = prf(SKEYID_a, M-ID | the payloads after HASH) checked in constant time (or
    // HASH(2) with `ni_b` given). nullopt, counted, otherwise.
    std::optional<chain_prefix> open_hashed(const p1_sa& sa, const message& m, bytes& iv);
    void forget(uint64_t id, std::string why, bool tell_hub, outputs& out);
    void remove_child(uint64_t child_id, std::string why, outputs& out);
    // DELETE of the pair's inbound SPI sent (when its ISAKMP SA is up), then remove_child.
    void expire_child(uint64_t child_id, std::string why, outputs& out);
    uint64_t fresh_id() { return next_id++; }
    uint32_t fresh_spi() const;

    // Phase 1 pieces Main Mode and Aggressive Mode share (v1_main_mode.cpp): the responder's
    // state for a first message whose proposal was chosen; keeping it (half-open, by cookie);
    // INITIAL-CONTACT in `ps` dropping the peer's older SAs; the SA authenticated (QM_IDLE,
    // the oldest of too many ISAKMP SAs of the peer dropped, peer_up).
    // A first message (MM1, AM1) again from the same initiator cookie: answered from the cache
    // when it is the same bytes and the SA still waits in `waiting`, else dropped; true when
    // handled. The proposal of a new first message, or nullopt (half-open bound, counted;
    // NO-PROPOSAL-CHOSEN sent).
    bool first_seen(const datagram& d, const message& m, p1_state waiting, outputs& out);
    std::optional<p1_choice> first_choice(const datagram& d, const message& m,
                                          const sa_payload& sa_p, const tunnel_policy& pol,
                                          time_point now, outputs& out);
    std::unique_ptr<p1_sa> responder_sa(const datagram& d, const message& m,
                                        const p1_choice& choice, const tunnel_policy& pol,
                                        time_point now);
    void keep(std::unique_ptr<p1_sa> sa);
    // The first answer (MM2, AM2) as exchange `e`: our cookies and the chosen proposal in an
    // SA payload with the DOI and situation of the initiator's `offer`.
    static message first_answer(const p1_sa& sa, exchange e, const sa_payload& offer,
                                const p1_choice& choice);
    // Our DH half against the peer's public value `ke` in `group` (MM3, AM1, QM1 with PFS);
    // nullopt when our key could not be made (counted as dropped) or `ke` is refused (wrong
    // size, out of range: counted as invalid syntax, `refused` set, for the caller's
    // INVALID-KEY-INFORMATION).
    std::optional<dh_half> dh_answer(uint16_t group, const bytes& ke, bool& refused);
    // The responder's keys once the initiator's KE and nonce are in (MM3, AM1): our DH half
    // `kx` kept, our nonce drawn, SKEYID (from sa.psk, or from the nonces with signatures)
    // and its children, the IV. `gxy`: kx's shared secret with `gxi`.
    static void responder_keys(p1_sa& sa, std::unique_ptr<ike::crypto::key_exchange> kx,
                               const secret& gxy, const bytes& gxi, const bytes& ni);
    // Our identity answering the initiator's `theirs` (its protocol and port; our address, or
    // with signatures the profile's `local-id`) and HASH_R over its body (RFC 2409 section 5),
    // for MM6 and AM2.
    static std::pair<id_payload, secret> responder_id(const p1_sa& sa, const tunnel_policy& pol,
                                                      const id_payload& theirs);
    // The first answer leaves, cached for a retransmitted first message; the SA is kept.
    void answer_first(std::unique_ptr<p1_sa> sa, const datagram& d, const message& r, outputs& out);
    // The responder's SA a later Phase 1 message (MM3, MM5, AM3) is for, from its peer's
    // address; nullptr (counted as dropped) otherwise.
    p1_sa* phase1_sa(const datagram& d, const message& m);
    // A new IPsec SA pair of `sa` (both roles' Quick Mode) with the ESP transform, in UDP
    // (RFC 3948) behind a NAT; the SPIs, keys and lifetime are the caller's.
    child_rec new_pair(const p1_sa& sa, uint16_t encr, uint16_t encr_bits, uint16_t integ);
    void initial_contact(const p1_sa& sa, const std::vector<payload>& ps, outputs& out);
    void established(p1_sa& sa, time_point now, outputs& out);
    // Two hubs that initiated to each other at once: of the ISAKMP SA we initiated and the one
    // the peer did, once both are in use at both ends, the one with the lowest nonce goes,
    // deleted (with its IPsec SA pairs) by the end that initiated it. Looked at when a pair of
    // `peer` on `tunnel` is installed.
    void drop_duplicate(uint32_t peer, uint32_t tunnel, outputs& out);

    void main_mode(const datagram& d, const message& m, time_point now, outputs& out);
    // Aggressive Mode with a pre-shared key (v1_aggressive_mode.cpp), when the profile allows.
    void aggressive_mode(const datagram& d, const message& m, time_point now, outputs& out);
    void quick_mode_rx(p1_sa& sa, const datagram& d, const message& m, time_point now,
                       outputs& out);
    void informational(p1_sa& sa, const message& m, time_point now, outputs& out);

    // The initiator (v1_initiator.cpp).
    void initiate(uint32_t tunnel, uint32_t peer, time_point now, outputs& out);
    // One of our own SAs as initiator that `d` is for (our cookie is its CKY-I; the same
    // engine may answer the peer too: the spoke emulator's spokes key with each other).
    p1_sa* find_own(const datagram& d, const message& m);
    // A Main Mode answer (or an unprotected notify) to one of our own SAs: true if it was one.
    bool initiator_rx(const datagram& d, const message& m, time_point now, outputs& out);
    // QM2 answering our QM1: true if `m` was it.
    bool own_quick_rx(p1_sa& sa, const message& m, time_point now, outputs& out);
    void start_quick(p1_sa& sa, std::optional<uint64_t> replaces, time_point now, outputs& out);
    // Our Main Mode or Quick Mode request re-sent, DPD (both roles); why the SA is dead (the
    // caller forgets it), else nullopt.
    std::optional<std::string> retransmit_and_dpd(p1_sa& sa, time_point now, outputs& out);
    // When our Quick Mode replaces pair `c` (90% of its lifetime; nullopt: not ours to rekey).
    std::optional<time_point> rekey_time(const child_rec& c) const;
    void dpd_ack(p1_sa& sa, const notification_payload& n);
    uint64_t fresh_cookie() const;
};

// Phase 1 helpers (v1_main_mode.cpp). The vendor IDs of RFC 3706 (DPD) and RFC 3947 (NAT-T).
extern const bytes dpd_vid;
extern const bytes natt_vid;
// The peer's DPD (RFC 3706) and NAT-T (RFC 3947) vendor IDs among `ps`: sa.dpd, sa.natt.
void note_vendor_ids(const std::vector<payload>& ps, p1_sa& sa);
// NAT-D (RFC 3947 section 3.2) with the SA's hash over CKY-I | CKY-R | IP | Port.
bytes nat_d(const p1_sa& sa, uint32_t ip, uint16_t port);
// The peer's NAT-D payloads in `ps` against the addresses of `d`: nat_local / nat_peer.
void check_nat_d(p1_sa& sa, const datagram& d, const std::vector<payload>& ps);
// Ours for a reply to `d`: the hash of the peer's address, then of ours.
void add_nat_d(const p1_sa& sa, const datagram& d, std::vector<payload>& ps);
// The initiator's transforms against our policies, in priority order.
std::optional<p1_choice> choose(const sa_payload& sa,
                                const std::vector<config::ike_settings::isakmp_policy>& pols);
// The key for the peer's address (or, when known, its identity), else the wildcard; nullptr if
// neither.
const config::ike_psk* find_psk(const config::ike_settings& ike, uint32_t peer,
                                std::string_view identity = {});
// An ID payload as text (an address, else its printable octets), as show prints it.
std::string id_text(const id_payload& id);

// Helpers shared by the exchange files (the byte helpers are the IKEv2 engine's).
using ike::detail::be32;
using ike::detail::be64;
using ike::detail::ipv4_text;
using ike::detail::random_bytes;
// The cookies as a Notification or Delete SPI (RFC 2408 section 3.15: CKY-I | CKY-R).
bytes cookies(const p1_sa& sa);
delete_payload isakmp_delete(const p1_sa& sa);
delete_payload esp_delete(uint32_t spi);
// The body (after the generic header) of the first payload of `type` in a raw chain starting
// with payload `first`; empty if absent. The chain was parsed before, so lengths are sane.
std::span<const uint8_t> raw_body(payload_type first, std::span<const uint8_t> chain,
                                  payload_type type);
// The length of the chain's first payload (its generic header says).
size_t first_payload_length(std::span<const uint8_t> chain);
// The integrity key length of an IANA integrity ID the dataplane has (0: none).
size_t integ_key_size(uint16_t integ);
// Both directions' ESP keys of `c` (SPIs, cipher and integrity set): KEYMAT with the SPI of
// the receiving end of each direction (RFC 2409 section 5.5), g(qm)^xy with PFS.
void pair_keys(const p1_sa& sa, child_sa& c, std::optional<ike::crypto::cspan> g_qm,
               std::span<const uint8_t> ni_b, std::span<const uint8_t> nr_b);
template <typename T>
const T* find_payload(const std::vector<payload>& ps) {
    for (const auto& p : ps) {
        if (const auto* t = std::get_if<T>(&p)) {
            return t;
        }
    }
    return nullptr;
}

// RSA signatures (v1_signatures.cpp). A certificate profile's chain, key (RSA) and anchors;
// the error names the profile and the file.
wire::result<std::shared_ptr<const ike::detail::profile_state>, std::string> load_signing(
    const config::ipsec_profile& p);
// Our Phase 1 identity with certificates: `local-id` (IPv4, FQDN, user@FQDN) or the address
// (protocol and port left 0 for the caller).
id_payload signing_id(const config::ike_settings& s, uint32_t local);
// CR payloads naming our anchors (MM3, MM4).
void add_cert_requests(const ike::detail::profile_state& p, std::vector<payload>& ps);
// CERT (our chain, leaf first) and SIG over `hash` (HASH_I or HASH_R); why not.
std::optional<std::string> add_signature(const ike::detail::profile_state& p,
                                         ike::crypto::cspan hash, std::vector<payload>& ps);
// The peer's CERT payloads chained to our anchors with `id` in the leaf, and its SIG over
// `hash`; why not.
std::optional<std::string> signature_fails(const ike::detail::profile_state& p,
                                           const std::vector<payload>& ps, const id_payload& id,
                                           ike::crypto::cspan hash);

}  // namespace dmvpn::ike::v1
