// Shared by the dataplane tests: EAL start-up once per test process, packet builders, and a
// fixture with a pool, ring-backed ports, a publisher, a topology and workers.
#pragma once

#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "dataplane/publisher.hpp"
#include "dataplane/punt.hpp"
#include "dataplane/stats.hpp"
#include "dataplane/worker.hpp"

namespace dptest {

using bytes = std::vector<uint8_t>;

// Starts EAL on first use with a file prefix unique to this process; cleans up at exit.
void ensure_eal();
// A name unique in this process for DPDK objects.
std::string unique_name(const char* what);

constexpr uint32_t ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    return (uint32_t{a} << 24) | (uint32_t{b} << 16) | (uint32_t{c} << 8) | d;
}

struct ipv4_opts {
    uint8_t ttl = 64;
    uint16_t flags_frag = 0;  // flags + fragment offset word
    uint16_t id = 1;
    bool bad_checksum = false;
};
bytes ipv4(uint32_t src, uint32_t dst, uint8_t proto, std::span<const uint8_t> payload,
           ipv4_opts o = {});
bytes gre(uint16_t proto, std::optional<uint32_t> key, std::span<const uint8_t> payload,
          bool with_checksum = false);
bytes eth(const rte_ether_addr& dst, const rte_ether_addr& src, uint16_t type,
          std::span<const uint8_t> payload);
bytes udp(uint16_t sport, uint16_t dport, size_t payload_len);
// A TCP SYN with an MSS option, `pad_nops` NOPs before it (to move it off 16-bit alignment);
// the checksum is computed over the pseudo header.
bytes tcp_syn(uint32_t src, uint32_t dst, uint16_t mss, unsigned pad_nops);
// Verifies a TCP checksum over the pseudo header (RFC 793), independently of the code under test.
bool tcp_checksum_ok(std::span<const uint8_t> ip_packet);

rte_mbuf* to_mbuf(rte_mempool* pool, std::span<const uint8_t> frame, uint16_t port);
bytes data_of(const rte_mbuf* m);

inline const rte_ether_addr lan_host_mac{{0x02, 0, 0, 0, 0x0a, 0x10}};
inline const rte_ether_addr underlay_gw_mac{{0x02, 0, 0, 0, 0xfe, 0x01}};
inline const rte_ether_addr some_mac{{0x02, 0, 0, 0, 0x99, 0x99}};

// The topology every stage test uses:
//   tunnel 0: NBMA 192.0.2.1, key 100, overlay 10.0.0.1/24, no IPsec, MTU 1400, MSS 1360
//   tunnel 1: NBMA 192.0.2.1, key 200, overlay 10.1.0.1/24, IPsec, MTU 1400
//   LAN port: 172.16.0.1/24
//   adjacency 1: spoke 10.0.0.2 at NBMA 198.51.100.2 (tunnel 0); 10.20.0.0/16 via it
//   adjacency 2: spoke 10.0.0.3 at NBMA 198.51.100.3 (tunnel 0)
//   adjacency 3: LAN host 172.16.0.10
//   adjacency 4: incomplete 10.0.0.4 (tunnel 0); 10.30.0.0/16 via it
//   adjacency 5: spoke 10.1.0.2 at NBMA 198.51.100.5 (tunnel 1, IPsec) when an SA is given
//   publisher::alloc_adjacency_id() hands out 8 and up
struct net {
    static constexpr uint32_t hub_nbma = ip4(192, 0, 2, 1);
    static constexpr uint32_t hub_overlay = ip4(10, 0, 0, 1);
    static constexpr uint32_t hub_overlay1 = ip4(10, 1, 0, 1);
    static constexpr uint32_t hub_lan = ip4(172, 16, 0, 1);
    static constexpr uint32_t key0 = 100;
    static constexpr uint32_t key1 = 200;
    static constexpr uint32_t spoke2 = ip4(10, 0, 0, 2);
    static constexpr uint32_t spoke2_nbma = ip4(198, 51, 100, 2);
    static constexpr uint32_t spoke3 = ip4(10, 0, 0, 3);
    static constexpr uint32_t spoke3_nbma = ip4(198, 51, 100, 3);
    static constexpr uint32_t lan_host = ip4(172, 16, 0, 10);
    static constexpr uint32_t spoke4 = ip4(10, 0, 0, 4);
    static constexpr uint32_t spoke5 = ip4(10, 1, 0, 2);
    static constexpr uint32_t spoke5_nbma = ip4(198, 51, 100, 5);
    static constexpr uint16_t mtu0 = 1400;
    static constexpr uint16_t mss0 = 1360;
};

// Two ports built on rings (port "lan" and port "underlay"), each with one RX ring per worker
// and a TX ring per worker plus the control one, configured through dp::setup_port.
struct ring_port {
    uint16_t id = 0;
    rte_ether_addr mac{};
    std::vector<rte_ring*> rx;  // the test enqueues frames here
    std::vector<rte_ring*> tx;  // and finds what the workers sent here
};

class env {
public:
    explicit env(uint16_t workers = 1, unsigned punt_ring_size = 1024,
                 dmvpn::crypto::sa* tunnel1_out_sa = nullptr);
    ~env();
    env(const env&) = delete;
    env& operator=(const env&) = delete;

    rte_mempool* pool() const { return _pool; }
    rte_ring* punt_ring() const { return _punts; }
    dmvpn::dp::publisher& pub() { return *_pub; }
    dmvpn::dp::worker& worker(uint16_t i = 0) { return *_workers.at(i); }
    // The control lcore's forwarder (dp::worker_config::control), made on first use; it sends
    // on the TX queue after the workers' (sent_on(port, workers)).
    dmvpn::dp::worker& forwarder();
    dmvpn::dp::stats_registry& stats() { return *_stats; }
    const ring_port& lan() const { return _lan; }
    const ring_port& underlay() const { return _underlay; }
    unsigned pool_in_use() const;

    // Frames from the underlay (to the hub's NBMA) or from the LAN, through worker w.
    void from_underlay(std::vector<bytes> frames, uint16_t w = 0);
    void from_lan(std::vector<bytes> frames, uint16_t w = 0);
    // What worker w sent on a port (dequeued, copied, freed).
    std::vector<bytes> sent_on(const ring_port& p, uint16_t w = 0);
    // Punted mbufs with their metadata; the caller frees them (free_all).
    std::vector<dmvpn::dp::punt_record> punts();
    static void free_all(std::vector<dmvpn::dp::punt_record>& v);

    // Wraps a GRE packet from a spoke's NBMA address into an Ethernet frame to the hub.
    bytes gre_frame(uint32_t spoke_nbma, std::optional<uint32_t> key, uint16_t proto,
                    std::span<const uint8_t> inner) const;
    bytes lan_frame(std::span<const uint8_t> ip_packet) const;

private:
    ring_port make_port(const char* role, uint16_t workers);
    void destroy_port(ring_port& p);

    rte_mempool* _pool = nullptr;
    rte_ring* _punts = nullptr;
    std::unique_ptr<dmvpn::dp::publisher> _pub;
    std::unique_ptr<dmvpn::dp::stats_registry> _stats;
    std::vector<std::unique_ptr<dmvpn::dp::worker>> _workers;
    std::unique_ptr<dmvpn::dp::worker> _forwarder;
    ring_port _lan;
    ring_port _underlay;
    unsigned _pool_size = 0;
};

}  // namespace dptest
