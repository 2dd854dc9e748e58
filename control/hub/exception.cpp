// The exception path's kernel interfaces (exception.hpp). Runs on the control lcore only.
#include "control/hub/exception.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace dmvpn::hub {

namespace {

// RX: net_tun holds this many mbufs per queue for its scatter list; TX writes at once.
constexpr uint16_t ring_size = 64;

constexpr uint64_t ns_per_second = 1000000000ull;

std::string vdev_name(exception_owner o) {
    return fmt::format("net_tun_dmvpn{}{}", o.is_port ? 'p' : 't', o.id);
}

// Sets `ifname`'s IPv4 address and prefix and brings it up: the kernel then holds a connected
// route for the tunnel's overlay prefix through it. Unnumbered: the address as a /32 and the
// prefix as a route out of the interface instead (gone with the interface). Error: which step
// failed and errno's text.
std::optional<std::string> configure_kernel_side(const std::string& ifname, uint32_t address,
                                                 uint8_t prefix_len, bool unnumbered) {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return fmt::format("socket: {}", std::strerror(errno));
    }
    auto step = [&](unsigned long req, ifreq& r, const char* what) -> std::optional<std::string> {
        if (::ioctl(fd, req, &r) != 0) {
            return fmt::format("{}: {}", what, std::strerror(errno));
        }
        return std::nullopt;
    };
    auto sin = [](uint32_t a) {
        sockaddr_in s{};
        s.sin_family = AF_INET;
        s.sin_addr.s_addr = htonl(a);
        return s;
    };
    ifreq r{};
    std::strncpy(r.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
    std::optional<std::string> err;
    sockaddr_in a = sin(address);
    std::memcpy(&r.ifr_addr, &a, sizeof a);
    err = step(SIOCSIFADDR, r, "set address");
    uint32_t mask = prefix_len == 0 ? 0 : ~uint32_t{0} << (32 - prefix_len);
    if (!err) {
        sockaddr_in m = sin(unnumbered ? ~uint32_t{0} : mask);
        std::memcpy(&r.ifr_netmask, &m, sizeof m);
        err = step(SIOCSIFNETMASK, r, "set netmask");
    }
    if (!err) {
        err = step(SIOCGIFFLAGS, r, "read flags");
    }
    if (!err) {
        r.ifr_flags = static_cast<short>(r.ifr_flags | IFF_UP);
        err = step(SIOCSIFFLAGS, r, "link up");
    }
    if (!err && unnumbered && prefix_len < 32) {
        rtentry rt{};
        sockaddr_in dst = sin(address & mask);
        sockaddr_in genmask = sin(mask);
        std::memcpy(&rt.rt_dst, &dst, sizeof dst);
        std::memcpy(&rt.rt_genmask, &genmask, sizeof genmask);
        rt.rt_flags = RTF_UP;
        rt.rt_dev = r.ifr_name;
        if (::ioctl(fd, SIOCADDRT, &rt) != 0 && errno != EEXIST) {
            err = fmt::format("route to the prefix: {}", std::strerror(errno));
        }
    }
    ::close(fd);
    // IPv6 on an overlay the hub forwards as IPv4 only would be router solicitations the hub
    // drops and counts: turn it off where the kernel has it (best effort).
    std::ofstream(fmt::format("/proc/sys/net/ipv6/conf/{}/disable_ipv6", ifname)) << "1\n";
    return err;
}

}  // namespace

std::optional<std::string> exception_path::open(const config::kernel_interface& k,
                                                exception_owner owner, uint32_t address,
                                                uint8_t prefix_len, uint16_t mtu,
                                                rte_mempool* pool) {
    std::string name = vdev_name(owner);
    std::string what = owner.is_port ? "port " + k.port : "tunnel " + k.tunnel;
    std::string args = fmt::format("iface={}", k.name);
    if (rte_dev_probe(fmt::format("{},{}", name, args).c_str()) != 0) {
        return fmt::format(
            "kernel interface {} ({}): net_tun refused \"{},{}\" ({}); the hub "
            "needs CAP_NET_ADMIN and /dev/net/tun, and the name must be free",
            k.name, what, name, args, rte_strerror(rte_errno));
    }
    uint16_t port = 0;
    if (rte_eth_dev_get_port_by_name(name.c_str(), &port) != 0) {
        return fmt::format("kernel interface {}: no ethdev named {}", k.name, name);
    }
    auto fail = [&](const char* step, int rc) {
        rte_eth_dev_stop(port);
        rte_eth_dev_close(port);  // net_tun removes the kernel interface
        return rc == 0 ? fmt::format("kernel interface {} ({}): {}", k.name, what, step)
                       : fmt::format("kernel interface {} ({}): {} failed ({})", k.name, what, step,
                                     rte_strerror(rc < 0 ? -rc : rc));
    };
    rte_eth_conf conf{};
    int socket = rte_eth_dev_socket_id(port);
    socket = socket < 0 ? 0 : socket;
    if (int rc = rte_eth_dev_configure(port, 1, 1, &conf); rc != 0) {
        return fail("configure", rc);
    }
    if (int rc = rte_eth_rx_queue_setup(port, 0, ring_size, static_cast<unsigned>(socket), nullptr,
                                        pool);
        rc != 0) {
        return fail("RX queue", rc);
    }
    if (int rc = rte_eth_tx_queue_setup(port, 0, ring_size, static_cast<unsigned>(socket), nullptr);
        rc != 0) {
        return fail("TX queue", rc);
    }
    if (int rc = rte_eth_dev_set_mtu(port, mtu); rc != 0 && rc != -ENOTSUP) {
        return fail("MTU", rc);
    }
    if (int rc = rte_eth_dev_start(port); rc != 0) {
        return fail("start", rc);
    }
    if (auto err = configure_kernel_side(k.name, address, prefix_len, k.unnumbered)) {
        return fail(err->c_str(), 0);
    }
    exception_iface e;
    e.cfg = k;
    e.owner = owner;
    e.port_id = port;
    e.address = address;
    e.prefix_len = prefix_len;
    e.to_kernel_budget = dp::token_bucket(k.rate, dp::burst_of(k.rate), ns_per_second);
    e.from_kernel_budget = dp::token_bucket(k.rate, dp::burst_of(k.rate), ns_per_second);
    _ifaces.push_back(std::move(e));
    return std::nullopt;
}

void exception_path::close() noexcept {
    for (const exception_iface& e : _ifaces) {
        rte_eth_dev_stop(e.port_id);
        rte_eth_dev_close(e.port_id);  // net_tun removes the kernel interface
    }
    _ifaces.clear();
}

exception_iface* exception_path::by_slot(uint16_t slot) noexcept {
    for (exception_iface& e : _ifaces) {
        if (!e.owner.is_port && e.owner.id == slot) {
            return &e;
        }
    }
    return nullptr;
}

exception_iface* exception_path::by_port(uint16_t port_id) noexcept {
    for (exception_iface& e : _ifaces) {
        if (e.owner.is_port && e.owner.id == port_id) {
            return &e;
        }
    }
    return nullptr;
}

exception_iface* exception_path::by_address(uint32_t address) noexcept {
    for (exception_iface& e : _ifaces) {
        if (e.address == address) {
            return &e;
        }
    }
    return nullptr;
}

bool exception_path::to_kernel(exception_iface& e, rte_mbuf* m, uint64_t now_ns) noexcept {
    if (!e.to_kernel_budget.take(now_ns)) {
        ++e.c.to_kernel_limited;
        return false;
    }
    // net_tun writes the mbuf's bytes (an IPv4 packet) and frees it; the punt loop frees its
    // own reference after this.
    rte_mbuf_refcnt_update(m, 1);
    m->ol_flags &= ~RTE_MBUF_F_TX_OFFLOAD_MASK;
    if (rte_eth_tx_burst(e.port_id, 0, &m, 1) != 1) {
        rte_mbuf_refcnt_update(m, -1);
        ++e.c.to_kernel_full;
        return false;
    }
    ++e.c.to_kernel;
    return true;
}

uint16_t exception_path::rx(exception_iface& e, rte_mbuf** ms) noexcept {
    return rte_eth_rx_burst(e.port_id, 0, ms, exception_burst);
}

exception_counters exception_path::total() const noexcept {
    exception_counters t;
    for (const exception_iface& e : _ifaces) {
        t.to_kernel += e.c.to_kernel;
        t.to_kernel_multicast += e.c.to_kernel_multicast;
        t.to_kernel_limited += e.c.to_kernel_limited;
        t.to_kernel_full += e.c.to_kernel_full;
        t.from_kernel += e.c.from_kernel;
        t.from_kernel_limited += e.c.from_kernel_limited;
        t.from_kernel_not_ipv4 += e.c.from_kernel_not_ipv4;
        t.from_kernel_multicast += e.c.from_kernel_multicast;
        t.from_kernel_broadcast += e.c.from_kernel_broadcast;
        t.from_kernel_unsent += e.c.from_kernel_unsent;
    }
    return t;
}

bool exception_path::plausible_ipv4(std::span<const uint8_t> p) noexcept {
    if (p.size() < 20 || (p[0] >> 4) != 4 || (p[0] & 0xf) < 5) {
        return false;
    }
    size_t ihl = static_cast<size_t>(p[0] & 0xf) * 4;
    size_t total = total_length(p);
    return total >= ihl && total <= p.size();
}

size_t exception_path::total_length(std::span<const uint8_t> p) noexcept {
    return (static_cast<size_t>(p[2]) << 8) | p[3];
}

}  // namespace dmvpn::hub
