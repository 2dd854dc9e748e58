// The logging path: level filter, per-key token buckets, journald or plain lines on stderr.
#include "control/log.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <functional>

namespace dmvpn::log {

namespace detail {
std::atomic<uint8_t> g_level{static_cast<uint8_t>(level::info)};
}

namespace {

constexpr std::string_view names[] = {"error", "warning", "notice", "info", "debug"};
constexpr level levels[] = {level::error, level::warning, level::notice, level::info, level::debug};

std::string g_program = "dmvpn";
sink_format g_format = sink_format::plain;
std::function<void(std::string_view)> g_test_sink;

int64_t unix_ms_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

int64_t steady_ms_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

void write_all(std::string_view line) {
    // One write(2) per line: lines from several threads do not interleave.
    while (!line.empty()) {
        ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;
        }
        line.remove_prefix(static_cast<size_t>(n));
    }
}

}  // namespace

std::string_view name(level l) noexcept {
    for (size_t i = 0; i < std::size(levels); ++i) {
        if (levels[i] == l) {
            return names[i];
        }
    }
    return "?";
}

std::optional<level> parse_level(std::string_view text) noexcept {
    for (size_t i = 0; i < std::size(levels); ++i) {
        if (names[i] == text) {
            return levels[i];
        }
    }
    return std::nullopt;
}

std::string_view level_names() noexcept { return "error, warning, notice, info, debug"; }

rate_limiter::rate_limiter(config c, size_t slots)
    : _config(c), _slots(std::max<size_t>(slots, 1)) {}

std::optional<uint64_t> rate_limiter::admit(std::string_view key, int64_t now_ms) {
    slot& s = _slots[std::hash<std::string_view>{}(key) % _slots.size()];
    const uint64_t burst = uint64_t{std::max<uint32_t>(_config.burst, 1)} * 1000;
    if (!s.used) {
        s = slot{burst, now_ms, 0, true};
    } else if (now_ms > s.last_ms) {
        uint64_t refill = static_cast<uint64_t>(now_ms - s.last_ms) * _config.per_s;
        s.tokens_milli = std::min(burst, s.tokens_milli + refill);
        s.last_ms = now_ms;
    }
    if (s.tokens_milli < 1000) {
        ++s.suppressed;
        return std::nullopt;
    }
    s.tokens_milli -= 1000;
    return std::exchange(s.suppressed, 0);
}

std::string format_line(sink_format f, level l, std::string_view program, std::string_view text,
                        int64_t unix_ms) {
    std::string line;
    if (f == sink_format::journal) {
        line = fmt::format("<{}>{}", static_cast<unsigned>(l), text);
    } else {
        std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
        std::tm tm{};
        gmtime_r(&secs, &tm);
        line = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z {}: {}: {}",
                           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                           tm.tm_sec, unix_ms % 1000, program, name(l), text);
    }
    line += '\n';
    return line;
}

bool is_journal_stream(const char* env, uint64_t dev, uint64_t ino) {
    if (env == nullptr) {
        return false;
    }
    std::string_view s(env);
    size_t colon = s.find(':');
    if (colon == std::string_view::npos) {
        return false;
    }
    uint64_t d = 0;
    uint64_t i = 0;
    auto r1 = std::from_chars(s.data(), s.data() + colon, d);
    auto r2 = std::from_chars(s.data() + colon + 1, s.data() + s.size(), i);
    return r1.ec == std::errc{} && r1.ptr == s.data() + colon && r2.ec == std::errc{} &&
           r2.ptr == s.data() + s.size() && d == dev && i == ino;
}

void init(std::string_view program, std::optional<sink_format> format) {
    g_program = std::string(program);
    if (format) {
        g_format = *format;
        return;
    }
    struct stat st {};
    bool journal = fstat(STDERR_FILENO, &st) == 0 &&
                   is_journal_stream(std::getenv("JOURNAL_STREAM"), st.st_dev, st.st_ino);
    g_format = journal ? sink_format::journal : sink_format::plain;
}

void set_level(level l) noexcept {
    detail::g_level.store(static_cast<uint8_t>(l), std::memory_order_relaxed);
}

level current_level() noexcept {
    return static_cast<level>(detail::g_level.load(std::memory_order_relaxed));
}

void set_sink_for_test(std::function<void(std::string_view)> sink) {
    g_test_sink = std::move(sink);
}

void write(level l, std::string_view key, std::string_view text, bool force) {
    if (!force && !enabled(l)) {
        return;
    }
    // Per thread: the control lcore never waits on a lock another thread holds to log.
    thread_local rate_limiter limiter{rate_limiter::config{}};
    std::string body(text);
    if (!key.empty()) {
        auto admitted = limiter.admit(key, steady_ms_now());
        if (!admitted) {
            return;
        }
        if (*admitted != 0) {
            body.insert(std::min(body.find('\n'), body.size()),
                        fmt::format(" ({} similar message{} suppressed)", *admitted,
                                    *admitted == 1 ? "" : "s"));
        }
    }
    // A text of several lines (a `debug nhrp` packet) is one message: admitted once, written as
    // one line each, every line carrying the priority.
    int64_t ms = unix_ms_now();
    std::string out;
    std::string_view rest = body;
    while (!rest.empty()) {
        size_t nl = rest.find('\n');
        std::string_view one = rest.substr(0, nl);
        out += format_line(g_format, l, g_program, one, ms);
        rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    }
    if (g_test_sink) {
        g_test_sink(out);
        return;
    }
    write_all(out);
}

}  // namespace dmvpn::log
