// The hub's ARP table (RFC 826) on its ports: answering for its own addresses, learning
// neighbours, resolving next hops with retries, and holding a few packets while they resolve.
// Pure control-lcore logic driven by a clock: frames come out as bytes for the caller to send.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "control/hub/frames.hpp"
#include "control/timer_wheel.hpp"

namespace dmvpn::hub {

using control::timestamp;

struct neighbor_key {
    uint16_t port = 0;
    uint32_t ip = 0;
    auto operator<=>(const neighbor_key&) const = default;
};

enum class neighbor_state : uint8_t { incomplete, reachable, failed };
std::string_view name(neighbor_state s) noexcept;

struct neighbor_settings {
    std::chrono::milliseconds retry{1000};        // between requests while unresolved
    unsigned max_probes = 3;                      // then the entry is failed
    std::chrono::milliseconds failed_hold{5000};  // a failed entry is not re-probed before this
    std::chrono::seconds refresh{300};            // a reachable entry is re-confirmed this often
    size_t max_pending = 8;                       // packets held per unresolved neighbour
    // Gratuitous ARP when a port starts or its link comes up (RFC 5227 announcements): hosts
    // that cached another MAC for the hub's address (a restart on a new NIC, net_tap's random
    // MAC) update it at once instead of losing the hub until their entry goes stale.
    unsigned announcements = 3;
    std::chrono::milliseconds announce_interval{1000};
};

struct neighbor_view {
    neighbor_key key;
    neighbor_state state = neighbor_state::incomplete;
    mac_addr mac{};
    unsigned probes = 0;
    size_t pending = 0;
    timestamp updated{};
};

// What a call produced. frames: whole Ethernet frames to send on a port (ARP, and held packets
// now that their neighbour answered). changed: neighbours whose MAC became known or changed;
// adjacencies built on them are republished. dropped: held packets given up.
struct neighbor_output {
    std::vector<std::pair<uint16_t, bytes>> frames;
    std::vector<neighbor_key> changed;
    uint64_t dropped = 0;
};

class neighbor_table {
public:
    explicit neighbor_table(neighbor_settings s = {}) : _s(s) {}

    // The hub's own address and MAC on a port (an ARP request for it is answered).
    void set_port(uint16_t port, const mac_addr& mac, uint32_t address);

    std::optional<mac_addr> lookup(uint16_t port, uint32_t ip) const;
    std::optional<neighbor_state> state(uint16_t port, uint32_t ip) const;
    // Forgets one neighbour (a glean host route that never resolved is withdrawn with it).
    void forget(uint16_t port, uint32_t ip) { _entries.erase({port, ip}); }
    // Starts resolution unless the neighbour is known or being resolved.
    void resolve(uint16_t port, uint32_t ip, timestamp now, neighbor_output& out);
    // Sends an IPv4 packet (from its IPv4 header) to a neighbour now if its MAC is known,
    // otherwise holds it (a few per neighbour) and resolves.
    void send_or_hold(uint16_t port, uint32_t ip, bytes l3, timestamp now, neighbor_output& out);
    // Announces the port's address now (a gratuitous ARP request: sender = target = the hub's
    // address, broadcast) and again from tick() until `announcements` were sent.
    void announce(uint16_t port, timestamp now, neighbor_output& out);
    // An ARP packet received on `port`.
    void on_arp(uint16_t port, const arp_packet& a, timestamp now, neighbor_output& out);
    // Retries, failures and refreshes.
    void tick(timestamp now, neighbor_output& out);
    // Forgets every neighbour (e.g. a port's address changed).
    void clear() { _entries.clear(); }

    std::vector<neighbor_view> entries() const;
    size_t size() const noexcept { return _entries.size(); }
    uint64_t requests_sent() const noexcept { return _requests; }
    uint64_t replies_sent() const noexcept { return _replies; }
    uint64_t announcements_sent() const noexcept { return _announcements; }

private:
    struct port_info {
        mac_addr mac{};
        uint32_t address = 0;
        unsigned announce_left = 0;  // gratuitous ARPs still to send
        timestamp next_announce{};
    };
    struct entry {
        neighbor_state state = neighbor_state::incomplete;
        mac_addr mac{};
        unsigned probes = 0;
        timestamp next{};  // next request (incomplete), next refresh (reachable)
        timestamp updated{};
        std::vector<bytes> pending;
    };

    void request(uint16_t port, uint32_t ip, neighbor_output& out);
    void send_announcement(uint16_t port, port_info& p, timestamp now, neighbor_output& out);
    void learn(const neighbor_key& k, const mac_addr& mac, timestamp now, neighbor_output& out);

    neighbor_settings _s;
    std::map<uint16_t, port_info> _ports;
    std::map<neighbor_key, entry> _entries;
    uint64_t _requests = 0;
    uint64_t _replies = 0;
    uint64_t _announcements = 0;
};

}  // namespace dmvpn::hub
