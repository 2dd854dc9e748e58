#!/usr/bin/env python3
"""routing.redistribute-nhrp end to end: build/dmvpn-hub with a kernel interface for tun0 and
redistribution on, build/dmvpn-spokesim over net_memif (ESP), in a network namespace of its own
(unshare -n), with Debian's FRR (zebra and bgpd) beside the hub when installed.

  - a route of protocol 247 left by an earlier run (on a veth) is swept at start
  - each registered spoke's overlay /32 appears in the kernel's main table, `dev dmvpn-tun0
    proto 247 scope link`, and only those
  - zebra sees them as kernel routes, and bgpd's `redistribute kernel route-map NHRP-TO-BGP`
    (config/examples/frr/) puts them in its BGP table (skipped, saying so, without FRR)
  - the spokes stop refreshing: their registrations expire and the routes leave the kernel,
    zebra and BGP; show stats counts it all (redist_added / redist_removed / redist_swept)
Needs root and /dev/net/tun; else skipped (77).
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
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hub_process import wait_for  # noqa: E402

SPOKES = 4
IFACE = "dmvpn-tun0"
PROTO = 247
FRR = "/usr/lib/frr"
ROUTING = """\
routing:
  interfaces:
    - tunnel: tun0
      name: %s
  redistribute-nhrp: true
""" % IFACE
BGPD = """\
router bgp 65000
 bgp router-id 10.0.0.1
 no bgp ebgp-requires-policy
 address-family ipv4 unicast
  redistribute kernel route-map NHRP-TO-BGP
 exit-address-family
!
route-map NHRP-TO-BGP permit 10
 match interface %s
!
""" % IFACE


def sh(*cmd):
    subprocess.run([str(c) for c in cmd], check=True)


def kernel_routes():
    out = subprocess.run(["ip", "-j", "-4", "route", "show", "proto", str(PROTO)],
                         capture_output=True, text=True).stdout
    return {r["dst"]: r for r in json.loads(out or "[]")}


class frr:
    def __init__(self, work):
        self.work = work
        self.ok = os.path.exists(f"{FRR}/zebra") and os.path.exists(f"{FRR}/bgpd")
        try:
            pwd.getpwnam("frr")
        except KeyError:
            self.ok = False

    def start(self):
        for name, text in (("zebra.conf", "hostname hub\n"), ("bgpd.conf", BGPD)):
            path = os.path.join(self.work, name)
            with open(path, "w") as f:
                f.write(text)
            shutil.chown(path, "frr", "frr")
        shutil.chown(self.work, "frr", "frr")
        common = ["-z", f"{self.work}/zserv.api", "--vty_socket", self.work, "-u", "frr", "-g",
                  "frr"]
        sh(f"{FRR}/zebra", "-d", "-f", f"{self.work}/zebra.conf", "-i",
           f"{self.work}/zebra.pid", *common)
        time.sleep(1)
        sh(f"{FRR}/bgpd", "-d", "-p", "0", "-f", f"{self.work}/bgpd.conf", "-i",
           f"{self.work}/bgpd.pid", *common)

    def show(self, what):
        r = subprocess.run(["vtysh", "--vty_socket", self.work, "-c", what], capture_output=True,
                           text=True)
        try:
            return json.loads(r.stdout)
        except ValueError:
            return {}

    def kernel(self):
        rs = self.show("show ip route kernel json")
        return {p for p, v in rs.items() if any(x.get("protocol") == "kernel" for x in v)}

    def bgp(self):
        return set(self.show("show bgp ipv4 unicast json").get("routes", {}))

    def stop(self):
        for pidfile in ("bgpd.pid", "zebra.pid"):
            try:
                with open(os.path.join(self.work, pidfile)) as f:
                    os.kill(int(f.read().strip()), signal.SIGTERM)
            except (OSError, ValueError):
                pass


def main():
    e2e.reexec_in_netns(__file__, "DMVPN_REDIST_NS")
    sh("ip", "link", "set", "lo", "up")
    # An earlier run's route, of our protocol: the start-up resync removes it.
    sh("ip", "link", "add", "dmvpn-old", "type", "veth", "peer", "name", "dmvpn-old-p")
    sh("ip", "link", "set", "dmvpn-old-p", "up")
    sh("ip", "link", "set", "dmvpn-old", "up")
    sh("ip", "addr", "add", "192.0.2.1/24", "dev", "dmvpn-old")
    sh("ip", "route", "add", "203.0.113.0/24", "dev", "dmvpn-old", "proto", PROTO)
    d = tempfile.mkdtemp(prefix="e2e-nhrp-redist-")
    os.chmod(d, 0o755)  # FRR drops to user frr: it must reach its folder
    fr = frr(os.path.join(d, "frr"))
    os.makedirs(fr.work)
    if fr.ok:
        fr.start()
    else:
        print("note: Debian's FRR (zebra, bgpd, user frr) not installed: its part is skipped")
    h = e2e.hub(d, SPOKES, hub_extra=ROUTING)
    want = {"10.0.0.%d" % (i + 2) for i in range(SPOKES)}
    try:
        swept = wait_for(lambda: "203.0.113.0/24" not in kernel_routes(), 10)
        e2e.check(swept, "the earlier run's route of protocol %d was swept at start" % PROTO)
        # Registered for 6 s, refreshed every 2 s while the emulator runs (8 s), then expired.
        result = {}
        sim = threading.Thread(target=lambda: result.update(
            rep=e2e.spokesim(d, "--spokes", SPOKES, *e2e.GOOD, "--holdtime", 6, "--rate", 0,
                             "--duration", 8)))
        sim.start()
        got = wait_for(lambda: set(kernel_routes()) == want and kernel_routes(), 60)
        e2e.check(got and set(got) == want,
                  "the kernel holds the %d registered spokes' /32s (%s)" % (SPOKES,
                                                                            sorted(got or {})))
        e2e.check(got and all(r.get("dev") == IFACE and r.get("scope") == "link"
                              for r in got.values()),
                  "each one dev %s scope link, protocol %d" % (IFACE, PROTO))
        if fr.ok:
            zk = wait_for(lambda: want <= {p.split("/")[0] for p in fr.kernel()}, 15)
            e2e.check(zk, "zebra sees them as kernel routes (%s)" % sorted(fr.kernel()))
            bg = wait_for(lambda: {p + "/32" for p in want} <= fr.bgp(), 20)
            e2e.check(bg, "bgpd's redistribute kernel route-map NHRP-TO-BGP has them (%s)" %
                      sorted(fr.bgp()))
        sim.join()
        rc, r = result["rep"]
        e2e.check(rc == 0 and r["registered"] == SPOKES, "the emulator registered %d spokes"
                  % r["registered"])
        gone = wait_for(lambda: not kernel_routes(), 20)
        e2e.check(gone, "the registrations expired: their routes left the kernel (%s)" %
                  sorted(kernel_routes()))
        if fr.ok:
            left = wait_for(lambda: not ({p + "/32" for p in want} & fr.bgp()), 15)
            e2e.check(left, "... and BGP (%s)" % sorted(fr.bgp()))
        st = h.json("show", "stats")["routing"]
        e2e.check(st["redist_added"] >= SPOKES and st["redist_removed"] >= SPOKES and
                  st["redist_swept"] == 1 and st["redist_failed"] == 0 and
                  st["redist_routes"] == 0,
                  "show stats: added %d, removed %d, swept %d, failed %d" %
                  (st["redist_added"], st["redist_removed"], st["redist_swept"],
                   st["redist_failed"]))
    finally:
        h.stop()
        fr.stop()
    print("%d failure(s)" % len(e2e.failures))
    sys.exit(1 if e2e.failures else 0)


if __name__ == "__main__":
    main()
