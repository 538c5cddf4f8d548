#!/usr/bin/env bash
# ELBv2's typed operation inputs: a handler cannot read a member the model lacks, take a
# required member as an Option, or build a request without one. berth-elbv2's
# compile_fail.rs does each (feature compile-fail-typed); each must fail with its own code.
set -u
cd "$(dirname "$0")/../.."
PASSES=0 FAILURES=0
pass() { PASSES=$((PASSES + 1)); echo "PASS - $1"; }
fail() { FAILURES=$((FAILURES + 1)); echo "FAIL - $1"; }

if cargo check -q -p berth-elbv2 >/dev/null 2>&1; then
  pass "berth-elbv2 checks without the feature"
else
  fail "berth-elbv2 checks without the feature"
fi

out="$(cargo check -p berth-elbv2 --features compile-fail-typed --message-format short 2>&1)"
for case in "E0609 a member the model lacks" "E0308 a required member taken as an Option" \
  "E0063 a required member left out"; do
  code="${case%% *}"
  if grep -qE "^crates/berth-elbv2/src/compile_fail.rs:[0-9]+:[0-9]+: error\[$code\]" <<<"$out"; then
    pass "${case#* } fails with $code"
  else
    fail "${case#* } fails with $code"
    echo "$out" | tail -20
  fi
done

echo "$PASSES passed, $FAILURES failed"
[ "$FAILURES" -eq 0 ]
