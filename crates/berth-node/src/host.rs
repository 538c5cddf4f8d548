//! The host's bring-up for `berth up` and its undoing for `berth down`: the OCI runtime
//! and the cgroup setup it needs, the bridge with Berth's chains and the endpoints at
//! 169.254.170.2, and at `berth down` the tasks stopped, leftover cgroups removed and
//! every host change undone. Everything about the host's cgroups is in the "Cgroups"
//! part below.

use crate::{dns, endpoints, Node};
use berth_net::HostNetwork;
use berth_runtime::cgroup;
use berth_store::Store;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What `berth up` set up for running tasks on this host.
pub struct TaskRuntime {
    /// The OCI runtime binary.
    pub program: PathBuf,
    /// Where tasks' cgroups go.
    pub cgroups: cgroup::TaskRoot,
}

/// `berth up`: the OCI runtime tasks run with (`auto`: crun when installed, else runc; or
/// a name looked up on PATH, or a path), and this host's cgroups made ready for tasks,
/// or why they cannot be (then Berth does not start: a task must never fail later for a
/// reason of the host's).
pub fn set_up_runtime(
    data_dir: &Path,
    oci_runtime: &Path,
    favordynmods: bool,
) -> Result<TaskRuntime, String> {
    let runtime = if oci_runtime.as_os_str() == "auto" {
        find_program(Path::new("crun")).or_else(|_| find_program(Path::new("runc")))?
    } else {
        find_program(oci_runtime)?
    };
    let cgroups = cgroup::prepare()?;
    tracing::info!(layout = %cgroups.layout, tasks = %cgroups.path, "cgroups");
    let record = serde_json::to_vec(&cgroups).map_err(|e| e.to_string())?;
    std::fs::write(data_dir.join(CGROUPS_RECORD), record).map_err(|e| {
        format!(
            "cannot write {}: {e}",
            data_dir.join(CGROUPS_RECORD).display()
        )
    })?;
    remove_orphan_cgroups(&cgroups, &data_dir.join("tasks"));
    if runtime.file_name().is_some_and(|n| n == "crun") {
        mount_hugetlb_for_crun(data_dir)?;
    }
    tracing::info!(runtime = %runtime.display(), "tasks run with this OCI runtime");
    if favordynmods {
        turn_on_favordynmods();
    }
    Ok(TaskRuntime {
        program: runtime,
        cgroups,
    })
}

/// A runtime named without a path is looked up on PATH.
fn find_program(p: &Path) -> Result<PathBuf, String> {
    if p.components().count() > 1 {
        return Ok(p.to_path_buf());
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|v| std::env::split_paths(&v).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(p))
        .find(|c| c.is_file())
        .ok_or_else(|| {
            format!(
                "the OCI runtime {} is not installed (apt install crun, or runc)",
                p.display()
            )
        })
}

/// What `berth up` made of task networking on this host.
pub struct TaskNetworkSetup {
    /// The host's side, or why there is none (awsvpc and bridge tasks then fail with it).
    pub host: Result<Arc<HostNetwork>, String>,
    /// Berth's API where tasks reach it, to be served by the edge.
    pub edge_listener: Option<tokio::net::TcpListener>,
    pub endpoint_url: Option<String>,
    pub resolver: Option<std::net::Ipv4Addr>,
}

/// `berth up`: the bridge and Berth's chains, then at 169.254.170.2 on the bridge: the
/// in-task endpoints (:80), the tasks' resolver (:53, answering with `lookup`) and a
/// listener for the API (on `port`, the edge's). A host where the bridge cannot be made
/// still runs Berth; one where the address is taken (another berth on this host) runs
/// tasks without the endpoints.
pub fn set_up_network(
    store: &Arc<dyn Store>,
    credentials: endpoints::TaskCredentials,
    cgroups: cgroup::TaskRoot,
    port: u16,
    lookup: dns::Lookup,
) -> TaskNetworkSetup {
    let mut setup = TaskNetworkSetup {
        host: Err(String::new()),
        edge_listener: None,
        endpoint_url: None,
        resolver: None,
    };
    let host = match HostNetwork::set_up() {
        Ok((host, said)) => {
            for s in said {
                tracing::info!("host network: {s} (berth down removes it)");
            }
            host
        }
        Err(e) => {
            tracing::warn!(error = %e, "task networking is not available; awsvpc and bridge tasks will fail");
            setup.host = Err(e.to_string());
            return setup;
        }
    };
    let ip = endpoints::ENDPOINT_IP;
    match host
        .add_bridge_address(ip)
        .and_then(|()| Ok((bridge_listener(80)?, bridge_listener(port)?)))
    {
        Ok((metadata, api)) => {
            let endpoints = endpoints::Endpoints::new(store.clone(), credentials, cgroups);
            tokio::spawn(endpoints.serve(metadata));
            let dns = std::net::UdpSocket::bind((ip, 53)).and_then(|s| {
                s.set_nonblocking(true)?;
                tokio::net::UdpSocket::from_std(s)
            });
            match dns {
                Ok(sock) => {
                    tokio::spawn(dns::serve(sock, ip, lookup));
                    setup.resolver = Some(ip);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot serve DNS for tasks on {ip}:53; tasks use the host's resolvers")
                }
            }
            setup.edge_listener = Some(api);
            setup.endpoint_url = Some(format!("http://{ip}:{port}"));
            tracing::info!(
                "task endpoints on http://{ip}/, the API for tasks on http://{ip}:{port}/"
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot serve the task endpoints on {ip}; tasks run without them")
        }
    }
    setup.host = Ok(Arc::new(host));
    setup
}

/// Listen on the task endpoints' address on the bridge.
fn bridge_listener(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let l = std::net::TcpListener::bind((endpoints::ENDPOINT_IP, port))?;
    l.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(l)
}

/// `berth down`, once the server is stopped: ask every task's supervisor to stop its task
/// (each takes up to its containers' stopTimeout) and wait until all are gone (the next
/// start records the tasks as STOPPED), remove the cgroups left, then undo the host
/// changes Berth made. `report` gets each line to show: Ok for what was done, Err for
/// what could not be. Err: tasks still running; the host is then left as it is.
pub fn tear_down(
    data_dir: &Path,
    report: &mut dyn FnMut(Result<String, String>),
) -> Result<(), String> {
    stop_tasks(data_dir, report)?;
    undo_host_changes(data_dir, report);
    Ok(())
}

fn stop_tasks(
    data_dir: &Path,
    report: &mut dyn FnMut(Result<String, String>),
) -> Result<(), String> {
    let tasks = data_dir.join("tasks");
    let n = Node::stop_all(&tasks);
    if n == 0 {
        return Ok(());
    }
    report(Ok(format!("stopping {n} task(s)")));
    let until = std::time::Instant::now() + std::time::Duration::from_secs(150);
    loop {
        let left = std::fs::read_dir(&tasks)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| berth_runtime::client::alive(&e.path()))
            .count();
        if left == 0 {
            break;
        }
        if std::time::Instant::now() > until {
            return Err(format!("{left} task(s) did not stop within 150s"));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(())
}

fn undo_host_changes(data_dir: &Path, report: &mut dyn FnMut(Result<String, String>)) {
    remove_cgroups(data_dir, report);
    unmount_hugetlb(data_dir, report);
    for said in berth_net::host::tear_down() {
        report(Ok(said));
    }
}

// Cgroups: what Berth changes in the host's cgroup hierarchies, and its undoing.

/// Where `berth up` notes that it mounted the hugetlb controller, so `berth down` undoes it.
const HUGETLB_MARKER: &str = "host-change-hugetlb-mount";

/// crun refuses a hybrid cgroup host until hugetlb has a v1 mount: make it, and note it
/// for `berth down`.
fn mount_hugetlb_for_crun(data_dir: &Path) -> Result<(), String> {
    match berth_runtime::sys::ensure_hugetlb_v1() {
        Ok(true) => {
            let _ = std::fs::write(data_dir.join(HUGETLB_MARKER), "");
            tracing::info!("mounted the hugetlb cgroup controller at /sys/fs/cgroup/hugetlb (crun needs it on hybrid cgroup hosts; berth down removes it)");
        }
        Ok(false) => {}
        Err(e) => return Err(format!("crun needs the hugetlb cgroup controller mounted at /sys/fs/cgroup/hugetlb and it could not be mounted: {e} (or use --oci-runtime runc)")),
    }
    Ok(())
}

/// `--cgroup-favordynmods`: a container start then no longer waits for an RCU grace
/// period; failing to turn it on only costs speed.
fn turn_on_favordynmods() {
    match berth_runtime::sys::favor_dynmods() {
        Ok(Some(at)) => {
            tracing::info!(mount = %at, "turned on cgroup favordynmods (host-wide, until reboot on recent kernels; --cgroup-favordynmods false leaves it off): moving a container into its cgroup no longer waits for an RCU grace period")
        }
        Ok(None) => {}
        Err(e) if kernel_older_than(6, 0) => {
            tracing::info!(error = %e, "this kernel predates cgroup favordynmods (Linux 6.0); container starts wait for an RCU grace period")
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not turn on cgroup favordynmods; container starts wait for an RCU grace period")
        }
    }
}

/// Whether the running kernel's version is below major.minor (unknown: false).
fn kernel_older_than(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut v = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    match (v.next(), v.next()) {
        (Some(a), Some(b)) => (a, b) < (major, minor),
        _ => false,
    }
}

/// Where `berth up` records the cgroup subtree it prepared, for `berth down` (which may run
/// in another cgroup, so cannot work it out again).
const CGROUPS_RECORD: &str = "host-cgroups.json";

/// Cgroups of this data directory's tasks whose supervisor is gone (Berth and the
/// supervisor killed together, or the host's processes killed), with anything still
/// running in them. A task cgroup without a task directory here may be another Berth's
/// on this host (v1 hierarchies are shared): it is left alone.
fn remove_orphan_cgroups(root: &cgroup::TaskRoot, tasks_dir: &Path) {
    for id in cgroup::task_cgroups(root) {
        let dir = tasks_dir.join(&id);
        if !dir.is_dir() || berth_runtime::client::alive(&dir) {
            continue;
        }
        match cgroup::remove(&root.task(&id)) {
            Ok(()) => tracing::info!(task = %id, "removed the cgroup of a task no supervisor runs"),
            Err(e) => {
                tracing::warn!(task = %id, error = %e, "cannot remove a leftover task cgroup")
            }
        }
    }
}

/// Once every task is gone: the empty task cgroups left and their parent (one still in
/// use, another Berth's on this host, stays).
fn remove_cgroups(data_dir: &Path, report: &mut dyn FnMut(Result<String, String>)) {
    let record = data_dir.join(CGROUPS_RECORD);
    let root: cgroup::TaskRoot = match std::fs::read(&record) {
        Ok(b) => match serde_json::from_slice(&b) {
            Ok(r) => r,
            Err(e) => return report(Err(format!("cannot read {}: {e}", record.display()))),
        },
        // A data directory from before the record: v1's fixed place.
        Err(_) => cgroup::TaskRoot {
            layout: cgroup::layout(),
            path: "/berth".into(),
        },
    };
    match cgroup::remove_root(&root) {
        Ok(()) => {
            let _ = std::fs::remove_file(&record);
        }
        Err(e) => report(Err(format!(
            "cannot remove the cgroups of Berth's tasks ({}): {e}",
            root.path
        ))),
    }
}

/// Undo `mount_hugetlb_for_crun`, if `berth up` mounted it.
fn unmount_hugetlb(data_dir: &Path, report: &mut dyn FnMut(Result<String, String>)) {
    let marker = data_dir.join(HUGETLB_MARKER);
    if marker.exists() {
        match berth_runtime::sys::remove_hugetlb_v1() {
            Ok(()) => {
                let _ = std::fs::remove_file(&marker);
            }
            Err(e) => report(Err(format!("cannot unmount /sys/fs/cgroup/hugetlb: {e}"))),
        }
    }
}
