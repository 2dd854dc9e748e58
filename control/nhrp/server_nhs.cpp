// The hub as an NHRP client of its NHS peers (hub to hub): it registers its own overlay address
// with every `nhs` of a tunnel, as an IOS hub with `ip nhrp nhs` does, so that the other hubs
// hold it as a dynamic entry (and forward resolutions for its spokes to it), and it keeps the
// registration fresh every registration timeout. The server's other half (server.cpp) serves.
#include <algorithm>

#include "control/nhrp/server.hpp"
#include "control/nhrp/server_internal.hpp"
#include "dataplane/wire/ipv4.hpp"

namespace dmvpn::nhrp {

using detail::blank_extension;
using detail::from_ms;
using detail::ipv4_of;
using detail::originate;

namespace {

// Unanswered requests are retried at 1, 2, 4 ... seconds, never less often than this.
constexpr uint32_t max_backoff_s = 32;

}  // namespace

std::string_view name(nhs_state s) noexcept {
    switch (s) {
        case nhs_state::expecting:
            return "expecting";
        case nhs_state::responding:
            return "responding";
        case nhs_state::refused:
            return "refused";
    }
    return "?";
}

void server::register_with_nhs(outputs& out, int64_t now_ms) {
    for (nhs_client& n : _nhs) {
        if (now_ms < n.next_ms) {
            continue;
        }
        const tunnel_state& t = _tunnels[n.tunnel];
        const int64_t hold_ms = int64_t{t.cfg.holdtime_s} * 1000;
        if (n.state == nhs_state::responding &&
            (n.last_reply_ms < 0 || now_ms - n.last_reply_ms >= hold_ms)) {
            n.state = nhs_state::expecting;  // the NHS let our registration run out
        }
        send_nhs_registration(out, n, now_ms);
    }
}

void server::send_nhs_registration(outputs& out, nhs_client& n, int64_t now_ms) {
    const tunnel_state& t = _tunnels[n.tunnel];
    // Cisco's layout, as an IOS hub registers with its NHS: hop count 255, the NAT
    // extension naming the NHS as we address it (so the NHS sees a NAT on our side).
    packet p = originate(op::registration_request, wire::ipv4_bytes(t.cfg.nbma_address),
                         wire::ipv4_bytes(t.cfg.overlay_address), wire::ipv4_bytes(n.overlay));
    p.flags = flag::cisco_nat;
    n.request_id = ++_nhs_request_id;
    p.request_id = n.request_id;
    cie c;
    c.prefix_length = 32;
    c.mtu = t.cfg.mtu;
    c.holding_time = t.cfg.holdtime_s;
    p.cies.push_back(std::move(c));
    p.has_extension_area = true;
    p.extensions.push_back(blank_extension(ext::responder_address, true));
    p.extensions.push_back(blank_extension(ext::forward_transit, true));
    p.extensions.push_back(blank_extension(ext::reverse_transit, true));
    extension nat = blank_extension(ext::cisco_nat_address, false);
    cie peer;
    peer.prefix_length = 32;
    peer.mtu = t.cfg.mtu;
    peer.client_nbma = wire::ipv4_bytes(n.nbma);
    peer.client_proto = wire::ipv4_bytes(n.overlay);
    nat.cies.push_back(std::move(peer));
    p.extensions.push_back(std::move(nat));
    p.extensions.push_back(blank_extension(ext::end, true));
    put_authentication(t, p);
    send(out, n.tunnel, n.nbma, p);
    ++n.sent;
    if (n.unanswered_since_ms < 0) {
        n.unanswered_since_ms = now_ms;
    }
    // Until a reply says otherwise, the next request is a retry.
    n.next_ms = now_ms + int64_t{n.backoff_s} * 1000;
    n.backoff_s = std::min(n.backoff_s * 2, max_backoff_s);
}

void server::on_peer_registration(context& c, const packet& reply) {
    if (_nhs.empty() || reply.cies.empty() || reply.cies.front().code != cie_code::success) {
        return;
    }
    const std::optional<uint32_t> from = ipv4_of(reply.src_proto);
    for (nhs_client& n : _nhs) {
        if (n.tunnel != c.tunnel || n.nbma != c.outer_src || !from || n.overlay != *from) {
            continue;
        }
        // A peer hub that starts again forgets every registration, ours too, and numbers its
        // requests from 1 again; one that was away let its own registration here run out, or
        // left ours unanswered. Either way ours is gone there: register again now rather than
        // at the next refresh or retry.
        const bool seen = n.peer_seen_ms >= 0;
        const bool away = n.unanswered_since_ms >= 0 && c.now_ms - n.unanswered_since_ms > 1000;
        const bool restarted =
            seen && (reply.request_id <= n.peer_request_id || away ||
                     c.now_ms - n.peer_seen_ms > std::max<int64_t>(n.peer_hold_ms, 1000));
        n.peer_request_id = reply.request_id;
        n.peer_seen_ms = c.now_ms;
        n.peer_hold_ms = int64_t{reply.cies.front().holding_time} * 1000;
        if (restarted) {
            ++n.peer_restarts;
        }
        // Not answered yet and backing off: the peer is there now, ask (but not while a request
        // of ours went out within the last second: its reply is on its way).
        const bool waiting = n.state != nhs_state::responding && n.next_ms - c.now_ms > 1000;
        if (restarted || away || waiting) {
            n.backoff_s = 1;
            n.unanswered_since_ms = -1;  // a new attempt: `away` again only if it goes unanswered
            send_nhs_registration(c.out, n, c.now_ms);
        }
    }
}

outputs server::nhs_reachable(uint32_t tunnel_id, uint32_t nbma, timestamp now) {
    outputs out;
    auto ti = find_tunnel(tunnel_id);
    for (nhs_client& n : _nhs) {
        if (!ti || n.tunnel != *ti || n.nbma != nbma) {
            continue;
        }
        n.backoff_s = 1;
        n.unanswered_since_ms = -1;
        send_nhs_registration(out, n, detail::to_ms(now));
    }
    return out;
}

bool server::is_nhs(uint32_t tunnel_id, uint32_t nbma) const noexcept {
    auto ti = find_tunnel(tunnel_id);
    return ti && std::any_of(_nhs.begin(), _nhs.end(), [&](const nhs_client& n) {
               return n.tunnel == *ti && n.nbma == nbma;
           });
}

bool server::nhs_answering(const nhs_client& n, int64_t now_ms) const noexcept {
    // A request of ours unanswered for longer than the first retries: the peer is gone.
    constexpr int64_t grace_ms = 3000;
    return n.state == nhs_state::responding &&
           (n.unanswered_since_ms < 0 || now_ms - n.unanswered_since_ms < grace_ms);
}

bool server::forward_to_nhs_peer(context& c, packet& p) {
    const extension* transit = nullptr;
    for (const extension& e : p.extensions) {
        if (e.type == ext::forward_transit) {
            transit = &e;
        }
    }
    for (nhs_client& n : _nhs) {
        if (n.tunnel != c.tunnel) {
            continue;
        }
        // Not back to where it came from, nor to a hub it already crossed.
        bool seen = n.nbma == c.outer_src;
        if (transit != nullptr) {
            for (const cie& hop : transit->cies) {
                seen = seen || ipv4_of(hop.client_proto) == n.overlay;
            }
        }
        if (seen || !nhs_answering(n, c.now_ms)) {
            continue;
        }
        ++n.resolutions_forwarded;
        forward(c, p, c.tunnel, n.nbma, ext::forward_transit);
        return true;
    }
    return false;
}

void server::serve_registration_reply(context& c, const packet& p) {
    const tunnel_state& t = _tunnels[c.tunnel];
    auto it = std::find_if(_nhs.begin(), _nhs.end(), [&](const nhs_client& n) {
        return n.tunnel == c.tunnel && n.nbma == c.outer_src && n.request_id == p.request_id;
    });
    if (it == _nhs.end() || ipv4_of(p.src_proto) != t.cfg.overlay_address || p.cies.empty()) {
        drop(c.tunnel, drop_reason::unmatched_reply);  // not the answer to our latest request
        return;
    }
    nhs_client& n = *it;
    ++n.replies;
    n.request_id = 0;  // answered: a duplicate of this reply matches nothing
    n.last_code = p.cies.front().code;
    if (n.last_code == cie_code::success) {
        n.state = nhs_state::responding;
        n.last_reply_ms = c.now_ms;
        n.unanswered_since_ms = -1;
        n.backoff_s = 1;
        const uint32_t refresh_s = t.cfg.registration_timeout_s != 0
                                       ? t.cfg.registration_timeout_s
                                       : std::max<uint32_t>(t.cfg.holdtime_s / 3, 1);
        n.next_ms = c.now_ms + int64_t{refresh_s} * 1000;
        return;
    }
    // Refused (prohibited, no room, not unique): asked again on the retry schedule, as IOS
    // keeps registering with an NHS that turns it away.
    n.state = nhs_state::refused;
    ++n.failed;
}

std::vector<nhs_view> server::nhs() const {
    std::vector<nhs_view> out;
    out.reserve(_nhs.size());
    for (const nhs_client& n : _nhs) {
        const tunnel_state& t = _tunnels[n.tunnel];
        nhs_view v;
        v.tunnel = t.cfg.id;
        v.tunnel_name = t.cfg.name;
        v.overlay = n.overlay;
        v.nbma = n.nbma;
        v.state = n.state;
        v.requests_sent = n.sent;
        v.requests_failed = n.failed;
        v.replies = n.replies;
        v.last_code = n.last_code;
        if (n.last_reply_ms >= 0) {
            v.last_reply = from_ms(n.last_reply_ms);
        }
        v.next_request = from_ms(n.next_ms);
        v.peer_restarts = n.peer_restarts;
        v.resolutions_forwarded = n.resolutions_forwarded;
        v.answering = n.state == nhs_state::responding && n.unanswered_since_ms < 0;
        out.push_back(v);
    }
    return out;
}

}  // namespace dmvpn::nhrp
