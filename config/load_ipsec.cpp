// `ipsec-profiles[]` of the YAML topology: manual SAs and the `ike:` section (config/README.md).
// Reads the PSK key file (root only); no key is ever quoted in an error.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "config/loader.hpp"
#include "config/proposals.hpp"
#include "dataplane/wire/number.hpp"

namespace dmvpn::config::detail {

namespace {

// Pre-shared keys: shorter ones fall to an offline dictionary attack on one captured IKE_AUTH
// (RFC 7296 section 2.15 asks for keys with as much entropy as the strongest key negotiated).
// IOS takes any key (`cisco123`), so a shorter one loads, with a warning.
constexpr size_t min_psk_bytes = 16;
constexpr size_t max_psk_bytes = 512;
constexpr size_t max_identity = 255;
constexpr off_t max_key_file_bytes = 1 << 20;

// An identity as IKE carries it (ID_IPV4_ADDR, ID_FQDN, ID_RFC822_ADDR): printable, no blanks.
bool valid_identity(std::string_view s) {
    return !s.empty() && s.size() <= max_identity && std::all_of(s.begin(), s.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u > 0x20 && u < 0x7f;
    });
}

// A key as written: 0x followed by hex digits, or the text itself. nullopt: bad hex.
std::optional<std::vector<uint8_t>> key_of(std::string_view s) {
    if (s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        std::string_view h = s.substr(2);
        if (h.empty() || h.size() % 2 != 0 || !std::all_of(h.begin(), h.end(), [](char c) {
                return std::isxdigit(static_cast<unsigned char>(c)) != 0;
            })) {
            return std::nullopt;
        }
        std::vector<uint8_t> out;
        for (size_t i = 0; i < h.size(); i += 2) {
            auto nibble = [](char c) {
                return static_cast<uint8_t>(std::isdigit(static_cast<unsigned char>(c))
                                                ? c - '0'
                                                : std::tolower(static_cast<unsigned char>(c)) -
                                                      'a' + 10);
            };
            out.push_back(static_cast<uint8_t>(nibble(h[i]) << 4 | nibble(h[i + 1])));
        }
        return out;
    }
    return std::vector<uint8_t>(s.begin(), s.end());
}

// Why a key cannot be used, without saying anything about its content.
std::optional<std::string> key_problem(const std::optional<std::vector<uint8_t>>& k) {
    if (!k) {
        return "a 0x key needs an even number of hex digits after 0x (the key is not shown)";
    }
    if (k->empty() || k->size() > max_psk_bytes) {
        return fmt::format("a pre-shared key has 1..{} bytes, this one has {}", max_psk_bytes,
                           k->size());
    }
    return std::nullopt;
}

// Why a usable key is weak (the warning's text, naming the profile and the peer, never the
// key); empty: it is not.
std::string key_weakness(const std::vector<uint8_t>& k, std::string_view profile,
                         std::string_view peer) {
    if (k.size() >= min_psk_bytes) {
        return {};
    }
    return fmt::format(
        "ipsec profile {}: the pre-shared key for {} has {} bytes, under {}: a short key falls "
        "to an offline dictionary guess from one captured IKE_AUTH (RFC 7296 section 2.15); "
        "loaded because IOS peers may be configured with it, replace it with {} or more random "
        "bytes when they can be rekeyed",
        profile, peer.empty() ? std::string("any peer (the wildcard)") : quote(peer), k.size(),
        min_psk_bytes, min_psk_bytes);
}

}  // namespace

sa_keys loader::read_sa_keys(const value_ref& v, std::optional<transform> xf) {
    sa_keys k;
    auto f = mapping(v, {"spi", "key", "salt", "integrity-key"});
    if (!f) {
        return k;
    }
    // SPIs 1..255 are reserved by IANA and 0 is never sent (RFC 4303 section 2.1).
    if (auto s = member(*f, "spi", true)) {
        k.spi = static_cast<uint32_t>(integer(*s, 256, UINT32_MAX).value_or(0));
    }
    auto key = member(*f, "key", true);
    auto salt = member(*f, "salt");
    auto integ = member(*f, "integrity-key");
    std::optional<std::vector<uint8_t>> key_bytes;
    std::optional<std::vector<uint8_t>> salt_bytes_read;
    std::optional<std::vector<uint8_t>> integ_bytes;
    if (key) {
        key_bytes = hex(*key);
    }
    if (salt) {
        salt_bytes_read = hex(*salt);
    }
    if (integ) {
        integ_bytes = hex(*integ);
    }
    if (!xf) {
        return k;  // lengths depend on the transform, which failed already
    }
    size_t ck = cipher_key_bytes(*xf);
    size_t sb = salt_bytes(*xf);
    size_t ik = integrity_key_bytes(*xf);
    if (key_bytes) {
        // GCM keying material is often written key || salt (RFC 4106 section 8.1, as Linux's
        // `ip xfrm` takes it): accept that when no separate salt is given.
        if (sb != 0 && key_bytes->size() == ck + sb && !salt) {
            k.key.assign(key_bytes->begin(), key_bytes->begin() + static_cast<long>(ck));
            k.salt.assign(key_bytes->begin() + static_cast<long>(ck), key_bytes->end());
        } else if (key_bytes->size() != ck) {
            std::string also =
                sb != 0 && !salt ? fmt::format(", or {} with the salt appended", ck + sb) : "";
            fail(key->at, key->path,
                 fmt::format("{} needs a {}-byte key ({} hex digits{}), got {} bytes", name(*xf),
                             ck, ck * 2, also, key_bytes->size()));
        } else {
            k.key = *key_bytes;
        }
    }
    if (sb == 0 && salt) {
        fail(salt->at, salt->path, fmt::format("{} takes no salt (GCM only)", name(*xf)));
    } else if (sb != 0 && salt_bytes_read) {
        if (salt_bytes_read->size() != sb) {
            fail(salt->at, salt->path,
                 fmt::format("the GCM salt is {} bytes ({} hex digits), got {} bytes", sb, sb * 2,
                             salt_bytes_read->size()));
        } else {
            k.salt = *salt_bytes_read;
        }
    } else if (sb != 0 && !salt && key_bytes && k.salt.empty() && key_bytes->size() == ck) {
        fail(f->at, child(v.path, "salt"),
             fmt::format("missing required key ({} needs a {}-byte salt, here or appended to "
                         "key)",
                         name(*xf), sb));
    }
    if (ik == 0 && integ) {
        fail(integ->at, integ->path,
             fmt::format("{} takes no integrity-key (GCM authenticates itself)", name(*xf)));
    } else if (ik != 0 && !integ) {
        fail(f->at, child(v.path, "integrity-key"),
             fmt::format("missing required key ({} needs a {}-byte HMAC key)", name(*xf), ik));
    } else if (ik != 0 && integ_bytes) {
        if (integ_bytes->size() != ik) {
            fail(integ->at, integ->path,
                 fmt::format("{} needs a {}-byte integrity-key ({} hex digits), got {} bytes",
                             name(*xf), ik, ik * 2, integ_bytes->size()));
        } else {
            k.integrity_key = *integ_bytes;
        }
    }
    return k;
}

manual_sa loader::read_manual_sa(const value_ref& v, std::optional<transform> xf) {
    manual_sa sa;
    auto f = mapping(v, {"peer", "inbound", "outbound"});
    if (!f) {
        return sa;
    }
    if (auto p = member(*f, "peer", true)) {
        if (auto a = address(*p)) {
            sa.peer = *a;
        }
    }
    if (auto i = member(*f, "inbound", true)) {
        sa.inbound = read_sa_keys(*i, xf);
    }
    if (auto o = member(*f, "outbound", true)) {
        sa.outbound = read_sa_keys(*o, xf);
    }
    return sa;
}

ipsec_profile loader::read_profile(const value_ref& v) {
    ipsec_profile p;
    auto f = mapping(v, {"name", "transform", "anti-replay", "anti-replay-window", "esn",
                         "lifetime", "manual-sas", "ike"});
    if (!f) {
        return p;
    }
    if (auto n = member(*f, "name", true)) {
        p.name = ident(*n).value_or("");
    }
    // A profile is keyed one way: by hand (manual-sas, with transform, esn and lifetime) or by
    // IKEv2 (ike, which negotiates those). Both at once would give a peer two SA pairs and the
    // hub no rule for which one carries its traffic; a lab mixing them uses two profiles.
    auto ike = member(*f, "ike");
    if (ike) {
        p.ike = read_ike(*ike, p.name);
        // Negotiated keys restart nothing: anti-replay is safe and on unless turned off.
        p.anti_replay = true;
        for (std::string_view key : {"transform", "esn", "lifetime", "manual-sas"}) {
            if (auto m = member(*f, key)) {
                std::string_view instead = key == "transform" ? "ike.esp-proposals"
                                           : key == "esn"     ? "-esn in ike.esp-proposals"
                                           : key == "lifetime"
                                               ? "ike.child-lifetime, -bytes and -packets"
                                               : "a second profile for manually keyed peers";
                fail(where(m->path), m->path,
                     fmt::format("{} keys SAs by hand and this profile has ike (use {}): a "
                                 "profile is keyed by manual-sas or by ike, not both",
                                 key, instead));
            }
        }
        read(*f, "anti-replay-window", p.replay_window, uint_in(1, 1u << 22));
        read(*f, "anti-replay", p.anti_replay, as_bool());
        return p;
    }
    std::optional<transform> xf;
    if (auto t = member(*f, "transform", true)) {
        if (auto s = scalar(*t, "a transform")) {
            xf = parse_transform(*s);
            if (xf) {
                p.xform = *xf;
                if (auto why = weakness(*xf); !why.empty()) {
                    warn(t->at, t->path,
                         fmt::format("{} is for legacy peers only: {}; prefer "
                                     "aes128-cbc-sha1-96 or aes256-cbc-sha256-128",
                                     name(*xf), why));
                }
            } else {
                fail(t->at, t->path,
                     fmt::format("expected aes128-gcm16, aes256-gcm16, aes128-cbc-sha1-96, "
                                 "aes256-cbc-sha256-128 or, for legacy peers, 3des-cbc-md5-96, "
                                 "3des-cbc-sha1-96, aes128-cbc-md5-96, got {}",
                                 quote(*s)));
            }
        }
    }
    // crypto's replay_window takes 1..2^22.
    read(*f, "anti-replay-window", p.replay_window, uint_in(1, 1u << 22));
    read(*f, "anti-replay", p.anti_replay, as_bool());
    read(*f, "esn", p.esn, as_bool());
    if (auto l = member(*f, "lifetime")) {
        if (auto lf = mapping(*l, {"soft-packets", "hard-packets", "soft-bytes", "hard-bytes"})) {
            read(*lf, "soft-packets", p.lifetime.soft_packets, uint_in(0, UINT64_MAX));
            read(*lf, "hard-packets", p.lifetime.hard_packets, uint_in(0, UINT64_MAX));
            read(*lf, "soft-bytes", p.lifetime.soft_bytes, uint_in(0, UINT64_MAX));
            read(*lf, "hard-bytes", p.lifetime.hard_bytes, uint_in(0, UINT64_MAX));
            auto check = [&](uint64_t soft, uint64_t hard, std::string_view key) {
                if (soft != 0 && hard != 0 && soft >= hard) {
                    std::string path = child(l->path, key);
                    fail(where(path), path,
                         fmt::format("the soft limit {} must be below the hard limit {}", soft,
                                     hard));
                }
            };
            check(p.lifetime.soft_packets, p.lifetime.hard_packets, "soft-packets");
            check(p.lifetime.soft_bytes, p.lifetime.hard_bytes, "soft-bytes");
        }
    }
    auto m = member(*f, "manual-sas");
    if (!m) {
        fail(f->at, child(v.path, "manual-sas"),
             "missing required key (a profile without ike needs manual-sas: without either no "
             "peer has keys and the tunnel's traffic is dropped)");
    } else {
        if (auto items = sequence(*m)) {
            for (const value_ref& e : *items) {
                p.manual_sas.push_back(read_manual_sa(e, xf));
            }
            if (xf && counter_iv(*xf) && !items->empty()) {
                const value_ref t = *member(*f, "transform");
                fail(t.at, t.path,
                     fmt::format("{} cannot be used with manual-sas: with a static key the ESP "
                                 "sequence number, which is the GCM IV, starts again at 1 each "
                                 "time the hub restarts, so (key, IV) pairs repeat and leak "
                                 "plaintext and the authentication key (RFC 4106 section 8.1); "
                                 "use aes128-cbc-sha1-96 or aes256-cbc-sha256-128 with manual "
                                 "keys (IKE-negotiated keys may use GCM once the hub has IKEv2)",
                                 name(*xf)));
            }
        }
    }
    return p;
}

std::optional<std::vector<uint8_t>> loader::psk_bytes(const value_ref& v, std::string_view profile,
                                                      std::string_view peer) {
    if (!v.node.IsScalar()) {
        fail(v.at, v.path, fmt::format("expected a key, got {}", describe(v.node)));
        return std::nullopt;
    }
    auto k = key_of(v.node.Scalar());
    if (auto why = key_problem(k)) {
        fail(v.at, v.path, *why);
        return std::nullopt;
    }
    if (auto weak = key_weakness(*k, profile, peer); !weak.empty()) {
        warn(v.at, v.path, std::move(weak));
    }
    return k;
}

void loader::read_psks(const fields& f, ike_settings& s, std::string_view profile) {
    std::map<std::string, std::string> seen;  // peer -> where its key was given
    auto add = [&](std::string peer, std::vector<uint8_t> key, const std::string& path, pos at) {
        if (auto [it, fresh] = seen.emplace(peer, fmt_pos(at)); !fresh) {
            fail(at, path,
                 fmt::format("{} already has a key (at {})",
                             peer.empty() ? std::string("the wildcard (any peer)") : quote(peer),
                             it->second));
            return;
        }
        s.psks.push_back({std::move(peer), std::move(key)});
    };
    if (auto p = member(f, "psk")) {
        if (auto k = psk_bytes(*p, profile, "")) {
            add("", std::move(*k), p->path, p->at);
        }
    }
    if (auto keys = member(f, "keys")) {
        if (auto items = sequence(*keys)) {
            for (const value_ref& e : *items) {
                auto kf = mapping(e, {"peer", "key"});
                if (!kf) {
                    continue;
                }
                auto peer = member(*kf, "peer", true);
                auto key = member(*kf, "key", true);
                std::optional<std::string> id;
                if (peer) {
                    if (auto t = scalar(*peer, "an identity")) {
                        if (valid_identity(*t) && *t != "*") {
                            id = *t;
                        } else {
                            fail(peer->at, peer->path,
                                 fmt::format("expected the peer's identity as it sends it (an "
                                             "IPv4 address, an FQDN, user@fqdn; up to {} "
                                             "printable characters, no blanks; the wildcard "
                                             "is `psk`), got {}",
                                             max_identity, quote(*t)));
                        }
                    }
                }
                std::optional<std::vector<uint8_t>> k;
                if (key) {
                    k = psk_bytes(*key, profile, id.value_or(""));
                }
                if (id && k) {
                    add(*id, std::move(*k), peer->path, peer->at);
                }
            }
        }
    }
    if (auto kf = member(f, "key-file")) {
        size_t before = s.psks.size();
        read_key_file(*kf, s, profile);
        // The file's entries joined s.psks; check them against the inline ones.
        std::vector<ike_psk> from_file(s.psks.begin() + static_cast<long>(before), s.psks.end());
        s.psks.resize(before);
        for (ike_psk& k : from_file) {
            add(std::move(k.peer), std::move(k.key), kf->path, kf->at);
        }
    }
    // Keys are what the peers must prove; `seen` held only names and places.
}

// `key-file`: one `PEER KEY` a line (`*` the wildcard, KEY as `psk`), '#' comments. Readable by
// root only, as sshd insists for private keys: a key others can read is no secret.
void loader::read_key_file(const value_ref& v, ike_settings& s, std::string_view profile) {
    auto path = text(v);
    if (!path) {
        return;
    }
    s.key_file = *path;
    if (path->front() != '/') {
        fail(v.at, v.path, fmt::format("expected an absolute path, got {}", quote(*path)));
        return;
    }
    int fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        fail(v.at, v.path, fmt::format("cannot read {}: {}", *path, std::strerror(errno)));
        return;
    }
    struct fd_closer {
        int fd;
        ~fd_closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        fail(v.at, v.path, fmt::format("{} is not a regular file", *path));
        return;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        fail(v.at, v.path,
             fmt::format("{} is accessible by group or others (mode {:04o}): pre-shared keys "
                         "must be readable by root only (chmod 600 {})",
                         *path, st.st_mode & 07777, *path));
        return;
    }
    if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
        fail(v.at, v.path,
             fmt::format("{} belongs to uid {}: pre-shared keys must belong to root", *path,
                         st.st_uid));
        return;
    }
    if (st.st_size > max_key_file_bytes) {
        fail(v.at, v.path, fmt::format("{} is larger than {} bytes", *path, max_key_file_bytes));
        return;
    }
    std::string content(static_cast<size_t>(st.st_size), '\0');
    size_t got = 0;
    while (got < content.size()) {
        ssize_t n = ::read(fd, content.data() + got, content.size() - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            fail(v.at, v.path,
                 fmt::format("cannot read {}: {}", *path,
                             n < 0 ? std::strerror(errno) : "file shrank"));
            return;
        }
        got += static_cast<size_t>(n);
    }
    std::set<std::string> peers;
    int line_no = 0;
    for (size_t start = 0; start < content.size();) {
        size_t end = content.find('\n', start);
        if (end == std::string::npos) {
            end = content.size();
        }
        std::string_view line(content.data() + start, end - start);
        start = end + 1;
        ++line_no;
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        size_t first = line.find_first_not_of(" \t");
        if (first == std::string_view::npos || line[first] == '#') {
            continue;
        }
        auto bad = [&](size_t column, std::string why) {
            fail(v.at, v.path, fmt::format("{}:{}:{}: {}", *path, line_no, column + 1, why));
        };
        size_t peer_end = line.find_first_of(" \t", first);
        size_t key_start =
            peer_end == std::string_view::npos ? peer_end : line.find_first_not_of(" \t", peer_end);
        if (key_start == std::string_view::npos) {
            bad(first, "expected `PEER KEY` (PEER an identity or * for any peer)");
            continue;
        }
        std::string_view peer = line.substr(first, peer_end - first);
        std::string_view key = line.substr(key_start);
        while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) {
            key.remove_suffix(1);
        }
        if (peer != "*" && !valid_identity(peer)) {
            bad(first, fmt::format("expected an identity or *, got {}", quote(peer)));
            continue;
        }
        auto k = key_of(key);
        if (auto why = key_problem(k)) {
            bad(key_start, *why);
            continue;
        }
        std::string name = peer == "*" ? std::string() : std::string(peer);
        if (!peers.insert(name).second) {
            bad(first, fmt::format("{} has a key on an earlier line", quote(peer)));
            continue;
        }
        if (auto weak = key_weakness(*k, profile, name); !weak.empty()) {
            warn(v.at, v.path,
                 fmt::format("{}:{}:{}: {}", *path, line_no, key_start + 1, std::move(weak)));
        }
        s.psks.push_back({std::move(name), std::move(*k)});
    }
    // The file's text held keys: clear it before it is freed.
    std::fill(content.begin(), content.end(), '\0');
    if (s.psks.empty() && !failed_under(v.path) && !broken(v.path)) {
        fail(v.at, v.path, fmt::format("{} holds no key", *path));
    }
}

std::vector<ike_proposal> loader::read_ike_proposals(const value_ref& v) {
    std::vector<ike_proposal> out;
    auto items = sequence(v);
    if (!items) {
        return out;
    }
    if (items->empty()) {
        fail(v.at, v.path, "expected at least one proposal");
    }
    std::vector<std::string> paths;
    for (const value_ref& e : *items) {
        auto s = scalar(e, "a proposal like aes256gcm16-prfsha256-x25519");
        if (!s) {
            continue;
        }
        auto p = parse_ike_proposal(*s);
        if (!p) {
            fail(e.at, e.path, p.error());
            continue;
        }
        const ike_proposal& prop = *p;
        auto dup = std::find(out.begin(), out.end(), prop);
        if (dup != out.end()) {
            fail(e.at, e.path,
                 fmt::format("the same proposal as {}",
                             paths[static_cast<size_t>(dup - out.begin())]));
            continue;
        }
        out.push_back(prop);
        paths.push_back(fmt_pos(e.at));
    }
    return out;
}

std::vector<ike_settings::esp_proposal> loader::read_esp_proposals(const value_ref& v) {
    std::vector<ike_settings::esp_proposal> out;
    auto items = sequence(v);
    if (!items) {
        return out;
    }
    if (items->empty()) {
        fail(v.at, v.path, "expected at least one proposal");
    }
    for (const value_ref& e : *items) {
        auto s = scalar(e, "an ESP proposal like aes256gcm16");
        if (!s) {
            continue;
        }
        auto p = parse_esp_proposal(*s);
        if (!p) {
            fail(e.at, e.path,
                 fmt::format("expected one of {}, optionally with -esn or -noesn, got {}",
                             esp_proposal_names(), quote(*s)));
            continue;
        }
        if (std::find(out.begin(), out.end(), *p) != out.end()) {
            fail(e.at, e.path, fmt::format("{} is listed twice", quote(*s)));
            continue;
        }
        if (auto why = weakness(*p); !why.empty()) {
            warn(e.at, e.path,
                 fmt::format("{} is for legacy peers only: {}; list a stronger proposal first",
                             quote(*s), why));
        }
        out.push_back(*p);
    }
    return out;
}

// IKEv1's `isakmp-policies`: IOS's `crypto isakmp policy` lines as YAML mappings.
std::vector<ike_settings::isakmp_policy> loader::read_isakmp_policies(const value_ref& v,
                                                                      ike_auth auth) {
    const bool rsa = auth == ike_auth::certificate;
    const std::string_view method = rsa ? "rsa-sig" : "pre-share";
    std::vector<ike_settings::isakmp_policy> out;
    auto items = sequence(v);
    if (!items) {
        return out;
    }
    if (items->empty()) {
        fail(v.at, v.path, "expected at least one policy");
    }
    for (const value_ref& e : *items) {
        auto f = mapping(e, {"encryption", "hash", "group", "authentication", "lifetime"});
        if (!f) {
            continue;
        }
        ike_settings::isakmp_policy pol;
        pol.authentication = rsa ? 3 : 1;
        std::vector<std::string> weak;
        if (auto m = member(*f, "encryption")) {
            if (auto t = scalar(*m, "3des, aes, aes 192 or aes 256")) {
                if (*t == "3des") {
                    pol.encryption = 5;
                    pol.key_bits = 0;
                    weak.push_back("encryption 3des");
                } else if (*t == "aes" || *t == "aes 128") {
                    pol.key_bits = 128;
                } else if (*t == "aes 192") {
                    pol.key_bits = 192;
                } else if (*t == "aes 256") {
                    pol.key_bits = 256;
                } else if (*t == "des") {
                    fail(m->at, m->path, "DES is not supported (56-bit keys are broken)");
                } else {
                    fail(m->at, m->path,
                         fmt::format("expected 3des, aes, aes 192 or aes 256, got {}", quote(*t)));
                }
            }
        }
        if (auto m = member(*f, "hash")) {
            if (auto t = scalar(*m, "md5, sha or sha256")) {
                if (*t == "md5") {
                    pol.hash = 1;
                    weak.push_back("hash md5");
                } else if (*t == "sha") {
                    pol.hash = 2;
                } else if (*t == "sha256") {
                    pol.hash = 4;
                } else {
                    fail(m->at, m->path,
                         fmt::format("expected md5, sha or sha256, got {}", quote(*t)));
                }
            }
        }
        if (auto m = member(*f, "group")) {
            if (auto t = scalar(*m, "2, 5, 14, 19 or 20")) {
                if (*t == "2" || *t == "5") {
                    pol.group = static_cast<uint16_t>(*t == "2" ? 2 : 5);
                    weak.push_back(fmt::format("group {}", *t));
                } else if (*t == "14" || *t == "19" || *t == "20") {
                    pol.group = static_cast<uint16_t>(std::stoi(std::string(*t)));
                } else if (*t == "1") {
                    fail(m->at, m->path, "group 1 (768-bit MODP) is not supported");
                } else {
                    fail(m->at, m->path,
                         fmt::format("expected 2, 5, 14, 19 or 20, got {}", quote(*t)));
                }
            }
        }
        if (auto m = member(*f, "authentication")) {
            if (auto t = scalar(*m, method); t && *t != method) {
                fail(m->at, m->path,
                     fmt::format("expected {} (the profile's authentication is {}), got {}", method,
                                 rsa ? "certificate" : "psk", quote(*t)));
            }
        }
        read(*f, "lifetime", pol.lifetime_s, uint_in(60, 86400));
        if (!weak.empty()) {
            std::string list;
            for (const auto& w : weak) {
                list += list.empty() ? w : ", " + w;
            }
            warn(e.at, e.path,
                 fmt::format("weak ISAKMP policy ({}): for legacy peers only; list a stronger "
                             "policy first",
                             list));
        }
        out.push_back(pol);
    }
    return out;
}

ike_settings loader::read_ike(const value_ref& v, std::string_view profile) {
    ike_settings s;
    auto f = mapping(v, {"version",
                         "authentication",
                         "psk",
                         "keys",
                         "key-file",
                         "local-id",
                         "certificate",
                         "private-key",
                         "ca",
                         "proposals",
                         "esp-proposals",
                         "pfs",
                         "ike-lifetime",
                         "child-lifetime",
                         "child-lifetime-bytes",
                         "child-lifetime-packets",
                         "dpd-interval",
                         "dpd-retries",
                         "cookie-threshold",
                         "max-half-open",
                         "nat-keepalive",
                         "initiate",
                         "fragmentation",
                         "fragment-size",
                         "isakmp-policies",
                         "aggressive-mode"});
    s.proposals = default_ike_proposals();
    s.esp_proposals = default_esp_proposals();
    if (!f) {
        return s;
    }
    if (auto ver = member(*f, "version")) {
        if (auto t = scalar(*ver, "1, 2 or any")) {
            if (*t == "1") {
                s.version = 1;
            } else if (*t == "any") {
                s.version = ike_settings::ike_version_any;
            } else if (*t != "2") {
                fail(ver->at, ver->path, fmt::format("expected 1, 2 or any, got {}", quote(*t)));
            }
        }
    }
    if (auto a = member(*f, "authentication")) {
        if (auto t = scalar(*a, "psk or certificate")) {
            if (*t == "psk") {
                s.auth = ike_auth::psk;
            } else if (*t == "certificate") {
                s.auth = ike_auth::certificate;
            } else {
                fail(a->at, a->path, fmt::format("expected psk or certificate, got {}", quote(*t)));
            }
        }
    }
    if (auto p = member(*f, "isakmp-policies")) {
        if (!s.speaks_v1() && !broken(child(v.path, "version"))) {
            fail(p->at, p->path, "only used with version 1 or any (IKEv1)");
        }
        s.isakmp_policies = read_isakmp_policies(*p, s.auth);
    } else if (s.speaks_v1()) {
        s.isakmp_policies = {ike_settings::isakmp_policy{}};  // aes sha group 14
        s.isakmp_policies[0].authentication = s.auth == ike_auth::certificate ? 3 : 1;
    }
    read_psks(*f, s, profile);
    if (auto id = member(*f, "local-id")) {
        if (auto t = scalar(*id, "an identity")) {
            if (valid_identity(*t)) {
                s.local_id = *t;
            } else {
                fail(id->at, id->path,
                     fmt::format("expected an IPv4 address, an FQDN or user@fqdn (up to {} "
                                 "printable characters, no blanks), got {}",
                                 max_identity, quote(*t)));
            }
        }
    }
    auto file_path = [&](const value_ref& p) -> std::optional<std::string> {
        auto t = text(p);
        if (t && t->front() != '/') {
            fail(p.at, p.path, fmt::format("expected an absolute path, got {}", quote(*t)));
            return std::nullopt;
        }
        return t;
    };
    auto cert = member(*f, "certificate");
    auto key = member(*f, "private-key");
    auto ca = member(*f, "ca");
    if (cert) {
        s.certificate = file_path(*cert).value_or("");
    }
    if (key) {
        s.private_key = file_path(*key).value_or("");
    }
    if (ca) {
        if (auto items = sequence(*ca)) {
            for (const value_ref& e : *items) {
                if (auto p = file_path(e)) {
                    s.ca.push_back(*p);
                }
            }
            if (items->empty()) {
                fail(ca->at, ca->path, "expected at least one CA certificate file");
            }
        }
    }
    if (auto p = member(*f, "proposals")) {
        s.proposals = read_ike_proposals(*p);
    }
    if (auto p = member(*f, "esp-proposals")) {
        s.esp_proposals = read_esp_proposals(*p);
    }
    if (auto p = member(*f, "pfs")) {
        if (auto t = scalar(*p, "a group or none")) {
            if (*t == "none") {
                s.pfs_group.reset();
            } else if (auto g = parse_dh_group(*t)) {
                s.pfs_group = *g;
            } else if ((*t == "modp1024" || *t == "modp1536") && s.speaks_v1()) {
                // IOS's `set pfs group2` / `group5`: IKEv1 legacy peers only, warned.
                s.pfs_group = static_cast<uint16_t>(*t == "modp1024" ? 2 : 5);
                warn(p->at, p->path,
                     fmt::format("pfs {} is a weak group (IKEv1 legacy peers only)", *t));
            } else {
                fail(p->at, p->path,
                     fmt::format("expected none or a group: {}, got {}", dh_group_names(),
                                 quote(*t)));
            }
        }
    }
    // IOS's bounds for IKEv2 and IPsec SA lifetimes.
    read(*f, "ike-lifetime", s.ike_lifetime_s, uint_in(120, 86400));
    read(*f, "child-lifetime", s.child_lifetime_s, uint_in(120, 86400));
    read(*f, "child-lifetime-bytes", s.child_lifetime_bytes, uint_in(0, UINT64_MAX));
    read(*f, "child-lifetime-packets", s.child_lifetime_packets, uint_in(0, UINT64_MAX));
    read(*f, "dpd-interval", s.dpd_interval_s, uint_in(0, 3600));
    read(*f, "dpd-retries", s.dpd_retries, uint_in(1, 20));
    read(*f, "max-half-open", s.max_half_open, uint_in(1, 1000000));
    read(*f, "cookie-threshold", s.cookie_threshold, uint_in(0, 1000000));
    read(*f, "nat-keepalive", s.nat_keepalive_s, uint_in(0, 3600));
    read(*f, "initiate", s.initiate, as_bool());
    read(*f, "fragmentation", s.fragmentation, as_bool());
    read(*f, "fragment-size", s.fragment_size, uint_in(576, 9000));
    if (auto c = member(*f, "cookie-threshold"); c && !broken(c->path) &&
                                                 !broken(child(v.path, "max-half-open")) &&
                                                 s.cookie_threshold > s.max_half_open) {
        fail(c->at, c->path,
             fmt::format("{} is above max-half-open {}: cookies would never be asked for",
                         s.cookie_threshold, s.max_half_open));
    }

    read(*f, "aggressive-mode", s.aggressive_mode, as_bool());
    if (auto am = member(*f, "aggressive-mode"); am && s.aggressive_mode) {
        if (!s.speaks_v1() && !broken(child(v.path, "version"))) {
            fail(am->at, am->path, "only used with version 1 or any (IKEv1)");
        } else if (s.auth != ike_auth::psk) {
            fail(am->at, am->path, "the hub answers Aggressive Mode with pre-shared keys only");
        } else {
            warn(am->at, am->path,
                 fmt::format(
                     "ipsec profile {}: IKEv1 Aggressive Mode answers anyone who asks with a "
                     "hash of the pre-shared key (crackable offline); for legacy peers "
                     "only",
                     profile));
        }
    }
    // What each way of authenticating needs, and what it cannot use.
    if (s.auth == ike_auth::psk) {
        for (const auto& m : {cert, key, ca}) {
            if (m) {
                fail(m->at, m->path, "only used with authentication: certificate");
            }
        }
        if (!member(*f, "psk") && !member(*f, "keys") && !member(*f, "key-file") &&
            !broken(child(v.path, "authentication"))) {
            fail(f->at, child(v.path, "psk"),
                 "missing required key (authentication psk needs psk, keys or key-file)");
        }
    } else {
        for (std::string_view k : {"psk", "keys", "key-file"}) {
            if (auto m = member(*f, k)) {
                fail(m->at, m->path, "only used with authentication: psk");
            }
        }
        s.psks.clear();
        member(*f, "certificate", true);
        member(*f, "private-key", true);
        member(*f, "ca", true);
    }
    return s;
}

void loader::validate_profiles(const topology& t) {
    // Manual SAs: one pair per peer, inbound SPIs unique (they select the SA on receive), and
    // outbound SPIs unique per peer.
    std::map<ipv4, std::string> peers;
    std::map<uint32_t, std::string> inbound_spis;
    std::set<ipv4> own_nbma;
    for (size_t i = 0; i < t.tunnels.size(); ++i) {
        if (!broken(child(item("tunnels", i), "nbma-source")) &&
            !broken(child(item("tunnels", i), "port"))) {
            own_nbma.insert(t.tunnels[i].nbma_source);
        }
    }
    for (size_t i = 0; i < t.ipsec_profiles.size(); ++i) {
        const ipsec_profile& prof = t.ipsec_profiles[i];
        for (size_t j = 0; j < prof.manual_sas.size(); ++j) {
            const manual_sa& sa = prof.manual_sas[j];
            std::string base = item(child(item("ipsec-profiles", i), "manual-sas"), j);
            std::string peer_path = child(base, "peer");
            if (!broken(peer_path)) {
                if (auto [it, fresh] = peers.emplace(sa.peer, peer_path); !fresh) {
                    fail(where(peer_path), peer_path,
                         fmt::format("peer {} already has SAs (at {})", to_string(sa.peer),
                                     fmt_pos(where(it->second))));
                }
                if (own_nbma.count(sa.peer) != 0) {
                    fail(where(peer_path), peer_path,
                         fmt::format("{} is this hub's own NBMA address", to_string(sa.peer)));
                }
            }
            std::string in_path = child(child(base, "inbound"), "spi");
            if (!broken(in_path)) {
                if (auto [it, fresh] = inbound_spis.emplace(sa.inbound.spi, in_path); !fresh) {
                    fail(where(in_path), in_path,
                         fmt::format("inbound SPI {:#x} is already used (at {})", sa.inbound.spi,
                                     fmt_pos(where(it->second))));
                }
            }
        }
    }
}

}  // namespace dmvpn::config::detail
