#!/usr/bin/python3
"""Interop: routing over the overlay (issue 12 part 6): real FRR 8.4 spokes in qemu guests run
BGP with the hub's FRR, whose routes reach our hub's FIB. tests/interop/hub_frr.py's rig (our
hub on the bridge, GRE key 42, spokes without `ip nhrp shortcut`) with `rig --bgp 65000`: each
spokeN has a LAN 192.168.N.0/24 (dummy lan0, 192.168.N.1) that its bgpd announces to the NHS's
overlay address 10.255.0.1. The hub gets `routing.interfaces` (dmvpn-tun0 on the tunnel, the
exception path) and `routing.fpm`; scripts/frr-hub starts zebra (FPM on) and bgpd in the rig's
namespace with config/examples/frr/bgpd-phase2.conf, its addresses turned to the rig's overlay
(`bgp listen range 10.255.0.0/24`, router-id 10.255.0.1).

Asserts:
  - every spoke registers (hub_frr.check_registered);
  - every spoke's BGP session with the hub is Established (the spokes' `show bgp summary`,
    the hub's `show bgp summary`: dynamic neighbours from the listen range), carried by the
    hub's workers and its kernel interface;
  - the hub's FRR has each spoke's LAN, and `dmvpnctl show ip route --json` lists
    192.168.N.0/24 code B (protocol bgp as FPM says it), source fpm, next hop the spoke's overlay address
    resolved to its NBMA address;
  - LAN to LAN: spoke2 pings 192.168.3.1 from 192.168.2.1 and spoke3 the other way; the
    bridge capture shows the echoes crossing the hub (GRE spoke2 -> hub and hub -> spoke3
    with the LAN addresses inside);
  - spoke3 withdraws its LAN (`no network`): the prefix leaves the hub's FIB.
On failure: hub_frr's diagnostics plus FRR's logs (the hub's and the spokes' bgpd).
Needs root, qemu (exit 77 without), build/dmvpn-hub, Debian's frr. Own namespace and run
directory (dmvpn-hubbgp, /run/dmvpn-hubbgp). About 2-4 minutes with the image built.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("DMVPN_HUBFRR_NS", "dmvpn-hubbgp")
os.environ.setdefault("DMVPN_HUBFRR_RUN", "/run/dmvpn-hubbgp")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import hub_frr as hf  # noqa: E402
import hub_routing as hr  # noqa: E402

check, vtysh = hf.check, hf.vtysh
lan = hr.lan
ASN = 65000


def setup(work):
    return hr.hub_config(work), ["--bgp", str(ASN), "--no-shortcut"]


def checks(hub, cap):
    # bgpd-phase2.conf with the rig's overlay (10.255.0.0/24, hub 10.255.0.1) and no hub LAN.
    conf = hr.bgpd_for_rig("bgpd-phase2.conf", cap.parent)
    hr.with_hub_frr(hub, "bgpd", conf, lambda: bgp_checks(hub, cap))


def bgp_checks(hub, cap):
    # Registered, BGP Established, the spokes' LANs in the hub's FIB as B routes.
    if not hr.bgp_lans_in_fib(hub):
        return

    # LAN to LAN through the hub's workers (spokes without shortcut: always via the hub).
    hr.lan_to_lan(cap)

    # Withdrawal: spoke3 stops announcing its LAN.
    out = vtysh("spoke3", "configure terminal", f"router bgp {ASN}", "address-family ipv4 unicast",
                f"no network {lan('spoke3')}")
    hr.withdrawn(hub, "spoke3", f"spoke3 withdrew {lan('spoke3')}", out)
    stats = hub.ctl("show", "stats")[1]
    print("\n".join(l for l in stats.splitlines() if "xception" in l or "FPM" in l or "fpm" in l),
          flush=True)
    check(hub.alive(), "the hub is still running")


def main():
    return hr.main("hub_frr_bgp", "bgpd", checks, setup)


if __name__ == "__main__":
    sys.exit(main())
