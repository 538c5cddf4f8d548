//! berth-leases: what a task or load balancer holds on this host, as store records, so
//! two owners never share one: addresses (`ipam`: one allocator for the host) and host
//! ports (`ports`). Each lease names its owner's ARN; the host plumbing that uses them
//! is berth-net's, which knows nothing of the store.

pub mod ipam;
pub mod ports;

use berth_store::{Cond, Op, Store, StoreError};

/// Delete the lease at `key` if `owner` holds it. A write that races with this one
/// (the record changed between reading and deleting) is read again and retried; a
/// failing store is an error, so the caller retries rather than report the lease free.
fn delete_owned(store: &dyn Store, key: &str, owner: &str) -> Result<(), String> {
    for _ in 0..16 {
        let Some(r) = store.get(key) else {
            return Ok(());
        };
        if r.value["owner"] != owner {
            return Ok(());
        }
        match store.txn(
            &[Cond::Revision(key.to_string(), r.revision)],
            vec![Op::Delete(key.to_string())],
        ) {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(format!("cannot release the lease {key}: {e}")),
        }
    }
    Err(format!("cannot release the lease {key}: it keeps changing"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_store::{Event, Record, SqliteStore};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A store whose first `fail` writes fail: `conflicts` of them as conflicts, the rest
    /// as a backend failure.
    struct Flaky {
        inner: SqliteStore,
        fail: AtomicUsize,
        conflicts: usize,
    }

    impl Store for Flaky {
        fn get(&self, key: &str) -> Option<Record> {
            self.inner.get(key)
        }
        fn list(&self, prefix: &str) -> Vec<Record> {
            self.inner.list(prefix)
        }
        fn scan(
            &self,
            prefix: &str,
            after: Option<&str>,
            reverse: bool,
            limit: usize,
            visit: &mut dyn FnMut(&Record) -> bool,
        ) -> usize {
            self.inner.scan(prefix, after, reverse, limit, visit)
        }
        fn txn(&self, conds: &[Cond], ops: Vec<Op>) -> Result<i64, StoreError> {
            let left = self.fail.load(Ordering::SeqCst);
            if left > 0 {
                self.fail.store(left - 1, Ordering::SeqCst);
                return Err(if left > self.conflicts {
                    StoreError::Backend("disk full".into())
                } else {
                    StoreError::Conflict("raced".into())
                });
            }
            self.inner.txn(conds, ops)
        }
        fn watch(&self) -> tokio::sync::broadcast::Receiver<Event> {
            self.inner.watch()
        }
        fn revision(&self) -> i64 {
            self.inner.revision()
        }
    }

    fn flaky(dir: &std::path::Path) -> Flaky {
        Flaky {
            inner: SqliteStore::open(&dir.join("s.db")).unwrap(),
            fail: AtomicUsize::new(0),
            conflicts: 0,
        }
    }

    #[test]
    fn a_release_that_races_is_retried() {
        let d = tempfile::tempdir().unwrap();
        let st = flaky(d.path());
        ports::claim(&st, "tcp", 49300, "task-a").unwrap();
        st.fail.store(2, Ordering::SeqCst);
        let st = Flaky { conflicts: 2, ..st };
        ports::release_all(&st, "task-a").unwrap();
        assert!(st.list(ports::PORTS).is_empty(), "the port was given back");
    }

    #[test]
    fn a_release_the_store_refuses_is_an_error_and_can_be_retried() {
        let d = tempfile::tempdir().unwrap();
        let st = flaky(d.path());
        ports::claim(&st, "tcp", 49301, "task-a").unwrap();
        st.fail.store(1, Ordering::SeqCst);
        let e = ports::release_all(&st, "task-a").unwrap_err();
        assert!(e.contains("disk full"), "{e}");
        assert_eq!(st.list(ports::PORTS).len(), 1, "still held, and said so");
        ports::release_all(&st, "task-a").unwrap();
        assert!(st.list(ports::PORTS).is_empty());
    }
}
