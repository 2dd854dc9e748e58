// Registration of the per-packet dynamic field.
#include "dataplane/packet_meta.hpp"

#include <rte_errno.h>

namespace dmvpn::dp {

int packet_meta_offset = -1;
int punt_tsc_offset = -1;

bool register_packet_meta() noexcept {
    if (packet_meta_offset >= 0 && punt_tsc_offset >= 0) {
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
    rte_mbuf_dynfield tsc{};
    snprintf(tsc.name, sizeof(tsc.name), "%s", "dmvpn_punt_tsc");
    tsc.size = sizeof(uint64_t);
    tsc.align = alignof(uint64_t);
    tsc.flags = 0;
    off = rte_mbuf_dynfield_register(&tsc);
    if (off < 0) {
        return false;
    }
    punt_tsc_offset = off;
    return true;
}

}  // namespace dmvpn::dp
