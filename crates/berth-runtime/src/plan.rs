//! What the node hands a task's supervisor (`plan.json` in the task directory) and what
//! the supervisor reports back (`state.json`, and the same document on its socket).
//! Both are plain data so that a restarted node can read them without the supervisor.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Everything the supervisor needs to run one task. Each container's OCI bundle
/// (`config.json`) is already written by the node under `containers/<name>/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskPlan {
    pub task_id: String,
    /// The OCI runtime binary (runc).
    pub runtime: PathBuf,
    /// The runtime's state directory (`--root`), Berth's own so other users of runc
    /// never see Berth's containers.
    pub runtime_root: PathBuf,
    /// cgroup path of the task, below the unified hierarchy's root (v2) or each
    /// controller's mount (v1), as `cgroup::TaskRoot::task` names it; containers sit below.
    pub cgroup: String,
    /// Task-level CPU limit as a CFS quota per 100 ms period (task `cpu` units / 1024 vCPU).
    pub cpu_quota_us: Option<i64>,
    /// Task-level memory limit in bytes.
    pub memory_limit: Option<i64>,
    /// Some container's definition asks for swap (`maxSwap`): the task's cgroup then
    /// does not forbid it. Without, tasks have no swap, as on Fargate.
    #[serde(default)]
    pub swap: bool,
    /// awsvpc: the task's address on Berth's bridge. Without it the task's namespace has
    /// loopback only.
    #[serde(default)]
    pub network: Option<berth_net::TaskNetwork>,
    /// networkMode host: the containers use the host's network namespace; the supervisor
    /// makes none.
    #[serde(default)]
    pub host_network: bool,
    pub containers: Vec<ContainerPlan>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerPlan {
    pub name: String,
    pub essential: bool,
    #[serde(default)]
    pub depends_on: Vec<Dependency>,
    /// Seconds between SIGTERM and SIGKILL when the container is stopped.
    pub stop_timeout_secs: u64,
    pub health_check: Option<HealthCheck>,
    /// Image layers for the overlay root filesystem, lowest first.
    pub layers: Vec<PathBuf>,
    /// The awslogs stream directory (segments of the log store) for stdout and stderr.
    pub log_stream: Option<PathBuf>,
    /// ECS's container restart policy (only when enabled).
    #[serde(default)]
    pub restart_policy: Option<RestartPolicy>,
    /// startTimeout: seconds to wait for the dependencies to be met, from the task's
    /// start, before giving up on the container.
    #[serde(default)]
    pub start_timeout_secs: Option<u64>,
}

/// A container that exits is restarted in place, unless its exit code is ignored or it
/// ran less than `attempt_period_secs` since it started (or was last restarted), as the
/// ECS agent decides it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RestartPolicy {
    #[serde(default)]
    pub ignored_exit_codes: Vec<i32>,
    pub attempt_period_secs: u64,
}

impl RestartPolicy {
    /// Whether a container that exited with `code` after running `ran` since it started
    /// (or was last restarted) is restarted.
    pub fn allows(&self, code: i32, ran: std::time::Duration) -> bool {
        !self.ignored_exit_codes.contains(&code) && ran.as_secs() >= self.attempt_period_secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn restart_needs_a_long_enough_run_and_a_code_not_ignored() {
        let p = RestartPolicy {
            ignored_exit_codes: vec![0, 3],
            attempt_period_secs: 60,
        };
        assert!(p.allows(1, Duration::from_secs(60)));
        assert!(p.allows(137, Duration::from_secs(600)));
        assert!(!p.allows(1, Duration::from_millis(59_999)));
        assert!(!p.allows(3, Duration::from_secs(600)));
        assert!(!p.allows(0, Duration::from_secs(600)));
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Dependency {
    pub container: String,
    /// START, COMPLETE, SUCCESS or HEALTHY.
    pub condition: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HealthCheck {
    /// The command as exec arguments (CMD-SHELL already turned into `/bin/sh -c`).
    pub command: Vec<String>,
    pub interval_secs: u64,
    pub timeout_secs: u64,
    pub retries: u32,
    pub start_period_secs: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContainerStatus {
    /// Waiting to be created (dependencies not met yet).
    Pending,
    Running,
    Stopped,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Health {
    Unknown,
    Healthy,
    Unhealthy,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerState {
    pub name: String,
    pub status: ContainerStatus,
    /// The container's init process on the host, while it runs.
    pub pid: Option<i32>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    /// Seconds since the epoch.
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    pub health: Health,
    /// How many times the restart policy restarted it.
    #[serde(default)]
    pub restart_count: u32,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    /// Containers are being created or wait for their dependencies.
    Pending,
    /// Every container that will run has started.
    Running,
    /// Containers are being signalled to stop.
    Stopping,
    /// Everything has exited and been cleaned up; the supervisor is gone or leaving.
    Stopped,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskState {
    pub status: TaskStatus,
    /// When the task reached RUNNING (its last container to start had started).
    pub started_at: Option<f64>,
    pub stopping_at: Option<f64>,
    /// When the last container exited.
    pub execution_stopped_at: Option<f64>,
    /// Set by the supervisor when it decided to stop: `EssentialContainerExited` or
    /// `TaskFailedToStart`. A stop asked for by the node leaves it unset.
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
    pub containers: Vec<ContainerState>,
}

impl TaskState {
    /// A task in `status` with nothing else known yet.
    pub fn new(status: TaskStatus) -> TaskState {
        TaskState {
            status,
            started_at: None,
            stopping_at: None,
            execution_stopped_at: None,
            stop_code: None,
            stopped_reason: None,
            containers: vec![],
        }
    }
}

/// A request on the supervisor's socket: one JSON object per line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    /// Answer the current state.
    State,
    /// Answer the current state, then a new line at every change, until the task stops.
    Watch,
    /// Stop every container: SIGTERM, then SIGKILL after its stopTimeout.
    Stop,
    /// Send a signal to one container's processes.
    Signal { container: String, signal: i32 },
    /// Run a command in a running container; answered when it exits or times out.
    Exec {
        container: String,
        args: Vec<String>,
        timeout_secs: u64,
    },
}

/// The answer to `exec`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExecResult {
    /// None when it timed out (and was killed) or could not start.
    pub exit_code: Option<i32>,
    /// Combined stdout and stderr, at most 64 KiB.
    pub output: String,
    pub error: Option<String>,
}
