//! berth-ec2: the EC2 networking model (ec2 protocol: form in, XML out) that every awsvpc
//! request refers to. Each account and region gets, on first touch, a default VPC
//! (172.31.0.0/16), a default subnet in each of three availability zones and the default
//! security group. VPCs, subnets and security groups (with their rules) can be described,
//! created and deleted. Security-group rules are recorded now and enforced later.
//!
//! ECS validates awsvpcConfiguration through `check_awsvpc` and friends below.

use berth_net::cidr;
mod common;
mod defaults;
mod filters;
mod security_group;
mod subnet;
mod tags;
mod vpc;

use berth_store::Store;
pub use berth_types::ec2 as types;
use berth_wire::model::LazyModel;
use berth_wire::page::Page;
use berth_wire::{ApiError, ApiResult, Clock, Model, RequestContext, Service, ValidationCodes};
use common::{str_of, Scope, GROUP, SUBNET};
use serde_json::Value;
use std::sync::Arc;

static MODEL: LazyModel = LazyModel::new(include_bytes!("../../berth-wire/models/ec2.json.gz"));

pub fn model() -> &'static Model {
    MODEL.get()
}

pub struct Ec2 {
    store: Arc<dyn Store>,
    /// Nothing in the networking model depends on time yet.
    #[allow(dead_code)]
    clock: Clock,
}

impl Ec2 {
    pub fn new(store: Arc<dyn Store>, clock: Clock) -> Self {
        Ec2 { store, clock }
    }
}

impl Service for Ec2 {
    fn model(&self) -> &'static Model {
        model()
    }

    fn metadata(&self) -> &'static berth_wire::model::Metadata {
        MODEL.metadata()
    }
    fn codes(&self) -> ValidationCodes {
        ValidationCodes::ec2()
    }
    fn call(&self, ctx: &RequestContext, operation: &str, input: Value) -> ApiResult<Value> {
        use types::op;
        let scope = Scope::new(self.store.as_ref(), &ctx.account, &ctx.region);
        // Every operation answers DryRun before it acts, and sees the defaults in place.
        let ready = |dry_run: Option<bool>| {
            if dry_run == Some(true) {
                return Err(dry_run_answer());
            }
            defaults::ensure(&scope)
        };
        berth_wire::dispatch!(operation, input, self.codes(), op {
            DescribeVpcs => |i| { ready(i.dry_run)?; vpc::describe(&scope, i) },
            CreateVpc => |i| { ready(i.dry_run)?; vpc::create(&scope, i) },
            DeleteVpc => |i| { ready(i.dry_run)?; vpc::delete(&scope, i) },
            DescribeSubnets => |i| { ready(i.dry_run)?; subnet::describe(&scope, i) },
            CreateSubnet => |i| { ready(i.dry_run)?; subnet::create(&scope, i) },
            DeleteSubnet => |i| { ready(i.dry_run)?; subnet::delete(&scope, i) },
            CreateTags => |i| { ready(i.dry_run)?; tags::create_tags(&scope, i) },
            DeleteTags => |i| { ready(i.dry_run)?; tags::delete_tags(&scope, i) },
            DescribeTags => |i| { ready(i.dry_run)?; tags::describe_tags(&scope, i) },
            DescribeSecurityGroups => |i| { ready(i.dry_run)?; security_group::describe(&scope, i) },
            CreateSecurityGroup => |i| { ready(i.dry_run)?; security_group::create(&scope, i) },
            DeleteSecurityGroup => |i| { ready(i.dry_run)?; security_group::delete(&scope, i) },
            AuthorizeSecurityGroupIngress => |i| { ready(i.dry_run)?; authorize_ingress(&scope, i) },
            AuthorizeSecurityGroupEgress => |i| { ready(i.dry_run)?; authorize_egress(&scope, i) },
            RevokeSecurityGroupIngress => |i| { ready(i.dry_run)?; revoke_ingress(&scope, i) },
            RevokeSecurityGroupEgress => |i| { ready(i.dry_run)?; revoke_egress(&scope, i) },
            DescribeSecurityGroupRules => |i| {
                ready(i.dry_run)?;
                security_group::describe_rules(&scope, i)
            },
            DescribeAvailabilityZones => |i| {
                ready(i.dry_run)?;
                defaults::describe_availability_zones(&scope, i)
            },
            DescribeAccountAttributes => |i| {
                ready(i.dry_run)?;
                defaults::describe_account_attributes(&scope, i)
            },
        } else Err(ApiError::not_implemented("ec2", operation)))
    }
}

fn dry_run_answer() -> ApiError {
    ApiError::new(
        412,
        "DryRunOperation",
        "Request would have succeeded, but DryRun flag is set.",
    )
}

// Ingress and egress share their handlers; each answers in its own operation's type.

fn authorize_ingress(
    scope: &Scope,
    i: types::AuthorizeSecurityGroupIngressRequest,
) -> ApiResult<types::AuthorizeSecurityGroupIngressResult> {
    let rules = security_group::authorize(scope, i.into(), false)?;
    Ok(types::AuthorizeSecurityGroupIngressResult {
        r#return: Some(true),
        security_group_rules: Some(rules),
    })
}

fn authorize_egress(
    scope: &Scope,
    i: types::AuthorizeSecurityGroupEgressRequest,
) -> ApiResult<types::AuthorizeSecurityGroupEgressResult> {
    let rules = security_group::authorize(scope, i.into(), true)?;
    Ok(types::AuthorizeSecurityGroupEgressResult {
        r#return: Some(true),
        security_group_rules: Some(rules),
    })
}

fn revoke_ingress(
    scope: &Scope,
    i: types::RevokeSecurityGroupIngressRequest,
) -> ApiResult<types::RevokeSecurityGroupIngressResult> {
    let r = security_group::revoke(scope, i.into(), false)?;
    Ok(types::RevokeSecurityGroupIngressResult {
        r#return: Some(true),
        revoked_security_group_rules: Some(r.rules),
        unknown_ip_permissions: r.unknown,
    })
}

fn revoke_egress(
    scope: &Scope,
    i: types::RevokeSecurityGroupEgressRequest,
) -> ApiResult<types::RevokeSecurityGroupEgressResult> {
    let r = security_group::revoke(scope, i.into(), true)?;
    Ok(types::RevokeSecurityGroupEgressResult {
        r#return: Some(true),
        revoked_security_group_rules: Some(r.rules),
        unknown_ip_permissions: r.unknown,
    })
}

/// EC2's paging (MaxResults, NextToken) over items already sorted by `key`. Without
/// MaxResults everything comes back in one page, as EC2 does.
fn page<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    max_results: Option<i32>,
    next_token: Option<&str>,
) -> ApiResult<Page<T>> {
    let (max, after) = berth_wire::page::params(
        max_results.map(i64::from),
        next_token,
        usize::MAX,
        1000,
        "InvalidParameterValue",
    )?;
    Ok(berth_wire::page::page_after(items, key, max, after))
}

// ---- what ECS asks of the network model -----------------------------------------------------

/// A subnet as a task's network attachment needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetInfo {
    pub subnet_id: String,
    pub vpc_id: String,
    pub cidr_block: String,
    pub availability_zone: String,
    pub availability_zone_id: String,
}

fn ensured<'a>(store: &'a dyn Store, account: &'a str, region: &'a str) -> ApiResult<Scope<'a>> {
    let scope = Scope::new(store, account, region);
    defaults::ensure(&scope)?;
    Ok(scope)
}

/// Validate an awsvpcConfiguration's subnets and security groups the way ECS does: every
/// subnet and group must exist, the subnets must share one VPC, and the groups must belong
/// to it. Errors are ECS's InvalidParameterException carrying EC2's own error.
pub fn check_awsvpc(
    store: &dyn Store,
    account: &str,
    region: &str,
    subnets: &[String],
    security_groups: &[String],
) -> Result<(), ApiError> {
    let scope = ensured(store, account, region)?;
    let invalid = |m: String| ApiError::client("InvalidParameterException", m);
    if subnets.is_empty() {
        return Err(invalid("subnets can not be empty.".into()));
    }
    let wrap = |what: &str, ids: &[String], e: ApiError| {
        invalid(format!(
            "Error retrieving {what} information for [{}]: {} (ErrorCode: {})",
            ids.join(", "),
            e.message,
            e.code
        ))
    };
    let mut vpc: Option<(String, String)> = None; // (vpc id, the subnet that set it)
    for id in subnets {
        let rec = common::check_id(id, "subnet")
            .and_then(|_| {
                scope
                    .get(SUBNET, id)
                    .ok_or_else(|| common::subnet_not_found(id))
            })
            .map_err(|e| wrap("subnet", subnets, e))?;
        let this = str_of(&rec.value, "VpcId").to_string();
        match &vpc {
            None => vpc = Some((this, id.clone())),
            Some((v, first)) if *v != this => {
                return Err(invalid(format!("Subnets {first} and {id} belong to different VPCs ({v} and {this}); all subnets must be in the same VPC.")))
            }
            Some(_) => {}
        }
    }
    let (vpc_id, first_subnet) = vpc.expect("at least one subnet");
    for id in security_groups {
        let rec = common::check_id(id, "sg")
            .and_then(|_| {
                scope
                    .get(GROUP, id)
                    .ok_or_else(|| common::group_not_found(id))
            })
            .map_err(|e| wrap("security group", security_groups, e))?;
        if rec.value["VpcId"] != vpc_id.as_str() {
            return Err(invalid(format!(
                "Security group {id} and subnet {first_subnet} belong to different networks."
            )));
        }
    }
    Ok(())
}

/// The default VPC's default subnets (one per zone, in zone order); empty if the user
/// deleted them or the store failed.
pub fn default_subnets(store: &dyn Store, account: &str, region: &str) -> Vec<String> {
    let Ok(scope) = ensured(store, account, region) else {
        return vec![];
    };
    let mut subs: Vec<Value> = scope
        .list(SUBNET)
        .into_iter()
        .map(|r| (*r.value).clone())
        .filter(|s| s["DefaultForAz"] == true)
        .collect();
    subs.sort_by(|a, b| str_of(a, "AvailabilityZone").cmp(str_of(b, "AvailabilityZone")));
    subs.iter()
        .map(|s| str_of(s, "SubnetId").to_string())
        .collect()
}

/// The VPC a subnet belongs to, if the subnet exists.
pub fn vpc_of_subnet(
    store: &dyn Store,
    account: &str,
    region: &str,
    subnet_id: &str,
) -> Option<String> {
    subnet_info(store, account, region, subnet_id).map(|s| s.vpc_id)
}

pub fn subnet_info(
    store: &dyn Store,
    account: &str,
    region: &str,
    subnet_id: &str,
) -> Option<SubnetInfo> {
    let scope = ensured(store, account, region).ok()?;
    let v = scope.get(SUBNET, subnet_id)?.value;
    Some(SubnetInfo {
        subnet_id: subnet_id.to_string(),
        vpc_id: str_of(&v, "VpcId").to_string(),
        cidr_block: str_of(&v, "CidrBlock").to_string(),
        availability_zone: str_of(&v, "AvailabilityZone").to_string(),
        availability_zone_id: str_of(&v, "AvailabilityZoneId").to_string(),
    })
}

/// The `default` security group of a VPC: what a task gets when it names no groups.
pub fn default_security_group(
    store: &dyn Store,
    account: &str,
    region: &str,
    vpc_id: &str,
) -> Option<String> {
    let scope = ensured(store, account, region).ok()?;
    scope
        .list(GROUP)
        .into_iter()
        .find(|g| g.value["VpcId"] == vpc_id && g.value["GroupName"] == "default")
        .map(|g| str_of(&g.value, "GroupId").to_string())
}

/// The default VPC's id, unless the user deleted it.
pub fn default_vpc_id(store: &dyn Store, account: &str, region: &str) -> Option<String> {
    let scope = ensured(store, account, region).ok()?;
    defaults::default_vpc(&scope).map(|v| str_of(&v, "VpcId").to_string())
}

/// A VPC's primary CIDR block, if the VPC exists (ELBv2 checks ip targets against it).
pub fn vpc_cidr(store: &dyn Store, account: &str, region: &str, vpc_id: &str) -> Option<String> {
    let scope = ensured(store, account, region).ok()?;
    let v = scope.get(common::VPC, vpc_id)?.value;
    Some(str_of(&v, "CidrBlock").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::store;
    use serde_json::json;

    const A: &str = "000000000000";
    const R: &str = "us-east-1";

    fn ctx() -> RequestContext {
        RequestContext {
            account: A.into(),
            region: R.into(),
            request_id: "r".into(),
        }
    }

    #[test]
    fn unimplemented_operations_say_so() {
        let (_d, st) = store();
        let ec2 = Ec2::new(Arc::new(st), Clock::default());
        let e = ec2.call(&ctx(), "RunInstances", json!({})).unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (501, "NotImplemented"));
    }

    #[test]
    fn dry_run_answers_412() {
        let (_d, st) = store();
        let ec2 = Ec2::new(Arc::new(st), Clock::default());
        let e = ec2
            .call(
                &ctx(),
                "CreateVpc",
                json!({"DryRun": true, "CidrBlock": "10.0.0.0/16"}),
            )
            .unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (412, "DryRunOperation"));
    }

    #[test]
    fn account_attributes_name_the_default_vpc() {
        let (_d, st) = store();
        let ec2 = Ec2::new(Arc::new(st), Clock::default());
        let out = ec2
            .call(
                &ctx(),
                "DescribeAccountAttributes",
                json!({"AttributeNames": ["default-vpc"]}),
            )
            .unwrap();
        let vpcs = ec2.call(&ctx(), "DescribeVpcs", json!({})).unwrap();
        assert_eq!(
            out["AccountAttributes"][0]["AttributeValues"][0]["AttributeValue"],
            vpcs["Vpcs"][0]["VpcId"]
        );
        let all = ec2
            .call(&ctx(), "DescribeAccountAttributes", json!({}))
            .unwrap();
        assert_eq!(all["AccountAttributes"].as_array().unwrap().len(), 6);
    }

    #[test]
    fn check_awsvpc_reports_as_ecs() {
        let (_d, st) = store();
        let subs = default_subnets(&st, A, R);
        assert_eq!(subs.len(), 3);
        let vpc = vpc_of_subnet(&st, A, R, &subs[0]).unwrap();
        let sg = default_security_group(&st, A, R, &vpc).unwrap();
        assert_eq!(
            subnet_info(&st, A, R, &subs[1]).unwrap().availability_zone,
            "us-east-1b"
        );
        check_awsvpc(&st, A, R, &subs, std::slice::from_ref(&sg)).unwrap();
        check_awsvpc(&st, A, R, &subs[..1], &[]).unwrap();

        let e = check_awsvpc(&st, A, R, &["subnet-x".into()], &[]).unwrap_err();
        assert_eq!(e.code, "InvalidParameterException");
        assert_eq!(
            e.message,
            "Error retrieving subnet information for [subnet-x]: The subnet ID 'subnet-x' does not exist (ErrorCode: InvalidSubnetID.NotFound)"
        );
        let e = check_awsvpc(&st, A, R, &subs[..1], &["sg-x".into()]).unwrap_err();
        assert_eq!(
            e.message,
            "Error retrieving security group information for [sg-x]: The security group 'sg-x' does not exist (ErrorCode: InvalidGroup.NotFound)"
        );

        // A second VPC: its subnet cannot be mixed with the default ones, nor its groups.
        let s = Scope::new(&st, A, R);
        let other = vpc::create_doc(&s, &json!({"CidrBlock": "10.0.0.0/16"})).unwrap()["Vpc"]
            ["VpcId"]
            .as_str()
            .unwrap()
            .to_string();
        let sub = subnet::create_doc(&s, &json!({"VpcId": other, "CidrBlock": "10.0.0.0/24"}))
            .unwrap()["Subnet"]["SubnetId"]
            .as_str()
            .unwrap()
            .to_string();
        let e = check_awsvpc(&st, A, R, &[subs[0].clone(), sub.clone()], &[]).unwrap_err();
        assert_eq!(e.code, "InvalidParameterException");
        let e = check_awsvpc(
            &st,
            A,
            R,
            std::slice::from_ref(&sub),
            std::slice::from_ref(&sg),
        )
        .unwrap_err();
        assert!(
            e.message.contains("belong to different networks"),
            "{}",
            e.message
        );
        let other_sg = default_security_group(&st, A, R, &other).unwrap();
        check_awsvpc(&st, A, R, &[sub], &[other_sg]).unwrap();
    }
}
