#!/usr/bin/env python3
"""Many concurrently running tasks (driven by bench/task_density.sh): start N tasks of a
sleeping container, wait until all are RUNNING, measure every supervisor's memory (PSS
from /proc/PID/smaps_rollup), stop them all, and check that nothing is left.

Usage: bench/task_density.py URL CLUSTER TASKDEF SUBNET N DATA_DIR BERTH_PID OUT.json
"""
import glob, json, os, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from task_lib import OtherLoad, children, cpu_busy, ecs_client, loadavg, mounts_under, pct, shim_pids, smaps_rollup, ts  # noqa: E402


def mem_available_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    """utime + stime of a process, in seconds (0 if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def describe_all(ecs, cluster, arns):
    out = []
    for k in range(0, len(arns), 100):
        out += ecs.describe_tasks(cluster=cluster, tasks=arns[k : k + 100])["tasks"]
    return out


def wait_status(ecs, cluster, arns, want, deadline_s):
    """Poll until every task's lastStatus is `want` (or STOPPED, which ends the wait for
    that task); returns (tasks, seconds waited, timed out)."""
    t0 = time.monotonic()
    while True:
        tasks = describe_all(ecs, cluster, arns)
        done = [t for t in tasks if t["lastStatus"] in (want, "STOPPED")]
        if len(done) == len(arns):
            return tasks, time.monotonic() - t0, False
        if time.monotonic() - t0 > deadline_s:
            return tasks, time.monotonic() - t0, True
        time.sleep(0.25)


def leftovers(data_dir, ids):
    """What is left of this run's tasks (other Berth instances on the machine share the
    `berth` cgroup parent, so cgroups are looked for by task id)."""
    cgroups = [d for i in ids for d in glob.glob(f"/sys/fs/cgroup/*/berth/{i}") + glob.glob(f"/sys/fs/cgroup/berth/{i}")]
    tasks_dir = os.path.join(data_dir, "tasks")
    dirs = [d for d in os.listdir(tasks_dir) if not d.startswith(".")] if os.path.isdir(tasks_dir) else []
    return {
        "shims": len(shim_pids(data_dir)),
        "mounts": len(mounts_under(data_dir)),
        "cgroups": len(cgroups),
        "task_dirs": len(dirs),
    }


def main():
    with OtherLoad(os.environ.get("BENCH_ROOT", os.getppid()), os.environ.get("BENCH_WORK", "/nonexistent")) as others:
        r = measure()
    r["others"] = others.summary()
    with open(sys.argv[8], "w") as f:
        json.dump(r, f, indent=1)
    report(r)


def measure():
    url, cluster, taskdef, subnet, n, data_dir, berth_pid, _out = sys.argv[1:9]
    n, berth_pid = int(n), int(berth_pid)
    ecs = ecs_client(url)
    net = {"awsvpcConfiguration": {"subnets": [subnet]}}
    r = {"n": n, "busy_before": round(cpu_busy(1.0)), "loadavg_before": loadavg()}
    avail0 = mem_available_kib()
    berth0 = smaps_rollup(berth_pid)

    # Start: RunTask with count up to 10, back to back.
    arns, failures = [], []
    t0 = time.time()
    m0 = time.monotonic()
    while len(arns) < n:
        resp = ecs.run_task(cluster=cluster, taskDefinition=taskdef, launchType="FARGATE",
                            networkConfiguration=net, count=min(10, n - len(arns)))
        arns += [t["taskArn"] for t in resp.get("tasks", [])]
        failures += resp.get("failures", [])
        if resp.get("failures"):
            break
    r["run_task_calls_s"] = round(time.monotonic() - m0, 3)
    r["run_task_failures"] = failures
    tasks, waited, timed_out = wait_status(ecs, cluster, arns, "RUNNING", 600)
    r["all_running_seen_s"] = round(time.monotonic() - m0, 2)
    running = [t for t in tasks if t["lastStatus"] == "RUNNING"]
    stopped = [t for t in tasks if t["lastStatus"] == "STOPPED"]
    r["running"] = len(running)
    r["stopped_early"] = [{"task": t["taskArn"].rsplit("/", 1)[-1], "stopCode": t.get("stopCode"),
                           "reason": t.get("stoppedReason"),
                           "containers": [{k: c.get(k) for k in ("lastStatus", "exitCode", "reason")} for c in t["containers"]]}
                          for t in stopped][:10]
    r["stopped_early_count"] = len(stopped)
    r["timed_out_waiting_running"] = timed_out
    r["not_running_at_deadline"] = [t["lastStatus"] for t in tasks if t["lastStatus"] not in ("RUNNING", "STOPPED")][:10]
    starts = sorted(ts(t["startedAt"]) - t0 for t in running if t.get("startedAt"))
    if starts:
        r["started_first_s"] = round(starts[0], 3)
        r["started_p50_s"] = round(pct(starts, 50), 3)
        r["started_last_s"] = round(starts[-1], 3)

    # Memory, once everything settled for a few seconds.
    time.sleep(5)
    shims = shim_pids(data_dir)
    per = {p: smaps_rollup(p) for p in shims}
    per = {p: m for p, m in per.items() if m}
    pss = [m["Pss"] for m in per.values()]
    r["shims"] = len(per)
    if pss:
        r["shim_pss_kib"] = {"mean": round(sum(pss) / len(pss), 1), "min": min(pss), "p50": pct(pss, 50),
                             "max": max(pss), "total": sum(pss)}
        for k in ("Rss", "Pss_Anon", "Pss_File", "Private_Dirty"):
            v = [m.get(k, 0) for m in per.values()]
            r[f"shim_{k.lower()}_kib_mean"] = round(sum(v) / len(v), 1)
        r["shim_threads"] = sorted({int(open(f"/proc/{p}/status").read().split("Threads:")[1].split()[0]) for p in per})
    ctr = [c for p in per for c in children(p)]
    cm = [smaps_rollup(c) for c in ctr]
    r["container_processes"] = len(ctr)
    r["container_pss_kib_total"] = sum(m.get("Pss", 0) for m in cm)
    b = smaps_rollup(berth_pid)
    r["berth_up_kib"] = {"rss_before": berth0.get("Rss"), "pss_before": berth0.get("Pss"),
                         "rss": b.get("Rss"), "pss": b.get("Pss")}
    cg_kib = None
    for a in arns:
        i = a.rsplit("/", 1)[-1]
        for cg in (f"/sys/fs/cgroup/memory/berth/{i}/memory.usage_in_bytes", f"/sys/fs/cgroup/berth/{i}/memory.current"):
            if os.path.exists(cg):
                cg_kib = (cg_kib or 0) + int(open(cg).read()) // 1024
                break
    r["berth_cgroup_memory_kib"] = cg_kib
    r["mem_available_drop_kib"] = avail0 - mem_available_kib()
    r["mounts_under_data"] = len(mounts_under(data_dir))
    r["loadavg_running"] = loadavg()
    # Idle cost: CPU used by berth up, the supervisors and the containers over 5 s, and
    # the whole machine's busy figure over the same 5 s (others' work included).
    pids = {"berth": [berth_pid], "shims": list(per), "containers": ctr}
    c0 = {k: sum(cpu_s(p) for p in v) for k, v in pids.items()}
    r["busy_running"] = round(cpu_busy(5.0))
    r["idle_cpu_pct_of_core_5s"] = {k: round(100 * (sum(cpu_s(p) for p in v) - c0[k]) / 5.0, 2) for k, v in pids.items()}

    # Stop everything.
    m1 = time.monotonic()
    stop_errors = 0
    for a in arns:
        try:
            ecs.stop_task(cluster=cluster, task=a, reason="density bench done")
        except Exception as e:  # noqa: BLE001
            stop_errors += 1
            r.setdefault("stop_error_examples", []).append(str(e)[:200])
    r["stop_task_calls_s"] = round(time.monotonic() - m1, 2)
    r["stop_errors"] = stop_errors
    tasks, waited, timed_out = wait_status(ecs, cluster, arns, "STOPPED", 300)
    r["all_stopped_seen_s"] = round(time.monotonic() - m1, 2)
    r["timed_out_waiting_stopped"] = timed_out
    r["stopped"] = sum(1 for t in tasks if t["lastStatus"] == "STOPPED")
    r["stop_codes"] = sorted({t.get("stopCode") for t in tasks if t["lastStatus"] == "STOPPED"}, key=str)
    # Clean-up follows the STOPPED record; give it up to 30 s.
    deadline = time.monotonic() + 30
    while True:
        left = leftovers(data_dir, [a.rsplit("/", 1)[-1] for a in arns])
        if not any(left.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    r["leftovers_after_stop"] = left
    r["clean_after_s"] = round(time.monotonic() - m1, 2)
    return r


def report(r):
    w = print
    p = r.get("shim_pss_kib", {})
    w("| Measure | Value |")
    w("|---|---|")
    w(f"| Tasks asked for / RUNNING at once | {r['n']} / {r['running']} (stopped early: {r['stopped_early_count']}) |")
    w(f"| RunTask calls (count 10 each), all answered after | {r['run_task_calls_s']} s |")
    if "started_last_s" in r:
        w(f"| startedAt after the first RunTask: first / median / last | {r['started_first_s']} / {r['started_p50_s']} / {r['started_last_s']} s |")
    w(f"| All RUNNING seen by the polling client after | {r['all_running_seen_s']} s |")
    if p:
        w(f"| Supervisors (`berth shim`) found | {r['shims']} ({', '.join(map(str, r['shim_threads']))} thread(s) each) |")
        w(f"| Supervisor PSS: mean / median / min / max | {p['mean'] / 1024:.2f} / {p['p50'] / 1024:.2f} / {p['min'] / 1024:.2f} / {p['max'] / 1024:.2f} MiB |")
        w(f"| Supervisor PSS: anonymous / file-backed (mean) | {r['shim_pss_anon_kib_mean'] / 1024:.2f} / {r['shim_pss_file_kib_mean'] / 1024:.2f} MiB |")
        w(f"| Supervisor RSS (mean; shared pages counted in full) | {r['shim_rss_kib_mean'] / 1024:.2f} MiB |")
        w(f"| All supervisors, PSS total | {p['total'] / 1024:.1f} MiB |")
    b = r["berth_up_kib"]
    w(f"| `berth up` RSS / PSS, before the tasks -> with them running | {b['rss_before'] / 1024:.1f} / {b['pss_before'] / 1024:.1f} -> {b['rss'] / 1024:.1f} / {b['pss'] / 1024:.1f} MiB |")
    w(f"| Container processes (`sleep`), PSS total | {r['container_processes']} processes, {r['container_pss_kib_total'] / 1024:.1f} MiB |")
    if r.get("berth_cgroup_memory_kib") is not None:
        w(f"| The tasks' cgroups, memory charged (sum; includes page cache and kernel memory) | {r['berth_cgroup_memory_kib'] / 1024:.1f} MiB |")
    w(f"| Mounts under the data directory while running | {r['mounts_under_data']} |")
    ic = r["idle_cpu_pct_of_core_5s"]
    w(f"| CPU used with all tasks running, over 5 s: berth up / all supervisors / all containers | {ic['berth']}% / {ic['shims']}% / {ic['containers']}% of a core |")
    w(f"| Whole machine CPU busy over those 5 s (other work included) / load average | {r['busy_running']}% / {r['loadavg_running']} |")
    w(f"| StopTask x{r['n']} calls took / all STOPPED seen after | {r['stop_task_calls_s']} / {r['all_stopped_seen_s']} s (errors: {r['stop_errors']}, stop codes: {', '.join(map(str, r['stop_codes']))}) |")
    o = r.get("others")
    if o:
        top = ", ".join(f"{n} {t:.1f}s" for n, t in o["top"] if t >= 0.05)
        w(f"| Other processes' CPU during the whole measurement | {o['pct_of_core']:.0f}% of a core{f' ({top})' if top else ''} |")
    lo = r["leftovers_after_stop"]
    w(f"| Left after stop: supervisors / mounts / cgroups / task dirs | {lo['shims']} / {lo['mounts']} / {lo['cgroups']} / {lo['task_dirs']} (checked until {r['clean_after_s']} s after the first StopTask) |")
    w("")
    ok_n = r["running"] == r["n"]
    ok_m = bool(p) and p["mean"] < 2048
    w("| Target | Measured | Result |")
    w("|---|---:|---|")
    w(f"| {r['n']} tasks running at once | {r['running']} | {'met' if ok_n else 'MISSED'} |")
    if p:
        w(f"| Supervisor PSS per task < 2 MiB (mean; max) | {p['mean'] / 1024:.2f} MiB; {p['max'] / 1024:.2f} MiB | {'met' if ok_m else 'MISSED'}{'' if p['max'] < 2048 else ' (max above)'} |")
    w(f"| Nothing left after stopping | {sum(lo.values())} leftovers | {'met' if not any(lo.values()) else 'MISSED'} |")
    if r["stopped_early"]:
        w("")
        w("Tasks that stopped early (first 10): " + json.dumps(r["stopped_early"]))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "report":
        report(json.load(open(sys.argv[2])))
    elif len(sys.argv) != 9:
        sys.exit(__doc__)
    else:
        main()
