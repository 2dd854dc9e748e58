// Hub to hub IKE (control/hub/ike_peers): which peers the hub initiates to (`nhs` peers and
// static maps of tunnels whose profile has `ike.initiate`), at start, after their IKE SA died,
// and with back-off while they stay down.
#include <catch2/catch.hpp>

#include "control/hub/ike_peers.hpp"

using namespace dmvpn;
using namespace dmvpn::hub;
using std::chrono::seconds;

namespace {

constexpr uint32_t hub_a = 0x64400001;  // 100.64.0.1
constexpr uint32_t hub_b = 0x644000fa;  // 100.64.0.250
constexpr uint32_t hub_c = 0x644000fb;
constexpr uint32_t mapped = 0x64400063;

config::topology topology(bool initiate) {
    config::topology t;
    t.ipsec_profiles.resize(2);  // a manual one, "lab", and "dmvpn" keyed by IKE
    t.ipsec_profiles[0].name = "lab";
    t.ipsec_profiles[1].name = "dmvpn";
    t.ipsec_profiles[1].ike.emplace().initiate = initiate;
    auto tunnel = [](std::string name, std::string profile) {
        config::tunnel x;
        x.name = std::move(name);
        x.nbma_source = config::ipv4{hub_a};
        x.ipsec_profile = std::move(profile);
        x.nhrp.nhs = {{config::ipv4{0x0a0000fa}, config::ipv4{hub_b}},
                      {config::ipv4{0x0a0000fb}, config::ipv4{hub_c}}};
        x.nhrp.maps = {{config::ipv4{0x0a000063}, config::ipv4{mapped}},
                       {config::ipv4{0x0a0000fa}, config::ipv4{hub_b}},   // an nhs again: once
                       {config::ipv4{0x0a000001}, config::ipv4{hub_a}}};  // ourselves: never
        return x;
    };
    t.tunnels = {tunnel("Tunnel0", ""), tunnel("Tunnel1", "lab"), tunnel("Tunnel2", "dmvpn")};
    return t;
}

}  // namespace

TEST_CASE("The hub initiates to the nhs peers and static maps of tunnels with ike.initiate",
          "[hub][ike]") {
    auto t = topology(true);
    tunnel_slots slots;
    REQUIRE(slots.assign(t));
    auto targets = ike_peers::targets_of(t, slots);
    uint32_t slot = *slots.slot("Tunnel2");
    REQUIRE(targets.size() == 3);
    CHECK(targets[0] == ike_peers::target{slot, hub_b});
    CHECK(targets[1] == ike_peers::target{slot, hub_c});
    CHECK(targets[2] == ike_peers::target{slot, mapped});
    // `initiate: false` (the default): the hub only answers.
    auto off = topology(false);
    CHECK(ike_peers::targets_of(off, slots).empty());
}

TEST_CASE("Initiations: at once, backed off while down, none while up, again when it dies",
          "[hub][ike]") {
    ike_peers p;
    auto t0 = ike_peers::time_point{} + seconds(100);
    p.configure({{2, hub_b}, {2, hub_c}}, t0);
    CHECK(p.due(t0).size() == 2);  // both at start
    CHECK(p.due(t0).empty());      // not again before the back-off
    p.up(2, hub_b);                // hub B keyed (either side initiated)
    // hub C stays silent: asked again after 1, 2, 4 ... s, never less often than every 32 s.
    std::vector<int> at;
    for (int s = 1; s <= 200; ++s) {
        for (const auto& x : p.due(t0 + seconds(s))) {
            CHECK(x.peer == hub_c);
            at.push_back(s);
        }
    }
    CHECK(at == std::vector<int>{1, 3, 7, 15, 31, 63, 95, 127, 159, 191});
    // Its IKE SA with hub B dies: asked again at once, the back-off starting anew.
    auto t1 = t0 + seconds(300);
    p.down(2, hub_b, t1);
    auto d = p.due(t1);
    REQUIRE(d.size() == 2);  // hub C happened to be due too
    CHECK(p.due(t1 + seconds(1)).size() == 1);
    p.up(2, hub_b);
    CHECK(p.due(t1 + seconds(3)).empty());  // B up again; C's next is at +32 s
    // A peer down that is not a target changes nothing; a reload keeps state of kept targets.
    p.down(2, mapped, t1);
    p.configure({{2, hub_b}, {2, mapped}}, t1 + seconds(4));
    auto v = p.peers();
    REQUIRE(v.size() == 2);
    CHECK(v[0].t.peer == mapped);  // ordered by (tunnel, peer)
    CHECK(!v[0].up);
    CHECK(v[1].t.peer == hub_b);
    CHECK(v[1].up);
    CHECK(v[1].downs == 1);
    CHECK(p.due(t1 + seconds(4)).size() == 1);  // the new target, at once
}

TEST_CASE("show crypto ike initiator's states: connecting, backing off with the reason, up",
          "[hub][ike]") {
    ike_peers p;
    auto t0 = ike_peers::time_point{} + seconds(100);
    p.configure({{2, hub_b}}, t0);
    auto one = [&p] {
        auto v = p.peers();
        REQUIRE(v.size() == 1);
        return v[0];
    };
    CHECK(one().state == ike_peers::phase::connecting);  // due at once
    CHECK(one().initiations == 0);
    REQUIRE(p.due(t0).size() == 1);
    CHECK(one().state == ike_peers::phase::connecting);  // asked, no answer yet
    CHECK(one().next == t0 + seconds(1));
    // The engine gave the attempt up: backing off until the next, the reason kept.
    p.failed(2, hub_b, "peer not answering");
    CHECK(one().state == ike_peers::phase::backing_off);
    CHECK(one().failures == 1);
    CHECK(one().last_error == "peer not answering");
    CHECK(ike_peers::name(one().state) == "backing-off");
    REQUIRE(p.due(t0 + seconds(1)).size() == 1);  // the next attempt: connecting again
    CHECK(one().state == ike_peers::phase::connecting);
    CHECK(one().initiations == 2);
    CHECK(one().next == t0 + seconds(3));
    p.up(2, hub_b);
    CHECK(one().state == ike_peers::phase::up);
    CHECK(ike_peers::name(one().state) == "up");
    p.failed(2, hub_b, "a late failure of another attempt");  // up stays up
    CHECK(one().state == ike_peers::phase::up);
    CHECK(one().failures == 1);
    // Its SA dies: the reason shown, connecting again at once.
    p.down(2, hub_b, t0 + seconds(10), "dead peer detected");
    CHECK(one().state == ike_peers::phase::connecting);
    CHECK(one().last_error == "dead peer detected");
    CHECK(one().downs == 1);
    // Not a target: ignored.
    p.failed(2, mapped, "x");
    CHECK(p.peers().size() == 1);
}
