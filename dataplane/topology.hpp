// What the workers know of the hub's tunnels and ports: an immutable snapshot the control lcore
// publishes through RCU (publisher.hpp) and replaces whole.
#pragma once

#include <rte_ether.h>

#include <array>
#include <cstdint>

#include "dataplane/stats.hpp"

namespace dmvpn::dp {

inline constexpr uint16_t max_tunnels = 64;
inline constexpr uint16_t max_nbma = 16;

// Outer DF bit: copied from the inner packet (the Cisco default), always set, or always clear.
enum class df_policy : uint8_t { copy, set, clear };

struct tunnel_info {
    uint32_t nbma = 0;     // the hub's underlay (NBMA) address on this tunnel
    uint32_t overlay = 0;  // the hub's own tunnel address
    uint32_t key = 0;      // GRE key (RFC 2890) when has_key
    bool has_key = false;
    bool ipsec = false;  // IPsec profile: only ESP-protected GRE is accepted
    uint8_t ttl = 255;   // outer TTL
    df_policy df = df_policy::copy;
    uint16_t ip_mtu = 1400;  // largest inner IPv4 packet sent through the tunnel
    uint16_t tcp_mss = 0;    // TCP MSS clamp on SYNs in and out of the tunnel; 0 = off
    uint16_t underlay_port = 0;
    // Strict reverse path: a decapsulated packet's inner source must route to an adjacency on
    // this tunnel whose NBMA address is the packet's outer source (else spoofed_source).
    bool verify_source = false;
};

struct port_info {
    rte_ether_addr mac{};
    uint16_t mtu = 1500;
    // An underlay port that may not route: IPv4 arriving here that is neither tunnel traffic
    // nor addressed to the hub is dropped (underlay_transit).
    bool drop_transit = false;
    // The port has a kernel interface (routing.interfaces): link-local multicast arriving here
    // (224.0.0.0/24: OSPF, EIGRP hellos) is punted for it even when drop_transit.
    bool link_local_to_host = false;
};

// Addresses are in host byte order.
struct topology {
    std::array<tunnel_info, max_tunnels> tunnels{};
    uint16_t n_tunnels = 0;
    std::array<port_info, max_ports> ports{};
    uint16_t n_ports = 0;

    // The tunnel that owns GRE arriving at nbma_dst with this key (or with no key): returns its
    // index, or -1. A keyed packet never matches a keyless tunnel and the reverse.
    int find_tunnel(uint32_t nbma_dst, bool has_key, uint32_t key) const noexcept {
        for (uint16_t i = 0; i < n_tunnels; ++i) {
            const tunnel_info& t = tunnels[i];
            if (t.nbma == nbma_dst && t.has_key == has_key && (!has_key || t.key == key)) {
                return i;
            }
        }
        return -1;
    }
    bool is_nbma(uint32_t addr) const noexcept {
        for (uint16_t i = 0; i < n_tunnels; ++i) {
            if (tunnels[i].nbma == addr) {
                return true;
            }
        }
        return false;
    }
};

}  // namespace dmvpn::dp
