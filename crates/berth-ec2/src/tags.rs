//! Tags on VPCs, subnets, security groups and security-group rules: TagSpecifications at
//! creation, CreateTags, DeleteTags and DescribeTags. Tags live inside each resource's
//! record (rules' tags inside their group's), so a tag change is one conditional write.

use crate::common::*;
use crate::filters::Filters;
use crate::types::*;
use berth_store::{Cond, Op, Record};
use berth_wire::{ApiError, ApiResult};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const MAX_TAGS: usize = 50;

fn check_tag(t: &Value) -> ApiResult<()> {
    let key = str_of(t, "Key");
    if key.is_empty() {
        return Err(invalid_value("Tag key cannot be empty"));
    }
    if key.chars().count() > 128 {
        return Err(invalid_value(format!(
            "Tag key exceeds the maximum length of 128 characters: {key}"
        )));
    }
    if str_of(t, "Value").chars().count() > 256 {
        return Err(invalid_value(format!(
            "Tag value exceeds the maximum length of 256 characters for key {key}"
        )));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(invalid_value(
            "Tag keys starting with 'aws:' are reserved for internal use",
        ));
    }
    Ok(())
}

/// A tag as stored: always a Key and a Value (an absent value is the empty string).
fn normalize(t: &Value) -> Value {
    json!({"Key": str_of(t, "Key"), "Value": str_of(t, "Value")})
}

/// Set each tag in `new` on `tags`, replacing the value of a key already present.
pub fn merge(tags: &mut Vec<Value>, new: &[Value]) -> ApiResult<()> {
    for t in new {
        check_tag(t)?;
        let t = normalize(t);
        match tags.iter_mut().find(|x| x["Key"] == t["Key"]) {
            Some(x) => *x = t,
            None => tags.push(t),
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(ApiError::client(
            "TagLimitExceeded",
            "The maximum number of tags for a resource has been reached.",
        ));
    }
    Ok(())
}

/// The tags a create request asks for through TagSpecifications of `resource_type`.
pub fn from_specs(
    specs: Option<&[TagSpecification]>,
    resource_type: ResourceType,
) -> ApiResult<Vec<Value>> {
    let mut tags = Vec::new();
    for spec in specs.unwrap_or_default() {
        if spec.resource_type != Some(resource_type) {
            let rt = spec.resource_type.map_or("", ResourceType::as_str);
            return Err(invalid_value(format!(
                "'{rt}' is not a valid taggable resource type for this operation."
            )));
        }
        let new: Vec<Value> = spec.tags.iter().flatten().map(tag_value).collect();
        merge(&mut tags, &new)?;
    }
    Ok(tags)
}

/// A request's tag as the document holds it (what `merge` checks and stores).
pub fn tag_value(t: &Tag) -> Value {
    let mut v = json!({});
    if let Some(k) = &t.key {
        v["Key"] = json!(k);
    }
    if let Some(val) = &t.value {
        v["Value"] = json!(val);
    }
    v
}

/// A stored tag list as the API shows it: None when empty, as EC2 omits an empty tagSet.
pub fn typed(tags: &[Value]) -> Option<Vec<Tag>> {
    let out: Vec<Tag> = tags
        .iter()
        .map(|t| Tag {
            key: t["Key"].as_str().map(str::to_string),
            value: t["Value"].as_str().map(str::to_string),
        })
        .collect();
    (!out.is_empty()).then_some(out)
}

pub fn tags_of(v: &Value) -> &[Value] {
    v.get("Tags")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Where a taggable resource lives: its record, and for a rule its index in the group.
struct Located {
    record: Record,
    rule: Option<usize>,
}

fn locate(scope: &Scope, id: &str) -> ApiResult<Located> {
    let found = |kind: &str| {
        scope
            .get(kind, id)
            .map(|record| Located { record, rule: None })
    };
    let res = if id.starts_with("vpc-") {
        found(VPC).ok_or_else(|| vpc_not_found(id))
    } else if id.starts_with("subnet-") {
        found(SUBNET).ok_or_else(|| subnet_not_found(id))
    } else if id.starts_with("sgr-") {
        scope
            .list(GROUP)
            .into_iter()
            .find_map(|record| {
                let i = record.value["Rules"]
                    .as_array()?
                    .iter()
                    .position(|r| r["SecurityGroupRuleId"] == id)?;
                Some(Located {
                    record,
                    rule: Some(i),
                })
            })
            .ok_or_else(|| rule_not_found(id))
    } else if id.starts_with("sg-") {
        found(GROUP).ok_or_else(|| group_not_found(id))
    } else {
        Err(ApiError::client(
            "InvalidID",
            format!("The ID '{id}' is not valid"),
        ))
    };
    res
}

pub fn rule_not_found(id: &str) -> ApiError {
    ApiError::client(
        "InvalidSecurityGroupRuleId.NotFound",
        format!("The security group rule ID '{id}' does not exist"),
    )
}

/// Apply `edit` to the tag list of every resource in `ids`, atomically.
fn edit_tags(
    scope: &Scope,
    ids: &[String],
    edit: impl Fn(&mut Vec<Value>) -> ApiResult<()>,
) -> ApiResult<()> {
    commit(scope.store, || {
        // Several ids may share a record (rules of one group): edit each record once.
        let mut records: BTreeMap<String, (Record, Value)> = BTreeMap::new();
        for id in ids {
            let loc = locate(scope, id)?;
            let entry = records
                .entry(loc.record.key.clone())
                .or_insert_with(|| (loc.record.clone(), (*loc.record.value).clone()));
            let target = match loc.rule {
                Some(i) => &mut entry.1["Rules"][i],
                None => &mut entry.1,
            };
            let mut tags: Vec<Value> = tags_of(target).to_vec();
            edit(&mut tags)?;
            target["Tags"] = Value::Array(tags);
        }
        let (mut conds, mut ops): (Vec<Cond>, Vec<Op>) = (vec![], vec![]);
        for (_, (rec, value)) in records {
            touch(&rec, &mut conds, &mut ops, value);
        }
        Ok(Plan {
            conds,
            ops,
            result: (),
        })
    })
}

pub fn create_tags(scope: &Scope, input: CreateTagsRequest) -> ApiResult<()> {
    let new: Vec<Value> = input.tags.iter().map(tag_value).collect();
    edit_tags(scope, &input.resources, |tags| merge(tags, &new))
}

pub fn delete_tags(scope: &Scope, input: DeleteTagsRequest) -> ApiResult<()> {
    edit_tags(scope, &input.resources, |tags| {
        match &input.tags {
            // No tags named: delete every tag the user set.
            None => tags.clear(),
            Some(gone) => tags.retain(|t| {
                !gone.iter().any(|g| {
                    // A key with a value deletes only a tag with that value.
                    g.key.as_deref() == t["Key"].as_str()
                        && g.value.as_deref().is_none_or(|v| t["Value"] == v)
                })
            }),
        }
        Ok(())
    })
}

pub fn describe_tags(scope: &Scope, input: DescribeTagsRequest) -> ApiResult<DescribeTagsResult> {
    let filters = Filters::parse(
        input.filters.as_deref(),
        &["key", "value", "resource-id", "resource-type"],
    )?;
    let mut out = Vec::new();
    let mut add = |id: &str, kind: ResourceType, tags: &[Value]| {
        for t in tags {
            let key = str_of(t, "Key");
            let value = str_of(t, "Value");
            let field = |name: &str| match name {
                "key" => vec![key.to_string()],
                "value" => vec![value.to_string()],
                "resource-id" => vec![id.to_string()],
                "resource-type" => vec![kind.as_str().to_string()],
                _ => vec![],
            };
            if filters.matches(tags, field) {
                out.push(TagDescription {
                    resource_id: Some(id.to_string()),
                    resource_type: Some(kind),
                    key: Some(key.to_string()),
                    value: Some(value.to_string()),
                });
            }
        }
    };
    for r in scope.list(VPC) {
        add(
            str_of(&r.value, "VpcId"),
            ResourceType::Vpc,
            tags_of(&r.value),
        );
    }
    for r in scope.list(SUBNET) {
        add(
            str_of(&r.value, "SubnetId"),
            ResourceType::Subnet,
            tags_of(&r.value),
        );
    }
    for r in scope.list(GROUP) {
        add(
            str_of(&r.value, "GroupId"),
            ResourceType::SecurityGroup,
            tags_of(&r.value),
        );
        for rule in r.value["Rules"].as_array().into_iter().flatten() {
            add(
                str_of(rule, "SecurityGroupRuleId"),
                ResourceType::SecurityGroupRule,
                tags_of(rule),
            );
        }
    }
    out.sort_by(|a, b| (&a.resource_id, &a.key).cmp(&(&b.resource_id, &b.key)));
    let page = crate::page(
        out,
        |t| {
            let (id, key) = (t.resource_id.as_deref(), t.key.as_deref());
            format!("{}\u{0}{}", id.unwrap_or_default(), key.unwrap_or_default())
        },
        input.max_results,
        input.next_token.as_deref(),
    )?;
    Ok(DescribeTagsResult {
        tags: Some(page.items),
        next_token: page.next_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::{doc, store};

    fn create_tags(s: &Scope, input: &Value) -> ApiResult<Value> {
        doc::<op::CreateTags>(input, |i| super::create_tags(s, i))
    }
    fn delete_tags(s: &Scope, input: &Value) -> ApiResult<Value> {
        doc::<op::DeleteTags>(input, |i| super::delete_tags(s, i))
    }
    fn describe_tags(s: &Scope, input: &Value) -> ApiResult<Value> {
        doc::<op::DescribeTags>(input, |i| super::describe_tags(s, i))
    }

    #[test]
    fn create_delete_describe_tags() {
        let (_d, st) = store();
        let s = Scope::new(&st, "000000000000", "us-east-1");
        crate::defaults::ensure(&s).unwrap();
        let vpc = crate::defaults::default_vpc(&s).unwrap()["VpcId"]
            .as_str()
            .unwrap()
            .to_string();
        let sg =
            crate::security_group::create_doc(&s, &json!({"GroupName": "t", "Description": "t"}))
                .unwrap()["GroupId"]
                .as_str()
                .unwrap()
                .to_string();
        create_tags(&s, &json!({"Resources": [vpc, sg], "Tags": [{"Key": "env", "Value": "dev"}, {"Key": "team"}]})).unwrap();
        let d = describe_tags(
            &s,
            &json!({"Filters": [{"Name": "resource-id", "Values": [vpc]}]}),
        )
        .unwrap();
        assert_eq!(
            d["Tags"],
            json!([
                {"ResourceId": vpc, "ResourceType": "vpc", "Key": "env", "Value": "dev"},
                {"ResourceId": vpc, "ResourceType": "vpc", "Key": "team", "Value": ""},
            ])
        );
        // Overwrite, then delete by key+value (no match) and by key.
        create_tags(
            &s,
            &json!({"Resources": [vpc], "Tags": [{"Key": "env", "Value": "prod"}]}),
        )
        .unwrap();
        delete_tags(
            &s,
            &json!({"Resources": [vpc], "Tags": [{"Key": "env", "Value": "dev"}]}),
        )
        .unwrap();
        assert_eq!(tags_of(&s.get(VPC, &vpc).unwrap().value).len(), 2);
        delete_tags(&s, &json!({"Resources": [vpc], "Tags": [{"Key": "env"}]})).unwrap();
        assert_eq!(
            tags_of(&s.get(VPC, &vpc).unwrap().value),
            &[json!({"Key": "team", "Value": ""})]
        );
        delete_tags(&s, &json!({"Resources": [sg]})).unwrap();
        assert!(tags_of(&s.get(GROUP, &sg).unwrap().value).is_empty());
        // Unknown resources fail the whole request.
        let e = create_tags(
            &s,
            &json!({"Resources": [vpc, "subnet-0"], "Tags": [{"Key": "k", "Value": "v"}]}),
        )
        .unwrap_err();
        assert_eq!(e.code, "InvalidSubnetID.NotFound");
        assert_eq!(tags_of(&s.get(VPC, &vpc).unwrap().value).len(), 1);
        assert_eq!(
            create_tags(
                &s,
                &json!({"Resources": [vpc], "Tags": [{"Key": "aws:x", "Value": "v"}]})
            )
            .unwrap_err()
            .code,
            "InvalidParameterValue"
        );
        // Rules are taggable too.
        let rule = s.get(GROUP, &sg).unwrap().value["Rules"][0]["SecurityGroupRuleId"]
            .as_str()
            .unwrap()
            .to_string();
        create_tags(
            &s,
            &json!({"Resources": [rule], "Tags": [{"Key": "r", "Value": "1"}]}),
        )
        .unwrap();
        let d = describe_tags(
            &s,
            &json!({"Filters": [{"Name": "resource-type", "Values": ["security-group-rule"]}]}),
        )
        .unwrap();
        assert_eq!(d["Tags"][0]["ResourceId"], rule.as_str());
    }
}
