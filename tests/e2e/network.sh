#!/usr/bin/env bash
# awsvpc task networking, as a user sees it: a busybox httpd task answers on the address
# DescribeTasks reports, tasks reach each other and (NATed) the outside, addresses come
# back when tasks stop, an exhausted or clashing subnet fails the task with a reason,
# tasks survive kill -9 of berth, and `berth down` leaves the host as it found it.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images.sh"
if [ "$(id -u)" != 0 ] || ! command -v iptables >/dev/null; then
  echo "FAIL - task networking needs root and iptables (scripts/setup installs it)" >&2; exit 1
fi
host_links() { ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -c '^berth' || true; }
berth_rules() { { iptables -S; iptables -t nat -S; } | grep -c BERTH || true; }
netns_mounts() { grep -c ' nsfs ' /proc/mounts || true; }
# Earlier servers may have left Berth's bridge and chains (SIGTERM keeps them); what this
# script checks is absolute: the bridge alone once tasks stop, nothing after berth down.
NS0=$(netns_mounts)
OUT_NS=berthtest-out
FORWARD0=$(iptables -S FORWARD | awk '$1 == "-P" {print $3}')
cleanup_outside() {
  iptables -P FORWARD "$FORWARD0"
  ip netns del "$OUT_NS" 2>/dev/null || true
  ip link del clash0 2>/dev/null || true
  [ -z "${HTTP_PID:-}" ] || kill "$HTTP_PID" 2>/dev/null || true
}
trap 'stop_berth; cleanup_outside' EXIT

start_berth --register-instance c1
push_task_image
awsb ecs create-cluster --cluster-name c1 >/dev/null
SUBNET=$(awsb ec2 describe-subnets --filters Name=default-for-az,Values=true --query 'Subnets[?AvailabilityZone==`us-east-1a`].SubnetId' --output text)
expect_eq "berth up made the bridge" "1" "$(ip -o link show berth0 >/dev/null 2>&1 && echo 1 || echo 0)"

register() {
  awsb ecs register-task-definition --family "$1" --requires-compatibilities FARGATE \
    --network-mode awsvpc --cpu 256 --memory 512 \
    --container-definitions "$2" --query taskDefinition.taskDefinitionArn --output text >/dev/null
}
# run FAMILY SUBNET [extra args]: prints the task ids.
run() {
  local fam="$1" sub="$2"; shift 2
  awsb ecs run-task --cluster c1 --launch-type FARGATE --task-definition "$fam" \
    --network-configuration "awsvpcConfiguration={subnets=[$sub]}" "$@" --query 'tasks[].taskArn' --output text | tr '\t' '\n' | awk -F/ '{print $NF}'
}
field() { awsb ecs describe-tasks --cluster c1 --tasks "$1" --query "tasks[0].$2" --output text; }
detail() { field "$1" "attachments[0].details[?name=='$2'].value | [0]"; }
HTTPD='mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www'
register web "[{\"name\":\"web\",\"image\":\"$IMAGE\",\"command\":[\"sh\",\"-c\",\"$HTTPD\"]}]"

# 1. An httpd task answers on its own address from the host.
a=$(run web "$SUBNET")
awsb ecs wait tasks-running --cluster c1 --tasks "$a"
IP_A=$(detail "$a" privateIPv4Address)
CIDR=$(awsb ec2 describe-subnets --subnet-ids "$SUBNET" --query 'Subnets[0].CidrBlock' --output text)
expect_eq "the address is in the subnet's range" "True" "$(python3 -c "import ipaddress as i; print(i.ip_address('$IP_A') in i.ip_network('$CIDR'))")"
expect_eq "attachment is ATTACHED" "ATTACHED" "$(field "$a" 'attachments[0].status')"
expect_eq "attachment names the subnet" "$SUBNET" "$(detail "$a" subnetId)"
expect_eq "private DNS name follows the address" "ip-${IP_A//./-}.ec2.internal" "$(detail "$a" privateDnsName)"
expect_eq "MAC address reported" "1" "$(grep -cE '^([0-9a-f]{2}:){5}[0-9a-f]{2}$' <<<"$(detail "$a" macAddress)")"
expect_eq "ENI id reported" "eni-" "$(detail "$a" networkInterfaceId | cut -c1-4)"
expect_eq "container networkInterfaces carry the address" "$IP_A" "$(field "$a" 'containers[0].networkInterfaces[0].privateIpv4Address')"
expect_eq "availability zone is the subnet's" "us-east-1a" "$(field "$a" availabilityZone)"
expect_eq "the subnet counts one address fewer available" "4090" "$(awsb ec2 describe-subnets --subnet-ids "$SUBNET" --query 'Subnets[0].AvailableIpAddressCount')"
expect_eq "httpd answers on the task's address with the task's hostname" "ip-${IP_A//./-}.ec2.internal" "$(curl -fsS --max-time 10 "http://$IP_A/")"

# 2. A second task gets another address and reaches the first over the bridge.
register client "[{\"name\":\"c\",\"image\":\"$IMAGE\",\"command\":[\"sh\",\"-c\",\"wget -qO- http://$IP_A/ && ip -4 -o addr show eth0 | awk '{print \$4}' && ip route | grep default\"],\"logConfiguration\":{\"logDriver\":\"awslogs\",\"options\":{\"awslogs-group\":\"/net\",\"awslogs-region\":\"us-east-1\",\"awslogs-stream-prefix\":\"p\",\"awslogs-create-group\":\"true\"}}}]"
b=$(run client "$SUBNET")
awsb ecs wait tasks-stopped --cluster c1 --tasks "$b"
IP_B=$(detail "$b" privateIPv4Address)
expect_eq "the second task's address differs" "1" "$([ -n "$IP_B" ] && [ "$IP_B" != "$IP_A" ] && echo 1 || echo 0)"
expect_eq "task to task over the bridge; its own eth0 and default route" \
  "ip-${IP_A//./-}.ec2.internal $IP_B/20 default via 172.31.0.1 dev eth0" \
  "$(awsb logs get-log-events --log-group-name /net --log-stream-name "p/c/$b" --start-from-head --query 'events[].message' --output text | tr '\t' ' ' | sed 's/ *$//')"
expect_eq "client exited 0" "0" "$(field "$b" 'containers[0].exitCode')"
expect_eq "a stopped task's attachment is DELETED" "DELETED" "$(field "$b" 'attachments[0].status')"

# 2b. The in-task endpoints: a task reads its own metadata and its role's credentials and
#     calls Berth's API at $AWS_ENDPOINT_URL; another task cannot read its credentials.
logs() { awsb logs get-log-events --log-group-name /net --log-stream-name "p/$1" --start-from-head --query 'events[].message' --output text | tr '\t' '\n'; }
META='echo uri=$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI; wget -qO- $ECS_CONTAINER_METADATA_URI_V4/task; echo; wget -qO- $ECS_CONTAINER_METADATA_URI_V4; echo; wget -qO- 169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI; echo; wget -qO- --header X-Amz-Target:AmazonEC2ContainerServiceV20141113.ListClusters --header Content-Type:application/x-amz-json-1.1 --post-data {} $AWS_ENDPOINT_URL/; echo; echo region=$AWS_REGION; exec sleep 600'
awsb ecs register-task-definition --family meta --requires-compatibilities FARGATE --network-mode awsvpc --cpu 256 --memory 512 \
  --task-role-arn arn:aws:iam::000000000000:role/app \
  --container-definitions "[{\"name\":\"m\",\"image\":\"$IMAGE\",\"command\":[\"sh\",\"-c\",\"$META\"],\"stopTimeout\":2,\"logConfiguration\":{\"logDriver\":\"awslogs\",\"options\":{\"awslogs-group\":\"/net\",\"awslogs-region\":\"us-east-1\",\"awslogs-stream-prefix\":\"p\"}}}]" >/dev/null
m=$(run meta "$SUBNET")
awsb ecs wait tasks-running --cluster c1 --tasks "$m"
wait_for "the metadata task's output" 20 bash -c "aws --endpoint-url $BERTH_URL logs get-log-events --log-group-name /net --log-stream-name p/m/$m --query 'events[].message' --output text | grep -q region="
out=$(logs "m/$m")
TASK_ARN=$(field "$m" taskArn)
expect_eq "metadata v4 task: its own task ARN" "$TASK_ARN" "$(sed -n 2p <<<"$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["TaskARN"])')"
expect_eq "metadata v4 task: family, desired status, container" "meta RUNNING m" "$(sed -n 2p <<<"$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["Family"], d["DesiredStatus"], d["Containers"][0]["Name"])')"
expect_eq "metadata v4 container: name and its address" "m $(detail "$m" privateIPv4Address)" "$(sed -n 3p <<<"$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["Name"], d["Networks"][0]["IPv4Addresses"][0])')"
expect_eq "credentials: the role and keys Berth accepts" "arn:aws:iam::000000000000:role/app test" "$(sed -n 4p <<<"$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["RoleArn"], d["AccessKeyId"])')"
expect_eq "AWS_ENDPOINT_URL reaches Berth's API from the task" "arn:aws:ecs:us-east-1:000000000000:cluster/c1" "$(sed -n 5p <<<"$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["clusterArns"][0])')"
expect_eq "AWS_REGION set" "region=us-east-1" "$(sed -n 6p <<<"$out")"
CREDS=$(sed -n 1p <<<"$out" | cut -d= -f2)
register thief "[{\"name\":\"t\",\"image\":\"$IMAGE\",\"command\":[\"wget\",\"-qO-\",\"http://169.254.170.2$CREDS\"]}]"
th=$(run thief "$SUBNET")
awsb ecs wait tasks-stopped --cluster c1 --tasks "$th"
expect_eq "another task's credentials path is refused" "1" "$(field "$th" 'containers[0].exitCode')"
expect_eq "the host is refused too" "404" "$(curl -s -o /dev/null -w '%{http_code}' "http://169.254.170.2$CREDS")"
awsb ecs stop-task --cluster c1 --task "$m" >/dev/null
awsb ecs wait tasks-stopped --cluster c1 --tasks "$m"

# 2c. Name resolution: tasks ask Berth's resolver, which answers Berth's own names (the
#     registry, reachable from the task) and relays the rest to the host's resolvers.
REGNAME=000000000000.dkr.ecr.us-east-1.localhost
OUTSIDE_NAME=pypi.org
OUTSIDE_IP=$(getent hosts "$OUTSIDE_NAME" | awk '{print $1; exit}' || true)
register dns "[{\"name\":\"d\",\"image\":\"$IMAGE\",\"command\":[\"sh\",\"-c\",\"grep nameserver /etc/resolv.conf; nslookup $REGNAME | sed -n '/^Name:/,\$p' | grep -c 169.254.170.2; nslookup $OUTSIDE_NAME | sed -n '/^Name:/,\$p' | grep -c '${OUTSIDE_IP:-none}'; wget -qO /dev/null http://$REGNAME:$BERTH_PORT/v2/ && echo registry-reached\"],\"logConfiguration\":{\"logDriver\":\"awslogs\",\"options\":{\"awslogs-group\":\"/net\",\"awslogs-region\":\"us-east-1\",\"awslogs-stream-prefix\":\"p\"}}}]"
d=$(run dns "$SUBNET")
awsb ecs wait tasks-stopped --cluster c1 --tasks "$d"
out=$(logs "d/$d")
expect_eq "the task's resolver is Berth's" "nameserver 169.254.170.2" "$(sed -n 1p <<<"$out")"
expect_eq "the registry name resolves to Berth" "1" "$(sed -n 2p <<<"$out")"
if [ -n "$OUTSIDE_IP" ]; then
  expect_eq "other names are relayed to the host's resolvers" "1" "$(sed -n 3p <<<"$out")"
else
  echo "note - the host resolves no $OUTSIDE_NAME here; relaying not checked"
fi
expect_eq "the registry is reached by its name from the task" "registry-reached" "$(sed -n 4p <<<"$out")"

# 3. Outbound traffic is NATed: a server in a namespace outside Berth's network sees the
#    host's address, not the task's. Docker sets FORWARD's policy to DROP; Berth's own
#    rules still let its traffic through.
iptables -P FORWARD DROP
ip netns add "$OUT_NS"
ip link add berthtest-o0 type veth peer name o1 netns "$OUT_NS"
ip addr add 10.199.0.1/24 dev berthtest-o0 && ip link set berthtest-o0 up
ip -n "$OUT_NS" addr add 10.199.0.2/24 dev o1 && ip -n "$OUT_NS" link set o1 up && ip -n "$OUT_NS" link set lo up
ip netns exec "$OUT_NS" python3 -m http.server 8080 --bind 10.199.0.2 --directory "$WORK" >"$WORK/outside.log" 2>&1 &
HTTP_PID=$!
wait_for "outside server" 10 curl -fsS "http://10.199.0.2:8080/"
register nat "[{\"name\":\"n\",\"image\":\"$IMAGE\",\"command\":[\"sh\",\"-c\",\"wget -qO /dev/null http://10.199.0.2:8080/?from-task\"]}]"
n=$(run nat "$SUBNET")
awsb ecs wait tasks-stopped --cluster c1 --tasks "$n"
expect_eq "NATed task reached the outside" "0" "$(field "$n" 'containers[0].exitCode')"
expect_eq "the outside saw the host's address" "10.199.0.1" "$(grep 'GET /?from-task ' "$WORK/outside.log" | awk '{print $1}')"
kill "$HTTP_PID"; HTTP_PID=""
ip link del berthtest-o0; ip netns del "$OUT_NS"
iptables -P FORWARD "$FORWARD0"

# 3b. EC2 launch type on this host (--register-instance): bridge mode with a dynamic and
#     a fixed host port, host mode, none.
dnat_rules() { iptables -t nat -S BERTH-DNAT 2>/dev/null | grep -c berth-task || true; }
wait_registered c1
ec2def() { # FAMILY MODE CONTAINERS
  awsb ecs register-task-definition --family "$1" --requires-compatibilities EC2 --network-mode "$2" \
    --cpu 128 --memory 128 --container-definitions "$3" >/dev/null
}
ec2run() { awsb ecs run-task --cluster c1 --launch-type EC2 --task-definition "$1" --query 'tasks[].taskArn' --output text | tr '\t' '\n' | awk -F/ '{print $NF}'; }
HOST_IP=$(ip -4 -o route get 1.1.1.1 2>/dev/null | grep -o 'src [0-9.]*' | cut -d' ' -f2 || true)
ec2def bweb bridge "[{\"name\":\"web\",\"image\":\"$IMAGE\",\"stopTimeout\":2,\"command\":[\"sh\",\"-c\",\"mkdir -p /www && echo bridged > /www/index.html && exec httpd -f -p 80 -h /www\"],\"portMappings\":[{\"containerPort\":80}]}]"
bw=$(ec2run bweb)
awsb ecs wait tasks-running --cluster c1 --tasks "$bw"
HP=$(field "$bw" 'containers[0].networkBindings[0].hostPort')
expect_eq "bridge: a dynamic host port from the ephemeral range" "1" "$([ "$HP" -ge 49153 ] && [ "$HP" -le 65535 ] && echo 1 || echo 0)"
expect_eq "bridge: the binding names the container port" "80 tcp 0.0.0.0" "$(field "$bw" 'containers[0].networkBindings[0].[containerPort,protocol,bindIP]' | tr '\t' ' ')"
expect_eq "bridge: reachable on 127.0.0.1:hostPort" "bridged" "$(curl -fsS --max-time 10 "http://127.0.0.1:$HP/")"
if [ -n "$HOST_IP" ]; then
  expect_eq "bridge: reachable on the host's address" "bridged" "$(curl -fsS --max-time 10 "http://$HOST_IP:$HP/")"
fi
ec2def bfixed bridge "[{\"name\":\"web\",\"image\":\"$IMAGE\",\"stopTimeout\":2,\"command\":[\"sh\",\"-c\",\"mkdir -p /www && echo fixed > /www/index.html && exec httpd -f -p 80 -h /www\"],\"portMappings\":[{\"containerPort\":80,\"hostPort\":18088}]}]"
bf=$(ec2run bfixed)
awsb ecs wait tasks-running --cluster c1 --tasks "$bf"
expect_eq "bridge: a fixed host port answers" "fixed" "$(curl -fsS --max-time 10 "http://127.0.0.1:18088/")"
expect_eq "bridge: the fixed port taken fails placement" "RESOURCE:PORTS" "$(awsb ecs run-task --cluster c1 --launch-type EC2 --task-definition bfixed --query 'failures[0].reason' --output text)"
ec2def hweb host "[{\"name\":\"web\",\"image\":\"$IMAGE\",\"stopTimeout\":2,\"command\":[\"sh\",\"-c\",\"mkdir -p /www && echo hosted > /www/index.html && exec httpd -f -p 18089 -h /www\"],\"portMappings\":[{\"containerPort\":18089}]}]"
hw=$(ec2run hweb)
awsb ecs wait tasks-running --cluster c1 --tasks "$hw"
expect_eq "host: the container listens in the host's namespace" "hosted" "$(curl -fsS --max-time 10 "http://127.0.0.1:18089/")"
expect_eq "host: the binding reports the host port" "18089" "$(field "$hw" 'containers[0].networkBindings[0].hostPort')"
ec2def nonet none "[{\"name\":\"n\",\"image\":\"$IMAGE\",\"command\":[\"sh\",\"-c\",\"exit \$(ls /sys/class/net | wc -l)\"]}]"
nn=$(ec2run nonet)
awsb ecs wait tasks-stopped --cluster c1 --tasks "$nn"
expect_eq "none: loopback only (one interface)" "1" "$(field "$nn" 'containers[0].exitCode')"
for t in "$bw" "$bf" "$hw"; do awsb ecs stop-task --cluster c1 --task "$t" >/dev/null; done
awsb ecs wait tasks-stopped --cluster c1 --tasks "$bw" "$bf" "$hw"
expect_eq "bridge: port mappings removed at stop" "0" "$(dnat_rules)"
expect_eq "bridge: the port no longer answers" "fail" "$(curl -fsS --max-time 2 "http://127.0.0.1:$HP/" >/dev/null 2>&1 && echo answered || echo fail)"
# 50 tasks in each of bridge (with a port mapping), host and none leave nothing behind.
ec2def bquick bridge "[{\"name\":\"q\",\"image\":\"$IMAGE\",\"command\":[\"true\"],\"portMappings\":[{\"containerPort\":80}]}]"
ec2def hquick host "[{\"name\":\"q\",\"image\":\"$IMAGE\",\"command\":[\"true\"]}]"
ec2def nquick none "[{\"name\":\"q\",\"image\":\"$IMAGE\",\"command\":[\"true\"]}]"
for fam in bquick hquick nquick; do
  ok=0
  for round in 1 2 3 4 5; do
    ids=$(awsb ecs run-task --cluster c1 --launch-type EC2 --task-definition "$fam" --count 10 --query 'tasks[].taskArn' --output text)
    awsb ecs wait tasks-stopped --cluster c1 --tasks $ids
    ok=$((ok + $(awsb ecs describe-tasks --cluster c1 --tasks $ids --query 'tasks[?containers[0].exitCode==`0`] | length(@)')))
  done
  expect_eq "$fam: 50 tasks ran" "50" "$ok"
done
expect_eq "after 150 EC2 tasks: no port mappings left" "0" "$(dnat_rules)"
expect_eq "after 150 EC2 tasks: only the bridge is left of Berth's links (and the httpd task's)" "2" "$(host_links)"
expect_eq "after 150 EC2 tasks: no namespace pins but the httpd task's" "$((NS0 + 1))" "$(netns_mounts)"

# 4. Addresses come back: 50 tasks through a /28 (11 usable addresses), 10 at a time.
VPC=$(awsb ec2 create-vpc --cidr-block 10.198.0.0/16 --query Vpc.VpcId --output text)
SMALL=$(awsb ec2 create-subnet --vpc-id "$VPC" --cidr-block 10.198.0.0/28 --availability-zone us-east-1b --query Subnet.SubnetId --output text)
register quick "[{\"name\":\"q\",\"image\":\"$IMAGE\",\"command\":[\"true\"]}]"
ok=0
for round in 1 2 3 4 5; do
  ids=$(run quick "$SMALL" --count 10)
  awsb ecs wait tasks-stopped --cluster c1 --tasks $ids
  ok=$((ok + $(awsb ecs describe-tasks --cluster c1 --tasks $ids --query 'tasks[?containers[0].exitCode==`0`] | length(@)')))
done
expect_eq "50 tasks through 11 addresses all ran" "50" "$ok"

# 5. An exhausted subnet fails the task with a reason; the running ones are untouched.
register sleeper "[{\"name\":\"s\",\"image\":\"$IMAGE\",\"command\":[\"sleep\",\"600\"],\"stopTimeout\":2}]"
held=$( { run sleeper "$SMALL" --count 10; run sleeper "$SMALL"; } )
awsb ecs wait tasks-running --cluster c1 --tasks $held
extra=$(run sleeper "$SMALL")
awsb ecs wait tasks-stopped --cluster c1 --tasks "$extra"
expect_eq "exhausted subnet: the reason" "ResourceInitializationError: There are no free IP addresses in the subnets [$SMALL]" "$(field "$extra" stoppedReason)"
expect_eq "exhausted subnet: the 11 others still run" "11" "$(awsb ecs describe-tasks --cluster c1 --tasks $held --query 'tasks[?lastStatus==`RUNNING`] | length(@)')"
awsb ecs list-tasks --cluster c1 --desired-status RUNNING --query taskArns --output text | tr '\t' '\n' | grep -v "$a" | while read -r t; do
  awsb ecs stop-task --cluster c1 --task "$t" >/dev/null
done
awsb ecs wait tasks-stopped --cluster c1 --tasks $held

# 6. A subnet whose range the host already routes elsewhere is refused, not taken over.
ip link add clash0 type veth peer name clash1 && ip addr add 10.197.0.1/24 dev clash0 && ip link set clash0 up
VPC2=$(awsb ec2 create-vpc --cidr-block 10.197.0.0/16 --query Vpc.VpcId --output text)
CLASH=$(awsb ec2 create-subnet --vpc-id "$VPC2" --cidr-block 10.197.0.0/24 --query Subnet.SubnetId --output text)
c=$(run quick "$CLASH")
awsb ecs wait tasks-stopped --cluster c1 --tasks "$c"
expect_eq "clashing subnet: the reason" "ResourceInitializationError: cannot attach the task's network interface: the subnet range 10.197.0.0/24 overlaps the host's route 10.197.0.0/24 on clash0" "$(field "$c" stoppedReason)"
expect_eq "clashing subnet: the host's route is untouched" "clash0" "$(ip -o route show 10.197.0.0/24 | awk '{print $3}')"
ip link del clash0

# 7. kill -9 of berth: the task keeps running and answering, and stops normally after.
kill9_berth
expect_eq "after kill -9 the task still answers" "ip-${IP_A//./-}.ec2.internal" "$(curl -fsS --max-time 10 "http://$IP_A/")"
start_berth --register-instance c1
expect_eq "after restart the task is RUNNING" "RUNNING" "$(field "$a" lastStatus)"
expect_eq "after restart it keeps its address" "$IP_A" "$(detail "$a" privateIPv4Address)"
expect_eq "after restart it still answers" "ip-${IP_A//./-}.ec2.internal" "$(curl -fsS --max-time 10 "http://$IP_A/")"
awsb ecs stop-task --cluster c1 --task "$a" >/dev/null
awsb ecs wait tasks-stopped --cluster c1 --tasks "$a"
expect_eq "stopped after restart" "STOPPED" "$(field "$a" lastStatus)"
expect_eq "its address no longer answers" "fail" "$(curl -fsS --max-time 2 "http://$IP_A/" >/dev/null 2>&1 && echo answered || echo fail)"
expect_eq "only the bridge is left of Berth's links" "1" "$(host_links)"

# 8. berth down removes every host change.
a2=$(run web "$SUBNET")
awsb ecs wait tasks-running --cluster c1 --tasks "$a2"
"$BERTH_BIN" down --data-dir "$BERTH_DATA" >/dev/null
BERTH_PID=""
expect_eq "after berth down: no Berth links" "0" "$(host_links)"
expect_eq "after berth down: no Berth iptables rules" "0" "$(berth_rules)"
expect_eq "after berth down: no namespace pins" "$NS0" "$(netns_mounts)"
finish
