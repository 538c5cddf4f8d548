//! The host-side pieces of a task that the OCI runtime does not make: the overlay root
//! filesystem of each container and the task's network namespace, and the host-wide
//! cgroup mount options crun and container starts need (the cgroups themselves are
//! `cgroup`'s).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::other("path with a NUL byte"))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Mount an overlay of `lowers` (lowest first) with `upper` and `work` at `target`.
/// An image without layers gets an empty read-only lower so the overlay stays valid.
pub fn mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> io::Result<()> {
    for d in [upper, work, target] {
        std::fs::create_dir_all(d)?;
    }
    // overlayfs lists lower directories top first.
    let mut lower: Vec<String> = lowers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    if lower.is_empty() {
        let empty = work.with_file_name("empty");
        std::fs::create_dir_all(&empty)?;
        lower.push(empty.display().to_string());
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    if opts.len() >= 4096 {
        return Err(io::Error::other(
            "too many image layers for one overlay mount",
        ));
    }
    let opts = CString::new(opts).map_err(|_| io::Error::other("NUL in a layer path"))?;
    let target_c = cstr(target)?;
    let rc = unsafe {
        libc::mount(
            c"overlay".as_ptr(),
            target_c.as_ptr(),
            c"overlay".as_ptr(),
            0,
            opts.as_ptr().cast(),
        )
    };
    check(rc)
}

/// Detach a mount if one is there; a path that is not mounted is not an error.
pub fn unmount(target: &Path) -> io::Result<()> {
    let c = cstr(target)?;
    let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    match check(rc) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) => Ok(()),
        r => r,
    }
}

/// Move this process into a new network namespace with loopback up, and pin the
/// namespace at `pin` (a bind mount) so containers can join it by path.
pub fn new_netns(pin: &Path) -> io::Result<()> {
    check(unsafe { libc::unshare(libc::CLONE_NEWNET) })?;
    loopback_up()?;
    std::fs::File::create(pin)?;
    let src = cstr(Path::new("/proc/self/ns/net"))?;
    let dst = cstr(pin)?;
    check(unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    })
}

fn loopback_up() -> io::Result<()> {
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo".iter().enumerate() {
        req.ifr_name[i] = *b as libc::c_char;
    }
    let r = (|| {
        check(unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) })?;
        unsafe {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        }
        check(unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) })
    })();
    unsafe { libc::close(fd) };
    r
}

/// Whether this host lets a process raise `resource` to `value`: the host's hard limit.
pub fn host_hard_limit(resource: &str) -> Option<u64> {
    let r = match resource {
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        _ => return None,
    };
    let mut l: libc::rlimit = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrlimit(r, &mut l) } != 0 {
        return None;
    }
    Some(l.rlim_max)
}

const HUGETLB: &str = "/sys/fs/cgroup/hugetlb";

fn is_mountpoint(path: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(path))
}

/// crun refuses a hybrid cgroup host (v1 controllers beside a v2 mount) unless the
/// hugetlb controller has a v1 mount. Mount it if the host has v1 controllers but not that
/// one; true if this call mounted it (the caller records the host change).
pub fn ensure_hugetlb_v1() -> io::Result<bool> {
    let v1 = is_mountpoint("/sys/fs/cgroup/memory");
    let known = std::fs::read_to_string("/proc/cgroups")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("hugetlb\t"));
    if !v1 || !known || is_mountpoint(HUGETLB) {
        return Ok(false);
    }
    std::fs::create_dir_all(HUGETLB)?;
    let target = cstr(Path::new(HUGETLB))?;
    check(unsafe {
        libc::mount(
            c"cgroup".as_ptr(),
            target.as_ptr(),
            c"cgroup".as_ptr(),
            0,
            c"hugetlb".as_ptr().cast(),
        )
    })?;
    Ok(true)
}

/// The cgroup2 options that belong to the hierarchy (the rest of a mount's options are the
/// VFS's), kept when remounting.
const CGROUP2_OPTIONS: [&str; 6] = [
    "nsdelegate",
    "favordynmods",
    "memory_localevents",
    "memory_recursiveprot",
    "memory_hugetlb_accounting",
    "pids_localevents",
];

/// Turn on cgroup2's `favordynmods`, so that moving a process into a cgroup (every
/// container start does it) no longer waits for an RCU grace period: measured here,
/// 6-14 ms per start before, 0.1 ms after. Forks and exits pay slightly more. The
/// setting is host-wide; on recent kernels it stays until reboot. Returns the mount
/// point when this call turned it on, None when it was on already or there is no cgroup2
/// mount.
pub fn favor_dynmods() -> io::Result<Option<String>> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    let Some((target, options)) = mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.len() > 3 && f[2] == "cgroup2").then(|| (f[1].to_string(), f[3].to_string()))
    }) else {
        return Ok(None);
    };
    let mut keep: Vec<&str> = options
        .split(',')
        .filter(|o| CGROUP2_OPTIONS.contains(o))
        .collect();
    if keep.contains(&"favordynmods") {
        return Ok(None);
    }
    keep.push("favordynmods");
    let data = std::ffi::CString::new(keep.join(",")).map_err(io::Error::other)?;
    let path = cstr(Path::new(&target))?;
    // SAFETY: valid C strings; a remount changes only the hierarchy's options.
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            path.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT,
            data.as_ptr().cast(),
        )
    })?;
    Ok(Some(target))
}

/// Undo `ensure_hugetlb_v1`.
pub fn remove_hugetlb_v1() -> io::Result<()> {
    unmount(Path::new(HUGETLB))?;
    let _ = std::fs::remove_dir(HUGETLB);
    Ok(())
}
