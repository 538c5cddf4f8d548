#!/usr/bin/env python3
"""Helpers for bench/ecs_api.sh: free ports, waiting for a server, registering task
definitions, checking responses, timing cold starts, reading RSS and printing the table.

Standard library only. Every request goes to 127.0.0.1.
"""

import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
# Unsigned, SigV4-shaped: Berth does not enforce auth by default; moto_server routes on it.
AUTH = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/ecs/aws4_request, SignedHeaders=host, Signature=0"

# A small, ordinary container definition (valid for both Berth and moto).
def taskdef(family):
    return {
        "family": family,
        "containerDefinitions": [
            {
                "name": "app",
                "image": "public.ecr.aws/nginx/nginx:1.27",
                "cpu": 128,
                "memory": 256,
                "essential": True,
                "portMappings": [{"containerPort": 80, "protocol": "tcp"}],
                "environment": [{"name": "MODE", "value": "bench"}],
            }
        ],
        "requiresCompatibilities": ["EC2"],
        "cpu": "256",
        "memory": "512",
    }


def call(conn, op, body):
    data = json.dumps(body).encode()
    conn.request(
        "POST",
        "/",
        body=data,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": TARGET_PREFIX + op,
            "Authorization": AUTH,
        },
    )
    resp = conn.getresponse()
    raw = resp.read()
    return resp.status, raw


def hostport(url):
    # url is http://127.0.0.1:PORT
    hp = url.split("://", 1)[1].rstrip("/")
    host, port = hp.rsplit(":", 1)
    if host != "127.0.0.1":
        sys.exit(f"refusing to send traffic to {host}: only 127.0.0.1 is allowed")
    return host, int(port)


def cmd_free_port(_args):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


def cmd_wait(args):
    """wait URL PATH TIMEOUT_S: poll until GET PATH answers any HTTP status (or 200 for /_berth/health)."""
    url, path, timeout = args[0], args[1], float(args[2])
    host, port = hostport(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection(host, port, timeout=2)
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            c.close()
            if path != "/_berth/health" or r.status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"{url}{path} did not answer within {timeout}s")


def pct(sorted_vals, p):
    if not sorted_vals:
        return 0.0
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def cmd_register(args):
    """register URL FAMILY N: N sequential RegisterTaskDefinition calls on one keep-alive
    connection; prints writes/s and latency percentiles as key=value."""
    url, family, n = args[0], args[1], int(args[2])
    host, port = hostport(url)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    body = taskdef(family)
    lat = []
    last_rev = None
    t0 = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        status, raw = call(conn, "RegisterTaskDefinition", body)
        lat.append(time.perf_counter() - t)
        if status != 200:
            sys.exit(f"RegisterTaskDefinition on {url} answered {status}: {raw[:300]!r}")
        rev = json.loads(raw)["taskDefinition"]["revision"]
        if last_rev is not None and rev != last_rev + 1:
            sys.exit(f"{url}: revision went from {last_rev} to {rev}")
        last_rev = rev
    elapsed = time.perf_counter() - t0
    conn.close()
    lat.sort()
    print(
        f"wps={n / elapsed:.1f} p50_us={pct(lat, 50) * 1e6:.0f} p99_us={pct(lat, 99) * 1e6:.0f} "
        f"elapsed_s={elapsed:.3f} last_revision={last_rev}"
    )


def cmd_check(args):
    """check URL: the read requests the benchmark sends answer correctly; prints their sizes."""
    url = args[0]
    host, port = hostport(url)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    status, raw = call(conn, "DescribeTaskDefinition", {"taskDefinition": "bench:500"})
    if status != 200:
        sys.exit(f"DescribeTaskDefinition on {url} answered {status}: {raw[:300]!r}")
    td = json.loads(raw)["taskDefinition"]
    if td["family"] != "bench" or td["revision"] != 500:
        sys.exit(f"DescribeTaskDefinition on {url} returned {td['family']}:{td['revision']}")
    describe_bytes = len(raw)
    status, raw = call(conn, "ListTaskDefinitions", {"familyPrefix": "bench", "maxResults": 100})
    if status != 200:
        sys.exit(f"ListTaskDefinitions on {url} answered {status}: {raw[:300]!r}")
    arns = json.loads(raw)["taskDefinitionArns"]
    if not arns or not all(":task-definition/bench:" in a for a in arns):
        sys.exit(f"ListTaskDefinitions on {url} returned unexpected ARNs: {arns[:3]}")
    print(f"describe_bytes={describe_bytes} list_bytes={len(raw)} list_arns={len(arns)}")


def health_once(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=1)
    try:
        s.sendall(b"GET /_berth/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return s.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        s.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cmd_coldstart(args):
    """coldstart BERTH_BIN RUNS [DATA_DIR]: time from spawning `berth up` until
    /_berth/health answers 200, polling every 0.5 ms. Without DATA_DIR each run gets a
    fresh empty data directory; with it, every run reopens that directory."""
    binary, runs = args[0], int(args[1])
    fixed_dir = args[2] if len(args) > 2 else None
    times = []
    for _ in range(runs):
        d = fixed_dir or tempfile.mkdtemp(prefix="berth-cold-")
        port = free_port()
        t0 = time.perf_counter()
        p = subprocess.Popen(
            [binary, "up", "--listen", f"127.0.0.1:{port}", "--data-dir", d],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while True:
                try:
                    if health_once(port):
                        break
                except OSError:
                    pass
                if p.poll() is not None:
                    sys.exit(f"berth exited with {p.returncode} during cold start")
                if time.perf_counter() - t0 > 10:
                    sys.exit("berth did not become healthy within 10 s")
                time.sleep(0.0005)
            times.append((time.perf_counter() - t0) * 1000)
        finally:
            p.terminate()
            p.wait()
            # Undo what `berth up` did to the host (as root: the bridge, chains, mounts),
            # outside the timed window, so the run leaves the host as it found it.
            subprocess.run([binary, "down", "--data-dir", d], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            if not fixed_dir:
                shutil.rmtree(d, ignore_errors=True)
    times.sort()
    print(
        f"median_ms={statistics.median(times):.1f} min_ms={times[0]:.1f} max_ms={times[-1]:.1f} "
        f"runs={runs} all_ms={','.join(f'{t:.1f}' for t in times)}"
    )


def cpu_busy(interval):
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + v[4]
        return sum(v), idle
    t1, i1 = snap()
    time.sleep(interval)
    t2, i2 = snap()
    return 100.0 * (1 - (i2 - i1) / max(1, t2 - t1))


def cmd_quiet(args):
    """quiet MAX_WAIT_S: wait until the whole machine is under 15% CPU busy over one
    second (other work would skew the numbers), at most MAX_WAIT_S; print the last busy %."""
    deadline = time.monotonic() + float(args[0])
    while True:
        busy = cpu_busy(1.0)
        if busy < 15 or time.monotonic() > deadline:
            break
    print(f"{busy:.0f}")


def cmd_rss(args):
    """rss PID: VmRSS in MiB."""
    with open(f"/proc/{int(args[0])}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                print(f"{int(line.split()[1]) / 1024:.1f}")
                return
    sys.exit("no VmRSS")


def load(path):
    r = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            k, v = line.split("=", 1)
            r[k] = v
    return r


def kv(s):
    return dict(p.split("=", 1) for p in s.split())


def cmd_report(args):
    """report RESULTS_FILE: print the results as Markdown tables with pass/miss per target."""
    r = load(args[0])
    out = []
    w = out.append
    ok = lambda b: "met" if b else "MISSED"

    w("### Reads (wrk -t2 -c16 -d%ss, keep-alive, one request body per run)" % r["duration"])
    w("")
    w("| Operation | Server | requests/s | p50 ms | p99 ms | max ms | errors | response bytes |")
    w("|---|---|---:|---:|---:|---:|---:|---:|")
    reads = {}
    for op, key in (("DescribeTaskDefinition", "describe"), ("ListTaskDefinitions", "list")):
        for server in ("berth", "moto", "ceiling", "ceiling_sized"):
            if f"read_{key}_{server}" not in r:
                continue
            d = kv(r[f"read_{key}_{server}"])
            reads[(key, server)] = d
            size = r.get(f"{key}_bytes_{server}", "")
            errs = int(d["non2xx"]) + int(d["sockerr"])
            w(
                f"| {op} | {server} | {float(d['rps']):,.0f} | {int(d['p50_us']) / 1000:.2f} | "
                f"{int(d['p99_us']) / 1000:.2f} | {int(d['max_us']) / 1000:.1f} | {errs} | {size} |"
            )
    w("")
    w("### Targets")
    w("")
    w("| Target | Measured | Result |")
    w("|---|---|---|")
    for op, key in (("DescribeTaskDefinition", "describe"), ("ListTaskDefinitions", "list")):
        b, m, c = reads[(key, "berth")], reads[(key, "moto")], reads[(key, "ceiling")]
        ratio_m = float(b["rps"]) / float(m["rps"])
        ratio_c = float(b["rps"]) / float(c["rps"])
        p99 = int(b["p99_us"]) / 1000
        w(f"| {op}: Berth >= 30x moto req/s | {ratio_m:.1f}x | {ok(ratio_m >= 30)} |")
        w(f"| {op}: Berth p99 < 5 ms | {p99:.2f} ms | {ok(p99 < 5)} |")
        w(f"| {op}: Berth >= 0.5x ceiling req/s | {ratio_c:.2f}x | {ok(ratio_c >= 0.5)} |")
        if (key, "ceiling_sized") in reads:
            ratio_s = float(b["rps"]) / float(reads[(key, "ceiling_sized")]["rps"])
            w(f"| {op}: Berth >= 0.5x a ceiling sending the same {r.get('list_bytes_ceiling_sized', '?')} bytes | {ratio_s:.2f}x | {ok(ratio_s >= 0.5)} |")
    cold = kv(r["coldstart"])
    med = float(cold["median_ms"])
    w(f"| Cold start to healthy < 100 ms (median of {cold['runs']}, fresh data dir) | {med:.1f} ms (min {cold['min_ms']}, max {cold['max_ms']}) | {ok(med < 100)} |")
    rs = float(r["rss_berth_start"])
    ra = float(r["rss_berth_after_reads"])
    w(f"| Idle RSS < 30 MiB, just after start | {rs:.1f} MiB | {ok(rs < 30)} |")
    w(f"| Idle RSS < 30 MiB, after 1,000 registrations and the read runs | {ra:.1f} MiB | {ok(ra < 30)} |")
    w("")
    w("### Writes (RegisterTaskDefinition; every write creates a new revision)")
    w("")
    w("| Server | sequential, 1 client: writes/s | p50 ms | p99 ms | wrk -c16 -d%ss: writes/s | p99 ms | errors |" % r["duration"])
    w("|---|---:|---:|---:|---:|---:|---:|")
    for server in ("berth", "moto"):
        s = kv(r[f"register_seq_{server}"])
        c = kv(r[f"register_wrk_{server}"])
        errs = int(c["non2xx"]) + int(c["sockerr"])
        w(
            f"| {server} | {float(s['wps']):,.0f} | {int(s['p50_us']) / 1000:.2f} | {int(s['p99_us']) / 1000:.2f} | "
            f"{float(c['rps']):,.0f} | {int(c['p99_us']) / 1000:.2f} | {errs} |"
        )
    sb, sm = kv(r["register_seq_berth"]), kv(r["register_seq_moto"])
    cb, cm = kv(r["register_wrk_berth"]), kv(r["register_wrk_moto"])
    w(f"| Berth/moto | {float(sb['wps']) / float(sm['wps']):.1f}x | | | {float(cb['rps']) / float(cm['rps']):.1f}x | | |")
    w("")
    w("### Other")
    total = int(kv(r["register_seq_berth"])["last_revision"]) + int(kv(r["register_wrk_berth"])["requests"])
    w("")
    w("| Measure | Value |")
    w("|---|---|")
    w(f"| Cold start, fresh data dir, all runs (ms) | {cold['all_ms']} |")
    if "coldstart_loaded" in r:
        cl = kv(r["coldstart_loaded"])
        w(f"| Cold start, reopening the data dir after the run ({total:,} revisions; median of {cl['runs']}) | {cl['median_ms']} ms (min {cl['min_ms']}, max {cl['max_ms']}) |")
    w(f"| Berth RSS after the write runs ({total:,} revisions stored) | {float(r['rss_berth_after_writes']):.1f} MiB |")
    w(f"| moto RSS just after start / after reads | {float(r['rss_moto_start']):.1f} / {float(r['rss_moto_after_reads']):.1f} MiB |")
    w(f"| Berth data dir filesystem | {r.get('data_fs', '?')} |")
    busy = [int(v) for k, v in r.items() if k.startswith("busy_")]
    if busy:
        w(f"| Machine CPU busy just before each measurement (max; >15% means other work was running) | {max(busy)}% |")
    print("\n".join(out))


COMMANDS = {
    "free-port": cmd_free_port,
    "wait": cmd_wait,
    "register": cmd_register,
    "check": cmd_check,
    "coldstart": cmd_coldstart,
    "rss": cmd_rss,
    "quiet": cmd_quiet,
    "report": cmd_report,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(COMMANDS)}}} ...")
    COMMANDS[sys.argv[1]](sys.argv[2:])
