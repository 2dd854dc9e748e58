// The one logging path of the hub and its tools: levels, per-message rate limiting, and lines on
// stderr that journald reads with their priority (`<N>` prefix) or a terminal reads with a
// timestamp. Control code only: never called by a worker per packet. Synchronous (one write(2)
// per message on the calling thread) unless a program starts the logger thread (start_async):
// the hub does once it runs, so that its control lcore never waits on stderr.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/core.h>

namespace dmvpn::log {

// The values are syslog priorities (RFC 5424), which journald takes from a `<N>` prefix.
enum class level : uint8_t { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };
std::string_view name(level l) noexcept;
std::optional<level> parse_level(std::string_view text) noexcept;
// "error, warning, notice, info, debug", for messages that list the choices.
std::string_view level_names() noexcept;

// A token bucket per message key (the key's hash picks one of a fixed number of slots; keys that
// share a slot share its bucket, so no key gets more than its share by colliding). Bounded
// memory, no allocation after construction.
class rate_limiter {
public:
    struct config {
        uint32_t per_s = 10;  // refill
        uint32_t burst = 50;  // bucket size
    };
    explicit rate_limiter(config c, size_t slots = 512);
    // Whether a message with `key` may be written at `now_ms`; when it may, how many messages of
    // its slot were suppressed since the last one written (0 usually).
    std::optional<uint64_t> admit(std::string_view key, int64_t now_ms);

private:
    struct slot {
        uint64_t tokens_milli = 0;
        int64_t last_ms = 0;
        uint64_t suppressed = 0;
        bool used = false;
    };
    config _config;
    std::vector<slot> _slots;
};

// How stderr is read: by journald (the priority prefix, no timestamp: the journal keeps its own)
// or by anything else (a UTC timestamp and the level's name).
enum class sink_format : uint8_t { journal, plain };

// One line as written (with its '\n'; `text` holds none). `unix_ms`: the plain format's time.
std::string format_line(sink_format f, level l, std::string_view program, std::string_view text,
                        int64_t unix_ms);

// systemd sets JOURNAL_STREAM to "<device>:<inode>" of the stream it connects to stderr; stderr
// is the journal when the variable names the file descriptor 2 actually has.
bool is_journal_stream(const char* journal_stream_env, uint64_t stderr_dev, uint64_t stderr_ino);

// Process-wide settings: the program name, the format (detected from JOURNAL_STREAM unless
// given), and the level. Call once from main before other threads start.
void init(std::string_view program, std::optional<sink_format> format = std::nullopt);
void set_level(level l) noexcept;
level current_level() noexcept;

namespace detail {
extern std::atomic<uint8_t> g_level;
inline std::string_view key_of(fmt::string_view v) noexcept { return {v.data(), v.size()}; }
}  // namespace detail

inline bool enabled(level l) noexcept {
    return static_cast<uint8_t>(l) <= detail::g_level.load(std::memory_order_relaxed);
}

// Writes `text` at `l` when the level lets it and the key's bucket has a token (each thread has
// its own buckets: no lock is taken); `force` skips the level filter (`debug nhrp`). An empty
// key is never rate limited. A text of several lines is admitted once and written line by line.
void write(level l, std::string_view key, std::string_view text, bool force = false);

// Tests: where lines go instead of stderr (an empty function restores stderr). Synchronous
// whether or not the logger thread runs: the sink is called on the logging thread.
void set_sink_for_test(std::function<void(std::string_view line)> sink);

// The logger thread ("dmvpn-log"). While it runs, write() formats the message on the calling
// thread as before and appends it to a bounded in-memory queue instead of writing it; the thread
// writes the queue to stderr in order (several messages per write(2), each line whole). A
// producer takes a mutex only to append (a memcpy into a buffer reserved up front: no
// allocation, no system call), the thread only to swap buffers: nobody holds it across write(2),
// so a stderr that blocks (a full pipe, journald under load) stalls the thread, never a caller;
// the queue then fills, and what does not fit is dropped, counted (dropped_lines()) and reported
// by one line "log: N lines dropped (queue full)" when the thread catches up. The thread polls
// the queue every `poll` while lines come and sleeps after a quiet while; the first line after
// it is the only one whose caller wakes it (a futex wake, which never blocks).
struct async_config {
    size_t max_queued_bytes = size_t{1} << 20;  // lines waiting for the thread; 1 MiB
    std::chrono::microseconds poll{1000};
    // CPUs the thread runs on (the hub's service CPUs, control/cpu_placement.hpp); empty: those
    // of the thread that starts it.
    std::vector<unsigned> cpus;
    // Tests: where the thread's batches go instead of stderr (called on the logger thread).
    std::function<void(std::string_view batch)> out;
};
// Starts the thread; false if it runs already or could not start (logging stays synchronous).
bool start_async(async_config c = {});
// Writes what is queued, stops and joins the thread: logging is synchronous again, in order
// after every queued line. Before each exit of a program that started it (also run at exit,
// and std::terminate writes the queue, best effort, before aborting; std::abort() and a kill
// lose what the thread had not written yet: a millisecond or so of lines).
void stop_async();
bool async_running() noexcept;
// Lines dropped with the queue full, since the process started.
uint64_t dropped_lines() noexcept;

// `log::notice("spoke {} up", a)`: formats only when the level lets the message through. The
// format string is the rate limiter's key: each call site has its own bucket.
struct at_level {
    level l;
    template <typename... Args>
    void operator()(fmt::format_string<Args...> f, Args&&... args) const {
        if (enabled(l)) {
            write(l, detail::key_of(f), fmt::format(f, std::forward<Args>(args)...));
        }
    }
};
inline constexpr at_level error{level::error};
inline constexpr at_level warning{level::warning};
inline constexpr at_level notice{level::notice};
inline constexpr at_level info{level::info};
inline constexpr at_level debug{level::debug};

}  // namespace dmvpn::log
