#include "crypto/esp_transport.hpp"

#include <algorithm>
#include <cstring>
#include <new>

#include "crypto/esp_wire.hpp"
#include "crypto/sa_keys.hpp"
#include "dataplane/wire/reader.hpp"

namespace dmvpn::crypto {

std::string_view name(esp_status s) noexcept {
    switch (s) {
        case esp_status::ok:
            return "ok";
        case esp_status::not_ipv4:
            return "not_ipv4";
        case esp_status::bad_ip_header:
            return "bad_ip_header";
        case esp_status::truncated:
            return "truncated";
        case esp_status::ip_fragment:
            return "ip_fragment";
        case esp_status::not_esp:
            return "not_esp";
        case esp_status::spi_mismatch:
            return "spi_mismatch";
        case esp_status::bad_cipher_length:
            return "bad_cipher_length";
        case esp_status::no_headroom:
            return "no_headroom";
        case esp_status::no_tailroom:
            return "no_tailroom";
        case esp_status::too_big:
            return "too_big";
        case esp_status::wrong_direction:
            return "wrong_direction";
        case esp_status::sa_expired:
            return "sa_expired";
        case esp_status::seq_overflow:
            return "seq_overflow";
        case esp_status::replayed:
            return "replayed";
        case esp_status::outside_window:
            return "outside_window";
        case esp_status::zero_sequence:
            return "zero_sequence";
        case esp_status::bad_icv:
            return "bad_icv";
        case esp_status::bad_padding:
            return "bad_padding";
        case esp_status::dummy_packet:
            return "dummy_packet";
        case esp_status::engine_error:
            return "engine_error";
    }
    return "unknown";
}

// The SA's private per-packet state, for the burst paths below only.
struct esp_access {
    static detail::sa_keys& keys(sa& s) noexcept {
        return *std::launder(reinterpret_cast<detail::sa_keys*>(s._keys));
    }
    static const uint8_t* salt(const sa& s) noexcept { return s._salt; }
    static const uint8_t* iv_nonce(const sa& s) noexcept { return s._iv_nonce; }
    static bool hard_expired_fast(const sa& s) noexcept {
        return (s._events.load(std::memory_order_relaxed) & sa::event_hard) != 0;
    }
    // Inbound: counts one packet of `bytes` against the lifetimes; false when a hard limit
    // refuses it. `sum` learns when this packet crossed a soft limit. The receiving worker is
    // the only writer, so plain load/store on the atomics suffices.
    static bool account(sa& s, uint64_t bytes, burst_summary& sum) noexcept {
        const uint64_t p = s._packets.load(std::memory_order_relaxed) + 1;
        const uint64_t b = s._bytes.load(std::memory_order_relaxed) + bytes;
        if (p >= s._packet_mark.load(std::memory_order_relaxed) ||
            b >= s._byte_mark.load(std::memory_order_relaxed)) [[unlikely]] {
            const auto verdict = s.lifetime_slow(p, b);
            if (verdict == sa::lifetime_verdict::refuse) {
                return false;
            }
            sum.soft_expired_now |= verdict == sa::lifetime_verdict::pass_soft_now;
        }
        s._packets.store(p, std::memory_order_relaxed);
        s._bytes.store(b, std::memory_order_relaxed);
        return true;
    }

    // Outbound, any number of workers at once: claims the packet's sequence number into `sn`
    // and counts its `bytes` against the lifetimes. One compare-and-swap on _seq (it never
    // passes `limit`, so a number is never used twice and never wraps) and one atomic add on
    // _bytes per packet, both on the SA's first cache line, which the packet reads anyway.
    static esp_status claim(sa& s, uint64_t bytes, uint64_t limit, burst_summary& sum,
                            uint64_t& sn) noexcept {
        uint64_t cur = s._seq.load(std::memory_order_relaxed);
        do {
            if (cur >= limit) [[unlikely]] {
                return esp_status::seq_overflow;
            }
        } while (!s._seq.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed));
        sn = cur + 1;
        const uint64_t p = sn - s._packets.load(std::memory_order_relaxed);
        const uint64_t b = s._bytes.fetch_add(bytes, std::memory_order_relaxed) + bytes;
        if (p >= s._packet_mark.load(std::memory_order_relaxed) ||
            b >= s._byte_mark.load(std::memory_order_relaxed)) [[unlikely]] {
            const auto verdict = s.lifetime_slow(p, b);
            if (verdict == sa::lifetime_verdict::refuse) {
                s._bytes.fetch_sub(bytes, std::memory_order_relaxed);
                // The number goes back unless another packet claimed one since; then it stays
                // a gap, counted so that packets() does not count it.
                uint64_t mine = sn;
                if (!s._seq.compare_exchange_strong(mine, sn - 1, std::memory_order_relaxed)) {
                    s._packets.fetch_add(1, std::memory_order_relaxed);
                }
                return esp_status::sa_expired;
            }
            sum.soft_expired_now |= verdict == sa::lifetime_verdict::pass_soft_now;
        }
        return esp_status::ok;
    }
};

namespace {

constexpr uint32_t ipv4_min_header = 20;
constexpr uint32_t esp_header_len = esp::header_size;
constexpr uint8_t ip_proto_esp = 50;
constexpr uint32_t ipv4_max_total = 65535;

using wire::load_be16;
using wire::store_be16;
using wire::store_be32;

void store_be64(uint8_t* p, uint64_t v) noexcept {
    store_be32(p, static_cast<uint32_t>(v >> 32));
    store_be32(p + 4, static_cast<uint32_t>(v));
}

struct ipv4_view {
    esp_status status;
    uint32_t ihl;
    uint32_t total;
};

// A plain struct rather than wire::result: this runs for every packet and stays in registers.
ipv4_view parse_ipv4(const esp_packet& p) noexcept {
    if (p.len < ipv4_min_header) {
        return {esp_status::truncated, 0, 0};
    }
    if ((p.data[0] >> 4) != 4) {
        return {esp_status::not_ipv4, 0, 0};
    }
    const uint32_t ihl = uint32_t{p.data[0] & 0x0fu} * 4;
    if (ihl < ipv4_min_header) {
        return {esp_status::bad_ip_header, 0, 0};
    }
    if (p.len < ihl) {
        return {esp_status::truncated, 0, 0};
    }
    const uint32_t total = load_be16(p.data + 2);
    if (total < ihl) {
        return {esp_status::bad_ip_header, 0, 0};
    }
    if (total > p.len) {
        return {esp_status::truncated, 0, 0};
    }
    if ((load_be16(p.data + 6) & 0x3fff) != 0) {  // MF or a fragment offset
        return {esp_status::ip_fragment, 0, 0};
    }
    return {esp_status::ok, ihl, total};
}

// Moves the IPv4 header `ihl` bytes long from `from` to `to` (the ranges may overlap). The
// common 20-byte header goes through registers instead of a memmove call.
void move_header(uint8_t* to, const uint8_t* from, uint32_t ihl) noexcept {
    if (ihl == ipv4_min_header) {
        uint8_t tmp[ipv4_min_header];
        std::memcpy(tmp, from, ipv4_min_header);
        std::memcpy(to, tmp, ipv4_min_header);
    } else {
        std::memmove(to, from, ihl);
    }
}

// Sets total length and protocol, updating the header checksum incrementally (RFC 1624
// equation 3) for the two 16-bit words that change. A header that arrived with a bad checksum
// keeps a bad one, as RFC 1624 section 5 wants, so the damage stays detectable.
void finish_ipv4(uint8_t* ip, uint32_t total, uint8_t protocol) noexcept {
    const uint32_t old_len = load_be16(ip + 2);
    const uint32_t old_ttl_proto = load_be16(ip + 8);
    const uint32_t new_ttl_proto = (old_ttl_proto & 0xff00u) | protocol;
    uint32_t sum = (~uint32_t{load_be16(ip + 10)} & 0xffffu) + (~old_len & 0xffffu) + total +
                   (~old_ttl_proto & 0xffffu) + new_ttl_proto;
    sum = (sum & 0xffffu) + (sum >> 16);
    sum = (sum & 0xffffu) + (sum >> 16);
    store_be16(ip + 2, static_cast<uint16_t>(total));
    ip[9] = protocol;
    store_be16(ip + 10, static_cast<uint16_t>(~sum));
}

// Compares in time independent of where the first difference is.
bool icv_equal(const uint8_t* a, const uint8_t* b, uint32_t n) noexcept {
    uint8_t diff = 0;
    for (uint32_t i = 0; i < n; ++i) {
        diff = static_cast<uint8_t>(diff | (a[i] ^ b[i]));
    }
    return diff == 0;
}

esp_status from_parse(esp::parse_error e) noexcept {
    switch (e) {
        case esp::parse_error::truncated:
        case esp::parse_error::body_too_short:
            return esp_status::truncated;
        case esp::parse_error::zero_spi:
            return esp_status::spi_mismatch;  // an SA never has SPI 0
        case esp::parse_error::misaligned_body:
            return esp_status::bad_cipher_length;
    }
    return esp_status::truncated;
}

esp_status from_replay(replay_error e) noexcept {
    switch (e) {
        case replay_error::replayed:
            return esp_status::replayed;
        case replay_error::outside_window:
            return esp_status::outside_window;
        case replay_error::zero:
            return esp_status::zero_sequence;
    }
    return esp_status::outside_window;
}

// Everything a chunk needs to know about its SA, read once per burst.
struct sa_view {
    bool gcm;
    bool esn;
    bool hmac;
    uint32_t key_len;
    uint32_t iv_len;
    uint32_t icv_len;
    uint32_t block;  // esp::layout's block_size: 1 for GCM (4-byte alignment only), else the
                     // cipher block (16 AES-CBC, 8 3DES-CBC)
    IMB_CIPHER_MODE mode;
    IMB_HASH_ALG hash;
    // What the jobs point at: the key schedules (GCM key data, or in cbc_keys or des3_keys), in
    // cbc_keys or des3_keys.
    const void* enc_keys;
    const void* dec_keys;
    const uint8_t* ipad;
    const uint8_t* opad;
    const uint8_t* iv_key;  // the IV generator's AES-128 schedule
};

sa_view view_of(sa& s) noexcept {
    sa_view v{};
    v.gcm = s.cipher() == cipher_alg::aes_gcm_16;
    v.esn = s.esn();
    v.hmac = s.integ() != integ_alg::none;
    v.key_len = s.key_bytes();
    v.iv_len = s.iv_len();
    v.icv_len = s.icv_len();
    v.block = v.gcm ? 1 : s.pad_align();
    detail::sa_keys& k = esp_access::keys(s);
    switch (s.cipher()) {
        case cipher_alg::aes_gcm_16:
            v.mode = IMB_CIPHER_GCM;
            v.enc_keys = &k.gcm;
            v.dec_keys = &k.gcm;
            break;
        case cipher_alg::aes_cbc:
            v.mode = IMB_CIPHER_CBC;
            v.enc_keys = k.cbc.enc;
            v.dec_keys = k.cbc.dec;
            v.ipad = k.cbc.ipad;
            v.opad = k.cbc.opad;
            v.iv_key = k.cbc.iv_enc;
            break;
        case cipher_alg::des3_cbc:
            // Both directions take the three schedules; decryption runs them in reverse.
            v.mode = IMB_CIPHER_DES3;
            v.enc_keys = k.des3.schedule_ptr;
            v.dec_keys = k.des3.schedule_ptr;
            v.ipad = k.des3.ipad;
            v.opad = k.des3.opad;
            v.iv_key = k.des3.iv_enc;
            break;
    }
    switch (s.integ()) {
        case integ_alg::hmac_sha1_96:
            v.hash = IMB_AUTH_HMAC_SHA_1;
            break;
        case integ_alg::hmac_sha256_128:
            v.hash = IMB_AUTH_HMAC_SHA_256;
            break;
        case integ_alg::hmac_md5_96:
            v.hash = IMB_AUTH_MD5;
            break;
        case integ_alg::none:
            v.hash = v.gcm ? IMB_AUTH_AES_GMAC : IMB_AUTH_NULL;
            break;
    }
    return v;
}

// Fills the job fields both directions share. Every field the chosen modes read is set: a job
// slot comes back from IMB_GET_NEXT_JOB holding whatever its last user left there.
void fill_job(IMB_JOB* job, const sa_view& v, detail::burst_scratch& sc, uint32_t k, uint8_t* ip,
              const detail::packet_state& st, bool encrypt) noexcept {
    const uint32_t esp_off = st.ihl;
    const uint32_t ct_off = esp_off + esp_header_len + v.iv_len;
    job->src = ip;
    job->dst = ip + ct_off;
    job->cipher_start_src_offset_in_bytes = ct_off;
    job->msg_len_to_cipher_in_bytes = st.ct_len;
    job->cipher_direction = encrypt ? IMB_DIR_ENCRYPT : IMB_DIR_DECRYPT;
    // Encrypt then MAC on the way out; MAC the ciphertext before decrypting it on the way in.
    job->chain_order = encrypt ? IMB_ORDER_CIPHER_HASH : IMB_ORDER_HASH_CIPHER;
    job->hash_alg = v.hash;
    job->key_len_in_bytes = v.key_len;
    job->auth_tag_output = encrypt ? ip + st.icv_off : sc.icv[k];
    job->auth_tag_output_len_in_bytes = v.icv_len;
    job->user_data = reinterpret_cast<void*>(uintptr_t{k});
    job->cipher_mode = v.mode;
    job->enc_keys = v.enc_keys;
    job->dec_keys = v.dec_keys;
    if (v.gcm) {
        job->iv = sc.nonce[k];
        job->iv_len_in_bytes = 12;
        job->hash_start_src_offset_in_bytes = ct_off;
        job->msg_len_to_hash_in_bytes = st.ct_len;
        job->u.GCM.aad = sc.aad[k];
        job->u.GCM.aad_len_in_bytes = v.esn ? 12 : 8;
        job->u.GCM.ctx = nullptr;
    } else {
        job->iv = ip + esp_off + esp_header_len;
        job->iv_len_in_bytes = v.iv_len;
        // The ICV covers the ESP header, IV and ciphertext, plus the ESN high half appended
        // (RFC 4303 section 2.2.1), which the caller put where the ICV goes.
        job->hash_start_src_offset_in_bytes = esp_off;
        job->msg_len_to_hash_in_bytes =
            esp_header_len + v.iv_len + st.ct_len + (v.esn && v.hmac ? 4 : 0);
        job->u.HMAC._hashed_auth_key_xor_ipad = v.ipad;
        job->u.HMAC._hashed_auth_key_xor_opad = v.opad;
        if (!v.hmac) {
            job->auth_tag_output = nullptr;
            job->auth_tag_output_len_in_bytes = 0;
            job->msg_len_to_hash_in_bytes = 0;
        }
    }
}

// Release builds skip IPsec-MB's per-job argument checks: every length and pointer was
// checked while the packet was prepared. Debug and test builds keep them as a second opinion.
IMB_JOB* submit(IMB_MGR* mgr) noexcept {
#ifdef NDEBUG
    return IMB_SUBMIT_JOB_NOCHECK(mgr);
#else
    return IMB_SUBMIT_JOB(mgr);
#endif
}

// Submits `count` prepared jobs and hands each completed one to `done` in submission order
// (IPsec-MB returns jobs in order), leaving the manager's queue empty.
template <typename Fill, typename Done>
void run_jobs(IMB_MGR* mgr, uint32_t count, Fill&& fill, Done&& done) noexcept {
    for (uint32_t k = 0; k < count; ++k) {
        IMB_JOB* job = IMB_GET_NEXT_JOB(mgr);
        fill(job, k);
        job = submit(mgr);
        while (job != nullptr) {
            done(job);
            job = IMB_GET_COMPLETED_JOB(mgr);
        }
    }
    IMB_JOB* job = IMB_FLUSH_JOB(mgr);
    while (job != nullptr) {
        done(job);
        job = IMB_GET_COMPLETED_JOB(mgr);
        if (job == nullptr) {
            job = IMB_FLUSH_JOB(mgr);
        }
    }
}

// CBC IVs for a chunk: one AES-ECB job encrypts every packet's (sequence || SA nonce) block
// under the SA's IV key (`iv_key`, its AES-128 schedule). Unique inputs under a secret key give
// unpredictable IVs; 3DES takes the first 8 bytes of each.
bool generate_cbc_ivs(IMB_MGR* mgr, const uint8_t* iv_key, detail::burst_scratch& sc,
                      uint32_t count) noexcept {
    bool ok = false;
    run_jobs(
        mgr, 1,
        [&](IMB_JOB* job, uint32_t) {
            job->cipher_mode = IMB_CIPHER_ECB;
            job->cipher_direction = IMB_DIR_ENCRYPT;
            job->chain_order = IMB_ORDER_CIPHER_HASH;
            job->hash_alg = IMB_AUTH_NULL;
            job->enc_keys = iv_key;
            job->dec_keys = iv_key;
            job->key_len_in_bytes = 16;
            job->src = sc.iv_in[0];
            job->dst = sc.iv_out[0];
            job->cipher_start_src_offset_in_bytes = 0;
            job->msg_len_to_cipher_in_bytes = uint64_t{count} * 16;
            job->hash_start_src_offset_in_bytes = 0;
            job->msg_len_to_hash_in_bytes = 0;
            job->iv = nullptr;
            job->iv_len_in_bytes = 0;
            job->auth_tag_output = nullptr;
            job->auth_tag_output_len_in_bytes = 0;
            job->user_data = nullptr;
        },
        [&](IMB_JOB* job) { ok = job->status == IMB_STATUS_COMPLETED; });
    return ok;
}

// The job path: any SA, a chunk of packets prepared, then ciphered through the job queue. CBC
// SAs take it; GCM SAs take the direct path below.
burst_summary encrypt_jobs(engine& eng, sa& s, std::span<esp_packet> pkts,
                           std::span<esp_status> status, const iv_bytes* ivs) noexcept {
    burst_summary sum;
    const size_t n = std::min(pkts.size(), status.size());
    if (s.direction() != sa_direction::outbound) {
        std::fill_n(status.begin(), n, esp_status::wrong_direction);
        return sum;
    }
    if (s.key_arch() != eng.arch_id()) {
        std::fill_n(status.begin(), n, esp_status::engine_error);
        return sum;
    }
    const sa_view v = view_of(s);
    detail::burst_scratch& sc = eng.scratch();
    IMB_MGR* mgr = eng.mgr();
    const uint64_t seq_limit = v.esn ? UINT64_MAX : UINT32_MAX;
    const uint32_t head = esp_header_len + v.iv_len;
    uint16_t index[detail::max_chunk];

    for (size_t base = 0; base < n; base += detail::max_chunk) {
        const uint32_t chunk = static_cast<uint32_t>(std::min<size_t>(detail::max_chunk, n - base));
        uint32_t ready = 0;
        for (uint32_t c = 0; c < chunk; ++c) {
            const size_t i = base + c;
            esp_packet& p = pkts[i];
            const ipv4_view ip = parse_ipv4(p);
            if (ip.status != esp_status::ok) {
                status[i] = ip.status;
                continue;
            }
            const uint32_t ihl = ip.ihl;
            const uint32_t total = ip.total;
            const uint32_t payload = total - ihl;
            const auto pad = static_cast<uint32_t>(esp::padding_for(payload, v.block));
            const uint32_t ct_len = payload + pad + static_cast<uint32_t>(esp::trailer_size);
            const uint32_t new_total = total + head + (ct_len - payload) + v.icv_len;
            // Bytes past the IPv4 total length (link padding) are overwritten by the trailer.
            const uint64_t tail_space = uint64_t{p.tailroom} + (p.len - total);
            if (new_total > ipv4_max_total) {
                status[i] = esp_status::too_big;
                continue;
            }
            if (p.headroom < head) {
                status[i] = esp_status::no_headroom;
                continue;
            }
            if (tail_space < new_total - total - head) {
                status[i] = esp_status::no_tailroom;
                continue;
            }
            if (esp_access::hard_expired_fast(s)) {
                status[i] = esp_status::sa_expired;
                continue;
            }
            uint64_t sn = 0;
            const esp_status claimed = esp_access::claim(s, ct_len, seq_limit, sum, sn);
            if (claimed != esp_status::ok) {
                status[i] = claimed;
                continue;
            }
            const uint8_t next_header = p.data[9];

            uint8_t* ip_hdr = p.data - head;
            move_header(ip_hdr, p.data, ihl);
            uint8_t* esp = ip_hdr + ihl;
            (void)esp::encode_header({s.spi(), static_cast<uint32_t>(sn)}, {esp, esp_header_len});
            (void)esp::encode_trailer(pad, next_header,
                                      {esp + head + payload, pad + esp::trailer_size});
            finish_ipv4(ip_hdr, new_total, ip_proto_esp);

            detail::packet_state& st = sc.state[ready];
            st.seq = sn;
            st.ihl = ihl;
            st.ct_len = ct_len;
            st.icv_off = new_total - v.icv_len;
            if (v.gcm) {
                uint8_t* iv = esp + esp_header_len;
                if (ivs != nullptr) {
                    std::memcpy(iv, ivs[i].data(), 8);
                } else {
                    store_be64(iv, sn);  // RFC 4106 section 3.1: a counter is a fine IV
                }
                std::memcpy(sc.nonce[ready], esp_access::salt(s), 4);
                std::memcpy(sc.nonce[ready] + 4, iv, 8);
                std::memcpy(sc.aad[ready], esp, 4);
                if (v.esn) {
                    store_be32(sc.aad[ready] + 4, static_cast<uint32_t>(sn >> 32));
                    std::memcpy(sc.aad[ready] + 8, esp + 4, 4);
                } else {
                    std::memcpy(sc.aad[ready] + 4, esp + 4, 4);
                }
            } else {
                if (ivs != nullptr) {
                    std::memcpy(esp + esp_header_len, ivs[i].data(), v.iv_len);
                } else {
                    store_be64(sc.iv_in[ready], sn);
                    std::memcpy(sc.iv_in[ready] + 8, esp_access::iv_nonce(s), 8);
                }
                if (v.esn && v.hmac) {
                    store_be32(ip_hdr + st.icv_off, static_cast<uint32_t>(sn >> 32));
                }
            }

            const uint8_t* buffer_end = p.data + p.len + p.tailroom;
            p.data = ip_hdr;
            p.len = new_total;
            p.headroom -= head;
            p.tailroom = static_cast<uint32_t>(buffer_end - (ip_hdr + new_total));
            status[i] = esp_status::ok;
            index[ready] = static_cast<uint16_t>(i);
            ++ready;
        }
        if (ready == 0) {
            continue;
        }
        if (!v.gcm && ivs == nullptr) {
            if (!generate_cbc_ivs(mgr, v.iv_key, sc, ready)) {
                for (uint32_t k = 0; k < ready; ++k) {
                    status[index[k]] = esp_status::engine_error;
                }
                continue;
            }
            for (uint32_t k = 0; k < ready; ++k) {
                std::memcpy(pkts[index[k]].data + sc.state[k].ihl + esp_header_len, sc.iv_out[k],
                            v.iv_len);
            }
        }
        run_jobs(
            mgr, ready,
            [&](IMB_JOB* job, uint32_t k) {
                fill_job(job, v, sc, k, pkts[index[k]].data, sc.state[k], true);
            },
            [&](IMB_JOB* job) {
                const auto k = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(job->user_data));
                if (job->status != IMB_STATUS_COMPLETED) {
                    status[index[k]] = esp_status::engine_error;
                }
            });
    }
    for (size_t i = 0; i < n; ++i) {
        sum.ok += status[i] == esp_status::ok ? 1 : 0;
    }
    return sum;
}

burst_summary decrypt_jobs(engine& eng, sa& s, std::span<esp_packet> pkts,
                           std::span<esp_status> status) noexcept {
    burst_summary sum;
    const size_t n = std::min(pkts.size(), status.size());
    if (s.direction() != sa_direction::inbound) {
        std::fill_n(status.begin(), n, esp_status::wrong_direction);
        return sum;
    }
    if (s.key_arch() != eng.arch_id()) {
        std::fill_n(status.begin(), n, esp_status::engine_error);
        return sum;
    }
    const sa_view v = view_of(s);
    detail::burst_scratch& sc = eng.scratch();
    IMB_MGR* mgr = eng.mgr();
    replay_window& window = s.window();
    const uint32_t head = esp_header_len + v.iv_len;
    uint16_t index[detail::max_chunk];

    for (size_t base = 0; base < n; base += detail::max_chunk) {
        const uint32_t chunk = static_cast<uint32_t>(std::min<size_t>(detail::max_chunk, n - base));
        uint32_t ready = 0;
        for (uint32_t c = 0; c < chunk; ++c) {
            const size_t i = base + c;
            esp_packet& p = pkts[i];
            const ipv4_view ip = parse_ipv4(p);
            if (ip.status != esp_status::ok) {
                status[i] = ip.status;
                continue;
            }
            const uint32_t ihl = ip.ihl;
            if (p.data[9] != ip_proto_esp) {
                status[i] = esp_status::not_esp;
                continue;
            }
            uint8_t* esp = p.data + ihl;
            const auto parsed = esp::parse({esp, ip.total - ihl}, {v.iv_len, v.icv_len, v.block});
            if (!parsed) {
                status[i] = from_parse(parsed.error());
                continue;
            }
            if (parsed->hdr.spi != s.spi()) {
                status[i] = esp_status::spi_mismatch;
                continue;
            }
            // Whole blocks of at least two bytes: esp::parse checked both.
            const auto ct_len = static_cast<uint32_t>(parsed->ciphertext.size());
            if (esp_access::hard_expired_fast(s)) {
                status[i] = esp_status::sa_expired;
                continue;
            }
            // The cheap replay test comes before any cryptography (RFC 4303 section 3.4.3).
            auto sn = window.check_low(parsed->hdr.sequence);
            if (!sn) {
                status[i] = from_replay(sn.error());
                continue;
            }
            detail::packet_state& st = sc.state[ready];
            st.seq = *sn;
            st.ihl = ihl;
            st.ct_len = ct_len;
            st.icv_off = ip.total - v.icv_len;
            if (v.gcm) {
                std::memcpy(sc.nonce[ready], esp_access::salt(s), 4);
                std::memcpy(sc.nonce[ready] + 4, esp + esp_header_len, 8);
                std::memcpy(sc.aad[ready], esp, 4);
                if (v.esn) {
                    store_be32(sc.aad[ready] + 4, static_cast<uint32_t>(*sn >> 32));
                    std::memcpy(sc.aad[ready] + 8, esp + 4, 4);
                } else {
                    std::memcpy(sc.aad[ready] + 4, esp + 4, 4);
                }
            } else if (v.esn && v.hmac) {
                // The ESN high half is hashed as if it followed the ciphertext: park the
                // received ICV and put the high half where it starts.
                std::memcpy(sc.icv_rx[ready], p.data + st.icv_off, v.icv_len);
                store_be32(p.data + st.icv_off, static_cast<uint32_t>(*sn >> 32));
            }
            status[i] = esp_status::ok;
            index[ready] = static_cast<uint16_t>(i);
            ++ready;
        }
        if (ready == 0) {
            continue;
        }
        run_jobs(
            mgr, ready,
            [&](IMB_JOB* job, uint32_t k) {
                fill_job(job, v, sc, k, pkts[index[k]].data, sc.state[k], false);
            },
            [&](IMB_JOB* job) {
                const auto k = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(job->user_data));
                const size_t i = index[k];
                esp_packet& p = pkts[i];
                const detail::packet_state& st = sc.state[k];
                if (job->status != IMB_STATUS_COMPLETED) {
                    status[i] = esp_status::engine_error;
                    return;
                }
                if (v.icv_len != 0) {
                    const uint8_t* rx = (v.esn && v.hmac) ? sc.icv_rx[k] : p.data + st.icv_off;
                    if (!icv_equal(sc.icv[k], rx, v.icv_len)) {
                        status[i] = esp_status::bad_icv;
                        return;
                    }
                }
                // Authentic from here. An earlier packet of this burst may have taken the
                // number since the pre-check, so test the window again before counting.
                auto fresh = window.check(st.seq);
                if (!fresh) {
                    status[i] = from_replay(fresh.error());
                    return;
                }
                if (!esp_access::account(s, st.ct_len, sum)) {
                    status[i] = esp_status::sa_expired;
                    return;
                }
                (void)window.accept(st.seq);

                const auto trailer = esp::parse_trailer({p.data + st.ihl + head, st.ct_len});
                if (!trailer) {
                    status[i] = esp_status::bad_padding;
                    return;
                }
                const auto payload = static_cast<uint32_t>(trailer->payload.size());
                const uint8_t next_header = trailer->next_header;
                if (next_header == esp::next_header_none) {
                    status[i] = esp_status::dummy_packet;
                    return;
                }
                uint8_t* ip_hdr = p.data + head;
                move_header(ip_hdr, p.data, st.ihl);
                const uint32_t new_total = st.ihl + payload;
                finish_ipv4(ip_hdr, new_total, next_header);
                const uint8_t* buffer_end = p.data + p.len + p.tailroom;
                p.data = ip_hdr;
                p.len = new_total;
                p.headroom += head;
                p.tailroom = static_cast<uint32_t>(buffer_end - (ip_hdr + new_total));
            });
    }
    for (size_t i = 0; i < n; ++i) {
        sum.ok += status[i] == esp_status::ok ? 1 : 0;
    }
    return sum;
}

// --- GCM through IPsec-MB's direct API: one call per packet, no job queue ---
//
// AES-GCM is not multi-buffer in IPsec-MB: a GCM job is ciphered inside its submit call, so the
// job queue only adds its bookkeeping (fill, validate, submit, flush). Packets are taken one at
// a time, in order: each passes its checks, is ciphered and is accounted before the next starts,
// which is what the job path's prepare/complete split amounts to for a cipher that completes in
// submit, except that a duplicate later in the same burst is refused before it is deciphered.

constexpr uint32_t gcm_iv_len = 8;
constexpr uint32_t gcm_icv_len = 16;
constexpr uint32_t gcm_head = esp_header_len + gcm_iv_len;

// Whether packets of `s` take the direct path on this engine; the rest (CBC, or a misuse the
// job path names: wrong direction, keys of another code path) take the job path.
bool direct_gcm(const sa& s, uint8_t arch, sa_direction d) noexcept {
    return s.cipher() == cipher_alg::aes_gcm_16 && s.direction() == d && s.key_arch() == arch;
}

// Nonce (salt || explicit IV, RFC 4106 section 4) and AAD (SPI || [ESN high] || sequence,
// section 5); returns the AAD length.
uint32_t gcm_nonce_aad(const sa& s, const uint8_t* esp, uint64_t sn, uint8_t* nonce,
                       uint8_t* aad) noexcept {
    std::memcpy(nonce, esp_access::salt(s), 4);
    std::memcpy(nonce + 4, esp + esp_header_len, gcm_iv_len);
    std::memcpy(aad, esp, 4);
    if (s.esn()) {
        store_be32(aad + 4, static_cast<uint32_t>(sn >> 32));
        std::memcpy(aad + 8, esp + 4, 4);
        return 12;
    }
    std::memcpy(aad + 4, esp + 4, 4);
    return 8;
}

esp_status gcm_encrypt_one(IMB_MGR* mgr, sa& s, esp_packet& p, const iv_bytes* iv_given,
                           burst_summary& sum) noexcept {
    const ipv4_view ip = parse_ipv4(p);
    if (ip.status != esp_status::ok) {
        return ip.status;
    }
    const uint32_t ihl = ip.ihl;
    const uint32_t total = ip.total;
    const uint32_t payload = total - ihl;
    const auto pad = static_cast<uint32_t>(esp::padding_for(payload, 1));
    const uint32_t ct_len = payload + pad + static_cast<uint32_t>(esp::trailer_size);
    const uint32_t new_total = total + gcm_head + (ct_len - payload) + gcm_icv_len;
    // Bytes past the IPv4 total length (link padding) are overwritten by the trailer.
    const uint64_t tail_space = uint64_t{p.tailroom} + (p.len - total);
    if (new_total > ipv4_max_total) {
        return esp_status::too_big;
    }
    if (p.headroom < gcm_head) {
        return esp_status::no_headroom;
    }
    if (tail_space < new_total - total - gcm_head) {
        return esp_status::no_tailroom;
    }
    if (esp_access::hard_expired_fast(s)) {
        return esp_status::sa_expired;
    }
    uint64_t sn = 0;
    const esp_status claimed =
        esp_access::claim(s, ct_len, s.esn() ? UINT64_MAX : UINT32_MAX, sum, sn);
    if (claimed != esp_status::ok) {
        return claimed;
    }
    const uint8_t next_header = p.data[9];

    uint8_t* ip_hdr = p.data - gcm_head;
    move_header(ip_hdr, p.data, ihl);
    uint8_t* esp = ip_hdr + ihl;
    (void)esp::encode_header({s.spi(), static_cast<uint32_t>(sn)}, {esp, esp_header_len});
    (void)esp::encode_trailer(pad, next_header,
                              {esp + gcm_head + payload, pad + esp::trailer_size});
    finish_ipv4(ip_hdr, new_total, ip_proto_esp);
    uint8_t* iv = esp + esp_header_len;
    if (iv_given != nullptr) {
        std::memcpy(iv, iv_given->data(), gcm_iv_len);
    } else {
        store_be64(iv, sn);  // RFC 4106 section 3.1: a counter is a fine IV
    }
    alignas(16) uint8_t nonce[16];
    alignas(16) uint8_t aad[16];
    const uint32_t aad_len = gcm_nonce_aad(s, esp, sn, nonce, aad);
    uint8_t* ct = esp + gcm_head;
    uint8_t* icv = ip_hdr + new_total - gcm_icv_len;
    const gcm_key_data* key = &esp_access::keys(s).gcm;
    gcm_context_data ctx;
    if (s.key_bytes() == 16) {
        IMB_AES128_GCM_ENC(mgr, key, &ctx, ct, ct, ct_len, nonce, aad, aad_len, icv, gcm_icv_len);
    } else {
        IMB_AES256_GCM_ENC(mgr, key, &ctx, ct, ct, ct_len, nonce, aad, aad_len, icv, gcm_icv_len);
    }

    const uint8_t* buffer_end = p.data + p.len + p.tailroom;
    p.data = ip_hdr;
    p.len = new_total;
    p.headroom -= gcm_head;
    p.tailroom = static_cast<uint32_t>(buffer_end - (ip_hdr + new_total));
    return esp_status::ok;
}

esp_status gcm_decrypt_one(IMB_MGR* mgr, sa& s, esp_packet& p, burst_summary& sum) noexcept {
    const ipv4_view ip = parse_ipv4(p);
    if (ip.status != esp_status::ok) {
        return ip.status;
    }
    const uint32_t ihl = ip.ihl;
    if (p.data[9] != ip_proto_esp) {
        return esp_status::not_esp;
    }
    uint8_t* esp = p.data + ihl;
    const auto parsed = esp::parse({esp, ip.total - ihl}, {gcm_iv_len, gcm_icv_len, 1});
    if (!parsed) {
        return from_parse(parsed.error());
    }
    if (parsed->hdr.spi != s.spi()) {
        return esp_status::spi_mismatch;
    }
    if (esp_access::hard_expired_fast(s)) {
        return esp_status::sa_expired;
    }
    // The cheap replay test comes before any cryptography (RFC 4303 section 3.4.3).
    replay_window& window = s.window();
    const auto sn = window.check_low(parsed->hdr.sequence);
    if (!sn) {
        return from_replay(sn.error());
    }
    // Whole 4-byte words of at least two bytes: esp::parse checked both.
    const auto ct_len = static_cast<uint32_t>(parsed->ciphertext.size());
    alignas(16) uint8_t nonce[16];
    alignas(16) uint8_t aad[16];
    const uint32_t aad_len = gcm_nonce_aad(s, esp, *sn, nonce, aad);
    uint8_t* ct = esp + gcm_head;
    alignas(16) uint8_t icv[gcm_icv_len];
    const gcm_key_data* key = &esp_access::keys(s).gcm;
    gcm_context_data ctx;
    if (s.key_bytes() == 16) {
        IMB_AES128_GCM_DEC(mgr, key, &ctx, ct, ct, ct_len, nonce, aad, aad_len, icv, gcm_icv_len);
    } else {
        IMB_AES256_GCM_DEC(mgr, key, &ctx, ct, ct, ct_len, nonce, aad, aad_len, icv, gcm_icv_len);
    }
    if (!icv_equal(icv, p.data + ip.total - gcm_icv_len, gcm_icv_len)) {
        return esp_status::bad_icv;
    }
    // Authentic from here: count it, then let the window remember it.
    if (!esp_access::account(s, ct_len, sum)) {
        return esp_status::sa_expired;
    }
    (void)window.accept(*sn);

    const auto trailer = esp::parse_trailer({ct, ct_len});
    if (!trailer) {
        return esp_status::bad_padding;
    }
    const auto payload = static_cast<uint32_t>(trailer->payload.size());
    const uint8_t next_header = trailer->next_header;
    if (next_header == esp::next_header_none) {
        return esp_status::dummy_packet;
    }
    uint8_t* ip_hdr = p.data + gcm_head;
    move_header(ip_hdr, p.data, ihl);
    const uint32_t new_total = ihl + payload;
    finish_ipv4(ip_hdr, new_total, next_header);
    const uint8_t* buffer_end = p.data + p.len + p.tailroom;
    p.data = ip_hdr;
    p.len = new_total;
    p.headroom += gcm_head;
    p.tailroom = static_cast<uint32_t>(buffer_end - (ip_hdr + new_total));
    return esp_status::ok;
}

burst_summary encrypt_impl(engine& eng, sa& s, std::span<esp_packet> pkts,
                           std::span<esp_status> status, const iv_bytes* ivs) noexcept {
    if (!direct_gcm(s, eng.arch_id(), sa_direction::outbound)) {
        return encrypt_jobs(eng, s, pkts, status, ivs);
    }
    burst_summary sum;
    const size_t n = std::min(pkts.size(), status.size());
    IMB_MGR* mgr = eng.mgr();
    for (size_t i = 0; i < n; ++i) {
        status[i] = gcm_encrypt_one(mgr, s, pkts[i], ivs != nullptr ? &ivs[i] : nullptr, sum);
        sum.ok += status[i] == esp_status::ok ? 1 : 0;
    }
    return sum;
}

// How far ahead of the packet being ciphered the multi-SA paths prefetch: an SA's two state
// lines first, then, once those are in, the key lines and the replay window word its packet
// needs (which takes reading the state: cipher, key length, window).
constexpr size_t state_prefetch_ahead = 2 * sa_prefetch_ahead;
constexpr size_t keys_prefetch_ahead = sa_prefetch_ahead;

[[gnu::always_inline]] inline void prefetch_range(const void* base, size_t from,
                                                  size_t to) noexcept {
    const auto b = reinterpret_cast<uintptr_t>(base);
    for (uintptr_t a = (b + from) & ~uintptr_t{63}; a < b + to; a += 64) {
        __builtin_prefetch(reinterpret_cast<const void*>(a));
    }
}

// Once an SA's state lines are in: starts loading the key schedule lines ciphering packet p
// reads (by cipher, key length and, for AES-GCM, the packet's length) and, inbound, the replay
// window word its sequence number tests. Reads the packet only within its bounds.
[[gnu::always_inline]] inline void prefetch_for_packet(sa& s, const esp_packet& p,
                                                       bool powers_at_end) noexcept {
    const detail::sa_keys& keys = esp_access::keys(s);
    if (s.cipher() == cipher_alg::aes_gcm_16) {
        // Round keys, then the GHASH key powers: IPsec-MB's VAES code path stores powers 48..1
        // up to the end of the key data and uses the last min(blocks, 48) of them; the other
        // paths keep 8 powers (and their Karatsuba halves) right after the round keys (checked
        // on IPsec-MB 1.3). p.len bounds the bytes ciphered from above.
        prefetch_range(&keys, 0, s.key_bytes() == 16 ? 11 * 16 : 15 * 16);
        if (powers_at_end) {
            const size_t blocks = std::min<size_t>((p.len + 15) / 16, 48);
            prefetch_range(&keys, sizeof(gcm_key_data) - 16 * blocks, sizeof(gcm_key_data));
        } else {
            prefetch_range(&keys, 15 * 16, 15 * 16 + 16 * 16);
        }
    } else if (s.cipher() == cipher_alg::des3_cbc) {
        prefetch_range(&keys, 0, sizeof(detail::des3_keys));
    } else {
        prefetch_range(&keys, 0, sizeof(detail::cbc_keys));
    }
    if (s.direction() != sa_direction::inbound || p.len < ipv4_min_header) {
        return;
    }
    const uint32_t ihl = uint32_t{p.data[0] & 0x0fu} * 4;
    if (p.len >= ihl + esp_header_len) {
        s.window().prefetch(wire::load_be32(p.data + ihl + 4));
    }
}

}  // namespace

burst_summary encrypt_burst(engine& eng, sa& s, std::span<esp_packet> pkts,
                            std::span<esp_status> status) noexcept {
    return encrypt_impl(eng, s, pkts, status, nullptr);
}

burst_summary encrypt_burst_with_ivs(engine& eng, sa& s, std::span<esp_packet> pkts,
                                     std::span<esp_status> status,
                                     std::span<const iv_bytes> ivs) noexcept {
    if (ivs.size() < std::min(pkts.size(), status.size())) {
        std::fill_n(status.begin(), std::min(pkts.size(), status.size()), esp_status::engine_error);
        return {};
    }
    return encrypt_impl(eng, s, pkts, status, ivs.data());
}

burst_summary decrypt_burst(engine& eng, sa& s, std::span<esp_packet> pkts,
                            std::span<esp_status> status) noexcept {
    if (!direct_gcm(s, eng.arch_id(), sa_direction::inbound)) {
        return decrypt_jobs(eng, s, pkts, status);
    }
    burst_summary sum;
    const size_t n = std::min(pkts.size(), status.size());
    IMB_MGR* mgr = eng.mgr();
    for (size_t i = 0; i < n; ++i) {
        status[i] = gcm_decrypt_one(mgr, s, pkts[i], sum);
        sum.ok += status[i] == esp_status::ok ? 1 : 0;
    }
    return sum;
}

namespace {

// Packets in order, each with its own SA: GCM ones one by one through the direct path, runs of
// packets sharing another kind of SA through the single-SA job path; SAs and windows of the
// packets ahead are prefetched meanwhile.
template <bool Encrypt>
burst_summary multi_sa(engine& eng, std::span<sa* const> sas, std::span<esp_packet> pkts,
                       std::span<esp_status> status) noexcept {
    burst_summary sum;
    const size_t n = std::min({sas.size(), pkts.size(), status.size()});
    IMB_MGR* mgr = eng.mgr();
    const uint8_t arch = eng.arch_id();
    constexpr sa_direction dir = Encrypt ? sa_direction::outbound : sa_direction::inbound;
    const bool at_end = eng.gcm_powers_at_end();
    size_t state_pf = 0;
    size_t keys_pf = 0;
    for (size_t i = 0; i < n;) {
        for (; state_pf < n && state_pf < i + state_prefetch_ahead; ++state_pf) {
            sas[state_pf]->prefetch_state();
        }
        for (; keys_pf < n && keys_pf < i + keys_prefetch_ahead; ++keys_pf) {
            prefetch_for_packet(*sas[keys_pf], pkts[keys_pf], at_end);
        }
        sa& s = *sas[i];
        if (direct_gcm(s, arch, dir)) {
            if constexpr (Encrypt) {
                status[i] = gcm_encrypt_one(mgr, s, pkts[i], nullptr, sum);
            } else {
                status[i] = gcm_decrypt_one(mgr, s, pkts[i], sum);
            }
            sum.ok += status[i] == esp_status::ok ? 1 : 0;
            ++i;
            continue;
        }
        size_t end = i + 1;
        while (end < n && sas[end] == &s) {
            ++end;
        }
        const auto part =
            Encrypt ? encrypt_jobs(eng, s, pkts.subspan(i, end - i), status.subspan(i, end - i),
                                   nullptr)
                    : decrypt_jobs(eng, s, pkts.subspan(i, end - i), status.subspan(i, end - i));
        sum.ok += part.ok;
        sum.soft_expired_now |= part.soft_expired_now;
        i = end;
    }
    return sum;
}

}  // namespace

burst_summary encrypt_burst(engine& eng, std::span<sa* const> sas, std::span<esp_packet> pkts,
                            std::span<esp_status> status) noexcept {
    return multi_sa<true>(eng, sas, pkts, status);
}

burst_summary decrypt_burst(engine& eng, std::span<sa* const> sas, std::span<esp_packet> pkts,
                            std::span<esp_status> status) noexcept {
    return multi_sa<false>(eng, sas, pkts, status);
}
}  // namespace dmvpn::crypto
