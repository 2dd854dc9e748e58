// rtnetlink requests and replies for the kernel's IPv4 routing table (kernel_netlink.hpp).
#include "control/rib/kernel_netlink.hpp"

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <variant>

#include "control/fpm/codec.hpp"

namespace dmvpn::rib::knl {

namespace {

constexpr size_t header_size = 16;  // struct nlmsghdr
constexpr size_t rtmsg_size = 12;   // struct rtmsg
constexpr size_t align4(size_t n) { return (n + 3) & ~size_t{3}; }

// Appends the bytes of `v` as the host lays them out (netlink is in host byte order).
template <typename T>
void append(std::vector<uint8_t>& out, const T& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out.insert(out.end(), p, p + sizeof v);
}

void put_attr(std::vector<uint8_t>& out, uint16_t type, uint32_t value) {
    rtattr a{};
    a.rta_len = RTA_LENGTH(sizeof value);
    a.rta_type = type;
    append(out, a);
    append(out, value);
}

void put_u32(std::vector<uint8_t>& out, uint16_t type, uint32_t v) { put_attr(out, type, v); }

// An IPv4 address attribute: network byte order.
void put_ipv4(std::vector<uint8_t>& out, uint16_t type, uint32_t host_order) {
    put_attr(out, type, htonl(host_order));
}

void begin(std::vector<uint8_t>& out, uint16_t type, uint16_t flags, uint32_t seq) {
    nlmsghdr h{};  // nlmsg_len set by finish(); nlmsg_pid 0: the kernel
    h.nlmsg_type = type;
    h.nlmsg_flags = flags;
    h.nlmsg_seq = seq;
    append(out, h);
}

void finish(std::vector<uint8_t>& out) {
    auto len = static_cast<uint32_t>(out.size());
    std::memcpy(out.data(), &len, sizeof len);
}

std::optional<kroute> to_kroute(const fpm::route& r) {
    if (r.family != AF_INET || r.type != fpm::route_type::unicast) {
        return std::nullopt;
    }
    kroute k;
    k.dst = r.dst.v4();
    k.len = r.prefix_len;
    k.protocol = r.protocol;
    k.table = r.table;
    if (!r.nexthops.empty()) {
        const fpm::nexthop& nh = r.nexthops.front();
        k.gateway = nh.gateway ? nh.gateway->v4() : 0;
        k.ifindex = nh.ifindex;
    }
    return k;
}

}  // namespace

std::vector<uint8_t> encode_route(const kroute& r, bool add, uint32_t seq) {
    std::vector<uint8_t> out;
    out.reserve(64);
    auto flags = static_cast<uint16_t>(NLM_F_REQUEST | NLM_F_ACK);
    if (add) {
        flags |= NLM_F_CREATE | NLM_F_REPLACE;
    }
    begin(out, add ? RTM_NEWROUTE : RTM_DELROUTE, flags, seq);
    out.push_back(AF_INET);
    out.push_back(r.len);
    out.push_back(0);  // src_len
    out.push_back(0);  // tos
    out.push_back(static_cast<uint8_t>(r.table < 256 ? r.table : RT_TABLE_UNSPEC));
    out.push_back(r.protocol);
    // A deletion matches any scope; an on-link route is scope link.
    out.push_back(!add ? RT_SCOPE_NOWHERE : r.gateway == 0 ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE);
    out.push_back(RTN_UNICAST);
    append(out, uint32_t{0});  // rtm_flags
    put_ipv4(out, RTA_DST, r.dst);
    put_u32(out, RTA_TABLE, r.table);
    if (r.ifindex != 0) {
        put_u32(out, RTA_OIF, r.ifindex);
    }
    if (r.gateway != 0) {
        put_ipv4(out, RTA_GATEWAY, r.gateway);
    }
    finish(out);
    return out;
}

std::vector<uint8_t> encode_dump(uint32_t seq) {
    std::vector<uint8_t> out;
    begin(out, RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq);
    out.push_back(AF_INET);
    out.resize(header_size + rtmsg_size, 0);
    finish(out);
    return out;
}

std::string_view name(parse_error e) noexcept {
    switch (e) {
        case parse_error::truncated:
            return "truncated";
        case parse_error::bad_length:
            return "bad_length";
    }
    return "unknown";
}

std::optional<parse_error> parse_replies(std::span<const uint8_t> buf,
                                         const std::function<void(const reply&)>& each) {
    size_t off = 0;
    while (off < buf.size()) {
        if (buf.size() - off < header_size) {
            return parse_error::truncated;
        }
        nlmsghdr h;
        std::memcpy(&h, buf.data() + off, sizeof h);
        const uint32_t len = h.nlmsg_len;
        if (len < header_size || len > buf.size() - off) {
            return parse_error::bad_length;
        }
        reply r;
        r.seq = h.nlmsg_seq;
        const auto msg = buf.subspan(off, len);
        if (h.nlmsg_type == NLMSG_ERROR) {
            if (len < header_size + sizeof(int32_t)) {
                return parse_error::truncated;
            }
            std::memcpy(&r.error, buf.data() + off + header_size, sizeof r.error);
            r.what = r.error == 0 ? reply::kind::ack : reply::kind::error;
        } else if (h.nlmsg_type == NLMSG_DONE) {
            r.what = reply::kind::done;
        } else if (h.nlmsg_type == RTM_NEWROUTE) {
            if (auto m = fpm::decode_netlink(msg)) {
                if (const auto* rt = std::get_if<fpm::route>(&*m)) {
                    r.route = to_kroute(*rt);
                }
            }
            r.what = r.route ? reply::kind::route : reply::kind::other;
        }
        each(r);
        off += align4(len);
    }
    return std::nullopt;
}

namespace {

class netlink_table final : public kernel_table {
public:
    explicit netlink_table(int fd) : _fd(fd), _buf(64 * 1024) {}
    ~netlink_table() override { ::close(_fd); }
    netlink_table(const netlink_table&) = delete;
    netlink_table& operator=(const netlink_table&) = delete;

    bool replace(const kroute& r) override { return request(encode_route(r, true, ++_seq)); }

    bool remove(const kroute& r) override {
        bool ok = request(encode_route(r, false, ++_seq));
        return ok || _error == -ESRCH;  // already gone
    }

    std::optional<std::vector<kroute>> dump(uint8_t protocol, uint32_t table) override {
        uint32_t seq = ++_seq;
        if (!send(encode_dump(seq))) {
            return std::nullopt;
        }
        std::vector<kroute> out;
        for (;;) {
            ssize_t n = ::recv(_fd, _buf.data(), _buf.size(), 0);
            if (n <= 0) {
                _error = n == 0 ? -EIO : -errno;
                return std::nullopt;
            }
            bool done = false;
            bool failed = false;
            auto bad = parse_replies({_buf.data(), static_cast<size_t>(n)}, [&](const reply& m) {
                if (m.seq != seq) {
                    return;  // a late answer to an earlier request
                }
                if (m.what == reply::kind::done) {
                    done = true;
                } else if (m.what == reply::kind::error) {
                    _error = m.error;
                    failed = true;
                } else if (m.route && m.route->protocol == protocol && m.route->table == table) {
                    out.push_back(*m.route);
                }
            });
            if (bad) {
                _error = -EBADMSG;
                return std::nullopt;
            }
            if (failed) {
                return std::nullopt;
            }
            if (done) {
                return out;
            }
        }
    }

    int last_error() const noexcept override { return _error; }

private:
    bool send(const std::vector<uint8_t>& msg) {
        sockaddr_nl to{};
        to.nl_family = AF_NETLINK;
        if (::sendto(_fd, msg.data(), msg.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                     sizeof to) < 0) {
            _error = -errno;
            return false;
        }
        return true;
    }

    // Sends one request and waits for its acknowledgement.
    bool request(const std::vector<uint8_t>& msg) {
        uint32_t seq = _seq;
        if (!send(msg)) {
            return false;
        }
        for (;;) {
            ssize_t n = ::recv(_fd, _buf.data(), _buf.size(), 0);
            if (n <= 0) {
                _error = n == 0 ? -EIO : -errno;
                return false;
            }
            std::optional<bool> verdict;
            auto bad = parse_replies({_buf.data(), static_cast<size_t>(n)}, [&](const reply& m) {
                if (m.seq == seq && (m.what == reply::kind::ack || m.what == reply::kind::error)) {
                    _error = m.error;
                    verdict = m.what == reply::kind::ack;
                }
            });
            if (bad) {
                _error = -EBADMSG;
                return false;
            }
            if (verdict) {
                return *verdict;
            }
        }
    }

    int _fd;
    std::vector<uint8_t> _buf;
    uint32_t _seq = 0;
    int _error = 0;
};

}  // namespace

std::unique_ptr<kernel_table> open_netlink() {
    int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) {
        return nullptr;
    }
    sockaddr_nl local{};
    local.nl_family = AF_NETLINK;
    timeval tv{2, 0};  // a kernel that does not answer: the thread gives up on that request
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof local) < 0 ||
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) {
        int e = errno;
        ::close(fd);
        errno = e;
        return nullptr;
    }
    return std::make_unique<netlink_table>(fd);
}

}  // namespace dmvpn::rib::knl
