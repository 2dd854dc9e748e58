#include "tools/spokesim/esp.hpp"

#include <vector>

#include <fmt/format.h>

#include "crypto/esp_transport.hpp"
#include "crypto/sa.hpp"

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

class crypto_esp final : public esp_layer {
public:
    crypto_esp(std::unique_ptr<crypto::engine> eng, std::vector<std::unique_ptr<crypto::sa>> out,
               std::vector<std::unique_ptr<crypto::sa>> in, bool fixed_ivs)
        : _eng(std::move(eng)), _out(std::move(out)), _in(std::move(in)), _fixed_ivs(fixed_ivs) {}

    esp_status protect(uint32_t local, buffer& packet) override {
        return run(*_out.at(local), packet, true);
    }
    esp_status unprotect(uint32_t local, buffer& packet) override {
        return run(*_in.at(local), packet, false);
    }

private:
    esp_status run(crypto::sa& s, buffer& packet, bool encrypt) {
        _scratch.assign(headroom + packet.size() + tailroom, 0);
        std::copy(packet.begin(), packet.end(), _scratch.begin() + headroom);
        crypto::esp_packet p{_scratch.data() + headroom, static_cast<uint32_t>(packet.size()),
                             headroom, tailroom};
        crypto::esp_status st = crypto::esp_status::ok;
        if (encrypt && _fixed_ivs && s.cipher() == crypto::cipher_alg::aes_cbc) {
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

    std::unique_ptr<crypto::engine> _eng;
    std::vector<std::unique_ptr<crypto::sa>> _out;
    std::vector<std::unique_ptr<crypto::sa>> _in;
    bool _fixed_ivs = false;
    buffer _scratch;
};

}  // namespace

wire::result<std::unique_ptr<esp_layer>, std::string> make_esp_layer(const topology& t,
                                                                     bool hub_side,
                                                                     bool fixed_ivs) {
    auto eng = crypto::engine::create();
    if (!eng) {
        return wire::fail(fmt::format("IPsec-MB: {}", crypto::name(eng.error())));
    }
    std::vector<std::unique_ptr<crypto::sa>> out;
    std::vector<std::unique_ptr<crypto::sa>> in;
    out.reserve(t.size());
    in.reserve(t.size());
    for (uint32_t i = 0; i < t.size(); ++i) {
        spoke_identity id = t.spoke(i);
        for (bool outbound : {true, false}) {
            const sa_material& m = (outbound != hub_side) ? id.to_hub : id.from_hub;
            std::vector<uint8_t> key = m.key;
            key.insert(key.end(), m.salt.begin(), m.salt.end());  // RFC 4106: key || salt
            crypto::sa_params p;
            p.spi = m.spi;
            p.direction = outbound ? crypto::sa_direction::outbound : crypto::sa_direction::inbound;
            if (is_gcm(t.opts().esp)) {
                p.cipher = crypto::cipher_alg::aes_gcm_16;
                p.integ = crypto::integ_alg::none;
            } else {
                p.cipher = crypto::cipher_alg::aes_cbc;
                p.integ = t.opts().esp == esp_transform::aes128_cbc_sha1_96
                              ? crypto::integ_alg::hmac_sha1_96
                              : crypto::integ_alg::hmac_sha256_128;
                p.integ_key = m.integrity_key;
            }
            p.cipher_key = key;
            auto s = crypto::sa::create(p, **eng);
            if (!s) {
                return wire::fail(
                    fmt::format("spoke {} SA {:#x}: {}", id.index, m.spi, crypto::name(s.error())));
            }
            (outbound ? out : in).push_back(std::move(*s));
        }
    }
    return std::unique_ptr<esp_layer>(
        std::make_unique<crypto_esp>(std::move(*eng), std::move(out), std::move(in), fixed_ivs));
}

}  // namespace dmvpn::spokesim
