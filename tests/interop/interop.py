#!/usr/bin/python3
"""Interop: real FRR 8.4 nhrpd in qemu guests (scripts/interop/rig): an FRR hub with
`ip nhrp redirect` and two FRR spokes with `ip nhrp shortcut`, Phase 3.

Asserts that each spoke's `show ip nhrp nhs` shows the hub registered, that spoke-to-spoke ping
works, and that after the hub's redirect spoke2 holds a shortcut to spoke3 (`show ip nhrp
shortcut`, and a cache entry with spoke3's NBMA address). On failure prints the guests' console
logs and FRR logs. Exit 77 (meson's skip) only when qemu-system-x86_64 is missing.

The rig runs in its own namespace and run directory (dmvpn-interop-test, /run/dmvpn-interop-test)
so that a rig someone started by hand is left alone.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

SOURCE = Path(os.environ.get("DMVPN_SOURCE", Path(__file__).resolve().parents[2]))
RIG = SOURCE / "scripts" / "interop" / "rig"
ENV = dict(os.environ,
           DMVPN_INTEROP_NS=os.environ.get("DMVPN_INTEROP_TEST_NS", "dmvpn-interop-test"),
           DMVPN_INTEROP_RUN=os.environ.get("DMVPN_INTEROP_TEST_RUN", "/run/dmvpn-interop-test"))
RUN = Path(ENV["DMVPN_INTEROP_RUN"])
HUB, SPOKE2, SPOKE3 = "10.255.0.1", "10.255.0.2", "10.255.0.3"


def step(msg):
    print(f"interop: {msg}", flush=True)


def rig(*args, timeout=120, check=True):
    r = subprocess.run([str(RIG), *args], env=ENV, capture_output=True, text=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"rig {' '.join(args)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r


def vtysh(guest, cmd):
    return rig("vtysh", guest, cmd, "--timeout", "30", timeout=60, check=False).stdout


def dump_logs():
    for console in sorted(RUN.glob("*.console")):
        print(f"----- {console} -----")
        print(console.read_text(errors="replace")[-20000:])
    for log in sorted(RUN.glob("guests/*/logs/nhrpd.log")):
        print(f"----- {log} (last 150 lines) -----")
        print("\n".join(log.read_text(errors="replace").splitlines()[-150:]))


def main():
    if shutil.which("qemu-system-x86_64") is None:
        print("interop: SKIP: qemu-system-x86_64 is not installed (scripts/setup installs it)")
        return 77
    if os.geteuid() != 0:
        print("interop: FAIL: needs root (network namespace, TAPs, image build)")
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # meson's timeout: still clean up
    t0 = time.time()
    ok = False
    try:
        step("guest image")
        r = rig("image", timeout=1800)
        step(f"image {r.stdout.strip()} ({time.time() - t0:.0f} s)")

        t1 = time.time()
        rig("up", "--hub", "frr", "--spokes", "2", "--timeout", "300", timeout=420)
        step(f"hub, spoke2, spoke3 booted ({time.time() - t1:.0f} s)")

        t2 = time.time()
        r = rig("wait-registered", "150", timeout=200, check=False)
        for spoke in ("spoke2", "spoke3"):
            out = vtysh(spoke, "show ip nhrp nhs")
            print(f"{spoke}# show ip nhrp nhs\n{out}")
            assert any(l.split()[:1] == ["gre1"] and l.split()[-1] == HUB
                       for l in out.splitlines()), f"{spoke}: the hub {HUB} is not up as its NHS"
        assert r.returncode == 0, r.stderr
        step(f"both spokes registered with the hub ({time.time() - t2:.0f} s)")

        # Spoke to spoke, first through the hub; the hub's NFLOG rule makes its nhrpd send a
        # Traffic Indication, and spoke2's nhrpd resolves spoke3 and installs a shortcut.
        t3 = time.time()
        r = rig("sh", "spoke2", f"ping -c 4 -i 0.5 -W 3 {SPOKE3}", timeout=90, check=False)
        print(r.stdout)
        assert r.returncode == 0, "spoke2 cannot ping spoke3"
        step(f"spoke2 -> spoke3 ping works ({time.time() - t3:.0f} s)")

        shortcut = cache = ""
        deadline = time.time() + 90
        while time.time() < deadline:
            rig("sh", "spoke2", f"ping -c 2 -i 0.5 -W 2 {SPOKE3}", timeout=60, check=False)
            shortcut = vtysh("spoke2", "show ip nhrp shortcut")
            cache = vtysh("spoke2", "show ip nhrp cache")
            if SPOKE3 in shortcut and any(SPOKE3 in l and "198.51.100.3" in l
                                          for l in cache.splitlines()):
                break
            time.sleep(3)
        print(f"spoke2# show ip nhrp shortcut\n{shortcut}\nspoke2# show ip nhrp cache\n{cache}")
        assert SPOKE3 in shortcut, "spoke2 has no shortcut to spoke3 after the redirect"
        assert any(SPOKE3 in l and "198.51.100.3" in l for l in cache.splitlines()), \
            "spoke2's cache does not map spoke3 to its NBMA address 198.51.100.3"
        r = rig("sh", "spoke2", f"ping -c 3 -i 0.5 -W 3 {SPOKE3}", timeout=60, check=False)
        assert r.returncode == 0, f"spoke2 cannot ping spoke3 over the shortcut:\n{r.stdout}"
        step(f"shortcut spoke2 -> spoke3 after the redirect ({time.time() - t3:.0f} s)")
        ok = True
    except (AssertionError, subprocess.TimeoutExpired) as e:
        print(f"interop: FAIL: {e}")
    finally:
        if not ok:
            dump_logs()
        rig("down", timeout=120, check=False)
    step(f"{'passed' if ok else 'FAILED'} in {time.time() - t0:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
