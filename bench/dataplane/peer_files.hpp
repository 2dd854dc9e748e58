// Configuration and capture files for the ipsec-secgw peer of the dataplane benchmark.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dmvpn::bench {

struct peer_files_options {
    std::string dir;
    uint32_t spokes = 10000;
    std::vector<std::string> sizes;  // 64, imix, 1400: inner packet sizes of the hub's cases
};

// Writes dir/secgw.cfg, dir/secgw-cpu-crypto.cfg, dir/in-<size>.pcap, dir/out-<size>.pcap.
int write_peer_files(const peer_files_options& o);

}  // namespace dmvpn::bench
