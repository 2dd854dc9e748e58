// The NHS's NHRP cache: compact entries in a slab, an open-addressing index keyed by
// (tunnel, overlay address), requesters in a shared pool. Sized for a million spokes per core.
// Prefix entries (shorter than /32) live in the same index: a longest match probes it once per
// prefix length in use (at most 32 probes, however many prefixes there are), and an ordered
// index of them answers "what lies inside this prefix" for overlap checks.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

namespace dmvpn::nhrp {

enum class entry_type : uint8_t {
    dynamic,     // learned from a Registration Request
    static_map,  // `ip nhrp map` in the configuration
};
std::string_view name(entry_type t) noexcept;

// Flags as `show ip nhrp` prints them.
namespace entry_flag {
inline constexpr uint8_t authoritative = 0x01;
inline constexpr uint8_t unique = 0x02;
inline constexpr uint8_t registered = 0x04;
inline constexpr uint8_t used = 0x08;
inline constexpr uint8_t router = 0x10;
inline constexpr uint8_t implicit = 0x20;
inline constexpr uint8_t local = 0x40;
inline constexpr uint8_t nat = 0x80;
}  // namespace entry_flag
// The names in the order Cisco prints them.
inline constexpr std::pair<uint8_t, std::string_view> entry_flag_names[] = {
    {entry_flag::authoritative, "authoritative"},
    {entry_flag::unique, "unique"},
    {entry_flag::registered, "registered"},
    {entry_flag::used, "used"},
    {entry_flag::router, "router"},
    {entry_flag::implicit, "implicit"},
    {entry_flag::local, "local"},
    {entry_flag::nat, "nat"},
};

// A station that was told about an entry and must hear of its removal (Purge Request).
struct requester {
    uint32_t proto = 0;
    uint32_t nbma = 0;  // where its request came from (the address seen)
    uint32_t request_id = 0;

    bool operator==(const requester&) const = default;
};

inline constexpr int64_t never = std::numeric_limits<int64_t>::max();

// 56 bytes: the million-entry budget is dominated by this and the index.
struct cache_entry {
    uint32_t address = 0;       // overlay address (network address when prefix_len < 32)
    uint32_t via = 0;           // the registering station's protocol address
    uint32_t nbma = 0;          // where packets go: the address actually seen
    uint32_t claimed_nbma = 0;  // what the station said (differs behind NAT)
    int64_t created_ms = 0;
    int64_t expires_ms = never;
    uint32_t request_id = 0;  // of the registration that made or last refreshed it
    uint32_t generation = 0;  // bumped when the slot is reused: stale timers see the change
    uint32_t requesters = 0;  // head of its requester list in the pool, 0 = none
    uint16_t tunnel = 0;      // the server's tunnel index, not the configured id
    uint16_t mtu = 0;
    uint16_t holding_time = 0;  // as registered
    uint8_t prefix_len = 32;
    uint8_t flags = 0;
    entry_type type = entry_type::dynamic;
    bool live = false;
};
static_assert(sizeof(cache_entry) <= 56);

class cache {
public:
    static constexpr uint32_t npos = std::numeric_limits<uint32_t>::max();

    explicit cache(size_t initial_capacity = 1024);

    // Grows the index so `n` entries fit without a rehash on the hot path.
    void reserve(size_t n);

    uint32_t find(uint16_t tunnel, uint32_t address) const noexcept;
    // Latency hiding for the control lcore: start loading the key's index slot now, and (once
    // that has had time to arrive) the entry it points to, so that find() later hits the cache.
    void prefetch_slot(uint16_t tunnel, uint32_t address) const noexcept;
    void prefetch_entry(uint16_t tunnel, uint32_t address) const noexcept;
    // The longest registered or static prefix shorter than `below` (and than /32) covering
    // `address`: one index probe per prefix length in use.
    uint32_t find_covering(uint16_t tunnel, uint32_t address, uint8_t below = 32) const noexcept;
    // The first prefix entry (shorter than /32) of `tunnel` whose address lies in
    // `network`/`prefix_len` and that `skip` does not reject; npos if none. Walks only the
    // prefixes inside that range.
    template <typename Skip>
    uint32_t find_prefix_within(uint16_t tunnel, uint32_t network, uint8_t prefix_len,
                                Skip&& skip) const {
        uint32_t span = prefix_len == 0 ? ~uint32_t{0} : ~(~uint32_t{0} << (32 - prefix_len));
        uint64_t lo = key_of(tunnel, network);
        uint64_t hi = key_of(tunnel, network | span);
        for (auto it = _prefix_order.lower_bound(lo); it != _prefix_order.end() && *it <= hi;
             ++it) {
            uint32_t i = find(tunnel, static_cast<uint32_t>(*it));
            if (i != npos && !skip(_entries[i])) {
                return i;
            }
        }
        return npos;
    }
    // Inserts a blank live entry keyed (tunnel, address, prefix_len); the key must be absent.
    uint32_t insert(uint16_t tunnel, uint32_t address, uint8_t prefix_len);
    void erase(uint32_t index);
    // Changes an entry's prefix length in place (the key, its address, stays).
    void set_prefix_len(uint32_t index, uint8_t prefix_len);

    cache_entry& at(uint32_t index) noexcept { return _entries[index]; }
    const cache_entry& at(uint32_t index) const noexcept { return _entries[index]; }
    // True when `index` names a live entry of generation `generation` (a timer's check).
    bool valid(uint32_t index, uint32_t generation) const noexcept {
        return index < _entries.size() && _entries[index].live &&
               _entries[index].generation == generation;
    }

    // Adds or refreshes (same proto) a requester. False when the entry already has `max`, or
    // for proto 0.0.0.0, which marks an empty place.
    bool add_requester(uint32_t index, const requester& r, size_t max);
    std::vector<requester> requesters(uint32_t index) const;
    // Drops the entry's requesters and returns them.
    std::vector<requester> take_requesters(uint32_t index);

    template <typename Fn>
    void for_each(Fn&& fn) const {
        for (uint32_t i = 0; i < _entries.size(); ++i) {
            if (_entries[i].live) {
                fn(i, _entries[i]);
            }
        }
    }

    size_t size() const noexcept { return _size; }
    size_t memory_bytes() const noexcept;

private:
    struct slot {
        uint32_t tag = 0;    // high hash bits: most probes miss without touching the entry
        uint32_t index = 0;  // entry index + 1; 0 = empty
    };
    // Requesters in cache-line chunks: the duplicate check on every Resolution Request touches
    // one line for the usual handful. An empty place has proto 0.
    static constexpr size_t requesters_per_chunk = 5;
    struct alignas(64) requester_chunk {
        std::array<requester, requesters_per_chunk> r{};
        uint32_t next = 0;  // chunk index + 1
    };

    static uint64_t hash(uint16_t tunnel, uint32_t address) noexcept;
    static uint64_t key_of(uint16_t tunnel, uint32_t address) noexcept {
        return uint64_t{tunnel} << 32 | address;
    }
    void add_prefix(uint32_t index);
    void remove_prefix(uint32_t index);
    void rehash(size_t slots);
    void place(uint32_t entry_index);

    std::vector<cache_entry> _entries;
    std::vector<uint32_t> _free_entries;
    std::vector<slot> _index;
    size_t _mask = 0;
    size_t _size = 0;
    // Entries with prefix_len < 32: how many of each length (a longest match probes only the
    // lengths in use), and their keys in order for range queries.
    std::array<uint32_t, 32> _prefix_count{};
    uint32_t _prefix_lengths = 0;  // bit L set: some entry has prefix length L
    std::set<uint64_t> _prefix_order;
    std::vector<requester_chunk> _chunks;
    std::vector<uint32_t> _free_chunks;
};

}  // namespace dmvpn::nhrp
