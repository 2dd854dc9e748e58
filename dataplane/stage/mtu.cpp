// MTU stage (worker): the egress MTU is the tunnel's IP MTU or the LAN port's MTU. A packet
// without DF that exceeds it is fragmented here, before encapsulation and encryption (RFC 791
// section 3.2; IOS's default `crypto ipsec fragmentation before-encryption`), so each fragment
// is encapsulated, and on an IPsec tunnel encrypted, as a packet of its own.
#include "dataplane/stage/mtu.hpp"

#include <rte_ip.h>

#include <algorithm>
#include <cstring>

#include "dataplane/adjacency.hpp"
#include "dataplane/stage/ipv4.hpp"

namespace dmvpn::dp::stage {

namespace {

constexpr uint32_t max_ipv4_header = 60;
constexpr uint8_t ip_opt_end = 0;
constexpr uint8_t ip_opt_nop = 1;
constexpr uint8_t ip_opt_copied = 0x80;

// The options every fragment after the first repeats (RFC 791: those with the copied flag set),
// written after a 20-byte header at `to` and padded with end-of-list to a multiple of 4 bytes.
// Returns the resulting header length. A malformed option list ends the copy where it breaks.
uint32_t later_header(const uint8_t* ip, uint32_t ihl, uint8_t* to) noexcept {
    std::memcpy(to, ip, sizeof(rte_ipv4_hdr));
    uint32_t w = sizeof(rte_ipv4_hdr);
    uint32_t i = sizeof(rte_ipv4_hdr);
    while (i < ihl) {
        uint8_t type = ip[i];
        if (type == ip_opt_end) {
            break;
        }
        if (type == ip_opt_nop) {
            ++i;
            continue;
        }
        if (i + 1 >= ihl) {
            break;
        }
        uint8_t olen = ip[i + 1];
        if (olen < 2 || i + olen > ihl) {
            break;
        }
        if ((type & ip_opt_copied) != 0) {
            std::memcpy(to + w, ip + i, olen);
            w += olen;
        }
        i += olen;
    }
    while (w % 4 != 0) {
        to[w++] = ip_opt_end;
    }
    to[0] = static_cast<uint8_t>(0x40 | (w / 4));
    return w;
}

// Length, flags/offset and checksum of a fragment's header.
void finish_header(uint8_t* ip, uint32_t total, uint16_t offset_units, bool more) noexcept {
    wire::store_be16(ip + 2, static_cast<uint16_t>(total));
    wire::store_be16(ip + 6, static_cast<uint16_t>((more ? ip_flag_mf : 0) | offset_units));
    wire::store_be16(ip + 10, 0);
    // rte_ipv4_cksum returns the checksum in network order, ready to store as it is.
    uint16_t sum = rte_ipv4_cksum(reinterpret_cast<const rte_ipv4_hdr*>(ip));
    std::memcpy(ip + 10, &sum, sizeof(sum));
}

// Splits `m` (no DF, longer than `limit`) into fragments of at most `limit` bytes written to
// `out`, `m` itself trimmed into the first. Returns how many; 0 when the packet was dropped.
uint16_t fragment(rte_mbuf* m, uint32_t limit, rte_mbuf** out, worker_ctx& ctx) noexcept {
    uint8_t* ip = rte_pktmbuf_mtod(m, uint8_t*);
    const uint32_t ihl = ipv4_ihl(ip);
    const uint32_t total = m->pkt_len;  // classify / gre_decap cut it to the IPv4 length
    uint8_t later[max_ipv4_header];
    const uint32_t later_ihl = later_header(ip, ihl, later);
    if (limit < ihl + 8 || total <= ihl) {
        ctx.drop(m, drop_reason::frag_too_many);
        return 0;
    }
    // Every fragment but the last carries a multiple of 8 bytes (offsets count 8-byte units).
    const uint32_t data = total - ihl;
    const uint32_t first = (limit - ihl) & ~7u;
    const uint32_t step = (limit - later_ihl) & ~7u;
    const uint32_t count = 1 + (data - first + step - 1) / step;
    if (count > max_fragments) {
        ctx.drop(m, drop_reason::frag_too_many);
        return 0;
    }
    rte_mbuf* extra[max_fragments - 1];
    if (rte_pktmbuf_alloc_bulk(m->pool, extra, count - 1) != 0) {
        ctx.drop(m, drop_reason::frag_no_mbuf);
        return 0;
    }
    const uint16_t word = wire::load_be16(ip + 6);
    const auto base = static_cast<uint16_t>(word & ip_offset_mask);
    // A fragment being fragmented again: its last piece keeps the original's MF.
    const bool more_after = (word & ip_flag_mf) != 0;
    const uint8_t* payload = ip + ihl;
    const packet_meta& pm = meta(m);
    uint32_t off = first;
    for (uint32_t k = 0; k + 1 < count; ++k) {
        rte_mbuf* f = extra[k];
        const uint32_t len = std::min(step, data - off);
        auto* fp = reinterpret_cast<uint8_t*>(
            rte_pktmbuf_append(f, static_cast<uint16_t>(later_ihl + len)));
        if (fp == nullptr) {  // a pool of buffers smaller than the packet's: cannot happen
            rte_pktmbuf_free_bulk(extra, count - 1);
            ctx.drop(m, drop_reason::frag_no_mbuf);
            return 0;
        }
        std::memcpy(fp, later, later_ihl);
        std::memcpy(fp + later_ihl, payload + off, len);
        finish_header(fp, later_ihl + len, static_cast<uint16_t>(base + off / 8),
                      more_after || off + len < data);
        f->port = m->port;
        meta(f) = pm;
        out[k + 1] = f;
        off += len;
    }
    rte_pktmbuf_trim(m, static_cast<uint16_t>(total - ihl - first));
    finish_header(ip, ihl + first, base, true);
    out[0] = m;
    ++ctx.counters.fragmented;
    ctx.counters.fragments += count;
    return static_cast<uint16_t>(count);
}

}  // namespace

mtu_result mtu(rte_mbuf* const* pkts, uint16_t n, rte_mbuf** out, uint16_t cap,
               worker_ctx& ctx) noexcept {
    uint16_t i = 0;
    uint16_t k = 0;
    for (; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        packet_meta& pm = meta(m);
        uint16_t limit = pm.adj->mtu;
        // The control lcore sizes what it originates; it is no IPv4 datagram to fragment.
        if (m->pkt_len <= limit || (pm.flags & meta_flag::gre_payload) != 0) {
            if (k == cap) {
                break;
            }
            out[k++] = m;
            continue;
        }
        const uint8_t* ip = rte_pktmbuf_mtod(m, const uint8_t*);
        if ((wire::load_be16(ip + 6) & ip_flag_df) != 0) {
            // DF: the sender must learn the MTU (RFC 1191).
            pm.aux = limit;
            ctx.punt(m, punt_reason::frag_needed);
            continue;
        }
        if (cap - k < max_fragments) {
            break;
        }
        k = static_cast<uint16_t>(k + fragment(m, limit, out + k, ctx));
    }
    return {i, k};
}

}  // namespace dmvpn::dp::stage
