// SA creation rules and the HMAC precompute against RFC 2202 and RFC 4231.
#include <catch2/catch.hpp>

#include <algorithm>
#include <new>
#include <string>

#include "crypto/sa.hpp"
#include "tests/unit/crypto_test_support.hpp"

using namespace dmvpn::crypto;
using crypto_test::bytes;
using crypto_test::hex;

namespace {

engine& test_engine() {
    static auto eng = engine::create();
    REQUIRE(eng.has_value());
    return **eng;
}

bytes text(const std::string& s) { return bytes(s.begin(), s.end()); }

std::string hex_of(std::span<const uint8_t> b) {
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (uint8_t v : b) {
        s += digits[v >> 4];
        s += digits[v & 15];
    }
    return s;
}

}  // namespace

TEST_CASE("engine picks an AES-NI code path", "[crypto][sa]") {
    engine& eng = test_engine();
    CHECK(eng.mgr() != nullptr);
    CHECK(eng.arch() != "none");
}

TEST_CASE("HMAC-SHA-1 matches RFC 2202", "[crypto][hmac]") {
    engine& eng = test_engine();
    struct kat {
        bytes key;
        bytes data;
        const char* digest;
    };
    const kat cases[] = {
        {bytes(20, 0x0b), text("Hi There"), "b617318655057264e28bc0b6fb378c8ef146be00"},
        {text("Jefe"), text("what do ya want for nothing?"),
         "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"},
        {bytes(20, 0xaa), bytes(50, 0xdd), "125d7342b9ac11cd91a39af48aa17b4f63f175d3"},
        {hex("0102030405060708090a0b0c0d0e0f10111213141516171819"), bytes(50, 0xcd),
         "4c9007f4026250c6bc8414f9bf50c86c2d7235da"},
        {bytes(20, 0x0c), text("Test With Truncation"), "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04"},
        {bytes(80, 0xaa), text("Test Using Larger Than Block-Size Key - Hash Key First"),
         "aa4ae5e15272d00e95705637ce8a3b55ed402112"},
        {bytes(80, 0xaa),
         text("Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data"),
         "e8e99d0f45237d786d6bbaa7965c7808bbff1a91"},
    };
    for (const auto& c : cases) {
        CHECK(hex_of(hmac_digest(eng, hmac_alg::sha1, c.key, c.data)) == c.digest);
    }
}

TEST_CASE("HMAC-SHA-256 matches RFC 4231", "[crypto][hmac]") {
    engine& eng = test_engine();
    struct kat {
        bytes key;
        bytes data;
        const char* digest;  // test case 5 publishes only the first 128 bits
    };
    const kat cases[] = {
        {bytes(20, 0x0b), text("Hi There"),
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {text("Jefe"), text("what do ya want for nothing?"),
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        {bytes(20, 0xaa), bytes(50, 0xdd),
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
        {hex("0102030405060708090a0b0c0d0e0f10111213141516171819"), bytes(50, 0xcd),
         "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
        {bytes(20, 0x0c), text("Test With Truncation"), "a3b6167473100ee06e0c796c2955552b"},
        {bytes(131, 0xaa), text("Test Using Larger Than Block-Size Key - Hash Key First"),
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
        {bytes(131, 0xaa),
         text("This is a test using a larger than block-size key and a larger than block-size "
              "data. The key needs to be hashed before being used by the HMAC algorithm."),
         "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
    };
    for (const auto& c : cases) {
        const std::string got = hex_of(hmac_digest(eng, hmac_alg::sha256, c.key, c.data));
        CHECK(got.substr(0, std::string(c.digest).size()) == c.digest);
    }
}

// RFC 2202 section 2; RFC 2403 (HMAC-MD5-96) truncates the same HMAC to its first 96 bits, which
// test case 5 also publishes.
TEST_CASE("HMAC-MD5 matches RFC 2202", "[crypto][hmac]") {
    engine& eng = test_engine();
    struct kat {
        bytes key;
        bytes data;
        const char* digest;
    };
    const kat cases[] = {
        {bytes(16, 0x0b), text("Hi There"), "9294727a3638bb1c13f48ef8158bfc9d"},
        {text("Jefe"), text("what do ya want for nothing?"), "750c783e6ab0b503eaa86e310a5db738"},
        {bytes(16, 0xaa), bytes(50, 0xdd), "56be34521d144c88dbb8c733f0e8b3f6"},
        {hex("0102030405060708090a0b0c0d0e0f10111213141516171819"), bytes(50, 0xcd),
         "697eaf0aca3a3aea3a75164746ffaa79"},
        {bytes(16, 0x0c), text("Test With Truncation"), "56461ef2342edc00f9bab995690efd4c"},
    };
    for (const auto& c : cases) {
        CHECK(hex_of(hmac_digest(eng, hmac_alg::md5, c.key, c.data)) == c.digest);
    }
    CHECK(hex_of(hmac_digest(eng, hmac_alg::md5, bytes(16, 0x0c), text("Test With Truncation")))
              .substr(0, 24) == "56461ef2342edc00f9bab995");  // test case 5's digest-96
    // Test cases 6 and 7 hash an 80-byte key first, which takes a one-shot MD5 IPsec-MB lacks:
    // refused with an empty result rather than a wrong digest.
    CHECK(hmac_digest(eng, hmac_alg::md5, bytes(80, 0xaa),
                      text("Test Using Larger Than Block-Size Key - Hash Key First"))
              .empty());
}

TEST_CASE("SA creation refuses bad parameters with a named reason", "[crypto][sa]") {
    engine& eng = test_engine();
    const bytes gcm128 = bytes(20, 1);
    const bytes aes128 = bytes(16, 2);
    const bytes sha1_key = bytes(20, 3);
    const bytes sha256_key = bytes(32, 4);

    auto make = [&](auto tweak) {
        sa_params p;
        p.spi = 0x1000;
        p.cipher = cipher_alg::aes_gcm_16;
        p.cipher_key = gcm128;
        tweak(p);
        return sa::create(p, eng);
    };
    auto error_of = [&](auto tweak) {
        auto r = make(tweak);
        REQUIRE_FALSE(r.has_value());
        CHECK(name(r.error()) != "unknown");
        return r.error();
    };

    CHECK(make([](sa_params&) {}).has_value());
    CHECK(error_of([](sa_params& p) { p.spi = 0; }) == sa_error::bad_spi);
    CHECK(error_of([&](sa_params& p) { p.cipher_key = aes128; }) ==
          sa_error::bad_cipher_key_length);  // GCM needs the salt
    CHECK(error_of([&](sa_params& p) { p.cipher_key = {}; }) == sa_error::bad_cipher_key_length);
    CHECK(error_of([&](sa_params& p) {
              p.integ = integ_alg::hmac_sha1_96;
              p.integ_key = sha1_key;
          }) == sa_error::bad_algorithm_pair);
    CHECK(error_of([&](sa_params& p) {
              p.cipher = cipher_alg::aes_cbc;
              p.cipher_key = aes128;
          }) == sa_error::bad_algorithm_pair);  // CBC without integrity unasked
    CHECK(error_of([&](sa_params& p) {
              p.cipher = cipher_alg::aes_cbc;
              p.cipher_key = gcm128;
              p.integ = integ_alg::hmac_sha1_96;
              p.integ_key = sha1_key;
          }) == sa_error::bad_cipher_key_length);
    CHECK(error_of([&](sa_params& p) {
              p.cipher = cipher_alg::aes_cbc;
              p.cipher_key = aes128;
              p.integ = integ_alg::hmac_sha256_128;
              p.integ_key = sha1_key;
          }) == sa_error::bad_integ_key_length);
    const bytes des3_key = hex("0123456789abcdef23456789abcdef01456789abcdef0123");
    const bytes md5_key = bytes(16, 6);
    CHECK(error_of([&](sa_params& p) {
              p.cipher = cipher_alg::des3_cbc;
              p.cipher_key = aes128;
              p.integ = integ_alg::hmac_md5_96;
              p.integ_key = md5_key;
          }) == sa_error::bad_cipher_key_length);  // 3DES takes three 8-byte keys
    CHECK(error_of([&](sa_params& p) {
              p.cipher = cipher_alg::des3_cbc;
              p.cipher_key = des3_key;
              p.integ = integ_alg::hmac_md5_96;
              p.integ_key = sha1_key;
          }) == sa_error::bad_integ_key_length);  // RFC 2403: 128 bits
    // K1 == K2, and K2 == K3 up to the parity bits DES ignores: single DES in disguise.
    bytes k12 = des3_key;
    std::copy(k12.begin(), k12.begin() + 8, k12.begin() + 8);
    bytes k23 = des3_key;
    for (size_t i = 0; i < 8; ++i) {
        k23[16 + i] = static_cast<uint8_t>(k23[8 + i] ^ 1);
    }
    for (const bytes* weak : {&k12, &k23}) {
        CHECK(error_of([&](sa_params& p) {
                  p.cipher = cipher_alg::des3_cbc;
                  p.cipher_key = *weak;
                  p.integ = integ_alg::hmac_md5_96;
                  p.integ_key = md5_key;
              }) == sa_error::weak_cipher_key);
    }
    auto des3 = make([&](sa_params& p) {
        p.cipher = cipher_alg::des3_cbc;
        p.cipher_key = des3_key;
        p.integ = integ_alg::hmac_md5_96;
        p.integ_key = md5_key;
    });
    REQUIRE(des3.has_value());
    CHECK((*des3)->key_bytes() == 24);
    CHECK((*des3)->iv_len() == 8);
    CHECK((*des3)->icv_len() == 12);
    CHECK((*des3)->pad_align() == 8);
    CHECK(name((*des3)->cipher()) == "des3_cbc");
    CHECK(name((*des3)->integ()) == "hmac_md5_96");
    CHECK(error_of([](sa_params& p) {
              p.direction = sa_direction::inbound;
              p.replay_window = 0;
          }) == sa_error::bad_replay_window);
    CHECK(error_of([](sa_params& p) {
              p.direction = sa_direction::inbound;
              p.replay_window = replay_window::max_size + 1;
          }) == sa_error::bad_replay_window);
    CHECK(error_of([](sa_params& p) {
              p.lifetime.soft_packets = 10;
              p.lifetime.hard_packets = 10;
          }) == sa_error::bad_lifetime);

    auto cbc = make([&](sa_params& p) {
        p.cipher = cipher_alg::aes_cbc;
        p.cipher_key = bytes(32, 5);
        p.integ = integ_alg::hmac_sha256_128;
        p.integ_key = sha256_key;
        p.esn = true;
        p.direction = sa_direction::inbound;
        p.replay_window = 4096;
    });
    REQUIRE(cbc.has_value());
    const sa& s = **cbc;
    CHECK(s.key_bytes() == 32);
    CHECK(s.iv_len() == 16);
    CHECK(s.icv_len() == 16);
    CHECK(s.pad_align() == 16);
    CHECK(s.esn());
    CHECK(s.direction() == sa_direction::inbound);
    CHECK(s.window().size() == 4096);

    auto gcm = make([](sa_params&) {});
    REQUIRE(gcm.has_value());
    CHECK((*gcm)->iv_len() == 8);
    CHECK((*gcm)->icv_len() == 16);
    CHECK((*gcm)->pad_align() == 4);
    CHECK_FALSE((*gcm)->soft_expired());
    CHECK_FALSE((*gcm)->hard_expired());
}

namespace {

struct counting_allocator {
    size_t allocations = 0;
    size_t releases = 0;
    size_t last_bytes = 0;
    bool refuse = false;

    static void* allocate(void* ctx, size_t bytes, size_t align) {
        auto* self = static_cast<counting_allocator*>(ctx);
        if (self->refuse) {
            return nullptr;
        }
        ++self->allocations;
        self->last_bytes = bytes;
        return ::operator new (bytes, std::align_val_t{align});
    }
    static void release(void* ctx, void* p) {
        ++static_cast<counting_allocator*>(ctx)->releases;
        ::operator delete (p, std::align_val_t{64});
    }
    sa_allocator hook() { return {allocate, release, this}; }
};

}  // namespace

TEST_CASE("SAs come from the installed allocator and go back to the one they came from",
          "[crypto][sa]") {
    const bytes key(20, 3);
    auto make = [&](sa_direction d, uint32_t window) {
        sa_params p;
        p.spi = 0x77;
        p.direction = d;
        p.cipher_key = key;
        p.replay_window = window;
        auto r = sa::create(p, test_engine());
        REQUIRE(r.has_value());
        return std::move(*r);
    };
    counting_allocator a;
    set_sa_allocator(a.hook());
    auto out = make(sa_direction::outbound, 1024);
    CHECK(a.allocations == 1);
    const size_t out_bytes = a.last_bytes;
    CHECK(out_bytes >= sizeof(sa));
    auto in = make(sa_direction::inbound, 4096);
    CHECK(a.allocations == 2);
    // The replay bitmap lives in the SA's allocation.
    CHECK(a.last_bytes >= out_bytes + replay_window::words_for(4096) * sizeof(uint64_t));
    CHECK(reinterpret_cast<uintptr_t>(out.get()) % alignof(sa) == 0);
    CHECK(reinterpret_cast<uintptr_t>(in.get()) % alignof(sa) == 0);
    for (uint64_t s = 1; s <= 5000; s += 3) {
        REQUIRE(in->window().accept(s).has_value());
    }
    CHECK(in->window().check(4999).error() == replay_error::replayed);

    // Back to the heap: new SAs stay off the counting allocator, old ones still return to it.
    set_sa_allocator({});
    auto heap = make(sa_direction::inbound, 64);
    CHECK(a.allocations == 2);
    out.reset();
    in.reset();
    CHECK(a.releases == 2);
    heap.reset();
    CHECK(a.releases == 2);

    // An allocator that has nothing left: the SA goes to the heap instead.
    a.refuse = true;
    set_sa_allocator(a.hook());
    auto fallback = make(sa_direction::inbound, 1024);
    CHECK(fallback->window().accept(1).has_value());
    fallback.reset();
    CHECK(a.releases == 2);
    set_sa_allocator({});
}
