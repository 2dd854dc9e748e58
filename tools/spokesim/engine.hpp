// The spoke emulator proper: N spokes on one port, their ARP, NHRP timers, data flows, checks
// and counters. Frames in through on_frame(), out through a frame_sink; time is passed in, so
// the tests drive it without DPDK and without waiting.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tools/spokesim/addr.hpp"
#include "tools/spokesim/frames.hpp"
#include "tools/spokesim/options.hpp"
#include "tools/spokesim/spoke.hpp"
#include "tools/spokesim/topology.hpp"

namespace dmvpn::spokesim {

class frame_sink {
public:
    virtual ~frame_sink() = default;
    virtual void send(std::span<const uint8_t> frame) = 0;
};

enum class esp_status : uint8_t { ok, no_sa, auth_failed, replayed, malformed, failed };
std::string_view name(esp_status s) noexcept;

// ESP transport between each spoke and the hub. `packet` is a whole outer IPv4 packet: protect()
// turns IPv4/GRE into IPv4/ESP/GRE with the spoke's outbound SA, unprotect() the reverse with its
// inbound SA (ICV, anti-replay).
class esp_layer {
public:
    virtual ~esp_layer() = default;
    virtual esp_status protect(uint32_t local, buffer& packet) = 0;
    virtual esp_status unprotect(uint32_t local, buffer& packet) = 0;
};

// Per spoke, beside the NHRP counters the spoke keeps itself.
struct data_counters {
    uint64_t sent_via_hub = 0;
    uint64_t sent_shortcut = 0;
    uint64_t received_via_hub = 0;
    uint64_t received_shortcut = 0;
    uint64_t corrupt = 0;    // failed a check: payload, inner header, addressed to someone else
    uint64_t reordered = 0;  // arrived after a later sequence number from the same sender
    uint64_t esp_errors = 0;
    uint64_t gre_key_mismatch = 0;
    uint64_t unprotected = 0;  // clear GRE while ESP is configured: dropped
    uint64_t nhrp_parse_errors = 0;
    uint64_t multicast_received = 0;  // copies the hub replicated to this spoke
    uint64_t next_seq = 1;            // sender side
    uint64_t highest_seen = 0;        // receiver side, from this spoke's one sender
};

struct totals {
    uint32_t spokes = 0;
    uint32_t registered = 0;
    nhrp_counters nhrp;
    data_counters data;
    uint64_t sent = 0;
    uint64_t received = 0;
    uint64_t lost = 0;
    uint64_t duplicates = 0;
    uint64_t shortcuts_active = 0;
};

enum class phase : uint8_t { resolving_hub, registering, traffic, draining, done };
std::string_view name(phase p) noexcept;

class engine {
public:
    engine(const options& o, const mac& port_mac, frame_sink& sink,
           std::unique_ptr<esp_layer> esp = nullptr);

    void start(uint64_t now_us);
    void on_frame(std::span<const uint8_t> frame, uint64_t now_us);
    // Timers: ARP, registrations, data. Call often (every poll loop).
    void poll(uint64_t now_us);
    // Ends the traffic phase now (a signal, or --duration 0 runs).
    void stop(uint64_t now_us);
    bool done() const noexcept { return _phase == phase::done; }
    phase current_phase() const noexcept { return _phase; }

    // Offline (pcap for replay): one data packet from spoke `src_local` to its peer via the
    // hub, as it would go on the wire, whatever the phase. Uses --hub-mac or 02:00:00:00:00:01.
    void emit_data(uint32_t src_local);

    const topology& topo() const noexcept { return _topo; }
    const spoke& spoke_at(uint32_t local) const { return _spokes.at(local); }
    const data_counters& data_at(uint32_t local) const { return _data.at(local); }
    totals sum(uint64_t now_us) const;
    bool hub_mac_known() const noexcept { return _hub_mac_known; }
    const mac& hub_mac() const noexcept { return _hub_mac; }
    uint64_t arp_replies_sent() const noexcept { return _arp_replies; }

    std::string progress_line(uint64_t now_us) const;
    // One JSON object: totals, verdict, and per-spoke objects when asked or N <= 16.
    std::string report_json(uint64_t now_us) const;
    // All registered, nothing lost or corrupt, every check passed.
    bool success(uint64_t now_us) const;

private:
    uint32_t peer_of(uint32_t local) const noexcept;
    // The topology's addresses, except for a spoke moved by --move-spoke.
    ipv4 nbma_of(uint32_t local) const noexcept;
    std::optional<uint32_t> local_by_nbma(ipv4 a) const noexcept;
    // The i-th hostile frame of --flood-ratio.
    void send_flood(uint64_t i);
    // The i-th frame of --forge.
    void send_forged(uint64_t i);
    // Plain GRE from any NBMA address to the hub (no ESP: forged and unknown sources).
    void send_plain_gre(ipv4 src_nbma, uint16_t gre_proto, std::span<const uint8_t> payload);
    void send_outer(uint32_t local, ipv4 dst_nbma, uint16_t gre_proto,
                    std::span<const uint8_t> gre_payload, bool protect);
    void send_nhrp(uint32_t local, const outgoing& out, uint64_t now_us);
    void send_data(uint32_t local, uint64_t now_us);
    void build_inner(uint32_t src_local, uint32_t dst_local, uint64_t seq, buffer& out) const;
    void on_ipv4(std::span<const uint8_t> packet, uint64_t now_us);
    void on_gre(uint32_t local, std::span<const uint8_t> gre, bool via_hub, uint64_t now_us);
    void on_nhrp(uint32_t local, std::span<const uint8_t> bytes, uint64_t now_us);
    void on_data(uint32_t local, std::span<const uint8_t> inner, bool via_hub);

    options _o;
    topology _topo;
    mac _port_mac;
    frame_sink& _sink;
    std::unique_ptr<esp_layer> _esp;
    nhrp_settings _settings;
    std::vector<spoke> _spokes;
    std::vector<data_counters> _data;

    phase _phase = phase::resolving_hub;
    bool _hub_mac_known = false;
    mac _hub_mac{};
    uint64_t _start_us = 0;
    uint64_t _next_arp_us = 0;
    uint64_t _register_deadline_us = 0;
    uint64_t _traffic_start_us = 0;
    uint64_t _traffic_end_us = 0;
    uint64_t _drain_end_us = 0;
    uint64_t _data_sent_total = 0;
    uint32_t _next_sender = 0;
    uint64_t _arp_replies = 0;
    uint64_t _not_ours = 0;
    uint64_t _next_scan_us = 0;
    uint32_t _registered = 0;
    uint16_t _ip_id = 0;
    // --flood-ratio: hostile frames sent, by kind (malformed, wrong password, unknown source),
    // and NHRP answers that came back for the flood's foreign addresses.
    std::array<uint64_t, 3> _flood_sent{};
    uint64_t _flood_total = 0;
    uint64_t _registering_since_us = 0;
    uint64_t _foreign_answers = 0;
    // --forge: frames sent, by kind (registration, resolution, multicast).
    std::array<uint64_t, 3> _forged_sent{};
    uint64_t _forged_total = 0;
    // --move-spoke: set once the spoke moved.
    std::optional<uint32_t> _moved;
    ipv4 _moved_nbma = 0;
    buffer _frame;  // reused for every frame built
    buffer _inner;
    buffer _ip;
    buffer _gre;
};

}  // namespace dmvpn::spokesim
