#include "tools/spokesim/dpdk_io.hpp"

#include <unistd.h>

#include <cstring>
#include <ctime>

#include <fmt/format.h>
#include <rte_bus_vdev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

namespace dmvpn::spokesim {

namespace {

constexpr uint16_t burst = 32;
constexpr uint16_t ring_size = 1024;

}  // namespace

struct dpdk_io::impl {
    uint16_t port = 0;
    uint16_t queues = 1;
    rte_mempool* pool = nullptr;
    rte_mbuf* tx[burst] = {};
    uint16_t tx_n = 0;
    rte_mbuf* rx[burst] = {};
};

std::vector<std::string> default_eal_args(const std::string& vdev) {
    std::vector<std::string> a = {"-l",
                                  "0",
                                  "--no-huge",
                                  "-m",
                                  "512",
                                  "--no-pci",
                                  "--no-telemetry",
                                  "--file-prefix",
                                  fmt::format("spokesim-{}", getpid())};
    if (vdev.rfind("net_memif", 0) != 0) {
        a.push_back("--no-shconf");
    }
    return a;
}

wire::result<std::unique_ptr<dpdk_io>, std::string> dpdk_io::open(
    const std::vector<std::string>& eal_args, const std::string& vdev, uint16_t queues) {
    std::vector<std::string> args = {"dmvpn-spokesim"};
    args.insert(args.end(), eal_args.begin(), eal_args.end());
    std::vector<char*> argv;
    for (auto& s : args) {
        argv.push_back(s.data());
    }
    if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
        return wire::fail(fmt::format("EAL init failed: {}", rte_strerror(rte_errno)));
    }
    size_t comma = vdev.find(',');
    std::string name = vdev.substr(0, comma);
    std::string devargs = comma == std::string::npos ? "" : vdev.substr(comma + 1);
    if (int rc = rte_vdev_init(name.c_str(), devargs.c_str()); rc != 0) {
        return wire::fail(fmt::format("vdev '{}': {}", vdev, rte_strerror(-rc)));
    }
    auto p = std::make_unique<impl>();
    if (rte_eth_dev_get_port_by_name(name.c_str(), &p->port) != 0) {
        return wire::fail(fmt::format("vdev '{}' created no ethdev port", name));
    }
    p->pool = rte_pktmbuf_pool_create("spokesim_pool", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                      static_cast<int>(rte_socket_id()));
    if (p->pool == nullptr) {
        return wire::fail(fmt::format("mbuf pool: {}", rte_strerror(rte_errno)));
    }
    rte_eth_dev_info info;
    std::memset(&info, 0, sizeof info);
    if (int rc = rte_eth_dev_info_get(p->port, &info); rc != 0) {
        return wire::fail(fmt::format("port {} info: {}", p->port, rte_strerror(-rc)));
    }
    if (queues > info.max_rx_queues || queues > info.max_tx_queues) {
        return wire::fail(fmt::format("--queues {}: the port has at most {} RX / {} TX queues",
                                      queues, info.max_rx_queues, info.max_tx_queues));
    }
    p->queues = queues;
    rte_eth_conf conf;
    std::memset(&conf, 0, sizeof conf);
    if (int rc = rte_eth_dev_configure(p->port, queues, queues, &conf); rc != 0) {
        return wire::fail(fmt::format("configure port {}: {}", p->port, rte_strerror(-rc)));
    }
    uint16_t rxd = ring_size;
    uint16_t txd = ring_size;
    (void)rte_eth_dev_adjust_nb_rx_tx_desc(p->port, &rxd, &txd);
    int socket = rte_eth_dev_socket_id(p->port);
    unsigned sock = socket < 0 ? 0u : static_cast<unsigned>(socket);
    for (uint16_t q = 0; q < queues; ++q) {
        if (int rc = rte_eth_rx_queue_setup(p->port, q, rxd, sock, nullptr, p->pool); rc != 0) {
            return wire::fail(fmt::format("rx queue {}: {}", q, rte_strerror(-rc)));
        }
        if (int rc = rte_eth_tx_queue_setup(p->port, q, txd, sock, nullptr); rc != 0) {
            return wire::fail(fmt::format("tx queue {}: {}", q, rte_strerror(-rc)));
        }
    }
    if (int rc = rte_eth_dev_start(p->port); rc != 0) {
        return wire::fail(fmt::format("start port: {}", rte_strerror(-rc)));
    }
    // ARP for many NBMA addresses arrives broadcast; unicast is to the port MAC. Promiscuous
    // is only a convenience (not every vdev supports it).
    (void)rte_eth_promiscuous_enable(p->port);
    rte_ether_addr addr;
    if (rte_eth_macaddr_get(p->port, &addr) != 0) {
        return wire::fail(std::string("port has no MAC address"));
    }
    auto io = std::unique_ptr<dpdk_io>(new dpdk_io(std::move(p)));
    std::memcpy(io->_mac.data(), addr.addr_bytes, 6);
    return io;
}

dpdk_io::dpdk_io(std::unique_ptr<impl> p) : _p(std::move(p)) {}

dpdk_io::~dpdk_io() {
    flush();
    (void)rte_eth_dev_stop(_p->port);
    (void)rte_eth_dev_close(_p->port);
    (void)rte_eal_cleanup();
}

bool dpdk_io::link_up() const {
    rte_eth_link link;
    std::memset(&link, 0, sizeof link);
    return rte_eth_link_get_nowait(_p->port, &link) == 0 && link.link_status == RTE_ETH_LINK_UP;
}

void dpdk_io::capture_to(std::unique_ptr<wire::pcap::file_writer> w) { _capture = std::move(w); }

void dpdk_io::capture(std::span<const uint8_t> frame) {
    if (!_capture) {
        return;
    }
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    const wire::pcap::timestamp ts{static_cast<int64_t>(now.tv_sec),
                                   static_cast<uint32_t>(now.tv_nsec)};
    if (auto e = _capture->write(ts, frame)) {
        _capture_failure = e;
        _capture.reset();
    }
}

void dpdk_io::send(std::span<const uint8_t> frame) {
    capture(frame);
    rte_mbuf* m = rte_pktmbuf_alloc(_p->pool);
    if (m == nullptr) {
        ++_tx_dropped;
        return;
    }
    char* d = rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size()));
    if (d == nullptr) {
        rte_pktmbuf_free(m);
        ++_tx_dropped;
        return;
    }
    std::memcpy(d, frame.data(), frame.size());
    _p->tx[_p->tx_n++] = m;
    if (_p->tx_n == burst) {
        flush();
    }
}

void dpdk_io::flush() {
    uint16_t sent = 0;
    // A full ring means the hub has not polled it for a while: on a machine whose cores the
    // hub's lcores share with the emulator and other tests, it is descheduled for tens of ms at
    // times. Wait for it as a spoke's NIC queue would (a real spoke's kernel queues far more
    // than one ring), up to 250 ms while the link is up; a hub that is gone (link down) or dead
    // must not block the loop for longer.
    timespec pause{0, 100'000};
    for (int tries = 0; tries < 2500 && sent < _p->tx_n; ++tries) {
        if (tries >= 4) {
            if (tries == 4 && !link_up()) {
                break;
            }
            ::nanosleep(&pause, nullptr);
        }
        sent =
            static_cast<uint16_t>(sent + rte_eth_tx_burst(_p->port, 0, _p->tx + sent,
                                                          static_cast<uint16_t>(_p->tx_n - sent)));
    }
    for (uint16_t i = sent; i < _p->tx_n; ++i) {
        rte_pktmbuf_free(_p->tx[i]);
        ++_tx_dropped;
    }
    _p->tx_n = 0;
}

uint32_t dpdk_io::receive(const std::function<void(std::span<const uint8_t>)>& f) {
    // Every queue: the hub sends data from its workers' queues and ARP / NHRP from its
    // control lcore's.
    uint32_t total = 0;
    for (uint16_t q = 0; q < _p->queues; ++q) {
        uint16_t n = rte_eth_rx_burst(_p->port, q, _p->rx, burst);
        for (uint16_t i = 0; i < n; ++i) {
            rte_mbuf* m = _p->rx[i];
            if (m->nb_segs == 1) {
                const std::span<const uint8_t> frame(rte_pktmbuf_mtod(m, const uint8_t*),
                                                     m->data_len);
                capture(frame);
                f(frame);
            } else {
                std::vector<uint8_t> flat(m->pkt_len);
                const void* d = rte_pktmbuf_read(m, 0, m->pkt_len, flat.data());
                if (d != nullptr) {
                    const std::span<const uint8_t> frame(static_cast<const uint8_t*>(d),
                                                         m->pkt_len);
                    capture(frame);
                    f(frame);
                }
            }
            rte_pktmbuf_free(m);
        }
        total += n;
    }
    return total;
}

}  // namespace dmvpn::spokesim
