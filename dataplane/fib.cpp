// The FIB's DIR-24-8 table and its rules (see dataplane/README.md, "The FIB").
#include "dataplane/fib.hpp"

#include <rte_malloc.h>

#include <algorithm>
#include <cerrno>

namespace dmvpn::dp {

namespace {

constexpr uint32_t group_entries = 256;

constexpr uint32_t mask_of(uint8_t len) noexcept {
    return len == 0 ? 0 : ~uint32_t{0} << (32 - len);
}

constexpr uint32_t entry_of(uint32_t nh, uint8_t depth) noexcept {
    return fib::valid_bit | (nh & fib::nh_mask) |
           (static_cast<uint32_t>(depth) << fib::depth_shift);
}

constexpr bool valid(uint32_t e) noexcept { return (e & fib::valid_bit) != 0; }
constexpr bool is_group(uint32_t e) noexcept { return (e & fib::group_bit) != 0; }
constexpr uint8_t depth_of(uint32_t e) noexcept {
    return static_cast<uint8_t>(e >> fib::depth_shift);
}

// Each entry is written whole (workers read it concurrently).
void store(uint32_t* p, uint32_t e) noexcept { __atomic_store_n(p, e, __ATOMIC_RELEASE); }

}  // namespace

std::unique_ptr<fib> fib::create(const std::string& name, uint32_t max_routes, uint32_t tbl8s,
                                 int socket_id) {
    auto* tbl24 = static_cast<uint32_t*>(rte_zmalloc_socket(
        (name + "_tbl24").c_str(), sizeof(uint32_t) << 24, RTE_CACHE_LINE_SIZE, socket_id));
    auto* tbl8 = static_cast<uint32_t*>(rte_zmalloc_socket(
        (name + "_tbl8").c_str(), sizeof(uint32_t) * group_entries * std::max<uint32_t>(tbl8s, 1),
        RTE_CACHE_LINE_SIZE, socket_id));
    if (tbl24 == nullptr || tbl8 == nullptr) {
        rte_free(tbl24);
        rte_free(tbl8);
        return nullptr;
    }
    return std::unique_ptr<fib>(new fib(tbl24, tbl8, tbl8s, max_routes));
}

fib::fib(uint32_t* tbl24, uint32_t* tbl8, uint32_t tbl8s, uint32_t max_routes)
    : _tbl24(tbl24), _tbl8(tbl8), _tbl8s(tbl8s), _max_routes(max_routes) {
    _free.reserve(tbl8s);
    for (uint32_t g = tbl8s; g > 0; --g) {
        _free.push_back(g - 1);  // group 0 first
    }
}

fib::~fib() {
    rte_free(_tbl24);
    rte_free(_tbl8);
}

int fib::attach_rcu(rte_rcu_qsbr* v) noexcept {
    if (v == nullptr || _rcu != nullptr) {
        return -EINVAL;
    }
    _rcu = v;
    return 0;
}

std::optional<uint32_t> fib::alloc_group() noexcept {
    if (_free.empty()) {
        // Groups freed before the workers' last quiescent point are theirs no more.
        while (!_pending.empty() && rte_rcu_qsbr_check(_rcu, _pending.front().token, false) == 1) {
            _free.push_back(_pending.front().group);
            _pending.pop_front();
        }
        if (_free.empty()) {
            return std::nullopt;
        }
    }
    uint32_t g = _free.back();
    _free.pop_back();
    ++_tbl8_used;
    return g;
}

void fib::free_group(uint32_t g) noexcept {
    --_tbl8_used;
    if (_rcu == nullptr) {
        _free.push_back(g);
        return;
    }
    // A worker may have read the group's tbl24 entry just before it was folded back: the group
    // keeps its contents until every worker has been through a quiescent point since.
    _pending.push_back(pending_group{g, rte_rcu_qsbr_start(_rcu)});
}

// fill: an added rule of `depth` takes the entries no rule longer than it holds; replace: a
// deleted rule's entries (exactly its depth) go to the rule that covered it.
static bool takes(uint32_t cur, uint8_t depth, fib::write_mode mode) noexcept {
    return mode == fib::write_mode::fill ? !valid(cur) || depth_of(cur) <= depth
                                         : valid(cur) && depth_of(cur) == depth;
}

void fib::write8(uint32_t* t, uint32_t from, uint32_t n, uint8_t depth, uint32_t e,
                 write_mode mode) noexcept {
    for (uint32_t j = from; j < from + n; ++j) {
        if (takes(t[j], depth, mode)) {
            store(&t[j], e);
        }
    }
}

void fib::write24(uint32_t from, uint32_t n, uint8_t depth, uint32_t e, write_mode mode) noexcept {
    for (uint32_t i = from; i < from + n; ++i) {
        uint32_t cur = _tbl24[i];
        if (is_group(cur)) {
            write8(&_tbl8[(cur & nh_mask) * group_entries], 0, group_entries, depth, e, mode);
        } else if (takes(cur, depth, mode)) {
            store(&_tbl24[i], e);
        }
    }
}

void fib::try_collapse(uint32_t i) noexcept {
    uint32_t cur = _tbl24[i];
    if (!is_group(cur)) {
        return;
    }
    uint32_t g = cur & nh_mask;
    const uint32_t* t = &_tbl8[g * group_entries];
    for (uint32_t j = 0; j < group_entries; ++j) {
        if (valid(t[j]) && depth_of(t[j]) > 24) {
            return;
        }
    }
    // What is left is the one rule of /24 or shorter covering this /24 (or none): every entry
    // holds it.
    store(&_tbl24[i], t[0]);
    free_group(g);
}

uint32_t fib::covering(uint32_t prefix, uint8_t len) const noexcept {
    for (int l = len - 1; l >= 0; --l) {
        const auto& m = _rules[l];
        if (m.empty()) {
            continue;
        }
        auto it = m.find(prefix & mask_of(static_cast<uint8_t>(l)));
        if (it != m.end()) {
            return entry_of(it->second, static_cast<uint8_t>(l));
        }
    }
    return 0;
}

int fib::add(uint32_t prefix, uint8_t len, route_target t) noexcept {
    if (t.index > route_index_max || len > 32) {
        return -EINVAL;
    }
    prefix &= mask_of(len);
    const uint32_t nh = encode(t);
    auto& rules = _rules[len];
    auto it = rules.find(prefix);
    if (it == rules.end() && _n_rules >= _max_routes) {
        return -ENOSPC;
    }
    const uint32_t e = entry_of(nh, len);
    // A /25 or longer in a /24 without a group needs one first.
    const uint32_t i = prefix >> 8;
    const uint32_t cur = _tbl24[i];
    std::optional<uint32_t> fresh;
    if (len > 24 && !is_group(cur)) {
        fresh = alloc_group();
        if (!fresh) {
            return -ENOSPC;
        }
    }
    if (it != rules.end()) {
        it->second = nh;
    } else {
        try {
            rules.emplace(prefix, nh);
        } catch (...) {
            if (fresh) {
                --_tbl8_used;
                _free.push_back(*fresh);  // never published
            }
            return -ENOMEM;
        }
        ++_n_rules;
    }
    if (len <= 24) {
        write24(i, 1u << (24 - len), len, e, write_mode::fill);
        return 0;
    }
    if (fresh) {
        // Not visible to the workers yet: filled with what the /24 held, then published.
        uint32_t* g = &_tbl8[*fresh * group_entries];
        std::fill(g, g + group_entries, cur);
        write8(g, prefix & 0xffu, 1u << (32 - len), len, e, write_mode::fill);
        store(&_tbl24[i], group_bit | *fresh);
    } else {
        write8(&_tbl8[(cur & nh_mask) * group_entries], prefix & 0xffu, 1u << (32 - len), len, e,
               write_mode::fill);
    }
    return 0;
}

int fib::del(uint32_t prefix, uint8_t len) noexcept {
    if (len > 32) {
        return -EINVAL;
    }
    prefix &= mask_of(len);
    auto& rules = _rules[len];
    auto it = rules.find(prefix);
    if (it == rules.end()) {
        return -ENOENT;
    }
    rules.erase(it);
    --_n_rules;
    const uint32_t repl = covering(prefix, len);
    if (len <= 24) {
        write24(prefix >> 8, 1u << (24 - len), len, repl, write_mode::replace);
        return 0;
    }
    const uint32_t i = prefix >> 8;
    const uint32_t cur = _tbl24[i];
    if (is_group(cur)) {
        write8(&_tbl8[(cur & nh_mask) * group_entries], prefix & 0xffu, 1u << (32 - len), len, repl,
               write_mode::replace);
        try_collapse(i);
    }
    return 0;
}

std::optional<route_target> fib::lookup(uint32_t ip) const noexcept {
    uint32_t e = lookup_raw(ip);
    if ((e & valid_bit) == 0) {
        return std::nullopt;
    }
    return decode(e);
}

}  // namespace dmvpn::dp
