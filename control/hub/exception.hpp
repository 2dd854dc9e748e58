// The exception path: a kernel TUN interface per tunnel (DPDK's net_tun), through which daemons
// on the hub's host (FRR's bgpd, ospfd) reach the spokes. The control lcore alone touches these
// ports: it writes there what was punted to the hub's own addresses and the hub does not answer
// itself, and reads what the kernel sends out of them. Workers never see them.
#pragma once

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "config/topology.hpp"
#include "dataplane/token_bucket.hpp"

namespace dmvpn::hub {

// The Ethernet address of IPv4 multicast group `group` (RFC 1112 section 6.4): 01:00:5e and
// the group's low 23 bits.
constexpr std::array<uint8_t, 6> ipv4_multicast_mac(uint32_t group) noexcept {
    return {0x01,
            0x00,
            0x5e,
            static_cast<uint8_t>((group >> 16) & 0x7f),
            static_cast<uint8_t>(group >> 8),
            static_cast<uint8_t>(group)};
}

// Whether the kernel's packet to `dst` out of an interface with `address`/`prefix_len` is a
// broadcast: the limited broadcast 255.255.255.255 or the subnet's directed broadcast (all
// host bits set; a /31 or /32 has none, RFC 3021).
constexpr bool ipv4_broadcast(uint32_t dst, uint32_t address, uint8_t prefix_len) noexcept {
    if (dst == 0xffffffffu) {
        return true;
    }
    if (prefix_len > 30) {
        return false;
    }
    uint32_t host = prefix_len == 0 ? ~uint32_t{0} : ~uint32_t{0} >> prefix_len;
    return (dst & ~host) == (address & ~host) && (dst & host) == host;
}

// Packets a loop pass reads from one kernel interface: bounds the control lcore's work there.
inline constexpr uint16_t exception_burst = 32;

struct exception_counters {
    uint64_t to_kernel = 0;             // written to the kernel interface
    uint64_t to_kernel_multicast = 0;   // of to_kernel: link-local multicast (224.0.0.0/24)
    uint64_t to_kernel_limited = 0;     // over the interface's rate: dropped
    uint64_t to_kernel_full = 0;        // the kernel's queue refused it (full or down): dropped
    uint64_t from_kernel = 0;           // read from the kernel interface and sent on
    uint64_t from_kernel_limited = 0;   // over the interface's rate: dropped
    uint64_t from_kernel_not_ipv4 = 0;  // IPv6 or not a valid IPv4 header: dropped
    // Of from_kernel: multicast, replicated through the multicast map (a tunnel's interface)
    // or sent on the port to the group's MAC (a port's).
    uint64_t from_kernel_multicast = 0;
    // Of from_kernel: broadcast (255.255.255.255 or the subnet's), sent on the port to
    // ff:ff:ff:ff:ff:ff (a port's) or replicated like multicast (a tunnel's).
    uint64_t from_kernel_broadcast = 0;
    // Of multicast and broadcast: a port's the port did not take (paused, TX full).
    uint64_t from_kernel_unsent = 0;
};

// What a kernel interface stands for: a tunnel (slot) or one of the hub's ports (its ethdev id).
struct exception_owner {
    bool is_port = false;
    uint16_t id = 0;  // tunnel slot, or the hub port's ethdev port id
};

// One kernel interface, bound to a tunnel slot or a hub port.
struct exception_iface {
    config::kernel_interface cfg;
    exception_owner owner;
    uint16_t port_id = 0;  // the net_tun ethdev
    uint32_t address = 0;  // the tunnel's overlay address, set on the kernel side
    uint8_t prefix_len = 0;
    dp::token_bucket to_kernel_budget;    // nanoseconds of the steady clock
    dp::token_bucket from_kernel_budget;  // nanoseconds of the steady clock
    exception_counters c;
};

class exception_path {
public:
    exception_path() = default;
    exception_path(const exception_path&) = delete;
    exception_path& operator=(const exception_path&) = delete;
    ~exception_path() { close(); }

    // Creates the kernel interface `k` for `owner` (EAL up): probes net_tun, one RX and one TX
    // queue, MTU, the address and prefix on the kernel side, link up. The error says what
    // failed.
    std::optional<std::string> open(const config::kernel_interface& k, exception_owner owner,
                                    uint32_t address, uint8_t prefix_len, uint16_t mtu,
                                    rte_mempool* pool);
    void close() noexcept;

    // The interface of a tunnel slot, of a hub port (ethdev id), or carrying `address`.
    exception_iface* by_slot(uint16_t slot) noexcept;
    exception_iface* by_port(uint16_t port_id) noexcept;
    exception_iface* by_address(uint32_t address) noexcept;

    // Hands the punted mbuf (data at its IPv4 header) to the kernel: a reference is taken, the
    // caller still frees its own. Never waits: over the rate or a full queue drops and counts.
    bool to_kernel(exception_iface& e, rte_mbuf* m, uint64_t now_ns) noexcept;

    // Reads up to exception_burst packets from each interface; calls f(iface, packet) for each
    // IPv4 packet within the rate, then frees it. Returns how many were read.
    template <typename F>
    size_t poll(uint64_t now_ns, F&& f) {
        size_t n = 0;
        for (exception_iface& e : _ifaces) {
            rte_mbuf* ms[exception_burst];
            uint16_t got = rx(e, ms);
            for (uint16_t i = 0; i < got; ++i) {
                std::span<const uint8_t> p{rte_pktmbuf_mtod(ms[i], const uint8_t*),
                                           rte_pktmbuf_data_len(ms[i])};
                if (!e.from_kernel_budget.take(now_ns)) {
                    ++e.c.from_kernel_limited;
                } else if (!plausible_ipv4(p)) {
                    ++e.c.from_kernel_not_ipv4;
                } else {
                    ++e.c.from_kernel;
                    f(e, p.first(total_length(p)));
                }
                rte_pktmbuf_free(ms[i]);
            }
            n += got;
        }
        return n;
    }

    const std::vector<exception_iface>& interfaces() const noexcept { return _ifaces; }
    exception_counters total() const noexcept;

    // A whole IPv4 header that fits the bytes read (version 4, IHL >= 5, total length within).
    static bool plausible_ipv4(std::span<const uint8_t> p) noexcept;

private:
    uint16_t rx(exception_iface& e, rte_mbuf** ms) noexcept;
    static size_t total_length(std::span<const uint8_t> p) noexcept;

    std::vector<exception_iface> _ifaces;
};

}  // namespace dmvpn::hub
