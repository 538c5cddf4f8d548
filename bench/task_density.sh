#!/usr/bin/env bash
# Many tasks running at once on this machine: N tasks (default 200) of a container running
# `sleep 3600`, started with RunTask (count 10 per call); reports how long until all are
# RUNNING, each supervisor's memory (PSS), Berth's and the containers' memory, then stops
# them all and checks that no supervisor, mount, cgroup or task directory is left.
# Usage: bench/task_density.sh [N]. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-200}"
[ "$(id -u)" = 0 ] || { echo "bench/task_density.sh needs root (runc)" >&2; exit 1; }
need() { command -v "$1" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"; }; }
need runc runc; need skopeo skopeo; need umoci umoci; need busybox busybox-static; need gcc gcc
python3 -c 'import botocore' 2>/dev/null || pip install -q awscli
cargo build --release -p berth >/dev/null
BUILT="commit $(git rev-parse --short HEAD)$([ -z "$(git status --porcelain -- crates Cargo.toml Cargo.lock)" ] || echo ', with uncommitted changes in crates/')"
WORK="$(mktemp -d -p "${BENCH_DIR:-/work}" berth-density-bench.XXXXXX)"
export BERTH_BIN="$PWD/target/release/berth"
BERTH_DATA="$WORK/data"
mkdir -p "$BERTH_DATA"
source tests/e2e/lib.sh
source tests/e2e/images.sh
export BENCH_ROOT=$$ BENCH_WORK="$WORK"
cleanup() {
  set +e
  if [ -n "${BERTH_PID:-}" ]; then "$BERTH_BIN" down --data-dir "$BERTH_DATA" >/dev/null; wait "$BERTH_PID"; fi
  for m in $(awk -v w="$WORK" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do umount -l "$m"; done
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "berth: release build of $BUILT"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, Linux $(uname -r), $(date -u '+%F %H:%M') UTC"
start_berth
REG="localhost:$BERTH_PORT"
make_task_image "$WORK/layout" v1
awsb ecr create-repository --repository-name box >/dev/null
skopeo --insecure-policy copy --dest-tls-verify=false "oci:$WORK/layout:v1" "docker://$REG/box:v1" >/dev/null
awsb ecs create-cluster --cluster-name density >/dev/null
SUBNET=$(awsb ec2 describe-subnets --query 'Subnets[0].SubnetId' --output text)
# `sleep` is PID 1 in its container and ignores SIGTERM: stopTimeout 2 s bounds the stop.
awsb ecs register-task-definition --family sleeper --requires-compatibilities FARGATE \
  --network-mode awsvpc --cpu 256 --memory 512 \
  --container-definitions "[{\"name\":\"app\",\"image\":\"$REG/box:v1\",\"essential\":true,\"stopTimeout\":2,\"command\":[\"sleep\",\"3600\"]}]" >/dev/null
# One task first, so the image is pulled and unpacked before the N start.
t=$(awsb ecs run-task --cluster density --launch-type FARGATE --task-definition sleeper \
  --network-configuration "awsvpcConfiguration={subnets=[$SUBNET]}" --query 'tasks[0].taskArn' --output text)
awsb ecs wait tasks-running --cluster density --tasks "$t"
awsb ecs stop-task --cluster density --task "$t" >/dev/null
awsb ecs wait tasks-stopped --cluster density --tasks "$t"

python3 bench/task_density.py "$BERTH_URL" density sleeper "$SUBNET" "$N" "$BERTH_DATA" "$BERTH_PID" "$WORK/density.json"
echo
echo "berth.log warnings and errors: $(grep -cE ' (WARN|ERROR) ' "$BERTH_DATA/berth.log" || true)"
grep -E ' (WARN|ERROR) ' "$BERTH_DATA/berth.log" | head -5 || true
if [ -n "${KEEP_RESULT:-}" ]; then cp "$WORK/density.json" "$KEEP_RESULT"; fi
