//! Task addresses: one allocator for the whole host. A lease is a store record keyed by
//! the address itself, so two tasks never share an address even when two accounts' default
//! VPCs have the same ranges (they share Berth's one bridge). Created with a condition
//! that the key is absent: concurrent allocations cannot both win.

use berth_net::Cidr;
use berth_store::{Cond, Op, Store, StoreError};
use serde_json::{json, Value};
use std::net::Ipv4Addr;

/// Store prefix of the leases. Not under an account: addresses are the host's.
pub const LEASES: &str = "/_net/lease/";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub subnet_id: String,
    pub cidr: Cidr,
}

impl Lease {
    pub fn key(&self) -> String {
        lease_key(self.ip)
    }
}

pub fn lease_key(ip: Ipv4Addr) -> String {
    format!("{LEASES}{ip}")
}

/// A subnet a task may take its address from.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub subnet_id: String,
    pub cidr: Cidr,
}

/// Lease an address for `owner` (a task ARN) from the first of `subnets`, counted from
/// `start`, that has one free (callers vary `start` to spread tasks over zones as ECS
/// does). An address another allocation wins meanwhile is skipped, so concurrent
/// allocations never fail while addresses are left. Err is the reason to give the task.
pub fn allocate(
    store: &dyn Store,
    subnets: &[Candidate],
    start: usize,
    owner: &str,
) -> Result<Lease, String> {
    if subnets.is_empty() {
        return Err("no subnet to take an address from".into());
    }
    let used: std::collections::HashSet<Ipv4Addr> = store
        .list(LEASES)
        .iter()
        .filter_map(|r| r.key[LEASES.len()..].parse().ok())
        .collect();
    for k in 0..subnets.len() {
        let s = &subnets[(start + k) % subnets.len()];
        for ip in s.cidr.hosts().filter(|ip| !used.contains(ip)) {
            match try_lease(store, s, ip, owner)? {
                Some(lease) => return Ok(lease),
                // Another task took it since the list was read: try the next one.
                None => continue,
            }
        }
    }
    let ids: Vec<&str> = subnets.iter().map(|s| s.subnet_id.as_str()).collect();
    Err(format!(
        "There are no free IP addresses in the subnets [{}]",
        ids.join(", ")
    ))
}

/// Lease the one address `ip` of `subnet` for `owner` (a load balancer asking for a
/// private address). Err if it is not a host address of the subnet or is taken.
pub fn claim(
    store: &dyn Store,
    subnet: &Candidate,
    ip: Ipv4Addr,
    owner: &str,
) -> Result<Lease, String> {
    let a = u32::from(ip);
    if !subnet.cidr.contains_ip(ip) || a < subnet.cidr.first() + 4 || a == subnet.cidr.last() {
        return Err(format!(
            "The address {ip} is not available for use in the subnet {} ({})",
            subnet.subnet_id, subnet.cidr
        ));
    }
    try_lease(store, subnet, ip, owner)?
        .ok_or_else(|| format!("The address {ip} is already in use"))
}

/// Record the lease of `ip` for `owner` unless someone holds it: Ok(None) if taken.
fn try_lease(
    store: &dyn Store,
    subnet: &Candidate,
    ip: Ipv4Addr,
    owner: &str,
) -> Result<Option<Lease>, String> {
    let lease = Lease {
        ip,
        subnet_id: subnet.subnet_id.clone(),
        cidr: subnet.cidr,
    };
    let value = json!({"ip": ip.to_string(), "subnetId": subnet.subnet_id, "cidr": subnet.cidr.to_string(), "owner": owner});
    match store.txn(
        &[Cond::Absent(lease.key())],
        vec![Op::Put(lease.key(), value)],
    ) {
        Ok(_) => Ok(Some(lease)),
        Err(StoreError::Conflict(_)) => Ok(None),
        Err(e) => Err(format!("cannot record the address lease: {e}")),
    }
}

/// Give back every address `owner` holds.
pub fn release_owner(store: &dyn Store, owner: &str) -> Result<(), String> {
    for (ip, o) in leases(store) {
        if o == owner {
            release(store, ip, owner)?;
        }
    }
    Ok(())
}

/// The lease `owner` holds on `ip`, if it is still theirs.
pub fn lease_of(store: &dyn Store, ip: Ipv4Addr, owner: &str) -> Option<Lease> {
    let r = store.get(&lease_key(ip))?;
    if r.value["owner"] != owner {
        return None;
    }
    Some(Lease {
        ip,
        subnet_id: r.value["subnetId"].as_str()?.to_string(),
        cidr: Cidr::parse(r.value["cidr"].as_str()?)?,
    })
}

/// Give an address back, if `owner` still holds it.
pub fn release(store: &dyn Store, ip: Ipv4Addr, owner: &str) -> Result<(), String> {
    crate::delete_owned(store, &lease_key(ip), owner)
}

/// Every lease, as (address, owner).
pub fn leases(store: &dyn Store) -> Vec<(Ipv4Addr, Value)> {
    store
        .list(LEASES)
        .into_iter()
        .filter_map(|r| {
            Some((
                r.key[LEASES.len()..].parse().ok()?,
                r.value["owner"].clone(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_store::SqliteStore;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let d = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&d.path().join("s.db")).unwrap();
        (d, s)
    }

    fn subnet(id: &str, cidr: &str) -> Candidate {
        Candidate {
            subnet_id: id.into(),
            cidr: Cidr::parse(cidr).unwrap(),
        }
    }

    #[test]
    fn skips_reserved_addresses_and_never_hands_out_one_twice() {
        let (_d, st) = store();
        let subs = [subnet("subnet-a", "10.9.0.0/29")];
        // A /29 has 8 addresses; AWS reserves 5, leaving .4, .5 and .6.
        let got: Vec<String> = (0..3)
            .map(|i| {
                allocate(&st, &subs, 0, &format!("t{i}"))
                    .unwrap()
                    .ip
                    .to_string()
            })
            .collect();
        assert_eq!(got, ["10.9.0.4", "10.9.0.5", "10.9.0.6"]);
        let e = allocate(&st, &subs, 0, "t3").unwrap_err();
        assert_eq!(
            e,
            "There are no free IP addresses in the subnets [subnet-a]"
        );
        // Released by someone else: still held. Released by its owner: free again.
        release(&st, "10.9.0.5".parse().unwrap(), "t0").unwrap();
        assert!(allocate(&st, &subs, 0, "t3").is_err());
        release(&st, "10.9.0.5".parse().unwrap(), "t1").unwrap();
        assert_eq!(
            allocate(&st, &subs, 0, "t3").unwrap().ip.to_string(),
            "10.9.0.5"
        );
        assert_eq!(leases(&st).len(), 3);
    }

    #[test]
    fn moves_to_the_next_subnet_when_one_is_full() {
        let (_d, st) = store();
        let subs = [
            subnet("subnet-a", "10.9.0.0/29"),
            subnet("subnet-b", "10.9.1.0/28"),
        ];
        for i in 0..3 {
            allocate(&st, &subs, 0, &format!("t{i}")).unwrap();
        }
        let l = allocate(&st, &subs, 0, "t3").unwrap();
        assert_eq!(
            (l.subnet_id.as_str(), l.ip.to_string()),
            ("subnet-b", "10.9.1.4".into())
        );
        // Starting at the second subnet takes from it first.
        assert_eq!(allocate(&st, &subs, 1, "t4").unwrap().subnet_id, "subnet-b");
        assert_eq!(lease_of(&st, l.ip, "t3").unwrap(), l);
        assert!(lease_of(&st, l.ip, "t9").is_none());
    }

    #[test]
    fn concurrent_allocations_all_succeed_while_addresses_last() {
        let (_d, st) = store();
        let st = std::sync::Arc::new(st);
        let subs = [subnet("subnet-a", "10.9.0.0/28")];
        let got: Vec<Result<Lease, String>> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..11)
                .map(|i| {
                    let (st, subs) = (st.clone(), subs.clone());
                    sc.spawn(move || allocate(st.as_ref(), &subs, 0, &format!("t{i}")))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut ips: Vec<Ipv4Addr> = got.into_iter().map(|r| r.unwrap().ip).collect();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), 11, "eleven tasks, eleven distinct addresses");
        assert!(allocate(st.as_ref(), &subs, 0, "t11").is_err());
    }
}
