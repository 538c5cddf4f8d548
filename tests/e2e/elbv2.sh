#!/usr/bin/env bash
# End-to-end: the ELBv2 control plane through the real aws CLI. Application and network
# load balancers on the default VPC's subnets, target groups of ip targets, listeners and
# rules with AWS's errors, target health before and after a listener uses the group,
# attributes, tags, deletes that cascade, malformed input, and state surviving kill -9.
source "$(dirname "$0")/lib.sh"

start_berth

S1="$(awsb ec2 describe-subnets --filters Name=availability-zone,Values=us-east-1a Name=default-for-az,Values=true --query 'Subnets[0].SubnetId' --output text)"
S2="$(awsb ec2 describe-subnets --filters Name=availability-zone,Values=us-east-1b Name=default-for-az,Values=true --query 'Subnets[0].SubnetId' --output text)"
VPC="$(awsb ec2 describe-vpcs --filters Name=is-default,Values=true --query 'Vpcs[0].VpcId' --output text)"
SG="$(awsb ec2 describe-security-groups --filters Name=group-name,Values=default Name=vpc-id,Values="$VPC" --query 'SecurityGroups[0].GroupId' --output text)"

# ---- load balancers ----
ALB="$(awsb elbv2 create-load-balancer --name web --subnets "$S1" "$S2" --tags Key=env,Value=e2e \
  --query 'LoadBalancers[0].LoadBalancerArn' --output text)"
expect_eq "ALB ARN shape" "ok" \
  "$([[ "$ALB" =~ ^arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/web/[0-9a-f]{16}$ ]] && echo ok || echo "$ALB")"
expect_eq "ALB described" "web application internet-facing active ipv4 $VPC" \
  "$(awsb elbv2 describe-load-balancers --names web --query 'LoadBalancers[0].[LoadBalancerName,Type,Scheme,State.Code,IpAddressType,VpcId]' --output text | tr '\t' ' ')"
expect_eq "ALB zones" "us-east-1a $S1
us-east-1b $S2" \
  "$(awsb elbv2 describe-load-balancers --load-balancer-arns "$ALB" --query 'LoadBalancers[0].AvailabilityZones[].[ZoneName,SubnetId]' --output text | tr '\t' ' ')"
DNS="$(awsb elbv2 describe-load-balancers --names web --query 'LoadBalancers[0].DNSName' --output text)"
expect_eq "ALB DNS name" "ok" "$([[ "$DNS" =~ ^web-[0-9]{10}\.us-east-1\.elb\.localhost$ ]] && echo ok || echo "$DNS")"
expect_eq "ALB gets the VPC's default security group" "$SG" \
  "$(awsb elbv2 describe-load-balancers --names web --query 'LoadBalancers[0].SecurityGroups[0]' --output text)"
expect_error "ALB with one subnet" ValidationError awsb elbv2 create-load-balancer --name one --subnets "$S1"
ONE="$(awsb elbv2 create-load-balancer --name one --subnets "$S1" 2>&1 || true)"
expect_eq "one-subnet message" "1" "$(grep -c 'At least two subnets in two different Availability Zones must be specified' <<<"$ONE")"
expect_error "name starting with internal-" ValidationError awsb elbv2 create-load-balancer --name internal-x --subnets "$S1" "$S2"
expect_error "unknown subnet" SubnetNotFound awsb elbv2 create-load-balancer --name x --subnets "$S1" subnet-0123456789abcdef0
expect_error "same name, other settings" DuplicateLoadBalancerName awsb elbv2 create-load-balancer --name web --scheme internal --subnets "$S1" "$S2"
expect_error "unknown load balancer name" LoadBalancerNotFound awsb elbv2 describe-load-balancers --names nope
NLB="$(awsb elbv2 create-load-balancer --name tcp --type network --subnets "$S1" --query 'LoadBalancers[0].LoadBalancerArn' --output text)"
expect_eq "NLB ARN" "ok" "$([[ "$NLB" == *":loadbalancer/net/tcp/"* ]] && echo ok || echo "$NLB")"
expect_eq "load balancers listed" "tcp web" "$(awsb elbv2 describe-load-balancers --query 'LoadBalancers[].LoadBalancerName' --output text | tr '\t' ' ')"
MARKER="$(awsb elbv2 describe-load-balancers --page-size 1 --query NextMarker --output text)"
expect_eq "paging: page 1, then from its marker" "tcp web" \
  "$(awsb elbv2 describe-load-balancers --page-size 1 --query 'LoadBalancers[0].LoadBalancerName' --output text) $(awsb elbv2 describe-load-balancers --page-size 1 --marker "$MARKER" --query 'LoadBalancers[0].LoadBalancerName' --output text)"

# ---- attributes ----
expect_eq "ALB idle timeout default" "60" \
  "$(awsb elbv2 describe-load-balancer-attributes --load-balancer-arn "$ALB" --query "Attributes[?Key=='idle_timeout.timeout_seconds'].Value" --output text)"
expect_eq "ALB idle timeout set" "120" \
  "$(awsb elbv2 modify-load-balancer-attributes --load-balancer-arn "$ALB" --attributes Key=idle_timeout.timeout_seconds,Value=120 --query "Attributes[?Key=='idle_timeout.timeout_seconds'].Value" --output text)"
expect_error "idle timeout out of range" InvalidConfigurationRequest awsb elbv2 modify-load-balancer-attributes --load-balancer-arn "$ALB" --attributes Key=idle_timeout.timeout_seconds,Value=5000
expect_error "unknown attribute" InvalidConfigurationRequest awsb elbv2 modify-load-balancer-attributes --load-balancer-arn "$ALB" --attributes Key=nope.enabled,Value=true
expect_eq "NLB cross-zone default" "false" \
  "$(awsb elbv2 describe-load-balancer-attributes --load-balancer-arn "$NLB" --query "Attributes[?Key=='load_balancing.cross_zone.enabled'].Value" --output text)"

# ---- target groups and targets ----
TG="$(awsb elbv2 create-target-group --name web --protocol HTTP --port 8080 --vpc-id "$VPC" --target-type ip \
  --health-check-path /health --query 'TargetGroups[0].TargetGroupArn' --output text)"
expect_eq "target group defaults" "HTTP traffic-port /health 30 5 5 2 200 HTTP1" \
  "$(awsb elbv2 describe-target-groups --names web --query 'TargetGroups[0].[HealthCheckProtocol,HealthCheckPort,HealthCheckPath,HealthCheckIntervalSeconds,HealthCheckTimeoutSeconds,HealthyThresholdCount,UnhealthyThresholdCount,Matcher.HttpCode,ProtocolVersion]' --output text | tr '\t' ' ')"
API="$(awsb elbv2 create-target-group --name api --protocol HTTP --port 80 --vpc-id "$VPC" --target-type ip --query 'TargetGroups[0].TargetGroupArn' --output text)"
TCPTG="$(awsb elbv2 create-target-group --name tcp --protocol TCP --port 5432 --vpc-id "$VPC" --target-type ip --query 'TargetGroups[0].TargetGroupArn' --output text)"
expect_eq "TCP group health check" "TCP 10" \
  "$(awsb elbv2 describe-target-groups --target-group-arns "$TCPTG" --query 'TargetGroups[0].[HealthCheckProtocol,HealthCheckTimeoutSeconds]' --output text | tr '\t' ' ')"
expect_error "timeout not below interval" ValidationError awsb elbv2 create-target-group --name bad --protocol HTTP --port 80 --vpc-id "$VPC" --health-check-interval-seconds 10 --health-check-timeout-seconds 10
expect_error "lambda targets not yet" NotImplemented awsb elbv2 create-target-group --name fn --target-type lambda
expect_eq "deregistration delay default" "300" \
  "$(awsb elbv2 describe-target-group-attributes --target-group-arn "$TG" --query "Attributes[?Key=='deregistration_delay.timeout_seconds'].Value" --output text)"
expect_eq "stickiness on" "true lb_cookie" \
  "$(awsb elbv2 modify-target-group-attributes --target-group-arn "$TG" --attributes Key=stickiness.enabled,Value=true \
     --query "[Attributes[?Key=='stickiness.enabled'].Value|[0],Attributes[?Key=='stickiness.type'].Value|[0]]" --output text | tr '\t' ' ')"
expect_error "unknown algorithm" InvalidConfigurationRequest awsb elbv2 modify-target-group-attributes --target-group-arn "$TG" --attributes Key=load_balancing.algorithm.type,Value=random
expect_error "slow start is not carried out: refused, not stored" NotImplemented awsb elbv2 modify-target-group-attributes --target-group-arn "$TG" --attributes Key=slow_start.duration_seconds,Value=60
expect_eq "slow start unchanged" "0" \
  "$(awsb elbv2 describe-target-group-attributes --target-group-arn "$TG" --query "Attributes[?Key=='slow_start.duration_seconds'].Value" --output text)"
expect_error "HTTP/2 off is not carried out" NotImplemented awsb elbv2 modify-load-balancer-attributes --load-balancer-arn "$ALB" --attributes Key=routing.http2.enabled,Value=false
awsb elbv2 modify-target-group-attributes --target-group-arn "$TG" --attributes Key=slow_start.duration_seconds,Value=0 Key=load_balancing.cross_zone.enabled,Value=use_load_balancer_configuration >/dev/null
pass "defaults, as IaC tools send them, are taken"
awsb elbv2 register-targets --target-group-arn "$TG" --targets Id=172.31.0.10 Id=172.31.0.11,Port=9090 >/dev/null
expect_error "public address as ip target" InvalidTarget awsb elbv2 register-targets --target-group-arn "$TG" --targets Id=8.8.8.8
expect_error "instance id in an ip group" InvalidTarget awsb elbv2 register-targets --target-group-arn "$TG" --targets Id=i-0123456789abcdef0
expect_eq "targets unused before a listener" "172.31.0.10 8080 unused Target.NotInUse
172.31.0.11 9090 unused Target.NotInUse" \
  "$(awsb elbv2 describe-target-health --target-group-arn "$TG" --query 'TargetHealthDescriptions[].[Target.Id,Target.Port,TargetHealth.State,TargetHealth.Reason]' --output text | tr '\t' ' ')"

# ---- listeners ----
L="$(awsb elbv2 create-listener --load-balancer-arn "$ALB" --protocol HTTP --port 80 \
  --default-actions Type=forward,TargetGroupArn="$TG" --query 'Listeners[0].ListenerArn' --output text)"
expect_eq "listener ARN" "ok" "$([[ "$L" == *":listener/app/web/"* ]] && echo ok || echo "$L")"
expect_eq "listener described" "HTTP 80 forward $TG 1" \
  "$(awsb elbv2 describe-listeners --load-balancer-arn "$ALB" --query 'Listeners[0].[Protocol,Port,DefaultActions[0].Type,DefaultActions[0].TargetGroupArn,DefaultActions[0].ForwardConfig.TargetGroups[0].Weight]' --output text | tr '\t' ' ')"
expect_eq "targets initial once used" "initial Elb.RegistrationInProgress
initial Elb.RegistrationInProgress" \
  "$(awsb elbv2 describe-target-health --target-group-arn "$TG" --query 'TargetHealthDescriptions[].[TargetHealth.State,TargetHealth.Reason]' --output text | tr '\t' ' ')"
expect_eq "group names its load balancer" "$ALB" \
  "$(awsb elbv2 describe-target-groups --target-group-arns "$TG" --query 'TargetGroups[0].LoadBalancerArns[0]' --output text)"
expect_error "duplicate listener" DuplicateListener awsb elbv2 create-listener --load-balancer-arn "$ALB" --protocol HTTP --port 80 --default-actions Type=forward,TargetGroupArn="$TG"
expect_error "TCP listener on an ALB" UnsupportedProtocol awsb elbv2 create-listener --load-balancer-arn "$ALB" --protocol TCP --port 81 --default-actions Type=forward,TargetGroupArn="$TG"
expect_error "TCP group behind an HTTP listener" IncompatibleProtocols awsb elbv2 create-listener --load-balancer-arn "$ALB" --protocol HTTP --port 81 --default-actions Type=forward,TargetGroupArn="$TCPTG"
expect_error "HTTPS without a certificate" CertificateNotFound awsb elbv2 create-listener --load-balancer-arn "$ALB" --protocol HTTPS --port 443 --default-actions Type=forward,TargetGroupArn="$TG"
expect_error "HTTPS certificates not yet" NotImplemented awsb elbv2 create-listener --load-balancer-arn "$ALB" --protocol HTTPS --port 443 --certificates CertificateArn=arn:aws:acm:us-east-1:000000000000:certificate/x --default-actions Type=forward,TargetGroupArn="$TG"
ALB2="$(awsb elbv2 create-load-balancer --name two --subnets "$S1" "$S2" --query 'LoadBalancers[0].LoadBalancerArn' --output text)"
expect_error "group of another load balancer" TargetGroupAssociationLimit awsb elbv2 create-listener --load-balancer-arn "$ALB2" --protocol HTTP --port 80 --default-actions Type=forward,TargetGroupArn="$TG"
awsb elbv2 delete-load-balancer --load-balancer-arn "$ALB2" >/dev/null
REDIR="$(awsb elbv2 create-listener --load-balancer-arn "$ALB" --protocol HTTP --port 8081 \
  --default-actions 'Type=redirect,RedirectConfig={Protocol=HTTPS,Port=443,StatusCode=HTTP_301}' --query 'Listeners[0].ListenerArn' --output text)"
expect_eq "redirect filled in" "HTTPS 443 #{host} /#{path} HTTP_301" \
  "$(awsb elbv2 describe-listeners --listener-arns "$REDIR" --query 'Listeners[0].DefaultActions[0].RedirectConfig.[Protocol,Port,Host,Path,StatusCode]' --output text | tr '\t' ' ')"
expect_error "redirect loop" InvalidLoadBalancerAction awsb elbv2 create-listener --load-balancer-arn "$ALB" --protocol HTTP --port 8082 --default-actions 'Type=redirect,RedirectConfig={StatusCode=HTTP_302}'
NL="$(awsb elbv2 create-listener --load-balancer-arn "$NLB" --protocol TCP --port 5432 --default-actions Type=forward,TargetGroupArn="$TCPTG" --query 'Listeners[0].ListenerArn' --output text)"
expect_eq "NLB listener" "TCP 5432" "$(awsb elbv2 describe-listeners --listener-arns "$NL" --query 'Listeners[0].[Protocol,Port]' --output text | tr '\t' ' ')"
expect_eq "modify listener port" "8000" \
  "$(awsb elbv2 modify-listener --listener-arn "$REDIR" --port 8000 --query 'Listeners[0].Port' --output text)"

# ---- rules ----
R10="$(awsb elbv2 create-rule --listener-arn "$L" --priority 10 --conditions Field=path-pattern,Values='/api/*' \
  --actions Type=forward,TargetGroupArn="$API" --query 'Rules[0].RuleArn' --output text)"
expect_eq "rule ARN" "ok" "$([[ "$R10" == *":listener-rule/app/web/"* ]] && echo ok || echo "$R10")"
expect_error "priority in use" PriorityInUse awsb elbv2 create-rule --listener-arn "$L" --priority 10 --conditions Field=path-pattern,Values='/x' --actions Type=forward,TargetGroupArn="$API"
TOO_MANY='[{"Field":"path-pattern","PathPatternConfig":{"Values":["/a","/b","/c"]}},{"Field":"host-header","HostHeaderConfig":{"Values":["a.example.com","b.example.com","c.example.com"]}}]'
expect_error "too many condition values" ValidationError awsb elbv2 create-rule --listener-arn "$L" --priority 11 --conditions "$TOO_MANY" --actions Type=forward,TargetGroupArn="$API"
TM="$(awsb elbv2 create-rule --listener-arn "$L" --priority 11 --conditions "$TOO_MANY" --actions Type=forward,TargetGroupArn="$API" 2>&1 || true)"
expect_eq "condition values message" "1" "$(grep -c "A rule can only have '5' condition values" <<<"$TM")"
expect_error "malformed path pattern" ValidationError awsb elbv2 create-rule --listener-arn "$L" --priority 12 --conditions Field=path-pattern,Values='/a b' --actions Type=forward,TargetGroupArn="$API"
R20="$(awsb elbv2 create-rule --listener-arn "$L" --priority 20 \
  --conditions '[{"Field":"http-header","HttpHeaderConfig":{"HttpHeaderName":"X-Env","Values":["blue"]}}]' \
  --actions 'Type=fixed-response,FixedResponseConfig={StatusCode=418,ContentType=text/plain,MessageBody=teapot}' --query 'Rules[0].RuleArn' --output text)"
expect_eq "rules with the default last" "10 False
20 False
default True" \
  "$(awsb elbv2 describe-rules --listener-arn "$L" --query 'Rules[].[Priority,IsDefault]' --output text | tr '\t' ' ')"
DEFAULT_RULE="$(awsb elbv2 describe-rules --listener-arn "$L" --query 'Rules[2].RuleArn' --output text)"
expect_error "default rule cannot be deleted" OperationNotPermitted awsb elbv2 delete-rule --rule-arn "$DEFAULT_RULE"
expect_eq "priorities swapped" "$R20 10" \
  "$(awsb elbv2 set-rule-priorities --rule-priorities RuleArn="$R10",Priority=20 RuleArn="$R20",Priority=10 --query 'Rules[0].[RuleArn,Priority]' --output text | tr '\t' ' ')"
expect_eq "rule modified" "/v2/*" \
  "$(awsb elbv2 modify-rule --rule-arn "$R10" --conditions Field=path-pattern,Values='/v2/*' --query 'Rules[0].Conditions[0].Values[0]' --output text)"
expect_error "group used by a rule cannot go" ResourceInUse awsb elbv2 delete-target-group --target-group-arn "$API"
awsb elbv2 delete-rule --rule-arn "$R20" >/dev/null
expect_error "deleted rule" RuleNotFound awsb elbv2 describe-rules --rule-arns "$R20"

# ---- tags ----
awsb elbv2 add-tags --resource-arns "$ALB" "$TG" "$L" "$R10" --tags Key=team,Value=edge >/dev/null
expect_eq "tags on every kind" "env=e2e,team=edge team=edge team=edge team=edge" \
  "$(awsb elbv2 describe-tags --resource-arns "$ALB" "$TG" "$L" "$R10" --output json \
     | python3 -c 'import json,sys; print(" ".join(",".join(t["Key"]+"="+t["Value"] for t in d["Tags"]) for d in json.load(sys.stdin)["TagDescriptions"]))')"
awsb elbv2 remove-tags --resource-arns "$ALB" --tag-keys env >/dev/null
expect_eq "tag removed" "team" "$(awsb elbv2 describe-tags --resource-arns "$ALB" --query 'TagDescriptions[0].Tags[].Key' --output text)"
expect_error "duplicate tag keys" DuplicateTagKeys awsb elbv2 add-tags --resource-arns "$ALB" --tags Key=a,Value=1 Key=a,Value=2

# ---- malformed input and what is not there ----
MAL="$(curl -s -o /dev/null -w '%{http_code}' "$BERTH_URL/" -H 'Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/elasticloadbalancing/aws4_request, SignedHeaders=host, Signature=x' \
  --data 'Action=CreateTargetGroup&Version=2015-12-01&Name=bad&Port=eighty')"
expect_eq "malformed number: HTTP 400" "400" "$MAL"
expect_error "port out of the model's range" ValidationError awsb elbv2 create-target-group --name bad --protocol HTTP --port 70000 --vpc-id "$VPC"
expect_error "malformed ARN" ValidationError awsb elbv2 describe-listeners --listener-arns nonsense
expect_error "not implemented" NotImplemented awsb elbv2 describe-ssl-policies

# ---- durability, then deletes that cascade ----
kill9_berth
start_berth
expect_eq "after kill -9" "2 $L" \
  "$(awsb elbv2 describe-listeners --load-balancer-arn "$ALB" --query 'length(Listeners)' --output text) $(awsb elbv2 describe-listeners --load-balancer-arn "$ALB" --query 'Listeners[?Port==`80`].ListenerArn' --output text)"
awsb elbv2 modify-load-balancer-attributes --load-balancer-arn "$ALB" --attributes Key=deletion_protection.enabled,Value=true >/dev/null
expect_error "deletion protection" OperationNotPermitted awsb elbv2 delete-load-balancer --load-balancer-arn "$ALB"
awsb elbv2 modify-load-balancer-attributes --load-balancer-arn "$ALB" --attributes Key=deletion_protection.enabled,Value=false >/dev/null
awsb elbv2 delete-load-balancer --load-balancer-arn "$ALB" >/dev/null
expect_error "listener went with its load balancer" ListenerNotFound awsb elbv2 describe-listeners --listener-arns "$L"
expect_error "rule went with its listener" RuleNotFound awsb elbv2 describe-rules --rule-arns "$R10"
expect_eq "targets unused again" "unused unused" \
  "$(awsb elbv2 describe-target-health --target-group-arn "$TG" --query 'TargetHealthDescriptions[].TargetHealth.State' --output text | tr '\t' ' ')"
awsb elbv2 deregister-targets --target-group-arn "$TG" --targets Id=172.31.0.11,Port=9090 >/dev/null
expect_eq "deregistered at once" "172.31.0.10" "$(awsb elbv2 describe-target-health --target-group-arn "$TG" --query 'TargetHealthDescriptions[].Target.Id' --output text)"
awsb elbv2 delete-target-group --target-group-arn "$TG" >/dev/null
awsb elbv2 delete-target-group --target-group-arn "$API" >/dev/null
expect_error "deleted group" TargetGroupNotFound awsb elbv2 describe-target-groups --target-group-arns "$TG"
expect_error "NLB's group still in use" ResourceInUse awsb elbv2 delete-target-group --target-group-arn "$TCPTG"
awsb elbv2 delete-load-balancer --load-balancer-arn "$NLB" >/dev/null
awsb elbv2 delete-target-group --target-group-arn "$TCPTG" >/dev/null
expect_eq "nothing left" "0 0" \
  "$(awsb elbv2 describe-load-balancers --query 'length(LoadBalancers)' --output text) $(awsb elbv2 describe-target-groups --query 'length(TargetGroups)' --output text)"

finish
