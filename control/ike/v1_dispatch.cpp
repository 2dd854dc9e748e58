// The IKEv1/IKEv2 dispatch (see v1_dispatch.hpp).
#include "control/ike/v1_dispatch.hpp"

#include <fmt/format.h>

#include "control/ike/show.hpp"

namespace dmvpn::ike {

dual_handler::dual_handler(std::unique_ptr<engine> v2, std::unique_ptr<v1::engine> v1,
                           const std::vector<config::ipsec_profile>& profiles,
                           const std::vector<tunnel_binding>& tunnels)
    : _v2(std::move(v2)), _v1(std::move(v1)) {
    bind(profiles, tunnels);
}

wire::result<std::unique_ptr<dual_handler>, std::string> dual_handler::create(
    const std::vector<config::ipsec_profile>& profiles,
    const std::vector<tunnel_binding>& tunnels) {
    bool any_v1 = false, any_v2 = false;
    for (const tunnel_binding& b : tunnels) {
        for (const auto& p : profiles) {
            if (p.name == b.profile && p.ike) {
                any_v1 = any_v1 || p.ike->speaks_v1();
                any_v2 = any_v2 || p.ike->speaks_v2();
            }
        }
    }
    std::unique_ptr<engine> e2;
    std::unique_ptr<v1::engine> e1;
    if (any_v2) {
        auto e = engine::create(profiles, tunnels);
        if (!e) {
            return wire::fail(fmt::format("IKEv2: {}", e.error()));
        }
        e2 = std::move(e.value());
    }
    if (any_v1) {
        auto e = v1::engine::create(profiles, tunnels);
        if (!e) {
            return wire::fail(fmt::format("IKEv1: {}", e.error()));
        }
        e1 = std::move(e.value());
    }
    return std::make_unique<dual_handler>(std::move(e2), std::move(e1), profiles, tunnels);
}

void dual_handler::bind(const std::vector<config::ipsec_profile>& profiles,
                        const std::vector<tunnel_binding>& tunnels) {
    _version.clear();
    for (const tunnel_binding& b : tunnels) {
        for (const auto& p : profiles) {
            if (p.name == b.profile && p.ike) {
                _version[b.tunnel] = p.ike->version;
            }
        }
    }
}

void dual_handler::on_datagram(const datagram& d, time_point now, outputs& out) {
    // A NAT keepalive (one 0xff octet) carries no version: IKEv2's engine ignores it too.
    if (d.payload.size() == 1 && d.payload[0] == 0xff) {
        if (_v2) {
            _v2->on_datagram(d, now, out);
        } else if (_v1) {
            _v1->on_datagram(d, now, out);
        }
        return;
    }
    constexpr size_t version_offset = 17;  // after both SPIs and Next Payload
    auto v = _version.find(d.tunnel);
    if (d.payload.size() <= version_offset || v == _version.end()) {
        ++_refused;
        return;
    }
    const uint8_t major = d.payload[version_offset] >> 4;
    const uint8_t want = v->second;
    const bool any = want == config::ike_settings::ike_version_any;
    if (major == 1 && _v1 && (any || want == 1)) {
        _v1->on_datagram(d, now, out);
    } else if (major == 2 && _v2 && (any || want == 2)) {
        _v2->on_datagram(d, now, out);
    } else {
        ++_refused;
    }
}

void dual_handler::tick(time_point now, outputs& out) {
    if (_v2) {
        _v2->tick(now, out);
    }
    if (_v1) {
        _v1->tick(now, out);
    }
}

void dual_handler::installed(uint64_t id, time_point now, outputs& out) {
    if (v1::engine::owns(id)) {
        if (_v1) {
            _v1->installed(id, now, out);
        }
    } else if (_v2) {
        _v2->installed(id, now, out);
    }
}

void dual_handler::install_failed(uint64_t id, std::string why, time_point now, outputs& out) {
    if (v1::engine::owns(id)) {
        if (_v1) {
            _v1->install_failed(id, std::move(why), now, out);
        }
    } else if (_v2) {
        _v2->install_failed(id, std::move(why), now, out);
    }
}

void dual_handler::usage(const std::vector<child_usage>& u, time_point now, outputs& out) {
    if (_v2) {
        _v2->usage(u, now, out);  // each engine looks only at its own pairs' ids
    }
    if (_v1) {
        _v1->usage(u, now, out);
    }
}

void dual_handler::initiate(uint32_t tunnel, uint32_t peer, time_point now, outputs& out) {
    // A profile that speaks IKEv1 alone initiates Main Mode; `any` initiates IKEv2.
    auto v = _version.find(tunnel);
    if (v == _version.end()) {
        return;
    }
    if (v->second == 1) {
        if (_v1) {
            _v1->initiate(tunnel, peer, now, out);
        }
    } else if (_v2) {
        _v2->initiate(tunnel, peer, now, out);
    }
}

void dual_handler::clear(uint32_t peer, time_point now, outputs& out) {
    if (_v2) {
        _v2->clear(peer, now, out);
    }
    if (_v1) {
        _v1->clear(peer, now, out);
    }
}

std::optional<std::string> dual_handler::reconfigure(
    const std::vector<config::ipsec_profile>& profiles, std::vector<tunnel_binding> tunnels) {
    // A reload that brings the first profile of a version starts that engine.
    bool any_v1 = false, any_v2 = false;
    for (const tunnel_binding& b : tunnels) {
        for (const auto& p : profiles) {
            if (p.name == b.profile && p.ike) {
                any_v1 = any_v1 || p.ike->speaks_v1();
                any_v2 = any_v2 || p.ike->speaks_v2();
            }
        }
    }
    if (any_v2 && !_v2) {
        auto e = engine::create(profiles, tunnels);
        if (!e) {
            return fmt::format("IKEv2: {}", e.error());
        }
        _v2 = std::move(e.value());
    }
    if (any_v1 && !_v1) {
        auto e = v1::engine::create(profiles, tunnels);
        if (!e) {
            return fmt::format("IKEv1: {}", e.error());
        }
        _v1 = std::move(e.value());
    }
    if (_v2) {
        if (auto err = _v2->reconfigure(profiles, tunnels)) {
            return err;
        }
    }
    if (_v1) {
        if (auto err = _v1->reconfigure(profiles, tunnels)) {
            return err;
        }
    }
    bind(profiles, tunnels);
    return std::nullopt;
}

std::string merge_views(const std::string& a, const std::string& b, const std::string& empty,
                        bool json) {
    if (b == empty) {
        return a;
    }
    if (a == empty) {
        return b;
    }
    if (!json) {
        return a + b;
    }
    // {"key": [rows]}: a's rows, then b's.
    const size_t a_end = a.rfind(']');
    const size_t b_open = b.find('[');
    const size_t b_end = b.rfind(']');
    if (a_end == std::string::npos || b_open == std::string::npos || b_end <= b_open) {
        return a;
    }
    return a.substr(0, a_end) + ", " + b.substr(b_open + 1, b_end - b_open - 1) + a.substr(a_end);
}

std::string dual_handler::show(std::string_view what, bool json) const {
    const auto f = json ? show::format::json : show::format::text;
    if (what == "isakmp sa" || what == "isakmp sa detail") {
        return _v1 ? _v1->show(what, json) : v1::show_no_isakmp(what, json);
    }
    if (!_v1) {
        return _v2 ? _v2->show(what, json) : std::string();
    }
    if (what == "ipsec sa" || what == "session") {
        const std::string empty = what == "ipsec sa" ? show::show_ipsec_sa(show::view{}, f)
                                                     : show::show_session(show::view{}, f);
        const std::string a = _v2 ? _v2->show(what, json) : empty;
        return merge_views(a, _v1->show(what, json), empty, json);
    }
    return _v2 ? _v2->show(what, json) : fmt::format("no IKEv2 profile: {}\n", what);
}

engine_counters dual_handler::counters() const {
    engine_counters c = _v2 ? _v2->counters() : engine_counters{};
    if (_v1) {
        const v1::engine_counters& o = _v1->counters();
        c.rx += o.rx;
        c.tx += o.tx;
        c.duplicates_answered += o.duplicates_answered;
        c.ike_sas_up += o.phase1_up;
        c.ike_sas_failed += o.phase1_failed;
        c.child_sas_up += o.quick_modes;
        c.auth_failed += o.auth_failed;
        c.no_proposal += o.no_proposal;
        c.invalid_syntax += o.invalid_syntax;
        c.half_open += o.half_open;
        c.nat_keepalives_tx += o.nat_keepalives_tx;
        c.duplicates_deleted += o.duplicates_deleted;
        c.initiations_abandoned += o.initiations_abandoned;
        c.dropped += o.dropped + o.aggressive_refused + o.exchange_refused;
    }
    c.dropped += _refused;
    return c;
}

}  // namespace dmvpn::ike
