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
CG2VM="${CG2VM:-$(command -v cg2vm || true)}"
if [ -z "$CG2VM" ] || [ ! -x "$CG2VM" ]; then
  echo "FAIL - cgroup v1 host and no cg2vm to test cgroup v2 with (set CG2VM to its path)" >&2
  echo "0 passed, 1 failed"; exit 1
fi
# The VM shares this directory writable and the rest of the host read-only; TCG
# emulation makes it slow, hence the long limit.
exec "$CG2VM" --cgroup /system.slice/berth.service --mem 4096 --timeout 1500 -- bash tests/e2e/cgroups.sh
