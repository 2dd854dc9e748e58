// The IKEv2 engine's dispatch: datagrams to their IKE SA and exchange, the SK send and receive
// path, message IDs and the retransmit cache, timers. The exchanges live in sa_init.cpp,
// auth.cpp, child.cpp and informational.cpp.
#include "control/ike/engine.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "control/ike/ike_sa.hpp"
#include "control/ike/key_log.hpp"

namespace dmvpn::ike {

using namespace detail;

namespace detail {

std::string_view name(sa_state s) noexcept {
    switch (s) {
        case sa_state::init_sent:
            return "init-sent";
        case sa_state::half_open:
            return "half-open";
        case sa_state::auth_sent:
            return "auth-sent";
        case sa_state::established:
            return "established";
    }
    return "?";
}

bytes be32(uint32_t v) { return {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)}; }
bytes be64(uint64_t v) {
    bytes b(8);
    for (int i = 7; i >= 0; --i) {
        b[size_t(i)] = uint8_t(v);
        v >>= 8;
    }
    return b;
}
uint32_t read32(std::span<const uint8_t> b) {
    return b.size() < 4
               ? 0
               : (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3];
}
uint64_t read64(std::span<const uint8_t> b) {
    uint64_t v = 0;
    for (size_t i = 0; i < 8 && i < b.size(); ++i) {
        v = (v << 8) | b[i];
    }
    return v;
}
std::string ipv4_text(uint32_t a) {
    return fmt::format("{}.{}.{}.{}", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
}
bytes random_bytes(size_t n) {
    bytes b(n);
    if (!crypto::random_bytes(b)) {
        // Without randomness no SPI, nonce or key is safe: better to stop than to go on.
        std::abort();
    }
    return b;
}
const notify_payload* find_notify(const std::vector<payload>& ps, uint16_t type) {
    for (const auto& p : ps) {
        if (const auto* n = std::get_if<notify_payload>(&p); n != nullptr && n->type == type) {
            return n;
        }
    }
    return nullptr;
}
uint16_t error_notify(const std::vector<payload>& ps) {
    for (const auto& p : ps) {
        if (const auto* n = std::get_if<notify_payload>(&p); n != nullptr && n->type < 16384) {
            return n->type;
        }
    }
    return 0;
}
notify_payload notify(uint16_t type, bytes data) {
    notify_payload n;
    n.type = type;
    n.data = std::move(data);
    return n;
}
bytes id_body(const id_payload& id) {
    bytes b(4 + id.data.size(), 0);
    b[0] = id.type;
    std::copy(id.data.begin(), id.data.end(), b.begin() + 4);
    return b;
}
std::string identity_text(const id_payload& id) {
    switch (id.type) {
        case id_type::ipv4_addr:
            return id.data.size() == 4 ? ipv4_text(read32(id.data)) : std::string("?");
        case id_type::fqdn:
        case id_type::rfc822_addr:
        case id_type::key_id:
            return std::string(id.data.begin(), id.data.end());
        default: {
            std::string s = fmt::format("id{}:", id.type);
            for (uint8_t b : id.data) {
                s += fmt::format("{:02x}", b);
            }
            return s;
        }
    }
}
id_payload local_identity(const config::ike_settings& s, uint32_t local) {
    id_payload id;
    if (s.local_id.empty()) {
        id.type = id_type::ipv4_addr;
        id.data = be32(local);
    } else if (auto a = config::parse_ipv4(s.local_id)) {
        id.type = id_type::ipv4_addr;
        id.data = be32(a->value);
    } else {
        id.type = s.local_id.find('@') != std::string::npos ? id_type::rfc822_addr : id_type::fqdn;
        id.data.assign(s.local_id.begin(), s.local_id.end());
    }
    return id;
}

}  // namespace detail

// ---- state ----

const profile_state* engine::impl::profile_of(const ike_sa& sa) const {
    auto it = profiles.find(sa.profile);
    return it == profiles.end() ? nullptr : &it->second;
}

const profile_state* engine::impl::profile_for_tunnel(uint32_t tunnel) const {
    auto t = tunnels.find(tunnel);
    if (t == tunnels.end()) {
        return nullptr;
    }
    auto p = profiles.find(t->second.profile);
    return p == profiles.end() ? nullptr : &p->second;
}

ike_sa& engine::impl::new_sa(bool initiator, uint32_t tunnel, uint32_t peer,
                             const std::string& profile, time_point now) {
    auto sa = std::make_unique<ike_sa>();
    sa->id = next_sa_id++;
    sa->initiator = initiator;
    sa->tunnel = tunnel;
    sa->peer = peer;
    by_peer[peer_key(tunnel, peer)].push_back(sa->id);
    sa->profile = profile;
    sa->created = now;
    sa->last_inbound = now;
    uint64_t spi = new_ike_spi();
    (initiator ? sa->spi_i : sa->spi_r) = spi;
    by_spi[spi] = sa->id;
    touch(*sa);
    auto& ref = *sa;
    sas.emplace(sa->id, std::move(sa));
    return ref;
}

ike_sa* engine::impl::find_sa(uint64_t id) {
    auto it = sas.find(id);
    if (it == sas.end()) {
        return nullptr;
    }
    touch(*it->second);  // the caller may change its deadlines: re-armed at the call's end
    return it->second.get();
}

uint64_t engine::impl::new_ike_spi() {
    for (;;) {
        uint64_t spi = read64(random_bytes(8));
        if (spi != 0 && !by_spi.contains(spi)) {
            return spi;
        }
    }
}

uint32_t engine::impl::new_child_spi() {
    for (;;) {
        uint32_t spi = read32(random_bytes(4));
        // 1..255 are reserved (RFC 4303 section 2.1)
        if (spi > 255 && !by_child_spi.contains(spi)) {
            return spi;
        }
    }
}

void engine::impl::destroy(ike_sa& sa, std::string_view why, outputs& out) {
    drop_fragments(sa);
    for (uint64_t cid : std::vector<uint64_t>(sa.children)) {
        remove_child_state(cid, why, out);
    }
    if (sa.up) {
        // The peer is gone only with its last IKE SA: two hubs that initiated to each other at
        // once hold two, and one of them ending leaves the peer (and its NHRP state) up.
        std::span<const uint64_t> peers = peer_sas(sa.tunnel, sa.peer);
        bool another = std::any_of(peers.begin(), peers.end(), [&](uint64_t id) {
            auto o = sas.find(id);
            return id != sa.id && o != sas.end() && o->second->up;
        });
        if (!another) {
            out.requests.emplace_back(peer_down{sa.id, sa.tunnel, sa.peer, std::string(why)});
        }
        c.ike_sas_up -= c.ike_sas_up > 0 ? 1 : 0;
    } else if (sa.state == sa_state::half_open) {
        half_open -= half_open > 0 ? 1 : 0;
    } else if (sa.initiator && !sa.retired && !sa.abandoned) {
        out.requests.emplace_back(initiation_failed{sa.tunnel, sa.peer, std::string(why)});
    }
    c.half_open = half_open;
    by_spi.erase(sa.initiator ? sa.spi_i : sa.spi_r);
    if (!sa.initiator) {
        by_init.erase({sa.peer, sa.peer_port, sa.spi_i});
    }
    // The peer's port may have moved to 4500 since IKE_SA_INIT: the entry as it was made (or
    // handed over by retire()).
    if (sa.init_key) {
        if (auto it = by_init.find(*sa.init_key); it != by_init.end() && it->second == sa.id) {
            by_init.erase(it);
        }
    }
    if (auto n = by_peer.find(peer_key(sa.tunnel, sa.peer)); n != by_peer.end()) {
        std::erase(n->second, sa.id);
        if (n->second.empty()) {
            by_peer.erase(n);
        }
    }
    sas.erase(sa.id);
}

// ---- send path ----

header engine::impl::make_header(const ike_sa& sa, exchange e, bool response, uint32_t mid) const {
    header h;
    h.spi_i = sa.spi_i;
    h.spi_r = sa.spi_r;
    h.exch = e;
    h.flags = uint8_t((sa.initiator ? header_flag::initiator : 0) |
                      (response ? header_flag::response : 0));
    h.message_id = mid;
    return h;
}

void engine::impl::send_packets(const ike_sa& sa, const std::vector<bytes>& packets, outputs& out) {
    for (const auto& p : packets) {
        datagram d;
        d.src = sa.local;
        d.dst = sa.peer;
        d.sport = sa.local_port;
        d.dport = sa.peer_port;
        d.tunnel = sa.tunnel;
        d.payload = p;
        out.send.push_back(std::move(d));
        ++c.tx;
    }
}

std::optional<std::vector<bytes>> engine::impl::protect_message(ike_sa& sa, const header& hdr,
                                                                const std::vector<payload>& inner) {
    const crypto::sk_keys& k = sa.initiator ? sa.keys.initiator : sa.keys.responder;
    chain ch = serialize_payloads(inner);
    size_t body = ch.data.size() + crypto::protected_size(k, ch.data.size());
    size_t total = header_size + generic_payload_header_size + body;
    if (auto fragments = fragment_message(sa, hdr, ch, total)) {
        return fragments;
    }
    if (total > max_message_size) {
        return std::nullopt;
    }
    header h = hdr;
    h.next = payload_type::sk;
    h.length = uint32_t(total);
    bytes msg = serialize_header(h);
    size_t sk_len = generic_payload_header_size + body;
    msg.push_back(uint8_t(ch.first));
    msg.push_back(0);
    msg.push_back(uint8_t(sk_len >> 8));
    msg.push_back(uint8_t(sk_len));
    auto enc = crypto::protect(k, msg, ch.data);
    if (!enc || msg.size() + enc->size() != total) {
        return std::nullopt;
    }
    msg.insert(msg.end(), enc->begin(), enc->end());
    return std::vector<bytes>{std::move(msg)};
}

std::optional<wire::result<std::vector<payload>, parse_error>> engine::impl::open_message(
    ike_sa& sa, const message& m, std::span<const uint8_t> raw) {
    const sk_payload* sk =
        m.payloads.empty() ? nullptr : std::get_if<sk_payload>(&m.payloads.back());
    if (sk == nullptr || sk->body.size() > raw.size()) {
        return std::nullopt;
    }
    const crypto::sk_keys& k = sa.initiator ? sa.keys.responder : sa.keys.initiator;
    auto aad = raw.first(raw.size() - sk->body.size());
    auto plain = crypto::unprotect(k, aad, sk->body);
    if (!plain) {
        return std::nullopt;
    }
    return parse_payloads(sk->first_inner, *plain);
}

void engine::impl::respond(ike_sa& sa, exchange e, uint32_t mid, const std::vector<payload>& inner,
                           outputs& out) {
    auto packets = protect_message(sa, make_header(sa, e, true, mid), inner);
    sa.cached_response = packets ? std::move(*packets) : std::vector<bytes>{};
    sa.held = false;
    send_packets(sa, sa.cached_response, out);
}

void engine::impl::send_request(ike_sa& sa, outstanding o, exchange e,
                                const std::vector<payload>& inner, time_point now, outputs& out) {
    o.mid = sa.next_mid++;
    auto packets = protect_message(sa, make_header(sa, e, false, o.mid), inner);
    if (!packets) {
        ++c.dropped;
        return;
    }
    o.packets = std::move(*packets);
    o.next = now + retransmit_base;
    o.tries = 0;
    if (o.max_tries == 0) {
        o.max_tries = retransmit_tries;
    }
    send_packets(sa, o.packets, out);
    sa.out = std::move(o);
}

void engine::impl::enqueue(ike_sa& sa, queued_request q, time_point now, outputs& out) {
    sa.queue.push_back(q);
    pump(sa, now, out);
}

void engine::impl::pump(ike_sa& sa, time_point now, outputs& out) {
    while (!sa.out && !sa.queue.empty() && sa.state == sa_state::established) {
        queued_request q = sa.queue.front();
        sa.queue.pop_front();
        uint64_t id = sa.id;
        build_request(sa, q, now, out);
        if (find_sa(id) == nullptr) {
            return;
        }
    }
}

// ---- receive path ----

void engine::impl::answer_invalid_spi(const datagram& d, const header& h, time_point now,
                                      outputs& out) {
    if (now - invalid_spi_window >= seconds(1)) {
        invalid_spi_window = now;
        invalid_spi_sent = 0;
    }
    if (invalid_spi_sent >= invalid_spi_replies_per_s) {
        return;
    }
    ++invalid_spi_sent;
    // Section 2.21.4: an unprotected INFORMATIONAL with the message's SPIs and Message ID.
    message r;
    r.hdr = h;
    r.hdr.exch = exchange::informational;
    r.hdr.flags = header_flag::response;  // we are not the original initiator of a known SA
    r.payloads.emplace_back(notify(notify_type::invalid_ike_spi));
    datagram o;
    o.src = d.dst;
    o.dst = d.src;
    o.sport = d.dport;
    o.dport = d.sport;
    o.tunnel = d.tunnel;
    o.payload = serialize(r);
    out.send.push_back(std::move(o));
    ++c.tx;
}

void engine::impl::on_request(ike_sa& sa, const datagram& d, const message& m, time_point now,
                              outputs& out) {
    uint32_t mid = m.hdr.message_id;
    const bool fragment = is_fragment(m);
    if (sa.cached_mid && mid == *sa.cached_mid) {
        // A retransmission: the same answer, no new state (section 2.1). A held answer leaves
        // once its CHILD_SA is installed.
        if (fragment) {
            if (retransmitted_request(sa, m, d.payload) && !sa.held) {
                ++c.duplicates_answered;
                send_packets(sa, sa.cached_response, out);
            }
        } else if (d.payload == sa.cached_request && !sa.held) {
            ++c.duplicates_answered;
            send_packets(sa, sa.cached_response, out);
        } else {
            ++c.dropped;
        }
        return;
    }
    if (mid != sa.recv_mid) {
        ++c.dropped;  // outside the window (section 2.3)
        return;
    }
    auto inner = fragment ? take_fragment(sa, m, d.payload, now) : open_message(sa, m, d.payload);
    if (!inner) {
        c.dropped += fragment ? 0 : 1;  // integrity failed: silently dropped (section 2.21)
        return;
    }
    // A valid request: it defines where the peer is (section 2.23, NAT mapping changes).
    sa.peer_port = d.sport;
    sa.local_port = d.dport;
    sa.last_inbound = now;
    sa.recv_mid = mid + 1;
    sa.cached_mid = mid;
    sa.cached_request = fragment ? bytes{} : d.payload;  // fragments: see retransmitted_request
    sa.cached_response.clear();
    if (!*inner) {
        ++c.invalid_syntax;
        respond(sa, m.hdr.exch, mid, {notify(notify_type::invalid_syntax)}, out);
        if (m.hdr.exch == exchange::ike_auth) {
            destroy(sa, "invalid syntax", out);
        }
        return;
    }
    switch (m.hdr.exch) {
        case exchange::ike_auth:
            if (sa.state != sa_state::half_open) {
                ++c.dropped;
                return;
            }
            responder_auth(sa, **inner, now, out);
            return;
        case exchange::create_child_sa:
            if (sa.state != sa_state::established) {
                ++c.dropped;
                return;
            }
            responder_create_child(sa, mid, **inner, now, out);
            return;
        case exchange::informational:
            if (sa.state != sa_state::established && sa.state != sa_state::half_open) {
                ++c.dropped;
                return;
            }
            responder_informational(sa, mid, **inner, now, out);
            return;
        case exchange::ike_sa_init:
            ++c.dropped;
            return;
    }
    ++c.dropped;
}

void engine::impl::on_response(ike_sa& sa, const datagram& d, const message& m, time_point now,
                               outputs& out) {
    if (!sa.out || m.hdr.message_id != sa.out->mid) {
        ++c.dropped;
        return;
    }
    if (sa.out->kind == req_kind::sa_init) {
        initiator_sa_init_response(sa, d, m, now, out);
        return;
    }
    const bool fragment = is_fragment(m);
    auto inner = fragment ? take_fragment(sa, m, d.payload, now) : open_message(sa, m, d.payload);
    if (!inner) {
        c.dropped += fragment ? 0 : 1;
        return;
    }
    sa.last_inbound = now;
    outstanding o = std::move(*sa.out);
    sa.out.reset();
    if (!*inner) {
        ++c.invalid_syntax;
        destroy(sa, "invalid syntax in a response", out);
        return;
    }
    uint64_t id = sa.id;
    switch (o.kind) {
        case req_kind::auth:
            initiator_auth_response(sa, **inner, now, out);
            break;
        case req_kind::rekey_child:
            child_rekey_response(sa, o, **inner, now, out);
            break;
        case req_kind::rekey_ike:
            ike_rekey_response(sa, o, **inner, now, out);
            break;
        case req_kind::dpd:
        case req_kind::delete_ike:
        case req_kind::delete_child:
            informational_response(sa, o, **inner, now, out);
            break;
        case req_kind::sa_init:
            break;
    }
    if (auto* s = find_sa(id)) {
        pump(*s, now, out);
    }
}

// ---- timers ----

void engine::impl::sa_timers(ike_sa& sa, time_point now, outputs& out) {
    fragment_timers(sa, now);
    if (sa.state == sa_state::half_open && !sa.held && now - sa.created >= half_open_timeout) {
        destroy(sa, "half-open expired", out);
        return;
    }
    if (sa.out && now >= sa.out->next) {
        if (sa.out->tries >= sa.out->max_tries) {
            ++c.ike_sas_failed;
            destroy(sa, sa.out->kind == req_kind::dpd ? "dead peer detected" : "peer not answering",
                    out);
            return;
        }
        ++sa.out->tries;
        ++c.retransmits;
        sa.out->next = now + retransmit_base * (1 << std::min<uint32_t>(sa.out->tries, 6));
        send_packets(sa, sa.out->packets, out);
    }
    if (sa.state != sa_state::established) {
        return;
    }
    if (sa.retired) {
        if (now >= sa.expire_at) {
            destroy(sa, "rekeyed", out);
        }
        return;
    }
    const profile_state* p = profile_of(sa);
    if (p != nullptr && p->settings.dpd_interval_s > 0 && !sa.out && sa.queue.empty() &&
        now - sa.last_inbound >= seconds(p->settings.dpd_interval_s)) {
        enqueue(sa, {req_kind::dpd, 0}, now, out);
    }
    // Behind a NAT, the 0xff keepalive keeps its mapping of our UDP 4500 open (section 2.23);
    // the first goes an interval after the SA is up.
    if (p != nullptr && sa.nat_local && p->settings.nat_keepalive_s > 0 && now >= sa.keepalive_at) {
        if (sa.keepalive_at != time_point{}) {
            ++c.nat_keepalives_tx;
            send_packets(sa, {bytes{0xff}}, out);
            --c.tx;  // not an IKE message
        }
        sa.keepalive_at = now + seconds(p->settings.nat_keepalive_s);
    }
    uint64_t id = sa.id;
    child_timers(sa, now, out);
    if (find_sa(id) == nullptr) {
        return;
    }
    if (now >= sa.expire_at) {
        destroy(sa, "IKE SA lifetime expired", out);
        return;
    }
    if (!sa.rekey_started && now >= sa.rekey_at) {
        sa.rekey_started = true;
        enqueue(sa, {req_kind::rekey_ike, 0}, now, out);
    }
}

std::optional<time_point> engine::impl::next_deadline(const ike_sa& sa) const {
    // Mirrors sa_timers() and child_timers(): each condition they act on, as the time it
    // becomes true (or `last_now` when it already is).
    std::optional<time_point> best;
    auto at = [&best](time_point t) {
        if (!best || t < *best) {
            best = t;
        }
    };
    for (const reassembly* r : {&sa.frag_request, &sa.frag_response}) {
        if (r->active()) {
            at(r->started() + reassembly_timeout);
        }
    }
    if (sa.state == sa_state::half_open && !sa.held) {
        at(sa.created + half_open_timeout);
    }
    if (sa.out) {
        at(sa.out->next);
    }
    if (sa.state != sa_state::established) {
        return best;
    }
    at(sa.expire_at);
    if (sa.retired) {
        return best;
    }
    if (!sa.rekey_started) {
        at(sa.rekey_at);
    }
    const profile_state* p = profile_of(sa);
    if (p == nullptr) {
        return best;
    }
    if (p->settings.dpd_interval_s > 0 && !sa.out && sa.queue.empty()) {
        at(sa.last_inbound + seconds(p->settings.dpd_interval_s));
    }
    if (sa.nat_local && p->settings.nat_keepalive_s > 0) {
        at(sa.keepalive_at == time_point{} ? last_now : sa.keepalive_at);
    }
    for (uint64_t cid : sa.children) {
        auto it = children.find(cid);
        if (it == children.end()) {
            continue;
        }
        const child& ch = it->second;
        if (ch.state == child_state::installing) {
            at(ch.created + install_timeout);
        } else if (ch.state == child_state::installed) {
            at(ch.expire_at);
            if (!ch.rekey_started) {
                at(soft_limit_reached(p->settings, ch) ? last_now : ch.rekey_at);
            }
        }
    }
    return best;
}

void engine::impl::touch(ike_sa& sa) {
    if (!sa.touched) {
        sa.touched = true;
        touched.push_back(sa.id);
    }
}

void engine::impl::arm_touched() {
    for (uint64_t id : touched) {
        auto it = sas.find(id);
        if (it == sas.end()) {
            continue;  // destroyed in the meantime: its entries are dropped when due
        }
        ike_sa& sa = *it->second;
        sa.touched = false;
        if (auto when = next_deadline(sa)) {
            arm_timer(wheel, sa.id, sa.timer_tick, *when);
        }
    }
    touched.clear();
}

void engine::impl::run_timers(time_point now, outputs& out) {
    collect_due(
        wheel, now,
        [this](uint64_t id) -> uint64_t* {
            auto it = sas.find(id);
            return it == sas.end() ? nullptr : &it->second->timer_tick;
        },
        due);
    // Run after the walk, so that what they arm lands in the next tick, never this one.
    for (uint64_t id : due) {
        if (ike_sa* sa = find_sa(id)) {
            ++c.sa_timer_runs;
            sa_timers(*sa, now, out);
        }
    }
    due.clear();
    arm_touched();
}

// ---- the public face ----

engine::engine(std::unique_ptr<impl> i) : _impl(std::move(i)) {}
engine::~engine() = default;

static std::optional<std::string> load_profiles(engine::impl& im,
                                                const std::vector<config::ipsec_profile>& profiles,
                                                std::vector<tunnel_binding> tunnels) {
    std::map<std::string, profile_state> loaded;
    for (const auto& p : profiles) {
        if (!p.ike) {
            continue;
        }
        profile_state s;
        s.name = p.name;
        s.settings = *p.ike;
        s.replay_window = p.replay_window;
        for (auto& k : s.settings.psks) {
            s.psks.push_back({k.peer, crypto::secret(k.key)});
            std::fill(k.key.begin(), k.key.end(), uint8_t(0));
            k.key.clear();
        }
        if (s.settings.auth == config::ike_auth::psk && s.psks.empty()) {
            return fmt::format("ipsec profile {}: ike: authentication psk without a key", p.name);
        }
        if (s.settings.auth == config::ike_auth::certificate) {
            if (auto err = load_certificates(s)) {
                return err;
            }
        }
        if (s.settings.proposals.empty() || s.settings.esp_proposals.empty()) {
            return fmt::format("ipsec profile {}: ike: no proposals", p.name);
        }
        for (const auto& pr : s.settings.proposals) {
            if (!crypto::supported_encr(pr.encr, pr.encr_bits) || !crypto::supported_prf(pr.prf) ||
                (pr.integ != 0 && !crypto::supported_integ(pr.integ)) || pr.groups.empty()) {
                return fmt::format("ipsec profile {}: ike: proposal not supported", p.name);
            }
            for (uint16_t g : pr.groups) {
                if (!crypto::supported_group(g)) {
                    return fmt::format("ipsec profile {}: ike: DH group {} not supported", p.name,
                                       g);
                }
            }
        }
        loaded.emplace(p.name, std::move(s));
    }
    std::map<uint32_t, tunnel_binding> bound;
    for (auto& t : tunnels) {
        if (!loaded.contains(t.profile)) {
            return fmt::format("tunnel {}: ipsec profile {} has no ike section", t.tunnel,
                               t.profile);
        }
        bound[t.tunnel] = std::move(t);
    }
    im.profiles = std::move(loaded);
    im.tunnels = std::move(bound);
    return std::nullopt;
}

wire::result<std::unique_ptr<engine>, std::string> engine::create(
    const std::vector<config::ipsec_profile>& profiles, std::vector<tunnel_binding> tunnels) {
    auto im = std::make_unique<impl>();
    if (auto err = load_profiles(*im, profiles, std::move(tunnels))) {
        return wire::fail(*err);
    }
    return std::unique_ptr<engine>(new engine(std::move(im)));
}

std::optional<std::string> engine::reconfigure(const std::vector<config::ipsec_profile>& profiles,
                                               std::vector<tunnel_binding> tunnels) {
    // Established SAs keep their negotiated state; their profile name now reads the new
    // settings for lifetimes and DPD, and new negotiations use the new ones.
    impl scratch;
    if (auto err = load_profiles(scratch, profiles, std::move(tunnels))) {
        return err;
    }
    _impl->profiles = std::move(scratch.profiles);
    _impl->tunnels = std::move(scratch.tunnels);
    // DPD intervals may have shortened: every SA's deadline is computed again (once).
    for (auto& [id, sa] : _impl->sas) {
        _impl->touch(*sa);
    }
    _impl->arm_touched();
    return std::nullopt;
}

static void receive(engine::impl& im, const datagram& d, time_point now, outputs& out) {
    im.last_now = now;
    if (d.payload.size() == 1 && d.payload[0] == 0xff) {
        return;  // NAT keepalive (RFC 3948 section 2.3)
    }
    ++im.c.rx;
    auto m = parse(d.payload);
    if (!m) {
        ++im.c.invalid_syntax;
        ++im.c.dropped;
        return;
    }
    const header& h = m->hdr;
    if (h.exch == exchange::ike_sa_init && !h.is_response() && h.from_initiator() && h.spi_r == 0 &&
        h.message_id == 0) {
        im.responder_sa_init(d, *m, now, out);
        return;
    }
    // Our SPI is the responder's when the sender is the original initiator.
    uint64_t ours = h.from_initiator() ? h.spi_r : h.spi_i;
    auto it = im.by_spi.find(ours);
    ike_sa* sa = it == im.by_spi.end() ? nullptr : im.find_sa(it->second);
    if (sa != nullptr &&
        (sa->initiator == h.from_initiator() ||
         (sa->initiator ? sa->spi_r != 0 && sa->spi_r != h.spi_r : sa->spi_i != h.spi_i))) {
        sa = nullptr;  // the roles or the other SPI do not fit the SA we hold
    }
    if (sa == nullptr) {
        ++im.c.dropped;
        if (!h.is_response() && h.exch != exchange::ike_sa_init) {
            im.answer_invalid_spi(d, h, now, out);
        }
        return;
    }
    if (sa->peer != d.src) {
        ++im.c.dropped;  // section 2.23 lets the port change, not the address, without MOBIKE
        return;
    }
    if (h.is_response()) {
        im.on_response(*sa, d, *m, now, out);
    } else {
        im.on_request(*sa, d, *m, now, out);
    }
}

void engine::on_datagram(const datagram& d, time_point now, outputs& out) {
    receive(*_impl, d, now, out);
    _impl->arm_touched();
}

void engine::tick(time_point now, outputs& out) {
    auto& im = *_impl;
    im.last_now = now;
    if (!im.cookie_started || now - im.cookie_rotated >= cookie_rotation) {
        im.cookie_previous = std::move(im.cookie_secret);
        im.cookie_secret = crypto::secret(random_bytes(32));
        ++im.cookie_version;
        im.cookie_rotated = now;
        im.cookie_started = true;
    }
    im.run_timers(now, out);
}

void engine::installed(uint64_t child_id, time_point now, outputs& out) {
    _impl->confirm_installed(child_id, now, out);
    _impl->arm_touched();
}

void engine::impl::confirm_installed(uint64_t child_id, time_point now, outputs& out) {
    auto it = children.find(child_id);
    if (it == children.end()) {
        return;
    }
    child& ch = it->second;
    if (ch.state == child_state::installing) {
        ch.state = child_state::installed;
    }
    ike_sa* sa = find_sa(ch.sa.ike_sa_id);
    if (sa == nullptr) {
        return;
    }
    if (sa->held && sa->held_child == child_id) {
        sa->held = false;
        send_packets(*sa, sa->cached_response, out);
    }
    if (ch.sa.replaces) {
        auto old = children.find(*ch.sa.replaces);
        // The side that started the rekey deletes the old pair once the new one is in.
        if (old != children.end() && ch.we_initiated && old->second.replaced_by == child_id &&
            old->second.state == child_state::rekeyed) {
            enqueue(*sa, {req_kind::delete_child, old->first}, now, out);
        }
    } else {
        drop_duplicate(*sa, now, out);
    }
}

namespace {

// RFC 7296 section 2.8.1 compares nonces as octet strings.
bool nonce_less(const bytes& x, const bytes& y) {
    return std::lexicographical_compare(x.begin(), x.end(), y.begin(), y.end());
}

const bytes& low_nonce(const ike_sa& sa) { return nonce_less(sa.nr, sa.ni) ? sa.nr : sa.ni; }

bool deletion_under_way(const ike_sa& sa) {
    return (sa.out && sa.out->kind == req_kind::delete_ike) ||
           std::any_of(sa.queue.begin(), sa.queue.end(),
                       [](const queued_request& q) { return q.kind == req_kind::delete_ike; });
}

// Up at both ends: a responder's SA counts once its held IKE_AUTH response left (the peer
// then holds it too), so deleting the other never leaves the peer without an SA.
bool live(const ike_sa& sa) {
    return sa.up && !sa.held && sa.state == sa_state::established && !sa.retired &&
           !deletion_under_way(sa);
}

}  // namespace

// Two hubs that initiated to each other at once hold two IKE SAs (one each way), each with its
// CHILD_SA. Once both are up here, the redundant one goes: of the two, the SA whose exchange
// had the lower nonce (section 2.8.1's rule for simultaneous rekeys), deleted by the end that
// initiated it. Both ends know all four nonces, so both pick the same SA, and only one end
// sends the DELETE. The survivor's CHILD_SA carries on: the hub drains the deleted pair's
// inbound SA, and the peer stays up (peer_down only goes with its last IKE SA).
void engine::impl::drop_duplicate(ike_sa& sa, time_point now, outputs& out) {
    if (!live(sa)) {
        return;
    }
    std::vector<ike_sa*> doomed;
    for (uint64_t id : peer_sas(sa.tunnel, sa.peer)) {
        auto it = sas.find(id);
        if (id == sa.id || it == sas.end()) {
            continue;
        }
        ike_sa* o = it->second.get();
        if (o->initiator == sa.initiator || !live(*o)) {
            continue;
        }
        ike_sa* low = nonce_less(low_nonce(*o), low_nonce(sa)) ? o : &sa;
        if (low->initiator) {
            doomed.push_back(low);
        }
    }
    for (ike_sa* d : doomed) {
        if (!deletion_under_way(*d)) {
            ++c.duplicates_deleted;
            enqueue(*d, {req_kind::delete_ike, 0}, now, out);
        }
    }
}

// The peer keyed us (we answered its IKE_AUTH) while our own initiation to it still waits for
// its IKE_SA_INIT answer: a hub behind a NAT initiates to us, and what we send to its public
// address finds no mapping there; or both ends started at once and our IKE_SA_INIT was lost.
// Retransmitting it for a minute would only show the peer as negotiating: our initiation goes
// now. It holds nothing the peer shares (no answer came: at most a half-open SA there, which the
// peer lets expire; a late answer finds no SA here and is dropped). An initiation past
// IKE_SA_INIT goes on: the peer holds it too, and drop_duplicate settles the two once both
// are up.
void engine::impl::abandon_initiations(const ike_sa& sa, outputs& out) {
    std::vector<uint64_t> pending;
    for (uint64_t id : peer_sas(sa.tunnel, sa.peer)) {  // the peer's SAs only, no walk
        auto it = sas.find(id);  // read only: not find_sa(), which marks the SA to re-arm
        const ike_sa* o = it == sas.end() ? nullptr : it->second.get();
        if (id != sa.id && o != nullptr && o->initiator && o->state == sa_state::init_sent) {
            pending.push_back(id);
        }
    }
    for (uint64_t id : pending) {
        if (ike_sa* o = find_sa(id)) {
            o->abandoned = true;
            ++c.initiations_abandoned;
            destroy(*o, "the peer keyed us first", out);
        }
    }
}

void engine::install_failed(uint64_t child_id, std::string why, time_point now, outputs& out) {
    _impl->not_installed(child_id, why, now, out);
    _impl->arm_touched();
}

void engine::impl::not_installed(uint64_t child_id, std::string_view why, time_point now,
                                 outputs& out) {
    auto it = children.find(child_id);
    if (it == children.end()) {
        return;
    }
    ike_sa* sa = find_sa(it->second.sa.ike_sa_id);
    if (sa != nullptr && sa->held && sa->held_child == child_id) {
        // The answer still waits: send it without the CHILD_SA.
        std::vector<payload> inner = sa->held_base;
        inner.emplace_back(notify(notify_type::no_additional_sas));
        remove_child_state(child_id, why, out);
        respond(*sa, sa->held_exchange, *sa->cached_mid, inner, out);
        return;
    }
    if (sa != nullptr && sa->state == sa_state::established) {
        it->second.state = child_state::installed;  // so the DELETE names it
        enqueue(*sa, {req_kind::delete_child, child_id}, now, out);
        return;
    }
    remove_child_state(child_id, why, out);
}

void engine::usage(const std::vector<child_usage>& u, time_point now, outputs& out) {
    auto& im = *_impl;
    im.last_now = now;
    for (const auto& x : u) {
        auto it = im.children.find(x.id);
        if (it == im.children.end()) {
            continue;
        }
        child& ch = it->second;
        bool more_in = x.in_packets > ch.in_packets;
        bool moved = more_in || x.out_packets != ch.out_packets || x.in_bytes != ch.in_bytes ||
                     x.out_bytes != ch.out_bytes;
        ch.in_bytes = x.in_bytes;
        ch.in_packets = x.in_packets;
        ch.out_bytes = x.out_bytes;
        ch.out_packets = x.out_packets;
        // A counter that moved may reach a soft limit: find_sa() has the SA's timer re-armed.
        if (ike_sa* sa = moved ? im.find_sa(ch.sa.ike_sa_id) : nullptr; sa != nullptr && more_in) {
            sa->last_inbound = now;  // traffic came in: no DPD needed (section 2.4)
        }
    }
    im.arm_touched();
    (void)out;
}

void engine::initiate(uint32_t tunnel, uint32_t peer, time_point now, outputs& out) {
    _impl->initiator_start(tunnel, peer, now, out);
    _impl->arm_touched();
}

void engine::clear(uint32_t peer, time_point now, outputs& out) {
    auto& im = *_impl;
    std::vector<uint64_t> ids;
    for (const auto& [id, sa] : im.sas) {
        if (peer == 0 || sa->peer == peer) {
            ids.push_back(id);
        }
    }
    for (uint64_t id : ids) {
        ike_sa* sa = im.find_sa(id);
        if (sa == nullptr) {
            continue;
        }
        if (sa->state == sa_state::established) {
            // One DELETE, not waited for (section 1.4.1 lets the sender forget the SA).
            delete_payload del;
            del.protocol = protocol_id::ike;
            auto packets = im.protect_message(
                *sa, im.make_header(*sa, exchange::informational, false, sa->next_mid++), {del});
            if (packets) {
                im.send_packets(*sa, *packets, out);
            }
        }
        im.destroy(*sa, "cleared", out);
    }
    im.arm_touched();
    (void)now;
}

const engine_counters& engine::counters() const noexcept { return _impl->c; }

void engine::set_key_log(std::shared_ptr<keylog::writer> w) { _impl->key_log = std::move(w); }

void engine::impl::log_ike_keys(const detail::ike_sa& sa) const {
    if (key_log) {
        key_log->ike_sa(sa.spi_i, sa.spi_r, sa.keys);
    }
}

}  // namespace dmvpn::ike
