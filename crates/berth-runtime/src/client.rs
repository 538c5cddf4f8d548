//! The node's side of the supervisor: make its socket, start it detached, talk to it.

use crate::plan::Request;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

pub const SOCKET: &str = "shim.sock";

/// The command that starts `exe shim DIR` in its own session, so it outlives the node,
/// with the listening socket (made here, so the node can connect at once) as its fd 3.
/// The caller spawns it (and must reap it), then drops the listener.
pub fn command(exe: &Path, dir: &Path) -> io::Result<(Command, UnixListener)> {
    let sock = dir.join(SOCKET);
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock)?;
    let log = std::fs::File::create(dir.join("shim.log"))?;
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new(exe);
    // Named `berth shim DIR` in ps, whatever path the binary was started by.
    cmd.arg0("berth")
        .arg("shim")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    unsafe {
        cmd.pre_exec(move || {
            // Only async-signal-safe calls between fork and exec.
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if fd == 3 {
                // dup2 onto itself would keep close-on-exec set.
                let flags = libc::fcntl(3, libc::F_GETFD);
                libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            } else if libc::dup2(fd, 3) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok((cmd, listener))
}

/// One request and its one-line answer (blocking).
pub fn request(dir: &Path, req: &Request) -> io::Result<serde_json::Value> {
    let mut s = UnixStream::connect(dir.join(SOCKET))?;
    let mut line = serde_json::to_vec(req).map_err(io::Error::other)?;
    line.push(b'\n');
    s.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer)?;
    serde_json::from_str(&answer).map_err(io::Error::other)
}

/// Whether the supervisor recorded in `dir/shim.pid` is alive.
pub fn alive(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("shim.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0 && is_shim(pid, dir))
}

/// SIGKILL the supervisor recorded in `dir/shim.pid`, if it is alive.
pub fn kill(dir: &Path) {
    if !alive(dir) {
        return;
    }
    if let Some(pid) = std::fs::read_to_string(dir.join("shim.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// A recycled pid must not pass for the supervisor: check its command line.
fn is_shim(pid: i32, dir: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let args: Vec<&[u8]> = c.split(|&b| b == 0).collect();
            args.get(1) == Some(&b"shim".as_slice())
                && args.get(2) == Some(&dir.as_os_str().as_encoded_bytes())
        })
        .unwrap_or(false)
}
