//! From a task definition's container, the run's overrides and the image's config to a
//! resolved container spec, with Docker's rules for merging them (as the ECS agent
//! hands them to Docker).

use berth_runtime::spec::ContainerSpec;
use berth_runtime::{Dependency, HealthCheck};
use serde_json::Value;
use std::path::{Path, PathBuf};

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// ECS's default stop timeout, seconds.
pub const DEFAULT_STOP_TIMEOUT: u64 = 30;

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    })
}

/// The process: Docker's rule is that an entryPoint given by the user drops the image's
/// Cmd unless a command is given too.
pub fn args(def: &Value, ov: &Value, image: &Value) -> Vec<String> {
    let cfg = &image["config"];
    let user_entry = strings(&def["entryPoint"]).filter(|v| !v.is_empty());
    let user_cmd = strings(&ov["command"])
        .filter(|v| !v.is_empty())
        .or_else(|| strings(&def["command"]).filter(|v| !v.is_empty()));
    let (entry, cmd) = match user_entry {
        Some(e) => (e, user_cmd.unwrap_or_default()),
        None => (
            strings(&cfg["Entrypoint"]).unwrap_or_default(),
            user_cmd
                .or_else(|| strings(&cfg["Cmd"]))
                .unwrap_or_default(),
        ),
    };
    entry.into_iter().chain(cmd).collect()
}

/// Image env, then the task definition's, then the override's; later names win.
pub fn env(def: &Value, ov: &Value, image: &Value, extra: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<(String, String)> = vec![];
    let mut set = |k: &str, v: &str| {
        if let Some(e) = out.iter_mut().find(|(n, _)| n == k) {
            e.1 = v.to_string();
        } else {
            out.push((k.to_string(), v.to_string()));
        }
    };
    for e in strings(&image["config"]["Env"]).unwrap_or_default() {
        let (k, v) = e.split_once('=').unwrap_or((&e, ""));
        set(k, v);
    }
    for (k, v) in extra {
        set(k, v);
    }
    for list in [&def["environment"], &ov["environment"]] {
        for kv in list.as_array().into_iter().flatten() {
            if let (Some(k), Some(v)) = (kv["name"].as_str(), kv["value"].as_str()) {
                set(k, v);
            }
        }
    }
    if !out.iter().any(|(k, _)| k == "PATH") {
        let (k, v) = DEFAULT_PATH.split_once('=').expect("has =");
        out.insert(0, (k.to_string(), v.to_string()));
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// The variables of an environment file as the ECS agent reads one: `NAME=VALUE` lines,
/// split at the first `=`, both sides non-empty and kept as written (quotes and spaces
/// are part of the value); `#` comments and other lines are skipped; a later line wins.
pub fn env_file(bytes: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(bytes);
    let mut out: Vec<(String, String)> = vec![];
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.is_empty() || v.is_empty() {
            continue;
        }
        match out.iter_mut().find(|(n, _)| n == k) {
            Some(e) => e.1 = v.to_string(),
            None => out.push((k.to_string(), v.to_string())),
        }
    }
    out
}

/// A file from the image, looked up in its layers from the top one down.
fn image_file(layers: &[PathBuf], rel: &str) -> Option<String> {
    layers
        .iter()
        .rev()
        .map(|l| l.join(rel))
        .find(|p| p.exists())
        .and_then(|p| std::fs::read_to_string(p).ok())
}

/// `user` as `uid`, `uid:gid`, `name` or `name:group`, resolved against the image's
/// /etc/passwd and /etc/group. Returns (uid, gid, supplementary gids).
pub fn user(spec: &str, layers: &[PathBuf]) -> Result<(u32, u32, Vec<u32>), String> {
    if spec.is_empty() {
        return Ok((0, 0, vec![]));
    }
    let passwd = image_file(layers, "etc/passwd").unwrap_or_default();
    let group = image_file(layers, "etc/group").unwrap_or_default();
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && (f[0] == u || (u.parse::<u32>().is_ok() && f[2] == u)));
    let uid = match u.parse::<u32>() {
        Ok(n) => n,
        Err(_) => entry
            .as_ref()
            .and_then(|f| f[2].parse().ok())
            .ok_or_else(|| {
                format!("unable to find user {u}: no matching entries in passwd file")
            })?,
    };
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    format!("unable to find group {g}: no matching entries in group file")
                })?,
        },
        None => entry.as_ref().and_then(|f| f[3].parse().ok()).unwrap_or(0),
    };
    let name = entry.as_ref().map(|f| f[0]).unwrap_or(u);
    let extra = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4 && f[3].split(',').any(|m| m == name))
        .filter_map(|f| f[2].parse::<u32>().ok())
        .filter(|g| *g != gid)
        .collect();
    Ok((uid, gid, extra))
}

/// ECS ulimit names to the OCI spec's.
fn rlimit_name(n: &str) -> Option<&'static str> {
    Some(match n {
        "core" => "RLIMIT_CORE",
        "cpu" => "RLIMIT_CPU",
        "data" => "RLIMIT_DATA",
        "fsize" => "RLIMIT_FSIZE",
        "locks" => "RLIMIT_LOCKS",
        "memlock" => "RLIMIT_MEMLOCK",
        "msgqueue" => "RLIMIT_MSGQUEUE",
        "nice" => "RLIMIT_NICE",
        "nofile" => "RLIMIT_NOFILE",
        "nproc" => "RLIMIT_NPROC",
        "rss" => "RLIMIT_RSS",
        "rtprio" => "RLIMIT_RTPRIO",
        "rttime" => "RLIMIT_RTTIME",
        "sigpending" => "RLIMIT_SIGPENDING",
        "stack" => "RLIMIT_STACK",
        _ => return None,
    })
}

/// The container's ulimits (Fargate's default nofile is 65535), each clamped to the
/// host's hard limit, since a container cannot be given more than the host allows.
pub fn rlimits(def: &Value, fargate: bool, task: &str) -> Vec<(String, u64, u64)> {
    let mut wanted: Vec<(String, u64, u64)> = def["ulimits"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| {
            Some((
                rlimit_name(u["name"].as_str()?)?.to_string(),
                u["softLimit"].as_u64()?,
                u["hardLimit"].as_u64()?,
            ))
        })
        .collect();
    if fargate && !wanted.iter().any(|(n, _, _)| n == "RLIMIT_NOFILE") {
        wanted.push(("RLIMIT_NOFILE".into(), 65535, 65535));
    }
    for (name, soft, hard) in &mut wanted {
        if let Some(max) = berth_runtime::sys::host_hard_limit(name) {
            if *hard > max || *soft > max {
                tracing::info!(task, ulimit = %name, asked_soft = *soft, asked_hard = *hard, host_hard = max, "ulimit clamped to the host's hard limit");
                *hard = (*hard).min(max);
                *soft = (*soft).min(max);
            }
        }
    }
    wanted
}

pub fn health_check(def: &Value) -> Option<HealthCheck> {
    let h = def.get("healthCheck")?;
    let cmd = strings(&h["command"])?;
    let command = match cmd.first().map(String::as_str) {
        Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), cmd[1..].join(" ")],
        Some("CMD") => cmd[1..].to_vec(),
        _ => cmd,
    };
    if command.is_empty() {
        return None;
    }
    Some(HealthCheck {
        command,
        interval_secs: h["interval"].as_u64().unwrap_or(30),
        timeout_secs: h["timeout"].as_u64().unwrap_or(5),
        retries: h["retries"].as_u64().unwrap_or(3) as u32,
        start_period_secs: h["startPeriod"].as_u64().unwrap_or(0),
    })
}

pub fn depends_on(def: &Value) -> Vec<Dependency> {
    def["dependsOn"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| {
            Some(Dependency {
                container: d["containerName"].as_str()?.to_string(),
                condition: d["condition"].as_str()?.to_string(),
            })
        })
        .collect()
}

/// Everything of one container but the host paths, which the caller fills in.
#[allow(clippy::too_many_arguments)]
pub fn container_spec(
    def: &Value,
    ov: &Value,
    image: &Value,
    layers: &[PathBuf],
    hostname: &str,
    fargate: bool,
    task: &str,
    extra_env: &[(String, String)],
) -> Result<ContainerSpec, String> {
    let cfg = &image["config"];
    let args = args(def, ov, image);
    if args.is_empty() {
        return Err("no command specified".into());
    }
    let user_spec = def["user"]
        .as_str()
        .or(cfg["User"].as_str())
        .unwrap_or_default();
    let (uid, gid, additional_gids) = user(user_spec, layers)?;
    let mib = |v: &Value| v.as_i64().map(|m| m * 1024 * 1024);
    let cpu = ov["cpu"].as_u64().or(def["cpu"].as_u64()).unwrap_or(0);
    Ok(ContainerSpec {
        args,
        env: env(def, ov, image, extra_env),
        cwd: def["workingDirectory"]
            .as_str()
            .or(cfg["WorkingDir"].as_str())
            .filter(|s| !s.is_empty())
            .unwrap_or("/")
            .to_string(),
        uid,
        gid,
        additional_gids,
        hostname: def["hostname"].as_str().unwrap_or(hostname).to_string(),
        readonly_rootfs: def["readonlyRootFilesystem"].as_bool().unwrap_or(false),
        privileged: def["privileged"].as_bool().unwrap_or(false),
        rlimits: rlimits(def, fargate, task),
        // ECS gives every container at least 2 CPU shares (the kernel's minimum).
        cpu_shares: Some(cpu.max(2)),
        memory_limit: mib(&ov["memory"]).or(mib(&def["memory"])),
        memory_reservation: mib(&ov["memoryReservation"]).or(mib(&def["memoryReservation"])),
        // Swap beyond the container's memory (EC2 only; registration refuses it for Fargate).
        max_swap: mib(&def["linuxParameters"]["maxSwap"]).filter(|_| !fargate),
        swappiness: def["linuxParameters"]["swappiness"]
            .as_u64()
            .filter(|_| !fargate && def["linuxParameters"]["maxSwap"].is_i64()),
        ..Default::default()
    })
}

/// Where a container's awslogs stream is: (region, group, stream, create group).
pub fn awslogs(
    def: &Value,
    task_id: &str,
    task_region: &str,
) -> Option<(String, String, String, bool)> {
    let lc = def.get("logConfiguration")?;
    if lc["logDriver"] != "awslogs" {
        return None;
    }
    let o = &lc["options"];
    let group = o["awslogs-group"].as_str()?.to_string();
    let region = o["awslogs-region"]
        .as_str()
        .unwrap_or(task_region)
        .to_string();
    let name = def["name"].as_str().unwrap_or_default();
    let stream = match o["awslogs-stream-prefix"].as_str() {
        Some(p) => format!("{p}/{name}/{task_id}"),
        None => format!("{name}/{task_id}"),
    };
    let create = o["awslogs-create-group"].as_str() == Some("true");
    Some((region, group, stream, create))
}

/// A container's mounts as (container path, host path, read-only), with Docker's and
/// ECS's rules: a volume with a host `sourcePath` binds that host path (EC2; made if
/// missing, as Docker does); `dockerVolumeConfiguration` with the local driver is a
/// directory, per task (`scope: task`, removed with it) or kept under `shared_dir` across
/// tasks (`scope: shared`; one that does not exist is made only with `autoprovision`);
/// any other volume is task-scoped. `volumesFrom` adds another container's mounts,
/// read-only when asked.
pub fn mounts(
    def: &Value,
    td: &Value,
    task_dir: &Path,
    shared_dir: &Path,
) -> Result<Vec<(String, PathBuf, bool)>, String> {
    let mut out = vec![];
    own_mounts(def, td, task_dir, shared_dir, false, &mut out)?;
    let mut seen = vec![def["name"].as_str().unwrap_or_default().to_string()];
    from_containers(def, td, task_dir, shared_dir, false, &mut seen, &mut out)?;
    Ok(out)
}

fn own_mounts(
    def: &Value,
    td: &Value,
    task_dir: &Path,
    shared_dir: &Path,
    force_ro: bool,
    out: &mut Vec<(String, PathBuf, bool)>,
) -> Result<(), String> {
    for m in def["mountPoints"].as_array().into_iter().flatten() {
        let (Some(vol), Some(path)) = (m["sourceVolume"].as_str(), m["containerPath"].as_str())
        else {
            continue;
        };
        let v = td["volumes"]
            .as_array()
            .and_then(|a| a.iter().find(|v| v["name"] == vol))
            .ok_or_else(|| format!("mount point refers to an unknown volume {vol}"))?;
        let src = volume_source(vol, v, task_dir, shared_dir)?;
        let ro = force_ro || m["readOnly"].as_bool().unwrap_or(false);
        if !out.iter().any(|(p, _, _)| p == path) {
            out.push((path.to_string(), src, ro));
        }
    }
    Ok(())
}

fn from_containers(
    def: &Value,
    td: &Value,
    task_dir: &Path,
    shared_dir: &Path,
    force_ro: bool,
    seen: &mut Vec<String>,
    out: &mut Vec<(String, PathBuf, bool)>,
) -> Result<(), String> {
    for vf in def["volumesFrom"].as_array().into_iter().flatten() {
        let Some(src) = vf["sourceContainer"].as_str() else {
            continue;
        };
        if seen.iter().any(|s| s == src) {
            continue;
        }
        seen.push(src.to_string());
        let other = td["containerDefinitions"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == src))
            .ok_or_else(|| format!("volumesFrom names an unknown container {src}"))?;
        let ro = force_ro || vf["readOnly"].as_bool().unwrap_or(false);
        own_mounts(other, td, task_dir, shared_dir, ro, out)?;
        from_containers(other, td, task_dir, shared_dir, ro, seen, out)?;
    }
    Ok(())
}

fn volume_source(
    name: &str,
    v: &Value,
    task_dir: &Path,
    shared_dir: &Path,
) -> Result<PathBuf, String> {
    if v.get("efsVolumeConfiguration").is_some()
        || v.get("fsxWindowsFileServerVolumeConfiguration").is_some()
        || v.get("s3filesVolumeConfiguration").is_some()
        || v.get("configuredAtLaunch").is_some_and(|c| c == true)
    {
        return Err(format!(
            "volume {name}: EFS, FSx, S3 Files and volumes configured at launch are not supported by Berth yet"
        ));
    }
    if let Some(p) = v["host"]["sourcePath"].as_str() {
        let p = PathBuf::from(p);
        if !p.is_absolute() {
            return Err(format!(
                "volume {name}: sourcePath {} is not absolute",
                p.display()
            ));
        }
        if !p.exists() {
            std::fs::create_dir_all(&p).map_err(|e| format!("volume {name}: {e}"))?;
        }
        return Ok(p);
    }
    if let Some(d) = v.get("dockerVolumeConfiguration") {
        let driver = d["driver"].as_str().unwrap_or("local");
        if driver != "local" {
            return Err(format!(
                "volume {name}: the {driver} volume driver is not available; Berth has the local driver"
            ));
        }
        if d["scope"] == "shared" {
            let dir = shared_dir.join(name);
            if !dir.exists() {
                if d["autoprovision"] != true {
                    return Err(format!(
                        "volume {name} does not exist and autoprovision is not enabled"
                    ));
                }
                std::fs::create_dir_all(&dir).map_err(|e| format!("volume {name}: {e}"))?;
            }
            return Ok(dir);
        }
    }
    let dir = task_dir.join("volumes").join(name);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// /etc/hosts, /etc/hostname and /etc/resolv.conf for the task's containers.
pub fn write_etc(
    dir: &Path,
    hostname: &str,
    ip: Option<std::net::Ipv4Addr>,
    resolver: Option<std::net::Ipv4Addr>,
) -> std::io::Result<(PathBuf, PathBuf, PathBuf)> {
    let hosts = dir.join("hosts");
    let own = ip.map_or("127.0.0.1".to_string(), |ip| ip.to_string());
    std::fs::write(
        &hosts,
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{own}\t{hostname}\n"
        ),
    )?;
    let name = dir.join("hostname");
    std::fs::write(&name, format!("{hostname}\n"))?;
    let resolv = dir.join("resolv.conf");
    match resolver {
        // Berth's resolver answers for Berth's names and relays the rest to the host's.
        Some(r) => std::fs::write(&resolv, format!("nameserver {r}\n"))?,
        None => std::fs::write(
            &resolv,
            std::fs::read("/etc/resolv.conf").unwrap_or_default(),
        )?,
    }
    Ok((hosts, name, resolv))
}

/// The task's resolv.conf with a container's dnsSearchDomains as its `search` line, in
/// place of any `search` or `domain` line, as Docker's `--dns-search` writes it.
pub fn resolv_with_search(base: &str, domains: &[String]) -> String {
    let mut out: String = base
        .lines()
        .filter(|l| {
            let first = l.split_whitespace().next().unwrap_or_default();
            first != "search" && first != "domain"
        })
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(&format!("search {}\n", domains.join(" ")));
    out
}

/// A container's dnsSearchDomains.
pub fn dns_search_domains(def: &Value) -> Vec<String> {
    def["dnsSearchDomains"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str().map(str::to_string))
        .collect()
}

/// linuxParameters.capabilities: (add, drop).
pub fn capabilities(def: &Value) -> (Vec<String>, Vec<String>) {
    let list = |k: &str| -> Vec<String> {
        def["linuxParameters"]["capabilities"][k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect()
    };
    (list("add"), list("drop"))
}

/// The container's restartPolicy, when enabled (restartAttemptPeriod defaults to 300 s).
pub fn restart_policy(def: &Value) -> Option<berth_runtime::RestartPolicy> {
    let p = &def["restartPolicy"];
    if p["enabled"].as_bool() != Some(true) {
        return None;
    }
    Some(berth_runtime::RestartPolicy {
        ignored_exit_codes: p["ignoredExitCodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_i64().map(|c| c as i32))
            .collect(),
        attempt_period_secs: p["restartAttemptPeriod"].as_u64().unwrap_or(300),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn search_domains_replace_the_search_line() {
        let base = "nameserver 10.0.0.2\nsearch old.example\ndomain x\noptions ndots:2\n";
        assert_eq!(
            resolv_with_search(base, &["a.example".into(), "b.example".into()]),
            "nameserver 10.0.0.2\noptions ndots:2\nsearch a.example b.example\n"
        );
    }

    #[test]
    fn restart_policy_only_when_enabled() {
        assert_eq!(restart_policy(&json!({})), None);
        assert_eq!(
            restart_policy(&json!({"restartPolicy": {"enabled": false}})),
            None
        );
        let p = restart_policy(
            &json!({"restartPolicy": {"enabled": true, "ignoredExitCodes": [0, 7]}}),
        )
        .unwrap();
        assert_eq!(p.attempt_period_secs, 300);
        assert_eq!(p.ignored_exit_codes, [0, 7]);
    }

    #[test]
    fn entrypoint_from_user_drops_image_cmd() {
        let image = json!({"config": {"Entrypoint": ["/e"], "Cmd": ["c"]}});
        assert_eq!(args(&json!({}), &json!({}), &image), ["/e", "c"]);
        assert_eq!(
            args(&json!({"command": ["x"]}), &json!({}), &image),
            ["/e", "x"]
        );
        assert_eq!(
            args(&json!({"entryPoint": ["/u"]}), &json!({}), &image),
            ["/u"]
        );
        assert_eq!(
            args(
                &json!({"entryPoint": ["/u"], "command": ["a"]}),
                &json!({"command": ["b"]}),
                &image
            ),
            ["/u", "b"]
        );
    }

    #[test]
    fn env_layers_in_order() {
        let image = json!({"config": {"Env": ["PATH=/bin", "A=1"]}});
        let def =
            json!({"environment": [{"name": "A", "value": "2"}, {"name": "B", "value": "x"}]});
        let ov = json!({"environment": [{"name": "B", "value": "y"}]});
        assert_eq!(env(&def, &ov, &image, &[]), ["PATH=/bin", "A=2", "B=y"]);
    }

    #[test]
    fn users_resolve_from_image_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nwww:x:33:34::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\ndata:x:34:\nextra:x:50:www\n",
        )
        .unwrap();
        let layers = vec![d.path().to_path_buf()];
        assert_eq!(user("www", &layers).unwrap(), (33, 34, vec![50]));
        assert_eq!(user("33", &layers).unwrap(), (33, 34, vec![50]));
        assert_eq!(user("1000:5", &layers).unwrap(), (1000, 5, vec![]));
        assert_eq!(user("www:root", &layers).unwrap(), (33, 0, vec![50]));
        assert!(user("nobody", &layers).is_err());
    }

    #[test]
    fn fargate_nofile_is_clamped_to_the_host() {
        let l = rlimits(&json!({}), true, "t");
        let max = berth_runtime::sys::host_hard_limit("RLIMIT_NOFILE").unwrap();
        assert_eq!(
            l,
            vec![("RLIMIT_NOFILE".to_string(), 65535.min(max), 65535.min(max))]
        );
    }

    #[test]
    fn env_files_read_as_the_agent_reads_them() {
        let got = env_file(
            b"# comment\nA=1\nB= spaced \"q\"\r\nURL=http://x/?a=b\nEMPTY=\n=nokey\njunk\nA=2\n",
        );
        let want: Vec<(String, String)> =
            [("A", "2"), ("B", " spaced \"q\""), ("URL", "http://x/?a=b")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn volumes_berth_cannot_provide_are_refused_not_emptied() {
        let d = tempfile::tempdir().unwrap();
        for v in [
            json!({"efsVolumeConfiguration": {"fileSystemId": "fs-1"}}),
            json!({"s3filesVolumeConfiguration": {"fileSystemArn": "arn:aws:s3files:us-east-1:1:file-system/f"}}),
            json!({"configuredAtLaunch": true}),
        ] {
            let e = volume_source("v", &v, d.path(), d.path()).unwrap_err();
            assert!(e.contains("not supported by Berth yet"), "{e}");
        }
    }
}
