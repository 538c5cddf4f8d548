#!/usr/bin/env bash
# --enforce-auth with the aws CLI's own SigV4 signing, and a clean SIGTERM stop.
source "$(dirname "$0")/lib.sh"
start_berth --enforce-auth --access-key-id AKIDE2E --secret-access-key e2esecret


expect_eq "signed request accepted" "ACTIVE" "$(AWS_ACCESS_KEY_ID=AKIDE2E AWS_SECRET_ACCESS_KEY=e2esecret awsb ecs create-cluster --cluster-name signed --query cluster.status --output text)"
expect_error "wrong secret" InvalidSignatureException env AWS_ACCESS_KEY_ID=AKIDE2E AWS_SECRET_ACCESS_KEY=nope aws --endpoint-url "$BERTH_URL" ecs list-clusters
expect_error "unknown key" UnrecognizedClientException env AWS_ACCESS_KEY_ID=AKIDNOPE AWS_SECRET_ACCESS_KEY=e2esecret aws --endpoint-url "$BERTH_URL" ecs list-clusters
expect_error "unsigned" MissingAuthenticationToken aws --no-sign-request --endpoint-url "$BERTH_URL" ecs list-clusters
expect_eq "a session token, as task credentials carry, is signed over and accepted" "ACTIVE" "$(AWS_ACCESS_KEY_ID=AKIDE2E AWS_SECRET_ACCESS_KEY=e2esecret AWS_SESSION_TOKEN=berth-task-e2e awsb ecs describe-clusters --clusters signed --query 'clusters[0].status' --output text)"
expect_eq "query protocol signed too" "172.31.0.0/16" "$(AWS_ACCESS_KEY_ID=AKIDE2E AWS_SECRET_ACCESS_KEY=e2esecret awsb ec2 describe-vpcs --query 'Vpcs[0].CidrBlock' --output text 2>&1)"
expect_error "query protocol wrong secret" InvalidSignatureException env AWS_ACCESS_KEY_ID=AKIDE2E AWS_SECRET_ACCESS_KEY=nope aws --endpoint-url "$BERTH_URL" ec2 describe-vpcs

# SIGTERM stops the server cleanly (exit status 0).
kill -TERM "$BERTH_PID"
if wait "$BERTH_PID"; then pass "SIGTERM exits 0"; else fail "SIGTERM exit status $?"; fi
BERTH_PID=""
finish
