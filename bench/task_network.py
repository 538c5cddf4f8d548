#!/usr/bin/env python3
"""Task networking benchmarks (driven by bench/task_network.sh).

  start URL CLUSTER SUBNET N OUT.json   RunTask -> startedAt for the same `true` task,
                                        alternately awsvpc (FARGATE, family net-awsvpc)
                                        and network mode none (EC2, family net-none)
  throughput ADDR_A ADDR_B MIB ROUNDS   MiB/s sending MIB MiB to each address (host:port),
                                        alternately, ROUNDS times each; prints medians
  report OUT.json                       the start table
"""
import json, os, socket, statistics, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from task_lib import ecs_client, pct, ts  # noqa: E402


def run_one(ecs, cluster, family, launch, subnet):
    kw = {"cluster": cluster, "taskDefinition": family, "launchType": launch}
    if launch == "FARGATE":
        kw["networkConfiguration"] = {"awsvpcConfiguration": {"subnets": [subnet]}}
    t0 = time.time()
    r = ecs.run_task(**kw)
    if not r.get("tasks"):
        return None, r.get("failures")
    arn = r["tasks"][0]["taskArn"]
    deadline = time.monotonic() + 60
    while True:
        t = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
        if t["lastStatus"] == "STOPPED":
            break
        if time.monotonic() > deadline:
            return None, f"stuck in {t['lastStatus']}"
        time.sleep(0.05)
    c = t["containers"][0]
    if c.get("exitCode") != 0 or not t.get("startedAt"):
        return None, {"reason": t.get("stoppedReason"), "exit": c.get("exitCode")}
    return ts(t["startedAt"]) - t0, None


def cmd_start(args):
    url, cluster, subnet, n, out = args
    ecs = ecs_client(url)
    res = {"awsvpc": [], "none": [], "failures": []}
    # Warm both paths, then alternate so drift on the machine hits both alike.
    for i in range(4 + 2 * int(n)):
        mode = "awsvpc" if i % 2 == 0 else "none"
        dt, fail = run_one(ecs, cluster, f"net-{mode}", "FARGATE" if mode == "awsvpc" else "EC2", subnet)
        if fail is not None:
            res["failures"].append({"mode": mode, "failure": fail})
        elif i >= 4:
            res[mode].append(dt)
    with open(out, "w") as f:
        json.dump(res, f)
    print(f"start: {len(res['awsvpc'])} awsvpc and {len(res['none'])} none tasks measured, {len(res['failures'])} failed")
    for fl in res["failures"][:5]:
        print("  failure:", fl)


def send(addr, mib):
    host, port = addr.rsplit(":", 1)
    buf = b"\0" * (1 << 20)
    deadline = time.monotonic() + 10
    while True:
        try:
            s = socket.create_connection((host, int(port)), timeout=10)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)  # the sink is between two connections
    t0 = time.perf_counter()
    for _ in range(mib):
        s.sendall(buf)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)  # the sink closes once it has read everything
    dt = time.perf_counter() - t0
    s.close()
    return mib / dt


def cmd_throughput(args):
    a, b, mib, rounds = args[0], args[1], int(args[2]), int(args[3])
    send(a, 64), send(b, 64)
    ra, rb = [], []
    for _ in range(rounds):
        ra.append(send(a, mib))
        rb.append(send(b, mib))
    ma, mb = statistics.median(ra), statistics.median(rb)
    print(f"| port mapping ({a}) | {ma:.0f} MiB/s | runs {', '.join(f'{x:.0f}' for x in ra)} |")
    print(f"| direct to the task ({b}) | {mb:.0f} MiB/s | runs {', '.join(f'{x:.0f}' for x in rb)} |")
    print(f"\nratio, port mapping / direct: {ma / mb:.2f}x (target: at least 0.8x)")


def cmd_report(args):
    with open(args[0]) as f:
        r = json.load(f)
    ms = lambda v: f"{v * 1000:.1f}"
    print("| Task start, RunTask -> startedAt | runs | p50 ms | p99 ms | min ms | max ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode, label in (("none", "network mode none (EC2)"), ("awsvpc", "awsvpc (FARGATE): address, veth, route")):
        v = r[mode]
        print(f"| {label} | {len(v)} | {ms(pct(v, 50))} | {ms(pct(v, 99))} | {ms(min(v))} | {ms(max(v))} |")
    d = pct(r["awsvpc"], 50) - pct(r["none"], 50)
    print(f"\nawsvpc adds {d * 1000:.1f} ms at p50 (target: at most 10 ms); failures: {len(r['failures'])}")


if __name__ == "__main__":
    {"start": cmd_start, "throughput": cmd_throughput, "report": cmd_report}[sys.argv[1]](sys.argv[2:])
