// ESP transport mode (RFC 4303) on IPv4 packets in plain byte buffers: burst encrypt/decrypt
// through Intel IPsec-MB (AES-GCM through its direct API, CBC + HMAC through its job API).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "crypto/engine.hpp"
#include "crypto/sa.hpp"

namespace dmvpn::crypto {

// One packet as the dataplane holds it (an mbuf's data, or an array in tests). On success the
// call moves `data` and changes `len`, `headroom` and `tailroom` to match the new packet: the
// caller turns the differences into rte_pktmbuf_prepend/adj/append/trim. On failure the
// descriptor is unchanged but the bytes may not be (a packet that failed its ICV was already
// decrypted in place): drop it.
struct esp_packet {
    uint8_t* data;      // first byte of the IPv4 header
    uint32_t len;       // bytes from data to the end of the buffer's packet data
    uint32_t headroom;  // writable bytes before data
    uint32_t tailroom;  // writable bytes after data + len
};

enum class esp_status : uint8_t {
    ok,
    not_ipv4,           // version is not 4
    bad_ip_header,      // IHL below 5, or total length shorter than the header
    truncated,          // fewer bytes than the IPv4 total length or the ESP minimum says
    ip_fragment,        // a fragment: ESP applies to whole datagrams (reassemble first)
    not_esp,            // decrypt: protocol is not 50
    spi_mismatch,       // decrypt: the ESP header names another SA
    bad_cipher_length,  // decrypt: ciphertext not a whole number of blocks, or too short
    no_headroom,        // encrypt: no room before the packet for the ESP header and IV
    no_tailroom,        // encrypt: no room after it for padding, trailer and ICV
    too_big,            // encrypt: the result would exceed 65535 bytes
    wrong_direction,    // encrypt on an inbound SA or decrypt on an outbound one
    sa_expired,         // a hard lifetime was reached
    seq_overflow,       // encrypt: the sequence number would wrap (RFC 4303 section 3.3.3)
    replayed,           // decrypt: sequence number already received
    outside_window,     // decrypt: sequence number older than the replay window
    zero_sequence,      // decrypt: sequence number 0 is never sent
    bad_icv,            // decrypt: integrity check failed
    bad_padding,        // decrypt: pad length too long or pad bytes not 1, 2, 3...
    dummy_packet,       // decrypt: next header 59, traffic-flow-confidentiality filler
    engine_error,       // IPsec-MB failed the job, or the SA's keys suit another code path
};
std::string_view name(esp_status s) noexcept;
inline constexpr size_t esp_status_count = static_cast<size_t>(esp_status::engine_error) + 1;

struct burst_summary {
    uint32_t ok = 0;                // packets whose status is ok
    bool soft_expired_now = false;  // this burst crossed a soft lifetime: tell the control lcore
};

// Encrypts in place every packet of `pkts` (all for SA `s`, which must be outbound), writing
// one status per packet into `status` (at least pkts.size() entries). Each packet is an IPv4
// datagram whose payload (a GRE packet in the hub) becomes the ESP payload: the ESP header and
// IV go after the IPv4 header, padding, trailer and ICV at the end; protocol becomes 50 and the
// total length and header checksum are fixed. Sequence numbers are taken in packet order.
burst_summary encrypt_burst(engine& eng, sa& s, std::span<esp_packet> pkts,
                            std::span<esp_status> status) noexcept;

// The same with each packet's IV given (the first iv_len() bytes of ivs[i]) instead of
// generated: only for re-creating published test vectors. Never use a given IV twice.
using iv_bytes = std::array<uint8_t, 16>;
burst_summary encrypt_burst_with_ivs(engine& eng, sa& s, std::span<esp_packet> pkts,
                                     std::span<esp_status> status,
                                     std::span<const iv_bytes> ivs) noexcept;

// Decrypts in place every packet of `pkts` (ESP for inbound SA `s`): checks the anti-replay
// window, verifies the ICV, then updates the window, strips ESP and restores the IPv4 protocol
// from the next header with length and checksum fixed. Packets are accepted in order, so a
// duplicate inside one burst is caught. The outer header's own checksum is the classifier's
// to verify; this code rewrites it.
burst_summary decrypt_burst(engine& eng, sa& s, std::span<esp_packet> pkts,
                            std::span<esp_status> status) noexcept;

// Bursts whose packets belong to many SAs (a hub's traffic from and to many spokes): packet i
// is ciphered under sas[i] (never null); the shortest of the three spans bounds the burst. The
// result is what calling the single-SA function above on each run of consecutive packets sharing
// an SA would give, in packet order; meanwhile the state and key schedules of the SAs a few
// packets ahead are prefetched, so a burst with no two packets of one SA does not wait on memory
// per packet.
//
// The key lines packet i needs are prefetched while packet i - sa_prefetch_ahead is ciphered
// (its SA's state lines twice as far ahead); a caller that knows the SAs earlier (while looking
// them up) should call sa::prefetch() on the first sa_prefetch_ahead itself, so that the first
// packets do not wait either.
inline constexpr size_t sa_prefetch_ahead = 4;
burst_summary encrypt_burst(engine& eng, std::span<sa* const> sas, std::span<esp_packet> pkts,
                            std::span<esp_status> status) noexcept;
burst_summary decrypt_burst(engine& eng, std::span<sa* const> sas, std::span<esp_packet> pkts,
                            std::span<esp_status> status) noexcept;

}  // namespace dmvpn::crypto
