// Inbound SA lookup by SPI: an immutable open-addressing table the control lcore rebuilds and
// publishes whole through RCU; workers only read it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace dmvpn::crypto {
class sa;
}

namespace dmvpn::dp {

struct inbound_sa {
    uint32_t spi = 0;     // never 0 (RFC 4303 section 2.1): 0 marks an empty slot
    uint16_t tunnel = 0;  // the tunnel the SA protects
    crypto::sa* sa = nullptr;
};

class spi_table {
public:
    // Allocates: control lcore. Entries with SPI 0 are skipped; a repeated SPI keeps the last.
    static std::unique_ptr<spi_table> build(std::span<const inbound_sa> sas);

    const inbound_sa* find(uint32_t spi) const noexcept {
        if (spi == 0) {
            return nullptr;
        }
        for (uint32_t i = mix(spi) & _mask;; i = (i + 1) & _mask) {
            const inbound_sa& e = _slots[i];
            if (e.spi == spi) {
                return &e;
            }
            if (e.spi == 0) {
                return nullptr;
            }
        }
    }
    // Starts loading the slot a lookup of spi begins at: a hint for a burst's lookups.
    [[gnu::always_inline]] void prefetch(uint32_t spi) const noexcept {
        __builtin_prefetch(&_slots[mix(spi) & _mask]);
    }
    size_t size() const noexcept { return _count; }

private:
    // Peers choose SPIs; a multiplicative mix keeps sequential ones from clustering.
    static uint32_t mix(uint32_t spi) noexcept { return (spi * 0x9e3779b1u) >> 7; }

    std::vector<inbound_sa> _slots;
    uint32_t _mask = 0;
    size_t _count = 0;
};

}  // namespace dmvpn::dp
