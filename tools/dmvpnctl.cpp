// dmvpnctl: asks a running dmvpn-hub a question over its management socket and prints the
// answer ("dmvpnctl show nhrp brief", "dmvpnctl show dmvpn --json", "dmvpnctl clear nhrp").
#include <cstdio>
#include <cstdlib>
#include <string>

#include "control/mgmt/server.hpp"

namespace {

constexpr const char* default_socket = "/run/dmvpn-hub.sock";

int usage(FILE* to) {
    std::fprintf(
        to,
        "usage: dmvpnctl [--socket PATH] COMMAND...\n"
        "  the socket defaults to $DMVPN_SOCKET, then %s\n"
        "  commands: show nhrp [detail|brief|summary|traffic] [--json], show dmvpn [--json],\n"
        "            show interfaces [--json], show stats [--json], clear nhrp [ADDRESS],\n"
        "            port pause|resume PORT [--json], reload, debug nhrp, undebug nhrp,\n"
        "            undebug all, show crypto ikev2 sa [detail] [--json],\n"
        "            show crypto ipsec sa [--json], show crypto session [--json],\n"
        "            clear crypto sa [peer ADDRESS], help\n",
        default_socket);
    return to == stdout ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::string socket = std::getenv("DMVPN_SOCKET") ? std::getenv("DMVPN_SOCKET") : default_socket;
    int i = 1;
    for (; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--socket" || a == "-s") {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "dmvpnctl: %s needs a path\n", a.c_str());
                return 2;
            }
            socket = argv[++i];
        } else if (a == "--help" || a == "-h") {
            return usage(stdout);
        } else {
            break;
        }
    }
    if (i >= argc) {
        return usage(stderr);
    }
    std::string command;
    for (; i < argc; ++i) {
        if (!command.empty()) {
            command += ' ';
        }
        command += argv[i];
    }
    auto reply = dmvpn::control::mgmt_call(socket, command);
    if (!reply) {
        std::fprintf(stderr, "dmvpnctl: %s\n", reply.error().c_str());
        return 1;
    }
    std::fputs(reply->body.c_str(), reply->ok ? stdout : stderr);
    return reply->ok ? 0 : 1;
}
