// fpm-push: plays zebra for the routes benchmark (bench/routes/run.py). Connects to an FPM
// server, sends COUNT IPv4 routes of mixed prefix lengths (as zebra's dplane_fpm_nl does
// without next-hop groups: RTM_NEWROUTE with the gateway inline), prints how long the sending
// took, then keeps the connection open until its standard input closes (closing it would start
// the server's hold timer). The stream is encoded first; `{"ready": ...}` on standard output
// says so, and a line on standard input then starts the connection and the sending.
//
//   fpm-push ADDRESS PORT COUNT GATEWAY[,GATEWAY...]
//   fpm-push --print COUNT GATEWAY[,GATEWAY...]   the same table as staticd lines
//
// The table: 70.8% /24, 8% /23, 6% /22, 4% /21, 3% /20, 2% /19, 1% /18, 0.2% /16, 4% /27 and
// 1% /32, every prefix distinct, each length packed in a region of its own (so the /27s and
// /32s share /24s, as a real table's long prefixes do), the lengths interleaved in the stream.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "control/fpm/codec.hpp"

namespace {

struct share {
    uint8_t length;
    uint32_t per_mille;  // of 1000 routes, tenths of a percent
};
// Sums to 1000.
constexpr std::array<share, 10> shares{{{24, 708},
                                        {23, 80},
                                        {22, 60},
                                        {21, 40},
                                        {20, 30},
                                        {19, 20},
                                        {18, 10},
                                        {16, 2},
                                        {27, 40},
                                        {32, 10}}};

dmvpn::fpm::address v4(uint32_t a) {
    dmvpn::fpm::address x;
    x.family = 2;
    x.bytes[0] = static_cast<uint8_t>(a >> 24);
    x.bytes[1] = static_cast<uint8_t>(a >> 16);
    x.bytes[2] = static_cast<uint8_t>(a >> 8);
    x.bytes[3] = static_cast<uint8_t>(a);
    return x;
}

}  // namespace

int main(int argc, char** argv) {
    const bool print = argc == 4 && std::string(argv[1]) == "--print";
    if (argc != 5 && !print) {
        std::fprintf(stderr,
                     "usage: fpm-push ADDRESS PORT COUNT GATEWAY[,GATEWAY...]\n"
                     "       fpm-push --print COUNT GATEWAY[,GATEWAY...]\n");
        return 2;
    }
    const uint64_t count = std::strtoull(argv[print ? 2 : 3], nullptr, 10);
    std::vector<uint32_t> gateways;
    for (std::string g = argv[print ? 3 : 4]; !g.empty();) {
        size_t comma = g.find(',');
        in_addr a{};
        if (inet_pton(AF_INET, g.substr(0, comma).c_str(), &a) != 1) {
            std::fprintf(stderr, "fpm-push: bad gateway %s\n", g.c_str());
            return 2;
        }
        gateways.push_back(ntohl(a.s_addr));
        g = comma == std::string::npos ? "" : g.substr(comma + 1);
    }
    if (count == 0 || count > 16'000'000 || gateways.empty()) {
        std::fprintf(stderr, "fpm-push: COUNT 1..16000000 and at least one gateway\n");
        return 2;
    }
    // Each length's region, one after the other from 1.0.0.0, aligned to the length.
    std::array<uint64_t, shares.size()> want{};
    std::array<uint64_t, shares.size()> next{};
    uint64_t assigned = 0;
    for (size_t i = 0; i < shares.size(); ++i) {
        want[i] = count * shares[i].per_mille / 1000;
        assigned += want[i];
    }
    want[0] += count - assigned;
    uint64_t cursor = 0x01000000;
    for (size_t i = 0; i < shares.size(); ++i) {
        uint64_t size = uint64_t{1} << (32 - shares[i].length);
        cursor = (cursor + size - 1) / size * size;
        next[i] = cursor;
        cursor += want[i] * size;
    }
    if (cursor > 0xe0000000) {
        std::fprintf(stderr, "fpm-push: %llu routes do not fit below 224.0.0.0\n",
                     static_cast<unsigned long long>(count));
        return 2;
    }

    if (print) {
        std::array<uint64_t, shares.size()> at{};
        for (uint64_t n = 0; n < count;) {
            for (size_t i = 0; i < shares.size() && n < count; ++i) {
                if (at[i] == want[i]) {
                    continue;
                }
                uint64_t a = next[i] + at[i]++ * (uint64_t{1} << (32 - shares[i].length));
                uint32_t g = gateways[n++ % gateways.size()];
                std::printf("ip route %llu.%llu.%llu.%llu/%u %u.%u.%u.%u\n",
                            static_cast<unsigned long long>(a >> 24 & 255),
                            static_cast<unsigned long long>(a >> 16 & 255),
                            static_cast<unsigned long long>(a >> 8 & 255),
                            static_cast<unsigned long long>(a & 255), shares[i].length, g >> 24,
                            g >> 16 & 255, g >> 8 & 255, g & 255);
            }
        }
        return 0;
    }
    // The whole stream is encoded before the connection, so that while the table goes in this
    // process only writes (zebra's own encoding is not the hub's cost, and the bench pins this
    // process to the control lcore's CPU).
    std::vector<uint8_t> out;
    out.reserve(count * 80);
    dmvpn::fpm::route r;
    r.family = 2;
    r.table = 254;
    r.protocol = dmvpn::fpm::protocol::bgp;
    r.metric = 20;
    uint64_t sent = 0;
    std::array<uint64_t, shares.size()> done{};
    // Interleaved: each round takes one route of every length that still has some to send.
    while (sent < count) {
        for (size_t i = 0; i < shares.size() && sent < count; ++i) {
            if (done[i] == want[i]) {
                continue;
            }
            uint64_t size = uint64_t{1} << (32 - shares[i].length);
            r.dst = v4(static_cast<uint32_t>(next[i] + done[i] * size));
            r.prefix_len = shares[i].length;
            r.nexthops = {dmvpn::fpm::nexthop{v4(gateways[sent % gateways.size()]), 3, 1}};
            std::vector<uint8_t> frame = dmvpn::fpm::encode_frame(r);
            out.insert(out.end(), frame.begin(), frame.end());
            ++done[i];
            ++sent;
        }
    }
    // Ready: the caller writes a line to start the clock (and closes standard input to end).
    std::printf("{\"ready\": true, \"bytes\": %zu}\n", out.size());
    std::fflush(stdout);
    for (char c = 0; c != '\n';) {
        if (::read(0, &c, 1) != 1) {
            return 1;
        }
    }
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[2])));
    if (fd < 0 || inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1 ||
        ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        std::perror("fpm-push: connect");
        return 1;
    }
    auto started = std::chrono::steady_clock::now();
    for (size_t off = 0; off < out.size();) {
        ssize_t n =
            ::send(fd, out.data() + off, std::min<size_t>(out.size() - off, 1 << 20), MSG_NOSIGNAL);
        if (n <= 0) {
            std::perror("fpm-push: send");
            return 1;
        }
        off += static_cast<size_t>(n);
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::printf("{\"routes\": %llu, \"send_seconds\": %.3f}\n",
                static_cast<unsigned long long>(sent), secs);
    std::fflush(stdout);
    char buf[256];
    while (::read(0, buf, sizeof buf) > 0) {
    }
    ::close(fd);
    return 0;
}
