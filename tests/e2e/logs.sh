#!/usr/bin/env bash
# End to end with the aws CLI: CloudWatch Logs groups, streams and events; reading from
# the head and the tail with tokens; filter patterns and time ranges; retention; tags;
# errors (the server stays up and nothing changes); durability across kill -9.
source "$(dirname "$0")/lib.sh"
WORK="$(mktemp -d)"
start_berth

now=$(( $(date +%s) * 1000 ))
G=/ecs/web
count() { python3 -c 'import json,sys; print(len(json.load(sys.stdin)["events"]))'; }
msgs() { python3 -c 'import json,sys; print(",".join(e["message"] for e in json.load(sys.stdin)["events"]))'; }
# logs_raw TARGET BODY: a raw awsJson call; prints "STATUS __type".
logs_raw() {
  curl -s -o "$WORK/raw.json" -w '%{http_code}' \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/logs/aws4_request, SignedHeaders=host, Signature=0' \
    -H "X-Amz-Target: Logs_20140328.$1" -H 'Content-Type: application/x-amz-json-1.1' --data "$2" "$BERTH_URL/"
  printf ' %s\n' "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("__type",""))' "$WORK/raw.json")"
}

# Groups and streams.
awsb logs create-log-group --log-group-name "$G" --tags env=prod >/dev/null
awsb logs create-log-group --log-group-name /ecs/api >/dev/null
expect_eq "describe-log-groups by prefix" "/ecs/api	/ecs/web" "$(awsb logs describe-log-groups --log-group-name-prefix /ecs/ --query 'logGroups[].logGroupName' --output text)"
expect_eq "group ARN" "arn:aws:logs:us-east-1:000000000000:log-group:/ecs/web:*" "$(awsb logs describe-log-groups --log-group-name-prefix "$G" --query 'logGroups[0].arn' --output text)"
expect_error "group exists" ResourceAlreadyExistsException awsb logs create-log-group --log-group-name "$G"
expect_error "bad group name" InvalidParameterException awsb logs create-log-group --log-group-name 'no spaces'
for s in app/1 app/2 other; do awsb logs create-log-stream --log-group-name "$G" --log-stream-name "$s" >/dev/null; done
expect_error "stream exists" ResourceAlreadyExistsException awsb logs create-log-stream --log-group-name "$G" --log-stream-name app/1
expect_error "stream in a missing group" ResourceNotFoundException awsb logs create-log-stream --log-group-name /nope --log-stream-name s
expect_error "bad stream name" InvalidParameterException awsb logs create-log-stream --log-group-name "$G" --log-stream-name 'a:b'
expect_eq "describe-log-streams by prefix" "app/1	app/2" "$(awsb logs describe-log-streams --log-group-name "$G" --log-stream-name-prefix app/ --query 'logStreams[].logStreamName' --output text)"
expect_eq "stream ARN" "arn:aws:logs:us-east-1:000000000000:log-group:/ecs/web:log-stream:app/1" "$(awsb logs describe-log-streams --log-group-name "$G" --log-stream-name-prefix app/1 --query 'logStreams[0].arn' --output text)"

# Events: 25 in app/1, a few in app/2 and other.
python3 - "$now" "$WORK/batch.json" <<'EOF'
import json, sys
now = int(sys.argv[1])
events = [{"timestamp": now - 60000 + i * 1000, "message": f"m{i}"} for i in range(25)]
json.dump({"logGroupName": "/ecs/web", "logStreamName": "app/1", "logEvents": events}, open(sys.argv[2], "w"))
EOF
tok=$(awsb logs put-log-events --cli-input-json "file://$WORK/batch.json" --query nextSequenceToken --output text)
expect_eq "put-log-events returns a sequence token" "56" "${#tok}"
awsb logs put-log-events --log-group-name "$G" --log-stream-name app/2 --log-events \
  "timestamp=$((now - 50500)),message=ERROR disk full" "timestamp=$((now - 30500)),message=WARN slow" "timestamp=$((now - 10500)),message=ERROR Exiting" >/dev/null
awsb logs put-log-events --log-group-name "$G" --log-stream-name other --sequence-token ignored --log-events \
  "timestamp=$((now - 40500)),message=INFO all good" >/dev/null

get() { awsb logs get-log-events --log-group-name "$G" --log-stream-name app/1 "$@"; }
expect_eq "get-log-events from the head" "m0,m1,m2" "$(get --start-from-head --limit 3 | msgs)"
expect_eq "get-log-events from the tail" "m22,m23,m24" "$(get --limit 3 | msgs)"
expect_eq "default: everything, oldest first" "25" "$(get | count)"
expect_eq "time range: start inclusive, end exclusive" "m10,m11,m12" "$(get --start-from-head --start-time $((now - 50000)) --end-time $((now - 47000)) | msgs)"

# Page forward with tokens until the same token comes back.
out=$(get --start-from-head --limit 10); seen=$(echo "$out" | count)
token=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["nextForwardToken"])')
pages=1
while :; do
  out=$(get --limit 10 --next-token "$token")
  next=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["nextForwardToken"])')
  seen=$((seen + $(echo "$out" | count))); pages=$((pages + 1))
  [ "$next" == "$token" ] && break
  token="$next"; [ "$pages" -gt 10 ] && break
done
expect_eq "forward paging reads every event once" "25" "$seen"
expect_eq "forward paging ends with the same token" "4" "$pages"
awsb logs put-log-events --log-group-name "$G" --log-stream-name app/1 --log-events "timestamp=$now,message=late" >/dev/null
expect_eq "the end token reads what arrives later" "late" "$(get --next-token "$token" | msgs)"
# Page backward from the tail.
out=$(get --limit 10); seen=$(echo "$out" | count)
token=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["nextBackwardToken"])')
while :; do
  out=$(get --limit 10 --next-token "$token")
  next=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["nextBackwardToken"])')
  seen=$((seen + $(echo "$out" | count)))
  [ "$next" == "$token" ] && break
  token="$next"
done
expect_eq "backward paging reads every event once" "26" "$seen"
expect_error "bad token" InvalidParameterException get --next-token f/nonsense
expect_error "missing stream" ResourceNotFoundException awsb logs get-log-events --log-group-name "$G" --log-stream-name ghost

# Filtering across streams.
flt() { awsb logs filter-log-events --log-group-name "$G" "$@"; }
expect_eq "filter: a term" "ERROR disk full,ERROR Exiting" "$(flt --filter-pattern ERROR | msgs)"
expect_eq "filter: exclusion" "ERROR disk full" "$(flt --filter-pattern 'ERROR -Exiting' | msgs)"
expect_eq "filter: alternatives, sorted by time across streams" "ERROR disk full,INFO all good,WARN slow" "$(flt --filter-pattern '?disk ?good ?slow' | msgs)"
expect_eq "filter: a quoted phrase" "ERROR disk full" "$(flt --filter-pattern '"disk full"' | msgs)"
expect_eq "filter: time range and streams" "INFO all good,WARN slow" "$(flt --start-time $((now - 45000)) --end-time $((now - 30000)) --log-stream-names app/2 other | msgs)"
expect_eq "filter: stream prefix" "3" "$(flt --log-stream-name-prefix app/2 | count)"
expect_eq "filter events name their stream" "other" "$(flt --filter-pattern good --query 'events[0].logStreamName' --output text)"
expect_eq "filter pages (the CLI follows nextToken)" "30" "$(flt --page-size 4 | count)"
expect_error "JSON patterns are refused clearly" InvalidParameterException flt --filter-pattern '{ $.level = "ERROR" }'

# Stream figures come from the segments.
expect_eq "order by last event time" "app/1" "$(awsb logs describe-log-streams --log-group-name "$G" --order-by LastEventTime --descending --query 'logStreams[0].logStreamName' --output text)"
expect_eq "lastEventTimestamp" "$now" "$(awsb logs describe-log-streams --log-group-name "$G" --log-stream-name-prefix app/1 --query 'logStreams[0].lastEventTimestamp' --output text)"
expect_eq "group storedBytes is real" "yes" "$(awsb logs describe-log-groups --log-group-name-prefix "$G" --query 'logGroups[0].storedBytes' --output text | python3 -c 'import sys; print("yes" if int(sys.stdin.read()) > 500 else "no")')"

# Too old and too new events are rejected, the rest kept.
expect_eq "rejected events reported" "0 2" "$(awsb logs put-log-events --log-group-name "$G" --log-stream-name other --log-events \
  "timestamp=$((now - 15 * 86400000)),message=old" "timestamp=$now,message=fine" "timestamp=$((now + 3 * 3600000)),message=future" \
  --query '[rejectedLogEventsInfo.tooOldLogEventEndIndex, rejectedLogEventsInfo.tooNewLogEventStartIndex]' --output text | tr '\t' ' ')"
expect_eq "only the valid one stored" "INFO all good,fine" "$(awsb logs get-log-events --log-group-name "$G" --log-stream-name other | msgs)"

# Retention and tags.
awsb logs put-retention-policy --log-group-name "$G" --retention-in-days 7
expect_eq "retention set" "7" "$(awsb logs describe-log-groups --log-group-name-prefix "$G" --query 'logGroups[0].retentionInDays' --output text)"
expect_error "invalid retention" InvalidParameterException awsb logs put-retention-policy --log-group-name "$G" --retention-in-days 2
expect_eq "retention unchanged" "7" "$(awsb logs describe-log-groups --log-group-name-prefix "$G" --query 'logGroups[0].retentionInDays' --output text)"
awsb logs delete-retention-policy --log-group-name "$G"
expect_eq "retention removed" "None" "$(awsb logs describe-log-groups --log-group-name-prefix "$G" --query 'logGroups[0].retentionInDays' --output text)"
garn="arn:aws:logs:us-east-1:000000000000:log-group:$G"
awsb logs tag-resource --resource-arn "$garn" --tags team=web
expect_eq "tags" "prod web" "$(awsb logs list-tags-for-resource --resource-arn "$garn" --query '[tags.env, tags.team]' --output text | tr '\t' ' ')"
awsb logs untag-resource --resource-arn "$garn" --tag-keys env
expect_eq "untag" "team" "$(awsb logs list-tags-log-group --log-group-name "$G" --query 'keys(tags)' --output text)"

# Bad input: the AWS error, a 4xx, the server stays up, nothing changes.
before=$(get | count)
expect_eq "malformed JSON" "400 SerializationException" "$(logs_raw PutLogEvents '{"logGroupName": ')"
expect_eq "unknown operation" "400 UnknownOperationException" "$(logs_raw NoSuchThing '{}')"
expect_eq "missing required fields" "400 InvalidParameterException" "$(logs_raw PutLogEvents '{"logGroupName": "/ecs/web"}')"
expect_eq "wrong types" "400 SerializationException" "$(logs_raw PutLogEvents '{"logGroupName": "/ecs/web", "logStreamName": "app/1", "logEvents": "x"}')"
expect_eq "an operation Berth does not implement" "501 NotImplemented" "$(logs_raw StartQuery '{"logGroupName": "/ecs/web", "startTime": 1, "endTime": 2, "queryString": "fields @message"}')"
expect_error "out-of-order events" InvalidParameterException awsb logs put-log-events --log-group-name "$G" --log-stream-name app/1 --log-events "timestamp=$now,message=b" "timestamp=$((now - 1)),message=a"
python3 - "$now" "$WORK/big.json" <<'EOF'
import json, sys
now = int(sys.argv[1])
events = [{"timestamp": now, "message": "x" * 600000} for _ in range(2)]
json.dump({"logGroupName": "/ecs/web", "logStreamName": "app/1", "logEvents": events}, open(sys.argv[2], "w"))
EOF
expect_error "a batch over 1 MiB" InvalidParameterException awsb logs put-log-events --cli-input-json "file://$WORK/big.json"
expect_error "a batch spanning over 24 hours" InvalidParameterException awsb logs put-log-events --log-group-name "$G" --log-stream-name app/1 --log-events "timestamp=$((now - 25 * 3600000)),message=a" "timestamp=$now,message=b"
expect_error "not implemented via the CLI" NotImplemented awsb logs describe-metric-filters
expect_eq "server still up" "200" "$(curl -s -o /dev/null -w '%{http_code}' "$BERTH_URL/_berth/health")"
expect_eq "nothing was stored by refused requests" "$before" "$(get | count)"

# Deleting.
awsb logs delete-log-stream --log-group-name "$G" --log-stream-name app/2
expect_eq "stream deleted" "app/1	other" "$(awsb logs describe-log-streams --log-group-name "$G" --query 'logStreams[].logStreamName' --output text)"
expect_error "deleted stream" ResourceNotFoundException awsb logs delete-log-stream --log-group-name "$G" --log-stream-name app/2
api_dir="$BERTH_DATA/logs/000000000000/us-east-1/$(python3 -c 'print(b"/ecs/api".hex())')"
awsb logs create-log-stream --log-group-name /ecs/api --log-stream-name s >/dev/null
awsb logs put-log-events --log-group-name /ecs/api --log-stream-name s --log-events "timestamp=$now,message=x" >/dev/null
expect_eq "segments live under the group's directory" "yes" "$([ -d "$api_dir" ] && echo yes || echo no)"
awsb logs delete-log-group --log-group-name /ecs/api
expect_eq "group deleted" "/ecs/web" "$(awsb logs describe-log-groups --query 'logGroups[].logGroupName' --output text)"
expect_eq "its segment directories removed" "no" "$([ -d "$api_dir" ] && echo yes || echo no)"
expect_error "deleted group" ResourceNotFoundException awsb logs delete-log-group --log-group-name /ecs/api

# aws logs tail --follow (CLI v2: Debian's awscli package; PyPI's awscli is v1, without
# tail) prints events as they are put, while it runs.
AWS2=/usr/bin/aws
if [ -x "$AWS2" ] && "$AWS2" --version 2>&1 | grep -q '^aws-cli/2\.'; then
  awsb logs create-log-group --log-group-name /tail/web >/dev/null
  awsb logs create-log-stream --log-group-name /tail/web --log-stream-name app/1 >/dev/null
  put_now() { awsb logs put-log-events --log-group-name /tail/web --log-stream-name app/1 --log-events "timestamp=$(( $(date +%s%N) / 1000000 )),message=$1" >/dev/null; }
  put_now "before the tail"
  "$AWS2" --endpoint-url "$BERTH_URL" logs tail /tail/web --follow --since 10m --format short >"$WORK/tail.out" 2>"$WORK/tail.err" &
  TAIL_PID=$!
  if wait_for "tail to print the event put before it" 30 grep -q "before the tail" "$WORK/tail.out"; then
    pass "logs tail: the events so far"
  else fail "logs tail: the events so far ($(cat "$WORK/tail.err"))"; fi
  put_now "while it follows"
  if wait_for "tail --follow to print an event put later" 30 grep -q "while it follows" "$WORK/tail.out"; then
    pass "logs tail --follow: an event put while it runs"
  else fail "logs tail --follow: an event put while it runs ($(cat "$WORK/tail.err"))"; fi
  kill "$TAIL_PID" 2>/dev/null; wait "$TAIL_PID" 2>/dev/null || true
  awsb logs delete-log-group --log-group-name /tail/web
else
  fail "aws CLI v2 at $AWS2 (Debian's awscli package; scripts/setup installs it)"
fi

# Acknowledged events survive kill -9.
awsb logs put-log-events --log-group-name "$G" --log-stream-name app/1 --log-events "timestamp=$now,message=last words" >/dev/null
total=$(get | count)
kill9_berth
start_berth
expect_eq "events after kill -9" "$total" "$(get | count)"
expect_eq "the last event after kill -9" "last words" "$(get --limit 1 | msgs)"
expect_eq "groups after kill -9" "/ecs/web" "$(awsb logs describe-log-groups --query 'logGroups[].logGroupName' --output text)"
awsb logs put-log-events --log-group-name "$G" --log-stream-name app/1 --log-events "timestamp=$now,message=after restart" >/dev/null
expect_eq "appending after a restart" "last words,after restart" "$(get --limit 2 | msgs)"

rm -rf "$WORK"
finish
