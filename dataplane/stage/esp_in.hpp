// ESP-in: inbound SA by SPI, anti-replay and decryption through the crypto library; yields GRE.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>

#include "dataplane/worker_ctx.hpp"

namespace dmvpn::dp::stage {

// Returns how many packets survive, compacted at the front of pkts; every other packet was
// dropped or punted through ctx under a named reason.
uint16_t esp_in(rte_mbuf** pkts, uint16_t n, worker_ctx& ctx) noexcept;

}  // namespace dmvpn::dp::stage
