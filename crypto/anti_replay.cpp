#include "crypto/anti_replay.hpp"

#include <algorithm>
#include <bit>
#include <utility>

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

uint32_t replay_window::words_for(uint32_t size) noexcept {
    // The live window spans at most ceil(size/64)+1 words; a power of two makes the ring index
    // a mask.
    return std::bit_ceil((std::clamp<uint32_t>(size, 1, max_size) + 63) / 64 + 1);
}

replay_window::replay_window(uint32_t size, bool esn)
    : _size(std::clamp<uint32_t>(size, 1, max_size)), _esn(esn) {
    const uint32_t words = words_for(_size);
    _bits = new uint64_t[words]();
    _owns_bits = true;
    _word_mask = words - 1;
}

replay_window::replay_window(uint32_t size, bool esn, uint64_t* storage) noexcept
    : _bits(storage), _size(std::clamp<uint32_t>(size, 1, max_size)), _esn(esn) {
    const uint32_t words = words_for(_size);
    std::fill_n(_bits, words, uint64_t{0});
    _word_mask = words - 1;
}

replay_window& replay_window::operator=(replay_window&& o) noexcept {
    if (this != &o) {
        if (_owns_bits) {
            delete[] _bits;
        }
        _bits = std::exchange(o._bits, nullptr);
        _top = std::exchange(o._top, 0);
        _size = std::exchange(o._size, 0);
        _word_mask = std::exchange(o._word_mask, 0);
        _esn = std::exchange(o._esn, false);
        _enforced = std::exchange(o._enforced, true);
        _owns_bits = std::exchange(o._owns_bits, false);
    }
    return *this;
}

replay_window::~replay_window() {
    if (_owns_bits) {
        delete[] _bits;
    }
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
        std::fill_n(_bits, size_t{_word_mask} + 1, uint64_t{0});
    } else {
        // Words the window slides onto still hold bits from a lap ago.
        for (uint64_t w = old_word + 1; w <= new_word; ++w) {
            _bits[w & _word_mask] = 0;
        }
    }
    _top = seq;
}

void replay_window::reset_to(uint64_t top) noexcept {
    if (_bits == nullptr) {
        return;
    }
    std::fill_n(_bits, size_t{_word_mask} + 1, uint64_t{0});
    _top = top;
    if (top != 0) {
        _bits[(top >> 6) & _word_mask] |= uint64_t{1} << (top & 63);
    }
}

}  // namespace dmvpn::crypto
