#!/usr/bin/env bash
# HTTPS target groups: the application load balancer speaks TLS to their targets (without
# verifying the target's certificate, as an ALB does) and health-checks them over HTTPS.
# The target is a task (the python test image) serving HTTPS only, with a self-signed
# certificate made here; it tells each request what it saw (TLS version, path) and counts
# the load balancer's health checks. The same target in a plain HTTP group is unhealthy.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images.sh"
if [ "$(id -u)" != 0 ]; then echo "FAIL - load balancers need root" >&2; exit 1; fi
WORK="$(mktemp -d)"
cleanup() { stop_berth; [ -n "${BERTH_DATA:-}" ] && "$BERTH_BIN" down --data-dir "$BERTH_DATA" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
python_image
start_berth
REG="localhost:$BERTH_PORT"
awsb ecr create-repository --repository-name py >/dev/null
skopeo --insecure-policy copy --dest-tls-verify=false "oci:$PY_LAYOUT:py" "docker://$REG/py:1" >/dev/null
awsb ecs create-cluster --cluster-name tls >/dev/null
read -r SUB1 SUB2 <<<"$(awsb ec2 describe-subnets --filters Name=default-for-az,Values=true --query 'Subnets[0:2].SubnetId' --output text)"
VPC=$(awsb ec2 describe-vpcs --filters Name=is-default,Values=true --query 'Vpcs[0].VpcId' --output text)

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=target \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
SERVE='import http.server, os, ssl, threading
open("/tmp/c.pem", "w").write(os.environ["CERT"]); open("/tmp/k.pem", "w").write(os.environ["KEY"])
checks = 0
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        global checks
        with lock:
            if self.headers.get("User-Agent") == "ELB-HealthChecker/2.0":
                checks += 1
            n = checks
        body = (f"{self.connection.version()} {self.path} checks={n}" if self.path != "/checks" else str(n)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("/tmp/c.pem", "/tmp/k.pem")
s = http.server.ThreadingHTTPServer(("0.0.0.0", 443), H)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
s.serve_forever()'
SERVE="$SERVE" python3 - "$REG/py:1" "$WORK/cert.pem" "$WORK/key.pem" > "$WORK/tls.json" <<'PY'
import json, os, sys
print(json.dumps([{"name": "tls", "image": sys.argv[1], "stopTimeout": 2,
                   "command": ["python3", "-c", os.environ["SERVE"]],
                   "environment": [{"name": "CERT", "value": open(sys.argv[2]).read()},
                                   {"name": "KEY", "value": open(sys.argv[3]).read()}],
                   "portMappings": [{"containerPort": 443}]}]))
PY
awsb ecs register-task-definition --family tls --requires-compatibilities FARGATE --network-mode awsvpc \
  --cpu 256 --memory 512 --container-definitions "file://$WORK/tls.json" >/dev/null
ARN=$(awsb ecs run-task --cluster tls --task-definition tls --launch-type FARGATE \
  --network-configuration "awsvpcConfiguration={subnets=[$SUB1]}" --query 'tasks[0].taskArn' --output text)
awsb ecs wait tasks-running --cluster tls --tasks "$ARN"
IP=$(awsb ecs describe-tasks --cluster tls --tasks "$ARN" --query "tasks[0].attachments[0].details[?name=='privateIPv4Address'].value | [0]" --output text)
wait_for "the target's TLS port" 30 curl -fsSk --max-time 2 "https://$IP/"
expect_eq "the target speaks only TLS" "000" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$IP:443/" || true)"

ALB=$(awsb elbv2 create-load-balancer --name tlsfront --subnets "$SUB1" "$SUB2" --query 'LoadBalancers[0].LoadBalancerArn' --output text)
LBIP=$(awsb elbv2 describe-load-balancers --load-balancer-arns "$ALB" --query 'LoadBalancers[0].AvailabilityZones[0].LoadBalancerAddresses[0].IpAddress' --output text)
TG=$(awsb elbv2 create-target-group --name secure --protocol HTTPS --port 443 --vpc-id "$VPC" --target-type ip \
  --health-check-interval-seconds 5 --health-check-timeout-seconds 2 --healthy-threshold-count 2 \
  --query 'TargetGroups[0].TargetGroupArn' --output text)
expect_eq "an HTTPS group's health checks default to HTTPS" "HTTPS" \
  "$(awsb elbv2 describe-target-groups --target-group-arns "$TG" --query 'TargetGroups[0].HealthCheckProtocol' --output text)"
PLAIN=$(awsb elbv2 create-target-group --name plain --protocol HTTP --port 443 --vpc-id "$VPC" --target-type ip \
  --health-check-interval-seconds 5 --health-check-timeout-seconds 2 --unhealthy-threshold-count 2 \
  --query 'TargetGroups[0].TargetGroupArn' --output text)
LISTENER=$(awsb elbv2 create-listener --load-balancer-arn "$ALB" --protocol HTTP --port 80 \
  --default-actions "Type=forward,TargetGroupArn=$TG" --query 'Listeners[0].ListenerArn' --output text)
awsb elbv2 create-rule --listener-arn "$LISTENER" --priority 10 --conditions Field=path-pattern,Values='/plain/*' \
  --actions "Type=forward,TargetGroupArn=$PLAIN" >/dev/null
awsb elbv2 register-targets --target-group-arn "$TG" --targets "Id=$IP"
awsb elbv2 register-targets --target-group-arn "$PLAIN" --targets "Id=$IP"

state() { awsb elbv2 describe-target-health --target-group-arn "$1" --query 'TargetHealthDescriptions[0].TargetHealth.State' --output text; }
wait_for "the HTTPS group's target healthy" 30 bash -c "[ \"\$(aws --endpoint-url $BERTH_URL elbv2 describe-target-health --target-group-arn $TG --query 'TargetHealthDescriptions[0].TargetHealth.State' --output text)\" = healthy ]"
expect_eq "HTTPS health checks pass" "healthy" "$(state "$TG")"
checks=$(curl -fsSk --max-time 5 "https://$IP/checks")
expect_eq "the health checks came over TLS" "yes" "$([ "$checks" -ge 2 ] && echo yes || echo "no ($checks)")"
BODY=$(curl -fsS --max-time 5 "http://$LBIP/hello")
expect_eq "requests reach the target over TLS" "1" "$(grep -cE '^TLSv1\.[23] /hello checks=[0-9]+$' <<<"$BODY")"
seen=$(for _ in $(seq 5); do curl -fsS --max-time 5 "http://$LBIP/again"; echo; done | grep -cE '^TLSv1\.[23] /again ')
expect_eq "every request does" "5" "$seen"
expect_eq "HTTP/2 clients' requests too" "2 200" "$(curl -s -o /dev/null -w '%{http_version} %{http_code}' --http2-prior-knowledge --max-time 5 "http://$LBIP/h2")"

wait_for "the plain group's target unhealthy" 30 bash -c "[ \"\$(aws --endpoint-url $BERTH_URL elbv2 describe-target-health --target-group-arn $PLAIN --query 'TargetHealthDescriptions[0].TargetHealth.State' --output text)\" = unhealthy ]"
expect_eq "plain HTTP checks of a TLS target fail" "unhealthy Target.FailedHealthChecks" \
  "$(awsb elbv2 describe-target-health --target-group-arn "$PLAIN" --query 'TargetHealthDescriptions[0].TargetHealth.[State,Reason]' --output text | tr '\t' ' ')"
expect_eq "plain HTTP to a TLS target: 502" "502" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$LBIP/plain/x")"

finish
