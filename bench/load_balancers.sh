#!/usr/bin/env bash
# Load balancers, in one run: (1) HTTP through an application load balancer (Berth's
# reverse proxy) against nginx as a reverse proxy with upstream keep-alive, both to the
# same static backend (a second nginx), with wrk: requests per second and p99 latency;
# (2) TCP throughput through a network load balancer (kernel DNAT) against a direct
# connection to the same target, with iperf3.
#
# The backend lives in its own network namespace behind a veth pair (host 10.253.1.1/30,
# backend 10.253.1.2/30, a private range RegisterTargets accepts): the ALB, the nginx
# proxy and the clients all reach it the same way, by routing from the host.
#
# Usage: bench/load_balancers.sh [DURATION] [ROUNDS]   (default 10 s per run, 3 rounds;
#        runs alternate between the contenders, medians are reported). Needs root, and
#        no other Berth on this host (the bridge and iptables chains are the host's).
#        BERTH_BIN=target/release/berth skips the build. Each measurement first waits (up to
#        QUIET_WAIT s, default 120) for the machine to be under 15% CPU busy, and reports it.
#        HOLD=1 sets everything up and waits (to profile by hand) instead of measuring.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"; ROUNDS="${2:-3}"; WARMUP="${WARMUP:-3}"
NET="${LB_BENCH_NET:-10.253.1}" # the /30 of the veth pair: .1 the host, .2 the backend
[ "$(id -u)" = 0 ] || { echo "bench/load_balancers.sh needs root" >&2; exit 1; }
if ip link show berth0 >/dev/null 2>&1; then
  echo "the bridge berth0 exists: another Berth is running on this host (its 'berth down' would" >&2
  echo "take this run's network away, and both would lease the same addresses); stop it first" >&2
  exit 1
fi
if ip -4 -o addr show | grep -q " ${NET//./\\.}\.[0-9]*/"; then
  echo "$NET.0/30 is in use on this host; pick another with LB_BENCH_NET=A.B.C" >&2; exit 1
fi
need() { command -v "$1" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"; }; }
need wrk wrk; need nginx nginx; need iperf3 iperf3; need iptables iptables
command -v aws >/dev/null || pip install -q awscli
if [ -z "${BERTH_BIN:-}" ]; then
  cargo build --release -p berth >/dev/null
  BERTH_BIN="$PWD/target/release/berth"
fi
export BERTH_BIN="$(realpath "$BERTH_BIN")"
BUILT="commit $(git rev-parse --short HEAD)$([ -z "$(git status --porcelain -- crates Cargo.toml Cargo.lock)" ] || echo ', with uncommitted changes in crates/')"
WORK="$(mktemp -d -p "${BENCH_DIR:-/work}" berth-lb-bench.XXXXXX)"
chmod 755 "$WORK"
BERTH_DATA="$WORK/data"
mkdir -p "$BERTH_DATA"
source tests/e2e/lib.sh
# Berth runs in a session of its own, as nginx does once it daemonizes: with the kernel's
# autogroup scheduling (on here: /proc/sys/kernel/sched_autogroup_enabled) a session shares
# the CPU as one group, and Berth in the session of this script and wrk would share wrk's
# share. (setsid does not fork here, so BERTH_PID stays Berth's.)
BERTH_LAUNCH=setsid
H="$PWD/bench/load_balancers.py"
OUT="$WORK/results.json"
NS="lbbench$$"          # the backend's namespace
VETH="lbb$$"            # host side of its veth pair (not named berth*: `berth down` takes those)

cleanup() {
  set +e
  if [ -n "${BERTH_PID:-}" ]; then
    kill "$BERTH_PID" 2>/dev/null; wait "$BERTH_PID" 2>/dev/null
  fi
  "$BERTH_BIN" down --data-dir "$BERTH_DATA" >/dev/null 2>&1
  for f in "$WORK"/proxy.pid "$WORK"/backend.pid "$WORK"/iperf.pid; do
    [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null
  done
  # Anything else still in the backend's namespace is this script's too.
  for p in $(ip netns pids "$NS" 2>/dev/null); do kill "$p" 2>/dev/null; done
  sleep 0.2
  ip netns del "$NS" 2>/dev/null
  ip link del "$VETH" 2>/dev/null
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

echo "berth: $(basename "$(dirname "$BERTH_BIN")") build of $BUILT ($BERTH_BIN, built $(date -u -r "$BERTH_BIN" '+%F %H:%M') UTC)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), Linux $(uname -r), $(date -u '+%F %H:%M') UTC"
echo "tools: $(nginx -v 2>&1 | cut -d' ' -f3), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(iperf3 -v | head -1 | cut -d' ' -f1-2)"

# ---- the backend: a namespace, a veth pair, nginx serving a 1 KiB file, iperf3 ----
ip netns add "$NS"
ip link add "$VETH" type veth peer name eth0 netns "$NS"
ip addr add "$NET.1/30" dev "$VETH"; ip link set "$VETH" up
ip -n "$NS" addr add "$NET.2/30" dev eth0; ip -n "$NS" link set eth0 up; ip -n "$NS" link set lo up
ip -n "$NS" route add default via "$NET.1"
BACKEND="$NET.2"
export BACKEND_STATUS="http://$BACKEND/_status"
mkdir -p "$WORK/www" "$WORK/tmp"
head -c 1024 /dev/zero | tr '\0' 'x' > "$WORK/www/bench.html"
# Temporary paths, pid and logs of both nginx instances in the work directory.
nginx_common() { # NAME
  cat <<EOF
user root;
worker_processes auto;
pid $WORK/$1.pid;
error_log $WORK/$1-error.log warn;
events { worker_connections 8192; }
EOF
}
nginx_http() { # NAME
  cat <<EOF
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  client_body_temp_path $WORK/tmp/$1-body;
  proxy_temp_path $WORK/tmp/$1-proxy;
  fastcgi_temp_path $WORK/tmp/$1-fastcgi;
  uwsgi_temp_path $WORK/tmp/$1-uwsgi;
  scgi_temp_path $WORK/tmp/$1-scgi;
EOF
}
{
  nginx_common backend
  echo "http {"; nginx_http backend
  cat <<EOF
  sendfile on;
  tcp_nopush on;
  default_type text/html;
  server {
    listen $BACKEND:80 reuseport;
    root $WORK/www;
    location / { }
    # Connections the backend accepted: whether a proxy keeps its upstream connections.
    location = /_status { stub_status; }
  }
}
EOF
} > "$WORK/backend.conf"
ip netns exec "$NS" nginx -e "$WORK/backend-error.log" -c "$WORK/backend.conf"
ip netns exec "$NS" iperf3 -s -D -B "$BACKEND" -p 5201 -I "$WORK/iperf.pid" --logfile "$WORK/iperf.log"
wait_for "the backend" 10 curl -fsS --max-time 2 "http://$BACKEND/bench.html"

# ---- nginx as the reverse proxy to compare with: upstream keep-alive, the ALB's headers ----
NGINX_PORT=$(free_port)
{
  nginx_common proxy
  echo "http {"; nginx_http proxy
  cat <<EOF
  upstream backend {
    server $BACKEND:80;
    keepalive 128;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT reuseport;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Port \$server_port;
    }
  }
}
EOF
} > "$WORK/proxy.conf"
nginx -e "$WORK/proxy-error.log" -c "$WORK/proxy.conf"
wait_for "the nginx proxy" 10 curl -fsS --max-time 2 "http://127.0.0.1:$NGINX_PORT/bench.html"
NGINX_PID=$(cat "$WORK/proxy.pid")

# ---- Berth: an ALB and an NLB, each with the backend as its one ip target ----
start_berth
read -r SUB1 SUB2 <<<"$(awsb ec2 describe-subnets --filters Name=default-for-az,Values=true --query 'Subnets[0:2].SubnetId' --output text)"
VPC=$(awsb ec2 describe-vpcs --filters Name=is-default,Values=true --query 'Vpcs[0].VpcId' --output text)
HC=(--health-check-interval-seconds 5 --health-check-timeout-seconds 2 --healthy-threshold-count 2)
ALB=$(awsb elbv2 create-load-balancer --name bench-alb --subnets "$SUB1" "$SUB2" --query 'LoadBalancers[0].LoadBalancerArn' --output text)
ALBIP=$(awsb elbv2 describe-load-balancers --load-balancer-arns "$ALB" --query 'LoadBalancers[0].AvailabilityZones[0].LoadBalancerAddresses[0].IpAddress' --output text)
HTTPTG=$(awsb elbv2 create-target-group --name bench-http --protocol HTTP --port 80 --vpc-id "$VPC" --target-type ip \
  "${HC[@]}" --health-check-path /bench.html --query 'TargetGroups[0].TargetGroupArn' --output text)
awsb elbv2 register-targets --target-group-arn "$HTTPTG" --targets "Id=$BACKEND"
awsb elbv2 create-listener --load-balancer-arn "$ALB" --protocol HTTP --port 80 \
  --default-actions "Type=forward,TargetGroupArn=$HTTPTG" >/dev/null
NLB=$(awsb elbv2 create-load-balancer --name bench-nlb --type network --subnets "$SUB1" --query 'LoadBalancers[0].LoadBalancerArn' --output text)
NLBIP=$(awsb elbv2 describe-load-balancers --load-balancer-arns "$NLB" --query 'LoadBalancers[0].AvailabilityZones[0].LoadBalancerAddresses[0].IpAddress' --output text)
# TCP health checks go to the backend's port 80: iperf3's server takes one client at a
# time, and a check's connection could hold it as a measured run starts.
TCPTG=$(awsb elbv2 create-target-group --name bench-tcp --protocol TCP --port 5201 --vpc-id "$VPC" --target-type ip \
  "${HC[@]}" --health-check-port 80 --query 'TargetGroups[0].TargetGroupArn' --output text)
awsb elbv2 register-targets --target-group-arn "$TCPTG" --targets "Id=$BACKEND"
awsb elbv2 create-listener --load-balancer-arn "$NLB" --protocol TCP --port 5201 \
  --default-actions "Type=forward,TargetGroupArn=$TCPTG" >/dev/null
# Another Berth's `berth down` on this host removes the bridge and the chains under this run.
still_up() {
  ip link show berth0 >/dev/null 2>&1 && iptables -w -t nat -S BERTH-LB >/dev/null 2>&1 && return
  echo "berth0 or the BERTH-LB chain disappeared during the run (another Berth's 'berth down'?); results void" >&2
  exit 1
}
state() { awsb elbv2 describe-target-health --target-group-arn "$1" --query 'TargetHealthDescriptions[0].TargetHealth.State' --output text; }
wait_for "the ALB target healthy" 60 bash -c "[ \"\$(aws --endpoint-url $BERTH_URL elbv2 describe-target-health --target-group-arn $HTTPTG --query 'TargetHealthDescriptions[0].TargetHealth.State' --output text)\" = healthy ]"
wait_for "the NLB target healthy" 60 bash -c "[ \"\$(aws --endpoint-url $BERTH_URL elbv2 describe-target-health --target-group-arn $TCPTG --query 'TargetHealthDescriptions[0].TargetHealth.State' --output text)\" = healthy ]"
wait_for "the ALB serving" 20 curl -fsS --max-time 2 "http://$ALBIP/bench.html"
echo "ALB $ALBIP:80 and NLB $NLBIP:5201; backend $BACKEND (ALB target $(state "$HTTPTG"), NLB target $(state "$TCPTG")); nginx proxy 127.0.0.1:$NGINX_PORT"
# Same answer through both proxies.
for u in "http://$ALBIP/bench.html" "http://127.0.0.1:$NGINX_PORT/bench.html"; do
  got=$(curl -fsS --max-time 5 -o /dev/null -w '%{http_code} %{size_download}' "$u")
  [ "$got" = "200 1024" ] || { echo "$u answered '$got', not '200 1024'" >&2; exit 1; }
done

if [ -n "${HOLD:-}" ]; then
  # For profiling by hand: everything stays up until this script is stopped.
  echo "holding: ALB http://$ALBIP/bench.html (berth pid $BERTH_PID), nginx http://127.0.0.1:$NGINX_PORT/bench.html (pid $NGINX_PID); stop with kill $$"
  sleep infinity & wait $!
fi
echo; echo "## ALB against nginx (wrk -t2 -c64, ${DURATION} s per run, $ROUNDS rounds; warm-up ${WARMUP} s each)"
python3 "$H" wrk "$WORK/warm.json" alb "http://$ALBIP/bench.html" "$WARMUP" "$BERTH_PID" >/dev/null
python3 "$H" wrk "$WORK/warm.json" nginx "http://127.0.0.1:$NGINX_PORT/bench.html" "$WARMUP" "$NGINX_PID" >/dev/null
python3 "$H" wrk "$WORK/warm.json" direct "http://$BACKEND/bench.html" "$WARMUP" >/dev/null
for r in $(seq "$ROUNDS"); do
  echo "round $r:"
  still_up
  python3 "$H" wrk "$OUT" alb "http://$ALBIP/bench.html" "$DURATION" "$BERTH_PID"
  python3 "$H" wrk "$OUT" nginx "http://127.0.0.1:$NGINX_PORT/bench.html" "$DURATION" "$NGINX_PID"
  python3 "$H" wrk "$OUT" direct "http://$BACKEND/bench.html" "$DURATION"
done

echo; echo "## NLB against direct (iperf3 -t ${DURATION}, $ROUNDS rounds; warm-up ${WARMUP} s each)"
still_up
python3 "$H" iperf "$WORK/warm.json" nlb "$NLBIP" 5201 "$WARMUP" >/dev/null
python3 "$H" iperf "$WORK/warm.json" tcp "$BACKEND" 5201 "$WARMUP" >/dev/null
for r in $(seq "$ROUNDS"); do
  echo "round $r:"
  still_up
  python3 "$H" iperf "$OUT" nlb "$NLBIP" 5201 "$DURATION"
  python3 "$H" iperf "$OUT" tcp "$BACKEND" 5201 "$DURATION"
done
# The NLB's connections went through the kernel's DNAT, not a socket of Berth's.
nat=$(iptables -w -t nat -S BERTH-LB | grep -c -- "--to-destination $BACKEND:5201" || true)
echo "DNAT rules to the target in BERTH-LB: $nat; Berth sockets on $NLBIP: $(ss -Htln "src $NLBIP" | wc -l)"

still_up
python3 "$H" report "$OUT"
warn=$(grep -cE ' (WARN|ERROR) ' "$BERTH_DATA/berth.log" || true)
echo; echo "berth.log: $warn warnings/errors"
[ "$warn" = 0 ] || grep -E ' (WARN|ERROR) ' "$BERTH_DATA/berth.log" | head -5
for f in proxy backend; do
  n=$(grep -vc '^\s*$' "$WORK/$f-error.log" 2>/dev/null || true)
  [ "${n:-0}" = 0 ] || { echo "nginx $f error log: $n lines"; head -3 "$WORK/$f-error.log"; }
done
