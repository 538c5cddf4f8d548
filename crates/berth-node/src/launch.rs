//! A task's launch, step by step while it is PROVISIONING and PENDING: its task
//! definition, its network, its images, its bundles and plan, then its supervisor.

use crate::network::network_mode;
use crate::status::finish;
use crate::{parse_key, Node};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

impl Node {
    /// Launch the task, then follow its supervisor; a launch that fails is recorded
    /// STOPPED with its reason, and what it took is given back.
    pub(crate) async fn run(self: &Arc<Self>, key: &str, dir: &Path) {
        match self.launch(key, dir).await {
            Ok(()) => self.supervise(key, dir).await,
            Err(reason) => {
                tracing::info!(task = %key, %reason, "task failed to start");
                let _ = tokio::fs::remove_dir_all(dir).await;
                let (n, k) = (self.clone(), key.to_string());
                let _ = tokio::task::spawn_blocking(move || n.release_network(&k)).await;
                self.update_async(key, move |t| {
                    for c in t["containers"].as_array_mut().into_iter().flatten() {
                        c["lastStatus"] = json!("STOPPED");
                        if c.get("reason").is_none() {
                            c["reason"] = json!(reason);
                        }
                    }
                    finish(t, "TaskFailedToStart", &reason);
                    true
                })
                .await;
                self.forget(key);
            }
        }
    }

    /// Pull, prepare the bundles, and start the supervisor. Err is the stopped reason.
    async fn launch(self: &Arc<Self>, key: &str, dir: &Path) -> Result<(), String> {
        let k = parse_key(key).expect("task key");
        let (account, region, task_id) = (
            k.account.to_string(),
            k.region.to_string(),
            k.id.to_string(),
        );
        let task = self.store.get(key).ok_or("task record vanished")?.value;
        // The definition as it was at RunTask, kept in the task record: a definition
        // deregistered or deleted since cannot strand the task.
        let td = berth_model::ecs::TaskPrivate::of(&task)
            .definition
            .ok_or("the task record holds no task definition")?;
        let defs: Vec<Value> = td["containerDefinitions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        // The network interface is attached while the task is PROVISIONING, as on ECS.
        let host_network = network_mode(&task, &td) == "host";
        let network = {
            let (node, key2) = (self.clone(), key.to_string());
            let td2 = td.clone();
            tokio::task::spawn_blocking(move || node.attach_network(&key2, &td2))
                .await
                .map_err(|e| e.to_string())??
        };
        let now = self.clock.now();
        self.update_async(key, move |t| {
            t["lastStatus"] = json!("PENDING");
            t["pullStartedAt"] = json!(now);
            true
        })
        .await;

        let images = self.pull_images(&defs, &account, &region).await;
        self.record_pulls(key, &images).await?;

        let node = self.clone();
        let dir2 = dir.to_path_buf();
        // The record as the attachment left it (addresses and endpoint ids).
        let task2 = self
            .store
            .get(key)
            .map(|r| (*r.value).clone())
            .unwrap_or_else(|| (*task).clone());
        let (acct2, region2) = (account.clone(), region.clone());
        let plan = tokio::task::spawn_blocking(move || {
            node.prepare(
                &dir2,
                &task2,
                &td,
                &defs,
                &images,
                &acct2,
                &region2,
                &task_id,
                network.as_ref(),
                host_network,
            )
        })
        .await
        .map_err(|e| e.to_string())??;
        // StopTask may have come while we pulled: then nothing starts.
        if self
            .store
            .get(key)
            .is_some_and(|r| r.value["desiredStatus"] == "STOPPED")
        {
            return Err("Task stopped before its containers started".into());
        }
        let json = serde_json::to_vec_pretty(&plan).map_err(|e| e.to_string())?;
        tokio::fs::write(dir.join("plan.json"), json)
            .await
            .map_err(|e| e.to_string())?;
        self.start_supervisor(dir).await
    }
}
