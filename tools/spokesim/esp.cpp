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
               std::vector<std::unique_ptr<crypto::sa>> in)
        : _eng(std::move(eng)), _out(std::move(out)), _in(std::move(in)) {}

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
        if (encrypt) {
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
    buffer _scratch;
};

}  // namespace

wire::result<std::unique_ptr<esp_layer>, std::string> make_esp_layer(const topology& t,
                                                                     bool hub_side) {
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
            p.cipher = crypto::cipher_alg::aes_gcm_16;
            p.integ = crypto::integ_alg::none;
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
        std::make_unique<crypto_esp>(std::move(*eng), std::move(out), std::move(in)));
}

}  // namespace dmvpn::spokesim
