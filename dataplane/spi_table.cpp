// The SPI table's writer side: building, in-place insertion and removal.
#include "dataplane/spi_table.hpp"

#include <bit>

namespace dmvpn::dp {

spi_table::spi_table(uint32_t capacity) {
    uint32_t cap = std::bit_ceil(capacity < min_capacity ? min_capacity : capacity);
    _slots = std::make_unique<slot[]>(cap);
    _mask = cap - 1;
}

std::unique_ptr<spi_table> spi_table::build(std::span<const inbound_sa> sas) {
    // A quarter full: as many inserts (or removals leaving tombstones) again fit in the load
    // bound of insert() before the next build.
    auto t = std::make_unique<spi_table>(static_cast<uint32_t>(4 * sas.size()));
    for (const inbound_sa& e : sas) {
        if (t->insert(e) == insert_result::duplicate) {
            // Not yet published: the entry is rewritten in place (the last one wins).
            slot& s = t->_slots[*t->erase(e.spi)];
            s.sa.store(e.sa, std::memory_order_relaxed);
            s.word.store(pack(e), std::memory_order_relaxed);
            --t->_tombs;
            ++t->_count;
        }
    }
    return t;
}

spi_table::insert_result spi_table::insert(const inbound_sa& e) noexcept {
    if (e.spi == 0) {
        return insert_result::bad_spi;
    }
    std::optional<uint32_t> reuse;
    uint32_t i = mix(e.spi) & _mask;
    for (;; i = (i + 1) & _mask) {
        uint64_t w = _slots[i].word.load(std::memory_order_relaxed);
        if (w == 0) {
            break;
        }
        if ((w & dead_bit) != 0) {
            if ((w & free_bit) != 0 && !reuse) {
                reuse = i;
            }
            continue;
        }
        if ((w & spi_bits) == e.spi) {
            return insert_result::duplicate;
        }
    }
    if (reuse) {
        i = *reuse;
        --_tombs;
    } else if (2 * (_count + _tombs + 1) > capacity()) {
        // At most half the slots taken (entries and tombstones): a miss meets an empty slot
        // after a short probe, and every probe ends.
        return insert_result::full;
    }
    slot& s = _slots[i];
    s.sa.store(e.sa, std::memory_order_relaxed);
    s.word.store(pack(e), std::memory_order_release);
    ++_count;
    return insert_result::ok;
}

std::optional<uint32_t> spi_table::erase(uint32_t spi, const crypto::sa* expect) noexcept {
    std::optional<uint32_t> i = slot_of(spi);
    if (!i) {
        return std::nullopt;
    }
    slot& s = _slots[*i];
    if (expect != nullptr && s.sa.load(std::memory_order_relaxed) != expect) {
        return std::nullopt;
    }
    // The SA pointer stays: a worker that matched the word just before reads it still.
    s.word.store(dead_bit, std::memory_order_release);
    --_count;
    ++_tombs;
    return i;
}

std::optional<uint32_t> spi_table::slot_of(uint32_t spi) const noexcept {
    if (spi == 0) {
        return std::nullopt;
    }
    for (uint32_t i = home(spi);; i = (i + 1) & _mask) {
        uint64_t w = _slots[i].word.load(std::memory_order_relaxed);
        if (w == 0) {
            return std::nullopt;
        }
        if ((w & (spi_bits | dead_bit)) == spi) {
            return i;
        }
    }
}

void spi_table::release(uint32_t slot_index) noexcept {
    if (slot_index > _mask) {
        return;
    }
    slot& s = _slots[slot_index];
    if (s.word.load(std::memory_order_relaxed) != dead_bit) {
        return;  // not a tombstone waiting for its grace period
    }
    s.word.store(dead_bit | free_bit, std::memory_order_relaxed);
    // A reusable tombstone followed by an empty slot lies on no live entry's probe path (every
    // entry's slots from its home on are taken): it may become empty, and so may the reusable
    // tombstones before it. Keeps tombstones from piling up under steady add/remove.
    uint32_t i = slot_index;
    while (_slots[(i + 1) & _mask].word.load(std::memory_order_relaxed) == 0 &&
           _slots[i].word.load(std::memory_order_relaxed) == (dead_bit | free_bit)) {
        _slots[i].sa.store(nullptr, std::memory_order_relaxed);
        _slots[i].word.store(0, std::memory_order_release);
        --_tombs;
        i = (i - 1) & _mask;
    }
}

}  // namespace dmvpn::dp
