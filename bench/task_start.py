#!/usr/bin/env python3
"""Task start latency for a cached image (driven by bench/task_start.sh).

Subcommands (each measurement writes a JSON file of samples; `report` reads them all):
  quiet MAX_WAIT_S                     print the machine's CPU busy % once quiet (or not)
  others OUT.json                      other processes' CPU during that measurement, %
  floor-bundle TASK_DIR CONTAINER OUT  make OUT/config.json from a Berth task's bundle,
                                       for `runc run` of `true` (OUT/rootfs made apart)
  berth URL CLUSTER TASKDEF SUBNET N WARMUP OUT.json
  floor RUNC_ROOT BUNDLE N WARMUP OUT.json
  floor-create-start RUNC_ROOT BUNDLE N WARMUP OUT.json
  docker DOCKER_HOST IMAGE N WARMUP OUT.json
  report DIR                           print the markdown tables
"""
import json, os, shutil, subprocess, sys, time

# The floor's OCI runtime: runc here; crun in the cgroup-v2 VM (bench/task_start_cgroup_v2.sh),
# where Berth picks crun.
RUNTIME = os.environ.get("FLOOR_RUNTIME", "runc")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from task_lib import OtherLoad, ecs_client, loadavg, pct, quiet, ts  # noqa: E402


def watch_others():
    """Other processes' CPU during a measurement (BENCH_ROOT: the script's pid, BENCH_WORK)."""
    return OtherLoad(os.environ.get("BENCH_ROOT", os.getppid()), os.environ.get("BENCH_WORK", "/nonexistent"))


def cmd_quiet(args):
    print(f"{quiet(float(args[0])):.0f}")


def cmd_others(args):
    """Other processes' CPU during a measurement, % of a core (integer)."""
    with open(args[0]) as f:
        print(round(json.load(f).get("others", {}).get("pct_of_core", 0)))


def cmd_floor_bundle(args):
    """Berth's own config.json for the container, changed only where its paths are the
    task's: the netns path is dropped (runc makes a new network namespace for each run,
    as Berth's supervisor makes one per task), /etc/hosts, hostname and resolv.conf are
    copies in OUT, the cgroup is runc's default one per container id, and the process
    is `true`."""
    task_dir, name, out = os.path.realpath(args[0]), args[1], os.path.realpath(args[2])
    with open(os.path.join(task_dir, "containers", name, "config.json")) as f:
        cfg = json.load(f)
    os.makedirs(out, exist_ok=True)
    for m in cfg["mounts"]:
        if m.get("type") == "bind" and m["source"].startswith(task_dir.rstrip("/") + "/"):
            dst = os.path.join(out, "etc-" + os.path.basename(m["source"]))
            shutil.copyfile(m["source"], dst)
            m["source"] = dst
    for ns in cfg["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns.pop("path", None)
    cfg["linux"].pop("cgroupsPath", None)
    cfg["root"]["path"] = "rootfs"
    cfg["process"]["args"] = ["true"]
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)


def cmd_berth(args):
    url, cluster, taskdef, subnet, n, warmup, out = args
    n, warmup = int(n), int(warmup)
    ecs = ecs_client(url)
    net = {"awsvpcConfiguration": {"subnets": [subnet]}}
    samples, failures, no_started_at = [], [], []
    others = watch_others().__enter__()
    i = -1
    # Tasks that ran but whose record lacks startedAt cannot be timed; they are counted,
    # and more tasks are run in their place (at most 2N more).
    while len(samples) < n and i < warmup + 3 * n:
        i += 1
        t0 = time.time()
        r = ecs.run_task(cluster=cluster, taskDefinition=taskdef, launchType="FARGATE", networkConfiguration=net)
        t_answer = time.time()
        if not r.get("tasks"):
            failures.append({"i": i, "failures": r.get("failures")})
            continue
        arn = r["tasks"][0]["taskArn"]
        deadline = time.monotonic() + 60
        while True:
            t = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
            if t["lastStatus"] == "STOPPED":
                break
            if time.monotonic() > deadline:
                failures.append({"i": i, "task": arn, "stuck": t["lastStatus"]})
                t = None
                break
            # Slow polling: startedAt is the supervisor's own clock reading, so how soon the
            # client notices does not change it, and a busy client would take CPU from the
            # start being measured (2 cores).
            time.sleep(0.05)
        if t is None:
            continue
        t_seen = time.time()
        c = t["containers"][0]
        ok = c.get("exitCode") == 0 and t.get("stopCode") == "EssentialContainerExited"
        if ok and not t.get("startedAt"):
            no_started_at.append(arn.rsplit("/", 1)[-1])
            continue
        if not ok:
            failures.append({"i": i, "task": arn, "stopCode": t.get("stopCode"), "reason": t.get("stoppedReason"),
                             "container": {k: c.get(k) for k in ("exitCode", "reason")}})
            continue
        if i < warmup:
            continue
        samples.append({
            "task": arn.rsplit("/", 1)[-1],
            "answer": t_answer - t0,
            "created": ts(t["createdAt"]) - t0,
            "pull_started": ts(t.get("pullStartedAt")) - t0,
            "pull_stopped": ts(t.get("pullStoppedAt")) - t0,
            "started": ts(t["startedAt"]) - t0,
            "run": ts(t["stoppedAt"]) - ts(t["startedAt"]),
            "execution_stopped": ts(t["executionStoppedAt"]) - ts(t["startedAt"]),
            "seen_stopped": t_seen - t0,
        })
    others.__exit__(None, None, None)
    with open(out, "w") as f:
        json.dump({"samples": samples, "failures": failures, "no_started_at": no_started_at, "loadavg": loadavg(),
                   "others": others.summary()}, f)
    print(f"berth: {len(samples)} tasks measured, {len(failures)} failed, "
          f"{len(no_started_at)} exited 0 but have no startedAt (not timed)")
    for fl in failures[:5]:
        print("  failure:", fl)


def timed_runs(argv_for, n, warmup):
    samples, failures = [], []
    with watch_others() as others:
        runs(argv_for, n, warmup, samples, failures)
    return samples, failures, others.summary()


def runs(argv_for, n, warmup, samples, failures):
    for i in range(warmup + n):
        argv = argv_for(i)
        t0 = time.perf_counter()
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            failures.append({"i": i, "rc": p.returncode, "stderr": p.stderr.decode(errors="replace")[-500:]})
            continue
        if i >= warmup:
            samples.append(dt)


def cmd_floor(args):
    root, bundle, n, warmup, out = args
    tag = os.getpid()
    samples, failures, others = timed_runs(
        lambda i: [RUNTIME, "--root", root, "run", "--bundle", bundle, f"bench-{tag}-{i}"], int(n), int(warmup))
    with open(out, "w") as f:
        json.dump({"samples": samples, "failures": failures, "loadavg": loadavg(), "others": others}, f)
    print(f"{RUNTIME} run: {len(samples)} runs measured, {len(failures)} failed")
    for fl in failures[:5]:
        print("  failure:", fl)


def cmd_floor_create_start(args):
    """For insight: what the supervisor runs, `runc create` then `runc start`, timed from
    the first exec to `start` returning (the container's process has been started); the
    container is deleted after the clock stops. This process is the child subreaper, as
    the supervisor is."""
    import ctypes

    root, bundle, n, warmup, out = args
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    tag = os.getpid()
    dn = subprocess.DEVNULL
    samples, failures = [], []
    with watch_others() as others:
        for i in range(int(warmup) + int(n)):
            cid = f"bench-cs-{tag}-{i}"
            t0 = time.perf_counter()
            c = subprocess.run([RUNTIME, "--root", root, "create", "--bundle", bundle, cid], stdin=dn, stdout=dn, stderr=dn)
            st = subprocess.run([RUNTIME, "--root", root, "start", cid], stdin=dn, stdout=dn, stderr=dn) if c.returncode == 0 else c
            dt = time.perf_counter() - t0
            subprocess.run([RUNTIME, "--root", root, "delete", "--force", cid], stdin=dn, stdout=dn, stderr=dn)
            while True:
                try:
                    if os.waitpid(-1, os.WNOHANG)[0] == 0:
                        break
                except ChildProcessError:
                    break
            if c.returncode != 0 or st.returncode != 0:
                failures.append({"i": i, "create_rc": c.returncode, "start_rc": st.returncode})
            elif i >= int(warmup):
                samples.append(dt)
    with open(out, "w") as f:
        json.dump({"samples": samples, "failures": failures, "loadavg": loadavg(), "others": others.summary()}, f)
    print(f"{RUNTIME} create + start: {len(samples)} runs measured, {len(failures)} failed")


def cmd_docker(args):
    host, image, n, warmup, out = args
    docker = shutil.which("docker", path="/usr/bin") or "docker"
    samples, failures, others = timed_runs(
        lambda i: [docker, "-H", host, "run", "--rm", "--network", "none", image, "true"], int(n), int(warmup))
    with open(out, "w") as f:
        json.dump({"samples": samples, "failures": failures, "loadavg": loadavg(), "others": others}, f)
    print(f"docker run: {len(samples)} runs measured, {len(failures)} failed")
    for fl in failures[:5]:
        print("  failure:", fl)


def ms(v):
    return f"{v * 1000:.1f}"


def cmd_report(args):
    d = args[0]

    def load(name):
        with open(os.path.join(d, name)) as f:
            return json.load(f)

    b, fl = load("berth.json"), load("floor.json")
    # No docker run in the cgroup-v2 VM (DOCKER_RUNS=0).
    has_docker = os.path.exists(os.path.join(d, "docker.json"))
    dk = load("docker.json") if has_docker else {"samples": [], "failures": [], "loadavg": "-"}

    def others(src):
        o = src.get("others")
        if not o:
            return "?"
        top = ", ".join(f"{n} {s:.1f}s" for n, s in o["top"] if s >= 0.05)
        return f"{o['pct_of_core']:.0f}% of a core" + (f" ({top})" if top else "")
    busy = {}
    if os.path.exists(os.path.join(d, "busy.txt")):
        for line in open(os.path.join(d, "busy.txt")):
            k, v = line.split()
            busy[k] = v
    bs = b["samples"]
    started = [s["started"] for s in bs]
    rows = [
        ("berth: RunTask request -> startedAt", started, len(b["failures"])),
        (f"floor: `{RUNTIME} run` of `true`, start to exit", fl["samples"], len(fl["failures"])),
        ("docker: `docker run --rm --network none` of `true`", dk["samples"], len(dk["failures"])),
    ][: 3 if has_docker else 2]
    w = print
    w("| Measure | runs | p50 ms | p99 ms | min ms | max ms | failed | CPU busy before | other processes' CPU during | load avg after |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for (name, v, nf), key, src in zip(rows, ("berth", "floor", "docker"), (b, fl, dk)):
        w(f"| {name} | {len(v)} | {ms(pct(v, 50))} | {ms(pct(v, 99))} | {ms(min(v))} | {ms(max(v))} | {nf} "
          f"| {busy.get(key, '?')}% | {others(src)} | {src['loadavg']} |")
    if os.path.exists(os.path.join(d, "berth4096.json")):
        b4 = load("berth4096.json")
        v = [s["started"] for s in b4["samples"]]
        w(f"| for insight: berth, task of 4 vCPU (quota never throttles here), RunTask -> startedAt | {len(v)} | {ms(pct(v, 50))} "
          f"| {ms(pct(v, 99))} | {ms(min(v))} | {ms(max(v))} | {len(b4['failures'])} | {busy.get('berth4096', '?')}% | {others(b4)} "
          f"| {b4['loadavg']} |")
    if os.path.exists(os.path.join(d, "floor_cs.json")):
        cs = load("floor_cs.json")
        v = cs["samples"]
        w(f"| for insight: `{RUNTIME} create` + `{RUNTIME} start` (the supervisor's two calls), to started | {len(v)} | {ms(pct(v, 50))} "
          f"| {ms(pct(v, 99))} | {ms(min(v))} | {ms(max(v))} | {len(cs['failures'])} | {busy.get('floor_cs', '?')}% | {others(cs)} "
          f"| {cs['loadavg']} |")
    w("")
    nsa = b.get("no_started_at", [])
    w(f"Berth tasks that exited 0 but whose record has no startedAt (not timed, replaced by more tasks): "
      f"{len(nsa)} of {len(nsa) + len(bs)}" + (f"; 4 vCPU run: {len(b4.get('no_started_at', []))} of "
      f"{len(b4.get('no_started_at', [])) + len(b4['samples'])}" if os.path.exists(os.path.join(d, "berth4096.json")) else ""))
    w("")
    w("Berth's start, broken down (ms after the client took its time just before sending RunTask):")
    w("")
    w("| Step | p50 ms | p99 ms | max ms |")
    w("|---|---:|---:|---:|")
    parts = [
        ("RunTask answered (client side)", "answer"),
        ("createdAt (task record written)", "created"),
        ("pullStartedAt (node picked the task up)", "pull_started"),
        ("pullStoppedAt (image resolved, cached)", "pull_stopped"),
        ("startedAt (supervisor started the container)", "started"),
        ("STOPPED seen by the client (polling every 50 ms)", "seen_stopped"),
    ]
    for label, k in parts:
        v = [s[k] for s in bs]
        w(f"| {label} | {ms(pct(v, 50))} | {ms(pct(v, 99))} | {ms(max(v))} |")
    w("")
    edges = [0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 1.0]
    counts = [0] * (len(edges) + 1)
    for v in started:
        counts[sum(1 for e in edges if v >= e)] += 1
    labels = [f"<{int(edges[0] * 1000)}"] + [f"{int(a * 1000)}-{int(b * 1000)}" for a, b in zip(edges, edges[1:])] + [f">={int(edges[-1] * 1000)}"]
    line = "RunTask -> startedAt, tasks per range (ms): " + ", ".join(f"{l}: {c}" for l, c in zip(labels, counts) if c)
    if os.path.exists(os.path.join(d, "berth4096.json")):
        counts = [0] * (len(edges) + 1)
        for s in load("berth4096.json")["samples"]:
            counts[sum(1 for e in edges if s["started"] >= e)] += 1
        line += "; the 4 vCPU task: " + ", ".join(f"{l}: {c}" for l, c in zip(labels, counts) if c)
    w(line)
    w("")
    w("| Interval | p50 ms | p99 ms | max ms |")
    w("|---|---:|---:|---:|")
    for label, k in [("startedAt -> executionStoppedAt (`true` ran and was reaped)", "execution_stopped"),
                     ("startedAt -> stoppedAt (record final)", "run")]:
        v = [s[k] for s in bs]
        w(f"| {label} | {ms(pct(v, 50))} | {ms(pct(v, 99))} | {ms(max(v))} |")
    w("")
    fs, ds = fl["samples"], dk["samples"]
    r = [
        ("Berth p50 <= 2x the floor p50", pct(started, 50) / pct(fs, 50), "<=", 2),
        ("Berth p99 <= 2x the floor p99", pct(started, 99) / pct(fs, 99), "<=", 2),
        ("docker p50 >= 5x Berth p50", pct(ds, 50) / pct(started, 50), ">=", 5),
        ("docker p99 >= 5x Berth p99", pct(ds, 99) / pct(started, 99), ">=", 5),
    ][: 4 if has_docker else 2]
    w("| Target | Measured | Result |")
    w("|---|---:|---|")
    for label, v, op, lim in r:
        met = v <= lim if op == "<=" else v >= lim
        w(f"| {label} | {v:.2f}x | {'met' if met else 'MISSED'} |")


if __name__ == "__main__":
    cmds = {
        "quiet": cmd_quiet, "others": cmd_others, "floor-bundle": cmd_floor_bundle, "berth": cmd_berth, "floor": cmd_floor,
        "floor-create-start": cmd_floor_create_start, "docker": cmd_docker, "report": cmd_report,
    }
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[sys.argv[1]](sys.argv[2:])
