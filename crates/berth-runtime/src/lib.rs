//! berth-runtime: running a task's containers on this host. The node writes a plan and
//! one OCI bundle per container into the task's directory and starts the supervisor
//! (`shim`), which makes the task's namespace and cgroup, runs the containers with the
//! OCI runtime and reports their state. This crate knows nothing of ECS or the store.

pub mod bpf;
pub mod cgroup;
pub mod client;
pub mod plan;
pub mod shim;
pub mod spec;
pub mod sys;

pub use plan::*;
