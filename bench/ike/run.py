#!/usr/bin/env python3
"""`bench/run ike`: IKEv2 handshakes per second on one IKE core, the hub against strongSwan, and
10,000 spokes keyed from a cold start, in one run.

The initiator is always the spoke emulator (dmvpn-spokesim --ike), which keys every spoke with
IKE_SA_INIT + IKE_AUTH (the first CHILD_SA inside it) at a paced rate and reports each
handshake's time from its first IKE_SA_INIT to the authenticated IKE_AUTH response.

  hub   dmvpn-hub over net_memif (as tests/e2e), its `ike:` profile with the case's proposals;
        the IKE thread (`dmvpn-ike`) pinned to --core with taskset.
  peer  Debian's charon-systemd in a network namespace, pinned to the same core (every thread),
        the same proposals, answering the emulator on a net_tap port whose kernel side is in
        that namespace. This host's kernel has no ESP (no XFRM): charon negotiates and keys the
        CHILD_SA, fails to install it in the kernel and answers IKE_AUTH with its IKE SA up and
        NO_PROPOSAL_CHOSEN for the child. It so does all of a full handshake's work but the
        kernel install (neither kernel-libipsec, which only does tunnel mode, nor childless
        IKE SAs, which our emulator does not initiate, would be closer).

IKEv1 (cases v1-*): the emulator initiates with --ike v1 (Main Mode with the pre-shared key,
then Quick Mode for GRE in transport mode, no PFS) and --isakmp-policy / --esp-proposal naming
the case's ISAKMP policy and transform set; the hub's profile says `version: 1` with the same
`isakmp-policies` entry and `esp-proposals`, charon's connection `version = 1` with the same
proposals. A handshake there is Main Mode + Quick Mode, done when the emulator's CHILD_SA with
the responder is installed (QM2 taken, QM3 sent). charon answers all of it: Main Mode, QM2
(SPIs allocated), then on QM3 its kernel install fails (no ESP in this kernel's XFRM) and it
sends an INFORMATIONAL DELETE for the ESP SA, its ISAKMP SA staying up; that failed install
and the DELETE are in its CPU figure, the hub's install into its workers' tables is not in its
IKE thread's (the control lcore does it).

Rates are handshakes per CPU second of the responder's IKE core (the hub's IKE thread; all of
charon's threads), read from /proc/PID/task/TID/schedstat over the run, so that what else runs
on a shared machine does not count against either; each row also carries the wall-clock rate.

The cold start: 10,000 spokes (PSK, Curve25519) initiated at --storm-rate against a fresh hub;
seconds from the first IKE_SA_INIT to the last IKE SA up (the emulator's clock), the IKE
thread's CPU seconds for it, and NHRP meanwhile: the Registration -> Reply times the emulator
measured (each spoke registers as soon as its CHILD_SA is in, while the later spokes still
handshake), p50 / p99, beside the control lcore's busy-pass p99 / p99.9 (`show stats`) and
the hub's own NHRP service time (`show stats` nhrp_service: each NHRP packet from its worker's
RX burst to its reply handed to TX). --storm-control-alone adds a second cold start with the
emulator moved beside the IKE thread, the control lcore alone on its CPU (STORM_LAYOUTS).

Writes a table to stdout and the rows to bench/results/ike.json (or --out).
"""

import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(os.environ.get("DMVPN_BENCH_BUILD") or os.environ.get("DMVPN_BUILD") or
                        os.path.join(ROOT, "build-bench"))
os.environ["DMVPN_BUILD"] = BUILD
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
import e2e  # noqa: E402  (the hub over memif and the emulator runner of tests/e2e)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cpuset  # noqa: E402  (bench/cpuset.py: --isolate-control-cpu)
from hugepages import ensure_hugepages  # noqa: E402  (bench/hugepages.py)
import strongswan as ss  # noqa: E402  (charon in a namespace, swanctl, test CAs)

# e2e's hub keeps 8,192 NHRP entries; the cold start registers 10,000 spokes after keying.
e2e.CONFIG = e2e.CONFIG.replace("max-cache-entries: 8192", "max-cache-entries: 65536")

PSK = "bench-cloud-key-shared-by-all-spokes"
SPOKE_ID = "spokes.bench.test"
HUB_NBMA = "100.64.0.1"
IKE_PROPOSAL = "aes128gcm16-prfsha256-x25519"
ESP_PROPOSAL = "aes128gcm16"
# case: (authentication, certificate key type, spokes, offered rate /s) for a full run
# Offered below what this 2-CPU machine carries end to end (the emulator's initiator does as
# much cryptography as the responder): beyond it queues build, IKE retransmits and the run
# measures congestion, not handshakes.
CASES = {"psk-x25519": ("psk", None, 1000, 100),
         "ecdsa-p256": ("cert", "ecdsa", 500, 50),
         "rsa-2048": ("cert", "rsa", 250, 25),
         "v1-psk-modp2048": ("psk", None, 500, 50),
         "v1-psk-modp1024": ("psk", None, 1000, 100)}
# IKEv1 cases (Main Mode + Quick Mode, pre-shared key): the ISAKMP policy and the transform set,
# written as strongSwan writes IKEv1 proposals (the emulator's --isakmp-policy takes the same).
# Group 14 with AES-256/SHA-256, and the seeds' group 2 (IOS `group 2`, AES-128/SHA-1).
V1_CASES = {"v1-psk-modp2048": ("aes256-sha256-modp2048", "aes256-sha256"),
            "v1-psk-modp1024": ("aes128-sha1-modp1024", "aes128-sha1")}
# The hub's `isakmp-policies` entry for each (encryption, hash, group).
V1_HUB_POLICY = {"aes256-sha256-modp2048": ("aes 256", "sha256", 14),
                 "aes128-sha1-modp1024": ("aes", "sha", 2)}
QUICK_SPOKES, QUICK_RATE = 20, 50


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def cpu_ns(pid, tid=None, field=0):
    """CPU time (ns) of one thread of pid, or of all of them; field=1: their time runnable but
    waiting for a CPU instead (schedstat's run-queue wait)."""
    paths = ["/proc/%d/task/%d/schedstat" % (pid, tid)] if tid else \
        glob.glob("/proc/%d/task/*/schedstat" % pid)
    total = 0
    for p in paths:
        try:
            with open(p) as f:
                total += int(f.read().split()[field])
        except OSError:
            pass
    return total


def thread_named(pid, name, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        for comm in glob.glob("/proc/%d/task/*/comm" % pid):
            try:
                with open(comm) as f:
                    if f.read().strip() == name:
                        return int(comm.split("/")[4])
            except OSError:
                pass
        time.sleep(0.1)
    raise SystemExit("no thread %s in process %d" % (name, pid))


def pin(pid_or_tid, core, all_threads=False):
    subprocess.run(["taskset", "-p"] + (["-a"] if all_threads else []) +
                   ["-c", str(core), str(pid_or_tid)], check=True, capture_output=True)


# --- certificates ---------------------------------------------------------------------------

def make_certs(d, kind):
    """A CA and two end entities (the responder naming HUB_NBMA, the spokes' shared one naming
    SPOKE_ID) made with strongSwan's pki (RSA-2048 or ECDSA P-256), laid out for the emulator's
    --ike cert:DIR (ca.pem, spoke.pem, spoke.key) and the responders (hub.pem, hub.key)."""
    made = ss.make_ca(os.path.join(d, "pki"), kind=kind, names=(HUB_NBMA, SPOKE_ID))
    shutil.copy(made["ca"], os.path.join(d, "ca.pem"))
    for stem, name in (("hub", HUB_NBMA), ("spoke", SPOKE_ID)):
        shutil.copy(made[name][0], os.path.join(d, stem + ".pem"))
        shutil.copy(made[name][1], os.path.join(d, stem + ".key"))
        os.chmod(os.path.join(d, stem + ".key"), 0o600)


def sim_auth(auth, certdir):
    if auth == "psk":
        return ["--ike", "psk:" + PSK]
    return ["--ike", "cert:" + certdir, "--ike-id", SPOKE_ID]


def sim_load(n, rate, wait, case=None):
    """The emulator's IKE load: n spokes initiated at `rate` a second, the case's proposals, no
    data; registrations (after keying, inside the SAs) fast enough not to stretch the run;
    keying and registering end by `wait` seconds after the start."""
    if case in V1_CASES:
        policy, esp = V1_CASES[case]
        props = ["--ike", "v1", "--isakmp-policy", policy, "--esp-proposal", esp]
    else:
        props = ["--ike-proposal", IKE_PROPOSAL, "--esp-proposal", ESP_PROPOSAL]
    return ["--spokes", n, "--register-wait", "%.1f" % wait, "--gre-key", 100, "--auth", "e2e",
            "--ike-rate", rate] + props + ["--ike-retry", 3600, "--reg-rate", 5000, "--rate", 0,
                                           "--duration", 0.1, "--drain", 0]


# --- the hub --------------------------------------------------------------------------------

def hub_profile(auth, certdir, case=None):
    lines = ["ipsec-profiles:", "  - name: spokesim", "    ike:"]
    if case in V1_CASES:
        policy, esp = V1_CASES[case]
        enc, hsh, grp = V1_HUB_POLICY[policy]
        lines += ["      version: 1", "      authentication: psk", "      psk: %s" % PSK,
                  "      isakmp-policies:",
                  "        - {encryption: %s, hash: %s, group: %d}" % (enc, hsh, grp),
                  "      esp-proposals: [%s]" % esp, "      dpd-interval: 0"]
        return "\n".join(lines) + "\n"
    if auth == "psk":
        lines += ["      authentication: psk", "      psk: %s" % PSK]
    else:
        lines += ["      authentication: certificate",
                  "      certificate: %s/hub.pem" % certdir,
                  "      private-key: %s/hub.key" % certdir,
                  "      ca: [%s/ca.pem]" % certdir]
    # charon's settings below match: no cookies below 100,000 half-open SAs, no DPD.
    lines += ["      proposals: [%s]" % IKE_PROPOSAL, "      esp-proposals: [%s]" % ESP_PROPOSAL,
              "      cookie-threshold: 100000", "      dpd-interval: 0"]
    return "\n".join(lines) + "\n"


# The workers' budget for IKE punts (default 5,000 packets/s hub-wide) would cap a storm at
# 2,500 handshakes a second: sized for the bench as a deployment expecting one would size it.
HUB_EXTRA = "  punt-rates: {ike: 100000}\n"
# The hub's EAL arguments: 1 GiB of 2 MiB hugepages taken at start, as deployed (main() sets it
# unless --quick or --no-hugepages). With --no-huge (e2e's default) that memory is anonymous
# and each page faults on its first use: a storm measured those faults at 56 ms of the control
# lcore's time (DPDK's heap taking fresh pages for SAs and adjacencies), each a stall of
# microseconds on the NHRP packets behind it, which a hugepage deployment does not have.
HUB_EAL = None
HUGE_EAL = ["--in-memory", "-m", "1024", "--no-pci", "--no-telemetry"]


def perf_top(data, lines=15):
    """Self time of a perf.data file by library, then its hottest symbols."""
    out = []
    for sort, n in (("dso", 8), ("dso,symbol", lines)):
        r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-g",
                            "none", "--percent-limit", "0.5", "--sort", sort],
                           capture_output=True, text=True)
        out += [" ".join(l.split()) for l in r.stdout.splitlines()
                if l.strip() and not l.startswith("#")][:n]
    return out


def hub_case(d, auth, certdir, n, rate, core, watch=None, profile=None, case=None,
             hub_extra=HUB_EXTRA, sim_extra=()):
    """Runs the emulator against a fresh hub; returns (emulator report, IKE thread CPU s,
    {'loop': ...} from show stats at the end of keying when `watch`). With `profile` (a path),
    perf samples the IKE thread meanwhile (and the control lcore, into `profile`.control) and
    their hottest symbols are printed."""
    h = e2e.hub(d, n, profiles=hub_profile(auth, certdir, case), hub_extra=hub_extra,
                eal_args=HUB_EAL)
    try:
        tid = thread_named(h.proc.pid, "dmvpn-ike")
        pin(tid, core)
        seen = {}
        stop = threading.Event()

        def poll():
            # The control loop's pass times once every spoke's CHILD_SA is in (the storm over,
            # the registrations not started), read every 5 s with `show stats summary`: plain
            # `show stats` lists every SA, an O(SAs) rendering on the control lcore that would
            # weigh on the NHRP figures it is there to explain (10,000 pairs: megabytes of
            # JSON). A reply cut short (dmvpnctl's 10 s) is skipped.
            while not stop.wait(5.0):
                try:
                    st = h.json("show", "stats", "summary")
                except (SystemExit, ValueError):
                    continue
                if st["control"]["ike_child_installs"] >= n:
                    seen.update(st)
                    return

        watcher = threading.Thread(target=poll) if watch else None
        perfs = []
        if profile:
            # The IKE thread, and the control lcore (the main thread) into PROFILE.control.
            for t, out in ((tid, profile), (h.proc.pid, profile + ".control")):
                perfs.append(subprocess.Popen(["perf", "record", "-q", "-g", "-t", str(t), "-o",
                                               out], stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL))
        t0 = cpu_ns(h.proc.pid, tid)
        c0 = cpu_ns(h.proc.pid, h.proc.pid)  # the main thread: the control lcore
        q0 = cpu_ns(h.proc.pid, h.proc.pid, 1)
        # The time the IKE thread and the worker lcore spent runnable but waiting for a CPU:
        # on this 2-CPU machine they share one with the emulator (and everything else).
        try:
            worker = thread_named(h.proc.pid, "rte-worker-1", timeout=2)
        except SystemExit:  # another EAL's thread name: the worker's wait is not reported
            worker = None
        i0 = cpu_ns(h.proc.pid, tid, 1)
        w0 = cpu_ns(h.proc.pid, worker, 1) if worker else 0
        if watcher:
            watcher.start()
        wait = 60 + 2 * n / rate
        rc, r = e2e.spokesim(d, *sim_load(n, rate, wait, case), *sim_auth(auth, certdir),
                             *sim_extra, timeout=wait + 120)
        cpu = (cpu_ns(h.proc.pid, tid) - t0) / 1e9
        control_cpu = (cpu_ns(h.proc.pid, h.proc.pid) - c0) / 1e9
        control_wait = (cpu_ns(h.proc.pid, h.proc.pid, 1) - q0) / 1e9
        ike_wait = (cpu_ns(h.proc.pid, tid, 1) - i0) / 1e9
        worker_wait = (cpu_ns(h.proc.pid, worker, 1) - w0) / 1e9 if worker else None
        for perf in perfs:
            perf.send_signal(signal.SIGINT)
            perf.wait(timeout=60)
        if perfs:
            log("perf, the IKE thread (self time):\n  " + "\n  ".join(perf_top(profile)))
            log("perf, the control lcore (self time):\n  " +
                "\n  ".join(perf_top(profile + ".control")))
        stop.set()
        if watcher:
            watcher.join()
        end = {}
        for _ in range(3):
            try:
                end = h.json("show", "stats", "summary")
                break
            except (SystemExit, ValueError) as e:
                log("show stats at the end: %s" % str(e)[:200])
        return r, cpu, {"at_keyed": seen.get("control_loop"), "at_end": end.get("control_loop"),
                        "nhrp_service": end.get("nhrp_service") or {},
                        "pass_profile": end.get("pass_profile") or {},
                        "control": end.get("control", seen.get("control", {})),
                        "control_cpu_s": control_cpu, "control_wait_s": control_wait,
                        "ike_wait_s": ike_wait, "worker_wait_s": worker_wait}
    finally:
        h.stop()


# --- the peer: charon -----------------------------------------------------------------------

CHARON_SETTINGS = """  # bench/ike: the large-deployment settings strongSwan documents, so that the peer is not
  # held back by its defaults (one hash row for all IKE SAs, cookies from 10 half-open SAs)
  ikesa_table_size = 4096
  ikesa_table_segments = 16
  cookie_threshold = 100000
  block_threshold = 100000
  init_limit_half_open = 0
"""
TAP_KERNEL_MAC = "02:00:00:00:64:fe"


def charon_case(d, tag, auth, certdir, n, rate, core, sim_core, case=None):
    """The emulator against charon-systemd; returns (emulator report, charon CPU s)."""
    ns = ss.Netns("%s-ns" % tag)
    charon = None
    proc = None
    try:
        # A neighbour per spoke on the namespace's side.
        for knob in ("gc_thresh1", "gc_thresh2", "gc_thresh3"):
            ns.run("sysctl", "-qw", "net.ipv4.neigh.default.%s=%d" % (knob, 4 * n + 1024),
                   check=False)
        charon = ss.Charon(ns, os.path.join(d, "charon"),
                           log_levels={k: 0 for k in ss.Charon.LOG_LEVELS},
                           settings=CHARON_SETTINGS)
        charon.start()
        pin(charon.proc.pid, core, all_threads=True)
        if case in V1_CASES:
            policy, esp = V1_CASES[case]
            conn = ss.Conn(local_addr=HUB_NBMA, remote_addr="%any", psk=PSK, remote_id="%any",
                           proposals=policy, esp_proposals=esp, version=1,
                           fragmentation="no")
        elif auth == "psk":
            conn = ss.Conn(local_addr=HUB_NBMA, remote_addr="%any", psk=PSK, remote_id="%any",
                           proposals=IKE_PROPOSAL, esp_proposals=ESP_PROPOSAL,
                           fragmentation="no")
        else:
            conn = ss.Conn(local_addr=HUB_NBMA, remote_addr="%any", auth="pubkey",
                           local_id=HUB_NBMA, remote_id="%any",
                           cert=os.path.join(certdir, "hub.pem"),
                           key=os.path.join(certdir, "hub.key"),
                           cacert=os.path.join(certdir, "ca.pem"), proposals=IKE_PROPOSAL,
                           esp_proposals=ESP_PROPOSAL, fragmentation="no")
        charon.load(conn)
        iface = "%st" % tag
        wait = n / rate + 10
        cmd = ["ip", "netns", "exec", ns.name, e2e.SIM, "--vdev", "net_tap0,iface=%s" % iface,
               "--queues", "1", "--tunnel-prefix", "10.0.0.0/16", "--no-progress", "--eal",
               "-l %d --no-huge -m 512 --no-pci --no-telemetry --file-prefix %s-sim" %
               (sim_core, tag)] + [str(a) for a in sim_load(n, rate, wait, case)] + sim_auth(auth, certdir)
        out_path = os.path.join(d, "peer-sim.out")
        with open(out_path, "w") as out, open(os.path.join(d, "peer-sim.err"), "w") as err:
            proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        end = time.time() + 30
        while subprocess.run(["ip", "-n", ns.name, "link", "show", iface],
                             capture_output=True).returncode != 0:
            if time.time() > end or proc.poll() is not None:
                raise SystemExit("the emulator's TAP %s did not appear" % iface)
            time.sleep(0.1)
        ss.sh("ip", "-n", ns.name, "link", "set", iface, "address", TAP_KERNEL_MAC)
        ss.sh("ip", "-n", ns.name, "addr", "add", HUB_NBMA + "/10", "dev", iface)
        t0 = cpu_ns(charon.proc.pid)
        ss.sh("ip", "-n", ns.name, "link", "set", iface, "up")
        try:
            proc.wait(timeout=wait + 120)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        cpu = (cpu_ns(charon.proc.pid) - t0) / 1e9
        with open(out_path) as f:
            lines = [l for l in f.read().splitlines() if l.startswith("{")]
        if not lines:
            with open(os.path.join(d, "peer-sim.err")) as f:
                log(f.read()[-3000:])
            raise SystemExit("the emulator gave no report against charon")
        return json.loads(lines[-1]), cpu
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if charon is not None:
            charon.stop()
        ns.delete()
        shutil.rmtree("/var/run/dpdk/%s-sim" % tag, ignore_errors=True)


# --- the run --------------------------------------------------------------------------------

def crypto_ceiling(core, seconds=2):
    """OpenSSL's own X25519 and HMAC-SHA256 rates on `core` (`openssl speed`, the library the
    hub links): what a PSK Curve25519 responder handshake cannot beat on one core. The
    responder's handshake needs two X25519 scalar multiplications (its key pair and the shared
    secret) and a few dozen HMAC-SHA256 blocks (SKEYSEED, prf+ for SK_* and KEYMAT, AUTH)."""
    def speed(*what):
        p = subprocess.run(["taskset", "-c", str(core), "openssl", "speed", "-seconds",
                            str(seconds)] + list(what), capture_output=True, text=True,
                           timeout=120)
        return p.stdout.splitlines()
    ecdh = None
    for line in speed("ecdhx25519"):
        if "X25519" in line:
            ecdh = float(line.split()[-1])
    hmac_64 = None  # HMAC-SHA256 over 64-byte inputs, per second
    lines = speed("-hmac", "sha256")
    for line in lines:
        f = line.split()
        if f and f[0].lower().startswith("hmac") and len(f) >= 3:
            hmac_64 = float(f[2].rstrip("k")) * 1000 / 64
    if ecdh is None:
        return None
    # 2 scalar multiplications and ~40 64-byte HMACs a handshake (an estimate, stated as such).
    per_hs = 2 / ecdh + (40 / hmac_64 if hmac_64 else 0)
    return {"case": "crypto-ceiling-psk-x25519", "sas": None, "cores": 1,
            "handshakes_per_s": round(1 / per_hs, 1), "p50_ms": None, "p99_ms": None,
            "peer": None, "peer_handshakes_per_s": None,
            "ecdh_x25519_per_s": ecdh, "hmac_sha256_64b_per_s": hmac_64 and round(hmac_64),
            "what": "OpenSSL alone on the IKE core (openssl speed, pinned): 1 / (2 X25519 "
                    "scalar multiplications + ~40 64-byte HMAC-SHA256) per responder handshake; "
                    "AES-GCM of the two SK messages and the parsing are left out, so the true "
                    "ceiling is a little lower"}


PEER_V2 = ("CHILD_SA keyed, kernel install fails (no XFRM here): NO_PROPOSAL_CHOSEN for the "
           "child, IKE SA up")
PEER_V1 = ("IKEv1: Main Mode, then Quick Mode answered (QM2, SPIs allocated) and QM3 taken; "
           "the kernel install of the SA pair then fails (no ESP in this kernel's XFRM) and it "
           "sends an INFORMATIONAL DELETE for the ESP SA, its ISAKMP SA staying up")
V1_WHAT = ("IKEv1 handshake = Main Mode (6 messages, PSK) + Quick Mode (3 messages, transport "
           "mode GRE, no PFS), counted when the emulator's CHILD_SA with the responder is "
           "installed (QM2 taken, QM3 sent); rates per CPU second of the responder's IKE core "
           "over the whole run (so charon's QM3, failed install and DELETE are in its CPU)")


def handshakes(r, v1):
    """(completed, p50 ms, p99 ms, wall seconds) from an emulator report: IKEv2 the IKE SAs up
    (the first CHILD_SA inside IKE_AUTH); IKEv1 Main Mode + Quick Mode, to the CHILD_SA in."""
    if v1:
        return (r["ike_childs_timed"], r["ike_child_p50_ms"], r["ike_child_p99_ms"],
                r["ike_child_keying_s"])
    return (r["ike_handshakes"], r["ike_handshake_p50_ms"], r["ike_handshake_p99_ms"],
            r["ike_keying_s"])


def per_s(count, seconds):
    return round(count / seconds, 1) if seconds > 0 else None


def storm_rows(a, d, storm, detail):
    """OpenSSL's ceiling on the IKE core, then the cold start and NHRP meanwhile: their rows."""
    rows = []
    ceiling = crypto_ceiling(a.core, 1 if a.quick else 3)
    if ceiling:
        rows.append(ceiling)
        log("row: " + json.dumps(ceiling))
    for layout in ["shared"] + (["control-alone"] if a.storm_control_alone else []):
        rows += storm_layout_rows(a, d, storm, detail, layout)
    return rows


# Where each thread runs in a storm (the hub's e2e configuration: control lcore on CPU 0, its
# one worker lcore on CPU 1; the IKE thread pinned to --core, 1 by default).
# show stats nhrp_service's dequeued_with_<bucket>: NHRP packets by their dequeue's NHRP count.
DEQUEUE_BUCKETS = ["1", "2_3", "4_7", "8_15", "16_31", "32_up"]
# The segments of NHRP's time inside the hub (show stats nhrp_service), in order: they add up
# to the RX burst -> TX figure.
NHRP_SEGMENTS = {
    "worker": "RX burst -> punt ring",
    "ring": "punt ring -> dequeue",
    "burst": "NHRP punts dequeued ahead",
    "handling": "taken -> reply to TX",
}

STORM_LAYOUTS = {
    "shared": "CPU 0: the hub's control lcore and the emulator; CPU 1: the hub's worker lcore "
              "and its IKE thread (--core)",
    "control-alone": "CPU 0: the hub's control lcore alone (of this bench's threads); CPU 1: "
                     "the hub's worker lcore, its IKE thread and the emulator",
}


def storm_layout_rows(a, d, storm, detail, layout):
    """The cold start and NHRP meanwhile with the threads placed as `layout` says: two rows
    (their case names suffixed with the layout unless it is the default one)."""
    rows = []
    suffix = "" if layout == "shared" else "-" + layout
    cd = os.path.join(d, "storm" + suffix)
    os.makedirs(cd)
    log("cold start (%s): hub, %d spokes initiated at %s/s" % (layout, storm, a.storm_rate))
    e2e.SIM_LCORE = a.core if layout == "control-alone" else a.sim_core
    # With a CPU of its own the control lcore may poll without its idle nap, as deployed
    # (hub.control-idle-nap-us: 0); elsewhere it keeps the default nap.
    nap_us = 0 if layout == "control-alone" and a.control_busy_poll else 100
    # --isolate-control-cpu: in that layout every other task of the machine, this script and
    # what it starts but the hub's control lcore (EAL pins it to CPU 0) go to the IKE core's CPU.
    isolated, affinity = None, os.sched_getaffinity(0)
    try:
        if layout == "control-alone" and a.isolate_control_cpu:
            os.sched_setaffinity(0, {a.core})
            isolated = cpuset.isolate(a.core, "the control lcore's CPU")
        r, cpu, loops = hub_case(cd, "psk", None, storm, a.storm_rate, a.core, watch=True,
                                 profile=a.profile and os.path.join(a.profile,
                                                                    "storm%s.data" % suffix),
                                 sim_extra=["--reg-jitter", a.reg_jitter] if a.reg_jitter
                                 else [],
                                 hub_extra=HUB_EXTRA + "  control-idle-nap-us: %d\n" % nap_us +
                                 ("  worker-idle-sleep-us: %d\n" % a.worker_idle_sleep_us
                                  if layout == "control-alone" and a.worker_idle_sleep_us
                                  else "") +
                                 ("  log-level: %s\n" % a.hub_log_level if a.hub_log_level
                                  else ""))
    finally:
        e2e.SIM_LCORE = a.sim_core
        if isolated is not None:
            cpuset.release()
        os.sched_setaffinity(0, affinity)
    detail["storm" + suffix] = {"hub": r, "loops": loops}
    # Where the control lcore's busy passes went (show stats: pass_profile), costliest first.
    prof = sorted(loops["pass_profile"].items(), key=lambda kv: -kv[1]["total_us"])
    if prof:
        log("control lcore, where the busy passes went (%s): item count total_ms p50/p99/p99.9/max"
            " us, how many took 10 us or more, 50 us or more\n  " % layout + "\n  ".join(
                "%-18s %8d %9.1f %7.1f %7.1f %7.1f %8.1f %7s %6s" % (
                    k, v["count"], v["total_us"] / 1000, v["p50_ns"] / 1000, v["p99_ns"] / 1000,
                    v["p999_ns"] / 1000, v["max_ns"] / 1000, v.get("from_10us", ""),
                    v.get("from_50us", "")) for k, v in prof))
    keyed_ok = r["keyed"] == storm and r["ike_handshakes"] == storm
    rows.append({"case": "cold-start-psk-x25519" + suffix, "sas": r["ike_handshakes"],
                 "cores": 1, "layout": STORM_LAYOUTS[layout], "control_idle_nap_us": nap_us,
                 "control_cpu_isolated": isolated,
                 "seconds": r["ike_keying_s"], "target_s": 30,
                 "handshakes_per_s": per_s(r["ike_handshakes"], cpu),
                 "wall_handshakes_per_s": per_s(r["ike_handshakes"], r["ike_keying_s"]),
                 "ike_core_cpu_s": round(cpu, 3), "p50_ms": r["ike_handshake_p50_ms"],
                 "p99_ms": r["ike_handshake_p99_ms"], "offered_per_s": a.storm_rate,
                 "all_keyed": keyed_ok, "keyed": r["keyed"], "ike_failures": r["ike_failures"],
                 "ike_peer_downs": r["ike_peer_downs"],
                 "hub_ike_rx_dropped": loops["control"].get("ike_rx_dropped"),
                 "hub_child_installs": loops["control"].get("ike_child_installs"),
                 "control_lcore_cpu_s": round(loops["control_cpu_s"], 3),
                 "control_lcore_runqueue_wait_s": round(loops["control_wait_s"], 3),
                 "ike_thread_runqueue_wait_s": round(loops["ike_wait_s"], 3),
                 "worker_runqueue_wait_s": None if loops["worker_wait_s"] is None else
                 round(loops["worker_wait_s"], 3),
                 "peer": None, "peer_handshakes_per_s": None})
    loop = loops["at_keyed"] or loops["at_end"] or {}
    hub_nhrp = loops["nhrp_service"]

    def us(key):
        return None if hub_nhrp.get(key) is None else round(hub_nhrp[key] / 1000, 1)
    rows.append({"case": "nhrp-during-cold-start" + suffix, "sas": storm, "cores": 1,
                 "layout": STORM_LAYOUTS[layout], "control_idle_nap_us": nap_us,
                 "hub_log_level": a.hub_log_level or "info",
                 "control_cpu_isolated": isolated,
                 "handshakes_per_s": None,
                 "registrations": r.get("registration_rtts"),
                 "p50_us": r.get("registration_rtt_p50_us"),
                 "p99_us": r.get("registration_rtt_p99_us"),
                 "max_us": r.get("registration_rtt_max_us"),
                 "p50_ms": None if r.get("registration_rtt_p50_us") is None else
                 round(r["registration_rtt_p50_us"] / 1000, 3),
                 "p99_ms": None if r.get("registration_rtt_p99_us") is None else
                 round(r["registration_rtt_p99_us"] / 1000, 3),
                 "target_p99_us": 50, "reg_jitter_ms": a.reg_jitter,
                 "worker_idle_sleep_us": a.worker_idle_sleep_us if layout == "control-alone"
                 else 0,
                 "what": "NHRP Registration Request -> Reply as each emulated spoke saw it "
                         "(first transmission to accepted reply: ESP over memif, a worker, "
                         "the punt ring, the control lcore's handling, back): every spoke "
                         "registers as soon as its CHILD_SA is in, so all but the last "
                         "spokes' registrations ran while the later spokes' handshakes did",
                 "hub_nhrp_count": hub_nhrp.get("count"), "hub_nhrp_p50_us": us("p50_ns"),
                 "hub_nhrp_p99_us": us("p99_ns"), "hub_nhrp_p999_us": us("p999_ns"),
                 "hub_nhrp_max_us": us("max_ns"),
                 **{"hub_nhrp_%s_%s_us" % (seg, q): us("%s_%s_ns" % (seg, q))
                    for seg in NHRP_SEGMENTS for q in ("p50", "p99", "max")},
                 "hub_nhrp_after_nap": hub_nhrp.get("after_nap"),
                 "hub_nhrp_dequeued_with": {b: hub_nhrp.get("dequeued_with_" + b)
                                            for b in DEQUEUE_BUCKETS},
                 "hub_nhrp_what": "inside the hub, per NHRP packet (show stats: nhrp_service, "
                                  "read after the run): from the TSC of the worker's RX burst "
                                  "that took it to its reply handed to TX by the control lcore "
                                  "(the punt ring, the packets ahead of it in the control "
                                  "lcore's pass, its handling, the ESP path's forwarder); "
                                  "bucketed, a percentile is its bucket's top (<= 25% above); "
                                  "and its segments, which add up to it: "
                                  "hub_nhrp_worker_*: the worker's RX burst to its punt "
                                  "ring enqueue (the rest of the burst's pipeline); "
                                  "hub_nhrp_ring_*: the enqueue to the control lcore's "
                                  "dequeue (the wait for the next pass); hub_nhrp_burst_*: "
                                  "the NHRP punts dequeued with it and served before it; "
                                  "hub_nhrp_handling_*: from the control lcore taking it "
                                  "to its reply handed to TX (its own work); "
                                  "hub_nhrp_after_nap: how many were taken by the loop's "
                                  "first pass after an idle nap (100 us); "
                                  "hub_nhrp_dequeued_with: the packets by how many NHRP "
                                  "punts their dequeue held (1, 2-3, ... 32 and more)",
                 "loop_p99_us": loop.get("p99_us"), "loop_p999_us": loop.get("p999_us"),
                 "loop_max_us": loop.get("max_us"), "loop_passes": loop.get("passes"),
                 "loop_what": "control lcore busy-pass times (show stats: loop) from the "
                              "hub's start to the last CHILD_SA installed (%s)" %
                              ("read then" if loops["at_keyed"] else "read at the run's end"),
                 "peer": None, "peer_handshakes_per_s": None})
    if not keyed_ok:
        msg = "cold start: %d of %d spokes keyed" % (r["keyed"], storm)
        if a.quick:
            raise SystemExit(msg)
        log(msg)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "ike.json"))
    ap.add_argument("--quick", action="store_true",
                    help="%d spokes a case, a 200-spoke cold start: that the bench works, no "
                         "figure to quote" % QUICK_SPOKES)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--core", type=int, default=1, help="the responder's IKE core (1)")
    ap.add_argument("--sim-core", type=int, default=0, help="the emulator's lcore (0)")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--no-storm", action="store_true",
                    help="the cases alone: no crypto ceiling, no cold start")
    ap.add_argument("--merge", action="store_true",
                    help="keep the rows already in --out whose case this run does not measure "
                         "(e.g. --cases v1-psk-modp2048 --no-storm --merge)")
    ap.add_argument("--storm", type=int, default=10000, help="cold-start spokes (10000)")
    ap.add_argument("--isolate-control-cpu", action="store_true",
                    help="with --storm-control-alone: that layout's storm with every other task "
                         "of the machine moved to the IKE core's CPU (bench/cpuset.py)")
    ap.add_argument("--control-busy-poll", action="store_true",
                    help="with --storm-control-alone: that layout's control lcore polls without "
                         "its idle nap (hub.control-idle-nap-us: 0), as on a dedicated core")
    ap.add_argument("--hub-log-level", metavar="LEVEL",
                    help="the storms' hub.log-level (default: the hub's, info): warning leaves "
                         "out the hub's line per spoke registered, for figures without logging")
    ap.add_argument("--storm-control-alone", action="store_true",
                    help="a second cold start with the emulator moved to --core: the hub's "
                         "control lcore alone on its CPU (%s)" % STORM_LAYOUTS["control-alone"])
    ap.add_argument("--worker-idle-sleep-us", type=int, default=0, metavar="US",
                    help="with --storm-control-alone: that layout's hub.worker-idle-sleep-us "
                         "(0: the worker busy-polls). On a 2-CPU machine the worker shares the "
                         "IKE core's CPU with the IKE thread and the emulator: busy-polling, it "
                         "holds them in the run queue (their runnable waits are printed) and "
                         "they work in batches; sleeping when idle, it leaves them the CPU as "
                         "cores of their own would")
    ap.add_argument("--reg-jitter", type=float, default=0, metavar="MS",
                    help="the storms' spokes register a random 0..MS ms after their CHILD_SA "
                         "is up (the emulator's --reg-jitter; 0: at once, the spokes of one "
                         "batch of IKE_AUTH replies together)")
    ap.add_argument("--no-hugepages", action="store_true",
                    help="run the hub with --no-huge (e2e's setting; --quick always does): "
                         "anonymous memory whose pages fault on first use")
    ap.add_argument("--profile", metavar="DIR",
                    help="perf record the hub's IKE thread in each hub case, into DIR")
    ap.add_argument("--storm-rate", type=float, default=40,
                    help="cold-start IKE SAs initiated per second (40: what this loaded 2-CPU "
                         "machine carried up to 10,000 SAs; 120 collapsed at about 1,900)")
    a = ap.parse_args()
    if a.profile:
        os.makedirs(a.profile, exist_ok=True)
    if os.geteuid() != 0:
        print("ike bench: needs root (DPDK, network namespaces)")
        sys.exit(77)
    peer_why = None if not a.no_peer else "--no-peer"
    if peer_why is None:
        peer_why = ss.available()
    if peer_why:
        log("peer: not measured (%s)" % peer_why)
    storm = 200 if a.quick else a.storm
    global HUB_EAL
    if not a.quick and not a.no_hugepages:
        ensure_hugepages(1024, who="ike bench")
        HUB_EAL = HUGE_EAL
    log("hub EAL: %s" % " ".join(HUB_EAL or ["--no-huge", "-m", "1024"]))
    load_start = loadavg()
    rows = []
    detail = {"load_start": load_start, "cpus": os.cpu_count(), "cases": {},
              "hub_eal_args": HUB_EAL or e2e.CONFIG_EAL_ARGS}
    d = tempfile.mkdtemp(prefix="bench-ike-")
    try:
        for case in a.cases.split(","):
            auth, kind, n, rate = CASES[case]
            if a.quick:
                n, rate = QUICK_SPOKES, QUICK_RATE
            cd = os.path.join(d, case)
            os.makedirs(cd)
            certdir = None
            if kind:
                certdir = os.path.join(cd, "certs")
                os.makedirs(certdir)
                make_certs(certdir, kind)
            log("%s: hub, %d spokes at %s/s" % (case, n, rate))
            r, cpu, hub_stats = hub_case(cd, auth, certdir, n, rate, a.core,
                                 profile=a.profile and os.path.join(a.profile, case + ".data"),
                                 case=case)
            if r["keyed"] != n or r["ike_handshakes"] != n or r["ike_failures"] != 0:
                msg = "%s: the hub keyed %d of %d spokes (%d failures)" % (
                    case, r["keyed"], n, r["ike_failures"])
                if a.quick:
                    raise SystemExit(msg)
                log(msg)
            v1 = case in V1_CASES
            hs, p50, p99, wall = handshakes(r, v1)
            row = {"case": case, "sas": hs, "cores": 1, "keyed": r["keyed"],
                   "hub_ike_rx_dropped": hub_stats["control"].get("ike_rx_dropped"),
                   "handshakes_per_s": per_s(hs, cpu), "p50_ms": p50, "p99_ms": p99,
                   "peer": None, "peer_handshakes_per_s": None,
                   "wall_handshakes_per_s": per_s(hs, wall), "offered_per_s": rate,
                   "ike_core_cpu_s": round(cpu, 3),
                   "proposals": list(V1_CASES[case]) if v1 else [IKE_PROPOSAL, ESP_PROPOSAL]}
            if v1:
                row.update({"ike_version": 1, "what": V1_WHAT, "main_modes": r["ike_handshakes"],
                            "main_mode_p50_ms": r["ike_handshake_p50_ms"],
                            "main_mode_p99_ms": r["ike_handshake_p99_ms"]})
            detail["cases"][case] = {"hub": r}
            if not peer_why:
                log("%s: charon, %d spokes at %s/s" % (case, n, rate))
                pr, pcpu = charon_case(os.path.join(cd, "peer"), "ikb%d" % (os.getpid() % 10000),
                                       auth, certdir, n, rate, a.core, a.sim_core, case)
                detail["cases"][case]["peer"] = pr
                phs, pp50, pp99, pwall = handshakes(pr, v1)
                if phs != n:
                    msg = "%s: charon: %d of %d %s" % (
                        case, phs, n, "Quick Modes done" if v1 else "IKE SAs up")
                    if a.quick:
                        raise SystemExit(msg)
                    log(msg)
                row.update({
                    "peer": "strongSwan %s charon-systemd, 1 core (taskset, all threads); %s" % (
                        charon_version(), PEER_V1 if v1 else PEER_V2),
                    "peer_handshakes_per_s": per_s(phs, pcpu),
                    "peer_sas": phs, "peer_p50_ms": pp50, "peer_p99_ms": pp99,
                    "peer_wall_handshakes_per_s": per_s(phs, pwall),
                    "peer_cpu_s": round(pcpu, 3)})
                if v1:
                    row.update({"peer_main_modes": pr["ike_handshakes"],
                                "peer_main_mode_p50_ms": pr["ike_handshake_p50_ms"],
                                "peer_main_mode_p99_ms": pr["ike_handshake_p99_ms"]})
                if row["peer_handshakes_per_s"]:
                    row["of_peer"] = round(row["handshakes_per_s"] / row["peer_handshakes_per_s"],
                                           2)
            rows.append(row)
            log("row: " + json.dumps(row))  # kept should a later case fail
        if not a.no_storm:
            rows += storm_rows(a, d, storm, detail)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    load_end = loadavg()
    buildtype = build_type()
    for row in rows:
        row["build"] = buildtype
        row["load_start"] = load_start
        row["load_end"] = load_end
        row["machine"] = ("%d CPUs, shared with other engineers' builds and tests while this ran "
                          "(load_start / load_end: /proc/loadavg)" % os.cpu_count())
        row["quick"] = a.quick
    out_rows = merged(a.out, rows) if a.merge else rows
    with open(a.out, "w") as f:
        json.dump(out_rows, f, indent=1)
        f.write("\n")
    print("ike, one IKE core (CPU-time rates), %d CPUs, load %s -> %s" %
          (os.cpu_count(), load_start, load_end))
    print("%-24s %6s %10s %9s %9s %12s %7s" % ("case", "SAs", "hs/s", "p50 ms", "p99 ms",
                                                "peer hs/s", "x peer"))
    for row in rows:
        if row["case"].startswith("nhrp"):
            print("%-24s %6d  Registration->Reply p50 %s us, p99 %s us, max %s us over %s "
                  "(target p99 50 us); control loop pass p99 %s us, p99.9 %s us" %
                  (row["case"], row["sas"], row["p50_us"], row["p99_us"], row["max_us"],
                   row["registrations"], row["loop_p99_us"], row["loop_p999_us"]))
            print("%-24s %6s inside the hub (RX burst -> reply to TX): p50 %s us, p99 %s us, "
                  "p99.9 %s us, max %s us over %s NHRP packets" %
                  ("", "", row["hub_nhrp_p50_us"], row["hub_nhrp_p99_us"],
                   row["hub_nhrp_p999_us"], row["hub_nhrp_max_us"], row["hub_nhrp_count"]))
            for seg, what in NHRP_SEGMENTS.items():
                print("%-24s %6s   %-8s (%s): p50 %s us, p99 %s us, max %s us" %
                      ("", "", seg, what, row.get("hub_nhrp_%s_p50_us" % seg),
                       row.get("hub_nhrp_%s_p99_us" % seg), row.get("hub_nhrp_%s_max_us" % seg)))
            print("%-24s %6s %s taken by the first pass after an idle nap" %
                  ("", "", row["hub_nhrp_after_nap"]))
            print("%-24s %6s by NHRP punts in their dequeue: %s" %
                  ("", "", ", ".join("%s: %s" % (b.replace("_", "-"), n) for b, n in
                                     (row.get("hub_nhrp_dequeued_with") or {}).items())))
            continue
        if row["case"].startswith("crypto-ceiling"):
            print("%-24s %6s %10s  (openssl speed on the IKE core: X25519 %s/s, HMAC-SHA256 "
                  "64 B %s/s)" % (row["case"], "", row["handshakes_per_s"],
                                  row["ecdh_x25519_per_s"], row["hmac_sha256_64b_per_s"]))
            continue
        print("%-24s %6d %10s %9.1f %9.1f %12s %7s" % (
            row["case"], row["sas"], row["handshakes_per_s"], row["p50_ms"], row["p99_ms"],
            row.get("peer_handshakes_per_s"), row.get("of_peer", "")))
        if row["case"].startswith("cold"):
            print("%-24s %6s %.1f s wall (target 30 s), %.1f s of IKE-core CPU; the control "
                  "lcore %.1f s of CPU, %.1f s runnable waiting for one; runnable waiting: "
                  "the IKE thread %s s, the worker %s s" %
                  ("", "", row["seconds"], row["ike_core_cpu_s"], row["control_lcore_cpu_s"],
                   row["control_lcore_runqueue_wait_s"], row.get("ike_thread_runqueue_wait_s"),
                   row.get("worker_runqueue_wait_s")))
    print("wrote %s" % a.out)
    if e2e.failures:
        sys.exit("ike bench: %s" % "; ".join(e2e.failures))


def merged(path, rows):
    """The rows of `path` with this run's in place of those of the same case, this run's new
    cases after them (--merge: a run of some cases keeps the others' rows on record)."""
    try:
        with open(path) as f:
            old = json.load(f)
    except (OSError, ValueError):
        return rows
    new = {row["case"]: row for row in rows}
    out = [new.pop(row["case"], row) for row in old]
    return out + [row for row in rows if row["case"] in new]


def build_type():
    """The meson buildtype of the binaries measured (bench/run builds `release`)."""
    try:
        with open(os.path.join(BUILD, "meson-info", "intro-buildoptions.json")) as f:
            return next(o["value"] for o in json.load(f) if o["name"] == "buildtype")
    except (OSError, StopIteration, ValueError, KeyError):
        return "?"


def charon_version():
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "charon-systemd"],
                       capture_output=True, text=True)
    return r.stdout.strip() or "?"


if __name__ == "__main__":
    main()
