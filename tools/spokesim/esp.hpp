// ESP transport for the emulated spokes through the project's crypto library. An esp_table holds
// SA pairs, each between one spoke (its local position) and one peer NBMA address, added and
// removed at run time: from the topology's derivation at start (manual SAs with the hub), or as
// the IKE engine negotiates them (with the hub and, for shortcuts, with other spokes).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "control/ike/child_pairs.hpp"
#include "crypto/sa.hpp"
#include "dataplane/wire/result.hpp"
#include "tools/spokesim/engine.hpp"
#include "tools/spokesim/topology.hpp"

namespace dmvpn::spokesim {

// protect() picks the pair by the spoke and the outer packet's destination (the pair outbound
// traffic to that peer uses now), unprotect() by the spoke and the ESP header's SPI, so that
// an old pair keeps decrypting until it is removed (and, retired after a rekey, a drain period
// longer). Which pair encrypts follows control/ike/child_pairs.hpp, as on the hub.
class esp_table final : public esp_layer {
public:
    // fixed_ivs derives each CBC IV from the SPI and sequence number so that a written capture
    // is reproducible (--write-pcap; test keys only).
    static wire::result<std::unique_ptr<esp_table>, std::string> create(bool fixed_ivs = false);
    ~esp_table() override;

    // Both directions of pair `id` (unique, never reused) between `local` and `peer`. The
    // newest pair with a peer carries the outbound traffic to it: a rekey's pair takes over at
    // once, or with `outbound_waits` (we answered the peer's rekey) once a packet decrypts
    // with it or the pair it replaces is removed; the pair it replaces keeps decrypting until
    // it is removed. The error names the SPI and the crypto library's reason (nothing is added
    // then).
    std::optional<std::string> add(uint64_t id, uint32_t local, ipv4 peer,
                                   const crypto::sa_params& out, const crypto::sa_params& in,
                                   bool outbound_waits = false);
    // False when there is no such pair. If it carried outbound traffic, the newest other pair
    // with the same peer takes over (none: the spoke has no SA with that peer any more).
    bool remove(uint64_t id);
    // As remove(), but a pair another one replaced keeps decrypting until now_us plus
    // ike::rekey_drain (expire() then removes it).
    bool retire(uint64_t id, uint64_t now_us);
    // Removes the retired pairs whose drain period ended.
    void expire(uint64_t now_us);

    bool has(uint32_t local, ipv4 peer) const override;
    // The pair outbound traffic from `local` to `peer` uses now.
    std::optional<uint64_t> current(uint32_t local, ipv4 peer) const;
    size_t size() const noexcept { return _pairs.size(); }
    struct spi_pair {
        uint32_t out = 0;
        uint32_t in = 0;
    };
    std::optional<spi_pair> spis(uint64_t id) const;

    esp_status protect(uint32_t local, buffer& packet) override;
    esp_status unprotect(uint32_t local, buffer& packet) override;

private:
    struct pair {
        uint32_t local = 0;
        ipv4 peer = 0;
        bool waits = false;  // its outbound waits (child_pairs::waiting), copied for unprotect
        std::unique_ptr<crypto::sa> out;
        std::unique_ptr<crypto::sa> in;
    };
    esp_table(std::unique_ptr<crypto::engine> eng, bool fixed_ivs);
    esp_status run(crypto::sa& s, buffer& packet, bool encrypt);
    // Erases the pairs of (local, peer) its child_pairs no longer keeps.
    void sweep(uint64_t peer_key);

    std::unique_ptr<crypto::engine> _eng;
    bool _fixed_ivs = false;
    std::unordered_map<uint64_t, pair> _pairs;
    // (local, peer) -> which of its pairs encrypts and which decrypt.
    std::unordered_map<uint64_t, ike::child_pairs> _by_peer;
    // When a retired pair of that (local, peer) is due to go.
    std::multimap<uint64_t, uint64_t> _drain_due;
    // (local, inbound SPI) -> pair id.
    std::unordered_map<uint64_t, uint64_t> _by_spi;
    buffer _scratch;
};

// Every spoke's manual SA pair with the hub, from the topology's derivation; the error names
// the spoke and the crypto library's reason. hub_side swaps the directions (encrypt with
// from_hub, decrypt with to_hub, the peer being the spoke's NBMA address): the hub's view of the
// same keys, for tests that play the hub.
wire::result<std::unique_ptr<esp_table>, std::string> make_esp_layer(const topology& t,
                                                                     bool hub_side = false,
                                                                     bool fixed_ivs = false);

}  // namespace dmvpn::spokesim
