// ESP transport encrypt/decrypt: published vectors, round trips, tampering, replay, lifetimes
// and malformed input.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "crypto/esp_transport.hpp"
#include "tests/unit/crypto_esp_legacy_vectors.hpp"
#include "tests/unit/crypto_test_support.hpp"

using namespace dmvpn::crypto;
using crypto_test::be16;
using crypto_test::be32;
using crypto_test::bytes;
using crypto_test::hex;
using crypto_test::packet_buffer;

namespace {

engine& test_engine() {
    static auto eng = engine::create();
    REQUIRE(eng.has_value());
    return **eng;
}

struct suite {
    const char* label;
    cipher_alg cipher;
    integ_alg integ;
    size_t cipher_key_len;  // including the GCM salt
    size_t integ_key_len;
};

const suite suites[] = {
    {"aes128-gcm", cipher_alg::aes_gcm_16, integ_alg::none, 20, 0},
    {"aes256-gcm", cipher_alg::aes_gcm_16, integ_alg::none, 36, 0},
    {"aes128-cbc-sha1", cipher_alg::aes_cbc, integ_alg::hmac_sha1_96, 16, 20},
    {"aes128-cbc-sha256", cipher_alg::aes_cbc, integ_alg::hmac_sha256_128, 16, 32},
    {"aes256-cbc-sha1", cipher_alg::aes_cbc, integ_alg::hmac_sha1_96, 32, 20},
    {"aes256-cbc-sha256", cipher_alg::aes_cbc, integ_alg::hmac_sha256_128, 32, 32},
    {"3des-cbc-md5", cipher_alg::des3_cbc, integ_alg::hmac_md5_96, 24, 16},
    {"3des-cbc-sha1", cipher_alg::des3_cbc, integ_alg::hmac_sha1_96, 24, 20},
    {"aes128-cbc-md5", cipher_alg::aes_cbc, integ_alg::hmac_md5_96, 16, 16},
};

struct options {
    bool esn = false;
    uint64_t initial_seq = 0;
    uint32_t window = 1024;
    bool anti_replay = true;
    sa_lifetime lifetime{};
    uint32_t spi = 0x1234abcd;
};

struct sa_pair {
    std::unique_ptr<sa> out;
    std::unique_ptr<sa> in;
};

bytes pattern(size_t n, uint8_t seed) {
    bytes b(n);
    for (size_t i = 0; i < n; ++i) {
        b[i] = static_cast<uint8_t>(seed + i * 13);
    }
    return b;
}

std::unique_ptr<sa> make_sa(const suite& su, sa_direction dir, const options& o) {
    const bytes ckey = pattern(su.cipher_key_len, 0x11);
    const bytes ikey = pattern(su.integ_key_len, 0x77);
    sa_params p;
    p.spi = o.spi;
    p.direction = dir;
    p.cipher = su.cipher;
    p.integ = su.integ;
    p.cipher_key = ckey;
    p.integ_key = ikey;
    p.esn = o.esn;
    p.replay_window = o.window;
    p.anti_replay = o.anti_replay;
    p.lifetime = o.lifetime;
    p.initial_seq = o.initial_seq;
    auto r = sa::create(p, test_engine());
    REQUIRE(r.has_value());
    return std::move(*r);
}

sa_pair make_pair(const suite& su, const options& o = {}) {
    return {make_sa(su, sa_direction::outbound, o), make_sa(su, sa_direction::inbound, o)};
}

esp_status encrypt_one(sa& s, packet_buffer& b) {
    esp_packet p = b.desc();
    esp_status st = esp_status::engine_error;
    (void)encrypt_burst(test_engine(), s, {&p, 1}, {&st, 1});
    if (st == esp_status::ok) {
        b.update(p);
    }
    return st;
}

esp_status decrypt_one(sa& s, packet_buffer& b) {
    esp_packet p = b.desc();
    esp_status st = esp_status::engine_error;
    (void)decrypt_burst(test_engine(), s, {&p, 1}, {&st, 1});
    if (st == esp_status::ok) {
        b.update(p);
    }
    return st;
}

bytes encrypted(sa& s, const bytes& plain) {
    packet_buffer b(plain);
    REQUIRE(encrypt_one(s, b) == esp_status::ok);
    return b.copy();
}

// Rebuilds an IPv4 header's total length and checksum after a test cut or grew the packet.
void fix_ipv4(bytes& p) {
    p[2] = static_cast<uint8_t>(p.size() >> 8);
    p[3] = static_cast<uint8_t>(p.size());
    p[10] = 0;
    p[11] = 0;
    const uint16_t sum = dmvpn::wire::inet_checksum({p.data(), 20});
    p[10] = static_cast<uint8_t>(sum >> 8);
    p[11] = static_cast<uint8_t>(sum);
}

}  // namespace

TEST_CASE("every ESP status has a name", "[crypto][esp]") {
    std::set<std::string_view> names;
    for (size_t i = 0; i < esp_status_count; ++i) {
        const auto n = name(static_cast<esp_status>(i));
        CHECK(n != "unknown");
        names.insert(n);
    }
    CHECK(names.size() == esp_status_count);
}

// DPDK's IPsec vectors (draft-mcgrew-gcm-test-01 for GCM), written into pcap: tunnel mode,
// which ESP's cryptography does not see; the outer IPv4 header is carried through unchanged.
TEST_CASE("published ESP vectors decrypt and re-encrypt to the same bytes", "[crypto][esp][kat]") {
    struct vector_case {
        const char* file;
        cipher_alg cipher;
        integ_alg integ;
        const char* cipher_key;
        const char* integ_key;
        uint32_t spi;
        uint8_t inner_protocol;
    };
    const vector_case cases[] = {
        {"vector-dpdk-esp-tunnel-aes128gcm-spia5f8.pcap", cipher_alg::aes_gcm_16, integ_alg::none,
         "feffe9928665731c6d6a8f9467308308cafebabe", "", 0xa5f8, 17},
        {"vector-dpdk-esp-tunnel-aes256gcm-spi4a2cbfe3.pcap", cipher_alg::aes_gcm_16,
         integ_alg::none,
         "abbccddef00112233445566778899aababbccddef00112233445566778899aab11223344", "", 0x4a2cbfe3,
         6},
        {"vector-dpdk-esp-tunnel-aes128cbc-hmacsha256-spi34.pcap", cipher_alg::aes_cbc,
         integ_alg::hmac_sha256_128, "000405012300000000000a0b0c0f0000",
         "de34560000007800001000000000000210304000010203040a0b0c0d05060708", 0x34, 17},
    };
    for (const auto& c : cases) {
        INFO(c.file);
        const auto pkts = crypto_test::read_pcap_ipv4(crypto_test::capture_path(c.file));
        REQUIRE(pkts.size() == 1);
        const bytes& wire = pkts[0];
        const bytes ckey = hex(c.cipher_key);
        const bytes ikey = hex(c.integ_key);
        sa_params p;
        p.spi = c.spi;
        p.cipher = c.cipher;
        p.integ = c.integ;
        p.cipher_key = ckey;
        p.integ_key = ikey;
        p.direction = sa_direction::inbound;
        auto in = sa::create(p, test_engine());
        REQUIRE(in.has_value());

        packet_buffer b(wire);
        REQUIRE(decrypt_one(**in, b) == esp_status::ok);
        const bytes plain = b.copy();
        CHECK(plain[9] == 4);  // next header: IPv4 (tunnel mode)
        CHECK(be16(plain, 2) == plain.size());
        CHECK(crypto_test::ipv4_checksum_ok(plain));
        const std::span<const uint8_t> inner = std::span<const uint8_t>(plain).subspan(20);
        REQUIRE(inner.size() >= 20);
        CHECK((inner[0] >> 4) == 4);
        CHECK(be16(inner, 2) == inner.size());
        CHECK(crypto_test::ipv4_checksum_ok(inner));
        CHECK(inner[9] == c.inner_protocol);
        CHECK((*in)->window().top() == be32(wire, 24));

        // The same SA outbound, at the vector's sequence number and IV, gives the vector back.
        const uint32_t iv_len = (*in)->iv_len();
        iv_bytes iv{};
        std::copy_n(wire.begin() + 28, iv_len, iv.begin());
        p.direction = sa_direction::outbound;
        p.initial_seq = be32(wire, 24) - 1;
        auto out = sa::create(p, test_engine());
        REQUIRE(out.has_value());
        packet_buffer e(plain);
        esp_packet d = e.desc();
        esp_status st = esp_status::engine_error;
        (void)encrypt_burst_with_ivs(test_engine(), **out, {&d, 1}, {&st, 1}, {&iv, 1});
        REQUIRE(st == esp_status::ok);
        e.update(d);
        CHECK(e.copy() == wire);
    }
}

// RFC 3602 section 4, cases 5-8: AES-128-CBC ESP packets without authentication (cases 5-6
// transport mode carrying ICMP, 7-8 tunnel mode).
TEST_CASE("RFC 3602 AES-CBC ESP test cases 5 to 8", "[crypto][esp][kat]") {
    struct rfc_case {
        const char* key;
        uint32_t spi;
        uint32_t seq;
        uint8_t next_header;
        const char* iv;
        const char* payload;
        const char* esp;
    };
    const rfc_case cases[] = {
        {"90d382b410eeba7ad938c46cec1a82bf", 0x4321, 1, 1, "e96e8c08ab465763fd098d45dd3ff893",
         "08000ebda70a00008e9c083db95b070008090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
         "202122232425262728292a2b2c2d2e2f3031323334353637",
         "0000432100000001e96e8c08ab465763fd098d45dd3ff893f663c25d325c18c6a9453e194e120849"
         "a4870b66cc6b9965330013b4898dc856a4699e523a55db080b59ec3a8e4b7e52775b07d1db34ed9c"
         "538ab50c551b874aa269add047ad2d5913ac19b7cfbad4a6"},
        {"90d382b410eeba7ad938c46cec1a82bf", 0x4321, 8, 1, "69d08df7d203329db093fc4924e5bd80",
         "0800b5e8a80a0500a69c083d0b660e00777777777777777777777777",
         "000043210000000869d08df7d203329db093fc4924e5bd80f51995881ec4e0c4488987ce742e8109"
         "689bb379d2d750c0d915dca346a89f75"},
        {"0123456789abcdef0123456789abcdef", 0x8765, 2, 4, "f4e765244f6407adf13dc1380f673f37",
         "45000054090400004001f988c0a87b03c0a87bc808009f76a90a0100b49c083d02a2040008090a0b"
         "0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30313233"
         "34353637",
         "0000876500000002f4e765244f6407adf13dc1380f673f37773b5241a4c449225e4f3ce5ed611b0c"
         "237ca96cf74a93013c1b0ea1a0cf70f8e4ecaec78ac53aad7a0f022b859243c647752e94a859352b"
         "8a4d4d2decd136e5c177f132ad3fbfb2201ac9904c74ee0a109e0ca1e4dfe9d5a100b842f1c22f0d"},
        {"0123456789abcdef0123456789abcdef", 0x8765, 5, 4, "85d47224b5f3dd5d2101d4ea8dffab22",
         "45000044090c00004001f990c0a87b03c0a87bc80800d63caa0a0200c69c083da3de0300ffffffff"
         "ffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
         "000087650000000585d47224b5f3dd5d2101d4ea8dffab2215b92683819596a8047232cc00f7048f"
         "e45318e11f8a0f62ede3c3fc61203bb50f980a08c9843fd3a1b06d5c07ff9639b7eb7dfb3512e5de"
         "435e7207ed971ef3d2726d9b5ef6affc6d17a0decbb13892"},
    };
    int number = 5;
    for (const auto& c : cases) {
        INFO("RFC 3602 case " << number++);
        const bytes key = hex(c.key);
        const bytes payload = hex(c.payload);
        const bytes esp = hex(c.esp);
        sa_params p;
        p.spi = c.spi;
        p.cipher = cipher_alg::aes_cbc;
        p.integ = integ_alg::none;
        p.allow_no_integrity = true;
        p.cipher_key = key;

        p.direction = sa_direction::inbound;
        auto in = sa::create(p, test_engine());
        REQUIRE(in.has_value());
        packet_buffer d(crypto_test::ipv4_packet(50, esp));
        REQUIRE(decrypt_one(**in, d) == esp_status::ok);
        const bytes plain = d.copy();
        CHECK(plain[9] == c.next_header);
        CHECK(bytes(plain.begin() + 20, plain.end()) == payload);
        CHECK(crypto_test::ipv4_checksum_ok(plain));

        p.direction = sa_direction::outbound;
        p.initial_seq = c.seq - 1;
        auto out = sa::create(p, test_engine());
        REQUIRE(out.has_value());
        iv_bytes iv{};
        const bytes ivb = hex(c.iv);
        std::copy(ivb.begin(), ivb.end(), iv.begin());
        packet_buffer e(crypto_test::ipv4_packet(c.next_header, payload));
        esp_packet dsc = e.desc();
        esp_status st = esp_status::engine_error;
        (void)encrypt_burst_with_ivs(test_engine(), **out, {&dsc, 1}, {&st, 1}, {&iv, 1});
        REQUIRE(st == esp_status::ok);
        e.update(dsc);
        const bytes got = e.copy();
        CHECK(bytes(got.begin() + 20, got.end()) == esp);
        CHECK(got[9] == 50);
    }
}

// The legacy transforms (3DES-CBC, HMAC-MD5-96) against whole packets built by
// tests/unit/esp_legacy_vectors.py with python3-cryptography and hmac: the first one's ciphertext
// blocks are NIST SP 800-67's published TDEA example (the script checks that).
TEST_CASE("3DES-CBC and HMAC-MD5-96 ESP packets match independently built ones",
          "[crypto][esp][kat]") {
    namespace v = esp_legacy_vectors;
    struct legacy_case {
        const char* label;
        cipher_alg cipher;
        integ_alg integ;
        const char* cipher_key;
        const char* integ_key;
        const char* iv;
        uint32_t spi;
        uint32_t seq;
        const char* inner;
        const char* esp;
    };
    const legacy_case cases[] = {
        {"3des-md5 (SP 800-67 blocks)", cipher_alg::des3_cbc, integ_alg::hmac_md5_96,
         v::des3_md5_cipher_key, v::des3_md5_integ_key, "0000000000000000", 0x3de5, 1,
         v::des3_md5_inner, v::des3_md5_esp},
        {"3des-sha1", cipher_alg::des3_cbc, integ_alg::hmac_sha1_96, v::des3_sha1_cipher_key,
         v::des3_sha1_integ_key, v::des3_sha1_iv, 0x10203, 7, v::des3_sha1_inner, v::des3_sha1_esp},
        {"aes128-md5", cipher_alg::aes_cbc, integ_alg::hmac_md5_96, v::aes128_md5_cipher_key,
         v::aes128_md5_integ_key, v::aes128_md5_iv, 0xae5, 3, v::aes128_md5_inner,
         v::aes128_md5_esp},
    };
    for (const auto& c : cases) {
        INFO(c.label);
        const bytes ckey = hex(c.cipher_key);
        const bytes ikey = hex(c.integ_key);
        const bytes inner = hex(c.inner);
        const bytes esp = hex(c.esp);
        sa_params p;
        p.spi = c.spi;
        p.cipher = c.cipher;
        p.integ = c.integ;
        p.cipher_key = ckey;
        p.integ_key = ikey;

        p.direction = sa_direction::outbound;
        p.initial_seq = c.seq - 1;
        auto out = sa::create(p, test_engine());
        REQUIRE(out.has_value());
        iv_bytes iv{};
        const bytes ivb = hex(c.iv);
        std::copy(ivb.begin(), ivb.end(), iv.begin());
        packet_buffer e(inner);
        esp_packet dsc = e.desc();
        esp_status st = esp_status::engine_error;
        (void)encrypt_burst_with_ivs(test_engine(), **out, {&dsc, 1}, {&st, 1}, {&iv, 1});
        REQUIRE(st == esp_status::ok);
        e.update(dsc);
        CHECK(e.copy() == esp);

        p.direction = sa_direction::inbound;
        p.initial_seq = 0;
        auto in = sa::create(p, test_engine());
        REQUIRE(in.has_value());
        bytes forged = esp;
        forged[forged.size() - 13] ^= 1;  // the last ciphertext byte
        packet_buffer f(forged);
        CHECK(decrypt_one(**in, f) == esp_status::bad_icv);
        packet_buffer d(esp);
        REQUIRE(decrypt_one(**in, d) == esp_status::ok);
        CHECK(d.copy() == inner);
    }
}

// tcpdump's AES-256-CBC capture: the encryption key is published, the authentication key is
// not, so the 12-byte ICV is cut off and the rest decrypted as encryption-only ESP.
TEST_CASE("AES-256-CBC capture decrypts with its published key", "[crypto][esp][kat]") {
    const auto pkts = crypto_test::read_pcap_ipv4(
        crypto_test::capture_path("esp-tunnel-aes256-cbc-spid1234567-known-key.pcap"));
    REQUIRE(pkts.size() == 8);
    const bytes key = hex("aaaabbbbccccdddd4043434545464649494a4a4c4c4f4f515152525454575758");
    sa_params p;
    p.spi = 0xd1234567;
    p.cipher = cipher_alg::aes_cbc;
    p.integ = integ_alg::none;
    p.allow_no_integrity = true;
    p.cipher_key = key;
    p.direction = sa_direction::inbound;
    auto in = sa::create(p, test_engine());
    REQUIRE(in.has_value());
    for (const bytes& wire : pkts) {
        bytes cut(wire.begin(), wire.end() - 12);
        fix_ipv4(cut);
        packet_buffer b(cut);
        REQUIRE(decrypt_one(**in, b) == esp_status::ok);
        const bytes plain = b.copy();
        CHECK(plain[9] == 4);
        const auto inner = std::span<const uint8_t>(plain).subspan(20);
        CHECK(be16(inner, 2) == inner.size());
        CHECK(crypto_test::ipv4_checksum_ok(inner));
        CHECK(inner[9] == 1);  // ICMP echo 192.0.2.1 -> 192.0.1.1
        CHECK(be32(inner, 12) == 0xc0000201u);
        CHECK(be32(inner, 16) == 0xc0000101u);
    }
    CHECK((*in)->window().top() == 8);
}

TEST_CASE("round trip every algorithm, GRE payloads of 0 to 1500 bytes", "[crypto][esp]") {
    for (const auto& su : suites) {
        for (bool esn : {false, true}) {
            INFO(su.label << (esn ? " esn" : ""));
            options o;
            o.esn = esn;
            o.initial_seq = esn ? 0xffff'ff00ull : 0;  // ESN runs cross the 32-bit boundary
            auto pair = make_pair(su, o);
            pair.in->window().reset_to(o.initial_seq);
            std::set<bytes> ivs;
            uint64_t expect_seq = o.initial_seq;
            constexpr size_t burst = 32;
            for (size_t first = 0; first <= 1500; first += burst) {
                std::vector<bytes> plain;
                std::vector<packet_buffer> bufs;
                std::vector<esp_packet> desc;
                for (size_t len = first; len < first + burst && len <= 1500; ++len) {
                    plain.push_back(crypto_test::gre_packet(len, static_cast<uint16_t>(len)));
                    bufs.emplace_back(plain.back());
                }
                for (auto& b : bufs) {
                    desc.push_back(b.desc());
                }
                std::vector<esp_status> st(desc.size(), esp_status::engine_error);
                auto sum = encrypt_burst(test_engine(), *pair.out, desc, st);
                REQUIRE(sum.ok == desc.size());
                for (size_t i = 0; i < desc.size(); ++i) {
                    REQUIRE(st[i] == esp_status::ok);
                    bufs[i].update(desc[i]);
                    const bytes e = bufs[i].copy();
                    ++expect_seq;
                    REQUIRE(e[9] == 50);
                    REQUIRE(be16(e, 2) == e.size());
                    REQUIRE(crypto_test::ipv4_checksum_ok(e));
                    REQUIRE(be32(e, 20) == 0x1234abcdu);
                    REQUIRE(be32(e, 24) == static_cast<uint32_t>(expect_seq));
                    const size_t ct_len = e.size() - 28 - pair.out->iv_len() - pair.out->icv_len();
                    REQUIRE(ct_len % pair.out->pad_align() == 0);
                    REQUIRE(ct_len >= plain[i].size() - 20 + 2);
                    REQUIRE(ct_len < plain[i].size() - 20 + 2 + pair.out->pad_align());
                    REQUIRE(bufs[i].headroom() + e.size() + bufs[i].tailroom() ==
                            bufs[i].capacity());
                    ivs.insert(bytes(e.begin() + 28, e.begin() + 28 + pair.out->iv_len()));
                    desc[i] = bufs[i].desc();
                }
                auto dsum = decrypt_burst(test_engine(), *pair.in, desc, st);
                REQUIRE(dsum.ok == desc.size());
                for (size_t i = 0; i < desc.size(); ++i) {
                    REQUIRE(st[i] == esp_status::ok);
                    bufs[i].update(desc[i]);
                    REQUIRE(bufs[i].copy() == plain[i]);
                    REQUIRE(bufs[i].headroom() == 128);
                    REQUIRE(bufs[i].headroom() + plain[i].size() + bufs[i].tailroom() ==
                            bufs[i].capacity());
                }
            }
            CHECK(ivs.size() == 1501);  // no IV ever repeats under one key
            CHECK(pair.out->last_seq() == expect_seq);
            CHECK(pair.in->window().top() == expect_seq);
            CHECK(pair.out->packets() == 1501);
            CHECK(pair.in->packets() == 1501);
            CHECK(pair.in->bytes() == pair.out->bytes());
        }
    }
}

TEST_CASE("tampered SPI, sequence, IV, ciphertext or ICV is rejected", "[crypto][esp]") {
    for (const auto& su : suites) {
        INFO(su.label);
        auto pair = make_pair(su);
        const bytes good = encrypted(*pair.out, crypto_test::gre_packet(100));
        for (size_t off = 20; off < good.size(); ++off) {
            for (uint8_t bit : {0x01, 0x80}) {
                bytes bad = good;
                bad[off] ^= bit;
                packet_buffer b(bad);
                const esp_status st = decrypt_one(*pair.in, b);
                INFO("offset " << off << " bit " << int(bit) << ": " << name(st));
                if (off < 24) {
                    REQUIRE(st == esp_status::spi_mismatch);
                } else if (off < 28) {
                    REQUIRE((st == esp_status::bad_icv || st == esp_status::zero_sequence));
                } else {
                    REQUIRE(st == esp_status::bad_icv);
                }
            }
        }
        // No forgery moved the window: the genuine packet still goes through, once.
        CHECK(pair.in->window().top() == 0);
        CHECK(pair.in->packets() == 0);
        packet_buffer b(good);
        CHECK(decrypt_one(*pair.in, b) == esp_status::ok);
        packet_buffer again(good);
        CHECK(decrypt_one(*pair.in, again) == esp_status::replayed);
    }
}

TEST_CASE("replay: duplicates in and across bursts, too old, far ahead", "[crypto][esp]") {
    for (const auto& su : suites) {
        INFO(su.label);
        options o;
        o.window = 64;
        auto pair = make_pair(su, o);
        std::vector<bytes> e;
        for (int i = 0; i < 300; ++i) {
            e.push_back(encrypted(*pair.out, crypto_test::gre_packet(40)));
        }
        // e[k] carries sequence number k + 1.
        std::vector<packet_buffer> bufs{packet_buffer(e[2]), packet_buffer(e[0]),
                                        packet_buffer(e[2]), packet_buffer(e[1])};
        std::vector<esp_packet> d;
        for (auto& b : bufs) {
            d.push_back(b.desc());
        }
        std::vector<esp_status> st(d.size());
        auto sum = decrypt_burst(test_engine(), *pair.in, d, st);
        CHECK(sum.ok == 3);
        CHECK(st[0] == esp_status::ok);
        CHECK(st[1] == esp_status::ok);
        CHECK(st[2] == esp_status::replayed);
        CHECK(st[3] == esp_status::ok);

        packet_buffer dup(e[0]);
        CHECK(decrypt_one(*pair.in, dup) == esp_status::replayed);
        packet_buffer far(e[199]);  // far ahead: accepted, the window slides to 200
        CHECK(decrypt_one(*pair.in, far) == esp_status::ok);
        CHECK(pair.in->window().top() == 200);
        packet_buffer old(e[200 - 64 - 1]);  // sequence 136: 64 behind the top
        CHECK(decrypt_one(*pair.in, old) == esp_status::outside_window);
        packet_buffer edge(e[200 - 64]);  // sequence 137: the window's last slot
        CHECK(decrypt_one(*pair.in, edge) == esp_status::ok);
        packet_buffer mid(e[150]);
        CHECK(decrypt_one(*pair.in, mid) == esp_status::ok);
        packet_buffer next(e[200]);
        CHECK(decrypt_one(*pair.in, next) == esp_status::ok);
        CHECK(pair.in->window().top() == 201);
    }
}

TEST_CASE("anti-replay off (manual keys): a restarted peer and duplicates pass, forgeries do not",
          "[crypto][esp]") {
    for (const auto& su : suites) {
        INFO(su.label);
        options o;
        o.window = 64;
        o.anti_replay = false;
        auto pair = make_pair(su, o);
        CHECK_FALSE(pair.in->window().enforced());
        std::vector<bytes> e;
        for (int i = 0; i < 200; ++i) {
            e.push_back(encrypted(*pair.out, crypto_test::gre_packet(40)));
        }
        packet_buffer last(e[199]);
        CHECK(decrypt_one(*pair.in, last) == esp_status::ok);
        CHECK(pair.in->window().top() == 200);
        // The peer restarted: its sequence numbers begin again at 1, far below the window.
        packet_buffer first(e[0]);
        CHECK(decrypt_one(*pair.in, first) == esp_status::ok);
        packet_buffer again(e[0]);
        CHECK(decrypt_one(*pair.in, again) == esp_status::ok);
        CHECK(pair.in->window().top() == 200);
        // Authentication still holds.
        bytes bad = e[5];
        bad[bad.size() - 1] ^= 1;
        packet_buffer forged(bad);
        CHECK(decrypt_one(*pair.in, forged) == esp_status::bad_icv);
    }
}

TEST_CASE("ESN: sequence numbers cross 2^32 and the high half is authenticated",
          "[crypto][esp][esn]") {
    for (const auto& su : suites) {
        INFO(su.label);
        options o;
        o.esn = true;
        o.initial_seq = 0xffff'fffdull;
        auto pair = make_pair(su, o);
        pair.in->window().reset_to(0xffff'fff0ull);
        std::vector<bytes> e;
        for (int i = 0; i < 5; ++i) {
            e.push_back(encrypted(*pair.out, crypto_test::gre_packet(64)));
        }
        CHECK(pair.out->last_seq() == 0x1'0000'0002ull);
        const uint32_t lows[] = {0xfffffffeu, 0xffffffffu, 0, 1, 2};
        for (int i = 0; i < 5; ++i) {
            CHECK(be32(e[i], 24) == lows[i]);
        }
        // Out of order across the boundary, within the window.
        for (int i : {2, 0, 4, 1, 3}) {
            packet_buffer b(e[i]);
            REQUIRE(decrypt_one(*pair.in, b) == esp_status::ok);
        }
        CHECK(pair.in->window().top() == 0x1'0000'0002ull);
        packet_buffer dup(e[2]);
        CHECK(decrypt_one(*pair.in, dup) == esp_status::replayed);

        // A receiver whose window sits at the start of the first subspace infers high half 0
        // for low 1 (inside its window); the sender used 1, and the ICV covers the high half.
        auto other = make_sa(su, sa_direction::inbound, o);
        other->window().reset_to(0x10);
        CHECK(*other->window().check_low(1) == 1);
        packet_buffer wrong(e[3]);
        CHECK(decrypt_one(*other, wrong) == esp_status::bad_icv);
    }
}

TEST_CASE("sequence overflow is refused, never wrapped", "[crypto][esp]") {
    for (const auto& su : suites) {
        INFO(su.label);
        options o;
        o.initial_seq = 0xffff'fffeull;
        auto out = make_sa(su, sa_direction::outbound, o);
        packet_buffer a(crypto_test::gre_packet(10));
        CHECK(encrypt_one(*out, a) == esp_status::ok);
        CHECK(be32(a.copy(), 24) == 0xffffffffu);
        packet_buffer b(crypto_test::gre_packet(10));
        CHECK(encrypt_one(*out, b) == esp_status::seq_overflow);
        CHECK(encrypt_one(*out, b) == esp_status::seq_overflow);
        CHECK(out->last_seq() == 0xffff'ffffull);

        o.esn = true;
        o.initial_seq = UINT64_MAX - 1;
        auto esn = make_sa(su, sa_direction::outbound, o);
        packet_buffer c(crypto_test::gre_packet(10));
        CHECK(encrypt_one(*esn, c) == esp_status::ok);
        packet_buffer d(crypto_test::gre_packet(10));
        CHECK(encrypt_one(*esn, d) == esp_status::seq_overflow);
    }
}

TEST_CASE("outbound without ESN: soft expiry at 90% of the sequence numbers left",
          "[crypto][esp][lifetime]") {
    options o;
    o.initial_seq = UINT32_MAX - 100;  // 100 numbers left: soft at the 90th packet
    auto out = make_sa(suites[0], sa_direction::outbound, o);
    CHECK(out->lifetime().soft_packets == 90);
    for (int i = 1; i <= 90; ++i) {
        CHECK_FALSE(out->soft_expired());
        packet_buffer b(crypto_test::gre_packet(10));
        REQUIRE(encrypt_one(*out, b) == esp_status::ok);
    }
    CHECK(out->soft_expired());
    CHECK_FALSE(out->hard_expired());
    o.esn = true;  // 2^64 numbers: no such mark
    CHECK(make_sa(suites[0], sa_direction::outbound, o)->lifetime().soft_packets == 0);
}

TEST_CASE("lifetimes: soft reported once, hard refuses", "[crypto][esp][lifetime]") {
    const suite& su = suites[0];
    SECTION("packets, outbound") {
        options o;
        o.lifetime.soft_packets = 3;
        o.lifetime.hard_packets = 5;
        auto out = make_sa(su, sa_direction::outbound, o);
        int soft_events = 0;
        for (int i = 1; i <= 7; ++i) {
            packet_buffer b(crypto_test::gre_packet(20));
            esp_packet d = b.desc();
            esp_status st;
            auto sum = encrypt_burst(test_engine(), *out, {&d, 1}, {&st, 1});
            soft_events += sum.soft_expired_now ? 1 : 0;
            CHECK(st == (i <= 5 ? esp_status::ok : esp_status::sa_expired));
            CHECK(out->soft_expired() == (i >= 3));
            CHECK(out->hard_expired() == (i >= 5));
            if (i == 3) {
                CHECK(sum.soft_expired_now);
            }
        }
        CHECK(soft_events == 1);
        CHECK(out->packets() == 5);
        CHECK(out->last_seq() == 5);  // refused packets take no sequence number
    }
    SECTION("bytes, outbound") {
        // GRE of 92 inner bytes: 100-byte ESP payload, 104 bytes ciphered with GCM's padding.
        options o;
        o.lifetime.soft_bytes = 300;
        o.lifetime.hard_bytes = 520;
        auto out = make_sa(su, sa_direction::outbound, o);
        for (int i = 1; i <= 6; ++i) {
            packet_buffer b(crypto_test::gre_packet(92));
            CHECK(encrypt_one(*out, b) == (i <= 5 ? esp_status::ok : esp_status::sa_expired));
            CHECK(out->soft_expired() == (i >= 3));
        }
        CHECK(out->bytes() == 520);
        CHECK(out->hard_expired());
    }
    SECTION("packets, inbound: the refused packet leaves the window alone") {
        options o;
        o.lifetime.hard_packets = 2;
        sa_pair pair{make_sa(su, sa_direction::outbound, options{}),
                     make_sa(su, sa_direction::inbound, o)};
        std::vector<bytes> e;
        for (int i = 0; i < 3; ++i) {
            e.push_back(encrypted(*pair.out, crypto_test::gre_packet(30)));
        }
        std::vector<packet_buffer> bufs{packet_buffer(e[0]), packet_buffer(e[1]),
                                        packet_buffer(e[2])};
        std::vector<esp_packet> d{bufs[0].desc(), bufs[1].desc(), bufs[2].desc()};
        std::vector<esp_status> st(3);
        auto sum = decrypt_burst(test_engine(), *pair.in, d, st);
        CHECK(sum.ok == 2);
        CHECK(st[2] == esp_status::sa_expired);
        CHECK(pair.in->window().top() == 2);
        CHECK(pair.in->hard_expired());
    }
}

TEST_CASE("bursts larger than a chunk keep order and skip bad packets", "[crypto][esp]") {
    auto pair = make_pair(suites[3]);
    std::vector<bytes> plain;
    std::vector<packet_buffer> bufs;
    for (int i = 0; i < 150; ++i) {
        bytes p = crypto_test::gre_packet(static_cast<size_t>(i * 5), static_cast<uint16_t>(i));
        if (i % 7 == 3) {
            p[0] = 0x65;  // not IPv4
        }
        plain.push_back(p);
        bufs.emplace_back(p);
    }
    std::vector<esp_packet> d;
    for (auto& b : bufs) {
        d.push_back(b.desc());
    }
    std::vector<esp_status> st(d.size());
    auto sum = encrypt_burst(test_engine(), *pair.out, d, st);
    uint32_t seq = 0;
    for (size_t i = 0; i < d.size(); ++i) {
        if (i % 7 == 3) {
            REQUIRE(st[i] == esp_status::not_ipv4);
            continue;
        }
        REQUIRE(st[i] == esp_status::ok);
        bufs[i].update(d[i]);
        REQUIRE(be32(bufs[i].copy(), 24) == ++seq);
    }
    CHECK(sum.ok == seq);
    // Decrypt them all in one burst, the refused ones (still plaintext) included.
    for (size_t i = 0; i < d.size(); ++i) {
        d[i] = bufs[i].desc();
    }
    auto dsum = decrypt_burst(test_engine(), *pair.in, d, st);
    CHECK(dsum.ok == seq);
    for (size_t i = 0; i < d.size(); ++i) {
        if (i % 7 == 3) {
            CHECK(st[i] == esp_status::not_ipv4);
            continue;
        }
        REQUIRE(st[i] == esp_status::ok);
        bufs[i].update(d[i]);
        REQUIRE(bufs[i].copy() == plain[i]);
    }
}

TEST_CASE("every truncation of an ESP packet is rejected with a reason", "[crypto][esp][bad]") {
    for (const auto& su : suites) {
        INFO(su.label);
        auto pair = make_pair(su);
        const bytes good = encrypted(*pair.out, crypto_test::gre_packet(77));
        for (size_t cut = 0; cut < good.size(); ++cut) {
            INFO("cut to " << cut);
            // Exact-size buffers, so ASan sees any read past the end.
            bytes shorter(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(cut));
            packet_buffer raw(shorter, 0, 0);
            REQUIRE(decrypt_one(*pair.in, raw) == esp_status::truncated);
            if (cut >= 20) {
                fix_ipv4(shorter);  // a consistent header claiming the short length
                packet_buffer consistent(shorter, 0, 0);
                const esp_status st = decrypt_one(*pair.in, consistent);
                INFO(name(st));
                REQUIRE((st == esp_status::truncated || st == esp_status::bad_cipher_length ||
                         st == esp_status::bad_icv));
            }
        }
        // Nothing above was authentic, so the window is untouched.
        CHECK(pair.in->window().top() == 0);
        packet_buffer ok(good);
        CHECK(decrypt_one(*pair.in, ok) == esp_status::ok);
    }
}

TEST_CASE("malformed or unfit packets get named reasons", "[crypto][esp][bad]") {
    auto pair = make_pair(suites[0]);
    auto enc_status = [&](bytes p, uint32_t head = 128, uint32_t tail = 128) {
        packet_buffer b(p, head, tail);
        return encrypt_one(*pair.out, b);
    };
    const bytes gre = crypto_test::gre_packet(50);

    for (size_t cut = 0; cut < gre.size(); ++cut) {
        bytes shorter(gre.begin(), gre.begin() + static_cast<std::ptrdiff_t>(cut));
        CHECK(enc_status(shorter, 128, 0) == esp_status::truncated);
    }
    bytes v6 = gre;
    v6[0] = 0x60;
    CHECK(enc_status(v6) == esp_status::not_ipv4);
    bytes short_ihl = gre;
    short_ihl[0] = 0x44;
    CHECK(enc_status(short_ihl) == esp_status::bad_ip_header);
    bytes tiny_total = gre;
    tiny_total[2] = 0;
    tiny_total[3] = 10;
    CHECK(enc_status(tiny_total) == esp_status::bad_ip_header);
    bytes fragment = gre;
    fragment[6] |= 0x20;  // more fragments
    CHECK(enc_status(fragment) == esp_status::ip_fragment);
    bytes offset = gre;
    offset[7] = 1;
    CHECK(enc_status(offset) == esp_status::ip_fragment);
    CHECK(enc_status(gre, 15, 128) == esp_status::no_headroom);
    CHECK(enc_status(gre, 16, 128) == esp_status::ok);
    CHECK(enc_status(gre, 128, 10) == esp_status::no_tailroom);
    CHECK(enc_status(crypto_test::ipv4_packet(47, bytes(65535 - 20 - 20))) == esp_status::too_big);

    packet_buffer plain(gre);
    CHECK(decrypt_one(*pair.in, plain) == esp_status::not_esp);
    packet_buffer wrong_in(gre);
    CHECK(decrypt_one(*pair.out, wrong_in) == esp_status::wrong_direction);
    packet_buffer wrong_out(gre);
    CHECK(encrypt_one(*pair.in, wrong_out) == esp_status::wrong_direction);

    // Link padding after the IPv4 total length is ignored on the way in.
    bytes padded = encrypted(*pair.out, gre);
    padded.insert(padded.end(), 6, 0);
    packet_buffer pb(padded);
    CHECK(decrypt_one(*pair.in, pb) == esp_status::ok);
    CHECK(pb.copy() == gre);

    // A CBC ciphertext that is not whole blocks.
    auto cbc = make_pair(suites[2]);
    bytes odd = encrypted(*cbc.out, gre);
    odd.insert(odd.end() - 12, 0);
    fix_ipv4(odd);
    packet_buffer ob(odd);
    CHECK(decrypt_one(*cbc.in, ob) == esp_status::bad_cipher_length);
}

TEST_CASE("authentic packets with bad padding or next header 59 are dropped",
          "[crypto][esp][bad]") {
    // Without integrity, CBC's malleability lets the test change a chosen plaintext byte of
    // the last block by flipping the same byte of the block before it.
    const bytes key = pattern(16, 3);
    sa_params p;
    p.spi = 0x77;
    p.cipher = cipher_alg::aes_cbc;
    p.integ = integ_alg::none;
    p.allow_no_integrity = true;
    p.cipher_key = key;
    auto out = sa::create(p, test_engine());
    p.direction = sa_direction::inbound;
    auto in = sa::create(p, test_engine());
    REQUIRE(out.has_value());
    REQUIRE(in.has_value());

    // GRE with 20 inner bytes: 28-byte payload, 2 pad bytes, 32 bytes ciphered. Each variant
    // is its own packet (its own sequence number): without integrity every one is authentic
    // and enters the window before its padding is looked at.
    auto next_packet = [&] { return encrypted(**out, crypto_test::gre_packet(20)); };
    const size_t ct_off = 20 + 8 + 16;
    const size_t prev_block = ct_off;  // with two blocks, the one before the last is the first

    bytes pad_byte = next_packet();
    REQUIRE(pad_byte.size() == ct_off + 32);
    pad_byte[prev_block + 12] ^= 0x40;  // first pad byte: 1 -> 0x41
    packet_buffer a(pad_byte);
    CHECK(decrypt_one(**in, a) == esp_status::bad_padding);

    bytes pad_len = next_packet();
    pad_len[prev_block + 14] ^= 0x80;  // pad length 2 -> 130, longer than the payload
    packet_buffer b(pad_len);
    CHECK(decrypt_one(**in, b) == esp_status::bad_padding);

    bytes no_next = next_packet();
    no_next[prev_block + 15] ^= 47 ^ 59;  // next header GRE -> 59
    packet_buffer c(no_next);
    CHECK(decrypt_one(**in, c) == esp_status::dummy_packet);

    const bytes good = next_packet();
    packet_buffer d(good);
    CHECK(decrypt_one(**in, d) == esp_status::ok);
}

TEST_CASE("other IPsec-MB code paths interoperate; keys stay with their path", "[crypto][esp]") {
    for (engine_path path : {engine_path::sse, engine_path::avx2}) {
        auto eng = engine::create(path);
        REQUIRE(eng.has_value());
        INFO((*eng)->arch());
        for (const auto& su : suites) {
            INFO(su.label);
            const bytes ckey = pattern(su.cipher_key_len, 0x11);
            const bytes ikey = pattern(su.integ_key_len, 0x77);
            sa_params p;
            p.spi = 0x1234abcd;
            p.cipher = su.cipher;
            p.integ = su.integ;
            p.cipher_key = ckey;
            p.integ_key = ikey;
            auto out = sa::create(p, **eng);  // this path's key layout
            REQUIRE(out.has_value());
            auto in = make_sa(su, sa_direction::inbound, {});  // the automatic path's

            // Encrypted on this path, decrypted on the automatic one: the same bytes on the wire.
            const bytes plain = crypto_test::gre_packet(333);
            packet_buffer b(plain);
            esp_packet d = b.desc();
            esp_status st = esp_status::engine_error;
            (void)encrypt_burst(**eng, **out, {&d, 1}, {&st, 1});
            REQUIRE(st == esp_status::ok);
            b.update(d);
            REQUIRE(decrypt_one(*in, b) == esp_status::ok);
            CHECK(b.copy() == plain);

            // An SA whose keys were laid out for another path is refused, not misused.
            if ((*eng)->arch_id() != test_engine().arch_id()) {
                packet_buffer c(plain);
                esp_packet cd = c.desc();
                (void)encrypt_burst(test_engine(), **out, {&cd, 1}, {&st, 1});
                CHECK(st == esp_status::engine_error);
            }
        }
    }
}

TEST_CASE("a burst of many SAs equals its runs through the single-SA calls",
          "[crypto][esp][multi]") {
    // Three SA pairs of different suites (GCM through the direct path, CBC through the job
    // path) and an identically keyed second set, for the run-by-run reference.
    const suite* used[] = {&suites[0], &suites[2], &suites[1]};
    std::vector<sa_pair> multi;
    std::vector<sa_pair> ref;
    for (uint32_t k = 0; k < 3; ++k) {
        options o;
        o.spi = 0x100 + k;
        o.window = 64;
        multi.push_back(make_pair(*used[k], o));
        ref.push_back(make_pair(*used[k], o));
    }
    // Runs of one, two and three packets, SAs interleaved, sizes varied.
    const uint32_t which[] = {0, 0, 1, 2, 0, 1, 1, 1, 2, 0, 2, 2, 1, 0, 0, 0, 2, 1};
    const size_t n = std::size(which);
    std::vector<bytes> plain;
    std::vector<packet_buffer> mb;
    std::vector<packet_buffer> rb;
    for (size_t i = 0; i < n; ++i) {
        plain.push_back(crypto_test::gre_packet(i * 37 + 1, static_cast<uint16_t>(i)));
        mb.emplace_back(plain.back());
        rb.emplace_back(plain.back());
    }
    std::vector<esp_packet> md;
    std::vector<esp_packet> rd;
    std::vector<sa*> out_sas;
    for (size_t i = 0; i < n; ++i) {
        md.push_back(mb[i].desc());
        rd.push_back(rb[i].desc());
        out_sas.push_back(multi[which[i]].out.get());
    }
    std::vector<esp_status> mst(n, esp_status::engine_error);
    std::vector<esp_status> rst(n, esp_status::engine_error);
    auto sum = encrypt_burst(test_engine(), out_sas, md, mst);
    CHECK(sum.ok == n);
    for (size_t i = 0; i < n;) {
        size_t end = i + 1;
        while (end < n && which[end] == which[i]) {
            ++end;
        }
        (void)encrypt_burst(test_engine(), *ref[which[i]].out, std::span(rd).subspan(i, end - i),
                            std::span(rst).subspan(i, end - i));
        i = end;
    }
    for (size_t i = 0; i < n; ++i) {
        INFO("packet " << i);
        REQUIRE(mst[i] == esp_status::ok);
        REQUIRE(rst[i] == esp_status::ok);
        mb[i].update(md[i]);
        rb[i].update(rd[i]);
        const bytes m = mb[i].copy();
        const bytes r = rb[i].copy();
        REQUIRE(m.size() == r.size());
        if (used[which[i]]->cipher == cipher_alg::aes_gcm_16) {
            CHECK(m == r);  // counter IVs: the same bytes
        } else {
            CHECK(be32(m, 24) == be32(r, 24));  // random IVs: the same sequence number
        }
    }
    for (uint32_t k = 0; k < 3; ++k) {
        CHECK(multi[k].out->last_seq() == ref[k].out->last_seq());
        CHECK(multi[k].out->packets() == ref[k].out->packets());
        CHECK(multi[k].out->bytes() == ref[k].out->bytes());
    }

    // Inbound: the burst again, with a duplicate inside it, a packet handed to the wrong SA
    // and one to an outbound SA; the statuses are what the runs would give.
    std::vector<packet_buffer> in;
    std::vector<sa*> in_sas;
    std::vector<size_t> src;
    for (size_t i = 0; i < n; ++i) {
        in.emplace_back(mb[i].copy());
        in_sas.push_back(multi[which[i]].in.get());
        src.push_back(i);
    }
    in.emplace_back(mb[4].copy());  // a duplicate of packet 4
    in_sas.push_back(multi[0].in.get());
    src.push_back(4);
    in.emplace_back(mb[2].copy());  // SA 1's packet handed to SA 2
    in_sas.push_back(multi[2].in.get());
    src.push_back(2);
    in.emplace_back(mb[3].copy());  // an outbound SA
    in_sas.push_back(multi[2].out.get());
    src.push_back(3);
    std::vector<esp_packet> id;
    for (auto& b : in) {
        id.push_back(b.desc());
    }
    std::vector<esp_status> ist(id.size(), esp_status::engine_error);
    auto dsum = decrypt_burst(test_engine(), in_sas, id, ist);
    CHECK(dsum.ok == n);
    for (size_t i = 0; i < id.size(); ++i) {
        INFO("packet " << i);
        if (i < n) {
            REQUIRE(ist[i] == esp_status::ok);
            in[i].update(id[i]);
            CHECK(in[i].copy() == plain[src[i]]);
        }
    }
    CHECK(ist[n] == esp_status::replayed);
    CHECK(ist[n + 1] == esp_status::spi_mismatch);
    CHECK(ist[n + 2] == esp_status::wrong_direction);
    for (uint32_t k = 0; k < 3; ++k) {
        CHECK(multi[k].in->window().top() == multi[k].out->last_seq());
        CHECK(multi[k].in->packets() == multi[k].out->packets());
    }
}

TEST_CASE("outbound: threads encrypting with one SA at once never share a sequence number",
          "[crypto][esp][threads]") {
    // Workers encrypt for any SA at once (no owner): as many threads as the machine has, each
    // with its own engine, in a tight loop on one SA; every number handed out exactly once.
    constexpr int threads = 4;
    constexpr uint32_t per_thread = 400000;
    for (const suite* su : {&suites[0], &suites[2]}) {  // GCM direct path, CBC job path
        INFO(su->label);
        auto out = make_sa(*su, sa_direction::outbound, options{});
        std::vector<std::vector<uint32_t>> seen(threads);
        std::atomic<int> ready{0};
        std::atomic<uint32_t> failed{0};
        std::vector<std::thread> ts;
        for (int t = 0; t < threads; ++t) {
            ts.emplace_back([&, t] {
                auto eng = engine::create();
                if (!eng) {
                    failed.fetch_add(1);
                    return;
                }
                const bytes plain = crypto_test::gre_packet(10);
                seen[t].reserve(per_thread);
                ready.fetch_add(1);
                while (ready.load() < threads) {
                }
                for (uint32_t i = 0; i < per_thread; ++i) {
                    packet_buffer b(plain);
                    esp_packet p = b.desc();
                    esp_status st = esp_status::engine_error;
                    (void)encrypt_burst(**eng, *out, {&p, 1}, {&st, 1});
                    if (st != esp_status::ok) {
                        failed.fetch_add(1);
                        continue;
                    }
                    const uint8_t* sn = p.data + 24;  // IPv4 (20) + SPI
                    seen[t].push_back(uint32_t{sn[0]} << 24 | uint32_t{sn[1]} << 16 |
                                      uint32_t{sn[2]} << 8 | sn[3]);
                }
            });
        }
        for (auto& th : ts) {
            th.join();
        }
        CHECK(failed.load() == 0);
        std::vector<uint32_t> all;
        for (const auto& v : seen) {
            all.insert(all.end(), v.begin(), v.end());
        }
        std::sort(all.begin(), all.end());
        const uint64_t total = uint64_t{threads} * per_thread;
        REQUIRE(all.size() == total);
        CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());  // no repeat
        CHECK(all.front() == 1);
        CHECK(all.back() == total);  // and no gap
        CHECK(out->last_seq() == total);
        CHECK(out->packets() == total);
    }
}
