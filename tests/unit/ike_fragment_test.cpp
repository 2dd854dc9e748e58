// IKE fragmentation (RFC 7383): two engines back to back whose certificate IKE_AUTH messages
// cross a small fragment-size, fragments out of order, duplicated, forged, lost and expired;
// the reassembly's bounds; and strongSwan 5.9.8's fragmented IKE_AUTH exchange (the committed
// capture with its logged keys) read by our reassembly.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "control/ike/crypto.hpp"
#include "control/ike/engine.hpp"
#include "control/ike/fragments.hpp"
#include "control/ike/message.hpp"
#include "dataplane/wire/ipv4.hpp"
#include "tests/unit/crypto_test_support.hpp"
#include "tests/unit/ike_engine_pair.hpp"

using namespace dmvpn;
using namespace dmvpn::ike;
using namespace dmvpn::ike::testing;
using crypto_test::hex;

namespace {

config::ike_settings fragmenting(config::ike_settings s, uint32_t size) {
    s.fragment_size = size;
    return s;
}

bool is_skf(const datagram& d) { return is_fragment(parsed(d)); }

skf_payload skf(const datagram& d) { return std::get<skf_payload>(parsed(d).payloads.back()); }

// The IKE_AUTH datagrams among `ds`.
std::vector<datagram> auth_messages(const std::vector<datagram>& ds) {
    std::vector<datagram> out;
    for (const auto& d : ds) {
        if (parsed(d).hdr.exch == exchange::ike_auth) {
            out.push_back(d);
        }
    }
    return out;
}

// The fragments of one message: numbered 1..n in order, each of total n, only the first naming
// the inner payload, and each IP datagram (20 + 8 + marker on 4500 + IKE) within `size`.
void check_fragments(const std::vector<datagram>& ds, uint32_t size) {
    REQUIRE(ds.size() >= 2);
    for (size_t i = 0; i < ds.size(); ++i) {
        REQUIRE(is_skf(ds[i]));
        const skf_payload f = skf(ds[i]);
        CHECK(f.number == i + 1);
        CHECK(f.total == ds.size());
        CHECK((f.first_inner != payload_type::none) == (i == 0));
        const bool marker = ds[i].sport == 4500 || ds[i].dport == 4500;
        CHECK(20 + 8 + (marker ? 4 : 0) + ds[i].payload.size() <= size);
    }
}

// Hands `ds` to one side in the order given; what it sent in answer (installs confirmed).
std::vector<datagram> deliver(wire_pair& p, bool to_b, const std::vector<datagram>& ds) {
    side& to = to_b ? p.b : p.a;
    std::vector<std::pair<datagram, bool>> q;
    for (const auto& d : ds) {
        outputs o;
        to.e->on_datagram(d, p.now, o);
        p.take(to, o, q, !to_b);
    }
    std::vector<datagram> sent;
    for (auto& [d, from_a] : q) {
        sent.push_back(d);
    }
    return sent;
}

// IKE_SA_INIT done by hand: the initiator's first IKE_AUTH datagrams.
std::vector<datagram> start(wire_pair& p) {
    outputs o;
    p.a.e->initiate(0, hub_addr, p.now, o);
    std::vector<std::pair<datagram, bool>> q;
    p.take(p.a, o, q, true);
    REQUIRE(q.size() == 1);
    auto init_response = deliver(p, true, {q[0].first});
    REQUIRE(init_response.size() == 1);
    return deliver(p, false, init_response);
}

std::string show_json(const engine& e) { return e.show("ikev2 sa", true); }

}  // namespace

TEST_CASE("Certificates over a small fragment-size: both IKE_AUTH messages cross as fragments") {
    for (uint32_t size : {576u, 1280u}) {
        INFO("fragment-size " << size);
        // At 1280 the RSA leaves travel with their CA certificate, so IKE_AUTH is over 1280.
        const std::string sc = size == 576 ? "" : "spoke-rsa-ca.pem";
        const std::string hc = size == 576 ? "" : "hub-rsa-ca.pem";
        auto p = make_pair(fragmenting(cert_settings("spoke-rsa", sc), size),
                           fragmenting(cert_settings("hub-rsa", hc), size));
        p.initiate();
        REQUIRE(p.a.ups.size() == 1);
        REQUIRE(p.b.ups.size() == 1);
        REQUIRE(p.a.installs.size() == 1);
        REQUIRE(p.b.installs.size() == 1);
        require_pair_matches(p.a.installs[0], p.b.installs[0]);
        // IKE_SA_INIT offered and answered IKEV2_FRAGMENTATION_SUPPORTED.
        CHECK(notify_of(parsed(p.a.sent[0]), notify_type::ikev2_fragmentation_supported) !=
              nullptr);
        CHECK(notify_of(parsed(p.b.sent[0]), notify_type::ikev2_fragmentation_supported) !=
              nullptr);
        const auto request = auth_messages(p.a.sent);
        const auto response = auth_messages(p.b.sent);
        check_fragments(request, size);
        check_fragments(response, size);
        CHECK(p.a.e->counters().fragments_tx == request.size());
        CHECK(p.b.e->counters().fragments_rx == request.size());
        CHECK(p.b.e->counters().fragments_reassembled == 1);
        CHECK(p.a.e->counters().fragments_reassembled == 1);
        CHECK(p.a.e->counters().fragments_invalid == 0);
        CHECK(show_json(*p.b.e).find("\"fragmentation\":true") != std::string::npos);

        // The established SA keeps fragmenting only what is too big: DPD stays one datagram.
        size_t before = p.a.sent.size();
        p.tick(seconds(31));
        REQUIRE(p.a.sent.size() > before);
        CHECK_FALSE(is_skf(p.a.sent[before]));
    }
}

TEST_CASE("Fragments out of order and duplicated: one message, answered once") {
    auto p = make_pair(fragmenting(cert_settings("spoke-rsa"), 576),
                       fragmenting(cert_settings("hub-rsa"), 576));
    auto frags = start(p);
    REQUIRE(frags.size() >= 3);
    // Last first, each twice, fragment 1 last: nothing is answered before the last one missing.
    std::vector<datagram> shuffled;
    for (size_t i = frags.size(); i-- > 1;) {
        shuffled.push_back(frags[i]);
        shuffled.push_back(frags[i]);
    }
    CHECK(deliver(p, true, shuffled).empty());
    CHECK(p.b.ups.empty());
    auto response = deliver(p, true, {frags[0]});
    CHECK(p.b.ups.size() == 1);
    check_fragments(response, 576);
    CHECK(p.b.e->counters().fragments_reassembled == 1);
    CHECK(p.b.e->counters().fragments_rx == 2 * (frags.size() - 1) + 1);
    // The initiator gets the response fragments reversed and doubled as well.
    std::vector<datagram> back;
    for (size_t i = response.size(); i-- > 0;) {
        back.push_back(response[i]);
        back.push_back(response[i]);
    }
    deliver(p, false, back);
    REQUIRE(p.a.ups.size() == 1);
    REQUIRE(p.a.installs.size() == 1);
    REQUIRE(p.b.installs.size() == 1);
    require_pair_matches(p.a.installs[0], p.b.installs[0]);
    CHECK(p.a.e->counters().fragments_reassembled == 1);
}

TEST_CASE("A forged fragment is counted and changes nothing held") {
    auto p = make_pair(fragmenting(cert_settings("spoke-ec"), 576),
                       fragmenting(cert_settings("hub-ec"), 576));
    auto frags = start(p);
    REQUIRE(frags.size() >= 2);
    const size_t n = frags.size();
    std::vector<datagram> all_but_last(frags.begin(), frags.end() - 1);
    CHECK(deliver(p, true, all_but_last).empty());

    std::vector<datagram> forged;
    datagram flipped = frags[n - 1];  // a ciphertext bit flipped
    flipped.payload[flipped.payload.size() / 2] ^= 0x01;
    forged.push_back(flipped);
    datagram bigger = frags[0];  // Total Fragments raised: would restart the reassembly
    bigger.payload[header_size + 7] = uint8_t(n + 1);
    forged.push_back(bigger);
    datagram moved = frags[n - 1];  // renumbered n of n + 1
    moved.payload[header_size + 5] = uint8_t(n);
    moved.payload[header_size + 7] = uint8_t(n + 1);
    forged.push_back(moved);
    CHECK(deliver(p, true, forged).empty());
    CHECK(p.b.e->counters().fragments_invalid == forged.size());
    CHECK(p.b.ups.empty());

    // The genuine last fragment completes what was held before the forgeries.
    auto response = deliver(p, true, {frags[n - 1]});
    CHECK(p.b.ups.size() == 1);
    CHECK_FALSE(response.empty());
    CHECK(p.b.e->counters().fragments_reassembled == 1);
    CHECK(p.b.e->counters().auth_failed == 0);
}

TEST_CASE(
    "A lost response: the initiator resends every fragment, the responder all of its own once") {
    auto p = make_pair(fragmenting(cert_settings("spoke-rsa"), 576),
                       fragmenting(cert_settings("hub-rsa"), 576));
    bool lose = true;
    p.drop = [&](const datagram& d, bool from_a) {
        return lose && !from_a && parsed(d).hdr.exch == exchange::ike_auth;
    };
    p.initiate();
    CHECK(p.b.ups.size() == 1);
    CHECK(p.a.ups.empty());
    const auto request = auth_messages(p.a.sent);
    const auto response = auth_messages(p.b.sent);
    REQUIRE(request.size() >= 2);
    REQUIRE(response.size() >= 2);
    lose = false;
    p.tick(seconds(2));  // the initiator's first retransmission
    const auto request2 = auth_messages(p.a.sent);
    const auto response2 = auth_messages(p.b.sent);
    REQUIRE(request2.size() == 2 * request.size());
    for (size_t i = 0; i < request.size(); ++i) {
        CHECK(request2[request.size() + i].payload == request[i].payload);  // the same bytes
    }
    // Section 2.6.1: only fragment 1 of the retransmitted request makes the response go again.
    REQUIRE(response2.size() == 2 * response.size());
    for (size_t i = 0; i < response.size(); ++i) {
        CHECK(response2[response.size() + i].payload == response[i].payload);
    }
    CHECK(p.b.e->counters().duplicates_answered == 1);
    REQUIRE(p.a.ups.size() == 1);
    require_pair_matches(p.a.installs[0], p.b.installs[0]);
}

TEST_CASE("A message whose fragments stop coming is forgotten after 30 s") {
    auto p = make_pair(fragmenting(cert_settings("spoke-rsa"), 576),
                       fragmenting(cert_settings("hub-rsa"), 576));
    p.drop = [&](const datagram& d, bool from_a) {
        return !from_a && parsed(d).hdr.exch == exchange::ike_auth;
    };
    p.initiate();
    const auto response = auth_messages(p.b.sent);
    const size_t n = response.size();
    REQUIRE(n >= 3);
    std::vector<datagram> head(response.begin(), response.end() - 1);
    CHECK(deliver(p, false, head).empty());
    // The initiator (still retransmitting its request, at 2, 6, 14 and 30 s) holds them 30 s.
    outputs ignored;
    p.now += seconds(29);
    p.a.e->tick(p.now, ignored);
    CHECK(p.a.e->counters().fragments_dropped == 0);
    p.now += seconds(1);
    p.a.e->tick(p.now, ignored);
    CHECK(p.a.e->counters().fragments_dropped == n - 1);
    // What was held is gone: the last fragment alone completes nothing.
    deliver(p, false, {response[n - 1]});
    CHECK(p.a.ups.empty());
    // All of them again (the responder's next answer): up.
    deliver(p, false, response);
    CHECK(p.a.ups.size() == 1);
}

TEST_CASE("fragmentation: no on one end: nothing negotiated, IKE_AUTH whole") {
    for (bool hub_off : {true, false}) {
        auto spoke = fragmenting(cert_settings("spoke-rsa"), 576);
        auto hub = fragmenting(cert_settings("hub-rsa"), 576);
        (hub_off ? hub : spoke).fragmentation = false;
        auto p = make_pair(spoke, hub);
        p.initiate();
        REQUIRE(p.b.ups.size() == 1);
        REQUIRE(p.a.ups.size() == 1);
        CHECK(notify_of(parsed(p.b.sent[0]), notify_type::ikev2_fragmentation_supported) ==
              nullptr);
        CHECK((notify_of(parsed(p.a.sent[0]), notify_type::ikev2_fragmentation_supported) !=
               nullptr) == hub_off);
        for (const auto& d : auth_messages(p.a.sent)) {
            CHECK_FALSE(is_skf(d));
        }
        CHECK(auth_messages(p.a.sent).size() == 1);
        CHECK(p.a.e->counters().fragments_tx == 0);
        CHECK(show_json(*p.b.e).find("\"fragmentation\":false") != std::string::npos);
    }
}

// ---- the reassembly's bounds, with keys of our own ----

namespace {

ike::crypto::sk_keys cbc_keys(uint8_t seed) {
    ike::crypto::sk_keys k;
    k.encr = encr_id::aes_cbc;
    k.encr_bits = 256;
    k.integ = integ_id::hmac_sha2_256_128;
    bytes e(32), a(32);
    for (size_t i = 0; i < 32; ++i) {
        e[i] = uint8_t(seed + i);
        a[i] = uint8_t(seed * 3 + i);
    }
    k.encr_key = ike::crypto::secret(e);
    k.integ_key = ike::crypto::secret(a);
    return k;
}

header auth_header(uint32_t mid = 1) {
    header h;
    h.spi_i = 0x1122334455667788ULL;
    h.spi_r = 0x99aabbccddeeff00ULL;
    h.exch = exchange::ike_auth;
    h.flags = header_flag::initiator;
    h.message_id = mid;
    return h;
}

// An inner chain of `n` octets: one vendor ID payload (any bytes are a valid VID).
chain vendor_chain(size_t n) {
    vendor_payload v;
    v.id.resize(n - generic_payload_header_size);
    for (size_t i = 0; i < v.id.size(); ++i) {
        v.id[i] = uint8_t(i * 7);
    }
    return serialize_payloads({v});
}

reassembly::verdict add(reassembly& r, const ike::crypto::sk_keys& k, const bytes& d,
                        size_t room = max_reassembled) {
    auto m = parse(d);
    REQUIRE(m);
    return r.add(k, *m, d, room, {});
}

// A fragment built by hand: any number and total, protected under `k`.
bytes handmade(const ike::crypto::sk_keys& k, uint16_t number, uint16_t total, const bytes& plain) {
    header h = auth_header();
    h.next = payload_type::skf;
    const size_t skf_len = 8 + plain.size() + ike::crypto::protected_size(k, plain.size());
    h.length = uint32_t(header_size + skf_len);
    bytes msg = serialize_header(h);
    for (uint8_t b :
         {uint8_t(number == 1 ? 43 : 0), uint8_t(0), uint8_t(skf_len >> 8), uint8_t(skf_len),
          uint8_t(number >> 8), uint8_t(number), uint8_t(total >> 8), uint8_t(total)}) {
        msg.push_back(b);
    }
    auto enc = ike::crypto::protect(k, msg, plain);
    REQUIRE(enc);
    msg.insert(msg.end(), enc->begin(), enc->end());
    return msg;
}

}  // namespace

TEST_CASE("reassembly: the chain back, any order; bounds on count, bytes, room; re-fragmentation") {
    const auto k = cbc_keys(1);
    const chain c = vendor_chain(3000);
    const auto frags = protect_fragments(k, auth_header(), c, 600);
    REQUIRE(frags);

    SECTION("split at 600 octets, put back in reverse order") {
        // 600 - 28 (header) - 8 (SKF) - 16 (IV) - 16 (ICV) = 532: 527 octets, pad length and
        // padding to a 16-octet block; 3000 octets in 6 fragments.
        CHECK(frags->size() == 6);
        for (const auto& f : *frags) {
            CHECK(f.size() <= 600);
        }
        reassembly r;
        for (size_t i = frags->size(); i-- > 1;) {
            CHECK(add(r, k, (*frags)[i]) == reassembly::verdict::stored);
        }
        CHECK(add(r, k, (*frags)[3]) == reassembly::verdict::duplicate);
        CHECK(add(r, k, (*frags)[0]) == reassembly::verdict::complete);
        auto w = r.take();
        CHECK(w.first == payload_type::vendor);
        CHECK(w.chain == c.data);
        CHECK_FALSE(r.active());
        CHECK(r.held() == 0);
    }
    SECTION("another key: forged, nothing held") {
        reassembly r;
        CHECK(add(r, cbc_keys(2), (*frags)[0]) == reassembly::verdict::forged);
        CHECK_FALSE(r.active());
        CHECK(r.held() == 0);
    }
    SECTION("no room left (the engine's memory bound): refused") {
        reassembly r;
        CHECK(add(r, k, (*frags)[0], 100) == reassembly::verdict::refused);
        CHECK(r.held() == 0);
    }
    SECTION("more than max_fragments announced: refused; none sent either") {
        reassembly r;
        CHECK(add(r, k, handmade(k, 1, max_fragments + 1, bytes(16, 1))) ==
              reassembly::verdict::refused);
        CHECK_FALSE(r.active());
        CHECK_FALSE(protect_fragments(k, auth_header(), vendor_chain(40000), 576));
    }
    SECTION("more than max_reassembled octets: refused, and all of it let go") {
        reassembly r;
        const bytes big(1200, 0x5a);
        const uint16_t total = 60;  // 60 * 1200 > 65535
        size_t stored = 0;
        reassembly::verdict v = reassembly::verdict::stored;
        for (uint16_t i = 1; i <= total && v == reassembly::verdict::stored; ++i) {
            v = add(r, k, handmade(k, i, total, big));
            stored += v == reassembly::verdict::stored ? 1 : 0;
        }
        CHECK(v == reassembly::verdict::refused);
        CHECK(stored == max_reassembled / big.size());
        CHECK_FALSE(r.active());
        CHECK(r.held() == 0);
    }
    SECTION("re-fragmented smaller (more fragments): start over; the coarser ones refused") {
        auto coarse = protect_fragments(k, auth_header(), c, 1200);
        auto fine = protect_fragments(k, auth_header(), c, 600);
        REQUIRE(coarse);
        REQUIRE(fine);
        REQUIRE(coarse->size() < fine->size());
        reassembly r;
        CHECK(add(r, k, (*coarse)[1]) == reassembly::verdict::stored);
        CHECK(add(r, k, (*fine)[0]) == reassembly::verdict::stored);
        CHECK(add(r, k, (*coarse)[0]) == reassembly::verdict::refused);
        for (size_t i = 1; i + 1 < fine->size(); ++i) {
            CHECK(add(r, k, (*fine)[i]) == reassembly::verdict::stored);
        }
        CHECK(add(r, k, fine->back()) == reassembly::verdict::complete);
        CHECK(r.take().chain == c.data);
    }
    SECTION("a fragment of the next message ID starts over") {
        auto one = protect_fragments(k, auth_header(1), c, 600);
        auto two = protect_fragments(k, auth_header(2), c, 600);
        REQUIRE(one);
        REQUIRE(two);
        reassembly r;
        CHECK(add(r, k, (*one)[0]) == reassembly::verdict::stored);
        CHECK(add(r, k, (*two)[1]) == reassembly::verdict::stored);
        CHECK(r.message_id() == 2);
        CHECK(r.count() == 1);
    }
    SECTION("GCM: the same") {
        ike::crypto::sk_keys g;
        g.encr = encr_id::aes_gcm_16;
        g.encr_bits = 128;
        g.encr_key = ike::crypto::secret(bytes(20, 0x42));
        auto frags = protect_fragments(g, auth_header(), c, 576);
        REQUIRE(frags);
        reassembly r;
        for (size_t i = 0; i + 1 < frags->size(); ++i) {
            CHECK((*frags)[i].size() <= 576);
            CHECK(add(r, g, (*frags)[i]) == reassembly::verdict::stored);
        }
        CHECK(add(r, g, frags->back()) == reassembly::verdict::complete);
        CHECK(r.take().chain == c.data);
    }
}

// ---- strongSwan's fragments ----

namespace {

const std::string capture_name =
    "strongswan-5.9.8-ikev2-cert-rsa2048-aes256-sha256-modp2048-fragmented";

std::string strongswan_file(const std::string& ext) {
    const char* dir = std::getenv("DMVPN_TESTDATA");
    REQUIRE(dir != nullptr);
    return std::string(dir) + "/captures/strongswan/" + capture_name + ext;
}

// SK_* as charon logged them (NAME.keys.txt; tests/interop/strongswan_captures.py recomputes
// them from g^ir, the nonces and the SPIs).
std::map<std::string, bytes> logged_keys() {
    std::ifstream f(strongswan_file(".keys.txt"));
    REQUIRE(f);
    std::map<std::string, bytes> keys;
    std::string line;
    while (std::getline(f, line) && line.rfind("[CHILD_SA", 0) != 0) {
        auto eq = line.find(" = ");
        if (line.rfind("SK_", 0) == 0 && eq != std::string::npos) {
            keys[line.substr(0, eq)] = hex(line.substr(eq + 3));
        }
    }
    return keys;
}

ike::crypto::sk_keys cbc256(const bytes& e, const bytes& a) {
    ike::crypto::sk_keys k;
    k.encr = encr_id::aes_cbc;
    k.encr_bits = 256;
    k.integ = integ_id::hmac_sha2_256_128;
    k.encr_key = ike::crypto::secret(e);
    k.integ_key = ike::crypto::secret(a);
    return k;
}

// The capture's IKE messages (UDP 4500 after the non-ESP marker).
std::vector<bytes> ike_messages() {
    std::vector<bytes> out;
    for (const auto& packet : crypto_test::read_pcap_ipv4(strongswan_file(".pcap"))) {
        auto ip = wire::parse_ipv4(packet, wire::checksum_check::skip);
        REQUIRE(ip);
        REQUIRE(ip->payload.size() >= 8);
        const uint16_t dport = uint16_t(ip->payload[2] << 8 | ip->payload[3]);
        const size_t skip = 8 + (dport == 4500 ? non_esp_marker_size : 0);
        out.emplace_back(ip->payload.begin() + long(skip), ip->payload.end());
    }
    return out;
}

std::vector<payload_type> inner_types(const reassembly::whole& w) {
    auto ps = parse_payloads(w.first, w.chain);
    REQUIRE(ps);
    std::vector<payload_type> t;
    for (const auto& p : *ps) {
        t.push_back(type_of(p));
    }
    return t;
}

}  // namespace

TEST_CASE("strongSwan 5.9.8's fragmented IKE_AUTH (capture with logged keys) reassembles") {
    auto keys = logged_keys();
    REQUIRE(keys.count("SK_ei") == 1);
    const auto ki = cbc256(keys["SK_ei"], keys["SK_ai"]);
    const auto kr = cbc256(keys["SK_er"], keys["SK_ar"]);
    std::vector<bytes> request, response;
    for (const auto& m : ike_messages()) {
        auto p = parse(m);
        REQUIRE(p);
        if (is_fragment(*p)) {
            (p->hdr.is_response() ? response : request).push_back(m);
        }
    }
    REQUIRE(request.size() == 2);
    REQUIRE(response.size() == 2);

    reassembly r;
    // The initiator's request, second fragment first.
    CHECK(add(r, ki, request[1]) == reassembly::verdict::stored);
    CHECK(add(r, ki, request[0]) == reassembly::verdict::complete);
    const auto req = inner_types(r.take());
    for (payload_type t :
         {payload_type::idi, payload_type::cert, payload_type::certreq, payload_type::auth,
          payload_type::sa, payload_type::tsi, payload_type::tsr}) {
        CHECK(std::count(req.begin(), req.end(), t) == 1);
    }
    CHECK(req.front() == payload_type::idi);
    // The responder's answer.
    CHECK(add(r, kr, response[0]) == reassembly::verdict::stored);
    CHECK(add(r, kr, response[1]) == reassembly::verdict::complete);
    const auto resp = inner_types(r.take());
    CHECK(resp.front() == payload_type::idr);
    CHECK(std::count(resp.begin(), resp.end(), payload_type::cert) == 1);
    CHECK(std::count(resp.begin(), resp.end(), payload_type::auth) == 1);
    // Under the other direction's keys, or with one key byte changed: forged.
    CHECK(add(r, kr, request[0]) == reassembly::verdict::forged);
    bytes bad = keys["SK_ai"];
    bad[0] ^= 1;
    CHECK(add(r, cbc256(keys["SK_ei"], bad), request[0]) == reassembly::verdict::forged);
    CHECK_FALSE(r.active());
}
