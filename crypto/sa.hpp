// An ESP security association: algorithms, keys expanded once at creation, sequence state,
// anti-replay window and lifetimes.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <span>
#include <string_view>
#include <vector>

#include "crypto/anti_replay.hpp"
#include "crypto/engine.hpp"
#include "dataplane/wire/result.hpp"

namespace dmvpn::crypto {

enum class cipher_alg : uint8_t {
    aes_gcm_16,  // RFC 4106, 16-byte ICV; AES-128 or AES-256 by key length
    aes_cbc,     // RFC 3602; AES-128 or AES-256 by key length
    des3_cbc,    // RFC 2451; three DES keys (24 bytes), 8-byte block and IV. Legacy peers only:
                 // its 64-bit block wears out after a few GiB under one key (Sweet32)
};
std::string_view name(cipher_alg a) noexcept;

enum class integ_alg : uint8_t {
    none,             // AES-GCM (its ICV is its own), or CBC with allow_no_integrity
    hmac_sha1_96,     // RFC 2404
    hmac_sha256_128,  // RFC 4868
    hmac_md5_96,      // RFC 2403; legacy peers only
};
std::string_view name(integ_alg a) noexcept;

enum class sa_direction : uint8_t { outbound, inbound };

// 0 means no limit. A soft limit is reported once (sa::soft_expired); at a hard limit the SA
// refuses packets (esp_status::sa_expired). Bytes count what the cipher processed.
struct sa_lifetime {
    uint64_t soft_packets = 0;
    uint64_t hard_packets = 0;
    uint64_t soft_bytes = 0;
    uint64_t hard_bytes = 0;
};

struct sa_params {
    uint32_t spi = 0;
    sa_direction direction = sa_direction::outbound;
    cipher_alg cipher = cipher_alg::aes_gcm_16;
    integ_alg integ = integ_alg::none;
    // GCM: the 16- or 32-byte AES key followed by the 4-byte salt (RFC 4106 section 8.1).
    // CBC: the 16- or 32-byte AES key. 3DES-CBC: K1 || K2 || K3, 24 bytes with the DES parity
    // bits, which DES ignores (RFC 2451).
    std::span<const uint8_t> cipher_key;
    // HMAC-SHA1-96: 20 bytes (RFC 2404 section 3); HMAC-SHA-256-128: 32 bytes (RFC 4868 2.1.1);
    // HMAC-MD5-96: 16 bytes (RFC 2403 section 3).
    std::span<const uint8_t> integ_key;
    bool esn = false;  // RFC 4303 extended (64-bit) sequence numbers
    // Inbound only: how many sequence numbers the anti-replay window remembers.
    uint32_t replay_window = replay_window::default_size;
    // Inbound only: refuse replayed and too old sequence numbers (RFC 4303 section 3.4.3). Off
    // for manually keyed SAs unless configured: the peer's counter restarts with the peer.
    bool anti_replay = true;
    sa_lifetime lifetime;
    // Outbound: the sequence number the last packet carried (the next one carries +1); lets a
    // known-answer test start where a published vector does.
    uint64_t initial_seq = 0;
    // CBC without integrity is legal ESP (RFC 4303 section 3.2) but RFC 8221 forbids it in
    // practice; only RFC 3602's encryption-only test vectors turn this on.
    bool allow_no_integrity = false;
};

enum class sa_error : uint8_t {
    bad_spi,                // SPI 0 is reserved (RFC 4303 section 2.1)
    bad_cipher_key_length,  // not 16/32 (AES-CBC), 20/36 (GCM with salt) or 24 (3DES)
    bad_integ_key_length,   // not what RFC 2404 / RFC 4868 fix
    bad_algorithm_pair,     // GCM with an HMAC, or CBC without integrity unasked
    bad_replay_window,      // 0 or above replay_window::max_size
    bad_lifetime,           // a soft limit at or above its hard limit
    no_entropy,             // getrandom() failed while seeding the CBC IV generator
    weak_cipher_key,        // 3DES with K1 == K2 or K2 == K3: no stronger than single DES
};
std::string_view name(sa_error e) noexcept;

// Where SAs live. The default is the C++ heap; a dataplane holding thousands of SAs installs
// an allocator of hugepage memory (dp::eal_init installs rte_malloc), so that the SA a packet
// touches costs no TLB miss. allocate returns nullptr on failure (that SA then goes to the
// heap); every SA is released through the allocator it came from.
struct sa_allocator {
    void* (*allocate)(void* ctx, size_t bytes, size_t align) = nullptr;
    void (*release)(void* ctx, void* p) = nullptr;
    void* ctx = nullptr;
};
// Process-wide, for SAs created afterwards; call it while no SA is being created (start-up,
// shutdown). A default-constructed sa_allocator puts SAs back on the heap.
void set_sa_allocator(const sa_allocator& a) noexcept;

// One direction of one peer's ESP. The control lcore creates it (key expansion, allocation and
// a getrandom() call happen here, never per packet) and publishes it to the workers.
//
// Outbound, any worker (and the control lcore) encrypts with it at the same time: each packet
// claims its sequence number with a compare-and-swap on _seq, which never passes the limit (2^32
// - 1, or 2^64 - 1 with ESN), so no number is used twice and none wraps; bytes are added
// atomically. A packet refused after claiming (a hard lifetime) gives its number back when no
// other packet claimed one since, else leaves a gap, which ESP allows (RFC 4303 section 3.4.3).
// Inbound, the worker that receives the SA's packets is the only writer of its replay window and
// counters: RSS on the outer addresses (dp::setup_port) sends all of a spoke's ESP to one worker.
// The control lcore may read packets(), bytes(), soft_expired() and hard_expired() at any time.
//
// Layout: the first cache line holds every field the per-packet path reads or writes on an
// outbound SA; an inbound SA adds the replay window on the second line; key schedules follow,
// then (inbound) the replay window's bitmap, all in one allocation.
class alignas(64) sa {
public:
    static wire::result<std::unique_ptr<sa>, sa_error> create(const sa_params& p, engine& eng);
    ~sa();
    // SAs come from sa::create only, and go back to the allocator they came from.
    static void* operator new(size_t, void* where) noexcept { return where; }
    static void operator delete(void* p) noexcept;
    static void operator delete(void* p, std::align_val_t) noexcept { operator delete(p); }
    sa(const sa&) = delete;
    sa& operator=(const sa&) = delete;

    uint32_t spi() const noexcept { return _spi; }
    sa_direction direction() const noexcept {
        return (_flags & flag_inbound) ? sa_direction::inbound : sa_direction::outbound;
    }
    cipher_alg cipher() const noexcept { return _cipher; }
    integ_alg integ() const noexcept { return _integ; }
    bool esn() const noexcept { return (_flags & flag_esn) != 0; }
    // Cipher key bytes without the GCM salt: 16 or 32 (AES), 24 (3DES).
    uint32_t key_bytes() const noexcept {
        return _cipher == cipher_alg::des3_cbc ? 24u : (_flags & flag_aes256) ? 32u : 16u;
    }
    uint8_t key_arch() const noexcept { return _key_arch; }
    uint32_t iv_len() const noexcept { return _iv_len; }
    uint32_t icv_len() const noexcept { return _icv_len; }
    // ESP payloads are padded to this (RFC 4303 section 2.4; the cipher block for CBC).
    uint32_t pad_align() const noexcept { return _pad_align; }

    // Readable from any thread. Outbound: the sequence numbers claimed, less those that were
    // refused and not given back.
    uint64_t packets() const noexcept {
        if (direction() == sa_direction::outbound) {
            return _seq.load(std::memory_order_relaxed) - _packets.load(std::memory_order_relaxed);
        }
        return _packets.load(std::memory_order_relaxed);
    }
    uint64_t bytes() const noexcept { return _bytes.load(std::memory_order_relaxed); }
    bool soft_expired() const noexcept {
        return (_events.load(std::memory_order_acquire) & event_soft) != 0;
    }
    bool hard_expired() const noexcept {
        return (_events.load(std::memory_order_acquire) & event_hard) != 0;
    }
    const sa_lifetime& lifetime() const noexcept { return _lifetime; }

    // Outbound: the highest sequence number claimed so far.
    uint64_t last_seq() const noexcept { return _seq.load(std::memory_order_relaxed); }
    // Inbound: the receiving worker only.
    const replay_window& window() const noexcept { return _window; }
    replay_window& window() noexcept { return _window; }

    // Starts loading everything the per-packet path reads (both state lines and the key
    // schedules) into the cache: a hint for bursts whose packets belong to many SAs, issued a
    // few packets ahead. Touches no state; any thread may call it.
    [[gnu::always_inline]] void prefetch() const noexcept {
        const char* p = reinterpret_cast<const char*>(this);
        for (size_t off = 0; off < sizeof(sa); off += 64) {
            __builtin_prefetch(p + off);
        }
    }

    // Starts loading the two state lines only (the burst paths load the key lines a packet
    // needs once these are in).
    [[gnu::always_inline]] void prefetch_state() const noexcept {
        const char* p = reinterpret_cast<const char*>(this);
        __builtin_prefetch(p);
        __builtin_prefetch(p + 64);
    }

    // Opaque to users: the layout lives in crypto/sa_keys.hpp.
    static constexpr size_t key_storage_bytes = 1024;

private:
    friend struct esp_access;  // the burst paths in esp_transport.cpp

    static constexpr uint8_t flag_inbound = 1;
    static constexpr uint8_t flag_esn = 2;
    static constexpr uint8_t flag_aes256 = 4;
    static constexpr uint8_t event_soft = 1;
    static constexpr uint8_t event_hard = 2;

    sa() = default;

    enum class lifetime_verdict : uint8_t {
        pass,
        pass_soft_now,  // passes, and is the packet that crossed a soft limit
        refuse,         // a hard limit
    };
    // Slow path of the lifetime check: called only when a count reaches a mark.
    lifetime_verdict lifetime_slow(uint64_t new_packets, uint64_t new_bytes) noexcept;
    void reset_marks() noexcept;

    // --- cache line 0: per-packet state ---
    std::atomic<uint64_t> _seq{0};  // outbound: the highest sequence number claimed
    // Inbound: packets accepted. Outbound: initial_seq plus the numbers claimed and not used
    // (packets() subtracts it from _seq), written only on the refusal path.
    std::atomic<uint64_t> _packets{0};
    std::atomic<uint64_t> _bytes{0};
    // Packets and bytes counts at which the lifetime slow path runs; rewritten (relaxed) by the
    // slow path once the soft limit was reported.
    std::atomic<uint64_t> _packet_mark{UINT64_MAX};
    std::atomic<uint64_t> _byte_mark{UINT64_MAX};
    uint32_t _spi = 0;
    uint8_t _salt[4] = {};
    cipher_alg _cipher = cipher_alg::aes_gcm_16;
    integ_alg _integ = integ_alg::none;
    uint8_t _flags = 0;
    uint8_t _iv_len = 0;
    uint8_t _icv_len = 0;
    uint8_t _pad_align = 4;
    std::atomic<uint8_t> _events{0};
    // CBC IV generator: AES_iv_key(sequence || nonce) gives unpredictable IVs with no system
    // call per packet (RFC 3602 section 2.1 lets a cipher generate them).
    uint8_t _iv_nonce[8] = {};
    uint8_t _key_arch = 0;  // engine::arch_id() of the engine that expanded the keys

    // --- cache line 1: inbound only ---
    alignas(64) replay_window _window;
    sa_lifetime _lifetime;

    // --- key schedules ---
    alignas(64) std::byte _keys[key_storage_bytes];
};

enum class hmac_alg : uint8_t { sha1, sha256, md5 };

// Full-length HMAC (RFC 2104) through the same ipad/opad precompute and job path the SAs use.
// Allocates; meant for known-answer tests and the control plane, never per packet. IPsec-MB
// has no one-shot MD5, so an MD5 key longer than its 64-byte block (which RFC 2104 hashes
// first) gives an empty result; ESP's HMAC-MD5-96 keys are 16 bytes.
std::vector<uint8_t> hmac_digest(engine& eng, hmac_alg alg, std::span<const uint8_t> key,
                                 std::span<const uint8_t> msg);

}  // namespace dmvpn::crypto
