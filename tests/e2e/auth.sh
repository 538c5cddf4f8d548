#!/usr/bin/env bash
# --enforce-auth with the aws CLI's own SigV4 signing, and a clean SIGTERM stop.
source "$(dirname "$0")/lib.sh"
start_berth --enforce-auth --access-key-id AKIDE2E --secret-access-key e2esecret --test-clock


expect_eq "signed request accepted" "ACTIVE" "$(AWS_ACCESS_KEY_ID=AKIDE2E AWS_SECRET_ACCESS_KEY=e2esecret awsb ecs create-cluster --cluster-name signed --query cluster.status --output text)"
expect_error "wrong secret" InvalidSignatureException env AWS_ACCESS_KEY_ID=AKIDE2E AWS_SECRET_ACCESS_KEY=nope aws --endpoint-url "$BERTH_URL" ecs list-clusters
expect_error "unknown key" UnrecognizedClientException env AWS_ACCESS_KEY_ID=AKIDNOPE AWS_SECRET_ACCESS_KEY=e2esecret aws --endpoint-url "$BERTH_URL" ecs list-clusters
expect_error "unsigned" MissingAuthenticationToken aws --no-sign-request --endpoint-url "$BERTH_URL" ecs list-clusters
expect_eq "a session token, as task credentials carry, is signed over and accepted" "ACTIVE" "$(AWS_ACCESS_KEY_ID=AKIDE2E AWS_SECRET_ACCESS_KEY=e2esecret AWS_SESSION_TOKEN=berth-task-e2e awsb ecs describe-clusters --clusters signed --query 'clusters[0].status' --output text)"
expect_eq "query protocol signed too" "172.31.0.0/16" "$(AWS_ACCESS_KEY_ID=AKIDE2E AWS_SECRET_ACCESS_KEY=e2esecret awsb ec2 describe-vpcs --query 'Vpcs[0].CidrBlock' --output text 2>&1)"
expect_error "query protocol wrong secret" InvalidSignatureException env AWS_ACCESS_KEY_ID=AKIDE2E AWS_SECRET_ACCESS_KEY=nope aws --endpoint-url "$BERTH_URL" ec2 describe-vpcs

# Signatures that expire: a client whose clock is 20 minutes off (faketime) is refused in
# its protocol's words; 10 minutes off is within AWS's 15. The test clock never moves it.
signed() { env AWS_ACCESS_KEY_ID=AKIDE2E AWS_SECRET_ACCESS_KEY=e2esecret "$@"; }
said() { "$@" 2>&1 | sed -n 's/.*operation: //p'; }
expect_error "json: 20 minutes late" InvalidSignatureException signed faketime -f -20m aws --endpoint-url "$BERTH_URL" ecs list-clusters
expect_eq "json: 20 minutes late, AWS's message" "1" "$(said signed faketime -f -20m aws --endpoint-url "$BERTH_URL" ecs list-clusters | grep -cE '^Signature expired: [0-9]{8}T[0-9]{6}Z is now earlier than [0-9]{8}T[0-9]{6}Z \([0-9]{8}T[0-9]{6}Z - 15 min\.\)$')"
expect_eq "json: 20 minutes early" "1" "$(said signed faketime -f +20m aws --endpoint-url "$BERTH_URL" ecs list-clusters | grep -c '^Signature not yet current: .* is still later than .* + 15 min')"
expect_eq "json: 10 minutes off is accepted" "signed" "$(signed faketime -f -10m aws --endpoint-url "$BERTH_URL" ecs list-clusters --query 'clusterArns[0]' --output text | cut -d/ -f2)"
expect_eq "query (ELBv2): expired" "1" "$(said signed faketime -f -20m aws --endpoint-url "$BERTH_URL" elbv2 describe-load-balancers | grep -c '^Signature expired')"
expect_error "ec2: RequestExpired" RequestExpired signed faketime -f -20m aws --endpoint-url "$BERTH_URL" ec2 describe-vpcs
expect_error "s3: RequestTimeTooSkewed" RequestTimeTooSkewed signed faketime -f -20m aws --endpoint-url "$BERTH_URL" s3 ls
curl -fsS -d '{"advance":"1h"}' "$BERTH_URL/_berth/clock" >/dev/null
expect_eq "the test clock moved an hour: a request signed now still passes" "signed" "$(signed aws --endpoint-url "$BERTH_URL" ecs list-clusters --query 'clusterArns[0]' --output text | cut -d/ -f2)"
# Presigned URLs (SigV4, which the CLI v1 uses for S3 when configured so): refused after
# X-Amz-Expires, and longer than a week is refused.
export AWS_CONFIG_FILE="$BERTH_DATA/aws-config"
printf '[default]\ns3 =\n    signature_version = s3v4\n' >"$AWS_CONFIG_FILE"
signed aws --endpoint-url "$BERTH_URL" s3 mb s3://presign >/dev/null
echo hello | signed aws --endpoint-url "$BERTH_URL" s3 cp - s3://presign/k >/dev/null
expect_eq "presigned: fresh" "hello" "$(curl -s "$(signed aws --endpoint-url "$BERTH_URL" s3 presign s3://presign/k --expires-in 600)")"
stale=$(signed faketime -f -20m aws --endpoint-url "$BERTH_URL" s3 presign s3://presign/k --expires-in 600)
expect_eq "presigned: expired 10 minutes ago" "403 AccessDenied Request has expired" \
  "$(curl -s -w '%{http_code}' "$stale" | python3 -c 'import sys, re; b = sys.stdin.read(); print(b[-3:], re.search("<Code>(.*)</Code>", b)[1], re.search("<Message>(.*)</Message>", b)[1])')"
long=$(signed aws --endpoint-url "$BERTH_URL" s3 presign s3://presign/k --expires-in 604801 2>/dev/null || true)
if [ -n "$long" ]; then
  expect_eq "presigned: longer than a week refused" "AuthorizationQueryParametersError" "$(curl -s "$long" | sed -n 's:.*<Code>\(.*\)</Code>.*:\1:p')"
fi

# SIGTERM stops the server cleanly (exit status 0).
kill -TERM "$BERTH_PID"
if wait "$BERTH_PID"; then pass "SIGTERM exits 0"; else fail "SIGTERM exit status $?"; fi
BERTH_PID=""
finish
