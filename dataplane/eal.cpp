// EAL start-up and shutdown.
#include "dataplane/eal.hpp"

#include <rte_eal.h>
#include <rte_malloc.h>

#include "crypto/sa.hpp"
#include "dataplane/packet_meta.hpp"

namespace dmvpn::dp {

std::string_view name(eal_error e) noexcept {
    switch (e) {
        case eal_error::init_failed:
            return "init_failed";
        case eal_error::meta_failed:
            return "meta_failed";
    }
    return "unknown";
}

namespace {

// SAs on hugepages: a hub's thousands of SAs (state, key schedules, replay bitmap: about 1.2 KiB
// each) would otherwise cost the worker a TLB miss per packet on 4 KiB heap pages.
void* sa_allocate(void*, size_t bytes, size_t align) {
    return rte_malloc_socket("sa", bytes, static_cast<unsigned>(align), SOCKET_ID_ANY);
}
void sa_release(void*, void* p) { rte_free(p); }

}  // namespace

wire::result<eal_started, eal_error> eal_init(const std::vector<std::string>& args,
                                              std::string_view program) {
    // rte_eal_init may keep pointers into argv and permutes it: give it storage that lives
    // as long as the process.
    static std::vector<std::string> storage;
    static std::vector<char*> argv;
    storage.clear();
    storage.emplace_back(program);
    storage.insert(storage.end(), args.begin(), args.end());
    argv.clear();
    for (std::string& s : storage) {
        argv.push_back(s.data());
    }
    argv.push_back(nullptr);
    int consumed = rte_eal_init(static_cast<int>(storage.size()), argv.data());
    if (consumed < 0) {
        return wire::fail(eal_error::init_failed);
    }
    if (!register_packet_meta()) {
        return wire::fail(eal_error::meta_failed);
    }
    crypto::set_sa_allocator({sa_allocate, sa_release, nullptr});
    return eal_started{consumed};
}

void eal_cleanup() noexcept {
    crypto::set_sa_allocator({});
    rte_eal_cleanup();
}

}  // namespace dmvpn::dp
