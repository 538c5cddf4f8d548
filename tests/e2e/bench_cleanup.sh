#!/usr/bin/env bash
# Every benchmark that starts a berth (as root it sets up the bridge, the BERTH-* chains
# and cgroup mounts) ends with `berth down` for it, so the next benchmark or test finds
# the host as it was (a SIGTERM stops the server but leaves the host changes in place).
# A static check of the scripts: running the benchmarks takes many minutes.
source "$(dirname "$0")/lib.sh"
trap - EXIT
cd "$ROOT"
for f in bench/*.sh bench/*.py; do
  if grep -qE 'start_berth|up --listen|"up", "--listen"' "$f"; then
    if grep -qE 'down --data-dir|"down", "--data-dir"' "$f"; then pass "$f ends with berth down"; else fail "$f starts berth but never runs berth down"; fi
  fi
done
finish
