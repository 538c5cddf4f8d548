//! Subnets: CreateSubnet, DeleteSubnet, DescribeSubnets. A subnet sits inside its VPC's
//! CIDR, in one availability zone, and never overlaps a sibling.

use crate::cidr::Cidr;
use crate::common::*;
use crate::defaults::{zones, Zone};
use crate::filters::{b, one, Filters};
use crate::tags;
use crate::types::*;
use berth_store::{Cond, Op};
use berth_wire::{ApiError, ApiResult};
use serde_json::{json, Value};

/// A new subnet record, shaped as the model's `Subnet`.
pub fn build(
    scope: &Scope,
    vpc_id: &str,
    cidr: Cidr,
    zone: &Zone,
    default_for_az: bool,
    tags: Vec<Value>,
) -> Value {
    let id = new_id("subnet");
    json!({
        "AvailabilityZone": zone.name,
        "AvailabilityZoneId": zone.id,
        "AvailableIpAddressCount": cidr.available_addresses(),
        "CidrBlock": cidr.to_string(),
        "DefaultForAz": default_for_az,
        // Default subnets hand out public addresses; subnets a user creates do not.
        "MapPublicIpOnLaunch": default_for_az,
        "MapCustomerOwnedIpOnLaunch": false,
        "State": "available",
        "SubnetId": id,
        "VpcId": vpc_id,
        "OwnerId": scope.account,
        "AssignIpv6AddressOnCreation": false,
        "Ipv6CidrBlockAssociationSet": [],
        "SubnetArn": scope.arn(&format!("subnet/{id}")),
        "EnableDns64": false,
        "Ipv6Native": false,
        "PrivateDnsNameOptionsOnLaunch": {
            "HostnameType": "ip-name",
            "EnableResourceNameDnsARecord": false,
            "EnableResourceNameDnsAAAARecord": false,
        },
        "BlockPublicAccessStates": {"InternetGatewayBlockMode": "off"},
        "Tags": tags,
    })
}

/// A subnet record (stored in the model's layout) as the API shows it.
fn subnet_of(v: &Value) -> Subnet {
    let s = |k: &str| v[k].as_str().map(str::to_string);
    let dns = &v["PrivateDnsNameOptionsOnLaunch"];
    Subnet {
        availability_zone: s("AvailabilityZone"),
        availability_zone_id: s("AvailabilityZoneId"),
        available_ip_address_count: v["AvailableIpAddressCount"].as_i64().map(|n| n as i32),
        cidr_block: s("CidrBlock"),
        default_for_az: v["DefaultForAz"].as_bool(),
        map_public_ip_on_launch: v["MapPublicIpOnLaunch"].as_bool(),
        map_customer_owned_ip_on_launch: v["MapCustomerOwnedIpOnLaunch"].as_bool(),
        state: v["State"].as_str().and_then(SubnetState::from_wire),
        subnet_id: s("SubnetId"),
        vpc_id: s("VpcId"),
        owner_id: s("OwnerId"),
        assign_ipv6_address_on_creation: v["AssignIpv6AddressOnCreation"].as_bool(),
        // Berth's subnets have no IPv6 blocks.
        ipv6_cidr_block_association_set: Some(vec![]),
        subnet_arn: s("SubnetArn"),
        enable_dns64: v["EnableDns64"].as_bool(),
        ipv6_native: v["Ipv6Native"].as_bool(),
        private_dns_name_options_on_launch: dns.is_object().then(|| {
            PrivateDnsNameOptionsOnLaunch {
                hostname_type: dns["HostnameType"]
                    .as_str()
                    .and_then(HostnameType::from_wire),
                enable_resource_name_dns_a_record: dns["EnableResourceNameDnsARecord"].as_bool(),
                enable_resource_name_dns_aaaa_record: dns["EnableResourceNameDnsAAAARecord"]
                    .as_bool(),
            }
        }),
        block_public_access_states: Some(BlockPublicAccessStates {
            internet_gateway_block_mode: v["BlockPublicAccessStates"]["InternetGatewayBlockMode"]
                .as_str()
                .and_then(BlockPublicAccessMode::from_wire),
        }),
        tags: tags::typed(tags::tags_of(v)),
        ..Default::default()
    }
}

pub fn create(scope: &Scope, input: CreateSubnetRequest) -> ApiResult<CreateSubnetResult> {
    // Each named option Berth does not provide is refused, never dropped.
    let unsupported_given = [
        ("Ipv6CidrBlock", input.ipv6_cidr_block.is_some()),
        ("Ipv6IpamPoolId", input.ipv6_ipam_pool_id.is_some()),
        ("Ipv6NetmaskLength", input.ipv6_netmask_length.is_some()),
        ("Ipv4IpamPoolId", input.ipv4_ipam_pool_id.is_some()),
        ("Ipv4NetmaskLength", input.ipv4_netmask_length.is_some()),
        ("OutpostArn", input.outpost_arn.is_some()),
        ("Ipv6Native", input.ipv6_native == Some(true)),
    ];
    if let Some((p, _)) = unsupported_given.iter().find(|(_, given)| *given) {
        return Err(unsupported("CreateSubnet", p));
    }
    let vpc_id = input.vpc_id.as_str();
    check_id(vpc_id, "vpc")?;
    let raw = input.cidr_block.as_deref().unwrap_or_default();
    if raw.is_empty() {
        return Err(missing("cidrBlock"));
    }
    let cidr = crate::vpc::parse_cidr(raw)?;
    let all = zones(scope.region);
    let zone_name = input.availability_zone.as_deref();
    let zone_id = input.availability_zone_id.as_deref();
    let wanted = match (zone_name, zone_id) {
        (Some(n), None) => Some(
            all.iter()
                .find(|z| z.name == n)
                .ok_or_else(|| bad_zone(n, "availabilityZone", &all))?,
        ),
        (None, Some(i)) => Some(
            all.iter()
                .find(|z| z.id == i)
                .ok_or_else(|| bad_zone(i, "availabilityZoneId", &all))?,
        ),
        (Some(_), Some(_)) => return Err(ApiError::client(
            "InvalidParameterCombination",
            "The parameter availabilityZone cannot be used with the parameter availabilityZoneId",
        )),
        (None, None) => None,
    };
    let tags = tags::from_specs(input.tag_specifications.as_deref(), ResourceType::Subnet)?;
    commit(scope.store, || {
        let vpc = scope
            .get(VPC, vpc_id)
            .ok_or_else(|| vpc_not_found(vpc_id))?;
        let vpc_cidr =
            Cidr::parse(str_of(&vpc.value, "CidrBlock")).expect("stored CIDRs are valid");
        if !(16..=28).contains(&cidr.len) || !vpc_cidr.contains(&cidr) {
            return Err(ApiError::client(
                "InvalidSubnet.Range",
                format!("The CIDR '{raw}' is invalid."),
            ));
        }
        let siblings: Vec<Value> = scope
            .list(SUBNET)
            .into_iter()
            .map(|r| (*r.value).clone())
            .filter(|s| s["VpcId"] == vpc_id)
            .collect();
        if siblings
            .iter()
            .any(|s| Cidr::parse(str_of(s, "CidrBlock")).is_some_and(|c| c.overlaps(&cidr)))
        {
            return Err(ApiError::client(
                "InvalidSubnet.Conflict",
                format!("The CIDR '{raw}' conflicts with another subnet"),
            ));
        }
        // Without a zone, spread: take the zone with the fewest subnets of this VPC.
        let zone = wanted.unwrap_or_else(|| {
            all.iter()
                .min_by_key(|z| {
                    siblings
                        .iter()
                        .filter(|s| s["AvailabilityZone"] == z.name.as_str())
                        .count()
                })
                .expect("three zones")
        });
        let subnet = build(scope, vpc_id, cidr, zone, false, tags.clone());
        let key = scope.key(SUBNET, str_of(&subnet, "SubnetId"));
        let mut conds = vec![Cond::Absent(key.clone())];
        let mut ops = vec![Op::Put(key, subnet.clone())];
        // Rewriting the VPC serialises this against DeleteVpc and against sibling creates.
        touch(&vpc, &mut conds, &mut ops, (*vpc.value).clone());
        Ok(Plan {
            conds,
            ops,
            result: CreateSubnetResult {
                subnet: Some(subnet_of(&subnet)),
            },
        })
    })
}

fn bad_zone(value: &str, param: &str, all: &[Zone]) -> ApiError {
    let names: Vec<&str> = all.iter().map(|z| z.name.as_str()).collect();
    invalid_value(format!(
        "Value ({value}) for parameter {param} is invalid. Subnets can currently only be created in the following availability zones: {}.",
        names.join(", ")
    ))
}

pub fn delete(scope: &Scope, input: DeleteSubnetRequest) -> ApiResult<()> {
    let id = input.subnet_id.as_str();
    check_id(id, "subnet")?;
    commit(scope.store, || {
        let rec = scope.get(SUBNET, id).ok_or_else(|| subnet_not_found(id))?;
        Ok(Plan {
            conds: vec![Cond::Revision(rec.key.clone(), rec.revision)],
            ops: vec![Op::Delete(rec.key.clone())],
            result: (),
        })
    })
}

pub fn describe(scope: &Scope, input: DescribeSubnetsRequest) -> ApiResult<DescribeSubnetsResult> {
    let filters = Filters::parse(
        input.filters.as_deref(),
        &[
            "availability-zone",
            "availabilityZone",
            "availability-zone-id",
            "availabilityZoneId",
            "available-ip-address-count",
            "cidr",
            "cidr-block",
            "cidrBlock",
            "default-for-az",
            "defaultForAz",
            "map-public-ip-on-launch",
            "owner-id",
            "state",
            "subnet-arn",
            "subnet-id",
            "vpc-id",
        ],
    )?;
    let ids = input.subnet_ids.unwrap_or_default();
    for id in &ids {
        check_id(id, "subnet")?;
        if scope.get(SUBNET, id).is_none() {
            return Err(subnet_not_found(id));
        }
    }
    // Addresses tasks hold (berth-net's leases) are not available.
    let mut leased: std::collections::HashMap<String, i64> = Default::default();
    for l in scope.store.list(berth_leases::ipam::LEASES) {
        if let Some(id) = l.value["subnetId"].as_str() {
            *leased.entry(id.to_string()).or_default() += 1;
        }
    }
    let mut out = Vec::new();
    for r in scope.list(SUBNET) {
        let mut v = (*r.value).clone();
        if !ids.is_empty() && !ids.iter().any(|i| v["SubnetId"] == i.as_str()) {
            continue;
        }
        if let Some(n) = leased.get(str_of(&v, "SubnetId")) {
            let free = v["AvailableIpAddressCount"].as_i64().unwrap_or(0) - n;
            v["AvailableIpAddressCount"] = json!(free.max(0));
        }
        let v = &v;
        let field = |name: &str| match name {
            "availability-zone" | "availabilityZone" => one(str_of(v, "AvailabilityZone")),
            "availability-zone-id" | "availabilityZoneId" => one(str_of(v, "AvailabilityZoneId")),
            "available-ip-address-count" => vec![v["AvailableIpAddressCount"].to_string()],
            "cidr" | "cidr-block" | "cidrBlock" => one(str_of(v, "CidrBlock")),
            "default-for-az" | "defaultForAz" => b(v["DefaultForAz"] == true),
            "map-public-ip-on-launch" => b(v["MapPublicIpOnLaunch"] == true),
            "owner-id" => one(str_of(v, "OwnerId")),
            "state" => one(str_of(v, "State")),
            "subnet-arn" => one(str_of(v, "SubnetArn")),
            "subnet-id" => one(str_of(v, "SubnetId")),
            "vpc-id" => one(str_of(v, "VpcId")),
            _ => vec![],
        };
        if filters.matches(tags::tags_of(v), field) {
            out.push(subnet_of(v));
        }
    }
    let page = crate::page(
        out,
        |v| v.subnet_id.clone().unwrap_or_default(),
        input.max_results,
        input.next_token.as_deref(),
    )?;
    Ok(DescribeSubnetsResult {
        subnets: Some(page.items),
        next_token: page.next_token,
    })
}

/// CreateSubnet and DeleteSubnet on a document, for other modules' tests.
#[cfg(test)]
pub(crate) fn create_doc(scope: &Scope, input: &Value) -> ApiResult<Value> {
    crate::common::test_support::doc::<op::CreateSubnet>(input, |i| create(scope, i))
}
#[cfg(test)]
pub(crate) fn delete_doc(scope: &Scope, input: &Value) -> ApiResult<Value> {
    crate::common::test_support::doc::<op::DeleteSubnet>(input, |i| delete(scope, i))
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
        doc::<op::DescribeSubnets>(input, |i| super::describe(s, i))
    }

    #[test]
    fn default_subnets_look_like_aws() {
        let (_d, st) = store();
        let s = Scope::new(&st, "000000000000", "us-east-1");
        crate::defaults::ensure(&s).unwrap();
        let d = describe(
            &s,
            &json!({"Filters": [{"Name": "default-for-az", "Values": ["true"]}]}),
        )
        .unwrap();
        let subs = d["Subnets"].as_array().unwrap();
        assert_eq!(subs.len(), 3);
        let mut zones: Vec<&str> = subs
            .iter()
            .map(|s| s["AvailabilityZone"].as_str().unwrap())
            .collect();
        zones.sort();
        assert_eq!(zones, ["us-east-1a", "us-east-1b", "us-east-1c"]);
        assert!(subs
            .iter()
            .all(|s| s["AvailableIpAddressCount"] == 4091 && s["MapPublicIpOnLaunch"] == true));
        let a = describe(
            &s,
            &json!({"Filters": [{"Name": "availability-zone", "Values": ["us-east-1b"]}]}),
        )
        .unwrap();
        assert_eq!(a["Subnets"][0]["CidrBlock"], "172.31.16.0/20");
    }

    #[test]
    fn create_checks_range_conflict_and_zone() {
        let (_d, st) = store();
        let s = Scope::new(&st, "000000000000", "us-east-1");
        crate::defaults::ensure(&s).unwrap();
        let vpc = crate::vpc::create_doc(&s, &json!({"CidrBlock": "10.0.0.0/16"})).unwrap();
        let vpc_id = vpc["Vpc"]["VpcId"].as_str().unwrap();
        let mk = |cidr: &str| create(&s, &json!({"VpcId": vpc_id, "CidrBlock": cidr}));
        let first = mk("10.0.0.0/24").unwrap();
        assert_eq!(first["Subnet"]["AvailableIpAddressCount"], 251);
        assert_eq!(first["Subnet"]["MapPublicIpOnLaunch"], false);
        let e = mk("10.0.0.128/25").unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            (
                "InvalidSubnet.Conflict",
                "The CIDR '10.0.0.128/25' conflicts with another subnet"
            )
        );
        let e = mk("10.1.0.0/24").unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("InvalidSubnet.Range", "The CIDR '10.1.0.0/24' is invalid.")
        );
        assert_eq!(mk("10.0.0.0/29").unwrap_err().code, "InvalidSubnet.Range");
        assert_eq!(mk("bogus").unwrap_err().code, "InvalidParameterValue");
        let second = mk("10.0.1.0/24").unwrap();
        assert_ne!(
            second["Subnet"]["AvailabilityZone"],
            first["Subnet"]["AvailabilityZone"]
        );
        let e = create(
            &s,
            &json!({"VpcId": vpc_id, "CidrBlock": "10.0.9.0/24", "AvailabilityZone": "us-east-1z"}),
        )
        .unwrap_err();
        assert!(
            e.message.contains("us-east-1a, us-east-1b, us-east-1c"),
            "{}",
            e.message
        );
        let e = create(
            &s,
            &json!({"VpcId": "vpc-0123456789abcdef0", "CidrBlock": "10.0.9.0/24"}),
        )
        .unwrap_err();
        assert_eq!(e.code, "InvalidVpcID.NotFound");
        let z = create(
            &s,
            &json!({"VpcId": vpc_id, "CidrBlock": "10.0.9.0/24", "AvailabilityZoneId": "use1-az3"}),
        )
        .unwrap();
        assert_eq!(z["Subnet"]["AvailabilityZone"], "us-east-1c");
    }

    #[test]
    fn concurrent_overlapping_creates_admit_one() {
        let (_d, st) = store();
        let st = std::sync::Arc::new(st);
        let s = Scope::new(st.as_ref(), "000000000000", "us-east-1");
        crate::defaults::ensure(&s).unwrap();
        let vpc = crate::vpc::create_doc(&s, &json!({"CidrBlock": "10.0.0.0/16"})).unwrap()["Vpc"]
            ["VpcId"]
            .as_str()
            .unwrap()
            .to_string();
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (st, vpc) = (st.clone(), vpc.clone());
                // Every request overlaps every other: 10.0.0.0/24 and /25s and /26s inside it.
                let cidr = [
                    "10.0.0.0/24",
                    "10.0.0.0/25",
                    "10.0.0.128/25",
                    "10.0.0.64/26",
                ][i % 4];
                std::thread::spawn(move || {
                    create(
                        &Scope::new(st.as_ref(), "000000000000", "us-east-1"),
                        &json!({"VpcId": vpc, "CidrBlock": cidr}),
                    )
                    .is_ok()
                })
            })
            .collect();
        let ok = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|ok| *ok)
            .count();
        let subnets = describe(
            &s,
            &json!({"Filters": [{"Name": "vpc-id", "Values": [vpc]}]}),
        )
        .unwrap();
        let n = subnets["Subnets"].as_array().unwrap().len();
        assert_eq!(ok, n);
        // Either the /24 alone, or non-overlapping pieces of it: never an overlap.
        let cidrs: Vec<Cidr> = subnets["Subnets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| Cidr::parse(s["CidrBlock"].as_str().unwrap()).unwrap())
            .collect();
        for (i, a) in cidrs.iter().enumerate() {
            for b in &cidrs[i + 1..] {
                assert!(!a.overlaps(b), "{a} overlaps {b}");
            }
        }
    }

    #[test]
    fn delete_and_describe_unknown() {
        let (_d, st) = store();
        let s = Scope::new(&st, "000000000000", "us-east-1");
        crate::defaults::ensure(&s).unwrap();
        let e = delete(&s, &json!({"SubnetId": "subnet-x"})).unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            (
                "InvalidSubnetID.NotFound",
                "The subnet ID 'subnet-x' does not exist"
            )
        );
        assert_eq!(
            describe(&s, &json!({"SubnetIds": ["subnet-x"]}))
                .unwrap_err()
                .code,
            "InvalidSubnetID.NotFound"
        );
        assert_eq!(
            describe(&s, &json!({"SubnetIds": ["x"]})).unwrap_err().code,
            "InvalidSubnetID.Malformed"
        );
    }

    #[test]
    fn leased_addresses_are_not_available() {
        let (_d, st) = store();
        let s = Scope::new(&st, "000000000000", "us-east-1");
        crate::defaults::ensure(&s).unwrap();
        let all = describe(&s, &json!({})).unwrap();
        let first = all["Subnets"][0].clone();
        let id = first["SubnetId"].as_str().unwrap().to_string();
        let cidr = berth_net::Cidr::parse(first["CidrBlock"].as_str().unwrap()).unwrap();
        let c = berth_leases::ipam::Candidate {
            subnet_id: id.clone(),
            cidr,
        };
        for owner in ["t1", "t2"] {
            berth_leases::ipam::allocate(&st, std::slice::from_ref(&c), 0, owner).unwrap();
        }
        let one = describe(&s, &json!({"SubnetIds": [id]})).unwrap();
        assert_eq!(one["Subnets"][0]["AvailableIpAddressCount"], 4089);
    }
}
