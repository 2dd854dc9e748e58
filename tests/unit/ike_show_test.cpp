// show crypto rendering: the IOS records of ../shared/testdata/cisco-ios-crypto.md fed into the
// view model must come out as IOS printed them; the IKEv2 and session layouts follow Cisco's
// documented output (the record holds only IKEv1's `show crypto isakmp sa`).
#include <catch2/catch.hpp>

#include "control/ike/message.hpp"
#include "control/ike/show.hpp"

using namespace dmvpn::ike;
using namespace dmvpn::ike::show;

namespace {

constexpr uint32_t ip(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
    return a << 24 | b << 16 | c << 8 | d;
}

esp_sa_row esp(uint32_t spi, uint64_t conn, uint64_t flow, uint64_t kb, uint32_t s) {
    esp_sa_row r;
    r.spi = spi;
    r.transform = "esp-3des esp-md5-hmac";
    r.conn_id = conn;
    r.flow_id = flow;
    r.remaining_kb = kb;
    r.remaining_s = s;
    r.iv_bytes = 8;
    return r;
}

// Rack1R1 (hub 150.1.1.1) and its spoke 150.1.2.2, as recorded.
ipsec_flow_row rack1r1() {
    ipsec_flow_row f;
    f.interface = "Tunnel0";
    f.crypto_map = "Tunnel0-head-0";
    f.local = ip(150, 1, 1, 1);
    f.peer = ip(150, 1, 2, 2);
    f.local_ident.addr = f.local;
    f.remote_ident.addr = f.peer;
    f.encaps = f.encrypt = f.digest = 230;
    f.decaps = f.decrypt = f.verify = 227;
    f.send_errors = 12;
    f.path_mtu = 1514;
    f.ip_mtu = 1514;
    f.ip_mtu_idb = "Loopback0";
    f.current_outbound_spi = 0x88261BA3;
    f.inbound = {esp(0xE279A1EE, 2001, 1, 4472116, 2632), esp(0xB4F6A9E5, 2003, 3, 4596176, 2630),
                 esp(0x1492E4D0, 2005, 5, 4525264, 2630)};
    f.outbound = {esp(0x81949874, 2002, 2, 4472116, 2626)};
    return f;
}

// The record, verbatim from "show crypto ipsec sa" up to the first outbound SA (where the
// record stops), then the two lines IOS closes each flow with.
const char* rack1r1_text = R"(interface: Tunnel0
    Crypto map tag: Tunnel0-head-0, local addr 150.1.1.1
    protected vrf: (none)
    local ident (addr/mask/prot/port): (150.1.1.1/255.255.255.255/47/0)
    remote ident (addr/mask/prot/port): (150.1.2.2/255.255.255.255/47/0)
    current_peer 150.1.2.2 port 500
        PERMIT, flags={origin_is_acl,}
        #pkts encaps: 230, #pkts encrypt: 230, #pkts digest: 230
        #pkts decaps: 227, #pkts decrypt: 227, #pkts verify: 227
        #pkts compressed: 0, #pkts decompressed: 0
        #pkts not compressed: 0, #pkts compr. failed: 0
        #pkts not decompressed: 0, #pkts decompress failed: 0
        #send errors 12, #recv errors 0
    local crypto endpt.: 150.1.1.1, remote crypto endpt.: 150.1.2.2
    path mtu 1514, ip mtu 1514, ip mtu idb Loopback0
    current outbound spi: 0x88261BA3(2284198819)
     inbound esp sas:
      spi: 0xE279A1EE(3799622126)
        transform: esp-3des esp-md5-hmac ,
        in use settings ={Transport, }
        conn id: 2001, flow_id: SW:1, crypto map: Tunnel0-head-0
        sa timing: remaining key lifetime (k/sec): (4472116/2632)
        IV size: 8 bytes
        replay detection support: Y
        Status: ACTIVE
      spi: 0xB4F6A9E5(3036064229)
        transform: esp-3des esp-md5-hmac ,
        in use settings ={Transport, }
        conn id: 2003, flow_id: SW:3, crypto map: Tunnel0-head-0
        sa timing: remaining key lifetime (k/sec): (4596176/2630)
        IV size: 8 bytes
        replay detection support: Y
        Status: ACTIVE
      spi: 0x1492E4D0(345171152)
        transform: esp-3des esp-md5-hmac ,
        in use settings ={Transport, }
        conn id: 2005, flow_id: SW:5, crypto map: Tunnel0-head-0
        sa timing: remaining key lifetime (k/sec): (4525264/2630)
        IV size: 8 bytes
        replay detection support: Y
        Status: ACTIVE
     inbound ah sas:
     inbound pcp sas:
     outbound esp sas:
      spi: 0x81949874(2173999220)
        transform: esp-3des esp-md5-hmac ,
        in use settings ={Transport, }
        conn id: 2002, flow_id: SW:2, crypto map: Tunnel0-head-0
        sa timing: remaining key lifetime (k/sec): (4472116/2626)
        IV size: 8 bytes
        replay detection support: Y
        Status: ACTIVE
     outbound ah sas:
     outbound pcp sas:
)";

ike_sa_row hub_sa() {
    ike_sa_row r;
    r.id = 1;
    r.tunnel = "Tunnel0";
    r.local = ip(10, 0, 0, 1);
    r.remote = ip(10, 0, 0, 2);
    r.status = ike_sa_status::ready;
    r.encr = encr_id::aes_cbc;
    r.encr_bits = 256;
    r.prf = prf_id::hmac_sha2_512;
    r.integ = integ_id::hmac_sha2_512_256;
    r.dh_group = 14;
    r.lifetime_s = 86400;
    r.active_s = 13;
    r.local_id = "10.0.0.1";
    r.remote_id = "10.0.0.2";
    r.local_spi = 0x8B6F8F8E1D3D6E4FULL;
    r.remote_spi = 0x3A2C1B0D9E8F7A6BULL;
    r.dpd_interval_s = 30;
    r.dpd_retries = 5;
    r.child_sas = 1;
    return r;
}

}  // namespace

TEST_CASE("show crypto ipsec sa reproduces the recorded IOS hub output", "[ike][show]") {
    view v;
    v.flows.push_back(rack1r1());
    CHECK(show_ipsec_sa(v, format::text) == rack1r1_text);
    // `peer ADDR` keeps that peer's flows only.
    CHECK(show_ipsec_sa(v, format::text, ip(150, 1, 2, 2)) == rack1r1_text);
    CHECK(show_ipsec_sa(v, format::text, ip(150, 1, 3, 3)).empty());
}

TEST_CASE("show crypto ipsec sa: the recorded spoke's values and NAT-T", "[ike][show]") {
    // Write-up B's spoke: AES + SHA, tunnel mode, 120 s lifetime.
    esp_sa_row s;
    s.spi = 1;
    s.transform = ios_transform(encr_id::aes_cbc, 128, integ_id::hmac_sha1_96);
    s.tunnel_mode = true;
    s.remaining_kb = 4463708;
    s.remaining_s = 83;
    s.iv_bytes = iv_bytes(encr_id::aes_cbc);
    ipsec_flow_row f;
    f.interface = "Tunnel0";
    f.peer = ip(2, 2, 2, 2);
    f.inbound = {s};
    view v{{}, {f}, {}};
    std::string text = show_ipsec_sa(v, format::text);
    CHECK_THAT(text, Catch::Contains("    current_peer 2.2.2.2 port 500\n"));
    CHECK_THAT(text, Catch::Contains("        transform: esp-aes esp-sha-hmac ,\n"));
    CHECK_THAT(text, Catch::Contains("        in use settings ={Tunnel, }\n"));
    CHECK_THAT(
        text, Catch::Contains("        sa timing: remaining key lifetime (k/sec): (4463708/83)\n"));
    CHECK_THAT(text, Catch::Contains("        IV size: 16 bytes\n"));

    // NAT-T: UDP-encapsulated transport on 4500; no byte limit prints "-", not a number.
    v.flows[0].peer_port = 4500;
    v.flows[0].inbound[0].tunnel_mode = false;
    v.flows[0].inbound[0].udp_encap = true;
    v.flows[0].inbound[0].remaining_kb.reset();
    text = show_ipsec_sa(v, format::text);
    CHECK_THAT(text, Catch::Contains("    current_peer 2.2.2.2 port 4500\n"));
    CHECK_THAT(text, Catch::Contains("        in use settings ={Transport UDP-Encaps, }\n"));
    CHECK_THAT(text,
               Catch::Contains("        sa timing: remaining key lifetime (k/sec): (-/83)\n"));
}

TEST_CASE("show crypto ipsec sa: two peers on a tunnel, then a second tunnel", "[ike][show]") {
    ipsec_flow_row a = rack1r1();
    a.inbound.clear();
    a.outbound.clear();
    ipsec_flow_row b = a;
    b.peer = ip(150, 1, 3, 3);
    ipsec_flow_row c = a;
    c.interface = "Tunnel1";
    c.crypto_map = "Tunnel1-head-0";
    view v{{}, {a, b, c}, {}};
    std::string text = show_ipsec_sa(v, format::text);
    // One interface line per tunnel; flows of one tunnel and tunnels apart by a blank line.
    CHECK(text.find("interface: Tunnel0\n") == 0);
    CHECK(text.find("interface: Tunnel0", 1) == std::string::npos);
    CHECK_THAT(text,
               Catch::Contains("     outbound pcp sas:\n\n    Crypto map tag: Tunnel0-head-0"));
    CHECK_THAT(text, Catch::Contains("     outbound pcp sas:\n\ninterface: Tunnel1\n    Crypto map "
                                     "tag: Tunnel1-head-0, local addr 150.1.1.1\n"));
    CHECK(show_ipsec_sa(v, format::text, ip(150, 1, 3, 3)).find("current_peer 150.1.3.3") !=
          std::string::npos);
    CHECK(show_ipsec_sa(v, format::text, ip(150, 1, 3, 3)).find("current_peer 150.1.2.2") ==
          std::string::npos);
}

TEST_CASE("show crypto ikev2 sa in the IOS layout", "[ike][show]") {
    view v;
    v.ike_sas.push_back(hub_sa());
    CHECK(show_ikev2_sa(v, format::text) ==
          " IPv4 Crypto IKEv2  SA\n"
          "\n"
          "Tunnel-id Local                 Remote                fvrf/ivrf            Status\n"
          "1         10.0.0.1/500          10.0.0.2/500          none/none            READY\n"
          "      Encr: AES-CBC, keysize: 256, PRF: SHA512, Hash: SHA512, DH Grp:14, Auth sign: "
          "PSK, Auth verify: PSK\n"
          "      Life/Active Time: 86400/13 sec\n"
          "\n"
          " IPv6 Crypto IKEv2  SA\n"
          "\n");
}

TEST_CASE("show crypto ikev2 sa detail: SPIs, identities, DPD, NAT-T, role", "[ike][show]") {
    ike_sa_row r = hub_sa();
    r.id = 7;
    r.remote_port = 4500;
    r.local_port = 4500;
    r.encr = encr_id::aes_gcm_16;
    r.integ = integ_id::none;
    r.prf = prf_id::hmac_sha2_256;
    r.dh_group = 31;
    r.auth_sign = auth_kind::ecdsa;
    r.auth_verify = auth_kind::rsa;
    r.remote_id = "spoke1.example.net";
    r.nat_remote = true;
    r.fragmentation = true;
    ike_sa_row n = hub_sa();
    n.id = 8;
    n.status = ike_sa_status::in_negotiation;
    n.encr = n.encr_bits = n.prf = n.integ = n.dh_group = 0;
    n.initiator = true;
    n.remote_id.clear();
    view v{{r, n}, {}, {}};
    CHECK(show_ikev2_sa(v, format::text, true) ==
          " IPv4 Crypto IKEv2  SA\n"
          "\n"
          "Tunnel-id Local                 Remote                fvrf/ivrf            Status\n"
          "7         10.0.0.1/4500         10.0.0.2/4500         none/none            READY\n"
          "      Encr: AES-GCM, keysize: 256, PRF: SHA256, Hash: None, DH Grp:31, Auth sign: "
          "ECDSA, Auth verify: RSA\n"
          "      Life/Active Time: 86400/13 sec\n"
          "      Status Description: Negotiation done\n"
          "      Local spi: 8B6F8F8E1D3D6E4F       Remote spi: 3A2C1B0D9E8F7A6B\n"
          "      Local id: 10.0.0.1\n"
          "      Remote id: spoke1.example.net\n"
          "      DPD configured for 30 seconds, retry 5\n"
          "      Fragmentation configured.\n"
          "      NAT-T is detected outside\n"
          "      Initiator of SA : No\n"
          "\n"
          "8         10.0.0.1/500          10.0.0.2/500          none/none            IN-NEG\n"
          "      Encr: Unknown, keysize: 0, PRF: Unknown, Hash: None, DH Grp:0, Auth sign: PSK, "
          "Auth verify: PSK\n"
          "      Life/Active Time: 86400/13 sec\n"
          "      Status Description: Negotiation in progress\n"
          "      Local spi: 8B6F8F8E1D3D6E4F       Remote spi: 3A2C1B0D9E8F7A6B\n"
          "      Local id: 10.0.0.1\n"
          "      Remote id: \n"
          "      DPD configured for 30 seconds, retry 5\n"
          "      Fragmentation not configured.\n"
          "      NAT-T is not detected\n"
          "      Initiator of SA : Yes\n"
          "\n"
          " IPv6 Crypto IKEv2  SA\n"
          "\n");
}

TEST_CASE("show crypto session in the IOS layout", "[ike][show]") {
    session_row s;
    s.interface = "Tunnel0";
    s.profile = "dmvpn";
    s.status = session_status::up_active;
    s.peer = ip(10, 0, 0, 2);
    s.session_id = 1;
    s.ike_sas.push_back({ip(10, 0, 0, 1), 500, ip(10, 0, 0, 2), 500, true});
    s.flows.push_back({47, ip(10, 0, 0, 1), ip(10, 0, 0, 2), 2});
    session_row d;
    d.interface = "Tunnel0";
    d.profile = "dmvpn";
    d.status = session_status::down_negotiating;
    d.peer = ip(10, 0, 0, 3);
    d.peer_port = 4500;
    d.session_id = 2;
    view v{{}, {}, {s, d}};
    CHECK(show_session(v, format::text) ==
          "Crypto session current status\n"
          "\n"
          "Interface: Tunnel0\n"
          "Profile: dmvpn\n"
          "Session status: UP-ACTIVE\n"
          "Peer: 10.0.0.2 port 500\n"
          "  Session ID: 1\n"
          "  IKEv2 SA: local 10.0.0.1/500 remote 10.0.0.2/500 Active\n"
          "  IPSEC FLOW: permit 47 host 10.0.0.1 host 10.0.0.2\n"
          "        Active SAs: 2, origin: crypto map\n"
          "\n"
          "Interface: Tunnel0\n"
          "Profile: dmvpn\n"
          "Session status: DOWN-NEGOTIATING\n"
          "Peer: 10.0.0.3 port 4500\n"
          "  Session ID: 2\n"
          "\n");
}

TEST_CASE("show crypto --json: the documented field names", "[ike][show]") {
    view v;
    v.ike_sas.push_back(hub_sa());
    v.ike_sas[0].tunnel = "Tun\"0";  // quoted as JSON requires
    CHECK(show_ikev2_sa(v, format::json) ==
          R"({"ikev2_sas":[{"id":1,"tunnel":"Tun\"0","local":"10.0.0.1","local_port":500,)"
          R"("remote":"10.0.0.2","remote_port":500,"fvrf":"none","ivrf":"none","status":"READY",)"
          R"("encr":"AES-CBC","keysize":256,"prf":"SHA512","hash":"SHA512","dh_group":14,)"
          R"("auth_sign":"PSK","auth_verify":"PSK","lifetime_s":86400,"active_s":13,)"
          R"("local_id":"10.0.0.1","remote_id":"10.0.0.2","local_spi":"8B6F8F8E1D3D6E4F",)"
          R"("remote_spi":"3A2C1B0D9E8F7A6B","initiator":false,"nat_local":false,)"
          R"("nat_remote":false,"dpd_interval_s":30,"dpd_retries":5,"fragmentation":false,)"
          R"("child_sas":1}]})"
          "\n");
    // The detail flag changes the text only.
    CHECK(show_ikev2_sa(v, format::json, true) == show_ikev2_sa(v, format::json));

    ipsec_flow_row f = rack1r1();
    f.inbound.resize(1);
    f.outbound[0].remaining_kb.reset();
    view w{{}, {f}, {}};
    CHECK(show_ipsec_sa(w, format::json) ==
          R"({"ipsec_sas":[{"interface":"Tunnel0","local":"150.1.1.1","peer":"150.1.2.2",)"
          R"("peer_port":500,"protected_vrf":"","local_ident":{"addr":"150.1.1.1",)"
          R"("mask":"255.255.255.255","prot":47,"port":0},"remote_ident":{"addr":"150.1.2.2",)"
          R"("mask":"255.255.255.255","prot":47,"port":0},"encaps":230,"encrypt":230,)"
          R"("digest":230,"decaps":227,"decrypt":227,"verify":227,"send_errors":12,)"
          R"("recv_errors":0,"path_mtu":1514,"ip_mtu":1514,"ip_mtu_idb":"Loopback0",)"
          R"("current_outbound_spi":2284198819,"inbound":[{"spi":3799622126,)"
          R"("transform":"esp-3des esp-md5-hmac","mode":"Transport","udp_encap":false,)"
          R"("conn_id":2001,"flow_id":1,"remaining_kb":4472116,"remaining_s":2632,)"
          R"("iv_bytes":8,"replay_detection":true,"status":"ACTIVE"}],"outbound":[{)"
          R"("spi":2173999220,"transform":"esp-3des esp-md5-hmac","mode":"Transport",)"
          R"("udp_encap":false,"conn_id":2002,"flow_id":2,"remaining_kb":null,)"
          R"("remaining_s":2626,"iv_bytes":8,"replay_detection":true,"status":"ACTIVE"}]}]})"
          "\n");
    CHECK(show_ipsec_sa(w, format::json, ip(1, 2, 3, 4)) == "{\"ipsec_sas\":[]}\n");

    session_row s;
    s.interface = "Tunnel0";
    s.profile = "dmvpn";
    s.status = session_status::up_idle;
    s.peer = ip(10, 0, 0, 2);
    s.session_id = 3;
    s.ike_sas.push_back({ip(10, 0, 0, 1), 4500, ip(10, 0, 0, 2), 4500, true});
    s.flows.push_back({47, ip(10, 0, 0, 1), ip(10, 0, 0, 2), 0});
    view x{{}, {}, {s}};
    CHECK(show_session(x, format::json) ==
          R"({"sessions":[{"interface":"Tunnel0","profile":"dmvpn","status":"UP-IDLE",)"
          R"("peer":"10.0.0.2","peer_port":500,"session_id":3,"ike_sas":[{"version":2,)"
          R"("local":"10.0.0.1",)"
          R"("local_port":4500,"remote":"10.0.0.2","remote_port":4500,"active":true}],)"
          R"("flows":[{"protocol":47,"local":"10.0.0.1","remote":"10.0.0.2","active_sas":0}]}]})"
          "\n");
    CHECK(show_session(view{}, format::json) == "{\"sessions\":[]}\n");
}

TEST_CASE("IOS transform names and IV sizes", "[ike][show]") {
    CHECK(ios_transform(encr_id::aes_gcm_16, 128, integ_id::none) == "esp-gcm 128");
    CHECK(ios_transform(encr_id::aes_gcm_16, 256, integ_id::none) == "esp-gcm 256");
    CHECK(ios_transform(encr_id::aes_cbc, 128, integ_id::hmac_sha1_96) == "esp-aes esp-sha-hmac");
    CHECK(ios_transform(encr_id::aes_cbc, 256, integ_id::hmac_sha1_96) ==
          "esp-aes 256 esp-sha-hmac");
    CHECK(ios_transform(encr_id::aes_cbc, 128, integ_id::hmac_sha2_256_128) ==
          "esp-aes esp-sha256-hmac");
    CHECK(ios_transform(encr_id::aes_cbc, 256, integ_id::hmac_sha2_256_128) ==
          "esp-aes 256 esp-sha256-hmac");
    CHECK(iv_bytes(encr_id::aes_gcm_16) == 8);
    CHECK(iv_bytes(encr_id::aes_cbc) == 16);
}
