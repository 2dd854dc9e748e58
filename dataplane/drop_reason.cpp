// Names of the drop and punt reasons, in enum order.
#include "dataplane/drop_reason.hpp"

#include <array>

namespace dmvpn::dp {

namespace {

constexpr std::array<std::string_view, drop_reason_count> drop_names = {
    "eth_truncated",
    "unsupported_ethertype",
    "multi_segment",
    "ipv4_truncated",
    "ipv4_bad_version",
    "ipv4_bad_ihl",
    "ipv4_bad_checksum",
    "ipv4_bad_length",
    "tunnel_fragment",
    "gre_truncated",
    "gre_bad_header",
    "gre_bad_checksum",
    "gre_unknown_key",
    "gre_unprotected",
    "gre_unknown_protocol",
    "esp_truncated",
    "esp_unknown_spi",
    "esp_replayed",
    "esp_outside_window",
    "esp_bad_icv",
    "esp_bad_padding",
    "esp_sa_expired",
    "esp_decrypt_error",
    "esp_inner_not_gre",
    "esp_tunnel_mismatch",
    "esp_encrypt_error",
    "no_route",
    "blackhole",
    "adjacency_missing",
    "no_adjacency",
    "martian_destination",
    "frag_too_many",
    "frag_no_mbuf",
    "no_headroom",
    "tx_full",
    "port_paused",
    "punt_ring_full",
    "spoofed_source",
    "underlay_transit",
    "punt_policed",
};

constexpr std::array<std::string_view, punt_reason_count> punt_names = {
    "nhrp", "arp", "for_us", "multicast", "ttl_exceeded", "frag_needed", "glean", "redirect",
};

}  // namespace

std::string_view name(drop_reason r) noexcept {
    auto i = static_cast<size_t>(r);
    return i < drop_names.size() ? drop_names[i] : std::string_view("unknown");
}

std::string_view name(punt_reason r) noexcept {
    auto i = static_cast<size_t>(r);
    return i < punt_names.size() ? punt_names[i] : std::string_view("unknown");
}

std::string_view punt_class_name(size_t cls) noexcept {
    return cls == punt_class_ike ? std::string_view("ike") : name(static_cast<punt_reason>(cls));
}

}  // namespace dmvpn::dp
