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

import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("DMVPN_HUBFRR_NS", "dmvpn-hubbgp")
os.environ.setdefault("DMVPN_HUBFRR_RUN", "/run/dmvpn-hubbgp")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import hub_frr as hf  # noqa: E402

check, step, vtysh, guest_sh, wait_for = hf.check, hf.step, hf.vtysh, hf.guest_sh, hf.wait_for
HUB_NBMA, HUB_OVL = hf.HUB_NBMA, hf.HUB_OVL
ASN = 65000
FRR_HUB = hf.SOURCE / "scripts" / "frr-hub"
EXAMPLE = hf.SOURCE / "config" / "examples" / "frr" / "bgpd-phase2.conf"
FRR_RUN = hf.RUN.parent / (hf.RUN.name + "-frr")
BOOT_S = 240
LIMIT_S = 600  # meson's timeout is above it


def lan(spoke):
    return f"192.168.{spoke[len('spoke'):]}.0/24"


def hub_bgpd(work):
    """bgpd-phase2.conf with the rig's overlay (10.255.0.0/24, hub 10.255.0.1) and no hub LAN."""
    text = EXAMPLE.read_text()
    for old, new in (("bgp listen range 10.0.0.0/16", "bgp listen range 10.255.0.0/24"),
                     ("bgp router-id 10.0.0.1", f"bgp router-id {HUB_OVL}"),
                     ("  network 192.168.100.0/24\n", "")):
        assert old in text, old
        text = text.replace(old, new)
    path = work / "bgpd.conf"
    path.write_text(text)
    return path


def frr_hub(*args, timeout=60):
    r = subprocess.run([str(FRR_HUB), *args], capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def hub_vtysh(*cmds):
    args = []
    for c in cmds:
        args += ["-c", c]
    return frr_hub("vtysh", "--run-dir", str(FRR_RUN), "--netns", hf.NS, "--", *args)[1]


def fib(hub):
    return {r["prefix"]: r for r in hub.ctl_json("show", "ip", "route")["routes"]}


def setup(work):
    config = work / "hub.yaml"
    config.write_text(hf.CONFIG.read_text() + "\nrouting:\n  interfaces:\n    - tunnel: dmvpn\n"
                      f"      name: {hf.KERNEL_IFACE}\n  fpm: {{settle-seconds: 3}}\n")
    return config, ["--bgp", str(ASN), "--no-shortcut"]


def checks(hub, cap):
    work = cap.parent
    rc, out = frr_hub("start", "--bgpd", str(hub_bgpd(work)), "--run-dir", str(FRR_RUN),
                      "--netns", hf.NS)
    check(rc == 0, "scripts/frr-hub started zebra (FPM) and bgpd in the rig's namespace", out)
    try:
        if rc == 0:
            bgp_checks(hub, cap)
    finally:
        if hf.failures:
            for log in [FRR_RUN / "frr.log"] + sorted(hf.RUN.glob("guests/*/logs/bgpd.log")):
                if log.exists():
                    print(f"----- {log} (last 60 lines) -----\n" + "\n".join(
                        log.read_text(errors="replace").splitlines()[-60:]), flush=True)
        frr_hub("stop", "--run-dir", str(FRR_RUN))


def bgp_checks(hub, cap):
    if not hf.check_registered(hub):
        return
    step("registered")

    def established():
        s = hub_vtysh("show bgp ipv4 unicast summary json")
        try:
            peers = json.loads(s).get("peers", {})
        except ValueError:
            return None
        ok = all(peers.get(ovl, {}).get("state") == "Established" for _, ovl in hf.SPOKES.values())
        return peers if ok else None
    t = time.time()
    peers = wait_for(established, 120, 2)
    step(f"BGP: {time.time() - t:.0f} s to Established")
    check(peers is not None, "the hub's bgpd: every spoke a dynamic neighbour, Established "
                             "(over the hub's kernel interface and workers)",
          hub_vtysh("show bgp ipv4 unicast summary"))
    for spoke in hf.SPOKES:
        out = vtysh(spoke, "show bgp ipv4 unicast summary")
        check(any(l.split()[:1] == [HUB_OVL] and l.split()[-2:-1] != ["Active"]
                  and l.split()[-2].isdigit() for l in out.splitlines()),
              f"{spoke}: BGP with {HUB_OVL} up (prefixes received)", out)
    if not peers:
        return

    def all_in_fib():
        f = fib(hub)
        rows = [f.get(lan(s)) for s in hf.SPOKES]
        return rows if all(r and r["state"] != "incomplete" for r in rows) else None
    t = time.time()
    rows = wait_for(all_in_fib, 60, 1)
    step(f"FIB: spoke LANs {time.time() - t:.0f} s after Established")
    print(hub.ctl("show", "ip", "route")[1], flush=True)
    for spoke, (nbma, ovl) in hf.SPOKES.items():
        r = fib(hub).get(lan(spoke))
        # FPM's netlink says only RTPROT_BGP, iBGP or eBGP alike: the hub files both as
        # ebgp (distance 20; control/rib/fpm_routes.cpp), although these sessions are iBGP.
        check(r is not None and r["code"] == "B" and r["protocol"] in ("ebgp", "ibgp") and
              r["source"] == "fpm" and r["next_hop"] == ovl and r["nbma"] == nbma and
              r["state"] == "complete",
              f"hub: show ip route --json: {lan(spoke)} B (bgp from fpm) via {ovl}, NBMA {nbma}, "
              f"complete (protocol {r and r['protocol']}, distance {r and r['distance']})",
              json.dumps(r))

    # LAN to LAN through the hub's workers (spokes without shortcut: always via the hub).
    for a, b in (("spoke2", "spoke3"), ("spoke3", "spoke2")):
        src, dst = lan(a).replace(".0/24", ".1"), lan(b).replace(".0/24", ".1")
        rc, out = guest_sh(a, f"ping -n -c 5 -i 0.5 -W 3 -I {src} {dst}")
        check(rc == 0, f"{a}'s LAN {src} pings {b}'s LAN {dst}", out)
    time.sleep(1.0)
    pk = hf.read_capture(cap)
    s2n, s3n = hf.SPOKES["spoke2"][0], hf.SPOKES["spoke3"][0]
    inner = ("192.168.2.1", "192.168.3.1", 1)
    check(any(p[:4] == (s2n, HUB_NBMA, "ip", inner) for p in pk) and
          any(p[:4] == (HUB_NBMA, s3n, "ip", inner) for p in pk),
          "capture: 192.168.2.1 -> 192.168.3.1 crossed the hub (GRE .2 -> .1, .1 -> .3)")
    check(not any(p[0] == s2n and p[1] == s3n for p in pk),
          "capture: nothing straight spoke2 -> spoke3 (no shortcut configured)")

    # Withdrawal: spoke3 stops announcing its LAN.
    out = vtysh("spoke3", "configure terminal", f"router bgp {ASN}", "address-family ipv4 unicast",
                f"no network {lan('spoke3')}")
    t = time.time()
    gone = wait_for(lambda: lan("spoke3") not in fib(hub), 60, 1)
    check(gone, f"spoke3 withdrew {lan('spoke3')}: it left the hub's FIB "
                f"({time.time() - t:.0f} s)", out + hub.ctl("show", "ip", "route")[1])
    check(lan("spoke2") in fib(hub), f"{lan('spoke2')} stays in the FIB")
    stats = hub.ctl("show", "stats")[1]
    print("\n".join(l for l in stats.splitlines() if "xception" in l or "FPM" in l or "fpm" in l),
          flush=True)
    check(hub.alive(), "the hub is still running")


def main():
    hf.plan_spokes(2)
    rc = hf.preflight("hub_frr_bgp")
    if rc is not None:
        return rc
    if not Path("/usr/lib/frr/bgpd").exists():
        print("hub_frr_bgp: FAIL: Debian's frr is not installed on this host")
        return 1
    frr_hub("stop", "--run-dir", str(FRR_RUN))  # leftovers of a killed run
    return hf.run_rig(checks, log_level="info", setup=setup, boot_s=BOOT_S, limit_s=LIMIT_S)


if __name__ == "__main__":
    sys.exit(main())
