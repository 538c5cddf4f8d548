//! A task's supervisor (`berth shim`): started detached, asked to stop, followed until
//! the task stops (its state mirrored into the record), and cleaned up after if it died.

use crate::Node;
use berth_runtime::{client, Request, TaskPlan, TaskState, TaskStatus};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

impl Node {
    /// Start the task's supervisor (`berth shim DIR`), detached in its own session, its
    /// listening socket made first and handed over as fd 3.
    pub(crate) async fn start_supervisor(&self, dir: &Path) -> Result<(), String> {
        let (cmd, listener) = client::command(&self.cfg.exe, dir)
            .map_err(|e| format!("cannot start the task supervisor: {e}"))?;
        // tokio reaps the supervisor when it exits, though nobody waits for it here.
        let child = tokio::process::Command::from(cmd)
            .spawn()
            .map_err(|e| format!("cannot start the task supervisor: {e}"))?;
        drop(listener);
        if let Some(pid) = child.id() {
            tokio::fs::write(dir.join("shim.pid"), pid.to_string())
                .await
                .map_err(|e| e.to_string())?;
        }
        drop(child);
        Ok(())
    }

    /// Pass a StopTask on to the task's supervisor.
    pub(crate) fn request_stop(self: &Arc<Self>, key: &str) {
        let dir = self.task_dir(key);
        let node = self.clone();
        let key = key.to_string();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = client::request(&dir, &Request::Stop) {
                // Not listening yet (still pulling) or gone: `supervise` asks
                // again once it is connected.
                tracing::debug!(error = %e, "stop request not delivered");
                node.stop_sent.lock().expect("lock").remove(&key);
            }
        });
    }

    /// Follow the supervisor's state until the task stops, mirroring it into the record.
    pub(crate) async fn supervise(self: &Arc<Self>, key: &str, dir: &Path) {
        let awsvpc = self.store.get(key).is_some_and(|r| {
            r.value["attachments"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        });
        // Follow the supervisor until it closes the socket (it exits right after its
        // final state); that final STOPPED is written last, below.
        let mut last: Option<TaskState> = None;
        let mut attempts = 0;
        loop {
            if let Ok(mut s) = tokio::net::UnixStream::connect(dir.join(client::SOCKET)).await {
                // A StopTask that came before the supervisor listened (or before a
                // restart) is passed on now.
                let stop_wanted = self
                    .store
                    .get(key)
                    .is_some_and(|r| r.value["desiredStatus"] == "STOPPED");
                if stop_wanted && self.stop_sent.lock().expect("lock").insert(key.to_string()) {
                    let d = dir.to_path_buf();
                    tokio::task::spawn_blocking(move || client::request(&d, &Request::Stop));
                }
                if s.write_all(b"{\"op\":\"watch\"}\n").await.is_ok() {
                    let mut lines = BufReader::new(s).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let Ok(st) = serde_json::from_str::<TaskState>(&line) else {
                            continue;
                        };
                        if st.status != TaskStatus::Stopped {
                            self.mirror(key, &st, awsvpc).await;
                        }
                        last = Some(st);
                    }
                }
            }
            if last
                .as_ref()
                .is_some_and(|s| s.status == TaskStatus::Stopped)
            {
                break;
            }
            // The stream ended before the final state: while the supervisor lives (it
            // drops a watcher it cannot write to), follow it again.
            attempts += 1;
            let d = dir.to_path_buf();
            let alive = tokio::task::spawn_blocking(move || client::alive(&d))
                .await
                .unwrap_or(false);
            if !alive || attempts > 100 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let dir2 = dir.to_path_buf();
        let (node, key2) = (self.clone(), key.to_string());
        let finished = last.filter(|s| s.status == TaskStatus::Stopped);
        let final_state = tokio::task::spawn_blocking(move || {
            let st = finished.or_else(|| berth_runtime::shim::recorded_state(&dir2));
            if st.as_ref().is_none_or(|s| s.status != TaskStatus::Stopped) {
                // The supervisor died before it finished, or lives but cannot be
                // followed (its socket is gone): end it, then clean up after it.
                client::kill(&dir2);
                if let Some(plan) = std::fs::read(dir2.join("plan.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<TaskPlan>(&b).ok())
                {
                    berth_runtime::shim::clean_up_after(&dir2, &plan);
                }
            }
            // Nothing of the task stays on disk, and its address is free again, once it
            // is reported STOPPED.
            if let Err(e) = std::fs::remove_dir_all(&dir2) {
                tracing::warn!(dir = %dir2.display(), error = %e, "cannot remove a stopped task's directory");
            }
            node.release_network(&key2);
            st
        })
        .await
        .ok()
        .flatten();
        let st = match final_state {
            Some(st) if st.status == TaskStatus::Stopped => st,
            other => {
                let mut st = other.unwrap_or_else(|| TaskState::new(TaskStatus::Stopped));
                st.status = TaskStatus::Stopped;
                st.stop_code.get_or_insert("TaskFailedToStart".into());
                st.stopped_reason
                    .get_or_insert("The task's supervisor ended unexpectedly".into());
                for c in &mut st.containers {
                    c.status = berth_runtime::ContainerStatus::Stopped;
                }
                st
            }
        };
        self.mirror(key, &st, awsvpc).await;
        self.forget(key);
    }

    /// Ask every running supervisor to stop its task, and wait until all are gone
    /// (for `berth down`).
    pub fn stop_all(tasks_dir: &Path) -> usize {
        let dirs: Vec<PathBuf> = std::fs::read_dir(tasks_dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|d| client::alive(d))
            .collect();
        for d in &dirs {
            let _ = client::request(d, &Request::Stop);
        }
        dirs.len()
    }
}
