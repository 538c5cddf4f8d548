#!/usr/bin/env bash
# End to end: the two protocols the newer models need reach a service with real clients.
# rest-json (Scheduler) with the aws CLI; smithy-rpc-v2-cbor (CloudWatch) with botocore's
# own CBOR serializer and parser. Neither service is served yet, so valid requests end in
# NotImplemented naming the operation: that answer comes from the service after the
# request was routed, decoded from its path, query, headers or CBOR body, and validated
# against the model (the validation cases show each binding reached the document).
source "$(dirname "$0")/lib.sh"
WORK="$(mktemp -d)"
start_berth

# rest-json: operations found by method and URI template; members from path and query.
expect_error "rest-json: GET /schedules is ListSchedules" NotImplemented awsb scheduler list-schedules
out="$(awsb scheduler get-schedule --name nightly --group-name g 2>&1 || true)"
expect_eq "rest-json: the operation is named" "GetSchedule is not implemented in Berth's scheduler service yet" "$(sed -n 's/.*operation: //p' <<<"$out")"
long="$(printf 'n%.0s' $(seq 65))"
out="$(awsb scheduler get-schedule --name "$long" 2>&1 || true)"
expect_eq "rest-json: a path label is validated (Name, max 64)" "(ValidationException) at 'Name'" "$(grep -o '(ValidationException)' <<<"$out") $(grep -o "at 'Name'" <<<"$out")"
out="$(awsb scheduler list-schedules --max-results 1000 2>&1 || true)"
expect_eq "rest-json: a query member is validated (MaxResults, max 100)" "(ValidationException) at 'MaxResults'" "$(grep -o '(ValidationException)' <<<"$out") $(grep -o "at 'MaxResults'" <<<"$out")"
out="$(awsb scheduler create-schedule --name n --schedule-expression 'rate(1 minute)' --flexible-time-window Mode=OFF \
  --target Arn=arn:aws:sqs:us-east-1:000000000000:q,RoleArn=arn:aws:iam::000000000000:role/r --state PAUSED-ISH 2>&1 || true)"
expect_eq "rest-json: a body member is validated (State enum)" "(ValidationException) at 'State'" "$(grep -o '(ValidationException)' <<<"$out") $(grep -o "at 'State'" <<<"$out")"
scope='Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/scheduler/aws4_request, SignedHeaders=host, Signature=0'
code="$(curl -s -o "$WORK/r" -D "$WORK/h" -w '%{http_code}' -H "$scope" "$BERTH_URL/schedules")"
expect_eq "rest-json: NotImplemented is a 501 with x-amzn-errortype" "501 NotImplemented" "$code $(sed -n 's/^x-amzn-errortype: \([A-Za-z]*\).*/\1/Ip' "$WORK/h")"
code="$(curl -s -o "$WORK/r" -w '%{http_code}' -H "$scope" -X PATCH "$BERTH_URL/schedules/x")"
expect_eq "rest-json: no operation at that method and path: 404" "404 UnknownOperationException" "$code $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["message"].split()[0] and "UnknownOperationException")' "$WORK/r")"
code="$(curl -s -o "$WORK/r" -w '%{http_code}' -H "$scope" -H 'Content-Type: application/json' --data '{"ScheduleExpression":' "$BERTH_URL/schedules/n")"
expect_eq "rest-json: a malformed body is a 400 SerializationException" "400 SerializationException" "$code $(curl -s -o /dev/null -D - -H "$scope" -H 'Content-Type: application/json' --data '{"ScheduleExpression":' "$BERTH_URL/schedules/n" | sed -n 's/^x-amzn-errortype: \([A-Za-z]*\).*/\1/Ip')"

# smithy-rpc-v2-cbor: botocore's serializer, CBOR bodies both ways.
CBOR="python3 $(dirname "$0")/fixtures/cbor_client.py $BERTH_URL"
out="$($CBOR put)"
expect_eq "cbor: PutMetricData (timestamps, doubles, lists) decodes and validates" \
  "501 NotImplemented PutMetricData is not implemented in Berth's monitoring service yet
service/GraniteServiceVersion20100801/operation/PutMetricData application/cbor" "$out"
# CloudWatch is awsQuery-compatible: botocore takes the code from x-amzn-query-error,
# where the model maps ValidationException to its query code, ValidationError.
expect_eq "cbor: a member over its length is refused in CBOR" "400 ValidationError" "$($CBOR too-long | cut -d' ' -f1,2)"
expect_eq "cbor: an enum value outside the model is refused" "400 ValidationError" "$($CBOR bad-enum | cut -d' ' -f1,2)"
# Raw requests: a malformed CBOR body, and an unknown operation; the server stays up.
cbor_raw() {
  curl -s -o "$WORK/c" -D "$WORK/ch" -w '%{http_code}' -H 'smithy-protocol: rpc-v2-cbor' -H 'Content-Type: application/cbor' \
    --data-binary "$2" "$BERTH_URL/service/GraniteServiceVersion20100801/operation/$1"
}
code="$(cbor_raw ListMetrics $'\xbf\x61')"
expect_eq "cbor: a truncated body is a 400 SerializationException, answered in CBOR" "400 SerializationException rpc-v2-cbor" \
  "$code $(python3 -c 'import sys; b=open(sys.argv[1],"rb").read(); print("SerializationException" if b"SerializationException" in b else b)' "$WORK/c") $(sed -n 's/^smithy-protocol: \([a-z0-9-]*\).*/\1/Ip' "$WORK/ch")"
code="$(cbor_raw NoSuchOperation $'\xa0')"
expect_eq "cbor: an unknown operation is refused" "400" "$code"
expect_eq "cbor: query-compatible errors carry x-amzn-query-error" "UnknownOperationException;Sender" "$(sed -n 's/^x-amzn-query-error: \([A-Za-z;]*\).*/\1/Ip' "$WORK/ch")"
# The same service over JSON (what the aws CLI picks) answers too.
expect_error "cloudwatch over JSON (the CLI's choice)" NotImplemented awsb cloudwatch list-metrics
# And the older services are unchanged.
expect_eq "ecs still answers" "[]" "$(awsb ecs list-clusters --query clusterArns --output json | tr -d ' \n')"
curl -fsS "$BERTH_URL/_berth/health" >/dev/null && pass "the server is still up" || fail "the server is still up"
stop_berth

# With --enforce-auth the signature is checked over what each protocol signs: the
# rest-json path and query, the CBOR body.
BERTH_DATA="$(mktemp -d)"; BERTH_PORT=""
start_berth --enforce-auth --access-key-id AKIDPROTO --secret-access-key protosecret
CBOR="python3 $(dirname "$0")/fixtures/cbor_client.py $BERTH_URL"
signed() { env AWS_ACCESS_KEY_ID=AKIDPROTO AWS_SECRET_ACCESS_KEY="$1" "${@:2}"; }
expect_error "rest-json, signed: reaches the service" NotImplemented signed protosecret aws --endpoint-url "$BERTH_URL" scheduler get-schedule --name n --group-name g
expect_error "rest-json, wrong secret: refused" InvalidSignatureException signed nope aws --endpoint-url "$BERTH_URL" scheduler get-schedule --name n --group-name g
expect_eq "cbor, signed: reaches the service" "501 NotImplemented" "$(signed protosecret $CBOR list | cut -d' ' -f1,2)"
expect_eq "cbor, wrong secret: refused in CBOR" "InvalidSignatureException" "$(signed nope $CBOR list | cut -d' ' -f2)"
# Services and operations Berth does not serve answer in the client's own protocol, so
# the client reads the error (awsQuery and rest-xml in XML, JSON and rest-json in JSON).
for cmd in "cloudformation list-stacks" "route53 list-hosted-zones" "lambda list-functions" \
  "dynamodb list-tables" "iam list-users" "sts get-caller-identity" "ec2 describe-addresses"; do
  expect_error "not served, parsed by the client: $cmd" NotImplemented signed protosecret aws --endpoint-url "$BERTH_URL" $cmd
done
expect_error "an S3 operation not served, in S3's XML" NotImplemented signed protosecret aws --endpoint-url "$BERTH_URL" s3api list-bucket-analytics-configurations --bucket any

finish
