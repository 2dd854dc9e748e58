// The dataplane benchmark's address plan, packet sizes and packet builders, shared by the hub
// run (worker_bench.cpp) and the files written for the ipsec-secgw peer (peer_files.cpp).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <rte_ether.h>

namespace dmvpn::bench {

using bytes = std::vector<uint8_t>;

// Addresses in host byte order. Benchmark ranges only (RFC 5737, RFC 2544's 198.18.0.0/15).
struct plan {
    static constexpr uint32_t hub_nbma = 0xc0000201;      // 192.0.2.1
    static constexpr uint32_t hub_overlay0 = 0x0a000001;  // 10.0.0.1, tunnel 0: GRE only
    static constexpr uint32_t hub_overlay1 = 0x0a010001;  // 10.1.0.1, tunnel 1: GRE over ESP
    static constexpr uint32_t hub_lan = 0xac100001;       // 172.16.0.1/12
    static constexpr uint32_t lan_router = 0xac100002;    // 172.16.0.2: next hop to the LAN
    static constexpr uint32_t key0 = 100;
    static constexpr uint32_t key1 = 200;
    static constexpr uint16_t tunnel_mtu = 1400;  // largest inner packet: the 1400 B case fits

    // Spoke i of tunnel t (i < 65536): overlay address, NBMA address, the /24 behind it.
    static uint32_t overlay(uint16_t t, uint32_t i) {
        return (t == 0 ? 0x0a000000u : 0x0a010000u) + 2 + i;
    }
    static uint32_t nbma(uint16_t t, uint32_t i) {
        return (t == 0 ? 0xc6130000u : 0xc6120000u) + 1 + i;
    }
    static uint32_t lan_of(uint16_t t, uint32_t i) {
        return (t == 0 ? 0x64000000u : 0x65000000u) + (i << 8);
    }
    // A host on the hub's LAN side (behind lan_router), spread over 172.16.0.0/12.
    static uint32_t lan_host(uint32_t i) { return 0xac110000u + (i % 0xe0000u); }
    // SPIs: hub -> spoke i and spoke i -> hub.
    static uint32_t spi_out(uint32_t i) { return 0x10000 + i; }
    static uint32_t spi_in(uint32_t i) { return 0x40000 + i; }
};

inline const rte_ether_addr gw_mac{{0x02, 0, 0, 0, 0xfe, 0x01}};    // underlay next hop
inline const rte_ether_addr lan_mac{{0x02, 0, 0, 0, 0x0a, 0x02}};   // lan_router
inline const rte_ether_addr wire_mac{{0x02, 0, 0, 0, 0x0b, 0x01}};  // the hub's ports, as seen

// Inner packet sizes (IPv4 total length): one size, or simple IMIX, 7:4:1 of 64, 576 and 1400
// (1400 rather than 1500 because the tunnel's IP MTU is 1400).
struct size_mix {
    std::string name;             // "64", "imix", "1400"
    std::vector<uint16_t> cycle;  // the sizes packets take, in turn
    double mean() const;
};
size_mix parse_size(std::string_view s);
inline constexpr std::array<uint16_t, 12> imix_cycle = {64,   576, 64,  64, 576, 64,
                                                        1400, 64,  576, 64, 64,  576};

// AES-128-GCM key material (16-byte key + 4-byte salt, RFC 4106) of one SA, derived from its SPI.
std::array<uint8_t, 20> key_of(uint32_t spi);

// Packet builders; checksums are valid.
bytes ipv4_udp(uint32_t src, uint32_t dst, uint16_t total_len, uint16_t id);
bytes ipv4(uint32_t src, uint32_t dst, uint8_t proto, std::span<const uint8_t> payload);
bytes gre_keyed(uint32_t key, std::span<const uint8_t> inner);
bytes ether(const rte_ether_addr& dst, const rte_ether_addr& src, std::span<const uint8_t> l3);

// Bytes AES-GCM ciphers for an inner packet of this size in the hub's ESP: GRE with key (8)
// + inner + pad to 4 + pad length and next header (RFC 4303 section 2.4).
inline uint32_t esp_cipher_len(uint32_t inner) { return (inner + 8 + 2 + 3) / 4 * 4; }

}  // namespace dmvpn::bench
