// The IKE thread's handler when profiles speak IKEv1 (`ike.version: 1` or `any`): the IKEv2
// engine and the IKEv1 engine side by side, each datagram to the one its ISAKMP header's major
// version names (1 or 2; the header layout is common to both, RFC 2408 / RFC 7296), refused
// (counted) when the tunnel's profile does not speak that version. The hub's acks go to the
// engine whose id range holds the id (v1::engine::id_base). The show views of both are merged.
#pragma once

#include <map>
#include <memory>

#include "control/ike/thread.hpp"
#include "control/ike/v1_engine.hpp"

namespace dmvpn::ike {

class dual_handler final : public handler {
public:
    // Either engine may be absent (no profile speaks that version).
    dual_handler(std::unique_ptr<engine> v2, std::unique_ptr<v1::engine> v1,
                 const std::vector<config::ipsec_profile>& profiles,
                 const std::vector<tunnel_binding>& tunnels);
    // Both engines for `profiles`; the error names the version and the fault.
    static wire::result<std::unique_ptr<dual_handler>, std::string> create(
        const std::vector<config::ipsec_profile>& profiles,
        const std::vector<tunnel_binding>& tunnels);

    void on_datagram(const datagram& d, time_point now, outputs& out) override;
    void tick(time_point now, outputs& out) override;
    void installed(uint64_t child_id, time_point now, outputs& out) override;
    void install_failed(uint64_t child_id, std::string why, time_point now, outputs& out) override;
    void usage(const std::vector<child_usage>& u, time_point now, outputs& out) override;
    void initiate(uint32_t tunnel, uint32_t peer, time_point now, outputs& out) override;
    void clear(uint32_t peer, time_point now, outputs& out) override;
    std::optional<std::string> reconfigure(const std::vector<config::ipsec_profile>& profiles,
                                           std::vector<tunnel_binding> tunnels) override;
    std::string show(std::string_view what, bool json) const override;
    // Both engines' counters together (IKEv1 ones folded into the IKEv2 names).
    engine_counters counters() const;

    engine* v2() noexcept { return _v2.get(); }
    v1::engine* v1() noexcept { return _v1.get(); }
    // Datagrams whose version the tunnel's profile does not speak, or that are too short.
    uint64_t refused() const noexcept { return _refused; }

private:
    void bind(const std::vector<config::ipsec_profile>& profiles,
              const std::vector<tunnel_binding>& tunnels);

    std::unique_ptr<engine> _v2;
    std::unique_ptr<v1::engine> _v1;
    std::map<uint32_t, uint8_t> _version;  // tunnel slot -> its profile's ike.version
    uint64_t _refused = 0;
};

// Splices two renderings of the same show command (IKEv2's and IKEv1's) into one: the text
// blocks one after the other, or the JSON object's one array holding both engines' rows. An
// empty rendering (`empty`) gives way to the other.
std::string merge_views(const std::string& a, const std::string& b, const std::string& empty,
                        bool json);

}  // namespace dmvpn::ike
