"""What the interop scripts share to report and to drive the rig: the ok/FAIL checklist and a
runner for scripts/interop/rig in a script's own namespace and run directory."""

import subprocess


class Checks:
    """check(cond, what, detail=""): prints ok/FAIL (and `detail` on a failure), remembers the
    failures in `failures` and returns cond."""

    def __init__(self):
        self.failures = []

    def __call__(self, cond, what, detail=""):
        print(("ok   " if cond else "FAIL ") + what, flush=True)
        if not cond:
            self.failures.append(what)
            if detail:
                print(detail.rstrip(), flush=True)
        return cond


def rig_runner(rig, env):
    """rig(*args, timeout=120, check_rc=True): runs the rig script `rig` with `env`; a non-zero
    status raises AssertionError with its output unless check_rc is False."""

    def run(*args, timeout=120, check_rc=True):
        r = subprocess.run([str(rig), *args], env=env, capture_output=True, text=True,
                           timeout=timeout)
        if check_rc and r.returncode != 0:
            raise AssertionError(
                f"rig {' '.join(args)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        return r

    return run
