// The emulator's one DPDK port: EAL start-up, a port from a vdev string, and burst I/O of whole
// Ethernet frames. The only file of the emulator that includes DPDK (kept here, minimal, until
// dataplane/ offers shared EAL and port set-up).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "dataplane/wire/pcap_file.hpp"
#include "dataplane/wire/result.hpp"
#include "tools/spokesim/addr.hpp"
#include "tools/spokesim/engine.hpp"

namespace dmvpn::spokesim {

// The EAL arguments used when --eal is not given. memif needs the multi-process shared config
// (its probe registers an mp action, refused under --no-shconf); every other vdev runs without.
std::vector<std::string> default_eal_args(const std::string& vdev);

class dpdk_io final : public frame_sink {
public:
    static wire::result<std::unique_ptr<dpdk_io>, std::string> open(
        const std::vector<std::string>& eal_args, const std::string& vdev, uint16_t queues);
    ~dpdk_io() override;
    dpdk_io(const dpdk_io&) = delete;
    dpdk_io& operator=(const dpdk_io&) = delete;

    const mac& port_mac() const noexcept { return _mac; }
    bool link_up() const;
    // Queues one frame; sent at the next flush() or when a burst is full.
    void send(std::span<const uint8_t> frame) override;
    void flush();
    // Hands each received frame (from every RX queue) to `f`; returns how many.
    uint32_t receive(const std::function<void(std::span<const uint8_t>)>& f);
    uint64_t tx_dropped() const noexcept { return _tx_dropped; }
    // --capture: from now on every frame sent and received is also written to `w` (wall-clock
    // timestamps); the first write error stops the capture and is kept for the report.
    void capture_to(std::unique_ptr<wire::pcap::file_writer> w);
    const std::optional<wire::pcap::io_failure>& capture_failure() const noexcept {
        return _capture_failure;
    }

private:
    struct impl;
    explicit dpdk_io(std::unique_ptr<impl> p);

    std::unique_ptr<impl> _p;
    mac _mac{};
    uint64_t _tx_dropped = 0;
    void capture(std::span<const uint8_t> frame);
    std::unique_ptr<wire::pcap::file_writer> _capture;
    std::optional<wire::pcap::io_failure> _capture_failure;
};

}  // namespace dmvpn::spokesim
