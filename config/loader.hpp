// The YAML loader's machinery, shared by the files that read parts of the schema (load.cpp,
// load_ipsec.cpp). Internal to config/: yaml-cpp types appear here and nowhere outside.
#pragma once

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "config/load.hpp"

namespace dmvpn::config::detail {

// DPDK's Debian build fixes RTE_MAX_LCORE at 128.
constexpr uint64_t max_lcore = 127;
// Upper bound of the hub's per-second budgets (punt-rates, icmp-error-rate).
constexpr uint64_t max_rate = 10000000;
// Every mapping entry and sequence item costs one; aliases let a small file name the same
// subtree many times, and this bounds the walk whatever the file does.
constexpr size_t max_entries = 1'000'000;
constexpr size_t max_errors = 100;
// sockaddr_un's sun_path holds 108 bytes, the terminating NUL included.
constexpr size_t max_socket_path = 107;
constexpr size_t max_auth_bytes = 8;  // Cisco's `ip nhrp authentication` limit

struct pos {
    int line = 0;
    int column = 0;
};

pos pos_of(const YAML::Node& n, pos fallback);
// A value as the operator wrote it, printable and bounded.
std::string quote(std::string_view s);
std::string describe(const YAML::Node& n);
size_t edit_distance(std::string_view a, std::string_view b);
bool valid_name(std::string_view s);
std::string fmt_pos(pos p);
// The path of a child: "tunnels[0]" + "gre-key" -> "tunnels[0].gre-key".
std::string child(std::string_view path, std::string_view key);
std::string item(std::string_view path, size_t i);

struct value_ref {
    YAML::Node node;
    std::string path;
    pos at;
};

struct entry {
    std::string key;
    YAML::Node value;
    pos key_at;
};

struct fields {
    std::string path;
    pos at;
    std::vector<entry> entries;
};

class loader {
public:
    explicit loader(std::string file) : _file(std::move(file)) {}

    topology load(const YAML::Node& root);
    void fail(pos at, std::string_view path, std::string message) {
        _failed.insert(std::string(path));
        if (_overflow) {
            return;
        }
        if (_errors.size() == max_errors) {
            // Past this a file is not a topology with mistakes in it; stop walking it.
            _overflow =
                error{_file, at.line, at.column, std::string(path),
                      fmt::format("too many errors (more than {}); stopping here", max_errors)};
            _exhausted = true;
            return;
        }
        _errors.push_back({_file, at.line, at.column, std::string(path), std::move(message)});
    }
    // A valid setting a security review would flag: the topology still loads.
    void warn(pos at, std::string_view path, std::string message) {
        if (_warnings.size() == max_errors) {
            return;  // as many as anyone reads; the file is not the place for more
        }
        _warnings.push_back({_file, at.line, at.column, std::string(path), std::move(message)});
    }
    std::vector<warning> take_warnings() {
        std::stable_sort(_warnings.begin(), _warnings.end(), [](const error& a, const error& b) {
            return std::tie(a.line, a.column) < std::tie(b.line, b.column);
        });
        return std::move(_warnings);
    }
    std::vector<error> take_errors() {
        std::stable_sort(_errors.begin(), _errors.end(), [](const error& a, const error& b) {
            return std::tie(a.line, a.column) < std::tie(b.line, b.column);
        });
        if (_overflow) {
            _errors.push_back(*_overflow);
        }
        return std::move(_errors);
    }

private:
    // --- generic readers: each reports its own error and returns nullopt on failure ---
    bool spend(const value_ref& v);
    std::optional<fields> mapping(const value_ref& v, std::initializer_list<std::string_view> keys);
    std::optional<std::vector<value_ref>> sequence(const value_ref& v);
    std::optional<value_ref> member(const fields& f, std::string_view key, bool required = false);
    std::optional<std::string> scalar(const value_ref& v, std::string_view expected);
    std::optional<uint64_t> integer(const value_ref& v, uint64_t lo, uint64_t hi);
    std::optional<bool> boolean(const value_ref& v);
    std::optional<std::string> text(const value_ref& v);
    std::optional<std::string> ident(const value_ref& v);
    std::optional<ipv4> address(const value_ref& v);
    std::optional<prefix4> network(const value_ref& v);
    std::optional<interface_address> host_address(const value_ref& v);
    std::optional<std::vector<uint8_t>> hex(const value_ref& v);
    std::optional<device> dev(const value_ref& v);

    // Reads `key` of `f` through `parse` into `target` when present.
    template <typename T, typename Parse>
    void read(const fields& f, std::string_view key, T& target, Parse parse) {
        if (auto v = member(f, key)) {
            if (auto x = parse(*v)) {
                target = static_cast<T>(*x);
            }
        }
    }
    auto uint_in(uint64_t lo, uint64_t hi) {
        return [this, lo, hi](const value_ref& v) { return integer(v, lo, hi); };
    }
    auto as_bool() {
        return [this](const value_ref& v) { return boolean(v); };
    }

    // A list of numbers and inclusive ranges ("2-5") of 0..max, each at most once: `what` names
    // one ("an" "lcore", "a" "CPU") in the errors. Each number comes with the item naming it.
    std::vector<std::pair<uint32_t, value_ref>> number_ranges(const value_ref& v,
                                                              std::string_view article,
                                                              std::string_view what, uint64_t max);

    // --- schema ---
    hub_settings read_hub(const value_ref& v);
    port read_port(const value_ref& v);
    tunnel read_tunnel(const value_ref& v);
    nhrp_settings read_nhrp(const value_ref& v, const tunnel& t, bool overlay_ok);
    std::vector<nhrp_mapping> read_mappings(const value_ref& v, const tunnel& t, bool overlay_ok);
    // config/load_ipsec.cpp: `ipsec-profiles[]`, their manual SAs and `ike:` sections
    ipsec_profile read_profile(const value_ref& v);
    manual_sa read_manual_sa(const value_ref& v, std::optional<transform> xf);
    sa_keys read_sa_keys(const value_ref& v, std::optional<transform> xf);
    // `profile`: the profile's name, for the warnings about short pre-shared keys.
    ike_settings read_ike(const value_ref& v, std::string_view profile);
    void read_psks(const fields& f, ike_settings& s, std::string_view profile);
    void read_key_file(const value_ref& v, ike_settings& s, std::string_view profile);
    std::vector<ike_proposal> read_ike_proposals(const value_ref& v);
    std::vector<ike_settings::esp_proposal> read_esp_proposals(const value_ref& v);
    // `auth`: the profile's; each policy's `authentication` must be its IKEv1 name.
    std::vector<ike_settings::isakmp_policy> read_isakmp_policies(const value_ref& v,
                                                                  ike_auth auth);
    std::optional<std::vector<uint8_t>> psk_bytes(const value_ref& v, std::string_view profile,
                                                  std::string_view peer);
    route read_route(const value_ref& v);
    management read_management(const value_ref& v);
    // config/load_routing.cpp: `routing` (kernel interfaces, the FPM server)
    routing_settings read_routing(const value_ref& v);
    kernel_interface read_kernel_interface(const value_ref& v);
    fpm_settings read_fpm(const value_ref& v);

    // --- checks across entries ---
    void validate(topology& t);
    void validate_profiles(const topology& t);  // config/load_ipsec.cpp
    void validate_routing(const topology& t);   // config/load_routing.cpp
    pos where(std::string path) const;
    bool broken(std::string path) const;               // the value or something holding it failed
    bool failed_under(std::string_view prefix) const;  // something below it failed
    bool names_complete(std::string_view list, size_t n) const;
    template <typename T>
    std::map<std::string, size_t> unique_names(const std::vector<T>& items, std::string_view list,
                                               std::string_view what);

    std::string _file;
    std::vector<error> _errors;
    std::vector<warning> _warnings;
    std::optional<error> _overflow;               // the last error: where the walk gave up
    std::unordered_map<std::string, pos> _where;  // key path -> where its value starts
    std::unordered_set<std::string> _failed;
    size_t _budget = max_entries;
    bool _exhausted = false;
};

}  // namespace dmvpn::config::detail
