#!/usr/bin/env bash
# Task start on cgroup v2: bench/task_start.sh inside the cg2vm VM (a kernel with cgroup
# v2 only, under software emulation), Berth (crun, in the delegated cgroup
# /system.slice/berth.service) beside `crun run` of the same bundle in the same VM.
# Reported, not a target: emulation slows process-heavy paths unevenly.
# Usage: bench/task_start_cgroup_v2.sh [TASKS]   (default 20). Needs root and cg2vm.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/vm/find-cg2vm.sh
[ -n "$CG2VM" ] || { echo "no cg2vm: set CG2VM to its path" >&2; exit 1; }
cargo build --release -p berth >/dev/null
# Overlay mounts need their upper directories on a tmpfs in the VM (/var/tmp is one).
exec "$CG2VM" --cgroup /system.slice/berth.service --timeout 3000 \
  -e FLOOR_RUNTIME=crun -e NO_BUILD=1 -e NO_4096=1 -e ATTEMPTS=1 -e BENCH_DIR=/var/tmp \
  -- bench/task_start.sh "${1:-20}" 0
