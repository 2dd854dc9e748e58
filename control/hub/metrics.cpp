// The counters of `show stats` and `show nhrp summary` / `traffic` as Prometheus metric families,
// built by the control lcore into the 1 s telemetry snapshot; the metrics thread only renders.
#include <fmt/core.h>
#include <rte_ethdev.h>

#include <deque>

#include "control/hub/hub.hpp"
#include "control/log.hpp"
#include "dataplane/port.hpp"
#include "dataplane/wire/ipv4.hpp"

namespace dmvpn::hub {

using control::metric_family;
using control::metric_type;

std::vector<control::metric_family> hub::metric_families(timestamp now) const {
    // A deque: the families are filled through references held while later ones are added.
    std::deque<metric_family> out;
    auto counter = [&out](std::string name, std::string help) -> metric_family& {
        return out.emplace_back(
            metric_family{"dmvpn_" + name + "_total", std::move(help), metric_type::counter, {}});
    };
    auto gauge = [&out](std::string name, std::string help) -> metric_family& {
        return out.emplace_back(
            metric_family{"dmvpn_" + name, std::move(help), metric_type::gauge, {}});
    };
    using labels = std::vector<std::pair<std::string, std::string>>;

    // Workers.
    struct worker_field {
        const char* name;
        const char* help;
        uint64_t dp::worker_counters::*field;
    };
    static constexpr worker_field worker_fields[] = {
        {"worker_rx_packets", "Packets a worker received", &dp::worker_counters::rx_packets},
        {"worker_tx_packets", "Packets a worker sent", &dp::worker_counters::tx_packets},
        {"worker_bursts", "Non-empty poll iterations of a worker", &dp::worker_counters::bursts},
        {"worker_idle_sleeps", "Sleeps a worker took while idle",
         &dp::worker_counters::idle_sleeps},
        {"worker_redirect_suppressed", "Redirect candidates a worker's rate limiter held back",
         &dp::worker_counters::redirect_suppressed},
        {"worker_event_alloc_failed", "Redirect events a worker lost to an empty event pool",
         &dp::worker_counters::event_alloc_failed},
        {"worker_fragmented_packets", "Packets a worker split to fit the egress MTU",
         &dp::worker_counters::fragmented},
        {"worker_fragments", "Fragments those packets became", &dp::worker_counters::fragments},
        {"worker_natt_in", "ESP-in-UDP packets decapsulated (RFC 3948)",
         &dp::worker_counters::natt_in},
        {"worker_natt_out", "ESP packets put in UDP for peers behind NAT",
         &dp::worker_counters::natt_out},
    };
    std::vector<dp::worker_counters> per_worker;
    for (uint16_t w = 0; w < _stats->workers(); ++w) {
        per_worker.push_back(_stats->read(w));
    }
    for (const worker_field& wf : worker_fields) {
        metric_family& f = counter(wf.name, wf.help);
        for (uint16_t w = 0; w < per_worker.size(); ++w) {
            f.samples.push_back({labels{{"worker", std::to_string(w)},
                                        {"lcore", std::to_string(_worker_lcores[w])}},
                                 per_worker[w].*wf.field});
        }
    }
    dp::worker_counters total = _stats->total();
    metric_family& drops = counter("drops", "Packets the workers dropped, by reason");
    for (size_t i = 0; i < dp::drop_reason_count; ++i) {
        auto r = static_cast<dp::drop_reason>(i);
        drops.samples.push_back({labels{{"reason", std::string(dp::name(r))}}, total.drop(r)});
    }
    metric_family& punted = counter("punts", "Packets the workers punted to the control lcore");
    metric_family& handled = counter("punts_handled", "Punted packets the control lcore handled");
    for (size_t i = 0; i < dp::punt_reason_count; ++i) {
        auto r = static_cast<dp::punt_reason>(i);
        punted.samples.push_back({labels{{"reason", std::string(dp::name(r))}}, total.punt(r)});
        handled.samples.push_back({labels{{"reason", std::string(dp::name(r))}}, _cc.punts[i]});
    }
    metric_family& policed =
        counter("punts_policed", "Punts the workers dropped over their class's hub.punt-rates");
    for (size_t c = 0; c < dp::punt_class_count; ++c) {
        policed.samples.push_back(
            {labels{{"class", std::string(dp::punt_class_name(c))}}, total.punts_policed[c]});
    }

    // Ports: the NIC's counters beside the workers' and the control lcore's.
    struct port_field {
        const char* name;
        const char* help;
    };
    static constexpr port_field port_fields[] = {
        {"port_rx_packets", "Packets the NIC received"},
        {"port_tx_packets", "Packets the NIC sent"},
        {"port_rx_bytes", "Bytes the NIC received"},
        {"port_tx_bytes", "Bytes the NIC sent"},
        {"port_rx_missed", "Packets the NIC dropped for want of RX descriptors"},
        {"port_rx_errors", "Erroneous packets the NIC received"},
        {"port_tx_errors", "Packets the NIC failed to send"},
        {"port_rx_nombuf", "RX mbuf allocation failures"},
        {"port_control_tx_packets", "Frames the control lcore sent on the port"},
        {"port_foreign_unicast_dropped",
         "Unicast frames for another MAC dropped before the workers"},
    };
    std::vector<metric_family*> pf;
    for (const port_field& f : port_fields) {
        pf.push_back(&counter(f.name, f.help));
    }
    metric_family& link = gauge("port_link_up", "1 when the port's link is up");
    for (const port_rt& p : _ports) {
        rte_eth_stats es{};
        (void)rte_eth_stats_get(p.opened.id, &es);
        uint64_t v[] = {es.ipackets,  es.opackets,
                        es.ibytes,    es.obytes,
                        es.imissed,   es.ierrors,
                        es.oerrors,   es.rx_nombuf,
                        p.control_tx, dp::foreign_unicast_dropped(p.opened.id)};
        for (size_t i = 0; i < pf.size(); ++i) {
            pf[i]->samples.push_back({labels{{"port", p.name}}, v[i]});
        }
        link.samples.push_back({labels{{"port", p.name}}, p.link_up ? 1u : 0u});
    }

    // SAs.
    metric_family& sa_packets = counter("sa_packets", "Packets through a manual SA");
    metric_family& sa_bytes = counter("sa_bytes", "Bytes through a manual SA");
    for (const auto& [key, ps] : _sas) {
        for (const crypto::sa* s : {ps->in.get(), ps->out.get()}) {
            bool in = s->direction() == crypto::sa_direction::inbound;
            labels l{{"profile", key.first},
                     {"peer", wire::format_ipv4(key.second)},
                     {"direction", in ? "inbound" : "outbound"},
                     {"spi", fmt::format("0x{:08x}", s->spi())}};
            sa_packets.samples.push_back({l, s->packets()});
            sa_bytes.samples.push_back({l, s->bytes()});
        }
    }

    // The control lcore's own counters (show stats: Control).
    struct control_field {
        const char* name;
        const char* help;
        uint64_t value;
    };
    exception_counters exc = _exception.total();
    const control_field control_fields[] = {
        {"icmp_echo_replies", "ICMP echo replies the hub sent", _cc.icmp_echo_replies},
        {"icmp_errors_sent", "ICMP errors the hub sent", _cc.icmp_errors_sent},
        {"local_unhandled", "Packets addressed to the hub it had no use for", _cc.for_us_unhandled},
        {"arp_bad", "Malformed or foreign ARP packets", _cc.arp_bad},
        {"arp_requests_sent", "ARP requests sent", _neighbors.requests_sent()},
        {"arp_replies_sent", "ARP replies sent", _neighbors.replies_sent()},
        {"arp_announcements_sent", "Gratuitous ARP requests sent", _neighbors.announcements_sent()},
        {"nhrp_tx", "NHRP packets the hub sent", _cc.nhrp_sent},
        {"nhrp_tx_esp", "NHRP packets sent as ESP through the control forwarder", _cc.nhrp_tx_esp},
        {"nhrp_tx_no_esp_path", "NHRP packets to an IPsec peer without an SA or adjacency slot",
         _cc.nhrp_tx_no_esp_path},
        {"nhrp_held_dropped", "NHRP packets dropped waiting for the peer's ARP",
         _cc.nhrp_held_dropped},
        {"control_tx_frames", "Frames the control lcore sent", _cc.tx_frames},
        {"control_tx_failed", "Frames the control lcore failed to send", _cc.tx_failed},
        {"control_forwarded", "Packets the control lcore forwarded itself (encap, ESP)",
         _cc.forwarded},
        {"control_forward_failed", "Packets the control lcore could not forward (no mbuf room)",
         _cc.forward_failed},
        {"control_no_route", "Packets the control lcore had no route for", _cc.no_route},
        {"control_no_binding", "Packets to a tunnel next hop nobody registered", _cc.no_binding},
        {"control_directed_broadcast", "Packets to a LAN subnet's broadcast address, dropped",
         _cc.directed_broadcast},
        {"held_dropped", "Packets dropped waiting for ARP", _cc.held_dropped},
        {"multicast_copies", "Multicast copies sent to spokes", _cc.multicast_copies},
        {"multicast_link_local", "Link-local multicast packets not replicated",
         _cc.multicast_link_local},
        {"multicast_backlog_dropped", "Multicast packets dropped with the replication backlog full",
         _cc.multicast_backlog_dropped},
        {"icmp_errors_limited", "ICMP errors not sent: over hub.icmp-error-rate",
         _cc.icmp_errors_limited},
        {"control_tx_paused", "Control lcore frames not sent: their port is paused", _cc.tx_paused},
        {"arp_evicted", "ARP entries evicted from a full table", _neighbors.evicted()},
        {"arp_aged", "ARP entries aged out", _neighbors.aged()},
        {"arp_mac_changes", "Known ARP entries moved to another MAC", _neighbors.mac_changes()},
        {"arp_mac_changes_deferred", "ARP claims of another MAC held back by the change hold",
         _neighbors.mac_changes_deferred()},
        {"publish_failed", "Table updates the publisher could not make", _cc.publish_failed},
        {"mbuf_alloc_failed", "Control lcore mbuf allocation failures", _cc.mbuf_alloc_failed},
        {"reloads", "Reloads applied (SIGHUP or dmvpnctl reload)", _cc.reloads},
        {"reloads_rejected", "Reloads refused, the running topology kept", _cc.reloads_rejected},
        {"ike_rx", "IKE datagrams passed to the IKE thread", _cc.ike_rx},
        {"ike_rx_bad", "UDP 500/4500 packets to an IKE address that were not IKE", _cc.ike_rx_bad},
        {"ike_rx_dropped", "IKE datagrams dropped: the IKE thread's queue was full",
         _cc.ike_rx_dropped},
        {"ike_tx", "IKE datagrams sent", _cc.ike_tx},
        {"log_lines_dropped", "Log lines dropped: the logger thread's queue was full",
         log::dropped_lines()},
        {"ike_child_installs", "IKEv2 CHILD_SA pairs installed", _cc.ike_installs},
        {"ike_child_install_failed", "IKEv2 CHILD_SA pairs that could not be installed",
         _cc.ike_install_failed},
        {"ike_child_removes", "IKEv2 CHILD_SA pairs removed", _cc.ike_removes},
        {"ike_child_outbound_waits",
         "IKEv2 CHILD_SA pairs from a peer's rekey whose outbound waited for the peer's traffic "
         "or DELETE",
         _cc.ike_outbound_waits},
        {"ike_child_drains",
         "IKEv2 CHILD_SA pairs removed after a rekey whose inbound SA kept decrypting a while",
         _cc.ike_drains},
        {"exception_to_kernel", "Packets written to the exception path's kernel interfaces",
         exc.to_kernel},
        {"exception_to_kernel_multicast",
         "Link-local multicast (224.0.0.0/24) written to the kernel interfaces",
         exc.to_kernel_multicast},
        {"exception_to_kernel_limited",
         "Packets for the kernel interfaces dropped over routing.interfaces rate",
         exc.to_kernel_limited},
        {"exception_to_kernel_full", "Packets the kernel interfaces' queues refused",
         exc.to_kernel_full},
        {"exception_from_kernel", "Packets read from the kernel interfaces and sent on",
         exc.from_kernel},
        {"exception_from_kernel_multicast",
         "Multicast packets from the kernel interfaces: replicated to spokes, or sent on a "
         "port",
         exc.from_kernel_multicast},
        {"exception_from_kernel_broadcast",
         "Broadcast packets from the kernel interfaces: to ff:ff:ff:ff:ff:ff on a port, or "
         "replicated to spokes",
         exc.from_kernel_broadcast},
        {"exception_from_kernel_limited",
         "Packets from the kernel interfaces dropped over routing.interfaces rate",
         exc.from_kernel_limited},
        {"exception_from_kernel_unsent",
         "Multicast or broadcast from a port's kernel interface the port did not take (paused, "
         "TX full)",
         exc.from_kernel_unsent},
        {"exception_from_kernel_not_ipv4", "Packets from the kernel interfaces that were not IPv4",
         exc.from_kernel_not_ipv4},
    };
    for (const control_field& c : control_fields) {
        counter(c.name, c.help).samples.push_back({{}, c.value});
    }
    gauge("adjacencies", "Next hops with an adjacency slot")
        .samples.push_back({{}, _rib->nexthop_count()});
    gauge("routes", "Routes installed in the FIB").samples.push_back({{}, _rib->installed_count()});
    for (const routing_counter& c : routing_counters()) {
        (c.gauge ? gauge(std::string(c.name), std::string(c.help))
                 : counter(std::string(c.name), std::string(c.help)))
            .samples.push_back({{}, c.value});
    }
    gauge("arp_entries", "ARP table entries").samples.push_back({{}, _neighbors.size()});
    gauge("multicast_targets", "Multicast replication targets")
        .samples.push_back({{}, _mcast.size()});
    gauge("control_loop_p99_seconds", "99th percentile of the control loop's busy passes")
        .samples.push_back({{}, _loop_time.quantile_ns(0.99), true});
    gauge("control_loop_max_seconds", "Longest busy pass of the control loop")
        .samples.push_back({{}, _loop_time.max_ns(), true});
    counter("nhrp_service_packets", "NHRP packets timed from the worker's RX burst to TX")
        .samples.push_back({{}, _nhrp_time.count()});
    gauge("nhrp_service_p99_seconds", "99th percentile of NHRP's RX burst to TX inside the hub")
        .samples.push_back({{}, _nhrp_time.quantile_ns(0.99), true});
    gauge("nhrp_service_max_seconds", "Longest NHRP RX burst to TX inside the hub")
        .samples.push_back({{}, _nhrp_time.max_ns(), true});
    // The same time's segments (worker, ring, burst, handling), one label each.
    metric_family& seg_p99 = gauge("nhrp_service_segment_p99_seconds",
                                   "99th percentile of each segment of NHRP's time in the hub");
    metric_family& seg_max = gauge("nhrp_service_segment_max_seconds",
                                   "Longest of each segment of NHRP's time in the hub");
    for (const auto& [name, t] : nhrp_segments()) {
        seg_p99.samples.push_back({{{"segment", std::string(name)}}, t->quantile_ns(0.99), true});
        seg_max.samples.push_back({{{"segment", std::string(name)}}, t->max_ns(), true});
    }
    gauge("rcu_pending", "Objects waiting for the workers' quiescent state")
        .samples.push_back({{}, _pub->pending()});

    // NHRP: show nhrp summary (cache) and show nhrp traffic (per tunnel, by type and reason).
    metric_family& entries = gauge("nhrp_cache_entries", "NHRP cache entries, by tunnel");
    metric_family& rx = counter("nhrp_received", "NHRP packets received, by tunnel and type");
    metric_family& tx = counter("nhrp_sent", "NHRP packets sent, by tunnel and type");
    metric_family& dropped =
        counter("nhrp_dropped", "NHRP packets and requests refused or dropped, by reason");
    metric_family& retx = counter("nhrp_purge_retransmits", "Purge Requests sent again");
    for (const nhrp::tunnel_view& t : _server->tunnels()) {
        std::string tn(t.name);
        entries.samples.push_back({labels{{"tunnel", tn}}, t.entries});
        for (size_t i = 1; i < t.stats->sent.size(); ++i) {
            std::string type(nhrp::name(static_cast<nhrp::op>(i)));
            rx.samples.push_back({labels{{"tunnel", tn}, {"type", type}}, t.stats->received[i]});
            tx.samples.push_back({labels{{"tunnel", tn}, {"type", type}}, t.stats->sent[i]});
        }
        for (size_t i = 0; i < nhrp::drop_reason_count; ++i) {
            dropped.samples.push_back(
                {labels{{"tunnel", tn},
                        {"reason", std::string(nhrp::name(static_cast<nhrp::drop_reason>(i)))}},
                 t.stats->dropped[i]});
        }
        retx.samples.push_back({labels{{"tunnel", tn}}, t.stats->purge_retransmits});
    }
    size_t dynamic = 0;
    size_t nat = 0;
    size_t unique = 0;
    for (const nhrp::entry_view& e : _server->entries()) {
        dynamic += e.type == nhrp::entry_type::dynamic ? 1 : 0;
        nat += (e.flags & nhrp::entry_flag::nat) != 0 ? 1 : 0;
        unique += (e.flags & nhrp::entry_flag::unique) != 0 ? 1 : 0;
    }
    gauge("nhrp_cache_dynamic_entries", "Registered (dynamic) NHRP entries")
        .samples.push_back({{}, dynamic});
    gauge("nhrp_cache_nat_entries", "NHRP entries behind NAT").samples.push_back({{}, nat});
    gauge("nhrp_cache_unique_entries", "NHRP entries registered unique")
        .samples.push_back({{}, unique});
    gauge("nhrp_cache_memory_bytes", "Memory the NHRP cache holds")
        .samples.push_back({{}, _server->cache_memory_bytes()});
    gauge("nhrp_pending_purges", "Purge Requests waiting for their reply")
        .samples.push_back({{}, _server->pending_purges()});
    gauge("uptime_seconds", "Seconds since the hub started")
        .samples.push_back(
            {{},
             static_cast<uint64_t>(
                 std::chrono::duration_cast<std::chrono::seconds>(now - _started).count())});
    return {std::make_move_iterator(out.begin()), std::make_move_iterator(out.end())};
}

}  // namespace dmvpn::hub
