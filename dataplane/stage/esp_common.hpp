// Glue between mbufs and the crypto library's byte-buffer ESP API, shared by esp_in and esp_out.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>

#include "crypto/esp_transport.hpp"
#include "dataplane/drop_reason.hpp"

namespace dmvpn::dp::stage {

// The stages keep every packet in one segment (classify drops chains), so the first segment's
// data is the whole packet.
inline crypto::esp_packet esp_view(rte_mbuf* m) noexcept {
    return crypto::esp_packet{rte_pktmbuf_mtod(m, uint8_t*), m->data_len, rte_pktmbuf_headroom(m),
                              rte_pktmbuf_tailroom(m)};
}

// Turns the library's new data pointer and length back into mbuf offsets.
inline void esp_apply(rte_mbuf* m, const crypto::esp_packet& p) noexcept {
    m->data_off = static_cast<uint16_t>(p.data - static_cast<uint8_t*>(m->buf_addr));
    m->data_len = static_cast<uint16_t>(p.len);
    m->pkt_len = p.len;
}

inline drop_reason esp_drop_reason(crypto::esp_status s, bool decrypt) noexcept {
    using crypto::esp_status;
    switch (s) {
        case esp_status::replayed:
            return drop_reason::esp_replayed;
        case esp_status::outside_window:
        case esp_status::zero_sequence:
            return drop_reason::esp_outside_window;
        case esp_status::bad_icv:
            return drop_reason::esp_bad_icv;
        case esp_status::bad_padding:
            return drop_reason::esp_bad_padding;
        case esp_status::sa_expired:
            return drop_reason::esp_sa_expired;
        case esp_status::truncated:
        case esp_status::bad_cipher_length:
            return decrypt ? drop_reason::esp_truncated : drop_reason::esp_encrypt_error;
        case esp_status::dummy_packet:
            return drop_reason::esp_inner_not_gre;
        default:
            return decrypt ? drop_reason::esp_decrypt_error : drop_reason::esp_encrypt_error;
    }
}

}  // namespace dmvpn::dp::stage
