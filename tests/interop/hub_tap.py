#!/usr/bin/python3
"""Our hub on a real Ethernet segment through net_tap, without qemu: config/examples/interop.yaml
(NBMA 198.51.100.1/24 on net_tap0) in a network namespace with a Linux bridge, and two plain
Linux hosts (veth, namespaces of their own) on the bridge.

Asserts: the hub answers ARP for its NBMA address (with the DPDK port's MAC); a host pings it
(ICMP echo answered by the control lcore); a host that never ARPs for the hub (static neighbour
entry) still gets its echo replies because the hub resolves it (an ARP request from the hub,
seen on that host); with the bridge flooding every frame (ageing 0, a shared segment) host-to-host
pings get no duplicates, because the hub drops unicast that is not addressed to it (counted as
"not for us") instead of routing it a second time; a hub restarted with another MAC is reachable
at once (its gratuitous ARP updates the hosts' entries). Needs root, `ip netns` and tcpdump;
exit 77 otherwise (scripts/test counts that skip as a failure where qemu is installed).
Everything it creates is named after its pid and removed at the end.
"""

import os
import re
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

TAG = f"ht{os.getpid() % 100000}"
NS_HUB, NS_A, NS_B = f"{TAG}-hub", f"{TAG}-a", f"{TAG}-b"
BRIDGE = "br0"
HUB_NBMA, HOST_A, HOST_B = "198.51.100.1", "198.51.100.10", "198.51.100.20"
NEW_MAC = "02:00:00:00:64:02"  # the restarted hub's

check = checks.Checks()
failures = check.failures


def mac_of(ns, dev):
    return hubnet.sh("ip", "-n", ns, "-br", "link", "show", dev).stdout.split()[2]


def setup():
    hubnet.sh("ip", "netns", "add", NS_HUB)
    hubnet.sh("ip", "-n", NS_HUB, "link", "set", "lo", "up")
    hubnet.sh("ip", "-n", NS_HUB, "link", "add", BRIDGE, "type", "bridge", "forward_delay", "0",
              "stp_state", "0")
    hubnet.sh("ip", "-n", NS_HUB, "link", "set", BRIDGE, "up")
    for ns, addr in ((NS_A, HOST_A), (NS_B, HOST_B)):
        hubnet.sh("ip", "netns", "add", ns)
        hubnet.sh("ip", "-n", ns, "link", "set", "lo", "up")
        port = f"{ns[-1]}-br"
        hubnet.sh("ip", "link", "add", port, "netns", NS_HUB, "type", "veth", "peer", "name",
                  "eth0", "netns", ns)
        hubnet.sh("ip", "-n", NS_HUB, "link", "set", port, "master", BRIDGE, "up")
        hubnet.sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
        hubnet.sh("ip", "-n", ns, "link", "set", "eth0", "up")


def teardown():
    for ns in (NS_A, NS_B, NS_HUB):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def wait(pred, seconds):
    deadline = time.time() + seconds
    while not pred():
        if time.time() >= deadline:
            return False
        time.sleep(0.2)
    return True


def ping(ns, dst, count=3):
    return hubnet.ns_run(ns, "ping", "-n", "-c", str(count), "-i", "0.3", "-W", "2", dst,
                         timeout=30, check=False)


def main():
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tcpdump") is None:
        print("hub_tap: SKIP: needs root, iproute2 (network namespaces) and tcpdump "
              "(scripts/setup installs them)")
        return 77
    if subprocess.run(["ip", "netns", "add", f"{TAG}-probe"], capture_output=True).returncode:
        print("hub_tap: SKIP: cannot create a network namespace here")
        return 77
    subprocess.run(["ip", "netns", "del", f"{TAG}-probe"], capture_output=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # meson's timeout: still clean up
    signal.alarm(150)  # a hard limit of our own, below meson's
    work = Path(tempfile.mkdtemp(prefix="hub-tap-"))
    hub = None
    t0 = time.time()
    try:
        setup()
        hub = hubnet.Hub(NS_HUB, BRIDGE, work)
        hub.start()
        print(f"hub_tap: hub up on {hub.iface} (DPDK MAC {hub.mac}) in {time.time() - t0:.1f} s",
              flush=True)

        # 1. ARP for the hub's NBMA address, answered with the DPDK port's MAC; ping answered.
        r = ping(NS_A, HUB_NBMA)
        check(r.returncode == 0 and " 0% packet loss" in r.stdout,
              f"host A pings the hub's NBMA address {HUB_NBMA}", r.stdout + r.stderr)
        neigh = hubnet.sh("ip", "-n", NS_A, "neigh", "show", HUB_NBMA).stdout
        check(hub.mac is not None and hub.mac in neigh.lower(),
              f"host A resolved {HUB_NBMA} to the hub's DPDK MAC {hub.mac}", neigh)
        ctl = hub.ctl_json("show", "stats")["control"]
        check(ctl["icmp_echo_replies"] >= 3 and ctl["arp_replies_sent"] >= 1,
              "the control lcore answered the ARP request and the echo requests", str(ctl))

        # 2. The hub resolves a neighbour it must answer: host B never ARPs for the hub.
        hubnet.sh("ip", "-n", NS_B, "neigh", "replace", HUB_NBMA, "lladdr", hub.mac, "dev",
                  "eth0", "nud", "permanent")
        cap = work / "b.pcap"
        dump = subprocess.Popen(["ip", "netns", "exec", NS_B, "tcpdump", "-n", "-U", "-i",
                                 "eth0", "-w", str(cap), "arp or icmp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        r = ping(NS_B, HUB_NBMA)
        time.sleep(0.5)
        dump.send_signal(signal.SIGINT)
        dump.wait(10)
        check(r.returncode == 0, "host B (static neighbour entry for the hub) pings the hub",
              r.stdout + r.stderr)
        seen = hubnet.sh("tcpdump", "-n", "-e", "-r", str(cap), check=False).stdout
        check(re.search(rf"{re.escape(hub.mac)} > ff:ff:ff:ff:ff:ff.*Request who-has "
                        rf"{re.escape(HOST_B)} tell {re.escape(HUB_NBMA)}", seen) is not None,
              "the hub sent an ARP request for host B before answering it", seen)
        rc, arp = hub.ctl("show", "arp")
        mac_b = mac_of(NS_B, "eth0")
        check(re.search(rf"{re.escape(HOST_B)}\s+{re.escape(mac_b)}\s+reachable", arp) is not None,
              f"dmvpnctl show arp: {HOST_B} reachable at {mac_b}", arp)

        # 3. A shared segment (the bridge floods everything): no duplicates from the hub.
        hubnet.sh("ip", "-n", NS_HUB, "link", "set", BRIDGE, "type", "bridge", "ageing_time", "0")
        before = next(p for p in hub.ctl_json("show", "stats")["ports"])["not_for_us_dropped"]
        r = ping(NS_A, HOST_B, count=4)
        check(r.returncode == 0 and "DUP!" not in r.stdout,
              "host A pings host B across a flooding bridge without duplicates", r.stdout)
        after = next(p for p in hub.ctl_json("show", "stats")["ports"])["not_for_us_dropped"]
        # How many of the 8 frames the bridge floods to the hub depends on what it has learnt
        # meanwhile (ageing 0 takes effect as entries are refreshed): some, not all.
        check(after > before, f"the hub dropped the flooded unicast it saw "
              f"(not_for_us_dropped {before} -> {after})")
        rc, text = hub.ctl("show", "stats")
        print(text, flush=True)
        check(hub.alive(), "the hub is still running")

        # 4. A restart with another MAC (a new NIC; net_tap without mac= picks a random one):
        # the hub's gratuitous ARP updates host A's entry at once, with no traffic from host A.
        status = hub.stop()
        check(status == 0, f"the hub stops cleanly on SIGTERM (status {status})")
        other = work / "other-mac.yaml"
        other.write_text(hubnet.EXAMPLE.read_text().replace(hub.mac, NEW_MAC))
        hub = hubnet.Hub(NS_HUB, BRIDGE, work / "restart", config=other)
        hub.start()

        def moved():
            n = hubnet.sh("ip", "-n", NS_A, "neigh", "show", HUB_NBMA).stdout.lower()
            return NEW_MAC in n

        check(wait(moved, 5.0), f"host A's entry for {HUB_NBMA} moved to the new MAC {NEW_MAC} "
              "(gratuitous ARP)", hubnet.sh("ip", "-n", NS_A, "neigh").stdout)
        r = ping(NS_A, HUB_NBMA, count=2)
        check(r.returncode == 0 and " 0% packet loss" in r.stdout,
              "host A pings the restarted hub straight away", r.stdout + r.stderr)
        ctl = hub.ctl_json("show", "stats")["control"]
        check(ctl.get("arp_announcements_sent", 0) >= 1,
              f"the hub counted its announcements ({ctl.get('arp_announcements_sent')})")
        check(hub.alive(), "the restarted hub is still running")
    except AssertionError as e:
        check(False, str(e))
    finally:
        status = hub.stop() if hub else None
        if hub is not None:
            check(status == 0, f"the hub stops cleanly on SIGTERM (status {status})")
        if failures and hub is not None:
            print("----- hub log -----\n" + hub.log(), flush=True)
        teardown()
        shutil.rmtree(work, ignore_errors=True)
    print(f"hub_tap: {len(failures)} failure(s) in {time.time() - t0:.1f} s", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
