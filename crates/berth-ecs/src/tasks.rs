//! Tasks: RunTask, StartTask, StopTask, DescribeTasks, ListTasks. Requests are validated
//! exactly as ECS does, then the task records are written in one transaction, PROVISIONING
//! with desiredStatus RUNNING; the node runs them. FARGATE tasks take this host's capacity
//! and are never refused for size. EC2 tasks (RunTask with launchType EC2 or no launch
//! type and no strategy, and StartTask) are placed on the cluster's container instances
//! (`instances.rs`): ACTIVE ones with room for the task's CPU, memory and fixed host
//! ports, honouring distinctInstance and memberOf constraints and the placement strategy;
//! what does not fit is reported in `failures` as ECS does (RESOURCE:MEMORY, ...).
//! EXTERNAL and Auto Scaling group capacity providers answer 501 after validation.

use crate::common::*;
use crate::idempotency::{run_task_conflict, task_arns, ClientToken, Earlier};
use crate::instances::{choose, instance_id, Demand, Host, Query};
use crate::targets::deactivating;
use crate::unsupported::{check_run, platform_version};
use crate::Ecs;
use berth_store::{Cond, Op, Record};
use berth_wire::page::paginate;
use berth_wire::{ApiError, ApiResult, RequestContext};
use serde_json::{json, Value};

const FARGATE_PROVIDERS: [&str; 2] = ["FARGATE", "FARGATE_SPOT"];

/// A task as the API shows it (see `common::public_view`; a task being drained shows
/// DEACTIVATING).
fn public_task(t: &Value, with_tags: bool) -> Value {
    let mut v = crate::common::public_view(t, with_tags);
    crate::targets::show_deactivating(t, &mut v);
    v
}

/// RunTask's and StartTask's answer: the tasks (with their tags when they have some).
fn answer(tasks: &[Value], failures: Vec<Value>) -> Value {
    let tasks: Vec<Value> = tasks
        .iter()
        .map(|t| {
            let tagged = t["tags"].as_array().is_some_and(|a| !a.is_empty());
            public_task(t, tagged)
        })
        .collect();
    json!({"tasks": tasks, "failures": failures})
}

fn arns_of(tasks: &[Value]) -> Vec<&str> {
    tasks.iter().filter_map(|t| t["taskArn"].as_str()).collect()
}

fn supports_ec2(td: &Value) -> bool {
    arr_of(td, "compatibilities").iter().any(|c| c == "EC2")
}

/// One failure per instance and reason, as ECS lists them.
fn failure(failures: &mut Vec<Value>, arn: &str, reason: &str) {
    let f = json!({"arn": arn, "reason": reason});
    if !failures.contains(&f) {
        failures.push(f);
    }
}

/// A new task record placed on `h`: the EC2 launch type, its instance, what it takes from
/// it (for the instance's remaining resources), and no Fargate platform.
fn on_instance(mut task: Value, h: &Host, d: &Demand) -> Value {
    task["launchType"] = json!("EC2");
    task["containerInstanceArn"] = json!(h.arn);
    if let Some(az) = h.attribute("ecs.availability-zone").flatten() {
        task["availabilityZone"] = json!(az);
    }
    task["_berth"]["reservation"] = d.to_json();
    if let Some(o) = task.as_object_mut() {
        o.remove("platformVersion");
        o.remove("platformFamily");
        if o.get("capacityProviderName").is_some_and(Value::is_null) {
            o.remove("capacityProviderName");
        }
    }
    task
}

/// Where EC2 tasks go: RunTask's count wherever they fit, or StartTask's named instances
/// (instance ids), one task each.
enum Targets<'a> {
    Any(i64, &'a Rules),
    Named(&'a [String]),
}

/// RunTask's placement constraints (with the task definition's) and strategy.
pub(crate) struct Rules {
    distinct: bool,
    member_of: Vec<Query>,
    strategy: Vec<Value>,
}

impl Rules {
    pub(crate) fn of(input: &Value, td: &Value) -> ApiResult<Rules> {
        let constraints = arr_of(input, "placementConstraints");
        if constraints.len() > 10 {
            return Err(invalid(
                "You can specify a maximum of 10 placement constraints for a task.",
            ));
        }
        let mut rules = Rules {
            distinct: false,
            member_of: vec![],
            strategy: arr_of(input, "placementStrategy").to_vec(),
        };
        for c in constraints.iter().chain(arr_of(td, "placementConstraints")) {
            let expression = str_of(c, "expression");
            match str_of(c, "type") {
                Some("distinctInstance") => {
                    if expression.is_some() {
                        return Err(invalid("An expression cannot be specified for the distinctInstance placement constraint type."));
                    }
                    rules.distinct = true;
                }
                Some("memberOf") => {
                    let e = expression.ok_or_else(|| {
                        invalid("An expression must be specified for the memberOf placement constraint type.")
                    })?;
                    rules
                        .member_of
                        .push(Query::parse(e).map_err(|e| e.api("RunTask"))?);
                }
                _ => {
                    return Err(invalid(
                        "Placement constraint type must be distinctInstance or memberOf.",
                    ))
                }
            }
        }
        if rules.strategy.len() > 5 {
            return Err(invalid(
                "You can specify a maximum of 5 placement strategies for a task.",
            ));
        }
        for s in &rules.strategy {
            let field = str_of(s, "field");
            match (
                str_of(s, "type"),
                field.map(str::to_ascii_lowercase).as_deref(),
            ) {
                (Some("random"), None) => {}
                (Some("random"), Some(_)) => {
                    return Err(invalid(
                        "The random placement strategy does not take a field.",
                    ))
                }
                (Some("binpack"), Some("cpu" | "memory")) => {}
                (Some("binpack"), _) => {
                    return Err(invalid(
                        "The binpack placement strategy field must be cpu or memory.",
                    ))
                }
                (Some("spread"), Some(_)) => {}
                (Some("spread"), None) => {
                    return Err(invalid("The spread placement strategy requires a field."))
                }
                _ => {
                    return Err(invalid(
                        "Placement strategy type must be random, spread or binpack.",
                    ))
                }
            }
        }
        Ok(rules)
    }
}

/// The request with the task's tags as ECS gives them: the request's, then (propagateTags
/// TASK_DEFINITION) the task definition's that the request does not set, then (with
/// enableECSManagedTags) `aws:ecs:clusterName` and, for a service's task,
/// `aws:ecs:serviceName`. A service's own tags (propagateTags SERVICE) come in the
/// request its scheduler makes.
fn with_task_tags(
    input: &Value,
    td: &Value,
    cluster_name: &str,
    service: Option<&str>,
) -> ApiResult<Value> {
    let mut tags = arr_of(input, "tags").to_vec();
    match str_of(input, "propagateTags") {
        Some("TASK_DEFINITION") => {
            for t in arr_of(td, "tags") {
                if !tags.iter().any(|x| x["key"] == t["key"]) {
                    tags.push(t.clone());
                }
            }
        }
        Some("SERVICE") if service.is_none() => {
            return Err(invalid(
                "The propagateTags value SERVICE is only valid for tasks started by a service.",
            ))
        }
        _ => {}
    }
    if input.get("enableECSManagedTags") == Some(&Value::Bool(true)) {
        tags.push(json!({"key": "aws:ecs:clusterName", "value": cluster_name}));
        if let Some(name) = service {
            tags.push(json!({"key": "aws:ecs:serviceName", "value": name}));
        }
    }
    let mut input = input.clone();
    input["tags"] = json!(tags);
    Ok(input)
}

/// Where a task would run, as ECS decides it.
#[derive(Debug, PartialEq)]
pub(crate) enum Placement {
    Fargate,
    Ec2,
    External,
    /// A capacity provider strategy naming Auto Scaling group providers.
    AsgProviders,
}

impl Ecs {
    /// Launch type from the request, else its strategy, else the cluster's default strategy, else EC2.
    pub(crate) fn placement(&self, input: &Value, cluster: &Value) -> ApiResult<Placement> {
        let launch_type = str_of(input, "launchType");
        let strategy = arr_of(input, "capacityProviderStrategy");
        if launch_type.is_some() && !strategy.is_empty() {
            return Err(invalid("Specifying both a launch type and capacity provider strategy is not supported. Remove one and try again."));
        }
        if let Some(lt) = launch_type {
            return Ok(match lt {
                "FARGATE" => Placement::Fargate,
                "EXTERNAL" => Placement::External,
                "MANAGED_INSTANCES" => Placement::AsgProviders,
                _ => Placement::Ec2,
            });
        }
        let strategy = if strategy.is_empty() {
            arr_of(cluster, "defaultCapacityProviderStrategy")
        } else {
            strategy
        };
        if strategy.is_empty() {
            return Ok(Placement::Ec2);
        }
        let cluster_providers = arr_of(cluster, "capacityProviders");
        for s in strategy {
            let p = str_of(s, "capacityProvider").unwrap_or_default();
            if !cluster_providers.iter().any(|c| c == p) {
                return Err(invalid(format!(
                    "The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster. Associate the capacity provider with the cluster or specify a valid capacity provider and try again. ({p})"
                )));
            }
        }
        let all_fargate = strategy
            .iter()
            .all(|s| str_of(s, "capacityProvider").is_some_and(|p| FARGATE_PROVIDERS.contains(&p)));
        Ok(if all_fargate {
            Placement::Fargate
        } else {
            Placement::AsgProviders
        })
    }

    /// Network configuration rules shared by RunTask, StartTask and CreateService.
    pub(crate) fn check_network(
        &self,
        ctx: &RequestContext,
        input: &Value,
        td: &Value,
        placement: &Placement,
    ) -> ApiResult<()> {
        let awsvpc = td["networkMode"] == "awsvpc";
        let conf = input.pointer("/networkConfiguration/awsvpcConfiguration");
        if !awsvpc {
            if conf.is_some() {
                return Err(invalid("Network Configuration is not valid for the given networkMode of this task definition."));
            }
            return Ok(());
        }
        let Some(conf) = conf else {
            return Err(invalid(
                "Network Configuration must be provided when networkMode 'awsvpc' is specified.",
            ));
        };
        let subnets: Vec<String> = arr_of(conf, "subnets")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        if subnets.is_empty() {
            return Err(invalid("subnets can not be empty."));
        }
        if subnets.len() > 16 {
            return Err(invalid("At most 16 subnets can be specified."));
        }
        let groups: Vec<String> = arr_of(conf, "securityGroups")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        if groups.len() > 5 {
            return Err(invalid("At most 5 security groups can be specified."));
        }
        if str_of(conf, "assignPublicIp") == Some("ENABLED") && *placement != Placement::Fargate {
            return Err(invalid(
                "Assign public IP is not supported for this launch type.",
            ));
        }
        berth_ec2::check_awsvpc(
            self.store.as_ref(),
            &ctx.account,
            &ctx.region,
            &subnets,
            &groups,
        )
    }

    /// containerOverrides must name containers of the task definition; task-level sizes must fit the launch type.
    fn check_overrides(&self, input: &Value, td: &Value, placement: &Placement) -> ApiResult<()> {
        let Some(ov) = input.get("overrides") else {
            return Ok(());
        };
        for co in arr_of(ov, "containerOverrides") {
            let name = str_of(co, "name").unwrap_or_default();
            if !arr_of(td, "containerDefinitions")
                .iter()
                .any(|c| c["name"] == name)
            {
                return Err(invalid(format!(
                    "Override for container named {name} is not a container in the TaskDefinition."
                )));
            }
            for f in ["cpu", "memory", "memoryReservation"] {
                if co.get(f).and_then(Value::as_i64).is_some_and(|v| v < 0) {
                    return Err(invalid(format!(
                        "Invalid '{f}' override for container {name}."
                    )));
                }
            }
            if co
                .get("memory")
                .and_then(Value::as_i64)
                .is_some_and(|m| m < 6)
            {
                return Err(invalid(format!(
                    "Invalid 'memory' override for container {name}: the minimum is 6 MiB."
                )));
            }
        }
        if *placement == Placement::Fargate
            && (ov.get("cpu").is_some() || ov.get("memory").is_some())
        {
            let cpu_s = str_of(ov, "cpu").or(str_of(td, "cpu")).unwrap_or_default();
            let mem_s = str_of(ov, "memory")
                .or(str_of(td, "memory"))
                .unwrap_or_default();
            let cpu = crate::taskdef::parse_cpu(cpu_s);
            let mem = crate::taskdef::parse_memory(mem_s);
            if !cpu
                .zip(mem)
                .is_some_and(|(c, m)| crate::taskdef::fargate_pair_valid(c, m))
            {
                return Err(invalid(format!("No Fargate configuration exists for given values: {cpu_s} CPU, {mem_s} memory.")));
            }
        }
        Ok(())
    }

    /// The task definition a run request names; INACTIVE revisions cannot start new tasks.
    pub(crate) fn runnable_task_definition(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Record> {
        let id = str_of(input, "taskDefinition").unwrap_or_default();
        let r = self
            .find_task_definition(ctx, id)
            .ok_or_else(|| client("TaskDefinition not found."))?;
        if r.value["status"] != "ACTIVE" {
            return Err(client("TaskDefinition is inactive"));
        }
        Ok(r)
    }

    pub(crate) fn run_task(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        self.run_task_for(ctx, input, None)
    }

    /// RunTask, for a caller or for `service`'s scheduler (whose tasks carry its name in
    /// their ECS managed tags).
    pub(crate) fn run_task_for(
        &self,
        ctx: &RequestContext,
        input: &Value,
        service: Option<&str>,
    ) -> ApiResult<Value> {
        // A retry (same clientToken, same request) answers with the tasks it made.
        let token = ClientToken::of(self, ctx, "RunTask", input);
        match token.as_ref().map(ClientToken::earlier) {
            Some(Earlier::Same(made)) => {
                let failures = made["failures"].as_array().cloned().unwrap_or_default();
                return Ok(answer(&self.tasks_by_arn(&task_arns(&made)), failures));
            }
            Some(Earlier::Different(made)) => return Err(run_task_conflict(&task_arns(&made))),
            _ => {}
        }
        let cluster = active_cluster(self.store.as_ref(), ctx, input, "cluster")?;
        let count = input.get("count").and_then(Value::as_i64).unwrap_or(1);
        if !(1..=10).contains(&count) {
            return Err(invalid("count must be between 1 and 10."));
        }
        check_tags(arr_of(input, "tags"))?;
        if str_of(input, "group").is_some_and(|g| g.len() > 255) {
            return Err(invalid("group must be 255 characters or fewer."));
        }
        if str_of(input, "startedBy").is_some_and(|s| s.len() > 128) {
            return Err(invalid("startedBy must be 128 characters or fewer."));
        }
        check_run("RunTask", input)?;
        let placement = self.placement(input, &cluster.value)?;
        let td = self.runnable_task_definition(ctx, input)?;
        platform_version("RunTask", input, placement == Placement::Fargate)?;
        let cluster_name = str_of(&cluster.value, "clusterName").unwrap_or_default();
        let input = &with_task_tags(input, &td.value, cluster_name, service)?;
        if placement == Placement::Fargate
            && !arr_of(&td.value, "compatibilities")
                .iter()
                .any(|c| c == "FARGATE")
        {
            return Err(client(
                "Task definition does not support launch_type FARGATE.",
            ));
        }
        if placement == Placement::Ec2 && !supports_ec2(&td.value) {
            return Err(client("Task definition does not support launch_type EC2."));
        }
        self.check_overrides(input, &td.value, &placement)?;
        self.check_network(ctx, input, &td.value, &placement)?;
        match placement {
            Placement::Ec2 => {
                let rules = Rules::of(input, &td.value)?;
                self.place_on_instances(
                    ctx,
                    input,
                    &cluster.value,
                    &td.value,
                    Targets::Any(count, &rules),
                    token.as_ref(),
                )
            }
            Placement::External | Placement::AsgProviders => {
                let any_instance = self
                    .store
                    .list(&key(ctx, &format!("container-instance/{cluster_name}/")))
                    .iter()
                    .any(|r| r.value["status"] == "ACTIVE");
                if !any_instance {
                    return Err(invalid(
                        "No Container Instances were found in your cluster.",
                    ));
                }
                Err(ApiError::new(501, "NotImplemented", "RunTask: placing tasks on EXTERNAL instances or through Auto Scaling group capacity providers is not implemented in Berth yet; the request was valid and no task was created."))
            }
            Placement::Fargate => {
                // Fargate capacity is this host's: every task is placed, none is refused
                // for size. The node picks the records up and runs them.
                let mut tasks = vec![];
                let mut ops = vec![];
                let mut conds = vec![];
                for _ in 0..count {
                    let task = self.new_task(ctx, input, &cluster.value, &td.value);
                    let id = str_of(&task, "taskArn")
                        .and_then(|a| a.rsplit('/').next())
                        .unwrap_or_default()
                        .to_string();
                    let k = key(ctx, &format!("task/{cluster_name}/{id}"));
                    conds.push(Cond::Absent(k.clone()));
                    ops.push(Op::Put(k, task.clone()));
                    tasks.push(task);
                }
                if let Some(t) = &token {
                    let (c, o) =
                        t.record(self, json!({"taskArns": arns_of(&tasks), "failures": []}));
                    conds.push(c);
                    ops.push(o);
                }
                self.store.txn(&conds, ops).map_err(store_err)?;
                Ok(answer(&tasks, vec![]))
            }
        }
    }

    /// Place EC2 tasks on the cluster's container instances and write them, with the
    /// instances they went to, in one transaction (an instance's version moves with every
    /// placement, so concurrent placements and state changes conflict and are redone).
    fn place_on_instances(
        &self,
        ctx: &RequestContext,
        input: &Value,
        cluster: &Value,
        td: &Value,
        targets: Targets,
        token: Option<&ClientToken>,
    ) -> ApiResult<Value> {
        let cluster_name = str_of(cluster, "clusterName").unwrap_or_default();
        let busy = || {
            busy("The cluster's container instances are being modified concurrently; try again.")
        };
        berth_toolkit::commit(self.store.as_ref(), busy, || {
            let mut hosts = self.hosts(ctx, cluster_name);
            let mut failures = vec![];
            let mut tasks = vec![];
            match &targets {
                Targets::Any(count, rules) => {
                    if !hosts.iter().any(|h| h.status == "ACTIVE") {
                        return Err(invalid(
                            "No Container Instances were found in your cluster.",
                        ));
                    }
                    for _ in 0..*count {
                        let task = self.new_task(ctx, input, cluster, td);
                        let demand = Demand::of(&task, td);
                        let group = str_of(&task, "group").unwrap_or_default().to_string();
                        let mut fit = vec![];
                        for (i, h) in hosts.iter().enumerate() {
                            if h.status != "ACTIVE" {
                                continue;
                            }
                            let refused = if !rules.member_of.iter().all(|q| q.matches(h)) {
                                Some("MemberOf placement constraint unsatisfied.")
                            } else if rules.distinct && h.groups.contains(&group) {
                                Some("DistinctInstance placement constraint unsatisfied.")
                            } else {
                                h.lacks(&demand)
                            };
                            match refused {
                                Some(reason) => failure(&mut failures, &h.arn, reason),
                                None => fit.push(i),
                            }
                        }
                        if let Some(i) = choose(&hosts, &fit, &rules.strategy) {
                            hosts[i].place(&demand, &group);
                            tasks.push(on_instance(task, &hosts[i], &demand));
                        }
                    }
                }
                Targets::Named(ids) => {
                    for id in ids.iter() {
                        let Some(i) = hosts.iter().position(|h| &h.id == id) else {
                            return Err(invalid(format!(
                                "Container instance {id} was not found in the cluster."
                            )));
                        };
                        let task = self.new_task(ctx, input, cluster, td);
                        let demand = Demand::of(&task, td);
                        let h = &hosts[i];
                        if h.status != "ACTIVE" {
                            // INACTIVE (deregistered) or DRAINING: no new tasks.
                            failure(&mut failures, &h.arn, &h.status.clone());
                            continue;
                        }
                        if let Some(reason) = h.lacks(&demand) {
                            failure(&mut failures, &h.arn, reason);
                            continue;
                        }
                        let group = str_of(&task, "group").unwrap_or_default().to_string();
                        hosts[i].place(&demand, &group);
                        tasks.push(on_instance(task, &hosts[i], &demand));
                    }
                }
            }
            if tasks.is_empty() {
                return Ok(Plan::new(json!({"tasks": [], "failures": failures})));
            }
            let mut conds = vec![];
            let mut ops = vec![];
            for t in &tasks {
                let id = str_of(t, "taskArn")
                    .and_then(|a| a.rsplit('/').next())
                    .unwrap_or_default();
                let k = key(ctx, &format!("task/{cluster_name}/{id}"));
                conds.push(Cond::Absent(k.clone()));
                ops.push(Op::Put(k, t.clone()));
            }
            for h in hosts.iter().filter(|h| h.placed > 0) {
                conds.push(Cond::Revision(h.record.key.clone(), h.record.revision));
                ops.push(Op::Put(h.record.key.clone(), h.bumped()));
            }
            if let Some(t) = token {
                let made = json!({"taskArns": arns_of(&tasks), "failures": failures});
                let (c, o) = t.record(self, made);
                conds.push(c);
                ops.push(o);
            }
            Ok(Plan {
                conds,
                ops,
                result: answer(&tasks, failures),
            })
        })
    }

    /// A new task record as RunTask answers it: PROVISIONING, desired RUNNING.
    fn new_task(&self, ctx: &RequestContext, input: &Value, cluster: &Value, td: &Value) -> Value {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let cluster_name = str_of(cluster, "clusterName").unwrap_or_default();
        let task_arn = arn(ctx, &format!("task/{cluster_name}/{id}"));
        let overrides = input.get("overrides").cloned().unwrap_or_else(
            || json!({"containerOverrides": [], "inferenceAcceleratorOverrides": []}),
        );
        let containers: Vec<Value> = arr_of(td, "containerDefinitions")
            .iter()
            .map(|c| {
                let name = str_of(c, "name").unwrap_or_default();
                let ov = arr_of(&overrides, "containerOverrides")
                    .iter()
                    .find(|o| o["name"] == name)
                    .cloned()
                    .unwrap_or(Value::Null);
                let mut out = json!({
                    "containerArn": arn(ctx, &format!("container/{cluster_name}/{id}/{}", uuid::Uuid::new_v4())),
                    "taskArn": task_arn,
                    "name": name,
                    "image": c["image"],
                    "lastStatus": "PENDING",
                    "networkInterfaces": [],
                    "healthStatus": "UNKNOWN",
                    "cpu": ov.get("cpu").or(c.get("cpu")).map(|v| v.to_string()).unwrap_or_else(|| "0".into()),
                });
                for (f, src) in [("memory", "memory"), ("memoryReservation", "memoryReservation")] {
                    if let Some(v) = ov.get(src).or(c.get(src)) {
                        out[f] = json!(v.to_string());
                    }
                }
                out
            })
            .collect();
        let launch_type = if str_of(input, "launchType").is_some() {
            json!("FARGATE")
        } else {
            Value::Null
        };
        let strategy = input.get("capacityProviderStrategy").cloned();
        let capacity_provider = strategy
            .as_ref()
            .and_then(|s| s.get(0))
            .and_then(|s| s.get("capacityProvider"))
            .cloned()
            .unwrap_or(Value::Null);
        let awsvpc = td["networkMode"] == "awsvpc";
        // The subnets' ranges, so the node can lease an address without asking EC2.
        let subnets: Vec<berth_model::ecs::TaskSubnet> = input
            .pointer("/networkConfiguration/awsvpcConfiguration/subnets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|id| {
                berth_ec2::subnet_info(self.store.as_ref(), &ctx.account, &ctx.region, id)
            })
            .map(|s| berth_model::ecs::TaskSubnet {
                subnet_id: s.subnet_id,
                cidr_block: s.cidr_block,
                availability_zone: s.availability_zone,
            })
            .collect();
        json!({
            "taskArn": task_arn,
            "clusterArn": cluster["clusterArn"],
            "taskDefinitionArn": td["taskDefinitionArn"],
            "overrides": overrides,
            "lastStatus": "PROVISIONING",
            "desiredStatus": "RUNNING",
            "cpu": str_of(&overrides, "cpu").or(str_of(td, "cpu")),
            "memory": str_of(&overrides, "memory").or(str_of(td, "memory")),
            "containers": containers,
            "startedBy": input.get("startedBy"),
            "group": str_of(input, "group").map(str::to_string).unwrap_or_else(|| format!("family:{}", str_of(td, "family").unwrap_or_default())),
            "version": 1,
            "createdAt": self.clock.now(),
            "launchType": launch_type,
            "capacityProviderName": capacity_provider,
            "platformVersion": "1.4.0",
            "platformFamily": "Linux",
            "availabilityZone": format!("{}a", ctx.region),
            "connectivity": "CONNECTING",
            "attachments": if awsvpc { json!([{"id": uuid::Uuid::new_v4().to_string(), "type": "ElasticNetworkInterface", "status": "PRECREATED", "details": []}]) } else { json!([]) },
            "enableExecuteCommand": input.get("enableExecuteCommand").cloned().unwrap_or(json!(false)),
            "ephemeralStorage": td.get("ephemeralStorage").cloned().unwrap_or(json!({"sizeInGiB": 20})),
            "tags": input.get("tags").cloned().unwrap_or(json!([])),
            "healthStatus": "UNKNOWN",
            // What the node needs beyond the ECS shape lives under a Berth-only key
            // that DescribeTasks never returns.
            "_berth": {
                "networkConfiguration": input.get("networkConfiguration"),
                "subnets": subnets,
                "definition": berth_model::ecs::launch_definition(td),
            },
        })
    }

    pub(crate) fn start_task(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let cluster = active_cluster(self.store.as_ref(), ctx, input, "cluster")?;
        let cluster_name = str_of(&cluster.value, "clusterName")
            .unwrap_or_default()
            .to_string();
        let instances = arr_of(input, "containerInstances");
        if instances.is_empty() || instances.len() > 10 {
            return Err(invalid(
                "containerInstances must list between 1 and 10 container instances.",
            ));
        }
        check_tags(arr_of(input, "tags"))?;
        if str_of(input, "group").is_some_and(|g| g.len() > 255) {
            return Err(invalid("group must be 255 characters or fewer."));
        }
        if str_of(input, "startedBy").is_some_and(|s| s.len() > 128) {
            return Err(invalid("startedBy must be 128 characters or fewer."));
        }
        check_run("StartTask", input)?;
        let td = self.runnable_task_definition(ctx, input)?;
        if !supports_ec2(&td.value) {
            return Err(client("Task definition does not support launch_type EC2."));
        }
        let input = &with_task_tags(input, &td.value, &cluster_name, None)?;
        self.check_overrides(input, &td.value, &Placement::Ec2)?;
        self.check_network(ctx, input, &td.value, &Placement::Ec2)?;
        let mut ids = vec![];
        for i in instances.iter().filter_map(Value::as_str) {
            let id = instance_id(ctx, i);
            let exists = id.as_ref().is_some_and(|id| {
                self.store
                    .get(&key(
                        ctx,
                        &format!("container-instance/{cluster_name}/{id}"),
                    ))
                    .is_some()
            });
            match id {
                Some(id) if exists => ids.push(id),
                _ => {
                    return Err(invalid(format!(
                        "Container instance {i} was not found in the cluster."
                    )))
                }
            }
        }
        self.place_on_instances(
            ctx,
            input,
            &cluster.value,
            &td.value,
            Targets::Named(&ids),
            None,
        )
    }

    fn find_task(&self, ctx: &RequestContext, cluster: &str, id: &str) -> Option<Record> {
        let task_id = if id.starts_with("arn:") {
            let a = parse_arn(id)?;
            if a.kind != "task" || a.region != ctx.region || a.account != ctx.account {
                return None;
            }
            a.rest.rsplit('/').next()?.to_string()
        } else {
            id.to_string()
        };
        self.store
            .get(&key(ctx, &format!("task/{cluster}/{task_id}")))
    }

    pub(crate) fn stop_task(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let cluster = active_cluster(self.store.as_ref(), ctx, input, "cluster")?;
        let cluster_name = str_of(&cluster.value, "clusterName").unwrap_or_default();
        let id = str_of(input, "task").unwrap_or_default();
        let r = self
            .find_task(ctx, cluster_name, id)
            .ok_or_else(|| invalid("The referenced task was not found."))?;
        let mut task = (*r.value).clone();
        if task["desiredStatus"] != "STOPPED" {
            // Desired state only: the node stops the containers and records the rest.
            task["desiredStatus"] = json!("STOPPED");
            task["stopCode"] = json!("UserInitiated");
            task["stoppedReason"] =
                json!(str_of(input, "reason").unwrap_or("Task stopped by user"));
            task["stoppingAt"] = json!(self.clock.now());
            self.store
                .txn(
                    &[Cond::Revision(r.key.clone(), r.revision)],
                    vec![Op::Put(r.key.clone(), task.clone())],
                )
                .map_err(store_err)?;
        }
        Ok(json!({"task": public_task(&task, false)}))
    }

    pub(crate) fn describe_tasks(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let cluster = active_cluster(self.store.as_ref(), ctx, input, "cluster")?;
        let cluster_name = str_of(&cluster.value, "clusterName").unwrap_or_default();
        let ids = arr_of(input, "tasks");
        if ids.len() > 100 {
            return Err(invalid("Tasks cannot have more than 100 elements."));
        }
        let with_tags = include_has(input, "TAGS");
        let mut tasks = vec![];
        let mut failures = vec![];
        for id in ids.iter().filter_map(Value::as_str) {
            match self.find_task(ctx, cluster_name, id) {
                Some(r) => tasks.push(public_task(&r.value, with_tags)),
                None => {
                    let a = if id.starts_with("arn:") {
                        id.to_string()
                    } else {
                        arn(ctx, &format!("task/{cluster_name}/{id}"))
                    };
                    failures.push(json!({"arn": a, "reason": "MISSING"}));
                }
            }
        }
        Ok(json!({"tasks": tasks, "failures": failures}))
    }

    pub(crate) fn list_tasks(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let cluster = active_cluster(self.store.as_ref(), ctx, input, "cluster")?;
        let cluster_name = str_of(&cluster.value, "clusterName").unwrap_or_default();
        if input.get("serviceName").is_some() && input.get("startedBy").is_some() {
            return Err(invalid(
                "startedBy and serviceName cannot both be specified.",
            ));
        }
        let desired = str_of(input, "desiredStatus").unwrap_or("RUNNING");
        let family = str_of(input, "family");
        let started_by = str_of(input, "startedBy");
        let service = str_of(input, "serviceName")
            .map(|s| format!("ecs-svc/{}", s.rsplit('/').next().unwrap_or(s)));
        let launch_type = str_of(input, "launchType");
        let instance = str_of(input, "containerInstance");
        // No task belongs to a daemon: Berth has none (CreateDaemon is not implemented).
        let daemon = input.get("daemonName").is_some();
        let arns: Vec<(String, String)> = self
            .store
            .list(&key(ctx, &format!("task/{cluster_name}/")))
            .into_iter()
            .filter(|r| {
                let t = &r.value;
                let desired_ok = match desired {
                    // PENDING and RUNNING tasks both have desiredStatus RUNNING; one being
                    // drained shows STOPPED.
                    "STOPPED" => t["desiredStatus"] == "STOPPED" || deactivating(t),
                    "PENDING" => t["desiredStatus"] == "RUNNING" && t["lastStatus"] == "PENDING",
                    _ => t["desiredStatus"] == "RUNNING" && !deactivating(t),
                };
                let td_family = str_of(t, "taskDefinitionArn")
                    .and_then(|a| a.rsplit('/').next())
                    .and_then(|f| f.rsplit_once(':'))
                    .map(|(f, _)| f);
                desired_ok
                    && !daemon
                    && family.is_none_or(|f| td_family == Some(f))
                    && started_by.is_none_or(|s| t["startedBy"] == s)
                    && service.as_deref().is_none_or(|s| {
                        t["group"] == format!("service:{}", s.trim_start_matches("ecs-svc/"))
                    })
                    && launch_type.is_none_or(|l| t["launchType"] == l)
                    && instance.is_none_or(|i| {
                        str_of(t, "containerInstanceArn")
                            .is_some_and(|a| a == i || a.ends_with(&format!("/{i}")))
                    })
            })
            .map(|r| {
                (
                    r.key.clone(),
                    str_of(&r.value, "taskArn").unwrap_or_default().to_string(),
                )
            })
            .collect();
        let page = paginate(arns, |(k, _)| k.clone(), input, 100, 100, INVALID)?;
        Ok(
            json!({"taskArns": page.items.into_iter().map(|(_, a)| a).collect::<Vec<_>>(), "nextToken": page.next_token}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instances::tests::register;
    use berth_wire::{Clock, Service};
    use std::sync::Arc;

    fn setup() -> (tempfile::TempDir, Arc<Ecs>, RequestContext) {
        let dir = tempfile::tempdir().unwrap();
        let store = berth_store::SqliteStore::open(&dir.path().join("db")).unwrap();
        let ecs = Arc::new(Ecs::new(Arc::new(store), Clock::default()));
        let ctx = RequestContext {
            account: "000000000000".into(),
            region: "us-east-1".into(),
            request_id: "r".into(),
        };
        ecs.call(&ctx, "CreateCluster", json!({"clusterName": "c1"}))
            .unwrap();
        (dir, ecs, ctx)
    }

    /// A bridge-mode family with one container of `memory` MiB and 256 CPU units,
    /// publishing `host_port` when given.
    fn family(ecs: &Ecs, ctx: &RequestContext, name: &str, memory: i64, host_port: Option<i64>) {
        let mut c =
            json!({"name": "app", "image": "localhost:1/none:v1", "memory": memory, "cpu": 256});
        if let Some(p) = host_port {
            c["portMappings"] = json!([{"containerPort": 80, "hostPort": p}]);
        }
        ecs.call(
            ctx,
            "RegisterTaskDefinition",
            json!({"family": name, "networkMode": "bridge", "containerDefinitions": [c]}),
        )
        .unwrap();
    }

    fn run(ecs: &Ecs, ctx: &RequestContext, input: Value) -> ApiResult<Value> {
        let mut input = input;
        input["cluster"] = json!("c1");
        ecs.call(ctx, "RunTask", input)
    }

    fn instance(ecs: &Ecs, ctx: &RequestContext, arn: &str) -> Value {
        ecs.call(
            ctx,
            "DescribeContainerInstances",
            json!({"cluster": "c1", "containerInstances": [arn]}),
        )
        .unwrap()["containerInstances"][0]
            .clone()
    }

    fn resource<'a>(ci: &'a Value, which: &str, name: &str) -> &'a Value {
        ci[which]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()
    }

    fn stop_all(ecs: &Ecs, ctx: &RequestContext) {
        for r in ecs.store.list(&key(ctx, "task/c1/")) {
            let mut t = (*r.value).clone();
            t["lastStatus"] = json!("STOPPED");
            t["desiredStatus"] = json!("STOPPED");
            ecs.store.put(&r.key, t).unwrap();
        }
    }

    #[test]
    fn ec2_tasks_take_resources_and_ports() {
        let (_d, ecs, ctx) = setup();
        let ci = register(&ecs, &ctx, 1024, 1024);
        family(&ecs, &ctx, "web", 512, Some(8080));
        family(&ecs, &ctx, "big", 600, None);
        let out = run(
            &ecs,
            &ctx,
            json!({"taskDefinition": "web", "launchType": "EC2"}),
        )
        .unwrap();
        let task = &out["tasks"][0];
        assert_eq!(task["launchType"], "EC2");
        assert_eq!(task["containerInstanceArn"], json!(ci));
        assert!(task.get("platformVersion").is_none());
        assert!(task.get("_berth").is_none());
        assert_eq!(task["attachments"], json!([]));
        assert_eq!(out["failures"], json!([]));

        let desc = instance(&ecs, &ctx, &ci);
        assert_eq!(
            resource(&desc, "remainingResources", "MEMORY")["integerValue"],
            512
        );
        assert_eq!(
            resource(&desc, "remainingResources", "CPU")["integerValue"],
            768
        );
        assert!(
            resource(&desc, "remainingResources", "PORTS")["stringSetValue"]
                .as_array()
                .unwrap()
                .contains(&json!("8080"))
        );
        assert_eq!(
            resource(&desc, "registeredResources", "MEMORY")["integerValue"],
            1024
        );
        assert_eq!(desc["pendingTasksCount"], 1);
        assert_eq!(desc["version"], 2);

        // The port is taken; memory would fit.
        let out = run(&ecs, &ctx, json!({"taskDefinition": "web"})).unwrap();
        assert_eq!(out["tasks"], json!([]));
        assert_eq!(
            out["failures"],
            json!([{"arn": ci, "reason": "RESOURCE:PORTS"}])
        );
        let out = run(
            &ecs,
            &ctx,
            json!({"taskDefinition": "big", "launchType": "EC2"}),
        )
        .unwrap();
        assert_eq!(
            out["failures"],
            json!([{"arn": ci, "reason": "RESOURCE:MEMORY"}])
        );
        assert_eq!(ecs.store.list(&key(&ctx, "task/c1/")).len(), 1);

        // Deregistration waits for the tasks to stop, unless forced.
        let err = ecs
            .call(
                &ctx,
                "DeregisterContainerInstance",
                json!({"cluster": "c1", "containerInstance": ci}),
            )
            .unwrap_err();
        assert_eq!(err.code, "InvalidParameterException");
        assert_eq!(err.message, "Found running tasks on the instance.");
        stop_all(&ecs, &ctx);
        let desc = instance(&ecs, &ctx, &ci);
        assert_eq!(
            resource(&desc, "remainingResources", "MEMORY")["integerValue"],
            1024
        );
        let out = run(&ecs, &ctx, json!({"taskDefinition": "big"})).unwrap();
        assert_eq!(out["tasks"].as_array().unwrap().len(), 1);
        ecs.call(
            &ctx,
            "DeregisterContainerInstance",
            json!({"cluster": "c1", "containerInstance": ci, "force": true}),
        )
        .unwrap();
        let err = run(&ecs, &ctx, json!({"taskDefinition": "big"})).unwrap_err();
        assert_eq!(
            err.message,
            "No Container Instances were found in your cluster."
        );
    }

    #[test]
    fn count_stops_at_capacity() {
        let (_d, ecs, ctx) = setup();
        let ci = register(&ecs, &ctx, 4096, 1000);
        family(&ecs, &ctx, "w", 300, None);
        let out = run(&ecs, &ctx, json!({"taskDefinition": "w", "count": 5})).unwrap();
        assert_eq!(out["tasks"].as_array().unwrap().len(), 3);
        assert_eq!(
            out["failures"],
            json!([{"arn": ci, "reason": "RESOURCE:MEMORY"}])
        );
        let listed = ecs
            .call(
                &ctx,
                "ListTasks",
                json!({"cluster": "c1", "containerInstance": ci}),
            )
            .unwrap();
        assert_eq!(listed["taskArns"].as_array().unwrap().len(), 3);
        let desc = instance(&ecs, &ctx, &ci);
        assert_eq!(
            resource(&desc, "remainingResources", "MEMORY")["integerValue"],
            100
        );
        assert_eq!(desc["pendingTasksCount"], 3);
    }

    #[test]
    fn draining_and_start_task() {
        let (_d, ecs, ctx) = setup();
        let a = register(&ecs, &ctx, 1024, 1024);
        let b = register(&ecs, &ctx, 1024, 1024);
        family(&ecs, &ctx, "w", 512, Some(9000));
        ecs.call(
            &ctx,
            "UpdateContainerInstancesState",
            json!({"cluster": "c1", "containerInstances": [a], "status": "DRAINING"}),
        )
        .unwrap();
        // Only b takes tasks now; its port is then taken.
        let out = run(&ecs, &ctx, json!({"taskDefinition": "w", "count": 2})).unwrap();
        assert_eq!(out["tasks"].as_array().unwrap().len(), 1);
        assert_eq!(out["tasks"][0]["containerInstanceArn"], json!(b));
        assert_eq!(
            out["failures"],
            json!([{"arn": b, "reason": "RESOURCE:PORTS"}])
        );
        // StartTask: one task per named instance; a draining one refuses.
        let out = ecs
            .call(
                &ctx,
                "StartTask",
                json!({"cluster": "c1", "taskDefinition": "w", "containerInstances": [a, b]}),
            )
            .unwrap();
        assert_eq!(out["tasks"], json!([]));
        assert_eq!(
            out["failures"],
            json!([{"arn": a, "reason": "DRAINING"}, {"arn": b, "reason": "RESOURCE:PORTS"}])
        );
        ecs.call(
            &ctx,
            "UpdateContainerInstancesState",
            json!({"cluster": "c1", "containerInstances": [a], "status": "ACTIVE"}),
        )
        .unwrap();
        let out = ecs
            .call(
                &ctx,
                "StartTask",
                json!({"cluster": "c1", "taskDefinition": "w", "containerInstances": [a], "startedBy": "me"}),
            )
            .unwrap();
        assert_eq!(out["tasks"][0]["containerInstanceArn"], json!(a));
        assert_eq!(out["tasks"][0]["startedBy"], "me");
        assert_eq!(out["tasks"][0]["launchType"], "EC2");
        let err = ecs
            .call(
                &ctx,
                "StartTask",
                json!({"cluster": "c1", "taskDefinition": "w", "containerInstances": ["ghost"]}),
            )
            .unwrap_err();
        assert_eq!(err.code, "InvalidParameterException");
    }

    #[test]
    fn constraints_and_strategy() {
        let (_d, ecs, ctx) = setup();
        let a = register(&ecs, &ctx, 4096, 4096);
        let b = register(&ecs, &ctx, 4096, 4096);
        let b_id = b.rsplit('/').next().unwrap();
        ecs.call(
            &ctx,
            "PutAttributes",
            json!({"cluster": "c1", "attributes": [{"name": "tier", "value": "gpu", "targetId": b_id}]}),
        )
        .unwrap();
        family(&ecs, &ctx, "w", 256, None);
        let out = run(
            &ecs,
            &ctx,
            json!({"taskDefinition": "w", "count": 2, "placementConstraints": [{"type": "memberOf", "expression": "attribute:tier == gpu"}]}),
        )
        .unwrap();
        let on: Vec<&Value> = out["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| &t["containerInstanceArn"])
            .collect();
        assert_eq!(on, vec![&json!(b), &json!(b)]);
        assert_eq!(
            out["failures"],
            json!([{"arn": a, "reason": "MemberOf placement constraint unsatisfied."}])
        );
        // Spread by default: the next task goes to the emptier host.
        let out = run(&ecs, &ctx, json!({"taskDefinition": "w"})).unwrap();
        assert_eq!(out["tasks"][0]["containerInstanceArn"], json!(a));
        // binpack memory: the fuller host (b).
        let out = run(
            &ecs,
            &ctx,
            json!({"taskDefinition": "w", "placementStrategy": [{"type": "binpack", "field": "memory"}]}),
        )
        .unwrap();
        assert_eq!(out["tasks"][0]["containerInstanceArn"], json!(b));
        // distinctInstance: one task of the group per host.
        let out = run(
            &ecs,
            &ctx,
            json!({"taskDefinition": "w", "count": 3, "group": "solo", "placementConstraints": [{"type": "distinctInstance"}]}),
        )
        .unwrap();
        assert_eq!(out["tasks"].as_array().unwrap().len(), 2);
        assert_eq!(out["failures"].as_array().unwrap().len(), 2);
        for (input, code) in [
            (
                json!({"taskDefinition": "w", "placementConstraints": [{"type": "distinctInstance", "expression": "attribute:a exists"}]}),
                "InvalidParameterException",
            ),
            (
                json!({"taskDefinition": "w", "placementConstraints": [{"type": "memberOf"}]}),
                "InvalidParameterException",
            ),
            (
                json!({"taskDefinition": "w", "placementConstraints": [{"type": "memberOf", "expression": "task:group == x"}]}),
                "NotImplemented",
            ),
            (
                json!({"taskDefinition": "w", "placementStrategy": [{"type": "binpack", "field": "ports"}]}),
                "InvalidParameterException",
            ),
        ] {
            assert_eq!(run(&ecs, &ctx, input).unwrap_err().code, code);
        }
    }

    #[test]
    fn concurrent_placements_do_not_overcommit() {
        let (_d, ecs, ctx) = setup();
        let ci = register(&ecs, &ctx, 4096, 1000);
        family(&ecs, &ctx, "w", 100, None);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (ecs, ctx) = (ecs.clone(), ctx.clone());
                std::thread::spawn(move || {
                    let out = run(&ecs, &ctx, json!({"taskDefinition": "w", "count": 2})).unwrap();
                    out["tasks"].as_array().unwrap().len()
                })
            })
            .collect();
        let placed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(placed, 10);
        let desc = instance(&ecs, &ctx, &ci);
        assert_eq!(
            resource(&desc, "remainingResources", "MEMORY")["integerValue"],
            0
        );
    }

    /// propagateTags and enableECSManagedTags act: the task carries the tags ECS gives it.
    #[test]
    fn tasks_get_propagated_and_managed_tags() {
        let (_d, ecs, ctx) = setup();
        register(&ecs, &ctx, 1024, 1024);
        ecs.call(
            &ctx,
            "RegisterTaskDefinition",
            json!({"family": "t", "networkMode": "bridge", "tags": [{"key": "team", "value": "a"}, {"key": "tier", "value": "td"}],
                   "containerDefinitions": [{"name": "app", "image": "localhost:1/none:v1", "memory": 64}]}),
        )
        .unwrap();
        let out = run(
            &ecs,
            &ctx,
            json!({"taskDefinition": "t", "launchType": "EC2", "tags": [{"key": "tier", "value": "run"}],
                   "propagateTags": "TASK_DEFINITION", "enableECSManagedTags": true}),
        )
        .unwrap();
        let mut tags: Vec<String> = out["tasks"][0]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                format!(
                    "{}={}",
                    t["key"].as_str().unwrap(),
                    t["value"].as_str().unwrap()
                )
            })
            .collect();
        tags.sort();
        assert_eq!(tags, ["aws:ecs:clusterName=c1", "team=a", "tier=run"]);

        // Without them, only the request's tags.
        let out = run(
            &ecs,
            &ctx,
            json!({"taskDefinition": "t", "launchType": "EC2"}),
        )
        .unwrap();
        assert!(out["tasks"][0].get("tags").is_none());
        let e = run(
            &ecs,
            &ctx,
            json!({"taskDefinition": "t", "propagateTags": "SERVICE"}),
        )
        .unwrap_err();
        assert_eq!(e.code, INVALID);
    }

    /// What Berth cannot do is refused and records nothing; platformVersion is checked.
    #[test]
    fn run_task_refuses_what_it_cannot_do() {
        let (_d, ecs, ctx) = setup();
        register(&ecs, &ctx, 1024, 1024);
        family(&ecs, &ctx, "web", 64, None);
        for (input, code, named) in [
            (
                json!({"enableExecuteCommand": true}),
                "NotImplemented",
                "enableExecuteCommand",
            ),
            (
                json!({"volumeConfigurations": [{"name": "v"}]}),
                "NotImplemented",
                "volumeConfigurations",
            ),
            (
                json!({"platformVersion": "LATEST", "launchType": "EC2"}),
                INVALID,
                "platform version must be null",
            ),
            (
                json!({"platformVersion": "1.3.0", "launchType": "FARGATE"}),
                "NotImplemented",
                "platformVersion 1.3.0",
            ),
            (
                json!({"platformVersion": "2.0", "launchType": "FARGATE"}),
                "PlatformUnknownException",
                "2.0",
            ),
        ] {
            let mut input = input;
            input["taskDefinition"] = json!("web");
            let e = run(&ecs, &ctx, input).unwrap_err();
            assert_eq!(e.code, code);
            assert!(e.message.contains(named), "{}", e.message);
        }
        let listed = ecs
            .call(&ctx, "ListTasks", json!({"cluster": "c1"}))
            .unwrap();
        assert_eq!(listed["taskArns"], json!([]));
    }

    #[test]
    fn trusted_execution_other_than_shared_is_refused() {
        let (_d, ecs, ctx) = setup();
        let td = |mode: &str| {
            json!({"family": "t", "trustedExecutionConfiguration": {"isolationMode": mode},
            "containerDefinitions": [{"name": "app", "image": "i", "memory": 64}]})
        };
        let e = ecs
            .call(&ctx, "RegisterTaskDefinition", td("ISOLATED_SANDBOX"))
            .unwrap_err();
        assert_eq!(e.code, "NotImplemented");
        assert!(e.message.contains("trustedExecutionConfiguration"));
        ecs.call(&ctx, "RegisterTaskDefinition", td("SHARED"))
            .unwrap();
    }
}
