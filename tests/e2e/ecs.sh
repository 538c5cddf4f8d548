#!/usr/bin/env bash
# End to end with the aws CLI: clusters, a realistic Fargate task definition, listing,
# errors, and durability across kill -9.
source "$(dirname "$0")/lib.sh"
FIX="$(dirname "$0")/fixtures"
start_berth

# Clusters.
arn=$(awsb ecs create-cluster --cluster-name prod --settings name=containerInsights,value=enabled --query cluster.clusterArn --output text)
expect_eq "create-cluster returns the ARN" "arn:aws:ecs:us-east-1:000000000000:cluster/prod" "$arn"
awsb ecs create-cluster --cluster-name staging >/dev/null
expect_eq "list-clusters lists both" "2" "$(awsb ecs list-clusters --query 'length(clusterArns)' --output text)"
expect_eq "describe with SETTINGS" "enabled" "$(awsb ecs describe-clusters --clusters prod --include SETTINGS --query 'clusters[0].settings[0].value' --output text)"
expect_eq "describe missing cluster" "MISSING" "$(awsb ecs describe-clusters --clusters ghost --query 'failures[0].reason' --output text)"
awsb ecs update-cluster-settings --cluster prod --settings name=containerInsights,value=disabled >/dev/null
expect_eq "update-cluster-settings" "disabled" "$(awsb ecs describe-clusters --clusters prod --include SETTINGS --query 'clusters[0].settings[0].value' --output text)"
expect_eq "region from the credential scope" "0" "$(awsb --region eu-central-1 ecs list-clusters --query 'length(clusterArns)' --output text)"

# A task definition with every common container field.
td=$(awsb ecs register-task-definition --cli-input-json "file://$FIX/web-taskdef.json" --query taskDefinition.taskDefinitionArn --output text)
expect_eq "register-task-definition" "arn:aws:ecs:us-east-1:000000000000:task-definition/web:1" "$td"
expect_eq "memory '1 GB' stored as MiB" "1024" "$(awsb ecs describe-task-definition --task-definition web --query taskDefinition.memory --output text)"
expect_eq "compatibilities" "EC2	FARGATE" "$(awsb ecs describe-task-definition --task-definition web --query taskDefinition.compatibilities --output text)"
expect_eq "hostPort mirrors containerPort" "8080" "$(awsb ecs describe-task-definition --task-definition web:1 --query 'taskDefinition.containerDefinitions[0].portMappings[0].hostPort' --output text)"
expect_eq "healthCheck kept" "CMD-SHELL" "$(awsb ecs describe-task-definition --task-definition web --query 'taskDefinition.containerDefinitions[0].healthCheck.command[0]' --output text)"
expect_eq "ulimits kept" "65535" "$(awsb ecs describe-task-definition --task-definition web --query 'taskDefinition.containerDefinitions[0].ulimits[0].softLimit' --output text)"
expect_eq "tags with include TAGS" "web" "$(awsb ecs describe-task-definition --task-definition web --include TAGS --query 'tags[0].value' --output text)"
awsb ecs register-task-definition --cli-input-json "file://$FIX/web-taskdef.json" >/dev/null
expect_eq "second revision" "2" "$(awsb ecs describe-task-definition --task-definition web --query taskDefinition.revision --output text)"
expect_eq "list-task-definitions paginates (CLI follows nextToken)" "2" "$(awsb ecs list-task-definitions --page-size 1 --query 'length(taskDefinitionArns)' --output json)"
expect_eq "families" "web" "$(awsb ecs list-task-definition-families --query 'families' --output text)"
expect_eq "deregister" "INACTIVE" "$(awsb ecs deregister-task-definition --task-definition web:1 --query taskDefinition.status --output text)"
expect_eq "delete" "DELETE_IN_PROGRESS" "$(awsb ecs delete-task-definitions --task-definitions web:1 --query 'taskDefinitions[0].status' --output text)"

# Errors a user meets.
expect_error "bad Fargate size" ClientException awsb ecs register-task-definition --family bad --requires-compatibilities FARGATE --network-mode awsvpc --cpu 256 --memory 8192 --container-definitions name=a,image=busybox
expect_error "unknown cluster" ClusterNotFoundException awsb ecs list-tasks --cluster ghost
expect_error "run-task without instances" InvalidParameterException awsb ecs run-task --cluster prod --task-definition web --launch-type EC2 --network-configuration 'awsvpcConfiguration={subnets=[subnet-none]}'
expect_error "run-task without network configuration" InvalidParameterException awsb ecs run-task --cluster prod --task-definition web --launch-type FARGATE
expect_error "run-task with an unknown subnet" InvalidParameterException awsb ecs run-task --cluster prod --task-definition web --launch-type FARGATE --network-configuration 'awsvpcConfiguration={subnets=[subnet-0000000000000000f]}'
subnet=$(awsb ec2 describe-subnets --query 'Subnets[0].SubnetId' --output text)
expect_eq "no task was recorded by the refused runs" "0" "$(awsb ecs list-tasks --cluster prod --query 'length(taskArns)' --output text)"
# A valid Fargate run-task makes a task; busybox names Docker Hub, which this machine
# cannot reach, so it stops with ECS's pull error (tests/e2e/tasks.sh runs real ones).
task=$(awsb ecs run-task --cluster prod --task-definition web --launch-type FARGATE --network-configuration "awsvpcConfiguration={subnets=[$subnet]}" --query 'tasks[0].taskArn' --output text)
expect_eq "run-task answers a task" "task/prod" "$(cut -d: -f6 <<<"$task" | cut -d/ -f1-2)"
awsb ecs wait tasks-stopped --cluster prod --tasks "$task"
expect_eq "unpullable image: CannotPullContainerError" "CannotPullContainerError" "$(awsb ecs describe-tasks --cluster prod --tasks "$task" --query 'tasks[0].stoppedReason' --output text | cut -d: -f1)"
expect_error "create-service with maximumPercent below minimumHealthyPercent" InvalidParameterException awsb ecs create-service --cluster prod --service-name web --task-definition web --desired-count 1 --launch-type FARGATE --network-configuration "awsvpcConfiguration={subnets=[$subnet]}" --deployment-configuration maximumPercent=100,minimumHealthyPercent=150
expect_error "delete-service of nothing" ServiceNotFoundException awsb ecs delete-service --cluster prod --service web

# Idempotency: a retried RunTask or CreateService (same clientToken, same request) answers
# with what the first made and makes nothing more; the token with another request is refused.
NETCFG="awsvpcConfiguration={subnets=[$subnet]}"
run_tok() { awsb ecs run-task --cluster prod --task-definition web --launch-type FARGATE --network-configuration "$NETCFG" --client-token "$@" --query 'tasks[].taskArn' --output text; }
before=$(awsb ecs list-tasks --cluster prod --desired-status STOPPED --query 'length(taskArns)')
first=$(run_tok retry-1 --count 2)
expect_eq "run-task with a token: two tasks" "2" "$(wc -w <<<"$first")"
expect_eq "the same request again: the same tasks" "$first" "$(run_tok retry-1 --count 2)"
awsb ecs wait tasks-stopped --cluster prod --tasks $first
expect_eq "and no more tasks were made" "$((before + 2))" "$(awsb ecs list-tasks --cluster prod --desired-status STOPPED --query 'length(taskArns)')"
expect_error "the token with a different request" ConflictException run_tok retry-1 --count 1
expect_eq "the conflict names the tasks the token made" "1" "$(run_tok retry-1 --count 1 2>&1 | grep -c "${first%%[[:space:]]*}")"
svc() { awsb ecs create-service --cluster prod --service-name tok --task-definition web --desired-count 0 --launch-type FARGATE --network-configuration "$NETCFG" --client-token svc-1 "$@" --query service.serviceArn --output text; }
sarn=$(svc)
expect_eq "create-service retried with its token: the same service" "$sarn" "$(svc)"
expect_error "create-service: the token with a different request" InvalidParameterException svc --desired-count 1
# List filters act: Berth has no daemons and no ECS-managed services.
expect_eq "list-services: every service is the customer's" "$sarn" "$(awsb ecs list-services --cluster prod --resource-management-type CUSTOMER --query 'serviceArns[0]' --output text)"
expect_eq "list-services: none is ECS-managed" "0" "$(awsb ecs list-services --cluster prod --resource-management-type ECS --query 'length(serviceArns)')"
expect_eq "list-tasks: no task is a daemon's" "0" "$(awsb ecs list-tasks --cluster prod --desired-status STOPPED --daemon-name d --query 'length(taskArns)')"
expect_error "blue/green load balancer settings refused" NotImplemented awsb ecs update-service --cluster prod --service tok --load-balancers \
  'targetGroupArn=arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/a/1,containerName=web,containerPort=80,advancedConfiguration={alternateTargetGroupArn=arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/b/2,productionListenerRule=arn:aws:elasticloadbalancing:us-east-1:000000000000:listener-rule/app/x/1/2/3}'
awsb ecs delete-service --cluster prod --service tok --force >/dev/null
expect_error "not implemented operation" NotImplemented awsb ecs list-daemons

# Tags and account settings.
awsb ecs tag-resource --resource-arn "$arn" --tags key=env,value=prod >/dev/null
expect_eq "tags" "env" "$(awsb ecs list-tags-for-resource --resource-arn "$arn" --query 'tags[0].key' --output text)"
awsb ecs put-account-setting --name awsvpcTrunking --value enabled >/dev/null
expect_eq "account setting" "enabled" "$(awsb ecs list-account-settings --name awsvpcTrunking --query 'settings[0].value' --output text)"

# Deleting a cluster.
expect_eq "delete-cluster" "INACTIVE" "$(awsb ecs delete-cluster --cluster staging --query cluster.status --output text)"

# Everything acknowledged survives kill -9.
kill9_berth
start_berth
expect_eq "clusters after kill -9" "$arn" "$(awsb ecs list-clusters --query 'clusterArns[0]' --output text)"
expect_eq "task definition after kill -9" "2" "$(awsb ecs describe-task-definition --task-definition web --query taskDefinition.revision --output text)"
expect_eq "tags after kill -9" "env" "$(awsb ecs list-tags-for-resource --resource-arn "$arn" --query 'tags[0].key' --output text)"

finish
