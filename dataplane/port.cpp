// Port probing and configuration (control lcore, at start).
#include "dataplane/port.hpp"

#include <rte_dev.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include <array>
#include <atomic>
#include <memory>
#include <vector>

namespace dmvpn::dp {

std::string_view name(port_error e) noexcept {
    switch (e) {
        case port_error::bad_config:
            return "bad_config";
        case port_error::probe_failed:
            return "probe_failed";
        case port_error::not_found:
            return "not_found";
        case port_error::too_few_queues:
            return "too_few_queues";
        case port_error::configure_failed:
            return "configure_failed";
        case port_error::mtu_failed:
            return "mtu_failed";
        case port_error::queue_setup_failed:
            return "queue_setup_failed";
        case port_error::start_failed:
            return "start_failed";
        case port_error::filter_failed:
            return "filter_failed";
    }
    return "unknown";
}

namespace {

// The ethdev name of a device string: what precedes the first comma, without a bus prefix.
std::string device_name(std::string_view devargs) {
    for (std::string_view bus : {"pci:", "vdev:"}) {
        if (devargs.substr(0, bus.size()) == bus) {
            devargs.remove_prefix(bus.size());
        }
    }
    return std::string(devargs.substr(0, devargs.find(',')));
}

// RSS over the workers' queues only: the extra RX queue (there for PMDs that want equal counts)
// gets nothing from a NIC that lets us say so. Best effort: it is polled either way.
void steer_rss_to_workers(uint16_t port_id, uint16_t reta_size, uint16_t workers) noexcept {
    if (reta_size == 0 || reta_size > RTE_ETH_RSS_RETA_SIZE_512) {
        return;
    }
    rte_eth_rss_reta_entry64 reta[RTE_ETH_RSS_RETA_SIZE_512 / RTE_ETH_RETA_GROUP_SIZE] = {};
    for (uint16_t i = 0; i < reta_size; ++i) {
        rte_eth_rss_reta_entry64& group = reta[i / RTE_ETH_RETA_GROUP_SIZE];
        group.mask |= uint64_t{1} << (i % RTE_ETH_RETA_GROUP_SIZE);
        group.reta[i % RTE_ETH_RETA_GROUP_SIZE] = static_cast<uint16_t>(i % workers);
    }
    (void)rte_eth_dev_rss_reta_update(port_id, reta, reta_size);
}

// One per RX queue of a port that drops foreign unicast: the port's MAC and what was dropped.
// Only the worker polling the queue writes `dropped` (single writer: a relaxed load and store,
// no locked instruction); the control lcore reads it.
struct rx_filter {
    rte_ether_addr mac{};
    std::atomic<uint64_t> dropped{0};
    const rte_eth_rxtx_callback* cb = nullptr;
    uint16_t queue = 0;
};

std::array<std::vector<std::unique_ptr<rx_filter>>, RTE_MAX_ETHPORTS> g_rx_filters;

// Runs inside rte_eth_rx_burst on the polling worker: keeps multicast/broadcast (the group bit)
// and unicast to the port's MAC, frees the rest, and keeps the order of what stays.
uint16_t drop_foreign_unicast_cb(uint16_t, uint16_t, rte_mbuf** pkts, uint16_t n, uint16_t,
                                 void* user) {
    auto* f = static_cast<rx_filter*>(user);
    uint16_t kept = 0;
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        if (rte_pktmbuf_data_len(m) >= RTE_ETHER_ADDR_LEN) {
            const auto* dst = rte_pktmbuf_mtod(m, const rte_ether_addr*);
            if (!rte_is_multicast_ether_addr(dst) && !rte_is_same_ether_addr(dst, &f->mac)) {
                rte_pktmbuf_free(m);
                f->dropped.store(f->dropped.load(std::memory_order_relaxed) + 1,
                                 std::memory_order_relaxed);
                continue;
            }
        }
        pkts[kept++] = m;
    }
    return kept;
}

void remove_rx_filters(uint16_t port_id) noexcept {
    if (port_id >= g_rx_filters.size()) {
        return;
    }
    for (auto& f : g_rx_filters[port_id]) {
        if (f->cb != nullptr) {
            (void)rte_eth_remove_rx_callback(port_id, f->queue, f->cb);
        }
    }
    // The port is stopped and its workers gone before close_port: nobody is inside a callback.
    g_rx_filters[port_id].clear();
}

bool install_rx_filters(uint16_t port_id, uint16_t rx_queues, const rte_ether_addr& mac) {
    if (port_id >= g_rx_filters.size()) {
        return false;
    }
    remove_rx_filters(port_id);
    for (uint16_t q = 0; q < rx_queues; ++q) {
        auto f = std::make_unique<rx_filter>();
        f->mac = mac;
        f->queue = q;
        f->cb = rte_eth_add_rx_callback(port_id, q, drop_foreign_unicast_cb, f.get());
        if (f->cb == nullptr) {
            remove_rx_filters(port_id);
            return false;
        }
        g_rx_filters[port_id].push_back(std::move(f));
    }
    return true;
}

}  // namespace

bool sees_foreign_unicast(std::string_view devargs) noexcept {
    if (devargs.substr(0, 5) == "vdev:") {
        devargs.remove_prefix(5);
    }
    for (std::string_view pmd : {"net_tap", "net_af_packet"}) {
        if (devargs.substr(0, pmd.size()) == pmd) {
            return true;
        }
    }
    return false;
}

uint64_t foreign_unicast_dropped(uint16_t port_id) noexcept {
    uint64_t n = 0;
    if (port_id < g_rx_filters.size()) {
        for (const auto& f : g_rx_filters[port_id]) {
            n += f->dropped.load(std::memory_order_relaxed);
        }
    }
    return n;
}

uint64_t rss_types(uint64_t offered) noexcept {
    return offered & (RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_FRAG_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_OTHER |
                      RTE_ETH_RSS_ESP);
}

uint16_t rx_queue_owner(uint16_t queue, uint16_t workers) noexcept {
    return workers == 0 ? 0 : static_cast<uint16_t>(queue % workers);
}

uint16_t rx_queue_owner(uint16_t port_id, bool rss, uint16_t queue, uint16_t workers) noexcept {
    if (workers == 0) {
        return 0;
    }
    return rss ? rx_queue_owner(queue, workers) : static_cast<uint16_t>(port_id % workers);
}

wire::result<port_state, port_error> open_port(const port_config& cfg) {
    if (cfg.devargs.empty()) {
        return wire::fail(port_error::bad_config);
    }
    std::string dev = device_name(cfg.devargs);
    uint16_t id = 0;
    if (rte_eth_dev_get_port_by_name(dev.c_str(), &id) != 0) {
        int rc = rte_dev_probe(cfg.devargs.c_str());
        if (rc != 0 && rc != -EEXIST) {
            return wire::fail(port_error::probe_failed);
        }
        if (rte_eth_dev_get_port_by_name(dev.c_str(), &id) != 0) {
            return wire::fail(port_error::not_found);
        }
    }
    return setup_port(id, cfg);
}

wire::result<port_state, port_error> setup_port(uint16_t port_id, const port_config& cfg) {
    if (cfg.pool == nullptr || cfg.workers == 0 || !rte_eth_dev_is_valid_port(port_id)) {
        return wire::fail(port_error::bad_config);
    }
    rte_eth_dev_info info{};
    if (rte_eth_dev_info_get(port_id, &info) != 0) {
        return wire::fail(port_error::configure_failed);
    }
    port_state st;
    st.id = port_id;
    st.tx_queues = static_cast<uint16_t>(cfg.workers + 1);
    st.control_tx_queue = cfg.workers;
    if (info.max_rx_queues < cfg.workers || info.max_tx_queues < st.tx_queues) {
        return wire::fail(port_error::too_few_queues);
    }
    // Some PMDs (net_tap) refuse unequal RX and TX counts, and a memif peer sizes its rings
    // after ours: give the port as many RX queues as TX queues where it has them. A kernel tap
    // spreads by its own flow hash, so the extra queue does receive; the workers poll it too
    // (rx_queue_owner), and where the PMD has a RETA it steers nothing there.
    st.rx_queues = info.max_rx_queues > cfg.workers ? st.tx_queues : cfg.workers;

    rte_eth_conf conf{};
    // RSS on the outer IPv4 source and destination (L4 ports left out, so ESP in UDP from a NATed
    // spoke hashes like its plain ESP would): all of one spoke's ESP and GRE lands on one worker,
    // the only writer of its inbound SA's replay window. Where the PMD hashes ESP by SPI as well
    // (RTE_ETH_RSS_ESP), an SA's packets still share one hash. A port whose PMD hashes none of
    // these is polled by one worker (rx_queue_owner). config/README.md: "RSS".
    st.rss_hf = rss_types(info.flow_type_rss_offloads);
    if (st.rx_queues > 1 && st.rss_hf != 0) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_key = nullptr;
        conf.rx_adv_conf.rss_conf.rss_hf = st.rss_hf;
        st.rss = true;
    }
    if (cfg.mtu >= info.min_mtu && cfg.mtu <= info.max_mtu) {
        conf.rxmode.mtu = cfg.mtu;
    }
    if (rte_eth_dev_configure(port_id, st.rx_queues, st.tx_queues, &conf) != 0) {
        return wire::fail(port_error::configure_failed);
    }
    int rc = rte_eth_dev_set_mtu(port_id, cfg.mtu);
    if (rc != 0 && rc != -ENOTSUP) {
        return wire::fail(port_error::mtu_failed);
    }
    uint16_t rx_desc = cfg.rx_desc;
    uint16_t tx_desc = cfg.tx_desc;
    if (rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &rx_desc, &tx_desc) != 0) {
        return wire::fail(port_error::configure_failed);
    }
    int socket = rte_eth_dev_socket_id(port_id);
    unsigned sock = socket < 0 ? 0u : static_cast<unsigned>(socket);
    for (uint16_t q = 0; q < st.rx_queues; ++q) {
        if (rte_eth_rx_queue_setup(port_id, q, rx_desc, sock, nullptr, cfg.pool) != 0) {
            return wire::fail(port_error::queue_setup_failed);
        }
    }
    for (uint16_t q = 0; q < st.tx_queues; ++q) {
        if (rte_eth_tx_queue_setup(port_id, q, tx_desc, sock, nullptr) != 0) {
            return wire::fail(port_error::queue_setup_failed);
        }
    }
    // Before the port starts: no frame reaches a worker unfiltered.
    (void)rte_eth_macaddr_get(port_id, &st.mac);
    if (cfg.drop_foreign_unicast && !install_rx_filters(port_id, st.rx_queues, st.mac)) {
        return wire::fail(port_error::filter_failed);
    }
    if (rte_eth_dev_start(port_id) != 0) {
        remove_rx_filters(port_id);
        return wire::fail(port_error::start_failed);
    }
    if (st.rss && st.rx_queues > cfg.workers) {
        steer_rss_to_workers(port_id, info.reta_size, cfg.workers);
    }
    if (cfg.promiscuous) {
        // Not every PMD has it (net_ring does not care); the port works without.
        (void)rte_eth_promiscuous_enable(port_id);
    }
    (void)rte_eth_macaddr_get(port_id, &st.mac);
    uint16_t mtu = 0;
    st.mtu = rte_eth_dev_get_mtu(port_id, &mtu) == 0 ? mtu : cfg.mtu;
    return st;
}

void close_port(uint16_t port_id) noexcept {
    (void)rte_eth_dev_stop(port_id);
    remove_rx_filters(port_id);
    (void)rte_eth_dev_close(port_id);
}

link_state port_link(uint16_t port_id) noexcept {
    rte_eth_link link{};
    link_state s;
    if (rte_eth_link_get_nowait(port_id, &link) == 0) {
        s.up = link.link_status == RTE_ETH_LINK_UP;
        s.speed_mbps = link.link_speed;
        s.full_duplex = link.link_duplex == RTE_ETH_LINK_FULL_DUPLEX;
    }
    return s;
}

}  // namespace dmvpn::dp
