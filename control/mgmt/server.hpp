// Management socket: a Unix-socket front end (dmvpnctl) whose commands the control lcore answers
// between its own work, so a slow or stuck client can never stall the control lcore.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "control/mgmt/spsc_queue.hpp"
#include "dataplane/wire/result.hpp"

namespace dmvpn::control {

struct mgmt_reply {
    bool ok = true;
    std::string body;
};

// The control lcore's side: one call answers one command line ("show nhrp --json").
using mgmt_handler = std::function<mgmt_reply(std::string_view command)>;

class mgmt_server {
public:
    // Binds `path` (an existing socket file is replaced) and starts the I/O thread.
    static wire::result<std::unique_ptr<mgmt_server>, std::string> start(const std::string& path);
    ~mgmt_server();
    mgmt_server(const mgmt_server&) = delete;
    mgmt_server& operator=(const mgmt_server&) = delete;

    // Called by the control lcore in its loop. Answers at most `max` waiting commands and
    // returns how many it answered; never blocks.
    size_t poll(const mgmt_handler& handler, size_t max = 4);

    // For a command whose answer another thread computes (`show crypto`: the IKE thread):
    // called by the handler while it answers, it returns a ticket and the handler's own reply
    // is dropped; answer(ticket, ...) replies later, from the control lcore, without waiting.
    // The client waits up to 5 s (answer_timeout); a later answer is discarded.
    uint64_t defer();
    void answer(uint64_t ticket, mgmt_reply reply);

    const std::string& path() const noexcept { return _path; }

private:
    struct request {
        uint64_t id = 0;
        std::string command;
    };
    struct answered {
        uint64_t id = 0;
        mgmt_reply reply;
    };

    mgmt_server(int listen_fd, std::string path);
    void run();

    int _listen_fd;
    std::string _path;
    std::atomic<bool> _stop{false};
    spsc_queue<request, 64> _requests;  // I/O thread -> control lcore
    spsc_queue<answered, 64> _answers;  // control lcore -> I/O thread
    uint64_t _answering = 0;            // control lcore: the command its handler is in
    bool _deferred = false;             // ... and whether the handler deferred it
    std::thread _thread;
};

// Client side (dmvpnctl, tests): sends one command, returns the reply or why it failed.
wire::result<mgmt_reply, std::string> mgmt_call(const std::string& path, std::string_view command,
                                                int timeout_ms = 10000);

}  // namespace dmvpn::control
