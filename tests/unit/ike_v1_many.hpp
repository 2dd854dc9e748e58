// Many IKEv1 SAs on a fake clock, for the timer test (ike_v1_timers_test.cpp) and the tick
// benchmark (bench/ike_v1_tick_bench.cpp): one initiator engine with `n` tunnels (an NBMA
// address each, 198.51.100.16 on) keys Main Mode + Quick Mode with one responder engine (the
// hub, 198.51.100.1); installs are acknowledged at once, datagrams delivered in order.
#pragma once

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "control/ike/v1_engine.hpp"

namespace dmvpn::ike::v1::testing {

inline constexpr uint32_t many_hub = 0xc6336401;  // 198.51.100.1

// PSK, group 19 and AES-128/SHA-1 (cheap to key by the thousand), DPD every `dpd_s` seconds.
inline config::ike_settings many_settings(uint32_t p1_lifetime_s, uint32_t child_lifetime_s,
                                          uint32_t dpd_s) {
    config::ike_settings s;
    s.version = 1;
    const std::string key = "many-sas-key";
    s.psks.push_back({"", bytes(key.begin(), key.end())});
    using pol = config::ike_settings::isakmp_policy;
    s.isakmp_policies = {pol{7, 128, 2, 19, 1, p1_lifetime_s}};
    s.esp_proposals = {{12, 128, 2, false}};
    s.child_lifetime_s = child_lifetime_s;
    s.dpd_interval_s = dpd_s;
    s.dpd_retries = 3;
    return s;
}

struct many_sas {
    std::unique_ptr<engine> i, r;
    std::map<uint32_t, uint32_t> tunnel_of;  // spoke address -> its tunnel on `i`
    time_point now = time_point{} + std::chrono::seconds(1000);
    size_t i_installs = 0, i_removes = 0, i_downs = 0, r_downs = 0, sent = 0;

    many_sas(uint32_t n, const config::ike_settings& s) {
        std::vector<tunnel_binding> tunnels;
        for (uint32_t k = 0; k < n; ++k) {
            const uint32_t addr = 0xc6336410 + k;
            tunnels.push_back({k, addr, "dmvpn"});
            tunnel_of[addr] = k;
        }
        i = make(s, std::move(tunnels));
        r = make(s, {{0, many_hub, "dmvpn"}});
    }
    static std::unique_ptr<engine> make(const config::ike_settings& s,
                                        std::vector<tunnel_binding> tunnels) {
        config::ipsec_profile p;
        p.name = "dmvpn";
        p.ike = s;
        auto e = engine::create({p}, std::move(tunnels));
        if (!e) {
            throw std::runtime_error(e.error());
        }
        return std::move(e.value());
    }
    std::vector<datagram> take(engine& e, outputs& o) {
        const bool ini = &e == i.get();
        for (auto& req : o.requests) {
            if (auto* in = std::get_if<install_child>(&req)) {
                i_installs += ini ? 1 : 0;
                e.installed(in->sa.id, now, o);
            } else if (std::holds_alternative<remove_child>(req)) {
                i_removes += ini ? 1 : 0;
            } else if (std::holds_alternative<peer_down>(req)) {
                (ini ? i_downs : r_downs) += 1;
            }
        }
        o.requests.clear();
        std::vector<datagram> out = std::move(o.send);
        o.send.clear();
        sent += out.size();
        return out;
    }
    void deliver(std::vector<datagram> q) {
        while (!q.empty()) {
            std::vector<datagram> next;
            for (auto& d : q) {
                const bool to_r = d.dst == many_hub;
                d.tunnel = to_r ? 0 : tunnel_of.at(d.dst);
                engine& dst = to_r ? *r : *i;
                outputs o;
                dst.on_datagram(d, now, o);
                for (auto& x : take(dst, o)) {
                    next.push_back(std::move(x));
                }
            }
            q = std::move(next);
        }
    }
    // Tunnels [from, to) initiate to the hub, one after the other.
    void key(uint32_t from, uint32_t to) {
        for (uint32_t k = from; k < to; ++k) {
            outputs o;
            i->initiate(k, many_hub, now, o);
            deliver(take(*i, o));
        }
    }
    // One tick of `e` at `now`, what it sends delivered.
    void tick(engine& e) {
        outputs o;
        e.tick(now, o);
        deliver(take(e, o));
    }
    // Both engines ticked every 10 ms (the IKE thread's pace) until `until`, inclusive.
    void run_until(time_point until) {
        while (now + std::chrono::milliseconds(10) <= until) {
            now += std::chrono::milliseconds(10);
            tick(*i);
            tick(*r);
        }
    }
    uint64_t runs() const { return i->counters().timer_runs + r->counters().timer_runs; }
};

}  // namespace dmvpn::ike::v1::testing
