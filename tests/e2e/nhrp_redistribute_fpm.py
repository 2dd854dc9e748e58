#!/usr/bin/python3
"""routing.redistribute-nhrp together with routing.fpm (control/rib/README.md): the hub puts each
registered spoke's overlay /32 in the kernel, Debian's zebra (scripts/frr-hub: zebra with FPM,
staticd, bgpd) re-resolves the routes whose next hop is a spoke's overlay address through that
/32 and streams the change to the hub over FPM. zebra 8.4 sends such a change as one FPM frame
holding RTM_DELROUTE then RTM_NEWROUTE; a hub that took only the first message lost the route
for as long as the spoke stayed registered (the bug this test pins down).

build/dmvpn-hub with a kernel interface for tun0, build/dmvpn-spokesim over net_memif (plain GRE),
in a network namespace of its own (unshare -n). staticd holds each spoke's LAN (172.16.N.0/24) via
its overlay address (10.0.0.N+2), and one more route (192.168.50.0/24 via 10.0.0.2) only until
zebra restarts. Argument `nhg` (zebra's default: next-hop groups) or `inline`
(`no fpm use-next-hop-groups`).

  - before any spoke registers: the LAN routes are in the hub's FIB (code S, from FPM), their
    next hops not registered
  - spokes registered (the emulator sends LAN to LAN traffic for 16 s meanwhile): their /32s
    in the kernel, zebra resolves the routes recursively through them, and the hub's FIB keeps
    every route through a spoke, each resolved by NHRP to its spoke's NBMA address
  - zebra killed (SIGKILL) and started again, with the extra route gone, while the spokes stay
    registered: after the settle time the hub's FPM routes are exactly the new zebra's (the
    extra route swept, nothing stale); the traffic, across all this, lost nothing
  - the spokes go away (`clear nhrp`): their /32s leave the kernel, zebra resolves the routes
    through the connected /16 again and the hub's FIB follows: the routes stay, their next
    hops not registered (glean), none left pointing at an NBMA address
  - the FPM server refused no frame (fpm_bad_frames 0)
About 35 s each. Needs root, /dev/net/tun and Debian's FRR (77 otherwise).
"""

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402
from nhrp_redistribute import BGPD, IFACE, kernel_routes  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hub_process import wait_for  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FRR_HUB = os.path.join(ROOT, "scripts", "frr-hub")
SPOKES = 4
GRE = ["--gre-key", 100, "--auth", "e2e"]
EXTRA = "192.168.50.0/24"
ROUTING = """\
routing:
  interfaces:
    - tunnel: tun0
      name: %s
  redistribute-nhrp: true
  fpm: {}
""" % IFACE


def sh(*cmd, check=True):
    return subprocess.run([str(c) for c in cmd], check=check, capture_output=True, text=True)


def overlay(n):
    return "10.0.0.%d" % (n + 2)


LANS = {"172.16.%d.0/24" % n: overlay(n) for n in range(SPOKES)}


def frr_usable():
    if not all(os.path.exists("/usr/lib/frr/" + x) for x in ("zebra", "bgpd", "staticd")):
        return False
    try:
        pwd.getpwnam("frr")
    except KeyError:
        return False
    return shutil.which("vtysh") is not None


class Frr:
    def __init__(self, d, nhg):
        self.d, self.nhg, self.run_dir, self.runs = d, nhg, None, 0

    def start(self, extra):
        self.runs += 1
        self.run_dir = os.path.join(self.d, "frr%d" % self.runs)
        files = {
            "zebra": "fpm address 127.0.0.1 port 2620\n" +
                     ("" if self.nhg else "no fpm use-next-hop-groups\n"),
            "staticd": "".join("ip route %s %s\n" % (p, via) for p, via in LANS.items()) +
                       ("ip route %s %s\n" % (EXTRA, overlay(0)) if extra else ""),
            "bgpd": BGPD,
        }
        args = []
        for daemon, text in files.items():
            path = os.path.join(self.d, "%s%d.conf" % (daemon, self.runs))
            with open(path, "w") as f:
                f.write(text)
            args += ["--" + daemon, path]
        r = sh(FRR_HUB, "start", "--run-dir", self.run_dir, *args, check=False)
        print((r.stdout + r.stderr).strip(), flush=True)
        return r.returncode == 0

    def stop(self, kill_zebra=False):
        """Stops FRR; `kill_zebra`: zebra dies first (SIGKILL, a crash), withdrawing nothing."""
        if not self.run_dir:
            return
        if kill_zebra:
            try:
                with open(os.path.join(self.run_dir, "zebra.pid")) as f:
                    os.kill(int(f.read().strip()), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        sh(FRR_HUB, "stop", "--run-dir", self.run_dir, check=False)

    def route(self, prefix):
        r = sh("vtysh", "--vty_socket", self.run_dir, "-c", "show ip route %s json" % prefix,
               check=False)
        try:
            return (json.loads(r.stdout).get(prefix) or [{}])[0]
        except ValueError:
            return {}


def fpm_routes(h):
    """The hub's FIB rows that came from FRR: prefix -> row."""
    return {r["prefix"]: r for r in h.json("show", "ip", "route")["routes"]
            if r["source"] == "fpm"}


def lans_ok(h, state, extra=False):
    """The hub's FPM routes are the LAN routes (and the extra one), each in `state`."""
    rs = fpm_routes(h)
    return set(rs) == set(LANS) | ({EXTRA} if extra else set()) and all(
        rs[p]["code"] == "S" and rs[p]["next_hop"] == via and rs[p]["state"] == state
        for p, via in LANS.items())


def emulator(d, result):
    """The spokes register (held 120 s) and send LAN to LAN traffic through the hub (no
    shortcuts) for 16 s, in the background: across zebra's restart."""
    result["rep"] = e2e.spokesim(d, "--spokes", SPOKES, *GRE, "--holdtime", 120, "--traffic",
                                 "lan", "--rate", 200, "--duration", 16, "--data-after", 1,
                                 "--no-shortcuts")


def main():
    variant = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DMVPN_FPM_VARIANT", "nhg")
    os.environ["DMVPN_FPM_VARIANT"] = variant  # the namespace's run reads it
    e2e.reexec_in_netns(__file__, "DMVPN_REDIST_FPM_NS")
    if not frr_usable():
        print("SKIP: needs Debian's FRR (zebra, staticd, bgpd, vtysh; user frr)")
        sys.exit(77)
    nhg = variant == "nhg"
    print("zebra %s" % ("with next-hop groups" if nhg else "with no fpm use-next-hop-groups"))
    sh("ip", "link", "set", "lo", "up")
    d = tempfile.mkdtemp(prefix="e2e-redist-fpm-")
    os.chmod(d, 0o755)  # FRR drops to user frr: it must reach its run directories
    h = e2e.hub(d, SPOKES, esp=False, hub_extra=ROUTING)
    fr = Frr(d, nhg)
    t0 = time.time()
    try:
        e2e.check(fr.start(extra=True), "FRR started (zebra with FPM, staticd, bgpd)")
        got = wait_for(lambda: lans_ok(h, "unbound", extra=True), 20)
        e2e.check(got, "no spoke registered: the hub's FIB has the %d LAN routes from zebra "
                  "(S, via the spokes' overlay addresses, not registered) and %s (%s)"
                  % (len(LANS), EXTRA, sorted(fpm_routes(h))))

        result = {}
        sim = threading.Thread(target=emulator, args=(d, result))
        sim.start()
        want = {overlay(n) for n in range(SPOKES)}
        e2e.check(wait_for(lambda: set(kernel_routes()) == want, 30),
                  "spokes registered: their /32s are in the kernel (%s)" % sorted(kernel_routes()))
        zebra_saw = wait_for(lambda: any(x.get("recursive") for x in
                                         fr.route("172.16.0.0/24").get("nexthops", [])), 10)
        e2e.check(zebra_saw, "zebra resolves 172.16.0.0/24 recursively through the spoke's /32 "
                  "(%s)" % fr.route("172.16.0.0/24").get("nexthops"))
        ok = wait_for(lambda: lans_ok(h, "complete", extra=True), 10)
        rs = fpm_routes(h)
        e2e.check(ok, "the hub's FIB kept every route through a spoke, each resolved by NHRP "
                  "to its NBMA address (%s)" %
                  {p: (r["next_hop"], r["state"], r["nbma"]) for p, r in rs.items()})

        # zebra dies (SIGKILL: it withdraws nothing) while the spokes stay registered and send;
        # the hub keeps its routes (routing.fpm.hold-seconds) until the new zebra, without the
        # extra route, has resent its table and gone quiet (settle-seconds): then the sweep.
        fr.stop(kill_zebra=True)
        e2e.check(fr.start(extra=False), "zebra killed and started again (the extra route no "
                  "longer in it)")
        st = lambda: h.json("show", "stats")["routing"]  # noqa: E731
        ok = wait_for(lambda: st()["fpm_connections"] == 2 and EXTRA not in fpm_routes(h) and
                      lans_ok(h, "complete"), 20)
        s = st()
        e2e.check(ok and s["fpm_swept"] >= 1,
                  "after the resync the hub's FPM routes are the new zebra's: the %d LAN "
                  "routes resolved, %s swept (swept %d), nothing stale (%s)"
                  % (len(LANS), EXTRA, s["fpm_swept"], sorted(fpm_routes(h))))
        during = sim.is_alive()
        sim.join()
        rc, r = result["rep"]
        e2e.check(rc == 0 and r["registered"] == SPOKES and r["sent"] > 0 and
                  r["received_via_hub"] == r["sent"] and r["lost"] == 0,
                  "LAN to LAN through the hub on FRR's routes%s: sent %d, received %d (all "
                  "through the hub), lost %d" % (" across zebra's restart" if during else "",
                                                 r["sent"], r["received_via_hub"], r["lost"]))

        # The spokes go away: their /32s leave, zebra resolves through the connected /16.
        h.ctl("clear", "nhrp")
        gone = wait_for(lambda: not kernel_routes(), 10)
        e2e.check(gone, "clear nhrp: the spokes' /32s left the kernel (%s)" % kernel_routes())
        ok = wait_for(lambda: lans_ok(h, "unbound"), 10)
        rs = fpm_routes(h)
        e2e.check(ok, "the hub's FIB follows zebra: the LAN routes stay, their next hops not "
                  "registered, none left resolved to an NBMA address (%s)" %
                  {p: (r["next_hop"], r["state"]) for p, r in rs.items()})
        z = fr.route("172.16.0.0/24")
        e2e.check(not any(x.get("recursive") for x in z.get("nexthops", [])),
                  "zebra resolves 172.16.0.0/24 through the connected /16 again (%s)"
                  % z.get("nexthops"))
        s = st()
        e2e.check(s["fpm_bad_frames"] == 0 and s["fpm_disconnects"] == 1,
                  "FPM: %d frames, none refused, %d routes added, %d removed, %d skipped"
                  % (s["fpm_frames"], s["fpm_routes_added"], s["fpm_routes_removed"],
                     s["fpm_skipped"]))
        print("scenario took %.1f s" % (time.time() - t0))
    finally:
        fr.stop()
        h.stop()
    print("%d failure(s)" % len(e2e.failures))
    sys.exit(1 if e2e.failures else 0)


if __name__ == "__main__":
    main()
