// Starting and stopping DPDK's EAL for the hub and the tests, and the process-wide
// registrations every worker depends on (the packet metadata field).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "dataplane/wire/result.hpp"

namespace dmvpn::dp {

enum class eal_error : uint8_t {
    init_failed,  // rte_eal_init refused the arguments (rte_errno says why)
    meta_failed,  // no room in the mbuf for the packet metadata field
};
std::string_view name(eal_error e) noexcept;

struct eal_started {
    int consumed;  // how many arguments EAL took (argv[0] included)
};

// args are what would follow the program name on a DPDK command line, e.g.
// {"-l", "0-1", "--no-huge", "-m", "1024", "--no-pci", "--file-prefix", "x"}. Call once.
// From here on SAs are created in EAL memory (hugepages unless --no-huge).
wire::result<eal_started, eal_error> eal_init(const std::vector<std::string>& args,
                                              std::string_view program = "dmvpn-hub");

// Releases EAL memory and devices; after every port is closed, nothing DPDK is in use and
// every SA created since eal_init is gone.
void eal_cleanup() noexcept;

}  // namespace dmvpn::dp
