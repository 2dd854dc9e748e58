// RFC 7383 fragments: building them (section 2.5) and putting them back together (2.6).
#include "control/ike/fragments.hpp"

#include <algorithm>

namespace dmvpn::ike {

namespace {

constexpr size_t ipv4_udp_overhead = 20 + 8;
// The SKF payload's generic header plus Fragment Number and Total Fragments.
constexpr size_t skf_header_size = generic_payload_header_size + 4;

// The most plaintext one fragment of `max_size` octets carries under `k`.
size_t fragment_capacity(const crypto::sk_keys& k, size_t max_size) {
    const size_t fixed = header_size + skf_header_size;
    if (max_size <= fixed) {
        return 0;
    }
    const size_t avail = max_size - fixed;
    // n + protected_size(n) grows with n and exceeds n by at most an IV, a block and an ICV.
    size_t n = avail;
    while (n > 0 && n + crypto::protected_size(k, n) > avail) {
        --n;
    }
    return n;
}

const skf_payload* skf_of(const message& m) {
    return m.payloads.empty() ? nullptr : std::get_if<skf_payload>(&m.payloads.back());
}

}  // namespace

size_t fragment_room(uint32_t fragment_size, uint16_t port) noexcept {
    const size_t over = ipv4_udp_overhead + (port == 4500 ? non_esp_marker_size : 0);
    return fragment_size > over ? fragment_size - over : 0;
}

std::optional<std::vector<bytes>> protect_fragments(const crypto::sk_keys& k, const header& h,
                                                    const chain& inner, size_t max_size) {
    const size_t cap = fragment_capacity(k, std::min(max_size, max_message_size));
    if (cap == 0) {
        return std::nullopt;
    }
    const size_t count = std::max<size_t>(1, (inner.data.size() + cap - 1) / cap);
    if (count > max_fragments) {
        return std::nullopt;
    }
    std::vector<bytes> out;
    out.reserve(count);
    for (size_t i = 0; i < count; ++i) {
        const size_t at = i * cap;
        const std::span<const uint8_t> piece{inner.data.data() + at,
                                             std::min(cap, inner.data.size() - at)};
        const size_t skf_len =
            skf_header_size + piece.size() + crypto::protected_size(k, piece.size());
        header fh = h;
        fh.next = payload_type::skf;
        fh.length = uint32_t(header_size + skf_len);
        bytes msg = serialize_header(fh);
        // Only fragment 1 names the first inner payload (section 2.5).
        msg.push_back(i == 0 ? uint8_t(inner.first) : uint8_t(0));
        msg.push_back(0);
        msg.push_back(uint8_t(skf_len >> 8));
        msg.push_back(uint8_t(skf_len));
        msg.push_back(uint8_t((i + 1) >> 8));
        msg.push_back(uint8_t(i + 1));
        msg.push_back(uint8_t(count >> 8));
        msg.push_back(uint8_t(count));
        // The AAD is everything before the body: the header and the SKF payload's first
        // eight octets, so the fragment numbers are authenticated too.
        auto enc = crypto::protect(k, msg, piece);
        if (!enc || msg.size() + enc->size() != fh.length) {
            return std::nullopt;
        }
        msg.insert(msg.end(), enc->begin(), enc->end());
        out.push_back(std::move(msg));
    }
    return out;
}

std::optional<bytes> open_fragment(const crypto::sk_keys& k, const message& m,
                                   std::span<const uint8_t> raw) {
    const skf_payload* f = skf_of(m);
    if (f == nullptr || f->body.size() > raw.size()) {
        return std::nullopt;
    }
    auto plain = crypto::unprotect(k, raw.first(raw.size() - f->body.size()), f->body);
    if (!plain) {
        return std::nullopt;
    }
    return std::move(*plain);
}

reassembly::verdict reassembly::add(const crypto::sk_keys& k, const message& m,
                                    std::span<const uint8_t> raw, size_t room,
                                    std::chrono::steady_clock::time_point now) {
    // Integrity first (section 2.6): nothing unauthenticated is kept or changes what is held.
    auto plain = open_fragment(k, m, raw);
    if (!plain) {
        return verdict::forged;
    }
    const skf_payload& f = *skf_of(m);
    if (f.total > max_fragments) {
        return verdict::refused;
    }
    if (active() && (m.hdr.message_id != _mid || m.hdr.exch != _exch)) {
        clear();  // a new message: what was held of the old one can never complete
    }
    if (active() && f.total < _total) {
        return verdict::refused;  // a fragment of an earlier, coarser fragmentation
    }
    if (active() && f.total > _total) {
        clear();  // the sender fragmented again, smaller (section 2.6): start over
    }
    if (!active()) {
        _mid = m.hdr.message_id;
        _exch = m.hdr.exch;
        _total = f.total;
        _have = 0;
        _held = 0;
        _first = payload_type::none;
        _parts.assign(f.total, std::nullopt);
        _started = now;
    }
    auto& slot = _parts[f.number - 1];
    if (slot) {
        return verdict::duplicate;
    }
    if (_held + plain->size() > max_reassembled) {
        clear();  // it cannot be a message we accept: let go of all of it
        return verdict::refused;
    }
    if (plain->size() > room) {
        return verdict::refused;
    }
    if (f.number == 1) {
        _first = f.first_inner;
    }
    _held += plain->size();
    slot = std::move(*plain);
    ++_have;
    return _have == _total ? verdict::complete : verdict::stored;
}

reassembly::whole reassembly::take() {
    whole w;
    w.first = _first;
    w.chain.reserve(_held);
    for (const auto& p : _parts) {
        if (p) {
            w.chain.insert(w.chain.end(), p->begin(), p->end());
        }
    }
    clear();
    return w;
}

void reassembly::clear() noexcept {
    _total = 0;
    _have = 0;
    _held = 0;
    _first = payload_type::none;
    _parts.clear();
    _parts.shrink_to_fit();
}

}  // namespace dmvpn::ike
