#!/usr/bin/python3
"""dmvpn-hub under a Type=notify service manager, played by this test: with $NOTIFY_SOCKET
naming a datagram socket the test listens on, the hub sends READY=1 once dmvpnctl answers;
SIGHUP sends RELOADING=1 (with MONOTONIC_USEC) and, once the reload is applied or refused,
READY=1 with the outcome as STATUS, for each of a burst of SIGHUPs too; SIGTERM sends STOPPING=1 and the hub exits 0. Also
--list-pci-ports: PCI ports one a line, nothing for virtual ports, file:line:col errors."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from hub_checks import CTL, HUB, SOURCE, check, failures

CONFIG = """\
hub:
  control-lcore: 0
  worker-lcores: [1]
  eal-args: [--no-huge, -m, "256", --no-pci, --no-shconf, --no-telemetry]
  worker-idle-sleep-us: 100
ports:
  - name: nbma
    device: net_null0
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
management:
  socket: {d}/hub.sock
"""


def receive(sock, timeout):
    sock.settimeout(timeout)
    try:
        return sock.recv(4096).decode()
    except socket.timeout:
        return None


def fields(msg):
    return dict(line.split("=", 1) for line in (msg or "").splitlines() if "=" in line)


def list_pci():
    r = subprocess.run([HUB, "--list-pci-ports",
                        os.path.join(SOURCE, "config/examples/bare-metal-two-port.yaml")],
                       capture_output=True, text=True, timeout=20)
    check(r.returncode == 0 and r.stdout.split() == ["0000:3b:00.0", "0000:3b:00.1"],
          f"--list-pci-ports lists the bare-metal example's two PCI ports: {r.stdout!r}")
    r = subprocess.run([HUB, "--list-pci-ports",
                        os.path.join(SOURCE, "config/examples/interop.yaml")],
                       capture_output=True, text=True, timeout=20)
    check(r.returncode == 0 and r.stdout == "", "--list-pci-ports: nothing for a net_tap port")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write("ports:\n  - name: a\n    device: 3b:00.0\n    role: bogus\n")
    r = subprocess.run([HUB, "--list-pci-ports", f.name], capture_output=True, text=True,
                       timeout=20)
    os.unlink(f.name)
    check(r.returncode == 1 and r.stdout == "" and f"{f.name}:4:" in r.stderr,
          f"--list-pci-ports refuses a bad file with file:line:col: {r.stderr.strip()!r}")


def main():
    list_pci()
    d = tempfile.mkdtemp(prefix="dmvpn-notify-")
    cfg = os.path.join(d, "hub.yaml")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(d=d, holdtime=600))
    nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    npath = os.path.join(d, "notify.sock")
    nsock.bind(npath)
    env = dict(os.environ, NOTIFY_SOCKET=npath)
    log = open(os.path.join(d, "hub.log"), "w")
    hub = subprocess.Popen([HUB, "--config", cfg, "--", f"--file-prefix=notify{os.getpid()}"],
                           env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        msg = receive(nsock, 90)
        check(fields(msg).get("READY") == "1", f"READY=1 once the hub is up: {msg!r}")
        r = subprocess.run([CTL, "--socket", f"{d}/hub.sock", "show", "dmvpn"],
                           capture_output=True, text=True, timeout=20)
        check(r.returncode == 0, "dmvpnctl answers when READY=1 has come")

        with open(cfg, "w") as f:
            f.write(CONFIG.format(d=d, holdtime=300))
        before = time.clock_gettime(time.CLOCK_MONOTONIC)
        hub.send_signal(signal.SIGHUP)
        msg = receive(nsock, 30)
        f1 = fields(msg)
        usec = int(f1.get("MONOTONIC_USEC", "0"))
        check(f1.get("RELOADING") == "1" and before * 1e6 - 1e6 <= usec <= before * 1e6 + 30e6,
              f"SIGHUP: RELOADING=1 with MONOTONIC_USEC: {msg!r}")
        msg = receive(nsock, 60)
        f2 = fields(msg)
        check(f2.get("READY") == "1" and f2.get("STATUS", "").startswith("reload: applied"),
              f"then READY=1 once the reload is applied: {msg!r}")

        with open(cfg, "w") as f:
            f.write("tunnels: [\n")
        hub.send_signal(signal.SIGHUP)
        m1, m2 = receive(nsock, 30), receive(nsock, 60)
        check(fields(m1).get("RELOADING") == "1" and fields(m2).get("READY") == "1" and
              "reload rejected" in fields(m2).get("STATUS", ""),
              f"a bad file: RELOADING=1, then READY=1 saying it was refused: {m1!r} {m2!r}")
        r = subprocess.run([CTL, "--socket", f"{d}/hub.sock", "show", "dmvpn"],
                           capture_output=True, text=True, timeout=20)
        check(r.returncode == 0, "the hub still answers after the refused reload")

        # A burst of SIGHUPs (any thread may take them, the reloader's read included): each one
        # is a reload, none is lost and the reloader keeps going.
        with open(cfg, "w") as f:
            f.write(CONFIG.format(d=d, holdtime=300))
        for _ in range(5):
            hub.send_signal(signal.SIGHUP)
            time.sleep(0.05)
        got = [fields(receive(nsock, 30)) for _ in range(10)]
        check(sum(g.get("RELOADING") == "1" for g in got) == 5 and
              sum(g.get("READY") == "1" for g in got) == 5,
              f"5 SIGHUPs in a row: 5 RELOADING=1 and 5 READY=1: {got}")
        hub.send_signal(signal.SIGHUP)
        m1, m2 = receive(nsock, 30), receive(nsock, 60)
        check(fields(m1).get("RELOADING") == "1" and fields(m2).get("READY") == "1",
              "and the next SIGHUP still reloads")

        hub.send_signal(signal.SIGTERM)
        msg = receive(nsock, 30)
        check(fields(msg).get("STOPPING") == "1", f"SIGTERM: STOPPING=1: {msg!r}")
        rc = hub.wait(timeout=60)
        check(rc == 0, f"the hub exits 0 after SIGTERM (got {rc})")
    finally:
        if hub.poll() is None:
            hub.kill()
            hub.wait()
        log.close()
    text = open(os.path.join(d, "hub.log")).read()
    check("SIGHUP: reload: applied" in text, "the hub logs the SIGHUP reload as before")
    check("sd_notify:" not in text, "no sd_notify errors in the hub's log")
    if failures:
        print(text[-3000:])
        print(f"{len(failures)} failed: {failures}")
        sys.exit(1)
    print("all passed")


if __name__ == "__main__":
    main()
