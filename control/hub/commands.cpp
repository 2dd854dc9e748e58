// The hub's management commands (dmvpnctl), reload, and the telemetry snapshot.
#include <algorithm>
#include <sstream>

#include <fmt/core.h>
#include <rte_ethdev.h>

#include "config/load.hpp"
#include "control/cpu_placement.hpp"
#include "control/hub/hub.hpp"
#include "control/hub/ike_glue.hpp"
#include "control/ike/key_log.hpp"
#include "control/hub/json.hpp"
#include "control/hub/telemetry.hpp"
#include "control/log.hpp"
#include "control/nhrp/show.hpp"
#include "dataplane/port.hpp"
#include "dataplane/wire/ipv4.hpp"

namespace dmvpn::hub {

namespace {

std::vector<std::string> words_of(std::string_view line) {
    std::vector<std::string> w;
    std::istringstream in{std::string(line)};
    std::string s;
    while (in >> s) {
        w.push_back(s);
    }
    return w;
}

control::mgmt_reply fail(std::string msg) {
    return control::mgmt_reply{false, std::move(msg) + "\n"};
}

constexpr std::string_view help_text =
    "commands (add --json for JSON):\n"
    "  show nhrp [detail|brief|summary|traffic|nhs [detail]]\n"
    "  show dmvpn\n"
    "  show interfaces\n"
    "  show stats [summary]  (summary: without the per-SA list)\n"
    "  show arp\n"
    "  show ip route [ADDRESS|PREFIX/LEN]\n"
    "  clear nhrp [ADDRESS]\n"
    "  show crypto ikev2 sa [detail] | show crypto isakmp sa [detail] |\n"
    "  show crypto ipsec sa | show crypto session | show crypto ikev2 stats\n"
    "  clear crypto sa [peer ADDRESS]\n"
    "  port pause|resume PORT\n"
    "  reload\n"
    "  debug nhrp | undebug nhrp | undebug all  (NHRP packets in the log, as IOS prints them)\n";

std::string ip(uint32_t a) { return wire::format_ipv4(a); }

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string l;
    while (std::getline(in, l)) {
        if (!l.empty()) {
            out.push_back(l);
        }
    }
    return out;
}

}  // namespace

control::mgmt_reply hub::command(std::string_view line) {
    std::vector<std::string> w = words_of(line);
    bool json = std::erase(w, std::string("--json")) > 0;
    auto f = json ? nhrp::show_format::json : nhrp::show_format::text;
    timestamp now = std::chrono::steady_clock::now();
    if (w.empty() || w[0] == "help") {
        return {true, std::string(help_text)};
    }
    if (w[0] == "show" && w.size() >= 2) {
        const std::string& what = w[1];
        std::string arg = w.size() >= 3 ? w[2] : "";
        if (what == "ip" && arg == "route") {
            return show_ip_route(w.size() >= 4 ? w[3] : "", json);
        }
        if (what == "nhrp" || what == "ip") {
            if (what == "ip") {  // "show ip nhrp ...", as IOS spells it
                if (arg != "nhrp") {
                    return fail("unknown command: " + std::string(line));
                }
                arg = w.size() >= 4 ? w[3] : "";
            }
            if (arg.empty()) {
                return {true, nhrp::show_nhrp(*_server, now, f, false)};
            }
            if (arg == "detail") {
                return {true, nhrp::show_nhrp(*_server, now, f, true)};
            }
            if (arg == "brief") {
                return {true, nhrp::show_nhrp_brief(*_server, f)};
            }
            if (arg == "summary") {
                return {true, nhrp::show_nhrp_summary(*_server, f)};
            }
            if (arg == "traffic") {
                return {true, nhrp::show_nhrp_traffic(*_server, f)};
            }
            if (arg == "nhs") {
                std::string more = w.size() >= (what == "ip" ? 5u : 4u) ? w.back() : "";
                if (!more.empty() && more != "detail") {
                    return fail("show nhrp nhs: expected detail, got " + more);
                }
                return {true, nhrp::show_nhrp_nhs(*_server, now, f, more == "detail")};
            }
            return fail("show nhrp: expected detail, brief, summary, traffic or nhs, got " + arg);
        }
        if (what == "dmvpn") {
            return {true, nhrp::show_dmvpn(*_server, now, f)};
        }
        if (what == "interfaces") {
            return {true, show_interfaces(json)};
        }
        if (what == "stats") {
            if (!arg.empty() && arg != "summary") {
                return fail("show stats: expected summary, got " + arg);
            }
            return {true, show_stats(json, arg == "summary")};
        }
        if (what == "arp") {
            return {true, show_arp(json)};
        }
        if (what == "crypto") {
            std::string view;
            for (size_t i = 2; i < w.size(); ++i) {
                view += (view.empty() ? "" : " ") + w[i];
            }
            if (view == "ike initiator") {
                return {true, show_ike_initiator(json, now)};
            }
            return show_crypto(view, json);
        }
    }
    if (w[0] == "clear" && w.size() >= 3 && w[1] == "crypto" && w[2] == "sa") {
        uint32_t peer = 0;
        if (w.size() == 5 && w[3] == "peer") {
            auto a = wire::parse_ipv4_address(w[4]);
            if (!a) {
                return fail("clear crypto sa: not an IPv4 address: " + w[4]);
            }
            peer = *a;
        } else if (w.size() != 3) {
            return fail("clear crypto sa: expected nothing or peer ADDRESS");
        }
        if (!_ike) {
            return fail("clear crypto sa: no IKEv2 here (manual SAs stay as configured)");
        }
        if (!_ike->post(ike::clear_cmd{peer})) {
            return fail("clear crypto sa: the IKE thread is busy, try again");
        }
        std::string who = peer == 0 ? std::string("every peer") : ip(peer);
        log::notice("clear crypto sa: {}", who);
        if (json) {
            return {true, json_members().str("cleared", who).done() + "\n"};
        }
        return {true, fmt::format("clearing the IKEv2 and IPsec SAs of {}\n", who)};
    }
    if (w[0] == "clear" && w.size() >= 2 && w[1] == "nhrp") {
        std::optional<uint32_t> addr;
        if (w.size() >= 3) {
            addr = wire::parse_ipv4_address(w[2]);
            if (!addr) {
                return fail("clear nhrp: not an IPv4 address: " + w[2]);
            }
        }
        size_t before = _server->cache_size();
        for (const config::tunnel& t : _topo.tunnels) {
            apply(_server->clear(*_slots.slot(t.name), addr, now), now);
        }
        size_t removed = before - std::min(before, _server->cache_size());
        if (json) {
            return {true, json_members().num("cleared", removed).done() + "\n"};
        }
        return {true, fmt::format("cleared {} entr{}\n", removed, removed == 1 ? "y" : "ies")};
    }
    if (w[0] == "port" && w.size() == 3 && (w[1] == "pause" || w[1] == "resume")) {
        return port_pause(w[2], w[1] == "pause", json);
    }
    if (w.size() == 2 && w[0] == "debug" && w[1] == "nhrp") {
        _debug_nhrp = true;
        log::notice("NHRP packet debugging is on");
        return {true, "NHRP packet debugging is on\n"};
    }
    if (w.size() == 2 && w[0] == "undebug" && (w[1] == "nhrp" || w[1] == "all")) {
        _debug_nhrp = false;
        log::notice("NHRP packet debugging is off");
        return {true, "NHRP packet debugging is off\n"};
    }
    if (w[0] == "reload" && w.size() == 1) {
        control::mgmt_reply r = reload();
        if (json) {
            r.body = json_members().boolean("ok", r.ok).str("message", r.body).done() + "\n";
        }
        return r;
    }
    return fail("unknown command: " + std::string(line) + "\n" + std::string(help_text));
}

// ---------------------------------------------------------------- port pause

control::mgmt_reply hub::port_pause(const std::string& name, bool pause, bool json) {
    auto p = std::find_if(_ports.begin(), _ports.end(),
                          [&](const port_rt& q) { return q.name == name; });
    if (p == _ports.end()) {
        return fail("port: no port named " + name);
    }
    if (!pause) {
        _pub->resume_port(p->opened.id);
        p->pause_token.reset();
    } else if (!p->pause_token) {
        p->pause_token = _pub->pause_port(p->opened.id);
        if (!p->pause_token) {
            return fail("port: " + name + " cannot be paused (DPDK port id too large)");
        }
    }
    // Never waits: the caller repeats `port pause` until the workers have confirmed.
    bool confirmed = pause && _pub->port_quiet(*p->pause_token);
    if (json) {
        return {true, json_members()
                              .str("port", name)
                              .boolean("paused", pause)
                              .boolean("confirmed", confirmed)
                              .done() +
                          "\n"};
    }
    if (!pause) {
        return {true, fmt::format("port {}: resumed\n", name)};
    }
    return {true, confirmed ? fmt::format("port {}: paused, no worker polls it\n", name)
                            : fmt::format("port {}: pausing, workers not yet past a quiescent "
                                          "point (repeat the command)\n",
                                          name)};
}

// ---------------------------------------------------------------- reload

control::mgmt_reply hub::reload() {
    auto reject = [this](std::string why) {
        ++_cc.reloads_rejected;
        log::error("config reload refused, the running topology is unchanged: {}", why);
        return fail("reload rejected, the running topology is unchanged: " + why);
    };
    if (!_config_path) {
        return reject("the hub runs the embedded default topology (no --config file)");
    }
    auto loaded = config::load_file(*_config_path);
    if (!loaded) {
        return reject("\n" + loaded.error_text());
    }
    for (const config::warning& w : loaded.warnings()) {
        log::warning("config reload: {}", config::to_string(w));
    }
    config::topology next = std::move(loaded).value();
    config::topology_diff d = config::diff(_topo, next);
    if (d.empty()) {
        ++_cc.reloads;
        log::notice("config reload: no change");
        return {true, "reload: no change\n"};
    }
    if (d.needs_restart()) {
        std::string what;
        for (const auto* v : {&d.ports_added, &d.ports_removed, &d.ports_changed}) {
            for (const std::string& n : *v) {
                what += (what.empty() ? "port " : ", port ") + n;
            }
        }
        if (d.hub_changed) {
            what += what.empty() ? "hub settings" : ", hub settings";
        }
        if (d.routing_changed) {
            what += what.empty() ? "routing" : ", routing";
        }
        return reject(what + " changed: those need a restart of dmvpn-hub");
    }
    // A kernel interface carries its tunnel's overlay address from the start: removing the
    // tunnel or moving its address needs a restart.
    for (const exception_iface& e : _exception.interfaces()) {
        const config::tunnel* a = _topo.find_tunnel(e.cfg.tunnel);
        const config::tunnel* b = next.find_tunnel(e.cfg.tunnel);
        if (a != nullptr && (b == nullptr || !(a->overlay_address == b->overlay_address) ||
                             !(a->overlay_prefix == b->overlay_prefix))) {
            return reject(
                fmt::format("tunnel {} has the kernel interface {}: removing it or "
                            "changing its overlay address needs a restart of dmvpn-hub",
                            e.cfg.tunnel, e.cfg.name));
        }
    }
    tunnel_slots slots = _slots;
    if (!slots.assign(next)) {
        return reject(fmt::format("at most {} tunnels are supported", dp::max_tunnels));
    }
    for (const config::tunnel& t : next.tunnels) {
        if (std::none_of(_ports.begin(), _ports.end(),
                         [&](const port_rt& p) { return p.name == t.port; })) {
            return reject("tunnel " + t.name + " names port " + t.port + ", which is not open");
        }
    }
    // New SAs first: a bad key refuses the reload before anything changed.
    std::map<sa_key, std::unique_ptr<peer_sa>> fresh;
    if (auto err = build_sas(next, fresh)) {
        return reject(*err);
    }
    // IKEv2: a running engine takes the new profiles on its thread (established SAs are kept;
    // the result is logged); one appearing now starts with an engine checked here.
    std::vector<ike::tunnel_binding> ike_next = ike_bindings(next, slots);
    std::unique_ptr<ike::engine> ike_new;
    if (!_ike && !ike_next.empty()) {
        auto e = ike::engine::create(next.ipsec_profiles, ike_next);
        if (!e) {
            return reject("IKEv2: " + e.error());
        }
        ike_new = std::move(e.value());
        ike_new->set_key_log(_ike_key_log);
    }
    // The NHRP server is kept, with its cache, unless a tunnel's NHRP view changed.
    bool replace = !d.tunnels_added.empty() || !d.tunnels_removed.empty();
    for (const std::string& n : d.tunnels_changed) {
        const config::tunnel* a = _topo.find_tunnel(n);
        const config::tunnel* b = next.find_tunnel(n);
        replace = replace || a == nullptr || b == nullptr || !same_nhrp_view(*a, *b);
    }
    std::optional<nhrp::server> new_server;
    size_t carried = 0;
    if (replace) {
        auto sc =
            server_config_of(next, slots, [this](uint32_t dst) { return route_for_nhrp(dst); });
        auto s = nhrp::server::create(std::move(sc));
        if (!s) {
            return reject(fmt::format("NHRP server: {}", nhrp::name(s.error())));
        }
        new_server.emplace(std::move(s.value()));
    }

    // ---- commit: nothing below refuses
    timestamp now = std::chrono::steady_clock::now();
    ++_cc.reloads;
    _topo = std::move(next);
    _slots = slots;
    std::map<std::string, opened_port> opened;
    for (const port_rt& p : _ports) {
        opened[p.name] = p.opened;
    }
    _pub->set_topology(dataplane_topology(_topo, _slots, opened));
    // SAs: keep the unchanged ones (their sequence numbers and replay windows), add the new,
    // retire those no profile names any more once no worker can still hold them.
    std::vector<std::unique_ptr<peer_sa>> retired;
    for (auto it = _sas.begin(); it != _sas.end();) {
        bool still = it->second->id != 0;  // negotiated: the engine keeps or deletes it
        if (const config::ipsec_profile* prof = _topo.find_ipsec_profile(it->first.first)) {
            for (const config::manual_sa& m : prof->manual_sas) {
                still = still || (m.peer.value == it->first.second && m == it->second->cfg &&
                                  *prof == it->second->profile_cfg);
            }
        }
        if (still) {
            ++it;
        } else {
            log_sa(*it->second, "down");
            retired.push_back(std::move(it->second));
            it = _sas.erase(it);
        }
    }
    for (auto& [k, ps] : fresh) {
        if (auto o = _sas.find(k); o != _sas.end()) {  // a negotiated pair the profile now keys
            log_sa(*o->second, "down");
            retired.push_back(std::move(o->second));
        }
        log_sa(*ps, "up");
        _sas[k] = std::move(ps);
    }
    install_inbound_sas();
    _ike_bindings = std::move(ike_next);
    _ike_peers.configure(ike_peers::targets_of(_topo, _slots), now);
    if (ike_new) {
        _ike = std::make_unique<ike::thread>(
            std::make_unique<ike::engine_handler<ike::engine>>(std::move(ike_new)));
        log::notice("IKEv2: started");
    } else if (_ike && !_ike->post(ike::reconfigure_cmd{_topo.ipsec_profiles, _ike_bindings})) {
        log::error("IKEv2: reload not passed to the IKE thread (its queue is full)");
    }
    if (replace) {
        // Spokes registered with the old server keep their adjacencies until their holding
        // time would have run out; re-registering with the new server adopts them.
        for (const nhrp::entry_view& e : _server->entries()) {
            auto b = _bindings.find({static_cast<uint16_t>(e.tunnel), e.address});
            if (b == _bindings.end()) {
                continue;
            }
            bool tunnel_kept = _slots.name(static_cast<uint16_t>(e.tunnel)) != nullptr;
            b->second.carried_until =
                (e.type == nhrp::entry_type::dynamic && tunnel_kept && e.expires) ? *e.expires
                                                                                  : now;
            if (!_carried_due || *b->second.carried_until < *_carried_due) {
                _carried_due = b->second.carried_until;  // the 1 s tick walks them then
            }
        }
        // The new server takes over the registrations the old one held (same tunnel, still on
        // its subnet): spokes stay in `show nhrp` and keep their adjacencies without having to
        // register again. Those it cannot take keep their adjacency until their holding time
        // would have run out (carried_until above), or until they register again.
        std::vector<nhrp::entry_view> held = _server->entries();
        _server.reset();
        _server.emplace(std::move(*new_server));
        apply(_server->start(now), now);
        apply(_server->adopt(held, now, &carried), now);
    }
    apply_config_routes();
    load_static_multicast();
    republish_all(now);
    for (auto& ps : retired) {
        peer_sa* raw = ps.release();
        _pub->retire([raw] { delete raw; });
    }
    std::string msg = "reload: applied";
    auto list = [&msg](std::string_view what, const std::vector<std::string>& names) {
        for (const std::string& n : names) {
            msg += fmt::format("; {} {}", what, n);
        }
    };
    list("tunnel added", d.tunnels_added);
    list("tunnel removed", d.tunnels_removed);
    list("tunnel changed", d.tunnels_changed);
    list("ipsec-profile added", d.ipsec_profiles_added);
    list("ipsec-profile removed", d.ipsec_profiles_removed);
    list("ipsec-profile changed", d.ipsec_profiles_changed);
    if (d.routes_changed) {
        msg += "; routes changed";
    }
    if (replace) {
        msg += fmt::format("; NHRP server restarted, {} registration{} carried over", carried,
                           carried == 1 ? "" : "s");
    }
    if (d.management_changed) {
        msg += "; management socket change takes effect at the next restart";
    }
    if (d.log_level_changed) {
        msg += _log_level_from_cli ? "; log-level kept as --log-level set it"
                                   : "; log-level " + _topo.hub.log_level;
        if (!_log_level_from_cli) {
            log::set_level(log::parse_level(_topo.hub.log_level).value_or(log::level::info));
        }
    }
    log::notice("config {}", msg);
    return {true, msg + "\n"};
}

// ---------------------------------------------------------------- show

std::string hub::show_interfaces(bool json) const {
    std::string ports_json;
    std::string text =
        "Port        DPDK  MAC                Address             Role      MTU   "
        "Link\n";
    for (const port_rt& p : _ports) {
        dp::link_state l = dp::port_link(p.opened.id);
        std::string gw = p.cfg.gateway ? config::to_string(*p.cfg.gateway) : "";
        if (json) {
            ports_json += (ports_json.empty() ? "" : ",") +
                          json_members()
                              .str("name", p.name)
                              .str("device", p.cfg.dev.spec)
                              .num("dpdk_port", p.opened.id)
                              .str("mac", format_mac(p.opened.mac))
                              .str("address", config::to_string(p.cfg.address))
                              .str("gateway", gw)
                              .str("role", config::name(p.cfg.role))
                              .num("mtu", p.opened.mtu)
                              .boolean("link_up", l.up)
                              .boolean("paused", p.pause_token.has_value())
                              .num("speed_mbps", l.speed_mbps)
                              .num("control_tx", p.control_tx)
                              .done();
        } else {
            text += fmt::format("{:<12}{:<6}{:<19}{:<20}{:<10}{:<6}{}\n", p.name, p.opened.id,
                                format_mac(p.opened.mac), config::to_string(p.cfg.address),
                                config::name(p.cfg.role), p.opened.mtu,
                                l.up ? fmt::format("up {} Mb/s", l.speed_mbps) : "down");
        }
    }
    std::string tunnels_json;
    text +=
        "\nTunnel      Slot  Overlay             NBMA             Key         MTU   MSS   "
        "IPsec         Entries\n";
    std::map<uint32_t, size_t> entries;
    for (const nhrp::tunnel_view& tv : _server->tunnels()) {
        entries[tv.id] = tv.entries;
    }
    for (const config::tunnel& t : _topo.tunnels) {
        uint16_t slot = *_slots.slot(t.name);
        std::string key = t.gre_key ? std::to_string(*t.gre_key) : "none";
        std::string overlay =
            config::to_string(t.overlay_address) + "/" + std::to_string(t.overlay_prefix.length);
        if (json) {
            tunnels_json += (tunnels_json.empty() ? "" : ",") +
                            json_members()
                                .str("name", t.name)
                                .num("slot", slot)
                                .str("port", t.port)
                                .str("overlay", overlay)
                                .str("nbma", config::to_string(t.nbma_source))
                                .raw("gre_key", t.gre_key ? std::to_string(*t.gre_key) : "null")
                                .num("ip_mtu", t.ip_mtu)
                                .num("tcp_adjust_mss", t.tcp_adjust_mss)
                                .str("ipsec_profile", t.ipsec_profile)
                                .num("phase", t.nhrp.phase)
                                .num("nhrp_entries", entries[slot])
                                .done();
        } else {
            text += fmt::format("{:<12}{:<6}{:<20}{:<17}{:<12}{:<6}{:<6}{:<14}{}\n", t.name, slot,
                                overlay, config::to_string(t.nbma_source), key, t.ip_mtu,
                                t.tcp_adjust_mss, t.ipsec_profile.empty() ? "-" : t.ipsec_profile,
                                entries[slot]);
        }
    }
    if (json) {
        return json_members()
                   .raw("ports", "[" + ports_json + "]")
                   .raw("tunnels", "[" + tunnels_json + "]")
                   .done() +
               "\n";
    }
    return text;
}

std::string hub::show_stats(bool json, bool summary) const {
    dp::worker_counters total = _stats->total();
    // Per worker.
    std::string workers_json;
    std::string text = "Workers\n";
    for (uint16_t w = 0; w < _stats->workers(); ++w) {
        dp::worker_counters c = _stats->read(w);
        if (json) {
            workers_json += (workers_json.empty() ? "" : ",") +
                            json_members()
                                .num("worker", w)
                                .num("lcore", _worker_lcores[w])
                                .num("rx_packets", c.rx_packets)
                                .num("tx_packets", c.tx_packets)
                                .num("bursts", c.bursts)
                                .num("drops", c.total_drops())
                                .num("punts", c.total_punts())
                                .num("idle_sleeps", c.idle_sleeps)
                                .num("fragmented", c.fragmented)
                                .num("fragments", c.fragments)
                                .num("natt_in", c.natt_in)
                                .num("natt_out", c.natt_out)
                                .num("redirect_suppressed", c.redirect_suppressed)
                                .num("event_alloc_failed", c.event_alloc_failed)
                                .done();
        } else {
            text += fmt::format("  worker {} (lcore {}): rx {} tx {} drops {} punts {}\n", w,
                                _worker_lcores[w], c.rx_packets, c.tx_packets, c.total_drops(),
                                c.total_punts());
        }
    }
    // Per port: the NIC's own counters beside the workers'.
    std::string ports_json;
    text += "Ports\n";
    for (const port_rt& p : _ports) {
        rte_eth_stats es{};
        (void)rte_eth_stats_get(p.opened.id, &es);
        uint16_t id = p.opened.id;
        if (json) {
            ports_json += (ports_json.empty() ? "" : ",") +
                          json_members()
                              .str("name", p.name)
                              .num("ipackets", es.ipackets)
                              .num("opackets", es.opackets)
                              .num("ibytes", es.ibytes)
                              .num("obytes", es.obytes)
                              .num("imissed", es.imissed)
                              .num("ierrors", es.ierrors)
                              .num("oerrors", es.oerrors)
                              .num("rx_nombuf", es.rx_nombuf)
                              .num("worker_rx_packets", total.port_rx_packets[id])
                              .num("worker_tx_packets", total.port_tx_packets[id])
                              .num("control_tx_packets", p.control_tx)
                              .num("not_for_us_dropped", dp::foreign_unicast_dropped(id))
                              .done();
        } else {
            text += fmt::format(
                "  {}: rx {} ({} bytes) tx {} ({} bytes) missed {} errors {}/{} "
                "control tx {} not for us {}\n",
                p.name, es.ipackets, es.ibytes, es.opackets, es.obytes, es.imissed, es.ierrors,
                es.oerrors, p.control_tx, dp::foreign_unicast_dropped(id));
        }
    }
    // Per drop reason and punt reason, over all workers.
    json_members drops;
    text += "Drops\n";
    for (size_t i = 0; i < dp::drop_reason_count; ++i) {
        auto r = static_cast<dp::drop_reason>(i);
        drops.num(dp::name(r), total.drop(r));
        if (total.drop(r) != 0) {
            text += fmt::format("  {}: {}\n", dp::name(r), total.drop(r));
        }
    }
    json_members punts;
    text += "Punts (sent by workers / handled by the control lcore)\n";
    for (size_t i = 0; i < dp::punt_reason_count; ++i) {
        auto r = static_cast<dp::punt_reason>(i);
        punts.raw(dp::name(r),
                  json_members().num("punted", total.punt(r)).num("handled", _cc.punts[i]).done());
        if (total.punt(r) != 0 || _cc.punts[i] != 0) {
            text += fmt::format("  {}: {} / {}\n", dp::name(r), total.punt(r), _cc.punts[i]);
        }
    }
    // Punt policing: each class's hub-wide budget and what the workers dropped over it.
    json_members policing;
    auto rates = worker_punt_rates(_topo.hub.punt_rates, 1);
    text += "Punt budgets (packets per second, hub-wide / policed)\n";
    for (size_t c = 0; c < dp::punt_class_count; ++c) {
        policing.raw(
            dp::punt_class_name(c),
            json_members().num("rate", rates[c]).num("policed", total.punts_policed[c]).done());
        text += fmt::format("  {}: {} / {}\n", dp::punt_class_name(c), rates[c],
                            total.punts_policed[c]);
    }
    json_members loop;
    loop.num("passes", _loop_time.count())
        .num("max_us", _loop_time.max_ns() / 1000)
        .num("p99_us", _loop_time.quantile_ns(0.99) / 1000)
        .num("p999_us", _loop_time.quantile_ns(0.999) / 1000);
    // Where the passes that did work went: each item that ran (pass_profile.hpp).
    json_members profile;
    std::string profile_text;
    for (size_t i = 0; i < static_cast<size_t>(pass_item::count); ++i) {
        auto item = static_cast<pass_item>(i);
        const loop_time& t = _profile.of(item);
        if (t.count() == 0) {
            continue;
        }
        profile.raw(name(item), json_members()
                                    .num("count", t.count())
                                    .num("total_us", _profile.total_ns(item) / 1000)
                                    .num("p50_ns", t.quantile_ns(0.5))
                                    .num("p99_ns", t.quantile_ns(0.99))
                                    .num("p999_ns", t.quantile_ns(0.999))
                                    .num("max_ns", t.max_ns())
                                    .num("from_10us", t.count_from(10000))
                                    .num("from_50us", t.count_from(50000))
                                    .done());
        profile_text += fmt::format("  {}: {} times, {} us in all, p50 {} / p99 {} / max {} ns\n",
                                    name(item), t.count(), _profile.total_ns(item) / 1000,
                                    t.quantile_ns(0.5), t.quantile_ns(0.99), t.max_ns());
    }
    // NHRP inside the hub: the worker's RX burst to the reply handed to TX, per packet.
    json_members nhrp_time;
    nhrp_time.num("count", _nhrp_time.count())
        .num("p50_us", _nhrp_time.quantile_ns(0.5) / 1000)
        .num("p99_us", _nhrp_time.quantile_ns(0.99) / 1000)
        .num("p999_us", _nhrp_time.quantile_ns(0.999) / 1000)
        .num("max_us", _nhrp_time.max_ns() / 1000)
        .num("p50_ns", _nhrp_time.quantile_ns(0.5))
        .num("p99_ns", _nhrp_time.quantile_ns(0.99))
        .num("p999_ns", _nhrp_time.quantile_ns(0.999))
        .num("max_ns", _nhrp_time.max_ns())
        .num("after_nap", _nhrp_after_nap);
    for (size_t i = 0; i < _nhrp_dequeued_with.size(); ++i) {
        nhrp_time.num(fmt::format("dequeued_with_{}", nhrp_dequeue_buckets[i]),
                      _nhrp_dequeued_with[i]);
    }
    // Its segments, which add up to it (hub.hpp): <segment>_p50_ns, _p99_ns, _max_ns, and the
    // packets timed (the worker's and the ring's need the worker's enqueue TSC).
    std::string nhrp_segments_text;
    for (const auto& [name, t] : nhrp_segments()) {
        nhrp_time.num(fmt::format("{}_count", name), t->count())
            .num(fmt::format("{}_p50_ns", name), t->quantile_ns(0.5))
            .num(fmt::format("{}_p99_ns", name), t->quantile_ns(0.99))
            .num(fmt::format("{}_max_ns", name), t->max_ns());
        nhrp_segments_text += fmt::format("{}{} p50 {:.1f} / p99 {:.1f} / max {:.1f} us",
                                          nhrp_segments_text.empty() ? "" : ", ", name,
                                          static_cast<double>(t->quantile_ns(0.5)) / 1000,
                                          static_cast<double>(t->quantile_ns(0.99)) / 1000,
                                          static_cast<double>(t->max_ns()) / 1000);
    }
    // Per SA.
    std::string sas_json;
    text +=
        summary ? fmt::format("SAs: {} pairs (listed without `summary`)\n", _sas.size()) : "SAs\n";
    static const decltype(_sas) none;
    for (const auto& [key, ps] : summary ? none : _sas) {
        for (const crypto::sa* s : {ps->in.get(), ps->out.get()}) {
            bool in = s->direction() == crypto::sa_direction::inbound;
            if (json) {
                sas_json += (sas_json.empty() ? "" : ",") +
                            json_members()
                                .str("profile", key.first)
                                .str("peer", ip(key.second))
                                .str("direction", in ? "inbound" : "outbound")
                                .str("spi", fmt::format("0x{:08x}", s->spi()))
                                .num("packets", s->packets())
                                .num("bytes", s->bytes())
                                .boolean("soft_expired", s->soft_expired())
                                .boolean("hard_expired", s->hard_expired())
                                .done();
            } else {
                text += fmt::format("  {} {} {} spi 0x{:08x}: {} packets, {} bytes{}\n", key.first,
                                    ip(key.second), in ? "in " : "out", s->spi(), s->packets(),
                                    s->bytes(),
                                    s->hard_expired()   ? " (hard expired)"
                                    : s->soft_expired() ? " (soft expired)"
                                                        : "");
            }
        }
    }
    json_members ctl;
    ctl.num("icmp_echo_replies", _cc.icmp_echo_replies)
        .num("icmp_errors_sent", _cc.icmp_errors_sent)
        .num("icmp_errors_limited", _cc.icmp_errors_limited)
        .num("for_us_unhandled", _cc.for_us_unhandled)
        .num("arp_bad", _cc.arp_bad)
        .num("arp_requests_sent", _neighbors.requests_sent())
        .num("arp_replies_sent", _neighbors.replies_sent())
        .num("arp_announcements_sent", _neighbors.announcements_sent())
        .num("arp_entries", _neighbors.size())
        .num("arp_evicted", _neighbors.evicted())
        .num("arp_aged", _neighbors.aged())
        .num("arp_mac_changes", _neighbors.mac_changes())
        .num("arp_mac_changes_deferred", _neighbors.mac_changes_deferred())
        .num("nhrp_sent", _cc.nhrp_sent)
        .num("nhrp_tx_no_esp_path", _cc.nhrp_tx_no_esp_path)
        .num("nhrp_tx_esp", _cc.nhrp_tx_esp)
        .num("nhrp_held_dropped", _cc.nhrp_held_dropped)
        .num("tx_frames", _cc.tx_frames)
        .num("tx_failed", _cc.tx_failed)
        .num("tx_paused", _cc.tx_paused)
        .num("forwarded", _cc.forwarded)
        .num("forward_failed", _cc.forward_failed)
        .num("forwarder_tx", _forwarder ? _forwarder->counters().tx_packets : 0)
        .num("forwarder_drops", _forwarder ? _forwarder->counters().total_drops() : 0)
        .num("no_route", _cc.no_route)
        .num("no_binding", _cc.no_binding)
        .num("directed_broadcast", _cc.directed_broadcast)
        .num("held_dropped", _cc.held_dropped)
        .num("multicast_copies", _cc.multicast_copies)
        .num("multicast_link_local", _cc.multicast_link_local)
        .num("multicast_targets", _mcast.size())
        .num("multicast_backlog", _mcast_jobs.size())
        .num("multicast_backlog_dropped", _cc.multicast_backlog_dropped)
        .num("publish_failed", _cc.publish_failed)
        .num("mbuf_alloc_failed", _cc.mbuf_alloc_failed)
        .num("reloads", _cc.reloads)
        .num("reloads_rejected", _cc.reloads_rejected)
        .num("ike_rx", _cc.ike_rx)
        .num("ike_rx_bad", _cc.ike_rx_bad)
        .num("ike_rx_dropped", _cc.ike_rx_dropped)
        .num("ike_tx", _cc.ike_tx)
        .num("ike_child_installs", _cc.ike_installs)
        .num("ike_child_install_failed", _cc.ike_install_failed)
        .num("ike_child_removes", _cc.ike_removes)
        .num("ike_child_outbound_waits", _cc.ike_outbound_waits)
        .num("ike_child_drains", _cc.ike_drains)
        .num("ike_thread_wakes", _ike ? _ike->counters().wakes.load() : 0)
        .num("ike_nhs_waited", _cc.ike_nhs_waited)
        .num("ike_nhs_wait_expired", _cc.ike_nhs_wait_expired)
        .num("log_lines_dropped", log::dropped_lines())
        .num("heap_bytes", _heap ? _heap->snapshot().heap_bytes : 0)
        .num("heap_populations", _heap ? _heap->snapshot().populations : 0)
        .num("heap_populate_failed", _heap ? _heap->snapshot().failures : 0)
        .num("service_cpu_failures", control::service_cpu_failures())
        .num("adjacencies", _rib->nexthop_count())
        .num("routes", _rib->installed_count())
        .num("rcu_pending", _pub->pending());
    // The exception path, per kernel interface.
    std::string exc_json;
    for (const exception_iface& e : _exception.interfaces()) {
        const exception_counters& c = e.c;
        if (json) {
            exc_json += (exc_json.empty() ? "" : ",") +
                        json_members()
                            .str("interface", e.cfg.name)
                            .str(e.owner.is_port ? "port" : "tunnel",
                                 e.owner.is_port ? e.cfg.port : e.cfg.tunnel)
                            .num("rate", e.cfg.rate)
                            .num("to_kernel", c.to_kernel)
                            .num("to_kernel_multicast", c.to_kernel_multicast)
                            .num("to_kernel_limited", c.to_kernel_limited)
                            .num("to_kernel_full", c.to_kernel_full)
                            .num("from_kernel", c.from_kernel)
                            .num("from_kernel_multicast", c.from_kernel_multicast)
                            .num("from_kernel_broadcast", c.from_kernel_broadcast)
                            .num("from_kernel_limited", c.from_kernel_limited)
                            .num("from_kernel_not_ipv4", c.from_kernel_not_ipv4)
                            .num("from_kernel_unsent", c.from_kernel_unsent)
                            .done();
        } else {
            text += fmt::format(
                "Exception path {} ({} {}): to kernel {} ({} multicast; rate-limited {}, queue "
                "full {}), from kernel {} ({} multicast, {} broadcast, {} not sent; rate-limited "
                "{}, "
                "not IPv4 {})\n",
                e.cfg.name, e.owner.is_port ? "port" : "tunnel",
                e.owner.is_port ? e.cfg.port : e.cfg.tunnel, c.to_kernel, c.to_kernel_multicast,
                c.to_kernel_limited, c.to_kernel_full, c.from_kernel, c.from_kernel_multicast,
                c.from_kernel_broadcast, c.from_kernel_unsent, c.from_kernel_limited,
                c.from_kernel_not_ipv4);
        }
    }
    if (json) {
        json_members all;
        all.raw("workers", "[" + workers_json + "]")
            .raw("ports", "[" + ports_json + "]")
            .raw("drops", drops.done())
            .raw("punts", punts.done())
            .raw("punt_policing", policing.done())
            .raw("control_loop", loop.done())
            .raw("nhrp_service", nhrp_time.done())
            .raw("pass_profile", profile.done());
        if (summary) {
            all.num("sa_pairs", _sas.size());
        } else {
            all.raw("sas", "[" + sas_json + "]");
        }
        return all.raw("control", ctl.done())
                   .raw("routing", routing_stats(true))
                   .raw("exception", "[" + exc_json + "]")
                   .done() +
               "\n";
    }
    text += fmt::format(
        "Control\n  echo replies {}, ICMP errors {}, NHRP sent {} (no ESP path {}), "
        "frames {} (failed {}), forwarded {} (failed {}), no route {}, no binding "
        "{}, directed broadcast {}, held dropped {}, adjacencies {}, routes {}, reloads {} "
        "(rejected {})\n"
        "  ICMP errors rate-limited {}, multicast: {} copies to "
        "{} targets, {} dropped (backlog full)\n"
        "  ARP: {} entries, {} evicted, {} aged out\n"
        "  loop: {} busy passes, max {} us, p99 {} us, p99.9 {} us\n"
        "  NHRP in the hub (RX burst to reply handed to TX): {} packets, p50 {:.1f} us, "
        "p99 {:.1f} us, p99.9 {:.1f} us, max {:.1f} us, {} taken right after an idle nap\n"
        "    segments: {}\n"
        "  IKE: {} in ({} not IKE, {} dropped), {} out, CHILD_SAs {} installed ({} failed), "
        "{} removed ({} drained), {} waited to encrypt\n"
        "  log: {} lines dropped (the logger thread's queue full)\n",
        _cc.icmp_echo_replies, _cc.icmp_errors_sent, _cc.nhrp_sent, _cc.nhrp_tx_no_esp_path,
        _cc.tx_frames, _cc.tx_failed, _cc.forwarded, _cc.forward_failed, _cc.no_route,
        _cc.no_binding, _cc.directed_broadcast, _cc.held_dropped, _rib->nexthop_count(),
        _rib->installed_count(), _cc.reloads, _cc.reloads_rejected, _cc.icmp_errors_limited,
        _cc.multicast_copies, _mcast.size(), _cc.multicast_backlog_dropped, _neighbors.size(),
        _neighbors.evicted(), _neighbors.aged(), _loop_time.count(), _loop_time.max_ns() / 1000,
        _loop_time.quantile_ns(0.99) / 1000, _loop_time.quantile_ns(0.999) / 1000,
        _nhrp_time.count(), static_cast<double>(_nhrp_time.quantile_ns(0.5)) / 1000,
        static_cast<double>(_nhrp_time.quantile_ns(0.99)) / 1000,
        static_cast<double>(_nhrp_time.quantile_ns(0.999)) / 1000,
        static_cast<double>(_nhrp_time.max_ns()) / 1000, _nhrp_after_nap, nhrp_segments_text,
        _cc.ike_rx, _cc.ike_rx_bad, _cc.ike_rx_dropped, _cc.ike_tx, _cc.ike_installs,
        _cc.ike_install_failed, _cc.ike_removes, _cc.ike_drains, _cc.ike_outbound_waits,
        log::dropped_lines());
    if (!profile_text.empty()) {
        text += "  where the busy passes went:\n" + profile_text;
    }
    return text + routing_stats(false);
}

std::string hub::show_arp(bool json) const {
    std::string text = "Port        Address          MAC                State\n";
    std::string arr;
    for (const neighbor_view& n : _neighbors.entries()) {
        const port_rt* p = port_by_id(n.key.port);
        std::string pname = p != nullptr ? p->name : std::to_string(n.key.port);
        if (json) {
            arr += (arr.empty() ? "" : ",") + json_members()
                                                  .str("port", pname)
                                                  .str("address", ip(n.key.ip))
                                                  .str("mac", format_mac(n.mac))
                                                  .str("state", name(n.state))
                                                  .num("held", n.pending)
                                                  .done();
        } else {
            text += fmt::format("{:<12}{:<17}{:<19}{}\n", pname, ip(n.key.ip), format_mac(n.mac),
                                name(n.state));
        }
    }
    return json ? "[" + arr + "]\n" : text;
}

void hub::refresh_telemetry(timestamp now, bool views) {
    if (!_telemetry) {
        return;
    }
    telemetry_snapshot s;
    dp::worker_counters total = _stats->total();
    s.stats.emplace_back("rx_packets", total.rx_packets);
    s.stats.emplace_back("tx_packets", total.tx_packets);
    s.stats.emplace_back("drops", total.total_drops());
    s.stats.emplace_back("punts", total.total_punts());
    for (size_t i = 0; i < dp::drop_reason_count; ++i) {
        auto r = static_cast<dp::drop_reason>(i);
        if (total.drop(r) != 0) {
            s.stats.emplace_back("drop_" + std::string(dp::name(r)), total.drop(r));
        }
    }
    nhrp::counters nc = _server->total_counters();
    s.stats.emplace_back("nhrp_entries", _server->cache_size());
    s.stats.emplace_back("nhrp_registrations_received",
                         nc.received_of(nhrp::op::registration_request));
    s.stats.emplace_back("nhrp_registration_replies_sent",
                         nc.sent_of(nhrp::op::registration_reply));
    s.stats.emplace_back("nhrp_service_count", _nhrp_time.count());
    s.stats.emplace_back("nhrp_service_p99_ns", _nhrp_time.quantile_ns(0.99));
    s.stats.emplace_back("nhrp_service_max_ns", _nhrp_time.max_ns());
    for (const auto& [name, t] : nhrp_segments()) {
        s.stats.emplace_back(fmt::format("nhrp_service_{}_p99_ns", name), t->quantile_ns(0.99));
        s.stats.emplace_back(fmt::format("nhrp_service_{}_max_ns", name), t->max_ns());
    }
    s.stats.emplace_back("icmp_echo_replies", _cc.icmp_echo_replies);
    s.stats.emplace_back("forwarded", _cc.forwarded);
    s.stats.emplace_back("log_lines_dropped", log::dropped_lines());
    if (_heap) {
        control::heap_headroom::counters hc = _heap->snapshot();
        s.stats.emplace_back("heap_bytes", hc.heap_bytes);
        s.stats.emplace_back("heap_populate_failed", hc.failures);
    }
    if (!_exception.interfaces().empty()) {
        exception_counters x = _exception.total();
        s.stats.emplace_back("exception_to_kernel", x.to_kernel);
        s.stats.emplace_back("exception_to_kernel_dropped", x.to_kernel_limited + x.to_kernel_full);
        s.stats.emplace_back("exception_from_kernel", x.from_kernel);
        s.stats.emplace_back("exception_from_kernel_dropped",
                             x.from_kernel_limited + x.from_kernel_not_ipv4);
    }
    s.stats.emplace_back("adjacencies", _rib->nexthop_count());
    s.stats.emplace_back("routes", _rib->installed_count());
    for (const routing_counter& c : routing_counters()) {
        s.stats.emplace_back(std::string(c.name), c.value);
    }
    s.stats.emplace_back(
        "uptime_s", static_cast<uint64_t>(
                        std::chrono::duration_cast<std::chrono::seconds>(now - _started).count()));
    if (views) {
        // O(entries): only when a reader asked (telemetry.hpp), never every second.
        s.nhrp = lines_of(nhrp::show_nhrp_brief(*_server, nhrp::show_format::text));
        s.dmvpn = lines_of(nhrp::show_dmvpn(*_server, now, nhrp::show_format::text));
    }
    s.interfaces = lines_of(show_interfaces(false));
    if (_metrics) {
        s.metrics = metric_families(now);
    }
    (void)_telemetry->try_publish(std::move(s));
}

}  // namespace dmvpn::hub
