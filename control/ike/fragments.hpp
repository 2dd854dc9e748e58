// IKE fragmentation (RFC 7383): an encrypted message's inner payload chain sent as Encrypted
// Fragment (SKF) payloads, each protected on its own, and received fragments verified and put
// back together within fixed bounds. Pure functions of keys and bytes: the engine (IKE thread)
// uses them, as do the tests and the decrypt fuzzer.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "control/ike/crypto.hpp"
#include "control/ike/message.hpp"

namespace dmvpn::ike {

// One message has at most this many fragments, sent or received (a 64 KB message in 576-byte
// datagrams would need more; no IKE message of ours or of a spoke comes near that).
inline constexpr uint16_t max_fragments = 64;
// A message being reassembled holds at most this many plaintext octets.
inline constexpr size_t max_reassembled = max_message_size;
// A message whose fragments stop coming is forgotten after this long (the peer's
// retransmissions, 2 s apart and more, refill what was lost within it).
inline constexpr auto reassembly_timeout = std::chrono::seconds(30);

// The largest IKE message (no IP, UDP or non-ESP marker) one datagram of `fragment_size`
// octets carries on `port` (4500 adds the marker, RFC 3948).
size_t fragment_room(uint32_t fragment_size, uint16_t port) noexcept;

// The inner chain `inner` as SKF fragments (RFC 7383 section 2.5) of at most `max_size` octets
// each, protected under `k`: every fragment repeats `h` (next and length set per fragment), the
// first names the chain's first payload. Each fragment gets a fresh IV. nullopt: `max_size`
// leaves no room for data, more than max_fragments would be needed, or the cipher failed.
std::optional<std::vector<bytes>> protect_fragments(const crypto::sk_keys& k, const header& h,
                                                    const chain& inner, size_t max_size);

// The message is a fragment: its last payload is SKF.
inline bool is_fragment(const message& m) noexcept {
    return !m.payloads.empty() && std::holds_alternative<skf_payload>(m.payloads.back());
}

// The plaintext of the SKF fragment `m` (the parsed datagram `raw`, whose last payload is an
// skf_payload) if its integrity check passes under `k`; nullopt otherwise.
std::optional<bytes> open_fragment(const crypto::sk_keys& k, const message& m,
                                   std::span<const uint8_t> raw);

// One message being put back together (one per direction of an IKE SA: window size 1).
class reassembly {
public:
    enum class verdict : uint8_t {
        stored,     // verified and kept; more to come
        complete,   // it was the last one missing: take() the message
        duplicate,  // a fragment already held: ignored
        forged,     // integrity check failed (or the SKF body is malformed): nothing kept
        refused,    // over a bound (fragments, bytes, `room`) or an older fragmentation: dropped
    };
    // `m` is the parsed datagram `raw`, whose last payload is an skf_payload. The fragment's
    // integrity is checked first; only then does it touch what is held. A fragment of another
    // message ID or exchange than the one held starts over (the engine hands only the message
    // ID it expects). `room`: the plaintext octets the caller still allows to be held.
    verdict add(const crypto::sk_keys& k, const message& m, std::span<const uint8_t> raw,
                size_t room, std::chrono::steady_clock::time_point now);

    struct whole {
        payload_type first = payload_type::none;
        bytes chain;  // the inner payloads, fragment 1's plaintext first
    };
    // After `complete`: the message's inner chain; the reassembly is empty again.
    whole take();
    void clear() noexcept;

    bool active() const noexcept { return _total != 0; }
    uint32_t message_id() const noexcept { return _mid; }
    std::chrono::steady_clock::time_point started() const noexcept { return _started; }
    size_t held() const noexcept { return _held; }     // plaintext octets kept
    uint16_t count() const noexcept { return _have; }  // fragments kept

private:
    uint32_t _mid = 0;
    exchange _exch = exchange::ike_auth;
    uint16_t _total = 0;  // 0: nothing held
    uint16_t _have = 0;
    payload_type _first = payload_type::none;
    std::vector<std::optional<bytes>> _parts;
    size_t _held = 0;
    std::chrono::steady_clock::time_point _started{};
};

}  // namespace dmvpn::ike
