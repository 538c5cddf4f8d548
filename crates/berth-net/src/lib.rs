//! berth-net: Berth's task networking on this host, the plumbing only. Address ranges
//! (`cidr`), the host's side (`host`: the `berth0` bridge, gateway addresses, Berth's
//! iptables chains, and their removal), a task's side (`task`: the veth pair its
//! supervisor makes), and the rtnetlink requests under both (`netlink`). It knows nothing
//! of the store: who holds an address or a port is berth-leases'.

pub mod cidr;
pub mod host;
pub mod netlink;
pub mod task;

pub use cidr::Cidr;
pub use host::{HostNetwork, BRIDGE};
pub use task::TaskNetwork;
