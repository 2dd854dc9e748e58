#!/usr/bin/python3
"""End to end: build/dmvpn-hub and build/dmvpn-spokesim (two DPDK processes) over net_memif.

  e2e.py scale     1,000 spokes register over NHRP inside ESP (every reply received); traffic
                   between sampled pairs (peer offsets 1 and 37) arrives intact through the hub;
                   Phase 3: each sender's Traffic Indication turns into a shortcut
  e2e.py refused   wrong NHRP authentication, GRE key or SA keys: refused and counted by the hub
  e2e.py expiry    a short holding time runs out: the entries leave `show nhrp --json`
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

BUILD = os.environ["DMVPN_BUILD"]
HUB = os.path.join(BUILD, "dmvpn-hub")
CTL = os.path.join(BUILD, "dmvpnctl")
SIM = os.path.join(BUILD, "dmvpn-spokesim")

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


CONFIG = """\
hub:
  control-lcore: 0
  worker-lcores: [1]
  eal-args: [--no-huge, -m, "1024", --no-pci, --no-telemetry]
ports:
  - name: underlay
    device: net_memif0,role=server,socket={d}/memif.sock
    role: underlay
    address: 100.64.0.1/10
tunnels:
  - name: tun0
    port: underlay
    overlay-address: 10.0.0.1
    overlay-prefix: 10.0.0.0/16
    gre-key: 100
    nhrp:
      network-id: 1
      authentication: e2e
      holdtime: 600
      phase: 3
      redirect: true
      redirect-rate-limit: 100000
      max-cache-entries: 8192
    ip-mtu: 1400
    ipsec-profile: spokesim
{sas}management:
  socket: {d}/hub.sock
"""


class hub:
    def __init__(self, d, spokes):
        self.d = d
        self.sock = os.path.join(d, "hub.sock")
        sas = subprocess.run([SIM, "--spokes", str(spokes), "--esp", "aes128-gcm16",
                              "--print-sa-yaml"], capture_output=True, text=True,
                             check=True).stdout
        sas = "\n".join(l for l in sas.splitlines() if not l.startswith("#")) + "\n"
        with open(os.path.join(d, "hub.yaml"), "w") as f:
            f.write(CONFIG.format(d=d, sas=sas))
        self.log = open(os.path.join(d, "hub.log"), "w+")
        self.proc = subprocess.Popen(
            [HUB, "--config", os.path.join(d, "hub.yaml"), "--", "--file-prefix",
             "e2e-hub-%d" % os.getpid()], stdout=self.log, stderr=subprocess.STDOUT)
        end = time.time() + 60
        while time.time() < end:
            if os.path.exists(self.sock) and self.ctl("help", check=False) is not None:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        self.log.seek(0)
        print(self.log.read())
        raise SystemExit("dmvpn-hub did not start")

    def ctl(self, *cmd, check=True):
        r = subprocess.run([CTL, "--socket", self.sock, *cmd], capture_output=True, text=True,
                           timeout=30)
        if r.returncode != 0:
            if check:
                raise SystemExit("dmvpnctl %s: %s" % (" ".join(cmd), r.stderr))
            return None
        return r.stdout

    def json(self, *cmd):
        return json.loads(self.ctl(*cmd, "--json"))

    def nhrp_counts(self):
        return self.json("show", "nhrp", "traffic")[0]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = None
        check(rc == 0, "SIGTERM stops the hub with status 0 (got %s)" % rc)
        if rc != 0:
            self.log.seek(0)
            print(self.log.read())


def spokesim(d, *args, timeout=240):
    cmd = [SIM, "--queues", "2", "--vdev",
           "net_memif0,role=client,socket=%s/memif.sock" % d, "--tunnel-prefix", "10.0.0.0/16",
           "--no-progress", "--eal",
           "-l 0 --no-huge -m 512 --no-pci --no-telemetry --file-prefix e2e-sim-%d" % os.getpid()]
    cmd += [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = r.stdout.strip().splitlines()
    try:
        rep = json.loads(lines[-1])
    except (IndexError, ValueError):
        print(r.stdout, r.stderr)
        raise SystemExit("dmvpn-spokesim gave no JSON report")
    print("spokesim %s -> rc %d: %s" % (" ".join(str(a) for a in args), r.returncode,
                                          {k: rep[k] for k in ("registered", "registration_replies",
                                                               "registration_rejects", "sent",
                                                               "received", "lost", "corrupt",
                                                               "shortcuts", "esp_errors")}),
          flush=True)
    return r.returncode, rep


GOOD = ["--gre-key", 100, "--auth", "e2e", "--esp", "aes128-gcm16"]


def scale(d):
    n = 1000
    h = hub(d, n)
    try:
        t0 = time.time()
        # Phase 3 on: each spoke's first packet through the hub draws a Traffic Indication.
        rc, r = spokesim(d, "--spokes", n, *GOOD, "--reg-rate", 500, "--rate", 4000,
                         "--duration", 4, "--peer-offset", 1)
        check(rc == 0 and r["ok"], "the emulator reports success")
        check(r["registered"] == n and r["registration_replies"] >= n and
              r["registration_rejects"] == 0,
              "%d spokes registered, %d replies received" % (r["registered"],
                                                             r["registration_replies"]))
        entries = h.json("show", "nhrp")
        check(len([e for e in entries if e["type"] == "dynamic"]) == n,
              "show nhrp --json lists %d dynamic entries" % n)
        check(r["lost"] == 0 and r["corrupt"] == 0 and r["duplicates"] == 0 and
              r["esp_errors"] == 0 and r["received"] == r["sent"] and r["sent"] > 0,
              "traffic (offset 1): %d sent, %d received, 0 lost, 0 corrupt" % (r["sent"],
                                                                                  r["received"]))
        check(r["traffic_indications"] >= n and r["shortcuts"] >= n and
              r["sent_shortcut"] > 0 and r["received_shortcut"] == r["sent_shortcut"],
              "redirect -> shortcut: %d Traffic Indications, %d shortcuts, %d packets by "
              "shortcut" % (r["traffic_indications"], r["shortcuts"], r["sent_shortcut"]))
        ti = h.nhrp_counts()["sent"]["traffic_indication"]
        check(ti >= n, "the hub counts %d Traffic Indications sent" % ti)
    finally:
        h.stop()
    # Another sample of pairs, all of it through the hub (no shortcuts). A fresh hub: a new
    # emulator starts its ESP sequence numbers at 1 again, which the old one's replay windows
    # would rightly refuse.
    h = hub(d, n)
    try:
        rc, r2 = spokesim(d, "--spokes", n, *GOOD, "--reg-rate", 500, "--rate", 4000,
                          "--duration", 3, "--peer-offset", 37, "--no-shortcuts")
        check(rc == 0 and r2["registered"] == n and r2["lost"] == 0 and r2["corrupt"] == 0 and
              r2["esp_errors"] == 0 and r2["received_via_hub"] == r2["sent"] and
              r2["sent"] > 0,
              "traffic (offset 37, via the hub): %d sent, %d received intact" %
              (r2["sent"], r2["received_via_hub"]))
        st = h.json("show", "stats")
        check(st["control"]["nhrp_tx_no_esp_path"] == 0 and st["control"]["nhrp_tx_esp"] >= n,
              "hub: %d NHRP packets sent inside ESP, none without a path" %
              st["control"]["nhrp_tx_esp"])
        print("scale: %.1f s" % (time.time() - t0))
    finally:
        h.stop()


def refused(d):
    n = 4
    # Each case uses its own spokes: a case whose ESP is valid moves the hub's replay windows.
    h = hub(d, 5 * n)
    try:
        # Wrong NHRP authentication: the registrations are refused and counted.
        rc, r = spokesim(d, "--spokes", n, "--gre-key", 100, "--auth", "wrong", "--esp",
                         "aes128-gcm16", "--first-spoke", 0, "--rate", 0, "--register-wait", 3)
        auth = h.nhrp_counts()["dropped"]["authentication_failure"]
        check(r["registered"] == 0 and auth >= n,
              "wrong authentication: none registered, hub counts %d authentication failures" % auth)
        # Wrong GRE key: no tunnel takes it.
        rc, r = spokesim(d, "--spokes", n, "--gre-key", 101, "--auth", "e2e", "--esp",
                         "aes128-gcm16", "--first-spoke", n, "--rate", 0, "--register-wait", 3)
        drops = h.json("show", "stats")["drops"]
        check(r["registered"] == 0 and drops.get("gre_unknown_key", 0) >= n,
              "wrong GRE key: none registered, hub counts %d gre_unknown_key" %
              drops.get("gre_unknown_key", 0))
        # Wrong SA keys (another seed, same SPIs): the ICV fails.
        rc, r = spokesim(d, "--spokes", n, "--gre-key", 100, "--auth", "e2e", "--esp",
                         "aes128-gcm16", "--sa-seed", 2, "--first-spoke", 2 * n, "--rate", 0,
                         "--register-wait", 3)
        drops = h.json("show", "stats")["drops"]
        check(r["registered"] == 0 and drops.get("esp_bad_icv", 0) >= n,
              "wrong SA: none registered, hub counts %d esp_bad_icv" % drops.get("esp_bad_icv", 0))
        # Unknown SPIs (outside the hub's table).
        rc, r = spokesim(d, "--spokes", n, "--gre-key", 100, "--auth", "e2e", "--esp",
                         "aes128-gcm16", "--spi-base", 0x900000, "--first-spoke", 3 * n,
                         "--rate", 0,
                         "--register-wait", 3)
        drops = h.json("show", "stats")["drops"]
        check(r["registered"] == 0 and drops.get("esp_unknown_spi", 0) >= n,
              "unknown SPI: none registered, hub counts %d esp_unknown_spi" %
              drops.get("esp_unknown_spi", 0))
        # And the right ones still work afterwards.
        rc, r = spokesim(d, "--spokes", n, *GOOD, "--first-spoke", 4 * n, "--rate", 100,
                         "--duration", 1)
        check(rc == 0 and r["registered"] == n and r["lost"] == 0,
              "the right settings register all %d afterwards" % n)
    finally:
        h.stop()


def expiry(d):
    n = 4
    h = hub(d, n)
    try:
        rc, r = spokesim(d, "--spokes", n, *GOOD, "--holdtime", 3, "--rate", 100,
                         "--duration", 1)
        check(rc == 0 and r["registered"] == n, "%d spokes registered with holdtime 3" % n)
        listed = [e for e in h.json("show", "nhrp") if e["type"] == "dynamic"]
        check(len(listed) == n, "show nhrp --json lists them (%d)" % len(listed))
        end = time.time() + 10
        while time.time() < end and listed:
            time.sleep(0.5)
            listed = [e for e in h.json("show", "nhrp") if e["type"] == "dynamic"]
        check(not listed, "after the holding time the entries are gone from show nhrp --json")
    finally:
        h.stop()


def main():
    which = sys.argv[1]
    d = tempfile.mkdtemp(prefix="e2e-%s-" % which)
    {"scale": scale, "refused": refused, "expiry": expiry}[which](d)
    print("%d failure(s)" % len(failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
