#!/usr/bin/env bash
# ECS API benchmark: Berth, moto_server and a minimal hyper server (the ceiling) side by
# side in one run on this machine. See BENCHMARKS.md for results and how to read them.
#
#   bench/ecs_api.sh            # 10 s per wrk run
#   DURATION=30 bench/ecs_api.sh
#   KEEP_RESULTS=/tmp/r.txt bench/ecs_api.sh   # also keep the raw key=value results
#
# Needs: cargo, python3, pip, wrk (installed with apt-get if missing), moto[server]
# (installed with pip if missing). All traffic goes to 127.0.0.1. Every process this
# script starts is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
HELPER="$BENCH/ecs_helper.py"
LUA="$BENCH/awsjson.lua"
DURATION="${DURATION:-10}"
CONNS=16
THREADS=2
REVISIONS=1000
COLD_RUNS="${COLD_RUNS:-11}"

WORK="$(mktemp -d -t berth-bench-XXXXXX)"
RESULTS="$WORK/results.txt"
PIDS=()

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  # Undo Berth's host changes (bridge, chains, mounts): the next benchmark starts clean.
  if [ -n "${BERTH_DATA:-}" ]; then "$BERTH_BIN" down --data-dir "$BERTH_DATA" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

log() { printf '==> %s\n' "$*" >&2; }
result() { printf '%s=%s\n' "$1" "$2" >>"$RESULTS"; }
# capture KEY CMD...: run CMD (failing the script if it fails or prints nothing) and record its output.
capture() {
  local key="$1" out
  shift
  out="$("$@")"
  [ -n "$out" ] || { echo "no output from: $*" >&2; exit 1; }
  result "$key" "$out"
}

result duration "$DURATION"

# --- (a) tools -------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  log "installing wrk"
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
if ! command -v moto_server >/dev/null || ! python3 -c 'import moto.server, flask' 2>/dev/null; then
  log "installing moto[server]"
  pip install --quiet 'moto[server]'
  hash -r
fi

# --- (b) build -------------------------------------------------------------------------
log "building berth and the ceiling server (release)"
(cd "$ROOT" && cargo build --release --quiet -p berth --bin berth --example ceiling)
TARGET_DIR="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys;print(json.load(sys.stdin)["target_directory"])')"
BERTH_BIN="$TARGET_DIR/release/berth"
CEILING_BIN="$TARGET_DIR/release/examples/ceiling"

# --- (f, first half) cold start, measured before anything else runs ----------------------
QUIET_WAIT="${QUIET_WAIT:-120}"
n_quiet=0
quiet() { # wait (bounded) for the machine to be idle and record how busy it was
  n_quiet=$((n_quiet + 1))
  capture "busy_${n_quiet}_$1" python3 "$HELPER" quiet "$QUIET_WAIT"
}

quiet coldstart
log "cold start: $COLD_RUNS runs, fresh data dir each"
capture coldstart python3 "$HELPER" coldstart "$BERTH_BIN" "$COLD_RUNS"

# --- (c) servers -----------------------------------------------------------------------
BERTH_PORT="$(python3 "$HELPER" free-port)"
MOTO_PORT="$(python3 "$HELPER" free-port)"
CEILING_PORT="$(python3 "$HELPER" free-port)"
BERTH_URL="http://127.0.0.1:$BERTH_PORT"
MOTO_URL="http://127.0.0.1:$MOTO_PORT"
CEILING_URL="http://127.0.0.1:$CEILING_PORT"
BERTH_DATA="$WORK/berth-data"
mkdir -p "$BERTH_DATA"
result data_fs "$(df -T "$BERTH_DATA" | awk 'NR==2 {print $2 " on " $1}')"

log "starting berth on $BERTH_URL, moto on $MOTO_URL, ceiling on $CEILING_URL"
"$BERTH_BIN" up --listen "127.0.0.1:$BERTH_PORT" --data-dir "$BERTH_DATA" --log warn 2>"$WORK/berth.log" &
BERTH_PID=$!
PIDS+=("$BERTH_PID")
moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
PIDS+=("$MOTO_PID")
"$CEILING_BIN" "127.0.0.1:$CEILING_PORT" 2>"$WORK/ceiling.log" &
CEILING_PID=$!
PIDS+=("$CEILING_PID")

python3 "$HELPER" wait "$BERTH_URL" /_berth/health 10
python3 "$HELPER" wait "$MOTO_URL" /moto-api/ 30
python3 "$HELPER" wait "$CEILING_URL" / 10
sleep 2 # let every server settle before reading idle memory
capture rss_berth_start python3 "$HELPER" rss "$BERTH_PID"
capture rss_moto_start python3 "$HELPER" rss "$MOTO_PID"

# --- (d) 1,000 revisions, sequential writes, timed ------------------------------------------
for s in berth moto; do
  url_var="${s^^}_URL"
  quiet "register_seq_$s"
  log "$s: registering $REVISIONS revisions of family bench (sequential, one keep-alive connection)"
  capture "register_seq_$s" python3 "$HELPER" register "${!url_var}" bench "$REVISIONS"
  chk="$(python3 "$HELPER" check "${!url_var}")"
  for kvp in $chk; do
    k="${kvp%%=*}"
    v="${kvp#*=}"
    case "$k" in
      describe_bytes) result "describe_bytes_$s" "$v" ;;
      list_bytes) result "list_bytes_$s" "$v" ;;
      list_arns) result "list_arns_$s" "$v" ;;
    esac
  done
done

# A second ceiling that answers as many bytes as Berth's List page, so List is also compared
# with a server sending the same amount (the small ceiling sends 39 bytes).
LIST_BYTES="$(python3 "$HELPER" check "$BERTH_URL" | tr ' ' '\n' | sed -n 's/^list_bytes=//p')"
CEILING_SIZED_PORT="$(python3 "$HELPER" free-port)"
CEILING_SIZED_URL="http://127.0.0.1:$CEILING_SIZED_PORT"
"$CEILING_BIN" "127.0.0.1:$CEILING_SIZED_PORT" "$LIST_BYTES" 2>"$WORK/ceiling-sized.log" &
PIDS+=("$!")
python3 "$HELPER" wait "$CEILING_SIZED_URL" / 10

# --- (e) reads ---------------------------------------------------------------------------
run_wrk() { # op body url -> RESULT line fields
  local op="$1" body="$2" url="$3" dur="$4"
  BENCH_OP="$op" BENCH_BODY="$body" wrk -t"$THREADS" -c"$CONNS" -d"${dur}s" --timeout 30s --latency -s "$LUA" "$url/" \
    | tee -a "$WORK/wrk.log" | sed -n 's/^RESULT //p'
}

DESCRIBE_BODY='{"taskDefinition":"bench:500"}'
LIST_BODY='{"familyPrefix":"bench","maxResults":100}'
for key in describe list; do
  if [ "$key" = describe ]; then op=DescribeTaskDefinition body="$DESCRIBE_BODY"; else op=ListTaskDefinitions body="$LIST_BODY"; fi
  servers="ceiling berth moto"
  if [ "$key" = list ]; then servers="ceiling ceiling_sized berth moto"; fi
  for s in $servers; do
    url_var="${s^^}_URL"
    quiet "read_${key}_$s"
    log "$op -> $s: 2 s warm-up, then ${DURATION} s"
    run_wrk "$op" "$body" "${!url_var}" 2 >/dev/null
    capture "read_${key}_$s" run_wrk "$op" "$body" "${!url_var}" "$DURATION"
  done
done
result describe_bytes_ceiling "$(printf '%s' '{"status":"ok","taskDefinitionArns":[]}' | wc -c)"
result list_bytes_ceiling "$(printf '%s' '{"status":"ok","taskDefinitionArns":[]}' | wc -c)"
result list_bytes_ceiling_sized "$LIST_BYTES"

sleep 2
capture rss_berth_after_reads python3 "$HELPER" rss "$BERTH_PID"
capture rss_moto_after_reads python3 "$HELPER" rss "$MOTO_PID"

# --- (d, second half) concurrent writes: 16 connections, one family ------------------------
WRITE_BODY="$(python3 -c 'import json,sys; sys.path.insert(0, sys.argv[1]); import ecs_helper; print(json.dumps(ecs_helper.taskdef("benchwrite"), separators=(",", ":")))' "$BENCH")"
for s in berth moto; do
  url_var="${s^^}_URL"
  quiet "register_wrk_$s"
  log "RegisterTaskDefinition -> $s: wrk -c$CONNS for ${DURATION} s (family benchwrite)"
  capture "register_wrk_$s" run_wrk RegisterTaskDefinition "$WRITE_BODY" "${!url_var}" "$DURATION"
done
sleep 2
capture rss_berth_after_writes python3 "$HELPER" rss "$BERTH_PID"

# --- cold start again, reopening the data dir that now holds every revision ------------------
kill "$BERTH_PID"
wait "$BERTH_PID" 2>/dev/null || true
log "cold start: 5 runs reopening the benchmark's data dir"
capture coldstart_loaded python3 "$HELPER" coldstart "$BERTH_BIN" 5 "$BERTH_DATA"

# --- (g) report ----------------------------------------------------------------------------
echo
echo "## ECS API benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo), $(uname -sr)"
if [ -n "${BERTH_REV:-}" ]; then
  rev="$BERTH_REV" # set when benchmarking an exported tree (no .git)
elif rev="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)"; then
  (cd "$ROOT" && git diff --quiet HEAD -- crates) || rev="$rev with uncommitted changes in crates/"
else
  rev=unknown
fi
echo "Berth: $rev; moto $(python3 -c 'import moto; print(moto.__version__)'); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
echo
if [ -n "${KEEP_RESULTS:-}" ]; then cp "$RESULTS" "$KEEP_RESULTS"; fi
python3 "$HELPER" report "$RESULTS"
echo
echo "Raw results:"
sed 's/^/    /' "$RESULTS"
