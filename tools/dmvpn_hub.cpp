// dmvpn-hub: the DMVPN hub program. Loads the topology (or the embedded default), starts the
// control lcore and the workers, and runs until SIGINT/SIGTERM; SIGHUP reloads the topology.
// Under systemd (Type=notify: $NOTIFY_SOCKET set) it reports READY=1 once up, RELOADING=1 then
// READY=1 around each SIGHUP reload, and STOPPING=1 on the way out.
#include <pthread.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "config/load.hpp"
#include "control/cpu_placement.hpp"
#include "control/hub/default_topology.hpp"
#include "control/hub/hub.hpp"
#include "control/hub/options.hpp"
#include "control/log.hpp"
#include "control/mgmt/server.hpp"
#include "tools/notify.hpp"

namespace {

// Lock-free atomics are async-signal-safe to store to.
std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};
static_assert(std::atomic<bool>::is_always_lock_free);

void on_stop(int) { g_stop.store(true); }

void on_hup(int) { g_reload.store(true); }

// Under systemd, SIGHUP wakes the reloader thread through this pipe instead of setting
// g_reload: the reload then goes through the management socket (what `dmvpnctl reload` does,
// the same hub::reload), whose reply says when it is finished, so that RELOADING=1 is followed
// by READY=1 only once the new topology is applied or refused. write(2) is async-signal-safe.
int g_hup_pipe[2] = {-1, -1};

void on_hup_notify(int) {
    char c = 'h';
    [[maybe_unused]] ssize_t n = ::write(g_hup_pipe[1], &c, 1);
}

void log_notify_error(const std::string& why) {
    if (!why.empty()) {
        dmvpn::log::warning("sd_notify: {}", why);
    }
}

// Reads the pipe until 'q'; each 'h' is one reload, framed by RELOADING=1 and READY=1.
void reloader(std::string notify_socket, std::string mgmt_socket) {
    dmvpn::control::enter_service_cpus();  // off the control lcore's CPU
    for (;;) {
        char c = 0;
        ssize_t n = ::read(g_hup_pipe[0], &c, 1);
        if (n < 0 && errno == EINTR) {
            continue;  // a signal landed on this thread (the handlers have no SA_RESTART)
        }
        if (n != 1 || c == 'q') {
            return;
        }
        log_notify_error(dmvpn::tools::notify(
            notify_socket, "RELOADING=1\n" + dmvpn::tools::monotonic_usec_field()));
        auto r = dmvpn::control::mgmt_call(mgmt_socket, "reload", 60000);
        // One line for the log and STATUS=: a refusal's file:line:col errors follow its first line.
        std::string line = r ? r->body : "reload: " + r.error();
        while (!line.empty() && line.back() == '\n') {
            line.pop_back();
        }
        std::replace(line.begin(), line.end(), '\n', ' ');
        dmvpn::log::notice("SIGHUP: {}", line);
        log_notify_error(dmvpn::tools::notify(notify_socket, "READY=1\nSTATUS=" + line));
    }
}

void install(int sig, void (*fn)(int)) {
    struct sigaction sa {};
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, nullptr);
}

// The loader's file:line:col errors, ending in a newline.
void print_errors(const std::string& text) {
    std::fputs(text.c_str(), stderr);
    if (!text.ends_with('\n')) {
        std::fputc('\n', stderr);
    }
}

}  // namespace

int main(int argc, char** argv) {
    using namespace dmvpn;
    log::init("dmvpn-hub");
    std::vector<std::string> args(argv + 1, argv + argc);
    hub::parsed_options parsed = hub::parse_options(args);
    if (!parsed.opts) {
        std::fprintf(stderr, "dmvpn-hub: %s\n%s", parsed.error.c_str(), hub::usage_text().c_str());
        return 2;
    }
    const hub::options& o = *parsed.opts;
    if (o.help) {
        std::fputs(hub::usage_text().c_str(), stdout);
        return 0;
    }
    if (o.print_default) {
        std::fwrite(hub::default_topology.data(), 1, hub::default_topology.size(), stdout);
        return 0;
    }
    if (o.check_file) {
        auto r = config::load_file(*o.check_file);
        if (!r) {
            print_errors(r.error_text());
            return 1;
        }
        // Warnings (legacy algorithms) go to stderr as "warning: file:line:col: key: ...";
        // the file is still valid.
        for (const config::warning& w : r.warnings()) {
            std::fprintf(stderr, "warning: %s\n", config::to_string(w).c_str());
        }
        const std::string warned =
            r.warnings().empty() ? "" : ", " + std::to_string(r.warnings().size()) + " warning(s)";
        std::printf("%s: valid (%zu ports, %zu tunnels, %zu ipsec profiles, %zu routes%s)\n",
                    o.check_file->c_str(), r->ports.size(), r->tunnels.size(),
                    r->ipsec_profiles.size(), r->routes.size(), warned.c_str());
        return 0;
    }
    if (o.pci_file) {
        auto r = config::load_file(*o.pci_file);
        if (!r) {
            print_errors(r.error_text());
            return 1;
        }
        for (const config::port& port : r->ports) {
            if (port.dev.kind == config::device_kind::pci) {
                std::printf("%s\n", port.dev.name.c_str());
            }
        }
        return 0;
    }
    auto loaded = o.config_file ? config::load_file(*o.config_file)
                                : config::load_string(hub::default_topology,
                                                      "<embedded config/examples/demo.yaml>");
    if (!loaded) {
        log::error("{}", loaded.error_text());
        return 1;
    }
    // --log-level wins over the topology's, here and on every reload.
    log::set_level(*log::parse_level(o.log_level.value_or(loaded->hub.log_level)));
    for (const config::warning& w : loaded.warnings()) {
        log::warning("config: {}", config::to_string(w));
    }
    // Before EAL starts its threads, so that they inherit nothing surprising; the handlers only
    // set flags the control loop reads.
    install(SIGINT, on_stop);
    install(SIGTERM, on_stop);
    const std::string notify_socket = tools::notify_socket();
    const bool systemd = !notify_socket.empty() && ::pipe2(g_hup_pipe, O_CLOEXEC) == 0;
    install(SIGHUP, systemd ? on_hup_notify : on_hup);
    std::signal(SIGPIPE, SIG_IGN);

    const std::string mgmt_socket = o.socket ? *o.socket : loaded->mgmt.socket;
    hub::start_params p;
    p.topology = std::move(loaded).value();
    p.config_path = o.config_file;
    p.socket = o.socket;
    p.eal_args = o.eal_args;
    p.log_level_from_cli = o.log_level.has_value();
    p.key_log = o.key_log;
    auto h = hub::hub::start(std::move(p));
    if (!h) {
        log::error("{}", h.error());
        return 1;
    }
    // From here on the hub's threads queue their lines for the logger thread (control/log.hpp):
    // the control lcore never waits on stderr. Everything before (config errors, start-up
    // failures) was written synchronously; stop_async() below writes what is queued before the
    // last lines and the exit (and runs at exit on any other way out).
    log::async_config lc;
    lc.cpus = dmvpn::control::service_cpus();  // off the control lcore's CPU
    if (!log::start_async(std::move(lc))) {
        log::warning("logger thread not started: the hub's threads write their lines themselves");
    }
    std::thread reload_thread;
    if (systemd) {
        reload_thread = std::thread(reloader, notify_socket, mgmt_socket);
        pthread_setname_np(reload_thread.native_handle(), "dmvpn-reload");
        log_notify_error(tools::notify(notify_socket, "READY=1\nSTATUS=running"));
    }
    (*h)->run(g_stop, g_reload);
    if (systemd) {
        log_notify_error(tools::notify(notify_socket, "STOPPING=1"));
        char q = 'q';
        if (::write(g_hup_pipe[1], &q, 1) == 1) {
            reload_thread.join();
        } else {
            reload_thread.detach();  // cannot happen with an empty pipe; never block the exit
        }
    }
    h.value().reset();
    log::stop_async();
    log::notice("stopped");
    return 0;
}
