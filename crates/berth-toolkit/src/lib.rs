//! berth-toolkit: what every service is written with, so no service hand-writes it.
//! `commit` runs a read-check-write attempt until its transaction commits (a conflict
//! means another writer got there first: read again and check every rule again), and
//! answers in the service's own error when it cannot.

use berth_store::{Store, StoreError};
use berth_wire::{ApiError, ApiResult};

pub use berth_store::Plan;

/// Run `attempt` (which reads the store, checks the request against what it read and
/// plans one transaction) until it commits. `busy` is the service's answer when writers
/// keep conflicting (a 500 in the service's own code, naming what was contended); a
/// store failure answers with `busy`'s status and code and the failure's message.
pub fn commit<T>(
    store: &dyn Store,
    busy: impl Fn() -> ApiError,
    attempt: impl FnMut() -> ApiResult<Plan<T>>,
) -> ApiResult<T> {
    berth_store::commit(store, attempt, |e: Option<StoreError>| match e {
        Some(e) => {
            let b = busy();
            ApiError::new(b.status, b.code, e.to_string())
        }
        None => busy(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_store::SqliteStore;
    use serde_json::json;
    use std::cell::Cell;

    fn busy() -> ApiError {
        ApiError::new(
            500,
            "ServerException",
            "The thing is being modified concurrently; try again.",
        )
    }

    #[test]
    fn a_conflicting_writer_makes_the_attempt_read_again() {
        let d = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&d.path().join("s.db")).unwrap();
        s.put("/k", json!({"n": 1})).unwrap();
        let tries = Cell::new(0);
        let n = commit(&s, busy, || {
            let r = s.get("/k").unwrap();
            if tries.replace(tries.get() + 1) == 0 {
                s.put("/k", json!({"n": 10})).unwrap(); // someone else, meanwhile
            }
            let n = r.value["n"].as_i64().unwrap() + 1;
            let mut plan = Plan::new(n);
            plan.put(&r, json!({"n": n}));
            Ok(plan)
        })
        .unwrap();
        assert_eq!((n, tries.get()), (11, 2));
        assert_eq!(s.get("/k").unwrap().value["n"], 11);
    }

    #[test]
    fn a_refused_attempt_writes_nothing_and_endless_conflicts_are_the_services_error() {
        let d = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&d.path().join("s.db")).unwrap();
        s.put("/k", json!({"n": 1})).unwrap();
        let e = commit(&s, busy, || -> ApiResult<Plan<()>> {
            Err(ApiError::client("InvalidParameterException", "no"))
        })
        .unwrap_err();
        assert_eq!(e.code, "InvalidParameterException");
        let e = commit(&s, busy, || {
            let r = s.get("/k").unwrap();
            s.put("/k", json!({"n": 0})).unwrap(); // always someone else
            let mut plan = Plan::new(());
            plan.put(&r, json!({"n": 2}));
            Ok(plan)
        })
        .unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (500, "ServerException"));
        assert_eq!(s.get("/k").unwrap().value["n"], 0);
    }
}
