// dmvpn-spokesim: N emulated DMVPN spokes on one DPDK port against a dmvpn-hub (test rig, demo
// spokes, load generator). See --help; the last line on stdout is a JSON report.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "tools/spokesim/dpdk_io.hpp"
#include "tools/spokesim/engine.hpp"
#include "tools/spokesim/esp.hpp"
#include "tools/spokesim/ike.hpp"
#include "tools/spokesim/options.hpp"
#include "tools/spokesim/pcap_out.hpp"

using namespace dmvpn::spokesim;

namespace {

volatile std::sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

uint64_t now_us() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
}

int run_live(const options& o, std::unique_ptr<esp_layer> esp, std::unique_ptr<ike_layer> ike) {
    auto io =
        dpdk_io::open(o.eal_args.empty() ? default_eal_args(o.vdev) : o.eal_args, o.vdev, o.queues);
    if (!io) {
        std::fprintf(stderr, "dmvpn-spokesim: %s\n", io.error().c_str());
        return 2;
    }
    dpdk_io& port = **io;
    if (!o.capture.empty()) {
        auto w = dmvpn::wire::pcap::file_writer::create(o.capture,
                                                        dmvpn::wire::pcap::linktype::ethernet);
        if (!w) {
            std::fprintf(stderr, "dmvpn-spokesim: --capture %s: %s (%s)\n", o.capture.c_str(),
                         std::string(dmvpn::wire::pcap::name(w.error().reason)).c_str(),
                         std::strerror(w.error().sys_errno));
            return 2;
        }
        port.capture_to(std::make_unique<dmvpn::wire::pcap::file_writer>(std::move(w.value())));
    }
    engine eng(o, port.port_mac(), port, std::move(esp), std::move(ike));
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);

    topology t(o);
    std::fprintf(stderr, "dmvpn-spokesim: %u spokes (%s..%s), hub %s / %s, port MAC %s, vdev %s\n",
                 t.size(), to_string(t.nbma_of(0)).c_str(),
                 to_string(t.nbma_of(t.size() - 1)).c_str(), to_string(t.hub_nbma()).c_str(),
                 to_string(t.hub_overlay()).c_str(), to_string(port.port_mac()).c_str(),
                 o.vdev.c_str());
    // A progress line once a second only where the run is long enough to want one.
    bool long_run = o.duration == 0 || o.duration > 3 || t.size() / o.registration_rate > 3 ||
                    (o.ike != ike_mode::off && t.size() / o.ike_rate > 3);
    uint64_t start = now_us();
    uint64_t next_progress = start + 1'000'000;
    eng.start(start);
    bool stopping = false;
    while (!eng.done()) {
        uint64_t now = now_us();
        uint32_t got = port.receive([&](std::span<const uint8_t> f) { eng.on_frame(f, now); });
        eng.poll(now);
        port.flush();
        if (g_stop && !stopping) {
            stopping = true;
            eng.stop(now);
        }
        if (o.progress && long_run && now >= next_progress) {
            std::fprintf(stderr, "%s\n", eng.progress_line(now).c_str());
            next_progress += 1'000'000;
        }
        if (got == 0) {
            // Two shared cores: yield when idle rather than spin a whole core.
            std::this_thread::sleep_for(std::chrono::microseconds(o.data_rate > 100'000 ? 0 : 50));
        }
    }
    uint64_t end = now_us();
    if (port.tx_dropped() > 0) {
        std::fprintf(stderr, "dmvpn-spokesim: %llu frames dropped on transmit\n",
                     static_cast<unsigned long long>(port.tx_dropped()));
    }
    if (!eng.hub_mac_known()) {
        std::fprintf(stderr, "dmvpn-spokesim: the hub (%s) never answered ARP\n",
                     to_string(t.hub_nbma()).c_str());
    }
    std::printf("%s\n", eng.report_json(end).c_str());
    std::fflush(stdout);
    int rc = eng.success(end) ? 0 : 1;
    while (o.linger && !g_stop) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return rc;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    auto parsed = parse_options(args);
    if (!parsed) {
        std::fprintf(stderr, "dmvpn-spokesim: %s\n", parsed.error().c_str());
        return 2;
    }
    const options& o = *parsed;
    if (o.help) {
        std::fputs(usage().c_str(), stdout);
        return 0;
    }
    topology t(o);
    if (o.print_sa_yaml) {
        std::fputs(t.sa_yaml().c_str(), stdout);
        return 0;
    }
    std::unique_ptr<esp_layer> esp;
    std::unique_ptr<ike_layer> ike;
    if (o.ike != ike_mode::off) {
        // An empty ESP table the spokes' IKE fills as it negotiates.
        auto table = esp_table::create();
        if (!table) {
            std::fprintf(stderr, "dmvpn-spokesim: %s\n", table.error().c_str());
            return 2;
        }
        auto layer = make_ike_layer(o, t, **table);
        if (!layer) {
            std::fprintf(stderr, "dmvpn-spokesim: %s\n", layer.error().c_str());
            return 2;
        }
        ike = std::move(*layer);
        esp = std::move(*table);
    } else if (o.esp != esp_transform::none) {
        auto e = make_esp_layer(t, false, !o.write_pcap.empty());
        if (!e) {
            std::fprintf(stderr, "dmvpn-spokesim: %s\n", e.error().c_str());
            return 2;
        }
        esp = std::move(*e);
    }
    if (!o.write_pcap.empty()) {
        auto r = write_capture(o, std::move(esp));
        if (!r) {
            std::fprintf(stderr, "dmvpn-spokesim: %s\n", r.error().c_str());
            return 2;
        }
        std::printf("{\"ok\":true,\"pcap\":\"%s\",\"frames\":%llu}\n", o.write_pcap.c_str(),
                    static_cast<unsigned long long>(*r));
        return 0;
    }
    return run_live(o, std::move(esp), std::move(ike));
}
