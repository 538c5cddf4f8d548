//! The in-task endpoints at 169.254.170.2, as the ECS agent serves them: task metadata
//! (v4 and v3: container, task, taskWithTags, stats) and the task role's credentials.
//!
//! Paths carry ids that only the task was given (`/v4/<token>-<container>`,
//! `/v2/credentials/<id>`), and a task with an address of its own must also be the one
//! asking: a request from any other source address is answered as if the id did not exist.

use berth_model::ecs::{PrivateId, TaskId, TaskPrivate};
use berth_runtime::cgroup;
use berth_store::Store;
use berth_wire::service::strip_nulls;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

/// Where tasks reach the endpoints (and Berth's API): an address on Berth's bridge.
pub const ENDPOINT_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 170, 2);

/// The task role's credentials handed out until IAM exists: the pair Berth accepts
/// under `--enforce-auth`.
#[derive(Clone)]
pub struct TaskCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

pub struct Endpoints {
    store: Arc<dyn Store>,
    credentials: TaskCredentials,
    /// Where the tasks' cgroups are, for their stats.
    cgroups: cgroup::TaskRoot,
    /// Endpoint token or credentials id to the task's store key, learned from the records.
    ids: Mutex<HashMap<String, String>>,
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: Value) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static response parts")
}

fn not_found(what: &str) -> Reply {
    reply(
        StatusCode::NOT_FOUND,
        json!({"error": format!("{what} not found")}),
    )
}

fn iso(v: &Value) -> Value {
    v.as_f64()
        .map(|t| json!(berth_wire::time::format_iso8601(t)))
        .unwrap_or(Value::Null)
}

impl Endpoints {
    pub fn new(
        store: Arc<dyn Store>,
        credentials: TaskCredentials,
        cgroups: cgroup::TaskRoot,
    ) -> Arc<Endpoints> {
        Arc::new(Endpoints {
            store,
            credentials,
            cgroups,
            ids: Mutex::new(HashMap::new()),
        })
    }

    /// Serve on `listener` until the process ends.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let me = self.clone();
            let svc = hyper::service::service_fn(move |req| {
                let me = me.clone();
                async move {
                    let r = tokio::task::spawn_blocking(move || me.handle(&req, peer.ip()))
                        .await
                        .unwrap_or_else(|_| {
                            reply(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                json!({"error": "internal"}),
                            )
                        });
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    }

    /// The task a token belongs to, if `peer` may ask for it.
    fn task_for(&self, id: &str, kind: PrivateId, peer: IpAddr) -> Option<Value> {
        let known = self.ids.lock().expect("lock").get(id).cloned();
        let key = match known {
            Some(k) => k,
            None => {
                let found = self.store.list("/").into_iter().find(|r| {
                    TaskId::parse_key(&r.key).is_some()
                        && TaskPrivate::str_in(&r.value, kind) == Some(id)
                })?;
                self.ids
                    .lock()
                    .expect("lock")
                    .insert(id.to_string(), found.key.clone());
                found.key
            }
        };
        let task = (*self.store.get(&key)?.value).clone();
        if TaskPrivate::str_in(&task, kind) != Some(id) {
            return None;
        }
        // A task with an address of its own is the only one that may ask.
        if let Some(own) = TaskPrivate::of(&task).ip {
            if own.parse::<IpAddr>().ok() != Some(peer) {
                return None;
            }
        }
        Some(task)
    }

    pub fn handle<B>(&self, req: &Request<B>, peer: IpAddr) -> Reply {
        if req.method() != hyper::Method::GET {
            return reply(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"error": "only GET is served"}),
            );
        }
        let path = req.uri().path().trim_end_matches('/');
        let parts: Vec<&str> = path.split('/').skip(1).collect();
        match parts.as_slice() {
            ["v2", "credentials", id] => match self.task_for(id, PrivateId::CredentialsId, peer) {
                Some(task) => self.credentials(&task),
                None => not_found("credentials"),
            },
            [v @ ("v3" | "v4"), id, rest @ ..] => {
                let Some((token, container)) = id.split_once('-') else {
                    return not_found("metadata");
                };
                let Some(task) = self.task_for(token, PrivateId::EndpointToken, peer) else {
                    return not_found("metadata");
                };
                let v4 = *v == "v4";
                match rest {
                    [] => match self.container(&task, container, v4) {
                        Some(c) => reply(StatusCode::OK, c),
                        None => not_found("container"),
                    },
                    ["task"] => reply(StatusCode::OK, self.task(&task, v4, false)),
                    ["taskWithTags"] if v4 => reply(StatusCode::OK, self.task(&task, v4, true)),
                    ["stats"] => reply(StatusCode::OK, stats(&self.cgroups, &task, container)),
                    ["task", "stats"] => {
                        let mut all = Map::new();
                        for c in task["containers"].as_array().into_iter().flatten() {
                            let name = c["name"].as_str().unwrap_or_default();
                            all.insert(docker_id(&task, name), stats(&self.cgroups, &task, name));
                        }
                        reply(StatusCode::OK, Value::Object(all))
                    }
                    _ => not_found("metadata path"),
                }
            }
            _ => not_found("path"),
        }
    }

    fn credentials(&self, task: &Value) -> Reply {
        let expires = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
            + 6.0 * 3600.0;
        let private = TaskPrivate::of(task);
        reply(
            StatusCode::OK,
            json!({
                "RoleArn": private.task_role_arn,
                "AccessKeyId": self.credentials.access_key_id,
                "SecretAccessKey": self.credentials.secret_access_key,
                "Token": format!("berth-task-{}", private.credentials_id.unwrap_or_default()),
                "Expiration": berth_wire::time::format_iso8601(expires.floor()),
            }),
        )
    }

    fn task_definition(&self, task: &Value) -> Value {
        berth_model::ecs::TaskPrivate::of(task)
            .definition
            .unwrap_or(Value::Null)
    }

    fn container(&self, task: &Value, name: &str, v4: bool) -> Option<Value> {
        let td = self.task_definition(task);
        container_doc(task, &td, name, v4)
    }

    fn task(&self, task: &Value, v4: bool, with_tags: bool) -> Value {
        let td = self.task_definition(task);
        let (family, revision) = td_family_revision(task);
        let containers: Vec<Value> = task["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| container_doc(task, &td, c["name"].as_str()?, v4))
            .collect();
        let cpu = task["cpu"].as_str().and_then(|c| c.parse::<f64>().ok());
        let mem = task["memory"].as_str().and_then(|m| m.parse::<i64>().ok());
        let mut doc = json!({
            "Cluster": task["clusterArn"],
            "TaskARN": task["taskArn"],
            "Family": family,
            "Revision": revision,
            "DesiredStatus": task["desiredStatus"],
            "KnownStatus": known_status(&task["lastStatus"]),
            "Limits": {"CPU": cpu.map(|c| c / 1024.0), "Memory": mem},
            "PullStartedAt": iso(&task["pullStartedAt"]),
            "PullStoppedAt": iso(&task["pullStoppedAt"]),
            "AvailabilityZone": task["availabilityZone"],
            "LaunchType": task["launchType"],
            "Containers": containers,
        });
        if let Some(mode) = TaskPrivate::of(task).network_mode.as_deref() {
            doc["TaskNetworkConfiguration"] = json!({"NetworkMode": mode});
        }
        if with_tags {
            let tags: Map<String, Value> = task["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| Some((t["key"].as_str()?.to_string(), t["value"].clone())))
                .collect();
            doc["TaskTags"] = Value::Object(tags);
        }
        strip_nulls(&mut doc);
        doc
    }
}

/// The agent's status words for ECS's: a task is RUNNING from its containers' start
/// until they have all stopped.
fn known_status(last_status: &Value) -> &'static str {
    match last_status.as_str().unwrap_or_default() {
        "ACTIVATING" | "RUNNING" | "DEACTIVATING" | "STOPPING" => "RUNNING",
        "DEPROVISIONING" | "STOPPED" => "STOPPED",
        _ => "PENDING",
    }
}

fn td_family_revision(task: &Value) -> (String, String) {
    task["taskDefinitionArn"]
        .as_str()
        .and_then(|a| a.rsplit('/').next())
        .and_then(|fr| fr.rsplit_once(':'))
        .map(|(f, r)| (f.to_string(), r.to_string()))
        .unwrap_or_default()
}

/// The container's id as the runtime knows it (what Docker's id is to the agent).
fn docker_id(task: &Value, name: &str) -> String {
    let id = task["taskArn"]
        .as_str()
        .and_then(|a| a.rsplit('/').next())
        .unwrap_or_default();
    format!("{id}-{name}")
}

fn container_doc(task: &Value, td: &Value, name: &str, v4: bool) -> Option<Value> {
    let c = task["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)?;
    let def = td["containerDefinitions"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == name))
        .cloned()
        .unwrap_or(Value::Null);
    let (family, revision) = td_family_revision(task);
    let mut doc = json!({
        "DockerId": docker_id(task, name),
        "Name": name,
        "DockerName": name,
        "Image": c["image"],
        "ImageID": c["imageDigest"],
        "Labels": {
            "com.amazonaws.ecs.cluster": task["clusterArn"],
            "com.amazonaws.ecs.container-name": name,
            "com.amazonaws.ecs.task-arn": task["taskArn"],
            "com.amazonaws.ecs.task-definition-family": family,
            "com.amazonaws.ecs.task-definition-version": revision,
        },
        "DesiredStatus": task["desiredStatus"],
        "KnownStatus": known_status(&c["lastStatus"]),
        "Limits": {"CPU": def["cpu"].as_i64().unwrap_or(0), "Memory": def["memory"]},
        "CreatedAt": iso(&task["createdAt"]),
        "StartedAt": iso(&task["startedAt"]),
        "Type": "NORMAL",
        "ContainerARN": c["containerArn"],
    });
    if let Some(code) = c.get("exitCode") {
        doc["ExitCode"] = code.clone();
    }
    if def["restartPolicy"]["enabled"] == true {
        doc["RestartCount"] = json!(TaskPrivate::of(task)
            .restart_counts
            .get(name)
            .copied()
            .unwrap_or(0));
    }
    if let Some(log) = def.get("logConfiguration") {
        doc["LogDriver"] = log["logDriver"].clone();
        doc["LogOptions"] = log["options"].clone();
    }
    let private = TaskPrivate::of(task);
    if let Some(ip) = private.ip.as_deref() {
        let details: HashMap<&str, &Value> = task["attachments"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| a["details"].as_array().into_iter().flatten())
            .filter_map(|d| Some((d["name"].as_str()?, &d["value"])))
            .collect();
        let mut net = json!({
            "NetworkMode": private.network_mode.as_deref().unwrap_or("awsvpc"),
            "IPv4Addresses": [ip],
            "AttachmentIndex": 0,
        });
        if v4 {
            net["MACAddress"] = details
                .get("macAddress")
                .cloned()
                .cloned()
                .unwrap_or(Value::Null);
            net["PrivateDNSName"] = details
                .get("privateDnsName")
                .cloned()
                .cloned()
                .unwrap_or(Value::Null);
            if let Some(cidr) = private.cidr.as_deref() {
                net["IPv4SubnetCIDRBlock"] = json!(cidr);
                if let Some(c) = berth_net::Cidr::parse(cidr) {
                    net["SubnetGatewayIpv4Address"] = json!(format!("{}/{}", c.gateway(), c.len));
                }
            }
        }
        doc["Networks"] = json!([net]);
    }
    strip_nulls(&mut doc);
    Some(doc)
}

/// A container's resource use in the shape of Docker's stats on a host of the same cgroup
/// layout (v1 and v2 differ in `memory_stats`: v2 has no `max_usage` and names
/// `memory_stats.stats` as the kernel's memory.stat does).
fn stats(cgroups: &cgroup::TaskRoot, task: &Value, name: &str) -> Value {
    let id = task["taskArn"]
        .as_str()
        .and_then(|a| a.rsplit('/').next())
        .unwrap_or_default();
    let u = cgroup::usage(&format!("{}/{name}", cgroups.task(id)));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let io: Vec<Value> = u
        .io_bytes
        .iter()
        .map(|(major, minor, op, value)| json!({"major": major, "minor": minor, "op": op, "value": value}))
        .collect();
    json!({
        "read": berth_wire::time::format_iso8601(now),
        "name": name,
        "id": docker_id(task, name),
        "num_procs": 0,
        "pids_stats": {"current": u.pids},
        "blkio_stats": {"io_service_bytes_recursive": io},
        "memory_stats": {
            "usage": u.memory_usage,
            "max_usage": u.memory_max_usage,
            // Docker reports the host's memory for a container without a limit.
            "limit": u.memory_limit.or_else(host_memory),
            "stats": u.memory_stat,
        },
        "cpu_stats": {
            "cpu_usage": {
                "total_usage": u.cpu_total_ns,
                "usage_in_kernelmode": u.cpu_system_ns,
                "usage_in_usermode": u.cpu_user_ns,
            },
            "system_cpu_usage": system_cpu_ns(),
            "online_cpus": cpus,
            "throttling_data": {
                "periods": u.cpu_periods,
                "throttled_periods": u.cpu_throttled_periods,
                "throttled_time": u.cpu_throttled_ns,
            },
        },
    })
}

/// The host's memory in bytes (/proc/meminfo MemTotal).
fn host_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The host's CPU time in nanoseconds since boot, all CPUs and states (Docker's
/// `system_cpu_usage`, which clients divide by to get a container's share).
fn system_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: u64 = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .take(8)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    Some(ticks * (1_000_000_000 / 100))
}
