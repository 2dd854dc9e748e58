#!/usr/bin/python3
"""Phase 3 with a summary route on the hub, at scale (issue 12, part 3; control/rib/README.md,
"NHRP following the routes").

build/dmvpn-hub (plain GRE, a kernel interface for tun0, routing.fpm) and build/dmvpn-spokesim
over net_memif, in a network namespace of its own (unshare -n), with Debian's FRR beside the hub
(scripts/frr-hub): staticd holds each spoke's LAN (172.16.N.0/24) via the spoke's overlay address
(10.0.0.N+2), standing in for the routes the spokes would announce over BGP (the emulator speaks
no routing protocol), and bgpd runs config/examples/frr/bgpd-phase3.conf with `redistribute
static`: its `aggregate-address 172.16.0.0/12` is the summary a Phase 3 hub gives its spokes,
and zebra installs it as a blackhole (Null0). Every route reaches the hub's FIB over FPM; the
YAML names no LAN route. The emulated spokes send everything to the hub (their route to it is
the summary).

  - FIB: the 30 spokes' /24s (S, via their overlay addresses) and the /12 (B, blackhole)
  - LAN-to-LAN traffic (spoke i to spoke i+1's LAN): the first packets cross the hub, the hub
    sends a Traffic Indication to each sender (found through the route of the packet's source),
    forwards each sender's Resolution Request along the FPM route to the spoke that owns the
    /24, the owner answers for its /24, and every pair that talked has its shortcut; then the
    hub's workers see no more packets (their rx and tx counters stay still) while the spokes
    go on sending to each other, intact
  - a Resolution Request for 172.16.200.1, under the summary and owned by no spoke: the hub
    answers with a negative Resolution Reply (code 12, no binding; RFC 2332 section 2.2: no
    station serves it) instead of an Error Indication; the spokes install no shortcut and keep
    sending through the hub, which discards the packets on the summary's Null0 (counted as
    blackhole drops) and sends no Traffic Indication for them, so nothing asks again: one
    Resolution Request per spoke, one reply each
  - a Resolution Request for 172.16.100.7, under the summary on the hub's own LAN port: the hub
    is the egress router (RFC 2332 section 3) and answers with itself for the /24; the data
    goes to the hub, no Traffic Indication
About 40 s on a loaded 2-CPU machine. Needs root, /dev/net/tun and Debian's FRR (77 otherwise).
"""

import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402
import exception  # noqa: E402  its LAN port
from multihub_frr import ROUTING  # noqa: E402  the kernel interface of tun0, routing.fpm
from nhrp_redistribute_fpm import FRR_HUB, ROOT, frr_usable, sh  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hub_process import wait_for  # noqa: E402

SPOKES = 30
GRE = ["--gre-key", 100, "--auth", "e2e"]
SUMMARY = "172.16.0.0/12"
UNOWNED = "172.16.200.1"  # under the summary, no spoke's LAN (spokes own 172.16.0-29.0/24)
HUB_LAN_HOST = "172.16.100.7"  # under the summary too, on the hub's own LAN port
HUB_LAN_BROADCAST = "172.16.100.255"  # that LAN's directed broadcast
# The hub's LAN port, exception.py's (net_tap; here nobody answers on its kernel side dlan0),
# on a subnet under the summary.
LAN_PORT = exception.LAN_PORT.replace("198.18.0.1/24", "172.16.100.1/24")


def overlay(n):
    return "10.0.0.%d" % (n + 2)


LANS = {"172.16.%d.0/24" % n: overlay(n) for n in range(SPOKES)}


def start_frr(d):
    """zebra (FPM), staticd (the spokes' LANs), bgpd (the Phase 3 example, its aggregate made of
    the static routes)."""
    with open(os.path.join(ROOT, "config", "examples", "frr", "bgpd-phase3.conf")) as f:
        bgpd = f.read()
    anchor = "  aggregate-address 172.16.0.0/12\n"
    if anchor not in bgpd:
        raise SystemExit("bgpd-phase3.conf no longer has %r" % anchor.strip())
    bgpd = bgpd.replace(anchor, "  redistribute static\n" + anchor)
    files = {
        "zebra": "fpm address 127.0.0.1 port 2620\n",
        "staticd": "".join("ip route %s %s\n" % (p, via) for p, via in LANS.items()),
        "bgpd": bgpd,
    }
    args = []
    for daemon, text in files.items():
        path = os.path.join(d, "%s.conf" % daemon)
        with open(path, "w") as f:
            f.write(text)
        args += ["--" + daemon, path]
    run_dir = os.path.join(d, "frr")
    r = sh(FRR_HUB, "start", "--run-dir", run_dir, *args, check=False)
    print((r.stdout + r.stderr).strip(), flush=True)
    return run_dir if r.returncode == 0 else None


def fpm_routes(h):
    return {r["prefix"]: r for r in h.json("show", "ip", "route")["routes"]
            if r["source"] == "fpm"}


def fib_ready(h):
    rs = fpm_routes(h)
    return (all(p in rs and rs[p]["next_hop"] == via for p, via in LANS.items()) and
            SUMMARY in rs and rs[SUMMARY]["state"] == "blackhole")


def workers(h):
    """What the workers received and sent on the underlay port (the tunnel's), all workers
    together: (rx, tx). The LAN port is left out: the host may send on its kernel side."""
    p = [x for x in h.json("show", "stats")["ports"] if x["name"] == "underlay"][0]
    return p["worker_rx_packets"], p["worker_tx_packets"]


def lan_traffic(d, result):
    result["rep"] = e2e.spokesim(d, "--spokes", SPOKES, *GRE, "--traffic", "lan", "--rate", 600,
                                 "--duration", 12, "--data-after", 1, "--peer-offset", 1)


def phase3_at_scale(d, h):
    t0 = h.nhrp_counts()
    result = {}
    sim = threading.Thread(target=lan_traffic, args=(d, result))
    sim.start()
    out = os.path.join(d, "spokesim.out")
    # Until every sender got its Traffic Indication and the workers' counters stood still for
    # 1.5 s in a row, the emulator still sending (no report yet).
    still = {"at": None, "since": None, "running": False}

    def settled():
        ti = h.nhrp_counts()["sent"]["traffic_indication"] - t0["sent"]["traffic_indication"]
        now = workers(h)
        if ti < SPOKES or now != still["at"]:
            still["at"], still["since"] = now, time.time()
            return False
        still["running"] = os.path.exists(out) and e2e.report_of(out) is None
        return time.time() - still["since"] >= 1.5

    ok = wait_for(settled, 40, step=0.25)
    settled_at = still["at"]
    e2e.check(ok and still["running"],
              "every sender got its Traffic Indication, then the hub's workers stood still "
              "(underlay rx %d, tx %d packets) while the emulator was still sending" % settled_at)
    sim.join()
    rc, r = result["rep"]
    t1 = h.nhrp_counts()
    end = workers(h)
    e2e.check(end == settled_at,
              "the workers' counters stayed still to the end of the traffic (rx %d, tx %d)"
              % end)
    e2e.check(rc == 0 and r["ok"] and r["registered"] == SPOKES,
              "the emulator reports success, %d spokes registered" % r["registered"])
    e2e.check(r["lost"] == 0 and r["corrupt"] == 0 and r["sent"] > 0 and
              r["received"] == r["sent"],
              "LAN-to-LAN: %d sent, %d received, 0 lost" % (r["sent"], r["received"]))
    ti = t1["sent"]["traffic_indication"] - t0["sent"]["traffic_indication"]
    fwd = t1["sent"]["resolution_request"] - t0["sent"]["resolution_request"]
    e2e.check(ti >= SPOKES and r["traffic_indications"] >= SPOKES,
              "redirect: the hub sent %d Traffic Indications, the spokes took %d"
              % (ti, r["traffic_indications"]))
    e2e.check(fwd >= SPOKES and r["resolutions_answered"] >= SPOKES,
              "the hub forwarded %d Resolution Requests along the FPM routes, the owners "
              "answered %d for their /24" % (fwd, r["resolutions_answered"]))
    e2e.check(r["shortcuts"] >= SPOKES and r["shortcuts_active"] >= SPOKES,
              "%d shortcuts, one for each of the %d pairs that talked"
              % (r["shortcuts_active"], SPOKES))
    e2e.check(r["sent_shortcut"] > 0 and r["received_shortcut"] == r["sent_shortcut"] and
              r["received_via_hub"] == r["sent_via_hub"],
              "%d packets through the hub before the shortcuts, %d spoke to spoke after"
              % (r["sent_via_hub"], r["sent_shortcut"]))
    unknown = t1["dropped"].get("redirect_unknown_source", 0)
    e2e.check(unknown == 0, "no redirect dropped for an unknown source (%d)" % unknown)
    print("counts: spokes %d, TI %d, resolutions forwarded %d, answered %d, shortcuts %d, "
          "via hub %d, spoke to spoke %d, workers rx %d tx %d"
          % (SPOKES, ti, fwd, r["resolutions_answered"], r["shortcuts_active"],
             r["sent_via_hub"], r["sent_shortcut"], end[0], end[1]), flush=True)


def unowned(d, h):
    t0 = h.nhrp_counts()
    b0 = h.json("show", "stats")["drops"]["blackhole"]
    # Each spoke resolves UNOWNED once as its traffic starts (--resolve with --data-to) and
    # sends its data there; nothing comes back (so the emulator's own verdict is not success).
    _, r = e2e.spokesim(d, "--spokes", SPOKES, *GRE, "--data-to", UNOWNED, "--resolve",
                        "--rate", 300, "--duration", 3, "--data-after", 1)
    t1 = h.nhrp_counts()
    blackholed = h.json("show", "stats")["drops"]["blackhole"] - b0
    delta = lambda kind, t: t1[kind][t] - t0[kind][t]  # noqa: E731
    e2e.check(r["registered"] == SPOKES and r["resolution_requests"] == SPOKES,
              "%d spokes asked for %s once each" % (r["resolution_requests"], UNOWNED))
    e2e.check(delta("sent", "resolution_reply") == SPOKES and r["resolution_rejects"] == SPOKES and
              delta("sent", "error_indication") == 0 and r["error_indications"] == 0,
              "the hub answered each with a negative Resolution Reply (%d sent, the spokes "
              "took %d NAKs), no Error Indication (%d)"
              % (delta("sent", "resolution_reply"), r["resolution_rejects"],
                 delta("sent", "error_indication")))
    e2e.check(t1["dropped"].get("unreachable", 0) == t0["dropped"].get("unreachable", 0),
              "nothing counted as unreachable")
    e2e.check(r["shortcuts"] == 0 and r["sent_shortcut"] == 0 and r["sent"] > 0 and
              r["sent_via_hub"] == r["sent"],
              "no shortcut: all %d packets went to the hub" % r["sent"])
    # (a frame the emulator could not hand to its port never reached the hub)
    e2e.check(r["sent"] - r["tx_dropped"] <= blackholed <= r["sent"],
              "the hub discarded them on the summary's Null0 (%d blackhole drops, %d frames "
              "lost on the emulator's transmit)" % (blackholed, r["tx_dropped"]))
    e2e.check(delta("sent", "traffic_indication") == 0 and
              delta("received", "resolution_request") == SPOKES,
              "no Traffic Indication for them, so no retry: %d Resolution Requests in all"
              % delta("received", "resolution_request"))


def hub_lan(d, h):
    t0 = h.nhrp_counts()
    _, r = e2e.spokesim(d, "--spokes", SPOKES, *GRE, "--data-to", HUB_LAN_HOST, "--resolve",
                        "--rate", 300, "--duration", 2, "--data-after", 1)
    t1 = h.nhrp_counts()
    delta = lambda kind, t: t1[kind][t] - t0[kind][t]  # noqa: E731
    e2e.check(delta("received", "resolution_request") == SPOKES and
              delta("sent", "resolution_reply") == SPOKES and r["resolution_replies"] == SPOKES
              and r["resolution_rejects"] == 0 and r["error_indications"] == 0,
              "%s (the hub's own LAN under the summary): the hub, its egress, answered each of "
              "the %d requests with itself (%d positive replies taken, no NAK, no Error "
              "Indication)" % (HUB_LAN_HOST, delta("received", "resolution_request"),
                               r["resolution_replies"]))
    e2e.check(r["sent"] > 0 and r["sent_via_hub"] == r["sent"] and
              delta("sent", "traffic_indication") == 0,
              "the %d packets went to the hub (the hub is the next hop it named), no Traffic "
              "Indication (they leave by the LAN, not the tunnel)" % r["sent"])


def hub_lan_broadcast(h, d):
    # Spoke traffic to the hub LAN's subnet broadcast (a directed broadcast): dropped and
    # counted, as IOS's default `no ip directed-broadcast`; never ARPed for, no host route.
    c0 = h.json("show", "stats")["control"]["directed_broadcast"]
    _, r = e2e.spokesim(d, "--spokes", SPOKES, *GRE, "--data-to", HUB_LAN_BROADCAST,
                        "--rate", 300, "--duration", 1, "--data-after", 1)
    got = h.json("show", "stats")["control"]["directed_broadcast"] - c0
    arp = h.ctl("show", "arp")
    # The workers punt them as glean within the glean punt rate (the rest dropped there,
    # counted as policed): the control lcore drops each one it gets.
    e2e.check(r["sent"] > 0 and 0 < got <= r["sent"] and HUB_LAN_BROADCAST not in arp,
              "%s (the hub LAN's directed broadcast): %d of the %d spoke packets reached the "
              "control lcore (glean punt rate) and were dropped as directed_broadcast, no ARP "
              "entry for it" % (HUB_LAN_BROADCAST, got, r["sent"]))


def main():
    e2e.reexec_in_netns(__file__, "DMVPN_P3_SUMMARY_NS")
    if not frr_usable():
        print("SKIP: needs Debian's FRR (zebra, staticd, bgpd, vtysh; user frr)")
        sys.exit(77)
    sh("ip", "link", "set", "lo", "up")
    d = tempfile.mkdtemp(prefix="e2e-p3-summary-")
    os.chmod(d, 0o755)  # FRR drops to user frr: it must reach its run directories
    cfg = e2e.CONFIG
    e2e.CONFIG = cfg.replace("tunnels:\n", LAN_PORT, 1)
    if "172.16.100.1/24" not in e2e.CONFIG:
        raise SystemExit("exception.py's LAN port changed: no 172.16.100.1/24 in the config")
    try:
        h = e2e.hub(d, SPOKES, esp=False, hub_extra=ROUTING)
    finally:
        e2e.CONFIG = cfg
    run_dir = None
    t0 = time.time()
    try:
        run_dir = start_frr(d)
        e2e.check(run_dir is not None, "FRR started (zebra with FPM, staticd, bgpd)")
        ok = wait_for(lambda: fib_ready(h), 30)
        rs = fpm_routes(h)
        e2e.check(ok, "the hub's FIB from FPM: %d spoke LANs via their overlay addresses and "
                  "the summary %s as %s (code %s)" %
                  (sum(p in rs for p in LANS), SUMMARY, rs.get(SUMMARY, {}).get("state"),
                   rs.get(SUMMARY, {}).get("code")))
        if ok:
            phase3_at_scale(d, h)
            unowned(d, h)
            hub_lan(d, h)
            hub_lan_broadcast(h, d)
        print("scenario took %.1f s" % (time.time() - t0))
    except SystemExit as e:
        print("FAIL " + str(e), flush=True)
        e2e.failures.append(str(e))
    finally:
        if run_dir:
            sh(FRR_HUB, "stop", "--run-dir", run_dir, check=False)
        h.stop()
    print("%d failure(s)" % len(e2e.failures))
    sys.exit(1 if e2e.failures else 0)


if __name__ == "__main__":
    main()
