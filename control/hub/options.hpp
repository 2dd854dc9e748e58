// dmvpn-hub's command line: what to load, what to check, and the EAL arguments after "--".
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace dmvpn::hub {

struct options {
    std::optional<std::string> config_file;  // --config FILE; none: the embedded default
    std::optional<std::string> check_file;   // --check-config FILE: validate and exit
    std::optional<std::string> pci_file;     // --list-pci-ports FILE: its PCI ports, then exit
    std::optional<std::string> socket;       // --socket PATH: overrides management.socket
    std::optional<std::string> log_level;    // --log-level LEVEL: overrides hub.log-level
    std::optional<std::string> key_log;      // --key-log DIR: write IKE/ESP keys (debugging)
    std::vector<std::string> eal_args;       // everything after "--"
    bool help = false;
    bool print_default = false;  // --print-default-config
};

// Either the options, or a message saying what is wrong (for stderr, exit status 2).
struct parsed_options {
    std::optional<options> opts;
    std::string error;
};

parsed_options parse_options(const std::vector<std::string>& args);

// The --help text.
std::string usage_text();

}  // namespace dmvpn::hub
