#!/usr/bin/env python3
"""`bench/run dataplane-scale`: the hub's workers side by side, 1..N lcores over shared tables.

For each worker count, `dataplane-bench scale` runs that many dmvpn::dp::worker lcores on one
publisher's tables (FIB, adjacencies, SPI table); worker w polls RX queue w of the input ring
port, fed with its RSS share of the spokes (spoke s -> worker s % N, whose SAs it owns), and
hands transit packets to the worker that owns the outbound SA, as the hub does. Cycles are
the workers' own (allocation + poll) summed over all of them, per packet fed; `mpps` is what
one worker core does at that cost and `aggregate_mpps` what N do. In the same run: the I/O
ceiling of one core (testpmd io forwarding, net_null) on the same machine.

Needs root for hugepages and N + 1 cores. Off this machine (a lent many-core box without DPDK
installed), --bundle DIR takes dataplane-bench, dpdk-testpmd and their libraries from DIR.
"""

import argparse
import json
import os
import socket
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as common  # noqa: E402  (hugepages, telemetry, testpmd timing)


def frame_len(case, size):
    """Ethernet frame bytes (no preamble, FCS or gap) on the row's wire side: the GRE frame for
    GRE rows, the ESP frame (AES-GCM: SPI, sequence, 8-byte IV, ICV 16) for the ESP rows."""
    if case == "gre":
        return 14 + 20 + 8 + size
    return 14 + 20 + 8 + 8 + common.cipher_len(size) + 16


def write_routed_pcap(path, frame, count=4096):
    """IPv4/UDP frames of `frame` bytes to 198.18.1.0/24, which DPDK l3fwd's built-in LPM table
    sends to port 1: the plain-routing reference for the GRE rows, same frame length."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for k in range(count):
            total = frame - 14
            ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, k & 0xffff, 0, 64, 17, 0,
                                       socket.inet_aton("100.64.%d.%d" % (k >> 8 & 63, k & 255)),
                                       socket.inet_aton("198.18.1.%d" % (1 + k % 250))))
            s = sum(struct.unpack("!10H", ip))
            s = (s & 0xffff) + (s >> 16)
            ip[10:12] = struct.pack("!H", ~((s & 0xffff) + (s >> 16)) & 0xffff)
            udp = struct.pack("!HHHH", 1024 + k % 1000, 9, total - 20, 0)
            pkt = b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + b"\x08\x00" + \
                bytes(ip) + udp + bytes(total - 28)
            f.write(struct.pack("<IIII", 0, k, len(pkt), len(pkt)) + pkt)


def peer_run(cmd, prefix, out_port, n, input_cycles, hz, seconds):
    """One peer run on n worker lcores: per-worker Mpps from the workers' own CPU time (the n
    busiest threads) per packet out, less what reading a capture costs over reading net_null
    (the hub's input is a ring of ready mbufs), as bench/run dataplane takes its peer figure."""
    m = common.steady_state(cmd, prefix, out_port, "opackets", 1.0, seconds, hz, threads=n)
    raw = m["workers_cycles_per_pkt"]
    cycles = raw - (input_cycles or 0)
    # Where reading the capture is most of what the peer does (l3fwd on big frames), the
    # difference of two noisy figures means nothing: then no net figure, only the raw one.
    separable = cycles > 0.25 * raw
    return {"peer_cycles_per_pkt": round(cycles, 2) if separable else None,
            "peer_mpps": round(hz / cycles / 1e6, 3) if separable else None,
            "peer_aggregate_mpps": round(n * hz / cycles / 1e6, 3) if separable else None,
            "peer_raw_cycles_per_pkt": round(raw, 2),
            "peer_raw_mpps": round(hz / raw / 1e6, 3),
            "peer_input_cycles_per_pkt": round(input_cycles, 1) if input_cycles else None}


def peers(a, build, bench, counts, env, extra, hz):
    """{(case, size, workers): peer figures}: ipsec-secgw on N lcores for ESP in and out (the
    files of bench/run dataplane: same cipher, keys, spokes, bytes), DPDK l3fwd (LPM) on N lcores
    for GRE (plain IPv4 routing of frames as long as the hub's GRE frames). ESP transit has no
    peer (ipsec-secgw does not decrypt and re-encrypt in one pass)."""
    out = {}
    if a.bundle:  # a lent machine without compilers: the peers come built, in the bundle
        secgw, l3fwd = (os.path.join(a.bundle, b) for b in ("ipsec-secgw", "l3fwd"))
        secgw, l3fwd = (b if os.path.exists(b) else None for b in (secgw, l3fwd))
        files = os.path.join(a.bundle, "peer-files")
    else:
        secgw = common.build_peer(build)
        l3fwd = common.build_example(build, "l3fwd", [("main.c",) + common.NO_RX_CSUM])
        files = os.path.join(build, "peer", "files")
    os.makedirs(files, exist_ok=True)
    subprocess.run([bench, "peer-files", files, "--spokes", str(a.spokes), "--sizes", a.sizes],
                   check=True, env=env)
    cases = a.cases.split(",")
    for size in a.sizes.split(","):
        if size == "imix":
            continue
        jobs = []
        if "gre" in cases and l3fwd:
            pcap = os.path.join(files, "routed-%s.pcap" % size)
            write_routed_pcap(pcap, frame_len("gre", int(size)))
            jobs.append(("gre", pcap, 0, 1, "l3fwd"))
        for case, direction in (("esp-in", "in"), ("esp-out", "out")):
            if case in cases and secgw:
                pcap = os.path.join(files, "%s-%s.pcap" % (direction, size))
                jobs.append((case, pcap, 0 if direction == "in" else 1,
                             1 if direction == "in" else 0, "ipsec-secgw"))
        for case, pcap, in_port, out_port, peer in jobs:
            try:
                frame = frame_len(case, int(size))
                pcap_in = common.testpmd_io("net_pcap0,rx_pcap=%s,infinite_rx=1" % pcap,
                                            "net_null0,no-rx=1", hz, a.seconds)
                null_in = common.testpmd_io("net_null0,size=%d" % frame, "net_null1,no-rx=1",
                                            hz, a.seconds)
                inp = max(0.0, pcap_in["cycles_per_pkt"] - null_in["cycles_per_pkt"])
            except RuntimeError as e:
                common.log("peer input cost: %s" % e)
                inp = None
            for n in counts:
                pcap_dev = "net_pcap%d,%sinfinite_rx=1" % (in_port, "rx_pcap=%s," % pcap * n)
                null_dev = "net_null%d,no-rx=1" % out_port
                vdevs = [pcap_dev, null_dev] if in_port == 0 else [null_dev, pcap_dev]
                qs = ",".join("(0,%d,%d),(1,%d,%d)" % (q, q + 1, q, q + 1) for q in range(n))
                prefix = "bench_peer%d" % n
                # Lcores 1..n, the first also EAL's main: both programs run their loop on every
                # lcore, the main one included, and want one TX queue per lcore on each port.
                cmd = [l3fwd if peer == "l3fwd" else secgw] + common.eal(prefix, "1-%d" % n)
                for v in vdevs:
                    cmd += ["--vdev", v]
                cmd += extra
                if peer == "l3fwd":
                    cmd += ["--", "-p", "0x3", "-P", "--lookup=lpm", "--parse-ptype",
                            "--config", "(%s)" % qs[1:-1]]
                else:
                    cmd += ["--vdev", "crypto_aesni_gcm0,max_nb_queue_pairs=%d" % max(8, n),
                            "--", "-p", "0x3", "-P", "-u", "0x1", "-l", "-s", "65536",
                            "--config", "(%s)" % qs[1:-1],
                            "-f", os.path.join(files, "secgw-cpu-crypto.cfg")]
                common.log("peer %s, %s %s B, %d lcores" % (peer, case, size, n))
                try:
                    r = peer_run(cmd, prefix, out_port, n, inp, hz, a.seconds)
                    r["peer"] = peer + (" (cpu-crypto)" if peer == "ipsec-secgw" else " (lpm)")
                    out[(case, size, n)] = r
                except RuntimeError as e:
                    common.log(str(e))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?",
                    default=os.path.join(common.ROOT, "bench/results/dataplane-scale.json"))
    ap.add_argument("--build", default=os.environ.get("DMVPN_BENCH_BUILD", "build-bench"))
    ap.add_argument("--bundle", help="directory holding dataplane-bench, dpdk-testpmd, lib/")
    ap.add_argument("--workers", default=None, help="comma list (default 1,2,4,... up to cores-1)")
    ap.add_argument("--cases", default="gre,esp-transit")
    ap.add_argument("--sizes", default="64,1400")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--spokes", type=int, default=10000)
    ap.add_argument("--no-peer", action="store_true", help="leave out ipsec-secgw and l3fwd")
    a = ap.parse_args()

    cores = os.cpu_count() or 2
    if a.workers:
        counts = [int(x) for x in a.workers.split(",")]
    else:
        counts, n = [], 1
        while n <= cores - 1:
            counts.append(n)
            n *= 2
        if counts[-1] != cores - 1:
            counts.append(cores - 1)
    common.ensure_hugepages(max(1024, 256 * (max(counts) + 1)))

    extra, env = [], dict(os.environ)
    if a.bundle:
        bench = os.path.join(a.bundle, "dataplane-bench")
        testpmd = os.path.join(a.bundle, "dpdk-testpmd")
        lib = os.path.join(a.bundle, "lib")
        env["LD_LIBRARY_PATH"] = lib
        os.environ["LD_LIBRARY_PATH"] = lib
        for pmd in ("librte_mempool_ring.so.23", "librte_net_null.so.23"):
            extra += ["-d", os.path.join(lib, pmd)]
    else:
        bench = os.path.join(a.build, "bench", "dataplane-bench")
        testpmd = "dpdk-testpmd"

    hz = None
    rows = []
    for n in counts:
        cmd = [bench, "scale", "--workers", str(n), "--cases", a.cases, "--sizes", a.sizes,
               "--seconds", str(a.seconds), "--spokes", str(a.spokes), "--"] + \
            common.eal("bench_scale%d" % n, "0-%d" % n) + extra
        common.log("workers %d: %s" % (n, " ".join(cmd)))
        r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, timeout=1200)
        got = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
        if r.returncode != 0 and not got:
            sys.exit("dataplane-bench scale --workers %d failed" % n)
        rows += got
        hz = hz or (got[0]["tsc_hz"] if got else None)

    # One core's I/O ceiling on this machine, for scale.
    cmd = [testpmd] + common.eal("bench_pmd", "0,1") + extra + [
        "--vdev", "net_null0", "--vdev", "net_null1,no-rx=1", "--",
        "--forward-mode=io", "--nb-cores=1", "--stats-period", "5", "--total-num-mbufs=65536"]
    try:
        ceiling = common.steady_state(cmd, "bench_pmd", 0, "ipackets", 1.0, 3.0, hz)
        io_mpps = hz / ceiling["cycles_per_pkt"] / 1e6
        io_cycles = ceiling["cycles_per_pkt"]
    except RuntimeError as e:
        common.log("testpmd: %s" % e)
        io_mpps = io_cycles = None

    # One core's crypto ceiling on this machine: IPsec-MB's direct AES-128-GCM API, one hot key,
    # at the bytes the hub ciphers for each inner size.
    lengths = {s: common.cipher_len(int(s)) for s in a.sizes.split(",") if s != "imix"}
    crypto = {}
    if lengths:
        r = subprocess.run([bench, "imb", "--lengths", ",".join(str(v) for v in lengths.values()),
                            "--keys", "1", "--seconds", "1"], stdout=subprocess.PIPE, text=True,
                           env=env, timeout=300)
        for l in r.stdout.splitlines():
            if l.startswith("{"):
                j = json.loads(l)
                crypto[(j["op"], j["cipher_len"])] = j["cycles_per_op"]

    def ceiling_cycles(case, size):
        if case == "gre":
            return io_cycles
        n = lengths.get(size)
        enc, dec = crypto.get(("encrypt", n)), crypto.get(("decrypt", n))
        if enc is None or dec is None:
            return None
        return {"esp-transit": enc + dec, "esp-in": dec, "esp-out": enc}[case]

    peer = {} if a.no_peer else peers(a, os.path.join(common.ROOT, a.build), bench, counts, env,
                                      extra, hz)
    base = {(r["case"], r["pkt_size"]): r["mpps"] for r in rows if r["workers"] == 1}
    print("dataplane scaling, %d spokes, TSC %.2f GHz, %d cores; one core's I/O ceiling %s Mpps"
          % (a.spokes, hz / 1e9, cores, "%.1f" % io_mpps if io_mpps else "n/a"))
    print("%-12s %-5s %7s %9s %9s %10s %8s %8s %8s %8s %9s" % (
        "case", "size", "workers", "cyc/pkt", "Mpps/wkr", "aggr Mpps", "scaling",
        "dropped", "of ceil", "Gbit/s", "peer Mpps"))
    for r in rows:
        one = base.get((r["case"], r["pkt_size"]))
        r["scaling_efficiency"] = round(r["mpps"] / one, 3) if one else None
        r["io_ceiling_mpps_one_core"] = round(io_mpps, 3) if io_mpps else None
        # Packets the workers dropped (none expected: the bench fails on any).
        r["dropped_share"] = round(r["drops"] / r["rx"], 4) if r["rx"] else None
        # Per worker against one core's ceiling (I/O for GRE, IPsec-MB for ESP), same run.
        c = ceiling_cycles(r["case"], r["pkt_size"])
        r["ceiling"] = "io" if r["case"] == "gre" else "crypto"
        r["ceiling_cycles_per_pkt"] = round(c, 1) if c else None
        r["of_ceiling"] = round(c / r["cycles_per_pkt"], 3) if c else None
        size = int(r["pkt_size"]) if r["pkt_size"] != "imix" else None
        bits = frame_len(r["case"], size) * 8 if size else None
        r["frame_bytes"] = bits // 8 if bits else None
        r["gbps"] = round(r["aggregate_mpps"] * bits / 1e3, 2) if bits else None
        p = peer.get((r["case"], r["pkt_size"], r["workers"]), {})
        r["peer"] = p.get("peer")
        r["peer_mpps"] = p.get("peer_mpps")
        r["peer_aggregate_mpps"] = p.get("peer_aggregate_mpps")
        r["peer_cycles_per_pkt"] = p.get("peer_cycles_per_pkt")
        r["peer_raw_mpps"] = p.get("peer_raw_mpps")  # capture input included
        r["peer_input_cycles_per_pkt"] = p.get("peer_input_cycles_per_pkt")
        r["peer_gbps"] = round(p["peer_aggregate_mpps"] * bits / 1e3, 2) \
            if p.get("peer_aggregate_mpps") and bits else None
        r["of_peer"] = round(r["mpps"] / p["peer_mpps"], 2) if p.get("peer_mpps") else None
        print("%-12s %-5s %7d %9.1f %9.3f %10.3f %7s %7.2f%% %7s %8s %9s" % (
            r["case"], r["pkt_size"], r["workers"], r["cycles_per_pkt"], r["mpps"],
            r["aggregate_mpps"], "%.0f%%" % (100 * r["scaling_efficiency"]) if one else "-",
            100 * (r["dropped_share"] or 0),
            "%.0f%%" % (100 * r["of_ceiling"]) if c else "-",
            "%.1f" % r["gbps"] if r["gbps"] is not None else "-",
            "%.3f" % r["peer_mpps"] if r["peer_mpps"] is not None else "-"))
    with open(a.out, "w") as f:
        json.dump({"machine": {"cores": cores, "tsc_hz": hz, "loadavg": common.loadavg(),
                               "io_ceiling_cycles_per_pkt": io_cycles,
                               "crypto_cycles_per_op_one_key": {
                                   "%s %d" % k: v for k, v in sorted(crypto.items())}},
                   "rows": rows}, f, indent=1)
    print("wrote %s" % a.out)


if __name__ == "__main__":
    main()
