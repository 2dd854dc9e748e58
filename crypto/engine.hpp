// One Intel IPsec-MB manager per thread, with the scratch the ESP burst paths reuse each burst.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "dataplane/wire/result.hpp"

struct IMB_MGR;  // intel-ipsec-mb.h stays out of headers: its compatibility macros (CBC, GCM,
                 // SHA1, ENCRYPT...) would leak into every file that includes ours.

namespace dmvpn::crypto {

namespace detail {

// Packets are handed to IPsec-MB in chunks of this many; a burst of any size is cut into
// chunks so the scratch below has a fixed size.
inline constexpr uint32_t max_chunk = 64;

// What the prepare step learned about one packet, for the completion step.
struct packet_state {
    uint64_t seq;      // full (64-bit) sequence number
    uint32_t ihl;      // outer IPv4 header length in bytes
    uint32_t ct_len;   // bytes ciphered: payload, padding, pad length, next header
    uint32_t icv_off;  // offset of the ICV from the outer IPv4 header
    uint32_t pad_;     // keeps the array 8-byte strided
};

// Everything a job points at besides the packet itself must outlive the job: it lives here,
// one engine per thread, so nothing is allocated per burst.
struct alignas(64) burst_scratch {
    uint8_t nonce[max_chunk][16];   // GCM: salt || explicit IV (RFC 4106 section 4)
    uint8_t aad[max_chunk][16];     // GCM: SPI || [ESN high] || sequence (RFC 4106 section 5)
    uint8_t icv[max_chunk][16];     // ICVs computed on receive, compared with the packet's
    uint8_t icv_rx[max_chunk][16];  // received ICV bytes the ESN high half overwrote
    uint8_t iv_in[max_chunk][16];   // CBC IV generator input blocks
    uint8_t iv_out[max_chunk][16];  // CBC IVs
    packet_state state[max_chunk];
};

}  // namespace detail

// Which IPsec-MB code path to run: the best this CPU has (what workers use), or a fixed one
// (benchmarks and tests of the other paths).
enum class engine_path : uint8_t { automatic, sse, avx2, avx512 };

enum class engine_error : uint8_t {
    alloc_failed,  // alloc_mb_mgr() returned nothing
    init_failed,   // initialisation left an error (no AES-NI, or the path needs a newer CPU)
};
std::string_view name(engine_error e) noexcept;

// Owned by one thread (a worker lcore, or the control lcore for key expansion). Never shared:
// an IMB_MGR's job queue is not thread-safe.
class engine {
public:
    // Allocates: call at thread start, not per packet.
    static wire::result<std::unique_ptr<engine>, engine_error> create(
        engine_path path = engine_path::automatic);
    ~engine();
    engine(const engine&) = delete;
    engine& operator=(const engine&) = delete;

    IMB_MGR* mgr() const noexcept { return _mgr; }
    // The code path init_mb_mgr_auto() picked: "sse", "avx", "avx2" or "avx512".
    std::string_view arch() const noexcept;
    // IPsec-MB's IMB_ARCH value. GCM key data is laid out per code path, so an SA's keys only
    // suit engines of the code path that expanded them (init_mb_mgr_auto picks the same one
    // for every thread on one CPU model).
    uint8_t arch_id() const noexcept { return static_cast<uint8_t>(_arch); }
    detail::burst_scratch& scratch() noexcept { return *_scratch; }
    // Whether AES-GCM key data is laid out for IPsec-MB's VAES code path (GHASH key powers
    // 48..1 at the end of the key data); steers prefetching only.
    bool gcm_powers_at_end() const noexcept { return _gcm_powers_at_end; }

private:
    engine(IMB_MGR* mgr, int arch);

    IMB_MGR* _mgr;
    std::unique_ptr<detail::burst_scratch> _scratch;
    int _arch;
    bool _gcm_powers_at_end;
};

}  // namespace dmvpn::crypto
