"""A CPU of the bench's own on a shared machine: every other task of the machine (other users'
work included) moved for a run into a cpuset (cgroup v1, /sys/fs/cgroup/cpuset) that holds only
the other CPU, and moved back afterwards. What the calling script starts after `isolate()` stays
in the root cpuset (it inherits the script's) and is pinned by the script as before, so the
isolated CPU runs only the threads the bench pins there and per-CPU kernel threads, as
`isolcpus` or a cpuset gives a deployment's dedicated cores. Used by bench/routes (the worker's
CPU) and bench/ike (the control lcore's CPU)."""

import os
import sys

CPUSET = "/sys/fs/cgroup/cpuset"
REST = os.path.join(CPUSET, "dmvpn-bench-rest")


def _ancestry():
    """This process and its ancestors: their threads stay where they are."""
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        with open("/proc/%d/stat" % pid) as f:
            pid = int(f.read().rsplit(")", 1)[1].split()[1])
    return pids


def _tgid_of(tid):
    try:
        with open("/proc/%d/status" % tid) as f:
            for line in f:
                if line.startswith("Tgid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def isolate(others_cpu, what):
    """Moves every task but this script's ancestry into a cpuset of `others_cpu` alone; returns
    {"moved", "unmovable" (kernel threads), "others_cpu"}. Exits naming what is missing when
    the machine has no cgroup v1 cpuset."""
    if not os.path.exists(os.path.join(CPUSET, "tasks")):
        sys.exit("bench: isolating %s needs cgroup v1's cpuset at %s" % (what, CPUSET))
    os.makedirs(REST, exist_ok=True)
    with open(os.path.join(REST, "cpuset.cpus"), "w") as f:
        f.write(str(others_cpu))
    with open(os.path.join(CPUSET, "cpuset.mems")) as src, \
            open(os.path.join(REST, "cpuset.mems"), "w") as f:
        f.write(src.read().strip())
    keep = _ancestry()
    with open(os.path.join(CPUSET, "tasks")) as f:
        tids = [int(t) for t in f.read().split()]
    moved = unmovable = 0
    for tid in tids:
        if _tgid_of(tid) in keep:
            continue
        try:
            with open(os.path.join(REST, "tasks"), "w") as f:
                f.write(str(tid))
            moved += 1
        except OSError:
            unmovable += 1
    print("isolate %s: %d tasks moved to CPU %d, %d not movable (kernel threads)"
          % (what, moved, others_cpu, unmovable), flush=True)
    return {"moved": moved, "unmovable": unmovable, "others_cpu": others_cpu}


def release():
    """Moves the tasks `isolate()` moved (and their children since) back to the root cpuset."""
    try:
        with open(os.path.join(REST, "tasks")) as f:
            tids = f.read().split()
    except OSError:
        return
    for tid in tids:
        try:
            with open(os.path.join(CPUSET, "tasks"), "w") as f:
                f.write(tid)
        except OSError:
            pass  # gone meanwhile
    try:
        os.rmdir(REST)
    except OSError as e:
        print("isolate: %s left behind: %s" % (REST, e))
