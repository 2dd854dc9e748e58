// systemd's readiness protocol (sd_notify(3)) without libsystemd: one datagram per state change
// to the AF_UNIX socket named by $NOTIFY_SOCKET, which systemd sets for Type=notify services.
#pragma once

#include <string>
#include <string_view>

namespace dmvpn::tools {

// The socket path $NOTIFY_SOCKET names ("/run/systemd/notify", or "@name" for an abstract
// socket), or empty when the process does not run under a Type=notify service manager.
std::string notify_socket();

// Sends `state` ("READY=1", "RELOADING=1\nMONOTONIC_USEC=...", "STOPPING=1", "STATUS=...") to
// `socket` as one datagram. Returns an empty string on success, otherwise why it failed (for
// the log); an empty `socket` sends nothing and succeeds. Never blocks.
std::string notify(const std::string& socket, std::string_view state);

// "MONOTONIC_USEC=<CLOCK_MONOTONIC in microseconds>", which systemd wants beside RELOADING=1.
std::string monotonic_usec_field();

}  // namespace dmvpn::tools
