// Building adjacencies and their encapsulation templates (control lcore).
#include "dataplane/adjacency.hpp"

#include <rte_ip.h>
#include <rte_malloc.h>
#include <rte_memory.h>

#include <algorithm>
#include <cstring>

#include "crypto/sa.hpp"
#include "dataplane/wire/reader.hpp"

namespace dmvpn::dp {

namespace {

constexpr uint16_t gre_proto_ipv4 = 0x0800;
constexpr uint16_t gre_flag_key = 0x2000;
constexpr uint8_t ip_proto_gre = 47;

void fill_eth(uint8_t* eth, const rte_ether_addr& dst, const rte_ether_addr& src) {
    std::memcpy(eth, dst.addr_bytes, RTE_ETHER_ADDR_LEN);
    std::memcpy(eth + RTE_ETHER_ADDR_LEN, src.addr_bytes, RTE_ETHER_ADDR_LEN);
    wire::store_be16(eth + 2 * RTE_ETHER_ADDR_LEN, RTE_ETHER_TYPE_IPV4);
}

}  // namespace

uint32_t esp_inner_mtu(uint32_t port_mtu, uint32_t gre_len, const crypto::sa& out_sa,
                       bool udp_encap) noexcept {
    uint32_t fixed = sizeof(rte_ipv4_hdr) + (udp_encap ? 8u : 0u) + 8u /* SPI, sequence */ +
                     out_sa.iv_len() + out_sa.icv_len();
    if (port_mtu <= fixed) {
        return 0;
    }
    uint32_t align = std::max<uint32_t>(out_sa.pad_align(), 4);
    uint32_t padded = (port_mtu - fixed) / align * align;  // the ciphertext's largest length
    uint32_t trailer = 2 + gre_len;                        // pad length, next header; GRE
    return padded > trailer ? padded - trailer : 0;
}

std::unique_ptr<adjacency> build_tunnel_adjacency(const topology& topo,
                                                  const tunnel_adjacency_spec& spec) {
    if (spec.tunnel >= topo.n_tunnels) {
        return nullptr;
    }
    const tunnel_info& t = topo.tunnels[spec.tunnel];
    if (t.underlay_port >= topo.n_ports || t.underlay_port >= max_ports ||
        (t.ipsec && spec.out_sa == nullptr)) {
        return nullptr;
    }
    auto a = std::make_unique<adjacency>();
    a->kind = adj_kind::tunnel;
    a->out_port = t.underlay_port;
    a->tunnel = spec.tunnel;
    a->mtu = t.ip_mtu;
    a->nexthop = spec.overlay;
    a->nbma = spec.nbma;
    a->out_sa = t.ipsec ? spec.out_sa : nullptr;
    if (a->out_sa != nullptr && spec.udp_encap) {
        a->natt_sport = spec.local_port;
        a->natt_dport = spec.peer_port;
        uint32_t fits =
            esp_inner_mtu(topo.ports[t.underlay_port].mtu, t.has_key ? 8u : 4u, *a->out_sa, true);
        a->mtu = static_cast<uint16_t>(std::min<uint32_t>(a->mtu, fits));
    }
    a->tcp_mss = t.tcp_mss;
    a->df = t.df;
    a->ttl = t.ttl;
    fill_eth(a->eth, spec.underlay_mac, topo.ports[t.underlay_port].mac);

    uint8_t* ip = a->l3;
    ip[0] = 0x45;
    ip[1] = 0;
    // total length [2..3], ID [4..5] and checksum [10..11] are written per packet
    wire::store_be16(ip + 6, t.df == df_policy::set ? RTE_IPV4_HDR_DF_FLAG : 0);
    ip[8] = t.ttl;
    ip[9] = ip_proto_gre;
    wire::store_be32(ip + 12, t.nbma);
    wire::store_be32(ip + 16, spec.nbma);
    uint8_t* gre = ip + sizeof(rte_ipv4_hdr);
    wire::store_be16(gre, t.has_key ? gre_flag_key : 0);
    wire::store_be16(gre + 2, gre_proto_ipv4);
    uint8_t len = sizeof(rte_ipv4_hdr) + 4;
    if (t.has_key) {
        wire::store_be32(gre + 4, t.key);
        len += 4;
    }
    a->l3_len = len;
    // Sum of the fixed words, folded, in the checksum field; per packet only length, ID (and a
    // copied DF) are added.
    uint32_t sum = 0;
    for (size_t i = 0; i < sizeof(rte_ipv4_hdr); i += 2) {
        sum += wire::load_be16(ip + i);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    wire::store_be16(ip + 10, static_cast<uint16_t>(sum));
    return a;
}

std::unique_ptr<adjacency> build_lan_adjacency(const topology& topo,
                                               const lan_adjacency_spec& spec) {
    if (spec.port >= topo.n_ports || spec.port >= max_ports) {
        return nullptr;
    }
    auto a = std::make_unique<adjacency>();
    a->kind = adj_kind::lan;
    a->out_port = spec.port;
    a->mtu = topo.ports[spec.port].mtu;
    a->nexthop = spec.address;
    fill_eth(a->eth, spec.mac, topo.ports[spec.port].mac);
    return a;
}

std::unique_ptr<adjacency> build_incomplete_adjacency(uint16_t tunnel, uint16_t port,
                                                      uint32_t nexthop) {
    auto a = std::make_unique<adjacency>();
    a->kind = adj_kind::incomplete;
    a->tunnel = tunnel;
    a->out_port = port;
    a->nexthop = nexthop;
    return a;
}

void* adjacency::operator new(size_t bytes) {
    if (void* p = rte_malloc("adjacency", bytes, alignof(adjacency))) {
        return p;
    }
    return ::operator new (bytes, std::align_val_t{alignof(adjacency)});
}

void adjacency::operator delete(void* p) noexcept {
    if (p == nullptr) {
        return;
    }
    if (rte_mem_virt2memseg_list(p) != nullptr) {
        rte_free(p);
    } else {
        ::operator delete (p, std::align_val_t{alignof(adjacency)});
    }
}

adjacency_table::adjacency_table(uint32_t capacity) : _capacity(capacity) {
    using slot = std::atomic<const adjacency*>;
    void* p = rte_zmalloc("adjacency_slots", sizeof(slot) * capacity, RTE_CACHE_LINE_SIZE);
    if (p == nullptr) {
        p = ::operator new (sizeof(slot) * capacity, std::align_val_t{RTE_CACHE_LINE_SIZE});
        _slots_on_heap = true;
    }
    _slots = static_cast<slot*>(p);
    for (uint32_t i = 0; i < capacity; ++i) {
        new (&_slots[i]) slot(nullptr);
    }
}

adjacency_table::~adjacency_table() {
    if (_slots_on_heap) {
        ::operator delete (_slots, std::align_val_t{RTE_CACHE_LINE_SIZE});
    } else {
        rte_free(_slots);
    }
}

}  // namespace dmvpn::dp
