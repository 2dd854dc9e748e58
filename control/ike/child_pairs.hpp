// The CHILD_SA pairs one host keeps with one peer across rekeys, make-before-break (RFC 7296
// section 2.8): which pair encrypts outbound traffic now, and which still decrypt. Plain ids
// and times, no crypto: the hub (control/hub/hub_ike.cpp) and the spoke emulator
// (tools/spokesim/esp.cpp) hold their SA objects beside one of these per peer.
//
// Two rules keep every packet of a rekey under load:
// - Outbound. The initiator of a rekey installs the new pair when the response arrives, after
//   the responder installed its own, so it encrypts with the new pair at once. The responder
//   installs before its response leaves, when the initiator cannot decrypt the new pair yet:
//   its new pair waits (`add(id, true)`) and takes over outbound only once its inbound SA
//   carried traffic (the initiator has it) or the pair it replaces was removed (the
//   initiator's DELETE of the old pair, sent once the new one is in).
// - Inbound. A pair removed after a rekey (another pair with the peer stays) keeps decrypting
//   for a drain period: packets the peer encrypted with it before its switch-over may still be
//   queued or reordered behind the DELETE. A pair removed with no successor (the IKE SA died,
//   a DELETE without rekey) goes at once.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

namespace dmvpn::ike {

// How long a pair removed after a rekey keeps decrypting (strongSwan keeps a rekeyed inbound
// SA 5 s, its charon.delete_rekeyed_delay).
inline constexpr std::chrono::seconds rekey_drain{5};

class child_pairs {
public:
    using time_point = std::chrono::steady_clock::time_point;

    // A new pair (ids are unique). `waits`: its outbound waits (the responder's side of a
    // rekey, child_sa::outbound_waits); ignored when no other live pair encrypts now.
    void add(uint64_t id, bool waits);
    // The pair that encrypts now: the newest live one not waiting. None: no live pair.
    std::optional<uint64_t> outbound() const;
    // Traffic was decrypted with `id`'s inbound SA: a waiting pair stops waiting. True when
    // that moved outbound to it.
    bool inbound_seen(uint64_t id);
    bool waiting(uint64_t id) const;
    // The pair is removed. If another live pair stays, `id` keeps decrypting until now + drain
    // (true); otherwise it is forgotten at once (false). A waiting pair left without a live pair
    // that encrypts takes over.
    bool remove(uint64_t id, time_point now, std::chrono::nanoseconds drain = rekey_drain);
    // Forgotten at once, drained or not (the IKE SA is gone, the operator cleared it).
    void forget(uint64_t id);
    // The draining pairs whose period ended by `now`: forgotten, their ids returned.
    std::vector<uint64_t> drained(time_point now);
    // Live or draining: its inbound SA must stay installed.
    bool decrypts(uint64_t id) const;
    bool draining(uint64_t id) const;
    bool empty() const noexcept { return _pairs.empty(); }

private:
    struct entry {
        uint64_t id = 0;
        bool waits = false;
        std::optional<time_point> until;  // set: removed, decrypting until then
    };
    const entry* find(uint64_t id) const;
    void promote_if_orphaned();
    std::vector<entry> _pairs;  // oldest first
};

// Header-only: the spoke emulator's ESP library links no IKE library.

inline const child_pairs::entry* child_pairs::find(uint64_t id) const {
    auto it =
        std::find_if(_pairs.begin(), _pairs.end(), [id](const entry& e) { return e.id == id; });
    return it == _pairs.end() ? nullptr : &*it;
}

inline void child_pairs::add(uint64_t id, bool waits) {
    _pairs.push_back(entry{id, waits && outbound().has_value(), std::nullopt});
}

inline std::optional<uint64_t> child_pairs::outbound() const {
    for (auto it = _pairs.rbegin(); it != _pairs.rend(); ++it) {
        if (!it->until && !it->waits) {
            return it->id;
        }
    }
    return std::nullopt;
}

inline bool child_pairs::inbound_seen(uint64_t id) {
    auto it =
        std::find_if(_pairs.begin(), _pairs.end(), [id](const entry& e) { return e.id == id; });
    if (it == _pairs.end() || it->until || !it->waits) {
        return false;
    }
    it->waits = false;
    return outbound() == id;
}

inline bool child_pairs::waiting(uint64_t id) const {
    const entry* e = find(id);
    return e != nullptr && !e->until && e->waits;
}

inline void child_pairs::promote_if_orphaned() {
    if (outbound()) {
        return;
    }
    for (auto it = _pairs.rbegin(); it != _pairs.rend(); ++it) {
        if (!it->until) {
            it->waits = false;  // the newest live pair takes over
            return;
        }
    }
}

inline bool child_pairs::remove(uint64_t id, time_point now, std::chrono::nanoseconds drain) {
    auto it =
        std::find_if(_pairs.begin(), _pairs.end(), [id](const entry& e) { return e.id == id; });
    if (it == _pairs.end() || it->until) {
        return false;
    }
    bool successor = std::any_of(_pairs.begin(), _pairs.end(),
                                 [id](const entry& e) { return e.id != id && !e.until; });
    if (successor && drain.count() > 0) {
        it->until = now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(drain);
    } else {
        _pairs.erase(it);
    }
    promote_if_orphaned();
    return successor && drain.count() > 0;
}

inline void child_pairs::forget(uint64_t id) {
    std::erase_if(_pairs, [id](const entry& e) { return e.id == id; });
    promote_if_orphaned();
}

inline std::vector<uint64_t> child_pairs::drained(time_point now) {
    std::vector<uint64_t> out;
    std::erase_if(_pairs, [&](const entry& e) {
        if (e.until && *e.until <= now) {
            out.push_back(e.id);
            return true;
        }
        return false;
    });
    return out;
}

inline bool child_pairs::decrypts(uint64_t id) const { return find(id) != nullptr; }

inline bool child_pairs::draining(uint64_t id) const {
    const entry* e = find(id);
    return e != nullptr && e->until.has_value();
}

}  // namespace dmvpn::ike
