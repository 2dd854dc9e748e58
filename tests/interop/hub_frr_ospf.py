#!/usr/bin/python3
"""Interop: OSPF point-to-multipoint over the overlay (issue 12 parts 5 and 6): real FRR 8.4
spokes in qemu guests run OSPF with the hub's FRR, whose routes reach our hub's FIB.
tests/interop/hub_frr.py's rig (our hub on the bridge, GRE key 42, spokes without `ip nhrp
shortcut`) with `rig --ospf`: each spokeN has a LAN 192.168.N.0/24 (dummy lan0, 192.168.N.1)
and runs config/examples/frr/ospfd-spoke.conf (point-to-multipoint on gre1, its /32 overlay
address and its LAN in area 0); its hellos to 224.0.0.5 reach the hub through nhrpd's
multicast map (`ip nhrp map multicast 198.51.100.1`, NFLOG). The hub gets `routing.interfaces`
(dmvpn-tun0, `unnumbered: true`) and `routing.fpm`; scripts/frr-hub starts zebra (FPM on) and
ospfd in the rig's namespace with config/examples/frr/ospfd.conf, its addresses turned to the
rig's overlay (router-id 10.255.0.1, network 10.255.0.0/24, no hub LAN).

Asserts:
  - every spoke registers (hub_frr.check_registered);
  - the hub's ospfd has every spoke Full on dmvpn-tun0, network type point-to-multipoint, and
    every spoke has the hub Full on gre1: the spokes' hellos crossed the hub's workers and were
    punted to the kernel interface, the hub's ospfd's multicast was replicated to the spokes;
  - the hub's counters say so (multicast punted to the kernel, multicast from the kernel,
    multicast copies sent) and the bridge capture shows OSPF hellos (IP protocol 89 to
    224.0.0.5) in GRE both ways: spoke -> hub and hub -> every spoke;
  - `dmvpnctl show ip route --json` lists 192.168.N.0/24 code O, protocol ospf, source fpm,
    next hop the spoke's overlay address resolved to its NBMA address;
  - the spokes learn each other's LAN from OSPF through the hub (10.255.0.1);
  - LAN to LAN: spoke2 pings 192.168.3.1 from 192.168.2.1 and back; the capture shows the
    echoes crossing the hub (GRE spoke2 -> hub, hub -> spoke3);
  - spoke3's lan0 goes down: 192.168.3.0/24 leaves the hub's FIB (192.168.2.0/24 stays); up
    again: it comes back; spoke2 removes its `network 192.168.2.0/24`: it leaves the FIB.
On failure: hub_frr's diagnostics plus FRR's logs (the hub's, the spokes' ospfd and nhrpd).
Needs root, qemu (exit 77 without), build/dmvpn-hub, Debian's frr. Own namespace and run
directory (dmvpn-hubospf, /run/dmvpn-hubospf). About 2-4 minutes with the image built.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("DMVPN_HUBFRR_NS", "dmvpn-hubospf")
os.environ.setdefault("DMVPN_HUBFRR_RUN", "/run/dmvpn-hubospf")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import hub_frr as hf  # noqa: E402
import hub_routing as hr  # noqa: E402

check, step, vtysh, guest_sh, wait_for = hf.check, hf.step, hf.vtysh, hf.guest_sh, hf.wait_for
fib, hub_vtysh, lan = hr.fib, hr.hub_vtysh, hr.lan
HUB_NBMA, HUB_OVL = hf.HUB_NBMA, hf.HUB_OVL
ALL_SPF = "224.0.0.5"
OSPF_PROTO = 89


def setup(work):
    return hr.hub_config(work, "      unnumbered: true\n"), ["--ospf", "--no-shortcut"]


def checks(hub, cap):
    # ospfd.conf with the rig's overlay (10.255.0.0/24, hub 10.255.0.1) and no hub LAN.
    conf = hr.example_for_rig("ospfd.conf", (
        ("ospf router-id 10.0.0.1", f"ospf router-id {HUB_OVL}"),
        ("network 10.0.0.0/16 area 0", "network 10.255.0.0/24 area 0"),
        (" network 192.168.100.0/24 area 0\n", "")), cap.parent)
    hr.with_hub_frr(hub, "ospfd", conf, lambda: ospf_checks(hub, cap),
                    on_failure=("show ip ospf interface", "show ip ospf neighbor",
                                "show ip ospf database", "show ip route"))


def hub_full():
    """The hub's ospfd neighbours, when every spoke is Full on dmvpn-tun0; else None."""
    try:
        n = json.loads(hub_vtysh("show ip ospf neighbor json")).get("neighbors", {})
    except ValueError:
        return None

    def full(ovl):
        return any(x.get("state", x.get("nbrState", "")).startswith("Full") and
                   x.get("address", x.get("ifaceAddress")) == ovl for x in n.get(ovl, []))
    return n if all(full(ovl) for _, ovl in hf.SPOKES.values()) else None


def ospf_checks(hub, cap):
    if not hf.check_registered(hub):
        return
    step("registered")
    out = subprocess.run(["ip", "netns", "exec", hf.NS, "ip", "-4", "-o", "addr", "show", "dev",
                          hf.KERNEL_IFACE], capture_output=True, text=True).stdout
    check(f"{HUB_OVL}/32" in out, f"{hf.KERNEL_IFACE} is unnumbered: {HUB_OVL}/32", out)

    t = time.time()
    nbrs = wait_for(hub_full, 120, 2)
    step(f"OSPF: {time.time() - t:.0f} s to Full")
    check(nbrs is not None, "the hub's ospfd: every spoke Full on dmvpn-tun0 (hellos both ways "
                            "through the hub's workers and its kernel interface)",
          hub_vtysh("show ip ospf neighbor"))
    iface = hub_vtysh("show ip ospf interface dmvpn-tun0")
    check("POINTOMULTIPOINT" in iface, "the hub's dmvpn-tun0: network type point-to-multipoint",
          iface)
    for spoke in hf.SPOKES:
        out = vtysh(spoke, "show ip ospf neighbor")
        check(any(l.split()[:1] == [HUB_OVL] and "Full" in l for l in out.splitlines()),
              f"{spoke}: OSPF neighbour {HUB_OVL} Full", out)
        out = vtysh(spoke, "show ip ospf interface gre1")
        check("POINTOMULTIPOINT" in out, f"{spoke}: gre1 point-to-multipoint", out)
    if not nbrs:
        return

    if not hr.lans_in_fib(hub, "Full", lambda r: r["code"] == "O" and r["protocol"] == "ospf",
                          "O (ospf)"):
        return

    # The multicast that made it: counters and the bridge capture.
    stats = hub.ctl_json("show", "stats")
    exc = next((e for e in stats["exception"] if e["interface"] == hf.KERNEL_IFACE), {})
    ctl = stats["control"]
    print(f"hub: exception {json.dumps(exc)}; multicast_copies {ctl['multicast_copies']}, "
          f"multicast_link_local {ctl['multicast_link_local']}, punts {json.dumps(stats['punts'])}",
          flush=True)
    check(exc.get("to_kernel", 0) > 0 and exc.get("from_kernel_multicast", 0) > 0 and
          ctl["multicast_copies"] >= len(hf.SPOKES),
          "hub counters: packets to the kernel interface, multicast from it, copies to spokes",
          json.dumps(stats["exception"]))
    pk = hf.read_capture(cap)
    for spoke, (nbma, ovl) in hf.SPOKES.items():
        check(any(p[:4] == (nbma, HUB_NBMA, "ip", (ovl, ALL_SPF, OSPF_PROTO)) for p in pk),
              f"capture: {spoke}'s OSPF hello {ovl} -> {ALL_SPF} in GRE to the hub "
              "(nhrpd's multicast map)")
        check(any(p[:4] == (HUB_NBMA, nbma, "ip", (HUB_OVL, ALL_SPF, OSPF_PROTO)) for p in pk),
              f"capture: the hub's OSPF hello {HUB_OVL} -> {ALL_SPF} replicated in GRE to "
              f"{spoke} ({nbma})")

    # The spokes learn each other's LAN through the hub (the hub's flooding may still be on its
    # way: OSPF retransmits an unacknowledged update after 5 s).
    def ospf_route(spoke, prefix):
        out = vtysh(spoke, f"show ip route {prefix}")
        return out if "ospf" in out and HUB_OVL in out else None
    for a, b in (("spoke2", "spoke3"), ("spoke3", "spoke2")):
        t = time.time()
        got = wait_for(lambda: ospf_route(a, lan(b)), 30, 1)
        check(got is not None, f"{a}: {lan(b)} from OSPF via {HUB_OVL} ({time.time() - t:.0f} s)",
              vtysh(a, f"show ip route {lan(b)}"))

    # LAN to LAN through the hub's workers (spokes without shortcut: always via the hub).
    hr.lan_to_lan(cap)

    # Withdrawal: spoke3's LAN interface goes down, then up again.
    rc, out = guest_sh("spoke3", "ip link set lan0 down")
    hr.withdrawn(hub, "spoke3", "spoke3's lan0 down", out)
    rc, out = guest_sh("spoke3", "ip link set lan0 up")
    t = time.time()
    back = wait_for(lambda: (fib(hub).get(lan("spoke3")) or {}).get("state") == "complete", 60, 1)
    check(back, f"spoke3's lan0 up: {lan('spoke3')} back in the hub's FIB "
                f"({time.time() - t:.0f} s)", out + hub.ctl("show", "ip", "route")[1])
    # Withdrawal: spoke2 removes its LAN's network statement.
    out = vtysh("spoke2", "configure terminal", "router ospf",
                f"no network {lan('spoke2')} area 0")
    hr.withdrawn(hub, "spoke2", f"spoke2's `no network {lan('spoke2')}`", out)
    check(hub.alive(), "the hub is still running")


def main():
    return hr.main("hub_frr_ospf", "ospfd", checks, setup)


if __name__ == "__main__":
    sys.exit(main())
