#!/usr/bin/python3
"""FPM codec against a live zebra: records FRR 8.4's dplane_fpm_nl stream afresh
(scripts/fpm/record-zebra, with and without next-hop groups) and runs test-fpm-codec's
expectations (staticd's configuration) on the new recordings. Root and Debian's frr needed;
exit 77 (skip) without them."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path(os.environ.get("DMVPN_SOURCE", Path(__file__).resolve().parents[1]))
BUILD = Path(os.environ.get("DMVPN_BUILD", SOURCE / "build"))

if os.geteuid() != 0 or not Path("/usr/lib/frr/zebra").exists():
    print("SKIP: needs root and Debian's frr (scripts/setup)")
    sys.exit(77)

with tempfile.TemporaryDirectory() as tmp:
    nhg, nonhg = Path(tmp) / "nhg.bin", Path(tmp) / "nonhg.bin"
    record = SOURCE / "scripts" / "fpm" / "record-zebra"
    subprocess.run([record, nhg, "--netns", f"dmvpn-fpmlive{os.getpid()}"], check=True)
    subprocess.run([record, nonhg, "--no-nexthop-groups", "--netns",
                    f"dmvpn-fpmlive{os.getpid()}"], check=True)
    env = dict(os.environ, DMVPN_FPM_STREAM=str(nhg), DMVPN_FPM_STREAM_NONHG=str(nonhg))
    r = subprocess.run([BUILD / "tests" / "test-fpm-codec"], env=env)
    sys.exit(r.returncode)
