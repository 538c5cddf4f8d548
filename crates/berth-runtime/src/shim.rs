//! The task supervisor ("shim"): one small single-threaded process per task, the berth
//! binary re-executed as `berth shim DIR`, in its own session so it outlives `berth up`.
//!
//! It gives the task a network namespace with loopback and the task's cgroup, creates
//! each container with the OCI runtime (runc) once its dependencies are met, owns the
//! containers' stdout and stderr pipes (lines go to the log store), reaps their exits
//! as their subreaper, runs health checks, stops the task when an essential container
//! exits, and cleans up every mount and cgroup it made. Its state is in `state.json`
//! (exits written durably) and on a unix socket (`shim.sock`, the listening socket is
//! made by the node and handed over as fd 3) that speaks `plan::Request`.

use crate::plan::*;
use crate::{cgroup, sys};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where a container's output lines go (the awslogs stream, or nowhere).
pub trait LineSink {
    fn line(&mut self, timestamp_ms: i64, line: &str);
    fn flush(&mut self) {}
}

/// Opens the sink for a container's `log_stream` directory.
pub type SinkOpener = dyn Fn(&Path) -> io::Result<Box<dyn LineSink>>;

/// Longest output line kept as one event; longer lines are split.
const MAX_LINE: usize = 256 * 1024 - 26;
/// Most output kept from an exec.
const MAX_EXEC_OUTPUT: usize = 64 * 1024;

pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| (d.as_millis() as f64) / 1000.0)
        .unwrap_or(0.0)
}

fn now_ms() -> i64 {
    (now_secs() * 1000.0) as i64
}

struct Ctr {
    plan: ContainerPlan,
    st: ContainerState,
    id: String,
    bundle: PathBuf,
    cgroup: String,
    kill_at: Option<Instant>,
    /// SIGTERM was sent (the task is stopping and nothing running depends on it).
    stop_sent: bool,
    started: Option<Instant>,
    health_next: Option<Instant>,
    health_fails: u32,
    health_running: bool,
    sink: Option<Box<dyn LineSink>>,
}

impl Ctr {
    /// When its startTimeout runs out for those waiting on it, while it runs.
    fn start_deadline(&self) -> Option<Instant> {
        let secs = self.plan.start_timeout_secs?;
        Some(self.started? + Duration::from_secs(secs))
    }

    /// Whether the restart policy restarts it after it exited with `code`, as the ECS
    /// agent decides: not an ignored code, and it ran at least the attempt period since
    /// it started or was last restarted.
    fn should_restart(&self, code: i32) -> bool {
        let Some(p) = &self.plan.restart_policy else {
            return false;
        };
        self.started.is_some_and(|s| p.allows(code, s.elapsed()))
    }
}

struct Output {
    fd: OwnedFd,
    ctr: usize,
    partial: Vec<u8>,
}

enum ChildFor {
    Health,
    Exec(u64),
}

struct Child {
    pid: i32,
    ctr: usize,
    deadline: Instant,
    out: Option<OwnedFd>,
    buf: Vec<u8>,
    timed_out: bool,
    purpose: ChildFor,
}

struct Client {
    id: u64,
    stream: UnixStream,
    inbuf: Vec<u8>,
    watch: bool,
}

struct Shim {
    dir: PathBuf,
    plan: TaskPlan,
    task: TaskState,
    ctrs: Vec<Ctr>,
    outputs: Vec<Output>,
    children: Vec<Child>,
    clients: Vec<Client>,
    listener: UnixListener,
    sigfd: OwnedFd,
    task_ooms: u64,
    /// Whether the task's CPU quota is in force yet (see `evaluate`).
    quota_applied: bool,
    dirty: bool,
    durable: bool,
    next_client: u64,
}

/// Run the supervisor for the task in `dir`; returns the process exit code.
pub fn run(dir: &Path, open_sink: &SinkOpener) -> i32 {
    // fd 3 is the listening socket the node made for us.
    let listener = unsafe { UnixListener::from_raw_fd(3) };
    let _ = listener.set_nonblocking(true);
    let plan: TaskPlan = match std::fs::read(dir.join("plan.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "berth shim: cannot read the task plan in {}: {e}",
                dir.display()
            );
            return 1;
        }
    };
    unsafe {
        // Containers' processes are reparented to us when runc exits, so we reap them.
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    let sigfd = match signal_fd(&[libc::SIGCHLD, libc::SIGTERM]) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("berth shim: signalfd: {e}");
            return 1;
        }
    };
    let ctrs = plan
        .containers
        .iter()
        .map(|c| {
            let sink = c.log_stream.as_ref().and_then(|p| match open_sink(p) {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!("berth shim: cannot open log stream {}: {e}", p.display());
                    None
                }
            });
            Ctr {
                st: ContainerState {
                    name: c.name.clone(),
                    status: ContainerStatus::Pending,
                    pid: None,
                    exit_code: None,
                    reason: None,
                    started_at: None,
                    finished_at: None,
                    health: Health::Unknown,
                    restart_count: 0,
                },
                id: format!("{}-{}", plan.task_id, c.name),
                bundle: dir.join("containers").join(&c.name),
                cgroup: format!("{}/{}", plan.cgroup, c.name),
                plan: c.clone(),
                kill_at: None,
                stop_sent: false,
                started: None,
                health_next: None,
                health_fails: 0,
                health_running: false,
                sink,
            }
        })
        .collect();
    let mut shim = Shim {
        dir: dir.to_path_buf(),
        task: TaskState::new(TaskStatus::Pending),
        plan,
        ctrs,
        outputs: vec![],
        children: vec![],
        clients: vec![],
        listener,
        sigfd,
        task_ooms: 0,
        quota_applied: false,
        dirty: true,
        durable: false,
        next_client: 0,
    };
    shim.setup();
    shim.run_loop();
    0
}

fn signal_fd(signals: &[libc::c_int]) -> io::Result<OwnedFd> {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, *s);
        }
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// A pipe whose read end is non-blocking (ours) and write end blocking (the container's).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    unsafe {
        let flags = libc::fcntl(fds[0], libc::F_GETFL);
        libc::fcntl(fds[0], libc::F_SETFL, flags | libc::O_NONBLOCK);
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

/// Read what is available; Ok(true) at end of file.
fn read_available(fd: RawFd, into: &mut Vec<u8>, cap: usize) -> bool {
    let mut buf = [0u8; 16384];
    loop {
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0 {
            return true;
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) => false,
                Some(libc::EINTR) => continue,
                _ => true,
            };
        }
        let room = cap.saturating_sub(into.len());
        into.extend_from_slice(&buf[..(n as usize).min(room)]);
    }
}

impl Shim {
    fn runtime(&self) -> Command {
        let mut c = Command::new(&self.plan.runtime);
        c.arg("--root").arg(&self.plan.runtime_root);
        c
    }

    /// The last error runc logged for a container (its JSON log in the bundle).
    fn runtime_error(&self, i: usize, fallback: &str) -> String {
        let log = std::fs::read_to_string(self.ctrs[i].bundle.join("runc.log")).unwrap_or_default();
        log.lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["level"] == "error")
            .and_then(|v| v["msg"].as_str().map(str::to_string))
            .unwrap_or_else(|| fallback.to_string())
    }

    fn setup(&mut self) {
        let prepared = (|| -> io::Result<()> {
            // What wires the task to the bridge is opened while still in the host's
            // namespace; the pair is made once this process is in the task's.
            let host_side = match &self.plan.network {
                Some(n) => Some(berth_net::task::open_host_side(n)?),
                None => None,
            };
            if !self.plan.host_network {
                sys::new_netns(&self.dir.join("netns"))?;
            }
            if let (Some(h), Some(n)) = (host_side, &self.plan.network) {
                berth_net::task::attach(h, n)?;
            }
            cgroup::create_task(&self.plan.cgroup, self.plan.memory_limit, self.plan.swap)?;
            Ok(())
        })();
        if let Err(e) = prepared {
            let reason = format!(
                "ResourceInitializationError: cannot prepare the task's network and cgroup: {e}"
            );
            self.task.stop_code = Some("TaskFailedToStart".into());
            self.task.stopped_reason = Some(reason.clone());
            for c in &mut self.ctrs {
                c.st.status = ContainerStatus::Stopped;
                c.st.reason = Some(reason.clone());
            }
            self.durable = true;
            return;
        }
        self.task_ooms = cgroup::oom_kills(&self.plan.cgroup);
        self.evaluate();
    }

    /// The task's state as the socket and `state.json` carry it.
    fn snapshot(&mut self) -> serde_json::Value {
        self.task.containers = self.ctrs.iter().map(|c| c.st.clone()).collect();
        serde_json::to_value(&self.task).expect("state serializes")
    }

    fn publish(&mut self) {
        let mut line = serde_json::to_vec(&self.snapshot()).expect("state serializes");
        line.push(b'\n');
        let tmp = self.dir.join("state.json.tmp");
        let written = (|| -> io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&line)?;
            if self.durable {
                f.sync_data()?;
            }
            std::fs::rename(&tmp, self.dir.join("state.json"))?;
            if self.durable {
                std::fs::File::open(&self.dir)?.sync_all()?;
            }
            Ok(())
        })();
        if let Err(e) = written {
            eprintln!("berth shim: cannot record state: {e}");
        }
        self.clients
            .retain_mut(|c| !c.watch || c.stream.write_all(&line).is_ok());
        self.dirty = false;
        self.durable = false;
    }

    fn changed(&mut self, durable: bool) {
        self.dirty = true;
        self.durable |= durable;
    }

    /// Start what can start, give up on what never can, and move the task's status on.
    fn evaluate(&mut self) {
        loop {
            let mut progressed = false;
            for i in 0..self.ctrs.len() {
                if self.ctrs[i].st.status != ContainerStatus::Pending
                    || self.task.status == TaskStatus::Stopping
                {
                    continue;
                }
                match self.deps_state(i) {
                    Deps::Wait => {}
                    Deps::Never(why) => {
                        let c = &mut self.ctrs[i];
                        c.st.status = ContainerStatus::Stopped;
                        c.st.reason = Some(format!("CannotStartContainerError: {why}"));
                        c.st.finished_at = Some(now_secs());
                        let essential = c.plan.essential;
                        self.changed(true);
                        progressed = true;
                        if essential {
                            self.begin_stop(
                                Some("TaskFailedToStart"),
                                Some(format!("CannotStartContainerError: {why}")),
                            );
                        }
                    }
                    Deps::Ready => {
                        progressed = true;
                        if let Err(e) = self.start_container(i) {
                            let reason = format!("CannotStartContainerError: {e}");
                            let c = &mut self.ctrs[i];
                            c.st.status = ContainerStatus::Stopped;
                            c.st.reason = Some(reason.clone());
                            c.st.finished_at = Some(now_secs());
                            self.changed(true);
                            if self.ctrs[i].plan.essential {
                                self.begin_stop(Some("TaskFailedToStart"), Some(reason));
                            }
                        }
                    }
                }
            }
            if !progressed {
                break;
            }
        }
        // The task's CPU quota takes effect once the first containers have started: runc's
        // own setup runs in the task's cgroup, and a small quota (256 units is 25 ms per
        // 100 ms) would otherwise throttle it and add tens of milliseconds to every start.
        if !self.quota_applied && self.ctrs.iter().any(|c| c.st.started_at.is_some()) {
            self.quota_applied = true;
            if let Some(q) = self.plan.cpu_quota_us {
                if let Err(e) = cgroup::set_cpu_quota(&self.plan.cgroup, q) {
                    eprintln!("berth shim: cannot set the task's CPU quota: {e}");
                }
            }
        }
        if self.task.status == TaskStatus::Pending
            && self
                .ctrs
                .iter()
                .all(|c| c.st.status != ContainerStatus::Pending)
            && self.ctrs.iter().any(|c| c.st.started_at.is_some())
        {
            self.task.status = TaskStatus::Running;
            self.task.started_at = Some(now_secs());
            self.changed(false);
        }
        if self
            .ctrs
            .iter()
            .all(|c| c.st.status == ContainerStatus::Stopped)
            && self.task.status != TaskStatus::Stopped
        {
            if self.task.status != TaskStatus::Stopping && self.task.stop_code.is_none() {
                // Every container ended on its own (all non-essential cannot happen: ECS
                // requires an essential container), so the essential one exited.
                self.task.stop_code = Some("EssentialContainerExited".into());
                self.task.stopped_reason = Some("Essential container in task exited".into());
            }
            self.task.status = TaskStatus::Stopped;
            self.task.execution_stopped_at = Some(now_secs());
            self.changed(true);
        }
    }

    fn deps_state(&self, i: usize) -> Deps {
        for d in &self.ctrs[i].plan.depends_on {
            let Some(dep) = self.ctrs.iter().find(|c| c.plan.name == d.container) else {
                return Deps::Never(format!(
                    "dependency {} is not a container of the task",
                    d.container
                ));
            };
            let s = &dep.st;
            let stopped = s.status == ContainerStatus::Stopped;
            // The dependency's startTimeout, from its start, as the ECS agent counts it:
            // past it, a COMPLETE, SUCCESS or HEALTHY condition not yet met never will be.
            let timed_out = || {
                dep.start_deadline()
                    .is_some_and(|t| t <= Instant::now() && !stopped)
                    .then(|| {
                        Deps::Never(format!(
                            "dependency {} did not reach {} within its startTimeout of {} seconds",
                            d.container,
                            d.condition,
                            dep.plan.start_timeout_secs.unwrap_or_default()
                        ))
                    })
            };
            match d.condition.as_str() {
                "START" => {
                    if s.started_at.is_none() {
                        if stopped {
                            return Deps::Never(format!(
                                "dependency {} never started",
                                d.container
                            ));
                        }
                        return Deps::Wait;
                    }
                }
                "COMPLETE" => {
                    if !stopped {
                        return timed_out().unwrap_or(Deps::Wait);
                    }
                }
                "SUCCESS" => {
                    if !stopped {
                        return timed_out().unwrap_or(Deps::Wait);
                    }
                    if s.exit_code != Some(0) {
                        return Deps::Never(format!(
                            "dependency {} exited with code {} instead of meeting the condition SUCCESS",
                            d.container,
                            s.exit_code.map_or("none".to_string(), |c| c.to_string())
                        ));
                    }
                }
                "HEALTHY" => {
                    if s.health != Health::Healthy {
                        if stopped || s.health == Health::Unhealthy {
                            return Deps::Never(format!(
                                "dependency {} did not become HEALTHY",
                                d.container
                            ));
                        }
                        return timed_out().unwrap_or(Deps::Wait);
                    }
                }
                other => return Deps::Never(format!("unknown dependency condition {other}")),
            }
        }
        Deps::Ready
    }

    fn start_container(&mut self, i: usize) -> Result<(), String> {
        let bundle = self.ctrs[i].bundle.clone();
        let id = self.ctrs[i].id.clone();
        let rootfs = bundle.join("rootfs");
        sys::mount_overlay(
            &self.ctrs[i].plan.layers,
            &bundle.join("upper"),
            &bundle.join("work"),
            &rootfs,
        )
        .map_err(|e| format!("cannot mount the root filesystem: {e}"))?;
        let fail = |msg: String| {
            let _ = sys::unmount(&rootfs);
            Err(msg)
        };
        let (out_r, out_w) = pipe().map_err(|e| e.to_string())?;
        let (err_r, err_w) = pipe().map_err(|e| e.to_string())?;
        let pid_file = bundle.join("init.pid");
        let _ = std::fs::remove_file(&pid_file);
        let status = self
            .runtime()
            .arg("--log")
            .arg(bundle.join("runc.log"))
            .args(["--log-format", "json", "create", "--bundle"])
            .arg(&bundle)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out_w))
            .stderr(Stdio::from(err_w))
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(_) => {
                let msg = format!(
                    "OCI runtime create failed: {}",
                    self.runtime_error(i, "runc create failed")
                );
                self.runtime_cmd(&["delete", "--force", &id]);
                return fail(msg);
            }
            Err(e) => {
                return fail(format!(
                    "cannot run the OCI runtime {}: {e}",
                    self.plan.runtime.display()
                ))
            }
        }
        self.outputs.push(Output {
            fd: out_r,
            ctr: i,
            partial: vec![],
        });
        self.outputs.push(Output {
            fd: err_r,
            ctr: i,
            partial: vec![],
        });
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        if pid <= 0 {
            // Without its pid the container's exit could never be seen.
            self.runtime_cmd(&["delete", "--force", &id]);
            return fail("OCI runtime create did not record the container's process".into());
        }
        let ok = self
            .runtime()
            .arg("--log")
            .arg(bundle.join("runc.log"))
            .args(["--log-format", "json", "start", &id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let msg = format!(
                "OCI runtime start failed: {}",
                self.runtime_error(i, "runc start failed")
            );
            self.runtime_cmd(&["delete", "--force", &id]);
            return fail(msg);
        }
        let now = Instant::now();
        let c = &mut self.ctrs[i];
        c.st.status = ContainerStatus::Running;
        c.st.pid = Some(pid);
        c.st.started_at = Some(now_secs());
        c.started = Some(now);
        if let Some(h) = &c.plan.health_check {
            c.health_next = Some(now + Duration::from_secs(h.interval_secs.max(1)));
        }
        self.changed(false);
        Ok(())
    }

    /// Run the runtime synchronously for a short command (kill, delete); true on success.
    fn runtime_cmd(&self, args: &[&str]) -> bool {
        self.runtime()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn begin_stop(&mut self, code: Option<&str>, reason: Option<String>) {
        if matches!(self.task.status, TaskStatus::Stopping | TaskStatus::Stopped) {
            return;
        }
        self.task.status = TaskStatus::Stopping;
        self.task.stopping_at = Some(now_secs());
        if self.task.stop_code.is_none() {
            self.task.stop_code = code.map(str::to_string);
            self.task.stopped_reason = reason;
        }
        for c in &mut self.ctrs {
            if c.st.status == ContainerStatus::Pending {
                c.st.status = ContainerStatus::Stopped;
                c.st.finished_at = Some(now_secs());
            }
        }
        self.stop_next();
        self.changed(true);
    }

    /// Of a stopping task, signal the running containers that no running container
    /// depends on: dependencies stop in the reverse of their start order, as in ECS (an
    /// app stops before the sidecar it waited for). Each gets SIGTERM, and SIGKILL after
    /// its stopTimeout.
    fn stop_next(&mut self) {
        let depended_on = |s: &Self, i: usize| {
            let name = &s.ctrs[i].plan.name;
            s.ctrs.iter().enumerate().any(|(j, c)| {
                j != i
                    && c.st.status != ContainerStatus::Stopped
                    && c.plan.depends_on.iter().any(|d| &d.container == name)
            })
        };
        let waiting: Vec<usize> = (0..self.ctrs.len())
            .filter(|&i| self.ctrs[i].st.status == ContainerStatus::Running)
            .filter(|&i| !self.ctrs[i].stop_sent)
            .collect();
        let mut now_due: Vec<usize> = waiting
            .iter()
            .copied()
            .filter(|&i| !depended_on(self, i))
            .collect();
        let signalled = self
            .ctrs
            .iter()
            .any(|c| c.stop_sent && c.st.status != ContainerStatus::Stopped);
        if now_due.is_empty() && !signalled {
            // Only a dependency cycle leaves nothing to stop first: stop them all.
            now_due = waiting;
        }
        let now = Instant::now();
        for i in now_due {
            let id = self.ctrs[i].id.clone();
            self.runtime_cmd(&["kill", &id, "TERM"]);
            self.ctrs[i].stop_sent = true;
            self.ctrs[i].kill_at =
                Some(now + Duration::from_secs(self.ctrs[i].plan.stop_timeout_secs));
        }
    }

    fn on_exit(&mut self, i: usize, status: i32) {
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        };
        let killed = libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL;
        self.drain_outputs(i);
        let own_ooms = cgroup::oom_kills(&self.ctrs[i].cgroup);
        let task_ooms = cgroup::oom_kills(&self.plan.cgroup);
        let oom = own_ooms > 0 || (killed && task_ooms > self.task_ooms);
        self.task_ooms = task_ooms;
        let id = self.ctrs[i].id.clone();
        self.runtime_cmd(&["delete", "--force", &id]);
        let _ = sys::unmount(&self.ctrs[i].bundle.join("rootfs"));
        let stopping = matches!(self.task.status, TaskStatus::Stopping | TaskStatus::Stopped);
        if !stopping && self.ctrs[i].should_restart(code) {
            // Restarted in place: same bundle, same upper layer, the task goes on.
            let c = &mut self.ctrs[i];
            c.st.pid = None;
            c.st.health = Health::Unknown;
            c.health_fails = 0;
            c.health_next = None;
            c.kill_at = None;
            match self.start_container(i) {
                Ok(()) => {
                    let c = &mut self.ctrs[i];
                    c.st.restart_count += 1;
                    c.st.exit_code = None;
                    c.st.reason = None;
                    self.changed(true);
                    self.evaluate();
                    return;
                }
                Err(e) => {
                    self.ctrs[i].st.reason = Some(format!("CannotStartContainerError: {e}"));
                }
            }
        }
        let c = &mut self.ctrs[i];
        c.st.status = ContainerStatus::Stopped;
        c.st.pid = None;
        c.st.exit_code = Some(code);
        c.st.finished_at = Some(now_secs());
        c.kill_at = None;
        c.health_next = None;
        if oom {
            c.st.reason = Some("OutOfMemoryError: Container killed due to memory usage".into());
        }
        if let Some(s) = c.sink.as_mut() {
            s.flush();
        }
        let essential = c.plan.essential;
        self.changed(true);
        if self.task.status == TaskStatus::Stopping {
            // What depended on it may stop now.
            self.stop_next();
        } else if essential {
            self.begin_stop(
                Some("EssentialContainerExited"),
                Some("Essential container in task exited".into()),
            );
        }
        self.evaluate();
    }

    fn drain_outputs(&mut self, ctr: usize) {
        let mut eofs = vec![];
        for k in 0..self.outputs.len() {
            if self.outputs[k].ctr == ctr && self.read_output(k) {
                eofs.push(k);
            }
        }
        for k in eofs.into_iter().rev() {
            self.outputs.remove(k);
        }
    }

    /// Read a container's pipe and turn complete lines into log events; true at EOF.
    fn read_output(&mut self, k: usize) -> bool {
        let mut data = std::mem::take(&mut self.outputs[k].partial);
        let eof = read_available(self.outputs[k].fd.as_raw_fd(), &mut data, usize::MAX);
        let ts = now_ms();
        let ctr = self.outputs[k].ctr;
        let mut start = 0;
        while let Some(nl) = data[start..].iter().position(|&b| b == b'\n') {
            self.emit(ctr, ts, &data[start..start + nl]);
            start += nl + 1;
        }
        let mut rest = data.split_off(start);
        while rest.len() > MAX_LINE {
            let tail = rest.split_off(MAX_LINE);
            self.emit(ctr, ts, &rest);
            rest = tail;
        }
        if eof && !rest.is_empty() {
            self.emit(ctr, ts, &rest);
            rest.clear();
        }
        self.outputs[k].partial = rest;
        eof
    }

    fn emit(&mut self, ctr: usize, ts: i64, line: &[u8]) {
        if let Some(s) = self.ctrs[ctr].sink.as_mut() {
            for chunk in line.chunks(MAX_LINE) {
                s.line(ts, &String::from_utf8_lossy(chunk));
            }
        }
    }

    fn spawn_exec(
        &mut self,
        i: usize,
        args: &[String],
        timeout: Duration,
        purpose: ChildFor,
    ) -> Result<(), String> {
        let (r, w) = pipe().map_err(|e| e.to_string())?;
        let w2 = w.try_clone().map_err(|e| e.to_string())?;
        let child = self
            .runtime()
            .arg("exec")
            .arg(&self.ctrs[i].id)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(w))
            .stderr(Stdio::from(w2))
            .spawn()
            .map_err(|e| e.to_string())?;
        self.children.push(Child {
            pid: child.id() as i32,
            ctr: i,
            deadline: Instant::now() + timeout,
            out: Some(r),
            buf: vec![],
            timed_out: false,
            purpose,
        });
        Ok(())
    }

    fn on_child_exit(&mut self, k: usize, status: i32) {
        let mut child = self.children.remove(k);
        if let Some(fd) = child.out.take() {
            read_available(fd.as_raw_fd(), &mut child.buf, MAX_EXEC_OUTPUT);
        }
        let code = if child.timed_out {
            None
        } else if libc::WIFEXITED(status) {
            Some(libc::WEXITSTATUS(status))
        } else {
            Some(128 + libc::WTERMSIG(status))
        };
        match child.purpose {
            ChildFor::Health => self.health_result(child.ctr, code == Some(0)),
            ChildFor::Exec(client) => {
                let res = ExecResult {
                    exit_code: code,
                    output: String::from_utf8_lossy(&child.buf).into_owned(),
                    error: child.timed_out.then(|| "timed out".to_string()),
                };
                self.reply(client, &serde_json::to_value(res).expect("serializes"));
            }
        }
    }

    fn health_result(&mut self, i: usize, ok: bool) {
        let c = &mut self.ctrs[i];
        c.health_running = false;
        let Some(h) = c.plan.health_check.clone() else {
            return;
        };
        if c.st.status != ContainerStatus::Running {
            return;
        }
        let in_grace = c
            .started
            .is_some_and(|s| s.elapsed() < Duration::from_secs(h.start_period_secs));
        let before = c.st.health;
        if ok {
            c.health_fails = 0;
            c.st.health = Health::Healthy;
        } else if !in_grace {
            c.health_fails += 1;
            if c.health_fails >= h.retries.max(1) {
                c.st.health = Health::Unhealthy;
            }
        }
        c.health_next = Some(Instant::now() + Duration::from_secs(h.interval_secs.max(1)));
        if c.st.health != before {
            self.changed(false);
            self.evaluate();
        }
    }

    fn reply(&mut self, client: u64, v: &serde_json::Value) {
        let mut line = serde_json::to_vec(v).expect("serializes");
        line.push(b'\n');
        if let Some(c) = self.clients.iter_mut().find(|c| c.id == client) {
            let _ = c.stream.write_all(&line);
        }
    }

    fn handle_request(&mut self, client: u64, line: &[u8]) {
        let req: Request = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(e) => {
                self.reply(
                    client,
                    &serde_json::json!({"error": format!("bad request: {e}")}),
                );
                return;
            }
        };
        match req {
            Request::State => {
                let v = self.snapshot();
                self.reply(client, &v);
            }
            Request::Watch => {
                let v = self.snapshot();
                self.reply(client, &v);
                if let Some(c) = self.clients.iter_mut().find(|c| c.id == client) {
                    c.watch = true;
                }
            }
            Request::Stop => {
                self.begin_stop(None, None);
                self.reply(client, &serde_json::json!({"ok": true}));
            }
            Request::Signal { container, signal } => {
                let found = self
                    .ctrs
                    .iter()
                    .find(|c| c.plan.name == container && c.st.status == ContainerStatus::Running);
                let ok = match found {
                    Some(c) => self.runtime_cmd(&["kill", &c.id, &signal.to_string()]),
                    None => false,
                };
                self.reply(client, &serde_json::json!({"ok": ok}));
            }
            Request::Exec {
                container,
                args,
                timeout_secs,
            } => {
                let found = self.ctrs.iter().position(|c| {
                    c.plan.name == container && c.st.status == ContainerStatus::Running
                });
                let started = match found {
                    Some(i) => self.spawn_exec(
                        i,
                        &args,
                        Duration::from_secs(timeout_secs.max(1)),
                        ChildFor::Exec(client),
                    ),
                    None => Err(format!("container {container} is not running")),
                };
                if let Err(e) = started {
                    let res = ExecResult {
                        exit_code: None,
                        output: String::new(),
                        error: Some(e),
                    };
                    self.reply(client, &serde_json::to_value(res).expect("serializes"));
                }
            }
        }
    }

    fn on_signal(&mut self) {
        let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        let mut term = false;
        loop {
            let n =
                unsafe { libc::read(self.sigfd.as_raw_fd(), info.as_mut_ptr().cast(), info.len()) };
            if n <= 0 {
                break;
            }
            let si: libc::signalfd_siginfo =
                unsafe { std::ptr::read_unaligned(info.as_ptr().cast()) };
            if si.ssi_signo == libc::SIGTERM as u32 {
                term = true;
            }
        }
        loop {
            let mut status = 0;
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if let Some(i) = self
                .ctrs
                .iter()
                .position(|c| c.st.pid == Some(pid) && c.st.status == ContainerStatus::Running)
            {
                self.on_exit(i, status);
            } else if let Some(k) = self.children.iter().position(|c| c.pid == pid) {
                self.on_child_exit(k, status);
            }
        }
        if term {
            self.begin_stop(None, None);
        }
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        for i in 0..self.ctrs.len() {
            if self.ctrs[i].kill_at.is_some_and(|t| t <= now) {
                self.ctrs[i].kill_at = None;
                let id = self.ctrs[i].id.clone();
                self.runtime_cmd(&["kill", &id, "KILL"]);
            }
            let due = self.ctrs[i].health_next.is_some_and(|t| t <= now)
                && !self.ctrs[i].health_running
                && self.ctrs[i].st.status == ContainerStatus::Running;
            if due {
                let h = self.ctrs[i]
                    .plan
                    .health_check
                    .clone()
                    .expect("scheduled only with a check");
                self.ctrs[i].health_next = None;
                self.ctrs[i].health_running = true;
                let timeout = Duration::from_secs(h.timeout_secs.max(1));
                if self
                    .spawn_exec(i, &h.command, timeout, ChildFor::Health)
                    .is_err()
                {
                    self.health_result(i, false);
                }
            }
        }
        for c in &mut self.children {
            if c.deadline <= now && !c.timed_out {
                c.timed_out = true;
                unsafe { libc::kill(c.pid, libc::SIGKILL) };
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let ctr_times = self
            .ctrs
            .iter()
            .flat_map(|c| [c.kill_at, c.health_next.filter(|_| !c.health_running)]);
        let now = Instant::now();
        let start_timeouts = self
            .ctrs
            .iter()
            .filter(|c| c.st.status == ContainerStatus::Running)
            .map(|c| c.start_deadline().filter(|t| *t > now));
        let child_times = self
            .children
            .iter()
            .filter(|c| !c.timed_out)
            .map(|c| Some(c.deadline));
        ctr_times
            .chain(start_timeouts)
            .chain(child_times)
            .flatten()
            .min()
    }

    fn finish(&mut self) {
        for k in 0..self.outputs.len() {
            self.read_output(k);
        }
        self.outputs.clear();
        for c in &mut self.ctrs {
            if let Some(s) = c.sink.as_mut() {
                s.flush();
            }
        }
        for c in &self.ctrs {
            let _ = sys::unmount(&c.bundle.join("rootfs"));
        }
        if let Err(e) = cgroup::remove(&self.plan.cgroup) {
            eprintln!("berth shim: cannot remove cgroup {}: {e}", self.plan.cgroup);
        }
        if self.plan.network.is_some() {
            // This process is in the task's namespace: its eth0 goes, and the host end
            // with it, before the task is reported stopped.
            if let Err(e) = berth_net::task::detach_inside() {
                eprintln!("berth shim: cannot remove the task's network link: {e}");
            }
        }
        let _ = sys::unmount(&self.dir.join("netns"));
        self.changed(true);
        self.publish();
    }

    fn run_loop(&mut self) {
        loop {
            if self.task.status == TaskStatus::Stopped && self.children.is_empty() {
                self.finish();
                return;
            }
            if self.dirty {
                self.publish();
            }
            // Poll set: signals, listener, clients, outputs, exec outputs.
            let mut fds: Vec<libc::pollfd> = vec![];
            let pfd = |fd: RawFd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            fds.push(pfd(self.sigfd.as_raw_fd()));
            fds.push(pfd(self.listener.as_raw_fd()));
            let nc = self.clients.len();
            fds.extend(self.clients.iter().map(|c| pfd(c.stream.as_raw_fd())));
            let no = self.outputs.len();
            fds.extend(self.outputs.iter().map(|o| pfd(o.fd.as_raw_fd())));
            let child_fds: Vec<(usize, RawFd)> = self
                .children
                .iter()
                .enumerate()
                .filter_map(|(k, c)| c.out.as_ref().map(|fd| (k, fd.as_raw_fd())))
                .collect();
            fds.extend(child_fds.iter().map(|(_, fd)| pfd(*fd)));
            let timeout = self
                .next_deadline()
                .map(|t| {
                    t.saturating_duration_since(Instant::now())
                        .as_millis()
                        .min(60_000) as i32
                        + 1
                })
                .unwrap_or(-1);
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                continue; // EINTR
            }
            if fds[0].revents != 0 {
                self.on_signal();
            }
            if fds[1].revents != 0 {
                while let Ok((stream, _)) = self.listener.accept() {
                    let _ = stream.set_nonblocking(true);
                    self.next_client += 1;
                    self.clients.push(Client {
                        id: self.next_client,
                        stream,
                        inbuf: vec![],
                        watch: false,
                    });
                }
            }
            let mut closed: Vec<u64> = vec![];
            for k in 0..nc.min(self.clients.len()) {
                if fds[2 + k].revents == 0 {
                    continue;
                }
                let id = self.clients[k].id;
                let mut buf = [0u8; 4096];
                let mut requests = vec![];
                loop {
                    match self.clients[k].stream.read(&mut buf) {
                        Ok(0) => {
                            closed.push(id);
                            break;
                        }
                        Ok(n) => {
                            let c = &mut self.clients[k];
                            c.inbuf.extend_from_slice(&buf[..n]);
                            while let Some(nl) = c.inbuf.iter().position(|&b| b == b'\n') {
                                let line: Vec<u8> = c.inbuf.drain(..=nl).collect();
                                requests.push(line);
                            }
                            if c.inbuf.len() > 1 << 20 {
                                closed.push(id);
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            closed.push(id);
                            break;
                        }
                    }
                }
                for r in requests {
                    self.handle_request(id, &r);
                }
            }
            let mut eofs = vec![];
            for k in 0..no.min(self.outputs.len()) {
                if fds[2 + nc + k].revents != 0 && self.read_output(k) {
                    eofs.push(k);
                }
            }
            for k in eofs.into_iter().rev() {
                self.outputs.remove(k);
            }
            for (j, (k, _)) in child_fds.iter().enumerate() {
                if fds[2 + nc + no + j].revents != 0 {
                    if let Some(c) = self.children.get_mut(*k) {
                        if let Some(fd) = c.out.as_ref() {
                            if read_available(fd.as_raw_fd(), &mut c.buf, MAX_EXEC_OUTPUT) {
                                c.out = None;
                            }
                        }
                    }
                }
            }
            self.clients.retain(|c| !closed.contains(&c.id));
            self.on_timers();
            self.evaluate();
        }
    }
}

enum Deps {
    Ready,
    Wait,
    Never(String),
}

/// State of a task from its directory, for a node that finds its supervisor gone.
pub fn recorded_state(dir: &Path) -> Option<TaskState> {
    serde_json::from_slice(&std::fs::read(dir.join("state.json")).ok()?).ok()
}

/// Clean up what a supervisor that died left behind: containers, mounts, cgroups.
pub fn clean_up_after(dir: &Path, plan: &TaskPlan) {
    for c in &plan.containers {
        let id = format!("{}-{}", plan.task_id, c.name);
        let _ = Command::new(&plan.runtime)
            .arg("--root")
            .arg(&plan.runtime_root)
            .args(["delete", "--force", &id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = sys::unmount(&dir.join("containers").join(&c.name).join("rootfs"));
    }
    let _ = cgroup::remove(&plan.cgroup);
    if let Some(n) = &plan.network {
        let _ = berth_net::task::detach_host(&n.host_link);
    }
    let _ = sys::unmount(&dir.join("netns"));
}
