// The engine's state (IKE SAs, CHILD_SAs, profiles) and the helpers its exchange files share.
// Internal to control/ike: the IKE thread only, never the control lcore or a worker.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "control/ike/crypto.hpp"
#include "control/ike/engine.hpp"
#include "control/ike/fragments.hpp"
#include "control/ike/message.hpp"
#include "control/ike/show.hpp"
#include "control/timer_wheel.hpp"

namespace dmvpn::ike::detail {

using std::chrono::seconds;

// Retransmission (RFC 7296 section 2.4): the first after 2 s, doubling each time.
inline constexpr auto retransmit_base = seconds(2);
inline constexpr uint32_t retransmit_tries = 5;
// A responder's half-open IKE SA (IKE_SA_INIT answered, no IKE_AUTH yet) lives this long.
inline constexpr auto half_open_timeout = seconds(30);
// A CHILD_SA whose install the hub never confirmed is given up after this long.
inline constexpr auto install_timeout = seconds(30);
// The cookie secret rotates this often; cookies of the previous one stay valid.
inline constexpr auto cookie_rotation = seconds(120);
// Nonces we send (RFC 7296 section 2.10: at least half the PRF's key size, at least 16).
inline constexpr size_t nonce_size = 32;
// INVALID_KE_PAYLOAD / COOKIE answers the initiator follows before it gives up.
inline constexpr uint32_t max_init_restarts = 3;
// RFC 7383: plaintext of partly reassembled messages the engine holds over all its SAs (each
// message is bounded by fragments.hpp's limits; this bounds how many of them).
inline constexpr size_t fragment_memory = size_t(16) << 20;
// Unauthenticated INVALID_IKE_SPI answers (RFC 7296 section 2.21.4) per second.
inline constexpr uint32_t invalid_spi_replies_per_s = 10;

struct profile_state {
    std::string name;
    config::ike_settings settings;
    uint32_t replay_window = 1024;
    struct psk {
        std::string peer;  // empty: wildcard
        crypto::secret key;
    };
    std::vector<psk> psks;
    // Certificate authentication: our chain (leaf first), its key, the peers' trust anchors,
    // and the AUTH method for a peer without RFC 7427 (1 for RSA, 9/10/11 by ECDSA curve).
    std::vector<std::shared_ptr<const crypto::certificate>> chain;
    std::shared_ptr<const crypto::private_key> key;
    std::shared_ptr<const crypto::trust_store> anchors;
    uint8_t classic_method = 0;
    bool certificates() const noexcept { return key != nullptr; }
};

enum class sa_state : uint8_t {
    init_sent,    // initiator: IKE_SA_INIT sent
    half_open,    // responder: IKE_SA_INIT answered
    auth_sent,    // initiator: IKE_AUTH sent
    established,  // authenticated (its first CHILD_SA may still be installing)
};
std::string_view name(sa_state s) noexcept;

// What an outstanding request of ours is for (so its response is processed by its exchange).
enum class req_kind : uint8_t {
    sa_init,
    auth,
    dpd,
    delete_ike,
    delete_child,
    rekey_child,
    rekey_ike,
};

struct queued_request {
    req_kind kind = req_kind::dpd;
    uint64_t child = 0;  // delete_child / rekey_child: which CHILD_SA
};

struct outstanding {
    req_kind kind = req_kind::dpd;
    uint64_t child = 0;
    uint32_t mid = 0;
    std::vector<bytes> packets;
    time_point next{};
    uint32_t tries = 0;      // retransmissions so far
    uint32_t max_tries = 0;  // after this many, the peer is given up
    // rekey_child: what we offered
    uint32_t new_spi = 0;
    crypto::secret nonce;
    std::unique_ptr<crypto::key_exchange> dh;
    uint64_t new_ike_spi = 0;  // rekey_ike
};

enum class child_state : uint8_t {
    installing,  // install_child sent, installed() not yet
    installed,
    rekeyed,   // replaced by a newer pair: deleted once its DELETE exchange completes
    deleting,  // DELETE sent for it
};

struct child {
    child_sa sa;
    child_state state = child_state::installing;
    time_point created{}, rekey_at{}, expire_at{};
    uint64_t in_bytes = 0, in_packets = 0, out_bytes = 0, out_packets = 0;
    bool rekey_started = false;
    uint64_t replaced_by = 0;
    // Created by a rekey: whether we sent its request, and the lower of its exchange's nonces
    // (section 2.8.1: of two pairs from simultaneous rekeys the one with the lowest nonce goes).
    bool we_initiated = false;
    bytes low_nonce;
};

struct ike_sa {
    uint64_t id = 0;
    uint32_t tunnel = 0;
    std::string profile;
    bool initiator = false;  // we are the original initiator of this IKE SA
    uint32_t local = 0, peer = 0;
    uint16_t local_port = 500, peer_port = 500;
    uint64_t spi_i = 0, spi_r = 0;
    sa_state state = sa_state::init_sent;
    bool up = false;  // peer_up was emitted

    crypto::ike_suite suite;
    crypto::ike_keys keys;
    bytes ni, nr;
    std::unique_ptr<crypto::key_exchange> dh;
    bytes init_request, init_response;  // as sent/received, for AUTH (section 2.15)
    // Responder: its key in engine::impl::by_init (the peer's address and port, SPIi, as the
    // IKE_SA_INIT came), so destroy() and retire() find the entry without a walk.
    std::optional<std::tuple<uint32_t, uint16_t, uint64_t>> init_key;
    bytes cookie;  // initiator: the COOKIE the responder asked for
    uint32_t init_restarts = 0;

    bool nat_local = false, nat_peer = false;
    // Behind a NAT (nat_local): the next NAT keepalive (RFC 3948 section 2.3), every
    // `nat-keepalive` seconds while established; unset until the first timer run arms it.
    time_point keepalive_at{};
    // peer_fragmentation: RFC 7383 negotiated (both ends sent IKEV2_FRAGMENTATION_SUPPORTED).
    bool peer_fragmentation = false, peer_signature_hashes = false;
    // The peer's fragmented request (at recv_mid) and response (to ours) being reassembled.
    reassembly frag_request, frag_response;
    std::string peer_identity;
    // How our AUTH was made and how the peer's AUTH verified (`show crypto ikev2 sa`'s "Auth
    // sign" and "Auth verify"): set in IKE_AUTH, as each side is done.
    show::auth_kind auth_sign = show::auth_kind::psk, auth_verify = show::auth_kind::psk;

    // Message IDs (window size 1).
    uint32_t next_mid = 0;  // our next request
    uint32_t recv_mid = 0;  // the peer's next request
    // The retransmit cache: the last request the peer sent and our answer to it. `held`:
    // answered once the CHILD_SA it creates is installed.
    std::optional<uint32_t> cached_mid;
    bytes cached_request;
    std::vector<bytes> cached_response;
    bool held = false;
    uint64_t held_child = 0;
    std::vector<payload> held_base;  // the held response without its CHILD_SA part
    exchange held_exchange = exchange::ike_auth;

    std::optional<outstanding> out;
    std::deque<queued_request> queue;

    // Initiator of the first CHILD_SA: our inbound SPI.
    uint32_t first_child_spi = 0;

    std::vector<uint64_t> children;
    time_point created{}, last_inbound{}, established_at{}, rekey_at{}, expire_at{};
    bool rekey_started = false;
    // The old half of an IKE SA rekey (section 2.18): no children, no peer_up/down, gone once
    // its DELETE exchange completes or it expires.
    bool retired = false;
    // Our initiation given up because the peer's own IKE SA with us came up first: it ends
    // without initiation_failed (abandon_initiations, engine.cpp).
    bool abandoned = false;
    // Timers (engine.cpp): the wheel tick of the earliest timer armed for this SA (0: none),
    // and whether it was looked up in the current engine call (re-armed at the call's end).
    uint64_t timer_tick = 0;
    bool touched = false;
};

// A timer wheel entry: an SA and the tick it was armed for. Entries an earlier one superseded
// (or whose SA is gone) are dropped when they come due.
struct sa_timer {
    uint64_t id = 0;
    uint64_t tick = 0;
    bool operator==(const sa_timer&) const = default;
};
// The wheel's grain (the IKE thread ticks every 10 ms) and size: 16,384 slots of 10 ms are
// 164 s a revolution; longer deadlines (lifetimes) wait in their slot for more rounds.
inline constexpr auto timer_resolution = std::chrono::milliseconds(10);
inline constexpr size_t timer_slots = 16384;
using sa_wheel = control::timer_wheel<sa_timer>;

// Both engines keep one wheel entry per owner (an SA, or an IKEv1 pair) for its earliest
// deadline; `armed` is the owner's record of the tick of that entry (0: none). arm_timer()
// files `when` unless an entry due no later is there already (it re-arms when it fires).
inline void arm_timer(sa_wheel& wheel, uint64_t id, uint64_t& armed, time_point when) {
    const uint64_t tick = wheel.tick_of(when);
    if (armed != 0 && armed <= tick) {
        return;
    }
    armed = wheel.schedule(when, sa_timer{id, tick});
}

// Advances `wheel` to `now`: the owners whose current entry came due go to `due` (their `armed`
// cleared); entries an earlier one superseded, or whose owner is gone, are dropped.
// `armed_of(id)`: the owner's `armed`, nullptr when it is gone. Deadlines round up to the
// wheel's grain and the present rounds down: a timer never fires early, at most a grain late.
template <typename ArmedOf>
void collect_due(sa_wheel& wheel, time_point now, ArmedOf&& armed_of, std::vector<uint64_t>& due) {
    wheel.advance(now, [&](const sa_timer& t) {
        uint64_t* armed = armed_of(t.id);
        if (armed == nullptr || *armed != t.tick) {
            return;
        }
        *armed = 0;
        due.push_back(t.id);
    });
}

}  // namespace dmvpn::ike::detail

namespace dmvpn::ike {

struct engine::impl {
    using sa_ptr = std::unique_ptr<detail::ike_sa>;

    std::map<std::string, detail::profile_state> profiles;
    std::map<uint32_t, tunnel_binding> tunnels;
    std::map<uint64_t, sa_ptr> sas;                 // by id
    std::unordered_map<uint64_t, uint64_t> by_spi;  // our IKE SPI -> id
    // Responder: (peer address, port, SPIi) -> id, to recognise IKE_SA_INIT retransmissions.
    std::map<std::tuple<uint32_t, uint16_t, uint64_t>, uint64_t> by_init;
    std::map<uint64_t, detail::child> children;
    std::unordered_map<uint32_t, uint64_t> by_child_spi;  // our inbound ESP SPI -> child id
    // The ids of `sas` per (tunnel, peer address) (peer_key), oldest first: what asks about
    // the peer's other IKE SAs (initiator_start's "one IKE SA per peer", INITIAL_CONTACT both
    // ways, drop_duplicate, destroy's "the peer's last SA") looks at the peer's own entries,
    // not at every SA (which made keying N peers O(N^2)). Kept by new_sa, retire and destroy.
    std::unordered_map<uint64_t, std::vector<uint64_t>> by_peer;
    static uint64_t peer_key(uint32_t tunnel, uint32_t peer) noexcept {
        return (uint64_t{tunnel} << 32) | peer;
    }
    // The ids of the IKE SAs with `peer` on `tunnel` (`sa`'s own included).
    std::span<const uint64_t> peer_sas(uint32_t tunnel, uint32_t peer) const {
        auto it = by_peer.find(peer_key(tunnel, peer));
        return it == by_peer.end() ? std::span<const uint64_t>() : std::span(it->second);
    }
    uint64_t next_sa_id = 1, next_child_id = 1;
    engine_counters c;
    size_t fragment_bytes = 0;  // held by every SA's reassembly (at most fragment_memory)
    size_t half_open = 0;
    time_point last_now{};  // the latest clock reading (for show)
    // Every SA's next deadline (retransmission, half-open and fragment expiry, DPD, lifetimes
    // and rekeys of the SA and its children) is one entry in `wheel`: tick() runs only the SAs
    // that come due. Whoever changes an SA reaches it through find_sa() or new_sa(), which
    // mark it `touched`; the public entry points re-arm the touched SAs before they return.
    detail::sa_wheel wheel{detail::timer_resolution, detail::timer_slots};
    std::vector<uint64_t> touched, due;

    // COOKIE secrets (section 2.6): the current one and its predecessor.
    crypto::secret cookie_secret, cookie_previous;
    uint32_t cookie_version = 0;
    time_point cookie_rotated{};
    bool cookie_started = false;
    // INVALID_IKE_SPI answers in the current second.
    time_point invalid_spi_window{};
    uint32_t invalid_spi_sent = 0;
    // --key-log (key_log.hpp): nullptr unless asked for.
    std::shared_ptr<keylog::writer> key_log;
    void log_ike_keys(const detail::ike_sa& sa) const;

    // ---- engine.cpp: dispatch, send path, timers ----
    const detail::profile_state* profile_of(const detail::ike_sa& sa) const;
    const detail::profile_state* profile_for_tunnel(uint32_t tunnel) const;
    detail::ike_sa& new_sa(bool initiator, uint32_t tunnel, uint32_t peer,
                           const std::string& profile, time_point now);
    detail::ike_sa* find_sa(uint64_t id);
    uint64_t new_ike_spi();
    uint32_t new_child_spi();
    void destroy(detail::ike_sa& sa, std::string_view why, outputs& out);
    void send_packets(const detail::ike_sa& sa, const std::vector<bytes>& packets, outputs& out);
    header make_header(const detail::ike_sa& sa, exchange e, bool response, uint32_t mid) const;
    // An SK-protected message (fragmented when needed): the datagrams to send.
    std::optional<std::vector<bytes>> protect_message(detail::ike_sa& sa, const header& h,
                                                      const std::vector<payload>& inner);
    // The inner payloads of an SK message (nullopt: integrity failed; counted as dropped).
    std::optional<wire::result<std::vector<payload>, parse_error>> open_message(
        detail::ike_sa& sa, const message& m, std::span<const uint8_t> raw);
    void respond(detail::ike_sa& sa, exchange e, uint32_t mid, const std::vector<payload>& inner,
                 outputs& out);
    void send_request(detail::ike_sa& sa, detail::outstanding o, exchange e,
                      const std::vector<payload>& inner, time_point now, outputs& out);
    void enqueue(detail::ike_sa& sa, detail::queued_request q, time_point now, outputs& out);
    void pump(detail::ike_sa& sa, time_point now, outputs& out);
    void on_request(detail::ike_sa& sa, const datagram& d, const message& m, time_point now,
                    outputs& out);
    void on_response(detail::ike_sa& sa, const datagram& d, const message& m, time_point now,
                     outputs& out);
    void answer_invalid_spi(const datagram& d, const header& h, time_point now, outputs& out);
    void sa_timers(detail::ike_sa& sa, time_point now, outputs& out);
    // The earliest time sa_timers() has something to do for `sa` (nullopt: nothing).
    std::optional<time_point> next_deadline(const detail::ike_sa& sa) const;
    void touch(detail::ike_sa& sa);
    // Arms the wheel for every touched SA whose next deadline is earlier than what it holds.
    void arm_touched();
    // tick(): runs the SAs whose timers came due by `now`.
    void run_timers(time_point now, outputs& out);

    // ---- engine_fragments.cpp (RFC 7383) ----
    // Our SK message as SKF fragments when fragmentation was negotiated and the message is too
    // big for the profile's fragment-size; nullopt: send it whole.
    std::optional<std::vector<bytes>> fragment_message(detail::ike_sa& sa, const header& h,
                                                       const chain& inner, size_t whole_size);
    // A received SKF fragment of the message expected (the peer's request at recv_mid, or the
    // response to ours): verified and kept. Its inner payloads once the message is whole;
    // nullopt otherwise (kept, duplicate, or dropped and counted).
    std::optional<wire::result<std::vector<payload>, parse_error>> take_fragment(
        detail::ike_sa& sa, const message& m, std::span<const uint8_t> raw, time_point now);
    // A fragment of the request we answered last (section 2.6.1): true when it is fragment 1
    // and authentic, so the cached response is sent again; the others are ignored.
    bool retransmitted_request(detail::ike_sa& sa, const message& m, std::span<const uint8_t> raw);
    void drop_fragments(detail::ike_sa& sa);
    void fragment_timers(detail::ike_sa& sa, time_point now);

    // ---- sa_init.cpp ----
    void responder_sa_init(const datagram& d, const message& m, time_point now, outputs& out);
    void initiator_start(uint32_t tunnel, uint32_t peer, time_point now, outputs& out);
    void send_sa_init(detail::ike_sa& sa, time_point now, outputs& out);
    void initiator_sa_init_response(detail::ike_sa& sa, const datagram& d, const message& m,
                                    time_point now, outputs& out);

    // ---- auth.cpp ----
    void responder_auth(detail::ike_sa& sa, const std::vector<payload>& in, time_point now,
                        outputs& out);
    void send_auth(detail::ike_sa& sa, time_point now, outputs& out);
    void initiator_auth_response(detail::ike_sa& sa, const std::vector<payload>& in, time_point now,
                                 outputs& out);
    void established(detail::ike_sa& sa, time_point now, outputs& out);

    // ---- child.cpp ----
    // Responder: the CHILD_SA a request asks for (IKE_AUTH, or CREATE_CHILD_SA when
    // `create_child`: then with its own nonce `nr` and, for PFS, KE). Appends the answer's
    // payloads (or the error notify) to `reply`.
    std::optional<child_sa> negotiate_child(detail::ike_sa& sa, const std::vector<payload>& in,
                                            std::span<const uint8_t> ni,
                                            std::span<const uint8_t> nr, bool create_child,
                                            std::vector<payload>& reply);
    // Initiator: the CHILD_SA the response grants for what we offered (our inbound SPI).
    std::optional<child_sa> accept_child(detail::ike_sa& sa, const std::vector<payload>& in,
                                         uint32_t our_spi, std::span<const uint8_t> ni,
                                         std::span<const uint8_t> nr,
                                         const crypto::key_exchange* dh);
    // Moves the SA's current keys, SPIs and message state into a retired IKE SA (which only
    // finishes the DELETE exchange of an IKE SA rekey); returns its id.
    uint64_t retire(detail::ike_sa& sa, time_point now);
    // Lifetimes of a new CHILD_SA and the child record; returns its id.
    uint64_t add_child(detail::ike_sa& sa, child_sa c, time_point now);
    void remove_child_state(uint64_t id, std::string_view why, outputs& out);
    // The hub failed (or never confirmed) the install: a held answer leaves without it, an
    // established pair is deleted.
    void not_installed(uint64_t id, std::string_view why, time_point now, outputs& out);
    // engine::installed(): the hub installed it; a held answer may leave.
    void confirm_installed(uint64_t id, time_point now, outputs& out);
    // Two IKE SAs with one peer, one each way (both ends initiated at once): the redundant one
    // is deleted by the end that initiated it (engine.cpp).
    void drop_duplicate(detail::ike_sa& sa, time_point now, outputs& out);
    // `sa` (the peer's, we answered) came up: our initiations to that peer still waiting for
    // their IKE_SA_INIT answer end.
    void abandon_initiations(const detail::ike_sa& sa, outputs& out);
    void responder_create_child(detail::ike_sa& sa, uint32_t mid, const std::vector<payload>& in,
                                time_point now, outputs& out);
    // A rekey of `old` produced `fresh`: records it, and when a simultaneous rekey produced
    // another, keeps one of the two (section 2.8.1).
    void rekeyed_by(uint64_t old, uint64_t fresh, time_point now, outputs& out);
    void start_child_rekey(detail::ike_sa& sa, uint64_t child, time_point now, outputs& out);
    void child_rekey_response(detail::ike_sa& sa, detail::outstanding& o,
                              const std::vector<payload>& in, time_point now, outputs& out);
    void start_ike_rekey(detail::ike_sa& sa, time_point now, outputs& out);
    void ike_rekey_response(detail::ike_sa& sa, detail::outstanding& o,
                            const std::vector<payload>& in, time_point now, outputs& out);
    void child_timers(detail::ike_sa& sa, time_point now, outputs& out);
    // A CHILD_SA's byte or packet counters passed 90% of the profile's limits.
    static bool soft_limit_reached(const config::ike_settings& s, const detail::child& ch);

    // ---- informational.cpp ----
    void responder_informational(detail::ike_sa& sa, uint32_t mid, const std::vector<payload>& in,
                                 time_point now, outputs& out);
    void informational_response(detail::ike_sa& sa, detail::outstanding& o,
                                const std::vector<payload>& in, time_point now, outputs& out);
    void build_request(detail::ike_sa& sa, const detail::queued_request& q, time_point now,
                       outputs& out);
};

}  // namespace dmvpn::ike

namespace dmvpn::ike::detail {

// ---- small shared helpers (engine.cpp) ----
bytes be32(uint32_t v);
bytes be64(uint64_t v);
uint32_t read32(std::span<const uint8_t> b);
uint64_t read64(std::span<const uint8_t> b);
std::string ipv4_text(uint32_t a);
bytes random_bytes(size_t n);
template <typename T>
const T* find_payload(const std::vector<payload>& ps) {
    for (const auto& p : ps) {
        if (const auto* v = std::get_if<T>(&p)) {
            return v;
        }
    }
    return nullptr;
}
const notify_payload* find_notify(const std::vector<payload>& ps, uint16_t type);
// The first error notify (type below 16384) in a response, 0 if none.
uint16_t error_notify(const std::vector<payload>& ps);
notify_payload notify(uint16_t type, bytes data = {});
// The ID payload's body as AUTH signs it (type, three reserved octets, data).
bytes id_body(const id_payload& id);
std::string identity_text(const id_payload& id);
id_payload local_identity(const config::ike_settings& s, uint32_t local);

// ---- cookies.cpp: COOKIE (section 2.6) and NAT detection hashes (section 2.23) ----
bytes nat_hash(uint64_t spi_i, uint64_t spi_r, uint32_t addr, uint16_t port);

// ---- proposals.cpp ----
sa_payload ike_offer(const config::ike_settings& s, const bytes& spi);
enum class select_status : uint8_t { ok, invalid_ke, no_proposal };
struct ike_selection {
    select_status status = select_status::no_proposal;
    proposal chosen;  // what the response carries (the peer's proposal number)
    crypto::ike_suite suite;
    uint16_t want_group = 0;  // invalid_ke: the group to ask for
};
// The best of the peer's `offered` proposals by our preference; `ke_group` is the group of the
// peer's KE payload (0 when none is required).
ike_selection select_ike(const config::ike_settings& s, const sa_payload& offered,
                         uint16_t ke_group, const bytes& our_spi);
sa_payload esp_offer(const config::ike_settings& s, uint32_t spi, std::optional<uint16_t> dh);
struct esp_selection {
    proposal chosen;
    uint16_t encr = 0, encr_bits = 0, integ = 0;
    bool esn = false;
    uint16_t dh = 0;
    uint32_t peer_spi = 0;
};
// `dh_required`: the exchange carries KE (a CREATE_CHILD_SA with PFS): a DH transform must
// match it; otherwise DH transforms must be absent or NONE.
std::optional<esp_selection> select_esp(const config::ike_settings& s, const sa_payload& offered,
                                        uint32_t our_spi, std::optional<uint16_t> ke_group);
size_t esp_key_bytes(uint16_t encr, uint16_t bits);
size_t esp_integ_bytes(uint16_t integ);

// ---- child.cpp ----
ts_payload host_ts(uint32_t addr);
// The selectors the responder answers with (section 2.9 narrowing to the two hosts and GRE),
// or nullopt: TS_UNACCEPTABLE.
struct ts_choice {
    ts_payload tsi, tsr;
};
std::optional<ts_choice> narrow_ts(const ts_payload& tsi, const ts_payload& tsr,
                                   uint32_t initiator_addr, uint32_t responder_addr,
                                   bool initiator_natted, bool responder_natted);
// ---- auth.cpp ----
// Our CERTREQ (section 3.7): the key hashes of the profile's trust anchors.
certreq_payload certreq_of(const profile_state& p);
// A certificate profile's chain, key and anchors from its PEM files; the error names the
// profile and the file.
std::optional<std::string> load_certificates(profile_state& p);
// The peer's certificates (CERT payloads of X.509 signature encoding, leaf first, at most 8)
// chained to `p`'s anchors at the current wall time, and its identity (ID type and data, both
// versions number them alike) in the leaf: the leaf, or why not. IKEv2's AUTH and IKEv1's SIG.
wire::result<std::unique_ptr<crypto::certificate>, std::string> peer_certificate(
    const profile_state& p, const std::vector<const cert_payload*>& certs, uint8_t id_type,
    crypto::cspan id_data, std::string_view id_text);

// Fill a child_sa's keys from KEYMAT: initiator-to-responder first (section 2.17).
void fill_child_keys(child_sa& c, bool we_initiated, const crypto::secret& keymat);

}  // namespace dmvpn::ike::detail
