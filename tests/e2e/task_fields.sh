#!/usr/bin/env bash
# Task-definition fields that change how a container runs, as a user sees them:
# restartPolicy (restarted in place, the task stays RUNNING, RestartCount in the metadata
# endpoint; ignored exit codes and short runs are not restarted), startTimeout (a
# dependent gives up), linuxParameters.capabilities (CapEff), dnsSearchDomains
# (resolv.conf), disableNetworking (loopback only), and the fields Berth refuses.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images.sh"
if [ "$(id -u)" != 0 ] || ! { command -v crun || command -v runc; } >/dev/null; then
  echo "FAIL - tasks need root and crun or runc (scripts/setup installs both)" >&2; exit 1
fi
start_berth --register-instance c1
push_task_image
awsb ecs create-cluster --cluster-name c1 >/dev/null
wait_registered c1
SUBNET=$(awsb ec2 describe-subnets --query 'Subnets[0].SubnetId' --output text)
NET="awsvpcConfiguration={subnets=[$SUBNET]}"

# fargate FAMILY CONTAINERS-JSON: register a Fargate task definition.
fargate() {
  awsb ecs register-task-definition --family "$1" --requires-compatibilities FARGATE \
    --network-mode awsvpc --cpu 256 --memory 512 --container-definitions "$2" \
    --query taskDefinition.taskDefinitionArn --output text
}
# bridge FAMILY CONTAINERS-JSON: register an EC2 task definition on Berth's bridge.
bridge() {
  awsb ecs register-task-definition --family "$1" --requires-compatibilities EC2 \
    --network-mode bridge --cpu 128 --memory 128 --container-definitions "$2" \
    --query taskDefinition.taskDefinitionArn --output text
}
run_fargate() {
  awsb ecs run-task --cluster c1 --launch-type FARGATE --task-definition "$1" \
    --network-configuration "$NET" --query 'tasks[0].taskArn' --output text | awk -F/ '{print $NF}'
}
run_ec2() { awsb ecs run-task --cluster c1 --launch-type EC2 --task-definition "$1" --query 'tasks[0].taskArn' --output text | awk -F/ '{print $NF}'; }
field() { awsb ecs describe-tasks --cluster c1 --tasks "$1" --query "tasks[0].$2" --output text; }
wait_stopped() { awsb ecs wait tasks-stopped --cluster c1 --tasks "$@"; }
logs_of() { awsb logs get-log-events --log-group-name /fields --log-stream-name "p/$1/$2" --start-from-head --query 'events[].message' --output text | tr '\t' '\n'; }
logged() { logs_of "$1" "$2" | grep -qx "$3"; }
LOG='"logConfiguration":{"logDriver":"awslogs","options":{"awslogs-group":"/fields","awslogs-region":"us-east-1","awslogs-stream-prefix":"p","awslogs-create-group":"true"}}'

# 1. restartPolicy. AWS restarts a container only once it has run restartAttemptPeriod
#    seconds (60 at least), so these containers run 61 s before they exit. Three tasks at
#    once: one restarted, one whose exit code is ignored, one that exits too soon.
#    The restarted container finds the file it wrote before (restarted in place), then
#    waits until the metadata endpoint says RestartCount 1.
fargate restart "[{\"name\":\"app\",\"image\":\"$IMAGE\",$LOG,
  \"restartPolicy\":{\"enabled\":true,\"ignoredExitCodes\":[3],\"restartAttemptPeriod\":60},
  \"command\":[\"sh\",\"-c\",\"if [ -f /ran ]; then echo restarted-in-place; until wget -qO- \$ECS_CONTAINER_METADATA_URI_V4 | grep -q '\\\"RestartCount\\\":1'; do sleep 0.2; done; echo restart-count-1; exec sleep 3600; fi; touch /ran; echo first-run; sleep 61; exit \${CODE:-1}\"]}]" >/dev/null
restarted=$(run_fargate restart)
ignored=$(awsb ecs run-task --cluster c1 --launch-type FARGATE --task-definition restart --network-configuration "$NET" \
  --overrides '{"containerOverrides":[{"name":"app","environment":[{"name":"CODE","value":"3"}]}]}' --query 'tasks[0].taskArn' --output text | awk -F/ '{print $NF}')
early=$(awsb ecs run-task --cluster c1 --launch-type FARGATE --task-definition restart --network-configuration "$NET" \
  --overrides '{"containerOverrides":[{"name":"app","command":["sh","-c","exit 1"]}]}' --query 'tasks[0].taskArn' --output text | awk -F/ '{print $NF}')
wait_stopped "$early"
expect_eq "restartPolicy: a container that ran less than restartAttemptPeriod is not restarted" "1 EssentialContainerExited" "$(field "$early" 'containers[0].exitCode') $(field "$early" stopCode)"
wait_for "the restarted container's RestartCount" 180 logged app "$restarted" restart-count-1
expect_eq "restartPolicy: restarted in place (its filesystem kept)" "first-run restarted-in-place restart-count-1" "$(logs_of app "$restarted" | paste -sd' ')"
expect_eq "restartPolicy: the task stays RUNNING" "RUNNING RUNNING" "$(field "$restarted" lastStatus) $(field "$restarted" 'containers[0].lastStatus')"
expect_eq "restartPolicy: a running container has no exit code" "None" "$(field "$restarted" 'containers[0].exitCode')"
wait_stopped "$ignored"
expect_eq "restartPolicy: an ignored exit code stops the task" "3 EssentialContainerExited" "$(field "$ignored" 'containers[0].exitCode') $(field "$ignored" stopCode)"
awsb ecs stop-task --cluster c1 --task "$restarted" >/dev/null
wait_stopped "$restarted"
expect_eq "restartPolicy: StopTask stops it for good" "STOPPED UserInitiated" "$(field "$restarted" lastStatus) $(field "$restarted" stopCode)"
expect_error "restartPolicy: restartAttemptPeriod below 60" ClientException fargate bad \
  "[{\"name\":\"app\",\"image\":\"$IMAGE\",\"restartPolicy\":{\"enabled\":true,\"restartAttemptPeriod\":10}}]"

# 2. startTimeout: app waits for setup to COMPLETE; setup runs on, so after setup's
#    startTimeout app gives up, and the task stops as failed to start.
fargate timeout "[{\"name\":\"setup\",\"image\":\"$IMAGE\",\"essential\":false,\"startTimeout\":2,\"command\":[\"sleep\",\"3600\"]},
  {\"name\":\"app\",\"image\":\"$IMAGE\",\"dependsOn\":[{\"containerName\":\"setup\",\"condition\":\"COMPLETE\"}],\"command\":[\"true\"]}]" >/dev/null
t=$(run_fargate timeout)
wait_stopped "$t"
expect_eq "startTimeout: the task failed to start" "TaskFailedToStart" "$(field "$t" stopCode)"
expect_eq "startTimeout: the dependent's reason" "CannotStartContainerError: dependency setup did not reach COMPLETE within its startTimeout of 2 seconds" "$(field "$t" "containers[?name=='app'].reason | [0]")"
expect_eq "startTimeout: the dependent never ran" "None" "$(field "$t" "containers[?name=='app'].exitCode | [0]")"

# 3. linuxParameters.capabilities: NET_RAW (bit 13) dropped, SYS_PTRACE (bit 19) added.
fargate caps "[{\"name\":\"app\",\"image\":\"$IMAGE\",$LOG,\"linuxParameters\":{\"capabilities\":{\"add\":[\"SYS_PTRACE\"],\"drop\":[\"NET_RAW\"]}},
  \"command\":[\"sh\",\"-c\",\"grep CapEff /proc/self/status | cut -f2\"]}]" >/dev/null
t=$(run_fargate caps)
wait_stopped "$t"
eff=$(logs_of app "$t")
expect_eq "capabilities: NET_RAW dropped, SYS_PTRACE added" "0 1" "$(( (0x$eff >> 13) & 1 )) $(( (0x$eff >> 19) & 1 ))"
expect_error "capabilities: Fargate adds only SYS_PTRACE" ClientException fargate bad \
  "[{\"name\":\"app\",\"image\":\"$IMAGE\",\"linuxParameters\":{\"capabilities\":{\"add\":[\"NET_ADMIN\"]}}}]"
expect_error "capabilities: unknown name" ClientException bridge bad \
  "[{\"name\":\"app\",\"image\":\"$IMAGE\",\"linuxParameters\":{\"capabilities\":{\"drop\":[\"NOPE\"]}}}]"
bridge dropall "[{\"name\":\"app\",\"image\":\"$IMAGE\",$LOG,\"linuxParameters\":{\"capabilities\":{\"add\":[\"KILL\"],\"drop\":[\"ALL\"]}},
  \"command\":[\"sh\",\"-c\",\"grep CapEff /proc/self/status | cut -f2\"]}]" >/dev/null
t=$(run_ec2 dropall)
wait_stopped "$t"
expect_eq "capabilities: drop ALL, add KILL leaves only KILL" "0000000000000020" "$(logs_of app "$t")"

# 4. dnsSearchDomains and disableNetworking (bridge mode), beside a container with neither.
bridge netfields "[{\"name\":\"search\",\"image\":\"$IMAGE\",\"essential\":false,$LOG,\"dnsSearchDomains\":[\"a.example\",\"b.example\"],
   \"command\":[\"sh\",\"-c\",\"grep ^search /etc/resolv.conf\"]},
  {\"name\":\"isolated\",\"image\":\"$IMAGE\",\"essential\":false,$LOG,\"disableNetworking\":true,
   \"command\":[\"sh\",\"-c\",\"tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | paste -sd,\"]},
  {\"name\":\"plain\",\"image\":\"$IMAGE\",$LOG,\"dependsOn\":[{\"containerName\":\"search\",\"condition\":\"COMPLETE\"},{\"containerName\":\"isolated\",\"condition\":\"COMPLETE\"}],
   \"command\":[\"sh\",\"-c\",\"tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | paste -sd,; grep -c '^search a.example' /etc/resolv.conf\"]}]" >/dev/null
t=$(run_ec2 netfields)
wait_stopped "$t"
expect_eq "dnsSearchDomains: resolv.conf's search line" "search a.example b.example" "$(logs_of search "$t")"
expect_eq "disableNetworking: loopback only" "lo" "$(logs_of isolated "$t")"
expect_eq "the task's other container: eth0, and no search line of another's" "eth0,lo 0" "$(logs_of plain "$t" | paste -sd' ')"
expect_error "dnsSearchDomains: refused with awsvpc" ClientException fargate bad \
  "[{\"name\":\"app\",\"image\":\"$IMAGE\",\"dnsSearchDomains\":[\"a.example\"]}]"
expect_error "disableNetworking: refused with awsvpc" ClientException fargate bad \
  "[{\"name\":\"app\",\"image\":\"$IMAGE\",\"disableNetworking\":true}]"

# 5. Fields Berth refuses rather than store and ignore.
refused() {
  local what="$1" extra="$2" out
  out=$(bridge refused "[{\"name\":\"app\",\"image\":\"$IMAGE\",$extra}]" 2>&1) || true
  if grep -q "(ClientException)" <<<"$out" && grep -q "$what is not supported by Berth yet" <<<"$out"; then pass "refused: $what"; else fail "refused: $what: got $out"; fi
}
refused "resourceRequirements of type GPU" '"resourceRequirements":[{"type":"GPU","value":"1"}]'
refused "resourceRequirements of type InferenceAccelerator" '"resourceRequirements":[{"type":"InferenceAccelerator","value":"device_1"}]'
refused "dockerSecurityOptions" '"dockerSecurityOptions":["no-new-privileges"]'
refused "credentialSpecs" '"credentialSpecs":["credentialspec:file://x.json"]'
refused "interactive=true" '"interactive":true'
refused "pseudoTerminal=true" '"pseudoTerminal":true'
expect_eq "interactive=false is accepted" "1" "$(bridge fine "[{\"name\":\"app\",\"image\":\"$IMAGE\",\"interactive\":false,\"pseudoTerminal\":false}]" | grep -c ':task-definition/fine:1$')"
expect_error "task inferenceAccelerators refused" ClientException awsb ecs register-task-definition --family bad --cpu 128 --memory 128 \
  --inference-accelerators deviceName=d1,deviceType=eia2.medium --container-definitions "[{\"name\":\"app\",\"image\":\"$IMAGE\"}]"

finish
