//! TagResource, UntagResource, ListTagsForResource on every taggable ECS resource.

use crate::common::*;
use crate::Ecs;
use berth_store::Record;
use berth_wire::{ApiError, ApiResult, RequestContext};
use serde_json::{json, Value};

fn not_found() -> ApiError {
    ApiError::client(
        "ResourceNotFoundException",
        "The specified resource could not be found.",
    )
}

impl Ecs {
    /// The record an ARN names, if this account and region hold it.
    fn resource_record(&self, ctx: &RequestContext, resource_arn: &str) -> ApiResult<Record> {
        let a = parse_arn(resource_arn)
            .ok_or_else(|| invalid(format!("Invalid ARN: {resource_arn}")))?;
        if a.region != ctx.region || a.account != ctx.account {
            return Err(not_found());
        }
        let k = match a.kind {
            "cluster" => key(ctx, &format!("cluster/{}", a.rest)),
            "capacity-provider" => key(ctx, &format!("capacity-provider/{}", a.rest)),
            "task-definition" => {
                let (family, rev) = a
                    .rest
                    .rsplit_once(':')
                    .ok_or_else(|| invalid("The task definition ARN must include a revision."))?;
                let rev: i64 = rev
                    .parse()
                    .map_err(|_| invalid("The task definition ARN has an invalid revision."))?;
                key(ctx, &format!("taskdef/{family}/{rev:010}"))
            }
            // cluster/ID-qualified resources: service/CLUSTER/NAME, task/CLUSTER/ID, container-instance/CLUSTER/ID
            "service" | "task" | "container-instance" | "task-set" => {
                key(ctx, &format!("{}/{}", a.kind, a.rest))
            }
            _ => {
                return Err(invalid(format!(
                    "The resource type '{}' does not support tagging.",
                    a.kind
                )))
            }
        };
        let r = self.store.get(&k).ok_or_else(not_found)?;
        if a.kind == "cluster" && r.value["status"] != "ACTIVE" {
            return Err(not_found());
        }
        Ok(r)
    }

    pub(crate) fn tag_resource(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let tags = arr_of(input, "tags");
        check_tags(tags)?;
        self.retag(ctx, input, |old| merge_tags(old, tags))
    }

    pub(crate) fn untag_resource(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let keys: Vec<&str> = arr_of(input, "tagKeys")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        self.retag(ctx, input, |old| {
            old.iter()
                .filter(|t| !str_of(t, "key").is_some_and(|k| keys.contains(&k)))
                .cloned()
                .collect()
        })
    }

    fn retag(
        &self,
        ctx: &RequestContext,
        input: &Value,
        f: impl Fn(&[Value]) -> Vec<Value>,
    ) -> ApiResult<Value> {
        let resource = str_of(input, "resourceArn").unwrap_or_default();
        let busy = || busy("The resource is being modified concurrently; try again.");
        berth_toolkit::commit(self.store.as_ref(), busy, || {
            let r = self.resource_record(ctx, resource)?;
            let mut v = (*r.value).clone();
            let tags = f(arr_of(&v, "tags"));
            if tags.len() > 50 {
                return Err(invalid("The number of tags exceeds the limit of 50."));
            }
            v["tags"] = Value::Array(tags);
            let mut plan = Plan::new(json!({}));
            plan.put(&r, v);
            Ok(plan)
        })
    }

    pub(crate) fn list_tags_for_resource(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let r = self.resource_record(ctx, str_of(input, "resourceArn").unwrap_or_default())?;
        Ok(json!({"tags": arr_of(&r.value, "tags")}))
    }
}
