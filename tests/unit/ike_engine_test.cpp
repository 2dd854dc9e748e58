// The IKEv2 engine (control/ike/engine.hpp): two engines wired back to back through their
// outputs with a fake clock (initiator and responder), and the responder against strongSwan's
// real IKE_SA_INIT request.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "control/ike/child_pairs.hpp"
#include "control/ike/engine.hpp"
#include "control/ike/ike_sa.hpp"
#include "control/ike/message.hpp"
#include "dataplane/wire/ipv4.hpp"
#include "tests/unit/crypto_test_support.hpp"
#include "tests/unit/ike_engine_pair.hpp"

using namespace dmvpn;
using namespace dmvpn::ike;
using namespace dmvpn::ike::testing;
using std::chrono::seconds;

TEST_CASE("PSK: IKE SA and first CHILD_SA up, the two ends' keys mirror each other") {
    auto p = make_pair(settings(), settings());
    p.initiate();
    REQUIRE(p.a.ups.size() == 1);
    REQUIRE(p.b.ups.size() == 1);
    CHECK(p.b.ups[0].peer == spoke_addr);
    CHECK(p.b.ups[0].identity == "198.51.100.2");
    CHECK(p.a.ups[0].identity == "198.51.100.1");
    REQUIRE(p.a.installs.size() == 1);
    REQUIRE(p.b.installs.size() == 1);
    const child_sa& s = p.a.installs[0];
    const child_sa& h = p.b.installs[0];
    require_pair_matches(s, h);
    // Our first choice: AES-GCM-16 256 with ESN, both offered it.
    CHECK(h.encr == encr_id::aes_gcm_16);
    CHECK(h.encr_bits == 256);
    CHECK(h.esn);
    CHECK(h.inbound.cipher_key.size() == 36);  // key and the 4-byte salt
    CHECK(!h.udp_encap);
    CHECK(h.local == hub_addr);
    CHECK(h.peer == spoke_addr);
    CHECK(p.b.e->counters().ike_sas_up == 1);
    CHECK(p.b.e->counters().half_open == 0);
}

TEST_CASE("The responder's IKE_AUTH answer leaves only once its CHILD_SA is installed") {
    auto p = make_pair(settings(), settings());
    p.b.auto_install = false;
    p.initiate();
    REQUIRE(p.b.installs.size() == 1);
    CHECK(p.a.ups.empty());       // no answer yet
    CHECK(p.b.sent.size() == 1);  // only the IKE_SA_INIT response
    outputs o;
    p.b.e->installed(p.b.installs[0].id, p.now, o);
    p.settle({}, std::move(o));
    CHECK(p.a.ups.size() == 1);
    REQUIRE(p.a.installs.size() == 1);
    require_pair_matches(p.a.installs[0], p.b.installs[0]);
}

TEST_CASE("Each DH group: 14, 19, 20, 31; CBC+HMAC proposals too") {
    for (uint16_t g : {dh_id::modp2048, dh_id::ecp256, dh_id::ecp384, dh_id::curve25519}) {
        auto s = settings("k", {g});
        s.proposals.erase(s.proposals.begin());  // AES-CBC-256 + HMAC-SHA2-256 only
        s.esp_proposals.erase(s.esp_proposals.begin());
        auto p = make_pair(s, s);
        p.initiate();
        INFO("group " << g);
        REQUIRE(p.a.installs.size() == 1);
        REQUIRE(p.b.installs.size() == 1);
        require_pair_matches(p.a.installs[0], p.b.installs[0]);
        CHECK(p.b.installs[0].encr == encr_id::aes_cbc);
        CHECK(p.b.installs[0].integ == integ_id::hmac_sha2_256_128);
        CHECK(p.b.installs[0].inbound.integ_key.size() == 32);
        CHECK_FALSE(p.b.installs[0].esn);
    }
}

TEST_CASE("Wrong PSK: AUTHENTICATION_FAILED, nothing left on either side") {
    auto p = make_pair(settings("spoke-guess"), settings("cloud-key"));
    p.initiate();
    CHECK(p.a.ups.empty());
    CHECK(p.b.ups.empty());
    CHECK(p.b.installs.empty());
    CHECK(p.b.e->counters().auth_failed == 1);
    CHECK(p.b.e->counters().half_open == 0);
    CHECK(ike_sa_count(*p.b.e) == 0);
    CHECK(ike_sa_count(*p.a.e) == 0);
    REQUIRE(p.b.sent.size() == 2);
    // The answer is encrypted; the spoke read AUTHENTICATION_FAILED from it.
    CHECK(p.a.e->counters().auth_failed == 1);
}

TEST_CASE("Per-identity keys: the spoke's own key, not the wildcard") {
    auto hub = settings("wildcard");
    hub.psks.push_back({"198.51.100.2", bytes{'m', 'i', 'n', 'e'}});
    auto p = make_pair(settings("mine"), hub);
    p.initiate();
    CHECK(p.b.ups.size() == 1);
    auto q = make_pair(settings("wildcard"), hub);
    q.initiate();
    CHECK(q.b.ups.empty());
    CHECK(q.b.e->counters().auth_failed == 1);
}

TEST_CASE("INVALID_KE_PAYLOAD names the hub's group; the initiator retries with it") {
    auto spoke = settings("k", {dh_id::ecp256, dh_id::curve25519});
    auto hub = settings("k", {dh_id::curve25519});
    auto p = make_pair(spoke, hub);
    p.initiate();
    CHECK(p.b.e->counters().invalid_ke == 1);
    CHECK(p.a.e->counters().invalid_ke == 1);
    // The first answer: INVALID_KE_PAYLOAD carrying group 31, and no state on the hub for it.
    message first = parsed(p.b.sent.at(0));
    const auto* n = notify_of(first, notify_type::invalid_ke_payload);
    REQUIRE(n != nullptr);
    CHECK(n->data == bytes{0, 31});
    CHECK(first.hdr.spi_r == 0);
    CHECK(p.b.ups.size() == 1);
    CHECK(p.a.installs.size() == 1);
}

TEST_CASE("NO_PROPOSAL_CHOSEN when nothing matches") {
    auto spoke = settings("k", {dh_id::ecp384});
    auto hub = settings("k", {dh_id::curve25519});
    hub.proposals.resize(1);
    spoke.proposals.erase(spoke.proposals.begin());
    auto p = make_pair(spoke, hub);
    p.initiate();
    REQUIRE(p.b.sent.size() == 1);
    CHECK(notify_of(parsed(p.b.sent[0]), notify_type::no_proposal_chosen) != nullptr);
    CHECK(p.b.e->counters().no_proposal == 1);
    CHECK(ike_sa_count(*p.a.e) == 0);
}

TEST_CASE("COOKIE above the half-open threshold; a legitimate spoke still comes up") {
    auto hub = settings();
    hub.cookie_threshold = 3;
    auto p = make_pair(settings(), hub);
    // Three forged initiators that never answer: their IKE_SA_INITs leave half-open SAs.
    for (uint32_t i = 0; i < 3; ++i) {
        auto forged = make(settings(), 0x0a000001 + i);
        outputs o;
        forged->initiate(0, hub_addr, p.now, o);
        REQUIRE(o.send.size() == 1);
        outputs ob;
        p.b.e->on_datagram(o.send[0], p.now, ob);
        REQUIRE(ob.send.size() == 1);
        CHECK(notify_of(parsed(ob.send[0]), notify_type::cookie) == nullptr);
    }
    CHECK(p.b.e->counters().half_open == 3);
    p.initiate();
    CHECK(p.b.e->counters().cookies_sent == 1);
    REQUIRE(p.b.sent.size() >= 1);
    message first = parsed(p.b.sent[0]);
    CHECK(notify_of(first, notify_type::cookie) != nullptr);
    CHECK(first.payloads.size() == 1);
    CHECK(p.a.ups.size() == 1);
    CHECK(p.b.ups.size() == 1);
    // A request with a wrong cookie gets a fresh COOKIE, not state.
    auto forged = make(settings(), 0x0a0000ff);
    outputs o;
    forged->initiate(0, hub_addr, p.now, o);
    auto m = parsed(o.send[0]);
    m.payloads.insert(m.payloads.begin(), notify_payload{0, {}, notify_type::cookie, bytes(36, 7)});
    datagram d = o.send[0];
    d.payload = serialize(m);
    outputs ob;
    p.b.e->on_datagram(d, p.now, ob);
    REQUIRE(ob.send.size() == 1);
    CHECK(notify_of(parsed(ob.send[0]), notify_type::cookie) != nullptr);
    CHECK(p.b.e->counters().half_open == 3);
}

TEST_CASE("max_half_open bounds the half-open SAs; half-open SAs expire") {
    auto hub = settings();
    hub.max_half_open = 2;
    hub.cookie_threshold = 1000;
    auto b = make(hub, hub_addr);
    time_point now = time_point{} + seconds(10);
    for (uint32_t i = 0; i < 5; ++i) {
        auto forged = make(settings(), 0x0a000001 + i);
        outputs o;
        forged->initiate(0, hub_addr, now, o);
        outputs ob;
        b->on_datagram(o.send[0], now, ob);
        CHECK(ob.send.size() == (i < 2 ? 1u : 0u));
    }
    CHECK(b->counters().half_open == 2);
    outputs ob;
    b->tick(now + seconds(31), ob);
    CHECK(b->counters().half_open == 0);
    CHECK(ike_sa_count(*b) == 0);
    CHECK(ob.requests.empty());  // never up: no peer_down
}

TEST_CASE("Duplicate requests are answered from the cache, byte for byte, with no new state") {
    auto p = make_pair(settings(), settings());
    p.initiate();
    REQUIRE(p.a.sent.size() == 2);
    REQUIRE(p.b.sent.size() == 2);
    for (size_t i = 0; i < 2; ++i) {
        outputs o;
        p.b.e->on_datagram(p.a.sent[i], p.now, o);
        REQUIRE(o.send.size() == 1);
        CHECK(o.send[0].payload == p.b.sent[i].payload);
        CHECK(o.requests.empty());
    }
    CHECK(p.b.e->counters().duplicates_answered == 2);
    CHECK(p.b.e->counters().ike_sas_up == 1);
}

TEST_CASE("Retransmission with back-off; a silent peer is given up") {
    auto p = make_pair(settings(), settings());
    p.drop = [](const datagram&, bool) { return true; };
    p.initiate();
    REQUIRE(p.a.sent.size() == 1);
    p.tick(seconds(1));
    CHECK(p.a.sent.size() == 1);
    p.tick(seconds(1));  // 2 s: first retransmission
    CHECK(p.a.sent.size() == 2);
    CHECK(p.a.sent[1].payload == p.a.sent[0].payload);
    p.tick(seconds(2));  // 4 s: not yet (the next waits 4 s)
    CHECK(p.a.sent.size() == 2);
    p.tick(seconds(2));  // 6 s
    CHECK(p.a.sent.size() == 3);
    for (int i = 0; i < 200; ++i) {
        p.tick(seconds(1));
    }
    CHECK(p.a.e->counters().retransmits == 5);
    CHECK(p.a.e->counters().ike_sas_failed == 1);
    CHECK(ike_sa_count(*p.a.e) == 0);
    // The responder's half-open SAs (one per retransmission) expired as well.
    CHECK(ike_sa_count(*p.b.e) == 0);
}

TEST_CASE("A peer that stops after IKE_SA_INIT: the responder's state expires") {
    auto p = make_pair(settings(), settings());
    p.drop = [](const datagram& d, bool from_a) {
        return from_a && parse(d.payload)->hdr.exch == exchange::ike_auth;
    };
    p.initiate();
    CHECK(p.b.e->counters().half_open == 1);
    p.tick(seconds(29));
    CHECK(p.b.e->counters().half_open == 1);
    p.tick(seconds(2));
    CHECK(p.b.e->counters().half_open == 0);
    CHECK(ike_sa_count(*p.b.e) == 0);
}

TEST_CASE("DELETE: clear on one side takes both down") {
    auto p = make_pair(settings(), settings());
    p.initiate();
    outputs o;
    p.a.e->clear(hub_addr, p.now, o);
    p.settle(std::move(o));
    REQUIRE(p.a.downs.size() == 1);
    REQUIRE(p.b.downs.size() == 1);
    CHECK(p.b.downs[0].peer == spoke_addr);
    CHECK(p.a.removes.size() == 1);
    CHECK(p.b.removes.size() == 1);
    CHECK(p.b.removes[0].id == p.b.installs[0].id);
    CHECK(ike_sa_count(*p.a.e) == 0);
    CHECK(ike_sa_count(*p.b.e) == 0);
}

TEST_CASE("DPD: liveness checks when idle; a dead peer goes down") {
    auto hub = settings();
    hub.dpd_interval_s = 10;
    hub.dpd_retries = 3;
    auto spoke = settings();
    spoke.dpd_interval_s = 0;
    auto p = make_pair(spoke, hub);
    p.initiate();
    size_t before = p.b.sent.size();
    p.tick(seconds(11));
    CHECK(p.b.sent.size() == before + 1);  // an empty INFORMATIONAL, answered
    CHECK(p.b.downs.empty());
    // Inbound ESP traffic counts as life: no check while it flows.
    before = p.b.sent.size();
    for (int i = 1; i <= 3; ++i) {
        p.now += seconds(5);
        outputs o;
        p.b.e->usage({{p.b.installs[0].id, uint64_t(100 * i), uint64_t(i), 0, 0}}, p.now, o);
        p.tick(seconds(0));
    }
    CHECK(p.b.sent.size() == before);
    // The spoke vanishes.
    p.drop = [](const datagram&, bool) { return true; };
    for (int i = 0; i < 120; ++i) {
        p.tick(seconds(1));
    }
    REQUIRE(p.b.downs.size() == 1);
    CHECK(p.b.downs[0].why == "dead peer detected");
    CHECK(p.b.removes.size() == 1);
    CHECK(p.b.e->counters().ike_sas_up == 0);
}

TEST_CASE("CHILD_SA rekey: new keys installed before the old pair goes, no peer_down") {
    for (bool pfs : {false, true}) {
        INFO("pfs " << pfs);
        auto s = settings();
        s.child_lifetime_s = 100;
        s.dpd_interval_s = 0;
        if (pfs) {
            s.pfs_group = dh_id::curve25519;
        }
        auto hub = s;
        hub.child_lifetime_s = 1000;  // the spoke rekeys first
        auto p = make_pair(s, hub);
        p.initiate();
        REQUIRE(p.a.installs.size() == 1);
        p.tick(seconds(96));
        REQUIRE(p.a.installs.size() == 2);
        REQUIRE(p.b.installs.size() == 2);
        const child_sa& na = p.a.installs[1];
        const child_sa& nb = p.b.installs[1];
        require_pair_matches(na, nb);
        CHECK(na.replaces == p.a.installs[0].id);
        CHECK(nb.replaces == p.b.installs[0].id);
        // The spoke asked: its new pair encrypts at once; the hub answered before the spoke
        // had the new pair, so the hub's outbound waits (control/ike/child_pairs.hpp). So
        // with the first pair (the hub answered IKE_AUTH; alone, it encrypts at once).
        CHECK_FALSE(p.a.installs[0].outbound_waits);
        CHECK(p.b.installs[0].outbound_waits);
        CHECK_FALSE(na.outbound_waits);
        CHECK(nb.outbound_waits);
        CHECK(key_bytes(na.outbound.cipher_key) != key_bytes(p.a.installs[0].outbound.cipher_key));
        REQUIRE(p.a.removes.size() == 1);
        REQUIRE(p.b.removes.size() == 1);
        CHECK(p.a.removes[0].id == p.a.installs[0].id);
        CHECK(p.b.removes[0].id == p.b.installs[0].id);
        CHECK(p.a.downs.empty());
        CHECK(p.b.downs.empty());
        CHECK(p.a.e->counters().rekeys == 1);
    }
}

TEST_CASE("Soft byte lifetime triggers a CHILD_SA rekey") {
    auto s = settings();
    s.child_lifetime_bytes = 1000000;
    auto p = make_pair(s, s);
    p.initiate();
    outputs o;
    p.a.e->usage({{p.a.installs[0].id, 0, 0, 950000, 900}}, p.now, o);
    p.tick(seconds(1));
    CHECK(p.a.installs.size() == 2);
    CHECK(p.b.installs.size() == 2);
}

TEST_CASE("A packet lifetime under 10 keeps a soft mark: no rekey before traffic, one after") {
    auto s = settings();
    s.child_lifetime_packets = 4;  // the soft mark is 4 - 4 / 10 = 4 packets, never 0
    auto p = make_pair(s, s);
    p.initiate();
    p.tick(seconds(5));
    CHECK(p.a.installs.size() == 1);  // no traffic yet: nothing to rekey
    CHECK(p.a.e->counters().rekeys == 0);
    outputs o;
    p.a.e->usage({{p.a.installs[0].id, 0, 0, 400, 4}}, p.now, o);
    p.tick(seconds(1));
    CHECK(p.a.installs.size() == 2);
    CHECK(p.b.installs.size() == 2);
}

TEST_CASE("IKE SA rekey: new IKE keys, the CHILD_SA stays, no peer_down, the SA still works") {
    auto s = settings();
    s.ike_lifetime_s = 200;
    s.dpd_interval_s = 0;
    auto hub = s;
    hub.ike_lifetime_s = 2000;
    auto p = make_pair(s, hub);
    p.initiate();
    p.tick(seconds(191));
    CHECK(p.a.e->counters().rekeys == 1);
    CHECK(p.b.e->counters().rekeys == 1);
    CHECK(p.a.downs.empty());
    CHECK(p.b.downs.empty());
    CHECK(p.a.removes.empty());
    CHECK(p.b.removes.empty());
    // The old IKE SA was deleted: one SA per side remains.
    CHECK(ike_sa_count(*p.a.e) == 1);
    CHECK(ike_sa_count(*p.b.e) == 1);
    // The new SA carries a DELETE: both go down with the child.
    outputs o;
    p.a.e->clear(0, p.now, o);
    p.settle(std::move(o));
    CHECK(p.b.downs.size() == 1);
    CHECK(p.b.removes.size() == 1);
    CHECK(p.b.downs[0].ike_sa_id == p.b.ups[0].ike_sa_id);
}

TEST_CASE("Initiator: one IKE SA per peer across rekey and DELETE (the by_peer index)") {
    auto s = settings();
    s.ike_lifetime_s = 200;
    s.dpd_interval_s = 0;
    auto hub = s;
    hub.ike_lifetime_s = 2000;
    auto p = make_pair(s, hub);
    p.initiate();
    p.initiate();  // already up: nothing new
    CHECK(ike_sa_count(*p.a.e) == 1);
    CHECK(p.a.ups.size() == 1);
    p.tick(seconds(191));  // IKE SA rekey: the new SA stands for the peer, the old one is gone
    REQUIRE(p.a.e->counters().rekeys == 1);
    p.initiate();
    CHECK(ike_sa_count(*p.a.e) == 1);
    CHECK(p.a.ups.size() == 1);
    outputs o;
    p.a.e->clear(hub_addr, p.now, o);
    p.settle(std::move(o));
    REQUIRE(ike_sa_count(*p.a.e) == 0);
    p.initiate();  // the peer has none now: a fresh one
    CHECK(ike_sa_count(*p.a.e) == 1);
    CHECK(p.a.ups.size() == 2);
}

TEST_CASE("Malformed: unparseable datagrams dropped and counted; missing payloads INVALID_SYNTAX") {
    auto b = make(settings(), hub_addr);
    time_point now{};
    datagram d;
    d.src = spoke_addr;
    d.dst = hub_addr;
    d.payload = bytes(20, 0);
    outputs o;
    b->on_datagram(d, now, o);
    CHECK(o.send.empty());
    CHECK(b->counters().invalid_syntax == 1);
    // An IKE_SA_INIT without KE.
    auto a = make(settings(), spoke_addr);
    outputs oa;
    a->initiate(0, hub_addr, now, oa);
    auto m = parsed(oa.send[0]);
    std::erase_if(m.payloads,
                  [](const payload& p) { return std::holds_alternative<ke_payload>(p); });
    d = oa.send[0];
    d.payload = serialize(m);
    b->on_datagram(d, now, o);
    REQUIRE(o.send.size() == 1);
    CHECK(notify_of(parsed(o.send[0]), notify_type::invalid_syntax) != nullptr);
    CHECK(b->counters().half_open == 0);
    // A request for an IKE SA nobody knows: INVALID_IKE_SPI (section 2.21.4).
    message bogus;
    bogus.hdr.spi_i = 1;
    bogus.hdr.spi_r = 2;
    bogus.hdr.exch = exchange::informational;
    bogus.hdr.flags = header_flag::initiator;
    bogus.hdr.message_id = 5;
    d.payload = serialize(bogus);
    outputs o2;
    b->on_datagram(d, now, o2);
    REQUIRE(o2.send.size() == 1);
    auto r = parsed(o2.send[0]);
    CHECK(notify_of(r, notify_type::invalid_ike_spi) != nullptr);
    CHECK(r.hdr.message_id == 5);
    CHECK(r.hdr.is_response());
}

TEST_CASE("Traffic selectors: narrowed to the two hosts and GRE, others TS_UNACCEPTABLE") {
    auto sel = [](uint8_t proto, uint32_t lo, uint32_t hi) {
        traffic_selector t;
        t.ip_protocol = proto;
        t.start_address = detail::be32(lo);
        t.end_address = detail::be32(hi);
        return ts_payload{{t}};
    };
    // Host selectors for GRE: taken as they are.
    auto r = detail::narrow_ts(sel(47, spoke_addr, spoke_addr), sel(47, hub_addr, hub_addr),
                               spoke_addr, hub_addr, false, false);
    REQUIRE(r);
    CHECK(r->tsi == detail::host_ts(spoke_addr));
    CHECK(r->tsr == detail::host_ts(hub_addr));
    // Any protocol over a range: narrowed (RFC 7296 section 2.9).
    r = detail::narrow_ts(sel(0, 0, 0xffffffff), sel(0, hub_addr - 5, hub_addr + 5), spoke_addr,
                          hub_addr, false, false);
    REQUIRE(r);
    CHECK(r->tsi == detail::host_ts(spoke_addr));
    CHECK(r->tsr == detail::host_ts(hub_addr));
    // TCP only, or addresses that are not the two ends: refused.
    CHECK_FALSE(detail::narrow_ts(sel(6, spoke_addr, spoke_addr), sel(47, hub_addr, hub_addr),
                                  spoke_addr, hub_addr, false, false));
    CHECK_FALSE(detail::narrow_ts(sel(47, 0x0a000001, 0x0a000001), sel(47, hub_addr, hub_addr),
                                  spoke_addr, hub_addr, false, false));
    // Behind a NAT the spoke names its private address: kept as it said.
    r = detail::narrow_ts(sel(47, 0x0a000001, 0x0a000001), sel(47, hub_addr, hub_addr), spoke_addr,
                          hub_addr, true, false);
    REQUIRE(r);
    CHECK(r->tsi == detail::host_ts(0x0a000001));
}

TEST_CASE("ESP proposals: ESN only when both offer it, tunnel-free transforms, PFS group") {
    auto s = settings();
    auto offer = detail::esp_offer(s, 0x1000, std::nullopt);
    // The peer offers AES-GCM-256 without ESN: chosen without ESN.
    sa_payload peer = offer;
    std::erase_if(peer.proposals[0].transforms, [](const transform& t) {
        return t.type == transform_type::esn && t.id == esn_id::yes;
    });
    auto c = detail::select_esp(s, peer, 0x2000, std::nullopt);
    REQUIRE(c);
    CHECK_FALSE(c->esn);
    CHECK(c->peer_spi == 0x1000);
    CHECK(c->chosen.spi == detail::be32(0x2000));
    c = detail::select_esp(s, offer, 0x2000, std::nullopt);
    REQUIRE(c);
    CHECK(c->esn);
    // A KE (PFS) needs a DH transform that names its group.
    CHECK_FALSE(detail::select_esp(s, offer, 0x2000, uint16_t(dh_id::ecp256)));
    auto with_dh = detail::esp_offer(s, 0x1000, uint16_t(dh_id::ecp256));
    CHECK(detail::select_esp(s, with_dh, 0x2000, uint16_t(dh_id::ecp256)));
    CHECK_FALSE(detail::select_esp(s, with_dh, 0x2000, std::nullopt));
}

TEST_CASE("strongSwan 5.9.8's IKE_SA_INIT request: the responder's choices") {
    std::string path;
    for (const char* var : {"DMVPN_SHARED_CAPTURES"}) {
        const char* dir = std::getenv(var);
        if (dir != nullptr) {
            path = std::string(dir) + "/strongswan-5.9.8-spoke-ikev2-sa-init-for-gre.pcap";
        }
    }
    if (path.empty() || !std::filesystem::exists(path)) {
        FAIL("capture not found: " << path);
    }
    auto packets = crypto_test::read_pcap_ipv4(path);
    REQUIRE(!packets.empty());
    auto ip = wire::parse_ipv4(packets[0], wire::checksum_check::skip);
    REQUIRE(ip);
    datagram d;
    d.src = spoke_addr;
    d.dst = hub_addr;
    d.payload.assign(ip->payload.begin() + 8, ip->payload.end());
    // The hub prefers Curve25519 and GCM, but also takes strongSwan's aes256-sha256-modp2048.
    auto s = settings("k", {dh_id::curve25519, dh_id::modp2048});
    auto b = make(s, hub_addr);
    outputs o;
    b->on_datagram(d, time_point{}, o);
    REQUIRE(o.send.size() == 1);
    CHECK(o.send[0].dst == spoke_addr);
    CHECK(o.send[0].dport == 500);
    message r = parsed(o.send[0]);
    message req = parsed(d);
    CHECK(r.hdr.spi_i == req.hdr.spi_i);
    CHECK(r.hdr.spi_r != 0);
    CHECK(r.hdr.is_response());
    CHECK_FALSE(r.hdr.from_initiator());
    const sa_payload* sa = nullptr;
    const ke_payload* ke = nullptr;
    for (const auto& p : r.payloads) {
        sa = sa != nullptr ? sa : std::get_if<sa_payload>(&p);
        ke = ke != nullptr ? ke : std::get_if<ke_payload>(&p);
    }
    REQUIRE(sa != nullptr);
    REQUIRE(sa->proposals.size() == 1);
    std::vector<transform> want = {
        {transform_type::encr, encr_id::aes_cbc, 256, {}},
        {transform_type::prf, prf_id::hmac_sha2_256, std::nullopt, {}},
        {transform_type::integ, integ_id::hmac_sha2_256_128, std::nullopt, {}},
        {transform_type::dh, dh_id::modp2048, std::nullopt, {}},
    };
    CHECK(sa->proposals[0].transforms == want);
    CHECK(sa->proposals[0].number == 1);
    REQUIRE(ke != nullptr);
    CHECK(ke->group == dh_id::modp2048);
    CHECK(ke->data.size() == 256);
    // The NAT detection hashes strongSwan sent match 198.51.100.2:500 -> 198.51.100.1:500: no
    // NAT, so the answer stays on port 500 and carries its own hashes.
    CHECK(notify_of(r, notify_type::nat_detection_source_ip) != nullptr);
    CHECK(notify_of(r, notify_type::nat_detection_destination_ip) != nullptr);
    CHECK(notify_of(r, notify_type::ikev2_fragmentation_supported) != nullptr);
    CHECK(notify_of(r, notify_type::signature_hash_algorithms) != nullptr);
    CHECK(b->counters().half_open == 1);
    // Its retransmission (the capture's next frame) gets the same bytes.
    if (packets.size() > 1) {
        auto ip2 = wire::parse_ipv4(packets[1], wire::checksum_check::skip);
        REQUIRE(ip2);
        datagram d2 = d;
        d2.payload.assign(ip2->payload.begin() + 8, ip2->payload.end());
        outputs o2;
        b->on_datagram(d2, time_point{}, o2);
        if (d2.payload == d.payload) {
            REQUIRE(o2.send.size() == 1);
            CHECK(o2.send[0].payload == o.send[0].payload);
        }
        CHECK(b->counters().half_open == 1);
    }
    // Seen from behind a NAT (another source address): the hashes no longer match.
    auto b2 = make(s, hub_addr);
    datagram natted = d;
    natted.src = 0xcb007101;
    natted.sport = 4500;
    outputs o3;
    b2->on_datagram(natted, time_point{}, o3);
    REQUIRE(o3.send.size() == 1);
}

TEST_CASE("NAT detected: IKE moves to 4500, the CHILD_SA is UDP-encapsulated to the mapping") {
    constexpr uint32_t private_addr = 0x0a000002;  // 10.0.0.2 behind the NAT
    constexpr uint32_t public_addr = 0xcb007105;   // 203.0.113.5
    wire_pair p;
    auto quiet = settings();
    quiet.dpd_interval_s = 0;  // the keepalives below run one side's clock only
    p.a.e = make(quiet, private_addr);
    p.b.e = make(quiet, hub_addr);
    // The NAT rewrites on the way through: the spoke's source (port + 10000) out, back in.
    std::vector<std::pair<datagram, bool>> q;
    auto through_nat = [&](outputs o, bool from_a) { p.take(from_a ? p.a : p.b, o, q, from_a); };
    outputs o;
    p.a.e->initiate(0, hub_addr, p.now, o);
    through_nat(std::move(o), true);
    for (size_t i = 0; i < q.size() && i < 100; ++i) {
        auto [d, from_a] = q[i];
        if (from_a) {
            CHECK(d.src == private_addr);
            d.src = public_addr;
            d.sport = uint16_t(d.sport + 10000);
        } else {
            CHECK(d.dst == public_addr);
            d.dst = private_addr;
            d.dport = uint16_t(d.dport - 10000);
        }
        outputs r;
        (from_a ? p.b : p.a).e->on_datagram(d, p.now, r);
        through_nat(std::move(r), !from_a);
    }
    REQUIRE(p.a.installs.size() == 1);
    REQUIRE(p.b.installs.size() == 1);
    // IKE_AUTH went from and to port 4500.
    REQUIRE(p.a.sent.size() == 2);
    CHECK(p.a.sent[0].sport == 500);
    CHECK(p.a.sent[1].sport == 4500);
    CHECK(p.a.sent[1].dport == 4500);
    const child_sa& h = p.b.installs[0];
    CHECK(h.udp_encap);
    CHECK(h.peer == public_addr);
    CHECK(h.peer_port == 14500);
    CHECK(h.local_port == 4500);
    CHECK(p.a.installs[0].udp_encap);
    require_pair_matches(p.a.installs[0], h);

    // NAT keepalives (RFC 3948 section 2.3): the side behind the NAT sends the 0xff octet to
    // the peer's 4500 every nat-keepalive (20 s), the first an interval after the SA is up; the
    // side in front of it sends none.
    auto keepalives = [&](side& s, time_point until) {
        std::vector<datagram> k;
        for (time_point t = p.now; t <= until; t += seconds(1)) {
            outputs ot;
            s.e->tick(t, ot);
            for (const datagram& d : ot.send) {
                if (d.payload == bytes{0xff}) {
                    k.push_back(d);
                }
            }
        }
        return k;
    };
    auto ka = keepalives(p.a, p.now + seconds(65));
    REQUIRE(ka.size() == 3);  // at 20, 40 and 60 s
    CHECK(ka[0].src == private_addr);
    CHECK(ka[0].sport == 4500);
    CHECK(ka[0].dst == hub_addr);
    CHECK(ka[0].dport == 4500);
    CHECK(p.a.e->counters().nat_keepalives_tx == 3);
    CHECK(keepalives(p.b, p.now + seconds(65)).empty());
    CHECK(p.b.e->counters().nat_keepalives_tx == 0);
}

TEST_CASE("show crypto: the engine's SAs in the view the renderers print") {
    auto p = make_pair(settings(), settings());
    p.initiate();
    const child_sa& h = p.b.installs.at(0);
    std::string ike = p.b.e->show("ikev2 sa", false);
    CHECK(ike.find("198.51.100.2") != std::string::npos);
    CHECK(ike.find("READY") != std::string::npos);
    std::string ipsec = p.b.e->show("ipsec sa", false);
    CHECK(ipsec.find(fmt::format("spi: 0x{:08X}({})", h.inbound.spi, h.inbound.spi)) !=
          std::string::npos);
    CHECK(ipsec.find(fmt::format("spi: 0x{:08X}({})", h.outbound.spi, h.outbound.spi)) !=
          std::string::npos);
    CHECK(ipsec.find("esp-gcm 256") != std::string::npos);
    std::string json = p.b.e->show("session", true);
    CHECK(json.find("UP-ACTIVE") != std::string::npos);
    CHECK(p.b.e->show("ipsec sa peer 198.51.100.9", false) != ipsec);
}

TEST_CASE("A rebooted spoke (INITIAL_CONTACT): the hub drops its old IKE SA and CHILD_SA") {
    auto p = make_pair(settings(), settings());
    p.initiate();
    REQUIRE(p.b.ups.size() == 1);
    p.a.e = make(settings(), spoke_addr);  // the spoke restarts with no state
    p.tick(seconds(1));
    p.initiate();
    REQUIRE(p.b.ups.size() == 2);
    REQUIRE(p.b.downs.size() == 1);
    CHECK(p.b.downs[0].ike_sa_id == p.b.ups[0].ike_sa_id);
    REQUIRE(p.b.removes.size() == 1);
    CHECK(p.b.removes[0].id == p.b.installs[0].id);
    CHECK(ike_sa_count(*p.b.e) == 1);
}

TEST_CASE("Two spokes: one's INITIAL_CONTACT and DELETE touch its own SAs only (by_peer)") {
    // The hub looks up a peer's other IKE SAs in a per-peer index (INITIAL_CONTACT, its last
    // SA going, duplicates), not by a walk over every SA: a second spoke's SA is not its peer's.
    constexpr uint32_t other_addr = spoke_addr + 1;
    auto p = make_pair(settings(), settings());
    p.initiate();
    REQUIRE(p.b.ups.size() == 1);
    auto first = std::move(p.a.e);
    p.a.e = make(settings(), other_addr);
    p.initiate();
    REQUIRE(p.b.ups.size() == 2);
    CHECK(p.b.ups[1].peer == other_addr);
    CHECK(ike_sa_count(*p.b.e) == 2);
    p.a.e = make(settings(), other_addr);  // the second spoke restarts with no state
    p.tick(seconds(1));
    p.initiate();
    REQUIRE(p.b.ups.size() == 3);
    REQUIRE(p.b.downs.size() == 1);
    CHECK(p.b.downs[0].peer == other_addr);
    CHECK(p.b.downs[0].ike_sa_id == p.b.ups[1].ike_sa_id);
    REQUIRE(p.b.removes.size() == 1);
    CHECK(p.b.removes[0].id == p.b.installs[1].id);
    CHECK(ike_sa_count(*p.b.e) == 2);
    p.a.e = std::move(first);  // the first spoke's SA is untouched: the hub deletes it now
    outputs o;
    p.b.e->clear(spoke_addr, p.now, o);
    p.settle({}, std::move(o));
    REQUIRE(p.b.downs.size() == 2);
    CHECK(p.b.downs[1].peer == spoke_addr);
    CHECK(p.b.downs[1].ike_sa_id == p.b.ups[0].ike_sa_id);
    CHECK(ike_sa_count(*p.b.e) == 1);
    CHECK(ike_sa_count(*p.a.e) == 0);
}

TEST_CASE("install_failed: the held IKE_AUTH answer leaves without the CHILD_SA") {
    auto p = make_pair(settings(), settings());
    p.b.auto_install = false;
    p.initiate();
    REQUIRE(p.b.installs.size() == 1);
    outputs o;
    p.b.e->install_failed(p.b.installs[0].id, "no room", p.now, o);
    p.settle({}, std::move(o));
    CHECK(p.a.ups.size() == 1);   // the IKE SA stands
    CHECK(p.a.installs.empty());  // but no CHILD_SA on the spoke
    REQUIRE(p.b.removes.size() == 1);
    CHECK(p.b.removes[0].id == p.b.installs[0].id);
}

TEST_CASE("An install the hub never confirms: given up, the answer leaves without it") {
    auto p = make_pair(settings(), settings());
    p.b.auto_install = false;
    p.initiate();
    REQUIRE(p.b.installs.size() == 1);
    p.tick(seconds(31));
    CHECK(p.a.ups.size() == 1);
    CHECK(p.a.installs.empty());
    REQUIRE(p.b.removes.size() == 1);
    CHECK(p.b.removes[0].why == "never installed");
}

TEST_CASE("Simultaneous CHILD_SA rekey: one new pair survives on both sides (section 2.8.1)") {
    auto s = settings();
    s.child_lifetime_bytes = 1000000;
    s.dpd_interval_s = 0;
    auto p = make_pair(s, s);
    p.initiate();
    outputs oa, ob;
    p.a.e->usage({{p.a.installs[0].id, 0, 0, 950000, 900}}, p.now, oa);
    p.b.e->usage({{p.b.installs[0].id, 0, 0, 950000, 900}}, p.now, ob);
    p.tick(seconds(1));  // both ends start a rekey before either hears the other
    REQUIRE(p.a.installs.size() == 3);
    REQUIRE(p.b.installs.size() == 3);
    // Every pair but one was removed on each side, and the same one survives on both.
    auto survivor = [](const side& x) {
        std::vector<uint64_t> alive;
        for (const auto& c : x.installs) {
            bool gone = std::any_of(x.removes.begin(), x.removes.end(),
                                    [&](const remove_child& r) { return r.id == c.id; });
            if (!gone) {
                alive.push_back(c.id);
            }
        }
        return alive;
    };
    auto sa = survivor(p.a);
    auto sb = survivor(p.b);
    REQUIRE(sa.size() == 1);
    REQUIRE(sb.size() == 1);
    const child_sa* ca = nullptr;
    const child_sa* cb = nullptr;
    for (const auto& c : p.a.installs) {
        ca = c.id == sa[0] ? &c : ca;
    }
    for (const auto& c : p.b.installs) {
        cb = c.id == sb[0] ? &c : cb;
    }
    require_pair_matches(*ca, *cb);
    CHECK(p.a.downs.empty());
    CHECK(p.b.downs.empty());
    // Fed to child_pairs as a host would (installs, then the removals), each side encrypts
    // with the survivor, whether it asked for it or answered.
    for (const side* x : {&p.a, &p.b}) {
        child_pairs set;
        for (const auto& c : x->installs) {
            set.add(c.id, c.outbound_waits);
        }
        for (const auto& r : x->removes) {
            (void)set.remove(r.id, p.now);
        }
        CHECK(set.outbound() == (x == &p.a ? sa[0] : sb[0]));
    }
}

// ---- certificate authentication (RFC 7296 sections 2.15, 3.6, 3.7; RFC 7427) ----

namespace {

void check_refused(wire_pair& p, engine& refuser) {
    CHECK(p.a.ups.empty());
    CHECK(p.b.ups.empty());
    CHECK(p.b.installs.empty());
    CHECK(refuser.counters().auth_failed == 1);
    CHECK(ike_sa_count(*p.b.e) == 0);
    CHECK(ike_sa_count(*p.a.e) == 0);
}

}  // namespace

TEST_CASE("Certificates: RSA-2048 and ECDSA P-256 ends come up, their CHILD_SA keys mirror") {
    for (auto [spoke, hub] : {std::pair{"spoke-rsa", "hub-rsa"}, std::pair{"spoke-ec", "hub-ec"},
                              std::pair{"spoke-rsa", "hub-ec"}}) {
        INFO(spoke << " to " << hub);
        auto p = make_pair(cert_settings(spoke), cert_settings(hub));
        p.initiate();
        REQUIRE(p.a.ups.size() == 1);
        REQUIRE(p.b.ups.size() == 1);
        CHECK(p.b.ups[0].identity == "198.51.100.2");
        CHECK(p.a.ups[0].identity == "198.51.100.1");
        REQUIRE(p.a.installs.size() == 1);
        REQUIRE(p.b.installs.size() == 1);
        require_pair_matches(p.a.installs[0], p.b.installs[0]);
        CHECK(p.a.e->counters().auth_failed == 0);
        CHECK(p.b.e->counters().auth_failed == 0);
    }
}

TEST_CASE("show crypto ikev2 sa: Auth sign/verify name the key each end signed with") {
    struct one {
        const char *spoke, *hub, *spoke_kind, *hub_kind;
    };
    for (const one& t :
         {one{"spoke-rsa", "hub-ec", "RSA", "ECDSA"}, one{"spoke-ec", "hub-rsa", "ECDSA", "RSA"},
          one{"spoke-ec", "hub-ec", "ECDSA", "ECDSA"}, one{"spoke-rsa", "hub-rsa", "RSA", "RSA"}}) {
        INFO(t.spoke << " to " << t.hub);
        auto p = make_pair(cert_settings(t.spoke), cert_settings(t.hub));
        p.initiate();
        REQUIRE(p.b.ups.size() == 1);
        // The hub signs with its key and verified the spoke's; the spoke the other way round.
        CHECK_THAT(p.b.e->show("ikev2 sa", false),
                   Catch::Contains(
                       fmt::format("Auth sign: {}, Auth verify: {}\n", t.hub_kind, t.spoke_kind)));
        CHECK_THAT(p.a.e->show("ikev2 sa detail", false),
                   Catch::Contains(
                       fmt::format("Auth sign: {}, Auth verify: {}\n", t.spoke_kind, t.hub_kind)));
        CHECK_THAT(p.b.e->show("ikev2 sa", true),
                   Catch::Contains(fmt::format("\"auth_sign\":\"{}\",\"auth_verify\":\"{}\"",
                                               t.hub_kind, t.spoke_kind)));
    }
    // Pre-shared keys both ways.
    auto p = make_pair(settings(), settings());
    p.initiate();
    REQUIRE(p.b.ups.size() == 1);
    CHECK_THAT(p.b.e->show("ikev2 sa", false),
               Catch::Contains("Auth sign: PSK, Auth verify: PSK\n"));
}

TEST_CASE("Certificates: IKE_SA_INIT carries CERTREQ with the CA's key hash and hash algorithms") {
    auto p = make_pair(cert_settings("spoke-ec"), cert_settings("hub-ec"));
    p.initiate();
    REQUIRE(p.b.ups.size() == 1);
    REQUIRE(!p.b.sent.empty());
    message r = parsed(p.b.sent[0]);  // the IKE_SA_INIT response
    const certreq_payload* cr = nullptr;
    for (const auto& pl : r.payloads) {
        if (const auto* c = std::get_if<certreq_payload>(&pl)) {
            cr = c;
        }
    }
    REQUIRE(cr != nullptr);
    CHECK(cr->encoding == cert_encoding::x509_signature);
    // SHA-1 of the CA's SubjectPublicKeyInfo, as the openssl CLI computes it.
    std::ifstream f(pki() + "/ca.keyhash");
    std::string want;
    f >> want;
    std::string got;
    for (uint8_t b : cr->data) {
        got += fmt::format("{:02x}", b);
    }
    CHECK(got == want);
    const notify_payload* sh = notify_of(r, notify_type::signature_hash_algorithms);
    REQUIRE(sh != nullptr);
    CHECK(sh->data == bytes{0, 2, 0, 3, 0, 4});  // SHA2-256, 384, 512 (RFC 7427)
}

TEST_CASE("Certificates: a chain through an intermediate, and an FQDN identity from local_id") {
    auto spoke = cert_settings("spoke-int", "spoke-int-chain.pem");
    spoke.local_id = "spoke1.example.net";
    auto p = make_pair(spoke, cert_settings("hub-rsa"));
    p.initiate();
    REQUIRE(p.b.ups.size() == 1);
    CHECK(p.b.ups[0].identity == "spoke1.example.net");
    REQUIRE(p.a.installs.size() == 1);
    REQUIRE(p.b.installs.size() == 1);
    require_pair_matches(p.a.installs[0], p.b.installs[0]);

    // Without the intermediate the hub cannot chain the leaf to its anchor.
    auto q = make_pair(cert_settings("spoke-int"), cert_settings("hub-rsa"));
    q.initiate();
    check_refused(q, *q.b.e);
}

TEST_CASE("Certificates refused: untrusted CA, identity not in the certificate, expired") {
    for (const char* leaf : {"spoke-rogue", "spoke-wrongip", "spoke-expired"}) {
        INFO(leaf);
        auto p = make_pair(cert_settings(leaf), cert_settings("hub-ec"));
        p.initiate();
        check_refused(p, *p.b.e);
        CHECK(p.b.e->counters().half_open == 0);
        CHECK(p.a.e->counters().auth_failed == 1);  // it read AUTHENTICATION_FAILED
    }
    // An FQDN identity the certificate does not carry.
    auto spoke = cert_settings("spoke-ec");
    spoke.local_id = "spoke1.example.net";
    auto p = make_pair(spoke, cert_settings("hub-ec"));
    p.initiate();
    check_refused(p, *p.b.e);
}

TEST_CASE("Certificates: the initiator refuses a responder its anchors do not trust") {
    auto p = make_pair(cert_settings("spoke-ec", "", "other"), cert_settings("hub-ec"));
    p.initiate();
    CHECK(p.a.ups.empty());
    CHECK(p.a.installs.empty());
    CHECK(p.a.e->counters().auth_failed == 1);
    CHECK(ike_sa_count(*p.a.e) == 0);
}

TEST_CASE("Certificate profiles: create() names the profile and the file it cannot use") {
    auto attempt = [](const config::ike_settings& s) {
        config::ipsec_profile p;
        p.name = "dmvpn";
        p.ike = s;
        auto e = engine::create({p}, {{0, hub_addr, "dmvpn"}});
        REQUIRE_FALSE(e);
        return e.error();
    };
    auto s = cert_settings("hub-ec");
    s.certificate = pki() + "/missing.pem";
    CHECK(attempt(s) ==
          "ipsec profile dmvpn: ike: certificate " + pki() + "/missing.pem: cannot be read");
    s = cert_settings("hub-ec");
    s.private_key = pki() + "/hub-rsa.key";
    CHECK(attempt(s).starts_with("ipsec profile dmvpn: ike: private-key " + pki() +
                                 "/hub-rsa.key: is not the key of"));
    s = cert_settings("hub-ec");
    s.ca = {pki() + "/ca.ext"};
    CHECK(attempt(s) ==
          "ipsec profile dmvpn: ike: ca " + pki() + "/ca.ext: no PEM certificate found");
    s = cert_settings("hub-ec");
    s.private_key.clear();
    CHECK(attempt(s) ==
          "ipsec profile dmvpn: ike: authentication certificate needs certificate, private-key "
          "and ca");
}

TEST_CASE("Certificates: a peer without SIGNATURE_HASH_ALGORITHMS gets the classic AUTH method") {
    // A hand-made initiator (the codec and crypto primitives, not the engine) that announces
    // neither RFC 7427 nor NAT detection, signing with method 9 (ECDSA P-256, SHA-256).
    auto hub_settings = cert_settings("hub-ec");
    auto hub = make(hub_settings, hub_addr);
    auto pem = [](const std::string& name) {
        std::ifstream f(pki() + "/" + name, std::ios::binary);
        std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        REQUIRE(!s.empty());
        return bytes(s.begin(), s.end());
    };
    auto dh = ike::crypto::key_exchange::generate(dh_id::curve25519);
    REQUIRE(dh);
    bytes ni(32, 0x5a);
    message init;
    init.hdr.spi_i = 0x0102030405060708ULL;
    init.hdr.exch = exchange::ike_sa_init;
    init.hdr.flags = header_flag::initiator;
    init.payloads.emplace_back(detail::ike_offer(hub_settings, {}));
    init.payloads.emplace_back(ke_payload{dh_id::curve25519, (*dh)->public_value()});
    init.payloads.emplace_back(nonce_payload{ni});
    datagram d;
    d.src = spoke_addr;
    d.dst = hub_addr;
    d.payload = serialize(init);
    outputs o;
    hub->on_datagram(d, time_point{} + seconds(1), o);
    REQUIRE(o.send.size() == 1);
    const bytes init_response = o.send[0].payload;
    message r = parsed(o.send[0]);
    CHECK(notify_of(r, notify_type::signature_hash_algorithms) == nullptr);
    const ke_payload* ke = nullptr;
    const nonce_payload* nr = nullptr;
    for (const auto& pl : r.payloads) {
        ke = ke != nullptr ? ke : std::get_if<ke_payload>(&pl);
        nr = nr != nullptr ? nr : std::get_if<nonce_payload>(&pl);
    }
    REQUIRE(ke != nullptr);
    REQUIRE(nr != nullptr);
    auto gir = (*dh)->shared_secret(ke->data);
    REQUIRE(gir);
    // The hub's first choice: AES-GCM-16 256, PRF HMAC-SHA2-256.
    ike::crypto::ike_suite suite{encr_id::aes_gcm_16, 256, integ_id::none, prf_id::hmac_sha2_256,
                                 dh_id::curve25519};
    auto keys =
        ike::crypto::derive_ike_keys(suite, ni, nr->data, gir->view(), init.hdr.spi_i, r.hdr.spi_r);

    id_payload_i idi;
    idi.type = id_type::ipv4_addr;
    idi.data = {198, 51, 100, 2};
    auto key = ike::crypto::private_key::load_pem(pem("spoke-ec.key"), "spoke-ec.key");
    REQUIRE(key);
    auto certs = ike::crypto::certificate::load_pem(pem("spoke-ec.pem"), "spoke-ec.pem");
    REQUIRE(certs);
    bytes octets = ike::crypto::signed_octets(d.payload, nr->data, suite.prf, keys.sk_pi.view(),
                                              detail::id_body(idi));
    auto sig = (*key)->sign(auth_method::ecdsa_sha256_p256, octets);
    REQUIRE(sig);
    std::vector<payload> inner;
    inner.emplace_back(idi);
    inner.emplace_back(cert_payload{cert_encoding::x509_signature, (*certs)[0]->der()});
    inner.emplace_back(auth_payload{auth_method::ecdsa_sha256_p256, *sig});
    inner.emplace_back(detail::notify(notify_type::use_transport_mode));
    inner.emplace_back(detail::esp_offer(hub_settings, 0x11223344, std::nullopt));
    inner.emplace_back(ts_payload_i{detail::host_ts(spoke_addr)});
    inner.emplace_back(ts_payload_r{detail::host_ts(hub_addr)});
    chain ch = serialize_payloads(inner);
    header h = init.hdr;
    h.spi_r = r.hdr.spi_r;
    h.exch = exchange::ike_auth;
    h.message_id = 1;
    h.next = payload_type::sk;
    size_t body = ch.data.size() + ike::crypto::protected_size(keys.initiator, ch.data.size());
    h.length = uint32_t(header_size + generic_payload_header_size + body);
    bytes msg = serialize_header(h);
    size_t sk_len = generic_payload_header_size + body;
    msg.insert(msg.end(), {uint8_t(ch.first), 0, uint8_t(sk_len >> 8), uint8_t(sk_len)});
    auto enc = ike::crypto::protect(keys.initiator, msg, ch.data);
    REQUIRE(enc);
    msg.insert(msg.end(), enc->begin(), enc->end());
    d.payload = msg;

    outputs o2;
    hub->on_datagram(d, time_point{} + seconds(1), o2);
    uint64_t child = 0;
    for (const auto& rq : o2.requests) {
        if (const auto* i = std::get_if<install_child>(&rq)) {
            child = i->sa.id;
        }
    }
    REQUIRE(child != 0);
    CHECK(hub->counters().auth_failed == 0);
    outputs o3;
    hub->installed(child, time_point{} + seconds(1), o3);
    REQUIRE(o3.send.size() == 1);
    // The answer: the hub's CERT and an AUTH of method 9 that its certificate verifies.
    message ar = parsed(o3.send[0]);
    REQUIRE(!ar.payloads.empty());
    const auto* sk = std::get_if<sk_payload>(&ar.payloads.back());
    REQUIRE(sk != nullptr);
    const bytes& raw = o3.send[0].payload;
    auto plain = ike::crypto::unprotect(
        keys.responder, std::span(raw).first(raw.size() - sk->body.size()), sk->body);
    REQUIRE(plain);
    auto got = parse_payloads(sk->first_inner, *plain);
    REQUIRE(got);
    const auto* idr = detail::find_payload<id_payload_r>(*got);
    const auto* cert = detail::find_payload<cert_payload>(*got);
    const auto* auth = detail::find_payload<auth_payload>(*got);
    REQUIRE(idr != nullptr);
    REQUIRE(cert != nullptr);
    REQUIRE(auth != nullptr);
    CHECK(auth->method == auth_method::ecdsa_sha256_p256);
    auto hub_certs = ike::crypto::certificate::load_pem(pem("hub-ec.pem"), "hub-ec.pem");
    REQUIRE(hub_certs);
    CHECK(cert->data == (*hub_certs)[0]->der());
    bytes hub_octets = ike::crypto::signed_octets(init_response, ni, suite.prf, keys.sk_pr.view(),
                                                  detail::id_body(*idr));
    auto ok = (*hub_certs)[0]->verify(auth->method, auth->data, hub_octets);
    REQUIRE(ok);
    CHECK(*ok);
}

namespace {

// Two hubs initiating to each other at the same moment (each the other's `nhs`).
void initiate_both(wire_pair& p) {
    outputs oa, ob;
    p.a.e->initiate(0, hub_addr, p.now, oa);
    p.b.e->initiate(0, spoke_addr, p.now, ob);
    p.settle(std::move(oa), std::move(ob));
}

}  // namespace

TEST_CASE("Hub to hub: the peer keys us while our IKE_SA_INIT is unanswered: ours is abandoned") {
    // Hub a behind a NAT: b's IKE_SA_INITs to a's public address are never answered (the NAT
    // has no mapping for them), a's own initiation reaches b.
    auto p = make_pair(settings(), settings());
    p.drop = [](const datagram& d, bool from_a) {
        const auto m = parse(d.payload);
        return !from_a && m && m->hdr.exch == exchange::ike_sa_init && !m->hdr.is_response();
    };
    initiate_both(p);
    // b answered a's IKE_AUTH: the peer is up there, and b's own initiation, still waiting for
    // its IKE_SA_INIT answer, is gone (not retransmitted for a minute, not a failure).
    CHECK(p.a.ups.size() == 1);
    CHECK(p.b.ups.size() == 1);
    CHECK(p.b.e->counters().initiations_abandoned == 1);
    CHECK(p.a.e->counters().initiations_abandoned == 0);
    CHECK(ike_sa_count(*p.a.e) == 1);
    CHECK(ike_sa_count(*p.b.e) == 1);
    CHECK(p.b.failed.empty());
    CHECK(p.b.downs.empty());
    CHECK(p.b.e->show("ikev2 stats", true).find("\"init_sent\": 0,") != std::string::npos);
    CHECK(p.b.e->show("ikev2 stats", true).find("\"initiations_abandoned\": 1") !=
          std::string::npos);
    const size_t sent = p.b.sent.size();
    for (int i = 0; i < 8; ++i) {  // past the 62 s it retransmitted for before
        p.tick(seconds(10));
    }
    size_t inits = 0;
    for (size_t i = sent; i < p.b.sent.size(); ++i) {
        const auto m = parse(p.b.sent[i].payload);
        inits += m && m->hdr.exch == exchange::ike_sa_init ? 1 : 0;
    }
    CHECK(inits == 0);
    CHECK(p.b.e->counters().retransmits == 0);
    CHECK(p.b.failed.empty());
    CHECK(p.a.downs.empty());
    CHECK(p.b.downs.empty());
    CHECK(ike_sa_count(*p.b.e) == 1);
    // Asking b to initiate again: the peer's SA is there, nothing starts.
    outputs again;
    p.b.e->initiate(0, spoke_addr, p.now, again);
    CHECK(again.send.empty());
}

TEST_CASE("Hub to hub: an initiation past IKE_SA_INIT is not abandoned for the peer's SA") {
    // Both IKE_SA_INITs answered: each end's initiation is in IKE_AUTH when the other's SA comes
    // up, so nothing is abandoned and the duplicate rule (lowest nonce) keeps one SA.
    auto p = make_pair(settings(), settings());
    initiate_both(p);
    CHECK(p.a.e->counters().initiations_abandoned == 0);
    CHECK(p.b.e->counters().initiations_abandoned == 0);
    CHECK(p.a.e->counters().duplicates_deleted + p.b.e->counters().duplicates_deleted == 1);
    CHECK(p.a.failed.empty());
    CHECK(p.b.failed.empty());
}

TEST_CASE("Hub to hub: both ends initiate at once, the redundant IKE SA goes, one pair stays") {
    // Random nonces: whichever end's SA had the lower nonce goes, so both cases come up.
    size_t a_deleted = 0, b_deleted = 0;
    for (int run = 0; run < 12; ++run) {
        auto p = make_pair(settings(), settings());
        initiate_both(p);
        // Each end initiated one and answered the other's: both came up (two peer_ups each),
        // then the end that initiated the SA with the lower nonce (RFC 7296 section 2.8.1's
        // rule) deleted it, and the other end agreed: one IKE SA and one CHILD_SA pair left.
        CHECK(p.a.ups.size() == 2);
        CHECK(p.b.ups.size() == 2);
        REQUIRE(p.a.installs.size() == 2);
        REQUIRE(p.b.installs.size() == 2);
        CHECK(ike_sa_count(*p.a.e) == 1);
        CHECK(ike_sa_count(*p.b.e) == 1);
        const uint64_t da = p.a.e->counters().duplicates_deleted;
        const uint64_t db = p.b.e->counters().duplicates_deleted;
        CHECK(da + db == 1);  // one DELETE, from one end
        a_deleted += da;
        b_deleted += db;
        // The peer stayed up throughout (NHRP keeps it), one pair removed on each side.
        CHECK(p.a.downs.empty());
        CHECK(p.b.downs.empty());
        REQUIRE(p.a.removes.size() == 1);
        REQUIRE(p.b.removes.size() == 1);
        // The same pair went on both ends, and the survivors are each other's.
        auto removed = [](const side& s) { return s.installs[0].id == s.removes[0].id ? 0u : 1u; };
        const child_sa& gone_a = p.a.installs[removed(p.a)];
        const child_sa& gone_b = p.b.installs[removed(p.b)];
        CHECK(gone_a.inbound.spi == gone_b.outbound.spi);
        require_pair_matches(p.a.installs[1 - removed(p.a)], p.b.installs[1 - removed(p.b)]);
        // Asking again is a no-op: one IKE SA per peer is already there.
        outputs again;
        p.a.e->initiate(0, hub_addr, p.now, again);
        CHECK(again.send.empty());
        if (run == 0) {
            // Liveness checks keep the survivor: nothing dies over a few DPD rounds.
            for (int i = 0; i < 10; ++i) {
                p.tick(seconds(30));
            }
            CHECK(p.a.downs.empty());
            CHECK(p.b.downs.empty());
            CHECK(ike_sa_count(*p.a.e) == 1);
            CHECK(ike_sa_count(*p.b.e) == 1);
            // Cleared at one end (a DELETE): the peer goes on both, once.
            outputs oc;
            p.a.e->clear(hub_addr, p.now, oc);
            p.settle(std::move(oc));
            CHECK(p.a.downs.size() == 1);
            CHECK(p.b.downs.size() == 1);
        }
    }
    CHECK(a_deleted + b_deleted == 12);
}

TEST_CASE("Hub to hub: a delayed initiation meets the established SA; no pair is lost") {
    // `b`'s IKE_SA_INIT is held back until `a`'s SA is up: `b` then holds two SAs with `a`
    // (one each way) and so does `a`; the rule still leaves exactly one on both.
    auto p = make_pair(settings(), settings());
    std::vector<std::pair<datagram, bool>> held;
    outputs oa, ob;
    p.a.e->initiate(0, hub_addr, p.now, oa);
    p.b.e->initiate(0, spoke_addr, p.now, ob);
    p.take(p.b, ob, held, false);
    p.settle(std::move(oa));
    REQUIRE(ike_sa_count(*p.a.e) == 1);
    // Its retransmission (the engine's timer) carries the held request.
    p.tick(seconds(3));
    CHECK(ike_sa_count(*p.a.e) == 1);
    CHECK(ike_sa_count(*p.b.e) == 1);
    CHECK(p.a.downs.empty());
    CHECK(p.b.downs.empty());
}

TEST_CASE("Hub to hub: a peer that restarts keys again with INITIAL_CONTACT; the stale SAs go") {
    auto p = make_pair(settings(), settings());
    initiate_both(p);
    REQUIRE(ike_sa_count(*p.b.e) == 1);
    // `a` restarts: a fresh engine, nothing of the old SAs; it initiates as at start.
    p.a = side{};
    p.a.e = make(settings(), spoke_addr);
    p.initiate();
    REQUIRE(p.a.ups.size() == 1);
    CHECK(ike_sa_count(*p.b.e) == 1);  // the stale SA destroyed by INITIAL_CONTACT
    CHECK(p.b.downs.size() == 1);      // NHRP forgets the restarted peer once
    CHECK(p.b.ups.size() == 3);
    CHECK(p.b.e->counters().ike_sas_up == 1);
}

TEST_CASE("Hub to hub: an initiation that never comes up is reported (initiation_failed)") {
    auto p = make_pair(settings(), settings());
    std::vector<initiation_failed> failed;
    outputs o;
    p.a.e->initiate(0, hub_addr, p.now, o);  // its IKE_SA_INIT goes nowhere
    REQUIRE(o.send.size() == 1);
    for (int i = 0; i < 200 && failed.empty(); ++i) {
        p.now += seconds(1);
        outputs t;
        p.a.e->tick(p.now, t);
        for (auto& r : t.requests) {
            if (auto* f = std::get_if<initiation_failed>(&r)) {
                failed.push_back(*f);
            }
            CHECK(!std::holds_alternative<peer_down>(r));  // it never came up
        }
    }
    REQUIRE(failed.size() == 1);
    CHECK(failed[0].peer == hub_addr);
    CHECK(failed[0].tunnel == 0);
    CHECK(failed[0].why == "peer not answering");
    CHECK(ike_sa_count(*p.a.e) == 0);
}
