#!/usr/bin/env bash
# ECS services as a user runs them: a service keeps its desired count of real tasks
# RUNNING (a task whose process dies is replaced), scales, rolls out a new task definition
# within minimumHealthyPercent/maximumPercent, trips the circuit breaker and rolls back
# when the new tasks cannot run, moves its tasks off a DRAINING container instance, and
# DeleteService drains it. `aws ecs wait services-stable` works throughout.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images.sh"
if [ "$(id -u)" != 0 ]; then echo "FAIL - services run tasks: needs root" >&2; exit 1; fi
start_berth --register-instance c1
push_task_image
awsb ecs create-cluster --cluster-name c1 >/dev/null
SUBNET=$(awsb ec2 describe-subnets --query 'Subnets[0].SubnetId' --output text)
NET="awsvpcConfiguration={subnets=[$SUBNET]}"
register() { # FAMILY COMMAND
  awsb ecs register-task-definition --family "$1" --requires-compatibilities FARGATE --network-mode awsvpc \
    --cpu 256 --memory 512 --container-definitions "[{\"name\":\"web\",\"image\":\"$IMAGE\",\"stopTimeout\":2,\"command\":[\"sh\",\"-c\",\"$2\"]}]" \
    --query taskDefinition.taskDefinitionArn --output text
}
svc() { awsb ecs describe-services --cluster c1 --services web --query "services[0].$1" --output text; }
running_tasks() { awsb ecs list-tasks --cluster c1 --service-name web --desired-status RUNNING --query 'taskArns' --output text | tr '\t' '\n' | grep -c . || true; }
stable() { awsb ecs wait services-stable --cluster c1 --services web; }
TD1=$(register web 'mkdir -p /www && echo v1 > /www/index.html && exec httpd -f -p 80 -h /www')

# 1. Three tasks, kept running.
awsb ecs create-service --cluster c1 --service-name web --task-definition web:1 --desired-count 3 \
  --launch-type FARGATE --network-configuration "$NET" >/dev/null
stable
expect_eq "services-stable: 3 running" "3 3 0" "$(svc '[desiredCount,runningCount,pendingCount]' | tr '\t' ' ')"
expect_eq "3 tasks RUNNING, started by the deployment" "3" "$(running_tasks)"
# The rollout completes once the tasks have stayed RUNNING a few seconds.
wait_for "the rollout to complete" 60 bash -c "[ \"\$(aws --endpoint-url $BERTH_URL ecs describe-services --cluster c1 --services web --query 'services[0].deployments[0].rolloutState' --output text)\" = COMPLETED ]"
expect_eq "one deployment, COMPLETED" "1 COMPLETED" "$(svc '[length(deployments), deployments[0].rolloutState]' | tr '\t' ' ')"
expect_eq "the steady-state event" "1" "$(svc 'events[].message' | tr '\t' '\n' | grep -c 'has reached a steady state')"
ids=$(awsb ecs list-tasks --cluster c1 --service-name web --query 'taskArns' --output text)
answering=0
for t in $ids; do
  ip=$(awsb ecs describe-tasks --cluster c1 --tasks "$t" --query "tasks[0].attachments[0].details[?name=='privateIPv4Address'].value | [0]" --output text)
  [ "$(curl -fsS --max-time 5 "http://$ip/")" = v1 ] && answering=$((answering + 1))
done
expect_eq "each task answers on its address" "3" "$answering"

# 2. A task whose process dies is replaced.
victim=$(awk '{print $1}' <<<"$ids"); victim_id=${victim##*/}
pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["containers"][0]["pid"])' "$BERTH_DATA/tasks/$victim_id/state.json")
kill -9 "$pid"
awsb ecs wait tasks-stopped --cluster c1 --tasks "$victim"
expect_eq "the killed task stopped on its own" "EssentialContainerExited" "$(awsb ecs describe-tasks --cluster c1 --tasks "$victim" --query 'tasks[0].stopCode' --output text)"
stable
expect_eq "replaced: 3 running again" "3" "$(svc runningCount)"
expect_eq "the replacement is a new task" "0" "$(awsb ecs list-tasks --cluster c1 --service-name web --desired-status RUNNING --query 'taskArns' --output text | grep -c "$victim_id" || true)"

# 3. Scale down and up.
awsb ecs update-service --cluster c1 --service web --desired-count 1 >/dev/null
stable
expect_eq "scaled to 1" "1" "$(running_tasks)"
awsb ecs update-service --cluster c1 --service web --desired-count 2 >/dev/null
stable
expect_eq "scaled to 2" "2" "$(running_tasks)"

# 4. A rolling update to a new task definition.
TD2=$(register web 'mkdir -p /www && echo v2 > /www/index.html && exec httpd -f -p 80 -h /www')
D1=$(svc 'deployments[0].id')
awsb ecs update-service --cluster c1 --service web --task-definition web:2 >/dev/null
expect_eq "the update makes a new PRIMARY deployment" "1" "$([ "$(svc 'deployments[0].id')" != "$D1" ] && echo 1 || echo 0)"
stable
expect_eq "rolled out: one deployment, of the new revision" "1 $TD2" "$(svc '[length(deployments), deployments[0].taskDefinition]' | tr '\t' ' ')"
expect_eq "all running tasks are of the new revision" "$TD2 $TD2" "$(awsb ecs describe-tasks --cluster c1 --tasks $(awsb ecs list-tasks --cluster c1 --service-name web --desired-status RUNNING --query 'taskArns' --output text) --query 'tasks[].taskDefinitionArn' --output text | tr '\t' ' ')"

# 5. A task definition whose container exits at once trips the circuit breaker; rollback.
register web 'exit 1' >/dev/null
awsb ecs update-service --cluster c1 --service web --task-definition web:3 \
  --deployment-configuration 'deploymentCircuitBreaker={enable=true,rollback=true},maximumPercent=200,minimumHealthyPercent=100' >/dev/null
stable
expect_eq "rolled back to the working revision" "$TD2" "$(svc 'deployments[0].taskDefinition')"
expect_eq "the failed deployment is reported" "1" "$(svc 'events[].message' | tr '\t' '\n' | grep -c 'deployment failed')"
expect_eq "still 2 running" "2" "$(running_tasks)"

# 6. Bad input, then DeleteService drains the service.
expect_error "update of a missing service" ServiceNotFoundException awsb ecs update-service --cluster c1 --service nope --desired-count 1
expect_error "delete while scaled above 0" InvalidParameterException awsb ecs delete-service --cluster c1 --service web
expect_error "negative desired count" InvalidParameterException awsb ecs update-service --cluster c1 --service web --desired-count -1
expect_eq "bad input changed nothing" "2" "$(svc desiredCount)"
awsb ecs delete-service --cluster c1 --service web --force >/dev/null
awsb ecs wait services-inactive --cluster c1 --services web
expect_eq "deleted: INACTIVE" "INACTIVE" "$(svc status)"
expect_eq "no task left running" "0" "$(awsb ecs list-tasks --cluster c1 --desired-status RUNNING --query 'length(taskArns)')"

# 7. EC2: a DRAINING container instance's service tasks are replaced on another instance
#    first, then stopped. This host is instance A (--register-instance); B is registered
#    through the API (this host's node runs what is placed on either).
wait_registered c1
A=$(awsb ecs list-container-instances --cluster c1 --query 'containerInstanceArns[0]' --output text)
B=$(awsb ecs register-container-instance --cluster c1 --total-resources name=CPU,type=INTEGER,integerValue=4096 name=MEMORY,type=INTEGER,integerValue=8192 --query containerInstance.containerInstanceArn --output text)
awsb ecs register-task-definition --family ec2web --requires-compatibilities EC2 --network-mode bridge --cpu 128 --memory 128 \
  --container-definitions "[{\"name\":\"web\",\"image\":\"$IMAGE\",\"stopTimeout\":2,\"command\":[\"sleep\",\"600\"]}]" >/dev/null
awsb ecs create-service --cluster c1 --service-name ec2 --task-definition ec2web --desired-count 2 --launch-type EC2 \
  --placement-strategy type=spread,field=instanceId >/dev/null
awsb ecs wait services-stable --cluster c1 --services ec2
on() { awsb ecs describe-tasks --cluster c1 --tasks $(awsb ecs list-tasks --cluster c1 --service-name ec2 --desired-status RUNNING --query 'taskArns' --output text) --query "length(tasks[?containerInstanceArn=='$1'])"; }
expect_eq "spread: one task on each instance" "1 1" "$(on "$A") $(on "$B")"
awsb ecs update-container-instances-state --cluster c1 --container-instances "$A" --status DRAINING >/dev/null
wait_for "the drained instance to empty" 60 bash -c "[ \"\$(aws --endpoint-url $BERTH_URL ecs describe-container-instances --cluster c1 --container-instances $A --query 'containerInstances[0].runningTasksCount')\" = 0 ]"
awsb ecs wait services-stable --cluster c1 --services ec2
expect_eq "both tasks now on the other instance" "0 2" "$(on "$A") $(on "$B")"
awsb ecs delete-service --cluster c1 --service ec2 --force >/dev/null
awsb ecs wait services-inactive --cluster c1 --services ec2

# 8. Container health checks act: a service's task whose essential container turns
#    UNHEALTHY is stopped and replaced; the same task run on its own keeps running.
awsb ecs register-task-definition --family sick --requires-compatibilities FARGATE --network-mode awsvpc \
  --cpu 256 --memory 512 --container-definitions "[{\"name\":\"app\",\"image\":\"$IMAGE\",\"stopTimeout\":1,\"command\":[\"sleep\",\"600\"],
    \"healthCheck\":{\"command\":[\"CMD-SHELL\",\"exit 1\"],\"interval\":5,\"timeout\":2,\"retries\":1}}]" >/dev/null
alone=$(awsb ecs run-task --cluster c1 --launch-type FARGATE --task-definition sick --network-configuration "$NET" --query 'tasks[0].taskArn' --output text)
awsb ecs create-service --cluster c1 --service-name sick --task-definition sick --desired-count 1 \
  --launch-type FARGATE --network-configuration "$NET" >/dev/null
health_of() { awsb ecs describe-tasks --cluster c1 --tasks "$1" --query 'tasks[0].healthStatus' --output text; }
unhealthy() { [ "$(health_of "$alone")" = UNHEALTHY ]; }
wait_for "the task on its own to turn UNHEALTHY" 90 unhealthy
stopped_for_health() { [ "$(awsb ecs list-tasks --cluster c1 --service-name sick --desired-status STOPPED --query 'length(taskArns)')" -ge 1 ]; }
wait_for "the service's unhealthy task to be stopped" 90 stopped_for_health
first=$(awsb ecs list-tasks --cluster c1 --service-name sick --desired-status STOPPED --query 'taskArns[0]' --output text)
expect_eq "stopped for its health, as ECS says it" "ServiceSchedulerInitiated Task failed container health checks" \
  "$(awsb ecs describe-tasks --cluster c1 --tasks "$first" --query 'tasks[0].[stopCode,stoppedReason]' --output text | tr '\t' ' ')"
said_health() { awsb ecs describe-services --cluster c1 --services sick --query 'services[0].events[].message' --output text | grep -q "(task ${first##*/}) failed container health checks."; }
if said_health; then pass "the service's event says so"; else fail "no event of the failed health checks"; fi
replaced() { [ "$(awsb ecs list-tasks --cluster c1 --service-name sick --desired-status RUNNING --query 'length(taskArns)')" = 1 ]; }
if wait_for "a replacement" 60 replaced; then pass "the unhealthy task was replaced"; else fail "no replacement task"; fi
expect_eq "the task run on its own keeps running, UNHEALTHY" "RUNNING RUNNING UNHEALTHY" \
  "$(awsb ecs describe-tasks --cluster c1 --tasks "$alone" --query 'tasks[0].[lastStatus,desiredStatus,healthStatus]' --output text | tr '\t' ' ')"
awsb ecs delete-service --cluster c1 --service sick --force >/dev/null
awsb ecs stop-task --cluster c1 --task "$alone" >/dev/null
# 9. Accepted means acted on: what Berth cannot do is refused naming the member, and
#    nothing is created; tags, placement and the platform version act.
expect_error "service discovery refused" NotImplemented awsb ecs create-service --cluster c1 --service-name no1 --task-definition ec2web \
  --launch-type EC2 --service-registries registryArn=arn:aws:servicediscovery:us-east-1:000000000000:service/srv-1
expect_error "a blue/green deployment refused, not run as a rolling one" NotImplemented awsb ecs create-service --cluster c1 --service-name no2 \
  --task-definition ec2web --launch-type EC2 --deployment-configuration strategy=BLUE_GREEN
expect_error "ECS Exec refused" NotImplemented awsb ecs create-service --cluster c1 --service-name no3 --task-definition ec2web --launch-type EC2 --enable-execute-command
expect_error "an old Fargate platform refused" NotImplemented awsb ecs create-service --cluster c1 --service-name no4 --task-definition sick \
  --launch-type FARGATE --network-configuration "$NET" --platform-version 1.3.0
expect_error "an unknown platform" PlatformUnknownException awsb ecs create-service --cluster c1 --service-name no5 --task-definition sick \
  --launch-type FARGATE --network-configuration "$NET" --platform-version 7.0.0
expect_eq "none of them was created" "MISSING MISSING MISSING MISSING MISSING" \
  "$(awsb ecs describe-services --cluster c1 --services no1 no2 no3 no4 no5 --query 'failures[].reason' --output text | tr '\t' ' ')"
awsb ecs tag-resource --resource-arn "$(awsb ecs describe-task-definition --task-definition ec2web --query taskDefinition.taskDefinitionArn --output text)" --tags key=from,value=taskdef
awsb ecs create-service --cluster c1 --service-name tagged --task-definition ec2web --desired-count 1 --launch-type EC2 \
  --tags key=team,value=a --propagate-tags SERVICE --enable-ecs-managed-tags >/dev/null
awsb ecs wait services-stable --cluster c1 --services tagged
tags_of_service_task() { awsb ecs describe-tasks --cluster c1 --include TAGS --tasks "$(awsb ecs list-tasks --cluster c1 --service-name tagged --desired-status RUNNING --query 'taskArns[0]' --output text)" \
  --query 'tasks[0].tags[].[key,value]' --output text | tr '\t' '=' | sort | tr '\n' ' '; }
expect_eq "the service's tags and ECS managed tags reach its task" "aws:ecs:clusterName=c1 aws:ecs:serviceName=tagged team=a " "$(tags_of_service_task)"
expect_error "no platform version on EC2" InvalidParameterException awsb ecs update-service --cluster c1 --service tagged --platform-version LATEST
awsb ecs update-service --cluster c1 --service tagged --placement-strategy type=binpack,field=memory --propagate-tags TASK_DEFINITION --force-new-deployment >/dev/null
expect_eq "UpdateService keeps the new placement strategy" "binpack memory" \
  "$(awsb ecs describe-services --cluster c1 --services tagged --query 'services[0].placementStrategy[0].[type,field]' --output text | tr '\t' ' ')"
awsb ecs wait services-stable --cluster c1 --services tagged
expect_eq "after the update its new task has the task definition's tags" "aws:ecs:clusterName=c1 aws:ecs:serviceName=tagged from=taskdef " "$(tags_of_service_task)"
awsb ecs delete-service --cluster c1 --service tagged --force >/dev/null
awsb ecs wait services-inactive --cluster c1 --services tagged

"$BERTH_BIN" down --data-dir "$BERTH_DATA" >/dev/null
BERTH_PID=""
finish
