//! Log groups: Create, Delete, Describe, retention policies and tags.

use crate::common::*;
use crate::types::*;
use crate::Logs;
use berth_store::{Cond, Op, Record, StoreError};
use berth_wire::page::encode_token;
use berth_wire::{ApiError, ApiResult, RequestContext};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub const RETENTION_DAYS: [i64; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

const MAX_TAGS: usize = 50;

/// A new group's record: CreateLogGroup's settings, or the defaults (the awslogs driver's
/// groups, `input` None).
pub fn new_group_record(name: &str, now: i64, input: Option<&CreateLogGroupRequest>) -> Value {
    let class = input.and_then(|i| i.log_group_class);
    let mut g = json!({
        "logGroupName": name,
        "creationTime": now,
        "tags": input.and_then(|i| i.tags.as_ref()).cloned().unwrap_or_default(),
        "logGroupClass": class.unwrap_or(LogGroupClass::Standard).as_str(),
        "deletionProtectionEnabled": input.and_then(|i| i.deletion_protection_enabled).unwrap_or(false),
    });
    if let Some(k) = input.and_then(|i| i.kms_key_id.as_ref()) {
        g["kmsKeyId"] = json!(k);
    }
    g
}

/// A group record's tags.
fn tags_of(group: &Value) -> BTreeMap<String, String> {
    let Some(tags) = group["tags"].as_object() else {
        return BTreeMap::new();
    };
    tags.iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

impl Logs {
    pub(crate) fn group_record(&self, ctx: &RequestContext, name: &str) -> ApiResult<Record> {
        self.store
            .get(&group_key(&ctx.account, &ctx.region, name))
            .ok_or_else(group_not_found)
    }

    /// Read-modify-write of a group record, retried when another write got there first.
    fn update_group(
        &self,
        ctx: &RequestContext,
        name: &str,
        f: impl Fn(&mut Value) -> ApiResult<()>,
    ) -> ApiResult<Value> {
        let k = group_key(&ctx.account, &ctx.region, name);
        let busy = || {
            ApiError::new(
                500,
                "ServiceUnavailableException",
                "The log group is being modified concurrently; try again.",
            )
        };
        berth_toolkit::commit(self.store.as_ref(), busy, || {
            let r = self.store.get(&k).ok_or_else(group_not_found)?;
            let mut v = (*r.value).clone();
            f(&mut v)?;
            let mut plan = berth_toolkit::Plan::new(v.clone());
            plan.put(&r, v);
            Ok(plan)
        })
    }

    pub(crate) fn create_log_group(
        &self,
        ctx: &RequestContext,
        input: CreateLogGroupRequest,
    ) -> ApiResult<()> {
        let name = input.log_group_name.as_str();
        check_group_name(name, "logGroupName")?;
        if name.starts_with("aws/") {
            return Err(invalid(
                "Log group names can't start with the string 'aws/'.",
            ));
        }
        if let Some(t) = &input.tags {
            check_tags(t)?;
        }
        let _guard = self.lock_meta();
        let k = group_key(&ctx.account, &ctx.region, name);
        if self.store.get(&k).is_some() {
            return Err(ApiError::client(
                "ResourceAlreadyExistsException",
                "The specified log group already exists",
            ));
        }
        // Events of an earlier group of this name whose removal was interrupted.
        self.events
            .delete_group(&ctx.account, &ctx.region, name)
            .map_err(io_err)?;
        let record = new_group_record(name, self.now_ms(), Some(&input));
        match self.store.create(&k, record) {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict(_)) => Err(ApiError::client(
                "ResourceAlreadyExistsException",
                "The specified log group already exists",
            )),
            Err(e) => Err(store_err(e)),
        }
    }

    pub(crate) fn delete_log_group(
        &self,
        ctx: &RequestContext,
        input: DeleteLogGroupRequest,
    ) -> ApiResult<()> {
        let name = input.log_group_name.as_str();
        check_group_name(name, "logGroupName")?;
        let _guard = self.lock_meta();
        let g = self.group_record(ctx, name)?;
        if g.value["deletionProtectionEnabled"] == true {
            return Err(ApiError::client(
                "ValidationException",
                format!("Log group {name} has deletion protection enabled and cannot be deleted."),
            ));
        }
        let k = group_key(&ctx.account, &ctx.region, name);
        let mut ops = vec![Op::Delete(k.clone())];
        for s in self
            .store
            .list(&stream_prefix(&ctx.account, &ctx.region, name))
        {
            ops.push(Op::Delete(s.key));
        }
        self.store
            .txn(&[Cond::Revision(k, g.revision)], ops)
            .map_err(store_err)?;
        // The records are gone, so the group is; its events follow. Should this fail, a
        // later group of the same name clears them before it is created.
        if let Err(e) = self.events.delete_group(&ctx.account, &ctx.region, name) {
            tracing::warn!(group = %name, error = %e, "logs: could not delete a deleted group's events");
        }
        Ok(())
    }

    pub(crate) fn describe_log_groups(
        &self,
        ctx: &RequestContext,
        input: DescribeLogGroupsRequest,
    ) -> ApiResult<DescribeLogGroupsResponse> {
        let prefix = input.log_group_name_prefix.as_deref();
        let pattern = input.log_group_name_pattern.as_deref();
        if prefix.is_some() && pattern.is_some() {
            return Err(invalid(
                "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.",
            ));
        }
        if let Some(p) = prefix {
            check_group_name(p, "logGroupNamePrefix")?;
        }
        let ids: Option<Vec<String>> = match &input.log_group_identifiers {
            Some(list) => {
                if prefix.is_some() || pattern.is_some() {
                    return Err(invalid(
                        "logGroupIdentifiers cannot be combined with logGroupNamePrefix or logGroupNamePattern.",
                    ));
                }
                let mut names = vec![];
                for id in list {
                    match group_from_identifier(ctx, id) {
                        Ok(n) => names.push(n),
                        Err(e) if e.code == "ResourceNotFoundException" => {}
                        Err(e) => return Err(e),
                    }
                }
                Some(names)
            }
            None => None,
        };
        let class = input.log_group_class.map(LogGroupClass::as_str);
        let limit = input.limit.map_or(50, |l| l as usize);
        let base = group_prefix(&ctx.account, &ctx.region);
        let scan_prefix = format!("{base}{}", prefix.unwrap_or(""));
        let after = decode_next(input.next_token.as_deref())?.map(|n| format!("{base}{n}"));
        let mut page: Vec<Record> = vec![];
        self.store
            .scan(&scan_prefix, after.as_deref(), false, limit + 1, &mut |r| {
                let name = r.value["logGroupName"].as_str().unwrap_or_default();
                let keep = pattern.is_none_or(|p| name.contains(p))
                    && ids.as_ref().is_none_or(|ids| ids.iter().any(|i| i == name))
                    && class.is_none_or(|c| r.value["logGroupClass"] == c);
                if keep {
                    page.push(r.clone());
                }
                keep
            });
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last()
                .and_then(|r| r.value["logGroupName"].as_str())
                .map(encode_token)
        } else {
            None
        };
        let mut groups = vec![];
        for r in &page {
            let name = r.value["logGroupName"].as_str().unwrap_or_default();
            let arn = group_arn(ctx, name);
            let shown = LogGroup {
                log_group_name: Some(name.to_string()),
                creation_time: r.value["creationTime"].as_i64(),
                arn: Some(format!("{arn}:*")),
                ..Default::default()
            };
            if pattern.is_some() {
                // AWS answers a pattern search with only these three.
                groups.push(shown);
                continue;
            }
            let stored = self
                .events
                .group_bytes(&ctx.account, &ctx.region, name)
                .map_err(io_err)?;
            groups.push(LogGroup {
                retention_in_days: r.value["retentionInDays"].as_i64().map(|d| d as i32),
                metric_filter_count: Some(0),
                stored_bytes: Some(stored as i64),
                kms_key_id: r.value["kmsKeyId"].as_str().map(String::from),
                log_group_class: r.value["logGroupClass"]
                    .as_str()
                    .and_then(LogGroupClass::from_wire),
                log_group_arn: Some(arn),
                deletion_protection_enabled: r.value["deletionProtectionEnabled"].as_bool(),
                ..shown
            });
        }
        Ok(DescribeLogGroupsResponse {
            log_groups: Some(groups),
            next_token: next,
        })
    }

    pub(crate) fn put_retention_policy(
        &self,
        ctx: &RequestContext,
        input: PutRetentionPolicyRequest,
    ) -> ApiResult<()> {
        let name = input.log_group_name.as_str();
        check_group_name(name, "logGroupName")?;
        let days = i64::from(input.retention_in_days);
        if !RETENTION_DAYS.contains(&days) {
            let set: Vec<String> = RETENTION_DAYS.iter().map(i64::to_string).collect();
            return Err(invalid(format!(
                "1 validation error detected: Value '{days}' at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                set.join(", ")
            )));
        }
        self.update_group(ctx, name, |g| {
            g["retentionInDays"] = json!(days);
            Ok(())
        })?;
        Ok(())
    }

    pub(crate) fn delete_retention_policy(
        &self,
        ctx: &RequestContext,
        input: DeleteRetentionPolicyRequest,
    ) -> ApiResult<()> {
        let name = input.log_group_name.as_str();
        check_group_name(name, "logGroupName")?;
        self.update_group(ctx, name, |g| {
            if let Some(o) = g.as_object_mut() {
                o.remove("retentionInDays");
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Merge `tags` into the group's, at most 50 in all.
    fn add_tags(
        &self,
        ctx: &RequestContext,
        name: &str,
        tags: &BTreeMap<String, String>,
        too_many: impl Fn() -> ApiError,
    ) -> ApiResult<()> {
        check_tags(tags)?;
        self.update_group(ctx, name, |g| {
            let mut merged = g["tags"].as_object().cloned().unwrap_or_default();
            for (k, v) in tags {
                merged.insert(k.clone(), json!(v));
            }
            if merged.len() > MAX_TAGS {
                return Err(too_many());
            }
            g["tags"] = Value::Object(merged);
            Ok(())
        })?;
        Ok(())
    }

    fn remove_tags(&self, ctx: &RequestContext, name: &str, keys: &[String]) -> ApiResult<()> {
        self.update_group(ctx, name, |g| {
            if let Some(t) = g["tags"].as_object_mut() {
                for k in keys {
                    t.remove(k);
                }
            }
            Ok(())
        })?;
        Ok(())
    }

    /// The log group a resource ARN names (the only taggable resource Berth has).
    fn tagged_group(&self, ctx: &RequestContext, arn: &str) -> ApiResult<String> {
        if !arn.starts_with("arn:") {
            return Err(invalid(format!("Invalid resource ARN: {arn}")));
        }
        let name = group_name_from_arn(ctx, arn)
            .ok_or_else(|| not_found(format!("The specified resource does not exist: {arn}")))?;
        self.group_record(ctx, &name)?;
        Ok(name)
    }

    pub(crate) fn tag_resource(
        &self,
        ctx: &RequestContext,
        input: TagResourceRequest,
    ) -> ApiResult<()> {
        let arn = input.resource_arn.as_str();
        let name = self.tagged_group(ctx, arn)?;
        self.add_tags(ctx, &name, &input.tags, || {
            ApiError::client(
                "TooManyTagsException",
                format!("A resource can have no more than {MAX_TAGS} tags: {arn}"),
            )
        })
    }

    pub(crate) fn untag_resource(
        &self,
        ctx: &RequestContext,
        input: UntagResourceRequest,
    ) -> ApiResult<()> {
        let name = self.tagged_group(ctx, &input.resource_arn)?;
        self.remove_tags(ctx, &name, &input.tag_keys)
    }

    pub(crate) fn list_tags_for_resource(
        &self,
        ctx: &RequestContext,
        input: ListTagsForResourceRequest,
    ) -> ApiResult<ListTagsForResourceResponse> {
        let name = self.tagged_group(ctx, &input.resource_arn)?;
        let g = self.group_record(ctx, &name)?;
        Ok(ListTagsForResourceResponse {
            tags: Some(tags_of(&g.value)),
        })
    }

    pub(crate) fn tag_log_group(
        &self,
        ctx: &RequestContext,
        input: TagLogGroupRequest,
    ) -> ApiResult<()> {
        let name = input.log_group_name.as_str();
        check_group_name(name, "logGroupName")?;
        self.add_tags(ctx, name, &input.tags, || {
            invalid(format!(
                "A log group can have no more than {MAX_TAGS} tags."
            ))
        })
    }

    pub(crate) fn untag_log_group(
        &self,
        ctx: &RequestContext,
        input: UntagLogGroupRequest,
    ) -> ApiResult<()> {
        let name = input.log_group_name.as_str();
        check_group_name(name, "logGroupName")?;
        self.remove_tags(ctx, name, &input.tags)
    }

    pub(crate) fn list_tags_log_group(
        &self,
        ctx: &RequestContext,
        input: ListTagsLogGroupRequest,
    ) -> ApiResult<ListTagsLogGroupResponse> {
        let name = input.log_group_name.as_str();
        check_group_name(name, "logGroupName")?;
        let g = self.group_record(ctx, name)?;
        Ok(ListTagsLogGroupResponse {
            tags: Some(tags_of(&g.value)),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use serde_json::json;

    #[test]
    fn groups_lifecycle() {
        let f = fixture();
        f.ok(
            "CreateLogGroup",
            json!({"logGroupName": "/ecs/web", "tags": {"env": "prod"}}),
        );
        f.ok("CreateLogGroup", json!({"logGroupName": "/ecs/api"}));
        f.ok("CreateLogGroup", json!({"logGroupName": "other"}));
        let e = f.err("CreateLogGroup", json!({"logGroupName": "/ecs/web"}));
        assert_eq!(e.code, "ResourceAlreadyExistsException");
        assert_eq!(
            f.err("CreateLogGroup", json!({"logGroupName": "bad name"}))
                .code,
            "InvalidParameterException"
        );
        assert_eq!(
            f.err("CreateLogGroup", json!({"logGroupName": "aws/x"}))
                .code,
            "InvalidParameterException"
        );
        let all = f.ok("DescribeLogGroups", json!({}));
        let names: Vec<&str> = all["logGroups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["logGroupName"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["/ecs/api", "/ecs/web", "other"]);
        let g = &all["logGroups"][1];
        assert_eq!(
            g["arn"],
            "arn:aws:logs:us-east-1:000000000000:log-group:/ecs/web:*"
        );
        assert_eq!(
            g["logGroupArn"],
            "arn:aws:logs:us-east-1:000000000000:log-group:/ecs/web"
        );
        assert_eq!(g["storedBytes"], 0);
        let p = f.ok("DescribeLogGroups", json!({"logGroupNamePrefix": "/ecs/"}));
        assert_eq!(p["logGroups"].as_array().unwrap().len(), 2);
        let p = f.ok("DescribeLogGroups", json!({"logGroupNamePattern": "web"}));
        assert_eq!(p["logGroups"].as_array().unwrap().len(), 1);
        assert!(p["logGroups"][0].get("storedBytes").is_none());
        // Paging.
        let p1 = f.ok("DescribeLogGroups", json!({"limit": 2}));
        assert_eq!(p1["logGroups"].as_array().unwrap().len(), 2);
        let t = p1["nextToken"].as_str().unwrap();
        let p2 = f.ok("DescribeLogGroups", json!({"limit": 2, "nextToken": t}));
        assert_eq!(p2["logGroups"][0]["logGroupName"], "other");
        assert!(p2["nextToken"].is_null());
        assert_eq!(
            f.err("DescribeLogGroups", json!({"nextToken": "!!"})).code,
            "InvalidParameterException"
        );
        // Retention.
        f.ok(
            "PutRetentionPolicy",
            json!({"logGroupName": "/ecs/web", "retentionInDays": 7}),
        );
        let e = f.err(
            "PutRetentionPolicy",
            json!({"logGroupName": "/ecs/web", "retentionInDays": 2}),
        );
        assert_eq!(e.code, "InvalidParameterException");
        assert!(e.message.contains("enum value set"));
        let g = f.ok(
            "DescribeLogGroups",
            json!({"logGroupNamePrefix": "/ecs/web"}),
        );
        assert_eq!(g["logGroups"][0]["retentionInDays"], 7);
        f.ok("DeleteRetentionPolicy", json!({"logGroupName": "/ecs/web"}));
        let g = f.ok(
            "DescribeLogGroups",
            json!({"logGroupNamePrefix": "/ecs/web"}),
        );
        assert!(g["logGroups"][0].get("retentionInDays").is_none());
        assert_eq!(
            f.err(
                "PutRetentionPolicy",
                json!({"logGroupName": "/nope", "retentionInDays": 7})
            )
            .code,
            "ResourceNotFoundException"
        );
        // Delete.
        f.ok("DeleteLogGroup", json!({"logGroupName": "/ecs/api"}));
        assert_eq!(
            f.err("DeleteLogGroup", json!({"logGroupName": "/ecs/api"}))
                .code,
            "ResourceNotFoundException"
        );
    }

    #[test]
    fn tags_by_arn_and_by_name() {
        let f = fixture();
        f.ok(
            "CreateLogGroup",
            json!({"logGroupName": "g", "tags": {"a": "1"}}),
        );
        let arn = "arn:aws:logs:us-east-1:000000000000:log-group:g";
        f.ok(
            "TagResource",
            json!({"resourceArn": arn, "tags": {"b": "2"}}),
        );
        let t = f.ok(
            "ListTagsForResource",
            json!({"resourceArn": format!("{arn}:*")}),
        );
        assert_eq!(t["tags"], json!({"a": "1", "b": "2"}));
        f.ok(
            "UntagResource",
            json!({"resourceArn": arn, "tagKeys": ["a"]}),
        );
        f.ok(
            "TagLogGroup",
            json!({"logGroupName": "g", "tags": {"c": "3"}}),
        );
        f.ok("UntagLogGroup", json!({"logGroupName": "g", "tags": ["b"]}));
        let t = f.ok("ListTagsLogGroup", json!({"logGroupName": "g"}));
        assert_eq!(t["tags"], json!({"c": "3"}));
        assert_eq!(
            f.err(
                "TagResource",
                json!({"resourceArn": "arn:aws:logs:us-east-1:000000000000:log-group:nope", "tags": {"x": "1"}})
            )
            .code,
            "ResourceNotFoundException"
        );
        assert_eq!(
            f.err(
                "TagResource",
                json!({"resourceArn": arn, "tags": {"aws:x": "1"}})
            )
            .code,
            "InvalidParameterException"
        );
        let many: serde_json::Map<String, serde_json::Value> =
            (0..50).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert_eq!(
            f.err("TagResource", json!({"resourceArn": arn, "tags": many}))
                .code,
            "TooManyTagsException"
        );
        let t = f.ok("ListTagsLogGroup", json!({"logGroupName": "g"}));
        assert_eq!(t["tags"], json!({"c": "3"}));
    }
}
