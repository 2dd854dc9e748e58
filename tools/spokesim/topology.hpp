// Where each emulated spoke sits (NBMA, tunnel, LAN addresses) and the manual SAs it shares with
// the hub, all derived from the options and the spoke's index so the hub's YAML can list them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tools/spokesim/addr.hpp"
#include "tools/spokesim/options.hpp"

namespace dmvpn::spokesim {

// One direction of a spoke's SA pair with the hub.
struct sa_material {
    uint32_t spi = 0;
    std::vector<uint8_t> key;            // 16 or 32 bytes of AES key
    std::vector<uint8_t> salt;           // GCM: 4 bytes (RFC 4106 nonce salt)
    std::vector<uint8_t> integrity_key;  // CBC: 20 (HMAC-SHA1) or 32 (HMAC-SHA-256) bytes
};

struct spoke_identity {
    uint32_t index = 0;  // global index: first_spoke + local position
    ipv4 nbma = 0;
    ipv4 overlay = 0;
    prefix lan;
    sa_material to_hub;    // the spoke encrypts with this, the hub decrypts
    sa_material from_hub;  // the hub encrypts with this, the spoke decrypts
};

class topology {
public:
    explicit topology(const options& o);

    uint32_t size() const noexcept { return _count; }
    ipv4 hub_nbma() const noexcept { return _hub_nbma; }
    ipv4 hub_overlay() const noexcept { return _hub_overlay; }
    const options& opts() const noexcept { return _opts; }

    // Local position 0..size()-1.
    spoke_identity spoke(uint32_t local) const;
    ipv4 nbma_of(uint32_t local) const noexcept { return _first_nbma + local; }
    ipv4 overlay_of(uint32_t local) const noexcept { return _first_overlay + local; }
    prefix lan_of(uint32_t local) const noexcept;
    // The inner address data to spoke `local` is sent to (overlay, or .1 of its LAN).
    ipv4 traffic_address_of(uint32_t local) const noexcept;

    std::optional<uint32_t> local_by_nbma(ipv4 a) const noexcept;
    std::optional<uint32_t> local_by_overlay(ipv4 a) const noexcept;
    // A spoke whose overlay address or LAN prefix holds `a`.
    std::optional<uint32_t> local_by_destination(ipv4 a) const noexcept;

    // The manual-SA block of the hub's YAML for these spokes (config/README.md's schema).
    std::string sa_yaml() const;

private:
    options _opts;
    uint32_t _count = 0;
    ipv4 _hub_nbma = 0;
    ipv4 _hub_overlay = 0;
    ipv4 _first_nbma = 0;
    ipv4 _first_overlay = 0;
};

// Deterministic key material: the same seed, index and direction always give the same bytes.
sa_material derive_sa(uint64_t seed, uint32_t index, bool to_hub, uint32_t spi_base,
                      esp_transform t);

}  // namespace dmvpn::spokesim
