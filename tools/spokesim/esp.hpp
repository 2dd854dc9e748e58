// ESP transport for the emulated spokes through the project's crypto library: one outbound and
// one inbound SA per spoke, keys from the topology's derivation.
#pragma once

#include <memory>
#include <string>

#include "dataplane/wire/result.hpp"
#include "tools/spokesim/engine.hpp"
#include "tools/spokesim/topology.hpp"

namespace dmvpn::spokesim {

// Builds every spoke's SA pair; the error names the spoke and the crypto library's reason.
// hub_side swaps the directions (encrypt with from_hub, decrypt with to_hub): the hub's view of
// the same keys, for tests that play the hub. fixed_ivs derives each CBC IV from the SPI and
// sequence number so that a written capture is reproducible (--write-pcap; test keys only).
wire::result<std::unique_ptr<esp_layer>, std::string> make_esp_layer(const topology& t,
                                                                     bool hub_side = false,
                                                                     bool fixed_ivs = false);

}  // namespace dmvpn::spokesim
