//! At start, what a previous run left: leases no running task holds are freed, the
//! supervisors of tasks still running are followed again (or their tasks settled), and
//! tasks whose directory is gone are recorded STOPPED.

use crate::status::finish;
use crate::{is_final, parse_key, Node};
use berth_leases::ipam;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

impl Node {
    /// Before the watch loop: free stale leases, then adopt or settle every unfinished
    /// task.
    pub(crate) async fn resume(self: &Arc<Self>) {
        let n = self.clone();
        let _ = tokio::task::spawn_blocking(move || n.sweep_leases()).await;
        for key in self.unfinished_tasks() {
            self.on_task(&key, true);
        }
    }

    /// A task with a plan from before a restart: follow its supervisor again, or settle
    /// the task if it is gone (`supervise` does both).
    pub(crate) fn adopt(self: &Arc<Self>, key: &str, dir: PathBuf) {
        self.active.lock().expect("lock").insert(key.to_string());
        let node = self.clone();
        let key = key.to_string();
        tokio::spawn(async move { node.supervise(&key, &dir).await });
    }

    /// A task past its plan with no task directory: nothing runs any more; say so.
    pub(crate) fn settle_lost(&self, key: &str) {
        self.release_network(key);
        let _ = self.update(key, |t| {
            finish(
                t,
                "TaskFailedToStart",
                "The task's directory was lost while Berth was down",
            );
            true
        });
    }

    /// Free the leases whose task is gone or stopped (a crash between leasing and
    /// recording, or while a stop was being reported).
    fn sweep_leases(&self) {
        // Port mappings of tasks that no longer run (a crash between mapping and release).
        if self.cfg.network.is_ok() {
            let live: HashSet<String> = self
                .unfinished_tasks()
                .iter()
                .filter_map(|k| parse_key(k).map(|p| p.id.to_string()))
                .collect();
            for id in berth_net::host::mapped_tasks().unwrap_or_default() {
                if !live.contains(&id) {
                    let _ = berth_net::host::unmap_ports(&id);
                }
            }
        }
        for r in self.store.list(berth_leases::ports::PORTS) {
            // Published load balancer listeners' ports are the ELBv2 API's.
            let Some(arn) = r.value["owner"]
                .as_str()
                .filter(|o| o.starts_with("arn:aws:ecs:"))
            else {
                continue;
            };
            let live = berth_model::ecs::TaskId::parse_arn(arn)
                .map(|t| t.key())
                .and_then(|k| self.store.get(&k))
                .is_some_and(|t| !is_final(&t.value));
            if !live {
                if let Err(e) = berth_leases::ports::release_all(self.store.as_ref(), arn) {
                    tracing::warn!(task = arn, error = %e, "cannot free a stopped task's ports; the next start tries again");
                }
            }
        }
        for (ip, owner) in ipam::leases(self.store.as_ref()) {
            // Load balancers' addresses are the ELBv2 API's to give back, not the node's.
            let Some(arn) = owner.as_str().filter(|o| o.starts_with("arn:aws:ecs:")) else {
                continue;
            };
            let live = berth_model::ecs::TaskId::parse_arn(arn)
                .map(|t| t.key())
                .and_then(|k| self.store.get(&k))
                .is_some_and(|r| {
                    !is_final(&r.value)
                        && berth_model::ecs::TaskPrivate::of(&r.value).ip == Some(ip.to_string())
                });
            if !live {
                tracing::info!(%ip, task = arn, "freeing the address of a task that no longer runs");
                if let Err(e) = ipam::release(self.store.as_ref(), ip, arn) {
                    tracing::warn!(%ip, task = arn, error = %e, "cannot free the address; the next start tries again");
                }
            }
        }
    }
}
