//! Services: the full CreateService validation; the reads and writes on services that
//! exist. The service scheduler comes with the services issue, so a valid CreateService
//! ends in a clear NotImplemented and nothing is written.

use crate::common::*;
use crate::tasks::Placement;
use crate::Ecs;
use berth_wire::page::paginate;
use berth_wire::{ApiError, ApiResult, RequestContext};
use serde_json::{json, Value};

fn service_not_found() -> ApiError {
    ApiError::client("ServiceNotFoundException", "Service not found.")
}

impl Ecs {
    pub(crate) fn create_service(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let cluster = active_cluster(self.store.as_ref(), ctx, input, "cluster")?;
        let cluster_name = str_of(&cluster.value, "clusterName").unwrap_or_default();
        let name = str_of(input, "serviceName").unwrap_or_default();
        if !is_simple_name(name) {
            return Err(invalid("Service name must be between 1 and 255 characters: letters (uppercase and lowercase), numbers, hyphens and underscores."));
        }
        check_tags(arr_of(input, "tags"))?;
        if self
            .store
            .get(&key(ctx, &format!("service/{cluster_name}/{name}")))
            .is_some_and(|r| r.value["status"] != "INACTIVE")
        {
            return Err(invalid("Creation of service was not idempotent."));
        }
        let strategy = str_of(input, "schedulingStrategy").unwrap_or("REPLICA");
        let controller = input
            .pointer("/deploymentController/type")
            .and_then(Value::as_str)
            .unwrap_or("ECS");
        let placement = self.placement(input, &cluster.value)?;
        if strategy == "DAEMON" {
            if placement == Placement::Fargate {
                return Err(invalid(
                    "The DAEMON scheduling strategy is not supported with the FARGATE launch type.",
                ));
            }
            if input.get("desiredCount").is_some() {
                return Err(invalid(
                    "The daemon scheduling strategy does not support a desired count for services.",
                ));
            }
        } else if input
            .get("desiredCount")
            .and_then(Value::as_i64)
            .is_some_and(|n| n < 0)
        {
            return Err(invalid("desiredCount must be 0 or greater."));
        }
        if controller != "EXTERNAL" {
            if input.get("taskDefinition").is_none() {
                return Err(invalid(
                    "TaskDefinition is required when the deployment controller is not EXTERNAL.",
                ));
            }
            let td = self.runnable_task_definition(ctx, input)?;
            if placement == Placement::Fargate
                && !arr_of(&td.value, "compatibilities")
                    .iter()
                    .any(|c| c == "FARGATE")
            {
                return Err(client(
                    "Task definition does not support launch_type FARGATE.",
                ));
            }
            self.check_network(ctx, input, &td.value, &placement)?;
            for lb in arr_of(input, "loadBalancers") {
                let cname = str_of(lb, "containerName").unwrap_or_default();
                let Some(c) = arr_of(&td.value, "containerDefinitions")
                    .iter()
                    .find(|c| c["name"] == cname)
                else {
                    return Err(invalid(format!(
                        "The container {cname} does not exist in the task definition."
                    )));
                };
                let port = lb.get("containerPort").and_then(Value::as_i64);
                if !arr_of(c, "portMappings")
                    .iter()
                    .any(|pm| pm.get("containerPort").and_then(Value::as_i64) == port)
                {
                    return Err(invalid(format!(
                        "The container {cname} did not have a container port {} defined.",
                        port.map(|p| p.to_string()).unwrap_or_default()
                    )));
                }
            }
        }
        if let Some(dc) = input.get("deploymentConfiguration") {
            let max = dc.get("maximumPercent").and_then(Value::as_i64);
            let min = dc.get("minimumHealthyPercent").and_then(Value::as_i64);
            if let (Some(max), Some(min)) = (max, min) {
                if max < min {
                    return Err(invalid(
                        "maximumPercent must be greater than or equal to minimumHealthyPercent.",
                    ));
                }
            }
        }
        Err(ApiError::new(
            501,
            "NotImplemented",
            "CreateService: Berth's service scheduler (and the task runtime it needs) is not built yet; the request was valid and no service was created.",
        ))
    }

    pub(crate) fn describe_services(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let cluster = active_cluster(self.store.as_ref(), ctx, input, "cluster")?;
        let cluster_name = str_of(&cluster.value, "clusterName").unwrap_or_default();
        let ids = arr_of(input, "services");
        if ids.len() > 10 {
            return Err(invalid("services cannot have more than 10 elements."));
        }
        let with_tags = include_has(input, "TAGS");
        let mut found = vec![];
        let mut failures = vec![];
        for id in ids.iter().filter_map(Value::as_str) {
            let name = if id.starts_with("arn:") {
                parse_arn(id).map(|a| a.rest.rsplit('/').next().unwrap_or_default().to_string())
            } else {
                Some(id.to_string())
            };
            match name.and_then(|n| {
                self.store
                    .get(&key(ctx, &format!("service/{cluster_name}/{n}")))
            }) {
                Some(r) => {
                    let mut s = (*r.value).clone();
                    if !with_tags {
                        s.as_object_mut().map(|o| o.remove("tags"));
                    }
                    found.push(s);
                }
                None => {
                    let a = if id.starts_with("arn:") {
                        id.to_string()
                    } else {
                        arn(ctx, &format!("service/{cluster_name}/{id}"))
                    };
                    failures.push(json!({"arn": a, "reason": "MISSING"}));
                }
            }
        }
        Ok(json!({"services": found, "failures": failures}))
    }

    pub(crate) fn list_services(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let cluster = active_cluster(self.store.as_ref(), ctx, input, "cluster")?;
        let cluster_name = str_of(&cluster.value, "clusterName").unwrap_or_default();
        let lt = str_of(input, "launchType");
        let ss = str_of(input, "schedulingStrategy");
        let arns: Vec<(String, String)> = self
            .store
            .list(&key(ctx, &format!("service/{cluster_name}/")))
            .into_iter()
            .filter(|r| r.value["status"] != "INACTIVE")
            .filter(|r| {
                lt.is_none_or(|l| r.value["launchType"] == l)
                    && ss.is_none_or(|s| r.value["schedulingStrategy"] == s)
            })
            .map(|r| {
                (
                    r.key.clone(),
                    str_of(&r.value, "serviceArn")
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        let page = paginate(arns, |(k, _)| k.clone(), input, 10, 100, INVALID)?;
        Ok(
            json!({"serviceArns": page.items.into_iter().map(|(_, a)| a).collect::<Vec<_>>(), "nextToken": page.next_token}),
        )
    }

    /// UpdateService and DeleteService on a service that does not exist.
    pub(crate) fn existing_service(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let cluster = active_cluster(self.store.as_ref(), ctx, input, "cluster")?;
        let cluster_name = str_of(&cluster.value, "clusterName").unwrap_or_default();
        let id = str_of(input, "service").unwrap_or_default();
        let name = id.rsplit('/').next().unwrap_or(id);
        match self
            .store
            .get(&key(ctx, &format!("service/{cluster_name}/{name}")))
        {
            Some(r) if r.value["status"] != "INACTIVE" => Ok((*r.value).clone()),
            _ => Err(service_not_found()),
        }
    }
}
