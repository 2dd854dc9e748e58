#include "crypto/engine.hpp"

#include "crypto/imb.hpp"

namespace dmvpn::crypto {

std::string_view name(engine_error e) noexcept {
    switch (e) {
        case engine_error::alloc_failed:
            return "alloc_failed";
        case engine_error::init_failed:
            return "init_failed";
    }
    return "unknown";
}

wire::result<std::unique_ptr<engine>, engine_error> engine::create(engine_path path) {
    IMB_MGR* mgr = alloc_mb_mgr(0);
    if (mgr == nullptr) {
        return wire::fail(engine_error::alloc_failed);
    }
    IMB_ARCH arch = IMB_ARCH_NONE;
    switch (path) {
        case engine_path::automatic:
            init_mb_mgr_auto(mgr, &arch);
            break;
        case engine_path::sse:
            init_mb_mgr_sse(mgr);
            arch = IMB_ARCH_SSE;
            break;
        case engine_path::avx2:
            init_mb_mgr_avx2(mgr);
            arch = IMB_ARCH_AVX2;
            break;
        case engine_path::avx512:
            init_mb_mgr_avx512(mgr);
            arch = IMB_ARCH_AVX512;
            break;
    }
    // The no-AES-NI fallback is orders of magnitude slower than the line rates we aim at.
    if (imb_get_errno(mgr) != 0 || arch == IMB_ARCH_NONE || arch == IMB_ARCH_NOAESNI) {
        free_mb_mgr(mgr);
        return wire::fail(engine_error::init_failed);
    }
    return std::unique_ptr<engine>(new engine(mgr, static_cast<int>(arch)));
}

engine::engine(IMB_MGR* mgr, int arch)
    : _mgr(mgr),
      _scratch(std::make_unique<detail::burst_scratch>()),
      _arch(arch),
      // IPsec-MB 1.3's AVX-512 manager takes its VAES GCM code when the CPU has both.
      _gcm_powers_at_end(arch == IMB_ARCH_AVX512 &&
                         (mgr->features & (IMB_FEATURE_VAES | IMB_FEATURE_VPCLMULQDQ)) ==
                             (IMB_FEATURE_VAES | IMB_FEATURE_VPCLMULQDQ)) {}

engine::~engine() { free_mb_mgr(_mgr); }

std::string_view engine::arch() const noexcept {
    switch (static_cast<IMB_ARCH>(_arch)) {
        case IMB_ARCH_SSE:
            return "sse";
        case IMB_ARCH_AVX:
            return "avx";
        case IMB_ARCH_AVX2:
            return "avx2";
        case IMB_ARCH_AVX512:
            return "avx512";
        default:
            return "none";
    }
}

}  // namespace dmvpn::crypto
