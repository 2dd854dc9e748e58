// Informational exchanges under an authenticated ISAKMP SA (RFC 2409 section 5.7): HASH(1) =
// prf(SKEYID_a, M-ID | N/D) checked in constant time; DELETE of the ISAKMP SA (peer_down
// unless a newer ISAKMP SA with the peer takes its IPsec SAs over) or of ESP SPIs
// (remove_child); DPD (RFC 3706): R-U-THERE answered with R-U-THERE-ACK and the same sequence
// number. A message ID seen before is a replay and is dropped.
#include <fmt/format.h>

#include <algorithm>

#include "control/ike/v1_sa.hpp"

namespace dmvpn::ike::v1 {

namespace {
constexpr size_t informational_ids_kept = 64;
}

void engine::impl::informational(p1_sa& sa, const message& m, time_point now, outputs& out) {
    const uint32_t mid = m.hdr.message_id;
    if (std::find(sa.seen_informational.begin(), sa.seen_informational.end(), mid) !=
        sa.seen_informational.end()) {
        ++cnt.dropped;
        return;
    }
    bytes iv = crypto::phase2_iv(sa.hash, sa.encr, sa.iv, mid);
    auto chain = open_hashed(sa, m, iv);
    if (!chain) {
        return;
    }
    sa.last_rx = now;
    sa.seen_informational.push_back(mid);
    if (sa.seen_informational.size() > informational_ids_kept) {
        sa.seen_informational.erase(sa.seen_informational.begin());
    }
    const uint64_t id = sa.id;
    for (const auto& p : chain->payloads) {
        if (const auto* n = std::get_if<notification_payload>(&p)) {
            if (n->type == notify_type::r_u_there && n->data.size() == 4) {
                notification_payload ack;
                ack.protocol = protocol_id::isakmp;
                ack.spi = cookies(sa);
                ack.type = notify_type::r_u_there_ack;
                ack.data = n->data;
                ++cnt.dpd_answered;
                send_informational(sa, ack, out);
            } else if (n->type == notify_type::r_u_there_ack) {
                dpd_ack(sa, *n);
            }
        } else if (const auto* del = std::get_if<delete_payload>(&p)) {
            ++cnt.deletes_rx;
            if (del->protocol == protocol_id::isakmp) {
                forget(id, "the peer deleted the ISAKMP SA", true, out);
                return;  // `sa` is gone
            }
            if (del->protocol != protocol_id::esp) {
                continue;
            }
            for (const bytes& s : del->spis) {
                if (s.size() != 4) {
                    continue;
                }
                const uint32_t spi =
                    (uint32_t(s[0]) << 24) | (uint32_t(s[1]) << 16) | (uint32_t(s[2]) << 8) | s[3];
                std::vector<uint64_t> gone;
                for (uint64_t cid : children_of(peer_key(sa.peer, sa.tunnel))) {
                    const child_rec& c = children.at(cid);
                    if (c.sa.peer == sa.peer && c.sa.tunnel == sa.tunnel &&
                        (c.sa.outbound.spi == spi || c.sa.inbound.spi == spi)) {
                        gone.push_back(cid);
                    }
                }
                for (uint64_t cid : gone) {
                    remove_child(cid, "the peer deleted the IPsec SA", out);
                }
            }
        }
    }
}

}  // namespace dmvpn::ike::v1
