//! Target groups and their targets: CreateTargetGroup, DescribeTargetGroups,
//! ModifyTargetGroup, DeleteTargetGroup, attributes, RegisterTargets, DeregisterTargets and
//! DescribeTargetHealth. Which listeners and rules forward to a group is kept in the
//! group's record (`UsedBy`), updated in the same transaction as the listener or rule.

use crate::common::*;
use crate::lb::{apply_attributes, refuse_unacted, render_attributes, AttrSpec, Kind};
use berth_model::elbv2 as model;
use berth_store::Record;
use berth_types::elbv2;
use berth_wire::{ApiError, ApiResult};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

pub const MAX_TARGETS: usize = 1000;

pub fn get(s: &Scope, arn: &str) -> ApiResult<Record> {
    match parse_arn(arn) {
        Some(Arn::Tg { name, .. }) => s
            .get(TG, &name)
            .filter(|r| r.value["TargetGroup"]["TargetGroupArn"] == arn)
            .ok_or_else(tg_not_found),
        _ => Err(bad_arn(arn, "target group")),
    }
}

fn targets_key(s: &Scope, tg_arn: &str) -> String {
    s.key(TARGETS, crate::lb::id_of(tg_arn))
}

/// Whether a protocol is an application load balancer's (HTTP, HTTPS) rather than a
/// network load balancer's.
pub fn is_http(protocol: &str) -> bool {
    protocol == "HTTP" || protocol == "HTTPS"
}

/// The model's `TargetGroup` with the load balancers that forward to it.
pub fn render(rec: &Value) -> Value {
    let mut tg = rec["TargetGroup"].clone();
    let lbs: BTreeSet<&str> = rec["UsedBy"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    tg["LoadBalancerArns"] = json!(lbs.into_iter().collect::<Vec<_>>());
    tg
}

pub fn in_use(rec: &Value) -> bool {
    rec["UsedBy"].as_object().is_some_and(|m| !m.is_empty())
}

const HC_FIELDS: &[&str] = &[
    "HealthCheckProtocol",
    "HealthCheckPort",
    "HealthCheckEnabled",
    "HealthCheckIntervalSeconds",
    "HealthCheckTimeoutSeconds",
    "HealthyThresholdCount",
    "UnhealthyThresholdCount",
    "HealthCheckPath",
    "Matcher",
];

/// The health-check members of a CreateTargetGroup or ModifyTargetGroup request.
struct HcRequest<'a> {
    protocol: Option<elbv2::ProtocolEnum>,
    port: Option<&'a str>,
    enabled: Option<bool>,
    interval: Option<i32>,
    timeout: Option<i32>,
    healthy: Option<i32>,
    unhealthy: Option<i32>,
    path: Option<&'a str>,
    matcher: Option<&'a elbv2::Matcher>,
}

impl HcRequest<'_> {
    /// The members given, as the record's `TargetGroup` keeps them (HC_FIELDS).
    fn overlay(&self) -> Map<String, Value> {
        let mut m = Map::new();
        let mut set = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.to_string(), v);
            }
        };
        set(
            "HealthCheckProtocol",
            self.protocol.map(|p| json!(p.as_str())),
        );
        set("HealthCheckPort", self.port.map(|p| json!(p)));
        set("HealthCheckEnabled", self.enabled.map(|e| json!(e)));
        set(
            "HealthCheckIntervalSeconds",
            self.interval.map(|n| json!(n)),
        );
        set("HealthCheckTimeoutSeconds", self.timeout.map(|n| json!(n)));
        set("HealthyThresholdCount", self.healthy.map(|n| json!(n)));
        set("UnhealthyThresholdCount", self.unhealthy.map(|n| json!(n)));
        set("HealthCheckPath", self.path.map(|p| json!(p)));
        set(
            "Matcher",
            self.matcher.map(|m| {
                let mut v = json!({});
                if let Some(c) = &m.http_code {
                    v["HttpCode"] = json!(c);
                }
                if let Some(c) = &m.grpc_code {
                    v["GrpcCode"] = json!(c);
                }
                v
            }),
        );
        m
    }
}

/// The health check of a group with `protocol` (and `version`, for HTTP/HTTPS): AWS's
/// defaults for the health check protocol, overlaid with `asked` (the request's members as
/// `HcRequest::overlay` lays them out, over the group's current ones for a modify), then
/// checked.
fn health_check(
    protocol: &str,
    version: Option<&str>,
    target_type: &str,
    asked: &Value,
) -> ApiResult<Map<String, Value>> {
    let alb = is_http(protocol);
    let hcp = opt_str(asked, "HealthCheckProtocol").unwrap_or(if alb { protocol } else { "TCP" });
    let allowed: &[&str] = if alb {
        &["HTTP", "HTTPS"]
    } else {
        &["TCP", "HTTP", "HTTPS"]
    };
    if !allowed.contains(&hcp) {
        return Err(validation(format!(
            "Health check protocol '{hcp}' is not supported for target groups with the protocol '{protocol}'"
        )));
    }
    let http_hc = is_http(hcp);
    let grpc = version == Some("GRPC");
    let mut hc = Map::new();
    hc.insert("HealthCheckProtocol".into(), json!(hcp));
    hc.insert("HealthCheckPort".into(), json!("traffic-port"));
    hc.insert("HealthCheckEnabled".into(), json!(true));
    hc.insert("HealthCheckIntervalSeconds".into(), json!(30));
    let timeout = match (alb, http_hc) {
        (true, _) => 5,
        (false, true) => 6,
        (false, false) => 10,
    };
    hc.insert("HealthCheckTimeoutSeconds".into(), json!(timeout));
    hc.insert("HealthyThresholdCount".into(), json!(5));
    hc.insert("UnhealthyThresholdCount".into(), json!(2));
    if http_hc {
        let path = if grpc { "/AWS.ALB/healthcheck" } else { "/" };
        hc.insert("HealthCheckPath".into(), json!(path));
        let matcher = match (alb, grpc) {
            (true, true) => json!({"GrpcCode": "12"}),
            (true, false) => json!({"HttpCode": "200"}),
            (false, _) => json!({"HttpCode": "200-399"}),
        };
        hc.insert("Matcher".into(), matcher);
    }
    for f in HC_FIELDS {
        if let Some(v) = asked.get(*f) {
            if (*f == "HealthCheckPath" || *f == "Matcher") && !http_hc {
                return Err(validation(format!(
                    "{f} is not supported for health checks with the protocol '{hcp}'"
                )));
            }
            hc.insert(f.to_string(), v.clone());
        }
    }
    if hc["HealthCheckEnabled"] == false {
        return Err(validation(format!(
            "Health checks cannot be disabled for target groups with the target type '{target_type}'"
        )));
    }
    let port = hc["HealthCheckPort"].as_str().unwrap_or("");
    if port != "traffic-port" && !port.parse::<u16>().is_ok_and(|p| p >= 1) {
        return Err(validation(format!(
            "Health check port '{port}' must be 'traffic-port' or a port between 1 and 65535"
        )));
    }
    let interval = hc["HealthCheckIntervalSeconds"].as_i64().unwrap_or(30);
    let timeout = hc["HealthCheckTimeoutSeconds"].as_i64().unwrap_or(5);
    if timeout >= interval {
        return Err(validation(
            "Health check interval must be greater than the timeout.",
        ));
    }
    if let Some(path) = hc.get("HealthCheckPath").and_then(Value::as_str) {
        if !path.starts_with('/') {
            return Err(validation(format!(
                "Health check path '{path}' must begin with a '/' character"
            )));
        }
    }
    if let Some(m) = hc.get("Matcher") {
        let (field, lo, hi) = match (grpc, alb) {
            (true, _) => ("GrpcCode", 0, 99),
            (false, true) => ("HttpCode", 200, 499),
            (false, false) => ("HttpCode", 200, 599),
        };
        let other = if field == "GrpcCode" {
            "HttpCode"
        } else {
            "GrpcCode"
        };
        if m.get(other).is_some() || opt_str(m, field).is_none() {
            return Err(validation(format!(
                "The matcher of this target group must specify {field}"
            )));
        }
        check_codes(str_of(m, field), lo, hi)?;
    }
    Ok(hc)
}

/// `200`, `200,202` or `200-299` (or a mix), every code within lo..=hi.
fn check_codes(codes: &str, lo: i64, hi: i64) -> ApiResult<()> {
    let bad = || {
        validation(format!(
            "Invalid matcher codes '{codes}': use codes between {lo} and {hi}, as a list (200,202) or a range (200-299)"
        ))
    };
    for part in codes.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (i64, i64) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        if a < lo || b > hi || a > b {
            return Err(bad());
        }
    }
    Ok(())
}

pub fn create(
    s: &Scope,
    input: elbv2::CreateTargetGroupInput,
) -> ApiResult<elbv2::CreateTargetGroupOutput> {
    let name = input.name.as_str();
    check_name(name, "target group")?;
    let target_type = input.target_type.map_or("instance", |t| t.as_str());
    if target_type == "lambda" || target_type == "alb" {
        return Err(not_supported(format!("Target type '{target_type}'")));
    }
    let Some(protocol) = input.protocol.map(|p| p.as_str()) else {
        return Err(validation(format!(
            "A protocol must be specified for target groups with the target type '{target_type}'"
        )));
    };
    if matches!(protocol, "GENEVE" | "QUIC" | "TCP_QUIC") {
        return Err(not_supported(format!("Target group protocol '{protocol}'")));
    }
    let Some(port) = input.port.map(i64::from) else {
        return Err(validation(format!(
            "A port must be specified for target groups with the target type '{target_type}'"
        )));
    };
    let Some(vpc_id) = input.vpc_id.as_deref() else {
        return Err(validation(format!(
            "A VPC ID must be specified for target groups with the target type '{target_type}'"
        )));
    };
    if berth_ec2::vpc_cidr(s.store, s.account, s.region, vpc_id).is_none() {
        return Err(validation(format!("The VPC ID '{vpc_id}' is not found")));
    }
    let version = match input.protocol_version.as_deref() {
        Some(_) if !is_http(protocol) => {
            return Err(validation(format!(
                "A protocol version can only be specified for HTTP and HTTPS target groups, not '{protocol}'"
            )))
        }
        Some(v) => {
            let up = v.to_ascii_uppercase();
            if !["HTTP1", "HTTP2", "GRPC"].contains(&up.as_str()) {
                return Err(validation(format!(
                    "Protocol version '{v}' is not valid; valid versions are HTTP1, HTTP2 and GRPC"
                )));
            }
            Some(up)
        }
        None if is_http(protocol) => Some("HTTP1".to_string()),
        None => None,
    };
    let ip_type = input.ip_address_type.map_or("ipv4", |t| t.as_str());
    if ip_type != "ipv4" {
        return Err(not_supported(format!("IpAddressType '{ip_type}'")));
    }
    if input.target_control_port.is_some() {
        return Err(not_supported("TargetControlPort"));
    }
    let asked = HcRequest {
        protocol: input.health_check_protocol,
        port: input.health_check_port.as_deref(),
        enabled: input.health_check_enabled,
        interval: input.health_check_interval_seconds,
        timeout: input.health_check_timeout_seconds,
        healthy: input.healthy_threshold_count,
        unhealthy: input.unhealthy_threshold_count,
        path: input.health_check_path.as_deref(),
        matcher: input.matcher.as_ref(),
    };
    let hc = health_check(
        protocol,
        version.as_deref(),
        target_type,
        &Value::Object(asked.overlay()),
    )?;
    let tags = request_tags(input.tags.as_deref().unwrap_or_default())?;

    let arn = berth_model::elbv2::arn::tg_arn(s.region, s.account, name, &new_id());
    let mut tg = json!({
        "TargetGroupArn": arn,
        "TargetGroupName": name,
        "Protocol": protocol,
        "Port": port,
        "VpcId": vpc_id,
        "TargetType": target_type,
        "IpAddressType": ip_type,
    });
    if let Some(v) = &version {
        tg["ProtocolVersion"] = json!(v);
    }
    for (k, v) in hc {
        tg[k] = v;
    }
    let key = s.key(TG, name);
    commit(s.store, || {
        if let Some(existing) = s.store.get(&key) {
            let old = &existing.value["TargetGroup"];
            let same = ["Protocol", "Port", "VpcId", "TargetType", "ProtocolVersion"]
                .iter()
                .chain(HC_FIELDS)
                .all(|f| old.get(*f) == tg.get(*f));
            if same {
                return Ok(Plan::new(elbv2::CreateTargetGroupOutput {
                    target_groups: Some(vec![shape(&render(&existing.value))?]),
                }));
            }
            return Err(ApiError::client(
                "DuplicateTargetGroupName",
                format!("A target group with the same name '{name}' exists, but with different settings"),
            ));
        }
        let rec = json!({"TargetGroup": tg.clone(), "Tags": tags.clone(), "Attributes": {}, "UsedBy": {}});
        let mut plan = Plan::new(elbv2::CreateTargetGroupOutput {
            target_groups: Some(vec![shape(&render(&rec))?]),
        });
        plan.create(key.clone(), rec);
        plan.create(
            targets_key(s, str_of(&tg, "TargetGroupArn")),
            json!({"TargetGroupArn": tg["TargetGroupArn"], "Targets": []}),
        );
        Ok(plan)
    })
}

pub fn describe(
    s: &Scope,
    input: elbv2::DescribeTargetGroupsInput,
) -> ApiResult<elbv2::DescribeTargetGroupsOutput> {
    let arns = input.target_group_arns.unwrap_or_default();
    let names = input.names.unwrap_or_default();
    let lb_arn = input.load_balancer_arn.as_deref();
    if [!arns.is_empty(), !names.is_empty(), lb_arn.is_some()]
        .iter()
        .filter(|x| **x)
        .count()
        > 1
    {
        return Err(validation(
            "Target group ARNs, names and a load balancer ARN cannot be specified together",
        ));
    }
    let shown = |r: &Record| shape::<elbv2::TargetGroup>(&render(&r.value));
    let mut found: Vec<elbv2::TargetGroup> = if !arns.is_empty() {
        arns.iter()
            .map(|a| shown(&get(s, a)?))
            .collect::<ApiResult<_>>()?
    } else if !names.is_empty() {
        let mut missing = vec![];
        let mut out = vec![];
        for n in &names {
            match s.get(TG, n) {
                Some(r) => out.push(shown(&r)?),
                None => missing.push(n.clone()),
            }
        }
        if !missing.is_empty() {
            return Err(ApiError::client(
                "TargetGroupNotFound",
                format!("Target groups '[{}]' not found", missing.join(", ")),
            ));
        }
        out
    } else {
        let all = s
            .list(TG, "")
            .iter()
            .map(shown)
            .collect::<ApiResult<Vec<_>>>()?;
        match lb_arn {
            Some(lb) => {
                crate::lb::get(s, lb)?;
                all.into_iter()
                    .filter(|t| {
                        t.load_balancer_arns
                            .as_ref()
                            .is_some_and(|a| a.iter().any(|x| x == lb))
                    })
                    .collect()
            }
            None => all,
        }
    };
    found.sort_by(|a, b| a.target_group_name.cmp(&b.target_group_name));
    found.dedup_by(|a, b| a.target_group_arn == b.target_group_arn);
    let p = page(
        found,
        |t| t.target_group_name.clone().unwrap_or_default(),
        input.page_size,
        input.marker.as_deref(),
    )?;
    Ok(elbv2::DescribeTargetGroupsOutput {
        target_groups: Some(p.items),
        next_marker: p.next_token,
    })
}

pub fn modify(
    s: &Scope,
    input: elbv2::ModifyTargetGroupInput,
) -> ApiResult<elbv2::ModifyTargetGroupOutput> {
    let arn = input.target_group_arn.as_str();
    let asked = HcRequest {
        protocol: input.health_check_protocol,
        port: input.health_check_port.as_deref(),
        enabled: input.health_check_enabled,
        interval: input.health_check_interval_seconds,
        timeout: input.health_check_timeout_seconds,
        healthy: input.healthy_threshold_count,
        unhealthy: input.unhealthy_threshold_count,
        path: input.health_check_path.as_deref(),
        matcher: input.matcher.as_ref(),
    }
    .overlay();
    commit(s.store, || {
        let rec = get(s, arn)?;
        let tg = &rec.value["TargetGroup"];
        let typed = record::<model::TgRecord>(&rec.value)?.target_group;
        let protocol = typed.protocol.as_deref().unwrap_or("");
        let old_hcp = typed.health_check_protocol.as_deref().unwrap_or("");
        // The effective request: the group's current health check with the changes over it.
        // A change between TCP and HTTP(S) checks starts from the new protocol's defaults.
        let mut eff = json!({});
        let new_hcp = input.health_check_protocol.map(|p| p.as_str());
        let category_change = new_hcp.is_some_and(|p| is_http(p) != is_http(old_hcp));
        for f in HC_FIELDS {
            if let Some(v) = asked.get(*f) {
                eff[*f] = v.clone();
            } else if let Some(v) = tg.get(*f) {
                let derived = matches!(
                    *f,
                    "HealthCheckPath" | "Matcher" | "HealthCheckTimeoutSeconds"
                );
                if !(category_change && derived) {
                    eff[*f] = v.clone();
                }
            }
        }
        let hc = health_check(
            protocol,
            opt_str(tg, "ProtocolVersion"),
            &typed.target_type,
            &eff,
        )?;
        let mut v = (*rec.value).clone();
        let t = v["TargetGroup"]
            .as_object_mut()
            .expect("target group object");
        for f in HC_FIELDS {
            t.remove(*f);
        }
        t.extend(hc);
        let mut plan = Plan::new(elbv2::ModifyTargetGroupOutput {
            target_groups: Some(vec![shape(&render(&v))?]),
        });
        plan.put(&rec, v);
        Ok(plan)
    })
}

pub fn delete(
    s: &Scope,
    input: elbv2::DeleteTargetGroupInput,
) -> ApiResult<elbv2::DeleteTargetGroupOutput> {
    let arn = input.target_group_arn.as_str();
    commit(s.store, || {
        let rec = match get(s, arn) {
            Ok(r) => r,
            Err(e) if e.code == "TargetGroupNotFound" => {
                return Ok(Plan::new(elbv2::DeleteTargetGroupOutput {}))
            }
            Err(e) => return Err(e),
        };
        if in_use(&rec.value) {
            return Err(ApiError::client(
                "ResourceInUse",
                format!("Target group '{arn}' is currently in use by a listener or a rule"),
            ));
        }
        let mut plan = Plan::new(elbv2::DeleteTargetGroupOutput {});
        plan.delete(&rec);
        if let Some(t) = s.store.get(&targets_key(s, arn)) {
            plan.delete(&t);
        }
        Ok(plan)
    })
}

// ---- which listeners and rules forward to a group -----------------------------------------

/// A listener or rule (`user`, on load balancer `lb_arn`) changing the groups it forwards to.
pub struct Usage {
    pub user: String,
    pub lb_arn: String,
    pub old: Vec<String>,
    pub new: Vec<String>,
}

/// Record `changes` in the groups' `UsedBy`, in `plan`. A group named in a `new` list must
/// exist and end up used by one load balancer only.
pub fn apply_usage<T>(s: &Scope, changes: &[Usage], plan: &mut Plan<T>) -> ApiResult<()> {
    let mut groups: BTreeMap<&str, (Record, Map<String, Value>)> = BTreeMap::new();
    for c in changes {
        for arn in c.old.iter().chain(&c.new) {
            if groups.contains_key(arn.as_str()) {
                continue;
            }
            match get(s, arn) {
                Ok(rec) => {
                    let used = rec.value["UsedBy"].as_object().cloned().unwrap_or_default();
                    groups.insert(arn, (rec, used));
                }
                Err(e) if c.new.contains(arn) => return Err(e),
                Err(_) => {}
            }
        }
    }
    for c in changes {
        for (arn, (_, used)) in groups.iter_mut() {
            used.remove(&c.user);
            if c.new.iter().any(|n| n == arn) {
                used.insert(c.user.clone(), json!(c.lb_arn));
            }
        }
    }
    for (arn, (rec, used)) in groups {
        let lbs: BTreeSet<&str> = used.values().filter_map(Value::as_str).collect();
        if lbs.len() > 1 && changes.iter().any(|c| c.new.iter().any(|n| n == arn)) {
            return Err(ApiError::client(
                "TargetGroupAssociationLimit",
                format!("The following target groups cannot be associated with more than one load balancer: {arn}"),
            ));
        }
        if rec.value["UsedBy"].as_object() != Some(&used) {
            let mut v = (*rec.value).clone();
            v["UsedBy"] = Value::Object(used);
            plan.put(&rec, v);
        } else {
            // Unchanged, but relied on: it must still be there when the write commits.
            plan.conds
                .push(berth_store::Cond::Revision(rec.key.clone(), rec.revision));
        }
    }
    Ok(())
}

/// Take `users` (listeners or rules being deleted) out of the groups they forwarded to.
pub fn release<T>(s: &Scope, users: &[Usage], plan: &mut Plan<T>) -> ApiResult<()> {
    apply_usage(s, users, plan)
}

// ---- attributes ----------------------------------------------------------------------------

const HEALTH_ATTRS: [AttrSpec; 4] = [
    (
        "target_group_health.dns_failover.minimum_healthy_targets.count",
        Kind::OffOrInt(1, MAX_TARGETS as i64),
        "1",
    ),
    (
        "target_group_health.dns_failover.minimum_healthy_targets.percentage",
        Kind::OffOrInt(1, 100),
        "off",
    ),
    (
        "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count",
        Kind::Int(1, MAX_TARGETS as i64),
        "1",
    ),
    (
        "target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage",
        Kind::OffOrInt(1, 100),
        "off",
    ),
];

const CROSS_ZONE: AttrSpec = (
    "load_balancing.cross_zone.enabled",
    Kind::Enum(&["true", "false", "use_load_balancer_configuration"]),
    "use_load_balancer_configuration",
);
const DEREGISTRATION: AttrSpec = (
    "deregistration_delay.timeout_seconds",
    Kind::Int(0, 3600),
    "300",
);

fn specs(tg: &Value) -> Vec<AttrSpec> {
    let protocol = str_of(tg, "Protocol");
    let mut v: Vec<AttrSpec> = vec![DEREGISTRATION, CROSS_ZONE];
    if is_http(protocol) {
        v.extend([
            (
                "load_balancing.algorithm.anomaly_mitigation",
                Kind::Enum(&["on", "off"]),
                "off",
            ),
            (
                "load_balancing.algorithm.type",
                Kind::Enum(&[
                    "round_robin",
                    "least_outstanding_requests",
                    "weighted_random",
                ]),
                "round_robin",
            ),
            ("slow_start.duration_seconds", Kind::ZeroOr(30, 900), "0"),
            ("stickiness.app_cookie.cookie_name", Kind::Text, ""),
            (
                "stickiness.app_cookie.duration_seconds",
                Kind::Int(1, 604_800),
                "86400",
            ),
            ("stickiness.enabled", Kind::Bool, "false"),
            (
                "stickiness.lb_cookie.duration_seconds",
                Kind::Int(1, 604_800),
                "86400",
            ),
            (
                "stickiness.type",
                Kind::Enum(&["lb_cookie", "app_cookie"]),
                "lb_cookie",
            ),
        ]);
    } else {
        // Client IPs are preserved by default except for ip targets over TCP and TLS.
        let preserve = if tg["TargetType"] == "ip" && matches!(protocol, "TCP" | "TLS") {
            "false"
        } else {
            "true"
        };
        v.extend([
            (
                "deregistration_delay.connection_termination.enabled",
                Kind::Bool,
                "false",
            ),
            ("preserve_client_ip.enabled", Kind::Bool, preserve),
            ("proxy_protocol_v2.enabled", Kind::Bool, "false"),
            ("stickiness.enabled", Kind::Bool, "false"),
            ("stickiness.type", Kind::Enum(&["source_ip"]), "source_ip"),
            (
                "target_health_state.unhealthy.connection_termination.enabled",
                Kind::Bool,
                "true",
            ),
            (
                "target_health_state.unhealthy.draining_interval_seconds",
                Kind::Int(0, 360_000),
                "0",
            ),
        ]);
    }
    v.extend(HEALTH_ATTRS);
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// [`render_attributes`] as a target group's attributes.
fn tg_attributes(specs: &[AttrSpec], set: &Value) -> Vec<elbv2::TargetGroupAttribute> {
    render_attributes(specs, set)
        .into_iter()
        .map(|(k, v)| elbv2::TargetGroupAttribute {
            key: Some(k),
            value: Some(v),
        })
        .collect()
}

pub fn describe_attributes(
    s: &Scope,
    input: elbv2::DescribeTargetGroupAttributesInput,
) -> ApiResult<elbv2::DescribeTargetGroupAttributesOutput> {
    let rec = get(s, &input.target_group_arn)?;
    let specs = specs(&rec.value["TargetGroup"]);
    Ok(elbv2::DescribeTargetGroupAttributesOutput {
        attributes: Some(tg_attributes(&specs, &rec.value["Attributes"])),
    })
}

/// Attributes the data plane carries out (with the values in UNACTED the exceptions);
/// any other attribute may only be set to its default.
const ACTED: [&str; 8] = [
    "deregistration_delay.timeout_seconds",
    "load_balancing.algorithm.type",
    "load_balancing.cross_zone.enabled",
    "stickiness.enabled",
    "stickiness.type",
    "stickiness.lb_cookie.duration_seconds",
    "preserve_client_ip.enabled",
    "proxy_protocol_v2.enabled",
];

/// Values of acted attributes the data plane does not carry out.
const UNACTED: [(&str, &str); 5] = [
    ("load_balancing.algorithm.type", "weighted_random"),
    ("proxy_protocol_v2.enabled", "true"),
    // The data plane DNATs: a client's address is always what the target sees.
    ("preserve_client_ip.enabled", "false"),
    ("stickiness.type", "app_cookie"),
    // One host serves every zone: traffic always crosses zones.
    ("load_balancing.cross_zone.enabled", "false"),
];

/// Whether `key` set to `value` is refused: a value the data plane does not carry out
/// (UNACTED, default or not), or an attribute outside ACTED changed from its default (a
/// network load balancer's groups have no stickiness, source_ip, yet).
fn refused(http: bool, key: &str, value: &str, changed: bool) -> bool {
    let acted = ACTED.contains(&key) && (http || key != "stickiness.enabled");
    UNACTED.contains(&(key, value)) || (changed && !acted)
}

pub fn modify_attributes(
    s: &Scope,
    input: elbv2::ModifyTargetGroupAttributesInput,
) -> ApiResult<elbv2::ModifyTargetGroupAttributesOutput> {
    let arn = input.target_group_arn.as_str();
    let attrs: Vec<(&str, &str)> = input
        .attributes
        .iter()
        .map(|a| {
            (
                a.key.as_deref().unwrap_or(""),
                a.value.as_deref().unwrap_or(""),
            )
        })
        .collect();
    commit(s.store, || {
        let rec = get(s, arn)?;
        let specs = specs(&rec.value["TargetGroup"]);
        let mut v = (*rec.value).clone();
        let mut set = v["Attributes"].as_object().cloned().unwrap_or_default();
        apply_attributes(&specs, &attrs, &mut set)?;
        let get_attr = |k: &str| {
            set.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| specs.iter().find(|s| s.0 == k).map(|s| s.2.to_string()))
                .unwrap_or_default()
        };
        if get_attr("stickiness.enabled") == "true"
            && get_attr("stickiness.type") == "app_cookie"
            && get_attr("stickiness.app_cookie.cookie_name").is_empty()
        {
            return Err(invalid_config(
                "stickiness.app_cookie.cookie_name must be set when app_cookie stickiness is enabled",
            ));
        }
        if get_attr("slow_start.duration_seconds") != "0"
            && get_attr("load_balancing.algorithm.type") == "weighted_random"
        {
            return Err(invalid_config(
                "Slow start cannot be combined with the weighted_random algorithm",
            ));
        }
        // Valid as AWS sees it; then what Berth does not carry out is refused.
        let http = is_http(str_of(&rec.value["TargetGroup"], "Protocol"));
        refuse_unacted(&specs, &attrs, |k, v, changed| refused(http, k, v, changed))?;
        v["Attributes"] = Value::Object(set);
        let mut plan = Plan::new(elbv2::ModifyTargetGroupAttributesOutput {
            attributes: Some(tg_attributes(&specs, &v["Attributes"])),
        });
        plan.put(&rec, v);
        Ok(plan)
    })
}

// ---- targets -------------------------------------------------------------------------------

/// Whether an address may be an ip target of a group in a VPC with `vpc_cidr`: in the VPC,
/// or in RFC 1918 or RFC 6598 space, as AWS allows.
fn ip_allowed(ip: Ipv4Addr, vpc_cidr: &str) -> bool {
    use crate::lb::cidr_contains;
    cidr_contains(vpc_cidr, ip)
        || [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
        ]
        .iter()
        .any(|c| cidr_contains(c, ip))
}

fn is_instance_id(id: &str) -> bool {
    id.strip_prefix("i-").is_some_and(|h| {
        (h.len() == 8 || h.len() == 17) && h.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

fn invalid_target(msg: impl Into<String>) -> ApiError {
    ApiError::client("InvalidTarget", msg)
}

/// The request's targets with their ports filled in from the group's.
fn requested(
    tg: &model::TargetGroup,
    targets: &[elbv2::TargetDescription],
) -> Vec<(String, i64, Option<String>)> {
    let port = tg.port.unwrap_or(0);
    targets
        .iter()
        .map(|t| {
            (
                t.id.clone(),
                t.port.map_or(port, i64::from),
                t.availability_zone.clone(),
            )
        })
        .collect()
}

pub fn register(
    s: &Scope,
    input: elbv2::RegisterTargetsInput,
) -> ApiResult<elbv2::RegisterTargetsOutput> {
    let arn = input.target_group_arn.as_str();
    commit(s.store, || {
        let rec = get(s, arn)?;
        let tg = record::<model::TgRecord>(&rec.value)?.target_group;
        let vpc_id = tg.vpc_id.as_deref().unwrap_or("");
        let vpc_cidr =
            berth_ec2::vpc_cidr(s.store, s.account, s.region, vpc_id).unwrap_or_default();
        let wanted = requested(&tg, &input.targets);
        for (id, _, zone) in &wanted {
            if input.targets.iter().any(|t| t.quic_server_id.is_some()) {
                return Err(validation(
                    "QuicServerId can only be used with QUIC target groups",
                ));
            }
            match tg.target_type.as_str() {
                "ip" => {
                    let Ok(ip) = id.parse::<Ipv4Addr>() else {
                        return Err(invalid_target(format!(
                            "The IP address '{id}' is not a valid IPv4 address"
                        )));
                    };
                    if !ip_allowed(ip, &vpc_cidr) {
                        return Err(invalid_target(format!(
                            "The IP address '{id}' is not within the VPC's range ({vpc_cidr}) or a private address range (RFC 1918, RFC 6598)"
                        )));
                    }
                    if let Some(z) = zone {
                        let ok = z == "all"
                            || (z.starts_with(s.region)
                                && z.len() == s.region.len() + 1
                                && z.as_bytes()[s.region.len()].is_ascii_lowercase());
                        if !ok {
                            return Err(validation(format!(
                                "'{z}' is not a valid Availability Zone for this region"
                            )));
                        }
                    }
                }
                _ => {
                    if !is_instance_id(id) {
                        return Err(invalid_target(format!(
                            "The following targets are not valid instance IDs: '{id}'"
                        )));
                    }
                    if zone.is_some() {
                        return Err(validation(
                            "An Availability Zone cannot be specified for instance targets",
                        ));
                    }
                }
            }
        }
        let key = targets_key(s, arn);
        let trec = s.store.get(&key);
        let mut targets: Vec<model::Target> = match &trec {
            Some(r) => record::<model::TargetsRecord>(&r.value)?.targets,
            None => vec![],
        };
        let fresh = |id: &str, port: i64, zone: &Option<String>| model::Target {
            id: id.to_string(),
            port,
            availability_zone: zone.clone(),
            state: model::TargetHealthState::Initial,
            reason: Some("Elb.RegistrationInProgress".into()),
            description: Some("Target registration is in progress".into()),
            draining_since: None,
            drain_seconds: None,
            extra: Default::default(),
        };
        for (id, port, zone) in &wanted {
            if let Some(t) = targets.iter_mut().find(|t| t.id == *id && t.port == *port) {
                // A draining target registered again takes traffic again, after its checks.
                if t.state == model::TargetHealthState::Draining {
                    *t = fresh(id, *port, zone);
                }
                continue;
            }
            targets.push(fresh(id, *port, zone));
        }
        if targets.len() > MAX_TARGETS {
            return Err(ApiError::client(
                "TooManyTargets",
                format!("A target group can have at most {MAX_TARGETS} targets"),
            ));
        }
        let mut plan = Plan::new(elbv2::RegisterTargetsOutput {});
        let value = targets_record(arn, targets);
        match &trec {
            Some(r) => plan.put(r, value),
            None => plan.create(key.clone(), value),
        }
        // The group must still exist when this commits.
        plan.conds
            .push(berth_store::Cond::Revision(rec.key.clone(), rec.revision));
        Ok(plan)
    })
}

/// A group's targets record, as the store keeps it.
fn targets_record(arn: &str, targets: Vec<model::Target>) -> Value {
    model::to_value(&model::TargetsRecord {
        target_group_arn: arn.to_string(),
        targets,
        extra: Default::default(),
    })
}

/// The deregistration delay of a group's record, in seconds.
pub fn deregistration_delay(rec: &Value) -> f64 {
    rec["Attributes"]["deregistration_delay.timeout_seconds"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300.0)
}

/// Deregistration: a group that a load balancer uses keeps the target as `draining` (the
/// data plane sends it no new requests and removes it once its in-flight requests are done
/// or the deregistration delay has passed); an unused group lets it go at once.
pub fn deregister(
    s: &Scope,
    input: elbv2::DeregisterTargetsInput,
) -> ApiResult<elbv2::DeregisterTargetsOutput> {
    let arn = input.target_group_arn.as_str();
    commit(s.store, || {
        let rec = get(s, arn)?;
        let tg = record::<model::TgRecord>(&rec.value)?.target_group;
        let wanted = requested(&tg, &input.targets);
        let Some(trec) = s.store.get(&targets_key(s, arn)) else {
            return Ok(Plan::new(elbv2::DeregisterTargetsOutput {}));
        };
        let mut targets = record::<model::TargetsRecord>(&trec.value)?.targets;
        let matches = |t: &model::Target| {
            wanted
                .iter()
                .any(|(id, port, _)| t.id == *id && t.port == *port)
        };
        let before = targets.clone();
        if in_use(&rec.value) {
            let delay = deregistration_delay(&rec.value);
            for t in targets.iter_mut().filter(|t| matches(t)) {
                if t.state != model::TargetHealthState::Draining {
                    t.state = model::TargetHealthState::Draining;
                    t.reason = Some("Target.DeregistrationInProgress".into());
                    t.description = Some("Target deregistration is in progress".into());
                    t.draining_since = Some(s.now);
                    t.drain_seconds = serde_json::Number::from_f64(delay);
                }
            }
        } else {
            targets.retain(|t| !matches(t));
        }
        let mut plan = Plan::new(elbv2::DeregisterTargetsOutput {});
        if targets != before {
            plan.put(&trec, targets_record(arn, targets));
        }
        Ok(plan)
    })
}

pub fn describe_health(
    s: &Scope,
    input: elbv2::DescribeTargetHealthInput,
) -> ApiResult<elbv2::DescribeTargetHealthOutput> {
    use elbv2::{TargetHealthReasonEnum as Reason, TargetHealthStateEnum as State};
    let arn = input.target_group_arn.as_str();
    let rec = get(s, arn)?;
    let tg = record::<model::TgRecord>(&rec.value)?.target_group;
    let used = in_use(&rec.value);
    let targets: Vec<model::Target> = match s.store.get(&targets_key(s, arn)) {
        Some(r) => {
            model::from_value::<model::TargetsRecord>(&r.value)
                .map_err(|e| ApiError::internal(format!("a targets record does not fit: {e}")))?
                .targets
        }
        None => vec![],
    };
    let hc_port = |port: i64| match tg.health_check_port.as_deref().unwrap_or("") {
        "traffic-port" | "" => port.to_string(),
        p => p.to_string(),
    };
    let health = |state: State, reason: Reason, description: &str| elbv2::TargetHealth {
        state: Some(state),
        reason: Some(reason),
        description: Some(description.to_string()),
    };
    let target = |id: &str, port: i64, zone: Option<String>| elbv2::TargetDescription {
        id: id.to_string(),
        port: i32::try_from(port).ok(),
        availability_zone: zone,
        quic_server_id: None,
    };
    let describe = |t: &model::Target| elbv2::TargetHealthDescription {
        target: Some(target(&t.id, t.port, t.availability_zone.clone())),
        health_check_port: Some(hc_port(t.port)),
        target_health: Some(if used {
            elbv2::TargetHealth {
                state: State::from_wire(t.state.as_str()),
                reason: t.reason.as_deref().and_then(Reason::from_wire),
                description: t.description.clone(),
            }
        } else {
            health(
                State::Unused,
                Reason::TargetNotInUse,
                "Target group is not configured to receive traffic from the load balancer",
            )
        }),
        anomaly_detection: None,
        administrative_override: None,
    };
    let out: Vec<elbv2::TargetHealthDescription> = match &input.targets {
        None => targets.iter().map(describe).collect(),
        Some(list) => {
            let mut out = vec![];
            for a in list {
                let id = a.id.as_str();
                let port = a.port.map(i64::from);
                let matching: Vec<&model::Target> = targets
                    .iter()
                    .filter(|t| t.id == id && port.is_none_or(|p| t.port == p))
                    .collect();
                if matching.is_empty() {
                    let port = port.unwrap_or(tg.port.unwrap_or(0));
                    out.push(elbv2::TargetHealthDescription {
                        target: Some(target(id, port, None)),
                        health_check_port: Some(hc_port(port)),
                        target_health: Some(health(
                            State::Unused,
                            Reason::TargetNotRegistered,
                            "Target is not registered to the target group",
                        )),
                        anomaly_detection: None,
                        administrative_override: None,
                    });
                } else {
                    out.extend(matching.into_iter().map(describe));
                }
            }
            out
        }
    };
    Ok(elbv2::DescribeTargetHealthOutput {
        target_health_descriptions: Some(out),
    })
}
