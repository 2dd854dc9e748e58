#include "tools/spokesim/ike.hpp"

#include <chrono>
#include <cstdio>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include <fmt/format.h>

#include "control/ike/engine.hpp"
#include "control/ike/key_log.hpp"
#include "control/ike/message.hpp"
#include "control/ike/v1_dispatch.hpp"
#include "tools/spokesim/ike_config.hpp"

namespace dmvpn::spokesim {

namespace {

ike::time_point at(uint64_t now_us) { return ike::time_point(std::chrono::microseconds(now_us)); }

// The crypto library's parameters for one direction of a negotiated CHILD_SA; the keys stay in
// `k` (wiped when the request goes). The error says what the emulator cannot carry.
std::optional<std::string> to_params(const ike::child_sa& sa, const ike::esp_keys& k,
                                     crypto::sa_direction dir, crypto::sa_params& p) {
    p.spi = k.spi;
    p.direction = dir;
    if (sa.encr == ike::encr_id::aes_gcm_16) {
        p.cipher = crypto::cipher_alg::aes_gcm_16;
        p.integ = crypto::integ_alg::none;
    } else if (sa.encr == ike::encr_id::aes_cbc || sa.encr == ike::encr_id::des3) {
        p.cipher = sa.encr == ike::encr_id::des3 ? crypto::cipher_alg::des3_cbc
                                                 : crypto::cipher_alg::aes_cbc;
        if (sa.integ == ike::integ_id::hmac_sha1_96) {
            p.integ = crypto::integ_alg::hmac_sha1_96;
        } else if (sa.integ == ike::integ_id::hmac_sha2_256_128) {
            p.integ = crypto::integ_alg::hmac_sha256_128;
        } else if (sa.integ == ike::integ_id::hmac_md5_96) {
            p.integ = crypto::integ_alg::hmac_md5_96;
        } else {
            return fmt::format("ESP integrity {} is not one the dataplane has", sa.integ);
        }
        p.integ_key = k.integ_key.view();
    } else {
        return fmt::format("ESP cipher {} is not one the dataplane has", sa.encr);
    }
    p.cipher_key = k.cipher_key.view();
    p.esn = sa.esn;
    p.replay_window = sa.replay_window;
    p.anti_replay = true;
    p.lifetime.hard_bytes = sa.hard_bytes;
    p.lifetime.hard_packets = sa.hard_packets;
    return std::nullopt;
}

class engine_ike final : public ike_layer {
public:
    engine_ike(std::unique_ptr<ike::dual_handler> eng, esp_table& esp)
        : _eng(std::move(eng)), _esp(esp) {}

    void initiate(uint32_t local, ipv4 peer, uint64_t now_us) override {
        _eng->initiate(local, peer, at(now_us), _out);
        process(now_us);
    }

    void on_datagram(const ike_datagram& d, uint64_t now_us) override {
        ike::datagram in;
        in.src = d.src;
        in.dst = d.dst;
        in.sport = d.sport;
        in.dport = d.dport;
        in.tunnel = d.local;
        in.payload = d.payload;
        _eng->on_datagram(in, at(now_us), _out);
        process(now_us);
    }

    void tick(uint64_t now_us) override {
        _esp.expire(now_us);
        _eng->tick(at(now_us), _out);
        process(now_us);
    }

    void take(std::vector<ike_datagram>& send, std::vector<ike_event>& events) override {
        for (auto& d : _send) {
            send.push_back(std::move(d));
        }
        for (auto& e : _events) {
            events.push_back(std::move(e));
        }
        _send.clear();
        _events.clear();
    }

    ike_counts counts() const override {
        const ike::engine_counters c = _eng->counters();
        ike_counts k;
        k.ike_sas_up = c.ike_sas_up;
        k.child_sas = _installed;
        k.rekeys = c.rekeys;
        k.failures = c.ike_sas_failed + _install_failures;
        k.datagrams_in = c.rx;
        k.datagrams_out = c.tx;
        return k;
    }

private:
    // Everything the engine asked for, including what answering it makes it ask next.
    void process(uint64_t now_us) {
        while (!_out.send.empty() || !_out.requests.empty()) {
            std::vector<ike::datagram> send = std::move(_out.send);
            std::vector<ike::request> requests = std::move(_out.requests);
            _out.send.clear();
            _out.requests.clear();
            for (ike::datagram& d : send) {
                ike_datagram o;
                o.local = d.tunnel;
                o.src = d.src;
                o.dst = d.dst;
                o.sport = d.sport;
                o.dport = d.dport;
                o.payload = std::move(d.payload);
                _send.push_back(std::move(o));
            }
            for (ike::request& r : requests) {
                std::visit([&](auto& req) { handle(req, now_us); }, r);
            }
        }
    }

    void handle(ike::install_child& r, uint64_t now_us) {
        const ike::child_sa& sa = r.sa;
        if (auto why = install_child(_esp, sa.tunnel, sa)) {
            ++_install_failures;
            _eng->install_failed(sa.id, *why, at(now_us), _out);
            return;
        }
        ++_installed;
        _eng->installed(sa.id, at(now_us), _out);
        ike_event e;
        e.what = ike_event::kind::child_up;
        e.local = sa.tunnel;
        e.peer = sa.peer;
        e.rekey = sa.replaces.has_value();
        _events.push_back(std::move(e));
    }

    // A pair another one replaced keeps decrypting a while (ike::rekey_drain); tick() ends it.
    void handle(ike::remove_child& r, uint64_t now_us) { (void)_esp.retire(r.id, now_us); }

    void handle(ike::peer_up& r, uint64_t) {
        ike_event e;
        e.what = ike_event::kind::ike_up;
        e.local = r.tunnel;
        e.peer = r.peer;
        _events.push_back(std::move(e));
    }

    void handle(ike::peer_down& r, uint64_t) {
        ike_event e;
        e.what = ike_event::kind::peer_down;
        e.local = r.tunnel;
        e.peer = r.peer;
        e.why = std::move(r.why);
        _events.push_back(std::move(e));
    }

    // Its own retry timers notice a hub that never answers (ike_retry).
    void handle(ike::initiation_failed&, uint64_t) {}

    std::unique_ptr<ike::dual_handler> _eng;  // IKEv2 or, with --ike v1, IKEv1
    esp_table& _esp;
    ike::outputs _out;
    std::vector<ike_datagram> _send;
    std::vector<ike_event> _events;
    uint64_t _installed = 0;
    uint64_t _install_failures = 0;
};

}  // namespace

std::optional<std::string> install_child(esp_table& esp, uint32_t local, const ike::child_sa& sa) {
    if (sa.udp_encap) {
        // No NAT sits between the emulator and the hub, so none is ever detected.
        return std::string("UDP-encapsulated ESP: the emulator has no NAT to cross");
    }
    crypto::sa_params out;
    crypto::sa_params in;
    if (auto e = to_params(sa, sa.outbound, crypto::sa_direction::outbound, out)) {
        return e;
    }
    if (auto e = to_params(sa, sa.inbound, crypto::sa_direction::inbound, in)) {
        return e;
    }
    return esp.add(sa.id, local, sa.peer, out, in, sa.outbound_waits);
}

wire::result<std::unique_ptr<ike_layer>, std::string> make_ike_layer(const options& o,
                                                                     const topology& t,
                                                                     esp_table& esp) {
    auto plan = plan_ike(o, t);
    if (!plan) {
        return wire::fail(plan.error());
    }
    std::vector<ike::tunnel_binding> bindings;
    bindings.reserve(t.size());
    for (uint32_t i = 0; i < t.size(); ++i) {
        bindings.push_back({i, t.nbma_of(i), plan->profiles[plan->profile_of[i]].name});
    }
    auto eng = ike::dual_handler::create(plan->profiles, bindings);
    if (!eng) {
        return wire::fail(fmt::format("IKE: {}", eng.error()));
    }
    if (!o.key_log.empty()) {
        auto w = ike::keylog::writer::open(o.key_log);
        if (!w) {
            return wire::fail(fmt::format("--key-log: {}", w.error()));
        }
        std::shared_ptr<ike::keylog::writer> shared = std::move(w.value());
        if ((*eng)->v2() != nullptr) {
            (*eng)->v2()->set_key_log(shared);
        }
        if ((*eng)->v1() != nullptr) {
            (*eng)->v1()->set_key_log(shared);
        }
        std::fprintf(stderr, "dmvpn-spokesim: %s\n", ike::keylog::warning(o.key_log).c_str());
    }
    return std::unique_ptr<ike_layer>(std::make_unique<engine_ike>(std::move(*eng), esp));
}

}  // namespace dmvpn::spokesim
