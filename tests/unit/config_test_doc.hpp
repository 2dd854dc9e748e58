// A line-addressed YAML document for the config tests: edits find lines by their text, so that
// expected positions come from the document itself rather than from counted line numbers.
#pragma once

#include <catch2/catch.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "config/load.hpp"

namespace dmvpn::config::test {

class doc {
public:
    explicit doc(std::string_view text) {
        size_t start = 0;
        while (start < text.size()) {
            size_t end = text.find('\n', start);
            if (end == std::string_view::npos) {
                end = text.size();
            }
            _lines.emplace_back(text.substr(start, end - start));
            start = end + 1;
        }
    }

    std::string text() const {
        std::string out;
        for (const std::string& l : _lines) {
            out += l;
            out += '\n';
        }
        return out;
    }

    // 1-based number of the one line containing `needle`.
    int line_of(std::string_view needle) const { return static_cast<int>(index_of(needle)) + 1; }
    // 1-based column where `token` starts on the line containing `needle`.
    int column_of(std::string_view needle, std::string_view token) const {
        size_t at = _lines[index_of(needle)].find(token);
        if (at == std::string::npos) {
            throw std::logic_error("token not on that line: " + std::string(token));
        }
        return static_cast<int>(at) + 1;
    }

    // `lines` may hold several lines separated by '\n'.
    doc replace(std::string_view needle, std::string_view lines) const {
        size_t at = index_of(needle);
        doc d = *this;
        doc added(lines);
        d._lines.erase(d._lines.begin() + static_cast<long>(at));
        d._lines.insert(d._lines.begin() + static_cast<long>(at), added._lines.begin(),
                        added._lines.end());
        return d;
    }
    doc insert_after(std::string_view needle, std::string_view lines) const {
        size_t at = index_of(needle) + 1;
        doc d = *this;
        doc added(lines);
        d._lines.insert(d._lines.begin() + static_cast<long>(at), added._lines.begin(),
                        added._lines.end());
        return d;
    }
    doc erase(std::string_view needle) const {
        doc d = *this;
        d._lines.erase(d._lines.begin() + static_cast<long>(index_of(needle)));
        return d;
    }

private:
    size_t index_of(std::string_view needle) const {
        size_t found = _lines.size();
        for (size_t i = 0; i < _lines.size(); ++i) {
            if (_lines[i].find(needle) != std::string::npos) {
                if (found != _lines.size()) {
                    throw std::logic_error("needle not unique: " + std::string(needle));
                }
                found = i;
            }
        }
        if (found == _lines.size()) {
            throw std::logic_error("needle not found: " + std::string(needle));
        }
        return found;
    }

    std::vector<std::string> _lines;
};

// A small topology touching every section, in block style so that a key can be added at any
// level by inserting one line.
inline doc base() {
    return doc(R"(hub:
  control-lcore: 0
  worker-lcores: [1]
ports:
  - name: wan
    device: net_tap0,iface=dtap0
    role: underlay
    address: 192.0.2.1/24
  - name: lan
    device: net_ring0
    role: lan
    address: 198.18.0.1/24
tunnels:
  - name: tun0
    port: wan
    overlay-address: 10.0.0.1
    overlay-prefix: 10.0.0.0/16
    gre-key: 7
    nhrp:
      network-id: 1
      authentication: secret
      nhs:
        - overlay: 10.0.0.2
          nbma: 192.0.2.2
      multicast:
        dynamic: true
    ipsec-profile: p1
ipsec-profiles:
  - name: p1
    transform: aes128-cbc-sha1-96
    lifetime:
      hard-packets: 1000
    manual-sas:
      - peer: 192.0.2.2
        inbound:
          spi: 0x1000
          key: 000102030405060708090a0b0c0d0e0f
          integrity-key: 2021222324252627282920212223242526272829
        outbound:
          spi: 0x2000
          key: 101112131415161718191a1b1c1d1e1f
          integrity-key: 3031323334353637383930313233343536373839
routes:
  - prefix: 172.16.0.0/24
    via: 10.0.0.2
management:
  socket: /run/test.sock)");
}

// The only error a document gives; fails the test with every error otherwise.
inline error only_error(const doc& d) {
    auto r = load_string(d.text(), "t.yaml");
    INFO(d.text());
    REQUIRE_FALSE(r.has_value());
    INFO(r.error_text());
    REQUIRE(r.errors().size() == 1);
    return r.errors()[0];
}

}  // namespace dmvpn::config::test
