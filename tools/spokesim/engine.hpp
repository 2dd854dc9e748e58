// The spoke emulator proper: N spokes on one port, their ARP, NHRP timers, data flows, checks
// and counters. Frames in through on_frame(), out through a frame_sink; time is passed in, so
// the tests drive it without DPDK and without waiting.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tools/spokesim/addr.hpp"
#include "tools/spokesim/frames.hpp"
#include "tools/spokesim/nhs.hpp"
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

// ESP transport between each spoke and its peers (the hub; with IKE, other spokes too).
// `packet` is a whole outer IPv4 packet: protect() turns IPv4/GRE into IPv4/ESP/GRE with the
// spoke's outbound SA to the packet's destination, unprotect() the reverse with the inbound SA
// its SPI names (ICV, anti-replay). tools/spokesim/esp.hpp implements it.
class esp_layer {
public:
    virtual ~esp_layer() = default;
    virtual esp_status protect(uint32_t local, buffer& packet) = 0;
    virtual esp_status unprotect(uint32_t local, buffer& packet) = 0;
    // Whether spoke `local` has an SA pair with `peer` (an NBMA address).
    virtual bool has(uint32_t local, ipv4 peer) const = 0;
};

// An IKE datagram of one spoke (UDP 500 or 4500; the non-ESP marker not included).
struct ike_datagram {
    uint32_t local = 0;  // the spoke it leaves from / reached
    ipv4 src = 0;
    ipv4 dst = 0;
    uint16_t sport = 500;
    uint16_t dport = 500;
    buffer payload;
};

// What the spokes' IKE tells the emulator.
struct ike_event {
    enum class kind : uint8_t {
        child_up,   // a CHILD_SA pair with `peer` is in the ESP layer (first, or a rekey's)
        ike_up,     // an IKE SA with `peer` is authenticated (before its first CHILD_SA, if any)
        peer_down,  // the IKE SA with `peer` died (DELETE, DPD, expiry) or never came up
    };
    kind what = kind::child_up;
    uint32_t local = 0;
    ipv4 peer = 0;
    bool rekey = false;
    std::string why;
};

struct ike_counts {
    uint64_t ike_sas_up = 0;  // authenticated, both roles, since the start
    uint64_t child_sas = 0;   // CHILD_SA pairs installed in the ESP layer (rekeys included)
    uint64_t rekeys = 0;
    uint64_t failures = 0;  // IKE SAs that failed, CHILD_SAs the ESP layer refused
    uint64_t datagrams_in = 0;
    uint64_t datagrams_out = 0;
};

// IKEv2 for every spoke (tools/spokesim/ike.hpp implements it with control/ike's engine): each
// spoke is an initiator towards the hub and, for shortcuts, towards other spokes, and a
// responder to them. Negotiated CHILD_SAs go straight into the ESP layer it was made with.
class ike_layer {
public:
    virtual ~ike_layer() = default;
    virtual void initiate(uint32_t local, ipv4 peer, uint64_t now_us) = 0;
    virtual void on_datagram(const ike_datagram& d, uint64_t now_us) = 0;
    // Retransmissions, DPD, lifetimes.
    virtual void tick(uint64_t now_us) = 0;
    // What the calls since the last take() produced, appended.
    virtual void take(std::vector<ike_datagram>& send, std::vector<ike_event>& events) = 0;
    virtual ike_counts counts() const = 0;
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
    uint64_t multicast_received = 0;  // multicast and broadcast copies the hub replicated here
    uint64_t echo_replies = 0;        // ICMP echo requests to this spoke answered
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

// keying: with --ike, the spokes bring up their IKE SAs with the hub (paced by --ike-rate);
// each registers as soon as its first CHILD_SA is in.
enum class phase : uint8_t { resolving_hub, keying, registering, traffic, draining, done };
std::string_view name(phase p) noexcept;

class engine {
public:
    // With `ike`, `esp` is the ESP layer the IKE layer installs its CHILD_SAs in.
    engine(const options& o, const mac& port_mac, frame_sink& sink,
           std::unique_ptr<esp_layer> esp = nullptr, std::unique_ptr<ike_layer> ike = nullptr);
    ~engine();

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
    // Gratuitous ARP requests: a spoke announces its NBMA address with each registration it
    // sends while unregistered and each IKE SA it initiates, as a router does when it starts.
    uint64_t arp_announcements_sent() const noexcept { return _arp_announcements; }
    // With --ike: spokes whose IKE SA with the hub carries a CHILD_SA now.
    uint32_t keyed() const noexcept { return _keyed; }
    bool keyed(uint32_t local) const { return _ike_state.at(local).keyed; }
    struct ike_totals {
        ike_counts ike;
        uint32_t keyed = 0;
        uint64_t peer_downs = 0;      // IKE SAs with the hub that died (each re-initiated)
        uint64_t spoke_sas = 0;       // spoke-to-spoke CHILD_SAs (shortcuts)
        uint64_t held = 0;            // NHRP packets held until a spoke-to-spoke SA came up
        uint64_t held_dropped = 0;    // ... dropped: too many, or the SA never came
        uint64_t nat_keepalives = 0;  // received and ignored
        uint64_t udp_not_ike = 0;     // UDP to 4500 without the non-ESP marker, other ports
    };
    ike_totals ike_sum() const;

    std::string progress_line(uint64_t now_us) const;
    std::string handshake_json() const;
    std::string registration_rtt_json() const;
    // One JSON object: totals, verdict, and per-spoke objects when asked or N <= 16.
    std::string report_json(uint64_t now_us) const;
    // All registered, nothing lost or corrupt, every check passed.
    bool success(uint64_t now_us) const;

private:
    uint32_t peer_of(uint32_t local) const noexcept;
    // The topology's addresses, except for a spoke moved by --move-spoke.
    ipv4 nbma_of(uint32_t local) const noexcept;
    void announce(uint32_t local);  // a gratuitous ARP for the spoke's NBMA address
    std::optional<uint32_t> local_by_nbma(ipv4 a) const noexcept;
    // --nhs: whether `a` is one of the NHSes (the hub when there is one), which one carries
    // spoke `local`'s traffic now, and the MAC to reach `dst` through.
    std::optional<size_t> nhs_index(ipv4 a) const noexcept;
    ipv4 nhs_of(uint32_t local) const noexcept;
    const mac& mac_towards(ipv4 dst) const noexcept;
    bool spoke_registered(uint32_t local, uint64_t now_us) const noexcept;
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
    // An ICMP echo request to spoke `local` (the hub's host pinging it through the exception
    // path): the reply goes back through the hub. False when it is not a valid request.
    bool answer_echo(uint32_t local, const ipv4_view& ip);
    void on_udp(uint32_t local, const ipv4_view& ip, uint64_t now_us);
    // The IPv4 packet in _ip, out of the port through the hub's MAC; or, addressed to one of
    // our own spokes, delivered in the process (shortcuts, IKE between two emulated spokes)
    // through the same parsing as a frame from the port.
    void transmit_ip(uint64_t now_us);
    // IKE: initiations due, the engine's timers, its datagrams and events.
    void run_ike(uint64_t now_us);
    void send_datagram(const ike_datagram& d, uint64_t now_us);
    void on_ike_event(const ike_event& e, uint64_t now_us);
    // NHRP from `local` directly to another emulated spoke: through their SA, or held until
    // the SA `local` initiates comes up (as IOS keys a shortcut before answering over it).
    void send_direct(uint32_t local, ipv4 peer_nbma, std::span<const uint8_t> nhrp_bytes,
                     uint64_t now_us);
    // IKE between two spokes (`local` initiating), unless a negotiation of the pair is under way.
    void negotiate(uint32_t local, ipv4 peer_nbma, uint64_t now_us);

    options _o;
    topology _topo;
    mac _port_mac;
    frame_sink& _sink;
    std::unique_ptr<esp_layer> _esp;
    std::unique_ptr<ike_layer> _ike;  // after _esp: it installs SAs there, so goes first
    nhrp_settings _settings;
    std::vector<spoke> _spokes;
    std::vector<data_counters> _data;
    // --nhs: every NHS (the hub first), their MACs (ARP), each spoke's clients of the others.
    std::vector<nhs_address> _nhs;
    std::vector<std::optional<mac>> _nhs_mac;
    std::vector<nhs_group> _groups;
    ipv4 _rx_src = 0;  // outer source of the frame being handled (0: inside the emulator)

    phase _phase = phase::resolving_hub;
    bool _hub_mac_known = false;
    mac _hub_mac{};
    uint64_t _start_us = 0;
    uint64_t _next_arp_us = 0;
    uint64_t _register_deadline_us = 0;
    uint64_t _traffic_start_us = 0;
    bool _resolved = false;  // --resolve: the spokes asked
    uint64_t _traffic_end_us = 0;
    uint64_t _drain_end_us = 0;
    uint64_t _data_sent_total = 0;
    uint32_t _next_sender = 0;
    uint64_t _arp_replies = 0;
    uint64_t _arp_announcements = 0;
    uint64_t _not_ours = 0;
    uint64_t _next_scan_us = 0;
    std::minstd_rand _jitter_rng{12345};  // --reg-jitter's draws (seeded: runs repeat)
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
    // --ike.
    struct ike_state {
        bool keyed = false;  // a CHILD_SA with the hub is in
        bool initiated = false;
        bool timed = false;         // this attempt's handshake time is in _handshake_us
        bool keyed_timed = false;   // this attempt's time to its CHILD_SA is in _keyed_us
        uint64_t initiated_us = 0;  // when the latest attempt with the hub started
    };
    // Handshake times with the hub (initiation to the authenticated IKE_AUTH response, the
    // first CHILD_SA installed with it), one per attempt that came up, for the report.
    std::vector<uint64_t> _handshake_us;
    // Initiation to the first CHILD_SA with the hub installed, one per attempt: IKEv2 the same
    // moment as the above; IKEv1 Main Mode + Quick Mode where the above is Main Mode alone.
    std::vector<uint64_t> _keyed_us;
    uint64_t _last_keyed_us = 0;
    // Registration -> Reply times (spoke::last_registration_rtt_us), one per accepted reply, for
    // the report's percentiles (the IKE bench: NHRP answered while a handshake storm runs).
    // Bounded: past max_rtt_samples the rest are counted, not kept.
    static constexpr size_t max_rtt_samples = 1 << 20;
    std::vector<uint64_t> _registration_rtt_us;
    uint64_t _registration_rtt_unkept = 0;
    uint64_t _first_initiated_us = 0;
    uint64_t _last_ike_up_us = 0;
    std::vector<ike_state> _ike_state;
    uint32_t _keyed = 0;
    uint32_t _ike_ramp = 0;  // spokes initiated by the ramp so far
    uint64_t _keying_since_us = 0;
    uint64_t _next_ike_tick_us = 0;
    std::deque<std::pair<uint64_t, uint32_t>> _ike_retries;  // (when, spoke), in time order
    // Spoke-to-spoke: NHRP held per (spoke, peer NBMA) until their SA is in, and the pairs of
    // NBMA addresses negotiating (either side initiated) with when they started.
    std::unordered_map<uint64_t, std::vector<buffer>> _held;
    std::unordered_map<uint64_t, uint64_t> _negotiating;
    uint64_t _peer_downs = 0;
    uint64_t _spoke_sas = 0;
    uint64_t _held_total = 0;
    uint64_t _held_dropped = 0;
    uint64_t _nat_keepalives = 0;
    uint64_t _udp_not_ike = 0;
    std::vector<ike_datagram> _ike_out;
    std::vector<ike_event> _ike_events;
    uint64_t _now_us = 0;  // of the current poll() / on_frame()
    buffer _frame;         // reused for every frame built
    buffer _inner;
    buffer _ip;
    buffer _gre;
};

}  // namespace dmvpn::spokesim
