#!/usr/bin/python3
"""The Debian package on a clean Debian 12 with systemd: scripts/package builds the .deb; a qemu
guest of the interop rig (scripts/interop/rig --systemd-guests 1: systemd as PID 1, no
network; the image holds the package's run-time dependencies) installs it with
`apt-get install ./dmvpn-hub_*.deb`, and the test checks:

  - the files are where they belong, the unit is enabled and not started by the install;
  - `systemctl start` returns once the hub sent READY=1 (Type=notify), on a net_tap port with
    hugepages the pre-start helper reserved; the hub runs under the unit's hardening (its
    capability bounding set, NoNewPrivs); `dmvpnctl show dmvpn` answers;
  - `systemctl reload` applies an edited topology (RELOADING=1 .. READY=1, the journal says so);
  - the hub killed with SIGKILL is restarted (Restart=on-failure) and answers again;
  - `systemctl stop` stops it cleanly;
  - a topology naming the guest's virtio NIC by PCI address is refused by the pre-start helper
    with the IOMMU message (the guest has no IOMMU), the hub never started;
  - `apt-get remove --purge` leaves nothing: no package file, no conffile, no unit or its
    enablement, no EAL runtime directory, no socket.

DMVPN_PACKAGE_DEB=FILE tests that .deb instead of building one. Every step must pass; exit 77 (meson's skip) only when qemu-system-x86_64 is missing. Own
namespace and run directory (dmvpn-interop-pkg, /run/dmvpn-interop-pkg)."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import checks  # noqa: E402

SOURCE = Path(os.environ.get("DMVPN_SOURCE", Path(__file__).resolve().parents[2]))
BUILD = Path(os.environ.get("DMVPN_BUILD", SOURCE / "build"))
RIG = SOURCE / "scripts" / "interop" / "rig"
ENV = dict(os.environ, DMVPN_INTEROP_NS="dmvpn-interop-pkg", DMVPN_INTEROP_BRIDGE="br-int-pkg",
           DMVPN_INTEROP_RUN="/run/dmvpn-interop-pkg")
RUN = Path(ENV["DMVPN_INTEROP_RUN"])
GUEST = "sys1"

# The hub's capability bounding set under the unit: CAP_NET_ADMIN (12), CAP_NET_RAW (13),
# CAP_IPC_LOCK (14), CAP_SYS_RAWIO (17), CAP_SYS_ADMIN (21), as capabilities(7) numbers them.
CAP_BND = (1 << 12) | (1 << 13) | (1 << 14) | (1 << 17) | (1 << 21)

# One topology for both runs: a net_tap port for the service's life cycle, a PCI address for
# the pre-start helper's refusal (the EAL options only matter when the hub starts).
TOPOLOGY = """\
hub:
  control-lcore: 0
  worker-lcores: [1]
  eal-args: [--no-pci, --no-telemetry]
  worker-idle-sleep-us: 100
ports:
  - name: nbma
    device: {device}
    role: underlay
    address: 198.51.100.1/24
tunnels:
  - name: dmvpn
    port: nbma
    overlay-address: 10.255.0.1
    overlay-prefix: 10.255.0.0/24
    gre-key: 42
    nhrp:
      network-id: 1
      holdtime: {holdtime}
"""
TAP = "net_tap0,iface=dtap0"

# What the package installs (beside the documentation), all of which must go with --purge.
FILES = ["/usr/sbin/dmvpn-hub", "/usr/bin/dmvpnctl", "/usr/bin/dmvpn-decode",
         "/usr/bin/dmvpn-spokesim", "/lib/systemd/system/dmvpn-hub.service",
         "/usr/libexec/dmvpn-hub/prestart", "/etc/dmvpn-hub/hub.yaml", "/etc/default/dmvpn-hub",
         "/usr/share/doc/dmvpn-hub/README.md", "/usr/share/doc/dmvpn-hub/examples/interop.yaml",
         "/usr/share/doc/dmvpn-hub/copyright"]

check = checks.Checks()
failures = check.failures


def step(msg):
    print(f"package: {msg}", flush=True)


rig = checks.rig_runner(RIG, ENV)


def sh(script, timeout=120):
    """Runs a shell script in the guest; (status, output)."""
    r = rig("sh", GUEST, script, "--timeout", str(timeout), timeout=timeout + 30,
            check_rc=False)
    return r.returncode, r.stdout + r.stderr


def write_guest_file(path, text):
    rc, out = sh(f"cat >{path} <<'DMVPN_EOF'\n{text}DMVPN_EOF")
    if rc != 0:
        raise AssertionError(f"writing {path} in the guest: {out}")


def journal(lines=60):
    return sh(f"journalctl -u dmvpn-hub --no-pager -n {lines} -o cat")[1]


def main_pid():
    rc, out = sh("systemctl show -p MainPID --value dmvpn-hub")
    return int(out.strip() or 0) if rc == 0 and out.strip().isdigit() else 0


def ctl_answers():
    rc, out = sh("dmvpnctl show dmvpn", timeout=30)
    return rc == 0 and "dmvpn" in out, out


def build_deb():
    if os.environ.get("DMVPN_PACKAGE_DEB"):  # a .deb built already (scripts/package)
        return Path(os.environ["DMVPN_PACKAGE_DEB"]).resolve()
    out = BUILD / "package"
    step(f"scripts/package {out}")
    r = subprocess.run([str(SOURCE / "scripts" / "package"), str(out)], capture_output=True,
                       text=True, timeout=1500)
    if r.returncode != 0:
        raise AssertionError(f"scripts/package failed:\n{r.stderr[-4000:]}")
    deb = Path(r.stdout.strip().splitlines()[-1])
    step(f"built {deb.name} ({deb.stat().st_size // 1024} KiB)")
    return deb


def test(deb):
    shutil.copy(deb, RUN / "guests" / GUEST / deb.name)

    # --- install ---
    rc, out = sh(f"cd /mnt/host && DEBIAN_FRONTEND=noninteractive apt-get install -y "
                 f"--no-install-recommends ./{deb.name}", timeout=300)
    if not check(rc == 0, "apt-get install ./" + deb.name, out):
        return
    rc, out = sh("for f in " + " ".join(FILES) + "; do [ -e $f ] || echo missing $f; done")
    check(rc == 0 and "missing" not in out, "the package's files are in place", out)
    rc, out = sh("systemctl is-enabled dmvpn-hub; systemctl is-active dmvpn-hub")
    check(out.split()[:2] == ["enabled", "inactive"],
          "the unit is enabled, and the install did not start it", out)

    # --- start: READY=1, hardening, hugepages, dmvpnctl ---
    write_guest_file("/etc/dmvpn-hub/hub.yaml", TOPOLOGY.format(device=TAP, holdtime=600))
    rc, out = sh("sed -i 's/^DMVPN_HUB_HUGEPAGES=.*/DMVPN_HUB_HUGEPAGES=96/' "
                 "/etc/default/dmvpn-hub && grep ^DMVPN_HUB_HUGEPAGES /etc/default/dmvpn-hub")
    check(rc == 0 and "=96" in out, "/etc/default/dmvpn-hub: 96 hugepages", out)
    t0 = time.time()
    rc, out = sh("systemctl start dmvpn-hub", timeout=300)
    if not check(rc == 0, f"systemctl start returns 0 (READY=1) in {time.time() - t0:.0f} s",
                 out + journal()):
        return
    rc, out = sh("systemctl is-active dmvpn-hub; systemctl show -p StatusText --value dmvpn-hub")
    check(out.split()[:1] == ["active"] and "running" in out, "active, STATUS=running", out)
    ok, out = ctl_answers()
    check(ok, "dmvpnctl show dmvpn answers", out)
    rc, out = sh("awk '/HugePages_Total/ {print $2}' /proc/meminfo")
    check(rc == 0 and out.strip() == "96", "the pre-start helper reserved 96 hugepages", out)
    pid = main_pid()
    rc, out = sh(f"grep -E '^(CapBnd|NoNewPrivs)' /proc/{pid}/status; "
                 f"ls /run/dpdk/dmvpn-hub >/dev/null && echo eal-dir-ok")
    fields = dict(l.split(":\t") for l in out.splitlines() if ":\t" in l)
    check(int(fields.get("CapBnd", "0"), 16) == CAP_BND and fields.get("NoNewPrivs") == "1",
          f"the hub runs with the unit's capability bounding set {CAP_BND:#x} and NoNewPrivs", out)
    check("eal-dir-ok" in out, "the EAL runs under the unit's file prefix (/run/dpdk/dmvpn-hub)",
          out)

    # --- reload ---
    write_guest_file("/etc/dmvpn-hub/hub.yaml", TOPOLOGY.format(device=TAP, holdtime=300))
    rc, out = sh("systemctl reload dmvpn-hub && systemctl show -p StatusText --value dmvpn-hub",
                 timeout=120)
    check(rc == 0 and "reload: applied" in out,
          "systemctl reload applies the edited topology (STATUS after READY=1)", out)
    check("SIGHUP: reload: applied" in journal(), "the journal has the reload")
    check(main_pid() == pid, "the reload kept the process")

    # --- Restart=on-failure ---
    sh(f"kill -KILL {pid}")
    new_pid, deadline = 0, time.time() + 120
    while time.time() < deadline:
        rc, out = sh("systemctl is-active dmvpn-hub")
        new_pid = main_pid()
        if out.strip() == "active" and new_pid not in (0, pid):
            break
        time.sleep(2)
    check(new_pid not in (0, pid), f"killed by SIGKILL, the hub is restarted (pid {pid} -> "
          f"{new_pid})", journal(20))
    ok, out = ctl_answers()
    check(ok, "dmvpnctl answers the restarted hub", out)

    # --- stop ---
    rc, out = sh("systemctl stop dmvpn-hub; systemctl is-active dmvpn-hub; "
                 "[ -e /run/dmvpn-hub.sock ] && echo socket-left", timeout=120)
    check("inactive" in out and "socket-left" not in out,
          "systemctl stop: inactive, the socket removed", out)
    # Under systemd the hub writes journald priority prefixes: "stopped" is a notice.
    notices = sh("journalctl -u dmvpn-hub --no-pager -n 60 -p notice -o cat")[1]
    check("stopped" in notices.splitlines(), "the hub logged its clean stop, at priority notice",
          notices[-500:])

    # --- PCI port without IOMMU: refused by the pre-start helper ---
    # The virtio NIC: vendor 0x1af4 (virtio), class 0x020000 (Ethernet controller).
    rc, pci = sh("for d in /sys/bus/pci/devices/*; do "
                 "[ \"$(cat $d/vendor)\" = 0x1af4 ] && [ \"$(cat $d/class)\" = 0x020000 ] "
                 "&& basename $d; done | head -1")
    pci = pci.strip()
    if check(rc == 0 and pci.count(":") == 2, f"the guest's virtio NIC is PCI device {pci}"):
        write_guest_file("/etc/dmvpn-hub/hub.yaml", TOPOLOGY.format(device=pci, holdtime=600))
        # reset-failed: a fresh start-rate count (StartLimitBurst=3), so the refusal is the
        # helper's and not the rate limit's.
        rc, out = sh("systemctl reset-failed dmvpn-hub; systemctl start dmvpn-hub; echo rc=$?; "
                     "systemctl stop dmvpn-hub; "
                     "systemctl reset-failed dmvpn-hub", timeout=300)
        log = journal(40)
        check("rc=0" not in out and "IOMMU is off" in log and pci in log,
              "a PCI port without IOMMU: the start fails with the helper's IOMMU message",
              out + log)

    # --- purge ---
    rc, listed = sh("dpkg-query -L dmvpn-hub")
    rc, out = sh("DEBIAN_FRONTEND=noninteractive apt-get remove --purge -y dmvpn-hub",
                 timeout=300)
    check(rc == 0, "apt-get remove --purge dmvpn-hub", out)
    rc, out = sh("dpkg-query -W -f='${db:Status-Abbrev}' dmvpn-hub 2>&1; echo")
    check("no packages found" in out, "dpkg knows nothing of dmvpn-hub any more", out)
    own = [p for p in listed.split() if p.startswith("/") and "dmvpn" in p]
    left_check = ("for f in " + " ".join(sorted(set(own + FILES))) +
                  " /etc/dmvpn-hub /run/dpdk/dmvpn-hub /run/dmvpn-hub.sock "
                  "/etc/systemd/system/multi-user.target.wants/dmvpn-hub.service "
                  "/var/lib/systemd/deb-systemd-helper-enabled/dmvpn-hub.service; "
                  "do [ -e $f ] && echo left $f; done; "
                  "systemctl list-unit-files --no-legend dmvpn-hub.service; true")
    rc, out = sh(left_check)
    check(rc == 0 and out.strip() == "",
          f"nothing left: {len(own)} package paths, conffiles, unit, enablement, runtime", out)


def main():
    if shutil.which("qemu-system-x86_64") is None:
        print("package: SKIP: qemu-system-x86_64 is not installed (scripts/setup installs it)")
        return 77
    if os.geteuid() != 0:
        print("package: FAIL: needs root (network namespace, TAPs, image build)")
        return 1
    start = time.time()
    try:
        deb = build_deb()
        step("rig up: one systemd guest")
        rig("up", "--hub", "none", "--spokes", "0", "--systemd-guests", "1", "--mem", "1024",
            "--smp", "2", "--timeout", "300", timeout=2400)
        test(deb)
    except (AssertionError, subprocess.TimeoutExpired) as e:
        failures.append(str(e))
        print(f"FAIL {e}", flush=True)
    finally:
        if failures:
            console = RUN / f"{GUEST}.console"
            if console.exists():
                print(f"----- {console} (end) -----")
                print(console.read_text(errors="replace")[-6000:])
        rig("down", timeout=120, check_rc=False)
    step(f"{time.time() - start:.0f} s")
    if failures:
        print(f"{len(failures)} failed: {failures}")
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
