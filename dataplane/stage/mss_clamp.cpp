// MSS clamp stage (worker): like "ip tcp adjust-mss" on the tunnel interface, in both directions.
#include "dataplane/stage/mss_clamp.hpp"

#include "dataplane/adjacency.hpp"
#include "dataplane/stage/ipv4.hpp"

namespace dmvpn::dp::stage {

namespace {

constexpr uint8_t tcp_flag_syn = 0x02;
constexpr uint8_t tcp_opt_end = 0;
constexpr uint8_t tcp_opt_nop = 1;
constexpr uint8_t tcp_opt_mss = 2;
constexpr uint32_t tcp_min_header = 20;

// The clamp that applies: the arrival tunnel's and the egress tunnel's, the smaller one wins.
uint16_t clamp_for(const packet_meta& pm, const topology* topo) noexcept {
    uint16_t mss = 0;
    if ((pm.flags & meta_flag::from_tunnel) != 0 && topo != nullptr &&
        pm.tunnel < topo->n_tunnels) {
        mss = topo->tunnels[pm.tunnel].tcp_mss;
    }
    if (pm.adj->kind == adj_kind::tunnel && pm.adj->tcp_mss != 0 &&
        (mss == 0 || pm.adj->tcp_mss < mss)) {
        mss = pm.adj->tcp_mss;
    }
    return mss;
}

// Rewrites the MSS option of a TCP SYN when it exceeds `clamp`; malformed options are left
// alone (the packet is forwarded unchanged, as the end host would judge it).
void clamp_syn(uint8_t* ip, uint32_t len, uint16_t clamp) noexcept {
    if (ip[9] != ip_proto_tcp || (wire::load_be16(ip + 6) & ip_offset_mask) != 0) {
        return;
    }
    uint32_t ihl = ipv4_ihl(ip);
    if (len < ihl + tcp_min_header) {
        return;
    }
    uint8_t* tcp = ip + ihl;
    if ((tcp[13] & tcp_flag_syn) == 0) {
        return;
    }
    uint32_t doff = static_cast<uint32_t>(tcp[12] >> 4) * 4;
    if (doff < tcp_min_header || ihl + doff > len) {
        return;
    }
    uint32_t off = tcp_min_header;
    while (off < doff) {
        uint8_t kind = tcp[off];
        if (kind == tcp_opt_end) {
            return;
        }
        if (kind == tcp_opt_nop) {
            ++off;
            continue;
        }
        if (off + 1 >= doff) {
            return;
        }
        uint8_t olen = tcp[off + 1];
        if (olen < 2 || off + olen > doff) {
            return;
        }
        if (kind == tcp_opt_mss && olen == 4) {
            uint16_t old_mss = wire::load_be16(tcp + off + 2);
            if (old_mss <= clamp) {
                return;
            }
            wire::store_be16(tcp + off + 2, clamp);
            // The checksum sums 16-bit words from the TCP header's start: a value at an odd
            // offset straddles two words, which in ones'-complement arithmetic is the same as
            // summing it byte-swapped.
            uint16_t o = old_mss;
            uint16_t v = clamp;
            if (((off + 2) & 1) != 0) {
                o = static_cast<uint16_t>((o >> 8) | (o << 8));
                v = static_cast<uint16_t>((v >> 8) | (v << 8));
            }
            wire::store_be16(tcp + 16, checksum_update16(wire::load_be16(tcp + 16), o, v));
            return;
        }
        off += olen;
    }
}

}  // namespace

uint16_t mss_clamp(rte_mbuf** pkts, uint16_t n, worker_ctx& ctx) noexcept {
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        if ((meta(m).flags & meta_flag::gre_payload) != 0) {
            continue;  // not IPv4 (control-originated NHRP)
        }
        // Only TCP can need it: test the protocol before working out the clamp.
        auto* ip = rte_pktmbuf_mtod(m, uint8_t*);
        if (ip[9] != ip_proto_tcp) {
            continue;
        }
        uint16_t clamp = clamp_for(meta(m), ctx.topo);
        if (clamp != 0) {
            clamp_syn(ip, m->data_len, clamp);
        }
    }
    return n;
}

}  // namespace dmvpn::dp::stage
