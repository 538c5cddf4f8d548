# Shared helpers for the end-to-end scripts: start a real berth on a free port with a
# fresh data directory, drive it with the aws CLI, and check what a user would check.
# Source it; every script runs with `set -euo pipefail`.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BERTH_BIN="${BERTH_BIN:-$ROOT/target/debug/berth}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_PAGER=""
FAILURES=0
PASSES=0

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start_berth [extra args...]: sets BERTH_PID, BERTH_URL, BERTH_DATA and BERTH_PORT (the last
# two reused if already set). BERTH_LAUNCH prefixes the command (the benchmarks use setsid).
start_berth() {
  BERTH_PORT="${BERTH_PORT:-$(free_port)}" # a restart keeps its port: images name it
  BERTH_DATA="${BERTH_DATA:-$(mktemp -d)}"
  BERTH_URL="http://127.0.0.1:$BERTH_PORT"
  ${BERTH_LAUNCH:-} "$BERTH_BIN" up --listen "${BERTH_BIND:-127.0.0.1}:$BERTH_PORT" --data-dir "$BERTH_DATA" "$@" >"$BERTH_DATA/berth.log" 2>&1 &
  BERTH_PID=$!
  wait_for "berth health" 10 curl -fsS "$BERTH_URL/_berth/health"
}

stop_berth() {
  if [ -n "${BERTH_PID:-}" ]; then kill "$BERTH_PID" 2>/dev/null || true; wait "$BERTH_PID" 2>/dev/null || true; BERTH_PID=""; fi
}

kill9_berth() {
  kill -9 "$BERTH_PID"; wait "$BERTH_PID" 2>/dev/null || true; BERTH_PID=""
}

trap 'stop_berth; stop_aws_server' EXIT

# wait_for DESCRIPTION DEADLINE_SECONDS CMD...: retry CMD until it succeeds or the deadline passes.
wait_for() {
  local what="$1" deadline=$(( $(date +%s) + $2 )); shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then echo "timed out waiting for $what" >&2; return 1; fi
    sleep 0.05
  done
}

awsb() { aws --endpoint-url "$BERTH_URL" "$@"; }

# BERTH_AWS_SERVER=1 (set for the cgroup-v2 VM, where a new aws process spends ~15 s in
# emulation): `aws` is answered by one long-lived aws CLI (fixtures/aws_server.py), each
# command through the CLI's own driver. The environment is the server's, taken once.
AWS_SERVER_PID=""
stop_aws_server() { if [ -n "$AWS_SERVER_PID" ]; then kill "$AWS_SERVER_PID" 2>/dev/null || true; fi; }
if [ -n "${BERTH_AWS_SERVER:-}" ]; then
  AWS_PORT_FILE="$(mktemp -u)"
  python3 "$ROOT/tests/e2e/fixtures/aws_server.py" "$AWS_PORT_FILE" &
  AWS_SERVER_PID=$!
  wait_for "the aws CLI server" 300 test -s "$AWS_PORT_FILE"
  aws() {
    local rc out err
    exec 9<>"/dev/tcp/127.0.0.1/$(cat "$AWS_PORT_FILE")"
    printf '%s\n' "$#" >&9
    printf '%s\0' "$@" >&9
    read -r rc out err <&9
    exec 9<&-
    cat "$out"; cat "$err" >&2; rm -f "$out" "$err"
    return "$rc"
  }
fi

# wait_registered CLUSTER: until this host is a container instance of CLUSTER (what
# `berth up --register-instance CLUSTER` does once the cluster exists).
registered() { [ "$(awsb ecs list-container-instances --cluster "$1" --query 'length(containerInstanceArns)')" = 1 ]; }
wait_registered() { wait_for "this host registered in $1" 10 registered "$1"; }

pass() { PASSES=$((PASSES+1)); echo "ok - $1"; }
fail() { FAILURES=$((FAILURES+1)); echo "FAIL - $1" >&2; }

# expect_eq NAME EXPECTED ACTUAL
expect_eq() {
  if [ "$2" == "$3" ]; then pass "$1"; else fail "$1: expected [$2], got [$3]"; fi
}

# expect_error NAME CODE CMD...: CMD must fail and print the AWS error CODE.
expect_error() {
  local name="$1" code="$2"; shift 2
  local out
  if out="$("$@" 2>&1)"; then fail "$name: expected error $code, command succeeded: $out"; return; fi
  if grep -q "($code)" <<<"$out"; then pass "$name"; else fail "$name: expected ($code), got: $out"; fi
}

finish() {
  echo "$PASSES passed, $FAILURES failed"
  [ "$FAILURES" -eq 0 ]
}
