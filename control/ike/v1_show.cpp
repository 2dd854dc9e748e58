// The IKEv1 engine's show commands: `show crypto isakmp sa` in the IOS layout (dst, src, state,
// conn-id, status; ../shared/testdata/cisco-ios-crypto.md) or JSON, `show crypto isakmp sa
// detail` in IOS's detail layout (C-id, Local, Remote, I-VRF, Status, Encr, Hash, Auth, DH,
// Lifetime remaining as hh:mm:ss, Cap. D for DPD and N for NAT-T, then the Engine-id:Conn-id
// line), and its IPsec SAs as show.hpp's view model for `show crypto ipsec sa` /
// `show crypto session`.
//
// JSON of both: {"isakmp_sas": [{"dst", "src", "state" ("MM_SA_SETUP"|"MM_KEY_EXCH"|
// "AG_INIT_EXCH"|"QM_IDLE"), "conn_id", "status" ("ACTIVE"|"NEGOTIATING"), "tunnel",
// "encr" ("3DES"|"AES"), "keysize", "hash" ("MD5"|"SHA"|"SHA256"), "auth" ("psk"|"rsig"),
// "dh_group", "lifetime_s", "remaining_s", "dpd", "nat_t", "remote_id"}]}
#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "control/json.hpp"
#include "control/ike/show.hpp"
#include "control/ike/v1_sa.hpp"

namespace dmvpn::ike::v1 {

namespace {

uint32_t seconds_between(time_point from, time_point to) {
    return to <= from
               ? 0
               : uint32_t(std::chrono::duration_cast<std::chrono::seconds>(to - from).count());
}

uint64_t conn_id(uint64_t id) { return id - engine::id_base + 1; }

std::string_view hash_name(uint16_t h) {
    return h == crypto::hash::md5 ? "MD5" : h == crypto::hash::sha1 ? "SHA" : "SHA256";
}

// IOS's Auth column: psk (pre-shared key) or rsig (RSA signature).
std::string_view auth_name(const p1_sa& sa) { return sa.signatures ? "rsig" : "psk"; }

// `show crypto isakmp sa detail`, IOS's layout (the columns padded as IOS pads them).
using sa_map = std::map<uint64_t, std::unique_ptr<p1_sa>>;

std::string isakmp_detail(const sa_map& sas, time_point now) {
    std::string out =
        "Codes: C - IKE configuration mode, D - Dead Peer Detection\n"
        "       K - Keepalives, N - NAT-traversal\n"
        "       T - cTCP encapsulation, X - IKE Extended Authentication\n"
        "       psk - Preshared key, rsig - RSA signature\n"
        "       renc - RSA encryption\n"
        "IPv4 Crypto ISAKMP SA\n\n"
        "C-id  Local           Remote          I-VRF  Status Encr Hash   Auth DH Lifetime Cap.\n";
    for (const auto& [id, sa] : sas) {
        const bool up = sa->state == p1_state::qm_idle;
        const uint32_t left = up ? seconds_between(now, sa->expire_at) : 0;
        std::string cap;
        cap += sa->dpd ? "D" : "";
        cap += sa->behind_nat() ? "N" : "";
        // Negotiating SAs have no transform yet: IOS prints none either.
        const std::string encr = sa->encr == 0                   ? ""
                                 : sa->encr == crypto::encr::aes ? "aes"
                                                                 : "3des";
        std::string hash(sa->hash == 0 ? "" : hash_name(sa->hash));
        std::transform(hash.begin(), hash.end(), hash.begin(),
                       [](char c) { return char(std::tolower(uint8_t(c))); });
        out += fmt::format(
            "\n{:<5} {:<15} {:<15} {:<6} {:<6} {:<4} {:<6} {:<4} {:<2} {:02}:{:02}:{:02} {}\n",
            conn_id(id), ipv4_text(sa->local), ipv4_text(sa->peer), "", up ? "ACTIVE" : "", encr,
            hash, sa->encr == 0 ? "" : auth_name(*sa),
            sa->group == 0 ? std::string() : std::to_string(sa->group), left / 3600, left / 60 % 60,
            left % 60, cap);
        out += fmt::format("       Engine-id:Conn-id =  SW:{}\n", conn_id(id));
    }
    return out + "\nIPv6 Crypto ISAKMP SA\n";
}

constexpr std::string_view isakmp_header =
    "IPv4 Crypto ISAKMP SA\n"
    "dst             src             state          conn-id status\n";

}  // namespace

std::string show_no_isakmp(std::string_view what, bool json) {
    if (json) {
        return "{\"isakmp_sas\": []}\n";
    }
    return what == "isakmp sa detail" ? isakmp_detail({}, time_point{})
                                      : std::string(isakmp_header);
}

std::string engine::show(std::string_view what, bool json) const {
    const impl& im = *_impl;
    const time_point now = im.last_now;
    if (what == "isakmp sa detail" && !json) {
        return isakmp_detail(im.sas, now);
    }
    if (what == "isakmp sa" || what == "isakmp sa detail") {
        std::string out;
        if (json) {
            out = "{\"isakmp_sas\": [";
            bool first = true;
            for (const auto& [id, sa] : im.sas) {
                out += first ? "" : ", ";
                first = false;
                out += fmt::format(
                    "{{\"dst\": \"{}\", \"src\": \"{}\", \"state\": \"{}\", \"conn_id\": {}, "
                    "\"status\": \"{}\", \"tunnel\": \"Tunnel{}\", \"encr\": \"{}\", "
                    "\"keysize\": {}, \"hash\": \"{}\", \"auth\": \"{}\", \"dh_group\": {}, "
                    "\"lifetime_s\": {}, \"remaining_s\": {}, \"dpd\": {}, \"nat_t\": {}, "
                    "\"nat_local\": {}, \"nat_remote\": {}, \"local_port\": {}, "
                    "\"remote_port\": {}, \"remote_id\": {}}}",
                    ipv4_text(sa->local), ipv4_text(sa->peer), ios_name(sa->state), conn_id(id),
                    sa->state == p1_state::qm_idle ? "ACTIVE" : "NEGOTIATING", sa->tunnel,
                    sa->encr == crypto::encr::aes ? "AES" : "3DES",
                    sa->encr == crypto::encr::aes ? sa->key_bits : 192, hash_name(sa->hash),
                    auth_name(*sa), sa->group, sa->lifetime_s,
                    sa->state == p1_state::qm_idle ? seconds_between(now, sa->expire_at) : 0,
                    sa->dpd, sa->behind_nat(), sa->nat_local, sa->nat_peer, sa->local_port,
                    sa->peer_port, json_quote(sa->peer_id));
            }
            return out + "]}\n";
        }
        out = isakmp_header;
        for (const auto& [id, sa] : im.sas) {
            out += fmt::format("{:<15} {:<15} {:<14} {:>7} {}\n", ipv4_text(sa->local),
                               ipv4_text(sa->peer), ios_name(sa->state), conn_id(id),
                               sa->state == p1_state::qm_idle ? "ACTIVE" : "");
        }
        return out;
    }

    // IPsec SAs, one flow per (tunnel, peer), as the IKEv2 engine fills them.
    show::view v;
    std::map<std::pair<uint32_t, uint32_t>, size_t> flow_of;
    for (const auto& [cid, c] : im.children) {
        auto key = std::make_pair(c.sa.tunnel, c.sa.peer);
        auto [it, fresh] = flow_of.emplace(key, v.flows.size());
        if (fresh) {
            show::ipsec_flow_row f;
            f.interface = fmt::format("Tunnel{}", c.sa.tunnel);
            f.crypto_map = fmt::format("Tunnel{}-head-0", c.sa.tunnel);
            f.local = c.sa.local;
            f.peer = c.sa.peer;
            f.local_ident.addr = c.sa.local;
            f.remote_ident.addr = c.sa.peer;
            v.flows.push_back(std::move(f));
        }
        show::ipsec_flow_row& f = v.flows[it->second];
        // The workers' counters, as engine::usage last reported them (once a second).
        f.encaps += c.out_packets;
        f.encrypt += c.out_packets;
        f.digest += c.out_packets;
        f.decaps += c.in_packets;
        f.decrypt += c.in_packets;
        f.verify += c.in_packets;
        auto p1 = im.sas.find(c.p1);
        if (p1 != im.sas.end()) {
            f.peer_port = p1->second->peer_port;
        }
        show::esp_sa_row e;
        e.transform = show::ios_transform(c.sa.encr, c.sa.encr_bits, c.sa.integ);
        e.conn_id = conn_id(cid);
        e.flow_id = conn_id(cid);
        e.remaining_s = seconds_between(now, c.expire_at);
        e.iv_bytes = show::iv_bytes(c.sa.encr);
        if (c.life_bytes != 0) {
            const uint64_t used = std::max(c.in_bytes, c.out_bytes);
            e.remaining_kb = (c.life_bytes > used ? c.life_bytes - used : 0) / 1024;
        }
        e.active = c.installed;
        e.udp_encap = c.sa.udp_encap;  // NAT-T: "Transport UDP-Encaps"
        show::esp_sa_row in = e, out = e;
        in.spi = c.sa.inbound.spi;
        out.spi = c.sa.outbound.spi;
        f.inbound.push_back(in);
        f.outbound.push_back(out);
        if (c.installed) {
            f.current_outbound_spi = c.sa.outbound.spi;
        }
    }
    for (const auto& [id, sa] : im.sas) {
        if (sa->state != p1_state::qm_idle) {
            continue;
        }
        show::session_row s;
        s.interface = fmt::format("Tunnel{}", sa->tunnel);
        s.profile = sa->profile;
        s.peer = sa->peer;
        s.peer_port = sa->peer_port;
        s.session_id = conn_id(id);
        s.ike_sas.push_back({sa->local, sa->local_port, sa->peer, sa->peer_port, true, 1});
        uint32_t active = 0;
        for (const auto& [cid, c] : im.children) {
            if (c.p1 == id && c.installed) {
                active += 2;
            }
        }
        s.status = active == 0 ? show::session_status::up_idle : show::session_status::up_active;
        if (active != 0) {
            s.flows.push_back({47, sa->local, sa->peer, active});
        }
        v.sessions.push_back(std::move(s));
    }
    const auto f = json ? show::format::json : show::format::text;
    if (what == "ipsec sa") {
        return show::show_ipsec_sa(v, f);
    }
    if (what == "session") {
        return show::show_session(v, f);
    }
    return fmt::format("unknown show: {}\n", what);
}

}  // namespace dmvpn::ike::v1
