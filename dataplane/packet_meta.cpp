// Registration of the per-packet dynamic field.
#include "dataplane/packet_meta.hpp"

#include <rte_errno.h>

namespace dmvpn::dp {

int packet_meta_offset = -1;
int punt_tsc_offset = -1;

bool register_packet_meta() noexcept {
    if (packet_meta_offset >= 0) {
        return true;
    }
    rte_mbuf_dynfield desc{};
    // The name is how another library in the same process would find the same field.
    snprintf(desc.name, sizeof(desc.name), "%s", "dmvpn_packet_meta");
    desc.size = sizeof(packet_meta);
    desc.align = alignof(packet_meta);
    desc.flags = 0;
    int off = rte_mbuf_dynfield_register_offset(&desc, packet_meta_offset_fixed);
    if (off < 0) {
        return false;
    }
    if (static_cast<size_t>(off) != packet_meta_offset_fixed) {
        rte_errno = EBUSY;
        return false;
    }
    packet_meta_offset = off;
    // The punt delay is a measurement: without its field (another library took those 4 bytes)
    // the hub runs, only NHRP's time in the hub is not split (punt_tsc_offset stays -1).
    rte_mbuf_dynfield delay{};
    snprintf(delay.name, sizeof(delay.name), "%s", "dmvpn_punt_delay");
    delay.size = sizeof(uint32_t);
    delay.align = alignof(uint32_t);
    delay.flags = 0;
    off = rte_mbuf_dynfield_register_offset(&delay, punt_delay_offset_fixed);
    punt_tsc_offset = static_cast<size_t>(off) == punt_delay_offset_fixed ? off : -1;
    return true;
}

}  // namespace dmvpn::dp
