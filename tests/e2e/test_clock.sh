#!/usr/bin/env bash
# End to end: `berth up --test-clock` lets a script read and move Berth's clock over HTTP
# (GET/POST /_berth/clock), and what services stamp follows it; bad requests change
# nothing; without the flag the endpoint does not exist.
source "$(dirname "$0")/lib.sh"
WORK="$(mktemp -d)"
start_berth --test-clock

clock() { curl -s -o "$WORK/c" -w '%{http_code}' "$@" "$BERTH_URL/_berth/clock"; }
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/c" "$1"; }
registered_at() {
  awsb ecs register-task-definition --family "$1" --container-definitions '[{"name":"a","image":"busybox","memory":64}]' \
    --query 'taskDefinition.registeredAt' --output text
}

expect_eq "GET reads the clock, not moved yet" "200 0" "$(clock) $(field offsetMs)"
t0="$(registered_at before)"
expect_eq "POST advances it by 10 days" "200 864000000" "$(clock -X POST --data '{"advance":"10d"}') $(field offsetMs)"
t1="$(registered_at after)"
expect_eq "a service stamps with the moved clock (registeredAt 10 days on)" "yes" \
  "$(python3 -c 'import sys; from datetime import datetime as d; a,b=(float(x) for x in sys.argv[1:]); print("yes" if 864000 <= b-a < 864000+120 else (a,b))' "$t0" "$t1")"
expect_eq "units: 90s more" "200 864090000" "$(clock -X POST --data '{"advance":"90s"}') $(field offsetMs)"
for bad in '{"advance":"-5m"}' '{"advance":"0s"}' '{"advance":"soon"}' '{"advance":5}' 'not json' '{}'; do
  expect_eq "refused: $bad" "400" "$(clock -X POST --data "$bad")"
done
expect_eq "refused requests moved nothing" "200 864090000" "$(clock) $(field offsetMs)"
expect_eq "other methods: 405" "405" "$(clock -X DELETE)"
expect_eq "an oversized body is refused" "400" "$(clock -X POST --data "{\"advance\":\"$(printf '1%.0s' $(seq 5000))s\"}")"
stop_berth

# Without the flag there is no clock endpoint.
BERTH_DATA="$(mktemp -d)"; BERTH_PORT=""
start_berth
expect_eq "off by default: GET 404" "404" "$(clock)"
expect_eq "off by default: POST 404" "404" "$(clock -X POST --data '{"advance":"1h"}')"
t2="$(registered_at plain)"
expect_eq "off by default: time is real" "yes" "$(python3 -c 'import sys,time; from datetime import datetime as d; print("yes" if abs(float(sys.argv[1])-time.time()) < 120 else sys.argv[1])' "$t2")"
finish
