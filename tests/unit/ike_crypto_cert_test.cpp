// control/ike/crypto signatures and X.509: a test CA made at test time with the openssl CLI
// (RSA-2048 and ECDSA P-256/P-384 leaves with SAN IP and DNS), sign/verify for each AUTH method,
// wrong key, untrusted and expired certificates, identity match and mismatch.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "control/ike/crypto.hpp"
#include "control/ike/message.hpp"

using namespace dmvpn::ike;
using crypto::bytes;
using crypto::cspan;

namespace {

bytes read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    REQUIRE(f.good());
    std::stringstream ss;
    ss << f.rdbuf();
    const std::string s = ss.str();
    return bytes(s.begin(), s.end());
}

bytes hex(std::string s) {
    bytes out;
    for (size_t i = 0; i + 1 < s.size(); i += 2) {
        out.push_back(static_cast<uint8_t>(std::stoul(s.substr(i, 2), nullptr, 16)));
    }
    return out;
}

std::string trim(const bytes& b) {
    std::string s(b.begin(), b.end());
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
        s.pop_back();
    }
    return s;
}

std::string& pki_path() {
    static std::string path;
    return path;
}

void remove_pki() {
    if (!pki_path().empty()) {
        [[maybe_unused]] const int rc = std::system(("rm -rf " + pki_path()).c_str());
    }
}

// The PKI, made once per run in a fresh temporary directory (removed at exit).
const std::string& pki_dir() {
    static const std::string dir = [] {
        char tmpl[] = "/tmp/ike-crypto-pki-XXXXXX";
        const char* d = mkdtemp(tmpl);
        REQUIRE(d != nullptr);
        const std::string dir = d;
        pki_path() = dir;
        std::atexit(remove_pki);
        const std::string script = R"sh(set -e
cd ")sh" + dir + R"sh("
ossl() { openssl "$@" 2>/dev/null; }
ossl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 -subj "/O=dmvpn test/CN=Test CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
leaf() { # name keyspec san
  ossl req -new -newkey "$2" -nodes -keyout "$1.key" -out "$1.csr" -subj "/O=dmvpn test/CN=$1"
  printf 'subjectAltName=%s\n' "$3" > "$1.ext"
  ossl x509 -req -in "$1.csr" -CA "${4:-ca}.pem" -CAkey "${4:-ca}.key" -CAcreateserial -days 365 \
    -out "$1.pem" -extfile "$1.ext"
}
leaf rsa rsa:2048 "IP:192.0.2.1,DNS:spoke1.example.net"
ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.key
ossl req -new -key ec.key -out ec.csr -subj "/O=dmvpn test/CN=ec"
printf 'subjectAltName=IP:192.0.2.2,DNS:spoke2.example.net,email:spoke2@example.net\n' > ec.ext
ossl x509 -req -in ec.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 -out ec.pem -extfile ec.ext
ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out ec384.key
ossl req -new -key ec384.key -out ec384.csr -subj "/O=dmvpn test/CN=ec384"
printf 'subjectAltName=DNS:spoke3.example.net\n' > ec384.ext
ossl x509 -req -in ec384.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 -out ec384.pem -extfile ec384.ext
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other.key -out other.pem -days 3650 \
  -subj "/CN=Other CA" -addext basicConstraints=critical,CA:TRUE
ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out rogue.key
ossl req -new -key rogue.key -out rogue.csr -subj "/O=dmvpn test/CN=rogue"
printf 'subjectAltName=IP:192.0.2.1\n' > rogue.ext
ossl x509 -req -in rogue.csr -CA other.pem -CAkey other.key -CAcreateserial -days 365 -out rogue.pem -extfile rogue.ext
ossl x509 -in ca.pem -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha1 -r | cut -d' ' -f1 > ca.keyhash
python3 -c "from cryptography import x509; import sys; print(x509.load_pem_x509_certificate(open('rsa.pem','rb').read()).subject.public_bytes().hex())" > rsa.dn
)sh";
        {
            std::ofstream f(dir + "/make.sh");
            f << script;
        }
        REQUIRE(std::system(("bash " + dir + "/make.sh").c_str()) == 0);
        return dir;
    }();
    return dir;
}

std::unique_ptr<crypto::certificate> cert(const std::string& name) {
    auto certs = crypto::certificate::load_pem(read_file(pki_dir() + "/" + name + ".pem"), name);
    REQUIRE(certs.has_value());
    REQUIRE(certs->size() == 1);
    return std::move(certs->front());
}

std::unique_ptr<crypto::private_key> key(const std::string& name) {
    auto k = crypto::private_key::load_pem(read_file(pki_dir() + "/" + name + ".key"), name);
    REQUIRE(k.has_value());
    return std::move(k.value());
}

const bytes octets = {'I', 'K', 'E', 'v', '2', ' ', 's', 'i', 'g', 'n', 'e', 'd'};

}  // namespace

TEST_CASE("signatures: each method signs and verifies, wrong keys and data refused",
          "[ike][crypto][auth]") {
    const auto rsa_key = key("rsa");
    const auto rsa_cert = cert("rsa");
    const auto ec_key = key("ec");
    const auto ec_cert = cert("ec");
    const auto ec384_key = key("ec384");
    const auto ec384_cert = cert("ec384");
    CHECK(rsa_key->is_rsa());
    CHECK(rsa_cert->is_rsa());
    CHECK(ec_key->is_ecdsa());
    CHECK(ec_cert->is_ecdsa());

    struct one {
        const crypto::private_key* k;
        const crypto::certificate* c;
        uint8_t method;
    };
    for (const one& t : {one{rsa_key.get(), rsa_cert.get(), auth_method::rsa_signature},
                         one{rsa_key.get(), rsa_cert.get(), auth_method::digital_signature},
                         one{ec_key.get(), ec_cert.get(), auth_method::ecdsa_sha256_p256},
                         one{ec_key.get(), ec_cert.get(), auth_method::digital_signature},
                         one{ec384_key.get(), ec384_cert.get(), auth_method::ecdsa_sha384_p384},
                         one{ec384_key.get(), ec384_cert.get(), auth_method::digital_signature}}) {
        INFO("method " << int(t.method) << " " << t.c->subject());
        auto sig = t.k->sign(t.method, octets);
        REQUIRE(sig.has_value());
        auto ok = t.c->verify(t.method, *sig, octets);
        REQUIRE(ok.has_value());
        CHECK(*ok);
        bytes other = octets;
        other[0] ^= 1;
        auto bad = t.c->verify(t.method, *sig, other);
        CHECK((!bad.has_value() || !*bad));
        // The other leaf's certificate does not verify it.
        const crypto::certificate* wrong = t.c == rsa_cert.get() ? ec_cert.get() : rsa_cert.get();
        auto w = wrong->verify(t.method, *sig, octets);
        CHECK((!w.has_value() || !*w));
    }

    SECTION("fixed encodings: RFC 4754 r || s sizes, RFC 7427 appendix A identifiers") {
        auto s9 = ec_key->sign(auth_method::ecdsa_sha256_p256, octets);
        REQUIRE(s9.has_value());
        CHECK(s9->size() == 64);
        auto s10 = ec384_key->sign(auth_method::ecdsa_sha384_p384, octets);
        REQUIRE(s10.has_value());
        CHECK(s10->size() == 96);
        CHECK_FALSE(ec_key->sign(auth_method::ecdsa_sha384_p384, octets).has_value());
        CHECK_FALSE(ec_key->sign(auth_method::rsa_signature, octets).has_value());
        auto r14 = rsa_key->sign(auth_method::digital_signature, octets);
        REQUIRE(r14.has_value());
        const bytes sha256_rsa = hex("0f300d06092a864886f70d01010b0500");  // len + DER
        CHECK(bytes(r14->begin(), r14->begin() + 16) == sha256_rsa);
        CHECK(r14->size() == 16 + 256);
        auto e14 = ec_key->sign(auth_method::digital_signature, octets);
        REQUIRE(e14.has_value());
        const bytes ecdsa_sha256 = hex("0c300a06082a8648ce3d040302");
        CHECK(bytes(e14->begin(), e14->begin() + 13) == ecdsa_sha256);
        auto e384 = ec384_key->sign(auth_method::digital_signature, octets);
        REQUIRE(e384.has_value());
        CHECK(bytes(e384->begin(), e384->begin() + 13) == hex("0c300a06082a8648ce3d040303"));
    }
    SECTION("malformed or unaccepted AlgorithmIdentifiers are refused") {
        auto r14 = rsa_key->sign(auth_method::digital_signature, octets);
        REQUIRE(r14.has_value());
        bytes sha1 = *r14;
        sha1[15] = 0x05;  // ...01 01 05: sha1WithRSAEncryption
        CHECK_FALSE(rsa_cert->verify(auth_method::digital_signature, sha1, octets).has_value());
        bytes cut = *r14;
        cut[0] = 200;
        cut.resize(100);
        CHECK_FALSE(rsa_cert->verify(auth_method::digital_signature, cut, octets).has_value());
        CHECK_FALSE(rsa_cert->verify(auth_method::digital_signature, {}, octets).has_value());
        CHECK_FALSE(
            ec_cert->verify(auth_method::ecdsa_sha256_p256, bytes(63, 1), octets).has_value());
    }
}

TEST_CASE("trust store: chains to the anchor, refuses untrusted, expired, not yet valid",
          "[ike][crypto][x509]") {
    crypto::trust_store store;
    auto ca = cert("ca");
    const bytes ca_hash = ca->key_hash();
    store.add_anchor(std::move(ca));
    CHECK(store.size() == 1);
    const int64_t now = std::time(nullptr);
    const auto rsa = cert("rsa");
    const auto ec = cert("ec");
    const auto rogue = cert("rogue");
    const auto other_ca = cert("other");

    auto ok = store.verify(*rsa, {}, now);
    REQUIRE(ok.has_value());
    CHECK(*ok);
    CHECK(store.verify(*ec, {}, now).has_value());

    auto untrusted = store.verify(*rogue, {other_ca.get()}, now);
    REQUIRE_FALSE(untrusted.has_value());
    CHECK(untrusted.error().find("CN=rogue") != std::string::npos);
    auto expired = store.verify(*rsa, {}, now + 2 * 365 * 86400);
    REQUIRE_FALSE(expired.has_value());
    CHECK(expired.error().find("expired") != std::string::npos);
    CHECK_FALSE(store.verify(*rsa, {}, now - 2 * 86400).has_value());

    // CERTREQ: SHA-1 of the anchor's SubjectPublicKeyInfo, as the openssl CLI computes it.
    const bytes expected = hex(trim(read_file(pki_dir() + "/ca.keyhash")));
    REQUIRE(expected.size() == 20);
    CHECK(ca_hash == expected);
    CHECK(store.certreq_data() == expected);
    CHECK(crypto::trust_store{}.verify(*rsa, {}, now).has_value() == false);
}

TEST_CASE("identities match subjectAltName and the subject DN", "[ike][crypto][x509]") {
    const auto rsa = cert("rsa");
    const auto ec = cert("ec");
    const bytes ip1 = {192, 0, 2, 1};
    const bytes ip2 = {192, 0, 2, 2};
    const std::string fqdn1 = "spoke1.example.net";
    const std::string mail2 = "spoke2@example.net";
    CHECK(rsa->matches_identity(id_type::ipv4_addr, ip1));
    CHECK_FALSE(rsa->matches_identity(id_type::ipv4_addr, ip2));
    CHECK(ec->matches_identity(id_type::ipv4_addr, ip2));
    CHECK(rsa->matches_identity(id_type::fqdn, bytes(fqdn1.begin(), fqdn1.end())));
    CHECK_FALSE(ec->matches_identity(id_type::fqdn, bytes(fqdn1.begin(), fqdn1.end())));
    CHECK(ec->matches_identity(id_type::rfc822_addr, bytes(mail2.begin(), mail2.end())));
    CHECK_FALSE(rsa->matches_identity(id_type::rfc822_addr, bytes(mail2.begin(), mail2.end())));
    CHECK_FALSE(rsa->matches_identity(id_type::fqdn, {}));
    CHECK_FALSE(rsa->matches_identity(id_type::key_id, ip1));
    // The subject DN, DER-encoded by python3-cryptography.
    const bytes dn = hex(trim(read_file(pki_dir() + "/rsa.dn")));
    REQUIRE_FALSE(dn.empty());
    CHECK(rsa->matches_identity(id_type::der_asn1_dn, dn));
    CHECK_FALSE(ec->matches_identity(id_type::der_asn1_dn, dn));
    CHECK(rsa->subject() == "CN=rsa,O=dmvpn test");
    CHECK(rsa->issuer() == "CN=Test CA,O=dmvpn test");
    // DER round trip
    auto again = crypto::certificate::from_der(rsa->der());
    REQUIRE(again.has_value());
    CHECK((*again)->der() == rsa->der());
    CHECK_FALSE(crypto::certificate::from_der(bytes{0x30, 0x03, 0x01}).has_value());
    CHECK_FALSE(crypto::certificate::load_pem(bytes{'x'}, "junk.pem").has_value());
    CHECK_FALSE(crypto::private_key::load_pem(bytes{'x'}, "junk.key").has_value());
}

TEST_CASE("IKEv1 RSA signatures: PKCS#1 v1.5 over the hash itself, as openssl pkeyutl signs",
          "[ike][crypto][auth]") {
    const auto rsa_key = key("rsa");
    const auto rsa_cert = cert("rsa");
    // A SHA-1 sized HASH_I; openssl pkeyutl without -digest pads and signs the input as it is
    // (no DigestInfo), and PKCS#1 v1.5 is deterministic: the same bytes.
    const bytes hash_i = hex("00112233445566778899aabbccddeeff01234567");
    const std::string in = pki_dir() + "/hash_i.bin", out = pki_dir() + "/hash_i.sig";
    {
        std::ofstream f(in, std::ios::binary);
        f.write(reinterpret_cast<const char*>(hash_i.data()),
                static_cast<std::streamsize>(hash_i.size()));
    }
    REQUIRE(std::system(("openssl pkeyutl -sign -inkey " + pki_dir() +
                         "/rsa.key -pkeyopt rsa_padding_mode:pkcs1 -in " + in + " -out " + out)
                            .c_str()) == 0);
    auto sig = rsa_key->sign_pkcs1_raw(hash_i);
    REQUIRE(sig.has_value());
    CHECK(*sig == read_file(out));
    CHECK(sig->size() == 256);
    CHECK(rsa_cert->verify_pkcs1_raw(*sig, hash_i));
    bytes other = hash_i;
    other[19] ^= 1;
    CHECK_FALSE(rsa_cert->verify_pkcs1_raw(*sig, other));
    bytes forged = *sig;
    forged[100] ^= 0x80;
    CHECK_FALSE(rsa_cert->verify_pkcs1_raw(forged, hash_i));
    CHECK_FALSE(rsa_cert->verify_pkcs1_raw({}, hash_i));
    // IKEv2's method 1 (SHA-1 with DigestInfo) is another signature of the same octets.
    auto v2 = rsa_key->sign(auth_method::rsa_signature, hash_i);
    REQUIRE(v2.has_value());
    CHECK_FALSE(rsa_cert->verify_pkcs1_raw(*v2, hash_i));
    // ECDSA keys and certificates have no IKEv1 RSA signature.
    CHECK_FALSE(key("ec")->sign_pkcs1_raw(hash_i).has_value());
    CHECK_FALSE(cert("ec")->verify_pkcs1_raw(*sig, hash_i));
    // The subject DN as DER (IKEv1's CR names a CA by it), as Python's cryptography encodes it.
    CHECK(rsa_cert->subject_der() == hex(trim(read_file(pki_dir() + "/rsa.dn"))));
    crypto::trust_store anchors;
    anchors.add_anchor(cert("rsa"));
    REQUIRE(anchors.subjects_der().size() == 1);
    CHECK(anchors.subjects_der()[0] == rsa_cert->subject_der());
}
