// Inbound anti-replay window for one SA (RFC 4303 section 3.4.3 and Appendix A, ESN per A2).
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>

#include "dataplane/wire/result.hpp"

namespace dmvpn::crypto {

enum class replay_error : uint8_t {
    replayed,        // this sequence number was already accepted
    outside_window,  // older than the window's bottom edge (or outside the 64-bit space)
    zero,            // sequence number 0 is never sent (RFC 4303 section 2.2)
};
std::string_view name(replay_error e) noexcept;

// A bitmap window kept as a ring of 64-bit words (the layout of RFC 6479): sliding the window
// clears whole words instead of shifting the bitmap, so a packet far ahead costs at most one
// pass over the ring and an in-order packet touches one word.
//
// One writer: the worker that receives the inbound SA's packets (RSS keeps them on one).
// check() is the cheap test done before the ICV is verified; accept() is called only after the
// ICV verified (RFC 4303 section 3.4.3) and re-checks, because an earlier packet of the same
// burst may have taken the number meanwhile.
class replay_window {
public:
    static constexpr uint32_t default_size = 1024;
    static constexpr uint32_t max_size = 1u << 22;

    replay_window() = default;
    // size: how many sequence numbers below and including the highest accepted one are
    // remembered (1..max_size). Allocates: build windows on the control lcore.
    replay_window(uint32_t size, bool esn);
    // The same in caller-owned storage of at least words_for(size) words, zeroed here, which
    // must outlive the window (an SA keeps its window's bitmap in its own allocation).
    replay_window(uint32_t size, bool esn, uint64_t* storage) noexcept;
    replay_window(replay_window&& o) noexcept { *this = std::move(o); }
    replay_window& operator=(replay_window&& o) noexcept;
    ~replay_window();
    replay_window(const replay_window&) = delete;
    replay_window& operator=(const replay_window&) = delete;

    // Bitmap words a window of `size` numbers needs (size clamped to 1..max_size).
    static uint32_t words_for(uint32_t size) noexcept;

    uint32_t size() const noexcept { return _size; }
    bool esn() const noexcept { return _esn; }
    // Off: numbers at or below the highest one pass check() (0 still does not), so a peer that
    // restarted its sequence numbers is not refused; the window still tracks the highest number
    // for ESN inference. For manually keyed SAs, where RFC 4303 section 3.4.3 advises against
    // anti-replay because a restart of one end cannot be negotiated. On by default.
    bool enforced() const noexcept { return _enforced; }
    void set_enforced(bool on) noexcept { _enforced = on; }
    // Highest sequence number accepted so far; 0 before the first.
    uint64_t top() const noexcept { return _top; }

    // The full sequence number a received low-order 32 bits stand for: with ESN the high half
    // is inferred from the window (RFC 4303 Appendix A2.2), without ESN it is 0. Numbers that
    // fall before the start or past the end of the 64-bit space come back as outside_window.
    // Inline: every received packet runs these two or three times.
    wire::result<uint64_t, replay_error> infer(uint32_t seq_low) const noexcept {
        if (!_esn) {
            return uint64_t{seq_low};
        }
        return infer_esn(seq_low);
    }

    // Would this full sequence number be accepted now? Changes nothing.
    wire::result<uint64_t, replay_error> check(uint64_t seq) const noexcept {
        if (seq > _top) {
            return seq;
        }
        if (seq == 0) {
            return wire::fail(replay_error::zero);
        }
        if (!_enforced) {
            return seq;
        }
        if (_top - seq >= _size) {
            return wire::fail(replay_error::outside_window);
        }
        if (bit(seq)) {
            return wire::fail(replay_error::replayed);
        }
        return seq;
    }

    // infer() then check(): the pre-ICV test.
    wire::result<uint64_t, replay_error> check_low(uint32_t seq_low) const noexcept {
        auto seq = infer(seq_low);
        if (!seq) {
            return seq;
        }
        return check(*seq);
    }

    // Marks seq as received and slides the window when it is the new highest. Call only once
    // the packet's ICV verified.
    wire::result<uint64_t, replay_error> accept(uint64_t seq) noexcept {
        auto ok = check(seq);
        if (!ok) {
            return ok;
        }
        if (seq > _top) {
            slide_to(seq);
        }
        _bits[(seq >> 6) & _word_mask] |= uint64_t{1} << (seq & 63);
        return seq;
    }

    // Starts loading the bitmap word a received low-order 32 bits would test: the ring index
    // uses bits 6 and up of the sequence number, below bit 32 for every allowed size, so the ESN
    // high half does not matter. A hint only; changes nothing.
    [[gnu::always_inline]] void prefetch(uint32_t seq_low) const noexcept {
        __builtin_prefetch(&_bits[(seq_low >> 6) & _word_mask]);
    }

    // Restarts the window as if `top` were the only number received so far (tests use it to
    // reach the 32-bit boundary without sending four billion packets).
    void reset_to(uint64_t top) noexcept;

private:
    wire::result<uint64_t, replay_error> infer_esn(uint32_t seq_low) const noexcept;
    void slide_to(uint64_t seq) noexcept;
    bool bit(uint64_t seq) const noexcept {
        return (_bits[(seq >> 6) & _word_mask] >> (seq & 63)) & 1u;
    }

    uint64_t* _bits = nullptr;
    uint64_t _top = 0;
    uint32_t _size = 0;
    uint32_t _word_mask = 0;
    bool _esn = false;
    bool _enforced = true;
    bool _owns_bits = false;  // allocated by the window (else the SA's storage)
};

}  // namespace dmvpn::crypto
