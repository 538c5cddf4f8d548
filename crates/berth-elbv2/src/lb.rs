//! Load balancers (application and network): CreateLoadBalancer, DescribeLoadBalancers,
//! DeleteLoadBalancer (with its listeners and rules), attributes, SetSecurityGroups and
//! SetSubnets. Subnets and security groups are checked against Berth's EC2 model.

use crate::common::*;
use crate::listener;
use berth_model::elbv2 as model;
use berth_store::Record;
use berth_types::elbv2;
use berth_wire::{ApiError, ApiResult};
use serde_json::{json, Map, Value};

/// The record of the load balancer `arn` names (ValidationError if malformed,
/// LoadBalancerNotFound if absent).
pub fn get(s: &Scope, arn: &str) -> ApiResult<Record> {
    match parse_arn(arn) {
        Some(Arn::Lb { name, .. }) => s
            .get(LB, &name)
            .filter(|r| r.value["LoadBalancer"]["LoadBalancerArn"] == arn)
            .ok_or_else(lb_not_found),
        _ => Err(bad_arn(arn, "load balancer")),
    }
}

pub use berth_model::elbv2::arn::id_of;

fn hosted_zone(region: &str, lb_type: &str) -> &'static str {
    // AWS's published hosted zone ids per region (application, network).
    let (app, net) = match region {
        "us-east-2" => ("Z3AADJGX6KTTL2", "ZLMOA37VPKANP"),
        "us-west-1" => ("Z368ELLRRE2KJ0", "Z24FKFUX50B4VW"),
        "us-west-2" => ("Z1H1FL5HABSF5", "Z18D5FSROUN65G"),
        "eu-west-1" => ("Z32O12XQLNTSW2", "Z2IFOLAFXWLO4F"),
        "eu-west-2" => ("ZHURV8PSTC4K8", "ZD4D7Y8KGAS4G"),
        "eu-central-1" => ("Z215JYRZR1TBD5", "Z3F0SRJ5LGBH90"),
        "ap-southeast-1" => ("Z1LMS91P8CMLE5", "ZKVM4W9LS7TM"),
        "ap-southeast-2" => ("Z1GM3OXH4ZPM65", "ZCT6FZBF4DROD"),
        "ap-northeast-1" => ("Z14GRHDCWA56QT", "Z31USIVHYNEOWT"),
        _ => ("Z35SXDOTRQ7X7K", "Z26RNL4JYFTOTI"),
    };
    if lb_type == "network" {
        net
    } else {
        app
    }
}

/// The subnets a request names (Subnets or SubnetMappings), checked: they exist, share one
/// VPC, at most one per zone, two zones at least for an application load balancer. Returns
/// the VPC and the `AvailabilityZones` entries in zone order.
fn resolve_subnets(
    s: &Scope,
    lb_type: &str,
    scheme: &str,
    subnets: Option<&[String]>,
    mappings: Option<&[elbv2::SubnetMapping]>,
) -> ApiResult<(String, Vec<Value>)> {
    /// One subnet asked for: its id, the address asked for in it, and the first member
    /// of its mapping Berth does not support.
    struct Wanted<'a> {
        id: &'a str,
        private_ip: Option<&'a str>,
        unsupported: Option<&'static str>,
    }
    let wanted: Vec<Wanted> = match (subnets, mappings) {
        (Some(_), Some(_)) => {
            return Err(validation(
                "You can specify subnets or subnet mappings, but not both",
            ))
        }
        (Some(l), None) => l
            .iter()
            .map(|id| Wanted {
                id,
                private_ip: None,
                unsupported: None,
            })
            .collect(),
        (None, Some(m)) => m
            .iter()
            .map(|m| Wanted {
                id: m.subnet_id.as_deref().unwrap_or(""),
                private_ip: m.private_i_pv4_address.as_deref(),
                unsupported: [
                    ("AllocationId", m.allocation_id.is_some()),
                    ("IPv6Address", m.i_pv6_address.is_some()),
                    ("SourceNatIpv6Prefix", m.source_nat_ipv6_prefix.is_some()),
                ]
                .into_iter()
                .find_map(|(p, set)| set.then_some(p)),
            })
            .collect(),
        (None, None) => vec![],
    };
    let app = lb_type == "application";
    if wanted.is_empty() || (app && wanted.len() < 2) {
        return Err(validation(if app {
            "At least two subnets in two different Availability Zones must be specified"
        } else {
            "At least one subnet must be specified"
        }));
    }
    let mut vpc: Option<(String, String)> = None;
    let mut zones: Vec<(String, Value)> = vec![];
    for m in &wanted {
        let id = m.id;
        if id.is_empty() {
            return Err(validation(
                "A subnet ID must be specified in each subnet mapping",
            ));
        }
        if let Some(p) = m.unsupported {
            return Err(if app {
                invalid_config(format!(
                    "{p} is not supported for Application Load Balancers"
                ))
            } else {
                not_supported(format!("SubnetMapping {p}"))
            });
        }
        let info = berth_ec2::subnet_info(s.store, s.account, s.region, id).ok_or_else(|| {
            ApiError::client(
                "SubnetNotFound",
                format!("The subnet ID '{id}' was not found"),
            )
        })?;
        match &vpc {
            None => vpc = Some((info.vpc_id.clone(), id.to_string())),
            Some((v, first)) if *v != info.vpc_id => {
                return Err(ApiError::client(
                    "InvalidSubnet",
                    format!("Subnets '{first}' and '{id}' are in different VPCs; a load balancer's subnets must all be in one VPC"),
                ))
            }
            Some(_) => {}
        }
        if zones.iter().any(|(z, _)| *z == info.availability_zone) {
            return Err(invalid_config(format!(
                "A load balancer cannot be attached to multiple subnets in the same Availability Zone ('{}')",
                info.availability_zone
            )));
        }
        let mut addresses = vec![];
        if let Some(ip) = m.private_ip {
            if app {
                return Err(invalid_config(
                    "PrivateIPv4Address is not supported for Application Load Balancers",
                ));
            }
            if scheme != "internal" {
                return Err(invalid_config(
                    "Private IPv4 addresses can only be specified for internal load balancers",
                ));
            }
            let ok = ip
                .parse::<std::net::Ipv4Addr>()
                .ok()
                .is_some_and(|a| cidr_contains(&info.cidr_block, a));
            if !ok {
                return Err(ApiError::client(
                    "InvalidSubnet",
                    format!(
                        "The private IPv4 address '{ip}' is not in the range of subnet '{id}' ({})",
                        info.cidr_block
                    ),
                ));
            }
            addresses.push(json!({"PrivateIPv4Address": ip}));
        }
        zones.push((
            info.availability_zone.clone(),
            json!({"ZoneName": info.availability_zone, "SubnetId": id, "LoadBalancerAddresses": addresses}),
        ));
    }
    if app && zones.len() < 2 {
        return Err(validation(
            "At least two subnets in two different Availability Zones must be specified",
        ));
    }
    zones.sort_by(|a, b| a.0.cmp(&b.0));
    let (vpc_id, _) = vpc.expect("at least one subnet");
    Ok((vpc_id, zones.into_iter().map(|(_, z)| z).collect()))
}

/// Whether `ip` lies in `cidr` (`a.b.c.d/n`).
pub fn cidr_contains(cidr: &str, ip: std::net::Ipv4Addr) -> bool {
    let Some((net, len)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(len)) = (net.parse::<std::net::Ipv4Addr>(), len.parse::<u32>()) else {
        return false;
    };
    if len > 32 {
        return false;
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(net) & mask == u32::from(ip) & mask
}

/// Security groups for a load balancer in `vpc_id`, checked: each exists and is in the VPC.
fn check_groups(s: &Scope, vpc_id: &str, any_subnet: &str, groups: &[String]) -> ApiResult<()> {
    for g in groups {
        if berth_ec2::check_awsvpc(
            s.store,
            s.account,
            s.region,
            &[any_subnet.to_string()],
            std::slice::from_ref(g),
        )
        .is_err()
        {
            return Err(ApiError::client(
                "InvalidSecurityGroup",
                format!("Security group '{g}' does not exist in VPC '{vpc_id}'"),
            ));
        }
    }
    Ok(())
}

/// Give each zone of a load balancer its address in the zone's subnet, from Berth's one
/// host allocator (leases owned by the load balancer's ARN): the one a subnet mapping asks
/// for, or the next free one. Zones listed in `keep` (subnet id to address) keep theirs.
/// Returns the addresses it leased, which the caller releases if its write fails.
fn lease_addresses(
    s: &Scope,
    arn: &str,
    zones: &mut [Value],
    keep: &[(String, Value)],
) -> ApiResult<Vec<std::net::Ipv4Addr>> {
    use berth_leases::ipam;
    let mut leased = vec![];
    for z in zones.iter_mut() {
        let subnet = str_of(z, "SubnetId").to_string();
        if let Some((_, addrs)) = keep.iter().find(|(id, _)| *id == subnet) {
            z["LoadBalancerAddresses"] = addrs.clone();
            continue;
        }
        let got = berth_ec2::subnet_info(s.store, s.account, s.region, &subnet)
            .and_then(|i| berth_net::Cidr::parse(&i.cidr_block))
            .ok_or_else(|| internal_subnet(&subnet))
            .and_then(|cidr| {
                let cand = ipam::Candidate {
                    subnet_id: subnet.clone(),
                    cidr,
                };
                let asked = z["LoadBalancerAddresses"][0]["PrivateIPv4Address"]
                    .as_str()
                    .and_then(|a| a.parse().ok());
                match asked {
                    Some(ip) => ipam::claim(s.store, &cand, ip, arn),
                    None => ipam::allocate(s.store, &[cand], 0, arn),
                }
                .map_err(|e| ApiError::client("InvalidSubnet", e))
            });
        match got {
            Ok(lease) => {
                let mut addr = json!({"IpAddress": lease.ip.to_string()});
                if z["LoadBalancerAddresses"][0]
                    .get("PrivateIPv4Address")
                    .is_some()
                {
                    addr["PrivateIPv4Address"] = json!(lease.ip.to_string());
                }
                z["LoadBalancerAddresses"] = json!([addr]);
                leased.push(lease.ip);
            }
            Err(e) => {
                release_addresses(s, arn, &leased);
                return Err(e);
            }
        }
    }
    Ok(leased)
}

fn duplicate_name(name: &str) -> ApiError {
    ApiError::client(
        "DuplicateLoadBalancerName",
        format!("A load balancer with the name '{name}' already exists"),
    )
}

fn too_many() -> ApiError {
    ApiError::client(
        "TooManyLoadBalancers",
        "The quota of 50 load balancers per region has been reached",
    )
}

fn internal_subnet(id: &str) -> ApiError {
    ApiError::client(
        "SubnetNotFound",
        format!("The subnet ID '{id}' was not found"),
    )
}

/// Give back a load balancer's addresses; one the store will not free yet stays leased
/// (logged): the node's start-up sweep leaves load balancers' leases alone, so the next
/// change of this load balancer frees it.
fn release_addresses(s: &Scope, arn: &str, ips: &[std::net::Ipv4Addr]) {
    for ip in ips {
        if let Err(e) = berth_leases::ipam::release(s.store, *ip, arn) {
            tracing::warn!(%ip, lb = arn, error = %e, "cannot free a load balancer's address");
        }
    }
}

/// The subnets of `AvailabilityZones` entries, to compare two placements.
fn subnet_ids(zones: &Value) -> Vec<&str> {
    zones
        .as_array()
        .map(|a| a.iter().map(|z| str_of(z, "SubnetId")).collect())
        .unwrap_or_default()
}

pub fn create(
    s: &Scope,
    input: elbv2::CreateLoadBalancerInput,
) -> ApiResult<elbv2::CreateLoadBalancerOutput> {
    let name = input.name.as_str();
    check_name(name, "load balancer")?;
    if name.starts_with("internal-") {
        return Err(validation(format!(
            "The load balancer name '{name}' cannot begin with 'internal-'"
        )));
    }
    let lb_type = input.r#type.map_or("application", |t| t.as_str());
    if lb_type == "gateway" {
        return Err(not_supported("Gateway Load Balancers"));
    }
    let scheme = input.scheme.map_or("internet-facing", |t| t.as_str());
    let ip_type = input.ip_address_type.map_or("ipv4", |t| t.as_str());
    if ip_type != "ipv4" {
        return Err(not_supported(format!("IpAddressType '{ip_type}'")));
    }
    for (p, set) in [
        (
            "CustomerOwnedIpv4Pool",
            input.customer_owned_ipv4_pool.is_some(),
        ),
        ("IpamPools", input.ipam_pools.is_some()),
        (
            "EnablePrefixForIpv6SourceNat",
            input.enable_prefix_for_ipv6_source_nat.is_some(),
        ),
    ] {
        if set {
            return Err(not_supported(p));
        }
    }
    let (vpc_id, mut zones) = resolve_subnets(
        s,
        lb_type,
        scheme,
        input.subnets.as_deref(),
        input.subnet_mappings.as_deref(),
    )?;
    let first_subnet = str_of(&zones[0], "SubnetId").to_string();
    let mut groups = input.security_groups.clone().unwrap_or_default();
    if groups.is_empty() && lb_type == "application" {
        groups.extend(berth_ec2::default_security_group(
            s.store, s.account, s.region, &vpc_id,
        ));
    }
    check_groups(s, &vpc_id, &first_subnet, &groups)?;
    let tags = request_tags(input.tags.as_deref().unwrap_or_default())?;

    let id = new_id();
    let arn = berth_model::elbv2::arn::lb_arn(s.region, s.account, lb_type, name, &id);
    let digits = u64::from_str_radix(&id[..15], 16).unwrap_or(0) % 10_000_000_000;
    let internal = if scheme == "internal" {
        "internal-"
    } else {
        ""
    };
    // What the transaction below checks again, checked before any address is leased, so a
    // refused or repeated request writes nothing.
    let key = s.key(LB, name);
    if let Some(existing) = s.store.get(&key) {
        let old = &existing.value["LoadBalancer"];
        let same = old["Type"] == json!(lb_type)
            && old["Scheme"] == json!(scheme)
            && subnet_ids(&old["AvailabilityZones"]) == subnet_ids(&json!(zones))
            && old.get("SecurityGroups").cloned().unwrap_or(json!([])) == json!(groups);
        if same {
            return Ok(elbv2::CreateLoadBalancerOutput {
                load_balancers: Some(vec![shape(old)?]),
            });
        }
        return Err(duplicate_name(name));
    }
    if s.list(LB, "").len() >= 50 {
        return Err(too_many());
    }
    let leased = lease_addresses(s, &arn, &mut zones, &[])?;
    let mut lb = json!({
        "LoadBalancerArn": arn,
        "DNSName": format!("{internal}{name}-{digits:010}.{}.elb.localhost", s.region),
        "CanonicalHostedZoneId": hosted_zone(s.region, lb_type),
        "CreatedTime": s.now,
        "LoadBalancerName": name,
        "Scheme": scheme,
        "VpcId": vpc_id,
        "State": {"Code": "active"},
        "Type": lb_type,
        "AvailabilityZones": zones,
        "IpAddressType": ip_type,
    });
    if !groups.is_empty() {
        lb["SecurityGroups"] = json!(groups);
    }
    let out = commit(s.store, || {
        if let Some(existing) = s.store.get(&key) {
            let old = &existing.value["LoadBalancer"];
            let same = old["Type"] == lb["Type"]
                && old["Scheme"] == lb["Scheme"]
                && subnet_ids(&old["AvailabilityZones"]) == subnet_ids(&lb["AvailabilityZones"])
                && old.get("SecurityGroups") == lb.get("SecurityGroups");
            if same {
                return Ok(Plan::new(json!({"LoadBalancers": [old]})));
            }
            return Err(duplicate_name(name));
        }
        if s.list(LB, "").len() >= 50 {
            return Err(too_many());
        }
        let mut plan = Plan::new(json!({"LoadBalancers": [lb.clone()]}));
        plan.create(
            key.clone(),
            json!({"LoadBalancer": lb.clone(), "Tags": tags.clone(), "Attributes": {}}),
        );
        Ok(plan)
    });
    // An error, or an existing load balancer returned instead: the new addresses go back.
    if out.as_ref().map_or(true, |o| {
        o["LoadBalancers"][0]["LoadBalancerArn"] != arn.as_str()
    }) {
        release_addresses(s, &arn, &leased);
    }
    Ok(elbv2::CreateLoadBalancerOutput {
        load_balancers: Some(shapes(
            out?["LoadBalancers"]
                .as_array()
                .map_or(&[][..], Vec::as_slice),
        )?),
    })
}

pub fn describe(
    s: &Scope,
    input: elbv2::DescribeLoadBalancersInput,
) -> ApiResult<elbv2::DescribeLoadBalancersOutput> {
    let arns = input.load_balancer_arns.unwrap_or_default();
    let names = input.names.unwrap_or_default();
    if !arns.is_empty() && !names.is_empty() {
        return Err(validation(
            "Load balancer names and load balancer ARNs cannot be specified at the same time",
        ));
    }
    let lb_of = |r: &Record| record::<model::LbRecord>(&r.value).map(|r| r.load_balancer);
    let mut found: Vec<model::LoadBalancer> = if !arns.is_empty() {
        arns.iter()
            .map(|a| lb_of(&get(s, a)?))
            .collect::<ApiResult<_>>()?
    } else if !names.is_empty() {
        let mut missing = vec![];
        let mut out = vec![];
        for n in &names {
            match s.get(LB, n) {
                Some(r) => out.push(lb_of(&r)?),
                None => missing.push(n.clone()),
            }
        }
        if !missing.is_empty() {
            return Err(ApiError::client(
                "LoadBalancerNotFound",
                format!("Load balancers '[{}]' not found", missing.join(", ")),
            ));
        }
        out
    } else {
        s.list(LB, "").iter().map(lb_of).collect::<ApiResult<_>>()?
    };
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found.dedup_by(|a, b| a.arn == b.arn);
    let p = page(
        found,
        |l| l.name.clone(),
        input.page_size,
        input.marker.as_deref(),
    )?;
    Ok(elbv2::DescribeLoadBalancersOutput {
        load_balancers: Some(
            p.items
                .iter()
                .map(|l| shape(&model::to_value(l)))
                .collect::<ApiResult<_>>()?,
        ),
        next_marker: p.next_token,
    })
}

pub fn delete(
    s: &Scope,
    input: elbv2::DeleteLoadBalancerInput,
) -> ApiResult<elbv2::DeleteLoadBalancerOutput> {
    let arn = input.load_balancer_arn.as_str();
    commit(s.store, || {
        let rec = match get(s, arn) {
            Ok(r) => r,
            // AWS: deleting a load balancer that does not exist succeeds.
            Err(e) if e.code == "LoadBalancerNotFound" => return Ok(Plan::new(json!({}))),
            Err(e) => return Err(e),
        };
        if attribute_value(&rec.value, "deletion_protection.enabled") == "true" {
            return Err(not_permitted(format!(
                "Load balancer '{arn}' cannot be deleted because deletion protection is enabled"
            )));
        }
        let mut plan = Plan::new(json!({}));
        let mut released = vec![];
        for l in s.list(LISTENER, &format!("{}/", id_of(arn))) {
            released.extend(listener::plan_delete(s, &l, &mut plan));
        }
        crate::tg::release(s, &released, &mut plan)?;
        plan.delete(&rec);
        Ok(plan)
    })?;
    // The addresses go back once the record is gone (also when it was gone already: a
    // retry after a release the store refused frees them then).
    berth_leases::ipam::release_owner(s.store, arn).map_err(|e| {
        ApiError::internal(format!(
            "The load balancer is deleted, but its addresses could not be freed yet ({e}); retry the deletion"
        ))
    })?;
    Ok(elbv2::DeleteLoadBalancerOutput {})
}

// ---- attributes ----------------------------------------------------------------------------

#[derive(Clone, Copy)]
pub enum Kind {
    Bool,
    /// A boolean that cannot be changed from its default.
    Fixed,
    Int(i64, i64),
    /// `off` or an integer in the range.
    OffOrInt(i64, i64),
    /// `0` or an integer in the range (slow start).
    ZeroOr(i64, i64),
    Enum(&'static [&'static str]),
    Text,
    /// A log destination's switch: Berth has no S3 to write to yet.
    Logs,
}

pub type AttrSpec = (&'static str, Kind, &'static str);

const APP_ATTRS: &[AttrSpec] = &[
    ("access_logs.s3.bucket", Kind::Text, ""),
    ("access_logs.s3.enabled", Kind::Logs, "false"),
    ("access_logs.s3.prefix", Kind::Text, ""),
    ("client_keep_alive.seconds", Kind::Int(60, 604_800), "3600"),
    ("connection_logs.s3.bucket", Kind::Text, ""),
    ("connection_logs.s3.enabled", Kind::Logs, "false"),
    ("connection_logs.s3.prefix", Kind::Text, ""),
    ("deletion_protection.enabled", Kind::Bool, "false"),
    ("health_check_logs.s3.bucket", Kind::Text, ""),
    ("health_check_logs.s3.enabled", Kind::Logs, "false"),
    ("health_check_logs.s3.prefix", Kind::Text, ""),
    ("idle_timeout.timeout_seconds", Kind::Int(1, 4000), "60"),
    ("load_balancing.cross_zone.enabled", Kind::Fixed, "true"),
    (
        "routing.http.desync_mitigation_mode",
        Kind::Enum(&["monitor", "defensive", "strictest"]),
        "defensive",
    ),
    (
        "routing.http.drop_invalid_header_fields.enabled",
        Kind::Bool,
        "false",
    ),
    (
        "routing.http.preserve_host_header.enabled",
        Kind::Bool,
        "false",
    ),
    (
        "routing.http.x_amzn_tls_version_and_cipher_suite.enabled",
        Kind::Bool,
        "false",
    ),
    ("routing.http.xff_client_port.enabled", Kind::Bool, "false"),
    (
        "routing.http.xff_header_processing.mode",
        Kind::Enum(&["append", "preserve", "remove"]),
        "append",
    ),
    ("routing.http2.enabled", Kind::Bool, "true"),
    ("waf.fail_open.enabled", Kind::Bool, "false"),
    ("zonal_shift.config.enabled", Kind::Bool, "false"),
];

const NET_ATTRS: &[AttrSpec] = &[
    ("access_logs.s3.bucket", Kind::Text, ""),
    ("access_logs.s3.enabled", Kind::Logs, "false"),
    ("access_logs.s3.prefix", Kind::Text, ""),
    ("deletion_protection.enabled", Kind::Bool, "false"),
    (
        "dns_record.client_routing_policy",
        Kind::Enum(&[
            "availability_zone_affinity",
            "partial_availability_zone_affinity",
            "any_availability_zone",
        ]),
        "any_availability_zone",
    ),
    ("load_balancing.cross_zone.enabled", Kind::Bool, "false"),
    ("zonal_shift.config.enabled", Kind::Bool, "false"),
];

/// A load balancer type as the API names it.
fn lb_type_str(t: model::LbType) -> &'static str {
    match t {
        model::LbType::Application => "application",
        model::LbType::Network => "network",
        model::LbType::Gateway => "gateway",
    }
}

fn specs(lb: &Value) -> &'static [AttrSpec] {
    if lb["LoadBalancer"]["Type"] == "network" {
        NET_ATTRS
    } else {
        APP_ATTRS
    }
}

/// A record's attribute value: what was set, else the default for its type.
pub fn attribute_value(rec: &Value, key: &str) -> String {
    if let Some(v) = rec["Attributes"].get(key).and_then(Value::as_str) {
        return v.to_string();
    }
    specs(rec)
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, _, d)| d.to_string())
        .unwrap_or_default()
}

/// Every attribute of `specs` with `set` over the defaults, in key order.
pub fn render_attributes(specs: &[AttrSpec], set: &Value) -> Vec<(String, String)> {
    specs
        .iter()
        .map(|(k, _, d)| {
            let v = set.get(*k).and_then(Value::as_str).unwrap_or(d);
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// [`render_attributes`] as a load balancer's attributes.
fn lb_attributes(specs: &[AttrSpec], set: &Value) -> Vec<elbv2::LoadBalancerAttribute> {
    render_attributes(specs, set)
        .into_iter()
        .map(|(k, v)| elbv2::LoadBalancerAttribute {
            key: Some(k),
            value: Some(v),
        })
        .collect()
}

/// Check `attrs` (the request's `(Key, Value)` pairs, absent as empty) against `specs`
/// and apply them to `set`.
pub fn apply_attributes(
    specs: &[AttrSpec],
    attrs: &[(&str, &str)],
    set: &mut Map<String, Value>,
) -> ApiResult<()> {
    for &(key, value) in attrs {
        let Some((_, kind, default)) = specs.iter().find(|(k, _, _)| *k == key) else {
            return Err(invalid_config(format!("Key {key} not valid")));
        };
        let bad = || {
            invalid_config(format!(
                "'{value}' is not a valid value for attribute '{key}'"
            ))
        };
        match kind {
            Kind::Bool | Kind::Logs => {
                if value != "true" && value != "false" {
                    return Err(bad());
                }
                if matches!(kind, Kind::Logs) && value == "true" {
                    return Err(not_supported(format!(
                        "Attribute '{key}' set to true (there is no S3 to write logs to)"
                    )));
                }
            }
            Kind::Fixed => {
                if value != *default {
                    return Err(invalid_config(format!(
                        "Attribute '{key}' cannot be changed from '{default}'"
                    )));
                }
            }
            Kind::Int(lo, hi) => {
                let n: i64 = value.parse().map_err(|_| bad())?;
                if n < *lo || n > *hi {
                    return Err(invalid_config(format!(
                        "Attribute '{key}' must be between {lo} and {hi}, got '{value}'"
                    )));
                }
            }
            Kind::OffOrInt(lo, hi) | Kind::ZeroOr(lo, hi) => {
                let special = if matches!(kind, Kind::OffOrInt(..)) {
                    "off"
                } else {
                    "0"
                };
                if value != special {
                    let n: i64 = value.parse().map_err(|_| bad())?;
                    if n < *lo || n > *hi {
                        return Err(invalid_config(format!(
                            "Attribute '{key}' must be '{special}' or between {lo} and {hi}, got '{value}'"
                        )));
                    }
                }
            }
            Kind::Enum(allowed) => {
                if !allowed.contains(&value) {
                    return Err(invalid_config(format!(
                        "'{value}' is not a valid value for attribute '{key}'; valid values are {}",
                        allowed.join(", ")
                    )));
                }
            }
            Kind::Text => {}
        }
        set.insert(key.to_string(), json!(value));
    }
    Ok(())
}

pub fn describe_attributes(
    s: &Scope,
    input: elbv2::DescribeLoadBalancerAttributesInput,
) -> ApiResult<elbv2::DescribeLoadBalancerAttributesOutput> {
    let rec = get(s, &input.load_balancer_arn)?;
    Ok(elbv2::DescribeLoadBalancerAttributesOutput {
        attributes: Some(lb_attributes(specs(&rec.value), &rec.value["Attributes"])),
    })
}

/// Load balancer attributes the data plane or the API carries out; the others may only be
/// set to their defaults (logs' buckets and prefixes matter only once logs are on, which
/// is refused).
fn acted(key: &str) -> bool {
    matches!(
        key,
        "idle_timeout.timeout_seconds"
            | "deletion_protection.enabled"
            | "load_balancing.cross_zone.enabled"
    ) || key.contains("_logs.s3.")
}

/// Attributes set to what Berth does not do are refused rather than stored and ignored.
/// `refused(key, value, changed)` decides, `changed` saying the value is not the
/// attribute's default; load balancers and target groups each say which of theirs act.
pub fn refuse_unacted(
    specs: &[AttrSpec],
    attrs: &[(&str, &str)],
    refused: impl Fn(&str, &str, bool) -> bool,
) -> ApiResult<()> {
    for &(key, value) in attrs {
        let default = specs.iter().find(|(k, _, _)| *k == key).map(|s| s.2);
        if refused(key, value, default.is_some_and(|d| d != value)) {
            return Err(not_supported(format!("Attribute '{key}' set to '{value}'")));
        }
    }
    Ok(())
}

pub fn modify_attributes(
    s: &Scope,
    input: elbv2::ModifyLoadBalancerAttributesInput,
) -> ApiResult<elbv2::ModifyLoadBalancerAttributesOutput> {
    let arn = input.load_balancer_arn.as_str();
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
        let mut v = (*rec.value).clone();
        let mut set = v["Attributes"].as_object().cloned().unwrap_or_default();
        apply_attributes(specs(&v), &attrs, &mut set)?;
        refuse_unacted(specs(&v), &attrs, |k, _, changed| changed && !acted(k))?;
        v["Attributes"] = Value::Object(set);
        let mut plan = Plan::new(elbv2::ModifyLoadBalancerAttributesOutput {
            attributes: Some(lb_attributes(specs(&v), &v["Attributes"])),
        });
        plan.put(&rec, v);
        Ok(plan)
    })
}

// ---- security groups and subnets ----------------------------------------------------------

pub fn set_security_groups(
    s: &Scope,
    input: elbv2::SetSecurityGroupsInput,
) -> ApiResult<elbv2::SetSecurityGroupsOutput> {
    let arn = input.load_balancer_arn.as_str();
    if input
        .enforce_security_group_inbound_rules_on_private_link_traffic
        .is_some()
    {
        return Err(not_supported(
            "EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic",
        ));
    }
    let groups = &input.security_groups;
    commit(s.store, || {
        let rec = get(s, arn)?;
        let lb = record::<model::LbRecord>(&rec.value)?.load_balancer;
        if lb.lb_type == model::LbType::Network && lb.security_groups.is_none() {
            return Err(invalid_config(
                "You can't associate a security group with a Network Load Balancer that was created without one",
            ));
        }
        if groups.is_empty() {
            return Err(validation("At least one security group must be specified"));
        }
        let subnet = lb
            .availability_zones
            .first()
            .and_then(|z| z.subnet_id.as_deref());
        check_groups(
            s,
            lb.vpc_id.as_deref().unwrap_or(""),
            subnet.unwrap_or(""),
            groups,
        )?;
        let mut v = (*rec.value).clone();
        v["LoadBalancer"]["SecurityGroups"] = json!(groups);
        let mut plan = Plan::new(elbv2::SetSecurityGroupsOutput {
            security_group_ids: Some(groups.clone()),
            enforce_security_group_inbound_rules_on_private_link_traffic: None,
        });
        plan.put(&rec, v);
        Ok(plan)
    })
}

pub fn set_subnets(s: &Scope, input: elbv2::SetSubnetsInput) -> ApiResult<elbv2::SetSubnetsOutput> {
    let arn = input.load_balancer_arn.as_str();
    for (p, v) in [
        ("IpAddressType", input.ip_address_type.map(|t| t.as_str())),
        (
            "EnablePrefixForIpv6SourceNat",
            input.enable_prefix_for_ipv6_source_nat.map(|t| t.as_str()),
        ),
    ] {
        if v.is_some_and(|v| v != "ipv4") {
            return Err(not_supported(p));
        }
    }
    // New subnets get their addresses before the write, kept ones keep theirs; what the
    // write drops is released after it, what a failed write leased is released too.
    let rec = get(s, arn)?;
    let lb = record::<model::LbRecord>(&rec.value)?.load_balancer;
    let lb_vpc = lb.vpc_id.as_deref().unwrap_or("");
    let (vpc, mut zones) = resolve_subnets(
        s,
        lb_type_str(lb.lb_type),
        lb.scheme.as_deref().unwrap_or(""),
        input.subnets.as_deref(),
        input.subnet_mappings.as_deref(),
    )?;
    if vpc != lb_vpc {
        return Err(ApiError::client(
            "InvalidSubnet",
            format!("The subnets must be in the load balancer's VPC '{lb_vpc}'"),
        ));
    }
    let keep: Vec<(String, Value)> = lb
        .availability_zones
        .iter()
        .map(|z| {
            (
                z.subnet_id.clone().unwrap_or_default(),
                z.addresses.as_ref().map_or(Value::Null, model::to_value),
            )
        })
        .collect();
    let leased = lease_addresses(s, arn, &mut zones, &keep)?;
    let before = rec.revision;
    let out = commit(s.store, || {
        let rec = get(s, arn)?;
        if rec.revision != before {
            return Err(ApiError::client(
                "OperationNotPermitted",
                "The load balancer changed while its subnets were being set; try again",
            ));
        }
        let lb = &rec.value["LoadBalancer"];
        let mut v = (*rec.value).clone();
        v["LoadBalancer"]["AvailabilityZones"] = json!(zones);
        let mut plan = Plan::new(elbv2::SetSubnetsOutput {
            availability_zones: Some(shapes(&zones)?),
            ip_address_type: shape(&lb["IpAddressType"])?,
            enable_prefix_for_ipv6_source_nat: None,
        });
        plan.put(&rec, v);
        Ok(plan)
    });
    match &out {
        Ok(_) => {
            // The zones were made here, so each reads as its type.
            let zones: Vec<_> = zones.iter().filter_map(|z| record(z).ok()).collect();
            let now = crate::api::addresses(&zones);
            for (ip, owner) in berth_leases::ipam::leases(s.store) {
                if owner == arn && !now.contains(&ip) {
                    release_addresses(s, arn, &[ip]);
                }
            }
        }
        Err(_) => release_addresses(s, arn, &leased),
    }
    out
}
