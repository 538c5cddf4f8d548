//! berth-net: Berth's task networking on this host. Addresses (`cidr`, `ipam`: one
//! allocator, leases in the store), the host's side (`host`: the `berth0` bridge, gateway
//! addresses, Berth's iptables chains, and their removal), a task's side (`task`: the veth
//! pair its supervisor makes), and the rtnetlink requests under both (`netlink`).

pub mod cidr;
pub mod host;
pub mod ipam;
pub mod netlink;
pub mod ports;
pub mod task;

pub use cidr::Cidr;
pub use host::{HostNetwork, BRIDGE};
pub use task::TaskNetwork;
