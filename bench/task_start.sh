#!/usr/bin/env bash
# Task start latency for a cached image, in one run: Berth (RunTask request -> the task's
# startedAt), the floor (`runc run` of `true` from the same container config, start to
# exit) and `docker run --rm` of the same image (dockerd started by hand).
# Usage: bench/task_start.sh [TASKS] [DOCKER_RUNS]   (default 100 and 30; 0 docker runs
# skips docker, as in the cgroup-v2 VM: bench/task_start_cgroup_v2.sh). Needs root.
# FLOOR_RUNTIME=crun makes the floor `crun run`; NO_BUILD=1 uses target/release/berth as built.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-100}"
DN="${2:-30}"
[ "$(id -u)" = 0 ] || { echo "bench/task_start.sh needs root (runc, dockerd)" >&2; exit 1; }
need() { command -v "$1" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"; }; }
need runc runc; need skopeo skopeo; need umoci umoci; need busybox busybox-static; need gcc gcc
[ "$DN" = 0 ] || need dockerd docker.io
python3 -c 'import botocore' 2>/dev/null || pip install -q awscli
[ -n "${NO_BUILD:-}" ] || cargo build --release -p berth >/dev/null
BUILT="commit $(git rev-parse --short HEAD)$([ -z "$(git status --porcelain -- crates Cargo.toml Cargo.lock)" ] || echo ', with uncommitted changes in crates/')"
WORK="$(mktemp -d -p "${BENCH_DIR:-/work}" berth-task-bench.XXXXXX)"
export BERTH_BIN="$PWD/target/release/berth"
BERTH_DATA="$WORK/data"
mkdir -p "$BERTH_DATA"
source tests/e2e/lib.sh
source tests/e2e/images.sh
H="$PWD/bench/task_start.py"
export BENCH_ROOT=$$ BENCH_WORK="$WORK"
DPID=""
cleanup() {
  set +e
  if [ -n "$DPID" ]; then kill "$DPID"; wait "$DPID"; fi
  if [ -n "${BERTH_PID:-}" ]; then "$BERTH_BIN" down --data-dir "$BERTH_DATA" >/dev/null; wait "$BERTH_PID"; fi
  for m in $(awk -v w="$WORK" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do umount -l "$m"; done
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "berth: release build of $BUILT"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), Linux $(uname -r), $(date -u '+%F %H:%M') UTC"
echo "cgroups: $(stat -f -c %T /sys/fs/cgroup); ${FLOOR_RUNTIME:-runc} $("${FLOOR_RUNTIME:-runc}" --version | head -1 | awk '{print $3}')$([ "$DN" = 0 ] || echo ", $(dockerd --version)")"
start_berth
REG="localhost:$BERTH_PORT"
make_task_image "$WORK/layout" v1
awsb ecr create-repository --repository-name box >/dev/null
skopeo --insecure-policy copy --dest-tls-verify=false "oci:$WORK/layout:v1" "docker://$REG/box:v1" >/dev/null
awsb ecs create-cluster --cluster-name bench >/dev/null
SUBNET=$(awsb ec2 describe-subnets --query 'Subnets[0].SubnetId' --output text)
register() {
  awsb ecs register-task-definition --family "$1" --requires-compatibilities FARGATE \
    --network-mode awsvpc --cpu "${3:-256}" --memory "${4:-512}" --container-definitions "$2" >/dev/null
}
register truetask "[{\"name\":\"app\",\"image\":\"$REG/box:v1\",\"essential\":true,\"command\":[\"true\"]}]"
# For insight: the same task with 4 vCPU, whose CPU quota never throttles on this machine.
register truetask4 "[{\"name\":\"app\",\"image\":\"$REG/box:v1\",\"essential\":true,\"command\":[\"true\"]}]" 4096 8192
register sleeper "[{\"name\":\"app\",\"image\":\"$REG/box:v1\",\"essential\":true,\"stopTimeout\":2,\"command\":[\"sleep\",\"3600\"]}]"

# The floor's bundle: the image unpacked by umoci, and the config.json Berth wrote for a
# task of the same image (taken while that task sleeps).
t=$(awsb ecs run-task --cluster bench --launch-type FARGATE --task-definition sleeper \
  --network-configuration "awsvpcConfiguration={subnets=[$SUBNET]}" --query 'tasks[0].taskArn' --output text)
awsb ecs wait tasks-running --cluster bench --tasks "$t"
umoci unpack --image "$WORK/layout:v1" "$WORK/floor" >/dev/null 2>&1
python3 "$H" floor-bundle "$BERTH_DATA/tasks/${t##*/}" app "$WORK/floor"
awsb ecs stop-task --cluster bench --task "$t" >/dev/null
awsb ecs wait tasks-stopped --cluster bench --tasks "$t"

# measure NAME SUBCOMMAND ARGS...: wait (up to 2 min) for a quiet machine, measure into
# WORK/NAME.json; if other processes used more than 10% of a core meanwhile, measure again
# (at most ATTEMPTS times in all, default 3).
measure() {
  local name="$1" attempt other; shift
  for attempt in $(seq "${ATTEMPTS:-3}"); do
    echo "$name $(python3 "$H" quiet 120)" >>"$WORK/busy.txt"
    python3 "$H" "$@" "$WORK/$name.json"
    other=$(python3 "$H" others "$WORK/$name.json")
    [ "$other" -le 10 ] && break
    echo "  other work used $other% of a core during $name$([ "$attempt" -lt "${ATTEMPTS:-3}" ] && echo '; measuring again')"
  done
}
: >"$WORK/busy.txt"
measure berth berth "$BERTH_URL" bench truetask "$SUBNET" "$N" 5
[ -n "${NO_4096:-}" ] || measure berth4096 berth "$BERTH_URL" bench truetask4 "$SUBNET" "$N" 2
echo "berth.log warnings and errors: $(grep -cE ' (WARN|ERROR) ' "$BERTH_DATA/berth.log" || true)"
grep -E ' (WARN|ERROR) ' "$BERTH_DATA/berth.log" | head -5 || true

measure floor floor "$WORK/runc-floor" "$WORK/floor" "$N" 3
measure floor_cs floor-create-start "$WORK/runc-floor" "$WORK/floor" "$N" 3

if [ "$DN" != 0 ]; then
  D="$WORK/docker"
  DOCKER="$(command -v /usr/bin/docker || command -v docker)"
  mkdir -p "$D"
  dockerd --data-root "$D/root" --exec-root "$D/exec" --pidfile "$D/pid" --host "unix://$D/sock" \
    --iptables=false --ip6tables=false --bridge=none >"$D/log" 2>&1 &
  DPID=$!
  wait_for dockerd 60 "$DOCKER" -H "unix://$D/sock" info
  skopeo --insecure-policy copy "oci:$WORK/layout:v1" "docker-archive:$WORK/box.tar:box:v1" >/dev/null
  "$DOCKER" -H "unix://$D/sock" load -i "$WORK/box.tar" >/dev/null
  measure docker docker "unix://$D/sock" box:v1 "$DN" 2
  kill "$DPID"; wait "$DPID" || true; DPID=""
fi
echo
python3 "$H" report "$WORK"
if [ -n "${KEEP_RESULTS:-}" ]; then mkdir -p "$KEEP_RESULTS" && cp "$WORK"/*.json "$WORK/busy.txt" "$KEEP_RESULTS/"; fi
