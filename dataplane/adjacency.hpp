// Adjacencies: what a FIB next hop resolves to (overlay next hop -> NBMA address, outbound SA and
// a prebuilt encapsulation; LAN next hop -> neighbour MAC), published immutable through RCU.
#pragma once

#include <rte_ether.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "dataplane/topology.hpp"

namespace dmvpn::crypto {
class sa;
}

namespace dmvpn::dp {

enum class adj_kind : uint8_t {
    incomplete,  // known next hop, not resolved yet: packets glean
    tunnel,      // through a tunnel to a spoke's NBMA address
    lan,         // to a neighbour on a LAN port
};

// Never modified once published: the control lcore builds a new one and swaps the slot, and
// frees the old one after every worker passed a quiescent point.
struct alignas(64) adjacency {
    // First cache line: every field a forwarded packet reads (resolve, mtu, mss_clamp, encap,
    // esp_out, tx), so a cold adjacency costs one miss.
    crypto::sa* out_sa = nullptr;  // tunnel with IPsec: the outbound SA
    adj_kind kind = adj_kind::incomplete;
    uint8_t l3_len = 0;  // tunnel: bytes of outer IPv4 + GRE in l3[]
    df_policy df = df_policy::copy;
    uint8_t ttl = 0;
    uint16_t out_port = 0;
    uint16_t tunnel = 0xffff;             // tunnel index (tunnel / incomplete on a tunnel)
    uint16_t mtu = 0;                     // largest (inner) IPv4 packet that may leave this way
    uint16_t tcp_mss = 0;                 // the egress tunnel's clamp
    uint8_t eth[RTE_ETHER_HDR_LEN] = {};  // next hop MAC, port MAC, type IPv4
    // Outer IPv4 header + GRE header (+ key). Length and ID are 0; the checksum field holds
    // the folded ones'-complement sum of the header's fixed words, to which encap adds length,
    // ID (and a copied DF) per packet.
    uint8_t l3[28] = {};
    // Second cache line: for the control lcore and for gleaning.
    uint32_t nexthop = 0;  // overlay next hop, or the LAN neighbour's address
    uint32_t nbma = 0;     // tunnel: the spoke's NBMA address
    // UDP-encapsulated ESP (RFC 3948, a peer behind NAT): the ports esp_out puts around ESP;
    // natt_dport 0: plain ESP. Read only after encryption, for packets with an out_sa.
    uint16_t natt_sport = 0;
    uint16_t natt_dport = 0;

    // On hugepages (rte_malloc) when DPDK has memory, the C++ heap otherwise: workers read
    // adjacencies at random, and on 4 KiB pages 10,000 of them cost TLB misses too.
    static void* operator new(size_t bytes);
    static void operator delete(void* p) noexcept;
};
static_assert(sizeof(adjacency) <= 128);
static_assert(offsetof(adjacency, l3) + sizeof(adjacency::l3) <= 64,
              "the forwarding fields share one cache line");

// Workers: starts loading the adjacency's forwarding line.
inline void prefetch_adjacency(const adjacency* a) noexcept { __builtin_prefetch(a, 0, 3); }

// What the control lcore states; the publisher builds the adjacency (templates included).
struct tunnel_adjacency_spec {
    uint16_t tunnel = 0;
    uint32_t overlay = 0;           // the spoke's tunnel address
    uint32_t nbma = 0;              // the spoke's NBMA address (the NAT's outside one if NATed)
    rte_ether_addr underlay_mac{};  // MAC of the underlay next hop towards nbma
    crypto::sa* out_sa = nullptr;   // required when the tunnel has IPsec
    // The SA's peer is behind NAT: ESP leaves in UDP from local_port to peer_port, and the
    // adjacency's MTU leaves room for the 8 bytes.
    bool udp_encap = false;
    uint16_t local_port = 4500;
    uint16_t peer_port = 4500;
};

// The largest inner IPv4 packet that fits `port_mtu` once GRE (`gre_len` bytes), ESP under
// `out_sa` at its worst (header, IV, padding to its alignment, trailer, ICV), the outer IPv4
// header and, when `udp_encap`, the 8-byte UDP header are added (RFC 3948 section 2.1).
uint32_t esp_inner_mtu(uint32_t port_mtu, uint32_t gre_len, const crypto::sa& out_sa,
                       bool udp_encap) noexcept;

struct lan_adjacency_spec {
    uint16_t port = 0;
    uint32_t address = 0;
    rte_ether_addr mac{};
};

// Builds an adjacency from a spec and the topology it refers to; nullptr when the spec names a
// tunnel or port the topology lacks. Allocates: control lcore only.
std::unique_ptr<adjacency> build_tunnel_adjacency(const topology& topo,
                                                  const tunnel_adjacency_spec& spec);
std::unique_ptr<adjacency> build_lan_adjacency(const topology& topo,
                                               const lan_adjacency_spec& spec);
std::unique_ptr<adjacency> build_incomplete_adjacency(uint16_t tunnel, uint16_t port,
                                                      uint32_t nexthop);

// Slots the FIB's next hops index. Workers read a slot once per packet (acquire); only the
// publisher writes.
class adjacency_table {
public:
    explicit adjacency_table(uint32_t capacity);
    uint32_t capacity() const noexcept { return _capacity; }
    const adjacency* get(uint32_t id) const noexcept {
        return id < _capacity ? _slots[id].load(std::memory_order_acquire) : nullptr;
    }
    // Workers: starts loading the slot of `id` (a stage before get()).
    void prefetch(uint32_t id) const noexcept {
        if (id < _capacity) {
            __builtin_prefetch(&_slots[id], 0, 3);
        }
    }
    // Publisher only: installs a (fully built) adjacency and returns the one it replaced.
    const adjacency* exchange(uint32_t id, const adjacency* a) noexcept {
        return _slots[id].exchange(a, std::memory_order_acq_rel);
    }

private:
    uint32_t _capacity;
    std::atomic<const adjacency*>* _slots;  // on hugepages when DPDK has memory
    bool _slots_on_heap = false;

public:
    ~adjacency_table();
    adjacency_table(const adjacency_table&) = delete;
    adjacency_table& operator=(const adjacency_table&) = delete;
};

}  // namespace dmvpn::dp
