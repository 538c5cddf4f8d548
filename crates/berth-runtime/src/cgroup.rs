//! The host's cgroups behind one interface, in either layout: cgroup v1 (one hierarchy per
//! controller under `/sys/fs/cgroup/<controller>`, with or without a unified mount beside
//! them) or cgroup v2 (one unified hierarchy at `/sys/fs/cgroup`). The layout is read once
//! per process from the filesystem type of `/sys/fs/cgroup`.
//!
//! A cgroup is named by its path below the hierarchy's root (v2) or below each
//! controller's mount (v1), for example `/berth/<task>`: the form the OCI runtimes take as
//! `cgroupsPath` with their cgroupfs driver. `berth up` makes Berth's subtree ready
//! (`prepare`); each task's supervisor makes the task's cgroup below it, the OCI runtime
//! the containers' below that.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub const MOUNT: &str = "/sys/fs/cgroup";
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;

/// The controllers without which tasks' limits cannot hold: Berth refuses to start.
const REQUIRED: [&str; 2] = ["memory", "cpu"];
/// cgroup v2 controllers enabled when present, for stats (`pids.current`, `io.stat`).
const OPTIONAL_V2: [&str; 2] = ["pids", "io"];
/// On cgroup v2, Berth's own processes move into this leaf of the cgroup it was started
/// in, so that tasks can sit beside it (a cgroup with processes cannot hand controllers
/// to its children). The systemd unit's `DelegateSubgroup=` names the same leaf.
pub const SERVER_LEAF: &str = "server";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// One hierarchy per controller; `unified`: a v2 hierarchy is mounted beside them
    /// (the "hybrid" layout).
    V1 { unified: bool },
    /// The unified hierarchy only.
    V2,
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layout::V1 { unified: false } => "cgroup v1",
            Layout::V1 { unified: true } => "cgroup v1 with a unified v2 mount (hybrid)",
            Layout::V2 => "cgroup v2 (unified)",
        })
    }
}

fn fs_type(path: &str) -> io::Result<i64> {
    let p = std::ffi::CString::new(path).map_err(io::Error::other)?;
    // SAFETY: a valid C string and a zeroed out-parameter of the right type.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(p.as_ptr(), &mut s) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(s.f_type as i64)
}

/// This host's layout, read from the filesystem at `/sys/fs/cgroup`.
pub fn detect() -> io::Result<Layout> {
    if fs_type(MOUNT)? == CGROUP2_SUPER_MAGIC {
        return Ok(Layout::V2);
    }
    let unified = fs_type("/sys/fs/cgroup/unified").ok() == Some(CGROUP2_SUPER_MAGIC);
    Ok(Layout::V1 { unified })
}

/// The layout, detected once per process (v1 if `/sys/fs/cgroup` cannot be read: then
/// every cgroup operation fails and says where).
pub fn layout() -> Layout {
    static LAYOUT: OnceLock<Layout> = OnceLock::new();
    *LAYOUT.get_or_init(|| detect().unwrap_or(Layout::V1 { unified: false }))
}

fn join(base: &str, cgroup: &str) -> PathBuf {
    Path::new(base).join(cgroup.trim_start_matches('/'))
}

/// A cgroup's directory for `controller` (v1), or in the unified hierarchy (v2).
fn dir(controller: &str, cgroup: &str) -> PathBuf {
    match layout() {
        Layout::V2 => join(MOUNT, cgroup),
        Layout::V1 { .. } => join(&format!("{MOUNT}/{controller}"), cgroup),
    }
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat, memory.events) as a map.
fn read_keyed(p: &Path) -> BTreeMap<String, u64> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn write(p: &Path, value: &str) -> io::Result<()> {
    std::fs::write(p, value).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot write {value:?} to {}: {e}", p.display()),
        )
    })
}

fn mkdir(p: &Path) -> io::Result<()> {
    std::fs::create_dir_all(p)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", p.display())))
}

/// Whether this process may make cgroups in `dir` (a directory that already exists is
/// not written to on the way, so a read-only mount shows only here).
fn writable(dir: &Path) -> io::Result<()> {
    let p = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    // SAFETY: a valid C string.
    if unsafe { libc::access(p.as_ptr(), libc::W_OK) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display())));
    }
    Ok(())
}

// Host set-up (`berth up`, `berth down`).

/// Where this Berth puts its tasks' cgroups: made ready by `prepare` at `berth up`,
/// recorded in the data directory for `berth down` (which may run in another cgroup).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRoot {
    pub layout: Layout,
    /// The parent of every task's cgroup (`/berth` on v1; on v2 `<the cgroup Berth was
    /// started in>/tasks`, or `/berth` when that is the root).
    pub path: String,
}

impl TaskRoot {
    /// The cgroup of the task `id`.
    pub fn task(&self, id: &str) -> String {
        format!("{}/{id}", self.path)
    }
}

/// Make Berth's subtree ready for tasks, or say exactly what this host lacks and how to
/// fix it: a required controller missing or not delegated, or a read-only hierarchy.
pub fn prepare() -> Result<TaskRoot, String> {
    let layout = detect().map_err(|e| {
        format!("cannot read {MOUNT}: {e}; Berth needs the cgroup filesystem mounted there")
    })?;
    match layout {
        Layout::V1 { .. } => prepare_v1(layout),
        Layout::V2 => prepare_v2(),
    }
}

fn prepare_v1(layout: Layout) -> Result<TaskRoot, String> {
    for c in REQUIRED {
        let mount = format!("{MOUNT}/{c}");
        if fs_type(&mount).ok() != Some(CGROUP_SUPER_MAGIC) {
            return Err(format!(
                "the {c} cgroup controller is not mounted at {mount} (cgroup v1): tasks' limits need it. \
                 It may be disabled (cgroup_disable= on the kernel command line) or bound to the unified hierarchy; \
                 boot with it enabled, or boot with cgroup v2 only (systemd.unified_cgroup_hierarchy=1)"
            ));
        }
        let berth = Path::new(&mount).join("berth");
        mkdir(&berth)
            .and_then(|()| writable(&berth))
            .map_err(|e| host_error(&e))?;
    }
    Ok(TaskRoot {
        layout,
        path: "/berth".into(),
    })
}

fn host_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ReadOnlyFilesystem => format!(
            "{e}: {MOUNT} is mounted read-only. Berth makes a cgroup per task: run it on the host, \
             or in a container with a writable cgroup mount (for example podman/docker --privileged)"
        ),
        io::ErrorKind::PermissionDenied => format!(
            "{e}: Berth may not change this cgroup; run it as root, and under systemd with Delegate=yes (see contrib/berth.service)"
        ),
        _ => e.to_string(),
    }
}

/// The cgroup this process is in (v2: the `0::` line of /proc/self/cgroup).
fn own_cgroup() -> Result<String, String> {
    let s = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().to_string())
        .ok_or_else(|| "/proc/self/cgroup has no cgroup v2 entry".into())
}

fn parent(cgroup: &str) -> &str {
    match cgroup.rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((p, _)) => p,
    }
}

fn prepare_v2() -> Result<TaskRoot, String> {
    let own = own_cgroup()?;
    // Started in the leaf an earlier start made, or that systemd's DelegateSubgroup=
    // made: Berth's subtree is the leaf's parent.
    let base = if own.rsplit('/').next() == Some(SERVER_LEAF) {
        parent(&own).to_string()
    } else {
        own
    };
    let base_dir = join(MOUNT, &base);
    let available =
        std::fs::read_to_string(base_dir.join("cgroup.controllers")).unwrap_or_default();
    let available: Vec<&str> = available.split_whitespace().collect();
    for c in REQUIRED {
        if !available.contains(&c) {
            return Err(format!(
                "the {c} cgroup controller is not available to Berth's cgroup {base} (cgroup v2): tasks' limits need it. \
                 Enable it in the parent's cgroup.subtree_control (echo +{c} > {}/cgroup.subtree_control), \
                 or under systemd start Berth with Delegate=yes (see contrib/berth.service)",
                join(MOUNT, parent(&base)).display()
            ));
        }
    }
    let wanted: Vec<&str> = REQUIRED
        .iter()
        .chain(OPTIONAL_V2.iter())
        .copied()
        .filter(|c| available.contains(c))
        .collect();
    let tasks = if base == "/" {
        "/berth".to_string()
    } else {
        format!("{base}/tasks")
    };
    writable(&base_dir).map_err(|e| host_error(&e))?;
    enable_controllers(&base_dir, &wanted, true).map_err(|e| host_error(&e))?;
    let tasks_dir = join(MOUNT, &tasks);
    mkdir(&tasks_dir)
        .and_then(|()| writable(&tasks_dir))
        .map_err(|e| host_error(&e))?;
    enable_controllers(&tasks_dir, &wanted, false).map_err(|e| host_error(&e))?;
    for c in OPTIONAL_V2 {
        if !wanted.contains(&c) {
            tracing::warn!(controller = c, cgroup = %base, "cgroup controller not available; tasks' stats lack what it counts");
        }
    }
    Ok(TaskRoot {
        layout: Layout::V2,
        path: tasks,
    })
}

/// Hand `controllers` to the children of `dir`. A cgroup that holds processes cannot
/// (the no-internal-processes rule, the root excepted): with `move_processes`, its
/// processes (Berth among them) move to the `server` leaf first.
fn enable_controllers(dir: &Path, controllers: &[&str], move_processes: bool) -> io::Result<()> {
    let control = dir.join("cgroup.subtree_control");
    let on = std::fs::read_to_string(&control).unwrap_or_default();
    let missing: Vec<String> = controllers
        .iter()
        .filter(|c| !on.split_whitespace().any(|o| o == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let value = missing.join(" ");
    match std::fs::write(&control, &value) {
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) && move_processes => {
            let leaf = dir.join(SERVER_LEAF);
            mkdir(&leaf)?;
            for pid in std::fs::read_to_string(dir.join("cgroup.procs"))?.lines() {
                match std::fs::write(leaf.join("cgroup.procs"), pid) {
                    // A process that exited meanwhile.
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                    r => r.map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!("cannot move process {pid} into {}: {e}", leaf.display()),
                        )
                    })?,
                }
            }
            tracing::info!(leaf = %leaf.display(), "moved Berth's processes into a leaf cgroup so tasks' cgroups can sit beside it");
            write(&control, &value)
        }
        r => r.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot write {value:?} to {}: {e}", control.display()),
            )
        }),
    }
}

/// The task cgroups below `root` (their names are task ids).
pub fn task_cgroups(root: &TaskRoot) -> Vec<String> {
    let base = match root.layout {
        Layout::V2 => join(MOUNT, &root.path),
        Layout::V1 { .. } => join(&format!("{MOUNT}/memory"), &root.path),
    };
    let mut ids: Vec<String> = std::fs::read_dir(base)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    if let Layout::V1 { .. } = root.layout {
        // The cpu hierarchy may hold one the memory hierarchy no longer does.
        for e in std::fs::read_dir(join(&format!("{MOUNT}/cpu"), &root.path))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
        {
            if let Ok(n) = e.file_name().into_string() {
                if e.file_type().is_ok_and(|t| t.is_dir()) && !ids.contains(&n) {
                    ids.push(n);
                }
            }
        }
    }
    ids
}

/// `berth down`, once every task is gone: remove the tasks' parent (v1: in each
/// hierarchy; v2: Berth's `tasks` cgroup) and the task cgroups left in it, only those
/// with no process: one in use belongs to a task still running (another Berth's, on v1's
/// shared hierarchies) and is left, with its parent. Berth's own leaf stays too.
pub fn remove_root(root: &TaskRoot) -> io::Result<()> {
    let bases: Vec<PathBuf> = match root.layout {
        Layout::V2 => vec![join(MOUNT, &root.path)],
        Layout::V1 { .. } => controllers_v1()
            .iter()
            .map(|c| join(&c.to_string_lossy(), &root.path))
            .collect(),
    };
    for b in bases {
        remove_empty_tree(&b)?;
    }
    Ok(())
}

/// rmdir `dir` and its descendants, deepest first, leaving any that hold processes.
fn remove_empty_tree(dir: &Path) -> io::Result<()> {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.filter_map(Result::ok) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_tree(&e.path())?;
            }
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        // In use: processes inside, or a child that is.
        Err(e)
            if e.raw_os_error() == Some(libc::EBUSY)
                || e.raw_os_error() == Some(libc::ENOTEMPTY) =>
        {
            Ok(())
        }
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot remove {}: {e}", dir.display()),
        )),
    }
}

// One task's cgroup (the supervisor).

/// The v1 hierarchies mounted (each a directory of /sys/fs/cgroup; cpu,cpuacct's
/// symlinks are skipped, their target is listed).
fn controllers_v1() -> Vec<PathBuf> {
    std::fs::read_dir(MOUNT)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .collect()
}

/// Create the task's cgroup with its memory limit, which its containers share. Swap is
/// off (`swap: false`: no container's definition asks for any) as on Fargate. The CPU
/// quota comes later (`set_cpu_quota`).
pub fn create_task(cgroup: &str, memory: Option<i64>, swap: bool) -> io::Result<()> {
    match layout() {
        Layout::V1 { .. } => {
            let mem = dir("memory", cgroup);
            mkdir(&dir("cpu", cgroup))?;
            mkdir(&mem)?;
            if let Some(m) = memory {
                write(&mem.join("memory.limit_in_bytes"), &m.to_string())?;
                if !swap {
                    // Absent when the kernel does not account swap: then there is none.
                    let _ = std::fs::write(mem.join("memory.memsw.limit_in_bytes"), m.to_string());
                }
            }
        }
        Layout::V2 => {
            let d = join(MOUNT, cgroup);
            mkdir(&d)?;
            // The containers' own limits need the controllers below the task too.
            let available =
                std::fs::read_to_string(d.join("cgroup.controllers")).unwrap_or_default();
            let wanted: Vec<&str> = REQUIRED
                .iter()
                .chain(OPTIONAL_V2.iter())
                .copied()
                .filter(|c| available.split_whitespace().any(|a| a == *c))
                .collect();
            enable_controllers(&d, &wanted, false)?;
            if let Some(m) = memory {
                write(&d.join("memory.max"), &m.to_string())?;
            }
            if !swap && d.join("memory.swap.max").exists() {
                write(&d.join("memory.swap.max"), "0")?;
            }
        }
    }
    Ok(())
}

/// Limit the task's CPU to `quota_us` per 100 ms period (CFS bandwidth).
pub fn set_cpu_quota(cgroup: &str, quota_us: i64) -> io::Result<()> {
    match layout() {
        Layout::V1 { .. } => {
            let cpu = dir("cpu", cgroup);
            write(&cpu.join("cpu.cfs_period_us"), "100000")?;
            write(&cpu.join("cpu.cfs_quota_us"), &quota_us.to_string())
        }
        Layout::V2 => write(
            &join(MOUNT, cgroup).join("cpu.max"),
            &format!("{quota_us} 100000"),
        ),
    }
}

/// How many times the kernel's OOM killer has killed a process in this cgroup (on v2,
/// in it or below it).
pub fn oom_kills(cgroup: &str) -> u64 {
    let (file, key) = match layout() {
        Layout::V1 { .. } => ("memory.oom_control", "oom_kill"),
        Layout::V2 => ("memory.events", "oom_kill"),
    };
    read_keyed(&dir("memory", cgroup).join(file))
        .get(key)
        .copied()
        .unwrap_or(0)
}

/// Remove the cgroup (and anything left below it) from every hierarchy. Processes still
/// inside keep a cgroup busy; those are killed first.
pub fn remove(cgroup: &str) -> io::Result<()> {
    match layout() {
        Layout::V2 => remove_tree(&join(MOUNT, cgroup)),
        Layout::V1 { .. } => {
            let mut first_err = None;
            for c in controllers_v1() {
                let d = join(&c.to_string_lossy(), cgroup);
                if let Err(e) = remove_tree(&d) {
                    first_err.get_or_insert(e);
                }
            }
            first_err.map_or(Ok(()), Err)
        }
    }
}

fn remove_tree(dir: &Path) -> io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.filter_map(Result::ok) {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path())?;
            }
        }
    }
    if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    // A cgroup whose last process was just killed stays busy until the kernel has reaped
    // it; this waits on the kernel, not on a test's timing.
    for _ in 0..400 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    std::fs::remove_dir(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot remove {}: {e}", dir.display())))
}

// Resource use, in one place for the metadata endpoint's stats and for metrics.

/// A cgroup's resource use, read from whichever layout the host has.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    pub layout: Option<Layout>,
    /// Bytes in use (v1 memory.usage_in_bytes, v2 memory.current).
    pub memory_usage: Option<u64>,
    /// The highest use seen (v1 only; v2 has no such counter before kernel 5.19's
    /// memory.peak, which Docker does not report either).
    pub memory_max_usage: Option<u64>,
    /// The limit in bytes; None when unlimited.
    pub memory_limit: Option<u64>,
    /// memory.stat as the kernel words it (v1 and v2 keys differ; Docker passes them on).
    pub memory_stat: BTreeMap<String, u64>,
    /// CPU time in nanoseconds: in all, in user mode and in kernel mode.
    pub cpu_total_ns: Option<u64>,
    pub cpu_user_ns: Option<u64>,
    pub cpu_system_ns: Option<u64>,
    /// CFS bandwidth: periods, periods throttled, and time throttled in nanoseconds.
    pub cpu_periods: Option<u64>,
    pub cpu_throttled_periods: Option<u64>,
    pub cpu_throttled_ns: Option<u64>,
    pub pids: Option<u64>,
    /// Bytes read and written per device: (major, minor, operation, bytes), the
    /// operation as Docker names it in each layout ("Read"/"Write" v1, "read"/"write" v2).
    pub io_bytes: Vec<(u64, u64, String, u64)>,
}

/// Clock ticks per second of /proc and cpuacct.stat (USER_HZ, 100 on every Linux ABI).
const USER_HZ: u64 = 100;

pub fn usage(cgroup: &str) -> Usage {
    let layout = layout();
    let mut u = Usage {
        layout: Some(layout),
        ..Usage::default()
    };
    match layout {
        Layout::V1 { .. } => {
            let mem = dir("memory", cgroup);
            u.memory_usage = read_u64(&mem.join("memory.usage_in_bytes"));
            u.memory_max_usage = read_u64(&mem.join("memory.max_usage_in_bytes"));
            // An unlimited v1 cgroup says so with the largest page-aligned i64.
            u.memory_limit =
                read_u64(&mem.join("memory.limit_in_bytes")).filter(|l| *l < (1 << 62));
            u.memory_stat = read_keyed(&mem.join("memory.stat"));
            let acct = dir("cpuacct", cgroup);
            u.cpu_total_ns = read_u64(&acct.join("cpuacct.usage"));
            let ticks = read_keyed(&acct.join("cpuacct.stat"));
            let ns = |k: &str| ticks.get(k).map(|t| t * (1_000_000_000 / USER_HZ));
            u.cpu_user_ns = ns("user");
            u.cpu_system_ns = ns("system");
            let cpu = read_keyed(&dir("cpu", cgroup).join("cpu.stat"));
            u.cpu_periods = cpu.get("nr_periods").copied();
            u.cpu_throttled_periods = cpu.get("nr_throttled").copied();
            u.cpu_throttled_ns = cpu.get("throttled_time").copied();
            u.pids = read_u64(&dir("pids", cgroup).join("pids.current"));
            let blkio = dir("blkio", cgroup).join("blkio.throttle.io_service_bytes_recursive");
            for l in std::fs::read_to_string(blkio).unwrap_or_default().lines() {
                let f: Vec<&str> = l.split_whitespace().collect();
                if let [dev, op, v] = f.as_slice() {
                    if let (Some((ma, mi)), Ok(v)) = (dev.split_once(':'), v.parse()) {
                        if let (Ok(ma), Ok(mi)) = (ma.parse(), mi.parse()) {
                            u.io_bytes.push((ma, mi, op.to_string(), v));
                        }
                    }
                }
            }
        }
        Layout::V2 => {
            let d = join(MOUNT, cgroup);
            u.memory_usage = read_u64(&d.join("memory.current"));
            u.memory_limit = read_u64(&d.join("memory.max")); // "max" does not parse: None
            u.memory_stat = read_keyed(&d.join("memory.stat"));
            let cpu = read_keyed(&d.join("cpu.stat"));
            let ns = |k: &str| cpu.get(k).map(|us| us * 1000);
            u.cpu_total_ns = ns("usage_usec");
            u.cpu_user_ns = ns("user_usec");
            u.cpu_system_ns = ns("system_usec");
            u.cpu_periods = cpu.get("nr_periods").copied();
            u.cpu_throttled_periods = cpu.get("nr_throttled").copied();
            u.cpu_throttled_ns = ns("throttled_usec");
            u.pids = read_u64(&d.join("pids.current"));
            for l in std::fs::read_to_string(d.join("io.stat"))
                .unwrap_or_default()
                .lines()
            {
                let mut f = l.split_whitespace();
                let Some((ma, mi)) = f.next().and_then(|dev| dev.split_once(':')) else {
                    continue;
                };
                let (Ok(ma), Ok(mi)) = (ma.parse(), mi.parse()) else {
                    continue;
                };
                for kv in f {
                    let op = match kv.split_once('=') {
                        Some(("rbytes", v)) => ("read", v),
                        Some(("wbytes", v)) => ("write", v),
                        _ => continue,
                    };
                    if let Ok(v) = op.1.parse() {
                        u.io_bytes.push((ma, mi, op.0.to_string(), v));
                    }
                }
            }
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_of_a_cgroup() {
        assert_eq!(parent("/system.slice/berth.service"), "/system.slice");
        assert_eq!(parent("/berth"), "/");
        assert_eq!(parent("/"), "/");
    }

    #[test]
    fn this_host_has_a_layout() {
        // Whatever the host, detection answers (the CI host is v1 hybrid, the VM v2).
        let l = detect().expect("/sys/fs/cgroup is readable");
        let v2 = std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .lines()
            .any(|m| m.split(' ').nth(1) == Some(MOUNT) && m.split(' ').nth(2) == Some("cgroup2"));
        assert_eq!(l == Layout::V2, v2);
    }

    #[test]
    fn keyed_files_parse() {
        let d = std::env::temp_dir().join(format!("berth-cg-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .unwrap();
        assert_eq!(
            read_keyed(&d.join("memory.events")).get("oom_kill"),
            Some(&1)
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
