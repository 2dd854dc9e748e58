// The hub's control lcore: start-up, shutdown, the loop and punt dispatch.
#include "control/hub/hub.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include <fmt/core.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>

#include "control/cpu_placement.hpp"
#include "control/hub/expire_slice.hpp"
#include "control/hub/ike_glue.hpp"
#include "control/ike/key_log.hpp"
#include "control/hub/telemetry.hpp"
#include "control/log.hpp"
#include "control/nhrp/debug.hpp"
#include "dataplane/eal.hpp"
#include "dataplane/port.hpp"
#include "dataplane/wire/gre.hpp"
#include "dataplane/wire/ipv4.hpp"
#include "dataplane/wire/reader.hpp"
#include "dataplane/worker_ctx.hpp"

namespace dmvpn::hub {

namespace {

using namespace std::chrono_literals;

constexpr unsigned punt_ring_size = 4096;
constexpr unsigned punt_burst = 32;
constexpr auto tick_interval = 10ms;
// When nothing happened for this many passes the loop naps `hub.control-idle-nap-us` (100 us
// by default: labs share their cores, and a control lcore has nothing to poll at line rate; 0
// keeps it polling, for a control lcore on a core of its own).
constexpr unsigned idle_passes_before_nap = 1000;

timestamp now_ts() { return std::chrono::steady_clock::now(); }

std::string ip_str(uint32_t a) { return wire::format_ipv4(a); }

std::string eal_advice(int err) {
    switch (err) {
        case ENOMEM:
        case ENODEV:
            return "not enough memory for DPDK: reserve hugepages (echo 1024 > "
                   "/proc/sys/vm/nr_hugepages; mount -t hugetlbfs nodev /dev/hugepages) or run "
                   "without them (hub.eal-args: [--no-huge, -m, \"1024\"])";
        case EACCES:
            return "permission denied: run as root (hugepages, device files)";
        case EALREADY:
            return "EAL is already running in this process";
        case EINVAL:
            return "EAL refused its arguments (see the EAL message above): check hub.eal-args, the "
                   "arguments after --, and that every lcore in control-lcore/worker-lcores exists "
                   "on this machine";
        case EAGAIN:
            return "a bus or system resource is not available (another DPDK process with the same "
                   "--file-prefix? give each one its own)";
        case EPROTO:
            return "no PCI bus: add --no-pci to hub.eal-args when using only virtual devices";
        default:
            return fmt::format("rte_eal_init failed: {}", rte_strerror(err));
    }
}

std::string port_advice(const config::port& p, dp::port_error e, uint16_t workers) {
    std::string what = fmt::format("port \"{}\" ({})", p.name, p.dev.spec);
    switch (e) {
        case dp::port_error::probe_failed:
            return what +
                   ": DPDK could not probe the device: check the driver name and its "
                   "arguments; a PCI device must be bound to vfio-pci and the EAL must not "
                   "run with --no-pci";
        case dp::port_error::not_found:
            return what + ": the device was probed but no port carries the name \"" + p.dev.name +
                   "\": port not found";
        case dp::port_error::too_few_queues:
            return what + fmt::format(
                              ": the device has fewer than {} RX / {} TX queues: use fewer "
                              "worker lcores",
                              workers, workers + 1);
        case dp::port_error::mtu_failed:
            return what + fmt::format(": the device refused MTU {}", p.mtu);
        default:
            return what + ": " + std::string(dp::name(e));
    }
}

// rte_eth_link / net_memif want the directory of a socket= argument to exist.
void make_socket_dirs(const std::string& devargs) {
    size_t pos = devargs.find("socket=");
    if (pos == std::string::npos) {
        return;
    }
    std::string path = devargs.substr(pos + 7, devargs.find(',', pos) - pos - 7);
    std::filesystem::path dir = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!dir.empty()) {
        std::filesystem::create_directories(dir, ec);
    }
}

bool has_lcore_arg(const std::vector<std::string>& args) {
    for (const std::string& a : args) {
        if (a == "-l" || a == "-c" || a == "--lcores" || a.starts_with("--lcores=")) {
            return true;
        }
    }
    return false;
}

// Why the NHRP server refused, for the operator.
std::string_view refusal_why(nhrp::drop_reason r) {
    switch (r) {
        case nhrp::drop_reason::refused_address:
            return "the address is not the station's own, not on the tunnel's overlay subnet, or "
                   "is "
                   "the hub's";
        case nhrp::drop_reason::refused_unique:
            return "registered with the unique flag from another NBMA address (code 14)";
        case nhrp::drop_reason::refused_static:
            return "a static map holds the address";
        case nhrp::drop_reason::refused_cache_full:
            return "the cache is full (nhrp.max-cache-entries)";
        case nhrp::drop_reason::authentication_failure:
            return "authentication failure (nhrp.authentication differs)";
        case nhrp::drop_reason::rate_limited:
            return "too many registrations from this address (nhrp.registration-rate-limit)";
        case nhrp::drop_reason::registration_tunnel_rate_limited:
            return "too many registrations on this tunnel (rate limited)";
        case nhrp::drop_reason::registration_global_rate_limited:
            return "too many registrations on the hub (rate limited)";
        case nhrp::drop_reason::refused_prefix:
            return "the prefix is not one the tunnel's registration-prefixes allow";
        case nhrp::drop_reason::refused_overlap:
            return "the prefix overlaps one another station holds";
        case nhrp::drop_reason::refused_nbma_full:
            return "this NBMA address holds too many entries (nhrp.max-entries-per-nbma)";
        default:
            return nhrp::name(r);
    }
}

void log_refusal(const nhrp::refusal& r, const config::tunnel* t) {
    log::warning("NHRP: {} from {} (NBMA {}) on {} refused: {}", nhrp::name(r.type),
                 r.address != 0 ? ip_str(r.address) : "?", ip_str(r.nbma),
                 t != nullptr ? t->name : "?", refusal_why(r.reason));
}

// Spoke up / down and why; static maps and carried registrations at info.
void log_binding(const nhrp::adjacency_event& e, const config::tunnel* t) {
    std::string_view tunnel = t != nullptr ? std::string_view(t->name) : "?";
    std::string who = fmt::format("{}/{}", ip_str(e.overlay), e.prefix_len);
    std::string nat = e.nat ? fmt::format(" (behind NAT, claims {})", ip_str(e.claimed_nbma)) : "";
    if (e.change == nhrp::adjacency_change::remove) {
        log::at_level{e.cause == nhrp::change_cause::static_map ? log::level::info
                                                                : log::level::notice}(
            "spoke {} down on {} (NBMA {}): {}", who, tunnel, ip_str(e.nbma), nhrp::name(e.cause));
    } else if (e.cause == nhrp::change_cause::registration) {
        log::notice("spoke {} up on {} at NBMA {}{}: {}", who, tunnel, ip_str(e.nbma), nat,
                    e.change == nhrp::adjacency_change::add ? "registered" : "replaced");
    } else {
        log::info("spoke {} on {} at NBMA {}{}: {}", who, tunnel, ip_str(e.nbma), nat,
                  e.cause == nhrp::change_cause::carried ? "carried over the reload"
                                                         : nhrp::name(e.cause));
    }
}

// `debug nhrp`: forced past the level filter, still rate limited (one bucket for all packets).
void log_nhrp_packet(nhrp::debug_direction d, const config::tunnel* t, uint32_t src, uint32_t dst,
                     std::span<const uint8_t> packet) {
    log::write(
        log::level::debug, "debug nhrp",
        nhrp::debug_packet(d, t != nullptr ? std::string_view(t->name) : "?", src, dst, packet),
        true);
}

}  // namespace

void hub::log_sa(const peer_sa& ps, std::string_view state) {
    log::notice(
        "IPsec SA {}: profile {} peer {} spi in 0x{:08x} out 0x{:08x}{}{}", state, ps.profile,
        ip_str(ps.peer), ps.in->spi(), ps.out->spi(),
        ps.id != 0 ? fmt::format(", IKEv2 child {}", ps.id) : std::string(),
        ps.udp_encap ? fmt::format(", UDP {}:{}", ps.local_port, ps.peer_port) : std::string());
}

// ---------------------------------------------------------------- start-up

wire::result<std::unique_ptr<hub>, std::string> hub::start(start_params p) {
    std::unique_ptr<hub> h(new hub());
    h->_topo = std::move(p.topology);
    h->_config_path = p.config_path;
    h->_socket = p.socket.value_or(h->_topo.mgmt.socket);
    h->_workers_n = static_cast<uint16_t>(h->_topo.hub.worker_lcores.size());
    h->_worker_lcores = h->_topo.hub.worker_lcores;
    h->_started = now_ts();
    h->_neighbors = neighbor_table(neighbor_settings{.max_entries = h->_topo.hub.arp_max_entries});
    constexpr uint64_t ns_per_s = 1000000000;
    h->_icmp_error_budget = dp::token_bucket(h->_topo.hub.icmp_error_rate,
                                             dp::burst_of(h->_topo.hub.icmp_error_rate), ns_per_s);
    h->_log_level_from_cli = p.log_level_from_cli;
    if (h->_workers_n == 0 || h->_workers_n > dp::max_workers) {
        return wire::fail(
            fmt::format("hub.worker-lcores: 1 to {} workers are supported", dp::max_workers));
    }
    if (!h->_slots.assign(h->_topo)) {
        return wire::fail(fmt::format("at most {} tunnels are supported", dp::max_tunnels));
    }
    // Refuse early, before DPDK takes the devices, if another hub answers on the socket.
    if (auto other = control::mgmt_call(h->_socket, "help", 300); other) {
        return wire::fail(
            fmt::format("another dmvpn-hub answers on {}: stop it, or give this one "
                        "another management.socket (or --socket)",
                        h->_socket));
    }
    if (p.key_log) {
        auto w = ike::keylog::writer::open(*p.key_log);
        if (!w) {
            return wire::fail("--key-log: " + w.error());
        }
        h->_ike_key_log = std::move(w.value());
        log::warning("{}", ike::keylog::warning(*p.key_log));
    }
    if (auto err = h->start_eal(p)) {
        return wire::fail(*err);
    }
    for (auto step :
         {&hub::create_tables, &hub::open_ports, &hub::open_exception, &hub::start_forwarder,
          &hub::start_nhrp, &hub::start_workers, &hub::start_ike, &hub::start_fpm}) {
        if (auto err = (h.get()->*step)()) {
            return wire::fail(*err);
        }
    }
    if (auto err = h->start_redistribute()) {
        return wire::fail(*err);
    }
    h->load_static_multicast();
    auto mgmt = control::mgmt_server::start(h->_socket);
    if (!mgmt) {
        return wire::fail(
            fmt::format("management socket {}: {} (create its directory, or set "
                        "management.socket / --socket to a writable path)",
                        h->_socket, mgmt.error()));
    }
    h->_mgmt = std::move(mgmt.value());
    h->_telemetry = telemetry::create();
    if (const auto& m = h->_topo.hub.metrics) {
        control::metrics_server_config mc;
        mc.address = m->address.value;
        mc.port = m->port;
        auto ms = control::metrics_server::start(mc, [] { return telemetry_prometheus(); });
        if (!ms) {
            return wire::fail(fmt::format("hub.metrics: cannot listen on {}:{}: {}",
                                          config::to_string(m->address), m->port, ms.error()));
        }
        h->_metrics = std::move(ms.value());
        log::info("metrics: http://{}:{}/metrics", config::to_string(m->address), m->port);
    }
    // Gratuitous ARP on every port: hosts that cached another MAC for our addresses update it.
    timestamp now = now_ts();
    neighbor_output announced;
    for (port_rt& p : h->_ports) {
        p.link_up = dp::port_link(p.opened.id).up;
        log::info("port {}: link {}", p.name, p.link_up ? "up" : "down");
        h->_neighbors.announce(p.opened.id, now, announced);
    }
    h->on_neighbors(announced);
    h->refresh_telemetry(now);
    // Last: the heap as it is now is faulted in, then kept so as it grows (heap_headroom.hpp).
    h->_heap =
        std::make_unique<control::heap_headroom>(size_t{h->_topo.hub.heap_headroom_mb} << 20);
    log::notice("running: {} port(s), {} tunnel(s), {} worker(s), management socket {}",
                h->_ports.size(), h->_topo.tunnels.size(), h->_workers_n, h->_socket);
    return h;
}

std::optional<std::string> hub::start_eal(const start_params& p) {
    std::vector<std::string> args = _topo.hub.eal_args;
    args.insert(args.end(), p.eal_args.begin(), p.eal_args.end());
    // net_memif registers a multi-process action when probed, which EAL refuses under
    // --no-shconf: a hub with a memif port runs with the shared config (its own --file-prefix
    // keeps it apart from other DPDK processes).
    bool memif = std::any_of(_topo.ports.begin(), _topo.ports.end(), [](const config::port& q) {
        return q.dev.spec.find("net_memif") != std::string::npos;
    });
    if (memif && std::erase(args, std::string("--no-shconf")) != 0) {
        log::warning("a net_memif port needs the EAL's shared config: running without --no-shconf");
    }
    if (!has_lcore_arg(args)) {
        std::string list = std::to_string(_topo.hub.control_lcore);
        for (unsigned l : _worker_lcores) {
            list += "," + std::to_string(l);
        }
        args.insert(args.begin(), {"-l", list});
    }
    bool has_main = std::any_of(args.begin(), args.end(),
                                [](const std::string& a) { return a.starts_with("--main-lcore"); });
    if (!has_main) {
        args.insert(args.begin(), {"--main-lcore", std::to_string(_topo.hub.control_lcore)});
    }
    // The process's CPUs before EAL pins this thread to the control lcore's.
    std::vector<unsigned> allowed = control::thread_cpus();
    auto r = dp::eal_init(args);
    if (!r) {
        if (r.error() == dp::eal_error::meta_failed) {
            return "EAL: no room in the mbuf for the packet metadata field";
        }
        return "EAL: " + eal_advice(rte_errno);
    }
    _eal_up = true;
    if (rte_lcore_id() != _topo.hub.control_lcore) {
        return fmt::format(
            "hub.control-lcore is {} but EAL runs the main lcore on {}: make them "
            "agree (--main-lcore)",
            _topo.hub.control_lcore, rte_lcore_id());
    }
    for (unsigned l : _worker_lcores) {
        if (l == rte_get_main_lcore()) {
            return fmt::format("worker lcore {} is the control lcore: give the workers their own",
                               l);
        }
        if (!rte_lcore_is_enabled(l)) {
            return fmt::format(
                "worker lcore {} is not in the EAL core list: add it to -l (or "
                "drop -l and let the hub build it from hub.worker-lcores)",
                l);
        }
        if (rte_eal_get_lcore_state(l) != WAIT) {
            return fmt::format("worker lcore {} is busy", l);
        }
    }
    return place_service_threads(allowed);
}

std::optional<std::string> hub::place_service_threads(const std::vector<unsigned>& allowed) {
    auto cpus_of = [](unsigned lcore) {
        std::vector<unsigned> v;
        rte_cpuset_t set = rte_lcore_cpuset(lcore);
        for (unsigned cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
            if (CPU_ISSET(cpu, &set)) {
                v.push_back(cpu);
            }
        }
        return v;
    };
    std::vector<unsigned> lcores;
    unsigned lcore = 0;
    RTE_LCORE_FOREACH(lcore) {
        std::vector<unsigned> v = cpus_of(lcore);
        lcores.insert(lcores.end(), v.begin(), v.end());
    }
    std::vector<unsigned> control = cpus_of(rte_get_main_lcore());
    std::vector<unsigned> configured(_topo.hub.service_cpus.begin(), _topo.hub.service_cpus.end());
    control::service_placement p =
        control::place_service_threads(allowed, lcores, control, configured);
    if (!p.error.empty()) {
        return p.error;
    }
    control::set_service_cpus(p.cpus);
    log::info(
        "service threads (IKE, FPM, redistribution, management, metrics, logger, heap) on "
        "CPU {}: "
        "{}",
        control::cpu_list_text(p.cpus), p.why);
    if (p.shares_control) {
        log::warning(
            "service threads share the control lcore's CPU {}: IKE's Diffie-Hellman and "
            "signatures will hold NHRP and the other punts behind them",
            control::cpu_list_text(control));
    }
    return std::nullopt;
}

std::optional<std::string> hub::create_tables() {
    unsigned mbufs = 4096;
    for (const config::port& p : _topo.ports) {
        mbufs += static_cast<unsigned>(p.rx_queue_size) * (_workers_n + 1u) +
                 static_cast<unsigned>(p.tx_queue_size) * (_workers_n + 1u);
    }
    mbufs += 512u * (_workers_n + 1u);
    mbufs += 256u * static_cast<unsigned>(_topo.routing.interfaces.size());  // exception path
    unsigned n = 1;
    while (n < mbufs + 1) {
        n <<= 1;
    }
    std::string pool_name = fmt::format("hub_pool_{}", getpid());
    _pool = rte_pktmbuf_pool_create(pool_name.c_str(), n - 1, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                    static_cast<int>(rte_socket_id()));
    if (_pool == nullptr) {
        return fmt::format(
            "mbuf pool of {} buffers: {} (give DPDK more memory: -m, or "
            "hugepages)",
            n - 1, rte_strerror(rte_errno));
    }
    _punts = dp::create_punt_ring("hub_punts", punt_ring_size, static_cast<int>(rte_socket_id()));
    if (_punts == nullptr) {
        return fmt::format("punt ring: {}", rte_strerror(rte_errno));
    }
    size_t entries = 0;
    for (const config::tunnel& t : _topo.tunnels) {
        entries += t.nhrp.max_cache_entries;
    }
    dp::publisher_config pc;
    pc.name = "hub";
    pc.workers = _workers_n;
    pc.adjacencies = static_cast<uint32_t>(
        std::min<size_t>(entries + _topo.routes.size() + 4096, dp::route_index_max + 1));
    pc.max_routes = pc.adjacencies;
    pc.tbl8s = static_cast<uint32_t>(std::clamp<size_t>(entries / 8, 1024, 65536));
    if (const auto& f = _topo.routing.fpm) {
        // zebra's routes on top. A prefix longer than /24 takes a tbl8 group (1 KiB) for its
        // /24; FRR's tables are mostly /24 and shorter: room for one such /24 in 32 routes.
        pc.max_routes += f->max_routes;
        pc.tbl8s += f->max_routes / 32;
    }
    auto pub = dp::publisher::create(pc);
    if (!pub) {
        return fmt::format("dataplane tables: {} (a FIB needs 64 MiB and more: raise -m)",
                           dp::name(pub.error()));
    }
    _pub = std::move(pub.value());
    // As many candidate routes as the FIB holds prefixes: past that, refused and counted.
    _rib = std::make_unique<rib::rib>(_rib_port, rib::limits{pc.max_routes});
    _bindings.reserve(entries);  // one per NHRP entry at most: never a rehash on the way
    _stats = std::make_unique<dp::stats_registry>(_workers_n);
    auto eng = crypto::engine::create();
    if (!eng) {
        return fmt::format("Intel IPsec-MB: {}", crypto::name(eng.error()));
    }
    _engine = std::move(eng.value());
    return std::nullopt;
}

std::optional<std::string> hub::open_ports() {
    std::map<std::string, opened_port> opened;
    for (const config::port& p : _topo.ports) {
        make_socket_dirs(p.dev.spec);
        dp::port_config pc;
        pc.devargs = p.dev.spec;
        pc.workers = _workers_n;
        pc.mtu = p.mtu;
        pc.rx_desc = p.rx_queue_size;
        pc.tx_desc = p.tx_queue_size;
        pc.pool = _pool;
        pc.drop_foreign_unicast = dp::sees_foreign_unicast(p.dev.spec);
        auto st = dp::open_port(pc);
        if (!st) {
            return port_advice(p, st.error(), _workers_n);
        }
        if (st->id >= dp::max_ports) {
            return fmt::format("port \"{}\" got DPDK port id {}; at most {} ports are supported",
                               p.name, st->id, dp::max_ports);
        }
        port_rt rt;
        rt.name = p.name;
        rt.cfg = p;
        rt.opened.id = st->id;
        std::memcpy(rt.opened.mac.data(), st->mac.addr_bytes, 6);
        rt.opened.mtu = st->mtu;
        rt.control_queue = st->control_tx_queue;
        rt.rx_queues = st->rx_queues;
        rt.rss = st->rss;
        opened[p.name] = rt.opened;
        _neighbors.set_port(st->id, rt.opened.mac, p.address.address.value);
        log::info("port {} ({}) is DPDK port {}, MAC {}, MTU {}, RSS {:#x}{}", p.name, p.dev.spec,
                  st->id, format_mac(rt.opened.mac), st->mtu, st->rss_hf,
                  st->rss || _workers_n == 1
                      ? ""
                      : fmt::format(" (none: polled by worker {} alone)", st->id % _workers_n));
        _ports.push_back(std::move(rt));
    }
    _pub->set_topology(dataplane_topology(_topo, _slots, opened));
    std::map<sa_key, std::unique_ptr<peer_sa>> sas;
    if (auto err = build_sas(_topo, sas)) {
        return err;
    }
    _sas = std::move(sas);
    for (const auto& [key, ps] : _sas) {
        log_sa(*ps, "up");
    }
    install_inbound_sas();
    apply_config_routes();
    return std::nullopt;
}

std::optional<std::string> hub::build_sas(const config::topology& t,
                                          std::map<sa_key, std::unique_ptr<peer_sa>>& out) {
    for (const config::ipsec_profile& prof : t.ipsec_profiles) {
        for (const config::manual_sa& m : prof.manual_sas) {
            sa_key key{prof.name, m.peer.value};
            auto old = _sas.find(key);
            if (old != _sas.end() && old->second->cfg == m && old->second->profile_cfg == prof) {
                continue;  // unchanged: the caller keeps the live one (its sequence numbers)
            }
            auto ps = std::make_unique<peer_sa>();
            ps->profile = prof.name;
            ps->peer = m.peer.value;
            ps->cfg = m;
            ps->profile_cfg = prof;
            std::vector<uint8_t> key_in;
            std::vector<uint8_t> key_out;
            if (auto err = install_pair(
                    *ps, sa_params_of(prof, m.inbound, crypto::sa_direction::inbound, key_in),
                    sa_params_of(prof, m.outbound, crypto::sa_direction::outbound, key_out))) {
                return fmt::format("ipsec-profiles \"{}\": {}", prof.name, *err);
            }
            out[key] = std::move(ps);
        }
    }
    return std::nullopt;
}

std::optional<std::string> hub::install_pair(peer_sa& ps, const crypto::sa_params& in,
                                             const crypto::sa_params& out) {
    auto i = crypto::sa::create(in, *_engine);
    auto o = crypto::sa::create(out, *_engine);
    if (!i || !o) {
        return fmt::format("SA with {}: {}", ip_str(ps.peer),
                           crypto::name(!i ? i.error() : o.error()));
    }
    ps.in = std::move(i.value());
    ps.out = std::move(o.value());
    return std::nullopt;
}

std::optional<dp::inbound_sa> hub::inbound_entry(const peer_sa& ps) const {
    if (ps.tunnel) {  // negotiated on this tunnel
        if (_slots.name(*ps.tunnel) != nullptr) {
            return dp::inbound_sa{ps.in->spi(), *ps.tunnel, ps.in.get()};
        }
        return std::nullopt;
    }
    // The SA protects the tunnel(s) naming its profile; the first one is the one GRE inside
    // must name (a profile shared by tunnels would need per-tunnel SAs).
    for (const config::tunnel& t : _topo.tunnels) {
        if (t.ipsec_profile == ps.profile) {
            return dp::inbound_sa{ps.in->spi(), *_slots.slot(t.name), ps.in.get()};
        }
    }
    return std::nullopt;
}

void hub::install_inbound_sas(bool reindex) {
    std::vector<dp::inbound_sa> table;
    table.reserve(_sas.size() + _standby.size());
    if (reindex) {
        _inbound_spis.clear();
    }
    auto add = [&](const peer_sa& ps) {
        if (reindex) {
            ++_inbound_spis[ps.in->spi()];
        }
        if (auto e = inbound_entry(ps)) {
            table.push_back(*e);
        }
    };
    for (const auto& [key, ps] : _sas) {
        add(*ps);
    }
    for (const auto& [id, ps] : _standby) {
        add(*ps);
    }
    _pub->set_inbound_sas(table);
    retire_after_inbound();
}

void hub::retire_after_inbound() {
    _inbound_dirty = false;
    // Tokens taken after the table changes: each runs once no worker can see the old entries.
    for (auto& f : _after_inbound) {
        _pub->retire(std::move(f));
    }
    _after_inbound.clear();
}

void hub::inbound_sas_changed(std::function<void()> after) {
    _inbound_dirty = true;
    if (after) {
        _after_inbound.push_back(std::move(after));
    }
}

void hub::flush_inbound_sas() {
    if (_inbound_dirty) {
        retire_after_inbound();  // the IKE paths changed the SPI table in place already
    }
}

std::optional<std::string> hub::start_nhrp() {
    auto sc = server_config_of(_topo, _slots, [this](uint32_t dst) { return route_for_nhrp(dst); });
    auto s = nhrp::server::create(std::move(sc));
    if (!s) {
        return fmt::format("NHRP server: {}", nhrp::name(s.error()));
    }
    _server.emplace(std::move(s.value()));
    timestamp now = now_ts();
    apply(_server->start(now), now);
    return std::nullopt;
}

std::optional<std::string> hub::start_forwarder() {
    // Packets the control lcore originates (NHRP to IPsec peers, multicast copies, ICMP and
    // routed packets) take the workers' path from resolve on, on this thread and the ports'
    // control TX queue: any thread may encrypt with an outbound SA.
    dp::worker_config fc;
    fc.id = _workers_n;
    fc.control = true;
    fc.tx_queue = _workers_n;  // dp::port_state::control_tx_queue on every port
    fc.tables = &_pub->tables();
    fc.punt_ring = _punts;
    fc.event_pool = _pool;
    fc.rate_limit_slots = 4096;
    auto fwd = dp::worker::create(fc);
    if (!fwd) {
        return fmt::format("control forwarder: {}", dp::name(fwd.error()));
    }
    _forwarder = std::move(fwd.value());
    return std::nullopt;
}

std::optional<std::string> hub::start_workers() {
    for (uint16_t w = 0; w < _workers_n; ++w) {
        dp::worker_config wc;
        wc.id = w;
        for (const port_rt& p : _ports) {
            for (uint16_t q = 0; q < p.rx_queues; ++q) {
                if (dp::rx_queue_owner(p.opened.id, p.rss, q, _workers_n) == w) {
                    wc.rx.push_back(dp::rx_queue{p.opened.id, q});
                }
            }
        }
        wc.tx_queue = w;
        wc.tables = &_pub->tables();
        wc.punt_ring = _punts;
        wc.event_pool = _pool;
        wc.stats = &_stats->of(w);
        wc.idle_sleep_us = _topo.hub.worker_idle_sleep_us;
        wc.punt_rates = worker_punt_rates(_topo.hub.punt_rates, _workers_n);
        auto wk = dp::worker::create(wc);
        if (!wk) {
            return fmt::format("worker {}: {}", w, dp::name(wk.error()));
        }
        _workers.push_back(std::move(wk.value()));
    }
    _launch.resize(_workers_n);
    for (uint16_t w = 0; w < _workers_n; ++w) {
        _launch[w] = dp::worker::launch_args{_workers[w].get(), &_workers_stop};
        int rc = rte_eal_remote_launch(&dp::worker::lcore_main, &_launch[w], _worker_lcores[w]);
        if (rc != 0) {
            return fmt::format("worker lcore {}: {} (busy or missing)", _worker_lcores[w],
                               rte_strerror(-rc));
        }
        _launched = true;
    }
    return std::nullopt;
}

hub::~hub() {
    _ike.reset();  // stops and joins the IKE thread
    _fpm.reset();  // stops and joins the FPM thread
    // stops and joins the redistribution thread
    _redist.reset();
    _workers_stop.store(true);
    if (_launched) {
        rte_eal_mp_wait_lcore();
    }
    _metrics.reset();
    _mgmt.reset();
    _telemetry.reset();
    _workers.clear();
    _forwarder.reset();
    if (_punts != nullptr) {
        rte_mbuf* ms[punt_burst];
        unsigned n = 0;
        while ((n = dp::dequeue_punts(_punts, ms, punt_burst)) != 0) {
            rte_pktmbuf_free_bulk(ms, n);
        }
    }
    // Adjacencies and the SPI table name SAs: free the tables first, then the SAs (and those
    // waiting for a republication, which the publisher frees on its way out).
    if (_pub) {
        flush_inbound_sas();
    }
    _pub.reset();
    _sas.clear();
    _standby.clear();
    _server.reset();
    _exception.close();
    for (const port_rt& p : _ports) {
        dp::close_port(p.opened.id);
    }
    if (_punts != nullptr) {
        rte_ring_free(_punts);
    }
    if (_pool != nullptr) {
        rte_mempool_free(_pool);
    }
    _engine.reset();
    if (_eal_up) {
        dp::eal_cleanup();
    }
}

// ---------------------------------------------------------------- the loop

void hub::run(const std::atomic<bool>& stop, std::atomic<bool>& reload_flag) {
    unsigned idle = 0;
    auto handler = [this](std::string_view line) { return command(line); };
    uint64_t tsc_khz = std::max<uint64_t>(rte_get_tsc_hz() / 1000, 1);
    _tsc_khz = tsc_khz;
    _profile.set_tsc_khz(tsc_khz);
    // Each stage's end (TSC) and whether it did something, for _profile (pass_profile.hpp): a
    // stage is recorded only in a pass that did work, and only when it did some itself.
    constexpr size_t stages = static_cast<size_t>(pass_item::flush) + 1;  // in this order
    std::array<uint64_t, stages> at{};
    std::array<bool, stages> did{};
    while (!stop.load(std::memory_order_relaxed)) {
        uint64_t started = rte_rdtsc();
        timestamp now = now_ts();
        size_t work = 0;
        auto mark = [&](pass_item i, bool ran) {
            at[static_cast<size_t>(i)] = rte_rdtsc();
            did[static_cast<size_t>(i)] = ran;
        };
        auto stage = [&](pass_item i, size_t w) {
            work += w;
            mark(i, w != 0);
        };
        stage(pass_item::punts, poll_punts(now));
        stage(pass_item::exception, exception_pass(now));
        stage(pass_item::replicate, replicate(now));
        bool ticked = now >= _next_tick;
        if (ticked) {
            timers(now);
            _next_tick = now + tick_interval;
        }
        mark(pass_item::timers, ticked);
        stage(pass_item::ike, ike_pass(now));
        stage(pass_item::fpm, fpm_pass(now));
        if (_redist) {
            _redist->pass();
        }
        mark(pass_item::redist, _redist != nullptr);
        size_t mgmt = _mgmt->poll(handler);
        if (reload_flag.exchange(false)) {
            log::info("SIGHUP: reloading the topology");
            (void)reload();  // logs what it applied or why it refused
            ++mgmt;
        }
        stage(pass_item::mgmt, mgmt);
        bool flushed = _inbound_dirty;
        flush_inbound_sas();  // once for all of this pass's CHILD_SA installs and removals
        mark(pass_item::flush, flushed);
        if (work != 0 || ticked) {
            // How long a pass that did something held the lcore (idle passes and naps are not
            // counted: they would drown the figures), and where it went.
            _loop_time.record((at[stages - 1] - started) * 1000000 / tsc_khz);
            uint64_t from = started;
            for (size_t i = 0; i < stages; ++i) {
                if (did[i]) {
                    _profile.record(static_cast<pass_item>(i), from, at[i]);
                }
                from = at[i];
            }
        } else {
            _profile.record(pass_item::idle, started, at[stages - 1]);
        }
        if (work != 0) {
            idle = 0;
        } else if (++idle >= idle_passes_before_nap && _topo.hub.control_idle_nap_us != 0) {
            rte_delay_us_sleep(_topo.hub.control_idle_nap_us);
            _napped = true;  // seen by the next pass's punts (NHRP's figures)
            continue;
        }
        _napped = false;
    }
    log::notice("stopping");
}

size_t hub::poll_punts(timestamp now) {
    rte_mbuf* ms[punt_burst];
    unsigned n = dp::dequeue_punts(_punts, ms, punt_burst);
    const uint64_t dequeued = n != 0 ? rte_rdtsc() : 0;
    // NHRP first, then the other punts in the order dequeued: in an IKE storm a burst holds
    // NHRP packets among many IKE datagrams (each handed to the IKE thread, whose handshakes
    // take milliseconds anyway), and an NHRP reply waited for all those before it.
    dp::punt_record deferred[punt_burst];  // the others, read once, served after the NHRP ones
    unsigned rest = 0;
    unsigned nhrp = 0;
    for (unsigned i = 0; i < n; ++i) {
        dp::punt_record r = dp::read_punt(ms[i]);
        auto reason = static_cast<size_t>(r.reason);
        if (reason < _cc.punts.size()) {
            ++_cc.punts[reason];
        }
        if (r.reason != dp::punt_reason::nhrp) {
            deferred[rest++] = r;
            continue;
        }
        ++nhrp;
        serve_nhrp_punt(r, dequeued, now);
        rte_pktmbuf_free(ms[i]);
    }
    if (nhrp != 0) {
        size_t bucket = std::min<size_t>(static_cast<size_t>(std::bit_width(nhrp)) - 1,
                                         _nhrp_dequeued_with.size() - 1);
        _nhrp_dequeued_with[bucket] += nhrp;
    }
    for (unsigned i = 0; i < rest; ++i) {
        dispatch(deferred[i], now);
        rte_pktmbuf_free(deferred[i].m);
    }
    return n;
}

size_t hub::punts_between(timestamp now) {
    if (rte_ring_empty(_punts) != 0) {
        return 0;
    }
    pass_profile::scope timed(_profile, pass_item::punts_between);
    return poll_punts(now);
}

void hub::serve_nhrp_punt(const dp::punt_record& r, uint64_t dequeued, timestamp now) {
    // From the worker's burst to its reply handed to TX (or held for ARP), and that time's
    // segments: the worker's, the punt ring's, the NHRP punts dequeued before it and its own
    // handling.
    uint64_t taken = rte_rdtsc();
    on_nhrp(r, now);
    uint64_t sent = rte_rdtsc();
    _nhrp_time.record_tsc(r.rx_tsc, sent, _tsc_khz);
    if (r.enq_tsc != 0) {
        _nhrp_worker.record_tsc(r.rx_tsc, r.enq_tsc, _tsc_khz);
        _nhrp_ring.record_tsc(r.enq_tsc, dequeued, _tsc_khz);
    }
    _nhrp_burst.record_tsc(dequeued, taken, _tsc_khz);
    _nhrp_handling.record_tsc(taken, sent, _tsc_khz);
    _nhrp_after_nap += _napped ? 1 : 0;
}

void hub::dispatch(const dp::punt_record& r, timestamp now) {
    switch (r.reason) {
        case dp::punt_reason::nhrp:
            on_nhrp(r, now);
            break;
        case dp::punt_reason::arp:
            on_arp(r, now);
            break;
        case dp::punt_reason::for_us:
            on_for_us(r, now);
            break;
        case dp::punt_reason::multicast:
            on_multicast(r, now);
            break;
        case dp::punt_reason::ttl_exceeded:
            on_icmp_error(r, icmp_time_exceeded, 0, now);
            break;
        case dp::punt_reason::frag_needed:
            on_icmp_error(r, icmp_unreachable, icmp_code_frag_needed, now);
            break;
        case dp::punt_reason::glean:
            on_glean(r, now);
            break;
        case dp::punt_reason::redirect:
            on_redirect(r, now);
            break;
        default:
            break;
    }
}

namespace {

std::span<const uint8_t> data_of(const rte_mbuf* m) {
    return {rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m)};
}

}  // namespace

void hub::on_nhrp(const dp::punt_record& r, timestamp now) {
    if (_debug_nhrp) [[unlikely]] {
        const config::tunnel* t = tunnel_of(r.tunnel);
        log_nhrp_packet(nhrp::debug_direction::receive, t, r.outer_src,
                        t != nullptr ? t->nbma_source.value : 0, data_of(r.m));
    }
    nhrp::outputs o;
    {
        pass_profile::scope timed(_profile, pass_item::nhrp_server);
        o = _server->handle(r.tunnel, r.outer_src, data_of(r.m), now);
    }
    apply(std::move(o), now);
}

void hub::on_arp(const dp::punt_record& r, timestamp now) {
    auto a = parse_arp_frame(data_of(r.m));
    if (!a) {
        ++_cc.arp_bad;
        return;
    }
    neighbor_output out;
    _neighbors.on_arp(r.in_port, *a, now, out);
    on_neighbors(out);
}

uint32_t hub::address_facing(const dp::punt_record& r) const {
    if (r.tunnel != dp::no_tunnel) {
        if (const config::tunnel* t = tunnel_of(r.tunnel)) {
            return t->overlay_address.value;
        }
    }
    if (const port_rt* p = port_by_id(r.in_port)) {
        return p->cfg.address.address.value;
    }
    return 0;
}

void hub::on_for_us(const dp::punt_record& r, timestamp now) {
    auto pkt = data_of(r.m);
    auto ip = wire::parse_ipv4(pkt, wire::checksum_check::skip);
    if (!ip) {
        ++_cc.for_us_unhandled;
        return;
    }
    if (_ike && ip->hdr.protocol == wire::ip_proto::udp) {
        if (auto tunnel = ike_tunnel_for(_ike_bindings, ip->hdr.dst)) {
            auto d = ike_datagram_of(pkt, *tunnel);
            if (d) {
                if (_ike->post(std::move(d.value()))) {
                    ++_cc.ike_rx;
                } else {
                    ++_cc.ike_rx_dropped;  // the engine's peer retransmits
                }
                return;
            }
            if (d.error() != ike_rx_error::not_ike_port) {
                ++_cc.ike_rx_bad;
                return;
            }
        }
    }
    uint32_t src = ip->hdr.dst;
    if (src == 0xffffffffu || (src >> 28) == 0xe) {
        src = address_facing(r);
    }
    auto reply = icmp_echo_answer(pkt, src, _ip_id++);
    if (!reply) {
        // Not an echo request: the host's daemons may want it (BGP, echo replies to the
        // kernel's own pings, ...).
        if (!to_kernel(r, ip->hdr.dst, now)) {
            ++_cc.for_us_unhandled;
        }
        return;
    }
    ++_cc.icmp_echo_replies;
    send_ip(std::move(reply.value()), now);
}

namespace {

// Multicast replication: copies sent per loop pass (the rest of a packet's targets wait for the
// next pass, so one packet to thousands of spokes never holds the loop), and packets waiting
// to be replicated (beyond it a packet is dropped, counted): together with hub.punt-rates
// multicast they bound the control lcore's replication work.
constexpr size_t multicast_copies_per_pass = 256;

uint64_t ns_of(timestamp t) {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}

}  // namespace

void hub::on_icmp_error(const dp::punt_record& r, uint8_t type, uint8_t code, timestamp now) {
    // As IOS's `ip icmp rate-limit unreachable`: ICMP errors the hub originates share one
    // budget (hub.icmp-error-rate), so a flood of expiring or oversize packets cannot make it a
    // reflector; what is over is counted.
    if (!_icmp_error_budget.take(ns_of(now))) {
        ++_cc.icmp_errors_limited;
        return;
    }
    auto err = icmp_error_about(data_of(r.m), type, code, r.mtu, address_facing(r), _ip_id++);
    if (err) {
        ++_cc.icmp_errors_sent;
        send_ip(std::move(*err), now);
    }
}

void hub::on_multicast(const dp::punt_record& r, timestamp now) {
    auto pkt = data_of(r.m);
    auto ip = wire::parse_ipv4(pkt, wire::checksum_check::skip);
    if (!ip) {
        return;
    }
    // 224.0.0.0/24 is link-local (RFC 5771): routing protocol hellos stop at the hub, where
    // the kernel interface of the tunnel or LAN port it came by hands them to the host's
    // daemons (OSPF, EIGRP).
    if ((ip->hdr.dst & 0xffffff00u) == 0xe0000000u) {
        if (!to_kernel(r, ip->hdr.dst, now)) {
            ++_cc.multicast_link_local;
        }
        return;
    }
    if (_mcast_jobs.size() >= multicast_backlog) {
        ++_cc.multicast_backlog_dropped;
        return;
    }
    _mcast_jobs.push_back(mcast_job{bytes(pkt.begin(), pkt.end()), r.tunnel, r.outer_src, {}, {}});
}

size_t hub::replicate(timestamp now) {
    size_t visited = 0;
    while (!_mcast_jobs.empty() && visited < multicast_copies_per_pass) {
        mcast_job& j = _mcast_jobs.front();
        bool more =
            _mcast.visit(j.after, multicast_copies_per_pass - visited,
                         [&](uint16_t slot, uint32_t nbma, const multicast_targets::target& tg) {
                             ++visited;
                             if (slot == j.from_tunnel && nbma == j.from_nbma) {
                                 return;  // never back to the spoke it came from
                             }
                             if (j.only_tunnel && slot != *j.only_tunnel) {
                                 return;  // the kernel sent it out of one tunnel
                             }
                             if (send_multicast_copy(slot, nbma, tg, j.packet, now)) {
                                 ++_cc.multicast_copies;
                             }
                         });
        if (more) {
            break;
        }
        _mcast_jobs.pop_front();
    }
    return visited;
}

bool hub::send_multicast_copy(uint16_t slot, uint32_t nbma, const multicast_targets::target& tg,
                              std::span<const uint8_t> pkt, timestamp now) {
    const config::tunnel* t = tunnel_of(slot);
    if (t == nullptr) {
        return false;
    }
    // A registered spoke has an adjacency (with its SA): the control forwarder encapsulates.
    for (uint32_t overlay : tg.overlays) {
        const rib::nexthop* nh = _rib->find_nexthop(nh_key{slot, overlay});
        if (nh == nullptr) {
            continue;
        }
        if (!nh->complete) {
            break;
        }
        if (forward(pkt, nh->adj)) {
            return true;
        }
        break;
    }
    if (!t->ipsec_profile.empty()) {
        return false;
    }
    // A static multicast target with no registration: plain GRE from here.
    const port_rt* port = nullptr;
    for (const port_rt& p : _ports) {
        if (p.name == t->port) {
            port = &p;
        }
    }
    if (port == nullptr) {
        return false;
    }
    neighbor_output out;
    _neighbors.send_or_hold(
        port->opened.id, l2_hop(port->opened.id, nbma),
        gre_packet(t->nbma_source.value, nbma, t->gre_key, wire::gre_proto::ipv4, pkt, _ip_id++),
        now, out);
    on_neighbors(out);
    return true;
}

void hub::set_multicast_binding(uint16_t slot, uint32_t overlay, const binding* before,
                                const binding* after) {
    if (before != nullptr && before->multicast) {
        _mcast.remove(slot, before->nbma, overlay);
    }
    if (after != nullptr && after->multicast) {
        _mcast.add(slot, after->nbma, overlay);
    }
}

void hub::load_static_multicast() {
    std::vector<multicast_targets::key> configured;
    for (const config::tunnel& t : _topo.tunnels) {
        if (auto slot = _slots.slot(t.name)) {
            for (config::ipv4 a : t.nhrp.multicast_static) {
                configured.emplace_back(*slot, a.value);
            }
        }
    }
    _mcast.set_configured(configured);
}

void hub::on_glean(const dp::punt_record& r, timestamp now) {
    uint16_t egress = r.mtu;  // punt_record::mtu carries packet_meta::aux
    if ((egress & dp::glean_lan_port_bit) != 0) {
        const port_rt* p = port_by_id(static_cast<uint16_t>(egress & ~dp::glean_lan_port_bit));
        if (p != nullptr && p->cfg.address.length < 31) {
            const config::prefix4 subnet = p->cfg.address.subnet();
            if (r.nexthop == subnet.network.value ||
                r.nexthop == (subnet.network.value | ~subnet.mask())) {
                ++_cc.directed_broadcast;  // no ARP for it, no host route
                return;
            }
        }
        auto pkt = data_of(r.m);
        glean_lan(static_cast<uint16_t>(egress & ~dp::glean_lan_port_bit), r.nexthop,
                  bytes(pkt.begin(), pkt.end()), now);
        return;
    }
    nh_key k{egress, r.nexthop};
    if (_rib->find_nexthop(k) != nullptr && _bindings.contains({egress, r.nexthop})) {
        _rib->resolve(k);  // bound but its underlay MAC is unresolved: ask again
    } else {
        ++_cc.no_binding;
    }
}

void hub::on_redirect(const dp::punt_record& r, timestamp now) {
    auto head = data_of(r.m);
    if (head.size() < wire::ipv4_min_header_size) {
        return;
    }
    uint32_t src = wire::load_be32(head.data() + 12);
    apply(_server->on_redirect_candidate(r.tunnel, src, r.nexthop, head, now), now);
}

void hub::timers(timestamp now) {
    {
        pass_profile::scope timed(_profile, pass_item::tick_nhrp);
        apply(_server->tick(now), now);
    }
    {
        pass_profile::scope timed(_profile, pass_item::tick_neighbors);
        neighbor_output out;
        _neighbors.tick(now, out);
        on_neighbors(out);
    }
    {
        pass_profile::scope timed(_profile, pass_item::tick_reclaim);
        _pub->reclaim();
    }
    {
        pass_profile::scope timed(_profile, pass_item::tick_soft_limits);
        ike_soft_limits();
    }
    {
        pass_profile::scope timed(_profile, pass_item::tick_usage);
        ike_usage(now);
    }
    {
        pass_profile::scope timed(_profile, pass_item::tick_rekey_pairs);
        ike_rekey_pairs(now);
    }
    {
        pass_profile::scope timed(_profile, pass_item::tick_nhs_wait);
        ike_nhs_after_peer(now);
    }
    {
        pass_profile::scope timed(_profile, pass_item::tick_initiate);
        ike_initiate_due(now);
    }
    {
        pass_profile::scope timed(_profile, pass_item::tick_nbma_paths);
        expire_nbma_paths(now);
    }
    {
        pass_profile::scope timed(_profile, pass_item::tick_glean);
        withdraw_dead_gleans();
    }
    if (_telemetry && _telemetry->views_wanted()) {
        pass_profile::scope timed(_profile, pass_item::tick_telemetry_views);
        refresh_telemetry(now, true);
    }
    if (now < _next_second) {
        return;
    }
    pass_profile::scope timed(_profile, pass_item::tick_second);
    _next_second = now + 1s;
    if (uint64_t f = control::service_cpu_failures(); f != _service_cpu_failures_seen) {
        log::warning(
            "{} service thread(s) could not move to the service CPUs {} and run on the CPU they "
            "started on, the control lcore's",
            f - _service_cpu_failures_seen, control::cpu_list_text(control::service_cpus()));
        _service_cpu_failures_seen = f;
    }
    std::optional<pass_profile::scope> part(std::in_place, _profile, pass_item::tick_links);
    neighbor_output announced;
    for (port_rt& p : _ports) {
        bool up = dp::port_link(p.opened.id).up;
        if (up != p.link_up) {
            log::at_level{up ? log::level::notice : log::level::warning}("port {}: link {}", p.name,
                                                                         up ? "up" : "down");
        }
        if (up && !p.link_up) {
            _neighbors.announce(p.opened.id, now, announced);  // the link came (back) up
        }
        p.link_up = up;
    }
    on_neighbors(announced);
    part.emplace(_profile, pass_item::tick_carried);
    // Bindings carried over a reload whose owner never registered with the new server: walked
    // only once the earliest of them is due (a walk of every binding, once a second, was
    // milliseconds at 10,000 spokes).
    std::vector<std::pair<uint16_t, uint32_t>> expired;
    if (_carried_due && *_carried_due <= now) {
        _carried_due.reset();
        for (const auto& [key, b] : _bindings) {
            if (!b.carried_until) {
                continue;
            }
            if (*b.carried_until <= now) {
                expired.push_back(key);
            } else if (!_carried_due || *b.carried_until < *_carried_due) {
                _carried_due = b.carried_until;
            }
        }
    }
    std::sort(expired.begin(), expired.end());  // in key order, whatever the hash's
    for (const auto& [slot, overlay] : expired) {
        log::notice("spoke {} down on {}: carried over the reload, not registered again",
                    ip_str(overlay), tunnel_of(slot) != nullptr ? tunnel_of(slot)->name : "?");
        remove_binding(slot, overlay, now);
    }
    part.emplace(_profile, pass_item::tick_commit);
    _rib->commit();
    part.emplace(_profile, pass_item::tick_telemetry);
    refresh_telemetry(now);
}

// ---------------------------------------------------------------- NHRP outputs

void hub::apply(nhrp::outputs&& o, timestamp now) {
    for (const nhrp::refusal& r : o.refusals) {
        log_refusal(r, tunnel_of(static_cast<uint16_t>(r.tunnel)));
    }
    if (!o.events.empty()) {
        std::optional<pass_profile::scope> part(std::in_place, _profile, pass_item::nhrp_events);
        for (const nhrp::adjacency_event& e : o.events) {
            apply_event(e, now);
        }
        part.emplace(_profile, pass_item::nhrp_commit);
        _rib->commit();  // the burst's route changes, written to the FIB once
    }
    if (!o.packets.empty()) {
        pass_profile::scope timed(_profile, pass_item::nhrp_send);
        for (const nhrp::outgoing& p : o.packets) {
            send_nhrp(p.tunnel, p.dst_nbma, p.packet, now);
        }
    }
}

void hub::apply_event(const nhrp::adjacency_event& e, timestamp now) {
    auto slot = static_cast<uint16_t>(e.tunnel);
    {
        pass_profile::scope timed(_profile, pass_item::nhrp_log);
        log_binding(e, tunnel_of(slot));
    }
    if (e.change == nhrp::adjacency_change::remove) {
        remove_binding(slot, e.overlay, now);
        return;
    }
    auto [bit, fresh] = _bindings.try_emplace({slot, e.overlay});
    binding& b = bit->second;
    std::optional<binding> before;
    if (!fresh) {
        before = b;
    }
    if (!before || before->nbma != e.nbma) {
        if (before) {
            index_binding(slot, e.overlay, before->nbma, false);
        }
        index_binding(slot, e.overlay, e.nbma, true);
    }
    b.nbma = e.nbma;
    b.prefix_len = e.prefix_len;
    b.multicast = e.multicast;
    b.nat = e.nat;
    b.cause = e.cause;
    b.carried_until.reset();
    set_multicast_binding(slot, e.overlay, before ? &*before : nullptr, &b);
    if (before && before->prefix_len != b.prefix_len) {
        redistribute_binding(slot, e.overlay, *before, false);
    }
    redistribute_binding(slot, e.overlay, b, true);
    // The spoke's route, and its next hop resolved through the new NBMA (at commit).
    _rib->bind(slot, e.overlay, e.nbma);
    (void)_rib->set({rib::source::nhrp}, rib::prefix_key{e.overlay, e.prefix_len},
                    rib::route{dp::route_kind::adjacency, 0, nh_key{slot, e.overlay},
                               rib::distance::nhrp, rib::nhrp_metric});
}

void hub::remove_binding(uint16_t slot, uint32_t overlay, timestamp /*now*/) {
    auto it = _bindings.find({slot, overlay});
    if (it == _bindings.end()) {
        return;
    }
    rib::prefix_key pk{overlay, it->second.prefix_len};
    set_multicast_binding(slot, overlay, &it->second, nullptr);
    redistribute_binding(slot, overlay, it->second, false);
    index_binding(slot, overlay, it->second.nbma, false);
    _bindings.erase(it);
    // A static route's next hop may stay: unbound, it resolves again (incomplete).
    _rib->unbind(slot, overlay);
    _rib->withdraw({rib::source::nhrp}, pk);
}

void hub::send_nhrp(uint32_t tunnel, uint32_t dst_nbma, std::span<const uint8_t> packet,
                    timestamp now) {
    const config::tunnel* t = tunnel_of(static_cast<uint16_t>(tunnel));
    if (t == nullptr) {
        return;
    }
    if (_debug_nhrp) [[unlikely]] {
        log_nhrp_packet(nhrp::debug_direction::send, t, t->nbma_source.value, dst_nbma, packet);
    }
    if (!t->ipsec_profile.empty()) {
        // Encrypted with the peer's outbound SA: the payload goes through the control
        // forwarder's encap and ESP-out stages.
        send_nhrp_esp(static_cast<uint16_t>(tunnel), dst_nbma, packet, now);
        return;
    }
    auto port = std::find_if(_ports.begin(), _ports.end(),
                             [&](const port_rt& p) { return p.name == t->port; });
    if (port == _ports.end()) {
        return;
    }
    ++_cc.nhrp_sent;
    neighbor_output out;
    _neighbors.send_or_hold(port->opened.id, l2_hop(port->opened.id, dst_nbma),
                            gre_packet(t->nbma_source.value, dst_nbma, t->gre_key,
                                       wire::gre_proto::nhrp, packet, _ip_id++),
                            now, out);
    on_neighbors(out);
}

namespace {

// NHRP payloads held per peer while its ARP is pending (the server retransmits nothing: a
// lost reply costs the spoke a retry).
constexpr size_t max_held_nhrp = 8;
// A peer's NHRP path lives on this long after its last use (its adjacency slot is freed).
constexpr auto nbma_path_idle = 120s;

}  // namespace

void hub::send_nhrp_esp(uint16_t slot, uint32_t dst_nbma, std::span<const uint8_t> packet,
                        timestamp now) {
    nh_key k{slot, dst_nbma};
    // One walk of the map, whether the path is there or is made here (at the place found).
    auto it = _nbma_paths.lower_bound(k);
    if (it == _nbma_paths.end() || it->first != k) {
        auto id = alloc_adjacency();
        if (!id) {
            ++_cc.nhrp_tx_no_esp_path;
            return;
        }
        it = _nbma_paths.emplace_hint(it, k, nbma_path{});
        it->second.adj = *id;
        it->second.held.emplace_back(packet.begin(), packet.end());
        it->second.last_used = now;
        publish_nbma_path(it, now);  // sends what it holds once complete
        return;
    }
    nbma_path& p = it->second;
    p.last_used = now;
    if (p.complete) {
        if (forward(packet, p.adj, wire::gre_proto::nhrp)) {
            ++_cc.nhrp_sent;
            ++_cc.nhrp_tx_esp;
        }
        return;
    }
    if (p.held.size() >= max_held_nhrp) {
        ++_cc.nhrp_held_dropped;
        return;
    }
    p.held.emplace_back(packet.begin(), packet.end());
    publish_nbma_path(it, now);  // an SA may have appeared (reload); ARP asks again if due
}

void hub::publish_nbma_path(const nh_key& k, timestamp now) {
    if (auto it = _nbma_paths.find(k); it != _nbma_paths.end()) {
        publish_nbma_path(it, now);
    }
}

void hub::publish_nbma_path(std::map<nh_key, nbma_path>::iterator it, timestamp now) {
    const nh_key k = it->first;
    nbma_path& p = it->second;
    const config::tunnel* t = tunnel_of(k.egress);
    const port_rt* port = nullptr;
    for (const port_rt& q : _ports) {
        if (t != nullptr && q.name == t->port) {
            port = &q;
        }
    }
    neighbor_output out;
    bool complete = false;
    dp::publish_status st = dp::publish_status::ok;
    const peer_sa* sa = t != nullptr && port != nullptr && !t->ipsec_profile.empty()
                            ? find_out_sa(*t, k.addr)
                            : nullptr;
    if (sa == nullptr) {
        // No SA with this peer (or the tunnel went away): nothing can carry its NHRP.
        _cc.nhrp_tx_no_esp_path += p.held.size();
        p.held.clear();
        st = _pub->remove_adjacency(p.adj);
    } else {
        uint32_t hop = l2_hop(port->opened.id, k.addr);
        auto mac = _neighbors.lookup(port->opened.id, hop);
        if (mac) {
            dp::tunnel_adjacency_spec spec;
            spec.tunnel = k.egress;
            spec.overlay = 0;  // reached by NBMA, not by any overlay route
            spec.nbma = k.addr;
            std::memcpy(spec.underlay_mac.addr_bytes, mac->data(), 6);
            spec.out_sa = sa->out.get();
            spec.udp_encap = sa->udp_encap;
            spec.local_port = sa->local_port;
            spec.peer_port = sa->peer_port;
            st = _pub->set_tunnel_adjacency(p.adj, spec);
            complete = st == dp::publish_status::ok;
        } else {
            _neighbors.resolve(port->opened.id, hop, now, out);
            st = _pub->set_incomplete(p.adj, k.egress, port->opened.id, k.addr);
        }
    }
    if (st != dp::publish_status::ok) {
        ++_cc.publish_failed;
    }
    p.complete = complete;
    if (complete) {
        std::vector<bytes> held = std::move(p.held);
        p.held.clear();
        for (const bytes& b : held) {
            if (forward(b, p.adj, wire::gre_proto::nhrp)) {
                ++_cc.nhrp_sent;
                ++_cc.nhrp_tx_esp;
            }
        }
    }
    on_neighbors(out);
}

void hub::withdraw_dead_gleans() {
    // Host routes gleaned on a LAN whose neighbour never answered (in a storm, one per spoke
    // NBMA on an underlay subnet): a slice a tick, every route about every 5 s (a dead one
    // only costs its packets a glean and the ARP retries meanwhile). A bench storm measured
    // the whole walk at 2-4.7 ms; a hundredth of it each tick at 29-65 us (p50-p99), too much
    // for a 10 ms tick, so a five-hundredth.
    size_t budget = _rib->prefix_count(rib::source::glean) / (5s / tick_interval) + 1;
    auto [slice, next] = _rib->routes_of(rib::source::glean, _glean_next, budget);
    _glean_next = next;
    bool withdrawn = false;
    for (const auto& [k, w] : slice) {
        if (w.nh) {
            auto st = _neighbors.state(
                static_cast<uint16_t>(w.nh->egress & ~dp::glean_lan_port_bit), w.nh->addr);
            if (!st || *st == neighbor_state::failed) {
                _rib->withdraw({rib::source::glean}, k);
                withdrawn = true;
            }
        }
    }
    if (withdrawn) {
        _rib->commit();
    }
}

void hub::expire_nbma_paths(timestamp now) {
    // A slice a tick, resuming where the last one stopped: every path is visited about once a
    // second (against an idle limit of 120 s), and no pass walks them all.
    size_t budget = _nbma_paths.size() / (1s / tick_interval) + 1;
    _expire_next = expire_slice(
        _nbma_paths, _expire_next, budget,
        [now](const nbma_path& p) { return now - p.last_used >= nbma_path_idle; },
        [this](const nbma_path& p) {
            _pub->free_adjacency_id(p.adj);  // reusable once no packet can carry it
        });
}

// ---------------------------------------------------------------- routes and adjacencies

std::optional<uint32_t> hub::alloc_adjacency() { return _pub->alloc_adjacency_id(); }

uint32_t hub::l2_hop(uint16_t port, uint32_t ip) const {
    const port_rt* p = port_by_id(port);
    if (p == nullptr || p->cfg.address.subnet().contains(config::ipv4{ip}) || !p->cfg.gateway) {
        return ip;
    }
    return p->cfg.gateway->value;
}

const hub::peer_sa* hub::find_out_sa(const config::tunnel& t, uint32_t nbma) const {
    auto it = _sas.find(sa_key{t.ipsec_profile, nbma});
    return it == _sas.end() ? nullptr : it->second.get();
}

void hub::republish_all(timestamp now) {
    _rib->resolve_where([](const nh_key&, std::optional<uint32_t>) { return true; });
    std::vector<nh_key> keys;
    for (const auto& [k, p] : _nbma_paths) {
        keys.push_back(k);
    }
    for (const nh_key& k : keys) {
        publish_nbma_path(k, now);
    }
}

void hub::index_binding(uint16_t slot, uint32_t overlay, uint32_t nbma, bool add) {
    std::pair<uint16_t, uint32_t> key{slot, overlay};
    auto& keys = _bindings_by_nbma[nbma];
    auto at = std::lower_bound(keys.begin(), keys.end(), key);
    if (add && (at == keys.end() || *at != key)) {
        keys.insert(at, key);
    } else if (!add && at != keys.end() && *at == key) {
        keys.erase(at);
    }
    if (keys.empty()) {
        _bindings_by_nbma.erase(nbma);
    }
}

void hub::republish_peer(uint32_t nbma, timestamp now) {
    // The next hops bound to `nbma` (the rib binds exactly _bindings), in the order a walk of
    // the rib's next hops would take them; then the NBMA paths to it, one lookup per tunnel
    // slot that has any. Neither walks what other peers hold.
    if (auto b = _bindings_by_nbma.find(nbma); b != _bindings_by_nbma.end()) {
        std::vector<std::pair<uint16_t, uint32_t>> keys = b->second;
        for (const auto& [slot, overlay] : keys) {
            _rib->resolve(nh_key{slot, overlay});  // nothing when no route uses it
        }
    }
    std::vector<nh_key> keys;
    for (auto it = _nbma_paths.begin(); it != _nbma_paths.end();) {
        const uint16_t egress = it->first.egress;
        if (_nbma_paths.contains(nh_key{egress, nbma})) {
            keys.push_back(nh_key{egress, nbma});
        }
        if (egress == UINT16_MAX) {
            break;
        }
        it = _nbma_paths.lower_bound(nh_key{static_cast<uint16_t>(egress + 1), 0});
    }
    for (const nh_key& k : keys) {
        publish_nbma_path(k, now);
    }
}

void hub::on_neighbors(neighbor_output& out) {
    for (const auto& [port, frame] : out.frames) {
        (void)tx_frame(port, frame);
    }
    _cc.held_dropped += out.dropped;
    std::vector<neighbor_key> changed = std::move(out.changed);
    out = {};
    if (changed.empty()) {
        return;
    }
    timestamp now = now_ts();
    // A neighbour that is no port's gateway is the underlay hop of its own address only: its
    // next hops and NBMA paths are looked up (each spoke's ARP answer in a cold start walked
    // every spoke's next hop and path: O(spokes^2) over the storm). A gateway stands for every
    // NBMA beyond it: the walk.
    bool gateway = std::any_of(changed.begin(), changed.end(), [&](const neighbor_key& n) {
        return std::any_of(_ports.begin(), _ports.end(), [&](const port_rt& p) {
            return p.opened.id == n.port && p.cfg.gateway && p.cfg.gateway->value == n.ip;
        });
    });
    if (!gateway) {
        neighbors_changed(changed, now);
        return;
    }
    // Next hops whose neighbour changed: a LAN one itself, a tunnel one its NBMA's underlay hop.
    _rib->resolve_where([&](const nh_key& k, std::optional<uint32_t> nbma) {
        for (const neighbor_key& n : changed) {
            if (rib::on_lan(k)) {
                if (n.port == (k.egress & ~dp::glean_lan_port_bit) && n.ip == k.addr) {
                    return true;
                }
                continue;
            }
            const config::tunnel* t = tunnel_of(k.egress);
            if (!nbma || t == nullptr) {
                continue;
            }
            for (const port_rt& p : _ports) {
                if (p.name == t->port && p.opened.id == n.port &&
                    l2_hop(p.opened.id, *nbma) == n.ip) {
                    return true;
                }
            }
        }
        return false;
    });
    std::vector<nh_key> paths;
    for (const auto& [k, p] : _nbma_paths) {
        const config::tunnel* t = tunnel_of(k.egress);
        for (const neighbor_key& n : changed) {
            for (const port_rt& q : _ports) {
                if (t != nullptr && q.name == t->port && q.opened.id == n.port &&
                    l2_hop(q.opened.id, k.addr) == n.ip) {
                    paths.push_back(k);
                }
            }
        }
    }
    for (const nh_key& k : paths) {
        publish_nbma_path(k, now);
    }
}

void hub::neighbors_changed(const std::vector<neighbor_key>& changed, timestamp now) {
    // Whether tunnel slot `slot` leaves through the port of neighbour `n`, whose address is
    // the underlay hop to itself there.
    auto through = [&](uint16_t slot, const neighbor_key& n) {
        const config::tunnel* t = tunnel_of(slot);
        return t != nullptr && std::any_of(_ports.begin(), _ports.end(), [&](const port_rt& p) {
                   return p.name == t->port && p.opened.id == n.port &&
                          l2_hop(p.opened.id, n.ip) == n.ip;
               });
    };
    std::vector<nh_key> hops, paths;
    for (const neighbor_key& n : changed) {
        hops.push_back(nh_key{static_cast<uint16_t>(n.port | dp::glean_lan_port_bit), n.ip});
        if (auto b = _bindings_by_nbma.find(n.ip); b != _bindings_by_nbma.end()) {
            for (const auto& [slot, overlay] : b->second) {
                if (through(slot, n)) {
                    hops.push_back(nh_key{slot, overlay});
                }
            }
        }
        for (auto it = _nbma_paths.begin(); it != _nbma_paths.end();) {
            const uint16_t egress = it->first.egress;
            if (_nbma_paths.contains(nh_key{egress, n.ip}) && through(egress, n)) {
                paths.push_back(nh_key{egress, n.ip});
            }
            if (egress == UINT16_MAX) {
                break;
            }
            it = _nbma_paths.lower_bound(nh_key{static_cast<uint16_t>(egress + 1), 0});
        }
    }
    // Each once, in the order a walk of the rib's next hops (and of the paths) takes them.
    for (auto* v : {&hops, &paths}) {
        std::sort(v->begin(), v->end());
        v->erase(std::unique(v->begin(), v->end()), v->end());
    }
    for (const nh_key& k : hops) {
        _rib->resolve(k);  // nothing when no route uses it
    }
    for (const nh_key& k : paths) {
        publish_nbma_path(k, now);
    }
}

std::optional<nhrp::route> hub::route_for_nhrp(uint32_t dst) const {
    auto m = _rib->longest_match(dst);
    if (!m) {
        return std::nullopt;
    }
    const rib::route& w = m->second;
    uint8_t len = m->first.second;
    if (w.nh && !rib::on_lan(*w.nh)) {
        return nhrp::route{w.nh->addr, len};
    }
    if (w.kind == dp::route_kind::glean_tunnel) {
        return nhrp::route{dst, len};
    }
    if (w.kind == dp::route_kind::blackhole) {
        return nhrp::route{0, len, nhrp::route_via::blackhole};  // Null0: a summary, unreachable
    }
    // A LAN next hop, the hub's LAN subnet or one of its own addresses: out through the hub.
    return nhrp::route{0, len, nhrp::route_via::egress};
}

// ---------------------------------------------------------------- sending

const hub::port_rt* hub::port_by_id(uint16_t id) const {
    for (const port_rt& p : _ports) {
        if (p.opened.id == id) {
            return &p;
        }
    }
    return nullptr;
}

const config::tunnel* hub::tunnel_of(uint16_t slot) const {
    const std::string* n = _slots.name(slot);
    return n == nullptr ? nullptr : _topo.find_tunnel(*n);
}

bool hub::tx_frame(uint16_t port, std::span<const uint8_t> frame, std::span<const uint8_t> more) {
    port_rt* p = nullptr;
    for (port_rt& q : _ports) {
        if (q.opened.id == port) {
            p = &q;
        }
    }
    if (p != nullptr && p->pause_token) {
        ++_cc.tx_paused;
        return false;
    }
    rte_mbuf* m = p == nullptr ? nullptr : rte_pktmbuf_alloc(_pool);
    if (m == nullptr) {
        ++_cc.mbuf_alloc_failed;
        return false;
    }
    char* d = frame.size() + more.size() > UINT16_MAX
                  ? nullptr
                  : rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size() + more.size()));
    if (d == nullptr) {
        rte_pktmbuf_free(m);
        ++_cc.tx_failed;
        return false;
    }
    std::memcpy(d, frame.data(), frame.size());
    if (!more.empty()) {
        std::memcpy(d + frame.size(), more.data(), more.size());
    }
    if (rte_eth_tx_burst(port, p->control_queue, &m, 1) != 1) {
        rte_pktmbuf_free(m);
        ++_cc.tx_failed;
        return false;
    }
    ++_cc.tx_frames;
    ++p->control_tx;
    return true;
}

bool hub::forward(std::span<const uint8_t> packet, uint32_t adj_id, uint16_t gre_proto) {
    rte_mbuf* m = rte_pktmbuf_alloc(_pool);
    if (m == nullptr) {
        ++_cc.mbuf_alloc_failed;
        return false;
    }
    char* d = rte_pktmbuf_append(m, static_cast<uint16_t>(packet.size()));
    if (d == nullptr || !_forwarder) {
        rte_pktmbuf_free(m);
        ++_cc.forward_failed;
        return false;
    }
    std::memcpy(d, packet.data(), packet.size());
    dp::packet_meta& pm = dp::meta(m);
    pm = dp::packet_meta{};
    pm.tunnel = dp::no_tunnel;
    pm.nexthop = adj_id;
    // Starts at resolve, as on a worker; the SA's sequence numbers are claimed atomically, so
    // no worker needs to see it.
    pm.flags = static_cast<uint8_t>(dp::packet_class::routed);
    if (gre_proto != 0) {
        pm.flags = static_cast<uint8_t>(pm.flags | dp::meta_flag::gre_payload);
        pm.aux = gre_proto;
    }
    _forwarder->inject(&m, 1);
    ++_cc.forwarded;
    return true;
}

void hub::glean_lan(uint16_t port, uint32_t nexthop, std::optional<bytes> packet, timestamp now) {
    rib::prefix_key k{nexthop, 32};
    if (_rib->best(k) == nullptr) {
        auto egress = static_cast<uint16_t>(dp::glean_lan_port_bit | port);
        (void)_rib->set({rib::source::glean}, k,
                        rib::route{dp::route_kind::adjacency, 0, nh_key{egress, nexthop}});
        _rib->commit();
    }
    neighbor_output out;
    if (packet) {
        _neighbors.send_or_hold(port, nexthop, std::move(*packet), now, out);
    } else {
        _neighbors.resolve(port, nexthop, now, out);
    }
    on_neighbors(out);
}

void hub::send_ip(bytes packet, timestamp now) {
    if (packet.size() < wire::ipv4_min_header_size) {
        return;
    }
    uint32_t dst = wire::load_be32(packet.data() + 16);
    auto t = _pub->tables().routes->lookup(dst);
    if (!t) {
        // From an underlay port's address (IKE to a peer off its subnet): through its gateway.
        uint32_t src = wire::load_be32(packet.data() + 12);
        for (const port_rt& p : _ports) {
            if (p.cfg.role == config::port_role::underlay && p.cfg.gateway &&
                p.cfg.address.address.value == src) {
                neighbor_output out;
                _neighbors.send_or_hold(p.opened.id, p.cfg.gateway->value, std::move(packet), now,
                                        out);
                on_neighbors(out);
                return;
            }
        }
        ++_cc.no_route;
        return;
    }
    switch (t->kind) {
        case dp::route_kind::glean_lan:
            glean_lan(static_cast<uint16_t>(t->index), dst, std::move(packet), now);
            return;
        case dp::route_kind::glean_tunnel:
            // As a worker's glean: a bound next hop whose underlay is unresolved is asked again.
            if (nh_key k{static_cast<uint16_t>(t->index), dst};
                _rib->find_nexthop(k) != nullptr && _bindings.contains({k.egress, dst})) {
                _rib->resolve(k);
            }
            ++_cc.no_binding;
            return;
        case dp::route_kind::adjacency:
            break;
        default:
            ++_cc.no_route;
            return;
    }
    const dp::adjacency* a = _pub->tables().adjacencies->get(t->index);
    if (a == nullptr) {
        ++_cc.no_route;
        return;
    }
    if (a->kind == dp::adj_kind::incomplete) {
        if (a->tunnel == dp::no_tunnel) {
            neighbor_output out;
            _neighbors.send_or_hold(a->out_port, a->nexthop, std::move(packet), now, out);
            on_neighbors(out);
        } else {
            ++_cc.no_binding;
        }
        return;
    }
    (void)forward(packet, t->index);
}

}  // namespace dmvpn::hub
