// DPDK ports for the hub: any PCI device or vdev string, one TX queue per worker plus one for
// the control lcore, as many RX queues (RSS over the workers' where the PMD has it); link, MTU
// and MAC.
#pragma once

#include <rte_ether.h>
#include <rte_mempool.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "dataplane/wire/result.hpp"

namespace dmvpn::dp {

struct port_config {
    // "0000:03:00.0" (PCI), or a vdev: "net_tap0,iface=dtap0", "net_ring0",
    // "net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap", "net_memif0,role=server", "net_null0".
    // A "pci:" or "vdev:" bus prefix is accepted.
    std::string devargs;
    uint16_t workers = 1;  // RX and TX queues = workers + 1 (RX: workers where the PMD has no more)
    uint16_t mtu = 1500;
    uint16_t rx_desc = 1024;
    uint16_t tx_desc = 1024;
    rte_mempool* pool = nullptr;  // RX buffers
    bool promiscuous = false;
    // Drop received unicast frames whose destination MAC is not the port's, before the workers
    // see them (an RX callback on every queue). A NIC does this in hardware; a kernel-facing vdev
    // on a Linux bridge (net_tap, net_af_packet) gets whatever the bridge floods to it, and the
    // hub would otherwise route other hosts' unicast a second time (see sees_foreign_unicast).
    bool drop_foreign_unicast = false;
};

struct port_state {
    uint16_t id = 0;
    rte_ether_addr mac{};
    uint16_t mtu = 0;     // what the port accepted
    bool rss = false;     // RX spread over the workers' queues by the NIC
    uint64_t rss_hf = 0;  // the RTE_ETH_RSS_* types asked for (rss_types of the PMD's offer)
    uint16_t rx_queues = 0;
    uint16_t tx_queues = 0;
    uint16_t control_tx_queue = 0;  // the control lcore's TX queue (the last one)
};

enum class port_error : uint8_t {
    bad_config,          // no pool, no workers, empty devargs
    probe_failed,        // rte_dev_probe refused the device string
    not_found,           // probed, but no ethdev port carries that name
    too_few_queues,      // the PMD has fewer queues than workers (+1 for TX)
    configure_failed,    // rte_eth_dev_configure
    mtu_failed,          // the PMD refused the MTU (and supports setting one)
    queue_setup_failed,  // rte_eth_rx/tx_queue_setup
    start_failed,        // rte_eth_dev_start
    filter_failed,       // drop_foreign_unicast: rte_eth_add_rx_callback refused
};
std::string_view name(port_error e) noexcept;

// Whether a device string names a PMD that hands the hub unicast frames addressed to other hosts
// (no MAC filter between it and the wire): net_tap and net_af_packet.
bool sees_foreign_unicast(std::string_view devargs) noexcept;

// Frames dropped by port_config::drop_foreign_unicast on this port so far (all queues).
uint64_t foreign_unicast_dropped(uint16_t port_id) noexcept;

// The worker that polls RX queue `queue`: queue w is worker w's; the extra queue a port gets
// for equal RX/TX counts goes to worker 0 (queue % workers).
uint16_t rx_queue_owner(uint16_t queue, uint16_t workers) noexcept;
// The same for port `port_id` as opened (port_state::rss). A port without RSS (net_memif, net_ring,
// net_pcap: the peer or the PMD picks the queue, not a hash of the outer addresses) could hand one
// spoke's ESP to several workers, whose writes to the SA's replay window would race: all its queues
// go to one worker (port id % workers), so every spoke's packets on it meet one replay window
// writer.
uint16_t rx_queue_owner(uint16_t port_id, bool rss, uint16_t queue, uint16_t workers) noexcept;

// The RSS types the hub asks a PMD for, out of those it offers (rte_eth_dev_info::
// flow_type_rss_offloads): outer IPv4 (RTE_ETH_RSS_IPV4, FRAG_IPV4, NONFRAG_IPV4_OTHER, which
// carries ESP and GRE on PMDs that type packets) and RTE_ETH_RSS_ESP (SPI) where offered; never
// the L4 types (TCP/UDP ports). 0: the PMD hashes none of them.
uint64_t rss_types(uint64_t offered) noexcept;

// Probes (unless EAL already did, e.g. through --vdev), configures and starts the port.
wire::result<port_state, port_error> open_port(const port_config& cfg);
// The same for a port that exists already (rte_eth_from_rings in tests, or found by id).
wire::result<port_state, port_error> setup_port(uint16_t port_id, const port_config& cfg);
// Stops and closes the port (the device is released; a vdev can be probed again).
void close_port(uint16_t port_id) noexcept;

struct link_state {
    bool up = false;
    uint32_t speed_mbps = 0;
    bool full_duplex = false;
};
// Never blocks (rte_eth_link_get_nowait): the control lcore polls it.
link_state port_link(uint16_t port_id) noexcept;

}  // namespace dmvpn::dp
