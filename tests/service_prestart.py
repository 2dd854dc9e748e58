#!/usr/bin/python3
"""The service's pre-start helper (service/prestart) against a fake sysfs tree: virtual ports
touch nothing; hugepages are reserved, and a kernel that reserves fewer is refused; PCI ports
are refused without IOMMU groups, without a loadable vfio-pci, when the device does not exist;
otherwise the ports not yet on vfio-pci are bound (through a stand-in for dpdk-devbind.py that
records its calls and moves the driver link as the real one does); --dry-run changes nothing;
a bad topology is refused with the hub's file:line:col errors. The real helper runs in the
Debian 12 guest of tests/interop/package.py."""

import os
import shutil
import subprocess
import sys
import tempfile

BUILD = os.environ["DMVPN_BUILD"]
SOURCE = os.environ["DMVPN_SOURCE"]
HELPER = os.path.join(SOURCE, "service", "prestart")
VIRTUAL = os.path.join(SOURCE, "config", "examples", "interop.yaml")
PCI = os.path.join(SOURCE, "config", "examples", "bare-metal-two-port.yaml")  # 3b:00.0, 3b:00.1

failures = []
TMP = tempfile.mkdtemp(prefix="dmvpn-prestart-")


def check(cond, what, detail=""):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
        if detail:
            print(detail)


def fake_system(root, groups=True, vfio_loadable=True, devices=("0000:3b:00.0", "0000:3b:00.1"),
                bound=None, nr_hugepages="0"):
    """A sysfs tree with what the helper reads, and stand-ins for modprobe and dpdk-devbind.py
    that log their calls to root/calls."""
    sysfs = os.path.join(root, "sys")
    hp = os.path.join(sysfs, "kernel/mm/hugepages/hugepages-2048kB")
    os.makedirs(hp)
    if nr_hugepages == "stuck":  # a kernel that reserves nothing: writes vanish
        os.symlink("/dev/null", os.path.join(hp, "nr_hugepages"))
    else:
        with open(os.path.join(hp, "nr_hugepages"), "w") as f:
            f.write(nr_hugepages + "\n")
    os.makedirs(os.path.join(sysfs, "kernel/iommu_groups"))
    if groups:
        os.makedirs(os.path.join(sysfs, "kernel/iommu_groups/17/devices"))
    drivers = os.path.join(sysfs, "bus/pci/drivers")
    os.makedirs(os.path.join(drivers, "ixgbe"))
    for d in devices:
        dev = os.path.join(sysfs, "bus/pci/devices", d)
        os.makedirs(dev)
        drv = (bound or {}).get(d, "ixgbe")
        os.makedirs(os.path.join(drivers, drv), exist_ok=True)
        os.symlink(os.path.join(drivers, drv), os.path.join(dev, "driver"))
    calls = os.path.join(root, "calls")
    bindir = os.path.join(root, "bin")
    os.makedirs(bindir)
    with open(os.path.join(bindir, "modprobe"), "w") as f:
        f.write(f"#!/bin/sh\necho modprobe \"$@\" >>{calls}\n" +
                (f"mkdir -p {drivers}/vfio-pci\n" if vfio_loadable else
                 "echo 'modprobe: FATAL: Module vfio-pci not found' >&2; exit 1\n"))
    with open(os.path.join(bindir, "devbind"), "w") as f:
        f.write(f"#!/bin/sh\necho devbind \"$@\" >>{calls}\n"
                f"dev={sysfs}/bus/pci/devices/$2\n"
                f"rm -f $dev/driver; ln -s {drivers}/vfio-pci $dev/driver\n")
    for n in ("modprobe", "devbind"):
        os.chmod(os.path.join(bindir, n), 0o755)
    env = dict(os.environ, DMVPN_SYSFS=sysfs, DMVPN_HUB_BIN=os.path.join(BUILD, "dmvpn-hub"),
               DMVPN_HUB_MODPROBE=os.path.join(bindir, "modprobe"),
               DMVPN_HUB_DEVBIND=os.path.join(bindir, "devbind"),
               DMVPN_PROC_MOUNTS=os.path.join(root, "mounts"), DMVPN_HUB_HUGEPAGES="0")
    with open(env["DMVPN_PROC_MOUNTS"], "w") as f:
        f.write("hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n")
    return env, sysfs, calls


def run(env, *args):
    r = subprocess.run([HELPER, *args], env=env, capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def calls_of(calls):
    return open(calls).read().splitlines() if os.path.exists(calls) else []


def driver(sysfs, addr):
    return os.path.basename(os.readlink(os.path.join(sysfs, "bus/pci/devices", addr, "driver")))


def case(name, **kw):
    root = os.path.join(TMP, name)
    os.makedirs(root)
    return fake_system(root, **kw)


def main():
    # Virtual ports: nothing bound, nothing loaded, hugepages left alone.
    env, sysfs, calls = case("virtual", groups=False, vfio_loadable=False)
    rc, out = run(env, VIRTUAL)
    check(rc == 0 and "nothing to bind" in out and calls_of(calls) == [],
          "virtual ports: exit 0, nothing bound or loaded, even without IOMMU", out)

    # Hugepages.
    env, sysfs, calls = case("huge")
    env["DMVPN_HUB_HUGEPAGES"] = "64"
    rc, out = run(env, VIRTUAL)
    nr = open(os.path.join(sysfs, "kernel/mm/hugepages/hugepages-2048kB/nr_hugepages")).read()
    check(rc == 0 and nr.strip() == "64" and "64 of 2048kB reserved" in out,
          "DMVPN_HUB_HUGEPAGES=64: 64 pages of 2 MiB reserved", out)
    env, sysfs, calls = case("huge-enough", nr_hugepages="128")
    env["DMVPN_HUB_HUGEPAGES"] = "64"
    rc, out = run(env, VIRTUAL)
    nr = open(os.path.join(sysfs, "kernel/mm/hugepages/hugepages-2048kB/nr_hugepages")).read()
    check(rc == 0 and nr.strip() == "128", "more pages than asked already: left as they are", out)
    env, sysfs, calls = case("huge-stuck", nr_hugepages="stuck")
    env["DMVPN_HUB_HUGEPAGES"] = "64"
    rc, out = run(env, VIRTUAL)
    check(rc != 0 and "asked for 64 of 2048kB, the kernel reserved 0" in out and
          "hugepages=64" in out, "a kernel that reserves fewer pages: refused with advice", out)
    env, sysfs, calls = case("huge-size")
    env.update(DMVPN_HUB_HUGEPAGES="4", DMVPN_HUB_HUGEPAGE_SIZE="1048576kB")
    rc, out = run(env, VIRTUAL)
    check(rc != 0 and "hugepages of 1048576kB" in out and "2048kB" in out,
          "a page size the kernel lacks: refused, naming the sizes it has", out)
    env, sysfs, calls = case("huge-bad")
    env["DMVPN_HUB_HUGEPAGES"] = "lots"
    rc, out = run(env, VIRTUAL)
    check(rc != 0 and "DMVPN_HUB_HUGEPAGES=lots" in out, "a non-numeric page count: refused", out)
    env, sysfs, calls = case("huge-mount")
    env["DMVPN_HUB_HUGEPAGES"] = "8"
    open(env["DMVPN_PROC_MOUNTS"], "w").write("proc /proc proc rw 0 0\n")
    rc, out = run(env, "--dry-run", VIRTUAL)
    check(rc == 0 and "would run: mount -t hugetlbfs -o pagesize=2048K nodev /dev/hugepages"
          in out and "would reserve 8" in out,
          "--dry-run without a hugetlbfs mount: would reserve and mount, does neither", out)

    # PCI ports.
    env, sysfs, calls = case("no-iommu", groups=False)
    rc, out = run(env, PCI)
    check(rc != 0 and "IOMMU is off" in out and "intel_iommu=on" in out and
          "0000:3b:00.0 0000:3b:00.1" in out and calls_of(calls) == [],
          "PCI ports without IOMMU groups: refused with advice, nothing touched", out)
    env, sysfs, calls = case("no-vfio", vfio_loadable=False)
    rc, out = run(env, PCI)
    check(rc != 0 and "vfio-pci module cannot be loaded" in out and
          "Module vfio-pci not found" in out and calls_of(calls) == ["modprobe vfio-pci"],
          "vfio-pci not loadable: refused with modprobe's reason", out)
    env, sysfs, calls = case("no-device", devices=("0000:3b:00.0",))
    rc, out = run(env, PCI)
    check(rc != 0 and "0000:3b:00.1" in out and "no such PCI device" in out,
          "a port whose PCI device is absent: refused, naming it", out)
    env, sysfs, calls = case("bind", bound={"0000:3b:00.1": "vfio-pci"})
    rc, out = run(env, "--dry-run", PCI)
    check(rc == 0 and "would bind 0000:3b:00.0 (ixgbe)" in out and
          driver(sysfs, "0000:3b:00.0") == "ixgbe" and
          all(c.startswith("modprobe") for c in calls_of(calls)),
          "--dry-run: says it would bind 3b:00.0, binds nothing", out)
    rc, out = run(env, PCI)
    check(rc == 0 and calls_of(calls)[-1:] == ["devbind --bind=vfio-pci 0000:3b:00.0"] and
          sum(c.startswith("devbind") for c in calls_of(calls)) == 1 and
          driver(sysfs, "0000:3b:00.0") == "vfio-pci" and "already bound" in out,
          "PCI ports: 3b:00.0 bound (ixgbe -> vfio-pci), 3b:00.1 already was", out)
    rc, out = run(env, PCI)
    check(rc == 0 and sum(c.startswith("devbind") for c in calls_of(calls)) == 1,
          "a second start binds nothing more", out)
    env, sysfs, calls = case("devbind-fails")
    with open(env["DMVPN_HUB_DEVBIND"], "w") as f:
        f.write("#!/bin/sh\necho 'Warning: routing table indicates that interface "
                "0000:3b:00.0 is active. Not modifying'\nexit 1\n")
    rc, out = run(env, PCI)
    check(rc != 0 and "--bind=vfio-pci failed" in out and "is active" in out,
          "dpdk-devbind.py refusing: refused with its words", out)

    # A bad topology: the hub's own loader's errors.
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write("ports:\n  - name: a\n    device: [\n")
    env, sysfs, calls = case("bad")
    rc, out = run(env, f.name)
    check(rc != 0 and "is not a valid topology" in out and f"{f.name}:" in out,
          "a bad topology: refused with file:line:col errors", out)
    os.unlink(f.name)

    shutil.rmtree(TMP)
    if failures:
        print(f"{len(failures)} failed: {failures}")
        sys.exit(1)
    print("all passed")


if __name__ == "__main__":
    main()
