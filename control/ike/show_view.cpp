// The engine's side of the show commands: its IKE SAs and CHILD_SAs as control/ike/show.hpp's
// view model, rendered there (IOS layout or JSON).
#include <fmt/format.h>

#include <array>

#include "control/ike/ike_sa.hpp"
#include "control/ike/show.hpp"

namespace dmvpn::ike {

using namespace detail;

namespace {

uint32_t seconds_between(time_point from, time_point to) {
    return to <= from
               ? 0
               : uint32_t(std::chrono::duration_cast<std::chrono::seconds>(to - from).count());
}

}  // namespace

// `show crypto ikev2 stats`: counts per state and the engine's counters, O(SAs) counting only
// (no rows built), for a storm where the full views are megabytes.
static std::string show_stats(const engine::impl& im, bool json) {
    std::array<uint64_t, 4> ike{};  // by sa_state
    uint64_t retired = 0;
    for (const auto& [id, sa] : im.sas) {
        if (sa->retired) {
            ++retired;
        } else {
            ++ike.at(size_t(sa->state));
        }
    }
    std::array<uint64_t, 4> esp{};  // by child_state
    for (const auto& [id, ch] : im.children) {
        ++esp.at(size_t(ch.state));
    }
    const engine_counters& c = im.c;
    if (json) {
        return fmt::format(
            "{{\"ike_sas\": {{\"init_sent\": {}, \"half_open\": {}, \"auth_sent\": {}, "
            "\"established\": {}, \"rekeyed\": {}}}, \"child_sas\": {{\"installing\": {}, "
            "\"installed\": {}, \"rekeyed\": {}, \"deleting\": {}}}, \"timers_pending\": {}, "
            "\"sa_timer_runs\": {}, \"rx\": {}, \"tx\": {}, \"retransmits\": {}, "
            "\"ike_sas_failed\": {}, \"auth_failed\": {}, \"cookies_sent\": {}, "
            "\"dropped\": {}, \"nat_keepalives_tx\": {}, \"duplicates_deleted\": {}, "
            "\"initiations_abandoned\": {}}}\n",
            ike[0], ike[1], ike[2], ike[3], retired, esp[0], esp[1], esp[2], esp[3],
            im.wheel.size(), c.sa_timer_runs, c.rx, c.tx, c.retransmits, c.ike_sas_failed,
            c.auth_failed, c.cookies_sent, c.dropped, c.nat_keepalives_tx, c.duplicates_deleted,
            c.initiations_abandoned);
    }
    return fmt::format(
        "IKEv2 SAs: {} established, {} half-open, {} init-sent, {} auth-sent, {} rekeyed\n"
        "CHILD_SAs: {} installed, {} installing, {} rekeyed, {} deleting\n"
        "Timers: {} pending, {} SA timer runs\n"
        "Messages: {} in, {} out, {} retransmits, {} dropped, {} NAT keepalives out\n"
        "Failures: {} IKE SAs failed, {} authentication failed, {} cookies sent\n",
        ike[3], ike[1], ike[0], ike[2], retired, esp[1], esp[0], esp[2], esp[3], im.wheel.size(),
        c.sa_timer_runs, c.rx, c.tx, c.retransmits, c.dropped, c.nat_keepalives_tx,
        c.ike_sas_failed, c.auth_failed, c.cookies_sent);
}

std::string engine::show(std::string_view what, bool json) const {
    const auto& im = *_impl;
    if (what == "ikev2 stats") {
        return show_stats(im, json);
    }
    const time_point now = im.last_now;
    show::view v;
    for (const auto& [id, sap] : im.sas) {
        const ike_sa& sa = *sap;
        const profile_state* p = im.profile_of(sa);
        show::ike_sa_row r;
        r.id = sa.id;
        r.tunnel = fmt::format("Tunnel{}", sa.tunnel);
        r.local = sa.local;
        r.local_port = sa.local_port;
        r.remote = sa.peer;
        r.remote_port = sa.peer_port;
        r.status = sa.retired                          ? show::ike_sa_status::deleting
                   : sa.state == sa_state::established ? show::ike_sa_status::ready
                                                       : show::ike_sa_status::in_negotiation;
        r.encr = sa.suite.encr;
        r.encr_bits = sa.suite.encr_bits;
        r.prf = sa.suite.prf;
        r.integ = sa.suite.integ;
        r.dh_group = sa.suite.dh;
        r.auth_sign = sa.auth_sign;
        r.auth_verify = sa.auth_verify;
        r.lifetime_s = p != nullptr ? p->settings.ike_lifetime_s : 0;
        r.active_s = seconds_between(sa.up ? sa.established_at : sa.created, now);
        if (p != nullptr) {
            r.local_id = identity_text(local_identity(p->settings, sa.local));
            r.dpd_interval_s = p->settings.dpd_interval_s;
            r.dpd_retries = p->settings.dpd_retries;
        }
        r.remote_id = sa.peer_identity;
        r.local_spi = sa.initiator ? sa.spi_i : sa.spi_r;
        r.remote_spi = sa.initiator ? sa.spi_r : sa.spi_i;
        r.initiator = sa.initiator;
        r.nat_local = sa.nat_local;
        r.nat_remote = sa.nat_peer;
        r.fragmentation = sa.peer_fragmentation;  // RFC 7383 negotiated
        r.child_sas = uint32_t(sa.children.size());
        v.ike_sas.push_back(std::move(r));

        if (sa.retired) {
            continue;
        }
        show::session_row s;
        s.interface = fmt::format("Tunnel{}", sa.tunnel);
        s.profile = sa.profile;
        s.peer = sa.peer;
        s.peer_port = sa.peer_port;
        s.session_id = sa.id;
        s.ike_sas.push_back({sa.local, sa.local_port, sa.peer, sa.peer_port, sa.up});
        s.status = !sa.up                ? show::session_status::down_negotiating
                   : sa.children.empty() ? show::session_status::up_idle
                                         : show::session_status::up_active;
        if (sa.children.empty()) {
            v.sessions.push_back(std::move(s));
            continue;
        }
        show::ipsec_flow_row f;
        f.interface = s.interface;
        f.crypto_map = fmt::format("Tunnel{}-head-0", sa.tunnel);
        f.local = sa.local;
        f.peer = sa.peer;
        f.peer_port = sa.peer_port;
        f.local_ident.addr = sa.local;
        f.remote_ident.addr = sa.peer;
        uint32_t active = 0;
        for (uint64_t cid : sa.children) {
            const child& ch = im.children.at(cid);
            f.encaps += ch.out_packets;
            f.encrypt += ch.out_packets;
            f.digest += ch.out_packets;
            f.decaps += ch.in_packets;
            f.decrypt += ch.in_packets;
            f.verify += ch.in_packets;
            show::esp_sa_row e;
            e.transform = show::ios_transform(ch.sa.encr, ch.sa.encr_bits, ch.sa.integ);
            e.udp_encap = ch.sa.udp_encap;
            e.conn_id = cid;
            e.flow_id = cid;
            e.remaining_s = seconds_between(now, ch.expire_at);
            if (ch.sa.hard_bytes != 0) {
                uint64_t used = std::max(ch.in_bytes, ch.out_bytes);
                e.remaining_kb = (ch.sa.hard_bytes > used ? ch.sa.hard_bytes - used : 0) / 1024;
            }
            e.iv_bytes = show::iv_bytes(ch.sa.encr);
            e.active = ch.state == child_state::installed || ch.state == child_state::installing;
            show::esp_sa_row in = e, out = e;
            in.spi = ch.sa.inbound.spi;
            out.spi = ch.sa.outbound.spi;
            f.inbound.push_back(in);
            f.outbound.push_back(out);
            if (e.active) {
                f.current_outbound_spi = ch.sa.outbound.spi;
                active += 2;
            }
        }
        s.flows.push_back({47, sa.local, sa.peer, active});
        v.flows.push_back(std::move(f));
        v.sessions.push_back(std::move(s));
    }
    const auto f = json ? show::format::json : show::format::text;
    if (what == "ikev2 sa") {
        return show::show_ikev2_sa(v, f, false);
    }
    if (what == "ikev2 sa detail") {
        return show::show_ikev2_sa(v, f, true);
    }
    if (what == "ipsec sa") {
        return show::show_ipsec_sa(v, f);
    }
    if (what.starts_with("ipsec sa peer ")) {
        auto a = config::parse_ipv4(what.substr(14));
        return a ? show::show_ipsec_sa(v, f, a->value)
                 : fmt::format("unknown peer address: {}\n", what.substr(14));
    }
    if (what == "session") {
        return show::show_session(v, f);
    }
    return fmt::format("unknown show: {}\n", what);
}

}  // namespace dmvpn::ike
