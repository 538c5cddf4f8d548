//! The task record as the node writes it: compare-and-swap updates, and the supervisor's
//! state mirrored through ECS's lastStatus order (tasks that never ran are finished at
//! once).

use crate::Node;
use berth_model::ecs::{DesiredStatus, LastStatus};
use berth_runtime::{TaskState, TaskStatus};
use berth_store::{Cond, Op, StoreError};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

impl Node {
    /// Change a task record with `f` (which says whether it changed anything), retrying
    /// when an API call wrote the record in between.
    pub(crate) fn update(
        &self,
        key: &str,
        mut f: impl FnMut(&mut Value) -> bool,
    ) -> Result<Value, StoreError> {
        loop {
            let Some(r) = self.store.get(key) else {
                return Err(StoreError::Conflict(key.to_string()));
            };
            let mut v = (*r.value).clone();
            if !f(&mut v) {
                return Ok(v);
            }
            v["version"] = json!(v["version"].as_i64().unwrap_or(1) + 1);
            match self.store.txn(
                &[Cond::Revision(key.to_string(), r.revision)],
                vec![Op::Put(key.to_string(), v.clone())],
            ) {
                Ok(_) => return Ok(v),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    pub(crate) async fn update_async(
        self: &Arc<Self>,
        key: &str,
        f: impl FnMut(&mut Value) -> bool + Send + 'static,
    ) -> Option<Value> {
        let node = self.clone();
        let key = key.to_string();
        match tokio::task::spawn_blocking(move || node.update(&key, f)).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot record task state");
                None
            }
            Err(_) => None,
        }
    }

    /// Record the supervisor's state in the task, stepping through ECS's intermediate
    /// states (ACTIVATING, DEACTIVATING, DEPROVISIONING for awsvpc tasks) in order.
    pub(crate) async fn mirror(self: &Arc<Self>, key: &str, st: &TaskState, awsvpc: bool) {
        let target = match st.status {
            TaskStatus::Pending => LastStatus::Pending,
            TaskStatus::Running => LastStatus::Running,
            TaskStatus::Stopping => LastStatus::Stopping,
            TaskStatus::Stopped => LastStatus::Stopped,
        };
        let current = self.store.get(key).and_then(|r| LastStatus::of(&r.value));
        for step in steps(current, target, awsvpc, st.started_at.is_some()) {
            let st = st.clone();
            let now = self.clock.now();
            self.update_async(key, move |t| apply(t, &st, step, now))
                .await;
        }
    }
}

/// The lastStatus values to write, in order, to go from `from` to `to` (LastStatus's
/// order is ECS's). `ran`: the task's containers started, so it passes through RUNNING
/// even when it was already over by the time the node heard of it.
fn steps(from: Option<LastStatus>, to: LastStatus, awsvpc: bool, ran: bool) -> Vec<LastStatus> {
    use LastStatus::*;
    let Some(from) = from else {
        return vec![to];
    };
    if to < from {
        return vec![];
    }
    if to == from {
        return vec![to]; // same status, new details (container states, health)
    }
    LastStatus::ALL
        .into_iter()
        .filter(|s| *s > from && *s <= to)
        .filter(|s| awsvpc || !matches!(s, Activating | Deactivating | Deprovisioning))
        // A task that never ran does not pass through RUNNING on its way to STOPPED.
        .filter(|s| ran || !matches!(s, Activating | Running))
        .collect()
}

/// Set the task's lastStatus to `step` with the supervisor's details.
fn apply(t: &mut Value, st: &TaskState, step: LastStatus, now: f64) -> bool {
    let before = t.clone();
    t["lastStatus"] = json!(step);
    let by_name: HashMap<&str, &berth_runtime::ContainerState> =
        st.containers.iter().map(|c| (c.name.as_str(), c)).collect();
    let task_id = t["taskArn"]
        .as_str()
        .and_then(|a| a.rsplit('/').next())
        .unwrap_or_default()
        .to_string();
    let mut health = vec![];
    let mut restarts = vec![];
    for c in t["containers"].as_array_mut().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or_default().to_string();
        let Some(s) = by_name.get(name.as_str()) else {
            continue;
        };
        c["lastStatus"] = json!(match s.status {
            berth_runtime::ContainerStatus::Pending => "PENDING",
            berth_runtime::ContainerStatus::Running => "RUNNING",
            berth_runtime::ContainerStatus::Stopped => "STOPPED",
        });
        if s.started_at.is_some() {
            c["runtimeId"] = json!(format!("{task_id}-{name}"));
        }
        match s.exit_code {
            Some(code) => c["exitCode"] = json!(code),
            // Restarted by its restart policy: running again, with no exit code.
            None if s.restart_count > 0 => {
                if let Some(o) = c.as_object_mut() {
                    o.remove("exitCode");
                }
            }
            None => {}
        }
        if s.restart_count > 0 {
            restarts.push((name.clone(), s.restart_count));
        }
        if let Some(r) = &s.reason {
            c["reason"] = json!(r);
        }
        let h = match s.health {
            berth_runtime::Health::Unknown => "UNKNOWN",
            berth_runtime::Health::Healthy => "HEALTHY",
            berth_runtime::Health::Unhealthy => "UNHEALTHY",
        };
        c["healthStatus"] = json!(h);
        health.push((name, h));
    }
    // The task is as healthy as its essential containers that have a health check, as ECS
    // reckons it: UNHEALTHY if one is, HEALTHY once all are, else UNKNOWN. Containers
    // without a check do not count.
    let checked: Vec<String> = berth_model::ecs::TaskPrivate::health_checked_in(t)
        .into_iter()
        .map(str::to_string)
        .collect();
    let counted: Vec<&str> = health
        .iter()
        .filter(|(name, _)| checked.iter().any(|c| c == name))
        .map(|(_, h)| *h)
        .collect();
    t["healthStatus"] = json!(if counted.contains(&"UNHEALTHY") {
        "UNHEALTHY"
    } else if !counted.is_empty() && counted.iter().all(|h| *h == "HEALTHY") {
        "HEALTHY"
    } else {
        "UNKNOWN"
    });
    for (name, n) in restarts {
        if t.get("_berth").is_some_and(Value::is_object) {
            let counts = &mut t["_berth"]["restartCounts"];
            if !counts.is_object() {
                *counts = json!({});
            }
            counts[name] = json!(n);
        }
    }
    if let (None, Some(at)) = (t.get("startedAt"), st.started_at) {
        t["startedAt"] = json!(at);
    }
    use LastStatus::*;
    match step {
        Running if t["connectivity"] != "CONNECTED" => {
            t["connectivity"] = json!("CONNECTED");
            t["connectivityAt"] = json!(now);
        }
        Deactivating | Stopping | Deprovisioning | Stopped => {
            t["desiredStatus"] = json!(DesiredStatus::Stopped);
            if t.get("stoppingAt").is_none() {
                t["stoppingAt"] = json!(st.stopping_at.unwrap_or(now));
            }
            if t.get("stopCode").is_none() {
                if let Some(c) = &st.stop_code {
                    t["stopCode"] = json!(c);
                }
            }
            if t.get("stoppedReason").is_none() {
                if let Some(r) = &st.stopped_reason {
                    t["stoppedReason"] = json!(r);
                }
            }
            set_attachment_status(
                t,
                match step {
                    Deactivating | Stopping => "ATTACHED",
                    Deprovisioning => "DETACHING",
                    _ => "DELETED",
                },
            );
            if step == Stopped {
                t["stoppedAt"] = json!(now);
                t["executionStoppedAt"] = json!(st.execution_stopped_at.unwrap_or(now));
                t["connectivity"] = json!("DISCONNECTED");
                for c in t["containers"].as_array_mut().into_iter().flatten() {
                    c["lastStatus"] = json!("STOPPED");
                }
            }
        }
        _ => {}
    }
    *t != before
}

/// Mark a task STOPPED that never ran.
pub(crate) fn finish(t: &mut Value, code: &str, reason: &str) {
    t["lastStatus"] = json!(LastStatus::Stopped);
    t["desiredStatus"] = json!(DesiredStatus::Stopped);
    if t.get("stopCode").is_none() {
        t["stopCode"] = json!(code);
    }
    if t.get("stoppedReason").is_none() && !reason.is_empty() {
        t["stoppedReason"] = json!(reason);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as f64 / 1000.0)
        .unwrap_or(0.0);
    for f in ["stoppingAt", "stoppedAt", "executionStoppedAt"] {
        if t.get(f).is_none() {
            t[f] = json!(now);
        }
    }
    t["connectivity"] = json!("DISCONNECTED");
    for c in t["containers"].as_array_mut().into_iter().flatten() {
        c["lastStatus"] = json!("STOPPED");
    }
    set_attachment_status(t, "DELETED");
}

/// The status of a task's network interface attachment, once it has one.
fn set_attachment_status(t: &mut Value, status: &str) {
    for a in t["attachments"].as_array_mut().into_iter().flatten() {
        if a["type"] == "ElasticNetworkInterface"
            && a["details"].as_array().is_some_and(|d| !d.is_empty())
        {
            a["status"] = json!(status);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restarted_container_is_running_with_its_restart_count() {
        let mut t = json!({
            "taskArn": "arn:aws:ecs:us-east-1:000000000000:task/c1/abc",
            "containers": [{"name": "app", "exitCode": 1, "lastStatus": "RUNNING"}],
            "_berth": {"ip": "10.0.0.5"},
        });
        let mut st = TaskState::new(TaskStatus::Running);
        st.containers.push(berth_runtime::ContainerState {
            name: "app".into(),
            status: berth_runtime::ContainerStatus::Running,
            pid: Some(7),
            exit_code: None,
            reason: None,
            started_at: Some(1.0),
            finished_at: None,
            health: berth_runtime::Health::Unknown,
            restart_count: 2,
        });
        apply(&mut t, &st, LastStatus::Running, 2.0);
        assert!(t["containers"][0].get("exitCode").is_none());
        assert_eq!(t["_berth"]["restartCounts"], json!({"app": 2}));
        assert_eq!(t["_berth"]["ip"], "10.0.0.5");
        let private = berth_model::ecs::TaskPrivate::of(&t);
        assert_eq!(private.restart_counts.get("app"), Some(&2));
    }

    #[test]
    fn steps_follow_ecs_order() {
        use LastStatus::*;
        assert_eq!(steps(Some(Pending), Running, false, true), [Running]);
        assert_eq!(
            steps(Some(Pending), Running, true, true),
            [Activating, Running]
        );
        assert_eq!(
            steps(Some(Running), Stopped, true, true),
            [Deactivating, Stopping, Deprovisioning, Stopped]
        );
        assert_eq!(
            steps(Some(Running), Stopped, false, true),
            [Stopping, Stopped]
        );
        // Never started: no RUNNING on the way down.
        assert_eq!(
            steps(Some(Pending), Stopped, false, false),
            [Stopping, Stopped]
        );
        // Over before the node heard: it still ran.
        assert_eq!(
            steps(Some(Pending), Stopped, false, true),
            [Running, Stopping, Stopped]
        );
        assert!(steps(Some(Stopped), Running, false, true).is_empty());
        // A record without a status ECS knows: straight to the target.
        assert_eq!(steps(None, Running, true, true), [Running]);
    }
}
