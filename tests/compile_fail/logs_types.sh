#!/usr/bin/env bash
# Typed operation inputs: a handler cannot read a member the model lacks, take a required
# member as an Option, or build a request without one. berth-logs' compile_fail.rs does
# each (feature compile-fail-typed); every one must fail with its own error code.
set -u
cd "$(dirname "$0")/../.."
PASSES=0 FAILURES=0
pass() { PASSES=$((PASSES + 1)); echo "PASS - $1"; }
fail() { FAILURES=$((FAILURES + 1)); echo "FAIL - $1"; }

if cargo check -q -p berth-logs >/dev/null 2>&1; then
  pass "berth-logs checks without the feature"
else
  fail "berth-logs checks without the feature"
fi

out="$(cargo check -p berth-logs --features compile-fail-typed --message-format short 2>&1)"
for case in "E0609 a member the model lacks" "E0308 a required member taken as an Option" \
  "E0063 a required member left out"; do
  code="${case%% *}"
  if grep -qE "^crates/berth-logs/src/compile_fail.rs:[0-9]+:[0-9]+: error\[$code\]" <<<"$out"; then
    pass "${case#* } fails with $code"
  else
    fail "${case#* } fails with $code"
    echo "$out" | tail -20
  fi
done

echo "$PASSES passed, $FAILURES failed"
[ "$FAILURES" -eq 0 ]
