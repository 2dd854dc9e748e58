// Hashed timing wheel for the control lcore: O(1) scheduling, bounded work per advance, no
// per-timer allocation once the slots have grown, driven by whatever clock the caller passes.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace dmvpn::control {

using timestamp = std::chrono::steady_clock::time_point;

// Timers cannot be cancelled: a payload names what it is for (an index and a generation, say)
// and whoever receives it checks it still applies. Refreshing a million registrations then costs
// nothing here; a stale timer is dropped once when it comes due.
template <typename Payload>
class timer_wheel {
public:
    // `resolution` is the granularity of deadlines; `slots` is rounded up to a power of two.
    // Deadlines beyond one revolution simply stay in their slot for more rounds.
    explicit timer_wheel(std::chrono::nanoseconds resolution = std::chrono::milliseconds(100),
                         size_t slots = 4096)
        : _resolution(std::max<std::chrono::nanoseconds::rep>(resolution.count(), 1)) {
        size_t n = 1;
        while (n < slots) {
            n <<= 1;
        }
        _slots.resize(n);
        _mask = n - 1;
    }

    // A deadline already past comes due at the next advance. Returns the tick it was filed
    // under, which cancel() needs.
    uint64_t schedule(timestamp deadline, Payload payload) {
        uint64_t tick = to_tick(deadline, true);
        if (tick <= _current) {
            tick = _current + 1;  // never into the slot being (or already) walked
        }
        size_t index = tick & _mask;
        if (index == _walking) {
            _deferred.push_back(timer{tick, payload});
        } else {
            _slots[index].push_back(timer{tick, payload});
        }
        ++_size;
        return tick;
    }

    // The tick schedule() would file `deadline` under now.
    uint64_t tick_of(timestamp deadline) const noexcept {
        return std::max(to_tick(deadline, true), _current + 1);
    }

    // Removes the timer filed under `tick` with this payload (compared with ==), so that a
    // rescheduled deadline leaves nothing behind. Costs one slot's timers. False when there is
    // none, or when called from inside `fire` for the slot being walked.
    bool cancel(uint64_t tick, const Payload& payload) {
        size_t index = tick & _mask;
        if (index == _walking) {
            return false;
        }
        auto& slot = _slots[index];
        auto it = std::find_if(slot.begin(), slot.end(), [&](const timer& t) {
            return t.tick == tick && t.payload == payload;
        });
        if (it == slot.end()) {
            return false;
        }
        slot.erase(it);
        --_size;
        return true;
    }

    // Runs every timer due at or before `now`, calling `fire(payload)`. `fire` may schedule new
    // timers; one due by `now` fires in this same call. Work is bounded by one revolution of
    // slots plus the timers that fire, however far `now` jumped.
    template <typename Fn>
    size_t advance(timestamp now, Fn&& fire) {
        uint64_t target = to_tick(now, false);
        if (target <= _current) {
            return 0;
        }
        uint64_t from = _current;
        if (target - from > _slots.size()) {
            from = target - _slots.size();  // a jump past a revolution visits each slot once
        }
        size_t fired = 0;
        for (uint64_t t = from + 1; t <= target; ++t) {
            _current = t;  // what `fire` schedules now lands after this slot
            fired += run_slot(t & _mask, target, fire);
        }
        return fired;
    }

    size_t size() const noexcept { return _size; }
    size_t slot_count() const noexcept { return _slots.size(); }
    size_t memory_bytes() const noexcept {
        size_t b =
            _slots.capacity() * sizeof(std::vector<timer>) + _deferred.capacity() * sizeof(timer);
        for (const auto& s : _slots) {
            b += s.capacity() * sizeof(timer);
        }
        return b;
    }

private:
    struct timer {
        uint64_t tick;
        Payload payload;
    };

    // Deadlines round up and the present rounds down, so a timer never fires before its time.
    uint64_t to_tick(timestamp t, bool round_up) const noexcept {
        auto ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
        if (ns < 0) {
            return 0;
        }
        auto r = round_up ? ns + _resolution - 1 : ns;
        return static_cast<uint64_t>(r / _resolution);
    }

    template <typename Fn>
    size_t run_slot(size_t index, uint64_t target, Fn& fire) {
        auto& slot = _slots[index];
        if (slot.empty()) {
            return 0;
        }
        // Compact in place; `fire` cannot touch this slot because schedule() clamps to ticks
        // after _current, and _current's slot is this one only for timers a revolution away,
        // which go to _deferred until the walk is done.
        _walking = index;
        size_t kept = 0;
        size_t fired = 0;
        for (size_t r = 0; r < slot.size(); ++r) {
            timer t = slot[r];
            if (t.tick <= target) {
                --_size;
                ++fired;
                fire(t.payload);
            } else {
                slot[kept++] = t;
            }
        }
        slot.resize(kept);
        _walking = no_slot;
        slot.insert(slot.end(), _deferred.begin(), _deferred.end());
        _deferred.clear();
        return fired;
    }

    static constexpr size_t no_slot = ~size_t{0};

    std::chrono::nanoseconds::rep _resolution;
    std::vector<std::vector<timer>> _slots;
    std::vector<timer> _deferred;
    size_t _walking = no_slot;
    size_t _mask = 0;
    size_t _size = 0;
    uint64_t _current = 0;  // the last tick walked
};

}  // namespace dmvpn::control
