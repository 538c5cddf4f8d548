//! The service scheduler. For each ACTIVE service it keeps the PRIMARY deployment at the
//! desired count (a task that stops is replaced), rolls a new deployment forward within
//! maximumPercent and minimumHealthyPercent (new tasks first, old ones stopped while
//! enough stay healthy), retires deployments with no tasks left, trips the deployment
//! circuit breaker (rolling back when asked), counts tasks into the service record and
//! writes ECS's service events. A DRAINING service (DeleteService) is emptied, then
//! INACTIVE. Tasks are made through RunTask's own path, so they are placed and validated
//! exactly as RunTask's.
//!
//! A service with load balancers (`targets.rs`): a task that reaches RUNNING is registered
//! in each of its deployment's target groups (awsvpc: its address and the container port;
//! bridge and host: its instance's EC2 id and the host port). Such a task counts as healthy
//! only while its targets are `healthy` in every group; once the service's
//! healthCheckGracePeriodSeconds have passed since it started, an `unhealthy` target gets
//! it stopped ("Task failed ELB health checks in ...") and replaced. Before the scheduler
//! stops a task that holds targets (scale-in, replacement, DeleteService, failed health),
//! it deregisters them and waits until their groups no longer list them (the data plane
//! drains them); meanwhile the task is still RUNNING and counts against maximumPercent,
//! but is neither healthy nor one of its deployment's desired tasks, and is never picked
//! again. A task that stops by itself has its targets deregistered at once.
//!
//! It runs on store changes (a service, task, container instance or ELBv2 target record
//! written) for the services they concern (`index.rs`), and on a 1 s tick for retries
//! while a service has not settled. Each pass first deletes the stopped tasks whose
//! retention has ended.

use crate::common::*;
use crate::index::TaskIndex;
use crate::targets::*;
use crate::Ecs;
use berth_store::{Cond, Event, Op};
use berth_wire::RequestContext;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Events kept per service, newest first (ECS keeps 100).
const EVENTS_KEPT: usize = 100;

/// How long a task must have been RUNNING (and not UNHEALTHY) before a rollout counts it
/// as healthy: old tasks are stopped, and a deployment completes, only on healthy ones,
/// so a container that dies at once never replaces a working one.
const STABLE_SECS: f64 = 3.0;

/// Stopped tasks deleted per pass at most, so a pass after a long pause stays short.
const DELETES_PER_PASS: usize = 500;

/// Run the scheduler until the store closes.
pub fn spawn_scheduler(ecs: Arc<Ecs>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::{RecvError, TryRecvError};
        let mut events = ecs.store.watch();
        // Retries after failed starts (backoff) and the end of stopped tasks' retention
        // need a clock tick.
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let e = ecs.clone();
        let index =
            tokio::task::spawn_blocking(move || TaskIndex::build(e.store.as_ref(), e.clock.now()))
                .await
                .unwrap_or_default();
        let index = Arc::new(std::sync::Mutex::new(index));
        loop {
            let mut changes = vec![];
            let mut lagged = false;
            tokio::select! {
                _ = tick.tick() => {}
                ev = events.recv() => match ev {
                    Ok(e) => changes.push(e),
                    Err(RecvError::Lagged(_)) => lagged = true,
                    Err(RecvError::Closed) => return,
                },
            }
            loop {
                match events.try_recv() {
                    Ok(e) => changes.push(e),
                    Err(TryRecvError::Lagged(_)) => lagged = true,
                    Err(_) => break,
                }
            }
            let (e, ix) = (ecs.clone(), index.clone());
            let pass = tokio::task::spawn_blocking(move || {
                let mut ix = ix.lock().unwrap_or_else(|p| p.into_inner());
                e.pass(&mut ix, &changes, lagged);
            });
            if let Err(err) = pass.await {
                tracing::error!(error = %err, "service scheduler pass failed");
            }
        }
    })
}

/// `/{account}/{region}/ecs/service/{cluster}/{name}`, taken apart.
fn parse_service_key(k: &str) -> Option<(RequestContext, String, String)> {
    let p: Vec<&str> = k.split('/').collect();
    if p.len() != 7 || p[3] != "ecs" || p[4] != "service" {
        return None;
    }
    Some((
        RequestContext {
            account: p[1].to_string(),
            region: p[2].to_string(),
            request_id: String::new(),
        },
        p[5].to_string(),
        p[6].to_string(),
    ))
}

fn is_active(t: &Value) -> bool {
    t["desiredStatus"] == "RUNNING" && t["lastStatus"] != "STOPPED"
}

fn is_running(t: &Value) -> bool {
    is_active(t) && t["lastStatus"] == "RUNNING"
}

/// Healthy for a task outside load balancers: RUNNING for STABLE_SECS.
/// Whether a rollout counts the task as healthy: RUNNING and not draining; HEALTHY when
/// its definition gives an essential container a health check (not merely not yet
/// UNHEALTHY); its targets healthy in every group of `lbs`; without either, RUNNING for
/// STABLE_SECS.
fn counts_healthy(t: &Value, lbs: &[Value], health: &Health, now: f64) -> bool {
    let checked = has_health_check(t);
    is_running(t)
        && t["healthStatus"] != "UNHEALTHY"
        && !draining_connections(t)
        && (!checked || t["healthStatus"] == "HEALTHY")
        && if !lbs.is_empty() {
            targets_healthy(t, lbs, health)
        } else {
            checked || is_stable(t, now)
        }
}

/// Whether the task's definition gives an essential container a health check.
fn has_health_check(t: &Value) -> bool {
    !berth_model::ecs::TaskPrivate::health_checked_in(t).is_empty()
}

fn is_stable(t: &Value, now: f64) -> bool {
    t["startedAt"]
        .as_f64()
        .is_some_and(|s| now - s >= STABLE_SECS)
}

pub(crate) fn task_id(t: &Value) -> String {
    t["taskArn"]
        .as_str()
        .and_then(|a| a.rsplit('/').next())
        .unwrap_or_default()
        .to_string()
}

/// A task of the service that stopped by itself (not stopped by the scheduler or a user),
/// or that the scheduler stopped because it failed its load balancer's health checks.
fn failed(t: &Value) -> bool {
    t["lastStatus"] == "STOPPED"
        && (!matches!(
            t["stopCode"].as_str(),
            Some("ServiceSchedulerInitiated") | Some("UserInitiated")
        ) || failed_elb_health(t))
}

/// A stopping or stopped task whose targets are still to be deregistered.
fn must_deregister(t: &Value) -> bool {
    holds_targets(t)
        && (t["desiredStatus"] == "STOPPED"
            || t["lastStatus"] == "STOPPED"
            || draining_connections(t))
}

/// A task's load balancers: its deployment's, since UpdateService may change them.
fn load_balancers_of(t: &Value, deployments: &[Value], s: &Value) -> Vec<Value> {
    deployments
        .iter()
        .find(|d| d["id"] == t["startedBy"])
        .and_then(|d| d["_berth"].get("loadBalancers"))
        .unwrap_or(&s["loadBalancers"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// How many failed tasks trip the circuit breaker: thresholdConfiguration's value (50 by
/// default) as a count, or as a percentage of the desired count (BOUNDED_PERCENT, the
/// default, keeps it within 3..=200).
fn breaker_threshold(cb: &Value, desired: i64) -> i64 {
    let tc = &cb["thresholdConfiguration"];
    let value = tc["value"].as_i64().unwrap_or(50);
    match tc["type"].as_str().unwrap_or("BOUNDED_PERCENT") {
        "COUNT" => value.max(1),
        "UNBOUNDED_PERCENT" => ((desired * value + 99) / 100).max(1),
        _ => (desired * value / 100).clamp(3, 200),
    }
}

impl Ecs {
    /// One pass over every service that still has work (ACTIVE or DRAINING), from a
    /// fresh index. True when one of them has not settled yet (not steady, or draining).
    pub fn schedule_all(&self) -> bool {
        let mut ix = TaskIndex::build(self.store.as_ref(), self.clock.now());
        self.pass(&mut ix, &[], false)
    }

    /// Take in the store's changes, delete stopped tasks whose retention has ended, then
    /// schedule the services the changes concern (and those not settled before). True
    /// when one has not settled.
    pub(crate) fn pass(&self, ix: &mut TaskIndex, changes: &[Event], lagged: bool) -> bool {
        let now = self.clock.now();
        if lagged {
            // Changes were missed: start again from the store.
            *ix = TaskIndex::build(self.store.as_ref(), now);
            ix.mark_all();
        }
        for c in changes {
            ix.apply(self.store.as_ref(), &c.kind, &c.key, now);
        }
        self.delete_expired(ix, now);
        let started = std::time::Instant::now();
        let due = ix.take_dirty();
        let mut unsettled = vec![];
        for (skey, task_keys) in &due {
            let Some(r) = self.store.get(skey) else {
                continue;
            };
            if r.value["status"] == "INACTIVE" {
                continue;
            }
            let Some((ctx, cluster, name)) = parse_service_key(skey) else {
                continue;
            };
            let tasks: Vec<Entry> = task_keys
                .iter()
                .filter_map(|k| self.store.get(k))
                .map(|t| (t.key.clone(), t.revision, (*t.value).clone()))
                .collect();
            if !self.schedule(&ctx, &cluster, &name, &r, tasks) {
                unsettled.push(skey.clone());
            }
        }
        if !due.is_empty() {
            tracing::debug!(
                services = due.len(),
                tasks = ix.len(),
                micros = started.elapsed().as_micros() as u64,
                "service scheduler pass"
            );
        }
        let any = !unsettled.is_empty();
        ix.mark(unsettled);
        any
    }

    /// Stopped tasks are deleted once their retention has ended (ECS keeps them about an
    /// hour); one still holding load balancer targets waits until they are deregistered.
    /// The expired ones go in one transaction (one sync), each on its revision.
    fn delete_expired(&self, ix: &mut TaskIndex, now: f64) {
        let mut gone = vec![];
        for k in ix
            .expired(now, self.task_retention_secs)
            .into_iter()
            .take(DELETES_PER_PASS)
        {
            match self.store.get(&k) {
                None => ix.forget(&k),
                Some(r) if r.value["lastStatus"] == "STOPPED" && !holds_targets(&r.value) => {
                    gone.push((k, r.revision))
                }
                Some(_) => ix.postpone(&k, now),
            }
        }
        if gone.is_empty() {
            return;
        }
        let conds: Vec<Cond> = gone
            .iter()
            .map(|(k, r)| Cond::Revision(k.clone(), *r))
            .collect();
        let ops: Vec<Op> = gone.iter().map(|(k, _)| Op::Delete(k.clone())).collect();
        if self.store.txn(&conds, ops).is_ok() {
            for (k, _) in &gone {
                ix.forget(k);
            }
            return;
        }
        // One was written meanwhile: each on its own, the rest waiting for their events.
        for (k, rev) in gone {
            match self.store.txn(
                &[Cond::Revision(k.clone(), rev)],
                vec![Op::Delete(k.clone())],
            ) {
                Ok(_) => ix.forget(&k),
                Err(_) => ix.postpone(&k, now),
            }
        }
    }

    fn schedule(
        &self,
        ctx: &RequestContext,
        cluster: &str,
        name: &str,
        record: &berth_store::Record,
        mut tasks: Vec<Entry>,
    ) -> bool {
        let (skey, rev, svc) = (&record.key, record.revision, &*record.value);
        let now = self.clock.now();
        let mut s = svc.clone();
        let mut events: Vec<String> = vec![];
        let group = format!("service:{name}");
        let draining = s["status"] == "DRAINING";
        let desired = if draining {
            0
        } else {
            s["desiredCount"].as_i64().unwrap_or(0)
        };
        let dc = s["deploymentConfiguration"].clone();
        let max_pct = dc["maximumPercent"].as_i64().unwrap_or(200);
        let min_pct = dc["minimumHealthyPercent"].as_i64().unwrap_or(100);
        let max_total = (desired * max_pct / 100).max(desired);
        let min_healthy = (desired * min_pct + 99) / 100;
        let mut deployments: Vec<Value> = s["deployments"].as_array().cloned().unwrap_or_default();

        // Container instances: tasks on DRAINING ones are replaced elsewhere, then
        // stopped; bridge and host tasks are targets by their instance's EC2 id.
        let instances = self
            .store
            .list(&key(ctx, &format!("container-instance/{cluster}/")));
        let arn_of =
            |r: &berth_store::Record| r.value["containerInstanceArn"].as_str().map(str::to_string);
        let draining_hosts: HashSet<String> = instances
            .iter()
            .filter(|r| r.value["status"] == "DRAINING")
            .filter_map(arn_of)
            .collect();
        let ec2_ids: HashMap<String, String> = instances
            .iter()
            .filter_map(|r| Some((arn_of(r)?, r.value["ec2InstanceId"].as_str()?.to_string())))
            .collect();
        let on_draining = |t: &Value| {
            t["containerInstanceArn"]
                .as_str()
                .is_some_and(|a| draining_hosts.contains(a))
        };

        // Load balancers: every task's targets in line with its state (registered once
        // RUNNING, deregistered when stopping, stopped once drained); then a task whose
        // target is unhealthy after the grace period is drained and replaced.
        let mut lb = LbPass::default();
        let lbs_of = |t: &Value| load_balancers_of(t, &deployments, &s);
        let mut groups: Vec<String> = tasks
            .iter()
            .flat_map(|e| recorded(&e.2))
            .map(|t| t.tg)
            .collect();
        for d in deployments.iter().chain(std::iter::once(&s)) {
            let lbs = d["_berth"]
                .get("loadBalancers")
                .unwrap_or(&d["loadBalancers"]);
            groups.extend(
                lbs.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l["targetGroupArn"].as_str().map(str::to_string)),
            );
        }
        let health = Health::load(self, ctx, groups.iter().map(String::as_str));
        let grace = s["healthCheckGracePeriodSeconds"].as_f64().unwrap_or(0.0);
        for e in tasks.iter_mut() {
            let want = wanted(&e.2, &lbs_of(&e.2), &ec2_ids);
            self.sync_targets(ctx, e, want, &health, now, &mut lb);
            if let Some((target, reason)) = failing_target(&e.2, &health, grace, now) {
                let who = if target.is_ip() {
                    format!("(task {})", task_id(&e.2))
                } else {
                    format!("(instance {})", target.id)
                };
                let message = format!(
                    "{who} (port {}) is unhealthy in (target-group {}) due to (reason {reason}).",
                    target.port, target.tg
                );
                let why = format!(
                    "Task failed ELB health checks in (target-group {})",
                    target.tg
                );
                let at = lb.events.len();
                if self.begin_stop(ctx, e, &why, true, now, &mut lb) {
                    lb.events.insert(at, message);
                }
            }
        }
        // A task whose essential container fails its health checks, once the grace period
        // since it started has passed, is stopped and replaced (a task run on its own
        // keeps running whatever its health, as ECS documents).
        for e in tasks.iter_mut() {
            let t = &e.2;
            let failing = is_running(t)
                && t["desiredStatus"] == "RUNNING"
                && t["healthStatus"] == "UNHEALTHY"
                && !draining_connections(t)
                && t["startedAt"].as_f64().is_some_and(|at| now - at >= grace);
            if failing {
                let message = format!(
                    "(service {}) (task {}) failed container health checks.",
                    name,
                    task_id(t)
                );
                let at = lb.events.len();
                if self.begin_stop(
                    ctx,
                    e,
                    "Task failed container health checks",
                    false,
                    now,
                    &mut lb,
                ) {
                    lb.events.insert(at, message);
                }
            }
        }
        // Healthy, as rollouts count: RUNNING, not UNHEALTHY, not draining, HEALTHY if its
        // containers have health checks, and its targets healthy in every group (without
        // load balancers or health checks: RUNNING for STABLE_SECS).
        let healthy_tasks: HashSet<String> = tasks
            .iter()
            .filter(|(_, _, t)| counts_healthy(t, &lbs_of(t), &health, now))
            .map(|(k, _, _)| k.clone())
            .collect();
        let is_healthy = |(k, _, _): &Entry| healthy_tasks.contains(k);
        let of = |d: &Value| -> Vec<&Entry> {
            tasks
                .iter()
                .filter(|(_, _, t)| t["startedBy"] == d["id"])
                .collect()
        };

        // The circuit breaker: a PRIMARY deployment whose tasks keep failing stops being
        // rolled out, and rolls back to the deployment before it when asked.
        let cb = &dc["deploymentCircuitBreaker"];
        let breaker = cb["enable"] == true;
        if let Some(primary) = deployments.first().cloned() {
            let mine = of(&primary);
            // With resetOnHealthyTask (the default), a task that turned healthy sets the
            // count back to 0: only failures after the newest healthy task's start count.
            let reset_at = if cb["resetOnHealthyTask"] == false {
                f64::MIN
            } else {
                mine.iter()
                    .filter(|e| is_healthy(e))
                    .filter_map(|(_, _, t)| t["startedAt"].as_f64())
                    .fold(f64::MIN, f64::max)
            };
            let fails = mine
                .iter()
                .filter(|(_, _, t)| failed(t) && t["stoppedAt"].as_f64().unwrap_or(0.0) > reset_at)
                .count() as i64;
            let threshold = breaker_threshold(cb, desired);
            if breaker && primary["rolloutState"] == "IN_PROGRESS" && fails >= threshold {
                let id = primary["id"].as_str().unwrap_or_default().to_string();
                deployments[0]["rolloutState"] = json!("FAILED");
                deployments[0]["rolloutStateReason"] = json!(format!(
                    "ECS deployment circuit breaker: tasks failed to start."
                ));
                events.push(format!(
                    "(service {name}) (deployment {id}) deployment failed: tasks failed to start."
                ));
                let previous = deployments.get(1).cloned();
                if let (true, Some(prev)) =
                    (dc["deploymentCircuitBreaker"]["rollback"] == true, previous)
                {
                    let lbs = prev["_berth"]
                        .get("loadBalancers")
                        .unwrap_or(&s["loadBalancers"])
                        .clone();
                    let mut d = crate::services::new_deployment(
                        &prev,
                        &prev["taskDefinition"],
                        desired,
                        &prev["launchType"],
                        &lbs,
                        now,
                    );
                    d["networkConfiguration"] = prev["networkConfiguration"].clone();
                    deployments[0]["status"] = json!("ACTIVE");
                    s["taskDefinition"] = prev["taskDefinition"].clone();
                    s["loadBalancers"] = lbs;
                    events.push(format!(
                        "(service {name}) rolling back to deployment {}.",
                        d["id"].as_str().unwrap_or_default()
                    ));
                    deployments.insert(0, d);
                }
            }
        }

        // A deployment's tasks as it counts them: a task draining its connections is no
        // longer one of them (it is being stopped), but still counts against
        // maximumPercent until it has stopped.
        let active = |d: &Value| {
            of(d)
                .iter()
                .filter(|(_, _, t)| is_active(t) && !on_draining(t) && !draining_connections(t))
                .count() as i64
        };
        let total_active: i64 = tasks.iter().filter(|(_, _, t)| is_active(t)).count() as i64;
        let mut started = vec![];
        // Start what the PRIMARY deployment lacks, within maximumPercent, unless it failed
        // or is backing off after failures.
        if let Some(primary) = deployments.first() {
            let lacking = (desired - active(primary)).min(max_total - total_active);
            let mine = of(primary);
            let fails = mine.iter().filter(|(_, _, t)| failed(t)).count() as u32;
            let last_fail = mine
                .iter()
                .filter(|(_, _, t)| failed(t))
                .filter_map(|(_, _, t)| t["stoppedAt"].as_f64())
                .fold(0.0, f64::max);
            // After three failures, wait 2, 4, 8 ... 60 s between attempts.
            let backoff = if fails >= 3 {
                f64::from(2u32.saturating_pow(fails - 2).min(60))
            } else {
                0.0
            };
            if lacking > 0 && primary["rolloutState"] != "FAILED" && now - last_fail >= backoff {
                let input = json!({
                    "cluster": cluster,
                    "taskDefinition": primary["taskDefinition"],
                    "count": lacking.min(10),
                    "launchType": primary["launchType"],
                    "capacityProviderStrategy": primary["capacityProviderStrategy"],
                    "networkConfiguration": primary["networkConfiguration"],
                    "startedBy": primary["id"],
                    "group": group,
                    "placementConstraints": s["placementConstraints"],
                    "placementStrategy": s["placementStrategy"],
                    "enableECSManagedTags": s["enableECSManagedTags"],
                });
                let mut input = input;
                // The service's tags go to its tasks with propagateTags SERVICE; the task
                // definition's are RunTask's to add.
                match s["propagateTags"].as_str() {
                    Some("SERVICE") => input["tags"] = s["tags"].clone(),
                    Some("TASK_DEFINITION") => input["propagateTags"] = json!("TASK_DEFINITION"),
                    _ => {}
                }
                berth_wire::service::strip_nulls(&mut input);
                match self.run_task_for(ctx, &input, Some(name)) {
                    Ok(out) => {
                        for t in out["tasks"].as_array().into_iter().flatten() {
                            started.push(task_id(t));
                        }
                        if let Some(f) = out["failures"].as_array().and_then(|f| f.first()) {
                            events.push(format!(
                                "(service {name}) was unable to place a task because no container instance met all of its requirements. Reason: {}.",
                                f["reason"].as_str().unwrap_or("unknown")
                            ));
                        }
                    }
                    Err(e) => events.push(format!(
                        "(service {name}) was unable to start a task: {}",
                        e.message
                    )),
                }
            }
        }
        // Stop: the PRIMARY's surplus (pending first); then, while enough stay healthy
        // (pending ones at once), old deployments' tasks and tasks on DRAINING instances.
        // A task holding targets drains first (begin_stop); one already draining is never
        // picked again.
        let mut healthy: i64 = tasks.iter().filter(|e| is_healthy(e)).count() as i64;
        for (i, d) in deployments.iter().enumerate() {
            let mut mine: Vec<&Entry> = of(d)
                .into_iter()
                .filter(|(_, _, t)| is_active(t) && !draining_connections(t))
                .collect();
            // Drained first, then pending, then running.
            mine.sort_by_key(|(_, _, t)| (!on_draining(t), is_running(t)));
            let replaced = mine.iter().filter(|(_, _, t)| on_draining(t)).count() as i64;
            let surplus = if i == 0 {
                replaced + (mine.len() as i64 - replaced - desired).max(0)
            } else {
                mine.len() as i64
            };
            let reason = format!(
                "Scaling activity initiated by (deployment {})",
                d["id"].as_str().unwrap_or_default()
            );
            for e in mine.into_iter().take(surplus as usize) {
                let counted = is_healthy(e);
                let guarded = i > 0 || on_draining(&e.2);
                if is_running(&e.2)
                    && guarded
                    && healthy - i64::from(counted) < min_healthy
                    && !draining
                {
                    continue;
                }
                if self.begin_stop(ctx, &mut e.clone(), &reason, false, now, &mut lb) && counted {
                    healthy -= 1;
                }
            }
        }
        // Failures to (de)register repeat every pass; say so once in five minutes.
        let said_lately = |m: &str| {
            s["events"].as_array().into_iter().flatten().any(|e| {
                e["message"] == m && e["createdAt"].as_f64().is_some_and(|at| now - at < 300.0)
            })
        };
        events.extend(
            lb.events(name)
                .into_iter()
                .filter(|m| !m.contains(" failed to ") || !said_lately(m)),
        );

        // Counts, retired deployments, rollout state, status.
        let mut running_total = 0;
        let mut pending_total = 0;
        let mut kept = vec![];
        for (i, mut d) in deployments.into_iter().enumerate() {
            let mine = of(&d);
            let running = mine.iter().filter(|(_, _, t)| is_running(t)).count() as i64;
            let act = mine.iter().filter(|(_, _, t)| is_active(t)).count() as i64;
            let newly = if i == 0 { started.len() as i64 } else { 0 };
            d["runningCount"] = json!(running);
            d["pendingCount"] = json!(act - running + newly);
            d["failedTasks"] = json!(mine.iter().filter(|(_, _, t)| failed(t)).count());
            running_total += running;
            pending_total += act - running + newly;
            if i > 0 && act == 0 {
                continue; // replaced: an old deployment with no task left is gone
            }
            if i == 0 {
                d["desiredCount"] = json!(desired);
            }
            kept.push(d);
        }
        let healthy_primary = kept
            .first()
            .map(|d| of(d).iter().filter(|e| is_healthy(e)).count() as i64)
            .unwrap_or(0);
        let stopped = &lb.stopped;
        let steady = kept.len() == 1
            && running_total == desired
            && healthy_primary == desired
            && pending_total == 0
            && started.is_empty()
            && stopped.is_empty()
            && lb.draining.is_empty();
        if steady && kept[0]["rolloutState"] == "IN_PROGRESS" {
            let id = kept[0]["id"].as_str().unwrap_or_default().to_string();
            kept[0]["rolloutState"] = json!("COMPLETED");
            kept[0]["rolloutStateReason"] = json!(format!("ECS deployment {id} completed."));
            events.push(format!(
                "(service {name}) (deployment {id}) deployment completed."
            ));
        }
        if !started.is_empty() {
            events.push(format!(
                "(service {name}) has started {} tasks: {}.",
                started.len(),
                started
                    .iter()
                    .map(|t| format!("(task {t})"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        if !stopped.is_empty() {
            events.push(format!(
                "(service {name}) has stopped {} running tasks: {}.",
                stopped.len(),
                stopped
                    .iter()
                    .map(|t| format!("(task {t})"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        let was_steady = s["_berth"]["steady"] == true;
        if steady && !was_steady {
            events.push(format!("(service {name}) has reached a steady state."));
        }
        s["_berth"]["steady"] = json!(steady);
        s["runningCount"] = json!(running_total);
        s["pendingCount"] = json!(pending_total);
        s["deployments"] = json!(kept);
        // Nothing stays registered: INACTIVE only once every task stopped and gave its
        // targets back.
        let deregistering = tasks.iter().any(|(_, _, t)| must_deregister(t));
        if draining
            && running_total == 0
            && pending_total == 0
            && tasks.iter().all(|(_, _, t)| !is_active(t))
            && !deregistering
        {
            s["status"] = json!("INACTIVE");
        }
        if !events.is_empty() {
            let mut all: Vec<Value> = events
                .iter()
                .rev()
                .map(|m| json!({"id": uuid::Uuid::new_v4().to_string(), "createdAt": now, "message": m}))
                .collect();
            all.extend(s["events"].as_array().cloned().unwrap_or_default());
            all.truncate(EVENTS_KEPT);
            s["events"] = json!(all);
        }
        let settled = steady && !draining && !deregistering;
        if s != *svc {
            // An UpdateService meanwhile wins; the next pass starts from it.
            let _ = self.store.txn(
                &[Cond::Revision(skey.to_string(), rev)],
                vec![Op::Put(skey.to_string(), s)],
            );
        }
        settled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(health: &str, check: bool) -> Value {
        let mut def = json!({"name": "app", "essential": true});
        if check {
            def["healthCheck"] = json!({"command": ["CMD-SHELL", "true"]});
        }
        json!({
            "lastStatus": "RUNNING", "desiredStatus": "RUNNING", "startedAt": 100.0,
            "healthStatus": health,
            "_berth": {"definition": {"containerDefinitions": [def, {"name": "side", "essential": false}]}},
        })
    }

    #[test]
    fn circuit_breaker_thresholds() {
        let t = |cb: Value, desired| breaker_threshold(&cb, desired);
        assert_eq!(t(json!({"enable": true}), 4), 3, "half, at least 3");
        assert_eq!(t(json!({}), 1000), 200, "half, at most 200");
        assert_eq!(
            t(
                json!({"thresholdConfiguration": {"type": "COUNT", "value": 7}}),
                4
            ),
            7
        );
        assert_eq!(
            t(
                json!({"thresholdConfiguration": {"type": "UNBOUNDED_PERCENT", "value": 10}}),
                1000
            ),
            100
        );
        assert_eq!(
            t(
                json!({"thresholdConfiguration": {"type": "BOUNDED_PERCENT", "value": 100}}),
                1
            ),
            3
        );
    }

    #[test]
    fn a_task_with_a_health_check_counts_only_once_healthy() {
        let none = Health(Default::default());
        let later = 100.0 + STABLE_SECS + 60.0;
        assert!(
            !counts_healthy(&task("UNKNOWN", true), &[], &none, later),
            "running long, health UNKNOWN"
        );
        assert!(
            counts_healthy(&task("HEALTHY", true), &[], &none, 100.0),
            "HEALTHY counts at once"
        );
        assert!(!counts_healthy(&task("UNHEALTHY", true), &[], &none, later));
        // Without a health check: running for STABLE_SECS.
        assert!(!counts_healthy(&task("UNKNOWN", false), &[], &none, 100.0));
        assert!(counts_healthy(&task("UNKNOWN", false), &[], &none, later));
    }
}
