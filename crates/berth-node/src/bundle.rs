//! A task's bundles and plan: each container's OCI bundle (its spec resolved from the
//! container definition, the overrides and the image config) and the `TaskPlan` its
//! supervisor runs.

use crate::network::private_dns_name;
use crate::pull::Images;
use crate::{endpoints, resolve, Node};
use berth_net::TaskNetwork;
use berth_runtime::{ContainerPlan, TaskPlan};
use serde_json::Value;
use std::path::{Path, PathBuf};

impl Node {
    /// crun takes the seccomp filter compiled once; runc compiles it at every start.
    fn precompiled_seccomp(&self) -> bool {
        self.cfg.runtime.file_name().is_some_and(|n| n == "crun")
    }

    /// Write every container's bundle and the task's plan.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn prepare(
        &self,
        dir: &Path,
        task: &Value,
        td: &Value,
        defs: &[Value],
        images: &Images,
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
        let task_cgroup = self.cfg.cgroups.task(task_id);
        let mut swap = false;
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
            spec.cgroups_path = format!("{task_cgroup}/{name}");
            swap |= spec.max_swap.is_some_and(|s| s > 0);
            spec.netns = (!host_network).then(|| dir.join("netns"));
            spec.etc_hosts = hosts.clone();
            spec.etc_hostname = hostname_file.clone();
            spec.etc_resolv = resolv.clone();
            let search = resolve::dns_search_domains(def);
            if !search.is_empty() {
                let own = dir.join(format!("resolv-{name}.conf"));
                let base = std::fs::read_to_string(&resolv).unwrap_or_default();
                std::fs::write(&own, resolve::resolv_with_search(&base, &search)).map_err(io)?;
                spec.etc_resolv = own;
            }
            (spec.cap_add, spec.cap_drop) = resolve::capabilities(def);
            spec.no_network = def["disableNetworking"].as_bool() == Some(true);
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
                restart_policy: resolve::restart_policy(def),
                start_timeout_secs: def["startTimeout"].as_u64().filter(|t| *t > 0),
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
            cgroup: task_cgroup,
            cpu_quota_us: cpu.map(|c| c * 100_000 / 1024),
            memory_limit: memory.map(|m| m * 1024 * 1024),
            swap,
            network: network.cloned(),
            host_network,
            containers,
        })
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
        let private = berth_model::ecs::TaskPrivate::of(task);
        if let Some(token) = private.endpoint_token.as_deref() {
            env.push((
                "ECS_CONTAINER_METADATA_URI_V4".into(),
                format!("http://{at}/v4/{token}-{container}"),
            ));
            env.push((
                "ECS_CONTAINER_METADATA_URI".into(),
                format!("http://{at}/v3/{token}-{container}"),
            ));
        }
        if let Some(id) = private.credentials_id.as_deref() {
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
}

/// This host's name, for host-mode containers.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
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
    fn units() {
        assert_eq!(parse_units("256"), Some(256));
        assert_eq!(parse_units("1 vCPU"), Some(1024));
        assert_eq!(parse_units("0.5 GB"), Some(512));
        assert_eq!(parse_units("2GB"), Some(2048));
    }
}
