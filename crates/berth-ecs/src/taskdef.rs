//! Task definitions: Register (with ECS's validation rules), Describe, List,
//! ListTaskDefinitionFamilies, Deregister, DeleteTaskDefinitions.

use crate::common::*;
use crate::Ecs;
use berth_store::{Cond, Op, Record};
use berth_wire::json::{write_json, write_str};
use berth_wire::page::{encode_token, page_params, paginate};
use berth_wire::{ApiResult, RequestContext};
use serde_json::{json, Map, Value};
use std::collections::HashSet;

/// ECS's limit on the size of a registered task definition.
const MAX_TASK_DEFINITION_BYTES: usize = 64 * 1024;
const MAX_CONTAINERS: usize = 10;

/// The Fargate task sizes: cpu units and the memory (MiB) each allows.
pub fn fargate_pair_valid(cpu: u32, memory: u32) -> bool {
    let (lo, hi, step) = match cpu {
        256 => return [512, 1024, 2048].contains(&memory),
        512 => (1024, 4096, 1024),
        1024 => (2048, 8192, 1024),
        2048 => (4096, 16384, 1024),
        4096 => (8192, 30720, 1024),
        8192 => (16384, 61440, 4096),
        16384 => (32768, 122880, 8192),
        _ => return false,
    };
    memory >= lo && memory <= hi && (memory - lo).is_multiple_of(step)
}

/// Task cpu as ECS accepts it: "1024" or "1 vCPU" / "0.25 vcpu".
pub fn parse_cpu(s: &str) -> Option<u32> {
    let t = s.trim().to_ascii_lowercase();
    if let Some(v) = t.strip_suffix("vcpu") {
        let f: f64 = v.trim().parse().ok()?;
        return (f > 0.0).then(|| (f * 1024.0).round() as u32);
    }
    t.parse().ok()
}

/// Task memory as ECS accepts it: "2048" (MiB) or "2 GB" / "2gb".
pub fn parse_memory(s: &str) -> Option<u32> {
    let t = s.trim().to_ascii_lowercase();
    if let Some(v) = t.strip_suffix("gb") {
        let f: f64 = v.trim().parse().ok()?;
        return (f > 0.0).then(|| (f * 1024.0).round() as u32);
    }
    t.parse().ok()
}

fn td_key(ctx: &RequestContext, family: &str, revision: i64) -> String {
    key(ctx, &format!("taskdef/{family}/{revision:010}"))
}

/// The index of ACTIVE revisions: one record per revision, holding just its ARN, kept in
/// the same transactions as the revisions themselves. Listing active revisions (the
/// common case) reads only these.
fn active_key(ctx: &RequestContext, family: &str, revision: i64) -> String {
    key(ctx, &format!("taskdef-active/{family}/{revision:010}"))
}

/// Give every ACTIVE revision its index record (data directories written before the
/// index existed). Idempotent; run at start.
pub(crate) fn index_active_revisions(store: &dyn berth_store::Store) {
    // Once per data directory: the marker says the index is complete.
    const DONE: &str = "/_berth/migrations/ecs-taskdef-active-index";
    if store.get(DONE).is_some() {
        return;
    }
    let mut ops = vec![Op::Put(DONE.to_string(), json!(true))];
    for r in store.list("/") {
        let Some((scope, rest)) = r.key.split_once("/ecs/taskdef/") else {
            continue;
        };
        let index = format!("{scope}/ecs/taskdef-active/{rest}");
        if r.value["status"] == "ACTIVE" && store.get(&index).is_none() {
            ops.push(Op::Put(index, r.value["taskDefinitionArn"].clone()));
        }
    }
    if let Err(e) = store.txn(&[], ops) {
        tracing::warn!(error = %e, "could not index active task definition revisions");
    }
}

fn family_key(ctx: &RequestContext, family: &str) -> String {
    key(ctx, &format!("family/{family}"))
}

impl Ecs {
    pub(crate) fn register_task_definition(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let family = str_of(input, "family").unwrap_or_default();
        if !is_simple_name(family) {
            return Err(client(
                "Family contains invalid characters. Up to 255 letters (uppercase and lowercase), numbers, hyphens, and underscores are allowed.",
            ));
        }
        let size = serde_json::to_vec(input).map(|v| v.len()).unwrap_or(0);
        if size > MAX_TASK_DEFINITION_BYTES {
            return Err(client(format!(
                "Actual length: '{size}'. Max allowed length is '{MAX_TASK_DEFINITION_BYTES}' bytes."
            )));
        }
        check_tags(arr_of(input, "tags"))?;
        // Trusted execution is for ECS Managed Instances, which Berth does not have.
        if let Some(mode) = input
            .pointer("/trustedExecutionConfiguration/isolationMode")
            .and_then(Value::as_str)
            .filter(|m| *m != "SHARED")
        {
            return Err(crate::unsupported::not_supported(
                "RegisterTaskDefinition",
                &format!("trustedExecutionConfiguration isolationMode {mode}"),
                "ECS Managed Instances are not implemented",
            ));
        }
        let mut td = normalize(ctx, input)?;

        // Allocate the next revision: the family record counts revisions ever registered,
        // so a revision number is never reused, even after deletion.
        let busy = || busy("Too many concurrent registrations for this family; try again.");
        berth_toolkit::commit(self.store.as_ref(), busy, || {
            let fk = family_key(ctx, family);
            let fam = self.store.get(&fk);
            let revision = fam
                .as_ref()
                .and_then(|r| r.value["latest"].as_i64())
                .unwrap_or(0)
                + 1;
            let cond = match &fam {
                Some(r) => Cond::Revision(fk.clone(), r.revision),
                None => Cond::Absent(fk.clone()),
            };
            td["revision"] = json!(revision);
            td["taskDefinitionArn"] =
                json!(arn(ctx, &format!("task-definition/{family}:{revision}")));
            td["registeredAt"] = json!(self.clock.now());
            let mut record = td.clone();
            record["tags"] = json!(arr_of(input, "tags"));
            Ok(Plan {
                conds: vec![cond],
                ops: vec![
                    Op::Put(fk, json!({"family": family, "latest": revision})),
                    Op::Put(td_key(ctx, family, revision), record),
                    Op::Put(
                        active_key(ctx, family, revision),
                        td["taskDefinitionArn"].clone(),
                    ),
                ],
                result: json!({"taskDefinition": td, "tags": arr_of(input, "tags")}),
            })
        })
    }

    /// Resolve `family`, `family:revision` or an ARN to a stored task definition.
    /// A bare family means its latest ACTIVE revision.
    pub(crate) fn find_task_definition(&self, ctx: &RequestContext, id: &str) -> Option<Record> {
        let spec = if id.starts_with("arn:") {
            let a = parse_arn(id)?;
            if a.kind != "task-definition" || a.region != ctx.region || a.account != ctx.account {
                return None;
            }
            a.rest.to_string()
        } else {
            id.to_string()
        };
        match spec.rsplit_once(':') {
            Some((family, rev)) => {
                let rev: i64 = rev.parse().ok()?;
                self.store.get(&td_key(ctx, family, rev))
            }
            None => {
                // The family's latest ACTIVE revision: the last entry of its index.
                let mut latest = None;
                self.store.scan(
                    &key(ctx, &format!("taskdef-active/{spec}/")),
                    None,
                    true,
                    1,
                    &mut |r| {
                        latest = r
                            .key
                            .rsplit('/')
                            .next()
                            .and_then(|rev| rev.parse::<i64>().ok());
                        true
                    },
                );
                self.store.get(&td_key(ctx, &spec, latest?))
            }
        }
    }

    /// Whether `family` has an ACTIVE revision (from the index, without reading revisions).
    fn has_active(&self, ctx: &RequestContext, family: &str) -> bool {
        self.store.scan(
            &key(ctx, &format!("taskdef-active/{family}/")),
            None,
            false,
            1,
            &mut |_| true,
        ) > 0
    }

    /// DescribeTaskDefinition, written straight from the stored record (the measured read
    /// path: no copy of the document is built).
    pub(crate) fn describe_task_definition(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Vec<u8>> {
        let id = str_of(input, "taskDefinition").unwrap_or_default();
        let r = self
            .find_task_definition(ctx, id)
            .ok_or_else(|| client("Unable to describe task definition."))?;
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(b"{\"taskDefinition\":{");
        // The stored document but its tags, which go beside it when asked for.
        let members = r.value.as_object().into_iter().flatten();
        for (n, (k, v)) in members
            .filter(|(k, v)| *k != "tags" && !v.is_null())
            .enumerate()
        {
            if n > 0 {
                out.push(b',');
            }
            write_str(&mut out, k);
            out.push(b':');
            write_json(&mut out, v);
        }
        out.push(b'}');
        if include_has(input, "TAGS") {
            out.extend_from_slice(b",\"tags\":");
            match r.value.get("tags") {
                Some(t) if !t.is_null() => write_json(&mut out, t),
                _ => out.extend_from_slice(b"[]"),
            }
        }
        out.push(b'}');
        Ok(out)
    }

    /// ListTaskDefinitions, written straight from the scanned records (the measured read
    /// path: no ARN is copied).
    pub(crate) fn list_task_definitions(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Vec<u8>> {
        let status = str_of(input, "status").unwrap_or("ACTIVE");
        let desc = str_of(input, "sort") == Some("DESC");
        // familyPrefix names a whole family, as in ECS: scan just that family's revisions.
        // Active revisions come from their index, whose records are the ARNs themselves.
        let active = status == "ACTIVE";
        let kind = if active { "taskdef-active" } else { "taskdef" };
        let scope = match str_of(input, "familyPrefix") {
            Some(p) => key(ctx, &format!("{kind}/{p}/")),
            None => key(ctx, &format!("{kind}/")),
        };
        let (max, after) = page_params(input, 100, 100, INVALID)?;
        // The token is the last key returned; it must lie inside this listing.
        if after.as_deref().is_some_and(|a| !a.starts_with(&scope)) {
            return Err(invalid("Invalid nextToken."));
        }
        let mut out = Vec::with_capacity(64 + max * 96);
        out.extend_from_slice(b"{\"taskDefinitionArns\":[");
        let mut listed = 0;
        let mut last_key = None;
        let taken = self
            .store
            .scan(&scope, after.as_deref(), desc, max + 1, &mut |r| {
                if !active && r.value["status"] != status {
                    return false;
                }
                if listed < max {
                    if listed > 0 {
                        out.push(b',');
                    }
                    let arn = if active {
                        &*r.value
                    } else {
                        &r.value["taskDefinitionArn"]
                    };
                    write_json(&mut out, arn);
                    listed += 1;
                    if listed == max {
                        last_key = Some(r.key.clone());
                    }
                }
                true
            });
        out.push(b']');
        // One more than a page matched: there is a next page, after the last key returned.
        if let (true, Some(k)) = (taken > max, last_key) {
            out.extend_from_slice(b",\"nextToken\":");
            write_str(&mut out, &encode_token(&k));
        }
        out.push(b'}');
        Ok(out)
    }

    pub(crate) fn list_task_definition_families(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let status = str_of(input, "status").unwrap_or("ACTIVE");
        let prefix = str_of(input, "familyPrefix").unwrap_or("");
        let mut families: Vec<String> = vec![];
        for f in self.store.list(&key(ctx, &format!("family/{prefix}"))) {
            let name = str_of(&f.value, "family").unwrap_or_default().to_string();
            let active = self.has_active(ctx, &name);
            let keep = match status {
                "ACTIVE" => active,
                "INACTIVE" => {
                    !active
                        && self.store.scan(
                            &key(ctx, &format!("taskdef/{name}/")),
                            None,
                            false,
                            1,
                            &mut |_| true,
                        ) > 0
                }
                _ => true,
            };
            if keep {
                families.push(name);
            }
        }
        let page = paginate(families, |f| f.clone(), input, 100, 100, INVALID)?;
        Ok(json!({"families": page.items, "nextToken": page.next_token}))
    }

    pub(crate) fn deregister_task_definition(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let id = str_of(input, "taskDefinition").unwrap_or_default();
        let spec = name_from(ctx, id, "task-definition").unwrap_or_default();
        if !spec.contains(':') {
            return Err(client("A revision is required: give the task definition as family:revision or as its full ARN."));
        }
        let r = self
            .find_task_definition(ctx, id)
            .filter(|r| r.value["status"] != "DELETE_IN_PROGRESS")
            .ok_or_else(|| client("The specified task definition does not exist."))?;
        let mut td = (*r.value).clone();
        if td["status"] == "ACTIVE" {
            td["status"] = json!("INACTIVE");
            td["deregisteredAt"] = json!(self.clock.now());
            let family = str_of(&td, "family").unwrap_or_default().to_string();
            let revision = td["revision"].as_i64().unwrap_or_default();
            self.store
                .txn(
                    &[Cond::Revision(r.key.clone(), r.revision)],
                    vec![
                        Op::Put(r.key.clone(), td.clone()),
                        Op::Delete(active_key(ctx, &family, revision)),
                    ],
                )
                .map_err(store_err)?;
        }
        td.as_object_mut().map(|o| o.remove("tags"));
        Ok(json!({"taskDefinition": td}))
    }

    pub(crate) fn delete_task_definitions(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let ids = arr_of(input, "taskDefinitions");
        if ids.len() > 10 {
            return Err(invalid(
                "You can specify up to 10 task definitions in a single request.",
            ));
        }
        let mut done = vec![];
        let mut failures = vec![];
        let mut ops = vec![];
        let mut conds = vec![];
        for id in ids.iter().filter_map(Value::as_str) {
            let spec = name_from(ctx, id, "task-definition").unwrap_or_default();
            let found = if spec.contains(':') {
                self.find_task_definition(ctx, id)
            } else {
                None
            };
            let Some(r) = found else {
                failures.push(json!({"arn": id, "reason": "The specified task definition does not exist. Specify a valid task definition and try again."}));
                continue;
            };
            if r.value["status"] == "ACTIVE" {
                failures.push(json!({"arn": r.value["taskDefinitionArn"], "reason": "The specified task definition is still in ACTIVE status. Please deregister the target and try again."}));
                continue;
            }
            let mut td = (*r.value).clone();
            if td["status"] != "DELETE_IN_PROGRESS" {
                td["status"] = json!("DELETE_IN_PROGRESS");
                td["deleteRequestedAt"] = json!(self.clock.now());
                conds.push(Cond::Revision(r.key.clone(), r.revision));
                ops.push(Op::Put(r.key.clone(), td.clone()));
            }
            td.as_object_mut().map(|o| o.remove("tags"));
            done.push(td);
        }
        if !ops.is_empty() {
            self.store.txn(&conds, ops).map_err(store_err)?;
        }
        Ok(json!({"taskDefinitions": done, "failures": failures}))
    }
}

/// Validate a RegisterTaskDefinition request with ECS's rules and return the task
/// definition as ECS stores it (defaults filled in, compatibilities computed).
fn normalize(ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
    let requires: Vec<&str> = arr_of(input, "requiresCompatibilities")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let fargate = requires.contains(&"FARGATE");
    let network_mode = str_of(input, "networkMode");
    let containers = arr_of(input, "containerDefinitions");
    if containers.is_empty() {
        return Err(client("Container list cannot be empty."));
    }
    if !arr_of(input, "inferenceAccelerators").is_empty() {
        return Err(client(
            "inferenceAccelerators are not supported by Berth yet.",
        ));
    }
    if containers.len() > MAX_CONTAINERS {
        return Err(client(format!(
            "Too many containers. A task definition can have at most {MAX_CONTAINERS} containers."
        )));
    }

    // Task-level size.
    let cpu = match str_of(input, "cpu") {
        Some(s) => Some(parse_cpu(s).ok_or_else(|| {
            client(format!(
                "Invalid 'cpu' setting for task. '{s}' is not a valid value."
            ))
        })?),
        None => None,
    };
    let memory = match str_of(input, "memory") {
        Some(s) => Some(parse_memory(s).ok_or_else(|| {
            client(format!(
                "Invalid 'memory' setting for task. '{s}' is not a valid value."
            ))
        })?),
        None => None,
    };
    if fargate {
        if network_mode != Some("awsvpc") {
            return Err(client("Fargate only supports network mode 'awsvpc'."));
        }
        let Some(c) = cpu else {
            return Err(client(
                "Fargate requires that 'cpu' be defined at the task level.",
            ));
        };
        let Some(m) = memory else {
            return Err(client(
                "Fargate requires that 'memory' be defined at the task level.",
            ));
        };
        if !fargate_pair_valid(c, m) {
            return Err(client(format!(
                "No Fargate configuration exists for given values: {c} CPU, {m} memory. See the Amazon ECS documentation for the valid values."
            )));
        }
    }
    if let Some(c) = cpu {
        if !(128..=196_608).contains(&c) {
            return Err(client("Invalid 'cpu' setting for task. The value must be between 128 and 196608 CPU units."));
        }
    }
    if let Some(m) = memory {
        if m < 128 {
            return Err(client(
                "Invalid 'memory' setting for task. The minimum is 128 MiB.",
            ));
        }
    }

    // Volumes.
    let mut volume_names = HashSet::new();
    for v in arr_of(input, "volumes") {
        let name = str_of(v, "name").unwrap_or_default();
        if !is_simple_name(name) {
            return Err(client("Invalid volume name. Up to 255 letters (uppercase and lowercase), numbers, hyphens, and underscores are allowed."));
        }
        if !volume_names.insert(name.to_string()) {
            return Err(client(format!("Duplicate volume name found: '{name}'.")));
        }
        if fargate && v.pointer("/host/sourcePath").is_some() {
            return Err(client("Fargate compatible task definitions do not support host volumes with a sourcePath."));
        }
        if fargate && v.get("dockerVolumeConfiguration").is_some() {
            return Err(client(
                "Fargate compatible task definitions do not support dockerVolumeConfiguration.",
            ));
        }
    }

    // Containers.
    let mut names = HashSet::new();
    for c in containers {
        let name = str_of(c, "name").unwrap_or_default();
        if !is_simple_name(name) {
            return Err(client("Container name must be between 1 and 255 characters: letters (uppercase and lowercase), numbers, hyphens and underscores."));
        }
        if !names.insert(name.to_string()) {
            return Err(client(format!("Duplicate container name found: '{name}'.")));
        }
    }
    let mut any_essential = false;
    let mut out_containers = vec![];
    let mut ports_seen: HashSet<(i64, String)> = HashSet::new();
    let host_ports_must_match = matches!(network_mode, Some("awsvpc") | Some("host"));
    for c in containers {
        let name = str_of(c, "name").unwrap_or_default();
        let image = str_of(c, "image").unwrap_or_default();
        if image.trim().is_empty() {
            return Err(client(format!(
                "Container.image should not be null or empty. (container '{name}')"
            )));
        }
        if image.len() > 1024 {
            return Err(client(format!("Invalid setting for container '{name}'. The image name is longer than 1024 characters.")));
        }
        let cmem = c.get("memory").and_then(Value::as_i64);
        let cres = c.get("memoryReservation").and_then(Value::as_i64);
        if memory.is_none() && cmem.is_none() && cres.is_none() {
            return Err(client(format!(
                "Invalid setting for container '{name}'. At least one of 'memory' or 'memoryReservation' must be specified."
            )));
        }
        for (field, v) in [("memory", cmem), ("memoryReservation", cres)] {
            if let Some(v) = v {
                if v < 6 {
                    return Err(client(format!(
                        "Invalid '{field}' setting for container '{name}'. The minimum is 6 MiB."
                    )));
                }
            }
        }
        if let (Some(m), Some(r)) = (cmem, cres) {
            if r > m {
                return Err(client(format!(
                    "Invalid setting for container '{name}'. 'memoryReservation' must be less than or equal to 'memory'."
                )));
            }
        }
        if let (Some(task_m), Some(m)) = (memory, cmem) {
            if m > task_m as i64 {
                return Err(client(format!(
                    "Invalid setting for container '{name}'. The container 'memory' ({m} MiB) exceeds the task memory ({task_m} MiB)."
                )));
            }
        }
        if let Some(cc) = c.get("cpu").and_then(Value::as_i64) {
            if !(0..=196_608).contains(&cc) {
                return Err(client(format!(
                    "Invalid 'cpu' setting for container '{name}'."
                )));
            }
            if let Some(tc) = cpu {
                if cc > tc as i64 {
                    return Err(client(format!(
                        "Invalid setting for container '{name}'. The container 'cpu' ({cc}) exceeds the task cpu ({tc})."
                    )));
                }
            }
        }
        if fargate && c.get("privileged").and_then(Value::as_bool) == Some(true) {
            return Err(client(
                "Fargate compatible task definitions do not support privileged containers.",
            ));
        }
        // Fargate tasks have no swap; maxSwap and swappiness are for EC2 container instances.
        let linux = c.get("linuxParameters");
        for f in ["maxSwap", "swappiness"] {
            if fargate && linux.and_then(|l| l.get(f)).is_some() {
                return Err(client(format!(
                    "Fargate compatible task definitions do not support '{f}' in linuxParameters."
                )));
            }
        }
        check_container_fields(c, name, fargate, network_mode)?;
        if fargate && (c.get("links").is_some()) {
            return Err(client(
                "Fargate compatible task definitions do not support links.",
            ));
        }
        if network_mode == Some("awsvpc") && c.get("links").is_some() {
            return Err(client("Links are not supported when networkMode=awsvpc."));
        }
        let essential = c.get("essential").and_then(Value::as_bool).unwrap_or(true);
        any_essential |= essential;

        let mut mappings = vec![];
        for pm in arr_of(c, "portMappings") {
            let container_port = pm.get("containerPort").and_then(Value::as_i64);
            let host_port = pm.get("hostPort").and_then(Value::as_i64);
            let range = str_of(pm, "containerPortRange");
            if container_port.is_none() && range.is_none() {
                return Err(client(format!("Invalid port mapping for container '{name}'. containerPort or containerPortRange is required.")));
            }
            for p in [container_port, host_port].into_iter().flatten() {
                if !(0..=65535).contains(&p) {
                    return Err(client(format!("Invalid port value {p} for container '{name}'. Ports must be between 0 and 65535.")));
                }
            }
            let mut m = pm.clone();
            let protocol = str_of(pm, "protocol").unwrap_or("tcp").to_string();
            m["protocol"] = json!(protocol);
            if let Some(cp) = container_port {
                if host_ports_must_match {
                    match host_port {
                        Some(hp) if hp != cp => {
                            return Err(client(format!(
                                "When networkMode={}, the host ports and container ports in port mappings must match.",
                                network_mode.unwrap_or_default()
                            )))
                        }
                        _ => m["hostPort"] = json!(cp),
                    }
                }
                let seen_key = if host_ports_must_match {
                    cp
                } else {
                    host_port.unwrap_or(-cp - 1)
                };
                if (host_ports_must_match || host_port.is_some_and(|h| h != 0))
                    && !ports_seen.insert((seen_key, protocol.clone()))
                {
                    return Err(client(format!("Duplicate port mapping found: port {seen_key}/{protocol} is used more than once.")));
                }
            }
            mappings.push(m);
        }
        for mp in arr_of(c, "mountPoints") {
            let src = str_of(mp, "sourceVolume").unwrap_or_default();
            if !volume_names.contains(src) {
                return Err(client(format!("Invalid 'mountPoints' setting for container '{name}': sourceVolume '{src}' is not defined in the task definition's volumes.")));
            }
        }
        for vf in arr_of(c, "volumesFrom") {
            let src = str_of(vf, "sourceContainer").unwrap_or_default();
            if !names.contains(src) || src == name {
                return Err(client(format!("Invalid 'volumesFrom' setting for container '{name}': '{src}' is not another container in this task definition.")));
            }
        }
        for d in arr_of(c, "dependsOn") {
            let other = str_of(d, "containerName").unwrap_or_default();
            if !names.contains(other) || other == name {
                return Err(client(format!("Invalid 'dependsOn' setting for container '{name}': '{other}' is not another container in this task definition.")));
            }
            if str_of(d, "condition") == Some("HEALTHY") {
                let target = containers.iter().find(|x| str_of(x, "name") == Some(other));
                if target.is_some_and(|t| t.get("healthCheck").is_none()) {
                    return Err(client(format!(
                        "Invalid 'dependsOn' setting for container '{name}': condition HEALTHY requires container '{other}' to have a healthCheck."
                    )));
                }
            }
        }
        if let Some(hc) = c.get("healthCheck") {
            if arr_of(hc, "command").is_empty() {
                return Err(client(format!("Invalid 'healthCheck' setting for container '{name}': command must not be empty.")));
            }
            let first = arr_of(hc, "command")[0].as_str().unwrap_or_default();
            if !["CMD", "CMD-SHELL", "NONE"].contains(&first) {
                return Err(client(format!(
                    "Invalid 'healthCheck' setting for container '{name}': the command must start with CMD, CMD-SHELL or NONE."
                )));
            }
            for (field, lo, hi) in [
                ("interval", 5, 300),
                ("timeout", 2, 60),
                ("retries", 1, 10),
                ("startPeriod", 0, 300),
            ] {
                if let Some(v) = hc.get(field).and_then(Value::as_i64) {
                    if v < lo || v > hi {
                        return Err(client(format!(
                            "Invalid 'healthCheck' setting for container '{name}': {field} must be between {lo} and {hi}."
                        )));
                    }
                }
            }
        }
        if let Some(lc) = c.get("logConfiguration") {
            if str_of(lc, "logDriver") == Some("awslogs") {
                let opts = lc.get("options");
                for required in ["awslogs-group", "awslogs-region"] {
                    if opts.and_then(|o| o.get(required)).is_none() {
                        return Err(client(format!(
                            "Invalid 'logConfiguration' for container '{name}': the awslogs log driver requires the '{required}' option."
                        )));
                    }
                }
            }
            if fargate
                && !matches!(
                    str_of(lc, "logDriver"),
                    Some("awslogs") | Some("splunk") | Some("awsfirelens")
                )
            {
                return Err(client("Fargate compatible task definitions support only the awslogs, splunk and awsfirelens log drivers."));
            }
        }

        // The container as ECS stores it, with its defaults.
        let mut out: Map<String, Value> = c.as_object().cloned().unwrap_or_default();
        out.insert("cpu".into(), c.get("cpu").cloned().unwrap_or(json!(0)));
        out.insert("portMappings".into(), Value::Array(mappings));
        out.insert("essential".into(), json!(essential));
        for list in [
            "environment",
            "mountPoints",
            "volumesFrom",
            "systemControls",
        ] {
            out.entry(list.to_string()).or_insert_with(|| json!([]));
        }
        if let Some(hc) = out.get_mut("healthCheck") {
            let o = hc.as_object_mut().expect("validated structure");
            o.entry("interval").or_insert(json!(30));
            o.entry("timeout").or_insert(json!(5));
            o.entry("retries").or_insert(json!(3));
        }
        out_containers.push(Value::Object(out));
    }
    if !any_essential {
        return Err(client(
            "A task definition must have at least one essential container.",
        ));
    }

    // What the task definition can run on: EC2 always; FARGATE when it satisfies Fargate's rules.
    let fargate_ok = fargate
        || (network_mode == Some("awsvpc")
            && cpu
                .zip(memory)
                .is_some_and(|(c, m)| fargate_pair_valid(c, m))
            && !arr_of(input, "volumes").iter().any(|v| {
                v.pointer("/host/sourcePath").is_some()
                    || v.get("dockerVolumeConfiguration").is_some()
            })
            && !out_containers.iter().any(|c| {
                c.get("privileged").and_then(Value::as_bool) == Some(true)
                    || c.get("links").is_some()
                    || c.pointer("/linuxParameters/capabilities/add")
                        .and_then(Value::as_array)
                        .is_some_and(|a| a.iter().any(|x| x != "SYS_PTRACE"))
            }));
    let mut compatibilities = vec![json!("EC2")];
    if fargate_ok {
        compatibilities.push(json!("FARGATE"));
    }

    let mut td: Map<String, Value> = Map::new();
    td.insert("family".into(), json!(str_of(input, "family")));
    td.insert("containerDefinitions".into(), Value::Array(out_containers));
    for f in [
        "taskRoleArn",
        "executionRoleArn",
        "networkMode",
        "pidMode",
        "ipcMode",
        "proxyConfiguration",
        "inferenceAccelerators",
        "ephemeralStorage",
        "runtimePlatform",
        "enableFaultInjection",
    ] {
        if let Some(v) = input.get(f) {
            td.insert(f.into(), v.clone());
        }
    }
    if let Some(c) = cpu {
        td.insert("cpu".into(), json!(c.to_string()));
    }
    if let Some(m) = memory {
        td.insert("memory".into(), json!(m.to_string()));
    }
    td.insert("volumes".into(), json!(arr_of(input, "volumes")));
    td.insert(
        "placementConstraints".into(),
        json!(arr_of(input, "placementConstraints")),
    );
    td.insert("status".into(), json!("ACTIVE"));
    td.insert(
        "requiresAttributes".into(),
        json!(required_attributes(input, network_mode)),
    );
    td.insert("compatibilities".into(), Value::Array(compatibilities));
    if !requires.is_empty() {
        td.insert("requiresCompatibilities".into(), json!(requires));
    }
    td.insert("registeredBy".into(), json!(root_arn(ctx)));
    Ok(Value::Object(td))
}

/// The capabilities linuxParameters.capabilities may name, as ECS lists them.
const CAPABILITIES: [&str; 38] = [
    "ALL",
    "AUDIT_CONTROL",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "SYSLOG",
    "WAKE_ALARM",
];

/// The container fields Berth acts on with rules of their own (restartPolicy,
/// startTimeout, disableNetworking, dnsSearchDomains, linuxParameters.capabilities),
/// and those it refuses rather than store and ignore.
fn check_container_fields(
    c: &Value,
    name: &str,
    fargate: bool,
    network_mode: Option<&str>,
) -> ApiResult<()> {
    let unsupported = |what: &str| {
        Err(client(format!(
            "Invalid setting for container '{name}': {what} is not supported by Berth yet."
        )))
    };
    if let Some(r) = arr_of(c, "resourceRequirements").first() {
        let kind = str_of(r, "type").unwrap_or_default();
        return unsupported(&format!("resourceRequirements of type {kind}"));
    }
    if !arr_of(c, "dockerSecurityOptions").is_empty() {
        return unsupported("dockerSecurityOptions");
    }
    if !arr_of(c, "credentialSpecs").is_empty() {
        return unsupported("credentialSpecs");
    }
    for f in ["interactive", "pseudoTerminal"] {
        if c.get(f).and_then(Value::as_bool) == Some(true) {
            return unsupported(&format!("{f}=true"));
        }
    }
    let awsvpc = network_mode == Some("awsvpc");
    if c.get("disableNetworking").and_then(Value::as_bool) == Some(true) && awsvpc {
        return Err(client(format!(
            "Invalid setting for container '{name}': disableNetworking is not supported when networkMode=awsvpc."
        )));
    }
    if !arr_of(c, "dnsSearchDomains").is_empty() && awsvpc {
        return Err(client(format!(
            "Invalid setting for container '{name}': dnsSearchDomains is not supported when networkMode=awsvpc."
        )));
    }
    if let Some(t) = c.get("startTimeout").and_then(Value::as_i64) {
        if t < 0 {
            return Err(client(format!(
                "Invalid 'startTimeout' setting for container '{name}'. It must be a positive number of seconds."
            )));
        }
        if fargate && !(2..=120).contains(&t) {
            return Err(client(format!(
                "Invalid 'startTimeout' setting for container '{name}'. The valid values for Fargate are 2-120 seconds."
            )));
        }
    }
    if let Some(p) = c.get("restartPolicy") {
        if let Some(period) = p.get("restartAttemptPeriod").and_then(Value::as_i64) {
            if !(60..=1800).contains(&period) {
                return Err(client(format!(
                    "Invalid 'restartPolicy' setting for container '{name}'. restartAttemptPeriod must be between 60 and 1800 seconds."
                )));
            }
        }
        if arr_of(p, "ignoredExitCodes").len() > 50 {
            return Err(client(format!(
                "Invalid 'restartPolicy' setting for container '{name}'. At most 50 ignoredExitCodes can be given."
            )));
        }
    }
    let caps = c.pointer("/linuxParameters/capabilities");
    for list in ["add", "drop"] {
        for cap in caps.map(|c| arr_of(c, list)).unwrap_or_default() {
            let cap = cap.as_str().unwrap_or_default();
            if !CAPABILITIES.contains(&cap) {
                return Err(client(format!(
                    "Invalid 'linuxParameters.capabilities.{list}' setting for container '{name}': '{cap}' is not a capability ECS knows."
                )));
            }
            if fargate && list == "add" && cap != "SYS_PTRACE" {
                return Err(client(format!(
                    "Fargate compatible task definitions only support adding the 'SYS_PTRACE' capability (container '{name}' adds '{cap}')."
                )));
            }
        }
    }
    Ok(())
}

/// The agent capabilities a task definition needs, as ECS lists them.
fn required_attributes(input: &Value, network_mode: Option<&str>) -> Vec<Value> {
    let mut out = vec![];
    let mut add = |name: &str| out.push(json!({"name": name}));
    if network_mode == Some("awsvpc") {
        add("com.amazonaws.ecs.capability.task-eni");
    }
    if input.get("taskRoleArn").is_some() {
        add("com.amazonaws.ecs.capability.task-iam-role");
    }
    if input.get("executionRoleArn").is_some() {
        add("ecs.capability.execution-role-awslogs");
    }
    let containers = arr_of(input, "containerDefinitions");
    if containers
        .iter()
        .any(|c| c.pointer("/logConfiguration/logDriver") == Some(&json!("awslogs")))
    {
        add("com.amazonaws.ecs.capability.logging-driver.awslogs");
    }
    if containers.iter().any(|c| c.get("healthCheck").is_some()) {
        add("ecs.capability.container-health-check");
    }
    if containers.iter().any(|c| c.get("dependsOn").is_some()) {
        add("ecs.capability.container-ordering");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn fargate_pairs() {
        assert!(fargate_pair_valid(256, 512));
        assert!(!fargate_pair_valid(256, 4096));
        assert!(fargate_pair_valid(1024, 3072));
        assert!(!fargate_pair_valid(1024, 1024));
        assert!(fargate_pair_valid(8192, 20480));
        assert!(!fargate_pair_valid(8192, 17408));
        assert!(!fargate_pair_valid(300, 1024));
    }
    #[test]
    fn active_revisions_are_indexed_at_start() {
        use berth_store::Store;
        let dir = tempfile::tempdir().unwrap();
        let store = berth_store::SqliteStore::open(&dir.path().join("db")).unwrap();
        let arn = "arn:aws:ecs:us-east-1:000000000000:task-definition/old:1";
        store
            .put(
                "/000000000000/us-east-1/ecs/taskdef/old/0000000001",
                json!({"status": "ACTIVE", "taskDefinitionArn": arn}),
            )
            .unwrap();
        store
            .put(
                "/000000000000/us-east-1/ecs/taskdef/old/0000000002",
                json!({"status": "INACTIVE", "taskDefinitionArn": "x"}),
            )
            .unwrap();
        index_active_revisions(&store);
        index_active_revisions(&store);
        let index = store.list("/000000000000/us-east-1/ecs/taskdef-active/");
        assert_eq!(index.len(), 1);
        assert_eq!(*index[0].value, json!(arn));
    }

    fn refusal(c: Value, fargate: bool, mode: Option<&str>) -> Option<String> {
        check_container_fields(&c, "app", fargate, mode)
            .err()
            .map(|e| format!("{e:?}"))
    }

    #[test]
    fn fields_berth_cannot_act_on_are_refused() {
        for (c, what) in [
            (
                json!({"resourceRequirements": [{"type": "GPU", "value": "1"}]}),
                "resourceRequirements of type GPU",
            ),
            (
                json!({"resourceRequirements": [{"type": "InferenceAccelerator", "value": "d"}]}),
                "resourceRequirements of type InferenceAccelerator",
            ),
            (
                json!({"dockerSecurityOptions": ["no-new-privileges"]}),
                "dockerSecurityOptions",
            ),
            (
                json!({"credentialSpecs": ["credentialspec:file://x"]}),
                "credentialSpecs",
            ),
            (json!({"interactive": true}), "interactive=true"),
            (json!({"pseudoTerminal": true}), "pseudoTerminal=true"),
        ] {
            let e = refusal(c, false, Some("bridge")).expect(what);
            assert!(
                e.contains(&format!("{what} is not supported by Berth yet")),
                "{e}"
            );
            assert!(e.contains("ClientException"), "{e}");
        }
        for c in [
            json!({"interactive": false, "pseudoTerminal": false}),
            json!({"dockerSecurityOptions": [], "credentialSpecs": [], "resourceRequirements": []}),
        ] {
            assert_eq!(refusal(c, false, Some("bridge")), None);
        }
    }

    #[test]
    fn acted_on_fields_have_ecs_rules() {
        let awsvpc = Some("awsvpc");
        assert!(refusal(json!({"dnsSearchDomains": ["a"]}), false, awsvpc).is_some());
        assert!(refusal(json!({"disableNetworking": true}), false, awsvpc).is_some());
        assert_eq!(
            refusal(
                json!({"dnsSearchDomains": ["a"], "disableNetworking": true}),
                false,
                Some("bridge")
            ),
            None
        );
        assert_eq!(
            refusal(json!({"disableNetworking": false}), true, awsvpc),
            None
        );
        let period =
            |p: i64| json!({"restartPolicy": {"enabled": true, "restartAttemptPeriod": p}});
        assert!(refusal(period(59), false, None).is_some());
        assert!(refusal(period(1801), false, None).is_some());
        assert_eq!(refusal(period(60), true, awsvpc), None);
        assert!(refusal(json!({"startTimeout": 121}), true, awsvpc).is_some());
        assert!(refusal(json!({"startTimeout": 1}), true, awsvpc).is_some());
        assert_eq!(refusal(json!({"startTimeout": 2}), true, awsvpc), None);
        assert_eq!(refusal(json!({"startTimeout": 600}), false, None), None);
        let many: Vec<i64> = (0..51).collect();
        assert!(refusal(
            json!({"restartPolicy": {"enabled": true, "ignoredExitCodes": many}}),
            false,
            None
        )
        .is_some());
        let caps = |add: &str| json!({"linuxParameters": {"capabilities": {"add": [add], "drop": ["NET_RAW"]}}});
        assert_eq!(refusal(caps("SYS_PTRACE"), true, awsvpc), None);
        assert!(refusal(caps("NET_ADMIN"), true, awsvpc).is_some());
        assert_eq!(refusal(caps("NET_ADMIN"), false, Some("bridge")), None);
        assert!(refusal(caps("CAP_NET_ADMIN"), false, Some("bridge")).is_some());
    }

    #[test]
    fn sizes_parse_both_forms() {
        assert_eq!(parse_cpu("1 vCPU"), Some(1024));
        assert_eq!(parse_cpu(".25 vcpu"), Some(256));
        assert_eq!(parse_cpu("512"), Some(512));
        assert_eq!(parse_memory("2 GB"), Some(2048));
        assert_eq!(parse_memory("0.5GB"), Some(512));
        assert_eq!(parse_memory("abc"), None);
    }
}
