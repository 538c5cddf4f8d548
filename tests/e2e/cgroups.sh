#!/usr/bin/env bash
# Tasks' cgroups on whichever layout this host has, as a user checks them: the limits a
# Fargate and an EC2 task definition ask for, in the files the kernel enforces them from;
# an OOM kill with its reason; the metadata endpoint's stats read from inside a task;
# a server and supervisor killed mid-start leaving no cgroup after the next start;
# `berth down` leaving none; and `berth up` refusing a host it cannot limit tasks on.
# The same checks run on this host's cgroup v1 and, in .ci/run, on cgroup v2 in a VM
# (tests/vm/cgroup-v2.sh), where Berth runs in a delegated cgroup as under systemd.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images.sh"
if [ "$(id -u)" != 0 ] || ! { command -v crun || command -v runc; } >/dev/null; then
  echo "FAIL - tasks need root and crun or runc (scripts/setup installs both)" >&2; exit 1
fi
V2=""; [ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ] && V2=1
OWN=$(awk -F'::' '/^0::/{print $2}' /proc/self/cgroup)
if [ -n "$V2" ]; then
  # Started in the leaf systemd's DelegateSubgroup=server makes, Berth's subtree is its parent.
  [ "${OWN##*/}" = server ] && OWN="${OWN%/server}"
  if [ -z "$OWN" ] || [ "$OWN" = / ]; then TASKS_CG=/berth; else TASKS_CG="$OWN/tasks"; fi
fi
# cg CONTROLLER-V1 FILE-V1 FILE-V2 PATH: a cgroup file of PATH (task id, or id/container).
cg() {
  if [ -n "$V2" ]; then cat "/sys/fs/cgroup$TASKS_CG/$4/$3"; else cat "/sys/fs/cgroup/$1/berth/$4/$2"; fi
}
cg_exists() {
  if [ -n "$V2" ]; then [ -d "/sys/fs/cgroup$TASKS_CG/$1" ]; else ls -d /sys/fs/cgroup/*/berth/"$1" >/dev/null 2>&1; fi
}

start_berth --register-instance c1
push_task_image
awsb ecs create-cluster --cluster-name c1 >/dev/null
wait_registered c1
SUBNET=$(awsb ec2 describe-subnets --query 'Subnets[0].SubnetId' --output text)
NET="awsvpcConfiguration={subnets=[$SUBNET]}"
field() { awsb ecs describe-tasks --cluster c1 --tasks "$1" --query "tasks[0].$2" --output text; }
logs_of() { awsb logs get-log-events --log-group-name /cg --log-stream-name "p/$1" --start-from-head --query 'events[].message' --output text; }
LOG='"logConfiguration":{"logDriver":"awslogs","options":{"awslogs-group":"/cg","awslogs-region":"us-east-1","awslogs-stream-prefix":"p","awslogs-create-group":"true"}}'

if [ -n "$V2" ]; then
  expect_eq "the layout is logged once at start" "1" "$(grep -c 'cgroups layout=cgroup v2 (unified)' "$BERTH_DATA/berth.log")"
  if [ "$OWN" != / ]; then
    expect_eq "delegated: berth moved itself into a leaf beside its tasks" "$OWN/server" "$(awk -F'::' '/^0::/{print $2}' /proc/$BERTH_PID/cgroup)"
  fi
else
  expect_eq "the layout is logged once at start" "1" "$(grep -c 'cgroups layout=cgroup v1' "$BERTH_DATA/berth.log")"
fi

# 1. Three tasks at once (each round trip is slow in the VM): a Fargate task with task
#    and container limits that reads its own stats, an EC2 task given swap, and a
#    container that outgrows its memory.
awsb ecs register-task-definition --family limits --requires-compatibilities FARGATE --network-mode awsvpc --cpu 512 --memory 1024 \
  --container-definitions "[{\"name\":\"app\",\"image\":\"$IMAGE\",\"memory\":300,\"memoryReservation\":100,\"cpu\":256,\"stopTimeout\":1,
    \"command\":[\"sh\",\"-c\",\"head -c 20000000 /dev/zero > /tmp/fill; wget -qO- \$ECS_CONTAINER_METADATA_URI_V4/stats; echo; exec sleep 600\"],$LOG}]" >/dev/null
awsb ecs register-task-definition --family swap --requires-compatibilities EC2 --network-mode none \
  --container-definitions "[{\"name\":\"app\",\"image\":\"$IMAGE\",\"memory\":128,\"stopTimeout\":1,\"command\":[\"sleep\",\"600\"],
    \"linuxParameters\":{\"maxSwap\":64,\"swappiness\":10}}]" >/dev/null
awsb ecs register-task-definition --family oom --requires-compatibilities FARGATE --network-mode awsvpc --cpu 256 --memory 512 \
  --container-definitions "[{\"name\":\"hog\",\"image\":\"$IMAGE\",\"memory\":16,\"command\":[\"sh\",\"-c\",\"exec dd if=/dev/zero of=/dev/null bs=64M count=1\"]}]" >/dev/null
expect_error "maxSwap is refused for Fargate" ClientException awsb ecs register-task-definition --family fgswap \
  --requires-compatibilities FARGATE --network-mode awsvpc --cpu 256 --memory 512 \
  --container-definitions "[{\"name\":\"app\",\"image\":\"$IMAGE\",\"linuxParameters\":{\"maxSwap\":64}}]"
run() { awsb ecs run-task --cluster c1 "$@" --query 'tasks[0].taskArn' --output text | awk -F/ '{print $NF}'; }
lt=$(run --launch-type FARGATE --task-definition limits --network-configuration "$NET")
st=$(run --launch-type EC2 --task-definition swap)
ot=$(run --launch-type FARGATE --task-definition oom --network-configuration "$NET")
awsb ecs wait tasks-running --cluster c1 --tasks "$lt" "$st"

expect_eq "task memory 1024 MiB" "1073741824" "$(cg memory memory.limit_in_bytes memory.max "$lt")"
if [ -n "$V2" ]; then
  expect_eq "task cpu 512 is a CFS quota of half a CPU" "50000 100000" "$(cg cpu - cpu.max "$lt")"
  expect_eq "Fargate task: no swap" "0" "$(cg memory - memory.swap.max "$lt")"
  expect_eq "container memoryReservation is memory.low" "104857600" "$(cg memory - memory.low "$lt/app")"
  # runc's and crun's conversion of 256 CPU shares to a weight (1..10000).
  expect_eq "container cpu 256 units as cpu.weight" "10" "$(cg cpu - cpu.weight "$lt/app")"
  expect_eq "maxSwap 64 MiB is the container's swap" "67108864" "$(cg memory - memory.swap.max "$st/app")"
  expect_eq "a task asking for swap is not denied it" "max" "$(cg memory - memory.swap.max "$st")"
else
  expect_eq "task cpu 512 is a CFS quota of half a CPU" "50000" "$(cg cpu cpu.cfs_quota_us - "$lt")"
  expect_eq "container memoryReservation is the soft limit" "104857600" "$(cg memory memory.soft_limit_in_bytes - "$lt/app")"
  expect_eq "container cpu 256 units as cpu.shares" "256" "$(cg cpu cpu.shares - "$lt/app")"
  expect_eq "swappiness 10" "10" "$(cg memory memory.swappiness - "$st/app")"
  if [ -e "/sys/fs/cgroup/memory/berth/$st/app/memory.memsw.limit_in_bytes" ]; then
    expect_eq "maxSwap 64 MiB above memory 128 MiB" "201326592" "$(cg memory memory.memsw.limit_in_bytes - "$st/app")"
  fi
fi
expect_eq "container memory 300 MiB" "314572800" "$(cg memory memory.limit_in_bytes memory.max "$lt/app")"

# The stats a task reads from its metadata endpoint, in Docker's shape for this layout.
has_stats() { logs_of "app/$lt" | grep -q memory_stats; }
wait_for "the task's stats in its log" 120 has_stats
STATS=$(logs_of "app/$lt")
stat_check() {
  python3 - "$STATS" "$V2" <<'EOF'
import json, sys
s = json.loads(sys.argv[1]); v2 = sys.argv[2] == "1"
m, c = s["memory_stats"], s["cpu_stats"]
print(m["limit"] == 314572800, m["usage"] > 20000000 // 2, c["cpu_usage"]["total_usage"] > 0,
      ("anon" if v2 else "rss") in m["stats"], (m.get("max_usage") is None) == v2,
      s["pids_stats"]["current"] >= 1, c["online_cpus"] >= 1)
EOF
}
expect_eq "stats: limit, usage, cpu, memory.stat keys, max_usage per layout, pids, cpus" \
  "True True True True True True True" "$(stat_check)"

awsb ecs wait tasks-stopped --cluster c1 --tasks "$ot"
expect_eq "OOM reason" "OutOfMemoryError: Container killed due to memory usage" "$(field "$ot" 'containers[0].reason')"
expect_eq "OOM exit code" "137" "$(field "$ot" 'containers[0].exitCode')"
awsb ecs stop-task --cluster c1 --task "$lt" >/dev/null
awsb ecs stop-task --cluster c1 --task "$st" >/dev/null
awsb ecs wait tasks-stopped --cluster c1 --tasks "$lt" "$st"
expect_eq "stopped tasks leave no cgroup" "0" "$(for t in $lt $st $ot; do cg_exists "$t" && echo "$t"; done | wc -l)"

# 2. The server and the task's supervisor killed while the task runs (as a crash of the
#    whole service kills them): the next start removes its cgroup and records it STOPPED.
awsb ecs register-task-definition --family sleeper --requires-compatibilities FARGATE --network-mode awsvpc --cpu 256 --memory 512 \
  --container-definitions "[{\"name\":\"app\",\"image\":\"$IMAGE\",\"stopTimeout\":1,\"command\":[\"sleep\",\"6001\"]}]" >/dev/null
t=$(run --launch-type FARGATE --task-definition sleeper --network-configuration "$NET")
killed=$t
wait_for "the task's cgroup" 120 cg_exists "$t"
kill9_berth
pkill -9 -f "berth shim $BERTH_DATA/tasks/$t" || true
start_berth --register-instance c1
awsb ecs wait tasks-stopped --cluster c1 --tasks "$t"
expect_eq "killed mid-start: the task's cgroup is gone after the next start" "0" "$(cg_exists "$t" && echo 1 || echo 0)"
expect_eq "killed mid-start: no process of the task left" "0" "$(pgrep -f 'sleep 6001' | wc -l)"

# 3. berth down stops the tasks and removes every cgroup Berth made.
t=$(run --launch-type FARGATE --task-definition sleeper --network-configuration "$NET")
awsb ecs wait tasks-running --cluster c1 --tasks "$t"
"$BERTH_BIN" down --data-dir "$BERTH_DATA" >/dev/null
wait "$BERTH_PID" 2>/dev/null || true; BERTH_PID=""
if [ -n "$V2" ]; then
  expect_eq "berth down: no task cgroup, no tasks parent" "0" "$(ls -d "/sys/fs/cgroup$TASKS_CG" 2>/dev/null | wc -l)"
else
  # v1's hierarchies are shared by every Berth on the host: its own tasks' cgroups are
  # gone, and the parent too unless another Berth's tasks are in it.
  ran="$lt $st $ot $t $killed"
  expect_eq "berth down: none of its tasks' cgroups in any hierarchy" "0" "$(for id in $ran; do ls -d /sys/fs/cgroup/*/berth/"$id" 2>/dev/null; done | wc -l)"
  if [ -z "$(find /sys/fs/cgroup/memory/berth -mindepth 1 -maxdepth 1 -type d 2>/dev/null)" ]; then
    expect_eq "berth down: no berth cgroup in any hierarchy" "0" "$(ls -d /sys/fs/cgroup/*/berth 2>/dev/null | wc -l)"
  fi
fi

# 4. A host Berth cannot limit tasks on is refused at start, saying what is missing.
refused() { # DESCRIPTION EXPECTED-TEXT COMMAND...: berth up exits non-zero and says it
  local what="$1" text="$2" out rc=0; shift 2
  out=$("$@" 2>&1) || rc=$?
  if [ "$rc" != 0 ] && grep -q "$text" <<<"$out"; then pass "$what"; else fail "$what (rc $rc: $out)"; fi
}
DATA2=$(mktemp -d)
refused "read-only cgroup mount: refused at start" "read-only" unshare -m --propagation private sh -c \
  'for m in $(awk '\''$3 ~ /^cgroup/ {print $2}'\'' /proc/self/mounts); do mount -o remount,bind,ro "$m"; done;
   exec "$0" up --listen 127.0.0.1:0 --data-dir "$1"' "$BERTH_BIN" "$DATA2"
if [ -n "$V2" ]; then
  # A cgroup whose parent hands it no memory controller.
  mkdir -p /sys/fs/cgroup/nomem/inner
  refused "no memory controller: refused at start, naming it" "the memory cgroup controller is not available" sh -c \
    'echo $$ > /sys/fs/cgroup/nomem/inner/cgroup.procs; exec "$0" up --listen 127.0.0.1:0 --data-dir "$1"' "$BERTH_BIN" "$DATA2"
  rmdir /sys/fs/cgroup/nomem/inner /sys/fs/cgroup/nomem
else
  # The memory controller not mounted where v1 has it (disabled, or bound elsewhere).
  refused "no memory hierarchy: refused at start, naming it" "the memory cgroup controller is not mounted" \
    unshare -m --propagation private sh -c 'umount -l /sys/fs/cgroup/memory; exec "$0" up --listen 127.0.0.1:0 --data-dir "$1"' "$BERTH_BIN" "$DATA2"
fi
rm -rf "$DATA2" "$WORK"
finish
