// The hub's half for the spoke emulator's unit tests: frames out of the engine go to a scripted
// hub written with the NHRP codec (ARP, registration replies, forwarding with a Traffic
// Indication, forwarded Resolution Requests, purge), whose frames go back in; UDP (IKE) goes to
// a hook the test sets. The rig drives the emulator in 1 ms steps.
#pragma once

#include <catch2/catch.hpp>

#include <deque>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "control/nhrp/packet.hpp"
#include "tools/spokesim/engine.hpp"
#include "tools/spokesim/esp.hpp"
#include "tools/spokesim/frames.hpp"

namespace dmvpn::spokesim::test {

inline constexpr uint64_t ms = 1000;
inline const mac port_mac{0x02, 0xaa, 0, 0, 0, 0x01};
inline const mac hub_mac{0x02, 0xbb, 0, 0, 0, 0x01};

struct capture_sink final : frame_sink {
    std::deque<buffer> frames;
    void send(std::span<const uint8_t> f) override { frames.emplace_back(f.begin(), f.end()); }
};

// The hub's half, reduced to what a Phase 3 hub does for the emulator to react to.
class scripted_hub {
public:
    scripted_hub(const topology& t, std::optional<uint32_t> key, std::string auth)
        : _t(t), _key(key), _auth(std::move(auth)) {}

    std::unique_ptr<esp_layer> esp;  // the hub's side of every spoke's SA pair
    uint64_t esp_decrypted = 0;
    bool redirect = true;
    bool corrupt_next_data = false;
    uint16_t reply_code = 0;
    std::map<ipv4, ipv4> bindings;  // overlay -> NBMA, from registrations
    uint64_t arp_requests = 0;
    std::map<ipv4, uint64_t> announcements;  // gratuitous ARP requests, per sender address
    uint64_t data_forwarded = 0;
    uint64_t tis_sent = 0;
    uint64_t resolutions_forwarded = 0;
    uint64_t purge_replies = 0;
    std::vector<nhrp::packet> nhrp_seen;
    // With expect_flood, hostile frames are counted instead of failing the test.
    bool expect_flood = false;
    uint64_t flood_unknown_source = 0;
    uint64_t flood_malformed = 0;
    uint64_t flood_wrong_auth = 0;
    // Frames from unknown sources, kept whole (--forge checks their content).
    std::vector<buffer> unknown_frames;
    // Inner packets the spokes sent to the hub's overlay address (echo replies, --data-to-hub).
    std::vector<buffer> to_hub;
    std::vector<buffer> elsewhere;  // data to no spoke and not the hub: behind the hub's routes
    // UDP to the hub (IKE): handed here when set, frames for the spokes into the deque.
    std::function<void(const ipv4_view&, std::deque<buffer>&)> on_udp;

    // Handles one frame from the emulator; frames for it go into `to_spokes`.
    void on_frame(const buffer& f, std::deque<buffer>& to_spokes) {
        auto eth = parse_eth(f);
        REQUIRE(eth);
        if (eth->type == ethertype_arp) {
            auto arp = parse_arp(eth->payload);
            REQUIRE(arp);
            if (arp->op == 1 && arp->target_ip == _t.hub_nbma()) {
                ++arp_requests;
                to_spokes.push_back(
                    arp_frame(2, hub_mac, _t.hub_nbma(), arp->sender_mac, arp->sender_ip));
            } else if (arp->op == 1 && arp->target_ip == arp->sender_ip) {
                CHECK(eth->dst == broadcast_mac);
                ++announcements[arp->sender_ip];
            }
            return;
        }
        REQUIRE(eth->dst == hub_mac);
        auto ip = parse_ipv4(eth->payload);
        REQUIRE(ip);
        REQUIRE(ip->checksum_ok);
        REQUIRE(ip->dst == _t.hub_nbma());
        if (expect_flood && !_t.local_by_nbma(ip->src)) {
            ++flood_unknown_source;
            unknown_frames.push_back(f);
            REQUIRE(ip->proto == ip_proto_gre);  // no SA to protect it with
            return;
        }
        if (ip->proto == ip_proto_udp && on_udp) {
            on_udp(*ip, to_spokes);
            return;
        }
        buffer clear;
        if (esp) {
            REQUIRE(ip->proto == ip_proto_esp);
            auto spoke = _t.local_by_nbma(ip->src);
            REQUIRE(spoke);
            clear.assign(eth->payload.begin(), eth->payload.end());
            REQUIRE(esp->unprotect(*spoke, clear) == esp_status::ok);
            ++esp_decrypted;
            ip = parse_ipv4(clear);
            REQUIRE(ip);
        }
        REQUIRE(ip->proto == ip_proto_gre);
        auto gre = parse_gre(ip->payload);
        REQUIRE(gre);
        REQUIRE(gre->key == _key);
        if (gre->proto == gre_proto_nhrp) {
            auto p = nhrp::parse(gre->payload);
            if (expect_flood && !p) {
                ++flood_malformed;
                return;
            }
            REQUIRE(p);
            if (expect_flood && !auth_matches(*p)) {
                ++flood_wrong_auth;
                REQUIRE(_t.local_by_overlay(*from_bytes(p->src_proto)) == std::nullopt);
                return;
            }
            nhrp_seen.push_back(*p);
            on_nhrp(*p, ip->src, to_spokes);
        } else {
            on_data(gre->payload, ip->src, to_spokes);
        }
    }

    // Packets the hub originates carry its password, as Cisco's do.
    void send_nhrp(nhrp::packet p, ipv4 to, std::deque<buffer>& out) {
        bool has_auth = false;
        for (const auto& e : p.extensions) {
            has_auth |= e.type == nhrp::ext::authentication;
        }
        if (!_auth.empty() && !has_auth) {
            nhrp::extension a;
            a.type = nhrp::ext::authentication;
            a.compulsory = true;
            a.auth_spi = 1;
            a.data.assign(_auth.begin(), _auth.end());
            p.extensions.push_back(a);
            p.has_extension_area = true;
        }
        auto b = nhrp::build(p);
        REQUIRE(b);
        send_gre(gre_proto_nhrp, *b, to, out);
    }

    void send_gre(uint16_t proto, std::span<const uint8_t> payload, ipv4 to,
                  std::deque<buffer>& out) {
        buffer pkt;
        put_ipv4(pkt, _t.hub_nbma(), to, ip_proto_gre, (_key ? 8 : 4) + payload.size(), 1);
        put_gre(pkt, _key, proto);
        pkt.insert(pkt.end(), payload.begin(), payload.end());
        if (esp) {
            REQUIRE(esp->protect(*_t.local_by_nbma(to), pkt) == esp_status::ok);
        }
        buffer f;
        put_eth(f, port_mac, hub_mac, ethertype_ipv4);
        f.insert(f.end(), pkt.begin(), pkt.end());
        out.push_back(std::move(f));
    }

    void forget_redirects() { _redirected.clear(); }

    nhrp::packet purge_for(ipv4 requester_overlay, ipv4 gone) const {
        nhrp::packet purge;
        purge.hdr.type = nhrp::op::purge_request;
        purge.request_id = 4242;
        purge.src_nbma = to_bytes(_t.hub_nbma());
        purge.src_proto = to_bytes(_t.hub_overlay());
        purge.dst_proto = to_bytes(requester_overlay);
        nhrp::cie c;
        c.prefix_length = 32;
        c.client_proto = to_bytes(gone);
        purge.cies.push_back(c);
        return purge;
    }

private:
    bool auth_matches(const nhrp::packet& p) const {
        for (const auto& e : p.extensions) {
            if (e.type == nhrp::ext::authentication) {
                return std::string(e.data.begin(), e.data.end()) == _auth;
            }
        }
        return _auth.empty();
    }

    void on_nhrp(const nhrp::packet& p, ipv4 from, std::deque<buffer>& out) {
        if (p.hdr.type == nhrp::op::registration_request) {
            nhrp::packet r = p;
            r.hdr.type = nhrp::op::registration_reply;
            r.cies.at(0).code = static_cast<uint8_t>(reply_code);
            for (auto& e : r.extensions) {
                if (e.type == nhrp::ext::responder_address) {
                    nhrp::cie c;
                    c.prefix_length = 32;
                    c.client_nbma = to_bytes(_t.hub_nbma());
                    c.client_proto = to_bytes(_t.hub_overlay());
                    e.cies = {c};
                }
            }
            if (reply_code == 0) {
                bindings[*from_bytes(p.src_proto)] = from;
            }
            send_nhrp(r, from, out);
        } else if (p.hdr.type == nhrp::op::resolution_request) {
            // Phase 3: forward towards the owner of the destination, transit record added.
            ipv4 target = *from_bytes(p.dst_proto);
            auto owner = _t.local_by_destination(target);
            REQUIRE(owner);
            nhrp::packet f = p;
            f.hdr.hop_count = static_cast<uint8_t>(f.hdr.hop_count - 1);
            for (auto& e : f.extensions) {
                if (e.type == nhrp::ext::forward_transit) {
                    nhrp::cie c;
                    c.client_nbma = to_bytes(_t.hub_nbma());
                    c.client_proto = to_bytes(_t.hub_overlay());
                    e.cies.push_back(c);
                }
            }
            ++resolutions_forwarded;
            send_nhrp(f, _t.nbma_of(*owner), out);
        } else if (p.hdr.type == nhrp::op::purge_reply) {
            ++purge_replies;
        }
    }

    void on_data(std::span<const uint8_t> inner, ipv4 from, std::deque<buffer>& out) {
        auto ip = parse_ipv4(inner);
        REQUIRE(ip);
        if (ip->dst == _t.hub_overlay()) {
            to_hub.emplace_back(inner.begin(), inner.end());  // for the hub's host
            return;
        }
        auto owner = _t.local_by_destination(ip->dst);
        if (!owner) {
            elsewhere.emplace_back(inner.begin(), inner.end());  // --data-to: routed on
            return;
        }
        REQUIRE(bindings.count(_t.overlay_of(*owner)) == 1);
        buffer copy(inner.begin(), inner.end());
        if (corrupt_next_data) {
            corrupt_next_data = false;
            copy.back() ^= 0xff;
        }
        ++data_forwarded;
        send_gre(gre_proto_ipv4, copy, _t.nbma_of(*owner), out);
        if (redirect && _redirected.insert({from, ip->dst}).second) {
            // Out the tunnel it came in by: tell the sender (Cisco's redirect).
            nhrp::packet ti;
            ti.hdr.type = nhrp::op::traffic_indication;
            ti.src_nbma = to_bytes(_t.hub_nbma());
            ti.src_proto = to_bytes(_t.hub_overlay());
            ti.dst_proto = to_bytes(ip->src);
            ti.contents.assign(inner.begin(), inner.begin() + 28);
            ++tis_sent;
            send_nhrp(ti, from, out);
        }
    }

    const topology& _t;
    std::optional<uint32_t> _key;
    std::string _auth;
    std::set<std::pair<ipv4, ipv4>> _redirected;
};

struct rig {
    options o;
    capture_sink sink;
    std::unique_ptr<topology> topo;
    std::unique_ptr<engine> eng;
    std::unique_ptr<scripted_hub> hub;
    uint64_t now = 1'000'000;

    // Called with every step's time before the emulator polls (a hub's own timers).
    std::function<void(uint64_t)> on_step;

    // `layers`, when given, makes the emulator's ESP and IKE layers (and may set the hub up);
    // otherwise --esp's manual SAs, the hub holding their other side.
    using layer_maker =
        std::function<void(rig&, std::unique_ptr<esp_layer>& esp, std::unique_ptr<ike_layer>& ike)>;
    explicit rig(std::vector<std::string> args, const layer_maker& layers = {}) {
        auto p = parse_options(args);
        REQUIRE(p);
        o = *p;
        topo = std::make_unique<topology>(o);
        std::unique_ptr<esp_layer> spoke_esp;
        std::unique_ptr<ike_layer> spoke_ike;
        hub = std::make_unique<scripted_hub>(*topo, o.gre_key, o.auth);
        if (layers) {
            layers(*this, spoke_esp, spoke_ike);
        } else if (o.esp != esp_transform::none) {
            auto s = make_esp_layer(*topo);
            REQUIRE(s);
            spoke_esp = std::move(*s);
            auto h = make_esp_layer(*topo, true);
            REQUIRE(h);
            hub->esp = std::move(*h);
        }
        eng =
            std::make_unique<engine>(o, port_mac, sink, std::move(spoke_esp), std::move(spoke_ike));
        eng->start(now);
    }

    // Advances time in 1 ms steps, shuttling frames both ways.
    void run_for(uint64_t us) {
        uint64_t end = now + us;
        while (now < end && !eng->done()) {
            if (on_step) {
                on_step(now);
            }
            eng->poll(now);
            std::deque<buffer> back;
            while (!sink.frames.empty()) {
                buffer f = std::move(sink.frames.front());
                sink.frames.pop_front();
                hub->on_frame(f, back);
            }
            for (auto& f : back) {
                eng->on_frame(f, now);
            }
            now += ms;
        }
    }
};

}  // namespace dmvpn::spokesim::test
