#!/usr/bin/env bash
# Stopped tasks are kept about an hour, as ECS keeps them, then deleted: describable
# while kept, MISSING after, and the deletion survives a kill -9. The hour passes on
# Berth's test clock.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images.sh"
if [ "$(id -u)" != 0 ]; then echo "FAIL - retention runs tasks: needs root" >&2; exit 1; fi
start_berth --test-clock
push_task_image
awsb ecs create-cluster --cluster-name c1 >/dev/null
SUBNET=$(awsb ec2 describe-subnets --query 'Subnets[0].SubnetId' --output text)
awsb ecs register-task-definition --family quick --requires-compatibilities FARGATE --network-mode awsvpc --cpu 256 --memory 512 \
  --container-definitions "[{\"name\":\"app\",\"image\":\"$IMAGE\",\"command\":[\"true\"]}]" >/dev/null
run_quick() {
  local t
  t=$(awsb ecs run-task --cluster c1 --launch-type FARGATE --task-definition quick \
    --network-configuration "awsvpcConfiguration={subnets=[$SUBNET]}" --query 'tasks[0].taskArn' --output text)
  awsb ecs wait tasks-stopped --cluster c1 --tasks "$t"
  echo "$t"
}
advance() { curl -fsS -X POST --data "{\"advance\":\"$1\"}" "$BERTH_URL/_berth/clock" >/dev/null; }
status_of() { awsb ecs describe-tasks --cluster c1 --tasks "$1" --query '[tasks[0].lastStatus, failures[0].reason]' --output text | tr '\t' ' '; }

OLD=$(run_quick)
expect_eq "a stopped task is describable" "STOPPED None" "$(status_of "$OLD")"
advance 50m
NEW=$(run_quick)
advance 11m
# 61 minutes after the first stopped, 11 after the second.
gone() { [ "$(status_of "$OLD")" = "None MISSING" ]; }
if wait_for "the first task's retention to end" 30 gone; then pass "an hour after it stopped, the task is gone (MISSING)"; else fail "the first task was kept: $(status_of "$OLD")"; fi
expect_eq "the one stopped 11 minutes ago is kept" "STOPPED None" "$(status_of "$NEW")"
expect_eq "ListTasks lists only the kept one" "${NEW##*/}" \
  "$(awsb ecs list-tasks --cluster c1 --desired-status STOPPED --query 'taskArns' --output text | tr '\t' '\n' | sed 's#.*/##')"
kill9_berth
start_berth --test-clock
expect_eq "after kill -9: the deleted task stays deleted" "None MISSING" "$(status_of "$OLD")"
expect_eq "after kill -9: the kept one is still there" "STOPPED None" "$(status_of "$NEW")"
"$BERTH_BIN" down --data-dir "$BERTH_DATA" >/dev/null
BERTH_PID=""
finish
