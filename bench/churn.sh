#!/usr/bin/env bash
# Bounded state under churn (issue 18 item 4): a crash-looping service and TASKS short
# RunTask tasks (default 20,000) on one Berth whose test clock runs ACCEL times as fast
# (default 60: an hour of ECS's stopped-task retention passes in a minute), sampling the
# server's RSS, the tasks it keeps and the scheduler's pass times, then the time to reopen
# the data directory after kill -9. Compare: BEFORE_BIN=/path/to/old/berth runs the same
# tasks on a build without retention (no test clock there; RSS and reopen only).
# Usage: bench/churn.sh [TASKS] [ACCEL]. Needs root. NO_BUILD=1 uses target/release/berth.
set -euo pipefail
cd "$(dirname "$0")/.."
TASKS="${1:-20000}"
ACCEL="${2:-60}"
[ "$(id -u)" = 0 ] || { echo "bench/churn.sh needs root (it runs tasks)" >&2; exit 1; }
need() { command -v "$1" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"; }; }
need runc runc; need skopeo skopeo; need umoci umoci; need busybox busybox-static
python3 -c 'import botocore' 2>/dev/null || pip install -q awscli
[ -n "${NO_BUILD:-}" ] || cargo build --release -p berth >/dev/null
BUILT="commit $(git rev-parse --short HEAD)$([ -z "$(git status --porcelain -- crates Cargo.toml Cargo.lock)" ] || echo ', with uncommitted changes in crates/')"
WORK="$(mktemp -d -p "${BENCH_DIR:-/work}" berth-churn.XXXXXX)"
AFTER_BIN="$PWD/target/release/berth"
source tests/e2e/lib.sh
source tests/e2e/images.sh
cleanup() {
  set +e
  if [ -n "${BERTH_PID:-}" ]; then "$BERTH_BIN" down --data-dir "$BERTH_DATA" >/dev/null; wait "$BERTH_PID"; fi
  for m in $(awk -v w="$WORK" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do umount -l "$m"; done
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "berth: release build of $BUILT"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), Linux $(uname -r), $(date -u '+%F %H:%M') UTC"

# run NAME BIN [BERTH UP ARGS...]: the churn on a fresh data directory, then the reopen.
run() {
  local name="$1"; BERTH_BIN="$2"; shift 2
  BERTH_DATA="$WORK/$name"; BERTH_PORT=""
  mkdir -p "$BERTH_DATA"
  BERTH_LOG="info,berth_ecs::scheduler=debug" start_berth "$@"
  local reg="localhost:$BERTH_PORT"
  [ -d "$WORK/layout" ] || make_task_image "$WORK/layout" v1
  awsb ecr create-repository --repository-name box >/dev/null
  skopeo --insecure-policy copy --dest-tls-verify=false "oci:$WORK/layout:v1" "docker://$reg/box:v1" >/dev/null
  awsb ecs create-cluster --cluster-name churn >/dev/null
  local subnet
  subnet=$(awsb ec2 describe-subnets --query 'Subnets[0].SubnetId' --output text)
  for f in quick:true crash:false; do
    awsb ecs register-task-definition --family "${f%%:*}" --requires-compatibilities FARGATE --network-mode awsvpc --cpu 256 --memory 512 \
      --container-definitions "[{\"name\":\"app\",\"image\":\"$reg/box:v1\",\"command\":[\"${f##*:}\"]}]" >/dev/null
  done
  echo "== $name: $TASKS tasks, $BERTH_BIN $*"
  python3 bench/churn.py "$BERTH_URL" "$BERTH_PID" "$BERTH_DATA/berth.log" "$BERTH_DATA" "$TASKS" "$ACCEL" "$subnet"
  echo "state.db: $(du -h "$BERTH_DATA/state.db" | cut -f1)"
  kill9_berth
  # Reopen: from the start of `berth up` to its first ListClusters answer (curl, polled
  # every 10 ms), on the same data directory.
  local t0 t1
  t0=$(date +%s.%N)
  "$BERTH_BIN" up --listen "127.0.0.1:$BERTH_PORT" --data-dir "$BERTH_DATA" "$@" >>"$BERTH_DATA/berth.log" 2>&1 &
  BERTH_PID=$!
  until curl -fsS -o /dev/null -H 'X-Amz-Target: AmazonEC2ContainerServiceV20141113.ListClusters' \
      -H 'Content-Type: application/x-amz-json-1.1' -d '{}' "$BERTH_URL/" 2>/dev/null; do sleep 0.01; done
  t1=$(date +%s.%N)
  echo "reopen after kill -9 (berth up to its first ListClusters answer): $(python3 -c "print(f'{$t1 - $t0:.2f} s')")"
  "$BERTH_BIN" down --data-dir "$BERTH_DATA" >/dev/null
  wait "$BERTH_PID" 2>/dev/null || true
  BERTH_PID=""
}

run after "$AFTER_BIN" --test-clock
if [ -n "${BEFORE_BIN:-}" ]; then
  # The old build has no test clock: ACCEL=1 (its clock is not moved).
  ACCEL=1 run before "$BEFORE_BIN"
fi
