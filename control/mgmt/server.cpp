#include "control/mgmt/server.hpp"

#include <pthread.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "control/cpu_placement.hpp"

namespace dmvpn::control {

namespace {

// Wire protocol: the client sends one line; the server answers "ok\n" or "error\n", then the
// body, then closes the connection.
constexpr size_t max_command = 4096;
constexpr auto answer_timeout = std::chrono::seconds(5);

bool fill_address(const std::string& path, sockaddr_un& addr) {
    std::memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof addr.sun_path) {
        return false;
    }
    std::memcpy(addr.sun_path, path.data(), path.size());
    return true;
}

void write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
}

void send_reply(int fd, const mgmt_reply& reply) {
    write_all(fd, reply.ok ? "ok\n" : "error\n");
    write_all(fd, reply.body);
}

}  // namespace

wire::result<std::unique_ptr<mgmt_server>, std::string> mgmt_server::start(
    const std::string& path) {
    sockaddr_un addr{};
    if (!fill_address(path, addr)) {
        return wire::fail("management socket path '" + path + "' is empty or longer than " +
                          std::to_string(sizeof addr.sun_path - 1) + " bytes");
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return wire::fail(std::string("socket(AF_UNIX): ") + std::strerror(errno));
    }
    ::unlink(path.c_str());
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd, 16) != 0) {
        std::string why = std::string("management socket ") + path + ": " + std::strerror(errno);
        ::close(fd);
        return wire::fail(why);
    }
    return std::unique_ptr<mgmt_server>(new mgmt_server(fd, path));
}

mgmt_server::mgmt_server(int listen_fd, std::string path)
    : _listen_fd(listen_fd), _path(std::move(path)) {
    _thread = std::thread([this] { run(); });
    pthread_setname_np(_thread.native_handle(), "dmvpn-mgmt");
}

mgmt_server::~mgmt_server() {
    _stop.store(true);
    if (_thread.joinable()) {
        _thread.join();
    }
    ::close(_listen_fd);
    ::unlink(_path.c_str());
}

size_t mgmt_server::poll(const mgmt_handler& handler, size_t max) {
    size_t done = 0;
    while (done < max) {
        auto req = _requests.pop();
        if (!req) {
            break;
        }
        _answering = req->id;
        _deferred = false;
        mgmt_reply reply = handler(req->command);
        if (!_deferred) {
            answer(req->id, std::move(reply));
        }
        _answering = 0;
        ++done;
    }
    return done;
}

uint64_t mgmt_server::defer() {
    _deferred = true;
    return _answering;
}

void mgmt_server::answer(uint64_t ticket, mgmt_reply reply) {
    // The I/O thread holds at most one request in flight and drains answers while it waits;
    // the only others are late deferred answers (bounded by what the deferring side holds, far
    // below the capacity), which it discards. A full queue cannot happen; were it to, the
    // client would see "did not answer in time".
    (void)_answers.push(answered{ticket, std::move(reply)});
}

// One client at a time: commands are tiny, and serialising them keeps at most one request in
// flight towards the control lcore.
void mgmt_server::run() {
    enter_service_cpus();  // off the control lcore's CPU
    uint64_t next_id = 1;
    while (!_stop.load()) {
        pollfd pfd{_listen_fd, POLLIN, 0};
        int r = ::poll(&pfd, 1, 100);
        if (r <= 0) {
            continue;
        }
        int client = ::accept4(_listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) {
            continue;
        }
        // Read one line, giving a silent client at most a second.
        std::string line;
        char buf[512];
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        bool complete = false;
        while (!complete && line.size() < max_command &&
               std::chrono::steady_clock::now() < deadline) {
            pollfd cp{client, POLLIN, 0};
            if (::poll(&cp, 1, 100) <= 0) {
                continue;
            }
            ssize_t n = ::recv(client, buf, sizeof buf, 0);
            if (n <= 0) {
                complete = !line.empty();
                break;
            }
            line.append(buf, static_cast<size_t>(n));
            complete = line.find('\n') != std::string::npos;
        }
        if (auto nl = line.find('\n'); nl != std::string::npos) {
            line.resize(nl);
        }
        if (!complete) {
            send_reply(client, {false, "no command received (send one line)\n"});
            ::close(client);
            continue;
        }
        uint64_t id = next_id++;
        if (!_requests.push({id, line})) {
            send_reply(client, {false, "control lcore busy\n"});
            ::close(client);
            continue;
        }
        auto give_up = std::chrono::steady_clock::now() + answer_timeout;
        std::optional<answered> got;
        while (!_stop.load() && std::chrono::steady_clock::now() < give_up) {
            got = _answers.pop();
            if (got && got->id == id) {
                break;
            }
            // Nothing yet, or a late answer to a command we already gave up on.
            got.reset();
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        send_reply(client,
                   got ? got->reply : mgmt_reply{false, "control lcore did not answer in time\n"});
        ::close(client);
    }
}

wire::result<mgmt_reply, std::string> mgmt_call(const std::string& path, std::string_view command,
                                                int timeout_ms) {
    sockaddr_un addr{};
    if (!fill_address(path, addr)) {
        return wire::fail("bad socket path '" + path + "'");
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return wire::fail(std::string("socket: ") + std::strerror(errno));
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        std::string why = "cannot connect to " + path + ": " + std::strerror(errno) +
                          " (is dmvpn-hub running, and is this its management socket?)";
        ::close(fd);
        return wire::fail(why);
    }
    std::string line(command);
    line += '\n';
    write_all(fd, line);
    std::string all;
    char buf[4096];
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd pfd{fd, POLLIN, 0};
        if (::poll(&pfd, 1, 100) <= 0) {
            continue;
        }
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            break;
        }
        all.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    auto nl = all.find('\n');
    if (nl == std::string::npos) {
        return wire::fail("no answer from " + path);
    }
    std::string status = all.substr(0, nl);
    if (status != "ok" && status != "error") {
        return wire::fail("malformed answer from " + path);
    }
    return mgmt_reply{status == "ok", all.substr(nl + 1)};
}

}  // namespace dmvpn::control
