// dmvpn-decode FILE...: every packet of a pcap or pcapng file as one JSON object per line.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "dataplane/wire/pcap_file.hpp"
#include "tools/decode_json.hpp"

namespace {

namespace pcap = dmvpn::wire::pcap;

// Exit statuses: scripts tell "a packet did not decode" from "the file could not be read".
constexpr int exit_ok = 0;
constexpr int exit_nhrp_failed = 1;
constexpr int exit_unreadable = 2;

constexpr std::string_view usage =
    "usage: dmvpn-decode FILE...\n"
    "\n"
    "Prints every packet of each pcap or pcapng FILE (Ethernet with 802.1Q, Linux cooked\n"
    "v1/v2 or raw IP link types) as one JSON object per line, keyed by Wireshark's display\n"
    "filter field names: frame, eth/vlan/sll, ip, udp, gre, esp and nhrp.* fields. NHRP CIE\n"
    "and extension fields are arrays in wire order. A packet that does not decode has\n"
    "\"error\": the reason's name.\n"
    "\n"
    "Exit status: 0 when every NHRP packet decoded, 1 when one did not, 2 when a file could\n"
    "not be read (its packets up to the bad record are printed first).\n";

void complain(const std::string& file, const std::string& why) {
    std::fprintf(stderr, "dmvpn-decode: %s: %s\n", file.c_str(), why.c_str());
}

// Decodes one file to stdout; returns its exit status.
int decode_file(const std::string& path) {
    auto bytes = pcap::load_file(path);
    if (!bytes) {
        complain(path, std::string(bytes.error().reason == pcap::load_error::cannot_open
                                       ? "cannot open: "
                                       : "cannot read: ") +
                           std::strerror(bytes.error().sys_errno));
        return exit_unreadable;
    }
    auto reader = pcap::file_reader::open(*bytes);
    if (!reader) {
        complain(path,
                 "not a readable pcap or pcapng file: " + std::string(pcap::name(reader.error())));
        return exit_unreadable;
    }
    int status = exit_ok;
    for (;;) {
        auto rec = reader->next();
        if (!rec) {
            std::fflush(stdout);
            complain(path, "bad record at byte offset " + std::to_string(reader->offset()) + ": " +
                               std::string(pcap::name(rec.error())));
            return exit_unreadable;
        }
        if (!*rec) {
            return status;
        }
        auto d = dmvpn::decode::decode_record(**rec);
        std::fwrite(d.json.data(), 1, d.json.size(), stdout);
        std::fputc('\n', stdout);
        if (d.nhrp && d.failed) {
            status = exit_nhrp_failed;
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fputs(usage.data(), stderr);
        return exit_unreadable;
    }
    if (std::string_view(argv[1]) == "-h" || std::string_view(argv[1]) == "--help") {
        std::fputs(usage.data(), stdout);
        return exit_ok;
    }
    int status = exit_ok;
    for (int i = 1; i < argc; ++i) {
        const int s = decode_file(argv[i]);
        status = s > status ? s : status;
    }
    if (std::fflush(stdout) != 0) {
        std::fprintf(stderr, "dmvpn-decode: writing output: %s\n", std::strerror(errno));
        return exit_unreadable;
    }
    return status;
}
