// fpm-server-drive: the FPM thread's path alone, for a profiler. An fpm::server on a loopback
// port takes COUNT /24 routes (one inline gateway each, as fpm-push sends them) from a client
// thread; the main thread drains the batches as the control lcore would and exits when all are
// through. No DPDK, no RIB: `valgrind --tool=callgrind --separate-threads=yes
// build/bench/fpm-server-drive 100000` counts the FPM thread's instructions per route.
//
//   fpm-server-drive [COUNT]   (default 100000, at most 10,000,000)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "control/fpm/server.hpp"

namespace fpm = dmvpn::fpm;

int main(int argc, char** argv) {
    const unsigned long count = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100000;
    if (count == 0 || count > 10'000'000) {
        std::fprintf(stderr, "usage: fpm-server-drive [COUNT 1..10000000]\n");
        return 2;
    }
    std::vector<uint8_t> stream;
    fpm::route r;
    r.family = 2;
    r.table = 254;
    r.protocol = fpm::protocol::bgp;
    r.metric = 20;
    r.prefix_len = 24;
    r.dst.family = 2;
    const fpm::address gateway{2, {192, 0, 2, 2}};
    r.nexthops = {fpm::nexthop{gateway, 3, 1}};
    for (unsigned long i = 0; i < count; ++i) {
        const uint32_t a = 0x01000000u + static_cast<uint32_t>(i) * 256;
        r.dst.bytes[0] = static_cast<uint8_t>(a >> 24);
        r.dst.bytes[1] = static_cast<uint8_t>(a >> 16);
        r.dst.bytes[2] = static_cast<uint8_t>(a >> 8);
        const auto frame = fpm::encode_frame(r);
        stream.insert(stream.end(), frame.begin(), frame.end());
    }
    fpm::server_options options;
    options.port = 0;
    options.max_routes = count;
    fpm::server server(options);
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(server.port());
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        std::perror("fpm-server-drive: connect");
        return 1;
    }
    std::thread client([&] {
        for (size_t off = 0; off < stream.size();) {
            const ssize_t n = ::send(fd, stream.data() + off, stream.size() - off, MSG_NOSIGNAL);
            if (n <= 0) {
                return;
            }
            off += static_cast<size_t>(n);
        }
    });
    unsigned long taken = 0;
    while (taken < count) {
        if (auto batch = server.poll()) {
            taken += batch->size();
        } else {
            std::this_thread::yield();
        }
    }
    client.join();
    ::close(fd);
    std::printf("{\"routes\": %lu}\n", taken);
    return 0;
}
