// Inbound SA lookup by SPI: an open-addressing table (linear probing) the workers read without
// locks while the control lcore, its one writer, inserts and removes SAs in place. A removed
// SA leaves a tombstone whose slot is reused only after an RCU grace period (the caller's:
// dp::publisher), so a worker that found the SA just before its removal still reads the slot
// it found. The table is rebuilt whole only when it runs out of empty slots (growth).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

namespace dmvpn::crypto {
class sa;
}

namespace dmvpn::dp {

struct inbound_sa {
    uint32_t spi = 0;     // never 0 (RFC 4303 section 2.1)
    uint16_t tunnel = 0;  // the tunnel the SA protects
    crypto::sa* sa = nullptr;
};

class spi_table {
public:
    // `capacity`: rounded up to a power of two, at least min_capacity. Allocates: control lcore.
    explicit spi_table(uint32_t capacity);
    // A table holding `sas` with room for about as many more again (at most a quarter full).
    // Entries with SPI 0 are skipped; a repeated SPI keeps the first.
    static std::unique_ptr<spi_table> build(std::span<const inbound_sa> sas);

    // Workers. A miss returns sa == nullptr.
    inbound_sa find(uint32_t spi) const noexcept {
        if (spi == 0) {
            return {};
        }
        for (uint32_t i = mix(spi) & _mask;; i = (i + 1) & _mask) {
            const slot& s = _slots[i];
            uint64_t w = s.word.load(std::memory_order_acquire);
            if (w == 0) {
                return {};
            }
            if ((w & (spi_bits | dead_bit)) == spi) {
                // Written before the word's release store, and not rewritten before a grace
                // period after the SA's removal.
                return inbound_sa{spi, static_cast<uint16_t>(w >> tunnel_shift),
                                  s.sa.load(std::memory_order_relaxed)};
            }
        }
    }
    // Starts loading the slot a lookup of spi begins at: a hint for a burst's lookups.
    [[gnu::always_inline]] void prefetch(uint32_t spi) const noexcept {
        __builtin_prefetch(&_slots[mix(spi) & _mask]);
    }

    // Control lcore (the one writer).
    enum class insert_result : uint8_t {
        ok,
        bad_spi,    // SPI 0
        duplicate,  // the SPI is in the table
        full,       // no room within the load bound: build a bigger table
    };
    // Takes an empty slot, or a tombstone released by release(); visible to workers on return.
    insert_result insert(const inbound_sa& e) noexcept;
    // Removes spi's entry (only if it names `expect`, when given) and returns its slot: the
    // caller passes it to release() once every worker went through a quiescent state since.
    std::optional<uint32_t> erase(uint32_t spi, const crypto::sa* expect = nullptr) noexcept;
    // The grace period of erase()'s slot passed: it may be reused (and becomes empty again when
    // no probe can pass through it any more).
    void release(uint32_t slot_index) noexcept;
    // Calls f(inbound_sa) for every entry (a rebuild).
    template <typename F>
    void for_each(F&& f) const {
        for (uint32_t i = 0; i <= _mask; ++i) {
            uint64_t w = _slots[i].word.load(std::memory_order_relaxed);
            if (w != 0 && (w & dead_bit) == 0) {
                f(inbound_sa{static_cast<uint32_t>(w & spi_bits),
                             static_cast<uint16_t>(w >> tunnel_shift),
                             _slots[i].sa.load(std::memory_order_relaxed)});
            }
        }
    }

    // Where spi's entry is (none: not in the table), and the slot its probe starts at (tests).
    std::optional<uint32_t> slot_of(uint32_t spi) const noexcept;
    uint32_t home(uint32_t spi) const noexcept { return mix(spi) & _mask; }

    size_t size() const noexcept { return _count; }
    // Removed entries' slots not yet empty again (waiting for their grace period or reusable).
    size_t tombstones() const noexcept { return _tombs; }
    uint32_t capacity() const noexcept { return _mask + 1; }

    static constexpr uint32_t min_capacity = 16;

private:
    // A slot's word: the SPI (bits 0-31) and the tunnel (32-47) of a live entry; 0 for an empty
    // slot; dead_bit for a tombstone (probes go on past it), with free_bit once reusable.
    static constexpr uint64_t spi_bits = 0xffffffffull;
    static constexpr unsigned tunnel_shift = 32;
    static constexpr uint64_t dead_bit = 1ull << 48;
    static constexpr uint64_t free_bit = 1ull << 49;
    struct slot {
        std::atomic<uint64_t> word{0};
        std::atomic<crypto::sa*> sa{nullptr};
    };

    static uint64_t pack(const inbound_sa& e) noexcept {
        return uint64_t{e.spi} | (uint64_t{e.tunnel} << tunnel_shift);
    }
    // Peers choose SPIs; a multiplicative mix keeps sequential ones from clustering.
    static uint32_t mix(uint32_t spi) noexcept { return (spi * 0x9e3779b1u) >> 7; }

    std::unique_ptr<slot[]> _slots;
    uint32_t _mask = 0;
    size_t _count = 0;
    size_t _tombs = 0;
};

}  // namespace dmvpn::dp
