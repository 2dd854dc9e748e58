// INFORMATIONAL (RFC 7296 sections 1.4, 2.4): DELETE of IKE and CHILD SAs, liveness checks
// (DPD), and the requests the engine queues on an IKE SA (window size 1).
#include "control/ike/ike_sa.hpp"

namespace dmvpn::ike {

using namespace detail;

void engine::impl::responder_informational(ike_sa& sa, uint32_t mid, const std::vector<payload>& in,
                                           time_point now, outputs& out) {
    std::vector<payload> reply;
    bool delete_ike = false;
    delete_payload ours;
    ours.protocol = protocol_id::esp;
    ours.spi_size = 4;
    for (const auto& p : in) {
        const auto* d = std::get_if<delete_payload>(&p);
        if (d == nullptr) {
            continue;
        }
        if (d->protocol == protocol_id::ike) {
            delete_ike = true;
            continue;
        }
        if (d->protocol != protocol_id::esp) {
            continue;
        }
        // Each SPI is the one the peer receives on: our outbound SPI of that pair.
        for (const auto& spi : d->spis) {
            uint32_t v = read32(spi);
            for (uint64_t cid : std::vector<uint64_t>(sa.children)) {
                const child& ch = children.at(cid);
                if (spi.size() == 4 && ch.sa.outbound.spi == v) {
                    ours.spis.push_back(be32(ch.sa.inbound.spi));
                    remove_child_state(
                        cid, ch.state == child_state::rekeyed ? "rekeyed" : "deleted by peer", out);
                }
            }
        }
    }
    if (delete_ike) {
        respond(sa, exchange::informational, mid, {}, out);
        destroy(sa, sa.retired ? "rekeyed" : "deleted by peer", out);
        return;
    }
    if (!ours.spis.empty()) {
        reply.emplace_back(std::move(ours));
    }
    respond(sa, exchange::informational, mid, reply, out);
    (void)now;
}

void engine::impl::informational_response(ike_sa& sa, outstanding& o,
                                          const std::vector<payload>& in, time_point now,
                                          outputs& out) {
    (void)in;
    (void)now;
    switch (o.kind) {
        case req_kind::delete_ike:
            destroy(sa, sa.retired ? "rekeyed" : "deleted", out);
            return;
        case req_kind::delete_child: {
            auto it = children.find(o.child);
            if (it != children.end()) {
                remove_child_state(
                    o.child,
                    it->second.state == child_state::rekeyed ? "rekeyed" : "lifetime expired", out);
            }
            return;
        }
        default:
            return;  // DPD: the peer lives (last_inbound was set)
    }
}

void engine::impl::build_request(ike_sa& sa, const queued_request& q, time_point now,
                                 outputs& out) {
    switch (q.kind) {
        case req_kind::dpd: {
            outstanding o;
            o.kind = req_kind::dpd;
            const profile_state* p = profile_of(sa);
            o.max_tries = p != nullptr && p->settings.dpd_retries > 0 ? p->settings.dpd_retries
                                                                      : retransmit_tries;
            send_request(sa, std::move(o), exchange::informational, {}, now, out);
            return;
        }
        case req_kind::delete_ike: {
            outstanding o;
            o.kind = req_kind::delete_ike;
            o.max_tries = 2;
            delete_payload d;
            d.protocol = protocol_id::ike;
            send_request(sa, std::move(o), exchange::informational, {d}, now, out);
            return;
        }
        case req_kind::delete_child: {
            auto it = children.find(q.child);
            if (it == children.end()) {
                return;
            }
            outstanding o;
            o.kind = req_kind::delete_child;
            o.child = q.child;
            delete_payload d;
            d.protocol = protocol_id::esp;
            d.spi_size = 4;
            d.spis.push_back(be32(it->second.sa.inbound.spi));
            send_request(sa, std::move(o), exchange::informational, {d}, now, out);
            return;
        }
        case req_kind::rekey_child:
            start_child_rekey(sa, q.child, now, out);
            return;
        case req_kind::rekey_ike:
            start_ike_rekey(sa, now, out);
            return;
        case req_kind::auth:
        case req_kind::sa_init:
            return;
    }
}

}  // namespace dmvpn::ike
