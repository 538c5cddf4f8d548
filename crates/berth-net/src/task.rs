//! A task's side of awsvpc networking, done by its supervisor: a veth pair whose host end
//! joins Berth's bridge and whose other end is the task's `eth0`, with the task's address
//! and a default route via its subnet's gateway.

use crate::netlink::{self, Netlink};
use serde::{Deserialize, Serialize};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

/// The task's interface inside its namespace.
pub const TASK_LINK: &str = "eth0";

/// What the supervisor needs to wire a task (part of its plan).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskNetwork {
    pub bridge: String,
    /// The host end of the veth pair.
    pub host_link: String,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
}

/// A locally administered MAC address made from the IPv4 address, so an address that
/// comes back to a new task keeps its MAC and no neighbour cache goes stale.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x0a, 0x58, o[0], o[1], o[2], o[3]]
}

pub fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// What must be opened in the host's namespace before the supervisor leaves it.
pub struct HostSide {
    nl: Netlink,
    bridge_index: u32,
}

/// Step one, in the host's namespace.
pub fn open_host_side(net: &TaskNetwork) -> io::Result<HostSide> {
    Ok(HostSide {
        nl: Netlink::open()?,
        bridge_index: netlink::index_of(&net.bridge)?,
    })
}

/// Step two, once the calling thread is in the task's new namespace: create the pair
/// (a stale host end left by a task that died is replaced), then address and route.
pub fn attach(mut host: HostSide, net: &TaskNetwork) -> io::Result<()> {
    let ns = std::fs::File::open("/proc/thread-self/ns/net")?;
    let mac = mac_for(net.ip);
    let create = |h: &mut HostSide| {
        h.nl.create_veth(
            &net.host_link,
            h.bridge_index,
            TASK_LINK,
            ns.as_raw_fd(),
            mac,
        )
    };
    match create(&mut host) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            host.nl.delete_link(&net.host_link)?;
            create(&mut host)?;
        }
        r => r?,
    }
    let mut inside = Netlink::open()?;
    inside.set_up(TASK_LINK)?;
    inside.add_address(TASK_LINK, net.ip, net.prefix_len)?;
    inside.add_default_route(TASK_LINK, net.gateway)
}

/// Remove the task's pair from inside its namespace (deleting one end deletes both), now
/// rather than whenever the kernel gets round to freeing the namespace.
pub fn detach_inside() -> io::Result<()> {
    if !netlink::link_exists(TASK_LINK) {
        return Ok(());
    }
    Netlink::open()?.delete_link(TASK_LINK)
}

/// Remove a task's pair by its host end, from the host's namespace (after a supervisor
/// died).
pub fn detach_host(host_link: &str) -> io::Result<()> {
    Netlink::open()?.delete_link(host_link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_follow_addresses() {
        let ip: Ipv4Addr = "172.31.0.4".parse().unwrap();
        assert_eq!(mac_string(mac_for(ip)), "0a:58:ac:1f:00:04");
    }
}
