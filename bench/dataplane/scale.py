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
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as common  # noqa: E402  (hugepages, telemetry, testpmd timing)


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

    base = {(r["case"], r["pkt_size"]): r["mpps"] for r in rows if r["workers"] == 1}
    print("dataplane scaling, %d spokes, TSC %.2f GHz, %d cores; one core's I/O ceiling %s Mpps"
          % (a.spokes, hz / 1e9, cores, "%.1f" % io_mpps if io_mpps else "n/a"))
    print("%-12s %-5s %7s %9s %9s %10s %8s %8s %8s" % (
        "case", "size", "workers", "cyc/pkt", "Mpps/wkr", "aggr Mpps", "scaling",
        "dropped", "of ceil"))
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
        r["peer"] = r["peer_mpps"] = None  # ipsec-secgw is not run in the scaling sweep
        print("%-12s %-5s %7d %9.1f %9.3f %10.3f %7s %7.2f%% %7s" % (
            r["case"], r["pkt_size"], r["workers"], r["cycles_per_pkt"], r["mpps"],
            r["aggregate_mpps"], "%.0f%%" % (100 * r["scaling_efficiency"]) if one else "-",
            100 * (r["dropped_share"] or 0),
            "%.0f%%" % (100 * r["of_ceiling"]) if c else "-"))
    with open(a.out, "w") as f:
        json.dump({"machine": {"cores": cores, "tsc_hz": hz, "loadavg": common.loadavg(),
                               "io_ceiling_cycles_per_pkt": io_cycles,
                               "crypto_cycles_per_op_one_key": {
                                   "%s %d" % k: v for k, v in sorted(crypto.items())}},
                   "rows": rows}, f, indent=1)
    print("wrote %s" % a.out)


if __name__ == "__main__":
    main()
