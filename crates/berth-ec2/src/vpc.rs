//! VPCs: CreateVpc, DeleteVpc, DescribeVpcs. Each VPC gets its own default security group,
//! as in AWS. A VPC's record doubles as the lock for its contents: creating a subnet or a
//! group rewrites it conditionally, so a concurrent DeleteVpc cannot miss a new dependency.

use crate::cidr::Cidr;
use crate::common::*;
use crate::filters::{b, one, Filters};
use crate::tags;
use crate::types::*;
use berth_store::{Cond, Op};
use berth_wire::{ApiError, ApiResult};
use serde_json::{json, Value};

/// A new VPC record, shaped as the model's `Vpc`.
pub fn build(scope: &Scope, cidr: Cidr, is_default: bool, tags: Vec<Value>) -> Value {
    json!({
        "VpcId": new_id("vpc"),
        "CidrBlock": cidr.to_string(),
        "DhcpOptionsId": new_id("dopt"),
        "State": "available",
        "OwnerId": scope.account,
        "InstanceTenancy": "default",
        "CidrBlockAssociationSet": [{
            "AssociationId": new_id("vpc-cidr-assoc"),
            "CidrBlock": cidr.to_string(),
            "CidrBlockState": {"State": "associated"},
        }],
        "IsDefault": is_default,
        "BlockPublicAccessStates": {"InternetGatewayBlockMode": "off"},
        "Tags": tags,
    })
}

/// A VPC record (stored in the model's layout) as the API shows it.
fn vpc_of(v: &Value) -> Vpc {
    let s = |k: &str| v[k].as_str().map(str::to_string);
    Vpc {
        vpc_id: s("VpcId"),
        cidr_block: s("CidrBlock"),
        dhcp_options_id: s("DhcpOptionsId"),
        state: v["State"].as_str().and_then(VpcState::from_wire),
        owner_id: s("OwnerId"),
        instance_tenancy: v["InstanceTenancy"].as_str().and_then(Tenancy::from_wire),
        cidr_block_association_set: v["CidrBlockAssociationSet"].as_array().map(|a| {
            a.iter()
                .map(|c| VpcCidrBlockAssociation {
                    association_id: c["AssociationId"].as_str().map(str::to_string),
                    cidr_block: c["CidrBlock"].as_str().map(str::to_string),
                    cidr_block_state: Some(VpcCidrBlockState {
                        state: c["CidrBlockState"]["State"]
                            .as_str()
                            .and_then(VpcCidrBlockStateCode::from_wire),
                        status_message: None,
                    }),
                })
                .collect()
        }),
        is_default: v["IsDefault"].as_bool(),
        block_public_access_states: Some(BlockPublicAccessStates {
            internet_gateway_block_mode: v["BlockPublicAccessStates"]["InternetGatewayBlockMode"]
                .as_str()
                .and_then(BlockPublicAccessMode::from_wire),
        }),
        tags: tags::typed(tags::tags_of(v)),
        ..Default::default()
    }
}

/// The CIDR a create request asks for, checked as EC2 checks it.
pub fn parse_cidr(raw: &str) -> ApiResult<Cidr> {
    Cidr::parse(raw).filter(Cidr::is_network).ok_or_else(|| {
        invalid_value(format!(
            "Value ({raw}) for parameter cidrBlock is invalid. This is not a valid CIDR block."
        ))
    })
}

pub fn create(scope: &Scope, input: CreateVpcRequest) -> ApiResult<CreateVpcResult> {
    // Each named option Berth does not provide is refused, never dropped (a `false`
    // AmazonProvidedIpv6CidrBlock asks for nothing). The border group only qualifies an
    // IPv6 block, itself refused.
    let _ = input.ipv6_cidr_block_network_border_group;
    let unsupported_given = [
        (
            "AmazonProvidedIpv6CidrBlock",
            input.amazon_provided_ipv6_cidr_block == Some(true),
        ),
        ("Ipv6Pool", input.ipv6_pool.is_some()),
        ("Ipv6CidrBlock", input.ipv6_cidr_block.is_some()),
        ("Ipv6IpamPoolId", input.ipv6_ipam_pool_id.is_some()),
        ("Ipv6NetmaskLength", input.ipv6_netmask_length.is_some()),
        ("Ipv4IpamPoolId", input.ipv4_ipam_pool_id.is_some()),
        ("Ipv4NetmaskLength", input.ipv4_netmask_length.is_some()),
        (
            "VpcEncryptionControl",
            input.vpc_encryption_control.is_some(),
        ),
    ];
    if let Some((p, _)) = unsupported_given.iter().find(|(_, given)| *given) {
        return Err(unsupported("CreateVpc", p));
    }
    let raw = input.cidr_block.as_deref().unwrap_or_default();
    if raw.is_empty() {
        return Err(ApiError::client(
            "MissingParameter",
            "Either 'cidrBlock' or 'ipv4IpamPoolId' should be provided.",
        ));
    }
    let cidr = parse_cidr(raw)?;
    if !(16..=28).contains(&cidr.len) {
        return Err(ApiError::client(
            "InvalidVpc.Range",
            format!("The CIDR '{raw}' is invalid."),
        ));
    }
    let tenancy = input.instance_tenancy.unwrap_or(Tenancy::Default);
    if tenancy == Tenancy::Host {
        return Err(invalid_value("The tenancy value host is not supported."));
    }
    let tags = tags::from_specs(input.tag_specifications.as_deref(), ResourceType::Vpc)?;
    let mut vpc = build(scope, cidr, false, tags);
    vpc["InstanceTenancy"] = json!(tenancy.as_str());
    let id = str_of(&vpc, "VpcId").to_string();
    let group = crate::security_group::build_default(scope, &id);
    let (vpc_key, group_key) = (
        scope.key(VPC, &id),
        scope.key(GROUP, str_of(&group, "GroupId")),
    );
    scope
        .store
        .txn(
            &[
                Cond::Absent(vpc_key.clone()),
                Cond::Absent(group_key.clone()),
            ],
            vec![Op::Put(vpc_key, vpc.clone()), Op::Put(group_key, group)],
        )
        .map_err(store_err)?;
    // AWS answers CreateVpc while the VPC is still pending; it is available right after.
    let shown = Vpc {
        state: Some(VpcState::Pending),
        ..vpc_of(&vpc)
    };
    Ok(CreateVpcResult { vpc: Some(shown) })
}

pub fn delete(scope: &Scope, input: DeleteVpcRequest) -> ApiResult<()> {
    let id = input.vpc_id.as_str();
    check_id(id, "vpc")?;
    commit(scope.store, || {
        let rec = scope.get(VPC, id).ok_or_else(|| vpc_not_found(id))?;
        let in_vpc = |v: &Value| v["VpcId"] == id;
        let subnets = scope.list(SUBNET).into_iter().any(|r| in_vpc(&r.value));
        let groups: Vec<_> = scope
            .list(GROUP)
            .into_iter()
            .filter(|r| in_vpc(&r.value))
            .collect();
        if subnets || groups.iter().any(|g| g.value["GroupName"] != "default") {
            return Err(ApiError::client(
                "DependencyViolation",
                format!("The vpc '{id}' has dependencies and cannot be deleted."),
            ));
        }
        // The default group goes with its VPC.
        let mut conds = vec![Cond::Revision(rec.key.clone(), rec.revision)];
        let mut ops = vec![Op::Delete(rec.key.clone())];
        for g in groups {
            conds.push(Cond::Revision(g.key.clone(), g.revision));
            ops.push(Op::Delete(g.key.clone()));
        }
        Ok(Plan {
            conds,
            ops,
            result: (),
        })
    })
}

pub fn describe(scope: &Scope, input: DescribeVpcsRequest) -> ApiResult<DescribeVpcsResult> {
    let filters = Filters::parse(
        input.filters.as_deref(),
        &[
            "cidr",
            "cidr-block",
            "cidr-block-association.cidr-block",
            "cidr-block-association.association-id",
            "cidr-block-association.state",
            "dhcp-options-id",
            "is-default",
            "isDefault",
            "owner-id",
            "state",
            "vpc-id",
        ],
    )?;
    let ids = input.vpc_ids.unwrap_or_default();
    for id in &ids {
        check_id(id, "vpc")?;
        if scope.get(VPC, id).is_none() {
            return Err(vpc_not_found(id));
        }
    }
    let mut out = Vec::new();
    for r in scope.list(VPC) {
        let v = &r.value;
        if !ids.is_empty() && !ids.iter().any(|i| v["VpcId"] == i.as_str()) {
            continue;
        }
        let field = |name: &str| match name {
            "cidr" | "cidr-block" | "cidr-block-association.cidr-block" => {
                one(str_of(v, "CidrBlock"))
            }
            "cidr-block-association.association-id" => {
                one(str_of(&v["CidrBlockAssociationSet"][0], "AssociationId"))
            }
            "cidr-block-association.state" => one("associated"),
            "dhcp-options-id" => one(str_of(v, "DhcpOptionsId")),
            "is-default" | "isDefault" => b(v["IsDefault"] == true),
            "owner-id" => one(str_of(v, "OwnerId")),
            "state" => one(str_of(v, "State")),
            "vpc-id" => one(str_of(v, "VpcId")),
            _ => vec![],
        };
        if filters.matches(tags::tags_of(v), field) {
            out.push(vpc_of(v));
        }
    }
    let page = crate::page(
        out,
        |v| v.vpc_id.clone().unwrap_or_default(),
        input.max_results,
        input.next_token.as_deref(),
    )?;
    Ok(DescribeVpcsResult {
        vpcs: Some(page.items),
        next_token: page.next_token,
    })
}

/// CreateVpc on a document, for other modules' tests.
#[cfg(test)]
pub(crate) fn create_doc(scope: &Scope, input: &Value) -> ApiResult<Value> {
    crate::common::test_support::doc::<op::CreateVpc>(input, |i| create(scope, i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::{doc, store};

    fn create(s: &Scope, input: &Value) -> ApiResult<Value> {
        create_doc(s, input)
    }
    fn describe(s: &Scope, input: &Value) -> ApiResult<Value> {
        doc::<op::DescribeVpcs>(input, |i| super::describe(s, i))
    }
    fn delete(s: &Scope, input: &Value) -> ApiResult<Value> {
        doc::<op::DeleteVpc>(input, |i| super::delete(s, i))
    }

    fn scope(store: &dyn berth_store::Store) -> Scope<'_> {
        let s = Scope::new(store, "000000000000", "us-east-1");
        crate::defaults::ensure(&s).unwrap();
        s
    }

    #[test]
    fn create_validates_the_cidr() {
        let (_d, st) = store();
        let s = scope(&st);
        assert_eq!(
            create(&s, &json!({"CidrBlock": "10.0.0.0/8"}))
                .unwrap_err()
                .code,
            "InvalidVpc.Range"
        );
        assert_eq!(
            create(&s, &json!({"CidrBlock": "10.0.0.0/29"}))
                .unwrap_err()
                .code,
            "InvalidVpc.Range"
        );
        assert_eq!(
            create(&s, &json!({"CidrBlock": "10.0.0.300/16"}))
                .unwrap_err()
                .code,
            "InvalidParameterValue"
        );
        assert_eq!(
            create(&s, &json!({"CidrBlock": "10.0.0.1/16"}))
                .unwrap_err()
                .code,
            "InvalidParameterValue"
        );
        assert_eq!(create(&s, &json!({})).unwrap_err().code, "MissingParameter");
        let v = create(&s, &json!({"CidrBlock": "10.0.0.0/16"})).unwrap();
        assert_eq!(v["Vpc"]["State"], "pending");
        assert_eq!(v["Vpc"]["IsDefault"], false);
    }

    #[test]
    fn describe_filters_and_unknown_ids() {
        let (_d, st) = store();
        let s = scope(&st);
        let tagged = json!({"CidrBlock": "10.1.0.0/16", "TagSpecifications": [{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "mine"}]}]});
        let id = create(&s, &tagged).unwrap()["Vpc"]["VpcId"]
            .as_str()
            .unwrap()
            .to_string();
        let all = describe(&s, &json!({})).unwrap();
        assert_eq!(all["Vpcs"].as_array().unwrap().len(), 2);
        let d = describe(
            &s,
            &json!({"Filters": [{"Name": "is-default", "Values": ["true"]}]}),
        )
        .unwrap();
        assert_eq!(d["Vpcs"][0]["CidrBlock"], "172.31.0.0/16");
        assert!(d["Vpcs"][0].get("Tags").is_none());
        let t = describe(
            &s,
            &json!({"Filters": [{"Name": "tag:Name", "Values": ["mine"]}]}),
        )
        .unwrap();
        assert_eq!(t["Vpcs"][0]["VpcId"], id.as_str());
        assert_eq!(t["Vpcs"][0]["State"], "available");
        let e = describe(&s, &json!({"VpcIds": ["vpc-0000000000000dead"]})).unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            (
                "InvalidVpcID.NotFound",
                "The vpc ID 'vpc-0000000000000dead' does not exist"
            )
        );
        assert_eq!(
            describe(&s, &json!({"VpcIds": ["nope"]})).unwrap_err().code,
            "InvalidVpcID.Malformed"
        );
    }

    #[test]
    fn delete_refuses_while_dependencies_remain() {
        let (_d, st) = store();
        let s = scope(&st);
        let id = create(&s, &json!({"CidrBlock": "10.0.0.0/16"})).unwrap()["Vpc"]["VpcId"]
            .as_str()
            .unwrap()
            .to_string();
        let sub = crate::subnet::create_doc(&s, &json!({"VpcId": id, "CidrBlock": "10.0.1.0/24"}))
            .unwrap();
        let e = delete(&s, &json!({"VpcId": id})).unwrap_err();
        assert_eq!(e.code, "DependencyViolation");
        assert_eq!(
            e.message,
            format!("The vpc '{id}' has dependencies and cannot be deleted.")
        );
        crate::subnet::delete_doc(&s, &json!({"SubnetId": sub["Subnet"]["SubnetId"]})).unwrap();
        let g = crate::security_group::create_doc(
            &s,
            &json!({"VpcId": id, "GroupName": "web", "Description": "w"}),
        )
        .unwrap();
        assert_eq!(
            delete(&s, &json!({"VpcId": id})).unwrap_err().code,
            "DependencyViolation"
        );
        crate::security_group::delete_doc(&s, &json!({"GroupId": g["GroupId"]})).unwrap();
        delete(&s, &json!({"VpcId": id})).unwrap();
        // Its default group went with it.
        assert!(s
            .list(GROUP)
            .iter()
            .all(|g| g.value["VpcId"] != id.as_str()));
        assert_eq!(
            delete(&s, &json!({"VpcId": id})).unwrap_err().code,
            "InvalidVpcID.NotFound"
        );
    }
}
