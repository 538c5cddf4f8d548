//! Services: CreateService, UpdateService, DeleteService write the desired state (the
//! service record and its deployments); `scheduler.rs` makes the tasks match it.

use crate::common::public_view as public_service;
use crate::common::*;
use crate::idempotency::{ClientToken, Earlier};
use crate::tasks::{Placement, Rules};
use crate::unsupported::{check_service, not_supported, platform_version};
use crate::Ecs;
use berth_store::{Cond, Op};
use berth_wire::page::paginate;
use berth_wire::{ApiError, ApiResult, RequestContext};
use serde_json::{json, Value};

fn service_not_found() -> ApiError {
    ApiError::client("ServiceNotFoundException", "Service not found.")
}

impl Ecs {
    pub(crate) fn create_service(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        // A retry (same clientToken, same request) answers with the service it made.
        let token = ClientToken::of(self, ctx, "CreateService", input);
        match token.as_ref().map(ClientToken::earlier) {
            Some(Earlier::Same(made)) => {
                if let Some(r) = made["serviceKey"].as_str().and_then(|k| self.store.get(k)) {
                    return Ok(json!({"service": public_service(&r.value, false)}));
                }
            }
            Some(Earlier::Different(_)) => {
                return Err(invalid("Creation of service was not idempotent."))
            }
            _ => {}
        }
        let cluster = active_cluster(self.store.as_ref(), ctx, input, "cluster")?;
        let cluster_name = str_of(&cluster.value, "clusterName").unwrap_or_default();
        let name = str_of(input, "serviceName").unwrap_or_default();
        if !is_simple_name(name) {
            return Err(invalid("Service name must be between 1 and 255 characters: letters (uppercase and lowercase), numbers, hyphens and underscores."));
        }
        check_tags(arr_of(input, "tags"))?;
        check_service("CreateService", input)?;
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
        check_deployment_configuration(input.get("deploymentConfiguration"))?;
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
            // Last, since it may refuse a valid request as not implemented (Classic).
            self.check_load_balancers(ctx, arr_of(input, "loadBalancers"), &td.value)?;
        }
        if strategy == "DAEMON" || controller != "ECS" {
            return Err(ApiError::new(
                501,
                "NotImplemented",
                "CreateService: only the REPLICA scheduling strategy with the ECS deployment controller is implemented in Berth yet; the request was valid and no service was created.",
            ));
        }
        if matches!(placement, Placement::External | Placement::AsgProviders) {
            return Err(ApiError::new(
                501,
                "NotImplemented",
                "CreateService: services on EXTERNAL instances or Auto Scaling group capacity providers are not implemented in Berth yet; no service was created.",
            ));
        }
        let td = self.runnable_task_definition(ctx, input)?;
        let td_arn = td.value["taskDefinitionArn"].clone();
        let platform = platform_version("CreateService", input, placement == Placement::Fargate)?;
        Rules::of(input, &json!({}))?;
        let now = self.clock.now();
        let launch_type = match placement {
            Placement::Fargate if input.get("capacityProviderStrategy").is_none() => {
                json!("FARGATE")
            }
            Placement::Ec2 => json!("EC2"),
            _ => Value::Null,
        };
        let desired = input
            .get("desiredCount")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let dc = deployment_configuration(input.get("deploymentConfiguration"));
        let lbs = input.get("loadBalancers").cloned().unwrap_or(json!([]));
        let service = json!({
            "serviceArn": arn(ctx, &format!("service/{cluster_name}/{name}")),
            "serviceName": name,
            "clusterArn": cluster.value["clusterArn"],
            "loadBalancers": lbs,
            "serviceRegistries": input.get("serviceRegistries").cloned().unwrap_or(json!([])),
            "status": "ACTIVE",
            "desiredCount": desired,
            "runningCount": 0,
            "pendingCount": 0,
            "launchType": launch_type,
            "capacityProviderStrategy": input.get("capacityProviderStrategy"),
            "platformVersion": if placement == Placement::Fargate { json!(platform.as_deref().unwrap_or("LATEST")) } else { Value::Null },
            "platformFamily": if placement == Placement::Fargate { json!("Linux") } else { Value::Null },
            "taskDefinition": td_arn,
            "deploymentConfiguration": dc,
            "deployments": [new_deployment(input, &td_arn, desired, &launch_type, &lbs, now)],
            "events": [],
            "createdAt": now,
            "placementConstraints": input.get("placementConstraints").cloned().unwrap_or(json!([])),
            "placementStrategy": input.get("placementStrategy").cloned().unwrap_or(json!([])),
            "networkConfiguration": input.get("networkConfiguration"),
            "healthCheckGracePeriodSeconds": input.get("healthCheckGracePeriodSeconds"),
            "schedulingStrategy": "REPLICA",
            "deploymentController": {"type": "ECS"},
            "createdBy": format!("arn:aws:iam::{}:root", ctx.account),
            "roleArn": str_of(input, "role").map(|r| role_arn(ctx, r)),
            "enableECSManagedTags": input.get("enableECSManagedTags").cloned().unwrap_or(json!(false)),
            "propagateTags": input.get("propagateTags").cloned().unwrap_or(json!("NONE")),
            "enableExecuteCommand": input.get("enableExecuteCommand").cloned().unwrap_or(json!(false)),
            "availabilityZoneRebalancing": "DISABLED",
            "tags": input.get("tags").cloned().unwrap_or(json!([])),
        });
        let k = key(ctx, &format!("service/{cluster_name}/{name}"));
        let cond = match self.store.get(&k) {
            Some(r) => Cond::Revision(k.clone(), r.revision),
            None => Cond::Absent(k.clone()),
        };
        let mut conds = vec![cond];
        let mut ops = vec![Op::Put(k.clone(), service.clone())];
        if let Some(t) = &token {
            let (c, o) = t.record(self, json!({"serviceKey": k}));
            conds.push(c);
            ops.push(o);
        }
        self.store.txn(&conds, ops).map_err(store_err)?;
        Ok(json!({"service": public_service(&service, false)}))
    }

    pub(crate) fn update_service(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let (k, rev, mut s) = self.service_record(ctx, input)?;
        if s["status"] != "ACTIVE" {
            return Err(ApiError::client(
                "ServiceNotActiveException",
                "Service was not ACTIVE.",
            ));
        }
        if input
            .get("desiredCount")
            .and_then(Value::as_i64)
            .is_some_and(|n| n < 0)
        {
            return Err(invalid("desiredCount must be 0 or greater."));
        }
        check_deployment_configuration(input.get("deploymentConfiguration"))?;
        check_service("UpdateService", input)?;
        if let Some(t) = input
            .pointer("/deploymentController/type")
            .and_then(Value::as_str)
        {
            if t != "ECS" {
                return Err(not_supported(
                    "UpdateService",
                    &format!("deploymentController {t}"),
                    "only the ECS (rolling) deployment controller is implemented",
                ));
            }
        }
        // An empty strategy is the same as none (what IaC tools send for a launch type).
        let strategy_of = |v: &Value| v.as_array().filter(|a| !a.is_empty()).cloned();
        if input
            .get("capacityProviderStrategy")
            .is_some_and(|c| strategy_of(c) != strategy_of(&s["capacityProviderStrategy"]))
        {
            return Err(not_supported(
                "UpdateService",
                "capacityProviderStrategy",
                "a service's capacity provider strategy cannot be changed yet",
            ));
        }
        let fargate = s["launchType"] != "EC2";
        let platform = platform_version("UpdateService", input, fargate)?;
        // New placement rules apply to the tasks started from now on, as on ECS.
        Rules::of(input, &json!({}))?;
        for f in ["placementConstraints", "placementStrategy"] {
            if let Some(v) = input.get(f) {
                s[f] = v.clone();
            }
        }
        let now = self.clock.now();
        if let Some(n) = input.get("desiredCount").and_then(Value::as_i64) {
            s["desiredCount"] = json!(n);
        }
        if let Some(dc) = input.get("deploymentConfiguration") {
            let mut merged = s["deploymentConfiguration"].clone();
            for (f, v) in dc.as_object().into_iter().flatten() {
                merged[f] = v.clone();
            }
            s["deploymentConfiguration"] = deployment_configuration(Some(&merged));
        }
        for f in [
            "healthCheckGracePeriodSeconds",
            "enableExecuteCommand",
            "propagateTags",
            "enableECSManagedTags",
        ] {
            if let Some(v) = input.get(f) {
                s[f] = v.clone();
            }
        }
        let mut new_td = None;
        if input.get("taskDefinition").is_some() {
            let td = self.runnable_task_definition(ctx, input)?;
            new_td = Some(td.value["taskDefinitionArn"].clone());
        }
        let placement = if s["launchType"] == "EC2" {
            Placement::Ec2
        } else {
            Placement::Fargate
        };
        if let Some(net) = input.get("networkConfiguration") {
            let td_arn = new_td.clone().unwrap_or(s["taskDefinition"].clone());
            let td = self
                .find_task_definition(ctx, td_arn.as_str().unwrap_or_default())
                .ok_or_else(|| client("TaskDefinition not found."))?;
            self.check_network(
                ctx,
                &json!({"networkConfiguration": net}),
                &td.value,
                &placement,
            )?;
            s["networkConfiguration"] = net.clone();
        }
        // The load balancers must suit the task definition tasks will run (new or not).
        let new_lbs = input.get("loadBalancers");
        if new_lbs.is_some() || new_td.is_some() {
            let td_arn = new_td.clone().unwrap_or(s["taskDefinition"].clone());
            let td = self
                .find_task_definition(ctx, td_arn.as_str().unwrap_or_default())
                .ok_or_else(|| client("TaskDefinition not found."))?;
            let lbs = new_lbs.unwrap_or(&s["loadBalancers"]);
            self.check_load_balancers(ctx, lbs.as_array().map_or(&[], Vec::as_slice), &td.value)?;
        }
        if let Some(lbs) = new_lbs {
            s["loadBalancers"] = lbs.clone();
        }
        let force = input.get("forceNewDeployment") == Some(&json!(true));
        let changed_td = new_td.as_ref().is_some_and(|t| *t != s["taskDefinition"]);
        // A new load balancer configuration (an empty list removes them) is a new
        // deployment, as on ECS: new tasks register in the new groups, old ones leave theirs.
        let new_platform = platform
            .as_ref()
            .is_some_and(|p| s["platformVersion"] != **p);
        if let Some(p) = platform {
            s["platformVersion"] = json!(p);
        }
        if changed_td
            || force
            || new_platform
            || input.get("networkConfiguration").is_some()
            || new_lbs.is_some()
        {
            // A new PRIMARY deployment; the one before keeps running until replaced.
            let td_arn = new_td.unwrap_or(s["taskDefinition"].clone());
            for d in s["deployments"].as_array_mut().into_iter().flatten() {
                if d["status"] == "PRIMARY" {
                    d["status"] = json!("ACTIVE");
                    d["updatedAt"] = json!(now);
                }
            }
            let mut d = new_deployment(
                &s,
                &td_arn,
                s["desiredCount"].as_i64().unwrap_or(0),
                &s["launchType"],
                &s["loadBalancers"],
                now,
            );
            d["networkConfiguration"] = s["networkConfiguration"].clone();
            let mut all = vec![d];
            all.extend(s["deployments"].as_array().cloned().unwrap_or_default());
            s["deployments"] = json!(all);
            s["taskDefinition"] = td_arn;
        } else {
            let desired = s["desiredCount"].clone();
            if let Some(d) = s["deployments"]
                .as_array_mut()
                .and_then(|a| a.iter_mut().find(|d| d["status"] == "PRIMARY"))
            {
                d["desiredCount"] = desired;
                d["updatedAt"] = json!(now);
            }
        }
        self.store
            .txn(
                &[Cond::Revision(k.clone(), rev)],
                vec![Op::Put(k, s.clone())],
            )
            .map_err(store_err)?;
        Ok(json!({"service": public_service(&s, false)}))
    }

    pub(crate) fn delete_service(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let (k, rev, mut s) = self.service_record(ctx, input)?;
        let force = input.get("force") == Some(&json!(true));
        if s["desiredCount"].as_i64().unwrap_or(0) > 0 && !force {
            return Err(invalid(
                "The service cannot be stopped while it is scaled above 0.",
            ));
        }
        if s["status"] == "ACTIVE" {
            // DRAINING: the scheduler stops its tasks, then marks it INACTIVE.
            s["status"] = json!("DRAINING");
            s["desiredCount"] = json!(0);
            for d in s["deployments"].as_array_mut().into_iter().flatten() {
                d["desiredCount"] = json!(0);
            }
            self.store
                .txn(
                    &[Cond::Revision(k.clone(), rev)],
                    vec![Op::Put(k, s.clone())],
                )
                .map_err(store_err)?;
        }
        Ok(json!({"service": public_service(&s, false)}))
    }

    /// The record of the service an update or delete names (ACTIVE or DRAINING).
    fn service_record(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<(String, i64, Value)> {
        let cluster = active_cluster(self.store.as_ref(), ctx, input, "cluster")?;
        let cluster_name = str_of(&cluster.value, "clusterName").unwrap_or_default();
        let id = str_of(input, "service").unwrap_or_default();
        let name = id.rsplit('/').next().unwrap_or(id);
        let k = key(ctx, &format!("service/{cluster_name}/{name}"));
        match self.store.get(&k) {
            Some(r) if r.value["status"] != "INACTIVE" => Ok((k, r.revision, (*r.value).clone())),
            _ => Err(service_not_found()),
        }
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
                Some(r) => found.push(public_service(&r.value, with_tags)),
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
        // Every service Berth has was made by its user (CUSTOMER); none is ECS-managed.
        let ecs_managed = str_of(input, "resourceManagementType") == Some("ECS");
        let ss = str_of(input, "schedulingStrategy");
        let arns: Vec<(String, String)> = self
            .store
            .list(&key(ctx, &format!("service/{cluster_name}/")))
            .into_iter()
            .filter(|r| r.value["status"] != "INACTIVE" && !ecs_managed)
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
}

/// An IAM role as ECS records it: a name becomes the account's role ARN.
fn role_arn(ctx: &RequestContext, role: &str) -> String {
    if role.starts_with("arn:") {
        role.to_string()
    } else {
        format!("arn:aws:iam::{}:role/{role}", ctx.account)
    }
}

fn check_deployment_configuration(dc: Option<&Value>) -> ApiResult<()> {
    let Some(dc) = dc else { return Ok(()) };
    let max = dc.get("maximumPercent").and_then(Value::as_i64);
    let min = dc.get("minimumHealthyPercent").and_then(Value::as_i64);
    if let (Some(max), Some(min)) = (max, min) {
        if max < min {
            return Err(invalid(
                "maximumPercent must be greater than or equal to minimumHealthyPercent.",
            ));
        }
    }
    if max.is_some_and(|m| !(100..=200).contains(&m)) {
        return Err(invalid("maximumPercent must be between 100 and 200."));
    }
    if min.is_some_and(|m| !(0..=100).contains(&m)) {
        return Err(invalid("minimumHealthyPercent must be between 0 and 100."));
    }
    Ok(())
}

/// The deployment configuration with ECS's defaults filled in.
fn deployment_configuration(dc: Option<&Value>) -> Value {
    let dc = dc.cloned().unwrap_or(json!({}));
    let cb = dc
        .get("deploymentCircuitBreaker")
        .cloned()
        .unwrap_or(json!({}));
    let mut breaker = json!({
        "enable": cb.get("enable").cloned().unwrap_or(json!(false)),
        "rollback": cb.get("rollback").cloned().unwrap_or(json!(false)),
    });
    for f in ["resetOnHealthyTask", "thresholdConfiguration"] {
        if let Some(v) = cb.get(f).filter(|v| !v.is_null()) {
            breaker[f] = v.clone();
        }
    }
    json!({
        "deploymentCircuitBreaker": breaker,
        "maximumPercent": dc.get("maximumPercent").cloned().unwrap_or(json!(200)),
        "minimumHealthyPercent": dc.get("minimumHealthyPercent").cloned().unwrap_or(json!(100)),
    })
}

/// A new PRIMARY deployment of `td` for `desired` tasks behind `load_balancers`. Its id is
/// what its tasks carry as startedBy, as on ECS. The load balancers are the deployment's
/// own (Berth's bookkeeping, not shown): tasks of an older deployment keep theirs.
pub(crate) fn new_deployment(
    source: &Value,
    td: &Value,
    desired: i64,
    launch_type: &Value,
    load_balancers: &Value,
    now: f64,
) -> Value {
    let digits: String = uuid::Uuid::new_v4()
        .as_u128()
        .to_string()
        .chars()
        .take(19)
        .collect();
    let id = format!("ecs-svc/{digits}");
    json!({
        "id": id,
        "status": "PRIMARY",
        "taskDefinition": td,
        "desiredCount": desired,
        "pendingCount": 0,
        "runningCount": 0,
        "failedTasks": 0,
        "createdAt": now,
        "updatedAt": now,
        "launchType": launch_type,
        "capacityProviderStrategy": source.get("capacityProviderStrategy"),
        "platformVersion": if *launch_type == "FARGATE" { json!("1.4.0") } else { Value::Null },
        "networkConfiguration": source.get("networkConfiguration"),
        "rolloutState": "IN_PROGRESS",
        "rolloutStateReason": format!("ECS deployment {id} in progress."),
        "_berth": {"loadBalancers": load_balancers},
    })
}
