// libFuzzer target for the rtnetlink reply parser of the NHRP redistribution thread
// (control/rib/kernel_netlink.hpp): the input is one recv()'s worth of netlink messages.
// Properties: no read past the input (ASan); every message handed over lies inside the input
// (the handed count is bounded by its size); a route handed over is IPv4 with a valid length,
// and one we encode from it parses back to the same route.
#include <cstddef>
#include <cstdint>
#include <span>

#include "control/rib/kernel_netlink.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using dmvpn::fuzz::require;
namespace knl = dmvpn::rib::knl;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    size_t handed = 0;
    auto bad = knl::parse_replies(std::span<const uint8_t>(data, size), [&](const knl::reply& r) {
        ++handed;
        if (!r.route) {
            return;
        }
        require(r.what == knl::reply::kind::route);
        require(r.route->len <= 32);
        knl::kroute k = *r.route;
        k.dst &= k.len == 0 ? 0 : ~uint32_t{0} << (32 - k.len);
        auto again = knl::encode_route(k, true, r.seq);
        size_t back = 0;
        require(!knl::parse_replies(again, [&](const knl::reply& x) {
            ++back;
            require(x.route && x.route->dst == k.dst && x.route->len == k.len &&
                    x.route->gateway == k.gateway && x.route->ifindex == k.ifindex &&
                    x.route->protocol == k.protocol);
        }));
        require(back == 1);
    });
    require(handed <= size / 16);
    if (bad) {
        require(knl::name(*bad) != "unknown");
    }
    return 0;
}
