// Per-packet state the stages pass along inside each mbuf (a DPDK dynamic field), and that
// the punt ring carries to the control lcore.
#pragma once

#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>

#include <cstddef>
#include <cstdint>

namespace dmvpn::dp {

struct adjacency;

// Where classify sent the packet.
enum class packet_class : uint8_t {
    ip = 0,      // an IPv4 packet to route (from a LAN port, or underlay not for a tunnel)
    gre = 1,     // GRE to one of the hub's NBMA addresses
    esp = 2,     // ESP to one of the hub's NBMA addresses
    routed = 3,  // from the control lcore, past the FIB: starts at resolve (nexthop = adjacency id)
};

namespace meta_flag {
inline constexpr uint8_t class_mask = 0x03;
inline constexpr uint8_t from_tunnel = 0x04;  // decapsulated: tunnel and outer_src are valid
inline constexpr uint8_t was_esp = 0x08;      // arrived inside ESP (decrypted by esp_in)
// Built by the control lcore (NHRP to a spoke on an IPsec tunnel): the bytes are a GRE payload
// of protocol `aux`, not IPv4. Encap writes that protocol; mtu and mss_clamp leave it alone; it
// never gleans. The control lcore's forwarder (worker::inject) takes it from resolve on.
inline constexpr uint8_t gre_payload = 0x20;
// ESP that arrived in UDP (RFC 3948; classify took the UDP header off).
inline constexpr uint8_t udp_encap = 0x40;
}  // namespace meta_flag

inline constexpr uint16_t no_tunnel = 0xffff;

// Stages write and read this; between the route and resolve stages `nexthop` holds the FIB's
// adjacency id, after resolve it holds the next hop address. Host byte order throughout.
struct packet_meta {
    union {
        const adjacency* adj;  // chosen by resolve; valid until the worker's next quiescent point
        // Once punted (resolve never runs on it): the TSC of the burst it arrived in, which the
        // worker already read at the burst's start (worker_ctx::now). The control lcore times
        // its handling of NHRP from it.
        uint64_t rx_tsc;
    };
    uint32_t outer_src;  // NBMA address the packet came from (tunnel packets)
    uint32_t nexthop;    // glean: unresolved next hop; redirect: the destination
    uint16_t tunnel;     // arrival tunnel, or no_tunnel
    uint16_t in_port;    // DPDK port it was received on
    uint16_t aux;        // frag_needed: the MTU exceeded; glean: egress (punt.hpp);
                         // gre_payload: the GRE protocol type
    uint8_t flags;       // packet_class in the low bits, then meta_flag bits
    uint8_t punt;        // punt_reason, set when punted
};
static_assert(sizeof(packet_meta) == 24);

// Where the dynamic field lives: a fixed offset, the last aligned 24 bytes of the mbuf's
// dynamic field area, so every stage addresses it as a constant (a variable offset is a load
// the compiler must repeat after each store through a byte pointer). The bytes before it stay
// free for fields that PMDs register (the Rx timestamp takes 8 of them).
inline constexpr size_t packet_meta_offset_fixed =
    (offsetof(rte_mbuf, dynfield1) + sizeof(rte_mbuf::dynfield1) - sizeof(packet_meta)) &
    ~(alignof(packet_meta) - 1);
static_assert(packet_meta_offset_fixed >= offsetof(rte_mbuf, dynfield1));
static_assert(packet_meta_offset_fixed + sizeof(packet_meta) <=
              offsetof(rte_mbuf, dynfield1) + sizeof(rte_mbuf::dynfield1));

// Offset of the dynamic field once register_packet_meta() succeeded (packet_meta_offset_fixed),
// -1 before.
extern int packet_meta_offset;

// A second dynamic field, 4 bytes: for a punted packet, the TSC ticks from its burst's RX
// (rx_tsc) to its enqueue on the punt ring, stamped once per punt flush
// (worker_ctx::flush_punts), so the control lcore can split NHRP's time in the hub into the
// worker's part and the ring's. 0: not stamped; saturates at 2^32 - 1 (over a second). At a
// fixed offset beside packet_meta chosen to leave the one 8-byte aligned hole of the area free
// for the PMDs' Rx timestamp (net_pcap registers it at probe, NICs with timestamp offload too):
// 36 bytes of area, 24 for packet_meta, 8 for a timestamp leave exactly these 4.
inline constexpr size_t punt_delay_offset_fixed =
    packet_meta_offset_fixed - offsetof(rte_mbuf, dynfield1) == 12
        ? offsetof(rte_mbuf, dynfield1)                    // [4-byte][8-byte hole][meta]
        : packet_meta_offset_fixed + sizeof(packet_meta);  // [8-byte hole][meta][4-byte]
static_assert(punt_delay_offset_fixed % alignof(uint32_t) == 0);
static_assert(punt_delay_offset_fixed + sizeof(uint32_t) <=
              offsetof(rte_mbuf, dynfield1) + sizeof(rte_mbuf::dynfield1));
static_assert(punt_delay_offset_fixed + sizeof(uint32_t) <= packet_meta_offset_fixed ||
              punt_delay_offset_fixed >= packet_meta_offset_fixed + sizeof(packet_meta));

// punt_delay_offset_fixed once registered; -1 before, or if those bytes were taken (the hub
// then runs without the split).
extern int punt_tsc_offset;

// Registers packet_meta at packet_meta_offset_fixed (idempotent), and the punt delay field
// when its bytes are free. Call after rte_eal_init and before any worker runs. Returns false
// with rte_errno set when packet_meta's bytes are taken.
bool register_packet_meta() noexcept;

inline packet_meta& meta(rte_mbuf* m) noexcept {
    return *reinterpret_cast<packet_meta*>(reinterpret_cast<char*>(m) + packet_meta_offset_fixed);
}
inline const packet_meta& meta(const rte_mbuf* m) noexcept {
    return *reinterpret_cast<const packet_meta*>(reinterpret_cast<const char*>(m) +
                                                 packet_meta_offset_fixed);
}

// The punt TSC: the worker's flush stores `enqueued` as ticks after the packet's rx_tsc; the
// control lcore reads it back as a TSC, 0 when not stamped or the field is not registered.
inline void set_punt_tsc(rte_mbuf* m, int offset, uint64_t enqueued) noexcept {
    const uint64_t rx = meta(m).rx_tsc;
    const uint64_t d = enqueued > rx ? enqueued - rx : 1;
    *RTE_MBUF_DYNFIELD(m, offset, uint32_t*) =
        d > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(d);
}
inline uint64_t punt_tsc(const rte_mbuf* m) noexcept {
    if (punt_tsc_offset < 0) {
        return 0;
    }
    const uint32_t d = *RTE_MBUF_DYNFIELD(m, punt_tsc_offset, const uint32_t*);
    return d == 0 ? 0 : meta(m).rx_tsc + d;
}

inline packet_class class_of(const packet_meta& pm) noexcept {
    return static_cast<packet_class>(pm.flags & meta_flag::class_mask);
}

}  // namespace dmvpn::dp
