#include "tools/spokesim/esp.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "crypto/esp_transport.hpp"
#include "tools/spokesim/frames.hpp"

namespace dmvpn::spokesim {

namespace {

// Room for the ESP header + IV before the packet and padding + trailer + ICV after it.
constexpr uint32_t headroom = 64;
constexpr uint32_t tailroom = 64;

esp_status translate(crypto::esp_status s) {
    switch (s) {
        case crypto::esp_status::ok:
            return esp_status::ok;
        case crypto::esp_status::bad_icv:
            return esp_status::auth_failed;
        case crypto::esp_status::replayed:
        case crypto::esp_status::outside_window:
        case crypto::esp_status::zero_sequence:
            return esp_status::replayed;
        case crypto::esp_status::spi_mismatch:
            return esp_status::no_sa;
        case crypto::esp_status::engine_error:
        case crypto::esp_status::sa_expired:
        case crypto::esp_status::seq_overflow:
            return esp_status::failed;
        default:
            return esp_status::malformed;
    }
}

uint64_t key_of(uint32_t local, uint32_t v) { return (uint64_t{local} << 32) | v; }

// The emulator's clock (microseconds) as child_pairs' time.
ike::child_pairs::time_point at(uint64_t now_us) {
    return ike::child_pairs::time_point(std::chrono::microseconds(now_us));
}

uint32_t be32_at(const buffer& b, size_t at) {
    return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) |
           b[at + 3];
}

}  // namespace

esp_table::esp_table(std::unique_ptr<crypto::engine> eng, bool fixed_ivs)
    : _eng(std::move(eng)), _fixed_ivs(fixed_ivs) {}

esp_table::~esp_table() = default;

wire::result<std::unique_ptr<esp_table>, std::string> esp_table::create(bool fixed_ivs) {
    auto eng = crypto::engine::create();
    if (!eng) {
        return wire::fail(fmt::format("IPsec-MB: {}", crypto::name(eng.error())));
    }
    return std::unique_ptr<esp_table>(new esp_table(std::move(*eng), fixed_ivs));
}

std::optional<std::string> esp_table::add(uint64_t id, uint32_t local, ipv4 peer,
                                          const crypto::sa_params& out, const crypto::sa_params& in,
                                          bool outbound_waits) {
    if (_pairs.count(id) != 0) {
        return fmt::format("pair {} exists already", id);
    }
    if (_by_spi.count(key_of(local, in.spi)) != 0) {
        return fmt::format("inbound SPI {:#x} is in use", in.spi);
    }
    auto o = crypto::sa::create(out, *_eng);
    if (!o) {
        return fmt::format("outbound SA {:#x}: {}", out.spi, crypto::name(o.error()));
    }
    auto i = crypto::sa::create(in, *_eng);
    if (!i) {
        return fmt::format("inbound SA {:#x}: {}", in.spi, crypto::name(i.error()));
    }
    ike::child_pairs& set = _by_peer[key_of(local, peer)];
    set.add(id, outbound_waits);
    _pairs.emplace(id, pair{local, peer, set.waiting(id), std::move(*o), std::move(*i)});
    _by_spi[key_of(local, in.spi)] = id;
    return std::nullopt;
}

void esp_table::sweep(uint64_t peer_key) {
    auto set = _by_peer.find(peer_key);
    for (auto it = _pairs.begin(); it != _pairs.end();) {
        const pair& p = it->second;
        if (key_of(p.local, p.peer) == peer_key &&
            (set == _by_peer.end() || !set->second.decrypts(it->first))) {
            _by_spi.erase(key_of(p.local, p.in->spi()));
            it = _pairs.erase(it);
            continue;
        }
        if (set != _by_peer.end() && key_of(p.local, p.peer) == peer_key) {
            it->second.waits = set->second.waiting(it->first);
        }
        ++it;
    }
    if (set != _by_peer.end() && set->second.empty()) {
        _by_peer.erase(set);
    }
}

bool esp_table::remove(uint64_t id) {
    auto it = _pairs.find(id);
    if (it == _pairs.end()) {
        return false;
    }
    uint64_t k = key_of(it->second.local, it->second.peer);
    _by_peer[k].forget(id);
    sweep(k);
    return true;
}

bool esp_table::retire(uint64_t id, uint64_t now_us) {
    auto it = _pairs.find(id);
    if (it == _pairs.end()) {
        return false;
    }
    uint64_t k = key_of(it->second.local, it->second.peer);
    if (_by_peer[k].remove(id, at(now_us))) {
        _drain_due.emplace(
            now_us + static_cast<uint64_t>(std::chrono::microseconds(ike::rekey_drain).count()), k);
    }
    sweep(k);
    return true;
}

void esp_table::expire(uint64_t now_us) {
    while (!_drain_due.empty() && _drain_due.begin()->first <= now_us) {
        uint64_t k = _drain_due.begin()->second;
        _drain_due.erase(_drain_due.begin());
        if (auto set = _by_peer.find(k); set != _by_peer.end()) {
            (void)set->second.drained(at(now_us));
            sweep(k);
        }
    }
}

bool esp_table::has(uint32_t local, ipv4 peer) const { return current(local, peer).has_value(); }

std::optional<uint64_t> esp_table::current(uint32_t local, ipv4 peer) const {
    auto it = _by_peer.find(key_of(local, peer));
    if (it == _by_peer.end()) {
        return std::nullopt;
    }
    return it->second.outbound();
}

std::optional<esp_table::spi_pair> esp_table::spis(uint64_t id) const {
    auto it = _pairs.find(id);
    if (it == _pairs.end()) {
        return std::nullopt;
    }
    return spi_pair{it->second.out->spi(), it->second.in->spi()};
}

esp_status esp_table::protect(uint32_t local, buffer& packet) {
    if (packet.size() < ipv4_header_size) {
        return esp_status::malformed;
    }
    auto id = current(local, be32_at(packet, 16));  // the outer destination
    if (!id) {
        return esp_status::no_sa;
    }
    return run(*_pairs.at(*id).out, packet, true);
}

esp_status esp_table::unprotect(uint32_t local, buffer& packet) {
    if (packet.size() < ipv4_header_size) {
        return esp_status::malformed;
    }
    size_t ihl = size_t{packet[0] & 0x0fu} * 4;
    if (packet.size() < ihl + 8) {
        return esp_status::malformed;
    }
    auto it = _by_spi.find(key_of(local, be32_at(packet, ihl)));
    if (it == _by_spi.end()) {
        return esp_status::no_sa;
    }
    pair& p = _pairs.at(it->second);
    esp_status st = run(*p.in, packet, false);
    if (st == esp_status::ok && p.waits) {
        // The peer encrypts with this pair: it has it, so our outbound may move to it.
        uint64_t id = it->second;
        uint64_t k = key_of(p.local, p.peer);
        (void)_by_peer[k].inbound_seen(id);
        sweep(k);
    }
    return st;
}

esp_status esp_table::run(crypto::sa& s, buffer& packet, bool encrypt) {
    _scratch.assign(headroom + packet.size() + tailroom, 0);
    std::copy(packet.begin(), packet.end(), _scratch.begin() + headroom);
    crypto::esp_packet p{_scratch.data() + headroom, static_cast<uint32_t>(packet.size()), headroom,
                         tailroom};
    crypto::esp_status st = crypto::esp_status::ok;
    if (encrypt && _fixed_ivs && s.cipher() != crypto::cipher_alg::aes_gcm_16) {
        // A capture must come out the same on every run: the IV follows from the SPI and
        // the sequence number instead of the SA's random IV generator.
        crypto::iv_bytes iv{};
        uint64_t state = (uint64_t{s.spi()} << 32) ^ (s.last_seq() + 1);
        for (size_t i = 0; i < iv.size(); ++i) {
            if (i % 8 == 0) {
                state = state * 0x9e3779b97f4a7c15ull + 0xbf58476d1ce4e5b9ull;
                state ^= state >> 29;
            }
            iv[i] = static_cast<uint8_t>(state >> (8 * (i % 8)));
        }
        (void)crypto::encrypt_burst_with_ivs(*_eng, s, std::span(&p, 1), std::span(&st, 1),
                                             std::span(&iv, 1));
    } else if (encrypt) {
        (void)crypto::encrypt_burst(*_eng, s, std::span(&p, 1), std::span(&st, 1));
    } else {
        (void)crypto::decrypt_burst(*_eng, s, std::span(&p, 1), std::span(&st, 1));
    }
    if (st != crypto::esp_status::ok) {
        return translate(st);
    }
    packet.assign(p.data, p.data + p.len);
    return esp_status::ok;
}

wire::result<std::unique_ptr<esp_table>, std::string> make_esp_layer(const topology& t,
                                                                     bool hub_side,
                                                                     bool fixed_ivs) {
    auto table = esp_table::create(fixed_ivs);
    if (!table) {
        return table;
    }
    for (uint32_t i = 0; i < t.size(); ++i) {
        spoke_identity id = t.spoke(i);
        crypto::sa_params p[2];  // outbound, inbound
        std::vector<uint8_t> keys[2];
        for (int k = 0; k < 2; ++k) {
            bool outbound = k == 0;
            const sa_material& m = (outbound != hub_side) ? id.to_hub : id.from_hub;
            keys[k] = m.key;
            keys[k].insert(keys[k].end(), m.salt.begin(), m.salt.end());  // RFC 4106: key || salt
            p[k].spi = m.spi;
            p[k].direction =
                outbound ? crypto::sa_direction::outbound : crypto::sa_direction::inbound;
            if (is_gcm(t.opts().esp)) {
                p[k].cipher = crypto::cipher_alg::aes_gcm_16;
                p[k].integ = crypto::integ_alg::none;
            } else {
                switch (t.opts().esp) {
                    case esp_transform::des3_cbc_md5_96:
                        p[k].cipher = crypto::cipher_alg::des3_cbc;
                        p[k].integ = crypto::integ_alg::hmac_md5_96;
                        break;
                    case esp_transform::des3_cbc_sha1_96:
                        p[k].cipher = crypto::cipher_alg::des3_cbc;
                        p[k].integ = crypto::integ_alg::hmac_sha1_96;
                        break;
                    case esp_transform::aes128_cbc_md5_96:
                        p[k].cipher = crypto::cipher_alg::aes_cbc;
                        p[k].integ = crypto::integ_alg::hmac_md5_96;
                        break;
                    case esp_transform::aes128_cbc_sha1_96:
                        p[k].cipher = crypto::cipher_alg::aes_cbc;
                        p[k].integ = crypto::integ_alg::hmac_sha1_96;
                        break;
                    default:
                        p[k].cipher = crypto::cipher_alg::aes_cbc;
                        p[k].integ = crypto::integ_alg::hmac_sha256_128;
                        break;
                }
                p[k].integ_key = m.integrity_key;
            }
            p[k].cipher_key = keys[k];
        }
        // Manual pairs take ids 1..N (the IKE engine's ids never meet them: no IKE with --esp).
        if (auto e =
                (*table)->add(uint64_t{i} + 1, i, hub_side ? id.nbma : t.hub_nbma(), p[0], p[1])) {
            return wire::fail(fmt::format("spoke {}: {}", id.index, *e));
        }
    }
    return table;
}

}  // namespace dmvpn::spokesim
