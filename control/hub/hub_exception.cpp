// The hub's side of the exception path (exception.hpp): kernel interfaces opened from
// routing.interfaces, punted packets for the host's daemons written there, and what the kernel
// sends out of them routed (unicast) or replicated (multicast) like the hub's own packets, a
// port's multicast sent on the port to the group's MAC.
#include <fmt/format.h>

#include <rte_ethdev.h>

#include <algorithm>
#include <array>
#include <chrono>

#include "control/hub/hub.hpp"
#include "control/log.hpp"
#include "dataplane/wire/reader.hpp"

namespace dmvpn::hub {

namespace {

uint64_t ns_since_epoch(timestamp t) {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}

}  // namespace

std::optional<std::string> hub::open_exception() {
    for (const config::kernel_interface& k : _topo.routing.interfaces) {
        if (!k.create) {
            continue;
        }
        if (!k.port.empty()) {
            const port_rt* p = nullptr;
            for (const port_rt& q : _ports) {
                p = q.name == k.port ? &q : p;
            }
            if (p == nullptr) {
                return fmt::format("routing.interfaces: no port {}", k.port);
            }
            if (auto err = _exception.open(k, exception_owner{true, p->opened.id},
                                           p->cfg.address.address.value, p->cfg.address.length,
                                           p->cfg.mtu, _pool)) {
                return *err;
            }
            log::info("exception path: kernel interface {} for port {} ({}/{})", k.name, p->name,
                      config::to_string(p->cfg.address.address), p->cfg.address.length);
            // The LAN's link-local multicast (OSPF's 01:00:5e:00:00:05 / 06, ...) must pass the
            // NIC's filter to reach the workers, which punt it to this interface.
            if (int rc = rte_eth_allmulticast_enable(p->opened.id); rc != 0) {
                log::warning(
                    "exception path: port {}: all-multicast not enabled ({}): "
                    "link-local multicast may not reach {}",
                    p->name, rc, k.name);
            }
            continue;
        }
        const config::tunnel* t = _topo.find_tunnel(k.tunnel);
        auto slot = _slots.slot(k.tunnel);
        if (t == nullptr || !slot) {
            return fmt::format("routing.interfaces: no tunnel {}", k.tunnel);
        }
        if (auto err = _exception.open(k, exception_owner{false, *slot}, t->overlay_address.value,
                                       t->overlay_prefix.length, t->ip_mtu, _pool)) {
            return *err;
        }
        log::info("exception path: kernel interface {} for tunnel {} ({}/{})", k.name, t->name,
                  config::to_string(t->overlay_address), t->overlay_prefix.length);
    }
    return std::nullopt;
}

bool hub::to_kernel(const dp::punt_record& r, uint32_t dst, timestamp now) {
    // The tunnel it came through; else the interface holding the address it names; else the
    // interface of the port it came in by.
    exception_iface* e = nullptr;
    if (r.tunnel != dp::no_tunnel) {
        e = _exception.by_slot(r.tunnel);
    } else {
        e = _exception.by_address(dst);
        e = e != nullptr ? e : _exception.by_port(r.in_port);
    }
    if (e == nullptr) {
        return false;
    }
    // Dropped there: counted there.
    if (_exception.to_kernel(*e, r.m, ns_since_epoch(now)) && (dst >> 28) == 0xe) {
        ++e->c.to_kernel_multicast;
    }
    return true;
}

bool hub::frame_to_port(const exception_iface& e, std::span<const uint8_t> pkt,
                        const std::array<uint8_t, 6>& mac) {
    const port_rt* p = port_by_id(e.owner.id);
    if (p == nullptr) {
        return false;
    }
    // To `mac`, from the port's, IPv4.
    std::array<uint8_t, 14> eth{};
    std::copy(mac.begin(), mac.end(), eth.begin());
    std::copy(p->opened.mac.begin(), p->opened.mac.end(), eth.begin() + 6);
    eth[12] = 0x08;
    return tx_frame(e.owner.id, eth, pkt);
}

size_t hub::exception_pass(timestamp now) {
    if (_exception.interfaces().empty()) {
        return 0;
    }
    return _exception.poll(
        ns_since_epoch(now), [&](exception_iface& e, std::span<const uint8_t> pkt) {
            uint32_t dst = wire::load_be32(pkt.data() + 16);
            bool multicast = (dst >> 28) == 0xe;
            // 255.255.255.255 or the subnet's directed broadcast (RIPv1, DHCP, NetBIOS): through
            // the FIB it would find no route or ARP for an address nobody owns.
            bool broadcast = !multicast && ipv4_broadcast(dst, e.address, e.prefix_len);
            if (broadcast) {
                ++e.c.from_kernel_broadcast;
            } else if (multicast) {
                ++e.c.from_kernel_multicast;
            }
            if ((multicast || broadcast) && e.owner.is_port) {
                // OSPF / EIGRP hellos and other multicast out of a LAN port's interface: one
                // frame on the port's control TX queue, to the group's MAC; a broadcast to
                // ff:ff:ff:ff:ff:ff.
                if (!frame_to_port(e, pkt, broadcast ? broadcast_mac : ipv4_multicast_mac(dst))) {
                    ++e.c.from_kernel_unsent;  // paused, no mbuf, TX queue full
                }
                return;
            }
            if (multicast || broadcast) {
                // OSPF / EIGRP hellos and other multicast out of the tunnel: to the spokes of the
                // multicast map on that tunnel, with the replication's own bounds. A broadcast
                // goes the same way (IOS's pseudo-broadcast over `ip nhrp map multicast`).
                if (_mcast_jobs.size() >= multicast_backlog) {
                    ++_cc.multicast_backlog_dropped;
                    return;
                }
                _mcast_jobs.push_back(
                    mcast_job{bytes(pkt.begin(), pkt.end()), e.owner.id, 0, {}, e.owner.id});
                return;
            }
            // Unicast: through the FIB (a spoke's /32 from NHRP, glean when unknown), handed to
            // the worker that owns the adjacency's SA for GRE (+ ESP).
            send_ip(bytes(pkt.begin(), pkt.end()), now);
        });
}

}  // namespace dmvpn::hub
