// The IKEv1 responder (control/ike/v1_engine.hpp) against a test initiator built from the
// ISAKMP codec and v1_crypto (tests/unit/ike_v1_initiator.hpp): Main Mode + Quick Mode with the
// seeds' proposals and strong ones, PFS groups, the keys both ends derive, refusals (wrong key,
// Aggressive Mode, proxy identities, proposals), bounds, retransmissions, DELETE, DPD, show;
// the v1 key schedule against known answers; the version dispatch (v1_dispatch.hpp).
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <string>
#include <vector>

#include "control/ike/v1_dispatch.hpp"
#include "control/ike/v1_engine.hpp"
#include "tests/unit/ike_v1_initiator.hpp"

using namespace dmvpn;
using namespace dmvpn::ike;
using namespace dmvpn::ike::v1::testing;
using std::chrono::seconds;

namespace {

constexpr uint32_t hub = 0xc6336401;    // 198.51.100.1
constexpr uint32_t spoke = 0xc6336402;  // 198.51.100.2
const std::string wildcard_key = "cisco-wildcard-key";

config::ike_settings v1_settings() {
    config::ike_settings s;
    s.version = 1;
    s.psks.push_back({"", bytes(wildcard_key.begin(), wildcard_key.end())});
    using pol = config::ike_settings::isakmp_policy;
    s.isakmp_policies = {pol{7, 256, 4, 14, 1, 86400}, pol{7, 128, 2, 14, 1, 86400},
                         pol{5, 0, 1, 2, 1, 86400},    pol{7, 128, 2, 2, 1, 86400},
                         pol{7, 128, 2, 5, 1, 86400},  pol{7, 128, 4, 19, 1, 86400},
                         pol{7, 256, 4, 20, 1, 86400}};
    s.esp_proposals = {{12, 128, 2, false}, {12, 256, 12, false}, {3, 0, 1, false}};
    s.child_lifetime_s = 3600;
    s.dpd_interval_s = 0;  // the hub's own R-U-THERE: tests/unit/ike_v1_pair_test.cpp
    return s;
}

struct responder {
    std::unique_ptr<v1::engine> e;
    time_point now = time_point{} + seconds(1000);
    std::vector<child_sa> installs;
    std::vector<remove_child> removes;
    std::vector<peer_up> ups;
    std::vector<peer_down> downs;
    bool auto_install = true;

    explicit responder(const config::ike_settings& s = v1_settings()) {
        config::ipsec_profile p;
        p.name = "dmvpn";
        p.ike = s;
        auto r = v1::engine::create({p}, {{0, hub, "dmvpn"}});
        REQUIRE(r);
        e = std::move(r.value());
    }
    std::vector<datagram> take(outputs& o) {
        std::vector<uint64_t> ids;
        for (auto& r : o.requests) {
            if (auto* i = std::get_if<install_child>(&r)) {
                installs.push_back(i->sa);
                ids.push_back(i->sa.id);
            } else if (auto* rm = std::get_if<remove_child>(&r)) {
                removes.push_back(*rm);
            } else if (auto* u = std::get_if<peer_up>(&r)) {
                ups.push_back(*u);
            } else if (auto* d = std::get_if<peer_down>(&r)) {
                downs.push_back(*d);
            }
        }
        std::vector<datagram> sent = std::move(o.send);
        if (auto_install) {
            for (uint64_t id : ids) {
                outputs a;
                e->installed(id, now, a);
                for (auto& d : a.send) {
                    sent.push_back(std::move(d));
                }
            }
        }
        return sent;
    }
    // The datagrams the engine answers `d` with.
    std::vector<datagram> rx(const datagram& d) {
        outputs o;
        e->on_datagram(d, now, o);
        return take(o);
    }
    datagram one(const datagram& d) {
        auto r = rx(d);
        REQUIRE(r.size() == 1);
        CHECK(r[0].dst == spoke);
        CHECK(r[0].src == hub);
        return r[0];
    }
};

initiator make_initiator(phase1 p1 = {}, phase2 p2 = {}, std::string psk = wildcard_key) {
    initiator i;
    i.local = spoke;
    i.peer = hub;
    i.psk = psk;
    i.p1 = p1;
    i.p2 = p2;
    return i;
}

// Main Mode to the end: true when HASH_R checked out.
bool main_mode(responder& r, initiator& i) {
    auto mm2 = r.one(i.mm1());
    auto mm4 = r.one(i.mm3(mm2));
    auto mm6 = r.rx(i.mm5(mm4));
    return mm6.size() == 1 && i.mm6(mm6[0]);
}

bool quick_mode(responder& r, initiator& i) {
    auto qm2 = r.rx(i.qm1());
    if (qm2.size() != 1 || !i.qm2(qm2[0])) {
        return false;
    }
    CHECK(r.rx(i.qm3()).empty());
    return true;
}

// The hub's pair mirrors the initiator's KEYMAT: inbound is what the spoke sends with.
void require_keys_mirror(const child_sa& h, const initiator& i, size_t ek) {
    CHECK(h.inbound.spi != 0);
    CHECK(h.outbound.spi == i.my_spi);
    CHECK(h.inbound.spi == i.their_spi);
    const auto out = i.km_out.view();
    const auto in = i.km_in.view();
    CHECK(bytes(h.inbound.cipher_key.view().begin(), h.inbound.cipher_key.view().end()) ==
          bytes(out.begin(), out.begin() + long(ek)));
    CHECK(bytes(h.inbound.integ_key.view().begin(), h.inbound.integ_key.view().end()) ==
          bytes(out.begin() + long(ek), out.end()));
    CHECK(bytes(h.outbound.cipher_key.view().begin(), h.outbound.cipher_key.view().end()) ==
          bytes(in.begin(), in.begin() + long(ek)));
    CHECK(bytes(h.outbound.integ_key.view().begin(), h.outbound.integ_key.view().end()) ==
          bytes(in.begin() + long(ek), in.end()));
}

bytes hex(std::string_view s) {
    bytes b;
    for (size_t i = 0; i + 1 < s.size(); i += 2) {
        b.push_back(uint8_t(std::stoi(std::string(s.substr(i, 2)), nullptr, 16)));
    }
    return b;
}

}  // namespace

TEST_CASE("v1 key schedule: SKEYID, SKEYID_d/a/e, the 3DES key of appendix B, IV, KEYMAT") {
    // Known answers from Python's hmac/hashlib (RFC 2409 section 5 and appendix B by hand).
    const std::string psk = "test-psk";
    const bytes ni(16, 1), nr(16, 2), gxy(128, 3), gxi(128, 4), gxr(128, 5);
    auto k =
        v1::crypto::derive_phase1(v1::crypto::hash::sha1, v1::crypto::encr::triple_des, 0,
                                  {reinterpret_cast<const uint8_t*>(psk.data()), psk.size()}, ni,
                                  nr, gxy, 0x1111111111111111, 0x2222222222222222, gxi, gxr);
    auto view = [](const ike::crypto::secret& s) { return bytes(s.data(), s.data() + s.size()); };
    CHECK(view(k.skeyid) == hex("e320ec1f8a5ec38c40c0a893460f6c01d303821a"));
    CHECK(view(k.skeyid_d) == hex("e908d735fdb426a0d4554ca7e1b479a81efc6087"));
    CHECK(view(k.skeyid_a) == hex("bb1ee35c3d7cd8af258bd89302cc9116f9926006"));
    CHECK(view(k.skeyid_e) == hex("1049a05ed5e2ebb1272e969cf7b1ede38d4fa2cd"));
    CHECK(view(k.enc_key) == hex("c99ac0b9cfea752506d2608b5841c4851085eaeca57d2079"));
    CHECK(k.iv == hex("c7d13555e7838730"));
    auto km = v1::crypto::keymat(v1::crypto::hash::sha1, k.skeyid_d.view(), std::nullopt, 3,
                                 0x12345678, ni, nr, 36);
    CHECK(view(km) == hex("358dc77d4e92c6e80bd6d96cd2b76ee519fc67d453ed9b07f72115f8eae46e495e7a"
                          "e8cf"));
}

TEST_CASE("v1 key schedule: strongSwan's own Main Mode (3DES/MD5/MODP-1024) known answers") {
    // Recorded from interop_strongswan_hub_ikev1: the nonces, cookies and KE values from the
    // wire (tcpdump), g^xy and the keys from charon-systemd 5.9.8's log at `ike 4`.
    const std::string psk = "interop-psk-0123456789";
    const bytes ni = hex("ab41966e104d8bd0b6d779af4006534bc50baf30914c6dd9df85f8460abb8e61");
    const bytes nr = hex("099fa462b4a1b6082292caca2c484d33203bf9dc98915fab55b099a968fd5f64");
    const bytes gxi =
        hex("712af4b13d97d126266110953f8bc8e120c7df1fcc3dc432f1a4b7a6f7b2d233d8b27bb946ce3798"
            "a50be216d381b7267279cf4178a813ea2be6c3d45aa1582032d43eb64104828a5344a51c38db7936"
            "0ec4ee76adc75a45d5c595bab450676fe4e0d031f8fd976802e62debefc7a2bcac8345040911b474"
            "51bf11a33e223f93");
    const bytes gxr =
        hex("7d9a586535cf355a9ded748ba9561891977fa048dca3d0319afd220187f95c2f945213f7a37c59e5"
            "f3c6673755326382e70abe0bf714e52d87551336a7bd3348ce6a3ac8675b61fbc406cc50107fe34b"
            "aec12bc927e4543285e504964491a3bec7c503e95e938f7a594b612080bc961ebee5bd8f9c0f5252"
            "91903c78f8942993");
    const bytes gxy =
        hex("e6bcca552224f85c39236e7cf72252aba330184ec86340f2c0207a972e00aaa82311a22fde65e228"
            "bbb41496a4e34339f3af3ca5e0daa3535e4d9b9231cca488cffff2547a83d2ff1c401022a39780c2"
            "1b11d2e05028a85cc52e0dccddef537072e1494f291f08ac51cfc0a1329b709ffd8fee8018f3ec1e"
            "1386ac28a0eee386");
    auto k =
        v1::crypto::derive_phase1(v1::crypto::hash::md5, v1::crypto::encr::triple_des, 0,
                                  {reinterpret_cast<const uint8_t*>(psk.data()), psk.size()}, ni,
                                  nr, gxy, 0x99b763655a3f7932ULL, 0x691f50133f430f50ULL, gxi, gxr);
    auto view = [](const ike::crypto::secret& s) { return bytes(s.data(), s.data() + s.size()); };
    CHECK(view(k.skeyid) == hex("7e6d547e2730f3d5d334d58f560347a2"));
    CHECK(view(k.skeyid_d) == hex("b9816fc0e869c03800af95a621d6c117"));
    CHECK(view(k.skeyid_a) == hex("c520224dc78be4beb8740d90a3659f7f"));
    CHECK(view(k.skeyid_e) == hex("fc06013a7a495069447fbdb8a881f736"));
    CHECK(view(k.enc_key) == hex("8518d882cd52553f103741b4683ff3d3d70ad124341ff910"));
    CHECK(k.iv == hex("532806db08b26417"));
}

TEST_CASE("v1 CBC: 3DES and AES round trip, IV chaining, zero padding") {
    for (auto [e, bits] : {std::pair<uint16_t, uint16_t>{5, 0}, {7, 128}, {7, 256}}) {
        const bytes key(v1::crypto::key_size(e, bits), 0x42);
        bytes iv(v1::crypto::block_size(e), 7), iv2 = iv;
        const bytes plain = {1, 2, 3, 4, 5};
        auto c = v1::crypto::encrypt(e, key, iv, plain);
        REQUIRE(c);
        CHECK(c.value().size() == v1::crypto::block_size(e));
        CHECK(iv == c.value());  // the next IV: the last ciphertext block
        auto p = v1::crypto::decrypt(e, key, iv2, c.value());
        REQUIRE(p);
        CHECK(bytes(p.value().begin(), p.value().begin() + 5) == plain);
        CHECK(iv2 == iv);
        bytes bad(3, 0);
        CHECK(!v1::crypto::decrypt(e, key, iv2, bad));
    }
}

TEST_CASE("v1 seeds: 3DES/MD5/group 2 Main Mode, esp-3des esp-md5-hmac with PFS group 2") {
    responder r;
    auto i = make_initiator({5, 0, 1, 2, 86400}, {v1::esp_transform::triple_des, 0, 1, 2});
    REQUIRE(main_mode(r, i));
    REQUIRE(r.ups.size() == 1);
    CHECK(r.ups[0].peer == spoke);
    CHECK(r.ups[0].identity == "198.51.100.2");
    REQUIRE(quick_mode(r, i));
    REQUIRE(r.installs.size() == 1);
    const child_sa& h = r.installs[0];
    CHECK(h.encr == 3);
    CHECK(h.integ == integ_id::hmac_md5_96);
    CHECK(h.local == hub);
    CHECK(h.peer == spoke);
    CHECK(!h.replaces);
    require_keys_mirror(h, i, 24);
    CHECK(r.e->counters().phase1_up == 1);
    CHECK(r.e->counters().quick_modes == 1);
    const std::string t = r.e->show("isakmp sa", false);
    CHECK_THAT(t, Catch::Contains("dst             src             state          conn-id status"));
    CHECK_THAT(t, Catch::Contains("198.51.100.1    198.51.100.2    QM_IDLE"));
    CHECK_THAT(t, Catch::Contains("ACTIVE"));
    CHECK_THAT(r.e->show("isakmp sa", true), Catch::Contains("\"state\": \"QM_IDLE\""));
    // IOS's detail layout: the authentication method, the transform and the lifetime left.
    const std::string d = r.e->show("isakmp sa detail", false);
    CHECK_THAT(d, Catch::Contains("psk - Preshared key, rsig - RSA signature"));
    CHECK_THAT(d, Catch::Contains("C-id  Local           Remote          I-VRF  Status Encr Hash   "
                                  "Auth DH Lifetime Cap."));
    CHECK_THAT(d, Catch::Contains("1     198.51.100.1    198.51.100.2           ACTIVE 3des md5    "
                                  "psk  2  24:00:00"));
    CHECK_THAT(d, Catch::Contains("       Engine-id:Conn-id =  SW:1\n"));
    CHECK_THAT(d, Catch::EndsWith("IPv6 Crypto ISAKMP SA\n"));
    const std::string j = r.e->show("isakmp sa detail", true);
    CHECK(j == r.e->show("isakmp sa", true));
    CHECK_THAT(j, Catch::Contains("\"encr\": \"3DES\", \"keysize\": 192, \"hash\": \"MD5\", "
                                  "\"auth\": \"psk\", \"dh_group\": 2, \"lifetime_s\": 86400, "
                                  "\"remaining_s\": 86400"));
    const std::string ipsec = r.e->show("ipsec sa", false);
    CHECK_THAT(ipsec, Catch::Contains(fmt::format("spi: 0x{:08X}", h.inbound.spi)));
    CHECK_THAT(ipsec, Catch::Contains("esp-3des esp-md5-hmac"));
    // `show crypto session`: an ISAKMP session is IOS's "IKEv1 SA", in the text and the JSON.
    const std::string sess = r.e->show("session", false);
    CHECK_THAT(sess, Catch::Contains("  IKEv1 SA: local 198.51.100.1/500 remote 198.51.100.2/500 "
                                     "Active\n"));
    CHECK_THAT(sess, !Catch::Contains("IKEv2"));
    CHECK_THAT(r.e->show("session", true),
               Catch::Contains(R"("ike_sas":[{"version":1,"local":"198.51.100.1",)"));
    // An hour and a second on (the IPsec SA's 3,600 s gone), the ISAKMP SA's lifetime left counts
    // down.
    {
        outputs o;
        r.e->tick(r.now + seconds(3601), o);
    }
    CHECK_THAT(r.e->show("isakmp sa detail", false), Catch::Contains("psk  2  22:59:59"));
    CHECK_THAT(r.e->show("isakmp sa", true), Catch::Contains("\"remaining_s\": 82799"));
    // No IKEv1 engine: the headers only.
    CHECK_THAT(v1::show_no_isakmp("isakmp sa detail", false),
               Catch::Contains("C-id  Local") && !Catch::Contains("SW:"));
    CHECK(v1::show_no_isakmp("isakmp sa detail", true) == "{\"isakmp_sas\": []}\n");
}

TEST_CASE("v1 seeds: AES/SHA-1 with PFS group 2 and IPsec lifetime 120 s") {
    responder r;
    phase2 p2;
    p2.pfs = 2;
    p2.lifetime_s = 120;
    auto i = make_initiator({7, 128, 2, 2, 86400}, p2);
    REQUIRE(main_mode(r, i));
    REQUIRE(quick_mode(r, i));
    REQUIRE(r.installs.size() == 1);
    CHECK(r.installs[0].encr == 12);
    CHECK(r.installs[0].encr_bits == 128);
    CHECK(r.installs[0].integ == integ_id::hmac_sha1_96);
    CHECK(!i.responder_lifetime);  // 120 s is below ours: accepted as is
    require_keys_mirror(r.installs[0], i, 16);
    // The pair expires at 120 s: DELETE sent, pair removed.
    outputs o;
    r.now += seconds(121);
    r.e->tick(r.now, o);
    auto sent = r.take(o);
    REQUIRE(r.removes.size() == 1);
    REQUIRE(sent.size() == 1);
    auto ps = i.read_informational(sent[0]);
    REQUIRE(ps.has_value());
    const auto* del = std::get_if<v1::delete_payload>(&ps->at(1));
    REQUIRE(del != nullptr);
    CHECK(del->protocol == v1::protocol_id::esp);
    CHECK(rd(del->spis.at(0)) == r.installs[0].inbound.spi);
}

TEST_CASE("v1 strong suites and every PFS group: 14, 19, 20, 5") {
    for (auto [p1, pfs] : {std::pair<phase1, uint16_t>{{7, 256, 4, 14, 86400}, 14},
                           {{7, 128, 4, 19, 86400}, 19},
                           {{7, 256, 4, 20, 86400}, 20},
                           {{7, 128, 2, 5, 86400}, 5}}) {
        responder r;
        phase2 p2;
        p2.key_bits = 256;
        p2.auth = 5;
        p2.pfs = pfs;
        auto i = make_initiator(p1, p2);
        INFO("group " << p1.group << " pfs " << pfs);
        REQUIRE(main_mode(r, i));
        REQUIRE(quick_mode(r, i));
        REQUIRE(r.installs.size() == 1);
        CHECK(r.installs[0].integ == integ_id::hmac_sha2_256_128);
        require_keys_mirror(r.installs[0], i, 32);
    }
}

TEST_CASE("v1 QM2 waits for the hub's install; the responder lifetime notify") {
    responder r;
    r.auto_install = false;
    phase2 p2;
    p2.lifetime_s = 28800;  // above our 3600
    auto i = make_initiator({}, p2);
    REQUIRE(main_mode(r, i));
    CHECK(r.rx(i.qm1()).empty());
    REQUIRE(r.installs.size() == 1);
    CHECK(r.rx(i.qm1()).empty());  // a retransmission: still nothing, nothing new
    CHECK(r.installs.size() == 1);
    outputs o;
    r.e->installed(r.installs[0].id, r.now, o);
    REQUIRE(o.send.size() == 1);
    REQUIRE(i.qm2(o.send[0]));
    REQUIRE(i.responder_lifetime);
    CHECK(*i.responder_lifetime == 3600);
    // Retransmitted QM1 after the answer: the same QM2 again.
    auto again = r.rx(i.qm1_again());
    REQUIRE(again.size() == 1);
    CHECK(again[0].payload == o.send[0].payload);
}

TEST_CASE("v1 refusals: wrong key, Aggressive Mode, proxy identities, proposals") {
    SECTION("wrong pre-shared key: no peer_up, state gone") {
        responder r;
        auto i = make_initiator({}, {}, "not-the-right-key");
        auto mm2 = r.one(i.mm1());
        auto mm4 = r.one(i.mm3(mm2));
        auto mm6 = r.rx(i.mm5(mm4));
        for (const auto& d : mm6) {
            CHECK(!i.mm6(d));
        }
        CHECK(r.ups.empty());
        CHECK(r.e->counters().auth_failed == 1);
        CHECK_THAT(r.e->show("isakmp sa", false), !Catch::Contains("198.51.100.2"));
    }
    SECTION("per-peer key wins over the wildcard") {
        auto s = v1_settings();
        const std::string own = "this-spoke-only-key";
        s.psks.push_back({"198.51.100.2", bytes(own.begin(), own.end())});
        responder r(s);
        auto wrong = make_initiator();
        auto mm2 = r.one(wrong.mm1());
        auto mm4 = r.one(wrong.mm3(mm2));
        CHECK(r.rx(wrong.mm5(mm4)).size() <= 1);
        CHECK(r.ups.empty());
        auto right = make_initiator({}, {}, own);
        right.cky_i = 0x99;
        REQUIRE(main_mode(r, right));
        CHECK(r.ups.size() == 1);
    }
    SECTION("Aggressive Mode: INVALID-EXCHANGE-TYPE, counted, no state") {
        responder r;
        auto i = make_initiator();
        auto ans = r.rx(i.mm1(v1::exchange::aggressive));
        REQUIRE(ans.size() == 1);
        auto m = v1::parse(ans[0].payload);
        REQUIRE(m);
        REQUIRE(m->payloads.size() == 1);
        CHECK(std::get<v1::notification_payload>(m->payloads[0]).type ==
              v1::notify_type::invalid_exchange_type);
        CHECK(r.e->counters().aggressive_refused == 1);
        CHECK_THAT(r.e->show("isakmp sa", true), Catch::Contains("[]"));
    }
    SECTION("no acceptable Phase 1 proposal: NO-PROPOSAL-CHOSEN, no state") {
        responder r;
        auto i = make_initiator({7, 128, 1, 14, 86400});  // AES with MD5: not a policy
        auto ans = r.rx(i.mm1());
        REQUIRE(ans.size() == 1);
        auto m = v1::parse(ans[0].payload);
        REQUIRE(m);
        CHECK(std::get<v1::notification_payload>(m->payloads.at(0)).type ==
              v1::notify_type::no_proposal_chosen);
        CHECK(r.e->counters().no_proposal == 1);
        CHECK_THAT(r.e->show("isakmp sa", true), Catch::Contains("[]"));
    }
    SECTION("proxy identities other than GRE between the NBMA hosts") {
        responder r;
        phase2 p2;
        p2.id_protocol = 0;
        auto i = make_initiator({}, p2);
        REQUIRE(main_mode(r, i));
        auto ans = r.rx(i.qm1());
        CHECK(r.installs.empty());
        REQUIRE(ans.size() == 1);
        auto ps = i.read_informational(ans[0]);
        REQUIRE(ps.has_value());
        CHECK(std::get<v1::notification_payload>(ps->at(1)).type ==
              v1::notify_type::invalid_id_information);
        CHECK(r.e->counters().invalid_id == 1);
    }
    SECTION("tunnel mode and an unlisted transform: NO-PROPOSAL-CHOSEN") {
        for (int k = 0; k < 2; ++k) {
            responder r;
            phase2 p2;
            if (k == 0) {
                p2.mode = v1::encapsulation::tunnel;
            } else {
                p2.auth = 1;  // AES with MD5: not in esp-proposals
            }
            auto i = make_initiator({}, p2);
            REQUIRE(main_mode(r, i));
            auto ans = r.rx(i.qm1());
            CHECK(r.installs.empty());
            REQUIRE(ans.size() == 1);
            auto ps = i.read_informational(ans[0]);
            REQUIRE(ps.has_value());
            CHECK(std::get<v1::notification_payload>(ps->at(1)).type ==
                  v1::notify_type::no_proposal_chosen);
        }
    }
    SECTION("the profile's pfs group must be the one offered") {
        auto s = v1_settings();
        s.pfs_group = 14;
        responder r(s);
        phase2 p2;
        p2.pfs = 2;
        auto i = make_initiator({}, p2);
        REQUIRE(main_mode(r, i));
        r.rx(i.qm1());
        CHECK(r.installs.empty());
        CHECK(r.e->counters().no_proposal == 1);
    }
    SECTION("a forged QM1 (bad HASH(1)) is dropped") {
        responder r;
        auto i = make_initiator();
        REQUIRE(main_mode(r, i));
        auto d = i.qm1();
        d.payload[d.payload.size() - 1] ^= 1;  // the last block: HASH or padding changes
        d.payload[d.payload.size() - 9] ^= 1;
        r.rx(d);
        CHECK(r.installs.empty());
    }
}

TEST_CASE("v1 responder state: none before MM1 is answered, bounded, expires") {
    auto s = v1_settings();
    s.max_half_open = 2;
    responder r(s);
    for (uint64_t k = 1; k <= 3; ++k) {
        auto i = make_initiator();
        i.cky_i = k;
        auto ans = r.rx(i.mm1());
        CHECK(ans.size() == (k <= 2 ? 1u : 0u));
    }
    CHECK(r.e->counters().half_open == 1);
    // A retransmitted MM1 is answered from the cache, creating nothing.
    auto i = make_initiator();
    i.cky_i = 1;
    auto first = r.rx(i.mm1());
    REQUIRE(first.size() == 1);
    CHECK(r.e->counters().duplicates_answered == 1);
    // A malformed first message creates nothing.
    datagram junk = i.mm1();
    junk.payload.resize(40);
    CHECK(r.rx(junk).empty());
    // 30 s later the half-open SAs are gone and new ones are accepted again.
    outputs o;
    r.now += seconds(31);
    r.e->tick(r.now, o);
    CHECK_THAT(r.e->show("isakmp sa", true), Catch::Contains("[]"));
    auto late = make_initiator();
    late.cky_i = 77;
    CHECK(r.rx(late.mm1()).size() == 1);
}

TEST_CASE("v1 retransmitted MM3 and MM5 get the same answers") {
    responder r;
    auto i = make_initiator();
    auto mm2 = r.one(i.mm1());
    auto mm3 = i.mm3(mm2);
    auto mm4 = r.one(mm3);
    CHECK(r.one(mm3).payload == mm4.payload);
    auto mm5 = i.mm5(mm4);
    auto mm6 = r.one(mm5);
    CHECK(r.one(mm5).payload == mm6.payload);
    CHECK(i.mm6(mm6));
    CHECK(r.ups.size() == 1);
}

TEST_CASE("v1 Informational: DPD answered, DELETE of an IPsec SA and of the ISAKMP SA") {
    responder r;
    auto i = make_initiator();
    REQUIRE(main_mode(r, i));
    REQUIRE(quick_mode(r, i));
    // R-U-THERE -> R-U-THERE-ACK with the same sequence number.
    v1::notification_payload dpd;
    dpd.spi = be(i.cky_i, 8);
    auto cr = be(i.cky_r, 8);
    dpd.spi.insert(dpd.spi.end(), cr.begin(), cr.end());
    dpd.type = v1::notify_type::r_u_there;
    dpd.data = {0, 0, 0x12, 0x34};
    auto ack = r.rx(i.informational(dpd, 0x5000));
    REQUIRE(ack.size() == 1);
    auto ps = i.read_informational(ack[0]);
    REQUIRE(ps.has_value());
    const auto& n = std::get<v1::notification_payload>(ps->at(1));
    CHECK(n.type == v1::notify_type::r_u_there_ack);
    CHECK(n.data == bytes{0, 0, 0x12, 0x34});
    // The same message again is a replay: dropped.
    CHECK(r.rx(i.informational(dpd, 0x5000)).empty());
    CHECK(r.e->counters().dpd_answered == 1);
    // DELETE of the ESP SA (the spoke's inbound SPI): the pair is removed, the peer stays.
    v1::delete_payload del;
    del.protocol = v1::protocol_id::esp;
    del.spi_size = 4;
    del.spis = {be(i.my_spi, 4)};
    CHECK(r.rx(i.informational(del, 0x5001)).empty());
    REQUIRE(r.removes.size() == 1);
    CHECK(r.removes[0].id == r.installs[0].id);
    CHECK(r.downs.empty());
    // DELETE of the ISAKMP SA: peer_down.
    v1::delete_payload isa;
    isa.spis = {dpd.spi};
    r.rx(i.informational(isa, 0x5002));
    REQUIRE(r.downs.size() == 1);
    CHECK(r.downs[0].peer == spoke);
    CHECK_THAT(r.e->show("isakmp sa", true), Catch::Contains("[]"));
}

TEST_CASE("v1 NAT-T (RFC 3947): NAT-D answered, a NAT found, UDP-encapsulated transport") {
    for (bool fake : {false, true}) {
        responder r;
        phase2 p2;
        if (fake) {
            p2.mode = v1::encapsulation::udp_transport;
        }
        auto i = make_initiator({}, p2);
        i.natt = true;
        i.nat_fake = fake;
        auto mm2 = r.one(i.mm1());
        auto mm4 = r.one(i.mm3(mm2));
        CHECK(i.responder_natt);
        // MM4 carries NAT-D: first the hash of the initiator (as seen), then of the hub.
        auto m4 = v1::parse(mm4.payload);
        REQUIRE(m4);
        std::vector<bytes> natd;
        for (const auto& p : m4->payloads) {
            if (auto* n = std::get_if<v1::nat_d_payload>(&p)) {
                natd.push_back(n->hash);
            }
        }
        REQUIRE(natd.size() == 2);
        CHECK(natd[0] == i.nat_d(spoke, 500));
        CHECK(natd[1] == i.nat_d(hub, 500));
        // The initiator floats to 4500 (RFC 3947 section 4) for MM5 when a NAT is found.
        auto mm5 = i.mm5(mm4);
        if (fake) {
            mm5.sport = mm5.dport = 4500;
        }
        auto mm6 = r.rx(mm5);
        REQUIRE(mm6.size() == 1);
        CHECK(mm6[0].dport == (fake ? 4500 : 500));
        REQUIRE(i.mm6(mm6[0]));
        auto qm1 = i.qm1();
        if (fake) {
            qm1.sport = qm1.dport = 4500;
        }
        auto qm2 = r.rx(qm1);
        REQUIRE(qm2.size() == 1);
        REQUIRE(i.qm2(qm2[0]));
        REQUIRE(r.installs.size() == 1);
        CHECK(r.installs[0].udp_encap == fake);
        if (fake) {
            CHECK(r.installs[0].local_port == 4500);
            CHECK(r.installs[0].peer_port == 4500);
        }
        // NAT keepalives (RFC 3948 section 2.3) come from the end behind the NAT: the hub, in
        // front of it, sends none (ike_v1_pair: the initiator behind one sends them).
        std::vector<datagram> keepalives;
        for (int t = 0; t <= 60; t += 5) {
            outputs o;
            r.e->tick(r.now + seconds(t), o);
            for (auto& k : r.take(o)) {
                keepalives.push_back(k);
            }
        }
        CHECK(keepalives.empty());
        CHECK(r.e->counters().nat_keepalives_tx == 0);
    }
    // An initiator behind a NAT names its original (private) address in IDci: accepted when
    // NAT-OAi repeats it and NAT-D found the NAT, else INVALID-ID-INFORMATION.
    for (int k : {0, 1, 2}) {
        const bool nat = k != 2, oa = k != 0;
        responder r;
        phase2 p2;
        p2.mode = nat ? v1::encapsulation::udp_transport : v1::encapsulation::transport;
        p2.id_addr = 0xc0a80105;  // 192.168.1.5
        if (oa) {
            p2.nat_oa = {0xc0a80105, hub};
        }
        auto i = make_initiator({}, p2);
        i.natt = true;
        i.nat_fake = nat;
        auto mm2 = r.one(i.mm1());
        auto mm4 = r.one(i.mm3(mm2));
        auto mm5 = i.mm5(mm4);
        if (nat) {
            mm5.sport = mm5.dport = 4500;
        }
        auto mm6 = r.rx(mm5);
        REQUIRE(mm6.size() == 1);
        REQUIRE(i.mm6(mm6[0]));
        auto qm1 = i.qm1();
        if (nat) {
            qm1.sport = qm1.dport = 4500;
        }
        r.rx(qm1);
        INFO("NAT " << nat << ", NAT-OA " << oa);
        CHECK(r.installs.size() == (nat && oa ? 1u : 0u));
        CHECK(r.e->counters().invalid_id == (nat && oa ? 0u : 1u));
    }
    // Without a NAT, UDP-encapsulated transport is refused.
    responder r;
    phase2 p2;
    p2.mode = v1::encapsulation::udp_transport;
    auto i = make_initiator({}, p2);
    i.natt = true;
    REQUIRE(main_mode(r, i));
    r.rx(i.qm1());
    CHECK(r.installs.empty());
}

TEST_CASE("v1 a second Quick Mode replaces the first pair (make before break)") {
    responder r;
    auto i = make_initiator();
    REQUIRE(main_mode(r, i));
    REQUIRE(quick_mode(r, i));
    i.mid = 0x0a0b0c0d;
    i.my_spi = 0xabcd0002;
    REQUIRE(quick_mode(r, i));
    REQUIRE(r.installs.size() == 2);
    CHECK(r.installs[1].replaces == r.installs[0].id);
    CHECK(r.installs[1].outbound_waits);
}

TEST_CASE("v1 bounds per peer: 8 IPsec SA pairs, 3 ISAKMP SAs") {
    responder r;
    auto i = make_initiator();
    REQUIRE(main_mode(r, i));
    for (uint32_t k = 0; k < 9; ++k) {
        i.mid = 0x100 + k;
        i.my_spi = 0xabcd1000 + k;
        CHECK(quick_mode(r, i) == (k < 8));
    }
    CHECK(r.installs.size() == 8);
    // Re-authentications: the oldest ISAKMP SA beyond three goes, its pairs handed on (no
    // peer_down: the peer is still up).
    for (uint64_t k = 0; k < 3; ++k) {
        auto again = make_initiator();
        again.cky_i = 0x5000 + k;
        REQUIRE(main_mode(r, again));
    }
    CHECK(r.downs.empty());
    CHECK(r.removes.empty());
    const std::string t = r.e->show("isakmp sa", false);
    size_t rows = 0;
    for (size_t at = t.find("QM_IDLE"); at != std::string::npos; at = t.find("QM_IDLE", at + 1)) {
        ++rows;
    }
    CHECK(rows == 3);
}

TEST_CASE("v1 clear crypto sa: DELETEs sent, pairs removed, peer_down") {
    responder r;
    auto i = make_initiator();
    REQUIRE(main_mode(r, i));
    REQUIRE(quick_mode(r, i));
    outputs o;
    r.e->clear(0, r.now, o);
    auto sent = r.take(o);
    CHECK(sent.size() == 2);  // ESP DELETE, ISAKMP DELETE
    CHECK(r.removes.size() == 1);
    REQUIRE(r.downs.size() == 1);
    CHECK(r.downs[0].peer == spoke);
}

TEST_CASE("v1 hostile input: every message of both modes mutated, truncated and replayed") {
    // Each datagram of a complete exchange, with bytes flipped or cut, reaches a responder
    // standing exactly where the real one would land: nothing crashes, nothing is installed
    // that the real exchange would not install, and the real exchange still completes after.
    uint32_t seed = 12345;
    auto rnd = [&seed] {
        seed = seed * 1103515245u + 12345u;
        return seed >> 8;
    };
    for (int step = 0; step < 4; ++step) {
        for (int round = 0; round < 60; ++round) {
            responder r;
            auto i = make_initiator({5, 0, 1, 2, 86400}, {v1::esp_transform::triple_des, 0, 1, 2});
            std::vector<datagram> msgs;
            msgs.push_back(i.mm1());
            auto mm2 = r.one(msgs.back());
            msgs.push_back(i.mm3(mm2));
            auto mm4 = step >= 1 ? r.one(msgs.back()) : datagram{};
            if (step >= 2) {
                msgs.push_back(i.mm5(mm4));
                auto mm6 = r.rx(msgs.back());
                REQUIRE(mm6.size() == 1);
                REQUIRE(i.mm6(mm6[0]));
            }
            if (step >= 3) {
                msgs.push_back(i.qm1());
            }
            // The message of this step (MM1 against a fresh cookie, MM3, MM5 or QM1), hostile.
            datagram bad = msgs[size_t(step == 0 ? 0 : step)];
            if (step == 0) {
                bad.payload[3] ^= 0x5a;  // another initiator cookie: a new MM1
            }
            const size_t n = 1 + rnd() % 4;
            for (size_t k = 0; k < n; ++k) {
                bad.payload[rnd() % bad.payload.size()] ^= uint8_t(1 + rnd() % 255);
            }
            if (rnd() % 3 == 0) {
                bad.payload.resize(rnd() % bad.payload.size());
            }
            const size_t installs = r.installs.size();
            (void)r.rx(bad);
            CHECK(r.installs.size() <= installs + (step == 3 ? 1u : 0u));
            CHECK(r.ups.size() <= 1);
            (void)r.rx(bad);  // and again
        }
    }
    // The real exchange after a flood of junk still completes.
    responder r;
    datagram junk;
    junk.src = spoke;
    junk.dst = hub;
    for (size_t len : {0u, 1u, 27u, 28u, 29u, 200u}) {
        junk.payload.assign(len, 0x10);
        (void)r.rx(junk);
    }
    auto i = make_initiator();
    REQUIRE(main_mode(r, i));
    REQUIRE(quick_mode(r, i));
    CHECK(r.installs.size() == 1);
}

TEST_CASE("dual_handler: each datagram to the engine its major version names") {
    auto both = v1_settings();
    both.version = config::ike_settings::ike_version_any;
    both.proposals = config::default_ike_proposals();
    config::ipsec_profile p;
    p.name = "dmvpn";
    p.ike = both;
    auto h = dual_handler::create({p}, {{0, hub, "dmvpn"}});
    REQUIRE(h);
    REQUIRE(h.value()->v1() != nullptr);
    REQUIRE(h.value()->v2() != nullptr);
    auto i = make_initiator();
    outputs o;
    time_point now = time_point{} + seconds(5);
    h.value()->on_datagram(i.mm1(), now, o);
    REQUIRE(o.send.size() == 1);
    CHECK(v1::parse(o.send[0].payload));
    CHECK(h.value()->v1()->counters().rx == 1);
    CHECK_THAT(h.value()->show("isakmp sa", false), Catch::Contains("MM_SA_SETUP"));

    // A profile that speaks IKEv2 only refuses IKEv1 (counted), and the reverse.
    auto v2only = both;
    v2only.version = 2;
    p.ike = v2only;
    auto h2 = dual_handler::create({p}, {{0, hub, "dmvpn"}});
    REQUIRE(h2);
    CHECK(h2.value()->v1() == nullptr);
    outputs o2;
    h2.value()->on_datagram(i.mm1(), now, o2);
    CHECK(o2.send.empty());
    CHECK(h2.value()->refused() == 1);
    // A reload to version any starts the IKEv1 engine: the same MM1 is answered.
    p.ike = both;
    REQUIRE_FALSE(h2.value()->reconfigure({p}, {{0, hub, "dmvpn"}}).has_value());
    REQUIRE(h2.value()->v1() != nullptr);
    h2.value()->on_datagram(i.mm1(), now, o2);
    CHECK(o2.send.size() == 1);
    p.ike = v2only;
    auto v1only = both;
    v1only.version = 1;
    p.ike = v1only;
    auto h1 = dual_handler::create({p}, {{0, hub, "dmvpn"}});
    REQUIRE(h1);
    CHECK(h1.value()->v2() == nullptr);
    datagram v2 = i.mm1();
    v2.payload[17] = 0x20;  // major version 2
    outputs o1;
    h1.value()->on_datagram(v2, now, o1);
    CHECK(o1.send.empty());
    CHECK(h1.value()->refused() == 1);
}

TEST_CASE("merge_views: text blocks follow each other, JSON rows share one array") {
    CHECK(merge_views("E", "B", "E", false) == "B");
    CHECK(merge_views("A", "E", "E", false) == "A");
    CHECK(merge_views("A\n", "B\n", "E", false) == "A\nB\n");
    CHECK(merge_views("{\"x\": [1]}\n", "{\"x\": [2, 3]}\n", "{\"x\": []}\n", true) ==
          "{\"x\": [1, 2, 3]}\n");
}

namespace {

// Aggressive Mode, the initiator's side (RFC 2409 section 5.4): AM1 = SA, KE, Ni, IDii.
datagram am1(initiator& i) {
    auto k = ike::crypto::key_exchange::generate(i.p1.group);
    REQUIRE(k);
    i.kx = std::move(k.value());
    i.gxi = i.kx->public_value();
    i.ni = bytes(24, 0x6b);
    v1::message m;
    m.hdr.spi_i = i.cky_i;
    m.hdr.exch = v1::exchange::aggressive;
    m.payloads.push_back(i.isakmp_sa());
    m.payloads.push_back(v1::ke_payload{i.gxi});
    m.payloads.push_back(v1::nonce_payload{i.ni});
    v1::id_payload id{v1::id_type::ipv4_addr, 17, 500, be(i.local, 4)};
    m.payloads.push_back(id);
    if (i.natt) {
        m.payloads.push_back(v1::vendor_payload{initiator::natt_vid()});
    }
    const auto ch = v1::serialize_payloads({m.payloads[0]});
    i.sa_b.assign(ch.data.begin() + 4, ch.data.end());
    return i.wrap(v1::serialize(m));
}

// AM2 -> AM3: HASH_R checked (false if not), keys derived, HASH_I sent (encrypted or not).
std::optional<datagram> am3(initiator& i, const datagram& am2, bool encrypt) {
    auto m = v1::parse(am2.payload);
    REQUIRE(m);
    REQUIRE(m->hdr.exch == v1::exchange::aggressive);
    i.cky_r = m->hdr.spi_r;
    const v1::hash_payload* h = nullptr;
    std::vector<bytes> natd;
    for (const auto& p : m->payloads) {
        if (auto* k = std::get_if<v1::ke_payload>(&p)) {
            i.gxr = k->data;
        } else if (auto* n = std::get_if<v1::nonce_payload>(&p)) {
            i.nr = n->data;
        } else if (auto* x = std::get_if<v1::hash_payload>(&p)) {
            h = x;
        } else if (auto* d = std::get_if<v1::nat_d_payload>(&p)) {
            natd.push_back(d->hash);
        }
    }
    REQUIRE(h != nullptr);
    auto gxy = i.kx->shared_secret(i.gxr);
    REQUIRE(gxy);
    i.keys = v1::crypto::derive_phase1(i.p1.hash, i.p1.encr, i.p1.key_bits,
                                       {(const uint8_t*)i.psk.data(), i.psk.size()}, i.ni, i.nr,
                                       gxy.value().view(), i.cky_i, i.cky_r, i.gxi, i.gxr);
    i.iv = i.keys.iv;
    const std::span<const uint8_t> raw(am2.payload);
    auto idr = v1::parse_payloads(m->hdr.next, raw.subspan(v1::header_size));
    REQUIRE(idr);
    // IDir's body: walk the chain to the ID payload.
    std::span<const uint8_t> chain = raw.subspan(v1::header_size);
    v1::payload_type cur = m->hdr.next;
    std::span<const uint8_t> idb;
    while (cur != v1::payload_type::none) {
        const size_t len = (size_t(chain[2]) << 8) | chain[3];
        if (cur == v1::payload_type::id) {
            idb = chain.subspan(4, len - 4);
        }
        cur = static_cast<v1::payload_type>(chain[0]);
        chain = chain.subspan(len);
    }
    auto want = v1::crypto::hash_r(i.p1.hash, i.keys.skeyid.view(), i.gxi, i.gxr, i.cky_i, i.cky_r,
                                   i.sa_b, idb);
    if (!ike::crypto::equal(want.view(), h->data)) {
        return std::nullopt;
    }
    if (i.natt) {
        REQUIRE(natd.size() == 2);
        CHECK(natd[0] == i.nat_d(i.local, 500));
        CHECK(natd[1] == i.nat_d(i.peer, 500));
    }
    const v1::chain idc =
        v1::serialize_payloads({v1::id_payload{v1::id_type::ipv4_addr, 17, 500, be(i.local, 4)}});
    auto hi = v1::crypto::hash_i(i.p1.hash, i.keys.skeyid.view(), i.gxi, i.gxr, i.cky_i, i.cky_r,
                                 i.sa_b, std::span<const uint8_t>(idc.data).subspan(4));
    std::vector<v1::payload> ps{v1::hash_payload{bytes(hi.data(), hi.data() + hi.size())}};
    if (i.natt) {
        ps.push_back(v1::nat_d_payload{i.nat_d(i.peer, 500)});
        ps.push_back(v1::nat_d_payload{i.nat_d(i.nat_fake ? i.local + 1 : i.local, 500)});
    }
    v1::header hd;
    hd.spi_i = i.cky_i;
    hd.spi_r = i.cky_r;
    hd.exch = v1::exchange::aggressive;
    if (encrypt) {
        return i.wrap(i.seal(hd, ps, i.iv));
    }
    v1::message clear;
    clear.hdr = hd;
    clear.payloads = ps;
    return i.wrap(v1::serialize(clear));
}

config::ike_settings aggressive_settings() {
    auto s = v1_settings();
    s.aggressive_mode = true;
    return s;
}

}  // namespace

TEST_CASE("v1 Aggressive Mode when the profile allows it: PSK, HASH_R/HASH_I, then Quick Mode") {
    for (bool encrypt : {true, false}) {
        for (bool natt : {false, true}) {
            CAPTURE(encrypt, natt);
            responder r(aggressive_settings());
            auto i = make_initiator({5, 0, 1, 2, 86400});  // the seeds' 3DES/MD5/group 2
            i.natt = natt;
            i.nat_fake = natt;
            auto am2 = r.one(am1(i));
            CHECK_THAT(r.e->show("isakmp sa", false), Catch::Contains("AG_INIT_EXCH"));
            auto a3 = am3(i, am2, encrypt);
            REQUIRE(a3);
            CHECK(r.rx(*a3).empty());
            REQUIRE(r.ups.size() == 1);
            CHECK(r.ups[0].identity == "198.51.100.2");
            CHECK(r.e->counters().phase1_up == 1);
            CHECK_THAT(r.e->show("isakmp sa", false), Catch::Contains("QM_IDLE"));
            // Quick Mode on the Aggressive Mode SA: keys mirror the initiator's.
            if (!encrypt) {
                // In clear, AM3 leaves the Phase 1 IV where AM2 left it: hash(g^xi | g^xr).
                CHECK(i.iv == i.keys.iv);
            }
            if (natt) {
                i.p2.mode = v1::encapsulation::udp_transport;
            }
            REQUIRE(quick_mode(r, i));
            REQUIRE(r.installs.size() == 1);
            CHECK(r.installs[0].udp_encap == natt);
            require_keys_mirror(r.installs[0], i, 16);
        }
    }
}

TEST_CASE("v1 Aggressive Mode: retransmissions, a wrong key, refused by default, bounds") {
    SECTION("a retransmitted AM1 gets the same AM2; AM3 twice changes nothing") {
        responder r(aggressive_settings());
        auto i = make_initiator();
        auto a1 = am1(i);
        auto am2 = r.one(a1);
        auto am2b = r.one(a1);
        CHECK(am2b.payload == am2.payload);
        CHECK(r.e->counters().duplicates_answered == 1);
        auto a3 = am3(i, am2, true);
        REQUIRE(a3);
        CHECK(r.rx(*a3).empty());
        CHECK(r.rx(*a3).empty());
        CHECK(r.ups.size() == 1);
    }
    SECTION("a wrong key: HASH_R does not verify, HASH_I refused, state dropped") {
        responder r(aggressive_settings());
        auto i = make_initiator({}, {}, "not-the-key");
        auto am2 = r.one(am1(i));
        CHECK_FALSE(am3(i, am2, true).has_value());
        // A HASH_I made with the wrong key (the initiator pressing on).
        auto m = v1::parse(am2.payload);
        REQUIRE(m);
        v1::header hd;
        hd.spi_i = i.cky_i;
        hd.spi_r = m->hdr.spi_r;
        hd.exch = v1::exchange::aggressive;
        auto bad = i.wrap(i.seal(hd, {v1::hash_payload{bytes(20, 0x11)}}, i.iv));
        auto ans = r.rx(bad);
        REQUIRE(ans.size() == 1);  // INVALID-HASH-INFORMATION in clear
        CHECK(r.e->counters().auth_failed == 1);
        CHECK(r.ups.empty());
        CHECK_THAT(r.e->show("isakmp sa", true), Catch::Contains("[]"));
    }
    SECTION("per-identity keys: the key named by IDii's address") {
        auto s = aggressive_settings();
        s.psks.push_back({"198.51.100.2", bytes{'o', 'w', 'n', '-', 'k', 'e', 'y', '-', '1', '2',
                                                '3', '4', '5', '6', '7', '8'}});
        responder r(s);
        auto i = make_initiator({}, {}, "own-key-12345678");
        auto a3 = am3(i, r.one(am1(i)), true);
        REQUIRE(a3);
        CHECK(r.rx(*a3).empty());
        CHECK(r.ups.size() == 1);
    }
    SECTION(
        "AM1 without IDii (PAYLOAD-MALFORMED), a KE of another size (INVALID-KEY-"
        "INFORMATION): one notify, no state") {
        for (int k : {0, 1}) {
            responder r(aggressive_settings());
            auto i = make_initiator();
            auto d = am1(i);
            auto m = v1::parse(d.payload);
            REQUIRE(m);
            if (k == 0) {
                m->payloads.erase(m->payloads.begin() + 3);  // IDii
            } else {
                std::get<v1::ke_payload>(m->payloads[1]).data.resize(64);
            }
            d.payload = v1::serialize(*m);
            auto ans = r.rx(d);
            REQUIRE(ans.size() == 1);
            auto n = v1::parse(ans[0].payload);
            REQUIRE(n);
            CHECK(std::get<v1::notification_payload>(n->payloads.at(0)).type ==
                  (k == 0 ? v1::notify_type::payload_malformed
                          : v1::notify_type::invalid_key_information));
            CHECK(r.e->counters().invalid_syntax == 1);
            CHECK_THAT(r.e->show("isakmp sa", true), Catch::Contains("[]"));
        }
    }
    SECTION("half-open Aggressive Mode SAs are bounded and expire") {
        auto s = aggressive_settings();
        s.max_half_open = 4;
        responder r(s);
        for (uint64_t k = 0; k < 10; ++k) {
            auto i = make_initiator();
            i.cky_i = 0x1000 + k;
            r.rx(am1(i));
        }
        CHECK(r.e->counters().half_open == 6);
        r.now += seconds(31);
        outputs o;
        r.e->tick(r.now, o);
        CHECK_THAT(r.e->show("isakmp sa", true), Catch::Contains("[]"));
    }
    SECTION("Main Mode messages on an Aggressive Mode SA are dropped") {
        responder r(aggressive_settings());
        auto i = make_initiator();
        auto am2 = r.one(am1(i));
        auto m2 = v1::parse(am2.payload);
        REQUIRE(m2);
        i.cky_r = m2->hdr.spi_r;
        v1::message mm;
        mm.hdr.spi_i = i.cky_i;
        mm.hdr.spi_r = i.cky_r;
        mm.payloads.push_back(v1::ke_payload{bytes(256, 1)});
        mm.payloads.push_back(v1::nonce_payload{bytes(16, 2)});
        CHECK(r.rx(i.wrap(v1::serialize(mm))).empty());
        CHECK(r.ups.empty());
    }
}

TEST_CASE(
    "v1 kilobyte lifetimes: RESPONDER-LIFETIME names them, the workers' bytes delete the pair") {
    auto s = v1_settings();
    s.child_lifetime_bytes = 100 * 1024;  // IOS: set security-association lifetime kilobytes 100
    responder r(s);
    auto i = make_initiator();
    REQUIRE(main_mode(r, i));
    REQUIRE(quick_mode(r, i));
    REQUIRE(r.installs.size() == 1);
    // The initiator proposed seconds only: the notify carries our seconds and our kilobytes.
    REQUIRE(i.responder_lifetime);
    CHECK(*i.responder_lifetime == 3600);
    CHECK(i.responder_lifetime_data == bytes{0x80, 0x01, 0x00, 0x01, 0x80, 0x02, 0x0e, 0x10, 0x80,
                                             0x01, 0x00, 0x02, 0x80, 0x02, 0x00, 100});
    const uint64_t id = r.installs[0].id;
    outputs o;
    // Other ids (IKEv2's) are not ours: ignored.
    r.e->usage({{id, 50 * 1024, 40, 60 * 1024, 50}, {7, 1u << 30, 1, 1u << 30, 1}}, r.now, o);
    CHECK(o.send.empty());
    CHECK(o.requests.empty());
    // show crypto ipsec sa carries the workers' counters and what is left of the kilobytes.
    const std::string shown = r.e->show("ipsec sa", true);
    CHECK_THAT(shown, Catch::Contains("\"encaps\":50,\"encrypt\":50,\"digest\":50,"
                                      "\"decaps\":40,\"decrypt\":40,\"verify\":40"));
    CHECK_THAT(shown, Catch::Contains("\"remaining_kb\":40,"));
    r.e->usage({{id, 60 * 1024, 50, 100 * 1024, 80}}, r.now, o);
    auto sent = r.take(o);
    REQUIRE(r.removes.size() == 1);
    CHECK(r.removes[0].id == id);
    REQUIRE(sent.size() == 1);
    auto del = i.read_informational(sent[0]);
    REQUIRE(del.has_value());
    const v1::delete_payload* d = nullptr;
    for (const auto& p : *del) {
        if (auto* x = std::get_if<v1::delete_payload>(&p)) {
            d = x;
        }
    }
    REQUIRE(d != nullptr);
    CHECK(d->spis.at(0) == be(r.installs[0].inbound.spi, 4));
    // The ISAKMP SA stays (Phase 1's lifetime is its own).
    CHECK_THAT(r.e->show("isakmp sa", false), Catch::Contains("QM_IDLE"));
}
