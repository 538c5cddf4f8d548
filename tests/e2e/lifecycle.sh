#!/usr/bin/env bash
# The server's own lifecycle: one server per data directory, `berth down` stops it.
source "$(dirname "$0")/lib.sh"
start_berth
awsb ecs create-cluster --cluster-name keep >/dev/null
expect_eq "a second server on the same data dir is refused" "1" \
  "$("$BERTH_BIN" up --listen 127.0.0.1:0 --data-dir "$BERTH_DATA" 2>&1 | grep -c 'already serving')"
down_out="$("$BERTH_BIN" down --data-dir "$BERTH_DATA")"
expect_eq "berth down stops it" "berth (pid $BERTH_PID) stopped" "$(head -1 <<<"$down_out")"
if [ "$(id -u)" = 0 ]; then
  expect_eq "berth down says which host changes it removed" "deleted link berth0" "$(grep -x 'deleted link berth0' <<<"$down_out")"
fi
if wait "$BERTH_PID"; then pass "the server exited cleanly"; else fail "the server exited with $?"; fi
BERTH_PID=""
expect_eq "down again says nothing runs" "berth is not running for $BERTH_DATA" "$("$BERTH_BIN" down --data-dir "$BERTH_DATA")"
start_berth
expect_eq "state kept across down and up" "arn:aws:ecs:us-east-1:000000000000:cluster/keep" "$(awsb ecs list-clusters --query 'clusterArns[0]' --output text)"
kill9_berth
start_berth
expect_eq "a kill -9'd server's lock is released" "200" "$(curl -s -o /dev/null -w '%{http_code}' "$BERTH_URL/_berth/health")"
finish
