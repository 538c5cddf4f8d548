//! Services behind real ELBv2 records: load balancers, target groups and listeners are
//! made through the ELBv2 API itself; the tests play the node (a task reaching RUNNING,
//! stopping) and the load balancer's data plane (a target's health state, a drained
//! target leaving its group), and run scheduler passes directly.

use crate::common::key;
use crate::Ecs;
use berth_store::{SqliteStore, Store};
use berth_wire::{ApiError, Clock, RequestContext, Service};
use serde_json::{json, Value};
use std::sync::Arc;

struct T {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    clock: Clock,
    ecs: Ecs,
    elb: berth_elbv2::Elbv2,
    ctx: RequestContext,
}

impl T {
    fn new() -> T {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
        let clock = Clock::default();
        let t = T {
            ecs: Ecs::new(store.clone(), clock.clone()),
            elb: berth_elbv2::Elbv2::new(store.clone(), clock.clone()),
            _dir: dir,
            store,
            clock,
            ctx: RequestContext {
                account: "000000000000".into(),
                region: "us-east-1".into(),
                request_id: "r".into(),
            },
        };
        t.ecs("CreateCluster", json!({"clusterName": "c1"}));
        t
    }

    fn ecs(&self, op: &str, input: Value) -> Value {
        self.ecs
            .call(&self.ctx, op, input.clone())
            .unwrap_or_else(|e| panic!("{op} {input}: {e:?}"))
    }

    fn ecs_err(&self, op: &str, input: Value) -> ApiError {
        match self.ecs.call(&self.ctx, op, input.clone()) {
            Ok(v) => panic!("{op} {input} succeeded: {v}"),
            Err(e) => e,
        }
    }

    fn elb(&self, op: &str, input: Value) -> Value {
        self.elb
            .call(&self.ctx, op, input.clone())
            .unwrap_or_else(|e| panic!("{op} {input}: {e:?}"))
    }

    fn subnets(&self) -> Vec<String> {
        berth_ec2::default_subnets(self.store.as_ref(), "000000000000", "us-east-1")
    }

    /// A target group of `target_type` on port 80; with `listener`, an application load
    /// balancer forwards to it (so it is in use). Returns (group ARN, listener ARN).
    fn target_group(&self, name: &str, target_type: &str, listener: bool) -> (String, String) {
        let vpc =
            berth_ec2::default_vpc_id(self.store.as_ref(), "000000000000", "us-east-1").unwrap();
        let out = self.elb(
            "CreateTargetGroup",
            json!({"Name": name, "Protocol": "HTTP", "Port": 80, "VpcId": vpc, "TargetType": target_type}),
        );
        let tg = out["TargetGroups"][0]["TargetGroupArn"]
            .as_str()
            .unwrap()
            .to_string();
        if !listener {
            return (tg, String::new());
        }
        let s = self.subnets();
        let lb = self.elb(
            "CreateLoadBalancer",
            json!({"Name": format!("{name}-lb"), "Subnets": [s[0], s[1]]}),
        )["LoadBalancers"][0]["LoadBalancerArn"]
            .clone();
        let l = self.elb(
            "CreateListener",
            json!({"LoadBalancerArn": lb, "Protocol": "HTTP", "Port": 80,
                   "DefaultActions": [{"Type": "forward", "TargetGroupArn": tg}]}),
        )["Listeners"][0]["ListenerArn"]
            .as_str()
            .unwrap()
            .to_string();
        (tg, l)
    }

    /// An awsvpc (Fargate) family: container "app" on port 80.
    fn awsvpc_family(&self, name: &str) {
        self.ecs(
            "RegisterTaskDefinition",
            json!({"family": name, "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
                   "cpu": "256", "memory": "512",
                   "containerDefinitions": [{"name": "app", "image": "localhost:1/web:v1",
                       "portMappings": [{"containerPort": 80}]}]}),
        );
    }

    /// A bridge family: container "app" with port 80 on a dynamic host port.
    fn bridge_family(&self, name: &str) {
        self.ecs(
            "RegisterTaskDefinition",
            json!({"family": name, "networkMode": "bridge",
                   "containerDefinitions": [{"name": "app", "image": "localhost:1/web:v1", "memory": 128,
                       "portMappings": [{"containerPort": 80, "hostPort": 0}]}]}),
        );
    }

    /// A Fargate service of `family` behind `tg` (more fields from `extra`).
    fn fargate_service(&self, name: &str, family: &str, tg: &str, extra: Value) -> Value {
        let mut input = json!({
            "cluster": "c1", "serviceName": name, "taskDefinition": family,
            "desiredCount": 1, "launchType": "FARGATE",
            "networkConfiguration": {"awsvpcConfiguration": {"subnets": [self.subnets()[0]]}},
            "loadBalancers": [{"targetGroupArn": tg, "containerName": "app", "containerPort": 80}],
        });
        for (k, v) in extra.as_object().unwrap() {
            input[k] = v.clone();
        }
        self.ecs("CreateService", input)["service"].clone()
    }

    fn pass(&self) {
        self.ecs.schedule_all();
    }

    fn service(&self, name: &str) -> Value {
        self.ecs(
            "DescribeServices",
            json!({"cluster": "c1", "services": [name]}),
        )["services"][0]
            .clone()
    }

    /// The service's events, oldest first.
    fn events(&self, name: &str) -> Vec<String> {
        let mut e: Vec<String> = self.service(name)["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["message"].as_str().unwrap().to_string())
            .collect();
        e.reverse();
        e
    }

    fn count_events(&self, name: &str, fragment: &str) -> usize {
        self.events(name)
            .iter()
            .filter(|m| m.contains(fragment))
            .count()
    }

    /// The service's task records (with Berth's bookkeeping), oldest first.
    fn tasks(&self, service: &str) -> Vec<Value> {
        let mut v: Vec<Value> = self
            .store
            .list(&key(&self.ctx, "task/c1/"))
            .into_iter()
            .filter(|r| r.value["group"] == format!("service:{service}"))
            .map(|r| (*r.value).clone())
            .collect();
        v.sort_by(|a, b| {
            a["createdAt"]
                .as_f64()
                .partial_cmp(&b["createdAt"].as_f64())
                .unwrap()
        });
        v
    }

    /// Tasks the service still wants running.
    fn desired_running(&self, service: &str) -> Vec<Value> {
        self.tasks(service)
            .into_iter()
            .filter(|t| t["desiredStatus"] == "RUNNING")
            .collect()
    }

    fn edit_task(&self, arn: &Value, f: impl FnOnce(&mut Value)) {
        let id = arn.as_str().unwrap().rsplit('/').next().unwrap();
        let k = key(&self.ctx, &format!("task/c1/{id}"));
        let mut v = (*self.store.get(&k).unwrap().value).clone();
        f(&mut v);
        self.store.put(&k, v).unwrap();
    }

    /// The node: an awsvpc task got `ip` and is RUNNING.
    fn run_awsvpc(&self, task: &Value, ip: &str) {
        let now = self.clock.now();
        self.edit_task(&task["taskArn"], |t| {
            t["lastStatus"] = json!("RUNNING");
            t["startedAt"] = json!(now);
            t["_berth"]["ip"] = json!(ip);
            t["attachments"][0]["status"] = json!("ATTACHED");
            t["attachments"][0]["details"] = json!([{"name": "privateIPv4Address", "value": ip}]);
        });
    }

    /// The node: a bridge task's port 80 is bound to `host_port` and it is RUNNING.
    fn run_bridge(&self, task: &Value, host_port: i64) {
        let now = self.clock.now();
        self.edit_task(&task["taskArn"], |t| {
            t["lastStatus"] = json!("RUNNING");
            t["startedAt"] = json!(now);
            t["containers"][0]["networkBindings"] = json!([{"bindIP": "0.0.0.0",
                "containerPort": 80, "hostPort": host_port, "protocol": "tcp"}]);
        });
    }

    /// The node: the task stopped (as asked, or by itself with `code`).
    fn node_stops(&self, task: &Value, code: Option<&str>) {
        let now = self.clock.now();
        self.edit_task(&task["taskArn"], |t| {
            t["lastStatus"] = json!("STOPPED");
            t["desiredStatus"] = json!("STOPPED");
            t["stoppedAt"] = json!(now);
            if let Some(c) = code {
                t["stopCode"] = json!(c);
                t["stoppedReason"] = json!("Essential container in task exited");
            }
        });
    }

    fn targets_key(&self, tg: &str) -> String {
        format!(
            "/000000000000/us-east-1/elbv2/targets/{}",
            tg.rsplit('/').next().unwrap()
        )
    }

    /// The data plane: a health check result for a target.
    fn set_state(&self, tg: &str, id: &str, state: &str, reason: &str) {
        let k = self.targets_key(tg);
        let mut v = (*self.store.get(&k).unwrap().value).clone();
        for t in v["Targets"].as_array_mut().unwrap() {
            if t["Id"] == id {
                t["State"] = json!(state);
                t["Reason"] = json!(reason);
            }
        }
        self.store.put(&k, v).unwrap();
    }

    /// The data plane: draining targets whose requests are done leave the group.
    fn drained(&self, tg: &str) {
        let k = self.targets_key(tg);
        let mut v = (*self.store.get(&k).unwrap().value).clone();
        v["Targets"]
            .as_array_mut()
            .unwrap()
            .retain(|t| t["State"] != "draining");
        self.store.put(&k, v).unwrap();
    }

    /// DescribeTargetHealth: (id, port, state), in id and port order.
    fn health(&self, tg: &str) -> Vec<(String, i64, String)> {
        let mut v: Vec<_> = self.elb("DescribeTargetHealth", json!({"TargetGroupArn": tg}))
            ["TargetHealthDescriptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["Target"]["Id"].as_str().unwrap().to_string(),
                    d["Target"]["Port"].as_i64().unwrap(),
                    d["TargetHealth"]["State"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    }
}

fn h(id: &str, port: i64, state: &str) -> (String, i64, String) {
    (id.to_string(), port, state.to_string())
}

fn short(task: &Value) -> String {
    task["taskArn"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn create_and_update_check_load_balancers_as_ecs_does() {
    let t = T::new();
    t.awsvpc_family("web");
    t.bridge_family("classic");
    let (ip_tg, _) = t.target_group("ips", "ip", true);
    let (inst_tg, _) = t.target_group("hosts", "instance", true);
    let (idle_tg, _) = t.target_group("idle", "ip", false);
    let missing = ip_tg.replace("/ips/", "/gone/");
    let lb = |tg: &str, c: &str, p: i64| json!([{"targetGroupArn": tg, "containerName": c, "containerPort": p}]);
    let create = |family: &str, lbs: Value| {
        let mut input = json!({"cluster": "c1", "serviceName": "s", "taskDefinition": family,
            "desiredCount": 1, "loadBalancers": lbs});
        if family == "web" {
            input["launchType"] = json!("FARGATE");
            input["networkConfiguration"] =
                json!({"awsvpcConfiguration": {"subnets": [t.subnets()[0]]}});
        } else {
            input["launchType"] = json!("EC2");
        }
        t.ecs_err("CreateService", input)
    };
    for (family, lbs, message) in [
        ("web", lb(&missing, "app", 80), format!("The target group with targetGroupArn {missing} does not exist.")),
        ("web", lb(&idle_tg, "app", 80), format!("The target group with targetGroupArn {idle_tg} does not have an associated load balancer.")),
        ("web", lb(&inst_tg, "app", 80), format!("The provided target group {inst_tg} has target type instance, which is incompatible with the awsvpc network mode specified in the task definition.")),
        ("classic", lb(&ip_tg, "app", 80), format!("The provided target group {ip_tg} has target type ip, which is incompatible with the bridge network mode specified in the task definition.")),
        ("web", lb(&ip_tg, "db", 80), "The container db does not exist in the task definition.".to_string()),
        ("web", lb(&ip_tg, "app", 8080), "The container app did not have a container port 8080 defined.".to_string()),
        ("web", json!([{"containerName": "app", "containerPort": 80}]), "Either loadBalancerName or targetGroupArn must be specified.".to_string()),
    ] {
        let e = create(family, lbs);
        assert_eq!((e.code.as_str(), e.message.as_str()), ("InvalidParameterException", message.as_str()));
    }
    let e = create(
        "web",
        json!([{"loadBalancerName": "old", "containerName": "app", "containerPort": 80}]),
    );
    assert_eq!((e.status, e.code.as_str()), (501, "NotImplemented"));
    assert!(
        t.ecs("ListServices", json!({"cluster": "c1"}))["serviceArns"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // UpdateService: a task definition without the port is refused; new load balancers
    // are checked, and make a new deployment.
    let svc = t.fargate_service("s", "web", &ip_tg, json!({}));
    assert_eq!(svc["loadBalancers"][0]["targetGroupArn"], ip_tg.as_str());
    assert!(svc["deployments"][0].get("_berth").is_none());
    t.ecs(
        "RegisterTaskDefinition",
        json!({"family": "web", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
               "cpu": "256", "memory": "512",
               "containerDefinitions": [{"name": "app", "image": "localhost:1/web:v2",
                   "portMappings": [{"containerPort": 8080}]}]}),
    );
    let e = t.ecs_err(
        "UpdateService",
        json!({"cluster": "c1", "service": "s", "taskDefinition": "web:2"}),
    );
    assert_eq!(
        e.message,
        "The container app did not have a container port 80 defined."
    );
    let e = t.ecs_err(
        "UpdateService",
        json!({"cluster": "c1", "service": "s", "loadBalancers": lb(&inst_tg, "app", 80)}),
    );
    assert!(
        e.message.contains("has target type instance"),
        "{}",
        e.message
    );
    let out = t.ecs(
        "UpdateService",
        json!({"cluster": "c1", "service": "s", "taskDefinition": "web:2",
               "loadBalancers": lb(&ip_tg, "app", 8080)}),
    );
    let s = &out["service"];
    assert_eq!(s["loadBalancers"][0]["containerPort"], 8080);
    assert_eq!(s["deployments"].as_array().unwrap().len(), 2);
    assert!(s["deployments"][0].get("_berth").is_none());
}

#[test]
fn rollout_waits_for_healthy_targets_and_for_draining() {
    let t = T::new();
    t.awsvpc_family("web");
    let (tg, _) = t.target_group("web", "ip", true);
    t.fargate_service("web", "web", &tg, json!({}));
    t.pass();
    let first = t.tasks("web")[0].clone();
    assert_eq!(first["lastStatus"], "PROVISIONING");
    assert!(
        t.health(&tg).is_empty(),
        "nothing registered before RUNNING"
    );

    // RUNNING: registered by address and container port, once.
    t.run_awsvpc(&first, "172.31.0.10");
    t.pass();
    t.pass();
    assert_eq!(t.health(&tg), vec![h("172.31.0.10", 80, "initial")]);
    let registered = format!("(service web) registered 1 targets in (target-group {tg})");
    assert_eq!(t.count_events("web", &registered), 1);
    assert_eq!(
        t.tasks("web")[0]["_berth"]["targets"],
        json!([{"targetGroupArn": tg, "id": "172.31.0.10", "port": 80}])
    );
    // A restarted scheduler registers nothing twice.
    let again = Ecs::new(t.store.clone(), t.clock.clone());
    again.schedule_all();
    assert_eq!(t.count_events("web", &registered), 1);

    // Not healthy (and the deployment not done) until the load balancer says so.
    t.clock.advance_ms(10_000);
    t.pass();
    let s = t.service("web");
    assert_eq!(s["deployments"][0]["rolloutState"], "IN_PROGRESS");
    assert_eq!(s["runningCount"], 1);
    t.set_state(&tg, "172.31.0.10", "healthy", "");
    t.pass();
    let s = t.service("web");
    assert_eq!(s["deployments"][0]["rolloutState"], "COMPLETED");
    assert_eq!(t.count_events("web", "has reached a steady state"), 1);

    // A new deployment: the new task starts, registers, and the old one is kept until
    // the new one's target is healthy.
    t.ecs(
        "UpdateService",
        json!({"cluster": "c1", "service": "web", "forceNewDeployment": true}),
    );
    t.pass();
    let second = t.tasks("web")[1].clone();
    t.run_awsvpc(&second, "172.31.0.11");
    t.pass();
    t.clock.advance_ms(10_000);
    t.pass();
    assert_eq!(
        t.health(&tg),
        vec![
            h("172.31.0.10", 80, "healthy"),
            h("172.31.0.11", 80, "initial")
        ]
    );
    assert_eq!(t.desired_running("web").len(), 2);
    assert_eq!(t.count_events("web", "draining"), 0);

    // Healthy: the old task's target drains; the task keeps running meanwhile, is not
    // picked again, and no third task starts (it still counts against maximumPercent).
    t.set_state(&tg, "172.31.0.11", "healthy", "");
    t.pass();
    assert_eq!(
        t.health(&tg),
        vec![
            h("172.31.0.10", 80, "draining"),
            h("172.31.0.11", 80, "healthy")
        ]
    );
    let old = &t.tasks("web")[0];
    assert_eq!(old["desiredStatus"], "RUNNING");
    // The API shows it as ECS does: DEACTIVATING, on its way to STOPPED.
    let shown = &t.ecs(
        "DescribeTasks",
        json!({"cluster": "c1", "tasks": [old["taskArn"]]}),
    )["tasks"][0];
    assert_eq!(
        (
            &shown["lastStatus"],
            &shown["desiredStatus"],
            &shown["stopCode"]
        ),
        (
            &json!("DEACTIVATING"),
            &json!("STOPPED"),
            &json!("ServiceSchedulerInitiated")
        )
    );
    let listed = |desired: &str| {
        t.ecs(
            "ListTasks",
            json!({"cluster": "c1", "serviceName": "web", "desiredStatus": desired}),
        )["taskArns"]
            .as_array()
            .unwrap()
            .contains(&old["taskArn"])
    };
    assert!(listed("STOPPED") && !listed("RUNNING"));
    let events = t.events("web");
    let n = events.len();
    assert_eq!(
        events[n - 2..],
        [
            "(service web) has begun draining connections on 1 tasks.".to_string(),
            format!("(service web) deregistered 1 targets in (target-group {tg})"),
        ]
    );
    t.pass();
    t.pass();
    assert_eq!(t.tasks("web").len(), 2);
    assert_eq!(t.tasks("web")[0]["desiredStatus"], "RUNNING");
    assert_eq!(t.count_events("web", "deregistered 1 targets"), 1);
    let s = t.service("web");
    assert_eq!(s["runningCount"], 2);
    assert_eq!(s["deployments"].as_array().unwrap().len(), 2);
    assert_eq!(s["deployments"][0]["rolloutState"], "IN_PROGRESS");

    // Drained: only now is the old task stopped.
    t.drained(&tg);
    t.pass();
    let old = &t.tasks("web")[0];
    assert_eq!(old["desiredStatus"], "STOPPED");
    assert_eq!(old["stopCode"], "ServiceSchedulerInitiated");
    let deployment = s["deployments"][1]["id"].as_str().unwrap();
    assert_eq!(
        old["stoppedReason"],
        format!("Scaling activity initiated by (deployment {deployment})")
    );
    assert_eq!(
        t.events("web").last().unwrap(),
        &format!(
            "(service web) has stopped 1 running tasks: (task {}).",
            short(old)
        )
    );
    t.node_stops(old, None);
    t.pass();
    let s = t.service("web");
    assert_eq!(s["deployments"].as_array().unwrap().len(), 1);
    assert_eq!(s["deployments"][0]["rolloutState"], "COMPLETED");
    assert_eq!(s["runningCount"], 1);
    assert_eq!(t.health(&tg), vec![h("172.31.0.11", 80, "healthy")]);
}

#[test]
fn unhealthy_target_after_the_grace_period_replaces_its_task() {
    let t = T::new();
    t.awsvpc_family("web");
    let (tg, _) = t.target_group("web", "ip", true);
    t.fargate_service(
        "web",
        "web",
        &tg,
        json!({"healthCheckGracePeriodSeconds": 60}),
    );
    t.pass();
    let first = t.tasks("web")[0].clone();
    t.run_awsvpc(&first, "172.31.0.20");
    t.pass();
    t.set_state(&tg, "172.31.0.20", "unhealthy", "Target.FailedHealthChecks");

    // Within the grace period an unhealthy target is tolerated (but is not healthy).
    t.clock.advance_ms(30_000);
    t.pass();
    assert_eq!(t.health(&tg), vec![h("172.31.0.20", 80, "unhealthy")]);
    assert_eq!(t.tasks("web").len(), 1);
    assert_eq!(
        t.service("web")["deployments"][0]["rolloutState"],
        "IN_PROGRESS"
    );

    // After it: drained and replaced at once (maximumPercent 200 leaves room).
    t.clock.advance_ms(31_000);
    t.pass();
    assert_eq!(t.health(&tg), vec![h("172.31.0.20", 80, "draining")]);
    let tasks = t.tasks("web");
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0]["desiredStatus"], "RUNNING");
    assert!(t.events("web").contains(&format!(
        "(service web) (task {}) (port 80) is unhealthy in (target-group {tg}) due to (reason Target.FailedHealthChecks).",
        short(&first)
    )));
    assert_eq!(t.count_events("web", "has started 1 tasks"), 2);

    // The replacement registers; the failed task stops once drained.
    t.run_awsvpc(&tasks[1], "172.31.0.21");
    t.pass();
    t.drained(&tg);
    t.pass();
    let failed = &t.tasks("web")[0];
    assert_eq!(failed["desiredStatus"], "STOPPED");
    assert_eq!(failed["stopCode"], "ServiceSchedulerInitiated");
    assert_eq!(
        failed["stoppedReason"],
        format!("Task failed ELB health checks in (target-group {tg})")
    );
    assert_eq!(t.health(&tg), vec![h("172.31.0.21", 80, "initial")]);
    t.node_stops(failed, None);
    t.pass();
    assert_eq!(t.service("web")["deployments"][0]["failedTasks"], 1);
    t.set_state(&tg, "172.31.0.21", "healthy", "");
    t.pass();
    assert_eq!(
        t.service("web")["deployments"][0]["rolloutState"],
        "COMPLETED"
    );
}

#[test]
fn a_draining_task_counts_against_maximum_percent() {
    let t = T::new();
    t.awsvpc_family("web");
    let (tg, _) = t.target_group("web", "ip", true);
    t.fargate_service(
        "web",
        "web",
        &tg,
        json!({"desiredCount": 2, "deploymentConfiguration": {"maximumPercent": 100, "minimumHealthyPercent": 50}}),
    );
    t.pass();
    let tasks = t.tasks("web");
    t.run_awsvpc(&tasks[0], "172.31.0.50");
    t.run_awsvpc(&tasks[1], "172.31.0.51");
    t.pass();
    t.set_state(&tg, "172.31.0.50", "healthy", "");
    t.set_state(&tg, "172.31.0.51", "unhealthy", "Target.Timeout");
    t.pass();
    // The unhealthy one drains; no replacement while it still runs (2 of at most 2).
    assert_eq!(
        t.health(&tg),
        vec![
            h("172.31.0.50", 80, "healthy"),
            h("172.31.0.51", 80, "draining")
        ]
    );
    t.pass();
    assert_eq!(t.tasks("web").len(), 2);
    assert_eq!(t.desired_running("web").len(), 2);
    // Scaling in to 1 meanwhile stops nothing more: the draining task is on its way out
    // and is not picked again.
    t.ecs(
        "UpdateService",
        json!({"cluster": "c1", "service": "web", "desiredCount": 1}),
    );
    t.pass();
    assert_eq!(t.desired_running("web").len(), 2);
    assert_eq!(t.health(&tg)[0], h("172.31.0.50", 80, "healthy"));
    // Back to 2: still no room. Drained: the failed task stops, which makes room for
    // its replacement in the same pass.
    t.ecs(
        "UpdateService",
        json!({"cluster": "c1", "service": "web", "desiredCount": 2}),
    );
    t.pass();
    assert_eq!(t.tasks("web").len(), 2);
    t.drained(&tg);
    t.pass();
    let tasks = t.tasks("web");
    assert_eq!(tasks.len(), 3);
    assert_eq!(tasks[1]["desiredStatus"], "STOPPED");
    assert_eq!(t.desired_running("web").len(), 2);
}

#[test]
fn a_task_that_stops_by_itself_leaves_its_groups_at_once() {
    let t = T::new();
    t.awsvpc_family("web");
    let (tg, _) = t.target_group("web", "ip", true);
    t.fargate_service("web", "web", &tg, json!({}));
    t.pass();
    let first = t.tasks("web")[0].clone();
    t.run_awsvpc(&first, "172.31.0.30");
    t.pass();
    t.set_state(&tg, "172.31.0.30", "healthy", "");

    // Its container exits: deregistered when the scheduler sees it, and replaced.
    t.node_stops(&first, Some("EssentialContainerExited"));
    t.pass();
    assert_eq!(t.health(&tg), vec![h("172.31.0.30", 80, "draining")]);
    assert_eq!(
        t.count_events(
            "web",
            &format!("(service web) deregistered 1 targets in (target-group {tg})")
        ),
        1
    );
    let second = t.tasks("web")[1].clone();
    assert_eq!(second["desiredStatus"], "RUNNING");

    // StopTask by a user, once registered: the same.
    t.drained(&tg);
    t.run_awsvpc(&second, "172.31.0.31");
    t.pass();
    assert_eq!(t.health(&tg), vec![h("172.31.0.31", 80, "initial")]);
    t.ecs(
        "StopTask",
        json!({"cluster": "c1", "task": second["taskArn"]}),
    );
    t.pass();
    assert_eq!(t.health(&tg), vec![h("172.31.0.31", 80, "draining")]);
    assert_eq!(t.count_events("web", "deregistered 1 targets"), 2);
    t.pass();
    assert_eq!(t.count_events("web", "deregistered 1 targets"), 2);
}

#[test]
fn bridge_tasks_are_instance_targets_and_delete_service_drains_them() {
    let t = T::new();
    let ci = crate::instances::tests::register(&t.ecs, &t.ctx, 2048, 2048);
    let ec2_id = t.ecs(
        "DescribeContainerInstances",
        json!({"cluster": "c1", "containerInstances": [ci]}),
    )["containerInstances"][0]["ec2InstanceId"]
        .as_str()
        .unwrap()
        .to_string();
    t.bridge_family("web");
    let (tg, _) = t.target_group("web", "instance", true);
    t.ecs(
        "CreateService",
        json!({"cluster": "c1", "serviceName": "web", "taskDefinition": "web", "desiredCount": 2,
               "launchType": "EC2",
               "loadBalancers": [{"targetGroupArn": tg, "containerName": "app", "containerPort": 80}]}),
    );
    t.pass();
    let tasks = t.tasks("web");
    assert_eq!(tasks.len(), 2);
    t.run_bridge(&tasks[0], 49153);
    t.run_bridge(&tasks[1], 49154);
    t.pass();
    assert_eq!(
        t.health(&tg),
        vec![h(&ec2_id, 49153, "initial"), h(&ec2_id, 49154, "initial")]
    );
    assert!(t.events("web").contains(&format!(
        "(service web) registered 2 targets in (target-group {tg})"
    )));

    // DeleteService: both drain first, then stop; the service goes INACTIVE only once
    // nothing is left in the group.
    t.ecs(
        "DeleteService",
        json!({"cluster": "c1", "service": "web", "force": true}),
    );
    t.pass();
    assert_eq!(
        t.health(&tg),
        vec![h(&ec2_id, 49153, "draining"), h(&ec2_id, 49154, "draining")]
    );
    assert_eq!(t.desired_running("web").len(), 2);
    assert_eq!(t.service("web")["status"], "DRAINING");
    t.drained(&tg);
    t.pass();
    assert!(t.desired_running("web").is_empty());
    for task in t.tasks("web") {
        t.node_stops(&task, None);
    }
    t.pass();
    assert_eq!(t.service("web")["status"], "INACTIVE");
    assert!(t.health(&tg).is_empty());
}

#[test]
fn a_group_no_load_balancer_uses_lets_targets_go_at_once() {
    let t = T::new();
    t.awsvpc_family("web");
    let (tg, listener) = t.target_group("web", "ip", true);
    t.fargate_service("web", "web", &tg, json!({}));
    t.pass();
    let first = t.tasks("web")[0].clone();
    t.run_awsvpc(&first, "172.31.0.40");
    t.pass();
    t.elb("DeleteListener", json!({"ListenerArn": listener}));
    assert_eq!(t.health(&tg), vec![h("172.31.0.40", 80, "unused")]);
    // Scale-in: deregistered and stopped in one pass, nothing left behind.
    t.ecs(
        "UpdateService",
        json!({"cluster": "c1", "service": "web", "desiredCount": 0}),
    );
    t.pass();
    assert!(t.health(&tg).is_empty());
    assert_eq!(t.tasks("web")[0]["desiredStatus"], "STOPPED");

    // A group deleted under a service: registration fails, said once, and retried.
    t.ecs(
        "UpdateService",
        json!({"cluster": "c1", "service": "web", "desiredCount": 1}),
    );
    t.elb("DeleteTargetGroup", json!({"TargetGroupArn": tg}));
    t.pass();
    let second = t.tasks("web")[1].clone();
    t.run_awsvpc(&second, "172.31.0.41");
    t.pass();
    t.pass();
    assert_eq!(t.count_events("web", "failed to register targets in"), 1);
    assert_eq!(
        t.service("web")["deployments"][0]["rolloutState"],
        "IN_PROGRESS"
    );
}

#[test]
fn target_records_wake_the_scheduler() {
    let dir = tempfile::tempdir().unwrap();
    let store = berth_store::SqliteStore::open(&dir.path().join("db")).unwrap();
    let service = "/000000000000/us-east-1/ecs/service/c1/web";
    store
        .txn(
            &[],
            vec![berth_store::Op::Put(
                service.into(),
                serde_json::json!({"status": "ACTIVE"}),
            )],
        )
        .unwrap();
    let mut ix = crate::index::TaskIndex::build(&store, 0.0);
    ix.take_dirty();
    let put = berth_store::EventKind::Put;
    assert!(ix.apply(
        &store,
        &put,
        "/000000000000/us-east-1/elbv2/targets/0123456789abcdef",
        0.0
    ));
    assert_eq!(ix.take_dirty()[0].0, service);
    assert!(!ix.apply(&store, &put, "/000000000000/us-east-1/elbv2/lb/web", 0.0));
    assert!(ix.take_dirty().is_empty());
}

#[test]
fn a_service_keeps_its_last_100_events() {
    let t = T::new();
    t.awsvpc_family("web");
    t.ecs(
        "CreateService",
        json!({"cluster": "c1", "serviceName": "web", "taskDefinition": "web", "desiredCount": 0,
               "launchType": "FARGATE",
               "networkConfiguration": {"awsvpcConfiguration": {"subnets": [t.subnets()[0]]}}}),
    );
    // 150 events from before, newest first as stored.
    let k = "/000000000000/us-east-1/ecs/service/c1/web";
    let r = t.store.get(k).unwrap();
    let mut s = (*r.value).clone();
    s["events"] = json!((0..150)
        .rev()
        .map(|i| json!({"id": format!("old-{i}"), "createdAt": 1.0, "message": format!("old {i}")}))
        .collect::<Vec<_>>());
    t.store
        .txn(&[], vec![berth_store::Op::Put(k.into(), s)])
        .unwrap();
    t.ecs(
        "UpdateService",
        json!({"cluster": "c1", "service": "web", "desiredCount": 1}),
    );
    t.pass();
    let events = t.service("web")["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 100);
    assert!(events[0]["message"]
        .as_str()
        .unwrap()
        .contains("has started 1 tasks"));
    // The pass's own events first, then the newest of the old ones; the oldest went.
    let new = events
        .iter()
        .take_while(|e| !e["message"].as_str().unwrap().starts_with("old"))
        .count();
    assert!(new >= 1);
    assert_eq!(events[new]["message"], "old 149");
    assert_eq!(events[99]["message"], format!("old {}", 50 + new));
}
