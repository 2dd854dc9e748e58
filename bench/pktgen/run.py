#!/usr/bin/python3
"""bench/run pktgen: real pktgen-dpdk loading a running dmvpn-hub, as users will benchmark it.

  bench/run pktgen [--sizes 64,imix,1400] [--seconds N] [--rate PCT] [--captures DIR]
                   [--pktgen BINARY] [--out FILE] [--quick] [--check]

pktgen-dpdk 23.03 (not in Debian 12) is built from the tarball in ../shared/tools/pktgen/
(`build`, about 15 s of compiling) unless --pktgen or $DMVPN_PKTGEN names a binary. The hub runs
the configuration bench/pktgen/make-captures wrote beside the captures (default: the committed
16-spoke set in bench/pktgen/captures), with its two PCI ports replaced by one end each of a veth pair
(net_af_packet); pktgen takes the other ends (its port 0 faces the hub's `wan`, port 1 the
hub's `lan`), loads
the captures and runs bench/pktgen/dmvpn.lua, the same script as on real NICs. Two runs per size:

  esp-in      port 0 replays to-hub-SIZE.pcap: the hub decrypts; half goes back out `wan`
              re-encrypted to another spoke (transit), half out `lan` in clear
  esp-out     port 1 replays from-lan-SIZE.pcap: the hub encrypts to the spokes, out `wan`

Each row has what pktgen counted (sent and received per port, per second) beside the hub's own
counters over the same run (its ports' rx/tx, its workers' drops by reason), so a shortfall is
placed: pktgen did not send, the hub dropped (why), or the frames did not come back. In the
same run, before the hub starts, dpdk-testpmd (io forwarding, no DMVPN work) stands in the hub's
place on the same veths with the same captures: `rig_ceiling_rx_pps` is what comes back to
pktgen then on its return port, `of_rig_ceiling` the hub's busiest return port against it. No
peer DMVPN hub runs on this rig (ipsec-secgw is measured against the hub by bench/run dataplane).

On a machine without NICs both programs poll on the same cores (here: 2), so the rates measure
the recipe on virtual ports, not the hub's ceiling (bench/run dataplane measures that, with the
peer); a run on real NICs follows bench/pktgen/README.md. --check fails unless every run moved
traffic through the hub both ways with no ICV failure or unknown SPI (the test `bench_pktgen_quick`).
Results: bench/results/pktgen.json (or --out). Needs root.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
KIT = os.environ.get("DMVPN_PKTGEN_KIT", os.path.join(ROOT, "..", "shared", "tools", "pktgen"))
LUA = os.path.join(ROOT, "bench", "pktgen", "dmvpn.lua")
GEN_MACS = ("02:00:00:00:00:02", "02:00:00:00:00:12")  # the captures' source MACs


def log(msg):
    print(f"pktgen-bench: {msg}", file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def find_pktgen(a, build):
    if a.pktgen:
        return a.pktgen
    script = os.path.join(KIT, "build")
    if not os.path.exists(script):
        return None
    out = os.path.join(build, "pktgen")
    log(f"building pktgen-dpdk with {script} into {out}")
    r = subprocess.run([script, out], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"pktgen-bench: {script} failed:\n{r.stdout}{r.stderr}")
    return r.stdout.strip().splitlines()[-1]


def veth(name, hub_mac, gen_mac):
    """A veth pair for one hub port: pgb-NAME-h (the hub's end, its MAC the one the captures
    are addressed to) and pgb-NAME-g (pktgen's end). Both take them with net_af_packet: memif
    would be faster, but pktgen 23.03 panics on a port whose MTU it cannot set, as memif's."""
    h, g = f"pgb-{name}-h", f"pgb-{name}-g"
    subprocess.run(["ip", "link", "del", h], capture_output=True)
    subprocess.run(["ip", "link", "add", h, "type", "veth", "peer", "name", g], check=True)
    for dev, mac in ((h, hub_mac), (g, gen_mac)):
        with open(f"/proc/sys/net/ipv6/conf/{dev}/disable_ipv6", "w") as f:
            f.write("1")  # no router solicitations or DAD in the measurement
        subprocess.run(["ip", "link", "set", dev, "address", mac, "mtu", "1500", "up"],
                       check=True)


def drop_veths(names):
    for name in names:
        subprocess.run(["ip", "link", "del", f"pgb-{name}-h"], capture_output=True)


def hub_config(captures, d):
    """The captures' hub.yaml on veth ports: same tunnel, NHRP entries, routes and SAs."""
    with open(os.path.join(captures, "hub.yaml")) as f:
        cfg = yaml.safe_load(f)
    with open(os.path.join(captures, "manifest.json")) as f:
        manifest = json.load(f)
    cfg["hub"] = {"control-lcore": 0, "worker-lcores": [1],
                  "eal-args": ["--no-huge", "-m", "1024", "--no-pci", "--no-telemetry"]}
    for i, port in enumerate(cfg["ports"]):
        mac = manifest["hub"][f"{port['name']}_mac"]
        veth(port["name"], mac, GEN_MACS[i])
        port["device"] = f"net_af_packet{i},iface=pgb-{port['name']}-h,qpairs=2"
        port.pop("rx-queue-size", None)
        port.pop("tx-queue-size", None)
    cfg["management"] = {"socket": f"{d}/hub.sock"}
    path = os.path.join(d, "hub.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    return path, manifest, [p["name"] for p in cfg["ports"]]


class hub:
    def __init__(self, binary, ctl, config, d):
        self.ctl_bin, self.sock = ctl, os.path.join(d, "hub.sock")
        self.log = open(os.path.join(d, "hub.log"), "w+")
        self.proc = subprocess.Popen([binary, "--config", config, "--", "--file-prefix",
                                      f"pgb-hub-{os.getpid()}"], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        end = time.time() + 60
        while time.time() < end:
            if os.path.exists(self.sock) and self.ctl("help", check=False) is not None:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        self.log.seek(0)
        sys.exit(f"pktgen-bench: the hub did not start:\n{self.log.read()[-3000:]}")

    def ctl(self, *cmd, check=True):
        r = subprocess.run([self.ctl_bin, "--socket", self.sock, *cmd], capture_output=True,
                           text=True, timeout=30)
        if r.returncode != 0:
            if check:
                sys.exit(f"pktgen-bench: dmvpnctl {' '.join(cmd)}: {r.stderr.strip()}")
            return None
        return r.stdout

    def stats(self):
        return json.loads(self.ctl("show", "stats", "--json"))

    def ports(self, names, action):
        """Pauses (or resumes) the hub's ports, a pause waiting until no worker polls them, so
        that the hub's counters stand still while pktgen comes and goes."""
        for name in names:
            end = time.time() + 20
            while True:
                r = json.loads(self.ctl("port", action, name, "--json"))
                if action != "pause" or r.get("confirmed"):
                    break
                if time.time() > end:
                    sys.exit(f"pktgen-bench: the hub's workers did not confirm pausing {name}")
                time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def delta(after, before):
    """Counters the hub moved during one run: ports, drops (non-zero), ESP work."""
    ports = {}
    for a, b in zip(after["ports"], before["ports"]):
        ports[a["name"]] = {k: a[k] - b[k] for k in ("ipackets", "opackets", "imissed",
                                                     "worker_rx_packets", "worker_tx_packets")}
    drops = {k: v - before["drops"].get(k, 0) for k, v in after["drops"].items()
             if v - before["drops"].get(k, 0)}
    return ports, drops


def run_pktgen(a, pktgen, names, manifest, d, size, case, before_start, after_result):
    """pktgen replaying the size's captures (port 0: to-hub, port 1: from-lan), sending on the
    case's port; `before_start()` runs just before it starts, `after_result()` once its result is
    written (and before it is stopped). Returns (pktgen's JSON result, its output)."""
    tx_port = 0 if case == "esp-in" else 1
    files = {c["port"]: c for c in manifest["captures"]
             if c["file"] in (f"to-hub-{size}.pcap", f"from-lan-{size}.pcap")}
    if set(files) != {0, 1}:
        sys.exit(f"pktgen-bench: {a.captures} has no to-hub/from-lan capture for size {size}")
    result = os.path.join(d, f"result-{case}-{size}-{time.monotonic_ns()}.json")
    env = dict(os.environ, DMVPN_TX=str(tx_port), DMVPN_RX="0-1", DMVPN_RATE=str(a.rate),
               DMVPN_SECONDS=str(a.seconds), DMVPN_COUNT="0", DMVPN_RESULT=result,
               DMVPN_QUIT="0")
    vdevs = []
    for i, name in enumerate(names):
        vdevs += ["--vdev", f"net_af_packet{i},iface=pgb-{name}-g"]
    cmd = [pktgen, "-l", "0-1", "--no-huge", "-m", "4096", "--no-pci", "--no-telemetry",
           "--file-prefix", f"pgb-gen-{os.getpid()}", *vdevs, "--", "-P", "-m", "1.[0-1]",
           "-s", f"0:{os.path.join(a.captures, files[0]['file'])}",
           "-s", f"1:{os.path.join(a.captures, files[1]['file'])}", "-f", LUA]
    before_start()
    out = open(os.path.join(d, f"pktgen-{case}-{size}.log"), "w+")
    # pktgen's CLI reads stdin after the script: a pipe held open keeps it there until the
    # other end is quiet (after_result), then it is stopped.
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                            env=env)
    end = time.time() + a.seconds + 90
    while not os.path.exists(result) and proc.poll() is None and time.time() < end:
        time.sleep(0.5)
    after_result()
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    out.seek(0)
    text = out.read()
    if not os.path.exists(result):
        sys.exit(f"pktgen-bench: pktgen wrote no result ({case} {size}):\n{text[-3000:]}")
    with open(result) as f:
        return json.loads(f.readline()), text


def ceiling(a, pktgen, names, manifest, d, size, case):
    """The rig's ceiling, same run, same veths and captures: dpdk-testpmd forwarding the hub's
    two ends to each other untouched (io mode) in the hub's place, so what pktgen gets back is
    what this rig carries with no DMVPN work at all (on one return port: io mode sends all of
    a port's input out of the other). Returns pktgen's received frames per second, or None when
    testpmd would not run."""
    vdevs = []
    for i, name in enumerate(names):
        vdevs += ["--vdev", f"net_af_packet{i},iface=pgb-{name}-h"]
    cmd = ["dpdk-testpmd", "-l", "0-1", "--no-huge", "-m", "1024", "--no-pci", "--no-telemetry",
           "--file-prefix", f"pgb-pmd-{os.getpid()}", *vdevs, "--", "--forward-mode=io",
           "--auto-start", "--stats-period", "0", "--total-num-mbufs=16384"]
    holder = {}

    def start():
        holder["p"] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        time.sleep(2)

    def stop():
        p = holder["p"]
        p.terminate()
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    pg, _ = run_pktgen(a, pktgen, names, manifest, d, size, case, start, lambda: None)
    stop()
    rx = sum(v["rx_pps"] for v in pg["ports"].values())
    return round(rx) if rx > 0 else None


def run_once(a, pktgen, h, names, manifest, d, size, case):
    tx_port = 0 if case == "esp-in" else 1
    marks = {}

    def start():
        h.ports(names, "resume")
        marks["before"] = h.stats()

    def done():
        marks["after"] = h.stats()
        h.ports(names, "pause")

    pg, text = run_pktgen(a, pktgen, names, manifest, d, size, case, start, done)
    before, after = marks["before"], marks["after"]
    ports, drops = delta(after, before)
    secs = pg["seconds"]
    row = {
        "case": case, "size": size, "spokes": manifest["spokes"], "esp": manifest["esp"],
        "seconds": secs, "rate_pct": a.rate,
        "pktgen_tx_pps": pg["ports"][str(tx_port)]["tx_pps"],
        "pktgen_rx_pps": {p: v["rx_pps"] for p, v in pg["ports"].items()},
        "pktgen": pg["ports"],
        "hub_rx_pps": {n: round(v["ipackets"] / secs) for n, v in ports.items()},
        "hub_tx_pps": {n: round(v["opackets"] / secs) for n, v in ports.items()},
        "hub_ports": ports, "hub_drops": drops,
        "per_second": [l for l in text.splitlines() if l.startswith("t=")],
    }
    log(f"{case} {size}: pktgen tx {row['pktgen_tx_pps'] / 1e6:.3f} Mpps, rx "
        + ", ".join(f"port {p} {v / 1e6:.3f}" for p, v in row["pktgen_rx_pps"].items())
        + f" Mpps; hub drops {drops or 'none'}")
    return row


def check(rows):
    bad = []
    for r in rows:
        where = f"{r['case']} {r['size']}"
        if r["pktgen"][str(0 if r["case"] == "esp-in" else 1)]["tx_packets"] == 0:
            bad.append(f"{where}: pktgen sent nothing")
        for k in ("esp_bad_icv", "esp_unknown_spi", "esp_decrypt_error", "no_route"):
            if r["hub_drops"].get(k):
                bad.append(f"{where}: hub dropped {r['hub_drops'][k]} as {k}")
        rx = {p: v["rx_packets"] for p, v in r["pktgen"].items()}
        # A few ARP requests arrive either way: traffic means more than a hundred frames.
        if r["case"] == "esp-in" and (rx["0"] < 100 or rx["1"] < 100):
            bad.append(f"{where}: expected traffic back on both generator ports, got {rx}")
        if r["case"] == "esp-out" and rx["0"] < 100:
            bad.append(f"{where}: nothing came back encrypted on generator port 0")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="64,imix,1400")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--captures", default=os.path.join(ROOT, "bench", "pktgen", "captures"))
    ap.add_argument("--pktgen", default=os.environ.get("DMVPN_PKTGEN"))
    ap.add_argument("--build", default=os.environ.get("DMVPN_BENCH_BUILD", "build-bench"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "pktgen.json"))
    ap.add_argument("--quick", action="store_true", help="64 B only, 3 s each")
    ap.add_argument("--check", action="store_true", help="fail unless traffic crossed the hub")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("pktgen-bench: needs root (DPDK, veth pairs)")
        return 77
    if a.quick:
        a.sizes, a.seconds = "64", 3
    build = os.path.join(ROOT, a.build) if not os.path.isabs(a.build) else a.build
    pktgen = find_pktgen(a, build)
    if pktgen is None:
        print(f"pktgen-bench: no pktgen-dpdk: neither --pktgen/$DMVPN_PKTGEN nor the kit in "
              f"{KIT} (set $DMVPN_PKTGEN_KIT)")
        return 77
    binary, ctl = os.path.join(build, "dmvpn-hub"), os.path.join(build, "dmvpnctl")
    d = tempfile.mkdtemp(prefix="pktgen-bench-")
    config, manifest, names = hub_config(a.captures, d)
    load_start = loadavg()
    # The rig's own ceiling first, testpmd in the hub's place (the hub's ends are free now).
    ceilings = {}
    for size in a.sizes.split(","):
        for case in ("esp-in", "esp-out"):
            ceilings[(size, case)] = ceiling(a, pktgen, names, manifest, d, size, case)
            log(f"rig ceiling {case} {size}: {ceilings[(size, case)]} frames/s back to pktgen "
                "(testpmd io in the hub's place)")
    h = hub(binary, ctl, config, d)
    rows = []
    try:
        for size in a.sizes.split(","):
            for case in ("esp-in", "esp-out"):
                rows.append(run_once(a, pktgen, h, names, manifest, d, size, case))
    finally:
        h.stop()
        drop_veths(names)
    for r in rows:
        # testpmd sends everything out of one port; the hub splits esp-in over both. Each
        # port's return path is one af_packet socket, so compare the busiest port with it.
        got = max(r["pktgen_rx_pps"].values())
        c = ceilings.get((r["size"], r["case"]))
        r["rig_ceiling_rx_pps"] = c
        r["of_rig_ceiling"] = round(got / c, 3) if c else None
        r.update(cores=os.cpu_count(), load_start=load_start, load_end=loadavg(),
                 ports="veth pairs through net_af_packet, hub and pktgen on the same cores", quick=a.quick)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(rows, f, indent=1)
    log(f"wrote {a.out}")
    shutil.rmtree(d, ignore_errors=True)
    if a.check:
        bad = check(rows)
        for b in bad:
            print(f"pktgen-bench: FAIL {b}")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
