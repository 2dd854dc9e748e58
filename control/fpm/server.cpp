// The FPM server thread (see server.hpp).
#include "control/fpm/server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "control/cpu_placement.hpp"

namespace dmvpn::fpm {

namespace {

// Batches waiting for the control lcore before the thread stops reading zebra's socket.
constexpr size_t max_backlog_batches = 16;
constexpr size_t read_size = 64 * 1024;

uint64_t key_of(uint32_t prefix, uint8_t len) { return (uint64_t{prefix} << 8) | len; }

}  // namespace

server::server(server_options options)
    : _options(std::move(options)), _nexthops(_options.max_nexthops) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(_options.port);
    if (inet_pton(AF_INET, _options.address.c_str(), &sa.sin_addr) != 1) {
        throw std::runtime_error(
            fmt::format("fpm: listen address {} is not an IPv4 address", _options.address));
    }
    _listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (_listen_fd < 0) {
        throw std::runtime_error(fmt::format("fpm: socket: {}", std::strerror(errno)));
    }
    const int one = 1;
    ::setsockopt(_listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(_listen_fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0 ||
        ::listen(_listen_fd, 4) != 0) {
        const int err = errno;
        ::close(_listen_fd);
        throw std::runtime_error(fmt::format("fpm: cannot listen on {}:{}: {}", _options.address,
                                             _options.port, std::strerror(err)));
    }
    socklen_t len = sizeof sa;
    ::getsockname(_listen_fd, reinterpret_cast<sockaddr*>(&sa), &len);
    _bound_port = ntohs(sa.sin_port);
    _thread = std::thread([this] { run(); });
    pthread_setname_np(_thread.native_handle(), "dmvpn-fpm");
}

server::~server() {
    _stop.store(true);
    if (_thread.joinable()) {
        _thread.join();
    }
    if (_conn_fd >= 0) {
        ::close(_conn_fd);
    }
    ::close(_listen_fd);
}

route_update server::held::update() const {
    route_update u;
    u.prefix = prefix;
    u.len = len;
    u.protocol = protocol;
    u.blackhole = blackhole;
    const size_t hops = (has_hop ? 1 : 0) + more.size();
    u.gateways.reserve(hops);
    u.ifindexes.reserve(hops);
    if (has_hop) {
        u.gateways.push_back(gateway);
        u.ifindexes.push_back(ifindex);
    }
    for (const auto& [g, i] : more) {
        u.gateways.push_back(g);
        u.ifindexes.push_back(i);
    }
    return u;
}

bool server::held::same(const route_update& u) const {
    if (!u.add || u.prefix != prefix || u.len != len || u.protocol != protocol ||
        u.blackhole != blackhole || u.gateways.size() != u.ifindexes.size() ||
        u.gateways.size() != (has_hop ? 1 : 0) + more.size()) {
        return false;
    }
    if (!has_hop) {
        return true;
    }
    if (u.gateways[0] != gateway || u.ifindexes[0] != ifindex) {
        return false;
    }
    for (size_t i = 0; i < more.size(); ++i) {
        if (u.gateways[i + 1] != more[i].first || u.ifindexes[i + 1] != more[i].second) {
            return false;
        }
    }
    return true;
}

void server::held::set(const route_update& u) {
    prefix = u.prefix;
    len = u.len;
    protocol = u.protocol;
    blackhole = u.blackhole;
    const size_t hops = std::min(u.gateways.size(), u.ifindexes.size());
    has_hop = hops > 0;
    gateway = has_hop ? u.gateways[0] : 0;
    ifindex = has_hop ? u.ifindexes[0] : 0;
    more.clear();
    for (size_t i = 1; i < hops; ++i) {
        more.emplace_back(u.gateways[i], u.ifindexes[i]);
    }
}

void server::close_connection() {
    if (_conn_fd < 0) {
        return;
    }
    ::close(_conn_fd);
    _conn_fd = -1;
    _reader.reset();
    _counters.disconnects.fetch_add(1, std::memory_order_relaxed);
    _counters.connected.store(false, std::memory_order_relaxed);
    // Routes stay for `hold`; a resync cut short sweeps nothing until zebra is back and quiet.
    _lost = true;
    _lost_at = std::chrono::steady_clock::now();
}

void server::run() {
    control::enter_service_cpus();  // off the control lcore's CPU
    std::vector<uint8_t> buf(read_size);
    while (!_stop.load(std::memory_order_relaxed)) {
        flush();
        const bool held_back = _backlog.size() >= max_backlog_batches;
        pollfd fds[2] = {{_listen_fd, POLLIN, 0}, {_conn_fd, POLLIN, 0}};
        const nfds_t n = (_conn_fd >= 0 && !held_back) ? 2 : 1;
        ::poll(fds, n, held_back ? 1 : 50);
        const auto now = std::chrono::steady_clock::now();

        if ((fds[0].revents & POLLIN) != 0) {
            const int fd = ::accept4(_listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd >= 0) {
                // zebra reconnecting while its old connection lingers: the new one wins.
                close_connection();
                _conn_fd = fd;
                _lost = false;
                _counters.connections.fetch_add(1, std::memory_order_relaxed);
                _counters.connected.store(true, std::memory_order_relaxed);
                _nexthops.clear();
                for (auto& [k, h] : _table) {
                    h.stale = true;
                }
                _resyncing = true;
                _last_frame = now;
            }
        }
        if (n == 2 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
            const ssize_t got = ::recv(_conn_fd, buf.data(), buf.size(), 0);
            if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
                close_connection();
            } else if (got > 0) {
                _reader.feed(std::span<const uint8_t>(buf.data(), static_cast<size_t>(got)));
                _last_frame = now;
                for (;;) {
                    auto f = _reader.next();
                    if (!f) {
                        _counters.poisoned.fetch_add(1, std::memory_order_relaxed);
                        close_connection();
                        break;
                    }
                    if (!*f) {
                        break;
                    }
                    on_frame(**f);
                }
            }
        }
        if (_resyncing && _conn_fd >= 0 && now - _last_frame >= _options.settle) {
            sweep();
            _resyncing = false;
        }
        if (_lost && now - _lost_at >= _options.hold) {
            withdraw_all();
            _lost = false;
            _resyncing = false;
        }
        _counters.routes.store(_table.size(), std::memory_order_relaxed);
    }
}

void server::on_frame(std::span<const uint8_t> frame) {
    _counters.frames.fetch_add(1, std::memory_order_relaxed);
    if (!decode_frame(frame, _messages)) {
        _counters.bad_frames.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    const frame_messages& ms = _messages;
    for (size_t i = 0; i < ms.size(); ++i) {
        const auto& m = ms[i];
        if (!m) {
            _counters.bad_frames.fetch_add(1, std::memory_order_relaxed);
            continue;
        }
        // zebra's route update: RTM_DELROUTE then RTM_NEWROUTE of the same prefix in one frame.
        // The NEWROUTE replaces (NLM_F_REPLACE), so the withdrawal is not announced: the FIB
        // goes from the old route to the new one in one write, with no gap between.
        if (i + 1 < ms.size() && ms[i + 1] && replaced_by(*m, *ms[i + 1])) {
            continue;
        }
        if (const auto* nh = std::get_if<nexthop_object>(&*m)) {
            on_nexthop(*nh);
        } else {
            on_route(std::get<route>(*m));
        }
    }
}

bool server::replaced_by(const message& del, const message& next) {
    const auto* d = std::get_if<route>(&del);
    const auto* n = std::get_if<route>(&next);
    return d != nullptr && n != nullptr && !d->add && n->add && d->family == n->family &&
           d->table == n->table && d->prefix_len == n->prefix_len && d->dst == n->dst;
}

void server::on_nexthop(const nexthop_object& nh) {
    const bool replaced = nh.add && _nexthops.resolve(nh.id).has_value();
    if (!_nexthops.apply(nh)) {
        _counters.bad_frames.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    if (!replaced) {
        return;
    }
    // The kernel's semantics: every route using the object, directly or through a group,
    // follows it.
    for (auto& [k, h] : _table) {
        if (h.nexthop_id == 0) {
            continue;
        }
        auto hops = _nexthops.resolve(h.nexthop_id);
        if (!hops) {
            continue;
        }
        route_update u = h.update();
        u.blackhole = _nexthops.is_blackhole(h.nexthop_id);
        u.gateways.clear();
        u.ifindexes.clear();
        for (const auto& hop : *hops) {
            u.gateways.push_back(hop.gateway ? hop.gateway->v4() : 0);
            u.ifindexes.push_back(hop.ifindex);
        }
        if (!h.same(u)) {
            h.set(u);
            announce(std::move(u));
        }
    }
}

void server::on_route(const route& r) {
    if (r.family != 2 || r.table != _options.table) {
        _counters.skipped.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    const uint32_t prefix = r.dst.v4();
    const uint64_t key = key_of(prefix, r.prefix_len);
    auto it = _table.find(key);
    auto withdraw = [&] {
        if (it != _table.end()) {
            route_update u = it->second.update();
            u.add = false;
            _table.erase(it);
            announce(std::move(u));
        }
    };
    if (!r.add) {
        withdraw();
        return;
    }
    // A NEWROUTE replaces what the prefix had (zebra sets NLM_F_REPLACE): one we cannot take
    // (its next-hop object unknown, no gateway) leaves no stale route behind.
    route_update u;
    u.prefix = prefix;
    u.len = r.prefix_len;
    u.protocol = r.protocol;
    u.blackhole = r.type != route_type::unicast;
    // The route's own gateways, or its next-hop object's (resolved into a vector of their own).
    const std::vector<nexthop>* hops = &r.nexthops;
    result<std::vector<nexthop>> resolved = std::vector<nexthop>{};
    if (r.nexthop_id != 0) {
        resolved = _nexthops.resolve(r.nexthop_id);
        if (!resolved) {
            _counters.skipped.fetch_add(1, std::memory_order_relaxed);
            withdraw();
            return;
        }
        hops = &*resolved;
        u.blackhole = u.blackhole || _nexthops.is_blackhole(r.nexthop_id);
    }
    u.gateways.reserve(hops->size());
    u.ifindexes.reserve(hops->size());
    for (const auto& hop : *hops) {
        u.gateways.push_back(hop.gateway ? hop.gateway->v4() : 0);
        u.ifindexes.push_back(hop.ifindex);
    }
    if (!u.blackhole && u.gateways.empty()) {
        _counters.skipped.fetch_add(1, std::memory_order_relaxed);
        withdraw();
        return;
    }
    if (it == _table.end()) {
        if (_table.size() >= _options.max_routes) {
            _counters.refused_full.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        it = _table.emplace(key, held{}).first;
    } else if (it->second.same(u)) {
        it->second.stale = false;  // resent unchanged during a resync: nothing to announce
        it->second.nexthop_id = r.nexthop_id;
        return;
    }
    it->second.set(u);
    it->second.stale = false;
    it->second.nexthop_id = r.nexthop_id;
    announce(std::move(u));
}

void server::announce(route_update u) {
    (u.add ? _counters.routes_added : _counters.routes_removed)
        .fetch_add(1, std::memory_order_relaxed);
    if (_pending.empty()) {
        _pending.reserve(batch_size);  // one allocation per batch, not one per doubling
    }
    _pending.push_back(std::move(u));
    if (_pending.size() >= batch_size) {
        _backlog.push_back(std::move(_pending));
        _pending = batch{};
    }
}

void server::sweep() {
    for (auto it = _table.begin(); it != _table.end();) {
        if (!it->second.stale) {
            ++it;
            continue;
        }
        route_update u = it->second.update();
        u.add = false;
        announce(std::move(u));
        _counters.swept.fetch_add(1, std::memory_order_relaxed);
        it = _table.erase(it);
    }
}

void server::withdraw_all() {
    for (auto& [k, h] : _table) {
        route_update u = h.update();
        u.add = false;
        announce(std::move(u));
    }
    _table.clear();
}

void server::flush() {
    if (!_pending.empty()) {
        _backlog.push_back(std::move(_pending));
        _pending = batch{};
    }
    size_t pushed = 0;
    while (pushed < _backlog.size()) {
        if (!_out.push_from(_backlog[pushed])) {
            _counters.backpressure.fetch_add(1, std::memory_order_relaxed);
            break;
        }
        ++pushed;
    }
    _backlog.erase(_backlog.begin(), _backlog.begin() + static_cast<std::ptrdiff_t>(pushed));
}

}  // namespace dmvpn::fpm
