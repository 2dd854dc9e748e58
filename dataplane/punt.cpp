// Punt ring creation.
#include "dataplane/punt.hpp"

#include <rte_common.h>

namespace dmvpn::dp {

rte_ring* create_punt_ring(const char* name, unsigned size, int socket_id) noexcept {
    // RING_F_EXACT_SZ keeps `size` usable slots; MP enqueue by default, SC dequeue.
    return rte_ring_create(name, size, socket_id, RING_F_SC_DEQ | RING_F_EXACT_SZ);
}

}  // namespace dmvpn::dp
