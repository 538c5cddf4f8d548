"""Task churn against a running Berth (bench/churn.sh starts it): a service whose task
exits at once crash-loops the whole time while workers run TASKS short tasks (RunTask,
10 at a time, each batch waited on until STOPPED). Berth's test clock runs ACCEL times
faster than the wall clock, so stopped tasks' hour of retention and the service's
backoff pass in minutes. Every SAMPLE seconds: tasks done, Berth's clock, the server's
RSS, the tasks the scheduler's index holds and its pass times (from its debug log).
At the end the server is killed (-9) and reopened on the same data directory: the time
until it answers ListClusters.

Usage: churn.py URL PID LOG DATA TASKS ACCEL SUBNET"""
import json, os, re, subprocess, sys, threading, time, urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from task_lib import ecs_client, pct

URL, PID, LOG, DATA = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
TASKS, ACCEL, SUBNET = int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
SAMPLE = float(os.environ.get("SAMPLE", "30"))
WORKERS = int(os.environ.get("WORKERS", "4"))
NET = {"awsvpcConfiguration": {"subnets": [SUBNET]}}
ecs = ecs_client(URL)
done = 0
lock = threading.Lock()
stop = threading.Event()


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def clock_hours():
    """Hours Berth's test clock is ahead (NaN for a build without one)."""
    try:
        with urllib.request.urlopen(f"{URL}/_berth/clock") as r:
            return json.load(r)["offsetMs"] / 3_600_000
    except OSError:
        return float("nan")


def advance_clock():
    # Berth's clock runs ACCEL times as fast: each wall second adds ACCEL - 1 more.
    while not stop.wait(1.0):
        req = urllib.request.Request(
            f"{URL}/_berth/clock", data=json.dumps({"advance": f"{ACCEL - 1}s"}).encode(), method="POST"
        )
        urllib.request.urlopen(req).read()


PASS = re.compile(r"services=(\d+) tasks=(\d+) micros=(\d+)")


def passes(offset):
    """Scheduler passes logged since byte `offset`: [(index tasks, micros)], new offset."""
    with open(LOG, "rb") as f:
        f.seek(offset)
        text = f.read()
    out = [(int(m.group(2)), int(m.group(3))) for m in PASS.finditer(text.decode(errors="replace"))]
    return out, offset + len(text)


def worker(n):
    global done
    while True:
        with lock:
            if done >= TASKS:
                return
            count = min(10, TASKS - done)
            done += count
        out = ecs.run_task(cluster="churn", taskDefinition="quick", launchType="FARGATE", count=count, networkConfiguration=NET)
        arns = [t["taskArn"] for t in out["tasks"]]
        while True:
            ts = ecs.describe_tasks(cluster="churn", tasks=arns)["tasks"]
            if all(t["lastStatus"] == "STOPPED" for t in ts):
                break
            time.sleep(0.2)


ecs.create_service(cluster="churn", serviceName="crash", taskDefinition="crash", desiredCount=1, launchType="FARGATE", networkConfiguration=NET)
if ACCEL > 1:
    threading.Thread(target=advance_clock, daemon=True).start()
workers = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
t0 = time.time()
for w in workers:
    w.start()
print(f"{'wall s':>7} {'tasks run':>9} {'berth h':>8} {'RSS MiB':>8} {'kept':>6} {'passes':>6} {'pass p50 ms':>11} {'pass max ms':>11}", flush=True)
offset = 0
rows = []
while True:
    alive = any(w.is_alive() for w in workers)
    time.sleep(0 if not alive else SAMPLE)
    ps, offset = passes(offset)
    kept = ps[-1][0] if ps else (rows[-1][4] if rows else 0)
    micros = [p[1] for p in ps]
    row = (time.time() - t0, min(done, TASKS), clock_hours(), rss_mib(PID), kept, len(ps), pct(micros, 50) / 1000, max(micros, default=0) / 1000)
    rows.append(row)
    print(f"{row[0]:7.0f} {row[1]:9d} {row[2]:8.1f} {row[3]:8.1f} {row[4]:6d} {row[5]:6d} {row[6]:11.2f} {row[7]:11.2f}", flush=True)
    if not alive:
        break
stop.set()
svc = ecs.describe_services(cluster="churn", services=["crash"])["services"][0]
print(f"crash-looping service: {len(svc['events'])} events kept, {len(svc['deployments'])} deployment(s), failedTasks {svc['deployments'][0].get('failedTasks')}")
print(f"RSS: first sample {rows[0][3]:.1f} MiB, last {rows[-1][3]:.1f} MiB, max {max(r[3] for r in rows):.1f} MiB")
