//! What other parts of Berth use: ECS's service scheduler registers and deregisters its
//! tasks through the same checks and records as RegisterTargets and DeregisterTargets, and
//! reads their health; the data plane finds its records under the keys named here.

use crate::common::*;
use berth_model::elbv2 as model;
use berth_store::Store;
use berth_types::elbv2;
use berth_wire::ApiResult;
use serde_json::Value;

/// The store key prefix of every ELBv2 record kind, as the data plane filters events.
pub const KEY_MARK: &str = berth_model::elbv2::key::MARK;

/// A target group as a user of it sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroupInfo {
    pub arn: String,
    /// `ip`, `instance`, `lambda` or `alb`.
    pub target_type: String,
    pub protocol: String,
    pub vpc_id: String,
    /// The load balancers whose listeners or rules forward to it.
    pub load_balancer_arns: Vec<String>,
}

/// One registered target and its health state (`initial`, `healthy`, `unhealthy`,
/// `draining`, or `unused` while no load balancer uses the group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetState {
    pub id: String,
    pub port: i64,
    pub state: String,
    pub reason: String,
}

/// The group, or TargetGroupNotFound / ValidationError for a malformed ARN.
pub fn target_group(
    store: &dyn Store,
    account: &str,
    region: &str,
    arn: &str,
) -> ApiResult<TargetGroupInfo> {
    let s = Scope::new(store, account, region, 0.0);
    let rec: model::TgRecord = record(&crate::tg::get(&s, arn)?.value)?;
    let lbs: std::collections::BTreeSet<String> = rec.used_by.into_values().collect();
    let tg = rec.target_group;
    Ok(TargetGroupInfo {
        arn: arn.to_string(),
        target_type: tg.target_type,
        protocol: tg.protocol.unwrap_or_default(),
        vpc_id: tg.vpc_id.unwrap_or_default(),
        load_balancer_arns: lbs.into_iter().collect(),
    })
}

/// RegisterTargets for (id, port) pairs.
pub fn register_targets(
    store: &dyn Store,
    account: &str,
    region: &str,
    now: f64,
    arn: &str,
    targets: &[(String, i64)],
) -> ApiResult<()> {
    let s = Scope::new(store, account, region, now);
    crate::tg::register(
        &s,
        elbv2::RegisterTargetsInput {
            target_group_arn: arn.to_string(),
            targets: descriptions(targets),
        },
    )
    .map(drop)
}

/// DeregisterTargets for (id, port) pairs: they drain, then leave the group.
pub fn deregister_targets(
    store: &dyn Store,
    account: &str,
    region: &str,
    now: f64,
    arn: &str,
    targets: &[(String, i64)],
) -> ApiResult<()> {
    let s = Scope::new(store, account, region, now);
    crate::tg::deregister(
        &s,
        elbv2::DeregisterTargetsInput {
            target_group_arn: arn.to_string(),
            targets: descriptions(targets),
        },
    )
    .map(drop)
}

/// (id, port) pairs as a targets request names them.
fn descriptions(targets: &[(String, i64)]) -> Vec<elbv2::TargetDescription> {
    targets
        .iter()
        .map(|(id, port)| elbv2::TargetDescription {
            id: id.clone(),
            port: i32::try_from(*port).ok(),
            availability_zone: None,
            quic_server_id: None,
        })
        .collect()
}

/// The group's registered targets with their health, as DescribeTargetHealth reports it.
pub fn target_health(
    store: &dyn Store,
    account: &str,
    region: &str,
    arn: &str,
) -> ApiResult<Vec<TargetState>> {
    let s = Scope::new(store, account, region, 0.0);
    let out = crate::tg::describe_health(
        &s,
        elbv2::DescribeTargetHealthInput {
            target_group_arn: arn.to_string(),
            targets: None,
            include: None,
        },
    )?;
    Ok(out
        .target_health_descriptions
        .unwrap_or_default()
        .into_iter()
        .map(|d| {
            let (target, health) = (d.target, d.target_health);
            TargetState {
                id: target.as_ref().map(|t| t.id.clone()).unwrap_or_default(),
                port: target.and_then(|t| t.port).map_or(0, i64::from),
                state: health
                    .as_ref()
                    .and_then(|h| h.state)
                    .map_or("", |s| s.as_str())
                    .to_string(),
                reason: health
                    .and_then(|h| h.reason)
                    .map_or("", |r| r.as_str())
                    .to_string(),
            }
        })
        .collect())
}

/// Whether a target group's record says a listener or rule forwards to it.
pub fn record_in_use(rec: &Value) -> bool {
    crate::tg::in_use(rec)
}

/// A VPC's IPv4 range.
pub use berth_ec2::vpc_cidr;

/// The addresses of a load balancer's `AvailabilityZones` entries.
pub fn addresses(zones: &[model::AvailabilityZone]) -> Vec<std::net::Ipv4Addr> {
    zones
        .iter()
        .flat_map(|z| z.addresses.iter().flatten())
        .filter_map(|a| a.ip_address.as_deref()?.parse().ok())
        .collect()
}
