// The whole emulator without DPDK: frames out of the engine go to the scripted hub of
// spokesim_hub_double.hpp, whose frames go back in. Proves ARP, the registration ramp, data via
// the hub, the Phase 3 switch to shortcuts, purges, and the checks and counters.
#include <catch2/catch.hpp>

#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "tests/unit/spokesim_hub_double.hpp"
#include "dataplane/wire/checksum.hpp"
#include "tools/spokesim/payload.hpp"

using namespace dmvpn;
using namespace dmvpn::spokesim;
using namespace dmvpn::spokesim::test;

TEST_CASE("end to end: ARP, registration ramp, data via hub, TI, shortcuts", "[spokesim]") {
    rig r({"--vdev", "test", "--spokes", "6", "--gre-key", "1000", "--auth", "secret", "--holdtime",
           "30", "--reg-rate", "20", "--rate", "600", "--duration", "2", "--drain", "0.5"});
    r.run_for(100 * ms);
    CHECK(r.hub->arp_requests == 1);
    CHECK(r.eng->hub_mac_known());
    CHECK(r.eng->hub_mac() == hub_mac);
    // 20 registrations/s: after 0.1 s only the first two or three spokes have registered.
    CHECK(r.eng->sum(r.now).registered < 6);
    CHECK(r.eng->sum(r.now).registered >= 2);
    r.run_for(400 * ms);
    CHECK(r.eng->sum(r.now).registered == 6);
    CHECK(r.eng->current_phase() == phase::traffic);
    r.run_for(3000 * ms);
    REQUIRE(r.eng->done());
    totals t = r.eng->sum(r.now);
    INFO(r.eng->report_json(r.now));
    CHECK(t.registered == 6);
    CHECK(t.nhrp.registration_replies == 6);
    CHECK(t.nhrp.registration_rejects == 0);
    // Each spoke announced its NBMA address once, with its first registration.
    CHECK(r.hub->announcements.size() == 6);
    for (uint32_t i = 0; i < 6; ++i) {
        CHECK(r.hub->announcements[r.topo->nbma_of(i)] == 1);
    }
    CHECK(r.eng->arp_announcements_sent() == 6);
    // Every sender got one TI, resolved its peer through the hub, and switched to the shortcut.
    CHECK(r.hub->tis_sent == 6);
    CHECK(t.nhrp.traffic_indications == 6);
    CHECK(t.nhrp.resolution_requests_sent == 6);
    CHECK(r.hub->resolutions_forwarded == 6);
    CHECK(t.nhrp.resolution_requests_answered == 6);
    CHECK(t.nhrp.shortcuts_installed == 6);
    CHECK(t.sent == 1200);  // 600/s for 2 s
    CHECK(t.data.sent_via_hub == r.hub->data_forwarded);
    CHECK(t.data.sent_via_hub >= 6);
    CHECK(t.data.sent_shortcut > 1000);
    CHECK(t.received == t.sent);
    CHECK(t.data.received_shortcut == t.data.sent_shortcut);
    CHECK(t.lost == 0);
    CHECK(t.data.corrupt == 0);
    CHECK(r.eng->success(r.now));
    std::string json = r.eng->report_json(r.now);
    CHECK(json.find("\"ok\":true") == 1);
    CHECK(json.find("\"per_spoke\":[{\"index\":0") != std::string::npos);
}

TEST_CASE("refresh at holdtime/3, corrupt data caught, purge removes the shortcut", "[spokesim]") {
    rig r({"--vdev", "test", "--spokes", "2", "--hub-mac", "02:bb:00:00:00:01", "--holdtime", "6",
           "--reg-rate", "100", "--rate", "100", "--duration", "7", "--drain", "0.2"});
    r.hub->corrupt_next_data = true;  // the first data packet through the hub
    r.run_for(100 * ms);
    CHECK(r.hub->arp_requests == 0);  // told the hub's MAC
    CHECK(r.eng->sum(r.now).registered == 2);
    r.run_for(1000 * ms);
    CHECK(r.eng->sum(r.now).data.corrupt == 1);
    CHECK(r.eng->sum(r.now).nhrp.shortcuts_installed == 2);

    // The hub purges spoke 1's binding at spoke 0: the flow falls back to the hub, a new TI
    // comes and the shortcut is built again.
    std::deque<buffer> back;
    r.hub->send_nhrp(r.hub->purge_for(r.topo->overlay_of(0), r.topo->overlay_of(1)),
                     r.topo->nbma_of(0), back);
    for (auto& f : back) {
        r.eng->on_frame(f, r.now);
    }
    r.hub->forget_redirects();
    r.run_for(1 * ms);
    CHECK(r.hub->purge_replies == 1);
    CHECK(r.eng->spoke_at(0).counters().purges_received == 1);
    r.run_for(7000 * ms);
    REQUIRE(r.eng->done());
    totals t = r.eng->sum(r.now);
    INFO(r.eng->report_json(r.now));
    // 8+ s with holdtime 6: refreshed every 2 s, never lapsed.
    CHECK(t.nhrp.registration_replies >= 8);
    CHECK(t.registered == 2);
    CHECK(r.eng->spoke_at(0).counters().shortcuts_installed == 2);
    CHECK(t.data.corrupt == 1);
    CHECK(t.lost == 1);  // the corrupted one never counted as received
    CHECK_FALSE(r.eng->success(r.now));
    CHECK(r.eng->report_json(r.now).find("\"ok\":false") == 1);
}

TEST_CASE("a hub that refuses registrations: nobody registers, no data, a failed run",
          "[spokesim]") {
    rig r({"--vdev", "test", "--spokes", "3", "--hub-mac", "02:bb:00:00:00:01", "--rate", "50",
           "--duration", "1", "--register-wait", "2", "--drain", "0"});
    r.hub->reply_code = nhrp::cie_code::unique_address_already_registered;
    r.run_for(5000 * ms);
    REQUIRE(r.eng->done());
    totals t = r.eng->sum(r.now);
    CHECK(t.registered == 0);
    CHECK(t.nhrp.registration_rejects >= 3);
    // Unregistered, each spoke announces its NBMA address again with every registration.
    for (uint32_t i = 0; i < 3; ++i) {
        CHECK(r.hub->announcements[r.topo->nbma_of(i)] >= 2);
    }
    CHECK(t.sent == 0);
    CHECK(r.eng->spoke_at(0).last_reject() == verdict::rejected);
    CHECK_FALSE(r.eng->success(r.now));
}

TEST_CASE("answers ARP for every spoke's NBMA address, and only those", "[spokesim]") {
    rig r({"--vdev", "test", "--spokes", "4", "--hub-mac", "02:bb:00:00:00:01"});
    const mac asker{0x02, 0xcc, 0, 0, 0, 9};
    for (uint32_t i = 0; i < 4; ++i) {
        r.eng->on_frame(arp_frame(1, asker, r.topo->hub_nbma(), broadcast_mac, r.topo->nbma_of(i)),
                        r.now);
    }
    r.eng->on_frame(arp_frame(1, asker, r.topo->hub_nbma(), broadcast_mac, r.topo->nbma_of(4)),
                    r.now);
    REQUIRE(r.sink.frames.size() == 4);
    for (uint32_t i = 0; i < 4; ++i) {
        auto eth = parse_eth(r.sink.frames[i]);
        REQUIRE(eth);
        CHECK(eth->dst == asker);
        auto arp = parse_arp(eth->payload);
        REQUIRE(arp);
        CHECK(arp->op == 2);
        CHECK(arp->sender_mac == port_mac);
        CHECK(arp->sender_ip == r.topo->nbma_of(i));
    }
    CHECK(r.eng->arp_replies_sent() == 4);
}

TEST_CASE("ESP transport with the derived SAs: the hub's side of the keys decrypts everything",
          "[spokesim]") {
    // CBC + HMAC is what the hub takes with manual keys; GCM remains for tests playing the hub.
    const char* xf = GENERATE("aes128-cbc-sha1-96", "aes256-cbc-sha256-128", "aes256-gcm16");
    INFO(xf);
    rig r({"--vdev", "test", "--spokes", "4", "--esp", xf, "--sa-seed", "99", "--gre-key", "5",
           "--hub-mac", "02:bb:00:00:00:01", "--rate", "400", "--duration", "1", "--drain", "0.2",
           "--no-shortcuts"});
    r.run_for(3000 * ms);
    REQUIRE(r.eng->done());
    totals t = r.eng->sum(r.now);
    INFO(r.eng->report_json(r.now));
    CHECK(t.registered == 4);
    CHECK(t.sent == 400);
    CHECK(t.data.sent_shortcut == 0);  // TIs ignored: Phase 2 behaviour
    CHECK(t.nhrp.traffic_indications == 4);
    CHECK(t.received == 400);
    CHECK(t.data.esp_errors == 0);
    CHECK(r.hub->esp_decrypted == t.sent + t.nhrp.registrations_sent);
    CHECK(r.eng->success(r.now));

    // A frame the hub encrypted, replayed: anti-replay drops it and the spoke counts it.
    buffer pkt;
    put_ipv4(pkt, r.topo->hub_nbma(), r.topo->nbma_of(0), ip_proto_gre, 4 + 4, 1);
    put_gre(pkt, 5u, 0x0800);
    pkt.insert(pkt.end(), {0x45, 0, 0, 4});
    REQUIRE(r.hub->esp->protect(0, pkt) == esp_status::ok);
    buffer f;
    put_eth(f, port_mac, hub_mac, ethertype_ipv4);
    f.insert(f.end(), pkt.begin(), pkt.end());
    uint64_t before = r.eng->data_at(0).esp_errors;
    r.eng->on_frame(f, r.now);
    r.eng->on_frame(f, r.now);
    CHECK(r.eng->data_at(0).esp_errors ==
          before + 1);  // the first decrypts (then fails inner checks)
    CHECK(r.eng->data_at(0).corrupt >= 1);

    // Clear GRE while ESP is configured is dropped.
    buffer clear_f;
    put_eth(clear_f, port_mac, hub_mac, ethertype_ipv4);
    put_ipv4(clear_f, r.topo->hub_nbma(), r.topo->nbma_of(1), ip_proto_gre, 4, 2);
    put_gre(clear_f, 5u, 0x2001);
    r.eng->on_frame(clear_f, r.now);
    CHECK(r.eng->data_at(1).unprotected == 1);
}

TEST_CASE("--stop-refresh: the first spokes register once and lapse, the others refresh",
          "[spokesim]") {
    rig r({"--vdev", "test", "--spokes", "4", "--hub-mac", "02:bb:00:00:00:01", "--holdtime", "6",
           "--stop-refresh", "2", "--peer-offset", "2", "--rate", "100", "--duration", "8",
           "--drain", "0.2", "--no-shortcuts"});
    // Registered at about 0 s with holdtime 6: lapsed by 7 s.
    r.run_for(7000 * ms);
    uint64_t lapsed_sent = r.eng->data_at(0).sent_via_hub;
    uint64_t live_sent = r.eng->data_at(2).sent_via_hub;
    CHECK(lapsed_sent > 0);
    r.run_for(3000 * ms);
    REQUIRE(r.eng->done());
    INFO(r.eng->report_json(r.now));
    for (uint32_t k = 0; k < 2; ++k) {
        CHECK(r.eng->spoke_at(k).counters().registrations_sent == 1);
        CHECK_FALSE(r.eng->spoke_at(k).registered(r.now));
    }
    for (uint32_t k = 2; k < 4; ++k) {
        CHECK(r.eng->spoke_at(k).counters().registration_replies >= 4);  // every 2 s
        CHECK(r.eng->spoke_at(k).registered(r.now));
    }
    // The lapsed spokes stop sending; the live ones keep sending to them.
    CHECK(r.eng->data_at(0).sent_via_hub == lapsed_sent);
    CHECK(r.eng->data_at(2).sent_via_hub > live_sent);
    CHECK(r.eng->sum(r.now).registered == 2);
}

TEST_CASE(
    "--move-spoke: the spoke registers again from its new NBMA address and answers ARP "
    "there",
    "[spokesim]") {
    rig r({"--vdev", "test", "--spokes", "4", "--hub-mac", "02:bb:00:00:00:01", "--no-unique",
           "--move-spoke", "1", "--move-after", "1", "--rate", "0", "--duration", "2", "--drain",
           "0"});
    r.run_for(500 * ms);
    ipv4 old_nbma = r.topo->nbma_of(1);
    CHECK(r.hub->bindings.at(r.topo->overlay_of(1)) == old_nbma);
    r.run_for(3000 * ms);
    REQUIRE(r.eng->done());
    INFO(r.eng->report_json(r.now));
    ipv4 new_nbma = r.topo->nbma_of(4 + 1);  // the block after the spokes' own
    CHECK(r.eng->spoke_at(1).id().nbma == new_nbma);
    CHECK(r.hub->bindings.at(r.topo->overlay_of(1)) == new_nbma);
    CHECK(r.eng->spoke_at(1).counters().registration_replies == 2);
    CHECK(r.eng->spoke_at(0).counters().registration_replies == 1);
    CHECK(r.eng->success(r.now));
    CHECK(r.eng->report_json(r.now).find("\"moved_nbma\":\"" + to_string(new_nbma) + "\"") !=
          std::string::npos);

    // ARP: the new address is answered, the old one no longer.
    const mac asker{0x02, 0xcc, 0, 0, 0, 9};
    r.sink.frames.clear();
    r.eng->on_frame(arp_frame(1, asker, r.topo->hub_nbma(), broadcast_mac, old_nbma), r.now);
    CHECK(r.sink.frames.empty());
    r.eng->on_frame(arp_frame(1, asker, r.topo->hub_nbma(), broadcast_mac, new_nbma), r.now);
    REQUIRE(r.sink.frames.size() == 1);
    auto arp = parse_arp(parse_eth(r.sink.frames.front())->payload);
    REQUIRE(arp);
    CHECK(arp->sender_ip == new_nbma);
}

TEST_CASE(
    "--flood-ratio: malformed, wrong-password and unknown-source frames beside the "
    "registrations",
    "[spokesim]") {
    rig r({"--vdev",     "test",   "--spokes",      "10", "--hub-mac", "02:bb:00:00:00:01",
           "--auth",     "secret", "--gre-key",     "7",  "--esp",     "aes128-cbc-sha1-96",
           "--reg-rate", "20",     "--flood-ratio", "6",  "--rate",    "20",
           "--duration", "0.5",    "--drain",       "0.1"});
    r.hub->expect_flood = true;
    r.run_for(3000 * ms);
    REQUIRE(r.eng->done());
    totals t = r.eng->sum(r.now);
    INFO(r.eng->report_json(r.now));
    // The ramp takes 0.5 s at 20/s: about 6 x 10 hostile frames, in three equal kinds.
    uint64_t flood = r.hub->flood_malformed + r.hub->flood_wrong_auth + r.hub->flood_unknown_source;
    CHECK(flood >= 50);
    CHECK(flood <= 70);
    CHECK(r.hub->flood_malformed >= flood / 3);
    CHECK(r.hub->flood_wrong_auth >= flood / 3);
    CHECK(r.hub->flood_unknown_source >= flood / 3);
    // The legitimate side is untouched: every spoke registered at the first try.
    CHECK(t.registered == 10);
    CHECK(t.nhrp.registrations_sent == 10);
    CHECK(t.nhrp.registration_replies == 10);
    CHECK(r.eng->success(r.now));
    std::string json = r.eng->report_json(r.now);
    CHECK(json.find(fmt::format("\"flood_malformed\":{},", r.hub->flood_malformed)) !=
          std::string::npos);
    CHECK(json.find(fmt::format("\"flood_unknown_source\":{},", r.hub->flood_unknown_source)) !=
          std::string::npos);
}

TEST_CASE("--forge: each forged source registers, then each resolves, then each sends multicast",
          "[spokesim]") {
    rig r({"--vdev",       "test",   "--spokes",  "4",  "--hub-mac",  "02:bb:00:00:00:01",
           "--auth",       "secret", "--gre-key", "7",  "--forge",    "5",
           "--forge-rate", "1000",   "--rate",    "20", "--duration", "0.5",
           "--drain",      "0.1"});
    r.hub->expect_flood = true;
    r.run_for(3000 * ms);
    REQUIRE(r.eng->done());
    INFO(r.eng->report_json(r.now));
    REQUIRE(r.hub->unknown_frames.size() == 15);
    for (size_t i = 0; i < 15; ++i) {
        size_t j = i % 5;
        auto eth = parse_eth(r.hub->unknown_frames[i]);
        auto ip = parse_ipv4(eth->payload);
        REQUIRE(ip);
        // Sources after the spokes' three blocks of 4, each its own.
        CHECK(ip->src == r.topo->nbma_of(static_cast<uint32_t>(12 + j)));
        auto gre = parse_gre(ip->payload);
        REQUIRE(gre);
        CHECK(gre->key == std::optional<uint32_t>(7));
        if (i < 10) {
            REQUIRE(gre->proto == gre_proto_nhrp);
            auto p = nhrp::parse(gre->payload);
            REQUIRE(p);
            CHECK(p->hdr.type ==
                  (i < 5 ? nhrp::op::registration_request : nhrp::op::resolution_request));
            CHECK(from_bytes(p->src_proto) == r.topo->overlay_of(static_cast<uint32_t>(12 + j)));
            if (i >= 5) {
                // A spoke's address: the hub has an answer to send to the forged source.
                CHECK(from_bytes(p->dst_proto) == r.topo->overlay_of(static_cast<uint32_t>(j % 4)));
            }
        } else {
            REQUIRE(gre->proto == gre_proto_ipv4);
            auto inner = parse_ipv4(gre->payload);
            REQUIRE(inner);
            CHECK(inner->dst == ipv4{0xef010101u});
            CHECK(inner->src == r.topo->overlay_of(static_cast<uint32_t>(12 + j)));
        }
    }
    totals t = r.eng->sum(r.now);
    CHECK(t.registered == 4);
    CHECK(t.nhrp.registrations_sent == 4);
    std::string json = r.eng->report_json(r.now);
    CHECK(json.find("\"forged_registrations\":5,\"forged_resolutions\":5,"
                    "\"forged_multicast\":5,") != std::string::npos);
    // A multicast copy from the hub is counted as such, not as corrupt data.
    std::deque<buffer> back;
    buffer group;
    put_ipv4(group, r.topo->overlay_of(12), ipv4{0xef010101u}, ip_proto_udp, 8 + 4, 9);
    put_udp(group, 20000, 20000, 4);
    group.resize(group.size() + 4, 0);
    r.hub->send_gre(gre_proto_ipv4, group, r.topo->nbma_of(1), back);
    for (auto& f : back) {
        r.eng->on_frame(f, r.now);
    }
    CHECK(r.eng->data_at(1).multicast_received == 1);
    CHECK(r.eng->data_at(1).corrupt == 0);
}

TEST_CASE("--forge needs room for its addresses and plain GRE", "[spokesim]") {
    CHECK_FALSE(parse_options(
        {"--vdev", "x", "--spokes", "10", "--tunnel-prefix", "10.0.0.0/24", "--forge", "1000"}));
    CHECK_FALSE(parse_options({"--vdev", "x", "--forge", "10", "--esp", "aes128-gcm16"}));
    CHECK(parse_options(
        {"--vdev", "x", "--spokes", "10", "--tunnel-prefix", "10.0.0.0/12", "--forge", "100000"}));
}

TEST_CASE("an Error Indication about someone else's address is counted apart", "[spokesim]") {
    rig r({"--vdev", "test", "--spokes", "2", "--hub-mac", "02:bb:00:00:00:01", "--rate", "0",
           "--duration", "1"});
    r.run_for(200 * ms);
    REQUIRE(r.eng->sum(r.now).registered == 2);
    nhrp::packet ei;
    ei.hdr.type = nhrp::op::error_indication;
    ei.error_code = nhrp::error_code::authentication_failure;
    ei.src_nbma = to_bytes(r.topo->hub_nbma());
    ei.src_proto = to_bytes(r.topo->hub_overlay());
    std::deque<buffer> back;
    ei.dst_proto = to_bytes(r.topo->overlay_of(5));  // nobody's here
    r.hub->send_nhrp(ei, r.topo->nbma_of(0), back);
    ei.dst_proto = to_bytes(r.topo->overlay_of(0));  // spoke 0's own
    r.hub->send_nhrp(ei, r.topo->nbma_of(0), back);
    for (auto& f : back) {
        r.eng->on_frame(f, r.now);
    }
    CHECK(r.eng->spoke_at(0).counters().error_indications == 1);
    CHECK(r.eng->report_json(r.now).find("\"foreign_answers\":1,") != std::string::npos);
}

// --- the emulator's side of --ike, with a scripted IKE standing in for control/ike's engine:
// INIT -> RESP installs a pair with keys both ends compute from the two NBMA addresses; DELETE
// takes it down. What is proven here is the emulator's plumbing (pacing, UDP frames and the
// non-ESP marker, keepalives, registration once keyed, held NHRP until a spoke-to-spoke SA,
// shortcut traffic in ESP, peer_down and the retry); spokesim_ike_test.cpp runs the real engine.
namespace {

uint64_t g_pair_id = 1000;

// One direction's SA of the scripted pairs: AES-GCM-128, key and SPI from the addresses.
crypto::sa_params scripted_params(ipv4 from, ipv4 to, crypto::sa_direction dir,
                                  std::vector<uint8_t>& key) {
    key.resize(20);
    for (size_t i = 0; i < key.size(); ++i) {
        key[i] = static_cast<uint8_t>((from >> (8 * (i % 4))) ^ (to >> (8 * ((i + 1) % 4))) ^ i);
    }
    crypto::sa_params p;
    p.spi = ((from * 2654435761u) ^ to) | 0x1000u;
    p.direction = dir;
    p.cipher = crypto::cipher_alg::aes_gcm_16;
    p.integ = crypto::integ_alg::none;
    p.cipher_key = key;
    return p;
}

uint64_t scripted_install(esp_table& t, uint32_t local, ipv4 me, ipv4 peer) {
    std::vector<uint8_t> ko;
    std::vector<uint8_t> ki;
    auto out = scripted_params(me, peer, crypto::sa_direction::outbound, ko);
    auto in = scripted_params(peer, me, crypto::sa_direction::inbound, ki);
    uint64_t id = g_pair_id++;
    auto e = t.add(id, local, peer, out, in);
    INFO(e.value_or(""));
    REQUIRE_FALSE(e);
    return id;
}

std::string text_of(const buffer& b) { return std::string(b.begin(), b.end()); }

buffer udp_frame(ipv4 src, ipv4 dst, uint16_t sport, uint16_t dport,
                 std::span<const uint8_t> payload) {
    buffer f;
    put_eth(f, port_mac, hub_mac, ethertype_ipv4);
    put_ipv4(f, src, dst, ip_proto_udp, 8 + payload.size(), 3);
    put_udp(f, sport, dport, payload.size());
    f.insert(f.end(), payload.begin(), payload.end());
    return f;
}

// Odd spokes speak from port 4500 (as after a NAT-T float), even ones from 500.
uint16_t port_of(uint32_t local) { return local % 2 == 1 ? 4500 : 500; }

class scripted_ike final : public ike_layer {
public:
    scripted_ike(const topology& t, esp_table& esp) : _t(t), _esp(esp) {}

    std::vector<std::pair<uint64_t, uint32_t>> initiations;  // (when, spoke)
    std::vector<ike_datagram> received;
    uint64_t ticks = 0;

    void initiate(uint32_t local, ipv4 peer, uint64_t now_us) override {
        initiations.emplace_back(now_us, local);
        emit(local, _t.nbma_of(local), peer, port_of(local), port_of(local), "INIT");
    }
    void on_datagram(const ike_datagram& d, uint64_t) override {
        received.push_back(d);
        std::string p = text_of(d.payload);
        if (p == "INIT" || p == "RESP") {
            _pairs[{d.local, d.src}] = scripted_install(_esp, d.local, d.dst, d.src);
            _events.push_back({ike_event::kind::ike_up, d.local, d.src, false, ""});
            _events.push_back({ike_event::kind::child_up, d.local, d.src, false, ""});
            if (p == "INIT") {
                emit(d.local, d.dst, d.src, d.dport, d.sport, "RESP");
            }
        } else if (p == "DELETE") {
            CHECK(_esp.remove(_pairs.at({d.local, d.src})));
            _events.push_back({ike_event::kind::peer_down, d.local, d.src, false, "deleted"});
        }
    }
    void tick(uint64_t) override { ++ticks; }
    void take(std::vector<ike_datagram>& send, std::vector<ike_event>& events) override {
        send.insert(send.end(), _send.begin(), _send.end());
        events.insert(events.end(), _events.begin(), _events.end());
        _send.clear();
        _events.clear();
    }
    ike_counts counts() const override { return {}; }

private:
    void emit(uint32_t local, ipv4 src, ipv4 dst, uint16_t sport, uint16_t dport,
              const std::string& what) {
        _send.push_back({local, src, dst, sport, dport, buffer(what.begin(), what.end())});
    }
    const topology& _t;
    esp_table& _esp;
    std::map<std::pair<uint32_t, ipv4>, uint64_t> _pairs;
    std::vector<ike_datagram> _send;
    std::vector<ike_event> _events;
};

// The rig with the scripted IKE on both sides: the hub answers INIT with RESP and installs its
// half in its own table.
struct scripted_ike_rig {
    std::unique_ptr<rig> r;
    scripted_ike* ike = nullptr;
    esp_table* spoke_esp = nullptr;
    esp_table* hub_esp = nullptr;
    std::map<uint32_t, uint64_t> hub_pairs;                // spoke -> pair
    std::vector<std::pair<uint16_t, uint16_t>> hub_ports;  // (sport, dport) of what came in

    explicit scripted_ike_rig(std::vector<std::string> args) {
        r = std::make_unique<rig>(std::move(args), [&](rig& g, std::unique_ptr<esp_layer>& esp,
                                                       std::unique_ptr<ike_layer>& il) {
            auto table = esp_table::create();
            REQUIRE(table);
            spoke_esp = table->get();
            auto s = std::make_unique<scripted_ike>(*g.topo, **table);
            ike = s.get();
            il = std::move(s);
            esp = std::move(*table);
            auto hub_table = esp_table::create();
            REQUIRE(hub_table);
            hub_esp = hub_table->get();
            g.hub->esp = std::move(*hub_table);
            g.hub->on_udp = [this, &g](const ipv4_view& ip, std::deque<buffer>& out) {
                auto u = parse_udp(ip.payload);
                REQUIRE(u);
                hub_ports.emplace_back(u->src_port, u->dst_port);
                std::span<const uint8_t> p = u->payload;
                if (u->dst_port == 4500) {
                    REQUIRE(p.size() >= 4);
                    REQUIRE((p[0] | p[1] | p[2] | p[3]) == 0);  // the non-ESP marker
                    p = p.subspan(4);
                }
                REQUIRE(std::string(p.begin(), p.end()) == "INIT");
                auto spoke = g.topo->local_by_nbma(ip.src);
                REQUIRE(spoke);
                hub_pairs[*spoke] = scripted_install(*hub_esp, *spoke, ip.dst, ip.src);
                buffer resp;
                if (u->dst_port == 4500) {
                    resp.assign(4, 0);
                }
                resp.insert(resp.end(), {'R', 'E', 'S', 'P'});
                out.push_back(udp_frame(ip.dst, ip.src, u->dst_port, u->src_port, resp));
            };
        });
    }
};

}  // namespace

TEST_CASE("--ike plumbing: paced keying over UDP 500/4500, registration only once keyed",
          "[spokesim][ike]") {
    scripted_ike_rig k({"--vdev", "test", "--spokes", "6", "--hub-mac", "02:bb:00:00:00:01",
                        "--gre-key", "3", "--ike", "psk:x", "--ike-rate", "50", "--rate", "300",
                        "--duration", "1", "--drain", "0.2", "--no-shortcuts"});
    rig& r = *k.r;
    r.run_for(30 * ms);
    // 50 a second: spokes 0 (at 0 ms) and 1 (at 20 ms) so far.
    CHECK(r.eng->current_phase() == phase::keying);
    CHECK(k.ike->initiations.size() == 2);
    CHECK(r.eng->keyed() == 2);
    CHECK(r.eng->spoke_at(5).counters().registrations_sent == 0);
    CHECK(r.eng->spoke_at(0).counters().registrations_sent == 1);
    REQUIRE(k.hub_ports.size() == 2);
    CHECK(k.hub_ports[0] == std::pair<uint16_t, uint16_t>{500, 500});
    CHECK(k.hub_ports[1] == std::pair<uint16_t, uint16_t>{4500, 4500});
    // The RESP to spoke 1 came back on 4500 with the marker, which the emulator removed.
    REQUIRE(k.ike->received.size() == 2);
    CHECK(text_of(k.ike->received[1].payload) == "RESP");
    CHECK(k.ike->received[1].dport == 4500);
    CHECK(k.ike->ticks >= 1);

    // A NAT keepalive is ignored; ESP in UDP (no marker) is counted and not handed to IKE.
    const uint8_t keepalive[] = {0xff};
    r.eng->on_frame(udp_frame(r.topo->hub_nbma(), r.topo->nbma_of(1), 4500, 4500, keepalive),
                    r.now);
    const uint8_t esp_in_udp[] = {0, 0, 0x10, 0x01, 0, 0, 0, 1, 9, 9, 9, 9};
    r.eng->on_frame(udp_frame(r.topo->hub_nbma(), r.topo->nbma_of(1), 4500, 4500, esp_in_udp),
                    r.now);
    const uint8_t other[] = {1, 2, 3};
    r.eng->on_frame(udp_frame(r.topo->hub_nbma(), r.topo->nbma_of(1), 53, 53, other), r.now);
    CHECK(k.ike->received.size() == 2);
    CHECK(r.eng->ike_sum().nat_keepalives == 1);
    CHECK(r.eng->ike_sum().udp_not_ike == 2);

    r.run_for(4000 * ms);
    REQUIRE(r.eng->done());
    INFO(r.eng->report_json(r.now));
    CHECK(r.eng->keyed() == 6);
    for (size_t i = 1; i < k.ike->initiations.size(); ++i) {
        CHECK(k.ike->initiations[i].first - k.ike->initiations[i - 1].first == 20 * ms);
    }
    totals t = r.eng->sum(r.now);
    CHECK(t.registered == 6);
    CHECK(t.sent == 300);
    CHECK(t.received == 300);
    CHECK(r.hub->esp_decrypted == t.sent + t.nhrp.registrations_sent);
    CHECK(r.eng->success(r.now));
    CHECK(r.eng->report_json(r.now).find("\"ike\":true,\"keyed\":6,") != std::string::npos);
}

TEST_CASE("--ike: the report has the handshake times with the hub (initiation to IKE SA up)",
          "[spokesim][ike]") {
    scripted_ike_rig k({"--vdev", "test", "--spokes", "4", "--hub-mac", "02:bb:00:00:00:01",
                        "--ike", "psk:x", "--ike-rate", "1000", "--rate", "0", "--duration", "0.1",
                        "--drain", "0", "--no-shortcuts"});
    rig& r = *k.r;
    // The hub answers spoke i's IKE_SA_INIT (i + 1) x 5 ms late.
    std::vector<std::pair<uint64_t, buffer>> later;
    auto answer = std::move(r.hub->on_udp);
    r.hub->on_udp = [&](const ipv4_view& ip, std::deque<buffer>&) {
        std::deque<buffer> now_out;
        answer(ip, now_out);
        auto spoke = r.topo->local_by_nbma(ip.src);
        REQUIRE(spoke);
        for (buffer& f : now_out) {
            later.emplace_back(r.now + (*spoke + 1) * 5 * ms, std::move(f));
        }
    };
    r.on_step = [&](uint64_t now) {
        for (auto it = later.begin(); it != later.end();) {
            if (it->first <= now) {
                r.eng->on_frame(it->second, now);
                it = later.erase(it);
            } else {
                ++it;
            }
        }
    };
    r.run_for(2000 * ms);
    REQUIRE(r.eng->done());
    std::string rep = r.eng->report_json(r.now);
    INFO(rep);
    CHECK(r.eng->keyed() == 4);
    // 5, 10, 15, 20 ms: the median (nearest rank) is 10, the 99th percentile and maximum 20; the
    // last of them (spoke 3, initiated 3 ms after spoke 0) came up 23 ms after the first
    // initiation.
    CHECK(rep.find("\"ike_handshakes\":4,\"ike_handshake_p50_ms\":10.000,"
                   "\"ike_handshake_p99_ms\":20.000,\"ike_handshake_max_ms\":20.000,"
                   "\"ike_keying_s\":0.023") != std::string::npos);
}

TEST_CASE(
    "--ike plumbing: a shortcut's reply waits for the spoke-to-spoke SA, its traffic "
    "goes in ESP between the spokes",
    "[spokesim][ike]") {
    scripted_ike_rig k({"--vdev", "test", "--spokes", "4", "--hub-mac", "02:bb:00:00:00:01",
                        "--ike", "psk:x", "--ike-rate", "1000", "--rate", "400", "--duration", "1",
                        "--drain", "0.2"});
    rig& r = *k.r;
    r.run_for(4000 * ms);
    REQUIRE(r.eng->done());
    INFO(r.eng->report_json(r.now));
    auto ik = r.eng->ike_sum();
    // Spoke i+1 answers i's resolution: it keys itself with i first, the reply held meanwhile.
    CHECK(ik.spoke_sas == 8);
    CHECK(ik.held == 4);
    CHECK(ik.held_dropped == 0);
    CHECK(k.hub_ports.size() == 4);  // the hub saw only its own four exchanges
    for (uint32_t i = 0; i < 4; ++i) {
        CHECK(k.spoke_esp->has(i, r.topo->nbma_of((i + 1) % 4)));
        CHECK(k.spoke_esp->has((i + 1) % 4, r.topo->nbma_of(i)));
    }
    totals t = r.eng->sum(r.now);
    CHECK(t.nhrp.shortcuts_installed == 4);
    CHECK(t.data.sent_shortcut > 300);
    CHECK(t.data.received_shortcut == t.data.sent_shortcut);
    // Only the via-hub packets and NHRP to the hub went through the hub's ESP.
    CHECK(r.hub->esp_decrypted == t.data.sent_via_hub + t.nhrp.registrations_sent +
                                      t.nhrp.resolution_requests_sent + t.nhrp.purge_replies_sent);
    CHECK(r.eng->success(r.now));
}

TEST_CASE("--ike plumbing: peer_down takes the spoke down, it initiates again after --ike-retry",
          "[spokesim][ike]") {
    scripted_ike_rig k({"--vdev", "test", "--spokes", "3", "--hub-mac", "02:bb:00:00:00:01",
                        "--ike", "psk:x", "--ike-retry", "0.5", "--rate", "0", "--duration", "3",
                        "--drain", "0"});
    rig& r = *k.r;
    r.run_for(300 * ms);
    REQUIRE(r.eng->keyed() == 3);
    REQUIRE(r.eng->sum(r.now).registered == 3);
    CHECK(r.eng->current_phase() == phase::traffic);
    uint64_t regs = r.eng->spoke_at(1).counters().registrations_sent;
    CHECK(k.hub_esp->remove(k.hub_pairs.at(1)));
    const uint8_t del[] = {0, 0, 0, 0, 'D', 'E', 'L', 'E', 'T', 'E'};
    r.eng->on_frame(udp_frame(r.topo->hub_nbma(), r.topo->nbma_of(1), 4500, 4500, del), r.now);
    r.run_for(10 * ms);
    CHECK(r.eng->keyed() == 2);
    CHECK_FALSE(r.eng->keyed(1));
    CHECK(r.eng->ike_sum().peer_downs == 1);
    CHECK_FALSE(k.spoke_esp->has(1, r.topo->hub_nbma()));
    r.run_for(600 * ms);
    CHECK(r.eng->keyed() == 3);
    size_t again = 0;
    for (const auto& [when, local] : k.ike->initiations) {
        again += local == 1 ? 1 : 0;
    }
    CHECK(again == 2);
    CHECK(r.eng->spoke_at(1).counters().registrations_sent > regs);
    r.run_for(4000 * ms);
    REQUIRE(r.eng->done());
    CHECK(r.eng->success(r.now));
}

TEST_CASE("ICMP echo to a spoke is answered through the hub; a broken one is not", "[spokesim]") {
    rig r({"--vdev", "test", "--spokes", "2", "--hub-mac", "02:bb:00:00:00:01", "--gre-key", "7",
           "--rate", "0", "--duration", "5"});
    r.run_for(500 * ms);
    REQUIRE(r.eng->sum(r.now).registered == 2);
    auto echo = [&](bool broken) {
        buffer req;
        const uint8_t icmp[] = {8, 0, 0, 0, 0x12, 0x34, 0, 1, 'p', 'i', 'n', 'g'};
        put_ipv4(req, r.topo->hub_overlay(), r.topo->overlay_of(1), ip_proto_icmp, sizeof icmp, 5);
        size_t at = req.size();
        req.insert(req.end(), std::begin(icmp), std::end(icmp));
        uint16_t sum = wire::inet_checksum(std::span<const uint8_t>(req).subspan(at));
        req[at + 2] = static_cast<uint8_t>(sum >> 8);
        req[at + 3] = static_cast<uint8_t>(sum ^ (broken ? 1 : 0));
        std::deque<buffer> back;
        r.hub->send_gre(gre_proto_ipv4, req, r.topo->nbma_of(1), back);
        for (auto& f : back) {
            r.eng->on_frame(f, r.now);
        }
        r.run_for(5 * ms);
    };
    echo(false);
    REQUIRE(r.hub->to_hub.size() == 1);
    auto ip = parse_ipv4(r.hub->to_hub[0]);
    REQUIRE(ip);
    CHECK(ip->checksum_ok);
    CHECK(ip->proto == ip_proto_icmp);
    CHECK(ip->src == r.topo->overlay_of(1));
    CHECK(ip->dst == r.topo->hub_overlay());
    REQUIRE(ip->payload.size() == 12);
    CHECK(ip->payload[0] == 0);  // echo reply
    CHECK(wire::inet_checksum(ip->payload) == 0);
    CHECK(ip->payload[4] == 0x12);  // identifier, sequence and data as asked
    CHECK(ip->payload[7] == 1);
    CHECK(ip->payload[8] == 'p');
    CHECK(r.eng->data_at(1).echo_replies == 1);
    echo(true);
    CHECK(r.hub->to_hub.size() == 1);
    CHECK(r.eng->data_at(1).echo_replies == 1);
    CHECK(r.eng->data_at(1).corrupt == 1);
    CHECK(r.eng->report_json(r.now).find("\"echo_replies\":1") != std::string::npos);
}

TEST_CASE("--data-to: data goes to an address behind the hub; nothing counts as lost",
          "[spokesim]") {
    rig r({"--vdev", "test", "--spokes", "2", "--hub-mac", "02:bb:00:00:00:01", "--gre-key", "7",
           "--rate", "100", "--duration", "0.5", "--data-to", "192.168.1.2", "--drain", "0.1"});
    r.run_for(3000 * ms);
    REQUIRE(r.eng->done());
    const auto t = r.eng->sum(r.now);
    CHECK(t.sent >= 40);
    CHECK(r.hub->elsewhere.size() == t.sent);
    CHECK(r.hub->data_forwarded == 0);
    CHECK(t.lost == 0);
    for (const buffer& b : r.hub->elsewhere) {
        auto ip = parse_ipv4(b);
        REQUIRE(ip);
        CHECK(ip->dst == 0xc0a80102u);
        CHECK(r.topo->local_by_overlay(ip->src));
        auto udp = parse_udp(ip->payload);
        REQUIRE(udp);
        CHECK(udp->dst_port == 9);
    }
}

TEST_CASE("--data-to-hub: data goes to the hub's overlay address and port, after --data-after",
          "[spokesim]") {
    rig r({"--vdev", "test", "--spokes", "2", "--hub-mac", "02:bb:00:00:00:01", "--gre-key", "7",
           "--rate", "100", "--duration", "0.5", "--data-after", "0.3", "--data-to-hub", "7000",
           "--drain", "0.1"});
    r.run_for(200 * ms);
    REQUIRE(r.eng->sum(r.now).registered == 2);
    CHECK(r.hub->to_hub.empty());  // still quiet
    r.run_for(3000 * ms);
    REQUIRE(r.eng->done());
    CHECK(r.hub->to_hub.size() >= 40);
    CHECK(r.hub->data_forwarded == 0);
    for (const buffer& b : r.hub->to_hub) {
        auto ip = parse_ipv4(b);
        REQUIRE(ip);
        CHECK(ip->proto == ip_proto_udp);
        CHECK(r.topo->local_by_overlay(ip->src));
        auto udp = parse_udp(ip->payload);
        REQUIRE(udp);
        CHECK(udp->dst_port == 7000);
    }
}
