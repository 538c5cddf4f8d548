//! ECS services behind ELBv2 load balancers. CreateService and UpdateService check each
//! `loadBalancers` entry against its target group and the task definition; the scheduler
//! registers a service's RUNNING tasks as targets, counts a task healthy only when its
//! targets are, replaces a task whose target fails its health checks after the grace
//! period, and deregisters a task's targets before stopping it, stopping it once the load
//! balancer has let them go (connection draining).
//!
//! What a task holds is recorded in its record, under `_berth`:
//! - `targets`: [{targetGroupArn, id, port}], written *before* they are registered, so
//!   nothing is ever registered that the task does not know of;
//! - `deregistered`: true once those targets were deregistered;
//! - `drain`: {reason, since, elbHealthCheck}: the scheduler stops the task once its
//!   targets have left their groups. Its desiredStatus stays RUNNING until then, because
//!   the node stops the containers as soon as it reads STOPPED.

use crate::common::*;
use crate::scheduler::task_id;
use crate::Ecs;
use berth_elbv2::api::{self as elb, TargetState};
use berth_store::{Cond, Op};
use berth_wire::{ApiError, ApiResult, RequestContext};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// A task record as the scheduler reads it: key, revision, value.
pub(crate) type Entry = (String, i64, Value);

/// One target of a task in a target group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub tg: String,
    pub id: String,
    pub port: i64,
}

impl Target {
    /// An awsvpc task's target (an address), not an instance's.
    pub(crate) fn is_ip(&self) -> bool {
        self.id.parse::<std::net::Ipv4Addr>().is_ok()
    }

    fn to_json(&self) -> Value {
        json!({"targetGroupArn": self.tg, "id": self.id, "port": self.port})
    }
}

/// The targets recorded in a task.
pub(crate) fn recorded(t: &Value) -> Vec<Target> {
    arr_of(&t["_berth"], "targets")
        .iter()
        .filter_map(|v| {
            Some(Target {
                tg: str_of(v, "targetGroupArn")?.to_string(),
                id: str_of(v, "id")?.to_string(),
                port: v["port"].as_i64()?,
            })
        })
        .collect()
}

/// Whether the task has targets that were not deregistered yet.
pub(crate) fn holds_targets(t: &Value) -> bool {
    t["_berth"]["deregistered"] != true && !recorded(t).is_empty()
}

/// Whether the scheduler is draining the task's connections before stopping it.
pub(crate) fn draining_connections(t: &Value) -> bool {
    t["_berth"]["drain"].is_object()
}

/// A RUNNING task whose connections the scheduler is draining: ECS shows it DEACTIVATING
/// with desiredStatus STOPPED (the record keeps both RUNNING until its targets are gone,
/// because the node stops the containers as soon as it reads STOPPED).
pub(crate) fn deactivating(t: &Value) -> bool {
    draining_connections(t) && t["desiredStatus"] == "RUNNING" && t["lastStatus"] == "RUNNING"
}

/// `view` (the API's copy of task `t`) as ECS shows a task in DEACTIVATING.
pub(crate) fn show_deactivating(t: &Value, view: &mut Value) {
    if deactivating(t) {
        view["lastStatus"] = json!("DEACTIVATING");
        view["desiredStatus"] = json!("STOPPED");
        view["stopCode"] = json!("ServiceSchedulerInitiated");
        view["stoppedReason"] = t["_berth"]["drain"]["reason"].clone();
    }
}

/// Whether the scheduler stopped the task because its target failed health checks.
pub(crate) fn failed_elb_health(t: &Value) -> bool {
    t["_berth"]["drain"]["elbHealthCheck"] == true
}

fn is_awsvpc(t: &Value) -> bool {
    arr_of(t, "attachments")
        .iter()
        .any(|a| a["type"] == "ElasticNetworkInterface")
}

/// An awsvpc task's address: its network interface's, as the node records it.
fn task_ip(t: &Value) -> Option<String> {
    arr_of(t, "attachments")
        .iter()
        .filter(|a| a["type"] == "ElasticNetworkInterface")
        .flat_map(|a| arr_of(a, "details"))
        .find(|d| d["name"] == "privateIPv4Address")
        .and_then(|d| str_of(d, "value"))
        .or_else(|| t["_berth"]["ip"].as_str())
        .map(str::to_string)
}

/// The targets a task should hold for the load balancers `lbs`: an awsvpc task by its
/// address and the container port, others by their instance's EC2 id and the host port
/// bound to the container port. None while the address or port is not known yet.
pub(crate) fn wanted(
    t: &Value,
    lbs: &[Value],
    ec2_ids: &HashMap<String, String>,
) -> Option<Vec<Target>> {
    let mut out = vec![];
    for lb in lbs {
        let tg = str_of(lb, "targetGroupArn")?.to_string();
        let container = str_of(lb, "containerName")?;
        let container_port = lb["containerPort"].as_i64()?;
        let target = if is_awsvpc(t) {
            Target {
                tg,
                id: task_ip(t)?,
                port: container_port,
            }
        } else {
            let instance = ec2_ids.get(str_of(t, "containerInstanceArn")?)?;
            let host_port = arr_of(t, "containers")
                .iter()
                .find(|c| c["name"] == container)
                .map(|c| arr_of(c, "networkBindings"))?
                .iter()
                .find(|b| b["containerPort"] == container_port)?["hostPort"]
                .as_i64()?;
            Target {
                tg,
                id: instance.clone(),
                port: host_port,
            }
        };
        if !out.contains(&target) {
            out.push(target);
        }
    }
    Some(out)
}

/// Targets by group, as RegisterTargets and DeregisterTargets take them.
fn by_group(targets: &[Target]) -> BTreeMap<&str, Vec<(String, i64)>> {
    let mut out: BTreeMap<&str, Vec<(String, i64)>> = BTreeMap::new();
    for t in targets {
        out.entry(&t.tg).or_default().push((t.id.clone(), t.port));
    }
    out
}

/// The health of target groups' targets, read once per scheduler pass.
pub(crate) struct Health(pub(crate) HashMap<String, Vec<TargetState>>);

impl Health {
    /// A group that is gone has no targets.
    pub(crate) fn load<'a>(
        ecs: &Ecs,
        ctx: &RequestContext,
        groups: impl IntoIterator<Item = &'a str>,
    ) -> Health {
        let mut m = HashMap::new();
        for g in groups {
            if !m.contains_key(g) {
                m.insert(g.to_string(), ecs.target_health(ctx, g));
            }
        }
        Health(m)
    }

    /// A target's state in its group (`initial`, `healthy`, `unhealthy`, `draining`,
    /// `unused`), None when the group does not list it.
    pub(crate) fn state(&self, t: &Target) -> Option<&str> {
        self.0
            .get(&t.tg)?
            .iter()
            .find(|s| s.id == t.id && s.port == t.port)
            .map(|s| s.state.as_str())
    }

    fn reason(&self, t: &Target) -> &str {
        self.0
            .get(&t.tg)
            .and_then(|v| v.iter().find(|s| s.id == t.id && s.port == t.port))
            .map(|s| s.reason.as_str())
            .unwrap_or_default()
    }
}

/// Whether a task holds a target in every one of `lbs`' groups and all of them are
/// healthy: only then does a task of a service with load balancers count as healthy.
pub(crate) fn targets_healthy(t: &Value, lbs: &[Value], health: &Health) -> bool {
    let mine = recorded(t);
    lbs.iter()
        .all(|lb| mine.iter().any(|m| lb["targetGroupArn"] == m.tg.as_str()))
        && mine.iter().all(|m| health.state(m) == Some("healthy"))
}

/// What one scheduler pass did with a service's targets, for its events.
#[derive(Default)]
pub(crate) struct LbPass {
    /// Targets registered and deregistered, per target group.
    pub registered: BTreeMap<String, usize>,
    pub deregistered: BTreeMap<String, usize>,
    /// Tasks whose connections began draining (their targets deregistered before a stop).
    pub draining: Vec<String>,
    /// Tasks the scheduler stopped (at once, or once their targets had drained).
    pub stopped: Vec<String>,
    /// Other events (health check failures, registration errors), worded as ECS does.
    pub events: Vec<String>,
}

impl LbPass {
    /// The pass's events in the order they happened, for service `name`.
    pub(crate) fn events(&self, name: &str) -> Vec<String> {
        let mut out = vec![];
        for (tg, n) in &self.registered {
            out.push(format!(
                "(service {name}) registered {n} targets in (target-group {tg})"
            ));
        }
        out.extend(self.events.iter().map(|e| format!("(service {name}) {e}")));
        if !self.draining.is_empty() {
            out.push(format!(
                "(service {name}) has begun draining connections on {} tasks.",
                self.draining.len()
            ));
        }
        for (tg, n) in &self.deregistered {
            out.push(format!(
                "(service {name}) deregistered {n} targets in (target-group {tg})"
            ));
        }
        out
    }
}

impl Ecs {
    /// CreateService's and UpdateService's rules for `loadBalancers` with task definition
    /// `td`: each names an existing target group that a load balancer uses, of the target
    /// type the network mode needs, and a container with a port mapping for containerPort.
    pub(crate) fn check_load_balancers(
        &self,
        ctx: &RequestContext,
        lbs: &[Value],
        td: &Value,
    ) -> ApiResult<()> {
        if lbs.len() > 5 {
            return Err(invalid(
                "You can specify a maximum of 5 load balancers (target groups) for a service.",
            ));
        }
        let mode = str_of(td, "networkMode").unwrap_or("bridge");
        let mut classic = false;
        for lb in lbs {
            let name = str_of(lb, "loadBalancerName");
            let tg_arn = str_of(lb, "targetGroupArn");
            if name.is_some() && tg_arn.is_some() {
                return Err(invalid("loadBalancerName and targetGroupArn cannot both be specified. You must specify either a loadBalancerName or a targetGroupArn."));
            }
            if name.is_none() && tg_arn.is_none() {
                return Err(invalid(
                    "Either loadBalancerName or targetGroupArn must be specified.",
                ));
            }
            let cname = str_of(lb, "containerName").unwrap_or_default();
            let port = lb.get("containerPort").and_then(Value::as_i64);
            let Some(port) = port.filter(|_| !cname.is_empty()) else {
                return Err(invalid(
                    "containerName and containerPort must be specified for a load balancer.",
                ));
            };
            let Some(c) = arr_of(td, "containerDefinitions")
                .iter()
                .find(|c| c["name"] == cname)
            else {
                return Err(invalid(format!(
                    "The container {cname} does not exist in the task definition."
                )));
            };
            if !arr_of(c, "portMappings")
                .iter()
                .any(|pm| pm.get("containerPort").and_then(Value::as_i64) == Some(port))
            {
                return Err(invalid(format!(
                    "The container {cname} did not have a container port {port} defined."
                )));
            }
            let Some(arn) = tg_arn else {
                classic = true;
                continue;
            };
            let tg = elb::target_group(self.store.as_ref(), &ctx.account, &ctx.region, arn)
                .map_err(|e| match e.code.as_str() {
                    "TargetGroupNotFound" => invalid(format!(
                        "The target group with targetGroupArn {arn} does not exist."
                    )),
                    _ => invalid(format!("Invalid targetGroupArn {arn}: {}", e.message)),
                })?;
            if tg.load_balancer_arns.is_empty() {
                return Err(invalid(format!(
                    "The target group with targetGroupArn {arn} does not have an associated load balancer."
                )));
            }
            let needed = if mode == "awsvpc" { "ip" } else { "instance" };
            if tg.target_type != needed {
                return Err(invalid(format!(
                    "The provided target group {arn} has target type {}, which is incompatible with the {mode} network mode specified in the task definition.",
                    tg.target_type
                )));
            }
        }
        if classic {
            return Err(ApiError::new(
                501,
                "NotImplemented",
                "Classic Load Balancers (loadBalancerName) are not implemented in Berth; use an ELBv2 target group (targetGroupArn). Nothing was written.",
            ));
        }
        Ok(())
    }

    /// A group's targets with their health; none when the group is gone.
    fn target_health(&self, ctx: &RequestContext, tg: &str) -> Vec<TargetState> {
        elb::target_health(self.store.as_ref(), &ctx.account, &ctx.region, tg).unwrap_or_default()
    }

    /// Write a task record under its revision, keeping `e` current. False on a conflict
    /// (the node wrote it meanwhile): the next pass tries again.
    fn write_task(&self, e: &mut Entry, v: Value) -> bool {
        match self.store.txn(
            &[Cond::Revision(e.0.clone(), e.1)],
            vec![Op::Put(e.0.clone(), v.clone())],
        ) {
            Ok(rev) => {
                e.1 = rev;
                e.2 = v;
                true
            }
            Err(_) => false,
        }
    }

    /// Ask a task of the service to stop, as the scheduler does.
    pub(crate) fn stop_for_service(&self, e: &mut Entry, reason: &str, now: f64) -> bool {
        let mut t = e.2.clone();
        t["desiredStatus"] = json!("STOPPED");
        t["stopCode"] = json!("ServiceSchedulerInitiated");
        t["stoppedReason"] = json!(reason);
        t["stoppingAt"] = json!(now);
        self.write_task(e, t)
    }

    /// Bring one task's targets in line with its state. A task that is stopping (by
    /// itself, by a user, or drained by the scheduler) has its targets deregistered; one
    /// the scheduler drains is stopped once its groups no longer list them. A RUNNING task
    /// holds `want`: new targets are recorded, then every recorded one its group does not
    /// list is registered (so a failed registration is retried, and a restart registers
    /// nothing twice).
    pub(crate) fn sync_targets(
        &self,
        ctx: &RequestContext,
        e: &mut Entry,
        want: Option<Vec<Target>>,
        health: &Health,
        now: f64,
        pass: &mut LbPass,
    ) {
        let t = &e.2;
        let stopping = t["desiredStatus"] == "STOPPED"
            || t["lastStatus"] == "STOPPED"
            || draining_connections(t);
        if stopping {
            self.deregister_task(ctx, e, now, pass);
            let t = &e.2;
            let active = t["desiredStatus"] == "RUNNING" && t["lastStatus"] != "STOPPED";
            if draining_connections(t) && !holds_targets(t) && active && self.drained(ctx, t) {
                let reason = str_of(&t["_berth"]["drain"], "reason")
                    .unwrap_or_default()
                    .to_string();
                let id = task_id(t);
                if self.stop_for_service(e, &reason, now) {
                    pass.stopped.push(id);
                }
            }
            return;
        }
        let Some(want) = want.filter(|_| t["lastStatus"] == "RUNNING") else {
            return;
        };
        let mut mine = recorded(t);
        let before = mine.len();
        for w in want {
            if !mine.contains(&w) {
                mine.push(w);
            }
        }
        if mine.len() > before {
            let mut v = e.2.clone();
            v["_berth"]["targets"] = json!(mine.iter().map(Target::to_json).collect::<Vec<_>>());
            if !self.write_task(e, v) {
                return;
            }
        }
        let missing: Vec<Target> = mine
            .into_iter()
            .filter(|m| health.state(m).is_none())
            .collect();
        for (tg, pairs) in by_group(&missing) {
            match elb::register_targets(
                self.store.as_ref(),
                &ctx.account,
                &ctx.region,
                now,
                tg,
                &pairs,
            ) {
                Ok(()) => *pass.registered.entry(tg.to_string()).or_default() += pairs.len(),
                Err(err) => pass.events.push(format!(
                    "failed to register targets in (target-group {tg}) with (error {})",
                    err.message
                )),
            }
        }
    }

    /// Deregister every target the task holds (they drain in groups a load balancer uses,
    /// and leave others at once), then record that they were.
    fn deregister_task(&self, ctx: &RequestContext, e: &mut Entry, now: f64, pass: &mut LbPass) {
        if !holds_targets(&e.2) {
            return;
        }
        let mine = recorded(&e.2);
        let mut done = vec![];
        for (tg, pairs) in by_group(&mine) {
            match elb::deregister_targets(
                self.store.as_ref(),
                &ctx.account,
                &ctx.region,
                now,
                tg,
                &pairs,
            ) {
                Ok(()) => done.push((tg.to_string(), pairs.len())),
                // A deleted group took its targets with it.
                Err(err) if err.code == "TargetGroupNotFound" => {}
                Err(err) => {
                    pass.events.push(format!(
                        "failed to deregister targets in (target-group {tg}) with (error {})",
                        err.message
                    ));
                    return;
                }
            }
        }
        let mut v = e.2.clone();
        v["_berth"]["deregistered"] = json!(true);
        if self.write_task(e, v) {
            for (tg, n) in done {
                *pass.deregistered.entry(tg).or_default() += n;
            }
        }
    }

    /// Whether none of the task's targets is listed in its group any more.
    fn drained(&self, ctx: &RequestContext, t: &Value) -> bool {
        let mine = recorded(t);
        let gone = by_group(&mine).into_iter().all(|(tg, pairs)| {
            self.target_health(ctx, tg).iter().all(|s| {
                !pairs
                    .iter()
                    .any(|(id, port)| *id == s.id && *port == s.port)
            })
        });
        gone
    }

    /// Stop a task of the service: at once when it holds no targets; otherwise its targets
    /// are deregistered first, and it stops once they have drained. False when the task
    /// record changed meanwhile (the next pass decides again).
    pub(crate) fn begin_stop(
        &self,
        ctx: &RequestContext,
        e: &mut Entry,
        reason: &str,
        elb_health_check: bool,
        now: f64,
        pass: &mut LbPass,
    ) -> bool {
        let id = task_id(&e.2);
        if !holds_targets(&e.2) {
            let ok = self.stop_for_service(e, reason, now);
            if ok {
                pass.stopped.push(id);
            }
            return ok;
        }
        let mut v = e.2.clone();
        v["_berth"]["drain"] =
            json!({"reason": reason, "since": now, "elbHealthCheck": elb_health_check});
        if !self.write_task(e, v) {
            return false;
        }
        pass.draining.push(id);
        // Deregister now; a group no load balancer uses lets its targets go at once.
        self.sync_targets(ctx, e, None, &Health(HashMap::new()), now, pass);
        true
    }
}

/// A RUNNING task whose target is unhealthy once the grace period since its start has
/// passed (ECS then stops it and starts another): that target and the reason its group
/// gives.
pub(crate) fn failing_target(
    t: &Value,
    health: &Health,
    grace: f64,
    now: f64,
) -> Option<(Target, String)> {
    let started = t["startedAt"].as_f64()?;
    if t["desiredStatus"] != "RUNNING"
        || t["lastStatus"] != "RUNNING"
        || draining_connections(t)
        || now - started < grace
    {
        return None;
    }
    recorded(t)
        .into_iter()
        .find(|m| health.state(m) == Some("unhealthy"))
        .map(|m| {
            let reason = health.reason(&m).to_string();
            (m, reason)
        })
}

#[cfg(test)]
mod tests;
