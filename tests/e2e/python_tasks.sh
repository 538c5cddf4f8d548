#!/usr/bin/env bash
# Workers inside tasks, as users write them: a task from a Debian image with python3, the
# aws CLI and boto3 (python_image in images.sh, built once and cached) calls Berth itself
# through the AWS_ENDPOINT_URL and task-role credentials Berth gives tasks, with both
# clients, and its output lands in CloudWatch Logs.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images.sh"
if [ "$(id -u)" != 0 ] || ! { command -v crun || command -v runc; } >/dev/null; then
  echo "FAIL - tasks need root and crun or runc (scripts/setup installs both)" >&2; exit 1
fi
python_image
start_berth
REG="localhost:$BERTH_PORT"
awsb ecr create-repository --repository-name py >/dev/null
skopeo --insecure-policy copy --dest-tls-verify=false "oci:$PY_LAYOUT:py" "docker://$REG/py:1" >/dev/null
CLUSTER=$(awsb ecs create-cluster --cluster-name workers --query cluster.clusterArn --output text)
SUBNET=$(awsb ec2 describe-subnets --query 'Subnets[0].SubnetId' --output text)

# No keys in the task definition: the clients find the task role's credentials, the region
# and Berth's endpoint in the environment Berth sets, as they would on ECS.
WORKER='set -e
echo "endpoint=$AWS_ENDPOINT_URL"
echo "cli-version=$(aws --version 2>&1)"
python3 -c "import boto3, botocore; print(\"sdk-version=boto3/\" + boto3.__version__, \"botocore/\" + botocore.__version__)"
arn=$(aws ecs list-clusters --query "clusterArns[0]" --output text)
echo "cli=$arn"
python3 -c "import boto3; print(\"boto3=\" + boto3.client(\"ecs\").list_clusters()[\"clusterArns\"][0])"
echo done'
DEFS=$(WORKER="$WORKER" python3 -c 'import json, os, sys; print(json.dumps([{"name": "worker", "image": sys.argv[1],
  "command": ["sh", "-c", os.environ["WORKER"]], "logConfiguration": {"logDriver": "awslogs", "options": {
  "awslogs-group": "/ecs/py", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "p", "awslogs-create-group": "true"}}}]))' "$REG/py:1")
awsb ecs register-task-definition --family worker --requires-compatibilities FARGATE --network-mode awsvpc \
  --cpu 1024 --memory 2048 --task-role-arn arn:aws:iam::000000000000:role/worker --container-definitions "$DEFS" >/dev/null
T=$(awsb ecs run-task --cluster workers --launch-type FARGATE --task-definition worker \
  --network-configuration "awsvpcConfiguration={subnets=[$SUBNET]}" --query 'tasks[0].taskArn' --output text)
awsb ecs wait tasks-stopped --cluster workers --tasks "$T"
field() { awsb ecs describe-tasks --cluster workers --tasks "$T" --query "tasks[0].$1" --output text; }
logs() { awsb logs get-log-events --log-group-name /ecs/py --log-stream-name "p/worker/${T##*/}" --start-from-head --query 'events[].message' --output text | tr '\t' '\n'; }
expect_eq "the worker task exits 0" "0 STOPPED" "$(field 'containers[0].exitCode') $(field lastStatus)"
logged_done() { logs | grep -qx done; }
wait_for "the worker's last line in CloudWatch Logs" 10 logged_done || true
OUT=$(logs)
[ "$(field 'containers[0].exitCode')" = 0 ] || printf 'the worker printed:\n%s\n' "$OUT" >&2
line() { sed -n "s/^$1=//p" <<<"$OUT"; }
expect_eq "Berth gives the task AWS_ENDPOINT_URL" "1" "$(line endpoint | grep -c '^http://')"
expect_eq "aws CLI in the task: list-clusters through AWS_ENDPOINT_URL" "$CLUSTER" "$(line cli)"
expect_eq "boto3 in the task: list_clusters through AWS_ENDPOINT_URL" "$CLUSTER" "$(line boto3)"
# AWS_ENDPOINT_URL is honoured from aws-cli 1.29, boto3 1.28 and botocore 1.31 on.
at_least() { if [ -n "$1" ] && [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]; then echo yes; else echo "no: [$1]"; fi; }
CLI_V=$(line cli-version | sed -n 's|^aws-cli/\([0-9.]*\) .*|\1|p')
BOTO3_V=$(line sdk-version | sed -n 's|^boto3/\([0-9.]*\) .*|\1|p')
BOTOCORE_V=$(line sdk-version | sed -n 's|.* botocore/\([0-9.]*\)$|\1|p')
expect_eq "aws-cli in the image is 1.29 or later ($CLI_V)" yes "$(at_least "$CLI_V" 1.29.0)"
expect_eq "boto3 in the image is 1.28 or later ($BOTO3_V)" yes "$(at_least "$BOTO3_V" 1.28.0)"
expect_eq "botocore in the image is 1.31 or later ($BOTOCORE_V)" yes "$(at_least "$BOTOCORE_V" 1.31.0)"
finish
