#!/usr/bin/env python3
"""Two hubs in one cloud with FRR (issue 12 parts 4 and 6): each build/dmvpn-hub runs in a
network namespace of its own with its FRR beside it (scripts/frr-hub: zebra with FPM, staticd,
bgpd, bfdd), exactly as on a hub host: FRR reaches the other hub through the hub's kernel
interface dmvpn-tun0 (`routing.interfaces`) and hands its routes to the hub over FPM. The two
hubs' underlay ports (net_tap) are bridged, through a veth each, to a bridge in the test's own
namespace (unshare -n), where two build/dmvpn-spokesim processes (4 spokes each, plain GRE,
`--traffic lan`) register with both hubs and send LAN to LAN traffic through the first.

The hubs' iBGP session runs over the overlay (10.0.0.1 <-> 10.0.0.250, GRE between the hubs'
NBMA addresses, each hub's workers punting it to its kernel): the hubs' NBMA addresses belong
to the DPDK ports, not to the host, and the NHRP peering the session rides on is the one that
must work for the spokes anyway (docs/MULTI-HUB.md).

  - each hub's FRR: the example config/examples/frr/bgpd-phase2.conf (peer-group HUBS, its
    `timers 5 15`, `bfd profile HUBS` uncommented and config/examples/frr/bfdd.conf unless
    DMVPN_MULTIHUB_FRR_BFD=0), the other hub as neighbour; staticd holds the 8 spokes' LANs
    through their overlay addresses (each spoke peers with both hubs: the emulator is
    routing-free, so static routes stand in for its BGP routes)
  - the iBGP session comes up (BFD too); each hub's LAN (192.168.1.0/24 on A, 192.168.2.0/24
    on B, `network`) and one prefix only hub A knows (172.16.100.0/24 through spoke 0,
    redistributed with its spoke as next hop: Phase 2) reach the other hub's FIB through BGP
    and FPM: `dmvpnctl show ip route` shows them as B (FRR's BGP), resolved by NHRP (the other
    hub, the spoke) to their NBMA addresses
  - the spokes' LAN traffic through each hub's FIB (FRR's routes): nothing lost
  - traffic over a BGP-learned route: hub A has a LAN port (net_tap, 192.168.1.1/24) whose
    kernel side in A's namespace is the host 192.168.1.2; a third emulator, 4 spokes registered
    with hub B only, sends to that host (`--data-to`): hub B routes it by 192.168.1.0/24 (B, via
    hub A's overlay address) over the overlay to hub A, which sends it out of its LAN port;
    a UDP socket on the host counts every datagram (0 lost)
  - hub A killed (SIGKILL, then its FRR) mid-traffic: hub B's bgpd takes the session down and
    the routes learned from A leave B's FIB (time from the kill printed: BFD vs the hold
    timer), hub A's spokes fail over to B and their traffic continues (gap printed), B's own
    spokes lose nothing
  - hub A and its FRR started again: the session comes back, each hub's FIB has the other's
    routes again, and hub A's new zebra gave it the spokes' LANs (time printed)
Timings are printed, never asserted. About 60 s (65 s with DMVPN_MULTIHUB_FRR_BFD=0). Needs
root, /dev/net/tun and Debian's FRR (77 otherwise).
"""

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402  (check, binaries)
import multihub as mh  # noqa: E402  (the two hubs' addresses, the emulators, their reports)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hub_process import wait_for  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FRR_HUB = os.path.join(ROOT, "scripts", "frr-hub")
EXAMPLES = os.path.join(ROOT, "config", "examples", "frr")
BFD = os.environ.get("DMVPN_MULTIHUB_FRR_BFD", "1") != "0"
LANS = {"A": "192.168.1.0/24", "B": "192.168.2.0/24"}
ONLY_A = "172.16.100.0/24"  # a LAN behind spoke 0 that only hub A's FRR holds
# Hub A's LAN port (net_tap, role lan) on LANS["A"]; its kernel side in A's namespace is a host
# of that LAN, where a UDP socket counts what hub B's spokes send there over BGP's route.
LAN_TAP, LAN_HOST = "mhfAl0", "192.168.1.2"
LAN_PORT = """\
  - name: lan
    device: net_tap1,iface=%s,mac=02:00:00:00:aa:02
    role: lan
    address: 192.168.1.1/24
""" % LAN_TAP
# Counts UDP datagrams to port 9 of the address argv[1] until SIGTERM, then prints the count and
# their sources.
RECEIVER = r"""
import signal, socket, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 9))
n, srcs = 0, set()
print("listening", flush=True)
try:
    while True:
        _, (a, _) = s.recvfrom(2048)
        n += 1
        srcs.add(a)
finally:
    print(n, " ".join(sorted(srcs)), flush=True)
"""
IFACE = "dmvpn-tun0"
ROUTING = """\
routing:
  interfaces:
    - tunnel: tun0
      name: %s
  fpm: {}
""" % IFACE


def sh(*cmd, check=True):
    return subprocess.run([str(c) for c in cmd], check=check, capture_output=True, text=True)


def spoke_overlay(n):
    return "10.0.0.%d" % (2 + n)


def bgpd_conf(name):
    """config/examples/frr/bgpd-phase2.conf for hub `name`: its router-id and LAN, the other hub
    in peer-group HUBS, BFD on that group, and hub A's redistributed prefix."""
    me, peer = mh.HUBS[name], mh.HUBS["B" if name == "A" else "A"]
    with open(os.path.join(EXAMPLES, "bgpd-phase2.conf")) as f:
        text = f.read()
    subs = [
        ("bgp router-id 10.0.0.1", "bgp router-id %s\n no bgp network import-check"
         % me["overlay"]),
        ("! neighbor 10.0.0.254 peer-group HUBS", "neighbor %s peer-group HUBS" % peer["overlay"]),
        ("network 192.168.100.0/24", "network %s" % LANS[name]),
    ]
    if BFD:
        subs.append(("! neighbor HUBS bfd profile HUBS", "neighbor HUBS bfd profile HUBS"))
    if name == "A":
        subs.append(("  neighbor HUBS activate", "  neighbor HUBS activate\n"
                     "  redistribute static route-map ONLY-A"))
    for old, new in subs:
        if old not in text:
            raise SystemExit("bgpd-phase2.conf no longer has %r" % old)
        text = text.replace(old, new)
    if name == "A":
        text += "ip prefix-list ONLY-A seq 5 permit %s\n!\nroute-map ONLY-A permit 10\n" \
                " match ip address prefix-list ONLY-A\n!\n" % ONLY_A
    return text


def staticd_conf(name):
    lines = ["ip route 172.16.%d.0/24 %s" % (n, spoke_overlay(n)) for n in range(2 * mh.SPOKES)]
    if name == "A":
        lines.append("ip route %s %s" % (ONLY_A, spoke_overlay(0)))
    return "\n".join(lines) + "\n"


class Site:
    """One hub host: a network namespace with the hub, its tap bridged to the test's bridge
    through a veth, and FRR (scripts/frr-hub --netns)."""

    def __init__(self, d, name):
        self.d, self.name = d, name
        self.ns = "mhfrr%s-%d" % (name, os.getpid())
        self.run_dir = os.path.join(d, "frr" + name)
        self.frr_up = False
        self.hub = None

    def start(self):
        d, name = self.d, self.name
        me = mh.HUBS[name]
        sh("ip", "netns", "add", self.ns)
        sh("ip", "-n", self.ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.ns, "link", "add", "mhfbr", "type", "bridge")
        veth = "mhfv" + name
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "up0", "netns", self.ns)
        sh("ip", "link", "set", veth, "master", mh.BR, "up")
        sh("ip", "-n", self.ns, "link", "set", "up0", "master", "mhfbr", "up")
        sh("ip", "-n", self.ns, "link", "set", "mhfbr", "up")
        self.start_hub()

    def start_hub(self):
        d, name = self.d, self.name
        me = mh.HUBS[name]
        if os.path.exists(os.path.join(d, "hub%s.sock" % name)):
            os.unlink(os.path.join(d, "hub%s.sock" % name))
        self.hub = mh.Hub.__new__(mh.Hub)  # its ctl(), json(), dynamic(), kill()
        h = self.hub
        h.name, h.d = name, d
        h.sock = os.path.join(d, "hub%s.sock" % name)
        path = os.path.join(d, "hub%s.yaml" % name)
        peer = mh.HUBS["B" if name == "A" else "A"]
        with open(path, "w") as f:
            f.write(mh.CONFIG.format(d=d, name=name, key=mh.KEY, auth=mh.AUTH,
                                     peer_overlay=peer["overlay"], peer_nbma=peer["nbma"], **me)
                    .replace("ports:\n", ROUTING + "ports:\n", 1)
                    .replace("tunnels:\n", (LAN_PORT if name == "A" else "") + "tunnels:\n", 1))
        h.log = open(os.path.join(d, "hub%s.log" % name), "a+")
        h.started = time.time()
        h.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, e2e.HUB, "--config", path, "--", "--file-prefix",
             "mhfrr-hub%s-%d" % (name, os.getpid())], stdout=h.log, stderr=subprocess.STDOUT)
        h.wait_started("dmvpn-hub " + name)
        end = time.time() + 30
        while sh("ip", "-n", self.ns, "link", "set", me["tap"], "address",
                 mh.KERNEL_MACS[me["tap"]], "master", "mhfbr", "up", check=False).returncode:
            if time.time() > end:
                raise SystemExit("hub %s's tap %s never appeared" % (name, me["tap"]))
            time.sleep(0.2)
        if name == "A":
            # The LAN's host: the kernel side of hub A's LAN tap, a MAC of its own (the tap PMD
            # gives it the port's), no reverse-path filter (its route back to the overlay is
            # dmvpn-tun0, not this interface).
            sh("ip", "-n", self.ns, "link", "set", LAN_TAP, "address", "02:00:00:00:fe:21", "up")
            sh("ip", "-n", self.ns, "addr", "add", LAN_HOST + "/24", "dev", LAN_TAP)
            for conf in ("all", LAN_TAP):
                sh("ip", "netns", "exec", self.ns, "sysctl", "-qw",
                   "net.ipv4.conf.%s.rp_filter=0" % conf)

    def start_frr(self, run=""):
        self.run_dir = os.path.join(self.d, "frr" + self.name + run)  # fresh sockets, pid files
        os.makedirs(self.run_dir)
        files = {"bgpd": bgpd_conf(self.name), "staticd": staticd_conf(self.name)}
        args = []
        for daemon, text in files.items():
            path = os.path.join(self.d, "%s%s.conf" % (daemon, self.name))
            with open(path, "w") as f:
                f.write(text)
            args += ["--" + daemon, path]
        if BFD:
            args += ["--bfdd", os.path.join(EXAMPLES, "bfdd.conf")]
        r = sh(FRR_HUB, "start", "--netns", self.ns, "--run-dir", self.run_dir, *args,
               check=False)
        print((r.stdout + r.stderr).strip(), flush=True)
        self.frr_up = r.returncode == 0
        return self.frr_up

    def vtysh(self, what):
        r = sh("vtysh", "--vty_socket", self.run_dir, "-c", what, check=False)
        try:
            return json.loads(r.stdout)
        except ValueError:
            return {}

    def bgp_state(self, peer):
        return self.vtysh("show bgp neighbors %s json" % peer).get(peer, {}).get("bgpState")

    def bfd_status(self, peer):
        for p in self.vtysh("show bfd peers json") or []:
            if isinstance(p, dict) and p.get("peer") == peer:
                return p.get("status")
        return None

    def routes(self):
        """The hub's FIB: prefix -> its show ip route row."""
        try:
            return {r["prefix"]: r for r in self.hub.json("show", "ip", "route")["routes"]}
        except (SystemExit, ValueError, KeyError):
            return {}

    def stop_frr(self):
        if self.frr_up:
            sh(FRR_HUB, "stop", "--run-dir", self.run_dir, check=False)
            self.frr_up = False

    def close(self):
        self.stop_frr()
        if self.hub is not None and getattr(self.hub, "proc", None) is not None:
            self.hub.kill()
        sh("ip", "netns", "del", self.ns, check=False)


def frr_usable():
    if not all(os.path.exists("/usr/lib/frr/" + d) for d in ("zebra", "bgpd", "staticd",
                                                            "bfdd")):
        return False
    try:
        pwd.getpwnam("frr")
    except KeyError:
        return False
    return shutil.which("vtysh") is not None and \
        sh("ip", "netns", "list", check=False).returncode == 0


def learned(site, prefix, via):
    r = site.routes().get(prefix)
    # zebra's RTPROT_BGP does not tell iBGP from eBGP: the hub files both as ebgp (distance 20,
    # control/rib/README.md), which only changes the distance show ip route prints.
    return r if r and r["code"] == "B" and r["source"] == "fpm" and r["next_hop"] == via \
        else None


def main():
    e2e.reexec_in_netns(__file__, "DMVPN_MULTIHUB_FRR_NS")
    # A timeout's SIGTERM still runs the clean-up below: FRR's daemons and the namespaces go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    if not frr_usable():
        print("SKIP: needs Debian's FRR (zebra, staticd, bgpd, bfdd, vtysh; user frr) and ip "
              "netns")
        sys.exit(77)
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", mh.BR, "type", "bridge")
    sh("ip", "link", "set", mh.BR, "up")
    d = tempfile.mkdtemp(prefix="e2e-multihub-frr-")
    os.chmod(d, 0o755)  # FRR drops to user frr: it must reach its run directories
    sites, procs = {}, []
    a, b = mh.HUBS["A"]["overlay"], mh.HUBS["B"]["overlay"]
    # A second's quiet after the registrations, as e2e_nhrp_routes does: a route through a spoke
    # resolves in the FIB just after the hub answers the spoke's registration, and LAN traffic
    # sent at once can lose its first few packets.
    lan = ["--traffic", "lan", "--data-after", 1]
    try:
        for name in "AB":
            sites[name] = Site(d, name)
            sites[name].start()
        for s in sites.values():
            e2e.check(s.start_frr(), "hub %s's FRR started in its namespace (frr-hub --netns)"
                      % s.name)
        A, B = sites["A"], sites["B"]
        t0 = time.time()
        up = wait_for(lambda: A.bgp_state(b) == "Established" and
                      B.bgp_state(a) == "Established", 40)
        e2e.check(up, "iBGP between the hubs' FRR over the overlay Established in %.1f s "
                  "(A: %s, B: %s)" % (time.time() - t0, A.bgp_state(b), B.bgp_state(a)))
        if BFD:
            bfd = wait_for(lambda: B.bfd_status(a) == "up" and A.bfd_status(b) == "up", 15)
            e2e.check(bfd, "BFD session between the hubs up (B sees %s)" % B.bfd_status(a))

        # Spokes register with both hubs: their NHRP entries resolve the routes' next hops.
        sims = [mh.spokesim(d, "a", 0, "AB", 3, lan), mh.spokesim(d, "b", mh.SPOKES, "BA", 3, lan)]
        procs = [p for p, _ in sims]
        wanted = ((B, LANS["A"], a), (A, LANS["B"], b), (B, ONLY_A, spoke_overlay(0)))
        wait_for(lambda: all((learned(*w) or {}).get("state") == "complete" for w in wanted), 30)
        for site, prefix, via in wanted:
            r = learned(site, prefix, via)
            e2e.check(r is not None and r["state"] == "complete",
                      "hub %s's FIB: %s learned through BGP, via %s, resolved to NBMA %s (%s)"
                      % (site.name, prefix, via, r and r["nbma"], r))
        print(B.hub.ctl("show", "ip", "route"), flush=True)
        statics = B.routes().get("172.16.0.0/24")
        e2e.check(statics is not None and statics["next_hop"] == spoke_overlay(0),
                  "hub B's FIB: the spokes' LANs from FRR's staticd (%s)" % statics)
        for tag, r in zip("ab", [mh.report(*s) for s in sims]):
            e2e.check(r is not None and r["sent"] > 0 and r["lost"] == 0 and r["corrupt"] == 0,
                      "both hubs up, LAN to LAN through FRR's routes: emulator %s sent %s, "
                      "received %s, lost %s" % (tag, r and r["sent"], r and r["received"],
                                                r and r["lost"]))

        # Traffic over a BGP-learned route: hub B's spokes (a third emulator, registered with
        # hub B only) send to a host on hub A's LAN; hub B routes it by 192.168.1.0/24 (B, via
        # hub A's overlay address) to hub A over the overlay, and hub A out of its LAN port.
        recv = subprocess.Popen(["ip", "netns", "exec", A.ns, "/usr/bin/python3", "-c", RECEIVER,
                                 LAN_HOST], stdout=subprocess.PIPE, text=True)
        recv.stdout.readline()  # listening
        # The host says hello first (RFC 826: hub A learns it from the ARP request for its own
        # address), so the first packets find its MAC known instead of waiting for ARP.
        ping = sh("ip", "netns", "exec", A.ns, "ping", "-c", 1, "-W", 2, "192.168.1.1",
                  check=False)
        e2e.check(ping.returncode == 0, "hub A answers its LAN host (%s)"
                  % ping.stdout.strip().splitlines()[-1:])
        t_c = time.time()
        c = mh.spokesim(d, "c", 2 * mh.SPOKES, "B", 2, ["--data-to", LAN_HOST])
        procs.append(c[0])
        rc_ = mh.report(*c)
        recv.terminate()
        got = (recv.communicate(timeout=10)[0].split() or ["0"])
        arrived, sources = int(got[0]), set(got[1:])
        spokes_c = {spoke_overlay(2 * mh.SPOKES + n) for n in range(mh.SPOKES)}
        e2e.check(rc_ is not None and rc_["registered"] == mh.SPOKES and rc_["sent"] > 0 and
                  arrived == rc_["sent"] and sources == spokes_c,
                  "hub B's spokes to %s on hub A's LAN over the BGP-learned %s (via %s): sent "
                  "%s, arrived %d (from %s) in %.1f s" % (LAN_HOST, LANS["A"], a,
                                                         rc_ and rc_["sent"], arrived,
                                                         sorted(sources), time.time() - t_c))
        rb_ = B.hub.json("show", "ip", "route", LANS["A"])["routes"]
        e2e.check(rb_ and rb_[0]["code"] == "B" and rb_[0]["next_hop"] == a and
                  rb_[0]["nbma"] == mh.HUBS["A"]["nbma"],
                  "... hub B's route for it: %s" % rb_)

        # Hub A killed mid-traffic: the host dies, FRR with it.
        sims = [mh.spokesim(d, "a", 0, "AB", 10, lan),
                mh.spokesim(d, "b", mh.SPOKES, "BA", 10, lan)]
        procs = [p for p, _ in sims]
        wait_for(lambda: all(spoke_overlay(n) in A.hub.dynamic()
                             for n in range(mh.SPOKES)), 20)
        time.sleep(3)
        print("uptime:", sh("uptime").stdout.strip(), flush=True)
        t_kill = time.time()
        A.hub.kill()
        down = gone = None
        end = t_kill + (25 if not BFD else 10)
        while time.time() < end and (down is None or gone is None):
            if down is None and B.bgp_state(a) not in ("Established", None):
                down = time.time() - t_kill
            if gone is None and LANS["A"] not in B.routes():
                gone = time.time() - t_kill
            time.sleep(0.05)
        A.stop_frr()
        how = "BFD (3 x 300 ms)" if BFD else "the hold timer (timers 5 15)"
        e2e.check(down is not None, "hub B's bgpd took the session to hub A down (%s): %s"
                  % (how, "%.2f s after the kill" % down if down is not None else "never"))
        e2e.check(gone is not None and ONLY_A not in B.routes(),
                  "hub A's routes left hub B's FIB: %s" %
                  ("%.2f s after the kill" % gone if gone is not None else "never"))
        if down is not None and gone is not None:
            print("MEASURED with %s: hub B's BGP session down %.2f s, hub A's routes out of hub "
                  "B's FIB %.2f s after hub A was killed" % (how, down, gone), flush=True)
        ra, rb = mh.report(*sims[0]), mh.report(*sims[1])
        e2e.check(ra is not None and ra["nhs_failovers"] >= 1,
                  "hub A's spokes failed over to hub B (%s failovers)"
                  % (ra and ra["nhs_failovers"]))
        if ra:
            gap = ra["lost"] / float(mh.RATE)
            e2e.check(ra["received"] > 0 and ra["lost"] < ra["sent"] / 2,
                      "hub A's spokes' LAN traffic continued through hub B (its static routes "
                      "from FRR): sent %d, received %d, lost %d (a gap of %.2f s at %d "
                      "packets/s)" % (ra["sent"], ra["received"], ra["lost"], gap, mh.RATE))
            print("MEASURED spoke traffic gap after hub A was killed: %.2f s" % gap, flush=True)
        e2e.check(rb is not None and rb["lost"] == 0,
                  "hub B's own spokes lost nothing (%s)" % (rb and rb["lost"]))
        statics = B.routes().get("172.16.0.0/24")
        e2e.check(statics is not None, "hub B still routes hub A's spokes' LANs (%s)" % statics)

        # Hub A's host back: the hub, then its FRR (a fresh zebra resyncs it in full over FPM);
        # the session comes back and each hub has the other's routes again.
        A.start_hub()
        t_launch = A.hub.started
        e2e.check(A.start_frr("-again"), "hub A and its FRR started again")
        again = wait_for(lambda: learned(B, LANS["A"], a) and learned(A, LANS["B"], b) and
                         "172.16.7.0/24" in A.routes(), 30)
        back = time.time() - t_launch
        e2e.check(again and B.bgp_state(a) == "Established",
                  "after hub A's restart: the session Established again, 192.168.1.0/24 back "
                  "in hub B's FIB, and hub A's FIB has 192.168.2.0/24 and the spokes' LANs "
                  "from its new zebra (%.1f s after A was launched)" % back)
        if again:
            print("MEASURED hub A's routes back in hub B's FIB %.2f s after hub A was launched "
                  "(its FRR started once it ran)" % back, flush=True)
    finally:
        mh.clean_up(procs, [s.close for s in sites.values()])
    mh.verdict(d)


if __name__ == "__main__":
    main()
