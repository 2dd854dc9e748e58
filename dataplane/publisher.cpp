// Control-side publishing and RCU reclamation.
#include "dataplane/publisher.hpp"

#include <rte_malloc.h>

#include <cstring>

namespace dmvpn::dp {

namespace {

// Reclaim opportunistically once this many objects wait, so a busy control lcore that never
// calls reclaim() itself still frees memory.
constexpr size_t auto_reclaim_threshold = 256;

}  // namespace

std::string_view name(publish_status s) noexcept {
    switch (s) {
        case publish_status::ok:
            return "ok";
        case publish_status::bad_id:
            return "bad_id";
        case publish_status::bad_spec:
            return "bad_spec";
        case publish_status::no_topology:
            return "no_topology";
        case publish_status::route_failed:
            return "route_failed";
    }
    return "unknown";
}

std::string_view name(publisher_error e) noexcept {
    switch (e) {
        case publisher_error::bad_config:
            return "bad_config";
        case publisher_error::rcu_failed:
            return "rcu_failed";
        case publisher_error::fib_failed:
            return "fib_failed";
    }
    return "unknown";
}

publisher::publisher(const publisher_config& cfg) : _cfg(cfg) {}

wire::result<std::unique_ptr<publisher>, publisher_error> publisher::create(
    const publisher_config& cfg) {
    if (cfg.workers == 0 || cfg.workers > max_workers || cfg.adjacencies == 0 ||
        cfg.adjacencies > route_index_max + 1 || cfg.first_allocated_id == 0) {
        return wire::fail(publisher_error::bad_config);
    }
    std::unique_ptr<publisher> p(new publisher(cfg));
    p->_next_id = cfg.first_allocated_id;
    size_t sz = rte_rcu_qsbr_get_memsize(cfg.workers);
    auto* v = static_cast<rte_rcu_qsbr*>(
        rte_zmalloc_socket((cfg.name + "_rcu").c_str(), sz, RTE_CACHE_LINE_SIZE, cfg.socket_id));
    if (v == nullptr) {
        return wire::fail(publisher_error::rcu_failed);
    }
    p->_tables.rcu = v;
    if (rte_rcu_qsbr_init(v, cfg.workers) != 0) {
        return wire::fail(publisher_error::rcu_failed);
    }
    p->_fib = fib::create(cfg.name + "_fib", cfg.max_routes, cfg.tbl8s, cfg.socket_id);
    if (!p->_fib || p->_fib->attach_rcu(v) != 0) {
        return wire::fail(publisher_error::fib_failed);
    }
    p->_adj = std::make_unique<adjacency_table>(cfg.adjacencies);
    p->_tables.routes = p->_fib.get();
    p->_tables.adjacencies = p->_adj.get();
    p->_tables.workers = cfg.workers;
    p->set_inbound_sas({});
    return p;
}

publisher::~publisher() {
    for (uint32_t id = 0; _adj && id < _adj->capacity(); ++id) {
        if (const adjacency* a = _adj->exchange(id, nullptr)) {
            retire_adjacency(a);
        }
    }
    if (const topology* t = _tables.topo.exchange(nullptr)) {
        retire([t] { delete t; });
    }
    if (const spi_table* s = _tables.spis.exchange(nullptr)) {
        retire([s] { delete s; });
    }
    _spis = nullptr;
    _spi_waiting.clear();
    synchronize();
    _fib.reset();
    rte_free(_tables.rcu);
}

void publisher::set_topology(const topology& t) {
    auto* fresh = new topology(t);
    if (const topology* old = _tables.topo.exchange(fresh, std::memory_order_acq_rel)) {
        retire([old] { delete old; });
    }
}

publish_status publisher::install(uint32_t id, std::unique_ptr<adjacency> a) {
    if (!a) {
        return publish_status::bad_spec;
    }
    ++_live_adjacencies;
    // The object is complete before the release store inside exchange() makes it visible.
    if (const adjacency* old = _adj->exchange(id, a.release())) {
        retire_adjacency(old);
    }
    return publish_status::ok;
}

void publisher::retire_adjacency(const adjacency* a) {
    retire([this, a] {
        // Scribble before freeing so a reader that broke the protocol sends visible garbage
        // (NBMA 0.0.0.0, an impossible MAC) instead of plausible stale data.
        std::memset(static_cast<void*>(const_cast<adjacency*>(a)), 0xdb, sizeof(adjacency));
        delete a;
        --_live_adjacencies;
    });
}

publish_status publisher::set_tunnel_adjacency(uint32_t id, const tunnel_adjacency_spec& s) {
    if (id >= _adj->capacity()) {
        return publish_status::bad_id;
    }
    const topology* t = current_topology();
    if (t == nullptr) {
        return publish_status::no_topology;
    }
    return install(id, build_tunnel_adjacency(*t, s));
}

publish_status publisher::set_lan_adjacency(uint32_t id, const lan_adjacency_spec& s) {
    if (id >= _adj->capacity()) {
        return publish_status::bad_id;
    }
    const topology* t = current_topology();
    if (t == nullptr) {
        return publish_status::no_topology;
    }
    return install(id, build_lan_adjacency(*t, s));
}

publish_status publisher::set_incomplete(uint32_t id, uint16_t tunnel, uint16_t port,
                                         uint32_t nexthop) {
    if (id >= _adj->capacity()) {
        return publish_status::bad_id;
    }
    return install(id, build_incomplete_adjacency(tunnel, port, nexthop));
}

publish_status publisher::remove_adjacency(uint32_t id) {
    if (id >= _adj->capacity()) {
        return publish_status::bad_id;
    }
    if (const adjacency* old = _adj->exchange(id, nullptr)) {
        retire_adjacency(old);
    }
    return publish_status::ok;
}

publish_status publisher::add_route(uint32_t prefix, uint8_t len, route_target t) {
    if (t.kind == route_kind::adjacency && t.index >= _adj->capacity()) {
        return publish_status::bad_id;
    }
    return _fib->add(prefix, len, t) == 0 ? publish_status::ok : publish_status::route_failed;
}

publish_status publisher::del_route(uint32_t prefix, uint8_t len) {
    return _fib->del(prefix, len) == 0 ? publish_status::ok : publish_status::route_failed;
}

void publisher::set_inbound_sas(std::span<const inbound_sa> sas) {
    replace_spi_table(spi_table::build(sas));
}

void publisher::replace_spi_table(std::unique_ptr<spi_table> fresh) {
    _spis = fresh.release();
    if (const spi_table* old = _tables.spis.exchange(_spis, std::memory_order_acq_rel)) {
        retire([old] { delete old; });
    }
    _spi_waiting.clear();  // the old table's slots: it goes whole
}

publish_status publisher::add_inbound_sa(const inbound_sa& e) {
    advance_spi_slots();
    spi_table::insert_result r = _spis->insert(e);
    if (r == spi_table::insert_result::full) {
        std::vector<inbound_sa> all;
        all.reserve(_spis->size() + 1);
        _spis->for_each([&](const inbound_sa& x) { all.push_back(x); });
        all.push_back(e);
        replace_spi_table(spi_table::build(all));
        return publish_status::ok;
    }
    return r == spi_table::insert_result::ok ? publish_status::ok : publish_status::bad_spec;
}

bool publisher::remove_inbound_sa(uint32_t spi, const crypto::sa* sa) {
    std::optional<uint32_t> slot = _spis->erase(spi, sa);
    if (!slot) {
        return false;
    }
    // The token is taken after the tombstone went in.
    _spi_waiting.push_back(waiting_id{*slot, rte_rcu_qsbr_start(_tables.rcu)});
    return true;
}

void publisher::advance_spi_slots() {
    while (!_spi_waiting.empty() &&
           rte_rcu_qsbr_check(_tables.rcu, _spi_waiting.front().token, false) == 1) {
        _spis->release(_spi_waiting.front().id);
        _spi_waiting.pop_front();
    }
}

void publisher::retire(std::function<void()> release) {
    // The token is taken after the unlink (the caller's exchange): a worker that has reported
    // a quiescent state at or past it can no longer hold the old object.
    _retired.push_back(retired{rte_rcu_qsbr_start(_tables.rcu), std::move(release)});
    if (_retired.size() >= auto_reclaim_threshold) {
        reclaim();
    }
}

std::optional<uint64_t> publisher::pause_port(uint16_t port) {
    if (port >= max_ports) {
        return std::nullopt;
    }
    // The store comes before the token (release): a worker reporting a quiescent state at or
    // past the token reads the flag set in every later pass.
    _tables.port_paused[port].store(true, std::memory_order_release);
    return rte_rcu_qsbr_start(_tables.rcu);
}

bool publisher::port_quiet(uint64_t token) const {
    return rte_rcu_qsbr_check(_tables.rcu, token, false) == 1;
}

void publisher::resume_port(uint16_t port) {
    if (port < max_ports) {
        _tables.port_paused[port].store(false, std::memory_order_release);
    }
}

std::optional<uint32_t> publisher::alloc_adjacency_id() {
    if (!_free_ids.empty()) {
        uint32_t id = _free_ids.back();
        _free_ids.pop_back();
        return id;
    }
    if (_next_id >= _adj->capacity()) {
        return std::nullopt;
    }
    return _next_id++;
}

void publisher::free_adjacency_id(uint32_t id) {
    if (id == 0 || id >= _adj->capacity()) {
        return;
    }
    (void)remove_adjacency(id);
    // The token is taken after the caller removed the routes and the slot was emptied.
    _ids_waiting.push_back(waiting_id{id, rte_rcu_qsbr_start(_tables.rcu)});
    advance_ids();
}

void publisher::advance_ids() {
    while (!_ids_waiting.empty() &&
           rte_rcu_qsbr_check(_tables.rcu, _ids_waiting.front().token, false) == 1) {
        _free_ids.push_back(_ids_waiting.front().id);
        _ids_waiting.pop_front();
    }
}

size_t publisher::reclaim() {
    advance_ids();
    advance_spi_slots();
    size_t freed = 0;
    while (!_retired.empty() &&
           rte_rcu_qsbr_check(_tables.rcu, _retired.front().token, false) == 1) {
        auto release = std::move(_retired.front().release);
        _retired.pop_front();
        release();
        ++freed;
    }
    return freed;
}

void publisher::synchronize() {
    rte_rcu_qsbr_synchronize(_tables.rcu, RTE_QSBR_THRID_INVALID);
    while (!_retired.empty()) {
        auto release = std::move(_retired.front().release);
        _retired.pop_front();
        release();
    }
    advance_ids();  // every id's and SPI slot's grace period has passed now
    advance_spi_slots();
}

}  // namespace dmvpn::dp
