#!/usr/bin/env bash
# Task networking, in one run: (1) task start with awsvpc networking against the same task
# with network mode none (EC2 launch type on this host, --register-instance); (2) TCP
# throughput through a bridge-mode port mapping against a direct connection to the
# task's address, to a static sink in the task.
# Usage: bench/task_network.sh [TASKS_EACH] [MIB] [ROUNDS]   (default 100, 2048, 5). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-100}"; MIB="${2:-2048}"; ROUNDS="${3:-5}"
[ "$(id -u)" = 0 ] || { echo "bench/task_network.sh needs root" >&2; exit 1; }
need() { command -v "$1" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"; }; }
need crun crun; need skopeo skopeo; need umoci umoci; need busybox busybox-static; need gcc gcc; need iptables iptables
python3 -c 'import botocore' 2>/dev/null || pip install -q awscli
cargo build --release -p berth >/dev/null
BUILT="commit $(git rev-parse --short HEAD)$([ -z "$(git status --porcelain -- crates Cargo.toml Cargo.lock)" ] || echo ', with uncommitted changes in crates/')"
WORK="$(mktemp -d -p "${BENCH_DIR:-/work}" berth-net-bench.XXXXXX)"
export BERTH_BIN="$PWD/target/release/berth"
BERTH_DATA="$WORK/data"
mkdir -p "$BERTH_DATA"
source tests/e2e/lib.sh
source tests/e2e/images.sh
H="$PWD/bench/task_network.py"
cleanup() {
  set +e
  if [ -n "${BERTH_PID:-}" ]; then "$BERTH_BIN" down --data-dir "$BERTH_DATA" >/dev/null; wait "$BERTH_PID"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "berth: release build of $BUILT"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), Linux $(uname -r), $(date -u '+%F %H:%M') UTC"
start_berth --register-instance bench
REG="localhost:$BERTH_PORT"
make_task_image "$WORK/layout" v1
# The sink goes into the image beside busybox.
gcc -static -O2 -o "$WORK/sink" bench/sink.c
umoci unpack --image "$WORK/layout:v1" "$WORK/b" >/dev/null 2>&1
cp "$WORK/sink" "$WORK/b/rootfs/bin/sink"
umoci repack --image "$WORK/layout:v1" "$WORK/b" >/dev/null
awsb ecr create-repository --repository-name box >/dev/null
skopeo --insecure-policy copy --dest-tls-verify=false "oci:$WORK/layout:v1" "docker://$REG/box:v1" >/dev/null
awsb ecs create-cluster --cluster-name bench >/dev/null
wait_registered bench
SUBNET=$(awsb ec2 describe-subnets --query 'Subnets[0].SubnetId' --output text)
TRUE="[{\"name\":\"app\",\"image\":\"$REG/box:v1\",\"essential\":true,\"command\":[\"true\"]}]"
awsb ecs register-task-definition --family net-awsvpc --requires-compatibilities FARGATE --network-mode awsvpc \
  --cpu 256 --memory 512 --container-definitions "$TRUE" >/dev/null
awsb ecs register-task-definition --family net-none --requires-compatibilities EC2 --network-mode none \
  --cpu 256 --memory 512 --container-definitions "$TRUE" >/dev/null

echo; echo "## Task start: awsvpc against network mode none"
python3 "$H" start "$BERTH_URL" bench "$SUBNET" "$N" "$WORK/start.json"
python3 "$H" report "$WORK/start.json"

echo; echo "## TCP throughput: bridge port mapping against the task's address"
awsb ecs register-task-definition --family net-sink --requires-compatibilities EC2 --network-mode bridge \
  --cpu 1024 --memory 512 --container-definitions \
  "[{\"name\":\"sink\",\"image\":\"$REG/box:v1\",\"command\":[\"/bin/sink\",\"5001\"],\"stopTimeout\":2,\"portMappings\":[{\"containerPort\":5001}]}]" >/dev/null
t=$(awsb ecs run-task --cluster bench --launch-type EC2 --task-definition net-sink --query 'tasks[0].taskArn' --output text)
awsb ecs wait tasks-running --cluster bench --tasks "$t"
HP=$(awsb ecs describe-tasks --cluster bench --tasks "$t" --query 'tasks[0].containers[0].networkBindings[0].hostPort' --output text)
# A bridge-mode task's own address is not in DescribeTasks (as on ECS); its plan has it.
IP=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["network"]["ip"])' "$BERTH_DATA/tasks/${t##*/}/plan.json")
# The host's own address on its default route: the port mapping as another machine uses it.
HOST_IP=$(ip -4 -o route get 1.1.1.1 2>/dev/null | grep -o 'src [0-9.]*' | cut -d' ' -f2 || true)
echo "| Path | median | |"; echo "|---|---:|---|"
python3 "$H" throughput "${HOST_IP:-127.0.0.1}:$HP" "$IP:5001" "$MIB" "$ROUNDS"
awsb ecs stop-task --cluster bench --task "$t" >/dev/null
