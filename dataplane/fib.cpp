// rte_lpm wrapper for the FIB.
#include "dataplane/fib.hpp"

#include <rte_errno.h>

namespace dmvpn::dp {

std::unique_ptr<fib> fib::create(const std::string& name, uint32_t max_routes, uint32_t tbl8s,
                                 int socket_id) {
    rte_lpm_config cfg{};
    cfg.max_rules = max_routes;
    cfg.number_tbl8s = tbl8s;
    rte_lpm* lpm = rte_lpm_create(name.c_str(), socket_id, &cfg);
    if (lpm == nullptr) {
        return nullptr;
    }
    return std::unique_ptr<fib>(new fib(lpm));
}

fib::~fib() { rte_lpm_free(_lpm); }

int fib::attach_rcu(rte_rcu_qsbr* v) noexcept {
    rte_lpm_rcu_config cfg{};
    cfg.v = v;
    cfg.mode = RTE_LPM_QSBR_MODE_DQ;
    return rte_lpm_rcu_qsbr_add(_lpm, &cfg);
}

int fib::add(uint32_t prefix, uint8_t len, route_target t) noexcept {
    if (t.index > route_index_max || len > 32) {
        return -EINVAL;
    }
    return rte_lpm_add(_lpm, prefix, len, encode(t));
}

int fib::del(uint32_t prefix, uint8_t len) noexcept {
    if (len > 32) {
        return -EINVAL;
    }
    return rte_lpm_delete(_lpm, prefix, len);
}

std::optional<route_target> fib::lookup(uint32_t ip) const noexcept {
    uint32_t nh = 0;
    if (rte_lpm_lookup(_lpm, ip, &nh) != 0) {
        return std::nullopt;
    }
    return decode(nh);
}

}  // namespace dmvpn::dp
