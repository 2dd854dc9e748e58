// The logging path: level filter, per-key token buckets, journald or plain lines on stderr,
// written by the calling thread or, once a program starts it, by the logger thread.
#include "control/log.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>

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

// The CPUs the process could run on when init() was called (empty if it was not).

void write_all(std::string_view line) {
    // One write(2) per message (per batch from the logger thread): lines from several threads
    // do not interleave.
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

// The logger thread and its queue (log.hpp, async_config). Why a mutex and not a lock-free
// ring: the producers are a handful of control threads (the control lcore, IKE, FPM,
// redistribution, management) logging at most thousands of lines a second, each a variable
// length string; the mutex is held only for a memcpy into a buffer reserved at start (a
// producer's append) or for swapping two buffers (the thread), never across write(2), never
// around an allocation, so a producer waits at most for another producer's memcpy of a line or
// the thread's swap (or, if the holder is preempted inside that window of nanoseconds, until it
// runs again: rare, and the same holds for the malloc arena locks that formatting a line
// may already take). A lock-free MPSC ring of variable-length records would save that rare short
// wait at the price of a fixed slot size or a two-phase reserve/commit protocol; per-thread SPSC
// rings would lose the order across threads that the log has today. Order: one queue, appended
// under the lock, so the file shows the order in which messages were queued (per thread: the order
// they were logged).
std::atomic<bool> g_async_on{false};  // trivially destructible: safe to read at exit
std::atomic<uint64_t> g_dropped_lines{0};

class async_logger {
public:
    ~async_logger() { stop(); }

    bool start(async_config c) {
        std::lock_guard<std::mutex> control(_control);
        if (_thread.joinable()) {
            return false;
        }
        _c = std::move(c);
        _c.poll = std::max(_c.poll, std::chrono::microseconds(1));
        {
            std::lock_guard<std::mutex> lock(_m);
            _queue.clear();
            _queue.reserve(_c.max_queued_bytes);
            _accepting = true;
            _stopping = false;
            _sleeping = false;
            _pending_dropped = 0;
        }
        try {
            _thread = std::thread([this] { run(); });
        } catch (const std::system_error&) {
            std::lock_guard<std::mutex> lock(_m);
            _accepting = false;
            return false;
        }
        pthread_setname_np(_thread.native_handle(), "dmvpn-log");
        g_async_on.store(true, std::memory_order_release);
        return true;
    }

    void stop() {
        std::lock_guard<std::mutex> control(_control);
        if (!_thread.joinable()) {
            return;
        }
        {
            std::lock_guard<std::mutex> lock(_m);
            _stopping = true;
        }
        _cv.notify_one();
        _thread.join();
        std::lock_guard<std::mutex> lock(_m);
        _queue = std::string();  // the reserved megabyte back
    }

    // std::terminate's way out (an exception nobody caught, log.hpp): what is queued is written
    // at once from the terminating thread, best effort: the lock is tried for up to 100 ms (a
    // thread that died holding it must not hang the exit), and a batch the logger thread is
    // writing at that moment may interleave with it.
    void flush_now() {
        std::unique_lock<std::mutex> lock(_m, std::defer_lock);
        for (int i = 0; i < 100 && !lock.try_lock(); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        if (!lock.owns_lock() || !_accepting) {
            return;
        }
        std::string queued;
        queued.swap(_queue);
        emit(queued);  // under the lock: later lines wait, the process is going down
    }

    // Queues one formatted message (one or more whole lines); false when the thread is not
    // taking lines (the caller writes them itself).
    bool push(std::string_view out) {
        if (!g_async_on.load(std::memory_order_acquire)) {
            return false;
        }
        bool wake = false;
        {
            std::lock_guard<std::mutex> lock(_m);
            if (!_accepting) {
                return false;  // stopped meanwhile, every queued line written
            }
            if (_queue.size() + out.size() > _c.max_queued_bytes) {
                auto n = static_cast<uint64_t>(std::count(out.begin(), out.end(), '\n'));
                _pending_dropped += n;
                g_dropped_lines.fetch_add(n, std::memory_order_relaxed);
                return true;
            }
            _queue.append(out);  // within the reserved capacity: no allocation
            // Wake the thread if it sleeps (the first line after a quiet while), or early when
            // half the queue is used (a burst); otherwise its next poll takes the line.
            wake = _sleeping || _queue.size() > _c.max_queued_bytes / 2;
            _sleeping = false;
        }
        if (wake) {
            _cv.notify_one();
        }
        return true;
    }

private:
    // Polls while lines come; after this many empty polls in a row it sleeps until a line.
    static constexpr unsigned idle_polls_before_sleep = 100;

    void place() const {
        if (_c.cpus.empty()) {
            return;
        }
        cpu_set_t set;
        CPU_ZERO(&set);
        for (unsigned cpu : _c.cpus) {
            if (cpu < CPU_SETSIZE) {
                CPU_SET(cpu, &set);
            }
        }
        pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    }

    void emit(std::string_view batch) const {
        if (_c.out) {
            _c.out(batch);
        } else {
            write_all(batch);
        }
    }

    void run() {
        place();
        std::string batch;
        batch.reserve(_c.max_queued_bytes);
        unsigned idle = 0;
        std::unique_lock<std::mutex> lock(_m);
        for (;;) {
            if (_queue.empty() && _pending_dropped == 0) {
                if (_stopping) {
                    // Every line queued is written: callers write their own from now on, after
                    // these.
                    _accepting = false;
                    g_async_on.store(false, std::memory_order_release);
                    return;
                }
                if (idle >= idle_polls_before_sleep) {
                    _sleeping = true;
                    _cv.wait(lock, [this] { return !_sleeping || _stopping; });
                    _sleeping = false;
                    idle = 0;
                } else {
                    _cv.wait_for(lock, _c.poll);
                    ++idle;
                }
                continue;
            }
            idle = 0;
            batch.swap(_queue);  // both hold the reserved capacity
            uint64_t dropped = std::exchange(_pending_dropped, 0);
            lock.unlock();
            if (dropped != 0) {
                batch += format_line(g_format, level::warning, g_program,
                                     // One wording whatever N, for whoever greps it.
                                     fmt::format("log: {} lines dropped (queue full)", dropped),
                                     unix_ms_now());
            }
            emit(batch);
            batch.clear();
            lock.lock();
        }
    }

    std::mutex _control;  // start and stop
    std::thread _thread;
    async_config _c;  // written by start() before the thread and the producers read it

    std::mutex _m;  // the queue and the flags below; never held across write(2)
    std::condition_variable _cv;
    std::string _queue;
    bool _accepting = false;  // producers may queue (false once the thread drained it all)
    bool _stopping = false;
    bool _sleeping = false;  // the thread waits for a producer's wake
    uint64_t _pending_dropped = 0;
};

// After g_program and g_format: destroyed (stopped, its queue written) before them at exit.
async_logger g_async;

std::terminate_handler g_next_terminate = nullptr;

[[noreturn]] void on_terminate() {
    g_async.flush_now();
    if (g_next_terminate != nullptr) {
        g_next_terminate();
    }
    std::abort();
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
    // (g_async_on first: after g_async's destructor at exit only the flag is read)
    if (!g_async_on.load(std::memory_order_acquire) || !g_async.push(out)) {
        write_all(out);
    }
}

bool start_async(async_config c) {
    if (!g_async.start(std::move(c))) {
        return false;
    }
    // Once: an uncaught exception writes the queue before the default handler aborts.
    if (std::get_terminate() != on_terminate) {
        g_next_terminate = std::set_terminate(on_terminate);
    }
    return true;
}

void stop_async() { g_async.stop(); }

bool async_running() noexcept { return g_async_on.load(std::memory_order_acquire); }

uint64_t dropped_lines() noexcept { return g_dropped_lines.load(std::memory_order_relaxed); }

}  // namespace dmvpn::log
