#!/usr/bin/python3
"""FRR's routes in the running hub, from Debian's real zebra (dplane_fpm_nl) and staticd.

In a fresh network namespace: dmvpn-hub (net_pcap ports, `routing.fpm` with a 2 s settle) and
zebra + staticd with `fpm address 127.0.0.1`. Static routes configured in staticd appear in
`dmvpnctl show ip route --json` as FRR's (source fpm, protocol static, distance 1) with their
next hop on the hub's LAN port or tunnel; one removed through vtysh leaves; zebra killed, the
routes stay (hold); zebra restarted with another configuration, the hub ends with exactly the
new table: nothing stale, nothing missing. Needs root and the frr package; exit 77 without.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

FRR = "/usr/lib/frr"
if os.geteuid() != 0 or not os.path.exists(f"{FRR}/zebra"):
    print("SKIP: needs root and Debian's frr (scripts/setup)")
    sys.exit(77)

from scapy.all import Ether, IP, wrpcap  # noqa: E402
from hub_checks import CTL, HUB, check, ctl, failures, wait_for  # noqa: E402

CONFIG = """\
hub:
  control-lcore: 0
  worker-lcores: [1]
  eal-args: [--no-huge, -m, "512", --no-pci, --no-shconf]
  worker-idle-sleep-us: 100
ports:
  - name: wan
    device: net_pcap0,rx_pcap={d}/in.pcap,tx_pcap={d}/wan0.pcap,tx_pcap={d}/wan1.pcap
    role: underlay
    address: 198.51.100.1/24
  - name: lan
    device: net_pcap1,rx_pcap={d}/in.pcap,tx_pcap={d}/lan0.pcap,tx_pcap={d}/lan1.pcap
    role: lan
    address: 192.0.2.1/24
tunnels:
  - name: tun0
    port: wan
    overlay-address: 10.255.0.1
    overlay-prefix: 10.255.0.0/24
    nhrp: {{network-id: 1}}
routing:
  fpm: {{settle-seconds: 2, hold-seconds: 60, max-routes: 1000}}
management:
  socket: {d}/hub.sock
"""

FIRST = """ip route 172.16.0.0/16 192.0.2.2
ip route 172.17.0.0/24 10.255.0.2
ip route 172.18.0.0/24 192.0.2.3
ip route 172.21.0.0/24 198.18.0.9
ip route 10.9.9.9/32 blackhole
"""
# After the restart: 172.16.0.0/16 is gone, 172.19.0.0/24 is new, 172.17.0.0/24 moved.
SECOND = """ip route 172.17.0.0/24 192.0.2.4
ip route 172.19.0.0/24 10.255.0.3
ip route 10.9.9.9/32 blackhole
"""


def run(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


class frr:
    """zebra and staticd in the namespace, as scripts/fpm/record-zebra starts them."""

    def __init__(self, ns, work):
        self.ns, self.work = ns, work

    def start(self, static):
        for name, text in (("zebra.conf", "fpm address 127.0.0.1 port 2620\n"),
                           ("staticd.conf", static)):
            path = os.path.join(self.work, name)
            with open(path, "w") as f:
                f.write(text)
            shutil.chown(path, "frr", "frr")
        common = ["-z", f"{self.work}/zserv.api", "--vty_socket", self.work, "-u", "frr", "-g",
                  "frr"]
        run("ip", "netns", "exec", self.ns, f"{FRR}/zebra", "-d", "-M", "dplane_fpm_nl", "-f",
            f"{self.work}/zebra.conf", "-i", f"{self.work}/zebra.pid", *common)
        time.sleep(1)
        run("ip", "netns", "exec", self.ns, f"{FRR}/staticd", "-d", "-f",
            f"{self.work}/staticd.conf", "-i", f"{self.work}/staticd.pid", *common)

    def vtysh(self, *lines):
        cmd = ["ip", "netns", "exec", self.ns, "vtysh", "--vty_socket", self.work, "-c", "conf t"]
        for line in lines:
            cmd += ["-c", line]
        run(*cmd)

    def kill(self, sig=signal.SIGKILL):
        for pidfile in ("staticd.pid", "zebra.pid"):
            try:
                with open(os.path.join(self.work, pidfile)) as f:
                    os.kill(int(f.read().strip()), sig)
            except (OSError, ValueError):
                pass
            try:
                os.unlink(os.path.join(self.work, pidfile))
            except OSError:
                pass
        time.sleep(0.5)


def routes(sock):
    r = ctl(sock, "show", "ip", "route", "--json")
    if r.returncode != 0:
        return {}
    return {x["prefix"]: x for x in json.loads(r.stdout)["routes"]}


def fpm_routes(sock):
    return {p: x for p, x in routes(sock).items() if x["source"] == "fpm"}


def main():
    d = tempfile.mkdtemp(prefix="fpmhub-")
    shutil.chown(d, "frr", "frr")
    os.chmod(d, 0o755)
    ns = "dmvpn-fpmhub%d" % os.getpid()
    run("ip", "netns", "del", ns, check=False)
    run("ip", "netns", "add", ns)
    zebra = frr(ns, d)
    hub = None
    log = open(os.path.join(d, "hub.log"), "w+")
    try:
        run("ip", "-n", ns, "link", "set", "lo", "up")
        # zebra's view of the hub's networks: a kernel interface on the LAN port's subnet and
        # one on the tunnel's, so that staticd's next hops there are reachable (active).
        run("ip", "-n", ns, "link", "add", "k0", "type", "veth", "peer", "name", "k1")
        for dev in ("k0", "k1"):
            run("ip", "-n", ns, "link", "set", dev, "up")
        run("ip", "-n", ns, "addr", "add", "192.0.2.254/24", "dev", "k0")
        run("ip", "-n", ns, "addr", "add", "10.255.0.254/24", "dev", "k0")
        run("ip", "-n", ns, "addr", "add", "198.18.0.254/24", "dev", "k0")
        wrpcap(os.path.join(d, "in.pcap"), [Ether() / IP(dst="192.0.2.1")])
        with open(os.path.join(d, "hub.yaml"), "w") as f:
            f.write(CONFIG.format(d=d))
        sock = os.path.join(d, "hub.sock")
        prefix = "fpmhub-%d" % os.getpid()
        hub = subprocess.Popen(["ip", "netns", "exec", ns, HUB, "--config",
                                os.path.join(d, "hub.yaml"), "--", "--file-prefix", prefix],
                               stdout=log, stderr=subprocess.STDOUT)
        up = wait_for(lambda: os.path.exists(sock) and ctl(sock, "help").returncode == 0, 90)
        check(up is not None, "the hub starts with routing.fpm and answers")
        if not up:
            return
        zebra.start(FIRST)

        def first_table():
            r = fpm_routes(sock)
            return r if len(r) >= 4 else None

        got = wait_for(first_table, 30) or fpm_routes(sock)
        print(json.dumps(got, indent=1))
        lan_rt = got.get("172.16.0.0/16", {})
        check(lan_rt.get("code") == "S" and lan_rt.get("protocol") == "static" and
              lan_rt.get("distance") == 1 and lan_rt.get("next_hop") == "192.0.2.2" and
              lan_rt.get("interface") == "lan",
              "172.16.0.0/16 from staticd: S, FRR's static, distance 1, via 192.0.2.2 on lan")
        tun_rt = got.get("172.17.0.0/24", {})
        check(tun_rt.get("next_hop") == "10.255.0.2" and tun_rt.get("interface") == "tun0" and
              tun_rt.get("state") == "unbound",
              "172.17.0.0/24 via 10.255.0.2 leaves on tun0, unbound until a spoke registers")
        check("172.18.0.0/24" in got, "172.18.0.0/24 via 192.0.2.3 installed")
        check(got.get("10.9.9.9/32", {}).get("state") == "blackhole", "the blackhole route")
        check("172.21.0.0/24" not in got,
              "a gateway on no hub interface (198.18.0.9) is not installed")
        shown = json.loads(ctl(sock, "show", "ip", "route", "172.21.0.0/24", "--json").stdout)
        check(shown["routes"] == [] and [(x["next_hop"], x["reason"]) for x in shown["refused"]]
              == [("198.18.0.9", "unresolved")],
              "show ip route 172.21.0.0/24 lists it as refused (unresolved): %s" % shown)
        stats = json.loads(ctl(sock, "show", "stats", "--json").stdout)["routing"]
        print(json.dumps(stats))
        check(stats["fpm_connected"] == 1 and stats["fpm_connections"] == 1,
              "show stats --json routing: zebra connected once")
        check(stats["fpm_unresolved"] >= 1 and stats["fpm_ignored_connected"] >= 1,
              "counted: the unresolvable gateway, zebra's connected routes left out")
        check("fpm_installed" in ctl(sock, "show", "stats").stdout, "show stats text: routing")

        zebra.vtysh("no ip route 172.18.0.0/24 192.0.2.3")
        gone = wait_for(lambda: "172.18.0.0/24" not in fpm_routes(sock), 15)
        check(gone is not None, "a static route removed in vtysh leaves the hub's table")

        zebra.kill()
        time.sleep(3)
        kept = fpm_routes(sock)
        check("172.16.0.0/16" in kept and "172.17.0.0/24" in kept,
              "zebra killed: its routes stay for hold-seconds")
        zebra.start(SECOND)

        def second_table():
            r = fpm_routes(sock)
            return r if set(r) == {"172.17.0.0/24", "172.19.0.0/24", "10.9.9.9/32"} else None

        after = wait_for(second_table, 30) or fpm_routes(sock)
        print(json.dumps(after, indent=1))
        check(set(after) == {"172.17.0.0/24", "172.19.0.0/24", "10.9.9.9/32"},
              "zebra restarted: exactly its new table (172.16.0.0/16 swept, 172.19.0.0/24 "
              "added), got %s" % sorted(after))
        check(after.get("172.17.0.0/24", {}).get("next_hop") == "192.0.2.4" and
              after.get("172.17.0.0/24", {}).get("interface") == "lan",
              "172.17.0.0/24 moved to 192.0.2.4 on lan")
        stats = json.loads(ctl(sock, "show", "stats", "--json").stdout)["routing"]
        check(stats["fpm_connections"] == 2 and stats["fpm_swept"] >= 1,
              "the second connection resynchronised by mark and sweep")
    finally:
        zebra.kill(signal.SIGTERM)
        if hub is not None and hub.poll() is None:
            hub.send_signal(signal.SIGTERM)
            try:
                rc = hub.wait(timeout=30)
                check(rc == 0, "SIGTERM stops the hub (status %s)" % rc)
            except subprocess.TimeoutExpired:
                hub.kill()
                check(False, "the hub stops on SIGTERM")
        log.seek(0)
        if failures:
            print(log.read()[-4000:])
        run("ip", "netns", "del", ns, check=False)
        shutil.rmtree(d, ignore_errors=True)


main()
sys.exit(1 if failures else 0)
