#!/usr/bin/env bash
# An edge that holds under abuse: 5,000 idle connections and a client that sends its
# headers a line a second do not keep real clients (the aws CLI, curl) from being served;
# a connection that takes longer than --idle-timeout to send its headers, or sits idle
# that long, is closed; at --max-connections the edge stops accepting until one closes.
source "$(dirname "$0")/lib.sh"
HOLD="$ROOT/tests/e2e/fixtures/hold_connections.py"
HOLDERS=()
trap 'for p in "${HOLDERS[@]}"; do kill "$p" 2>/dev/null || true; done; stop_berth' EXIT
health() { curl -s -o /dev/null -w '%{http_code}' "$BERTH_URL/_berth/health"; }

# 1. 5,000 idle connections and a slow-header client, all accepted; real clients served.
start_berth
R="$BERTH_DATA/held"
python3 "$HOLD" "$BERTH_PORT" 5000 "$R" slow & HOLDERS+=($!)
wait_for "5,000 connections open" 60 test -s "$R"
expect_eq "the edge accepted them (the server's open descriptors)" "1" "$([ "$(ls /proc/$BERTH_PID/fd | wc -l)" -gt 5000 ] && echo 1 || echo 0)"
expect_eq "a real client is served meanwhile (aws CLI)" "ACTIVE" "$(awsb ecs create-cluster --cluster-name busy --query cluster.status --output text)"
expect_eq "and curl" "200" "$(health)"
kill "${HOLDERS[0]}"; wait "${HOLDERS[0]}" 2>/dev/null || true; HOLDERS=()
stop_berth

# 2. A short --idle-timeout: the slow-header client and an idle connection are closed.
BERTH_DATA=$(mktemp -d); BERTH_PORT=""
start_berth --idle-timeout 1
R="$BERTH_DATA/held"
python3 "$HOLD" "$BERTH_PORT" 1 "$R" slow & HOLDERS+=($!)
wait_for "connections open" 30 test -s "$R"
closed() { grep -q "closed $1" "$R.closed" 2>/dev/null; }
if wait_for "the slow-header client closed" 30 closed slow; then pass "slow headers: closed after --idle-timeout"; else fail "slow headers: still open"; fi
if wait_for "the idle connection closed" 30 closed idle; then pass "idle connection: closed after --idle-timeout"; else fail "idle connection: still open"; fi
expect_eq "real clients still served" "200" "$(health)"
kill "${HOLDERS[0]}"; wait "${HOLDERS[0]}" 2>/dev/null || true; HOLDERS=()
stop_berth

# 3. --max-connections: at the limit the edge stops accepting; once one closes, it serves.
BERTH_DATA=$(mktemp -d); BERTH_PORT=""
start_berth --max-connections 3
R="$BERTH_DATA/held"
python3 "$HOLD" "$BERTH_PORT" 3 "$R" & HOLDERS+=($!)
wait_for "3 connections open" 30 test -s "$R"
full() { grep -q "at --max-connections" "$BERTH_DATA/berth.log"; }
if wait_for "the limit reached" 30 full; then pass "at the limit: the edge says so"; else fail "at the limit: no word of it"; fi
kill "${HOLDERS[0]}"; wait "${HOLDERS[0]}" 2>/dev/null || true; HOLDERS=()
expect_eq "once they close, clients are served" "200" "$(health)"
finish
