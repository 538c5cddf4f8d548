#!/usr/bin/env bash
# End to end: a data directory written by an older Berth (tests/fixtures/datadir-v0.tar.gz,
# made at 85a3dd9 by tests/fixtures/make-datadir-v0.sh, the server killed with tasks
# RUNNING) opens with this Berth: the schema is migrated once, every record reads as
# before, the tasks whose supervisors are gone are settled STOPPED, and the service
# starts a replacement from the image in the old registry.
source "$(dirname "$0")/lib.sh"
if [ "$(id -u)" != 0 ]; then echo "upgrade.sh runs tasks: it needs root" >&2; exit 1; fi
export BERTH_PORT=45666 # the fixture's images name this port
BERTH_DATA="$(mktemp -d)"
tar -C "$BERTH_DATA" -xzf "$(dirname "$0")/../fixtures/datadir-v0.tar.gz"
# The fixture's tasks stopped long before this run: keep them for now, so their records
# can be read back (the default hour of retention applies after the restart below).
start_berth --stopped-task-retention 31536000
trap 'stop_berth; "$BERTH_BIN" down --data-dir "$BERTH_DATA" >/dev/null 2>&1 || true' EXIT

expect_eq "the schema was migrated (to 2), once" "1" "$(grep -c 'migrated the stored records' "$BERTH_DATA/berth.log")"
expect_eq "cluster and its tags" "ACTIVE core" "$(awsb ecs describe-clusters --clusters legacy --include TAGS --query 'clusters[0].[status,tags[0].value]' --output text | tr '\t' ' ')"
expect_eq "task definitions" "once:1 web:1 web:2" "$(awsb ecs list-task-definitions --query 'taskDefinitionArns' --output text | tr '\t' '\n' | sed 's:.*/::' | sort | tr '\n' ' ' | sed 's/ $//')"
expect_eq "an inactive revision stays inactive" "INACTIVE" "$(awsb ecs describe-task-definition --task-definition gone:1 --query 'taskDefinition.status' --output text)"
tasks="$(awsb ecs list-tasks --cluster legacy --desired-status STOPPED --query 'taskArns' --output text)"
exit_of() { awsb ecs describe-tasks --cluster legacy --tasks $tasks --query "tasks[?taskDefinitionArn.contains(@, '$1')].containers[0].exitCode | [0]" --output text; }
expect_eq "the task that had stopped keeps its exit code" "3" "$(exit_of ':task-definition/once:1')"
once_arn="$(awsb ecs describe-tasks --cluster legacy --tasks $tasks --query "tasks[?taskDefinitionArn.contains(@, ':task-definition/once:1')].taskArn | [0]" --output text)"
# The task recorded RUNNING when the server died (its id is the fixture's): its
# supervisor recorded the exit when `berth down` stopped it; the new server settles it.
orphan=arn:aws:ecs:us-east-1:000000000000:task/legacy/31ae4a048cea4db9a6c0af41e0c8a3e9
status_of() { aws --endpoint-url "$BERTH_URL" ecs describe-tasks --cluster legacy --tasks "$orphan" --query 'tasks[0].lastStatus' --output text; }
wait_for "the orphaned task settled" 60 bash -c "[ \"\$($(declare -f status_of); BERTH_URL=$BERTH_URL orphan=$orphan status_of)\" = STOPPED ]"
expect_eq "the task recorded RUNNING whose supervisor is gone is STOPPED, with a reason" "STOPPED yes" \
  "$(status_of) $(awsb ecs describe-tasks --cluster legacy --tasks "$orphan" --query 'tasks[0].stoppedReason' --output text | grep -q . && echo yes)"
wait_for "the service runs a task again" 90 bash -c "[ \"\$(aws --endpoint-url $BERTH_URL ecs describe-services --cluster legacy --services api --query 'services[0].runningCount')\" = 1 ]"
pass "the service runs its task again (its image pulled from the old registry)"
expect_eq "the service's running task is web:2" "RUNNING web:2" "$(awsb ecs describe-tasks --cluster legacy --tasks $(awsb ecs list-tasks --cluster legacy --service-name api --query 'taskArns[0]' --output text) --query 'tasks[0].[lastStatus,taskDefinitionArn]' --output text | sed 's:arn.*/::' | tr '\t' ' ')"
expect_eq "the load balancer's rule" "/api/*" "$(awsb elbv2 describe-rules --listener-arn "$(awsb elbv2 describe-listeners --load-balancer-arn "$(awsb elbv2 describe-load-balancers --names legacy-alb --query 'LoadBalancers[0].LoadBalancerArn' --output text)" --query 'Listeners[0].ListenerArn' --output text)" --query "Rules[?Priority=='10'].Conditions[0].Values[0]" --output text)"
expect_eq "the log group" "/legacy/app" "$(awsb logs describe-log-groups --log-group-name-prefix /legacy --query 'logGroups[0].logGroupName' --output text)"
expect_eq "the S3 object" "hello" "$(awsb s3 cp s3://legacy-bucket/hello.txt -)"
# A restart after the migration migrates nothing.
kill9_berth
start_berth
expect_eq "a second start finds the schema current" "0" "$(grep -c 'migrated the stored records' "$BERTH_DATA/berth.log")"
expect_eq "and the records are still there" "ACTIVE" "$(awsb ecs describe-clusters --clusters legacy --query 'clusters[0].status' --output text)"
# With ECS's hour of retention, a task that stopped long ago is deleted.
once_gone() { [ "$(awsb ecs describe-tasks --cluster legacy --tasks "$once_arn" --query 'failures[0].reason' --output text)" = MISSING ]; }
if wait_for "the long-stopped task to be deleted" 30 once_gone; then pass "a task stopped more than an hour ago is deleted"; else fail "the long-stopped task was kept"; fi
finish
