//! AddTags, RemoveTags, DescribeTags on load balancers, target groups, listeners and rules.
//! Tags live in each resource's record (a listener's default rule: `DefaultRuleTags` in the
//! listener's record).

use crate::common::*;
use crate::rule::RuleRef;
use berth_model::elbv2::Tag;
use berth_store::Record;
use berth_types::elbv2;
use berth_wire::{ApiError, ApiResult};
use serde_json::Value;
use std::collections::BTreeMap;

/// The record holding `arn`'s tags and the field they are in.
fn locate(s: &Scope, arn: &str) -> ApiResult<(Record, &'static str)> {
    match parse_arn(arn) {
        Some(Arn::Lb { .. }) => Ok((crate::lb::get(s, arn)?, "Tags")),
        Some(Arn::Tg { .. }) => Ok((crate::tg::get(s, arn)?, "Tags")),
        Some(Arn::Listener { .. }) => Ok((crate::listener::get(s, arn)?, "Tags")),
        Some(Arn::Rule { .. }) => Ok(match crate::rule::get(s, arn)? {
            RuleRef::Rule { rule, .. } => (rule, "Tags"),
            RuleRef::Default { listener } => (listener, "DefaultRuleTags"),
        }),
        None => Err(validation(format!("'{arn}' is not a valid resource ARN"))),
    }
}

/// Apply `change` to the tags of every resource in `arns`, in one transaction.
fn update(
    s: &Scope,
    arns: &[String],
    change: impl Fn(&mut Vec<Tag>) -> ApiResult<()>,
) -> ApiResult<()> {
    commit(s.store, || {
        let mut recs: BTreeMap<String, (Record, Value)> = BTreeMap::new();
        for arn in arns {
            let (rec, field) = locate(s, arn)?;
            let entry = recs
                .entry(rec.key.clone())
                .or_insert_with(|| (rec.clone(), (*rec.value).clone()));
            let mut tags: Vec<Tag> = match &entry.1[field] {
                Value::Null => vec![],
                v => record(v)?,
            };
            change(&mut tags)?;
            entry.1[field] = berth_model::elbv2::to_value(&tags);
        }
        let mut plan = Plan::new(());
        for (rec, v) in recs.into_values() {
            plan.put(&rec, v);
        }
        Ok(plan)
    })
}

pub fn add(s: &Scope, input: elbv2::AddTagsInput) -> ApiResult<elbv2::AddTagsOutput> {
    let new = request_tags(&input.tags)?;
    update(s, &input.resource_arns, |tags| {
        for t in &new {
            match tags.iter_mut().find(|x| x.key == t.key) {
                Some(x) => *x = t.clone(),
                None => tags.push(t.clone()),
            }
        }
        if tags.len() > MAX_TAGS {
            return Err(too_many_tags());
        }
        Ok(())
    })?;
    Ok(elbv2::AddTagsOutput {})
}

pub fn remove(s: &Scope, input: elbv2::RemoveTagsInput) -> ApiResult<elbv2::RemoveTagsOutput> {
    let keys = &input.tag_keys;
    update(s, &input.resource_arns, |tags| {
        tags.retain(|t| !keys.contains(&t.key));
        Ok(())
    })?;
    Ok(elbv2::RemoveTagsOutput {})
}

pub fn describe(
    s: &Scope,
    input: elbv2::DescribeTagsInput,
) -> ApiResult<elbv2::DescribeTagsOutput> {
    let arns = &input.resource_arns;
    if arns.len() > 20 {
        return Err(ApiError::client(
            "ValidationError",
            "At most 20 resource ARNs can be specified",
        ));
    }
    let out = arns
        .iter()
        .map(|arn| {
            let (rec, field) = locate(s, arn)?;
            Ok(elbv2::TagDescription {
                resource_arn: Some(arn.clone()),
                tags: shape(&rec.value[field])?,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(elbv2::DescribeTagsOutput {
        tag_descriptions: Some(out),
    })
}
