#!/usr/bin/env bash
# Berth's registry against Debian's docker-registry, side by side in one run.
# Usage: [SKOPEO_ROUNDS=N] bench/registry.sh [ROUNDS]   (defaults 5 and 5). Prints MB/s per
# server and the ratios, and the skopeo push and pull times.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-5}"
command -v docker-registry >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry; }
command -v skopeo >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq skopeo; }
cargo build --release -p berth --bin berth --example registry_client >/dev/null
# The disk under test is the one /work lives on, for both servers and the fsync probe.
WORK="$(mktemp -d -p "${BENCH_DIR:-/work}" berth-bench.XXXXXX)"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
BP=$(port); RP=$(port)
cat > "$WORK/registry.yml" <<YML
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $WORK/registry-data}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$RP}
YML
# Start from an empty page cache, so runs start alike: after a CI run had left 12 GB of
# it, the same Berth took 96 ms per 50 MiB upload instead of 62 ms while write+fsync held
# at 45 ms (BENCHMARKS.md, Registry, session 7). Needs root; skipped otherwise.
if [ -w /proc/sys/vm/drop_caches ]; then sync; echo 3 > /proc/sys/vm/drop_caches; fi
target/release/berth up --listen "127.0.0.1:$BP" --data-dir "$WORK/berth-data" --log warn >"$WORK/berth.log" 2>&1 &
BPID=$!
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
RPID=$!
trap 'kill $BPID $RPID 2>/dev/null || true; wait $BPID $RPID 2>/dev/null || true; target/release/berth down --data-dir "$WORK/berth-data" >/dev/null 2>&1 || true; rm -rf "$WORK" /dev/shm/berth-bench-blob*' EXIT
for u in "http://127.0.0.1:$BP/_berth/health" "http://127.0.0.1:$RP/v2/"; do
  for _ in $(seq 200); do curl -fsS -o /dev/null "$u" 2>/dev/null && break; sleep 0.05; done
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)"
python3 bench/registry.py "http://127.0.0.1:$BP" "http://127.0.0.1:$RP" "$WORK" "$ROUNDS"
