#include "control/nhrp/show.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <vector>

#include "control/json.hpp"
#include "dataplane/wire/ipv4.hpp"

namespace dmvpn::nhrp {

namespace {

std::string prefix_text(uint32_t a, uint8_t len) {
    return wire::format_ipv4(a) + '/' + std::to_string(len);
}

std::string pad(std::string s, size_t width) {
    if (s.size() < width) {
        s.append(width - s.size(), ' ');
    }
    return s;
}

std::string pad_left(std::string s, size_t width) {
    if (s.size() < width) {
        s.insert(0, width - s.size(), ' ');
    }
    return s;
}

std::chrono::seconds since(timestamp then, timestamp now) {
    auto d = std::chrono::duration_cast<std::chrono::seconds>(now - then);
    return std::max(d, std::chrono::seconds(0));
}

std::vector<std::string_view> flag_names(uint8_t flags) {
    std::vector<std::string_view> out;
    for (const auto& [bit, label] : entry_flag_names) {
        if ((flags & bit) != 0) {
            out.push_back(label);
        }
    }
    return out;
}

std::string joined(const std::vector<std::string_view>& words, std::string_view sep) {
    std::string out;
    for (size_t i = 0; i < words.size(); ++i) {
        if (i != 0) {
            out += sep;
        }
        out += words[i];
    }
    return out;
}

std::string json_flags(uint8_t flags) {
    std::string out = "[";
    auto names = flag_names(flags);
    for (size_t i = 0; i < names.size(); ++i) {
        out += (i == 0 ? "" : ",") + json_quote(names[i]);
    }
    return out + "]";
}

std::string json_entry(const entry_view& e, timestamp now) {
    std::string out = "{";
    out += "\"tunnel\":" + json_quote(e.tunnel_name);
    out += ",\"tunnel_id\":" + std::to_string(e.tunnel);
    out += ",\"protocol\":" + json_quote(prefix_text(e.address, e.prefix_len));
    out += ",\"via\":" + json_quote(wire::format_ipv4(e.via));
    out += ",\"nbma\":" + json_quote(wire::format_ipv4(e.nbma));
    out += ",\"claimed_nbma\":" + json_quote(wire::format_ipv4(e.claimed_nbma));
    out += ",\"type\":" + json_quote(name(e.type));
    out += ",\"flags\":" + json_flags(e.flags);
    out += ",\"created_s\":" + std::to_string(since(e.created, now).count());
    if (e.expires) {
        auto left = std::chrono::duration_cast<std::chrono::seconds>(*e.expires - now).count();
        out += ",\"expires_s\":" + std::to_string(std::max<int64_t>(left, 0));
    } else {
        out += ",\"expires_s\":null";
    }
    out += ",\"holding_time\":" + std::to_string(e.holding_time);
    out += ",\"request_id\":" + std::to_string(e.request_id);
    out += ",\"requesters\":[";
    for (size_t i = 0; i < e.requesters.size(); ++i) {
        const auto& r = e.requesters[i];
        out += (i == 0 ? "{" : ",{");
        out += "\"protocol\":" + json_quote(wire::format_ipv4(r.proto));
        out += ",\"nbma\":" + json_quote(wire::format_ipv4(r.nbma));
        out += ",\"request_id\":" + std::to_string(r.request_id) + "}";
    }
    out += "]}";
    return out;
}

constexpr std::string_view op_labels[] = {
    "",
    "Resolution Request",
    "Resolution Reply",
    "Registration Request",
    "Registration Reply",
    "Purge Request",
    "Purge Reply",
    "Error Indication",
    "Traffic Indication",
};
constexpr std::string_view op_keys[] = {
    "",
    "resolution_request",
    "resolution_reply",
    "registration_request",
    "registration_reply",
    "purge_request",
    "purge_reply",
    "error_indication",
    "traffic_indication",
};

std::string text_counts(std::string_view title, const std::array<uint64_t, 9>& n) {
    uint64_t total = 0;
    for (size_t i = 1; i < n.size(); ++i) {
        total += n[i];
    }
    std::string out = "   " + std::string(title) + ": Total " + std::to_string(total) + "\n";
    for (size_t i = 1; i < n.size(); i += 2) {
        out += "         " + pad_left(std::to_string(n[i]), 8) + " " +
               pad(std::string(op_labels[i]), 22);
        if (i + 1 < n.size()) {
            out += pad_left(std::to_string(n[i + 1]), 8) + " " + std::string(op_labels[i + 1]);
        }
        out += "\n";
    }
    return out;
}

std::string json_counts(const std::array<uint64_t, 9>& n) {
    std::string out = "{";
    for (size_t i = 1; i < n.size(); ++i) {
        out += (i == 1 ? "" : ",") + json_quote(op_keys[i]) + ":" + std::to_string(n[i]);
    }
    return out + "}";
}

}  // namespace

std::string format_age(std::chrono::seconds age) {
    int64_t s = std::max<int64_t>(age.count(), 0);
    char buf[32];
    if (s < 86400) {
        std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                      static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
    } else if (s < 7 * 86400) {
        std::snprintf(buf, sizeof buf, "%lldd%02lldh", static_cast<long long>(s / 86400),
                      static_cast<long long>(s / 3600 % 24));
    } else {
        std::snprintf(buf, sizeof buf, "%lldw%lldd", static_cast<long long>(s / (7 * 86400)),
                      static_cast<long long>(s / 86400 % 7));
    }
    return buf;
}

std::string show_nhrp(const server& s, timestamp now, show_format f, bool detail) {
    auto entries = s.entries();
    if (f == show_format::json) {
        std::string out = "[";
        for (size_t i = 0; i < entries.size(); ++i) {
            out += (i == 0 ? "" : ",") + json_entry(entries[i], now);
        }
        return out + "]\n";
    }
    std::string out;
    for (const auto& e : entries) {
        out += prefix_text(e.address, e.prefix_len) + " via " + wire::format_ipv4(e.via) + "\n";
        out += "   " + std::string(e.tunnel_name) + " created " + format_age(since(e.created, now));
        if (e.expires) {
            out += ", expire " +
                   format_age(std::chrono::duration_cast<std::chrono::seconds>(*e.expires - now));
        } else {
            out += ", never expire";
        }
        out += "\n";
        out += "   Type: " + std::string(name(e.type)) +
               ", Flags: " + joined(flag_names(e.flags), " ") + "\n";
        out += "   NBMA address: " + wire::format_ipv4(e.nbma) + "\n";
        if (e.claimed_nbma != e.nbma) {
            out += "    (Claimed NBMA address: " + wire::format_ipv4(e.claimed_nbma) + ")\n";
        }
        if (detail) {
            for (const auto& r : e.requesters) {
                out += "   Requester: " + wire::format_ipv4(r.proto) +
                       " Request ID: " + std::to_string(r.request_id) + "\n";
            }
        }
    }
    return out;
}

std::string show_nhrp_brief(const server& s, show_format f) {
    auto entries = s.entries();
    if (f == show_format::json) {
        std::string out = "[";
        for (size_t i = 0; i < entries.size(); ++i) {
            const auto& e = entries[i];
            out += (i == 0 ? "{" : ",{");
            out += "\"target\":" + json_quote(prefix_text(e.address, e.prefix_len));
            out += ",\"via\":" + json_quote(wire::format_ipv4(e.via));
            out += ",\"nbma\":" + json_quote(wire::format_ipv4(e.nbma));
            out += ",\"mode\":" + json_quote(name(e.type));
            out += ",\"tunnel\":" + json_quote(e.tunnel_name);
            out += ",\"claimed\":" + json_quote(wire::format_ipv4(e.claimed_nbma)) + "}";
        }
        return out + "]\n";
    }
    std::string out = "   " + pad("Target", 19) + pad("Via", 16) + pad("NBMA", 16) +
                      pad("Mode", 9) + pad("Intfc", 10) + "Claimed\n";
    for (const auto& e : entries) {
        std::string claimed =
            e.claimed_nbma != e.nbma ? wire::format_ipv4(e.claimed_nbma) : "<   >";
        out += "   " + pad(prefix_text(e.address, e.prefix_len), 19) +
               pad(wire::format_ipv4(e.via), 16) + pad(wire::format_ipv4(e.nbma), 16) +
               pad(std::string(name(e.type)), 9) + pad(std::string(e.tunnel_name), 10) + claimed +
               "\n";
    }
    return out;
}

std::string show_nhrp_summary(const server& s, show_format f) {
    size_t dynamic = 0;
    size_t statics = 0;
    size_t nat = 0;
    size_t unique = 0;
    for (const auto& e : s.entries()) {
        (e.type == entry_type::dynamic ? dynamic : statics) += 1;
        nat += (e.flags & entry_flag::nat) != 0 ? 1 : 0;
        unique += (e.flags & entry_flag::unique) != 0 ? 1 : 0;
    }
    if (f == show_format::json) {
        return "{\"entries\":" + std::to_string(dynamic + statics) +
               ",\"static\":" + std::to_string(statics) +
               ",\"dynamic\":" + std::to_string(dynamic) + ",\"nat\":" + std::to_string(nat) +
               ",\"unique\":" + std::to_string(unique) +
               ",\"bytes\":" + std::to_string(s.cache_memory_bytes()) +
               ",\"pending_purges\":" + std::to_string(s.pending_purges()) + "}\n";
    }
    return "IP NHRP cache " + std::to_string(dynamic + statics) + " entries, " +
           std::to_string(s.cache_memory_bytes()) + " bytes\n" + "    " + std::to_string(statics) +
           " static  " + std::to_string(dynamic) + " dynamic  0 incomplete\n" + "    " +
           std::to_string(nat) + " nat  " + std::to_string(unique) + " unique  " +
           std::to_string(s.pending_purges()) + " purges pending\n";
}

std::string show_nhrp_traffic(const server& s, show_format f) {
    std::string out = f == show_format::json ? "[" : "";
    bool first = true;
    for (const auto& t : s.tunnels()) {
        const counters& c = *t.stats;
        if (f == show_format::json) {
            out += first ? "{" : ",{";
            out += "\"tunnel\":" + json_quote(t.name) + ",\"sent\":" + json_counts(c.sent) +
                   ",\"received\":" + json_counts(c.received) + ",\"dropped\":{";
            for (size_t i = 0; i < drop_reason_count; ++i) {
                out += (i == 0 ? "" : ",") + json_quote(name(static_cast<drop_reason>(i))) + ":" +
                       std::to_string(c.dropped[i]);
            }
            out += "},\"purge_retransmits\":" + std::to_string(c.purge_retransmits) +
                   ",\"holdtime_clamped\":" + std::to_string(c.holdtime_clamped) + "}";
        } else {
            out += std::string(t.name) + ":\n";
            out += text_counts("Sent", c.sent);
            out += text_counts("Rcvd", c.received);
            std::string drops;
            for (size_t i = 0; i < drop_reason_count; ++i) {
                if (c.dropped[i] != 0) {
                    drops += "         " + pad_left(std::to_string(c.dropped[i]), 8) + " " +
                             std::string(name(static_cast<drop_reason>(i))) + "\n";
                }
            }
            if (!drops.empty()) {
                out += "   Dropped:\n" + drops;
            }
            if (c.holdtime_clamped != 0) {
                out += "   Holding times clamped: " + std::to_string(c.holdtime_clamped) + "\n";
            }
        }
        first = false;
    }
    return out + (f == show_format::json ? "]\n" : "");
}

std::string show_nhrp_nhs(const server& s, timestamp now, show_format f, bool detail) {
    auto seconds_until = [&](timestamp t) {
        return std::max<int64_t>(0,
                                 std::chrono::duration_cast<std::chrono::seconds>(t - now).count());
    };
    std::string out;
    if (f == show_format::json) {
        out = "[";
        bool first = true;
        for (const nhs_view& n : s.nhs()) {
            out += first ? "{" : ",{";
            out += "\"tunnel\":" + json_quote(n.tunnel_name) +
                   ",\"address\":" + json_quote(wire::format_ipv4(n.overlay)) +
                   ",\"nbma\":" + json_quote(wire::format_ipv4(n.nbma)) +
                   ",\"state\":" + json_quote(name(n.state)) +
                   ",\"requests_sent\":" + std::to_string(n.requests_sent) +
                   ",\"requests_failed\":" + std::to_string(n.requests_failed) +
                   ",\"replies\":" + std::to_string(n.replies) +
                   ",\"last_code\":" + std::to_string(n.last_code) + ",\"last_reply_age_s\":" +
                   (n.last_reply ? std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                                      now - *n.last_reply)
                                                      .count())
                                 : std::string("null")) +
                   ",\"next_request_s\":" + std::to_string(seconds_until(n.next_request)) +
                   ",\"answering\":" + (n.answering ? "true" : "false") +
                   ",\"peer_restarts\":" + std::to_string(n.peer_restarts) +
                   ",\"resolutions_forwarded\":" + std::to_string(n.resolutions_forwarded) + "}";
            first = false;
        }
        return out + "]\n";
    }
    // IOS: "Legend: E=Expecting replies, R=Responding, W=Waiting", per tunnel the NHS lines.
    out = "Legend: E=Expecting replies, R=Responding, W=Waiting\n";
    std::string_view tunnel;
    for (const nhs_view& n : s.nhs()) {
        if (n.tunnel_name != tunnel) {
            tunnel = n.tunnel_name;
            out += std::string(tunnel) + ":\n";
        }
        // R while the NHS accepts us; E while a request of ours is unanswered or refused.
        std::string letters = n.state == nhs_state::responding ? "R" : "";
        if (n.state != nhs_state::responding || n.requests_sent > n.replies) {
            letters += "E";
        }
        out += pad(wire::format_ipv4(n.overlay), 16) + pad(letters, 3) +
               "NBMA Address: " + wire::format_ipv4(n.nbma) + " priority = 0 cluster = 0\n";
        if (detail) {
            out += "    Req Sent " + std::to_string(n.requests_sent) + "  Req Failed " +
                   std::to_string(n.requests_failed) + "  Reply Recv " + std::to_string(n.replies) +
                   "  Next request in " + std::to_string(seconds_until(n.next_request)) + "s\n";
            out += "    Peer restarts " + std::to_string(n.peer_restarts) +
                   "  Resolutions forwarded " + std::to_string(n.resolutions_forwarded) + "\n";
        }
    }
    return out;
}

std::string show_dmvpn(const server& s, timestamp now, show_format f) {
    struct peer {
        uint32_t overlay = 0;
        size_t count = 0;
        timestamp up{};
        bool is_static = false;
        bool nat = false;
        bool registered = false;
    };
    auto entries = s.entries();
    std::string out = f == show_format::json ? "[" : "";
    if (f == show_format::text) {
        out +=
            "Legend: Attrb --> S - Static, D - Dynamic, N - NATed\n"
            "        # Ent --> Number of NHRP entries with same NBMA peer\n";
    }
    bool first_tunnel = true;
    for (const auto& t : s.tunnels()) {
        std::map<uint32_t, peer> peers;  // by NBMA, ordered as IOS lists them
        for (const auto& e : entries) {
            if (e.tunnel != t.id) {
                continue;
            }
            peer& p = peers[e.nbma];
            if (p.count == 0 || e.prefix_len == 32) {
                p.overlay = e.via;
            }
            if (p.count == 0 || e.created < p.up) {
                p.up = e.created;
            }
            ++p.count;
            p.is_static = p.is_static || e.type == entry_type::static_map;
            p.nat = p.nat || (e.flags & entry_flag::nat) != 0;
            p.registered = p.registered || (e.flags & entry_flag::registered) != 0 ||
                           e.type == entry_type::static_map;
        }
        if (f == show_format::json) {
            out += first_tunnel ? "{" : ",{";
            out += "\"tunnel\":" + json_quote(t.name) + ",\"type\":\"hub\",\"peers\":[";
            bool first = true;
            for (const auto& [nbma, p] : peers) {
                out += first ? "{" : ",{";
                out += "\"entries\":" + std::to_string(p.count) +
                       ",\"nbma\":" + json_quote(wire::format_ipv4(nbma)) +
                       ",\"tunnel_address\":" + json_quote(wire::format_ipv4(p.overlay)) +
                       ",\"state\":" + json_quote(p.registered ? "UP" : "NHRP") +
                       ",\"uptime_s\":" + std::to_string(since(p.up, now).count()) +
                       ",\"attributes\":" +
                       json_quote(std::string(p.is_static ? "S" : "D") + (p.nat ? "N" : "")) + "}";
                first = false;
            }
            out += "]}";
        } else {
            out += "\nInterface: " + std::string(t.name) + ", IPv4 NHRP Details\n";
            out += "Type:Hub, NHRP Peers:" + std::to_string(peers.size()) + ",\n\n";
            out += " # Ent  Peer NBMA Addr Peer Tunnel Add State  UpDn Tm Attrb\n";
            out += " ----- --------------- --------------- ----- -------- -----\n";
            for (const auto& [nbma, p] : peers) {
                out +=
                    pad_left(std::to_string(p.count), 6) + " " + pad(wire::format_ipv4(nbma), 15) +
                    " " + pad_left(wire::format_ipv4(p.overlay), 15) + " " +
                    pad_left(p.registered ? "UP" : "NHRP", 5) + " " + format_age(since(p.up, now)) +
                    " " + pad_left(std::string(p.is_static ? "S" : "D") + (p.nat ? "N" : ""), 5) +
                    "\n";
            }
        }
        first_tunnel = false;
    }
    return out + (f == show_format::json ? "]\n" : "");
}

}  // namespace dmvpn::nhrp
