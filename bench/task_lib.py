"""Shared pieces of the task benchmarks (bench/task_start.py, bench/task_density.py):
an ECS client for Berth (botocore, so no CLI process start is timed), percentiles,
the machine's CPU busy figure, and the processes and mounts a data directory owns."""
import os, time

import botocore.config, botocore.session


def ecs_client(url):
    s = botocore.session.get_session()
    return s.create_client(
        "ecs",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=botocore.config.Config(retries={"max_attempts": 1}, read_timeout=120),
    )


def ts(v):
    """A botocore timestamp (datetime) as epoch seconds, or None."""
    return v.timestamp() if v is not None else None


def pct(vals, p):
    """Nearest-rank percentile (p99 of 100 values is the 99th smallest)."""
    v = sorted(vals)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, -(-p * len(v) // 100) - 1))
    return v[int(k)]


def cpu_busy(interval):
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]

    t1, i1 = snap()
    time.sleep(interval)
    t2, i2 = snap()
    return 100.0 * (1 - (i2 - i1) / max(1, t2 - t1))


def quiet(max_wait_s, limit=15.0):
    """Wait until the whole machine is under `limit`% CPU busy over one second, at most
    max_wait_s; return the last busy figure (above the limit: other work was running)."""
    deadline = time.monotonic() + max_wait_s
    while True:
        busy = cpu_busy(1.0)
        if busy < limit or time.monotonic() > deadline:
            return busy


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0")[:-1]]
    except OSError:
        return []


def shim_pids(data_dir):
    """The task supervisors of this data directory: `<exe> shim DATA/tasks/<id>`
    (matched on the arguments, whatever argv[0] reads)."""
    prefix = os.path.join(os.path.realpath(data_dir), "tasks") + "/"
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            a = cmdline(d)
            if len(a) >= 3 and a[1] == "shim" and a[2].startswith(prefix):
                out.append(int(d))
    return out


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def smaps_rollup(pid):
    """{'Rss': kB, 'Pss': kB, ...} of a process, or {} if it is gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1])
    except OSError:
        pass
    return out


def mounts_under(path):
    path = os.path.realpath(path)
    with open("/proc/mounts") as f:
        return [l.split()[1] for l in f if l.split()[1].startswith(path)]


class OtherLoad:
    """Samples the process table every `interval` s in a thread and adds up the CPU time
    of processes that are not the benchmark's: not descendants of `root_pid`, not naming
    `work_dir` in their command line (runc, shims, containerd's shims), not kernel
    threads. Processes born and dead between two samples are missed, so it is a lower
    bound; it says whether other work ran during a measurement, and which."""

    def __init__(self, root_pid, work_dir, interval=0.5):
        import threading

        self.root, self.work, self.interval = int(root_pid), os.path.realpath(work_dir), interval
        self.prev, self.total, self.by_name = {}, 0.0, {}
        self.hz = os.sysconf("SC_CLK_TCK")
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def snapshot(self):
        procs = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    s = f.read()
            except OSError:
                continue
            name = s[s.index("(") + 1 : s.rindex(")")]
            rest = s[s.rindex(")") + 2 :].split()
            ppid, flags = int(rest[1]), int(rest[6])
            cpu = (int(rest[11]) + int(rest[12])) / self.hz
            procs[int(d)] = (ppid, flags, cpu, name)
        ours = {}

        def is_ours(pid, depth=0):
            if pid in ours:
                return ours[pid]
            if pid == self.root:
                r = True
            elif pid <= 1 or pid not in procs or depth > 64:
                r = False
            elif self.work in " ".join(cmdline(pid)):
                r = True
            else:
                r = is_ours(procs[pid][0], depth + 1)
            ours[pid] = r
            return r

        out = {}
        for pid, (ppid, flags, cpu, name) in procs.items():
            if flags & 0x00200000 or pid == 2 or ppid == 2:  # PF_KTHREAD
                continue
            if pid == os.getpid() or is_ours(pid):
                continue
            out[pid] = (cpu, name)
        return out

    def run(self):
        self.prev = self.snapshot()
        while not self.stop_ev.wait(self.interval):
            cur = self.snapshot()
            for pid, (cpu, name) in cur.items():
                # Born since the last sample: all its CPU time is new.
                d = cpu - self.prev[pid][0] if pid in self.prev else cpu
                if d > 0:
                    self.total += d
                    self.by_name[name] = self.by_name.get(name, 0.0) + d
            self.prev = cur

    def __enter__(self):
        self.t0 = time.monotonic()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.thread.join()
        self.elapsed = time.monotonic() - self.t0

    def summary(self):
        """{'cpu_s': seconds, 'pct_of_core': %, 'top': [[name, seconds], ...]}"""
        top = sorted(self.by_name.items(), key=lambda kv: -kv[1])[:4]
        return {
            "cpu_s": round(self.total, 2),
            "pct_of_core": round(100 * self.total / max(self.elapsed, 1e-9), 1),
            "top": [[n, round(s, 2)] for n, s in top],
        }
