#include "control/ike/show.hpp"

#include <fmt/format.h>

#include "control/ike/message.hpp"
#include "control/json.hpp"

namespace dmvpn::ike::show {

namespace {

std::string addr(uint32_t a) {
    return fmt::format("{}.{}.{}.{}", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
}

std::string_view status_name(ike_sa_status s) {
    switch (s) {
        case ike_sa_status::ready:
            return "READY";
        case ike_sa_status::in_negotiation:
            return "IN-NEG";
        case ike_sa_status::deleting:
            return "DELETE";
    }
    return "UNKNOWN";
}

std::string_view status_description(ike_sa_status s) {
    switch (s) {
        case ike_sa_status::ready:
            return "Negotiation done";
        case ike_sa_status::in_negotiation:
            return "Negotiation in progress";
        case ike_sa_status::deleting:
            return "Deleting IKE SA";
    }
    return "Unknown";
}

std::string_view auth_name(auth_kind m) {
    switch (m) {
        case auth_kind::psk:
            return "PSK";
        case auth_kind::rsa:
            return "RSA";
        case auth_kind::ecdsa:
            return "ECDSA";
    }
    return "Unknown";
}

std::string_view encr_name(uint16_t encr) {
    switch (encr) {
        case encr_id::aes_cbc:
            return "AES-CBC";
        case encr_id::aes_gcm_16:
            return "AES-GCM";
        default:
            return "Unknown";
    }
}

std::string_view prf_name(uint16_t prf) {
    switch (prf) {
        case prf_id::hmac_sha1:
            return "SHA1";
        case prf_id::hmac_sha2_256:
            return "SHA256";
        case prf_id::hmac_sha2_384:
            return "SHA384";
        case prf_id::hmac_sha2_512:
            return "SHA512";
        default:
            return "Unknown";
    }
}

std::string_view hash_name(uint16_t integ) {
    switch (integ) {
        case integ_id::none:
            return "None";
        case integ_id::hmac_sha1_96:
            return "SHA96";
        case integ_id::hmac_sha2_256_128:
            return "SHA256";
        case integ_id::hmac_sha2_384_192:
            return "SHA384";
        case integ_id::hmac_sha2_512_256:
            return "SHA512";
        default:
            return "Unknown";
    }
}

std::string_view session_status_name(session_status s) {
    switch (s) {
        case session_status::up_active:
            return "UP-ACTIVE";
        case session_status::up_no_ike:
            return "UP-NO-IKE";
        case session_status::up_idle:
            return "UP-IDLE";
        case session_status::down_negotiating:
            return "DOWN-NEGOTIATING";
        case session_status::down:
            return "DOWN";
    }
    return "DOWN";
}

std::string_view yes_no(bool b) { return b ? "Yes" : "No"; }
std::string_view json_bool(bool b) { return b ? "true" : "false"; }
std::string spi64(uint64_t spi) { return fmt::format("{:016X}", spi); }
std::string spi32(uint32_t spi) { return fmt::format("0x{:08X}({})", spi, spi); }

std::string ikev2_text(const view& v, bool detail) {
    std::string out = " IPv4 Crypto IKEv2  SA\n\n";
    out += fmt::format("{:<10}{:<22}{:<22}{:<21}{}\n", "Tunnel-id", "Local", "Remote", "fvrf/ivrf",
                       "Status");
    for (const ike_sa_row& r : v.ike_sas) {
        out += fmt::format("{:<10}{:<22}{:<22}{:<21}{}\n", r.id,
                           fmt::format("{}/{}", addr(r.local), r.local_port),
                           fmt::format("{}/{}", addr(r.remote), r.remote_port),
                           fmt::format("{}/{}", r.fvrf, r.ivrf), status_name(r.status));
        out += fmt::format(
            "      Encr: {}, keysize: {}, PRF: {}, Hash: {}, DH Grp:{}, Auth sign: {}, Auth "
            "verify: {}\n",
            encr_name(r.encr), r.encr_bits, prf_name(r.prf), hash_name(r.integ), r.dh_group,
            auth_name(r.auth_sign), auth_name(r.auth_verify));
        out += fmt::format("      Life/Active Time: {}/{} sec\n", r.lifetime_s, r.active_s);
        if (detail) {
            out += fmt::format("      Status Description: {}\n", status_description(r.status));
            out += fmt::format("      Local spi: {}       Remote spi: {}\n", spi64(r.local_spi),
                               spi64(r.remote_spi));
            out += fmt::format("      Local id: {}\n", r.local_id);
            out += fmt::format("      Remote id: {}\n", r.remote_id);
            out += fmt::format("      DPD configured for {} seconds, retry {}\n", r.dpd_interval_s,
                               r.dpd_retries);
            out += r.fragmentation ? "      Fragmentation configured.\n"
                                   : "      Fragmentation not configured.\n";
            if (r.nat_local) {
                out += "      NAT-T is detected inside\n";
            }
            if (r.nat_remote) {
                out += "      NAT-T is detected outside\n";
            }
            if (!r.nat_local && !r.nat_remote) {
                out += "      NAT-T is not detected\n";
            }
            out += fmt::format("      Initiator of SA : {}\n", yes_no(r.initiator));
        }
        out += "\n";
    }
    out += " IPv6 Crypto IKEv2  SA\n\n";
    return out;
}

std::string ikev2_json(const view& v) {
    std::string out = "{\"ikev2_sas\":[";
    bool first = true;
    for (const ike_sa_row& r : v.ike_sas) {
        out += first ? "" : ",";
        first = false;
        out += fmt::format(
            "{{\"id\":{},\"tunnel\":{},\"local\":\"{}\",\"local_port\":{},\"remote\":\"{}\","
            "\"remote_port\":{},\"fvrf\":{},\"ivrf\":{},\"status\":\"{}\",\"encr\":\"{}\","
            "\"keysize\":{},\"prf\":\"{}\",\"hash\":\"{}\",\"dh_group\":{},\"auth_sign\":\"{}\","
            "\"auth_verify\":\"{}\",\"lifetime_s\":{},\"active_s\":{},\"local_id\":{},"
            "\"remote_id\":{},\"local_spi\":\"{}\",\"remote_spi\":\"{}\",\"initiator\":{},"
            "\"nat_local\":{},\"nat_remote\":{},\"dpd_interval_s\":{},\"dpd_retries\":{},"
            "\"fragmentation\":{},\"child_sas\":{}}}",
            r.id, json_quote(r.tunnel), addr(r.local), r.local_port, addr(r.remote), r.remote_port,
            json_quote(r.fvrf), json_quote(r.ivrf), status_name(r.status), encr_name(r.encr),
            r.encr_bits, prf_name(r.prf), hash_name(r.integ), r.dh_group, auth_name(r.auth_sign),
            auth_name(r.auth_verify), r.lifetime_s, r.active_s, json_quote(r.local_id),
            json_quote(r.remote_id), spi64(r.local_spi), spi64(r.remote_spi),
            json_bool(r.initiator), json_bool(r.nat_local), json_bool(r.nat_remote),
            r.dpd_interval_s, r.dpd_retries, json_bool(r.fragmentation), r.child_sas);
    }
    return out + "]}\n";
}

std::string ident_text(const ident& i) {
    return fmt::format("({}/{}/{}/{})", addr(i.addr), addr(i.mask), i.prot, i.port);
}

std::string settings(const esp_sa_row& s) {
    return fmt::format("{{{}{}, }}", s.tunnel_mode ? "Tunnel" : "Transport",
                       s.udp_encap ? " UDP-Encaps" : "");
}

void esp_text(std::string& out, const ipsec_flow_row& f, const std::vector<esp_sa_row>& sas) {
    for (const esp_sa_row& s : sas) {
        out += fmt::format("      spi: {}\n", spi32(s.spi));
        out += fmt::format("        transform: {} ,\n", s.transform);
        out += fmt::format("        in use settings ={}\n", settings(s));
        out += fmt::format("        conn id: {}, flow_id: SW:{}, crypto map: {}\n", s.conn_id,
                           s.flow_id, f.crypto_map);
        out +=
            fmt::format("        sa timing: remaining key lifetime (k/sec): ({}/{})\n",
                        s.remaining_kb ? fmt::format("{}", *s.remaining_kb) : "-", s.remaining_s);
        out += fmt::format("        IV size: {} bytes\n", s.iv_bytes);
        out +=
            fmt::format("        replay detection support: {}\n", s.replay_detection ? "Y" : "N");
        out += fmt::format("        Status: {}\n", s.active ? "ACTIVE" : "STANDBY");
    }
}

std::string ipsec_text(const view& v, std::optional<uint32_t> peer) {
    std::string out;
    const std::string* interface = nullptr;
    for (const ipsec_flow_row& f : v.flows) {
        if (peer && f.peer != *peer) {
            continue;
        }
        if (interface == nullptr || *interface != f.interface) {
            out += interface == nullptr ? "" : "\n";
            out += fmt::format("interface: {}\n", f.interface);
        } else {
            out += "\n";
        }
        interface = &f.interface;
        out += fmt::format("    Crypto map tag: {}, local addr {}\n", f.crypto_map, addr(f.local));
        out += fmt::format("    protected vrf: {}\n",
                           f.protected_vrf.empty() ? "(none)" : f.protected_vrf);
        out +=
            fmt::format("    local ident (addr/mask/prot/port): {}\n", ident_text(f.local_ident));
        out +=
            fmt::format("    remote ident (addr/mask/prot/port): {}\n", ident_text(f.remote_ident));
        out += fmt::format("    current_peer {} port {}\n", addr(f.peer), f.peer_port);
        out += "        PERMIT, flags={origin_is_acl,}\n";
        out += fmt::format("        #pkts encaps: {}, #pkts encrypt: {}, #pkts digest: {}\n",
                           f.encaps, f.encrypt, f.digest);
        out += fmt::format("        #pkts decaps: {}, #pkts decrypt: {}, #pkts verify: {}\n",
                           f.decaps, f.decrypt, f.verify);
        out += "        #pkts compressed: 0, #pkts decompressed: 0\n";
        out += "        #pkts not compressed: 0, #pkts compr. failed: 0\n";
        out += "        #pkts not decompressed: 0, #pkts decompress failed: 0\n";
        out +=
            fmt::format("        #send errors {}, #recv errors {}\n", f.send_errors, f.recv_errors);
        out += fmt::format("    local crypto endpt.: {}, remote crypto endpt.: {}\n", addr(f.local),
                           addr(f.peer));
        out += fmt::format("    path mtu {}, ip mtu {}, ip mtu idb {}\n", f.path_mtu, f.ip_mtu,
                           f.ip_mtu_idb);
        out += fmt::format("    current outbound spi: {}\n", spi32(f.current_outbound_spi));
        out += "     inbound esp sas:\n";
        esp_text(out, f, f.inbound);
        out += "     inbound ah sas:\n";
        out += "     inbound pcp sas:\n";
        out += "     outbound esp sas:\n";
        esp_text(out, f, f.outbound);
        out += "     outbound ah sas:\n";
        out += "     outbound pcp sas:\n";
    }
    return out;
}

std::string ident_json(const ident& i) {
    return fmt::format("{{\"addr\":\"{}\",\"mask\":\"{}\",\"prot\":{},\"port\":{}}}", addr(i.addr),
                       addr(i.mask), i.prot, i.port);
}

std::string esp_json(const std::vector<esp_sa_row>& sas) {
    std::string out = "[";
    bool first = true;
    for (const esp_sa_row& s : sas) {
        out += first ? "" : ",";
        first = false;
        out += fmt::format(
            "{{\"spi\":{},\"transform\":{},\"mode\":\"{}\",\"udp_encap\":{},\"conn_id\":{},"
            "\"flow_id\":{},\"remaining_kb\":{},\"remaining_s\":{},\"iv_bytes\":{},"
            "\"replay_detection\":{},\"status\":\"{}\"}}",
            s.spi, json_quote(s.transform), s.tunnel_mode ? "Tunnel" : "Transport",
            json_bool(s.udp_encap), s.conn_id, s.flow_id,
            s.remaining_kb ? fmt::format("{}", *s.remaining_kb) : "null", s.remaining_s, s.iv_bytes,
            json_bool(s.replay_detection), s.active ? "ACTIVE" : "STANDBY");
    }
    return out + "]";
}

std::string ipsec_json(const view& v, std::optional<uint32_t> peer) {
    std::string out = "{\"ipsec_sas\":[";
    bool first = true;
    for (const ipsec_flow_row& f : v.flows) {
        if (peer && f.peer != *peer) {
            continue;
        }
        out += first ? "" : ",";
        first = false;
        out += fmt::format(
            "{{\"interface\":{},\"local\":\"{}\",\"peer\":\"{}\",\"peer_port\":{},"
            "\"protected_vrf\":{},\"local_ident\":{},\"remote_ident\":{},\"encaps\":{},"
            "\"encrypt\":{},\"digest\":{},\"decaps\":{},\"decrypt\":{},\"verify\":{},"
            "\"send_errors\":{},\"recv_errors\":{},\"path_mtu\":{},\"ip_mtu\":{},"
            "\"ip_mtu_idb\":{},\"current_outbound_spi\":{},\"inbound\":{},\"outbound\":{}}}",
            json_quote(f.interface), addr(f.local), addr(f.peer), f.peer_port,
            json_quote(f.protected_vrf), ident_json(f.local_ident), ident_json(f.remote_ident),
            f.encaps, f.encrypt, f.digest, f.decaps, f.decrypt, f.verify, f.send_errors,
            f.recv_errors, f.path_mtu, f.ip_mtu, json_quote(f.ip_mtu_idb), f.current_outbound_spi,
            esp_json(f.inbound), esp_json(f.outbound));
    }
    return out + "]}\n";
}

std::string session_text(const view& v) {
    std::string out = "Crypto session current status\n\n";
    for (const session_row& s : v.sessions) {
        out += fmt::format("Interface: {}\n", s.interface);
        out += fmt::format("Profile: {}\n", s.profile);
        out += fmt::format("Session status: {}\n", session_status_name(s.status));
        out += fmt::format("Peer: {} port {}\n", addr(s.peer), s.peer_port);
        out += fmt::format("  Session ID: {}\n", s.session_id);
        for (const session_ike_sa& i : s.ike_sas) {
            out += fmt::format("  IKEv{} SA: local {}/{} remote {}/{} {}\n", i.version,
                               addr(i.local), i.local_port, addr(i.remote), i.remote_port,
                               i.active ? "Active" : "Inactive");
        }
        for (const session_flow& fl : s.flows) {
            out += fmt::format("  IPSEC FLOW: permit {} host {} host {}\n", fl.protocol,
                               addr(fl.local), addr(fl.remote));
            out += fmt::format("        Active SAs: {}, origin: crypto map\n", fl.active_sas);
        }
        out += "\n";
    }
    return out;
}

std::string session_json(const view& v) {
    std::string out = "{\"sessions\":[";
    bool first = true;
    for (const session_row& s : v.sessions) {
        out += first ? "" : ",";
        first = false;
        std::string ikes = "[";
        for (size_t i = 0; i < s.ike_sas.size(); ++i) {
            const session_ike_sa& k = s.ike_sas[i];
            ikes += fmt::format(
                "{}{{\"version\":{},\"local\":\"{}\",\"local_port\":{},\"remote\":\"{}\","
                "\"remote_port\":{},\"active\":{}}}",
                i == 0 ? "" : ",", k.version, addr(k.local), k.local_port, addr(k.remote),
                k.remote_port, json_bool(k.active));
        }
        std::string flows = "[";
        for (size_t i = 0; i < s.flows.size(); ++i) {
            const session_flow& fl = s.flows[i];
            flows += fmt::format(
                "{}{{\"protocol\":{},\"local\":\"{}\",\"remote\":\"{}\",\"active_sas\":{}}}",
                i == 0 ? "" : ",", fl.protocol, addr(fl.local), addr(fl.remote), fl.active_sas);
        }
        out += fmt::format(
            "{{\"interface\":{},\"profile\":{},\"status\":\"{}\",\"peer\":\"{}\","
            "\"peer_port\":{},\"session_id\":{},\"ike_sas\":{}],\"flows\":{}]}}",
            json_quote(s.interface), json_quote(s.profile), session_status_name(s.status),
            addr(s.peer), s.peer_port, s.session_id, ikes, flows);
    }
    return out + "]}\n";
}

}  // namespace

std::string show_ikev2_sa(const view& v, format f, bool detail) {
    return f == format::json ? ikev2_json(v) : ikev2_text(v, detail);
}

std::string show_ipsec_sa(const view& v, format f, std::optional<uint32_t> peer) {
    return f == format::json ? ipsec_json(v, peer) : ipsec_text(v, peer);
}

std::string show_session(const view& v, format f) {
    return f == format::json ? session_json(v) : session_text(v);
}

std::string ios_transform(uint16_t encr, uint16_t encr_bits, uint16_t integ) {
    if (encr == encr_id::aes_gcm_16) {
        return fmt::format("esp-gcm {}", encr_bits);
    }
    std::string out = encr == encr_id::des3 ? "esp-3des"
                      : encr_bits == 128    ? "esp-aes"
                                            : fmt::format("esp-aes {}", encr_bits);
    switch (integ) {
        case integ_id::hmac_md5_96:
            return out + " esp-md5-hmac";
        case integ_id::hmac_sha1_96:
            return out + " esp-sha-hmac";
        case integ_id::hmac_sha2_256_128:
            return out + " esp-sha256-hmac";
        case integ_id::hmac_sha2_384_192:
            return out + " esp-sha384-hmac";
        case integ_id::hmac_sha2_512_256:
            return out + " esp-sha512-hmac";
        default:
            return out;
    }
}

uint32_t iv_bytes(uint16_t encr) noexcept {
    return encr == encr_id::aes_gcm_16 || encr == encr_id::des3 ? 8 : 16;
}

}  // namespace dmvpn::ike::show
