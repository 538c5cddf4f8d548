# Sourced: sets CG2VM to the cg2vm tool (a cgroup-v2 VM): $CG2VM, on PATH, or the team's
# shared tools beside the checkout; empty when there is none.
for c in "${CG2VM:-}" "$(command -v cg2vm || true)" "$PWD/../shared/tools/cg2vm" /work/shared/tools/cg2vm; do
  if [ -n "$c" ] && [ -x "$c" ]; then CG2VM="$c"; break; fi
done
CG2VM="${CG2VM:-}"
