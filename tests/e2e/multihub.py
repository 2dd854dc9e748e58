#!/usr/bin/env python3
"""Two hubs in one cloud (issue 12 part 4): two build/dmvpn-hub processes, each the other's
`nhs`, on net_tap ports bridged in a network namespace of their own (unshare -n), with two
build/dmvpn-spokesim processes (4 spokes each, plain GRE) that register with both hubs
(`--nhs`, the first their own hub) and send through the first that answers.

  - each hub registers with the other (`show nhrp nhs`: responding) and holds it
  - every emulated spoke is registered on both hubs
  - hub to hub resolution: a station registered only with hub B is resolved through hub A
    (a raw GRE socket on the bridge registers it with B, then asks A; A forwards to B, B's
    answer comes back through A with the station's NBMA address)
  - traffic through each hub (each emulator's first NHS): nothing lost
  - hub A killed (SIGKILL) mid-traffic: hub A's spokes fail over to hub B and their traffic
    continues (received after the kill); the gap (lost packets / rate) is printed
  - hub A started again: hub B sees the restart (peer_restarts) and registers with it again at
    once; the time from A's start to B's registration held at A is printed; then traffic
    through both hubs again loses nothing
Timings are printed, never asserted. About 90 s. Needs root and /dev/net/tun (77 otherwise).
"""

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402  (check, binaries)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hub_process import wait_for  # noqa: E402

BR = "mhbr0"
PROBE = "100.64.0.240"  # the bridge's own address: the raw-socket probe
STATION = ("100.64.0.241", "10.0.0.241")  # registered with hub B only, by the probe
HUBS = {
    "A": {"nbma": "100.64.0.1", "overlay": "10.0.0.1", "tap": "mhA0", "mac": "02:00:00:00:aa:01"},
    "B": {"nbma": "100.64.0.250", "overlay": "10.0.0.250", "tap": "mhB0",
          "mac": "02:00:00:00:bb:01"},
}
SPOKES = 4
RATE = 200  # data packets a second, each emulator
KEY, AUTH = 100, "e2e"

CONFIG = """\
hub:
  control-lcore: 0
  worker-lcores: [1]
  eal-args: [--no-huge, -m, "512", --no-pci, --no-telemetry, --no-shconf]
ports:
  - name: underlay
    device: net_tap0,iface={tap},mac={mac}
    role: underlay
    address: {nbma}/10
tunnels:
  - name: tun0
    port: underlay
    overlay-address: {overlay}
    overlay-prefix: 10.0.0.0/16
    gre-key: {key}
    nhrp:
      network-id: 1
      authentication: {auth}
      holdtime: 30
      registration-timeout: 10
      nhs:
        - overlay: {peer_overlay}
          nbma: {peer_nbma}
      max-cache-entries: 8192
    ip-mtu: 1400
management:
  socket: {d}/hub{name}.sock
"""


def sh(*cmd, check=True):
    return subprocess.run([str(c) for c in cmd], check=check, capture_output=True, text=True)


KERNEL_MACS = {"mhA0": "02:00:00:00:fe:01", "mhB0": "02:00:00:00:fe:02",
               "mhSa0": "02:00:00:00:fe:03", "mhSb0": "02:00:00:00:fe:04",
               "mhSc0": "02:00:00:00:fe:05"}


def bridge(iface, timeout=30, br=None):
    """Puts the kernel side of a DPDK tap on the bridge (BR unless `br`) once it exists, under a
    MAC of its own: the tap PMD gives the kernel side the port's MAC, which the bridge would
    then take for one of its own addresses and never forward to."""
    end = time.time() + timeout
    while time.time() < end:
        if sh("ip", "link", "set", iface, "address", KERNEL_MACS[iface], "master", br or BR, "up",
              check=False).returncode == 0:
            return
        time.sleep(0.2)
    raise SystemExit("tap %s never appeared" % iface)


class Hub(e2e.hub):  # its ctl() and json(), a start of its own
    def __init__(self, d, name):
        self.name, self.d = name, d
        me = HUBS[name]
        peer = HUBS["B" if name == "A" else "A"]
        self.sock = os.path.join(d, "hub%s.sock" % name)
        path = os.path.join(d, "hub%s.yaml" % name)
        with open(path, "w") as f:
            f.write(CONFIG.format(d=d, name=name, key=KEY, auth=AUTH, peer_overlay=peer["overlay"],
                                  peer_nbma=peer["nbma"], **me))
        self.log = open(os.path.join(d, "hub%s.log" % name), "a+")
        self.started = time.time()
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.proc = subprocess.Popen(
            [e2e.HUB, "--config", path, "--", "--file-prefix", "mh-hub%s-%d" % (name, os.getpid())],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_started("dmvpn-hub " + name)
        bridge(me["tap"])

    def dynamic(self):
        return {e["via"] for e in self.json("show", "nhrp") if e["type"] == "dynamic"}

    def nhs(self):
        return self.json("show", "nhrp", "nhs")[0]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def spokesim(d, tag, first, nhs_order, duration, extra=()):
    """An emulator of SPOKES spokes from `first` on tap mhS<tag>0, registering with the hubs of
    `nhs_order` (traffic through the first that answers); `extra`: more of its options."""
    nhs = []
    for n in nhs_order:
        nhs += ["--nhs", "%s,%s" % (HUBS[n]["nbma"], HUBS[n]["overlay"])]
    tap = "mhS%s0" % tag
    # The tap PMD gives the port a new random MAC every run: each spoke announces its NBMA
    # address by gratuitous ARP before it registers, and the hubs move their ARP entries
    # (RFC 826's merge, at most one change a second per entry).
    cmd = [e2e.SIM, "--vdev", "net_tap0,iface=%s" % tap, "--tunnel-prefix", "10.0.0.0/16",
           "--spokes", SPOKES, "--first-spoke", first, *nhs, "--gre-key", KEY, "--auth", AUTH,
           "--holdtime", 30, "--registration-timeout", 1, "--nhs-timeout", 3, "--no-shortcuts",
           "--rate", RATE, "--duration", duration, "--drain", 1, "--no-progress", *extra, "--eal",
           "-l 0 --no-huge -m 256 --no-pci --no-telemetry --no-shconf --file-prefix mh-sim%s-%d"
           % (tag, os.getpid())]
    return start_sim(d, cmd, tag, tap)


def start_sim(d, cmd, tag, tap):
    """Runs the emulator `cmd` (output in d) and puts its tap on the bridge."""
    out = open(os.path.join(d, "sim%s-%d.out" % (tag, int(time.time() * 1000))), "w+")
    p = subprocess.Popen([str(a) for a in cmd], stdout=out, stderr=subprocess.STDOUT)
    # The tap PMD sets the kernel side's MAC to the port's while it starts the port: bridge it
    # once the port is up (the emulator's first line), else the bridge keeps the frames.
    end = time.time() + 30
    while time.time() < end and p.poll() is None:
        with open(out.name) as f:
            if "port MAC" in f.read():
                break
        time.sleep(0.1)
    bridge(tap)
    return p, out


def report(p, out, timeout=120):
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    out.seek(0)
    lines = out.read().splitlines()
    for line in reversed(lines):
        if line.startswith("{"):
            return json.loads(line)
    print("\n".join(lines[-30:]))
    return None


def nhrp_packet(op, src_nbma, src_proto, dst_proto, request_id, flags=0, cie_prefix=32,
                hold=30):
    """An NHRP packet in Cisco's layout (RFC 2332): one CIE, Responder / Forward / Reverse
    Transit records, the cleartext Authentication extension, End."""
    a = socket.inet_aton
    mand = struct.pack("!BBHI", 4, 4, flags, request_id) + a(src_nbma) + a(src_proto) + \
        a(dst_proto)
    cie = struct.pack("!BBHHHBBBB", 0, cie_prefix, 0, 1400, hold, 0, 0, 0, 0)
    exts = b""
    for t in (0x8003, 0x8004, 0x8005):
        exts += struct.pack("!HH", t, 0)
    key = AUTH.encode()
    exts += struct.pack("!HHHH", 0x8007, 4 + len(key), 0, 1) + key
    exts += struct.pack("!HH", 0x8000, 0)
    body = mand + cie
    size = 20 + len(body) + len(exts)
    hdr = struct.pack("!HH5sBHHHBBBB", 1, 0x0800, b"\0" * 5, 255, size, 0, 20 + len(body), 1,
                      op, 4, 0)
    pkt = bytearray(hdr + body + exts)
    s = 0
    for i in range(0, len(pkt), 2):
        s += (pkt[i] << 8) + (pkt[i + 1] if i + 1 < len(pkt) else 0)
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    struct.pack_into("!H", pkt, 12, ~s & 0xffff)
    return struct.pack("!HHI", 0x2000, 0x2001, KEY) + bytes(pkt)


def await_nhrp(raw, src, op, request_id, timeout=5):
    """The NHRP packet of type `op` and `request_id` from `src`, as (cie client nbma) or None."""
    end = time.time() + timeout
    while time.time() < end:
        raw.settimeout(max(0.05, end - time.time()))
        try:
            data, (frm, _) = raw.recvfrom(4096)
        except socket.timeout:
            break
        ihl = (data[0] & 0xf) * 4
        g = data[ihl:]
        if frm != src or len(g) < 8 or struct.unpack("!H", g[2:4])[0] != 0x2001:
            continue
        n = g[8:]
        if len(n) < 44 or n[17] != op or struct.unpack("!I", n[24:28])[0] != request_id:
            continue
        cie = n[40:]
        # Code, prefix, unused, MTU, holding time, then the lengths and the client address.
        if len(cie) >= 16 and cie[8] == 4:
            return cie[0], socket.inet_ntoa(cie[12:16])
        return cie[0] if cie else None, None
    return None


def cross_hub_resolution(hub_a, hub_b):
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
    raw.bind((PROBE, 0))
    sta = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
    sta.bind((STATION[0], 0))
    a, b = HUBS["A"]["nbma"], HUBS["B"]["nbma"]
    # The station registers with hub B only; the probe (the requester) with hub A.
    sta.sendto(nhrp_packet(3, STATION[0], STATION[1], HUBS["B"]["overlay"], 7001, flags=0x8000,
                           cie_prefix=255), (b, 0))
    got = await_nhrp(sta, b, 4, 7001)
    e2e.check(got is not None and got[0] == 0, "a station registered with hub B only (%s)"
              % (got,))
    raw.sendto(nhrp_packet(3, PROBE, "10.0.0.240", HUBS["A"]["overlay"], 7002, flags=0x8000,
                           cie_prefix=255), (a, 0))
    got = await_nhrp(raw, a, 4, 7002)
    e2e.check(got is not None and got[0] == 0, "the probe registered with hub A (%s)" % (got,))
    e2e.check(STATION[1] not in hub_a.dynamic(), "hub A does not hold %s itself" % STATION[1])
    before = hub_a.nhs()["resolutions_forwarded"]
    t0 = time.time()
    raw.sendto(nhrp_packet(1, PROBE, "10.0.0.240", STATION[1], 7003), (a, 0))
    got = await_nhrp(raw, a, 2, 7003)
    e2e.check(got is not None and got[0] == 0 and got[1] == STATION[0],
              "Resolution Request for %s to hub A answered through hub B with NBMA %s in %.0f "
              "ms (%s)" % (STATION[1], STATION[0], (time.time() - t0) * 1e3, got))
    e2e.check(hub_a.nhs()["resolutions_forwarded"] == before + 1,
              "hub A counts the request it forwarded to hub B")
    raw.close()
    sta.close()


def traffic_round(d, what, duration=5):
    sims = [spokesim(d, "a", 0, "AB", duration), spokesim(d, "b", SPOKES, "BA", duration)]
    reps = [report(*s) for s in sims]
    for tag, r in zip("ab", reps):
        e2e.check(r is not None and r["registered"] == SPOKES and r["sent"] > 0 and
                  r["lost"] == 0 and r["corrupt"] == 0,
                  "%s: emulator %s sent %s, received %s, lost %s" %
                  (what, tag, r and r["sent"], r and r["received"], r and r["lost"]))
    return reps


def clean_up(procs, stops):
    """Kills the emulators still running, then `stops` (the hubs), and removes the bridge."""
    for p in procs:
        if p.poll() is None:
            p.kill()
    for stop in stops:
        stop()
    sh("ip", "link", "del", BR, check=False)


def verdict(d):
    if e2e.failures:
        print("FAILED: %d checks: %s" % (len(e2e.failures), e2e.failures))
        print("logs in", d)
        sys.exit(1)
    print("all checks passed")


def main():
    e2e.reexec_in_netns(__file__, "DMVPN_MULTIHUB_NS")
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", BR, "type", "bridge")
    sh("ip", "addr", "add", PROBE + "/10", "dev", BR)
    sh("ip", "addr", "add", STATION[0] + "/10", "dev", BR)
    sh("ip", "link", "set", BR, "up")
    d = tempfile.mkdtemp(prefix="e2e-multihub-")
    hubs = {}
    procs = []
    try:
        hubs["A"] = Hub(d, "A")
        hubs["B"] = Hub(d, "B")
        end = time.time() + 30
        while time.time() < end:
            if all(h.nhs()["state"] == "responding" for h in hubs.values()):
                break
            time.sleep(0.5)
        for n, h in hubs.items():
            other = HUBS["B" if n == "A" else "A"]["overlay"]
            e2e.check(h.nhs()["state"] == "responding" and other in h.dynamic(),
                      "hub %s registered with its NHS peer and holds the peer's registration" % n)

        # Traffic through each hub (each emulator's first NHS), every spoke on both hubs.
        sims = [spokesim(d, "a", 0, "AB", 6), spokesim(d, "b", SPOKES, "BA", 6)]
        procs = [s[0] for s in sims]
        end = time.time() + 30
        spokes = {"10.0.0.%d" % (2 + i) for i in range(2 * SPOKES)}
        while time.time() < end and not all(spokes <= h.dynamic() for h in hubs.values()):
            time.sleep(0.3)
        for n, h in hubs.items():
            e2e.check(spokes <= h.dynamic(), "all %d emulated spokes registered with hub %s"
                      % (len(spokes), n))
        cross_hub_resolution(hubs["A"], hubs["B"])
        for tag, r in zip("ab", [report(*s) for s in sims]):
            e2e.check(r is not None and r["sent"] > 0 and r["lost"] == 0 and r["corrupt"] == 0,
                      "both hubs up: emulator %s sent %s, received %s, lost %s" %
                      (tag, r and r["sent"], r and r["received"], r and r["lost"]))

        # Hub A killed mid-traffic: its spokes fail over to hub B.
        sims = [spokesim(d, "a", 0, "AB", 14), spokesim(d, "b", SPOKES, "BA", 14)]
        procs = [s[0] for s in sims]
        end = time.time() + 30
        while time.time() < end and not spokes <= hubs["A"].dynamic():
            time.sleep(0.3)
        time.sleep(4)
        print("uptime:", sh("uptime").stdout.strip(), flush=True)
        hubs["A"].kill()
        ra, rb = report(*sims[0]), report(*sims[1])
        e2e.check(ra is not None and ra["nhs_failovers"] >= 1,
                  "hub A's spokes failed over to hub B (%s failovers)" % (ra and ra["nhs_failovers"]))
        if ra:
            gap = ra["lost"] / float(RATE)
            e2e.check(ra["received"] > ra["sent"] - ra["lost"] - 1 and ra["lost"] < ra["sent"] / 2,
                      "traffic continued through hub B: sent %d, received %d, lost %d (a gap of "
                      "%.2f s at %d packets/s)" % (ra["sent"], ra["received"], ra["lost"], gap,
                                                   RATE))
            print("MEASURED spoke traffic gap after hub A was killed: %.2f s" % gap, flush=True)
        e2e.check(rb is not None and rb["lost"] == 0,
                  "hub B's own spokes lost nothing (%s)" % (rb and rb["lost"]))

        # Hub A again: hub B registers with it at once (not at its next refresh).
        restarts = hubs["B"].nhs()["peer_restarts"]
        hubs["A"] = Hub(d, "A")
        t0 = hubs["A"].started
        end = time.time() + 30
        reregistered = None
        while time.time() < end:
            if HUBS["B"]["overlay"] in hubs["A"].dynamic():
                reregistered = time.time() - t0
                break
            time.sleep(0.05)
        e2e.check(reregistered is not None, "hub B registered with the restarted hub A")
        # B counts the restart when A's own first registration reaches it, which may come a
        # little after B's (B retries on its own while A is away): polled, then exactly once.
        wait_for(lambda: hubs["B"].nhs()["peer_restarts"] > restarts, 10, 0.1)
        e2e.check(hubs["B"].nhs()["peer_restarts"] == restarts + 1,
                  "hub B counted hub A's restart (peer_restarts %d)"
                  % hubs["B"].nhs()["peer_restarts"])
        if reregistered is not None:
            print("MEASURED hub B's registration at the restarted hub A: %.2f s after A was "
                  "launched" % reregistered, flush=True)
        traffic_round(d, "after hub A's restart")
    finally:
        clean_up(procs, [h.kill for h in hubs.values()])
    verdict(d)


if __name__ == "__main__":
    main()
