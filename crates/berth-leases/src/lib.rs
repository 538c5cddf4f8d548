//! berth-leases: what a task or load balancer holds on this host, as store records, so
//! two owners never share one: addresses (`ipam`: one allocator for the host) and host
//! ports (`ports`). Each lease names its owner's ARN; the host plumbing that uses them
//! is berth-net's, which knows nothing of the store.

pub mod ipam;
pub mod ports;
