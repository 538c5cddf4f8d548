#!/usr/bin/env bash
# Tasks as real containers, as a user runs them: push a locally built busybox image to
# Berth's registry, register task definitions, run-task, wait, read exit codes, reasons
# and logs (aws logs), and check what the supervisor guarantees: dependsOn order,
# memory limits, stopTimeout, the seccomp profile, and that nothing leaks.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images.sh"
if [ "$(id -u)" != 0 ] || ! { command -v crun || command -v runc; } >/dev/null; then
  echo "FAIL - tasks need root and crun or runc (scripts/setup installs both)" >&2; exit 1
fi
start_berth
push_task_image
awsb ecs create-cluster --cluster-name c1 >/dev/null
SUBNET=$(awsb ec2 describe-subnets --query 'Subnets[0].SubnetId' --output text)
NET="awsvpcConfiguration={subnets=[$SUBNET]}"

# register FAMILY CONTAINERS-JSON [CPU MEMORY]: a Fargate task definition.
register() {
  awsb ecs register-task-definition --family "$1" --requires-compatibilities FARGATE \
    --network-mode awsvpc --cpu "${3:-256}" --memory "${4:-512}" \
    --container-definitions "$2" --query taskDefinition.taskDefinitionArn --output text
}
# run FAMILY [extra args]: prints the task id.
run() {
  local fam="$1"; shift
  awsb ecs run-task --cluster c1 --launch-type FARGATE --task-definition "$fam" \
    --network-configuration "$NET" "$@" --query 'tasks[0].taskArn' --output text | awk -F/ '{print $NF}'
}
field() { awsb ecs describe-tasks --cluster c1 --tasks "$1" --query "tasks[0].$2" --output text; }
wait_stopped() { awsb ecs wait tasks-stopped --cluster c1 --tasks "$@"; }
logs_of() { awsb logs get-log-events --log-group-name "$1" --log-stream-name "$2" --start-from-head --query 'events[].message' --output text; }
awslogs() { echo "\"logConfiguration\":{\"logDriver\":\"awslogs\",\"options\":{\"awslogs-group\":\"/ecs/$1\",\"awslogs-region\":\"us-east-1\",\"awslogs-stream-prefix\":\"p\",\"awslogs-create-group\":\"true\"}}"; }

# 1. A task runs, exits with its code, and its output is in CloudWatch Logs.
register hello "[{\"name\":\"app\",\"image\":\"$IMAGE\",\"essential\":true,\"command\":[\"sh\",\"-c\",\"echo hello from berth; echo to stderr >&2; id -u; exit 3\"],\"user\":\"www\",$(awslogs hello)}]" >/dev/null
t=$(run hello --started-by e2e --tags key=k,value=v)
expect_eq "run-task answers a task id" "32" "${#t}"
wait_stopped "$t"
expect_eq "task stopped" "STOPPED" "$(field "$t" lastStatus)"
expect_eq "exit code" "3" "$(field "$t" 'containers[0].exitCode')"
expect_eq "stop code" "EssentialContainerExited" "$(field "$t" stopCode)"
expect_eq "stopped reason" "Essential container in task exited" "$(field "$t" stoppedReason)"
expect_eq "startedBy kept" "e2e" "$(field "$t" startedBy)"
expect_eq "tags with include TAGS" "k=v" "$(awsb ecs describe-tasks --cluster c1 --tasks "$t" --include TAGS --query 'tasks[0].tags[0].[key,value]' --output text | tr '\t' '=')"
expect_eq "a new task is PROVISIONING" "PROVISIONING" "$(awsb ecs run-task --cluster c1 --launch-type FARGATE --task-definition hello --network-configuration "$NET" --overrides '{"containerOverrides":[{"name":"app","command":["true"]}]}' --query 'tasks[0].lastStatus' --output text)"
for ts in createdAt pullStartedAt pullStoppedAt startedAt stoppingAt stoppedAt executionStoppedAt; do
  expect_eq "timestamp $ts is set" "1" "$([ "$(field "$t" "$ts")" != None ] && echo 1 || echo 0)"
done
expect_eq "image digest reported" "sha256" "$(field "$t" 'containers[0].imageDigest' | cut -d: -f1)"
# stdout and stderr are two pipes, so only the order within each is kept.
expect_eq "logs: stdout, stderr and the user's uid" "33,hello from berth,to stderr" "$(logs_of /ecs/hello "p/app/$t" | tr '\t' '\n' | sort | paste -sd,)"
expect_eq "log group created (awslogs-create-group)" "/ecs/hello" "$(awsb logs describe-log-groups --log-group-name-prefix /ecs/hello --query 'logGroups[0].logGroupName' --output text)"
ids=$(awsb ecs list-tasks --cluster c1 --desired-status RUNNING --query 'taskArns' --output text)
[ -z "$ids" ] || wait_stopped $ids
expect_eq "list-tasks STOPPED" "2" "$(awsb ecs list-tasks --cluster c1 --desired-status STOPPED --query 'length(taskArns)')"

# 2. Overrides: command and environment.
t=$(run hello --overrides '{"containerOverrides":[{"name":"app","command":["sh","-c","echo $GREETING; exit 0"],"environment":[{"name":"GREETING","value":"overridden"}]}]}')
wait_stopped "$t"
expect_eq "override exit code" "0" "$(field "$t" 'containers[0].exitCode')"
expect_eq "override output" "overridden" "$(logs_of /ecs/hello "p/app/$t")"
expect_error "override for an unknown container" InvalidParameterException awsb ecs run-task --cluster c1 --launch-type FARGATE --task-definition hello --network-configuration "$NET" --overrides '{"containerOverrides":[{"name":"nope","command":["true"]}]}'
expect_error "invalid Fargate size override" InvalidParameterException awsb ecs run-task --cluster c1 --launch-type FARGATE --task-definition hello --network-configuration "$NET" --overrides '{"cpu":"256","memory":"4096"}'
expect_eq "no task made by the invalid runs" "3" "$(awsb ecs list-tasks --cluster c1 --desired-status STOPPED --query 'length(taskArns)')"

# 3. Count: several tasks at once, each its own.
ids=$(awsb ecs run-task --cluster c1 --launch-type FARGATE --task-definition hello --network-configuration "$NET" --count 3 --overrides '{"containerOverrides":[{"name":"app","command":["true"]}]}' --query 'tasks[].taskArn' --output text)
wait_stopped $ids
expect_eq "count 3: all exited 0" "0 0 0" "$(awsb ecs describe-tasks --cluster c1 --tasks $ids --query 'tasks[].containers[0].exitCode' --output text | tr '\t' ' ')"

# 3b. environmentFiles: variables from .env objects in Berth's S3. `environment` wins
#     over them, and an earlier file over a later one.
awsb s3 mb s3://task-config >/dev/null
printf '# settings\nFROM_FILE=one\nSHARED=file1\nTOLD=file\nURL=http://x/?a=b\n' >"$WORK/a.env"
printf 'SHARED=file2\nSECOND=two\n' >"$WORK/b.env"
awsb s3 cp "$WORK/a.env" s3://task-config/app/a.env >/dev/null
awsb s3 cp "$WORK/b.env" s3://task-config/app/b.env >/dev/null
register envfiles "[{\"name\":\"app\",\"image\":\"$IMAGE\",\"command\":[\"sh\",\"-c\",\"echo \$FROM_FILE \$SHARED \$TOLD \$SECOND \$URL\"],
  \"environment\":[{\"name\":\"TOLD\",\"value\":\"definition\"}],
  \"environmentFiles\":[{\"value\":\"arn:aws:s3:::task-config/app/a.env\",\"type\":\"s3\"},{\"value\":\"arn:aws:s3:::task-config/app/b.env\",\"type\":\"s3\"}],$(awslogs envfiles)}]" >/dev/null
t=$(run envfiles)
wait_stopped "$t"
expect_eq "environment files: values and precedence" "one file1 definition two http://x/?a=b" "$(logs_of /ecs/envfiles "p/app/$t")"
# A missing file stops the task before it starts, with the ECS agent's reason.
t=$(run envfiles --overrides '{"containerOverrides":[{"name":"app","environmentFiles":[{"value":"arn:aws:s3:::task-config/missing.env","type":"s3"}]}]}')
wait_stopped "$t"
expect_eq "missing environment file: stopped reason" "ResourceInitializationError: failed to download env files" "$(field "$t" stoppedReason | cut -d: -f1-2)"
expect_eq "missing environment file: the key named" "1" "$(field "$t" stoppedReason | grep -c 'key missing.env from bucket task-config.*NoSuchKey')"

# 4. A container that exceeds its memory limit is reported as killed for memory.
register oom "[{\"name\":\"hog\",\"image\":\"$IMAGE\",\"memory\":16,\"command\":[\"sh\",\"-c\",\"exec dd if=/dev/zero of=/dev/null bs=64M count=1\"]}]" >/dev/null
t=$(run oom)
wait_stopped "$t"
expect_eq "OOM reason" "OutOfMemoryError: Container killed due to memory usage" "$(field "$t" 'containers[0].reason')"
expect_eq "OOM exit code" "137" "$(field "$t" 'containers[0].exitCode')"

# 5. dependsOn: app starts only after init completed (log timestamps show the order);
#    a SUCCESS dependency that fails keeps its dependent from ever starting.
register deps "[{\"name\":\"init\",\"image\":\"$IMAGE\",\"essential\":false,\"command\":[\"sh\",\"-c\",\"sleep 0.3; echo init done\"],$(awslogs deps)},
  {\"name\":\"app\",\"image\":\"$IMAGE\",\"dependsOn\":[{\"containerName\":\"init\",\"condition\":\"SUCCESS\"}],\"command\":[\"sh\",\"-c\",\"echo app started\"],$(awslogs deps)}]" >/dev/null
t=$(run deps)
wait_stopped "$t"
init_ts=$(awsb logs get-log-events --log-group-name /ecs/deps --log-stream-name "p/init/$t" --start-from-head --query 'events[0].timestamp' --output text)
app_ts=$(awsb logs get-log-events --log-group-name /ecs/deps --log-stream-name "p/app/$t" --start-from-head --query 'events[0].timestamp' --output text)
expect_eq "dependsOn SUCCESS: app ran after init" "1" "$([ "$app_ts" -ge "$init_ts" ] && echo 1 || echo 0)"
expect_eq "dependsOn: both exited 0" "0 0" "$(awsb ecs describe-tasks --cluster c1 --tasks "$t" --query 'tasks[0].containers[].exitCode' --output text | tr '\t' ' ')"
t=$(run deps --overrides '{"containerOverrides":[{"name":"init","command":["sh","-c","exit 4"]}]}')
wait_stopped "$t"
expect_eq "failed SUCCESS dependency: app never started" "None" "$(field "$t" "containers[?name=='app'].exitCode | [0]")"
expect_eq "failed SUCCESS dependency: reason" "CannotStartContainerError" "$(field "$t" "containers[?name=='app'].reason | [0]" | cut -d: -f1)"

# A task volume is shared by the task's containers; secrets need a service Berth lacks.
awsb ecs register-task-definition --family shared --requires-compatibilities FARGATE --network-mode awsvpc --cpu 256 --memory 512 \
  --volumes '[{"name":"data","host":{}}]' --container-definitions "[
  {\"name\":\"writer\",\"image\":\"$IMAGE\",\"essential\":false,\"mountPoints\":[{\"sourceVolume\":\"data\",\"containerPath\":\"/data\"}],\"command\":[\"sh\",\"-c\",\"echo shared > /data/f\"]},
  {\"name\":\"reader\",\"image\":\"$IMAGE\",\"dependsOn\":[{\"containerName\":\"writer\",\"condition\":\"SUCCESS\"}],\"mountPoints\":[{\"sourceVolume\":\"data\",\"containerPath\":\"/in\",\"readOnly\":true}],
   \"command\":[\"sh\",\"-c\",\"cat /in/f; touch /in/g 2>/dev/null || echo read-only\"],$(awslogs shared)}]" >/dev/null
t=$(run shared)
wait_stopped "$t"
expect_eq "volume shared between containers, read-only where asked" "shared	read-only" "$(logs_of /ecs/shared "p/reader/$t")"
register secret "[{\"name\":\"app\",\"image\":\"$IMAGE\",\"secrets\":[{\"name\":\"PW\",\"valueFrom\":\"arn:aws:secretsmanager:us-east-1:000000000000:secret:pw\"}]}]" >/dev/null
t=$(run secret)
wait_stopped "$t"
expect_eq "secrets: a clear failure, not a task without them" "ResourceInitializationError" "$(field "$t" stoppedReason | cut -d: -f1)"

# 6. StopTask: a process that ignores SIGTERM is killed after stopTimeout.
register stubborn "[{\"name\":\"app\",\"image\":\"$IMAGE\",\"stopTimeout\":2,\"command\":[\"sh\",\"-c\",\"trap '' TERM; echo ready; while true; do sleep 1; done\"],$(awslogs stubborn)}]" >/dev/null
t=$(run stubborn)
awsb ecs wait tasks-running --cluster c1 --tasks "$t"
expect_eq "running" "RUNNING" "$(field "$t" lastStatus)"
expect_eq "cluster counts the running task" "1" "$(awsb ecs describe-clusters --clusters c1 --query 'clusters[0].runningTasksCount')"
awsb ecs stop-task --cluster c1 --task "$t" --reason "e2e says stop" >/dev/null
wait_stopped "$t"
expect_eq "stopTimeout: killed" "137" "$(field "$t" 'containers[0].exitCode')"
expect_eq "stop code" "UserInitiated" "$(field "$t" stopCode)"
expect_eq "stop reason" "e2e says stop" "$(field "$t" stoppedReason)"
waited=$(python3 -c "print(int($(field "$t" executionStoppedAt) - $(field "$t" stoppingAt) >= 2))")
expect_eq "SIGKILL came no sooner than stopTimeout" "1" "$waited"
# Containers stop in the reverse of their dependency order: the app (which waited for its
# sidecar to start) gets SIGTERM first, and the sidecar only once the app has exited (the
# app takes a moment to exit: stopped together, the sidecar would not see it done).
awsb ecs register-task-definition --family stoporder --requires-compatibilities FARGATE --network-mode awsvpc --cpu 256 --memory 512 \
  --volumes '[{"name":"s","host":{}}]' --container-definitions "[
  {\"name\":\"sidecar\",\"image\":\"$IMAGE\",\"mountPoints\":[{\"sourceVolume\":\"s\",\"containerPath\":\"/s\"}],
   \"command\":[\"sh\",\"-c\",\"trap '[ -f /s/app-done ] && echo sidecar-after-app || echo sidecar-before-app; exit 0' TERM; while true; do sleep 0.1; done\"],$(awslogs stoporder)},
  {\"name\":\"app\",\"image\":\"$IMAGE\",\"dependsOn\":[{\"containerName\":\"sidecar\",\"condition\":\"START\"}],\"mountPoints\":[{\"sourceVolume\":\"s\",\"containerPath\":\"/s\"}],
   \"command\":[\"sh\",\"-c\",\"trap 'sleep 0.5; touch /s/app-done; exit 0' TERM; while true; do sleep 0.1; done\"],$(awslogs stoporder)}]" >/dev/null
t=$(run stoporder)
awsb ecs wait tasks-running --cluster c1 --tasks "$t"
awsb ecs stop-task --cluster c1 --task "$t" >/dev/null
wait_stopped "$t"
expect_eq "StopTask: the sidecar stopped after the app that depends on it" "sidecar-after-app" "$(logs_of /ecs/stoporder "p/sidecar/$t")"
expect_eq "StopTask: both exited on SIGTERM" "0 0" "$(awsb ecs describe-tasks --cluster c1 --tasks "$t" --query 'tasks[0].containers[].exitCode' --output text | tr '\t' ' ')"

# 7. The default seccomp profile and capabilities: mount, unshare and keyctl fail.
register probe "[{\"name\":\"app\",\"image\":\"$IMAGE\",\"command\":[\"sh\",\"-c\",\"/bin/probe | grep -E '^(keyctl|unshare_newns|mount|setns|ptrace_traceme|getpid)='; mount -t tmpfs none /mnt 2>/dev/null; echo mount-cmd=\$?; unshare -n true 2>/dev/null; echo unshare-cmd=\$?; grep CapEff /proc/self/status | tr -d '\\\\t'\"],$(awslogs probe)}]" >/dev/null
t=$(run probe)
wait_stopped "$t"
out=$(logs_of /ecs/probe "p/app/$t" | tr '\t' ' ')
for k in keyctl unshare_newns setns ptrace_traceme mount; do
  expect_eq "seccomp: $k is refused" "$k=EPERM" "$(grep -oE "(^| )$k=[A-Z]+" <<<"$out" | tr -d ' ' | head -1)"
done
expect_eq "seccomp: getpid works" "getpid=OK" "$(grep -oE "getpid=[A-Z]+" <<<"$out")"
expect_eq "Docker's 14 default capabilities" "CapEff:00000000a80425fb" "$(grep -oE "CapEff:[0-9a-f]+" <<<"$out")"
expect_eq "mount(8) fails in a task" "mount-cmd=1" "$(grep -oE "mount-cmd=[0-9]+" <<<"$out")"
expect_eq "unshare(1) fails in a task" "unshare-cmd=1" "$(grep -oE "unshare-cmd=[0-9]+" <<<"$out")"

# 8. Faults: a missing image and a bad command stop the task with ECS's reasons.
register missing "[{\"name\":\"app\",\"image\":\"$REG/box:nope\"}]" >/dev/null
t=$(run missing)
wait_stopped "$t"
expect_eq "missing image: CannotPullContainerError" "CannotPullContainerError" "$(field "$t" stoppedReason | cut -d: -f1)"
expect_eq "missing image: stop code" "TaskFailedToStart" "$(field "$t" stopCode)"
register badcmd "[{\"name\":\"app\",\"image\":\"$IMAGE\",\"command\":[\"/no/such/binary\"]}]" >/dev/null
t=$(run badcmd)
wait_stopped "$t"
expect_eq "bad command: CannotStartContainerError" "CannotStartContainerError" "$(field "$t" 'containers[0].reason' | cut -d: -f1)"
# A layer corrupted in the registry's storage is refused by digest, never run.
make_image "$WORK/layout" corrupt corrupt-me
skopeo --insecure-policy copy --dest-tls-verify=false "oci:$WORK/layout:corrupt" "docker://$REG/box:corrupt" >/dev/null
layer=$(skopeo inspect --format '{{index .Layers 0}}' "oci:$WORK/layout:corrupt" | cut -d: -f2)
printf 'garbage' | dd of="$BERTH_DATA/registry/blobs/sha256/${layer:0:2}/$layer" bs=1 seek=100 conv=notrunc 2>/dev/null
register corrupt "[{\"name\":\"app\",\"image\":\"$REG/box:corrupt\"}]" >/dev/null
t=$(run corrupt)
wait_stopped "$t"
expect_eq "corrupt layer: CannotPullContainerError" "CannotPullContainerError" "$(field "$t" stoppedReason | cut -d: -f1)"
expect_eq "corrupt layer: the reason names the digest check" "1" "$(field "$t" stoppedReason | grep -c 'does not match')"
register unreachable "[{\"name\":\"app\",\"image\":\"127.0.0.1:9/box:v1\"}]" >/dev/null
t=$(run unreachable)
wait_stopped "$t"
expect_eq "unreachable registry: CannotPullContainerError" "CannotPullContainerError" "$(field "$t" stoppedReason | cut -d: -f1)"

# 9. Health checks drive healthStatus, and a HEALTHY dependency waits for them; with
#    initProcessEnabled, berth-init is PID 1 and passes SIGTERM on (exit 143, not a kill).
register health "[{\"name\":\"db\",\"image\":\"$IMAGE\",\"essential\":false,\"linuxParameters\":{\"initProcessEnabled\":true},
  \"command\":[\"sh\",\"-c\",\"cat /proc/1/cmdline | tr '\\\\0' ' '; echo; touch /tmp/ready; exec sleep 600\"],$(awslogs health),
  \"healthCheck\":{\"command\":[\"CMD-SHELL\",\"test -f /tmp/ready\"],\"interval\":5,\"timeout\":2,\"retries\":2}},
  {\"name\":\"app\",\"image\":\"$IMAGE\",\"dependsOn\":[{\"containerName\":\"db\",\"condition\":\"HEALTHY\"}],\"command\":[\"sh\",\"-c\",\"echo db is healthy\"],$(awslogs health)}]" >/dev/null
t=$(run health)
wait_stopped "$t"
expect_eq "health: db HEALTHY" "HEALTHY" "$(field "$t" "containers[?name=='db'].healthStatus | [0]")"
expect_eq "health: app ran after db was healthy" "db is healthy" "$(logs_of /ecs/health "p/app/$t")"
expect_eq "init: PID 1 is berth-init" "/sbin/berth-init -- sh -c" "$(logs_of /ecs/health "p/db/$t" | cut -d' ' -f1-4)"
expect_eq "init: SIGTERM passed to the command" "143" "$(field "$t" "containers[?name=='db'].exitCode | [0]")"

# 10. readonlyRootFilesystem (the limits in the cgroups are cgroups.sh's, in either layout).
register limits "[{\"name\":\"app\",\"image\":\"$IMAGE\",\"memory\":300,\"readonlyRootFilesystem\":true,\"stopTimeout\":1,
  \"command\":[\"sh\",\"-c\",\"touch /x 2>/dev/null; echo touch=\$?; exec sleep 600\"],$(awslogs limits)}]" 512 1024 >/dev/null
t=$(run limits)
awsb ecs wait tasks-running --cluster c1 --tasks "$t"
log_has() { [ "$(logs_of "$1" "$2")" == "$3" ]; }
if wait_for "a running task's output in get-log-events" 5 log_has /ecs/limits "p/app/$t" "touch=1"; then
  pass "output readable while the task runs"
else
  fail "output readable while the task runs"
fi
expect_eq "still running while its output is read" "RUNNING" "$(field "$t" lastStatus)"
awsb ecs stop-task --cluster c1 --task "$t" >/dev/null
wait_stopped "$t"
expect_eq "read-only root filesystem" "touch=1" "$(logs_of /ecs/limits "p/app/$t")"

# 11. Fifty tasks at once, all stopped and accounted for.
all=""
for i in 1 2 3 4 5; do
  all="$all $(awsb ecs run-task --cluster c1 --launch-type FARGATE --task-definition hello --network-configuration "$NET" --count 10 --overrides '{"containerOverrides":[{"name":"app","command":["sh","-c","echo x"]}]}' --query 'tasks[].taskArn' --output text)"
done
wait_stopped $all
expect_eq "50 tasks exited 0" "50" "$(awsb ecs describe-tasks --cluster c1 --tasks $all --query 'tasks[].containers[0].exitCode' --output text | tr '\t' '\n' | grep -c '^0$')"

# 12. Tasks outlive the server: after SIGTERM and after kill -9 of berth, a new berth
#     adopts the running task and can stop it.
register sleeper "[{\"name\":\"app\",\"image\":\"$IMAGE\",\"stopTimeout\":1,\"command\":[\"sleep\",\"600\"]}]" >/dev/null
t=$(run sleeper)
awsb ecs wait tasks-running --cluster c1 --tasks "$t"
stop_berth
expect_eq "supervisor survives berth's SIGTERM" "1" "$(pgrep -f "berth shim $BERTH_DATA/tasks/$t" | wc -l)"
start_berth
kill9_berth
start_berth
expect_eq "adopted task still RUNNING" "RUNNING" "$(field "$t" lastStatus)"
awsb ecs stop-task --cluster c1 --task "$t" >/dev/null
wait_stopped "$t"
expect_eq "adopted task stopped by the new berth" "137" "$(field "$t" 'containers[0].exitCode')"
# An acknowledged RunTask survives kill -9 at once: the task still runs to its end.
register quick "[{\"name\":\"app\",\"image\":\"localhost:$BERTH_PORT/box:v1\",\"command\":[\"sh\",\"-c\",\"exit 5\"]}]" >/dev/null
t=$(run quick)
kill9_berth
start_berth
wait_stopped "$t"
expect_eq "task acknowledged before kill -9 ran to its end" "5" "$(field "$t" 'containers[0].exitCode')"
# berth down stops the server, then the tasks (within their stopTimeout).
t=$(run sleeper)
awsb ecs wait tasks-running --cluster c1 --tasks "$t"
"$BERTH_BIN" down --data-dir "$BERTH_DATA" >/dev/null
wait "$BERTH_PID" 2>/dev/null || true; BERTH_PID=""
expect_eq "berth down: no supervisor left" "0" "$(pgrep -f "berth shim $BERTH_DATA" | wc -l)"
expect_eq "berth down: no container left" "0" "$(find "$BERTH_DATA/oci-state" -mindepth 1 -maxdepth 1 -type d | wc -l)"
start_berth
wait_stopped "$t"
expect_eq "berth down: the task was recorded STOPPED" "STOPPED" "$(field "$t" lastStatus)"

# 13. Nothing leaks: no supervisor, mount, cgroup or task directory outlives its task.
expect_eq "no supervisors left" "0" "$(pgrep -f "berth shim $BERTH_DATA" | wc -l)"
expect_eq "no mounts left" "0" "$(grep -c "$BERTH_DATA" /proc/mounts || true)"
ran=$(awsb ecs list-tasks --cluster c1 --desired-status STOPPED --query 'taskArns[]' --output text | tr '\t' '\n' | awk -F/ '{print $NF}')
expect_eq "every task accounted for" "1" "$([ "$(wc -w <<<"$ran")" -ge 72 ] && echo 1 || echo 0)"
expect_eq "no cgroups left" "0" "$(for id in $ran; do find /sys/fs/cgroup -maxdepth 6 -type d -name "$id" 2>/dev/null; done | wc -l)"
expect_eq "no task directories left" "0" "$(ls "$BERTH_DATA/tasks" | wc -l)"
expect_eq "server still up" "200" "$(curl -s -o /dev/null -w '%{http_code}' "$BERTH_URL/_berth/health")"

rm -rf "$WORK"
echo "$PASSES passed, $FAILURES failed"
[ "$FAILURES" -eq 0 ]
