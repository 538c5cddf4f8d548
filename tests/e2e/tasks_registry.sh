#!/usr/bin/env bash
# Where task images come from: a registry that is not on loopback is reached over HTTPS
# unless `--insecure-registry` names it. Berth's own registry, bound to all addresses and
# named by this host's non-loopback address, stands in for such a registry.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images.sh"
HOSTIP="$(hostname -I 2>/dev/null | awk '{print $1}')"
if [ "$(id -u)" != 0 ] || [ -z "$HOSTIP" ]; then
  echo "FAIL - needs root and a non-loopback address (hostname -I printed '$HOSTIP')" >&2; exit 1
fi
BERTH_PORT="$(free_port)"
BERTH_BIND=0.0.0.0
start_berth --insecure-registry "$HOSTIP:$BERTH_PORT"
WORK="$(mktemp -d)"
make_task_image "$WORK/layout" v1
awsb ecr create-repository --repository-name box >/dev/null
skopeo --insecure-policy copy --dest-tls-verify=false "oci:$WORK/layout:v1" "docker://localhost:$BERTH_PORT/box:v1" >/dev/null
awsb ecs create-cluster --cluster-name c1 >/dev/null
SUBNET=$(awsb ec2 describe-subnets --query 'Subnets[0].SubnetId' --output text)
awsb ecs register-task-definition --family remote --requires-compatibilities FARGATE --network-mode awsvpc --cpu 256 --memory 512 \
  --container-definitions "[{\"name\":\"app\",\"image\":\"$HOSTIP:$BERTH_PORT/box:v1\",\"command\":[\"sh\",\"-c\",\"exit 6\"]}]" >/dev/null
run() { awsb ecs run-task --cluster c1 --launch-type FARGATE --task-definition remote --network-configuration "awsvpcConfiguration={subnets=[$SUBNET]}" --query 'tasks[0].taskArn' --output text; }
field() { awsb ecs describe-tasks --cluster c1 --tasks "$1" --query "tasks[0].$2" --output text; }

t=$(run)
awsb ecs wait tasks-stopped --cluster c1 --tasks "$t"
expect_eq "--insecure-registry: pulled over plain HTTP and ran" "6" "$(field "$t" 'containers[0].exitCode')"

# Without the flag the same registry is spoken to over HTTPS, and the pull fails clearly.
stop_berth
start_berth
t=$(run)
awsb ecs wait tasks-stopped --cluster c1 --tasks "$t"
expect_eq "without it: HTTPS, CannotPullContainerError" "CannotPullContainerError" "$(field "$t" stoppedReason | cut -d: -f1)"
expect_eq "the reason says what failed" "1" "$(field "$t" stoppedReason | grep -ciE 'tls|certificate|https|handshake')"

rm -rf "$WORK"
echo "$PASSES passed, $FAILURES failed"
[ "$FAILURES" -eq 0 ]
