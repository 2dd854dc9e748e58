// YAML -> topology: walks the document against the schema of config/README.md, then checks
// what spans several entries (names, references, overlaps). yaml-cpp never leaves this file.
#include "config/load.hpp"

#include "config/loader.hpp"

#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "dataplane/wire/number.hpp"

namespace dmvpn::config {

std::string to_string(const error& e) {
    std::string out = e.file;
    if (e.line > 0) {
        out += fmt::format(":{}:{}", e.line, e.column);
    }
    out += ": ";
    if (!e.key.empty()) {
        out += e.key;
        out += ": ";
    }
    out += e.message;
    return out;
}

namespace {

std::string lines_of(const std::vector<error>& items) {
    std::string out;
    for (const error& e : items) {
        out += to_string(e);
        out += '\n';
    }
    return out;
}

}  // namespace

std::string result::error_text() const { return lines_of(errors()); }

std::string result::warning_text() const { return lines_of(_warnings); }

namespace detail {

pos pos_of(const YAML::Node& n, pos fallback) {
    const YAML::Mark m = n.Mark();
    if (m.line < 0 || m.column < 0) {
        return fallback;
    }
    return {m.line + 1, m.column + 1};
}

// A value as the operator wrote it, printable and bounded.
std::string quote(std::string_view s) {
    std::string out = "\"";
    size_t n = 0;
    for (char c : s) {
        if (++n > 40) {
            out += "...";
            break;
        }
        auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20 || u == 0x7f) {
            out += fmt::format("\\x{:02x}", u);
        } else {
            out += c;
        }
    }
    return out + "\"";
}

std::string describe(const YAML::Node& n) {
    switch (n.Type()) {
        case YAML::NodeType::Scalar:
            return quote(n.Scalar());
        case YAML::NodeType::Sequence:
            return "a sequence";
        case YAML::NodeType::Map:
            return "a mapping";
        default:
            return "nothing";
    }
}

using wire::parse_uint;

size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) {
        row[j] = j;
    }
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
            diagonal = up;
        }
    }
    return row[b.size()];
}

bool valid_name(std::string_view s) {
    if (s.empty() || s.size() > 32 || !std::isalnum(static_cast<unsigned char>(s[0]))) {
        return false;
    }
    return std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    });
}

std::string fmt_pos(pos p) { return fmt::format("{}:{}", p.line, p.column); }

// The path of a child: "tunnels[0]" + "gre-key" -> "tunnels[0].gre-key".
std::string child(std::string_view path, std::string_view key) {
    return path.empty() ? std::string(key) : fmt::format("{}.{}", path, key);
}
std::string item(std::string_view path, size_t i) { return fmt::format("{}[{}]", path, i); }

namespace {

// The PCI forms DPDK's -a takes: DDDD:BB:DD.F or BB:DD.F, hexadecimal, device <= 0x1f,
// function <= 7.
std::optional<std::string> normalize_pci(std::string_view s) {
    auto hex_run = [&](std::string_view t) {
        return !t.empty() && std::all_of(t.begin(), t.end(), [](char c) {
            return std::isxdigit(static_cast<unsigned char>(c)) != 0;
        });
    };
    std::string domain = "0000";
    if (s.size() == 12) {
        if (s[4] != ':' || !hex_run(s.substr(0, 4))) {
            return std::nullopt;
        }
        domain = std::string(s.substr(0, 4));
        s.remove_prefix(5);
    }
    if (s.size() != 7 || s[2] != ':' || s[5] != '.' || !hex_run(s.substr(0, 2)) ||
        !hex_run(s.substr(3, 2)) || s[6] < '0' || s[6] > '7') {
        return std::nullopt;
    }
    uint64_t dev = parse_uint(fmt::format("0x{}", s.substr(3, 2))).value_or(0xff);
    if (dev > 0x1f) {
        return std::nullopt;
    }
    std::string out = domain + ":" + std::string(s);
    std::transform(out.begin(), out.end(), out.begin(), [](char c) {
        return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    });
    return out;
}

// Ethernet PMDs that take a --vdev instance and that this hub can drive.
constexpr std::string_view vdev_drivers[] = {
    "net_tap",  "net_tun",       "net_ring",   "net_pcap",        "net_memif",
    "net_null", "net_af_packet", "net_af_xdp", "net_virtio_user", "net_vhost",
};
}  // namespace

bool loader::spend(const value_ref& v) {
    if (_exhausted) {
        return false;
    }
    if (_budget == 0) {
        _exhausted = true;
        fail(v.at, v.path,
             fmt::format("the document is too large: more than {} entries", max_entries));
        return false;
    }
    --_budget;
    return true;
}

std::optional<fields> loader::mapping(const value_ref& v,
                                      std::initializer_list<std::string_view> keys) {
    if (!v.node.IsMap()) {
        fail(v.at, v.path, fmt::format("expected a mapping, got {}", describe(v.node)));
        return std::nullopt;
    }
    fields f{v.path, v.at, {}};
    std::set<std::string, std::less<>> seen;
    for (auto it = v.node.begin(); it != v.node.end(); ++it) {
        pos key_at = pos_of(it->first, v.at);
        if (!spend({it->first, v.path, key_at})) {
            return std::nullopt;
        }
        if (!it->first.IsScalar()) {
            fail(key_at, v.path, fmt::format("expected a key name, got {}", describe(it->first)));
            continue;
        }
        const std::string& key = it->first.Scalar();
        std::string path = child(v.path, key);
        if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
            std::string_view best;
            size_t best_distance = 3;
            for (std::string_view k : keys) {
                size_t d = edit_distance(key, k);
                if (d < best_distance) {
                    best = k;
                    best_distance = d;
                }
            }
            if (!best.empty()) {
                fail(key_at, path, fmt::format("unknown key; did you mean \"{}\"?", best));
            } else {
                std::string list;
                for (std::string_view k : keys) {
                    list += list.empty() ? "" : ", ";
                    list += k;
                }
                fail(key_at, path, fmt::format("unknown key (expected one of: {})", list));
            }
            continue;
        }
        if (!seen.insert(key).second) {
            fail(key_at, path, "duplicate key");
            continue;
        }
        f.entries.push_back({key, it->second, key_at});
    }
    return f;
}

std::optional<std::vector<value_ref>> loader::sequence(const value_ref& v) {
    if (!v.node.IsSequence()) {
        fail(v.at, v.path, fmt::format("expected a sequence, got {}", describe(v.node)));
        return std::nullopt;
    }
    std::vector<value_ref> out;
    size_t i = 0;
    for (auto it = v.node.begin(); it != v.node.end(); ++it, ++i) {
        value_ref e{*it, item(v.path, i), pos_of(*it, v.at)};
        if (!spend(e)) {
            return std::nullopt;
        }
        _where.emplace(e.path, e.at);
        out.push_back(std::move(e));
    }
    return out;
}

std::optional<value_ref> loader::member(const fields& f, std::string_view key, bool required) {
    for (const entry& e : f.entries) {
        if (e.key == key) {
            value_ref v{e.value, child(f.path, key), pos_of(e.value, e.key_at)};
            // A key with nothing after it has no place of its own: point at the key.
            if (v.node.IsNull()) {
                v.at = e.key_at;
            }
            _where.emplace(v.path, v.at);
            return v;
        }
    }
    if (required) {
        fail(f.at, child(f.path, key), "missing required key");
    }
    return std::nullopt;
}

std::optional<std::string> loader::scalar(const value_ref& v, std::string_view expected) {
    if (!v.node.IsScalar()) {
        fail(v.at, v.path, fmt::format("expected {}, got {}", expected, describe(v.node)));
        return std::nullopt;
    }
    return v.node.Scalar();
}

std::optional<uint64_t> loader::integer(const value_ref& v, uint64_t lo, uint64_t hi) {
    std::string expected = fmt::format("an integer {}..{}", lo, hi);
    auto s = scalar(v, expected);
    if (!s) {
        return std::nullopt;
    }
    auto n = parse_uint(*s);
    if (!n || *n < lo || *n > hi) {
        fail(v.at, v.path, fmt::format("expected {}, got {}", expected, quote(*s)));
        return std::nullopt;
    }
    return n;
}

std::optional<bool> loader::boolean(const value_ref& v) {
    auto s = scalar(v, "true or false");
    if (!s) {
        return std::nullopt;
    }
    std::string lower = *s;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](char c) {
        return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    });
    if (lower == "true" || lower == "yes" || lower == "on") {
        return true;
    }
    if (lower == "false" || lower == "no" || lower == "off") {
        return false;
    }
    fail(v.at, v.path, fmt::format("expected true or false, got {}", quote(*s)));
    return std::nullopt;
}

std::optional<std::string> loader::text(const value_ref& v) {
    auto s = scalar(v, "a string");
    if (s && s->empty()) {
        fail(v.at, v.path, "expected a non-empty string");
        return std::nullopt;
    }
    return s;
}

std::optional<std::string> loader::ident(const value_ref& v) {
    auto s = scalar(v, "a name");
    if (s && !valid_name(*s)) {
        fail(v.at, v.path,
             fmt::format("expected a name of 1..32 letters, digits, '-', '_' or '.' starting with "
                         "a letter or digit, got {}",
                         quote(*s)));
        return std::nullopt;
    }
    return s;
}

std::optional<ipv4> loader::address(const value_ref& v) {
    auto s = scalar(v, "an IPv4 address");
    if (!s) {
        return std::nullopt;
    }
    auto a = parse_ipv4(*s);
    if (!a) {
        fail(v.at, v.path,
             fmt::format("expected an IPv4 address like 192.0.2.1, got {}", quote(*s)));
    }
    return a;
}

std::optional<prefix4> loader::network(const value_ref& v) {
    auto s = scalar(v, "an IPv4 prefix");
    if (!s) {
        return std::nullopt;
    }
    size_t slash = s->find('/');
    auto a = parse_ipv4(std::string_view(*s).substr(0, slash));
    std::optional<uint64_t> len;
    if (slash != std::string::npos && slash + 1 < s->size() && s->size() - slash <= 3) {
        len = parse_uint(std::string_view(*s).substr(slash + 1));
    }
    if (!a || !len || *len > 32) {
        fail(v.at, v.path,
             fmt::format("expected an IPv4 prefix like 10.0.0.0/16, got {}", quote(*s)));
        return std::nullopt;
    }
    prefix4 p{*a, static_cast<uint8_t>(*len)};
    if ((a->value & p.mask()) != a->value) {
        prefix4 masked{ipv4{a->value & p.mask()}, p.length};
        fail(v.at, v.path,
             fmt::format("{} has host bits set; did you mean {}?", *s, to_string(masked)));
        return std::nullopt;
    }
    return p;
}

std::optional<interface_address> loader::host_address(const value_ref& v) {
    auto s = scalar(v, "an IPv4 address with its prefix length");
    if (!s) {
        return std::nullopt;
    }
    size_t slash = s->find('/');
    auto a = parse_ipv4(std::string_view(*s).substr(0, slash));
    std::optional<uint64_t> len;
    if (slash != std::string::npos && slash + 1 < s->size() && s->size() - slash <= 3) {
        len = parse_uint(std::string_view(*s).substr(slash + 1));
    }
    if (!a || !len || *len < 1 || *len > 32) {
        fail(v.at, v.path,
             fmt::format("expected an IPv4 address with its prefix length like 192.0.2.1/24, "
                         "got {}",
                         quote(*s)));
        return std::nullopt;
    }
    interface_address ia{*a, static_cast<uint8_t>(*len)};
    prefix4 net = ia.subnet();
    // /31 (RFC 3021) and /32 have no network or broadcast address to collide with.
    if (ia.length <= 30 &&
        (a->value == net.network.value || a->value == (net.network.value | ~net.mask()))) {
        fail(v.at, v.path,
             fmt::format("{} is the network or broadcast address of {}", to_string(*a),
                         to_string(net)));
        return std::nullopt;
    }
    return ia;
}

std::optional<std::vector<uint8_t>> loader::hex(const value_ref& v) {
    auto s = scalar(v, "hex bytes");
    if (!s) {
        return std::nullopt;
    }
    std::string_view h = *s;
    if (h.size() >= 2 && h[0] == '0' && (h[1] == 'x' || h[1] == 'X')) {
        h.remove_prefix(2);
    }
    bool ok = !h.empty() && h.size() % 2 == 0 && std::all_of(h.begin(), h.end(), [](char c) {
        return std::isxdigit(static_cast<unsigned char>(c)) != 0;
    });
    if (!ok) {
        fail(v.at, v.path,
             fmt::format("expected hex bytes (an even number of hex digits, 0x optional), got {}",
                         quote(*s)));
        return std::nullopt;
    }
    std::vector<uint8_t> out;
    for (size_t i = 0; i < h.size(); i += 2) {
        out.push_back(static_cast<uint8_t>(*parse_uint(fmt::format("0x{}", h.substr(i, 2)))));
    }
    return out;
}

std::optional<device> loader::dev(const value_ref& v) {
    auto s = scalar(v, "a DPDK device");
    if (!s) {
        return std::nullopt;
    }
    if (auto pci = normalize_pci(*s)) {
        return device{device_kind::pci, *pci, *pci, ""};
    }
    std::string_view spec = *s;
    std::string_view instance = spec.substr(0, spec.find(','));
    bool instance_ok = instance.size() > 4 && instance.substr(0, 4) == "net_" &&
                       std::all_of(instance.begin(), instance.end(), [](char c) {
                           return std::islower(static_cast<unsigned char>(c)) ||
                                  std::isdigit(static_cast<unsigned char>(c)) || c == '_';
                       });
    if (!instance_ok) {
        fail(v.at, v.path,
             fmt::format("expected a PCI address like 0000:3b:00.0 or a virtual device like "
                         "net_tap0,iface=dtap0, got {}",
                         quote(*s)));
        return std::nullopt;
    }
    std::string_view driver = instance;
    while (!driver.empty() && std::isdigit(static_cast<unsigned char>(driver.back()))) {
        driver.remove_suffix(1);
    }
    if (std::find(std::begin(vdev_drivers), std::end(vdev_drivers), driver) ==
        std::end(vdev_drivers)) {
        std::string list;
        for (std::string_view d : vdev_drivers) {
            list += list.empty() ? "" : ", ";
            list += d;
        }
        fail(v.at, v.path,
             fmt::format("unknown virtual device driver \"{}\" (known: {})", driver, list));
        return std::nullopt;
    }
    // Arguments are comma-separated key=value pairs (rte_kvargs); an empty key or a pair
    // without '=' is a typo DPDK would only report at start-up.
    std::string_view rest = spec.substr(instance.size());
    while (!rest.empty()) {
        rest.remove_prefix(1);  // the comma
        std::string_view arg = rest.substr(0, rest.find(','));
        size_t eq = arg.find('=');
        if (eq == std::string_view::npos || eq == 0) {
            fail(v.at, v.path, fmt::format("device argument {} is not key=value", quote(arg)));
            return std::nullopt;
        }
        rest.remove_prefix(arg.size());
    }
    return device{device_kind::vdev, *s, std::string(instance), std::string(driver)};
}

// --- schema -------------------------------------------------------------------------------

std::vector<std::pair<uint32_t, value_ref>> loader::number_ranges(const value_ref& v,
                                                                  std::string_view article,
                                                                  std::string_view what,
                                                                  uint64_t max) {
    std::vector<std::pair<uint32_t, value_ref>> out;
    auto items = sequence(v);
    if (!items) {
        return out;
    }
    std::map<uint32_t, pos> seen;
    for (const value_ref& e : *items) {
        // An item is one number or an inclusive range written "2-5".
        auto s = scalar(e, fmt::format("{} {} number or range", article, what));
        if (!s) {
            continue;
        }
        size_t dash = s->find('-');
        auto a = parse_uint(std::string_view(*s).substr(0, dash));
        auto b = dash == std::string::npos ? a : parse_uint(std::string_view(*s).substr(dash + 1));
        if (!a || !b || *a > *b || *b > max) {
            fail(e.at, e.path,
                 fmt::format("expected {} {} 0..{} or a range like 2-5, got {}", article, what, max,
                             quote(*s)));
            continue;
        }
        for (uint64_t n = *a; n <= *b; ++n) {
            auto x = static_cast<uint32_t>(n);
            if (auto [it, fresh] = seen.emplace(x, e.at); !fresh) {
                fail(e.at, e.path,
                     fmt::format("{} {} is listed twice (first at {})", what, x,
                                 fmt_pos(it->second)));
                continue;
            }
            out.emplace_back(x, e);
        }
    }
    return out;
}

hub_settings loader::read_hub(const value_ref& v) {
    hub_settings h;
    auto f = mapping(v, {"control-lcore", "worker-lcores", "eal-args", "worker-idle-sleep-us",
                         "control-idle-nap-us", "punt-rates", "icmp-error-rate", "arp-max-entries",
                         "log-level", "metrics", "service-cpus", "heap-headroom-mb"});
    if (!f) {
        return h;
    }
    read(*f, "control-lcore", h.control_lcore, uint_in(0, max_lcore));
    read(*f, "worker-idle-sleep-us", h.worker_idle_sleep_us, uint_in(0, 100000));
    read(*f, "control-idle-nap-us", h.control_idle_nap_us, uint_in(0, 100000));
    read(*f, "heap-headroom-mb", h.heap_headroom_mb, uint_in(0, 512));
    read(*f, "icmp-error-rate", h.icmp_error_rate, uint_in(1, max_rate));
    read(*f, "arp-max-entries", h.arp_max_entries, uint_in(16, 1048576));
    if (auto pr = member(*f, "punt-rates")) {
        config::punt_rates& r = h.punt_rates;
        const std::pair<const char*, uint32_t*> keys[] = {
            {"nhrp", &r.nhrp},
            {"ike", &r.ike},
            {"arp", &r.arp},
            {"for-us", &r.for_us},
            {"multicast", &r.multicast},
            {"ttl-exceeded", &r.ttl_exceeded},
            {"frag-needed", &r.frag_needed},
            {"glean", &r.glean},
            {"redirect", &r.redirect},
        };
        if (auto pf = mapping(*pr, {"nhrp", "ike", "arp", "for-us", "multicast", "ttl-exceeded",
                                    "frag-needed", "glean", "redirect"})) {
            for (const auto& [key, field] : keys) {
                read(*pf, key, *field, uint_in(1, max_rate));
            }
        }
    }
    if (auto l = member(*f, "log-level")) {
        if (auto s = scalar(*l, "a log level")) {
            if (std::find(std::begin(log_levels), std::end(log_levels), *s) ==
                std::end(log_levels)) {
                fail(l->at, l->path,
                     fmt::format("expected error, warning, notice, info or debug, got {}",
                                 quote(*s)));
            } else {
                h.log_level = *s;
            }
        }
    }
    if (auto m = member(*f, "metrics")) {
        if (auto mf = mapping(*m, {"address", "port"})) {
            metrics_endpoint e;
            if (auto a = member(*mf, "address")) {
                if (auto x = address(*a)) {
                    e.address = *x;
                }
            }
            read(*mf, "port", e.port, uint_in(1, 65535));
            h.metrics = e;
        }
    }
    bool control_ok = !broken(child(v.path, "control-lcore"));
    if (auto w = member(*f, "worker-lcores")) {
        h.worker_lcores.clear();
        if (w->node.IsSequence() && w->node.size() == 0) {
            fail(w->at, w->path, "at least one worker lcore is needed");
        }
        for (const auto& [lc, e] : number_ranges(*w, "an", "lcore", max_lcore)) {
            if (control_ok && lc == h.control_lcore) {
                fail(e.at, e.path,
                     fmt::format("lcore {} is the control lcore; workers need their own", lc));
                continue;
            }
            h.worker_lcores.push_back(lc);
        }
    } else if (control_ok && h.control_lcore == h.worker_lcores.front()) {
        std::string path = child(v.path, "control-lcore");
        fail(where(path), path,
             fmt::format("lcore {} is also the default worker lcore: list worker-lcores",
                         h.control_lcore));
    }
    if (auto c = member(*f, "service-cpus")) {
        if (c->node.IsSequence() && c->node.size() == 0) {
            fail(c->at, c->path, "list at least one CPU, or leave service-cpus out (automatic)");
        }
        for (const auto& [cpu, e] : number_ranges(*c, "a", "CPU", max_lcore)) {
            h.service_cpus.push_back(cpu);
        }
    }
    if (auto e = member(*f, "eal-args")) {
        if (auto items = sequence(*e)) {
            for (const value_ref& a : *items) {
                auto s = text(a);
                if (!s) {
                    continue;
                }
                // The hub derives these from control-lcore and worker-lcores.
                for (std::string_view reserved :
                     {"-l", "-c", "--lcores", "--main-lcore", "--master-lcore"}) {
                    std::string_view arg = *s;
                    bool long_form = reserved.size() > 2;
                    if (arg == reserved ||
                        (long_form &&
                         arg.substr(0, reserved.size() + 1) == fmt::format("{}=", reserved)) ||
                        (!long_form && arg.size() > 2 && arg.substr(0, 2) == reserved)) {
                        fail(a.at, a.path,
                             fmt::format("{} is set by the hub from control-lcore and "
                                         "worker-lcores",
                                         reserved));
                        break;
                    }
                }
                h.eal_args.push_back(*s);
            }
        }
    }
    return h;
}

port loader::read_port(const value_ref& v) {
    port p;
    auto f = mapping(v, {"name", "device", "role", "address", "gateway", "mtu", "rx-queue-size",
                         "tx-queue-size", "allow-transit"});
    if (!f) {
        return p;
    }
    if (auto n = member(*f, "name", true)) {
        p.name = ident(*n).value_or("");
    }
    if (auto d = member(*f, "device", true)) {
        if (auto x = dev(*d)) {
            p.dev = *x;
        }
    }
    if (auto r = member(*f, "role", true)) {
        if (auto s = scalar(*r, "underlay or lan")) {
            if (*s == "underlay") {
                p.role = port_role::underlay;
            } else if (*s == "lan") {
                p.role = port_role::lan;
            } else {
                fail(r->at, r->path, fmt::format("expected underlay or lan, got {}", quote(*s)));
            }
        }
    }
    bool address_ok = false;
    if (auto a = member(*f, "address", true)) {
        if (auto x = host_address(*a)) {
            p.address = *x;
            address_ok = true;
        }
    }
    if (auto g = member(*f, "gateway")) {
        if (auto x = address(*g)) {
            p.gateway = *x;
            if (address_ok && (!p.address.subnet().contains(*x) || *x == p.address.address)) {
                fail(g->at, g->path,
                     fmt::format("gateway {} must be another host on {}", to_string(*x),
                                 to_string(p.address.subnet())));
            }
        }
    }
    read(*f, "mtu", p.mtu, uint_in(576, 9216));
    // Most PMDs want a power-of-two descriptor count; DPDK's own examples use 1024.
    for (auto [key, target] : {std::pair{"rx-queue-size", &p.rx_queue_size},
                               std::pair{"tx-queue-size", &p.tx_queue_size}}) {
        if (auto q = member(*f, key)) {
            if (auto n = integer(*q, 64, 32768)) {
                if ((*n & (*n - 1)) != 0) {
                    fail(q->at, q->path,
                         fmt::format("expected a power of two 64..32768, got {}", *n));
                } else {
                    *target = static_cast<uint16_t>(*n);
                }
            }
        }
    }
    read(*f, "allow-transit", p.allow_transit, as_bool());
    if (p.allow_transit && p.role == port_role::lan) {
        std::string path = child(v.path, "allow-transit");
        fail(where(path), path, "allow-transit is for underlay ports (a lan port always forwards)");
    }
    return p;
}

std::vector<nhrp_mapping> loader::read_mappings(const value_ref& v, const tunnel& t,
                                                bool overlay_ok) {
    std::vector<nhrp_mapping> out;
    auto items = sequence(v);
    if (!items) {
        return out;
    }
    std::map<ipv4, pos> seen;
    for (const value_ref& e : *items) {
        auto f = mapping(e, {"overlay", "nbma"});
        if (!f) {
            continue;
        }
        std::optional<ipv4> overlay;
        std::optional<ipv4> nbma;
        auto o = member(*f, "overlay", true);
        if (o) {
            overlay = address(*o);
        }
        if (auto n = member(*f, "nbma", true)) {
            nbma = address(*n);
        }
        if (!overlay || !nbma) {
            continue;
        }
        if (overlay_ok && (!t.overlay_prefix.contains(*overlay) || *overlay == t.overlay_address)) {
            fail(o->at, o->path,
                 fmt::format("{} must be another address inside the tunnel's overlay prefix {}",
                             to_string(*overlay), to_string(t.overlay_prefix)));
            continue;
        }
        if (auto [it, fresh] = seen.emplace(*overlay, o->at); !fresh) {
            fail(o->at, o->path,
                 fmt::format("{} is mapped twice (first at {})", to_string(*overlay),
                             fmt_pos(it->second)));
            continue;
        }
        out.push_back({*overlay, *nbma});
    }
    return out;
}

nhrp_settings loader::read_nhrp(const value_ref& v, const tunnel& t, bool overlay_ok) {
    nhrp_settings n;
    auto f = mapping(v, {"network-id", "authentication", "holdtime", "registration-timeout", "nhs",
                         "map", "multicast", "phase", "redirect", "redirect-rate-limit", "shortcut",
                         "max-cache-entries", "registration-rate-limit", "registration-prefixes",
                         "holdtime-min", "holdtime-max", "max-entries-per-nbma"});
    if (!f) {
        return n;
    }
    if (auto id = member(*f, "network-id", true)) {
        n.network_id = static_cast<uint32_t>(integer(*id, 1, UINT32_MAX).value_or(0));
    }
    if (auto a = member(*f, "authentication")) {
        if (auto s = text(*a)) {
            if (s->size() > max_auth_bytes) {
                fail(a->at, a->path,
                     fmt::format("at most {} bytes (Cisco's limit), got {}", max_auth_bytes,
                                 s->size()));
            } else {
                n.authentication = *s;
            }
        }
    }
    // The CIE holding time is 16 bits (RFC 2332 section 5.2.0.1).
    read(*f, "holdtime", n.holdtime, uint_in(1, 65535));
    n.registration_timeout = static_cast<uint16_t>(std::max(1, n.holdtime / 3));
    if (auto r = member(*f, "registration-timeout")) {
        if (auto x = integer(*r, 1, 65535)) {
            n.registration_timeout = static_cast<uint16_t>(*x);
            if (*x >= n.holdtime && !broken(child(v.path, "holdtime"))) {
                fail(r->at, r->path,
                     fmt::format("{} s must be below the holdtime ({} s) or the registration "
                                 "expires before it is renewed",
                                 *x, n.holdtime));
            }
        }
    }
    if (auto x = member(*f, "nhs")) {
        n.nhs = read_mappings(*x, t, overlay_ok);
    }
    if (auto x = member(*f, "map")) {
        n.maps = read_mappings(*x, t, overlay_ok);
    }
    // An NHS named in both lists must agree on its NBMA address.
    for (const nhrp_mapping& s : n.nhs) {
        for (size_t i = 0; i < n.maps.size(); ++i) {
            if (n.maps[i].overlay == s.overlay && n.maps[i].nbma != s.nbma) {
                fail(where(child(v.path, "map")), child(v.path, "map"),
                     fmt::format("{} maps to {} here but to {} in nhs", to_string(s.overlay),
                                 to_string(n.maps[i].nbma), to_string(s.nbma)));
            }
        }
    }
    if (auto m = member(*f, "multicast")) {
        if (auto mf = mapping(*m, {"dynamic", "static"})) {
            read(*mf, "dynamic", n.multicast_dynamic, as_bool());
            if (auto s = member(*mf, "static")) {
                if (auto items = sequence(*s)) {
                    std::map<ipv4, pos> seen;
                    for (const value_ref& e : *items) {
                        if (auto a = address(e)) {
                            if (auto [it, fresh] = seen.emplace(*a, e.at); !fresh) {
                                fail(e.at, e.path,
                                     fmt::format("{} is listed twice (first at {})", to_string(*a),
                                                 fmt_pos(it->second)));
                            } else {
                                n.multicast_static.push_back(*a);
                            }
                        }
                    }
                }
            }
        }
    }
    std::optional<uint64_t> phase;
    std::optional<bool> redirect;
    if (auto p = member(*f, "phase")) {
        phase = integer(*p, 1, 3);
    }
    if (auto r = member(*f, "redirect")) {
        redirect = boolean(*r);
    }
    read(*f, "shortcut", n.shortcut, as_bool());
    if (phase) {
        n.phase = static_cast<uint8_t>(*phase);
        n.redirect = redirect.value_or(*phase == 3);
    } else {
        n.redirect = redirect.value_or(false);
        n.phase = n.redirect ? 3 : 2;
    }
    if (phase && redirect) {
        if (*phase < 3 && *redirect) {
            fail(where(child(v.path, "redirect")), child(v.path, "redirect"),
                 fmt::format("redirect (Traffic Indication) is Phase 3; phase is {}", *phase));
        } else if (*phase == 3 && !*redirect) {
            fail(where(child(v.path, "redirect")), child(v.path, "redirect"),
                 "Phase 3 needs redirect: spokes learn shortcuts from the hub's Traffic "
                 "Indications");
        }
    }
    if (n.shortcut && phase && *phase < 3) {
        fail(where(child(v.path, "shortcut")), child(v.path, "shortcut"),
             fmt::format("shortcut is Phase 3; phase is {}", *phase));
    }
    read(*f, "redirect-rate-limit", n.redirect_rate_limit, uint_in(1, 1'000'000));
    read(*f, "registration-rate-limit", n.registration_rate_limit, uint_in(1, 1'000'000));
    read(*f, "max-entries-per-nbma", n.max_entries_per_nbma, uint_in(1, 1u << 24));
    read(*f, "holdtime-min", n.holdtime_min, uint_in(1, 65535));
    if (auto x = member(*f, "holdtime-max")) {
        if (auto m = integer(*x, 1, 65535)) {
            n.holdtime_max = static_cast<uint16_t>(*m);
            if (n.holdtime_max < n.holdtime_min) {
                fail(x->at, x->path,
                     fmt::format("{} s is below holdtime-min ({} s)", n.holdtime_max,
                                 n.holdtime_min));
            }
        }
    }
    if (auto x = member(*f, "registration-prefixes")) {
        if (auto items = sequence(*x)) {
            for (const value_ref& e : *items) {
                auto p = network(e);
                if (!p) {
                    n.registration_prefixes.emplace_back();  // keeps the indexes of the paths
                    continue;
                }
                if (p->length == 0 || p->length == 32) {
                    fail(e.at, e.path,
                         fmt::format("{}: a prefix of 1..31 bits (a spoke registers its own /32 "
                                     "without one)",
                                     to_string(*p)));
                }
                n.registration_prefixes.push_back(*p);
            }
        }
    }
    if (auto c = member(*f, "max-cache-entries")) {
        if (auto x = integer(*c, 1, 1u << 24)) {
            n.max_cache_entries = static_cast<uint32_t>(*x);
            if (*x < n.maps.size() + n.nhs.size()) {
                fail(c->at, c->path,
                     fmt::format("{} is fewer than the {} static entries (map and nhs)", *x,
                                 n.maps.size() + n.nhs.size()));
            }
        }
    }
    return n;
}

tunnel loader::read_tunnel(const value_ref& v) {
    tunnel t;
    auto f =
        mapping(v, {"name", "port", "nbma-source", "overlay-address", "overlay-prefix", "gre-key",
                    "nhrp", "ip-mtu", "tcp-adjust-mss", "ipsec-profile", "verify-source"});
    if (!f) {
        return t;
    }
    if (auto n = member(*f, "name", true)) {
        t.name = ident(*n).value_or("");
    }
    if (auto p = member(*f, "port", true)) {
        t.port = ident(*p).value_or("");
    }
    read(*f, "nbma-source", t.nbma_source, [this](const value_ref& x) { return address(x); });
    std::optional<ipv4> overlay;
    std::optional<prefix4> overlay_prefix;
    auto oa = member(*f, "overlay-address", true);
    if (oa) {
        overlay = address(*oa);
    }
    if (auto op = member(*f, "overlay-prefix", true)) {
        overlay_prefix = network(*op);
    }
    bool overlay_ok = false;
    if (overlay) {
        t.overlay_address = *overlay;
    }
    if (overlay_prefix) {
        t.overlay_prefix = *overlay_prefix;
    }
    if (overlay && overlay_prefix) {
        const prefix4& p = *overlay_prefix;
        if (!p.contains(*overlay)) {
            fail(oa->at, oa->path,
                 fmt::format("{} is outside the overlay prefix {}", to_string(*overlay),
                             to_string(p)));
        } else if (p.length <= 30 && (overlay->value == p.network.value ||
                                      overlay->value == (p.network.value | ~p.mask()))) {
            fail(oa->at, oa->path,
                 fmt::format("{} is the network or broadcast address of {}", to_string(*overlay),
                             to_string(p)));
        } else {
            overlay_ok = true;
        }
    }
    if (auto k = member(*f, "gre-key")) {
        if (auto x = integer(*k, 0, UINT32_MAX)) {
            t.gre_key = static_cast<uint32_t>(*x);
        }
    }
    if (auto n = member(*f, "nhrp", true)) {
        t.nhrp = read_nhrp(*n, t, overlay_ok);
    }
    read(*f, "ip-mtu", t.ip_mtu, uint_in(576, 9192));
    if (auto m = member(*f, "tcp-adjust-mss")) {
        if (auto x = integer(*m, 0, 9152)) {
            t.tcp_adjust_mss = static_cast<uint16_t>(*x);
        }
    }
    // An MSS that does not fit the tunnel's IP MTU with 40 bytes of IPv4 + TCP headers
    // would still fragment; below 500 is Cisco's floor.
    if (!broken(child(v.path, "tcp-adjust-mss")) && !broken(child(v.path, "ip-mtu")) &&
        t.tcp_adjust_mss != 0 && (t.tcp_adjust_mss < 500 || t.tcp_adjust_mss + 40 > t.ip_mtu)) {
        fail(where(child(v.path, "tcp-adjust-mss")), child(v.path, "tcp-adjust-mss"),
             fmt::format("expected 0 (off) or 500..{} (ip-mtu {} less 40), got {}", t.ip_mtu - 40,
                         t.ip_mtu, t.tcp_adjust_mss));
    }
    if (auto p = member(*f, "ipsec-profile")) {
        t.ipsec_profile = ident(*p).value_or("");
    }
    read(*f, "verify-source", t.verify_source, as_bool());
    return t;
}

route loader::read_route(const value_ref& v) {
    route r;
    auto f = mapping(v, {"prefix", "via", "port"});
    if (!f) {
        return r;
    }
    if (auto x = member(*f, "prefix", true)) {
        if (auto p = network(*x)) {
            r.prefix = *p;
        }
    }
    if (auto x = member(*f, "via")) {
        r.via = address(*x);
    }
    if (auto x = member(*f, "port")) {
        r.port = ident(*x).value_or("");
    }
    if (!member(*f, "via") && !member(*f, "port")) {
        fail(f->at, v.path, "a route needs a next hop (via), a port, or both");
    }
    return r;
}

management loader::read_management(const value_ref& v) {
    management m;
    auto f = mapping(v, {"socket"});
    if (!f) {
        return m;
    }
    if (auto s = member(*f, "socket")) {
        if (auto x = text(*s)) {
            if (x->front() != '/' || x->size() > max_socket_path) {
                fail(s->at, s->path,
                     fmt::format("expected an absolute path of at most {} bytes, got {}",
                                 max_socket_path, quote(*x)));
            } else {
                m.socket = *x;
            }
        }
    }
    return m;
}

topology loader::load(const YAML::Node& root) {
    topology t;
    value_ref doc{root, "", pos_of(root, {1, 1})};
    _where.emplace("", doc.at);
    auto f = mapping(
        doc, {"hub", "ports", "tunnels", "ipsec-profiles", "routes", "management", "routing"});
    if (!f) {
        return t;
    }
    if (auto h = member(*f, "hub")) {
        t.hub = read_hub(*h);
    }
    auto list = [&](std::string_view key, bool required, auto read_one, auto& out) {
        if (auto l = member(*f, key, required)) {
            if (auto items = sequence(*l)) {
                if (required && items->empty()) {
                    fail(l->at, l->path, "at least one entry is needed");
                }
                for (const value_ref& e : *items) {
                    out.push_back((this->*read_one)(e));
                }
            }
        }
    };
    list("ports", true, &loader::read_port, t.ports);
    list("tunnels", true, &loader::read_tunnel, t.tunnels);
    list("ipsec-profiles", false, &loader::read_profile, t.ipsec_profiles);
    list("routes", false, &loader::read_route, t.routes);
    if (auto m = member(*f, "management")) {
        t.mgmt = read_management(*m);
    }
    if (auto r = member(*f, "routing")) {
        t.routing = read_routing(*r);
    }
    if (!_exhausted) {
        validate(t);
    }
    return t;
}

// --- checks across entries ------------------------------------------------------------------

pos loader::where(std::string path) const {
    while (true) {
        if (auto it = _where.find(path); it != _where.end()) {
            return it->second;
        }
        size_t cut = path.find_last_of(".[");
        if (cut == std::string::npos || path.empty()) {
            auto root = _where.find("");
            return root != _where.end() ? root->second : pos{1, 1};
        }
        path.resize(cut);
    }
}

bool loader::broken(std::string path) const {
    while (true) {
        if (_failed.count(path) != 0) {
            return true;
        }
        size_t cut = path.find_last_of(".[");
        if (cut == std::string::npos) {
            return _failed.count("") != 0;
        }
        path.resize(cut);
    }
}

bool loader::failed_under(std::string_view prefix) const {
    return std::any_of(_failed.begin(), _failed.end(), [&](const std::string& f) {
        return f.size() > prefix.size() && f.compare(0, prefix.size(), prefix) == 0 &&
               (f[prefix.size()] == '.' || f[prefix.size()] == '[');
    });
}

bool loader::names_complete(std::string_view list, size_t n) const {
    if (broken(std::string(list))) {
        return false;
    }
    for (size_t i = 0; i < n; ++i) {
        if (broken(child(item(list, i), "name"))) {
            return false;
        }
    }
    return true;
}

template <typename T>
std::map<std::string, size_t> loader::unique_names(const std::vector<T>& items,
                                                   std::string_view list, std::string_view what) {
    std::map<std::string, size_t> index;
    for (size_t i = 0; i < items.size(); ++i) {
        std::string path = child(item(list, i), "name");
        if (broken(path)) {
            continue;
        }
        auto [it, fresh] = index.emplace(items[i].name, i);
        if (!fresh) {
            fail(where(path), path,
                 fmt::format("{} name \"{}\" is already used (at {})", what, items[i].name,
                             fmt_pos(where(child(item(list, it->second), "name")))));
        }
    }
    return index;
}

void loader::validate(topology& t) {
    auto ports = unique_names(t.ports, "ports", "port");
    auto tunnels = unique_names(t.tunnels, "tunnels", "tunnel");
    auto profiles = unique_names(t.ipsec_profiles, "ipsec-profiles", "ipsec profile");
    bool ports_known = names_complete("ports", t.ports.size());
    bool profiles_known = names_complete("ipsec-profiles", t.ipsec_profiles.size());

    // Routes name ports and tunnels alike, so one name must not mean both.
    for (size_t i = 0; i < t.tunnels.size(); ++i) {
        std::string path = child(item("tunnels", i), "name");
        if (!broken(path) && ports.count(t.tunnels[i].name) != 0) {
            fail(where(path), path,
                 fmt::format("\"{}\" is already a port's name", t.tunnels[i].name));
        }
    }

    // Ports: one device each, subnets apart.
    std::map<std::string, size_t> devices;
    for (size_t i = 0; i < t.ports.size(); ++i) {
        const port& p = t.ports[i];
        std::string dpath = child(item("ports", i), "device");
        if (!broken(dpath)) {
            if (auto [it, fresh] = devices.emplace(p.dev.name, i); !fresh) {
                fail(where(dpath), dpath,
                     fmt::format("device {} is already port \"{}\"'s", p.dev.name,
                                 t.ports[it->second].name));
            }
        }
        std::string apath = child(item("ports", i), "address");
        for (size_t j = 0; j < i && !broken(apath); ++j) {
            if (!broken(child(item("ports", j), "address")) &&
                p.address.subnet().overlaps(t.ports[j].address.subnet())) {
                fail(where(apath), apath,
                     fmt::format("{} overlaps port \"{}\"'s {}", to_string(p.address.subnet()),
                                 t.ports[j].name, to_string(t.ports[j].address.subnet())));
            }
        }
    }

    // Tunnels: their port, the NBMA source, demultiplexing and overlay space.
    std::map<std::pair<std::string, std::optional<uint32_t>>, size_t> gre_keys;
    std::map<uint32_t, size_t> network_ids;
    for (size_t i = 0; i < t.tunnels.size(); ++i) {
        tunnel& tn = t.tunnels[i];
        std::string base = item("tunnels", i);
        std::string ppath = child(base, "port");
        const port* p = nullptr;
        if (!broken(ppath)) {
            auto it = ports.find(tn.port);
            if (it != ports.end()) {
                p = &t.ports[it->second];
                if (broken(child(item("ports", it->second), "role")) ||
                    broken(child(item("ports", it->second), "address"))) {
                    p = nullptr;
                } else if (p->role != port_role::underlay) {
                    fail(where(ppath), ppath,
                         fmt::format("port \"{}\" is a lan port; tunnels need an underlay port",
                                     tn.port));
                    p = nullptr;
                }
            } else if (ports_known) {
                fail(where(ppath), ppath, fmt::format("no port is named \"{}\"", tn.port));
            }
        }
        std::string spath = child(base, "nbma-source");
        bool source_known = false;
        if (p != nullptr && !broken(spath)) {
            if (_where.count(spath) == 0) {
                tn.nbma_source = p->address.address;
                source_known = true;
            } else if (tn.nbma_source != p->address.address) {
                fail(where(spath), spath,
                     fmt::format("{} is not port \"{}\"'s address ({})", to_string(tn.nbma_source),
                                 p->name, to_string(p->address.address)));
            } else {
                source_known = true;
            }
        }
        // Skipped entries would shift the indices the paths below are built from.
        if (source_known && !failed_under(child(base, "nhrp"))) {
            std::string npath = child(base, "nhrp");
            auto own = [&](ipv4 a, const std::string& path) {
                if (a == tn.nbma_source) {
                    fail(where(path), path,
                         fmt::format("{} is this hub's own NBMA address", to_string(a)));
                }
            };
            for (size_t j = 0; j < tn.nhrp.nhs.size(); ++j) {
                own(tn.nhrp.nhs[j].nbma, child(item(child(npath, "nhs"), j), "nbma"));
            }
            for (size_t j = 0; j < tn.nhrp.maps.size(); ++j) {
                own(tn.nhrp.maps[j].nbma, child(item(child(npath, "map"), j), "nbma"));
            }
            for (size_t j = 0; j < tn.nhrp.multicast_static.size(); ++j) {
                own(tn.nhrp.multicast_static[j],
                    item(child(child(npath, "multicast"), "static"), j));
            }
        }
        // GRE plus its outer IPv4 header, and ESP's worst case, must fit the port's MTU.
        std::string mpath = child(base, "ip-mtu");
        const ipsec_profile* prof = nullptr;
        std::string xpath = child(base, "ipsec-profile");
        if (!tn.ipsec_profile.empty() && !broken(xpath)) {
            auto it = profiles.find(tn.ipsec_profile);
            if (it != profiles.end()) {
                std::string ppath = item("ipsec-profiles", it->second);
                if (!broken(child(ppath, "transform")) && !failed_under(child(ppath, "ike"))) {
                    prof = &t.ipsec_profiles[it->second];
                }
            } else if (profiles_known) {
                fail(where(xpath), xpath,
                     fmt::format("no ipsec profile is named \"{}\"", tn.ipsec_profile));
            }
        }
        if (p != nullptr && !broken(mpath) && !broken(child(base, "gre-key")) &&
            (tn.ipsec_profile.empty() || prof != nullptr) &&
            !broken(child(item("ports", ports.at(tn.port)), "mtu"))) {
            size_t gre = 20 + 4 + (tn.gre_key ? 4 : 0);
            size_t esp = 0;
            std::string esp_text;
            if (prof != nullptr && prof->ike) {
                // Negotiated: the costliest ESP proposal, in UDP once NAT-T moves it (RFC 3948).
                for (const auto& e : prof->ike->esp_proposals) {
                    if (esp_overhead_max(e) + 8 > esp) {
                        esp = esp_overhead_max(e) + 8;
                        esp_text = fmt::format(" and up to {} of ESP ({}) in UDP for NAT-T", esp,
                                               to_string(e));
                    }
                }
            } else if (prof != nullptr) {
                esp = esp_overhead_max(prof->xform);
                esp_text = fmt::format(" and up to {} of ESP ({})", esp, name(prof->xform));
            }
            if (tn.ip_mtu + gre + esp > p->mtu) {
                fail(where(mpath), mpath,
                     fmt::format("{} plus {} bytes of GRE and outer IPv4{} exceeds port \"{}\"'s "
                                 "MTU {}",
                                 tn.ip_mtu, gre, esp_text, p->name, p->mtu));
            }
        }
        std::string kpath = child(base, "gre-key");
        if (!broken(ppath) && !broken(kpath)) {
            auto [it, fresh] = gre_keys.emplace(std::pair{tn.port, tn.gre_key}, i);
            if (!fresh) {
                fail(where(tn.gre_key ? kpath : base), tn.gre_key ? kpath : base,
                     fmt::format("tunnel \"{}\" already uses {} on port \"{}\": packets could "
                                 "not be told apart",
                                 t.tunnels[it->second].name,
                                 tn.gre_key ? fmt::format("GRE key {}", *tn.gre_key)
                                            : std::string("no GRE key"),
                                 tn.port));
            }
        }
        std::string idpath = child(child(base, "nhrp"), "network-id");
        if (!broken(idpath)) {
            auto [it, fresh] = network_ids.emplace(tn.nhrp.network_id, i);
            if (!fresh) {
                fail(where(idpath), idpath,
                     fmt::format("network-id {} is already tunnel \"{}\"'s", tn.nhrp.network_id,
                                 t.tunnels[it->second].name));
            }
        }
        std::string opath = child(base, "overlay-prefix");
        if (!broken(opath)) {
            for (size_t j = 0; j < i; ++j) {
                if (!broken(child(item("tunnels", j), "overlay-prefix")) &&
                    tn.overlay_prefix.overlaps(t.tunnels[j].overlay_prefix)) {
                    fail(where(opath), opath,
                         fmt::format("{} overlaps tunnel \"{}\"'s {}", to_string(tn.overlay_prefix),
                                     t.tunnels[j].name, to_string(t.tunnels[j].overlay_prefix)));
                }
            }
            for (size_t j = 0; j < t.ports.size(); ++j) {
                if (!broken(child(item("ports", j), "address")) &&
                    tn.overlay_prefix.overlaps(t.ports[j].address.subnet())) {
                    fail(where(opath), opath,
                         fmt::format("{} overlaps port \"{}\"'s {}", to_string(tn.overlay_prefix),
                                     t.ports[j].name, to_string(t.ports[j].address.subnet())));
                }
            }
        }
        // What spokes may register must not take over the hub's connected networks.
        std::string rpath = child(child(base, "nhrp"), "registration-prefixes");
        for (size_t k = 0; k < tn.nhrp.registration_prefixes.size(); ++k) {
            const prefix4& rp = tn.nhrp.registration_prefixes[k];
            std::string ep = item(rpath, k);
            if (broken(ep)) {
                continue;
            }
            for (size_t j = 0; j < t.tunnels.size(); ++j) {
                if (!broken(child(item("tunnels", j), "overlay-prefix")) &&
                    rp.overlaps(t.tunnels[j].overlay_prefix)) {
                    fail(where(ep), ep,
                         fmt::format("{} overlaps tunnel \"{}\"'s overlay prefix {}", to_string(rp),
                                     t.tunnels[j].name, to_string(t.tunnels[j].overlay_prefix)));
                }
            }
            for (size_t j = 0; j < t.ports.size(); ++j) {
                if (!broken(child(item("ports", j), "address")) &&
                    rp.overlaps(t.ports[j].address.subnet())) {
                    fail(where(ep), ep,
                         fmt::format("{} overlaps port \"{}\"'s {}", to_string(rp), t.ports[j].name,
                                     to_string(t.ports[j].address.subnet())));
                }
            }
        }
    }

    validate_profiles(t);
    validate_routing(t);

    // Routes: a next hop the hub can reach, through a tunnel or a LAN port. Where a tunnel's
    // or port's addresses failed, a next hop found nowhere may belong there: say nothing.
    bool overlay_unknown = false;
    for (size_t j = 0; j < t.tunnels.size(); ++j) {
        overlay_unknown |= broken(child(item("tunnels", j), "overlay-prefix")) ||
                           broken(child(item("tunnels", j), "overlay-address"));
    }
    for (size_t j = 0; j < t.ports.size(); ++j) {
        overlay_unknown |=
            broken(child(item("ports", j), "address")) || broken(child(item("ports", j), "role"));
    }
    std::map<prefix4, size_t> prefixes;
    for (size_t i = 0; i < t.routes.size(); ++i) {
        route& r = t.routes[i];
        std::string base = item("routes", i);
        std::string ppath = child(base, "prefix");
        if (!broken(ppath)) {
            if (auto [it, fresh] = prefixes.emplace(r.prefix, i); !fresh) {
                fail(where(ppath), ppath,
                     fmt::format("{} already has a route (at {})", to_string(r.prefix),
                                 fmt_pos(where(child(item("routes", it->second), "prefix")))));
            }
        }
        std::string portpath = child(base, "port");
        std::string viapath = child(base, "via");
        if (broken(portpath) || broken(viapath)) {
            continue;
        }
        const port* out = nullptr;
        if (!r.port.empty()) {
            auto it = ports.find(r.port);
            if (it == ports.end()) {
                if (tunnels.count(r.port) != 0) {
                    fail(where(portpath), portpath,
                         fmt::format("\"{}\" is a tunnel: routes into a tunnel name the spoke's "
                                     "overlay address in via",
                                     r.port));
                } else if (ports_known) {
                    fail(where(portpath), portpath, fmt::format("no port is named \"{}\"", r.port));
                }
                continue;
            }
            out = &t.ports[it->second];
            if (broken(child(item("ports", it->second), "role")) ||
                broken(child(item("ports", it->second), "address"))) {
                continue;
            }
            if (out->role != port_role::lan) {
                fail(where(portpath), portpath,
                     fmt::format("port \"{}\" is an underlay port: it reaches the NBMA network "
                                 "through its gateway, not through routes",
                                 r.port));
                continue;
            }
            r.egress = out->name;
        }
        if (!r.via) {
            continue;
        }
        ipv4 via = *r.via;
        if (out != nullptr) {
            if (!out->address.subnet().contains(via) || via == out->address.address) {
                fail(where(viapath), viapath,
                     fmt::format("{} is not another host on port \"{}\"'s {}", to_string(via),
                                 out->name, to_string(out->address.subnet())));
            }
            continue;
        }
        for (size_t j = 0; j < t.tunnels.size() && r.egress.empty(); ++j) {
            if (!broken(child(item("tunnels", j), "overlay-prefix")) &&
                t.tunnels[j].overlay_prefix.contains(via) && via != t.tunnels[j].overlay_address) {
                r.egress = t.tunnels[j].name;
            }
        }
        for (size_t j = 0; j < t.ports.size() && r.egress.empty(); ++j) {
            const port& lp = t.ports[j];
            if (lp.role == port_role::lan && lp.address.subnet().contains(via) &&
                via != lp.address.address) {
                r.egress = lp.name;
            }
        }
        if (r.egress.empty() && !overlay_unknown) {
            fail(where(viapath), viapath,
                 fmt::format("{} is neither a spoke's overlay address in a tunnel's prefix nor a "
                             "host on a lan port",
                             to_string(via)));
        }
    }
}

}  // namespace detail

using detail::loader;
using detail::pos;

namespace {

pos pos_of_mark(const YAML::Mark& m) {
    return m.is_null() ? pos{1, 1} : pos{m.line + 1, m.column + 1};
}

// Where a second document starts, if the text has one. yaml-cpp 0.7's LoadAll never returns on
// a stray ',' at the top level (each call yields an empty document and consumes nothing), so
// documents are counted with the event parser, which is stopped at the second one.
class document_counter : public YAML::EventHandler {
public:
    struct stop {};

    std::optional<YAML::Mark> second;

    void OnDocumentStart(const YAML::Mark& m) override {
        if (++_documents == 2) {
            _second_start = m;
        }
    }
    void OnDocumentEnd() override { check(_second_start); }
    void OnNull(const YAML::Mark& m, YAML::anchor_t) override { check(m); }
    void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { check(m); }
    void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                  const std::string&) override {
        check(m);
    }
    void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {
        check(m);
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {
        check(m);
    }
    void OnMapEnd() override {}

private:
    // The first thing of the second document says where it is.
    void check(const YAML::Mark& m) {
        if (_documents >= 2) {
            second = m.is_null() ? _second_start : m;
            throw stop{};
        }
    }

    int _documents = 0;
    YAML::Mark _second_start = YAML::Mark::null_mark();
};

std::optional<YAML::Mark> second_document(const std::string& text) {
    std::istringstream in(text);
    YAML::Parser parser(in);
    document_counter counter;
    try {
        while (parser.HandleNextDocument(counter)) {
        }
    } catch (const document_counter::stop&) {
    }
    return counter.second;
}

}  // namespace

result load_string(std::string_view text, std::string_view name) {
    loader l{std::string(name)};
    try {
        std::string copy(text);
        if (auto second = second_document(copy)) {
            bool comma = second->pos >= 0 && static_cast<size_t>(second->pos) < copy.size() &&
                         copy[static_cast<size_t>(second->pos)] == ',';
            l.fail(pos_of_mark(*second), "",
                   comma ? "YAML syntax: ',' outside a flow collection ([...] or {...})"
                         : "a second YAML document: a topology file holds exactly one");
            return l.take_errors();
        }
        YAML::Node root = YAML::Load(copy);
        if (root.IsNull()) {
            l.fail({1, 1}, "",
                   "the document is empty: a topology needs at least ports and tunnels");
            return l.take_errors();
        }
        topology t = l.load(root);
        std::vector<error> errors = l.take_errors();
        if (!errors.empty()) {
            return errors;
        }
        return result(std::move(t), l.take_warnings());
    } catch (const YAML::DeepRecursion& e) {
        pos at = e.mark.is_null() ? pos{} : pos{e.mark.line + 1, e.mark.column + 1};
        l.fail(at, "",
               fmt::format("nested {} levels deep: more than any topology needs", e.depth()));
        return l.take_errors();
    } catch (const YAML::Exception& e) {
        pos at = e.mark.is_null() ? pos{} : pos{e.mark.line + 1, e.mark.column + 1};
        l.fail(at, "", fmt::format("YAML syntax: {}", e.msg));
        return l.take_errors();
    }
}

result load_file(const std::string& path) {
    auto unreadable = [&](std::string why) {
        return result(std::vector<error>{{path, 0, 0, "", std::move(why)}});
    };
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return unreadable(fmt::format("cannot read: {}", std::strerror(errno)));
    }
    std::string text;
    char buf[65536];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        text.append(buf, static_cast<size_t>(in.gcount()));
        if (text.size() > max_file_bytes) {
            return unreadable(fmt::format("larger than {} bytes", max_file_bytes));
        }
    }
    if (in.bad()) {
        return unreadable(fmt::format("cannot read: {}", std::strerror(errno)));
    }
    return load_string(text, path);
}

}  // namespace dmvpn::config
