// dmvpn-spokesim without DPDK: command line, derived topology and SAs, data payloads.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tools/spokesim/ike_config.hpp"
#include "tools/spokesim/options.hpp"
#include "tools/spokesim/payload.hpp"
#include "tools/spokesim/topology.hpp"

using namespace dmvpn::spokesim;

namespace {

dmvpn::wire::result<options, std::string> parse(std::vector<std::string> args) {
    return parse_options(args);
}

// The refusal names the option at fault and says what is wrong.
void refused(std::vector<std::string> args, const std::string& mentions) {
    auto r = parse(args);
    INFO("args ending " << args.back());
    REQUIRE_FALSE(r);
    INFO("message: " << r.error());
    CHECK(r.error().find(mentions) != std::string::npos);
}

}  // namespace

TEST_CASE("defaults give the documented topology", "[spokesim]") {
    auto r = parse({"--vdev", "net_ring0"});
    REQUIRE(r);
    topology t(*r);
    CHECK(to_string(t.hub_nbma()) == "100.64.0.1");
    CHECK(to_string(t.hub_overlay()) == "10.255.0.1");
    CHECK(to_string(t.nbma_of(0)) == "100.64.0.2");
    CHECK(to_string(t.overlay_of(1)) == "10.255.0.3");
    CHECK(to_string(t.lan_of(0)) == "172.16.0.0/24");
    CHECK(to_string(t.lan_of(1)) == "172.16.1.0/24");
    CHECK(r->unique);
    CHECK(r->holdtime == 7200);
}

TEST_CASE("options set every range and the first spoke", "[spokesim]") {
    auto r = parse({"--vdev=net_memif0,role=client",
                    "--spokes",
                    "300",
                    "--first-spoke",
                    "100",
                    "--nbma-prefix",
                    "198.51.100.0/22",
                    "--hub-nbma",
                    "198.51.103.254",
                    "--tunnel-prefix",
                    "10.0.0.0/16",
                    "--lan-prefix",
                    "10.128.0.0/9",
                    "--lan-length",
                    "28",
                    "--gre-key",
                    "0x2a",
                    "--auth",
                    "secret",
                    "--traffic",
                    "lan",
                    "--esp",
                    "aes256-gcm16",
                    "--style",
                    "frr",
                    "--no-unique"});
    REQUIRE(r);
    CHECK(r->gre_key == 42u);
    CHECK(r->auth == "secret");
    CHECK(r->style == nhrp_style::frr);
    CHECK_FALSE(r->unique);
    topology t(*r);
    CHECK(t.size() == 300);
    CHECK(to_string(t.nbma_of(0)) == "198.51.100.102");  // offset 2 + first spoke 100
    CHECK(to_string(t.lan_of(0)) == "10.128.6.64/28");   // 100th /28
    CHECK(to_string(t.traffic_address_of(0)) == "10.128.6.65");
    CHECK(t.local_by_nbma(t.nbma_of(299)) == 299u);
    CHECK_FALSE(t.local_by_nbma(t.nbma_of(0) - 1));
    CHECK(t.local_by_destination(t.lan_of(7).network + 5) == 7u);
    CHECK(t.local_by_destination(t.overlay_of(9)) == 9u);
    CHECK_FALSE(t.local_by_destination(t.hub_overlay()));
}

TEST_CASE("nonsense options are refused with a clear message", "[spokesim]") {
    refused({"--vdev", "x", "--bogus"}, "unknown option '--bogus'");
    refused({"--vdev", "x", "--spokes"}, "--spokes needs a value");
    refused({"--vdev", "x", "--spokes", "0"}, "--spokes: '0' is not an integer in [1,");
    refused({"--vdev", "x", "--spokes", "ten"}, "--spokes: 'ten'");
    refused({"--vdev", "x", "--rate", "-5"}, "--rate: '-5' is not a number");
    refused({"--vdev", "x", "--rate", "nan"}, "--rate: 'nan'");
    refused({"--vdev", "x", "--nbma-prefix", "100.64.0.1/10"}, "zero host bits");
    refused({"--vdev", "x", "--nbma-prefix", "100.64.0.0/33"}, "--nbma-prefix");
    refused({"--vdev", "x", "--hub-nbma", "300.1.1.1"}, "--hub-nbma: '300.1.1.1'");
    refused({"--vdev", "x", "--auth", "longerthan8"}, "must be 1 to 8 bytes");
    refused({"--vdev", "x", "--style", "juniper"}, "neither cisco nor frr");
    refused({"--vdev", "x", "--esp", "des"}, "'des' is not one of");
    refused({"--vdev", "x", "--hub-mac", "01:00:5e:00:00:01"}, "unicast MAC");
    refused({"--vdev", "x", "--gre-key", "0x100000000"}, "32-bit GRE key");
    refused({"--vdev", "x", "--unique", "--no-unique"}, "contradict");
    refused({"--vdev", "x", "--no-progress=1"}, "takes no value");
    refused({"--vdev", "x", "--cie-prefix", "24"}, "neither 255 nor 32");
    refused({"--vdev", "x", "--spokes", "300", "--nbma-prefix", "10.0.0.0/24"},
            "--nbma-prefix 10.0.0.0/24 has no room for spokes 0..299");
    refused({"--vdev", "x", "--spokes", "5000", "--traffic", "lan"}, "holds only 4096 /24");
    refused({"--vdev", "x", "--spokes", "4", "--peer-offset", "8"}, "send to itself");
    refused({"--vdev", "x", "--hub-nbma", "100.64.0.3"}, "is one of the spokes' NBMA");
    refused({"--vdev", "x", "--hub-overlay", "10.254.0.1"}, "outside --tunnel-prefix");
    refused({"--vdev", "x", "--holdtime", "60", "--registration-timeout", "60"},
            "must be below --holdtime");
    refused({"--write-pcap", "/tmp/x.pcap"}, "--write-pcap needs --count");
    refused({"--vdev", "x", "--count", "5"}, "--count only goes with --write-pcap");
    refused({"--print-sa-yaml"}, "needs --esp");
    refused({"--spokes", "3"}, "--vdev is required");
    refused({"--vdev", "x", "--lan-length", "8"}, "shorter than --lan-prefix");
    refused({"--vdev", "x", "--spokes", "4", "--move-spoke", "4"}, "--move-spoke 4 is not one");
    refused({"--vdev", "x", "--spokes", "4", "--stop-refresh", "5"}, "--stop-refresh 5 is more");
    refused(
        {"--vdev", "x", "--spokes", "100", "--nbma-prefix", "10.0.0.0/24", "--flood-ratio", "2"},
        "no room for the flood");
    refused({"--vdev", "x", "--flood-ratio", "-1"}, "--flood-ratio: '-1'");
}

TEST_CASE("abuse and churn options", "[spokesim]") {
    auto r = parse({"--vdev", "x", "--spokes", "8", "--flood-ratio", "10", "--move-spoke", "3",
                    "--move-after", "1.5", "--stop-refresh", "4"});
    REQUIRE(r);
    CHECK(r->flood_ratio == 10);
    CHECK(r->move_spoke == 3u);
    CHECK(r->move_after == 1.5);
    CHECK(r->stop_refresh == 4);
    auto d = parse({"--vdev", "x"});
    REQUIRE(d);
    CHECK(d->flood_ratio == 0);
    CHECK_FALSE(d->move_spoke);
    CHECK(d->stop_refresh == 0);
}

TEST_CASE("--data-to-hub and --data-after", "[spokesim]") {
    auto r = parse({"--vdev", "x", "--data-to-hub", "7000", "--data-after", "2.5"});
    REQUIRE(r);
    CHECK(r->data_to_hub_port == 7000);
    CHECK(r->data_after == 2.5);
    auto d = parse({"--vdev", "x"});
    REQUIRE(d);
    CHECK(d->data_to_hub_port == 0);
    CHECK(d->data_after == 0);
    CHECK_FALSE(parse({"--vdev", "x", "--data-to-hub", "0"}));
    CHECK_FALSE(parse({"--vdev", "x", "--data-to-hub", "70000"}));
    CHECK_FALSE(parse({"--vdev", "x", "--data-after", "-1"}));
    auto to = parse({"--vdev", "x", "--data-to", "192.168.1.2"});
    REQUIRE(to);
    CHECK(to->data_to == 0xc0a80102u);
    CHECK(d->data_to == 0);
    CHECK_FALSE(parse({"--vdev", "x", "--data-to", "192.168.1"}));
    CHECK_FALSE(parse({"--vdev", "x", "--data-to", "192.168.1.2", "--data-to-hub", "7000"}));
}

TEST_CASE("offline modes need no vdev", "[spokesim]") {
    CHECK(parse({"--print-sa-yaml", "--esp", "aes128-gcm16"}));
    CHECK(parse({"--write-pcap", "/tmp/x.pcap", "--count", "10"}));
    auto h = parse({"--help"});
    REQUIRE(h);
    CHECK(h->help);
    CHECK(usage().find("--print-sa-yaml") != std::string::npos);
}

TEST_CASE("SAs are derived deterministically, distinct per spoke and direction", "[spokesim]") {
    auto a = derive_sa(7, 3, true, 0x1000, esp_transform::aes128_gcm);
    auto b = derive_sa(7, 3, true, 0x1000, esp_transform::aes128_gcm);
    auto c = derive_sa(7, 3, false, 0x1000, esp_transform::aes128_gcm);
    auto d = derive_sa(8, 3, true, 0x1000, esp_transform::aes128_gcm);
    auto e = derive_sa(7, 3, true, 0x1000, esp_transform::aes256_gcm);
    CHECK(a.key == b.key);
    CHECK(a.salt == b.salt);
    CHECK(a.key.size() == 16);
    CHECK(a.salt.size() == 4);
    CHECK(e.key.size() == 32);
    CHECK(a.spi == 0x1006);
    CHECK(c.spi == 0x1007);
    CHECK(a.key != c.key);
    CHECK(a.key != d.key);

    auto o = parse({"--print-sa-yaml", "--esp", "aes128-gcm16", "--spokes", "50"});
    REQUIRE(o);
    topology t(*o);
    std::set<uint32_t> spis;
    std::set<std::vector<uint8_t>> keys;
    for (uint32_t i = 0; i < t.size(); ++i) {
        auto s = t.spoke(i);
        spis.insert(s.to_hub.spi);
        spis.insert(s.from_hub.spi);
        keys.insert(s.to_hub.key);
        keys.insert(s.from_hub.key);
    }
    CHECK(spis.size() == 100);
    CHECK(keys.size() == 100);
    std::string yaml = t.sa_yaml();
    CHECK(yaml.find("transform: aes128-gcm16") != std::string::npos);
    CHECK(yaml.find("inbound: {spi: 4096, key: \"") != std::string::npos);
    CHECK(yaml.find("outbound: {spi: 4195, key: \"") != std::string::npos);  // spoke 49
    CHECK(yaml.find("- peer: " + to_string(t.nbma_of(49))) != std::string::npos);
}

TEST_CASE("CBC + HMAC SAs: HMAC keys of the hash's size, no salt; the YAML names them",
          "[spokesim]") {
    auto a = derive_sa(7, 3, true, 0x1000, esp_transform::aes128_cbc_sha1_96);
    auto b = derive_sa(7, 3, true, 0x1000, esp_transform::aes256_cbc_sha256_128);
    auto g = derive_sa(7, 3, true, 0x1000, esp_transform::aes128_gcm);
    CHECK(a.key.size() == 16);
    CHECK(a.integrity_key.size() == 20);  // RFC 2404
    CHECK(a.salt.empty());
    CHECK(b.key.size() == 32);
    CHECK(b.integrity_key.size() == 32);  // RFC 4868
    CHECK(g.integrity_key.empty());
    CHECK(a.key == g.key);  // the same stream: adding CBC left the GCM keys as they were
    CHECK(a.integrity_key !=
          derive_sa(7, 3, false, 0x1000, esp_transform::aes128_cbc_sha1_96).integrity_key);
    CHECK(name(esp_transform::aes128_cbc_sha1_96) == "aes128-cbc-sha1-96");
    CHECK(name(esp_transform::aes256_cbc_sha256_128) == "aes256-cbc-sha256-128");

    auto o = parse({"--print-sa-yaml", "--esp", "aes256-cbc-sha256-128", "--spokes", "3"});
    REQUIRE(o);
    CHECK(o->esp == esp_transform::aes256_cbc_sha256_128);
    std::string yaml = topology(*o).sa_yaml();
    CHECK(yaml.find("transform: aes256-cbc-sha256-128") != std::string::npos);
    CHECK(yaml.find("integrity-key: \"") != std::string::npos);
    CHECK(yaml.find("salt") == std::string::npos);
    auto bad = parse({"--print-sa-yaml", "--esp", "aes128-cbc"});
    REQUIRE_FALSE(bad);
    CHECK(bad.error().find("aes128-cbc-sha1-96") != std::string::npos);
}

TEST_CASE("payloads verify, and any change is caught", "[spokesim]") {
    std::vector<uint8_t> buf(100);
    write_payload(buf, {3, 9, 0x1'0000'0005ull});
    auto ok = check_payload(buf);
    REQUIRE(ok);
    CHECK(ok->src == 3);
    CHECK(ok->dst == 9);
    CHECK(ok->seq == 0x1'0000'0005ull);

    for (size_t at : {0ul, 5ul, 23ul, 24ul, 99ul}) {
        auto bad = buf;
        bad[at] ^= 0x01;
        INFO("flipped byte " << at);
        CHECK_FALSE(check_payload(bad));
    }
    auto truncated = std::span<const uint8_t>(buf).first(60);
    auto t = check_payload(truncated);
    REQUIRE_FALSE(t);
    CHECK(t.error() == payload_error::bad_length);
    CHECK(check_payload(std::span<const uint8_t>(buf).first(10)).error() ==
          payload_error::too_short);
}

TEST_CASE("--ike psk and the proposals become the engine's profile", "[spokesim][ike]") {
    auto r = parse({"--vdev", "t", "--spokes", "3", "--ike", "psk:cloud-key", "--ike-proposal",
                    "aes256-sha384-ecp384,aes128gcm16-prfsha256-x25519-modp2048", "--esp-proposal",
                    "aes256-sha256-esn-x25519,aes128gcm16"});
    REQUIRE(r);
    CHECK(r->ike == ike_mode::psk);
    topology t(*r);
    auto plan = plan_ike(*r, t);
    REQUIRE(plan);
    REQUIRE(plan->profiles.size() == 1);
    CHECK(plan->profile_of == std::vector<uint32_t>{0, 0, 0});
    const auto& ike = plan->profiles[0].ike;
    REQUIRE(ike);
    CHECK(ike->auth == dmvpn::config::ike_auth::psk);
    REQUIRE(ike->psks.size() == 1);
    CHECK(ike->psks[0].peer.empty());  // the wildcard, as the hub's
    CHECK(std::string(ike->psks[0].key.begin(), ike->psks[0].key.end()) == "cloud-key");
    CHECK(ike->local_id.empty());
    // IANA numbers (RFC 7296 section 3.3.2, RFC 4868, RFC 8031).
    REQUIRE(ike->proposals.size() == 2);
    CHECK(ike->proposals[0].encr == 12);
    CHECK(ike->proposals[0].encr_bits == 256);
    CHECK(ike->proposals[0].integ == 13);
    CHECK(ike->proposals[0].prf == 6);  // the integrity's hash
    CHECK(ike->proposals[0].groups == std::vector<uint16_t>{20});
    CHECK(ike->proposals[1].encr == 20);
    CHECK(ike->proposals[1].encr_bits == 128);
    CHECK(ike->proposals[1].integ == 0);
    CHECK(ike->proposals[1].prf == 5);
    CHECK(ike->proposals[1].groups == std::vector<uint16_t>{31, 14});
    REQUIRE(ike->esp_proposals.size() == 2);
    CHECK(ike->esp_proposals[0].encr == 12);
    CHECK(ike->esp_proposals[0].encr_bits == 256);
    CHECK(ike->esp_proposals[0].integ == 12);
    CHECK(ike->esp_proposals[0].esn);
    CHECK(ike->esp_proposals[1].encr == 20);
    CHECK(ike->esp_proposals[1].integ == 0);
    CHECK_FALSE(ike->esp_proposals[1].esn);
    CHECK(ike->pfs_group == std::optional<uint16_t>(31));

    // The defaults: GCM with Curve25519, ESP AES-GCM-128, no PFS.
    auto d = parse({"--vdev", "t", "--ike", "psk:k"});
    REQUIRE(d);
    auto dp = plan_ike(*d, topology(*d));
    REQUIRE(dp);
    REQUIRE(dp->profiles[0].ike->proposals.size() == 1);
    CHECK(dp->profiles[0].ike->proposals[0].groups == std::vector<uint16_t>{31});
    CHECK(dp->profiles[0].ike->esp_proposals.size() == 1);
    CHECK_FALSE(dp->profiles[0].ike->pfs_group);

    // --ike v1: version 1, IOS's default ISAKMP policy, ESP falls back to aes128-sha1 when the
    // proposals are all AES-GCM (no IKEv1 transform here); CBC ones and their PFS group kept.
    auto v1 = parse({"--vdev", "t", "--ike", "psk:k", "--ike", "v1"});
    REQUIRE(v1);
    CHECK(v1->ike_version == 1);
    auto v1p = plan_ike(*v1, topology(*v1));
    REQUIRE(v1p);
    const auto& i1 = *v1p->profiles[0].ike;
    CHECK(i1.version == 1);
    REQUIRE(i1.isakmp_policies.size() == 1);
    CHECK(i1.isakmp_policies[0].group == 14);
    REQUIRE(i1.esp_proposals.size() == 1);
    CHECK(i1.esp_proposals[0].encr == 12);
    CHECK(i1.esp_proposals[0].integ == 2);
    auto v1c = parse({"--vdev", "t", "--ike", "v1", "--ike", "psk:k", "--esp-proposal",
                      "aes256-sha256-modp2048"});
    REQUIRE(v1c);
    auto v1cp = plan_ike(*v1c, topology(*v1c));
    REQUIRE(v1cp);
    REQUIRE(v1cp->profiles[0].ike->esp_proposals.size() == 1);
    CHECK(v1cp->profiles[0].ike->esp_proposals[0].encr_bits == 256);
    CHECK(v1cp->profiles[0].ike->pfs_group == std::optional<uint16_t>(14));
    // --isakmp-policy: the ISAKMP policies offered, in order (strongSwan's IKEv1 syntax).
    auto v1i = parse({"--vdev", "t", "--ike", "v1", "--ike", "psk:k", "--isakmp-policy",
                      "aes256-sha256-modp2048,3des-md5-modp1024,aes128-sha1-ecp256"});
    REQUIRE(v1i);
    auto v1ip = plan_ike(*v1i, topology(*v1i));
    REQUIRE(v1ip);
    const auto& pols = v1ip->profiles[0].ike->isakmp_policies;
    REQUIRE(pols.size() == 3);
    CHECK(pols[0].encryption == 7);
    CHECK(pols[0].key_bits == 256);
    CHECK(pols[0].hash == 4);
    CHECK(pols[0].group == 14);
    CHECK(pols[0].authentication == 1);
    CHECK(pols[1].encryption == 5);
    CHECK(pols[1].key_bits == 0);
    CHECK(pols[1].hash == 1);
    CHECK(pols[1].group == 2);
    CHECK(pols[2].key_bits == 128);
    CHECK(pols[2].hash == 2);
    CHECK(pols[2].group == 19);
}

TEST_CASE("--ike and its proposals: nonsense refused, naming the part", "[spokesim][ike]") {
    refused({"--vdev", "t", "--ike", "psk:"}, "psk:KEY or cert:DIR");
    refused({"--vdev", "t", "--ike", "x509"}, "psk:KEY or cert:DIR");
    refused({"--vdev", "t", "--ike-proposal", "aes128gcm16-x25519"}, "names its PRF");
    refused({"--vdev", "t", "--ike-proposal", "aes128-prfsha256-x25519"}, "needs an integrity");
    refused({"--vdev", "t", "--ike-proposal", "aes128gcm16-sha256-x25519"}, "authenticates itself");
    refused({"--vdev", "t", "--ike-proposal", "aes128gcm16-prfsha256"},
            "needs a Diffie-Hellman group");
    refused({"--vdev", "t", "--ike-proposal", "3des-sha1-modp1024"}, "(got \"3des\")");
    refused({"--vdev", "t", "--ike", "v1", "--ike", "psk:k", "--isakmp-policy", "aes128-sha1"},
            "expected ENCR-HASH-GROUP");
    refused(
        {"--vdev", "t", "--ike", "v1", "--ike", "psk:k", "--isakmp-policy", "des-sha1-modp1024"},
        "expected ENCR-HASH-GROUP");
    refused(
        {"--vdev", "t", "--ike", "v1", "--ike", "psk:k", "--isakmp-policy", "aes128-sha1-modp768"},
        "expected ENCR-HASH-GROUP");
    refused({"--vdev", "t", "--ike", "psk:k", "--isakmp-policy", "aes128-sha1-modp1024"},
            "needs --ike v1");
    refused({"--vdev", "t", "--ike-proposal", "aes128-aes256-sha256-x25519"},
            "refused algorithm \"aes256\"");
    refused({"--vdev", "t", "--esp-proposal", "aes128"}, "'aes128': expected one of");
    refused({"--vdev", "t", "--esp-proposal", "aes128gcm16-sha1"},
            "'aes128gcm16-sha1': expected one of");
    refused({"--vdev", "t", "--esp-proposal", "aes128-sha512"}, "'aes128-sha512': expected one of");
    refused({"--vdev", "t", "--esp-proposal", "aes128gcm16-x25519,aes256gcm16-ecp256"}, "differs");
    refused({"--vdev", "t", "--ike", "psk:k", "--esp", "aes256-cbc-sha256-128"}, "leave --esp out");
    refused({"--vdev", "t", "--ike", "psk:k", "--forge", "10"}, "--forge");
    refused({"--vdev", "t", "--ike", "psk:k", "--spokes", "2", "--move-spoke", "1"},
            "--move-spoke");
    refused({"--ike", "psk:k", "--write-pcap", "/tmp/x.pcap", "--count", "1"}, "--write-pcap");
    refused({"--vdev", "t", "--ike-rate", "0"}, "--ike-rate");
    refused({"--vdev", "t", "--ike", "v1"}, "--ike v1 needs --ike psk:KEY");
    refused({"--vdev", "t", "--ike", "v3"}, "psk:KEY or cert:DIR");
}

TEST_CASE("--ike cert:DIR: per-spoke certificates, else the shared one with --ike-id",
          "[spokesim][ike]") {
    namespace fs = std::filesystem;
    fs::path dir = fs::temp_directory_path() / fmt::format("spokesim-ike-{}", ::getpid());
    fs::remove_all(dir);
    fs::create_directories(dir);
    auto touch = [&](const std::string& name) { std::ofstream(dir / name) << "x\n"; };
    auto args = [&](std::vector<std::string> extra) {
        std::vector<std::string> a{"--vdev",        "t",  "--spokes", "3",
                                   "--first-spoke", "10", "--ike",    "cert:" + dir.string()};
        a.insert(a.end(), extra.begin(), extra.end());
        auto r = parse(a);
        REQUIRE(r);
        return *r;
    };
    {
        options o = args({});
        auto p = plan_ike(o, topology(o));
        REQUIRE_FALSE(p);
        CHECK(p.error().find("ca.pem is missing") != std::string::npos);
    }
    touch("ca.pem");
    touch("spoke-10.pem");
    {
        options o = args({});
        auto p = plan_ike(o, topology(o));
        REQUIRE_FALSE(p);
        CHECK(p.error().find("spoke-10.key is missing") != std::string::npos);
    }
    touch("spoke-10.key");
    {
        options o = args({});
        auto p = plan_ike(o, topology(o));
        REQUIRE_FALSE(p);  // spoke 11 has no certificate of its own, and there is no shared one
        CHECK(p.error().find("spoke.pem is missing") != std::string::npos);
    }
    touch("spoke.pem");
    touch("spoke.key");
    {
        options o = args({});
        auto p = plan_ike(o, topology(o));
        REQUIRE_FALSE(p);
        CHECK(p.error().find("--ike-id") != std::string::npos);
    }
    options o = args({"--ike-id", "spokes.example"});
    auto p = plan_ike(o, topology(o));
    REQUIRE(p);
    // Spokes 11 and 12 share spoke.pem under --ike-id; spoke 10 has its own, identity its
    // NBMA address.
    REQUIRE(p->profiles.size() == 2);
    CHECK(p->profile_of[1] == p->profile_of[2]);
    CHECK(p->profile_of[0] != p->profile_of[1]);
    const auto& shared = *p->profiles[p->profile_of[1]].ike;
    const auto& own = *p->profiles[p->profile_of[0]].ike;
    CHECK(shared.auth == dmvpn::config::ike_auth::certificate);
    CHECK(shared.certificate == (dir / "spoke.pem").string());
    CHECK(shared.private_key == (dir / "spoke.key").string());
    CHECK(shared.local_id == "spokes.example");
    CHECK(shared.ca == std::vector<std::string>{(dir / "ca.pem").string()});
    CHECK(own.certificate == (dir / "spoke-10.pem").string());
    CHECK(own.private_key == (dir / "spoke-10.key").string());
    CHECK(own.local_id.empty());
    CHECK(own.psks.empty());
    CHECK(p->profiles[p->profile_of[1]].name != p->profiles[p->profile_of[0]].name);
    fs::remove_all(dir);
}

TEST_CASE("--nhs: repeatable up to 8, the first is the hub; plain GRE only", "[spokesim]") {
    auto r = parse({"--vdev", "t", "--nhs", "100.64.0.1,10.255.0.1", "--nhs",
                    "100.64.0.254,10.255.0.254", "--nhs-timeout", "1.5"});
    REQUIRE(r);
    REQUIRE(r->nhs.size() == 2);
    CHECK(r->hub_nbma == 0x64400001);
    CHECK(r->hub_overlay == 0x0aff0001);
    CHECK(r->nhs[1] == nhs_address{0x644000fe, 0x0aff00fe});
    CHECK(r->nhs_timeout == 1.5);
    CHECK(topology(*r).hub_nbma() == 0x64400001);
    refused({"--vdev", "t", "--nhs", "100.64.0.1"}, "--nhs");
    refused({"--vdev", "t", "--nhs", "100.64.0.1,0.0.0.0"}, "--nhs");
    refused({"--vdev", "t", "--nhs", "100.64.0.1,10.255.0.1", "--nhs", "100.64.0.1,10.255.0.9"},
            "the same NHS twice");
    refused({"--vdev", "t", "--nhs", "100.64.0.1,10.255.0.1", "--nhs", "100.64.0.9,10.9.0.9"},
            "outside --tunnel-prefix");
    refused({"--vdev", "t", "--esp", "aes128-cbc-sha1-96", "--nhs", "100.64.0.1,10.255.0.1",
             "--nhs", "100.64.0.9,10.255.0.9"},
            "plain GRE");
    std::vector<std::string> nine{"--vdev", "t"};
    for (int i = 0; i < 9; ++i) {
        nine.push_back("--nhs");
        nine.push_back(fmt::format("100.64.1.{},10.255.1.{}", i + 1, i + 1));
    }
    refused(nine, "at most 8");
}
