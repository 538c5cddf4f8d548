//! The OCI runtime spec of one container, built with oci-spec from what the node resolved
//! out of the task definition and the image. Docker's defaults apply, as the ECS agent
//! gives them: Docker's capability set and a seccomp profile with the same effect as
//! Docker's (both kept as data in `data/`), unless the container is privileged.

use oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxCpu, LinuxMemory, LinuxNamespace, LinuxNamespaceType,
    LinuxResources, LinuxSeccomp, Mount, PosixRlimit, PosixRlimitBuilder, PosixRlimitType, Spec,
    User,
};
use std::collections::HashSet;
use std::path::PathBuf;
use std::str::FromStr;

const SECCOMP: &str = include_str!("../data/seccomp.json");
const CAPABILITIES: &str = include_str!("../data/capabilities.json");

/// The static init run as PID 1 for containers with initProcessEnabled.
pub const INIT_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-init"));
/// Where containers see it.
pub const INIT_PATH: &str = "/sbin/berth-init";

/// A container's settings, resolved: no image or task-definition lookups remain.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub hostname: String,
    pub readonly_rootfs: bool,
    pub privileged: bool,
    /// (RLIMIT_* name, soft, hard), already clamped to the host's hard limits.
    pub rlimits: Vec<(String, u64, u64)>,
    /// cgroup path relative to each controller's mount.
    pub cgroups_path: String,
    /// The network namespace the task's containers share (a bind mount of the
    /// supervisor's); None for host networking, where they stay in the host's.
    pub netns: Option<PathBuf>,
    pub cpu_shares: Option<u64>,
    pub memory_limit: Option<i64>,
    pub memory_reservation: Option<i64>,
    /// Swap the container may use beyond `memory_limit`, in bytes (ECS `maxSwap`); None
    /// or 0: none.
    pub max_swap: Option<i64>,
    /// The kernel's swappiness for the container (ECS `swappiness`, with `maxSwap`).
    pub swappiness: Option<u64>,
    /// Files bind-mounted at /etc/hosts, /etc/hostname and /etc/resolv.conf.
    pub etc_hosts: PathBuf,
    pub etc_hostname: PathBuf,
    pub etc_resolv: PathBuf,
    /// Task volumes: (container path, host directory, read-only).
    pub volumes: Vec<(String, PathBuf, bool)>,
    /// The host path of berth-init, run as PID 1 in front of the command
    /// (initProcessEnabled); containers see it at `INIT_PATH`.
    pub init: Option<PathBuf>,
    /// linuxParameters.capabilities: names as ECS takes them (`SYS_PTRACE`, `ALL`),
    /// applied to Docker's default set with Docker's rules (`tweak_capabilities`).
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// disableNetworking: the container gets a network namespace of its own, made by the
    /// OCI runtime, with loopback only (Docker's `--network none`).
    pub no_network: bool,
}

/// Docker's default capability set.
pub fn default_capabilities() -> Vec<String> {
    serde_json::from_str(CAPABILITIES).expect("data/capabilities.json is a JSON array")
}

/// Docker's default seccomp profile, as the OCI spec's `linux.seccomp`.
/// The profile lists every architecture it was written for; a container gets only
/// those of this host (its native ABI and the compat ones, as Docker picks them): the
/// runtime compiles the filter at every start, and each extra architecture costs time
/// (measured with runc here: 58 ms a start with five, 42 with three).
pub fn default_seccomp() -> LinuxSeccomp {
    let mut v: serde_json::Value =
        serde_json::from_str(SECCOMP).expect("data/seccomp.json is JSON");
    let host: &[&str] = match std::env::consts::ARCH {
        "x86_64" => &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "aarch64" => &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        _ => &[],
    };
    if let Some(a) = v["architectures"].as_array_mut() {
        if !host.is_empty() {
            a.retain(|x| x.as_str().is_some_and(|n| host.contains(&n)));
        }
    }
    serde_json::from_value(v).expect("data/seccomp.json is an OCI seccomp object")
}

fn caps(names: &[String]) -> HashSet<Capability> {
    names
        .iter()
        // The spec's names (CAP_CHOWN), as serde reads them; FromStr wants CHOWN.
        .filter_map(|n| serde_json::from_value::<Capability>(serde_json::json!(n)).ok())
        .collect()
}

fn bind(dest: &str, src: &std::path::Path, readonly: bool) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dest));
    m.set_typ(Some("bind".into()));
    m.set_source(Some(src.to_path_buf()));
    let mut opts = vec!["rbind".to_string(), "rprivate".to_string()];
    if readonly {
        opts.push("ro".into());
    }
    m.set_options(Some(opts));
    m
}

pub fn build(c: &ContainerSpec) -> Spec {
    let mut spec = Spec::default();
    spec.set_hostname(Some(c.hostname.clone()));

    let root = spec.root_mut().as_mut().expect("default root");
    root.set_path(PathBuf::from("rootfs"));
    root.set_readonly(Some(c.readonly_rootfs));

    let process = spec.process_mut().as_mut().expect("default process");
    process.set_terminal(Some(false));
    let mut args = c.args.clone();
    if c.init.is_some() {
        args.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
    }
    process.set_args(Some(args));
    process.set_env(Some(c.env.clone()));
    process.set_cwd(PathBuf::from(if c.cwd.is_empty() { "/" } else { &c.cwd }));
    let mut user = User::default();
    user.set_uid(c.uid);
    user.set_gid(c.gid);
    if !c.additional_gids.is_empty() {
        user.set_additional_gids(Some(c.additional_gids.clone()));
    }
    process.set_user(user);
    process.set_no_new_privileges(Some(!c.privileged));
    let cap_names = if c.privileged {
        all_capabilities()
    } else {
        tweak_capabilities(&default_capabilities(), &c.cap_add, &c.cap_drop)
    };
    let set = caps(&cap_names);
    let mut lc = LinuxCapabilities::default();
    lc.set_bounding(Some(set.clone()));
    lc.set_effective(Some(set.clone()));
    lc.set_permitted(Some(set));
    lc.set_inheritable(Some(HashSet::new()));
    lc.set_ambient(Some(HashSet::new()));
    process.set_capabilities(Some(lc));
    let rlimits: Vec<PosixRlimit> = c
        .rlimits
        .iter()
        .filter_map(|(name, soft, hard)| {
            let typ = PosixRlimitType::from_str(name).ok()?;
            PosixRlimitBuilder::default()
                .typ(typ)
                .soft(*soft)
                .hard(*hard)
                .build()
                .ok()
        })
        .collect();
    process.set_rlimits(Some(rlimits));

    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(bind("/etc/hosts", &c.etc_hosts, false));
    mounts.push(bind("/etc/hostname", &c.etc_hostname, false));
    mounts.push(bind("/etc/resolv.conf", &c.etc_resolv, false));
    if let Some(init) = &c.init {
        mounts.push(bind(INIT_PATH, init, true));
    }
    for (dest, src, ro) in &c.volumes {
        mounts.push(bind(dest, src, *ro));
    }
    spec.set_mounts(Some(mounts));

    let linux = spec.linux_mut().as_mut().expect("default linux");
    linux.set_cgroups_path(Some(PathBuf::from(&c.cgroups_path)));
    let namespaces = linux
        .namespaces()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|ns| ns.typ() != LinuxNamespaceType::Network || c.netns.is_some() || c.no_network)
        .map(|mut ns| {
            if ns.typ() == LinuxNamespaceType::Network {
                // Without a path the runtime makes a new namespace with loopback up.
                ns.set_path(if c.no_network { None } else { c.netns.clone() });
            }
            ns
        })
        .collect::<Vec<LinuxNamespace>>();
    linux.set_namespaces(Some(namespaces));
    let mut res = linux
        .resources()
        .clone()
        .unwrap_or_else(LinuxResources::default);
    if c.cpu_shares.is_some() {
        let mut cpu = LinuxCpu::default();
        cpu.set_shares(c.cpu_shares);
        res.set_cpu(Some(cpu));
    }
    if c.memory_limit.is_some() || c.memory_reservation.is_some() || c.swappiness.is_some() {
        let mut mem = LinuxMemory::default();
        mem.set_limit(c.memory_limit);
        mem.set_reservation(c.memory_reservation);
        if let Some(l) = c.memory_limit {
            // The OCI runtimes take memory plus swap (v1 memsw; v2 memory.swap.max is the
            // difference), as Docker's --memory-swap: no swap unless maxSwap asks.
            mem.set_swap(Some(l + c.max_swap.unwrap_or(0)));
        }
        // cgroup v2 has no per-cgroup swappiness (Docker drops it there too; listed in
        // docs/compatibility.md).
        if !matches!(crate::cgroup::layout(), crate::cgroup::Layout::V2) {
            mem.set_swappiness(c.swappiness);
        }
        res.set_memory(Some(mem));
    }
    linux.set_resources(Some(res));
    if c.privileged {
        linux.set_masked_paths(Some(vec![]));
        linux.set_readonly_paths(Some(vec![]));
    } else {
        linux.set_seccomp(Some(default_seccomp()));
    }
    spec
}

/// A capability's name as the OCI spec has it: `sys_ptrace` and `CAP_SYS_PTRACE` are
/// both `CAP_SYS_PTRACE`; `ALL` stays `ALL`.
fn cap_name(n: &str) -> String {
    let up = n.trim().to_ascii_uppercase();
    if up == "ALL" || up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// Docker's rules for capAdd and capDrop over the default set: `ALL` in add is every
/// capability but those dropped; `ALL` in drop leaves only those added; otherwise the
/// defaults less those dropped, plus those added.
pub fn tweak_capabilities(defaults: &[String], add: &[String], drop: &[String]) -> Vec<String> {
    let add: Vec<String> = add.iter().map(|n| cap_name(n)).collect();
    let drop: Vec<String> = drop.iter().map(|n| cap_name(n)).collect();
    let has = |list: &[String], n: &str| list.iter().any(|x| x == n);
    let mut out: Vec<String> = if has(&add, "ALL") {
        all_capabilities()
            .into_iter()
            .filter(|c| !has(&drop, c))
            .collect()
    } else if has(&drop, "ALL") {
        add.clone()
    } else {
        defaults
            .iter()
            .filter(|c| !has(&drop, c))
            .cloned()
            .chain(add.iter().cloned())
            .collect()
    };
    out.retain(|c| c != "ALL");
    let mut seen = HashSet::new();
    out.retain(|c| seen.insert(c.clone()));
    out
}

/// Every capability, in the kernel's bit order.
const ALL_CAPABILITIES: [&str; 38] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
];

/// Every capability the host's bounding set holds, for privileged containers (this
/// host's lacks CAP_SYS_RESOURCE, so it is never asked for).
fn all_capabilities() -> Vec<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0);
    ALL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1 << bit) != 0)
        .map(|(_, c)| c.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_container_gets_docker_caps_and_seccomp() {
        let s = build(&ContainerSpec {
            args: vec!["/bin/true".into()],
            cgroups_path: "/berth/t/c".into(),
            netns: Some("/tmp/netns".into()),
            ..Default::default()
        });
        let v = serde_json::to_value(&s).unwrap();
        let bounding = v["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert_eq!(bounding.len(), 14);
        assert!(!bounding.iter().any(|c| c == "CAP_SYS_ADMIN"));
        assert!(v["linux"]["seccomp"]["syscalls"].is_array());
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            v["linux"]["seccomp"]["architectures"],
            serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        let net = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["type"] == "network")
            .unwrap();
        assert_eq!(net["path"], "/tmp/netns");
        assert_eq!(v["process"]["noNewPrivileges"], true);
    }

    #[test]
    fn capabilities_follow_dockers_rules() {
        let d = default_capabilities();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let dropped = tweak_capabilities(&d, &[], &s(&["NET_RAW", "cap_chown"]));
        assert_eq!(dropped.len(), d.len() - 2);
        assert!(!dropped
            .iter()
            .any(|c| c == "CAP_NET_RAW" || c == "CAP_CHOWN"));
        let added = tweak_capabilities(&d, &s(&["SYS_PTRACE"]), &[]);
        assert_eq!(added.len(), d.len() + 1);
        assert!(added.iter().any(|c| c == "CAP_SYS_PTRACE"));
        assert_eq!(
            tweak_capabilities(&d, &s(&["KILL"]), &s(&["ALL"])),
            s(&["CAP_KILL"])
        );
        let all = tweak_capabilities(&d, &s(&["ALL"]), &s(&["SYS_ADMIN"]));
        assert!(!all.iter().any(|c| c == "CAP_SYS_ADMIN" || c == "ALL"));
        assert!(all.len() >= d.len());
        // Adding one already there does not list it twice.
        assert_eq!(tweak_capabilities(&d, &s(&["CHOWN"]), &[]).len(), d.len());
    }

    #[test]
    fn disabled_networking_gets_a_namespace_of_its_own() {
        let s = build(&ContainerSpec {
            netns: Some("/tmp/netns".into()),
            no_network: true,
            ..Default::default()
        });
        let v = serde_json::to_value(&s).unwrap();
        let net = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["type"] == "network")
            .unwrap();
        assert!(net.get("path").is_none_or(|p| p.is_null()));
    }

    #[test]
    fn privileged_container_has_no_seccomp() {
        let s = build(&ContainerSpec {
            privileged: true,
            ..Default::default()
        });
        let v = serde_json::to_value(&s).unwrap();
        assert!(v["linux"]["seccomp"].is_null());
        let bounding = v["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert!(bounding.iter().any(|c| c == "CAP_SYS_ADMIN"));
    }
}
