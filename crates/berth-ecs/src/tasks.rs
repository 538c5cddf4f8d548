//! Tasks: RunTask, StartTask, StopTask, DescribeTasks, ListTasks, and the container
//! instance reads. Requests are validated exactly as ECS does; tasks themselves need the
//! runtime (a later issue), so RunTask ends in a clear NotImplemented once a request
//! is otherwise valid, and no task record is written.

use crate::common::*;
use crate::Ecs;
use berth_store::{Cond, Op, Record};
use berth_wire::page::paginate;
use berth_wire::{ApiError, ApiResult, RequestContext};
use serde_json::{json, Value};

const FARGATE_PROVIDERS: [&str; 2] = ["FARGATE", "FARGATE_SPOT"];

/// A task record as the API shows it: without Berth's own bookkeeping, and with its
/// tags only when asked for.
fn public_task(t: &Value, with_tags: bool) -> Value {
    let mut t = t.clone();
    if let Some(o) = t.as_object_mut() {
        o.remove("_berth");
        if !with_tags {
            o.remove("tags");
        }
    }
    t
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
        let placement = self.placement(input, &cluster.value)?;
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
        self.check_overrides(input, &td.value, &placement)?;
        self.check_network(ctx, input, &td.value, &placement)?;
        let cluster_name = str_of(&cluster.value, "clusterName").unwrap_or_default();
        match placement {
            Placement::Ec2 | Placement::External | Placement::AsgProviders => {
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
                Err(ApiError::new(501, "NotImplemented", "RunTask: placing tasks on container instances is not implemented in Berth yet; the request was valid and no task was created."))
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
                self.store.txn(&conds, ops).map_err(store_err)?;
                let tasks: Vec<Value> = tasks
                    .iter()
                    .map(|t| {
                        let tagged = t["tags"].as_array().is_some_and(|a| !a.is_empty());
                        public_task(t, tagged)
                    })
                    .collect();
                Ok(json!({"tasks": tasks, "failures": []}))
            }
        }
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
        let subnets: Vec<Value> = input
            .pointer("/networkConfiguration/awsvpcConfiguration/subnets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|id| {
                berth_ec2::subnet_info(self.store.as_ref(), &ctx.account, &ctx.region, id)
            })
            .map(|s| json!({"subnetId": s.subnet_id, "cidrBlock": s.cidr_block, "availabilityZone": s.availability_zone}))
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
            "_berth": {"networkConfiguration": input.get("networkConfiguration"), "subnets": subnets},
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
        let td = self.runnable_task_definition(ctx, input)?;
        self.check_overrides(input, &td.value, &Placement::Ec2)?;
        self.check_network(ctx, input, &td.value, &Placement::Ec2)?;
        for i in instances.iter().filter_map(Value::as_str) {
            let id = name_from(ctx, i, "container-instance")
                .map(|r| r.rsplit('/').next().unwrap_or_default().to_string());
            let exists = id.is_some_and(|id| {
                self.store
                    .get(&key(
                        ctx,
                        &format!("container-instance/{cluster_name}/{id}"),
                    ))
                    .is_some()
            });
            if !exists {
                return Err(invalid(format!(
                    "Container instance {i} was not found in the cluster."
                )));
            }
        }
        Err(ApiError::new(501, "NotImplemented", "StartTask: placing tasks on container instances is not implemented in Berth yet; no task was created."))
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
        let arns: Vec<(String, String)> = self
            .store
            .list(&key(ctx, &format!("task/{cluster_name}/")))
            .into_iter()
            .filter(|r| {
                let t = &r.value;
                let desired_ok = match desired {
                    // PENDING and RUNNING tasks both have desiredStatus RUNNING.
                    "STOPPED" => t["desiredStatus"] == "STOPPED",
                    "PENDING" => t["desiredStatus"] == "RUNNING" && t["lastStatus"] == "PENDING",
                    _ => t["desiredStatus"] == "RUNNING",
                };
                let td_family = str_of(t, "taskDefinitionArn")
                    .and_then(|a| a.rsplit('/').next())
                    .and_then(|f| f.rsplit_once(':'))
                    .map(|(f, _)| f);
                desired_ok
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

    pub(crate) fn list_container_instances(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let cluster = active_cluster(self.store.as_ref(), ctx, input, "cluster")?;
        let cluster_name = str_of(&cluster.value, "clusterName").unwrap_or_default();
        if input.get("filter").is_some() {
            return Err(ApiError::new(501, "NotImplemented", "ListContainerInstances: the cluster query language filter is not implemented in Berth yet."));
        }
        let status = str_of(input, "status");
        let arns: Vec<(String, String)> = self
            .store
            .list(&key(ctx, &format!("container-instance/{cluster_name}/")))
            .into_iter()
            .filter(|r| status.is_none_or(|s| r.value["status"] == s))
            .map(|r| {
                (
                    r.key.clone(),
                    str_of(&r.value, "containerInstanceArn")
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        let page = paginate(arns, |(k, _)| k.clone(), input, 100, 100, INVALID)?;
        Ok(
            json!({"containerInstanceArns": page.items.into_iter().map(|(_, a)| a).collect::<Vec<_>>(), "nextToken": page.next_token}),
        )
    }

    pub(crate) fn describe_container_instances(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let cluster = active_cluster(self.store.as_ref(), ctx, input, "cluster")?;
        let cluster_name = str_of(&cluster.value, "clusterName").unwrap_or_default();
        let ids = arr_of(input, "containerInstances");
        if ids.len() > 100 {
            return Err(invalid(
                "containerInstances cannot have more than 100 elements.",
            ));
        }
        let mut found = vec![];
        let mut failures = vec![];
        for id in ids.iter().filter_map(Value::as_str) {
            let short = name_from(ctx, id, "container-instance")
                .map(|r| r.rsplit('/').next().unwrap_or_default().to_string());
            match short.and_then(|s| {
                self.store
                    .get(&key(ctx, &format!("container-instance/{cluster_name}/{s}")))
            }) {
                Some(r) => found.push((*r.value).clone()),
                None => failures.push(json!({"arn": id, "reason": "MISSING"})),
            }
        }
        Ok(json!({"containerInstances": found, "failures": failures}))
    }
}
