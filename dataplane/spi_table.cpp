// Building the SPI table.
#include "dataplane/spi_table.hpp"

namespace dmvpn::dp {

std::unique_ptr<spi_table> spi_table::build(std::span<const inbound_sa> sas) {
    auto t = std::make_unique<spi_table>();
    // At most half full, so a miss ends at an empty slot after a short probe.
    uint32_t cap = 16;
    while (cap < 2 * sas.size()) {
        cap <<= 1;
    }
    t->_slots.assign(cap, inbound_sa{});
    t->_mask = cap - 1;
    for (const inbound_sa& e : sas) {
        if (e.spi == 0) {
            continue;
        }
        for (uint32_t i = mix(e.spi) & t->_mask;; i = (i + 1) & t->_mask) {
            inbound_sa& slot = t->_slots[i];
            if (slot.spi == 0) {
                slot = e;
                ++t->_count;
                break;
            }
            if (slot.spi == e.spi) {
                slot = e;
                break;
            }
        }
    }
    return t;
}

}  // namespace dmvpn::dp
