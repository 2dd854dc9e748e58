#!/usr/bin/python3
"""scripts/frr-hub with the examples of config/examples/frr/, against a real FRR spoke.

Two network namespaces joined by a veth pair stand for the overlay: the hub's end is named
dmvpn-tun0 (the name of tunnel tun0's exception interface) and holds 10.0.0.1/16, the spoke's
holds 10.0.0.2/16 and a LAN 172.16.5.0/24. `frr-hub start` runs zebra (FPM on), bgpd with
bgpd-phase3.conf and ospfd with ospfd.conf in the hub's namespace; a plain FRR spoke (bgpd
towards 10.0.0.1, OSPF point-to-multipoint) runs in the other. Shown: the spoke becomes a
dynamic BGP neighbour (the hub's summary shows it in the listen range), receives the summary
172.16.0.0/12 and the hub's LAN from the hub with the hub as next hop, an OSPF adjacency forms
point-to-multipoint, and the hub's zebra streams the spoke's /24 over FPM with the spoke as
gateway (a listener on 127.0.0.1:2620 stands in for the hub, whose own FPM server is tested by
fpm_server and the hub's tests). Needs root and frr.
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FRR_HUB = os.path.join(ROOT, "scripts", "frr-hub")
EXAMPLES = os.path.join(ROOT, "config", "examples", "frr")
HUB_NS, SPOKE_NS = "dmvpn-frrhub-h", "dmvpn-frrhub-s"

SPOKE_BGP = """router bgp 65000
 bgp router-id 10.0.0.2
 no bgp default ipv4-unicast
 neighbor 10.0.0.1 remote-as 65000
 neighbor 10.0.0.1 timers 10 30
 neighbor 10.0.0.1 timers connect 2
 address-family ipv4 unicast
  network 172.16.5.0/24
  neighbor 10.0.0.1 activate
 exit-address-family
"""
SPOKE_OSPF = """interface tun0
 ip ospf network point-to-multipoint
 ip ospf hello-interval 10
 ip ospf dead-interval 40
router ospf
 ospf router-id 10.0.0.2
 network 10.0.0.0/16 area 0
 network 172.16.5.0/24 area 0
"""
# A listener in the hub's namespace collects what zebra sends over FPM (raw frames).
LISTENER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 2620)); s.listen(1); print("ready", flush=True)
with open(sys.argv[1], "ab", buffering=0) as out:
    while True:
        c, _ = s.accept()
        while True:
            b = c.recv(65536)
            if not b: break
            out.write(b)
"""


def sh(*cmd, check=True):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def fpm_routes(path):
    """(dst/len, protocol, gateway) of every RTM_NEWROUTE in the FPM byte stream."""
    with open(path, "rb") as f:
        data = f.read()
    routes, nexthops, off = [], {}, 0
    while off + 4 <= len(data):
        _, _, length = struct.unpack_from("!BBH", data, off)
        if length < 4 or off + length > len(data):
            break
        msg = data[off + 4:off + length]
        off += length
        if len(msg) < 16:
            continue
        nl_len, nl_type = struct.unpack_from("=IH", msg, 0)
        body = msg[16:nl_len]
        attrs_at = 12 if nl_type in (24, 25) else 8  # rtmsg / nhmsg
        if nl_type not in (24, 104) or len(body) < attrs_at:
            continue
        attrs, a = {}, attrs_at
        while a + 4 <= len(body):
            alen, atype = struct.unpack_from("=HH", body, a)
            if alen < 4:
                break
            attrs[atype] = body[a + 4:a + alen]
            a += (alen + 3) & ~3
        if nl_type == 104:  # RTM_NEWNEXTHOP: NHA_ID 1, NHA_GATEWAY 6
            if 1 in attrs and 6 in attrs and len(attrs[6]) == 4:
                nexthops[struct.unpack("=I", attrs[1])[0]] = socket.inet_ntoa(attrs[6])
            continue
        family, dst_len, _, _, _, proto = struct.unpack_from("=BBBBBB", body, 0)
        if family != socket.AF_INET or 1 not in attrs:  # RTA_DST
            continue
        gw = socket.inet_ntoa(attrs[5]) if 5 in attrs else None  # RTA_GATEWAY
        if gw is None and 30 in attrs:  # RTA_NH_ID
            gw = nexthops.get(struct.unpack("=I", attrs[30])[0])
        routes.append((f"{socket.inet_ntoa(attrs[1])}/{dst_len}", proto, gw))
    return routes


def vtysh_json(ns, run_dir, command):
    r = sh("ip", "netns", "exec", ns, "vtysh", "--vty_socket", run_dir, "-c", command)
    return json.loads(r.stdout or "{}")


def wait_for(what, fn, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def main():
    if os.geteuid() != 0 or not os.path.exists("/usr/lib/frr/zebra"):
        print("frr_hub_examples: needs root and Debian's frr (scripts/setup)")
        return 77
    work = tempfile.mkdtemp(prefix="frrhub-")
    os.chmod(work, 0o755)  # the daemons run as frr
    hub_run, spoke_run = os.path.join(work, "hub"), os.path.join(work, "spoke")
    fpm_out = os.path.join(work, "fpm.bin")
    listener = None
    for ns in (HUB_NS, SPOKE_NS):
        sh("ip", "netns", "del", ns, check=False)
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    try:
        sh("ip", "link", "add", "frrhub-h", "netns", HUB_NS, "type", "veth", "peer", "name",
           "frrhub-s", "netns", SPOKE_NS)
        sh("ip", "-n", HUB_NS, "link", "set", "frrhub-h", "name", "dmvpn-tun0")
        sh("ip", "-n", SPOKE_NS, "link", "set", "frrhub-s", "name", "tun0")
        for ns, dev, addr in ((HUB_NS, "dmvpn-tun0", "10.0.0.1/16"),
                              (SPOKE_NS, "tun0", "10.0.0.2/16")):
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        for ns, addr in ((HUB_NS, "192.168.100.1/24"), (SPOKE_NS, "172.16.5.1/24")):
            # A LAN: one end of a veth pair (this kernel has no dummy interfaces).
            sh("ip", "-n", ns, "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p")
            sh("ip", "-n", ns, "addr", "add", addr, "dev", "lan0")
            for dev in ("lan0", "lan0p"):
                sh("ip", "-n", ns, "link", "set", dev, "up")

        listener = subprocess.Popen(
            ["ip", "netns", "exec", HUB_NS, sys.executable, "-c", LISTENER, fpm_out],
            stdout=subprocess.PIPE, text=True)
        assert listener.stdout.readline().strip() == "ready", "FPM listener did not start"

        # Refusals first: no daemon named, a missing file, a bad --fpm.
        for bad, want in ((["start", "--run-dir", hub_run], "no routing daemon named"),
                          (["start", "--bgpd", "/nonexistent.conf"], "no such file"),
                          (["start", "--run-dir", hub_run, "--fpm", "nope",
                            "--bgpd", os.path.join(EXAMPLES, "bgpd-phase3.conf")], "HOST:PORT")):
            r = sh(FRR_HUB, *bad, check=False)
            assert r.returncode != 0 and want in r.stderr, (bad, r.returncode, r.stderr)

        r = sh(FRR_HUB, "start", "--netns", HUB_NS, "--run-dir", hub_run,
               "--bgpd", os.path.join(EXAMPLES, "bgpd-phase3.conf"),
               "--ospfd", os.path.join(EXAMPLES, "ospfd.conf"))
        print(r.stdout.strip())
        r = sh(FRR_HUB, "start", "--netns", HUB_NS, "--run-dir", hub_run, "--bgpd",
               os.path.join(EXAMPLES, "bgpd-phase2.conf"), check=False)
        assert r.returncode != 0 and "already running" in r.stderr, r.stderr
        assert sh(FRR_HUB, "status", "--run-dir", hub_run).returncode == 0

        spoke_files = os.path.join(work, "spoke-conf")
        os.makedirs(spoke_files)
        for name, text in (("bgpd.conf", SPOKE_BGP), ("ospfd.conf", SPOKE_OSPF),
                           ("zebra.conf", "!\n")):
            with open(os.path.join(spoke_files, name), "w") as f:
                f.write(text)
        sh(FRR_HUB, "start", "--netns", SPOKE_NS, "--run-dir", spoke_run,
           "--zebra", os.path.join(spoke_files, "zebra.conf"), "--fpm", "127.0.0.1:2620",
           "--bgpd", os.path.join(spoke_files, "bgpd.conf"),
           "--ospfd", os.path.join(spoke_files, "ospfd.conf"))

        # The hub's running configuration is the example's (nothing refused on the way).
        running = sh("ip", "netns", "exec", HUB_NS, "vtysh", "--vty_socket", hub_run, "-c",
                     "show running-config").stdout
        for line in ("bgp listen range 10.0.0.0/16 peer-group SPOKES",
                     "ip ospf network point-to-multipoint", "aggregate-address 172.16.0.0/12",
                     "fpm address 127.0.0.1"):  # port 2620 is the default, not shown
            assert line in running, f"hub's running-config lacks {line!r}:\n{running}"

        def spoke_routes():
            j = vtysh_json(SPOKE_NS, spoke_run, "show ip bgp json").get("routes", {})
            return j if "172.16.0.0/12" in j else None
        routes = wait_for("the spoke to receive the hub's summary", spoke_routes, 90)
        summary_nh = routes["172.16.0.0/12"][0]["nexthops"][0]["ip"]
        assert summary_nh == "10.0.0.1", f"summary's next hop {summary_nh}, expected the hub"
        assert "192.168.100.0/24" in routes, "the hub's LAN is not advertised"
        peers = vtysh_json(HUB_NS, hub_run, "show bgp ipv4 unicast summary json")["peers"]
        assert peers["10.0.0.2"]["state"] == "Established", peers
        assert peers["10.0.0.2"].get("dynamicPeer") is True, peers  # from the listen range
        print(f"bgp: spoke 10.0.0.2 a dynamic neighbour; got 172.16.0.0/12 via {summary_nh}")

        def fpm_has_spoke_lan():
            return [r for r in fpm_routes(fpm_out) if r[0] == "172.16.5.0/24"]
        got = wait_for("zebra to send 172.16.5.0/24 over FPM", fpm_has_spoke_lan, 30)
        proto, gw = got[-1][1], got[-1][2]
        assert gw == "10.0.0.2" and proto in (186, 188), got  # RTPROT_BGP / RTPROT_OSPF
        print(f"fpm: 172.16.5.0/24 via {gw} (rtm_protocol {proto})")

        def ospf_full():
            n = vtysh_json(HUB_NS, hub_run, "show ip ospf neighbor json").get("neighbors", {})
            states = [x.get("state", x.get("nbrState", "")) for v in n.values() for x in v]
            return any(s.startswith("Full") for s in states)
        wait_for("an OSPF adjacency (point-to-multipoint)", ospf_full, 90)
        print("ospf: hub and spoke Full, point-to-multipoint")

        for run_dir, ns in ((spoke_run, SPOKE_NS), (hub_run, HUB_NS)):
            sh(FRR_HUB, "stop", "--run-dir", run_dir)
            assert sh(FRR_HUB, "status", "--run-dir", run_dir, check=False).returncode == 1
        print("frr_hub_examples: OK")
        return 0
    finally:
        for run_dir in (spoke_run, hub_run):
            subprocess.run([FRR_HUB, "stop", "--run-dir", run_dir], capture_output=True)
        if listener:
            listener.kill()
        for ns in (HUB_NS, SPOKE_NS):
            sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
