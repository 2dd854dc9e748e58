#include "crypto/sa.hpp"

#include <sys/random.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "crypto/sa_keys.hpp"

namespace dmvpn::crypto {

static_assert(sizeof(detail::sa_keys) <= sa::key_storage_bytes);
// Line 0 holds the per-packet fields, line 1 the replay window and lifetime, then the keys.
static_assert(sizeof(sa) == 64 + 64 + sa::key_storage_bytes,
              "per-packet SA fields no longer fit their cache line");

std::string_view name(cipher_alg a) noexcept {
    switch (a) {
        case cipher_alg::aes_gcm_16:
            return "aes_gcm_16";
        case cipher_alg::aes_cbc:
            return "aes_cbc";
        case cipher_alg::des3_cbc:
            return "des3_cbc";
    }
    return "unknown";
}

std::string_view name(integ_alg a) noexcept {
    switch (a) {
        case integ_alg::none:
            return "none";
        case integ_alg::hmac_sha1_96:
            return "hmac_sha1_96";
        case integ_alg::hmac_sha256_128:
            return "hmac_sha256_128";
        case integ_alg::hmac_md5_96:
            return "hmac_md5_96";
    }
    return "unknown";
}

std::string_view name(sa_error e) noexcept {
    switch (e) {
        case sa_error::bad_spi:
            return "bad_spi";
        case sa_error::bad_cipher_key_length:
            return "bad_cipher_key_length";
        case sa_error::bad_integ_key_length:
            return "bad_integ_key_length";
        case sa_error::bad_algorithm_pair:
            return "bad_algorithm_pair";
        case sa_error::bad_replay_window:
            return "bad_replay_window";
        case sa_error::bad_lifetime:
            return "bad_lifetime";
        case sa_error::no_entropy:
            return "no_entropy";
        case sa_error::weak_cipher_key:
            return "weak_cipher_key";
    }
    return "unknown";
}

namespace {

constexpr size_t hmac_block = 64;  // SHA-1, SHA-256 and MD5 all hash 64-byte blocks

// The hash state after one block, which IPsec-MB's HMAC jobs resume.
void one_block(IMB_MGR* mgr, hmac_alg alg, const uint8_t* block, uint8_t* state) {
    switch (alg) {
        case hmac_alg::sha1:
            IMB_SHA1_ONE_BLOCK(mgr, block, state);
            break;
        case hmac_alg::sha256:
            IMB_SHA256_ONE_BLOCK(mgr, block, state);
            break;
        case hmac_alg::md5:
            IMB_MD5_ONE_BLOCK(mgr, block, state);
            break;
    }
}

// RFC 2104: keys longer than a block are hashed first, shorter ones zero-padded; the ipad and
// opad states are the hash state after the first block, which IPsec-MB resumes per packet.
// False for an MD5 key longer than a block (IPsec-MB 1.3 has no one-shot MD5 to hash it).
bool hmac_pads(IMB_MGR* mgr, hmac_alg alg, std::span<const uint8_t> key, uint8_t* ipad,
               uint8_t* opad) {
    alignas(16) uint8_t k[hmac_block] = {};
    if (key.size() > hmac_block) {
        if (alg == hmac_alg::sha1) {
            IMB_SHA1(mgr, key.data(), key.size(), k);
        } else if (alg == hmac_alg::sha256) {
            IMB_SHA256(mgr, key.data(), key.size(), k);
        } else {
            return false;
        }
    } else if (!key.empty()) {
        std::memcpy(k, key.data(), key.size());
    }
    alignas(16) uint8_t block[hmac_block];
    for (size_t i = 0; i < hmac_block; ++i) {
        block[i] = static_cast<uint8_t>(k[i] ^ 0x36);
    }
    one_block(mgr, alg, block, ipad);
    for (size_t i = 0; i < hmac_block; ++i) {
        block[i] = static_cast<uint8_t>(k[i] ^ 0x5c);
    }
    one_block(mgr, alg, block, opad);
    explicit_bzero(k, sizeof(k));
    explicit_bzero(block, sizeof(block));
    return true;
}

hmac_alg hmac_of(integ_alg a) noexcept {
    switch (a) {
        case integ_alg::hmac_sha256_128:
            return hmac_alg::sha256;
        case integ_alg::hmac_md5_96:
            return hmac_alg::md5;
        default:
            return hmac_alg::sha1;
    }
}

// 3DES with K1 == K2 or K2 == K3 is single DES under the remaining key (RFC 2451 asks for such
// keys to be refused). DES ignores each byte's low (parity) bit, so the compare does too, and
// it runs in time independent of where the keys differ.
bool weak_des3_key(std::span<const uint8_t> key) noexcept {
    uint8_t diff12 = 0;
    uint8_t diff23 = 0;
    for (size_t i = 0; i < 8; ++i) {
        diff12 = static_cast<uint8_t>(diff12 | ((key[i] ^ key[8 + i]) & 0xfe));
        diff23 = static_cast<uint8_t>(diff23 | ((key[8 + i] ^ key[16 + i]) & 0xfe));
    }
    return diff12 == 0 || diff23 == 0;
}

// Out of line so the compiler neither drops the wipe nor second-guesses the object's size
// through the key union (gcc's -Wstringop-overflow did).
[[gnu::noinline]] void wipe(void* p, size_t n) { explicit_bzero(p, n); }

bool fill_random(uint8_t* out, size_t n) {
    while (n > 0) {
        const ssize_t got = getrandom(out, n, 0);
        if (got <= 0) {
            return false;
        }
        out += got;
        n -= static_cast<size_t>(got);
    }
    return true;
}

void* heap_allocate(void*, size_t bytes, size_t align) {
    return ::operator new (bytes, std::align_val_t{align}, std::nothrow);
}

// Every SA allocation asks for sa_align.
constexpr size_t sa_align = alignof(sa);
void heap_release(void*, void* p) { ::operator delete (p, std::align_val_t{sa_align}); }

sa_allocator current_allocator{heap_allocate, heap_release, nullptr};

// Each allocation starts with the release function it needs, one alignment unit before the SA.
struct alloc_header {
    void (*release)(void* ctx, void* p);
    void* ctx;
};
constexpr size_t header_bytes = sa_align;
static_assert(sizeof(alloc_header) <= header_bytes);

// Storage for an SA and `tail` bytes after it, from the current allocator or else the heap.
void* allocate_sa(size_t tail) {
    const size_t bytes = header_bytes + sizeof(sa) + tail;
    sa_allocator used = current_allocator;
    void* raw = used.allocate(used.ctx, bytes, sa_align);
    if (raw == nullptr) {
        used = {heap_allocate, heap_release, nullptr};
        raw = heap_allocate(nullptr, bytes, sa_align);
        if (raw == nullptr) {
            throw std::bad_alloc();
        }
    }
    new (raw) alloc_header{used.release, used.ctx};
    return static_cast<std::byte*>(raw) + header_bytes;
}

}  // namespace

void set_sa_allocator(const sa_allocator& a) noexcept {
    if (a.allocate != nullptr && a.release != nullptr) {
        current_allocator = a;
    } else {
        current_allocator = {heap_allocate, heap_release, nullptr};
    }
}

void sa::operator delete(void* p) noexcept {
    if (p == nullptr) {
        return;
    }
    void* raw = static_cast<std::byte*>(p) - header_bytes;
    const alloc_header h = *static_cast<const alloc_header*>(raw);
    h.release(h.ctx, raw);
}

wire::result<std::unique_ptr<sa>, sa_error> sa::create(const sa_params& p, engine& eng) {
    if (p.spi == 0) {
        return wire::fail(sa_error::bad_spi);
    }
    const bool gcm = p.cipher == cipher_alg::aes_gcm_16;
    const bool des3 = p.cipher == cipher_alg::des3_cbc;
    const size_t aes_len = gcm ? p.cipher_key.size() - 4 : p.cipher_key.size();
    if (des3 ? p.cipher_key.size() != 24
             : (gcm && p.cipher_key.size() < 4) || (aes_len != 16 && aes_len != 32)) {
        return wire::fail(sa_error::bad_cipher_key_length);
    }
    if (des3 && weak_des3_key(p.cipher_key)) {
        return wire::fail(sa_error::weak_cipher_key);
    }
    if (gcm && p.integ != integ_alg::none) {
        return wire::fail(sa_error::bad_algorithm_pair);
    }
    if (!gcm && p.integ == integ_alg::none && !p.allow_no_integrity) {
        return wire::fail(sa_error::bad_algorithm_pair);
    }
    if ((p.integ == integ_alg::hmac_sha1_96 && p.integ_key.size() != 20) ||
        (p.integ == integ_alg::hmac_sha256_128 && p.integ_key.size() != 32) ||
        (p.integ == integ_alg::hmac_md5_96 && p.integ_key.size() != 16)) {
        return wire::fail(sa_error::bad_integ_key_length);
    }
    const bool inbound = p.direction == sa_direction::inbound;
    if (inbound && (p.replay_window == 0 || p.replay_window > replay_window::max_size)) {
        return wire::fail(sa_error::bad_replay_window);
    }
    const sa_lifetime& lt = p.lifetime;
    if ((lt.soft_packets != 0 && lt.hard_packets != 0 && lt.soft_packets >= lt.hard_packets) ||
        (lt.soft_bytes != 0 && lt.hard_bytes != 0 && lt.soft_bytes >= lt.hard_bytes)) {
        return wire::fail(sa_error::bad_lifetime);
    }

    // An inbound SA's replay bitmap follows it in the same allocation.
    const size_t window_bytes =
        inbound ? size_t{replay_window::words_for(p.replay_window)} * sizeof(uint64_t) : 0;
    std::unique_ptr<sa> s(new (allocate_sa(window_bytes)) sa());
    s->_spi = p.spi;
    s->_cipher = p.cipher;
    s->_integ = p.integ;
    s->_flags = static_cast<uint8_t>((inbound ? flag_inbound : 0) | (p.esn ? flag_esn : 0) |
                                     (!des3 && aes_len == 32 ? flag_aes256 : 0));
    s->_iv_len = gcm || des3 ? 8 : 16;
    s->_pad_align = gcm ? 4 : des3 ? 8 : 16;
    switch (p.integ) {
        case integ_alg::none:
            s->_icv_len = gcm ? 16 : 0;
            break;
        case integ_alg::hmac_sha1_96:
        case integ_alg::hmac_md5_96:
            s->_icv_len = 12;
            break;
        case integ_alg::hmac_sha256_128:
            s->_icv_len = 16;
            break;
    }
    s->_seq.store(p.initial_seq, std::memory_order_relaxed);
    if (!inbound) {
        s->_packets.store(p.initial_seq, std::memory_order_relaxed);
    }
    s->_lifetime = lt;
    // Outbound without ESN: a soft mark at 90% of the sequence numbers left, so the control
    // lcore learns (soft_expired) long before the 32-bit counter runs out (RFC 4303 section
    // 3.3.3: replace the SA before it would cycle); at the end it refuses.
    if (!inbound && !p.esn) {
        const uint64_t left = UINT32_MAX - std::min<uint64_t>(p.initial_seq, UINT32_MAX);
        const uint64_t mark = left - left / 10;
        if (mark != 0 && (lt.soft_packets == 0 || lt.soft_packets > mark) &&
            (lt.hard_packets == 0 || mark < lt.hard_packets)) {
            s->_lifetime.soft_packets = mark;
        }
    }
    s->reset_marks();
    if (inbound) {
        s->_window =
            replay_window(p.replay_window, p.esn, reinterpret_cast<uint64_t*>(s.get() + 1));
        s->_window.set_enforced(p.anti_replay);
    }

    IMB_MGR* mgr = eng.mgr();
    s->_key_arch = eng.arch_id();
    auto* keys = new (s->_keys) detail::sa_keys{};
    const uint8_t* key = p.cipher_key.data();
    if (gcm) {
        if (aes_len == 16) {
            IMB_AES128_GCM_PRE(mgr, key, &keys->gcm);
        } else {
            IMB_AES256_GCM_PRE(mgr, key, &keys->gcm);
        }
        std::memcpy(s->_salt, key + aes_len, 4);
    } else {
        // CBC: the cipher's schedules, the HMAC states and (outbound) the IV generator, at
        // their places in cbc_keys or des3_keys.
        uint8_t* ipad = keys->cbc.ipad;
        uint8_t* opad = keys->cbc.opad;
        uint8_t* iv_enc = keys->cbc.iv_enc;
        if (des3) {
            new (&keys->des3) detail::des3_keys{};
            for (size_t i = 0; i < 3; ++i) {
                IMB_DES_KEYSCHED(mgr, keys->des3.schedule[i], key + 8 * i);
                keys->des3.schedule_ptr[i] = keys->des3.schedule[i];
            }
            ipad = keys->des3.ipad;
            opad = keys->des3.opad;
            iv_enc = keys->des3.iv_enc;
        } else if (aes_len == 16) {
            IMB_AES_KEYEXP_128(mgr, key, keys->cbc.enc, keys->cbc.dec);
        } else {
            IMB_AES_KEYEXP_256(mgr, key, keys->cbc.enc, keys->cbc.dec);
        }
        if (p.integ != integ_alg::none) {
            // Every integrity key is at most one block long: hmac_pads cannot refuse it.
            (void)hmac_pads(mgr, hmac_of(p.integ), p.integ_key, ipad, opad);
        }
        if (!inbound) {
            alignas(16) uint8_t iv_key[16];
            alignas(16) uint8_t unused_dec[detail::aes_schedule_bytes];
            if (!fill_random(iv_key, sizeof(iv_key)) ||
                !fill_random(s->_iv_nonce, sizeof(s->_iv_nonce))) {
                return wire::fail(sa_error::no_entropy);
            }
            IMB_AES_KEYEXP_128(mgr, iv_key, iv_enc, unused_dec);
            explicit_bzero(iv_key, sizeof(iv_key));
            explicit_bzero(unused_dec, sizeof(unused_dec));
        }
    }
    return s;
}

sa::~sa() {
    wipe(_keys, sizeof(_keys));
    wipe(_salt, sizeof(_salt));
    wipe(_iv_nonce, sizeof(_iv_nonce));
}

void sa::reset_marks() noexcept {
    const bool soft_done = (_events.load(std::memory_order_relaxed) & event_soft) != 0;
    auto mark = [soft_done](uint64_t soft, uint64_t hard) {
        uint64_t m = UINT64_MAX;
        if (!soft_done && soft != 0) {
            m = soft;
        }
        if (hard != 0) {
            m = std::min(m, hard);
        }
        return m;
    };
    // Several workers may get here at once (outbound); they all store the same marks.
    _packet_mark.store(mark(_lifetime.soft_packets, _lifetime.hard_packets),
                       std::memory_order_relaxed);
    _byte_mark.store(mark(_lifetime.soft_bytes, _lifetime.hard_bytes), std::memory_order_relaxed);
}

sa::lifetime_verdict sa::lifetime_slow(uint64_t new_packets, uint64_t new_bytes) noexcept {
    const sa_lifetime& lt = _lifetime;
    const bool over_packets = lt.hard_packets != 0 && new_packets > lt.hard_packets;
    const bool over_bytes = lt.hard_bytes != 0 && new_bytes > lt.hard_bytes;
    if (over_packets || over_bytes) {
        _events.fetch_or(event_hard, std::memory_order_release);
        return lifetime_verdict::refuse;
    }
    // Exactly at a hard limit: this packet passes, the next cannot; tell the control lcore now.
    if ((lt.hard_packets != 0 && new_packets == lt.hard_packets) ||
        (lt.hard_bytes != 0 && new_bytes == lt.hard_bytes)) {
        _events.fetch_or(event_hard, std::memory_order_release);
    }
    const bool soft_done = (_events.load(std::memory_order_relaxed) & event_soft) != 0;
    if (!soft_done && ((lt.soft_packets != 0 && new_packets >= lt.soft_packets) ||
                       (lt.soft_bytes != 0 && new_bytes >= lt.soft_bytes))) {
        // Workers encrypting at once may all cross it: the one that sets the bit reports it.
        const uint8_t before = _events.fetch_or(event_soft, std::memory_order_release);
        reset_marks();
        return (before & event_soft) == 0 ? lifetime_verdict::pass_soft_now
                                          : lifetime_verdict::pass;
    }
    return lifetime_verdict::pass;
}

std::vector<uint8_t> hmac_digest(engine& eng, hmac_alg alg, std::span<const uint8_t> key,
                                 std::span<const uint8_t> msg) {
    IMB_MGR* mgr = eng.mgr();
    alignas(16) uint8_t ipad[32];
    alignas(16) uint8_t opad[32];
    if (!hmac_pads(mgr, alg, key, ipad, opad)) {
        return {};
    }
    const size_t digest_len = alg == hmac_alg::sha1 ? 20 : alg == hmac_alg::md5 ? 16 : 32;
    std::vector<uint8_t> out(digest_len);
    // IPsec-MB refuses a null source even for an empty message.
    static const uint8_t empty = 0;
    const uint8_t* src = msg.empty() ? &empty : msg.data();

    IMB_JOB* job = IMB_GET_NEXT_JOB(mgr);
    job->cipher_mode = IMB_CIPHER_NULL;
    job->cipher_direction = IMB_DIR_ENCRYPT;
    job->chain_order = IMB_ORDER_HASH_CIPHER;
    job->hash_alg = alg == hmac_alg::sha1  ? IMB_AUTH_HMAC_SHA_1
                    : alg == hmac_alg::md5 ? IMB_AUTH_MD5
                                           : IMB_AUTH_HMAC_SHA_256;
    job->src = src;
    job->dst = out.data();
    job->cipher_start_src_offset_in_bytes = 0;
    job->msg_len_to_cipher_in_bytes = 0;
    job->hash_start_src_offset_in_bytes = 0;
    job->msg_len_to_hash_in_bytes = msg.size();
    job->auth_tag_output = out.data();
    job->auth_tag_output_len_in_bytes = digest_len;
    job->u.HMAC._hashed_auth_key_xor_ipad = ipad;
    job->u.HMAC._hashed_auth_key_xor_opad = opad;
    job->user_data = out.data();

    bool done = false;
    bool ok = false;
    IMB_JOB* completed = IMB_SUBMIT_JOB(mgr);
    while (!done) {
        if (completed == nullptr) {
            completed = IMB_FLUSH_JOB(mgr);
            if (completed == nullptr) {
                break;
            }
        }
        if (completed->user_data == out.data()) {
            done = true;
            ok = completed->status == IMB_STATUS_COMPLETED;
        }
        completed = IMB_GET_COMPLETED_JOB(mgr);
    }
    if (!ok) {
        out.clear();
    }
    return out;
}

}  // namespace dmvpn::crypto
