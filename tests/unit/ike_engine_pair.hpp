// The IKEv2 engine under test: two engines wired back to back through their outputs with a
// fake clock (initiator and responder), PSK settings, and a test PKI made at run time. Shared
// by ike_engine_test.cpp and ike_fragment_test.cpp.
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "control/ike/engine.hpp"
#include "control/ike/message.hpp"

namespace dmvpn::ike::testing {

using std::chrono::seconds;

constexpr uint32_t hub_addr = 0xc6336401;    // 198.51.100.1
constexpr uint32_t spoke_addr = 0xc6336402;  // 198.51.100.2

inline config::ike_settings settings(std::string psk = "cloud-key",
                                     std::vector<uint16_t> groups = {31}) {
    config::ike_settings s;
    s.psks.push_back({"", bytes(psk.begin(), psk.end())});
    s.proposals.push_back(
        {encr_id::aes_gcm_16, 256, integ_id::none, prf_id::hmac_sha2_256, groups});
    s.proposals.push_back(
        {encr_id::aes_cbc, 256, integ_id::hmac_sha2_256_128, prf_id::hmac_sha2_256, groups});
    s.esp_proposals = {{encr_id::aes_gcm_16, 256, integ_id::none, true},
                       {encr_id::aes_cbc, 128, integ_id::hmac_sha2_256_128, false}};
    return s;
}

inline std::unique_ptr<engine> make(const config::ike_settings& s, uint32_t local) {
    config::ipsec_profile p;
    p.name = "dmvpn";
    p.ike = s;
    auto e = engine::create({p}, {{0, local, "dmvpn"}});
    REQUIRE(e);
    return std::move(*e);
}

struct side {
    std::unique_ptr<engine> e;
    std::vector<child_sa> installs;
    std::vector<remove_child> removes;
    std::vector<peer_up> ups;
    std::vector<peer_down> downs;
    std::vector<initiation_failed> failed;
    bool auto_install = true;
    std::vector<datagram> sent;  // everything it sent, in order
};

// Two engines whose datagrams reach each other unless `drop` says otherwise.
struct wire_pair {
    side a, b;  // a initiates, b responds
    time_point now = time_point{} + seconds(1000);
    std::function<bool(const datagram&, bool from_a)> drop = [](const datagram&, bool) {
        return false;
    };

    void take(side& s, outputs& o, std::vector<std::pair<datagram, bool>>& q, bool from_a) {
        for (auto& d : o.send) {
            s.sent.push_back(d);
            q.emplace_back(d, from_a);
        }
        std::vector<uint64_t> to_install;
        for (auto& r : o.requests) {
            if (auto* i = std::get_if<install_child>(&r)) {
                s.installs.push_back(i->sa);
                to_install.push_back(i->sa.id);
            } else if (auto* rm = std::get_if<remove_child>(&r)) {
                s.removes.push_back(*rm);
            } else if (auto* u = std::get_if<peer_up>(&r)) {
                s.ups.push_back(*u);
            } else if (auto* d = std::get_if<peer_down>(&r)) {
                s.downs.push_back(*d);
            } else if (auto* f = std::get_if<initiation_failed>(&r)) {
                s.failed.push_back(*f);
            }
        }
        o = {};
        if (s.auto_install) {
            for (uint64_t id : to_install) {
                outputs more;
                s.e->installed(id, now, more);
                take(s, more, q, from_a);
            }
        }
    }

    // Delivers until nothing moves.
    void settle(outputs oa = {}, outputs ob = {}) {
        std::vector<std::pair<datagram, bool>> q;
        take(a, oa, q, true);
        take(b, ob, q, false);
        for (size_t i = 0; i < q.size() && i < 1000; ++i) {
            auto [d, from_a] = q[i];
            if (drop(d, from_a)) {
                continue;
            }
            side& to = from_a ? b : a;
            outputs o;
            to.e->on_datagram(d, now, o);
            take(to, o, q, !from_a);
        }
    }
    void initiate() {
        outputs o;
        a.e->initiate(0, hub_addr, now, o);
        settle(std::move(o));
    }
    void tick(seconds dt) {
        now += dt;
        outputs oa, ob;
        a.e->tick(now, oa);
        b.e->tick(now, ob);
        settle(std::move(oa), std::move(ob));
    }
};

inline wire_pair make_pair(const config::ike_settings& spoke, const config::ike_settings& hub) {
    wire_pair p;
    p.a.e = make(spoke, spoke_addr);
    p.b.e = make(hub, hub_addr);
    return p;
}

inline message parsed(const datagram& d) {
    auto m = parse(d.payload);
    REQUIRE(m);
    return std::move(*m);
}

inline const notify_payload* notify_of(const message& m, uint16_t type) {
    for (const auto& p : m.payloads) {
        if (const auto* n = std::get_if<notify_payload>(&p); n != nullptr && n->type == type) {
            return n;
        }
    }
    return nullptr;
}

// IKE SAs the engine holds, as `show crypto ikev2 sa --json` lists them.
inline size_t ike_sa_count(const engine& e) {
    std::string j = e.show("ikev2 sa", true);
    size_t n = 0;
    for (size_t at = j.find("\"local_spi\""); at != std::string::npos;
         at = j.find("\"local_spi\"", at + 1)) {
        ++n;
    }
    return n;
}

inline bytes key_bytes(const ike::crypto::secret& s) {
    return bytes(s.data(), s.data() + s.size());
}

inline void require_pair_matches(const child_sa& x, const child_sa& y) {
    CHECK(x.inbound.spi == y.outbound.spi);
    CHECK(x.outbound.spi == y.inbound.spi);
    CHECK(key_bytes(x.inbound.cipher_key) == key_bytes(y.outbound.cipher_key));
    CHECK(key_bytes(x.outbound.cipher_key) == key_bytes(y.inbound.cipher_key));
    CHECK(key_bytes(x.inbound.integ_key) == key_bytes(y.outbound.integ_key));
    CHECK(key_bytes(x.outbound.integ_key) == key_bytes(y.inbound.integ_key));
    CHECK(key_bytes(x.inbound.cipher_key) != key_bytes(x.outbound.cipher_key));
    CHECK(x.encr == y.encr);
    CHECK(x.encr_bits == y.encr_bits);
    CHECK(x.integ == y.integ);
    CHECK(x.esn == y.esn);
}

// A test PKI made once per run with the openssl CLI in a fresh temporary directory: a root CA,
// an intermediate CA, RSA-2048 and ECDSA P-256 leaves with SAN IP = the NBMA addresses, and
// the bad ones (another CA's, a wrong address, expired). Removed at exit.
inline std::string pki_made;
inline void remove_pki() {
    [[maybe_unused]] const int rc = std::system(("rm -rf " + pki_made).c_str());
}
inline const std::string& pki() {
    static const std::string dir = [] {
        char tmpl[] = "/tmp/ike-engine-pki-XXXXXX";
        const char* d = mkdtemp(tmpl);
        REQUIRE(d != nullptr);
        pki_made = d;
        std::atexit(remove_pki);
        const std::string script = std::string("set -e\ncd ") + d + R"sh(
ossl() { openssl "$@" 2>/dev/null; }
key() { if [ "$2" = rsa ]; then ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.key";
        else ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"; fi; }
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' > ca.ext
key ca rsa
ossl req -x509 -key ca.key -out ca.pem -days 3650 -subj "/O=dmvpn test/CN=Test CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
key other ec
ossl req -x509 -key other.key -out other.pem -days 3650 -subj "/O=dmvpn test/CN=Other CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
key int ec
ossl req -new -key int.key -out int.csr -subj "/O=dmvpn test/CN=Intermediate CA"
ossl x509 -req -in int.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 -out int.pem -extfile ca.ext
leaf() { # name keytype san issuer days
  key "$1" "$2"
  ossl req -new -key "$1.key" -out "$1.csr" -subj "/O=dmvpn test/CN=$1"
  printf 'subjectAltName=%s\n' "$3" > "$1.ext"
  ossl x509 -req -in "$1.csr" -CA "$4.pem" -CAkey "$4.key" -CAcreateserial -days "$5" \
    -out "$1.pem" -extfile "$1.ext"
}
leaf hub-rsa rsa IP:198.51.100.1 ca 365
leaf spoke-rsa rsa IP:198.51.100.2 ca 365
leaf hub-ec ec IP:198.51.100.1 ca 365
leaf spoke-ec ec IP:198.51.100.2 ca 365
leaf spoke-int ec "IP:198.51.100.2,DNS:spoke1.example.net" int 365
cat spoke-int.pem int.pem > spoke-int-chain.pem
# RSA leaves sent with their CA as a second CERT: IKE_AUTH over 1280 octets (RFC 7383 tests)
cat spoke-rsa.pem ca.pem > spoke-rsa-ca.pem
cat hub-rsa.pem ca.pem > hub-rsa-ca.pem
leaf spoke-rogue ec IP:198.51.100.2 other 365
leaf spoke-wrongip ec IP:198.51.100.9 ca 365
leaf spoke-expired ec IP:198.51.100.2 ca -1
openssl x509 -in ca.pem -pubkey -noout | openssl pkey -pubin -outform DER | openssl sha1 -r | cut -c1-40 > ca.keyhash
)sh";
        REQUIRE(std::system(script.c_str()) == 0);
        return std::string(d);
    }();
    return dir;
}

inline config::ike_settings cert_settings(const std::string& leaf,
                                          const std::string& chain_file = "",
                                          const std::string& ca = "ca") {
    auto s = settings();
    s.psks.clear();
    s.auth = config::ike_auth::certificate;
    s.certificate = pki() + "/" + (chain_file.empty() ? leaf + ".pem" : chain_file);
    s.private_key = pki() + "/" + leaf + ".key";
    s.ca = {pki() + "/" + ca + ".pem"};
    return s;
}

}  // namespace dmvpn::ike::testing
