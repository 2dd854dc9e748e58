// Command-line parsing for dmvpn-hub.
#include "control/hub/options.hpp"

#include "control/log.hpp"

namespace dmvpn::hub {

namespace {

// "--config=FILE" and "--config FILE" both work, as with most GNU tools.
bool take_value(const std::vector<std::string>& args, size_t& i, const std::string& flag,
                std::optional<std::string>& out, std::string& error) {
    const std::string& a = args[i];
    if (a == flag) {
        if (i + 1 >= args.size() || args[i + 1].empty()) {
            error = flag + " needs a value";
            return true;
        }
        out = args[++i];
        return true;
    }
    if (a.size() > flag.size() + 1 && a.compare(0, flag.size() + 1, flag + "=") == 0) {
        out = a.substr(flag.size() + 1);
        return true;
    }
    return false;
}

}  // namespace

parsed_options parse_options(const std::vector<std::string>& args) {
    parsed_options r;
    options o;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "--") {
            o.eal_args.assign(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
            break;
        }
        if (a == "-h" || a == "--help") {
            o.help = true;
            continue;
        }
        if (a == "--print-default-config") {
            o.print_default = true;
            continue;
        }
        std::string error;
        if (take_value(args, i, "--config", o.config_file, error) ||
            take_value(args, i, "--check-config", o.check_file, error) ||
            take_value(args, i, "--list-pci-ports", o.pci_file, error) ||
            take_value(args, i, "--socket", o.socket, error) ||
            take_value(args, i, "--log-level", o.log_level, error) ||
            take_value(args, i, "--key-log", o.key_log, error)) {
            if (error.empty() && o.log_level && !log::parse_level(*o.log_level)) {
                error = "--log-level: expected " + std::string(log::level_names()) + ", got " +
                        *o.log_level;
            }
            if (!error.empty()) {
                r.error = error;
                return r;
            }
            continue;
        }
        r.error = a.starts_with("-") ? "unknown option " + a + " (EAL arguments go after --)"
                                     : "unexpected argument " + a;
        return r;
    }
    r.opts = std::move(o);
    return r;
}

std::string usage_text() {
    return "usage: dmvpn-hub [--config FILE] [--socket PATH] [--log-level LEVEL] [--key-log DIR]\n"
           "                 [-- EAL-ARGS...]\n"
           "       dmvpn-hub --check-config FILE\n"
           "       dmvpn-hub --list-pci-ports FILE\n"
           "       dmvpn-hub --print-default-config\n"
           "\n"
           "  --config FILE          the YAML topology (config/README.md); without it the hub "
           "runs\n"
           "                         the embedded default (config/examples/demo.yaml)\n"
           "  --check-config FILE    validate FILE, print its errors as file:line:col, and exit\n"
           "                         (0 when valid) without starting DPDK\n"
           "  --list-pci-ports FILE  validate FILE, then print the PCI address of each port whose\n"
           "                         device is one, one a line (the service's pre-start helper\n"
           "                         binds them to vfio-pci); nothing for virtual ports\n"
           "  --socket PATH          management socket, instead of the topology's "
           "management.socket\n"
           "  --log-level LEVEL      error, warning, notice, info or debug, instead of the\n"
           "                         topology's hub.log-level (default info)\n"
           "  --key-log DIR          DEBUGGING ONLY, off by default: append the keys of every IKE\n"
           "                         SA and ESP SA to DIR/ikev2_decryption_table and DIR/esp_sa\n"
           "                         (Wireshark's tables; WIRESHARK_CONFIG_DIR=DIR tshark ...\n"
           "                         decrypts a capture). Whoever reads them decrypts the traffic\n"
           "  --print-default-config print the embedded default topology\n"
           "  -- EAL-ARGS            DPDK EAL arguments, after the topology's hub.eal-args\n"
           "\n"
           "Signals: SIGINT/SIGTERM stop cleanly; SIGHUP reloads the topology file (as `dmvpnctl\n"
           "reload`). Commands: dmvpnctl --socket PATH help.\n";
}

}  // namespace dmvpn::hub
