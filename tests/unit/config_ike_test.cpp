// `ike:` of an IPsec profile: every key, its defaults, each error at its line:column, the
// key file's permissions, and the reload diff.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "config/load.hpp"
#include "tests/unit/config_test_doc.hpp"

using namespace dmvpn::config;
using dmvpn::config::test::base;
using dmvpn::config::test::doc;
using dmvpn::config::test::only_error;

namespace {

constexpr const char* wildcard = "the-wildcard-key-of-this-cloud";

// base() with its manually keyed profile replaced by an IKE one (PSK, everything default).
doc ike_doc(std::string_view extra = "") {
    std::string t = base().text();
    size_t from = t.find("    transform: aes128-cbc-sha1-96");
    size_t to = t.find("routes:");
    std::string ike =
        std::string("    ike:\n      authentication: psk\n      psk: ") + wildcard + "\n";
    ike += extra;
    return doc(t.substr(0, from) + ike + t.substr(to));
}

ike_settings loaded(const doc& d) {
    auto r = load_string(d.text(), "t.yaml");
    INFO(d.text() << r.error_text());
    REQUIRE(r.has_value());
    REQUIRE(r->ipsec_profiles.size() == 1);
    REQUIRE(r->ipsec_profiles[0].ike.has_value());
    return *r->ipsec_profiles[0].ike;
}

// The one error of `d`, at the line holding `needle`, column of `token`, under `key`.
void expect_error(const doc& d, std::string_view needle, std::string_view token,
                  const std::string& key, const std::string& message_part) {
    error e = only_error(d);
    CHECK(e.line == d.line_of(needle));
    CHECK(e.column == d.column_of(needle, token));
    CHECK(e.key == key);
    CHECK_THAT(e.message, Catch::Contains(message_part));
    // No key material in any error.
    CHECK_THAT(to_string(e), !Catch::Contains(wildcard));
}

std::vector<uint8_t> bytes(std::string_view s) { return {s.begin(), s.end()}; }

struct temp_file {
    std::string path;
    temp_file(const std::string& text, mode_t mode) {
        char name[] = "/tmp/dmvpn-keyfile-XXXXXX";
        int fd = mkstemp(name);
        REQUIRE(fd >= 0);
        REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
        close(fd);
        REQUIRE(chmod(name, mode) == 0);
        path = name;
    }
    ~temp_file() { std::remove(path.c_str()); }
};

}  // namespace

TEST_CASE("ike: defaults are secure and complete", "[config][ike]") {
    ike_settings s = loaded(ike_doc());
    CHECK(s.version == 2);
    CHECK(s.auth == ike_auth::psk);
    REQUIRE(s.psks.size() == 1);
    CHECK(s.psks[0].peer.empty());
    CHECK(s.psks[0].key == bytes(wildcard));
    REQUIRE(s.proposals.size() == 5);
    CHECK(to_string(s.proposals[0]) == "aes256gcm16-prfsha256-x25519-ecp256-ecp384-modp2048");
    CHECK(to_string(s.proposals[2]) == "aes256-sha256-modp2048-ecp256-ecp384-x25519");
    REQUIRE(s.esp_proposals.size() == 3);
    CHECK(to_string(s.esp_proposals[0]) == "aes256gcm16");
    CHECK(to_string(s.esp_proposals[2]) == "aes256-sha256");
    CHECK_FALSE(s.pfs_group.has_value());
    CHECK(s.ike_lifetime_s == 86400);
    CHECK(s.child_lifetime_s == 3600);
    CHECK(s.dpd_interval_s == 30);
    CHECK(s.dpd_retries == 5);
    CHECK(s.cookie_threshold == 1000);
    CHECK(s.max_half_open == 100000);
    CHECK(s.nat_keepalive_s == 20);
    CHECK_FALSE(s.initiate);
    CHECK(s.fragmentation);
    CHECK(s.fragment_size == 1280);
    // Negotiated keys: anti-replay on by default.
    auto r = load_string(ike_doc().text(), "t.yaml");
    REQUIRE(r.has_value());
    CHECK(r->ipsec_profiles[0].anti_replay);
}

TEST_CASE("ike: every key loads", "[config][ike]") {
    ike_settings s = loaded(ike_doc(R"(      version: 2
      keys:
        - peer: spoke1.example.net
          key: 0x000102030405060708090a0b0c0d0e0f
        - peer: 192.0.2.7
          key: another-long-enough-key
      local-id: hub.example.net
      proposals: [aes128-sha384-prfsha512-modp2048-curve25519, aes256gcm16-prfsha384-ecp384]
      esp-proposals: [aes128-sha1, aes256-sha1-esn, aes128-sha256-noesn, aes256gcm16]
      pfs: x25519
      ike-lifetime: 28800
      child-lifetime: 1800
      child-lifetime-bytes: 1000000000
      child-lifetime-packets: 5000000
      dpd-interval: 0
      dpd-retries: 2
      cookie-threshold: 0
      max-half-open: 5000
      nat-keepalive: 0
      initiate: true
      fragmentation: no
      fragment-size: 576
)"));
    REQUIRE(s.psks.size() == 3);
    CHECK(s.psks[1].peer == "spoke1.example.net");
    CHECK(s.psks[1].key.size() == 16);
    CHECK(s.psks[1].key[15] == 0x0f);
    CHECK(s.psks[2].peer == "192.0.2.7");
    CHECK(s.local_id == "hub.example.net");
    REQUIRE(s.proposals.size() == 2);
    CHECK(s.proposals[0].encr == 12);
    CHECK(s.proposals[0].encr_bits == 128);
    CHECK(s.proposals[0].integ == 13);
    CHECK(s.proposals[0].prf == 7);
    CHECK(s.proposals[0].groups == std::vector<uint16_t>{14, 31});
    CHECK(s.proposals[1].encr == 20);
    CHECK(s.proposals[1].integ == 0);
    CHECK(s.proposals[1].prf == 6);
    REQUIRE(s.esp_proposals.size() == 4);
    CHECK(s.esp_proposals[0].integ == 2);
    CHECK_FALSE(s.esp_proposals[0].esn);
    CHECK(s.esp_proposals[1].esn);
    CHECK(s.esp_proposals[1].encr_bits == 256);
    CHECK(s.esp_proposals[2].integ == 12);
    CHECK_FALSE(s.esp_proposals[2].esn);
    CHECK(s.esp_proposals[3].encr == 20);
    CHECK(s.pfs_group == uint16_t{31});
    CHECK(s.ike_lifetime_s == 28800);
    CHECK(s.child_lifetime_s == 1800);
    CHECK(s.child_lifetime_bytes == 1000000000);
    CHECK(s.child_lifetime_packets == 5000000);
    CHECK(s.dpd_interval_s == 0);
    CHECK(s.dpd_retries == 2);
    CHECK(s.cookie_threshold == 0);
    CHECK(s.max_half_open == 5000);
    CHECK(s.nat_keepalive_s == 0);
    CHECK(s.initiate);
    CHECK_FALSE(s.fragmentation);
    CHECK(s.fragment_size == 576);
    // The integrity algorithm implies its PRF.
    ike_settings t = loaded(ike_doc("      proposals: [aes256-sha512-ecp256]\n"));
    CHECK(t.proposals[0].prf == 7);
}

TEST_CASE("ike: certificate authentication", "[config][ike]") {
    std::string t = base().text();
    size_t from = t.find("    transform: aes128-cbc-sha1-96");
    size_t to = t.find("routes:");
    doc d(t.substr(0, from) + R"(    ike:
      authentication: certificate
      certificate: /etc/dmvpn-hub/hub.pem
      private-key: /etc/dmvpn-hub/hub.key
      ca: [/etc/dmvpn-hub/ca1.pem, /etc/dmvpn-hub/ca2.pem]
)" + t.substr(to));
    ike_settings s = loaded(d);
    CHECK(s.auth == ike_auth::certificate);
    CHECK(s.psks.empty());
    CHECK(s.certificate == "/etc/dmvpn-hub/hub.pem");
    CHECK(s.private_key == "/etc/dmvpn-hub/hub.key");
    CHECK(s.ca == std::vector<std::string>{"/etc/dmvpn-hub/ca1.pem", "/etc/dmvpn-hub/ca2.pem"});

    expect_error(d.erase("private-key:"), "authentication: certificate", "authentication",
                 "ipsec-profiles[0].ike.private-key", "missing required key");
    expect_error(d.replace("private-key:", "      private-key: hub.key"), "private-key:", "hub.key",
                 "ipsec-profiles[0].ike.private-key", "absolute path");
    expect_error(d.insert_after("ca: [", std::string("      psk: ") + wildcard), "psk:", "the-",
                 "ipsec-profiles[0].ike.psk", "only used with authentication: psk");
    expect_error(ike_doc("      ca: [/etc/ca.pem]\n"), "ca: [", "[", "ipsec-profiles[0].ike.ca",
                 "only used with authentication: certificate");
}

TEST_CASE("ike: each error lands on its key", "[config][ike]") {
    const std::string p = "ipsec-profiles[0].ike.";
    expect_error(ike_doc("      version: 3\n"), "version:", "3", p + "version",
                 "expected 1, 2 or any");
    expect_error(ike_doc().replace("authentication: psk", "      authentication: rsa"),
                 "authentication: rsa", "rsa", p + "authentication", "psk or certificate");
    expect_error(ike_doc().replace("psk: the", "      psk: \"\""), "psk:", "\"", p + "psk",
                 "1..512 bytes, this one has 0");
    expect_error(ike_doc().replace("psk: the", "      psk: 0x" + std::string(1026, 'a')),
                 "psk:", "0x", p + "psk", "1..512 bytes, this one has 513");
    expect_error(ike_doc().replace("psk: the", "      psk: 0x0g"), "psk:", "0x0g", p + "psk",
                 "hex");
    expect_error(ike_doc().erase("psk: the"), "authentication: psk", "authentication", p + "psk",
                 "psk, keys or key-file");
    expect_error(ike_doc("      keys:\n        - peer: a b\n          key: 0123456789abcdef0\n"),
                 "peer: a b", "a b", p + "keys[0].peer", "identity");
    expect_error(
        ike_doc("      keys:\n        - peer: x.example\n          key: 0123456789abcdef0\n"
                "        - {peer: x.example, key: 0123456789abcdef1}\n"),
        "{peer", "x.example", p + "keys[1].peer", "already has a key");
    expect_error(ike_doc("      local-id: \"a b\"\n"), "local-id:", "\"a b\"", p + "local-id",
                 "FQDN");
    expect_error(ike_doc("      proposals: [aes256-sha1-modp2048]\n"), "proposals:", "aes256",
                 p + "proposals[0]", "unknown or refused algorithm \"sha1\"");
    expect_error(ike_doc("      proposals: [3des-sha256-modp2048]\n"), "proposals:", "3des",
                 p + "proposals[0]", "encryption algorithm comes first");
    expect_error(ike_doc("      proposals: [aes256-sha256-modp1024]\n"), "proposals:", "aes256",
                 p + "proposals[0]", "\"modp1024\"");
    expect_error(ike_doc("      proposals: [aes256gcm16-sha256-x25519]\n"), "proposals:", "aes256",
                 p + "proposals[0]", "authenticates itself");
    expect_error(ike_doc("      proposals: [aes256gcm16-x25519]\n"), "proposals:", "aes256",
                 p + "proposals[0]", "names its PRF");
    expect_error(ike_doc("      proposals: [aes256-x25519]\n"), "proposals:", "aes256",
                 p + "proposals[0]", "needs an integrity algorithm");
    expect_error(ike_doc("      proposals: [aes256-sha256]\n"), "proposals:", "aes256",
                 p + "proposals[0]", "Diffie-Hellman group");
    expect_error(ike_doc("      proposals: [aes256-sha256-x25519, aes256-sha256-x25519]\n"),
                 "proposals:", "aes256-sha256-x25519]", p + "proposals[1]", "the same proposal");
    expect_error(ike_doc("      proposals: []\n"), "proposals:", "[]", p + "proposals",
                 "at least one");
    expect_error(ike_doc("      esp-proposals: [des-md5]\n"), "esp-proposals:", "des-md5",
                 p + "esp-proposals[0]", "aes128gcm16, aes256gcm16, aes128-sha1");
    expect_error(ike_doc("      pfs: modp1024\n"), "pfs:", "modp1024", p + "pfs",
                 "none or a group");
    expect_error(ike_doc("      ike-lifetime: 60\n"), "ike-lifetime:", "60", p + "ike-lifetime",
                 "120..86400");
    expect_error(ike_doc("      child-lifetime: 1h\n"), "child-lifetime:", "1h",
                 p + "child-lifetime", "120..86400");
    expect_error(ike_doc("      child-lifetime-bytes: -1\n"), "child-lifetime-bytes:", "-1",
                 p + "child-lifetime-bytes", "integer");
    expect_error(ike_doc("      child-lifetime-packets: x\n"), "child-lifetime-packets:", "x",
                 p + "child-lifetime-packets", "integer");
    expect_error(ike_doc("      dpd-interval: 3601\n"), "dpd-interval:", "3601", p + "dpd-interval",
                 "0..3600");
    expect_error(ike_doc("      dpd-retries: 0\n"), "dpd-retries:", "0", p + "dpd-retries",
                 "1..20");
    expect_error(ike_doc("      max-half-open: 0\n"), "max-half-open:", "0", p + "max-half-open",
                 "1..1000000");
    expect_error(ike_doc("      cookie-threshold: 600\n      max-half-open: 500\n"),
                 "cookie-threshold:", "600", p + "cookie-threshold", "above max-half-open");
    expect_error(ike_doc("      nat-keepalive: 4000\n"), "nat-keepalive:", "4000",
                 p + "nat-keepalive", "0..3600");
    expect_error(ike_doc("      initiate: maybe\n"), "initiate:", "maybe", p + "initiate",
                 "true or false");
    expect_error(ike_doc("      fragment-size: 575\n"), "fragment-size:", "575",
                 p + "fragment-size", "576..9000");
    expect_error(ike_doc("      fragmentation: sometimes\n"), "fragmentation:", "sometimes",
                 p + "fragmentation", "true or false");
    expect_error(ike_doc("      bogus: 1\n"), "bogus:", "bogus", p + "bogus", "unknown key");
}

TEST_CASE("ike: legacy ESP proposals load with a warning and are never a default",
          "[config][ike][legacy]") {
    doc d = ike_doc("      esp-proposals: [aes128-sha1, 3des-md5, 3des-sha1-esn, aes128-md5]\n");
    auto r = load_string(d.text(), "t.yaml");
    INFO(r.error_text());
    REQUIRE(r.has_value());
    const auto& esp = r->ipsec_profiles[0].ike->esp_proposals;
    REQUIRE(esp.size() == 4);
    // IANA: ENCR_3DES 3 (no key length), AUTH_HMAC_MD5_96 1 (RFC 7296 section 3.3.2).
    CHECK((esp[1].encr == 3 && esp[1].encr_bits == 0 && esp[1].integ == 1 && !esp[1].esn));
    CHECK((esp[2].encr == 3 && esp[2].encr_bits == 0 && esp[2].integ == 2 && esp[2].esn));
    CHECK((esp[3].encr == 12 && esp[3].encr_bits == 128 && esp[3].integ == 1));
    CHECK(to_string(esp[1]) == "3des-md5");
    CHECK(to_string(esp[2]) == "3des-sha1-esn");
    CHECK(to_string(esp[3]) == "aes128-md5");
    // One warning per legacy entry, where it stands; none for aes128-sha1.
    REQUIRE(r.warnings().size() == 3);
    const std::string p = "ipsec-profiles[0].ike.esp-proposals[";
    const char* tokens[] = {"3des-md5", "3des-sha1-esn", "aes128-md5"};
    for (size_t i = 0; i < 3; ++i) {
        const warning& w = r.warnings()[i];
        CHECK(w.key == p + std::to_string(i + 1) + "]");
        CHECK(w.line == d.line_of("esp-proposals:"));
        CHECK(w.column == d.column_of("esp-proposals:", tokens[i]));
        CHECK_THAT(w.message, Catch::Contains("legacy peers only"));
    }
    CHECK_THAT(r.warnings()[0].message, Catch::Contains("3DES-CBC and HMAC-MD5-96"));
    CHECK_THAT(r.warnings()[1].message, Catch::Contains("Sweet32"));
    CHECK_THAT(r.warnings()[2].message, Catch::Contains("HMAC-MD5-96"));
    // The ESP overhead of 3DES: 8-byte IV, padding to 8, 12-byte ICV.
    CHECK(esp_overhead_max(esp[1]) == 8 + 8 + 2 + 7 + 12);
    // No default proposal is legacy, and the defaults warn about nothing.
    for (const auto& e : default_esp_proposals()) {
        CHECK(weakness(e).empty());
    }
    auto plain = load_string(ike_doc().text(), "t.yaml");
    REQUIRE(plain.has_value());
    CHECK(plain.warnings().empty());
}

TEST_CASE("ike: IKEv1 profiles: version 1 or any, isakmp-policies, weak choices warned",
          "[config][ike][v1]") {
    // Defaults: one strong policy.
    ike_settings d = loaded(ike_doc("      version: 1\n"));
    CHECK(d.version == 1);
    CHECK(d.speaks_v1());
    CHECK(!d.speaks_v2());
    REQUIRE(d.isakmp_policies.size() == 1);
    CHECK(d.isakmp_policies[0] == ike_settings::isakmp_policy{7, 128, 2, 14, 1, 86400});
    CHECK(loaded(ike_doc("      version: any\n")).version == ike_settings::ike_version_any);
    CHECK(loaded(ike_doc()).isakmp_policies.empty());  // IKEv2 only: none

    // The seeds' policy (3des, md5, group 2) loads with one warning naming all three.
    doc seeds = ike_doc(
        "      version: 1\n"
        "      isakmp-policies:\n"
        "        - {encryption: aes 256, hash: sha256, group: 14, lifetime: 3600}\n"
        "        - {encryption: 3des, hash: md5, group: 2, authentication: pre-share}\n"
        "      pfs: modp1024\n");
    auto r = load_string(seeds.text(), "t.yaml");
    INFO(r.error_text());
    REQUIRE(r.has_value());
    const auto& pols = r->ipsec_profiles[0].ike->isakmp_policies;
    REQUIRE(pols.size() == 2);
    CHECK(pols[0] == ike_settings::isakmp_policy{7, 256, 4, 14, 1, 3600});
    CHECK(pols[1] == ike_settings::isakmp_policy{5, 0, 1, 2, 1, 86400});
    CHECK(r->ipsec_profiles[0].ike->pfs_group == 2);
    REQUIRE(r.warnings().size() == 2);
    CHECK(r.warnings()[0].key == "ipsec-profiles[0].ike.isakmp-policies[1]");
    CHECK_THAT(r.warnings()[0].message, Catch::Contains("encryption 3des, hash md5, group 2"));
    CHECK(r.warnings()[1].key == "ipsec-profiles[0].ike.pfs");
    CHECK_THAT(r.warnings()[1].message, Catch::Contains("weak"));

    const std::string p = "ipsec-profiles[0].ike.";
    expect_error(ike_doc("      version: 1\n      isakmp-policies:\n        - {encryption: des}\n"),
                 "encryption: des", "des", p + "isakmp-policies[0].encryption",
                 "DES is not supported");
    expect_error(ike_doc("      version: 1\n      isakmp-policies:\n        - {group: 1}\n"),
                 "group: 1", "1", p + "isakmp-policies[0].group", "group 1");
    expect_error(ike_doc("      version: 1\n      isakmp-policies:\n        - {hash: sha512}\n"),
                 "hash: sha512", "sha512", p + "isakmp-policies[0].hash", "md5, sha or sha256");
    expect_error(
        ike_doc("      version: 1\n      isakmp-policies:\n        - {authentication: rsa-sig}\n"),
        "authentication: rsa-sig", "rsa-sig", p + "isakmp-policies[0].authentication", "pre-share");
    expect_error(ike_doc("      isakmp-policies:\n        - {hash: sha}\n"), "- {hash: sha}", "-",
                 p + "isakmp-policies", "version 1 or any");
    expect_error(ike_doc("      pfs: modp1024\n"), "pfs:", "modp1024", p + "pfs",
                 "expected none or a group");
}

TEST_CASE("ike: IKEv1 with certificates: RSA signature policies", "[config][ike][v1]") {
    std::string t = base().text();
    size_t from = t.find("    transform: aes128-cbc-sha1-96");
    size_t to = t.find("routes:");
    auto cert_doc = [&](const std::string& more) {
        return doc(t.substr(0, from) + R"(    ike:
      version: 1
      authentication: certificate
      certificate: /etc/dmvpn-hub/hub.pem
      private-key: /etc/dmvpn-hub/hub.key
      ca: [/etc/dmvpn-hub/ca.pem]
)" + more + t.substr(to));
    };
    ike_settings d = loaded(cert_doc(""));
    CHECK(d.auth == ike_auth::certificate);
    REQUIRE(d.isakmp_policies.size() == 1);
    CHECK(d.isakmp_policies[0] == ike_settings::isakmp_policy{7, 128, 2, 14, 3, 86400});
    ike_settings e = loaded(cert_doc(
        "      isakmp-policies:\n        - {encryption: aes 256, authentication: rsa-sig}\n"
        "        - {hash: sha256}\n"));
    REQUIRE(e.isakmp_policies.size() == 2);
    CHECK(e.isakmp_policies[0] == ike_settings::isakmp_policy{7, 256, 2, 14, 3, 86400});
    CHECK(e.isakmp_policies[1].authentication == 3);
    expect_error(cert_doc("      isakmp-policies:\n        - {authentication: pre-share}\n"),
                 "authentication: pre-share", "pre-share",
                 "ipsec-profiles[0].ike.isakmp-policies[0].authentication", "rsa-sig");
    expect_error(cert_doc("      aggressive-mode: true\n"), "aggressive-mode: true", "true",
                 "ipsec-profiles[0].ike.aggressive-mode", "pre-shared keys only");
}

TEST_CASE("ike: IKEv1 aggressive-mode: off by default, on with a warning naming the profile",
          "[config][ike][v1]") {
    CHECK_FALSE(loaded(ike_doc("      version: 1\n")).aggressive_mode);
    auto r =
        load_string(ike_doc("      version: 1\n      aggressive-mode: true\n").text(), "t.yaml");
    INFO(r.error_text());
    REQUIRE(r.has_value());
    CHECK(r->ipsec_profiles[0].ike->aggressive_mode);
    REQUIRE(r.warnings().size() == 1);
    CHECK(r.warnings()[0].key == "ipsec-profiles[0].ike.aggressive-mode");
    CHECK_THAT(r.warnings()[0].message, Catch::Contains("ipsec profile p1"));
    CHECK_THAT(r.warnings()[0].message, Catch::Contains("Aggressive Mode"));
    CHECK_THAT(r.warnings()[0].message, Catch::Contains("pre-shared key"));
    auto off =
        load_string(ike_doc("      version: 1\n      aggressive-mode: false\n").text(), "t.yaml");
    REQUIRE(off.has_value());
    CHECK(off.warnings().empty());
    const std::string p = "ipsec-profiles[0].ike.";
    expect_error(ike_doc("      aggressive-mode: true\n"), "aggressive-mode: true", "true",
                 p + "aggressive-mode", "version 1 or any");
}

TEST_CASE("ike: a profile is keyed by manual-sas or by ike, and by one of them", "[config][ike]") {
    // Both: the manual keys' settings are refused where they stand.
    doc both = base().insert_after("name: p1", std::string("    ike:\n      psk: ") + wildcard);
    auto r = load_string(both.text(), "t.yaml");
    REQUIRE_FALSE(r.has_value());
    std::string text = r.error_text();
    CHECK_THAT(text, Catch::Contains("ipsec-profiles[0].transform: transform keys SAs by hand"));
    CHECK_THAT(text, Catch::Contains("ipsec-profiles[0].lifetime:"));
    CHECK_THAT(text, Catch::Contains("ipsec-profiles[0].manual-sas:"));
    CHECK(r.errors().size() == 3);
    CHECK_THAT(text, !Catch::Contains(wildcard));
    // Neither.
    std::string t = base().text();
    size_t from = t.find("    lifetime:");
    doc neither(t.substr(0, from) + t.substr(t.find("routes:")));
    error e = only_error(neither);
    CHECK(e.key == "ipsec-profiles[0].manual-sas");
    CHECK(e.line == neither.line_of("- name: p1"));
    CHECK_THAT(e.message, Catch::Contains("needs manual-sas"));
}

TEST_CASE("ike: key-file is read, and refused unless root only", "[config][ike]") {
    temp_file good("# peers\n* " + std::string(wildcard) + "\nspoke1.example.net   " +
                       "0x00112233445566778899aabbccddeeff  \n\n192.0.2.9 key with blanks inside\n",
                   0600);
    doc d = ike_doc().replace("psk: the", "      key-file: " + good.path);
    ike_settings s = loaded(d);
    CHECK(s.key_file == good.path);
    REQUIRE(s.psks.size() == 3);
    CHECK(s.psks[0].peer.empty());
    CHECK(s.psks[0].key == bytes(wildcard));
    CHECK(s.psks[1].peer == "spoke1.example.net");
    CHECK(s.psks[1].key.size() == 16);
    CHECK(s.psks[2].peer == "192.0.2.9");
    CHECK(s.psks[2].key == bytes("key with blanks inside"));

    const std::string key = "ipsec-profiles[0].ike.key-file";
    for (mode_t mode : {0640, 0604, 0644, 0660}) {
        temp_file open_to_others("* " + std::string(wildcard) + "\n", mode);
        doc o = ike_doc().replace("psk: the", "      key-file: " + open_to_others.path);
        expect_error(o, "key-file:", "/tmp", key, "readable by root only");
    }
    expect_error(ike_doc().replace("psk: the", "      key-file: /nonexistent/keys"),
                 "key-file:", "/nonexistent", key, "cannot read /nonexistent/keys");
    expect_error(ike_doc().replace("psk: the", "      key-file: keys.txt"), "key-file:", "keys.txt",
                 key, "absolute path");

    // Errors inside the file name its line and column, never the key.
    temp_file bad("# c\n\n  spoke2 0x123\n", 0600);
    doc b = ike_doc().replace("psk: the", "      key-file: " + bad.path);
    expect_error(b, "key-file:", "/tmp", key, bad.path + ":3:10: a 0x key needs an even number");
    CHECK_THAT(only_error(b).message, !Catch::Contains("0x123"));
    temp_file lonely("spoke3\n", 0600);
    expect_error(ike_doc().replace("psk: the", "      key-file: " + lonely.path),
                 "key-file:", "/tmp", key, lonely.path + ":1:1: expected `PEER KEY`");
    temp_file twice("* " + std::string(wildcard) + "\n", 0600);
    expect_error(ike_doc("      key-file: " + twice.path + "\n"), "key-file:", "/tmp", key,
                 "the wildcard (any peer) already has a key");
    temp_file empty("# nothing\n", 0600);
    expect_error(ike_doc().replace("psk: the", "      key-file: " + empty.path),
                 "key-file:", "/tmp", key, "holds no key");
}

TEST_CASE("ike: a short pre-shared key loads, as IOS takes it, with a warning where it stands",
          "[config][ike][psk]") {
    // Inline: the wildcard and a per-peer key, each warned at its own line:column.
    doc d =
        ike_doc()
            .replace("psk: the", "      psk: cisco123")
            .insert_after("psk: cisco123",
                          "      keys:\n        - peer: spoke1.example.net\n          key: s3cret");
    auto r = load_string(d.text(), "t.yaml");
    INFO(r.error_text());
    REQUIRE(r.has_value());
    const ike_settings& s = *r->ipsec_profiles[0].ike;
    REQUIRE(s.psks.size() == 2);
    CHECK(s.psks[0].key == bytes("cisco123"));
    CHECK(s.psks[1].key == bytes("s3cret"));
    REQUIRE(r.warnings().size() == 2);
    const warning& w = r.warnings()[0];
    CHECK(w.file == "t.yaml");
    CHECK(w.key == "ipsec-profiles[0].ike.psk");
    CHECK(w.line == d.line_of("psk: cisco123"));
    CHECK(w.column == d.column_of("psk: cisco123", "cisco123"));
    CHECK_THAT(w.message, Catch::Contains("ipsec profile p1: the pre-shared key for any peer "
                                          "(the wildcard) has 8 bytes, under 16"));
    CHECK_THAT(w.message, Catch::Contains("offline dictionary guess"));
    const warning& w2 = r.warnings()[1];
    CHECK(w2.key == "ipsec-profiles[0].ike.keys[0].key");
    CHECK(w2.line == d.line_of("key: s3cret"));
    CHECK(w2.column == d.column_of("key: s3cret", "s3cret"));
    CHECK_THAT(w2.message, Catch::Contains("for \"spoke1.example.net\" has 6 bytes"));
    // No key in any warning.
    for (const warning& x : r.warnings()) {
        CHECK_THAT(to_string(x), !Catch::Contains("cisco123") && !Catch::Contains("s3cret"));
    }

    // In the key file: the warning names the file's own line and column.
    temp_file f("# keys\n* " + std::string(wildcard) + "\n  192.0.2.9   0x0102030405\n", 0600);
    doc k = ike_doc().replace("psk: the", "      key-file: " + f.path);
    auto rk = load_string(k.text(), "t.yaml");
    INFO(rk.error_text());
    REQUIRE(rk.has_value());
    REQUIRE(rk->ipsec_profiles[0].ike->psks.size() == 2);
    CHECK(rk->ipsec_profiles[0].ike->psks[1].key == std::vector<uint8_t>{1, 2, 3, 4, 5});
    REQUIRE(rk.warnings().size() == 1);
    const warning& wk = rk.warnings()[0];
    CHECK(wk.key == "ipsec-profiles[0].ike.key-file");
    CHECK(wk.line == k.line_of("key-file:"));
    CHECK_THAT(wk.message, Catch::StartsWith(f.path + ":3:15: ipsec profile p1: the pre-shared "
                                                      "key for \"192.0.2.9\" has 5 bytes"));
    CHECK_THAT(to_string(wk), !Catch::Contains("0x0102030405"));

    // 16 bytes and more: no warning.
    CHECK(load_string(ike_doc().text(), "t.yaml").warnings().empty());
}

TEST_CASE("ike: ESP overhead of the costliest proposal counts against the port MTU",
          "[config][ike]") {
    // 1440 + 28 (GRE with key, outer IPv4) + 57 (CBC + SHA-256) + 8 (NAT-T) > 1500.
    doc d = ike_doc().insert_after("gre-key: 7", "    ip-mtu: 1440");
    error e = only_error(d);
    CHECK(e.key == "tunnels[0].ip-mtu");
    CHECK_THAT(e.message, Catch::Contains("up to 65 of ESP (aes256-sha256) in UDP for NAT-T"));
    // GCM only: 37 + 8; 1440 + 28 + 45 still too much, 1420 fits.
    CHECK_THAT(only_error(d.insert_after("psk: the", "      esp-proposals: [aes256gcm16]")).message,
               Catch::Contains("up to 45 of ESP (aes256gcm16)"));
    auto r = load_string(ike_doc("      esp-proposals: [aes256gcm16]\n")
                             .insert_after("gre-key: 7", "    ip-mtu: 1420")
                             .text(),
                         "t.yaml");
    CHECK(r.has_value());
}

TEST_CASE("ike: a reload sees a changed ike section as a changed profile", "[config][ike]") {
    auto before = load_string(ike_doc().text(), "t.yaml");
    auto after = load_string(ike_doc("      dpd-interval: 5\n").text(), "t.yaml");
    REQUIRE(before.has_value());
    REQUIRE(after.has_value());
    topology_diff d = diff(*before, *after);
    CHECK(d.ipsec_profiles_changed == std::vector<std::string>{"p1"});
    CHECK(d.tunnels_changed == std::vector<std::string>{"tun0"});
    CHECK_FALSE(d.needs_restart());
    CHECK(diff(*before, *before).empty());
}

TEST_CASE("ike examples load", "[config][ike]") {
    const char* src = std::getenv("DMVPN_SOURCE");
    std::filesystem::path root = src != nullptr ? src : std::filesystem::current_path();
    auto psk = load_file((root / "config" / "examples" / "ike-psk.yaml").string());
    INFO(psk.error_text());
    REQUIRE(psk.has_value());
    REQUIRE(psk->ipsec_profiles[0].ike);
    CHECK(psk->ipsec_profiles[0].ike->psks.size() == 2);
    auto cert = load_file((root / "config" / "examples" / "ike-cert.yaml").string());
    INFO(cert.error_text());
    REQUIRE(cert.has_value());
    const ike_settings& c = *cert->ipsec_profiles[0].ike;
    CHECK(c.auth == ike_auth::certificate);
    CHECK(c.certificate.rfind("/etc/dmvpn-hub/", 0) == 0);
    CHECK(c.pfs_group == uint16_t{19});
    CHECK(c.esp_proposals[0].esn);
}
