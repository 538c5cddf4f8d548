#!/usr/bin/env python3
"""How long moving a process into a new cgroup takes on this host (root only).

Every container start moves its first process into its cgroups. Without cgroup2's
favordynmods the kernel waits for an RCU grace period on such a move (6-14 ms here);
with it, about 0.1 ms. Prints the milliseconds of 10 moves, 0.3 s apart, into new
pids cgroups (v1 hierarchy at /sys/fs/cgroup/pids). See BENCHMARKS.md, "Session 6".
"""
import os, subprocess, time

def move_once(i):
    d = f"/sys/fs/cgroup/pids/berth-migration-bench-{os.getpid()}-{i}"
    os.mkdir(d)
    p = subprocess.Popen(["sleep", "5"])
    try:
        t = time.perf_counter()
        with open(d + "/cgroup.procs", "w") as f:
            f.write(str(p.pid))
        return (time.perf_counter() - t) * 1000
    finally:
        p.kill()
        p.wait()
        os.rmdir(d)

mounts = open("/proc/self/mounts").read()
print("favordynmods:", "on" if "favordynmods" in mounts else "off")
ms = []
for i in range(10):
    ms.append(move_once(i))
    time.sleep(0.3)
print("ms per move:", " ".join(f"{x:.1f}" for x in ms))
