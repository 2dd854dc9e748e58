// The IKEv1 initiator (control/ike/v1_initiator.cpp) against the IKEv1 responder, two engines
// back to back on a fake clock: Main Mode + Quick Mode with PSK, PFS groups 2 and 14, the keys
// both ends install mirror each other, a wrong key refused, lost answers retransmitted, DPD
// answered and a silent peer declared dead (SA and pairs gone, peer_down), Phase 2 rekeyed;
// Main Mode with RSA signatures (the IKEv2 tests' PKI): chains, identities, refusals.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "control/ike/isakmp.hpp"
#include "control/ike/v1_dispatch.hpp"
#include "control/ike/v1_engine.hpp"
#include "tests/unit/ike_engine_pair.hpp"

using namespace dmvpn;
using namespace dmvpn::ike;
using std::chrono::seconds;

namespace {

constexpr uint32_t hub = 0xc6336401;    // 198.51.100.1
constexpr uint32_t spoke = 0xc6336402;  // 198.51.100.2

config::ike_settings settings(const std::string& key) {
    config::ike_settings s;
    s.version = 1;
    s.psks.push_back({"", bytes(key.begin(), key.end())});
    using pol = config::ike_settings::isakmp_policy;
    s.isakmp_policies = {pol{7, 128, 2, 14, 1, 86400}};
    s.esp_proposals = {{12, 128, 2, false}};
    s.child_lifetime_s = 3600;
    s.dpd_interval_s = 10;
    s.dpd_retries = 3;
    return s;
}

struct side {
    std::unique_ptr<v1::engine> e;
    uint32_t addr = 0;
    std::vector<child_sa> installs;
    std::vector<remove_child> removes;
    std::vector<peer_up> ups;
    std::vector<peer_down> downs;

    side(uint32_t a, const config::ike_settings& s) : addr(a) {
        config::ipsec_profile p;
        p.name = "dmvpn";
        p.ike = s;
        auto r = v1::engine::create({p}, {{0, a, "dmvpn"}});
        REQUIRE(r);
        e = std::move(r.value());
    }
    // The hub's part: every install acknowledged at once.
    std::vector<datagram> take(outputs& o, time_point now) {
        for (size_t k = 0; k < o.requests.size(); ++k) {
            auto& r = o.requests[k];
            if (auto* i = std::get_if<install_child>(&r)) {
                installs.push_back(i->sa);
                const uint64_t id = i->sa.id;
                e->installed(id, now, o);
            } else if (auto* rm = std::get_if<remove_child>(&r)) {
                removes.push_back(*rm);
            } else if (auto* u = std::get_if<peer_up>(&r)) {
                ups.push_back(*u);
            } else if (auto* d = std::get_if<peer_down>(&r)) {
                downs.push_back(*d);
            }
        }
        o.requests.clear();
        std::vector<datagram> sent = std::move(o.send);
        o.send.clear();
        return sent;
    }
};

struct pair {
    side i, r;
    time_point now = time_point{} + seconds(1000);
    // Datagrams dropped on the way (counted per direction, the first `drop_*` ones).
    int drop_to_r = 0, drop_to_i = 0;
    bool r_silent = false;
    uint64_t to_r = 0, to_i = 0;
    // A NAT in front of the initiator when set: its datagrams leave from this address and their
    // port + 20000, the answers come back to them. Every datagram the initiator sent, as sent.
    uint32_t nat_public = 0;
    std::vector<datagram> sent_by_i;

    explicit pair(const config::ike_settings& si, const config::ike_settings& sr)
        : i(spoke, si), r(hub, sr) {}

    void deliver(std::vector<datagram> q, bool from_i) {
        while (!q.empty()) {
            std::vector<datagram> next;
            for (auto& d : q) {
                side& dst = (d.dst == hub) ? r : i;
                REQUIRE((d.dst == hub || d.dst == spoke || (nat_public && d.dst == nat_public)));
                if (&dst == &r && nat_public != 0) {
                    sent_by_i.push_back(d);
                    d.src = nat_public;
                    d.sport = uint16_t(d.sport + 20000);
                } else if (&dst == &i && nat_public != 0) {
                    d.dst = spoke;
                    d.dport = uint16_t(d.dport - 20000);
                }
                if (&dst == &r) {
                    ++to_r;
                    if (r_silent || drop_to_r > 0) {
                        drop_to_r -= drop_to_r > 0 ? 1 : 0;
                        continue;
                    }
                } else {
                    ++to_i;
                    if (drop_to_i > 0) {
                        --drop_to_i;
                        continue;
                    }
                }
                outputs o;
                d.tunnel = 0;
                dst.e->on_datagram(d, now, o);
                for (auto& x : dst.take(o, now)) {
                    next.push_back(std::move(x));
                }
            }
            q = std::move(next);
        }
        (void)from_i;
    }
    void start() {
        outputs o;
        i.e->initiate(0, hub, now, o);
        deliver(i.take(o, now), true);
    }
    // Advance the clock by `s` seconds, one tick a second on both ends.
    void run(int s) {
        for (int k = 0; k < s; ++k) {
            now += seconds(1);
            for (side* x : {&i, &r}) {
                outputs o;
                x->e->tick(now, o);
                deliver(x->take(o, now), x == &i);
            }
        }
    }
};

void require_mirror(const child_sa& a, const child_sa& b) {
    REQUIRE(a.inbound.spi == b.outbound.spi);
    REQUIRE(a.outbound.spi == b.inbound.spi);
    REQUIRE(a.encr == b.encr);
    REQUIRE(a.integ == b.integ);
    REQUIRE(a.inbound.cipher_key.size() > 0);
    CHECK((bytes(a.inbound.cipher_key.data(),
                 a.inbound.cipher_key.data() + a.inbound.cipher_key.size()) ==
           bytes(b.outbound.cipher_key.data(),
                 b.outbound.cipher_key.data() + b.outbound.cipher_key.size())));
    CHECK((bytes(a.inbound.integ_key.data(),
                 a.inbound.integ_key.data() + a.inbound.integ_key.size()) ==
           bytes(b.outbound.integ_key.data(),
                 b.outbound.integ_key.data() + b.outbound.integ_key.size())));
    CHECK((bytes(a.outbound.cipher_key.data(),
                 a.outbound.cipher_key.data() + a.outbound.cipher_key.size()) ==
           bytes(b.inbound.cipher_key.data(),
                 b.inbound.cipher_key.data() + b.inbound.cipher_key.size())));
    CHECK((bytes(a.outbound.integ_key.data(),
                 a.outbound.integ_key.data() + a.outbound.integ_key.size()) ==
           bytes(b.inbound.integ_key.data(),
                 b.inbound.integ_key.data() + b.inbound.integ_key.size())));
    CHECK((bytes(a.inbound.cipher_key.data(),
                 a.inbound.cipher_key.data() + a.inbound.cipher_key.size()) !=
           bytes(a.outbound.cipher_key.data(),
                 a.outbound.cipher_key.data() + a.outbound.cipher_key.size())));
}

}  // namespace

namespace {

// Both ends initiate at the same moment: their MM1s, the initiator end's first.
std::vector<datagram> both_initiate(pair& p) {
    outputs oi, orr;
    p.i.e->initiate(0, hub, p.now, oi);
    p.r.e->initiate(0, spoke, p.now, orr);
    std::vector<datagram> both = p.i.take(oi, p.now);
    for (auto& d : p.r.take(orr, p.now)) {
        both.push_back(std::move(d));
    }
    return both;
}

size_t isakmp_count(const v1::engine& e) {
    const std::string j = e.show("isakmp sa", true);
    size_t n = 0;
    for (size_t at = j.find("QM_IDLE"); at != std::string::npos; at = j.find("QM_IDLE", at + 1)) {
        ++n;
    }
    return n;
}

}  // namespace

TEST_CASE("v1 initiator: Main Mode + Quick Mode with the responder, PFS groups", "[ike_v1_pair]") {
    auto si = settings("k3y");
    auto sr = settings("k3y");
    uint16_t pfs = GENERATE(uint16_t(0), uint16_t(2), uint16_t(14));
    bool legacy = GENERATE(false, true);
    using pol = config::ike_settings::isakmp_policy;
    if (legacy) {
        // The seeds': 3DES/MD5/group 2 and esp-3des esp-md5-hmac.
        si.isakmp_policies = {pol{5, 0, 1, 2, 1, 86400}};
        si.esp_proposals = {{3, 0, 1, false}};
        sr.isakmp_policies.push_back(pol{5, 0, 1, 2, 1, 86400});
        sr.esp_proposals.push_back({3, 0, 1, false});
    }
    if (pfs != 0) {
        si.pfs_group = pfs;
        sr.pfs_group = pfs;
    }
    pair p(si, sr);
    p.start();
    REQUIRE(p.i.ups.size() == 1);
    REQUIRE(p.r.ups.size() == 1);
    CHECK(p.i.ups[0].peer == hub);
    CHECK(p.r.ups[0].peer == spoke);
    REQUIRE(p.i.installs.size() == 1);
    REQUIRE(p.r.installs.size() == 1);
    require_mirror(p.i.installs[0], p.r.installs[0]);
    CHECK(p.i.installs[0].encr == (legacy ? 3 : 12));
    CHECK(p.i.installs[0].local == spoke);
    CHECK(p.i.installs[0].peer == hub);
    CHECK(p.i.e->counters().phase1_up == 1);
    CHECK(p.i.e->counters().quick_modes == 1);
    CHECK(p.r.e->counters().quick_modes == 1);  // QM3's HASH(3) checked out
    CHECK(p.i.e->counters().retransmits == 0);
    // No NAT between (NAT-D says so): transport mode on UDP 500, no ESP in UDP.
    CHECK_FALSE(p.i.installs[0].udp_encap);
    CHECK_FALSE(p.r.installs[0].udp_encap);
    CHECK_THAT(p.i.e->show("isakmp sa", true),
               Catch::Contains(R"("nat_t": false, "nat_local": false, "nat_remote": false, )"
                               R"("local_port": 500, "remote_port": 500)"));
    // show on the initiator: QM_IDLE towards the hub.
    CHECK(p.i.e->show("isakmp sa", false).find("QM_IDLE") != std::string::npos);
    // A second initiate while the SA is up does nothing.
    const uint64_t tx = p.i.e->counters().tx;
    p.start();
    CHECK(p.i.e->counters().tx == tx);
}

TEST_CASE("v1 initiator behind a NAT (RFC 3947): NAT-D, UDP 4500 from MM5, ESP in UDP, keepalives",
          "[ike_v1_pair]") {
    auto s = settings("k3y");
    s.nat_keepalive_s = 20;
    pair p(s, s);
    p.nat_public = 0xcb007109;  // 203.0.113.9
    p.start();
    REQUIRE(p.i.ups.size() == 1);
    REQUIRE(p.r.ups.size() == 1);
    CHECK(p.r.ups[0].peer == p.nat_public);
    // MM1 (with RFC 3947's vendor ID) and MM3 (with NAT-D) from 500; MM5, QM1 and QM3 from 4500.
    REQUIRE(p.sent_by_i.size() == 5);
    auto m1 = v1::parse(p.sent_by_i[0].payload);
    REQUIRE(m1);
    const bytes rfc3947 = {0x4a, 0x13, 0x1c, 0x81, 0x07, 0x03, 0x58, 0x45,
                           0x5c, 0x57, 0x28, 0xf2, 0x0e, 0x95, 0x45, 0x2f};  // MD5("RFC 3947")
    CHECK(std::any_of(m1->payloads.begin(), m1->payloads.end(), [&](const v1::payload& x) {
        const auto* v = std::get_if<v1::vendor_payload>(&x);
        return v != nullptr && v->id == rfc3947;
    }));
    auto m3 = v1::parse(p.sent_by_i[1].payload);
    REQUIRE(m3);
    CHECK(std::count_if(m3->payloads.begin(), m3->payloads.end(), [](const v1::payload& x) {
              return std::holds_alternative<v1::nat_d_payload>(x);
          }) == 2);
    for (size_t k = 0; k < p.sent_by_i.size(); ++k) {
        CHECK(p.sent_by_i[k].sport == (k < 2 ? 500 : 4500));
        CHECK(p.sent_by_i[k].dport == (k < 2 ? 500 : 4500));
    }
    // The NAT in front of the initiator found by both; the responder answers the NAT's port.
    CHECK_THAT(p.i.e->show("isakmp sa", true),
               Catch::Contains(R"("nat_t": true, "nat_local": true, "nat_remote": false, )"
                               R"("local_port": 4500, "remote_port": 4500)"));
    CHECK_THAT(p.r.e->show("isakmp sa", true),
               Catch::Contains(R"("nat_t": true, "nat_local": false, "nat_remote": true, )"
                               R"("local_port": 4500, "remote_port": 24500)"));
    // Quick Mode chose UDP-Transport: both ends' pairs are ESP in UDP between those ports.
    REQUIRE(p.i.installs.size() == 1);
    REQUIRE(p.r.installs.size() == 1);
    require_mirror(p.i.installs[0], p.r.installs[0]);
    CHECK(p.i.installs[0].udp_encap);
    CHECK(p.i.installs[0].local_port == 4500);
    CHECK(p.i.installs[0].peer_port == 4500);
    CHECK(p.r.installs[0].udp_encap);
    CHECK(p.r.installs[0].peer == p.nat_public);
    CHECK(p.r.installs[0].local_port == 4500);
    CHECK(p.r.installs[0].peer_port == 24500);
    // Behind the NAT, the initiator keeps its mapping open: 0xff every 20 s from 4500 to 4500.
    p.sent_by_i.clear();
    p.run(45);
    size_t keepalives = 0;
    for (const datagram& d : p.sent_by_i) {
        CHECK(d.sport == 4500);
        CHECK(d.dport == 4500);
        keepalives += d.payload == bytes{0xff} ? 1 : 0;
    }
    CHECK(keepalives == 2);
    CHECK(p.i.e->counters().nat_keepalives_tx == 2);
    CHECK(p.i.e->counters().phase1_up == 1);  // DPD and the keepalives kept it up
    CHECK(p.i.downs.empty());
}

TEST_CASE("v1 initiator: a PFS group the responder refuses gets no pair", "[ike_v1_pair]") {
    auto si = settings("k3y");
    auto sr = settings("k3y");
    si.pfs_group = 2;
    sr.pfs_group = 14;
    pair p(si, sr);
    p.start();
    CHECK(p.i.ups.size() == 1);
    CHECK(p.i.installs.empty());
    CHECK(p.r.installs.empty());
    CHECK(p.r.e->counters().no_proposal == 1);
}

TEST_CASE("v1 initiator: a wrong pre-shared key is refused", "[ike_v1_pair]") {
    pair p(settings("right"), settings("wrong"));
    p.start();
    p.run(130);
    CHECK(p.i.ups.empty());
    CHECK(p.r.ups.empty());
    CHECK(p.i.installs.empty());
    CHECK(p.r.installs.empty());
    CHECK(p.r.e->counters().auth_failed == 1);
    CHECK(p.i.e->counters().phase1_failed == 1);
    // Nothing is left under way on either side.
    CHECK(p.i.e->show("isakmp sa", false).find("MM_") == std::string::npos);
    CHECK(p.r.e->show("isakmp sa", false).find("MM_") == std::string::npos);
}

TEST_CASE("v1 initiator: lost answers are retransmitted with back-off", "[ike_v1_pair]") {
    pair p(settings("k3y"), settings("k3y"));
    SECTION("MM2 lost twice") {
        p.drop_to_i = 2;
        p.start();
        CHECK(p.i.ups.empty());
        p.run(1);
        CHECK(p.i.ups.empty());  // the first retry after 2 s
        p.run(1);
        CHECK(p.i.e->counters().retransmits == 1);
        CHECK(p.i.ups.empty());  // its answer lost too; the next after 4 s more
        p.run(3);
        CHECK(p.i.ups.empty());
        p.run(1);
        CHECK(p.i.e->counters().retransmits == 2);
        REQUIRE(p.i.ups.size() == 1);
        CHECK(p.r.e->counters().duplicates_answered == 2);
    }
    SECTION("MM1 lost") {
        p.drop_to_r = 1;
        p.start();
        p.run(2);
        REQUIRE(p.i.ups.size() == 1);
        CHECK(p.i.installs.size() == 1);
    }
    SECTION("QM2 lost: QM1 again, answered from the cache") {
        p.drop_to_i = 0;
        // Let Main Mode through (3 answers), then drop QM2.
        outputs o;
        p.i.e->initiate(0, hub, p.now, o);
        auto q = p.i.take(o, p.now);
        for (int k = 0; k < 3; ++k) {
            REQUIRE(q.size() == 1);
            outputs a;
            p.r.e->on_datagram(q[0], p.now, a);
            auto back = p.r.take(a, p.now);
            REQUIRE(back.size() == 1);
            outputs b;
            p.i.e->on_datagram(back[0], p.now, b);
            q = p.i.take(b, p.now);
        }
        REQUIRE(q.size() == 1);  // QM1
        outputs a;
        p.r.e->on_datagram(q[0], p.now, a);
        CHECK(p.r.take(a, p.now).size() == 1);  // QM2, lost
        CHECK(p.i.installs.empty());
        p.run(2);
        CHECK(p.i.e->counters().retransmits == 1);
        REQUIRE(p.i.installs.size() == 1);
        REQUIRE(p.r.installs.size() == 1);
        require_mirror(p.i.installs[0], p.r.installs[0]);
    }
    SECTION("no answer at all: abandoned after 5 retries") {
        p.r_silent = true;
        p.start();
        p.run(63);  // re-sent after 2, 4, 8, 16, 32 s
        CHECK(p.i.e->counters().retransmits == 5);
        CHECK(p.i.e->counters().phase1_failed == 0);
        p.run(64);
        CHECK(p.i.e->counters().phase1_failed == 1);
        CHECK(p.i.e->show("isakmp sa", false).find("MM_") == std::string::npos);
        CHECK(p.to_r == 6);
        // It may be initiated again.
        p.r_silent = false;
        p.start();
        CHECK(p.i.ups.size() == 1);
    }
}

TEST_CASE("v1 initiator: DPD answered, and a dead peer torn down", "[ike_v1_pair]") {
    pair p(settings("k3y"), settings("k3y"));
    p.start();
    REQUIRE(p.i.installs.size() == 1);
    p.run(25);
    // Both ends ask every 10 s of silence; each R-U-THERE is acknowledged.
    CHECK(p.i.e->counters().dpd_sent >= 2);
    CHECK(p.i.e->counters().dpd_acked == p.i.e->counters().dpd_sent);
    CHECK(p.r.e->counters().dpd_answered >= 2);
    CHECK(p.i.downs.empty());
    CHECK(p.r.downs.empty());
    // The responder dies: R-U-THERE at 10 s, retried after 2, 4, 8 s, dead 16 s later.
    p.r_silent = true;
    const uint64_t sent = p.i.e->counters().dpd_sent;
    p.run(10 + 2 + 4 + 8);
    CHECK(p.i.downs.empty());
    CHECK(p.i.e->counters().dpd_sent == sent + 4);
    p.run(20);
    REQUIRE(p.i.downs.size() == 1);
    CHECK(p.i.downs[0].peer == hub);
    CHECK(p.i.downs[0].why == "dead peer detected");
    REQUIRE(p.i.removes.size() == 1);
    CHECK(p.i.removes[0].id == p.i.installs[0].id);
    CHECK(p.i.e->counters().dead_peers == 1);
    CHECK(p.i.e->show("isakmp sa", false).find("QM_IDLE") == std::string::npos);
    // The hub side (responder) likewise declares the silent initiator dead.
    p.r_silent = false;
    pair q(settings("k3y"), settings("k3y"));
    q.start();
    REQUIRE(q.r.ups.size() == 1);
    q.drop_to_i = 1000;
    q.run(90);  // its own R-U-THEREs reach the hub, which starts asking when they stop
    REQUIRE(q.r.downs.size() == 1);
    CHECK(q.r.downs[0].peer == spoke);
    CHECK(q.r.removes.size() == 1);
}

TEST_CASE("v1 initiator: Phase 2 rekeyed before its lifetime ends", "[ike_v1_pair]") {
    auto si = settings("k3y");
    auto sr = settings("k3y");
    si.child_lifetime_s = 120;
    sr.child_lifetime_s = 120;
    si.pfs_group = 14;
    sr.pfs_group = 14;
    pair p(si, sr);
    p.start();
    REQUIRE(p.i.installs.size() == 1);
    p.run(107);
    CHECK(p.i.installs.size() == 1);
    p.run(2);
    REQUIRE(p.i.installs.size() == 2);
    REQUIRE(p.r.installs.size() == 2);
    CHECK(p.i.installs[1].replaces == p.i.installs[0].id);
    require_mirror(p.i.installs[1], p.r.installs[1]);
    // The old pair goes at its lifetime; the new one stays.
    p.run(15);
    CHECK(p.i.removes.size() == 1);
    CHECK(p.i.downs.empty());
}

TEST_CASE(
    "v1 initiator: two tunnels of one engine key with each other (the emulator's "
    "spoke-to-spoke), dual_handler initiates version-1 profiles",
    "[ike_v1_pair]") {
    constexpr uint32_t a = 0x64400002, b = 0x64400003;
    config::ipsec_profile p;
    p.name = "dmvpn";
    p.ike = settings("k3y");
    auto h = dual_handler::create({p}, {{0, a, "dmvpn"}, {1, b, "dmvpn"}});
    REQUIRE(h);
    REQUIRE((*h)->v1() != nullptr);
    CHECK((*h)->v2() == nullptr);
    time_point now = time_point{} + seconds(5);
    std::vector<child_sa> installs;
    size_t ups = 0;
    outputs o;
    (*h)->initiate(0, b, now, o);
    for (int rounds = 0; rounds < 20 && (!o.send.empty() || !o.requests.empty()); ++rounds) {
        std::vector<datagram> q = std::move(o.send);
        std::vector<request> rq = std::move(o.requests);
        o = outputs{};
        for (auto& r : rq) {
            if (auto* i = std::get_if<install_child>(&r)) {
                installs.push_back(i->sa);
                (*h)->installed(i->sa.id, now, o);
            } else if (std::holds_alternative<peer_up>(r)) {
                ++ups;
            }
        }
        for (auto& d : q) {
            d.tunnel = d.dst == a ? 0 : 1;
            (*h)->on_datagram(d, now, o);
        }
    }
    CHECK(ups == 2);
    REQUIRE(installs.size() == 2);
    const child_sa& x = installs[0].local == a ? installs[0] : installs[1];
    const child_sa& y = installs[0].local == a ? installs[1] : installs[0];
    CHECK(x.local == a);
    CHECK(x.peer == b);
    CHECK(y.local == b);
    CHECK(y.peer == a);
    require_mirror(x, y);
    CHECK((*h)->refused() == 0);
}

TEST_CASE("v1 initiator: refusals and strangers", "[ike_v1_pair]") {
    auto si = settings("k3y");
    using pol = config::ike_settings::isakmp_policy;
    si.isakmp_policies = {pol{5, 0, 1, 2, 1, 86400}};  // 3DES/MD5/group 2, which the hub lacks
    pair p(si, settings("k3y"));
    p.start();
    // NO-PROPOSAL-CHOSEN (unprotected) ends our Main Mode at once: nothing retransmitted.
    CHECK(p.r.e->counters().no_proposal == 1);
    CHECK(p.i.e->counters().no_proposal == 1);
    CHECK(p.i.e->counters().phase1_failed == 1);
    p.run(10);
    CHECK(p.i.e->counters().retransmits == 0);
    CHECK(p.i.ups.empty());

    // An answer from another address, or garbage with our cookie, changes nothing.
    pair q(settings("k3y"), settings("k3y"));
    outputs o;
    q.i.e->initiate(0, hub, q.now, o);
    auto mm1 = q.i.take(o, q.now);
    REQUIRE(mm1.size() == 1);
    outputs a;
    q.r.e->on_datagram(mm1[0], q.now, a);
    auto mm2 = q.r.take(a, q.now);
    REQUIRE(mm2.size() == 1);
    datagram forged = mm2[0];
    forged.src = hub + 7;
    outputs b;
    q.i.e->on_datagram(forged, q.now, b);
    CHECK(q.i.take(b, q.now).empty());
    datagram cut = mm2[0];
    cut.payload.resize(cut.payload.size() - 9);
    q.i.e->on_datagram(cut, q.now, b);
    CHECK(q.i.take(b, q.now).empty());
    // The real MM2 still goes on to MM3.
    q.i.e->on_datagram(mm2[0], q.now, b);
    CHECK(q.i.take(b, q.now).size() == 1);
}

TEST_CASE("v1: two hubs initiating to each other at once: the redundant ISAKMP SA goes on both",
          "[ike_v1_pair]") {
    // Random nonces: whichever end's ISAKMP SA had the lower nonce goes, so both cases come up.
    uint64_t i_deleted = 0, r_deleted = 0;
    for (int run = 0; run < 12; ++run) {
        pair p(settings("k3y"), settings("k3y"));
        p.deliver(both_initiate(p), true);
        // Neither claimed INITIAL-CONTACT (each knew of the other's exchange): both Main Modes
        // and both Quick Modes completed (two peer_ups, two pairs each). Then the end that
        // initiated the ISAKMP SA with the lower nonce deleted it and its pair (ESP DELETE,
        // ISAKMP DELETE); the other end agreed, and neither lost the peer (the SA left is the
        // heir, no peer_down).
        CHECK(p.i.ups.size() == 2);
        CHECK(p.r.ups.size() == 2);
        REQUIRE(p.i.installs.size() == 2);
        REQUIRE(p.r.installs.size() == 2);
        const uint64_t di = p.i.e->counters().duplicates_deleted;
        const uint64_t dr = p.r.e->counters().duplicates_deleted;
        CHECK(di + dr == 1);
        i_deleted += di;
        r_deleted += dr;
        CHECK(isakmp_count(*p.i.e) == 1);
        CHECK(isakmp_count(*p.r.e) == 1);
        // The same pair went on both ends; the survivors mirror each other.
        REQUIRE(p.i.removes.size() == 1);
        REQUIRE(p.r.removes.size() == 1);
        auto kept = [](const side& s) { return s.installs[0].id == s.removes[0].id ? 1u : 0u; };
        require_mirror(p.i.installs[kept(p.i)], p.r.installs[kept(p.r)]);
        CHECK(p.i.installs[1 - kept(p.i)].inbound.spi == p.r.installs[1 - kept(p.r)].outbound.spi);
        CHECK(p.i.downs.empty());
        CHECK(p.r.downs.empty());
        if (run == 0) {
            // DPD over a minute finds both ends alive on the SA left; asking again is a no-op.
            p.run(60);
            CHECK(p.i.downs.empty());
            CHECK(p.r.downs.empty());
            CHECK(p.i.e->counters().dead_peers == 0);
            CHECK(p.r.e->counters().dead_peers == 0);
            CHECK(isakmp_count(*p.i.e) == 1);
            CHECK(isakmp_count(*p.r.e) == 1);
            outputs again;
            p.i.e->initiate(0, hub, p.now, again);
            CHECK(again.send.empty());
        }
    }
    // Each end was the one to delete at least once in 12 runs (a 2 in 4,096 chance otherwise).
    CHECK(i_deleted + r_deleted == 12);
    CHECK(i_deleted > 0);
    CHECK(r_deleted > 0);
}

TEST_CASE("v1: the peer keys us while our MM1 is unanswered: ours is abandoned", "[ike_v1_pair]") {
    // The initiator end stands behind a NAT: the responder end's own MM1 to it is lost, the
    // initiator's Main Mode reaches it.
    pair p(settings("k3y"), settings("k3y"));
    p.drop_to_i = 1;  // the responder end's MM1 (delivered after the initiator's)
    p.deliver(both_initiate(p), true);
    CHECK(p.i.ups.size() == 1);
    CHECK(p.r.ups.size() == 1);
    CHECK(p.r.e->counters().initiations_abandoned == 1);
    CHECK(p.i.e->counters().initiations_abandoned == 0);
    CHECK(isakmp_count(*p.r.e) == 1);
    CHECK(p.r.e->show("isakmp sa", true).find("NEGOTIATING") == std::string::npos);
    // Not retransmitted for the next minute, and nothing went down.
    p.run(70);
    CHECK(p.r.e->counters().retransmits == 0);
    CHECK(p.r.e->counters().phase1_failed == 0);
    CHECK(p.i.downs.empty());
    CHECK(p.r.downs.empty());
    CHECK(isakmp_count(*p.r.e) == 1);
    CHECK(p.r.e->index_errors().empty());

    // The same without INITIAL-CONTACT: the responder end's MM1 reached the initiator end this
    // time (which answered, and holds that half-open SA, so its own MM5 claims no initial
    // contact), but the MM2 was lost. The peer's SA coming up abandons ours all the same.
    pair q(settings("k3y"), settings("k3y"));
    outputs o1, o2;
    q.i.e->initiate(0, hub, q.now, o1);
    q.r.e->initiate(0, spoke, q.now, o2);
    std::vector<datagram> mm1_r = q.r.take(o2, q.now);
    REQUIRE(mm1_r.size() == 1);
    mm1_r[0].tunnel = 0;
    outputs lost;
    q.i.e->on_datagram(mm1_r[0], q.now, lost);
    CHECK(q.i.take(lost, q.now).size() == 1);  // its MM2, never delivered
    q.deliver(q.i.take(o1, q.now), true);
    CHECK(q.r.ups.size() == 1);
    CHECK(q.r.e->counters().initiations_abandoned == 1);
    CHECK(isakmp_count(*q.r.e) == 1);
    q.run(70);
    CHECK(q.r.e->counters().retransmits == 0);
    CHECK(q.r.downs.empty());
    CHECK(q.i.downs.empty());
    CHECK(q.r.e->index_errors().empty());
    CHECK(q.i.e->index_errors().empty());
}

// ---- RSA signatures (RFC 2409 section 5.1): the test PKI of the IKEv2 tests ----

namespace {

config::ike_settings cert_settings_v1(const std::string& leaf, const std::string& ca = "ca") {
    auto s = settings("unused");
    s.psks.clear();
    s.auth = config::ike_auth::certificate;
    for (auto& pol : s.isakmp_policies) {
        pol.authentication = 3;  // RSA signatures
    }
    const std::string& dir = dmvpn::ike::testing::pki();
    s.certificate = dir + "/" + leaf + ".pem";
    s.private_key = dir + "/" + leaf + ".key";
    s.ca = {dir + "/" + ca + ".pem"};
    return s;
}

}  // namespace

TEST_CASE("v1 RSA signatures: Main Mode with certificates, both roles", "[ike_v1_pair][cert]") {
    auto si = cert_settings_v1("spoke-rsa");
    auto sr = cert_settings_v1("hub-rsa");
    const bool pfs = GENERATE(false, true);
    if (pfs) {
        si.pfs_group = 14;
        sr.pfs_group = 14;
    }
    pair p(si, sr);
    p.start();
    REQUIRE(p.i.ups.size() == 1);
    REQUIRE(p.r.ups.size() == 1);
    // Each side's identity (ID_IPV4_ADDR) checked against the peer's certificate.
    CHECK(p.r.ups[0].identity == "198.51.100.2");
    CHECK(p.i.ups[0].identity == "198.51.100.1");
    REQUIRE(p.i.installs.size() == 1);
    REQUIRE(p.r.installs.size() == 1);
    require_mirror(p.i.installs[0], p.r.installs[0]);
    CHECK(p.r.e->counters().auth_failed == 0);
    CHECK(p.r.e->counters().quick_modes == 1);
    CHECK(p.i.e->counters().retransmits == 0);
    // show crypto isakmp sa detail: Auth rsig on both ends (D: both announced DPD).
    for (auto* e : {p.i.e.get(), p.r.e.get()}) {
        CHECK_THAT(e->show("isakmp sa detail", false),
                   Catch::Contains("ACTIVE aes  sha    rsig 14 24:00:00 D\n"));
        CHECK_THAT(e->show("isakmp sa detail", true), Catch::Contains("\"auth\": \"rsig\""));
    }
}

TEST_CASE("v1 RSA signatures: untrusted chains and identities not in the certificate",
          "[ike_v1_pair][cert]") {
    SECTION("the spoke's certificate is from a CA the hub does not trust") {
        pair p(cert_settings_v1("spoke-rsa"), cert_settings_v1("hub-rsa", "other"));
        p.start();
        CHECK(p.r.ups.empty());
        CHECK(p.r.e->counters().auth_failed == 1);
        // AUTHENTICATION-FAILED (unprotected) ends the spoke's Main Mode.
        CHECK(p.i.ups.empty());
        CHECK(p.i.e->counters().phase1_failed == 1);
    }
    SECTION("the spoke claims an identity its certificate does not carry") {
        auto si = cert_settings_v1("spoke-rsa");
        si.local_id = "spoke9.example.net";
        pair p(si, cert_settings_v1("hub-rsa"));
        p.start();
        CHECK(p.r.ups.empty());
        CHECK(p.r.e->counters().auth_failed == 1);
        CHECK(p.i.ups.empty());
    }
    SECTION("the hub's certificate is from a CA the spoke does not trust") {
        pair p(cert_settings_v1("spoke-rsa", "other"), cert_settings_v1("hub-rsa"));
        p.start();
        CHECK(p.i.ups.empty());
        CHECK(p.i.e->counters().auth_failed == 1);
        CHECK(p.i.installs.empty());
    }
    SECTION("a pre-shared key spoke finds no policy on a certificate hub") {
        pair p(settings("k3y"), cert_settings_v1("hub-rsa"));
        p.start();
        CHECK(p.r.e->counters().no_proposal == 1);
        CHECK(p.r.ups.empty());
    }
}

TEST_CASE("v1 RSA signatures: an ECDSA key or missing files refuse the profile",
          "[ike_v1_pair][cert]") {
    config::ipsec_profile p;
    p.name = "dmvpn";
    p.ike = cert_settings_v1("hub-ec");
    auto r = v1::engine::create({p}, {{0, hub, "dmvpn"}});
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error(), Catch::Contains("RSA keys only"));
    p.ike = cert_settings_v1("hub-rsa");
    p.ike->certificate = "/nonexistent/hub.pem";
    auto missing = v1::engine::create({p}, {{0, hub, "dmvpn"}});
    REQUIRE_FALSE(missing);
    CHECK_THAT(missing.error(), Catch::Contains("/nonexistent/hub.pem"));
}
