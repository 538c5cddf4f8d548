use super::*;
use crate::common::test_support::store;
use berth_store::SqliteStore;
use berth_wire::query::Params;
use serde_json::json;

const A: &str = "000000000000";
const R: &str = "us-east-1";

struct T {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    elb: Elbv2,
    ec2: berth_ec2::Ec2,
}

fn ctx() -> RequestContext {
    RequestContext {
        account: A.into(),
        region: R.into(),
        request_id: "r".into(),
    }
}

impl T {
    fn new() -> T {
        let (dir, st) = store();
        let store = Arc::new(st);
        T {
            _dir: dir,
            elb: Elbv2::new(store.clone(), Clock::default()),
            ec2: berth_ec2::Ec2::new(store.clone(), Clock::default()),
            store,
        }
    }
    fn call(&self, op: &str, input: Value) -> ApiResult<Value> {
        self.elb.call(&ctx(), op, input)
    }
    fn ok(&self, op: &str, input: Value) -> Value {
        self.call(op, input.clone())
            .unwrap_or_else(|e| panic!("{op} {input}: {e}"))
    }
    fn err(&self, op: &str, input: Value) -> ApiError {
        let before = self.store.revision();
        let e = match self.call(op, input.clone()) {
            Ok(v) => panic!("{op} {input} succeeded: {v}"),
            Err(e) => e,
        };
        assert_eq!(
            self.store.revision(),
            before,
            "a refused {op} wrote nothing"
        );
        e
    }
    fn subnets(&self) -> Vec<String> {
        berth_ec2::default_subnets(self.store.as_ref(), A, R)
    }
    fn vpc(&self) -> String {
        berth_ec2::default_vpc_id(self.store.as_ref(), A, R).unwrap()
    }
    fn alb(&self, name: &str) -> String {
        let s = self.subnets();
        let out = self.ok(
            "CreateLoadBalancer",
            json!({"Name": name, "Subnets": [s[0], s[1]]}),
        );
        out["LoadBalancers"][0]["LoadBalancerArn"]
            .as_str()
            .unwrap()
            .to_string()
    }
    fn nlb(&self, name: &str) -> String {
        let s = self.subnets();
        let out = self.ok(
            "CreateLoadBalancer",
            json!({"Name": name, "Type": "network", "Subnets": [s[0]]}),
        );
        out["LoadBalancers"][0]["LoadBalancerArn"]
            .as_str()
            .unwrap()
            .to_string()
    }
    fn tg(&self, name: &str, protocol: &str) -> String {
        let out = self.ok(
            "CreateTargetGroup",
            json!({"Name": name, "Protocol": protocol, "Port": 80, "VpcId": self.vpc(), "TargetType": "ip"}),
        );
        out["TargetGroups"][0]["TargetGroupArn"]
            .as_str()
            .unwrap()
            .to_string()
    }
    fn listener(&self, lb: &str, port: i64, tg: &str) -> String {
        let out = self.ok(
            "CreateListener",
            json!({"LoadBalancerArn": lb, "Protocol": "HTTP", "Port": port,
                   "DefaultActions": [{"Type": "forward", "TargetGroupArn": tg}]}),
        );
        out["Listeners"][0]["ListenerArn"]
            .as_str()
            .unwrap()
            .to_string()
    }
    fn other_vpc_subnet(&self) -> (String, String) {
        let vpc = self
            .ec2
            .call(&ctx(), "CreateVpc", json!({"CidrBlock": "10.9.0.0/16"}))
            .unwrap()["Vpc"]["VpcId"]
            .as_str()
            .unwrap()
            .to_string();
        let sub = self
            .ec2
            .call(
                &ctx(),
                "CreateSubnet",
                json!({"VpcId": vpc, "CidrBlock": "10.9.1.0/24", "AvailabilityZone": "us-east-1a"}),
            )
            .unwrap()["Subnet"]["SubnetId"]
            .as_str()
            .unwrap()
            .to_string();
        (vpc, sub)
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

#[test]
fn application_load_balancer_as_aws_describes_it() {
    let t = T::new();
    let subs = t.subnets();
    let arn = t.alb("web");
    let re = arn
        .strip_prefix("arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/web/")
        .unwrap();
    assert!(re.len() == 16 && re.bytes().all(|b| b.is_ascii_hexdigit()));
    let lb = &t.ok("DescribeLoadBalancers", json!({"Names": ["web"]}))["LoadBalancers"][0];
    assert_eq!(lb["LoadBalancerArn"], arn.as_str());
    let dns = s(&lb["DNSName"]);
    let id = dns
        .strip_prefix("web-")
        .unwrap()
        .strip_suffix(".us-east-1.elb.localhost")
        .unwrap();
    assert!(
        id.len() == 10 && id.bytes().all(|b| b.is_ascii_digit()),
        "{dns}"
    );
    assert_eq!(lb["State"]["Code"], "active");
    assert_eq!(lb["Scheme"], "internet-facing");
    assert_eq!(lb["Type"], "application");
    assert_eq!(lb["IpAddressType"], "ipv4");
    assert_eq!(lb["CanonicalHostedZoneId"], "Z35SXDOTRQ7X7K");
    assert_eq!(lb["VpcId"], t.vpc().as_str());
    assert_eq!(lb["AvailabilityZones"][0]["ZoneName"], "us-east-1a");
    assert_eq!(lb["AvailabilityZones"][0]["SubnetId"], subs[0].as_str());
    assert_eq!(lb["AvailabilityZones"][1]["ZoneName"], "us-east-1b");
    let sg = berth_ec2::default_security_group(t.store.as_ref(), A, R, &t.vpc()).unwrap();
    assert_eq!(lb["SecurityGroups"], json!([sg]));
    // By ARN too; the same request again answers the same load balancer.
    let by_arn = t.ok("DescribeLoadBalancers", json!({"LoadBalancerArns": [arn]}));
    assert_eq!(&by_arn["LoadBalancers"][0], lb);
    let again = t.ok(
        "CreateLoadBalancer",
        json!({"Name": "web", "Subnets": [subs[1], subs[0]]}),
    );
    assert_eq!(&again["LoadBalancers"][0], lb);
    let e = t.err(
        "CreateLoadBalancer",
        json!({"Name": "web", "Scheme": "internal", "Subnets": [subs[0], subs[1]]}),
    );
    assert_eq!(e.code, "DuplicateLoadBalancerName");

    // Internal: the DNS name says so.
    let out = t.ok(
        "CreateLoadBalancer",
        json!({"Name": "private", "Scheme": "internal", "Subnets": [subs[0], subs[2]]}),
    );
    assert!(s(&out["LoadBalancers"][0]["DNSName"]).starts_with("internal-private-"));
}

#[test]
fn load_balancer_rules_of_names_and_subnets() {
    let t = T::new();
    let subs = t.subnets();
    let two = json!([subs[0], subs[1]]);
    for (name, frag) in [
        ("-web", "begin or end with a hyphen"),
        ("web_1", "alphanumeric"),
        ("internal-web", "cannot begin with 'internal-'"),
        ("a234567890123456789012345678901234", "longer than '32'"),
    ] {
        let e = t.err("CreateLoadBalancer", json!({"Name": name, "Subnets": two}));
        assert_eq!(e.code, "ValidationError", "{name}");
        assert!(e.message.contains(frag), "{name}: {}", e.message);
    }
    let e = t.err(
        "CreateLoadBalancer",
        json!({"Name": "one", "Subnets": [subs[0]]}),
    );
    assert_eq!(e.code, "ValidationError");
    assert_eq!(
        e.message,
        "At least two subnets in two different Availability Zones must be specified"
    );
    let e = t.err("CreateLoadBalancer", json!({"Name": "none"}));
    assert_eq!(e.code, "ValidationError");
    let e = t.err(
        "CreateLoadBalancer",
        json!({"Name": "x", "Subnets": [subs[0], "subnet-0123456789abcdef0"]}),
    );
    assert_eq!(e.code, "SubnetNotFound");
    let (_, other) = t.other_vpc_subnet();
    let e = t.err(
        "CreateLoadBalancer",
        json!({"Name": "x", "Subnets": [subs[1], other]}),
    );
    assert_eq!(e.code, "InvalidSubnet");
    // Two subnets in one zone.
    let e = t.err(
        "CreateLoadBalancer",
        json!({"Name": "x", "Type": "network", "Subnets": [subs[0], subs[0]]}),
    );
    assert_eq!(e.code, "InvalidConfigurationRequest");
    let e = t.err(
        "CreateLoadBalancer",
        json!({"Name": "x", "Subnets": two, "SecurityGroups": ["sg-0123456789abcdef0"]}),
    );
    assert_eq!(e.code, "InvalidSecurityGroup");
    let e = t.err(
        "CreateLoadBalancer",
        json!({"Name": "x", "Type": "gateway", "Subnets": two}),
    );
    assert_eq!((e.status, e.code.as_str()), (501, "NotImplemented"));
    let e = t.err(
        "CreateLoadBalancer",
        json!({"Name": "x", "Subnets": two, "IpAddressType": "dualstack"}),
    );
    assert_eq!(e.status, 501);
    let e = t.err("DescribeLoadBalancers", json!({"Names": ["nope", "nada"]}));
    assert_eq!(e.code, "LoadBalancerNotFound");
    assert_eq!(e.message, "Load balancers '[nope, nada]' not found");
    let e = t.err(
        "DescribeLoadBalancers",
        json!({"LoadBalancerArns": ["nonsense"]}),
    );
    assert_eq!(e.code, "ValidationError");
}

#[test]
fn network_load_balancer() {
    let t = T::new();
    let arn = t.nlb("tcp");
    assert!(arn.contains(":loadbalancer/net/tcp/"));
    let lb = &t.ok("DescribeLoadBalancers", json!({"LoadBalancerArns": [arn]}))["LoadBalancers"][0];
    assert_eq!(lb["Type"], "network");
    assert_eq!(lb["CanonicalHostedZoneId"], "Z26RNL4JYFTOTI");
    assert!(lb.get("SecurityGroups").is_none());
    let e = t.err(
        "SetSecurityGroups",
        json!({"LoadBalancerArn": arn, "SecurityGroups": ["sg-1"]}),
    );
    assert_eq!(e.code, "InvalidConfigurationRequest");
    let attrs = t.ok(
        "DescribeLoadBalancerAttributes",
        json!({"LoadBalancerArn": arn}),
    )["Attributes"]
        .clone();
    assert!(attrs
        .as_array()
        .unwrap()
        .contains(&json!({"Key": "load_balancing.cross_zone.enabled", "Value": "false"})));
    // A private address for an internal NLB must be in its subnet.
    let subs = t.subnets();
    let e = t.err(
        "CreateLoadBalancer",
        json!({"Name": "p", "Type": "network", "Scheme": "internal",
               "SubnetMappings": [{"SubnetId": subs[0], "PrivateIPv4Address": "10.0.0.5"}]}),
    );
    assert_eq!(e.code, "InvalidSubnet");
    let out = t.ok(
        "CreateLoadBalancer",
        json!({"Name": "p", "Type": "network", "Scheme": "internal",
               "SubnetMappings": [{"SubnetId": subs[0], "PrivateIPv4Address": "172.31.0.10"}]}),
    );
    assert_eq!(
        out["LoadBalancers"][0]["AvailabilityZones"][0]["LoadBalancerAddresses"][0]
            ["PrivateIPv4Address"],
        "172.31.0.10"
    );
}

#[test]
fn load_balancer_attributes_security_groups_and_subnets() {
    let t = T::new();
    let arn = t.alb("web");
    let attrs = t.ok(
        "DescribeLoadBalancerAttributes",
        json!({"LoadBalancerArn": arn}),
    );
    let list = attrs["Attributes"].as_array().unwrap();
    assert!(list.contains(&json!({"Key": "idle_timeout.timeout_seconds", "Value": "60"})));
    assert!(list.contains(&json!({"Key": "routing.http2.enabled", "Value": "true"})));
    let out = t.ok(
        "ModifyLoadBalancerAttributes",
        json!({"LoadBalancerArn": arn, "Attributes": [{"Key": "idle_timeout.timeout_seconds", "Value": "120"}]}),
    );
    assert!(out["Attributes"]
        .as_array()
        .unwrap()
        .contains(&json!({"Key": "idle_timeout.timeout_seconds", "Value": "120"})));
    for (k, v, code) in [
        (
            "idle_timeout.timeout_seconds",
            "0",
            "InvalidConfigurationRequest",
        ),
        (
            "idle_timeout.timeout_seconds",
            "abc",
            "InvalidConfigurationRequest",
        ),
        ("no.such.key", "1", "InvalidConfigurationRequest"),
        (
            "load_balancing.cross_zone.enabled",
            "false",
            "InvalidConfigurationRequest",
        ),
        (
            "routing.http.desync_mitigation_mode",
            "lax",
            "InvalidConfigurationRequest",
        ),
        ("access_logs.s3.enabled", "true", "NotImplemented"),
        // Valid settings the data plane does not act on: only their defaults are taken.
        ("routing.http2.enabled", "false", "NotImplemented"),
        ("client_keep_alive.seconds", "120", "NotImplemented"),
        (
            "routing.http.preserve_host_header.enabled",
            "true",
            "NotImplemented",
        ),
    ] {
        let e = t.err(
            "ModifyLoadBalancerAttributes",
            json!({"LoadBalancerArn": arn, "Attributes": [{"Key": k, "Value": v}]}),
        );
        assert_eq!(e.code, code, "{k}={v}");
    }
    // Deletion protection holds the load balancer.
    t.ok(
        "ModifyLoadBalancerAttributes",
        json!({"LoadBalancerArn": arn, "Attributes": [{"Key": "deletion_protection.enabled", "Value": "true"}]}),
    );
    let e = t.err("DeleteLoadBalancer", json!({"LoadBalancerArn": arn}));
    assert_eq!(e.code, "OperationNotPermitted");
    t.ok(
        "ModifyLoadBalancerAttributes",
        json!({"LoadBalancerArn": arn, "Attributes": [{"Key": "deletion_protection.enabled", "Value": "false"}]}),
    );

    // Security groups: must exist in the VPC.
    let sg = berth_ec2::default_security_group(t.store.as_ref(), A, R, &t.vpc()).unwrap();
    let out = t.ok(
        "SetSecurityGroups",
        json!({"LoadBalancerArn": arn, "SecurityGroups": [sg]}),
    );
    assert_eq!(out["SecurityGroupIds"], json!([sg]));
    let (other_vpc, _) = t.other_vpc_subnet();
    let other_sg = berth_ec2::default_security_group(t.store.as_ref(), A, R, &other_vpc).unwrap();
    let e = t.err(
        "SetSecurityGroups",
        json!({"LoadBalancerArn": arn, "SecurityGroups": [other_sg]}),
    );
    assert_eq!(e.code, "InvalidSecurityGroup");

    // Subnets: replaced, same rules as at creation.
    let subs = t.subnets();
    let out = t.ok(
        "SetSubnets",
        json!({"LoadBalancerArn": arn, "Subnets": [subs[1], subs[2]]}),
    );
    assert_eq!(out["AvailabilityZones"][0]["ZoneName"], "us-east-1b");
    assert_eq!(out["AvailabilityZones"][1]["ZoneName"], "us-east-1c");
    let e = t.err(
        "SetSubnets",
        json!({"LoadBalancerArn": arn, "Subnets": [subs[1]]}),
    );
    assert_eq!(e.code, "ValidationError");

    t.ok("DeleteLoadBalancer", json!({"LoadBalancerArn": arn}));
    // Deleting again succeeds, as in AWS.
    t.ok("DeleteLoadBalancer", json!({"LoadBalancerArn": arn}));
    assert!(t.ok("DescribeLoadBalancers", json!({}))["LoadBalancers"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn target_groups_with_aws_defaults() {
    let t = T::new();
    let arn = t.tg("web", "HTTP");
    assert!(arn.starts_with("arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/web/"));
    let g = &t.ok("DescribeTargetGroups", json!({"Names": ["web"]}))["TargetGroups"][0];
    assert_eq!(g["HealthCheckProtocol"], "HTTP");
    assert_eq!(g["HealthCheckPort"], "traffic-port");
    assert_eq!(g["HealthCheckPath"], "/");
    assert_eq!(g["HealthCheckIntervalSeconds"], 30);
    assert_eq!(g["HealthCheckTimeoutSeconds"], 5);
    assert_eq!(g["HealthyThresholdCount"], 5);
    assert_eq!(g["UnhealthyThresholdCount"], 2);
    assert_eq!(g["Matcher"], json!({"HttpCode": "200"}));
    assert_eq!(g["ProtocolVersion"], "HTTP1");
    assert_eq!(g["TargetType"], "ip");
    assert_eq!(g["LoadBalancerArns"], json!([]));

    let tcp = t.tg("tcp", "TCP");
    let g = &t.ok("DescribeTargetGroups", json!({"TargetGroupArns": [tcp]}))["TargetGroups"][0];
    assert_eq!(g["HealthCheckProtocol"], "TCP");
    assert_eq!(g["HealthCheckTimeoutSeconds"], 10);
    assert!(g.get("HealthCheckPath").is_none() && g.get("Matcher").is_none());

    let vpc = t.vpc();
    for (input, code) in [
        (
            json!({"Name": "a", "Protocol": "HTTP", "Port": 80, "VpcId": vpc, "HealthCheckTimeoutSeconds": 30}),
            "ValidationError",
        ),
        (
            json!({"Name": "a", "Protocol": "HTTP", "Port": 80, "VpcId": vpc, "Matcher": {"HttpCode": "600"}}),
            "ValidationError",
        ),
        (
            json!({"Name": "a", "Protocol": "HTTP", "Port": 80, "VpcId": vpc, "HealthCheckProtocol": "TCP"}),
            "ValidationError",
        ),
        (
            json!({"Name": "a", "Protocol": "TCP", "Port": 80, "VpcId": vpc, "HealthCheckPath": "/x"}),
            "ValidationError",
        ),
        (
            json!({"Name": "a", "Protocol": "HTTP", "Port": 80}),
            "ValidationError",
        ),
        (
            json!({"Name": "a", "Protocol": "HTTP", "Port": 80, "VpcId": "vpc-0123456789abcdef0"}),
            "ValidationError",
        ),
        (
            json!({"Name": "a", "Port": 80, "VpcId": vpc}),
            "ValidationError",
        ),
        (
            json!({"Name": "a_b", "Protocol": "HTTP", "Port": 80, "VpcId": vpc}),
            "ValidationError",
        ),
        (
            json!({"Name": "a", "TargetType": "lambda"}),
            "NotImplemented",
        ),
        (
            json!({"Name": "web", "Protocol": "HTTP", "Port": 8080, "VpcId": vpc, "TargetType": "ip"}),
            "DuplicateTargetGroupName",
        ),
    ] {
        let e = t.err("CreateTargetGroup", input.clone());
        assert_eq!(e.code, code, "{input}: {}", e.message);
    }
    // The same request again is the same group.
    let again = t.ok(
        "CreateTargetGroup",
        json!({"Name": "web", "Protocol": "HTTP", "Port": 80, "VpcId": vpc, "TargetType": "ip"}),
    );
    assert_eq!(again["TargetGroups"][0]["TargetGroupArn"], arn.as_str());

    // ModifyTargetGroup: health check changes, checked again.
    let out = t.ok(
        "ModifyTargetGroup",
        json!({"TargetGroupArn": arn, "HealthCheckPath": "/health", "Matcher": {"HttpCode": "200-299"}}),
    );
    assert_eq!(out["TargetGroups"][0]["HealthCheckPath"], "/health");
    let e = t.err(
        "ModifyTargetGroup",
        json!({"TargetGroupArn": arn, "HealthCheckIntervalSeconds": 5}),
    );
    assert_eq!(e.code, "ValidationError");
    let out = t.ok(
        "ModifyTargetGroup",
        json!({"TargetGroupArn": tcp, "HealthCheckProtocol": "HTTP"}),
    );
    assert_eq!(
        out["TargetGroups"][0]["Matcher"],
        json!({"HttpCode": "200-399"})
    );
    assert_eq!(out["TargetGroups"][0]["HealthCheckTimeoutSeconds"], 6);

    // Paging.
    t.tg("zz", "HTTP");
    let p1 = t.ok("DescribeTargetGroups", json!({"PageSize": 2}));
    assert_eq!(p1["TargetGroups"].as_array().unwrap().len(), 2);
    let p2 = t.ok(
        "DescribeTargetGroups",
        json!({"PageSize": 2, "Marker": p1["NextMarker"]}),
    );
    assert_eq!(p2["TargetGroups"][0]["TargetGroupName"], "zz");
    assert!(p2.get("NextMarker").is_none_or(Value::is_null));
}

#[test]
fn target_group_attributes() {
    let t = T::new();
    let arn = t.tg("web", "HTTP");
    let a = t.ok(
        "DescribeTargetGroupAttributes",
        json!({"TargetGroupArn": arn}),
    );
    let list = a["Attributes"].as_array().unwrap();
    for (k, v) in [
        ("deregistration_delay.timeout_seconds", "300"),
        ("stickiness.enabled", "false"),
        ("stickiness.type", "lb_cookie"),
        ("stickiness.lb_cookie.duration_seconds", "86400"),
        ("load_balancing.algorithm.type", "round_robin"),
        ("slow_start.duration_seconds", "0"),
    ] {
        assert!(list.contains(&json!({"Key": k, "Value": v})), "{k}");
    }
    let out = t.ok(
        "ModifyTargetGroupAttributes",
        json!({"TargetGroupArn": arn, "Attributes": [
            {"Key": "stickiness.enabled", "Value": "true"},
            {"Key": "load_balancing.algorithm.type", "Value": "least_outstanding_requests"},
            {"Key": "slow_start.duration_seconds", "Value": "0"},
        ]}),
    );
    assert!(out["Attributes"]
        .as_array()
        .unwrap()
        .contains(&json!({"Key": "stickiness.enabled", "Value": "true"})));
    for (k, v) in [
        ("slow_start.duration_seconds", "10"),
        ("load_balancing.algorithm.type", "random"),
        ("deregistration_delay.timeout_seconds", "3601"),
        ("stickiness.type", "source_ip"),
        ("proxy_protocol_v2.enabled", "true"),
    ] {
        let e = t.err(
            "ModifyTargetGroupAttributes",
            json!({"TargetGroupArn": arn, "Attributes": [{"Key": k, "Value": v}]}),
        );
        assert_eq!(e.code, "InvalidConfigurationRequest", "{k}={v}");
    }
    // Valid, but not carried out by the data plane yet: refused, nothing stored.
    let e = t.err(
        "ModifyTargetGroupAttributes",
        json!({"TargetGroupArn": arn, "Attributes": [{"Key": "load_balancing.algorithm.type", "Value": "weighted_random"}]}),
    );
    assert_eq!(e.code, "NotImplemented");
    assert!(e.message.contains("weighted_random"), "{}", e.message);
    // Any other attribute the data plane does not act on may only keep its default.
    for (k, v) in [
        ("slow_start.duration_seconds", "30"),
        ("load_balancing.cross_zone.enabled", "false"),
        (
            "target_group_health.dns_failover.minimum_healthy_targets.count",
            "2",
        ),
        ("load_balancing.algorithm.anomaly_mitigation", "on"),
    ] {
        let e = t.err(
            "ModifyTargetGroupAttributes",
            json!({"TargetGroupArn": arn, "Attributes": [{"Key": k, "Value": v}]}),
        );
        assert_eq!(e.code, "NotImplemented", "{k}={v}");
        assert!(e.message.contains(k), "{}", e.message);
    }
    let a = t.ok(
        "DescribeTargetGroupAttributes",
        json!({"TargetGroupArn": arn}),
    );
    assert!(a["Attributes"].as_array().unwrap().contains(
        &json!({"Key": "load_balancing.algorithm.type", "Value": "least_outstanding_requests"})
    ));
    let e = t.err(
        "ModifyTargetGroupAttributes",
        json!({"TargetGroupArn": arn, "Attributes": [{"Key": "stickiness.type", "Value": "app_cookie"}]}),
    );
    assert!(e.message.contains("cookie_name"), "{}", e.message);
    let tcp = t.tg("tcp", "TCP");
    let a = t.ok(
        "DescribeTargetGroupAttributes",
        json!({"TargetGroupArn": tcp}),
    );
    assert!(a["Attributes"]
        .as_array()
        .unwrap()
        .contains(&json!({"Key": "preserve_client_ip.enabled", "Value": "false"})));
    for (k, v) in [
        ("proxy_protocol_v2.enabled", "true"),
        ("preserve_client_ip.enabled", "false"),
    ] {
        let e = t.err(
            "ModifyTargetGroupAttributes",
            json!({"TargetGroupArn": tcp, "Attributes": [{"Key": k, "Value": v}]}),
        );
        assert_eq!(e.code, "NotImplemented", "{k}={v}");
    }
}

#[test]
fn targets_and_their_health() {
    let t = T::new();
    let arn = t.tg("web", "HTTP");
    for (id, code) in [
        ("not-an-ip", "InvalidTarget"),
        ("8.8.8.8", "InvalidTarget"),
        ("i-0123456789abcdef0", "InvalidTarget"),
    ] {
        let e = t.err(
            "RegisterTargets",
            json!({"TargetGroupArn": arn, "Targets": [{"Id": id}]}),
        );
        assert_eq!(e.code, code, "{id}");
    }
    t.ok(
        "RegisterTargets",
        json!({"TargetGroupArn": arn, "Targets": [{"Id": "172.31.0.10"}, {"Id": "10.1.2.3", "Port": 8080}]}),
    );
    let h = t.ok("DescribeTargetHealth", json!({"TargetGroupArn": arn}));
    let d = &h["TargetHealthDescriptions"];
    assert_eq!(d.as_array().unwrap().len(), 2);
    assert_eq!(d[0]["Target"], json!({"Id": "172.31.0.10", "Port": 80}));
    assert_eq!(d[0]["HealthCheckPort"], "80");
    assert_eq!(
        d[0]["TargetHealth"],
        json!({"State": "unused", "Reason": "Target.NotInUse",
               "Description": "Target group is not configured to receive traffic from the load balancer"})
    );
    // Once a listener forwards to the group: initial, registration in progress.
    let lb = t.alb("web");
    t.listener(&lb, 80, &arn);
    let h = t.ok("DescribeTargetHealth", json!({"TargetGroupArn": arn}));
    assert_eq!(
        h["TargetHealthDescriptions"][1]["TargetHealth"],
        json!({"State": "initial", "Reason": "Elb.RegistrationInProgress",
               "Description": "Target registration is in progress"})
    );
    assert_eq!(h["TargetHealthDescriptions"][1]["HealthCheckPort"], "8080");
    // Asking for one that is not registered.
    let h = t.ok(
        "DescribeTargetHealth",
        json!({"TargetGroupArn": arn, "Targets": [{"Id": "10.9.9.9"}]}),
    );
    assert_eq!(
        h["TargetHealthDescriptions"][0]["TargetHealth"]["Reason"],
        "Target.NotRegistered"
    );
    // Deregistered targets of a group in use drain (the data plane removes them later);
    // a target that was never registered is ignored.
    t.ok(
        "DeregisterTargets",
        json!({"TargetGroupArn": arn, "Targets": [{"Id": "10.1.2.3", "Port": 8080}, {"Id": "10.5.5.5"}]}),
    );
    let h = t.ok("DescribeTargetHealth", json!({"TargetGroupArn": arn}));
    let states: Vec<(&str, &str)> = h["TargetHealthDescriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (s(&d["Target"]["Id"]), s(&d["TargetHealth"]["State"])))
        .collect();
    assert_eq!(
        states,
        [("172.31.0.10", "initial"), ("10.1.2.3", "draining")]
    );
    assert_eq!(
        h["TargetHealthDescriptions"][1]["TargetHealth"]["Reason"],
        "Target.DeregistrationInProgress"
    );
    // Registered again while draining: back to initial.
    t.ok(
        "RegisterTargets",
        json!({"TargetGroupArn": arn, "Targets": [{"Id": "10.1.2.3", "Port": 8080}]}),
    );
    let h = t.ok("DescribeTargetHealth", json!({"TargetGroupArn": arn}));
    assert_eq!(
        h["TargetHealthDescriptions"][1]["TargetHealth"]["State"],
        "initial"
    );
    t.ok(
        "DeregisterTargets",
        json!({"TargetGroupArn": arn, "Targets": [{"Id": "10.1.2.3", "Port": 8080}]}),
    );
    // Registering twice is one registration (beside the draining one).
    t.ok(
        "RegisterTargets",
        json!({"TargetGroupArn": arn, "Targets": [{"Id": "172.31.0.10"}]}),
    );
    let h = t.ok("DescribeTargetHealth", json!({"TargetGroupArn": arn}));
    assert_eq!(h["TargetHealthDescriptions"].as_array().unwrap().len(), 2);

    // Instance targets: ids by format.
    let out = t.ok(
        "CreateTargetGroup",
        json!({"Name": "inst", "Protocol": "HTTP", "Port": 80, "VpcId": t.vpc()}),
    );
    let inst = s(&out["TargetGroups"][0]["TargetGroupArn"]).to_string();
    t.ok(
        "RegisterTargets",
        json!({"TargetGroupArn": inst, "Targets": [{"Id": "i-0123456789abcdef0"}]}),
    );
    let e = t.err(
        "RegisterTargets",
        json!({"TargetGroupArn": inst, "Targets": [{"Id": "10.0.0.1"}]}),
    );
    assert_eq!(e.code, "InvalidTarget");
}

#[test]
fn listeners_forward_redirect_and_fixed_response() {
    let t = T::new();
    let lb = t.alb("web");
    let tg = t.tg("web", "HTTP");
    let l = t.listener(&lb, 80, &tg);
    assert!(l.contains(":listener/app/web/"));
    let got = &t.ok("DescribeListeners", json!({"LoadBalancerArn": lb}))["Listeners"][0];
    assert_eq!(got["Port"], 80);
    assert_eq!(
        got["DefaultActions"][0],
        json!({"Type": "forward", "TargetGroupArn": tg, "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": tg, "Weight": 1}],
            "TargetGroupStickinessConfig": {"Enabled": false}}})
    );
    let g = &t.ok("DescribeTargetGroups", json!({"TargetGroupArns": [tg]}))["TargetGroups"][0];
    assert_eq!(g["LoadBalancerArns"], json!([lb]));
    let by_lb = t.ok("DescribeTargetGroups", json!({"LoadBalancerArn": lb}));
    assert_eq!(by_lb["TargetGroups"].as_array().unwrap().len(), 1);

    let fwd = json!([{"Type": "forward", "TargetGroupArn": tg}]);
    let e = t.err(
        "CreateListener",
        json!({"LoadBalancerArn": lb, "Protocol": "HTTP", "Port": 80, "DefaultActions": fwd}),
    );
    assert_eq!(e.code, "DuplicateListener");
    let e = t.err(
        "CreateListener",
        json!({"LoadBalancerArn": lb, "Protocol": "TCP", "Port": 81, "DefaultActions": fwd}),
    );
    assert_eq!(e.code, "UnsupportedProtocol");
    let e = t.err(
        "CreateListener",
        json!({"LoadBalancerArn": lb, "Protocol": "HTTPS", "Port": 443, "DefaultActions": fwd}),
    );
    assert_eq!(e.code, "CertificateNotFound");
    let e = t.err(
        "CreateListener",
        json!({"LoadBalancerArn": lb, "Protocol": "HTTPS", "Port": 443, "DefaultActions": fwd,
               "Certificates": [{"CertificateArn": "arn:aws:acm:us-east-1:000000000000:certificate/x"}]}),
    );
    assert_eq!((e.status, e.code.as_str()), (501, "NotImplemented"));
    let tcp = t.tg("tcp", "TCP");
    let e = t.err(
        "CreateListener",
        json!({"LoadBalancerArn": lb, "Protocol": "HTTP", "Port": 81,
               "DefaultActions": [{"Type": "forward", "TargetGroupArn": tcp}]}),
    );
    assert_eq!(e.code, "IncompatibleProtocols");
    let e = t.err(
        "CreateListener",
        json!({"LoadBalancerArn": lb, "Protocol": "HTTP", "Port": 81,
               "DefaultActions": [{"Type": "forward", "TargetGroupArn": tg.replace("/web/", "/gone/")}]}),
    );
    assert_eq!(e.code, "TargetGroupNotFound");
    // A group is used by one load balancer only.
    let lb2 = t.alb("two");
    let e = t.err(
        "CreateListener",
        json!({"LoadBalancerArn": lb2, "Protocol": "HTTP", "Port": 80, "DefaultActions": fwd}),
    );
    assert_eq!(e.code, "TargetGroupAssociationLimit");
    // A group in another VPC.
    let (other_vpc, _) = t.other_vpc_subnet();
    let out = t.ok(
        "CreateTargetGroup",
        json!({"Name": "far", "Protocol": "HTTP", "Port": 80, "VpcId": other_vpc}),
    );
    let far = s(&out["TargetGroups"][0]["TargetGroupArn"]).to_string();
    let e = t.err(
        "CreateListener",
        json!({"LoadBalancerArn": lb2, "Protocol": "HTTP", "Port": 80,
               "DefaultActions": [{"Type": "forward", "TargetGroupArn": far}]}),
    );
    assert_eq!(e.code, "InvalidConfigurationRequest");

    // Weighted forward with stickiness.
    let b = t.tg("b", "HTTP");
    let c = t.tg("c", "HTTP");
    let out = t.ok(
        "CreateListener",
        json!({"LoadBalancerArn": lb2, "Protocol": "HTTP", "Port": 8080, "DefaultActions": [{
            "Type": "forward", "ForwardConfig": {
                "TargetGroups": [{"TargetGroupArn": b, "Weight": 3}, {"TargetGroupArn": c}],
                "TargetGroupStickinessConfig": {"Enabled": true, "DurationSeconds": 60}}}]}),
    );
    let a = &out["Listeners"][0]["DefaultActions"][0];
    assert!(a.get("TargetGroupArn").is_none());
    assert_eq!(a["ForwardConfig"]["TargetGroups"][1]["Weight"], 1);
    assert_eq!(
        a["ForwardConfig"]["TargetGroupStickinessConfig"],
        json!({"Enabled": true, "DurationSeconds": 60})
    );
    let e = t.err(
        "CreateListener",
        json!({"LoadBalancerArn": lb2, "Protocol": "HTTP", "Port": 8081, "DefaultActions": [{
            "Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": b, "Weight": 1000}]}}]}),
    );
    assert_eq!(e.code, "ValidationError");

    // Redirect (filled in as AWS reports it), loops refused; fixed responses.
    let out = t.ok(
        "CreateListener",
        json!({"LoadBalancerArn": lb2, "Protocol": "HTTP", "Port": 81, "DefaultActions": [{
            "Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}]}),
    );
    assert_eq!(
        out["Listeners"][0]["DefaultActions"][0]["RedirectConfig"],
        json!({"Protocol": "HTTPS", "Port": "443", "Host": "#{host}", "Path": "/#{path}",
               "Query": "#{query}", "StatusCode": "HTTP_301"})
    );
    let e = t.err(
        "CreateListener",
        json!({"LoadBalancerArn": lb2, "Protocol": "HTTP", "Port": 82, "DefaultActions": [{
            "Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_302"}}]}),
    );
    assert_eq!(e.code, "InvalidLoadBalancerAction");
    t.ok(
        "CreateListener",
        json!({"LoadBalancerArn": lb2, "Protocol": "HTTP", "Port": 82, "DefaultActions": [{
            "Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404", "ContentType": "text/plain", "MessageBody": "no"}}]}),
    );
    let e = t.err(
        "CreateListener",
        json!({"LoadBalancerArn": lb2, "Protocol": "HTTP", "Port": 83, "DefaultActions": [{
            "Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "302"}}]}),
    );
    assert_eq!(e.code, "ValidationError");

    // Groups in use cannot be deleted.
    let e = t.err("DeleteTargetGroup", json!({"TargetGroupArn": tg}));
    assert_eq!(e.code, "ResourceInUse");

    // ModifyListener: port clash, then a new default action releases the old group.
    let e = t.err(
        "ModifyListener",
        json!({"ListenerArn": l, "Port": 80, "Protocol": "TCP"}),
    );
    assert_eq!(e.code, "UnsupportedProtocol");
    let other = t.tg("other", "HTTP");
    let out = t.ok(
        "ModifyListener",
        json!({"ListenerArn": l, "Port": 8000, "DefaultActions": [{"Type": "forward", "TargetGroupArn": other}]}),
    );
    assert_eq!(out["Listeners"][0]["Port"], 8000);
    t.ok("DeleteTargetGroup", json!({"TargetGroupArn": tg}));

    // NLB listeners: TCP to TCP groups.
    let nlb = t.nlb("net");
    let out = t.ok(
        "CreateListener",
        json!({"LoadBalancerArn": nlb, "Protocol": "TCP", "Port": 5432,
               "DefaultActions": [{"Type": "forward", "TargetGroupArn": tcp}]}),
    );
    assert!(s(&out["Listeners"][0]["ListenerArn"]).contains(":listener/net/net/"));
    let e = t.err(
        "CreateListener",
        json!({"LoadBalancerArn": nlb, "Protocol": "HTTP", "Port": 80,
               "DefaultActions": [{"Type": "forward", "TargetGroupArn": b}]}),
    );
    assert_eq!(e.code, "UnsupportedProtocol");

    t.ok("DeleteListener", json!({"ListenerArn": l}));
    let e = t.err("DeleteListener", json!({"ListenerArn": l}));
    assert_eq!(e.code, "ListenerNotFound");
    t.ok("DeleteTargetGroup", json!({"TargetGroupArn": other}));
}

#[test]
fn rules_conditions_priorities() {
    let t = T::new();
    let lb = t.alb("web");
    let tg = t.tg("web", "HTTP");
    let api = t.tg("api", "HTTP");
    let l = t.listener(&lb, 80, &tg);
    let fwd = json!([{"Type": "forward", "TargetGroupArn": api}]);
    let out = t.ok(
        "CreateRule",
        json!({"ListenerArn": l, "Priority": 10, "Actions": fwd,
               "Conditions": [{"Field": "path-pattern", "Values": ["/api/*"]}]}),
    );
    let r = &out["Rules"][0];
    assert_eq!(r["Priority"], "10");
    assert_eq!(r["IsDefault"], false);
    assert_eq!(
        r["Conditions"][0],
        json!({"Field": "path-pattern", "Values": ["/api/*"], "PathPatternConfig": {"Values": ["/api/*"]}})
    );
    let rule = s(&r["RuleArn"]).to_string();
    assert!(rule.contains(":listener-rule/app/web/"));
    let e = t.err(
        "CreateRule",
        json!({"ListenerArn": l, "Priority": 10, "Actions": fwd,
               "Conditions": [{"Field": "host-header", "HostHeaderConfig": {"Values": ["a.example.com"]}}]}),
    );
    assert_eq!(e.code, "PriorityInUse");
    let e = t.err(
        "CreateRule",
        json!({"ListenerArn": l, "Priority": 11, "Actions": fwd,
               "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/a", "/b", "/c"]}},
                              {"Field": "host-header", "HostHeaderConfig": {"Values": ["a.example.com", "b.example.com", "c.example.com"]}}]}),
    );
    assert_eq!(e.code, "ValidationError");
    assert_eq!(e.message, "A rule can only have '5' condition values");
    for (cond, frag) in [
        (
            json!({"Field": "path-pattern", "Values": ["/a b"]}),
            "character ' '",
        ),
        (
            json!({"Field": "host-header", "Values": ["localhost"]}),
            "must contain a '.'",
        ),
        (json!({"Field": "nope", "Values": ["x"]}), "must be one of"),
        (
            json!({"Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.0/33"]}}),
            "not a valid CIDR",
        ),
        (
            json!({"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["get"]}}),
            "not allowed",
        ),
        (
            json!({"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "Host", "Values": ["x"]}}),
            "Host header",
        ),
        (
            json!({"Field": "query-string", "Values": ["a"]}),
            "QueryStringConfig",
        ),
        (
            json!({"Field": "path-pattern", "PathPatternConfig": {"Values": ["/x"]}, "HostHeaderConfig": {"Values": ["a.b.com"]}}),
            "can only be specified",
        ),
    ] {
        let e = t.err(
            "CreateRule",
            json!({"ListenerArn": l, "Priority": 12, "Actions": fwd, "Conditions": [cond]}),
        );
        assert_eq!(e.code, "ValidationError", "{cond}");
        assert!(e.message.contains(frag), "{cond}: {}", e.message);
    }
    let out = t.ok(
        "CreateRule",
        json!({"ListenerArn": l, "Priority": 20, "Actions": [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "204"}}],
               "Conditions": [
                   {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Env", "Values": ["blue"]}},
                   {"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "v", "Value": "2"}]}},
                   {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["GET"]}},
                   {"Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.0/8"]}}]}),
    );
    let r20 = s(&out["Rules"][0]["RuleArn"]).to_string();

    let rules = t.ok("DescribeRules", json!({"ListenerArn": l}))["Rules"].clone();
    let prios: Vec<&str> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| s(&r["Priority"]))
        .collect();
    assert_eq!(prios, ["10", "20", "default"]);
    let default = &rules[2];
    assert_eq!(default["IsDefault"], true);
    assert_eq!(default["Conditions"], json!([]));
    assert_eq!(default["Actions"][0]["TargetGroupArn"], tg.as_str());
    let default_arn = s(&default["RuleArn"]).to_string();
    let e = t.err("DeleteRule", json!({"RuleArn": default_arn}));
    assert_eq!(e.code, "OperationNotPermitted");
    let got = t.ok("DescribeRules", json!({"RuleArns": [default_arn]}));
    assert_eq!(got["Rules"][0]["IsDefault"], true);

    // The api group is used by the rule: the load balancer shows on it; it cannot go.
    let e = t.err("DeleteTargetGroup", json!({"TargetGroupArn": api}));
    assert_eq!(e.code, "ResourceInUse");

    // Priorities swap in one request; a clash is refused.
    let out = t.ok(
        "SetRulePriorities",
        json!({"RulePriorities": [{"RuleArn": rule, "Priority": 20}, {"RuleArn": r20, "Priority": 10}]}),
    );
    assert_eq!(out["Rules"][0]["RuleArn"], r20.as_str());
    let e = t.err(
        "SetRulePriorities",
        json!({"RulePriorities": [{"RuleArn": rule, "Priority": 10}]}),
    );
    assert_eq!(e.code, "PriorityInUse");
    let e = t.err(
        "SetRulePriorities",
        json!({"RulePriorities": [{"RuleArn": default_arn, "Priority": 5}]}),
    );
    assert_eq!(e.code, "OperationNotPermitted");

    // ModifyRule: new actions release the old group.
    let out = t.ok(
        "ModifyRule",
        json!({"RuleArn": rule, "Actions": [{"Type": "forward", "TargetGroupArn": tg}],
               "Conditions": [{"Field": "path-pattern", "Values": ["/v2/*"]}]}),
    );
    assert_eq!(out["Rules"][0]["Conditions"][0]["Values"], json!(["/v2/*"]));
    t.ok("DeleteTargetGroup", json!({"TargetGroupArn": api}));
    let e = t.err(
        "ModifyRule",
        json!({"RuleArn": default_arn, "Conditions": [{"Field": "path-pattern", "Values": ["/x"]}]}),
    );
    assert_eq!(e.code, "OperationNotPermitted");
    let out = t.ok(
        "ModifyRule",
        json!({"RuleArn": default_arn, "Actions": [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503"}}]}),
    );
    assert_eq!(out["Rules"][0]["Actions"][0]["Type"], "fixed-response");
    let l_now = &t.ok("DescribeListeners", json!({"ListenerArns": [l]}))["Listeners"][0];
    assert_eq!(l_now["DefaultActions"][0]["Type"], "fixed-response");

    t.ok("DeleteRule", json!({"RuleArn": r20}));
    let e = t.err("DeleteRule", json!({"RuleArn": r20}));
    assert_eq!(e.code, "RuleNotFound");
}

#[test]
fn deleting_a_load_balancer_takes_its_listeners_and_rules() {
    let t = T::new();
    let lb = t.alb("web");
    let tg = t.tg("web", "HTTP");
    let api = t.tg("api", "HTTP");
    let l = t.listener(&lb, 80, &tg);
    let out = t.ok(
        "CreateRule",
        json!({"ListenerArn": l, "Priority": 1, "Actions": [{"Type": "forward", "TargetGroupArn": api}],
               "Conditions": [{"Field": "path-pattern", "Values": ["/api/*"]}]}),
    );
    let rule = s(&out["Rules"][0]["RuleArn"]).to_string();
    t.ok(
        "RegisterTargets",
        json!({"TargetGroupArn": api, "Targets": [{"Id": "172.31.0.9"}]}),
    );
    t.ok("DeleteLoadBalancer", json!({"LoadBalancerArn": lb}));
    assert_eq!(
        t.err("DescribeListeners", json!({"ListenerArns": [l]}))
            .code,
        "ListenerNotFound"
    );
    assert_eq!(
        t.err("DescribeRules", json!({"RuleArns": [rule]})).code,
        "RuleNotFound"
    );
    let g = t.ok("DescribeTargetGroups", json!({}));
    for g in g["TargetGroups"].as_array().unwrap() {
        assert_eq!(g["LoadBalancerArns"], json!([]));
    }
    let h = t.ok("DescribeTargetHealth", json!({"TargetGroupArn": api}));
    assert_eq!(
        h["TargetHealthDescriptions"][0]["TargetHealth"]["State"],
        "unused"
    );
    t.ok("DeleteTargetGroup", json!({"TargetGroupArn": api}));
    t.ok("DeleteTargetGroup", json!({"TargetGroupArn": tg}));
    assert!(t.store.list(&format!("/{A}/{R}/elbv2/")).is_empty());
}

#[test]
fn tags_on_every_kind() {
    let t = T::new();
    let lb = t.alb("web");
    let tg = t.tg("web", "HTTP");
    let l = t.listener(&lb, 80, &tg);
    let default_rule =
        s(&t.ok("DescribeRules", json!({"ListenerArn": l}))["Rules"][0]["RuleArn"]).to_string();
    let out = t.ok(
        "CreateLoadBalancer",
        json!({"Name": "tagged", "Subnets": [t.subnets()[0], t.subnets()[1]], "Tags": [{"Key": "env", "Value": "dev"}]}),
    );
    let tagged = s(&out["LoadBalancers"][0]["LoadBalancerArn"]).to_string();
    let all = json!([lb, tg, l, default_rule, tagged]);
    t.ok(
        "AddTags",
        json!({"ResourceArns": all, "Tags": [{"Key": "team", "Value": "a"}]}),
    );
    let d = t.ok("DescribeTags", json!({"ResourceArns": all}));
    for i in 0..4 {
        assert_eq!(
            d["TagDescriptions"][i]["Tags"],
            json!([{"Key": "team", "Value": "a"}])
        );
    }
    assert_eq!(
        d["TagDescriptions"][4]["Tags"],
        json!([{"Key": "env", "Value": "dev"}, {"Key": "team", "Value": "a"}])
    );
    t.ok(
        "AddTags",
        json!({"ResourceArns": [lb], "Tags": [{"Key": "team", "Value": "b"}]}),
    );
    t.ok(
        "RemoveTags",
        json!({"ResourceArns": [tg], "TagKeys": ["team"]}),
    );
    let d = t.ok("DescribeTags", json!({"ResourceArns": [lb, tg]}));
    assert_eq!(
        d["TagDescriptions"][0]["Tags"],
        json!([{"Key": "team", "Value": "b"}])
    );
    assert_eq!(d["TagDescriptions"][1]["Tags"], json!([]));
    let e = t.err(
        "AddTags",
        json!({"ResourceArns": [lb], "Tags": [{"Key": "k", "Value": "1"}, {"Key": "k", "Value": "2"}]}),
    );
    assert_eq!(e.code, "DuplicateTagKeys");
    let many: Vec<Value> = (0..50)
        .map(|i| json!({"Key": format!("k{i}"), "Value": ""}))
        .collect();
    let e = t.err("AddTags", json!({"ResourceArns": [lb], "Tags": many}));
    assert_eq!(e.code, "TooManyTags");
    // One missing resource: nothing is tagged.
    let e = t.err(
        "AddTags",
        json!({"ResourceArns": [lb, tg.replace("/web/", "/gone/")], "Tags": [{"Key": "x"}]}),
    );
    assert_eq!(e.code, "TargetGroupNotFound");
}

#[test]
fn the_wire_speaks_aws_query() {
    let t = T::new();
    let form = |pairs: &[(&str, &str)]| -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let subs = t.subnets();
    let r = berth_wire::service::handle_query(
        &t.elb,
        &ctx(),
        &form(&[
            ("Action", "CreateLoadBalancer"),
            ("Version", "2015-12-01"),
            ("Name", "wire"),
            ("Subnets.member.1", &subs[0]),
            ("Subnets.member.2", &subs[1]),
            ("Tags.member.1.Key", "a"),
            ("Tags.member.1.Value", "b"),
        ]),
    );
    let body = String::from_utf8(r.body).unwrap();
    assert_eq!(r.status, 200, "{body}");
    assert!(body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><CreateLoadBalancerResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><CreateLoadBalancerResult><LoadBalancers><member>"), "{body}");
    assert!(
        body.contains("<State><Code>active</Code></State>"),
        "{body}"
    );
    assert!(body.contains("<LoadBalancerName>wire</LoadBalancerName>"));

    let r = berth_wire::service::handle_query(
        &t.elb,
        &ctx(),
        &form(&[
            ("Action", "CreateTargetGroup"),
            ("Version", "2015-12-01"),
            ("Name", "bad"),
            ("Port", "eighty"),
        ]),
    );
    let body = String::from_utf8(r.body).unwrap();
    assert_eq!(r.status, 400);
    assert!(body.contains("<Code>ValidationError</Code>"), "{body}");
    let r = berth_wire::service::handle_query(
        &t.elb,
        &ctx(),
        &form(&[
            ("Action", "CreateTargetGroup"),
            ("Version", "2015-12-01"),
            ("Name", "bad"),
            ("Port", "70000"),
        ]),
    );
    assert_eq!(r.status, 400);
    let r = berth_wire::service::handle_query(
        &t.elb,
        &ctx(),
        &form(&[("Action", "DescribeSSLPolicies"), ("Version", "2015-12-01")]),
    );
    assert_eq!(r.status, 501);
    assert!(String::from_utf8(r.body)
        .unwrap()
        .contains("<Code>NotImplemented</Code>"));
}

#[test]
fn a_member_the_model_lacks_is_refused() {
    let t = T::new();
    let subs = t.subnets();
    // Over the wire: a form parameter naming nothing in the operation's input.
    let form: Params = [
        ("Action", "CreateLoadBalancer"),
        ("Version", "2015-12-01"),
        ("Name", "typo"),
        ("Subnets.member.1", subs[0].as_str()),
        ("Subnets.member.2", subs[1].as_str()),
        ("Schema", "internal"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let before = t.store.revision();
    let r = berth_wire::service::handle_query(&t.elb, &ctx(), &form);
    let body = String::from_utf8(r.body).unwrap();
    assert_eq!(r.status, 400, "{body}");
    assert!(body.contains("<Code>ValidationError</Code>"), "{body}");
    assert!(body.contains("Schema"), "{body}");
    assert_eq!(t.store.revision(), before, "nothing was written");
    // In the document, at the top and nested: the typed input refuses it.
    let e = t.err(
        "CreateLoadBalancer",
        json!({"Name": "typo", "Subnets": [subs[0], subs[1]], "Schema": "internal"}),
    );
    assert_eq!((e.status, e.code.as_str()), (400, "ValidationError"));
    assert!(e.message.contains("Schema"), "{}", e.message);
    let tg = t.tg("g", "HTTP");
    let e = t.err(
        "RegisterTargets",
        json!({"TargetGroupArn": tg, "Targets": [{"Id": "10.0.0.5", "Prot": 80}]}),
    );
    assert_eq!((e.status, e.code.as_str()), (400, "ValidationError"));
    // A required member missing is refused the same way, before the handler.
    let e = t.err("DescribeTargetHealth", json!({}));
    assert_eq!((e.status, e.code.as_str()), (400, "ValidationError"));
}

#[test]
fn load_balancers_lease_an_address_in_each_subnet() {
    let t = T::new();
    let st = t.store.as_ref();
    let owned = |arn: &str| -> Vec<String> {
        let mut v: Vec<String> = berth_leases::ipam::leases(st)
            .into_iter()
            .filter(|(_, o)| o == arn)
            .map(|(ip, _)| ip.to_string())
            .collect();
        v.sort();
        v
    };
    let alb = t.alb("web");
    let d = t.ok("DescribeLoadBalancers", json!({"LoadBalancerArns": [alb]}));
    let mut shown: Vec<String> = d["LoadBalancers"][0]["AvailabilityZones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| s(&z["LoadBalancerAddresses"][0]["IpAddress"]).to_string())
        .collect();
    shown.sort();
    assert_eq!(shown.len(), 2);
    assert_eq!(owned(&alb), shown, "what it shows is what it holds");
    // Repeating the create returns the same load balancer and leases nothing more.
    let n = berth_leases::ipam::leases(st).len();
    let sub = t.subnets();
    t.ok(
        "CreateLoadBalancer",
        json!({"Name": "web", "Subnets": [sub[0], sub[1]]}),
    );
    assert_eq!(berth_leases::ipam::leases(st).len(), n);
    // SetSubnets keeps the kept subnet's address and frees the dropped one's.
    let kept = t.ok("DescribeLoadBalancers", json!({"LoadBalancerArns": [alb]}))["LoadBalancers"]
        [0]["AvailabilityZones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|z| z["SubnetId"] == sub[0].as_str())
        .unwrap()["LoadBalancerAddresses"][0]["IpAddress"]
        .clone();
    t.ok(
        "SetSubnets",
        json!({"LoadBalancerArn": alb, "Subnets": [sub[0], sub[2]]}),
    );
    let now = owned(&alb);
    assert_eq!(now.len(), 2);
    assert!(now.contains(&s(&kept).to_string()));
    // Deleted: every address is free again.
    t.ok("DeleteLoadBalancer", json!({"LoadBalancerArn": alb}));
    assert!(owned(&alb).is_empty());

    // A network load balancer may ask for its address; a taken one is refused.
    let cidr = berth_ec2::subnet_info(st, A, R, &sub[0])
        .unwrap()
        .cidr_block;
    let base: std::net::Ipv4Addr = cidr.split('/').next().unwrap().parse().unwrap();
    let want = std::net::Ipv4Addr::from(u32::from(base) + 77).to_string();
    let out = t.ok(
        "CreateLoadBalancer",
        json!({"Name": "tcp", "Type": "network", "Scheme": "internal",
               "SubnetMappings": [{"SubnetId": sub[0], "PrivateIPv4Address": want}]}),
    );
    let addr = &out["LoadBalancers"][0]["AvailabilityZones"][0]["LoadBalancerAddresses"][0];
    assert_eq!(addr["IpAddress"], want.as_str());
    assert_eq!(addr["PrivateIPv4Address"], want.as_str());
    let e = t.err(
        "CreateLoadBalancer",
        json!({"Name": "tcp2", "Type": "network", "Scheme": "internal",
               "SubnetMappings": [{"SubnetId": sub[0], "PrivateIPv4Address": want}]}),
    );
    assert_eq!(e.code, "InvalidSubnet");
}

#[test]
fn published_listeners_lease_their_host_ports() {
    let mut t = T::new();
    let lo = std::net::Ipv4Addr::LOCALHOST;
    t.elb = Elbv2::new(t.store.clone(), Clock::default()).publishing(Some(lo));
    // Two free ports, found by binding; one then held by a "host process".
    let free = || {
        std::net::TcpListener::bind((lo, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (p1, p2) = (free(), free());
    let busy = std::net::TcpListener::bind((lo, 0)).unwrap();
    let p3 = busy.local_addr().unwrap().port();
    let lease = |p: u16| {
        t.store
            .get(&berth_leases::ports::port_key("tcp", p))
            .map(|r| r.value["owner"].as_str().unwrap_or("").to_string())
    };
    let (a, b) = (t.alb("one"), t.alb("two"));
    let (tg, tg2) = (t.tg("web", "HTTP"), t.tg("web2", "HTTP"));
    let l1 = t.listener(&a, p1 as i64, &tg);
    assert_eq!(lease(p1).as_deref(), Some(l1.as_str()));
    // The same port on another load balancer: refused, nothing written.
    let e = t.err(
        "CreateListener",
        json!({"LoadBalancerArn": b, "Protocol": "HTTP", "Port": p1,
               "DefaultActions": [{"Type": "forward", "TargetGroupArn": tg2}]}),
    );
    assert_eq!(e.code, "InvalidConfigurationRequest");
    assert!(e.message.contains("--publish-lb"), "{}", e.message);
    let e = t.err(
        "CreateListener",
        json!({"LoadBalancerArn": b, "Protocol": "HTTP", "Port": p3,
               "DefaultActions": [{"Type": "forward", "TargetGroupArn": tg2}]}),
    );
    assert!(
        e.message.contains("in use by another process"),
        "{}",
        e.message
    );
    // Moving the listener moves its lease; deleting its load balancer frees it.
    t.ok("ModifyListener", json!({"ListenerArn": l1, "Port": p2}));
    assert_eq!(lease(p1), None);
    assert_eq!(lease(p2).as_deref(), Some(l1.as_str()));
    t.listener(&b, p1 as i64, &tg2);
    t.ok("DeleteLoadBalancer", json!({"LoadBalancerArn": a}));
    assert_eq!(lease(p2), None);
    drop(busy);
}
