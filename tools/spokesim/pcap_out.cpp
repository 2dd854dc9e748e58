#include "tools/spokesim/pcap_out.hpp"

#include <cstring>

#include <fmt/format.h>

#include "dataplane/wire/pcap_file.hpp"

namespace dmvpn::spokesim {

namespace pcap = wire::pcap;

namespace {

class pcap_sink final : public frame_sink {
public:
    explicit pcap_sink(pcap::file_writer& w) : _w(w) {}
    void send(std::span<const uint8_t> frame) override {
        // Timestamps 1 us apart keep the file's order meaningful to replay tools.
        pcap::timestamp ts{static_cast<int64_t>(_n / 1'000'000),
                           static_cast<uint32_t>(_n % 1'000'000) * 1000};
        if (auto e = _w.write(ts, frame); e && !_failure) {
            _failure = e;
        }
        ++_n;
    }
    const std::optional<pcap::io_failure>& failure() const noexcept { return _failure; }

private:
    pcap::file_writer& _w;
    uint64_t _n = 0;
    std::optional<pcap::io_failure> _failure;
};

std::string describe(const std::string& path, const pcap::io_failure& f) {
    return fmt::format("{}: {} ({})", path, pcap::name(f.reason), std::strerror(f.sys_errno));
}

}  // namespace

wire::result<uint64_t, std::string> write_capture(const options& o,
                                                  std::unique_ptr<esp_layer> esp) {
    auto w = pcap::file_writer::create(o.write_pcap, pcap::linktype::ethernet);
    if (!w) {
        return wire::fail(describe(o.write_pcap, w.error()));
    }
    pcap_sink sink(*w);
    // The port MAC of a replaying generator is unknown here: a locally administered one.
    const mac port_mac{0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
    engine eng(o, port_mac, sink, std::move(esp));
    for (uint64_t i = 0; i < o.pcap_count; ++i) {
        eng.emit_data(static_cast<uint32_t>(i % o.spokes));
    }
    if (sink.failure()) {
        return wire::fail(describe(o.write_pcap, *sink.failure()));
    }
    if (auto e = w->close()) {
        return wire::fail(describe(o.write_pcap, *e));
    }
    if (w->records() != o.pcap_count) {
        return wire::fail(fmt::format("wrote {} of {} frames (ESP failed for the rest)",
                                      w->records(), o.pcap_count));
    }
    return w->records();
}

}  // namespace dmvpn::spokesim
