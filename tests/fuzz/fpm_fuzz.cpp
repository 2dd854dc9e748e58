// libFuzzer target for FRR's FPM stream (control/fpm/codec.hpp): the input is a TCP byte stream
// cut into frames by stream_reader; each frame is decoded, next-hop objects go into a small
// bounded table and routes naming one are resolved through it. Properties: no read past the
// input (ASan), a decoded message encodes to a frame that decodes to the same message, the
// table never exceeds its limit, the reader never holds more than a frame plus one feed; a
// frame holding several netlink messages (zebra's route update) yields each.
// Seeds: zebra 8.4's recorded streams (tests/data/fpm).
#include <cstddef>
#include <cstdint>
#include <span>

#include "control/fpm/codec.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using dmvpn::fuzz::require;
namespace fpm = dmvpn::fpm;

namespace {

constexpr size_t table_limit = 16;

// A decoded message encodes to a frame holding the same message; next-hop objects go into
// the bounded table, routes naming one resolve through it.
void check_message(const fpm::message& m, fpm::nexthop_table& table) {
    auto frame = fpm::decode_frame(fpm::encode_frame(m));
    require(frame.has_value() && frame->size() == 1 && (*frame)[0].has_value());
    const auto& again = *(*frame)[0];
    if (const auto* r = std::get_if<fpm::route>(&m)) {
        const auto* r2 = std::get_if<fpm::route>(&again);
        require(r2 != nullptr);
        // The encoder writes rtm_table 252 (RT_TABLE_COMPAT) for a table above 255 only when
        // RTA_TABLE says so; the table decoded is what matters.
        require(r2->dst == r->dst && r2->prefix_len == r->prefix_len &&
                r2->protocol == r->protocol && r2->nexthop_id == r->nexthop_id &&
                r2->add == r->add);
        if (r->nexthop_id != 0) {
            (void)table.resolve(r->nexthop_id);
        }
    } else {
        const auto& n = std::get<fpm::nexthop_object>(m);
        require(std::get<fpm::nexthop_object>(again).id == n.id);
        (void)table.apply(n);
        require(table.size() <= table_limit);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fpm::stream_reader reader;
    fpm::nexthop_table table(table_limit);
    // The first byte picks how the stream is cut, as TCP would.
    const size_t piece = size > 0 ? 1 + data[0] % 64 : 1;
    for (size_t off = 0; off < size; off += piece) {
        const size_t n = std::min(piece, size - off);
        reader.feed(std::span<const uint8_t>(data + off, n));
        require(reader.buffered() <= fpm::max_frame + piece);
        for (;;) {
            auto f = reader.next();
            if (!f) {
                require(fpm::name(f.error()) != "unknown");
                return 0;  // a poisoned stream: the connection would be closed
            }
            if (!*f) {
                break;
            }
            auto ms = fpm::decode_frame(**f);
            if (!ms) {
                require(fpm::name(ms.error()) != "unknown");
                continue;
            }
            require(ms->size() <= fpm::max_frame / 16);
            for (const auto& m : *ms) {
                if (!m) {
                    require(fpm::name(m.error()) != "unknown");
                    continue;
                }
                check_message(*m, table);
            }
        }
    }
    return 0;
}
