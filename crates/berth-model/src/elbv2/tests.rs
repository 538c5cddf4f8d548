use super::*;
use serde_json::json;

/// Read as `T`, written back: the same JSON.
fn round_trip<T: serde::de::DeserializeOwned + Serialize>(v: Value) -> T {
    let t: T = from_value(&v).unwrap();
    assert_eq!(to_value(&t), v);
    t
}

#[test]
fn rule_records_keep_their_layout() {
    let r: RuleRecord = round_trip(json!({
        "Rule": {"RuleArn": "arn", "Priority": "10", "IsDefault": false,
            "Conditions": [
                {"Field": "host-header", "Values": ["a.example.com"], "HostHeaderConfig": {"Values": ["a.example.com"]}},
                {"Field": "path-pattern", "Values": ["/x/*"], "PathPatternConfig": {"Values": ["/x/*"]}},
                {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-A", "Values": ["b"]}},
                {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["GET"]}},
                {"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "k", "Value": "v"}, {"Value": "w"}]}},
                {"Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.0/8"]}},
            ],
            "Actions": [{"Type": "forward", "TargetGroupArn": "tg", "Order": 1, "ForwardConfig": {
                "TargetGroups": [{"TargetGroupArn": "tg", "Weight": 1}],
                "TargetGroupStickinessConfig": {"Enabled": false}}}]},
        "Tags": [{"Key": "a", "Value": "b"}],
    }));
    assert_eq!(r.rule.conditions.len(), 6);
    assert_eq!(r.rule.actions[0].forward_groups(), vec![("tg", 1)]);
    round_trip::<Vec<Action>>(json!([
        {"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443",
            "Host": "#{host}", "Path": "/#{path}", "Query": "#{query}", "StatusCode": "HTTP_301"}},
        {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404", "MessageBody": "no"}},
    ]));
}

#[test]
fn unknown_fields_survive_and_unknown_conditions_do_not_parse() {
    round_trip::<Condition>(
        json!({"Field": "path-pattern", "PathPatternConfig": {"Values": ["/"], "New": 1}, "Later": true}),
    );
    round_trip::<Action>(json!({"Type": "forward", "Later": [1], "ForwardConfig": {
        "TargetGroups": [{"TargetGroupArn": "tg", "Weight": 2, "Other": "x"}]}}));
    assert!(from_value::<Condition>(&json!({"Field": "x-new", "XConfig": {}})).is_err());
    assert!(from_value::<Condition>(&json!({"Field": "host-header"})).is_err());
    assert!(from_value::<Action>(&json!({"Type": "authenticate-oidc"})).is_err());
}

#[test]
fn other_records_keep_their_layout() {
    let lb: LbRecord = round_trip(json!({
        "LoadBalancer": {"LoadBalancerArn": "a", "DNSName": "d", "CanonicalHostedZoneId": "Z",
            "CreatedTime": 1.5, "LoadBalancerName": "n", "Scheme": "internet-facing",
            "VpcId": "vpc-1", "State": {"Code": "active"}, "Type": "network",
            "AvailabilityZones": [{"ZoneName": "z", "SubnetId": "s", "LoadBalancerAddresses": [
                {"IpAddress": "10.0.0.4", "PrivateIPv4Address": "10.0.0.4"}]}],
            "IpAddressType": "ipv4", "SecurityGroups": ["sg-1"]},
        "Tags": [], "Attributes": {"idle_timeout.timeout_seconds": "60"},
    }));
    assert_eq!(
        lb.load_balancer.addresses(),
        vec![std::net::Ipv4Addr::new(10, 0, 0, 4)]
    );
    assert_eq!(lb.load_balancer.lb_type, LbType::Network);
    let tg: TgRecord = round_trip(json!({
        "TargetGroup": {"TargetGroupArn": "a", "TargetGroupName": "n", "Protocol": "HTTP",
            "Port": 80, "VpcId": "v", "TargetType": "ip", "IpAddressType": "ipv4",
            "HealthCheckProtocol": "HTTP", "HealthCheckPort": "traffic-port",
            "HealthCheckEnabled": true, "HealthCheckIntervalSeconds": 30,
            "HealthCheckTimeoutSeconds": 5, "HealthyThresholdCount": 5,
            "UnhealthyThresholdCount": 2, "HealthCheckPath": "/", "Matcher": {"HttpCode": "200"}},
        "Tags": [], "Attributes": {}, "UsedBy": {"l": "lb"},
    }));
    assert!(tg.in_use());
    let t: TargetsRecord = round_trip(json!({"TargetGroupArn": "a", "Targets": [
        {"Id": "10.0.0.5", "Port": 80, "State": "draining", "Reason": "r", "Description": "d",
         "DrainingSince": 100.5, "DrainSeconds": 30},
        {"Id": "i-1", "Port": 8080, "AvailabilityZone": "z", "State": "healthy"},
    ]}));
    assert_eq!(t.targets[0].drain_deadline(), Some(130.5));
    round_trip::<ListenerRecord>(json!({
        "Listener": {"ListenerArn": "l", "LoadBalancerArn": "a", "Port": 80, "Protocol": "HTTP",
            "DefaultActions": [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}]},
        "Tags": [], "DefaultRuleId": "0123456789abcdef", "DefaultRuleTags": [],
    }));
}
