//! The service scheduler. For each ACTIVE service it keeps the PRIMARY deployment at the
//! desired count (a task that stops is replaced), rolls a new deployment forward within
//! maximumPercent and minimumHealthyPercent (new tasks first, old ones stopped while
//! enough stay RUNNING), retires deployments with no tasks left, trips the deployment
//! circuit breaker (rolling back when asked), counts tasks into the service record and
//! writes ECS's service events. A DRAINING service (DeleteService) is emptied, then
//! INACTIVE. Tasks are made through RunTask's own path, so they are placed and validated
//! exactly as RunTask's.
//!
//! It runs on store changes (a task or service written), and on a tick for retries.

use crate::common::*;
use crate::Ecs;
use berth_store::{Cond, Op};
use berth_wire::RequestContext;
use serde_json::{json, Value};
use std::sync::Arc;

/// Events kept per service, newest first (ECS keeps 100).
const EVENTS_KEPT: usize = 100;

/// How long a task must have been RUNNING (and not UNHEALTHY) before a rollout counts it
/// as healthy: old tasks are stopped, and a deployment completes, only on healthy ones,
/// so a container that dies at once never replaces a working one.
const STABLE_SECS: f64 = 3.0;

/// Run the scheduler until the store closes.
pub fn spawn_scheduler(ecs: Arc<Ecs>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::{RecvError, TryRecvError};
        let mut events = ecs.store.watch();
        // Retries after failed starts (backoff) need a clock tick.
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Services, their tasks, and instances (a DRAINING one moves tasks off).
        let relevant = |k: &str| {
            k.contains("/ecs/service/")
                || k.contains("/ecs/task/")
                || k.contains("/ecs/container-instance/")
        };
        // The tick matters only while a service has not settled (a retry may be due).
        let mut unsettled = true;
        loop {
            let mut due = false;
            tokio::select! {
                _ = tick.tick() => due = unsettled,
                ev = events.recv() => match ev {
                    Ok(e) => due |= relevant(&e.key),
                    Err(RecvError::Lagged(_)) => due = true,
                    Err(RecvError::Closed) => return,
                },
            }
            loop {
                match events.try_recv() {
                    Ok(e) => due |= relevant(&e.key),
                    Err(TryRecvError::Lagged(_)) => due = true,
                    Err(_) => break,
                }
            }
            if !due {
                continue;
            }
            let e = ecs.clone();
            match tokio::task::spawn_blocking(move || e.schedule_all()).await {
                Ok(u) => unsettled = u,
                Err(err) => tracing::error!(error = %err, "service scheduler pass failed"),
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

fn is_healthy(t: &Value, now: f64) -> bool {
    is_running(t)
        && t["healthStatus"] != "UNHEALTHY"
        && t["startedAt"]
            .as_f64()
            .is_some_and(|s| now - s >= STABLE_SECS)
}

fn task_id(t: &Value) -> String {
    t["taskArn"]
        .as_str()
        .and_then(|a| a.rsplit('/').next())
        .unwrap_or_default()
        .to_string()
}

/// A task of the service that stopped by itself (not stopped by the scheduler or a user).
fn failed(t: &Value) -> bool {
    t["lastStatus"] == "STOPPED"
        && !matches!(
            t["stopCode"].as_str(),
            Some("ServiceSchedulerInitiated") | Some("UserInitiated")
        )
}

impl Ecs {
    /// One pass over every service that still has work (ACTIVE or DRAINING). True when
    /// one of them has not settled yet (not steady, or draining).
    pub fn schedule_all(&self) -> bool {
        let mut unsettled = false;
        for r in self.store.list("/") {
            if !r.key.contains("/ecs/service/") || r.value["status"] == "INACTIVE" {
                continue;
            }
            if let Some((ctx, cluster, name)) = parse_service_key(&r.key) {
                unsettled |= !self.schedule(&ctx, &cluster, &name, &r.key, r.revision, &r.value);
            }
        }
        unsettled
    }

    fn schedule(
        &self,
        ctx: &RequestContext,
        cluster: &str,
        name: &str,
        skey: &str,
        rev: i64,
        svc: &Value,
    ) -> bool {
        let now = self.clock.now();
        let mut s = svc.clone();
        let mut events: Vec<String> = vec![];
        let group = format!("service:{name}");
        let tasks: Vec<(String, i64, Value)> = self
            .store
            .list(&key(ctx, &format!("task/{cluster}/")))
            .into_iter()
            .filter(|r| r.value["group"] == group.as_str())
            .map(|r| (r.key.clone(), r.revision, (*r.value).clone()))
            .collect();
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
        let of = |d: &Value| -> Vec<&(String, i64, Value)> {
            tasks
                .iter()
                .filter(|(_, _, t)| t["startedBy"] == d["id"])
                .collect()
        };

        // The circuit breaker: a PRIMARY deployment whose tasks keep failing stops being
        // rolled out, and rolls back to the deployment before it when asked.
        let breaker = dc["deploymentCircuitBreaker"]["enable"] == true;
        if let Some(primary) = deployments.first().cloned() {
            let fails = of(&primary).iter().filter(|(_, _, t)| failed(t)).count() as i64;
            let threshold = (desired / 2).clamp(3, 200);
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
                    let mut d = crate::services::new_deployment(
                        &prev,
                        &prev["taskDefinition"],
                        desired,
                        &prev["launchType"],
                        now,
                    );
                    d["networkConfiguration"] = prev["networkConfiguration"].clone();
                    deployments[0]["status"] = json!("ACTIVE");
                    s["taskDefinition"] = prev["taskDefinition"].clone();
                    events.push(format!(
                        "(service {name}) rolling back to deployment {}.",
                        d["id"].as_str().unwrap_or_default()
                    ));
                    deployments.insert(0, d);
                }
            }
        }

        // Tasks on DRAINING container instances are replaced elsewhere, then stopped.
        let draining_hosts: std::collections::HashSet<String> = self
            .store
            .list(&key(ctx, &format!("container-instance/{cluster}/")))
            .into_iter()
            .filter(|r| r.value["status"] == "DRAINING")
            .filter_map(|r| r.value["containerInstanceArn"].as_str().map(str::to_string))
            .collect();
        let on_draining = |t: &Value| {
            t["containerInstanceArn"]
                .as_str()
                .is_some_and(|a| draining_hosts.contains(a))
        };
        let active = |d: &Value| {
            of(d)
                .iter()
                .filter(|(_, _, t)| is_active(t) && !on_draining(t))
                .count() as i64
        };
        let total_active: i64 = tasks.iter().filter(|(_, _, t)| is_active(t)).count() as i64;
        let mut started = vec![];
        let mut stopped = vec![];
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
                });
                let mut input = input;
                berth_wire::service::strip_nulls(&mut input);
                match self.run_task(ctx, &input) {
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
        // Stop: the PRIMARY's surplus (pending first); then, while enough stay RUNNING
        // (pending ones at once), old deployments' tasks and tasks on DRAINING instances.
        let mut healthy: i64 = tasks.iter().filter(|(_, _, t)| is_healthy(t, now)).count() as i64;
        for (i, d) in deployments.iter().enumerate() {
            let mut mine: Vec<&(String, i64, Value)> =
                of(d).into_iter().filter(|(_, _, t)| is_active(t)).collect();
            // Drained first, then pending, then running.
            mine.sort_by_key(|(_, _, t)| (!on_draining(t), is_running(t)));
            let replaced = mine.iter().filter(|(_, _, t)| on_draining(t)).count() as i64;
            let surplus = if i == 0 {
                replaced + (mine.len() as i64 - replaced - desired).max(0)
            } else {
                mine.len() as i64
            };
            for (k, r, t) in mine.into_iter().take(surplus as usize) {
                let counted = is_healthy(t, now);
                let guarded = i > 0 || on_draining(t);
                if is_running(t)
                    && guarded
                    && healthy - i64::from(counted) < min_healthy
                    && !draining
                {
                    continue;
                }
                if self.stop_for_service(k, *r, t, d, now) {
                    stopped.push(task_id(t));
                    if counted {
                        healthy -= 1;
                    }
                }
            }
        }

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
            .map(|d| of(d).iter().filter(|(_, _, t)| is_healthy(t, now)).count() as i64)
            .unwrap_or(0);
        let steady = kept.len() == 1
            && running_total == desired
            && healthy_primary == desired
            && pending_total == 0
            && started.is_empty()
            && stopped.is_empty();
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
        if draining
            && running_total == 0
            && pending_total == 0
            && tasks.iter().all(|(_, _, t)| !is_active(t))
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
        let settled = steady && !draining;
        if s != *svc {
            // An UpdateService meanwhile wins; the next pass starts from it.
            let _ = self.store.txn(
                &[Cond::Revision(skey.to_string(), rev)],
                vec![Op::Put(skey.to_string(), s)],
            );
        }
        settled
    }

    /// Ask a task of the service to stop, as the scheduler does.
    fn stop_for_service(&self, k: &str, rev: i64, t: &Value, d: &Value, now: f64) -> bool {
        let mut t = t.clone();
        t["desiredStatus"] = json!("STOPPED");
        t["stopCode"] = json!("ServiceSchedulerInitiated");
        t["stoppedReason"] = json!(format!(
            "Scaling activity initiated by (deployment {})",
            d["id"].as_str().unwrap_or_default()
        ));
        t["stoppingAt"] = json!(now);
        self.store
            .txn(
                &[Cond::Revision(k.to_string(), rev)],
                vec![Op::Put(k.to_string(), t)],
            )
            .is_ok()
    }
}
