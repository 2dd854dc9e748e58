#!/usr/bin/env python3
"""Two hubs keyed by IKE (issue 10 part 3): the two build/dmvpn-hub processes of
tests/e2e/multihub.py, each the other's `nhs`, but their tunnel protected by an IPsec profile
with a pre-shared key and `ike.initiate: true`, on net_tap ports bridged in a network namespace
of their own (unshare -n). Argument: `v2` (IKEv2, the default) or `v1` (IKEv1 Main Mode +
Quick Mode, `ike.version: 1`).

  - both hubs are launched together and initiate to each other at once (a collision): both
    end with working SAs (`show crypto session` on each names the other, UP), then one IKE SA
    (v1: ISAKMP SA) and one pair, the same on both, nothing torn down; the time from keyed to
    both registrations is printed with the counters that explain it
  - hub to hub NHRP registration inside ESP: each hub holds the other's registration, `show
    nhrp nhs` says responding, NHRP went out inside ESP (nhrp_tx_esp) and the CHILD_SA's
    packet counters moved (`show crypto ipsec sa`)
  - hub A killed (SIGKILL) and started again: with no operator action the SAs come back (the
    restarted hub initiates; INITIAL_CONTACT makes hub B drop the stale ones) and the hubs
    register with each other again inside the new ESP; the times from A's launch to its IKE SA
    and to both registrations are printed
  - hub B's IKE SA with A deleted at B (`clear crypto sa`): B initiates again by itself
  - (v2) a cross-hub resolution: an emulated spoke keyed with hub A resolves a station hub A
    does not hold (hub B's static map, which B also initiates to): hub A forwards it to hub B
    inside their ESP and B's answer comes back through A; the spoke takes the shortcut
With a second argument `natt` (IKEv2 or IKEv1), hub A sits behind a NAT: its port is on a bridge of its
own (192.168.50.0/24) whose gateway is this namespace's kernel, which masquerades hub A's UDP to
100.64.0.1 with ports 20000-20999 (nft). Hub B's `nhs` is that public address. Then also:
  - NAT detected on both hubs, IKE on UDP 4500 from IKE_AUTH (v1: MM5) on (hub A from its port
    4500, hub B answering the NAT's port), the CHILD_SA (v1: Quick Mode's pair, UDP-Transport)
    UDP-encapsulated on both (ESP-in-UDP counted by the workers both ways, and by the NAT's nft
    counter), hub A sending NAT keepalives, hub B none
  - hub B's own initiation to hub A's public address (the NAT answers nothing) is abandoned
    once hub A's SA with it is up: nothing left negotiating at hub B
  - (v2) the cross-hub resolution the other way round: the emulated spokes are keyed with hub B
    and hub A holds the static map, so hub B's request and hub A's answer cross the NAT
Timings are printed, never asserted. About 20 s. Needs root and /dev/net/tun (77 otherwise).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402  (check, binaries)
import multihub  # noqa: E402  (bridge, sh)

# The argument, kept in the environment across the re-exec into the namespace.
VERSION = os.environ.setdefault("DMVPN_MULTIHUB_IKE_VERSION",
                                sys.argv[1] if len(sys.argv) > 1 else "v2")
NATT = os.environ.setdefault("DMVPN_MULTIHUB_IKE_NATT",
                             "1" if len(sys.argv) > 2 and sys.argv[2] == "natt" else "0") == "1"
BR = "hibr0"
HUBS = {
    "A": {"nbma": "100.64.0.1", "overlay": "10.0.0.1", "tap": "hiA0", "mac": "02:00:00:01:aa:01",
          "plen": 10, "gw": ""},
    "B": {"nbma": "100.64.0.250", "overlay": "10.0.0.250", "tap": "hiB0",
          "mac": "02:00:00:01:bb:01", "plen": 10, "gw": ""},
}
# natt: hub A's own bridge, its gateway (this namespace's kernel) and the NAT's public address
# and ports; hub A's `public` address is the one hub B and the spokes see.
NAT_BR, NAT_GW, NAT_PORTS = "hinbr0", "192.168.50.254", (20000, 20999)
if NATT:
    HUBS["A"].update(nbma="192.168.50.1", plen=24, public="100.64.0.1",
                     gw="    gateway: %s\n" % NAT_GW)


def seen(h):
    """The NBMA address the other hub sees for hub `h` (after the NAT)."""
    return h.get("public", h["nbma"])



PSK = "hub-to-hub-e2e-key"
multihub.BR = BR
multihub.KERNEL_MACS.update({"hiA0": "02:00:00:01:fe:01", "hiB0": "02:00:00:01:fe:02",
                             "hiSa0": "02:00:00:01:fe:03"})
# Emulated spoke 0 (the emulator's defaults: NBMA 100.64.0.2, overlay 10.0.0.2), known to hub B
# only by a static map (which hub B also initiates to).
MAPPED = ("10.0.0.2", "100.64.0.2")

IKE = {
    "v2": "      proposals: [aes128gcm16-prfsha256-x25519]\n"
          "      esp-proposals: [aes128gcm16]\n",
    "v1": "      version: 1\n"
          "      esp-proposals: [aes128-sha1]\n",
}[VERSION]

# multihub.py's configuration, the tunnel protected by IKE (with `initiate` on).
PROFILE = """\
ipsec-profiles:
  - name: hubs
    ike:
      authentication: psk
      psk: {psk}
      initiate: true
      dpd-interval: 5
      dpd-retries: 2
      nat-keepalive: 1
{ike}"""
CONFIG = multihub.CONFIG.replace("tunnels:\n", PROFILE + "tunnels:\n").replace(
    "    gre-key: {key}\n", "    gre-key: {key}\n    ipsec-profile: hubs\n").replace(
    "      max-cache-entries", "{maps}      max-cache-entries").replace(
    "    address: {nbma}/10\n", "    address: {nbma}/{plen}\n{gw}").replace(
    # Registrations refreshed every 2 s: NHRP keeps crossing the hubs' ESP (the pair left after
    # a collision counts packets soon, and a peer lost meanwhile would show).
    "registration-timeout: 10", "registration-timeout: 2")
MAP = "      map:\n        - overlay: %s\n          nbma: %s\n" % MAPPED


class Hub(e2e.hub):  # its ctl() and json(), a start of its own (launch, then ready())
    def __init__(self, d, name):
        self.name, self.d = name, d
        me = HUBS[name]
        self.peer = HUBS["B" if name == "A" else "A"]
        self.sock = os.path.join(d, "hub%s.sock" % name)
        path = os.path.join(d, "hub%s.yaml" % name)
        with open(path, "w") as f:
            f.write(CONFIG.format(d=d, name=name, psk=PSK, ike=IKE, key=100, auth="e2e",
                                  maps=MAP if name == ("A" if NATT else "B") else "",
                                  peer_overlay=self.peer["overlay"], peer_nbma=seen(self.peer),
                                  **me))
        self.log = open(os.path.join(d, "hub%s.log" % name), "a+")
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.started = time.time()
        self.proc = subprocess.Popen(
            [e2e.HUB, "--config", path, "--", "--file-prefix", "hi-hub%s-%d" % (name, os.getpid())],
            stdout=self.log, stderr=subprocess.STDOUT)

    def ready(self):
        self.wait_started("dmvpn-hub " + self.name)
        multihub.bridge(HUBS[self.name]["tap"], br=NAT_BR if NATT and self.name == "A" else None)
        return self

    def sessions(self):
        """The peer's sessions, as `show crypto session --json` lists them."""
        return [s for s in self.json("show", "crypto", "session")["sessions"]
                if s["peer"] == seen(self.peer)]

    def ike_sas(self):
        """The IKE SAs with the peer, those still negotiating left out (natt: hub B's own
        initiations to hub A's public address, which the NAT refuses)."""
        if VERSION == "v1":
            return [r for r in self.json("show", "crypto", "isakmp", "sa")["isakmp_sas"]
                    if seen(self.peer) in (r.get("dst"), r.get("src")) and
                    (not NATT or r["status"] == "ACTIVE")]
        return [r for r in self.json("show", "crypto", "ikev2", "sa")["ikev2_sas"]
                if r["remote"] == seen(self.peer) and r["status"] != "IN-NEG"]

    def keyed(self):
        return any(s["status"] in ("UP-ACTIVE", "UP-IDLE") for s in self.sessions())

    def holds_peer(self):
        return self.peer["overlay"] in {e["via"] for e in self.json("show", "nhrp")
                                        if e["type"] == "dynamic"}

    def registered(self):
        return self.json("show", "nhrp", "nhs")[0]["state"] == "responding"

    def control(self):
        return self.json("show", "stats")["control"]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def until(what, timeout=40, step=0.05):
    """Seconds until what() is true (None if it never was)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            if what():
                return time.time() - t0
        except (SystemExit, KeyError, IndexError, ValueError):
            pass  # a hub still starting
        time.sleep(step)
    return None


def cross_hub_resolution(d, hub_a, hub_b):
    """Two emulated spokes keyed by IKE with hub A; spoke 0 registers once and lets it run out
    (holding time 3 s), so hub A no longer knows it while hub B holds it by its static map. Then
    spoke 1 resolves spoke 0 at hub A: hub A forwards the request to hub B inside their ESP, hub
    B's answer comes back through hub A, and spoke 1 sends to spoke 0 by shortcut over a
    spoke-to-spoke SA. (natt: called with the hubs swapped, the spokes keyed with hub B.)"""
    before = hub_a.json("show", "nhrp", "nhs")[0]["resolutions_forwarded"]
    a, b = "hub " + hub_a.name, "hub " + hub_b.name
    cmd = [e2e.SIM, "--vdev", "net_tap0,iface=hiSa0,mac=02:00:00:01:5a:01", "--tunnel-prefix",
           "10.0.0.0/16", "--spokes", 2, "--gre-key", 100, "--auth", "e2e", "--ike", "psk:" + PSK,
           "--holdtime", 3, "--registration-timeout", 1, "--stop-refresh", 1, "--resolve",
           "--resolve-after", 5, "--data-after", 6, "--rate", 50, "--duration", 3,
           "--peer-offset", 1, "--drain", 1, "--no-progress", "--hub-nbma",
           seen(HUBS[hub_a.name]), "--hub-overlay", HUBS[hub_a.name]["overlay"], "--eal",
           "-l 0 --no-huge -m 256 --no-pci --no-telemetry --no-shconf --file-prefix hi-sim-%d"
           % os.getpid()]
    r = multihub.report(*multihub.start_sim(d, cmd, "a", "hiSa0"), timeout=60)
    forwarded = hub_a.json("show", "nhrp", "nhs")[0]["resolutions_forwarded"] - before
    e2e.check(r is not None and r["keyed"] == 2, "two emulated spokes keyed with %s (%s)" %
              (a, r and r["keyed"]))
    e2e.check(forwarded >= 1, "%s forwarded %d Resolution Request(s) for %s to %s" %
              (a, forwarded, MAPPED[0], b))
    e2e.check(r is not None and r["resolution_replies"] >= 1 and r["shortcuts"] >= 1,
              "%s's answer came back through %s: spoke 1 resolved %s to %s (%s replies)"
              % (b, a, MAPPED[0], MAPPED[1], r and r["resolution_replies"]))
    e2e.check(r is not None and r["spoke_sas"] >= 1 and r["received_shortcut"] > 0,
              "spoke 1 then sent by shortcut over a spoke-to-spoke SA: %s of %s packets (%s lost "
              "through %s before that SA was up)" %
              (r and r["received_shortcut"], r and r["sent"], r and r["lost"], a))


def check_initiator(hubs):
    """`show crypto ike initiator`: each hub's initiation targets; the other hub up, the
    static map's spoke (no emulator yet) still being tried."""
    version = "IKEv1" if VERSION == "v1" else "IKEv2"
    mapper = "A" if NATT else "B"
    for n, h in hubs.items():
        rows = {r["peer"]: r for r in h.json("show", "crypto", "ike", "initiator")["initiator"]}
        r = rows.get(seen(h.peer), {})
        e2e.check(r.get("state") == "up" and r.get("version") == version and
                  r.get("attempts", 0) >= 1 and r.get("next_attempt_s", 0) is None and
                  r.get("tunnel") == "tun0",
                  "hub %s: show crypto ike initiator: the other hub up (%s)" % (n, r))
        m = rows.get(MAPPED[1])
        if n == mapper:
            e2e.check(m is not None and m["state"] in ("connecting", "backing-off") and
                      m["attempts"] >= 1 and m["next_attempt_s"] is not None,
                      "hub %s: the static map's %s not up, tried again in %s s (%s)" %
                      (n, MAPPED[1], m and m["next_attempt_s"], m))
        else:
            e2e.check(len(rows) == 1, "hub %s initiates to the other hub only (%s)" %
                      (n, sorted(rows)))
        text = h.ctl("show", "crypto", "ike", "initiator")
        e2e.check(text.startswith("IKE initiator (hub to hub): %d peer(s)" % len(rows)) and
                  seen(h.peer) in text, "hub %s: its text form lists them" % n)
        print(text.rstrip(), flush=True)


def one_sa(hubs, t0):
    """The simultaneous initiation leaves one IKE SA (v1: ISAKMP SA) and one CHILD_SA pair
    between the hubs, the same one on both (the redundant SA deleted by the hub that initiated
    it), and neither hub's NHRP lost the other meanwhile (no peer_down)."""
    a, b = hubs["A"], hubs["B"]

    def inbound(h):
        return [s["spi"] for f in h.json("show", "crypto", "ipsec", "sa")["ipsec_sas"]
                if f["peer"] == seen(h.peer) for s in f["inbound"]]

    def outbound(h):
        return [s["spi"] for f in h.json("show", "crypto", "ipsec", "sa")["ipsec_sas"]
                if f["peer"] == seen(h.peer) for s in f["outbound"]]
    one = until(lambda: len(a.ike_sas()) == 1 and len(b.ike_sas()) == 1 and
                len(inbound(a)) == 1 and len(inbound(b)) == 1, timeout=20)
    e2e.check(one is not None, "one IKE SA and one CHILD_SA pair left on each hub %.2f s after "
              "launch (A %d/%d, B %d/%d)" % (time.time() - t0, len(a.ike_sas()), len(inbound(a)),
                                             len(b.ike_sas()), len(inbound(b))))
    sa_a, sa_b = a.ike_sas(), b.ike_sas()
    if VERSION == "v2":  # (v1's show names no cookies: the pair below says it)
        e2e.check(len(sa_a) == 1 and len(sa_b) == 1 and
                  sa_a[0]["local_spi"] == sa_b[0]["remote_spi"] and
                  sa_a[0]["remote_spi"] == sa_b[0]["local_spi"],
                  "both hubs kept the same IKE SA (%s)" % [(r["local_spi"], r["remote_spi"])
                                                          for r in sa_a + sa_b])
    e2e.check(inbound(a) == outbound(b) and inbound(b) == outbound(a),
              "and the same CHILD_SA pair (A in %s out %s, B in %s out %s)" %
              (inbound(a), outbound(a), inbound(b), outbound(b)))
    if VERSION == "v2":  # (no IKEv1 stats view; ike_v1_pair counts its deletions)
        deleted = {n: h.json("show", "crypto", "ikev2", "stats")["duplicates_deleted"]
                   for n, h in hubs.items()}
        e2e.check(sum(deleted.values()) <= 1, "the redundant IKE SA deleted by one hub (%s)" %
                  deleted)
    for n, h in hubs.items():
        h.log.flush()
        with open(h.log.name) as f:
            downs = [line for line in f if " SA down: peer " in line]
        e2e.check(not downs, "hub %s: the peer never went down (%s)" % (n, downs))
        e2e.check(h.holds_peer() and h.registered(), "hub %s: registrations held" % n)


def registration_lag(hubs, keyed_at, registered_at):
    """Printed, not asserted: both hubs keyed (show crypto session UP) and both registrations
    held, seconds after launch; the registrations each hub sent and had answered, the pairs it
    answered for whose registration waited for the peer's first packet on them (and those
    that waited in vain), and ESP the workers found no SA for (a registration sent on a pair
    the peer had not installed yet lands there)."""
    for n, h in hubs.items():
        nhs = h.json("show", "nhrp", "nhs")[0]
        c = h.control()
        drops = h.json("show", "stats")["drops"]
        print("hub %s: NHS registrations sent %d, answered %d; registrations that waited for the "
              "peer's traffic on a pair we answered for %d (%d in vain); ESP dropped for an "
              "unknown SPI %d" % (n, nhs["requests_sent"], nhs["replies"], c["ike_nhs_waited"],
                                  c["ike_nhs_wait_expired"], drops["esp_unknown_spi"]),
              flush=True)
    print("MEASURED at launch: both hubs keyed %.2f s, both registrations held %.2f s after "
          "launch (%.2f s later)" % (keyed_at, registered_at, registered_at - keyed_at),
          flush=True)


def no_pending_initiation(b):
    """natt: hub B's own initiation to hub A's public address, which the NAT never answers,
    does not linger once hub A's SA with it is up: it is abandoned (v2: counted) instead of
    being retransmitted for a minute (no IN-NEG IKE SA, v1: no NEGOTIATING ISAKMP SA, left)."""
    def pending():
        if VERSION == "v1":
            return [r["conn_id"] for r in b.json("show", "crypto", "isakmp", "sa")["isakmp_sas"]
                    if seen(b.peer) in (r.get("dst"), r.get("src")) and r["status"] != "ACTIVE"]
        return [r["local_spi"] for r in b.json("show", "crypto", "ikev2", "sa")["ikev2_sas"]
                if r["remote"] == seen(b.peer) and r["status"] == "IN-NEG"]
    gone = until(lambda: not pending(), timeout=10)
    counted = ""
    if VERSION == "v2":
        stats = b.json("show", "crypto", "ikev2", "stats")
        counted = "; %d abandoned when hub A's SA came up, %d init-sent" % (
            stats["initiations_abandoned"], stats["ike_sas"]["init_sent"])
    e2e.check(gone is not None, "hub B: no initiation of its own to hub A left negotiating "
              "(%s%s)" % (pending(), counted))


NFT = """\
table ip hinat {
  chain count {
    type filter hook forward priority 0;
    iifname "%(nat)s" udp dport 4500 @th,64,32 != 0 counter comment "esp_out"
    oifname "%(nat)s" udp sport 4500 @th,64,32 != 0 counter comment "esp_in"
    iifname "%(nat)s" udp dport 4500 udp length 9 counter comment "keepalive"
  }
  chain post {
    type nat hook postrouting priority 100;
    oifname "%(pub)s" ip saddr 192.168.50.0/24 meta l4proto udp snat to %(ip)s:%(lo)d-%(hi)d
  }
}
"""


def start_nat():
    """Hub A's bridge, this namespace's kernel as its gateway and NAT (nft)."""
    if shutil.which("nft") is None:
        print("no nft: skipped")
        sys.exit(77)
    multihub.sh("ip", "link", "add", NAT_BR, "type", "bridge")
    multihub.sh("ip", "addr", "add", NAT_GW + "/24", "dev", NAT_BR)
    multihub.sh("ip", "link", "set", NAT_BR, "up")
    multihub.sh("ip", "addr", "add", HUBS["A"]["public"] + "/10", "dev", BR)
    # Forwarding on; ARP answered only on the interface holding the address: an unbridged tap
    # (whose kernel side has its hub's MAC until bridge() changes it) must not answer for the
    # gateway or the public address, or the hub would take its own MAC for them.
    for path in ("ip_forward", "conf/all/arp_ignore"):
        with open("/proc/sys/net/ipv4/" + path, "w") as f:
            f.write("1\n")
    subprocess.run(["nft", "-f", "-"], check=True, text=True, input=NFT % {
        "nat": NAT_BR, "pub": BR, "ip": HUBS["A"]["public"], "lo": NAT_PORTS[0],
        "hi": NAT_PORTS[1]})


def nat_counters():
    """The NAT's packet counters by comment: esp_out (hub A's ESP-in-UDP out), esp_in, keepalive."""
    import json
    rules = json.loads(multihub.sh("nft", "-j", "list", "chain", "ip", "hinat", "count").stdout)
    out = {}
    for item in rules["nftables"]:
        r = item.get("rule")
        if r:
            out[r.get("comment")] = sum(e["counter"]["packets"] for e in r["expr"]
                                        if "counter" in e)
    return out


def check_natt(hubs):
    """NAT detected, IKE on 4500, ESP in UDP both ways (workers and the NAT count it), hub A's
    NAT keepalives."""
    a, b = hubs["A"], hubs["B"]
    lo, hi = NAT_PORTS
    for r in a.ike_sas():
        e2e.check(r["nat_local"] and r["local_port"] == 4500 and r["remote_port"] == 4500,
                  "hub A: NAT detected in front of it, its IKE SA on UDP 4500 (local %s:%d, "
                  "remote %s:%d)" % (r.get("local", r.get("dst")), r["local_port"],
                                     r.get("remote", r.get("src")), r["remote_port"]))
    for r in b.ike_sas():
        e2e.check(r["nat_remote"] and r["local_port"] == 4500 and lo <= r["remote_port"] <= hi,
                  "hub B: NAT detected in front of hub A, the IKE SA on 4500 to the NAT's port "
                  "(remote %s:%d)" % (r.get("remote", r.get("src")), r["remote_port"]))
    for n, h in hubs.items():
        flows = [f for f in h.json("show", "crypto", "ipsec", "sa")["ipsec_sas"]
                 if f["peer"] == seen(h.peer)]
        encap = [s["udp_encap"] for f in flows for s in f["inbound"] + f["outbound"]]
        e2e.check(encap and all(encap), "hub %s: the CHILD_SA is UDP-encapsulated both ways "
                  "(%s, peer port %s)" % (n, encap, [f["peer_port"] for f in flows]))
        # The hubs' NHRP to each other leaves through the control lcore's forwarder (the
        # CHILD_SA's encaps above); what comes in is decapsulated by the workers.
        nin = sum(x["natt_in"] for x in h.json("show", "stats")["workers"])
        e2e.check(nin > 0, "hub %s's workers took %d ESP-in-UDP packets out of UDP" % (n, nin))
        if VERSION == "v2":  # (v1: no `ikev2 stats`; the NAT counts hub A's keepalives below)
            ka = h.json("show", "crypto", "ikev2", "stats")["nat_keepalives_tx"]
            e2e.check(ka > 0 if n == "A" else ka == 0, "hub %s sent %d NAT keepalives (%s)" %
                      (n, ka, "behind the NAT" if n == "A" else "in front of it: none"))
    c = nat_counters()
    e2e.check(c.get("esp_out", 0) > 0 and c.get("esp_in", 0) > 0 and c.get("keepalive", 0) > 0,
              "the NAT forwarded ESP-in-UDP both ways and hub A's keepalives (%s)" % c)


def main():
    e2e.reexec_in_netns(__file__, "DMVPN_MULTIHUB_IKE_NS")
    multihub.sh("ip", "link", "set", "lo", "up")
    multihub.sh("ip", "link", "add", BR, "type", "bridge")
    multihub.sh("ip", "link", "set", BR, "up")
    d = tempfile.mkdtemp(prefix="e2e-multihub-ike-")
    hubs = {}
    if NATT:
        start_nat()
    try:
        print("IKE %s%s, uptime: %s" % (VERSION, " behind a NAT" if NATT else "", multihub.sh("uptime").stdout.strip()), flush=True)
        # Both at once: each initiates to the other as soon as it runs (and its tap is bridged).
        hubs["A"] = Hub(d, "A")
        hubs["B"] = Hub(d, "B")
        t0 = time.time()
        for h in hubs.values():
            h.ready()
        both = until(lambda: all(h.keyed() for h in hubs.values()))
        e2e.check(both is not None, "both hubs keyed each other (show crypto session: UP) "
                  "%.2f s after launch" % (time.time() - t0))
        for n, h in hubs.items():
            sas = h.ike_sas()
            e2e.check(len(sas) >= 1, "hub %s: show crypto %s sa lists hub %s (%d SAs)" %
                      (n, "isakmp" if VERSION == "v1" else "ikev2", "B" if n == "A" else "A",
                       len(sas)))
            text = h.ctl("show", "crypto", "session")
            print("hub %s: %s" % (n, text.strip()), flush=True)
            label = "IKEv1 SA: local " if VERSION == "v1" else "IKEv2 SA: local "
            e2e.check(label in text and h.sessions()[0]["ike_sas"][0]["version"] ==
                      int(VERSION[1]), "hub %s: show crypto session says %s (text and JSON)" %
                      (n, label[:8]))
        keyed_at = time.time() - t0
        regs = until(lambda: all(h.holds_peer() and h.registered() for h in hubs.values()))
        e2e.check(regs is not None, "each hub registered with the other inside ESP and holds "
                  "the other's registration (%.2f s after launch)" % (time.time() - t0))
        registration_lag(hubs, keyed_at, time.time() - t0)
        one_sa(hubs, t0)
        check_initiator(hubs)
        if NATT:
            no_pending_initiation(hubs["B"])
        time.sleep(2)  # a usage report (1 s) brings the workers' counters to the engine
        for n, h in hubs.items():
            c = h.control()
            e2e.check(c["nhrp_tx_esp"] > 0, "hub %s sent %d NHRP packets inside ESP, %d found "
                      "no ESP path (before its SA)" % (n, c["nhrp_tx_esp"],
                                                       c["nhrp_tx_no_esp_path"]))

            def mine():
                return [f for f in h.json("show", "crypto", "ipsec", "sa")["ipsec_sas"]
                        if f["peer"] == seen(h.peer)]
            until(lambda: sum(f["encaps"] for f in mine()) > 0 and
                  sum(f["decaps"] for f in mine()) > 0, timeout=10)
            e2e.check(mine() and sum(f["encaps"] for f in mine()) > 0 and
                      sum(f["decaps"] for f in mine()) > 0,
                      "hub %s: show crypto ipsec sa counts ESP packets with its peer (%s)" %
                      (n, [(f["encaps"], f["decaps"]) for f in mine()]))
        if NATT:
            check_natt(hubs)
        for n, h in hubs.items():
            e2e.check(h.proc.poll() is None, "hub %s still running" % n)

        # Hub A killed and started again: no operator action.
        old = {r.get("local_spi", r.get("conn_id")) for r in hubs["B"].ike_sas()}
        hubs["A"].kill()
        time.sleep(1)
        hubs["A"] = Hub(d, "A")
        launched = hubs["A"].started
        hubs["A"].ready()
        ready_at = time.time() - launched  # its start (EAL, ports) and the tap on the bridge
        new_sa = until(lambda: hubs["A"].keyed() and any(
            r.get("local_spi", r.get("conn_id")) not in old for r in hubs["B"].ike_sas()))
        keyed_at = time.time() - launched if new_sa is not None else None
        e2e.check(new_sa is not None, "the restarted hub A and hub B keyed each other again")
        back = until(lambda: hubs["A"].holds_peer() and hubs["A"].registered())
        reg_at = time.time() - launched if back is not None else None
        e2e.check(back is not None, "hub A and hub B registered with each other again inside "
                  "the new ESP")
        stale = until(lambda: len(hubs["B"].ike_sas()) == 1 and all(
            r.get("local_spi", r.get("conn_id")) not in old for r in hubs["B"].ike_sas()),
            timeout=20)
        e2e.check(stale is not None, "hub B dropped the SA of hub A's previous life (%s)" %
                  hubs["B"].ike_sas())
        if keyed_at is not None and reg_at is not None:
            print("MEASURED after hub A's restart: IKE SA with hub B up %.2f s after A's launch, "
                  "registrations both ways %.2f s after launch (hub A itself answered its "
                  "management socket and was bridged %.2f s after launch)" %
                  (keyed_at, reg_at, ready_at), flush=True)

        # Hub B's SA deleted at B: B keys again by itself (its back-off starts at once).
        hubs["B"].ctl("clear", "crypto", "sa")
        t1 = time.time()
        again = until(lambda: all(h.keyed() for h in hubs.values()), timeout=30)
        e2e.check(again is not None, "after clear crypto sa on hub B, the hubs keyed again in "
                  "%.2f s" % (time.time() - t1))
        regs = until(lambda: all(h.holds_peer() and h.registered() for h in hubs.values()))
        e2e.check(regs is not None, "and registered with each other again")
        if NATT:
            no_pending_initiation(hubs["B"])
        if NATT and VERSION == "v2":
            cross_hub_resolution(d, hubs["B"], hubs["A"])
        elif VERSION == "v2":
            cross_hub_resolution(d, hubs["A"], hubs["B"])
        for n, h in hubs.items():
            e2e.check(h.proc.poll() is None, "hub %s still running" % n)
    finally:
        for h in hubs.values():
            h.kill()
        multihub.sh("ip", "link", "del", BR, check=False)
        multihub.sh("ip", "link", "del", NAT_BR, check=False)
    if e2e.failures:
        print("FAILED: %d checks: %s" % (len(e2e.failures), e2e.failures))
        print("logs in", d)
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
