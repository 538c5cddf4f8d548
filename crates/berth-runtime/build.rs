//! Builds berth-init (data/init.c) as a static binary, embedded in berth so that any
//! image, even one without a C library, can run it as PID 1.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=data/init.c");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("berth-init");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-static", "-Os", "-s", "-o"])
        .arg(&out)
        .arg("data/init.c")
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cc} to build berth-init: {e}"));
    assert!(
        status.success(),
        "{cc} failed to build berth-init (needs a static libc: libc6-dev)"
    );
}
