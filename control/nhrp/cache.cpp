#include "control/nhrp/cache.hpp"

#include <algorithm>

namespace dmvpn::nhrp {

std::string_view name(entry_type t) noexcept {
    switch (t) {
        case entry_type::dynamic:
            return "dynamic";
        case entry_type::static_map:
            return "static";
    }
    return "unknown";
}

namespace {

constexpr size_t min_slots = 16;
// A std::set node: three pointers, a colour and the 8-byte key, as libstdc++ lays it out.
constexpr size_t prefix_node_bytes = 3 * sizeof(void*) + sizeof(void*) + sizeof(uint64_t);

size_t slots_for(size_t entries) {
    // Linear probing stays short below half full.
    size_t n = min_slots;
    while (n < entries * 2) {
        n <<= 1;
    }
    return n;
}

}  // namespace

cache::cache(size_t initial_capacity) {
    rehash(slots_for(initial_capacity));
    _entries.reserve(initial_capacity);
}

uint64_t cache::hash(uint16_t tunnel, uint32_t address) noexcept {
    // splitmix64's finaliser: addresses in one subnet differ in their low bits only.
    uint64_t x = (uint64_t{tunnel} << 32) | address;
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

void cache::reserve(size_t n) {
    size_t want = slots_for(n);
    if (want > _index.size()) {
        rehash(want);
    }
    _entries.reserve(n);
}

void cache::rehash(size_t slots) {
    _index.assign(slots, slot{});
    _mask = slots - 1;
    for (uint32_t i = 0; i < _entries.size(); ++i) {
        if (_entries[i].live) {
            place(i);
        }
    }
}

void cache::place(uint32_t entry_index) {
    const cache_entry& e = _entries[entry_index];
    uint64_t h = hash(e.tunnel, e.address);
    auto tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & _mask;; i = (i + 1) & _mask) {
        if (_index[i].index == 0) {
            _index[i] = slot{tag, entry_index + 1};
            return;
        }
    }
}

uint32_t cache::find(uint16_t tunnel, uint32_t address) const noexcept {
    uint64_t h = hash(tunnel, address);
    auto tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & _mask;; i = (i + 1) & _mask) {
        const slot& s = _index[i];
        if (s.index == 0) {
            return npos;
        }
        if (s.tag == tag) {
            const cache_entry& e = _entries[s.index - 1];
            if (e.tunnel == tunnel && e.address == address) {
                return s.index - 1;
            }
        }
    }
}

void cache::prefetch_slot(uint16_t tunnel, uint32_t address) const noexcept {
    __builtin_prefetch(&_index[hash(tunnel, address) & _mask]);
}

void cache::prefetch_entry(uint16_t tunnel, uint32_t address) const noexcept {
    uint64_t h = hash(tunnel, address);
    const slot& s = _index[h & _mask];
    if (s.index != 0 && s.tag == static_cast<uint32_t>(h >> 32)) {
        __builtin_prefetch(&_entries[s.index - 1]);
    }
}

uint32_t cache::find_covering(uint16_t tunnel, uint32_t address, uint8_t below) const noexcept {
    for (int len = std::min<int>(below, 32) - 1; len >= 0; --len) {
        if ((_prefix_lengths & (uint32_t{1} << len)) == 0) {
            continue;
        }
        uint32_t mask = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
        uint32_t i = find(tunnel, address & mask);
        if (i != npos && _entries[i].prefix_len == len) {
            return i;
        }
    }
    return npos;
}

void cache::add_prefix(uint32_t index) {
    const cache_entry& e = _entries[index];
    if (e.prefix_len >= 32) {
        return;
    }
    if (_prefix_count[e.prefix_len]++ == 0) {
        _prefix_lengths |= uint32_t{1} << e.prefix_len;
    }
    _prefix_order.insert(key_of(e.tunnel, e.address));
}

void cache::remove_prefix(uint32_t index) {
    const cache_entry& e = _entries[index];
    if (e.prefix_len >= 32) {
        return;
    }
    if (--_prefix_count[e.prefix_len] == 0) {
        _prefix_lengths &= ~(uint32_t{1} << e.prefix_len);
    }
    _prefix_order.erase(key_of(e.tunnel, e.address));
}

uint32_t cache::insert(uint16_t tunnel, uint32_t address, uint8_t prefix_len) {
    if ((_size + 1) * 2 > _index.size()) {
        rehash(_index.size() * 2);
    }
    uint32_t index = 0;
    if (!_free_entries.empty()) {
        index = _free_entries.back();
        _free_entries.pop_back();
    } else {
        index = static_cast<uint32_t>(_entries.size());
        _entries.emplace_back();
    }
    cache_entry& e = _entries[index];
    uint32_t generation = e.generation;
    e = cache_entry{};
    e.generation = generation;
    e.tunnel = tunnel;
    e.address = address;
    e.prefix_len = prefix_len;
    e.live = true;
    place(index);
    ++_size;
    add_prefix(index);
    return index;
}

void cache::erase(uint32_t index) {
    cache_entry& e = _entries[index];
    if (!e.live) {
        return;
    }
    take_requesters(index);
    // Backward-shift deletion keeps every probe chain unbroken without tombstones.
    uint64_t h = hash(e.tunnel, e.address);
    size_t i = h & _mask;
    while (_index[i].index != index + 1) {
        i = (i + 1) & _mask;
    }
    size_t hole = i;
    for (size_t j = (hole + 1) & _mask; _index[j].index != 0; j = (j + 1) & _mask) {
        const cache_entry& m = _entries[_index[j].index - 1];
        size_t home = hash(m.tunnel, m.address) & _mask;
        // Move j into the hole unless its home lies cyclically in (hole, j].
        bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!stays) {
            _index[hole] = _index[j];
            hole = j;
        }
    }
    _index[hole] = slot{};
    remove_prefix(index);
    e.live = false;
    ++e.generation;
    _free_entries.push_back(index);
    --_size;
}

void cache::set_prefix_len(uint32_t index, uint8_t prefix_len) {
    remove_prefix(index);
    _entries[index].prefix_len = prefix_len;
    add_prefix(index);
}

bool cache::add_requester(uint32_t index, const requester& r, size_t max) {
    if (r.proto == 0) {
        return false;
    }
    cache_entry& e = _entries[index];
    size_t count = 0;
    requester* hole = nullptr;
    for (uint32_t n = e.requesters; n != 0; n = _chunks[n - 1].next) {
        for (requester& have : _chunks[n - 1].r) {
            if (have.proto == r.proto) {
                have = r;  // the latest request ID is the one a purge must reuse
                return true;
            }
            if (have.proto == 0) {
                hole = hole != nullptr ? hole : &have;
            } else {
                ++count;
            }
        }
    }
    if (count >= max) {
        return false;
    }
    if (hole != nullptr) {
        *hole = r;
        return true;
    }
    uint32_t chunk = 0;
    if (!_free_chunks.empty()) {
        chunk = _free_chunks.back();
        _free_chunks.pop_back();
    } else {
        _chunks.emplace_back();
        chunk = static_cast<uint32_t>(_chunks.size());
    }
    _chunks[chunk - 1] = requester_chunk{};
    _chunks[chunk - 1].r[0] = r;
    _chunks[chunk - 1].next = e.requesters;
    e.requesters = chunk;
    return true;
}

std::vector<requester> cache::requesters(uint32_t index) const {
    // Chunks are linked newest first and fill in order: reversing chunk order gives the order
    // the requesters were told in.
    std::vector<uint32_t> chain;
    for (uint32_t n = _entries[index].requesters; n != 0; n = _chunks[n - 1].next) {
        chain.push_back(n);
    }
    std::vector<requester> out;
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
        for (const requester& r : _chunks[*it - 1].r) {
            if (r.proto != 0) {
                out.push_back(r);
            }
        }
    }
    return out;
}

std::vector<requester> cache::take_requesters(uint32_t index) {
    std::vector<requester> out = requesters(index);
    uint32_t n = _entries[index].requesters;
    while (n != 0) {
        uint32_t next = _chunks[n - 1].next;
        _free_chunks.push_back(n);
        n = next;
    }
    _entries[index].requesters = 0;
    return out;
}

size_t cache::memory_bytes() const noexcept {
    return _entries.capacity() * sizeof(cache_entry) + _free_entries.capacity() * sizeof(uint32_t) +
           _index.capacity() * sizeof(slot) + _prefix_order.size() * prefix_node_bytes +
           _chunks.capacity() * sizeof(requester_chunk) +
           _free_chunks.capacity() * sizeof(uint32_t);
}

}  // namespace dmvpn::nhrp
