// Prometheus exposition: the text format (HELP, TYPE, labels, escaping) and the GET /metrics
// responder (404/405/431, a silent client does not hold up others, the connection cap).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include "control/mgmt/metrics.hpp"

using namespace dmvpn::control;

namespace {

int connect_to(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(0x7f000001);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0);
    return fd;
}

std::string read_all(int fd) {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) {
        out.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return out;
}

std::string http(uint16_t port, const std::string& request) {
    int fd = connect_to(port);
    REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size()));
    return read_all(fd);
}

}  // namespace

TEST_CASE("text format 0.0.4: help, type, labels, escaping", "[metrics]") {
    std::vector<metric_family> f{
        {"dmvpn_drops_total",
         "Packets dropped by the workers, by reason",
         metric_type::counter,
         {{{{"reason", "no_route"}}, 7}, {{{"reason", "esp_bad_icv"}}, 0}}},
        {"dmvpn_nhrp_cache_entries",
         "NHRP cache entries\nper tunnel \\ all",
         metric_type::gauge,
         {{{{"tunnel", "t\"1\\\n"}, {"network_id", "1"}}, 3}}},
        {"dmvpn_uptime_seconds", "Seconds since start", metric_type::gauge, {{{}, 42}}},
    };
    CHECK(render_prometheus(f) ==
          "# HELP dmvpn_drops_total Packets dropped by the workers, by reason\n"
          "# TYPE dmvpn_drops_total counter\n"
          "dmvpn_drops_total{reason=\"no_route\"} 7\n"
          "dmvpn_drops_total{reason=\"esp_bad_icv\"} 0\n"
          "# HELP dmvpn_nhrp_cache_entries NHRP cache entries\\nper tunnel \\\\ all\n"
          "# TYPE dmvpn_nhrp_cache_entries gauge\n"
          "dmvpn_nhrp_cache_entries{tunnel=\"t\\\"1\\\\\\n\",network_id=\"1\"} 3\n"
          "# HELP dmvpn_uptime_seconds Seconds since start\n"
          "# TYPE dmvpn_uptime_seconds gauge\n"
          "dmvpn_uptime_seconds 42\n");
}

TEST_CASE("a sample in nanoseconds is written as decimal seconds", "[metrics]") {
    std::vector<metric_family> f{{"dmvpn_loop_seconds",
                                  "Loop",
                                  metric_type::gauge,
                                  {{{}, 1234567, true}, {{}, 3000000001, true}, {{}, 0, true}}}};
    CHECK(render_prometheus(f) ==
          "# HELP dmvpn_loop_seconds Loop\n"
          "# TYPE dmvpn_loop_seconds gauge\n"
          "dmvpn_loop_seconds 0.001234567\n"
          "dmvpn_loop_seconds 3.000000001\n"
          "dmvpn_loop_seconds 0.000000000\n");
}

TEST_CASE("GET /metrics answers; other paths, methods and oversize requests do not", "[metrics]") {
    std::atomic<int> calls{0};
    metrics_server_config c;
    c.port = 0;
    auto s = metrics_server::start(c, [&] {
        ++calls;
        return std::string("dmvpn_x_total 1\n");
    });
    REQUIRE(s);
    uint16_t port = (*s)->port();
    REQUIRE(port != 0);

    std::string ok = http(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(ok.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(ok.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n") !=
          std::string::npos);
    CHECK(ok.find("Content-Length: 16\r\n") != std::string::npos);
    CHECK(ok.ends_with("\r\n\r\ndmvpn_x_total 1\n"));
    CHECK(calls == 1);
    CHECK(http(port, "GET /metrics HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200 OK"));

    CHECK(http(port, "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
    CHECK(http(port, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
    CHECK(http(port, "GET /metrics HTTP/1.1\r\nX: " + std::string(5000, 'a') + "\r\n\r\n")
              .starts_with("HTTP/1.1 431 "));
    CHECK(calls == 2);
    CHECK((*s)->requests() == 2);
}

TEST_CASE("a silent client neither blocks others nor stays forever; the cap holds", "[metrics]") {
    metrics_server_config c;
    c.port = 0;
    c.max_connections = 2;
    c.timeout_ms = 1000;
    auto s = metrics_server::start(c, [] { return std::string("m 1\n"); });
    REQUIRE(s);
    uint16_t port = (*s)->port();
    int silent = connect_to(port);  // says nothing
    CHECK(http(port, "GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 OK"));
    // Two silent clients fill the cap: a third waits in the backlog until the deadline closes
    // them, then it is served.
    int silent2 = connect_to(port);
    auto t0 = std::chrono::steady_clock::now();
    std::string late = http(port, "GET /metrics HTTP/1.1\r\n\r\n");
    auto waited = std::chrono::steady_clock::now() - t0;
    CHECK(late.starts_with("HTTP/1.1 200 OK"));
    CHECK(waited >= std::chrono::milliseconds(300));
    CHECK(waited < std::chrono::milliseconds(2900));
    // The server closed the silent ones (recv sees the end, not the 3 s timeout).
    CHECK(read_all(silent).empty());
    CHECK(read_all(silent2).empty());
}

TEST_CASE("a port already taken is an error that says why", "[metrics]") {
    metrics_server_config c;
    c.port = 0;
    auto first = metrics_server::start(c, [] { return std::string(); });
    REQUIRE(first);
    c.port = (*first)->port();
    auto second = metrics_server::start(c, [] { return std::string(); });
    REQUIRE_FALSE(second);
    CHECK(second.error() == "Address already in use");
}
