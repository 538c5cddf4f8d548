#!/usr/bin/env bash
# End to end with the aws CLI: container instances and the EC2 launch type's placement.
# Registers an instance by hand, places bridge-mode tasks with a fixed host port on it, and
# checks what ECS would answer: remaining resources, RESOURCE:* failures, DRAINING, the
# cluster query language filter, deregistration. Only the control plane is checked: the
# tasks' image names a registry that accepts connections and never answers (a tarpit), so
# the node's pull hangs and the tasks stay PROVISIONING until the tarpit goes away.
source "$(dirname "$0")/lib.sh"

TARPIT_PORT=$(free_port)
python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64)
held = []
while True:
    held.append(s.accept()[0])
' "$TARPIT_PORT" &
TARPIT_PID=$!
trap 'kill "$TARPIT_PID" 2>/dev/null || true; stop_berth' EXIT
IMAGE="127.0.0.1:$TARPIT_PORT/none:v1"
start_berth

awsb ecs create-cluster --cluster-name c1 >/dev/null

# Registration.
ci=$(awsb ecs register-container-instance --cluster c1 \
  --total-resources name=CPU,type=INTEGER,integerValue=1024 name=MEMORY,type=INTEGER,integerValue=1024 \
  --attributes name=stack,value=blue --query containerInstance.containerInstanceArn --output text)
expect_eq "register-container-instance: ARN" "container-instance/c1" "$(cut -d: -f6 <<<"$ci" | cut -d/ -f1-2)"
expect_eq "32-hex id" "32" "$(printf %s "${ci##*/}" | wc -c)"
expect_eq "ACTIVE, agent connected" "ACTIVE	True" "$(awsb ecs describe-container-instances --cluster c1 --container-instances "$ci" --query 'containerInstances[0].[status,agentConnected]' --output text)"
expect_eq "an ec2InstanceId is made up" "i-" "$(awsb ecs describe-container-instances --cluster c1 --container-instances "$ci" --query 'containerInstances[0].ec2InstanceId' --output text | cut -c1-2)"
expect_eq "registered MEMORY" "1024" "$(awsb ecs describe-container-instances --cluster c1 --container-instances "$ci" --query "containerInstances[0].registeredResources[?name=='MEMORY'].integerValue" --output text)"
expect_eq "reserved ports" "22 2375 2376 51678 51679" "$(awsb ecs describe-container-instances --cluster c1 --container-instances "${ci##*/}" --query "containerInstances[0].registeredResources[?name=='PORTS'].stringSetValue[]" --output text | tr '\t' '\n' | sort | xargs)"
expect_eq "default attributes" "linux" "$(awsb ecs describe-container-instances --cluster c1 --container-instances "$ci" --query "containerInstances[0].attributes[?name=='ecs.os-type'].value" --output text)"
expect_eq "registeredContainerInstancesCount" "1" "$(awsb ecs describe-clusters --clusters c1 --query 'clusters[0].registeredContainerInstancesCount' --output text)"
other=$(awsb ecs register-container-instance --cluster c1 --instance-identity-document '{"instanceId": "i-0123456789abcdef0", "instanceType": "m5.large"}' \
  --total-resources name=CPU,type=INTEGER,integerValue=512 name=MEMORY,type=INTEGER,integerValue=256 --query containerInstance.containerInstanceArn --output text)
expect_eq "ec2InstanceId from the identity document" "i-0123456789abcdef0" "$(awsb ecs describe-container-instances --cluster c1 --container-instances "$other" --query 'containerInstances[0].ec2InstanceId' --output text)"
expect_eq "deregister an idle instance" "INACTIVE" "$(awsb ecs deregister-container-instance --cluster c1 --container-instance "$other" --query containerInstance.status --output text)"
expect_eq "list shows ACTIVE and DRAINING only" "$ci" "$(awsb ecs list-container-instances --cluster c1 --query 'containerInstanceArns' --output text)"
expect_eq "an INACTIVE instance stays describable" "INACTIVE" "$(awsb ecs describe-container-instances --cluster c1 --container-instances "$other" --query 'containerInstances[0].status' --output text)"
expect_eq "describe an unknown instance: MISSING" "MISSING" "$(awsb ecs describe-container-instances --cluster c1 --container-instances ghost --query 'failures[0].reason' --output text)"

# The cluster query language filter.
expect_eq "filter attribute == value" "$ci" "$(awsb ecs list-container-instances --cluster c1 --filter 'attribute:stack == blue' --query 'containerInstanceArns' --output text)"
expect_eq "filter attribute == other value" "0" "$(awsb ecs list-container-instances --cluster c1 --filter 'attribute:stack == green' --query 'length(containerInstanceArns)' --output text)"
expect_eq "filter attribute exists" "1" "$(awsb ecs list-container-instances --cluster c1 --filter 'attribute:ecs.os-type exists and attribute:nope not exists' --query 'length(containerInstanceArns)' --output text)"
expect_error "filter Berth does not evaluate" NotImplemented awsb ecs list-container-instances --cluster c1 --filter 'runningTasksCount > 1'
expect_error "filter that is not valid" InvalidParameterException awsb ecs list-container-instances --cluster c1 --filter 'attribute:stack =='

# EC2 task definitions: bridge mode with a fixed host port, and one too big to fit twice.
awsb ecs register-task-definition --family web --requires-compatibilities EC2 --network-mode bridge \
  --container-definitions "[{\"name\": \"web\", \"image\": \"$IMAGE\", \"cpu\": 256, \"memory\": 512, \"portMappings\": [{\"containerPort\": 80, \"hostPort\": 8080}]}]" >/dev/null
awsb ecs register-task-definition --family big --requires-compatibilities EC2 \
  --container-definitions "[{\"name\": \"big\", \"image\": \"$IMAGE\", \"memoryReservation\": 600}]" >/dev/null
awsb ecs register-task-definition --family tiny --requires-compatibilities EC2 \
  --container-definitions "[{\"name\": \"tiny\", \"image\": \"$IMAGE\", \"memory\": 64}]" >/dev/null

t1=$(awsb ecs run-task --cluster c1 --task-definition web --launch-type EC2 --query 'tasks[0].taskArn' --output text)
expect_eq "run-task EC2 places the task" "$ci	EC2" "$(awsb ecs describe-tasks --cluster c1 --tasks "$t1" --query 'tasks[0].[containerInstanceArn,launchType]' --output text)"
expect_eq "no Fargate platform on an EC2 task" "None" "$(awsb ecs describe-tasks --cluster c1 --tasks "$t1" --query 'tasks[0].platformVersion' --output text)"
expect_eq "remaining CPU and MEMORY drop" "768 512" "$(awsb ecs describe-container-instances --cluster c1 --container-instances "$ci" --query "[containerInstances[0].remainingResources[?name=='CPU'].integerValue | [0], containerInstances[0].remainingResources[?name=='MEMORY'].integerValue | [0]]" --output text | xargs)"
expect_eq "the host port is taken" "8080" "$(awsb ecs describe-container-instances --cluster c1 --container-instances "$ci" --query "containerInstances[0].remainingResources[?name=='PORTS'].stringSetValue[]" --output text | tr '\t' '\n' | grep -x 8080)"
expect_eq "pending task counted" "1" "$(awsb ecs describe-container-instances --cluster c1 --container-instances "$ci" --query 'containerInstances[0].pendingTasksCount' --output text)"
expect_eq "RESOURCE:PORTS" "0 RESOURCE:PORTS $ci" "$(awsb ecs run-task --cluster c1 --task-definition web --launch-type EC2 --query '[length(tasks), failures[0].reason, failures[0].arn]' --output text | xargs)"
expect_eq "RESOURCE:MEMORY (no launch type means EC2)" "0 RESOURCE:MEMORY" "$(awsb ecs run-task --cluster c1 --task-definition big --query '[length(tasks), failures[0].reason]' --output text | xargs)"
expect_eq "count stops at capacity (512 MiB left, 64 each)" "8 RESOURCE:MEMORY" "$(awsb ecs run-task --cluster c1 --task-definition tiny --count 10 --launch-type EC2 --query '[length(tasks), failures[0].reason]' --output text | xargs)"
expect_eq "list-tasks --container-instance" "9" "$(awsb ecs list-tasks --cluster c1 --container-instance "$ci" --query 'length(taskArns)' --output text)"
expect_eq "memberOf placement constraint" "MemberOf placement constraint unsatisfied." "$(awsb ecs run-task --cluster c1 --task-definition tiny --launch-type EC2 --placement-constraints type=memberOf,expression='attribute:stack == green' --query 'failures[0].reason' --output text)"

# DRAINING stops placement.
expect_eq "drain" "DRAINING" "$(awsb ecs update-container-instances-state --cluster c1 --container-instances "$ci" --status DRAINING --query 'containerInstances[0].status' --output text)"
expect_eq "list --status DRAINING" "$ci" "$(awsb ecs list-container-instances --cluster c1 --status DRAINING --query 'containerInstanceArns' --output text)"
expect_error "run-task with only a draining instance" InvalidParameterException awsb ecs run-task --cluster c1 --task-definition tiny --launch-type EC2
expect_eq "start-task on a draining instance fails" "DRAINING" "$(awsb ecs start-task --cluster c1 --task-definition web --container-instances "$ci" --query 'failures[0].reason' --output text)"
expect_eq "update-container-instances-state: MISSING" "MISSING" "$(awsb ecs update-container-instances-state --cluster c1 --container-instances ghost --status ACTIVE --query 'failures[0].reason' --output text)"
awsb ecs update-container-instances-state --cluster c1 --container-instances "$ci" --status ACTIVE >/dev/null

# StartTask on a named instance (all memory is taken by now: stop a tiny task first).
tiny=$(awsb ecs list-tasks --cluster c1 --family tiny --query 'taskArns[0]' --output text)
awsb ecs stop-task --cluster c1 --task "$tiny" >/dev/null
expect_eq "start-task refused while the memory is held" "RESOURCE:MEMORY" "$(awsb ecs start-task --cluster c1 --task-definition tiny --container-instances "$ci" --query 'failures[0].reason' --output text)"

# Deregistration waits for the tasks.
expect_error "deregister with tasks, no force" InvalidParameterException awsb ecs deregister-container-instance --cluster c1 --container-instance "$ci"
for t in $(awsb ecs list-tasks --cluster c1 --query 'taskArns' --output text); do
  awsb ecs stop-task --cluster c1 --task "$t" >/dev/null
done
kill "$TARPIT_PID"; wait "$TARPIT_PID" 2>/dev/null || true # the pulls fail, the tasks stop
all_stopped() {
  local arns; arns=$(awsb ecs list-tasks --cluster c1 --desired-status STOPPED --query 'taskArns' --output text)
  [ "$(wc -w <<<"$arns")" = 9 ] && [ -z "$(awsb ecs describe-tasks --cluster c1 --tasks $arns --query "tasks[?lastStatus!='STOPPED'].taskArn" --output text)" ]
}
wait_for "tasks stopped" 60 all_stopped
expect_eq "resources come back when the tasks stop" "1024 0" "$(awsb ecs describe-container-instances --cluster c1 --container-instances "$ci" --query "[containerInstances[0].remainingResources[?name=='MEMORY'].integerValue | [0], containerInstances[0].pendingTasksCount]" --output text | xargs)"
expect_eq "start-task places on the named instance" "$ci" "$(awsb ecs start-task --cluster c1 --task-definition tiny --container-instances "${ci##*/}" --query 'tasks[0].containerInstanceArn' --output text)"
awsb ecs register-task-definition --family vpc --requires-compatibilities EC2 --network-mode awsvpc \
  --container-definitions "[{\"name\": \"vpc\", \"image\": \"$IMAGE\", \"memory\": 64}]" >/dev/null
subnet=$(awsb ec2 describe-subnets --query 'Subnets[0].SubnetId' --output text)
expect_eq "an awsvpc EC2 task gets an ENI attachment" "$ci ElasticNetworkInterface" "$(awsb ecs run-task --cluster c1 --task-definition vpc --launch-type EC2 --network-configuration "awsvpcConfiguration={subnets=[$subnet]}" --query 'tasks[0].[containerInstanceArn, attachments[0].type]' --output text | xargs)"
expect_eq "deregister --force" "INACTIVE" "$(awsb ecs deregister-container-instance --cluster c1 --container-instance "$ci" --force --query containerInstance.status --output text)"
expect_eq "no instances listed" "0" "$(awsb ecs list-container-instances --cluster c1 --query 'length(containerInstanceArns)' --output text)"
expect_error "run-task without instances" InvalidParameterException awsb ecs run-task --cluster c1 --task-definition tiny

# Everything acknowledged survives kill -9.
kill9_berth
start_berth
expect_eq "instances after kill -9" "INACTIVE" "$(awsb ecs describe-container-instances --cluster c1 --container-instances "$ci" --query 'containerInstances[0].status' --output text)"

finish
