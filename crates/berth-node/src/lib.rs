//! berth-node: the local agent. It watches the store for ECS tasks placed on this host,
//! pulls their images, writes each container's OCI bundle and the task's plan into the
//! task's directory, starts the task's supervisor, and mirrors what the supervisor
//! reports into the task record (lastStatus, containers, exit codes, timestamps).
//!
//! Boundaries: it reads task definitions and writes task records in the store; it never
//! calls a service module. The supervisor owns the containers; the node only asks.
//!
//! One job per module: `watch` (the watch loop, dispatching each task record),
//! `adopt` (what a previous run left), `launch` (a task's start, step by step),
//! `network` (its address and ports), `pull` (its images), `bundle` (its bundles and
//! plan), `supervise` (its supervisor), `status` (the task record and ECS's lastStatus
//! order); `host` is the host's bring-up and undoing for `berth up` and `berth down`.

mod adopt;
mod bundle;
pub mod dns;
pub mod endpoints;
pub mod host;
mod launch;
mod network;
mod pull;
pub mod resolve;
mod status;
mod supervise;
mod watch;

use berth_image::{ImageRef, Puller};
use berth_net::HostNetwork;
use berth_store::Store;
use berth_wire::Clock;
use serde_json::Value;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Makes sure an awslogs stream exists: (account, region, group, stream, create group)
/// to the stream's directory in the log store, or the reason it cannot.
pub type LogStreams =
    Arc<dyn Fn(&str, &str, &str, &str, bool) -> Result<PathBuf, String> + Send + Sync>;
/// Basic credentials for a registry, given the image and the task's account and region.
pub type RegistryAuth =
    Arc<dyn Fn(&ImageRef, &str, &str) -> Option<(String, String)> + Send + Sync>;

/// The bytes of an environment file, given the task's account and the file's S3 ARN, or
/// why they cannot be read.
pub type EnvFiles = Arc<dyn Fn(&str, &str) -> Result<Vec<u8>, String> + Send + Sync>;

pub struct NodeConfig {
    /// One directory per task: plan, bundles, supervisor socket and state.
    pub tasks_dir: PathBuf,
    /// The berth binary, re-executed as the supervisor.
    pub exe: PathBuf,
    /// The OCI runtime (runc) and its state directory.
    pub runtime: PathBuf,
    pub runtime_root: PathBuf,
    /// Where tasks' cgroups go on this host (`host::set_up_runtime` made it ready).
    pub cgroups: berth_runtime::cgroup::TaskRoot,
    /// The host's side of task networking, or why this host has none (awsvpc tasks then
    /// fail with that reason).
    pub network: Result<Arc<HostNetwork>, String>,
    /// Berth's API as tasks reach it (AWS_ENDPOINT_URL), when the edge listens on the
    /// bridge.
    pub endpoint_url: Option<String>,
    /// Where bridge-mode tasks take their addresses from.
    pub bridge_cidr: berth_net::Cidr,
    /// Berth's resolver on the bridge, for the resolv.conf of tasks on the bridge.
    pub task_resolver: Option<std::net::Ipv4Addr>,
}

pub struct Node {
    store: Arc<dyn Store>,
    clock: Clock,
    puller: Arc<Puller>,
    cfg: NodeConfig,
    log_streams: LogStreams,
    registry_auth: RegistryAuth,
    env_files: EnvFiles,
    /// Task keys this node is running (launching, supervising or stopping).
    active: Mutex<HashSet<String>>,
    /// Task keys whose supervisor has been asked to stop.
    stop_sent: Mutex<HashSet<String>>,
}

/// `/{account}/{region}/ecs/task/{cluster}/{id}`, taken apart (berth-model's codec).
fn parse_key(key: &str) -> Option<berth_model::ecs::TaskId> {
    berth_model::ecs::TaskId::parse_key(key)
}

fn is_final(task: &Value) -> bool {
    berth_model::ecs::is_stopped(task)
}

impl Node {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Clock,
        puller: Arc<Puller>,
        cfg: NodeConfig,
        log_streams: LogStreams,
        registry_auth: RegistryAuth,
        env_files: EnvFiles,
    ) -> std::io::Result<Arc<Node>> {
        std::fs::create_dir_all(&cfg.tasks_dir)?;
        std::fs::create_dir_all(&cfg.runtime_root)?;
        // berth-init, for containers with initProcessEnabled; rewritten at each start so
        // it matches this binary.
        let init = cfg.tasks_dir.join(".berth-init");
        let tmp = cfg.tasks_dir.join(".berth-init.tmp");
        std::fs::write(&tmp, berth_runtime::spec::INIT_BINARY)?;
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        std::fs::rename(&tmp, &init)?;
        Ok(Arc::new(Node {
            store,
            clock,
            puller,
            cfg,
            log_streams,
            registry_auth,
            env_files,
            active: Mutex::new(HashSet::new()),
            stop_sent: Mutex::new(HashSet::new()),
        }))
    }

    fn task_dir(&self, key: &str) -> PathBuf {
        let k = parse_key(key).expect("task key");
        self.cfg.tasks_dir.join(k.id)
    }
}
