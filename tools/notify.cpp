// sd_notify(3) over a plain AF_UNIX datagram socket: the protocol is a documented interface
// (systemd.service(5) Type=notify, sd_notify(3) "NOTIFY_SOCKET"), so no libsystemd is needed.
#include "tools/notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace dmvpn::tools {

std::string notify_socket() {
    const char* s = std::getenv("NOTIFY_SOCKET");
    return s ? std::string(s) : std::string();
}

std::string notify(const std::string& socket, std::string_view state) {
    if (socket.empty()) {
        return {};
    }
    if ((socket[0] != '/' && socket[0] != '@') || socket.size() < 2) {
        return "NOTIFY_SOCKET=" + socket + ": neither a path nor an abstract (@) socket";
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket.size() >= sizeof(addr.sun_path)) {
        return "NOTIFY_SOCKET=" + socket + ": longer than a socket path can be";
    }
    std::memcpy(addr.sun_path, socket.data(), socket.size());
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket.size());
    if (socket[0] == '@') {
        addr.sun_path[0] = '\0';  // abstract namespace: no terminating NUL counted
    } else {
        ++len;
    }
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return std::string("notify socket: ") + std::strerror(errno);
    }
    ssize_t n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                         reinterpret_cast<const sockaddr*>(&addr), len);
    int err = errno;
    ::close(fd);
    if (n < 0) {
        return "notify " + socket + ": " + std::strerror(err);
    }
    return {};
}

std::string monotonic_usec_field() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long us = static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL +
                            static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
    return "MONOTONIC_USEC=" + std::to_string(us);
}

}  // namespace dmvpn::tools
