// Prometheus text rendering and the GET /metrics responder: non-blocking sockets under poll(),
// a connection cap, a request size limit and a deadline per connection.
#include "control/mgmt/metrics.hpp"

#include <pthread.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/core.h>

#include "control/cpu_placement.hpp"

namespace dmvpn::control {

namespace {

std::string escape(std::string_view s, bool quotes) {
    std::string out;
    for (char c : s) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else if (quotes && c == '"') {
            out += "\\\"";
        } else {
            out += c;
        }
    }
    return out;
}

using clock = std::chrono::steady_clock;

struct connection {
    int fd = -1;
    std::string in;
    std::string out;
    size_t sent = 0;
    bool answered = false;
    clock::time_point deadline;
};

std::string response(int status, std::string_view reason, std::string_view type,
                     std::string_view body) {
    return fmt::format(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        status, reason, type, body.size(), body);
}

}  // namespace

std::string render_prometheus(std::span<const metric_family> families) {
    std::string out;
    for (const metric_family& f : families) {
        out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f.name, escape(f.help, false), f.name,
                           f.type == metric_type::counter ? "counter" : "gauge");
        for (const metric_sample& s : f.samples) {
            out += f.name;
            if (!s.labels.empty()) {
                out += '{';
                for (size_t i = 0; i < s.labels.size(); ++i) {
                    out += fmt::format("{}{}=\"{}\"", i == 0 ? "" : ",", s.labels[i].first,
                                       escape(s.labels[i].second, true));
                }
                out += '}';
            }
            if (s.nano) {
                out += fmt::format(" {}.{:09}\n", s.value / 1000000000, s.value % 1000000000);
            } else {
                out += fmt::format(" {}\n", s.value);
            }
        }
    }
    return out;
}

wire::result<std::unique_ptr<metrics_server>, std::string> metrics_server::start(
    const metrics_server_config& c, std::function<std::string()> body) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return wire::fail(std::string(std::strerror(errno)));
    }
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(c.port);
    sa.sin_addr.s_addr = htonl(c.address);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 || ::listen(fd, 16) != 0) {
        std::string err = std::strerror(errno);
        ::close(fd);
        return wire::fail(err);
    }
    socklen_t len = sizeof(sa);
    (void)getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    return std::unique_ptr<metrics_server>(
        new metrics_server(fd, ntohs(sa.sin_port), c, std::move(body)));
}

metrics_server::metrics_server(int fd, uint16_t port, metrics_server_config c,
                               std::function<std::string()> body)
    : _fd(fd), _port(port), _config(c), _body(std::move(body)) {
    _thread = std::thread([this] { run(); });
    pthread_setname_np(_thread.native_handle(), "dmvpn-metrics");
}

metrics_server::~metrics_server() {
    _stop.store(true);
    if (_thread.joinable()) {
        _thread.join();
    }
    ::close(_fd);
}

void metrics_server::run() {
    enter_service_cpus();  // off the control lcore's CPU
    std::vector<connection> conns;
    std::vector<pollfd> fds;
    while (!_stop.load(std::memory_order_relaxed)) {
        fds.clear();
        for (const connection& c : conns) {
            fds.push_back(pollfd{c.fd, static_cast<short>(c.answered ? POLLOUT : POLLIN), 0});
        }
        // At the cap the listening socket is not polled: new clients wait in its backlog.
        bool accepting = conns.size() < _config.max_connections;
        if (accepting) {
            fds.push_back(pollfd{_fd, POLLIN, 0});
        }
        int n = ::poll(fds.data(), fds.size(), 200);  // also the period of the stop check
        if (n < 0 && errno != EINTR) {
            return;
        }
        clock::time_point now = clock::now();
        size_t polled = conns.size();
        for (size_t i = 0; i < polled; ++i) {
            connection& c = conns[i];
            short ev = fds[i].revents;
            if (!c.answered && (ev & (POLLIN | POLLHUP | POLLERR)) != 0) {
                char buf[1024];
                ssize_t r = ::recv(c.fd, buf, sizeof(buf), 0);
                if (r <= 0 && !(r < 0 && (errno == EAGAIN || errno == EINTR))) {
                    c.deadline = now;  // closed or failed before asking anything
                    continue;
                }
                if (r > 0) {
                    c.in.append(buf, static_cast<size_t>(r));
                }
                size_t end = c.in.find("\r\n\r\n");
                if (end == std::string::npos && c.in.find("\n\n") != std::string::npos) {
                    end = c.in.find("\n\n");
                }
                if (end == std::string::npos && c.in.size() <= _config.max_request_bytes) {
                    continue;
                }
                c.answered = true;
                std::string_view req(c.in);
                std::string_view line = req.substr(0, req.find_first_of("\r\n"));
                if (end == std::string::npos || end > _config.max_request_bytes) {
                    c.out = response(431, "Request Header Fields Too Large", "text/plain",
                                     "request too large\n");
                } else if (!line.starts_with("GET ")) {
                    c.out = response(405, "Method Not Allowed", "text/plain", "GET only\n");
                } else if (std::string_view path = line.substr(4, line.find(' ', 4) - 4);
                           path == "/metrics" || path.starts_with("/metrics?")) {
                    _requests.fetch_add(1, std::memory_order_relaxed);
                    c.out =
                        response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", _body());
                } else {
                    c.out = response(404, "Not Found", "text/plain", "try /metrics\n");
                }
            }
            if (c.answered && c.sent < c.out.size()) {
                ssize_t w =
                    ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
                if (w > 0) {
                    c.sent += static_cast<size_t>(w);
                } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                    c.deadline = now;
                }
            }
        }
        if (accepting && (fds.back().revents & POLLIN) != 0) {
            int cfd = ::accept4(_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (cfd >= 0) {
                conns.push_back(connection{
                    cfd, {}, {}, 0, false, now + std::chrono::milliseconds(_config.timeout_ms)});
            }
        }
        // Done (all sent), failed, or past the deadline: closed.
        std::erase_if(conns, [&](const connection& c) {
            bool done = (c.answered && c.sent == c.out.size()) || now >= c.deadline;
            if (done) {
                ::close(c.fd);
            }
            return done;
        });
    }
    for (const connection& c : conns) {
        ::close(c.fd);
    }
}

}  // namespace dmvpn::control
