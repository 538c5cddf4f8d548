#!/usr/bin/env bash
# Load balancers move real traffic: an application load balancer (ALB) gets an address in
# each of its subnets on the Berth network and proxies HTTP to its targets (busybox httpd
# tasks) by its listener rules, with X-Forwarded-* headers; health checks mark targets
# healthy or unhealthy and the ALB follows; deregistered targets drain; 502/503 when
# targets fail or are missing; its DNS name resolves through Berth's resolver. A network
# load balancer (NLB) forwards TCP in the kernel with the client's address preserved.
# Listeners come back after kill -9; `berth down` removes every host change.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images.sh"
if [ "$(id -u)" != 0 ]; then echo "FAIL - load balancers need root" >&2; exit 1; fi
# Tasks outlive the server; whatever happens, stop them and undo the host changes.
cleanup() { stop_berth; [ -n "${BERTH_DATA:-}" ] && "$BERTH_BIN" down --data-dir "$BERTH_DATA" >/dev/null 2>&1 || true; }
trap cleanup EXIT
start_berth
push_task_image
awsb ecs create-cluster --cluster-name lb >/dev/null
read -r SUB1 SUB2 <<<"$(awsb ec2 describe-subnets --filters Name=default-for-az,Values=true --query 'Subnets[0:2].SubnetId' --output text)"
VPC=$(awsb ec2 describe-vpcs --filters Name=is-default,Values=true --query 'Vpcs[0].VpcId' --output text)

# A task serving its own address at /, "api" under /api/, its CGI environment at
# /cgi-bin/env (what the proxy sent: X-Forwarded-For and the rest), and /cgi-bin/slow,
# which answers after 3 s.
SERVE='mkdir -p /www/api /www/cgi-bin && hostname -i > /www/index.html && echo api > /www/api/index.html && printf "#!/bin/sh\necho Content-Type: text/plain\necho\nenv\n" > /www/cgi-bin/env && printf "#!/bin/sh\nsleep 3\necho Content-Type: text/plain\necho\necho slow\n" > /www/cgi-bin/slow && chmod +x /www/cgi-bin/env /www/cgi-bin/slow && exec httpd -f -p 80 -h /www'
python3 - "$IMAGE" "$SERVE" > "$WORK/web.json" <<'PY'
import json, sys
print(json.dumps([{"name": "web", "image": sys.argv[1], "stopTimeout": 2,
                   "command": ["sh", "-c", sys.argv[2]],
                   "portMappings": [{"containerPort": 80}]}]))
PY
awsb ecs register-task-definition --family web --requires-compatibilities FARGATE --network-mode awsvpc \
  --cpu 256 --memory 512 --container-definitions "file://$WORK/web.json" >/dev/null
run_tasks() { # COUNT: start COUNT tasks, print their addresses once RUNNING
  local arns
  arns=$(awsb ecs run-task --cluster lb --task-definition web --count "$1" --launch-type FARGATE \
    --network-configuration "awsvpcConfiguration={subnets=[$SUB1]}" --query 'tasks[].taskArn' --output text)
  # shellcheck disable=SC2086
  awsb ecs wait tasks-running --cluster lb --tasks $arns
  # shellcheck disable=SC2086
  awsb ecs describe-tasks --cluster lb --tasks $arns --query "tasks[].attachments[0].details[?name=='privateIPv4Address'].value | []" --output text
}
read -r -a WEB <<<"$(run_tasks 3)"
expect_eq "three web tasks" "3" "${#WEB[@]}"

# ---- 1. an ALB with an address in each subnet ----
ALB=$(awsb elbv2 create-load-balancer --name front --subnets "$SUB1" "$SUB2" --query 'LoadBalancers[0].LoadBalancerArn' --output text)
read -r -a ALB_IPS <<<"$(awsb elbv2 describe-load-balancers --load-balancer-arns "$ALB" --query 'LoadBalancers[0].AvailabilityZones[].LoadBalancerAddresses[].IpAddress' --output text)"
expect_eq "an address per subnet" "2" "${#ALB_IPS[@]}"
LBIP=${ALB_IPS[0]}
TG=$(awsb elbv2 create-target-group --name web --protocol HTTP --port 80 --vpc-id "$VPC" --target-type ip \
  --health-check-interval-seconds 5 --health-check-timeout-seconds 2 --healthy-threshold-count 2 --unhealthy-threshold-count 2 \
  --query 'TargetGroups[0].TargetGroupArn' --output text)
LISTENER=$(awsb elbv2 create-listener --load-balancer-arn "$ALB" --protocol HTTP --port 80 \
  --default-actions "Type=forward,TargetGroupArn=$TG" --query 'Listeners[0].ListenerArn' --output text)
awsb elbv2 register-targets --target-group-arn "$TG" --targets "Id=${WEB[0]}" "Id=${WEB[1]}" "Id=${WEB[2]}"
wait_for "the listener on $LBIP:80" 10 curl -fsS --max-time 2 "http://$LBIP/"
# Round robin: nine requests, three to each task (an ALB fails open while none is healthy yet).
seen=$(for _ in $(seq 9); do curl -fsS --max-time 5 "http://$LBIP/"; done | sort | uniq -c | awk '{print $1}' | tr '\n' ' ')
expect_eq "requests reach all three tasks evenly" "3 3 3 " "$seen"
expect_eq "the other zone's address serves too" "200" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://${ALB_IPS[1]}/")"
health() { awsb elbv2 describe-target-health --target-group-arn "$1" --query 'TargetHealthDescriptions[].TargetHealth.State' --output text | tr '\t' '\n' | sort | tr '\n' ' '; }
wait_for "targets healthy" 30 bash -c "[ \"\$(aws --endpoint-url $BERTH_URL elbv2 describe-target-health --target-group-arn $TG --query 'TargetHealthDescriptions[].TargetHealth.State' --output text)\" = \"$(printf 'healthy\thealthy\thealthy')\" ]"
expect_eq "health checks pass" "healthy healthy healthy " "$(health "$TG")"

# ---- 2. what the target sees ----
ENV=$(curl -fsS --max-time 5 -H 'X-Forwarded-For: 203.0.113.7' "http://$LBIP/cgi-bin/env")
# (which of the host's addresses the kernel picks as source varies; section 8 checks the
# exact client address from a namespace of its own)
expect_eq "X-Forwarded-For appends the client" "1" "$(grep -cE '^HTTP_X_FORWARDED_FOR=203\.0\.113\.7, [0-9.]+$' <<<"$ENV")"
expect_eq "X-Forwarded-Proto and -Port" "HTTP_X_FORWARDED_PORT=80 HTTP_X_FORWARDED_PROTO=http" "$(grep -E '^HTTP_X_FORWARDED_(PROTO|PORT)=' <<<"$ENV" | sort | tr '\n' ' ' | sed 's/ $//')"
expect_eq "X-Amzn-Trace-Id added" "1" "$(grep -cE '^HTTP_X_AMZN_TRACE_ID=Root=1-[0-9a-f]{8}-[0-9a-f]{24}$' <<<"$ENV")"
expect_eq "the Host header is the client's" "HTTP_HOST=$LBIP" "$(grep '^HTTP_HOST=' <<<"$ENV")"
expect_eq "HTTP/2 (prior knowledge) through the ALB" "2 200" "$(curl -s -o /dev/null -w '%{http_version} %{http_code}' --http2-prior-knowledge --max-time 5 "http://$LBIP/")"

# lb_cookie stickiness: a client with the AWSALB cookie keeps its target.
awsb elbv2 modify-target-group-attributes --target-group-arn "$TG" --attributes Key=stickiness.enabled,Value=true Key=stickiness.type,Value=lb_cookie >/dev/null
wait_for "the AWSALB cookie" 10 bash -c "curl -s -o /dev/null -D - --max-time 2 http://$LBIP/ | grep -qi '^Set-Cookie: AWSALB='"
curl -s -o /dev/null -c "$WORK/jar" --max-time 5 "http://$LBIP/"
expect_eq "a sticky client stays on one target" "1" "$(for _ in $(seq 6); do curl -fsS -b "$WORK/jar" --max-time 5 "http://$LBIP/"; done | sort -u | wc -l)"
expect_eq "AWSALBCORS beside it" "1" "$(curl -s -o /dev/null -D - --max-time 5 "http://$LBIP/" | grep -ci '^Set-Cookie: AWSALBCORS=.*SameSite=None')"
awsb elbv2 modify-target-group-attributes --target-group-arn "$TG" --attributes Key=stickiness.enabled,Value=false >/dev/null
wait_for "stickiness off" 10 bash -c "! curl -s -o /dev/null -D - --max-time 2 http://$LBIP/ | grep -qi '^Set-Cookie: AWSALB='"

# ---- 3. rules: a path rule to a second group, a fixed response, a redirect ----
read -r API_IP <<<"$(run_tasks 1)"
API=$(awsb elbv2 create-target-group --name api --protocol HTTP --port 80 --vpc-id "$VPC" --target-type ip --query 'TargetGroups[0].TargetGroupArn' --output text)
awsb elbv2 register-targets --target-group-arn "$API" --targets "Id=$API_IP"
awsb elbv2 create-rule --listener-arn "$LISTENER" --priority 10 --conditions 'Field=path-pattern,Values=/api/*' \
  --actions "Type=forward,TargetGroupArn=$API" >/dev/null
awsb elbv2 create-rule --listener-arn "$LISTENER" --priority 20 --conditions 'Field=path-pattern,Values=/teapot' \
  --actions 'Type=fixed-response,FixedResponseConfig={StatusCode=418,ContentType=text/plain,MessageBody=short and stout}' >/dev/null
awsb elbv2 create-rule --listener-arn "$LISTENER" --priority 30 --conditions 'Field=host-header,Values=old.example.com' \
  --actions 'Type=redirect,RedirectConfig={Host=new.example.com,StatusCode=HTTP_301}' >/dev/null
wait_for "the /api/* rule" 10 bash -c "[ \"\$(curl -s --max-time 2 http://$LBIP/api/)\" = api ]"
api_hits=$(for _ in $(seq 6); do curl -fsS --max-time 5 "http://$LBIP/api/"; done | sort -u)
expect_eq "/api/* goes to the api group only" "api" "$api_hits"
expect_eq "/api/* reaches the api task (its own address)" "$API_IP" "$(curl -fsS --max-time 5 "http://$LBIP/api/../" --path-as-is | head -1 | tr -d ' ')"
expect_eq "other paths stay on the default group" "0" "$(for _ in $(seq 6); do curl -fsS --max-time 5 "http://$LBIP/"; done | grep -c api || true)"
expect_eq "fixed-response" "418 short and stout" "$(curl -s -w ' %{http_code}' --max-time 5 "http://$LBIP/teapot" | awk '{c=$NF; $NF=""; print c, $0}' | sed 's/ $//')"
expect_eq "redirect" "301 http://new.example.com/a?b=c" "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' --max-time 5 -H 'Host: old.example.com' "http://$LBIP/a?b=c")"

# ---- 4. 503 without targets, 502 when the target refuses ----
EMPTY=$(awsb elbv2 create-target-group --name empty --protocol HTTP --port 80 --vpc-id "$VPC" --target-type ip --health-check-interval-seconds 5 --health-check-timeout-seconds 2 --query 'TargetGroups[0].TargetGroupArn' --output text)
awsb elbv2 create-listener --load-balancer-arn "$ALB" --protocol HTTP --port 8080 --default-actions "Type=forward,TargetGroupArn=$EMPTY" >/dev/null
wait_for "the listener on :8080" 10 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://$LBIP:8080/)\" = 503 ]"
expect_eq "no targets: 503" "503" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$LBIP:8080/")"
awsb elbv2 register-targets --target-group-arn "$EMPTY" --targets "Id=${WEB[0]},Port=81"
wait_for "a target on a closed port" 10 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://$LBIP:8080/)\" = 502 ]"
expect_eq "a refusing target: 502" "502" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$LBIP:8080/")"
wait_for "the closed port unhealthy" 30 bash -c "[ \"\$(aws --endpoint-url $BERTH_URL elbv2 describe-target-health --target-group-arn $EMPTY --query 'TargetHealthDescriptions[0].TargetHealth.State' --output text)\" = unhealthy ]"
expect_eq "unhealthy with ELB's reason" "unhealthy Target.FailedHealthChecks" "$(awsb elbv2 describe-target-health --target-group-arn "$EMPTY" --query 'TargetHealthDescriptions[0].TargetHealth.[State,Reason]' --output text | tr '\t' ' ')"

# A target slower than the load balancer's idle timeout: 504.
awsb elbv2 modify-load-balancer-attributes --load-balancer-arn "$ALB" --attributes Key=idle_timeout.timeout_seconds,Value=1 >/dev/null
wait_for "a slow target: 504" 15 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://$LBIP/cgi-bin/slow)\" = 504 ]"
pass "a target slower than the idle timeout: 504"
awsb elbv2 modify-load-balancer-attributes --load-balancer-arn "$ALB" --attributes Key=idle_timeout.timeout_seconds,Value=60 >/dev/null
wait_for "the idle timeout back to 60 s" 15 bash -c "[ \"\$(curl -s --max-time 10 http://$LBIP/cgi-bin/slow)\" = slow ]"
pass "within the idle timeout the slow answer arrives"

# ---- 5. a target that dies is taken out once its checks fail ----
# shellcheck disable=SC2046
victim=$(awsb ecs describe-tasks --cluster lb --tasks $(awsb ecs list-tasks --cluster lb --query 'taskArns' --output text) \
  --query "tasks[?attachments[0].details[?name=='privateIPv4Address' && value=='${WEB[2]}']].taskArn" --output text)
awsb ecs stop-task --cluster lb --task "$victim" >/dev/null
awsb ecs wait tasks-stopped --cluster lb --tasks "$victim"
wait_for "the stopped task's target unhealthy" 30 bash -c "aws --endpoint-url $BERTH_URL elbv2 describe-target-health --target-group-arn $TG --targets Id=${WEB[2]} --query 'TargetHealthDescriptions[0].TargetHealth.State' --output text | grep -qx unhealthy"
codes=$(for _ in $(seq 10); do curl -s -o /dev/null -w '%{http_code}\n' --max-time 5 "http://$LBIP/"; done | sort | uniq -c | awk '{print $1"x"$2}')
expect_eq "all requests served by the two live tasks" "10x200" "$codes"

# ---- 6. deregistration drains, then the target leaves ----
awsb elbv2 deregister-targets --target-group-arn "$TG" --targets "Id=${WEB[2]}"
wait_for "the drained target gone" 10 bash -c "[ \"\$(aws --endpoint-url $BERTH_URL elbv2 describe-target-health --target-group-arn $TG --query 'length(TargetHealthDescriptions)')\" = 2 ]"
expect_eq "two targets left, healthy" "healthy healthy " "$(health "$TG")"

# ---- 7. the DNS name resolves through Berth's resolver, for the host and for tasks ----
DNS=$(awsb elbv2 describe-load-balancers --load-balancer-arns "$ALB" --query 'LoadBalancers[0].DNSName' --output text)
resolved=$(python3 - "$DNS" <<'PY'
import socket, struct, sys
name = sys.argv[1]
q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
s.sendto(q, ("169.254.170.2", 53)); r = s.recv(4096)
n = struct.unpack(">H", r[6:8])[0]
print(" ".join(sorted(socket.inet_ntoa(r[len(r) - 16 * (n - i) + 12:len(r) - 16 * (n - i) + 16]) for i in range(n))))
PY
)
expect_eq "the DNS name resolves to both addresses" "$(printf '%s\n' "${ALB_IPS[@]}" | sort | tr '\n' ' ' | sed 's/ $//')" "$resolved"
python3 - "$IMAGE" "$DNS" > "$WORK/client.json" <<'PY'
import json, sys
print(json.dumps([{"name": "client", "image": sys.argv[1], "essential": True,
                   "command": ["sh", "-c", "wget -qO- http://%s/api/" % sys.argv[2]]}]))
PY
awsb ecs register-task-definition --family client --requires-compatibilities FARGATE --network-mode awsvpc \
  --cpu 256 --memory 512 --container-definitions "file://$WORK/client.json" >/dev/null
CLIENT=$(awsb ecs run-task --cluster lb --task-definition client --launch-type FARGATE \
  --network-configuration "awsvpcConfiguration={subnets=[$SUB2]}" --query 'tasks[0].taskArn' --output text)
awsb ecs wait tasks-stopped --cluster lb --tasks "$CLIENT"
expect_eq "a task reaches the ALB by its DNS name" "0" "$(awsb ecs describe-tasks --cluster lb --tasks "$CLIENT" --query 'tasks[0].containers[0].exitCode' --output text)"

# ---- 8. an NLB forwards in the kernel and keeps the client's address ----
NLB=$(awsb elbv2 create-load-balancer --name tcp --type network --subnets "$SUB1" --query 'LoadBalancers[0].LoadBalancerArn' --output text)
NLBIP=$(awsb elbv2 describe-load-balancers --load-balancer-arns "$NLB" --query 'LoadBalancers[0].AvailabilityZones[0].LoadBalancerAddresses[0].IpAddress' --output text)
TCPTG=$(awsb elbv2 create-target-group --name tcp --protocol TCP --port 80 --vpc-id "$VPC" --target-type ip --health-check-timeout-seconds 2 \
  --health-check-interval-seconds 5 --healthy-threshold-count 2 --query 'TargetGroups[0].TargetGroupArn' --output text)
awsb elbv2 register-targets --target-group-arn "$TCPTG" --targets "Id=${WEB[0]}" "Id=${WEB[1]}"
awsb elbv2 create-listener --load-balancer-arn "$NLB" --protocol TCP --port 80 --default-actions "Type=forward,TargetGroupArn=$TCPTG" >/dev/null
wait_for "the NLB forwarding" 10 curl -fsS --max-time 2 "http://$NLBIP/"
nlb_seen=$(for _ in $(seq 40); do curl -fsS --max-time 5 "http://$NLBIP/"; done | sort -u | tr '\n' ' ')
expect_eq "connections spread over both targets" "$(printf '%s\n' "${WEB[0]}" "${WEB[1]}" | sort | tr '\n' ' ')" "$nlb_seen"
expect_eq "the kernel forwards: no userspace listener on the NLB address" "0" "$(ss -Htln "src $NLBIP" | wc -l)"
# A client in its own network namespace, routed through the host: the target sees its address.
CLIENT_NS="berth-lbtest-$$"
ip netns add "$CLIENT_NS"
trap 'ip netns del "$CLIENT_NS" 2>/dev/null || true; ip link del "lbt$$" 2>/dev/null || true; cleanup' EXIT
ip link add "lbt$$" type veth peer name eth0 netns "$CLIENT_NS"
ip addr add 10.254.77.1/30 dev "lbt$$"; ip link set "lbt$$" up
ip -n "$CLIENT_NS" addr add 10.254.77.2/30 dev eth0; ip -n "$CLIENT_NS" link set eth0 up; ip -n "$CLIENT_NS" link set lo up
ip -n "$CLIENT_NS" route add default via 10.254.77.1
iptables -w -I FORWARD -i "lbt$$" -j ACCEPT
# (each step may fail harmlessly: with set -e a failure would become the script's status)
trap 'iptables -w -D FORWARD -i "lbt$$" -j ACCEPT || true; ip netns del "$CLIENT_NS" 2>/dev/null || true; ip link del "lbt$$" 2>/dev/null || true; cleanup' EXIT
# (busybox httpd shows IPv4 clients in their IPv6-mapped form)
expect_eq "NLB: the target sees the client's own address" "REMOTE_ADDR=[::ffff:10.254.77.2]" \
  "$(ip netns exec "$CLIENT_NS" curl -fsS --max-time 5 "http://$NLBIP/cgi-bin/env" | grep '^REMOTE_ADDR=')"
expect_eq "ALB: X-Forwarded-For carries the client's address" "HTTP_X_FORWARDED_FOR=10.254.77.2" \
  "$(ip netns exec "$CLIENT_NS" curl -fsS --max-time 5 "http://$LBIP/cgi-bin/env" | grep '^HTTP_X_FORWARDED_FOR=')"

# ---- 9. kill -9: listeners and rules come back; deleting frees the addresses ----
kill9_berth
start_berth
wait_for "the ALB back after kill -9" 10 bash -c "[ \"\$(curl -s --max-time 2 http://$LBIP/api/)\" = api ]"
expect_eq "after kill -9: the ALB serves" "200" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$LBIP/")"
expect_eq "after kill -9: the NLB forwards" "200" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$NLBIP/")"
free_in_sub2() { awsb ec2 describe-subnets --subnet-ids "$SUB2" --query 'Subnets[0].AvailableIpAddressCount' --output text; }
FREE_BEFORE=$(free_in_sub2)
awsb elbv2 delete-load-balancer --load-balancer-arn "$ALB"
wait_for "the ALB's addresses gone from the bridge" 10 bash -c "! ip -4 addr show berth0 | grep -qw $LBIP"
expect_eq "a deleted ALB no longer answers" "000" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$LBIP/" || true)"
expect_eq "its address in the second subnet is free again" "$((FREE_BEFORE + 1))" "$(free_in_sub2)"

# ---- 10. --publish-lb: listeners on a host address too, port clashes refused ----
awsb elbv2 delete-load-balancer --load-balancer-arn "$NLB"
kill9_berth
start_berth --publish-lb 127.0.0.1
PUB_PORT=$(free_port)
PUB=$(awsb elbv2 create-load-balancer --name pub --subnets "$SUB1" "$SUB2" --query 'LoadBalancers[0].LoadBalancerArn' --output text)
PUB2=$(awsb elbv2 create-load-balancer --name pub2 --subnets "$SUB1" "$SUB2" --query 'LoadBalancers[0].LoadBalancerArn' --output text)
PUBTG=$(awsb elbv2 create-target-group --name pub --protocol HTTP --port 80 --vpc-id "$VPC" --target-type ip --query 'TargetGroups[0].TargetGroupArn' --output text)
awsb elbv2 register-targets --target-group-arn "$PUBTG" --targets "Id=${WEB[0]}"
awsb elbv2 create-listener --load-balancer-arn "$PUB" --protocol HTTP --port "$PUB_PORT" --default-actions "Type=forward,TargetGroupArn=$PUBTG" >/dev/null
wait_for "the published listener" 10 curl -fsS --max-time 2 "http://127.0.0.1:$PUB_PORT/"
expect_eq "published on 127.0.0.1" "${WEB[0]}" "$(curl -fsS --max-time 5 "http://127.0.0.1:$PUB_PORT/" | tr -d ' ')"
expect_error "a second load balancer on the published port" InvalidConfigurationRequest \
  awsb elbv2 create-listener --load-balancer-arn "$PUB2" --protocol HTTP --port "$PUB_PORT" --default-actions "Type=fixed-response,FixedResponseConfig={StatusCode=200}"
expect_error "a port another process uses (Berth's API)" InvalidConfigurationRequest \
  awsb elbv2 create-listener --load-balancer-arn "$PUB2" --protocol HTTP --port "$BERTH_PORT" --default-actions "Type=fixed-response,FixedResponseConfig={StatusCode=200}"
# An internal load balancer is never published on the host address, nor holds its port.
INT=$(awsb elbv2 create-load-balancer --name int --scheme internal --subnets "$SUB1" "$SUB2" --query 'LoadBalancers[0].LoadBalancerArn' --output text)
INT_PORT=$(free_port)
awsb elbv2 create-listener --load-balancer-arn "$INT" --protocol HTTP --port "$INT_PORT" --default-actions "Type=fixed-response,FixedResponseConfig={StatusCode=200,MessageBody=internal}" >/dev/null
INTIP=$(awsb elbv2 describe-load-balancers --load-balancer-arns "$INT" --query 'LoadBalancers[0].AvailabilityZones[0].LoadBalancerAddresses[0].IpAddress' --output text)
wait_for "the internal listener on its own address" 10 curl -fsS --max-time 2 "http://$INTIP:$INT_PORT/"
expect_eq "internal: answers on its own address" "internal" "$(curl -s --max-time 5 "http://$INTIP:$INT_PORT/")"
expect_eq "internal: not on the published address" "000" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$INT_PORT/" || true)"
L=$(awsb elbv2 create-listener --load-balancer-arn "$PUB2" --protocol HTTP --port "$INT_PORT" --default-actions "Type=fixed-response,FixedResponseConfig={StatusCode=200}" --query 'Listeners[0].ListenerArn' --output text)
expect_eq "internal: its port is not held on the host (an internet-facing listener takes it)" "listener" "$(cut -d: -f6 <<<"$L" | cut -d/ -f1)"
awsb elbv2 delete-listener --listener-arn "$L"
awsb elbv2 delete-load-balancer --load-balancer-arn "$INT"
awsb elbv2 delete-load-balancer --load-balancer-arn "$PUB"
awsb elbv2 create-listener --load-balancer-arn "$PUB2" --protocol HTTP --port "$PUB_PORT" --default-actions "Type=fixed-response,FixedResponseConfig={StatusCode=200,MessageBody=second}" >/dev/null
wait_for "the port taken over by the second load balancer" 10 bash -c "[ \"\$(curl -s --max-time 2 http://127.0.0.1:$PUB_PORT/)\" = second ]"
pass "a deleted load balancer's published port is free for another"

# ---- 11. berth down removes the load balancers' chains ----
"$BERTH_BIN" down --data-dir "$BERTH_DATA" >/dev/null 2>&1
BERTH_PID=""
expect_eq "BERTH-LB chains removed" "0" "$(iptables -w -t nat -S | grep -c 'BERTH-LB' || true)"
finish
