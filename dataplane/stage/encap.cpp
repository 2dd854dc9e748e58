// GRE encap stage (worker): outer IPv4 + GRE in front of packets leaving through a tunnel.
#include "dataplane/stage/encap.hpp"

#include <cstring>

#include "dataplane/adjacency.hpp"
#include "dataplane/stage/ipv4.hpp"

namespace dmvpn::dp::stage {

namespace {

// Outer IPv4 (no options in a template) then GRE flags/version, then the protocol type.
constexpr uint32_t outer_gre_proto_offset = 20 + 2;

}  // namespace

uint16_t encap(rte_mbuf** pkts, uint16_t n, worker_ctx& ctx) noexcept {
    uint16_t kept = 0;
    // In a register for the burst (stores through byte pointers would force reloads).
    uint16_t next_id = ctx.ip_id;
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        const adjacency* a = meta(m).adj;
        if (a->kind != adj_kind::tunnel) {
            pkts[kept++] = m;
            continue;
        }
        const uint8_t* inner = rte_pktmbuf_mtod(m, const uint8_t*);
        bool other_proto = (meta(m).flags & meta_flag::gre_payload) != 0;
        bool inner_df = !other_proto && (wire::load_be16(inner + 6) & ip_flag_df) != 0;
        uint32_t total = m->pkt_len + a->l3_len;
        auto* hdr = reinterpret_cast<uint8_t*>(rte_pktmbuf_prepend(m, a->l3_len));
        if (hdr == nullptr) {
            ctx.drop(m, drop_reason::no_headroom);
            continue;
        }
        // Fixed-size copies for the two template lengths (inlined moves, not a memcpy call).
        if (a->l3_len == 28) {
            std::memcpy(hdr, a->l3, 28);
        } else if (a->l3_len == 24) {
            std::memcpy(hdr, a->l3, 24);
        } else {
            std::memcpy(hdr, a->l3, a->l3_len);
        }
        if (other_proto) {
            // The template says IPv4; the GRE header (outside the IPv4 checksum) follows the
            // template's 20-byte outer header.
            wire::store_be16(hdr + outer_gre_proto_offset, meta(m).aux);
        }
        uint16_t id = next_id++;
        // The template's checksum field holds the sum of its fixed words (adjacency.hpp).
        uint32_t sum = uint32_t{wire::load_be16(a->l3 + 10)} + total + id;
        if (a->df == df_policy::copy && inner_df) {
            // The template's flags word is 0 under the copy policy.
            wire::store_be16(hdr + 6, ip_flag_df);
            sum += ip_flag_df;
        }
        wire::store_be16(hdr + 2, static_cast<uint16_t>(total));
        wire::store_be16(hdr + 4, id);
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        wire::store_be16(hdr + 10, static_cast<uint16_t>(~sum));
        pkts[kept++] = m;
    }
    ctx.ip_id = next_id;
    return kept;
}

}  // namespace dmvpn::dp::stage
