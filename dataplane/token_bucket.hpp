// A token bucket in integer arithmetic for "so many per second" budgets, in any clock's ticks
// (workers: TSC; control lcore: nanoseconds). No allocation, lock or system call.
#pragma once

#include <algorithm>
#include <cstdint>

namespace dmvpn::dp {

class token_bucket {
public:
    // Unlimited: take() always succeeds.
    token_bucket() = default;
    // per_second 0 is unlimited too; burst (at least 1) is what an idle bucket holds.
    token_bucket(uint64_t per_second, uint64_t burst, uint64_t ticks_per_second) noexcept
        : _ticks_per_token(per_second == 0 ? 0
                                           : std::max<uint64_t>(1, ticks_per_second / per_second)),
          _burst(std::max<uint64_t>(1, burst)),
          _tokens(_burst) {}

    // One token if there is one at `now` (a clock reading that never goes back).
    bool take(uint64_t now) noexcept {
        if (_ticks_per_token == 0) {
            return true;
        }
        if (now > _last) {
            uint64_t n = (now - _last) / _ticks_per_token;
            if (n != 0) {
                if (n >= _burst - _tokens) {
                    _tokens = _burst;
                    _last = now;
                } else {
                    _tokens += n;
                    _last += n * _ticks_per_token;
                }
            }
        }
        if (_tokens == 0) {
            return false;
        }
        --_tokens;
        return true;
    }

    bool unlimited() const noexcept { return _ticks_per_token == 0; }

private:
    uint64_t _ticks_per_token = 0;  // 0: unlimited
    uint64_t _burst = 1;
    uint64_t _tokens = 1;
    uint64_t _last = 0;
};

// The budget of one of `shares` workers for a hub-wide rate (rounded up, so the hub-wide
// budget is never below the configured one), and its burst: a tenth of a second's worth, at
// least 32 (or the whole rate when that is lower), so a handful of simultaneous events passes.
inline uint64_t share_of(uint64_t per_second, uint64_t shares) noexcept {
    return shares == 0 ? per_second : (per_second + shares - 1) / shares;
}
inline uint64_t burst_of(uint64_t per_second) noexcept {
    return std::max<uint64_t>(per_second / 10, std::min<uint64_t>(per_second, 32));
}

}  // namespace dmvpn::dp
