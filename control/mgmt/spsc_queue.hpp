// Bounded single-producer single-consumer queue: how the management thread and the control
// lcore hand each other requests and answers without either one ever waiting on a lock.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <optional>
#include <utility>

namespace dmvpn::control {

template <typename T, size_t Capacity>
class spsc_queue {
    static_assert(Capacity >= 2 && (Capacity & (Capacity - 1)) == 0, "power of two");

public:
    // Producer side. False when full: the caller decides what a full queue means.
    bool push(T value) { return push_from(value); }

    // Producer side: moves `value` in only when there is room (it is left intact otherwise).
    bool push_from(T& value) {
        size_t head = _head.load(std::memory_order_relaxed);
        if (head - _tail.load(std::memory_order_acquire) == Capacity) {
            return false;
        }
        _slots[head & (Capacity - 1)] = std::move(value);
        _head.store(head + 1, std::memory_order_release);
        return true;
    }

    // Consumer side.
    std::optional<T> pop() {
        size_t tail = _tail.load(std::memory_order_relaxed);
        if (tail == _head.load(std::memory_order_acquire)) {
            return std::nullopt;
        }
        T value = std::move(_slots[tail & (Capacity - 1)]);
        _tail.store(tail + 1, std::memory_order_release);
        return value;
    }

    // Consumer side: nothing to pop (a producer may push right after).
    bool empty() const {
        return _tail.load(std::memory_order_relaxed) == _head.load(std::memory_order_acquire);
    }

private:
    std::array<T, Capacity> _slots{};
    alignas(64) std::atomic<size_t> _head{0};
    alignas(64) std::atomic<size_t> _tail{0};
};

}  // namespace dmvpn::control
