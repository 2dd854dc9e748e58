// Input for the peer, DPDK's ipsec-secgw example in transport mode: its configuration (one SA
// pair and one SP pair per spoke, routes) and capture files it replays with net_pcap's
// infinite_rx: ESP from the spokes (inbound) and plain IPv4 to them (outbound), the same spokes,
// keys, flow order and bytes ciphered per packet as the hub's ESP cases.
#include "bench/dataplane/peer_files.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>

#include "bench/dataplane/traffic.hpp"
#include "crypto/engine.hpp"
#include "crypto/esp_transport.hpp"
#include "crypto/sa.hpp"
#include "dataplane/wire/pcap_file.hpp"

namespace dmvpn::bench {

namespace {

std::string dotted(uint32_t a) {
    return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." +
           std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255);
}

std::string key_hex(uint32_t spi) {
    auto k = key_of(spi);
    std::string s;
    char b[4];
    for (size_t i = 0; i < k.size(); ++i) {
        std::snprintf(b, sizeof(b), "%02x", k[i]);
        s += (i == 0 ? "" : ":");
        s += b;
    }
    return s;
}

void write_config(const std::string& path, uint32_t spokes, const std::string& sa_type) {
    std::ofstream f(path);
    f << "# ipsec-secgw configuration written by dataplane-bench peer-files: " << spokes
      << " spokes, AES-128-GCM, transport mode\n";
    std::string type = sa_type.empty() ? "" : " type " + sa_type;
    for (uint32_t i = 0; i < spokes; ++i) {
        f << "sa out " << plan::spi_out(i) << " aead_algo aes-128-gcm aead_key "
          << key_hex(plan::spi_out(i)) << " mode transport" << type << "\n";
        f << "sa in " << plan::spi_in(i) << " aead_algo aes-128-gcm aead_key "
          << key_hex(plan::spi_in(i)) << " mode transport" << type << "\n";
        f << "sp ipv4 out esp protect " << plan::spi_out(i) << " pri 1 dst "
          << dotted(plan::nbma(1, i)) << "/32 sport 0:65535 dport 0:65535\n";
        f << "sp ipv4 in esp protect " << plan::spi_in(i) << " pri 1 src "
          << dotted(plan::nbma(1, i)) << "/32 dst " << dotted(plan::hub_nbma)
          << "/32 sport 0:65535 dport 0:65535\n";
    }
    // Port 0 is the unprotected (spoke) side, port 1 the protected (LAN) side.
    f << "rt ipv4 dst 198.18.0.0/15 port 0\n";
    f << "rt ipv4 dst " << dotted(plan::hub_nbma) << "/32 port 1\n";
    f << "rt ipv4 dst 172.16.0.0/12 port 1\n";
}

void write_pcap(const std::string& path, const std::vector<bytes>& frames) {
    auto w = wire::pcap::file_writer::create(path, wire::pcap::linktype::ethernet);
    if (!w) {
        throw std::runtime_error("cannot write " + path);
    }
    uint32_t n = 0;
    for (const bytes& fr : frames) {
        if (w->write({0, n++ * 1000}, fr)) {
            throw std::runtime_error("write failed: " + path);
        }
    }
    if (w->close()) {
        throw std::runtime_error("close failed: " + path);
    }
}

}  // namespace

int write_peer_files(const peer_files_options& o) {
    auto eng = crypto::engine::create();
    if (!eng) {
        std::fprintf(stderr, "IPsec-MB engine\n");
        return 1;
    }
    try {
        write_config(o.dir + "/secgw.cfg", o.spokes, "");
        write_config(o.dir + "/secgw-cpu-crypto.cfg", o.spokes, "cpu-crypto");
        std::vector<std::unique_ptr<crypto::sa>> spoke_out;
        for (uint32_t i = 0; i < o.spokes; ++i) {
            auto key = key_of(plan::spi_in(i));
            crypto::sa_params p;
            p.spi = plan::spi_in(i);
            p.cipher_key = key;
            auto r = crypto::sa::create(p, **eng);
            if (!r) {
                throw std::runtime_error("sa::create");
            }
            spoke_out.push_back(std::move(r.value()));
        }
        uint32_t seed = 7;
        for (const std::string& ss : o.sizes) {
            size_mix mix = parse_size(ss);
            std::mt19937 rng(seed++);
            std::vector<uint32_t> perm(o.spokes);
            std::iota(perm.begin(), perm.end(), 0u);
            std::shuffle(perm.begin(), perm.end(), rng);
            uint32_t n = o.spokes;
            while (n % mix.cycle.size() != 0) {
                n += o.spokes;
            }
            std::vector<bytes> in_frames;
            std::vector<bytes> out_frames;
            for (uint32_t k = 0; k < n; ++k) {
                uint32_t f = k % o.spokes;
                uint32_t s = perm[f];
                // The same outer size and ciphered bytes as the hub's GRE-in-ESP: the UDP
                // payload grows by the GRE header's 8 bytes.
                uint16_t total = static_cast<uint16_t>(mix.cycle[k % mix.cycle.size()] + 28);
                auto to_lan =
                    ipv4_udp(plan::nbma(1, s), plan::hub_nbma, total, static_cast<uint16_t>(f));
                bytes buf(64 + to_lan.size() + 64);
                std::copy(to_lan.begin(), to_lan.end(), buf.begin() + 64);
                crypto::esp_packet v{buf.data() + 64, static_cast<uint32_t>(to_lan.size()), 64, 64};
                crypto::esp_status st = crypto::esp_status::engine_error;
                (void)crypto::encrypt_burst(**eng, *spoke_out[s], std::span(&v, 1),
                                            std::span(&st, 1));
                if (st != crypto::esp_status::ok) {
                    throw std::runtime_error("encrypt");
                }
                in_frames.push_back(ether(wire_mac, gw_mac, std::span(v.data, v.len)));
                auto to_spoke =
                    ipv4_udp(plan::lan_host(f), plan::nbma(1, s), total, static_cast<uint16_t>(f));
                out_frames.push_back(ether(wire_mac, lan_mac, to_spoke));
            }
            write_pcap(o.dir + "/in-" + mix.name + ".pcap", in_frames);
            write_pcap(o.dir + "/out-" + mix.name + ".pcap", out_frames);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "peer-files: %s\n", e.what());
        return 1;
    }
    return 0;
}

}  // namespace dmvpn::bench
