#!/usr/bin/env python3
"""The exception path end to end: build/dmvpn-hub with `routing.interfaces` (a net_tun kernel
interface for tun0) and build/dmvpn-spokesim over net_memif, ESP on, in a network namespace of
its own (unshare -n: the kernel interface and its 10.0.0.0/16 route stay out of the host's).

  - the kernel interface dmvpn-tun0 appears, up, with the tunnel's address 10.0.0.1/16
  - `ping -I dmvpn-tun0` from the kernel to a spoke's overlay address is answered: the request
    leaves the hub as GRE + ESP to the spoke's NBMA address (NHRP cache), the reply comes back
    to the kernel through the punt path
  - UDP from the spokes to the hub's overlay address (not NHRP) reaches a socket on the host
  - multicast the kernel sends to 224.0.0.5 out of dmvpn-tun0 is replicated to every
    registered spoke (the multicast map), and so are its broadcasts to 255.255.255.255 and
    10.0.255.255 (counted from_kernel_broadcast, multicast_copies)
  - a LAN port's kernel interface (dmvpn-lan, `unnumbered: true`: 198.18.0.1/32 and a route
    198.18.0.0/24 through it): the kernel pings a host on the
    LAN (another namespace behind a bridge) through the hub's ARP, and the host's UDP to the
    port's address reaches a socket on the hub's host
  - the spokes' UDP is a flood (3000 packets a second against the interface's rate of 200):
    the excess is dropped and counted (`show stats` exception.to_kernel_limited, the Prometheus
    family), while NHRP keeps working (registrations refreshed every 2 s all answered, every
    spoke still in the cache at the end)
Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN for unshare) and /dev/net/tun; else skipped (77).
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402  (the hub and emulator helpers)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hub_process import wait_for  # noqa: E402

SPOKES = 4
IFACE = "dmvpn-tun0"
UDP_PORT = 7000
MCAST_PACKETS = 5
BROADCASTS = ("255.255.255.255", "10.0.255.255")  # limited, and 10.0.0.0/16's directed
RATE = 200
QUIET = 8  # seconds between the registrations and the flood: ping and multicast go first

ROUTING = """\
routing:
  interfaces:
    - tunnel: tun0
      name: %s
      rate: %d
    - port: lan
      name: dmvpn-lan
      unnumbered: true
""" % (IFACE, RATE)
# A LAN port (net_tap: its kernel side dlan0 on a bridge with a veth to a LAN host namespace).
LAN_PORT = """\
  - name: lan
    device: net_tap1,iface=dlan0,mac=02:00:00:00:12:01
    role: lan
    address: 198.18.0.1/24
tunnels:
"""


def sh(*cmd):
    subprocess.run([str(c) for c in cmd], check=True)


def lan_port_checks():
    ns = "dmvpn-exc-lan-%d" % os.getpid()
    sh("ip", "link", "add", "br0", "type", "bridge")
    sh("ip", "link", "set", "dlan0", "address", "02:00:00:00:12:fe", "master", "br0", "up")
    sh("ip", "link", "add", "vh", "type", "veth", "peer", "name", "vl")
    sh("ip", "link", "set", "vh", "master", "br0", "up")
    # No ARP on the bridge: this namespace holds 198.18.0.1 too (the kernel interface),
    # and its kernel would answer the LAN's ARP for it beside the hub, which then loses
    # the LAN's unicast whenever the kernel's reply comes last.
    sh("ip", "link", "set", "br0", "arp", "off", "up")
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "set", "vl", "netns", ns)
        sh("ip", "-n", ns, "addr", "add", "198.18.0.2/24", "dev", "vl")
        sh("ip", "-n", ns, "link", "set", "vl", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        out = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", "dmvpn-lan"],
                             capture_output=True, text=True).stdout
        e2e.check("198.18.0.1/32" in out,
                  f"kernel interface dmvpn-lan (unnumbered) carries 198.18.0.1/32: {out.strip()}")
        out = subprocess.run(["ip", "-4", "route", "show", "198.18.0.0/24"],
                             capture_output=True, text=True).stdout
        e2e.check("dev dmvpn-lan" in out, f"198.18.0.0/24 routed out of dmvpn-lan: {out.strip()}")
        ping = subprocess.run(["ping", "-n", "-c", "3", "-i", "0.3", "-W", "3", "-I",
                               "dmvpn-lan", "198.18.0.2"], capture_output=True, text=True)
        print(ping.stdout.strip())
        e2e.check(ping.returncode == 0, "ping -I dmvpn-lan 198.18.0.2 (a LAN host) answered")
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("198.18.0.1", 7001))
        rx.settimeout(5)
        sh("ip", "netns", "exec", ns, sys.executable, "-c",
           "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
           "[s.sendto(b'lan', ('198.18.0.1', 7001)) for _ in range(3)]")
        try:
            data, (src, _) = rx.recvfrom(100)
        except socket.timeout:
            data, src = None, None
        e2e.check(data == b"lan" and src == "198.18.0.2",
                  "UDP from the LAN host to 198.18.0.1 reached a socket on the hub's host")
    finally:
        subprocess.run(["ip", "netns", "del", ns])


def main():
    e2e.reexec_in_netns(__file__, "DMVPN_EXCEPTION_NS")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    # Spokes register with the multicast flag: the hub's multicast map holds them.
    e2e.CONFIG = e2e.CONFIG.replace(
        "      max-cache-entries: 8192\n",
        "      max-cache-entries: 8192\n      multicast:\n        dynamic: true\n"
    ).replace("tunnels:\n", LAN_PORT, 1)
    d = tempfile.mkdtemp(prefix="e2e-exception-")
    h = e2e.hub(d, SPOKES, hub_extra=ROUTING)
    sim = None
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", IFACE],
                             capture_output=True, text=True)
        e2e.check("10.0.0.1/16" in out.stdout,
                  "kernel interface %s carries 10.0.0.1/16 (%s)" % (IFACE, out.stdout.strip()))
        link = subprocess.run(["ip", "-o", "link", "show", "dev", IFACE], capture_output=True,
                              text=True).stdout
        e2e.check(",UP" in link or "<UP" in link, "%s is up" % IFACE)

        # The host's socket on the hub's overlay address, before the spokes send to it.
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("10.0.0.1", UDP_PORT))
        rx.settimeout(0.2)

        sim_cmd = [e2e.SIM, "--queues", "2", "--vdev",
                   "net_memif0,role=client,socket=%s/memif.sock" % d, "--tunnel-prefix",
                   "10.0.0.0/16", "--no-progress", "--linger", "--spokes", SPOKES,
                   *e2e.GOOD, "--holdtime", 6, "--rate", 3000, "--data-to-hub", UDP_PORT,
                   "--data-after", QUIET, "--duration", 10, "--eal",
                   "-l 0 --no-huge -m 512 --no-pci --no-telemetry --file-prefix e2e-exc-sim-%d"
                   % os.getpid()]
        out_path = os.path.join(d, "spokesim.out")
        with open(out_path, "w") as so, open(os.path.join(d, "spokesim.err"), "w") as se:
            sim = subprocess.Popen([str(a) for a in sim_cmd], stdout=so, stderr=se)

        end = time.time() + 90
        registered = 0
        while time.time() < end:
            registered = len([e for e in h.json("show", "nhrp") if e["type"] == "dynamic"])
            if registered >= SPOKES:
                break
            time.sleep(0.5)
        e2e.check(registered >= SPOKES, "%d spokes registered" % registered)
        flood_at = time.time() + QUIET + 0.5

        # Host kernel -> spoke overlay address, and the echo reply back.
        ping = subprocess.run(["ping", "-n", "-c", "3", "-i", "0.3", "-W", "3", "-I", IFACE,
                               "10.0.0.2"], capture_output=True, text=True)
        print(ping.stdout.strip())
        e2e.check(ping.returncode == 0, "ping -I %s 10.0.0.2 answered" % IFACE)

        # Host kernel -> 224.0.0.5 out of the tunnel interface: replicated to every spoke.
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("10.0.0.1"))
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        for _ in range(MCAST_PACKETS):
            tx.sendto(b"hello", ("224.0.0.5", 9999))
            time.sleep(0.05)
        time.sleep(1)

        # Host kernel -> the limited and the tunnel's directed broadcast out of the tunnel
        # interface: replicated over the multicast map like multicast (IOS's pseudo-broadcast).
        # The emulator counts only 224.0.0.0/4 as multicast: the hub's counters say it here.
        copies0 = h.json("show", "stats")["control"]["multicast_copies"]
        bcast0 = h.json("show", "stats")["exception"][0]["from_kernel_broadcast"]
        bx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        bx.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, IFACE.encode())
        bx.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        bx.bind(("10.0.0.1", 0))
        for dst in BROADCASTS:
            bx.sendto(b"broadcast", (dst, 9999))
        bx.close()
        copied = wait_for(lambda: h.json("show", "stats")["control"]["multicast_copies"] -
                          copies0 >= len(BROADCASTS) * SPOKES or None, 10, 0.1)
        x = h.json("show", "stats")["exception"][0]
        e2e.check(copied is not None and x["from_kernel_broadcast"] - bcast0 == len(BROADCASTS),
                  "the kernel's broadcasts to %s out of %s replicated to every spoke: %d "
                  "counted, %d copies" % (" and ".join(BROADCASTS), IFACE,
                                          x["from_kernel_broadcast"] - bcast0,
                                          h.json("show", "stats")["control"]["multicast_copies"]
                                          - copies0))

        # Spokes -> host socket, under the flood.
        while time.time() < flood_at:
            time.sleep(0.2)
        before = h.json("show", "stats")["exception"][0]
        t0 = time.time()
        got, sources = 0, set()
        until = time.time() + 3
        while time.time() < until:
            try:
                data, (src, _) = rx.recvfrom(4096)
                got += 1
                sources.add(src)
            except socket.timeout:
                pass
        e2e.check(got > 0 and all(s.startswith("10.0.0.") for s in sources),
                  "UDP from the spokes reached a socket on the host: %d datagrams from %s"
                  % (got, sorted(sources)))
        after = h.json("show", "stats")["exception"][0]
        dt = time.time() - t0
        passed = after["to_kernel"] - before["to_kernel"]
        limited = after["to_kernel_limited"] - before["to_kernel_limited"]
        e2e.check(limited > 0 and passed <= RATE * dt * 1.1 + 32,
                  "under the flood the kernel got %d packets in %.1f s (rate %d/s), %d dropped "
                  "over the rate" % (passed, dt, RATE, limited))

        stats = h.json("show", "stats")
        exc = stats["exception"]
        e2e.check(len(exc) == 2 and exc[0]["interface"] == IFACE, "show stats lists %s" % IFACE)
        x = exc[0]
        print("exception counters:", json.dumps(x))
        e2e.check(x["to_kernel_limited"] > 0,
                  "the flood towards 10.0.0.1 is rate limited: %d dropped, %d to the kernel"
                  % (x["to_kernel_limited"], x["to_kernel"]))
        e2e.check(x["from_kernel_multicast"] >= MCAST_PACKETS,
                  "%d multicast packets from the kernel" % x["from_kernel_multicast"])
        e2e.check(stats["control"]["multicast_copies"] >= MCAST_PACKETS * SPOKES,
                  "multicast copies: %d" % stats["control"]["multicast_copies"])
        e2e.check(len([e for e in h.json("show", "nhrp") if e["type"] == "dynamic"]) >= SPOKES,
                  "every spoke still registered under the flood")

        rep = None
        end = time.time() + 60
        while rep is None and time.time() < end:
            rep = e2e.report_of(out_path)
            time.sleep(0.2)
        e2e.check(rep is not None, "the emulator reported")
        if rep is not None:
            print("spokesim:", {k: rep[k] for k in ("registered", "registration_replies",
                                                   "registration_rejects", "sent",
                                                   "multicast_received", "echo_replies",
                                                   "corrupt")})
            e2e.check(rep["echo_replies"] >= 3, "the spoke answered %d echo requests"
                      % rep["echo_replies"])
            e2e.check(rep["multicast_received"] >= (MCAST_PACKETS + len(BROADCASTS)) * SPOKES,
                      "the spokes received %d multicast and broadcast copies ((%d + %d) sent x "
                      "%d spokes)" % (rep["multicast_received"], MCAST_PACKETS, len(BROADCASTS),
                                      SPOKES))
            e2e.check(rep["corrupt"] == 0, "no spoke took a copy for corrupt: %d"
                      % rep["corrupt"])
            e2e.check(rep["registration_rejects"] == 0 and
                      rep["registration_replies"] >= 3 * SPOKES,
                      "NHRP kept working under the flood: %d registration replies (refresh "
                      "every 2 s), %d rejects" % (rep["registration_replies"],
                                                  rep["registration_rejects"]))
        lan_port_checks()

        # The kernel interface holds 10.0.0.1/16: a reload that moves it is refused.
        path = os.path.join(d, "hub.yaml")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("overlay-address: 10.0.0.1", "overlay-address: 10.0.0.250"))
        r = subprocess.run([e2e.CTL, "--socket", h.sock, "reload"], capture_output=True,
                           text=True, timeout=30)
        e2e.check(r.returncode != 0 and "kernel interface" in r.stdout + r.stderr,
                  "a reload moving the tunnel's address is refused: %s"
                  % (r.stdout + r.stderr).strip())
        with open(path, "w") as f:
            f.write(text)
        metrics = h.ctl("show", "stats")
        e2e.check("Exception path %s" % IFACE in metrics, "show stats (text) has the exception "
                  "path line")
    finally:
        e2e.stop_sim(d, sim)
        h.stop()
    gone = subprocess.run(["ip", "link", "show", "dev", IFACE], capture_output=True)
    e2e.check(gone.returncode != 0, "the kernel interface is gone after the hub stopped")
    print("%d failure(s)" % len(e2e.failures))
    sys.exit(1 if e2e.failures else 0)


if __name__ == "__main__":
    main()
