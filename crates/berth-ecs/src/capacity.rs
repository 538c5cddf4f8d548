//! Capacity providers: FARGATE and FARGATE_SPOT are built in; Create, Describe, Update
//! and Delete manage Auto Scaling group providers (recorded now; the fleet issue makes
//! them scale hosts).

use crate::common::*;
use crate::Ecs;
use berth_store::{Cond, Op};
use berth_wire::page::paginate;
use berth_wire::{ApiError, ApiResult, RequestContext};
use serde_json::{json, Value};

fn built_in(name: &str) -> Value {
    json!({"capacityProviderArn": format!("arn:aws:ecs:::capacity-provider/{name}"), "name": name, "status": "ACTIVE", "tags": []})
}

fn provider_name(ctx: &RequestContext, id: &str) -> String {
    name_from(ctx, id, "capacity-provider").unwrap_or_else(|| id.to_string())
}

fn cp_not_found() -> ApiError {
    invalid("The specified capacity provider does not exist. Specify a valid name or ARN and try again.")
}

impl Ecs {
    pub(crate) fn create_capacity_provider(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let name = str_of(input, "name").unwrap_or_default();
        let lower = name.to_ascii_lowercase();
        if ["aws", "ecs", "fargate"]
            .iter()
            .any(|p| lower.starts_with(p))
        {
            return Err(invalid("The specified capacity provider name is invalid. Capacity provider names cannot be prefixed with \"aws\", \"ecs\", or \"fargate\"."));
        }
        if !is_simple_name(name) {
            return Err(invalid("The specified capacity provider name is invalid. Up to 255 characters are allowed: letters (uppercase and lowercase), numbers, underscores, and hyphens."));
        }
        let Some(asg) = input.get("autoScalingGroupProvider") else {
            return Err(invalid("autoScalingGroupProvider must be specified: Berth supports Auto Scaling group capacity providers."));
        };
        check_tags(arr_of(input, "tags"))?;
        let asg_arn = str_of(asg, "autoScalingGroupArn").unwrap_or_default();
        if !asg_arn.starts_with("arn:aws:autoscaling:") {
            return Err(invalid(
                "The specified Auto Scaling group ARN is not valid.",
            ));
        }
        let k = key(ctx, &format!("capacity-provider/{name}"));
        if self
            .store
            .get(&k)
            .is_some_and(|r| r.value["status"] == "ACTIVE")
        {
            return Err(invalid("The specified capacity provider already exists. To change the configuration of an existing capacity provider, update the capacity provider."));
        }
        let mut provider = asg.clone();
        let ms = provider.get("managedScaling").cloned().unwrap_or(json!({}));
        provider["managedScaling"] = json!({
            "status": ms.get("status").cloned().unwrap_or(json!("DISABLED")),
            "targetCapacity": ms.get("targetCapacity").cloned().unwrap_or(json!(100)),
            "minimumScalingStepSize": ms.get("minimumScalingStepSize").cloned().unwrap_or(json!(1)),
            "maximumScalingStepSize": ms.get("maximumScalingStepSize").cloned().unwrap_or(json!(10000)),
            "instanceWarmupPeriod": ms.get("instanceWarmupPeriod").cloned().unwrap_or(json!(300)),
        });
        if provider.get("managedTerminationProtection").is_none() {
            provider["managedTerminationProtection"] = json!("DISABLED");
        }
        if provider.get("managedDraining").is_none() {
            provider["managedDraining"] = json!("ENABLED");
        }
        let cp = json!({
            "capacityProviderArn": arn(ctx, &format!("capacity-provider/{name}")),
            "name": name,
            "status": "ACTIVE",
            "autoScalingGroupProvider": provider,
            "tags": arr_of(input, "tags"),
        });
        let cond = match self.store.get(&k) {
            Some(r) => Cond::Revision(k.clone(), r.revision),
            None => Cond::Absent(k.clone()),
        };
        self.store
            .txn(&[cond], vec![Op::Put(k, cp.clone())])
            .map_err(store_err)?;
        Ok(json!({"capacityProvider": cp}))
    }

    pub(crate) fn describe_capacity_providers(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let with_tags = include_has(input, "TAGS");
        let strip = |mut v: Value| {
            if !with_tags {
                v.as_object_mut().map(|o| o.remove("tags"));
            }
            v
        };
        let requested: Vec<&str> = arr_of(input, "capacityProviders")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if requested.is_empty() {
            let mut all = vec![built_in("FARGATE"), built_in("FARGATE_SPOT")];
            all.extend(
                self.store
                    .list(&key(ctx, "capacity-provider/"))
                    .into_iter()
                    .filter(|r| r.value["status"] == "ACTIVE")
                    .map(|r| (*r.value).clone()),
            );
            let page = paginate(
                all,
                |c| str_of(c, "name").unwrap_or_default().to_string(),
                input,
                10,
                10,
                INVALID,
            )?;
            return Ok(json!({
                "capacityProviders": page.items.into_iter().map(strip).collect::<Vec<_>>(),
                "failures": [],
                "nextToken": page.next_token,
            }));
        }
        let mut found = vec![];
        let mut failures = vec![];
        for id in requested {
            let name = provider_name(ctx, id);
            if name == "FARGATE" || name == "FARGATE_SPOT" {
                found.push(strip(built_in(&name)));
            } else if let Some(r) = self
                .store
                .get(&key(ctx, &format!("capacity-provider/{name}")))
            {
                found.push(strip((*r.value).clone()));
            } else {
                failures.push(json!({"arn": id, "reason": "MISSING"}));
            }
        }
        Ok(json!({"capacityProviders": found, "failures": failures}))
    }

    pub(crate) fn update_capacity_provider(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let name = provider_name(ctx, str_of(input, "name").unwrap_or_default());
        let k = key(ctx, &format!("capacity-provider/{name}"));
        let r = self
            .store
            .get(&k)
            .filter(|r| r.value["status"] == "ACTIVE")
            .ok_or_else(cp_not_found)?;
        let mut cp = (*r.value).clone();
        if let Some(upd) = input.get("autoScalingGroupProvider") {
            let p = &mut cp["autoScalingGroupProvider"];
            if let Some(ms) = upd.get("managedScaling").and_then(Value::as_object) {
                for (f, v) in ms {
                    p["managedScaling"][f] = v.clone();
                }
            }
            for f in ["managedTerminationProtection", "managedDraining"] {
                if let Some(v) = upd.get(f) {
                    p[f] = v.clone();
                }
            }
        }
        cp["updateStatus"] = json!("UPDATE_COMPLETE");
        self.store
            .txn(
                &[Cond::Revision(k.clone(), r.revision)],
                vec![Op::Put(k, cp.clone())],
            )
            .map_err(store_err)?;
        Ok(json!({"capacityProvider": cp}))
    }

    pub(crate) fn delete_capacity_provider(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let name = provider_name(ctx, str_of(input, "capacityProvider").unwrap_or_default());
        if name == "FARGATE" || name == "FARGATE_SPOT" {
            return Err(invalid("The FARGATE and FARGATE_SPOT capacity providers are reserved and cannot be deleted."));
        }
        let k = key(ctx, &format!("capacity-provider/{name}"));
        let r = self
            .store
            .get(&k)
            .filter(|r| r.value["status"] == "ACTIVE")
            .ok_or_else(cp_not_found)?;
        let in_use = self.store.list(&key(ctx, "cluster/")).iter().any(|c| {
            c.value["status"] == "ACTIVE"
                && arr_of(&c.value, "capacityProviders")
                    .iter()
                    .any(|p| p == name.as_str())
        });
        if in_use {
            return Err(ApiError::client(
                "ResourceInUseException",
                "The specified capacity provider is in use and cannot be removed. Remove it from every cluster's capacity providers first.",
            ));
        }
        let mut cp = (*r.value).clone();
        cp["status"] = json!("INACTIVE");
        cp["updateStatus"] = json!("DELETE_COMPLETE");
        self.store
            .txn(
                &[Cond::Revision(k.clone(), r.revision)],
                vec![Op::Put(k, cp.clone())],
            )
            .map_err(store_err)?;
        cp["status"] = json!("ACTIVE");
        cp["updateStatus"] = json!("DELETE_IN_PROGRESS");
        Ok(json!({"capacityProvider": cp}))
    }
}
