//! Security groups and their rules: Create/Delete/DescribeSecurityGroups,
//! Authorize/RevokeSecurityGroupIngress/Egress and DescribeSecurityGroupRules.
//!
//! A group's record holds its rules, one per source as AWS models them
//! (`SecurityGroupRule`); DescribeSecurityGroups folds them back into `IpPermission`s.
//! Rules are recorded now; enforcing them on task traffic comes with task networking.

use crate::common::*;
use crate::defaults::{default_vpc, no_default_vpc};
use crate::filters::{one, Filters};
use crate::tags;
use crate::types::*;
use berth_store::{Cond, Op, Record};
use berth_wire::{ApiError, ApiResult};
use serde_json::{json, Value};

/// AWS's default quota of inbound (and, separately, outbound) rules per group.
const MAX_RULES: usize = 60;

fn group_record(
    scope: &Scope,
    vpc_id: &str,
    name: &str,
    description: &str,
    tags: Vec<Value>,
) -> Value {
    let id = new_id("sg");
    json!({
        "GroupId": id,
        "GroupName": name,
        "Description": description,
        "VpcId": vpc_id,
        "OwnerId": scope.account,
        "SecurityGroupArn": scope.arn(&format!("security-group/{id}")),
        "Tags": tags,
        "Rules": [],
    })
}

/// The rule every new group starts with: all traffic out to anywhere.
fn allow_all_egress(scope: &Scope, group_id: &str) -> Value {
    new_rule(
        scope,
        group_id,
        true,
        &Spec {
            protocol: "-1".into(),
            from: -1,
            to: -1,
            source: Source::Cidr4("0.0.0.0/0".into()),
            description: None,
        },
        vec![],
    )
}

/// A VPC's default group: all traffic in from members of the group, all traffic out.
pub fn build_default(scope: &Scope, vpc_id: &str) -> Value {
    let mut g = group_record(
        scope,
        vpc_id,
        "default",
        "default VPC security group",
        vec![],
    );
    let id = str_of(&g, "GroupId").to_string();
    let self_ref = Spec {
        protocol: "-1".into(),
        from: -1,
        to: -1,
        source: Source::Group(id.clone()),
        description: None,
    };
    g["Rules"] = json!([
        new_rule(scope, &id, false, &self_ref, vec![]),
        allow_all_egress(scope, &id)
    ]);
    g
}

// ---- rules ---------------------------------------------------------------------------

/// Where a rule's traffic comes from (ingress) or goes to (egress).
#[derive(Debug, Clone, PartialEq)]
enum Source {
    Cidr4(String),
    Cidr6(String),
    PrefixList(String),
    /// A security group id, resolved from an id or a name.
    Group(String),
}

/// One rule as a request asks for it.
#[derive(Debug, Clone)]
struct Spec {
    protocol: String,
    from: i64,
    to: i64,
    source: Source,
    description: Option<String>,
}

/// A group source before its name (if any) is resolved to an id.
enum RawSource {
    Ready(Source),
    GroupName(String),
}

/// A rule as the request spells it, before group names are resolved.
struct Requested {
    protocol: String,
    from: i64,
    to: i64,
    source: RawSource,
    description: Option<String>,
}

fn protocol(raw: &str) -> ApiResult<String> {
    let p = raw.trim().to_ascii_lowercase();
    Ok(match p.as_str() {
        "-1" | "all" => "-1".into(),
        "tcp" | "6" => "tcp".into(),
        "udp" | "17" => "udp".into(),
        "icmp" | "1" => "icmp".into(),
        "icmpv6" | "58" => "icmpv6".into(),
        n if n.parse::<u8>().is_ok() => n.parse::<u8>().unwrap().to_string(),
        _ => {
            return Err(invalid_value(format!(
                "Invalid value '{raw}' for IP protocol. Unknown protocol."
            )))
        }
    })
}

/// Ports as EC2 checks them: required ranges for TCP/UDP, type and code for ICMP, and
/// ignored (-1) for every other protocol.
fn ports(proto: &str, from: Option<i64>, to: Option<i64>) -> ApiResult<(i64, i64)> {
    match proto {
        "tcp" | "udp" => {
            let (Some(f), Some(t)) = (from, to) else {
                return Err(invalid_value("Invalid value for portRange. Must specify both from and to ports with TCP/UDP."));
            };
            if !(0..=65535).contains(&f) || !(0..=65535).contains(&t) {
                return Err(invalid_value(format!(
                    "Invalid value for portRange. Ports must be between 0 and 65535 (got {f}-{t})."
                )));
            }
            if f > t {
                return Err(invalid_value(format!("Invalid value for portRange. The from port ({f}) must not be greater than the to port ({t}).")));
            }
            Ok((f, t))
        }
        "icmp" | "icmpv6" => {
            let (f, t) = (from.unwrap_or(-1), to.unwrap_or(-1));
            if !(-1..=255).contains(&f) || !(-1..=255).contains(&t) {
                return Err(invalid_value(format!(
                    "Invalid value for ICMP type or code: type {f}, code {t}."
                )));
            }
            Ok((f, t))
        }
        _ => Ok((-1, -1)),
    }
}

fn check_cidr4(raw: &str) -> ApiResult<String> {
    crate::cidr::Cidr::parse(raw)
        .map(|_| raw.to_string())
        .ok_or_else(|| invalid_value(format!("CIDR block {raw} is malformed")))
}

fn check_cidr6(raw: &str) -> ApiResult<String> {
    let ok = raw.split_once('/').is_some_and(|(ip, len)| {
        ip.parse::<std::net::Ipv6Addr>().is_ok() && len.parse::<u8>().is_ok_and(|l| l <= 128)
    });
    if ok {
        Ok(raw.to_string())
    } else {
        Err(invalid_value(format!("CIDR block {raw} is malformed")))
    }
}

/// What Authorize and Revoke requests share, ingress or egress. Each request type is
/// taken apart whole (`From` below), so a member the model adds does not go unseen.
pub struct RuleRequest {
    group_id: Option<String>,
    group_name: Option<String>,
    ip_permissions: Vec<IpPermission>,
    ip_protocol: Option<String>,
    from_port: Option<i32>,
    to_port: Option<i32>,
    cidr_ip: Option<String>,
    source_group_name: Option<String>,
    source_group_owner: Option<String>,
    tag_specifications: Option<Vec<TagSpecification>>,
    rule_ids: Vec<String>,
}

impl From<AuthorizeSecurityGroupIngressRequest> for RuleRequest {
    fn from(i: AuthorizeSecurityGroupIngressRequest) -> Self {
        let AuthorizeSecurityGroupIngressRequest {
            cidr_ip,
            dry_run: _, // answered before the handler
            from_port,
            group_id,
            group_name,
            ip_permissions,
            ip_protocol,
            source_security_group_name,
            source_security_group_owner_id,
            tag_specifications,
            to_port,
        } = i;
        RuleRequest {
            group_id,
            group_name,
            ip_permissions: ip_permissions.unwrap_or_default(),
            ip_protocol,
            from_port,
            to_port,
            cidr_ip,
            source_group_name: source_security_group_name,
            source_group_owner: source_security_group_owner_id,
            tag_specifications,
            rule_ids: vec![],
        }
    }
}

impl From<AuthorizeSecurityGroupEgressRequest> for RuleRequest {
    fn from(i: AuthorizeSecurityGroupEgressRequest) -> Self {
        let AuthorizeSecurityGroupEgressRequest {
            cidr_ip,
            dry_run: _,
            from_port,
            group_id,
            ip_permissions,
            ip_protocol,
            source_security_group_name,
            source_security_group_owner_id,
            tag_specifications,
            to_port,
        } = i;
        RuleRequest {
            group_id: Some(group_id),
            group_name: None,
            ip_permissions: ip_permissions.unwrap_or_default(),
            ip_protocol,
            from_port,
            to_port,
            cidr_ip,
            source_group_name: source_security_group_name,
            source_group_owner: source_security_group_owner_id,
            tag_specifications,
            rule_ids: vec![],
        }
    }
}

impl From<RevokeSecurityGroupIngressRequest> for RuleRequest {
    fn from(i: RevokeSecurityGroupIngressRequest) -> Self {
        let RevokeSecurityGroupIngressRequest {
            cidr_ip,
            dry_run: _,
            from_port,
            group_id,
            group_name,
            ip_permissions,
            ip_protocol,
            security_group_rule_ids,
            source_security_group_name,
            source_security_group_owner_id,
            to_port,
        } = i;
        RuleRequest {
            group_id,
            group_name,
            ip_permissions: ip_permissions.unwrap_or_default(),
            ip_protocol,
            from_port,
            to_port,
            cidr_ip,
            source_group_name: source_security_group_name,
            source_group_owner: source_security_group_owner_id,
            tag_specifications: None,
            rule_ids: security_group_rule_ids.unwrap_or_default(),
        }
    }
}

impl From<RevokeSecurityGroupEgressRequest> for RuleRequest {
    fn from(i: RevokeSecurityGroupEgressRequest) -> Self {
        let RevokeSecurityGroupEgressRequest {
            cidr_ip,
            dry_run: _,
            from_port,
            group_id,
            ip_permissions,
            ip_protocol,
            security_group_rule_ids,
            source_security_group_name,
            source_security_group_owner_id,
            to_port,
        } = i;
        RuleRequest {
            group_id: Some(group_id),
            group_name: None,
            ip_permissions: ip_permissions.unwrap_or_default(),
            ip_protocol,
            from_port,
            to_port,
            cidr_ip,
            source_group_name: source_security_group_name,
            source_group_owner: source_security_group_owner_id,
            tag_specifications: None,
            rule_ids: security_group_rule_ids.unwrap_or_default(),
        }
    }
}

/// Groups of other accounts and peered VPCs are not modelled: naming one is refused
/// rather than read as this account's.
fn check_owner(scope: &Scope, owner: Option<&str>, param: &str) -> ApiResult<()> {
    match owner {
        Some(o) if o != scope.account => Err(invalid_value(format!(
            "{param} {o} is not this account: Berth does not reference other accounts' groups"
        ))),
        _ => Ok(()),
    }
}

/// The rules an Authorize/Revoke request names, from `IpPermissions` and from the older
/// top-level parameters (`IpProtocol`, `CidrIp`, `SourceSecurityGroupName`, ...).
fn requested(scope: &Scope, input: &RuleRequest) -> ApiResult<Vec<Requested>> {
    check_owner(
        scope,
        input.source_group_owner.as_deref(),
        "SourceSecurityGroupOwnerId",
    )?;
    let mut out = Vec::new();
    for p in &input.ip_permissions {
        let proto = protocol(
            p.ip_protocol
                .as_deref()
                .ok_or_else(|| missing("ipPermissions.ipProtocol"))?,
        )?;
        let (from, to) = ports(&proto, p.from_port.map(i64::from), p.to_port.map(i64::from))?;
        let mut any = false;
        let rule = |source: RawSource, description: &Option<String>| Requested {
            protocol: proto.clone(),
            from,
            to,
            source,
            description: description.clone(),
        };
        for r in p.ip_ranges.iter().flatten() {
            let cidr = check_cidr4(r.cidr_ip.as_deref().unwrap_or_default())?;
            out.push(rule(RawSource::Ready(Source::Cidr4(cidr)), &r.description));
            any = true;
        }
        for r in p.ipv6_ranges.iter().flatten() {
            let cidr = check_cidr6(r.cidr_ipv6.as_deref().unwrap_or_default())?;
            out.push(rule(RawSource::Ready(Source::Cidr6(cidr)), &r.description));
            any = true;
        }
        for r in p.prefix_list_ids.iter().flatten() {
            let id = r.prefix_list_id.as_deref().unwrap_or_default();
            if !id.starts_with("pl-") {
                return Err(ApiError::client(
                    "InvalidPrefixListId.Malformed",
                    format!("Invalid id: \"{id}\" (expecting \"pl-...\")"),
                ));
            }
            out.push(rule(
                RawSource::Ready(Source::PrefixList(id.to_string())),
                &r.description,
            ));
            any = true;
        }
        for r in p.user_id_group_pairs.iter().flatten() {
            check_owner(scope, r.user_id.as_deref(), "UserId")?;
            if r.vpc_peering_connection_id.is_some() {
                return Err(unsupported(
                    "security group rules",
                    "VpcPeeringConnectionId",
                ));
            }
            // VpcId and PeeringStatus only describe the group; it is found by id or name.
            let src = match (r.group_id.as_deref(), r.group_name.as_deref()) {
                (Some(id), _) => {
                    check_id(id, "sg")?;
                    RawSource::Ready(Source::Group(id.to_string()))
                }
                (None, Some(name)) => RawSource::GroupName(name.to_string()),
                (None, None) => return Err(missing("groupId")),
            };
            out.push(rule(src, &r.description));
            any = true;
        }
        if !any {
            return Err(missing(
                "ipPermissions.ipRanges, ipv6Ranges, prefixListIds or groups",
            ));
        }
    }
    let cidr = input.cidr_ip.as_deref();
    let source_group = input.source_group_name.as_deref();
    if cidr.is_some() || source_group.is_some() || input.ip_protocol.is_some() {
        let proto = protocol(input.ip_protocol.as_deref().unwrap_or("-1"))?;
        let (from, to) = ports(
            &proto,
            input.from_port.map(i64::from),
            input.to_port.map(i64::from),
        )?;
        let source = match (cidr, source_group) {
            (Some(c), None) => RawSource::Ready(Source::Cidr4(check_cidr4(c)?)),
            (None, Some(g)) => RawSource::GroupName(g.to_string()),
            (Some(_), Some(_)) => return Err(ApiError::client(
                "InvalidParameterCombination",
                "The parameter CidrIp cannot be used with the parameter SourceSecurityGroupName",
            )),
            (None, None) => return Err(missing("cidrIp")),
        };
        out.push(Requested {
            protocol: proto,
            from,
            to,
            source,
            description: None,
        });
    }
    if out.is_empty() {
        return Err(missing("ipPermissions"));
    }
    Ok(out)
}

/// Resolve group sources against the target group's VPC: they must exist and live there.
fn resolve(scope: &Scope, target: &Value, raw: Vec<Requested>) -> ApiResult<Vec<Spec>> {
    let vpc = str_of(target, "VpcId");
    let groups: Vec<Value> = scope
        .list(GROUP)
        .into_iter()
        .map(|r| (*r.value).clone())
        .collect();
    raw.into_iter()
        .map(|Requested { protocol, from, to, source, description }| {
            let source = match source {
                RawSource::Ready(Source::Group(id)) => {
                    let g = groups.iter().find(|g| g["GroupId"] == id.as_str()).ok_or_else(|| group_not_found(&id))?;
                    if g["VpcId"] != vpc {
                        return Err(ApiError::client("InvalidGroup.NotFound", "You have specified two resources that belong to different networks."));
                    }
                    Source::Group(id)
                }
                RawSource::Ready(s) => s,
                RawSource::GroupName(name) => {
                    let g = groups
                        .iter()
                        .find(|g| g["GroupName"] == name.as_str() && g["VpcId"] == vpc)
                        .ok_or_else(|| group_not_found(&name))?;
                    Source::Group(str_of(g, "GroupId").to_string())
                }
            };
            Ok(Spec { protocol, from, to, source, description })
        })
        .collect()
}

fn new_rule(scope: &Scope, group_id: &str, egress: bool, spec: &Spec, tags: Vec<Value>) -> Value {
    let id = new_id("sgr");
    let mut r = json!({
        "SecurityGroupRuleId": id,
        "GroupId": group_id,
        "GroupOwnerId": scope.account,
        "IsEgress": egress,
        "IpProtocol": spec.protocol,
        "FromPort": spec.from,
        "ToPort": spec.to,
        "SecurityGroupRuleArn": scope.arn(&format!("security-group-rule/{id}")),
        "Tags": tags,
    });
    match &spec.source {
        Source::Cidr4(c) => r["CidrIpv4"] = json!(c),
        Source::Cidr6(c) => r["CidrIpv6"] = json!(c),
        Source::PrefixList(p) => r["PrefixListId"] = json!(p),
        Source::Group(g) => {
            r["ReferencedGroupInfo"] = json!({"GroupId": g, "UserId": scope.account})
        }
    }
    if let Some(d) = &spec.description {
        r["Description"] = json!(d);
    }
    r
}

fn source_of(rule: &Value) -> Source {
    if let Some(c) = rule.get("CidrIpv4").and_then(Value::as_str) {
        Source::Cidr4(c.into())
    } else if let Some(c) = rule.get("CidrIpv6").and_then(Value::as_str) {
        Source::Cidr6(c.into())
    } else if let Some(p) = rule.get("PrefixListId").and_then(Value::as_str) {
        Source::PrefixList(p.into())
    } else {
        Source::Group(str_of(&rule["ReferencedGroupInfo"], "GroupId").into())
    }
}

/// Same direction, protocol, ports and source: the same rule (descriptions do not count).
fn same(rule: &Value, egress: bool, spec: &Spec) -> bool {
    rule["IsEgress"] == egress
        && rule["IpProtocol"] == spec.protocol.as_str()
        && rule["FromPort"] == spec.from
        && rule["ToPort"] == spec.to
        && source_of(rule) == spec.source
}

/// `peer: 0.0.0.0/0, TCP, from port: 22, to port: 22, ALLOW`, as EC2 names a rule.
fn describe_rule(spec: &Spec) -> String {
    let peer = match &spec.source {
        Source::Cidr4(s) | Source::Cidr6(s) | Source::PrefixList(s) | Source::Group(s) => s,
    };
    let what = match spec.protocol.as_str() {
        "-1" => "ALL".to_string(),
        "tcp" | "udp" => format!(
            "{}, from port: {}, to port: {}",
            spec.protocol.to_uppercase(),
            spec.from,
            spec.to
        ),
        "icmp" | "icmpv6" => format!(
            "{}, type: {}, code: {}",
            spec.protocol.to_uppercase(),
            spec.from,
            spec.to
        ),
        p => format!("PROTOCOL {p}"),
    };
    format!("peer: {peer}, {what}, ALLOW")
}

/// A spec as an `IpPermission` (for UnknownIpPermissions).
fn spec_permission(scope: &Scope, spec: &Spec) -> IpPermission {
    let rule = new_rule(scope, "", false, spec, vec![]);
    permissions(std::slice::from_ref(&rule), false).remove(0)
}

/// A stored port (rules keep them as numbers; -1 for "all").
fn port(v: &Value) -> Option<i32> {
    v.as_i64().map(|n| n as i32)
}

/// Fold per-source rules into EC2's `IpPermission`s: one per protocol and port range.
fn permissions(rules: &[Value], egress: bool) -> Vec<IpPermission> {
    let mut out: Vec<IpPermission> = Vec::new();
    for r in rules.iter().filter(|r| r["IsEgress"] == egress) {
        let proto = str_of(r, "IpProtocol");
        // EC2 leaves ports out of all-traffic permissions.
        let (from, to) = if proto == "-1" {
            (None, None)
        } else {
            (port(&r["FromPort"]), port(&r["ToPort"]))
        };
        let pos = out.iter().position(|p| {
            p.ip_protocol.as_deref() == Some(proto) && p.from_port == from && p.to_port == to
        });
        let i = match pos {
            Some(i) => i,
            None => {
                out.push(IpPermission {
                    ip_protocol: Some(proto.to_string()),
                    from_port: from,
                    to_port: to,
                    ip_ranges: Some(vec![]),
                    ipv6_ranges: Some(vec![]),
                    prefix_list_ids: Some(vec![]),
                    user_id_group_pairs: Some(vec![]),
                });
                out.len() - 1
            }
        };
        let p = &mut out[i];
        let description = r["Description"].as_str().map(str::to_string);
        match source_of(r) {
            Source::Cidr4(c) => push(
                &mut p.ip_ranges,
                IpRange {
                    cidr_ip: Some(c),
                    description,
                },
            ),
            Source::Cidr6(c) => push(
                &mut p.ipv6_ranges,
                Ipv6Range {
                    cidr_ipv6: Some(c),
                    description,
                },
            ),
            Source::PrefixList(id) => push(
                &mut p.prefix_list_ids,
                PrefixListId {
                    prefix_list_id: Some(id),
                    description,
                },
            ),
            Source::Group(g) => push(
                &mut p.user_id_group_pairs,
                UserIdGroupPair {
                    group_id: Some(g),
                    user_id: r["ReferencedGroupInfo"]["UserId"]
                        .as_str()
                        .map(str::to_string),
                    description,
                    ..Default::default()
                },
            ),
        }
    }
    out
}

fn push<T>(list: &mut Option<Vec<T>>, entry: T) {
    list.get_or_insert_with(Vec::new).push(entry)
}

/// A stored rule as the API shows it.
fn rule_of(r: &Value) -> SecurityGroupRule {
    let s = |k: &str| r[k].as_str().map(str::to_string);
    let referenced = &r["ReferencedGroupInfo"];
    SecurityGroupRule {
        security_group_rule_id: s("SecurityGroupRuleId"),
        group_id: s("GroupId"),
        group_owner_id: s("GroupOwnerId"),
        is_egress: r["IsEgress"].as_bool(),
        ip_protocol: s("IpProtocol"),
        from_port: port(&r["FromPort"]),
        to_port: port(&r["ToPort"]),
        security_group_rule_arn: s("SecurityGroupRuleArn"),
        cidr_ipv4: s("CidrIpv4"),
        cidr_ipv6: s("CidrIpv6"),
        prefix_list_id: s("PrefixListId"),
        referenced_group_info: referenced.is_object().then(|| ReferencedSecurityGroup {
            group_id: referenced["GroupId"].as_str().map(str::to_string),
            user_id: referenced["UserId"].as_str().map(str::to_string),
            ..Default::default()
        }),
        description: s("Description"),
        tags: tags::typed(tags::tags_of(r)),
    }
}

/// A group record as the API shows it: its rules folded into permissions.
fn group_of(g: &Value) -> SecurityGroup {
    let s = |k: &str| g[k].as_str().map(str::to_string);
    let rules = g["Rules"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    SecurityGroup {
        description: s("Description"),
        group_name: s("GroupName"),
        ip_permissions: Some(permissions(rules, false)),
        owner_id: s("OwnerId"),
        group_id: s("GroupId"),
        ip_permissions_egress: Some(permissions(rules, true)),
        vpc_id: s("VpcId"),
        security_group_arn: s("SecurityGroupArn"),
        tags: tags::typed(tags::tags_of(g)),
    }
}

// ---- groups ----------------------------------------------------------------------------

/// The group a request names by `GroupId`, or by `GroupName` in the default VPC (the only
/// place EC2 resolves bare names).
fn target(scope: &Scope, id: Option<&str>, name: Option<&str>) -> ApiResult<Record> {
    if let Some(id) = id {
        check_id(id, "sg")?;
        return scope.get(GROUP, id).ok_or_else(|| group_not_found(id));
    }
    let Some(name) = name else {
        return Err(missing("groupName or groupId"));
    };
    by_name_in_default_vpc(scope, name)
}

fn by_name_in_default_vpc(scope: &Scope, name: &str) -> ApiResult<Record> {
    let vpc = default_vpc(scope);
    let vpc_id = vpc.as_ref().map(|v| str_of(v, "VpcId").to_string());
    scope
        .list(GROUP)
        .into_iter()
        .find(|r| {
            r.value["GroupName"] == name && vpc_id.as_deref().is_some_and(|v| r.value["VpcId"] == v)
        })
        .ok_or_else(|| match vpc_id {
            Some(v) => ApiError::client(
                "InvalidGroup.NotFound",
                format!("The security group '{name}' does not exist in default VPC '{v}'"),
            ),
            None => group_not_found(name),
        })
}

pub fn create(
    scope: &Scope,
    input: CreateSecurityGroupRequest,
) -> ApiResult<CreateSecurityGroupResult> {
    let name = input.group_name.as_str();
    let description = input.description.as_str();
    if name.is_empty() {
        return Err(missing("GroupName"));
    }
    if description.is_empty() {
        return Err(missing("GroupDescription"));
    }
    if name.chars().count() > 255 || description.chars().count() > 255 {
        return Err(invalid_value(
            "Group name and description are limited to 255 characters.",
        ));
    }
    if !name.is_ascii() || !description.is_ascii() {
        return Err(invalid_value(
            "Character sets beyond ASCII are not supported.",
        ));
    }
    if name.to_ascii_lowercase().starts_with("sg-") {
        return Err(invalid_value("Group names may not be in the format sg-*"));
    }
    if name == "default" {
        return Err(ApiError::client(
            "InvalidGroup.Reserved",
            "The security group name 'default' is reserved and cannot be used.",
        ));
    }
    let vpc_id = match input.vpc_id.as_deref() {
        Some(v) => {
            check_id(v, "vpc")?;
            v.to_string()
        }
        None => default_vpc(scope)
            .map(|v| str_of(&v, "VpcId").to_string())
            .ok_or_else(no_default_vpc)?,
    };
    let tags = tags::from_specs(
        input.tag_specifications.as_deref(),
        ResourceType::SecurityGroup,
    )?;
    commit(scope.store, || {
        let vpc = scope
            .get(VPC, &vpc_id)
            .ok_or_else(|| vpc_not_found(&vpc_id))?;
        if scope
            .list(GROUP)
            .iter()
            .any(|g| g.value["VpcId"] == vpc_id.as_str() && g.value["GroupName"] == name)
        {
            return Err(ApiError::client(
                "InvalidGroup.Duplicate",
                format!("The security group '{name}' already exists for VPC '{vpc_id}'"),
            ));
        }
        let mut g = group_record(scope, &vpc_id, name, description, tags.clone());
        let id = str_of(&g, "GroupId").to_string();
        g["Rules"] = json!([allow_all_egress(scope, &id)]);
        let key = scope.key(GROUP, &id);
        let mut conds = vec![Cond::Absent(key.clone())];
        let mut ops = vec![Op::Put(key, g.clone())];
        // Rewriting the VPC serialises this against DeleteVpc and same-name creates.
        touch(&vpc, &mut conds, &mut ops, (*vpc.value).clone());
        let result = CreateSecurityGroupResult {
            security_group_arn: g["SecurityGroupArn"].as_str().map(str::to_string),
            tags: tags::typed(tags::tags_of(&g)),
            group_id: Some(id),
        };
        Ok(Plan { conds, ops, result })
    })
}

pub fn delete(
    scope: &Scope,
    input: DeleteSecurityGroupRequest,
) -> ApiResult<DeleteSecurityGroupResult> {
    commit(scope.store, || {
        let rec = target(
            scope,
            input.group_id.as_deref(),
            input.group_name.as_deref(),
        )?;
        let id = str_of(&rec.value, "GroupId").to_string();
        if rec.value["GroupName"] == "default" {
            return Err(ApiError::client(
                "CannotDelete",
                format!(
                    "the specified group: \"{id}\" name: \"default\" cannot be deleted by a user"
                ),
            ));
        }
        let referenced = scope.list(GROUP).iter().any(|g| {
            g.value["GroupId"] != id.as_str()
                && g.value["Rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| r["ReferencedGroupInfo"]["GroupId"] == id.as_str())
        });
        if referenced {
            return Err(ApiError::client(
                "DependencyViolation",
                format!("resource {id} has a dependent object"),
            ));
        }
        Ok(Plan {
            conds: vec![Cond::Revision(rec.key.clone(), rec.revision)],
            ops: vec![Op::Delete(rec.key.clone())],
            result: DeleteSecurityGroupResult {
                r#return: Some(true),
                group_id: Some(id),
            },
        })
    })
}

pub fn describe(
    scope: &Scope,
    input: DescribeSecurityGroupsRequest,
) -> ApiResult<DescribeSecurityGroupsResult> {
    let perm_filters = [
        "cidr",
        "ipv6-cidr",
        "from-port",
        "to-port",
        "protocol",
        "group-id",
        "group-name",
        "prefix-list-id",
    ];
    let mut known = vec![
        "description".to_string(),
        "group-id".into(),
        "group-name".into(),
        "owner-id".into(),
        "vpc-id".into(),
    ];
    for f in perm_filters {
        known.push(format!("ip-permission.{f}"));
        known.push(format!("egress.ip-permission.{f}"));
    }
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    let filters = Filters::parse(input.filters.as_deref(), &known)?;
    let all: Vec<Value> = scope
        .list(GROUP)
        .into_iter()
        .map(|r| (*r.value).clone())
        .collect();
    let ids = input.group_ids.unwrap_or_default();
    for id in &ids {
        check_id(id, "sg")?;
        if !all.iter().any(|g| g["GroupId"] == id.as_str()) {
            return Err(group_not_found(id));
        }
    }
    let mut named = Vec::new();
    for name in input.group_names.unwrap_or_default() {
        named.push(str_of(&by_name_in_default_vpc(scope, &name)?.value, "GroupId").to_string());
    }
    let name_of = |gid: &str| {
        all.iter()
            .find(|g| g["GroupId"] == gid)
            .map(|g| str_of(g, "GroupName").to_string())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for g in &all {
        let gid = str_of(g, "GroupId");
        if (!ids.is_empty() || !named.is_empty()) && !ids.iter().chain(&named).any(|i| i == gid) {
            continue;
        }
        let rules = g["Rules"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let field = |name: &str| -> Vec<String> {
            match name {
                "description" => one(str_of(g, "Description")),
                "group-id" => one(gid),
                "group-name" => one(str_of(g, "GroupName")),
                "owner-id" => one(str_of(g, "OwnerId")),
                "vpc-id" => one(str_of(g, "VpcId")),
                _ => {
                    let (egress, f) = match name.strip_prefix("egress.ip-permission.") {
                        Some(f) => (true, f),
                        None => (false, name.strip_prefix("ip-permission.").unwrap_or("")),
                    };
                    rules
                        .iter()
                        .filter(|r| r["IsEgress"] == egress)
                        .filter_map(|r| match f {
                            "cidr" => r
                                .get("CidrIpv4")
                                .and_then(Value::as_str)
                                .map(str::to_string),
                            "ipv6-cidr" => r
                                .get("CidrIpv6")
                                .and_then(Value::as_str)
                                .map(str::to_string),
                            "prefix-list-id" => r
                                .get("PrefixListId")
                                .and_then(Value::as_str)
                                .map(str::to_string),
                            "from-port" => Some(r["FromPort"].to_string()),
                            "to-port" => Some(r["ToPort"].to_string()),
                            "protocol" => Some(str_of(r, "IpProtocol").to_string()),
                            "group-id" => r["ReferencedGroupInfo"]
                                .get("GroupId")
                                .and_then(Value::as_str)
                                .map(str::to_string),
                            "group-name" => r["ReferencedGroupInfo"]
                                .get("GroupId")
                                .and_then(Value::as_str)
                                .map(name_of),
                            _ => None,
                        })
                        .collect()
                }
            }
        };
        if filters.matches(tags::tags_of(g), field) {
            out.push(group_of(g));
        }
    }
    let page = crate::page(
        out,
        |g| g.group_id.clone().unwrap_or_default(),
        input.max_results,
        input.next_token.as_deref(),
    )?;
    Ok(DescribeSecurityGroupsResult {
        security_groups: Some(page.items),
        next_token: page.next_token,
    })
}

// ---- authorize and revoke --------------------------------------------------------------

/// Authorize{Ingress,Egress}: the rules added.
pub fn authorize(
    scope: &Scope,
    input: RuleRequest,
    egress: bool,
) -> ApiResult<Vec<SecurityGroupRule>> {
    requested(scope, &input)?; // reject malformed permissions before reading the group
    let tags = tags::from_specs(
        input.tag_specifications.as_deref(),
        ResourceType::SecurityGroupRule,
    )?;
    commit(scope.store, || {
        let rec = target(
            scope,
            input.group_id.as_deref(),
            input.group_name.as_deref(),
        )?;
        let group = &rec.value;
        let gid = str_of(group, "GroupId").to_string();
        let specs = resolve(scope, group, requested(scope, &input)?)?;
        let mut rules: Vec<Value> = group["Rules"].as_array().cloned().unwrap_or_default();
        let mut added = Vec::new();
        for spec in &specs {
            if rules.iter().any(|r| same(r, egress, spec)) {
                return Err(ApiError::client(
                    "InvalidPermission.Duplicate",
                    format!(
                        "the specified rule \"{}\" already exists",
                        describe_rule(spec)
                    ),
                ));
            }
            let rule = new_rule(scope, &gid, egress, spec, tags.clone());
            rules.push(rule.clone());
            added.push(rule_of(&rule));
        }
        if rules.iter().filter(|r| r["IsEgress"] == egress).count() > MAX_RULES {
            return Err(ApiError::client(
                "RulesPerSecurityGroupLimitExceeded",
                "The maximum number of rules per security group has been reached.",
            ));
        }
        let mut value = (**group).clone();
        value["Rules"] = Value::Array(rules);
        let mut conds = vec![];
        let mut ops = vec![];
        touch(&rec, &mut conds, &mut ops, value);
        // Referenced groups are rewritten too, so a concurrent delete of one of them
        // cannot slip past its "has a dependent object" check.
        let mut seen = vec![gid.clone()];
        for spec in &specs {
            if let Source::Group(other) = &spec.source {
                if !seen.contains(other) {
                    let r = scope
                        .get(GROUP, other)
                        .ok_or_else(|| group_not_found(other))?;
                    touch(&r, &mut conds, &mut ops, (*r.value).clone());
                    seen.push(other.clone());
                }
            }
        }
        Ok(Plan {
            conds,
            ops,
            result: added,
        })
    })
}

fn revoked(rule: &Value) -> RevokedSecurityGroupRule {
    let s = |k: &str| rule[k].as_str().map(str::to_string);
    RevokedSecurityGroupRule {
        security_group_rule_id: s("SecurityGroupRuleId"),
        group_id: s("GroupId"),
        is_egress: rule["IsEgress"].as_bool(),
        ip_protocol: s("IpProtocol"),
        from_port: port(&rule["FromPort"]),
        to_port: port(&rule["ToPort"]),
        cidr_ipv4: s("CidrIpv4"),
        cidr_ipv6: s("CidrIpv6"),
        prefix_list_id: s("PrefixListId"),
        description: s("Description"),
        referenced_group_id: rule["ReferencedGroupInfo"]["GroupId"]
            .as_str()
            .map(str::to_string),
    }
}

/// What Revoke{Ingress,Egress} answer: the rules revoked, and (in the default VPC) the
/// requested ones that did not exist.
pub struct Revoked {
    pub rules: Vec<RevokedSecurityGroupRule>,
    pub unknown: Option<Vec<IpPermission>>,
}

pub fn revoke(scope: &Scope, input: RuleRequest, egress: bool) -> ApiResult<Revoked> {
    let rule_ids = &input.rule_ids;
    for id in rule_ids {
        check_id(id, "sgr")?;
    }
    if rule_ids.is_empty() {
        requested(scope, &input)?; // reject malformed permissions before touching anything
    }
    commit(scope.store, || {
        let rec = target(
            scope,
            input.group_id.as_deref(),
            input.group_name.as_deref(),
        )?;
        let group = &rec.value;
        let mut rules: Vec<Value> = group["Rules"].as_array().cloned().unwrap_or_default();
        let mut gone = Vec::new();
        let mut unknown = Vec::new();
        if !rule_ids.is_empty() {
            for id in rule_ids {
                let i = rules
                    .iter()
                    .position(|r| {
                        r["SecurityGroupRuleId"] == id.as_str() && r["IsEgress"] == egress
                    })
                    .ok_or_else(|| tags::rule_not_found(id))?;
                gone.push(rules.remove(i));
            }
        } else {
            // Only the default VPC forgives rules that do not exist, listing them instead.
            let default = scope
                .get(VPC, str_of(group, "VpcId"))
                .is_some_and(|v| v.value["IsDefault"] == true);
            for spec in resolve(scope, group, requested(scope, &input)?)? {
                match rules.iter().position(|r| same(r, egress, &spec)) {
                    Some(i) => gone.push(rules.remove(i)),
                    None if default => unknown.push(spec_permission(scope, &spec)),
                    None => {
                        return Err(ApiError::client(
                            "InvalidPermission.NotFound",
                            "The specified rule does not exist in this security group.",
                        ))
                    }
                }
            }
        }
        let mut value = (**group).clone();
        value["Rules"] = Value::Array(rules);
        let result = Revoked {
            rules: gone.iter().map(revoked).collect(),
            unknown: (!unknown.is_empty()).then_some(unknown),
        };
        let (mut conds, mut ops) = (vec![], vec![]);
        if !gone.is_empty() {
            touch(&rec, &mut conds, &mut ops, value);
        }
        Ok(Plan { conds, ops, result })
    })
}

pub fn describe_rules(
    scope: &Scope,
    input: DescribeSecurityGroupRulesRequest,
) -> ApiResult<DescribeSecurityGroupRulesResult> {
    let filters = Filters::parse(
        input.filters.as_deref(),
        &["group-id", "security-group-rule-id"],
    )?;
    let ids = input.security_group_rule_ids.unwrap_or_default();
    let mut all: Vec<Value> = scope
        .list(GROUP)
        .into_iter()
        .flat_map(|g| g.value["Rules"].as_array().cloned().unwrap_or_default())
        .collect();
    all.sort_by(|a, b| str_of(a, "SecurityGroupRuleId").cmp(str_of(b, "SecurityGroupRuleId")));
    for id in &ids {
        check_id(id, "sgr")?;
        if !all.iter().any(|r| r["SecurityGroupRuleId"] == id.as_str()) {
            return Err(tags::rule_not_found(id));
        }
    }
    let out: Vec<SecurityGroupRule> = all
        .iter()
        .filter(|r| ids.is_empty() || ids.iter().any(|i| r["SecurityGroupRuleId"] == i.as_str()))
        .filter(|r| {
            filters.matches(tags::tags_of(r), |name| match name {
                "group-id" => one(str_of(r, "GroupId")),
                "security-group-rule-id" => one(str_of(r, "SecurityGroupRuleId")),
                _ => vec![],
            })
        })
        .map(rule_of)
        .collect();
    let page = crate::page(
        out,
        |r| r.security_group_rule_id.clone().unwrap_or_default(),
        input.max_results,
        input.next_token.as_deref(),
    )?;
    Ok(DescribeSecurityGroupRulesResult {
        security_group_rules: Some(page.items),
        next_token: page.next_token,
    })
}

/// CreateSecurityGroup and DeleteSecurityGroup on a document, for other modules' tests.
#[cfg(test)]
pub(crate) fn create_doc(scope: &Scope, input: &Value) -> ApiResult<Value> {
    crate::common::test_support::doc::<op::CreateSecurityGroup>(input, |i| create(scope, i))
}
#[cfg(test)]
pub(crate) fn delete_doc(scope: &Scope, input: &Value) -> ApiResult<Value> {
    crate::common::test_support::doc::<op::DeleteSecurityGroup>(input, |i| delete(scope, i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::{doc, store};

    fn create(s: &Scope, input: &Value) -> ApiResult<Value> {
        create_doc(s, input)
    }
    fn delete(s: &Scope, input: &Value) -> ApiResult<Value> {
        delete_doc(s, input)
    }
    fn describe(s: &Scope, input: &Value) -> ApiResult<Value> {
        doc::<op::DescribeSecurityGroups>(input, |i| super::describe(s, i))
    }
    fn describe_rules(s: &Scope, input: &Value) -> ApiResult<Value> {
        doc::<op::DescribeSecurityGroupRules>(input, |i| super::describe_rules(s, i))
    }
    fn authorize(s: &Scope, input: &Value, egress: bool) -> ApiResult<Value> {
        if egress {
            doc::<op::AuthorizeSecurityGroupEgress>(input, |i| crate::authorize_egress(s, i))
        } else {
            doc::<op::AuthorizeSecurityGroupIngress>(input, |i| crate::authorize_ingress(s, i))
        }
    }
    fn revoke(s: &Scope, input: &Value, egress: bool) -> ApiResult<Value> {
        if egress {
            doc::<op::RevokeSecurityGroupEgress>(input, |i| crate::revoke_egress(s, i))
        } else {
            doc::<op::RevokeSecurityGroupIngress>(input, |i| crate::revoke_ingress(s, i))
        }
    }

    fn setup(st: &dyn berth_store::Store) -> (Scope<'_>, String) {
        let s = Scope::new(st, "000000000000", "us-east-1");
        crate::defaults::ensure(&s).unwrap();
        let vpc = crate::vpc::create_doc(&s, &json!({"CidrBlock": "10.0.0.0/16"})).unwrap()["Vpc"]
            ["VpcId"]
            .as_str()
            .unwrap()
            .to_string();
        (s, vpc)
    }

    fn group(s: &Scope, id: &str) -> Value {
        describe(s, &json!({"GroupIds": [id]})).unwrap()["SecurityGroups"][0].clone()
    }

    #[test]
    fn default_group_has_aws_rules() {
        let (_d, st) = store();
        let (s, _) = setup(&st);
        let d = describe(&s, &json!({"GroupNames": ["default"]})).unwrap();
        let g = &d["SecurityGroups"][0];
        assert_eq!(g["Description"], "default VPC security group");
        assert_eq!(g["IpPermissions"][0]["IpProtocol"], "-1");
        assert_eq!(
            g["IpPermissions"][0]["UserIdGroupPairs"][0]["GroupId"],
            g["GroupId"]
        );
        assert!(g["IpPermissions"][0].get("FromPort").is_none());
        assert_eq!(
            g["IpPermissionsEgress"][0]["IpRanges"][0]["CidrIp"],
            "0.0.0.0/0"
        );
        // One default group per VPC: the default VPC's and the new VPC's.
        let all = describe(
            &s,
            &json!({"Filters": [{"Name": "group-name", "Values": ["default"]}]}),
        )
        .unwrap();
        assert_eq!(all["SecurityGroups"].as_array().unwrap().len(), 2);
        let e = delete(&s, &json!({"GroupName": "default"})).unwrap_err();
        assert_eq!(e.code, "CannotDelete");
    }

    #[test]
    fn create_rejects_duplicates_and_reserved_names() {
        let (_d, st) = store();
        let (s, vpc) = setup(&st);
        let g = create(
            &s,
            &json!({"GroupName": "web", "Description": "web", "VpcId": vpc}),
        )
        .unwrap();
        assert!(g["GroupId"].as_str().unwrap().starts_with("sg-"));
        let e = create(
            &s,
            &json!({"GroupName": "web", "Description": "again", "VpcId": vpc}),
        )
        .unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.message),
            (
                "InvalidGroup.Duplicate",
                format!("The security group 'web' already exists for VPC '{vpc}'")
            )
        );
        // Same name in another VPC (the default one) is fine.
        create(&s, &json!({"GroupName": "web", "Description": "web"})).unwrap();
        assert_eq!(
            create(
                &s,
                &json!({"GroupName": "default", "Description": "d", "VpcId": vpc})
            )
            .unwrap_err()
            .code,
            "InvalidGroup.Reserved"
        );
        assert_eq!(
            create(&s, &json!({"GroupName": "sg-1", "Description": "d"}))
                .unwrap_err()
                .code,
            "InvalidParameterValue"
        );
        let e = create(
            &s,
            &json!({"GroupName": "x", "Description": "d", "VpcId": "vpc-0000000000000000f"}),
        )
        .unwrap_err();
        assert_eq!(e.code, "InvalidVpcID.NotFound");
        let fresh = group(&s, g["GroupId"].as_str().unwrap());
        assert_eq!(fresh["IpPermissions"], json!([]));
        assert_eq!(
            fresh["IpPermissionsEgress"][0]["IpRanges"][0]["CidrIp"],
            "0.0.0.0/0"
        );
    }

    #[test]
    fn authorize_revoke_and_rules() {
        let (_d, st) = store();
        let (s, vpc) = setup(&st);
        let id = create(
            &s,
            &json!({"GroupName": "web", "Description": "web", "VpcId": vpc}),
        )
        .unwrap()["GroupId"]
            .as_str()
            .unwrap()
            .to_string();
        let ssh = json!({"GroupId": id, "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "ssh"}]}]});
        let out = authorize(&s, &ssh, false).unwrap();
        assert_eq!(out["Return"], true);
        let rule_id = out["SecurityGroupRules"][0]["SecurityGroupRuleId"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(out["SecurityGroupRules"][0]["CidrIpv4"], "0.0.0.0/0");
        let e = authorize(&s, &ssh, false).unwrap_err();
        assert_eq!(e.code, "InvalidPermission.Duplicate");
        assert_eq!(e.message, "the specified rule \"peer: 0.0.0.0/0, TCP, from port: 22, to port: 22, ALLOW\" already exists");
        // Same port, second source: folded into one IpPermission.
        authorize(&s, &json!({"GroupId": id, "IpProtocol": "6", "FromPort": 22, "ToPort": 22, "CidrIp": "10.0.0.0/8"}), false).unwrap();
        let g = group(&s, &id);
        assert_eq!(g["IpPermissions"].as_array().unwrap().len(), 1);
        assert_eq!(
            g["IpPermissions"][0]["IpRanges"].as_array().unwrap().len(),
            2
        );
        assert_eq!(g["IpPermissions"][0]["IpRanges"][0]["Description"], "ssh");
        // Filters over permissions.
        let f = describe(
            &s,
            &json!({"Filters": [{"Name": "ip-permission.from-port", "Values": ["22"]}]}),
        )
        .unwrap();
        assert_eq!(f["SecurityGroups"].as_array().unwrap().len(), 1);

        let bad = |perm: Value| {
            authorize(&s, &json!({"GroupId": id, "IpPermissions": [perm]}), false)
                .unwrap_err()
                .code
        };
        assert_eq!(
            bad(json!({"IpProtocol": "tcp", "IpRanges": [{"CidrIp": "1.2.3.4/32"}]})),
            "InvalidParameterValue"
        );
        assert_eq!(
            bad(
                json!({"IpProtocol": "tcp", "FromPort": 90, "ToPort": 80, "IpRanges": [{"CidrIp": "1.2.3.4/32"}]})
            ),
            "InvalidParameterValue"
        );
        assert_eq!(
            bad(json!({"IpProtocol": "bogus", "IpRanges": [{"CidrIp": "1.2.3.4/32"}]})),
            "InvalidParameterValue"
        );
        assert_eq!(
            bad(json!({"IpProtocol": "-1", "IpRanges": [{"CidrIp": "1.2.3.4/33"}]})),
            "InvalidParameterValue"
        );
        assert_eq!(
            bad(
                json!({"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-0000000000000000f"}]})
            ),
            "InvalidGroup.NotFound"
        );

        // Rules by id, with the group named in the rule's description.
        let rules = describe_rules(
            &s,
            &json!({"Filters": [{"Name": "group-id", "Values": [id]}]}),
        )
        .unwrap();
        assert_eq!(rules["SecurityGroupRules"].as_array().unwrap().len(), 3);
        let one = describe_rules(&s, &json!({"SecurityGroupRuleIds": [rule_id]})).unwrap();
        assert_eq!(one["SecurityGroupRules"][0]["Description"], "ssh");
        assert_eq!(
            describe_rules(&s, &json!({"SecurityGroupRuleIds": ["sgr-0"]}))
                .unwrap_err()
                .code,
            "InvalidSecurityGroupRuleId.NotFound"
        );

        // Revoke: by properties (non-default VPC: unknown rules are an error), then by id.
        let r = revoke(&s, &ssh, false).unwrap();
        assert_eq!(
            r["RevokedSecurityGroupRules"][0]["SecurityGroupRuleId"],
            rule_id.as_str()
        );
        assert_eq!(
            revoke(&s, &ssh, false).unwrap_err().code,
            "InvalidPermission.NotFound"
        );
        let left = group(&s, &id)["IpPermissions"][0]["IpRanges"].clone();
        assert_eq!(left, json!([{"CidrIp": "10.0.0.0/8"}]));
        let egress_id = describe_rules(
            &s,
            &json!({"Filters": [{"Name": "group-id", "Values": [id]}]}),
        )
        .unwrap()["SecurityGroupRules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["IsEgress"] == true)
            .unwrap()["SecurityGroupRuleId"]
            .clone();
        assert_eq!(
            revoke(
                &s,
                &json!({"GroupId": id, "SecurityGroupRuleIds": [egress_id]}),
                false
            )
            .unwrap_err()
            .code,
            "InvalidSecurityGroupRuleId.NotFound"
        );
        revoke(
            &s,
            &json!({"GroupId": id, "SecurityGroupRuleIds": [egress_id]}),
            true,
        )
        .unwrap();
        assert_eq!(group(&s, &id)["IpPermissionsEgress"], json!([]));
    }

    #[test]
    fn default_vpc_revoke_lists_unknown_rules() {
        let (_d, st) = store();
        let (s, _) = setup(&st);
        create(&s, &json!({"GroupName": "app", "Description": "app"})).unwrap();
        let out = revoke(&s, &json!({"GroupName": "app", "IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "CidrIp": "0.0.0.0/0"}), false).unwrap();
        assert_eq!(out["Return"], true);
        assert_eq!(out["UnknownIpPermissions"][0]["FromPort"], 80);
    }

    #[test]
    fn referenced_groups_cannot_be_deleted() {
        let (_d, st) = store();
        let (s, vpc) = setup(&st);
        let a = create(
            &s,
            &json!({"GroupName": "a", "Description": "a", "VpcId": vpc}),
        )
        .unwrap()["GroupId"]
            .as_str()
            .unwrap()
            .to_string();
        let b = create(
            &s,
            &json!({"GroupName": "b", "Description": "b", "VpcId": vpc}),
        )
        .unwrap()["GroupId"]
            .as_str()
            .unwrap()
            .to_string();
        let from_b = json!({"GroupId": a, "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": b}]}]});
        authorize(&s, &from_b, false).unwrap();
        let e = delete(&s, &json!({"GroupId": b})).unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.message),
            (
                "DependencyViolation",
                format!("resource {b} has a dependent object")
            )
        );
        revoke(&s, &from_b, false).unwrap();
        assert_eq!(delete(&s, &json!({"GroupId": b})).unwrap()["Return"], true);
        assert_eq!(
            delete(&s, &json!({"GroupId": b})).unwrap_err().code,
            "InvalidGroup.NotFound"
        );
        // A group in another VPC cannot be referenced.
        let other = create(&s, &json!({"GroupName": "c", "Description": "c"})).unwrap()["GroupId"]
            .as_str()
            .unwrap()
            .to_string();
        let e = authorize(&s, &json!({"GroupId": a, "IpPermissions": [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": other}]}]}), false).unwrap_err();
        assert_eq!(e.code, "InvalidGroup.NotFound");
    }

    #[test]
    fn sources_in_other_accounts_are_refused_not_read_as_ours() {
        let (_d, st) = store();
        let (s, _) = setup(&st);
        let id = create(&s, &json!({"GroupName": "web", "Description": "w"})).unwrap()["GroupId"]
            .as_str()
            .unwrap()
            .to_string();
        let refused = [
            json!({"GroupId": id, "IpPermissions": [{"IpProtocol": "-1",
                "UserIdGroupPairs": [{"GroupId": id, "UserId": "111122223333"}]}]}),
            json!({"GroupId": id, "IpPermissions": [{"IpProtocol": "-1",
                "UserIdGroupPairs": [{"GroupId": id, "VpcPeeringConnectionId": "pcx-1"}]}]}),
            json!({"GroupId": id, "SourceSecurityGroupName": "web",
                "SourceSecurityGroupOwnerId": "111122223333"}),
        ];
        for bad in refused {
            let e = authorize(&s, &bad, false).unwrap_err();
            assert_eq!(e.code, "InvalidParameterValue", "{bad}");
        }
        // The caller's own account is fine, and nothing above was stored.
        let own = json!({"GroupId": id, "IpPermissions": [{"IpProtocol": "-1",
            "UserIdGroupPairs": [{"GroupId": id, "UserId": "000000000000"}]}]});
        let out = authorize(&s, &own, false).unwrap();
        assert_eq!(out["SecurityGroupRules"].as_array().unwrap().len(), 1);
        assert_eq!(group(&s, &id)["IpPermissions"].as_array().unwrap().len(), 1);
    }
}
