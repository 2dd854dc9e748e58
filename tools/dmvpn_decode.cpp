// dmvpn-decode [--ikev2-keys TABLE] FILE...: every packet of a pcap or pcapng file as one JSON
// object per line.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
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
    "usage: dmvpn-decode [--ikev2-keys TABLE] FILE...\n"
    "\n"
    "Prints every packet of each pcap or pcapng FILE (Ethernet with 802.1Q, Linux cooked\n"
    "v1/v2 or raw IP link types) as one JSON object per line, keyed by Wireshark's display\n"
    "filter field names: frame, eth/vlan/sll, ip, udp, gre, esp and nhrp.* fields. NHRP CIE\n"
    "and extension fields are arrays in wire order. A packet that does not decode has\n"
    "\"error\": the reason's name.\n"
    "\n"
    "  --ikev2-keys TABLE  decrypt IKEv2 SK payloads with the keys in TABLE, a file in\n"
    "                      Wireshark's ikev2_decryption_table format (what dmvpn-hub\n"
    "                      --key-log writes): the inner payloads follow as isakmp.* fields.\n"
    "                      Messages sent in fragments (SKF, RFC 7383) are put back together\n"
    "                      within each file: the frame of the fragment that completes one\n"
    "                      shows its inner payloads. A table that does not parse is refused\n"
    "                      (exit 2, with the line)\n"
    "\n"
    "Exit status: 0 when every NHRP packet decoded, 1 when one did not, 2 when a file could\n"
    "not be read (its packets up to the bad record are printed first).\n";

void complain(const std::string& file, const std::string& why) {
    std::fprintf(stderr, "dmvpn-decode: %s: %s\n", file.c_str(), why.c_str());
}

// Decodes one file to stdout; returns its exit status.
int decode_file(const std::string& path, const dmvpn::decode::keys& keys) {
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
    dmvpn::decode::ike_fragments fragments;  // SKF fragments of this file's IKE SAs
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
        auto d = dmvpn::decode::decode_record(**rec, &keys, &fragments);
        std::fwrite(d.json.data(), 1, d.json.size(), stdout);
        std::fputc('\n', stdout);
        if (d.nhrp && d.failed) {
            status = exit_nhrp_failed;
        }
    }
}

// A key table bigger than this is not a key table (a row is under 400 bytes).
constexpr std::streamoff max_key_table = 16 << 20;

// --ikev2-keys TABLE: its rows added to `keys`, or false after saying why on stderr.
bool load_ikev2_keys(const std::string& path, dmvpn::decode::keys& keys) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        complain(path, std::string("cannot open: ") + std::strerror(errno));
        return false;
    }
    in.seekg(0, std::ios::end);
    const std::streamoff size = in.tellg();
    if (size < 0 || size > max_key_table) {
        complain(path, "not a key table: larger than 16 MiB");
        return false;
    }
    in.seekg(0);
    std::ostringstream text;
    text << in.rdbuf();
    auto rows = dmvpn::ike::keylog::parse_ikev2_table(text.str());
    if (!rows) {
        complain(path, "not an ikev2_decryption_table: " + rows.error());
        return false;
    }
    for (auto& r : *rows) {
        keys.ikev2.push_back(std::move(r));
    }
    return true;
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
    dmvpn::decode::keys keys;
    int first = 1;
    while (first < argc) {
        const std::string_view a = argv[first];
        std::string path;
        if (a == "--ikev2-keys" && first + 1 < argc) {
            path = argv[first + 1];
            first += 2;
        } else if (a.starts_with("--ikev2-keys=")) {
            path = a.substr(std::string_view("--ikev2-keys=").size());
            first += 1;
        } else if (a == "--ikev2-keys") {
            std::fputs("dmvpn-decode: --ikev2-keys needs a file\n", stderr);
            return exit_unreadable;
        } else {
            break;
        }
        if (!load_ikev2_keys(path, keys)) {
            return exit_unreadable;
        }
    }
    if (first >= argc) {
        std::fputs(usage.data(), stderr);
        return exit_unreadable;
    }
    int status = exit_ok;
    for (int i = first; i < argc; ++i) {
        const int s = decode_file(argv[i], keys);
        status = s > status ? s : status;
    }
    if (std::fflush(stdout) != 0) {
        std::fprintf(stderr, "dmvpn-decode: writing output: %s\n", std::strerror(errno));
        return exit_unreadable;
    }
    return status;
}
