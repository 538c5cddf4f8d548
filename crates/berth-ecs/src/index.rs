//! What the service scheduler knows without listing the store: each service's tasks, the
//! services a change concerns, and the stopped tasks in the order their retention ends.
//! Built once from the store, then kept by the store's change events, so a pass reads only
//! the services a change woke and only their own tasks, however many tasks a cluster has
//! had.

use berth_model::ecs::TaskId;
use berth_store::{EventKind, Store};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap, HashSet};

/// `/{account}/{region}/ecs/service/{cluster}/`: the prefix of a cluster's services.
fn services_prefix(account: &str, region: &str, cluster: &str) -> String {
    format!("/{account}/{region}/ecs/service/{cluster}/")
}

/// The service a task counts for: its group `service:NAME`, in its cluster.
fn service_of(task: &TaskId, value: &Value) -> Option<String> {
    let name = value["group"].as_str()?.strip_prefix("service:")?;
    Some(format!(
        "{}{name}",
        services_prefix(&task.account, &task.region, &task.cluster)
    ))
}

fn is_service_key(key: &str) -> bool {
    let p: Vec<&str> = key.split('/').collect();
    p.len() == 7 && p[3] == "ecs" && p[4] == "service"
}

/// Milliseconds since the epoch a stopped task stopped at (its record's stoppedAt, in
/// seconds; a STOPPED record without one counts from its discovery, `now`).
fn stopped_ms(value: &Value, now: f64) -> Option<i64> {
    (value["lastStatus"] == "STOPPED")
        .then(|| (value["stoppedAt"].as_f64().unwrap_or(now) * 1000.0) as i64)
}

#[derive(Default)]
pub(crate) struct TaskIndex {
    /// Every service key seen, with the keys of its tasks (kept until deleted).
    services: HashMap<String, BTreeSet<String>>,
    /// Each indexed task's service and stop time, to undo its entries.
    tasks: HashMap<String, (Option<String>, Option<i64>)>,
    /// Stopped tasks by stop time.
    stopped: BTreeSet<(i64, String)>,
    /// Services a change concerns since the last pass.
    dirty: HashSet<String>,
}

impl TaskIndex {
    /// The index of everything in `store`, every service due for a pass.
    pub(crate) fn build(store: &dyn Store, now: f64) -> TaskIndex {
        let mut ix = TaskIndex::default();
        for r in store.list("/") {
            if is_service_key(&r.key) {
                ix.services.entry(r.key.clone()).or_default();
            } else if let Some(t) = TaskId::parse_key(&r.key) {
                ix.put_task(&r.key, &t, &r.value, now);
            }
        }
        ix.dirty = ix.services.keys().cloned().collect();
        ix
    }

    fn put_task(&mut self, key: &str, t: &TaskId, value: &Value, now: f64) {
        self.remove_task(key);
        let service = service_of(t, value);
        if let Some(s) = &service {
            self.services
                .entry(s.clone())
                .or_default()
                .insert(key.to_string());
            self.dirty.insert(s.clone());
        }
        let stopped = stopped_ms(value, now);
        if let Some(ms) = stopped {
            self.stopped.insert((ms, key.to_string()));
        }
        self.tasks.insert(key.to_string(), (service, stopped));
    }

    fn remove_task(&mut self, key: &str) {
        if let Some((service, stopped)) = self.tasks.remove(key) {
            if let Some(s) = service {
                if let Some(set) = self.services.get_mut(&s) {
                    set.remove(key);
                }
                self.dirty.insert(s);
            }
            if let Some(ms) = stopped {
                self.stopped.remove(&(ms, key.to_string()));
            }
        }
    }

    /// Take in one change of the store. True when it may give the scheduler work.
    pub(crate) fn apply(
        &mut self,
        store: &dyn Store,
        kind: &EventKind,
        key: &str,
        now: f64,
    ) -> bool {
        if let Some(t) = TaskId::parse_key(key) {
            match (kind, store.get(key)) {
                (EventKind::Put, Some(r)) => self.put_task(key, &t, &r.value, now),
                _ => self.remove_task(key),
            }
            return true;
        }
        if is_service_key(key) {
            if *kind == EventKind::Delete {
                self.services.remove(key);
            } else {
                self.services.entry(key.to_string()).or_default();
                self.dirty.insert(key.to_string());
            }
            return true;
        }
        if let Some((account, region, cluster)) = container_instance_cluster(key) {
            // A DRAINING instance moves its cluster's service tasks.
            let prefix = services_prefix(account, region, cluster);
            let of_cluster: Vec<String> = self
                .services
                .keys()
                .filter(|s| s.starts_with(&prefix))
                .cloned()
                .collect();
            self.dirty.extend(of_cluster);
            return true;
        }
        if berth_model::elbv2::key::is_targets_key(key) {
            // A target turning healthy or leaving its group after draining may advance a
            // rollout of any service behind a load balancer.
            self.dirty.extend(self.services.keys().cloned());
            return true;
        }
        false
    }

    /// Mark every service due, e.g. after missed events (the index is rebuilt first).
    pub(crate) fn mark_all(&mut self) {
        self.dirty.extend(self.services.keys().cloned());
    }

    /// The services due for a pass, each with its tasks' keys; none is due afterwards.
    pub(crate) fn take_dirty(&mut self) -> Vec<(String, Vec<String>)> {
        let mut due: Vec<String> = self.dirty.drain().collect();
        due.sort();
        due.into_iter()
            .map(|s| {
                let tasks = self
                    .services
                    .get(&s)
                    .map(|t| t.iter().cloned().collect())
                    .unwrap_or_default();
                (s, tasks)
            })
            .collect()
    }

    /// Put services back for the next pass (those that have not settled).
    pub(crate) fn mark(&mut self, services: impl IntoIterator<Item = String>) {
        self.dirty.extend(services);
    }

    /// Stopped tasks whose retention has ended at `now`, oldest first.
    pub(crate) fn expired(&self, now: f64, retention_secs: f64) -> Vec<String> {
        let until = ((now - retention_secs) * 1000.0) as i64;
        self.stopped
            .iter()
            .take_while(|(ms, _)| *ms <= until)
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// A task deleted: out of the index (its change event then finds nothing to undo).
    pub(crate) fn forget(&mut self, key: &str) {
        self.remove_task(key);
    }

    /// A stopped task that cannot go yet: looked at again one retention later.
    pub(crate) fn postpone(&mut self, key: &str, now: f64) {
        if let Some((_, Some(ms))) = self.tasks.get(key).cloned() {
            self.stopped.remove(&(ms, key.to_string()));
            let later = (now * 1000.0) as i64;
            self.stopped.insert((later, key.to_string()));
            if let Some(t) = self.tasks.get_mut(key) {
                t.1 = Some(later);
            }
        }
    }

    /// How many tasks the index holds (for tests and the benchmark's log).
    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }
}

/// `/{account}/{region}/ecs/container-instance/{cluster}/{id}`: its account, region, cluster.
fn container_instance_cluster(key: &str) -> Option<(&str, &str, &str)> {
    let p: Vec<&str> = key.split('/').collect();
    (p.len() == 7 && p[3] == "ecs" && p[4] == "container-instance").then(|| (p[1], p[2], p[5]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_store::{Op, SqliteStore};
    use serde_json::json;

    const S: &str = "/1/r/ecs/service/c/web";

    #[test]
    fn follows_tasks_by_service_and_stop_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db")).unwrap();
        let put = |k: &str, v: Value| store.txn(&[], vec![Op::Put(k.into(), v)]).unwrap();
        put(S, json!({"status": "ACTIVE"}));
        put(
            "/1/r/ecs/task/c/a",
            json!({"group": "service:web", "lastStatus": "RUNNING"}),
        );
        put(
            "/1/r/ecs/task/c/b",
            json!({"group": "family:x", "lastStatus": "STOPPED", "stoppedAt": 100.0}),
        );
        let mut ix = TaskIndex::build(&store, 0.0);
        assert_eq!(
            ix.take_dirty(),
            vec![(S.to_string(), vec!["/1/r/ecs/task/c/a".to_string()])]
        );
        assert!(ix.take_dirty().is_empty(), "nothing changed since");

        // A task wakes its own cluster's service; an instance of a cluster without services, none.
        put("/1/r/ecs/task/d/z", json!({"group": "service:web"}));
        assert!(ix.apply(&store, &EventKind::Put, "/1/r/ecs/task/d/z", 0.0));
        assert_eq!(ix.take_dirty()[0].0, "/1/r/ecs/service/d/web");
        assert!(ix.apply(
            &store,
            &EventKind::Put,
            "/1/r/ecs/container-instance/e/i",
            0.0
        ));
        assert!(ix.take_dirty().is_empty());
        assert!(ix.apply(
            &store,
            &EventKind::Put,
            "/1/r/ecs/container-instance/c/i",
            0.0
        ));
        assert_eq!(ix.take_dirty()[0].0, S);
        assert!(!ix.apply(
            &store,
            &EventKind::Put,
            "/1/r/ecs/taskdef/x/0000000001",
            0.0
        ));

        // The service's task stops: it is retained, then expires after the retention.
        put(
            "/1/r/ecs/task/c/a",
            json!({"group": "service:web", "lastStatus": "STOPPED", "stoppedAt": 200.0}),
        );
        ix.apply(&store, &EventKind::Put, "/1/r/ecs/task/c/a", 0.0);
        assert_eq!(
            ix.expired(3700.0, 3600.0),
            vec!["/1/r/ecs/task/c/b".to_string()]
        );
        assert_eq!(ix.expired(3800.0, 3600.0).len(), 2);
        store
            .txn(&[], vec![Op::Delete("/1/r/ecs/task/c/a".into())])
            .unwrap();
        ix.apply(&store, &EventKind::Delete, "/1/r/ecs/task/c/a", 0.0);
        assert_eq!(ix.take_dirty(), vec![(S.to_string(), vec![])]);
        assert_eq!(
            ix.expired(3800.0, 3600.0),
            vec!["/1/r/ecs/task/c/b".to_string()]
        );
        assert_eq!(ix.len(), 2);
    }
}
