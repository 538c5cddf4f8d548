#!/usr/bin/env bash
# ECS services behind an application load balancer, as a user runs them: the scheduler
# registers each task in the service's target group, requests through the listener reach
# every task, a path rule sends /api/* to a second service, a task whose process dies is
# replaced and the ALB stops sending it traffic once its health checks fail, and a rolling
# update to a new task definition under steady load finishes with zero failed requests
# (new tasks healthy first, old ones drained before they stop).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images.sh"
if [ "$(id -u)" != 0 ]; then echo "FAIL - services behind load balancers need root" >&2; exit 1; fi
cleanup() { [ -n "${LOAD_PID:-}" ] && kill "$LOAD_PID" 2>/dev/null; stop_berth; [ -n "${BERTH_DATA:-}" ] && "$BERTH_BIN" down --data-dir "$BERTH_DATA" >/dev/null 2>&1 || true; }
trap cleanup EXIT
start_berth
push_task_image
awsb ecs create-cluster --cluster-name shop >/dev/null
read -r SUB1 SUB2 <<<"$(awsb ec2 describe-subnets --filters Name=default-for-az,Values=true --query 'Subnets[0:2].SubnetId' --output text)"
VPC=$(awsb ec2 describe-vpcs --filters Name=is-default,Values=true --query 'Vpcs[0].VpcId' --output text)
NET="awsvpcConfiguration={subnets=[$SUB1,$SUB2]}"
register() { # FAMILY SCRIPT
  python3 - "$IMAGE" "$2" > "$WORK/$1.json" <<'PY'
import json, sys
print(json.dumps([{"name": "web", "image": sys.argv[1], "stopTimeout": 2,
                   "command": ["sh", "-c", sys.argv[2]], "portMappings": [{"containerPort": 80}]}]))
PY
  awsb ecs register-task-definition --family "$1" --requires-compatibilities FARGATE --network-mode awsvpc \
    --cpu 256 --memory 512 --container-definitions "file://$WORK/$1.json" --query taskDefinition.revision --output text
}
# Each web task answers with its version and address.
web_script() { echo "mkdir -p /www && echo \"$1 \$(hostname -i)\" > /www/index.html && exec httpd -f -p 80 -h /www"; }
register web "$(web_script v1)" >/dev/null
register api 'mkdir -p /www/api && echo api > /www/api/index.html && exec httpd -f -p 80 -h /www' >/dev/null

ALB=$(awsb elbv2 create-load-balancer --name shop --subnets "$SUB1" "$SUB2" --query 'LoadBalancers[0].LoadBalancerArn' --output text)
LBIP=$(awsb elbv2 describe-load-balancers --load-balancer-arns "$ALB" --query 'LoadBalancers[0].AvailabilityZones[0].LoadBalancerAddresses[0].IpAddress' --output text)
tg() { # NAME HEALTH_CHECK_PATH
  awsb elbv2 create-target-group --name "$1" --protocol HTTP --port 80 --vpc-id "$VPC" --target-type ip \
  --health-check-interval-seconds 5 --health-check-timeout-seconds 2 --healthy-threshold-count 2 --unhealthy-threshold-count 2 \
  --health-check-path "$2" --query 'TargetGroups[0].TargetGroupArn' --output text; }
WEB_TG=$(tg web /); API_TG=$(tg api /api/)
for g in "$WEB_TG" "$API_TG"; do
  awsb elbv2 modify-target-group-attributes --target-group-arn "$g" --attributes Key=deregistration_delay.timeout_seconds,Value=5 >/dev/null
done
LISTENER=$(awsb elbv2 create-listener --load-balancer-arn "$ALB" --protocol HTTP --port 80 \
  --default-actions "Type=forward,TargetGroupArn=$WEB_TG" --query 'Listeners[0].ListenerArn' --output text)
awsb elbv2 create-rule --listener-arn "$LISTENER" --priority 1 --conditions 'Field=path-pattern,Values=/api/*' \
  --actions "Type=forward,TargetGroupArn=$API_TG" >/dev/null

expect_error "a group no load balancer uses is refused" InvalidParameterException \
  awsb ecs create-service --cluster shop --service-name bad --task-definition web --desired-count 1 --launch-type FARGATE \
  --network-configuration "$NET" --load-balancers "targetGroupArn=$(tg spare /),containerName=web,containerPort=80"
expect_error "a container port the task does not map is refused" InvalidParameterException \
  awsb ecs create-service --cluster shop --service-name bad --task-definition web --desired-count 1 --launch-type FARGATE \
  --network-configuration "$NET" --load-balancers "targetGroupArn=$WEB_TG,containerName=web,containerPort=8080"

# ---- 1. three tasks behind the ALB, and /api/* to a second service ----
awsb ecs create-service --cluster shop --service-name web --task-definition web --desired-count 3 --launch-type FARGATE \
  --network-configuration "$NET" --health-check-grace-period-seconds 10 \
  --load-balancers "targetGroupArn=$WEB_TG,containerName=web,containerPort=80" >/dev/null
awsb ecs create-service --cluster shop --service-name api --task-definition api --desired-count 1 --launch-type FARGATE \
  --network-configuration "$NET" --load-balancers "targetGroupArn=$API_TG,containerName=web,containerPort=80" >/dev/null
awsb ecs wait services-stable --cluster shop --services web api
task_ips() { # SERVICE: the addresses of its RUNNING tasks, sorted
  # shellcheck disable=SC2046
  awsb ecs describe-tasks --cluster shop --tasks $(awsb ecs list-tasks --cluster shop --service-name "$1" --desired-status RUNNING --query taskArns --output text) \
    --query "tasks[].attachments[0].details[?name=='privateIPv4Address'].value | []" --output text | tr '\t' '\n' | sort | tr '\n' ' '
}
healthy_ips() { awsb elbv2 describe-target-health --target-group-arn "$1" --query "TargetHealthDescriptions[?TargetHealth.State=='healthy'].Target.Id" --output text | tr '\t' '\n' | sort | tr '\n' ' '; }
# services-stable counts RUNNING tasks; the deployment completes once their targets pass
# their health checks.
wait_for "the web rollout complete" 60 bash -c "[ \"\$(aws --endpoint-url $BERTH_URL ecs describe-services --cluster shop --services web --query 'services[0].deployments[0].rolloutState' --output text)\" = COMPLETED ]"
expect_eq "the group holds the three tasks, healthy" "$(task_ips web)" "$(healthy_ips "$WEB_TG")"
expect_eq "the registration event" "1" "$(awsb ecs describe-services --cluster shop --services web --query 'services[0].events[].message' --output text | tr '\t' '\n' | grep -c "registered 3 targets in (target-group $WEB_TG)\|registered 1 targets in (target-group $WEB_TG)" | awk '{print ($1 > 0)}')"
seen=$(for _ in $(seq 12); do curl -fsS --max-time 5 "http://$LBIP/"; done | awk '{print $2}' | sort -u | tr '\n' ' ')
expect_eq "requests reach all three tasks" "$(task_ips web)" "$seen"
expect_eq "/api/* reaches the api service" "api" "$(curl -fsS --max-time 5 "http://$LBIP/api/")"
wait_for "the api target healthy" 30 bash -c "[ \"\$(aws --endpoint-url $BERTH_URL elbv2 describe-target-health --target-group-arn $API_TG --query 'TargetHealthDescriptions[0].TargetHealth.State' --output text)\" = healthy ]"
pass "the api task passes its health checks on /api/"

# ---- 2. a task whose process dies: replaced, and out of the ALB's rotation ----
read -r -a IPS <<<"$(task_ips web)"
victim_ip=${IPS[0]}
# shellcheck disable=SC2046
victim=$(awsb ecs describe-tasks --cluster shop --tasks $(awsb ecs list-tasks --cluster shop --service-name web --query taskArns --output text) \
  --query "tasks[?attachments[0].details[?name=='privateIPv4Address' && value=='$victim_ip']].taskArn" --output text)
pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["containers"][0]["pid"])' "$BERTH_DATA/tasks/${victim##*/}/state.json")
kill -9 "$pid"
awsb ecs wait tasks-stopped --cluster shop --tasks "$victim"
# (the replacement may get the freed address again: compare tasks, not addresses)
awsb ecs wait services-stable --cluster shop --services web
expect_eq "the dead task's target was deregistered" "1" "$(awsb ecs describe-services --cluster shop --services web --query 'services[0].events[].message' --output text | tr '\t' '\n' | grep -c "deregistered 1 targets in (target-group $WEB_TG)" | awk '{print ($1 > 0)}')"
healthy_is_running() { [ "$(healthy_ips "$WEB_TG")" = "$(task_ips web)" ]; }
wait_for "the replacement healthy" 60 healthy_is_running
expect_eq "replaced: three healthy targets, the live tasks" "$(task_ips web)" "$(healthy_ips "$WEB_TG")"
after=$(for _ in $(seq 12); do curl -s -o /dev/null -w '%{http_code}\n' --max-time 5 "http://$LBIP/"; done | sort | uniq -c | awk '{print $1"x"$2}')
expect_eq "every request served after the replacement" "12x200" "$after"

# ---- 3. a rolling update under steady load: no failed request ----
register web "$(web_script v2)" >/dev/null
: > "$WORK/codes"
( while :; do curl -s -o /dev/null -w '%{http_code}\n' --max-time 10 "http://$LBIP/" >> "$WORK/codes"; done ) &
LOAD_PID=$!
wait_for "load flowing" 10 test -s "$WORK/codes"
awsb ecs update-service --cluster shop --service web --task-definition web:2 >/dev/null
awsb ecs wait services-stable --cluster shop --services web
wait_for "the v2 rollout complete" 60 bash -c "[ \"\$(aws --endpoint-url $BERTH_URL ecs describe-services --cluster shop --services web --query 'services[0].[length(deployments), deployments[0].rolloutState]' --output text)\" = \"$(printf '1\tCOMPLETED')\" ]"
kill "$LOAD_PID"; wait "$LOAD_PID" 2>/dev/null || true; LOAD_PID=""
total=$(wc -l < "$WORK/codes"); failed=$(grep -vcx 200 "$WORK/codes" || true)
echo "# rolling update: $total requests, $failed failed"
expect_eq "zero failed requests during the rolling update" "0" "$failed"
[ "$total" -gt 50 ] && pass "the load was steady ($total requests)" || fail "too little load: $total requests"
expect_eq "only v2 answers now" "v2" "$(for _ in $(seq 6); do curl -fsS --max-time 5 "http://$LBIP/"; done | awk '{print $1}' | sort -u)"
expect_eq "the group holds exactly the new tasks" "$(task_ips web)" "$(healthy_ips "$WEB_TG")"
expect_eq "the api service kept its one task (no failed health checks)" "0" "$(awsb ecs describe-services --cluster shop --services api --query 'services[0].events[].message' --output text | tr '\t' '\n' | grep -c 'unhealthy' || true)"
expect_eq "the old tasks drained before they stopped" "1" "$(awsb ecs describe-services --cluster shop --services web --query 'services[0].events[].message' --output text | tr '\t' '\n' | grep -c 'has begun draining connections' | awk '{print ($1 > 0)}')"

# ---- 4. deleting the service empties its group ----
awsb ecs delete-service --cluster shop --service web --force >/dev/null
awsb ecs wait services-inactive --cluster shop --services web
expect_eq "no target left after DeleteService" "0" "$(awsb elbv2 describe-target-health --target-group-arn "$WEB_TG" --query 'length(TargetHealthDescriptions)')"
finish
