// ESP-in stage (worker): ESP transport to the hub's NBMA address, decrypted in place.
#include "dataplane/stage/esp_in.hpp"

#include <span>

#include "dataplane/spi_table.hpp"
#include "dataplane/stage/esp_common.hpp"
#include "dataplane/stage/ipv4.hpp"

namespace dmvpn::dp::stage {

namespace {

constexpr uint32_t esp_header_len = 8;  // SPI + sequence number (RFC 4303 section 2)

}  // namespace

uint16_t esp_in(rte_mbuf** pkts, uint16_t n, worker_ctx& ctx) noexcept {
    // With thousands of SAs the table slots are rarely cached: start every lookup's first slot
    // loading before the lookups.
    if (ctx.spis != nullptr) {
        for (uint16_t i = 0; i < n; ++i) {
            const uint8_t* ip = rte_pktmbuf_mtod(pkts[i], const uint8_t*);
            uint32_t ihl = ipv4_ihl(ip);
            if (pkts[i]->data_len >= ihl + esp_header_len) {
                ctx.spis->prefetch(wire::load_be32(ip + ihl));
            }
        }
    }
    // Find each packet's SA (caching the last SPI). Its replay window is this worker's alone as
    // long as all of the SA's packets arrive here (RSS on the outer addresses, dp::setup_port).
    inbound_sa sas[max_burst];
    uint16_t k = 0;
    inbound_sa last{};  // sa == nullptr: none cached
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        const uint8_t* ip = rte_pktmbuf_mtod(m, const uint8_t*);
        uint32_t ihl = ipv4_ihl(ip);
        if (m->data_len < ihl + esp_header_len) {
            ctx.drop(m, drop_reason::esp_truncated);
            continue;
        }
        uint32_t spi = wire::load_be32(ip + ihl);
        if (last.sa == nullptr || spi != last.spi) {
            last = ctx.spis != nullptr ? ctx.spis->find(spi) : inbound_sa{};
        }
        if (last.sa == nullptr) {
            ctx.drop(m, drop_reason::esp_unknown_spi);
            continue;
        }
        if (ctx.engine == nullptr) {
            ctx.drop(m, drop_reason::esp_decrypt_error);
            continue;
        }
        if (k < crypto::sa_prefetch_ahead) {
            last.sa->prefetch();  // the burst call prefetches the rest
        }
        sas[k] = last;
        pkts[k++] = m;
    }

    // One call into the crypto library for the whole burst: it prefetches the SAs ahead.
    crypto::esp_packet views[max_burst];
    crypto::esp_status status[max_burst];
    crypto::sa* sa_of[max_burst];
    for (uint16_t i = 0; i < k; ++i) {
        views[i] = esp_view(pkts[i]);
        sa_of[i] = sas[i].sa;
    }
    (void)crypto::decrypt_burst(*ctx.engine, std::span<crypto::sa* const>(sa_of, k),
                                std::span(views, k), std::span(status, k));

    uint16_t kept = 0;
    for (uint16_t i = 0; i < k; ++i) {
        rte_mbuf* m = pkts[i];
        if (status[i] != crypto::esp_status::ok) {
            ctx.drop(m, esp_drop_reason(status[i], true));
            continue;
        }
        esp_apply(m, views[i]);
        const uint8_t* ip = rte_pktmbuf_mtod(m, const uint8_t*);
        if (ip[9] != ip_proto_gre) {
            ctx.drop(m, drop_reason::esp_inner_not_gre);
            continue;
        }
        packet_meta& pm = meta(m);
        pm.tunnel = sas[i].tunnel;  // gre_decap checks the GRE key names this tunnel
        pm.flags =
            static_cast<uint8_t>(static_cast<uint8_t>(packet_class::gre) | meta_flag::was_esp);
        pkts[kept++] = m;
    }
    return kept;
}

}  // namespace dmvpn::dp::stage
