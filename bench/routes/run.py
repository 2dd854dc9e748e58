#!/usr/bin/python3
"""Routes benchmark: FRR's table pushed through FPM into the running hub while its worker
forwards, beside zebra installing the same table into the kernel.

  run.py [--quick] [--routes N] [--peer-limit S] [--out PATH]

In a network namespace: dmvpn-hub (net_pcap ports; one LAN port replays a capture endlessly,
so the worker forwards all along to a configured route, the capture read in the worker's own
polls: no traffic source needs a CPU of its own) with `routing.fpm`; fpm-push (bench/routes/
fpm_push.cpp) plays zebra: it encodes N routes of mixed lengths (gateways on the hub's LAN and
tunnel) first, then on a word from this script connects and sends them; the time runs from that
word until `show stats` counts every route applied to the RIB (committed to the FIB).

CPUs: the worker lcore alone on CPU 1 (checked from every hub thread's affinity); the control
lcore, the FPM thread, EAL's threads, fpm-push, dmvpnctl, this script and the peer on CPU 0.
Other work on the machine still runs on both. worker_loss: the share of the worker's tx rate,
counted per second of the worker thread's own CPU time (/proc/PID/task/TID/schedstat), lost
while the table went in, against 5 s before it (6 samples); worker_loss_wall is the same per
wall second (it also counts the worker preempted by anything else on its CPU), and the detail
has both rates before, during and after, the spread of the 1 s intervals, the share of time the
worker waited for its CPU, and what the sampling brackets make uncertain.

The peer, after the hub and on the same CPU 0: the same table as a BGP full-table load, the way
zebra meets a big table in the field. BIRD (Debian's bird2, in a namespace of its own; the
table as a static protocol, which its parser reads quickly) announces it over one eBGP session to
Debian's FRR bgpd, which hands it to zebra, which installs it into the namespace's kernel.
Timed from the session's establishment (bgpd's own clock) until the kernel holds as many routes
of protocol bgp as `ip -batch` put there, or up to a time limit (it then reports how far it got);
also when bgpd counted the whole table received (PfxRcd) and the CPU zebra and bgpd used, so the
figures say where the time goes. Beside it the kernel alone (`ip -batch`, one netlink request
a route). --quick: 50,000 routes (the smoke test). Needs root.
"""

import argparse
import ctypes
import json
import re
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

FRR = "/usr/lib/frr"
BIRD = "/usr/sbin/bird"  # the peer's feed (Debian's bird2)
# The peer's BGP session: bgpd's end (in the bench's namespace) and BIRD's (a namespace of its
# own), outside the generated table (1.0.0.0-57.x at 1M).
PEER_HUB, PEER_FEED = "203.0.113.1", "203.0.113.2"
RTPROT_BGP = 186  # zebra's BGP routes in the kernel
RTPROT_BOOT = 3  # `ip route add`'s
CLONE_NEWNET = 0x40000000
SOL_NETLINK, NETLINK_GET_STRICT_CHK = 270, 12
SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("DMVPN_BUILD") or os.path.join(
    SOURCE, os.environ.get("DMVPN_BENCH_BUILD", "build-bench"))
os.environ["DMVPN_BUILD"] = BUILD
sys.path.insert(0, os.path.join(SOURCE, "tests"))
from hub_checks import CTL, HUB, wait_for  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cpuset  # noqa: E402  (bench/cpuset.py: --isolate-worker-cpu)

PUSH = os.path.join(BUILD, "bench", "fpm-push")
# The worker lcore's CPU; everything else the bench starts (the hub's other threads, fpm-push,
# dmvpnctl, this script, the peer) runs on the other one.
WORKER_CPU = 1
OTHER_CPU = 0
GATEWAYS = "192.0.2.2,10.255.0.2"

CONFIG = """\
hub:
  control-lcore: 0
  worker-lcores: [1]
  service-cpus: [0]
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


def threads(pid):
    """{tid: (comm, the CPUs it may run on)} of every thread of `pid`."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                comm = f.read().strip()
            out[int(tid)] = (comm, sorted(os.sched_getaffinity(int(tid))))
        except OSError:
            continue
    return out


def thread_cpu(pid, comm):
    """CPU seconds used so far by the hub's thread named `comm` (the control lcore's thread is
    the process's own name, dmvpn-hub)."""
    for tid, (name, _) in threads(pid).items():
        if name == comm:
            return schedstat(pid, tid)[0]
    return 0.0


def schedstat(pid, tid):
    """(seconds on a CPU, seconds runnable but waiting for one) of one thread, from the
    scheduler's own accounting (ns resolution, unlike /proc/.../stat's ticks)."""
    with open("/proc/%d/task/%d/schedstat" % (pid, tid)) as f:
        run_ns, wait_ns = f.read().split()[:2]
    return int(run_ns) / 1e9, int(wait_ns) / 1e9


class worker_clock:
    """Samples of the worker's tx packet counter beside its thread's CPU time and wall time.
    The counter comes through dmvpnctl (the control lcore reads it at some moment during the
    call); the CPU time and the wall clock are read before and after the call and the midpoints
    taken, so each sample is uncertain by half the call's duration (kept as `bracket_s`)."""

    def __init__(self, pid, tid, sock):
        self.pid, self.tid, self.sock = pid, tid, sock
        self.samples = []

    def sample(self):
        t0, (c0, w0) = time.monotonic(), schedstat(self.pid, self.tid)
        s = stats(self.sock)
        t1, (c1, w1) = time.monotonic(), schedstat(self.pid, self.tid)
        if s is None:
            return None
        self.samples.append({"t": (t0 + t1) / 2, "cpu": (c0 + c1) / 2, "wait": (w0 + w1) / 2,
                             "tx": worker_tx(s), "bracket_s": t1 - t0, "cpu_bracket_s": c1 - c0})
        return s

    def mark(self):
        return len(self.samples) - 1

    def rates(self, i, j):
        """The worker's tx rate between samples i and j: per second of its own CPU time, per
        wall second, the share of the wall time it was on a CPU and the share it waited for one
        (runnable, preempted by another process), the worst bracket of the two samples and what
        the two brackets make uncertain in the per-CPU rate (half of each over the CPU time)."""
        a, b = self.samples[i], self.samples[j]
        packets, wall, cpu = b["tx"] - a["tx"], b["t"] - a["t"], b["cpu"] - a["cpu"]
        return {"pps_per_cpu_s": packets / cpu if cpu > 0 else None,
                "pps_per_wall_s": packets / wall if wall > 0 else None,
                "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                "on_cpu_share": round(cpu / wall, 4) if wall > 0 else None,
                "waited_share": round((b["wait"] - a["wait"]) / wall, 4) if wall > 0 else None,
                "bracket_s": round(max(a["bracket_s"], b["bracket_s"]), 4),
                "cpu_rate_uncertainty":
                round((a["cpu_bracket_s"] + b["cpu_bracket_s"]) / 2 / cpu, 4) if cpu > 0 else None}

    def intervals(self, i, j, seconds=1.0):
        """Per-CPU-second rates between samples i..j over intervals of at least `seconds` of
        wall time (their spread is the noise)."""
        out, k = [], i
        for m in range(i + 1, j + 1):
            if self.samples[m]["t"] - self.samples[k]["t"] >= seconds or m == j:
                out.append(round(self.rates(k, m)["pps_per_cpu_s"] or 0))
                k = m
        return out


def loss(before, during, key):
    if not before[key] or during[key] is None:
        return None
    return round(1 - during[key] / before[key], 4)


def hub_run(ns, d, count):
    with open(os.path.join(d, "hub.yaml"), "w") as f:
        f.write(CONFIG.format(d=d, max_routes=max(count + 1000, 2000000)))
    sock = os.path.join(d, "hub.sock")
    log = open(os.path.join(d, "hub.log"), "w+")
    # The hub may use both CPUs: EAL pins the control lcore (0) and the worker lcore (1); its
    # other threads (the FPM thread, the logger, EAL's control threads) go on the control
    # lcore's CPU (hub.service-cpus: [0]; automatic would put them beside the worker).
    hub = subprocess.Popen(["taskset", "-c", "%d,%d" % (OTHER_CPU, WORKER_CPU), "ip", "netns",
                            "exec", ns, HUB, "--config", os.path.join(d, "hub.yaml"), "--",
                            "--file-prefix", "benchroutes%d" % os.getpid()], stdout=log,
                           stderr=subprocess.STDOUT)
    push = None
    try:
        if not wait_for(lambda: os.path.exists(sock) and ctl(sock, "help").returncode == 0, 120):
            log.seek(0)
            sys.exit("routes bench: the hub did not start:\n" + log.read()[-3000:])
        # The worker forwards to 198.19.0.0/16 once ARP for 192.0.3.2 is known.
        if not wait_for(lambda: worker_tx(stats(sock)) > 0, 30):
            sys.exit("routes bench: the worker forwards nothing")
        # fpm-push plays zebra, which would not run on a worker's core: on the control lcore's
        # (it inherits this script's CPU). It encodes the table first and says when it is ready.
        push = subprocess.Popen(["ip", "netns", "exec", ns, PUSH, "127.0.0.1", "2620",
                                 str(count), GATEWAYS], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        ready = json.loads(push.stdout.readline())
        placed = threads(hub.pid)
        on_worker_cpu = {"%s/%d" % (c, t): cpus for t, (c, cpus) in placed.items()
                         if WORKER_CPU in cpus}
        worker_tids = [t for t, (c, cpus) in placed.items() if cpus == [WORKER_CPU]]
        if len(worker_tids) != 1 or len(on_worker_cpu) != 1:
            sys.exit("routes bench: expected the worker lcore alone on CPU %d, found %s" %
                     (WORKER_CPU, on_worker_cpu))
        clock = worker_clock(hub.pid, worker_tids[0], sock)
        time.sleep(1)
        c0 = {c: thread_cpu(hub.pid, c) for c in ("dmvpn-hub", "dmvpn-fpm")}
        t0 = time.time()
        # Before the load: 6 samples a second apart (5 intervals).
        clock.sample()
        for _ in range(5):
            time.sleep(1)
            clock.sample()
        before_last = clock.mark()
        t1 = time.time()
        c1 = {c: thread_cpu(hub.pid, c) for c in c0}
        perf = None
        if os.environ.get("DMVPN_BENCH_PERF"):
            # Profile the hub while the table goes in (perf report -i PATH afterwards).
            perf = subprocess.Popen(["perf", "record", "-g", "-o", os.environ["DMVPN_BENCH_PERF"],
                                     "-p", str(hub.pid)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(1)
        start = time.time()
        push.stdin.write("go\n")
        push.stdin.flush()

        def applied():
            s = clock.sample()
            if s is None:
                return None  # a long control loop pass: dmvpnctl gave up
            r = s["routing"]
            done = r["fpm_installed"] + r["fpm_unresolved"] + r["fpm_rib_refused"]
            return s if done >= count else None

        s_end = wait_for(applied, 1200, step=0.25)
        end = time.time()
        during_last = clock.mark()
        c2 = {c: thread_cpu(hub.pid, c) for c in c0}
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait(timeout=120)
        if s_end is None:
            sys.exit("routes bench: the hub did not apply %d routes in 20 minutes" % count)
        # After the load: 3 more samples, the same rate back (or not).
        for _ in range(3):
            time.sleep(1)
            clock.sample()
        sent = json.loads(push.stdout.readline())
        seconds = end - start
        before = clock.rates(0, before_last)
        during = clock.rates(before_last, during_last)
        after = clock.rates(during_last, clock.mark())
        routing = s_end["routing"]
        result = {
            "seconds": round(seconds, 3),
            "send_seconds": sent["send_seconds"],
            "stream_bytes": ready["bytes"],
            "installed": routing["fpm_installed"],
            "rib_refused": routing["fpm_rib_refused"],
            "fib_failed": routing["rib_fib_failed"],
            # worker_loss: per second of the worker thread's own CPU time (what the load costs
            # the worker itself; another process preempting it on its CPU does not count).
            # worker_loss_wall: per wall second (preemption by anything on the VM counts too).
            "worker_loss": loss(before, during, "pps_per_cpu_s"),
            "worker_loss_wall": loss(before, during, "pps_per_wall_s"),
            "worker_loss_after": loss(before, after, "pps_per_cpu_s"),
            "worker_before": before,
            "worker_during": during,
            "worker_after": after,
            "worker_before_intervals_pps_per_cpu_s": clock.intervals(0, before_last),
            "worker_during_intervals_pps_per_cpu_s": clock.intervals(before_last, during_last),
            "threads_on_worker_cpu": on_worker_cpu,
            "loop_max_us": s_end["control_loop"]["max_us"],
            # CPU the control lcore and the FPM thread used during the load (and the share of a
            # core the control lcore used idle, polling, before it): unlike `seconds`, not
            # inflated by other processes sharing the cores.
            "control_cpu_seconds": round(c2["dmvpn-hub"] - c1["dmvpn-hub"], 3),
            "control_cpu_idle_share": round((c1["dmvpn-hub"] - c0["dmvpn-hub"]) / (t1 - t0), 3),
            "fpm_thread_cpu_seconds": round(c2["dmvpn-fpm"] - c1["dmvpn-fpm"], 3),
            "loadavg": os.getloadavg()[0],
        }
        for r in (before, during, after):
            for k in ("pps_per_cpu_s", "pps_per_wall_s"):
                r[k] = round(r[k]) if r[k] is not None else None
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


def netlink_socket(ns):
    """A rtnetlink socket in namespace `ns` (a socket keeps the namespace it was made in: this
    thread enters `ns` to make it and goes back)."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/self/ns/net") as home, open("/run/netns/" + ns) as there:
        if libc.setns(there.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        try:
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        finally:
            if libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    # NETLINK_GET_STRICT_CHK: the kernel filters the dump by the request's rtm_protocol.
    s.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((0, 0))
    return s


def kernel_routes(s, protocol):
    """IPv4 routes of `protocol` in the socket's namespace, counted from one RTM_GETROUTE dump
    (cheaper than `ip route show | wc -l` at 1M: no text)."""
    rt = struct.pack("BBBBBBBBI", socket.AF_INET, 0, 0, 0, 0, protocol, 0, 0, 0)
    s.send(struct.pack("IHHII", 16 + len(rt), 26, 0x301, 1, 0) + rt)  # RTM_GETROUTE, dump
    n = 0
    while True:
        buf = s.recv(1 << 20)
        off = 0
        while off + 16 <= len(buf):
            length, kind = struct.unpack_from("IH", buf, off)
            if kind == 3:  # NLMSG_DONE
                return n
            if kind == 2:  # NLMSG_ERROR
                raise OSError("routes bench: netlink dump refused")
            if kind == 24 and buf[off + 21] == protocol:  # RTM_NEWROUTE, rtm_protocol
                n += 1
            off += (length + 3) & ~3


def cpu_seconds(pid):
    """utime + stime of every thread of `pid` so far (0 once it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, TypeError):  # TypeError: no pid
        return 0.0


def thin(samples, most):
    """At most about `most` of `samples`, evenly spaced, the last one kept."""
    step = max(1, -(-len(samples) // most))
    return samples[::step] + ([samples[-1]] if samples and (len(samples) - 1) % step else [])


def pid_of(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


BGPD_CONF = """\
frr defaults traditional
hostname peer
router bgp 65001
 bgp router-id {hub}
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor {feed} remote-as 65002
 address-family ipv4 unicast
  neighbor {feed} activate
  neighbor {feed} route-map none out
 exit-address-family
route-map none deny 10
"""

BIRD_CONF = """\
router id {feed};
protocol device {{ }}
protocol static feed {{
  ipv4;
{routes}}}
protocol bgp hub {{
  local {feed} as 65002;
  neighbor {hub} as 65001;
  ipv4 {{ import none; export all; next hop keep; }};
}}
"""


def peer_run(ns, d, count, expected, limit):
    """The same table offered to FRR's bgpd over one eBGP session by BIRD (a transit's full
    table, the way a router meets a big table in the field); bgpd hands it to zebra, which
    installs it into the namespace's kernel. Timed from the session's establishment (the first
    route offered) until the kernel holds `expected` routes of protocol bgp, or `limit` s."""
    work = os.path.join(d, "frr")
    os.makedirs(work)
    shutil.chown(work, "frr", "frr")
    feed_ns = ns + "-feed"
    run("ip", "netns", "add", feed_ns)
    nl = None
    bird = None
    try:
        # The feed's namespace: one veth to the peer's, and the table's gateways' subnets (BIRD
        # takes a static route only through a neighbour on a connected network; the routes go
        # out with their gateways unchanged, `next hop keep`, which zebra finds on k0).
        run("ip", "-n", ns, "link", "add", "b0", "type", "veth", "peer", "name", "b1", "netns",
            feed_ns)
        run("ip", "-n", ns, "addr", "add", PEER_HUB + "/30", "dev", "b0")
        run("ip", "-n", feed_ns, "addr", "add", PEER_FEED + "/30", "dev", "b1")
        for a in ("192.0.2.253/24", "10.255.0.253/24"):
            run("ip", "-n", feed_ns, "addr", "add", a, "dev", "b1")
        for n, dev in ((ns, "b0"), (feed_ns, "b1"), (feed_ns, "lo")):
            run("ip", "-n", n, "link", "set", dev, "up")
        table = run(PUSH, "--print", str(count), GATEWAYS).stdout
        with open(os.path.join(work, "bird.conf"), "w") as f:
            f.write(BIRD_CONF.format(feed=PEER_FEED, hub=PEER_HUB, routes=re.sub(
                r"ip route (\S+) (\S+)", r"  route \1 via \2;", table)))
        for name, text in (("zebra.conf", ""),
                           ("bgpd.conf", BGPD_CONF.format(hub=PEER_HUB, feed=PEER_FEED))):
            with open(os.path.join(work, name), "w") as f:
                f.write(text)
            shutil.chown(os.path.join(work, name), "frr", "frr")
        common = ["-z", f"{work}/zserv.api", "--vty_socket", work, "-u", "frr", "-g", "frr"]
        run("ip", "netns", "exec", ns, f"{FRR}/zebra", "-d", "-f", f"{work}/zebra.conf", "-i",
            f"{work}/zebra.pid", *common)
        run("ip", "netns", "exec", ns, f"{FRR}/bgpd", "-d", "-f", f"{work}/bgpd.conf", "-i",
            f"{work}/bgpd.pid", *common)

        def peer_state():
            try:
                r = subprocess.run(["vtysh", "--vty_socket", work, "-d", "bgpd", "-c",
                                    "show bgp ipv4 unicast summary json"], capture_output=True,
                                   text=True, check=False, timeout=60)
                return json.loads(r.stdout)["peers"][PEER_FEED]
            except (subprocess.TimeoutExpired, ValueError, KeyError, TypeError):
                return None

        if not wait_for(peer_state, 60):
            sys.exit("routes bench: the peer's bgpd did not answer")
        # Their pids, for their CPU time.
        if not wait_for(lambda: pid_of(f"{work}/zebra.pid") and pid_of(f"{work}/bgpd.pid"), 30):
            sys.exit("routes bench: the peer's zebra or bgpd wrote no pid file")
        zebra, bgpd = pid_of(f"{work}/zebra.pid"), pid_of(f"{work}/bgpd.pid")
        nl = netlink_socket(ns)
        # BIRD on this CPU too: it reads its configuration (the table), then connects.
        bird_log = open(os.path.join(d, "bird.log"), "w+")
        cpu0 = {"zebra": cpu_seconds(zebra), "bgpd": cpu_seconds(bgpd)}
        started = time.time()
        bird = subprocess.Popen(["ip", "netns", "exec", feed_ns, BIRD, "-f", "-c",
                                 os.path.join(work, "bird.conf"), "-s",
                                 os.path.join(work, "bird.ctl")], stdout=bird_log,
                                stderr=subprocess.STDOUT)

        def established():
            if bird.poll() is not None:
                return "bird exited"
            p = peer_state() or {}
            if p.get("state") != "Established":
                return None
            # When it came up, by bgpd's own clock (this poll may see it late: bgpd answers
            # between reading updates).
            return time.time() - p.get("peerUptimeMsec", 0) / 1000

        established = wait_for(established, 300, step=0.1)
        if not isinstance(established, float):
            bird_log.seek(0)
            sys.exit("routes bench: BIRD's session to the peer's bgpd did not come up:\n" +
                     bird_log.read()[-2000:])
        # Polled: bgpd's PfxRcd until it has the whole table, the kernel's count by a netlink
        # dump. A dump walks every route (1-2 s of this CPU near 1M on this VM): between dumps
        # this waits four times as long as the last one took, so that polling takes at most a
        # fifth of the CPU the peer runs on (`peer_dump_seconds` says how long the dumps took;
        # `peer_vtysh_seconds`, the PfxRcd polls, mostly waiting for bgpd to answer), but no
        # longer than the rate so far says the rest needs, so that the end is seen soon after
        # it comes (`peer_end_within_s`: the gap before the dump that saw it).
        installed, received, received_at, samples, cpu_rcvd = 0, 0, None, [], None
        deadline, done, prev, gap = established + limit, False, None, None
        dump_seconds, vtysh_seconds = 0.0, 0.0
        while time.time() < deadline:
            t = time.time()
            if received_at is None:
                received = (peer_state() or {}).get("pfxRcd", received)
                if received >= count:
                    received_at = time.time()
                    cpu_rcvd = {"zebra": cpu_seconds(zebra), "bgpd": cpu_seconds(bgpd)}
            d0 = time.time()
            installed = kernel_routes(nl, RTPROT_BGP)
            end = time.time()
            vtysh_seconds += d0 - t
            dump_seconds += end - d0
            samples.append([round(d0 - established, 1), received, installed])
            if installed >= expected:
                done, gap = True, (end - prev[2] if prev else None)
                break
            wait = max(1.0, 4 * (end - d0))
            if prev and installed > prev[1]:
                rate = (installed - prev[1]) / (d0 - prev[0])
                wait = min(wait, max(0.2, (expected - installed) / rate - (end - d0)))
            prev = (d0, installed, end)
            time.sleep(wait)
        end = end if done else time.time()
        cpu1 = {"zebra": cpu_seconds(zebra), "bgpd": cpu_seconds(bgpd)}
        return {"peer_seconds": round(end - established, 3),
                "peer_routes": installed,
                "peer_complete": bool(done),
                "peer_expected": expected,
                # bgpd alone: from the session's start until it counted the whole table
                # received (zebra installs while it receives).
                "peer_bgp_received": received,
                "peer_bgp_receive_seconds":
                round(received_at - established, 3) if received_at else None,
                # BIRD reading its configuration (the table) and opening the session: not timed.
                "peer_feed_start_seconds": round(established - started, 3),
                "peer_zebra_cpu_seconds": round(cpu1["zebra"] - cpu0["zebra"], 2),
                "peer_bgpd_cpu_seconds": round(cpu1["bgpd"] - cpu0["bgpd"], 2),
                # The same until bgpd had the whole table.
                "peer_zebra_cpu_seconds_receiving":
                round(cpu_rcvd["zebra"] - cpu0["zebra"], 2) if cpu_rcvd else None,
                "peer_bgpd_cpu_seconds_receiving":
                round(cpu_rcvd["bgpd"] - cpu0["bgpd"], 2) if cpu_rcvd else None,
                # [seconds since the session came up, bgpd's PfxRcd, routes in the kernel]
                "peer_dump_seconds": round(dump_seconds, 2),
                "peer_vtysh_seconds": round(vtysh_seconds, 2),
                "peer_end_within_s": round(gap, 3) if gap is not None else None,
                "peer_progress": thin(samples, 40)}
    finally:
        if nl is not None:
            nl.close()
        if bird is not None:
            bird.kill()
            bird.wait(timeout=30)
        kill_started_in(work)
        run("ip", "netns", "del", feed_ns, check=False)


def kill_started_in(work):
    """Kills the FRR daemons this run started: those whose command line names its directory
    (whether or not they have written a pid file yet)."""
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
    # What the kernel took (the peer is expected to install as many).
    nl = netlink_socket(ns)
    try:
        taken = kernel_routes(nl, RTPROT_BOOT)
    finally:
        nl.close()
    subprocess.run(["ip", "-n", ns, "route", "flush", "proto", "boot"], check=False,
                   capture_output=True)
    return round(seconds, 3), taken


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--routes", type=int)
    ap.add_argument("--peer-limit", type=int,
                    help="seconds the peer may take from its session's start (default 300)")
    ap.add_argument("--out", default=os.path.join(SOURCE, "bench", "results", "routes.json"))
    ap.add_argument("--isolate-worker-cpu", action="store_true",
                    help="move every other task of the machine to CPU %d for the run (cgroup v1 "
                         "cpuset), so the worker's CPU runs it alone; moved back afterwards"
                         % OTHER_CPU)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root (network namespaces)")
        sys.exit(77)
    for path in (HUB, CTL, PUSH):
        if not os.path.exists(path):
            sys.exit("routes bench: %s is not built" % path)
    if os.cpu_count() < 2:
        sys.exit("routes bench: needs two CPUs (the worker's and the rest's)")
    # This script and all it starts but the hub's worker lcore: on the other CPU.
    try:
        os.sched_setaffinity(0, {OTHER_CPU})
    except OSError as e:
        # Another bench holds that CPU in a cpuset of its own (bench/cpuset.py): run where we
        # may; the figures say so through the worker's CPU share.
        print("routes bench: CPU %d not ours now (%s): not pinned" % (OTHER_CPU, e), flush=True)
    count = args.routes or (50000 if args.quick else 1000000)
    limit = args.peer_limit or (60 if args.quick else 300)
    d = tempfile.mkdtemp(prefix="benchroutes-")
    os.chmod(d, 0o755)
    ns = "dmvpn-benchroutes%d" % os.getpid()
    run("ip", "netns", "del", ns, check=False)
    run("ip", "netns", "add", ns)
    isolated = None
    try:
        if args.isolate_worker_cpu:
            isolated = cpuset.isolate(OTHER_CPU, "the worker's CPU")
        run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", ns, "link", "add", "k0", "type", "veth", "peer", "name", "k1")
        for dev in ("k0", "k1"):
            run("ip", "-n", ns, "link", "set", dev, "up")
        for a in ("192.0.2.254/24", "10.255.0.254/24"):
            run("ip", "-n", ns, "addr", "add", a, "dev", "k0")
        captures(d)
        hub = hub_run(ns, d, count)
        kernel_seconds, kernel_taken = kernel_run(ns, count)
        print("kernel (ip -batch):", kernel_seconds, "s,", kernel_taken, "routes", flush=True)
        peer = {"peer_seconds": None, "peer_routes": 0, "peer_complete": False}
        if all(os.path.exists(p) for p in (f"{FRR}/zebra", f"{FRR}/bgpd", BIRD)):
            peer = peer_run(ns, d, count, kernel_taken, limit)
            print("peer:", json.dumps({k: v for k, v in peer.items() if k != "peer_progress"}),
                  flush=True)
        else:
            print("peer: skipped, Debian's frr or bird2 is not installed (scripts/setup)")
        row = {
            "case": "fpm-%s-mixed" % ("%dk" % (count // 1000) if count < 1000000 else
                                      "%gM" % (count / 1e6)),
            "routes": count,
            "seconds": hub["seconds"],
            "routes_per_s": round(count / hub["seconds"]),
            "worker_loss": hub["worker_loss"],
            "peer": "FRR 8.4 bgpd + zebra into the Linux kernel, the same table over eBGP "
                    "from BIRD 2.0",
            **peer,
            "kernel_batch_seconds": kernel_seconds,
            "kernel_batch_routes": kernel_taken,
            "worker_cpu_isolated": isolated,
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
        if isolated is not None:
            cpuset.release()
        run("ip", "netns", "del", ns, check=False)
        shutil.rmtree(d, ignore_errors=True)


main()
