#!/usr/bin/env python3
"""Two hubs keyed by IKE (issue 10 part 3): the two build/dmvpn-hub processes of
tests/e2e/multihub.py, each the other's `nhs`, but their tunnel protected by an IPsec profile
with a pre-shared key and `ike.initiate: true`, on net_tap ports bridged in a network namespace
of their own (unshare -n). Argument: `v2` (IKEv2, the default) or `v1` (IKEv1 Main Mode +
Quick Mode, `ike.version: 1`).

  - both hubs are launched together and initiate to each other at once (a collision): both
    end with working SAs (`show crypto session` on each names the other, UP), nothing torn down
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
Timings are printed, never asserted. About 20 s. Needs root and /dev/net/tun (77 otherwise).
"""

import os
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
BR = "hibr0"
HUBS = {
    "A": {"nbma": "100.64.0.1", "overlay": "10.0.0.1", "tap": "hiA0", "mac": "02:00:00:01:aa:01"},
    "B": {"nbma": "100.64.0.250", "overlay": "10.0.0.250", "tap": "hiB0",
          "mac": "02:00:00:01:bb:01"},
}
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
{ike}"""
CONFIG = multihub.CONFIG.replace("tunnels:\n", PROFILE + "tunnels:\n").replace(
    "    gre-key: {key}\n", "    gre-key: {key}\n    ipsec-profile: hubs\n").replace(
    "      max-cache-entries", "{maps}      max-cache-entries")
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
                                  maps=MAP if name == "B" else "",
                                  peer_overlay=self.peer["overlay"], peer_nbma=self.peer["nbma"],
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
        multihub.bridge(HUBS[self.name]["tap"])
        return self

    def sessions(self):
        """The peer's sessions, as `show crypto session --json` lists them."""
        return [s for s in self.json("show", "crypto", "session")["sessions"]
                if s["peer"] == self.peer["nbma"]]

    def ike_sas(self):
        if VERSION == "v1":
            return [r for r in self.json("show", "crypto", "isakmp", "sa")["isakmp_sas"]
                    if self.peer["nbma"] in (r.get("dst"), r.get("src"))]
        return [r for r in self.json("show", "crypto", "ikev2", "sa")["ikev2_sas"]
                if r["remote"] == self.peer["nbma"]]

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


def cross_hub_resolution(d, hub_a):
    """Two emulated spokes keyed by IKE with hub A; spoke 0 registers once and lets it run out
    (holding time 3 s), so hub A no longer knows it while hub B holds it by its static map. Then
    spoke 1 resolves spoke 0 at hub A: hub A forwards the request to hub B inside their ESP, hub
    B's answer comes back through hub A, and spoke 1 sends to spoke 0 by shortcut over a
    spoke-to-spoke SA."""
    before = hub_a.json("show", "nhrp", "nhs")[0]["resolutions_forwarded"]
    cmd = [e2e.SIM, "--vdev", "net_tap0,iface=hiSa0,mac=02:00:00:01:5a:01", "--tunnel-prefix",
           "10.0.0.0/16", "--spokes", 2, "--gre-key", 100, "--auth", "e2e", "--ike", "psk:" + PSK,
           "--holdtime", 3, "--registration-timeout", 1, "--stop-refresh", 1, "--resolve",
           "--resolve-after", 5, "--data-after", 6, "--rate", 50, "--duration", 3,
           "--peer-offset", 1, "--drain", 1, "--no-progress", "--eal",
           "-l 0 --no-huge -m 256 --no-pci --no-telemetry --no-shconf --file-prefix hi-sim-%d"
           % os.getpid()]
    r = multihub.report(*multihub.start_sim(d, cmd, "a", "hiSa0"), timeout=60)
    forwarded = hub_a.json("show", "nhrp", "nhs")[0]["resolutions_forwarded"] - before
    e2e.check(r is not None and r["keyed"] == 2, "two emulated spokes keyed with hub A (%s)" %
              (r and r["keyed"]))
    e2e.check(forwarded >= 1, "hub A forwarded %d Resolution Request(s) for %s to hub B" %
              (forwarded, MAPPED[0]))
    e2e.check(r is not None and r["resolution_replies"] >= 1 and r["shortcuts"] >= 1,
              "hub B's answer came back through hub A: spoke 1 resolved %s to %s (%s replies)"
              % (MAPPED[0], MAPPED[1], r and r["resolution_replies"]))
    e2e.check(r is not None and r["spoke_sas"] >= 1 and r["received_shortcut"] > 0,
              "spoke 1 then sent by shortcut over a spoke-to-spoke SA: %s of %s packets (%s lost "
              "through hub A before that SA was up)" %
              (r and r["received_shortcut"], r and r["sent"], r and r["lost"]))


def main():
    e2e.reexec_in_netns(__file__, "DMVPN_MULTIHUB_IKE_NS")
    multihub.sh("ip", "link", "set", "lo", "up")
    multihub.sh("ip", "link", "add", BR, "type", "bridge")
    multihub.sh("ip", "link", "set", BR, "up")
    d = tempfile.mkdtemp(prefix="e2e-multihub-ike-")
    hubs = {}
    try:
        print("IKE %s, uptime: %s" % (VERSION, multihub.sh("uptime").stdout.strip()), flush=True)
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
            print("hub %s: %s" % (n, h.ctl("show", "crypto", "session").strip()), flush=True)
        regs = until(lambda: all(h.holds_peer() and h.registered() for h in hubs.values()))
        e2e.check(regs is not None, "each hub registered with the other inside ESP and holds "
                  "the other's registration (%.2f s after launch)" % (time.time() - t0))
        time.sleep(2)  # a usage report (1 s) brings the workers' counters to the engine
        for n, h in hubs.items():
            c = h.control()
            e2e.check(c["nhrp_tx_esp"] > 0, "hub %s sent %d NHRP packets inside ESP, %d found "
                      "no ESP path (before its SA)" % (n, c["nhrp_tx_esp"],
                                                       c["nhrp_tx_no_esp_path"]))
            flows = h.json("show", "crypto", "ipsec", "sa")["ipsec_sas"]
            mine = [f for f in flows if f["peer"] == h.peer["nbma"]]
            e2e.check(mine and sum(f["encaps"] for f in mine) > 0 and
                      sum(f["decaps"] for f in mine) > 0,
                      "hub %s: show crypto ipsec sa counts ESP packets with its peer (%s)" %
                      (n, [(f["encaps"], f["decaps"]) for f in mine]))
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
        if VERSION == "v2":
            cross_hub_resolution(d, hubs["A"])
        for n, h in hubs.items():
            e2e.check(h.proc.poll() is None, "hub %s still running" % n)
    finally:
        for h in hubs.values():
            h.kill()
        multihub.sh("ip", "link", "del", BR, check=False)
    if e2e.failures:
        print("FAILED: %d checks: %s" % (len(e2e.failures), e2e.failures))
        print("logs in", d)
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
