// The logging path: level filter, per-key rate limiting with the suppressed count, journald's
// priority prefix and the JOURNAL_STREAM check.
#include <chrono>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "control/log.hpp"

using namespace dmvpn;

namespace {

struct capture {
    std::vector<std::string> lines;
    capture() {
        log::set_sink_for_test([this](std::string_view out) {
            while (!out.empty()) {
                size_t nl = out.find('\n');
                lines.emplace_back(out.substr(0, nl));
                out.remove_prefix(nl + 1);
            }
        });
    }
    ~capture() { log::set_sink_for_test({}); }
};

}  // namespace

TEST_CASE("levels: names, parsing, syslog priorities") {
    CHECK(log::parse_level("warning") == log::level::warning);
    CHECK(log::parse_level("debug") == log::level::debug);
    CHECK_FALSE(log::parse_level("verbose"));
    CHECK_FALSE(log::parse_level("Info"));
    CHECK(log::name(log::level::notice) == "notice");
    // RFC 5424 severities: err 3, warning 4, notice 5, info 6, debug 7.
    CHECK(static_cast<int>(log::level::error) == 3);
    CHECK(static_cast<int>(log::level::debug) == 7);
}

TEST_CASE("the level filter lets through what is at least as severe") {
    log::init("test", log::sink_format::journal);
    capture c;
    log::set_level(log::level::warning);
    log::error("e {}", 1);
    log::warning("w {}", 2);
    log::notice("n {}", 3);
    log::info("i {}", 4);
    log::debug("d {}", 5);
    REQUIRE(c.lines == std::vector<std::string>{"<3>e 1", "<4>w 2"});
    c.lines.clear();
    log::set_level(log::level::debug);
    log::debug("d {}", 6);
    log::info("i {}", 7);
    CHECK(c.lines == std::vector<std::string>{"<7>d 6", "<6>i 7"});
    // Forced (debug nhrp) writes pass a stricter level, and every line of the text is a record.
    c.lines.clear();
    log::set_level(log::level::error);
    log::write(log::level::debug, "", "NHRP: Receive\n src: 1", true);
    log::write(log::level::debug, "", "not forced", false);
    CHECK(c.lines == std::vector<std::string>{"<7>NHRP: Receive", "<7> src: 1"});
    log::set_level(log::level::info);
}

TEST_CASE("rate limiter: a burst, then the refill rate, and the suppressed count") {
    log::rate_limiter rl(log::rate_limiter::config{2, 5});  // 2 a second, 5 at once
    int64_t t = 1000;
    for (int i = 0; i < 5; ++i) {
        auto a = rl.admit("spoke up", t);
        REQUIRE(a);
        CHECK(*a == 0);
    }
    // The bucket is empty: the next 7 are suppressed.
    for (int i = 0; i < 7; ++i) {
        CHECK_FALSE(rl.admit("spoke up", t + 100));
    }
    // Another key has its own bucket.
    CHECK(rl.admit("reload refused", t + 100));
    // 500 ms at 2/s buys one token: it comes with the count of what was dropped.
    auto resumed = rl.admit("spoke up", t + 500);
    REQUIRE(resumed);
    CHECK(*resumed == 7);
    CHECK_FALSE(rl.admit("spoke up", t + 500));
    // After a long quiet spell the bucket is full again, not fuller.
    int admitted = 0;
    for (int i = 0; i < 20; ++i) {
        admitted += rl.admit("spoke up", t + 60'000) ? 1 : 0;
    }
    CHECK(admitted == 5);
}

TEST_CASE("the written line says how many similar messages were suppressed") {
    log::init("test", log::sink_format::journal);
    log::set_level(log::level::info);
    capture c;
    // 50 at once (the default burst), then suppressed within the same millisecond or so.
    for (int i = 0; i < 80; ++i) {
        log::notice("flood {}", i);
    }
    REQUIRE(c.lines.size() >= 50);
    REQUIRE(c.lines.size() < 60);  // refill is 10/s: a slow machine gains a few
    CHECK(c.lines[0] == "<5>flood 0");
    // Wait for a token (100 ms at 10/s) and see the count on the next line.
    c.lines.clear();
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(150);
    while (std::chrono::steady_clock::now() < until) {
    }
    log::notice("flood {}", 99);
    REQUIRE(c.lines.size() == 1);
    CHECK(c.lines[0].starts_with("<5>flood 99 ("));
    CHECK(c.lines[0].ends_with(" similar messages suppressed)"));
}

TEST_CASE("plain format: UTC timestamp, program, level") {
    // 2026-12-05T07:56:58.123Z
    int64_t ms = 1796457418123;
    CHECK(log::format_line(log::sink_format::plain, log::level::warning, "dmvpn-hub",
                           "port underlay: link down", ms) ==
          "2026-12-05T07:56:58.123Z dmvpn-hub: warning: port underlay: link down\n");
    CHECK(log::format_line(log::sink_format::journal, log::level::notice, "dmvpn-hub", "spoke up",
                           ms) == "<5>spoke up\n");
}

TEST_CASE("JOURNAL_STREAM must name stderr's own device and inode") {
    CHECK(log::is_journal_stream("8:12345", 8, 12345));
    CHECK_FALSE(log::is_journal_stream("8:12345", 8, 12346));
    CHECK_FALSE(log::is_journal_stream("9:12345", 8, 12345));
    CHECK_FALSE(log::is_journal_stream(nullptr, 8, 12345));
    CHECK_FALSE(log::is_journal_stream("", 0, 0));
    CHECK_FALSE(log::is_journal_stream("8:", 8, 0));
    CHECK_FALSE(log::is_journal_stream("8:12345x", 8, 12345));
}
