// The spoke emulator's IKEv2 (--ike) against the project's own IKE engine playing the hub's
// responder, everything wired through Ethernet/IPv4/UDP frames: the spokes key themselves at the
// paced rate, the keys on both sides agree (the SPIs pair up and every registration and data
// packet decrypts at the other end), NHRP registers inside the negotiated ESP, a Phase 3
// shortcut first brings up a spoke-to-spoke SA (negotiated between two emulated spokes, never
// through the hub) and carries its traffic under it, a cleared SA takes its spoke down and
// the spoke keys itself again, and a wrong pre-shared key keys nobody.
#include <catch2/catch.hpp>

#include <chrono>
#include <deque>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "control/ike/engine.hpp"
#include "tests/unit/spokesim_hub_double.hpp"
#include "tools/spokesim/ike.hpp"
#include "tools/spokesim/ike_config.hpp"

using namespace dmvpn;
using namespace dmvpn::spokesim;
using namespace dmvpn::spokesim::test;

namespace {

ike::time_point at(uint64_t us) { return ike::time_point(std::chrono::microseconds(us)); }

// The hub's IKE: a responder engine bound to the hub's NBMA address, its CHILD_SAs installed in
// the scripted hub's ESP table (pair peer: the spoke's NBMA address).
struct ike_hub {
    const topology& t;
    std::unique_ptr<ike::engine> eng;
    esp_table* esp = nullptr;
    struct child {
        uint32_t spoke = 0;
        uint64_t id = 0;
        bool rekey = false;
    };
    std::vector<child> children;
    uint64_t ups = 0;
    uint64_t downs = 0;
    uint64_t removed = 0;
    uint64_t datagrams = 0;

    explicit ike_hub(const topology& topo) : t(topo) {}

    void on_udp(const ipv4_view& ip, std::deque<buffer>& frames, uint64_t now) {
        REQUIRE(ip.dst == t.hub_nbma());
        auto u = parse_udp(ip.payload);
        REQUIRE(u);
        REQUIRE((u->dst_port == 500 || u->dst_port == 4500));
        std::span<const uint8_t> p = u->payload;
        if (u->dst_port == 4500) {
            REQUIRE(p.size() >= 4);
            CHECK((p[0] | p[1] | p[2] | p[3]) == 0);  // the non-ESP marker
            p = p.subspan(4);
        }
        ++datagrams;
        ike::datagram d;
        d.src = ip.src;
        d.dst = ip.dst;
        d.sport = u->src_port;
        d.dport = u->dst_port;
        d.tunnel = 0;
        d.payload.assign(p.begin(), p.end());
        ike::outputs o;
        eng->on_datagram(d, at(now), o);
        process(o, frames, now);
    }

    void process(ike::outputs& o, std::deque<buffer>& frames, uint64_t now) {
        while (!o.send.empty() || !o.requests.empty()) {
            auto send = std::move(o.send);
            auto requests = std::move(o.requests);
            o.send.clear();
            o.requests.clear();
            for (const ike::datagram& d : send) {
                REQUIRE(d.src == t.hub_nbma());
                size_t marker = d.sport == 4500 || d.dport == 4500 ? 4 : 0;
                buffer f;
                put_eth(f, port_mac, hub_mac, ethertype_ipv4);
                put_ipv4(f, d.src, d.dst, ip_proto_udp, 8 + marker + d.payload.size(), 7);
                put_udp(f, d.sport, d.dport, marker + d.payload.size());
                f.resize(f.size() + marker, 0);
                f.insert(f.end(), d.payload.begin(), d.payload.end());
                frames.push_back(std::move(f));
            }
            for (ike::request& r : requests) {
                if (auto* in = std::get_if<ike::install_child>(&r)) {
                    auto spoke = t.local_by_nbma(in->sa.peer);
                    REQUIRE(spoke);
                    auto e = install_child(*esp, *spoke, in->sa);
                    INFO(e.value_or(""));
                    REQUIRE_FALSE(e);
                    children.push_back({*spoke, in->sa.id, in->sa.replaces.has_value()});
                    eng->installed(in->sa.id, at(now), o);
                } else if (auto* rm = std::get_if<ike::remove_child>(&r)) {
                    CHECK(esp->remove(rm->id));
                    ++removed;
                } else if (std::get_if<ike::peer_up>(&r) != nullptr) {
                    ++ups;
                } else {
                    ++downs;
                }
            }
        }
    }

    void tick(rig& r, uint64_t now) {
        ike::outputs o;
        eng->tick(at(now), o);
        std::deque<buffer> frames;
        process(o, frames, now);
        for (auto& f : frames) {
            r.eng->on_frame(f, now);
        }
    }
};

// The emulator with --ike and a hub answering with its own engine; `hub_key` replaces the
// pre-shared key on the hub's side when set.
struct ike_rig {
    std::unique_ptr<ike_hub> hub;
    esp_table* spoke_esp = nullptr;
    std::unique_ptr<rig> r;

    explicit ike_rig(std::vector<std::string> args, std::string hub_key = "") {
        r = std::make_unique<rig>(std::move(args), [&](rig& g, std::unique_ptr<esp_layer>& esp,
                                                       std::unique_ptr<ike_layer>& ike) {
            auto table = esp_table::create();
            REQUIRE(table);
            spoke_esp = table->get();
            auto layer = make_ike_layer(g.o, *g.topo, **table);
            INFO((layer ? "" : layer.error()));
            REQUIRE(layer);
            ike = std::move(*layer);
            esp = std::move(*table);

            hub = std::make_unique<ike_hub>(*g.topo);
            auto hub_table = esp_table::create();
            REQUIRE(hub_table);
            hub->esp = hub_table->get();
            g.hub->esp = std::move(*hub_table);
            // The hub's profile: the spokes' policy, answering only.
            auto plan = plan_ike(g.o, *g.topo);
            REQUIRE(plan);
            auto profiles = plan->profiles;
            profiles[0].ike->initiate = false;
            if (!hub_key.empty()) {
                profiles[0].ike->psks[0].key.assign(hub_key.begin(), hub_key.end());
            }
            auto e = ike::engine::create(profiles, {{0, g.topo->hub_nbma(), profiles[0].name}});
            INFO((e ? "" : e.error()));
            REQUIRE(e);
            hub->eng = std::move(*e);
            g.hub->on_udp = [h = hub.get(), &g](const ipv4_view& ip, std::deque<buffer>& out) {
                h->on_udp(ip, out, g.now);
            };
        });
        r->on_step = [this](uint64_t now) { hub->tick(*r, now); };
    }
};

std::vector<std::string> with(std::vector<std::string> base, std::vector<std::string> more) {
    base.insert(base.end(), more.begin(), more.end());
    return base;
}

const std::vector<std::string> common{"--vdev",     "test", "--hub-mac", "02:bb:00:00:00:01",
                                      "--gre-key",  "7",    "--auth",    "ike",
                                      "--holdtime", "30"};

}  // namespace

TEST_CASE("spokes key themselves with the hub at the paced rate, then register through ESP",
          "[spokesim][ike]") {
    auto [ike_prop, esp_prop] =
        GENERATE(std::pair<std::string, std::string>{"aes128gcm16-prfsha256-x25519", "aes128gcm16"},
                 std::pair<std::string, std::string>{"aes256-sha256-modp2048", "aes256-sha256"},
                 std::pair<std::string, std::string>{"aes128-sha384-ecp256", "aes128-sha1"});
    INFO(ike_prop << " / " << esp_prop);
    constexpr uint32_t n = 8;
    ike_rig k(
        with(common, {"--spokes", std::to_string(n), "--ike", "psk:cloud-key", "--ike-proposal",
                      ike_prop, "--esp-proposal", esp_prop, "--ike-rate", "40", "--rate", "400",
                      "--duration", "1", "--drain", "0.3", "--no-shortcuts"}));
    rig& r = *k.r;
    // 40 initiations a second: 60 ms in, spokes 0, 1 and 2 have started (at 0, 25 and 50 ms).
    r.run_for(60 * ms);
    CHECK(r.eng->current_phase() == phase::keying);
    CHECK(r.eng->keyed() >= 1);
    CHECK(r.eng->keyed() <= 3);
    CHECK(k.hub->ups == r.eng->keyed());
    r.run_for(5000 * ms);
    REQUIRE(r.eng->done());
    INFO(r.eng->report_json(r.now));
    auto ik = r.eng->ike_sum();
    CHECK(ik.keyed == n);
    CHECK(ik.ike.ike_sas_up == n);
    CHECK(ik.ike.child_sas == n);
    CHECK(ik.ike.failures == 0);
    CHECK(ik.peer_downs == 0);
    CHECK(k.hub->ups == n);
    REQUIRE(k.hub->children.size() == n);
    // Both sides hold the same pair: the spoke's outbound SPI is the hub's inbound one and the
    // other way round, for every spoke.
    for (const auto& c : k.hub->children) {
        auto hub_spis = k.hub->esp->spis(c.id);
        REQUIRE(hub_spis);
        auto mine = k.spoke_esp->current(c.spoke, r.topo->hub_nbma());
        REQUIRE(mine);
        auto spoke_spis = k.spoke_esp->spis(*mine);
        REQUIRE(spoke_spis);
        CHECK(spoke_spis->out == hub_spis->in);
        CHECK(spoke_spis->in == hub_spis->out);
        CHECK(spoke_spis->out != spoke_spis->in);
    }
    totals t = r.eng->sum(r.now);
    CHECK(t.registered == n);
    CHECK(t.nhrp.registration_replies >= n);
    CHECK(t.sent == 400);
    CHECK(t.received == t.sent);
    CHECK(t.data.esp_errors == 0);
    // Every registration and every data packet reached the hub inside the negotiated ESP, and
    // every reply and forwarded packet came back inside it (the spoke decrypted them).
    CHECK(r.hub->esp_decrypted == t.sent + t.nhrp.registrations_sent);
    CHECK(r.eng->success(r.now));
    std::string json = r.eng->report_json(r.now);
    CHECK(json.find(fmt::format("\"ike\":true,\"keyed\":{},\"ike_sas_up\":{},\"child_sas\":{}", n,
                                n, n)) != std::string::npos);
    CHECK(r.eng->progress_line(r.now).find(fmt::format("keyed={}/{}", n, n)) != std::string::npos);
}

TEST_CASE("a Phase 3 shortcut between emulated spokes rides their own negotiated SA",
          "[spokesim][ike]") {
    constexpr uint32_t n = 4;
    ike_rig k(with(common, {"--spokes", std::to_string(n), "--ike", "psk:cloud-key", "--ike-rate",
                            "200", "--rate", "400", "--duration", "2", "--drain", "0.3"}));
    rig& r = *k.r;
    r.run_for(5000 * ms);
    REQUIRE(r.eng->done());
    INFO(r.eng->report_json(r.now));
    auto ik = r.eng->ike_sum();
    totals t = r.eng->sum(r.now);
    CHECK(ik.keyed == n);
    // Spoke i sends to i+1: i+1 answers i's resolution and keys itself with i first (the
    // pairs 0-1, 1-2, 2-3, 3-0), each side installing its half.
    CHECK(ik.spoke_sas == 2 * n);
    // n with the hub, and n between spokes that the one engine holds on both sides (initiator
    // and responder), each side counting its own.
    CHECK(ik.ike.ike_sas_up == 3 * n);
    CHECK(ik.ike.child_sas == 3 * n);
    CHECK(ik.ike.failures == 0);
    CHECK(ik.held >= n);  // the Resolution Replies waited for their SA
    CHECK(ik.held_dropped == 0);
    for (uint32_t i = 0; i < n; ++i) {
        uint32_t next = (i + 1) % n;
        CHECK(k.spoke_esp->has(i, r.topo->nbma_of(next)));
        CHECK(k.spoke_esp->has(next, r.topo->nbma_of(i)));
    }
    // The hub saw only its own n IKE SAs: the spoke-to-spoke exchanges never left the
    // emulator (the scripted hub requires every frame to be addressed to it).
    CHECK(k.hub->ups == n);
    CHECK(t.nhrp.resolution_replies == n);
    CHECK(t.nhrp.shortcuts_installed == n);
    CHECK(t.data.sent_shortcut > 300);
    CHECK(t.data.received_shortcut == t.data.sent_shortcut);
    CHECK(t.data.sent_via_hub == r.hub->data_forwarded);
    CHECK(t.lost == 0);
    CHECK(t.data.esp_errors == 0);
    CHECK(r.eng->success(r.now));
}

TEST_CASE("an IKE SA the hub clears takes its spoke down; the spoke keys itself again",
          "[spokesim][ike]") {
    constexpr uint32_t n = 3;
    ike_rig k(with(common, {"--spokes", std::to_string(n), "--ike", "psk:cloud-key", "--ike-retry",
                            "0.5", "--rate", "0", "--duration", "3", "--drain", "0"}));
    rig& r = *k.r;
    r.run_for(500 * ms);
    REQUIRE(r.eng->keyed() == n);
    REQUIRE(r.eng->sum(r.now).registered == n);
    uint64_t sent_before = r.eng->spoke_at(1).counters().registrations_sent;

    ike::outputs o;
    k.hub->eng->clear(r.topo->nbma_of(1), at(r.now), o);
    std::deque<buffer> frames;
    k.hub->process(o, frames, r.now);
    CHECK(k.hub->downs == 1);
    REQUIRE_FALSE(frames.empty());  // the DELETE
    for (auto& f : frames) {
        r.eng->on_frame(f, r.now);
    }
    r.run_for(10 * ms);
    CHECK(r.eng->ike_sum().peer_downs == 1);
    CHECK(r.eng->keyed() == n - 1);
    CHECK_FALSE(r.eng->keyed(1));
    CHECK_FALSE(k.spoke_esp->has(1, r.topo->hub_nbma()));
    // --ike-retry 0.5: keyed again, and registered again inside the new SA.
    r.run_for(1000 * ms);
    CHECK(r.eng->keyed() == n);
    CHECK(r.eng->keyed(1));
    CHECK(k.hub->ups == n + 1);
    CHECK(r.eng->spoke_at(1).counters().registrations_sent > sent_before);
    r.run_for(5000 * ms);
    REQUIRE(r.eng->done());
    INFO(r.eng->report_json(r.now));
    CHECK(r.eng->sum(r.now).registered == n);
    CHECK(r.eng->ike_sum().ike.failures == 0);
    CHECK(r.eng->success(r.now));
}

TEST_CASE("a pre-shared key the hub does not hold keys nobody: nothing registers",
          "[spokesim][ike]") {
    ike_rig k(with(common, {"--spokes", "2", "--ike", "psk:wrong-key", "--rate", "10", "--duration",
                            "0.5", "--register-wait", "2", "--drain", "0"}),
              "cloud-key");
    rig& r = *k.r;
    r.run_for(6000 * ms);
    REQUIRE(r.eng->done());
    INFO(r.eng->report_json(r.now));
    CHECK(r.eng->keyed() == 0);
    CHECK(k.hub->ups == 0);
    CHECK(k.hub->children.empty());
    CHECK(k.hub->eng->counters().auth_failed >= 1);
    CHECK(r.eng->ike_sum().ike.child_sas == 0);
    totals t = r.eng->sum(r.now);
    CHECK(t.nhrp.registrations_sent == 0);  // nothing goes out without an SA
    CHECK(t.data.esp_errors == 0);
    CHECK(r.hub->esp_decrypted == 0);
    CHECK_FALSE(r.eng->success(r.now));
}
