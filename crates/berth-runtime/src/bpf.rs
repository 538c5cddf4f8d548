//! The default seccomp profile compiled once, with libseccomp, into the BPF program the
//! kernel loads. OCI runtimes compile a profile at every container start (about 25 ms of
//! a start here, see BENCHMARKS.md); crun accepts the compiled program instead, in the
//! `run.oci.seccomp_bpf_data` annotation. The translation follows the OCI runtime spec,
//! as runc and crun make it: one rule per syscall name, its `args` ANDed when their
//! indexes differ and one rule per arg when an index repeats; names libseccomp does not
//! know are skipped.

use serde_json::Value;
use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_uint, c_void};
use std::sync::OnceLock;

#[repr(C)]
struct ArgCmp {
    arg: c_uint,
    op: c_int,
    datum_a: u64,
    datum_b: u64,
}

#[link(name = "seccomp")]
extern "C" {
    fn seccomp_init(def_action: u32) -> *mut c_void;
    fn seccomp_release(ctx: *mut c_void);
    fn seccomp_arch_resolve_name(name: *const c_char) -> u32;
    fn seccomp_arch_add(ctx: *mut c_void, arch: u32) -> c_int;
    fn seccomp_syscall_resolve_name(name: *const c_char) -> c_int;
    fn seccomp_rule_add_array(
        ctx: *mut c_void,
        action: u32,
        syscall: c_int,
        arg_cnt: c_uint,
        args: *const ArgCmp,
    ) -> c_int;
    fn seccomp_export_bpf(ctx: *const c_void, fd: c_int) -> c_int;
}

const ACT_ALLOW: u32 = 0x7fff_0000;

fn errno_action(errno: u64) -> u32 {
    0x0005_0000 | (errno as u32 & 0xffff)
}

fn action(name: &str, errno: Option<u64>) -> Result<u32, String> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => ACT_ALLOW,
        "SCMP_ACT_ERRNO" => errno_action(errno.unwrap_or(libc::EPERM as u64)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => 0,
        "SCMP_ACT_KILL_PROCESS" => 0x8000_0000,
        "SCMP_ACT_TRAP" => 0x0003_0000,
        "SCMP_ACT_LOG" => 0x7ffc_0000,
        other => return Err(format!("unsupported seccomp action {other}")),
    })
}

fn op(name: &str) -> Result<c_int, String> {
    Ok(match name {
        "SCMP_CMP_NE" => 1,
        "SCMP_CMP_LT" => 2,
        "SCMP_CMP_LE" => 3,
        "SCMP_CMP_EQ" => 4,
        "SCMP_CMP_GE" => 5,
        "SCMP_CMP_GT" => 6,
        "SCMP_CMP_MASKED_EQ" => 7,
        other => return Err(format!("unsupported seccomp comparison {other}")),
    })
}

fn arch_name(oci: &str) -> Option<&'static str> {
    Some(match oci {
        "SCMP_ARCH_X86_64" => "x86_64",
        "SCMP_ARCH_X86" => "x86",
        "SCMP_ARCH_X32" => "x32",
        "SCMP_ARCH_AARCH64" => "aarch64",
        "SCMP_ARCH_ARM" => "arm",
        _ => return None,
    })
}

struct Filter(*mut c_void);

impl Drop for Filter {
    fn drop(&mut self) {
        unsafe { seccomp_release(self.0) }
    }
}

/// Compile an OCI `linux.seccomp` object into a BPF program.
pub fn compile(profile: &Value) -> Result<Vec<u8>, String> {
    let default_errno = profile["defaultErrnoRet"].as_u64();
    let default = action(
        profile["defaultAction"]
            .as_str()
            .unwrap_or("SCMP_ACT_ALLOW"),
        default_errno,
    )?;
    let ctx = unsafe { seccomp_init(default) };
    if ctx.is_null() {
        return Err("libseccomp could not make a filter".into());
    }
    let filter = Filter(ctx);
    for a in profile["architectures"].as_array().into_iter().flatten() {
        let Some(name) = a.as_str().and_then(arch_name) else {
            continue;
        };
        let c = CString::new(name).expect("no NUL");
        let token = unsafe { seccomp_arch_resolve_name(c.as_ptr()) };
        // EEXIST: the native architecture is in every new filter already.
        let rc = unsafe { seccomp_arch_add(filter.0, token) };
        if rc < 0 && rc != -libc::EEXIST {
            return Err(format!("libseccomp cannot add architecture {name}: {rc}"));
        }
    }
    for rule in profile["syscalls"].as_array().into_iter().flatten() {
        let act = action(
            rule["action"].as_str().unwrap_or_default(),
            rule["errnoRet"].as_u64().or(default_errno),
        )?;
        if act == default {
            continue; // libseccomp refuses rules that repeat the default
        }
        let mut args = vec![];
        for a in rule["args"].as_array().into_iter().flatten() {
            args.push(ArgCmp {
                arg: a["index"].as_u64().unwrap_or(0) as c_uint,
                op: op(a["op"].as_str().unwrap_or_default())?,
                datum_a: a["value"].as_u64().unwrap_or(0),
                datum_b: a["valueTwo"].as_u64().unwrap_or(0),
            });
        }
        let mut indexes: Vec<c_uint> = args.iter().map(|a| a.arg).collect();
        indexes.sort_unstable();
        indexes.dedup();
        let groups: Vec<Vec<&ArgCmp>> = if indexes.len() == args.len() {
            vec![args.iter().collect()]
        } else {
            args.iter().map(|a| vec![a]).collect()
        };
        for name in rule["names"].as_array().into_iter().flatten() {
            let Some(name) = name.as_str() else { continue };
            let c = CString::new(name).map_err(|_| "NUL in a syscall name")?;
            let nr = unsafe { seccomp_syscall_resolve_name(c.as_ptr()) };
            if nr < 0 {
                continue; // unknown to this libseccomp, as runc and crun skip it
            }
            for g in &groups {
                let flat: Vec<ArgCmp> = g
                    .iter()
                    .map(|a| ArgCmp {
                        arg: a.arg,
                        op: a.op,
                        datum_a: a.datum_a,
                        datum_b: a.datum_b,
                    })
                    .collect();
                let rc = unsafe {
                    seccomp_rule_add_array(filter.0, act, nr, flat.len() as c_uint, flat.as_ptr())
                };
                if rc < 0 {
                    return Err(format!("libseccomp refused the rule for {name}: {rc}"));
                }
            }
        }
    }
    let fd = unsafe { libc::memfd_create(c"seccomp-bpf".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("memfd_create: {}", std::io::Error::last_os_error()));
    }
    let file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let rc = unsafe { seccomp_export_bpf(filter.0, fd) };
    if rc < 0 {
        return Err(format!("libseccomp cannot export the filter: {rc}"));
    }
    let mut out = vec![];
    std::io::Seek::seek(&mut &file, std::io::SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    std::io::Read::read_to_end(&mut &file, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// The default profile for this host, compiled and base64-encoded for crun's
/// `run.oci.seccomp_bpf_data` annotation; None (and the runtime compiles the profile
/// itself) if libseccomp refuses it.
pub fn default_profile_base64() -> Option<&'static str> {
    static BPF: OnceLock<Option<String>> = OnceLock::new();
    BPF.get_or_init(|| {
        let profile = serde_json::to_value(crate::spec::default_seccomp()).ok()?;
        match compile(&profile) {
            Ok(b) => Some(base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                b,
            )),
            Err(e) => {
                tracing::warn!(error = %e, "the seccomp profile cannot be precompiled; the runtime will compile it at every start");
                None
            }
        }
    })
    .as_deref()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_profile_compiles() {
        let b = super::default_profile_base64().expect("compiles");
        // A BPF program is a whole number of 8-byte instructions.
        let raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b).unwrap();
        assert!(
            raw.len() > 8 * 50 && raw.len().is_multiple_of(8),
            "{}",
            raw.len()
        );
    }
}
