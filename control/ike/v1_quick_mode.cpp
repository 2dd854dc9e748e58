// Quick Mode, the responder (RFC 2409 section 5.5), under an authenticated ISAKMP SA:
//   QM1 HDR*, HASH(1), SA, Ni [, KE] , IDci, IDcr  ->
//                         <- QM2 HDR*, HASH(2), SA, Nr [, KE], IDci, IDcr [, RESPONDER-LIFETIME]
//   QM3 HDR*, HASH(3)  ->
// ESP in transport mode only; the proxy identities must be the two NBMA host addresses with
// protocol 47 (GRE), anything else is refused with INVALID-ID-INFORMATION. PFS when the
// initiator offers a group (the profile's `pfs`, when set, must be that group). The commit bit
// is not required. The pair is handed to the hub (install_child) before QM2 leaves: QM2 waits
// for installed(), so the initiator's first ESP packet meets an installed inbound SA.
#include <fmt/format.h>

#include <algorithm>

#include "control/ike/key_log.hpp"
#include "control/ike/v1_sa.hpp"

namespace dmvpn::ike::v1 {

namespace {

constexpr size_t max_quick_per_sa = 16;   // Quick Modes under way on one ISAKMP SA
constexpr size_t max_pairs_per_peer = 8;  // IPsec SA pairs one peer may hold (rekeys overlap)
constexpr uint32_t rfc2407_default_life_s = 28800;

// ISAKMP auth algorithm (RFC 2407 section 4.5) to the IANA integrity ID the dataplane uses.
uint16_t integ_of(uint64_t auth) {
    switch (auth) {
        case 1:
            return integ_id::hmac_md5_96;
        case 2:
            return integ_id::hmac_sha1_96;
        case 5:
            return integ_id::hmac_sha2_256_128;
        default:
            return 0;
    }
}
}  // namespace

size_t integ_key_size(uint16_t integ) {
    switch (integ) {
        case integ_id::hmac_md5_96:
            return 16;
        case integ_id::hmac_sha1_96:
            return 20;
        case integ_id::hmac_sha2_256_128:
            return 32;
        default:
            return 0;
    }
}

namespace {

struct p2_choice {
    proposal prop;
    uint16_t encr = 0, bits = 0, integ = 0, group = 0, auth_v1 = 0;
    uint32_t proposed_life_s = rfc2407_default_life_s;
    uint64_t proposed_life_kb = 0;  // 0: no kilobyte lifetime proposed
    uint32_t peer_spi = 0;
};

// Transport mode; behind a NAT (RFC 3947 section 5.1) UDP-encapsulated transport instead.
std::optional<p2_choice> choose(const sa_payload& sa, const config::ike_settings& ike, bool nat) {
    for (const auto& want : ike.esp_proposals) {
        for (const proposal& p : sa.proposals) {
            if (p.protocol != protocol_id::esp || p.spi.size() != 4) {
                continue;
            }
            for (const transform& t : p.transforms) {
                auto a = [&](uint16_t type) { return attribute_value(t.attributes, type); };
                const uint16_t encr = t.id;
                if (encr != esp_transform::triple_des && encr != esp_transform::aes) {
                    continue;
                }
                const uint64_t bits =
                    encr == esp_transform::aes ? a(p2_attr::key_length).value_or(128) : 0;
                const uint64_t auth = a(p2_attr::auth_algorithm).value_or(0);
                const uint16_t integ = integ_of(auth);
                const uint64_t mode = a(p2_attr::encapsulation_mode).value_or(0);
                const uint64_t group = a(p2_attr::group).value_or(0);
                if (encr != want.encr || bits != want.encr_bits || integ != want.integ ||
                    integ == 0 ||
                    (nat ? mode != encapsulation::udp_transport &&
                               mode != encapsulation::udp_transport_draft
                         : mode != encapsulation::transport)) {
                    continue;
                }
                if (ike.pfs_group && group != *ike.pfs_group) {
                    continue;
                }
                if (group != 0 && !ike::crypto::supported_group(static_cast<uint16_t>(group))) {
                    continue;
                }
                p2_choice c;
                c.prop = p;
                c.prop.transforms = {t};
                c.encr = encr;
                c.bits = static_cast<uint16_t>(bits);
                c.integ = integ;
                c.auth_v1 = static_cast<uint16_t>(auth);
                c.group = static_cast<uint16_t>(group);
                for (size_t i = 0; i + 1 < t.attributes.size(); ++i) {
                    const attribute& ty = t.attributes[i];
                    const attribute& du = t.attributes[i + 1];
                    if (ty.type != p2_attr::sa_life_type || du.type != p2_attr::sa_life_duration) {
                        continue;
                    }
                    const auto kind = attribute_value(std::span(&ty, 1), p2_attr::sa_life_type);
                    auto v = attribute_value(std::span(&du, 1), p2_attr::sa_life_duration);
                    if (v && *v > 0 && kind == 1) {
                        c.proposed_life_s = static_cast<uint32_t>(
                            std::min<uint64_t>(*v, std::numeric_limits<uint32_t>::max()));
                    } else if (v && *v > 0 && kind == 2) {
                        c.proposed_life_kb = *v;  // RFC 2407 section 4.5: kilobytes
                    }
                }
                c.peer_spi = (uint32_t(p.spi[0]) << 24) | (uint32_t(p.spi[1]) << 16) |
                             (uint32_t(p.spi[2]) << 8) | p.spi[3];
                return c;
            }
        }
    }
    return std::nullopt;
}

// A proxy identity naming exactly `addr` with protocol 47 (GRE): ID_IPV4_ADDR, or a /32
// ID_IPV4_ADDR_SUBNET.
bool host_gre(const id_payload& id, uint32_t addr) {
    if (id.protocol != 47 || id.port != 0) {
        return false;
    }
    const bytes a = be32(addr);  // proxy identities are public addresses: plain comparisons
    if (id.type == id_type::ipv4_addr) {
        return id.data == a;
    }
    if (id.type == id_type::ipv4_addr_subnet && id.data.size() == 8) {
        return std::equal(a.begin(), a.end(), id.data.begin()) &&
               std::all_of(id.data.begin() + 4, id.data.end(), [](uint8_t b) { return b == 0xff; });
    }
    return false;
}

// RESPONDER-LIFETIME's data (RFC 2407 section 4.6.3.1): SA Life Type seconds and its SA Life
// Duration, then, with a kilobyte limit, SA Life Type kilobytes and its duration.
void life_attribute(bytes& b, uint8_t kind, uint64_t value) {
    b.insert(b.end(), {0x80, uint8_t(p2_attr::sa_life_type), 0x00, kind});
    if (value <= 0xffff) {
        b.insert(b.end(),
                 {0x80, uint8_t(p2_attr::sa_life_duration), uint8_t(value >> 8), uint8_t(value)});
    } else {
        const auto v32 = static_cast<uint32_t>(std::min<uint64_t>(value, UINT32_MAX));
        b.insert(b.end(), {0x00, uint8_t(p2_attr::sa_life_duration), 0x00, 0x04});
        const bytes v = be32(v32);
        b.insert(b.end(), v.begin(), v.end());
    }
}
bytes life_attributes(uint32_t seconds, uint64_t kilobytes) {
    bytes b;
    life_attribute(b, 1, seconds);
    if (kilobytes != 0) {
        life_attribute(b, 2, kilobytes);
    }
    return b;
}

}  // namespace

void engine::impl::quick_mode_rx(p1_sa& sa, const datagram& d, const message& m, time_point now,
                                 outputs& out) {
    const uint32_t mid = m.hdr.message_id;
    if (mid == 0) {
        ++cnt.invalid_syntax;
        return;
    }
    if (auto q = sa.quick.find(mid); q != sa.quick.end()) {
        quick_mode& qm = q->second;
        if (qm.last_request == d.payload) {
            if (qm.answered) {
                ++cnt.duplicates_answered;
                send(sa, qm.response, out);
            }
            return;
        }
        if (!qm.answered) {
            ++cnt.dropped;
            return;
        }
        // QM3: HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b).
        bytes iv = qm.iv;
        auto plain = open(sa, m, iv);
        if (!plain) {
            return;
        }
        auto chain = parse_payloads(m.hdr.next, *plain);
        const hash_payload* h = chain && m.hdr.next == payload_type::hash
                                    ? find_payload<hash_payload>(chain->payloads)
                                    : nullptr;
        secret want = crypto::qm_hash3(sa.hash, sa.keys.skeyid_a.view(), mid, qm.ni_b, qm.nr_b);
        if (h == nullptr || !ike::crypto::equal(want.view(), h->data)) {
            ++cnt.auth_failed;
            return;
        }
        ++cnt.quick_modes;
        sa.quick.erase(q);
        return;
    }
    if (sa.quick.size() >= max_quick_per_sa) {
        ++cnt.dropped;
        return;
    }
    const tunnel_policy* pol = policy(sa.tunnel);
    if (pol == nullptr) {
        ++cnt.dropped;
        return;
    }
    bytes iv = crypto::phase2_iv(sa.hash, sa.encr, sa.iv, mid);
    auto chain = open_hashed(sa, m, iv);
    if (!chain) {
        return;
    }
    const auto* sa_p = find_payload<sa_payload>(chain->payloads);
    const auto* ni = find_payload<nonce_payload>(chain->payloads);
    const auto* ke = find_payload<ke_payload>(chain->payloads);
    std::vector<const id_payload*> ids;
    std::vector<const nat_oa_payload*> oas;  // NAT-OAi, NAT-OAr (RFC 3947 section 5.2)
    for (const auto& p : chain->payloads) {
        if (const auto* id = std::get_if<id_payload>(&p)) {
            ids.push_back(id);
        } else if (const auto* oa = std::get_if<nat_oa_payload>(&p)) {
            oas.push_back(oa);
        }
    }
    // Behind a NAT an end may name its own (original) address: NAT-OAi / NAT-OAr repeat it.
    auto names = [&](size_t k, bool nat, uint32_t seen) {
        if (host_gre(*ids[k], seen)) {
            return true;
        }
        if (!nat || oas.size() != 2 || oas[k]->type != id_type::ipv4_addr ||
            oas[k]->address.size() != 4) {
            return false;
        }
        const bytes& a = oas[k]->address;
        return host_gre(*ids[k], (uint32_t(a[0]) << 24) | (uint32_t(a[1]) << 16) |
                                     (uint32_t(a[2]) << 8) | a[3]);
    };
    auto refuse = [&](uint16_t type) {
        notification_payload n;
        n.protocol = protocol_id::esp;
        n.type = type;
        send_informational(sa, n, out);
    };
    if (sa_p == nullptr || ni == nullptr) {
        ++cnt.invalid_syntax;
        return refuse(notify_type::payload_malformed);
    }
    if (ids.size() != 2 || !names(0, sa.nat_peer, sa.peer) || !names(1, sa.nat_local, sa.local)) {
        ++cnt.invalid_id;
        return refuse(notify_type::invalid_id_information);
    }
    const size_t pairs = size_t(std::count_if(children.begin(), children.end(), [&](const auto& c) {
        return c.second.sa.peer == sa.peer && c.second.sa.tunnel == sa.tunnel;
    }));
    if (pairs >= max_pairs_per_peer) {
        ++cnt.dropped;
        return refuse(notify_type::no_proposal_chosen);
    }
    auto choice = choose(*sa_p, pol->ike, sa.behind_nat());
    if (!choice || (choice->group != 0) != (ke != nullptr)) {
        ++cnt.no_proposal;
        return refuse(notify_type::no_proposal_chosen);
    }
    std::optional<secret> g_qm;
    bytes ke_r;
    if (choice->group != 0) {
        bool refused = false;
        auto dh = dh_answer(choice->group, ke->data, refused);
        if (!dh) {
            if (!refused) {
                return;
            }
            return refuse(notify_type::invalid_key_information);
        }
        g_qm = std::move(dh->gxy);
        ke_r = dh->kx->public_value();
    }
    quick_mode qm;
    qm.mid = mid;
    qm.started = now;
    qm.last_request = d.payload;
    qm.ni_b = ni->data;
    qm.nr_b = random_bytes(32);

    child_rec rec = new_pair(sa, choice->encr, choice->bits, choice->integ);
    child_sa& c = rec.sa;
    c.inbound.spi = fresh_spi();
    c.outbound.spi = choice->peer_spi;
    std::optional<ike::crypto::cspan> gv;
    if (g_qm) {
        gv = g_qm->view();
    }
    pair_keys(sa, c, gv, qm.ni_b, qm.nr_b);
    // The initiator installs the pair only when QM2 arrives, so our outbound waits
    // (control/ike/child_pairs.hpp; a first pair: the hub's registration to an NHS peer waits).
    // Make before break: a second pair with the peer replaces the current one.
    c.outbound_waits = true;
    for (uint64_t cid : children_of(peer_key(sa.peer, sa.tunnel))) {
        const child_rec& other = children.at(cid);
        if (other.sa.peer == sa.peer && other.sa.tunnel == sa.tunnel && other.installed) {
            c.replaces = cid;
        }
    }
    const uint32_t ours = pol->ike.child_lifetime_s;
    const uint32_t life = std::min(ours, choice->proposed_life_s);
    // Kilobytes: ours (`child-lifetime-bytes`, rounded up to whole kilobytes) against the
    // proposal's; the shorter one counts, from the workers' byte counters (engine::usage).
    const uint64_t ours_kb = (pol->ike.child_lifetime_bytes + 1023) / 1024;
    uint64_t life_kb = choice->proposed_life_kb;
    if (ours_kb != 0 && (life_kb == 0 || ours_kb < life_kb)) {
        life_kb = ours_kb;
    }
    rec.life_bytes = life_kb * 1024;
    rec.p1 = sa.id;
    rec.encr_v1 = choice->encr;
    rec.auth_v1 = choice->auth_v1;
    rec.expire_at = now + std::chrono::seconds(life);

    // QM2: HASH(2) | SA | Nr [| KE] | IDci | IDcr [| RESPONDER-LIFETIME].
    sa_payload rs;
    rs.doi = sa_p->doi;
    rs.situation = sa_p->situation;
    proposal rp = choice->prop;
    rp.spi = be32(c.inbound.spi);
    rs.proposals = {rp};
    std::vector<payload> ps;
    ps.push_back(rs);
    ps.push_back(nonce_payload{qm.nr_b});
    if (!ke_r.empty()) {
        ps.push_back(ke_payload{ke_r});
    }
    ps.push_back(*ids[0]);
    ps.push_back(*ids[1]);
    if (choice->proposed_life_s > ours || life_kb != choice->proposed_life_kb) {
        notification_payload n;
        n.protocol = protocol_id::esp;
        n.spi = be32(choice->peer_spi);
        n.type = notify_type::responder_lifetime;
        n.data = life_attributes(life, life_kb);
        ps.push_back(n);
    }
    const v1::chain rest_out = serialize_payloads(ps);
    secret h2 = crypto::qm_hash2(sa.hash, sa.keys.skeyid_a.view(), mid, qm.ni_b, rest_out.data);
    ps.insert(ps.begin(), hash_payload{bytes(h2.data(), h2.data() + h2.size())});
    header hdr;
    hdr.spi_i = sa.cky_i;
    hdr.spi_r = sa.cky_r;
    hdr.exch = exchange::quick;
    hdr.message_id = mid;
    qm.iv = iv;
    qm.response = seal(sa, hdr, ps, qm.iv);
    qm.child_id = c.id;
    if (key_log) {
        key_log->child(c);
    }
    out.requests.emplace_back(install_child{c});
    touch(c.id);
    index_child(rec);
    children[c.id] = std::move(rec);
    sa.quick[mid] = std::move(qm);
}

}  // namespace dmvpn::ike::v1
