#!/usr/bin/python3
"""Interop: our DPDK hub (config/examples/interop.yaml on a net_tap port) with real FRR 8.4
nhrpd spokes in qemu guests (scripts/interop/rig, `--hub none`), Phase 3, GRE key 42, no IPsec.

The hub runs in the rig's namespace with the kernel side of its TAP on the rig's bridge. Asserts:
  - every spoke's `show ip nhrp nhs` shows the hub (10.255.0.1) registered;
  - `dmvpnctl show nhrp` lists each spoke with its NBMA address, dynamic and registered (FRR
    registers with `no-unique`: no unique flag) and no NAT;
  - a spoke pings the hub's overlay address (answered by the hub's control lcore);
  - with --kernel-interface: the hub's kernel interface dmvpn-tun0 carries 10.255.0.1/24 and the
    rig namespace's kernel pings every spoke through it (the exception path);
  - spoke-to-spoke ping works, and the capture on the bridge shows its first packets crossing the
    hub (GRE spoke2 -> hub and hub -> spoke3 carrying the same inner ICMP);
  - the hub sends a Traffic Indication, the spoke resolves (Resolution Request forwarded by the
    hub to the other spoke, Resolution Reply back) and installs a shortcut: `show ip nhrp
    shortcut` names 10.255.0.3/32 and `show ip nhrp cache` holds 10.255.0.3 at 198.51.100.3;
    later pings go spoke to spoke directly (GRE 198.51.100.2 -> 198.51.100.3 on the bridge).
On failure prints the hub's log and stats, the guests' consoles and their nhrpd logs. Cleans up
the guests, the hub, the namespace. Exit 77 (meson's skip) when qemu-system-x86_64 is missing.

  --keep-capture FILE   also write the bridge capture (ARP and IPv4 only) to FILE as pcapng
  --spokes N            2 (default) to 5 FRR spokes; every one must register
  --kernel-interface    the hub also gets `routing.interfaces` (dmvpn-tun0, the exception
                        path): the rig namespace's kernel pings every spoke's overlay address
                        through it (GRE out of the hub's workers, the echo reply punted back)
  DMVPN_HUBFRR_CONFIG   another hub topology than config/examples/interop.yaml (with a GRE key
                        other than 42 the spokes never register: the failure output, ~3 min)

The rig runs in its own namespace and run directory (dmvpn-hubfrr, /run/dmvpn-hubfrr) so that a
rig someone started by hand, or the FRR-hub interop test, is left alone.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import checks  # noqa: E402
import hubnet  # noqa: E402

SOURCE = hubnet.SOURCE
RIG = SOURCE / "scripts" / "interop" / "rig"
NS = os.environ.get("DMVPN_HUBFRR_NS", "dmvpn-hubfrr")
BRIDGE = "br-hubfrr"
RUN = Path(os.environ.get("DMVPN_HUBFRR_RUN", "/run/dmvpn-hubfrr"))
ENV = dict(os.environ, DMVPN_INTEROP_NS=NS, DMVPN_INTEROP_BRIDGE=BRIDGE,
           DMVPN_INTEROP_RUN=str(RUN))
HUB_NBMA, HUB_OVL = "198.51.100.1", "10.255.0.1"
SPOKES = {}  # name -> (NBMA, overlay): the rig's spokeN is .N in both /24s


def plan_spokes(n):
    SPOKES.clear()
    for k in range(2, 2 + n):
        SPOKES[f"spoke{k}"] = (f"198.51.100.{k}", f"10.255.0.{k}")
# DMVPN_HUBFRR_CONFIG: another hub topology (a net_tap port named like the example's).
CONFIG = Path(os.environ.get("DMVPN_HUBFRR_CONFIG", hubnet.EXAMPLE))
HARD_LIMIT_S = 600  # the whole run, image present; meson's timeout is above it

check = checks.Checks()
failures = check.failures
T0 = time.time()


def step(msg):
    print(f"hub_frr [{time.time() - T0:5.0f} s] {msg}", flush=True)


rig = checks.rig_runner(RIG, ENV)


def vtysh(guest, *cmds):
    return rig("vtysh", guest, *cmds, "--timeout", "30", timeout=60, check_rc=False).stdout


def guest_sh(guest, script, timeout=60):
    r = rig("sh", guest, script, "--timeout", str(timeout), timeout=timeout + 30, check_rc=False)
    return r.returncode, r.stdout


def wait_for(pred, seconds, interval=1.0):
    deadline = time.time() + seconds
    while True:
        v = pred()
        if v or time.time() >= deadline:
            return v
        time.sleep(interval)


# ----------------------------------------------------------------------------- the capture


def nhrp_type(payload):
    """NHRP packet type (fixed header byte 17), or None."""
    return payload[17] if len(payload) >= 20 else None


def read_capture(path):
    """The bridge capture as a list of (outer src, outer dst, kind, detail) for GRE packets:
    kind 'nhrp' (detail = NHRP type) or 'ip' (detail = (inner src, inner dst, inner proto))."""
    from scapy.all import GRE, IP, PcapReader  # noqa: E402 (scapy is slow to import)
    out = []
    try:
        with PcapReader(str(path)) as rd:
            for pkt in rd:
                if IP not in pkt or GRE not in pkt:
                    continue
                ip, gre = pkt[IP], pkt[GRE]
                payload = bytes(gre.payload)
                if gre.proto == 0x2001:
                    out.append((ip.src, ip.dst, "nhrp", nhrp_type(payload), gre.key))
                elif gre.proto == 0x0800 and IP in gre.payload:
                    inner = gre.payload[IP]
                    out.append((ip.src, ip.dst, "ip", (inner.src, inner.dst, inner.proto), gre.key))
    except Exception as e:  # a record tcpdump is still writing
        print(f"hub_frr: capture read stopped: {e}")
    return out


def keep_capture(src, dst):
    """ARP and IPv4 only (no guest IPv6 noise), as pcapng."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["tshark", "-r", str(src), "-Y", "arp or ip", "-F", "pcapng", "-w",
                        str(dst)], capture_output=True, text=True, timeout=120)
    step(f"capture kept in {dst} ({dst.stat().st_size if dst.exists() else 0} bytes) "
         f"{r.stderr.strip()}")


# ----------------------------------------------------------------------------- failure output


def dump_diagnostics(hub):
    if hub is not None:
        print("----- hub log -----\n" + hub.log()[-20000:], flush=True)
        if hub.alive():
            for cmd in (("show", "stats"), ("show", "nhrp", "detail"), ("show", "nhrp", "traffic"),
                        ("show", "arp")):
                print(f"----- dmvpnctl {' '.join(cmd)} -----\n{hub.ctl(*cmd)[1]}", flush=True)
    for console in sorted(RUN.glob("*.console")):
        print(f"----- {console} (last 100 lines) -----")
        print("\n".join(console.read_text(errors="replace").splitlines()[-100:]), flush=True)
    for log in sorted(RUN.glob("guests/*/logs/nhrpd.log")):
        print(f"----- {log} (last 150 lines) -----")
        print("\n".join(log.read_text(errors="replace").splitlines()[-150:]), flush=True)


# ----------------------------------------------------------------------------- the run


def start_rig_and_hub(work, config=None, rig_args=(), log_level="warning", boot_s=300):
    """`rig up --hub none` (plus rig_args) in the background; the hub (on `config`, CONFIG by
    default) joins the bridge as soon as it exists, so it is there before the spokes' nhrpd
    sends its first Registration Request."""
    cap = work / "bridge.pcap"
    up = subprocess.Popen([str(RIG), "up", "--hub", "none", "--spokes", str(len(SPOKES)),
                           "--nhs-nbma", HUB_NBMA, "--nhs-overlay", HUB_OVL, "--key", "42",
                           "--holdtime", "60", "--network-id", "1", "--capture", str(cap),
                           "--capture-filter", "not ip6", "--timeout", str(boot_s), *rig_args],
                          env=ENV, stdout=open(work / "rig-up.log", "w"),
                          stderr=subprocess.STDOUT)
    bridge_up = wait_for(lambda: subprocess.run(["ip", "-n", NS, "link", "show", BRIDGE],
                                                capture_output=True).returncode == 0
                         or up.poll() is not None, 120, 0.2)
    if up.poll() is not None or not bridge_up:
        raise AssertionError("rig up ended before its bridge existed:\n" +
                             (work / "rig-up.log").read_text())
    hub = hubnet.Hub(NS, BRIDGE, work / "hub", config=config or CONFIG, log_level=log_level)
    hub.start()
    step(f"hub running in {NS} on {BRIDGE} (DPDK MAC {hub.mac}, kernel side "
         f"{hubnet.TAP_KERNEL_MAC})")
    return up, hub, cap


def check_registered(hub):
    """The spokes see the NHS up, the hub lists them (dynamic, registered, no NAT); False when
    some spoke did not register."""
    r = rig("wait-registered", "150", timeout=200, check_rc=False)
    step("wait-registered: " + (r.stdout + r.stderr).strip().splitlines()[-1:][0]
         if (r.stdout + r.stderr).strip() else "wait-registered")
    for spoke in SPOKES:
        out = vtysh(spoke, "show ip nhrp nhs")
        print(f"{spoke}# show ip nhrp nhs\n{out}", flush=True)
        check(any(l.split()[:1] == ["gre1"] and l.split()[-1] == HUB_OVL and HUB_NBMA in l.split()
                  for l in out.splitlines()),
              f"{spoke}: show ip nhrp nhs shows the hub {HUB_NBMA} / {HUB_OVL} up", out)
    rc, text = hub.ctl("show", "nhrp")
    print(f"dmvpnctl show nhrp\n{text}", flush=True)
    if failures:
        return False
    entries = hub.ctl_json("show", "nhrp")
    for spoke, (nbma, ovl) in SPOKES.items():
        e = next((e for e in entries if e["protocol"] == ovl + "/32"), None)
        check(e is not None and e["nbma"] == nbma and e["type"] == "dynamic"
              and "registered" in e["flags"] and "unique" not in e["flags"]
              and "nat" not in e["flags"],
              f"hub: {ovl}/32 at NBMA {nbma}, dynamic, registered, not unique, no NAT", json.dumps(e))
    rc, text = hub.ctl("show", "dmvpn")
    print(f"dmvpnctl show dmvpn\n{text}", flush=True)
    return not failures


def wait_shortcut(src, dst, seconds=60):
    """Pings from src to dst's overlay address (keeping the redirect coming) until src's nhrpd
    holds a shortcut dst/32 -> dst's NBMA address (its shortcut list and cache); checked."""
    d_nbma, d = SPOKES[dst]

    def shortcut_up():
        guest_sh(src, f"ping -n -c 2 -i 0.5 -W 2 {d}")
        sc = vtysh(src, "show ip nhrp shortcut")
        cache = vtysh(src, "show ip nhrp cache")
        ok = any(d + "/32" in l.split() for l in sc.splitlines()) and any(
            d in l.split() and d_nbma in l.split() for l in cache.splitlines())
        return (sc, cache) if ok else None

    got = wait_for(shortcut_up, seconds, 2)
    sc = vtysh(src, "show ip nhrp shortcut")
    cache = vtysh(src, "show ip nhrp cache")
    print(f"{src}# show ip nhrp shortcut\n{sc}\n{src}# show ip nhrp cache\n{cache}", flush=True)
    print(f"{dst}# show ip nhrp cache\n" + vtysh(dst, "show ip nhrp cache"), flush=True)
    return check(got is not None, f"{src} installed a shortcut {d}/32 -> NBMA {d_nbma}",
                 sc + cache)


def run_checks(hub, cap):
    # 1. Registration: the spokes see the NHS up, the hub lists them.
    if not check_registered(hub):
        return  # nothing below can work without registrations

    # 2. The hub's overlay address answers (control lcore, through the tunnel).
    rc, out = guest_sh("spoke2", f"ping -n -c 3 -i 0.5 -W 3 {HUB_OVL}")
    check(rc == 0, f"spoke2 pings the hub's overlay address {HUB_OVL}", out)

    # 3. Spoke to spoke: through the hub first, then the redirect makes a shortcut.
    s2_nbma, s2 = SPOKES["spoke2"]
    s3_nbma, s3 = SPOKES["spoke3"]
    rc, out = guest_sh("spoke2", f"ping -n -c 8 -i 0.5 -W 3 {s3}")
    print(f"spoke2$ ping {s3}\n{out}", flush=True)
    check(rc == 0, f"spoke2 pings spoke3 ({s3})", out)

    wait_shortcut("spoke2", "spoke3")

    # Once the shortcut exists, traffic goes straight between the spokes.
    rc, out = guest_sh("spoke2", f"ping -n -c 4 -i 0.5 -W 3 {s3}")
    check(rc == 0, f"spoke2 pings spoke3 over the shortcut", out)
    time.sleep(1.0)

    traffic = hub.ctl_json("show", "nhrp", "traffic")
    print("dmvpnctl show nhrp traffic --json\n" + json.dumps(traffic), flush=True)
    sent = traffic[0]["sent"]
    rcvd = traffic[0]["received"]
    check(sent.get("traffic_indication", 0) >= 1, "the hub sent Traffic Indications",
          json.dumps(traffic))
    check(rcvd.get("resolution_request", 0) >= 1
          and rcvd.get("registration_request", 0) >= len(SPOKES),
          "the hub received Registration and Resolution Requests", json.dumps(traffic))

    # 4. What the bridge saw.
    pk = read_capture(cap)
    step(f"capture: {len(pk)} GRE packets")

    def seen(src, dst, kind, detail=None):
        return any(p[0] == src and p[1] == dst and p[2] == kind and
                   (detail is None or p[3] == detail) and p[4] == 42 for p in pk)

    icmp = (s2, s3, 1)
    check(seen(s2_nbma, HUB_NBMA, "nhrp", 3) and seen(HUB_NBMA, s2_nbma, "nhrp", 4),
          "capture: Registration Request spoke2 -> hub and Reply hub -> spoke2 (GRE key 42)")
    check(seen(s2_nbma, HUB_NBMA, "ip", icmp) and seen(HUB_NBMA, s3_nbma, "ip", icmp),
          "capture: spoke2 -> spoke3 ICMP crossed the hub (GRE .2 -> .1, then .1 -> .3)")
    check(seen(HUB_NBMA, s2_nbma, "nhrp", 8) or seen(HUB_NBMA, s3_nbma, "nhrp", 8),
          "capture: the hub sent a Traffic Indication to a spoke")
    check(seen(HUB_NBMA, s3_nbma, "nhrp", 1) or seen(HUB_NBMA, s2_nbma, "nhrp", 1),
          "capture: the hub forwarded a Resolution Request to the spoke that owns the address")
    check(any(p[2] == "nhrp" and p[3] == 2 for p in pk), "capture: a Resolution Reply")
    check(seen(s2_nbma, s3_nbma, "ip", icmp),
          "capture: spoke2 -> spoke3 ICMP straight between the spokes after the shortcut")
    check(hub.alive(), "the hub is still running")


def preflight(name):
    """None when this machine can run the rig with our hub, else the exit status (77: skip)."""
    if shutil.which("qemu-system-x86_64") is None:
        print(f"{name}: SKIP: qemu-system-x86_64 is not installed (scripts/setup installs it)")
        return 77
    if os.geteuid() != 0:
        print(f"{name}: FAIL: needs root (network namespace, TAPs, image build)")
        return 1
    if not hubnet.HUB_BIN.exists():
        print(f"{name}: FAIL: {hubnet.HUB_BIN} is not built")
        return 1
    return None


def run_rig(checks, config=None, rig_args=(), keep=None, log_level="warning",
            limit_s=HARD_LIMIT_S, setup=None, boot_s=300):
    """The guest image, then the rig (`rig_args` added to hub_frr's) with our hub on `config`,
    then checks(hub, cap); diagnostics on failure; the hub, the guests and the namespace
    always go. setup(work), if given, runs first (files the hub and the rig need) and returns
    (config, rig_args). boot_s: how long the guests get to boot. Returns the exit status."""
    # meson's timeout sends SIGTERM; our own hard limit is SIGALRM: both still clean up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    def too_long(*_):
        raise AssertionError(f"hard time limit of {limit_s} s reached")

    step("guest image")
    r = rig("image", timeout=1800)
    step(f"image {r.stdout.strip().splitlines()[-1]}")
    signal.signal(signal.SIGALRM, too_long)
    signal.alarm(limit_s)
    work = Path(tempfile.mkdtemp(prefix="hub-frr-"))
    hub, up, cap = None, None, None
    try:
        rig("cleanup", timeout=120, check_rc=False)  # leftovers of a killed run of this test
        if setup is not None:
            config, rig_args = setup(work)
        up, hub, cap = start_rig_and_hub(work, config, rig_args, log_level, boot_s)
        try:
            rc = up.wait(boot_s + 60)
        except subprocess.TimeoutExpired:
            up.kill()
            rc = None
        print((work / "rig-up.log").read_text(), flush=True)
        if rc != 0:
            raise AssertionError(f"rig up failed ({rc})")
        step("spokes booted")
        checks(hub, cap)
    except AssertionError as e:
        check(False, str(e))
    finally:
        signal.alarm(0)
        if failures:
            dump_diagnostics(hub)
        status = hub.stop() if hub else None
        if hub is not None:
            check(status == 0, f"the hub stops cleanly on SIGTERM (status {status})")
        if up is not None and up.poll() is None:
            up.kill()
        rig("down", timeout=120, check_rc=False)
        if keep and cap is not None and cap.exists():
            keep_capture(cap, keep)
        shutil.rmtree(work, ignore_errors=True)
    step(f"{len(failures)} failure(s)")
    return 1 if failures else 0


KERNEL_IFACE = "dmvpn-tun0"


def kernel_interface_setup(work):
    """--kernel-interface: the example topology with a kernel interface for its tunnel (the
    exception path, routing.interfaces)."""
    config = work / "hub-kernel.yaml"
    config.write_text(CONFIG.read_text() + "\nrouting:\n  interfaces:\n    - tunnel: dmvpn\n"
                      f"      name: {KERNEL_IFACE}\n")
    return config, ()


def kernel_interface_checks(hub, cap):
    """The host's kernel (the rig's namespace, where the hub runs) pings every FRR spoke's
    overlay address through the hub's kernel interface; then the usual checks."""
    if not check_registered(hub):
        return
    out = subprocess.run(["ip", "netns", "exec", NS, "ip", "-4", "-o", "addr", "show", "dev",
                          KERNEL_IFACE], capture_output=True, text=True).stdout
    check(f"{HUB_OVL}/24" in out, f"{KERNEL_IFACE} carries {HUB_OVL}/24", out)
    for name, (_, ovl) in SPOKES.items():
        # TCG guests answer late at times: 5 requests a second apart, 5 s for the last reply.
        r = subprocess.run(["ip", "netns", "exec", NS, "ping", "-n", "-c", "5", "-i", "1", "-W",
                            "5", "-I", KERNEL_IFACE, ovl], capture_output=True, text=True)
        rc, stats = hub.ctl("show", "stats")
        print("\n".join(l for l in stats.splitlines() if "Exception path" in l), flush=True)
        print(r.stdout, flush=True)
        check(r.returncode == 0, f"the hub's host pings {name} ({ovl}) through {KERNEL_IFACE}",
              r.stdout + r.stderr)
    run_checks(hub, cap)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep-capture", type=Path)
    ap.add_argument("--spokes", type=int, default=2, choices=range(2, 6),
                    help="FRR spokes (default 2; the shortcut is checked between the first two)")
    ap.add_argument("--kernel-interface", action="store_true",
                    help="give the hub a kernel interface (routing.interfaces) and ping the "
                         "spokes from the host through it")
    args = ap.parse_args()
    plan_spokes(args.spokes)
    rc = preflight("hub_frr")
    if rc is not None:
        return rc
    if args.kernel_interface:
        return run_rig(kernel_interface_checks, keep=args.keep_capture,
                       setup=kernel_interface_setup)
    return run_rig(run_checks, keep=args.keep_capture)


if __name__ == "__main__":
    sys.exit(main())
