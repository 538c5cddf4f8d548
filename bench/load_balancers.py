#!/usr/bin/env python3
"""Load balancer benchmarks (driven by bench/load_balancers.sh).

  wrk OUT.json LABEL URL DURATION PID...    one wrk run (-t2 -c64 --latency) against URL,
                                            after waiting for a quiet machine; appends
                                            rps, latency percentiles, errors and the CPU
                                            time the processes PID... (and their children)
                                            used, to OUT.json under LABEL
  iperf OUT.json LABEL HOST PORT DURATION   one iperf3 run (-J, one stream) to HOST:PORT,
                                            same bookkeeping (retried if the server is busy)
  quiet                                     wait (up to QUIET_WAIT s, default 120) for the
                                            machine to be under 15% CPU busy; print it
  report OUT.json                           the tables and the ratios
"""
import json, os, re, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from task_lib import children, quiet  # noqa: E402

CONNECTIONS = int(os.environ.get("CONNECTIONS", "64"))
THREADS = int(os.environ.get("THREADS", "2"))
QUIET_WAIT = float(os.environ.get("QUIET_WAIT", "120"))
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def ms(text):
    """A wrk duration ("812.00us", "1.20ms", "2.00s") in milliseconds."""
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(out):
    r = {"non2xx": 0, "socket_errors": {}}
    for line in out.splitlines():
        s = line.strip()
        if s.startswith("Requests/sec:"):
            r["rps"] = float(s.split()[1])
        elif m := re.match(r"(\d+) requests in ([0-9.]+\w+), ([0-9.]+\w+) read", s):
            r["requests"] = int(m.group(1))
        elif m := re.fullmatch(r"(50|75|90|99)%\s+([0-9.]+\w+)", s):
            r[f"p{m.group(1)}_ms"] = ms(m.group(2))
        elif s.startswith("Non-2xx or 3xx responses:"):
            r["non2xx"] = int(s.split(":")[1])
        elif s.startswith("Socket errors:"):
            r["socket_errors"] = {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", s.split(":", 1)[1])}
        elif s.startswith("Latency") and "Distribution" not in s:
            parts = s.split()
            r["mean_ms"], r["max_ms"] = ms(parts[1]), ms(parts[3])
    return r


def cpu_seconds(pids):
    """User + system CPU seconds of the processes and their children (all threads)."""
    hz = os.sysconf("SC_CLK_TCK")
    seen, todo, total = set(), [int(p) for p in pids], 0.0
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rindex(")") + 2 :].split()
        total += (int(rest[11]) + int(rest[12])) / hz
        todo.extend(children(p))
    return total


def backend_accepts():
    """Connections the backend nginx has accepted so far (its stub_status), or None."""
    url = os.environ.get("BACKEND_STATUS")
    if not url:
        return None
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as r:
        # "Active connections: N\nserver accepts handled requests\n A H R\n..."
        return int(r.read().decode().splitlines()[2].split()[0])


def append(out, label, rec):
    data = {}
    if os.path.exists(out):
        with open(out) as f:
            data = json.load(f)
    data.setdefault(label, []).append(rec)
    with open(out, "w") as f:
        json.dump(data, f, indent=1)


def cmd_quiet(args):
    print(f"{quiet(QUIET_WAIT):.0f}")


def cmd_wrk(args):
    out, label, url, duration, pids = args[0], args[1], args[2], args[3], args[4:]
    busy = quiet(QUIET_WAIT)
    a0, c0, t0 = backend_accepts(), cpu_seconds(pids), time.monotonic()
    p = subprocess.run(
        ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency", url],
        capture_output=True, text=True, timeout=float(duration) + 60,
    )
    c1, t1, a1 = cpu_seconds(pids), time.monotonic(), backend_accepts()
    if p.returncode != 0 or "Requests/sec:" not in p.stdout:
        sys.exit(f"wrk against {url} failed:\n{p.stdout}{p.stderr}")
    r = parse_wrk(p.stdout)
    r.update(busy_before=round(busy, 1), proxy_cpu_s=round(c1 - c0, 2), wall_s=round(t1 - t0, 2), raw=p.stdout,
             # The status requests themselves are two of them.
             backend_conns=None if a0 is None else a1 - a0 - 1)
    append(out, label, r)
    errs = sum(r["socket_errors"].values())
    print(f"  {label:<6} {r['rps']:>9.0f} req/s  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  "
          f"non-2xx/3xx {r['non2xx']}  socket errors {errs}  proxy CPU {r['proxy_cpu_s']:.1f} s  "
          f"backend connections {r['backend_conns']}  (busy before {busy:.0f}%)")


def cmd_iperf(args):
    out, label, host, port, duration = args
    busy = quiet(QUIET_WAIT)
    for attempt in range(5):
        try:
            p = subprocess.run(["iperf3", "-c", host, "-p", port, "-t", duration, "-J", "--connect-timeout", "5000"],
                               capture_output=True, text=True, timeout=float(duration) + 30)
            j = json.loads(p.stdout)
        except subprocess.TimeoutExpired:
            j = {"error": f"no result after {float(duration) + 30:.0f} s"}
        except ValueError:
            j = {"error": p.stdout + p.stderr}
        if "error" not in j:
            break
        # The server runs one test at a time; a health check or the last test's teardown
        # may hold it for a moment.
        print(f"  {label}: iperf3 failed ({j['error'].strip()}), retrying", file=sys.stderr)
        time.sleep(1)
    else:
        sys.exit(f"iperf3 to {host}:{port} failed: {j['error']}")
    end = j["end"]
    r = {
        "gbit_s": end["sum_received"]["bits_per_second"] / 1e9,
        "sent_gbit_s": end["sum_sent"]["bits_per_second"] / 1e9,
        "retransmits": end["sum_sent"].get("retransmits", 0),
        "remote": j["start"]["connected"][0]["remote_host"] if j["start"].get("connected") else host,
        "busy_before": round(busy, 1),
        "sender_cpu_pct": round(end["cpu_utilization_percent"]["host_total"], 1),
        "receiver_cpu_pct": round(end["cpu_utilization_percent"]["remote_total"], 1),
    }
    append(out, label, r)
    print(f"  {label:<6} {r['gbit_s']:.2f} Gbit/s  retransmits {r['retransmits']}  "
          f"CPU sender {r['sender_cpu_pct']:.0f}% receiver {r['receiver_cpu_pct']:.0f}%  (busy before {busy:.0f}%)")


def med(rs, k):
    return statistics.median(r[k] for r in rs)


def runs(rs, k, fmt):
    return ", ".join(format(r[k], fmt) for r in rs)


def cmd_report(args):
    with open(args[0]) as f:
        d = json.load(f)
    print("\n## ALB against nginx: HTTP through a reverse proxy to one static backend")
    print(f"wrk -t{THREADS} -c{CONNECTIONS} --latency; medians of {len(d['alb'])} runs each (runs alternate); backend connections: "
          "what the backend accepted during a run (health checks add about 0.4/s)\n")
    print("| Proxy | req/s | p50 ms | p99 ms | max ms | proxy CPU µs/req | backend connections | non-2xx/3xx | socket errors | runs req/s | runs p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for k, name in (("alb", "**Berth ALB**"), ("nginx", "nginx (proxy_pass, upstream keepalive)")):
        v = d[k]
        cpu_us = statistics.median(1e6 * r["proxy_cpu_s"] / max(1, r["requests"]) for r in v)
        print(f"| {name} | {med(v, 'rps'):.0f} | {med(v, 'p50_ms'):.2f} | {med(v, 'p99_ms'):.2f} | "
              f"{max(r['max_ms'] for r in v):.1f} | {cpu_us:.0f} | {med(v, 'backend_conns'):.0f} | {sum(r['non2xx'] for r in v)} | "
              f"{sum(sum(r['socket_errors'].values()) for r in v)} | "
              f"{runs(v, 'rps', '.0f')} | {runs(v, 'p99_ms', '.2f')} |")
    if "direct" in d:
        v = d["direct"]
        print(f"| (no proxy: the backend itself, for scale) | {med(v, 'rps'):.0f} | {med(v, 'p50_ms'):.2f} | "
              f"{med(v, 'p99_ms'):.2f} | {max(r['max_ms'] for r in v):.1f} | — | {med(v, 'backend_conns'):.0f} | {sum(r['non2xx'] for r in v)} | "
              f"{sum(sum(r['socket_errors'].values()) for r in v)} | {runs(v, 'rps', '.0f')} | "
              f"{runs(v, 'p99_ms', '.2f')} |")
    rps = med(d["alb"], "rps") / med(d["nginx"], "rps")
    p99 = med(d["alb"], "p99_ms") / med(d["nginx"], "p99_ms")
    print(f"\nratio, Berth rps / nginx rps: {rps:.2f}x   (higher is better for Berth)")
    print(f"ratio, Berth p99 / nginx p99: {p99:.2f}x   (lower is better for Berth)")
    bad = [(k, r) for k in ("alb", "nginx") for r in d[k] if r["non2xx"] or sum(r["socket_errors"].values())]
    for k, r in bad:
        print(f"WARNING: {k}: {r['non2xx']} non-2xx/3xx responses, socket errors {r['socket_errors']} in a run")
    print("\n## NLB against a direct connection: TCP throughput (iperf3, one stream)")
    print(f"medians of {len(d['nlb'])} runs each (runs alternate)\n")
    print("| Path | Gbit/s | retransmits | runs Gbit/s |")
    print("|---|---:|---:|---|")
    for k, name in (("nlb", "**through the NLB** (kernel DNAT)"), ("tcp", "direct to the target")):
        v = d[k]
        print(f"| {name} ({v[0]['remote']}) | {med(v, 'gbit_s'):.2f} | {sum(r['retransmits'] for r in v)} | "
              f"{runs(v, 'gbit_s', '.2f')} |")
    print(f"\nratio, NLB / direct: {med(d['nlb'], 'gbit_s') / med(d['tcp'], 'gbit_s'):.2f}x")
    busy = [r["busy_before"] for k in d for r in d[k]]
    print(f"\nCPU busy before the measurements (other work on the machine): at most {max(busy):.0f}%")


if __name__ == "__main__":
    {"wrk": cmd_wrk, "iperf": cmd_iperf, "quiet": cmd_quiet, "report": cmd_report}[sys.argv[1]](sys.argv[2:])
