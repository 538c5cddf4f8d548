//! berth-node: the local agent. It watches the store for ECS tasks placed on this host,
//! pulls their images, writes each container's OCI bundle and the task's plan into the
//! task's directory, starts the task's supervisor, and mirrors what the supervisor
//! reports into the task record (lastStatus, containers, exit codes, timestamps).
//!
//! Boundaries: it reads task definitions and writes task records in the store; it never
//! calls a service module. The supervisor owns the containers; the node only asks.

pub mod dns;
pub mod endpoints;
pub mod resolve;

use berth_image::{ImageRef, Puller};
use berth_leases::ipam;
use berth_net::{HostNetwork, TaskNetwork};
use berth_runtime::{client, ContainerPlan, Request, TaskPlan, TaskState, TaskStatus};
use berth_store::{Cond, Op, Store, StoreError};
use berth_wire::Clock;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

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

/// `/{account}/{region}/ecs/task/{cluster}/{id}`, taken apart.
struct TaskKey<'a> {
    account: &'a str,
    region: &'a str,
    id: &'a str,
}

fn parse_key(key: &str) -> Option<TaskKey<'_>> {
    let parts: Vec<&str> = key.split('/').collect();
    // ["", account, region, "ecs", "task", cluster, id]
    if parts.len() != 7 || parts[3] != "ecs" || parts[4] != "task" {
        return None;
    }
    Some(TaskKey {
        account: parts[1],
        region: parts[2],
        id: parts[6],
    })
}

fn is_final(task: &Value) -> bool {
    task["lastStatus"] == "STOPPED"
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

    /// Watch the store and act on every task record; adopt or settle the tasks a
    /// previous run left.
    pub fn spawn(self: &Arc<Self>) {
        let node = self.clone();
        let mut rx = self.store.watch();
        tokio::spawn(async move {
            let n = node.clone();
            let _ = tokio::task::spawn_blocking(move || n.sweep_leases()).await;
            for key in node.unfinished_tasks() {
                node.on_task(&key, true);
            }
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

    /// crun takes the seccomp filter compiled once; runc compiles it at every start.
    fn precompiled_seccomp(&self) -> bool {
        self.cfg.runtime.file_name().is_some_and(|n| n == "crun")
    }

    /// Keys of every task record not yet STOPPED.
    fn unfinished_tasks(&self) -> Vec<String> {
        self.store
            .list("/")
            .into_iter()
            .filter(|r| parse_key(&r.key).is_some() && !is_final(&r.value))
            .map(|r| r.key)
            .collect()
    }

    fn task_dir(&self, key: &str) -> PathBuf {
        let k = parse_key(key).expect("task key");
        self.cfg.tasks_dir.join(k.id)
    }

    fn on_task(self: &Arc<Self>, key: &str, at_start: bool) {
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
            return;
        }
        let dir = self.task_dir(key);
        if at_start && dir.join("plan.json").exists() {
            // A task from before a restart: adopt its supervisor, or settle it.
            self.active.lock().expect("lock").insert(key.to_string());
            let node = self.clone();
            let key = key.to_string();
            tokio::spawn(async move { node.supervise(&key, &dir).await });
            return;
        }
        // A launch that a restart cut short before the plan (PENDING: pulling) starts over.
        let launchable =
            task["lastStatus"] == "PROVISIONING" || (at_start && task["lastStatus"] == "PENDING");
        if !launchable {
            if at_start {
                // Past the plan but no task directory: nothing runs any more; say so.
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
        tokio::spawn(async move {
            match node.launch(&key, &dir).await {
                Ok(()) => node.supervise(&key, &dir).await,
                Err(reason) => {
                    tracing::info!(task = %key, %reason, "task failed to start");
                    let _ = tokio::fs::remove_dir_all(&dir).await;
                    let (n, k) = (node.clone(), key.clone());
                    let _ = tokio::task::spawn_blocking(move || n.release_network(&k)).await;
                    node.update_async(&key, move |t| {
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
                    node.forget(&key);
                }
            }
        });
    }

    /// Give the task its network as its mode asks, before its containers exist:
    /// awsvpc an address in one of its subnets; bridge an address in Berth's bridge range
    /// and its port mappings; host its fixed ports; none nothing. Everything taken is
    /// recorded in the task, so `release_network` gives it back whatever happens next.
    fn attach_network(&self, key: &str, td: &Value) -> Result<Option<TaskNetwork>, String> {
        let task = self.store.get(key).ok_or("task record vanished")?.value;
        let mode = network_mode(&task, td);
        let r = match mode {
            "awsvpc" | "bridge" => self.attach_address(key, &task, td, mode).map(Some),
            "host" => self.claim_host_ports(key, &task, td).map(|()| None),
            _ => Ok(None),
        };
        if r.is_err() {
            self.release_network(key);
        }
        r
    }

    /// An address on the bridge for an awsvpc or bridge task, recorded as ECS shows it.
    fn attach_address(
        &self,
        key: &str,
        task: &Value,
        td: &Value,
        mode: &str,
    ) -> Result<TaskNetwork, String> {
        let host = self.cfg.network.as_ref().map_err(|e| {
            format!("ResourceInitializationError: this host cannot give tasks a network: {e}")
        })?;
        let k = parse_key(key).expect("task key");
        let arn = task["taskArn"].as_str().unwrap_or_default().to_string();
        let subnets: Vec<(ipam::Candidate, String)> = if mode == "bridge" {
            vec![(
                ipam::Candidate {
                    subnet_id: "bridge".into(),
                    cidr: self.cfg.bridge_cidr,
                },
                String::new(),
            )]
        } else {
            task["_berth"]["subnets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| {
                    Some((
                        ipam::Candidate {
                            subnet_id: s["subnetId"].as_str()?.to_string(),
                            cidr: berth_net::Cidr::parse(s["cidrBlock"].as_str()?)?,
                        },
                        s["availabilityZone"].as_str()?.to_string(),
                    ))
                })
                .collect()
        };
        let held = task["_berth"]["ip"]
            .as_str()
            .and_then(|ip| ip.parse().ok())
            .and_then(|ip| ipam::lease_of(self.store.as_ref(), ip, &arn));
        let lease = match held {
            Some(l) => l,
            None => {
                let candidates: Vec<ipam::Candidate> =
                    subnets.iter().map(|(c, _)| c.clone()).collect();
                // Spread tasks over their subnets (and so zones), as ECS does.
                let start = k.id.bytes().map(usize::from).sum::<usize>();
                let lease = ipam::allocate(self.store.as_ref(), &candidates, start, &arn)
                    .map_err(|e| format!("ResourceInitializationError: {e}"))?;
                // Recorded at once, so a failure from here on gives it back.
                let ip = lease.ip.to_string();
                self.update(key, |t| {
                    t["_berth"]["ip"] = json!(ip);
                    true
                })
                .map_err(|e| format!("cannot record the task's address: {e}"))?;
                lease
            }
        };
        host.ensure_subnet(lease.cidr).map_err(|e| {
            format!("ResourceInitializationError: cannot attach the task's network interface: {e}")
        })?;
        let bindings = if mode == "bridge" {
            self.map_ports(host, key, task, td, lease.ip)?
        } else {
            HashMap::new()
        };
        let zone = subnets
            .iter()
            .find(|(c, _)| c.subnet_id == lease.subnet_id && !c.subnet_id.is_empty())
            .map(|(_, z)| z.clone())
            .filter(|z| !z.is_empty());
        let ip = lease.ip.to_string();
        let details = json!([
            {"name": "subnetId", "value": lease.subnet_id},
            {"name": "networkInterfaceId", "value": format!("eni-{}", &k.id[..17.min(k.id.len())])},
            {"name": "macAddress", "value": berth_net::task::mac_string(berth_net::task::mac_for(lease.ip))},
            {"name": "privateDnsName", "value": private_dns_name(lease.ip, k.region)},
            {"name": "privateIPv4Address", "value": ip},
        ]);
        let role = task["overrides"]["taskRoleArn"]
            .as_str()
            .or(td["taskRoleArn"].as_str())
            .map(str::to_string);
        self.update(key, |t| {
            t["_berth"]["cidr"] = json!(lease.cidr.to_string());
            t["_berth"]["networkMode"] = json!(mode);
            // The ids in the task's endpoint paths: random, and only ever given to it.
            if t["_berth"]["endpointToken"].is_null() {
                t["_berth"]["endpointToken"] = json!(uuid::Uuid::new_v4().simple().to_string());
            }
            if let (Some(r), true) = (&role, t["_berth"]["credentialsId"].is_null()) {
                t["_berth"]["credentialsId"] = json!(uuid::Uuid::new_v4().to_string());
                t["_berth"]["taskRoleArn"] = json!(r);
            }
            if mode == "awsvpc" {
                if let Some(z) = &zone {
                    t["availabilityZone"] = json!(z);
                }
                let mut attachment_id = Value::Null;
                for a in t["attachments"].as_array_mut().into_iter().flatten() {
                    if a["type"] == "ElasticNetworkInterface" {
                        a["status"] = json!("ATTACHED");
                        a["details"] = details.clone();
                        attachment_id = a["id"].clone();
                    }
                }
                for c in t["containers"].as_array_mut().into_iter().flatten() {
                    c["networkInterfaces"] =
                        json!([{"attachmentId": attachment_id, "privateIpv4Address": ip}]);
                }
            }
            for c in t["containers"].as_array_mut().into_iter().flatten() {
                if let Some(b) = c["name"].as_str().and_then(|n| bindings.get(n)) {
                    c["networkBindings"] = json!(b);
                }
            }
            true
        })
        .map_err(|e| format!("cannot record the task's network interface: {e}"))?;
        Ok(TaskNetwork {
            bridge: berth_net::BRIDGE.to_string(),
            host_link: berth_net::host::host_link(k.id),
            ip: lease.ip,
            prefix_len: lease.cidr.len,
            gateway: lease.cidr.gateway(),
        })
    }

    /// Bridge mode: a host port for each port mapping (the fixed one, or a free one from
    /// the ephemeral range), forwarded by the kernel to the task's address.
    fn map_ports(
        &self,
        host: &HostNetwork,
        key: &str,
        task: &Value,
        td: &Value,
        ip: std::net::Ipv4Addr,
    ) -> Result<HashMap<String, Vec<Value>>, String> {
        let k = parse_key(key).expect("task key");
        let arn = task["taskArn"].as_str().unwrap_or_default();
        let mappings = port_mappings(td);
        if mappings.is_empty() {
            return Ok(HashMap::new());
        }
        self.update(key, |t| {
            t["_berth"]["portsMapped"] = json!(true);
            true
        })
        .map_err(|e| format!("cannot record the task's ports: {e}"))?;
        // A launch that a restart cut short keeps the ports it already had.
        let earlier = |m: &PortMapping| -> Option<u16> {
            task["containers"]
                .as_array()?
                .iter()
                .find(|c| c["name"] == m.container.as_str())?["networkBindings"]
                .as_array()?
                .iter()
                .find(|b| {
                    b["containerPort"] == m.container_port && b["protocol"] == m.protocol.as_str()
                })?["hostPort"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
        };
        let mut out: HashMap<String, Vec<Value>> = HashMap::new();
        for (i, m) in mappings.iter().enumerate() {
            let host_port = match m.host_port.or_else(|| earlier(m)) {
                Some(p) => {
                    berth_leases::ports::claim(self.store.as_ref(), &m.protocol, p, arn).map(|()| p)
                }
                None => {
                    let hint = k.id.bytes().map(usize::from).sum::<usize>() * 7 + i;
                    berth_leases::ports::dynamic(self.store.as_ref(), &m.protocol, hint, arn)
                }
            }?;
            host.map_port(k.id, &m.protocol, host_port, ip, m.container_port)
                .map_err(|e| {
                    format!("ResourceInitializationError: cannot map port {host_port}: {e}")
                })?;
            out.entry(m.container.clone()).or_default().push(json!({
                "bindIP": "0.0.0.0",
                "containerPort": m.container_port,
                "hostPort": host_port,
                "protocol": m.protocol,
            }));
        }
        Ok(out)
    }

    /// Host mode: each port mapping's port is the host's own; hold it, and report it.
    fn claim_host_ports(&self, key: &str, task: &Value, td: &Value) -> Result<(), String> {
        let arn = task["taskArn"].as_str().unwrap_or_default();
        let mut out: HashMap<String, Vec<Value>> = HashMap::new();
        for m in port_mappings(td) {
            let port = m.host_port.unwrap_or(m.container_port);
            berth_leases::ports::claim(self.store.as_ref(), &m.protocol, port, arn)?;
            out.entry(m.container.clone()).or_default().push(json!({
                "bindIP": "0.0.0.0",
                "containerPort": m.container_port,
                "hostPort": port,
                "protocol": m.protocol,
            }));
        }
        self.update(key, |t| {
            t["_berth"]["networkMode"] = json!("host");
            for c in t["containers"].as_array_mut().into_iter().flatten() {
                if let Some(b) = c["name"].as_str().and_then(|n| out.get(n)) {
                    c["networkBindings"] = json!(b);
                }
            }
            true
        })
        .map(|_| ())
        .map_err(|e| format!("cannot record the task's ports: {e}"))
    }

    /// The variables of a container's environment files (the override's list replaces
    /// the definition's), read as the ECS agent reads them: an earlier file wins over a
    /// later one, and `environment` (applied after these) wins over both.
    fn env_file_vars(
        &self,
        account: &str,
        def: &Value,
        ov: &Value,
    ) -> Result<Vec<(String, String)>, String> {
        let files = ov["environmentFiles"]
            .as_array()
            .filter(|a| !a.is_empty())
            .or(def["environmentFiles"].as_array());
        let mut out: Vec<(String, String)> = vec![];
        for file in files.into_iter().flatten() {
            let failed = |e: String| {
                format!("ResourceInitializationError: failed to download env files: {e}")
            };
            if file["type"] != "s3" {
                return Err(failed(format!(
                    "environment file type {} is not supported (only s3)",
                    file["type"]
                )));
            }
            let bytes = (self.env_files)(account, file["value"].as_str().unwrap_or_default())
                .map_err(failed)?;
            for (k, v) in resolve::env_file(&bytes) {
                if !out.iter().any(|(n, _)| *n == k) {
                    out.push((k, v));
                }
            }
        }
        Ok(out)
    }

    /// The environment the in-task endpoints add to a container, as the ECS agent sets
    /// it; only tasks on Berth's bridge can reach them.
    fn endpoint_env(
        &self,
        task: &Value,
        container: &str,
        on_bridge: bool,
        base: &[(String, String)],
    ) -> Vec<(String, String)> {
        let mut env = base.to_vec();
        if !on_bridge {
            return env;
        }
        let at = endpoints::ENDPOINT_IP;
        if let Some(token) = task["_berth"]["endpointToken"].as_str() {
            env.push((
                "ECS_CONTAINER_METADATA_URI_V4".into(),
                format!("http://{at}/v4/{token}-{container}"),
            ));
            env.push((
                "ECS_CONTAINER_METADATA_URI".into(),
                format!("http://{at}/v3/{token}-{container}"),
            ));
        }
        if let Some(id) = task["_berth"]["credentialsId"].as_str() {
            env.push((
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI".into(),
                format!("/v2/credentials/{id}"),
            ));
        }
        if let Some(url) = &self.cfg.endpoint_url {
            env.push(("AWS_ENDPOINT_URL".into(), url.clone()));
        }
        env
    }

    /// Where `scope: shared` docker volumes live: `DATA/volumes/<name>`, beside the tasks.
    fn shared_volumes(&self) -> PathBuf {
        self.cfg.tasks_dir.with_file_name("volumes")
    }

    /// Give back the address, ports and port mappings a task holds.
    fn release_network(&self, key: &str) {
        let Some(r) = self.store.get(key) else { return };
        let Some(arn) = r.value["taskArn"].as_str() else {
            return;
        };
        if let Some(ip) = r.value["_berth"]["ip"]
            .as_str()
            .and_then(|s| s.parse().ok())
        {
            ipam::release(self.store.as_ref(), ip, arn);
        }
        if r.value["_berth"]["portsMapped"] == true {
            if let Some(k) = parse_key(key) {
                if let Err(e) = berth_net::host::unmap_ports(k.id) {
                    tracing::warn!(task = %key, error = %e, "cannot remove the task's port mappings");
                }
            }
        }
        berth_leases::ports::release_all(self.store.as_ref(), arn);
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
            let live = berth_leases::owner_task_key(arn)
                .and_then(|k| self.store.get(&k))
                .is_some_and(|t| !is_final(&t.value));
            if !live {
                berth_leases::ports::release_all(self.store.as_ref(), arn);
            }
        }
        for (ip, owner) in ipam::leases(self.store.as_ref()) {
            // Load balancers' addresses are the ELBv2 API's to give back, not the node's.
            let Some(arn) = owner.as_str().filter(|o| o.starts_with("arn:aws:ecs:")) else {
                continue;
            };
            let live = berth_leases::owner_task_key(arn)
                .and_then(|k| self.store.get(&k))
                .is_some_and(|r| !is_final(&r.value) && r.value["_berth"]["ip"] == ip.to_string());
            if !live {
                tracing::info!(%ip, task = arn, "freeing the address of a task that no longer runs");
                ipam::release(self.store.as_ref(), ip, arn);
            }
        }
    }

    fn forget(&self, key: &str) {
        self.active.lock().expect("lock").remove(key);
        self.stop_sent.lock().expect("lock").remove(key);
    }

    /// Change a task record with `f` (which says whether it changed anything), retrying
    /// when an API call wrote the record in between.
    fn update(
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

    async fn update_async(
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

    /// Pull, prepare the bundles, and start the supervisor. Err is the stopped reason.
    async fn launch(self: &Arc<Self>, key: &str, dir: &Path) -> Result<(), String> {
        let k = parse_key(key).expect("task key");
        let (account, region, task_id) = (
            k.account.to_string(),
            k.region.to_string(),
            k.id.to_string(),
        );
        let task = self.store.get(key).ok_or("task record vanished")?.value;
        let td_arn = task["taskDefinitionArn"].as_str().unwrap_or_default();
        let (family, rev) = td_arn
            .rsplit('/')
            .next()
            .and_then(|fr| fr.rsplit_once(':'))
            .ok_or("task definition ARN is malformed")?;
        let rev: u64 = rev
            .parse()
            .map_err(|_| "task definition revision is malformed")?;
        let td = self
            .store
            .get(&format!(
                "/{account}/{region}/ecs/taskdef/{family}/{rev:010}"
            ))
            .ok_or("the task definition no longer exists")?
            .value;
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

        // Pull each distinct image once, all at the same time.
        let mut images: HashMap<String, Result<berth_image::Pulled, String>> = HashMap::new();
        let mut pulls = vec![];
        for def in &defs {
            let name = def["image"].as_str().unwrap_or_default().to_string();
            if images.contains_key(&name) || pulls.iter().any(|(n, _)| n == &name) {
                continue;
            }
            let puller = self.puller.clone();
            let auth = self.registry_auth.clone();
            let (account, region) = (account.clone(), region.clone());
            let n = name.clone();
            pulls.push((
                name,
                tokio::spawn(async move {
                    let r = ImageRef::parse(&n).map_err(|e| e.to_string())?;
                    let creds = auth(&r, &account, &region);
                    puller
                        .pull(&r, creds.as_ref().map(|(u, p)| (u.as_str(), p.as_str())))
                        .await
                        .map_err(|e| e.to_string())
                }),
            ));
        }
        for (name, h) in pulls {
            let r = h.await.map_err(|e| e.to_string()).and_then(|r| r);
            images.insert(name, r);
        }
        let now = self.clock.now();
        let mut failed: Option<String> = None;
        let digests: HashMap<String, String> = images
            .iter()
            .filter_map(|(n, r)| {
                r.as_ref()
                    .ok()
                    .map(|p| (n.clone(), p.manifest_digest.clone()))
            })
            .collect();
        for (name, r) in &images {
            if let Err(e) = r {
                failed.get_or_insert(format!("CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve ref {name}: {e}"));
            }
        }
        let failed_c = failed.clone();
        self.update_async(key, move |t| {
            t["pullStoppedAt"] = json!(now);
            for c in t["containers"].as_array_mut().into_iter().flatten() {
                let image = c["image"].as_str().unwrap_or_default().to_string();
                if let Some(d) = digests.get(&image) {
                    c["imageDigest"] = json!(d);
                }
                if let Some(f) = &failed_c {
                    c["reason"] = json!(f);
                }
            }
            true
        })
        .await;
        if let Some(f) = failed {
            return Err(f);
        }

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

    /// Write every container's bundle and the task's plan.
    #[allow(clippy::too_many_arguments)]
    fn prepare(
        &self,
        dir: &Path,
        task: &Value,
        td: &Value,
        defs: &[Value],
        images: &HashMap<String, Result<berth_image::Pulled, String>>,
        account: &str,
        region: &str,
        task_id: &str,
        network: Option<&TaskNetwork>,
        host_network: bool,
    ) -> Result<TaskPlan, String> {
        let io = |e: std::io::Error| format!("ResourceInitializationError: {e}");
        std::fs::create_dir_all(dir.join("containers")).map_err(io)?;
        let fargate = task["launchType"] == "FARGATE"
            || td["requiresCompatibilities"]
                .as_array()
                .is_some_and(|a| a.iter().any(|c| c == "FARGATE"));
        // An awsvpc task is named after its address, as its ENI's private DNS name is.
        let hostname = match network {
            Some(n) => private_dns_name(n.ip, region),
            None if host_network => host_name(),
            None => task_id.to_string(),
        };
        let (hosts, hostname_file, resolv) = resolve::write_etc(
            dir,
            &hostname,
            network.map(|n| n.ip),
            network.and(self.cfg.task_resolver),
        )
        .map_err(io)?;
        let overrides = &task["overrides"];
        let extra_env = vec![
            (
                "AWS_EXECUTION_ENV".to_string(),
                if fargate {
                    "AWS_ECS_FARGATE"
                } else {
                    "AWS_ECS_EC2"
                }
                .to_string(),
            ),
            ("AWS_DEFAULT_REGION".to_string(), region.to_string()),
            ("AWS_REGION".to_string(), region.to_string()),
        ];
        let mut containers = vec![];
        for def in defs {
            let name = def["name"].as_str().unwrap_or_default();
            let mut extra_env = self.endpoint_env(task, name, network.is_some(), &extra_env);
            let ov = overrides["containerOverrides"]
                .as_array()
                .and_then(|a| a.iter().find(|o| o["name"] == name))
                .cloned()
                .unwrap_or(Value::Null);
            extra_env.extend(self.env_file_vars(account, def, &ov)?);
            if def["secrets"].as_array().is_some_and(|a| !a.is_empty()) {
                return Err("ResourceInitializationError: secrets come from Secrets Manager or SSM Parameter Store, which Berth does not have yet".into());
            }
            if def.get("repositoryCredentials").is_some() {
                return Err("ResourceInitializationError: repositoryCredentials are read from Secrets Manager, which Berth does not have yet".into());
            }
            let pulled = images
                .get(def["image"].as_str().unwrap_or_default())
                .and_then(|r| r.as_ref().ok())
                .ok_or("CannotPullContainerError: image not pulled")?;
            let mut spec = resolve::container_spec(
                def,
                &ov,
                &pulled.config,
                &pulled.layers,
                &hostname,
                fargate,
                task_id,
                &extra_env,
            )
            .map_err(|e| format!("CannotStartContainerError: {e}"))?;
            let bundle = dir.join("containers").join(name);
            std::fs::create_dir_all(bundle.join("rootfs")).map_err(io)?;
            spec.cgroups_path = format!("/berth/{task_id}/{name}");
            spec.netns = (!host_network).then(|| dir.join("netns"));
            spec.etc_hosts = hosts.clone();
            spec.etc_hostname = hostname_file.clone();
            spec.etc_resolv = resolv.clone();
            spec.volumes = resolve::mounts(def, td, dir, &self.shared_volumes())
                .map_err(|e| format!("ResourceInitializationError: {e}"))?;
            if def["linuxParameters"]["initProcessEnabled"].as_bool() == Some(true) {
                spec.init = Some(self.cfg.tasks_dir.join(".berth-init"));
            }
            let mut oci = berth_runtime::spec::build(&spec);
            if self.precompiled_seccomp() && !spec.privileged {
                if let Some(bpf) = berth_runtime::bpf::default_profile_base64() {
                    oci.annotations_mut()
                        .get_or_insert_with(Default::default)
                        .insert("run.oci.seccomp_bpf_data".into(), bpf.into());
                }
            }
            let json = serde_json::to_vec_pretty(&oci).map_err(|e| e.to_string())?;
            std::fs::write(bundle.join("config.json"), json).map_err(io)?;
            let log_stream = match resolve::awslogs(def, task_id, region) {
                Some((log_region, group, stream, create)) => Some(
                    (self.log_streams)(account, &log_region, &group, &stream, create).map_err(
                        |e| {
                            format!(
                                "ResourceInitializationError: failed to validate logger args: {e}"
                            )
                        },
                    )?,
                ),
                None => None,
            };
            containers.push(ContainerPlan {
                name: name.to_string(),
                essential: def["essential"].as_bool().unwrap_or(true),
                depends_on: resolve::depends_on(def),
                stop_timeout_secs: def["stopTimeout"]
                    .as_u64()
                    .unwrap_or(resolve::DEFAULT_STOP_TIMEOUT),
                health_check: resolve::health_check(def),
                layers: pulled.layers.clone(),
                log_stream,
            });
        }
        let cpu = overrides["cpu"]
            .as_str()
            .or(td["cpu"].as_str())
            .and_then(parse_units);
        let memory = overrides["memory"]
            .as_str()
            .or(td["memory"].as_str())
            .and_then(parse_units);
        Ok(TaskPlan {
            task_id: task_id.to_string(),
            runtime: self.cfg.runtime.clone(),
            runtime_root: self.cfg.runtime_root.clone(),
            cgroup: format!("/berth/{task_id}"),
            cpu_quota_us: cpu.map(|c| c * 100_000 / 1024),
            memory_limit: memory.map(|m| m * 1024 * 1024),
            network: network.cloned(),
            host_network,
            containers,
        })
    }

    /// Follow the supervisor's state until the task stops, mirroring it into the record.
    async fn supervise(self: &Arc<Self>, key: &str, dir: &Path) {
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

    /// Record the supervisor's state in the task, stepping through ECS's intermediate
    /// states (ACTIVATING, DEACTIVATING, DEPROVISIONING for awsvpc tasks) in order.
    async fn mirror(self: &Arc<Self>, key: &str, st: &TaskState, awsvpc: bool) {
        let target = match st.status {
            TaskStatus::Pending => "PENDING",
            TaskStatus::Running => "RUNNING",
            TaskStatus::Stopping => "STOPPING",
            TaskStatus::Stopped => "STOPPED",
        };
        let current = self
            .store
            .get(key)
            .and_then(|r| r.value["lastStatus"].as_str().map(str::to_string))
            .unwrap_or_default();
        for step in steps(&current, target, awsvpc, st.started_at.is_some()) {
            let st = st.clone();
            let now = self.clock.now();
            self.update_async(key, move |t| apply(t, &st, step, now))
                .await;
        }
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

/// The lastStatus values to write, in order, to go from `from` to `to`.
/// `ran`: the task's containers started, so it passes through RUNNING even when it was
/// already over by the time the node heard of it.
fn steps(from: &str, to: &'static str, awsvpc: bool, ran: bool) -> Vec<&'static str> {
    const ORDER: [&str; 8] = [
        "PROVISIONING",
        "PENDING",
        "ACTIVATING",
        "RUNNING",
        "DEACTIVATING",
        "STOPPING",
        "DEPROVISIONING",
        "STOPPED",
    ];
    let pos = |s: &str| ORDER.iter().position(|x| *x == s);
    let (Some(a), Some(b)) = (pos(from), pos(to)) else {
        return vec![to];
    };
    if b < a {
        return vec![];
    }
    if b == a {
        return vec![to]; // same status, new details (container states, health)
    }
    ORDER[a + 1..=b]
        .iter()
        .copied()
        .filter(|s| awsvpc || !matches!(*s, "ACTIVATING" | "DEACTIVATING" | "DEPROVISIONING"))
        // A task that never ran does not pass through RUNNING on its way to STOPPED.
        .filter(|s| ran || !matches!(*s, "ACTIVATING" | "RUNNING"))
        .collect()
}

/// Set the task's lastStatus to `step` with the supervisor's details.
fn apply(t: &mut Value, st: &TaskState, step: &str, now: f64) -> bool {
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
        if let Some(code) = s.exit_code {
            c["exitCode"] = json!(code);
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
    // The task is as healthy as its checked containers (ECS looks at essential ones).
    let checked: Vec<&str> = health
        .iter()
        .map(|(_, h)| *h)
        .filter(|h| *h != "UNKNOWN")
        .collect();
    t["healthStatus"] = json!(if checked.contains(&"UNHEALTHY") {
        "UNHEALTHY"
    } else if !checked.is_empty() && checked.len() == health.len() {
        "HEALTHY"
    } else {
        "UNKNOWN"
    });
    if let (None, Some(at)) = (t.get("startedAt"), st.started_at) {
        t["startedAt"] = json!(at);
    }
    match step {
        "RUNNING" if t["connectivity"] != "CONNECTED" => {
            t["connectivity"] = json!("CONNECTED");
            t["connectivityAt"] = json!(now);
        }
        "DEACTIVATING" | "STOPPING" | "DEPROVISIONING" | "STOPPED" => {
            t["desiredStatus"] = json!("STOPPED");
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
                    "DEACTIVATING" | "STOPPING" => "ATTACHED",
                    "DEPROVISIONING" => "DETACHING",
                    _ => "DELETED",
                },
            );
            if step == "STOPPED" {
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
fn finish(t: &mut Value, code: &str, reason: &str) {
    t["lastStatus"] = json!("STOPPED");
    t["desiredStatus"] = json!("STOPPED");
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

/// The task's network mode: the task definition's, else ECS's default for where it runs
/// (awsvpc on Fargate, bridge on EC2).
fn network_mode<'a>(task: &Value, td: &'a Value) -> &'a str {
    match td["networkMode"].as_str() {
        Some(m) => m,
        None if task["launchType"] == "FARGATE" => "awsvpc",
        None => "bridge",
    }
}

/// One portMappings entry of a container definition.
struct PortMapping {
    container: String,
    container_port: u16,
    /// None (or 0): a dynamic port.
    host_port: Option<u16>,
    protocol: String,
}

fn port_mappings(td: &Value) -> Vec<PortMapping> {
    let mut out = vec![];
    for def in td["containerDefinitions"].as_array().into_iter().flatten() {
        for m in def["portMappings"].as_array().into_iter().flatten() {
            let Some(cp) = m["containerPort"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
            else {
                continue;
            };
            out.push(PortMapping {
                container: def["name"].as_str().unwrap_or_default().to_string(),
                container_port: cp,
                host_port: m["hostPort"]
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p != 0),
                protocol: m["protocol"].as_str().unwrap_or("tcp").to_string(),
            });
        }
    }
    out
}

/// This host's name, for host-mode containers.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
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

/// EC2's private DNS name for an address: `ip-172-31-0-4.ec2.internal` in us-east-1,
/// `ip-172-31-0-4.REGION.compute.internal` elsewhere.
fn private_dns_name(ip: std::net::Ipv4Addr, region: &str) -> String {
    let dashed = ip.to_string().replace('.', "-");
    if region == "us-east-1" {
        format!("ip-{dashed}.ec2.internal")
    } else {
        format!("ip-{dashed}.{region}.compute.internal")
    }
}

/// Task cpu ("1024" or "1 vCPU") and memory ("2048" or "2 GB") as units / MiB.
fn parse_units(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let lower = s.to_ascii_lowercase();
    let (num, mult) = if let Some(n) = lower.strip_suffix("vcpu") {
        (n, 1024.0)
    } else if let Some(n) = lower.strip_suffix("gb") {
        (n, 1024.0)
    } else if let Some(n) = lower.strip_suffix("mb") {
        (n, 1.0)
    } else {
        return None;
    };
    num.trim().parse::<f64>().ok().map(|n| (n * mult) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_follow_ecs_order() {
        assert_eq!(steps("PENDING", "RUNNING", false, true), ["RUNNING"]);
        assert_eq!(
            steps("PENDING", "RUNNING", true, true),
            ["ACTIVATING", "RUNNING"]
        );
        assert_eq!(
            steps("RUNNING", "STOPPED", true, true),
            ["DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED"]
        );
        assert_eq!(
            steps("RUNNING", "STOPPED", false, true),
            ["STOPPING", "STOPPED"]
        );
        // Never started: no RUNNING on the way down.
        assert_eq!(
            steps("PENDING", "STOPPED", false, false),
            ["STOPPING", "STOPPED"]
        );
        // Over before the node heard: it still ran.
        assert_eq!(
            steps("PENDING", "STOPPED", false, true),
            ["RUNNING", "STOPPING", "STOPPED"]
        );
        assert!(steps("STOPPED", "RUNNING", false, true).is_empty());
    }

    #[test]
    fn units() {
        assert_eq!(parse_units("256"), Some(256));
        assert_eq!(parse_units("1 vCPU"), Some(1024));
        assert_eq!(parse_units("0.5 GB"), Some(512));
        assert_eq!(parse_units("2GB"), Some(2048));
    }
}
