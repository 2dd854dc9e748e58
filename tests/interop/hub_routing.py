"""What the routing interop tests share (tests/interop/hub_frr_bgp.py, hub_frr_ospf.py): the rig
of tests/interop/hub_frr.py with our hub on its kernel interface and FPM, scripts/frr-hub running
the hub's FRR in the rig's namespace from an example of config/examples/frr/ turned to the rig's
overlay, spokes with a LAN 192.168.N.0/24 each, and the checks every routing protocol makes:
the LANs in the hub's FIB, LAN to LAN through the hub's workers."""

import json
import subprocess
import time
from pathlib import Path

import hub_frr as hf

FRR_HUB = hf.SOURCE / "scripts" / "frr-hub"
EXAMPLES = hf.SOURCE / "config" / "examples" / "frr"
FRR_RUN = hf.RUN.parent / (hf.RUN.name + "-frr")
check, step, vtysh, guest_sh, wait_for = hf.check, hf.step, hf.vtysh, hf.guest_sh, hf.wait_for


def lan(spoke):
    return f"192.168.{spoke[len('spoke'):]}.0/24"


def example_for_rig(name, replacements, work):
    """config/examples/frr/NAME with each (old, new) replaced (every old must be there),
    written to WORK/NAME; its path."""
    text = (EXAMPLES / name).read_text()
    for old, new in replacements:
        assert old in text, f"{name} no longer holds {old!r}"
        text = text.replace(old, new)
    path = Path(work) / name
    path.write_text(text)
    return path


def bgpd_for_rig(name, work, more=()):
    """config/examples/frr/NAME (a bgpd example) with the rig's overlay (listen range
    10.255.0.0/24, router-id the hub's 10.255.0.1), no hub LAN, and the (old, new) of more."""
    return example_for_rig(name, (
        ("bgp listen range 10.0.0.0/16", "bgp listen range 10.255.0.0/24"),
        ("bgp router-id 10.0.0.1", f"bgp router-id {hf.HUB_OVL}"),
        ("  network 192.168.100.0/24\n", ""), *more), work)


def hub_config(work, iface_extra=""):
    """The rig's hub (hub_frr.CONFIG) with a kernel interface for its tunnel (plus the YAML
    lines iface_extra) and FPM."""
    config = Path(work) / "hub.yaml"
    config.write_text(hf.CONFIG.read_text() + "\nrouting:\n  interfaces:\n    - tunnel: dmvpn\n"
                      f"      name: {hf.KERNEL_IFACE}\n{iface_extra}"
                      "  fpm: {settle-seconds: 3}\n")
    return config


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


def with_hub_frr(hub, daemon, conf, checks, on_failure=()):
    """frr-hub start --DAEMON CONF in the rig's namespace, then checks(); on failure the vtysh
    commands on_failure and the logs (the hub's FRR, the spokes' DAEMON); frr-hub stop."""
    rc, out = frr_hub("start", f"--{daemon}", str(conf), "--run-dir", str(FRR_RUN),
                      "--netns", hf.NS)
    check(rc == 0, f"scripts/frr-hub started zebra (FPM) and {daemon} in the rig's namespace", out)
    try:
        if rc == 0:
            checks()
    finally:
        if hf.failures:
            if on_failure:
                print(hub_vtysh(*on_failure), flush=True)
            for log in [FRR_RUN / "frr.log"] + sorted(hf.RUN.glob(f"guests/*/logs/{daemon}.log")):
                if log.exists():
                    print(f"----- {log} (last 60 lines) -----\n" + "\n".join(
                        log.read_text(errors="replace").splitlines()[-60:]), flush=True)
        frr_hub("stop", "--run-dir", str(FRR_RUN))


def bgp_established():
    """Waits for every spoke's BGP session with the hub's bgpd to be Established (dynamic
    neighbours of its listen range, carried by the hub's workers and its kernel interface);
    checks the hub's and the spokes' `show bgp summary`. True when all are up."""
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
        check(any(l.split()[:1] == [hf.HUB_OVL] and l.split()[-2:-1] != ["Active"]
                  and l.split()[-2].isdigit() for l in out.splitlines()),
              f"{spoke}: BGP with {hf.HUB_OVL} up (prefixes received)", out)
    return peers is not None


def bgp_lans_in_fib(hub):
    """The spokes register, their BGP sessions come up, their LANs reach the hub's FIB as B
    routes. Checked; False when nothing after it can work."""
    if not hf.check_registered(hub):
        return False
    step("registered")
    if not bgp_established():
        return False
    # FPM's netlink says only RTPROT_BGP, iBGP or eBGP alike: the hub files both as ebgp
    # (distance 20; control/rib/fpm_routes.cpp), although these sessions are iBGP.
    return lans_in_fib(hub, "Established",
                       lambda r: r["code"] == "B" and r["protocol"] in ("ebgp", "ibgp"), "B (bgp)")


def lans_in_fib(hub, after, row_ok, what):
    """Waits for every spoke's LAN in the hub's FIB, resolved; checks each row with
    row_ok(row, nbma, overlay), `what` naming the expectation. True when all are there."""
    def all_in_fib():
        f = fib(hub)
        rows = [f.get(lan(s)) for s in hf.SPOKES]
        return rows if all(r and r["state"] != "incomplete" for r in rows) else None
    t = time.time()
    rows = wait_for(all_in_fib, 60, 1)
    step(f"FIB: spoke LANs {time.time() - t:.0f} s after {after}")
    print(hub.ctl("show", "ip", "route")[1], flush=True)
    for spoke, (nbma, ovl) in hf.SPOKES.items():
        r = fib(hub).get(lan(spoke))
        check(r is not None and r["source"] == "fpm" and r["next_hop"] == ovl and
              r["nbma"] == nbma and r["state"] == "complete" and row_ok(r),
              f"hub: show ip route --json: {lan(spoke)} {what} from fpm via {ovl}, NBMA {nbma}, "
              f"complete (protocol {r and r['protocol']}, distance {r and r['distance']})",
              json.dumps(r))
    return rows is not None


def lan_to_lan(cap):
    """spoke2's LAN pings spoke3's and back; the bridge capture shows the echoes crossing the
    hub (GRE spoke2 -> hub, hub -> spoke3) and nothing straight between the spokes."""
    for a, b in (("spoke2", "spoke3"), ("spoke3", "spoke2")):
        src, dst = lan(a).replace(".0/24", ".1"), lan(b).replace(".0/24", ".1")
        rc, out = guest_sh(a, f"ping -n -c 5 -i 0.5 -W 3 -I {src} {dst}")
        check(rc == 0, f"{a}'s LAN {src} pings {b}'s LAN {dst}", out)
    time.sleep(1.0)
    pk = hf.read_capture(cap)
    s2n, s3n = hf.SPOKES["spoke2"][0], hf.SPOKES["spoke3"][0]
    inner = ("192.168.2.1", "192.168.3.1", 1)
    check(any(p[:4] == (s2n, hf.HUB_NBMA, "ip", inner) for p in pk) and
          any(p[:4] == (hf.HUB_NBMA, s3n, "ip", inner) for p in pk),
          "capture: 192.168.2.1 -> 192.168.3.1 crossed the hub (GRE .2 -> .1, .1 -> .3)")
    check(not any(p[0] == s2n and p[1] == s3n for p in pk),
          "capture: nothing straight spoke2 -> spoke3 (no shortcut configured)")
    return pk


def withdrawn(hub, spoke, why, detail=""):
    """Waits for SPOKE's LAN to leave the hub's FIB after `why`; the other spokes' LANs stay.
    Checked."""
    t = time.time()
    gone = wait_for(lambda: lan(spoke) not in fib(hub), 60, 1)
    check(gone, f"{why}: {lan(spoke)} left the hub's FIB ({time.time() - t:.0f} s)",
          detail + hub.ctl("show", "ip", "route")[1])
    others = [lan(s) for s in hf.SPOKES if s != spoke]
    check(all(p in fib(hub) for p in others),
          f"{', '.join(others)} {'stays' if len(others) == 1 else 'stay'} in the FIB")


def main(name, daemon, checks, setup, boot_s=240, limit_s=600):
    """Two FRR spokes, the preflight, FRR's DAEMON on this host, then hub_frr.run_rig."""
    hf.plan_spokes(2)
    rc = hf.preflight(name)
    if rc is not None:
        return rc
    if not Path(f"/usr/lib/frr/{daemon}").exists():
        print(f"{name}: FAIL: Debian's frr is not installed on this host")
        return 1
    frr_hub("stop", "--run-dir", str(FRR_RUN))  # leftovers of a killed run
    return hf.run_rig(checks, log_level="info", setup=setup, boot_s=boot_s, limit_s=limit_s)
