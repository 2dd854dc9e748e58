// Prometheus metrics: the model the control lcore fills once a second, the text exposition
// format (version 0.0.4) it renders to, and a small HTTP server for GET /metrics on a thread of
// its own (never the control lcore's).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "dataplane/wire/result.hpp"

namespace dmvpn::control {

enum class metric_type : uint8_t { counter, gauge };

struct metric_sample {
    std::vector<std::pair<std::string, std::string>> labels;  // name, value (any bytes)
    uint64_t value = 0;
    bool nano = false;  // value counts billionths (nanoseconds of a _seconds metric): a decimal
};

// One metric name with its help, type and samples (`name` ends in _total for counters).
struct metric_family {
    std::string name;
    std::string help;
    metric_type type = metric_type::counter;
    std::vector<metric_sample> samples;
};

// Text format 0.0.4: `# HELP`, `# TYPE`, one line per sample; label values and help escaped.
std::string render_prometheus(std::span<const metric_family> families);

struct metrics_server_config {
    uint32_t address = 0x7f000001;  // host order
    uint16_t port = 9273;           // 0: any free port (tests)
    size_t max_connections = 8;     // more wait in the listen backlog
    size_t max_request_bytes = 4096;
    int timeout_ms = 5000;  // a connection that has not been answered and sent by then is closed
};

// GET /metrics answered with `body()` (called on the server's thread); 404 for another path,
// 405 for another method, 431 for a request over the size limit; one request per connection.
class metrics_server {
public:
    static wire::result<std::unique_ptr<metrics_server>, std::string> start(
        const metrics_server_config& c, std::function<std::string()> body);
    ~metrics_server();
    metrics_server(const metrics_server&) = delete;
    metrics_server& operator=(const metrics_server&) = delete;

    uint16_t port() const noexcept { return _port; }
    uint64_t requests() const noexcept { return _requests.load(std::memory_order_relaxed); }

private:
    metrics_server(int fd, uint16_t port, metrics_server_config c,
                   std::function<std::string()> body);
    void run();

    int _fd;
    uint16_t _port;
    metrics_server_config _config;
    std::function<std::string()> _body;
    std::atomic<bool> _stop{false};
    std::atomic<uint64_t> _requests{0};
    std::thread _thread;
};

}  // namespace dmvpn::control
