// The logging path: level filter, per-key rate limiting with the suppressed count, journald's
// priority prefix and the JOURNAL_STREAM check; the logger thread (start_async): whole lines in
// per-thread order, the queue's cap, nothing lost on stop or on std::terminate.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>
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

namespace {

// What the logger thread hands out, batch by batch (read after stop_async: the join orders it).
struct batches {
    std::string all;
    size_t calls = 0;
    bool torn = false;  // a batch that does not end a line
    log::async_config config(size_t cap = size_t{1} << 20) {
        log::async_config c;
        c.max_queued_bytes = cap;
        c.out = [this](std::string_view b) {
            torn = torn || b.empty() || b.back() != '\n';
            all += b;
            ++calls;
        };
        return c;
    }
};

std::vector<std::string> lines_of(std::string_view text) {
    std::vector<std::string> out;
    while (!text.empty()) {
        size_t nl = text.find('\n');
        out.emplace_back(text.substr(0, nl));
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    }
    return out;
}

// "<5>t3 n17 xxxx": thread 3's 17th line (the padding makes lines long enough to batch).
void log_numbered(int thread, int n) {
    log::write(log::level::notice, "", fmt::format("t{} n{} {:x>40}", thread, n, ""));
}

bool wait_until(const std::function<bool()>& f) {
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!f()) {
        if (std::chrono::steady_clock::now() > end) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

}  // namespace

TEST_CASE("logger thread: lines from several threads arrive whole and in per-thread order") {
    log::init("test", log::sink_format::journal);
    log::set_level(log::level::info);
    batches b;
    // 4 x 5,000 x 53 bytes: more than 1 MiB if the writer never runs meanwhile (a loaded
    // machine): a queue of 4 MiB, so that none is dropped here.
    REQUIRE(log::start_async(b.config(size_t{4} << 20)));
    CHECK(log::async_running());
    CHECK_FALSE(log::start_async(b.config()));  // one thread
    constexpr int threads = 4;
    constexpr int per_thread = 5000;
    uint64_t dropped_before = log::dropped_lines();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
        ts.emplace_back([t] {
            for (int n = 0; n < per_thread; ++n) {
                log_numbered(t, n);
                if (n == per_thread / 2) {
                    // One message of several lines: its lines stay together.
                    log::write(log::level::debug, "", fmt::format("multi {}\n a\n b", t), true);
                }
            }
        });
    }
    for (auto& t : ts) {
        t.join();
    }
    log::stop_async();
    CHECK_FALSE(log::async_running());
    CHECK_FALSE(b.torn);
    CHECK(log::dropped_lines() == dropped_before);
    std::vector<std::string> lines = lines_of(b.all);
    REQUIRE(lines.size() == size_t{threads} * (per_thread + 3));
    std::map<int, int> next;
    size_t multis = 0;
    for (size_t i = 0; i < lines.size(); ++i) {
        const std::string& l = lines[i];
        if (l.starts_with("<7>multi ")) {
            REQUIRE(i + 2 < lines.size());
            CHECK(lines[i + 1] == "<7> a");
            CHECK(lines[i + 2] == "<7> b");
            ++multis;
            i += 2;
            continue;
        }
        int t = -1;
        int n = -1;
        REQUIRE(std::sscanf(l.c_str(), "<5>t%d n%d", &t, &n) == 2);
        REQUIRE(l == fmt::format("<5>t{} n{} {:x>40}", t, n, ""));  // whole
        CHECK(n == next[t]);                                        // in order, none missing
        next[t] = n + 1;
    }
    CHECK(multis == threads);
    for (int t = 0; t < threads; ++t) {
        CHECK(next[t] == per_thread);
    }
    INFO("batches: " << b.calls);
    CHECK(b.calls >= 1);
}

TEST_CASE("logger thread: past the cap lines are dropped, counted, and reported once") {
    log::init("test", log::sink_format::journal);
    log::set_level(log::level::info);
    // The first batch's write blocks (a stderr nobody reads) until released.
    std::atomic<bool> entered{false};
    std::atomic<bool> release{false};
    batches b;
    log::async_config c = b.config(4096);
    auto collect = c.out;
    c.out = [&](std::string_view batch) {
        entered = true;
        while (!release) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        collect(batch);
    };
    REQUIRE(log::start_async(std::move(c)));
    log::write(log::level::notice, "", "first");
    REQUIRE(wait_until([&] { return entered.load(); }));
    uint64_t before = log::dropped_lines();
    constexpr int n = 200;  // 200 x 51 bytes against 4,096: most do not fit
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
        log_numbered(0, i);
    }
    auto took = std::chrono::steady_clock::now() - t0;
    uint64_t dropped = log::dropped_lines() - before;
    // The callers went on while the writer was stuck (not asserted on time: printed).
    INFO("200 calls with the writer blocked: "
         << std::chrono::duration_cast<std::chrono::microseconds>(took).count() << " us");
    CHECK(dropped > 100);
    CHECK(dropped < n);
    release = true;
    log::stop_async();
    std::vector<std::string> lines = lines_of(b.all);
    size_t kept = n - dropped;
    REQUIRE(lines.size() == 1 + kept + 1);
    CHECK(lines[0] == "<5>first");
    for (size_t i = 0; i < kept; ++i) {
        CHECK(lines[1 + i] == fmt::format("<5>t0 n{} {:x>40}", i, ""));
    }
    CHECK(lines.back() == fmt::format("<4>log: {} lines dropped (queue full)", dropped));
}

TEST_CASE("logger thread: wakes for a line after a quiet while; the test sink stays synchronous") {
    log::init("test", log::sink_format::journal);
    log::set_level(log::level::info);
    batches b;
    std::mutex m;
    std::string seen;
    log::async_config c = b.config();
    c.out = [&](std::string_view batch) {
        std::lock_guard<std::mutex> lock(m);
        seen += batch;
    };
    REQUIRE(log::start_async(std::move(c)));
    // Past 100 empty polls the thread sleeps until a producer wakes it.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    log::write(log::level::notice, "", "after a quiet while");
    CHECK(wait_until([&] {
        std::lock_guard<std::mutex> lock(m);
        return seen == "<5>after a quiet while\n";
    }));
    {
        capture sink;
        log::write(log::level::notice, "", "to the sink");
        CHECK(sink.lines == std::vector<std::string>{"<5>to the sink"});
    }
    log::stop_async();
    CHECK(seen == "<5>after a quiet while\n");
}

TEST_CASE("logger thread: stop writes every queued line to stderr, before the next ones") {
    log::init("test", log::sink_format::plain);
    log::set_level(log::level::info);
    // stderr into a file for the test.
    char path[] = "/tmp/dmvpn-log-test-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    int saved = dup(STDERR_FILENO);
    REQUIRE(saved >= 0);
    REQUIRE(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
    log::async_config c;
    c.max_queued_bytes = size_t{4} << 20;  // 10,000 x 89 bytes, whether or not the thread runs
    REQUIRE(log::start_async(std::move(c)));
    constexpr int n = 10000;
    for (int i = 0; i < n; ++i) {
        log_numbered(1, i);
    }
    log::stop_async();  // at once: the thread has written only part of it yet
    log::write(log::level::notice, "", "after stop");
    dup2(saved, STDERR_FILENO);
    close(saved);
    std::string text;
    char buf[65536];
    ssize_t got = 0;
    lseek(fd, 0, SEEK_SET);
    while ((got = ::read(fd, buf, sizeof buf)) > 0) {
        text.append(buf, static_cast<size_t>(got));
    }
    close(fd);
    unlink(path);
    std::vector<std::string> lines = lines_of(text);
    REQUIRE(lines.size() == n + 1);
    for (int i = 0; i < n; ++i) {
        // "2026-12-07T06:41:45.123Z test: notice: t1 n0 xxx..."
        REQUIRE(lines[i].size() > 25);
        CHECK(lines[i].substr(24) == fmt::format(" test: notice: t1 n{} {:x>40}", i, ""));
    }
    CHECK(lines.back().ends_with(" test: notice: after stop"));
}

TEST_CASE("logger thread: an uncaught exception's terminate writes the queue first") {
    int p[2];
    REQUIRE(pipe(p) == 0);
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // The child: stderr into the pipe, a logger thread that would not poll for 10 s, three
        // lines queued, then std::terminate (what an exception nobody catches ends in).
        dup2(p[1], STDERR_FILENO);
        close(p[0]);
        // Not Catch2's handler (it would report this process's abort as a failed test).
        std::signal(SIGABRT, SIG_DFL);
        if (int null = open("/dev/null", O_WRONLY); null >= 0) {
            dup2(null, STDOUT_FILENO);
        }
        log::init("test", log::sink_format::journal);
        log::set_level(log::level::info);
        log::async_config c;
        c.poll = std::chrono::seconds(10);
        if (!log::start_async(std::move(c))) {
            _exit(3);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the thread in its wait
        for (int i = 0; i < 3; ++i) {
            log::write(log::level::error, "", fmt::format("queued {}", i));
        }
        std::terminate();
    }
    close(p[1]);
    std::string text;
    char buf[4096];
    ssize_t got = 0;
    while ((got = ::read(p[0], buf, sizeof buf)) > 0) {
        text.append(buf, static_cast<size_t>(got));
    }
    close(p[0]);
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    CHECK(WIFSIGNALED(status));
    CHECK(text.starts_with("<3>queued 0\n<3>queued 1\n<3>queued 2\n"));
}
