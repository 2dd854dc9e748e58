// control/ike/key_log: the rows equal those tests/interop wrote for the committed strongSwan
// captures (tables tshark decrypts them with: strongswan_captures), the IKE table parses back,
// a hostile table is refused with its line and reason, and the writer's files (mode 0600,
// appended, Wireshark's header, a preferences file only when absent).
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "control/ike/key_log.hpp"
#include "control/ike/message.hpp"

using namespace dmvpn::ike;

namespace {

std::string read(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::filesystem::path captures() {
    const char* d = std::getenv("DMVPN_TESTDATA");
    REQUIRE(d != nullptr);
    return std::filesystem::path(d) / "captures" / "strongswan";
}

crypto::secret hex(std::string_view s) {
    crypto::secret out(s.size() / 2);
    for (size_t i = 0; i < out.size(); ++i) {
        out.data()[i] =
            static_cast<uint8_t>(std::stoul(std::string(s.substr(2 * i, 2)), nullptr, 16));
    }
    return out;
}

// Every line of a UAT file but its comments.
std::vector<std::string> rows_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line[0] != '#') {
            out.push_back(line);
        }
    }
    return out;
}

}  // namespace

TEST_CASE("key log: Wireshark's algorithm names", "[ike][keylog]") {
    CHECK(keylog::ikev2_encr_name(encr_id::aes_cbc, 256) == "AES-CBC-256 [RFC3602]");
    CHECK(keylog::ikev2_encr_name(encr_id::aes_gcm_16, 128) ==
          "AES-GCM-128 with 16 octet ICV [RFC5282]");
    CHECK(keylog::ikev2_integ_name(integ_id::none) == "NONE [RFC4306]");
    CHECK(keylog::ikev2_integ_name(integ_id::hmac_sha2_256_128) == "HMAC_SHA2_256_128 [RFC4868]");
    CHECK(keylog::esp_encr_name(encr_id::aes_gcm_16, 256) == "AES-GCM with 16 octet ICV [RFC4106]");
    CHECK(keylog::esp_encr_name(encr_id::aes_cbc, 128) == "AES-CBC [RFC3602]");
    CHECK(keylog::esp_auth_name(integ_id::hmac_sha1_96) == "HMAC-SHA-1-96 [RFC2404]");
    CHECK(keylog::esp_auth_name(integ_id::none) == "NULL");
    CHECK_FALSE(keylog::ikev2_encr_name(encr_id::aes_gcm_8, 128));
    CHECK_FALSE(keylog::esp_encr_name(encr_id::aes_gcm_12, 128));
}

TEST_CASE("key log: an IKE SA's row is the strongSwan capture's table row", "[ike][keylog]") {
    for (const char* name : {"strongswan-5.9.8-ikev2-psk-aes256-sha256-modp2048",
                             "strongswan-5.9.8-ikev2-psk-aes128gcm16-prfsha256-x25519",
                             "strongswan-5.9.8-ikev2-psk-aes128gcm16-prfsha256-x25519-dpd-rekey-"
                             "delete"}) {
        INFO(name);
        const std::string text = read(captures() / (std::string(name) + ".ikev2_decryption_table"));
        auto parsed = keylog::parse_ikev2_table(text);
        REQUIRE(parsed.has_value());
        const auto rows = rows_of(text);
        REQUIRE(parsed->size() == rows.size());
        for (size_t i = 0; i < rows.size(); ++i) {
            const auto& e = (*parsed)[i];
            crypto::ike_keys k;
            k.initiator = e.initiator;
            k.responder = e.responder;
            auto row = keylog::ikev2_row(e.spi_i, e.spi_r, k);
            REQUIRE(row.has_value());
            CHECK(*row == rows[i]);
        }
    }
    // The CBC capture's row, read field by field (the values as the file has them).
    auto parsed = keylog::parse_ikev2_table(
        read(captures() / "strongswan-5.9.8-ikev2-psk-aes256-sha256-modp2048."
                          "ikev2_decryption_table"));
    REQUIRE(parsed.has_value());
    const auto& e = parsed->at(0);
    CHECK(e.spi_i == 0x753d67a10fb79565ULL);
    CHECK(e.spi_r == 0xa27a3b531c27226fULL);
    CHECK(e.initiator.encr == encr_id::aes_cbc);
    CHECK(e.initiator.encr_bits == 256);
    CHECK(e.responder.integ == integ_id::hmac_sha2_256_128);
    CHECK(crypto::equal(
        e.initiator.encr_key.view(),
        hex("5050cb97c98e8e4959b9378c8e60ecdbf31aedd227c3018e591ff36ba2c7ac49").view()));
    CHECK(crypto::equal(
        e.responder.integ_key.view(),
        hex("0451143df7a85e3e0a8258a8096917f999dd98c688b8fb538d75440e48976027").view()));
}

TEST_CASE("key log: a CHILD_SA's rows are the guests' esp_sa rows", "[ike][keylog]") {
    // strongswan_guests.py wrote these from the guests' `ip xfrm state`; spoke3's view: it
    // receives on 0xcd3f4f3d from spoke2 and sends on 0xc0d3ba79.
    child_sa c;
    c.local = 0xc6336403;  // 198.51.100.3
    c.peer = 0xc6336402;   // 198.51.100.2
    c.encr = encr_id::aes_gcm_16;
    c.encr_bits = 256;
    c.integ = integ_id::none;
    c.inbound.spi = 0xcd3f4f3d;
    c.inbound.cipher_key =
        hex("2ede22c0ccc220debeb6b62b52c27d5fe22ba0dacfe967c3a076b00296a2605c5f13d097");
    c.outbound.spi = 0xc0d3ba79;
    c.outbound.cipher_key =
        hex("d2df072f61939023029131f9fc53e73f7b7a358a3293e02a6587c1199298fcd216dea4f3");
    auto rows = keylog::esp_rows(c);
    REQUIRE(rows.has_value());
    const std::string file =
        read(captures() / "strongswan-5.9.8-guests-ikev2-psk-transport-gre-esp-aes256gcm16.esp_sa");
    CHECK(rows_of(*rows) == rows_of(file));

    // AES-CBC + HMAC-SHA-256-128: both keys, as tests/golden/scenario.py writes them for tshark.
    c.encr = encr_id::aes_cbc;
    c.encr_bits = 128;
    c.integ = integ_id::hmac_sha2_256_128;
    c.inbound.cipher_key = hex("000102030405060708090a0b0c0d0e0f");
    c.inbound.integ_key = hex("101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f");
    c.outbound.cipher_key = hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
    c.outbound.integ_key = hex("e0e1e2e3e4e5e6e7e8e9eaebecedeeefd0d1d2d3d4d5d6d7d8d9dadbdcdddedf");
    rows = keylog::esp_rows(c);
    REQUIRE(rows.has_value());
    CHECK(*rows ==
          "\"IPv4\",\"198.51.100.2\",\"198.51.100.3\",\"0xcd3f4f3d\",\"AES-CBC [RFC3602]\","
          "\"0x000102030405060708090a0b0c0d0e0f\",\"HMAC-SHA-256-128 [RFC4868]\","
          "\"0x101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f\"\n"
          "\"IPv4\",\"198.51.100.3\",\"198.51.100.2\",\"0xc0d3ba79\",\"AES-CBC [RFC3602]\","
          "\"0xf0f1f2f3f4f5f6f7f8f9fafbfcfdfeff\",\"HMAC-SHA-256-128 [RFC4868]\","
          "\"0xe0e1e2e3e4e5e6e7e8e9eaebecedeeefd0d1d2d3d4d5d6d7d8d9dadbdcdddedf\"\n");
}

TEST_CASE("key log: a hostile ikev2_decryption_table is refused with its line", "[ike][keylog]") {
    const std::string good =
        "1122334455667788,99aabbccddeeff00,"
        "000102030405060708090a0b0c0d0e0f10111213,"
        "101112131415161718191a1b1c1d1e1f20212223,"
        "\"AES-GCM-128 with 16 octet ICV [RFC5282]\",,,\"NONE [RFC4306]\"";
    auto ok = keylog::parse_ikev2_table("# comment\n\n" + good + "\r\n");
    REQUIRE(ok.has_value());
    REQUIRE(ok->size() == 1);
    CHECK(ok->at(0).spi_i == 0x1122334455667788ULL);
    CHECK(ok->at(0).initiator.encr_key.size() == 20);

    struct bad_case {
        std::string text;
        std::string says;
    };
    const std::vector<bad_case> cases = {
        {"a,b,c", "line 1: 3 fields"},
        {"#\n" + good.substr(1), "line 2: SPIi: not 16 hex digits"},
        {"1122334455667788,99aabbccddeeff0g" + good.substr(33), "line 1: SPIr: not 16 hex"},
        {"1122334455667788,99aabbccddeeff00,0001,1011,\"AES-GCM-128 with 16 octet ICV "
         "[RFC5282]\",,,\"NONE [RFC4306]\"",
         "line 1: SK_ei: not 20 bytes of hex"},
        {"1122334455667788,99aabbccddeeff00,00,11,\"3DES [RFC2451]\",,,\"NONE [RFC4306]\"",
         "line 1: encryption algorithm \"3DES [RFC2451]\": not one dmvpn-decode decrypts"},
        {"1122334455667788,99aabbccddeeff00,000102030405060708090a0b0c0d0e0f,"
         "000102030405060708090a0b0c0d0e0f,\"AES-CBC-128 [RFC3602]\",,,\"NONE [RFC4306]\"",
         "line 1: integrity algorithm \"NONE [RFC4306]\""},
        {"1122334455667788,99aabbccddeeff00,000102030405060708090a0b0c0d0e0f,"
         "000102030405060708090a0b0c0d0e0f,\"AES-CBC-128 [RFC3602]\",00,00,"
         "\"HMAC_SHA2_256_128 [RFC4868]\"",
         "line 1: SK_ai: not 32 bytes of hex"},
    };
    for (const auto& c : cases) {
        INFO(c.text);
        auto r = keylog::parse_ikev2_table(c.text);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().starts_with(c.says));
    }
}

TEST_CASE("key log: the writer appends rows to 0600 files in Wireshark's layout", "[ike][keylog]") {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("dmvpn-keylog-test-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    auto parsed = keylog::parse_ikev2_table(
        read(captures() / "strongswan-5.9.8-ikev2-psk-aes256-sha256-modp2048."
                          "ikev2_decryption_table"));
    REQUIRE(parsed.has_value());
    crypto::ike_keys k;
    k.initiator = parsed->at(0).initiator;
    k.responder = parsed->at(0).responder;
    {
        auto w = keylog::writer::open(dir.string());
        REQUIRE(w.has_value());
        (*w)->ike_sa(0x753d67a10fb79565ULL, 0xa27a3b531c27226fULL, k);
        CHECK((*w)->ike_rows_written() == 1);
        child_sa unnamed;  // AES-GCM-8 has no Wireshark ESP name: skipped, counted
        unnamed.encr = encr_id::aes_gcm_8;
        unnamed.encr_bits = 128;
        (*w)->child(unnamed);
        CHECK((*w)->skipped() == 2);
        CHECK((*w)->esp_rows_written() == 0);
    }
    {
        auto w = keylog::writer::open(dir.string());  // a second run appends
        REQUIRE(w.has_value());
        (*w)->ike_sa(1, 2, k);
    }
    const std::string table = read(dir / "ikev2_decryption_table");
    CHECK(table.starts_with("# This file is automatically generated, DO NOT MODIFY.\n"));
    const auto rows = rows_of(table);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0] == rows_of(read(captures() / "strongswan-5.9.8-ikev2-psk-aes256-sha256-"
                                               "modp2048.ikev2_decryption_table"))[0]);
    CHECK(rows[1].starts_with("0000000000000001,0000000000000002,5050cb97"));
    CHECK(rows_of(read(dir / "esp_sa")).empty());
    CHECK(read(dir / "preferences").find("esp.enable_encryption_decode: TRUE") !=
          std::string::npos);
    struct stat st {};
    REQUIRE(::stat((dir / "ikev2_decryption_table").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    REQUIRE(::stat(dir.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);

    // A preferences file of the user's own is left as it was.
    std::filesystem::remove_all(dir);
    std::filesystem::create_directory(dir);
    std::ofstream(dir / "preferences") << "gui.theme: dark\n";
    REQUIRE(keylog::writer::open(dir.string()).has_value());
    CHECK(read(dir / "preferences") == "gui.theme: dark\n");
    // A path that cannot be a directory: refused with the path and the reason.
    auto bad = keylog::writer::open((dir / "preferences" / "sub").string());
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().find("preferences/sub: cannot create") != std::string::npos);
    std::filesystem::remove_all(dir);
}
