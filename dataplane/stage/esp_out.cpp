// ESP-out stage (worker): GRE packets of adjacencies with an outbound SA, encrypted in place.
#include "dataplane/stage/esp_out.hpp"

#include <span>

#include "dataplane/adjacency.hpp"
#include "dataplane/stage/esp_common.hpp"
#include "dataplane/stage/natt.hpp"

namespace dmvpn::dp::stage {

uint16_t esp_out(rte_mbuf** pkts, uint16_t n, worker_ctx& ctx) noexcept {
    // Positions (in pkts) of the packets to encrypt. Any worker encrypts for any SA: each
    // packet claims its sequence number atomically (crypto::sa).
    uint16_t pos[max_burst];
    crypto::esp_packet views[max_burst];
    crypto::esp_status status[max_burst];
    crypto::sa* sa_of[max_burst];
    uint16_t k = 0;
    for (uint16_t i = 0; i < n; ++i) {
        crypto::sa* s = meta(pkts[i]).adj->out_sa;
        if (s != nullptr) {
            pos[k] = i;
            views[k] = esp_view(pkts[i]);
            status[k] = crypto::esp_status::engine_error;
            sa_of[k] = s;
            if (k < crypto::sa_prefetch_ahead) {
                s->prefetch();  // the burst call prefetches the rest
            }
            ++k;
        }
    }
    if (k == 0) {
        return n;
    }
    // One call into the crypto library for the whole burst: it prefetches the SAs ahead.
    if (ctx.engine != nullptr) {
        (void)crypto::encrypt_burst(*ctx.engine, std::span<crypto::sa* const>(sa_of, k),
                                    std::span(views, k), std::span(status, k));
    }
    uint16_t kept = 0;
    uint16_t j = 0;
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        if (j < k && pos[j] == i) {
            crypto::esp_status st = status[j];
            if (st != crypto::esp_status::ok) {
                ++j;
                ctx.drop(m, esp_drop_reason(st, false));
                continue;
            }
            esp_apply(m, views[j]);
            ++j;
            const adjacency* a = meta(m).adj;
            if (a->natt_dport != 0) [[unlikely]] {
                // A peer behind NAT: ESP in UDP (RFC 3948).
                if (!natt_add_udp(m, a->natt_sport, a->natt_dport)) {
                    ctx.drop(m, drop_reason::esp_encrypt_error);
                    continue;
                }
                ++ctx.counters.natt_out;
            }
        }
        pkts[kept++] = m;
    }
    return kept;
}

}  // namespace dmvpn::dp::stage
