// The engine's side of IKE fragmentation (RFC 7383): when to fragment what we send, and the
// peer's fragments verified, bounded and reassembled per IKE SA (fragments.hpp does the bytes).
#include "control/ike/ike_sa.hpp"

namespace dmvpn::ike {

using namespace detail;

std::optional<std::vector<bytes>> engine::impl::fragment_message(ike_sa& sa, const header& h,
                                                                 const chain& inner,
                                                                 size_t whole_size) {
    const profile_state* p = profile_of(sa);
    if (!sa.peer_fragmentation || p == nullptr || h.exch == exchange::ike_sa_init) {
        return std::nullopt;
    }
    // The marker is there whenever either end uses 4500 (NAT-T, or a peer that floats anyway).
    const uint16_t port = sa.local_port == 4500 || sa.peer_port == 4500 ? 4500 : 500;
    const size_t room = fragment_room(p->settings.fragment_size, port);
    if (whole_size <= room) {
        return std::nullopt;
    }
    const crypto::sk_keys& k = sa.initiator ? sa.keys.initiator : sa.keys.responder;
    auto fragments = protect_fragments(k, h, inner, room);
    if (fragments) {
        c.fragments_tx += fragments->size();
    }
    return fragments;
}

std::optional<wire::result<std::vector<payload>, parse_error>> engine::impl::take_fragment(
    ike_sa& sa, const message& m, std::span<const uint8_t> raw, time_point now) {
    ++c.fragments_rx;
    if (!sa.peer_fragmentation) {
        ++c.fragments_dropped;  // not negotiated (RFC 7383 section 2.3)
        return std::nullopt;
    }
    reassembly& r = m.hdr.is_response() ? sa.frag_response : sa.frag_request;
    const crypto::sk_keys& k = sa.initiator ? sa.keys.responder : sa.keys.initiator;
    const size_t before = r.held();
    const size_t room = fragment_memory - std::min(fragment_memory, fragment_bytes);
    const auto v = r.add(k, m, raw, room, now);
    std::optional<reassembly::whole> whole;
    if (v == reassembly::verdict::complete) {
        whole = r.take();
    }
    fragment_bytes = fragment_bytes - before + r.held();
    switch (v) {
        case reassembly::verdict::stored:
        case reassembly::verdict::duplicate:
            return std::nullopt;
        case reassembly::verdict::forged:
            ++c.fragments_invalid;
            ++c.dropped;  // as an SK message whose integrity fails (RFC 7296 section 2.21)
            return std::nullopt;
        case reassembly::verdict::refused:
            ++c.fragments_dropped;
            return std::nullopt;
        case reassembly::verdict::complete:
            break;
    }
    ++c.fragments_reassembled;
    return parse_payloads(whole->first, whole->chain);
}

bool engine::impl::retransmitted_request(ike_sa& sa, const message& m,
                                         std::span<const uint8_t> raw) {
    ++c.fragments_rx;
    const auto& f = std::get<skf_payload>(m.payloads.back());
    if (!sa.peer_fragmentation || f.number != 1) {
        return false;  // section 2.6.1: only fragment 1 makes the response go again
    }
    const crypto::sk_keys& k = sa.initiator ? sa.keys.responder : sa.keys.initiator;
    if (!open_fragment(k, m, raw)) {
        ++c.fragments_invalid;
        ++c.dropped;
        return false;
    }
    return true;
}

void engine::impl::drop_fragments(ike_sa& sa) {
    for (reassembly* r : {&sa.frag_request, &sa.frag_response}) {
        fragment_bytes -= std::min(fragment_bytes, r->held());
        r->clear();
    }
}

void engine::impl::fragment_timers(ike_sa& sa, time_point now) {
    for (reassembly* r : {&sa.frag_request, &sa.frag_response}) {
        if (r->active() && now - r->started() >= reassembly_timeout) {
            c.fragments_dropped += r->count();
            fragment_bytes -= std::min(fragment_bytes, r->held());
            r->clear();
        }
    }
}

}  // namespace dmvpn::ike
