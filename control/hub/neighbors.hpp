// The hub's ARP table (RFC 826) on its ports: answering for its own addresses, learning
// neighbours, resolving next hops with retries, and holding a few packets while they resolve.
// Pure control-lcore logic driven by a clock: frames come out as bytes for the caller to send.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "control/hub/frames.hpp"
#include "control/key_hash.hpp"
#include "control/timer_wheel.hpp"

namespace dmvpn::hub {

using control::timestamp;

struct neighbor_key {
    uint16_t port = 0;
    uint32_t ip = 0;
    auto operator<=>(const neighbor_key&) const = default;
};
struct neighbor_key_hash {
    size_t operator()(const neighbor_key& k) const noexcept {
        return control::mix64(uint64_t{k.port} << 32 | k.ip);
    }
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
    // At most this many entries (hub.arp-max-entries). A new one beyond it evicts, in this
    // order, the failed, those only learnt from a neighbour's request and never used by the
    // hub, the unresolved, and last the resolved ones the hub uses; the least recently updated
    // first within each.
    size_t max_entries = 16384;
    // RFC 826's merge moves a known neighbour to the MAC its ARP packet carries (a replaced
    // router, a restarted spoke on a new NIC), at once, but at most once per `mac_change_hold`
    // per entry: a claim of another MAC within it is deferred, the latest such claim applied when
    // the hold ends. Forged ARP that alternates MACs republishes an entry's adjacencies at most
    // once per hold, and the last MAC claimed still wins.
    std::chrono::milliseconds mac_change_hold{1000};
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
    explicit neighbor_table(neighbor_settings s = {});

    // The hub's own address and MAC on a port (an ARP request for it is answered).
    void set_port(uint16_t port, const mac_addr& mac, uint32_t address);

    // The MAC of a resolved neighbour; marks it used (kept, refreshed, evicted last).
    std::optional<mac_addr> lookup(uint16_t port, uint32_t ip);
    std::optional<neighbor_state> state(uint16_t port, uint32_t ip) const;
    // Forgets one neighbour (a glean host route that never resolved is withdrawn with it).
    void forget(uint16_t port, uint32_t ip);
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
    // Retries, failures, refreshes and ageing, from a timer wheel: the work is what comes due,
    // never a walk of the table. A failed entry is forgotten once its hold is over; a resolved
    // one the hub never used is forgotten at its refresh time; a used one is re-confirmed then
    // and, if it does not answer `max_probes` requests, forgotten and reported in `changed` (its
    // adjacencies resolve it afresh).
    void tick(timestamp now, neighbor_output& out);
    // Forgets every neighbour (e.g. a port's address changed).
    void clear();

    // In (port, address) order.
    std::vector<neighbor_view> entries() const;
    size_t size() const noexcept { return _entries.size(); }
    uint64_t requests_sent() const noexcept { return _requests; }
    uint64_t replies_sent() const noexcept { return _replies; }
    uint64_t announcements_sent() const noexcept { return _announcements; }
    uint64_t evicted() const noexcept { return _evicted; }          // pushed out by max_entries
    uint64_t aged() const noexcept { return _aged; }                // forgotten by ageing
    uint64_t mac_changes() const noexcept { return _mac_changes; }  // a known entry's MAC moved
    // Claims of another MAC held back by mac_change_hold (the latest applied when it ends).
    uint64_t mac_changes_deferred() const noexcept { return _mac_changes_deferred; }
    size_t timers_pending() const noexcept { return _timers.size(); }

private:
    struct port_info {
        mac_addr mac{};
        uint32_t address = 0;
        unsigned announce_left = 0;  // gratuitous ARPs still to send
        timestamp next_announce{};
    };
    // Eviction order: lower ranks go first, then the least recently updated.
    enum class rank : uint8_t { failed, unused, incomplete, used };
    using age_key = std::tuple<rank, timestamp, neighbor_key>;
    struct entry {
        neighbor_state state = neighbor_state::incomplete;
        mac_addr mac{};
        unsigned probes = 0;    // requests sent without an answer (resolving or re-confirming)
        bool used = false;      // the hub resolved, looked up or sent to it
        bool in_index = false;  // `indexed` is in _by_age
        timestamp next{};       // when it is due (request, failure, refresh, ageing)
        timestamp updated{};
        timestamp mac_set{};  // when the MAC was last learnt or changed
        // Another MAC claimed within mac_change_hold of the last change, applied when it ends.
        bool deferred = false;
        mac_addr deferred_mac{};
        // Its live timer: a timer is scheduled only when `next` moves earlier than the live one;
        // one that fires before `next` is re-armed, so an entry never has more than a few.
        uint64_t timer_gen = 0;  // 0: none; timers of another generation are stale
        timestamp timer_at{};
        age_key indexed{};  // its key in _by_age
        std::vector<bytes> pending;
    };
    struct timer_ref {
        neighbor_key key;
        uint64_t gen = 0;
    };
    // Hashed: the NHRP path looks a spoke's NBMA neighbour up per registration and per reply,
    // and a tree of 10,000 of them walked with cold caches missed once per level.
    using entry_map = std::unordered_map<neighbor_key, entry, neighbor_key_hash>;

    void request(uint16_t port, uint32_t ip, neighbor_output& out);
    void send_announcement(uint16_t port, port_info& p, timestamp now, neighbor_output& out);
    void learn(const neighbor_key& k, const mac_addr& mac, timestamp now, neighbor_output& out);
    // Finds or makes an entry, evicting one first when the table is full.
    entry& obtain(const neighbor_key& k, timestamp now, neighbor_output& out, bool& fresh);
    void erase(entry_map::iterator it, neighbor_output& out);
    // Sets when the entry is next due, scheduling a timer if none comes by then.
    void set_next(const neighbor_key& k, entry& e, timestamp at);
    // Puts the entry in its place in the eviction order after a change.
    void reindex(const neighbor_key& k, entry& e);
    void expire(entry_map::iterator it, timestamp now, neighbor_output& out);
    static rank rank_of(const entry& e) noexcept;

    neighbor_settings _s;
    std::map<uint16_t, port_info> _ports;
    entry_map _entries;
    std::set<age_key> _by_age;
    control::timer_wheel<timer_ref> _timers{std::chrono::milliseconds(10), 1024};
    uint64_t _next_gen = 1;
    uint64_t _requests = 0;
    uint64_t _replies = 0;
    uint64_t _announcements = 0;
    uint64_t _evicted = 0;
    uint64_t _aged = 0;
    uint64_t _mac_changes = 0;
    uint64_t _mac_changes_deferred = 0;
};

}  // namespace dmvpn::hub
