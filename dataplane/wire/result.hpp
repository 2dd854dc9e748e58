// A value or the named reason it could not be produced (std::expected is C++23).
#pragma once

#include <type_traits>
#include <utility>
#include <variant>

namespace dmvpn::wire {

template <typename E>
struct unexpected {
    E error;
};

template <typename E>
constexpr unexpected<E> fail(E e) {
    return unexpected<E>{e};
}

template <typename T, typename E>
class [[nodiscard]] result {
public:
    result(T value) : _v(std::in_place_index<0>, std::move(value)) {}
    result(unexpected<E> e) : _v(std::in_place_index<1>, e.error) {}

    bool has_value() const noexcept { return _v.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    T& value() & { return std::get<0>(_v); }
    const T& value() const& { return std::get<0>(_v); }
    T&& value() && { return std::get<0>(std::move(_v)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &std::get<0>(_v); }
    const T* operator->() const { return &std::get<0>(_v); }

    E error() const { return std::get<1>(_v); }

private:
    std::variant<T, E> _v;
};

}  // namespace dmvpn::wire
