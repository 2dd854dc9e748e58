// routing.redistribute-nhrp: each registered spoke's route into the host kernel's routing table
// through the thread dmvpn-redist (control/rib/redistribute.hpp), out of its tunnel's kernel
// interface (routing.interfaces), so that FRR redistributes it (`redistribute kernel`).
#include <net/if.h>

#include <cerrno>
#include <cstring>

#include <fmt/core.h>

#include "control/hub/hub.hpp"
#include "control/log.hpp"

namespace dmvpn::hub {

std::optional<std::string> hub::start_redistribute() {
    if (!_topo.routing.redistribute_nhrp) {
        return std::nullopt;
    }
    for (const exception_iface& e : _exception.interfaces()) {
        if (e.owner.is_port) {
            continue;
        }
        unsigned idx = if_nametoindex(e.cfg.name.c_str());
        if (idx == 0) {
            return fmt::format("routing.redistribute-nhrp: kernel interface {}: {}", e.cfg.name,
                               std::strerror(errno));
        }
        _redist_ifindex[e.owner.id] = idx;
    }
    auto kernel = rib::knl::open_netlink();
    if (!kernel) {
        return fmt::format("routing.redistribute-nhrp: rtnetlink socket: {} (needs CAP_NET_ADMIN)",
                           std::strerror(errno));
    }
    rib::redistribute_options o;
    o.protocol = _topo.routing.redistribute_protocol;
    _redist = std::make_unique<rib::redistributor>(o, std::move(kernel));
    log::info("redistribute nhrp: registered spokes into the kernel's table, protocol {}",
              o.protocol);
    return std::nullopt;
}

void hub::redistribute_binding(uint16_t slot, uint32_t overlay, const binding& b, bool up) {
    if (!_redist) {
        return;
    }
    auto it = _redist_ifindex.find(slot);
    if (it == _redist_ifindex.end()) {
        return;  // a tunnel without a kernel interface
    }
    uint8_t len = b.prefix_len;
    uint32_t mask = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
    rib::kprefix p{overlay & mask, len};
    // Registrations only (also those carried over a reload); static maps are configuration.
    if (!up || b.cause == nhrp::change_cause::static_map) {
        _redist->withdraw(p);
        return;
    }
    const config::tunnel* t = tunnel_of(slot);
    if (len < 32 && t != nullptr && (t->overlay_address.value & mask) == p.first) {
        return;  // a prefix holding the hub's own address: not a spoke's to announce
    }
    rib::knl::kroute r;
    r.dst = p.first;
    r.len = len;
    r.gateway = len == 32 ? 0 : overlay;  // the /32 on link; a prefix through the spoke
    r.ifindex = it->second;
    _redist->offer(r);
}

}  // namespace dmvpn::hub
