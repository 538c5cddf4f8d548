#!/usr/bin/env bash
# The tests that touch cgroups (tests/e2e/cgroups.sh), on cgroup v2, when this host has
# v1: run inside a VM whose kernel mounts only cgroup v2 (cg2vm, from $CG2VM), with Berth
# in a delegated cgroup as systemd's Delegate=yes gives it (/system.slice/berth.service).
# On a cgroup-v2 host the e2e run has covered v2 already.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ]; then
  echo "this host is cgroup v2: tests/e2e/cgroups.sh ran on it"; echo "0 passed, 0 failed"; exit 0
fi
source tests/vm/find-cg2vm.sh
if [ -z "$CG2VM" ] || [ ! -x "$CG2VM" ]; then
  echo "FAIL - cgroup v1 host and no cg2vm to test cgroup v2 with (set CG2VM to its path)" >&2
  echo "0 passed, 1 failed"; exit 1
fi
# The VM shares this directory writable and the rest of the host read-only. Emulation
# makes processes slow to start, so the task image is built here first and the aws CLI
# runs as one process in the VM (BERTH_AWS_SERVER, tests/e2e/lib.sh).
source tests/e2e/lib.sh
source tests/e2e/images.sh
trap - EXIT
LAYOUT="$PWD/target/vm-task-image"
rm -rf "$LAYOUT"
make_task_image "$LAYOUT" v1
# Once with each OCI runtime, as each is told the cgroup path its own way: crun with
# Berth started in the unit's cgroup (Delegate=yes; Berth makes its leaf), runc with Berth
# started in the leaf systemd 254+ makes (DelegateSubgroup=server).
passed=0; failed=0
for run in crun:/system.slice/berth.service runc:/system.slice/berth.service/server; do
  runtime=${run%%:*} cgroup=${run#*:}
  echo "== tests/e2e/cgroups.sh on cgroup v2, Berth started in $cgroup, $runtime"
  out=$("$CG2VM" --cgroup "$cgroup" --mem 4096 --timeout 1500 -e BERTH_AWS_SERVER=1 \
    -e TASK_IMAGE_LAYOUT="$LAYOUT" -e BERTH_OCI_RUNTIME="$runtime" -- bash tests/e2e/cgroups.sh 2>&1) && rc=0 || rc=$?
  echo "$out"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' <<<"$out" | tail -1 || true)
  p=$(cut -d' ' -f1 <<<"${line:-0 passed, 0 failed}"); f=$(cut -d' ' -f3 <<<"${line:-0 passed, 0 failed}")
  [ "$rc" = 0 ] || [ "$f" != 0 ] || f=1
  passed=$((passed + p)); failed=$((failed + f))
done
rm -rf "$LAYOUT"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
