// --write-pcap: the frames the spokes would send for a topology (data via the hub, ESP per the
// options), written to a pcap file for replay with pktgen.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "dataplane/wire/result.hpp"
#include "tools/spokesim/engine.hpp"
#include "tools/spokesim/options.hpp"

namespace dmvpn::spokesim {

// Writes o.pcap_count frames round robin over the spokes; returns how many were written.
wire::result<uint64_t, std::string> write_capture(const options& o, std::unique_ptr<esp_layer> esp);

}  // namespace dmvpn::spokesim
