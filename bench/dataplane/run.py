#!/usr/bin/env python3
"""`bench/run dataplane`: the hub's dataplane figures beside their ceilings and a peer, in one run.

Measures, on one core each:
  - the hub (build-bench/bench/dataplane-bench worker): a real worker polling a ring port;
  - the I/O ceiling: dpdk-testpmd io forwarding between two net_null ports, hugepages;
  - the crypto ceiling: Intel IPsec-MB's direct AES-128-GCM API (dataplane-bench imb) and
    dpdk-test-crypto-perf on crypto_aesni_gcm, the faster of the two per operation;
  - the peer: DPDK's ipsec-secgw example (built from Debian's dpdk-doc) in transport mode with
    the same cipher, keys, spokes and bytes per packet, replaying captures through net_pcap's
    infinite_rx into net_null; the cost of that capture input (measured with testpmd) is taken
    off its figure, since the hub's input is a ring of ready mbufs.

External tools are timed by their forwarding thread's own CPU time (/proc/.../schedstat) over a
steady-state window, so that other processes on this shared machine do not count against them;
the hub is timed with rdtsc per burst, bursts that a preemption landed in discarded.
Writes a table to stdout and the rows to bench/results/dataplane.json.
"""

import argparse
import datetime
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hugepages import ensure_hugepages  # noqa: E402  (bench/hugepages.py)
SIZES = ["64", "imix", "1400"]
IMIX = {64: 7, 576: 4, 1400: 1}  # inner sizes and weights (bench/dataplane/traffic.hpp)
CASES = ["gre", "esp-transit", "esp-in", "esp-out"]
EXAMPLES = "/usr/share/dpdk/examples"  # dpdk-doc: ipsec-secgw and l3fwd, built as peers


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def cipher_len(inner):
    """Bytes AES-GCM ciphers in the hub's ESP: GRE with key + inner + pad to 4 + trailer."""
    return (inner + 8 + 2 + 3) // 4 * 4


def sizes_of(name):
    """{inner size: weight} for a size name."""
    return dict(IMIX) if name == "imix" else {int(name): 1}


def mix(name, per_size):
    """Cycles per packet of a size mix from cycles per packet at each size."""
    w = sizes_of(name)
    return sum(per_size[s] * n for s, n in w.items()) / sum(w.values())


# --- hugepages and tools ------------------------------------------------------------------

def build_example(build, name, edits=()):
    """Copies DPDK example `name` from dpdk-doc into build/peer/NAME and builds it with make.
    `edits`: (file, line, replacement, why) applied to the copy first. Returns the binary or
    None."""
    src_dir = os.path.join(EXAMPLES, name)
    if not os.path.isdir(src_dir):
        log("peer: %s missing (apt-get install dpdk-doc); no %s figures" % (src_dir, name))
        return None
    dst = os.path.join(build, "peer", name)
    binary = os.path.join(dst, "build", name)
    if os.path.exists(binary):
        return binary
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src_dir, dst)
    common = os.path.join(build, "peer", "common")  # headers the examples share (l3fwd's)
    if not os.path.isdir(common) and os.path.isdir(os.path.join(EXAMPLES, "common")):
        shutil.copytree(os.path.join(EXAMPLES, "common"), common)
    for file, line, replacement, why in edits:
        src = os.path.join(dst, file)
        text = open(src).read()
        if line not in text:
            log("peer: %s/%s changed upstream (%s); building it unmodified" % (name, file, why))
        open(src, "w").write(text.replace(line, replacement))
    log("peer: building %s (make, about a minute)" % name)
    r = subprocess.run(["make", "-C", dst, "-j2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
    if r.returncode != 0 or not os.path.exists(binary):
        log("peer: %s build failed:\n%s" % (name, r.stderr[-2000:]))
        return None
    return binary


# Both examples' default port configuration asks for RX checksum offload, which no virtual PMD
# has; the line is dropped from the copies (the packets carry valid checksums anyway).
NO_RX_CSUM = ("\t\t.offloads = RTE_ETH_RX_OFFLOAD_CHECKSUM,\n",
              "\t\t/* bench/run: virtual ports have no RX checksum offload */\n",
              "RX checksum offload")


def build_peer(build):
    """ipsec-secgw from dpdk-doc, without RX checksum offload."""
    return build_example(build, "ipsec-secgw", [("ipsec-secgw.c",) + NO_RX_CSUM])


# --- measuring external DPDK programs -------------------------------------------------------

def thread_cpu_ns(pid):
    """{tid: ns on CPU} for every thread of pid."""
    out = {}
    for path in glob.glob("/proc/%d/task/*/schedstat" % pid):
        try:
            with open(path) as f:
                out[int(path.split("/")[4])] = int(f.read().split()[0])
        except (OSError, ValueError):
            pass
    return out


class telemetry:
    def __init__(self, prefix, timeout):
        path = "/var/run/dpdk/%s/dpdk_telemetry.v2" % prefix
        end = time.time() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                self.s.connect(path)
                self.s.recv(4096)
                return
            except OSError:
                self.s.close()
                if time.time() > end:
                    raise RuntimeError("no telemetry socket at " + path)
                time.sleep(0.2)

    def stats(self, port):
        self.s.send(("/ethdev/stats,%d" % port).encode())
        return json.loads(self.s.recv(1 << 16).decode())["/ethdev/stats"]

    def close(self):
        self.s.close()


def steady_state(cmd, prefix, port, field, warm, window, hz, start_timeout=120, threads=1):
    """Runs a DPDK program, waits until `field` of `port` grows, then measures over `window`
    seconds the packets counted and the CPU time of its busiest thread. Returns cycles/packet
    (and, in workers_cycles_per_pkt, that of its `threads` busiest threads together)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    tel = None
    try:
        tel = telemetry(prefix, start_timeout)
        end = time.time() + start_timeout
        while tel.stats(port)[field] == 0:
            if proc.poll() is not None or time.time() > end:
                raise RuntimeError("no packets")
            time.sleep(0.2)
        time.sleep(warm)
        c0, p0 = thread_cpu_ns(proc.pid), tel.stats(port)[field]
        time.sleep(window)
        c1, p1 = thread_cpu_ns(proc.pid), tel.stats(port)[field]
        used = sorted((c1[t] - c0.get(t, 0) for t in c1), reverse=True)
        cpu_ns, workers_ns = used[0], sum(used[:threads])
        packets = p1 - p0
        return {"cycles_per_pkt": cpu_ns * hz / 1e9 / packets, "packets": packets,
                "cpu_s": cpu_ns / 1e9, "wall_s": window,
                "workers_cycles_per_pkt": workers_ns * hz / 1e9 / packets}
    except Exception as e:
        err = ""
        if proc.poll() is not None:
            err = proc.stderr.read()[-1500:]
        raise RuntimeError("%s: %s\n%s" % (os.path.basename(cmd[0]), e, err))
    finally:
        if tel:
            tel.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def eal(prefix, lcores):
    return ["-l", lcores, "--in-memory", "--no-pci", "--file-prefix", prefix, "--log-level=warning"]


def testpmd_io(rx_vdev, tx_vdev, hz, window):
    cmd = ["dpdk-testpmd"] + eal("bench_pmd", "0,1") + [
        "--vdev", rx_vdev, "--vdev", tx_vdev, "--",
        "--forward-mode=io", "--nb-cores=1", "--stats-period", "5", "--total-num-mbufs=65536"]
    return steady_state(cmd, "bench_pmd", 0, "ipackets", 1.0, window, hz)


def crypto_perf(length, op, ops, hz):
    """dpdk-test-crypto-perf throughput on crypto_aesni_gcm: cycles/op from the worker thread's
    CPU time (sampled until it exits) and the tool's own rdtsc figure."""
    cmd = ["dpdk-test-crypto-perf"] + eal("bench_cperf", "0,1") + [
        "--vdev", "crypto_aesni_gcm0", "--", "--devtype", "crypto_aesni_gcm",
        "--ptest", "throughput", "--optype", "aead", "--aead-algo", "aes-gcm", "--aead-op", op,
        "--aead-key-sz", "16", "--aead-iv-sz", "12", "--aead-aad-sz", "8", "--digest-sz", "16",
        "--buffer-sz", str(length), "--burst-sz", "32", "--total-ops", str(ops)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = {}
    while proc.poll() is None:
        for tid, ns in thread_cpu_ns(proc.pid).items():
            last[tid] = max(ns, last.get(tid, 0))
        time.sleep(0.01)
    out = proc.stdout.read()
    row = None
    for line in out.splitlines():
        f = line.split()
        if len(f) == 10 and f[0].isdigit() and f[1] == str(length):
            row = f
    if proc.returncode != 0 or row is None or not last:
        raise RuntimeError("dpdk-test-crypto-perf failed:\n" + out[-1500:])
    # The worker lcore is the busiest thread apart from the main one, which sets up and waits.
    workers = sorted(last.items(), key=lambda kv: kv[1], reverse=True)
    worker_ns = [ns for tid, ns in workers if tid != proc.pid][0]
    done = int(row[4])
    return {"cycles_per_op": worker_ns * hz / 1e9 / done, "tool_cycles_per_op": float(row[9]),
            "ops": done}


# --- the run ------------------------------------------------------------------------------

def hub_rows(bench, spokes, seconds, extra=(), cases=None, sizes=None):
    cmd = [bench, "worker", "--spokes", str(spokes), "--seconds", str(seconds)]
    if cases:
        cmd += ["--cases", ",".join(cases)]
    if sizes:
        cmd += ["--sizes", ",".join(sizes)]
    r = subprocess.run(cmd + list(extra) + ["--"] + eal("bench_hub", "0"), stdout=subprocess.PIPE,
                       text=True)
    rows = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    if r.returncode != 0 or not rows:
        sys.exit("dataplane-bench worker failed (see above)")
    return {(h["case"], h["pkt_size"]): h for h in rows}


def one_round(a, bench, binary, files, inner_sizes, hz):
    """Every figure once. Returns {figure key: cycles (or a row with cycles_per_pkt)}."""
    out = {}
    log("hub: %d spokes, cases %s" % (a.spokes, ", ".join(CASES)))
    for k, h in hub_rows(bench, a.spokes, a.seconds).items():
        out[("hub",) + k] = h
    # Diagnostics: the same worker with every spoke's state hot in cache (16 spokes), and the
    # GRE case with a redirect limiter big enough for the spoke pairs.
    log("hub diagnostics: 16 spokes; redirect limiter with 65536 slots")
    for k, h in hub_rows(bench, 16, a.seconds / 2, sizes=["64", "1400"]).items():
        out[("hub-16-spokes",) + k] = h
    for k, h in hub_rows(bench, a.spokes, a.seconds / 2, ["--rate-limit-slots", "65536"],
                         cases=["gre"], sizes=["64", "1400"]).items():
        out[("hub-limiter-65536",) + k] = h

    lengths = [cipher_len(s) for s in inner_sizes]
    log("crypto ceiling: IPsec-MB direct API, cipher lengths %s" % lengths)
    r = subprocess.run([bench, "imb", "--lengths", ",".join(map(str, lengths)), "--keys",
                        "1,%d" % (2 * a.spokes), "--seconds", str(max(0.3, a.seconds / 4))],
                       stdout=subprocess.PIPE, text=True, check=True)
    for l in r.stdout.splitlines():
        if l.startswith("{"):
            d = json.loads(l)
            out[("imb", d["op"], d["cipher_len"], 1 if d["keys"] == 1 else "many")] = d["cycles_per_op"]
    for s in inner_sizes:
        for op in ("encrypt", "decrypt"):
            log("crypto ceiling: dpdk-test-crypto-perf %s %d B" % (op, cipher_len(s)))
            try:
                cp = crypto_perf(cipher_len(s), op, 3000000 if s < 1000 else 1000000, hz)
                out[("cperf", op, cipher_len(s))] = cp["cycles_per_op"]
                out[("cperf-tool", op, cipher_len(s))] = cp["tool_cycles_per_op"]
            except RuntimeError as e:
                log(str(e))

    for s in inner_sizes:
        frame = 14 + 20 + 8 + s
        log("I/O ceiling: testpmd io on net_null, %d B frames" % frame)
        # One direction, as the hub's figure is taken: net_null0 receives, net_null1 only
        # transmits. With both ports receiving, the core forwards two packets for every one
        # counted on port 0 and the ceiling would read half its true rate.
        out[("io", s)] = testpmd_io("net_null0,size=%d" % frame, "net_null1,no-rx=1", hz,
                                    a.seconds)["cycles_per_pkt"]

    if binary:
        log("peer: testpmd io from net_null (baseline of the capture input cost)")
        out[("pmd-null-input",)] = testpmd_io("net_null0,size=106", "net_null1,no-rx=1", hz,
                                              a.seconds)["cycles_per_pkt"]
        for name in SIZES:
            for direction in ("in", "out"):
                pcap = os.path.join(files, "%s-%s.pcap" % (direction, name))
                log("peer: testpmd io from %s (capture input cost)" % os.path.basename(pcap))
                out[("pmd-pcap-input", direction, name)] = testpmd_io(
                    "net_pcap0,rx_pcap=%s,infinite_rx=1" % pcap, "net_null0,no-rx=1", hz,
                    a.seconds)["cycles_per_pkt"]
                for mode, cfg in (("cryptodev", "secgw.cfg"), ("cpu-crypto", "secgw-cpu-crypto.cfg")):
                    vdevs = ["net_null0,no-rx=1", "net_pcap1,rx_pcap=%s,infinite_rx=1" % pcap]
                    if direction == "in":
                        vdevs = ["net_pcap0,rx_pcap=%s,infinite_rx=1" % pcap, "net_null1,no-rx=1"]
                    cmd = [binary] + eal("bench_secgw", "1")
                    for v in vdevs + ["crypto_aesni_gcm0"]:
                        cmd += ["--vdev", v]
                    cmd += ["--", "-p", "0x3", "-P", "-u", "0x1", "-l", "-s", "65536",
                            "--config", "(0,0,1),(1,0,1)", "-f", os.path.join(files, cfg)]
                    log("peer: ipsec-secgw %sbound %s, %s" % (direction, name, mode))
                    try:
                        m = steady_state(cmd, "bench_secgw", 1 if direction == "in" else 0,
                                         "opackets", 1.0, a.seconds, hz)
                        out[("peer", direction, name, mode)] = m["cycles_per_pkt"]
                    except RuntimeError as e:
                        log(str(e))
    return out


def cycles_of(v):
    return v["cycles_per_pkt"] if isinstance(v, dict) else v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", default=os.path.join(ROOT, "bench/results/dataplane.json"))
    ap.add_argument("--build", default=os.environ.get("DMVPN_BENCH_BUILD", "build-bench"))
    ap.add_argument("--seconds", type=float, default=2.0, help="measured time per figure")
    ap.add_argument("--rounds", type=int, default=3,
                    help="every figure is measured this many times, interleaved; the fastest counts")
    ap.add_argument("--spokes", type=int, default=10000)
    ap.add_argument("--no-peer", action="store_true")
    a = ap.parse_args()
    build = os.path.join(ROOT, a.build)
    bench = os.path.join(build, "bench", "dataplane-bench")
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = loadavg()
    ensure_hugepages(1024, who="dataplane bench")
    log("load average at start: %.2f %.2f %.2f" % tuple(load_start))
    inner_sizes = sorted(set(s for n in SIZES for s in sizes_of(n)))

    binary = None if a.no_peer else build_peer(build)
    files = os.path.join(build, "peer", "files")
    if binary:
        os.makedirs(files, exist_ok=True)
        subprocess.run([bench, "peer-files", files, "--spokes", str(a.spokes)], check=True)

    # The TSC rate every figure is converted with, as DPDK measures it.
    hz = next(iter(hub_rows(bench, 16, 0.1, cases=["gre"], sizes=["64"]).values()))["tsc_hz"]

    rounds = []
    loads = []
    for i in range(a.rounds):
        log("round %d of %d" % (i + 1, a.rounds))
        rounds.append(one_round(a, bench, binary, files, inner_sizes, hz))
        loads.append(loadavg()[0])
    # Per figure, the fastest round: noise on a shared machine only ever adds cycles.
    best = {}
    for r in rounds:
        for k, v in r.items():
            if k not in best or cycles_of(v) < cycles_of(best[k]):
                best[k] = v
    spread = {}
    for k in best:
        vals = [cycles_of(r[k]) for r in rounds if k in r]
        spread[" ".join(map(str, k))] = [round(x, 1) for x in vals]

    def crypto(op, s):
        """The crypto ceiling for one operation: the faster of the direct API and crypto-perf."""
        c = best[("imb", op, cipher_len(s), 1)]
        cp = best.get(("cperf", op, cipher_len(s)))
        return min(c, cp) if cp else c

    peer = {}
    for name in SIZES:
        for direction in ("in", "out"):
            modes = [(m, best[("peer", direction, name, m)]) for m in ("cryptodev", "cpu-crypto")
                     if ("peer", direction, name, m) in best]
            if not modes:
                continue
            mode, raw = min(modes, key=lambda x: x[1])
            extra = max(0.0, best[("pmd-pcap-input", direction, name)] - best[("pmd-null-input",)])
            peer[(direction, name)] = {"mode": mode, "raw": raw, "adjusted": raw - extra}

    rows = []
    for case in CASES:
        for name in SIZES:
            h = best[("hub", case, name)]
            w = sizes_of(name)
            if case == "gre":
                per = {s: best[("io", s)] for s in w}
                ceiling = "io: testpmd io net_null, 1 core"
            elif case == "esp-transit":
                per = {s: crypto("decrypt", s) + crypto("encrypt", s) for s in w}
                ceiling = "crypto: AES-128-GCM decrypt + encrypt per packet"
            elif case == "esp-in":
                per = {s: crypto("decrypt", s) for s in w}
                ceiling = "crypto: AES-128-GCM decrypt"
            else:
                per = {s: crypto("encrypt", s) for s in w}
                ceiling = "crypto: AES-128-GCM encrypt"
            ceiling_cycles = mix(name, per)
            row = {"case": case, "pkt_size": name, "workers": 1, "mpps": round(h["mpps"], 3),
                   "cycles_per_pkt": round(h["cycles_per_pkt"], 1), "ceiling": ceiling,
                   "ceiling_mpps": round(hz / ceiling_cycles / 1e6, 3), "peer": None,
                   "peer_mpps": None}
            if case != "gre":
                row["io_ceiling_mpps"] = round(hz / mix(name, {s: best[("io", s)] for s in w}) / 1e6, 3)
                ops = [op for op, c in (("decrypt", "esp-out"), ("encrypt", "esp-in")) if case != c]
                many = mix(name, {s: sum(best[("imb", op, cipher_len(s), "many")] for op in ops) for s in w})
                row["crypto_mpps_with_%d_keys" % (2 * a.spokes)] = round(hz / many / 1e6, 3)
            direction = {"esp-in": "in", "esp-out": "out"}.get(case)
            if direction and (direction, name) in peer:
                p = peer[(direction, name)]
                row["peer"] = "ipsec-secgw %sbound, transport, %s" % (direction, p["mode"])
                row["peer_mpps"] = round(hz / p["adjusted"] / 1e6, 3)
                row["peer_raw_mpps"] = round(hz / p["raw"] / 1e6, 3)
            elif case == "esp-transit" and ("in", name) in peer and ("out", name) in peer:
                c = peer[("in", name)]["adjusted"] + peer[("out", name)]["adjusted"]
                row["peer"] = "ipsec-secgw inbound + outbound cycles (derived)"
                row["peer_mpps"] = round(hz / c / 1e6, 3)
            row["of_ceiling"] = round(row["mpps"] / row["ceiling_mpps"], 3)
            row["of_peer"] = round(row["mpps"] / row["peer_mpps"], 3) if row["peer_mpps"] else None
            row["spokes"] = h["spokes"]
            row["flows"] = h["flows"]
            row["stages_cycles_per_pkt"] = h["stages"]
            row["redirect_events"] = h["redirect_events"]
            rows.append(row)

    load_end = loadavg()
    detail = {"when": started.isoformat(timespec="seconds"), "tsc_hz": hz, "rounds": a.rounds,
              "load_average_start": load_start, "load_average_after_each_round": loads,
              "cycles_per_round": spread,
              "best": {" ".join(map(str, k)): (v if not isinstance(v, dict) else v)
                       for k, v in best.items()},
              "peer_chosen": {" ".join(k): v for k, v in peer.items()}}
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(rows, f, indent=1)
        f.write("\n")
    with open(os.path.splitext(a.out)[0] + ".detail.json", "w") as f:
        json.dump(detail, f, indent=1)
        f.write("\n")

    print("dataplane, 1 worker, %d spokes, %d flows; TSC %.2f GHz; best of %d rounds; "
          "load average %.2f at start, %s after each round"
          % (a.spokes, rows[0]["flows"], hz / 1e9, a.rounds, load_start[0],
             ", ".join("%.2f" % x for x in loads)))
    print("%-12s %-5s %8s %9s %9s %7s %9s %7s" % ("case", "size", "Mpps", "cyc/pkt", "ceil Mpps",
                                                  "of ceil", "peer Mpps", "of peer"))
    for r in rows:
        print("%-12s %-5s %8.3f %9.1f %9.3f %6.0f%% %9s %7s" % (
            r["case"], r["pkt_size"], r["mpps"], r["cycles_per_pkt"], r["ceiling_mpps"],
            100 * r["of_ceiling"], "%.3f" % r["peer_mpps"] if r["peer_mpps"] else "-",
            "%.0f%%" % (100 * r["of_peer"]) if r["of_peer"] else "-"))
    print("stages (cycles/packet, second pass):")
    for r in rows:
        print("  %-12s %-5s %s" % (r["case"], r["pkt_size"], " ".join(
            "%s=%.0f" % kv for kv in r["stages_cycles_per_pkt"].items())))
    print("diagnostics (cycles/packet):")
    for case in CASES:
        for name in ("64", "1400"):
            hot = best.get(("hub-16-spokes", case, name))
            lim = best.get(("hub-limiter-65536", case, name))
            print("  %-12s %-5s 10000 spokes %7.1f | 16 spokes %7.1f%s" % (
                case, name, best[("hub", case, name)]["cycles_per_pkt"], hot["cycles_per_pkt"],
                " | redirect limiter 65536 slots %7.1f" % lim["cycles_per_pkt"] if lim else ""))
    for name in ("64", "1400"):
        s = int(name)
        print("  AES-GCM %4d B: encrypt %6.1f / decrypt %6.1f with 1 key; %6.1f / %6.1f with %d keys "
              "in random order; crypto-perf %s / %s" % (
                  cipher_len(s), best[("imb", "encrypt", cipher_len(s), 1)],
                  best[("imb", "decrypt", cipher_len(s), 1)],
                  best[("imb", "encrypt", cipher_len(s), "many")],
                  best[("imb", "decrypt", cipher_len(s), "many")], 2 * a.spokes,
                  "%.1f" % best[("cperf", "encrypt", cipher_len(s))] if ("cperf", "encrypt", cipher_len(s)) in best else "-",
                  "%.1f" % best[("cperf", "decrypt", cipher_len(s))] if ("cperf", "decrypt", cipher_len(s)) in best else "-"))
    print("wrote %s" % a.out)


if __name__ == "__main__":
    main()
