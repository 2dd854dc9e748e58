// Every reason a worker drops or punts a packet, named once (the counters and logs use the names).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dmvpn::dp {

enum class drop_reason : uint8_t {
    eth_truncated,          // shorter than an Ethernet header
    unsupported_ethertype,  // neither IPv4 nor ARP
    multi_segment,          // chained mbuf: the stages read headers from the first segment only
    ipv4_truncated,         // shorter than 20 bytes, than IHL or than the total length
    ipv4_bad_version,       // version is not 4
    ipv4_bad_ihl,           // IHL below 5
    ipv4_bad_checksum,      // header checksum does not verify (RFC 791)
    ipv4_bad_length,        // total length shorter than the header
    tunnel_fragment,        // GRE/ESP to the hub arrived fragmented: no reassembly on workers
    gre_truncated,          // shorter than the GRE header its flags announce
    gre_bad_header,         // version not 0, or routing / reserved bits set (RFC 2784, 2890)
    gre_bad_checksum,       // checksum present and wrong
    gre_unknown_key,        // no tunnel on this NBMA address with this key (or lack of one)
    gre_unprotected,        // plain GRE on a tunnel whose profile demands IPsec
    gre_unknown_protocol,   // protocol type neither IPv4 (0x0800) nor NHRP (0x2001)
    esp_truncated,          // ESP header does not fit
    esp_unknown_spi,        // no inbound SA with this SPI
    esp_replayed,           // sequence number already received (RFC 4303 3.4.3)
    esp_outside_window,     // sequence number left of the anti-replay window
    esp_bad_icv,            // integrity check failed
    esp_bad_padding,        // pad length or pad bytes wrong
    esp_sa_expired,         // hard lifetime reached
    esp_decrypt_error,      // any other decrypt failure the crypto library named
    esp_inner_not_gre,      // ESP in transport mode to the hub must carry GRE
    esp_tunnel_mismatch,    // the GRE inside names another tunnel than the SA protects
    esp_encrypt_error,      // encrypt failed (no room, sequence overflow, engine)
    no_route,               // FIB miss
    blackhole,              // route to a discard next hop
    adjacency_missing,      // FIB points at an adjacency slot that is empty
    no_adjacency,           // glean: next hop unresolved (one event per next hop was punted)
    martian_destination,    // 0.0.0.0/8 or 127.0.0.0/8 destinations are never forwarded
    frag_too_many,          // no DF, larger than the egress MTU, and more than max_fragments
    frag_no_mbuf,           // no DF, larger than the egress MTU, and no mbufs for its fragments
    no_headroom,            // not enough room before the packet for the encapsulation
    tx_full,                // the NIC's TX queue took fewer packets than offered
    port_paused,            // the egress port is paused (`dmvpnctl port pause`)
    punt_ring_full,         // punted packet refused by the punt ring (overflow)
    spoofed_source,         // verify-source: the inner source does not route back to the spoke
    underlay_transit,       // on an underlay port, not tunnel traffic and not for the hub
    punt_policed,           // over its punt class's budget (worker_config::punt_rates)
    count_,
};
inline constexpr size_t drop_reason_count = static_cast<size_t>(drop_reason::count_);
std::string_view name(drop_reason r) noexcept;

// What the control lcore is asked to do with a punted packet or event (see punt.hpp for where
// each one's data starts).
enum class punt_reason : uint8_t {
    nhrp,          // GRE protocol 0x2001 on a tunnel
    arp,           // ARP on any port
    for_us,        // IPv4 to one of the hub's own addresses (tunnel, NBMA, LAN), or broadcast
    multicast,     // 224.0.0.0/4: the control lcore replicates to the multicast list
    ttl_exceeded,  // TTL would reach 0: ICMP time exceeded
    frag_needed,   // DF set and larger than the egress MTU: ICMP fragmentation needed
    glean,         // next hop unresolved: resolve it (one event per next hop, rate limited)
    redirect,      // Phase 3: in and out of the same tunnel: a redirect candidate event
    count_,
};
inline constexpr size_t punt_reason_count = static_cast<size_t>(punt_reason::count_);
std::string_view name(punt_reason r) noexcept;

// Punts are policed per class, each with its own budget, so that a flood of one kind (multicast,
// ICMP to the hub, glean) cannot starve another (NHRP, IKE, ARP). The classes are the punt
// reasons, with IKE (UDP to ports 500 and 4500 of the hub, otherwise `for_us`) apart.
inline constexpr size_t punt_class_ike = punt_reason_count;
inline constexpr size_t punt_class_count = punt_reason_count + 1;
// "ike" for punt_class_ike, else the reason's name.
std::string_view punt_class_name(size_t cls) noexcept;

}  // namespace dmvpn::dp
