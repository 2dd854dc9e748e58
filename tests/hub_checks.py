"""What the tests that run dmvpn-hub as a process share (hub_process.py, hub_notify.py,
fpm_hub_zebra.py, e2e/e2e.py): the built binaries from $DMVPN_BUILD, the source tree, the ok/FAIL
checklist, dmvpnctl and polling. Imported from the test's folder (the script's own directory is
on sys.path; e2e.py puts tests/ there)."""

import os
import subprocess
import time

BUILD = os.environ["DMVPN_BUILD"]
SOURCE = os.environ.get("DMVPN_SOURCE", os.path.dirname(os.path.dirname(__file__)))
HUB = os.path.join(BUILD, "dmvpn-hub")
CTL = os.path.join(BUILD, "dmvpnctl")

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def ctl(sock, *cmd):
    return subprocess.run([CTL, "--socket", sock, *cmd], capture_output=True, text=True,
                          timeout=20)


def wait_for(pred, seconds, step=0.3):
    """pred()'s first true value within `seconds` (polled every `step` s), else None."""
    end = time.time() + seconds
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return None
