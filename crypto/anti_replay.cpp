#include "crypto/anti_replay.hpp"

#include <algorithm>
#include <bit>

namespace dmvpn::crypto {

std::string_view name(replay_error e) noexcept {
    switch (e) {
        case replay_error::replayed:
            return "replayed";
        case replay_error::outside_window:
            return "outside_window";
        case replay_error::zero:
            return "zero_sequence";
    }
    return "unknown";
}

replay_window::replay_window(uint32_t size, bool esn)
    : _size(std::clamp<uint32_t>(size, 1, max_size)), _esn(esn) {
    // The live window spans at most ceil(size/64)+1 words; a power of two makes the ring index
    // a mask.
    const uint32_t words = std::bit_ceil((_size + 63) / 64 + 1);
    _bits = std::make_unique<uint64_t[]>(words);
    _word_mask = words - 1;
}

wire::result<uint64_t, replay_error> replay_window::infer_esn(uint32_t seq_low) const noexcept {
    // RFC 4303 Appendix A2.2, with W the window size and T the highest number accepted.
    const uint32_t top_low = static_cast<uint32_t>(_top);
    const uint32_t top_high = static_cast<uint32_t>(_top >> 32);
    const uint32_t bottom_low = top_low - (_size - 1);  // wraps modulo 2^32 in case B
    uint32_t high = top_high;
    if (top_low >= _size - 1) {
        // Case A: the window lies within one 2^32 subspace; a number below it is from the next.
        if (seq_low < bottom_low) {
            if (top_high == UINT32_MAX) {
                return wire::fail(replay_error::outside_window);
            }
            high = top_high + 1;
        }
    } else {
        // Case B: the window straddles two subspaces; a number at or above the bottom edge
        // belongs to the previous one.
        if (seq_low >= bottom_low) {
            if (top_high == 0) {
                return wire::fail(replay_error::outside_window);
            }
            high = top_high - 1;
        }
    }
    return (uint64_t{high} << 32) | seq_low;
}

void replay_window::slide_to(uint64_t seq) noexcept {
    const uint64_t old_word = _top >> 6;
    const uint64_t new_word = seq >> 6;
    if (new_word - old_word > _word_mask) {
        std::fill_n(_bits.get(), size_t{_word_mask} + 1, uint64_t{0});
    } else {
        // Words the window slides onto still hold bits from a lap ago.
        for (uint64_t w = old_word + 1; w <= new_word; ++w) {
            _bits[w & _word_mask] = 0;
        }
    }
    _top = seq;
}

void replay_window::reset_to(uint64_t top) noexcept {
    if (!_bits) {
        return;
    }
    std::fill_n(_bits.get(), size_t{_word_mask} + 1, uint64_t{0});
    _top = top;
    if (top != 0) {
        _bits[(top >> 6) & _word_mask] |= uint64_t{1} << (top & 63);
    }
}

}  // namespace dmvpn::crypto
