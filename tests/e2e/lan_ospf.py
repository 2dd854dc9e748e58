#!/usr/bin/env python3
"""OSPF on a LAN port's kernel interface (issue 12 part 1): link-local multicast both ways
between a LAN and the hub's host, end to end. In a network namespace of its own (unshare -n):

  - build/dmvpn-hub with a LAN port (net_tap, its kernel side on a bridge with a veth to a
    neighbour namespace), `routing.interfaces` dmvpn-lan for it (198.18.0.1/24) and FPM on;
    build/dmvpn-spokesim registers 2 spokes over net_memif inside ESP
  - the hub's FRR (scripts/frr-hub: zebra with FPM, ospfd on dmvpn-lan) and a neighbour's FRR
    (Debian's zebra + ospfd in the neighbour namespace, on its veth, advertising
    172.31.1.0/24 on a veth of its own), both `ip ospf network broadcast`, 1 s hellos
  - they reach Full (times printed): the neighbour's hellos to 224.0.0.5 (and 224.0.0.6)
    crossed the hub's workers and were punted to dmvpn-lan (exception counter
    to_kernel_multicast), the hub's kernel's hellos left the LAN port with the mapped MAC
    01:00:5e:00:00:05 (seen by a packet socket in the neighbour namespace; counter
    from_kernel_multicast)
  - the neighbour's 172.31.1.0/24 lands in the hub's FIB as `O` (protocol ospf, source fpm),
    its next hop 198.18.0.2 resolved by ARP on the LAN port
  - spoke traffic (UDP, the emulator's `--data-to`) to 172.31.1.1 crosses the hub's workers to
    the neighbour: received by a socket there, the LAN port's worker TX counted
  - unicast from the hub's kernel still works: `ping -I dmvpn-lan` the neighbour's LAN and
    OSPF-learned addresses
  - a flood of 224.0.0.9 from the LAN (3000 a second for 3 s against dmvpn-lan's rate of 300)
    is policed and counted, at most the rate reaches the kernel; OSPF is Full afterwards
    (whether the adjacency lived through it printed)
  - broadcasts the hub's kernel sends out of dmvpn-lan (UDP to 255.255.255.255 and to the
    subnet's 198.18.0.255) leave the port to ff:ff:ff:ff:ff:ff (seen by the same packet
    socket; counter from_kernel_broadcast)
With the argument `underlay` the port is an underlay port instead (role underlay, no
allow-transit): OSPF reaches Full the same way (the workers punt its link-local multicast
although the port drops transit), the hellos, broadcasts, counters, kernel unicast and flood
checks pass; the neighbour's prefix is refused, visibly: listed under `show ip route`'s "FRR
routes not installed" (JSON `refused`, reason underlay_transit, the port and the next hop) and
counted (fpm_underlay_refused), never in the FIB (what came back from behind that next hop
would be dropped as underlay_transit). With `transit` the underlay port has allow-transit:
the prefix is installed and used as on a LAN port (next hop ARPed on the port, spoke traffic
reaches the neighbour, the kernel pings the prefix).
Times are printed, never asserted. About 40 s. Needs root, /dev/net/tun and
Debian's FRR (exit 77 otherwise).
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402  (the hub and emulator helpers)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hub_process import wait_for  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FRR_HUB = os.path.join(ROOT, "scripts", "frr-hub")
FRR = "/usr/lib/frr"
SPOKES = 2
IFACE = "dmvpn-lan"
PREFIX = "172.31.1.0/24"
TARGET = "172.31.1.1"
UDP_PORT = 9  # where the emulator's --data-to sends
DATA_RATE = 200  # packets a second, all spokes together
DATA_SECONDS = 3
RATE = 300  # dmvpn-lan's rate, each way (packets a second)
FLOOD_PPS = 3000  # the LAN's flood of 224.0.0.9 (RIP's group), against that rate
FLOOD_SECONDS = 3
BROADCASTS = ("255.255.255.255", "198.18.0.255")
# Seconds after Full for the neighbour's prefix to reach the hub (about 10 s: FRR's LSA and SPF
# timers); more on a loaded machine, where an adjacency may also form again.
ROUTE_WAIT = 45

ROUTING = """\
routing:
  interfaces:
    - port: lan
      name: %s
      rate: %d
  fpm: {}
""" % (IFACE, RATE)
# `underlay`: the same port as a second underlay port (no allow-transit): its link-local
# multicast still reaches the kernel interface, the rest of what is not for the hub is dropped,
# and routes through its neighbour are refused. `transit`: an underlay port with allow-transit,
# which routes like a LAN port.
VARIANT = sys.argv[1] if len(sys.argv) > 1 else "lan"
ROUTED = VARIANT in ("lan", "transit")  # the neighbour's prefix installed and used
LAN_PORT = """\
  - name: lan
    device: net_tap1,iface=dlan0,mac=02:00:00:00:13:01
    role: %s
    address: 198.18.0.1/24
%stunnels:
""" % ("lan" if VARIANT == "lan" else "underlay",
       "    allow-transit: true\n" if VARIANT == "transit" else "")
OSPF_IFACE = """\
 ip ospf network broadcast
 ip ospf hello-interval 1
 ip ospf dead-interval 4
"""
HUB_OSPFD = """\
interface %s
%s!
router ospf
 ospf router-id 198.18.0.1
 network 198.18.0.0/24 area 0
!
""" % (IFACE, OSPF_IFACE)
NEIGHBOUR_OSPFD = """\
interface vl
%s!
router ospf
 ospf router-id 198.18.0.2
 network 198.18.0.0/24 area 0
 network %s area 0
!
""" % (OSPF_IFACE, PREFIX)


def sh(*cmd, check=True):
    return subprocess.run([str(c) for c in cmd], check=check, capture_output=True, text=True)


class neighbour_frr:
    """Debian's zebra + ospfd in namespace `ns` (no FPM): the router on the other side of the
    LAN port."""

    def __init__(self, d, ns):
        self.ns = ns
        self.run = os.path.join(d, "frr-neighbour")
        os.makedirs(self.run)
        shutil.chown(self.run, "frr", "frr")
        common = ["-z", self.run + "/zserv.api", "--vty_socket", self.run, "-u", "frr", "-g",
                  "frr", "--log", "file:%s/frr.log" % self.run]
        for daemon, text in (("zebra", "!\n"), ("ospfd", NEIGHBOUR_OSPFD)):
            conf = os.path.join(self.run, daemon + ".conf")
            with open(conf, "w") as f:
                f.write(text)
            shutil.chown(conf, "frr", "frr")
            sh("ip", "netns", "exec", ns, os.path.join(FRR, daemon), "-d", "-f", conf, "-i",
               "%s/%s.pid" % (self.run, daemon), *common)
            if not wait_for(lambda: os.path.exists("%s/%s.pid" % (self.run, daemon)) and (
                    daemon != "zebra" or os.path.exists(self.run + "/zserv.api")), 10, 0.1):
                raise SystemExit("the neighbour's %s did not start" % daemon)

    def vtysh(self, what):
        return sh("vtysh", "--vty_socket", self.run, "-c", what, check=False).stdout

    def stop(self):
        for daemon in ("ospfd", "zebra"):
            try:
                with open("%s/%s.pid" % (self.run, daemon)) as f:
                    os.kill(int(f.read().strip()), 15)
            except (OSError, ValueError):
                pass


def hub_vtysh(run, what):
    return sh("vtysh", "--vty_socket", run, "-c", what, check=False).stdout


def full_neighbour(run):
    """The hub's ospfd neighbour 198.18.0.2 when Full on dmvpn-lan, else None."""
    try:
        n = json.loads(hub_vtysh(run, "show ip ospf neighbor json")).get("neighbors", {})
    except ValueError:
        return None
    for row in n.get("198.18.0.2", []):
        if row.get("nbrState", "").startswith("Full") and IFACE in row.get("ifaceName", ""):
            return row
    return None


def fib_route(h, prefix):
    try:
        rows = h.json("show", "ip", "route")["routes"]
    except (SystemExit, ValueError, KeyError):
        return None
    for r in rows:
        if r["prefix"] == prefix:
            return r
    return None


def capture_frames(ns, seconds):
    """Starts a packet socket on the neighbour's veth collecting, for `seconds`, the IPv4
    frames from 198.18.0.1 to 224.0.0.0/24, 255.255.255.255 or 198.18.0.255; returns the
    process once it listens. frames_of(process): a list of (destination MAC, destination
    address, protocol)."""
    prog = (
        "import socket, struct, sys, time, json\n"
        "s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))\n"
        "s.bind(('vl', 0)); s.settimeout(0.2)\n"
        "print('listening', flush=True)\n"
        "out, end = [], time.time() + %f\n"
        "while time.time() < end:\n"
        "    try:\n"
        "        f = s.recv(2048)\n"
        "    except socket.timeout:\n"
        "        continue\n"
        "    ip = f[14:]\n"
        "    if len(ip) < 20 or ip[12:16] != bytes([198, 18, 0, 1]):\n"
        "        continue\n"
        "    if ip[16:19] == bytes([224, 0, 0]) or ip[16:20] in (bytes([255] * 4), "
        "bytes([198, 18, 0, 255])):\n"
        "        out.append([f[:6].hex(':'), socket.inet_ntoa(ip[16:20]), ip[9]])\n"
        "print(json.dumps(out))\n" % seconds)
    p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", prog],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdout.readline()  # "listening" (or EOF if it failed)
    return p


def frames_of(p):
    out, err = p.communicate(timeout=60)
    try:
        return json.loads(out)
    except ValueError:
        print(err)
        return []


def kernel_broadcasts():
    """UDP from the hub's kernel out of dmvpn-lan to the limited and the subnet's directed
    broadcast (SO_BINDTODEVICE, SO_BROADCAST), 3 of each."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, IFACE.encode())
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.bind(("198.18.0.1", 0))
        for _ in range(3):
            for dst in BROADCASTS:
                s.sendto(b"broadcast from the hub's kernel", (dst, 9999))
            time.sleep(0.1)
    finally:
        s.close()


def udp_counter(ns, seconds):
    """A socket on TARGET:UDP_PORT in the neighbour namespace, counting datagrams for
    `seconds` (a process: its count on stdout)."""
    prog = (
        "import socket, time\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.bind(('%s', %d)); s.settimeout(0.2)\n"
        "n, src, end = 0, set(), time.time() + %f\n"
        "while time.time() < end:\n"
        "    try:\n"
        "        _, a = s.recvfrom(4096); n += 1; src.add(a[0])\n"
        "    except socket.timeout:\n"
        "        pass\n"
        "print(n, ','.join(sorted(src)))\n" % (TARGET, UDP_PORT, seconds))
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", prog],
                            stdout=subprocess.PIPE, text=True)


def flood(ns, pps, seconds):
    """UDP to 224.0.0.9:520 out of the neighbour's veth at about `pps` for `seconds`; returns
    how many were sent."""
    prog = (
        "import socket, time\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton('198.18.0.2'))\n"
        "s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)\n"
        "n, t0 = 0, time.time()\n"
        "while time.time() - t0 < %f:\n"
        "    while n < (time.time() - t0) * %d:\n"
        "        s.sendto(b'flood' * 8, ('224.0.0.9', 520)); n += 1\n"
        "    time.sleep(0.005)\n"
        "print(n)\n" % (seconds, pps))
    r = sh("ip", "netns", "exec", ns, sys.executable, "-c", prog, check=False)
    return int(r.stdout.strip() or 0)


def exception_row(h):
    for x in h.json("show", "stats")["exception"]:
        if x["interface"] == IFACE:
            return x
    return {}


def lan_tx_by_workers(h):
    """Packets the workers sent on the LAN port."""
    for p in h.json("show", "stats")["ports"]:
        if p.get("name") == "lan":
            return p["worker_tx_packets"]
    return None


def main():
    if VARIANT not in ("lan", "underlay", "transit"):
        raise SystemExit("usage: lan_ospf.py [lan|underlay|transit]")
    e2e.reexec_in_netns(__file__, "DMVPN_LAN_OSPF_NS")
    if not os.path.exists(os.path.join(FRR, "ospfd")) or shutil.which("vtysh") is None:
        print("SKIP: needs Debian's frr (ospfd, vtysh)")
        sys.exit(77)
    sh("ip", "link", "set", "lo", "up")
    e2e.CONFIG = e2e.CONFIG.replace("tunnels:\n", LAN_PORT, 1)
    d = tempfile.mkdtemp(prefix="e2e-lan-ospf-")
    os.chmod(d, 0o755)
    ns = "dmvpn-lanospf-%d" % os.getpid()
    h = e2e.hub(d, SPOKES, hub_extra=ROUTING)
    hub_run = os.path.join(d, "frr-hub")
    nb = None
    sim = None
    try:
        # The LAN: the tap's kernel side and a veth on a bridge, the veth's peer in `ns`.
        end = time.time() + 30
        while sh("ip", "link", "set", "dlan0", "address", "02:00:00:00:13:fe", check=False) \
                .returncode:
            if time.time() > end:
                raise SystemExit("the hub's tap dlan0 never appeared")
            time.sleep(0.2)
        sh("ip", "link", "add", "br0", "type", "bridge")
        sh("ip", "link", "set", "dlan0", "master", "br0", "up")
        sh("ip", "link", "add", "vh", "type", "veth", "peer", "name", "vl")
        sh("ip", "link", "set", "vh", "master", "br0", "up")
        # No ARP on the bridge: this namespace holds 198.18.0.1 too (the kernel interface),
        # and its kernel would answer the LAN's ARP for it beside the hub, which then loses
        # the LAN's unicast whenever the kernel's reply comes last.
        sh("ip", "link", "set", "br0", "arp", "off", "up")
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "set", "vl", "netns", ns)
        sh("ip", "-n", ns, "addr", "add", "198.18.0.2/24", "dev", "vl")
        sh("ip", "-n", ns, "link", "set", "vl", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        # The neighbour's own LAN: a veth pair inside its namespace (no dummy module here).
        sh("ip", "-n", ns, "link", "add", "lan0", "type", "veth", "peer", "name", "lan1")
        sh("ip", "-n", ns, "addr", "add", TARGET + "/24", "dev", "lan0")
        sh("ip", "-n", ns, "link", "set", "lan0", "up")
        sh("ip", "-n", ns, "link", "set", "lan1", "up")
        out = sh("ip", "-4", "-o", "addr", "show", "dev", IFACE).stdout
        e2e.check("198.18.0.1/24" in out, "kernel interface %s carries 198.18.0.1/24: %s"
                  % (IFACE, out.strip()))

        before = exception_row(h)
        with open(os.path.join(d, "ospfd-hub.conf"), "w") as f:
            f.write(HUB_OSPFD)
        t0 = time.time()
        r = sh(FRR_HUB, "start", "--run-dir", hub_run, "--ospfd",
               os.path.join(d, "ospfd-hub.conf"), check=False)
        print((r.stdout + r.stderr).strip(), flush=True)
        e2e.check(r.returncode == 0, "the hub's FRR (zebra with FPM, ospfd) started")
        nb = neighbour_frr(d, ns)

        row = wait_for(lambda: full_neighbour(hub_run), 30, 0.25)
        t_full = time.time() - t0
        print(hub_vtysh(hub_run, "show ip ospf neighbor"))
        print(nb.vtysh("show ip ospf neighbor"))
        e2e.check(row is not None, "the hub's ospfd has 198.18.0.2 Full on %s, %.1f s after "
                  "FRR started (dead interval 4 s: DR election waits that long)" % (IFACE, t_full))
        e2e.check("Full" in nb.vtysh("show ip ospf neighbor 198.18.0.1"),
                  "the neighbour's ospfd has 198.18.0.1 Full")
        if row is None:
            raise SystemExit("no adjacency: the rest needs it (counters: %s)"
                             % json.dumps(exception_row(h)))

        # When zebra selected the route, and when the hub had it (FPM, then ARP): installed,
        # or (an underlay port without allow-transit) listed as refused.
        t_zebra = None

        def in_zebra():
            nonlocal t_zebra
            if t_zebra is None and PREFIX in hub_vtysh(hub_run, "show ip route ospf json"):
                t_zebra = time.time() - t0

        def why_not():
            if t_zebra is None:
                print("zebra never selected %s; the hub's ospfd:" % PREFIX)
                print(hub_vtysh(hub_run, "show ip ospf neighbor"))
                print(hub_vtysh(hub_run, "show ip ospf database"))

        def route_state(found, what):
            """Waits for `found` (zebra's route polled alongside); prints the times from FRR's
            start, and why not when it never came; returns (what found gave, seconds)."""
            def polled():
                in_zebra()
                return found()
            r = wait_for(polled, ROUTE_WAIT, 0.1)
            if r is None:
                why_not()
            t = time.time() - t0
            print("times from FRR's start: Full %.1f s, in zebra %s s, %s %.1f s"
                  % (t_full, "%.1f" % t_zebra if t_zebra is not None else "?", what, t))
            return r, t

        if ROUTED:
            nb_mac = json.loads(sh("ip", "-n", ns, "-j", "link", "show", "vl").stdout)[0]["address"]

            def in_fib():
                r = fib_route(h, PREFIX)
                return r if r and r.get("state") == "complete" else None
            fib, t_fib = route_state(in_fib, "in the hub's FIB")
            print(h.ctl("show", "ip", "route"))
            e2e.check(fib is not None and fib["code"] == "O" and fib["protocol"] == "ospf" and
                      fib["source"] == "fpm" and fib["next_hop"] == "198.18.0.2" and
                      fib["interface"] == "lan" and fib["mac"] == nb_mac,
                      "%s in the hub's FIB as O (ospf, from FPM) via 198.18.0.2 on port lan, "
                      "ARPed (the neighbour's MAC %s), %.1f s after FRR started: %s"
                      % (PREFIX, nb_mac, t_fib, json.dumps(fib)))
        else:
            # An underlay port that drops transit: refused, listed and counted, not installed.
            def refused():
                rows = h.json("show", "ip", "route", PREFIX)
                return rows if rows["refused"] else None
            shown, t_ref = route_state(refused, "refused by the hub")
            text = h.ctl("show", "ip", "route")
            print(text)
            no = (shown or {}).get("refused", [{}])[0]
            e2e.check(shown is not None and not shown["routes"] and no["code"] == "O" and
                      no["next_hop"] == "198.18.0.2" and no["interface"] == "lan" and
                      no["reason"] == "underlay_transit" and fib_route(h, PREFIX) is None,
                      "%s via 198.18.0.2 not in the hub's FIB, listed as refused on port lan "
                      "(underlay_transit): %s" % (PREFIX, json.dumps(shown)))
            e2e.check("O        %s via 198.18.0.2, lan, refused: underlay port without "
                      "allow-transit" % PREFIX in text, "show ip route says why")
            routing = h.json("show", "stats")["routing"]
            e2e.check(routing.get("fpm_underlay_refused", 0) >= 1 and
                      routing.get("fpm_not_installed", 0) >= 1,
                      "counted: fpm_underlay_refused %s, fpm_not_installed %s"
                      % (routing.get("fpm_underlay_refused"), routing.get("fpm_not_installed")))

        # The hub's hellos on the LAN: the mapped MAC; the kernel's broadcasts: ff:ff:ff:ff:ff:ff.
        before_bcast = exception_row(h).get("from_kernel_broadcast", 0)
        cap = capture_frames(ns, 2.5)
        kernel_broadcasts()
        frames = frames_of(cap)
        mcast = [f for f in frames if f[1].startswith("224.")]
        bcast = [f for f in frames if not f[1].startswith("224.")]
        print("multicast from 198.18.0.1 on the LAN:", sorted({tuple(f) for f in mcast}))
        print("broadcast from 198.18.0.1 on the LAN:", sorted({tuple(f) for f in bcast}))
        e2e.check(any(p == 89 and dst == "224.0.0.5" and mac == "01:00:5e:00:00:05"
                      for mac, dst, p in mcast) and
                  all(mac == "01:00:5e:00:00:%02x" % int(dst.split(".")[3])
                      for mac, dst, _ in mcast),
                  "the hub's OSPF hellos left the LAN port to 01:00:5e:00:00:05 (every "
                  "224.0.0.x frame to its mapped MAC; %d frames)" % len(mcast))
        e2e.check(all(any(dst == b and p == 17 for _, dst, p in bcast) for b in BROADCASTS) and
                  all(mac == "ff:ff:ff:ff:ff:ff" for mac, _, _ in bcast),
                  "the kernel's UDP to %s left the port to ff:ff:ff:ff:ff:ff (%d frames)"
                  % (" and ".join(BROADCASTS), len(bcast)))
        x = exception_row(h)
        e2e.check(x.get("from_kernel_broadcast", 0) - before_bcast >= 2 * len(BROADCASTS),
                  "counted from_kernel_broadcast: %d"
                  % (x.get("from_kernel_broadcast", 0) - before_bcast))
        stats = h.json("show", "stats")
        print("exception counters:", json.dumps(x))
        print("multicast punted by the workers: %s; link-local dropped by the control lcore "
              "(no kernel interface took it): %d" % (json.dumps(stats["punts"]["multicast"]),
                                                    stats["control"]["multicast_link_local"]))
        e2e.check(x.get("to_kernel_multicast", 0) > before.get("to_kernel_multicast", 0),
                  "link-local multicast from the LAN punted to %s: %d packets"
                  % (IFACE, x.get("to_kernel_multicast", 0)))
        e2e.check(x.get("from_kernel_multicast", 0) > 0 and x.get("from_kernel_unsent", 0) == 0,
                  "the kernel's multicast out of %s sent on the LAN port: %d (%d not sent)"
                  % (IFACE, x.get("from_kernel_multicast", 0), x.get("from_kernel_unsent", 0)))

        # Unicast from the hub's kernel: a LAN host, and the OSPF-learned prefix.
        for addr in ("198.18.0.2", TARGET) if ROUTED else ("198.18.0.2",):
            ping = sh("ping", "-n", "-c", "3", "-i", "0.3", "-W", "3", "-I", IFACE, addr,
                      check=False)
            print(ping.stdout.strip())
            e2e.check(ping.returncode == 0, "ping -I %s %s answered" % (IFACE, addr))

        if ROUTED:
            # Spokes' traffic to the OSPF-learned prefix, through the workers.
            rx = udp_counter(ns, DATA_SECONDS + 8)
            tx_before = lan_tx_by_workers(h)
            sim_cmd = [e2e.SIM, "--queues", "2", "--vdev",
                       "net_memif0,role=client,socket=%s/memif.sock" % d, "--tunnel-prefix",
                       "10.0.0.0/16", "--no-progress", "--linger", "--spokes", SPOKES, *e2e.GOOD,
                       "--rate", DATA_RATE, "--data-to", TARGET,
                       "--duration", DATA_SECONDS, "--eal",
                       "-l 0 --no-huge -m 512 --no-pci --no-telemetry "
                       "--file-prefix e2e-lospf-sim-%d" % os.getpid()]
            out_path = os.path.join(d, "spokesim.out")
            with open(out_path, "w") as so, open(os.path.join(d, "spokesim.err"), "w") as se:
                sim = subprocess.Popen([str(a) for a in sim_cmd], stdout=so, stderr=se)
            rep = wait_for(lambda: e2e.report_of(out_path), 60, 0.2)
            got, sources = rx.communicate(timeout=30)[0].split(" ", 1) if rx else ("0", "")
            got, sources = int(got), sources.strip()
            tx_after = lan_tx_by_workers(h)
            e2e.check(rep is not None and rep["registered"] == SPOKES, "%d spokes registered"
                      % (rep or {}).get("registered", 0))
            sent = (rep or {}).get("sent", 0)
            print("spokesim:", rep and {k: rep[k] for k in ("registered", "sent")})
            e2e.check(sent > 0 and got >= sent * 0.95,
                      "spoke UDP to %s:%d reached the neighbour: %d of %d datagrams, from %s"
                      % (TARGET, UDP_PORT, got, sent, sources))
            e2e.check(tx_before is not None and tx_after - tx_before >= got,
                      "the LAN port's workers sent them: %d frames"
                      % ((tx_after or 0) - (tx_before or 0)))

        # A flood of link-local multicast from the LAN: policed by the workers (multicast punt
        # budget) and by dmvpn-lan's rate, counted; OSPF Full again (or still) afterwards.
        stats0, x0 = h.json("show", "stats"), exception_row(h)
        t_flood = time.time()
        sent = flood(ns, FLOOD_PPS, FLOOD_SECONDS)
        dt = time.time() - t_flood
        stats1, x1 = h.json("show", "stats"), exception_row(h)
        policed = (stats1["punt_policing"]["multicast"]["policed"] -
                   stats0["punt_policing"]["multicast"]["policed"])
        passed = x1["to_kernel_multicast"] - x0["to_kernel_multicast"]
        limited = x1["to_kernel_limited"] - x0["to_kernel_limited"]
        print("flood: %d packets to 224.0.0.9 in %.1f s; workers policed %d (multicast budget "
              "%d/s), %d to the kernel, %d over %s's rate %d/s" % (
                  sent, dt, policed, stats1["punt_policing"]["multicast"]["rate"], passed,
                  limited, IFACE, RATE))
        e2e.check(sent > 0 and passed <= RATE * dt + 64 and policed + limited > 0,
                  "the flood was cut to the interface's rate and counted (%d of %d to the "
                  "kernel in %.1f s)" % (passed, sent, dt))
        row = wait_for(lambda: full_neighbour(hub_run), 20, 0.25)
        up_ms = (row or {}).get("upTimeInMsec", 0)
        e2e.check(row is not None, "after the flood 198.18.0.2 is Full on %s (up %.1f s: %s)"
                  % (IFACE, up_ms / 1000.0, "kept through the flood"
                     if up_ms / 1000.0 > time.time() - t_flood else "lost and formed again"))
    finally:
        e2e.stop_sim(d, sim)
        if os.path.isdir(hub_run):
            sh(FRR_HUB, "stop", "--run-dir", hub_run, check=False)
        if nb is not None:
            if e2e.failures:
                print(nb.vtysh("show ip ospf interface"))
                with open(os.path.join(nb.run, "frr.log")) as f:
                    print("neighbour FRR log:\n" + f.read()[-3000:])
            nb.stop()
        if e2e.failures and os.path.exists(os.path.join(hub_run, "frr.log")):
            print(hub_vtysh(hub_run, "show ip ospf interface"))
            with open(os.path.join(hub_run, "frr.log")) as f:
                print("hub FRR log:\n" + f.read()[-3000:])
        h.stop()
        sh("ip", "netns", "del", ns, check=False)
    print("%d failure(s)" % len(e2e.failures))
    sys.exit(1 if e2e.failures else 0)


if __name__ == "__main__":
    main()
