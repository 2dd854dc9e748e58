#!/usr/bin/env python3
"""The C++ tree is formatted as .clang-format says: `clang-format --dry-run -Werror` on every
.cpp/.hpp file of the checkout (git ls-files; every such file under the source tree's own folders
when it is not a git checkout). Prints the first differences of each file that is off."""

import os
import shutil
import subprocess
import sys

SOURCE = os.environ.get("DMVPN_SOURCE", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sources():
    r = subprocess.run(["git", "-C", SOURCE, "ls-files", "*.cpp", "*.hpp"], capture_output=True,
                       text=True)
    if r.returncode == 0 and r.stdout.strip():
        return [os.path.join(SOURCE, f) for f in r.stdout.split()]
    out = []
    for top in ("bench", "config", "control", "crypto", "dataplane", "tests", "tools"):
        for d, _, files in os.walk(os.path.join(SOURCE, top)):
            out += [os.path.join(d, f) for f in files if f.endswith((".cpp", ".hpp"))]
    return out


def main():
    tool = shutil.which("clang-format")
    if tool is None:
        print("clang-format is not installed (scripts/setup installs it)")
        return 1
    files = sources()
    bad = []
    for i in range(0, len(files), 50):
        r = subprocess.run([tool, "--dry-run", "-Werror", *files[i:i + 50]], capture_output=True,
                           text=True)
        if r.returncode != 0:
            for line in r.stderr.splitlines():
                if "error:" in line:
                    bad.append(line.split(":")[0])
            print(r.stderr[:4000])
    bad = sorted(set(bad))
    print("%d files checked, %d not formatted%s" % (len(files), len(bad),
                                                    ": " + " ".join(bad) if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
