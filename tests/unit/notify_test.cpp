// sd_notify over $NOTIFY_SOCKET (tools/notify): what a service manager listening on the socket
// receives, for a path socket and an abstract one, and the errors for sockets that cannot be.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tools/notify.hpp"

namespace {

// A listening datagram socket, as systemd's manager binds it.
struct listener {
    int fd = -1;
    explicit listener(const std::string& name) {
        fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::memcpy(a.sun_path, name.data(), name.size());
        socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
        if (name[0] == '@') {
            a.sun_path[0] = '\0';
        } else {
            ::unlink(name.c_str());
            ++len;
        }
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), len) == 0);
        timeval tv{2, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~listener() { ::close(fd); }
    std::string receive() const {
        char buf[512];
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        return n < 0 ? std::string("<nothing>") : std::string(buf, static_cast<size_t>(n));
    }
};

}  // namespace

TEST_CASE("notify: a path socket receives each state as one datagram") {
    std::string path = "/tmp/dmvpn-notify-test-" + std::to_string(::getpid()) + ".sock";
    listener l(path);
    CHECK(dmvpn::tools::notify(path, "READY=1").empty());
    CHECK(l.receive() == "READY=1");
    std::string reloading = "RELOADING=1\n" + dmvpn::tools::monotonic_usec_field();
    CHECK(dmvpn::tools::notify(path, reloading).empty());
    CHECK(l.receive() == reloading);
    CHECK(dmvpn::tools::notify(path, "STOPPING=1").empty());
    CHECK(l.receive() == "STOPPING=1");
    ::unlink(path.c_str());
}

TEST_CASE("notify: an abstract socket (@name) works as systemd names it") {
    std::string name = "@dmvpn-notify-test-" + std::to_string(::getpid());
    listener l(name);
    CHECK(dmvpn::tools::notify(name, "READY=1\nSTATUS=up").empty());
    CHECK(l.receive() == "READY=1\nSTATUS=up");
}

TEST_CASE("notify: $NOTIFY_SOCKET decides where, and nothing is sent without it") {
    ::unsetenv("NOTIFY_SOCKET");
    CHECK(dmvpn::tools::notify_socket().empty());
    CHECK(dmvpn::tools::notify(dmvpn::tools::notify_socket(), "READY=1").empty());
    ::setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
    CHECK(dmvpn::tools::notify_socket() == "/run/systemd/notify");
    ::unsetenv("NOTIFY_SOCKET");
}

TEST_CASE("notify: sockets that cannot be reached say why") {
    CHECK(dmvpn::tools::notify("relative/path", "READY=1").find("neither a path") !=
          std::string::npos);
    CHECK(dmvpn::tools::notify("/" + std::string(200, 'x'), "READY=1").find("longer") !=
          std::string::npos);
    std::string gone = "/tmp/dmvpn-notify-test-missing-" + std::to_string(::getpid());
    std::string why = dmvpn::tools::notify(gone, "READY=1");
    CHECK(why.find(gone) != std::string::npos);
    CHECK(why.find("No such file") != std::string::npos);
}

TEST_CASE("notify: MONOTONIC_USEC is CLOCK_MONOTONIC in microseconds") {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long before = static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL;
    std::string f = dmvpn::tools::monotonic_usec_field();
    REQUIRE(f.starts_with("MONOTONIC_USEC="));
    unsigned long long v = std::stoull(f.substr(15));
    CHECK(v >= before);
    CHECK(v < before + 60ULL * 1000000ULL);
}
