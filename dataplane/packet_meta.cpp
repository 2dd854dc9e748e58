// Registration of the per-packet dynamic field.
#include "dataplane/packet_meta.hpp"

namespace dmvpn::dp {

int packet_meta_offset = -1;

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
    int off = rte_mbuf_dynfield_register(&desc);
    if (off < 0) {
        return false;
    }
    packet_meta_offset = off;
    return true;
}

}  // namespace dmvpn::dp
