//! The watch loop: every change to a task record comes here and goes to what acts on
//! it (a launch, a stop request, adoption or settling at start).

use crate::status::finish;
use crate::{is_final, parse_key, Node};
use berth_model::ecs::LastStatus;
use std::sync::Arc;

impl Node {
    /// Watch the store and act on every task record; adopt or settle the tasks a
    /// previous run left.
    pub fn spawn(self: &Arc<Self>) {
        let node = self.clone();
        let mut rx = self.store.watch();
        tokio::spawn(async move {
            node.resume().await;
            loop {
                match rx.recv().await {
                    Ok(ev) => {
                        if parse_key(&ev.key).is_some() && ev.kind == berth_store::EventKind::Put {
                            node.on_task(&ev.key, false);
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        // Missed events: look at every unfinished task again.
                        for key in node.unfinished_tasks() {
                            node.on_task(&key, false);
                        }
                    }
                    Err(_) => return,
                }
            }
        });
    }

    /// Keys of every task record not yet STOPPED.
    pub(crate) fn unfinished_tasks(&self) -> Vec<String> {
        self.store
            .list("/")
            .into_iter()
            .filter(|r| parse_key(&r.key).is_some() && !is_final(&r.value))
            .map(|r| r.key)
            .collect()
    }

    pub(crate) fn on_task(self: &Arc<Self>, key: &str, at_start: bool) {
        let Some(r) = self.store.get(key) else { return };
        let task = &r.value;
        if is_final(task) {
            return;
        }
        let active = self.active.lock().expect("lock").contains(key);
        if active {
            if task["desiredStatus"] == "STOPPED"
                && self.stop_sent.lock().expect("lock").insert(key.to_string())
            {
                self.request_stop(key);
            }
            return;
        }
        let dir = self.task_dir(key);
        if at_start && dir.join("plan.json").exists() {
            // A task from before a restart: adopt its supervisor, or settle it.
            self.adopt(key, dir);
            return;
        }
        // A launch that a restart cut short before the plan (PENDING: pulling) starts over.
        let launchable = match LastStatus::of(task) {
            Some(LastStatus::Provisioning) => true,
            Some(LastStatus::Pending) => at_start,
            _ => false,
        };
        if !launchable {
            if at_start {
                // Past the plan but no task directory: nothing runs any more; say so.
                self.settle_lost(key);
            }
            return;
        }
        if task["desiredStatus"] == "STOPPED" {
            let _ = self.update(key, |t| {
                finish(
                    t,
                    t["stopCode"]
                        .as_str()
                        .unwrap_or("UserInitiated")
                        .to_string()
                        .as_str(),
                    "",
                );
                true
            });
            return;
        }
        self.active.lock().expect("lock").insert(key.to_string());
        let node = self.clone();
        let key = key.to_string();
        tokio::spawn(async move { node.run(&key, &dir).await });
    }

    pub(crate) fn forget(&self, key: &str) {
        self.active.lock().expect("lock").remove(key);
        self.stop_sent.lock().expect("lock").remove(key);
    }
}
