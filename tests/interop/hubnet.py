"""Our DPDK hub on a Linux bridge inside a network namespace, for tests/interop/hub_tap.py and
hub_frr.py: start it on a net_tap port (config/examples/interop.yaml by default), put the kernel
side of the TAP on the bridge, ask it things through dmvpnctl, stop it.

net_tap creates its kernel interface in the namespace of the process that probes it, so the hub
runs under `ip netns exec`. The kernel side (dtap0) gets a MAC of its own: with the DPDK port's
MAC on it the bridge would take the hub's unicast for itself.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

SOURCE = Path(os.environ.get("DMVPN_SOURCE", Path(__file__).resolve().parents[2]))
BUILD = Path(os.environ.get("DMVPN_BUILD", SOURCE / "build"))
HUB_BIN = BUILD / "dmvpn-hub"
CTL_BIN = BUILD / "dmvpnctl"
EXAMPLE = SOURCE / "config" / "examples" / "interop.yaml"
TAP_KERNEL_MAC = "02:00:00:00:64:fe"


def sh(*args, timeout=30, check=True):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def ns_run(ns, *args, timeout=30, check=True):
    return sh("ip", "netns", "exec", ns, *args, timeout=timeout, check=check)


def tap_iface(config_text):
    m = re.search(r"net_tap\d+,(?:[^\s,]+,)*iface=([A-Za-z0-9_.-]+)", config_text)
    return m.group(1) if m else "dtap0"


def port_mac(config_text):
    m = re.search(r"net_tap\d+,(?:[^\s,]+,)*mac=([0-9a-fA-F:]{17})", config_text)
    return m.group(1).lower() if m else None


class Hub:
    """One dmvpn-hub process in namespace `ns`, its TAP enslaved to `bridge` (or, with bridge
    None, left in `ns` for the caller: tests/interop/strongswan_hub_tap.py moves it)."""

    def __init__(self, ns, bridge, workdir, config=EXAMPLE, nice=10, log_level="warning",
                 extra_args=()):
        self.ns, self.bridge = ns, bridge
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = Path(config)
        text = self.config.read_text()
        self.iface = tap_iface(text)
        self.mac = port_mac(text)
        self.socket = str(self.dir / "hub.sock")
        self.log_path = self.dir / "hub.log"
        self.proc = None
        self.prefix = f"hubnet-{os.getpid()}"  # EAL's runtime directory /var/run/dpdk/<prefix>
        # The hub's worker polls without pause; on a small shared machine it runs niced so that
        # TCG guests keep their CPU (it only ever sees a few packets a second here).
        self.nice = nice
        self.log_level = log_level
        self.extra_args = list(extra_args)  # more dmvpn-hub options (before EAL's "--")

    def start(self, timeout=30):
        log = open(self.log_path, "w")
        argv = ["ip", "netns", "exec", self.ns, "nice", "-n", str(self.nice), str(HUB_BIN),
                "--config", str(self.config), "--socket", self.socket, *self.extra_args, "--",
                "--file-prefix", self.prefix, f"--log-level={self.log_level}"]
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"dmvpn-hub exited with {self.proc.returncode}:\n"
                                     + self.log())
            if "running:" in self.log() and Path(self.socket).exists():
                break
            time.sleep(0.2)
        else:
            raise AssertionError("dmvpn-hub not running after %d s:\n%s" % (timeout, self.log()))
        # The kernel side of the TAP: a MAC of its own, on the bridge (bridge None: left alone,
        # for a caller that moves it into a namespace of its own), up.
        sh("ip", "-n", self.ns, "link", "set", self.iface, "address", TAP_KERNEL_MAC)
        if self.bridge:
            sh("ip", "-n", self.ns, "link", "set", self.iface, "master", self.bridge, "up")

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def ctl(self, *cmd, timeout=20):
        r = subprocess.run([str(CTL_BIN), "--socket", self.socket, *cmd], capture_output=True,
                           text=True, timeout=timeout)
        return r.returncode, r.stdout + r.stderr

    def ctl_json(self, *cmd):
        rc, out = self.ctl(*cmd, "--json")
        if rc != 0:
            raise AssertionError(f"dmvpnctl {' '.join(cmd)} --json failed: {out}")
        return json.loads(out)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=15):
        """SIGTERM (a clean stop), then SIGKILL; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            # `ip netns exec` and `nice` exec the hub: self.proc.pid is the hub itself.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        # EAL leaves its (empty) runtime directory behind.
        shutil.rmtree(f"/var/run/dpdk/{self.prefix}", ignore_errors=True)
        return self.proc.returncode
