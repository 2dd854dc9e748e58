#!/usr/bin/python3
"""scripts/summarize-tests on hand-written meson testlogs: a skipped test passes nothing and
fails nothing, except in a suite named by --skip-fails (interop where qemu is installed), where
it is a failure that is named."""

import json
import os
import subprocess
import sys
import tempfile

SCRIPT = os.path.join(os.environ["DMVPN_SOURCE"], "scripts", "summarize-tests")
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def run(records, *flags):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    try:
        p = subprocess.run([sys.executable, SCRIPT, *flags, f.name], capture_output=True,
                           text=True, timeout=30)
    finally:
        os.unlink(f.name)
    return p.returncode, p.stdout.strip().splitlines()[-1], p.stderr


LOG = [
    {"name": "hub_units", "suite": ["dmvpn-hub:unit"], "result": "OK"},
    {"name": "wire_gre", "suite": ["dmvpn-hub:unit"], "result": "OK"},
    {"name": "interop_frr", "suite": ["dmvpn-hub:interop"], "result": "SKIP"},
    {"name": "e2e_scale", "suite": ["dmvpn-hub:e2e"], "result": "SKIP"},
]

rc, last, _ = run(LOG)
check(rc == 0 and last == "2 passed, 0 failed",
      "without --skip-fails two skips are neither passed nor failed: %r, rc %d" % (last, rc))
rc, last, err = run(LOG, "--skip-fails", "interop")
check(rc == 1 and last == "2 passed, 1 failed",
      "--skip-fails interop: the interop skip fails, the e2e skip does not: %r, rc %d" %
      (last, rc))
check("interop_frr" in err and "e2e_scale" not in err,
      "the failed skip is named on stderr: %r" % err.strip())
rc, last, _ = run(LOG[:2] + [{"name": "interop_frr", "suite": ["dmvpn-hub:interop"],
                               "result": "OK"}], "--skip-fails", "interop")
check(rc == 0 and last == "3 passed, 0 failed",
      "an interop test that ran passes under --skip-fails: %r" % last)
rc, last, _ = run(LOG[:1] + [{"name": "x", "suite": ["dmvpn-hub:unit"], "result": "FAIL"}])
check(rc == 1 and last == "1 passed, 1 failed", "a failure stays a failure: %r" % last)

print("%d failure(s)" % len(failures))
sys.exit(1 if failures else 0)
