#!/usr/bin/env bash
# What EC2 launch type tasks on this host (--register-instance) may have that Fargate
# tasks may not, as a user sees it: volumes with AWS's launch-type rules (a host
# sourcePath bind mount, docker volumes with the local driver in task and shared scope
# with autoprovision, volumesFrom read-only when asked, and the errors), and privileged
# containers.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images.sh"
if [ "$(id -u)" != 0 ]; then
  echo "FAIL - tasks need root" >&2; exit 1
fi
start_berth --register-instance c1
push_task_image
awsb ecs create-cluster --cluster-name c1 >/dev/null
wait_registered c1

# ec2def FAMILY VOLUMES CONTAINERS: an EC2 task definition (network mode none).
ec2def() {
  awsb ecs register-task-definition --family "$1" --requires-compatibilities EC2 --network-mode none \
    --cpu 128 --memory 128 --volumes "$2" --container-definitions "$3" >/dev/null
}
run() { awsb ecs run-task --cluster c1 --launch-type EC2 --task-definition "$1" --query 'tasks[0].taskArn' --output text | awk -F/ '{print $NF}'; }
field() { awsb ecs describe-tasks --cluster c1 --tasks "$1" --query "tasks[0].$2" --output text; }
logs() { awsb logs get-log-events --log-group-name /vol --log-stream-name "p/$1" --start-from-head --query 'events[].message' --output text | tr '\t' '\n'; }
LOG='"logConfiguration":{"logDriver":"awslogs","options":{"awslogs-group":"/vol","awslogs-region":"us-east-1","awslogs-stream-prefix":"p","awslogs-create-group":"true"}}'

# 1. A host path, made if missing, bound into the container.
HOSTDIR="$WORK/host/data"
ec2def hostvol "[{\"name\":\"h\",\"host\":{\"sourcePath\":\"$HOSTDIR\"}}]" \
  "[{\"name\":\"c\",\"image\":\"$IMAGE\",\"command\":[\"sh\",\"-c\",\"echo from-task > /data/out\"],\"mountPoints\":[{\"sourceVolume\":\"h\",\"containerPath\":\"/data\"}]}]"
t=$(run hostvol)
awsb ecs wait tasks-stopped --cluster c1 --tasks "$t"
expect_eq "sourcePath: the task exited 0" "0" "$(field "$t" 'containers[0].exitCode')"
expect_eq "sourcePath: the file is on the host" "from-task" "$(cat "$HOSTDIR/out" 2>/dev/null)"
expect_error "sourcePath is refused for Fargate" ClientException awsb ecs register-task-definition --family fg \
  --requires-compatibilities FARGATE --network-mode awsvpc --cpu 256 --memory 512 \
  --volumes "[{\"name\":\"h\",\"host\":{\"sourcePath\":\"/tmp\"}}]" --container-definitions "[{\"name\":\"c\",\"image\":\"$IMAGE\"}]"

# 2. A shared docker volume outlives the task that made it; the next task reads it.
ec2def shared "[{\"name\":\"s\",\"dockerVolumeConfiguration\":{\"scope\":\"shared\",\"autoprovision\":true,\"driver\":\"local\"}}]" \
  "[{\"name\":\"c\",\"image\":\"$IMAGE\",\"command\":[\"sh\",\"-c\",\"cat /s/note 2>/dev/null || echo none; cat /proc/sys/kernel/random/uuid > /s/note; cat /s/note\"],\"mountPoints\":[{\"sourceVolume\":\"s\",\"containerPath\":\"/s\"}],$LOG}]"
t1=$(run shared)
awsb ecs wait tasks-stopped --cluster c1 --tasks "$t1"
first=$(logs "c/$t1")
t2=$(run shared)
awsb ecs wait tasks-stopped --cluster c1 --tasks "$t2"
second=$(logs "c/$t2")
expect_eq "shared volume: empty for the first task" "none" "$(sed -n 1p <<<"$first")"
expect_eq "shared volume: the second task reads what the first wrote" "$(sed -n 2p <<<"$first")" "$(sed -n 1p <<<"$second")"
expect_eq "shared volume: kept under the data directory" "1" "$([ -f "$BERTH_DATA/volumes/s/note" ] && echo 1 || echo 0)"

# 3. A shared volume that does not exist, without autoprovision, fails the task.
ec2def noprov "[{\"name\":\"missing\",\"dockerVolumeConfiguration\":{\"scope\":\"shared\",\"autoprovision\":false}}]" \
  "[{\"name\":\"c\",\"image\":\"$IMAGE\",\"command\":[\"true\"],\"mountPoints\":[{\"sourceVolume\":\"missing\",\"containerPath\":\"/m\"}]}]"
t=$(run noprov)
awsb ecs wait tasks-stopped --cluster c1 --tasks "$t"
expect_eq "no autoprovision: the task fails to start" "TaskFailedToStart" "$(field "$t" stopCode)"
expect_eq "no autoprovision: the reason" "1" "$(field "$t" stoppedReason | grep -c 'volume missing does not exist and autoprovision is not enabled')"

# 4. Another volume driver is refused with a reason.
ec2def rexray "[{\"name\":\"r\",\"dockerVolumeConfiguration\":{\"scope\":\"task\",\"driver\":\"rexray/ebs\"}}]" \
  "[{\"name\":\"c\",\"image\":\"$IMAGE\",\"command\":[\"true\"],\"mountPoints\":[{\"sourceVolume\":\"r\",\"containerPath\":\"/r\"}]}]"
t=$(run rexray)
awsb ecs wait tasks-stopped --cluster c1 --tasks "$t"
expect_eq "other drivers: the reason" "1" "$(field "$t" stoppedReason | grep -c 'the rexray/ebs volume driver is not available')"

# 5. volumesFrom: the reader sees the writer's task-scoped volume, read-only as asked.
ec2def vfrom "[{\"name\":\"t\",\"dockerVolumeConfiguration\":{\"scope\":\"task\"}}]" \
  "[{\"name\":\"writer\",\"image\":\"$IMAGE\",\"essential\":false,\"command\":[\"sh\",\"-c\",\"echo shared-data > /v/a; exec sleep 60\"],\"stopTimeout\":2,\"mountPoints\":[{\"sourceVolume\":\"t\",\"containerPath\":\"/v\"}]},
    {\"name\":\"reader\",\"image\":\"$IMAGE\",\"command\":[\"sh\",\"-c\",\"until [ -f /v/a ]; do sleep 0.05; done; cat /v/a; touch /v/b 2>/dev/null && echo writable || echo read-only\"],\"volumesFrom\":[{\"sourceContainer\":\"writer\",\"readOnly\":true}],\"dependsOn\":[{\"containerName\":\"writer\",\"condition\":\"START\"}],$LOG}]"
t=$(run vfrom)
awsb ecs wait tasks-stopped --cluster c1 --tasks "$t"
expect_eq "volumesFrom: the reader sees the writer's file, read-only" "shared-data read-only" "$(logs "reader/$t" | paste -sd' ')"
expect_eq "task-scoped volumes go with the task" "0" "$(ls "$BERTH_DATA/tasks" | grep -c "$t" || true)"
# 6. privileged: the container may mount; an ordinary one may not (capabilities, seccomp).
MOUNT='mount -t tmpfs none /tmp && echo mounted'
ec2def priv "[]" "[{\"name\":\"c\",\"image\":\"$IMAGE\",\"privileged\":true,\"command\":[\"sh\",\"-c\",\"$MOUNT\"]}]"
ec2def unpriv "[]" "[{\"name\":\"c\",\"image\":\"$IMAGE\",\"command\":[\"sh\",\"-c\",\"$MOUNT\"]}]"
p=$(run priv); u=$(run unpriv)
awsb ecs wait tasks-stopped --cluster c1 --tasks "$p" "$u"
expect_eq "privileged: mount works" "0" "$(field "$p" 'containers[0].exitCode')"
expect_eq "not privileged: mount is refused" "1" "$([ "$(field "$u" 'containers[0].exitCode')" != 0 ] && echo 1 || echo 0)"
expect_error "privileged is refused for Fargate" ClientException awsb ecs register-task-definition --family fgp \
  --requires-compatibilities FARGATE --network-mode awsvpc --cpu 256 --memory 512 \
  --container-definitions "[{\"name\":\"c\",\"image\":\"$IMAGE\",\"privileged\":true}]"
"$BERTH_BIN" down --data-dir "$BERTH_DATA" >/dev/null
BERTH_PID=""
finish
