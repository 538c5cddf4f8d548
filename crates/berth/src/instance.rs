//! One server per data directory: `berth up` holds an exclusive lock on `berth.pid` for
//! its whole life (the kernel drops it however the process ends, kill -9 included), and
//! `berth down` finds the server through that file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

const PID_FILE: &str = "berth.pid";

/// The held lock; dropping it (or exiting) releases the data directory.
#[derive(Debug)]
pub struct Instance {
    _file: File,
}

fn try_lock(f: &File) -> bool {
    // SAFETY: flock on a descriptor we own; non-blocking.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

fn recorded_pid(f: &mut File) -> Option<i32> {
    let mut s = String::new();
    f.rewind().ok()?;
    f.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

/// Claim `data_dir` for this process, or say which process has it.
pub fn claim(data_dir: &Path) -> Result<Instance, String> {
    let path = data_dir.join(PID_FILE);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    if !try_lock(&f) {
        let who = recorded_pid(&mut f)
            .map(|p| format!(" (pid {p})"))
            .unwrap_or_default();
        return Err(format!(
            "another berth is already serving {}{who}; stop it with `berth down`",
            data_dir.display()
        ));
    }
    f.set_len(0)
        .and_then(|_| f.rewind())
        .and_then(|_| writeln!(f, "{}", std::process::id()))
        .map_err(|e| e.to_string())?;
    Ok(Instance { _file: f })
}

/// Stop the server serving `data_dir`: SIGTERM, then wait (up to `deadline`) for it to
/// release the directory. Returns what happened, for the user.
pub fn stop(data_dir: &Path, deadline: Duration) -> Result<String, String> {
    let path = data_dir.join(PID_FILE);
    let mut f = match File::open(&path) {
        Ok(f) => f,
        Err(_) => return Ok(format!("berth is not running for {}", data_dir.display())),
    };
    if try_lock(&f) {
        return Ok(format!("berth is not running for {}", data_dir.display()));
    }
    let pid = recorded_pid(&mut f)
        .ok_or_else(|| format!("{} does not hold a process id", path.display()))?;
    // SAFETY: sending a signal to a process id read from our own lock file.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        return Err(format!(
            "cannot signal berth (pid {pid}): {}",
            std::io::Error::last_os_error()
        ));
    }
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if try_lock(&f) {
            return Ok(format!("berth (pid {pid}) stopped"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "berth (pid {pid}) did not stop within {}s",
        deadline.as_secs()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn one_claim_per_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = claim(dir.path()).unwrap();
        // flock locks belong to the open file description, so a second open conflicts even
        // within one process.
        assert!(claim(dir.path()).unwrap_err().contains("already serving"));
        drop(first);
        assert!(claim(dir.path()).is_ok());
    }
}
