// Bounds-checked cursors over untrusted bytes (reader) and growing output (writer).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace dmvpn::wire {

// Every pull either returns the value and advances, or returns nullopt and leaves the cursor
// where it was. Nothing here trusts a length that came off the wire: callers pass lengths to
// bytes()/sub(), which refuse anything past the end.
class reader {
public:
    reader() = default;
    explicit reader(std::span<const uint8_t> data) : _data(data) {}

    size_t offset() const noexcept { return _off; }
    size_t size() const noexcept { return _data.size(); }
    size_t remaining() const noexcept { return _data.size() - _off; }
    bool empty() const noexcept { return remaining() == 0; }
    bool has(size_t n) const noexcept { return n <= remaining(); }
    std::span<const uint8_t> rest() const noexcept { return _data.subspan(_off); }
    std::span<const uint8_t> whole() const noexcept { return _data; }

    std::optional<uint8_t> u8() noexcept {
        if (!has(1)) {
            return std::nullopt;
        }
        return _data[_off++];
    }
    std::optional<uint16_t> be16() noexcept {
        if (!has(2)) {
            return std::nullopt;
        }
        uint16_t v = static_cast<uint16_t>((_data[_off] << 8) | _data[_off + 1]);
        _off += 2;
        return v;
    }
    std::optional<uint32_t> be32() noexcept {
        if (!has(4)) {
            return std::nullopt;
        }
        uint32_t v = (uint32_t{_data[_off]} << 24) | (uint32_t{_data[_off + 1]} << 16) |
                     (uint32_t{_data[_off + 2]} << 8) | uint32_t{_data[_off + 3]};
        _off += 4;
        return v;
    }
    std::optional<std::span<const uint8_t>> bytes(size_t n) noexcept {
        if (!has(n)) {
            return std::nullopt;
        }
        auto s = _data.subspan(_off, n);
        _off += n;
        return s;
    }
    // A reader over the next n bytes; this reader advances past them.
    std::optional<reader> sub(size_t n) noexcept {
        auto b = bytes(n);
        if (!b) {
            return std::nullopt;
        }
        return reader(*b);
    }
    bool skip(size_t n) noexcept { return bytes(n).has_value(); }

private:
    std::span<const uint8_t> _data;
    size_t _off = 0;
};

// Appends big-endian fields to a byte vector; used by control-plane builders. The worker hot
// path writes fixed-size headers in place instead.
class writer {
public:
    explicit writer(std::vector<uint8_t>& out) : _out(out) {}

    size_t offset() const noexcept { return _out.size(); }
    void u8(uint8_t v) { _out.push_back(v); }
    void be16(uint16_t v) {
        _out.push_back(static_cast<uint8_t>(v >> 8));
        _out.push_back(static_cast<uint8_t>(v));
    }
    void be32(uint32_t v) {
        be16(static_cast<uint16_t>(v >> 16));
        be16(static_cast<uint16_t>(v));
    }
    void bytes(std::span<const uint8_t> b) { _out.insert(_out.end(), b.begin(), b.end()); }
    void zeros(size_t n) { _out.insert(_out.end(), n, 0); }
    // Overwrites a 16-bit field written earlier (lengths and checksums known only at the end).
    void patch16(size_t at, uint16_t v) {
        _out.at(at) = static_cast<uint8_t>(v >> 8);
        _out.at(at + 1) = static_cast<uint8_t>(v);
    }

private:
    std::vector<uint8_t>& _out;
};

inline uint16_t load_be16(const uint8_t* p) noexcept {
    return static_cast<uint16_t>((p[0] << 8) | p[1]);
}
inline uint32_t load_be32(const uint8_t* p) noexcept {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}
inline void store_be16(uint8_t* p, uint16_t v) noexcept {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
inline void store_be32(uint8_t* p, uint32_t v) noexcept {
    p[0] = static_cast<uint8_t>(v >> 24);
    p[1] = static_cast<uint8_t>(v >> 16);
    p[2] = static_cast<uint8_t>(v >> 8);
    p[3] = static_cast<uint8_t>(v);
}

}  // namespace dmvpn::wire
