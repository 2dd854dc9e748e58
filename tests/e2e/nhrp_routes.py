#!/usr/bin/python3
"""NHRP and routing end to end (issue 12, part 3): build/dmvpn-hub and build/dmvpn-spokesim over
net_memif, ESP on (tests/e2e/e2e.py's rig). Each spoke's LAN (172.16.N.0/24, the emulator's
--traffic lan) is routed on the hub through the spoke's overlay address (10.0.0.N+2) by a
configured route, standing in for the BGP routes FRR hands over FPM: the spokes register only
their tunnel address, so the hub knows their LANs from its FIB alone.

  nhrp_routes.py phase2   the hub at Phase 2 (no redirect); each spoke resolves its peer's LAN
                          address through the hub before sending (--resolve): the hub has no
                          NHRP entry for it and forwards the Resolution Request along its FIB
                          to the spoke the route names, which answers for its /24; every spoke
                          gets its shortcut and the traffic goes spoke to spoke, intact
  nhrp_routes.py phase3   the hub at Phase 3: LAN-to-LAN traffic through the hub draws a
                          Traffic Indication to the sending spoke, found through the route of
                          the packet's source (not registered with NHRP); the spoke resolves,
                          the hub forwards along the route, shortcuts form; without a route for
                          the source the hub could only count redirect_unknown_source
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402  the rig: hub, spokesim, check
from e2e import GOOD, check, spokesim  # noqa: E402


def lan_routes(n):
    """The spokes' LANs through their overlay addresses (what FRR would learn over BGP)."""
    rows = ["routes:"]
    for i in range(n):
        rows.append("  - prefix: 172.16.%d.0/24" % i)
        rows.append("    via: 10.0.%d.%d" % ((i + 2) // 256, (i + 2) % 256))
    return "\n".join(rows) + "\n"


def start_hub(d, n, phase):
    cfg = e2e.CONFIG
    if phase == 2:
        e2e.CONFIG = cfg.replace("phase: 3", "phase: 2").replace("redirect: true",
                                                                 "redirect: false")
    try:
        return e2e.hub(d, n, hub_extra=lan_routes(n))
    finally:
        e2e.CONFIG = cfg


def common_checks(h, r, n):
    check(r["registered"] == n and r["registration_rejects"] == 0,
          "%d spokes registered (their tunnel addresses only)" % r["registered"])
    routes = h.json("show", "ip", "route")["routes"]
    lans = [x for x in routes if x["prefix"].startswith("172.16.")]
    check(len(lans) == n and all(x["state"] == "complete" for x in lans),
          "show ip route: %d spoke LAN routes, each next hop resolved through NHRP" % len(lans))
    entries = h.json("show", "nhrp")
    check(not any(e["protocol"].startswith("172.16.") for e in entries if e["type"] == "dynamic"),
          "no spoke registered a LAN prefix: the hub knows them from its FIB only")
    check(r["lost"] == 0 and r["corrupt"] == 0 and r["esp_errors"] == 0 and
          r["received"] == r["sent"] and r["sent"] > 0,
          "LAN-to-LAN traffic: %d sent, %d received, 0 lost" % (r["sent"], r["received"]))
    check(r["shortcuts"] >= n and r["sent_shortcut"] > 0 and
          r["received_shortcut"] == r["sent_shortcut"],
          "%d shortcuts to the owners of the LAN prefixes, %d packets by shortcut" %
          (r["shortcuts"], r["sent_shortcut"]))
    check(r["resolutions_answered"] >= n,
          "the owning spokes answered %d forwarded Resolution Requests" %
          r["resolutions_answered"])


def phase2(d):
    n = 20
    h = start_hub(d, n, 2)
    try:
        rc, r = spokesim(d, "--spokes", n, *GOOD, "--traffic", "lan", "--resolve", "--rate", 400,
                         "--duration", 3, "--data-after", 1, "--peer-offset", 1)
        check(rc == 0 and r["ok"], "the emulator reports success")
        common_checks(h, r, n)
        check(r["traffic_indications"] == 0, "Phase 2: no Traffic Indication (redirect off)")
        t = h.nhrp_counts()
        fwd = t["sent"]["resolution_request"]
        check(fwd >= n, "the hub forwarded %d Resolution Requests along its FIB" % fwd)
    finally:
        h.stop()


def phase3(d):
    n = 20
    h = start_hub(d, n, 3)
    try:
        rc, r = spokesim(d, "--spokes", n, *GOOD, "--traffic", "lan", "--rate", 400,
                         "--duration", 4, "--peer-offset", 1)
        check(rc == 0 and r["ok"], "the emulator reports success")
        common_checks(h, r, n)
        t = h.nhrp_counts()
        ti = t["sent"]["traffic_indication"]
        check(r["traffic_indications"] >= n and ti >= n,
              "redirect: the hub sent %d Traffic Indications, the spokes got %d" %
              (ti, r["traffic_indications"]))
        unknown = t["dropped"].get("redirect_unknown_source", 0)
        check(unknown == 0, "no redirect dropped for an unknown source (%d)" % unknown)
        fwd = t["sent"]["resolution_request"]
        check(fwd >= n, "the hub forwarded %d Resolution Requests along its FIB" % fwd)
    finally:
        h.stop()


def main():
    which = sys.argv[1]
    e2e.run_scenario("nhrp-routes-" + which, {"phase2": phase2, "phase3": phase3}[which])


if __name__ == "__main__":
    main()
