//! What AWS gives every account in every region before it asks for anything: three
//! availability zones, a default VPC (172.31.0.0/16) with a default /20 subnet in each
//! zone, and the VPC's default security group. Created lazily the first time an account
//! and region is touched, exactly once even under concurrent first requests.

use crate::cidr::Cidr;
use crate::common::*;
use crate::filters::{one, Filters};
use crate::types::*;
use berth_store::{Cond, Op, StoreError};
use berth_wire::{ApiError, ApiResult};
use serde_json::{json, Value};

/// An availability zone: its name (`us-east-1a`) and id (`use1-az1`).
pub struct Zone {
    pub name: String,
    pub id: String,
}

/// `us-east-1` -> `use1`, `ap-southeast-2` -> `apse2`, `us-gov-west-1` -> `usgw1`: the
/// prefix AWS uses in zone ids.
fn region_code(region: &str) -> String {
    let parts: Vec<&str> = region.split('-').collect();
    if parts.len() < 3 {
        return region.replace('-', "");
    }
    let mut code = parts[0].to_string();
    for word in &parts[1..parts.len() - 1] {
        let short = match *word {
            "northeast" => "ne",
            "northwest" => "nw",
            "southeast" => "se",
            "southwest" => "sw",
            w => &w[..w.len().min(1)],
        };
        code.push_str(short);
    }
    code.push_str(parts[parts.len() - 1]);
    code
}

pub fn zones(region: &str) -> Vec<Zone> {
    let code = region_code(region);
    ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, l)| Zone {
            name: format!("{region}{l}"),
            id: format!("{code}-az{}", i + 1),
        })
        .collect()
}

const DEFAULT_VPC_CIDR: &str = "172.31.0.0/16";
const DEFAULT_SUBNETS: [&str; 3] = ["172.31.0.0/20", "172.31.16.0/20", "172.31.32.0/20"];

/// Make sure the account's default network exists in this region. Cheap after the first
/// call: one in-memory read of the marker record.
pub fn ensure(scope: &Scope) -> ApiResult<()> {
    let marker = scope.key(DEFAULTS, "network");
    if scope.store.get(&marker).is_some() {
        return Ok(());
    }
    let cidr = Cidr::parse(DEFAULT_VPC_CIDR).expect("valid default CIDR");
    let vpc = crate::vpc::build(scope, cidr, true, vec![]);
    let vpc_id = str_of(&vpc, "VpcId").to_string();
    let mut ops = vec![
        Op::Put(marker.clone(), json!({"DefaultVpcId": vpc_id})),
        Op::Put(scope.key(VPC, &vpc_id), vpc),
    ];
    let group = crate::security_group::build_default(scope, &vpc_id);
    ops.push(Op::Put(scope.key(GROUP, str_of(&group, "GroupId")), group));
    for (zone, block) in zones(scope.region).iter().zip(DEFAULT_SUBNETS) {
        let subnet = crate::subnet::build(
            scope,
            &vpc_id,
            Cidr::parse(block).expect("valid CIDR"),
            zone,
            true,
            vec![],
        );
        ops.push(Op::Put(
            scope.key(SUBNET, str_of(&subnet, "SubnetId")),
            subnet,
        ));
    }
    // The marker makes this happen once: a concurrent first request that loses the race
    // writes nothing, and the winner's records are already durable when it returns.
    match scope.store.txn(&[Cond::Absent(marker)], ops) {
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(store_err(e)),
    }
}

/// The default VPC, unless the user has deleted it.
pub fn default_vpc(scope: &Scope) -> Option<Value> {
    scope
        .list(VPC)
        .into_iter()
        .map(|r| (*r.value).clone())
        .find(|v| v["IsDefault"] == true)
}

pub fn describe_availability_zones(
    scope: &Scope,
    input: DescribeAvailabilityZonesRequest,
) -> ApiResult<DescribeAvailabilityZonesResult> {
    // Every zone Berth has is an opted-in availability zone: "all" (Local and Wavelength
    // Zones, and those not opted into) adds none.
    let _ = input.all_availability_zones;
    let filters = Filters::parse(
        input.filters.as_deref(),
        &[
            "group-name",
            "message",
            "opt-in-status",
            "region-name",
            "state",
            "zone-id",
            "zone-name",
            "zone-type",
            "group-long-name",
            "network-border-group",
        ],
    )?;
    let zones = zones(scope.region);
    let names = input.zone_names.unwrap_or_default();
    let ids = input.zone_ids.unwrap_or_default();
    for n in &names {
        if !zones.iter().any(|z| &z.name == n) {
            return Err(invalid_value(format!("Invalid availability zone: [{n}]")));
        }
    }
    for n in &ids {
        if !zones.iter().any(|z| &z.id == n) {
            return Err(invalid_value(format!(
                "Invalid availability zone ID: [{n}]"
            )));
        }
    }
    let mut out = Vec::new();
    for z in &zones {
        if (!names.is_empty() || !ids.is_empty())
            && !names.contains(&z.name)
            && !ids.contains(&z.id)
        {
            continue;
        }
        let field = |name: &str| match name {
            "group-name" | "region-name" | "network-border-group" => one(scope.region),
            "opt-in-status" => one("opt-in-not-required"),
            "state" => one("available"),
            "zone-id" => one(&z.id),
            "zone-name" => one(&z.name),
            "zone-type" => one("availability-zone"),
            _ => vec![],
        };
        if filters.matches(&[], field) {
            out.push(AvailabilityZone {
                state: Some(AvailabilityZoneState::Available),
                opt_in_status: Some(AvailabilityZoneOptInStatus::OptInNotRequired),
                messages: Some(vec![]),
                region_name: Some(scope.region.to_string()),
                zone_name: Some(z.name.clone()),
                zone_id: Some(z.id.clone()),
                group_name: Some(scope.region.to_string()),
                network_border_group: Some(scope.region.to_string()),
                zone_type: Some("availability-zone".into()),
                ..Default::default()
            });
        }
    }
    Ok(DescribeAvailabilityZonesResult {
        availability_zones: Some(out),
    })
}

pub fn describe_account_attributes(
    scope: &Scope,
    input: DescribeAccountAttributesRequest,
) -> ApiResult<DescribeAccountAttributesResult> {
    let default_vpc = default_vpc(scope)
        .map(|v| str_of(&v, "VpcId").to_string())
        .unwrap_or_else(|| "none".into());
    // The values AWS reports for a new account (EC2-Classic is retired: VPC only).
    let all = [
        ("vpc-max-security-groups-per-interface", "5".to_string()),
        ("max-instances", "20".to_string()),
        ("supported-platforms", "VPC".to_string()),
        ("default-vpc", default_vpc),
        ("max-elastic-ips", "5".to_string()),
        ("vpc-max-elastic-ips", "5".to_string()),
    ];
    let wanted = input.attribute_names.unwrap_or_default();
    let out: Vec<AccountAttribute> = all
        .into_iter()
        .filter(|(name, _)| wanted.is_empty() || wanted.iter().any(|w| w.as_str() == *name))
        .map(|(name, value)| AccountAttribute {
            attribute_name: Some(name.to_string()),
            attribute_values: Some(vec![AccountAttributeValue {
                attribute_value: Some(value),
            }]),
        })
        .collect();
    Ok(DescribeAccountAttributesResult {
        account_attributes: Some(out),
    })
}

/// No default VPC to fall back on (the user deleted it).
pub fn no_default_vpc() -> ApiError {
    ApiError::client("VPCIdNotSpecified", "No default VPC for this user")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::store;

    #[test]
    fn zone_ids_follow_aws_region_codes() {
        assert_eq!(region_code("us-east-1"), "use1");
        assert_eq!(region_code("ap-southeast-2"), "apse2");
        assert_eq!(region_code("eu-central-1"), "euc1");
        assert_eq!(region_code("us-gov-west-1"), "usgw1");
        let z = zones("eu-west-1");
        assert_eq!(z[2].name, "eu-west-1c");
        assert_eq!(z[2].id, "euw1-az3");
    }

    #[test]
    fn defaults_are_created_once() {
        let (_d, store) = store();
        let scope = Scope::new(&store, "000000000000", "us-east-1");
        ensure(&scope).unwrap();
        ensure(&scope).unwrap();
        assert_eq!(scope.list(VPC).len(), 1);
        assert_eq!(scope.list(SUBNET).len(), 3);
        assert_eq!(scope.list(GROUP).len(), 1);
        let vpc = default_vpc(&scope).unwrap();
        assert_eq!(vpc["CidrBlock"], "172.31.0.0/16");
        // Another region of the same account gets its own.
        let other = Scope::new(&store, "000000000000", "eu-west-1");
        ensure(&other).unwrap();
        assert_ne!(default_vpc(&other).unwrap()["VpcId"], vpc["VpcId"]);
        assert_eq!(scope.list(VPC).len(), 1);
    }

    #[test]
    fn concurrent_first_touches_create_one_network() {
        let (_d, store) = store();
        let store = std::sync::Arc::new(store);
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    ensure(&Scope::new(store.as_ref(), "111111111111", "us-west-2")).unwrap()
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let scope = Scope::new(store.as_ref(), "111111111111", "us-west-2");
        assert_eq!(scope.list(VPC).len(), 1);
        assert_eq!(scope.list(SUBNET).len(), 3);
        assert_eq!(scope.list(GROUP).len(), 1);
    }
}
