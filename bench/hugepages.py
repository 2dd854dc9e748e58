"""2 MiB hugepages for the benches' DPDK processes (what a deployment runs on): reserved and
hugetlbfs mounted when run as root, or the bench stops with what it needs."""
import os
import re
import subprocess
import sys


def ensure_hugepages(pages, need=512, who="bench"):
    """At least `pages` reserved (as root) and hugetlbfs mounted; returns the free pages, or
    exits naming what is missing when fewer than `need` are free."""
    with open("/proc/sys/vm/nr_hugepages") as f:
        have = int(f.read())
    if have < pages and os.geteuid() == 0:
        with open("/proc/sys/vm/nr_hugepages", "w") as f:
            f.write(str(pages))
    mounted = any(l.split()[2] == "hugetlbfs" for l in open("/proc/mounts"))
    if not mounted and os.geteuid() == 0:
        os.makedirs("/dev/hugepages", exist_ok=True)
        subprocess.run(["mount", "-t", "hugetlbfs", "nodev", "/dev/hugepages"], check=True)
        mounted = True
    with open("/proc/meminfo") as f:
        free = int(re.search(r"HugePages_Free:\s+(\d+)", f.read()).group(1))
    if not mounted or free < need:
        sys.exit("%s: needs >= %d free 2 MiB hugepages and hugetlbfs mounted (root)"
                 % (who, need))
    return free
