//! Host ports for bridge- and host-mode tasks: leases in the store keyed by protocol and
//! port, like addresses, so two tasks never hold one port. A dynamic port comes from the
//! ephemeral range ECS uses for Docker (49153-65535) and is skipped while anything on the
//! host listens on it.

use berth_store::{Cond, Op, Store, StoreError};
use serde_json::json;

pub const PORTS: &str = "/_net/port/";
/// Docker's (and so ECS's) dynamic host port range.
pub const EPHEMERAL: std::ops::RangeInclusive<u16> = 49153..=65535;

pub fn port_key(protocol: &str, port: u16) -> String {
    format!("{PORTS}{protocol}/{port:05}")
}

/// Whether something on the host already listens on this port (any address).
fn in_use_on_host(protocol: &str, port: u16) -> bool {
    if protocol == "udp" {
        std::net::UdpSocket::bind(("0.0.0.0", port)).is_err()
    } else {
        std::net::TcpListener::bind(("0.0.0.0", port)).is_err()
    }
}

/// Claim a fixed host port for `owner`. Err is ECS's reason for the failure.
pub fn claim(store: &dyn Store, protocol: &str, port: u16, owner: &str) -> Result<(), String> {
    let key = port_key(protocol, port);
    if let Some(r) = store.get(&key) {
        if r.value["owner"] == owner {
            return Ok(());
        }
        return Err(format!(
            "RESOURCE:PORTS: host port {port}/{protocol} is held by another task"
        ));
    }
    if in_use_on_host(protocol, port) {
        return Err(format!(
            "RESOURCE:PORTS: host port {port}/{protocol} is in use on the host"
        ));
    }
    match store.txn(
        &[Cond::Absent(key.clone())],
        vec![Op::Put(key, json!({"owner": owner}))],
    ) {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict(_)) => Err(format!(
            "RESOURCE:PORTS: host port {port}/{protocol} is held by another task"
        )),
        Err(e) => Err(format!("cannot record the port lease: {e}")),
    }
}

/// A free port from the ephemeral range for `owner`, starting the search at `hint`
/// (so consecutive tasks do not all probe the same ports).
pub fn dynamic(store: &dyn Store, protocol: &str, hint: usize, owner: &str) -> Result<u16, String> {
    let (lo, hi) = (*EPHEMERAL.start() as usize, *EPHEMERAL.end() as usize);
    let span = hi - lo + 1;
    for k in 0..span {
        let port = (lo + (hint + k) % span) as u16;
        if store.get(&port_key(protocol, port)).is_some() {
            continue;
        }
        if claim(store, protocol, port, owner).is_ok() {
            return Ok(port);
        }
    }
    Err("RESOURCE:PORTS: no free host port in the ephemeral range".into())
}

/// Give back every port `owner` holds.
pub fn release_all(store: &dyn Store, owner: &str) -> Result<(), String> {
    for r in store.list(PORTS) {
        if r.value["owner"] == owner {
            crate::delete_owned(store, &r.key, owner)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_store::SqliteStore;

    #[test]
    fn fixed_ports_are_held_once_and_come_back() {
        let d = tempfile::tempdir().unwrap();
        let st = SqliteStore::open(&d.path().join("s.db")).unwrap();
        let port = 49200;
        claim(&st, "tcp", port, "a").unwrap();
        claim(&st, "tcp", port, "a").unwrap();
        let e = claim(&st, "tcp", port, "b").unwrap_err();
        assert!(e.starts_with("RESOURCE:PORTS"), "{e}");
        claim(&st, "udp", port, "b").unwrap();
        release_all(&st, "a").unwrap();
        claim(&st, "tcp", port, "b").unwrap();
    }

    #[test]
    fn dynamic_ports_skip_held_and_busy_ones() {
        let d = tempfile::tempdir().unwrap();
        let st = SqliteStore::open(&d.path().join("s.db")).unwrap();
        // Something on the host listens on the first port of the search.
        let busy = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let busy_port = busy.local_addr().unwrap().port();
        if EPHEMERAL.contains(&busy_port) {
            let hint = (busy_port - EPHEMERAL.start()) as usize;
            let got = dynamic(&st, "tcp", hint, "a").unwrap();
            assert_ne!(got, busy_port);
            let again = dynamic(&st, "tcp", hint, "b").unwrap();
            assert_ne!(again, got);
        }
        let a = dynamic(&st, "tcp", 0, "c").unwrap();
        let b = dynamic(&st, "tcp", 0, "d").unwrap();
        assert_ne!(a, b);
    }
}
