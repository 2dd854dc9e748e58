// dmvpn-hub: the DMVPN hub program. Loads the topology (or the embedded default), starts the
// control lcore and the workers, and runs until SIGINT/SIGTERM; SIGHUP reloads the topology.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "config/load.hpp"
#include "control/hub/default_topology.hpp"
#include "control/hub/hub.hpp"
#include "control/hub/options.hpp"
#include "control/log.hpp"

namespace {

// Lock-free atomics are async-signal-safe to store to.
std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};
static_assert(std::atomic<bool>::is_always_lock_free);

void on_stop(int) { g_stop.store(true); }

void on_hup(int) { g_reload.store(true); }

void install(int sig, void (*fn)(int)) {
    struct sigaction sa {};
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, nullptr);
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
            std::fputs(r.error_text().c_str(), stderr);
            if (!r.error_text().ends_with('\n')) {
                std::fputc('\n', stderr);
            }
            return 1;
        }
        std::printf("%s: valid (%zu ports, %zu tunnels, %zu ipsec profiles, %zu routes)\n",
                    o.check_file->c_str(), r->ports.size(), r->tunnels.size(),
                    r->ipsec_profiles.size(), r->routes.size());
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
    // Before EAL starts its threads, so that they inherit nothing surprising; the handlers only
    // set flags the control loop reads.
    install(SIGINT, on_stop);
    install(SIGTERM, on_stop);
    install(SIGHUP, on_hup);
    std::signal(SIGPIPE, SIG_IGN);

    hub::start_params p;
    p.topology = std::move(loaded).value();
    p.config_path = o.config_file;
    p.socket = o.socket;
    p.eal_args = o.eal_args;
    p.log_level_from_cli = o.log_level.has_value();
    auto h = hub::hub::start(std::move(p));
    if (!h) {
        log::error("{}", h.error());
        return 1;
    }
    (*h)->run(g_stop, g_reload);
    h.value().reset();
    log::notice("stopped");
    return 0;
}
