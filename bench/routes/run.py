#!/usr/bin/python3
"""Routes benchmark: FRR's table pushed through FPM into the running hub while its worker
forwards, beside zebra installing the same table into the kernel.

  run.py [--quick] [--routes N] [--peer-routes N] [--out PATH]

In a network namespace: dmvpn-hub (net_pcap ports; one LAN port replays a capture endlessly,
so the worker forwards all along to a configured route) with `routing.fpm`; fpm-push (bench/
routes/fpm_push.cpp) plays zebra and sends N routes of mixed lengths (gateways on the hub's
LAN and tunnel); the time runs from its connect until `show stats` counts every route applied
to the RIB (committed to the FIB). worker_loss: the share of the worker's forwarding rate
(tx packets/s, over the 3 s before) lost while the table went in. The peer: Debian's zebra
and staticd in the namespace, the same table as staticd configuration, timed from staticd's
start until zebra reports it all in the kernel's FIB (`show ip route summary`), up to a time
limit (it then reports how far it got). --quick: 50,000 routes (the smoke test). Needs root.
"""

import argparse
import json
import re
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

FRR = "/usr/lib/frr"
SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("DMVPN_BUILD") or os.path.join(
    SOURCE, os.environ.get("DMVPN_BENCH_BUILD", "build-bench"))
HUB = os.path.join(BUILD, "dmvpn-hub")
CTL = os.path.join(BUILD, "dmvpnctl")
PUSH = os.path.join(BUILD, "bench", "fpm-push")
GATEWAYS = "192.0.2.2,10.255.0.2"

CONFIG = """\
hub:
  control-lcore: 0
  worker-lcores: [1]
  eal-args: [--no-huge, -m, "1024", --no-pci, --no-shconf]
ports:
  - name: wan
    device: net_pcap0,rx_pcap={d}/idle.pcap,tx_pcap=/dev/null,tx_pcap=/dev/null
    role: underlay
    address: 198.51.100.1/24
  - name: lan
    device: net_pcap1,rx_pcap={d}/traffic.pcap,infinite_rx=1,tx_pcap=/dev/null,tx_pcap=/dev/null
    role: lan
    address: 192.0.2.1/24
  - name: lan2
    device: net_pcap2,rx_pcap={d}/arp.pcap,tx_pcap=/dev/null,tx_pcap=/dev/null
    role: lan
    address: 192.0.3.1/24
tunnels:
  - name: tun0
    port: wan
    overlay-address: 10.255.0.1
    overlay-prefix: 10.255.0.0/24
    nhrp: {{network-id: 1}}
routes:
  - {{prefix: 198.19.0.0/16, via: 192.0.3.2}}
routing:
  fpm: {{max-routes: {max_routes}}}
management:
  socket: {d}/hub.sock
"""


def run(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


def ctl(sock, *cmd):
    return subprocess.run([CTL, "--socket", sock, *cmd], capture_output=True, text=True,
                          timeout=60)


def stats(sock):
    r = ctl(sock, "show", "stats", "--json")
    return json.loads(r.stdout) if r.returncode == 0 else None


def worker_tx(s):
    return sum(w["tx_packets"] for w in s["workers"])


def wait_for(pred, seconds, step=0.2):
    end = time.time() + seconds
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return None


def captures(d):
    from scapy.all import ARP, IP, UDP, Ether, Raw, wrpcap
    # net_pcap's MACs: 02:70:63:61:70:<device index>.
    lan_mac, lan2_mac = "02:70:63:61:70:01", "02:70:63:61:70:02"
    host = "02:00:00:00:02:0a"
    wrpcap(os.path.join(d, "traffic.pcap"), [
        Ether(src=host, dst=lan_mac) / IP(src="192.0.2.10", dst="198.19.%d.%d" % (i // 250, i % 250 + 1)) /
        UDP(sport=1000 + i, dport=9) / Raw(b"x" * 18) for i in range(256)])
    wrpcap(os.path.join(d, "arp.pcap"), [
        Ether(src="02:00:00:00:03:02", dst="ff:ff:ff:ff:ff:ff") /
        ARP(op=1, hwsrc="02:00:00:00:03:02", psrc="192.0.3.2", pdst="192.0.3.1")])
    wrpcap(os.path.join(d, "idle.pcap"), [
        Ether(src="02:00:00:00:01:02", dst=lan2_mac) / IP(src="198.51.100.2", dst="198.51.100.1")])


def hub_pid(wrapper):
    """The dmvpn-hub process under `ip netns exec` (which execs it: the same pid)."""
    return wrapper


def thread_cpu(pid, comm):
    """CPU seconds used so far by the hub's thread named `comm` (the control lcore's thread is
    the process's own name, dmvpn-hub)."""
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if f.read().strip() != comm:
                    continue
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            continue
    return 0.0


def hub_run(ns, d, count):
    with open(os.path.join(d, "hub.yaml"), "w") as f:
        f.write(CONFIG.format(d=d, max_routes=max(count + 1000, 2000000)))
    sock = os.path.join(d, "hub.sock")
    log = open(os.path.join(d, "hub.log"), "w+")
    hub = subprocess.Popen(["ip", "netns", "exec", ns, HUB, "--config",
                            os.path.join(d, "hub.yaml"), "--", "--file-prefix",
                            "benchroutes%d" % os.getpid()], stdout=log, stderr=subprocess.STDOUT)
    push = None
    try:
        if not wait_for(lambda: os.path.exists(sock) and ctl(sock, "help").returncode == 0, 120):
            log.seek(0)
            sys.exit("routes bench: the hub did not start:\n" + log.read()[-3000:])
        # The worker forwards to 198.19.0.0/16 once ARP for 192.0.3.2 is known.
        if not wait_for(lambda: worker_tx(stats(sock)) > 0, 30):
            sys.exit("routes bench: the worker forwards nothing")
        time.sleep(1)
        c0 = {c: thread_cpu(hub.pid, c) for c in ("dmvpn-hub", "dmvpn-fpm")}
        s0, t0 = stats(sock), time.time()
        time.sleep(3)
        s1, t1 = stats(sock), time.time()
        c1 = {c: thread_cpu(hub.pid, c) for c in c0}
        base_rate = (worker_tx(s1) - worker_tx(s0)) / (t1 - t0)
        perf = None
        if os.environ.get("DMVPN_BENCH_PERF"):
            # Profile the hub while the table goes in (perf report -i PATH afterwards).
            perf = subprocess.Popen(["perf", "record", "-g", "-o", os.environ["DMVPN_BENCH_PERF"],
                                     "-p", str(hub_pid(hub.pid))], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(1)
        start = time.time()
        # fpm-push plays zebra, which would not run on a worker's core: on the control lcore's.
        push = subprocess.Popen(["ip", "netns", "exec", ns, "taskset", "-c", "0", PUSH,
                                 "127.0.0.1", "2620", str(count), GATEWAYS], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        s_start = s1

        def applied():
            s = stats(sock)
            if s is None:
                return None  # a long control loop pass: dmvpnctl gave up
            r = s["routing"]
            done = r["fpm_installed"] + r["fpm_unresolved"] + r["fpm_rib_refused"]
            return s if done >= count else None

        s_end = wait_for(applied, 1200, step=0.25)
        end = time.time()
        c2 = {c: thread_cpu(hub.pid, c) for c in c0}
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait(timeout=120)
        if s_end is None:
            sys.exit("routes bench: the hub did not apply %d routes in 20 minutes" % count)
        sent = json.loads(push.stdout.readline())
        seconds = end - start
        rate = (worker_tx(s_end) - worker_tx(s_start)) / (end - t1)
        routing = s_end["routing"]
        result = {
            "seconds": round(seconds, 3),
            "send_seconds": sent["send_seconds"],
            "installed": routing["fpm_installed"],
            "rib_refused": routing["fpm_rib_refused"],
            "fib_failed": routing["rib_fib_failed"],
            "worker_pps_before": round(base_rate),
            "worker_pps_during": round(rate),
            "worker_loss": round(max(0.0, 1 - rate / base_rate), 4) if base_rate > 0 else None,
            "loop_max_us": s_end["control_loop"]["max_us"],
            # CPU the control lcore and the FPM thread used during the load (and the share of a
            # core the control lcore used idle, polling, before it): unlike `seconds`, not
            # inflated by other processes sharing the cores.
            "control_cpu_seconds": round(c2["dmvpn-hub"] - c1["dmvpn-hub"], 3),
            "control_cpu_idle_share": round((c1["dmvpn-hub"] - c0["dmvpn-hub"]) / (t1 - t0), 3),
            "fpm_thread_cpu_seconds": round(c2["dmvpn-fpm"] - c1["dmvpn-fpm"], 3),
            "loadavg": os.getloadavg()[0],
        }
        print("hub:", json.dumps(result), flush=True)
        return result
    finally:
        if push is not None:
            push.stdin.close()
            push.wait(timeout=30)
        hub.send_signal(signal.SIGTERM)
        try:
            hub.wait(timeout=60)
        except subprocess.TimeoutExpired:
            hub.kill()


def peer_run(ns, d, count, limit):
    """zebra + staticd install the same table into the namespace's kernel."""
    work = os.path.join(d, "frr")
    os.makedirs(work)
    shutil.chown(work, "frr", "frr")
    table = run(PUSH, "--print", str(count), GATEWAYS).stdout
    for name, text in (("zebra.conf", ""), ("staticd.conf", table)):
        with open(os.path.join(work, name), "w") as f:
            f.write(text)
        shutil.chown(os.path.join(work, name), "frr", "frr")
    common = ["-z", f"{work}/zserv.api", "--vty_socket", work, "-u", "frr", "-g", "frr"]
    try:
        run("ip", "netns", "exec", ns, f"{FRR}/zebra", "-d", "-f", f"{work}/zebra.conf", "-i",
            f"{work}/zebra.pid", *common)
        time.sleep(1)
        start = time.time()
        run("ip", "netns", "exec", ns, f"{FRR}/staticd", "-d", "-f", f"{work}/staticd.conf",
            "-i", f"{work}/staticd.pid", *common)
        installed = [0]

        def in_fib():
            # The kernel's own count (zebra may be too busy to answer vtysh): staticd's routes
            # carry rtm_protocol 196.
            r = subprocess.run(["ip", "-n", ns, "-4", "route", "show", "proto", "196"],
                               capture_output=True, text=True, check=False)
            installed[0] = r.stdout.count("\n")
            return installed[0] >= count

        done = wait_for(in_fib, limit, step=1.0)
        seconds = time.time() - start
        return {"peer_seconds": round(seconds, 3), "peer_routes": installed[0],
                "peer_complete": bool(done)}
    finally:
        kill_started_in(work)


def kill_started_in(work):
    """Kills the FRR daemons this run started: those whose command line names its directory
    (staticd may still be reading its configuration, with no pid file yet)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if args and args[0].startswith(FRR.encode()) and any(work.encode() in a for a in args):
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass


def kernel_run(ns, count):
    """The kernel alone taking the same table (ip -batch, one netlink request per route): the
    floor under any routing daemon's installation. -force: a generated prefix that is the
    namespace's own connected subnet (10.255.0.0/24 at 1M) is refused and the rest goes on."""
    table = re.sub(r"ip route (\S+) (\S+)", r"route add \1 via \2",
                   run(PUSH, "--print", str(count), GATEWAYS).stdout)
    start = time.time()
    subprocess.run(["ip", "-n", ns, "-force", "-batch", "-"], input=table, text=True,
                   check=False, capture_output=True)
    seconds = time.time() - start
    subprocess.run(["ip", "-n", ns, "route", "flush", "proto", "boot"], check=False,
                   capture_output=True)
    return round(seconds, 3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--routes", type=int)
    ap.add_argument("--peer-limit", type=int, help="seconds the peer may take (default 600)")
    ap.add_argument("--out", default=os.path.join(SOURCE, "bench", "results", "routes.json"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root (network namespaces)")
        sys.exit(77)
    for path in (HUB, CTL, PUSH):
        if not os.path.exists(path):
            sys.exit("routes bench: %s is not built" % path)
    count = args.routes or (50000 if args.quick else 1000000)
    limit = args.peer_limit or (60 if args.quick else 300)
    d = tempfile.mkdtemp(prefix="benchroutes-")
    os.chmod(d, 0o755)
    ns = "dmvpn-benchroutes%d" % os.getpid()
    run("ip", "netns", "del", ns, check=False)
    run("ip", "netns", "add", ns)
    try:
        run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", ns, "link", "add", "k0", "type", "veth", "peer", "name", "k1")
        for dev in ("k0", "k1"):
            run("ip", "-n", ns, "link", "set", dev, "up")
        for a in ("192.0.2.254/24", "10.255.0.254/24"):
            run("ip", "-n", ns, "addr", "add", a, "dev", "k0")
        captures(d)
        hub = hub_run(ns, d, count)
        kernel_seconds = kernel_run(ns, count)
        print("kernel (ip -batch):", kernel_seconds, flush=True)
        peer = {"peer_seconds": None, "peer_routes": 0, "peer_complete": False}
        if os.path.exists(f"{FRR}/zebra") and os.path.exists(f"{FRR}/staticd"):
            peer = peer_run(ns, d, count, limit)
            print("peer:", json.dumps(peer), flush=True)
        else:
            print("peer: skipped, Debian's frr is not installed")
        row = {
            "case": "fpm-%s-mixed" % ("%dk" % (count // 1000) if count < 1000000 else
                                      "%gM" % (count / 1e6)),
            "routes": count,
            "seconds": hub["seconds"],
            "routes_per_s": round(count / hub["seconds"]),
            "worker_loss": hub["worker_loss"],
            "peer": "FRR 8.4 zebra + staticd into the Linux kernel (same table)",
            "peer_seconds": peer["peer_seconds"],
            "peer_routes": peer["peer_routes"],
            "peer_complete": peer["peer_complete"],
            "kernel_batch_seconds": kernel_seconds,
            "detail": hub,
        }
        doc = {"host": os.uname().nodename, "cpus": os.cpu_count(),
               "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "build": os.path.basename(BUILD), "rows": [row]}
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        print(json.dumps(row, indent=1))
        # Every gateway is on a hub interface: each route must have gone in.
        sys.exit(0 if hub["installed"] == count and hub["fib_failed"] == 0 else 1)
    finally:
        run("ip", "netns", "del", ns, check=False)
        shutil.rmtree(d, ignore_errors=True)


main()
