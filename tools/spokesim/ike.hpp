// The spokes' IKEv2 through the project's own engine (control/ike/engine.hpp): one ike::engine,
// one tunnel binding per spoke (tunnel = its local position, local = its NBMA address), so every
// spoke is an initiator towards the hub and the other spokes and a responder to them. CHILD_SAs
// go straight into the emulator's ESP table; the engine is told they are installed at once.
#pragma once

#include <memory>
#include <string>

#include "control/ike/events.hpp"
#include "dataplane/wire/result.hpp"
#include "tools/spokesim/engine.hpp"
#include "tools/spokesim/esp.hpp"
#include "tools/spokesim/options.hpp"
#include "tools/spokesim/topology.hpp"

namespace dmvpn::spokesim {

// The error names the profile and the file or field at fault (the engine's own message), or the
// option (tools/spokesim/ike_config.hpp). `esp` must outlive the layer.
wire::result<std::unique_ptr<ike_layer>, std::string> make_ike_layer(const options& o,
                                                                     const topology& t,
                                                                     esp_table& esp);

// Installs a negotiated CHILD_SA in `esp` as pair sa.id between `local` and sa.peer. The error
// says what the table or the emulator cannot carry (nothing is installed then). Tests playing
// the hub use it for the hub's side.
std::optional<std::string> install_child(esp_table& esp, uint32_t local, const ike::child_sa& sa);

}  // namespace dmvpn::spokesim
