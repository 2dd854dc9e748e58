// SA proposals (RFC 7296 sections 2.7, 3.3): what we offer, and which of the peer's offers we
// take, by our order of preference (the configured proposals come first, as on IOS).
#include <algorithm>

#include "control/ike/ike_sa.hpp"

namespace dmvpn::ike::detail {

namespace {

// A fixed-length cipher (3DES) carries no Key Length attribute (RFC 7296 section 3.3.5): the
// configuration gives it 0 bits.
transform encr_transform(uint16_t id, uint16_t bits) {
    return transform{
        transform_type::encr, id, bits != 0 ? std::optional<uint16_t>(bits) : std::nullopt, {}};
}
transform plain(transform_type t, uint16_t id) { return transform{t, id, std::nullopt, {}}; }

std::vector<const transform*> of_type(const proposal& p, transform_type t) {
    std::vector<const transform*> v;
    for (const auto& x : p.transforms) {
        // A transform with an attribute we do not understand is unacceptable (section 3.3.6).
        if (x.type == t && x.unknown_attributes.empty()) {
            v.push_back(&x);
        }
    }
    return v;
}

bool has_encr(const proposal& p, uint16_t id, uint16_t bits) {
    for (const auto* t : of_type(p, transform_type::encr)) {
        if (t->id == id && t->key_bits.value_or(0) == bits) {
            return true;
        }
    }
    return false;
}

bool has_id(const proposal& p, transform_type type, uint16_t id) {
    auto v = of_type(p, type);
    return std::any_of(v.begin(), v.end(), [&](const transform* t) { return t->id == id; });
}

// Combined-mode ciphers take no INTEG transform, or only NONE.
bool integ_fits(const proposal& p, uint16_t integ) {
    auto v = of_type(p, transform_type::integ);
    if (integ == integ_id::none) {
        return std::all_of(v.begin(), v.end(),
                           [](const transform* t) { return t->id == integ_id::none; });
    }
    return has_id(p, transform_type::integ, integ);
}

bool is_gcm(uint16_t encr) {
    return encr == encr_id::aes_gcm_8 || encr == encr_id::aes_gcm_12 || encr == encr_id::aes_gcm_16;
}

}  // namespace

sa_payload ike_offer(const config::ike_settings& s, const bytes& spi) {
    sa_payload sa;
    uint8_t n = 1;
    for (const auto& p : s.proposals) {
        proposal pr;
        pr.number = n++;
        pr.protocol = protocol_id::ike;
        pr.spi = spi;
        pr.transforms.push_back(encr_transform(p.encr, p.encr_bits));
        pr.transforms.push_back(plain(transform_type::prf, p.prf));
        if (p.integ != integ_id::none) {
            pr.transforms.push_back(plain(transform_type::integ, p.integ));
        }
        for (uint16_t g : p.groups) {
            pr.transforms.push_back(plain(transform_type::dh, g));
        }
        sa.proposals.push_back(std::move(pr));
    }
    return sa;
}

ike_selection select_ike(const config::ike_settings& s, const sa_payload& offered,
                         uint16_t ke_group, const bytes& our_spi) {
    ike_selection fallback;  // a match whose group differs from the KE payload's
    for (const auto& ours : s.proposals) {
        if (!crypto::supported_encr(ours.encr, ours.encr_bits) ||
            !crypto::supported_prf(ours.prf)) {
            continue;
        }
        for (const auto& theirs : offered.proposals) {
            if (theirs.protocol != protocol_id::ike ||
                !has_encr(theirs, ours.encr, ours.encr_bits) ||
                !has_id(theirs, transform_type::prf, ours.prf) || !integ_fits(theirs, ours.integ)) {
                continue;
            }
            // The group: the KE payload's when both accept it, else our first both accept.
            uint16_t common = 0;
            bool ke_ok = false;
            for (uint16_t g : ours.groups) {
                if (has_id(theirs, transform_type::dh, g) && crypto::supported_group(g)) {
                    common = common == 0 ? g : common;
                    ke_ok = ke_ok || g == ke_group;
                }
            }
            if (common == 0) {
                continue;
            }
            ike_selection sel;
            sel.suite = {ours.encr, ours.encr_bits, ours.integ, ours.prf,
                         ke_ok ? ke_group : common};
            sel.chosen.number = theirs.number;
            sel.chosen.protocol = protocol_id::ike;
            sel.chosen.spi = our_spi;
            sel.chosen.transforms.push_back(encr_transform(ours.encr, ours.encr_bits));
            sel.chosen.transforms.push_back(plain(transform_type::prf, ours.prf));
            if (ours.integ != integ_id::none) {
                sel.chosen.transforms.push_back(plain(transform_type::integ, ours.integ));
            }
            sel.chosen.transforms.push_back(plain(transform_type::dh, sel.suite.dh));
            if (ke_ok) {
                sel.status = select_status::ok;
                return sel;
            }
            if (fallback.status == select_status::no_proposal) {
                sel.status = select_status::invalid_ke;
                sel.want_group = common;
                fallback = std::move(sel);
            }
        }
    }
    return fallback;
}

sa_payload esp_offer(const config::ike_settings& s, uint32_t spi, std::optional<uint16_t> dh) {
    sa_payload sa;
    uint8_t n = 1;
    for (const auto& p : s.esp_proposals) {
        proposal pr;
        pr.number = n++;
        pr.protocol = protocol_id::esp;
        pr.spi = be32(spi);
        pr.transforms.push_back(encr_transform(p.encr, p.encr_bits));
        if (p.integ != integ_id::none) {
            pr.transforms.push_back(plain(transform_type::integ, p.integ));
        }
        if (dh) {
            pr.transforms.push_back(plain(transform_type::dh, *dh));
        }
        if (p.esn) {
            pr.transforms.push_back(plain(transform_type::esn, esn_id::yes));
        }
        pr.transforms.push_back(plain(transform_type::esn, esn_id::no));
        sa.proposals.push_back(std::move(pr));
    }
    return sa;
}

std::optional<esp_selection> select_esp(const config::ike_settings& s, const sa_payload& offered,
                                        uint32_t our_spi, std::optional<uint16_t> ke_group) {
    for (const auto& ours : s.esp_proposals) {
        for (const auto& theirs : offered.proposals) {
            if (theirs.protocol != protocol_id::esp || theirs.spi.size() != 4 ||
                !has_encr(theirs, ours.encr, ours.encr_bits) || !integ_fits(theirs, ours.integ) ||
                (ours.integ == integ_id::none && !is_gcm(ours.encr))) {
                continue;
            }
            auto esns = of_type(theirs, transform_type::esn);
            bool peer_esn = has_id(theirs, transform_type::esn, esn_id::yes);
            bool peer_no_esn = esns.empty() || has_id(theirs, transform_type::esn, esn_id::no);
            bool esn = ours.esn && peer_esn;
            if (!esn && !peer_no_esn) {
                continue;
            }
            auto dhs = of_type(theirs, transform_type::dh);
            uint16_t dh = 0;
            if (ke_group) {
                if (!has_id(theirs, transform_type::dh, *ke_group)) {
                    continue;
                }
                dh = *ke_group;
            } else if (!std::all_of(dhs.begin(), dhs.end(),
                                    [](const transform* t) { return t->id == dh_id::none; })) {
                continue;
            }
            esp_selection sel;
            sel.encr = ours.encr;
            sel.encr_bits = ours.encr_bits;
            sel.integ = ours.integ;
            sel.esn = esn;
            sel.dh = dh;
            sel.peer_spi = read32(theirs.spi);
            sel.chosen.number = theirs.number;
            sel.chosen.protocol = protocol_id::esp;
            sel.chosen.spi = be32(our_spi);
            sel.chosen.transforms.push_back(encr_transform(ours.encr, ours.encr_bits));
            if (ours.integ != integ_id::none) {
                sel.chosen.transforms.push_back(plain(transform_type::integ, ours.integ));
            }
            if (dh != 0) {
                sel.chosen.transforms.push_back(plain(transform_type::dh, dh));
            }
            sel.chosen.transforms.push_back(
                plain(transform_type::esn, esn ? esn_id::yes : esn_id::no));
            return sel;
        }
    }
    return std::nullopt;
}

size_t esp_key_bytes(uint16_t encr, uint16_t bits) {
    if (encr == encr_id::des3) {
        return 24;  // K1 || K2 || K3 (RFC 2451)
    }
    return size_t(bits / 8) + (is_gcm(encr) ? 4 : 0);
}

size_t esp_integ_bytes(uint16_t integ) {
    switch (integ) {
        case integ_id::hmac_md5_96:
            return 16;  // RFC 2403
        case integ_id::hmac_sha1_96:
            return 20;
        case integ_id::hmac_sha2_256_128:
            return 32;
        case integ_id::hmac_sha2_384_192:
            return 48;
        case integ_id::hmac_sha2_512_256:
            return 64;
        default:
            return 0;
    }
}

}  // namespace dmvpn::ike::detail
