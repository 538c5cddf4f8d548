#!/usr/bin/env bash
# A Condition variant the data plane does not handle must not compile: berth-lb matches
# the model's conditions exhaustively, so an unhandled one cannot silently widen a rule.
set -u
cd "$(dirname "$0")/../.."
PASSES=0 FAILURES=0
pass() { PASSES=$((PASSES + 1)); echo "PASS - $1"; }
fail() { FAILURES=$((FAILURES + 1)); echo "FAIL - $1"; }

if cargo check -q -p berth-lb >/dev/null 2>&1; then
  pass "berth-lb checks without the extra condition"
else
  fail "berth-lb checks without the extra condition"
fi

out="$(cargo check -p berth-lb --features berth-model/compile-fail-extra-condition --message-format short 2>&1)"
status=$?
if [ "$status" -ne 0 ] && grep -qE '^crates/berth-lb/src/[^:]+:[0-9]+:[0-9]+: error\[E0004\]' <<<"$out"; then
  pass "an unhandled Condition variant fails berth-lb with E0004"
  grep -E 'error\[E0004\]' <<<"$out" | head -3
else
  fail "an unhandled Condition variant fails berth-lb with E0004 (exit $status)"
  echo "$out" | tail -20
fi

echo "$PASSES passed, $FAILURES failed"
[ "$FAILURES" -eq 0 ]
