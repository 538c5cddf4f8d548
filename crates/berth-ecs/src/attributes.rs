//! Attributes on container instances: PutAttributes, ListAttributes, DeleteAttributes.
//! Targets must be registered container instances of the cluster.

use crate::common::*;
use crate::Ecs;
use berth_store::Op;
use berth_wire::page::paginate;
use berth_wire::{ApiError, ApiResult, RequestContext};
use serde_json::{json, Value};

impl Ecs {
    /// The container instance id an attribute targets (an ARN or a bare id).
    fn attribute_target(
        &self,
        ctx: &RequestContext,
        cluster: &str,
        attr: &Value,
    ) -> ApiResult<String> {
        let target = str_of(attr, "targetId").ok_or_else(|| {
            invalid("targetId is required for attributes on container instances.")
        })?;
        if str_of(attr, "targetType").unwrap_or("container-instance") != "container-instance" {
            return Err(invalid("targetType must be container-instance."));
        }
        let id = match name_from(ctx, target, "container-instance") {
            Some(rest) => rest.rsplit('/').next().unwrap_or_default().to_string(),
            None => {
                return Err(ApiError::client(
                    "TargetNotFoundException",
                    format!("Could not find {target}."),
                ))
            }
        };
        if self
            .store
            .get(&key(ctx, &format!("container-instance/{cluster}/{id}")))
            .is_none()
        {
            return Err(ApiError::client(
                "TargetNotFoundException",
                format!("Could not find {target}."),
            ));
        }
        Ok(id)
    }

    pub(crate) fn put_attributes(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let c = active_cluster(self.store.as_ref(), ctx, input, "cluster")?;
        let cluster = str_of(&c.value, "clusterName")
            .unwrap_or_default()
            .to_string();
        let attrs = arr_of(input, "attributes");
        if attrs.len() > 10 {
            return Err(ApiError::client(
                "AttributeLimitExceededException",
                "You can specify up to 10 attributes in a single call.",
            ));
        }
        let mut ops = vec![];
        for a in attrs {
            let id = self.attribute_target(ctx, &cluster, a)?;
            let name = str_of(a, "name").unwrap_or_default();
            let mut stored = a.clone();
            stored["targetType"] = json!("container-instance");
            ops.push(Op::Put(
                key(ctx, &format!("attribute/{cluster}/{id}/{name}")),
                stored,
            ));
        }
        self.store.txn(&[], ops).map_err(store_err)?;
        Ok(json!({"attributes": attrs}))
    }

    pub(crate) fn delete_attributes(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let c = active_cluster(self.store.as_ref(), ctx, input, "cluster")?;
        let cluster = str_of(&c.value, "clusterName")
            .unwrap_or_default()
            .to_string();
        let attrs = arr_of(input, "attributes");
        let mut ops = vec![];
        for a in attrs {
            let id = self.attribute_target(ctx, &cluster, a)?;
            let name = str_of(a, "name").unwrap_or_default();
            ops.push(Op::Delete(key(
                ctx,
                &format!("attribute/{cluster}/{id}/{name}"),
            )));
        }
        self.store.txn(&[], ops).map_err(store_err)?;
        Ok(json!({"attributes": attrs}))
    }

    pub(crate) fn list_attributes(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let c = active_cluster(self.store.as_ref(), ctx, input, "cluster")?;
        let cluster = str_of(&c.value, "clusterName")
            .unwrap_or_default()
            .to_string();
        let name = str_of(input, "attributeName");
        let value = str_of(input, "attributeValue");
        if value.is_some() && name.is_none() {
            return Err(invalid(
                "attributeName must be specified when attributeValue is.",
            ));
        }
        let items: Vec<(String, Value)> = self
            .store
            .list(&key(ctx, &format!("attribute/{cluster}/")))
            .into_iter()
            .filter(|r| {
                name.is_none_or(|n| r.value["name"] == n)
                    && value.is_none_or(|v| r.value["value"] == v)
            })
            .map(|r| (r.key.clone(), (*r.value).clone()))
            .collect();
        let page = paginate(items, |(k, _)| k.clone(), input, 100, 100, INVALID)?;
        Ok(
            json!({"attributes": page.items.into_iter().map(|(_, v)| v).collect::<Vec<_>>(), "nextToken": page.next_token}),
        )
    }
}
