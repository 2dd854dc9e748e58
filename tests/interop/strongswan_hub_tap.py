#!/usr/bin/python3
"""How a strongSwan in a network namespace of its own reaches a port of our hub, without qemu
(issue 10 part 10b): build/dmvpn-hub on config/examples/interop.yaml (NBMA 198.51.100.1/24 on
net_tap0, kernel side dtap0) in one namespace; dtap0 is then moved into a second namespace
(`ip link set dtap0 netns SS`) and given 198.51.100.50/24 there: that namespace is directly on
the hub's underlay segment, nothing in between.

Asserts: the namespace resolves the hub's NBMA address to the DPDK port's MAC and pings it
(the control lcore answers ARP and ICMP echo; its counters say so); a charon-systemd started
there by tests/interop/strongswan.py initiates IKEv2 towards 198.51.100.1 and its IKE_SA_INIT
leaves on dtap0 addressed to the hub's MAC, UDP 500 (interop.yaml has no `ike:` profile, so the hub
runs no IKE thread: nothing answers, and charon retransmits), and the hub's worker punts them
to the control lcore (counted); the hub keeps running and answering echo while that goes on
and stops cleanly. strongswan_hub_ike.py is the same setup with an `ike:` profile: IKEv2 with
the hub.

Needs root, build/dmvpn-hub, Debian's strongSwan and tcpdump; exit 77 otherwise (scripts/test
counts that skip as a failure where qemu is installed). Everything it creates is named after its
pid and removed at the end.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hubnet  # noqa: E402
import strongswan as ss  # noqa: E402

TAG = f"sht{os.getpid() % 100000}"
HUB_NBMA, SS_ADDR = "198.51.100.1", "198.51.100.50"

check = ss.Checks()
failures = check.failures


def punted_udp(hub):
    punts = hub.ctl_json("show", "stats")["punts"]
    return sum(punts.get(k, {}).get("punted", 0) for k in ("for_us", "ike"))


def main():
    why = ss.available()
    if why or not hubnet.HUB_BIN.exists() or shutil.which("tcpdump") is None:
        print(f"strongswan_hub_tap: SKIP: {why or 'needs build/dmvpn-hub and tcpdump'}")
        return 77
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.alarm(150)
    work = Path(tempfile.mkdtemp(prefix="ss-hub-tap-"))
    ns_hub = ns_ss = hub = charon = None
    t0 = time.time()
    try:
        ns_hub, ns_ss = ss.Netns(f"{TAG}-hub"), ss.Netns(f"{TAG}-ss")
        hub = hubnet.Hub(ns_hub.name, None, work / "hub")
        hub.start()
        ss.hand_tap(hub, ns_hub, ns_ss, SS_ADDR)
        check(hub.iface in ns_ss.run("ip", "-br", "link").stdout,
              f"{hub.iface} (the hub's TAP) now lives in the strongSwan namespace")

        r = ns_ss.run("ping", "-n", "-c", "3", "-i", "0.3", "-W", "2", HUB_NBMA, check=False)
        check(r.returncode == 0 and " 0% packet loss" in r.stdout,
              f"the strongSwan namespace pings the hub's NBMA address {HUB_NBMA}", r.stdout)
        neigh = ns_ss.run("ip", "neigh", "show", HUB_NBMA).stdout.lower()
        check(hub.mac is not None and hub.mac in neigh,
              f"it resolved {HUB_NBMA} to the DPDK port's MAC {hub.mac}", neigh)
        ctl = hub.ctl_json("show", "stats")["control"]
        check(ctl["icmp_echo_replies"] >= 3 and ctl["arp_replies_sent"] >= 1,
              "the hub's control lcore answered the ARP request and the echo requests", str(ctl))

        # strongSwan towards the hub: IKE_SA_INIT on the wire to the hub's MAC, and into the
        # hub (its worker punts UDP 500 for its own address to the control lcore: "for_us"
        # today, "ike" once the IKE thread exists).
        punted_before = punted_udp(hub)
        cap = work / "ike.pcap"
        dump = subprocess.Popen(["ip", "netns", "exec", ns_ss.name, "tcpdump", "-n", "-U", "-i",
                                 hub.iface, "-w", str(cap), "udp port 500 or udp port 4500"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        dump.stderr.readline()   # "listening on ..."
        charon = ss.Charon(ns_ss, work / "c", name="spoke")
        charon.start()
        charon.load(ss.Conn(SS_ADDR, HUB_NBMA, proposals="aes128gcm16-prfsha256-x25519",
                            childless="force"))
        r = charon.initiate("dmvpn", timeout=4, check=False)
        time.sleep(1)
        dump.send_signal(signal.SIGINT)
        dump.wait(10)
        seen = ss.sh("tcpdump", "-n", "-e", "-r", cap, check=False).stdout
        check(f"> {hub.mac}" in seen and f"{SS_ADDR}.500 > {HUB_NBMA}.500" in seen
              and "isakmp" in seen.lower(),
              f"charon's IKE_SA_INIT left {hub.iface} for {HUB_NBMA}:500 at the hub's MAC",
              seen + r.stdout + r.stderr)
        check("sending packet: from 198.51.100.50[500] to 198.51.100.1[500]" in charon.log(),
              "charon logged sending IKE_SA_INIT to the hub")
        punted_after = punted_udp(hub)
        check(punted_after > punted_before,
              f"the hub's worker punted the IKE packets to the control lcore (for_us + ike "
              f"punts {punted_before} -> {punted_after}, no ping meanwhile)")
        r = ns_ss.run("ping", "-n", "-c", "2", "-i", "0.3", "-W", "2", HUB_NBMA, check=False)
        check(r.returncode == 0 and hub.alive(),
              "the hub keeps running and answering echo after the IKE packets", r.stdout)
        print(hub.ctl("show", "stats")[1], flush=True)
    except AssertionError as e:
        check(False, str(e))
    finally:
        ss.tear_down(check, hub, charon, (ns_ss, ns_hub), work)
    print(f"strongswan_hub_tap: {len(failures)} failure(s) in {time.time() - t0:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
